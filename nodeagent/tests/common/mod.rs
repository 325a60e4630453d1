//! Helpers shared by the node agent's lab tests.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use e2e::lab::Lab;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

/// A lab of a master and `workers` workers, in a directory of its own
/// (removed with the returned guard, after `lab.down()`). Needs root.
pub fn lab_up(workers: usize) -> (tempfile::TempDir, Lab) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the lab test builds network namespaces and must run as root"
    );
    e2e::harness::ensure_built(&["apiserver", "controller", "nodeagent", "e2e"]);
    let tmp = tempfile::tempdir().unwrap();
    let lab = Lab::up(e2e::lab::LabOptions {
        workers,
        dir: tmp.path().join("lab"),
        bin_dir: e2e::harness::bin_dir(),
    })
    .expect("lab up");
    (tmp, lab)
}

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

/// The lab node's containerd, reached as `crictl` would reach it.
pub async fn node_runtime(lab: &Lab, node: &str) -> nodeagent::cri::Runtime {
    let node = e2e::lab::Node::all(lab.options.workers)
        .into_iter()
        .find(|n| n.name == node)
        .unwrap_or_else(|| panic!("no lab node {node}"));
    let endpoint = e2e::lab::node_layout(&lab.options.dir, &node).containerd_endpoint();
    nodeagent::cri::Runtime::connect(&endpoint)
        .await
        .expect("the node's containerd")
}

/// The runtime's containers of `pod` named `container`, any state.
pub async fn runtime_containers(
    lab: &Lab,
    pod: &Pod,
    container: &str,
) -> Vec<nodeagent::cri::v1::Container> {
    let node = pod.spec.as_ref().unwrap().node_name.clone().unwrap();
    let uid = pod.metadata.uid.clone().unwrap();
    let mut runtime = node_runtime(lab, &node).await;
    let labels = std::collections::HashMap::from([
        (nodeagent::cri::config::POD_UID_LABEL.to_string(), uid),
        (
            nodeagent::cri::config::CONTAINER_NAME_LABEL.to_string(),
            container.to_string(),
        ),
    ]);
    runtime.containers(labels).await.expect("ListContainers")
}

/// The host PID of a container's running process, from its runtime's
/// `ContainerStatus` (what `crictl inspect` shows as `info.pid`).
pub async fn container_pid(lab: &Lab, pod: &Pod, container: &str) -> i32 {
    let node = pod.spec.as_ref().unwrap().node_name.clone().unwrap();
    let runtime = node_runtime(lab, &node).await;
    wait_for(20, &format!("a running {container}"), || async {
        for c in runtime_containers(lab, pod, container).await {
            let (status, info) = runtime.clone().container_status(&c.id).await.ok()?;
            let observed = nodeagent::pods::container::Observed::from_status(&status, &info);
            if let Some(pid) = observed.pid {
                return Some(pid);
            }
        }
        None
    })
    .await
}

/// The ID of the Pod's sandbox, while it has one.
pub async fn sandbox_id(lab: &Lab, pod: &Pod) -> Option<String> {
    let node = pod.spec.as_ref().unwrap().node_name.clone().unwrap();
    let uid = pod.metadata.uid.clone().unwrap();
    let mut runtime = node_runtime(lab, &node).await;
    let labels =
        std::collections::HashMap::from([(nodeagent::cri::config::POD_UID_LABEL.to_string(), uid)]);
    runtime
        .sandboxes(labels)
        .await
        .expect("ListPodSandbox")
        .into_iter()
        .next()
        .map(|s| s.id)
}
