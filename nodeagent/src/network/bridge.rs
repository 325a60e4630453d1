//! The node bridge `cni0`: the switch all of a node's Pods plug into.
//!
//! A Linux bridge is a software Ethernet switch. Each Pod's veth pair has its
//! host end attached to it as a port, so Pods on the same node talk at layer
//! 2 through it. The bridge also has an IP address, the first one of the
//! node's podCIDR (10.244.N.1/24): that makes it the Pods' default gateway,
//! and traffic to anything outside the Pod subnet is routed by the node.
//!
//! Two kernel switches make the rest of Kubernetes work:
//! - `net.ipv4.ip_forward = 1`: without it the node drops packets that are
//!   neither from nor for itself, i.e. all Pod traffic to other nodes.
//! - `net.bridge.bridge-nf-call-iptables = 1`: bridged frames (pod to pod on
//!   the same bridge) then pass the IP netfilter hooks, where kube-proxy's
//!   DNAT happens. Without it a Pod calling a ClusterIP whose chosen
//!   endpoint sits on the same bridge has its reply bridged straight back,
//!   un-NATed, and the connection hangs: "half the requests time out". It
//!   belongs to the `br_netfilter` module, built in on some kernels and not
//!   loaded by default on Ubuntu.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo};
use rtnetlink::{Handle, LinkBridge, LinkUnspec};

use super::{find_link, netlink_context, netlink_errno, NetworkError, Result};

/// Name of the node bridge, as the CNI bridge plugin calls it by default.
pub const BRIDGE_NAME: &str = "cni0";

/// Sysctl that makes the node forward packets between interfaces.
pub const IP_FORWARD_SYSCTL: &str = "/proc/sys/net/ipv4/ip_forward";

/// Sysctl of `br_netfilter`: bridged IPv4 traffic passes through netfilter.
pub const BRIDGE_NF_CALL_IPTABLES_SYSCTL: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";

/// What [`ensure_bridge`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeStatus {
    /// Interface index of the bridge.
    pub index: u32,
    /// Whether bridged traffic reaches the Service rules.
    pub bridge_netfilter: BridgeNetfilter,
}

/// State of `bridge-nf-call-iptables` after [`ensure_bridge_netfilter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BridgeNetfilter {
    /// The sysctl exists and is 1.
    Enabled,
    /// The sysctl appeared after `modprobe br_netfilter` and is now 1.
    EnabledAfterModprobe,
    /// Could not be enabled: same-node Pod to Service traffic will be
    /// unreliable. The reason says what failed.
    Unavailable { reason: String },
}

/// Ensures bridge `name` exists in the handle's namespace with address
/// `gateway` (and no other IPv4 address) and is up; also turns on IP
/// forwarding and bridge netfilter. Idempotent.
///
/// The sysctls are written from the calling thread, so call this on a
/// thread that is in the same namespace as `handle` (the nodeagent's main
/// runtime, or the thread of [`super::netns::run_in`]).
pub async fn ensure_bridge(handle: &Handle, name: &str, gateway: Ipv4Net) -> Result<BridgeStatus> {
    let link = match find_link(handle, name).await? {
        Some(link) => link,
        None => {
            let created = handle
                .link()
                .add(LinkBridge::new(name).build())
                .execute()
                .await;
            match created {
                Ok(()) => {}
                // Created concurrently: fine, we only want it to exist.
                Err(error) if netlink_errno(&error) == Some(nix::libc::EEXIST) => {}
                Err(source) => {
                    return Err(netlink_context(format!("creating bridge {name:?}"))(source))
                }
            }
            find_link(handle, name)
                .await?
                .ok_or_else(|| NetworkError::LinkNotFound(name.to_string()))?
        }
    };
    if !is_bridge(&link.attributes) {
        return Err(NetworkError::NotABridge(name.to_string()));
    }
    let index = link.header.index;
    ensure_only_address(handle, index, name, gateway).await?;
    if !link.header.flags.contains(LinkFlags::Up) {
        handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(netlink_context(format!("setting bridge {name:?} up")))?;
    }
    ensure_ip_forward()?;
    let bridge_netfilter = ensure_bridge_netfilter();
    if let BridgeNetfilter::Unavailable { reason } = &bridge_netfilter {
        tracing::warn!(%reason, "bridge netfilter is off: same-node Pod to Service traffic may time out");
    }
    Ok(BridgeStatus {
        index,
        bridge_netfilter,
    })
}

fn is_bridge(attributes: &[LinkAttribute]) -> bool {
    attributes.iter().any(|attribute| match attribute {
        LinkAttribute::LinkInfo(infos) => infos
            .iter()
            .any(|info| matches!(info, LinkInfo::Kind(InfoKind::Bridge))),
        _ => false,
    })
}

