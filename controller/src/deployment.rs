//! # Deployments: rolling a pod template out through ReplicaSets
//!
//! A Deployment does not run Pods itself. It keeps **one ReplicaSet per
//! version of its pod template** and moves replicas from the old ones to
//! the new one; each ReplicaSet then keeps its own count of Pods (see
//! [`crate::replicaset`]):
//!
//! ```text
//!   Deployment ngx-dep (replicas 2, template image nginx:1.27)
//!     ├── ReplicaSet ngx-dep-6796688696   revision 1, nginx:alpine   replicas 0
//!     └── ReplicaSet ngx-dep-5d4f8c7b96   revision 2, nginx:1.27     replicas 2
//!           ├── Pod ngx-dep-5d4f8c7b96-cmj2z
//!           └── Pod ngx-dep-5d4f8c7b96-x7k4q
//! ```
//!
//! What a reader can check on any cluster, and what this module does as
//! kube-controller-manager's `pkg/controller/deployment` does:
//!
//! - **The pod-template hash.** A ReplicaSet is named
//!   `<deployment>-<pod-template-hash>`; the hash is a stable hash of the
//!   template (FNV-32a, written with the vowel-free alphabet of
//!   [`SAFE_ALPHABET`] so it never spells a word). It is also added as the
//!   `pod-template-hash` label to the ReplicaSet, its selector and its
//!   template, so the Pods of two versions never match each other's
//!   ReplicaSet. The *new* ReplicaSet is the one whose template equals the
//!   Deployment's, hash label aside; every other one is *old*.
//! - **Ownership.** Each ReplicaSet carries an `ownerReference` to its
//!   Deployment with `controller: true` (so no other controller touches it)
//!   and `blockOwnerDeletion: true` (so a foreground delete of the
//!   Deployment waits for it). An orphan ReplicaSet that matches a
//!   Deployment's selector is adopted; an owned one that no longer matches
//!   is released.
//! - **Revisions.** `deployment.kubernetes.io/revision` numbers the
//!   versions: the new ReplicaSet gets the highest old revision + 1, and the
//!   Deployment carries the revision of its new ReplicaSet. Old ReplicaSets
//!   stay, scaled to 0, as history for `kubectl rollout undo`, up to
//!   `spec.revisionHistoryLimit`.
//! - **Strategies.** `RollingUpdate` scales the new ReplicaSet up while the
//!   total stays under `replicas + maxSurge` and scales old ones down while
//!   at least `replicas - maxUnavailable` Pods stay available (percentages:
//!   surge rounds up, unavailable rounds down). `Recreate` scales every old
//!   ReplicaSet to 0, waits until their Pods are gone, then scales the new
//!   one up.
//! - **Scaling** (`kubectl scale` in the middle of a rollout) spreads the
//!   change over the ReplicaSets in proportion to their size, using the
//!   `desired-replicas` / `max-replicas` annotations each ReplicaSet keeps of
//!   the Deployment size it was last scaled for.
//! - **Status**: `replicas`, `updatedReplicas` (Pods of the new ReplicaSet),
//!   `readyReplicas`, `availableReplicas`, `unavailableReplicas`,
//!   `observedGeneration`, and two conditions: `Available`
//!   (MinimumReplicasAvailable) and `Progressing` (NewReplicaSetCreated,
//!   FoundNewReplicaSet, ReplicaSetUpdated, NewReplicaSetAvailable, or
//!   ProgressDeadlineExceeded). `kubectl rollout status` reads exactly these.
//!
//! The loop reads ReplicaSets from a reflector's cache. Every write carries
//! the resourceVersion it was computed from, so a decision taken on a stale
//! cache fails with a conflict and is retried on fresh data instead of
//! undoing someone else's change.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use crate::events::EventType;
use crate::ownership::{controller_of, Claim, Owner};
use crate::{Context, Error, Result};

/// The label (and ReplicaSet name suffix) that tells versions apart.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
/// The revision of a ReplicaSet, and of the Deployment (its new ReplicaSet's).
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions a ReplicaSet had, when a rollback made it new again.
pub const REVISION_HISTORY_ANNOTATION: &str = "deployment.kubernetes.io/revision-history";
/// `spec.replicas` of the Deployment when this ReplicaSet was last scaled.
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
/// `replicas + maxSurge` of the Deployment when this ReplicaSet was last scaled.
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";
/// Deployment annotations that are not copied to its ReplicaSets.
const NOT_COPIED_ANNOTATIONS: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
    DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    "deprecated.deployment.rollback.to",
];
/// The revision-history annotation is cut to this many characters.
const MAX_REVISION_HISTORY_CHARS: usize = 2000;

/// Who writes the Events (`kubectl describe deploy` shows it as `From`).
const COMPONENT: &str = "deployment-controller";

/// The alphabet of generated names and hashes: no vowels (no words) and no
/// look-alikes such as 0/o or 1/l (`k8s.io/apimachinery/pkg/util/rand`).
pub const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Condition types and reasons, as `kubectl describe deploy` prints them.
pub mod conditions {
    pub const AVAILABLE: &str = "Available";
    pub const PROGRESSING: &str = "Progressing";
    pub const REPLICA_FAILURE: &str = "ReplicaFailure";

    pub const MINIMUM_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
    pub const MINIMUM_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
    pub const NEW_REPLICA_SET_CREATED: &str = "NewReplicaSetCreated";
    pub const FOUND_NEW_REPLICA_SET: &str = "FoundNewReplicaSet";
    pub const REPLICA_SET_UPDATED: &str = "ReplicaSetUpdated";
    pub const NEW_REPLICA_SET_AVAILABLE: &str = "NewReplicaSetAvailable";
    pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
    pub const REPLICA_SET_CREATE_ERROR: &str = "ReplicaSetCreateError";
    pub const DEPLOYMENT_PAUSED: &str = "DeploymentPaused";
    pub const DEPLOYMENT_RESUMED: &str = "DeploymentResumed";
}
use conditions as cond;

// ---------------------------------------------------------------------------
// The pod-template hash

/// FNV-1a, 32 bits: the hash Go's `hash/fnv` gives `ComputeHash`.
fn fnv32a(bytes: &[u8], mut hash: u32) -> u32 {
    for b in bytes {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}
const FNV32_OFFSET: u32 = 0x811c_9dc5;

/// Maps each byte of `s` onto [`SAFE_ALPHABET`] (`rand.SafeEncodeString`).
pub fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()] as char)
        .collect()
}

/// The `pod-template-hash` of a template, as upstream's `ComputeHash`:
/// FNV-32a of the template (here its JSON form, which is stable: struct
/// fields in order, maps sorted), plus the Deployment's `collisionCount`
/// when set, printed in decimal and safe-encoded (up to 10 characters,
/// e.g. `6796688696`).
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let json = serde_json::to_vec(template).expect("a PodTemplateSpec always serializes");
    let mut hash = fnv32a(&json, FNV32_OFFSET);
    if let Some(count) = collision_count {
        // Upstream writes the count as 8 bytes, little-endian u32 first.
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&(count as u32).to_le_bytes());
        hash = fnv32a(&bytes, hash);
    }
    safe_encode(&hash.to_string())
}

/// Whether two templates are the same version, ignoring the hash label
/// (`EqualIgnoreHash`): that is how the new ReplicaSet is recognised, so a
/// change in how hashes are computed never starts a rollout by itself.
pub fn equal_ignoring_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    fn without_hash(t: &PodTemplateSpec) -> PodTemplateSpec {
        let mut t = t.clone();
        if let Some(meta) = t.metadata.as_mut() {
            if let Some(labels) = meta.labels.as_mut() {
                labels.remove(POD_TEMPLATE_HASH_LABEL);
                if labels.is_empty() {
                    meta.labels = None;
                }
            }
        }
        if t.metadata == Some(ObjectMeta::default()) {
            t.metadata = None;
        }
        t
    }
    without_hash(a) == without_hash(b)
}

// ---------------------------------------------------------------------------
// Rolling-update arithmetic (pure)

/// `maxSurge`/`maxUnavailable` as a number of Pods out of `total`
/// (`intstr.GetScaledValueFromIntOrPercent`): `3` is 3, `"25%"` is a
/// quarter of `total`, rounded up or down.
pub fn scaled_value(value: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match value {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let number = s
                .strip_suffix('%')
                .ok_or_else(|| format!("{s:?} is neither a number nor a percentage"))?;
            let percent: i64 = number
                .parse()
                .map_err(|_| format!("{s:?} is not a valid percentage"))?;
            let product = percent * i64::from(total);
            // div_euclid floors; adding 99 first makes it a ceiling.
            let scaled = if round_up {
                (product + 99).div_euclid(100)
            } else {
                product.div_euclid(100)
            };
            i32::try_from(scaled).map_err(|_| format!("{s:?} of {total} is out of range"))
        }
    }
}

/// `(maxSurge, maxUnavailable)` in Pods for `desired` replicas
/// (`ResolveFenceposts`). Surge rounds up and unavailability rounds down,
/// so a rollout of 1 replica with the 25% defaults surges by 1 and keeps
/// the old Pod until the new one is available. Both 0 would never move, so
/// that case allows 1 unavailable.
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> Result<(i32, i32), String> {
    let default = IntOrString::String("25%".into());
    let surge = scaled_value(max_surge.unwrap_or(&default), desired, true)
        .map_err(|e| format!("maxSurge: {e}"))?;
    let unavailable = scaled_value(max_unavailable.unwrap_or(&default), desired, false)
        .map_err(|e| format!("maxUnavailable: {e}"))?;
    if surge == 0 && unavailable == 0 {
        return Ok((0, 1));
    }
    Ok((surge, unavailable))
}

