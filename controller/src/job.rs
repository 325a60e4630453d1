//! # Jobs: Pods that run to completion
//!
//! A Job says "run this Pod until it has succeeded `completions` times,
//! `parallelism` at a time", as upstream's `pkg/controller/job` does:
//!
//! - **Pods** are named `<job>-<5 characters>`, carry the labels the
//!   apiserver gave the template (`batch.kubernetes.io/job-name`, the Job's
//!   uid) and an ownerReference to the Job. A finished Pod stays, so
//!   `kubectl logs job/pi` still reads it.
//! - **How many run**: `parallelism`, but never more than the successes
//!   still missing. With no `completions`, the first success ends the Job
//!   once the others have stopped.
//! - **Failures**: a failed Pod (`restartPolicy: Never`) is replaced after a
//!   back-off of 10 s, doubling per failure up to 6 minutes; with
//!   `OnFailure` the kubelet restarts the container in place and the
//!   restarts count instead. More than `backoffLimit` failures fail the Job
//!   (`BackoffLimitExceeded`); so does running longer than
//!   `activeDeadlineSeconds` (`DeadlineExceeded`). A failing Job's running
//!   Pods are deleted.
//! - **The end**: conditions `SuccessCriteriaMet` and `Complete` (or
//!   `FailureTarget` and `Failed`), which `kubectl wait
//!   --for=condition=complete job/X` waits for, and `completionTime`.
//!   With `ttlSecondsAfterFinished`, the finished Job (and its Pods) is
//!   deleted that long after.
//! - **Suspended** (`spec.suspend: true`): no Pods run.
//!
//! As for DaemonSets, what to do is a pure function ([`plan`]) of the Job
//! and its Pods; [`reconcile`] carries it out, re-reading the Pods from the
//! apiserver before it creates any.
//!
//! - **Indexed** (`completionMode: Indexed`): each index from 0 to
//!   `completions - 1` must succeed once. A Pod carries its index in the
//!   annotation and label `batch.kubernetes.io/job-completion-index`, in
//!   `$JOB_COMPLETION_INDEX`, and in its name and hostname
//!   (`<job>-<index>-xxxxx`, hostname `<job>-<index>`); the lowest indexes
//!   missing go first; `status.completedIndexes` lists the done ones
//!   (`0-2,4`).
//!
//! Not yet: `podFailurePolicy`, `successPolicy`, `backoffLimitPerIndex`,
//! and the `job-tracking` finalizer (Pods are counted as they are; a Pod
//! deleted before it was counted is not).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, ListParams, PostParams, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};

use crate::events::EventType;
use crate::ownership::{controller_of, Owner};
use crate::podcontrol::PodControl;
use crate::replicaset::{is_pod_active, is_pod_available, pod_from_template};
use crate::{Context, Error, Result};

const COMPONENT: &str = "job-controller";

/// The first delay before a failed Pod is replaced; it doubles per failure.
const INITIAL_BACKOFF: Duration = Duration::from_secs(10);
/// The longest delay.
const MAX_BACKOFF: Duration = Duration::from_secs(360);

// ---------------------------------------------------------------------------
// What to do (pure)

/// The annotation and label with an Indexed Job Pod's index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// The variable an Indexed Job Pod reads its index from.
const COMPLETION_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

/// What one pass should do.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// New Pods to create: their completion index (Indexed Jobs), or None.
    pub create: Vec<Option<i32>>,
    /// Pods to delete, by name.
    pub delete: Vec<String>,
    pub status: JobStatus,
    /// The Job itself is to go (its `ttlSecondsAfterFinished` is over).
    pub delete_job: bool,
    /// Come back after this long (a back-off, a deadline, a TTL).
    pub requeue: Option<Duration>,
}

fn condition_true<'a>(status: &'a JobStatus, kind: &str) -> Option<&'a JobCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == kind && c.status == "True")
}

