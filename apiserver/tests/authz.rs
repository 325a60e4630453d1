//! Authorization over HTTPS with the real kubectl: RBAC with the default
//! roles, the Node authorizer, `kubectl auth can-i` / `whoami`, and
//! impersonation (issue 11). Each test starts its own apiserver with its
//! own CA and talks to it as the users it makes certificates for.

mod common;

use common::{kubectl_as, text};
use e2e::harness::SecureApiServer;

struct Fixture {
    _dir: tempfile::TempDir,
    api: SecureApiServer,
}

fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let api = SecureApiServer::start(dir.path());
    Fixture { _dir: dir, api }
}

const JANE_VIEWS_DEFAULT: &str = "
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: jane-view
  namespace: default
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: view
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: jane
";

#[test]
fn a_user_without_bindings_is_forbidden_with_the_upstream_message() {
    let f = start();
    let jane = f.api.kubeconfig("jane", &[]);
    let output = kubectl_as(&jane, &["get", "pods"], None);
    assert!(!output.status.success());
    assert_eq!(
        text(&output.stderr),
        "Error from server (Forbidden): pods is forbidden: User \"jane\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
    );
}

#[test]
fn a_rolebinding_lets_the_user_read_and_no_more() {
    let f = start();
    let admin = f.api.admin_kubeconfig();
    let applied = kubectl_as(&admin, &["apply", "-f", "-"], Some(JANE_VIEWS_DEFAULT));
    assert!(applied.status.success(), "{}", text(&applied.stderr));
    let jane = f.api.kubeconfig("jane", &[]);
    let listed = kubectl_as(&jane, &["get", "pods"], None);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    // view is read-only, and only in default.
    let denied = kubectl_as(&jane, &["delete", "configmap", "x"], None);
    assert!(
        text(&denied.stderr).contains("cannot delete resource \"configmaps\""),
        "{}",
        text(&denied.stderr)
    );
    let elsewhere = kubectl_as(&jane, &["get", "pods", "-n", "kube-system"], None);
    assert!(
        text(&elsewhere.stderr).contains("in the namespace \"kube-system\""),
        "{}",
        text(&elsewhere.stderr)
    );
}

#[test]
fn kubectl_auth_can_i_answers_per_user() {
    let f = start();
    let admin = f.api.admin_kubeconfig();
    let jane = f.api.kubeconfig("jane", &[]);
    assert_eq!(
        text(&kubectl_as(&admin, &["auth", "can-i", "delete", "nodes"], None).stdout),
        "yes"
    );
    assert_eq!(
        text(&kubectl_as(&jane, &["auth", "can-i", "list", "pods"], None).stdout),
        "no"
    );
    kubectl_as(&admin, &["apply", "-f", "-"], Some(JANE_VIEWS_DEFAULT));
    assert_eq!(
        text(&kubectl_as(&jane, &["auth", "can-i", "list", "pods"], None).stdout),
        "yes"
    );
    assert_eq!(
        text(&kubectl_as(&jane, &["auth", "can-i", "create", "pods"], None).stdout),
        "no"
    );
}

#[test]
fn kubectl_auth_whoami_shows_the_certificate_identity() {
    let f = start();
    let dev = f.api.kubeconfig("jane", &["students"]);
    let output = kubectl_as(&dev, &["auth", "whoami"], None);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let text = text(&output.stdout);
    assert!(text.contains("Username    jane"), "{text}");
    assert!(text.contains("[students system:authenticated]"), "{text}");
}

#[test]
fn node_credentials_do_what_a_node_agent_does_only() {
    let f = start();
    let node = f
        .api
        .kubeconfig("system:node:kl-worker1", &["system:nodes"]);
    let can =
        |args: &[&str]| text(&kubectl_as(&node, &[&["auth", "can-i"], args].concat(), None).stdout);
    assert_eq!(can(&["patch", "nodes/status"]), "yes");
    assert_eq!(
        can(&["watch", "endpointslices.discovery.k8s.io", "-A"]),
        "yes"
    );
    assert_eq!(can(&["create", "pods"]), "no");
    assert_eq!(can(&["create", "deployments.apps"]), "no");
    let denied = kubectl_as(
        &node,
        &["create", "namespace", "x", "--dry-run=client", "-o", "name"],
        None,
    );
    assert!(denied.status.success(), "a client dry run sends nothing");
    let denied = kubectl_as(&node, &["get", "clusterroles"], None);
    assert!(text(&denied.stderr).contains("User \"system:node:kl-worker1\" cannot list resource \"clusterroles\" in API group \"rbac.authorization.k8s.io\" at the cluster scope"), "{}", text(&denied.stderr));
}

