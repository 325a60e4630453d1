//! `up`: make the lab exist - bridge, routes, one namespace per node, the
//! control plane, the node agents, the kubeconfig - leaving alone what is
//! already right.

use super::*;

/// Makes the lab exist: bridge, routes, one namespace per node, the
/// control plane, the node agents, the kubeconfig. What already exists
/// and is right is left alone, so running it twice gives the same lab.
pub fn up(options: &LabOptions) -> Result<(), LabError> {
    if options.workers > MAX_WORKERS {
        return Err(LabError::Workers(options.workers));
    }
    for binary in ["apiserver", "controller"] {
        if !options.bin_dir.join(binary).exists() {
            return Err(LabError::MissingBinary {
                binary: binary.into(),
                dir: options.bin_dir.clone(),
            });
        }
    }
    host_only_network()?;
    for node in Node::all(options.workers) {
        vm(&node)?;
    }
    let names: Vec<(String, Ipv4Addr)> = Node::all(options.workers)
        .into_iter()
        .map(|n| (n.name, n.lan_ip))
        .collect();
    crate::pki::ensure(
        &options.dir,
        &apiserver_url(),
        MASTER_IP,
        KUBERNETES_SERVICE_IP,
        &names,
    )?;
    control_plane(options)?;
    for node in Node::all(options.workers) {
        start_node_agent(options, &node)?;
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

/// A process the lab runs inside a node namespace.
pub(super) struct Component {
    /// Names its log and PID files: `apiserver`, `nodeagent-worker1`.
    name: String,
    binary: &'static str,
    netns: String,
    args: Vec<String>,
}

/// The apiserver and the controller in `kl-master`.
pub(super) fn control_plane(options: &LabOptions) -> Result<(), LabError> {
    // Each VM's "disk" is DIR/<node name>/.
    let data_dir = options.dir.join("kl-master/apiserver");
    std::fs::create_dir_all(&data_dir)
        .map_err(io_error(format!("creating {}", data_dir.display())))?;
    let master = Node::all(0).remove(0);
    let (cert, key) = crate::pki::apiserver_cert_paths(&options.dir);
    let (sa_key, sa_pub) = crate::pki::service_account_key_paths(&options.dir);
    let kubelet_client = crate::pki::apiserver_kubelet_client_paths(&options.dir);
    let apiserver = Component {
        name: "apiserver".into(),
        binary: "apiserver",
        netns: master.netns(),
        args: vec![
            "--listen".into(),
            format!("{MASTER_IP}:{APISERVER_PORT}"),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--service-cluster-ip-range".into(),
            SERVICE_CIDR.into(),
            "--tls-cert-file".into(),
            cert.display().to_string(),
            "--tls-private-key-file".into(),
            key.display().to_string(),
            "--client-ca-file".into(),
            crate::pki::ca_cert_path(&options.dir).display().to_string(),
            "--service-account-signing-key-file".into(),
            sa_key.display().to_string(),
            "--service-account-key-file".into(),
            sa_pub.display().to_string(),
            "--kubelet-client-certificate".into(),
            kubelet_client.0.display().to_string(),
            "--kubelet-client-key".into(),
            kubelet_client.1.display().to_string(),
            "--kubelet-certificate-authority".into(),
            crate::pki::ca_cert_path(&options.dir).display().to_string(),
        ],
    };
    ensure_running(options, &apiserver)?;
    wait_apiserver_ready(&options.dir)?;
    let controller = Component {
        name: "controller".into(),
        binary: "controller",
        netns: master.netns(),
        args: vec![
            "--kubeconfig".into(),
            crate::pki::controller_kubeconfig(&options.dir)
                .display()
                .to_string(),
            "--cluster-cidr".into(),
            POD_CIDR.into(),
        ],
    };
    ensure_running(options, &controller)
}

/// Starts the node agent (kubelet + kube-proxy) of `node` inside its
/// namespace, registering the node with its LAN address - never the NAT
/// NIC's. Skipped while the `nodeagent` binary is not built.
pub(super) fn start_node_agent(options: &LabOptions, node: &Node) -> Result<(), LabError> {
    if !options.bin_dir.join("nodeagent").exists() {
        eprintln!(
            "lab: no nodeagent binary in {}: the node agent is not built yet, {} runs without one",
            options.bin_dir.display(),
            node.netns()
        );
        return Ok(());
    }
    let data_dir = options.dir.join(&node.name).join("nodeagent");
    let (kubelet_cert, kubelet_key) = crate::pki::kubelet_cert_paths(&options.dir, &node.name);
    std::fs::create_dir_all(&data_dir)
        .map_err(io_error(format!("creating {}", data_dir.display())))?;
    let mut agent = Component {
        name: format!("nodeagent-{}", node.name),
        binary: "nodeagent",
        netns: node.netns(),
        args: vec![
            "--kubeconfig".into(),
            crate::pki::node_kubeconfig(&options.dir, &node.name)
                .display()
                .to_string(),
            "--node-name".into(),
            node.name.clone(),
            "--tls-cert-file".into(),
            kubelet_cert.display().to_string(),
            "--tls-private-key-file".into(),
            kubelet_key.display().to_string(),
            "--client-ca-file".into(),
            crate::pki::ca_cert_path(&options.dir).display().to_string(),
            "--node-ip".into(),
            node.lan_ip.to_string(),
            "--data-dir".into(),
            data_dir.display().to_string(),
        ],
    };
    if node.lan_ip == MASTER_IP {
        // What kubeadm does to the control-plane node: labelled, and
        // tainted so that ordinary Pods (the lesson's nginx) go to the
        // workers. Its node agent still runs Service rules and answers
        // NodePorts.
        agent.args.extend([
            "--node-labels".into(),
            "node-role.kubernetes.io/control-plane=".into(),
            "--register-with-taints".into(),
            "node-role.kubernetes.io/control-plane:NoSchedule".into(),
        ]);
    }
    ensure_running(options, &agent)
}

pub(super) fn pid_file(dir: &Path, component: &str) -> PathBuf {
    dir.join("pids").join(format!("{component}.pid"))
}

pub(super) fn log_file(dir: &Path, component: &str) -> PathBuf {
    dir.join("logs").join(format!("{component}.log"))
}

/// The PID recorded for a component, if any.
pub fn recorded_pid(dir: &Path, component: &str) -> Option<i32> {
    std::fs::read_to_string(pid_file(dir, component))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Starts a component unless the PID file names a live process of the same
/// binary (PIDs are reused: liveness alone is not enough).
pub(super) fn ensure_running(options: &LabOptions, component: &Component) -> Result<(), LabError> {
    let binary_path = options.bin_dir.join(component.binary);
    if let Some(pid) = recorded_pid(&options.dir, &component.name) {
        if runs_binary(pid, &binary_path) {
            return Ok(());
        }
    }
    for sub in ["logs", "pids"] {
        let d = options.dir.join(sub);
        std::fs::create_dir_all(&d).map_err(io_error(format!("creating {}", d.display())))?;
    }
    let log_path = log_file(&options.dir, &component.name);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io_error(format!("opening {}", log_path.display())))?;
    let log_for_stderr = log
        .try_clone()
        .map_err(io_error(format!("opening {}", log_path.display())))?;
    // Enter only the node's *network* namespace. `ip netns exec` would also
    // give the component a private copy of the mount table, and the network
    // namespaces a node agent creates for its Pods (bind mounts under
    // /run/netns) would then be invisible to everyone else - including the
    // same node agent after a restart.
    let netns_path = format!("/run/netns/{}", component.netns);
    let netns = File::open(&netns_path).map_err(io_error(format!("opening {netns_path}")))?;
    let mut command = Command::new(&binary_path);
    command
        .args(&component.args)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_for_stderr);
    // SAFETY: between fork and exec the child only makes two system calls
    // (setsid, setns), both async-signal-safe, on a file descriptor opened
    // before the fork. setsid gives the component its own session, so
    // neither a terminal hangup nor a Ctrl-C sent to `e2e up` reaches it: it
    // lives until `down`.
    unsafe {
        command.pre_exec(move || {
            nix::unistd::setsid()?;
            nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)?;
            Ok(())
        });
    }
    let child = command.spawn().map_err(io_error(format!(
        "starting {} in {}",
        component.name, component.netns
    )))?;
    let pid_path = pid_file(&options.dir, &component.name);
    std::fs::write(&pid_path, format!("{}\n", child.id()))
        .map_err(io_error(format!("writing {}", pid_path.display())))?;
    eprintln!(
        "lab: started {} in {} (pid {}, log {})",
        component.name,
        component.netns,
        child.id(),
        log_path.display()
    );
    Ok(())
}

