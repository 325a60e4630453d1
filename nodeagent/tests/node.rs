//! The node agent's Node, against the real apiserver (and controller) and
//! the real `nodeagent` binary: registration, heartbeats, restarts and the
//! pod CIDR hand-over. The agent's network part is not involved: a node
//! registers before, and without, any network setup.

use std::path::Path;

use e2e::harness::{ApiServer, Component};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::Api;
use serde_json::json;

/// A host-only LAN address: reported, never sent to.
const NODE_IP: &str = "192.168.56.11";

fn client(apiserver: &ApiServer) -> kube::Client {
    kube::Client::try_from(kube::Config::new(apiserver.url.parse().unwrap())).unwrap()
}

/// Starts the real binary for node `name`, renewing its Lease every second.
fn start_agent(apiserver: &ApiServer, name: &str, data_dir: &Path) -> Component {
    start_agent_with(apiserver, name, data_dir, &[])
}

fn start_agent_with(
    apiserver: &ApiServer,
    name: &str,
    data_dir: &Path,
    extra_args: &[&str],
) -> Component {
    let args: Vec<String> = [
        "--server",
        &apiserver.url,
        "--node-name",
        name,
        "--node-ip",
        NODE_IP,
        "--data-dir",
        &data_dir.display().to_string(),
        "--lease-renew-interval",
        "1",
        // This agent runs in the machine's own network namespace.
        "--no-pod-network",
        // The node IP is not an address of this machine: serve the kubelet
        // port on loopback, on a free port (several agents run at once).
        "--kubelet-address",
        "127.0.0.1",
        "--kubelet-port",
        "0",
    ]
    .iter()
    .chain(extra_args)
    .map(|s| s.to_string())
    .collect();
    Component::start("nodeagent", &args)
}

use e2e::harness::eventually_async as eventually;

fn condition(node: &Node, type_: &str) -> Option<NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .cloned()
}

async fn ready_node(nodes: &Api<Node>, name: &str) -> Node {
    eventually(20, "the Node to be Ready", || async {
        let node = nodes.get_opt(name).await.ok()??;
        (condition(&node, "Ready")?.status == "True").then_some(node)
    })
    .await
}

async fn lease_renew_time(leases: &Api<Lease>, name: &str) -> Option<Timestamp> {
    let lease = leases.get_opt(name).await.ok()??;
    lease.spec?.renew_time.map(|t| t.0)
}

#[tokio::test]
async fn a_node_registers_with_the_given_ip_and_stays_ready() {
    let dir = tempfile::tempdir().unwrap();
    let apiserver = ApiServer::start(&dir.path().join("apiserver"));
    let client = client(&apiserver);
    let _agent = start_agent_with(
        &apiserver,
        "worker1",
        &dir.path().join("worker1"),
        &["--node-status-report-interval", "1"],
    );
    let nodes: Api<Node> = Api::all(client.clone());

    let node = ready_node(&nodes, "worker1").await;
    let status = node.status.clone().unwrap();
    let addresses: Vec<(String, String)> = status
        .addresses
        .unwrap()
        .into_iter()
        .map(|a| (a.type_, a.address))
        .collect();
    assert_eq!(
        addresses,
        [
            ("InternalIP".to_string(), NODE_IP.to_string()),
            ("Hostname".to_string(), "worker1".to_string())
        ]
    );
    let ready = condition(&node, "Ready").unwrap();
    assert_eq!(ready.reason.as_deref(), Some("KubeletReady"));
    assert_eq!(
        ready.message.as_deref(),
        Some("kubelet is posting ready status")
    );
    for (type_, reason) in [
        ("MemoryPressure", "KubeletHasSufficientMemory"),
        ("DiskPressure", "KubeletHasNoDiskPressure"),
        ("PIDPressure", "KubeletHasSufficientPID"),
    ] {
        let c = condition(&node, type_).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_deref()),
            ("False", Some(reason))
        );
    }
    let capacity = status.capacity.unwrap();
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(capacity["cpu"].0, cpus.to_string());
    assert!(
        capacity["memory"].0.ends_with("Ki"),
        "{:?}",
        capacity["memory"]
    );
    assert_eq!(capacity["pods"].0, "110");
    assert_eq!(status.allocatable.unwrap(), capacity);
    let info = status.node_info.unwrap();
    assert_eq!(info.kubelet_version, "v1.35.0-kube-lite");
    // No containerd answers on this machine's default socket: the
    // version comes once one does (the lab's nodes report containerd://).
    assert_eq!(info.container_runtime_version, "");
    assert_eq!(info.operating_system, "linux");
    assert!(!info.kernel_version.is_empty());
    let labels = node.metadata.labels.clone().unwrap();
    assert_eq!(labels["kubernetes.io/hostname"], "worker1");
    assert_eq!(labels["kubernetes.io/os"], "linux");
    assert_eq!(labels["kubernetes.io/arch"], info.architecture);

    // The Lease is the heartbeat: it exists and keeps being renewed.
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let first = eventually(10, "the node Lease", || {
        lease_renew_time(&leases, "worker1")
    })
    .await;
    let lease = leases.get("worker1").await.unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("worker1"));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    let owner = &lease.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Node", "worker1")
    );
    assert_eq!(Some(&owner.uid), node.metadata.uid.as_ref());
    eventually(10, "the Lease to be renewed", || async {
        lease_renew_time(&leases, "worker1")
            .await
            .filter(|t| *t > first)
    })
    .await;

    // The status is posted again even though nothing changed: its
    // heartbeat time moves, its transition time does not.
    let registered = condition(&node, "Ready").unwrap();
    let beat = eventually(10, "a status heartbeat", || async {
        let n = nodes.get("worker1").await.ok()?;
        let c = condition(&n, "Ready")?;
        (c.last_heartbeat_time > registered.last_heartbeat_time).then_some(c)
    })
    .await;
    assert_eq!(beat.last_transition_time, registered.last_transition_time);

    // Someone (the node lifecycle controller) marks the node Unknown: the
    // live agent reports Ready again, as a new transition.
    let mut conditions = status.conditions.unwrap();
    let unknown = conditions.iter_mut().find(|c| c.type_ == "Ready").unwrap();
    unknown.status = "Unknown".into();
    unknown.reason = Some("NodeStatusUnknown".into());
    nodes
        .patch_status(
            "worker1",
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"conditions": conditions}})),
        )
        .await
        .unwrap();
    let back = ready_node(&nodes, "worker1").await;
    assert_eq!(
        condition(&back, "Ready").unwrap().reason.as_deref(),
        Some("KubeletReady")
    );
}

