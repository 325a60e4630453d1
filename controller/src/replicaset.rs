//! # ReplicaSets: keeping N copies of a Pod running
//!
//! A ReplicaSet says "there should be `replicas` Pods like this template,
//! and these are they: the Pods my `selector` matches". This loop counts
//! them and creates or deletes Pods until the count is right, as
//! kube-controller-manager's `pkg/controller/replicaset` does:
//!
//! - **Pods it makes** are named `<replicaset>-<5 random characters>`
//!   (`generateName: <replicaset>-`; the apiserver picks the suffix), carry
//!   the template's labels and annotations, and an `ownerReference` to the
//!   ReplicaSet with `controller: true` (this Pod is managed, nobody else
//!   may claim it) and `blockOwnerDeletion: true` (a foreground delete of
//!   the ReplicaSet waits for it).
//! - **Which Pods count**: those it controls that match its selector and
//!   are *active*: not Succeeded or Failed, and not being deleted (a Pod
//!   with a `deletionTimestamp` is on its way out, its replacement may start
//!   now). An orphan Pod that matches the selector is adopted; an owned Pod
//!   whose labels no longer match is released (its ownerReference removed):
//!   that is how `kubectl label pod ... app-` takes a Pod out for debugging.
//! - **Which Pods go first** when scaling down (upstream's `ActivePods`
//!   ordering): not yet scheduled, then Pending before Running, then not
//!   ready, then lower `controller.kubernetes.io/pod-deletion-cost`, then
//!   Pods doubled up on a node with their siblings, then the most recently
//!   ready, the most restarted, and the newest.
//! - **Creating in slow-start batches** of 1, 2, 4, 8, ...: a template that
//!   cannot work (a quota, a bad volume) fails once instead of 500 times.
//! - **Status**: `replicas`, `fullyLabeledReplicas`, `readyReplicas`,
//!   `availableReplicas` (ready for at least `minReadySeconds`),
//!   `terminatingReplicas`, `observedGeneration`; a `ReplicaFailure`
//!   condition when creating or deleting fails.
//!
//! ## Never too many Pods, even across restarts
//!
//! The loop reads Pods from a reflector's cache, and a cache lags: right
//! after this loop created 4 Pods, the next pass may still see none of them
//! and create 4 more. Upstream guards against that with *expectations*
//! (in-memory counts of creations not yet seen in the cache). Here the rule
//! is simpler and also holds across a restart: **the cache decides whether
//! to look, the apiserver decides what to do**. When the cached count
//! differs from `replicas`, the loop lists the ReplicaSet's Pods from the
//! apiserver (a fresh, consistent read that includes every Pod whose
//! creation was acknowledged, by this process or a previous one) and acts
//! on that count only. A controller killed in the middle of a scale-up
//! therefore leaves nothing for its successor to double: the successor's
//! first look at the apiserver sees every Pod created so far. The cost is
//! one list call per pass that has something to do; passes where the cache
//! agrees with the spec (almost all of them) make no call at all.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};

use crate::events::EventType;
use crate::ownership::{Claim, Owner};
use crate::{Context, Error, Result};

/// Who writes the Events (`kubectl describe rs` shows it as `From`).
const COMPONENT: &str = "replicaset-controller";

/// At most this many Pods are created or deleted in one pass
/// (kube-controller-manager's `BurstReplicas`).
pub const BURST_REPLICAS: usize = 500;

/// The first slow-start batch; each next one is twice as big.
pub const SLOW_START_INITIAL_BATCH: usize = 1;

/// Annotation that lets a user say which Pods to remove first (lower first).
pub const POD_DELETION_COST_ANNOTATION: &str = "controller.kubernetes.io/pod-deletion-cost";

// ---------------------------------------------------------------------------
// Small facts about objects, shared with the Deployment loop

pub use crate::ownership::controller_of;

pub use crate::kube_error_code;

/// Counted as a replica: not finished and not being deleted (`IsPodActive`).
pub fn is_pod_active(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none() && !is_pod_terminal(pod)
}

/// Succeeded or Failed: its containers will not run again.
pub fn is_pod_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

fn node_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default()
}

/// When the Pod's Ready condition turned True, if it is True.
fn ready_since(pod: &Pod) -> Option<Option<Timestamp>> {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .filter(|c| c.status == "True")
        .map(|c| c.last_transition_time.as_ref().map(|t| t.0))
}

/// Ready for at least `min_ready_seconds` (`IsPodAvailable`).
pub fn is_pod_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => false,
        Some(Some(since)) => since + SignedDuration::from_secs(min_ready_seconds.into()) < now,
    }
}

// ---------------------------------------------------------------------------
// Which Pods to delete first (pure)

fn phase_ordinal(pod: &Pod) -> u8 {
    match phase(pod) {
        "Unknown" => 1,
        "Running" => 2,
        // Pending, and a Pod nobody reported on yet.
        _ => 0,
    }
}

fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(POD_DELETION_COST_ANNOTATION))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().map(|c| c.restart_count).max())
        .unwrap_or(0)
}

/// Newer first, a missing time first of all (`afterOrZero`).
fn newer_first(a: Option<Timestamp>, b: Option<Timestamp>) -> std::cmp::Ordering {
    match (a, b) {
        (None, None) => std::cmp::Ordering::Equal,
        (None, Some(_)) => std::cmp::Ordering::Less,
        (Some(_), None) => std::cmp::Ordering::Greater,
        (Some(a), Some(b)) => b.cmp(&a),
    }
}

