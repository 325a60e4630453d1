//! The Pod's status: what the kubelet reports, and everything else reads.
//!
//! `kubectl get pods` shows it, and - the point of the lesson - the
//! endpoints controller only puts a Pod behind a Service when its `Ready`
//! condition is `True`. So the status must be right and prompt.
//!
//! The rules here are the kubelet's (`getPhase` and the condition
//! generators), kept as pure functions of the container statuses so that
//! they can be tested alone:
//!
//! - **phase**: `Pending` while a container waits for its first start;
//!   `Running` while one runs (or will be restarted); `Succeeded` when all
//!   ended with 0 and none will restart; `Failed` when all ended and one
//!   failed for good.
//! - **conditions**: `PodReadyToStartContainers` (sandbox and network are
//!   up), `Initialized`, `ContainersReady` and `Ready` (every container
//!   ready), plus the scheduler's `PodScheduled`, kept as it is.

use k8s_openapi::api::core::v1::{ContainerStatus, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The Pod phase from its containers, as the kubelet's `getPhase`.
pub fn phase(restart_policy: &str, containers: &[ContainerStatus]) -> &'static str {
    let (mut waiting, mut running, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in containers {
        let state = c.state.as_ref();
        if state.and_then(|s| s.running.as_ref()).is_some() {
            running += 1;
        } else if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if c
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .is_some()
        {
            // Waiting to be restarted: it ran before.
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    if waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped > 0 {
        return match restart_policy {
            "Always" => "Running",
            _ if stopped == succeeded => "Succeeded",
            "Never" => "Failed",
            _ => "Running",
        };
    }
    "Pending"
}

/// A condition, keeping the old transition time when the status did not
/// change (`lastTransitionTime` says when it *changed*).
fn condition(
    kind: &str,
    status: bool,
    reason: Option<&str>,
    old: &[PodCondition],
    now: &Time,
) -> PodCondition {
    let status = if status { "True" } else { "False" }.to_string();
    let last_transition_time = old
        .iter()
        .find(|c| c.type_ == kind && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .or_else(|| Some(now.clone()));
    PodCondition {
        type_: kind.to_string(),
        status,
        reason: reason.map(str::to_string),
        last_transition_time,
        ..Default::default()
    }
}

/// What the worker knows about the Pod beyond its containers.
pub struct PodFacts<'a> {
    pub restart_policy: &'a str,
    pub sandbox_ready: bool,
    pub pod_ip: Option<String>,
    pub host_ip: String,
    pub start_time: Option<Time>,
    /// The status the API has now (for PodScheduled and transition times).
    pub old: Option<&'a PodStatus>,
}

/// The whole status the kubelet reports for a Pod.
pub fn pod_status(facts: &PodFacts<'_>, containers: Vec<ContainerStatus>, now: &Time) -> PodStatus {
    let old_conditions: Vec<PodCondition> = facts
        .old
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let phase = phase(facts.restart_policy, &containers);
    let all_ready = !containers.is_empty() && containers.iter().all(|c| c.ready);
    // A Pod that completed is not ready (reason PodCompleted), like upstream.
    let finished = matches!(phase, "Succeeded" | "Failed");
    let not_ready_reason = if finished {
        Some("PodCompleted")
    } else {
        Some("ContainersNotReady")
    };
    let ready_reason = if all_ready && !finished {
        None
    } else {
        not_ready_reason
    };
    let mut conditions = vec![
        condition(
            "PodReadyToStartContainers",
            facts.sandbox_ready,
            None,
            &old_conditions,
            now,
        ),
        condition("Initialized", true, None, &old_conditions, now),
        condition(
            "Ready",
            all_ready && !finished,
            ready_reason,
            &old_conditions,
            now,
        ),
        condition(
            "ContainersReady",
            all_ready && !finished,
            ready_reason,
            &old_conditions,
            now,
        ),
    ];
    if let Some(scheduled) = old_conditions.iter().find(|c| c.type_ == "PodScheduled") {
        conditions.push(scheduled.clone());
    }
    let ip_list = |ip: &Option<String>| {
        ip.as_ref()
            .map(|ip| vec![k8s_openapi::api::core::v1::PodIP { ip: ip.clone() }])
    };
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions),
        host_ip: Some(facts.host_ip.clone()),
        host_ips: Some(vec![k8s_openapi::api::core::v1::HostIP {
            ip: facts.host_ip.clone(),
        }]),
        pod_ip: facts.pod_ip.clone(),
        pod_ips: ip_list(&facts.pod_ip),
        start_time: facts.start_time.clone(),
        container_statuses: Some(containers),
        qos_class: Some(
            facts
                .old
                .and_then(|s| s.qos_class.clone())
                .unwrap_or_else(|| "BestEffort".into()),
        ),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    };

    fn running() -> ContainerStatus {
        ContainerStatus {
            name: "c".into(),
            ready: true,
            state: Some(ContainerState {
                running: Some(ContainerStateRunning::default()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn terminated(code: i32) -> ContainerStatus {
        ContainerStatus {
            name: "c".into(),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: code,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn waiting(after_a_run: bool) -> ContainerStatus {
        ContainerStatus {
            name: "c".into(),
            state: Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("CrashLoopBackOff".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            last_state: after_a_run.then(|| ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: 1,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn phases_follow_the_kubelet() {
        assert_eq!(phase("Always", &[waiting(false)]), "Pending");
        assert_eq!(phase("Always", &[running()]), "Running");
        assert_eq!(phase("Always", &[waiting(true)]), "Running");
        assert_eq!(phase("Always", &[terminated(0)]), "Running");
        assert_eq!(phase("Never", &[terminated(0)]), "Succeeded");
        assert_eq!(phase("Never", &[terminated(0), terminated(2)]), "Failed");
        assert_eq!(phase("OnFailure", &[terminated(0)]), "Succeeded");
        assert_eq!(phase("OnFailure", &[terminated(1)]), "Running");
        assert_eq!(phase("Never", &[running(), terminated(1)]), "Running");
    }

    #[test]
    fn ready_only_when_every_container_is() {
        let now = Time(crate::pods::now_seconds());
        let facts = PodFacts {
            restart_policy: "Always",
            sandbox_ready: true,
            pod_ip: Some("10.244.1.2".into()),
            host_ip: "192.168.56.11".into(),
            start_time: None,
            old: None,
        };
        let ready = |s: &PodStatus| {
            s.conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == "Ready")
                .unwrap()
                .status
                .clone()
        };
        let status = pod_status(&facts, vec![running()], &now);
        assert_eq!(ready(&status), "True");
        assert_eq!(status.pod_ips.as_ref().unwrap()[0].ip, "10.244.1.2");
        let mut not_ready = running();
        not_ready.ready = false;
        assert_eq!(
            ready(&pod_status(&facts, vec![running(), not_ready], &now)),
            "False"
        );
        // Transition times stay when nothing changed.
        let later = Time(now.0 + k8s_openapi::jiff::SignedDuration::from_secs(5));
        let again = pod_status(
            &PodFacts {
                old: Some(&status),
                ..facts
            },
            vec![running()],
            &later,
        );
        assert_eq!(again, status, "transition times stay");
    }
}
