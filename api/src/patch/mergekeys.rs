//! Which lists merge, and by which key: the patch strategies of Kubernetes'
//! built-in types.
//!
//! A JSON list has no identity for its items, so a plain merge patch can
//! only replace a whole list. Kubernetes' Go types carry struct tags that
//! give some lists an identity: `PodSpec.Containers` has
//! `patchStrategy:"merge" patchMergeKey:"name"`, so a strategic merge patch
//! matches containers by `name` and merges the one it names. This module is
//! those tags, for the kinds kube-lite serves, keyed by field path.
//!
//! A list that is not in the table is atomic: a patch replaces it whole.
//! That is deliberate upstream for `tolerations`, Node `spec.taints` and
//! Endpoints `subsets` (all `+listType=atomic`, no `patchStrategy`), and so
//! it is here.

use std::collections::HashMap;
use std::fmt::Write;

use serde_json::Value;

/// How a strategic merge patch treats one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Strategy {
    /// A list of objects merged by this key (`patchStrategy:"merge"`).
    MergeOn(&'static str),
    /// Merged by key, and each item drops the keys a patch does not retain
    /// (`patchStrategy:"merge,retainKeys"`, volumes: a volume is exactly one
    /// of `configMap`, `secret`, `emptyDir`..., so switching source must
    /// clear the old one).
    MergeOnRetainKeys(&'static str),
    /// A list of strings merged as a set (`patchStrategy:"merge"` on a
    /// primitive list, like `finalizers`).
    Union,
    /// A map that drops the keys a patch does not retain
    /// (`patchStrategy:"retainKeys"`, a Deployment's `strategy`).
    RetainKeys,
}

impl Strategy {
    /// The merge key of a list merged by key.
    pub(super) fn merge_key(self) -> Option<&'static str> {
        match self {
            Strategy::MergeOn(key) | Strategy::MergeOnRetainKeys(key) => Some(key),
            Strategy::Union | Strategy::RetainKeys => None,
        }
    }

    /// True for lists that merge (by key or as a set) rather than replace.
    pub(super) fn merges_list(self) -> bool {
        !matches!(self, Strategy::RetainKeys)
    }

    /// True when a computed patch must say which keys to keep.
    pub(super) fn retains_keys(self) -> bool {
        matches!(self, Strategy::MergeOnRetainKeys(_) | Strategy::RetainKeys)
    }
}

/// Where in an object a rule's path starts.
#[derive(Debug, Clone, Copy)]
enum Scope {
    /// Every ObjectMeta: the object's `metadata` and its pod template's.
    ObjectMeta,
    /// Every PodSpec: a Pod's `spec`, a workload's `spec.template.spec`.
    PodSpec,
    /// Every container list of every PodSpec (`containers`,
    /// `initContainers`, `ephemeralContainers`).
    Container,
    /// The object root, for these kinds only.
    Kinds(&'static [&'static str]),
}

struct Rule {
    scope: Scope,
    /// Keys from the scope's root, `.`-separated; list items add nothing.
    path: &'static str,
    strategy: Strategy,
}

const fn rule(scope: Scope, path: &'static str, strategy: Strategy) -> Rule {
    Rule {
        scope,
        path,
        strategy,
    }
}

use Scope::{Container, Kinds, ObjectMeta, PodSpec};
use Strategy::{MergeOn, MergeOnRetainKeys, RetainKeys, Union};

/// Kinds whose status has `conditions` merged by `type`.
const WITH_CONDITIONS: &[&str] = &[
    "Pod",
    "Node",
    "Namespace",
    "Service",
    "Deployment",
    "ReplicaSet",
    "DaemonSet",
    "StatefulSet",
    "ReplicationController",
];

