//! Pods: the kubelet's main job, running the Pods bound to this node.
//!
//! The scheduler writes `spec.nodeName` into a Pod; the kubelet of that
//! node watches for Pods with its name (`fieldSelector=spec.nodeName=N`)
//! and makes each of them real through the container runtime, as a CRI
//! client ([`crate::cri`]): containerd pulls the images, runs the sandbox
//! (whose network the CNI plugin makes, [`crate::cni`]) and the
//! containers, with runc.
//!
//! ```text
//!  apiserver --watch Pods on this node--> manager (this file)
//!                                            |  one task per Pod
//!                                            v
//!                                        worker.rs  sandbox -> volumes -> pull -> containers -> status
//!                                            |  CRI (gRPC, unix socket)           ^
//!                                            v                                    | wakes
//!                 containerd --CNI ADD--> kube-lite-cni      pleg.rs (lists containers every second)
//!                     |  shim + runc
//!                     v
//!                pause, nginx, sh ...  (the containers)
//! ```
//!
//! # Layout
//!
//! - [`worker`]: the per-Pod reconcile loop (the kubelet's pod workers).
//! - [`sandbox`]: the Pod's sandbox in the runtime, and its directory.
//! - [`pull`]: images by `imagePullPolicy`, with `imagePullSecrets`.
//! - [`container`]: containers as the runtime reports them.
//! - [`pleg`]: hearing about container exits (the PLEG's relist).
//! - [`volumes`]: ConfigMap, Secret, projected, emptyDir and hostPath.
//! - [`referenced`]: the ConfigMaps and Secrets the Pods name, followed.
//! - [`env`]: the containers' environment variables.
//! - [`probes`]: readiness, liveness and startup probes.
//! - [`status`]: phase and conditions, as the kubelet computes them.
//! - [`registry`]: which containers run where, for `kubectl logs`/`exec`.
//! - [`events`]: the kubelet's Events (`Pulled`, `Started`, `BackOff`...).

pub mod container;
pub mod env;
pub mod events;
pub mod pleg;
pub mod probes;
pub mod pull;
pub mod referenced;
pub mod registry;
pub mod sandbox;
pub mod status;
pub mod volumes;
pub mod worker;

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::runtime::reflector::Store;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;
use tokio::sync::watch;

use crate::cri::config::NodeSettings;
use crate::cri::Runtime;
pub use registry::Registry;
pub use sandbox::ClusterDns;

/// What every pod worker shares.
pub struct Shared {
    pub client: kube::Client,
    pub node_name: String,
    pub node_ip: Ipv4Addr,
    /// `<data-dir>/pods`: one directory per Pod, by UID.
    pub pods_dir: PathBuf,
    /// The container runtime (a cheap handle on one connection).
    pub runtime: Runtime,
    /// Its name, the prefix of container IDs (`containerd`).
    pub runtime_name: String,
    /// Cgroups, log directory and memory for the CRI configs.
    pub node_settings: NodeSettings,
    pub dns: ClusterDns,
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
    pub pleg: pleg::Pleg,
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
    pub runtime: Runtime,
    pub node_settings: NodeSettings,
    pub dns: ClusterDns,
    /// Every Service (the agent's shared cache), for the containers'
    /// service environment variables; None without a pod network.
    pub services: Option<Store<Service>>,
    /// Where the runtime's `containerd://<version>` is published, for the
    /// Node's status.
    pub runtime_version: watch::Sender<String>,
}

/// How long to wait between tries while the runtime does not answer.
const RUNTIME_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs the Pods of this node until the agent stops.
pub async fn run(
    client: kube::Client,
    config: PodsConfig,
    registry: Registry,
) -> anyhow::Result<()> {
    let pods_dir = config.data_dir.join("pods");
    std::fs::create_dir_all(&pods_dir)?;
    // Nothing runs without the runtime: wait for it (at boot it may come
    // up after the agent), and publish its version for the Node.
    let mut runtime = config.runtime.clone();
    let mut told = false;
    let version = loop {
        match runtime.version().await {
            Ok(version) => break version,
            Err(status) => {
                if !told {
                    tracing::warn!(error = %status.message(), "waiting for the container runtime");
                    told = true;
                }
                tokio::time::sleep(RUNTIME_RETRY).await;
            }
        }
    };
    tracing::info!(runtime = %version.runtime_name, version = %version.runtime_version, "container runtime ready");
    config.runtime_version.send_replace(format!(
        "{}://{}",
        version.runtime_name, version.runtime_version
    ));
    let pleg = pleg::Pleg::default();
    tokio::spawn(pleg.clone().run(config.runtime.clone()));

    let (changed, referenced_changed) = watch::channel(0u64);
    let changed = Arc::new(changed);

    let shared = Arc::new(Shared {
        client: client.clone(),
        node_name: config.node_name.clone(),
        node_ip: config.node_ip,
        pods_dir,
        runtime: config.runtime,
        runtime_name: version.runtime_name,
        node_settings: config.node_settings,
        dns: config.dns,
        services: config.services,
        configmaps: referenced::Referenced::new(client.clone(), Arc::clone(&changed)),
        secrets: referenced::Referenced::new(client.clone(), changed),
        referenced_changed,
        registry,
        events: events::Recorder::new(client.clone(), &config.node_name),
        pleg,
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

/// After the first list of Pods: every sandbox and Pod directory that
/// belongs to no listed Pod is a leftover of Pods deleted while the agent
/// was down. Their sandboxes are stopped (the CNI plugin's DEL frees the
/// address) and removed, their directories deleted.
async fn remove_leftovers(shared: &Shared, live: &HashSet<String>) {
    let mut runtime = shared.runtime.clone();
    match sandbox::all(&mut runtime).await {
        Ok(sandboxes) => {
            for (id, uid) in sandboxes.into_iter().filter(|(_, uid)| !live.contains(uid)) {
                tracing::info!(pod_uid = %uid, sandbox = %id, "removing the sandbox of a Pod deleted while the agent was away");
                if let Err(status) = runtime.remove_sandbox(&id).await {
                    tracing::warn!(sandbox = %id, error = %status.message(), "cannot remove a leftover sandbox");
                }
            }
        }
        Err(status) => tracing::warn!(error = %status.message(), "cannot list the sandboxes"),
    }
    if let Ok(entries) = std::fs::read_dir(&shared.pods_dir) {
        for entry in entries.flatten() {
            let uid = entry.file_name().to_string_lossy().into_owned();
            if live.contains(&uid) {
                continue;
            }
            volumes::unmount_memory_backed(&entry.path());
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
