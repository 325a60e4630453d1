//! The pod worker: one task per Pod, making the node match the Pod.
//!
//! The kubelet runs one "pod worker" per Pod and calls its `SyncPod` every
//! time something about the Pod changes. Ours does the same: a loop that
//! reconciles, then sleeps until the Pod object changes, one of its
//! containers changes state ([`super::pleg`]), a probe or a back-off is
//! due, or a ConfigMap or Secret it names changes.
//!
//! One reconcile ([`PodWorker::sync`]) walks the Pod's life in order, and
//! running it again changes nothing:
//!
//! 1. **Deleted?** (`deletionTimestamp` set, or gone from the API) stop the
//!    containers (preStop, then the image's stop signal, SIGKILL after the
//!    grace period), remove the sandbox, then delete the Pod for good.
//! 2. **Sandbox**: found again or run by the runtime, with the Pod's IP
//!    ([`super::sandbox`]); the containers it has are adopted.
//! 3. **References**: the ConfigMaps and Secrets the Pod names are
//!    followed and listed ([`super::referenced`]).
//! 4. **Volumes**: ConfigMap, Secret and token files written and kept up
//!    to date ([`super::volumes`]).
//! 5. **Containers**: pull the image ([`super::pull`]), create and start
//!    those that should run; restart those that exited, by
//!    `restartPolicy`, with the CrashLoopBackOff delay; run the probes that
//!    are due ([`super::probes`]).
//! 6. **Status**: report it when it changed ([`super::status`]).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Pod, PodStatus, ServiceAccount, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::Api;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::container::{self, Observed, State};
use super::probes::{self, ProbeState};
use super::pull::{self, PullError, Pulled};
use super::sandbox::{self, PodDir, Sandbox};
use super::{env, events, volumes, PodUpdate, Shared};
use crate::cri::{config, v1, Runtime};

/// The first delay of CrashLoopBackOff and ImagePullBackOff; it doubles
/// after every failure up to [`MAX_BACKOFF`] (the kubelet's values).
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(10);
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// A container that ran this long without failing starts over at the
/// initial back-off.
pub const BACKOFF_RESET: Duration = Duration::from_secs(600);
/// How soon a failed sandbox or volume setup is retried.
const RETRY: Duration = Duration::from_secs(2);
/// How long a failed pull shows as `ErrImagePull` before the back-off
/// shows (the kubelet's next sync comes about this much later).
const ERR_IMAGE_PULL_SHOWN: Duration = Duration::from_secs(2);
/// How long a Pod waits for the ConfigMaps and Secrets it names to be
/// listed before an event says so (it keeps waiting).
const REFERENCES_TIMEOUT: Duration = Duration::from_secs(30);

/// One container of the Pod, as the worker tracks it.
struct ContainerRuntime {
    name: String,
    /// The runtime's latest container for it, running or ended.
    current: Option<Observed>,
    /// The one before (`lastState`, `kubectl logs --previous`).
    previous: Option<Observed>,
    /// Why it does not run, when it does not (`state.waiting`).
    waiting: Option<(String, String)>,
    /// When the next start may happen (back-off).
    not_before: Option<Instant>,
    backoff: Duration,
    /// The image pull's own back-off (ImagePullBackOff).
    pull_backoff: Duration,
    /// The last pull failed (why, and when): the worker shows
    /// `ErrImagePull` for [`ERR_IMAGE_PULL_SHOWN`], then `ImagePullBackOff`.
    pull_failed: Option<(String, Instant)>,
    /// Whether the current container's end has been accounted for.
    exit_handled: bool,
    started_at: Option<Instant>,
    readiness: Option<ProbeState>,
    liveness: Option<ProbeState>,
    startup: Option<ProbeState>,
    /// The restart count it had before the sandbox was lost (a reboot),
    /// when it ran before: the next container counts on from there.
    restarts_before: Option<u32>,
}

impl ContainerRuntime {
    fn new(name: &str) -> ContainerRuntime {
        ContainerRuntime {
            name: name.to_string(),
            current: None,
            previous: None,
            waiting: Some(("ContainerCreating".into(), String::new())),
            not_before: None,
            backoff: Duration::ZERO,
            pull_backoff: Duration::ZERO,
            pull_failed: None,
            exit_handled: false,
            started_at: None,
            readiness: None,
            liveness: None,
            startup: None,
            restarts_before: None,
        }
    }