/// `floor(log2(age in ns))`: ages within the same power of two are alike,
/// so a Pod 10 minutes old and one 11 minutes old count as equally old
/// (upstream's LogarithmicScaleDown) and the choice between them is random
/// (by UID) instead of always hitting the same node.
fn log_age(t: Timestamp, now: Timestamp) -> i64 {
    let nanos = now.as_nanosecond() - t.as_nanosecond();
    if nanos <= 0 {
        -1
    } else {
        (nanos as f64).log2() as i64
    }
}

/// Newer first by logarithmic age, UID on ties.
fn newer_first_log(
    a: Option<Timestamp>,
    b: Option<Timestamp>,
    pa: &Pod,
    pb: &Pod,
    now: Timestamp,
) -> std::cmp::Ordering {
    match (a, b) {
        (Some(ta), Some(tb)) => log_age(ta, now)
            .cmp(&log_age(tb, now))
            .then_with(|| pa.metadata.uid.cmp(&pb.metadata.uid)),
        _ => newer_first(a, b),
    }
}

/// The deletion order of two active Pods (`ActivePodsWithRanks.Less`):
/// `Less` means `a` goes first. `rank_*` counts the active Pods of the same
/// workload on the Pod's node.
fn deletion_order(
    a: &Pod,
    rank_a: usize,
    b: &Pod,
    rank_b: usize,
    now: Timestamp,
) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    // 1. Not scheduled before scheduled.
    let (node_a, node_b) = (node_name(a), node_name(b));
    if node_a != node_b && (node_a.is_empty() || node_b.is_empty()) {
        return if node_a.is_empty() {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    // 2. Pending < Unknown < Running.
    let by_phase = phase_ordinal(a).cmp(&phase_ordinal(b));
    if by_phase != Ordering::Equal {
        return by_phase;
    }
    // 3. Not ready before ready.
    let (ready_a, ready_b) = (ready_since(a), ready_since(b));
    if ready_a.is_some() != ready_b.is_some() {
        return if ready_a.is_none() {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    // 4. Lower deletion cost first.
    let by_cost = deletion_cost(a).cmp(&deletion_cost(b));
    if by_cost != Ordering::Equal {
        return by_cost;
    }
    // 5. Doubled up on a node before alone on one.
    if rank_a != rank_b {
        return rank_b.cmp(&rank_a);
    }
    // 6. Ready more recently first.
    if let (Some(since_a), Some(since_b)) = (ready_a, ready_b) {
        if since_a != since_b {
            return newer_first_log(since_a, since_b, a, b, now);
        }
    }
    // 7. More restarts first.
    let by_restarts = max_restarts(b).cmp(&max_restarts(a));
    if by_restarts != Ordering::Equal {
        return by_restarts;
    }
    // 8. Newer first.
    let (created_a, created_b) = (
        a.metadata.creation_timestamp.as_ref().map(|t| t.0),
        b.metadata.creation_timestamp.as_ref().map(|t| t.0),
    );
    if created_a != created_b {
        return newer_first_log(created_a, created_b, a, b, now);
    }
    Ordering::Equal
}

/// The `count` Pods to delete out of `pods`, given `related` (the active
/// and inactive Pods of every ReplicaSet of the same Deployment) for the
/// doubled-up rule (`getPodsToDelete`).
pub fn pods_to_delete(pods: &[Pod], related: &[Pod], count: usize, now: Timestamp) -> Vec<Pod> {
    let mut on_node: HashMap<&str, usize> = HashMap::new();
    for pod in related.iter().filter(|p| is_pod_active(p)) {
        *on_node.entry(node_name(pod)).or_default() += 1;
    }
    let mut ranked: Vec<(usize, &Pod)> = pods
        .iter()
        .map(|p| (on_node.get(node_name(p)).copied().unwrap_or(0), p))
        .collect();
    if count < ranked.len() {
        ranked.sort_by(|(ra, a), (rb, b)| deletion_order(a, *ra, b, *rb, now));
    }
    ranked
        .into_iter()
        .take(count)
        .map(|(_, p)| p.clone())
        .collect()
}

// ---------------------------------------------------------------------------
// Status (pure)

/// The status a ReplicaSet should report for its `active` Pods
/// (`calculateStatus`); `manage_error` sets or clears ReplicaFailure.
pub fn calculate_status(
    rs: &ReplicaSet,
    active: &[Pod],
    terminating: i32,
    manage_error: Option<&str>,
    now: Timestamp,
) -> ReplicaSetStatus {
    let template_labels = rs
        .spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let min_ready = rs.spec.min_ready_seconds.unwrap_or(0);
    let fully_labeled = active
        .iter()
        .filter(|p| {
            let labels = p.labels();
            template_labels
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
        })
        .count();
    let ready = active.iter().filter(|p| api::pod::is_ready(p)).count();
    let available = active
        .iter()
        .filter(|p| is_pod_available(p, min_ready, now))
        .count();
    // Zero counts are left out, as upstream's `omitempty` does.
    let count = |n: usize| (n != 0).then_some(n as i32);

    let mut conditions = rs
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let has_failure = conditions
        .iter()
        .any(|c| c.type_.as_deref() == Some("ReplicaFailure"));
    match manage_error {
        Some(message) if !has_failure => {
            let replicas = rs.spec.replicas.unwrap_or(1) as usize;
            let reason = if active.len() < replicas {
                "FailedCreate"
            } else {
                "FailedDelete"
            };
            conditions.push(ReplicaSetCondition {
                type_: Some("ReplicaFailure".into()),
                status: Some("True".into()),
                reason: Some(reason.into()),
                message: Some(message.into()),
                last_transition_time: Some(Time(now)),
            });
        }
        None if has_failure => conditions.retain(|c| c.type_.as_deref() != Some("ReplicaFailure")),
        _ => {}
    }
    ReplicaSetStatus {
        replicas: active.len() as i32,
        fully_labeled_replicas: count(fully_labeled),
        ready_replicas: count(ready),
        available_replicas: count(available),
        terminating_replicas: Some(terminating),
        observed_generation: rs.metadata.generation,
        conditions: (!conditions.is_empty()).then_some(conditions),
    }
}

/// How long until the next ready Pod becomes available, if one is waiting
/// out `minReadySeconds`: nothing else would wake the loop then.
fn next_availability(active: &[Pod], min_ready_seconds: i32, now: Timestamp) -> Option<Duration> {
    if min_ready_seconds <= 0 {
        return None;
    }
    active
        .iter()
        .filter(|p| !is_pod_available(p, min_ready_seconds, now))
        .filter_map(|p| ready_since(p).flatten())
        .map(|since| since + SignedDuration::from_secs(min_ready_seconds.into()))
        .min()
        .map(|due| {
            Duration::try_from(due.duration_since(now)).unwrap_or(Duration::ZERO)
                + Duration::from_millis(500)
        })
}

// ---------------------------------------------------------------------------
// The loop

/// What the ReplicaSet loop shares between reconciles: the controller's
/// context, a cache of every Pod, and the loop's own ReplicaSet cache
/// (to find the sibling ReplicaSets of one Deployment).
pub struct ReplicaSetController {
    ctx: Arc<Context>,
    pods: Store<Pod>,
    replicasets: Store<ReplicaSet>,
}

impl ReplicaSetController {
    /// `pods` and `replicasets` must be fed by reflectors over all objects.
    pub fn new(
        ctx: Arc<Context>,
        pods: Store<Pod>,
        replicasets: Store<ReplicaSet>,
    ) -> ReplicaSetController {
        ReplicaSetController {
            ctx,
            pods,
            replicasets,
        }
    }
}

/// Runs the ReplicaSet loop: ReplicaSets are the primary objects; the Pod
/// reflector fills the Pod cache and wakes the ReplicaSet that controls
/// (or could adopt) each changed Pod.
pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let client = ctx.client.clone();
    let (pods, pod_events) = crate::watch_all::<Pod>(&client);
    let controller = Controller::new(Api::<ReplicaSet>::all(client), watcher::Config::default());
    let replicasets = controller.store();
    let mapper_replicasets = replicasets.clone();
    let state = Arc::new(ReplicaSetController::new(ctx, pods, replicasets));
    controller
        .watches_stream(pod_events, move |pod| {
            replica_sets_of_pod(&mapper_replicasets, &pod)
        })
        .run(reconcile, error_policy, state)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "replicaset loop");
            }
        })
        .await;
    Ok(())
}

