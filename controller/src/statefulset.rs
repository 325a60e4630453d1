//! # StatefulSets: Pods with names that last
//!
//! A Deployment's Pods are interchangeable (`web-66fffb58f7-xlxwp`). A
//! StatefulSet's are not: Pod `web-0` is always `web-0`, comes back under
//! that name when deleted, and with the headless Service named in
//! `spec.serviceName` it has a DNS name of its own,
//! `web-0.web.default.svc.cluster.local` (each Pod gets `hostname: web-0`
//! and `subdomain: web`; the EndpointSlice controller and the cluster DNS
//! do the rest). As upstream's `pkg/controller/statefulset`:
//!
//! - **Ordinals**: the set has the Pods `NAME-0` to `NAME-(replicas-1)`
//!   (from `spec.ordinals.start`). Pods with other ordinals are
//!   *condemned*: scaling down removes the highest first.
//! - **`OrderedReady`** (the default) makes one change at a time and waits
//!   for it: `web-1` is created only once `web-0` is Running and Ready, a
//!   scale-down removes `web-2` and waits until it is gone before `web-1`.
//!   **`Parallel`** creates and deletes without waiting.
//! - **Updates** (`RollingUpdate`): once every Pod is Running and Ready,
//!   the Pod with the highest ordinal that runs an older template is
//!   deleted; it comes back with the new one, and the next goes once it is
//!   Ready. Pods below `partition` keep the old template - even when
//!   recreated - which is how a canary is rolled out. `OnDelete` waits for
//!   someone to delete a Pod.
//! - **Revisions**: each template version is a `ControllerRevision`
//!   ([`crate::history`]); a Pod's `controller-revision-hash` label names
//!   the one it runs, and `status.currentRevision` / `updateRevision` say
//!   which versions the rollout goes from and to - what `kubectl rollout
//!   status|history|undo sts/X` read.
//!
//! What to do is a pure function ([`plan`]) of the set, its Pods and its
//! two revisions, tested as a table; [`reconcile`] carries it out.
//!
//! Not here: `volumeClaimTemplates` (the apiserver refuses them: there is
//! no storage to claim), `maxUnavailable` (alpha upstream).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};

use crate::daemonset::REVISION_HASH_LABEL;
use crate::events::EventType;
use crate::ownership::{controller_of, Owner};
use crate::replicaset::{is_pod_active, is_pod_available};
use crate::{Context, Error, Result};

const COMPONENT: &str = "statefulset-controller";

/// The label with a Pod's own name, so a Service can select one Pod.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label with a Pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

// ---------------------------------------------------------------------------
// Identity (pure)

/// The ordinal of `pod` in the set `set_name`, if it is one of its names.
pub fn ordinal_of(set_name: &str, pod_name: &str) -> Option<i32> {
    let ordinal = pod_name.strip_prefix(set_name)?.strip_prefix('-')?;
    if ordinal.is_empty() || !ordinal.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if ordinal.len() > 1 && ordinal.starts_with('0') {
        return None;
    }
    ordinal.parse().ok()
}

/// The Pod `NAME-ordinal` of `set` made from `template` (`revision` names
/// it): stable name, hostname and subdomain, the identity labels.
pub fn pod_for(
    set: &StatefulSet,
    template: &PodTemplateSpec,
    revision: &str,
    ordinal: i32,
    owner: OwnerReference,
) -> Pod {
    let set_name = set.name_any();
    let name = format!("{set_name}-{ordinal}");
    let meta = template.metadata.clone().unwrap_or_default();
    let mut labels = meta.labels.unwrap_or_default();
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    labels.insert(REVISION_HASH_LABEL.into(), revision.into());
    let mut spec = template.spec.clone().unwrap_or_default();
    spec.hostname = Some(name.clone());
    spec.subdomain = set.spec.service_name.clone();
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: set.namespace(),
            labels: Some(labels),
            annotations: meta.annotations.filter(|a| !a.is_empty()),
            finalizers: meta.finalizers,
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

fn revision_of(pod: &Pod) -> Option<&str> {
    pod.labels().get(REVISION_HASH_LABEL).map(String::as_str)
}

fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

fn is_finished(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    matches!(phase, Some("Failed" | "Succeeded"))
}

/// Running, Ready (for `minReadySeconds`) and not going away.
fn is_healthy(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
    running && !is_terminating(pod) && is_pod_available(pod, min_ready_seconds, now)
}

// ---------------------------------------------------------------------------
// What to do (pure)

/// Which revision a new Pod gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Current,
    Update,
}

