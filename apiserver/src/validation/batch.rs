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
    validate_selector_update(obj, old, errs);
}
