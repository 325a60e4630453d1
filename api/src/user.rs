//! Who is calling: the user names and groups Kubernetes gives the callers
//! it knows (k8s.io/apiserver's `user` package).
//!
//! An authenticator turns a request's credentials into a [`UserInfo`]; the
//! authorizers (the Node authorizer, RBAC) look only at that. The names
//! below are the conventions every cluster shares: a kubeadm admin
//! certificate says `O=system:masters`, a kubelet's `CN=system:node:<node>,
//! O=system:nodes`, a Pod's token `system:serviceaccount:<ns>:<name>`.

use serde::{Deserialize, Serialize};

/// The group whose members may do anything (kubeadm's admin certificate).
pub const SYSTEM_MASTERS: &str = "system:masters";
/// Every caller with valid credentials.
pub const AUTHENTICATED: &str = "system:authenticated";
/// Every caller without credentials.
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
/// The user name of a caller without credentials.
pub const ANONYMOUS: &str = "system:anonymous";
/// The group of every node's agent (kubelet).
pub const NODES: &str = "system:nodes";
/// A node's user name is this prefix and the Node's name.
pub const NODE_USER_PREFIX: &str = "system:node:";
/// The group of joining nodes' bootstrap tokens.
pub const BOOTSTRAPPERS: &str = "system:bootstrappers";
/// The controller's user name (kube-controller-manager's).
pub const CONTROLLER_MANAGER: &str = "system:kube-controller-manager";
/// The scheduler's user name (the controller schedules too).
pub const SCHEDULER: &str = "system:kube-scheduler";
/// Every ServiceAccount's group.
pub const SERVICE_ACCOUNTS: &str = "system:serviceaccounts";

/// A caller, as the authorizers see it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UserInfo {
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(default)]
    pub groups: Vec<String>,
}

impl UserInfo {
    /// The caller without credentials.
    pub fn anonymous() -> UserInfo {
        UserInfo {
            username: ANONYMOUS.into(),
            uid: String::new(),
            groups: vec![UNAUTHENTICATED.into()],
        }
    }

    /// An authenticated caller: `groups` and `system:authenticated`.
    pub fn authenticated(username: &str, groups: &[String]) -> UserInfo {
        let mut all: Vec<String> = groups
            .iter()
            .filter(|g| g.as_str() != AUTHENTICATED)
            .cloned()
            .collect();
        all.push(AUTHENTICATED.into());
        UserInfo {
            username: username.into(),
            uid: String::new(),
            groups: all,
        }
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// The Node this caller is the agent of (`system:node:<name>` in
    /// `system:nodes`).
    pub fn node_name(&self) -> Option<&str> {
        if !self.in_group(NODES) {
            return None;
        }
        self.username
            .strip_prefix(NODE_USER_PREFIX)
            .filter(|n| !n.is_empty())
    }
}

/// `system:node:<node>`.
pub fn node_user(node: &str) -> String {
    format!("{NODE_USER_PREFIX}{node}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_identities() {
        let node = UserInfo::authenticated(&node_user("kl-worker1"), &[NODES.into()]);
        assert_eq!(node.node_name(), Some("kl-worker1"));
        assert!(node.in_group(AUTHENTICATED));
        // The name alone is not enough: the group says it is a node.
        let pretender = UserInfo::authenticated("system:node:kl-worker1", &[]);
        assert_eq!(pretender.node_name(), None);
        assert_eq!(UserInfo::anonymous().groups, [UNAUTHENTICATED]);
    }
}
