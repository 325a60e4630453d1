//! Validation of the cluster-scoped objects: Namespaces and Nodes.
//!
//! A Node's pod CIDR is where the node agent's bridge takes Pod addresses
//! from and what other nodes route to it; once assigned it may not move,
//! or Pods already running there would be unreachable.

use serde_json::Value;

use super::meta::{validate_finalizer_name, validate_label_key};
use super::{child, index, list, quote, str_field, validate_cidr};
use crate::status::FieldError;

const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];

/// `ValidateNamespace`: metadata (checked already) and finalizer names.
pub(crate) fn validate_namespace(ns: &Value, errs: &mut Vec<FieldError>) {
    for finalizer in list(&ns["spec"], "finalizers") {
        // (sic: upstream reports these without an index)
        validate_finalizer_name(finalizer.as_str().unwrap_or(""), "spec.finalizers", errs);
    }
}

/// `ValidateNode` and `ValidateNodeUpdate`.
pub(crate) fn validate_node(node: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let spec = &node["spec"];
    for (i, taint) in list(spec, "taints").iter().enumerate() {
        // (sic: upstream reports taints under `metadata`)
        let path = index("metadata.taints", i);
        validate_label_key(str_field(taint, "key"), &child(&path, "key"), errs);
        let value = str_field(taint, "value");
        let problems = api::names::is_valid_label_value(value);
        if !problems.is_empty() {
            errs.push(FieldError::invalid(
                child(&path, "value"),
                quote(value),
                problems.join(";"),
            ));
        }
        let effect = str_field(taint, "effect");
        if effect.is_empty() {
            errs.push(FieldError::required(child(&path, "effect"), ""));
        } else if !TAINT_EFFECTS.contains(&effect) {
            errs.push(FieldError::not_supported(
                child(&path, "effect"),
                quote(effect),
                TAINT_EFFECTS,
            ));
        }
    }

    let cidrs = pod_cidrs(spec);
    for (i, cidr) in cidrs.iter().enumerate() {
        validate_cidr(cidr, &index("spec.podCIDRs", i), errs);
    }
    if cidrs.len() > 1 {
        let v6 = cidrs.iter().filter(|c| c.contains(':')).count();
        if cidrs.len() > 2 || v6 != 1 {
            errs.push(FieldError::invalid(
                "spec.podCIDRs",
                super::render(spec.get("podCIDRs")),
                "may specify no more than one CIDR for each IP family",
            ));
        }
    }

    if let Some(old) = old {
        let old_cidrs = pod_cidrs(&old["spec"]);
        // Assigning a CIDR to a node without one is how IPAM works; moving
        // an assigned one is not allowed.
        if !old_cidrs.is_empty() && old_cidrs != cidrs {
            errs.push(FieldError::forbidden(
                "spec.podCIDRs",
                "node updates may not change podCIDR except from \"\" to valid",
            ));
        }
        let old_provider = str_field(&old["spec"], "providerID");
        if !old_provider.is_empty() && old_provider != str_field(spec, "providerID") {
            errs.push(FieldError::forbidden(
                "spec.providerID",
                "node updates may not change providerID except from \"\" to valid",
            ));
        }
    }
}

/// `podCIDRs`, or the older single `podCIDR` when only that is set.
fn pod_cidrs(spec: &Value) -> Vec<String> {
    let cidrs: Vec<String> = list(spec, "podCIDRs")
        .iter()
        .map(|c| c.as_str().unwrap_or("").to_string())
        .collect();
    if cidrs.is_empty() && !str_field(spec, "podCIDR").is_empty() {
        return vec![str_field(spec, "podCIDR").to_string()];
    }
    cidrs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node_messages(node: Value, old: Option<Value>) -> Vec<String> {
        let mut errs = Vec::new();
        validate_node(&node, old.as_ref(), &mut errs);
        errs.iter().map(FieldError::message).collect()
    }

    #[test]
    fn a_pod_cidr_can_be_assigned_once() {
        let bare = json!({ "spec": {} });
        let assigned =
            json!({ "spec": { "podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"] } });
        assert!(node_messages(assigned.clone(), Some(bare)).is_empty());
        let moved =
            json!({ "spec": { "podCIDR": "10.244.2.0/24", "podCIDRs": ["10.244.2.0/24"] } });
        assert_eq!(
            node_messages(moved, Some(assigned)),
            vec!["spec.podCIDRs: Forbidden: node updates may not change podCIDR except from \"\" to valid"]
        );
    }

    #[test]
    fn pod_cidrs_are_cidrs_and_taints_have_effects() {
        assert_eq!(
            node_messages(json!({ "spec": { "podCIDRs": ["10.244.1.0"],
                "taints": [{ "key": "node.kubernetes.io/not-ready", "effect": "Sometimes" }] } }), None),
            vec![
                "metadata.taints[0].effect: Unsupported value: \"Sometimes\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"",
                "spec.podCIDRs[0]: Invalid value: \"10.244.1.0\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            ]
        );
    }

    #[test]
    fn namespace_finalizers_are_checked() {
        let mut errs = Vec::new();
        validate_namespace(
            &json!({ "spec": { "finalizers": ["kubernetes", "cleanup"] } }),
            &mut errs,
        );
        assert_eq!(
            errs.iter().map(FieldError::message).collect::<Vec<_>>(),
            vec!["spec.finalizers: Invalid value: \"cleanup\": name is neither a standard finalizer name nor is it fully qualified"]
        );
    }
}
