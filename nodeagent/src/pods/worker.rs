//! The pod worker: one task per Pod, making the node match the Pod.
//!
//! The kubelet runs one "pod worker" per Pod and calls its `SyncPod` every
//! time something about the Pod changes. Ours does the same: a loop that
//! reconciles, then sleeps until the Pod object changes, a container
//! exits, a probe or a back-off is due, or a ConfigMap or Secret it names
//! changes.
//!
//! One reconcile ([`PodWorker::sync`]) walks the Pod's life in order, and
//! running it again changes nothing:
//!
//! 1. **Deleted?** (`deletionTimestamp` set, or gone from the API) stop the
//!    containers (the image's stop signal, SIGKILL after the grace period),
//!    remove the sandbox and the IP, then delete the Pod for good.
//! 2. **Sandbox**: the Pod's directory and files, its network namespace
//!    and IP ([`super::sandbox`]).
//! 3. **References**: the ConfigMaps and Secrets the Pod names are
//!    followed and listed ([`super::referenced`]).
//! 4. **Volumes**: ConfigMap, Secret and token files written and kept up
//!    to date ([`super::volumes`]).
//! 5. **Containers**: start those that should run; restart those that
//!    exited, by `restartPolicy`, with the CrashLoopBackOff delay; run the
//!    probes that are due ([`super::probes`]).
//! 6. **Status**: report it when it changed ([`super::status`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Pod, PodStatus, ServiceAccount, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::Api;
use tokio::sync::watch;
use tokio::time::Instant;

use super::container::{ContainerDir, Instance, InstanceState};
use super::monitor::{ExitRecord, MonitorSpec, Mount, MountSource};
use super::probes::{self, ProbeState};
use super::sandbox::{self, PodDir, PodFiles, PodRecord};
use super::{env, events, volumes, PodUpdate, Shared};
use crate::images::Image;

/// The first delay of CrashLoopBackOff and ImagePullBackOff; it doubles
/// after every failure up to [`MAX_BACKOFF`] (the kubelet's values).
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(10);
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// A container that ran this long without failing starts over at the
/// initial back-off.
pub const BACKOFF_RESET: Duration = Duration::from_secs(600);
/// How soon a failed sandbox or volume setup is retried.
const RETRY: Duration = Duration::from_secs(2);
/// How long a Pod waits for the ConfigMaps and Secrets it names to be
/// listed before an event says so (it keeps waiting).
const REFERENCES_TIMEOUT: Duration = Duration::from_secs(30);

/// The Pod's network, once set up.
#[derive(Debug, Clone)]
struct Sandbox {
    ip: Ipv4Addr,
    netns: Option<PathBuf>,
}

/// One container of the Pod, as the worker tracks it.
struct ContainerRuntime {
    name: String,
    dir: ContainerDir,
    /// The latest instance, running or ended.
    current: Option<Instance>,
    /// How the instance before it ended (`lastState`).
    last_exit: Option<(ExitRecord, String, String)>,
    /// Why it does not run, when it does not (`state.waiting`).
    waiting: Option<(String, String)>,
    /// When the next start may happen (back-off).
    not_before: Option<Instant>,
    backoff: Duration,
    /// Whether the current instance's end has been accounted for.
    exit_handled: bool,
    started_at: Option<Instant>,
    readiness: Option<ProbeState>,
    liveness: Option<ProbeState>,
    startup: Option<ProbeState>,
    image: Option<Image>,
}

impl ContainerRuntime {
    fn new(name: &str, dir: ContainerDir) -> ContainerRuntime {
        ContainerRuntime {
            name: name.to_string(),
            dir,
            current: None,
            last_exit: None,
            waiting: Some(("ContainerCreating".into(), String::new())),
            not_before: None,
            backoff: Duration::ZERO,
            exit_handled: false,
            started_at: None,
            readiness: None,
            liveness: None,
            startup: None,
            image: None,
        }
    }

    /// restartCount: the number of the current instance.
    fn restart_count(&self) -> i32 {
        self.current.as_ref().map_or(0, |i| i.n as i32)
    }

    fn running(&self) -> bool {
        self.current.as_ref().is_some_and(|i| {
            matches!(
                i.state(),
                InstanceState::Running(_) | InstanceState::Starting
            )
        })
    }

    fn ready(&self) -> bool {
        self.running()
            && self.startup.as_ref().is_none_or(|p| p.passing)
            && self.readiness.as_ref().is_none_or(|p| p.passing)
    }
}

/// What [`PodWorker::sync`] concluded.
enum Next {
    /// Keep the Pod; sync again when something happens.
    Wait,
    /// The Pod is gone from the node: end the worker.
    Done,
}

pub struct PodWorker {
    shared: Arc<Shared>,
    uid: String,
    pod: Arc<Pod>,
    gone: bool,
    dir: PodDir,
    sandbox: Option<Sandbox>,
    sandbox_error: Option<String>,
    volume_error: Option<String>,
    containers: BTreeMap<String, ContainerRuntime>,
    start_time: Time,
    reported: Option<PodStatus>,
    /// The Pod finished (Succeeded/Failed): its sandbox is gone, nothing
    /// restarts.
    finished: bool,
    /// ServiceAccount tokens of its projected volumes, by volume: the
    /// token, and when to ask for a fresh one.
    tokens: BTreeMap<String, (String, Instant)>,
    /// The Pod passed admission (or was running before the agent started).
    admitted: bool,
    /// Since when the worker waits for the ConfigMaps and Secrets the Pod
    /// names to be listed, and whether it said it waited too long.
    awaiting_references: Option<(Instant, bool)>,
    /// The `imagePullSecrets` last found missing (reported when it changes).
    missing_pull_secrets: Vec<String>,
}

