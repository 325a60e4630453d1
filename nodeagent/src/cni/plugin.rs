//! The plugin's commands: ADD, DEL, CHECK, STATUS and GC on the node's
//! bridge network.
//!
//! Every command runs in the network namespace the runtime runs it in:
//! the node's. The Pod's namespace is only entered through the file
//! `CNI_NETNS` names.
//!
//! An attachment (a container's interface) owns one address, recorded in
//! the IPAM directory under the key `<containerID>/<ifname>`, and one
//! veth pair whose host end is named from a hash of that key: DEL, CHECK
//! and GC find both again from the key alone, without any other state.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use rtnetlink::Handle;

use super::config::NetConf;
use super::spec::{AddResult, Dns, Environment, Interface, IpConfig, Route};
use super::CniError;
use crate::ipam::{DirLock, Ipam, PodCidr};
use crate::network::{bridge, pod_hash, veth, PodInterface};

/// The IPAM key of an attachment.
pub fn attachment_key(container_id: &str, ifname: &str) -> String {
    format!("{container_id}/{ifname}")
}

/// The host end's name of an attachment's veth pair.
pub fn host_veth_name(container_id: &str, ifname: &str) -> String {
    veth::host_veth_name(&pod_hash(&attachment_key(container_id, ifname)))
}

fn interface(
    env: &Environment,
    netns: &std::path::Path,
    ip: Ipv4Net,
    gateway: Ipv4Addr,
) -> PodInterface {
    PodInterface {
        netns: netns.to_path_buf(),
        ifname: env.ifname.clone(),
        host_veth: host_veth_name(&env.container_id, &env.ifname),
        ip,
        gateway,
    }
}

/// ADD: an address from the pod CIDR, the bridge (with the gateway
/// address), a veth pair into it with hairpin on, the Pod end renamed to
/// `CNI_IFNAME` with the address and a default route. Asking twice for
/// the same attachment gives the same address. When a step fails the
/// address is given back, so a retried ADD starts clean.
pub async fn add(
    handle: &Handle,
    env: &Environment,
    conf: &NetConf,
    cidr: PodCidr,
) -> Result<AddResult, CniError> {
    let netns = env.netns.as_deref().expect("ADD has CNI_NETNS");
    crate::network::netns::open_path(netns).map_err(|error| {
        CniError::InvalidEnvironment(format!("CNI_NETNS {}: {error}", netns.display()))
    })?;
    let key = attachment_key(&env.container_id, &env.ifname);
    let address = {
        let _lock = DirLock::acquire(&conf.ipam_dir())?;
        Ipam::open(&conf.ipam_dir(), cidr)?.allocate(&key)?
    };
    let gateway = bridge::gateway_of(cidr.net());
    let ip = Ipv4Net::new(address, cidr.net().prefix_len()).expect("the CIDR's prefix");
    let pod = interface(env, netns, ip, gateway.addr());
    let made = async {
        let bridge = bridge::ensure_bridge(handle, &conf.bridge, gateway).await?;
        veth::setup_pod_interface(handle, bridge.index, &pod).await?;
        veth::inspect_pod_interface(handle, &pod).await
    }
    .await;
    let state = match made {
        Ok(state) => state,
        Err(error) => {
            let _lock = DirLock::acquire(&conf.ipam_dir())?;
            Ipam::open(&conf.ipam_dir(), cidr)?.release(&key)?;
            return Err(error.into());
        }
    };
    let bridge_mac = crate::network::find_link(handle, &conf.bridge)
        .await?
        .as_ref()
        .and_then(veth::link_mac);
    let before_1_0 = !super::spec::at_least(&conf.cni_version, "1.0.0");
    Ok(AddResult {
        cni_version: conf.cni_version.clone(),
        interfaces: vec![
            Interface {
                name: conf.bridge.clone(),
                mac: bridge_mac,
                sandbox: None,
            },
            Interface {
                name: pod.host_veth.clone(),
                mac: state.host_mac,
                sandbox: None,
            },
            Interface {
                name: pod.ifname.clone(),
                mac: state.pod_mac,
                sandbox: Some(netns.display().to_string()),
            },
        ],
        ips: vec![IpConfig {
            version: before_1_0.then(|| "4".to_string()),
            address: ip.to_string(),
            gateway: Some(gateway.addr().to_string()),
            interface: Some(2),
        }],
        routes: vec![Route {
            dst: "0.0.0.0/0".to_string(),
            gw: Some(gateway.addr().to_string()),
        }],
        dns: Dns::default(),
    })
}

