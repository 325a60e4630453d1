//! Pods: the kubelet's main job, running the Pods bound to this node.
//!
//! The scheduler writes `spec.nodeName` into a Pod; the kubelet of that
//! node watches for Pods with its name (`fieldSelector=spec.nodeName=N`)
//! and makes each of them real. kube-lite has no container images and no
//! container runtime: a container is a program of the node (chosen by the
//! image catalog, [`crate::images`]) started in Linux namespaces that give
//! it what a container has - its own network with the Pod's IP, its own
//! hostname, its own view of a few files and directories.
//!
//! ```text
//!  apiserver --watch Pods on this node--> manager (this file)
//!                                            |  one task per Pod
//!                                            v
//!                                        worker.rs  sandbox -> volumes -> containers -> status
//!                                            |  starts
//!                                            v
//!                 `nodeagent monitor` (monitor.rs, one per container, survives agent restarts)
//!                                            |  fork + namespaces + exec
//!                                            v
//!                                  nginx / sh / echo  (the container)
//! ```
//!
//! # Layout
//!
//! - [`worker`]: the per-Pod reconcile loop (the kubelet's pod workers).
//! - [`sandbox`]: the Pod's directory, network and shared files.
//! - [`volumes`]: ConfigMap, Secret, projected and emptyDir volumes.
//! - [`referenced`]: the ConfigMaps and Secrets the Pods name, followed.
//! - [`env`]: the containers' environment variables.
//! - [`container`]: container instances on disk: start, adopt, stop.
//! - [`monitor`]: the process that is a container's parent (like conmon).
//! - [`probes`]: readiness, liveness and startup probes.
//! - [`status`]: phase and conditions, as the kubelet computes them.
//! - [`registry`]: which containers run where, for `kubectl logs`/`exec`.
//! - [`events`]: the kubelet's Events (`Pulled`, `Started`, `BackOff`...).

pub mod container;
pub mod env;
pub mod events;
pub mod monitor;
pub mod probes;
pub mod referenced;
pub mod registry;
pub mod sandbox;
pub mod status;
pub mod volumes;
pub mod worker;

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::runtime::reflector::Store;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::sync::watch;

use crate::images::Catalog;
use crate::ipam::Ipam;
use crate::network::PodNetwork;
pub use registry::Registry;
pub use sandbox::ClusterDns;

/// The default size at which a container's log is rotated (the kubelet's
/// `containerLogMaxSize`).
pub const DEFAULT_LOG_MAX_BYTES: u64 = 10 * 1024 * 1024;

/// The node's IPAM once the node has a pod CIDR; shared by the workers.
pub type SharedIpam = Arc<Mutex<Ipam>>;

/// What every pod worker shares.
pub struct Shared {
    pub client: kube::Client,
    pub node_name: String,
    pub node_ip: Ipv4Addr,
    /// `<data-dir>/pods`: one directory per Pod, by UID.
    pub pods_dir: PathBuf,
    pub catalog: Catalog,
    /// `None` when the agent runs without a pod network: only
    /// `hostNetwork` Pods can run then.
    pub network: Option<PodNetwork>,
    pub ipam: watch::Receiver<Option<SharedIpam>>,
    pub dns: ClusterDns,
    pub log_max_bytes: u64,
    /// Every Service, for the containers' environment (None without a
    /// pod network).
    pub services: Option<Store<Service>>,
    /// The ConfigMaps and Secrets this node's Pods name (volumes, env,
    /// image pull credentials), each followed by its own watch.
    pub configmaps: referenced::Referenced<ConfigMap>,
    pub secrets: referenced::Referenced<Secret>,
    /// Bumped on every change of a followed ConfigMap or Secret: wakes
    /// the workers to refresh their volumes.
    pub referenced_changed: watch::Receiver<u64>,
    pub registry: Registry,
    pub events: events::Recorder,
}

/// What a worker hears from the manager.
#[derive(Debug, Clone)]
pub enum PodUpdate {
    /// The Pod's latest version.
    Pod(Arc<Pod>),
    /// The Pod no longer exists in the API (deleted for good, or moved
    /// away): stop it without deleting anything there.
    Gone,
}

