//! What kube-apiserver does to a Job when it is created (the job
//! strategy's `PrepareForCreate`): unless the user asked to choose the
//! selector (`spec.manualSelector: true`), the Job gets labels of its own
//! and a selector of them, so that two Jobs with the same template never
//! claim each other's Pods:
//!
//! ```text
//! spec.selector.matchLabels:  batch.kubernetes.io/controller-uid: <the Job's uid>
//! spec.template.metadata.labels: batch.kubernetes.io/controller-uid, batch.kubernetes.io/job-name,
//!                                controller-uid, job-name   (the last two: the older names)
//! ```

use serde_json::{json, Value};

/// The label of a Job's Pods naming the Job's uid.
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
/// The label of a Job's Pods naming the Job.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

/// Gives a new Job (its uid already assigned) its generated selector and
/// template labels.
pub fn generate_selector(job: &mut Value) {
    if job["spec"]["manualSelector"] == true {
        return;
    }
    let uid = job["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let name = job["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if !job["spec"]["template"]["metadata"]["labels"].is_object() {
        job["spec"]["template"]["metadata"]["labels"] = json!({});
    }
    let labels = &mut job["spec"]["template"]["metadata"]["labels"];
    labels[CONTROLLER_UID_LABEL] = json!(uid);
    labels[JOB_NAME_LABEL] = json!(name);
    labels["controller-uid"] = json!(uid);
    labels["job-name"] = json!(name);
    if job["spec"]["selector"].is_null() {
        job["spec"]["selector"] = json!({"matchLabels": {CONTROLLER_UID_LABEL: uid}});
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_selects_its_own_pods_by_uid() {
        let mut job = json!({
            "metadata": {"name": "pi", "uid": "u1"},
            "spec": {"template": {"metadata": {"labels": {"app": "pi"}}}}
        });
        generate_selector(&mut job);
        assert_eq!(
            job["spec"]["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}})
        );
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"],
            json!({"app": "pi", "batch.kubernetes.io/controller-uid": "u1",
                   "batch.kubernetes.io/job-name": "pi", "controller-uid": "u1", "job-name": "pi"})
        );
    }

    #[test]
    fn a_manual_selector_is_left_alone() {
        let mut job = json!({"metadata": {"name": "pi", "uid": "u1"},
                             "spec": {"manualSelector": true, "selector": {"matchLabels": {"a": "b"}}}});
        let before = job.clone();
        generate_selector(&mut job);
        assert_eq!(job, before);
    }
}
