//! How one Service is programmed on this node, read back from the kernel:
//! the view `kubectl-lite trace` prints.
//!
//! `GET /kube-lite/services/{namespace}/{name}` on the kubelet port (the
//! apiserver reaches it as `/api/v1/nodes/{node}/proxy/kube-lite/services/
//! {namespace}/{name}`, the way kube-apiserver reaches a kubelet). The
//! Service's spec says which keys to look for (its ClusterIP, ports,
//! nodePorts); everything else - which element each key finds, its
//! buckets, hairpin pairs, remembered clients - is dumped from the
//! kernel's maps, not taken from the proxy's memory: if the two disagree,
//! the view shows the kernel.
//!
//! Read-only, and only of the table: who may call the kubelet port is the
//! kubelet server's business (see `server/mod.rs`).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;

use api::serviceview::{Bucket, NodePortPath, Path, PortView, RememberedClient, ServiceView};
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use k8s_openapi::api::core::v1::Service;
use kube::runtime::reflector::{ObjectRef, Store};

use super::netlink::{DumpedElement, NetlinkError, Socket};
use super::nftables::{Key, Proto, SetType, Value, Verdict};
use super::rules::{self, SharedChain};

/// The set of the ports that go to one shared chain, read back.
struct PortSet {
    name: String,
    chain: SharedChain,
    elements: Vec<DumpedElement>,
}

/// Every map the view reads, with its type, dumped once per request.
struct Dump {
    /// `services-with-N-endpoints`, ... as the kernel has them.
    port_sets: Vec<PortSet>,
    no_endpoint_services: Vec<DumpedElement>,
    no_endpoint_nodeports: Vec<DumpedElement>,
    service_endpoints: Vec<DumpedElement>,
    nodeport_endpoints: Vec<DumpedElement>,
    affinity_services: Vec<DumpedElement>,
    hairpin: Vec<DumpedElement>,
    clients: Vec<DumpedElement>,
}

impl Dump {
    fn read(socket: &Socket) -> Result<Dump, NetlinkError> {
        let read = |set: &str, ty| socket.elements(set, ty);
        let mut port_sets = vec![];
        for name in socket.set_names()? {
            let Some(chain) = SharedChain::of_port_set(&name) else {
                continue;
            };
            let ty = match chain {
                SharedChain::Pick(_) => SetType::ClusterIpPorts,
                _ => SetType::NodePorts,
            };
            port_sets.push(PortSet {
                elements: read(&name, ty)?,
                name,
                chain,
            });
        }
        Ok(Dump {
            port_sets,
            no_endpoint_services: read(
                rules::NO_ENDPOINT_SERVICES_MAP,
                SetType::ClusterIpPortVmap,
            )?,
            no_endpoint_nodeports: read(rules::NO_ENDPOINT_NODEPORTS_MAP, SetType::NodePortVmap)?,
            service_endpoints: read(rules::SERVICE_ENDPOINTS_MAP, SetType::ClusterIpEndpoints)?,
            nodeport_endpoints: read(rules::NODEPORT_ENDPOINTS_MAP, SetType::NodePortEndpoints)?,
            affinity_services: read(rules::AFFINITY_SERVICES_MAP, SetType::ClusterIpPortVmap)?,
            hairpin: read(rules::HAIRPIN_SET, SetType::AddressPairs)?,
            clients: read(
                rules::AFFINITY_CLIENTS_MAP,
                SetType::RememberedClients { size: 0 },
            )?,
        })
    }
}

impl Dump {
    /// The port sets of ClusterIP ports (`cluster`) or of NodePorts, as
    /// [`path`] reads them.
    fn port_sets_for(&self, cluster: bool) -> Vec<(&str, &[DumpedElement], Option<SharedChain>)> {
        self.port_sets
            .iter()
            .filter(|s| matches!(s.chain, SharedChain::Pick(_)) == cluster)
            .map(|s| (s.name.as_str(), s.elements.as_slice(), Some(s.chain)))
            .collect()
    }
}

