//! A container as the runtime reports it.
//!
//! The kubelet keeps no record of its own about containers: everything it
//! needs is asked of the runtime (`ListContainers`, `ContainerStatus`) and
//! found again by the labels it gave each container when it created it
//! (`io.kubernetes.pod.uid`, `io.kubernetes.container.name`, see
//! [`crate::cri::config`]). Each start of a container is a new runtime
//! container whose `attempt` is the restart count: attempt N is what
//! `restartCount: N` reports, and attempt N-1, kept until N ends, is
//! `lastState` and `kubectl logs --previous`.
//!
//! That is also how a restarted agent adopts what runs: it lists the
//! containers labelled with the Pod's UID and takes the newest attempt of
//! each name as current.

use std::collections::HashMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::cri::{config, v1};

/// What the runtime says about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The runtime's ID (without the `containerd://` prefix).
    pub id: String,
    /// The restart count it was created for.
    pub attempt: u32,
    pub state: State,
    pub started_at: Option<Time>,
    pub finished_at: Option<Time>,
    pub exit_code: i32,
    /// `Completed`, `Error`, `OOMKilled`, as the runtime reports it.
    pub reason: String,
    pub message: String,
    /// The image as the runtime resolved it (`docker.io/library/nginx:alpine`).
    pub image: String,
    /// Its digest reference (`docker.io/library/nginx@sha256:...`): `imageID`.
    pub image_ref: String,
    /// `/var/log/pods/<ns>_<pod>_<uid>/<container>/<attempt>.log`.
    pub log_path: String,
    /// The container's main process on the node, while it runs.
    pub pid: Option<i32>,
    /// Where runc keeps the container's state (`runc --root`), for
    /// `kubectl exec` ([`crate::server::enter`]).
    pub runc_root: String,
}

/// containerd's runc state directory when its config names none; the
/// CRI's containers live in its `k8s.io` namespace below it.
pub const DEFAULT_RUNC_ROOT: &str = "/run/containerd/runc";

/// containerd's namespace of the CRI's containers.
pub const CRI_NAMESPACE: &str = "k8s.io";

/// The runtime's four states of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Created,
    Running,
    Exited,
    Unknown,
}

impl Observed {
    /// From `ContainerStatus` and its verbose `info` (containerd puts the
    /// process ID in `info["info"]`, a JSON document).
    pub fn from_status(status: &v1::ContainerStatus, info: &HashMap<String, String>) -> Observed {
        let state = match v1::ContainerState::try_from(status.state) {
            Ok(v1::ContainerState::ContainerCreated) => State::Created,
            Ok(v1::ContainerState::ContainerRunning) => State::Running,
            Ok(v1::ContainerState::ContainerExited) => State::Exited,
            _ => State::Unknown,
        };
        let info: serde_json::Value = info
            .get("info")
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default();
        let pid = info
            .get("pid")
            .and_then(|pid| pid.as_i64())
            .and_then(|pid| i32::try_from(pid).ok())
            .filter(|pid| *pid > 0 && state == State::Running);
        let runc_root = info
            .pointer("/runtimeOptions/root")
            .and_then(|root| root.as_str())
            .filter(|root| !root.is_empty())
            .unwrap_or(DEFAULT_RUNC_ROOT);
        Observed {
            id: status.id.clone(),
            attempt: status.metadata.as_ref().map_or(0, |m| m.attempt),
            state,
            started_at: time(status.started_at),
            finished_at: time(status.finished_at),
            exit_code: status.exit_code,
            reason: status.reason.clone(),
            message: status.message.clone(),
            image: status
                .image
                .as_ref()
                .map(|i| i.image.clone())
                .unwrap_or_default(),
            image_ref: status.image_ref.clone(),
            log_path: status.log_path.clone(),
            pid,
            runc_root: format!("{runc_root}/{CRI_NAMESPACE}"),
        }
    }