fn condition(kind: &str, reason: &str, message: &str, now: Timestamp) -> JobCondition {
    JobCondition {
        type_: kind.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// When a failed Pod's containers stopped (for the back-off clock).
fn finished_at(pod: &Pod) -> Option<Timestamp> {
    pod.status
        .as_ref()?
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max()
}

/// The delay before the next Pod after `failures` failures.
pub fn backoff(failures: i32) -> Duration {
    if failures <= 0 {
        return Duration::ZERO;
    }
    let doublings = (failures - 1).min(16) as u32;
    INITIAL_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

fn until(moment: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(moment.duration_since(now)).unwrap_or(Duration::ZERO)
}

/// What the Job's Pods (claimed, finished ones included) call for.
pub fn plan(job: &Job, pods: &[Pod], now: Timestamp) -> Plan {
    let spec = job.spec.clone().unwrap_or_default();
    let mut status = job.status.clone().unwrap_or_default();
    let mut plan = Plan::default();

    // Finished: only the TTL is left to watch.
    if let Some(done) =
        condition_true(&status, "Complete").or_else(|| condition_true(&status, "Failed"))
    {
        if let Some(ttl) = spec.ttl_seconds_after_finished {
            let finished = status
                .completion_time
                .as_ref()
                .or(done.last_transition_time.as_ref())
                .map_or(now, |t| t.0);
            let expires = finished + SignedDuration::from_secs(ttl.into());
            if now >= expires {
                plan.delete_job = true;
            } else {
                plan.requeue = Some(until(expires, now));
            }
        }
        plan.status = status;
        return plan;
    }

    let active: Vec<&Pod> = pods.iter().filter(|p| is_pod_active(p)).collect();
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let completions_wanted = spec.completions.unwrap_or(1);
    // Indexed: which indexes have succeeded (each counts once).
    let mut done_indexes: Vec<i32> = pods
        .iter()
        .filter(|p| phase(p) == "Succeeded")
        .filter_map(index_of)
        .filter(|i| (0..completions_wanted).contains(i))
        .collect();
    done_indexes.sort_unstable();
    done_indexes.dedup();
    let succeeded = if indexed {
        done_indexes.len() as i32
    } else {
        pods.iter().filter(|p| phase(p) == "Succeeded").count() as i32
    };
    if indexed {
        status.completed_indexes = Some(intervals(&done_indexes)).filter(|s| !s.is_empty());
    }
    let failed_pods: Vec<&Pod> = pods.iter().filter(|p| phase(p) == "Failed").collect();
    let failed = failed_pods.len() as i32;
    let on_failure = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        == Some("OnFailure");
    let restarts: i32 = active
        .iter()
        .flat_map(|p| {
            p.status
                .iter()
                .flat_map(|s| s.container_statuses.iter().flatten())
        })
        .map(|c| c.restart_count)
        .sum();
    let suspended = spec.suspend == Some(true);
    if status.start_time.is_none() && !suspended {
        status.start_time = Some(Time(now));
    }
    status.active = Some(active.len() as i32).filter(|n| *n > 0);
    status.succeeded = Some(succeeded).filter(|n| *n > 0);
    status.failed = Some(failed).filter(|n| *n > 0);
    status.ready = Some(
        active
            .iter()
            .filter(|p| is_pod_available(p, 0, now))
            .count() as i32,
    );
    status.terminating = Some(
        pods.iter()
            .filter(|p| {
                p.metadata.deletion_timestamp.is_some()
                    && !matches!(phase(p), "Succeeded" | "Failed")
            })
            .count() as i32,
    );

    // Failed: too many failures, or too long.
    let backoff_limit = spec.backoff_limit.unwrap_or(6);
    let past_deadline = match (spec.active_deadline_seconds, &status.start_time) {
        (Some(deadline), Some(start)) if !suspended => {
            let due = start.0 + SignedDuration::from_secs(deadline);
            if now >= due {
                true
            } else {
                plan.requeue = Some(until(due, now));
                false
            }
        }
        _ => false,
    };
    let past_backoff = failed > backoff_limit
        || (on_failure
            && if backoff_limit == 0 {
                restarts > 0
            } else {
                restarts >= backoff_limit
            });
    let failure = if past_deadline {
        Some((
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        ))
    } else if past_backoff {
        Some((
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        ))
    } else {
        None
    };
    if let Some((reason, message)) = failure {
        let conditions = status.conditions.get_or_insert_with(Vec::new);
        conditions.push(condition("FailureTarget", reason, message, now));
        conditions.push(condition("Failed", reason, message, now));
        plan.delete = active.iter().map(|p| p.name_any()).collect();
        plan.requeue = spec
            .ttl_seconds_after_finished
            .map(|ttl| Duration::from_secs(ttl as u64));
        plan.status = status;
        return plan;
    }

    // Complete: enough successes (or, without `completions`, one success
    // and nothing still running).
    let complete = match spec.completions {
        Some(completions) => succeeded >= completions,
        None => succeeded >= 1 && active.is_empty(),
    };
    if complete {
        let message = "Reached expected number of succeeded pods";
        let conditions = status.conditions.get_or_insert_with(Vec::new);
        conditions.push(condition(
            "SuccessCriteriaMet",
            "CompletionsReached",
            message,
            now,
        ));
        conditions.push(condition("Complete", "CompletionsReached", message, now));
        status.completion_time = Some(Time(now));
        plan.delete = active.iter().map(|p| p.name_any()).collect();
        plan.requeue = spec
            .ttl_seconds_after_finished
            .map(|ttl| Duration::from_secs(ttl as u64));
        plan.status = status;
        return plan;
    }

    // Running: as many Pods as wanted, a failed one replaced after its back-off.
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let mut wanted = match spec.completions {
        Some(completions) => parallelism.min(completions - succeeded),
        // Once one has succeeded, no new ones start.
        None if succeeded > 0 => 0,
        None => parallelism,
    };
    if suspended {
        wanted = 0;
    }
    let running = active.len() as i32;
    if running > wanted {
        let mut newest: Vec<&&Pod> = active.iter().collect();
        newest.sort_by(|a, b| {
            b.metadata
                .creation_timestamp
                .cmp(&a.metadata.creation_timestamp)
        });
        plan.delete = newest
            .iter()
            .take((running - wanted) as usize)
            .map(|p| p.name_any())
            .collect();
    } else if running < wanted {
        let last_failure = failed_pods.iter().filter_map(|p| finished_at(p)).max();
        let ready_at =
            last_failure.map(|t| t + SignedDuration::try_from(backoff(failed)).unwrap_or_default());
        match ready_at {
            Some(at) if at > now => {
                let wait = until(at, now);
                plan.requeue = Some(plan.requeue.map_or(wait, |r| r.min(wait)));
            }
            _ if indexed => {
                // The lowest indexes neither done nor running.
                let busy: Vec<i32> = active.iter().filter_map(|p| index_of(p)).collect();
                plan.create = (0..completions_wanted)
                    .filter(|i| !done_indexes.contains(i) && !busy.contains(i))
                    .take((wanted - running) as usize)
                    .map(Some)
                    .collect();
            }
            _ => plan.create = vec![None; (wanted - running) as usize],
        }
    }
    if suspended {
        let conditions = status.conditions.get_or_insert_with(Vec::new);
        if !conditions
            .iter()
            .any(|c| c.type_ == "Suspended" && c.status == "True")
        {
            conditions.retain(|c| c.type_ != "Suspended");
            conditions.push(condition("Suspended", "JobSuspended", "Job suspended", now));
        }
    }
    plan.status = status;
    plan
}

/// An Indexed Job Pod's index, from its annotation.
fn index_of(pod: &Pod) -> Option<i32> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(COMPLETION_INDEX)?
        .parse()
        .ok()
}

/// `0-2,4,6-7`: sorted indexes as upstream writes `completedIndexes`.
pub fn intervals(sorted: &[i32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// The Pod of an Indexed Job for `index`: named and labelled with it, its
/// hostname `<job>-<index>`, `$JOB_COMPLETION_INDEX` read from the
/// annotation.
fn indexed_pod(mut pod: Pod, job_name: &str, index: i32) -> Pod {
    let meta = &mut pod.metadata;
    meta.generate_name = Some(format!("{job_name}-{index}-"));
    meta.annotations
        .get_or_insert_with(Default::default)
        .insert(COMPLETION_INDEX.into(), index.to_string());
    meta.labels
        .get_or_insert_with(Default::default)
        .insert(COMPLETION_INDEX.into(), index.to_string());
    if let Some(spec) = pod.spec.as_mut() {
        spec.hostname = Some(format!("{job_name}-{index}"));
        let from_annotation = k8s_openapi::api::core::v1::EnvVar {
            name: COMPLETION_INDEX_ENV.into(),
            value_from: Some(k8s_openapi::api::core::v1::EnvVarSource {
                field_ref: Some(k8s_openapi::api::core::v1::ObjectFieldSelector {
                    field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        for container in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            let env = container.env.get_or_insert_with(Vec::new);
            if !env.iter().any(|e| e.name == COMPLETION_INDEX_ENV) {
                env.push(from_annotation.clone());
            }
        }
    }
    pod
}

// ---------------------------------------------------------------------------
// The loop

/// What the Job loop shares between reconciles.
pub struct JobController {
    ctx: Arc<Context>,
    pods: Store<Pod>,
}

/// Runs the Job loop: Jobs are the primary objects; a Pod change wakes
/// its Job.
pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let client = ctx.client.clone();
    let (pods, pod_events) = crate::watch_all::<Pod>(&client);
    let controller = Controller::new(Api::<Job>::all(client), watcher::Config::default());
    let state = Arc::new(JobController { ctx, pods });
    controller
        .watches_stream(pod_events, |pod| {
            controller_of(&pod.metadata)
                .filter(|owner| owner.kind == "Job")
                .map(|owner| {
                    ObjectRef::new(&owner.name).within(&pod.namespace().unwrap_or_default())
                })
        })
        .run(reconcile, error_policy, state)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "job loop");
            }
        })
        .await;
    Ok(())
}

/// A Job's finished Pods count too: any Pod not being deleted may be
/// adopted or released.
fn not_being_deleted(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
}

/// Conflicts mean the cache was behind: retry soon, quietly.
pub fn error_policy(job: Arc<Job>, error: &Error, _ctrl: Arc<JobController>) -> Action {
    let name = format!("{}/{}", job.namespace().unwrap_or_default(), job.name_any());
    crate::requeue_after_error(&format!("job {name}"), error)
}

/// Makes one Job's Pods match it (`syncJob`).
pub async fn reconcile(job: Arc<Job>, ctrl: Arc<JobController>) -> Result<Action> {
    crate::wait_for_cache(&ctrl.pods).await?;
    if job.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let namespace = job.namespace().unwrap_or_default();
    let name = job.name_any();
    let spec = job
        .spec
        .as_ref()
        .ok_or_else(|| Error::invalid(format!("job {namespace}/{name}"), "no spec"))?;
    let selector = spec
        .selector
        .as_ref()
        .map(api::selector::LabelSelector::from_k8s)
        .transpose()
        .map_err(|e| {
            Error::invalid(
                format!("job {namespace}/{name}"),
                format!("spec.selector: {e}"),
            )
        })?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::invalid(format!("job {namespace}/{name}"), "no selector"))?;
    let owner = Owner {
        api_version: "batch/v1",
        kind: "Job",
        name: name.clone(),
        uid: job.metadata.uid.clone().unwrap_or_default(),
        selector: selector.clone(),
        deleting: false,
    };
    let pods_api: Api<Pod> = Api::namespaced(ctrl.ctx.client.clone(), &namespace);
    let jobs_api: Api<Job> = Api::namespaced(ctrl.ctx.client.clone(), &namespace);
    let now = Timestamp::now();

    let cached: Vec<Pod> = ctrl
        .pods
        .state()
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(namespace.as_str()))
        .filter(|p| owner.may_claim(&p.metadata))
        .map(|p| (**p).clone())
        .collect();
    let mut todo = plan(
        &job,
        &owner.claim(&pods_api, cached, not_being_deleted).await?,
        now,
    );
    if !todo.create.is_empty() {
        // The cache says Pods are missing: count them at the apiserver.
        let fresh = pods_api
            .list(&ListParams::default().labels(&selector.to_string()))
            .await?
            .items;
        todo = plan(
            &job,
            &owner.claim(&pods_api, fresh, not_being_deleted).await?,
            now,
        );
    }
    if todo.delete_job {
        tracing::info!(job = %name, "ttlSecondsAfterFinished is over: deleting");
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Foreground),
            ..Default::default()
        };
        match jobs_api.delete(&name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        return Ok(Action::await_change());
    }
    let control = PodControl {
        api: pods_api.clone(),
        events: &ctrl.ctx.events,
        component: COMPONENT,
        owner: job.object_ref(&()),
    };
    for index in &todo.create {
        let pod = pod_from_template(&spec.template, &namespace, &name, owner.reference());
        let pod = match index {
            Some(index) => indexed_pod(pod, &name, *index),
            None => pod,
        };
        control.create(&pod).await?;
    }
    for victim in &todo.delete {
        control.delete(victim).await?;
    }
    let was_finished = ["Complete", "Failed"].iter().any(|k| {
        job.status
            .as_ref()
            .and_then(|s| condition_true(s, k))
            .is_some()
    });
    if job.status.as_ref() != Some(&todo.status) {
        if !was_finished {
            if condition_true(&todo.status, "Complete").is_some() {
                event(&ctrl, &job, EventType::Normal, "Completed", "Job completed").await;
            } else if let Some(c) = condition_true(&todo.status, "Failed") {
                let message = c.message.clone().unwrap_or_default();
                event(
                    &ctrl,
                    &job,
                    EventType::Warning,
                    c.reason.as_deref().unwrap_or("Failed"),
                    &message,
                )
                .await;
            }
        }
        let mut updated = (*job).clone();
        updated.status = Some(todo.status);
        jobs_api
            .replace_status(&name, &PostParams::default(), &updated)
            .await?;
    }
    Ok(match todo.requeue {
        Some(after) => Action::requeue(after.max(Duration::from_millis(100))),
        None => Action::await_change(),
    })
}