/// A Deployment's `spec.strategy`, resolved to numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Kill every old Pod first, then start the new ones.
    Recreate,
    /// Replace Pods a few at a time.
    RollingUpdate {
        max_surge: i32,
        max_unavailable: i32,
    },
}

impl Strategy {
    /// Reads `spec.strategy` (RollingUpdate with 25%/25% when unset).
    pub fn of(d: &Deployment) -> Result<Strategy, String> {
        let strategy = d.spec.strategy.as_ref();
        if strategy.and_then(|s| s.type_.as_deref()) == Some("Recreate") {
            return Ok(Strategy::Recreate);
        }
        let rolling = strategy.and_then(|s| s.rolling_update.as_ref());
        let (max_surge, max_unavailable) = resolve_fenceposts(
            rolling.and_then(|r| r.max_surge.as_ref()),
            rolling.and_then(|r| r.max_unavailable.as_ref()),
            desired_replicas(d),
        )
        .map_err(|e| format!("spec.strategy.rollingUpdate.{e}"))?;
        Ok(Strategy::RollingUpdate {
            max_surge,
            max_unavailable,
        })
    }

    /// Pods allowed above `replicas` (`MaxSurge`); none for Recreate.
    pub fn max_surge(self) -> i32 {
        match self {
            Strategy::Recreate => 0,
            Strategy::RollingUpdate { max_surge, .. } => max_surge,
        }
    }

    /// Pods allowed to be unavailable (`MaxUnavailable`), never more than
    /// `replicas`; none for Recreate.
    pub fn max_unavailable(self, replicas: i32) -> i32 {
        match self {
            Strategy::RollingUpdate {
                max_unavailable, ..
            } if replicas > 0 => max_unavailable.min(replicas),
            _ => 0,
        }
    }
}

/// How big the new ReplicaSet may be now (`NewRSNewReplicas`): with
/// RollingUpdate, as big as the surge allows given every ReplicaSet's size
/// (`all_replicas`, the new one's included), never above `replicas`; with
/// Recreate, `replicas` straight away (old Pods are gone by then).
pub fn new_replica_set_size(
    strategy: Strategy,
    replicas: i32,
    all_replicas: i32,
    new_rs_replicas: i32,
) -> i32 {
    match strategy {
        Strategy::Recreate => replicas,
        Strategy::RollingUpdate { max_surge, .. } => {
            let max_total = replicas + max_surge;
            if all_replicas >= max_total {
                return new_rs_replicas;
            }
            let scale_up = (max_total - all_replicas).min(replicas - new_rs_replicas);
            new_rs_replicas + scale_up
        }
    }
}

/// How many Pods old ReplicaSets may lose now without going below the
/// minimum available (`reconcileOldReplicaSets`): Pods of the new
/// ReplicaSet that are not available yet count against the budget.
pub fn old_scale_down_budget(
    all_replicas: i32,
    replicas: i32,
    max_unavailable: i32,
    new_rs_unavailable: i32,
) -> i32 {
    let min_available = replicas - max_unavailable;
    all_replicas - min_available - new_rs_unavailable
}

/// The share of a scaling change one ReplicaSet takes (`GetProportion`):
/// its size times the change in the Deployment's maximum size, rounded,
/// and never more than what is left to hand out.
pub fn proportion(
    rs_replicas: i32,
    rs_max_replicas_annotation: Option<i32>,
    deployment_replicas: i32,
    deployment_max_replicas: i32,
    deployment_status_replicas: i32,
    to_add: i32,
    added: i32,
) -> i32 {
    if rs_replicas == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = if deployment_replicas == 0 {
        -rs_replicas
    } else {
        let before = match rs_max_replicas_annotation {
            Some(n) if n != 0 => n,
            _ => deployment_status_replicas,
        };
        if before == 0 {
            rs_replicas
        } else {
            let size =
                f64::from(rs_replicas) * f64::from(deployment_max_replicas) / f64::from(before);
            size.round() as i32 - rs_replicas
        }
    };
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

// ---------------------------------------------------------------------------
// Reading Deployments and ReplicaSets

fn desired_replicas(d: &Deployment) -> i32 {
    d.spec.replicas.unwrap_or(1)
}

fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.replicas.unwrap_or(1)
}

fn rs_status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map_or(0, |s| s.replicas)
}

fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

fn rs_ready(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

fn revision(rs: &ReplicaSet) -> Option<i64> {
    annotation(&rs.metadata, REVISION_ANNOTATION).and_then(|r| r.parse().ok())
}

fn int_annotation(rs: &ReplicaSet, key: &str) -> Option<i32> {
    annotation(&rs.metadata, key).and_then(|v| v.parse().ok())
}

fn created(meta: &ObjectMeta) -> Option<Timestamp> {
    meta.creation_timestamp.as_ref().map(|t| t.0)
}

/// Oldest first, names breaking ties (`ReplicaSetsByCreationTimestamp`).
fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> std::cmp::Ordering {
    created(&a.metadata)
        .cmp(&created(&b.metadata))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Lowest revision first; creation time when revisions are missing or equal.
fn by_revision(a: &ReplicaSet, b: &ReplicaSet) -> std::cmp::Ordering {
    match (revision(a), revision(b)) {
        (Some(x), Some(y)) if x != y => x.cmp(&y),
        _ => by_creation(a, b),
    }
}

/// ReplicaSets that have Pods to manage (`FilterActiveReplicaSets`).
fn active(rss: &[ReplicaSet]) -> Vec<ReplicaSet> {
    rss.iter()
        .filter(|rs| rs_replicas(rs) > 0)
        .cloned()
        .collect()
}

fn sum(rss: &[ReplicaSet], count: impl Fn(&ReplicaSet) -> i32) -> i32 {
    rss.iter().map(count).sum()
}

fn name_of(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or_default()
}

/// The oldest ReplicaSet whose template is the Deployment's (`FindNewReplicaSet`).
fn find_new_replica_set(d: &Deployment, rss: &[ReplicaSet]) -> Option<usize> {
    let mut candidates: Vec<usize> = (0..rss.len())
        .filter(|&i| {
            rss[i]
                .spec
                .template
                .as_ref()
                .is_some_and(|t| equal_ignoring_hash(t, &d.spec.template))
        })
        .collect();
    candidates.sort_by(|&a, &b| by_creation(&rss[a], &rss[b]));
    candidates.first().copied()
}

/// The whole rollout is done: every replica updated and available, no old
/// one left, and the latest spec seen (`DeploymentComplete`).
fn deployment_complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let replicas = desired_replicas(d);
    status.updated_replicas.unwrap_or(0) == replicas
        && status.replicas.unwrap_or(0) == replicas
        && status.available_replicas.unwrap_or(0) == replicas
        && status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Something moved since the last status (`DeploymentProgressing`).
fn deployment_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let old_old_replicas = old.replicas.unwrap_or(0) - old.updated_replicas.unwrap_or(0);
    let new_old_replicas = new.replicas.unwrap_or(0) - new.updated_replicas.unwrap_or(0);
    new.updated_replicas.unwrap_or(0) > old.updated_replicas.unwrap_or(0)
        || new_old_replicas < old_old_replicas
        || new.ready_replicas.unwrap_or(0) > old.ready_replicas.unwrap_or(0)
        || new.available_replicas.unwrap_or(0) > old.available_replicas.unwrap_or(0)
}

/// `progressDeadlineSeconds`, unless unset or "never" (MaxInt32).
fn progress_deadline(d: &Deployment) -> Option<i32> {
    d.spec.progress_deadline_seconds.filter(|&s| s != i32::MAX)
}

/// Nothing moved for longer than the progress deadline (`DeploymentTimedOut`).
fn deployment_timed_out(d: &Deployment, new: &DeploymentStatus, now: Timestamp) -> bool {
    let Some(deadline) = progress_deadline(d) else {
        return false;
    };
    let Some(progressing) = get_condition(new, cond::PROGRESSING) else {
        return false;
    };
    match progressing.reason.as_deref() {
        Some(cond::NEW_REPLICA_SET_AVAILABLE) => false,
        Some(cond::PROGRESS_DEADLINE_EXCEEDED) => true,
        _ => progressing
            .last_update_time
            .as_ref()
            .is_some_and(|t| t.0 + SignedDuration::from_secs(i64::from(deadline)) < now),
    }
}

// ---------------------------------------------------------------------------
// Conditions (`deploymentutil.SetDeploymentCondition` and friends)

fn get_condition<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_.as_deref() == Some(type_))
}

/// Kubernetes times are whole seconds on the wire; comparing with what
/// comes back is easier if ours are too.
fn now_seconds() -> Timestamp {
    Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_else(|_| Timestamp::now())
}

