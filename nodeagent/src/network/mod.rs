//! The pod network: what the CNI `bridge` plugin (plus flannel's host-gw
//! backend) does for a kubelet.
//!
//! Kubernetes only states the rules: every Pod gets its own IP, and every Pod
//! can reach every other Pod, on any node, without NAT. How that happens is
//! left to a network plugin. kube-lite implements the classic, easiest to
//! read answer:
//!
//! ```text
//!   node 192.168.56.11 (podCIDR 10.244.1.0/24)        node 192.168.56.12
//!  +-----------------------------------------+       +------------------+
//!  | pod netns           pod netns           |       |                  |
//!  |  eth0 10.244.1.2     eth0 10.244.1.3    |       |  cni0 10.244.2.1 |
//!  |    |  (veth pair)      |                |       |    ...           |
//!  |  vethXXXXXXXX        vethYYYYYYYY       |       |                  |
//!  |    +------ cni0 10.244.1.1/24 ---+      |       |                  |
//!  |  route 10.244.2.0/24 via 192.168.56.12 -+-eth1--+-> eth1           |
//!  +-----------------------------------------+       +------------------+
//! ```
//!
//! - every Pod lives in its own network namespace ([`netns`]), which
//!   containerd makes and the CNI plugin ([`crate::cni`]) fills;
//! - a veth pair links it to the node's bridge `cni0`, whose address is the
//!   Pod's default gateway ([`bridge`], [`veth`]);
//! - the other nodes' Pod CIDRs are reached by plain routes via their node IPs
//!   (flannel "host-gw"), and the service CIDR gets a route on `cni0` so that
//!   traffic to ClusterIPs reaches kube-proxy's nftables rules ([`routes`]).
//!
//! [`PodNetwork`] is the node's side (the bridge, the routes), which the
//! agent keeps in line ([`crate::nodenet`]); [`veth`] is the Pod's side,
//! which the CNI plugin makes. Both work on the network namespace the
//! calling thread is in. Everything is idempotent: any step may be retried
//! after a crash or a restart.
//!
//! # Layout
//! - [`netns`]: named network namespaces like `ip netns`, and running
//!   netlink code inside one (setns on a dedicated thread).
//! - [`bridge`]: the node bridge `cni0`, IP forwarding and bridge netfilter.
//! - [`veth`]: the per-Pod veth pair, `eth0`, the Pod IP and default route.
//! - [`routes`]: host-gw routes to other nodes and the service CIDR route.

pub mod bridge;
pub mod netns;
pub mod routes;
pub mod veth;

use std::net::Ipv4Addr;
use std::path::PathBuf;

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::link::LinkMessage;
use rtnetlink::Handle;

pub use bridge::{BridgeNetfilter, BridgeStatus, BRIDGE_NAME};
pub use routes::{NodeRoute, RouteSync};

/// Errors of the pod network. Each names what was being done to which
/// object, so a failed Pod start can be reported as an event a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// A netlink request (link, address or route change) failed.
    #[error("{action}: {source}")]
    Netlink {
        action: String,
        #[source]
        source: rtnetlink::Error,
    },
    /// A system call (setns, unshare, mount) failed.
    #[error("{action}: {source}")]
    System {
        action: String,
        #[source]
        source: nix::Error,
    },
    /// A file operation (namespace file, sysctl) failed.
    #[error("{action}: {source}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
    /// A network namespace name that cannot be a file name in /run/netns.
    #[error(
        "invalid network namespace name {0:?}: must be 1-255 characters, no '/', not '.' or '..'"
    )]
    InvalidNamespaceName(String),
    /// A link we expected (the bridge, a veth) is missing.
    #[error("link {0:?} not found")]
    LinkNotFound(String),
    /// `cni0` exists but is something else than a bridge.
    #[error("link {0:?} exists but is not a bridge; remove it or choose another bridge name")]
    NotABridge(String),
    /// The thread that ran code inside a namespace panicked.
    #[error("the thread working inside network namespace {0:?} panicked")]
    NamespaceThreadPanicked(String),
}

/// Result alias of this module.
pub type Result<T, E = NetworkError> = std::result::Result<T, E>;

/// What a Pod's network looks like once set up: enough for the kubelet to
/// report `status.podIP` and for `exec`/processes to join the namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInterface {
    /// The Pod's network namespace file (`/run/netns/<name>` for the
    /// namespaces the agent names itself).
    pub netns: PathBuf,
    /// The Pod end's name inside the namespace: `eth0`.
    pub ifname: String,
    /// Host side of the veth pair, a port of `cni0`.
    pub host_veth: String,
    /// Address and prefix of the Pod's `eth0`, e.g. 10.244.1.2/24.
    pub ip: Ipv4Net,
    /// The Pod's default gateway: the bridge address.
    pub gateway: Ipv4Addr,
}