/// The ReplicaSet to wake for a Pod change: its controller, or for an
/// active orphan every ReplicaSet whose selector matches it.
fn replica_sets_of_pod(replicasets: &Store<ReplicaSet>, pod: &Pod) -> Vec<ObjectRef<ReplicaSet>> {
    let namespace = pod.namespace().unwrap_or_default();
    if let Some(owner) = controller_of(&pod.metadata) {
        if owner.kind == "ReplicaSet" {
            return vec![ObjectRef::new(&owner.name).within(&namespace)];
        }
        return Vec::new();
    }
    if !is_pod_active(pod) {
        return Vec::new();
    }
    let labels = pod.labels();
    replicasets
        .state()
        .iter()
        .filter(|rs| rs.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|rs| {
            api::selector::LabelSelector::from_k8s(&rs.spec.selector)
                .is_ok_and(|s| !s.is_empty() && s.matches(labels))
        })
        .map(|rs| ObjectRef::from_obj(rs.as_ref()))
        .collect()
}

/// Conflicts mean our cache was behind: retry soon, quietly. Anything else
/// is worth a warning and a slower retry.
pub fn error_policy(
    rs: Arc<ReplicaSet>,
    error: &Error,
    _ctrl: Arc<ReplicaSetController>,
) -> Action {
    let name = format!("{}/{}", rs.namespace().unwrap_or_default(), rs.name_any());
    crate::requeue_after_error(&format!("replica set {name}"), error)
}

