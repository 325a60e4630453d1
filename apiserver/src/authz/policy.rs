//! The roles and bindings every cluster starts with (kube-apiserver's
//! `bootstrappolicy`, and what kubeadm adds), for the resources kube-lite
//! serves.
//!
//! At start the apiserver creates those that are missing, and brings back
//! in line those still marked `rbac.authorization.kubernetes.io/autoupdate:
//! "true"` (a user who wants to change a default role sets it to false),
//! as kube-apiserver's RBAC post-start hook does. `kubectl get
//! clusterroles -l kubernetes.io/bootstrapping=rbac-defaults` lists them.
//!
//! Where kube-lite differs, on purpose:
//! - its controller is also the scheduler, and acts with its own identity
//!   (upstream's controller-manager uses one ServiceAccount per
//!   controller), so `system:kube-controller-manager` holds what all its
//!   loops do;
//! - its node agents publish the node-local DNS (`kube-dns` Service, one
//!   EndpointSlice per node) in kube-system: the Role
//!   `kube-lite:node-dns` lets the group `system:nodes` do that;
//! - anonymous callers may read discovery (`system:discovery` is bound to
//!   `system:unauthenticated` too), so that `kubectl version` and joining
//!   nodes work before they hold credentials.

use serde_json::{json, Value};

use api::user;

use super::rbac::GROUP;
use crate::status::StatusError;
use crate::storage::Store;

/// The label every default role and binding carries.
pub const BOOTSTRAPPING_LABEL: &str = "kubernetes.io/bootstrapping";
/// The annotation that lets the apiserver keep a default up to date.
pub const AUTOUPDATE_ANNOTATION: &str = "rbac.authorization.kubernetes.io/autoupdate";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const ALL: &[&str] = &["*"];

/// A `PolicyRule` on resources.
pub fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

/// A `PolicyRule` on paths.
pub fn url_rule(urls: &[&str], verbs: &[&str]) -> Value {
    json!({"nonResourceURLs": urls, "verbs": verbs})
}

fn verbs(lists: &[&[&'static str]]) -> Vec<&'static str> {
    lists.iter().flat_map(|l| l.iter().copied()).collect()
}

/// What a node agent may do whatever it is (the rules of upstream's
/// `system:node` role, for what kube-lite serves). Which Node, Lease and
/// Pods it may change is NodeRestriction's business; which ConfigMaps it
/// may read, the Node authorizer's.
pub fn node_rules() -> Vec<Value> {
    vec![
        // Service environment variables, the service proxy, the DNS.
        rule(&[""], &["services", "endpoints"], READ),
        rule(&["discovery.k8s.io"], &["endpointslices"], READ),
        rule(&[""], &["namespaces"], READ),
        // Its own Node object, and its status. (kube-lite: also deleting
        // it, when `kubeadm-lite reset` takes the node out of the cluster;
        // NodeRestriction keeps that to its own.)
        rule(
            &[""],
            &["nodes"],
            &[
                "create", "get", "list", "watch", "update", "patch", "delete",
            ],
        ),
        rule(&[""], &["nodes/status"], &["update", "patch"]),
        rule(&[""], &["events"], &["create", "update", "patch"]),
        // The Pods it runs (every Pod: the DNS answers for all of them), and
        // deleting those it ran once they are gone.
        rule(&[""], &["pods"], &["get", "list", "watch", "delete"]),
        // Volumes, environment variables and image pull credentials. The
        // Node authorizer narrows these to the objects its own Pods name
        // (`authz::node`): this rule alone is never what lets a node in.
        rule(&[""], &["configmaps", "secrets"], READ),
        rule(&[""], &["pods/status"], &["update", "patch"]),
        rule(&[""], &["pods/eviction"], &["create"]),
        // Its Pods' ServiceAccount tokens (again narrowed by the Node
        // authorizer, and bound to those Pods: NodeRestriction checks).
        rule(&[""], &["serviceaccounts/token"], &["create"]),
        // Its heartbeat.
        rule(
            &["coordination.k8s.io"],
            &["leases"],
            &["get", "create", "update", "patch", "delete"],
        ),
        rule(
            &["certificates.k8s.io"],
            &["certificatesigningrequests"],
            &["create", "get", "list", "watch"],
        ),
        rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
        rule(
            &["authorization.k8s.io"],
            &["subjectaccessreviews", "localsubjectaccessreviews"],
            &["create"],
        ),
    ]
}

/// The namespaced resources users work with, by API group.
const WORKLOADS: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "pods",
            "pods/log",
            "pods/status",
            "services",
            "services/status",
            "endpoints",
            "configmaps",
            "events",
            "serviceaccounts",
            "persistentvolumeclaims",
            "replicationcontrollers",
            "limitranges",
            "resourcequotas",
        ],
    ),
    (
        "apps",
        &[
            "deployments",
            "deployments/scale",
            "deployments/status",
            "replicasets",
            "replicasets/scale",
            "replicasets/status",
            "daemonsets",
            "daemonsets/status",
            "statefulsets",
            "statefulsets/scale",
            "statefulsets/status",
            "controllerrevisions",
        ],
    ),
    (
        "batch",
        &["jobs", "jobs/status", "cronjobs", "cronjobs/status"],
    ),
    ("discovery.k8s.io", &["endpointslices"]),
    ("coordination.k8s.io", &["leases"]),
    ("policy", &["poddisruptionbudgets"]),
];

