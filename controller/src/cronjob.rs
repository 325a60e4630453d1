//! # CronJobs: a Job on a schedule
//!
//! A CronJob says "make a Job from this template at these times", as
//! upstream's `pkg/controller/cronjob` (v2) does:
//!
//! - **When**: the latest time of `spec.schedule` (in `spec.timeZone`)
//!   since the last one it acted on ([`api::cronjob::Schedule`]); a time
//!   older than `startingDeadlineSeconds` is missed, not run late.
//! - **The Job** is named `<cronjob>-<scheduled time in minutes since the
//!   epoch>`, so a second look at the same time finds it instead of making
//!   another, carries the `batch.kubernetes.io/cronjob-scheduled-timestamp`
//!   annotation and an ownerReference to the CronJob.
//! - **Overlap** (`concurrencyPolicy`): `Allow` runs Jobs side by side,
//!   `Forbid` skips a time while one still runs, `Replace` deletes the
//!   running one first.
//! - **History**: finished Jobs beyond `successfulJobsHistoryLimit` (3) and
//!   `failedJobsHistoryLimit` (1) are deleted, oldest first.
//! - **Status**: `active` (references to running Jobs), `lastScheduleTime`,
//!   `lastSuccessfulTime`: what `kubectl get cronjobs` shows.
//! - `suspend: true` starts nothing new.
//!
//! The decision is a pure function ([`plan`]) of the CronJob, its Jobs and
//! the time; [`reconcile`] carries it out and comes back at the next
//! scheduled time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{DeleteParams, PostParams, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};

use crate::events::EventType;
use crate::ownership::controller_of;
use crate::{Context, Error, Result};

const COMPONENT: &str = "cronjob-controller";

/// The annotation of a Job naming the time it was scheduled for.
pub const SCHEDULED_TIMESTAMP_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// More missed times than this are not counted (upstream's limit too).
const MISSED_LIMIT: usize = 100;

// ---------------------------------------------------------------------------
// What to do (pure)

/// What one pass should do.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Make the Job of this scheduled time.
    pub create: Option<DateTime<Utc>>,
    /// Jobs to delete (history, or `Replace`), by name.
    pub delete: Vec<String>,
    pub status: CronJobStatus,
    /// Come back then (the next scheduled time).
    pub requeue: Option<Duration>,
}

fn to_utc(time: &Time) -> DateTime<Utc> {
    DateTime::from_timestamp(time.0.as_second(), time.0.subsec_nanosecond() as u32)
        .unwrap_or_default()
}

fn to_time(t: DateTime<Utc>) -> Time {
    Time(
        k8s_openapi::jiff::Timestamp::from_second(t.timestamp())
            .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
    )
}

/// The name of the Job of one scheduled time (`getJobName`).
pub fn job_name(cronjob: &str, scheduled: DateTime<Utc>) -> String {
    format!("{cronjob}-{}", scheduled.timestamp() / 60)
}

/// `Complete` or `Failed`, when the Job has finished.
fn finished(job: &Job) -> Option<&str> {
    job.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| c.type_.as_str())
}

fn reference(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        ..Default::default()
    }
}

