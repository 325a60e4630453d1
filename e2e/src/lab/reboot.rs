//! `reboot`: what a VM reboot (or a power cut, or VirtualBox's "reset")
//! does to one lab node, and the boot that follows.
//!
//! Power off: every process of the node ends at once (SIGKILL, no
//! goodbye), and everything that lived in memory is gone - the Pods'
//! network namespaces, the bridge `cni0` and the routes on it, the routes
//! to other nodes' Pods, the Service rules (the `nft` table), the
//! forwarding sysctl. What was on disk stays: the node's directory
//! (`DIR/<node>`: its `/etc/kube-lite`, `/var/lib/kube-lite`, its units).
//! The node's NICs stay too (its namespace, `eth0`, `eth1`), as a VM's
//! virtual hardware does.
//!
//! Boot: the units start, from their files, as systemd starts enabled
//! units ([`start_units`]), the node agent first. containerd's state
//! (`/run/containerd`) is gone: `/run` is a tmpfs. Nothing else helps: whatever the node needs
//! again must be rebuilt by the components themselves.

use super::*;

/// Reboots the lab node `name`: power off, then boot.
pub fn reboot(options: &LabOptions, name: &str) -> Result<(), LabError> {
    let node = Node::all(MAX_WORKERS)
        .into_iter()
        .find(|n| n.name == name)
        .filter(|n| netns_list().is_ok_and(|l| l.contains(&n.netns())))
        .ok_or_else(|| LabError::NoSuchNode(name.to_string()))?;
    power_off(&options.dir, &node)?;
    eprintln!("lab: {name} is off; booting it");
    // Units start in no set order. The node agent goes first, as on the
    // slowest boot: on the master it must then wait for the apiserver.
    start_unit(options, &node, "nodeagent")?;
    std::thread::sleep(AGENT_HEAD_START);
    start_units(options, &node)
}

/// How much earlier than the control plane a rebooted node's agent starts.
const AGENT_HEAD_START: Duration = Duration::from_secs(2);

/// Everything of `node` that does not survive a power cut.
fn power_off(dir: &Path, node: &Node) -> Result<(), LabError> {
    let ns = node.netns();
    // Its processes: the components in the node, the containers below
    // containerd's shims.
    let mut pids: Vec<i32> = netns_pids(&ns)?
        .into_iter()
        .filter(|pid| lab_binary_of(*pid).is_some())
        .collect();
    pids.extend(container_pids(&ns)?);
    let sockets = shim_sockets(dir, &node.name);
    for &pid in &pids {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    wait_gone(&pids, STOP_GRACE);
    eprintln!("lab: {}: killed {} processes", node.name, pids.len());
    // What lived in memory.
    remove_shim_sockets(&sockets);
    forget_containerd_state(dir, node)?;
    remove_pod_cgroups(Some(&node.name))?;
    if links(Some(&ns))?.iter().any(|l| l == "cni0") {
        ip_change(
            &format!("removing cni0 of {ns}"),
            &["-n", &ns, "link", "del", "cni0"],
        )?;
    }
    let routes = ip("listing routes", &["-n", &ns, "-4", "route", "show"])?;
    let pod_range: ipnet::Ipv4Net = POD_CIDR.parse().expect("the lab's Pod range");
    for line in routes.lines().filter(|l| l.contains(" via ")) {
        let Some(destination) = line.split_whitespace().next() else {
            continue;
        };
        if destination
            .parse::<ipnet::Ipv4Net>()
            .is_ok_and(|d| pod_range.contains(&d))
        {
            ip_change(
                &format!("removing the route to {destination} in {ns}"),
                &["-n", &ns, "route", "del", destination],
            )?;
        }
    }
    let in_node = |what: &str, command: &[&str]| {
        let args: Vec<&str> = ["netns", "exec", ns.as_str()]
            .iter()
            .chain(command)
            .copied()
            .collect();
        run(what, "ip", &args)
    };
    if in_node(
        "looking for the Service rules",
        &["nft", "list", "table", "ip", "kube-lite"],
    )
    .is_ok()
    {
        in_node(
            &format!("removing the Service rules of {ns}"),
            &["nft", "delete", "table", "ip", "kube-lite"],
        )?;
    }
    // A booting kernel forwards nothing until someone turns it on.
    in_node(
        &format!("resetting ip_forward in {ns}"),
        &["sysctl", "-q", "-w", "net.ipv4.ip_forward=0"],
    )?;
    Ok(())
}
