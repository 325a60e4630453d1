//! Helpers shared by the node agent's lab tests.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use e2e::lab::Lab;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

/// Polls `check` until it gives `Some`; panics with `what` after `secs`.
pub async fn wait_for<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The status of a Pod condition (`Ready`, ...).
pub fn condition(pod: &Pod, kind: &str) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| c.status.clone())
}

pub fn is_ready(pod: &Pod) -> bool {
    condition(pod, "Ready").as_deref() == Some("True")
}

pub fn statuses(pod: &Pod) -> Vec<ContainerStatus> {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default()
}

/// The host PID of a container's current instance, from the record its
/// monitor wrote under the node agent's data directory.
pub fn container_pid(lab: &Lab, pod: &Pod, container: &str) -> i32 {
    let node = pod.spec.as_ref().unwrap().node_name.clone().unwrap();
    let uid = pod.metadata.uid.as_deref().unwrap();
    let n = statuses(pod)
        .iter()
        .find(|c| c.name == container)
        .map(|c| c.restart_count)
        .unwrap_or(0);
    let record = e2e::lab::nodeagent_data_dir(&lab.options.dir, &node)
        .join(format!("pods/{uid}/containers/{container}/{n}.pid.json"));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).expect("pid record")).unwrap();
    json["pid"].as_i64().unwrap() as i32
}