/// What the CronJob and its Jobs call for at `now`.
pub fn plan(
    cronjob: &CronJob,
    jobs: &[Job],
    now: DateTime<Utc>,
) -> Result<Plan, api::cronjob::ScheduleError> {
    let spec = cronjob.spec.clone();
    let schedule = api::cronjob::Schedule::parse(&spec.schedule, spec.time_zone.as_deref())?;
    let name = cronjob.name_any();
    let mut status = cronjob.status.clone().unwrap_or_default();
    let mut plan = Plan::default();

    let (done, running): (Vec<&Job>, Vec<&Job>) = jobs.iter().partition(|j| finished(j).is_some());
    let running: Vec<&Job> = running
        .into_iter()
        .filter(|j| j.metadata.deletion_timestamp.is_none())
        .collect();
    status.active =
        Some(running.iter().map(|j| reference(j)).collect()).filter(|a: &Vec<_>| !a.is_empty());
    if let Some(latest) = done
        .iter()
        .filter(|j| finished(j) == Some("Complete"))
        .filter_map(|j| j.status.as_ref()?.completion_time.clone())
        .max_by_key(|t| t.0)
    {
        if status
            .last_successful_time
            .as_ref()
            .is_none_or(|t| t.0 < latest.0)
        {
            status.last_successful_time = Some(latest);
        }
    }

    // History: the oldest finished Jobs beyond the limits go.
    for (kind, limit) in [
        ("Complete", spec.successful_jobs_history_limit.unwrap_or(3)),
        ("Failed", spec.failed_jobs_history_limit.unwrap_or(1)),
    ] {
        let mut these: Vec<&&Job> = done.iter().filter(|j| finished(j) == Some(kind)).collect();
        these.sort_by_key(|j| j.metadata.creation_timestamp.as_ref().map(|t| t.0));
        let excess = these.len().saturating_sub(limit.max(0) as usize);
        plan.delete
            .extend(these[..excess].iter().map(|j| j.name_any()));
    }

    let next = schedule.next_after(now);
    plan.requeue =
        next.map(|n| (n - now).to_std().unwrap_or_default() + Duration::from_millis(100));
    if spec.suspend == Some(true) {
        plan.status = status;
        return Ok(plan);
    }
    let since = status
        .last_schedule_time
        .as_ref()
        .or(cronjob.metadata.creation_timestamp.as_ref())
        .map_or(now, to_utc);
    let (latest, _missed) = schedule.most_recent(since, now, MISSED_LIMIT);
    if let Some(scheduled) = latest {
        let too_late = spec
            .starting_deadline_seconds
            .is_some_and(|deadline| scheduled + chrono::Duration::seconds(deadline) < now);
        let exists = jobs
            .iter()
            .any(|j| j.name_any() == job_name(&name, scheduled));
        let policy = spec.concurrency_policy.as_deref().unwrap_or("Allow");
        if exists {
            status.last_schedule_time = Some(to_time(scheduled));
        } else if too_late || (policy == "Forbid" && !running.is_empty()) {
            // Missed (or not allowed now): nothing to make for this time.
        } else {
            if policy == "Replace" {
                plan.delete.extend(running.iter().map(|j| j.name_any()));
            }
            plan.create = Some(scheduled);
            status.last_schedule_time = Some(to_time(scheduled));
        }
    }
    plan.status = status;
    Ok(plan)
}

/// The Job a CronJob makes for `scheduled` (`getJobFromTemplate2`).
pub fn job_for(cronjob: &CronJob, scheduled: DateTime<Utc>) -> Job {
    let spec = cronjob.spec.clone();
    let template = spec.job_template;
    let template_meta = template.metadata.unwrap_or_default();
    let zone: chrono_tz::Tz = spec
        .time_zone
        .as_deref()
        .and_then(|z| z.parse().ok())
        .unwrap_or(chrono_tz::UTC);
    let mut annotations: BTreeMap<String, String> = template_meta.annotations.unwrap_or_default();
    annotations.insert(
        SCHEDULED_TIMESTAMP_ANNOTATION.into(),
        scheduled
            .with_timezone(&zone)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(&cronjob.name_any(), scheduled)),
            namespace: cronjob.metadata.namespace.clone(),
            labels: template_meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                    api_version: "batch/v1".into(),
                    kind: "CronJob".into(),
                    name: cronjob.name_any(),
                    uid: cronjob.metadata.uid.clone().unwrap_or_default(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                },
            ]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

// ---------------------------------------------------------------------------
// The loop

/// What the CronJob loop shares between reconciles.
pub struct CronJobController {
    ctx: Arc<Context>,
    jobs: Store<Job>,
}

/// Runs the CronJob loop: a Job change wakes the CronJob that owns it.
pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let client = ctx.client.clone();
    let (jobs, job_events) = crate::watch_all::<Job>(&client);
    let controller = Controller::new(Api::<CronJob>::all(client), watcher::Config::default());
    let state = Arc::new(CronJobController { ctx, jobs });
    controller
        .watches_stream(job_events, |job| {
            controller_of(&job.metadata)
                .filter(|owner| owner.kind == "CronJob")
                .map(|owner| {
                    ObjectRef::new(&owner.name).within(&job.namespace().unwrap_or_default())
                })
        })
        .run(reconcile, error_policy, state)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "cronjob loop");
            }
        })
        .await;
    Ok(())
}

