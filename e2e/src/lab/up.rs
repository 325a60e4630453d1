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
    for binary in ["apiserver", "controller", "nodeagent", "kubeadm-lite"] {
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

/// A node's "disk": `DIR/<node name>`, laid out as a VM's root.
pub fn node_layout(dir: &Path, node: &Node) -> Layout {
    Layout::new(dir.join(&node.name))
}

/// The node agent's data directory on the lab node `node` (its
/// `/var/lib/kube-lite/nodeagent`).
pub fn nodeagent_data_dir(dir: &Path, node: &str) -> PathBuf {
    Layout::new(dir.join(node)).nodeagent_data()
}

/// `kubeadm-lite init` for kl-master.
fn init_args(options: &LabOptions) -> Vec<String> {
    let master = Node::all(0).remove(0);
    [
        "init",
        "--node-ip",
        &master.lan_ip.to_string(),
        "--node-name",
        &master.name,
        "--pod-network-cidr",
        POD_CIDR,
        "--service-cidr",
        SERVICE_CIDR,
        "--root",
        &options.dir.join(&master.name).display().to_string(),
        "--bin-dir",
        &options.bin_dir.display().to_string(),
        "--no-systemd",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

/// The printed join command, as printed, and what a lab VM adds: its name
/// (the namespaces share the machine's host name), its disk, where the
/// binaries are, and no systemd.
fn join_args(options: &LabOptions, worker: &Node, command: &str) -> Vec<String> {
    let mut args: Vec<String> = command
        .split_whitespace()
        .skip(1) // "kubeadm-lite"
        .map(String::from)
        .collect();
    args.extend([
        "--node-name".into(),
        worker.name.clone(),
        "--root".into(),
        options.dir.join(&worker.name).display().to_string(),
        "--bin-dir".into(),
        options.bin_dir.display().to_string(),
        "--no-systemd".into(),
    ]);
    args
}

/// A join command made on the master (`kubeadm-lite token create
/// --print-join-command`), for workers added to a lab that is up.
fn new_join_command(options: &LabOptions, master: &Node) -> Result<String, LabError> {
    let root = options.dir.join(&master.name).display().to_string();
    let output = kubeadm(
        options,
        master,
        &[
            "token".into(),
            "create".into(),
            "--print-join-command".into(),
            "--root".into(),
            root,
        ],
        "",
    )?;
    output
        .into_iter()
        .find(|line| line.starts_with("kubeadm-lite join "))
        .ok_or_else(|| LabError::Kubeadm {
            node: master.name.clone(),
            message: "`token create --print-join-command` printed no join command".into(),
            log: log_file(&options.dir, &format!("kubeadm-{}", master.name)),
        })
}

/// Runs `kubeadm-lite ARGS` inside `node`'s network namespace, its output
/// into `DIR/logs/kubeadm-<node>.log` and on the lab's stderr. When a line
/// starts with `marker`, the node's units are started (what systemd would
/// do). Returns the output's lines.
fn kubeadm(
    options: &LabOptions,
    node: &Node,
    args: &[String],
    marker: &str,
) -> Result<Vec<String>, LabError> {
    use std::io::{BufRead as _, Write as _};
    for sub in ["logs", "pids"] {
        let d = options.dir.join(sub);
        std::fs::create_dir_all(&d).map_err(io_error(format!("creating {}", d.display())))?;
    }
    let log_path = log_file(&options.dir, &format!("kubeadm-{}", node.name));
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io_error(format!("opening {}", log_path.display())))?;
    let stderr = log
        .try_clone()
        .map_err(io_error(format!("opening {}", log_path.display())))?;
    let mut command = Command::new(options.bin_dir.join("kubeadm-lite"));
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr);
    enter_netns(&mut command, &node.netns())?;
    eprintln!("lab: {}: kubeadm-lite {}", node.name, args.join(" "));
    // The command first, as a shell transcript would show it.
    let _ = writeln!(log, "$ kubeadm-lite {}", args.join(" "));
    let mut child = command.spawn().map_err(io_error(format!(
        "starting kubeadm-lite in {}",
        node.netns()
    )))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = vec![];
    for line in std::io::BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let _ = writeln!(log, "{line}");
        eprintln!("lab: {}: {line}", node.name);
        if !marker.is_empty() && line.starts_with(marker) {
            start_units(options, node)?;
        }
        lines.push(line);
    }
    let status = child.wait().map_err(io_error(format!(
        "waiting for kubeadm-lite in {}",
        node.netns()
    )))?;
    if status.success() {
        Ok(lines)
    } else {
        Err(LabError::Kubeadm {
            node: node.name.clone(),
            message: log_tail(&log_path, 5),
            log: log_path,
        })
    }
}