/// The strategic-merge tags of k8s.io/api (core/v1, apps/v1) and
/// apimachinery's ObjectMeta, for the fields kube-lite's kinds have.
static RULES: &[Rule] = &[
    // ObjectMeta: owners are matched by uid, finalizers are a set.
    rule(ObjectMeta, "ownerReferences", MergeOn("uid")),
    rule(ObjectMeta, "finalizers", Union),
    // PodSpec: volumes by name; switching a volume's source clears the old.
    rule(PodSpec, "volumes", MergeOnRetainKeys("name")),
    // PodSpec: the container lists, by container name.
    rule(PodSpec, "containers", MergeOn("name")),
    rule(PodSpec, "initContainers", MergeOn("name")),
    rule(PodSpec, "ephemeralContainers", MergeOn("name")),
    // PodSpec: pull secrets by secret name, /etc/hosts entries by IP.
    rule(PodSpec, "imagePullSecrets", MergeOn("name")),
    rule(PodSpec, "hostAliases", MergeOn("ip")),
    // PodSpec: one spread constraint per topology key.
    rule(PodSpec, "topologySpreadConstraints", MergeOn("topologyKey")),
    // PodSpec: scheduling gates and resource claims by name.
    rule(PodSpec, "schedulingGates", MergeOn("name")),
    rule(PodSpec, "resourceClaims", MergeOnRetainKeys("name")),
    // Container: ports by containerPort (not by name: names are optional).
    rule(Container, "ports", MergeOn("containerPort")),
    // Container: environment variables by name.
    rule(Container, "env", MergeOn("name")),
    // Container: mounts by where they mount, devices by device path.
    rule(Container, "volumeMounts", MergeOn("mountPath")),
    rule(Container, "volumeDevices", MergeOn("devicePath")),
    // Service: ports by port number.
    rule(Kinds(&["Service"]), "spec.ports", MergeOn("port")),
    // Deployment: `strategy` keeps only the keys a patch sends, so
    // `type: Recreate` drops `rollingUpdate`.
    rule(Kinds(&["Deployment"]), "spec.strategy", RetainKeys),
    // Status conditions, one per condition type.
    rule(Kinds(WITH_CONDITIONS), "status.conditions", MergeOn("type")),
    // Pod status: pod and host IPs by address.
    rule(Kinds(&["Pod"]), "status.podIPs", MergeOn("ip")),
    rule(Kinds(&["Pod"]), "status.hostIPs", MergeOn("ip")),
    // Node: pod CIDRs are a set; addresses one per type (InternalIP...).
    rule(Kinds(&["Node"]), "spec.podCIDRs", Union),
    rule(Kinds(&["Node"]), "status.addresses", MergeOn("type")),
    // ServiceAccount: token secrets by name.
    rule(Kinds(&["ServiceAccount"]), "secrets", MergeOn("name")),
];

/// Where each workload kind keeps its pod template (`metadata` + `spec`).
static POD_TEMPLATES: &[(&str, &str)] = &[
    ("Deployment", "spec.template"),
    ("ReplicaSet", "spec.template"),
    ("DaemonSet", "spec.template"),
    ("StatefulSet", "spec.template"),
    ("ReplicationController", "spec.template"),
    ("Job", "spec.template"),
    ("CronJob", "spec.jobTemplate.spec.template"),
    ("PodTemplate", "template"),
];

/// The container lists of a PodSpec.
const CONTAINER_LISTS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];

/// The patch strategies of one kind, by full field path
/// (`spec.template.spec.containers.ports`).
#[derive(Debug)]
pub(super) struct PatchSchema {
    strategies: HashMap<String, Strategy>,
}

impl PatchSchema {
    /// Expands the rule table for `kind`. An unknown kind (a custom
    /// resource) gets only the ObjectMeta rules.
    pub(super) fn for_kind(kind: &str) -> PatchSchema {
        let template = POD_TEMPLATES
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, path)| *path);
        let mut meta_roots = vec!["metadata".to_string()];
        let mut pod_spec_roots = Vec::new();
        if kind == "Pod" {
            pod_spec_roots.push("spec".to_string());
        }
        if let Some(template) = template {
            meta_roots.push(format!("{template}.metadata"));
            pod_spec_roots.push(format!("{template}.spec"));
        }
        let container_roots: Vec<String> = pod_spec_roots
            .iter()
            .flat_map(|spec| CONTAINER_LISTS.iter().map(move |c| format!("{spec}.{c}")))
            .collect();

        let mut strategies = HashMap::new();
        for rule in RULES {
            let roots: Vec<&str> = match rule.scope {
                ObjectMeta => meta_roots.iter().map(String::as_str).collect(),
                PodSpec => pod_spec_roots.iter().map(String::as_str).collect(),
                Container => container_roots.iter().map(String::as_str).collect(),
                Kinds(kinds) if kinds.contains(&kind) => vec![""],
                Kinds(_) => Vec::new(),
            };
            for root in roots {
                let path = if root.is_empty() {
                    rule.path.to_string()
                } else {
                    format!("{root}.{}", rule.path)
                };
                strategies.insert(path, rule.strategy);
            }
        }
        PatchSchema { strategies }
    }
}

/// A position in an object while merging or diffing: the schema path that
/// finds the field's strategy, and a readable path for error messages
/// (`spec.template.spec.containers[name=nginx].ports`).
#[derive(Clone)]
pub(super) struct FieldPath<'s> {
    schema: &'s PatchSchema,
    keys: String,
    shown: String,
}