/// Conflicts mean the cache was behind: retry soon, quietly.
pub fn error_policy(cronjob: Arc<CronJob>, error: &Error, _ctrl: Arc<CronJobController>) -> Action {
    let name = format!(
        "{}/{}",
        cronjob.namespace().unwrap_or_default(),
        cronjob.name_any()
    );
    crate::requeue_after_error(&format!("cronjob {name}"), error)
}

/// Acts on one CronJob at the current time (`syncCronJob`).
pub async fn reconcile(cronjob: Arc<CronJob>, ctrl: Arc<CronJobController>) -> Result<Action> {
    crate::wait_for_cache(&ctrl.jobs).await?;
    if cronjob.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let namespace = cronjob.namespace().unwrap_or_default();
    let name = cronjob.name_any();
    let uid = cronjob.metadata.uid.clone().unwrap_or_default();
    let jobs: Vec<Job> = ctrl
        .jobs
        .state()
        .iter()
        .filter(|j| j.metadata.namespace.as_deref() == Some(namespace.as_str()))
        .filter(|j| controller_of(&j.metadata).is_some_and(|o| o.uid == uid))
        .map(|j| (**j).clone())
        .collect();
    let todo = plan(&cronjob, &jobs, Utc::now()).map_err(|e| {
        Error::invalid(
            format!("cronjob {namespace}/{name}"),
            format!("spec.schedule: {e}"),
        )
    })?;
    let jobs_api: Api<Job> = Api::namespaced(ctrl.ctx.client.clone(), &namespace);
    let background = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    for victim in &todo.delete {
        match jobs_api.delete(victim, &background).await {
            Ok(_) => {
                event(
                    &ctrl,
                    &cronjob,
                    EventType::Normal,
                    "SuccessfulDelete",
                    &format!("Deleted job {victim}"),
                )
                .await
            }
            Err(kube::Error::Api(s)) if s.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(scheduled) = todo.create {
        let job = job_for(&cronjob, scheduled);
        let job_name = job.name_any();
        match jobs_api.create(&PostParams::default(), &job).await {
            Ok(_) => {
                event(
                    &ctrl,
                    &cronjob,
                    EventType::Normal,
                    "SuccessfulCreate",
                    &format!("Created job {job_name}"),
                )
                .await
            }
            // Made before (a restart, a lagging cache): done.
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => {
                event(
                    &ctrl,
                    &cronjob,
                    EventType::Warning,
                    "FailedCreate",
                    &format!("Error creating job: {e}"),
                )
                .await;
                return Err(e.into());
            }
        }
    }
    if cronjob.status.as_ref() != Some(&todo.status) {
        let mut updated = (*cronjob).clone();
        updated.status = Some(todo.status);
        Api::<CronJob>::namespaced(ctrl.ctx.client.clone(), &namespace)
            .replace_status(&name, &PostParams::default(), &updated)
            .await?;
    }
    Ok(match todo.requeue {
        Some(after) => Action::requeue(after),
        None => Action::await_change(),
    })
}

async fn event(
    ctrl: &CronJobController,
    cronjob: &CronJob,
    kind: EventType,
    reason: &str,
    message: &str,
) {
    ctrl.ctx
        .events
        .publish(COMPONENT, &cronjob.object_ref(&()), kind, reason, message)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn cronjob(spec: serde_json::Value, status: serde_json::Value) -> CronJob {
        let mut full = json!({
            "schedule": "*/5 * * * *",
            "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox"}]}}}}
        });
        for (k, v) in spec.as_object().unwrap() {
            full[k] = v.clone();
        }
        serde_json::from_value(json!({
            "metadata": {"name": "tick", "namespace": "default", "uid": "cj-1",
                         "creationTimestamp": "2026-12-07T11:58:00Z"},
            "spec": full,
            "status": status,
        }))
        .unwrap()
    }

    fn job(name: &str, finished: Option<&str>, created: &str) -> Job {
        let conditions = match finished {
            Some(kind) => json!([{"type": kind, "status": "True"}]),
            None => json!([]),
        };
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": created},
            "status": {"conditions": conditions, "completionTime": created}
        }))
        .unwrap()
    }

    #[test]
    fn a_due_time_makes_the_job_of_that_time() {
        let plan = plan(
            &cronjob(json!({}), json!({})),
            &[],
            at("2026-12-07T12:01:00Z"),
        )
        .unwrap();
        assert_eq!(plan.create, Some(at("2026-12-07T12:00:00Z")));
        assert_eq!(
            job_name("tick", at("2026-12-07T12:00:00Z")),
            "tick-29944080"
        );
        assert_eq!(
            plan.status.last_schedule_time.map(|t| t.0.as_second()),
            Some(1796644800)
        );
        assert_eq!(plan.requeue, Some(Duration::from_millis(240_100)));
    }

    #[test]
    fn a_time_already_made_is_not_made_again() {
        let jobs = [job("tick-29944080", None, "2026-12-07T12:00:00Z")];
        let plan = plan(
            &cronjob(json!({}), json!({})),
            &jobs,
            at("2026-12-07T12:01:00Z"),
        )
        .unwrap();
        assert_eq!(plan.create, None);
        assert_eq!(plan.status.active.map(|a| a.len()), Some(1));
    }

    #[test]
    fn forbid_skips_while_one_runs_and_replace_replaces_it() {
        let jobs = [job("tick-29944075", None, "2026-12-07T11:55:00Z")];
        let now = at("2026-12-07T12:01:00Z");
        let status = json!({"lastScheduleTime": "2026-12-07T11:55:00Z"});
        let forbid = plan(
            &cronjob(json!({"concurrencyPolicy": "Forbid"}), status.clone()),
            &jobs,
            now,
        )
        .unwrap();
        assert_eq!((forbid.create, forbid.delete.len()), (None, 0));
        let replace = plan(
            &cronjob(json!({"concurrencyPolicy": "Replace"}), status),
            &jobs,
            now,
        )
        .unwrap();
        assert_eq!(replace.create, Some(at("2026-12-07T12:00:00Z")));
        assert_eq!(replace.delete, ["tick-29944075"]);
    }

    #[test]
    fn a_time_past_its_starting_deadline_is_missed() {
        let plan = plan(
            &cronjob(json!({"startingDeadlineSeconds": 30}), json!({})),
            &[],
            at("2026-12-07T12:01:00Z"),
        )
        .unwrap();
        assert_eq!(plan.create, None);
    }

    #[test]
    fn history_keeps_the_newest_finished_jobs() {
        let jobs = [
            job("a", Some("Complete"), "2026-12-07T11:00:00Z"),
            job("b", Some("Complete"), "2026-12-07T11:05:00Z"),
            job("c", Some("Failed"), "2026-12-07T11:10:00Z"),
            job("d", Some("Failed"), "2026-12-07T11:15:00Z"),
        ];
        let plan = plan(
            &cronjob(
                json!({"suspend": true, "successfulJobsHistoryLimit": 1}),
                json!({}),
            ),
            &jobs,
            at("2026-12-07T12:01:00Z"),
        )
        .unwrap();
        assert_eq!(plan.delete, ["a", "c"]);
        assert_eq!(plan.create, None, "suspended");
        assert_eq!(
            plan.status.last_successful_time.map(|t| t.0.as_second()),
            Some(at("2026-12-07T11:05:00Z").timestamp())
        );
    }

    #[test]
    fn the_job_carries_its_time_and_owner() {
        let job = job_for(
            &cronjob(json!({"timeZone": "Europe/Paris"}), json!({})),
            at("2026-12-07T12:00:00Z"),
        );
        assert_eq!(job.metadata.name.as_deref(), Some("tick-29944080"));
        assert_eq!(
            job.metadata.annotations.unwrap()[SCHEDULED_TIMESTAMP_ANNOTATION],
            "2026-12-07T13:00:00+01:00"
        );
        let owner = &job.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("CronJob", "cj-1")
        );
    }
}