/// Starts what `node`'s units would run, from their files (as systemd
/// does at boot): the apiserver and controller on the master, the node
/// agent everywhere. Already running ones are left alone.
pub fn start_units(options: &LabOptions, node: &Node) -> Result<(), LabError> {
    for component in ["apiserver", "controller", "nodeagent"] {
        start_unit(options, node, component)?;
    }
    Ok(())
}

/// Starts one unit's command of `node`, unless it has no such unit or it
/// runs already.
pub fn start_unit(options: &LabOptions, node: &Node, component: &str) -> Result<(), LabError> {
    let unit = node_layout(&options.dir, node).unit(component);
    if !unit.exists() {
        return Ok(());
    }
    let mut command = kubeadm_lite::units::exec_start(&unit).map_err(|e| LabError::Kubeadm {
        node: node.name.clone(),
        message: e.to_string(),
        log: unit.clone(),
    })?;
    let program = PathBuf::from(command.remove(0));
    let name = if component == "nodeagent" {
        format!("nodeagent-{}", node.name)
    } else {
        component.to_string()
    };
    ensure_running(
        options,
        &Component {
            name,
            program,
            netns: node.netns(),
            args: command,
        },
    )
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
    /// Names its log and PID files: `apiserver`, `nodeagent-kl-worker1`.
    name: String,
    /// The program, as the unit names it.
    program: PathBuf,
    netns: String,
    args: Vec<String>,
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
    let binary_path = component.program.clone();
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
    enter_netns(&mut command, &component.netns)?;
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

/// A command that runs `program` inside the lab node `node`'s network
/// namespace (only that one: see [`enter_netns`]), as a shell on that VM.
pub fn node_command(
    node: &Node,
    program: impl AsRef<std::ffi::OsStr>,
) -> Result<Command, LabError> {
    let mut command = Command::new(program);
    enter_netns(&mut command, &node.netns())?;
    Ok(command)
}

/// Makes `command` start in its own session inside the network namespace
/// `netns`.
///
/// Only the *network* namespace: `ip netns exec` would also give the
/// process a private copy of the mount table, and the network namespaces
/// a node agent creates for its Pods (bind mounts under /run/netns) would
/// then be invisible to everyone else - including the same node agent
/// after a restart. The own session means neither a terminal hangup nor a
/// Ctrl-C sent to `e2e up` reaches it: it lives until `down`.
pub(super) fn enter_netns(command: &mut Command, netns: &str) -> Result<(), LabError> {
    let netns_path = format!("/run/netns/{netns}");
    let netns = File::open(&netns_path).map_err(io_error(format!("opening {netns_path}")))?;
    // SAFETY: between fork and exec the child only makes two system calls
    // (setsid, setns), both async-signal-safe, on a file descriptor opened
    // before the fork.
    unsafe {
        command.pre_exec(move || {
            nix::unistd::setsid()?;
            nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)?;
            Ok(())
        });
    }
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
    let master = Node::all(0).remove(0);
    let Ok(ca) = std::fs::read_to_string(node_layout(dir, &master).ca_cert()) else {
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
