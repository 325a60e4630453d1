//! The lab: a multi-node cluster built from network namespaces on one
//! machine, standing in for the VirtualBox VMs of the lesson.
//!
//! A classic kubeadm lab is a few VMs on a VirtualBox *host-only* network
//! (192.168.56.0/24, the host at .1) plus a *NAT* NIC per VM that has the
//! very same address, 10.0.2.15, on every VM. Here:
//!
//! - the host namespace plays the VirtualBox host: bridge [`LAN_BRIDGE`]
//!   with 192.168.56.1/24 is the host-only network;
//! - each VM is a network namespace ([`Node`]): `kl-master`, `kl-worker1`,
//!   ... with `eth1` (one end of a veth pair whose other end is a port of
//!   the bridge) on the LAN and `eth0`, an isolated NIC with
//!   10.0.2.15/24 - the dual-NIC trap: a node agent that guesses its IP from
//!   the first NIC registers 10.0.2.15, and every node looks the same;
//! - no node has a default route, and while the lab is up the host has
//!   `unreachable` routes for the service and pod ranges, so no packet
//!   meant for the cluster ever leaves the machine (ARCHITECTURE.md's
//!   network safety rule);
//! - the control plane (apiserver, controller) runs inside `kl-master`, as
//!   detached processes whose PIDs are kept in `DIR/pids/`;
//! - the node agents make a network namespace per Pod,
//!   `kl-pod-<node>-<8 hex>`, with the Pod's processes inside and a veth
//!   pair to the node's bridge.
//!
//! [`up`] makes the system match that picture and changes nothing that
//! already matches it (like a reconcile loop); [`down`] removes everything,
//! re-discovering it from the system (namespaces, links, routes, processes
//! in the namespaces) so that it also works after a crash lost the PID
//! files. The names are fixed, so one lab exists per machine: [`LabLock`]
//! serializes its users, and [`Lab`] is the guard tests hold.
//!
//! Links, addresses and routes are made with the `ip` command (iproute2),
//! as an administrator would type them: every step of the lab can be
//! replayed by hand from the log lines this module prints.

use std::fs::{File, OpenOptions};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

/// The host-only LAN, a bridge in the host namespace (VirtualBox's
/// `vboxnet0`).
pub const LAN_BRIDGE: &str = "kl-lan0";
/// The host's address on the LAN, VirtualBox's host-only default.
pub const HOST_LAN_ADDRESS: &str = "192.168.56.1/24";
/// The master's LAN address; worker N gets `.10 + N`.
pub const MASTER_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 56, 10);
/// The address of every node's NAT NIC (`eth0`): the same on all of them,
/// which is exactly the trap.
pub const NAT_ADDRESS: &str = "10.0.2.15/24";
/// The far end of every node's `eth0`, left in the node unaddressed.
pub const NAT_PEER: &str = "nat0";
/// The apiserver's port on the master.
pub const APISERVER_PORT: u16 = 6443;
/// Service ClusterIPs (`--service-cluster-ip-range`).
pub const SERVICE_CIDR: &str = "10.96.0.0/12";
/// Pod IPs (`--cluster-cidr`, a /24 per node).
pub const POD_CIDR: &str = "10.244.0.0/16";
/// The lock file that makes lab users take turns (`flock` semantics).
pub const LOCK_PATH: &str = "/run/kube-lite-lab.lock";
/// The most workers a lab may have: interface names are at most 15 bytes,
/// and `kl-worker99-lan` is 15.
pub const MAX_WORKERS: usize = 99;
/// The component binaries the lab runs; processes found in a lab
/// namespace are ended only if their executable is one of these.
pub const LAB_BINARIES: &[&str] = &["apiserver", "controller", "nodeagent"];

/// Every Pod network namespace a node agent makes is named
/// `kl-pod-<node name>-<8 hex digits>` (nodeagent's `network` module).
pub const POD_NETNS_PREFIX: &str = "kl-pod-";

