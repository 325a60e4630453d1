//! Workload controllers: deployments, replicasets, daemonsets and
//! statefulsets.
//!
//! Their rows compare what is wanted with what is: a Deployment's READY
//! `2/2` is ready Pods over `spec.replicas`, UP-TO-DATE counts Pods already
//! running the current template (a rollout in progress shows fewer), and
//! AVAILABLE those ready for at least `minReadySeconds`. With `-o wide` they
//! also show the template's CONTAINERS and IMAGES and the SELECTOR that
//! picks their Pods (`app=ngx-dep`).

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::age::since;
use super::{
    container_cells, format_labels, int, list, text, timestamp, Column, Printer, AGE, CONTAINERS,
    IMAGES, NAME,
};

pub(super) const DEPLOYMENTS: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Ready", "Number of the pod with ready state"),
        Column::string(
            "Up-to-date",
            "Total number of non-terminating pods targeted by this deployment that have the desired template spec.",
        ),
        Column::string(
            "Available",
            "Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by this deployment.",
        ),
        AGE,
        CONTAINERS,
        IMAGES,
        Column::string("Selector", "Label selector for pods.").wide(),
    ],
    cells: deployment_cells,
    conditions: None,
};

pub(super) const REPLICASETS: Printer = Printer {
    columns: &[
        NAME,
        Column::integer("Desired", "Replicas is the number of desired pods."),
        Column::integer(
            "Current",
            "Replicas is the most recently observed number of non-terminating pods.",
        ),
        Column::integer(
            "Ready",
            "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition.",
        ),
        AGE,
        CONTAINERS,
        IMAGES,
        Column::string(
            "Selector",
            "Selector is a label query over pods that should match the replica count.",
        )
        .wide(),
    ],
    cells: replicaset_cells,
    conditions: None,
};

pub(super) const DAEMONSETS: Printer = Printer {
    columns: &[
        NAME,
        Column::integer(
            "Desired",
            "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod).",
        ),
        Column::integer(
            "Current",
            "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.",
        ),
        Column::integer(
            "Ready",
            "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.",
        ),
        Column::integer(
            "Up-to-date",
            "The total number of nodes that are running updated daemon pod",
        ),
        Column::integer(
            "Available",
            "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)",
        ),
        Column::string(
            "Node Selector",
            "NodeSelector is a selector which must be true for the pod to fit on a node.",
        ),
        AGE,
        CONTAINERS,
        IMAGES,
        Column::string(
            "Selector",
            "A label query over pods that are managed by the daemon set.",
        )
        .wide(),
    ],
    cells: daemonset_cells,
    conditions: None,
};

pub(super) const CONTROLLER_REVISIONS: Printer = Printer {
    columns: &[
        NAME,
        Column::string(
            "Controller",
            "Controller of the object, with the form <kind>/<name>",
        ),
        Column::integer("Revision", "Revision of the ControllerRevision"),
        AGE,
    ],
    cells: controller_revision_cells,
    conditions: None,
};

/// `statefulset.apps/web`: the controller's kind, group and name.
fn controller_revision_cells(revision: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let controller = list(revision, "/metadata/ownerReferences")
        .iter()
        .find(|owner| owner["controller"] == true)
        .map_or("<none>".to_string(), |owner| {
            let kind = owner["kind"].as_str().unwrap_or_default().to_lowercase();
            let group = owner["apiVersion"]
                .as_str()
                .and_then(|v| v.rsplit_once('/'))
                .map_or("", |(group, _)| group);
            let name = owner["name"].as_str().unwrap_or_default();
            if group.is_empty() {
                format!("{kind}/{name}")
            } else {
                format!("{kind}.{group}/{name}")
            }
        });
    vec![
        json!(text(revision, "/metadata/name")),
        json!(controller),
        json!(int(revision, "/revision")),
        json!(since(
            timestamp(revision, "/metadata/creationTimestamp"),
            now
        )),
    ]
}

pub(super) const STATEFULSETS: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Ready", "Number of the pod with ready state"),
        AGE,
        CONTAINERS,
        IMAGES,
    ],
    cells: statefulset_cells,
    conditions: None,
};

fn statefulset_cells(statefulset: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (containers, images) = container_cells(&statefulset["spec"]["template"]);
    vec![
        json!(text(statefulset, "/metadata/name")),
        json!(format!(
            "{}/{}",
            int(statefulset, "/status/readyReplicas"),
            desired_replicas(statefulset)
        )),
        json!(since(
            timestamp(statefulset, "/metadata/creationTimestamp"),
            now
        )),
        json!(containers),
        json!(images),
    ]
}