/// Makes one ReplicaSet's Pods match it (`syncReplicaSet`).
pub async fn reconcile(rs: Arc<ReplicaSet>, ctrl: Arc<ReplicaSetController>) -> Result<Action> {
    crate::wait_for_cache(&ctrl.pods).await?;
    let sync = ReplicaSetSync::new(&ctrl, &rs)?;
    let replicas = rs.spec.replicas.unwrap_or(1).max(0) as usize;
    let deleting = rs.metadata.deletion_timestamp.is_some();

    // First from the cache...
    let cached: Vec<Pod> = ctrl
        .pods
        .state()
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(sync.namespace.as_str()))
        .filter(|p| sync.owner.may_claim(&p.metadata))
        .map(|p| (**p).clone())
        .collect();
    let mut pods = sync.claim(cached).await?;
    let mut manage_error = None;
    if !deleting && pods.active.len() != replicas {
        // ...and when the cache says there is work, from the apiserver.
        let fresh = sync.list_pods().await?;
        pods = sync.claim(fresh).await?;
        if pods.active.len() != replicas {
            manage_error = sync.manage_replicas(&pods.active, replicas).await.err();
        }
    }

    let now = Timestamp::now();
    let message = manage_error.as_ref().map(|e| e.to_string());
    let mut status = calculate_status(&rs, &pods.active, pods.terminating, message.as_deref(), now);
    if let (Some(old), Some(new)) = (rs.status.as_ref(), status.conditions.as_mut()) {
        // A condition that stayed keeps its time.
        for c in new.iter_mut() {
            if let Some(same) = old
                .conditions
                .iter()
                .flatten()
                .find(|o| o.type_ == c.type_ && o.status == c.status)
            {
                c.last_transition_time = same.last_transition_time.clone();
            }
        }
    }
    if rs.status.as_ref() != Some(&status) {
        let mut updated = (*rs).clone();
        updated.status = Some(std::mem::take(&mut status));
        sync.replicasets()
            .replace_status(&sync.name, &PostParams::default(), &updated)
            .await?;
    }
    if let Some(e) = manage_error {
        return Err(e);
    }
    let min_ready = rs.spec.min_ready_seconds.unwrap_or(0);
    Ok(match next_availability(&pods.active, min_ready, now) {
        Some(after) => Action::requeue(after),
        None => Action::await_change(),
    })
}

/// The Pods a ReplicaSet controls, as far as it is concerned.
struct ClaimedPods {
    /// Active Pods: the replicas.
    active: Vec<Pod>,
    /// Pods being deleted that have not finished.
    terminating: i32,
}

/// One pass over one ReplicaSet.
struct ReplicaSetSync<'a> {
    ctrl: &'a ReplicaSetController,
    rs: &'a ReplicaSet,
    namespace: String,
    name: String,
    selector: api::selector::LabelSelector,
    owner: Owner,
}