/// One change to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Create { ordinal: i32, revision: Which },
    Delete(String),
}

/// The changes to make now, and the status the set's Pods give.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub status: StatefulSetStatus,
}

/// Upstream's `updateStatefulSet`: what to change, in order, given the
/// set's Pods and its current and update revision names.
pub fn plan(set: &StatefulSet, pods: &[Pod], current: &str, update: &str, now: Timestamp) -> Plan {
    let spec = set.spec.clone();
    let name = set.name_any();
    let replicas = spec.replicas.unwrap_or(1).max(0);
    let start = spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0);
    let end = start + replicas;
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let ordered = spec.pod_management_policy.as_deref() != Some("Parallel");
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    let rolling = strategy.type_.as_deref() != Some("OnDelete");
    let partition = strategy
        .rolling_update
        .as_ref()
        .and_then(|r| r.partition)
        .unwrap_or(0);

    let member = |pod: &&Pod| ordinal_of(&name, &pod.name_any());
    let slot = |ordinal: i32| pods.iter().find(|p| member(p) == Some(ordinal));
    let mut condemned: Vec<&Pod> = pods
        .iter()
        .filter(|p| member(p).is_some_and(|o| o < start || o >= end))
        .collect();
    condemned.sort_by_key(|p| std::cmp::Reverse(member(p)));

    let status = status_of(set, pods, current, update, now);
    let mut steps = Vec::new();
    let done = |steps: Vec<Step>| Plan {
        steps,
        status: status.clone(),
    };

    // The Pods the set should have, lowest ordinal first.
    for ordinal in start..end {
        match slot(ordinal) {
            None => {
                let revision = if rolling && ordinal < partition {
                    Which::Current
                } else {
                    Which::Update
                };
                steps.push(Step::Create { ordinal, revision });
                if ordered {
                    return done(steps);
                }
            }
            // A Pod that ran to an end is replaced (it keeps its name).
            Some(pod) if is_finished(pod) && !is_terminating(pod) => {
                steps.push(Step::Delete(pod.name_any()));
                if ordered {
                    return done(steps);
                }
            }
            Some(pod) if !is_healthy(pod, min_ready, now) && ordered => return done(steps),
            Some(_) => {}
        }
    }
    // Those it should not have, highest first.
    for pod in condemned {
        if is_terminating(pod) {
            if ordered {
                return done(steps);
            }
            continue;
        }
        steps.push(Step::Delete(pod.name_any()));
        if ordered {
            return done(steps);
        }
    }
    if !rolling || !steps.is_empty() {
        return done(steps);
    }
    // The rolling update: one Pod at a time, highest ordinal first, down to
    // the partition.
    for ordinal in (start.max(partition)..end).rev() {
        let Some(pod) = slot(ordinal) else {
            return done(steps);
        };
        if revision_of(pod) != Some(update) && !is_terminating(pod) {
            steps.push(Step::Delete(pod.name_any()));
            return done(steps);
        }
        if !is_healthy(pod, min_ready, now) {
            return done(steps);
        }
    }
    done(steps)
}

/// What `kubectl get sts` and `rollout status` read.
fn status_of(
    set: &StatefulSet,
    pods: &[Pod],
    current: &str,
    update: &str,
    now: Timestamp,
) -> StatefulSetStatus {
    let spec = set.spec.clone();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let live: Vec<&Pod> = pods.iter().filter(|p| !is_terminating(p)).collect();
    let count = |f: &dyn Fn(&Pod) -> bool| live.iter().filter(|p| f(p)).count() as i32;
    let ready = |p: &Pod| is_pod_available(p, 0, now) && !is_finished(p);
    let mut status = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        replicas: live.len() as i32,
        ready_replicas: Some(count(&ready)),
        available_replicas: Some(count(&|p| ready(p) && is_pod_available(p, min_ready, now))),
        current_replicas: Some(count(&|p| revision_of(p) == Some(current))),
        updated_replicas: Some(count(&|p| revision_of(p) == Some(update))),
        current_revision: Some(current.to_string()),
        update_revision: Some(update.to_string()),
        collision_count: set.status.as_ref().and_then(|s| s.collision_count),
        conditions: set.status.as_ref().and_then(|s| s.conditions.clone()),
    };
    // Every Pod runs the new template and is ready: the rollout is over.
    let rolling = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        != Some("OnDelete");
    if rolling
        && status.updated_replicas == Some(status.replicas)
        && status.ready_replicas == Some(status.replicas)
    {
        status.current_revision = Some(update.to_string());
        status.current_replicas = status.updated_replicas;
    }
    status
}