fn view_rules() -> Vec<Value> {
    let mut rules: Vec<Value> = WORKLOADS
        .iter()
        .map(|(group, resources)| rule(&[group], resources, READ))
        .collect();
    rules.push(rule(&[""], &["namespaces", "namespaces/status"], READ));
    rules
}

fn edit_rules() -> Vec<Value> {
    let mut rules = view_rules();
    let writable = |group: &str, resources: &[&str]| -> Vec<String> {
        // Upstream's edit may not write Endpoints or EndpointSlices (they
        // would let a user send a Service's traffic anywhere), nor Leases.
        resources
            .iter()
            .filter(|r| {
                !matches!(
                    (group, **r),
                    ("", "endpoints")
                        | ("discovery.k8s.io", "endpointslices")
                        | ("coordination.k8s.io", "leases")
                        | ("apps", "controllerrevisions")
                        | (_, "pods/status" | "services/status")
                )
            })
            .map(|r| r.to_string())
            .collect()
    };
    for (group, resources) in WORKLOADS {
        let resources = writable(group, resources);
        if !resources.is_empty() {
            let resources: Vec<&str> = resources.iter().map(String::as_str).collect();
            rules.push(rule(&[group], &resources, WRITE));
        }
    }
    rules.push(rule(
        &[""],
        &["pods/exec", "pods/attach", "pods/portforward"],
        &["create", "get"],
    ));
    rules.push(rule(&[""], &["pods/eviction"], &["create"]));
    rules.push(rule(
        &[""],
        &["pods/proxy", "services/proxy"],
        &verbs(&[READ, WRITE]),
    ));
    rules.push(rule(&[""], &["secrets"], &verbs(&[READ, WRITE])));
    rules.push(rule(&[""], &["serviceaccounts/token"], &["create"]));
    rules
}

fn admin_rules() -> Vec<Value> {
    let mut rules = edit_rules();
    rules.push(rule(
        &[GROUP],
        &["roles", "rolebindings"],
        &verbs(&[READ, WRITE]),
    ));
    rules.push(rule(
        &["authorization.k8s.io"],
        &["localsubjectaccessreviews"],
        &["create"],
    ));
    rules
}