impl<'s> FieldPath<'s> {
    pub(super) fn root(schema: &'s PatchSchema) -> FieldPath<'s> {
        FieldPath {
            schema,
            keys: String::new(),
            shown: String::new(),
        }
    }

    /// The field `key` of the map at this position.
    pub(super) fn field(&self, key: &str) -> FieldPath<'s> {
        let join = |base: &str| {
            if base.is_empty() {
                key.to_string()
            } else {
                format!("{base}.{key}")
            }
        };
        FieldPath {
            schema: self.schema,
            keys: join(&self.keys),
            shown: join(&self.shown),
        }
    }

    /// The item of the list at this position whose `merge_key` is `value`.
    /// Items share their list's schema path.
    pub(super) fn item(&self, merge_key: &str, value: &Value) -> FieldPath<'s> {
        let mut shown = self.shown.clone();
        match value {
            Value::String(s) => write!(shown, "[{merge_key}={s}]"),
            other => write!(shown, "[{merge_key}={other}]"),
        }
        .expect("writing to a String cannot fail");
        FieldPath {
            schema: self.schema,
            keys: self.keys.clone(),
            shown,
        }
    }

    /// The strategy of the field at this position; `None` means plain
    /// merge-patch behaviour (maps merge, lists replace).
    pub(super) fn strategy(&self) -> Option<Strategy> {
        self.schema.strategies.get(&self.keys).copied()
    }

    /// The path for messages; the object root is `(root)`.
    pub(super) fn shown(&self) -> String {
        if self.shown.is_empty() {
            "(root)".to_string()
        } else {
            self.shown.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strategy(kind: &str, path: &str) -> Option<Strategy> {
        let schema = PatchSchema::for_kind(kind);
        let mut at = FieldPath::root(&schema);
        for key in path.split('.') {
            at = at.field(key);
        }
        at.strategy()
    }

    #[test]
    fn pod_spec_rules_follow_the_pod_template() {
        for (kind, spec) in [
            ("Pod", "spec"),
            ("Deployment", "spec.template.spec"),
            ("ReplicaSet", "spec.template.spec"),
            ("DaemonSet", "spec.template.spec"),
            ("CronJob", "spec.jobTemplate.spec.template.spec"),
        ] {
            assert_eq!(
                strategy(kind, &format!("{spec}.containers")),
                Some(MergeOn("name"))
            );
            assert_eq!(
                strategy(kind, &format!("{spec}.initContainers.ports")),
                Some(MergeOn("containerPort"))
            );
            assert_eq!(
                strategy(kind, &format!("{spec}.containers.volumeMounts")),
                Some(MergeOn("mountPath"))
            );
            assert_eq!(
                strategy(kind, &format!("{spec}.volumes")),
                Some(MergeOnRetainKeys("name"))
            );
            assert_eq!(strategy(kind, &format!("{spec}.tolerations")), None);
        }
        assert_eq!(strategy("Service", "spec.containers"), None);
        assert_eq!(strategy("Deployment", "spec.containers"), None);
    }

    #[test]
    fn object_meta_rules_apply_to_every_kind_and_to_templates() {
        for kind in ["ConfigMap", "Lease", "Widget", "Deployment"] {
            assert_eq!(strategy(kind, "metadata.finalizers"), Some(Union));
            assert_eq!(
                strategy(kind, "metadata.ownerReferences"),
                Some(MergeOn("uid"))
            );
        }
        assert_eq!(
            strategy("Deployment", "spec.template.metadata.finalizers"),
            Some(Union)
        );
    }

    #[test]
    fn kind_rules_stay_with_their_kind() {
        assert_eq!(strategy("Service", "spec.ports"), Some(MergeOn("port")));
        assert_eq!(strategy("Node", "status.addresses"), Some(MergeOn("type")));
        assert_eq!(strategy("Node", "spec.taints"), None);
        assert_eq!(strategy("Endpoints", "subsets"), None);
        assert_eq!(
            strategy("Namespace", "status.conditions"),
            Some(MergeOn("type"))
        );
        assert_eq!(strategy("ConfigMap", "status.conditions"), None);
        assert_eq!(strategy("Deployment", "spec.strategy"), Some(RetainKeys));
    }

    #[test]
    fn shown_paths_name_list_items() {
        let schema = PatchSchema::for_kind("Pod");
        let at = FieldPath::root(&schema)
            .field("spec")
            .field("containers")
            .item("name", &json!("nginx"))
            .field("ports")
            .item("containerPort", &json!(80));
        assert_eq!(
            at.shown(),
            "spec.containers[name=nginx].ports[containerPort=80]"
        );
        assert_eq!(at.strategy(), Some(MergeOn("containerPort")));
        assert_eq!(FieldPath::root(&schema).shown(), "(root)");
    }
}