/// How the Pods part is set up.
pub struct PodsConfig {
    pub node_name: String,
    pub node_ip: Ipv4Addr,
    pub data_dir: PathBuf,
    pub catalog: Catalog,
    pub network: Option<PodNetwork>,
    pub dns: ClusterDns,
    pub log_max_bytes: u64,
    /// Every Service (the agent's shared cache), for the containers'
    /// service environment variables; None without a pod network.
    pub services: Option<Store<Service>>,
}

/// Runs the Pods of this node until the agent stops.
pub async fn run(
    client: kube::Client,
    config: PodsConfig,
    ipam: watch::Receiver<Option<SharedIpam>>,
    registry: Registry,
) -> anyhow::Result<()> {
    let pods_dir = config.data_dir.join("pods");
    std::fs::create_dir_all(&pods_dir)?;

    let (changed, referenced_changed) = watch::channel(0u64);
    let changed = Arc::new(changed);

    let shared = Arc::new(Shared {
        client: client.clone(),
        node_name: config.node_name.clone(),
        node_ip: config.node_ip,
        pods_dir,
        catalog: config.catalog,
        network: config.network,
        ipam,
        dns: config.dns,
        log_max_bytes: config.log_max_bytes,
        services: config.services,
        configmaps: referenced::Referenced::new(client.clone(), Arc::clone(&changed)),
        secrets: referenced::Referenced::new(client.clone(), changed),
        referenced_changed,
        registry,
        events: events::Recorder::new(client.clone(), &config.node_name),
    });

    let selector = format!("spec.nodeName={}", config.node_name);
    let pods = watcher::watcher(
        Api::<Pod>::all(client),
        watcher::Config::default().fields(&selector),
    )
    .default_backoff();
    futures::pin_mut!(pods);
    let mut workers: HashMap<String, watch::Sender<PodUpdate>> = HashMap::new();
    let mut listing: Option<HashSet<String>> = None;
    let mut cleaned = false;
    while let Some(event) = pods.next().await {
        workers.retain(|_, tx| !tx.is_closed());
        match event {
            Ok(Event::Init) => listing = Some(HashSet::new()),
            Ok(Event::InitApply(pod)) | Ok(Event::Apply(pod)) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                if let Some(seen) = listing.as_mut() {
                    seen.insert(uid.clone());
                }
                dispatch(&shared, &mut workers, uid, Arc::new(pod));
            }
            Ok(Event::Delete(pod)) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                if let Some(tx) = workers.get(&uid) {
                    tx.send_replace(PodUpdate::Gone);
                }
            }
            Ok(Event::InitDone) => {
                let seen = listing.take().unwrap_or_default();
                for (uid, tx) in &workers {
                    if !seen.contains(uid) {
                        tx.send_replace(PodUpdate::Gone);
                    }
                }
                if !cleaned {
                    cleaned = true;
                    let shared = Arc::clone(&shared);
                    tokio::spawn(async move { remove_leftovers(&shared, &seen).await });
                }
            }
            Err(error) => tracing::warn!(%error, "Pod watch error; retrying"),
        }
    }
    anyhow::bail!("the watch of this node's Pods ended")
}

/// Now, to the second: the precision the API keeps, so that a status
/// computed here compares equal to the same status read back.
pub fn now_seconds() -> k8s_openapi::jiff::Timestamp {
    let now = k8s_openapi::jiff::Timestamp::now();
    k8s_openapi::jiff::Timestamp::from_second(now.as_second()).unwrap_or(now)
}

/// Passes a Pod to its worker, starting one for a new Pod.
fn dispatch(
    shared: &Arc<Shared>,
    workers: &mut HashMap<String, watch::Sender<PodUpdate>>,
    uid: String,
    pod: Arc<Pod>,
) {
    if let Some(tx) = workers.get(&uid) {
        tx.send_replace(PodUpdate::Pod(pod));
        return;
    }
    // A Pod that finished while the agent was away, and whose files are
    // gone, must not run again.
    let (tx, rx) = watch::channel(PodUpdate::Pod(Arc::clone(&pod)));
    let worker = worker::PodWorker::new(Arc::clone(shared), pod);
    tokio::spawn(worker.run(rx));
    workers.insert(uid, tx);
}