#[test]
fn the_default_roles_are_there_and_labelled() {
    let f = start();
    let admin = f.api.admin_kubeconfig();
    let output = kubectl_as(
        &admin,
        &[
            "get",
            "clusterroles",
            "-l",
            "kubernetes.io/bootstrapping=rbac-defaults",
            "-o",
            "name",
        ],
        None,
    );
    let names = String::from_utf8_lossy(&output.stdout);
    for role in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:basic-user",
        "system:discovery",
        "system:node",
    ] {
        assert!(
            names.contains(&format!("clusterrole.rbac.authorization.k8s.io/{role}\n")),
            "{role}: {names}"
        );
    }
    let bindings = text(
        &kubectl_as(
            &admin,
            &["get", "clusterrolebinding", "cluster-admin", "-o", "wide"],
            None,
        )
        .stdout,
    );
    assert!(bindings.contains("ClusterRole/cluster-admin"), "{bindings}");
    assert!(bindings.contains("system:masters"), "{bindings}");
}

#[test]
fn impersonation_needs_permission() {
    let f = start();
    let admin = f.api.admin_kubeconfig();
    let as_jane = kubectl_as(
        &admin,
        &["auth", "can-i", "list", "pods", "--as=jane"],
        None,
    );
    assert_eq!(text(&as_jane.stdout), "no");
    let jane = f.api.kubeconfig("jane", &[]);
    let output = kubectl_as(&jane, &["get", "pods", "--as=bob"], None);
    assert!(
        text(&output.stderr).contains("users \"bob\" is forbidden: User \"jane\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn invalid_rbac_objects_are_refused_with_their_fields() {
    let f = start();
    let admin = f.api.admin_kubeconfig();
    let output = kubectl_as(
        &admin,
        &["apply", "-f", "-"],
        Some(
            "
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: broken}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: view}
subjects: [{kind: ServiceAccount, name: default}]
",
        ),
    );
    let text = text(&output.stderr);
    assert!(
        text.contains("The ClusterRoleBinding \"broken\" is invalid"),
        "{text}"
    );
    assert!(
        text.contains(
            "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\""
        ),
        "{text}"
    );
    assert!(
        text.contains("subjects[0].namespace: Required value"),
        "{text}"
    );
}

#[test]
fn a_node_changes_its_own_node_only() {
    let f = start();
    let admin = f.api.admin_kubeconfig();
    let nodes = "
apiVersion: v1
kind: Node
metadata: {name: kl-worker1}
---
apiVersion: v1
kind: Node
metadata: {name: kl-worker2}
";
    let created = kubectl_as(&admin, &["apply", "-f", "-"], Some(nodes));
    assert!(created.status.success(), "{}", text(&created.stderr));
    let worker1 = f
        .api
        .kubeconfig("system:node:kl-worker1", &["system:nodes"]);
    let own = kubectl_as(&worker1, &["label", "node", "kl-worker1", "lab=yes"], None);
    assert!(own.status.success(), "{}", text(&own.stderr));
    let other = kubectl_as(&worker1, &["label", "node", "kl-worker2", "lab=yes"], None);
    assert_eq!(
        text(&other.stderr),
        "Error from server (Forbidden): nodes \"kl-worker2\" is forbidden: node \"kl-worker1\" is not allowed to modify node \"kl-worker2\""
    );
}

/// Two nodes, each running one Pod that names its own ConfigMap and
/// Secret; the node authorizer's graph decides what each node may read.
struct Graph {
    _f: Fixture,
    worker1: std::path::PathBuf,
}

