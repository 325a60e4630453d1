//! Pods: `READY 1/2`, `STATUS CrashLoopBackOff`, `RESTARTS 3 (45s ago)`.
//!
//! A Pod's STATUS is not one field. `status.phase` only says Pending,
//! Running, Succeeded or Failed; what a user needs is *why*, and that lives
//! in the container statuses. kube-apiserver's `printPod` derives the text,
//! and [`summarize`] follows it step by step:
//! 1. start from the phase, or `status.reason` when set (`Evicted`);
//!    `SchedulingGated` while `spec.schedulingGates` hold the Pod back;
//! 2. init containers run in order: the first that has not succeeded gives
//!    `Init:ErrImagePull`, `Init:ExitCode:1`, `Init:Signal:9` or `Init:0/2`;
//! 3. once initialised, an app container that is waiting or terminated
//!    gives its reason (`ContainerCreating`, `CrashLoopBackOff`, `Completed`,
//!    `Error`, `OOMKilled`); the first container in the spec wins;
//! 4. a Pod being deleted is `Terminating` (`Unknown` if its node is lost).

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::age::since;
use super::{flag, int, list, or_none, text, timestamp, Column, Printer, AGE, NAME};

pub(super) const PODS: Printer = Printer {
    columns: &[
        NAME,
        Column::string(
            "Ready",
            "The aggregate readiness state of this pod for accepting traffic.",
        ),
        Column::string(
            "Status",
            "The aggregate status of the containers in this pod.",
        ),
        Column::string(
            "Restarts",
            "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
        ),
        AGE,
        Column::string(
            "IP",
            "podIP address allocated to the pod. Routable at least within the cluster.",
        )
        .wide(),
        Column::string(
            "Node",
            "NodeName indicates in which node this pod is scheduled.",
        )
        .wide(),
        Column::string(
            "Nominated Node",
            "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods.",
        )
        .wide(),
        Column::string(
            "Readiness Gates",
            "If specified, all readiness gates will be evaluated for pod readiness.",
        )
        .wide(),
    ],
    cells: pod_cells,
    conditions: Some(pod_conditions),
};

/// Set on a Pod whose node stopped answering; deleting it cannot be
/// confirmed, so kubectl says `Unknown` rather than `Terminating`.
const NODE_LOST: &str = "NodeLost";

fn pod_cells(pod: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let summary = summarize(pod);
    let restarts = match summary.restarts.last {
        Some(last) if summary.restarts.count != 0 => {
            format!(
                "{} ({} ago)",
                summary.restarts.count,
                since(Some(last), now)
            )
        }
        _ => summary.restarts.count.to_string(),
    };
    let ip = list(pod, "/status/podIPs")
        .first()
        .map(|ip| text(ip, "/ip"))
        .unwrap_or_else(|| text(pod, "/status/podIP"));
    vec![
        json!(text(pod, "/metadata/name")),
        json!(format!("{}/{}", summary.ready, summary.total)),
        json!(summary.reason),
        json!(restarts),
        json!(since(timestamp(pod, "/metadata/creationTimestamp"), now)),
        json!(or_none(ip)),
        json!(or_none(text(pod, "/spec/nodeName"))),
        json!(or_none(text(pod, "/status/nominatedNodeName"))),
        json!(readiness_gates(pod)),
    ]
}

/// `true/total` of `spec.readinessGates`: conditions that something other
/// than the kubelet (a load balancer controller, say) must set before the
/// Pod counts as ready.
fn readiness_gates(pod: &Value) -> String {
    let gates = list(pod, "/spec/readinessGates");
    if gates.is_empty() {
        return "<none>".to_string();
    }
    let conditions = list(pod, "/status/conditions");
    let passed = gates
        .iter()
        .filter(|gate| {
            conditions
                .iter()
                .find(|c| text(c, "/type") == text(gate, "/conditionType"))
                .is_some_and(|c| text(c, "/status") == "True")
        })
        .count();
    format!("{passed}/{}", gates.len())
}

/// Finished Pods are marked `Completed` on their row, so that clients can
/// tell them from live ones without parsing STATUS.
fn pod_conditions(pod: &Value) -> Option<Value> {
    let (reason, message) = match text(pod, "/status/phase") {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{
        "type": "Completed",
        "status": "True",
        "reason": reason,
        "message": message,
    }]))
}

/// Restarts summed over containers, and when the latest restart happened
/// (when the previous run of a container finished): that is what tells a
/// crash loop from an old hiccup.
#[derive(Debug, Default, Clone, Copy)]
struct Restarts {
    count: i64,
    last: Option<DateTime<Utc>>,
}

