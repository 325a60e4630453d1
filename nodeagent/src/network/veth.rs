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

use ipnet::Ipv4Net;
use rtnetlink::packet_route::link::LinkFlags;
use rtnetlink::{Handle, LinkBridgePort, LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::bridge::ensure_only_address;
use super::{find_link, netlink_context, netlink_errno, netns, NetworkError, PodInterface, Result};

/// Name of the Pod's interface inside its namespace, as Kubernetes sets it.
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

/// Creates (or completes) the network of one Pod. Idempotent: an existing
/// pair is kept if its Pod end is in place; a half-made one (a crash between
/// steps) is removed and made again.
pub async fn setup_pod_interface(
    handle: &Handle,
    bridge_index: u32,
    pod: &PodInterface,
) -> Result<()> {
    netns::create(&pod.netns)?;
    let pod_end = pod_end_temporary_name(&pod.host_veth);
    let mut host = find_link(handle, &pod.host_veth).await?;
    if host.is_some() && !pod_end_in_place(&pod.netns).await? {
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

    let (ip, gateway, netns_name) = (pod.ip, pod.gateway, pod.netns.clone());
    netns::run_in(&pod.netns, move |pod_handle| async move {
        configure_pod_end(&pod_handle, &pod_end, ip, gateway)
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

async fn pod_end_in_place(netns_name: &str) -> Result<bool> {
    netns::run_in(netns_name, |pod_handle| async move {
        find_link(&pod_handle, POD_INTERFACE)
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
    netns_name: &str,
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
    let namespace = netns::open(netns_name)?;
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
            "moving {pod_end} into namespace {netns_name}"
        )))?;
    drop(namespace);
    let host = find_link(handle, host_veth)
        .await?
        .ok_or_else(|| NetworkError::LinkNotFound(host_veth.to_string()))?;
    Ok(host.header.index)
}

/// Inside the Pod namespace: `eth0` named, addressed and up, `lo` up,
/// default route via the gateway.
async fn configure_pod_end(
    handle: &Handle,
    pod_end: &str,
    ip: Ipv4Net,
    gateway: Ipv4Addr,
) -> Result<()> {
    if let Some(lo) = find_link(handle, "lo").await? {
        set_up(handle, lo.header.index, "lo").await?;
    }
    let eth0 = match find_link(handle, POD_INTERFACE).await? {
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
                        .name(POD_INTERFACE)
                        .build(),
                )
                .execute()
                .await
                .map_err(netlink_context(format!(
                    "renaming {pod_end} to {POD_INTERFACE}"
                )))?;
            find_link(handle, POD_INTERFACE)
                .await?
                .ok_or_else(|| NetworkError::LinkNotFound(POD_INTERFACE.to_string()))?
        }
    };
    let index = eth0.header.index;
    ensure_only_address(handle, index, POD_INTERFACE, ip).await?;
    if !eth0.header.flags.contains(LinkFlags::Up) {
        set_up(handle, index, POD_INTERFACE).await?;
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

/// Removes a Pod's network: the host end of its veth pair (the Pod end goes
/// with it) and its namespace. What is already gone is skipped.
pub async fn teardown_pod_interface(
    handle: &Handle,
    netns_name: &str,
    host_veth: Option<&str>,
) -> Result<()> {
    if let Some(host_veth) = host_veth {
        delete_link(handle, host_veth).await?;
    }
    netns::delete(netns_name)
}