    /// restartCount: the attempt of the current container.
    fn restart_count(&self) -> u32 {
        match &self.current {
            Some(c) => c.attempt,
            None => self.restarts_before.unwrap_or(0),
        }
    }

    /// The attempt the next container is created for.
    fn next_attempt(&self) -> u32 {
        match (&self.current, self.restarts_before) {
            (Some(c), _) => c.attempt + 1,
            (None, Some(before)) => before + 1,
            (None, None) => 0,
        }
    }

    fn running(&self) -> bool {
        self.current.as_ref().is_some_and(Observed::running)
    }

    fn ready(&self) -> bool {
        self.running()
            && self.startup.as_ref().is_none_or(|p| p.passing)
            && self.readiness.as_ref().is_none_or(|p| p.passing)
    }

    /// Probes of a container just started (readiness and startup failing
    /// until they pass) or adopted running (passing: a restarted agent
    /// cannot know their history, and the kubelet also keeps an adopted
    /// container's Endpoints).
    fn arm_probes(&mut self, spec: &Container, passing: bool) {
        let now = Instant::now();
        self.readiness = spec
            .readiness_probe
            .clone()
            .map(|p| ProbeState::new(p, now, passing));
        self.liveness = spec
            .liveness_probe
            .clone()
            .map(|p| ProbeState::new(p, now, true));
        self.startup = spec
            .startup_probe
            .clone()
            .map(|p| ProbeState::new(p, now, passing));
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
    /// The Pod finished (Succeeded/Failed): its sandbox is stopped,
    /// nothing restarts.
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
    /// Rung by the PLEG when one of the Pod's containers changed state.
    wake: Arc<Notify>,
}

impl PodWorker {
    /// A worker for `pod`; what a previous agent left running is adopted
    /// at the first sync.
    pub fn new(shared: Arc<Shared>, pod: Arc<Pod>) -> PodWorker {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let dir = PodDir::new(&shared.pods_dir, &uid);
        let old = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.clone());
        let mut containers = BTreeMap::new();
        for c in pod.spec.iter().flat_map(|s| &s.containers) {
            let mut rt = ContainerRuntime::new(&c.name);
            // A container that ran before (the status has its ID) counts
            // its restarts on, also in a new sandbox.
            if let Some(status) = old.iter().flatten().find(|s| s.name == c.name) {
                if status.container_id.is_some() {
                    rt.restarts_before = Some(status.restart_count.max(0) as u32);
                }
            }
            containers.insert(c.name.clone(), rt);
        }
        let start_time = pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.clone())
            .unwrap_or_else(|| Time(super::now_seconds()));
        // A Pod that finished while the agent was away must not run again.
        let finished = matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded") | Some("Failed")
        );
        // Started before (a start time reported): admitted before; a
        // taint added since does not evict it.
        let admitted = pod.status.as_ref().is_some_and(|s| s.start_time.is_some());
        let wake = shared.pleg.subscribe(&uid);
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
            wake,
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
            let wake = Arc::clone(&self.wake);
            tokio::select! {
                changed = updates.changed() => {
                    if changed.is_err() {
                        // The manager is gone: the agent is stopping.
                        break;
                    }
                }
                _ = referenced.changed() => {}
                _ = wake.notified() => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
        self.shared.pleg.unsubscribe(&self.uid);
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

    /// The Pod's containers, as its spec lists them.
    fn container_specs(&self) -> Vec<Container> {
        self.pod
            .spec
            .iter()
            .flat_map(|s| s.containers.clone())
            .collect()
    }

    fn runtime(&self) -> Runtime {
        self.shared.runtime.clone()
    }

    /// The earliest moment something is due without an outside event.
    fn next_deadline(&self) -> Instant {
        let mut deadline = Instant::now() + Duration::from_secs(30);
        if (self.sandbox.is_none() && !self.finished)
            || self.volume_error.is_some()
            || self.awaiting_references.is_some()
        {
            deadline = deadline.min(Instant::now() + RETRY);
        }
        for (_, refresh) in self.tokens.values() {
            deadline = deadline.min(*refresh);
        }
        for c in self.containers.values() {
            if let (Some((_, at)), true) = (
                &c.pull_failed,
                c.waiting.as_ref().is_some_and(|(r, _)| r == "ErrImagePull"),
            ) {
                deadline = deadline.min(*at + ERR_IMAGE_PULL_SHOWN);
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
        self.refresh_containers().await;
        if !self.references_known() {
            self.report().await;
            return Next::Wait;
        }
        self.sync_volumes().await;
        let specs = self.container_specs();
        for spec in &specs {
            self.sync_container(spec).await;
        }
        self.report().await;
        if self.is_finished() {
            tracing::info!(pod = %self.pod_key(), "all containers ended for good: stopping the sandbox");
            self.finished = true;
            if let Some(sandbox) = self.sandbox.take() {
                if let Err(status) = self.runtime().stop_sandbox(&sandbox.id).await {
                    tracing::warn!(pod = %self.pod_key(), error = %status.message(), "cannot stop the sandbox");
                }
            }
        }
        Next::Wait
    }

    /// Whether every container has ended and none will restart.
    fn is_finished(&self) -> bool {
        let policy = restart_policy(&self.pod);
        !self.containers.is_empty()
            && self.containers.values().all(|c| {
                c.current.as_ref().is_some_and(|current| {
                    current.exited()
                        && c.exit_handled
                        && c.not_before.is_none()
                        && (policy == "Never" || (policy == "OnFailure" && current.exit_code == 0))
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

    /// Step 2: the Pod's sandbox, found again or run. Returns whether it
    /// is ready.
    async fn ensure_sandbox(&mut self) -> bool {
        if self.sandbox.is_some() {
            return true;
        }
        let node_resolv = std::fs::read_to_string(sandbox::NODE_RESOLV_CONF).unwrap_or_default();
        let resolv = sandbox::resolv_conf(&self.pod, &self.shared.dns, &node_resolv);
        let begin = Instant::now();
        let mut runtime = self.runtime();
        let made = sandbox::ensure(
            &mut runtime,
            &self.pod,
            self.shared.node_ip,
            &resolv,
            &self.shared.node_settings,
        )
        .await;
        let (sandbox, new) = match made {
            Ok(made) => made,
            Err(error) => {
                let message = error.to_string();
                if self.sandbox_error.as_deref() != Some(message.as_str()) {
                    tracing::warn!(pod = %self.pod_key(), error = %message, "cannot create the Pod sandbox yet");
                    self.shared.events.publish(
                        &self.pod,
                        events::WARNING,
                        "FailedCreatePodSandBox",
                        &format!("Failed to create pod sandbox: {message}"),
                    );
                }
                self.sandbox_error = Some(message);
                return false;
            }
        };
        let hosts = sandbox::hosts_file(&self.pod, sandbox.ip, &self.shared.dns);
        if let Err(error) = self.dir.prepare(&hosts) {
            let message = format!("writing {}: {error}", self.dir.etc_hosts().display());
            tracing::warn!(pod = %self.pod_key(), %message, "cannot prepare the Pod's directory");
            self.sandbox_error = Some(message);
            return false;
        }
        tracing::info!(pod = %self.pod_key(), ip = %sandbox.ip, sandbox = %sandbox.id, new, took = ?begin.elapsed(), "sandbox ready");
        if new {
            // Whatever ran in a lost sandbox is gone with it.
            for rt in self.containers.values_mut() {
                if let Some(old) = rt.current.take() {
                    rt.restarts_before = Some(old.attempt);
                }
                rt.previous = None;
            }
        } else {
            self.adopt(&sandbox).await;
        }
        self.sandbox = Some(sandbox);
        self.sandbox_error = None;
        true
    }

    /// Takes over the containers a previous agent made in `sandbox`: the
    /// newest attempt of each is current, the one before is previous.
    async fn adopt(&mut self, sandbox: &Sandbox) {
        let mut runtime = self.runtime();
        let listed = match runtime.containers(container::pod_selector(&self.uid)).await {
            Ok(listed) => listed,
            Err(status) => {
                tracing::warn!(pod = %self.pod_key(), error = %status.message(), "cannot list the Pod's containers");
                return;
            }
        };
        let specs = self.container_specs();
        for spec in &specs {
            let attempts = container::attempts(&listed, &sandbox.id, &spec.name);
            let mut found = vec![];
            for c in attempts.iter().take(2) {
                if let Ok((status, info)) = runtime.container_status(&c.id).await {
                    found.push(Observed::from_status(&status, &info));
                }
            }
            // Older attempts are garbage (the kubelet keeps one exited).
            for c in attempts.iter().skip(2) {
                let _ = runtime.remove_container(&c.id).await;
            }
            let Some(rt) = self.containers.get_mut(&spec.name) else {
                continue;
            };
            let mut found = found.into_iter();
            rt.current = found.next();
            rt.previous = found.next();
            if let Some(current) = &rt.current {
                tracing::info!(pod = %pod_key(&self.pod), container = %spec.name, id = %current.id, attempt = current.attempt, "adopted a container");
                rt.waiting = None;
                rt.started_at = Some(Instant::now());
                // An adopted exit was seen by the agent before, if the API
                // says so; otherwise it is handled now.
                rt.exit_handled = !current.running() && self.finished;
                if current.running() {
                    rt.arm_probes(spec, true);
                }
            }
        }
    }

    /// Asks the runtime how each current container is.
    async fn refresh_containers(&mut self) {
        let mut runtime = self.runtime();
        for rt in self.containers.values_mut() {
            let Some(current) = &rt.current else {
                continue;
            };
            if current.exited() {
                continue; // An end is final.
            }
            match runtime.container_status(&current.id).await {
                Ok((status, info)) => rt.current = Some(Observed::from_status(&status, &info)),
                Err(status) if status.code() == tonic::Code::NotFound => {
                    // Removed behind our back: it ended.
                    if let Some(c) = rt.current.as_mut() {
                        c.state = State::Unknown;
                        c.reason = "ContainerStatusUnknown".into();
                        c.message =
                            "The container could not be located when the pod was terminated".into();
                        c.exit_code = 137;
                    }
                }
                Err(status) => {
                    tracing::debug!(error = %status.message(), "ContainerStatus failed; keeping the last state")
                }
            }
        }
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
            } else if let Some(empty) = &volume.empty_dir {
                if empty.medium.as_deref() == Some("Memory") {
                    volumes::memory_backed(&volume.name, &dir)
                } else {
                    std::fs::create_dir_all(&dir).map_err(|source| volumes::VolumeError::Io {
                        volume: volume.name.clone(),
                        action: format!("creating {}", dir.display()),
                        source,
                    })
                }
            } else if let Some(host) = &volume.host_path {
                volumes::host_path(&volume.name, host)
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
        let Some(sandbox) = self.sandbox.clone() else {
            return;
        };
        let runtime = self.runtime();
        let Some(rt) = self.containers.get_mut(&spec.name) else {
            return;
        };
        match rt.current.as_ref().map(|c| c.state) {
            Some(State::Running) => {
                let id = rt
                    .current
                    .as_ref()
                    .map(|c| c.id.clone())
                    .unwrap_or_default();
                let ip = IpAddr::V4(sandbox.ip);
                let kill = run_probes(&self.shared, &self.pod, spec, rt, ip, &runtime, &id).await;
                if kill {
                    let grace = termination_grace(&self.pod);
                    stop(&self.shared, &self.pod, spec, &id, sandbox.ip, grace).await;
                }
                return;
            }
            Some(State::Created) => {
                // Created but never started (the agent stopped in
                // between): start it now.
                let id = rt
                    .current
                    .as_ref()
                    .map(|c| c.id.clone())
                    .unwrap_or_default();
                let mut runtime = runtime;
                if let Err(status) = runtime
                    .runtime
                    .start_container(v1::StartContainerRequest { container_id: id })
                    .await
                {
                    tracing::warn!(pod = %pod_key, container = %spec.name, error = %status.message(), "cannot start a created container");
                }
                return;
            }
            Some(State::Exited | State::Unknown) => {
                let exit_code = rt.current.as_ref().map_or(0, |c| c.exit_code);
                if !rt.exit_handled {
                    rt.exit_handled = true;
                    rt.readiness = None;
                    rt.liveness = None;
                    rt.startup = None;
                    let restart = match policy.as_str() {
                        "Always" => true,
                        "OnFailure" => exit_code != 0,
                        _ => false,
                    };
                    tracing::info!(pod = %pod_key, container = %rt.name, exit_code, restart, "container exited");
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
                            rt.waiting = Some(("CrashLoopBackOff".into(), message));
                            self.shared.events.publish(
                                &self.pod,
                                events::WARNING,
                                "BackOff",
                                &format!(
                                    "Back-off restarting failed container {} in pod {}",
                                    rt.name,
                                    pod_key_with_uid(&self.pod)
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
            // A failed pull waits in ImagePullBackOff, as the kubelet
            // shows it from the sync after the failure.
            let pulling = rt
                .waiting
                .as_ref()
                .is_some_and(|(r, _)| r == "ErrImagePull");
            let shown = rt
                .pull_failed
                .as_ref()
                .filter(|(_, at)| at.elapsed() >= ERR_IMAGE_PULL_SHOWN);
            if let (Some((error, _)), true) = (shown, pulling) {
                let image = spec.image.clone().unwrap_or_default();
                rt.waiting = Some((
                    "ImagePullBackOff".into(),
                    format!("Back-off pulling image {image:?}: {error}"),
                ));
                self.shared.events.publish(
                    &self.pod,
                    events::NORMAL,
                    "BackOff",
                    &format!("Back-off pulling image {image:?}"),
                );
                self.shared.events.publish(
                    &self.pod,
                    events::WARNING,
                    "Failed",
                    "Error: ImagePullBackOff",
                );
            }
            return;
        }
        if self.volume_error.is_some() {
            return;
        }
        start_container(&self.shared, &self.pod, &self.dir, &sandbox, spec, rt).await;
    }

    /// Step 6: the status, sent when it differs from what was sent last.
    async fn report(&mut self) {
        let now = Time(super::now_seconds());
        let old = self.pod.status.clone();
        let runtime_name = &self.shared.runtime_name;
        let statuses: Vec<ContainerStatus> = self
            .pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .filter_map(|spec| {
                let rt = self.containers.get(&spec.name)?;
                Some(container_status(spec, rt, runtime_name, old.as_ref()))
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

    /// What the kubelet's server needs of each container.
    fn containers_view(&self) -> Vec<super::registry::ContainerView> {
        let spec = |name: &str| {
            self.pod
                .spec
                .iter()
                .flat_map(|s| &s.containers)
                .find(|c| c.name == name)
        };
        self.containers
            .values()
            .map(|c| super::registry::ContainerView {
                name: c.name.clone(),
                current: c.current.clone(),
                previous_log: c.previous.as_ref().map(|p| p.log_path.clone()),
                waiting: c.waiting.as_ref().map(|(reason, _)| reason.clone()),
                stdin: spec(&c.name).is_some_and(|s| s.stdin == Some(true)),
                tty: spec(&c.name).is_some_and(|s| s.tty == Some(true)),
            })
            .collect()
    }

    /// Step 1: stop everything, remove the sandbox, delete the Pod.
    async fn terminate(&mut self) {
        let grace = termination_grace(&self.pod);
        tracing::info!(pod = %self.pod_key(), ?grace, gone = self.gone, "stopping the Pod");
        let specs = self.container_specs();
        let mut stops = vec![];
        let pod_ip = self.sandbox.as_ref().map(|s| s.ip);
        for rt in self.containers.values() {
            let Some(current) = rt.current.as_ref().filter(|c| c.running()) else {
                continue;
            };
            let Some(spec) = specs.iter().find(|s| s.name == rt.name) else {
                continue;
            };
            self.shared.events.publish(
                &self.pod,
                events::NORMAL,
                "Killing",
                &format!("Stopping container {}", rt.name),
            );
            let (shared, pod, id) = (&self.shared, &self.pod, current.id.clone());
            stops.push(async move {
                if let Some(ip) = pod_ip {
                    stop(shared, pod, spec, &id, ip, grace).await
                }
            });
        }
        futures::future::join_all(stops).await;
        // Every sandbox of the Pod, also one a previous agent left.
        let mut runtime = self.runtime();
        match runtime.sandboxes(container::pod_selector(&self.uid)).await {
            Ok(sandboxes) => {
                for s in sandboxes {
                    if let Err(status) = runtime.remove_sandbox(&s.id).await {
                        tracing::warn!(pod = %self.pod_key(), error = %status.message(), "cannot remove the sandbox");
                    }
                }
            }
            Err(status) => {
                tracing::warn!(pod = %self.pod_key(), error = %status.message(), "cannot list the Pod's sandboxes")
            }
        }
        self.sandbox = None;
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
}

/// Stops a running container as the kubelet does: its `preStop` hook
/// first (within the grace period), then `StopContainer`, which sends the
/// image's stop signal and SIGKILL when the rest of the grace period ran
/// out.
async fn stop(
    shared: &Shared,
    pod: &Pod,
    spec: &Container,
    id: &str,
    pod_ip: std::net::Ipv4Addr,
    grace: Duration,
) {
    let begin = Instant::now();
    if let Some(hook) = spec.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()) {
        let outcome = tokio::time::timeout(grace, async {
            if let Some(exec) = &hook.exec {
                let command = exec.command.clone().unwrap_or_default();
                shared
                    .runtime
                    .clone()
                    .exec_sync(id, &command, grace)
                    .await
                    .map_err(|s| pull::go_status(&s))
                    .and_then(|r| match r.exit_code {
                        0 => Ok(()),
                        code => Err(format!("command {command:?} exited with {code}")),
                    })
            } else if let Some(sleep) = &hook.sleep {
                tokio::time::sleep(Duration::from_secs(sleep.seconds.max(0) as u64)).await;
                Ok(())
            } else if let Some(http) = &hook.http_get {
                let probe = k8s_openapi::api::core::v1::Probe {
                    http_get: Some(http.clone()),
                    timeout_seconds: Some(grace.as_secs().max(1) as i32),
                    ..Default::default()
                };
                probes::run(&probe, spec, IpAddr::V4(pod_ip), &shared.runtime, id).await
            } else {
                Ok(())
            }
        })
        .await;
        let failed = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(why)) => Some(why),
            Err(_) => Some(format!("PreStopHook timed out after {}s", grace.as_secs())),
        };
        if let Some(why) = failed {
            shared.events.publish(
                pod,
                events::WARNING,
                "FailedPreStopHook",
                &format!("PreStopHook failed: {why}"),
            );
        }
    }
    let left = grace
        .saturating_sub(begin.elapsed())
        .max(Duration::from_secs(2));
    if let Err(status) = shared.runtime.clone().stop_container(id, left).await {
        tracing::warn!(pod = %pod_key(pod), container = %spec.name, error = %status.message(), "StopContainer failed");
    }
}

/// Pulls the image, then creates and starts the next container.
async fn start_container(
    shared: &Arc<Shared>,
    pod: &Arc<Pod>,
    dir: &PodDir,
    sandbox: &Sandbox,
    spec: &Container,
    rt: &mut ContainerRuntime,
) {
    let image = spec.image.clone().unwrap_or_default();
    let mut runtime = shared.runtime.clone();
    // The image, by imagePullPolicy.
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let secrets = pull::pull_secrets(pod, |name| shared.secrets.get(&ns, name));
    let credentials = pull::credentials(&image, &secrets);
    let pulled = pull::ensure(
        &mut runtime,
        &image,
        pull::policy(spec),
        &credentials,
        || {
            shared.events.publish(
                pod,
                events::NORMAL,
                "Pulling",
                &format!("Pulling image {image:?}"),
            )
        },
    )
    .await;
    let found = match pulled {
        Ok((Pulled::Present, found)) => {
            shared.events.publish(
                pod,
                events::NORMAL,
                "Pulled",
                &format!("Container image {image:?} already present on machine"),
            );
            rt.pull_backoff = Duration::ZERO;
            rt.pull_failed = None;
            found
        }
        Ok((Pulled::Pulled { seconds, size }, found)) => {
            shared.events.publish(
                pod,
                events::NORMAL,
                "Pulled",
                &format!(
                    "Successfully pulled image {image:?} in {seconds:.3}s ({seconds:.3}s including waiting). Image size: {size} bytes."
                ),
            );
            rt.pull_backoff = Duration::ZERO;
            rt.pull_failed = None;
            found
        }
        Err(error) => {
            let reason = error.reason();
            shared.events.publish(
                pod,
                events::WARNING,
                "Failed",
                &match &error {
                    PullError::Failed(m) => format!("Failed to pull image {image:?}: {m}"),
                    PullError::NeverPull(m) => m.clone(),
                },
            );
            shared
                .events
                .publish(pod, events::WARNING, "Failed", &format!("Error: {reason}"));
            let delay = if rt.pull_backoff.is_zero() {
                INITIAL_BACKOFF
            } else {
                rt.pull_backoff
            };
            rt.pull_backoff = next_backoff(delay);
            rt.not_before = Some(Instant::now() + delay);
            // The error itself first; the next sync shows the back-off.
            rt.waiting = Some((reason.into(), error.message().to_string()));
            rt.pull_failed = Some((format!("{reason}: {}", error.message()), Instant::now()));
            return;
        }
    };
    // runAsNonRoot needs the image's user.
    let image_user = found
        .map(|found| {
            found
                .uid
                .map(|u| u.value.to_string())
                .unwrap_or(found.username)
        })
        .unwrap_or_default();
    if let Err(error) = config::check_run_as_non_root(pod, spec, &image_user) {
        config_error(shared, pod, rt, error.to_string());
        return;
    }
    let env = match env::container_env(shared, pod, spec, sandbox.ip) {
        Ok(env) => env,
        Err(message) => {
            config_error(shared, pod, rt, message);
            return;
        }
    };
    let mounts = match container_mounts(pod, dir, spec) {
        Ok(m) => m,
        Err(message) => {
            config_error(shared, pod, rt, message);
            return;
        }
    };
    let attempt = rt.next_attempt();
    let config =
        match config::container_config(pod, spec, attempt, &env, mounts, &shared.node_settings) {
            Ok(config) => config,
            Err(error) => {
                config_error(shared, pod, rt, error.to_string());
                return;
            }
        };
    let created = runtime
        .runtime
        .create_container(v1::CreateContainerRequest {
            pod_sandbox_id: sandbox.id.clone(),
            config: Some(config),
            sandbox_config: Some(sandbox.config.clone()),
        })
        .await;
    let id = match created {
        Ok(answer) => answer.into_inner().container_id,
        Err(status) => {
            let message = pull::go_status(&status);
            tracing::warn!(pod = %pod_key(pod), container = %spec.name, %message, "CreateContainer failed");
            shared
                .events
                .publish(pod, events::WARNING, "Failed", &format!("Error: {message}"));
            rt.waiting = Some(("CreateContainerError".into(), message));
            rt.not_before = Some(Instant::now() + next_backoff(rt.backoff).min(MAX_BACKOFF));
            rt.backoff = next_backoff(rt.backoff);
            return;
        }
    };
    shared.events.publish(
        pod,
        events::NORMAL,
        "Created",
        &format!("Created container: {}", spec.name),
    );
    let started = runtime
        .runtime
        .start_container(v1::StartContainerRequest {
            container_id: id.clone(),
        })
        .await;
    match &started {
        Ok(_) => {
            shared.events.publish(
                pod,
                events::NORMAL,
                "Started",
                &format!("Started container {}", spec.name),
            );
        }
        Err(status) => {
            // The container stays, exited with StartError: the restart
            // logic takes it from there (CrashLoopBackOff).
            let message = pull::go_status(status);
            tracing::warn!(pod = %pod_key(pod), container = %spec.name, %message, "StartContainer failed");
            shared
                .events
                .publish(pod, events::WARNING, "Failed", &format!("Error: {message}"));
        }
    }
    let observed = match runtime.container_status(&id).await {
        Ok((status, info)) => Observed::from_status(&status, &info),
        Err(status) => {
            tracing::warn!(pod = %pod_key(pod), container = %spec.name, error = %status.message(), "ContainerStatus failed after start");
            return;
        }
    };
    tracing::info!(pod = %pod_key(pod), container = %spec.name, id = %id, attempt, "container started");
    // The one before becomes `previous`; the one before that goes.
    if let Some(old) = rt.current.take() {
        if let Some(older) = rt.previous.replace(old) {
            if let Err(status) = runtime.remove_container(&older.id).await {
                tracing::debug!(error = %status.message(), "removing an old container");
            }
        }
    }
    rt.current = Some(observed);
    rt.exit_handled = false;
    rt.not_before = None;
    rt.waiting = None;
    rt.started_at = Some(Instant::now());
    rt.arm_probes(spec, false);
}

/// `CreateContainerConfigError`: the Pod's spec cannot be made a container
/// (a missing ConfigMap key, runAsNonRoot against a root image...).
fn config_error(shared: &Shared, pod: &Pod, rt: &mut ContainerRuntime, message: String) {
    if rt.waiting.as_ref().map(|(_, m)| m) != Some(&message) {
        shared
            .events
            .publish(pod, events::WARNING, "Failed", &format!("Error: {message}"));
    }
    rt.waiting = Some(("CreateContainerConfigError".into(), message));
    rt.not_before = Some(Instant::now() + RETRY);
}

/// Runs the container's due probes; returns whether liveness failed (the
/// container must be killed).
async fn run_probes(
    shared: &Arc<Shared>,
    pod: &Arc<Pod>,
    spec: &Container,
    rt: &mut ContainerRuntime,
    ip: IpAddr,
    runtime: &Runtime,
    id: &str,
) -> bool {
    let now = Instant::now();
    if let Some(startup) = rt.startup.as_mut().filter(|p| !p.passing) {
        if startup.next <= now {
            let outcome = probes::run(&startup.probe, spec, ip, runtime, id).await;
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
        let outcome = probes::run(&readiness.probe, spec, ip, runtime, id).await;
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
        let outcome = probes::run(&liveness.probe, spec, ip, runtime, id).await;
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

/// The container's mounts, as the kubelet gives them to the runtime: the
/// Pod's `/etc/hosts`, then its volumeMounts.
fn container_mounts(pod: &Pod, dir: &PodDir, spec: &Container) -> Result<Vec<v1::Mount>, String> {
    let bind = |host: &std::path::Path, target: &str, readonly: bool| v1::Mount {
        container_path: target.to_string(),
        host_path: host.display().to_string(),
        readonly,
        ..Default::default()
    };
    let mut mounts = vec![];
    if !sandbox::host_network(pod) {
        mounts.push(bind(&dir.etc_hosts(), "/etc/hosts", false));
    }
    let volumes: Vec<&Volume> = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .collect();
    for vm in spec.volume_mounts.iter().flatten() {
        let volume = volumes
            .iter()
            .find(|v| v.name == vm.name)
            .ok_or_else(|| format!("volumeMount {:?} names no volume of the Pod", vm.name))?;
        let mut source = match &volume.host_path {
            Some(host) => std::path::PathBuf::from(&host.path),
            None => volumes::volume_dir(dir.path(), volume),
        };
        if let Some(sub) = vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
            source = source.join(sub);
        }
        let read_only = vm.read_only == Some(true)
            || volume.config_map.is_some()
            || volume.secret.is_some()
            || volume.projected.is_some();
        mounts.push(bind(&source, &vm.mount_path, read_only));
    }
    Ok(mounts)
}

/// One container's status.
fn container_status(
    spec: &Container,
    rt: &ContainerRuntime,
    runtime_name: &str,
    old: Option<&PodStatus>,
) -> ContainerStatus {
    let current = rt.current.as_ref();
    let mut status = ContainerStatus {
        name: spec.name.clone(),
        image: current
            .map(|c| c.image.clone())
            .filter(|i| !i.is_empty())
            .or_else(|| spec.image.clone())
            .unwrap_or_default(),
        image_id: current.map(|c| c.image_ref.clone()).unwrap_or_default(),
        restart_count: rt.restart_count() as i32,
        ready: rt.ready(),
        started: Some(rt.running() && rt.startup.as_ref().is_none_or(|p| p.passing)),
        container_id: current.map(|c| c.container_id(runtime_name)),
        ..Default::default()
    };
    if current.is_none() {
        // Not (yet) running in this sandbox: keep what the API knew.
        if let Some(before) = old
            .and_then(|o| o.container_statuses.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.name == spec.name))
        {
            status.image_id = before.image_id.clone();
            status.last_state = before.last_state.clone();
        }
    }
    if let Some(previous) = &rt.previous {
        status.last_state = Some(ContainerState {
            terminated: Some(terminated(previous, runtime_name)),
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
    status.state = Some(match current {
        Some(c) => match c.state {
            State::Running => ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: c.started_at.clone(),
                }),
                ..Default::default()
            },
            State::Created => waiting("ContainerCreating", ""),
            State::Exited | State::Unknown => match (&rt.waiting, rt.not_before) {
                (Some((reason, message)), Some(_)) => {
                    // Waiting to restart: the container that ended is
                    // the last state.
                    status.last_state = Some(ContainerState {
                        terminated: Some(terminated(c, runtime_name)),
                        ..Default::default()
                    });
                    waiting(reason, message)
                }
                _ => ContainerState {
                    terminated: Some(terminated(c, runtime_name)),
                    ..Default::default()
                },
            },
        },
        None => match &rt.waiting {
            Some((reason, message)) => waiting(reason, message),
            None => waiting("ContainerCreating", ""),
        },
    });
    status
}

fn terminated(c: &Observed, runtime_name: &str) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: c.exit_code,
        signal: None,
        reason: (!c.reason.is_empty()).then(|| c.reason.clone()),
        message: (!c.message.is_empty()).then(|| c.message.clone()),
        started_at: c.started_at.clone(),
        finished_at: c.finished_at.clone(),
        container_id: Some(c.container_id(runtime_name)),
    }
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