/// After the first list of Pods: everything on the node that belongs to no
/// listed Pod is a leftover of Pods deleted while the agent was down (or
/// of a crash). Their processes are killed, their namespaces, veths and
/// IPs removed, their directories deleted.
async fn remove_leftovers(shared: &Shared, live: &HashSet<String>) {
    if let Ok(entries) = std::fs::read_dir(&shared.pods_dir) {
        for entry in entries.flatten() {
            let uid = entry.file_name().to_string_lossy().into_owned();
            if live.contains(&uid) {
                continue;
            }
            tracing::info!(pod_uid = %uid, "removing a Pod deleted while the agent was away");
            kill_pod_processes(shared, &uid);
            if let Some(network) = &shared.network {
                if let Err(error) = network.teardown(&uid).await {
                    tracing::warn!(pod_uid = %uid, %error, "cannot remove a leftover Pod network");
                }
            }
            volumes::unmount_memory_backed(&entry.path());
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    if let Some(network) = &shared.network {
        let keep: HashSet<String> = live.iter().map(|uid| network.netns_name(uid)).collect();
        crate::nodenet::remove_leftover_pod_namespaces(network, &keep).await;
    }
    // The IPAM may come later than the list (no pod CIDR yet).
    let mut ipam_rx = shared.ipam.clone();
    let ipam = match ipam_rx.wait_for(Option::is_some).await {
        Ok(ipam) => ipam.clone(),
        Err(_) => return,
    };
    if let Some(ipam) = ipam {
        let result = ipam
            .lock()
            .expect("ipam lock")
            .reconcile(live.iter().map(String::as_str));
        if let Err(error) = result {
            tracing::warn!(%error, "cannot release leftover Pod IPs");
        }
    }
}

/// Kills (SIGKILL) every process of a Pod: the container monitors and
/// containers it recorded, and anything else still in its network
/// namespace. Used once the containers had their grace period, and for
/// leftovers.
pub fn kill_pod_processes(shared: &Shared, uid: &str) {
    let dir = sandbox::PodDir::new(&shared.pods_dir, uid);
    for pid in recorded_pids(dir.path()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    if let Some(network) = &shared.network {
        let netns = crate::network::netns::path(&network.netns_name(uid));
        for pid in pids_in_netns(&netns) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// Live processes named by a Pod directory's monitor and PID records.
fn recorded_pids(pod_dir: &Path) -> Vec<i32> {
    let mut pids = vec![];
    let Ok(containers) = std::fs::read_dir(pod_dir.join("containers")) else {
        return pids;
    };
    for container in containers.flatten() {
        let Ok(files) = std::fs::read_dir(container.path()) else {
            continue;
        };
        for file in files.flatten() {
            let path = file.path();
            let name = file.file_name().to_string_lossy().into_owned();
            let record = if name.ends_with(".monitor.json") {
                monitor::read_json::<container::MonitorRecord>(&path)
                    .ok()
                    .flatten()
                    .map(|m| (m.pid, m.start_ticks))
            } else if name.ends_with(".pid.json") {
                monitor::read_json::<monitor::ProcessRecord>(&path)
                    .ok()
                    .flatten()
                    .map(|p| (p.pid, p.start_ticks))
            } else {
                None
            };
            if let Some((pid, ticks)) = record {
                if monitor::process_start_ticks(pid) == Some(ticks) {
                    pids.push(pid);
                }
            }
        }
    }
    pids
}

/// Processes whose network namespace is the one bound at `netns_file`
/// (what `ip netns pids` does: compare namespace inode numbers).
pub fn pids_in_netns(netns_file: &Path) -> Vec<i32> {
    use std::os::unix::fs::MetadataExt;
    let Ok(target) = std::fs::metadata(netns_file) else {
        return vec![];
    };
    let (dev, ino) = (target.dev(), target.ino());
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|m| m.dev() == dev && m.ino() == ino)
        })
        .collect()
}