/// How long `up` waits for the apiserver's /readyz.
const APISERVER_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a component gets to exit on SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often waits look again.
const POLL: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("{what}: `{command}` failed: {stderr}")]
    Command {
        what: String,
        command: String,
        stderr: String,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error(
        "no {binary} binary in {dir} (the lab runs the binaries next to the e2e executable; \
         build them with `cargo build --workspace --bins`)"
    )]
    MissingBinary { binary: String, dir: PathBuf },
    #[error("the lab takes 0 to {MAX_WORKERS} workers, not {0}")]
    Workers(usize),
    #[error("the lab's certificates: {0}")]
    Pki(String),
    #[error("a client from {path}: {error}")]
    Client { path: PathBuf, error: String },
    #[error("the apiserver did not answer {url}/readyz within {timeout:?}; last log lines of {log}:\n{tail}")]
    ApiserverNotReady {
        url: String,
        timeout: Duration,
        log: PathBuf,
        tail: String,
    },
    #[error(
        "another lab user holds {LOCK_PATH} (waited {0:?}); only one lab can exist per machine"
    )]
    Locked(Duration),
    #[error(
        "{} lab file(s) could not be removed (still mounted by a running process?), first {}: {}",
        .0.len(),
        .0[0].0.display(),
        .0[0].1
    )]
    Leftovers(Vec<(PathBuf, std::io::Error)>),
    #[error(
        "a lab is already up (node namespaces {}): someone is using it, or a test was killed; \
         `sudo e2e down` removes it",
        .0.join(", ")
    )]
    AlreadyUp(Vec<String>),
}

fn io_error(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> LabError {
    let context = context.into();
    move |source| LabError::Io { context, source }
}

/// What `up` builds.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Number of worker nodes (`kl-worker1` ...).
    pub workers: usize,
    /// Where the kubeconfig, logs, PID files and the apiserver's data live.
    pub dir: PathBuf,
    /// Where the component binaries are (`target/debug`).
    pub bin_dir: PathBuf,
}

/// One "VM": a network namespace on the LAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The Kubernetes node name and the VM's hostname: `kl-master`,
    /// `kl-worker1`, ...
    pub name: String,
    /// The address on the host-only LAN (`eth1`), the node's InternalIP.
    pub lan_ip: Ipv4Addr,
}

impl Node {
    /// The nodes of a lab with `workers` workers, master first.
    pub fn all(workers: usize) -> Vec<Node> {
        let master = Node {
            name: "kl-master".into(),
            lan_ip: MASTER_IP,
        };
        let workers = (1..=workers).map(|n| Node {
            name: format!("kl-worker{n}"),
            lan_ip: Ipv4Addr::from(u32::from(MASTER_IP) + n as u32),
        });
        std::iter::once(master).chain(workers).collect()
    }

    /// The network namespace that is this VM, named after the node.
    pub fn netns(&self) -> String {
        self.name.clone()
    }

    /// The bridge port in the host namespace, the other end of `eth1`.
    pub fn lan_port(&self) -> String {
        format!("{}-lan", self.name)
    }
}

/// Whether `name` is one of the lab's node namespaces (`kl-master`,
/// `kl-worker<N>`). Other `kl-*` names belong to someone else (tests of
/// other components) and are never touched.
fn is_node_netns(name: &str) -> bool {
    match name.strip_prefix("kl-") {
        Some("master") => true,
        Some(rest) => rest
            .strip_prefix("worker")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
        None => false,
    }
}

/// Whether `link` is a host-side LAN port of a lab node (`kl-master-lan`).
fn is_lan_port(link: &str) -> bool {
    link.strip_suffix("-lan").is_some_and(is_node_netns)
}

/// A Pod network namespace of a lab node: `kl-pod-kl-worker1-1a2b3c4d`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PodNetns<'a> {
    /// The namespace's name.
    name: &'a str,
    /// The node's namespace (`kl-worker1`).
    node: &'a str,
    /// The Pod's hash, which also names the node end of its veth pair.
    hash: &'a str,
}

