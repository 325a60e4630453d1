//! Server-side apply and `managedFields`, with the real kubectl (`apply
//! --server-side`, `--force-conflicts`, `diff --server-side`,
//! `--show-managed-fields`) and kube-rs (`Patch::Apply`). Each test has
//! its own apiserver over HTTPS and the administrator's kubeconfig.

mod common;

use common::{kubectl_as, text};
use serde_json::{json, Value};

type Fixture = common::Secure;

const DEPLOYMENT: &str = "
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, tier: front}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: nginx
        image: nginx:alpine
        ports: [{containerPort: 80}]
";

impl Fixture {
    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        kubectl_as(&self.admin, args, stdin)
    }

    /// Runs kubectl; asserts success; stdout.
    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl(args, stdin);
        assert!(
            out.status.success(),
            "kubectl {}: {}",
            args.join(" "),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// `kubectl apply --server-side` of a manifest.
    fn apply(&self, manifest: &str, extra: &[&str]) -> std::process::Output {
        self.kubectl(
            &[&["apply", "--server-side", "-f", "-"], extra].concat(),
            Some(manifest),
        )
    }

    /// The object as JSON, managedFields included.
    fn get(&self, what: &str) -> Value {
        let out = self.ok(&["get", what, "-o", "json", "--show-managed-fields"], None);
        serde_json::from_str(&out).unwrap()
    }

    /// The managedFields entry of `manager`.
    fn entry(&self, what: &str, manager: &str) -> Option<Value> {
        self.get(what)["metadata"]["managedFields"]
            .as_array()?
            .iter()
            .find(|e| e["manager"] == manager)
            .cloned()
    }
}

#[test]
fn apply_creates_the_object_and_owns_exactly_what_it_sent() {
    let f = Fixture::start();
    let out = f.apply(DEPLOYMENT, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "deployment.apps/web serverside-applied");
    let entry = f
        .entry("deploy/web", "kubectl")
        .expect("an entry for kubectl");
    assert_eq!(entry["operation"], "Apply");
    assert_eq!(entry["apiVersion"], "apps/v1");
    assert_eq!(entry["fieldsType"], "FieldsV1");
    // Not the defaults (strategy, imagePullPolicy...): only the manifest.
    assert_eq!(
        entry["fieldsV1"],
        json!({
            "f:metadata": {"f:labels": {"f:app": {}, "f:tier": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {
                        ".": {}, "f:image": {}, "f:name": {},
                        "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                            ".": {}, "f:containerPort": {}
                        }}
                    }}}
                }
            }
        })
    );
    // The defaults are there all the same.
    assert_eq!(
        f.get("deploy/web")["spec"]["strategy"]["type"],
        "RollingUpdate"
    );
}

#[test]
fn kubectl_get_hides_managed_fields_unless_asked() {
    let f = Fixture::start();
    f.apply(DEPLOYMENT, &[]);
    let yaml = f.ok(&["get", "deploy/web", "-o", "yaml"], None);
    assert!(!yaml.contains("managedFields"), "{yaml}");
    let shown = f.ok(
        &["get", "deploy/web", "-o", "yaml", "--show-managed-fields"],
        None,
    );
    assert!(shown.contains("manager: kubectl"), "{shown}");
}

