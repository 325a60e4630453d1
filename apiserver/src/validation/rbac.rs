//! RBAC validation (`rbac.authorization.k8s.io`): rules that can match
//! something, and bindings that name a real kind of role and subject
//! (upstream's `pkg/apis/rbac/validation`).
//!
//! A binding's `roleRef` cannot change: who was granted what would then
//! change under everyone who reviewed the binding. Delete and recreate it.

use serde_json::Value;

use super::render;
use crate::status::{quoted, FieldError};

const GROUP: &str = "rbac.authorization.k8s.io";

fn non_empty(value: &Value, field: &str) -> bool {
    value
        .get(field)
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

/// `ValidatePolicyRule`, for each rule of a Role (`namespaced`) or
/// ClusterRole.
pub(crate) fn validate_role(role: &Value, namespaced: bool, errs: &mut Vec<FieldError>) {
    for (i, rule) in role
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let path = format!("rules[{i}]");
        if !non_empty(rule, "verbs") {
            errs.push(FieldError::required(
                format!("{path}.verbs"),
                "verbs must contain at least one value",
            ));
        }
        if non_empty(rule, "nonResourceURLs") {
            if namespaced {
                errs.push(FieldError::invalid(
                    format!("{path}.nonResourceURLs"),
                    render(rule.get("nonResourceURLs")),
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if non_empty(rule, "apiGroups") || non_empty(rule, "resources") {
                errs.push(FieldError::invalid(
                    format!("{path}.nonResourceURLs"),
                    render(rule.get("nonResourceURLs")),
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if !non_empty(rule, "apiGroups") {
            errs.push(FieldError::required(
                format!("{path}.apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if !non_empty(rule, "resources") {
            errs.push(FieldError::required(
                format!("{path}.resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
}

/// `ValidateRoleBinding` / `ValidateClusterRoleBinding`, and on update
/// that `roleRef` stays.
pub(crate) fn validate_binding(
    binding: &Value,
    old: Option<&Value>,
    namespaced: bool,
    errs: &mut Vec<FieldError>,
) {
    let role_ref = &binding["roleRef"];
    let api_group = role_ref["apiGroup"].as_str().unwrap_or_default();
    if api_group != GROUP {
        errs.push(FieldError::not_supported(
            "roleRef.apiGroup",
            api_group,
            &[GROUP],
        ));
    }
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    let kind = role_ref["kind"].as_str().unwrap_or_default();
    if !kinds.contains(&kind) {
        errs.push(FieldError::not_supported(
            "roleRef.kind",
            quoted(kind),
            kinds,
        ));
    }
    if role_ref["name"].as_str().unwrap_or_default().is_empty() {
        errs.push(FieldError::required("roleRef.name", ""));
    }
    if let Some(old) = old {
        if old.get("roleRef") != binding.get("roleRef") {
            errs.push(FieldError::invalid(
                "roleRef",
                render(binding.get("roleRef")),
                "cannot change roleRef",
            ));
        }
    }
    for (i, subject) in binding
        .get("subjects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let path = format!("subjects[{i}]");
        if subject["name"].as_str().unwrap_or_default().is_empty() {
            errs.push(FieldError::required(format!("{path}.name"), ""));
        }
        let group = subject["apiGroup"].as_str().unwrap_or_default();
        match subject["kind"].as_str().unwrap_or_default() {
            "ServiceAccount" => {
                if !group.is_empty() {
                    errs.push(FieldError::not_supported(
                        format!("{path}.apiGroup"),
                        quoted(group),
                        &[""],
                    ));
                }
                if !namespaced && subject["namespace"].as_str().unwrap_or_default().is_empty() {
                    errs.push(FieldError::required(format!("{path}.namespace"), ""));
                }
            }
            "User" | "Group" => {
                if group != GROUP {
                    errs.push(FieldError::not_supported(
                        format!("{path}.apiGroup"),
                        quoted(group),
                        &[GROUP],
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                format!("{path}.kind"),
                quoted(other),
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn messages(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(FieldError::message).collect()
    }

    #[test]
    fn rules_must_be_able_to_match() {
        let mut errs = vec![];
        validate_role(
            &json!({"rules": [
                {"apiGroups": [""], "resources": ["pods"]},
                {"verbs": ["get"], "nonResourceURLs": ["/healthz"]},
                {"verbs": ["get"]},
            ]}),
            true,
            &mut errs,
        );
        assert_eq!(
            messages(&errs),
            [
                "rules[0].verbs: Required value: verbs must contain at least one value",
                "rules[1].nonResourceURLs: Invalid value: [\"/healthz\"]: namespaced rules cannot apply to non-resource URLs",
                "rules[2].apiGroups: Required value: resource rules must supply at least one api group",
                "rules[2].resources: Required value: resource rules must supply at least one resource",
            ]
        );
    }

    #[test]
    fn bindings_name_real_roles_and_subjects() {
        let binding = json!({
            "roleRef": {"apiGroup": GROUP, "kind": "Role", "name": "r"},
            "subjects": [{"kind": "ServiceAccount", "name": "default"},
                         {"kind": "Robot", "name": "x"}],
        });
        let mut errs = vec![];
        validate_binding(&binding, None, false, &mut errs);
        assert_eq!(
            messages(&errs),
            [
                "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\"",
                "subjects[0].namespace: Required value",
                "subjects[1].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"",
            ]
        );
        let mut errs = vec![];
        let mut changed = binding.clone();
        changed["roleRef"]["name"] = json!("other");
        validate_binding(&changed, Some(&binding), true, &mut errs);
        assert!(messages(&errs)
            .iter()
            .any(|m| m.starts_with("roleRef: Invalid value: ")
                && m.ends_with("cannot change roleRef")));
    }
}