impl<'a> ReplicaSetSync<'a> {
    fn new(ctrl: &'a ReplicaSetController, rs: &'a ReplicaSet) -> Result<ReplicaSetSync<'a>> {
        let namespace = rs.namespace().unwrap_or_default();
        let name = rs.name_any();
        let selector = api::selector::LabelSelector::from_k8s(&rs.spec.selector).map_err(|e| {
            Error::invalid(
                format!("replica set {namespace}/{name}"),
                format!("spec.selector: {e}"),
            )
        })?;
        if selector.is_empty() {
            // Validation refuses these; an empty selector would claim every Pod.
            return Err(Error::invalid(
                format!("replica set {namespace}/{name}"),
                "spec.selector is empty and would select every pod",
            ));
        }
        let owner = Owner {
            api_version: "apps/v1",
            kind: "ReplicaSet",
            name: name.clone(),
            uid: rs.metadata.uid.clone().unwrap_or_default(),
            selector: selector.clone(),
            deleting: rs.metadata.deletion_timestamp.is_some(),
        };
        Ok(ReplicaSetSync {
            ctrl,
            rs,
            namespace,
            name,
            selector,
            owner,
        })
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.ctrl.ctx.client.clone(), &self.namespace)
    }

    fn replicasets(&self) -> Api<ReplicaSet> {
        Api::namespaced(self.ctrl.ctx.client.clone(), &self.namespace)
    }

    async fn event(&self, event_type: EventType, reason: &str, message: &str) {
        self.ctrl
            .ctx
            .events
            .publish(
                COMPONENT,
                &self.rs.object_ref(&()),
                event_type,
                reason,
                message,
            )
            .await;
    }

    /// The ReplicaSet's Pods according to the apiserver, not the cache.
    async fn list_pods(&self) -> Result<Vec<Pod>> {
        let params = ListParams::default().labels(&self.selector.to_string());
        Ok(self.pods().list(&params).await?.items)
    }

    /// Sorts `pods` (of the ReplicaSet's namespace) into ours, adopting
    /// matching active orphans and releasing active Pods that stopped
    /// matching (`claimPods`, see [`crate::ownership`]).
    async fn claim(&self, pods: Vec<Pod>) -> Result<ClaimedPods> {
        let mut claimed = ClaimedPods {
            active: Vec::new(),
            terminating: 0,
        };
        let mut adoption_allowed = None;
        for pod in pods {
            match self.owner.classify(&pod.metadata, is_pod_active(&pod)) {
                Claim::Owned if is_pod_active(&pod) => claimed.active.push(pod),
                Claim::Owned if !is_pod_terminal(&pod) => claimed.terminating += 1,
                Claim::Owned | Claim::Ignore => {}
                Claim::Release => self.owner.release(&self.pods(), &pod).await?,
                Claim::Adopt => {
                    // Check once, against the apiserver, that this
                    // ReplicaSet still exists and is not being deleted.
                    if adoption_allowed.is_none() {
                        let fresh = self.replicasets().get_opt(&self.name).await?;
                        adoption_allowed = Some(fresh.is_some_and(|f| {
                            f.metadata.uid.as_deref() == Some(self.owner.uid.as_str())
                                && f.metadata.deletion_timestamp.is_none()
                        }));
                    }
                    if adoption_allowed == Some(true) {
                        if let Some(adopted) = self.owner.adopt(&self.pods(), &pod).await? {
                            claimed.active.push(adopted);
                        }
                    }
                }
            }
        }
        Ok(claimed)
    }

    /// Creates or deletes Pods so that `active` becomes `replicas` long
    /// (`manageReplicas`).
    async fn manage_replicas(&self, active: &[Pod], replicas: usize) -> Result<()> {
        if active.len() < replicas {
            let missing = (replicas - active.len()).min(BURST_REPLICAS);
            self.create_pods(missing).await
        } else {
            let excess = (active.len() - replicas).min(BURST_REPLICAS);
            let related = self.related_pods();
            let victims = pods_to_delete(active, &related, excess, Timestamp::now());
            self.delete_pods(victims).await
        }
    }

    /// Creates `count` Pods in batches of 1, 2, 4, ... (`slowStartBatch`);
    /// stops at the first batch with a failure.
    async fn create_pods(&self, count: usize) -> Result<()> {
        let template = self.rs.spec.template.clone().ok_or_else(|| {
            Error::invalid(
                format!("replica set {}/{}", self.namespace, self.name),
                "no spec.template",
            )
        })?;
        let pod = pod_from_template(
            &template,
            &self.namespace,
            &self.name,
            self.owner.reference(),
        );
        let mut remaining = count;
        let mut batch = remaining.min(SLOW_START_INITIAL_BATCH);
        while batch > 0 {
            let results =
                futures::future::join_all((0..batch).map(|_| self.create_pod(&pod))).await;
            if let Some(error) = results.into_iter().find_map(|r| r.err()) {
                return Err(error);
            }
            remaining -= batch;
            batch = remaining.min(2 * batch);
        }
        Ok(())
    }

    async fn create_pod(&self, pod: &Pod) -> Result<()> {
        match self.pods().create(&PostParams::default(), pod).await {
            Ok(created) => {
                let message = format!("Created pod: {}", created.name_any());
                self.event(EventType::Normal, "SuccessfulCreate", &message)
                    .await;
                Ok(())
            }
            Err(e) => {
                let message = format!("Error creating: {e}");
                self.event(EventType::Warning, "FailedCreate", &message)
                    .await;
                Err(Error::api(
                    format!("replica set {}/{}", self.namespace, self.name),
                    "creating a pod",
                    e,
                ))
            }
        }
    }

    async fn delete_pods(&self, victims: Vec<Pod>) -> Result<()> {
        let results =
            futures::future::join_all(victims.iter().map(|pod| self.delete_pod(pod))).await;
        results.into_iter().collect()
    }

    async fn delete_pod(&self, pod: &Pod) -> Result<()> {
        let pod_name = pod.name_any();
        match self
            .pods()
            .delete(&pod_name, &DeleteParams::default())
            .await
        {
            Ok(_) => {
                let message = format!("Deleted pod: {pod_name}");
                self.event(EventType::Normal, "SuccessfulDelete", &message)
                    .await;
                Ok(())
            }
            // Already gone: what we wanted.
            Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
            Err(e) => {
                let message = format!("Error deleting: {e}");
                self.event(EventType::Warning, "FailedDelete", &message)
                    .await;
                Err(Error::api(
                    format!("replica set {}/{}", self.namespace, self.name),
                    format!("deleting pod {pod_name}"),
                    e,
                ))
            }
        }
    }

    /// Pods of every ReplicaSet with the same controller (the Deployment's
    /// other versions), from the cache (`getIndirectlyRelatedPods`).
    fn related_pods(&self) -> Vec<Pod> {
        let Some(owner) = controller_of(&self.rs.metadata) else {
            return Vec::new();
        };
        let siblings: Vec<api::selector::LabelSelector> = self
            .ctrl
            .replicasets
            .state()
            .iter()
            .filter(|rs| rs.metadata.namespace.as_deref() == Some(self.namespace.as_str()))
            .filter(|rs| controller_of(&rs.metadata).is_some_and(|o| o.uid == owner.uid))
            .filter_map(|rs| api::selector::LabelSelector::from_k8s(&rs.spec.selector).ok())
            .collect();
        let mut seen = HashSet::new();
        self.ctrl
            .pods
            .state()
            .iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(self.namespace.as_str()))
            .filter(|p| siblings.iter().any(|s| s.matches(p.labels())))
            .filter(|p| seen.insert(p.metadata.uid.clone()))
            .map(|p| (**p).clone())
            .collect()
    }
}