impl PodWorker {
    /// A worker for `pod`, adopting whatever a previous agent left running.
    pub fn new(shared: Arc<Shared>, pod: Arc<Pod>) -> PodWorker {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let dir = PodDir::new(&shared.pods_dir, &uid);
        let mut containers = BTreeMap::new();
        for c in pod.spec.iter().flat_map(|s| &s.containers) {
            let mut rt = ContainerRuntime::new(&c.name, dir.container(&c.name));
            if let Some(n) = rt.dir.latest_instance() {
                rt.current = Instance::adopt(&rt.dir, n);
                if let Some(instance) = &rt.current {
                    tracing::info!(pod = %pod_key(&pod), container = %c.name, instance = n, "adopted a container");
                    rt.started_at = Some(Instant::now());
                    rt.waiting = None;
                    // A restarted agent cannot know the probes' history:
                    // a running container adopted as ready keeps its
                    // Endpoints (the kubelet does the same after a restart).
                    if matches!(instance.state(), InstanceState::Running(_)) {
                        rt.readiness = c
                            .readiness_probe
                            .clone()
                            .map(|p| ProbeState::new(p, Instant::now(), true));
                        rt.liveness = c
                            .liveness_probe
                            .clone()
                            .map(|p| ProbeState::new(p, Instant::now(), true));
                        rt.startup = c
                            .startup_probe
                            .clone()
                            .map(|p| ProbeState::new(p, Instant::now(), true));
                    }
                }
                if n > 0 {
                    rt.last_exit = read_exit(&rt.dir, n - 1);
                }
            }
            containers.insert(c.name.clone(), rt);
        }
        let start_time = pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.clone())
            .unwrap_or_else(|| Time(super::now_seconds()));
        // A Pod that finished while the agent was away must not run again,
        // whatever is left of it on disk.
        let finished = matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded") | Some("Failed")
        );
        // Running already (adopted containers, or a start time reported):
        // admitted before; a taint added since does not evict it.
        let admitted = containers
            .values()
            .any(|c: &ContainerRuntime| c.current.is_some())
            || pod.status.as_ref().is_some_and(|s| s.start_time.is_some());
        PodWorker {
            admitted,
            shared,
            uid,
            pod,
            gone: false,
            dir,
            sandbox: None,
            sandbox_error: None,
            volume_error: None,
            tokens: BTreeMap::new(),
            containers,
            start_time,
            reported: None,
            finished,
            awaiting_references: None,
            missing_pull_secrets: Vec::new(),
        }
    }

    /// Runs until the Pod is gone from the node.
    pub async fn run(mut self, mut updates: watch::Receiver<PodUpdate>) {
        let mut referenced = self.shared.referenced_changed.clone();
        loop {
            match &*updates.borrow_and_update() {
                PodUpdate::Pod(pod) => self.pod = Arc::clone(pod),
                PodUpdate::Gone => self.gone = true,
            }
            match self.sync().await {
                Next::Done => break,
                Next::Wait => {}
            }
            let deadline = self.next_deadline();
            let exits: Vec<_> = self
                .containers
                .values()
                .filter_map(|c| c.current.as_ref())
                .filter(|i| !i.has_exited())
                .map(|i| i.exited().boxed())
                .collect();
            let any_exit = async move {
                if exits.is_empty() {
                    std::future::pending::<()>().await
                } else {
                    futures::future::select_all(exits).await;
                }
            };
            tokio::select! {
                changed = updates.changed() => {
                    if changed.is_err() {
                        // The manager is gone: the agent is stopping.
                        break;
                    }
                }
                _ = referenced.changed() => {}
                _ = any_exit => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
        self.shared.registry.remove(&self.uid);
        self.shared.configmaps.forget(&self.uid);
        self.shared.secrets.forget(&self.uid);
    }

    fn pod_key(&self) -> String {
        pod_key(&self.pod)
    }

    fn api(&self) -> Api<Pod> {
        let ns = self.pod.metadata.namespace.as_deref().unwrap_or("default");
        Api::namespaced(self.shared.client.clone(), ns)
    }

    /// The earliest moment something is due without an outside event.
    fn next_deadline(&self) -> Instant {
        let mut deadline = Instant::now() + Duration::from_secs(30);
        if self.sandbox.is_none()
            || self.volume_error.is_some()
            || self.awaiting_references.is_some()
        {
            deadline = deadline.min(Instant::now() + RETRY);
        }
        for (_, refresh) in self.tokens.values() {
            deadline = deadline.min(*refresh);
        }
        for c in self.containers.values() {
            // A monitor is starting its container: the PID record comes
            // within milliseconds, and Ready waits for it.
            if c.current
                .as_ref()
                .is_some_and(|i| i.state() == InstanceState::Starting)
            {
                deadline = deadline.min(Instant::now() + Duration::from_millis(20));
            }
            if let Some(t) = c.not_before {
                deadline = deadline.min(t);
            }
            for probe in [&c.readiness, &c.liveness, &c.startup]
                .into_iter()
                .flatten()
            {
                deadline = deadline.min(probe.next);
            }
        }
        deadline
    }

    /// One reconcile of the Pod.
    async fn sync(&mut self) -> Next {
        if self.gone || self.pod.metadata.deletion_timestamp.is_some() {
            self.terminate().await;
            return Next::Done;
        }
        if self.finished {
            return Next::Wait;
        }
        if !self.admitted && !self.admit().await {
            return Next::Wait;
        }
        if !self.ensure_sandbox().await {
            self.report().await;
            return Next::Wait;
        }
        if !self.references_known() {
            self.report().await;
            return Next::Wait;
        }
        self.sync_volumes().await;
        let specs: Vec<Container> = self
            .pod
            .spec
            .iter()
            .flat_map(|s| s.containers.clone())
            .collect();
        for spec in &specs {
            self.sync_container(spec).await;
        }
        self.report().await;
        if self.is_finished() {
            tracing::info!(pod = %self.pod_key(), "all containers ended for good: removing the sandbox");
            self.finished = true;
            self.teardown_sandbox().await;
        }
        Next::Wait
    }

    /// Whether every container has ended and none will restart.
    fn is_finished(&self) -> bool {
        let policy = restart_policy(&self.pod);
        !self.containers.is_empty()
            && self.containers.values().all(|c| {
                c.current.as_ref().is_some_and(|i| match i.state() {
                    InstanceState::Exited(exit) => {
                        c.exit_handled
                            && c.not_before.is_none()
                            && (policy == "Never" || (policy == "OnFailure" && exit.exit_code == 0))
                    }
                    _ => false,
                })
            })
    }

    /// Step 3: the ConfigMaps and Secrets the Pod names are followed, and
    /// each has been listed once, so that volumes and environment are never
    /// made from an empty cache (the kubelet's managers register a Pod's
    /// references the same way). Says so, once, when that takes too long.
    fn references_known(&mut self) -> bool {
        let pod = Arc::clone(&self.pod);
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let (configmaps, secrets) = match &pod.spec {
            Some(spec) => (
                api::pod::configmap_names(spec),
                api::pod::secret_names(spec),
            ),
            None => Default::default(),
        };
        self.shared.configmaps.follow(&self.uid, ns, &configmaps);
        self.shared.secrets.follow(&self.uid, ns, &secrets);
        let waiting = [
            ("configmap", self.shared.configmaps.known(ns, &configmaps)),
            ("secret", self.shared.secrets.known(ns, &secrets)),
        ]
        .into_iter()
        .find(|(_, known)| !known);
        let Some((kind, _)) = waiting else {
            self.awaiting_references = None;
            self.report_missing_pull_secrets(ns);
            return true;
        };
        let (since, told) = self
            .awaiting_references
            .get_or_insert_with(|| (Instant::now(), false));
        if since.elapsed() > REFERENCES_TIMEOUT && !*told {
            *told = true;
            self.shared.events.publish(
                &self.pod,
                events::WARNING,
                "FailedMount",
                &format!("failed to sync {kind} cache: timed out waiting for the condition"),
            );
        }
        false
    }

    /// The kubelet reads a Pod's `imagePullSecrets` before it pulls, and
    /// warns about those it cannot find (the pull is tried anyway).
    fn report_missing_pull_secrets(&mut self, ns: &str) {
        let missing: Vec<String> = self
            .pod
            .spec
            .iter()
            .flat_map(|s| s.image_pull_secrets.iter().flatten())
            .map(|r| r.name.clone())
            .filter(|name| self.shared.secrets.get(ns, name).is_none())
            .collect();
        if missing != self.missing_pull_secrets && !missing.is_empty() {
            self.shared.events.publish(
                &self.pod,
                events::WARNING,
                "FailedToRetrieveImagePullSecret",
                &format!(
                    "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
                    missing.join(", ")
                ),
            );
        }
        self.missing_pull_secrets = missing;
    }

    /// Step 2: the Pod's directory, files and network. Returns whether the
    /// sandbox is ready.
    async fn ensure_sandbox(&mut self) -> bool {
        if self.sandbox.is_some() {
            return true;
        }
        match self.setup_sandbox().await {
            Ok(sandbox) => {
                tracing::info!(pod = %self.pod_key(), ip = %sandbox.ip, "sandbox ready");
                self.sandbox = Some(sandbox);
                self.sandbox_error = None;
                true
            }
            Err(error) => {
                let message = format!("{error:#}");
                if self.sandbox_error.as_deref() != Some(message.as_str()) {
                    tracing::warn!(pod = %self.pod_key(), error = %message, "cannot set up the Pod sandbox yet");
                    self.shared.events.publish(
                        &self.pod,
                        events::WARNING,
                        "FailedCreatePodSandBox",
                        &format!("Failed to create pod sandbox: {message}"),
                    );
                }
                self.sandbox_error = Some(message);
                false
            }
        }
    }

    async fn setup_sandbox(&self) -> anyhow::Result<Sandbox> {
        let (ip, netns) = if sandbox::host_network(&self.pod) {
            (self.shared.node_ip, None)
        } else {
            let network = self.shared.network.as_ref().ok_or_else(|| {
                anyhow::anyhow!("this node agent runs without a pod network (--no-pod-network)")
            })?;
            let ipam = self
                .shared
                .ipam
                .borrow()
                .clone()
                .ok_or_else(|| anyhow::anyhow!("the node has no pod CIDR yet"))?;
            let begin = Instant::now();
            let (ip, cidr) = {
                let mut ipam = ipam.lock().expect("ipam lock");
                (ipam.allocate(&self.uid)?, ipam.cidr())
            };
            let allocated = begin.elapsed();
            let interface = network
                .setup(
                    &self.uid,
                    ipnet::Ipv4Net::new(ip, cidr.net().prefix_len())?,
                    cidr.gateway(),
                )
                .await?;
            tracing::debug!(pod = %self.pod_key(), ?allocated, network = ?begin.elapsed(), "sandbox network");
            (ip, Some(interface.netns.clone()))
        };
        let record = PodRecord {
            namespace: self.pod.metadata.namespace.clone().unwrap_or_default(),
            name: self.pod.metadata.name.clone().unwrap_or_default(),
            uid: self.uid.clone(),
        };
        let node_resolv = std::fs::read_to_string(sandbox::NODE_RESOLV_CONF).unwrap_or_default();
        let files = PodFiles {
            hostname: sandbox::hostname(&self.pod),
            hosts: sandbox::hosts_file(&self.pod, ip, &self.shared.dns),
            resolv_conf: sandbox::resolv_conf(&self.pod, &self.shared.dns, &node_resolv),
        };
        self.dir.prepare(&record, &files)?;
        Ok(Sandbox { ip, netns })
    }

    /// The kubelet's admission of a new Pod: a Pod bound here without the
    /// scheduler (`spec.nodeName` in its manifest) must still tolerate the
    /// node's `NoSchedule` and `NoExecute` taints - the control-plane
    /// node's, say. A Pod it cannot admit is failed at once, with the
    /// reason, as the kubelet does. Returns whether it may run.
    async fn admit(&mut self) -> bool {
        let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(self.shared.client.clone());
        let node = match nodes.get(&self.shared.node_name).await {
            Ok(node) => node,
            Err(error) => {
                // Without the Node, wait: the next sync asks again.
                tracing::warn!(pod = %self.pod_key(), %error, "reading the Node to admit a Pod");
                return false;
            }
        };
        let taints = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        let Some(taint) = api::pod::untolerated_taint(&self.pod, &taints) else {
            self.admitted = true;
            return true;
        };
        let why = format!(
            "Predicate TaintToleration failed: node(s) had untolerated taint {{{}: {}}}",
            taint.key,
            taint.value.as_deref().unwrap_or_default()
        );
        tracing::info!(pod = %self.pod_key(), %why, "pod rejected");
        self.shared
            .events
            .publish(&self.pod, events::WARNING, "TaintToleration", &why);
        let patch = serde_json::json!({"status": {
            "phase": "Failed",
            "reason": "TaintToleration",
            "message": format!("Pod was rejected: {why}"),
        }});
        let name = self.pod.metadata.name.clone().unwrap_or_default();
        if let Err(error) = self
            .api()
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::warn!(pod = %self.pod_key(), %error, "reporting the rejection; will retry");
            return false;
        }
        self.finished = true;
        false
    }

    /// A ServiceAccount token for the projected volume `volume`, bound to
    /// this Pod (the kubelet's token manager): asked for once, and again
    /// when 80% of its life has passed.
    async fn token_for(&mut self, volume: &str, wanted: &volumes::TokenWanted) -> Option<String> {
        if let Some((token, refresh)) = self.tokens.get(volume) {
            if Instant::now() < *refresh {
                return Some(token.clone());
            }
        }
        let ns = self.pod.metadata.namespace.as_deref().unwrap_or("default");
        let account = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into());
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                audiences: Some(wanted.audience.iter().cloned().collect()),
                expiration_seconds: Some(wanted.expiration_seconds),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: self.pod.metadata.name.clone(),
                    uid: self.pod.metadata.uid.clone(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let api: Api<ServiceAccount> = Api::namespaced(self.shared.client.clone(), ns);
        let answer: Result<TokenRequest, _> = api
            .create_subresource("token", &account, &PostParams::default(), &request)
            .await;
        match answer {
            Ok(answer) => {
                let status = answer.status?;
                // Refresh at 80% of its life (a minute if it did not say).
                let now = k8s_openapi::jiff::Timestamp::now().as_second();
                let seconds = status
                    .expiration_timestamp
                    .map_or(60, |t| (t.0.as_second() - now).max(1));
                let lifetime = Duration::from_secs(seconds as u64);
                let refresh = Instant::now() + lifetime.mul_f64(0.8);
                let token = status.token.unwrap_or_default();
                self.tokens
                    .insert(volume.to_string(), (token.clone(), refresh));
                Some(token)
            }
            Err(error) => {
                tracing::warn!(pod = %self.pod_key(), %error, "requesting a ServiceAccount token");
                // An old token still valid is better than none.
                self.tokens.get(volume).map(|(t, _)| t.clone())
            }
        }
    }

    /// Step 4: every volume's files, current.
    async fn sync_volumes(&mut self) {
        let mut error = None;
        let volumes: Vec<Volume> = self
            .pod
            .spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .cloned()
            .collect();
        for volume in &volumes {
            let dir = volumes::volume_dir(self.dir.path(), volume);
            let result = if volume.projected.is_some() {
                let token = match volumes::token_wanted(volume) {
                    Some(wanted) => self.token_for(&volume.name, &wanted).await,
                    None => None,
                };
                let ns = self
                    .pod
                    .metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".into());
                let shared = self.shared.clone();
                volumes::projected_files(
                    volume,
                    &self.pod,
                    |name| shared.configmaps.get(&ns, name),
                    |name| shared.secrets.get(&ns, name),
                    token.as_deref(),
                )
                .and_then(|files| volumes::write_atomically(&volume.name, &dir, &files))
                .map(|_| ())
            } else if let Some(source) = &volume.config_map {
                let ns = self.pod.metadata.namespace.as_deref().unwrap_or("default");
                let configmap = self.shared.configmaps.get(ns, &source.name);
                volumes::configmap_files(volume, configmap.as_deref())
                    .and_then(|files| volumes::write_atomically(&volume.name, &dir, &files))
                    .map(|_| ())
            } else if let Some(source) = &volume.secret {
                let ns = self.pod.metadata.namespace.as_deref().unwrap_or("default");
                let name = source.secret_name.as_deref().unwrap_or_default();
                let secret = self.shared.secrets.get(ns, name);
                volumes::secret_files(volume, secret.as_deref())
                    .and_then(|files| {
                        volumes::memory_backed(&volume.name, &dir)?;
                        volumes::write_atomically(&volume.name, &dir, &files)
                    })
                    .map(|_| ())
            } else if volume.empty_dir.is_some() {
                std::fs::create_dir_all(&dir).map_err(|source| volumes::VolumeError::Io {
                    volume: volume.name.clone(),
                    action: format!("creating {}", dir.display()),
                    source,
                })
            } else {
                Err(volumes::VolumeError::Unsupported {
                    volume: volume.name.clone(),
                    kind: volumes::kind(volume).into(),
                })
            };
            if let Err(e) = result {
                error.get_or_insert(e.to_string());
            }
        }
        if error != self.volume_error {
            if let Some(message) = &error {
                tracing::warn!(pod = %self.pod_key(), %message, "volume setup failed");
                self.shared
                    .events
                    .publish(&self.pod, events::WARNING, "FailedMount", message);
            }
        }
        self.volume_error = error;
    }

    /// Step 5 for one container.
    async fn sync_container(&mut self, spec: &Container) {
        let policy = restart_policy(&self.pod).to_string();
        let pod_key = self.pod_key();
        let pod_ip = self.sandbox.as_ref().map(|s| s.ip);
        let Some(rt) = self.containers.get_mut(&spec.name) else {
            return;
        };
        let state = rt.current.as_ref().map(Instance::state);
        match state {
            Some(InstanceState::Running(process)) => {
                let (Some(ip), true) = (pod_ip, rt.current.is_some()) else {
                    return;
                };
                let kill = run_probes(
                    &self.shared,
                    &self.pod,
                    spec,
                    rt,
                    IpAddr::V4(ip),
                    process.pid,
                )
                .await;
                if kill {
                    if let Some(instance) = &rt.current {
                        let grace = termination_grace(&self.pod);
                        instance.stop(grace).await;
                    }
                }
                return;
            }
            Some(InstanceState::Starting) => return,
            Some(InstanceState::Exited(exit)) => {
                if !rt.exit_handled {
                    rt.exit_handled = true;
                    rt.readiness = None;
                    rt.liveness = None;
                    rt.startup = None;
                    let restart = match policy.as_str() {
                        "Always" => true,
                        "OnFailure" => exit.exit_code != 0,
                        _ => false,
                    };
                    tracing::info!(pod = %pod_key, container = %rt.name, exit_code = exit.exit_code, restart, "container exited");
                    if restart {
                        let ran_long = rt.started_at.is_some_and(|t| t.elapsed() >= BACKOFF_RESET);
                        if ran_long {
                            rt.backoff = Duration::ZERO;
                        }
                        // The first restart is immediate; then 10 s, 20 s, ...
                        let delay = rt.backoff;
                        rt.backoff = next_backoff(rt.backoff);
                        rt.not_before = Some(Instant::now() + delay);
                        if !delay.is_zero() {
                            let message = format!(
                                "back-off {} restarting failed container={} pod={}",
                                humantime(delay),
                                rt.name,
                                pod_key_with_uid(&self.pod)
                            );
                            rt.waiting = Some(("CrashLoopBackOff".into(), message.clone()));
                            self.shared.events.publish(
                                &self.pod,
                                events::WARNING,
                                "BackOff",
                                &format!(
                                    "Back-off restarting failed container {} in pod {}",
                                    rt.name, pod_key
                                ),
                            );
                        }
                    }
                }
                if rt.not_before.is_none() {
                    return; // Stays terminated.
                }
            }
            None => {}
        }
        if rt.not_before.is_some_and(|t| t > Instant::now()) {
            return;
        }
        if self.volume_error.is_some() {
            return;
        }
        let Some(sandbox) = self.sandbox.clone() else {
            return;
        };
        start_container(&self.shared, &self.pod, &self.dir, &sandbox, spec, rt).await;
    }

    /// Step 6: the status, sent when it differs from what was sent last.
    async fn report(&mut self) {
        let now = Time(super::now_seconds());
        let old = self.pod.status.clone();
        let statuses: Vec<ContainerStatus> = self
            .pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .filter_map(|spec| {
                let rt = self.containers.get(&spec.name)?;
                Some(container_status(
                    spec,
                    rt,
                    self.sandbox_error.as_deref(),
                    old.as_ref(),
                ))
            })
            .collect();
        let facts = super::status::PodFacts {
            restart_policy: restart_policy(&self.pod),
            sandbox_ready: self.sandbox.is_some() && !self.finished,
            pod_ip: self.sandbox.as_ref().map(|s| s.ip.to_string()).or_else(|| {
                // A finished Pod keeps showing the IP it had.
                old.as_ref().and_then(|s| s.pod_ip.clone())
            }),
            host_ip: self.shared.node_ip.to_string(),
            start_time: Some(self.start_time.clone()),
            old: old.as_ref(),
        };
        let status = super::status::pod_status(&facts, statuses, &now);
        self.shared
            .registry
            .update(&self.pod, &self.containers_view());
        let unchanged = old.as_ref().is_some_and(|o| *o == status)
            || self.reported.as_ref().is_some_and(|r| *r == status);
        if unchanged {
            return;
        }
        let patch = serde_json::json!({ "status": status });
        match self
            .api()
            .patch_status(
                self.pod.metadata.name.as_deref().unwrap_or_default(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => self.reported = Some(status),
            Err(error) => {
                tracing::warn!(pod = %self.pod_key(), %error, "cannot report the Pod status; will retry");
                self.reported = None;
            }
        }
    }

    fn containers_view(&self) -> Vec<(String, ContainerDir, Option<u32>)> {
        self.containers
            .values()
            .map(|c| {
                (
                    c.name.clone(),
                    c.dir.clone(),
                    c.current.as_ref().map(|i| i.n),
                )
            })
            .collect()
    }

    /// Step 1: stop everything, remove the sandbox, delete the Pod.
    async fn terminate(&mut self) {
        let grace = termination_grace(&self.pod);
        tracing::info!(pod = %self.pod_key(), ?grace, gone = self.gone, "stopping the Pod");
        let mut stops = vec![];
        for rt in self.containers.values() {
            if let Some(instance) = rt.current.as_ref().filter(|i| !i.has_exited()) {
                self.shared.events.publish(
                    &self.pod,
                    events::NORMAL,
                    "Killing",
                    &format!("Stopping container {}", rt.name),
                );
                let signal = rt
                    .image
                    .as_ref()
                    .map_or(nix::sys::signal::Signal::SIGTERM, |i| i.stop_signal);
                stops.push(async move {
                    if signal != nix::sys::signal::Signal::SIGTERM {
                        instance.signal(signal);
                    }
                    instance.stop(grace).await
                });
            }
        }
        futures::future::join_all(stops).await;
        self.teardown_sandbox().await;
        self.shared.registry.remove(&self.uid);
        volumes::unmount_memory_backed(self.dir.path());
        if let Err(error) = std::fs::remove_dir_all(self.dir.path()) {
            if error.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(pod = %self.pod_key(), %error, "cannot remove the Pod's directory");
            }
        }
        if !self.gone {
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(self.uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            let name = self.pod.metadata.name.clone().unwrap_or_default();
            match self.api().delete(&name, &params).await {
                Ok(_) => tracing::info!(pod = %self.pod_key(), "Pod deleted"),
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(error) => {
                    tracing::warn!(pod = %self.pod_key(), %error, "cannot delete the Pod")
                }
            }
        }
    }

    /// Removes the network namespace (and every process still in it), the
    /// veth and the IP.
    async fn teardown_sandbox(&mut self) {
        self.sandbox = None;
        super::kill_pod_processes(&self.shared, &self.uid);
        if let Some(network) = &self.shared.network {
            if let Err(error) = network.teardown(&self.uid).await {
                tracing::warn!(pod = %self.pod_key(), %error, "cannot remove the Pod's network");
            }
        }
        if let Some(ipam) = self.shared.ipam.borrow().clone() {
            if let Err(error) = ipam.lock().expect("ipam lock").release(&self.uid) {
                tracing::warn!(pod = %self.pod_key(), %error, "cannot release the Pod's IP");
            }
        }
    }
}

/// Starts the next instance of a container.
async fn start_container(
    shared: &Arc<Shared>,
    pod: &Arc<Pod>,
    dir: &PodDir,
    sandbox: &Sandbox,
    spec: &Container,
    rt: &mut ContainerRuntime,
) {
    let image_name = spec.image.clone().unwrap_or_default();
    let image = match shared.catalog.resolve(&image_name) {
        Ok(image) => image,
        Err(unknown) => {
            let pulled_before = matches!(&rt.waiting, Some((r, _)) if r == "ErrImagePull" || r == "ImagePullBackOff");
            let delay = if rt.backoff.is_zero() {
                INITIAL_BACKOFF
            } else {
                rt.backoff
            };
            rt.backoff = next_backoff(delay);
            rt.not_before = Some(Instant::now() + delay);
            if pulled_before {
                rt.waiting = Some((
                    "ImagePullBackOff".into(),
                    format!("Back-off pulling image {image_name:?}"),
                ));
            } else {
                rt.waiting = Some((unknown.reason().into(), unknown.to_string()));
                shared.events.publish(
                    pod,
                    events::WARNING,
                    "Failed",
                    &format!("Failed to pull image {image_name:?}: {unknown}"),
                );
            }
            return;
        }
    };
    let env = match env::container_env(shared, pod, spec, &image, sandbox.ip) {
        Ok(env) => env,
        Err(message) => {
            rt.waiting = Some(("CreateContainerConfigError".into(), message));
            rt.not_before = Some(Instant::now() + RETRY);
            return;
        }
    };
    let expand = |s: &String| env::expand_vars(s, &env);
    let command: Vec<String> = spec.command.iter().flatten().map(expand).collect();
    let args: Vec<String> = spec.args.iter().flatten().map(expand).collect();
    let argv = image.argv(&command, &args);
    if argv.is_empty() {
        rt.waiting = Some(("CreateContainerError".into(), "no command specified".into()));
        rt.not_before = Some(Instant::now() + INITIAL_BACKOFF);
        return;
    }
    let mounts = match container_mounts(pod, dir, spec, &image) {
        Ok(m) => m,
        Err(message) => {
            rt.waiting = Some(("CreateContainerError".into(), message));
            rt.not_before = Some(Instant::now() + INITIAL_BACKOFF);
            return;
        }
    };
    let n = rt.current.as_ref().map_or(0, |i| i.n + 1);
    let monitor_spec = MonitorSpec {
        netns: sandbox.netns.clone(),
        hostname: sandbox::hostname(pod),
        argv,
        env,
        working_dir: spec
            .working_dir
            .clone()
            .or_else(|| image.working_dir.clone()),
        mounts,
        log_path: rt.dir.log_path(n),
        log_max_bytes: shared.log_max_bytes,
        pid_path: rt.dir.pid_path(n),
        exit_path: rt.dir.exit_path(n),
        // `stdin: true` (`kubectl run -i`): kept open for `kubectl attach`.
        attach: (spec.stdin == Some(true)).then(|| super::monitor::AttachSpec {
            dir: rt.dir.attach_dir(),
            stdin_once: spec.stdin_once == Some(true),
            tty: spec.tty == Some(true),
        }),
    };
    if n == 0 {
        shared.events.publish(
            pod,
            events::NORMAL,
            "Pulled",
            &format!("Container image {image_name:?} already present on machine"),
        );
    }
    match Instance::start(&rt.dir, n, &monitor_spec) {
        Ok(instance) => {
            if let Some(previous) = rt.current.take() {
                if let InstanceState::Exited(exit) = previous.state() {
                    let started = read_started(&rt.dir, previous.n).unwrap_or_default();
                    rt.last_exit = Some((exit, started, previous.container_id()));
                }
            }
            tracing::info!(pod = %pod_key(pod), container = %spec.name, instance = n, "container started");
            shared.events.publish(
                pod,
                events::NORMAL,
                "Created",
                &format!("Created container: {}", spec.name),
            );
            shared.events.publish(
                pod,
                events::NORMAL,
                "Started",
                &format!("Started container {}", spec.name),
            );
            let now = Instant::now();
            rt.readiness = spec
                .readiness_probe
                .clone()
                .map(|p| ProbeState::new(p, now, false));
            rt.liveness = spec
                .liveness_probe
                .clone()
                .map(|p| ProbeState::new(p, now, true));
            rt.startup = spec
                .startup_probe
                .clone()
                .map(|p| ProbeState::new(p, now, false));
            rt.current = Some(instance);
            rt.exit_handled = false;
            rt.not_before = None;
            rt.waiting = None;
            rt.started_at = Some(now);
            rt.image = Some(image);
        }
        Err(error) => {
            tracing::warn!(pod = %pod_key(pod), container = %spec.name, %error, "cannot start the container's monitor");
            rt.waiting = Some(("RunContainerError".into(), error.to_string()));
            rt.not_before = Some(Instant::now() + RETRY);
        }
    }
}

/// Runs the container's due probes; returns whether liveness failed (the
/// container must be killed).
async fn run_probes(
    shared: &Arc<Shared>,
    pod: &Arc<Pod>,
    spec: &Container,
    rt: &mut ContainerRuntime,
    ip: IpAddr,
    pid: i32,
) -> bool {
    let now = Instant::now();
    if let Some(startup) = rt.startup.as_mut().filter(|p| !p.passing) {
        if startup.next <= now {
            let outcome = probes::run(&startup.probe, spec, ip, pid).await;
            startup.record(&outcome, Instant::now());
            if let Err(why) = &outcome {
                shared.events.publish(
                    pod,
                    events::WARNING,
                    "Unhealthy",
                    &format!("Startup probe failed: {why}"),
                );
            }
            if startup.failed_for_good() {
                shared.events.publish(
                    pod,
                    events::NORMAL,
                    "Killing",
                    &format!(
                        "Container {} failed startup probe, will be restarted",
                        spec.name
                    ),
                );
                return true;
            }
        }
        return false;
    }
    if let Some(readiness) = rt.readiness.as_mut().filter(|p| p.next <= now) {
        let outcome = probes::run(&readiness.probe, spec, ip, pid).await;
        readiness.record(&outcome, Instant::now());
        if let Err(why) = &outcome {
            shared.events.publish(
                pod,
                events::WARNING,
                "Unhealthy",
                &format!("Readiness probe failed: {why}"),
            );
        }
    }
    if let Some(liveness) = rt.liveness.as_mut().filter(|p| p.next <= now) {
        let outcome = probes::run(&liveness.probe, spec, ip, pid).await;
        liveness.record(&outcome, Instant::now());
        if let Err(why) = &outcome {
            shared.events.publish(
                pod,
                events::WARNING,
                "Unhealthy",
                &format!("Liveness probe failed: {why}"),
            );
        }
        if !liveness.passing {
            shared.events.publish(
                pod,
                events::NORMAL,
                "Killing",
                &format!(
                    "Container {} failed liveness probe, will be restarted",
                    spec.name
                ),
            );
            return true;
        }
    }
    false
}

/// The container's mounts: private /tmp and /run, the Pod's /etc files,
/// the image's layout, then its volumeMounts.
fn container_mounts(
    pod: &Pod,
    dir: &PodDir,
    spec: &Container,
    image: &Image,
) -> Result<Vec<Mount>, String> {
    let bind = |source: PathBuf, target: &str, read_only: bool| Mount {
        target: PathBuf::from(target),
        source: MountSource::Bind(source),
        read_only,
    };
    let mut mounts = vec![
        Mount {
            target: "/tmp".into(),
            source: MountSource::Tmpfs,
            read_only: false,
        },
        Mount {
            target: "/run".into(),
            source: MountSource::Tmpfs,
            read_only: false,
        },
    ];
    let etc = dir.etc();
    if !sandbox::host_network(pod) {
        mounts.push(bind(etc.join("hosts"), "/etc/hosts", false));
    }
    mounts.push(bind(etc.join("hostname"), "/etc/hostname", false));
    mounts.push(bind(etc.join("resolv.conf"), "/etc/resolv.conf", false));
    let layout = image
        .layout
        .write(&dir.image_dir(&spec.name))
        .map_err(|e| format!("writing the image's files: {e}"))?;
    mounts.extend(layout.into_iter().map(|m| Mount {
        target: m.target,
        source: MountSource::Bind(m.source),
        read_only: false,
    }));
    let volumes: Vec<_> = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .collect();
    for vm in spec.volume_mounts.iter().flatten() {
        let volume = volumes
            .iter()
            .find(|v| v.name == vm.name)
            .ok_or_else(|| format!("volumeMount {:?} names no volume of the Pod", vm.name))?;
        let mut source = volumes::volume_dir(dir.path(), volume);
        if let Some(sub) = vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
            source = source.join(sub);
        }
        let read_only = vm.read_only == Some(true)
            || volume.config_map.is_some()
            || volume.secret.is_some()
            || volume.projected.is_some();
        mounts.push(bind(source, &vm.mount_path, read_only));
    }
    Ok(mounts)
}

