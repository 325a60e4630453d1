//! How Pods reach this DNS server: the `kube-dns` Service and this node's
//! EndpointSlice.
//!
//! Every Pod's resolv.conf says `nameserver 10.96.0.10`: the ClusterIP of
//! the Service `kube-system/kube-dns` (the name and labels are kubeadm's,
//! so tools that look for cluster DNS find it). The Service has no
//! selector - no Pods serve it. Instead each node agent publishes an
//! EndpointSlice of its own, `kube-dns-<node>`, with one endpoint: its
//! node IP, port 53, where this module's server listens.
//!
//! The Service sets `internalTrafficPolicy: Local`, so the service proxy
//! sends a Pod's query only to the endpoint on the Pod's own node: every
//! Pod asks its own node, the query never crosses the network, and a node
//! whose agent is down breaks DNS for its own Pods only. This is what
//! NodeLocal DNSCache achieves on a real cluster (a DNS cache on every
//! node), without its link-local address trick.
//!
//! Ownership: any agent creates the Service when it is missing (a 409
//! from an agent that won the race is fine) and never changes it
//! afterwards - an admin may edit it. The slice, on the other hand,
//! belongs to this node's agent (its name says so, and its
//! `endpointslice.kubernetes.io/managed-by` label tells the controller to
//! keep out): the agent puts it back whenever it differs.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::PostParams;
use kube::runtime::watcher;
use kube::runtime::WatchStreamExt;
use kube::Api;

use api::endpointslice::SERVICE_NAME_LABEL;

/// The namespace of the cluster's own components.
pub const NAMESPACE: &str = "kube-system";

/// The cluster DNS Service's name (kubeadm's, kept for CoreDNS too).
pub const SERVICE_NAME: &str = "kube-dns";

/// The label naming who writes an EndpointSlice; the controller only
/// touches slices labelled with its own name.
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";

/// Our value of [`LABEL_MANAGED_BY`].
pub const MANAGED_BY: &str = "nodeagent.kube-lite.io";

/// The Service's port names, kubeadm's: UDP for most queries, TCP for
/// answers too big for a datagram.
pub const PORT_DNS: &str = "dns";
pub const PORT_DNS_TCP: &str = "dns-tcp";

/// How often the Service and slice are checked even without a change.
const RESYNC_INTERVAL: Duration = Duration::from_secs(60);

/// The name of `node`'s EndpointSlice.
pub fn slice_name(node: &str) -> String {
    format!("{SERVICE_NAME}-{node}")
}

/// The kube-dns Service as a fresh cluster gets it.
pub fn desired_service(cluster_dns_ip: Ipv4Addr) -> Service {
    let port = |name: &str, protocol: &str| ServicePort {
        name: Some(name.into()),
        port: 53,
        protocol: Some(protocol.into()),
        target_port: Some(IntOrString::Int(53)),
        ..Default::default()
    };
    Service {
        metadata: ObjectMeta {
            name: Some(SERVICE_NAME.into()),
            namespace: Some(NAMESPACE.into()),
            labels: Some(BTreeMap::from([
                ("k8s-app".into(), "kube-dns".into()),
                ("kubernetes.io/name".into(), "CoreDNS".into()),
            ])),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some(cluster_dns_ip.to_string()),
            ports: Some(vec![port(PORT_DNS, "UDP"), port(PORT_DNS_TCP, "TCP")]),
            internal_traffic_policy: Some("Local".into()),
            ..Default::default()
        }),
        status: None,
    }
}

/// This node's slice: one ready endpoint, the node IP, with the port the
/// server listens on (53 on a node).
pub fn desired_slice(node_name: &str, node_ip: Ipv4Addr, port: u16) -> EndpointSlice {
    let port = |name: &str, protocol: &str| EndpointPort {
        name: Some(name.into()),
        port: Some(i32::from(port)),
        protocol: Some(protocol.into()),
        app_protocol: None,
    };
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(slice_name(node_name)),
            namespace: Some(NAMESPACE.into()),
            labels: Some(BTreeMap::from([
                (SERVICE_NAME_LABEL.into(), SERVICE_NAME.into()),
                (LABEL_MANAGED_BY.into(), MANAGED_BY.into()),
            ])),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints: Some(vec![Endpoint {
            addresses: vec![node_ip.to_string()],
            conditions: Some(EndpointConditions {
                ready: Some(true),
                serving: Some(true),
                terminating: Some(false),
            }),
            node_name: Some(node_name.into()),
            ..Default::default()
        }]),
        ports: Some(vec![port(PORT_DNS, "UDP"), port(PORT_DNS_TCP, "TCP")]),
    }
}

/// Creates the Service if it is missing. Never updates it.
pub async fn ensure_service(api: &Api<Service>, desired: &Service) -> Result<(), kube::Error> {
    if api.get_opt(SERVICE_NAME).await?.is_some() {
        return Ok(());
    }
    match api.create(&PostParams::default(), desired).await {
        Ok(_) => {
            tracing::info!(
                service = %format!("{NAMESPACE}/{SERVICE_NAME}"),
                "created the cluster DNS Service"
            );
            Ok(())
        }
        // Another node's agent created it first.
        Err(kube::Error::Api(status)) if status.is_already_exists() || status.code == 409 => Ok(()),
        Err(error) => Err(error),
    }
}

