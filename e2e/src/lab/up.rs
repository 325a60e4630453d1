//! `up`: make the lab exist - bridge, routes, one namespace per node, the
//! control plane, the node agents, the kubeconfig - leaving alone what is
//! already right.

use super::*;

/// Makes the lab exist: bridge, routes, one namespace per node, then the
/// cluster as on VMs - `kubeadm-lite init` on kl-master and the join
/// command it prints on each worker (with `--no-systemd`: the lab starts
/// the units' commands itself). What already exists and is right is left
/// alone, so running it twice gives the same lab.
pub fn up(options: &LabOptions) -> Result<(), LabError> {
    if options.workers > MAX_WORKERS {
        return Err(LabError::Workers(options.workers));
    }
    for binary in [
        "apiserver",
        "controller",
        "nodeagent",
        "kubeadm-lite",
        "kube-lite-cni",
        "kube-lite-echo",
    ] {
        if !options.bin_dir.join(binary).exists() {
            return Err(LabError::MissingBinary {
                binary: binary.into(),
                dir: options.bin_dir.clone(),
            });
        }
    }
    host_only_network()?;
    // The VirtualBox host's registry, with the images Pods will pull.
    let images = crate::images::build_all(&crate::images::cache_dir(), &options.bin_dir)?;
    seed_registry(&options.dir, &images)?;
    serve_registry(&options.dir)?;
    for node in Node::all(options.workers) {
        vm(&node)?;
        registry_mirrors(&options.dir, &node)?;
    }
    let mut nodes = Node::all(options.workers).into_iter();
    let master = nodes.next().expect("the lab has a master");
    let mut join_command = None;
    if !node_layout(&options.dir, &master).admin_conf().exists() {
        let output = kubeadm(
            options,
            &master,
            &init_args(options),
            WAITING_FOR_CONTROL_PLANE,
        )?;
        join_command = output
            .into_iter()
            .find(|line| line.starts_with("kubeadm-lite join "));
    }
    start_units(options, &master)?;
    wait_apiserver_ready(&options.dir)?;
    let admin = node_layout(&options.dir, &master).admin_conf();
    std::fs::copy(&admin, kubeconfig_path(&options.dir))
        .map_err(io_error(format!("copying {}", admin.display())))?;
    for worker in nodes {
        if !node_layout(&options.dir, &worker).nodeagent_conf().exists() {
            let command = match &join_command {
                Some(command) => command.clone(),
                None => {
                    let made = new_join_command(options, &master)?;
                    join_command = Some(made.clone());
                    made
                }
            };
            let args = join_args(options, &worker, &command);
            kubeadm(options, &worker, &args, WAITING_FOR_NODE)?;
        }
        start_units(options, &worker)?;
    }
    Ok(())
}

/// The host side: the LAN bridge with the host's address, and the
/// unreachable routes that keep cluster-bound packets on the machine.
pub(super) fn host_only_network() -> Result<(), LabError> {
    if !links(None)?.iter().any(|l| l == LAN_BRIDGE) {
        ip_change(
            "creating the LAN bridge",
            &["link", "add", LAN_BRIDGE, "type", "bridge"],
        )?;
    }
    if !addresses(None, LAN_BRIDGE)?
        .iter()
        .any(|a| a == HOST_LAN_ADDRESS)
    {
        ip_change(
            "giving the host its LAN address",
            &["addr", "add", HOST_LAN_ADDRESS, "dev", LAN_BRIDGE],
        )?;
    }
    ip(
        "bringing up the LAN bridge",
        &["link", "set", LAN_BRIDGE, "up"],
    )?;
    let present = unreachable_routes()?;
    for cidr in [SERVICE_CIDR, POD_CIDR] {
        if !present.iter().any(|r| r == cidr) {
            ip_change(
                "refusing cluster traffic in the host namespace",
                &["route", "add", "unreachable", cidr],
            )?;
        }
    }
    Ok(())
}