fn new_condition(type_: &str, status: &str, reason: &str, message: String) -> DeploymentCondition {
    let now = Time(now_seconds());
    DeploymentCondition {
        type_: Some(type_.into()),
        status: Some(status.into()),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

/// Sets a condition, keeping the existing one if status and reason are
/// unchanged, and its transition time if only the reason changed.
fn set_condition(status: &mut DeploymentStatus, mut condition: DeploymentCondition) {
    if let Some(current) = get_condition(status, condition.type_.as_deref().unwrap_or_default()) {
        if current.status == condition.status && current.reason == condition.reason {
            return;
        }
        if current.status == condition.status {
            condition.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(status, condition.type_.as_deref().unwrap_or_default());
    status
        .conditions
        .get_or_insert_with(Vec::new)
        .push(condition);
}

fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_.as_deref() != Some(type_));
    }
}

// ---------------------------------------------------------------------------
// Annotations of new ReplicaSets

/// Copies the Deployment's own annotations to the ReplicaSet
/// (`copyDeploymentAnnotationsToReplicaSet`).
fn copy_deployment_annotations(d: &Deployment, rs: &mut ReplicaSet) -> bool {
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (key, value) in d.metadata.annotations.iter().flatten() {
        if NOT_COPIED_ANNOTATIONS.contains(&key.as_str()) || annotations.get(key) == Some(value) {
            continue;
        }
        annotations.insert(key.clone(), value.clone());
        changed = true;
    }
    changed
}

fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    annotation(&rs.metadata, DESIRED_REPLICAS_ANNOTATION) != Some(desired.to_string().as_str())
        || annotation(&rs.metadata, MAX_REPLICAS_ANNOTATION) != Some(max.to_string().as_str())
}

fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let changed = replicas_annotations_need_update(rs, desired, max);
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(DESIRED_REPLICAS_ANNOTATION.into(), desired.to_string());
    annotations.insert(MAX_REPLICAS_ANNOTATION.into(), max.to_string());
    changed
}

/// Gives the new ReplicaSet the Deployment's annotations and revision
/// `new_revision` (`SetNewReplicaSetAnnotations`); a ReplicaSet that is
/// about to be created also gets the replica annotations.
fn set_new_replica_set_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
    max_surge: i32,
) -> bool {
    let mut changed = copy_deployment_annotations(d, rs);
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let old_revision = annotations.get(REVISION_ANNOTATION).cloned();
    let old_number = match old_revision.as_deref() {
        None | Some("") => 0,
        Some(text) => match text.parse::<i64>() {
            Ok(n) => n,
            // Someone wrote garbage: leave it for a human.
            Err(_) => return changed,
        },
    };
    if old_number < new_revision {
        annotations.insert(REVISION_ANNOTATION.into(), new_revision.to_string());
        changed = true;
        // An old ReplicaSet becoming new again is a rollback: remember the
        // revisions it had.
        if let Some(old) = old_revision.filter(|o| !o.is_empty()) {
            let history = annotations
                .get(REVISION_HISTORY_ANNOTATION)
                .cloned()
                .unwrap_or_default();
            let mut revisions: Vec<&str> = history.split(',').filter(|r| !r.is_empty()).collect();
            revisions.push(&old);
            while revisions.join(",").len() > MAX_REVISION_HISTORY_CHARS && revisions.len() > 1 {
                revisions.remove(0);
            }
            let joined = revisions.join(",");
            annotations.insert(REVISION_HISTORY_ANNOTATION.into(), joined);
        }
    }
    if !exists {
        let desired = desired_replicas(d);
        if set_replicas_annotations(rs, desired, desired + max_surge) {
            changed = true;
        }
    }
    changed
}

// ---------------------------------------------------------------------------
// The loop

/// What the Deployment loop shares between reconciles: the controller's
/// context and a cache of every ReplicaSet.
pub struct DeploymentController {
    ctx: Arc<Context>,
    replicasets: Store<ReplicaSet>,
}

impl DeploymentController {
    /// `replicasets` must be fed by a reflector over all ReplicaSets.
    pub fn new(ctx: Arc<Context>, replicasets: Store<ReplicaSet>) -> DeploymentController {
        DeploymentController { ctx, replicasets }
    }
}

/// Runs the Deployment loop: Deployments are the primary objects; the
/// ReplicaSet reflector both fills the cache and wakes the Deployment that
/// owns (or could adopt) each changed ReplicaSet.
pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let client = ctx.client.clone();
    let (replicasets, replicaset_events) = crate::watch_all::<ReplicaSet>(&client);
    let controller = Controller::new(Api::<Deployment>::all(client), watcher::Config::default());
    let deployments = controller.store();
    let state = Arc::new(DeploymentController::new(ctx, replicasets));
    controller
        .watches_stream(replicaset_events, move |rs| {
            deployments_of_replica_set(&deployments, &rs)
        })
        .run(reconcile, error_policy, state)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "deployment loop");
            }
        })
        .await;
    Ok(())
}

/// The Deployment to wake for a ReplicaSet change: its controller, or, for
/// an orphan, every Deployment whose selector matches it (one may adopt it).
fn deployments_of_replica_set(
    deployments: &Store<Deployment>,
    rs: &ReplicaSet,
) -> Vec<ObjectRef<Deployment>> {
    let namespace = rs.namespace().unwrap_or_default();
    if let Some(owner) = controller_of(&rs.metadata) {
        if owner.kind == "Deployment" {
            return vec![ObjectRef::new(&owner.name).within(&namespace)];
        }
        return Vec::new();
    }
    let labels = rs.labels();
    deployments
        .state()
        .iter()
        .filter(|d| d.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|d| {
            api::selector::LabelSelector::from_k8s(&d.spec.selector)
                .is_ok_and(|s| !s.is_empty() && s.matches(labels))
        })
        .map(|d| ObjectRef::from_obj(d.as_ref()))
        .collect()
}

/// Conflicts mean our cache was behind: retry soon, quietly. Anything else
/// is worth a warning and a slower retry.
pub fn error_policy(d: Arc<Deployment>, error: &Error, _ctrl: Arc<DeploymentController>) -> Action {
    let name = format!("{}/{}", d.namespace().unwrap_or_default(), d.name_any());
    crate::requeue_after_error(&format!("deployment {name}"), error)
}

/// Makes the ReplicaSets of one Deployment match it (`syncDeployment`).
pub async fn reconcile(d: Arc<Deployment>, ctrl: Arc<DeploymentController>) -> Result<Action> {
    // A Deployment being deleted is the garbage collector's business.
    if d.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    crate::wait_for_cache(&ctrl.replicasets).await?;
    let mut rollout = Rollout::new(&ctrl, (*d).clone())?;
    rollout.sync().await
}

/// One pass over one Deployment. `d` is always the latest version we know
/// of: each of our writes replaces it with what the apiserver answered, so
/// the next write carries the right resourceVersion.
struct Rollout<'a> {
    ctrl: &'a DeploymentController,
    d: Deployment,
    namespace: String,
    name: String,
    selector: api::selector::LabelSelector,
    strategy: Strategy,
}

impl<'a> Rollout<'a> {
    fn new(ctrl: &'a DeploymentController, d: Deployment) -> Result<Rollout<'a>> {
        let namespace = d.namespace().unwrap_or_default();
        let name = d.name_any();
        let invalid =
            |what: String| Error::Invalid(format!("deployment {namespace}/{name}: {what}"));
        let selector = api::selector::LabelSelector::from_k8s(&d.spec.selector)
            .map_err(|e| invalid(format!("spec.selector: {e}")))?;
        let strategy = Strategy::of(&d).map_err(invalid)?;
        Ok(Rollout {
            ctrl,
            d,
            namespace,
            name,
            selector,
            strategy,
        })
    }

    fn replicas(&self) -> i32 {
        desired_replicas(&self.d)
    }

    fn deployments(&self) -> Api<Deployment> {
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
                &self.d.object_ref(&()),
                event_type,
                reason,
                message,
            )
            .await;
    }

    fn status(&self) -> DeploymentStatus {
        self.d.status.clone().unwrap_or_default()
    }

    async fn sync(&mut self) -> Result<Action> {
        if self.selector.is_empty() {
            self.event(
                EventType::Warning,
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.",
            )
            .await;
            let mut status = self.status();
            if status.observed_generation < self.d.metadata.generation {
                status.observed_generation = self.d.metadata.generation;
                self.write_status(status).await?;
            }
            return Ok(Action::await_change());
        }
        let mut rss = self.claim_replica_sets().await?;
        self.check_paused_conditions().await?;

        let (new_rs, old_rss) = self.replica_sets_and_sync_revision(&mut rss, false).await?;
        let paused = self.d.spec.paused == Some(true);
        if paused || self.is_scaling_event(new_rs.as_ref(), &old_rss) {
            return self.sync_scaling(new_rs, old_rss).await;
        }
        match self.strategy {
            Strategy::Recreate => self.rollout_recreate(rss, new_rs, old_rss).await,
            Strategy::RollingUpdate { .. } => self.rollout_rolling(rss).await,
        }
    }

    // -- ownership ---------------------------------------------------------

    /// The ReplicaSets this Deployment controls, adopting matching orphans
    /// and releasing owned ones that stopped matching (`ClaimReplicaSets`).
    async fn claim_replica_sets(&mut self) -> Result<Vec<ReplicaSet>> {
        let owner = self.owner();
        let mut in_namespace: Vec<Arc<ReplicaSet>> = self
            .ctrl
            .replicasets
            .state()
            .into_iter()
            .filter(|rs| rs.metadata.namespace.as_deref() == Some(self.namespace.as_str()))
            .collect();
        in_namespace.sort_by(|a, b| by_creation(a, b));
        let mut claimed = Vec::new();
        let mut adoption_allowed = None;
        for rs in in_namespace {
            // A ReplicaSet being deleted is not adopted nor released.
            let active = rs.metadata.deletion_timestamp.is_none();
            match owner.classify(&rs.metadata, active) {
                Claim::Owned => claimed.push((*rs).clone()),
                Claim::Ignore => {}
                Claim::Release => owner.release(&self.replicasets(), rs.as_ref()).await?,
                Claim::Adopt => {
                    // Check once, against the apiserver rather than the
                    // cache, that this Deployment still exists and is not
                    // being deleted before taking anything over.
                    if adoption_allowed.is_none() {
                        let fresh = self.deployments().get_opt(&self.name).await?;
                        adoption_allowed = Some(fresh.is_some_and(|f| {
                            f.metadata.uid.as_deref() == Some(owner.uid.as_str())
                                && f.metadata.deletion_timestamp.is_none()
                        }));
                    }
                    if adoption_allowed == Some(true) {
                        if let Some(adopted) = owner.adopt(&self.replicasets(), rs.as_ref()).await?
                        {
                            claimed.push(adopted);
                        }
                    }
                }
            }
        }
        Ok(claimed)
    }