/// What kube-lite's controller does: every loop's writes (and the
/// scheduler's).
fn controller_rules() -> Vec<Value> {
    vec![
        rule(
            &[""],
            &["pods"],
            &verbs(&[READ, &["create", "delete", "patch", "update"]]),
        ),
        rule(
            &[""],
            &["pods/status", "pods/binding", "bindings"],
            &["create", "patch", "update"],
        ),
        rule(&[""], &["pods/eviction"], &["create"]),
        rule(
            &[""],
            &["nodes"],
            &verbs(&[READ, &["patch", "update", "delete"]]),
        ),
        rule(&[""], &["nodes/status"], &["patch", "update"]),
        rule(
            &[""],
            &["services", "configmaps", "secrets", "serviceaccounts"],
            &verbs(&[READ, WRITE]),
        ),
        rule(
            &[""],
            &["endpoints", "services/status"],
            &verbs(&[READ, WRITE]),
        ),
        rule(
            &[""],
            &["namespaces"],
            &verbs(&[READ, &["delete", "patch", "update"]]),
        ),
        rule(
            &[""],
            &["namespaces/finalize", "namespaces/status"],
            &["update", "patch"],
        ),
        rule(&[""], &["events"], &["create", "patch", "update"]),
        rule(
            &["events.k8s.io"],
            &["events"],
            &["create", "patch", "update"],
        ),
        rule(
            &["discovery.k8s.io"],
            &["endpointslices"],
            &verbs(&[READ, WRITE]),
        ),
        rule(
            &["coordination.k8s.io"],
            &["leases"],
            &verbs(&[READ, WRITE]),
        ),
        rule(&["apps"], &["*"], &verbs(&[READ, WRITE])),
        rule(&["batch"], &["*"], &verbs(&[READ, WRITE])),
        rule(
            &["certificates.k8s.io"],
            &["*"],
            &verbs(&[READ, WRITE, &["approve", "sign"]]),
        ),
        // The garbage collector: every kind it follows, and removing the
        // ownerReferences and finalizers it owns on them.
        rule(&["rbac.authorization.k8s.io"], &["*"], &["delete", "patch"]),
        rule(&["*"], &["*"], READ),
    ]
}

fn object(kind: &str, namespace: Option<&str>, name: &str, body: Value) -> Value {
    let mut metadata = json!({
        "name": name,
        "labels": {BOOTSTRAPPING_LABEL: "rbac-defaults"},
        "annotations": {AUTOUPDATE_ANNOTATION: "true"},
    });
    if let Some(namespace) = namespace {
        metadata["namespace"] = json!(namespace);
    }
    let mut object = json!({
        "apiVersion": format!("{GROUP}/v1"),
        "kind": kind,
        "metadata": metadata,
    });
    if let (Some(object), Some(body)) = (object.as_object_mut(), body.as_object()) {
        object.extend(body.clone());
    }
    object
}

fn cluster_role(name: &str, rules: Vec<Value>) -> Value {
    object("ClusterRole", None, name, json!({"rules": rules}))
}

fn subject(kind: &str, name: &str) -> Value {
    json!({"kind": kind, "apiGroup": GROUP, "name": name})
}

fn cluster_binding(name: &str, role: &str, subjects: Vec<Value>) -> Value {
    object(
        "ClusterRoleBinding",
        None,
        name,
        json!({
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role},
            "subjects": subjects,
        }),
    )
}