/// One VM: its namespace, `lo`, `eth1` on the LAN, the NAT trap `eth0`,
/// and the kernel settings the pod datapath needs.
pub(super) fn vm(node: &Node) -> Result<(), LabError> {
    let ns = node.netns();
    let ns = ns.as_str();
    if !netns_list()?.iter().any(|n| n == ns) {
        ip_change(&format!("creating node {ns}"), &["netns", "add", ns])?;
    }
    ip("bringing up lo", &["-n", ns, "link", "set", "lo", "up"])?;

    // eth1: a veth pair, one end in the node, the other a bridge port.
    let port = node.lan_port();
    let node_links = links(Some(ns))?;
    if !node_links.iter().any(|l| l == "eth1") {
        if links(None)?.contains(&port) {
            // A half-made pair from an interrupted run.
            ip_change("removing a stale LAN port", &["link", "del", &port])?;
        }
        ip_change(
            &format!("plugging {ns} into the LAN"),
            &[
                "link", "add", &port, "type", "veth", "peer", "name", "eth1", "netns", ns,
            ],
        )?;
    }
    ip(
        &format!("attaching {port} to {LAN_BRIDGE}"),
        &["link", "set", &port, "master", LAN_BRIDGE, "up"],
    )?;
    let lan_address = format!("{}/24", node.lan_ip);
    if !addresses(Some(ns), "eth1")?.contains(&lan_address) {
        ip_change(
            &format!("giving {ns} its LAN address"),
            &["-n", ns, "addr", "add", &lan_address, "dev", "eth1"],
        )?;
    }
    ip("bringing up eth1", &["-n", ns, "link", "set", "eth1", "up"])?;

    // eth0: the NAT NIC, 10.0.2.15 everywhere. A veth pair whose other
    // end, `nat0`, stays in the node with no address: eth0 is up and
    // carries the address, but nothing on the other side answers (not even
    // ARP), so anything sent through it goes nowhere. (A dummy interface
    // would do too, but this kernel has no dummy driver.)
    if !node_links.iter().any(|l| l == "eth0") {
        ip_change(
            &format!("giving {ns} its NAT NIC"),
            &[
                "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", NAT_PEER,
            ],
        )?;
    }
    ip(
        "bringing up nat0",
        &["-n", ns, "link", "set", NAT_PEER, "up"],
    )?;
    if !addresses(Some(ns), "eth0")?
        .iter()
        .any(|a| a == NAT_ADDRESS)
    {
        ip_change(
            &format!("giving {ns} the NAT address"),
            &["-n", ns, "addr", "add", NAT_ADDRESS, "dev", "eth0"],
        )?;
    }
    ip("bringing up eth0", &["-n", ns, "link", "set", "eth0", "up"])?;

    node_kernel_settings(ns)
}

/// The sysctls a Kubernetes node needs, set inside the node's namespace
/// (both are per network namespace on this kernel).
pub(super) fn node_kernel_settings(ns: &str) -> Result<(), LabError> {
    // Pods' packets are routed by the node: between its bridge and eth1.
    run(
        &format!("enabling IP forwarding in {ns}"),
        "ip",
        &[
            "netns",
            "exec",
            ns,
            "sysctl",
            "-q",
            "-w",
            "net.ipv4.ip_forward=1",
        ],
    )?;
    // Same-node pod -> ClusterIP -> pod is bridged, not routed: without
    // this the bridge never shows the packet to the nat hook. Built into
    // this kernel (per namespace, on by default); on Ubuntu it is the
    // br_netfilter module, which the node agent must load.
    let bridge_nf = run(
        &format!("enabling bridge netfilter in {ns}"),
        "ip",
        &[
            "netns",
            "exec",
            ns,
            "sysctl",
            "-q",
            "-w",
            "net.bridge.bridge-nf-call-iptables=1",
        ],
    );
    if bridge_nf.is_err() {
        eprintln!(
            "lab: {ns} has no net.bridge.bridge-nf-call-iptables (br_netfilter not loaded); \
             the node agent must load it"
        );
    }
    Ok(())
}
