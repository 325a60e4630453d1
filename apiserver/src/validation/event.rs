//! Event validation.
//!
//! An Event lives in the namespace of the object it is about, so that
//! `kubectl describe pod` (which lists the Events of the Pod's namespace)
//! finds it. Events about cluster-scoped objects such as Nodes go to
//! `default`.

use serde_json::Value;

use super::{quote, str_field};
use crate::status::FieldError;

/// `ValidateEventCreate`/`Update` for `v1` Events: the namespace rule.
pub(crate) fn validate(event: &Value, errs: &mut Vec<FieldError>) {
    let namespace = str_field(&event["metadata"], "namespace");
    let involved = str_field(&event["involvedObject"], "namespace");
    let new_style = event.get("eventTime").is_some_and(|t| !t.is_null());
    let matches = if involved.is_empty() {
        if new_style {
            matches!(namespace, "default" | "kube-system")
        } else {
            matches!(namespace, "" | "default")
        }
    } else {
        new_style || involved == namespace
    };
    if !matches {
        errs.push(FieldError::invalid(
            "involvedObject.namespace",
            quote(involved),
            "does not match event.namespace",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_live_in_the_namespace_of_their_object() {
        let mut errs = Vec::new();
        validate(
            &json!({ "metadata": { "namespace": "default" }, "involvedObject": { "kind": "Pod", "namespace": "default" } }),
            &mut errs,
        );
        validate(
            &json!({ "metadata": { "namespace": "default" }, "involvedObject": { "kind": "Node", "name": "worker1" } }),
            &mut errs,
        );
        assert!(errs.is_empty());
        validate(
            &json!({ "metadata": { "namespace": "default" }, "involvedObject": { "kind": "Pod", "namespace": "lab" } }),
            &mut errs,
        );
        assert_eq!(
            errs.iter().map(FieldError::message).collect::<Vec<_>>(),
            vec![
                "involvedObject.namespace: Invalid value: \"lab\": does not match event.namespace"
            ]
        );
    }
}