/// The node's side of the pod network, driven through a netlink handle
/// opened in the node's network namespace: the bridge and the routes.
#[derive(Debug, Clone)]
pub struct PodNetwork {
    handle: Handle,
    bridge: String,
}

impl PodNetwork {
    /// A pod network for node `node_name` using an existing netlink handle
    /// (which must belong to the node's namespace).
    pub fn new(handle: Handle) -> Self {
        PodNetwork {
            handle,
            bridge: BRIDGE_NAME.to_string(),
        }
    }

    /// Opens a netlink connection in the namespace of the calling thread and
    /// drives it on the current tokio runtime. Must be called inside a tokio
    /// runtime; the nodeagent runs inside the node's namespace, so this is
    /// the node's network.
    pub fn connect() -> Result<Self> {
        let (connection, handle, _) =
            rtnetlink::new_connection().map_err(|source| NetworkError::Io {
                action: "opening a netlink socket".into(),
                source,
            })?;
        tokio::spawn(connection);
        Ok(Self::new(handle))
    }

    /// The netlink handle of the node namespace.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Makes sure `cni0` exists with `gateway` (e.g. 10.244.1.1/24, the first
    /// address of the node's podCIDR) and is up, that the node forwards IPv4
    /// and that bridged traffic passes through netfilter. Idempotent.
    pub async fn ensure_bridge(&self, gateway: Ipv4Net) -> Result<BridgeStatus> {
        bridge::ensure_bridge(&self.handle, &self.bridge, gateway).await
    }

    /// The index of the bridge `cni0`, once it exists: where a Pod's veth
    /// is plugged ([`veth::setup_pod_interface`]).
    pub async fn bridge_index(&self) -> Result<u32> {
        find_link(&self.handle, &self.bridge)
            .await?
            .map(|link| link.header.index)
            .ok_or_else(|| NetworkError::LinkNotFound(self.bridge.clone()))
    }

    /// Brings the host-gw routes in line with `desired` (one per other
    /// node); routes into `cluster_cidr` (e.g. 10.244.0.0/16) that are no
    /// longer desired are removed.
    pub async fn sync_routes(
        &self,
        cluster_cidr: Ipv4Net,
        desired: &[NodeRoute],
    ) -> Result<RouteSync> {
        routes::sync_node_routes(&self.handle, cluster_cidr, desired).await
    }

    /// Routes `service_cidr` (10.96.0.0/12) onto `cni0`; see
    /// [`routes::ensure_service_route`] for why.
    pub async fn ensure_service_route(&self, service_cidr: Ipv4Net) -> Result<()> {
        routes::ensure_service_route(&self.handle, &self.bridge, service_cidr).await
    }
}

/// Stable short hash of a pod key: 8 hex digits of 32-bit FNV-1a.
///
/// The names derived from it must be the same after a nodeagent upgrade
/// (a restarted nodeagent adopts running Pods by name), so this is a fixed,
/// documented function and not `std`'s `DefaultHasher`, whose algorithm may
/// change between Rust releases.
pub fn pod_hash(pod_key: &str) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in pod_key.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("{hash:08x}")
}

/// The link called `name` in the handle's namespace, if any.
pub(crate) async fn find_link(handle: &Handle, name: &str) -> Result<Option<LinkMessage>> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(link) => Ok(link),
        Err(error) if netlink_errno(&error) == Some(nix::libc::ENODEV) => Ok(None),
        Err(source) => Err(NetworkError::Netlink {
            action: format!("looking up link {name:?}"),
            source,
        }),
    }
}

/// The errno of a netlink error answer (positive, like `libc::EEXIST`).
pub(crate) fn netlink_errno(error: &rtnetlink::Error) -> Option<i32> {
    match error {
        rtnetlink::Error::NetlinkError(message) => message.code.map(|code| -code.get()),
        _ => None,
    }
}

/// Wraps a netlink error with what we were doing.
pub(crate) fn netlink_context(
    action: impl Into<String>,
) -> impl FnOnce(rtnetlink::Error) -> NetworkError {
    let action = action.into();
    move |source| NetworkError::Netlink { action, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_hash_is_stable_and_short() {
        // FNV-1a test vectors: the empty string and "a".
        assert_eq!(pod_hash(""), "811c9dc5");
        assert_eq!(pod_hash("a"), "e40c292c");
        assert_eq!(veth::host_veth_name(&pod_hash("some-uid")).len(), 12);
    }
}