impl Restarts {
    fn add(&mut self, container_status: &Value) {
        self.count += int(container_status, "/restartCount");
        if let Some(finished) = timestamp(container_status, "/lastState/terminated/finishedAt") {
            if self.last.is_none_or(|last| last < finished) {
                self.last = Some(finished);
            }
        }
    }
}

/// What the READY, STATUS and RESTARTS cells are made of.
#[derive(Debug)]
struct PodSummary {
    ready: usize,
    total: usize,
    reason: String,
    restarts: Restarts,
}

fn summarize(pod: &Value) -> PodSummary {
    let phase = text(pod, "/status/phase");
    let mut reason = match text(pod, "/status/reason") {
        "" => phase.to_string(),
        pod_reason => pod_reason.to_string(),
    };
    let gated = list(pod, "/status/conditions")
        .iter()
        .any(|c| text(c, "/type") == "PodScheduled" && text(c, "/reason") == "SchedulingGated");
    if gated {
        reason = "SchedulingGated".to_string();
    }

    // Sidecars are init containers with `restartPolicy: Always`: they keep
    // running beside the app containers, so READY counts them too.
    let init_specs = list(pod, "/spec/initContainers");
    let is_sidecar = |name: &str| {
        init_specs
            .iter()
            .any(|c| text(c, "/name") == name && text(c, "/restartPolicy") == "Always")
    };
    let total = list(pod, "/spec/containers").len()
        + init_specs
            .iter()
            .filter(|c| text(c, "/restartPolicy") == "Always")
            .count();
    let mut ready = 0;

    let mut restarts = Restarts::default();
    let mut sidecar_restarts = Restarts::default();
    let mut initializing = false;
    for (index, status) in list(pod, "/status/initContainerStatuses")
        .iter()
        .enumerate()
    {
        restarts.add(status);
        let sidecar = is_sidecar(text(status, "/name"));
        if sidecar {
            sidecar_restarts.add(status);
        }
        let terminated = status.pointer("/state/terminated").filter(|t| !t.is_null());
        if terminated.is_some_and(|t| int(t, "/exitCode") == 0) {
            continue;
        }
        if sidecar && flag(status, "/started") {
            if flag(status, "/ready") {
                ready += 1;
            }
            continue;
        }
        let waiting = text(status, "/state/waiting/reason");
        reason = if let Some(terminated) = terminated {
            match text(terminated, "/reason") {
                "" => format!("Init:{}", exit_description(terminated)),
                why => format!("Init:{why}"),
            }
        } else if !waiting.is_empty() && waiting != "PodInitializing" {
            format!("Init:{waiting}")
        } else {
            format!("Init:{index}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }

    if !initializing || has_true_condition(pod, "Initialized") {
        // Past initialisation, only sidecars' restarts still count.
        restarts = sidecar_restarts;
        let mut has_running = false;
        // From the last container to the first, so the first one with
        // something to say has the last word.
        for status in list(pod, "/status/containerStatuses").iter().rev() {
            restarts.add(status);
            let waiting = text(status, "/state/waiting/reason");
            let terminated = status.pointer("/state/terminated").filter(|t| !t.is_null());
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if let Some(terminated) = terminated {
                reason = match text(terminated, "/reason") {
                    "" => exit_description(terminated),
                    why => why.to_string(),
                };
            } else if flag(status, "/ready") && status.pointer("/state/running").is_some() {
                has_running = true;
                ready += 1;
            }
        }
        // One container finished but another still runs: the Pod is not done.
        if reason == "Completed" && has_running {
            reason = if has_true_condition(pod, "Ready") {
                "Running".to_string()
            } else {
                "NotReady".to_string()
            };
        }
    }

    let deleting = pod
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null());
    if deleting && text(pod, "/status/reason") == NODE_LOST {
        reason = "Unknown".to_string();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".to_string();
    }

    PodSummary {
        ready,
        total,
        reason,
        restarts,
    }
}

/// `Signal:9` or `ExitCode:137` for a container that ended without a reason.
fn exit_description(terminated: &Value) -> String {
    match int(terminated, "/signal") {
        0 => format!("ExitCode:{}", int(terminated, "/exitCode")),
        signal => format!("Signal:{signal}"),
    }
}

fn has_true_condition(pod: &Value, condition_type: &str) -> bool {
    list(pod, "/status/conditions")
        .iter()
        .any(|c| text(c, "/type") == condition_type && text(c, "/status") == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-25T10:00:00Z".parse().unwrap()
    }

    /// A Pod of the lesson's Deployment, scheduled and running.
    fn ngx_pod() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "ngx-dep-6796688696-cmj2z",
                "namespace": "default",
                "creationTimestamp": "2026-11-25T09:58:00Z",
                "labels": {"app": "ngx-dep", "pod-template-hash": "6796688696"},
            },
            "spec": {
                "nodeName": "node1",
                "containers": [{"name": "nginx", "image": "nginx:alpine"}],
            },
            "status": {
                "phase": "Running",
                "podIP": "10.244.1.5",
                "podIPs": [{"ip": "10.244.1.5"}],
                "conditions": [
                    {"type": "Initialized", "status": "True"},
                    {"type": "Ready", "status": "True"},
                    {"type": "PodScheduled", "status": "True"},
                ],
                "containerStatuses": [{
                    "name": "nginx",
                    "ready": true,
                    "started": true,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": "2026-11-25T09:58:05Z"}},
                }],
            },
        })
    }

    fn cells(pod: &Value) -> Vec<Value> {
        pod_cells(pod, now())
    }

    #[test]
    fn running_pod_shows_ready_count_status_and_wide_columns() {
        assert_eq!(
            cells(&ngx_pod()),
            [
                json!("ngx-dep-6796688696-cmj2z"),
                json!("1/1"),
                json!("Running"),
                json!("0"),
                json!("2m"),
                json!("10.244.1.5"),
                json!("node1"),
                json!("<none>"),
                json!("<none>"),
            ]
        );
    }

    #[test]
    fn crash_looping_container_shows_reason_and_when_it_last_restarted() {
        let mut pod = ngx_pod();
        pod["status"]["containerStatuses"][0] = json!({
            "name": "nginx",
            "ready": false,
            "restartCount": 3,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
            "lastState": {"terminated": {
                "exitCode": 1, "reason": "Error",
                "finishedAt": "2026-11-25T09:59:15Z",
            }},
        });
        let cells = cells(&pod);
        assert_eq!(cells[1], "0/1");
        assert_eq!(cells[2], "CrashLoopBackOff");
        assert_eq!(cells[3], "3 (45s ago)");
    }

    #[test]
    fn image_pull_failure_and_container_creation_come_from_the_waiting_reason() {
        let mut pod = ngx_pod();
        pod["status"]["phase"] = json!("Pending");
        pod["status"]["containerStatuses"][0] = json!({
            "name": "nginx", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ErrImagePull"}},
        });
        assert_eq!(cells(&pod)[2], "ErrImagePull");
        pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] =
            json!("ContainerCreating");
        assert_eq!(cells(&pod)[2], "ContainerCreating");
    }

    #[test]
    fn unscheduled_pod_is_pending_with_nothing_ready() {
        let pod = json!({
            "metadata": {"name": "p", "creationTimestamp": "2026-11-25T09:59:30Z"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Pending"},
        });
        assert_eq!(
            cells(&pod)[..5],
            [
                json!("p"),
                json!("0/2"),
                json!("Pending"),
                json!("0"),
                json!("30s")
            ]
        );
        assert_eq!(cells(&pod)[5], "<none>");
        assert_eq!(cells(&pod)[6], "<none>");
    }

    #[test]
    fn finished_pod_is_completed_and_marked_on_its_row() {
        let mut pod = ngx_pod();
        pod["status"]["phase"] = json!("Succeeded");
        pod["status"]["containerStatuses"][0] = json!({
            "name": "nginx", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
        });
        assert_eq!(cells(&pod)[2], "Completed");
        assert_eq!(cells(&pod)[1], "0/1");
        assert_eq!(pod_conditions(&pod).unwrap()[0]["reason"], "Succeeded");
        assert_eq!(pod_conditions(&ngx_pod()), None);
    }

    #[test]
    fn terminated_without_reason_shows_exit_code_or_signal() {
        let mut pod = ngx_pod();
        pod["status"]["containerStatuses"][0]["state"] = json!({"terminated": {"exitCode": 137}});
        assert_eq!(cells(&pod)[2], "ExitCode:137");
        pod["status"]["containerStatuses"][0]["state"] =
            json!({"terminated": {"exitCode": 0, "signal": 9}});
        assert_eq!(cells(&pod)[2], "Signal:9");
    }

    #[test]
    fn completed_container_next_to_a_running_one_is_running_or_not_ready() {
        let mut pod = ngx_pod();
        pod["spec"]["containers"] = json!([{"name": "job"}, {"name": "nginx"}]);
        let running = pod["status"]["containerStatuses"][0].clone();
        pod["status"]["containerStatuses"] = json!([
            {"name": "job", "ready": false, "restartCount": 0,
             "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            running,
        ]);
        assert_eq!(cells(&pod)[2], "Running");
        assert_eq!(cells(&pod)[1], "1/2");
        pod["status"]["conditions"][1]["status"] = json!("False");
        assert_eq!(cells(&pod)[2], "NotReady");
    }

    #[test]
    fn first_container_with_a_reason_wins() {
        let mut pod = ngx_pod();
        pod["spec"]["containers"] = json!([{"name": "a"}, {"name": "b"}]);
        pod["status"]["containerStatuses"] = json!([
            {"name": "a", "state": {"waiting": {"reason": "ImagePullBackOff"}}},
            {"name": "b", "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
        ]);
        assert_eq!(cells(&pod)[2], "ImagePullBackOff");
    }

    #[test]
    fn init_containers_report_progress_and_failures() {
        let mut pod = ngx_pod();
        pod["status"]["phase"] = json!("Pending");
        pod["status"]["conditions"] = json!([{"type": "Initialized", "status": "False"}]);
        pod["spec"]["initContainers"] = json!([{"name": "migrate"}, {"name": "warm"}]);
        pod["status"]["containerStatuses"] = json!([{
            "name": "nginx", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "PodInitializing"}},
        }]);

        pod["status"]["initContainerStatuses"] = json!([
            {"name": "migrate", "restartCount": 0, "state": {"running": {}}},
            {"name": "warm", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}},
        ]);
        assert_eq!(cells(&pod)[2], "Init:0/2");

        pod["status"]["initContainerStatuses"][0]["state"] =
            json!({"terminated": {"exitCode": 0, "reason": "Completed"}});
        assert_eq!(cells(&pod)[2], "Init:1/2");

        pod["status"]["initContainerStatuses"][1]["state"] =
            json!({"waiting": {"reason": "ErrImagePull"}});
        assert_eq!(cells(&pod)[2], "Init:ErrImagePull");

        pod["status"]["initContainerStatuses"][1]["state"] = json!({"terminated": {"exitCode": 1}});
        pod["status"]["initContainerStatuses"][1]["restartCount"] = json!(2);
        assert_eq!(cells(&pod)[2], "Init:ExitCode:1");
        // While initialising, init container restarts are what count.
        assert_eq!(cells(&pod)[3], "2");

        pod["status"]["initContainerStatuses"][1]["state"] =
            json!({"terminated": {"exitCode": 1, "reason": "Error"}});
        assert_eq!(cells(&pod)[2], "Init:Error");
    }

    #[test]
    fn running_sidecar_counts_in_ready_and_total() {
        let mut pod = ngx_pod();
        pod["spec"]["initContainers"] = json!([{"name": "proxy", "restartPolicy": "Always"}]);
        pod["status"]["initContainerStatuses"] = json!([{
            "name": "proxy", "ready": true, "started": true, "restartCount": 1,
            "state": {"running": {}},
            "lastState": {"terminated": {"exitCode": 2, "finishedAt": "2026-11-25T09:50:00Z"}},
        }]);
        let cells = cells(&pod);
        assert_eq!(cells[1], "2/2");
        assert_eq!(cells[2], "Running");
        assert_eq!(cells[3], "1 (10m ago)");
    }

    #[test]
    fn pod_being_deleted_is_terminating_or_unknown_on_a_lost_node() {
        let mut pod = ngx_pod();
        pod["metadata"]["deletionTimestamp"] = json!("2026-11-25T09:59:59Z");
        assert_eq!(cells(&pod)[2], "Terminating");
        pod["status"]["reason"] = json!(NODE_LOST);
        assert_eq!(cells(&pod)[2], "Unknown");

        let mut finished = ngx_pod();
        finished["metadata"]["deletionTimestamp"] = json!("2026-11-25T09:59:59Z");
        finished["status"]["phase"] = json!("Succeeded");
        finished["status"]["containerStatuses"][0]["state"] =
            json!({"terminated": {"exitCode": 0, "reason": "Completed"}});
        assert_eq!(cells(&finished)[2], "Completed");
    }

    #[test]
    fn pod_reason_and_scheduling_gates_replace_the_phase() {
        let evicted = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Failed", "reason": "Evicted"},
        });
        assert_eq!(cells(&evicted)[2], "Evicted");
        let gated = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"},
            ]},
        });
        assert_eq!(cells(&gated)[2], "SchedulingGated");
    }

    #[test]
    fn wide_columns_show_nomination_and_readiness_gates() {
        let mut pod = ngx_pod();
        pod["status"]["nominatedNodeName"] = json!("node2");
        pod["spec"]["readinessGates"] = json!([
            {"conditionType": "example.com/lb-ready"},
            {"conditionType": "example.com/warm"},
        ]);
        pod["status"]["conditions"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "example.com/lb-ready", "status": "True"}));
        let cells = cells(&pod);
        assert_eq!(cells[7], "node2");
        assert_eq!(cells[8], "1/2");
    }
}
