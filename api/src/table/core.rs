//! The rest of the core group: namespaces, configmaps, nodes and events.
//!
//! A node's STATUS is its `Ready` condition, which the kubelet renews and
//! the node lifecycle controller turns to Unknown when the kubelet falls
//! silent; `SchedulingDisabled` is added by `kubectl cordon`. ROLES are
//! read from `node-role.kubernetes.io/<role>` labels. Events are printed
//! newest-information-first: LAST SEEN, TYPE, REASON, the OBJECT they are
//! about (`pod/ngx-dep-6796688696-cmj2z`) and the MESSAGE.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::age::since;
use super::{flag, int, list, text, timestamp, Column, Printer, AGE, NAME};

pub(super) const NAMESPACES: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Status", "The status of the namespace"),
        AGE,
    ],
    cells: namespace_cells,
    conditions: None,
};

pub(super) const CONFIGMAPS: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Data", "Data contains the configuration data."),
        AGE,
    ],
    cells: configmap_cells,
    conditions: None,
};

pub(super) const SECRETS: Printer = Printer {
    columns: &[
        NAME,
        Column::string(
            "Type",
            "Used to facilitate programmatic handling of secret data.",
        ),
        Column::string("Data", "Data contains the secret data."),
        AGE,
    ],
    cells: secret_cells,
    conditions: None,
};

pub(super) const SERVICEACCOUNTS: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Secrets", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
        AGE,
    ],
    cells: serviceaccount_cells,
    conditions: None,
};

pub(super) const NODES: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Status", "The status of the node"),
        Column::string("Roles", "The roles of the node"),
        AGE,
        Column::string("Version", "Kubelet Version reported by the node."),
        Column::string("Internal-IP", "List of addresses reachable to the node.").wide(),
        Column::string("External-IP", "List of addresses reachable to the node.").wide(),
        Column::string(
            "OS-Image",
            "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
        )
        .wide(),
        Column::string(
            "Kernel-Version",
            "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
        )
        .wide(),
        Column::string(
            "Container-Runtime",
            "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
        )
        .wide(),
    ],
    cells: node_cells,
    conditions: None,
};

pub(super) const EVENTS: Printer = Printer {
    columns: &[
        Column::string(
            "Last Seen",
            "The time at which the most recent occurrence of this event was recorded.",
        ),
        Column::string(
            "Type",
            "Type of this event (Normal, Warning), new types could be added in the future",
        ),
        Column::string(
            "Reason",
            "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
        ),
        Column::string("Object", "The object that this event is about."),
        Column::string(
            "Subobject",
            "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2].",
        )
        .wide(),
        Column::string(
            "Source",
            "The component reporting this event. Should be a short machine understandable string.",
        )
        .wide(),
        Column::string(
            "Message",
            "A human-readable description of the status of this operation.",
        ),
        Column::string(
            "First Seen",
            "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
        )
        .wide(),
        Column::string("Count", "The number of times this event has occurred.").wide(),
        // Event names are generated and of little interest, so NAME is wide-only.
        NAME.wide(),
    ],
    cells: event_cells,
    conditions: None,
};

fn namespace_cells(namespace: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        json!(text(namespace, "/metadata/name")),
        json!(text(namespace, "/status/phase")),
        json!(since(
            timestamp(namespace, "/metadata/creationTimestamp"),
            now
        )),
    ]
}

fn secret_cells(secret: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let entries = |pointer| {
        secret
            .pointer(pointer)
            .and_then(Value::as_object)
            .map_or(0, |map| map.len())
    };
    vec![
        json!(text(secret, "/metadata/name")),
        json!(text(secret, "/type")),
        json!(entries("/data")),
        json!(since(timestamp(secret, "/metadata/creationTimestamp"), now)),
    ]
}

fn serviceaccount_cells(account: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let secrets = account
        .pointer("/secrets")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    vec![
        json!(text(account, "/metadata/name")),
        json!(secrets),
        json!(since(
            timestamp(account, "/metadata/creationTimestamp"),
            now
        )),
    ]
}

fn configmap_cells(configmap: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let entries = |pointer| {
        configmap
            .pointer(pointer)
            .and_then(Value::as_object)
            .map_or(0, |map| map.len())
    };
    vec![
        json!(text(configmap, "/metadata/name")),
        json!(entries("/data") + entries("/binaryData")),
        json!(since(
            timestamp(configmap, "/metadata/creationTimestamp"),
            now
        )),
    ]
}

/// Label prefix naming a node's roles: `node-role.kubernetes.io/control-plane`.
const NODE_ROLE_PREFIX: &str = "node-role.kubernetes.io/";
/// The older single-role label, `kubernetes.io/role=<role>`.
const NODE_ROLE_LABEL: &str = "kubernetes.io/role";