#[tokio::test]
async fn a_restarted_agent_keeps_its_node_and_transition_times() {
    let dir = tempfile::tempdir().unwrap();
    let apiserver = ApiServer::start(&dir.path().join("apiserver"));
    let client = client(&apiserver);
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let data_dir = dir.path().join("worker1");

    let agent = start_agent(&apiserver, "worker1", &data_dir);
    let before = ready_node(&nodes, "worker1").await;
    agent.kill();

    let restarted_at = Timestamp::now();
    let _agent = start_agent(&apiserver, "worker1", &data_dir);
    // The agent registers before it renews the Lease: a renewal after the
    // restart means the new process has taken the Node over.
    eventually(20, "the restarted agent to renew its Lease", || async {
        lease_renew_time(&leases, "worker1")
            .await
            .filter(|t| *t > restarted_at)
    })
    .await;

    let all = nodes.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(all.len(), 1, "one Node, not a second registration");
    let after = &all[0];
    assert_eq!(
        after.metadata.uid, before.metadata.uid,
        "the same Node object"
    );
    for type_ in ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"] {
        let (b, a) = (
            condition(&before, type_).unwrap(),
            condition(after, type_).unwrap(),
        );
        assert_eq!(a.status, b.status, "{type_}");
        assert_eq!(
            a.last_transition_time, b.last_transition_time,
            "{type_}: the status did not change, so neither does its transition time"
        );
    }
}

#[tokio::test]
async fn the_agent_reports_the_pod_cidr_the_controller_gives_its_node() {
    let dir = tempfile::tempdir().unwrap();
    let apiserver = ApiServer::start(&dir.path().join("apiserver"));
    let client = client(&apiserver);
    let nodes: Api<Node> = Api::all(client.clone());
    let data_dir = dir.path().join("worker1");
    let _controller = Component::start(
        "controller",
        &[
            "--server".to_string(),
            apiserver.url.clone(),
            "--leader-lease-duration".into(),
            "3".into(),
        ],
    );
    let _agent = start_agent(&apiserver, "worker1", &data_dir);

    let cidr = eventually(30, "the Node's podCIDR", || async {
        nodes.get_opt("worker1").await.ok()??.spec?.pod_cidr
    })
    .await;
    assert!(cidr.starts_with("10.244."), "{cidr}");
    let reported = eventually(10, "the agent's pod-cidr file", || async {
        std::fs::read_to_string(data_dir.join(nodeagent::POD_CIDR_FILE)).ok()
    })
    .await;
    assert_eq!(reported.trim(), cidr);
}
