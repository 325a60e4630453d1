//! The Node authorizer: what a node agent may do because it is a node.
//!
//! A node agent authenticates as `system:node:<name>` in `system:nodes`
//! (its certificate says so). Every node agent needs the same things -
//! register and report on its Node, renew its Lease, follow the Pods,
//! Services and EndpointSlices, report Pod statuses - so those come from a
//! fixed list of rules ([`policy::node_rules`](super::policy::node_rules),
//! upstream's `system:node` role), not from a binding an administrator
//! could forget.
//!
//! A node must not read every Secret of the cluster, though: a stolen
//! worker would hand out every password. So ConfigMaps, Secrets and
//! ServiceAccount tokens go by the *graph* of what runs where: a node may
//! read a Secret only when a Pod bound to it (`spec.nodeName`) names that
//! Secret, one object at a time (`get`, or a `list`/`watch` with
//! `fieldSelector=metadata.name=<name>`, which is how the agent follows
//! it). Upstream keeps that graph in memory, updated by informers, so a
//! check is a lookup; kube-lite walks the namespace's Pods of the node in
//! the store's snapshot instead - the same answer, at classroom scale
//! cheap, and the whole rule reads in one function ([`referenced`]).
//! Which Node, Lease and Pod statuses a node may change is
//! NodeRestriction's business (admission, after this).

use std::sync::LazyLock;

use api::user::UserInfo;
use k8s_openapi::api::core::v1::PodSpec;
use serde::Deserialize;

use super::policy::node_rules;
use super::rbac::rule_allows;
use super::{Attributes, Decision};
use crate::storage::Snapshot;

/// The rules every node has, built once.
static NODE_RULES: LazyLock<Vec<serde_json::Value>> = LazyLock::new(node_rules);

/// What the Node authorizer says about `user` doing `attributes`.
pub fn authorize(snapshot: &Snapshot<'_>, user: &UserInfo, attributes: &Attributes) -> Decision {
    let Some(node) = user.node_name() else {
        return Decision::NoOpinion(None);
    };
    let Attributes::Resource {
        verb,
        group,
        resource,
        subresource,
        namespace,
        name,
    } = attributes
    else {
        return Decision::NoOpinion(None);
    };
    let reading = |kind: Kind| -> Decision {
        if !matches!(verb.as_str(), "get" | "list" | "watch") {
            return deny("can only read resources of this type");
        }
        if !subresource.is_empty() {
            return deny("cannot read subresource");
        }
        if namespace.is_empty() {
            return deny("can only read namespaced object of this type");
        }
        through_pods(snapshot, node, kind, namespace, name)
    };
    match (group.as_str(), resource.as_str(), subresource.as_str()) {
        ("", "configmaps", _) => reading(Kind::ConfigMap),
        ("", "secrets", _) => reading(Kind::Secret),
        ("", "serviceaccounts", "token") => {
            if verb != "create" {
                return deny("can only create tokens for individual service accounts");
            }
            through_pods(snapshot, node, Kind::ServiceAccount, namespace, name)
        }
        ("", "serviceaccounts", _) => deny("can only create token subresource of serviceaccount"),
        _ if NODE_RULES.iter().any(|rule| rule_allows(rule, attributes)) => Decision::Allow,
        _ => Decision::NoOpinion(None),
    }
}

fn deny(reason: &str) -> Decision {
    Decision::NoOpinion(Some(reason.into()))
}

/// The kinds of object a node reaches through its Pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ConfigMap,
    Secret,
    ServiceAccount,
}

/// Whether `spec` names the object `name` of `kind` (a Pod and what it
/// references live in one namespace).
pub fn referenced(spec: &PodSpec, kind: Kind, name: &str) -> bool {
    match kind {
        Kind::ConfigMap => api::pod::configmap_names(spec).contains(name),
        Kind::Secret => api::pod::secret_names(spec).contains(name),
        Kind::ServiceAccount => spec.service_account_name.as_deref().unwrap_or("default") == name,
    }
}

/// Allow when a Pod in `namespace` bound to `node` references the object.
fn through_pods(
    snapshot: &Snapshot<'_>,
    node: &str,
    kind: Kind,
    namespace: &str,
    name: &str,
) -> Decision {
    if name.is_empty() {
        return deny("No Object name found");
    }
    let Some(pods) = api::resources::by_plural("", "v1", "pods") else {
        return Decision::NoOpinion(None);
    };
    let found = snapshot
        .list(pods, Some(namespace), None)
        .map(|(_, pod)| &pod["spec"])
        .filter(|spec| spec["nodeName"] == node)
        .filter_map(|spec| PodSpec::deserialize(spec).ok())
        .any(|spec| referenced(&spec, kind, name));
    if found {
        Decision::Allow
    } else {
        deny(&format!(
            "no relationship found between node '{node}' and this object"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(value: serde_json::Value) -> PodSpec {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_service_account_is_referenced_by_name_or_as_the_default() {
        let named = spec(json!({"containers": [], "serviceAccountName": "builder"}));
        assert!(referenced(&named, Kind::ServiceAccount, "builder"));
        assert!(!referenced(&named, Kind::ServiceAccount, "default"));
        let unnamed = spec(json!({"containers": []}));
        assert!(referenced(&unnamed, Kind::ServiceAccount, "default"));
    }

    #[test]
    fn configmaps_and_secrets_are_referenced_through_the_pods_fields() {
        let pod = spec(json!({
            "containers": [{"name": "c", "env": [
                {"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}
            ]}],
            "volumes": [{"name": "conf", "configMap": {"name": "ngx-conf"}}]
        }));
        assert!(referenced(&pod, Kind::ConfigMap, "ngx-conf"));
        assert!(referenced(&pod, Kind::Secret, "db"));
        assert!(!referenced(&pod, Kind::Secret, "ngx-conf"));
        assert!(!referenced(&pod, Kind::ConfigMap, "db"));
    }
}
