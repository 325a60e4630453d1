//! A Job and a CronJob (kubectl's `JobDescriber`, `CronJobDescriber`).

use super::*;

/// An integer field, or `<unset>`.
fn int_or_unset(object: &Value, pointer: &str) -> String {
    at(object, pointer)
        .as_i64()
        .map_or("<unset>".to_string(), |n| n.to_string())
}

pub fn describe_job(job: &Value, events: &[Value], now: DateTime<Utc>) -> String {
    let mut w = Page::default();
    w.name_and_namespace(job);
    w.write(
        0,
        &format!("Selector:\t{}\n", label_selector(at(job, "/spec/selector"))),
    );
    w.labels("", "Labels", &string_map(job, "/metadata/labels"));
    w.annotations("Annotations", &string_map(job, "/metadata/annotations"));
    if let Some(owner) = controlled_by(job) {
        w.write(0, &format!("Controlled By:\t{owner}\n"));
    }
    if let Some(n) = at(job, "/spec/parallelism").as_i64() {
        w.write(0, &format!("Parallelism:\t{n}\n"));
    }
    w.write(
        0,
        &format!("Completions:\t{}\n", int_or_unset(job, "/spec/completions")),
    );
    let mode = str_at(job, "/spec/completionMode");
    if !mode.is_empty() {
        w.write(0, &format!("Completion Mode:\t{mode}\n"));
    }
    if let Some(suspend) = at(job, "/spec/suspend").as_bool() {
        w.write(0, &format!("Suspend:\t{suspend}\n"));
    }
    if let Some(n) = at(job, "/spec/backoffLimit").as_i64() {
        w.write(0, &format!("Backoff Limit:\t{n}\n"));
    }
    if let Some(n) = at(job, "/spec/ttlSecondsAfterFinished").as_i64() {
        w.write(0, &format!("TTL Seconds After Finished:\t{n}\n"));
    }
    let start = str_at(job, "/status/startTime");
    let end = str_at(job, "/status/completionTime");
    if !start.is_empty() {
        w.write(0, &format!("Start Time:\t{}\n", rfc1123z(start)));
    }
    if !end.is_empty() {
        w.write(0, &format!("Completed At:\t{}\n", rfc1123z(end)));
    }
    if let (Ok(start), Ok(end)) = (
        DateTime::parse_from_rfc3339(start),
        DateTime::parse_from_rfc3339(end),
    ) {
        let took = api::table::format_age(end.signed_duration_since(start));
        w.write(0, &format!("Duration:\t{took}\n"));
    }
    if let Some(n) = at(job, "/spec/activeDeadlineSeconds").as_i64() {
        w.write(0, &format!("Active Deadline Seconds:\t{n}s\n"));
    }
    let (active, succeeded, failed) = (
        int_at(job, "/status/active"),
        int_at(job, "/status/succeeded"),
        int_at(job, "/status/failed"),
    );
    match at(job, "/status/ready").as_i64() {
        Some(ready) => w.write(
            0,
            &format!(
                "Pods Statuses:\t{active} Active ({ready} Ready) / {succeeded} Succeeded / {failed} Failed\n"
            ),
        ),
        None => w.write(
            0,
            &format!("Pods Statuses:\t{active} Active / {succeeded} Succeeded / {failed} Failed\n"),
        ),
    }
    if mode == "Indexed" {
        let indexes = str_at(job, "/status/completedIndexes");
        w.write(
            0,
            &format!("Completed Indexes:\t{}\n", cap_indexes(indexes, 50)),
        );
    }
    pod_template(&mut w, at(job, "/spec/template"));
    w.events(events, now);
    w.finish()
}

/// A long `completedIndexes` cut after the first comma past `limit`.
fn cap_indexes(indexes: &str, limit: usize) -> String {
    if indexes.is_empty() {
        return "<none>".to_string();
    }
    match indexes.get(limit..).and_then(|rest| rest.find(',')) {
        Some(comma) => format!("{}...", &indexes[..limit + comma + 1]),
        None => indexes.to_string(),
    }
}

pub fn describe_cron_job(cron: &Value, events: &[Value], now: DateTime<Utc>) -> String {
    let mut w = Page::default();
    w.name_and_namespace(cron);
    w.labels("", "Labels", &string_map(cron, "/metadata/labels"));
    w.annotations("Annotations", &string_map(cron, "/metadata/annotations"));
    w.write(
        0,
        &format!("Schedule:\t{}\n", str_at(cron, "/spec/schedule")),
    );
    w.write(
        0,
        &format!(
            "Concurrency Policy:\t{}\n",
            str_at(cron, "/spec/concurrencyPolicy")
        ),
    );
    let suspend = at(cron, "/spec/suspend")
        .as_bool()
        .map_or("<unset>".to_string(), |b| {
            if b { "True" } else { "False" }.to_string()
        });
    w.write(0, &format!("Suspend:\t{suspend}\n"));
    w.write(
        0,
        &format!(
            "Successful Job History Limit:\t{}\n",
            int_or_unset(cron, "/spec/successfulJobsHistoryLimit")
        ),
    );
    w.write(
        0,
        &format!(
            "Failed Job History Limit:\t{}\n",
            int_or_unset(cron, "/spec/failedJobsHistoryLimit")
        ),
    );
    let deadline = at(cron, "/spec/startingDeadlineSeconds")
        .as_i64()
        .map_or("<unset>".to_string(), |n| format!("{n}s"));
    w.write(0, &format!("Starting Deadline Seconds:\t{deadline}\n"));
    let template = at(cron, "/spec/jobTemplate");
    let selector = at(template, "/spec/selector");
    let selector = if selector.is_null() {
        "<unset>".to_string()
    } else {
        label_selector(selector)
    };
    w.write(0, &format!("Selector:\t{selector}\n"));
    w.write(
        0,
        &format!(
            "Parallelism:\t{}\n",
            int_or_unset(template, "/spec/parallelism")
        ),
    );
    w.write(
        0,
        &format!(
            "Completions:\t{}\n",
            int_or_unset(template, "/spec/completions")
        ),
    );
    if let Some(n) = at(template, "/spec/activeDeadlineSeconds").as_i64() {
        w.write(0, &format!("Active Deadline Seconds:\t{n}s\n"));
    }
    pod_template(&mut w, at(template, "/spec/template"));
    let last = str_at(cron, "/status/lastScheduleTime");
    let last = if last.is_empty() {
        "<unset>".to_string()
    } else {
        rfc1123z(last)
    };
    w.write(0, &format!("Last Schedule Time:\t{last}\n"));
    let active: Vec<&str> = list_at(cron, "/status/active")
        .iter()
        .map(|j| str_at(j, "/name"))
        .collect();
    let active = if active.is_empty() {
        "<none>".to_string()
    } else {
        active.join(", ")
    };
    w.write(0, &format!("Active Jobs:\t{active}\n"));
    w.events(events, now);
    w.finish()
}