fn deployment_cells(deployment: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (containers, images) = container_cells(&deployment["spec"]["template"]);
    // `replicas` defaults to 1; an invalid selector is shown, not hidden.
    let selector = label_selector_text(deployment.pointer("/spec/selector"))
        .unwrap_or_else(|_| "<invalid>".to_string());
    vec![
        json!(text(deployment, "/metadata/name")),
        json!(format!(
            "{}/{}",
            int(deployment, "/status/readyReplicas"),
            desired_replicas(deployment)
        )),
        json!(int(deployment, "/status/updatedReplicas")),
        json!(int(deployment, "/status/availableReplicas")),
        json!(since(
            timestamp(deployment, "/metadata/creationTimestamp"),
            now
        )),
        json!(containers),
        json!(images),
        json!(selector),
    ]
}

fn replicaset_cells(replicaset: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (containers, images) = container_cells(&replicaset["spec"]["template"]);
    vec![
        json!(text(replicaset, "/metadata/name")),
        json!(desired_replicas(replicaset)),
        json!(int(replicaset, "/status/replicas")),
        json!(int(replicaset, "/status/readyReplicas")),
        json!(since(
            timestamp(replicaset, "/metadata/creationTimestamp"),
            now
        )),
        json!(containers),
        json!(images),
        json!(format_label_selector(replicaset.pointer("/spec/selector"))),
    ]
}

fn daemonset_cells(daemonset: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (containers, images) = container_cells(&daemonset["spec"]["template"]);
    vec![
        json!(text(daemonset, "/metadata/name")),
        json!(int(daemonset, "/status/desiredNumberScheduled")),
        json!(int(daemonset, "/status/currentNumberScheduled")),
        json!(int(daemonset, "/status/numberReady")),
        json!(int(daemonset, "/status/updatedNumberScheduled")),
        json!(int(daemonset, "/status/numberAvailable")),
        json!(format_labels(
            daemonset.pointer("/spec/template/spec/nodeSelector")
        )),
        json!(since(
            timestamp(daemonset, "/metadata/creationTimestamp"),
            now
        )),
        json!(containers),
        json!(images),
        json!(format_label_selector(daemonset.pointer("/spec/selector"))),
    ]
}

