//! The node's side of the pod network: what flannel's daemon (`flanneld`
//! with the host-gw backend) and the CNI bridge plugin keep true on every
//! node, whether or not it runs any Pod.
//!
//! [`network`](crate::network) knows *how* to build a bridge or a route;
//! this module decides *when*, from what the API says:
//!
//! - **After the first list of the node's Pods** ([`crate::pods`]), Pod
//!   network namespaces of this node that belong to no listed Pod are
//!   removed, with any process still in them: leftovers of a crash or of
//!   Pods deleted while the agent was down. Only this node's (their names
//!   carry the node name): in the lab every node shares /run/netns.
//! - **When the controller gives the node its pod CIDR** (`spec.podCIDR`,
//!   e.g. 10.244.1.0/24), the bridge `cni0` gets the first address of the
//!   block (10.244.1.1/24, every local Pod's gateway), and the service CIDR
//!   (10.96.0.0/12) is routed onto `cni0` so that ClusterIP traffic sent by
//!   the node itself reaches kube-proxy's rules.
//! - **For every other Node**, a route sends its pod CIDR to its InternalIP
//!   (`ip route replace 10.244.2.0/24 via 192.168.56.12`). The agent
//!   watches all Nodes (a kube-rs reflector: a local cache kept current by
//!   a watch) and, after every change, makes the routes exactly those the
//!   cache asks for. A Node that has no pod CIDR or no InternalIP yet gets
//!   no route; a deleted Node loses its route.
//!
//! Nothing here may stop the node from being a node: every failure is
//! logged and retried with a growing delay, while registration and
//! heartbeats go on.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use futures::StreamExt;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::Api;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::ipam::PodCidr;
use crate::network::{NodeRoute, PodNetwork};

/// The cluster's Pod range (`--cluster-cidr` of the controller): host-gw
/// routes into it that no Node asks for are removed.
pub const DEFAULT_CLUSTER_CIDR: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(10, 244, 0, 0), 16);

/// The Service range (`--service-cluster-ip-range` of the apiserver).
pub const DEFAULT_SERVICE_CIDR: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(10, 96, 0, 0), 12);

/// Routes are checked against the API this often even when no Node
/// changed: repairs a route someone deleted by hand.
pub const ROUTE_RESYNC_INTERVAL: Duration = Duration::from_secs(60);

/// Why the node network loop stopped (it only stops when the rest of the
/// agent does).
#[derive(Debug, thiserror::Error)]
pub enum NodeNetworkError {
    /// The node status task, which passes on the pod CIDR, ended.
    #[error("the node status task ended: no pod CIDR will come")]
    PodCidrGone,
    /// The watch of the Nodes ended (a kube-rs watcher never does by itself).
    #[error("the watch of the Nodes ended")]
    NodeWatchEnded,
}

/// What the node network needs to know.
#[derive(Debug, Clone)]
pub struct NodeNetworkConfig {
    /// This Node's name: it gets no route to itself, and names its Pod
    /// namespaces.
    pub node_name: String,
    /// The cluster's Pod range, e.g. 10.244.0.0/16.
    pub cluster_cidr: Ipv4Net,
    /// The Service range, e.g. 10.96.0.0/12.
    pub service_cidr: Ipv4Net,
    /// Where the CNI conflist goes ([`crate::cni::config::write_conflist`]).
    pub cni_conf_dir: std::path::PathBuf,
    /// The CNI plugin's IPAM `dataDir`.
    pub cni_data_dir: std::path::PathBuf,
}

/// A retry delay that doubles after every failure, from 1 s up to 30 s,
/// and starts over after a success.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(30);

    fn new() -> Backoff {
        Backoff { next: Self::FIRST }
    }

    /// The delay before the next attempt.
    fn failed(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        delay
    }

    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// Runs the node's side of the pod network until the agent stops. Must run