// ---------------------------------------------------------------------------
// The loop

/// What the StatefulSet loop shares between reconciles.
pub struct StatefulSetController {
    ctx: Arc<Context>,
    pods: Store<Pod>,
}

/// Runs the StatefulSet loop: a Pod change wakes its StatefulSet.
pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let client = ctx.client.clone();
    let (pods, pod_events) = crate::watch_all::<Pod>(&client);
    let controller = Controller::new(Api::<StatefulSet>::all(client), watcher::Config::default());
    let sets = controller.store();
    let state = Arc::new(StatefulSetController { ctx, pods });
    controller
        .watches_stream(pod_events, move |pod| set_of_pod(&sets, &pod))
        .run(reconcile, error_policy, state)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "statefulset loop");
            }
        })
        .await;
    Ok(())
}

/// The StatefulSet to wake for a Pod change.
fn set_of_pod(sets: &Store<StatefulSet>, pod: &Pod) -> Vec<ObjectRef<StatefulSet>> {
    let namespace = pod.namespace().unwrap_or_default();
    if let Some(owner) = controller_of(&pod.metadata) {
        if owner.kind == "StatefulSet" {
            return vec![ObjectRef::new(&owner.name).within(&namespace)];
        }
        return Vec::new();
    }
    sets.state()
        .iter()
        .filter(|s| s.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|s| {
            api::selector::LabelSelector::from_k8s(&s.spec.selector)
                .is_ok_and(|s| !s.is_empty() && s.matches(pod.labels()))
        })
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

/// Conflicts mean the cache was behind: retry soon, quietly.
pub fn error_policy(
    set: Arc<StatefulSet>,
    error: &Error,
    _ctrl: Arc<StatefulSetController>,
) -> Action {
    let name = format!("{}/{}", set.namespace().unwrap_or_default(), set.name_any());
    crate::requeue_after_error(&format!("stateful set {name}"), error)
}

/// Makes one StatefulSet's Pods match it (`syncStatefulSet`).
pub async fn reconcile(set: Arc<StatefulSet>, ctrl: Arc<StatefulSetController>) -> Result<Action> {
    crate::wait_for_cache(&ctrl.pods).await?;
    let namespace = set.namespace().unwrap_or_default();
    let name = set.name_any();
    let spec = set.spec.clone();
    let object = format!("stateful set {namespace}/{name}");
    let selector = api::selector::LabelSelector::from_k8s(&spec.selector)
        .map_err(|e| Error::invalid(&object, format!("spec.selector: {e}")))?;
    if selector.is_empty() {
        return Err(Error::invalid(
            &object,
            "spec.selector is empty and would select every pod",
        ));
    }
    let owner = Owner {
        api_version: "apps/v1",
        kind: "StatefulSet",
        name: name.clone(),
        uid: set.metadata.uid.clone().unwrap_or_default(),
        selector: selector.clone(),
        deleting: set.metadata.deletion_timestamp.is_some(),
    };
    let client = ctrl.ctx.client.clone();
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let revisions_api: Api<ControllerRevision> = Api::namespaced(client.clone(), &namespace);

    // The revisions: the template now is the update revision; the current
    // one is what status says the set rolls from.
    let collisions = set.status.as_ref().and_then(|s| s.collision_count);
    let revisions = crate::history::list(&revisions_api, &selector.to_string(), &owner.uid).await?;
    let (update, revisions) = crate::history::record(
        &revisions_api,
        owner.reference(),
        &spec.template,
        collisions,
        revisions,
    )
    .await?;
    let update_name = update.name_any();
    let current = set
        .status
        .as_ref()
        .and_then(|s| s.current_revision.as_ref())
        .and_then(|want| revisions.iter().find(|r| r.name_any() == *want))
        .cloned()
        .unwrap_or_else(|| update.clone());
    let current_name = current.name_any();
    let now = Timestamp::now();

    let cached: Vec<Pod> = ctrl
        .pods
        .state()
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(namespace.as_str()))
        .filter(|p| owner.may_claim(&p.metadata))
        .map(|p| (**p).clone())
        .collect();
    let mut ours = owner.claim(&pods_api, cached, is_pod_active).await?;
    let mut todo = plan(&set, &ours, &current_name, &update_name, now);
    if owner.deleting {
        todo.steps.clear();
    }
    if !todo.steps.is_empty() {
        // A cache that lags must not make a Pod twice: plan again from the
        // apiserver's list before changing anything.
        let fresh = pods_api
            .list(&ListParams::default().labels(&selector.to_string()))
            .await?
            .items;
        ours = owner.claim(&pods_api, fresh, is_pod_active).await?;
        todo = plan(&set, &ours, &current_name, &update_name, now);
        let set_ref = set.object_ref(&());
        for step in &todo.steps {
            let (verb, pod_name, result) = match step {
                Step::Create { ordinal, revision } => {
                    let (template, revision_name) = match revision {
                        Which::Update => (spec.template.clone(), update_name.as_str()),
                        Which::Current => (
                            crate::history::template_of(&current)
                                .unwrap_or_else(|| spec.template.clone()),
                            current_name.as_str(),
                        ),
                    };
                    let pod = pod_for(&set, &template, revision_name, *ordinal, owner.reference());
                    let result = pods_api
                        .create(&PostParams::default(), &pod)
                        .await
                        .map(|_| ());
                    ("Create", pod.name_any(), result)
                }
                Step::Delete(pod_name) => {
                    let result = match pods_api.delete(pod_name, &DeleteParams::default()).await {
                        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
                        other => other.map(|_| ()),
                    };
                    ("Delete", pod_name.clone(), result)
                }
            };
            // Upstream's wording: `create Pod web-0 in StatefulSet web successful`.
            let (kind, reason, message) = match &result {
                Ok(()) => (
                    EventType::Normal,
                    format!("Successful{verb}"),
                    format!(
                        "{} Pod {pod_name} in StatefulSet {name} successful",
                        verb.to_lowercase()
                    ),
                ),
                Err(e) => (
                    EventType::Warning,
                    format!("Failed{verb}"),
                    format!(
                        "{} Pod {pod_name} in StatefulSet {name} failed error: {e}",
                        verb.to_lowercase()
                    ),
                ),
            };
            ctrl.ctx
                .events
                .publish(COMPONENT, &set_ref, kind, &reason, &message)
                .await;
            result.map_err(|e| {
                Error::api(
                    &object,
                    format!("{} pod {pod_name}", verb.to_lowercase()),
                    e,
                )
            })?;
        }
    }

    // Keep the revisions Pods run, and revisionHistoryLimit others.
    let mut live = vec![current_name.clone(), update_name.clone()];
    live.extend(
        ours.iter()
            .filter_map(|p| revision_of(p).map(str::to_string)),
    );
    let limit = spec.revision_history_limit.unwrap_or(10);
    crate::history::truncate(&revisions_api, &revisions, &live, limit).await?;

    if set.status.as_ref() != Some(&todo.status) {
        let mut updated = (*set).clone();
        updated.status = Some(todo.status.clone());
        Api::<StatefulSet>::namespaced(client, &namespace)
            .replace_status(&name, &PostParams::default(), &updated)
            .await?;
    }
    // Readiness after minReadySeconds comes with no event of its own.
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let waiting = min_ready > 0
        && ours
            .iter()
            .any(|p| is_pod_available(p, 0, now) && !is_pod_available(p, min_ready, now));
    Ok(if waiting {
        Action::requeue(Duration::from_secs(1))
    } else {
        Action::await_change()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        RollingUpdateStatefulSetStrategy, StatefulSetSpec, StatefulSetUpdateStrategy,
    };
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};

    fn set(replicas: i32, policy: &str, partition: Option<i32>) -> StatefulSet {
        StatefulSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                generation: Some(3),
                ..Default::default()
            },
            spec: StatefulSetSpec {
                replicas: Some(replicas),
                pod_management_policy: Some(policy.into()),
                service_name: Some("web".into()),
                selector: LabelSelector {
                    match_labels: Some([("app".to_string(), "web".to_string())].into()),
                    ..Default::default()
                },
                update_strategy: Some(StatefulSetUpdateStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: partition.map(|p| RollingUpdateStatefulSetStrategy {
                        partition: Some(p),
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            },
            status: None,
        }
    }

    /// Pod `web-N` at `revision`, ready or not.
    fn pod(ordinal: i32, revision: &str, ready: bool) -> Pod {
        let mut pod = pod_for(
            &set(1, "OrderedReady", None),
            &PodTemplateSpec::default(),
            revision,
            ordinal,
            OwnerReference::default(),
        );
        let since = Timestamp::now() - std::time::Duration::from_secs(60);
        pod.status = Some(PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                last_transition_time: Some(Time(since)),
                ..Default::default()
            }]),
            ..Default::default()
        });
        pod
    }

    fn steps(set: &StatefulSet, pods: &[Pod]) -> Vec<Step> {
        plan(set, pods, "web-old", "web-new", Timestamp::now()).steps
    }

    fn create(ordinal: i32) -> Step {
        Step::Create {
            ordinal,
            revision: Which::Update,
        }
    }

    #[test]
    fn names_are_the_set_and_an_ordinal() {
        assert_eq!(ordinal_of("web", "web-0"), Some(0));
        assert_eq!(ordinal_of("web", "web-12"), Some(12));
        for other in ["web", "web-", "web-x", "web-01", "webb-1", "web-1-2"] {
            assert_eq!(ordinal_of("web", other), None, "{other}");
        }
        let p = pod(2, "web-new", true);
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(p.name_any(), "web-2");
        assert_eq!(spec.hostname.as_deref(), Some("web-2"));
        assert_eq!(spec.subdomain.as_deref(), Some("web"));
        assert_eq!(p.labels()[POD_NAME_LABEL], "web-2");
        assert_eq!(p.labels()[POD_INDEX_LABEL], "2");
        assert_eq!(p.labels()[REVISION_HASH_LABEL], "web-new");
    }

    #[test]
    fn ordered_ready_creates_one_pod_after_the_other() {
        let s = set(3, "OrderedReady", None);
        assert_eq!(steps(&s, &[]), [create(0)]);
        assert_eq!(steps(&s, &[pod(0, "web-new", false)]), []);
        assert_eq!(steps(&s, &[pod(0, "web-new", true)]), [create(1)]);
    }

    #[test]
    fn parallel_creates_every_pod_at_once() {
        let s = set(3, "Parallel", None);
        assert_eq!(steps(&s, &[]), [create(0), create(1), create(2)]);
    }

    #[test]
    fn scaling_down_removes_the_highest_ordinal_first_and_waits() {
        let s = set(1, "OrderedReady", None);
        let pods = [
            pod(0, "web-new", true),
            pod(1, "web-new", true),
            pod(2, "web-new", true),
        ];
        assert_eq!(steps(&s, &pods), [Step::Delete("web-2".into())]);
        let mut going = pods.clone();
        going[2].metadata.deletion_timestamp = Some(Time(Timestamp::now()));
        assert_eq!(steps(&s, &going), [], "waits until web-2 is gone");
    }

    #[test]
    fn a_rolling_update_replaces_the_highest_old_pod_down_to_the_partition() {
        let s = set(3, "OrderedReady", Some(1));
        let old = [
            pod(0, "web-old", true),
            pod(1, "web-old", true),
            pod(2, "web-old", true),
        ];
        assert_eq!(steps(&s, &old), [Step::Delete("web-2".into())]);
        let mut after = old.clone();
        after[2] = pod(2, "web-new", true);
        assert_eq!(steps(&s, &after), [Step::Delete("web-1".into())]);
        after[1] = pod(1, "web-new", true);
        assert_eq!(steps(&s, &after), [], "web-0 is below the partition");
        // Recreated below the partition, a Pod keeps the old template.
        assert_eq!(
            steps(&s, &after[1..]),
            [Step::Create {
                ordinal: 0,
                revision: Which::Current
            }]
        );
    }

    #[test]
    fn status_counts_and_ends_the_rollout_when_all_are_updated() {
        let s = set(2, "OrderedReady", None);
        let pods = [pod(0, "web-new", true), pod(1, "web-old", false)];
        let status = plan(&s, &pods, "web-old", "web-new", Timestamp::now()).status;
        assert_eq!(status.replicas, 2);
        assert_eq!(status.ready_replicas, Some(1));
        assert_eq!(status.updated_replicas, Some(1));
        assert_eq!(status.current_replicas, Some(1));
        assert_eq!(status.current_revision.as_deref(), Some("web-old"));
        assert_eq!(status.observed_generation, Some(3));
        let done = [pod(0, "web-new", true), pod(1, "web-new", true)];
        let status = plan(&s, &done, "web-old", "web-new", Timestamp::now()).status;
        assert_eq!(status.current_revision.as_deref(), Some("web-new"));
        assert_eq!(status.current_replicas, Some(2));
    }

    #[test]
    fn a_failed_pod_is_replaced_under_its_name() {
        let s = set(1, "OrderedReady", None);
        let mut failed = pod(0, "web-new", false);
        failed.status.as_mut().unwrap().phase = Some("Failed".into());
        assert_eq!(steps(&s, &[failed]), [Step::Delete("web-0".into())]);
    }
}