fn value_text(value: &Option<Value>) -> String {
    value.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// Where `key` leads: the first of `maps` that has it, and the verdict
/// (a port set's is its dispatch rule's `goto`; a map's is the element's).
fn path(maps: &[(&str, &[DumpedElement], Option<SharedChain>)], key: &Key) -> Path {
    for (name, elements, chain) in maps {
        if let Some(e) = elements.iter().find(|e| &e.key == key) {
            let verdict = match chain {
                Some(chain) => Verdict::Goto(chain.to_string()).to_string(),
                None => value_text(&e.value),
            };
            return Path {
                map: name.to_string(),
                key: key.to_string(),
                verdict,
                comment: e.comment.clone(),
                buckets: vec![],
            };
        }
    }
    Path {
        key: key.to_string(),
        ..Path::default()
    }
}

/// The buckets of `map` whose key `belongs`, in bucket order.
fn buckets(
    map: &str,
    elements: &[DumpedElement],
    belongs: impl Fn(&Key) -> Option<u32>,
) -> Vec<Bucket> {
    let mut out: Vec<Bucket> = elements
        .iter()
        .filter_map(|e| {
            let bucket = belongs(&e.key)?;
            let endpoint = match &e.value {
                Some(Value::Endpoint(ip, port)) => format!("{ip}:{port}"),
                _ => String::new(),
            };
            Some(Bucket {
                map: map.to_string(),
                bucket,
                endpoint,
                comment: e.comment.clone(),
            })
        })
        .collect();
    out.sort_by_key(|b| b.bucket);
    out
}

/// Reads how `service` is programmed in the kernel `socket` talks to.
pub fn read(socket: &Socket, node: &str, service: &Service) -> Result<ServiceView, NetlinkError> {
    let namespace = service.metadata.namespace.as_deref().unwrap_or_default();
    let name = service.metadata.name.as_deref().unwrap_or_default();
    let mut view = ServiceView {
        node: node.to_string(),
        service: api::service::key(namespace, name),
        ..ServiceView::default()
    };
    let spec = service.spec.clone().unwrap_or_default();
    let Some(cluster_ip) = spec
        .cluster_ip
        .as_deref()
        .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        .filter(|_| spec.type_.as_deref() != Some("ExternalName"))
    else {
        return Ok(view);
    };
    view.cluster_ip = cluster_ip.to_string();
    let dump = Dump::read(socket)?;
    let mut endpoints: BTreeSet<Ipv4Addr> = BTreeSet::new();
    let mut destinations: Vec<(Ipv4Addr, Proto, u16, Option<u16>)> = vec![];
    for port in spec.ports.iter().flatten() {
        let Some(proto) = Proto::parse(port.protocol.as_deref().unwrap_or("TCP")) else {
            continue;
        };
        let number = u16::try_from(port.port).unwrap_or_default();
        let label = rules::port_label(namespace, name, port);
        let key = Key::ClusterIpPort(cluster_ip, proto, number);
        let mut maps = dump.port_sets_for(true);
        maps.push((
            rules::NO_ENDPOINT_SERVICES_MAP,
            &dump.no_endpoint_services,
            None,
        ));
        let mut cluster = path(&maps, &key);
        cluster.buckets = buckets(
            rules::SERVICE_ENDPOINTS_MAP,
            &dump.service_endpoints,
            |k| match k {
                Key::ClusterIpBucket(ip, p, n, b)
                    if (*ip, *p, *n) == (cluster_ip, proto, number) =>
                {
                    Some(*b)
                }
                _ => None,
            },
        );
        let node_port = port
            .node_port
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0);
        let node_port_path = node_port.map(|node_port| {
            let key = Key::NodePort(proto, node_port);
            let mut maps = dump.port_sets_for(false);
            maps.push((
                rules::NO_ENDPOINT_NODEPORTS_MAP,
                &dump.no_endpoint_nodeports,
                None,
            ));
            let mut path = path(&maps, &key);
            path.buckets = buckets(
                rules::NODEPORT_ENDPOINTS_MAP,
                &dump.nodeport_endpoints,
                |k| match k {
                    Key::NodePortBucket(p, n, b) if (*p, *n) == (proto, node_port) => Some(*b),
                    _ => None,
                },
            );
            NodePortPath { node_port, path }
        });
        let affinity = dump
            .affinity_services
            .iter()
            .find(|e| e.key == key)
            .and_then(|e| match &e.value {
                Some(Value::Verdict(Verdict::Goto(chain))) => Some(chain.clone()),
                _ => None,
            });
        for bucket in cluster
            .buckets
            .iter()
            .chain(node_port_path.iter().flat_map(|p| &p.path.buckets))
        {
            if let Some(ip) = bucket
                .endpoint
                .split(':')
                .next()
                .and_then(|ip| ip.parse().ok())
            {
                endpoints.insert(ip);
            }
        }
        destinations.push((cluster_ip, proto, number, node_port));
        view.ports.push(PortView {
            label,
            protocol: proto.to_string(),
            port: number,
            cluster_ip: cluster,
            node_port: node_port_path,
            affinity,
        });
    }
    view.hairpin = dump
        .hairpin
        .iter()
        .filter_map(|e| match e.key {
            Key::AddressPair(a, b) if a == b && endpoints.contains(&a) => Some(a.to_string()),
            _ => None,
        })
        .collect();
    view.hairpin.sort();
    for e in &dump.clients {
        let (Key::Client(client, address, proto, port), Some(Value::Endpoint(ip, endpoint_port))) =
            (&e.key, &e.value)
        else {
            continue;
        };
        let ours = destinations.iter().any(|(cip, p, n, np)| {
            p == proto && ((cip == address && n == port) || np == &Some(*port))
        });
        if ours {
            view.remembered_clients.push(RememberedClient {
                client: client.to_string(),
                destination: format!("{address}:{port}"),
                endpoint: format!("{ip}:{endpoint_port}"),
            });
        }
    }
    Ok(view)
}

/// What the view's handler needs: this node's name, the Service cache, and
/// a socket to this node's nf_tables.
#[derive(Clone)]
pub struct ViewState {
    pub node: String,
    pub services: Store<Service>,
    pub socket: Arc<Socket>,
}

/// The kubelet-port routes of the view.
pub fn router(state: ViewState) -> Router {
    Router::new()
        .route(
            &format!("{}/{{namespace}}/{{name}}", api::serviceview::PATH),
            get(handle),
        )
        .with_state(state)
}

async fn handle(
    State(state): State<ViewState>,
    UrlPath((namespace, name)): UrlPath<(String, String)>,
) -> Response {
    let Some(service) = state
        .services
        .get(&ObjectRef::new(&name).within(&namespace))
    else {
        return crate::server::error_response(
            StatusCode::NOT_FOUND,
            format!(
                "service {namespace}/{name} is not known to the service proxy of node {}",
                state.node
            ),
        );
    };
    let socket = state.socket.clone();
    let node = state.node.clone();
    let result = tokio::task::spawn_blocking(move || read(&socket, &node, &service)).await;
    match result {
        Ok(Ok(view)) => Json(view).into_response(),
        Ok(Err(error)) => crate::server::error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reading the table ip kube-lite: {error}"),
        ),
        Err(_) => {
            crate::server::error_response(StatusCode::INTERNAL_SERVER_ERROR, "the reader panicked")
        }
    }
}
