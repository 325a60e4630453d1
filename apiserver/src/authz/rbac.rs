//! RBAC: roles say what may be done, bindings say who may do it.
//!
//! A *Role* (in a namespace) or *ClusterRole* (everywhere) is a list of
//! rules: `verbs` on `resources` of `apiGroups` (optionally only the
//! objects named in `resourceNames`), or, for a ClusterRole, `verbs` on
//! `nonResourceURLs` (`/healthz`, `/apis/*`). A *RoleBinding* grants a role
//! to subjects (users, groups, ServiceAccounts) in its namespace; a
//! *ClusterRoleBinding* grants a ClusterRole everywhere. Nothing is ever
//! denied: a request is allowed when some rule of some role bound to the
//! caller matches it (kube-apiserver's `RBACAuthorizer`, and
//! `rbac/validation.go` for the matching).
//!
//! The roles and bindings are read from the store's snapshot on every
//! request: the objects are in memory, so this is a walk over a few
//! hundred small JSON objects.

use serde_json::Value;

use api::user::UserInfo;

use super::Attributes;
use crate::storage::{ObjectKey, Snapshot};

fn resource(plural: &str) -> &'static api::resources::ResourceType {
    api::resources::by_plural(GROUP, "v1", plural).expect("RBAC resources are in the table")
}

/// The RBAC API group.
pub const GROUP: &str = "rbac.authorization.k8s.io";

fn strings<'a>(value: &'a Value, field: &str) -> impl Iterator<Item = &'a str> {
    value
        .get(field)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

fn has(value: &Value, field: &str, wanted: &str) -> bool {
    strings(value, field).any(|s| s == "*" || s == wanted)
}

/// Whether one rule (a JSON `PolicyRule`) allows `attributes`.
pub fn rule_allows(rule: &Value, attributes: &Attributes) -> bool {
    match attributes {
        Attributes::Resource {
            verb,
            group,
            resource,
            subresource,
            name,
            ..
        } => {
            if !has(rule, "verbs", verb) || !has(rule, "apiGroups", group) {
                return false;
            }
            let combined = if subresource.is_empty() {
                resource.clone()
            } else {
                format!("{resource}/{subresource}")
            };
            let resource_matches = strings(rule, "resources").any(|r| {
                r == "*"
                    || r == combined
                    || (!subresource.is_empty() && r.strip_prefix("*/") == Some(subresource))
            });
            let mut names = strings(rule, "resourceNames").peekable();
            let name_matches = names.peek().is_none() || names.any(|n| n == name);
            resource_matches && name_matches
        }
        Attributes::NonResource { verb, path } => {
            has(rule, "verbs", verb)
                && strings(rule, "nonResourceURLs").any(|url| {
                    url == "*"
                        || url == path
                        || url
                            .strip_suffix('*')
                            .is_some_and(|prefix| path.starts_with(prefix))
                })
        }
    }
}

/// Whether a binding's subject (JSON `Subject`) is `user`. A
/// ServiceAccount subject without a namespace means the binding's.
pub fn subject_matches(subject: &Value, user: &UserInfo, binding_namespace: &str) -> bool {
    let name = subject
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match subject.get("kind").and_then(Value::as_str) {
        Some("User") => user.username == name,
        Some("Group") => user.in_group(name),
        Some("ServiceAccount") => {
            let namespace = subject
                .get("namespace")
                .and_then(Value::as_str)
                .filter(|ns| !ns.is_empty())
                .unwrap_or(binding_namespace);
            user.username == format!("system:serviceaccount:{namespace}:{name}")
        }
        _ => false,
    }
}

fn binds(binding: &Value, user: &UserInfo, namespace: &str) -> bool {
    binding
        .get("subjects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|s| subject_matches(s, user, namespace))
}

/// The role a binding names (`roleRef`), looked up in `snapshot`: a
/// ClusterRole, or a Role of the binding's namespace.
fn role_of(
    snapshot: &Snapshot<'_>,
    binding: &Value,
    namespace: &str,
) -> Option<std::sync::Arc<Value>> {
    let role_ref = binding.get("roleRef")?;
    let name = role_ref.get("name")?.as_str()?;
    match role_ref.get("kind")?.as_str()? {
        "ClusterRole" => snapshot.get(&ObjectKey::new(resource("clusterroles"), None, name)),
        "Role" if !namespace.is_empty() => {
            snapshot.get(&ObjectKey::new(resource("roles"), Some(namespace), name))
        }
        _ => None,
    }
}

fn role_allows(role: &Value, attributes: &Attributes) -> bool {
    role.get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|rule| rule_allows(rule, attributes))
}