/// A new Pod for a ReplicaSet (`GetPodFromTemplate`): the template's labels,
/// annotations, finalizers and spec, `generateName: <replicaset>-`, and the
/// controller reference.
pub fn pod_from_template(
    template: &PodTemplateSpec,
    namespace: &str,
    owner_name: &str,
    owner: OwnerReference,
) -> Pod {
    let meta = template.metadata.clone().unwrap_or_default();
    let prefix = format!("{owner_name}-");
    // A name that is not valid with a dash appended (too long...) is used
    // as it is, as upstream does; the apiserver then says what is wrong.
    let prefix = if api::names::is_dns1123_subdomain(&format!("{prefix}a")).is_empty() {
        prefix
    } else {
        owner_name.to_string()
    };
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(prefix),
            namespace: Some(namespace.into()),
            labels: meta.labels.filter(|l| !l.is_empty()),
            annotations: meta
                .annotations
                .filter(|a: &BTreeMap<String, String>| !a.is_empty()),
            finalizers: meta.finalizers,
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use serde_json::json;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    /// A pod created at `created`, on `node` (or not scheduled), with a
    /// phase, ready since `ready` if Some.
    fn pod(name: &str, created: i64, node: Option<&str>, phase: &str, ready: Option<i64>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some(format!("uid-{name}")),
                creation_timestamp: Some(Time(at(created))),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(String::from),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: ready.map(|since| {
                    vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(Time(at(since))),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        }
    }

    fn names(pods: &[Pod]) -> Vec<String> {
        pods.iter().map(|p| p.name_any()).collect()
    }

    #[test]
    fn scale_down_removes_unscheduled_then_not_ready_then_newest() {
        let now = at(100_000);
        let pods = vec![
            pod("old-ready", 0, Some("n1"), "Running", Some(10)),
            pod("new-ready", 90_000, Some("n2"), "Running", Some(90_010)),
            pod("not-ready", 0, Some("n1"), "Running", None),
            pod("pending", 0, Some("n2"), "Pending", None),
            pod("unscheduled", 0, None, "Pending", None),
        ];
        let order = names(&pods_to_delete(&pods, &[], 4, now));
        assert_eq!(order, ["unscheduled", "pending", "not-ready", "new-ready"]);
        // Deleting all of them needs no order.
        assert_eq!(pods_to_delete(&pods, &[], 5, now).len(), 5);
    }

    #[test]
    fn doubled_up_pods_go_before_lonely_ones() {
        let now = at(100_000);
        let pods = vec![
            pod("alone", 50_000, Some("n1"), "Running", Some(50_000)),
            pod("pair-a", 0, Some("n2"), "Running", Some(0)),
            pod("pair-b", 1, Some("n2"), "Running", Some(1)),
        ];
        let order = names(&pods_to_delete(&pods, &pods, 1, now));
        assert!(order[0].starts_with("pair"), "{order:?}");
    }

    #[test]
    fn deletion_cost_is_honoured() {
        let now = at(100_000);
        let mut cheap = pod("cheap", 0, Some("n1"), "Running", Some(0));
        cheap.metadata.annotations =
            Some([(POD_DELETION_COST_ANNOTATION.to_string(), "-10".to_string())].into());
        let pods = vec![
            pod("newer", 90_000, Some("n2"), "Running", Some(90_000)),
            cheap,
        ];
        assert_eq!(names(&pods_to_delete(&pods, &[], 1, now)), ["cheap"]);
    }

    #[test]
    fn terminating_and_finished_pods_are_not_replicas() {
        let mut deleting = pod("d", 0, Some("n1"), "Running", Some(0));
        deleting.metadata.deletion_timestamp = Some(Time(at(5)));
        assert!(!is_pod_active(&deleting));
        assert!(!is_pod_active(&pod("s", 0, Some("n1"), "Succeeded", None)));
        assert!(!is_pod_active(&pod("f", 0, Some("n1"), "Failed", None)));
        assert!(is_pod_active(&pod("p", 0, None, "Pending", None)));
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let p = pod("p", 0, Some("n1"), "Running", Some(100));
        assert!(is_pod_available(&p, 0, at(100)));
        assert!(!is_pod_available(&p, 10, at(105)));
        assert!(is_pod_available(&p, 10, at(111)));
        let wait = next_availability(std::slice::from_ref(&p), 10, at(105)).unwrap();
        assert!(
            wait >= Duration::from_secs(5) && wait < Duration::from_secs(7),
            "{wait:?}"
        );
    }

    #[test]
    fn status_counts_what_kubectl_shows() {
        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": "web-abc", "generation": 3},
            "spec": {
                "replicas": 3,
                "minReadySeconds": 10,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web", "tier": "front"}}, "spec": {"containers": []}}
            }
        }))
        .unwrap();
        let mut labeled = pod("a", 0, Some("n1"), "Running", Some(0));
        labeled
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("tier".into(), "front".into());
        let pods = vec![
            labeled,
            pod("b", 0, Some("n1"), "Running", Some(995)),
            pod("c", 0, None, "Pending", None),
        ];
        let status = calculate_status(&rs, &pods, 1, None, at(1000));
        assert_eq!(status.replicas, 3);
        assert_eq!(status.fully_labeled_replicas, Some(1));
        assert_eq!(status.ready_replicas, Some(2));
        assert_eq!(status.available_replicas, Some(1));
        assert_eq!(status.terminating_replicas, Some(1));
        assert_eq!(status.observed_generation, Some(3));
        assert_eq!(status.conditions, None);

        let failed = calculate_status(&rs, &pods[..1], 0, Some("quota"), at(1000));
        let c = &failed.conditions.unwrap()[0];
        assert_eq!(c.type_.as_deref(), Some("ReplicaFailure"));
        assert_eq!(c.reason.as_deref(), Some("FailedCreate"));
    }

    #[test]
    fn pods_come_from_the_template() {
        let template: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}, "annotations": {"a": "b"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:alpine"}]}
        }))
        .unwrap();
        let owner = OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "web-abc".into(),
            uid: "u".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        let p = pod_from_template(&template, "default", "web-abc", owner.clone());
        assert_eq!(p.metadata.generate_name.as_deref(), Some("web-abc-"));
        assert_eq!(p.metadata.name, None);
        assert_eq!(
            p.labels().get("pod-template-hash").map(String::as_str),
            Some("abc")
        );
        assert_eq!(p.metadata.owner_references, Some(vec![owner]));
        assert_eq!(p.spec, template.spec);
    }
}