    /// The Deployment as the owner of its ReplicaSets.
    fn owner(&self) -> Owner {
        Owner {
            api_version: "apps/v1",
            kind: "Deployment",
            name: self.name.clone(),
            uid: self.d.metadata.uid.clone().unwrap_or_default(),
            selector: self.selector.clone(),
            deleting: self.d.metadata.deletion_timestamp.is_some(),
        }
    }

    // -- writes to the Deployment ------------------------------------------

    async fn write_status(&mut self, status: DeploymentStatus) -> Result<()> {
        let mut d = self.d.clone();
        d.status = Some(status);
        self.d = self
            .deployments()
            .replace_status(&self.name, &PostParams::default(), &d)
            .await?;
        Ok(())
    }

    /// The Deployment shows the revision of its new ReplicaSet.
    async fn set_deployment_revision(&mut self, revision: &str) -> Result<()> {
        if annotation(&self.d.metadata, REVISION_ANNOTATION) == Some(revision) {
            return Ok(());
        }
        let patch = json!({"metadata": {
            "annotations": {REVISION_ANNOTATION: revision},
            "resourceVersion": self.d.metadata.resource_version,
        }});
        self.d = self
            .deployments()
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    /// Paused and resumed show as an Unknown Progressing condition
    /// (`checkPausedConditions`).
    async fn check_paused_conditions(&mut self) -> Result<()> {
        if progress_deadline(&self.d).is_none() {
            return Ok(());
        }
        let mut status = self.status();
        let current = get_condition(&status, cond::PROGRESSING);
        if current.is_some_and(|c| c.reason.as_deref() == Some(cond::PROGRESS_DEADLINE_EXCEEDED)) {
            return Ok(());
        }
        let paused_shown =
            current.is_some_and(|c| c.reason.as_deref() == Some(cond::DEPLOYMENT_PAUSED));
        let paused = self.d.spec.paused == Some(true);
        let condition = if paused && !paused_shown {
            new_condition(
                cond::PROGRESSING,
                "Unknown",
                cond::DEPLOYMENT_PAUSED,
                "Deployment is paused".into(),
            )
        } else if !paused && paused_shown {
            new_condition(
                cond::PROGRESSING,
                "Unknown",
                cond::DEPLOYMENT_RESUMED,
                "Deployment is resumed".into(),
            )
        } else {
            return Ok(());
        };
        set_condition(&mut status, condition);
        self.write_status(status).await
    }

    // -- the new ReplicaSet ------------------------------------------------

    /// Splits `rss` into the new ReplicaSet and the old ones, bringing the
    /// new one's revision and annotations up to date and creating it if
    /// `create` (`getAllReplicaSetsAndSyncRevision`). `rss` is updated with
    /// what we wrote.
    async fn replica_sets_and_sync_revision(
        &mut self,
        rss: &mut Vec<ReplicaSet>,
        create: bool,
    ) -> Result<(Option<ReplicaSet>, Vec<ReplicaSet>)> {
        let new_index = find_new_replica_set(&self.d, rss);
        let old: Vec<ReplicaSet> = rss
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != new_index)
            .map(|(_, rs)| rs.clone())
            .collect();
        let new_revision = old.iter().filter_map(revision).max().unwrap_or(0) + 1;

        if let Some(index) = new_index {
            let mut rs = rss[index].clone();
            let annotations_changed = set_new_replica_set_annotations(
                &self.d,
                &mut rs,
                new_revision,
                true,
                self.strategy.max_surge(),
            );
            let min_ready_changed = rs.spec.min_ready_seconds.unwrap_or(0)
                != self.d.spec.min_ready_seconds.unwrap_or(0);
            if annotations_changed || min_ready_changed {
                rs.spec.min_ready_seconds = self.d.spec.min_ready_seconds;
                let updated = self
                    .replicasets()
                    .replace(name_of(&rs.metadata), &PostParams::default(), &rs)
                    .await?;
                rss[index] = updated.clone();
                return Ok((Some(updated), old));
            }
            if let Some(rs_revision) = annotation(&rs.metadata, REVISION_ANNOTATION) {
                self.set_deployment_revision(rs_revision).await?;
            }
            let mut status = self.status();
            if progress_deadline(&self.d).is_some()
                && get_condition(&status, cond::PROGRESSING).is_none()
            {
                let message = format!("Found new replica set {:?}", name_of(&rs.metadata));
                set_condition(
                    &mut status,
                    new_condition(
                        cond::PROGRESSING,
                        "True",
                        cond::FOUND_NEW_REPLICA_SET,
                        message,
                    ),
                );
                self.write_status(status).await?;
            }
            return Ok((Some(rs), old));
        }
        if !create {
            return Ok((None, old));
        }
        let created = self.create_new_replica_set(&old, new_revision).await?;
        rss.push(created.clone());
        Ok((Some(created), old))
    }