/// `spec.replicas`, which the apiserver defaults to 1.
fn desired_replicas(workload: &Value) -> i64 {
    workload
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

/// A `LabelSelector` (`matchLabels` + `matchExpressions`) the way kubectl
/// prints it: `app=ngx,env in (prod,staging),!canary`, requirements sorted
/// by key; `<none>` when it selects on nothing, `<error>` when invalid.
pub fn format_label_selector(selector: Option<&Value>) -> String {
    match label_selector_text(selector) {
        Ok(text) if text.is_empty() => "<none>".to_string(),
        Ok(text) => text,
        Err(_) => "<error>".to_string(),
    }
}

/// Why a `matchExpressions` entry cannot be turned into a requirement.
#[derive(Debug, PartialEq, Eq)]
struct InvalidRequirement;

fn label_selector_text(selector: Option<&Value>) -> Result<String, InvalidRequirement> {
    let Some(selector) = selector else {
        return Ok(String::new());
    };
    // (key, requirement) pairs; sorting by key is what makes the text stable.
    let mut requirements: Vec<(&str, String)> = Vec::new();
    if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
        for (key, value) in labels {
            requirements.push((key, format!("{key}={}", value.as_str().unwrap_or_default())));
        }
    }
    for expression in list(selector, "/matchExpressions") {
        let key = text(expression, "/key");
        let mut values: Vec<&str> = list(expression, "/values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let requirement = match (text(expression, "/operator"), values.is_empty()) {
            ("In", false) => format!("{key} in ({})", values.join(",")),
            ("NotIn", false) => format!("{key} notin ({})", values.join(",")),
            ("Exists", true) => key.to_string(),
            ("DoesNotExist", true) => format!("!{key}"),
            _ => return Err(InvalidRequirement),
        };
        requirements.push((key, requirement));
    }
    requirements.sort_by(|a, b| a.0.cmp(b.0));
    Ok(requirements
        .into_iter()
        .map(|(_, requirement)| requirement)
        .collect::<Vec<_>>()
        .join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-25T10:00:00Z".parse().unwrap()
    }

    /// The lesson's `ngx-dep.yml` after its rollout finished.
    fn ngx_dep() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "ngx-dep", "creationTimestamp": "2026-11-25T09:55:00Z"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "ngx-dep"}},
                "template": {
                    "metadata": {"labels": {"app": "ngx-dep"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx:alpine"}]},
                },
            },
            "status": {
                "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2,
            },
        })
    }

    #[test]
    fn deployment_of_the_lesson() {
        assert_eq!(
            deployment_cells(&ngx_dep(), now()),
            [
                json!("ngx-dep"),
                json!("2/2"),
                json!(2),
                json!(2),
                json!("5m"),
                json!("nginx"),
                json!("nginx:alpine"),
                json!("app=ngx-dep"),
            ]
        );
    }

    #[test]
    fn deployment_scaling_up_and_without_status() {
        let mut dep = ngx_dep();
        dep["spec"]["replicas"] = json!(5);
        assert_eq!(deployment_cells(&dep, now())[1], "2/5");
        dep["spec"].as_object_mut().unwrap().remove("replicas");
        dep.as_object_mut().unwrap().remove("status");
        let cells = deployment_cells(&dep, now());
        assert_eq!(cells[1..4], [json!("0/1"), json!(0), json!(0)]);
    }

    #[test]
    fn replicaset_counts_desired_current_ready() {
        let rs = json!({
            "metadata": {"name": "ngx-dep-6796688696", "creationTimestamp": "2026-11-25T09:55:00Z"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "ngx-dep", "pod-template-hash": "6796688696"}},
                "template": {"spec": {"containers": [
                    {"name": "nginx", "image": "nginx:alpine"},
                    {"name": "exporter", "image": "nginx/nginx-prometheus-exporter:1.3"},
                ]}},
            },
            "status": {"replicas": 2, "readyReplicas": 1},
        });
        assert_eq!(
            replicaset_cells(&rs, now()),
            [
                json!("ngx-dep-6796688696"),
                json!(2),
                json!(2),
                json!(1),
                json!("5m"),
                json!("nginx,exporter"),
                json!("nginx:alpine,nginx/nginx-prometheus-exporter:1.3"),
                json!("app=ngx-dep,pod-template-hash=6796688696"),
            ]
        );
    }

    #[test]
    fn statefulset_is_ready_over_desired() {
        let sts = json!({
            "metadata": {"name": "web", "creationTimestamp": "2026-11-23T10:00:00Z"},
            "spec": {
                "replicas": 3,
                "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:alpine"}]}},
            },
            "status": {"replicas": 2, "readyReplicas": 1},
        });
        assert_eq!(
            statefulset_cells(&sts, now()),
            [
                json!("web"),
                json!("1/3"),
                json!("2d"),
                json!("nginx"),
                json!("nginx:alpine"),
            ]
        );
    }

    #[test]
    fn daemonset_counts_nodes_and_shows_node_selector() {
        let ds = json!({
            "metadata": {"name": "kube-proxy", "creationTimestamp": "2026-11-23T10:00:00Z"},
            "spec": {
                "selector": {"matchLabels": {"k8s-app": "kube-proxy"}},
                "template": {"spec": {
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "containers": [{"name": "kube-proxy", "image": "registry.k8s.io/kube-proxy:v1.37.0"}],
                }},
            },
            "status": {
                "desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                "updatedNumberScheduled": 3, "numberAvailable": 2,
            },
        });
        assert_eq!(
            daemonset_cells(&ds, now()),
            [
                json!("kube-proxy"),
                json!(3),
                json!(3),
                json!(2),
                json!(3),
                json!(2),
                json!("kubernetes.io/os=linux"),
                json!("2d"),
                json!("kube-proxy"),
                json!("registry.k8s.io/kube-proxy:v1.37.0"),
                json!("k8s-app=kube-proxy"),
            ]
        );
        let bare = daemonset_cells(&json!({}), now());
        assert_eq!(bare[6], "<none>");
        assert_eq!(bare[10], "<none>");
    }

    #[test]
    fn label_selectors_print_like_kubectl() {
        let selector = json!({
            "matchLabels": {"tier": "web", "app": "ngx"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["staging", "prod"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "zone", "operator": "NotIn", "values": ["b"]},
                {"key": "gpu", "operator": "Exists"},
            ],
        });
        assert_eq!(
            format_label_selector(Some(&selector)),
            "app=ngx,!canary,env in (prod,staging),gpu,tier=web,zone notin (b)"
        );
        assert_eq!(format_label_selector(Some(&json!({}))), "<none>");
        assert_eq!(format_label_selector(None), "<none>");
        let bad = json!({"matchExpressions": [{"key": "env", "operator": "In", "values": []}]});
        assert_eq!(format_label_selector(Some(&bad)), "<error>");
        let mut dep = ngx_dep();
        dep["spec"]["selector"] = bad;
        assert_eq!(deployment_cells(&dep, now())[7], "<invalid>");
    }
}