/// A real apiserver and live caches for the `reconcile` tests of this
/// module and of [`crate::deployment`].
#[cfg(test)]
pub(crate) mod test_cluster {
    use std::fmt::Debug;
    use std::hash::Hash;

    use futures::StreamExt;
    use kube::runtime::reflector::{self, Store};
    use kube::runtime::{watcher, WatchStreamExt};
    use kube::{Api, Resource};
    use serde::de::DeserializeOwned;

    use crate::{Config, Context};

    pub struct TestCluster {
        pub ctx: std::sync::Arc<Context>,
        pub client: kube::Client,
        _apiserver: e2e::harness::ApiServer,
        _dir: tempfile::TempDir,
    }

    impl TestCluster {
        pub fn start() -> TestCluster {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let apiserver = e2e::harness::ApiServer::start(dir.path());
            let config = kube::Config::new(apiserver.url.parse().expect("the apiserver URL"));
            let client = kube::Client::try_from(config).expect("a client");
            TestCluster {
                ctx: std::sync::Arc::new(Context::new(client.clone(), Config::default())),
                client,
                _apiserver: apiserver,
                _dir: dir,
            }
        }

        /// A cache of every `K`, kept up to date by a background reflector.
        pub fn cache<K>(&self) -> Store<K>
        where
            K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
            K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
        {
            let (store, writer) = reflector::store();
            let api: Api<K> = Api::all(self.client.clone());
            let events = reflector::reflector(
                writer,
                watcher(api, watcher::Config::default()).default_backoff(),
            );
            tokio::spawn(events.for_each(|_| async {}));
            store
        }
    }

    /// Waits (at most 10 s) until `check` holds.
    pub async fn until(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while !check() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Waits until `cache` holds exactly what the apiserver lists.
    pub async fn synced<K>(cache: &Store<K>, client: &kube::Client)
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        K::DynamicType: Default + Eq + Hash + Clone,
    {
        let version = |o: &K| (o.meta().uid.clone(), o.meta().resource_version.clone());
        let api: Api<K> = Api::all(client.clone());
        let listed = api.list(&Default::default()).await.expect("listing");
        let mut want: Vec<_> = listed.items.iter().map(version).collect();
        want.sort();
        until("the cache to catch up", || {
            let mut have: Vec<_> = cache.state().iter().map(|o| version(o)).collect();
            have.sort();
            have == want
        })
        .await;
    }
}

#[cfg(test)]
mod reconcile_tests {
    use super::test_cluster::{synced, TestCluster};
    use super::*;
    use kube::api::{Patch, PatchParams};
    use kube::runtime::watcher;
    use serde_json::json;

