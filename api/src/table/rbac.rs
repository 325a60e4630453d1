//! RoleBindings and ClusterRoleBindings: `kubectl get rolebindings`.
//!
//! ROLE says which role is granted (`ClusterRole/view`); `-o wide` adds to
//! whom: users, groups and ServiceAccounts (`namespace/name`). Roles and
//! ClusterRoles have no printer of their own upstream: the default NAME,
//! CREATED AT.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::age::since;
use super::{text, timestamp, Column, Printer, AGE, NAME};

pub(super) const BINDINGS: Printer = Printer {
    columns: &[
        NAME,
        Column::string(
            "Role",
            "RoleRef is the reference to the role the binding grants.",
        ),
        AGE,
        Column::string("Users", "Users in the binding.").wide(),
        Column::string("Groups", "Groups in the binding.").wide(),
        Column::string("ServiceAccounts", "ServiceAccounts in the binding.").wide(),
    ],
    cells: binding_cells,
    conditions: None,
};

fn binding_cells(binding: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let subjects = |kind: &str| -> String {
        binding
            .pointer("/subjects")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|s| s["kind"] == kind)
            .map(|s| {
                let name = s["name"].as_str().unwrap_or_default();
                match (kind, s["namespace"].as_str()) {
                    ("ServiceAccount", Some(ns)) => format!("{ns}/{name}"),
                    _ => name.to_string(),
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        json!(text(binding, "/metadata/name")),
        json!(format!(
            "{}/{}",
            text(binding, "/roleRef/kind"),
            text(binding, "/roleRef/name")
        )),
        json!(since(
            timestamp(binding, "/metadata/creationTimestamp"),
            now
        )),
        json!(subjects("User")),
        json!(subjects("Group")),
        json!(subjects("ServiceAccount")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binding_names_its_role_and_subjects() {
        let now: DateTime<Utc> = "2026-12-07T10:00:00Z".parse().unwrap();
        let binding = json!({
            "metadata": {"name": "read-pods", "namespace": "default",
                         "creationTimestamp": "2026-12-07T09:00:00Z"},
            "roleRef": {"kind": "ClusterRole", "name": "view", "apiGroup": "rbac.authorization.k8s.io"},
            "subjects": [{"kind": "User", "name": "jane"},
                         {"kind": "Group", "name": "dev"},
                         {"kind": "ServiceAccount", "name": "default", "namespace": "web"}],
        });
        assert_eq!(
            binding_cells(&binding, now),
            [
                json!("read-pods"),
                json!("ClusterRole/view"),
                json!("60m"),
                json!("jane"),
                json!("dev"),
                json!("web/default")
            ]
        );
    }
}
