//! Lease validation (`coordination.k8s.io`).
//!
//! Node agents renew a Lease every few seconds as their heartbeat, and the
//! node lifecycle controller reads it to decide whether a node is alive; a
//! Lease that lasts zero seconds or has a negative transition count would
//! make that decision meaningless.

use serde_json::Value;

use super::{render, NEGATIVE_MSG};
use crate::status::FieldError;

/// `ValidateLeaseSpec`.
pub(crate) fn validate(lease: &Value, errs: &mut Vec<FieldError>) {
    let spec = &lease["spec"];
    if let Some(duration) = spec.get("leaseDurationSeconds").filter(|d| !d.is_null()) {
        if duration.as_i64().unwrap_or(0) <= 0 {
            errs.push(FieldError::invalid(
                "spec.leaseDurationSeconds",
                render(Some(duration)),
                "must be greater than 0",
            ));
        }
    }
    if let Some(transitions) = spec.get("leaseTransitions").filter(|t| !t.is_null()) {
        if transitions.as_i64().unwrap_or(0) < 0 {
            errs.push(FieldError::invalid(
                "spec.leaseTransitions",
                render(Some(transitions)),
                NEGATIVE_MSG,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn leases_last_a_positive_time() {
        let mut errs = Vec::new();
        validate(
            &json!({ "spec": { "holderIdentity": "worker1", "leaseDurationSeconds": 40 } }),
            &mut errs,
        );
        assert!(errs.is_empty());
        validate(
            &json!({ "spec": { "leaseDurationSeconds": 0, "leaseTransitions": -1 } }),
            &mut errs,
        );
        assert_eq!(
            errs.iter().map(FieldError::message).collect::<Vec<_>>(),
            vec![
                "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
                "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0",
            ]
        );
    }
}