    /// `containerd://<id>`: the runtime's name, then its ID.
    pub fn container_id(&self, runtime_name: &str) -> String {
        format!("{runtime_name}://{}", self.id)
    }

    pub fn running(&self) -> bool {
        self.state == State::Running
    }

    pub fn exited(&self) -> bool {
        matches!(self.state, State::Exited | State::Unknown)
    }
}

/// Nanoseconds since the epoch (0: never) as the API's time, to the second.
fn time(nanos: i64) -> Option<Time> {
    if nanos <= 0 {
        return None;
    }
    k8s_openapi::jiff::Timestamp::from_second(nanos / 1_000_000_000)
        .ok()
        .map(Time)
}

/// The labels that find every container of the Pod `uid`.
pub fn pod_selector(uid: &str) -> HashMap<String, String> {
    HashMap::from([(config::POD_UID_LABEL.to_string(), uid.to_string())])
}

/// The name a container was created for, from its labels.
pub fn container_name(container: &v1::Container) -> Option<&str> {
    container
        .labels
        .get(config::CONTAINER_NAME_LABEL)
        .map(String::as_str)
}

/// The runtime's containers of one Pod container in `sandbox`, newest
/// attempt first.
pub fn attempts<'a>(
    containers: &'a [v1::Container],
    sandbox: &str,
    name: &str,
) -> Vec<&'a v1::Container> {
    let mut mine: Vec<&v1::Container> = containers
        .iter()
        .filter(|c| c.pod_sandbox_id == sandbox && container_name(c) == Some(name))
        .collect();
    mine.sort_by_key(|c| std::cmp::Reverse(c.metadata.as_ref().map_or(0, |m| m.attempt)));
    mine
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(id: &str, sandbox: &str, name: &str, attempt: u32) -> v1::Container {
        v1::Container {
            id: id.into(),
            pod_sandbox_id: sandbox.into(),
            metadata: Some(v1::ContainerMetadata {
                name: name.into(),
                attempt,
            }),
            labels: HashMap::from([(config::CONTAINER_NAME_LABEL.to_string(), name.to_string())]),
            ..Default::default()
        }
    }

    #[test]
    fn the_newest_attempt_in_the_sandbox_comes_first() {
        let all = [
            container("a", "s1", "web", 0),
            container("b", "s1", "web", 2),
            container("c", "s1", "web", 1),
            container("d", "s1", "sidecar", 5),
            container("e", "s0", "web", 7),
        ];
        let ids: Vec<&str> = attempts(&all, "s1", "web")
            .iter()
            .map(|c| c.id.as_str())
            .collect();
        assert_eq!(ids, ["b", "c", "a"]);
    }

    #[test]
    fn status_gives_state_times_and_the_pid_of_a_running_container() {
        let status = v1::ContainerStatus {
            id: "abc".into(),
            metadata: Some(v1::ContainerMetadata {
                name: "web".into(),
                attempt: 3,
            }),
            state: v1::ContainerState::ContainerRunning as i32,
            started_at: 1_700_000_000_123_456_789,
            log_path: "/var/log/pods/x/web/3.log".into(),
            ..Default::default()
        };
        let info = HashMap::from([(
            "info".to_string(),
            r#"{"pid": 4242, "runtimeOptions": {"root": "/lab/run/containerd/runc"}}"#.to_string(),
        )]);
        let observed = Observed::from_status(&status, &info);
        assert_eq!(observed.state, State::Running);
        assert_eq!(observed.attempt, 3);
        assert_eq!(observed.pid, Some(4242));
        assert_eq!(observed.runc_root, "/lab/run/containerd/runc/k8s.io");
        assert_eq!(
            observed.started_at.clone().unwrap().0.as_second(),
            1_700_000_000,
            "to the second, as the API keeps it"
        );
        assert_eq!(observed.finished_at, None);
        assert_eq!(observed.container_id("containerd"), "containerd://abc");
    }
}