const TWO_PODS: &str = "
apiVersion: v1
kind: ServiceAccount
metadata: {name: default, namespace: default}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: builder, namespace: default}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: web-conf, namespace: default}
data: {a: b}
---
apiVersion: v1
kind: Secret
metadata: {name: db, namespace: default}
stringData: {password: s3cret}
---
apiVersion: v1
kind: Secret
metadata: {name: other, namespace: default}
stringData: {password: not-yours}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default}
spec:
  nodeName: kl-worker1
  containers:
  - name: c
    image: kube-lite/echo
    env:
    - name: PASSWORD
      valueFrom: {secretKeyRef: {name: db, key: password}}
  volumes:
  - {name: conf, configMap: {name: web-conf}}
---
apiVersion: v1
kind: Pod
metadata: {name: elsewhere, namespace: default}
spec:
  nodeName: kl-worker2
  serviceAccountName: builder
  containers: [{name: c, image: kube-lite/echo}]
  volumes:
  - {name: s, secret: {secretName: other}}
";

fn graph() -> Graph {
    let f = start();
    let admin = f.api.admin_kubeconfig();
    let applied = kubectl_as(&admin, &["apply", "-f", "-"], Some(TWO_PODS));
    assert!(applied.status.success(), "{}", text(&applied.stderr));
    let worker1 = f
        .api
        .kubeconfig("system:node:kl-worker1", &["system:nodes"]);
    Graph { _f: f, worker1 }
}

#[test]
fn a_node_reads_the_configmaps_and_secrets_its_pods_name() {
    let g = graph();
    let secret = kubectl_as(
        &g.worker1,
        &["get", "secret", "db", "-o", "jsonpath={.data.password}"],
        None,
    );
    assert!(secret.status.success(), "{}", text(&secret.stderr));
    assert_eq!(text(&secret.stdout), "czNjcmV0");
    let configmap = kubectl_as(&g.worker1, &["get", "configmap", "web-conf"], None);
    assert!(configmap.status.success(), "{}", text(&configmap.stderr));
}

#[test]
fn a_node_is_refused_what_only_another_nodes_pods_name() {
    let g = graph();
    let denied = kubectl_as(&g.worker1, &["get", "secret", "other"], None);
    assert_eq!(
        text(&denied.stderr),
        "Error from server (Forbidden): secrets \"other\" is forbidden: User \"system:node:kl-worker1\" cannot get resource \"secrets\" in API group \"\" in the namespace \"default\": no relationship found between node 'kl-worker1' and this object"
    );
}

#[test]
fn a_node_may_not_list_every_secret() {
    let g = graph();
    let denied = kubectl_as(&g.worker1, &["get", "secrets"], None);
    assert_eq!(
        text(&denied.stderr),
        "Error from server (Forbidden): secrets is forbidden: User \"system:node:kl-worker1\" cannot list resource \"secrets\" in API group \"\" in the namespace \"default\": No Object name found"
    );
}

#[test]
fn a_node_follows_one_secret_by_its_name_in_a_field_selector() {
    let g = graph();
    let listed = kubectl_as(
        &g.worker1,
        &[
            "get",
            "secrets",
            "--field-selector",
            "metadata.name=db",
            "-o",
            "name",
        ],
        None,
    );
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert_eq!(text(&listed.stdout), "secret/db");
}

#[test]
fn kubectl_auth_can_i_shows_the_graph_for_a_node() {
    let g = graph();
    let can = |args: &[&str]| {
        text(&kubectl_as(&g.worker1, &[&["auth", "can-i"], args].concat(), None).stdout)
    };
    assert_eq!(can(&["get", "secret/db"]), "yes");
    // kubectl prints the authorizer's reason after "no".
    assert_eq!(
        can(&["get", "secret/other"]),
        "no - no relationship found between node 'kl-worker1' and this object"
    );
    assert_eq!(
        can(&["update", "secret/db"]),
        "no - can only read resources of this type"
    );
}

#[test]
fn a_node_gets_tokens_only_for_the_accounts_its_pods_run_as() {
    let g = graph();
    let denied = kubectl_as(&g.worker1, &["create", "token", "builder"], None);
    assert_eq!(
        text(&denied.stderr),
        "error: failed to create token: serviceaccounts \"builder\" is forbidden: User \"system:node:kl-worker1\" cannot create resource \"serviceaccounts/token\" in API group \"\" in the namespace \"default\": no relationship found between node 'kl-worker1' and this object"
    );
}