async fn event(ctrl: &JobController, job: &Job, kind: EventType, reason: &str, message: &str) {
    ctrl.ctx
        .events
        .publish(COMPONENT, &job.object_ref(&()), kind, reason, message)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2026-12-07T12:00:00Z".parse().unwrap()
    }

    fn job(spec: serde_json::Value, status: serde_json::Value) -> Job {
        let mut full = json!({
            "completions": 1, "parallelism": 1, "backoffLimit": 6,
            "selector": {"matchLabels": {"job-name": "pi"}},
            "template": {"metadata": {"labels": {"job-name": "pi"}},
                         "spec": {"restartPolicy": "Never", "containers": [{"name": "c"}]}}
        });
        for (k, v) in spec.as_object().unwrap() {
            if k == "restartPolicy" {
                full["template"]["spec"]["restartPolicy"] = v.clone();
            } else {
                full[k] = v.clone();
            }
        }
        serde_json::from_value(json!({
            "metadata": {"name": "pi", "namespace": "default"},
            "spec": full,
            "status": status,
        }))
        .unwrap()
    }

    /// A Pod of the Job in `phase`; a failed one finished at `finished`.
    fn pod(name: &str, phase: &str, extra: serde_json::Value) -> Pod {
        let mut pod = json!({
            "metadata": {"name": name, "namespace": "default", "labels": {"job-name": "pi"},
                         "creationTimestamp": "2026-12-07T11:59:00Z"},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": phase}
        });
        if let Some(finished) = extra.get("finished") {
            pod["status"]["containerStatuses"] = json!([{"name": "c", "image": "", "imageID": "",
                "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 1, "finishedAt": finished}}}]);
        }
        if let Some(restarts) = extra.get("restarts") {
            pod["status"]["containerStatuses"] = json!([{"name": "c", "image": "", "imageID": "",
                "ready": false, "restartCount": restarts}]);
        }
        serde_json::from_value(pod).unwrap()
    }

    fn conditions(plan: &Plan) -> Vec<(String, String)> {
        plan.status
            .conditions
            .iter()
            .flatten()
            .map(|c| (c.type_.clone(), c.reason.clone().unwrap_or_default()))
            .collect()
    }

    /// A Pod of an Indexed Job with its index.
    fn indexed(name: &str, phase: &str, index: i32) -> Pod {
        let mut p = pod(name, phase, json!({}));
        p.metadata.annotations = Some([(COMPLETION_INDEX.to_string(), index.to_string())].into());
        p
    }

    #[test]
    fn an_indexed_job_runs_the_lowest_missing_indexes_and_lists_the_done_ones() {
        let spec = json!({"completions": 5, "parallelism": 2, "completionMode": "Indexed"});
        let fresh = plan(&job(spec.clone(), json!({})), &[], now());
        assert_eq!(fresh.create, [Some(0), Some(1)]);
        let later = plan(
            &job(spec.clone(), json!({})),
            &[
                indexed("pi-0-a", "Succeeded", 0),
                indexed("pi-1-b", "Running", 1),
                indexed("pi-2-c", "Succeeded", 2),
                // A second success of index 2 counts once.
                indexed("pi-2-d", "Succeeded", 2),
            ],
            now(),
        );
        assert_eq!(later.create, [Some(3)]);
        assert_eq!(later.status.completed_indexes.as_deref(), Some("0,2"));
        assert_eq!(later.status.succeeded, Some(2));
        let done: Vec<Pod> = (0..5)
            .map(|i| indexed(&format!("pi-{i}"), "Succeeded", i))
            .collect();
        let finished = plan(&job(spec, json!({})), &done, now());
        assert_eq!(finished.status.completed_indexes.as_deref(), Some("0-4"));
        assert_eq!(conditions(&finished)[1].0, "Complete");
    }

    #[test]
    fn an_indexed_pod_knows_its_index() {
        let template = job(json!({}), json!({})).spec.unwrap().template;
        let pod = indexed_pod(
            pod_from_template(&template, "default", "pi", Default::default()),
            "pi",
            3,
        );
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("pi-3-"));
        assert_eq!(pod.annotations()[COMPLETION_INDEX], "3");
        assert_eq!(pod.labels()[COMPLETION_INDEX], "3");
        let spec = pod.spec.unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("pi-3"));
        let env = &spec.containers[0].env.as_ref().unwrap()[0];
        assert_eq!(env.name, "JOB_COMPLETION_INDEX");
        assert_eq!(
            env.value_from
                .as_ref()
                .unwrap()
                .field_ref
                .as_ref()
                .unwrap()
                .field_path,
            "metadata.annotations['batch.kubernetes.io/job-completion-index']"
        );
        assert_eq!(intervals(&[0, 1, 2, 4, 6, 7]), "0-2,4,6-7");
    }

    #[test]
    fn a_new_job_starts_as_many_pods_as_it_may() {
        let plan = plan(
            &job(json!({"completions": 5, "parallelism": 2}), json!({})),
            &[],
            now(),
        );
        assert_eq!(plan.create.len(), 2);
        assert!(plan.status.start_time.is_some());
        let one_left = super::plan(
            &job(json!({"completions": 3, "parallelism": 2}), json!({})),
            &[
                pod("a", "Succeeded", json!({})),
                pod("b", "Succeeded", json!({})),
            ],
            now(),
        );
        assert_eq!(
            one_left.create.len(),
            1,
            "never more than the successes missing"
        );
    }

    #[test]
    fn enough_successes_complete_the_job() {
        let plan = plan(
            &job(json!({"completions": 2, "parallelism": 2}), json!({})),
            &[
                pod("a", "Succeeded", json!({})),
                pod("b", "Succeeded", json!({})),
            ],
            now(),
        );
        assert_eq!(
            conditions(&plan),
            [
                ("SuccessCriteriaMet".into(), "CompletionsReached".into()),
                ("Complete".into(), "CompletionsReached".into())
            ]
        );
        assert_eq!(plan.status.succeeded, Some(2));
        assert!(plan.status.completion_time.is_some());
        assert_eq!(plan.create.len(), 0);
    }

    #[test]
    fn without_completions_one_success_ends_it_once_the_rest_stopped() {
        let spec = json!({"completions": null, "parallelism": 2});
        let running = plan(
            &job(spec.clone(), json!({})),
            &[
                pod("a", "Succeeded", json!({})),
                pod("b", "Running", json!({})),
            ],
            now(),
        );
        assert_eq!((running.create.len(), conditions(&running).len()), (0, 0));
        let done = plan(
            &job(spec, json!({})),
            &[pod("a", "Succeeded", json!({}))],
            now(),
        );
        assert_eq!(conditions(&done).last().unwrap().0, "Complete");
    }

    #[test]
    fn a_failed_pod_is_replaced_after_its_back_off() {
        let failed = |finished: &str| pod("a", "Failed", json!({"finished": finished}));
        let soon = plan(
            &job(json!({}), json!({})),
            &[failed("2026-12-07T11:59:55Z")],
            now(),
        );
        assert_eq!(soon.create.len(), 0);
        assert_eq!(soon.requeue, Some(Duration::from_secs(5)));
        let later = plan(
            &job(json!({}), json!({})),
            &[failed("2026-12-07T11:59:45Z")],
            now(),
        );
        assert_eq!(later.create.len(), 1);
        assert_eq!(later.status.failed, Some(1));
        assert_eq!(
            [backoff(1), backoff(2), backoff(3), backoff(7), backoff(20)],
            [10, 20, 40, 360, 360].map(Duration::from_secs)
        );
    }

    #[test]
    fn more_failures_than_the_backoff_limit_fail_the_job() {
        let pods = [
            pod("a", "Failed", json!({"finished": "2026-12-07T11:50:00Z"})),
            pod("b", "Failed", json!({"finished": "2026-12-07T11:51:00Z"})),
            pod("c", "Running", json!({})),
        ];
        let plan = plan(&job(json!({"backoffLimit": 1}), json!({})), &pods, now());
        assert_eq!(
            conditions(&plan),
            [
                ("FailureTarget".into(), "BackoffLimitExceeded".into()),
                ("Failed".into(), "BackoffLimitExceeded".into())
            ]
        );
        assert_eq!(plan.delete, ["c"]);
    }

    #[test]
    fn with_on_failure_container_restarts_count_as_failures() {
        let pods = [pod("a", "Running", json!({"restarts": 2}))];
        let plan = plan(
            &job(
                json!({"backoffLimit": 2, "restartPolicy": "OnFailure"}),
                json!({}),
            ),
            &pods,
            now(),
        );
        assert_eq!(conditions(&plan).last().unwrap().1, "BackoffLimitExceeded");
    }

    #[test]
    fn running_past_the_active_deadline_fails_the_job() {
        let started = json!({"startTime": "2026-12-07T11:59:00Z"});
        let plan = plan(
            &job(json!({"activeDeadlineSeconds": 30}), started.clone()),
            &[pod("a", "Running", json!({}))],
            now(),
        );
        assert_eq!(conditions(&plan).last().unwrap().1, "DeadlineExceeded");
        assert_eq!(plan.delete, ["a"]);
        let within = super::plan(
            &job(json!({"activeDeadlineSeconds": 90}), started),
            &[pod("a", "Running", json!({}))],
            now(),
        );
        assert_eq!(within.requeue, Some(Duration::from_secs(30)));
    }

    #[test]
    fn a_finished_job_goes_after_its_ttl() {
        let finished = json!({"completionTime": "2026-12-07T11:59:00Z",
            "conditions": [{"type": "Complete", "status": "True"}]});
        let gone = plan(
            &job(json!({"ttlSecondsAfterFinished": 30}), finished.clone()),
            &[],
            now(),
        );
        assert!(gone.delete_job);
        let kept = plan(
            &job(json!({"ttlSecondsAfterFinished": 100}), finished),
            &[],
            now(),
        );
        assert!(!kept.delete_job);
        assert_eq!(kept.requeue, Some(Duration::from_secs(40)));
    }

    #[test]
    fn a_suspended_job_runs_nothing() {
        let plan = plan(
            &job(json!({"suspend": true}), json!({})),
            &[pod("a", "Running", json!({}))],
            now(),
        );
        assert_eq!(plan.delete, ["a"]);
        assert_eq!(plan.create.len(), 0);
        assert_eq!(
            conditions(&plan),
            [("Suspended".into(), "JobSuspended".into())]
        );
    }
}
