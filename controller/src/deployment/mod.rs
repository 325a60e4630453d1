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
//! The files follow upstream's: this one the loop and one sync
//! ([`reconcile`]); `sync.rs` finding or making the new ReplicaSet and
//! scaling; `rolling.rs` and `recreate.rs` the two strategies;
//! `progress.rs` status and conditions; `hash.rs` the pod-template hash;
//! `replicasets.rs` what is read of ReplicaSets and written on them.
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

mod hash;
mod progress;
#[cfg(test)]
mod reconcile_tests;
mod recreate;
mod replicasets;
mod rolling;
mod sync;
#[cfg(test)]
mod tests;

pub use hash::{equal_ignoring_hash, pod_template_hash, safe_encode};
use progress::*;
use replicasets::*;
pub use rolling::{
    new_replica_set_size, old_scale_down_budget, proportion, resolve_fenceposts, scaled_value,
    Strategy,
};
use sync::*;

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
        let invalid = |what: String| Error::invalid(format!("deployment {namespace}/{name}"), what);
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
}