    /// Creates `<deployment>-<hash>` for the current template.
    async fn create_new_replica_set(
        &mut self,
        old: &[ReplicaSet],
        new_revision: i64,
    ) -> Result<ReplicaSet> {
        let collision_count = self.d.status.as_ref().and_then(|s| s.collision_count);
        let hash = pod_template_hash(&self.d.spec.template, collision_count);
        let mut template = self.d.spec.template.clone();
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
        let mut selector = self.d.spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
        let rs_name = format!("{}-{hash}", self.name);
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(rs_name.clone()),
                namespace: Some(self.namespace.clone()),
                owner_references: Some(vec![self.owner().reference()]),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                ..Default::default()
            },
            spec: ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: self.d.spec.min_ready_seconds,
                selector,
                template: Some(template),
            },
            status: None,
        };
        let all_replicas = sum(old, rs_replicas);
        let size = new_replica_set_size(self.strategy, self.replicas(), all_replicas, 0);
        rs.spec.replicas = Some(size);
        set_new_replica_set_annotations(
            &self.d,
            &mut rs,
            new_revision,
            false,
            self.strategy.max_surge(),
        );

        let (created, already_existed) = match self
            .replicasets()
            .create(&PostParams::default(), &rs)
            .await
        {
            Ok(created) => (created, false),
            Err(kube::Error::Api(s)) if s.is_already_exists() => {
                // Ours from an earlier pass whose answer we missed, or a
                // different template that hashes the same.
                let existing = self.replicasets().get(&rs_name).await?;
                let ours = controller_of(&existing.metadata)
                    .is_some_and(|o| Some(&o.uid) == self.d.metadata.uid.as_ref());
                let same = existing
                    .spec
                    .template
                    .as_ref()
                    .is_some_and(|t| equal_ignoring_hash(t, &self.d.spec.template));
                if !(ours && same) {
                    // A hash collision: count it, so the next pass
                    // hashes differently.
                    let mut status = self.status();
                    status.collision_count = Some(collision_count.unwrap_or(0) + 1);
                    self.write_status(status).await?;
                    return Err(Error::Invalid(format!(
                            "deployment {}/{}: replica set {rs_name:?} exists with another template (hash collision); retrying with collisionCount {}",
                            self.namespace,
                            self.name,
                            collision_count.unwrap_or(0) + 1
                        )));
                }
                (existing, true)
            }
            Err(e) => {
                let message = format!("Failed to create new replica set {rs_name:?}: {e}");
                if progress_deadline(&self.d).is_some() {
                    let mut status = self.status();
                    set_condition(
                        &mut status,
                        new_condition(
                            cond::PROGRESSING,
                            "False",
                            cond::REPLICA_SET_CREATE_ERROR,
                            message.clone(),
                        ),
                    );
                    // The create error is the one worth reporting.
                    let _ = self.write_status(status).await;
                }
                self.event(EventType::Warning, cond::REPLICA_SET_CREATE_ERROR, &message)
                    .await;
                return Err(e.into());
            }
        };
        if !already_existed && size > 0 {
            let message = format!("Scaled up replica set {rs_name} from 0 to {size}");
            self.event(EventType::Normal, "ScalingReplicaSet", &message)
                .await;
        }
        self.set_deployment_revision(&new_revision.to_string())
            .await?;
        if !already_existed && progress_deadline(&self.d).is_some() {
            let mut status = self.status();
            let message = format!("Created new replica set {rs_name:?}");
            set_condition(
                &mut status,
                new_condition(
                    cond::PROGRESSING,
                    "True",
                    cond::NEW_REPLICA_SET_CREATED,
                    message,
                ),
            );
            self.write_status(status).await?;
        }
        Ok(created)
    }

    // -- scaling -----------------------------------------------------------

    /// Sets a ReplicaSet's size and its replica annotations
    /// (`scaleReplicaSet`); true if the size changed.
    async fn scale_replica_set(&self, rs: &ReplicaSet, size: i32) -> Result<(bool, ReplicaSet)> {
        let desired = self.replicas();
        let max = desired + self.strategy.max_surge();
        let size_changed = rs_replicas(rs) != size;
        if !size_changed && !replicas_annotations_need_update(rs, desired, max) {
            return Ok((false, rs.clone()));
        }
        let old_size = rs_replicas(rs);
        let mut scaled = rs.clone();
        scaled.spec.replicas = Some(size);
        set_replicas_annotations(&mut scaled, desired, max);
        let rs_name = name_of(&rs.metadata);
        let updated = self
            .replicasets()
            .replace(rs_name, &PostParams::default(), &scaled)
            .await?;
        if size_changed {
            let direction = if old_size < size { "up" } else { "down" };
            let message =
                format!("Scaled {direction} replica set {rs_name} from {old_size} to {size}");
            self.event(EventType::Normal, "ScalingReplicaSet", &message)
                .await;
        }
        Ok((size_changed, updated))
    }

    async fn scale_replica_set_if_needed(
        &self,
        rs: &ReplicaSet,
        size: i32,
    ) -> Result<(bool, ReplicaSet)> {
        if rs_replicas(rs) == size {
            return Ok((false, rs.clone()));
        }
        self.scale_replica_set(rs, size).await
    }

    /// `kubectl scale` happened: some active ReplicaSet was last sized for
    /// another Deployment size (`isScalingEvent`).
    fn is_scaling_event(&self, new_rs: Option<&ReplicaSet>, old: &[ReplicaSet]) -> bool {
        let replicas = self.replicas();
        new_rs
            .into_iter()
            .chain(old)
            .filter(|rs| rs_replicas(rs) > 0)
            .filter_map(|rs| int_annotation(rs, DESIRED_REPLICAS_ANNOTATION))
            .any(|desired| desired != replicas)
    }

    /// Scaling without rolling (also what a paused Deployment does): resize
    /// the ReplicaSets, then report (`sync`).
    async fn sync_scaling(
        &mut self,
        new_rs: Option<ReplicaSet>,
        old: Vec<ReplicaSet>,
    ) -> Result<Action> {
        self.scale(new_rs.as_ref(), &old).await?;
        if self.d.spec.paused == Some(true) {
            self.cleanup_old_replica_sets(&old).await?;
        }
        let all = with_new(&old, new_rs.as_ref());
        let status = self.calculate_status(&all, new_rs.as_ref());
        if self.d.status.as_ref() != Some(&status) {
            self.write_status(status).await?;
        }
        Ok(Action::await_change())
    }

    /// Proportional scaling (`scale`).
    async fn scale(&self, new_rs: Option<&ReplicaSet>, old: &[ReplicaSet]) -> Result<()> {
        let replicas = self.replicas();
        // One active ReplicaSet (or none: the newest one) takes everything.
        let mut newest_first = old.to_vec();
        newest_first.sort_by(|a, b| by_creation(b, a));
        let all = with_new(&newest_first, new_rs);
        let active_rss = active(&all);
        let only = match active_rss.len() {
            0 => new_rs.cloned().or_else(|| newest_first.first().cloned()),
            1 => Some(active_rss[0].clone()),
            _ => None,
        };
        if let Some(rs) = only {
            self.scale_replica_set_if_needed(&rs, replicas).await?;
            return Ok(());
        }
        // A saturated new ReplicaSet leaves nothing for the old ones.
        let saturated = new_rs.is_some_and(|rs| {
            rs_replicas(rs) == replicas
                && int_annotation(rs, DESIRED_REPLICAS_ANNOTATION) == Some(replicas)
                && rs_available(rs) == replicas
        });
        if saturated {
            for rs in active(old) {
                self.scale_replica_set_if_needed(&rs, 0).await?;
            }
            return Ok(());
        }
        if self.strategy == Strategy::Recreate {
            return Ok(());
        }
        // Share the change among the active ReplicaSets by size: largest
        // first; on ties, newer ones grow first and older ones shrink first.
        let mut rss = active_rss;
        let max_replicas = replicas + self.strategy.max_surge();
        let allowed = if replicas > 0 { max_replicas } else { 0 };
        let to_add = allowed - sum(&rss, rs_replicas);
        if to_add > 0 {
            rss.sort_by(|a, b| {
                rs_replicas(b)
                    .cmp(&rs_replicas(a))
                    .then_with(|| by_creation(b, a))
            });
        } else if to_add < 0 {
            rss.sort_by(|a, b| {
                rs_replicas(b)
                    .cmp(&rs_replicas(a))
                    .then_with(|| by_creation(a, b))
            });
        }
        let status_replicas = self.status().replicas.unwrap_or(0);
        let mut added = 0;
        let mut sizes: Vec<i32> = Vec::with_capacity(rss.len());
        for rs in &rss {
            let share = proportion(
                rs_replicas(rs),
                int_annotation(rs, MAX_REPLICAS_ANNOTATION),
                replicas,
                max_replicas,
                status_replicas,
                to_add,
                added,
            );
            sizes.push(rs_replicas(rs) + share);
            added += share;
        }
        for (i, rs) in rss.iter().enumerate() {
            let mut size = sizes[i];
            // Leftovers of the rounding go to the largest one.
            if i == 0 && to_add != 0 {
                size = (size + to_add - added).max(0);
            }
            self.scale_replica_set(rs, size).await?;
        }
        Ok(())
    }

    // -- RollingUpdate -----------------------------------------------------

    async fn rollout_rolling(&mut self, mut rss: Vec<ReplicaSet>) -> Result<Action> {
        let (new_rs, old) = self.replica_sets_and_sync_revision(&mut rss, true).await?;
        let new_rs = new_rs.ok_or_else(|| {
            Error::Invalid(format!(
                "deployment {}/{}: no new replica set after creating it",
                self.namespace, self.name
            ))
        })?;
        let all = with_new(&old, Some(&new_rs));

        if self.reconcile_new_replica_set(&all, &new_rs).await? {
            return self.sync_rollout_status(&all, Some(&new_rs)).await;
        }
        if self
            .reconcile_old_replica_sets(&all, active(&old), &new_rs)
            .await?
        {
            return self.sync_rollout_status(&all, Some(&new_rs)).await;
        }
        if deployment_complete(&self.d, &self.status()) {
            self.cleanup_old_replica_sets(&old).await?;
        }
        self.sync_rollout_status(&all, Some(&new_rs)).await
    }

    /// Grows the new ReplicaSet as far as maxSurge allows (or shrinks it if
    /// it is above `replicas`).
    async fn reconcile_new_replica_set(
        &self,
        all: &[ReplicaSet],
        new_rs: &ReplicaSet,
    ) -> Result<bool> {
        let replicas = self.replicas();
        let current = rs_replicas(new_rs);
        if current == replicas {
            return Ok(false);
        }
        let size = if current > replicas {
            replicas
        } else {
            new_replica_set_size(self.strategy, replicas, sum(all, rs_replicas), current)
        };
        Ok(self.scale_replica_set_if_needed(new_rs, size).await?.0)
    }

    /// Shrinks old ReplicaSets as far as maxUnavailable allows: first their
    /// unavailable Pods (free to remove), then available ones.
    async fn reconcile_old_replica_sets(
        &self,
        all: &[ReplicaSet],
        old_active: Vec<ReplicaSet>,
        new_rs: &ReplicaSet,
    ) -> Result<bool> {
        if sum(&old_active, rs_replicas) == 0 {
            return Ok(false);
        }
        let replicas = self.replicas();
        let max_unavailable = self.strategy.max_unavailable(replicas);
        let new_unavailable = rs_replicas(new_rs) - rs_available(new_rs);
        let budget = old_scale_down_budget(
            sum(all, rs_replicas),
            replicas,
            max_unavailable,
            new_unavailable,
        );
        if budget <= 0 {
            return Ok(false);
        }
        let (old_active, cleaned) = self.cleanup_unhealthy_replicas(old_active, budget).await?;
        let all = with_new(&old_active, Some(new_rs));
        let scaled = self.scale_down_old_replica_sets(&all, old_active).await?;
        Ok(cleaned + scaled > 0)
    }

    /// Removes Pods that are not available from old ReplicaSets, oldest
    /// ReplicaSet first, up to `budget` (`cleanupUnhealthyReplicas`).
    async fn cleanup_unhealthy_replicas(
        &self,
        mut old: Vec<ReplicaSet>,
        budget: i32,
    ) -> Result<(Vec<ReplicaSet>, i32)> {
        old.sort_by(by_creation);
        let mut total = 0;
        for rs in old.iter_mut() {
            if total >= budget {
                break;
            }
            let size = rs_replicas(rs);
            if size == 0 || size == rs_available(rs) {
                continue;
            }
            let scale_down = (budget - total).min(size - rs_available(rs));
            let (_, updated) = self
                .scale_replica_set_if_needed(rs, size - scale_down)
                .await?;
            *rs = updated;
            total += scale_down;
        }
        Ok((old, total))
    }

    /// Scales old ReplicaSets down while more than the minimum is available
    /// (`scaleDownOldReplicaSetsForRollingUpdate`).
    async fn scale_down_old_replica_sets(
        &self,
        all: &[ReplicaSet],
        mut old: Vec<ReplicaSet>,
    ) -> Result<i32> {
        let replicas = self.replicas();
        let min_available = replicas - self.strategy.max_unavailable(replicas);
        let available = sum(all, rs_available);
        if available <= min_available {
            return Ok(0);
        }
        old.sort_by(by_creation);
        let wanted = available - min_available;
        let mut total = 0;
        for rs in &old {
            if total >= wanted {
                break;
            }
            let size = rs_replicas(rs);
            if size == 0 {
                continue;
            }
            let scale_down = size.min(wanted - total);
            self.scale_replica_set_if_needed(rs, size - scale_down)
                .await?;
            total += scale_down;
        }
        Ok(total)
    }

    // -- Recreate ----------------------------------------------------------

    async fn rollout_recreate(
        &mut self,
        mut rss: Vec<ReplicaSet>,
        new_rs: Option<ReplicaSet>,
        old: Vec<ReplicaSet>,
    ) -> Result<Action> {
        let all = with_new(&old, new_rs.as_ref());
        let mut scaled_down = false;
        for rs in active(&old) {
            scaled_down |= self.scale_replica_set_if_needed(&rs, 0).await?.0;
        }
        if scaled_down || old_pods_running(&old) {
            return self.sync_rollout_status(&all, new_rs.as_ref()).await;
        }
        let (new_rs, old, all) = match new_rs {
            Some(rs) => (rs, old, all),
            None => {
                let (new_rs, old) = self.replica_sets_and_sync_revision(&mut rss, true).await?;
                let new_rs = new_rs.ok_or_else(|| {
                    Error::Invalid(format!(
                        "deployment {}/{}: no new replica set after creating it",
                        self.namespace, self.name
                    ))
                })?;
                let all = with_new(&old, Some(&new_rs));
                (new_rs, old, all)
            }
        };
        self.scale_replica_set_if_needed(&new_rs, self.replicas())
            .await?;
        if deployment_complete(&self.d, &self.status()) {
            self.cleanup_old_replica_sets(&old).await?;
        }
        self.sync_rollout_status(&all, Some(&new_rs)).await
    }

    // -- history -------------------------------------------------------------

    /// Deletes the oldest empty ReplicaSets beyond `revisionHistoryLimit`
    /// (`cleanupDeployment`).
    async fn cleanup_old_replica_sets(&self, old: &[ReplicaSet]) -> Result<()> {
        let Some(limit) = self.d.spec.revision_history_limit else {
            return Ok(());
        };
        let mut cleanable: Vec<&ReplicaSet> = old
            .iter()
            .filter(|rs| rs.metadata.deletion_timestamp.is_none())
            .collect();
        let excess = cleanable.len() as i64 - i64::from(limit);
        if excess <= 0 {
            return Ok(());
        }
        cleanable.sort_by(|a, b| by_revision(a, b));
        for rs in cleanable.into_iter().take(excess as usize) {
            let observed = rs
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            if rs_status_replicas(rs) != 0
                || rs_replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0) > observed
            {
                continue;
            }
            tracing::info!(deployment = %self.name, replicaset = %name_of(&rs.metadata), "deleting old replica set");
            match self
                .replicasets()
                .delete(name_of(&rs.metadata), &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    // -- status ----------------------------------------------------------------

    /// The counts and the Available condition (`calculateStatus`).
    fn calculate_status(
        &self,
        all: &[ReplicaSet],
        new_rs: Option<&ReplicaSet>,
    ) -> DeploymentStatus {
        let available = sum(all, rs_available);
        let total = sum(all, rs_replicas);
        // Zero counts are left out, as upstream's `omitempty` does.
        let count = |n: i32| (n != 0).then_some(n);
        let terminating = all
            .iter()
            .map(|rs| rs.status.as_ref().and_then(|s| s.terminating_replicas))
            .sum::<Option<i32>>();
        let mut status = DeploymentStatus {
            observed_generation: self.d.metadata.generation,
            replicas: count(sum(all, rs_status_replicas)),
            updated_replicas: count(new_rs.map_or(0, rs_status_replicas)),
            ready_replicas: count(sum(all, rs_ready)),
            available_replicas: count(available),
            unavailable_replicas: count((total - available).max(0)),
            terminating_replicas: terminating,
            collision_count: self.d.status.as_ref().and_then(|s| s.collision_count),
            conditions: self.d.status.as_ref().and_then(|s| s.conditions.clone()),
        };
        let replicas = self.replicas();
        if available >= replicas - self.strategy.max_unavailable(replicas) {
            set_condition(
                &mut status,
                new_condition(
                    cond::AVAILABLE,
                    "True",
                    cond::MINIMUM_REPLICAS_AVAILABLE,
                    "Deployment has minimum availability.".into(),
                ),
            );
        } else {
            set_condition(
                &mut status,
                new_condition(
                    cond::AVAILABLE,
                    "False",
                    cond::MINIMUM_REPLICAS_UNAVAILABLE,
                    "Deployment does not have minimum availability.".into(),
                ),
            );
        }
        status
    }

    /// Status plus the Progressing condition (`syncRolloutStatus`); asks to
    /// be woken when the progress deadline would pass.
    async fn sync_rollout_status(
        &mut self,
        all: &[ReplicaSet],
        new_rs: Option<&ReplicaSet>,
    ) -> Result<Action> {
        let mut status = self.calculate_status(all, new_rs);
        let deadline = progress_deadline(&self.d);
        if deadline.is_none() {
            remove_condition(&mut status, cond::PROGRESSING);
        }
        let current = self
            .d
            .status
            .as_ref()
            .and_then(|s| get_condition(s, cond::PROGRESSING))
            .cloned();
        let complete_shown = status.replicas == status.updated_replicas
            && current
                .as_ref()
                .is_some_and(|c| c.reason.as_deref() == Some(cond::NEW_REPLICA_SET_AVAILABLE));
        if deadline.is_some() && !complete_shown {
            let subject = match new_rs {
                Some(rs) => format!("ReplicaSet {:?}", name_of(&rs.metadata)),
                None => format!("Deployment {:?}", self.name),
            };
            if deployment_complete(&self.d, &status) {
                set_condition(
                    &mut status,
                    new_condition(
                        cond::PROGRESSING,
                        "True",
                        cond::NEW_REPLICA_SET_AVAILABLE,
                        format!("{subject} has successfully progressed."),
                    ),
                );
            } else if deployment_progressing(&self.d, &status) {
                // Progress refreshes lastUpdateTime even with the same
                // reason: that is the clock of the progress deadline.
                let mut condition = new_condition(
                    cond::PROGRESSING,
                    "True",
                    cond::REPLICA_SET_UPDATED,
                    format!("{subject} is progressing."),
                );
                if let Some(current) = &current {
                    if current.status.as_deref() == Some("True") {
                        condition.last_transition_time = current.last_transition_time.clone();
                    }
                    remove_condition(&mut status, cond::PROGRESSING);
                }
                set_condition(&mut status, condition);
            } else if deployment_timed_out(&self.d, &status, Timestamp::now()) {
                set_condition(
                    &mut status,
                    new_condition(
                        cond::PROGRESSING,
                        "False",
                        cond::PROGRESS_DEADLINE_EXCEEDED,
                        format!("{subject} has timed out progressing."),
                    ),
                );
            }
        }
        // The ReplicaSets' failures (FailedCreate...) show on the Deployment,
        // the new ReplicaSet's first.
        let failure = new_rs
            .into_iter()
            .chain(all)
            .flat_map(|rs| rs.status.iter().flat_map(|s| s.conditions.iter().flatten()))
            .find(|c| c.type_.as_deref() == Some(cond::REPLICA_FAILURE))
            .map(|c| DeploymentCondition {
                type_: Some(cond::REPLICA_FAILURE.into()),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                last_update_time: c.last_transition_time.clone(),
                last_transition_time: c.last_transition_time.clone(),
            });
        match failure {
            Some(condition) => set_condition(&mut status, condition),
            None => remove_condition(&mut status, cond::REPLICA_FAILURE),
        }

        if self.d.status.as_ref() == Some(&status) {
            return Ok(self.requeue_for_deadline(&status));
        }
        self.write_status(status).await?;
        Ok(Action::await_change())
    }

    /// A rollout that stops moving gets no event; come back when its
    /// deadline passes to mark it ProgressDeadlineExceeded
    /// (`requeueStuckDeployment`).
    fn requeue_for_deadline(&self, status: &DeploymentStatus) -> Action {
        let (Some(deadline), Some(current)) = (
            progress_deadline(&self.d),
            get_condition(status, cond::PROGRESSING),
        ) else {
            return Action::await_change();
        };
        if deployment_complete(&self.d, status)
            || current.reason.as_deref() == Some(cond::PROGRESS_DEADLINE_EXCEEDED)
        {
            return Action::await_change();
        }
        let Some(updated) = current.last_update_time.as_ref() else {
            return Action::await_change();
        };
        let due = updated.0 + SignedDuration::from_secs(i64::from(deadline));
        let after = due.duration_since(Timestamp::now());
        let after = Duration::try_from(after).unwrap_or(Duration::ZERO);
        Action::requeue(after.max(Duration::from_secs(1)) + Duration::from_secs(1))
    }
}

/// `old` with the new ReplicaSet appended, when there is one.
fn with_new(old: &[ReplicaSet], new_rs: Option<&ReplicaSet>) -> Vec<ReplicaSet> {
    let mut all = old.to_vec();
    all.extend(new_rs.cloned());
    all
}

/// Whether Pods of old ReplicaSets may still run (`oldPodsRunning`), told
/// by their status: Pods counted, Pods still terminating, or a status not
/// yet written for the latest spec. When the last terminating Pod is gone
/// the ReplicaSet's status changes, which wakes this Deployment again.
fn old_pods_running(old: &[ReplicaSet]) -> bool {
    old.iter().any(|rs| {
        let status = rs.status.clone().unwrap_or_default();
        status.replicas > 0
            || status.terminating_replicas.unwrap_or(0) > 0
            || status.observed_generation.unwrap_or(0) < rs.metadata.generation.unwrap_or(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(json!({
            "metadata": {"labels": {"app": "ngx-dep"}},
            "spec": {"containers": [{"name": "nginx", "image": image}]}
        }))
        .unwrap()
    }

    #[test]
    fn hashes_look_like_upstream_ones() {
        let hash = pod_template_hash(&template("nginx:alpine"), None);
        assert!((1..=10).contains(&hash.len()), "{hash}");
        // Decimal digits land on "4bcdf56789" of the safe alphabet.
        assert!(hash.chars().all(|c| "456789bcdf".contains(c)), "{hash}");
        assert_eq!(
            hash,
            pod_template_hash(&template("nginx:alpine"), None),
            "stable"
        );
        assert_ne!(hash, pod_template_hash(&template("nginx:1.27"), None));
        assert_ne!(hash, pod_template_hash(&template("nginx:alpine"), Some(1)));
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
    }

    #[test]
    fn fnv32a_matches_the_reference_vectors() {
        assert_eq!(fnv32a(b"", FNV32_OFFSET), 0x811c9dc5);
        assert_eq!(fnv32a(b"a", FNV32_OFFSET), 0xe40c292c);
        assert_eq!(fnv32a(b"foobar", FNV32_OFFSET), 0xbf9cf968);
    }

    #[test]
    fn templates_compare_without_the_hash_label() {
        let mut with_hash = template("nginx:alpine");
        with_hash
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(POD_TEMPLATE_HASH_LABEL.into(), "abc".into());
        assert!(equal_ignoring_hash(&with_hash, &template("nginx:alpine")));
        assert!(!equal_ignoring_hash(&with_hash, &template("nginx:1.27")));
    }

    #[test]
    fn percentages_round_like_upstream() {
        let pct = |s: &str| IntOrString::String(s.into());
        assert_eq!(scaled_value(&pct("25%"), 10, true), Ok(3));
        assert_eq!(scaled_value(&pct("25%"), 10, false), Ok(2));
        assert_eq!(scaled_value(&IntOrString::Int(4), 10, true), Ok(4));
        assert!(scaled_value(&pct("25"), 10, true).is_err());
        assert!(scaled_value(&pct("x%"), 10, true).is_err());
        // The lesson's 2 replicas with the defaults: surge 1, unavailable 0.
        assert_eq!(resolve_fenceposts(None, None, 2), Ok((1, 0)));
        assert_eq!(resolve_fenceposts(None, None, 5), Ok((2, 1)));
        // Both zero would never move: one may be unavailable.
        let zero = IntOrString::Int(0);
        assert_eq!(resolve_fenceposts(Some(&zero), Some(&zero), 5), Ok((0, 1)));
    }

    #[test]
    fn the_new_replica_set_grows_within_the_surge() {
        let rolling = Strategy::RollingUpdate {
            max_surge: 1,
            max_unavailable: 0,
        };
        // 2 old Pods, surge 1: the new ReplicaSet may have 1.
        assert_eq!(new_replica_set_size(rolling, 2, 2, 0), 1);
        // Already at 3 of max 3: no growth.
        assert_eq!(new_replica_set_size(rolling, 2, 3, 1), 1);
        // Old ones gone: the new one reaches the full count, never more.
        assert_eq!(new_replica_set_size(rolling, 2, 1, 1), 2);
        assert_eq!(new_replica_set_size(Strategy::Recreate, 5, 0, 0), 5);
    }

    #[test]
    fn old_replica_sets_shrink_within_max_unavailable() {
        // replicas 2, maxUnavailable 0, old 2 + new 1 (not available yet):
        // nothing may go.
        assert_eq!(old_scale_down_budget(3, 2, 0, 1), 0);
        // The new Pod became available: one old Pod may go.
        assert_eq!(old_scale_down_budget(3, 2, 0, 0), 1);
        assert_eq!(
            Strategy::RollingUpdate {
                max_surge: 1,
                max_unavailable: 3
            }
            .max_unavailable(2),
            2
        );
        assert_eq!(Strategy::Recreate.max_unavailable(2), 0);
    }

    #[test]
    fn scaling_is_shared_in_proportion() {
        // 10 -> 20 replicas (max 13 -> 25), two ReplicaSets of 8 and 5.
        let first = proportion(8, Some(13), 20, 25, 13, 12, 0);
        let second = proportion(5, Some(13), 20, 25, 13, 12, first);
        assert_eq!((first, second), (7, 5));
        // Scaling to zero takes everything.
        assert_eq!(proportion(8, Some(13), 0, 0, 13, -13, 0), -8);
        // Never more than is left to hand out.
        assert_eq!(proportion(8, Some(13), 20, 25, 13, 3, 0), 3);
    }

    #[test]
    fn conditions_keep_their_transition_time() {
        let mut status = DeploymentStatus::default();
        let mut first = new_condition(cond::AVAILABLE, "True", "A", "m".into());
        first.last_transition_time = Some(Time(Timestamp::UNIX_EPOCH));
        set_condition(&mut status, first);
        set_condition(
            &mut status,
            new_condition(cond::AVAILABLE, "True", "B", "m".into()),
        );
        let c = get_condition(&status, cond::AVAILABLE).unwrap();
        assert_eq!(c.reason.as_deref(), Some("B"));
        assert_eq!(c.last_transition_time, Some(Time(Timestamp::UNIX_EPOCH)));
        assert_eq!(status.conditions.as_ref().unwrap().len(), 1);
    }
}

#[cfg(test)]
mod reconcile_tests {
    use super::*;
    use crate::replicaset::test_cluster::{synced, TestCluster};

    const NGX_DEP: &str = include_str!("../../examples/lesson/ngx-dep.yml");

    fn lesson_deployment() -> Deployment {
        let docs = api::decode::decode_manifests(NGX_DEP, "ngx-dep.yml").unwrap();
        serde_json::from_value(docs[0].value.clone()).unwrap()
    }

    struct Fixture {
        cluster: TestCluster,
        ctrl: Arc<DeploymentController>,
        deployments: Api<Deployment>,
        rss: Api<ReplicaSet>,
    }

    impl Fixture {
        async fn start(d: Deployment) -> Fixture {
            let cluster = TestCluster::start();
            let ctrl = Arc::new(DeploymentController::new(
                cluster.ctx.clone(),
                cluster.cache(),
            ));
            let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), "default");
            deployments
                .create(&PostParams::default(), &d)
                .await
                .unwrap();
            Fixture {
                rss: Api::namespaced(cluster.client.clone(), "default"),
                deployments,
                cluster,
                ctrl,
            }
        }

        /// One pass, with the ReplicaSet cache caught up first.
        async fn reconcile(&self) -> Action {
            synced(&self.ctrl.replicasets, &self.cluster.client).await;
            let d = self.deployments.get("ngx-dep").await.unwrap();
            reconcile(Arc::new(d), self.ctrl.clone()).await.unwrap()
        }

        async fn deployment(&self) -> Deployment {
            self.deployments.get("ngx-dep").await.unwrap()
        }

        /// Oldest revision first (creation times are whole seconds, too
        /// coarse to order them in a fast test).
        async fn replica_sets(&self) -> Vec<ReplicaSet> {
            let mut rss = self.rss.list(&Default::default()).await.unwrap().items;
            rss.sort_by(by_revision);
            rss
        }

        async fn versions(&self) -> Vec<String> {
            let mut all = vec![self.deployment().await.resource_version().unwrap()];
            all.extend(
                self.replica_sets()
                    .await
                    .iter()
                    .map(|rs| rs.resource_version().unwrap()),
            );
            all
        }

        /// Plays the ReplicaSet loop and the kubelets: every ReplicaSet
        /// reports its Pods present and available, `terminating` of them
        /// still shutting down.
        async fn report(&self, terminating: i32) {
            for rs in self.replica_sets().await {
                let n = rs_replicas(&rs);
                let status = json!({"status": {
                    "replicas": n, "readyReplicas": n, "availableReplicas": n,
                    "fullyLabeledReplicas": n, "terminatingReplicas": terminating,
                    "observedGeneration": rs.metadata.generation,
                }});
                self.rss
                    .patch_status(
                        &rs.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&status),
                    )
                    .await
                    .unwrap();
            }
        }

        async fn set_image(&self, image: &str) {
            let patch = json!({"spec": {"template": {"spec": {"containers": [
                {"name": "nginx", "image": image}
            ]}}}});
            self.deployments
                .patch(
                    "ngx-dep",
                    &PatchParams::default(),
                    &Patch::Strategic(&patch),
                )
                .await
                .unwrap();
        }
    }

    fn condition_reason(d: &Deployment, type_: &str) -> Option<String> {
        get_condition(d.status.as_ref()?, type_)?.reason.clone()
    }

    fn sizes(rss: &[ReplicaSet]) -> Vec<i32> {
        rss.iter().map(rs_replicas).collect()
    }

    #[tokio::test]
    async fn first_pass_creates_the_replica_set_and_a_second_pass_writes_nothing() {
        let f = Fixture::start(lesson_deployment()).await;
        f.reconcile().await;

        let d = f.deployment().await;
        let rss = f.replica_sets().await;
        assert_eq!(rss.len(), 1);
        let rs = &rss[0];
        let hash = pod_template_hash(&d.spec.template, None);
        assert_eq!(rs.name_any(), format!("ngx-dep-{hash}"));
        assert_eq!(rs.labels().get(POD_TEMPLATE_HASH_LABEL), Some(&hash));
        let selector = rs.spec.selector.match_labels.clone().unwrap();
        assert_eq!(selector.get(POD_TEMPLATE_HASH_LABEL), Some(&hash));
        assert_eq!(selector.get("app").map(String::as_str), Some("ngx-dep"));
        let template_labels = rs
            .spec
            .template
            .as_ref()
            .unwrap()
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .clone()
            .unwrap();
        assert_eq!(template_labels.get(POD_TEMPLATE_HASH_LABEL), Some(&hash));
        let owner = controller_of(&rs.metadata).unwrap();
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Deployment", d.uid().unwrap().as_str())
        );
        assert_eq!(owner.block_owner_deletion, Some(true));
        assert_eq!(rs.spec.replicas, Some(2));
        assert_eq!(annotation(&rs.metadata, REVISION_ANNOTATION), Some("1"));
        assert_eq!(
            annotation(&rs.metadata, DESIRED_REPLICAS_ANNOTATION),
            Some("2")
        );
        // 2 replicas, 25% surge rounded up: at most 3 Pods.
        assert_eq!(annotation(&rs.metadata, MAX_REPLICAS_ANNOTATION), Some("3"));

        assert_eq!(annotation(&d.metadata, REVISION_ANNOTATION), Some("1"));
        let status = d.status.clone().unwrap();
        assert_eq!(status.observed_generation, d.metadata.generation);
        assert_eq!(
            condition_reason(&d, cond::PROGRESSING).as_deref(),
            Some(cond::NEW_REPLICA_SET_CREATED)
        );
        assert_eq!(
            condition_reason(&d, cond::AVAILABLE).as_deref(),
            Some(cond::MINIMUM_REPLICAS_UNAVAILABLE)
        );

        let before = f.versions().await;
        f.reconcile().await;
        assert_eq!(f.versions().await, before, "a second pass writes nothing");

        // The Pods show up: Available, then complete.
        f.report(0).await;
        f.reconcile().await;
        let d = f.deployment().await;
        let status = d.status.clone().unwrap();
        assert_eq!(
            (
                status.replicas,
                status.updated_replicas,
                status.available_replicas
            ),
            (Some(2), Some(2), Some(2))
        );
        assert_eq!(
            condition_reason(&d, cond::AVAILABLE).as_deref(),
            Some(cond::MINIMUM_REPLICAS_AVAILABLE)
        );
        assert_eq!(
            condition_reason(&d, cond::PROGRESSING).as_deref(),
            Some(cond::NEW_REPLICA_SET_AVAILABLE)
        );
        let before = f.versions().await;
        f.reconcile().await;
        assert_eq!(
            f.versions().await,
            before,
            "a settled deployment gets no writes"
        );
    }

    #[tokio::test]
    async fn a_rolling_update_stays_within_surge_and_unavailability() {
        let f = Fixture::start(lesson_deployment()).await;
        f.reconcile().await;
        f.report(0).await;
        f.reconcile().await;

        f.set_image("nginx:1.27").await;
        let mut steps = 0;
        loop {
            f.reconcile().await;
            let rss = f.replica_sets().await;
            let total: i32 = sizes(&rss).iter().sum();
            // maxSurge 1 (25% of 2, up), maxUnavailable 0 (25% of 2, down).
            assert!(total <= 3, "surge exceeded: {:?}", sizes(&rss));
            assert!(total >= 2, "below the minimum: {:?}", sizes(&rss));
            f.report(0).await;
            let d = f.deployment().await;
            if condition_reason(&d, cond::PROGRESSING).as_deref()
                == Some(cond::NEW_REPLICA_SET_AVAILABLE)
                && rss.len() == 2
            {
                break;
            }
            steps += 1;
            assert!(steps < 20, "the rollout does not finish: {:?}", sizes(&rss));
        }
        let rss = f.replica_sets().await;
        assert_eq!(sizes(&rss), [0, 2]);
        assert_eq!(annotation(&rss[1].metadata, REVISION_ANNOTATION), Some("2"));
        let d = f.deployment().await;
        assert_eq!(annotation(&d.metadata, REVISION_ANNOTATION), Some("2"));
        let status = d.status.unwrap();
        assert_eq!(
            (status.replicas, status.updated_replicas),
            (Some(2), Some(2))
        );
    }

    #[tokio::test]
    async fn scaling_in_the_middle_of_a_rollout_is_proportional() {
        let f = Fixture::start(lesson_deployment()).await;
        f.reconcile().await;
        f.report(0).await;
        f.reconcile().await;
        f.set_image("nginx:1.27").await;
        f.reconcile().await;
        assert_eq!(sizes(&f.replica_sets().await), [2, 1]);

        let patch = json!({"spec": {"replicas": 4}});
        f.deployments
            .patch("ngx-dep", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        f.reconcile().await;
        // From 3 (max 3) to 5 (4 + 1 surge): each grows by its share.
        let rss = f.replica_sets().await;
        assert_eq!(sizes(&rss), [3, 2]);
        for rs in &rss {
            assert_eq!(
                annotation(&rs.metadata, DESIRED_REPLICAS_ANNOTATION),
                Some("4")
            );
            assert_eq!(annotation(&rs.metadata, MAX_REPLICAS_ANNOTATION), Some("5"));
        }
    }

    #[tokio::test]
    async fn recreate_waits_for_old_pods_to_be_gone() {
        let mut d = lesson_deployment();
        d.spec.strategy = Some(serde_json::from_value(json!({"type": "Recreate"})).unwrap());
        d.spec.revision_history_limit = Some(0);
        let f = Fixture::start(d).await;
        f.reconcile().await;
        f.report(0).await;
        f.reconcile().await;

        f.set_image("nginx:1.27").await;
        f.reconcile().await;
        let rss = f.replica_sets().await;
        assert_eq!(
            sizes(&rss),
            [0],
            "old pods go first, no new replica set yet"
        );

        // Scaled to 0 but its Pods are still shutting down.
        f.report(2).await;
        f.reconcile().await;
        assert_eq!(f.replica_sets().await.len(), 1);

        f.report(0).await;
        f.reconcile().await;
        let rss = f.replica_sets().await;
        assert_eq!(sizes(&rss), [0, 2]);

        // Done: with revisionHistoryLimit 0 the old one is deleted.
        f.report(0).await;
        f.reconcile().await;
        f.reconcile().await;
        let rss = f.replica_sets().await;
        assert_eq!(rss.len(), 1);
        assert_eq!(annotation(&rss[0].metadata, REVISION_ANNOTATION), Some("2"));
    }

    #[tokio::test]
    async fn a_paused_deployment_scales_but_does_not_roll_out() {
        let f = Fixture::start(lesson_deployment()).await;
        f.reconcile().await;
        f.report(0).await;
        f.reconcile().await;
        let patch = json!({"spec": {"paused": true}});
        f.deployments
            .patch("ngx-dep", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        f.reconcile().await;
        let d = f.deployment().await;
        assert_eq!(
            condition_reason(&d, cond::PROGRESSING).as_deref(),
            Some(cond::DEPLOYMENT_PAUSED)
        );

        f.set_image("nginx:1.27").await;
        let patch = json!({"spec": {"replicas": 3}});
        f.deployments
            .patch("ngx-dep", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        f.reconcile().await;
        assert_eq!(sizes(&f.replica_sets().await), [3], "scaled, not rolled");

        let patch = json!({"spec": {"paused": false}});
        f.deployments
            .patch("ngx-dep", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        f.reconcile().await;
        assert_eq!(
            f.replica_sets().await.len(),
            2,
            "resumed: the rollout starts"
        );
    }

    #[tokio::test]
    async fn a_stuck_rollout_exceeds_its_progress_deadline() {
        let mut d = lesson_deployment();
        d.spec.progress_deadline_seconds = Some(3);
        let f = Fixture::start(d).await;
        // The new Pods never become available: no report. A pass that
        // writes status waits for the watch event of its own write, so pass
        // again until nothing is left to write (a loaded machine may need a
        // pass more than an idle one).
        let mut action = Action::await_change();
        for _ in 0..5 {
            action = f.reconcile().await;
            if action != Action::await_change() {
                break;
            }
        }
        // It asks to come back when the deadline has passed...
        assert_ne!(action, Action::await_change());
        tokio::time::sleep(Duration::from_millis(3100)).await;
        f.reconcile().await;
        // ...and then says so, which ends `kubectl rollout status` with an error.
        let d = f.deployment().await;
        let progressing = get_condition(d.status.as_ref().unwrap(), cond::PROGRESSING).unwrap();
        assert_eq!(
            progressing.reason.as_deref(),
            Some(cond::PROGRESS_DEADLINE_EXCEEDED)
        );
        assert_eq!(progressing.status.as_deref(), Some("False"));
        assert_eq!(
            progressing.message.as_deref(),
            Some(
                format!(
                    "ReplicaSet {:?} has timed out progressing.",
                    f.replica_sets().await[0].name_any()
                )
                .as_str()
            )
        );
    }

    #[tokio::test]
    async fn adopts_a_matching_orphan_replica_set() {
        let f = Fixture::start(lesson_deployment()).await;
        let d = f.deployment().await;
        let hash = pod_template_hash(&d.spec.template, None);
        let mut template = d.spec.template.clone();
        template
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
        let orphan: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": "hand-made", "labels": {"app": "ngx-dep"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "ngx-dep", POD_TEMPLATE_HASH_LABEL: hash}},
                "template": template,
            }
        }))
        .unwrap();
        f.rss.create(&PostParams::default(), &orphan).await.unwrap();
        f.reconcile().await;

        let rss = f.replica_sets().await;
        assert_eq!(
            rss.len(),
            1,
            "adopted as the new replica set, no second one"
        );
        let owner = controller_of(&rss[0].metadata).unwrap();
        assert_eq!(owner.uid, d.uid().unwrap());
        assert_eq!(annotation(&rss[0].metadata, REVISION_ANNOTATION), Some("1"));
    }
}