/// One container's status.
fn container_status(
    spec: &Container,
    rt: &ContainerRuntime,
    sandbox_error: Option<&str>,
    old: Option<&PodStatus>,
) -> ContainerStatus {
    let image = spec.image.clone().unwrap_or_default();
    let mut status = ContainerStatus {
        name: spec.name.clone(),
        image: image.clone(),
        image_id: rt
            .image
            .as_ref()
            .map(|i| i.image_id.clone())
            .unwrap_or_default(),
        restart_count: rt.restart_count(),
        ready: rt.ready(),
        started: Some(rt.running() && rt.startup.as_ref().is_none_or(|p| p.passing)),
        ..Default::default()
    };
    if rt.image.is_none() {
        // Adopted: the image resolves as it did.
        status.image_id = old
            .and_then(|o| o.container_statuses.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.name == spec.name))
            .map(|c| c.image_id.clone())
            .unwrap_or_default();
    }
    if let Some((exit, started, id)) = &rt.last_exit {
        status.last_state = Some(ContainerState {
            terminated: Some(terminated(exit, started, id)),
            ..Default::default()
        });
    }
    let waiting = |reason: &str, message: &str| ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_string()),
            message: (!message.is_empty()).then(|| message.to_string()),
        }),
        ..Default::default()
    };
    status.state = Some(match rt.current.as_ref() {
        Some(instance) => {
            status.container_id = Some(instance.container_id());
            match instance.state() {
                InstanceState::Running(process) => ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: parse_time(&process.started_at),
                    }),
                    ..Default::default()
                },
                InstanceState::Starting => waiting("ContainerCreating", ""),
                InstanceState::Exited(exit) => match (&rt.waiting, rt.not_before) {
                    (Some((reason, message)), Some(_)) => {
                        // Waiting to restart: the instance that ended is
                        // the last state.
                        let started = read_started(&rt.dir, instance.n).unwrap_or_default();
                        status.last_state = Some(ContainerState {
                            terminated: Some(terminated(&exit, &started, &instance.container_id())),
                            ..Default::default()
                        });
                        waiting(reason, message)
                    }
                    _ => ContainerState {
                        terminated: Some(terminated(
                            &exit,
                            &read_started(&rt.dir, instance.n).unwrap_or_default(),
                            &instance.container_id(),
                        )),
                        ..Default::default()
                    },
                },
            }
        }
        None => match (&rt.waiting, sandbox_error) {
            (Some((reason, message)), _) if reason != "ContainerCreating" => {
                waiting(reason, message)
            }
            _ => waiting("ContainerCreating", ""),
        },
    });
    status
}