fn node_cells(node: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let info = |field: &str| match text(node, &format!("/status/nodeInfo/{field}")) {
        "" => "<unknown>".to_string(),
        value => value.to_string(),
    };
    vec![
        json!(text(node, "/metadata/name")),
        json!(node_status(node)),
        json!(node_roles(node)),
        json!(since(timestamp(node, "/metadata/creationTimestamp"), now)),
        json!(text(node, "/status/nodeInfo/kubeletVersion")),
        json!(node_address(node, "InternalIP")),
        json!(node_address(node, "ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

/// `Ready`, `NotReady` or `Unknown` (no Ready condition reported yet),
/// with `,SchedulingDisabled` for a cordoned node.
fn node_status(node: &Value) -> String {
    // With duplicates the last condition wins, as in upstream's map.
    let ready = list(node, "/status/conditions")
        .iter()
        .rev()
        .find(|c| text(c, "/type") == "Ready");
    let mut status = match ready {
        Some(c) if text(c, "/status") == "True" => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if flag(node, "/spec/unschedulable") {
        status.push_str(",SchedulingDisabled");
    }
    status
}

fn node_roles(node: &Value) -> String {
    let mut roles = BTreeSet::new();
    if let Some(labels) = node.pointer("/metadata/labels").and_then(Value::as_object) {
        for (key, value) in labels {
            let value = value.as_str().unwrap_or_default();
            if let Some(role) = key.strip_prefix(NODE_ROLE_PREFIX) {
                if !role.is_empty() {
                    roles.insert(role);
                }
            } else if key == NODE_ROLE_LABEL && !value.is_empty() {
                roles.insert(value);
            }
        }
    }
    if roles.is_empty() {
        return "<none>".to_string();
    }
    roles.into_iter().collect::<Vec<_>>().join(",")
}

/// The first address of a type (`InternalIP`, `ExternalIP`), or `<none>`.
fn node_address(node: &Value, address_type: &str) -> String {
    list(node, "/status/addresses")
        .iter()
        .find(|a| text(a, "/type") == address_type)
        .map_or("<none>".to_string(), |a| text(a, "/address").to_string())
}

fn event_cells(event: &Value, now: DateTime<Utc>) -> Vec<Value> {
    // Events from the newer events.k8s.io API have `eventTime` instead of
    // `firstTimestamp`, and a `series` instead of `count`.
    let first_seen = match timestamp(event, "/firstTimestamp") {
        Some(first) => since(Some(first), now),
        None => since(timestamp(event, "/eventTime"), now),
    };
    let mut last_seen = match timestamp(event, "/lastTimestamp") {
        Some(last) => since(Some(last), now),
        None => first_seen.clone(),
    };
    let mut count = int(event, "/count");
    if event.get("series").is_some_and(|s| !s.is_null()) {
        last_seen = since(timestamp(event, "/series/lastObservedTime"), now);
        count = int(event, "/series/count");
    } else if count == 0 {
        count = 1;
    }
    let kind = text(event, "/involvedObject/kind").to_lowercase();
    let object = match text(event, "/involvedObject/name") {
        "" => kind,
        name => format!("{kind}/{name}"),
    };
    vec![
        json!(last_seen),
        json!(text(event, "/type")),
        json!(text(event, "/reason")),
        json!(object),
        json!(text(event, "/involvedObject/fieldPath")),
        json!(event_source(event)),
        json!(text(event, "/message").trim()),
        json!(first_seen),
        json!(count),
        json!(text(event, "/metadata/name")),
    ]
}

/// SOURCE: `kubelet, node1`; the reporting controller and instance stand in
/// for a missing `source`.
fn event_source(event: &Value) -> String {
    let first_non_empty = |a: &'static str, b: &'static str| match text(event, a) {
        "" => text(event, b),
        value => value,
    };
    let component = first_non_empty("/source/component", "/reportingComponent");
    match first_non_empty("/source/host", "/reportingInstance") {
        "" => component.to_string(),
        instance => format!("{component}, {instance}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-25T10:00:00Z".parse().unwrap()
    }

    #[test]
    fn namespace_shows_its_phase() {
        let ns = json!({
            "metadata": {"name": "kube-system", "creationTimestamp": "2026-11-20T10:00:00Z"},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        });
        assert_eq!(
            namespace_cells(&ns, now()),
            [json!("kube-system"), json!("Active"), json!("5d")]
        );
    }

    #[test]
    fn configmap_counts_text_and_binary_keys() {
        let cm = json!({
            "metadata": {"name": "ngx-conf", "creationTimestamp": "2026-11-25T09:55:00Z"},
            "data": {"default.conf": "server { listen 80; }"},
            "binaryData": {"logo.png": "iVBORw0KGgo="},
        });
        assert_eq!(
            configmap_cells(&cm, now()),
            [json!("ngx-conf"), json!(2), json!("5m")]
        );
        assert_eq!(configmap_cells(&json!({}), now())[1], json!(0));
    }

    fn node1() -> Value {
        json!({
            "metadata": {
                "name": "node1",
                "creationTimestamp": "2026-11-23T07:00:00Z",
                "labels": {
                    "kubernetes.io/hostname": "node1",
                    "node-role.kubernetes.io/control-plane": "",
                },
            },
            "spec": {"podCIDR": "10.244.0.0/24"},
            "status": {
                "conditions": [
                    {"type": "MemoryPressure", "status": "False"},
                    {"type": "Ready", "status": "True", "reason": "KubeletReady"},
                ],
                "addresses": [
                    {"type": "InternalIP", "address": "192.168.56.11"},
                    {"type": "Hostname", "address": "node1"},
                ],
                "nodeInfo": {
                    "kubeletVersion": "v1.37.0",
                    "osImage": "Ubuntu 24.04.1 LTS",
                    "kernelVersion": "6.8.0-45-generic",
                    "containerRuntimeVersion": "containerd://1.6.20",
                },
            },
        })
    }

    #[test]
    fn ready_control_plane_node_with_wide_columns() {
        assert_eq!(
            node_cells(&node1(), now()),
            [
                json!("node1"),
                json!("Ready"),
                json!("control-plane"),
                json!("2d3h"),
                json!("v1.37.0"),
                json!("192.168.56.11"),
                json!("<none>"),
                json!("Ubuntu 24.04.1 LTS"),
                json!("6.8.0-45-generic"),
                json!("containerd://1.6.20"),
            ]
        );
    }

    #[test]
    fn node_status_follows_ready_condition_and_cordon() {
        let mut node = node1();
        node["status"]["conditions"][1]["status"] = json!("Unknown");
        assert_eq!(node_status(&node), "NotReady");
        node["spec"]["unschedulable"] = json!(true);
        assert_eq!(node_status(&node), "NotReady,SchedulingDisabled");
        node["status"]["conditions"] = json!([]);
        assert_eq!(node_status(&node), "Unknown,SchedulingDisabled");
        node["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
        assert_eq!(node_status(&node), "Ready,SchedulingDisabled");
    }

    #[test]
    fn node_roles_come_from_labels_sorted() {
        let mut node = node1();
        node["metadata"]["labels"] = json!({
            "node-role.kubernetes.io/worker": "",
            "node-role.kubernetes.io/": "",
            "kubernetes.io/role": "ingress",
            "node-role.kubernetes.io/control-plane": "true",
        });
        assert_eq!(node_roles(&node), "control-plane,ingress,worker");
        node["metadata"]["labels"] = json!({"kubernetes.io/role": ""});
        assert_eq!(node_roles(&node), "<none>");
        let bare = json!({"metadata": {"name": "n"}});
        assert_eq!(
            node_cells(&bare, now())[7..],
            [json!("<unknown>"), json!("<unknown>"), json!("<unknown>")]
        );
    }

    #[test]
    fn core_event_about_a_pod() {
        let event = json!({
            "metadata": {"name": "ngx-dep-6796688696-cmj2z.180a1b2c3d4e5f60"},
            "involvedObject": {
                "kind": "Pod",
                "name": "ngx-dep-6796688696-cmj2z",
                "namespace": "default",
                "fieldPath": "spec.containers{nginx}",
            },
            "reason": "Pulled",
            "message": "Container image \"nginx:alpine\" already present on machine\n",
            "source": {"component": "kubelet", "host": "node1"},
            "firstTimestamp": "2026-11-25T09:50:00Z",
            "lastTimestamp": "2026-11-25T09:59:00Z",
            "count": 3,
            "type": "Normal",
        });
        assert_eq!(
            event_cells(&event, now()),
            [
                json!("60s"),
                json!("Normal"),
                json!("Pulled"),
                json!("pod/ngx-dep-6796688696-cmj2z"),
                json!("spec.containers{nginx}"),
                json!("kubelet, node1"),
                json!("Container image \"nginx:alpine\" already present on machine"),
                json!("10m"),
                json!(3),
                json!("ngx-dep-6796688696-cmj2z.180a1b2c3d4e5f60"),
            ]
        );
    }

    #[test]
    fn new_style_event_with_series_and_reporting_controller() {
        let event = json!({
            "metadata": {"name": "e"},
            "involvedObject": {"kind": "Node"},
            "reason": "NodeNotReady",
            "type": "Warning",
            "eventTime": "2026-11-25T09:40:00.000000Z",
            "series": {"count": 7, "lastObservedTime": "2026-11-25T09:58:00.000000Z"},
            "reportingComponent": "node-controller",
        });
        let cells = event_cells(&event, now());
        assert_eq!(cells[0], "2m");
        assert_eq!(cells[3], "node");
        assert_eq!(cells[5], "node-controller");
        assert_eq!(cells[7], "20m");
        assert_eq!(cells[8], json!(7));

        let single =
            json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "p"}});
        let cells = event_cells(&single, now());
        assert_eq!(cells[0], "<unknown>");
        assert_eq!(cells[8], json!(1));
    }
}