/// Creates this node's slice, or puts it back as desired when it
/// differs. True when it wrote something.
pub async fn ensure_slice(
    api: &Api<EndpointSlice>,
    desired: &EndpointSlice,
) -> Result<bool, kube::Error> {
    let name = desired.metadata.name.clone().unwrap_or_default();
    match api.get_opt(&name).await? {
        None => {
            api.create(&PostParams::default(), desired).await?;
            Ok(true)
        }
        Some(current) if slice_matches(&current, desired) => Ok(false),
        Some(current) => {
            let mut replacement = desired.clone();
            replacement.metadata.resource_version = current.metadata.resource_version;
            // Keep labels others added; ours win.
            let mut labels = current.metadata.labels.unwrap_or_default();
            labels.extend(desired.metadata.labels.clone().unwrap_or_default());
            replacement.metadata.labels = Some(labels);
            api.replace(&name, &PostParams::default(), &replacement)
                .await?;
            Ok(true)
        }
    }
}

/// Whether `current` already says what `desired` says (our labels, the
/// address type, endpoints and ports; defaults filled in by the apiserver
/// do not count as differences).
fn slice_matches(current: &EndpointSlice, desired: &EndpointSlice) -> bool {
    let labels = current.metadata.labels.clone().unwrap_or_default();
    let labels_ok = desired
        .metadata
        .labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let endpoints = |s: &EndpointSlice| {
        s.endpoints
            .iter()
            .flatten()
            .map(|e| {
                let c = e.conditions.clone().unwrap_or_default();
                (e.addresses.clone(), e.node_name.clone(), c.ready, c.serving)
            })
            .collect::<Vec<_>>()
    };
    let ports = |s: &EndpointSlice| {
        s.ports
            .iter()
            .flatten()
            .map(|p| (p.name.clone(), p.port, p.protocol.clone()))
            .collect::<Vec<_>>()
    };
    labels_ok
        && current.address_type == desired.address_type
        && endpoints(current) == endpoints(desired)
        && ports(current) == ports(desired)
}

/// Keeps the Service present and this node's slice as desired: at start,
/// whenever either object changes (a watch on each, by name), and every
/// [`RESYNC_INTERVAL`]. API errors are logged and retried; this never
/// returns except when its watches end.
pub async fn publish(
    client: kube::Client,
    service: Service,
    slice: EndpointSlice,
) -> Result<(), super::DnsError> {
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let slices: Api<EndpointSlice> = Api::namespaced(client, NAMESPACE);
    let slice_name = slice.metadata.name.clone().unwrap_or_default();
    let by_name = |name: &str| watcher::Config::default().fields(&format!("metadata.name={name}"));
    let service_events = watcher::watcher(services.clone(), by_name(SERVICE_NAME))
        .default_backoff()
        .map(|e| e.map(|_| ()));
    let slice_events = watcher::watcher(slices.clone(), by_name(&slice_name))
        .default_backoff()
        .map(|e| e.map(|_| ()));
    let mut changes = std::pin::pin!(futures::stream::select(service_events, slice_events));
    let mut retry_delay = Duration::from_secs(1);
    loop {
        let result = async {
            ensure_service(&services, &service).await?;
            ensure_slice(&slices, &slice).await
        }
        .await;
        let wait = match result {
            Ok(wrote) => {
                if wrote {
                    tracing::info!(slice = %format!("{NAMESPACE}/{slice_name}"), "published this node's cluster DNS endpoint");
                }
                retry_delay = Duration::from_secs(1);
                RESYNC_INTERVAL
            }
            Err(error) => {
                tracing::warn!(%error, delay = ?retry_delay, "cannot publish the cluster DNS Service or EndpointSlice; retrying");
                let delay = retry_delay;
                retry_delay = (retry_delay * 2).min(Duration::from_secs(30));
                delay
            }
        };
        tokio::select! {
            change = changes.next() => if change.is_none() {
                return Err(super::DnsError::WatchEnded);
            },
            () = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_is_kubeadms_kube_dns_with_a_local_policy() {
        let service = serde_json::to_value(desired_service(Ipv4Addr::new(10, 96, 0, 10))).unwrap();
        assert_eq!(
            service,
            serde_json::json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": "kube-dns",
                    "namespace": "kube-system",
                    "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}
                },
                "spec": {
                    "clusterIP": "10.96.0.10",
                    "internalTrafficPolicy": "Local",
                    "ports": [
                        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                        {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}
                    ]
                }
            })
        );
    }

    #[test]
    fn the_slice_is_one_ready_endpoint_on_this_node() {
        let slice = desired_slice("worker1", Ipv4Addr::new(192, 168, 56, 11), 53);
        let json = serde_json::to_value(&slice).unwrap();
        assert_eq!(json["metadata"]["name"], "kube-dns-worker1");
        assert_eq!(
            json["metadata"]["labels"],
            serde_json::json!({
                "kubernetes.io/service-name": "kube-dns",
                "endpointslice.kubernetes.io/managed-by": "nodeagent.kube-lite.io"
            })
        );
        assert_eq!(json["addressType"], "IPv4");
        assert_eq!(
            json["endpoints"],
            serde_json::json!([{
                "addresses": ["192.168.56.11"],
                "conditions": {"ready": true, "serving": true, "terminating": false},
                "nodeName": "worker1"
            }])
        );
        assert_eq!(
            json["ports"],
            serde_json::json!([
                {"name": "dns", "port": 53, "protocol": "UDP"},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP"}
            ])
        );
    }

    #[test]
    fn a_slice_differs_when_its_endpoint_or_ports_do() {
        let desired = desired_slice("worker1", Ipv4Addr::new(192, 168, 56, 11), 53);
        let mut current = desired.clone();
        current.metadata.resource_version = Some("7".into());
        current
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("extra".into(), "kept".into());
        assert!(slice_matches(&current, &desired));
        current.endpoints.as_mut().unwrap()[0].conditions = Some(EndpointConditions {
            ready: Some(false),
            ..Default::default()
        });
        assert!(!slice_matches(&current, &desired));
        let moved = desired_slice("worker1", Ipv4Addr::new(192, 168, 56, 11), 5353);
        assert!(!slice_matches(&moved, &desired));
    }
}
