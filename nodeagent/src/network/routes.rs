//! Routes between nodes ("host-gw") and the route for the service CIDR.
//!
//! Each node owns one /24 of the cluster's Pod CIDR (its `spec.podCIDR`,
//! handed out by the controller). For Pods on different nodes to reach each
//! other without NAT or tunnels, every node needs one route per other node:
//!
//! ```text
//! ip route replace 10.244.2.0/24 via 192.168.56.12   # worker2's Pods
//! ```
//!
//! That is flannel's `host-gw` backend. It only works when all nodes share
//! one L2 network (the VirtualBox host-only network, the lab's `kl-lan0`),
//! because the next hop must be directly reachable. [`sync_node_routes`] is a
//! small reconcile loop: given the desired set (one entry per other node) it
//! adds what is missing, replaces routes whose node IP changed and deletes
//! routes into the cluster Pod range that no Node asks for any more.
//!
//! The service CIDR (10.96.0.0/12) needs a route too, though no interface
//! owns a ClusterIP. A packet the node itself sends (a process in the node
//! namespace, e.g. `curl <ClusterIP>`) is routed *before* it reaches
//! netfilter's nat OUTPUT hook, where kube-proxy's DNAT rewrites the
//! ClusterIP to a Pod IP; with no route the send fails right away with
//! "Network is unreachable" and never reaches the rules. Real nodes have a
//! default route that covers it; the lab's nodes deliberately have none, so
//! kube-lite adds `10.96.0.0/12 dev cni0`. `cni0` always exists and its
//! address (the Pod gateway) becomes the source, which every node can route
//! back to. After DNAT the kernel routes the packet again, to the real Pod.
//! Pods do not need it: they send everything to their gateway anyway.

use std::net::Ipv4Addr;

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteScope, RouteType,
};
use rtnetlink::{Handle, RouteMessageBuilder};

use super::{find_link, netlink_context, netlink_errno, NetworkError, Result};

/// One other node's Pods: its podCIDR, reached via its InternalIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeRoute {
    /// The node's `spec.podCIDR`, e.g. 10.244.2.0/24.
    pub pod_cidr: Ipv4Net,
    /// The node's InternalIP, e.g. 192.168.56.12.
    pub node_ip: Ipv4Addr,
}

/// What one [`sync_node_routes`] changed (destinations).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteSync {
    pub added: Vec<Ipv4Net>,
    pub replaced: Vec<Ipv4Net>,
    pub removed: Vec<Ipv4Net>,
}

impl RouteSync {
    /// Whether the sync changed nothing (the routes were already right).
    pub fn is_unchanged(&self) -> bool {
        self.added.is_empty() && self.replaced.is_empty() && self.removed.is_empty()
    }
}

/// The host-gw routes now in the main table: routes with a gateway whose
/// destination lies in `cluster_cidr`. The node's own podCIDR is a connected
/// route on `cni0` without a gateway, so it is never listed (nor deleted).
pub async fn list_node_routes(
    handle: &Handle,
    cluster_cidr: Ipv4Net,
) -> Result<Vec<(NodeRoute, RouteMessage)>> {
    let messages: Vec<RouteMessage> = handle
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute()
        .try_collect()
        .await
        .map_err(netlink_context("listing IPv4 routes"))?;
    Ok(messages
        .into_iter()
        .filter(|message| {
            message.header.table == RouteHeader::RT_TABLE_MAIN
                && message.header.kind == RouteType::Unicast
        })
        .filter_map(|message| {
            let mut destination = None;
            let mut gateway = None;
            for attribute in &message.attributes {
                match attribute {
                    RouteAttribute::Destination(RouteAddress::Inet(ip)) => destination = Some(*ip),
                    RouteAttribute::Gateway(RouteAddress::Inet(ip)) => gateway = Some(*ip),
                    _ => {}
                }
            }
            let pod_cidr =
                Ipv4Net::new(destination?, message.header.destination_prefix_length).ok()?;
            let route = NodeRoute {
                pod_cidr,
                node_ip: gateway?,
            };
            cluster_cidr.contains(&pod_cidr).then_some((route, message))
        })
        .collect())
}

/// Makes the host-gw routes into `cluster_cidr` exactly `desired`.
/// Running it again with the same input changes nothing.
pub async fn sync_node_routes(
    handle: &Handle,
    cluster_cidr: Ipv4Net,
    desired: &[NodeRoute],
) -> Result<RouteSync> {
    let current = list_node_routes(handle, cluster_cidr).await?;
    let mut sync = RouteSync::default();
    for want in desired {
        let existing = current
            .iter()
            .find(|(route, _)| route.pod_cidr == want.pod_cidr);
        match existing {
            Some((route, _)) if route.node_ip == want.node_ip => continue,
            Some(_) => sync.replaced.push(want.pod_cidr),
            None => sync.added.push(want.pod_cidr),
        }
        // `ip route replace <podCIDR> via <node IP>`: the kernel finds the
        // interface that reaches the node IP.
        handle
            .route()
            .add(
                RouteMessageBuilder::<Ipv4Addr>::new()
                    .destination_prefix(want.pod_cidr.network(), want.pod_cidr.prefix_len())
                    .gateway(want.node_ip)
                    .build(),
            )
            .replace()
            .execute()
            .await
            .map_err(netlink_context(format!(
                "routing {} via {}",
                want.pod_cidr, want.node_ip
            )))?;
    }
    for (route, message) in current {
        if desired.iter().any(|want| want.pod_cidr == route.pod_cidr) {
            continue;
        }
        match handle.route().del(message).execute().await {
            Ok(()) => sync.removed.push(route.pod_cidr),
            // ESRCH: removed meanwhile, which is what we wanted.
            Err(error) if netlink_errno(&error) == Some(nix::libc::ESRCH) => {}
            Err(source) => {
                return Err(netlink_context(format!(
                    "removing the route to {} via {}",
                    route.pod_cidr, route.node_ip
                ))(source))
            }
        }
    }
    Ok(sync)
}

/// `ip route replace <service_cidr> dev <bridge>`: lets the node's own
/// traffic to ClusterIPs reach the nat OUTPUT hook (see the module docs).
pub async fn ensure_service_route(
    handle: &Handle,
    bridge: &str,
    service_cidr: Ipv4Net,
) -> Result<()> {
    let bridge_link = find_link(handle, bridge)
        .await?
        .ok_or_else(|| NetworkError::LinkNotFound(bridge.to_string()))?;
    handle
        .route()
        .add(
            RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(service_cidr.network(), service_cidr.prefix_len())
                .output_interface(bridge_link.header.index)
                .scope(RouteScope::Link)
                .build(),
        )
        .replace()
        .execute()
        .await
        .map_err(netlink_context(format!(
            "routing the service CIDR {service_cidr} onto {bridge}"
        )))
}