/// Makes `address` the only IPv4 address of link `index`: a node whose
/// podCIDR changed must not keep answering for the old gateway.
pub(crate) async fn ensure_only_address(
    handle: &Handle,
    index: u32,
    link_name: &str,
    address: Ipv4Net,
) -> Result<()> {
    let present = ipv4_addresses(handle, index)
        .await
        .map_err(netlink_context(format!(
            "listing addresses of {link_name:?}"
        )))?;
    for (other, message) in present.iter() {
        if *other != address {
            handle
                .address()
                .del(message.clone())
                .execute()
                .await
                .map_err(netlink_context(format!(
                    "removing stale address {other} from {link_name:?}"
                )))?;
        }
    }
    if !present.iter().any(|(existing, _)| *existing == address) {
        handle
            .address()
            .add(index, IpAddr::V4(address.addr()), address.prefix_len())
            .replace()
            .execute()
            .await
            .map_err(netlink_context(format!(
                "adding address {address} to {link_name:?}"
            )))?;
    }
    Ok(())
}

/// The IPv4 addresses (with prefix) of link `index`, with their messages
/// (needed to delete them).
pub(crate) async fn ipv4_addresses(
    handle: &Handle,
    index: u32,
) -> Result<Vec<(Ipv4Net, rtnetlink::packet_route::address::AddressMessage)>, rtnetlink::Error> {
    let messages: Vec<_> = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await?;
    Ok(messages
        .into_iter()
        .filter(|message| message.header.index == index)
        .filter_map(|message| {
            let ip = message
                .attributes
                .iter()
                .find_map(|attribute| match attribute {
                    AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
                    _ => None,
                })?;
            let net = Ipv4Net::new(ip, message.header.prefix_len).ok()?;
            Some((net, message))
        })
        .collect())
}

/// Sets `net.ipv4.ip_forward = 1` in the calling thread's namespace.
pub fn ensure_ip_forward() -> Result<()> {
    write_sysctl(Path::new(IP_FORWARD_SYSCTL), "1")
}

/// Turns on `bridge-nf-call-iptables` in the calling thread's namespace,
/// loading `br_netfilter` first if the sysctl does not exist. Never fails:
/// the Pod network works without it, only same-node Service traffic does
/// not, so the caller gets a clear status to report instead.
pub fn ensure_bridge_netfilter() -> BridgeNetfilter {
    let sysctl = Path::new(BRIDGE_NF_CALL_IPTABLES_SYSCTL);
    let mut loaded_module = false;
    if !sysctl.exists() {
        match std::process::Command::new("modprobe").arg("br_netfilter").output() {
            Ok(output) if output.status.success() => loaded_module = true,
            Ok(output) => {
                return BridgeNetfilter::Unavailable {
                    reason: format!(
                        "{BRIDGE_NF_CALL_IPTABLES_SYSCTL} is missing and `modprobe br_netfilter` failed ({}): {}",
                        output.status,
                        String::from_utf8_lossy(&output.stderr).trim()
                    ),
                }
            }
            Err(error) => {
                return BridgeNetfilter::Unavailable {
                    reason: format!(
                        "{BRIDGE_NF_CALL_IPTABLES_SYSCTL} is missing and `modprobe br_netfilter` could not run: {error}"
                    ),
                }
            }
        }
        if !sysctl.exists() {
            return BridgeNetfilter::Unavailable {
                reason: format!("{BRIDGE_NF_CALL_IPTABLES_SYSCTL} is still missing after `modprobe br_netfilter`"),
            };
        }
    }
    match write_sysctl(sysctl, "1") {
        Ok(()) if loaded_module => BridgeNetfilter::EnabledAfterModprobe,
        Ok(()) => BridgeNetfilter::Enabled,
        Err(error) => BridgeNetfilter::Unavailable {
            reason: error.to_string(),
        },
    }
}

/// Writes `value` to a sysctl file unless it already holds it. /proc/sys/net
/// shows the namespace of the thread that opens it, hence std::fs on the
/// calling thread.
fn write_sysctl(path: &Path, value: &str) -> Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|current| current.trim() == value) {
        return Ok(());
    }
    std::fs::write(path, value).map_err(|source| NetworkError::Io {
        action: format!("writing {value} to {}", path.display()),
        source,
    })
}

/// The first address of a podCIDR: the gateway, e.g. 10.244.1.1/24 for
/// 10.244.1.0/24.
pub fn gateway_of(pod_cidr: Ipv4Net) -> Ipv4Net {
    let first = Ipv4Addr::from(u32::from(pod_cidr.network()).saturating_add(1));
    Ipv4Net::new(first, pod_cidr.prefix_len()).expect("prefix length taken from a valid network")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_is_first_address_of_pod_cidr() {
        let cidr: Ipv4Net = "10.244.1.0/24".parse().unwrap();
        assert_eq!(
            gateway_of(cidr),
            "10.244.1.1/24".parse::<Ipv4Net>().unwrap()
        );
    }
}