/// Every default ClusterRole, ClusterRoleBinding, Role and RoleBinding.
pub fn defaults() -> Vec<Value> {
    let group = |name: &str| subject("Group", name);
    let user = |name: &str| subject("User", name);
    let discovery_urls = [
        "/api",
        "/api/*",
        "/apis",
        "/apis/*",
        "/healthz",
        "/livez",
        "/openapi",
        "/openapi/*",
        "/readyz",
        "/version",
        "/version/",
    ];
    let public_urls = ["/healthz", "/livez", "/readyz", "/version", "/version/"];
    vec![
        cluster_role(
            "cluster-admin",
            vec![rule(&["*"], &["*"], ALL), url_rule(&["*"], ALL)],
        ),
        cluster_role("admin", admin_rules()),
        cluster_role("edit", edit_rules()),
        cluster_role("view", view_rules()),
        cluster_role(
            "system:basic-user",
            vec![
                rule(
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    &["create"],
                ),
                rule(
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                    &["create"],
                ),
            ],
        ),
        cluster_role(
            "system:discovery",
            vec![url_rule(&discovery_urls, &["get"])],
        ),
        cluster_role(
            "system:public-info-viewer",
            vec![url_rule(&public_urls, &["get"])],
        ),
        cluster_role(
            "system:node-bootstrapper",
            vec![rule(
                &["certificates.k8s.io"],
                &["certificatesigningrequests"],
                &["create", "get", "list", "watch"],
            )],
        ),
        cluster_role("system:node", node_rules()),
        cluster_role(
            "system:node-proxier",
            vec![
                rule(&[""], &["services", "endpoints", "nodes"], READ),
                rule(&["discovery.k8s.io"], &["endpointslices"], READ),
                rule(
                    &["", "events.k8s.io"],
                    &["events"],
                    &["create", "patch", "update"],
                ),
            ],
        ),
        cluster_role(
            "system:kube-scheduler",
            vec![
                rule(&[""], &["pods", "nodes", "namespaces"], READ),
                rule(&[""], &["pods/binding", "bindings"], &["create"]),
                rule(&[""], &["pods/status"], &["patch", "update"]),
                rule(
                    &["", "events.k8s.io"],
                    &["events"],
                    &["create", "patch", "update"],
                ),
                rule(
                    &["coordination.k8s.io"],
                    &["leases"],
                    &["create", "get", "update"],
                ),
            ],
        ),
        cluster_role("system:kube-controller-manager", controller_rules()),
        cluster_binding(
            "cluster-admin",
            "cluster-admin",
            vec![group(user::SYSTEM_MASTERS)],
        ),
        cluster_binding(
            "system:basic-user",
            "system:basic-user",
            vec![group(user::AUTHENTICATED)],
        ),
        cluster_binding(
            "system:discovery",
            "system:discovery",
            vec![group(user::AUTHENTICATED), group(user::UNAUTHENTICATED)],
        ),
        cluster_binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            vec![group(user::AUTHENTICATED), group(user::UNAUTHENTICATED)],
        ),
        cluster_binding(
            "kubeadm:kubelet-bootstrap",
            "system:node-bootstrapper",
            vec![group(user::BOOTSTRAPPERS)],
        ),
        cluster_binding(
            "system:node-proxier",
            "system:node-proxier",
            vec![user("system:kube-proxy")],
        ),
        cluster_binding(
            "system:kube-scheduler",
            "system:kube-scheduler",
            vec![user(user::SCHEDULER)],
        ),
        cluster_binding(
            "system:kube-controller-manager",
            "system:kube-controller-manager",
            vec![user(user::CONTROLLER_MANAGER)],
        ),
        // kubeadm: a joining node reads cluster-info before it has
        // credentials.
        object(
            "Role",
            Some("kube-public"),
            "kubeadm:bootstrap-signer-clusterinfo",
            json!({"rules": [{"apiGroups": [""], "resources": ["configmaps"],
                              "resourceNames": ["cluster-info"], "verbs": ["get"]}]}),
        ),
        object(
            "RoleBinding",
            Some("kube-public"),
            "kubeadm:bootstrap-signer-clusterinfo",
            json!({"roleRef": {"apiGroup": GROUP, "kind": "Role",
                               "name": "kubeadm:bootstrap-signer-clusterinfo"},
                   "subjects": [user(user::ANONYMOUS)]}),
        ),
        // kube-lite: node agents publish the node-local DNS.
        object(
            "Role",
            Some("kube-system"),
            "kube-lite:node-dns",
            json!({"rules": [
                rule(&[""], &["services"], &["get", "create", "update", "patch"]),
                rule(&["discovery.k8s.io"], &["endpointslices"], &["get", "create", "update", "patch"]),
            ]}),
        ),
        object(
            "RoleBinding",
            Some("kube-system"),
            "kube-lite:node-dns",
            json!({"roleRef": {"apiGroup": GROUP, "kind": "Role", "name": "kube-lite:node-dns"},
                   "subjects": [group(user::NODES)]}),
        ),
    ]
}

/// Creates the defaults that are missing, and puts back those marked
/// `autoupdate: "true"` that differ.
pub async fn ensure_defaults(store: &Store) -> Result<(), StatusError> {
    for object in defaults() {
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        let plural = match kind.as_str() {
            "ClusterRole" => "clusterroles",
            "ClusterRoleBinding" => "clusterrolebindings",
            "Role" => "roles",
            _ => "rolebindings",
        };
        let resource = api::resources::by_plural(GROUP, "v1", plural)
            .ok_or_else(|| StatusError::internal(format!("{plural} are not served")))?;
        crate::bootstrap::ensure(
            store,
            resource,
            object,
            &["rules", "roleRef", "subjects"],
            |current| current["metadata"]["annotations"][AUTOUPDATE_ANNOTATION] == "true",
        )
        .await?;
    }
    Ok(())
}