/// in the node's network namespace (the agent's own).
pub async fn run(
    client: kube::Client,
    config: NodeNetworkConfig,
    pod_cidr: watch::Receiver<Option<PodCidr>>,
) -> Result<(), NodeNetworkError> {
    let network = connect().await;
    tokio::try_join!(
        follow_bridge(&network, &config, pod_cidr),
        follow_node_routes(&network, &config, client),
    )?;
    Ok(())
}

/// Opens the netlink connection, retrying until it works.
async fn connect() -> PodNetwork {
    let mut backoff = Backoff::new();
    loop {
        match PodNetwork::connect() {
            Ok(network) => return network,
            Err(error) => {
                let delay = backoff.failed();
                tracing::warn!(%error, ?delay, "cannot reach the node's network; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Waits for the node's pod CIDR, then sets up `cni0` with its gateway,
/// the service route and the CNI conflist, retrying until all are in place. Again whenever
/// the pod CIDR changes (the Node was deleted and registered again).
async fn follow_bridge(
    network: &PodNetwork,
    config: &NodeNetworkConfig,
    mut pod_cidr: watch::Receiver<Option<PodCidr>>,
) -> Result<(), NodeNetworkError> {
    loop {
        let cidr = *pod_cidr
            .wait_for(Option::is_some)
            .await
            .map_err(|_| NodeNetworkError::PodCidrGone)?;
        let cidr = cidr.expect("waited for Some");
        let gateway = Ipv4Net::new(cidr.gateway(), cidr.net().prefix_len())
            .expect("the prefix of a valid CIDR");
        let mut backoff = Backoff::new();
        loop {
            let result = async {
                network.ensure_bridge(gateway).await?;
                network.ensure_service_route(config.service_cidr).await?;
                // containerd can give Pods addresses from now on.
                let written =
                    crate::cni::config::write_conflist(&config.cni_conf_dir, cidr, &config.cni_data_dir)
                        .map_err(|source| crate::network::NetworkError::Io {
                            action: format!(
                                "writing the CNI conflist into {}",
                                config.cni_conf_dir.display()
                            ),
                            source,
                        })?;
                if written {
                    tracing::info!(dir = %config.cni_conf_dir.display(), %cidr, "wrote the CNI conflist");
                }
                Ok::<(), crate::network::NetworkError>(())
            }
            .await;
            match result {
                Ok(()) => {
                    tracing::info!(
                        %gateway,
                        service_cidr = %config.service_cidr,
                        "bridge cni0 and service route ready"
                    );
                    break;
                }
                Err(error) => {
                    let delay = backoff.failed();
                    tracing::warn!(%error, ?delay, "cannot set up cni0; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        // A new CIDR while retrying: start over with it.
                        changed = pod_cidr.changed() => {
                            changed.map_err(|_| NodeNetworkError::PodCidrGone)?;
                            break;
                        }
                    }
                }
            }
        }
        pod_cidr
            .changed()
            .await
            .map_err(|_| NodeNetworkError::PodCidrGone)?;
    }
}

/// The host-gw routes the Nodes ask for: one per other Node with a pod
/// CIDR and an InternalIP. Nodes lacking either (just registered, or with
/// an IPv6 block) are skipped.
pub fn desired_node_routes<'a>(
    nodes: impl IntoIterator<Item = &'a Node>,
    own_name: &str,
) -> Vec<NodeRoute> {
    let routes: BTreeSet<NodeRoute> = nodes
        .into_iter()
        .filter(|node| node.metadata.name.as_deref() != Some(own_name))
        .filter_map(|node| {
            let pod_cidr = crate::node::pod_cidr(node)?.parse::<Ipv4Net>().ok()?;
            let node_ip = node
                .status
                .as_ref()?
                .addresses
                .as_ref()?
                .iter()
                .find(|address| address.type_ == "InternalIP")?
                .address
                .parse::<Ipv4Addr>()
                .ok()?;
            Some(NodeRoute {
                pod_cidr: pod_cidr.trunc(),
                node_ip,
            })
        })
        .collect();
    routes.into_iter().collect()
}

/// Keeps the host-gw routes equal to [`desired_node_routes`] of the
/// reflector's cache: after every change of a Node, after a failure (with
/// back-off) and every [`ROUTE_RESYNC_INTERVAL`].
async fn follow_node_routes(
    network: &PodNetwork,
    config: &NodeNetworkConfig,
    client: kube::Client,
) -> Result<(), NodeNetworkError> {
    let (cache, writer) = reflector::store::<Node>();
    let events = reflector(
        writer,
        watcher(Api::<Node>::all(client), watcher::Config::default()),
    )
    .default_backoff();
    let mut events = std::pin::pin!(events);
    // The cache is complete only once the first list is done: before that
    // an empty cache would delete every route.
    let mut listed = false;
    let mut synced: Option<Vec<NodeRoute>> = None;
    let mut next_sync = Instant::now() + ROUTE_RESYNC_INTERVAL;
    let mut backoff = Backoff::new();
    loop {
        let due = tokio::select! {
            event = events.next() => match event {
                None => return Err(NodeNetworkError::NodeWatchEnded),
                Some(Err(error)) => {
                    tracing::warn!(%error, "watching the Nodes (retrying)");
                    false
                }
                Some(Ok(watcher::Event::Init | watcher::Event::InitApply(_))) => false,
                Some(Ok(_)) => {
                    listed = true;
                    false
                }
            },
            () = tokio::time::sleep_until(next_sync), if listed => true,
        };
        if !listed {
            continue;
        }
        let nodes = cache.state();
        let desired =
            desired_node_routes(nodes.iter().map(|node| node.as_ref()), &config.node_name);
        if !due && synced.as_ref() == Some(&desired) {
            continue;
        }
        match network.sync_routes(config.cluster_cidr, &desired).await {
            Ok(change) => {
                if !change.is_unchanged() {
                    tracing::info!(
                        added = ?change.added,
                        replaced = ?change.replaced,
                        removed = ?change.removed,
                        "host-gw routes to the other nodes updated"
                    );
                }
                synced = Some(desired);
                backoff.reset();
                next_sync = Instant::now() + ROUTE_RESYNC_INTERVAL;
            }
            Err(error) => {
                let delay = backoff.failed();
                tracing::warn!(%error, ?delay, "cannot sync the routes to the other nodes; retrying");
                synced = None;
                next_sync = Instant::now() + delay;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeAddress, NodeSpec, NodeStatus};
    use kube::api::ObjectMeta;

    fn node(name: &str, pod_cidr: Option<&str>, ip: Option<&str>) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                pod_cidr: pod_cidr.map(Into::into),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                addresses: ip.map(|ip| {
                    vec![
                        NodeAddress {
                            type_: "Hostname".into(),
                            address: name.into(),
                        },
                        NodeAddress {
                            type_: "InternalIP".into(),
                            address: ip.into(),
                        },
                    ]
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn routes_go_to_every_other_complete_node() {
        let nodes = [
            node("me", Some("10.244.0.0/24"), Some("192.168.56.10")),
            node("b", Some("10.244.2.0/24"), Some("192.168.56.12")),
            node("a", Some("10.244.1.0/24"), Some("192.168.56.11")),
            node("no-cidr", None, Some("192.168.56.13")),
            node("no-ip", Some("10.244.4.0/24"), None),
            node("v6", Some("fd00::/64"), Some("192.168.56.15")),
        ];
        let routes = desired_node_routes(&nodes, "me");
        let expected: Vec<NodeRoute> = [
            ("10.244.1.0/24", [192, 168, 56, 11]),
            ("10.244.2.0/24", [192, 168, 56, 12]),
        ]
        .into_iter()
        .map(|(cidr, ip)| NodeRoute {
            pod_cidr: cidr.parse().unwrap(),
            node_ip: Ipv4Addr::from(ip),
        })
        .collect();
        assert_eq!(routes, expected);
    }

    #[test]
    fn backoff_doubles_up_to_a_limit_and_resets() {
        let mut backoff = Backoff::new();
        let delays: Vec<u64> = (0..7).map(|_| backoff.failed().as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        backoff.reset();
        assert_eq!(backoff.failed(), Duration::from_secs(1));
    }
}