    fn replica_set(name: &str, replicas: i32) -> ReplicaSet {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "c", "image": "nginx:alpine"}]}
                }
            }
        }))
        .unwrap()
    }

    struct Fixture {
        cluster: TestCluster,
        ctrl: Arc<ReplicaSetController>,
        pods: Api<Pod>,
        rss: Api<ReplicaSet>,
    }

    impl Fixture {
        fn start() -> Fixture {
            let cluster = TestCluster::start();
            let ctrl = Arc::new(ReplicaSetController::new(
                cluster.ctx.clone(),
                cluster.cache(),
                cluster.cache(),
            ));
            Fixture {
                pods: Api::namespaced(cluster.client.clone(), "default"),
                rss: Api::namespaced(cluster.client.clone(), "default"),
                cluster,
                ctrl,
            }
        }

        async fn reconcile(&self, name: &str) -> Result<Action> {
            let rs = self.rss.get(name).await.unwrap();
            reconcile(Arc::new(rs), self.ctrl.clone()).await
        }

        /// Reconciles until the caches agree with the apiserver and a pass
        /// changes nothing more (at most 10 passes).
        async fn settle(&self, name: &str) {
            for _ in 0..10 {
                synced(&self.ctrl.pods, &self.cluster.client).await;
                synced(&self.ctrl.replicasets, &self.cluster.client).await;
                let before = self.versions(name).await;
                self.reconcile(name).await.unwrap();
                if self.versions(name).await == before {
                    return;
                }
            }
            panic!("replica set {name} did not settle");
        }

        /// The resourceVersions of the ReplicaSet and of every Pod.
        async fn versions(&self, name: &str) -> Vec<String> {
            let mut all = vec![self
                .rss
                .get(name)
                .await
                .unwrap()
                .resource_version()
                .unwrap()];
            let pods = self.pods.list(&Default::default()).await.unwrap();
            all.extend(pods.items.iter().map(|p| p.resource_version().unwrap()));
            all
        }

        async fn active_pods(&self) -> Vec<Pod> {
            let pods = self.pods.list(&Default::default()).await.unwrap();
            pods.items.into_iter().filter(is_pod_active).collect()
        }
    }

    #[tokio::test]
    async fn creates_owned_pods_and_a_second_pass_writes_nothing() {
        let f = Fixture::start();
        let rs = f
            .rss
            .create(&PostParams::default(), &replica_set("web", 3))
            .await
            .unwrap();
        f.reconcile("web").await.unwrap();
        let pods = f.active_pods().await;
        assert_eq!(pods.len(), 3);
        for pod in &pods {
            let name = pod.name_any();
            let suffix = name
                .strip_prefix("web-")
                .expect("named after the replica set");
            assert_eq!(suffix.len(), 5, "{name}");
            assert_eq!(pod.labels().get("app").map(String::as_str), Some("web"));
            let owner = controller_of(&pod.metadata).expect("a controller reference");
            assert_eq!(owner.uid, rs.uid().unwrap());
            assert_eq!(
                (owner.kind.as_str(), owner.block_owner_deletion),
                ("ReplicaSet", Some(true))
            );
        }

        f.settle("web").await;
        let status = f.rss.get("web").await.unwrap().status.unwrap();
        assert_eq!(status.replicas, 3);
        assert_eq!(status.fully_labeled_replicas, Some(3));
        assert_eq!(status.observed_generation, Some(1));
        // Settled: one more pass writes nothing at all.
        let before = f.versions("web").await;
        f.reconcile("web").await.unwrap();
        assert_eq!(f.versions("web").await, before);
    }

    #[tokio::test]
    async fn a_stale_cache_never_makes_extra_pods() {
        let f = Fixture::start();
        f.rss
            .create(&PostParams::default(), &replica_set("web", 4))
            .await
            .unwrap();
        f.reconcile("web").await.unwrap();
        assert_eq!(f.active_pods().await.len(), 4);

        // A controller that just started, or whose cache lags: it believes
        // there are no Pods at all.
        let (empty_pods, mut writer) = kube::runtime::reflector::store::<Pod>();
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let stale = Arc::new(ReplicaSetController::new(
            f.cluster.ctx.clone(),
            empty_pods,
            f.ctrl.replicasets.clone(),
        ));
        for _ in 0..3 {
            let rs = f.rss.get("web").await.unwrap();
            reconcile(Arc::new(rs), stale.clone()).await.unwrap();
        }
        assert_eq!(f.active_pods().await.len(), 4, "the apiserver's count wins");
        drop(writer);
    }

    #[tokio::test]
    async fn scaling_down_removes_unscheduled_pods_first() {
        let f = Fixture::start();
        f.rss
            .create(&PostParams::default(), &replica_set("web", 3))
            .await
            .unwrap();
        f.reconcile("web").await.unwrap();
        let pods = f.active_pods().await;
        let mut bound = Vec::new();
        for pod in &pods[..2] {
            let binding = json!({
                "apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": pod.name_any()},
                "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}
            });
            let _: serde_json::Value = f
                .pods
                .create_subresource("binding", &pod.name_any(), &PostParams::default(), &binding)
                .await
                .unwrap();
            bound.push(pod.name_any());
        }
        f.settle("web").await;
        let patch = json!({"spec": {"replicas": 2}});
        f.rss
            .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        f.settle("web").await;

        let mut left: Vec<String> = f.active_pods().await.iter().map(|p| p.name_any()).collect();
        left.sort();
        bound.sort();
        assert_eq!(left, bound, "the unscheduled pod went first");
        let status = f.rss.get("web").await.unwrap().status.unwrap();
        assert_eq!((status.replicas, status.observed_generation), (2, Some(2)));
    }

    #[tokio::test]
    async fn adopts_matching_orphans_and_releases_relabelled_pods() {
        let f = Fixture::start();
        let orphan: Pod = serde_json::from_value(json!({
            "metadata": {"name": "stray", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:alpine"}]}
        }))
        .unwrap();
        f.pods
            .create(&PostParams::default(), &orphan)
            .await
            .unwrap();
        let rs = f
            .rss
            .create(&PostParams::default(), &replica_set("web", 2))
            .await
            .unwrap();
        synced(&f.ctrl.pods, &f.cluster.client).await;
        f.settle("web").await;

        let pods = f.active_pods().await;
        assert_eq!(pods.len(), 2, "the orphan counts as one of the two");
        let stray = f.pods.get("stray").await.unwrap();
        assert_eq!(
            controller_of(&stray.metadata).map(|o| o.uid.clone()),
            rs.uid()
        );

        // Taking a Pod out by relabelling it: released, and replaced.
        let patch = json!({"metadata": {"labels": {"app": "debug"}}});
        f.pods
            .patch("stray", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        f.settle("web").await;
        let stray = f.pods.get("stray").await.unwrap();
        assert_eq!(controller_of(&stray.metadata), None);
        let owned = f
            .active_pods()
            .await
            .into_iter()
            .filter(|p| controller_of(&p.metadata).is_some())
            .count();
        assert_eq!(owned, 2);
    }
}
