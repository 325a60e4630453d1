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
//! - each node runs its own containerd, which runs the node's Pods (their
//!   network namespaces, made by the CNI plugin with a veth pair to the
//!   node's bridge, are files under the node's containerd state).
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
//!
//! Files: this one the lab's names and addresses, `up.rs` (the VMs and
//! their LAN), `install.rs` (kubeadm-lite init and join on them),
//! `containerd.rs` (each VM's containerd),
//! `process.rs` (starting the units' commands), `down.rs`, `status.rs`,
//! `reboot.rs`, `registry.rs` (the image registry on the host's
//! address), `ip.rs` (the commands), `guard.rs` (the lock and [`Lab`]).

use std::fs::{File, OpenOptions};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

use kubeadm_lite::layout::Layout;
use kubeadm_lite::{WAITING_FOR_CONTAINERD, WAITING_FOR_CONTROL_PLANE, WAITING_FOR_NODE};

mod containerd;
mod down;
mod guard;
mod install;
mod ip;
mod process;
mod reboot;
mod registry;
mod status;
mod up;

pub use containerd::*;
pub use down::*;
pub use guard::*;
pub use install::*;
use ip::*;
pub use process::*;
pub use reboot::*;
pub use registry::*;
pub use status::*;
pub use up::*;

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
pub const LAB_BINARIES: &[&str] = &[
    "apiserver",
    "controller",
    "nodeagent",
    "kubeadm-lite",
    "docker-registry",
    "containerd",
    "containerd-shim-runc-v2",
];

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
    #[error("there is no lab node {0} (`e2e status` lists them)")]
    NoSuchNode(String),
    #[error("kubeadm-lite on {node} failed (log {log}):\n{message}")]
    Kubeadm {
        node: String,
        message: String,
        log: PathBuf,
    },
    #[error(transparent)]
    Images(#[from] crate::images::ImageError),
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
    #[error("cgroups of Pods still hold processes: {}", .0.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    Cgroups(Vec<PathBuf>),
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
