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
//! Upstream also keeps a graph of which Pods run on which node and lets a
//! node read only the Secrets and ConfigMaps of its own Pods; kube-lite's
//! node agent still watches all ConfigMaps, so they are readable by every
//! node for now. Which Node, Lease and Pod statuses a node may change is
//! NodeRestriction's business (admission, after this).

use api::user::UserInfo;

use super::policy::node_rules;
use super::rbac::rule_allows;
use super::Attributes;

/// Whether `user` is a node agent and the node rules allow `attributes`.
pub fn allows(user: &UserInfo, attributes: &Attributes) -> bool {
    if user.node_name().is_none() {
        return false;
    }
    matches!(attributes, Attributes::Resource { .. })
        && node_rules()
            .iter()
            .any(|rule| rule_allows(rule, attributes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::tests::resource;
    use api::user::{node_user, NODES};

    #[test]
    fn nodes_do_what_node_agents_do_and_nothing_else() {
        let node = UserInfo::authenticated(&node_user("kl-worker1"), &[NODES.into()]);
        assert!(allows(
            &node,
            &resource("patch", "", "pods", "status", "default", "x")
        ));
        assert!(allows(
            &node,
            &resource("patch", "", "nodes", "status", "default", "x")
        ));
        assert!(allows(
            &node,
            &resource(
                "watch",
                "discovery.k8s.io",
                "endpointslices",
                "",
                "default",
                "x"
            )
        ));
        assert!(!allows(
            &node,
            &resource("create", "", "pods", "", "default", "x")
        ));
        assert!(!allows(
            &node,
            &resource("create", "apps", "deployments", "", "default", "x")
        ));
        assert!(!allows(
            &node,
            &resource("get", "", "pods", "exec", "default", "x")
        ));
        let not_a_node = UserInfo::authenticated(&node_user("kl-worker1"), &[]);
        assert!(!allows(
            &not_a_node,
            &resource("patch", "", "pods", "status", "default", "x")
        ));
    }
}