fn terminated(exit: &ExitRecord, started_at: &str, container_id: &str) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: exit.exit_code,
        signal: exit.signal,
        reason: Some(exit.reason.clone()),
        message: exit.message.clone(),
        started_at: parse_time(started_at),
        finished_at: parse_time(&exit.finished_at),
        container_id: Some(container_id.to_string()),
    }
}

fn parse_time(text: &str) -> Option<Time> {
    text.parse::<k8s_openapi::jiff::Timestamp>().ok().map(Time)
}

/// When instance `n` started, from its process record.
fn read_started(dir: &ContainerDir, n: u32) -> Option<String> {
    dir.process(n).map(|p| p.started_at)
}

/// How instance `n` ended, with its start and container ID (lastState).
fn read_exit(dir: &ContainerDir, n: u32) -> Option<(ExitRecord, String, String)> {
    let exit = dir.exit(n)?;
    let started = read_started(dir, n).unwrap_or_default();
    let id = Instance::adopt(dir, n)
        .map(|i| i.container_id())
        .unwrap_or_default();
    Some((exit, started, id))
}

fn next_backoff(current: Duration) -> Duration {
    if current.is_zero() {
        INITIAL_BACKOFF
    } else {
        (current * 2).min(MAX_BACKOFF)
    }
}

/// `10s`, `5m0s`: Go's duration format, as the kubelet's messages use it.
fn humantime(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 {
        format!("{}m{}s", secs / 60, secs % 60)
    } else {
        format!("{secs}s")
    }
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

/// The grace period of the Pod's deletion (or of a liveness kill).
fn termination_grace(pod: &Pod) -> Duration {
    let seconds = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30)
        .max(0);
    // Even a zero grace period gives the process a moment to see SIGTERM
    // before SIGKILL (the kubelet uses a 2 s minimum).
    Duration::from_secs(seconds.max(2) as u64)
}

pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// `name_namespace(uid)`, as the kubelet names Pods in its messages.
fn pod_key_with_uid(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.uid.as_deref().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_five_minutes() {
        let mut d = Duration::ZERO;
        let mut seen = vec![];
        for _ in 0..8 {
            d = next_backoff(d);
            seen.push(d.as_secs());
        }
        assert_eq!(seen, [10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(humantime(Duration::from_secs(300)), "5m0s");
    }
}