/// DEL: the address goes back and the veth pair is deleted. Everything
/// already gone is fine, namespace included: a runtime retries DEL until
/// it succeeds, so DEL must never fail for lack of something to delete.
pub async fn del(
    handle: &Handle,
    env: &Environment,
    conf: &NetConf,
    cidr: PodCidr,
) -> Result<(), CniError> {
    let key = attachment_key(&env.container_id, &env.ifname);
    let placeholder = Ipv4Net::new(cidr.gateway(), cidr.net().prefix_len()).expect("prefix");
    let netns = env.netns.clone().unwrap_or_default();
    let pod = interface(env, &netns, placeholder, cidr.gateway());
    veth::remove_pod_interface(handle, &pod).await?;
    let _lock = DirLock::acquire(&conf.ipam_dir())?;
    Ipam::open(&conf.ipam_dir(), cidr)?.release(&key)?;
    Ok(())
}

/// CHECK: the attachment still has its address (the one ADD reported,
/// when the runtime passes ADD's result), the Pod end carries it, and the
/// host end is a port of the bridge.
pub async fn check(
    handle: &Handle,
    env: &Environment,
    conf: &NetConf,
    cidr: PodCidr,
) -> Result<(), CniError> {
    let netns = env.netns.as_deref().expect("CHECK has CNI_NETNS");
    let key = attachment_key(&env.container_id, &env.ifname);
    let address = {
        let _lock = DirLock::acquire(&conf.ipam_dir())?;
        Ipam::open(&conf.ipam_dir(), cidr)?.lookup(&key)
    };
    let Some(address) = address else {
        return Err(CniError::CheckFailed(format!(
            "{key} has no address in {}",
            conf.ipam_dir().display()
        )));
    };
    let ip = Ipv4Net::new(address, cidr.net().prefix_len()).expect("prefix");
    if let Some(previous) = &conf.prev_result {
        let reported: Vec<&str> = previous.ips.iter().map(|ip| ip.address.as_str()).collect();
        if !reported.contains(&ip.to_string().as_str()) {
            return Err(CniError::CheckFailed(format!(
                "{key} has {ip}, but ADD reported {reported:?}"
            )));
        }
    }
    let pod = interface(env, netns, ip, cidr.gateway());
    let state = veth::inspect_pod_interface(handle, &pod).await?;
    if state.pod_mac.is_none() {
        return Err(CniError::CheckFailed(format!(
            "{} is missing in {}",
            env.ifname,
            netns.display()
        )));
    }
    if !state.pod_addresses.contains(&ip) {
        return Err(CniError::CheckFailed(format!(
            "{} in {} has {:?}, not {ip}",
            env.ifname,
            netns.display(),
            state.pod_addresses
        )));
    }
    let bridge = crate::network::find_link(handle, &conf.bridge).await?;
    let bridge_index = bridge.map(|link| link.header.index);
    if state.host_controller.is_none() || state.host_controller != bridge_index {
        return Err(CniError::CheckFailed(format!(
            "{} is not a port of {}",
            pod.host_veth, conf.bridge
        )));
    }
    Ok(())
}

/// STATUS: ready when an ADD could get an address.
pub fn status(conf: &NetConf, cidr: PodCidr) -> Result<(), CniError> {
    let _lock = DirLock::acquire(&conf.ipam_dir())?;
    let ipam = Ipam::open(&conf.ipam_dir(), cidr)?;
    let in_use = ipam.list().len();
    if in_use >= cidr.usable() {
        return Err(CniError::NotAvailable(format!(
            "no free address in {cidr} ({in_use} of {} in use)",
            cidr.usable()
        )));
    }
    Ok(())
}

/// GC: gives back the addresses, and deletes the veth pairs, of every
/// attachment the runtime did not list as valid (containers removed
/// while the runtime could not call DEL).
pub async fn gc(handle: &Handle, conf: &NetConf, cidr: PodCidr) -> Result<(), CniError> {
    let valid: HashSet<String> = conf
        .valid_attachments
        .iter()
        .flatten()
        .map(|attachment| attachment_key(&attachment.container_id, &attachment.ifname))
        .collect();
    let _lock = DirLock::acquire(&conf.ipam_dir())?;
    let mut ipam = Ipam::open(&conf.ipam_dir(), cidr)?;
    let stale: Vec<String> = ipam
        .list()
        .into_iter()
        .map(|(_, key)| key)
        .filter(|key| !valid.contains(key))
        .collect();
    for key in stale {
        if let Some((container_id, ifname)) = key.split_once('/') {
            let host_veth = host_veth_name(container_id, ifname);
            veth::remove_host_end(handle, &host_veth).await?;
        }
        ipam.release(&key)?;
    }
    Ok(())
}
