//! The veth pair: a Pod's network cable.
//!
//! A veth pair is two Ethernet devices joined back to back: a frame sent
//! into one comes out of the other. The CNI bridge plugin creates one per
//! Pod, leaves one end on the node as a port of `cni0` (`vethXXXXXXXX`) and
//! moves the other into the Pod's namespace, where it is renamed `eth0` and
//! gets the Pod's IP. Inside the Pod, `lo` is brought up (containers of a
//! Pod talk over localhost) and the default route points at the bridge
//! address. Deleting either end deletes the pair, so teardown only needs to
//! remove the host end.
//!
//! Hairpin mode is turned on on the bridge port. A bridge normally never
//! sends a frame back out of the port it came in on; but a Pod calling its
//! own Service may be DNATed to itself, and that reply must go back out of
//! the same port. Without hairpin those requests time out.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::Path;

use ipnet::Ipv4Net;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags};
use rtnetlink::{Handle, LinkBridgePort, LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::bridge::ensure_only_address;
use super::{find_link, netlink_context, netlink_errno, netns, NetworkError, PodInterface, Result};

/// Name of the Pod's interface inside its namespace, as the kubelet asks
/// for it (`CNI_IFNAME`).
pub const POD_INTERFACE: &str = "eth0";

/// Host-side veth name for a pod hash: `veth` + 8 hex digits.
pub fn host_veth_name(pod_hash: &str) -> String {
    format!("veth{pod_hash}")
}

/// Temporary name of the Pod end while it is still in the node namespace
/// (it cannot be called `eth0` there: the node may have one).
fn pod_end_temporary_name(host_veth: &str) -> String {
    format!("c{}", host_veth.trim_start_matches('v'))
}

/// Creates (or completes) the network of one Pod, whose namespace
/// `pod.netns` exists. Idempotent: an existing
/// pair is kept if its Pod end is in place; a half-made one (a crash between
/// steps) is removed and made again.
pub async fn setup_pod_interface(
    handle: &Handle,
    bridge_index: u32,
    pod: &PodInterface,
) -> Result<()> {
    let pod_end = pod_end_temporary_name(&pod.host_veth);
    let mut host = find_link(handle, &pod.host_veth).await?;
    if host.is_some() && !pod_end_in_place(&pod.netns, &pod.ifname).await? {
        delete_link(handle, &pod.host_veth).await?;
        host = None;
    }
    let host_index = match host {
        Some(link) => link.header.index,
        None => create_pair(handle, &pod.host_veth, &pod_end, &pod.netns).await?,
    };
    handle
        .link()
        .set(
            LinkUnspec::new_with_index(host_index)
                .controller(bridge_index)
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(netlink_context(format!(
            "attaching {} to the bridge",
            pod.host_veth
        )))?;
    handle
        .link()
        .set_port(LinkBridgePort::new(host_index).hairpin(true).build())
        .execute()
        .await
        .map_err(netlink_context(format!(
            "turning on hairpin mode on {}",
            pod.host_veth
        )))?;

    let (ip, gateway, ifname) = (pod.ip, pod.gateway, pod.ifname.clone());
    let netns_name = pod.netns.display().to_string();
    netns::run_in_path(&pod.netns, move |pod_handle| async move {
        configure_pod_end(&pod_handle, &pod_end, &ifname, ip, gateway)
            .await
            .map_err(|error| in_namespace(&netns_name, error))
    })
    .await?
}

fn in_namespace(netns_name: &str, error: NetworkError) -> NetworkError {
    match error {
        NetworkError::Netlink { action, source } => NetworkError::Netlink {
            action: format!("in namespace {netns_name}: {action}"),
            source,
        },
        other => other,
    }
}

async fn pod_end_in_place(netns_file: &Path, ifname: &str) -> Result<bool> {
    let ifname = ifname.to_string();
    netns::run_in_path(netns_file, |pod_handle| async move {
        find_link(&pod_handle, &ifname)
            .await
            .map(|link| link.is_some())
    })
    .await?
}

/// Creates the pair in the node namespace and moves the Pod end into the
/// Pod's namespace. Returns the host end's index.
async fn create_pair(
    handle: &Handle,
    host_veth: &str,
    pod_end: &str,
    netns_file: &Path,
) -> Result<u32> {
    handle
        .link()
        .add(LinkVeth::new(host_veth, pod_end).build())
        .execute()
        .await
        .map_err(netlink_context(format!(
            "creating veth pair {host_veth}/{pod_end}"
        )))?;
    let pod_end_link = find_link(handle, pod_end)
        .await?
        .ok_or_else(|| NetworkError::LinkNotFound(pod_end.to_string()))?;
    let namespace = netns::open_path(netns_file)?;
    handle
        .link()
        .set(
            LinkUnspec::new_with_index(pod_end_link.header.index)
                .setns_by_fd(namespace.as_raw_fd())
                .build(),
        )
        .execute()
        .await
        .map_err(netlink_context(format!(
            "moving {pod_end} into namespace {}",
            netns_file.display()
        )))?;
    drop(namespace);
    let host = find_link(handle, host_veth)
        .await?
        .ok_or_else(|| NetworkError::LinkNotFound(host_veth.to_string()))?;
    Ok(host.header.index)
}

/// Inside the Pod namespace: `eth0` (`ifname`) named, addressed and up,
/// `lo` up, default route via the gateway.
async fn configure_pod_end(
    handle: &Handle,
    pod_end: &str,
    ifname: &str,
    ip: Ipv4Net,
    gateway: Ipv4Addr,
) -> Result<()> {
    if let Some(lo) = find_link(handle, "lo").await? {
        set_up(handle, lo.header.index, "lo").await?;
    }
    let eth0 = match find_link(handle, ifname).await? {
        Some(link) => link,
        None => {
            let link = find_link(handle, pod_end)
                .await?
                .ok_or_else(|| NetworkError::LinkNotFound(pod_end.to_string()))?;
            // A link can only be renamed while down; a fresh veth is down.
            handle
                .link()
                .set(
                    LinkUnspec::new_with_index(link.header.index)
                        .name(ifname)
                        .build(),
                )
                .execute()
                .await
                .map_err(netlink_context(format!("renaming {pod_end} to {ifname}")))?;
            find_link(handle, ifname)
                .await?
                .ok_or_else(|| NetworkError::LinkNotFound(ifname.to_string()))?
        }
    };
    let index = eth0.header.index;
    ensure_only_address(handle, index, ifname, ip).await?;
    if !eth0.header.flags.contains(LinkFlags::Up) {
        set_up(handle, index, ifname).await?;
    }
    // `ip route replace default via <gateway> dev eth0`
    handle
        .route()
        .add(
            RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(Ipv4Addr::UNSPECIFIED, 0)
                .gateway(gateway)
                .output_interface(index)
                .build(),
        )
        .replace()
        .execute()
        .await
        .map_err(netlink_context(format!(
            "setting the default route via {gateway}"
        )))
}

async fn set_up(handle: &Handle, index: u32, name: &str) -> Result<()> {
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(netlink_context(format!("setting {name} up")))
}

/// Deletes link `name` if it exists.
async fn delete_link(handle: &Handle, name: &str) -> Result<()> {
    let Some(link) = find_link(handle, name).await? else {
        return Ok(());
    };
    match handle.link().del(link.header.index).execute().await {
        Ok(()) => Ok(()),
        Err(error) if netlink_errno(&error) == Some(nix::libc::ENODEV) => Ok(()),
        Err(source) => Err(netlink_context(format!("deleting {name}"))(source)),
    }
}

/// What a Pod's interface looks like from the node, for a CNI result or
/// CHECK: MAC addresses and the Pod end's IPv4 addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInterfaceState {
    /// The host end's MAC address, if it exists.
    pub host_mac: Option<String>,
    /// The host end's bridge (its `master`) index, if it is a port.
    pub host_controller: Option<u32>,
    /// The Pod end's MAC, if the Pod end exists.
    pub pod_mac: Option<String>,
    /// The Pod end's IPv4 addresses.
    pub pod_addresses: Vec<Ipv4Net>,
}

/// Reads the state of a Pod's interface; what is missing is `None`/empty.
pub async fn inspect_pod_interface(
    handle: &Handle,
    pod: &PodInterface,
) -> Result<PodInterfaceState> {
    let host = find_link(handle, &pod.host_veth).await?;
    let host_mac = host.as_ref().and_then(link_mac);
    let host_controller = host.as_ref().and_then(|link| {
        link.attributes
            .iter()
            .find_map(|attribute| match attribute {
                LinkAttribute::Controller(index) => Some(*index),
                _ => None,
            })
    });
    let ifname = pod.ifname.clone();
    let (pod_mac, pod_addresses) = netns::run_in_path(&pod.netns, move |pod_handle| async move {
        let Some(link) = find_link(&pod_handle, &ifname).await? else {
            return Ok((None, Vec::new()));
        };
        let addresses = super::bridge::ipv4_addresses(&pod_handle, link.header.index)
            .await
            .map_err(netlink_context(format!("listing addresses of {ifname:?}")))?;
        Ok::<_, NetworkError>((
            link_mac(&link),
            addresses.into_iter().map(|(address, _)| address).collect(),
        ))
    })
    .await??;
    Ok(PodInterfaceState {
        host_mac,
        host_controller,
        pod_mac,
        pod_addresses,
    })
}

/// A link's hardware address as `aa:bb:cc:dd:ee:ff`.
pub fn link_mac(link: &rtnetlink::packet_route::link::LinkMessage) -> Option<String> {
    link.attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::Address(bytes) => Some(
                bytes
                    .iter()
                    .map(|byte| format!("{byte:02x}"))
                    .collect::<Vec<_>>()
                    .join(":"),
            ),
            _ => None,
        })
}

/// Removes a Pod's interface but not its namespace (the runtime owns a
/// namespace it made): the host end if it is there, else the Pod end
/// inside `pod.netns` when that namespace still exists. Deleting either
/// end deletes the pair. What is already gone is skipped.
pub async fn remove_pod_interface(handle: &Handle, pod: &PodInterface) -> Result<()> {
    if find_link(handle, &pod.host_veth).await?.is_some() {
        return delete_link(handle, &pod.host_veth).await;
    }
    if netns::open_path(&pod.netns).is_err() {
        return Ok(());
    }
    let ifname = pod.ifname.clone();
    netns::run_in_path(&pod.netns, move |pod_handle| async move {
        delete_link(&pod_handle, &ifname).await
    })
    .await?
}

/// Deletes the host end of a veth pair (and so the pair) if it exists.
pub async fn remove_host_end(handle: &Handle, host_veth: &str) -> Result<()> {
    delete_link(handle, host_veth).await
}