/// Whether RBAC allows `user` to do `attributes`.
pub fn allows(snapshot: &Snapshot<'_>, user: &UserInfo, attributes: &Attributes) -> bool {
    for (_, binding) in snapshot.list(resource("clusterrolebindings"), None, None) {
        if binds(binding, user, "")
            && role_of(snapshot, binding, "").is_some_and(|role| role_allows(&role, attributes))
        {
            return true;
        }
    }
    let namespace = match attributes {
        Attributes::Resource { namespace, .. } if !namespace.is_empty() => namespace,
        _ => return false,
    };
    for (_, binding) in snapshot.list(resource("rolebindings"), Some(namespace), None) {
        if binds(binding, user, namespace)
            && role_of(snapshot, binding, namespace)
                .is_some_and(|role| role_allows(&role, attributes))
        {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::tests::resource;
    use serde_json::json;

    #[test]
    fn rules_match_as_upstream() {
        let rule =
            json!({"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]});
        assert!(rule_allows(
            &rule,
            &resource("list", "", "pods", "", "default", "")
        ));
        assert!(rule_allows(
            &rule,
            &resource("get", "", "pods", "log", "default", "p")
        ));
        assert!(!rule_allows(
            &rule,
            &resource("get", "", "pods", "exec", "default", "p")
        ));
        assert!(!rule_allows(
            &rule,
            &resource("delete", "", "pods", "", "default", "p")
        ));
        assert!(!rule_allows(
            &rule,
            &resource("list", "apps", "pods", "", "default", "")
        ));
        let any_status = json!({"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["*"]});
        assert!(rule_allows(
            &any_status,
            &resource("patch", "apps", "deployments", "status", "default", "d")
        ));
        assert!(!rule_allows(
            &any_status,
            &resource("patch", "apps", "deployments", "", "default", "d")
        ));
        let named = json!({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["cluster-info"]});
        assert!(rule_allows(
            &named,
            &resource("get", "", "configmaps", "", "default", "cluster-info")
        ));
        assert!(!rule_allows(
            &named,
            &resource("get", "", "configmaps", "", "default", "other")
        ));
        let urls = json!({"nonResourceURLs": ["/healthz", "/apis/*"], "verbs": ["get"]});
        let path = |p: &str| Attributes::NonResource {
            verb: "get".into(),
            path: p.into(),
        };
        assert!(rule_allows(&urls, &path("/healthz")));
        assert!(rule_allows(&urls, &path("/apis/apps/v1")));
        assert!(!rule_allows(&urls, &path("/metrics")));
        // A resource rule says nothing about paths, and the reverse.
        assert!(!rule_allows(&rule, &path("/healthz")));
        assert!(!rule_allows(
            &urls,
            &resource("get", "", "pods", "", "default", "")
        ));
    }

    #[test]
    fn subjects() {
        let jane = UserInfo::authenticated("jane", &["dev".into()]);
        assert!(subject_matches(
            &json!({"kind": "User", "name": "jane"}),
            &jane,
            ""
        ));
        assert!(subject_matches(
            &json!({"kind": "Group", "name": "dev"}),
            &jane,
            ""
        ));
        assert!(subject_matches(
            &json!({"kind": "Group", "name": "system:authenticated"}),
            &jane,
            ""
        ));
        assert!(!subject_matches(
            &json!({"kind": "User", "name": "joe"}),
            &jane,
            ""
        ));
        let sa = UserInfo::authenticated("system:serviceaccount:web:default", &[]);
        let subject = json!({"kind": "ServiceAccount", "name": "default"});
        assert!(subject_matches(&subject, &sa, "web"));
        assert!(!subject_matches(&subject, &sa, "default"));
        assert!(subject_matches(
            &json!({"kind": "ServiceAccount", "name": "default", "namespace": "web"}),
            &sa,
            ""
        ));
    }
}