impl<'a> PodNetns<'a> {
    /// Recognises only Pods of lab nodes: the node agent tests make Pod
    /// namespaces of other, made-up nodes (`kl-pod-nettest...`), which are
    /// not the lab's to remove.
    fn parse(name: &'a str) -> Option<PodNetns<'a>> {
        let (node, hash) = name.strip_prefix(POD_NETNS_PREFIX)?.rsplit_once('-')?;
        let is_hash = hash.len() == 8 && hash.bytes().all(|b| b.is_ascii_hexdigit());
        (is_node_netns(node) && is_hash).then_some(PodNetns { name, node, hash })
    }

    /// The node end of the Pod's veth pair, a port of the node's bridge
    /// (nodeagent's `network::veth::host_veth_name`).
    fn host_veth(&self) -> String {
        format!("veth{}", self.hash)
    }
}

/// The apiserver's URL as seen from the host and every node.
pub fn apiserver_url() -> String {
    format!("https://{MASTER_IP}:{APISERVER_PORT}")
}

/// A client from a kubeconfig file (TLS, the user's certificate).
pub async fn client_from(path: &Path) -> Result<kube::Client, LabError> {
    let failed = |error: String| LabError::Client {
        path: path.to_path_buf(),
        error,
    };
    let kubeconfig =
        kube::config::Kubeconfig::read_from(path).map_err(|e| failed(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .map_err(|e| failed(e.to_string()))?;
    kube::Client::try_from(config).map_err(|e| failed(e.to_string()))
}

/// The `kubernetes` Service's ClusterIP (the first of the range), which
/// the apiserver's certificate names too.
pub const KUBERNETES_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);

/// The kubeconfig `up` writes for the host.
pub fn kubeconfig_path(dir: &Path) -> PathBuf {
    dir.join("kubeconfig")
}

// ---------------------------------------------------------------------
// Running `ip` and friends
// ---------------------------------------------------------------------

/// Runs a command to completion; a non-zero exit is an error saying
/// `what` was being done.
fn run(what: &str, program: &str, args: &[&str]) -> Result<String, LabError> {
    let command = format!("{program} {}", args.join(" "));
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(io_error(format!("{what}: running `{command}`")))?;
    if !output.status.success() {
        return Err(LabError::Command {
            what: what.to_string(),
            command,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn ip(what: &str, args: &[&str]) -> Result<String, LabError> {
    run(what, "ip", args)
}

/// Runs `ip` and logs it, for the steps that change the system.
fn ip_change(what: &str, args: &[&str]) -> Result<(), LabError> {
    eprintln!("lab: ip {}", args.join(" "));
    ip(what, args).map(|_| ())
}

/// The network namespaces that exist (`ip netns list`).
fn netns_list() -> Result<Vec<String>, LabError> {
    let out = ip("listing network namespaces", &["netns", "list"])?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

/// Link names in a namespace (`None`: the host), without the `@peer` part.
fn links(netns: Option<&str>) -> Result<Vec<String>, LabError> {
    let mut args = vec![];
    if let Some(ns) = netns {
        args.extend(["-n", ns]);
    }
    args.extend(["-br", "link", "show"]);
    let out = ip("listing links", &args)?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(|l| l.split('@').next().unwrap_or(l).to_string())
        .collect())
}

/// The IPv4 addresses of a link, `a.b.c.d/len`.
fn addresses(netns: Option<&str>, link: &str) -> Result<Vec<String>, LabError> {
    let mut args = vec![];
    if let Some(ns) = netns {
        args.extend(["-n", ns]);
    }
    args.extend(["-4", "-br", "addr", "show", "dev", link]);
    let out = ip(&format!("reading the addresses of {link}"), &args)?;
    Ok(out.split_whitespace().skip(2).map(str::to_string).collect())
}

/// The `unreachable` routes of the host namespace.
fn unreachable_routes() -> Result<Vec<String>, LabError> {
    let out = ip(
        "listing unreachable routes",
        &["route", "show", "type", "unreachable"],
    )?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(str::to_string)
        .collect())
}

// ---------------------------------------------------------------------
// up
// ---------------------------------------------------------------------

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
fn host_only_network() -> Result<(), LabError> {
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
fn vm(node: &Node) -> Result<(), LabError> {
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
fn node_kernel_settings(ns: &str) -> Result<(), LabError> {
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
struct Component {
    /// Names its log and PID files: `apiserver`, `nodeagent-worker1`.
    name: String,
    binary: &'static str,
    netns: String,
    args: Vec<String>,
}

/// The apiserver and the controller in `kl-master`.
fn control_plane(options: &LabOptions) -> Result<(), LabError> {
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
fn start_node_agent(options: &LabOptions, node: &Node) -> Result<(), LabError> {
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

fn pid_file(dir: &Path, component: &str) -> PathBuf {
    dir.join("pids").join(format!("{component}.pid"))
}

fn log_file(dir: &Path, component: &str) -> PathBuf {
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
fn ensure_running(options: &LabOptions, component: &Component) -> Result<(), LabError> {
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
fn runs_binary(pid: i32, binary: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    argv0 == binary.as_os_str().as_encoded_bytes()
}

/// The file name of a process's executable, if it is one of
/// [`LAB_BINARIES`] (`/proc/<pid>/exe` says "(deleted)" after a rebuild).
fn lab_binary_of(pid: i32) -> Option<&'static str> {
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

fn wait_apiserver_ready(dir: &Path) -> Result<(), LabError> {
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

// ---------------------------------------------------------------------
// down
// ---------------------------------------------------------------------

/// Removes the lab: processes (components, then Pods), namespaces (Pods',
/// then nodes'; their veth pairs go with them), LAN ports, the bridge, the unreachable routes and the files
/// under `dir` that `up` made. What to remove is read from the system, so
/// this works after a crash and when nothing is left (then it does
/// nothing). Every step is tried; the first error is returned.
pub fn down(dir: &Path) -> Result<(), LabError> {
    let mut first_error = None;
    let mut keep = |r: Result<(), LabError>| {
        if let Err(e) = r {
            eprintln!("lab: {e}");
            first_error.get_or_insert(e);
        }
    };
    keep(stop_components(dir));
    // With the node agents gone nobody looks after the Pods: end their
    // processes and remove their namespaces, before the nodes'.
    keep(remove_pods());
    // LAN ports first: deleting one end of a veth pair deletes the other
    // at once, while a deleted namespace's links go away only later, in
    // the background.
    match links(None) {
        Ok(links) => {
            for link in links
                .iter()
                .filter(|l| is_lan_port(l) || l.as_str() == LAN_BRIDGE)
            {
                keep(ip_change(
                    &format!("removing {link}"),
                    &["link", "del", link],
                ));
            }
        }
        Err(e) => keep(Err(e)),
    }
    match netns_list() {
        Ok(namespaces) => {
            for ns in namespaces.iter().filter(|n| is_node_netns(n)) {
                keep(ip_change(
                    &format!("removing node {ns}"),
                    &["netns", "del", ns],
                ));
            }
        }
        Err(e) => keep(Err(e)),
    }
    match unreachable_routes() {
        Ok(routes) => {
            for cidr in [SERVICE_CIDR, POD_CIDR] {
                if routes.iter().any(|r| r == cidr) {
                    keep(ip_change(
                        "removing an unreachable route",
                        &["route", "del", "unreachable", cidr],
                    ));
                }
            }
        }
        Err(e) => keep(Err(e)),
    }
    keep(remove_files(dir));
    first_error.map_or(Ok(()), Err)
}

/// Ends every lab process: those named by PID files, and any process of a
/// lab binary still inside a node namespace (found with `ip netns pids`,
/// which is how a crash that lost the PID files is survived).
fn stop_components(dir: &Path) -> Result<(), LabError> {
    let mut pids: Vec<i32> = vec![];
    if let Ok(entries) = std::fs::read_dir(dir.join("pids")) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(component) = name.strip_suffix(".pid") else {
                continue;
            };
            let binary = component.split('-').next().unwrap_or(component);
            if let Some(pid) = recorded_pid(dir, component) {
                if lab_binary_of(pid) == Some(binary) {
                    pids.push(pid);
                } else {
                    // Exited by itself: collect it if it is our child.
                    reap(pid);
                }
            }
        }
    }
    for ns in netns_list()?.iter().filter(|n| is_node_netns(n)) {
        let out = ip(
            &format!("listing processes in {ns}"),
            &["netns", "pids", ns],
        )?;
        pids.extend(
            out.split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
                .filter(|p| lab_binary_of(*p).is_some()),
        );
    }
    stop_processes(pids);
    Ok(())
}

/// Ends processes the lab made, as a kubelet ends a container: SIGTERM,
/// [`STOP_GRACE`] to exit, then SIGKILL.
fn stop_processes(mut pids: Vec<i32>) {
    pids.sort_unstable();
    pids.dedup();
    for &pid in &pids {
        eprintln!("lab: stopping pid {pid}");
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    wait_gone(&pids, STOP_GRACE);
    for &pid in pids.iter().filter(|p| !is_gone(**p)) {
        eprintln!("lab: pid {pid} ignored SIGTERM, killing it");
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    wait_gone(&pids, STOP_GRACE);
    for &pid in pids.iter().filter(|p| !is_gone(**p)) {
        // Stuck in the kernel (state D): it goes when the kernel lets it.
        eprintln!("lab: pid {pid} survived SIGKILL for {STOP_GRACE:?}; leaving it");
    }
}

/// The processes in a network namespace (`ip netns pids`).
fn netns_pids(ns: &str) -> Result<Vec<i32>, LabError> {
    let out = ip(
        &format!("listing processes in {ns}"),
        &["netns", "pids", ns],
    )?;
    Ok(out
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
        .collect())
}

/// The Pods of every lab node: their processes (each container and its
/// monitor, all in the Pod's network namespace) are ended, then the
/// namespaces removed, then any node end of a veth pair still left. Every
/// process in such a namespace was started by a lab node agent, so all of
/// them go. Every step is tried; the first error is returned.
fn remove_pods() -> Result<(), LabError> {
    let namespaces = netns_list()?;
    let pods: Vec<PodNetns> = namespaces
        .iter()
        .filter_map(|n| PodNetns::parse(n))
        .collect();
    let mut first_error = None;
    let mut pids = vec![];
    for pod in &pods {
        match netns_pids(pod.name) {
            Ok(found) => pids.extend(found),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    stop_processes(pids);
    for pod in &pods {
        if let Err(e) = ip_change(
            &format!("removing Pod namespace {}", pod.name),
            &["netns", "del", pod.name],
        ) {
            eprintln!("lab: {e}");
            first_error.get_or_insert(e);
        }
        // Deleting the Pod's end deletes the pair, but the kernel cleans a
        // deleted namespace up in the background: the node end may linger
        // for a moment. (Removing the node namespace removes it anyway.)
        let veth = pod.host_veth();
        if links(Some(pod.node)).is_ok_and(|l| l.contains(&veth)) {
            let removed = ip_change(
                &format!("removing {veth} of {}", pod.name),
                &["-n", pod.node, "link", "del", &veth],
            );
            if let Err(e) = removed {
                // Gone in between is fine.
                if links(Some(pod.node)).is_ok_and(|l| l.contains(&veth)) {
                    first_error.get_or_insert(e);
                }
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Collects an exited child of this process (a test that ran `up`), so
/// it does not linger as a zombie; does nothing for other processes.
fn reap(pid: i32) {
    let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
}

/// Gone: no such process, or a zombie waiting for its parent.
fn is_gone(pid: i32) -> bool {
    reap(pid);
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn wait_gone(pids: &[i32], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline && !pids.iter().all(|p| is_gone(*p)) {
        std::thread::sleep(POLL);
    }
}

/// Removes what `up` wrote under `dir`, and `dir` itself if that leaves
/// it empty (anything else in it is not ours).
///
/// Pods' containers bind-mount files from their node's directory (volumes,
/// /etc/hosts, nginx's config). Those mounts live in the Pods' own mount
/// namespaces, which end with their processes; a mount that is still in
/// this namespace under `dir` is detached lazily (which never waits). What
/// still cannot be removed is skipped - the rest is removed anyway - and
/// reported in the error.
fn remove_files(dir: &Path) -> Result<(), LabError> {
    let mut made: Vec<PathBuf> = ["pids", "logs", "kubeconfig", "pki"]
        .iter()
        .map(|p| dir.join(p))
        .collect();
    // The VMs' disks (DIR/kl-master/, ...), for a lab of any size.
    if let Ok(entries) = std::fs::read_dir(dir) {
        made.extend(entries.flatten().map(|e| e.path()).filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(is_node_netns)
        }));
    }
    detach_mounts_under(dir);
    let mut left = vec![];
    for path in made {
        remove_tree(&path, &mut left);
    }
    let _ = std::fs::remove_dir(dir);
    if left.is_empty() {
        return Ok(());
    }
    for (path, error) in &left {
        eprintln!("lab: could not remove {}: {error}", path.display());
    }
    Err(LabError::Leftovers(left))
}

/// Removes `path` and everything under it, without following symlinks,
/// going on past what cannot be removed (collected in `left`).
fn remove_tree(path: &Path, left: &mut Vec<(PathBuf, std::io::Error)>) {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => return left.push((path.to_path_buf(), e)),
    };
    if !metadata.is_dir() {
        if let Err(e) = std::fs::remove_file(path) {
            left.push((path.to_path_buf(), e));
        }
        return;
    }
    match std::fs::read_dir(path) {
        Ok(entries) => {
            for entry in entries.flatten() {
                remove_tree(&entry.path(), left);
            }
        }
        Err(e) => return left.push((path.to_path_buf(), e)),
    }
    if let Err(e) = std::fs::remove_dir(path) {
        // A child that could not go is already reported.
        if !left.iter().any(|(p, _)| p.starts_with(path)) {
            left.push((path.to_path_buf(), e));
        }
    }
}

/// Lazily unmounts every mount of this mount namespace at or below `dir`,
/// deepest first (a mount there makes `rmdir` fail with EBUSY).
fn detach_mounts_under(dir: &Path) {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut mounts: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|point| PathBuf::from(unescape_mountinfo(point)))
        .filter(|point| point.starts_with(dir))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    mounts.dedup();
    for point in mounts {
        eprintln!("lab: detaching the mount at {}", point.display());
        if let Err(e) = nix::mount::umount2(&point, nix::mount::MntFlags::MNT_DETACH) {
            eprintln!("lab: detaching {}: {e}", point.display());
        }
    }
}

/// Mount points in /proc/self/mountinfo escape space, tab, newline and
/// backslash as `\ooo` (octal).
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------
// status
// ---------------------------------------------------------------------

/// What `status` reports: the lab as found on the system.
#[derive(Debug)]
pub struct LabStatus {
    /// The bridge's addresses, `None` if there is no bridge.
    pub bridge: Option<Vec<String>>,
    /// Unreachable routes in the host namespace.
    pub unreachable_routes: Vec<String>,
    pub nodes: Vec<NodeStatus>,
    /// Components from the PID files.
    pub components: Vec<ComponentStatus>,
    pub apiserver_ready: bool,
}

/// A node namespace, its links with their IPv4 addresses, and how many Pod
/// namespaces its node agent made.
#[derive(Debug)]
pub struct NodeStatus {
    pub netns: String,
    pub links: Vec<(String, Vec<String>)>,
    pub pods: usize,
}

/// A component named by a PID file.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ComponentStatus {
    pub name: String,
    pub pid: i32,
    /// Alive, and still running the component's binary.
    pub running: bool,
}

/// Reads the lab's state from the system and `dir`.
pub fn status(dir: &Path) -> Result<LabStatus, LabError> {
    let bridge = if links(None)?.iter().any(|l| l == LAN_BRIDGE) {
        Some(addresses(None, LAN_BRIDGE)?)
    } else {
        None
    };
    let mut nodes = vec![];
    let all_namespaces = netns_list()?;
    let pods: Vec<PodNetns> = all_namespaces
        .iter()
        .filter_map(|n| PodNetns::parse(n))
        .collect();
    let mut namespaces: Vec<String> = all_namespaces
        .iter()
        .filter(|n| is_node_netns(n))
        .cloned()
        .collect();
    namespaces.sort_by_key(|n| (n != "kl-master", n.len(), n.clone()));
    for ns in namespaces {
        let mut node_links = vec![];
        for link in links(Some(&ns))? {
            let addrs = addresses(Some(&ns), &link)?;
            node_links.push((link, addrs));
        }
        let pods = pods.iter().filter(|p| p.node == ns).count();
        nodes.push(NodeStatus {
            netns: ns,
            links: node_links,
            pods,
        });
    }
    let mut components = vec![];
    if let Ok(entries) = std::fs::read_dir(dir.join("pids")) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(component) = name.strip_suffix(".pid") {
                if let Some(pid) = recorded_pid(dir, component) {
                    let binary = component.split('-').next().unwrap_or(component);
                    let running = !is_gone(pid) && lab_binary_of(pid) == Some(binary);
                    components.push(ComponentStatus {
                        name: component.to_string(),
                        pid,
                        running,
                    });
                }
            }
        }
    }
    components.sort();
    let apiserver_ready = bridge.is_some() && apiserver_ready(dir);
    Ok(LabStatus {
        bridge,
        unreachable_routes: unreachable_routes()?,
        nodes,
        components,
        apiserver_ready,
    })
}

impl std::fmt::Display for LabStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.bridge {
            Some(addrs) => writeln!(f, "host: {LAN_BRIDGE} {}", addrs.join(" "))?,
            None => writeln!(f, "host: no {LAN_BRIDGE} (the lab is down)")?,
        }
        writeln!(
            f,
            "host: unreachable routes: {}",
            if self.unreachable_routes.is_empty() {
                "none".to_string()
            } else {
                self.unreachable_routes.join(" ")
            }
        )?;
        for node in &self.nodes {
            let described: Vec<String> = node
                .links
                .iter()
                .map(|(link, addrs)| format!("{link} {}", addrs.join(",")).trim().to_string())
                .collect();
            let pods = match node.pods {
                1 => "1 pod namespace".to_string(),
                n => format!("{n} pod namespaces"),
            };
            writeln!(f, "node {}: {}  ({pods})", node.netns, described.join("  "))?;
        }
        writeln!(f, "{:<22} {:>8}  STATE", "COMPONENT", "PID")?;
        for c in &self.components {
            let state = if c.running { "running" } else { "not running" };
            writeln!(f, "{:<22} {:>8}  {state}", c.name, c.pid)?;
        }
        write!(
            f,
            "apiserver {}/readyz: {}",
            apiserver_url(),
            if self.apiserver_ready {
                "ok"
            } else {
                "not answering"
            }
        )
    }
}

// ---------------------------------------------------------------------
// One lab per machine
// ---------------------------------------------------------------------

/// An exclusive `flock` on [`LOCK_PATH`], held while a user owns the lab.
/// Released when dropped (the kernel also releases it if the process
/// dies, so a crash never leaves the lab locked).
pub struct LabLock {
    _lock: nix::fcntl::Flock<File>,
}

impl LabLock {
    /// Takes the lock, waiting at most `wait` for the current holder.
    pub fn acquire(wait: Duration) -> Result<LabLock, LabError> {
        let deadline = Instant::now() + wait;
        let mut told = false;
        loop {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(LOCK_PATH)
                .map_err(io_error(format!("opening {LOCK_PATH}")))?;
            match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(LabLock { _lock: lock }),
                Err((_, nix::errno::Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                    if !told {
                        eprintln!("lab: waiting for {LOCK_PATH} (another lab user holds it)");
                        told = true;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Err(LabError::Locked(wait)),
                Err((_, errno)) => {
                    return Err(LabError::Io {
                        context: format!("locking {LOCK_PATH}"),
                        source: errno.into(),
                    })
                }
            }
        }
    }
}

/// How long [`Lab::up`] waits for another test's lab to go away.
pub const TEST_LOCK_WAIT: Duration = Duration::from_secs(20 * 60);

/// The lab as the end-to-end tests hold it: built by [`Lab::up`] under the
/// machine's lab lock, and torn down when dropped - also when the test
/// panics (then the components' last log lines are printed first).
pub struct Lab {
    pub options: LabOptions,
    lock: Option<LabLock>,
}

impl Lab {
    /// Takes the lab lock and brings the lab up. If `up` fails, whatever it
    /// made is removed before the error is returned.
    ///
    /// A lab that is already there was made by `e2e up` (which does not
    /// keep the lock) or left by a killed test: a test must not adopt it and
    /// then tear it down under someone's feet, so that is an error.
    pub fn up(options: LabOptions) -> Result<Lab, LabError> {
        let lock = LabLock::acquire(TEST_LOCK_WAIT)?;
        let nodes: Vec<String> = netns_list()?
            .into_iter()
            .filter(|n| is_node_netns(n))
            .collect();
        if !nodes.is_empty() {
            return Err(LabError::AlreadyUp(nodes));
        }
        let lab = Lab {
            options,
            lock: Some(lock),
        };
        up(&lab.options)?; // on error, dropping `lab` runs down
        Ok(lab)
    }

    /// The apiserver's URL (from the host and every node).
    pub fn server(&self) -> String {
        apiserver_url()
    }

    /// The kubeconfig written for the host (the administrator's).
    pub fn kubeconfig(&self) -> PathBuf {
        kubeconfig_path(&self.options.dir)
    }

    /// A client of the lab's apiserver as its administrator, from
    /// [`Lab::kubeconfig`].
    pub async fn client(&self) -> Result<kube::Client, LabError> {
        client_from(&self.kubeconfig()).await
    }

    /// The PID of a running component (`apiserver`, `controller`,
    /// `nodeagent-worker1`).
    pub fn pid(&self, component: &str) -> Option<i32> {
        recorded_pid(&self.options.dir, component)
    }

    /// Tears the lab down now and reports how it went, then releases the
    /// lock.
    pub fn down(mut self) -> Result<(), LabError> {
        let result = down(&self.options.dir);
        self.lock = None;
        result
    }

    fn print_logs(&self) {
        let Ok(entries) = std::fs::read_dir(self.options.dir.join("logs")) else {
            return;
        };
        for entry in entries.flatten() {
            eprintln!(
                "---- last lines of {} ----\n{}",
                entry.path().display(),
                log_tail(&entry.path(), 30)
            );
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.lock.is_none() {
            return; // already down
        }
        if std::thread::panicking() {
            self.print_logs();
        }
        if let Err(e) = down(&self.options.dir) {
            eprintln!("lab: tearing down the lab failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_numbered_from_the_master_address() {
        let nodes = Node::all(2);
        let described: Vec<_> = nodes
            .iter()
            .map(|n| (n.netns(), n.lan_ip.to_string()))
            .collect();
        assert_eq!(
            described,
            [
                ("kl-master".to_string(), "192.168.56.10".to_string()),
                ("kl-worker1".to_string(), "192.168.56.11".to_string()),
                ("kl-worker2".to_string(), "192.168.56.12".to_string()),
            ]
        );
    }

    #[test]
    fn every_interface_name_fits_the_kernel_limit() {
        for node in Node::all(MAX_WORKERS) {
            assert!(node.lan_port().len() <= 15, "{}", node.lan_port());
        }
    }

    #[test]
    fn down_recognizes_only_lab_names() {
        assert!(is_node_netns("kl-master"));
        assert!(is_node_netns("kl-worker12"));
        assert!(!is_node_netns("kl-worker"));
        assert!(!is_node_netns("kl-workerx"));
        assert!(!is_node_netns("kl-pod-abc"));
        assert!(!is_node_netns("master"));
        assert!(is_lan_port("kl-worker3-lan"));
        assert!(is_lan_port("kl-master-lan"));
        assert!(!is_lan_port("kl-lan0"));
        assert!(!is_lan_port("kl-other-lan"));
    }

    #[test]
    fn down_removes_only_pods_of_lab_nodes() {
        let pod = PodNetns::parse("kl-pod-kl-worker1-deadbeef").unwrap();
        assert_eq!((pod.node, pod.hash), ("kl-worker1", "deadbeef"));
        assert_eq!(pod.host_veth(), "vethdeadbeef");
        assert_eq!(
            PodNetns::parse("kl-pod-kl-master-0123abcd").map(|p| p.node),
            Some("kl-master")
        );
        for other in [
            "kl-pod-nettest12x-deadbeef",
            "kl-pod-kl-worker1-deadbee",
            "kl-pod-kl-worker1-deadbeefx",
            "kl-pod-kl-worker1-xyzxyzxy",
            "kl-pod-kl-worker-deadbeef",
            "kl-worker1",
            "kl-pod-deadbeef",
        ] {
            assert_eq!(PodNetns::parse(other), None, "{other}");
        }
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_mountinfo(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(unescape_mountinfo(r"/x\134y"), r"/x\y");
        assert_eq!(unescape_mountinfo(r"/plain"), "/plain");
    }

    #[test]
    fn remove_files_goes_on_past_what_it_cannot_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("lab");
        std::fs::create_dir_all(dir.join("kl-worker1/nodeagent/pods/u1")).unwrap();
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        std::fs::write(dir.join("logs/a.log"), "x").unwrap();
        std::fs::write(dir.join("kl-worker1/nodeagent/pods/u1/hosts"), "x").unwrap();
        std::os::unix::fs::symlink("/etc", dir.join("kl-worker1/link")).unwrap();
        remove_files(&dir).unwrap();
        assert!(!dir.exists());
        assert!(Path::new("/etc").exists(), "symlinks are not followed");
    }
}