/// Whether `pid` is a live process whose command line starts with
/// `binary` (a zombie's command line is empty).
pub(super) fn runs_binary(pid: i32, binary: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    argv0 == binary.as_os_str().as_encoded_bytes()
}

/// The file name of a process's executable, if it is one of
/// [`LAB_BINARIES`] (`/proc/<pid>/exe` says "(deleted)" after a rebuild).
pub(super) fn lab_binary_of(pid: i32) -> Option<&'static str> {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let name = exe.file_name()?.to_string_lossy().into_owned();
    let name = name.trim_end_matches(" (deleted)");
    LAB_BINARIES.iter().copied().find(|b| *b == name)
}

/// Asks `GET /readyz` at `addr`; true on a 200.
/// Whether the apiserver answers /readyz over the LAN, from the caller's
/// namespace (the host), with a certificate the lab's CA (in `dir`)
/// signed.
pub fn apiserver_ready(dir: &Path) -> bool {
    let Ok(ca) = std::fs::read_to_string(crate::pki::ca_cert_path(dir)) else {
        return false;
    };
    crate::pki::https_ready(SocketAddr::from((MASTER_IP, APISERVER_PORT)), &ca)
}

pub(super) fn wait_apiserver_ready(dir: &Path) -> Result<(), LabError> {
    let deadline = Instant::now() + APISERVER_READY_TIMEOUT;
    while Instant::now() < deadline {
        if apiserver_ready(dir) {
            return Ok(());
        }
        std::thread::sleep(POLL);
    }
    let log = log_file(dir, "apiserver");
    Err(LabError::ApiserverNotReady {
        url: apiserver_url(),
        timeout: APISERVER_READY_TIMEOUT,
        tail: log_tail(&log, 20),
        log,
    })
}

/// The last `lines` lines of a log file (empty if unreadable).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
