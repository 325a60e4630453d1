//! Job validation (`ValidateJob`): a selector that matches the template,
//! a valid pod template whose Pods end (`restartPolicy` OnFailure or
//! Never: a Job waits for its Pods to finish), and counts that are not
//! negative.

use serde_json::Value;

use super::apps::{selector_matches, validate_selector_update};
use super::meta::validate_label_selector;
use super::pod::validate_pod_template;
use super::{quote, render, str_field, validate_nonnegative};
use crate::status::FieldError;

/// `ValidateCronJob`: a schedule that parses, a known time zone, a valid
/// concurrency policy, and a job template whose Pods end.
pub(crate) fn validate_cronjob(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = &obj["spec"];
    let schedule = str_field(spec, "schedule");
    let zone = spec["timeZone"].as_str();
    if schedule.is_empty() {
        errs.push(FieldError::required("spec.schedule", ""));
    } else {
        match api::cronjob::Schedule::parse(schedule, zone) {
            Ok(_) => {}
            Err(api::cronjob::ScheduleError::TimeZone(name)) => errs.push(FieldError::invalid(
                "spec.timeZone",
                quote(&name),
                format!("unknown time zone {name}"),
            )),
            Err(other) => errs.push(FieldError::invalid(
                "spec.schedule",
                quote(schedule),
                other.to_string(),
            )),
        }
    }
    let policy = str_field(spec, "concurrencyPolicy");
    if !matches!(policy, "Allow" | "Forbid" | "Replace") {
        errs.push(FieldError::not_supported(
            "spec.concurrencyPolicy",
            quote(policy),
            &["Allow", "Forbid", "Replace"],
        ));
    }
    for field in [
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
    ] {
        validate_nonnegative(spec, field, "spec", errs);
    }
    let template = &spec["jobTemplate"]["spec"]["template"];
    validate_pod_template(template, "spec.jobTemplate.spec.template", errs);
    let restart_policy = str_field(&template["spec"], "restartPolicy");
    if !matches!(restart_policy, "OnFailure" | "Never") {
        errs.push(FieldError::not_supported(
            "spec.jobTemplate.spec.template.spec.restartPolicy",
            quote(restart_policy),
            &["OnFailure", "Never"],
        ));
    }
}

pub(crate) fn validate_job(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let spec = &obj["spec"];
    let selector = spec.get("selector").filter(|s| !s.is_null());
    match selector {
        None => errs.push(FieldError::required("spec.selector", "")),
        Some(sel) => validate_label_selector(sel, "spec.selector", errs),
    }
    let labels = spec["template"]["metadata"]
        .get("labels")
        .filter(|l| !l.is_null());
    if selector.is_some() && selector_matches(selector, labels) == Ok(false) {
        errs.push(FieldError::invalid(
            "spec.template.metadata.labels",
            render(labels),
            "`selector` does not match template `labels`",
        ));
    }
    validate_pod_template(&spec["template"], "spec.template", errs);
    let restart_policy = str_field(&spec["template"]["spec"], "restartPolicy");
    if !matches!(restart_policy, "OnFailure" | "Never") {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            quote(restart_policy),
            &["OnFailure", "Never"],
        ));
    }
    for field in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ] {
        validate_nonnegative(spec, field, "spec", errs);
    }
    match str_field(spec, "completionMode") {
        "" | "NonIndexed" => {}
        "Indexed" => {
            if spec.get("completions").is_none_or(Value::is_null) {
                errs.push(FieldError::required(
                    "spec.completions",
                    "when completion mode is Indexed",
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            "spec.completionMode",
            quote(other),
            &["NonIndexed", "Indexed"],
        )),
    }
    validate_selector_update(obj, old, errs);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cronjob(schedule: &str, zone: Option<&str>) -> Value {
        json!({"spec": {
            "schedule": schedule, "timeZone": zone, "concurrencyPolicy": "Allow",
            "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never", "dnsPolicy": "ClusterFirst",
                "containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                                "terminationMessagePolicy": "File", "terminationMessagePath": "/dev/termination-log"}]}}}}
        }})
    }

    fn fields(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(|e| e.field.clone()).collect()
    }

    #[test]
    fn a_cronjob_needs_a_schedule_that_parses_in_a_known_zone() {
        let mut errs = Vec::new();
        validate_cronjob(&cronjob("*/1 * * * *", Some("Europe/Paris")), &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
        validate_cronjob(&cronjob("every minute", None), &mut errs);
        assert_eq!(fields(&errs), ["spec.schedule"]);
        errs.clear();
        validate_cronjob(&cronjob("@hourly", Some("Mars/Olympus")), &mut errs);
        assert_eq!(fields(&errs), ["spec.timeZone"]);
        assert_eq!(errs[0].detail, "unknown time zone Mars/Olympus");
    }
}