#[test]
fn a_field_another_manager_set_is_a_conflict_worded_as_upstream() {
    let f = Fixture::start();
    f.apply(DEPLOYMENT, &[]);
    f.ok(&["scale", "deploy/web", "--replicas=5"], None);
    let changed = DEPLOYMENT.replace("replicas: 2", "replicas: 3");
    let out = f.apply(&changed, &[]);
    assert!(!out.status.success(), "the apply must be refused");
    let err = text(&out.stderr);
    assert!(
        err.contains("Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" using apps/v1 at "),
        "{err}"
    );
    assert!(err.contains(": .spec.replicas"), "{err}");
    assert!(err.contains("--force-conflicts"), "kubectl's advice: {err}");
    assert_eq!(
        f.get("deploy/web")["spec"]["replicas"],
        5,
        "nothing changed"
    );
}

#[test]
fn force_conflicts_takes_the_field_over() {
    let f = Fixture::start();
    f.apply(DEPLOYMENT, &[]);
    f.ok(&["scale", "deploy/web", "--replicas=5"], None);
    let changed = DEPLOYMENT.replace("replicas: 2", "replicas: 3");
    let out = f.apply(&changed, &["--force-conflicts"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let object = f.get("deploy/web");
    assert_eq!(object["spec"]["replicas"], 3);
    let scale_owns_nothing = object["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["subresource"] != "scale");
    assert!(
        scale_owns_nothing,
        "{}",
        object["metadata"]["managedFields"]
    );
}

#[test]
fn the_same_value_is_shared_not_a_conflict() {
    let f = Fixture::start();
    f.apply(DEPLOYMENT, &[]);
    f.ok(&["scale", "deploy/web", "--replicas=3"], None);
    let same = DEPLOYMENT.replace("replicas: 2", "replicas: 3");
    let out = f.apply(&same, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn fields_left_out_of_the_next_apply_are_removed_unless_someone_else_owns_them() {
    let f = Fixture::start();
    f.apply(DEPLOYMENT, &[]);
    f.ok(&["label", "deploy/web", "owner=ops"], None);
    let fewer = DEPLOYMENT.replace("labels: {app: web, tier: front}", "labels: {app: web}");
    let out = f.apply(&fewer, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let labels = &f.get("deploy/web")["metadata"]["labels"];
    assert_eq!(labels, &json!({"app": "web", "owner": "ops"}));
}

#[test]
fn a_container_left_out_is_removed_and_one_added_is_merged_by_name() {
    let f = Fixture::start();
    let two = DEPLOYMENT.replace(
        "        ports: [{containerPort: 80}]\n",
        "        ports: [{containerPort: 80}]\n      - name: sidecar\n        image: busybox\n",
    );
    f.apply(&two, &[]);
    let names = |f: &Fixture| -> Vec<String> {
        f.get("deploy/web")["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&f), ["nginx", "sidecar"]);
    f.apply(DEPLOYMENT, &[]);
    assert_eq!(names(&f), ["nginx"]);
}

#[test]
fn diff_server_side_shows_the_change_and_stores_nothing() {
    let f = Fixture::start();
    f.apply(DEPLOYMENT, &[]);
    let changed = DEPLOYMENT.replace("replicas: 2", "replicas: 4");
    let out = f.kubectl(&["diff", "--server-side", "-f", "-"], Some(&changed));
    // kubectl diff exits 1 when there are differences.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let diff = text(&out.stdout);
    assert!(diff.contains("-  replicas: 2"), "{diff}");
    assert!(diff.contains("+  replicas: 4"), "{diff}");
    assert_eq!(f.get("deploy/web")["spec"]["replicas"], 2);
}

#[test]
fn server_side_apply_after_client_side_apply_migrates_without_conflict() {
    let f = Fixture::start();
    f.ok(&["apply", "-f", "-"], Some(DEPLOYMENT));
    assert!(f.entry("deploy/web", "kubectl-client-side-apply").is_some());
    let changed = DEPLOYMENT.replace("replicas: 2", "replicas: 3");
    let out = f.apply(&changed, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(f.get("deploy/web")["spec"]["replicas"], 3);
    // kubectl moved the client-side apply's fields to its apply entry.
    assert!(f.entry("deploy/web", "kubectl-client-side-apply").is_none());
    assert!(f.entry("deploy/web", "kubectl").is_some());
}

#[test]
fn an_update_owns_what_it_set_including_defaults_as_on_a_real_cluster() {
    let f = Fixture::start();
    f.ok(
        &["create", "deployment", "nginx-0930", "--image=nginx"],
        None,
    );
    let entry = f
        .entry("deploy/nginx-0930", "kubectl-create")
        .expect("an entry for kubectl-create");
    assert_eq!(entry["operation"], "Update");
    // As kube-apiserver 1.35 records `kubectl create deployment`.
    assert_eq!(
        entry["fieldsV1"],
        json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:progressDeadlineSeconds": {}, "f:replicas": {}, "f:revisionHistoryLimit": {},
                "f:selector": {},
                "f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}, "f:maxUnavailable": {}}, "f:type": {}},
                "f:template": {
                    "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                    "f:spec": {
                        "f:containers": {"k:{\"name\":\"nginx\"}": {
                            ".": {}, "f:image": {}, "f:imagePullPolicy": {}, "f:name": {},
                            "f:resources": {}, "f:terminationMessagePath": {}, "f:terminationMessagePolicy": {}
                        }},
                        "f:dnsPolicy": {}, "f:restartPolicy": {}, "f:schedulerName": {},
                        "f:securityContext": {}, "f:terminationGracePeriodSeconds": {}
                    }
                }
            }
        })
    );
}

#[tokio::test]
async fn kube_rs_patch_apply_needs_a_field_manager_conflicts_and_forces() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Patch, PatchParams};

    let f = Fixture::start();
    let kubeconfig = kube::config::Kubeconfig::read_from(&f.admin).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let cms: kube::Api<ConfigMap> = kube::Api::namespaced(client, "default");
    let config_map = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings"},
        "data": {"mode": "fast"}
    });

    let err = cms
        .patch(
            "settings",
            &PatchParams::default(),
            &Patch::Apply(&config_map),
        )
        .await
        .expect_err("an apply without a field manager");
    match err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 422);
            assert_eq!(status.reason, "Invalid");
            assert!(
                status
                    .message
                    .contains("fieldManager: Required value: is required for apply patch"),
                "{}",
                status.message
            );
        }
        other => panic!("expected a Status, got {other}"),
    }

    let applied = cms
        .patch(
            "settings",
            &PatchParams::apply("settings-controller"),
            &Patch::Apply(&config_map),
        )
        .await
        .unwrap();
    assert_eq!(applied.data.unwrap()["mode"], "fast");
    let entries = applied.metadata.managed_fields.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].manager.as_deref(), Some("settings-controller"));
    assert_eq!(entries[0].operation.as_deref(), Some("Apply"));

    // A second manager may add its own key, but not change the first's.
    let other = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings"},
        "data": {"mode": "slow", "size": "big"}
    });
    let err = cms
        .patch(
            "settings",
            &PatchParams::apply("tuner"),
            &Patch::Apply(&other),
        )
        .await
        .expect_err("a conflict on data.mode");
    match err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 409);
            assert_eq!(status.reason, "Conflict");
            assert_eq!(
                status.message,
                "Apply failed with 1 conflict: conflict with \"settings-controller\": .data.mode"
            );
        }
        other => panic!("expected a Status, got {other}"),
    }
    let own_key = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings"},
        "data": {"size": "big"}
    });
    let both = cms
        .patch(
            "settings",
            &PatchParams::apply("tuner"),
            &Patch::Apply(&own_key),
        )
        .await
        .unwrap();
    let data = both.data.unwrap();
    assert_eq!(
        (data["mode"].as_str(), data["size"].as_str()),
        ("fast", "big")
    );
    let forced = cms
        .patch(
            "settings",
            &PatchParams::apply("tuner").force(),
            &Patch::Apply(&other),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.unwrap()["mode"], "slow");
    let entries = forced.metadata.managed_fields.unwrap();
    let tuner = entries
        .iter()
        .find(|e| e.manager.as_deref() == Some("tuner"))
        .unwrap();
    assert_eq!(
        tuner.fields_v1.as_ref().unwrap().0,
        json!({"f:data": {"f:mode": {}, "f:size": {}}})
    );
    assert!(
        entries
            .iter()
            .all(|e| e.manager.as_deref() != Some("settings-controller")),
        "the first manager lost its only field"
    );
}

#[test]
fn an_apply_with_managed_fields_or_another_version_is_refused() {
    let f = Fixture::start();
    let with_fields =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  managedFields: [{manager: me}]\n";
    let out = f.apply(with_fields, &[]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("metadata.managedFields must be nil"),
        "{}",
        text(&out.stderr)
    );
}
