//! Jobs: STATUS (Running, Complete, Failed, Suspended...), COMPLETIONS as
//! succeeded over wanted (`1/1`, or `0/1 of 3` when any one success of 3
//! parallel Pods will do) and DURATION from start to completion, or to now
//! while it runs.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::age::{format_age, since};
use super::apps::format_label_selector;
use super::{
    container_cells, int, text, timestamp, Column, Printer, AGE, CONTAINERS, IMAGES, NAME,
};

pub(super) const JOBS: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Status", "Status of the job."),
        Column::string(
            "Completions",
            "The desired number of successfully finished pods the job should be run with.",
        ),
        Column::string("Duration", "Time required to complete the job."),
        AGE,
        CONTAINERS,
        IMAGES,
        Column::string(
            "Selector",
            "A label query over pods that should match the pod count.",
        )
        .wide(),
    ],
    cells: job_cells,
    conditions: None,
};

pub(super) const CRONJOBS: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Schedule", "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
        Column::string("Timezone", "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones."),
        Column::string("Suspend", "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false."),
        Column::integer("Active", "A list of pointers to currently running jobs."),
        Column::string("Last Schedule", "Information when was the last time the job was successfully scheduled."),
        AGE,
        CONTAINERS,
        IMAGES,
        Column::string("Selector", "A label query over pods that should match the pod count.").wide(),
    ],
    cells: cronjob_cells,
    conditions: None,
};

fn cronjob_cells(cronjob: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let job_template = &cronjob["spec"]["jobTemplate"];
    let (containers, images) = container_cells(&job_template["spec"]["template"]);
    let last = match timestamp(cronjob, "/status/lastScheduleTime") {
        Some(t) => since(Some(t), now),
        None => "<none>".to_string(),
    };
    vec![
        json!(text(cronjob, "/metadata/name")),
        json!(text(cronjob, "/spec/schedule")),
        json!(cronjob["spec"]["timeZone"].as_str().unwrap_or("<none>")),
        json!(if cronjob["spec"]["suspend"] == true {
            "True"
        } else {
            "False"
        }),
        json!(cronjob["status"]["active"].as_array().map_or(0, Vec::len)),
        json!(last),
        json!(since(
            timestamp(cronjob, "/metadata/creationTimestamp"),
            now
        )),
        json!(containers),
        json!(images),
        json!(format_label_selector(
            job_template.pointer("/spec/selector")
        )),
    ]
}

/// Whether the Job has the condition `kind` with status True.
fn has_condition(job: &Value, kind: &str) -> bool {
    job["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == kind && c["status"] == "True"))
}

/// The STATUS column, in upstream's order of precedence.
fn status(job: &Value) -> &'static str {
    if has_condition(job, "Suspended") {
        "Suspended"
    } else if has_condition(job, "Complete") {
        "Complete"
    } else if has_condition(job, "Failed") {
        "Failed"
    } else if !job["metadata"]["deletionTimestamp"].is_null() {
        "Terminating"
    } else if has_condition(job, "FailureTarget") {
        "FailureTarget"
    } else if has_condition(job, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    }
}

fn job_cells(job: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (containers, images) = container_cells(&job["spec"]["template"]);
    let succeeded = int(job, "/status/succeeded");
    let completions = match job["spec"]["completions"].as_i64() {
        Some(completions) => format!("{succeeded}/{completions}"),
        None => format!(
            "{succeeded}/1 of {}",
            job["spec"]["parallelism"].as_i64().unwrap_or(1)
        ),
    };
    let duration = match (
        timestamp(job, "/status/startTime"),
        timestamp(job, "/status/completionTime"),
    ) {
        (None, _) => String::new(),
        (Some(start), None) => since(Some(start), now),
        (Some(start), Some(end)) => format_age(end - start),
    };
    vec![
        json!(text(job, "/metadata/name")),
        json!(status(job)),
        json!(completions),
        json!(duration),
        json!(since(timestamp(job, "/metadata/creationTimestamp"), now)),
        json!(containers),
        json!(images),
        json!(format_label_selector(job.pointer("/spec/selector"))),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_job_shows_its_completions_and_how_long_it_took() {
        let now: DateTime<Utc> = "2026-12-07T12:00:00Z".parse().unwrap();
        let job = json!({
            "metadata": {"name": "pi", "creationTimestamp": "2026-12-07T11:59:00Z"},
            "spec": {"completions": 1, "parallelism": 1,
                     "template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}}},
            "status": {"succeeded": 1, "startTime": "2026-12-07T11:59:00Z",
                       "completionTime": "2026-12-07T11:59:07Z",
                       "conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                                      {"type": "Complete", "status": "True"}]}
        });
        let cells = job_cells(&job, now);
        assert_eq!(
            cells[..5],
            [
                json!("pi"),
                json!("Complete"),
                json!("1/1"),
                json!("7s"),
                json!("60s")
            ]
        );
    }

    #[test]
    fn a_running_job_without_completions_counts_one_of_its_parallelism() {
        let now: DateTime<Utc> = "2026-12-07T12:00:00Z".parse().unwrap();
        let job = json!({
            "metadata": {"name": "work"},
            "spec": {"parallelism": 3},
            "status": {"startTime": "2026-12-07T11:59:30Z"}
        });
        let cells = job_cells(&job, now);
        assert_eq!(
            cells[1..4],
            [json!("Running"), json!("0/1 of 3"), json!("30s")]
        );
    }
}
