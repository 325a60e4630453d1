//! The Node: how a machine joins the cluster and tells it it is alive.
//!
//! A cluster knows a machine only through its Node object, and the kubelet
//! writes it. This is the kubelet's *node status manager*:
//!
//! - **Registration.** At start the agent creates its Node (or, when one
//!   with its name exists, a restart, it takes it over) with the labels the
//!   scheduler and users select on (`kubernetes.io/hostname`,
//!   `kubernetes.io/os`, `kubernetes.io/arch`) and a status saying what the
//!   machine is.
//! - **Status.** `addresses`: the `InternalIP` is `--node-ip`, given by the
//!   admin, never guessed from the interfaces: on a VirtualBox VM the first
//!   NIC is the NAT one, 10.0.2.15 on *every* VM, and a node reporting it
//!   sends the other nodes' traffic to themselves. `capacity` (CPUs, memory,
//!   110 Pods) and `allocatable` (the same: kube-lite reserves nothing for
//!   the system), `nodeInfo` (kernel, OS, versions) and the conditions:
//!   `Ready`, and the `MemoryPressure`, `DiskPressure`, `PIDPressure`
//!   that the scheduler avoids.
//! - **Heartbeats.** Two of them, as upstream since Kubernetes 1.17:
//!   the node's **Lease** in `kube-node-lease`, a tiny object renewed every
//!   10 s (`--lease-renew-interval`), which the controller's node lifecycle
//!   loop watches to tell a live node from a dead one; and the Node status,
//!   big and watched by many, posted only when it changes or once a minute
//!   (`--node-status-report-interval`). A condition's `lastHeartbeatTime`
//!   moves with every post; its `lastTransitionTime` only when its status
//!   changes, so `kubectl describe node` shows since when a node is Ready,
//!   restarts of the agent included.
//! - **Pod CIDR.** The controller writes the node's share of the Pod network
//!   into `spec.podCIDR`. The agent watches its Node and passes the block on
//!   (a [`tokio::sync::watch`] channel) to the network part, which numbers
//!   Pods from it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::Api;
use serde_json::json;
use tokio::sync::watch;

use crate::ipam::PodCidr;

/// Where kubelets keep their heartbeat Leases, one per node, named after it.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// How long a Lease holds without renewal (upstream's 40 s): the
/// controller's grace period is measured against the same figure.
pub const LEASE_DURATION_SECONDS: i32 = 40;
/// The kubelet version this agent claims (`kubectl get nodes` VERSION).
pub const KUBELET_VERSION: &str = "v1.35.0-kube-lite";
/// The container runtime: processes in namespaces, run by the agent itself.
/// Upstream kubelet's default `--max-pods`.
pub const MAX_PODS: u32 = 110;

/// The labels every kubelet puts on its Node.
pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";
pub const LABEL_OS: &str = "kubernetes.io/os";
pub const LABEL_ARCH: &str = "kubernetes.io/arch";

/// What went wrong talking to the apiserver about the Node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("node {node}: {action}: {source}")]
    Api {
        node: String,
        action: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("node {node}: the Node watch ended")]
    WatchEnded { node: String },
}

/// What the node reports about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeIdentity {
    /// The Node's name (`--node-name`).
    pub name: String,
    /// Its `InternalIP` (`--node-ip`).
    pub ip: Ipv4Addr,
    /// The port of the kubelet's server ([`crate::server`]), reported as
    /// `status.daemonEndpoints.kubeletEndpoint.Port`: where the apiserver
    /// sends `kubectl logs` and `kubectl exec`.
    pub kubelet_port: u16,
    /// Extra labels (`--node-labels`), e.g. kubeadm's
    /// `node-role.kubernetes.io/control-plane=` on the control-plane node.
    pub extra_labels: BTreeMap<String, String>,
    /// Taints the Node is created with (`--register-with-taints`), e.g.
    /// `node-role.kubernetes.io/control-plane:NoSchedule`, which keeps
    /// ordinary Pods off the control-plane node.
    pub taints: Vec<k8s_openapi::api::core::v1::Taint>,
}

/// Facts about the machine, read once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// CPUs this process may use (affinity and cgroup quota included).
    pub cpus: usize,
    /// `MemTotal` of /proc/meminfo, in KiB.
    pub memory_kib: u64,
    /// `PRETTY_NAME` of /etc/os-release.
    pub os_image: String,
    /// The kernel release (`uname -r`).
    pub kernel_version: String,
    /// Go's name for the CPU architecture (`amd64`, `arm64`), as
    /// Kubernetes labels and images use.
    pub architecture: String,
    /// /etc/machine-id, empty when absent.
    pub machine_id: String,
    /// Changes at every boot: tells a reboot from an agent restart.
    pub boot_id: String,
    /// `containerd://1.6.20`, once the runtime answered (empty before).
    pub container_runtime_version: String,
}

impl Machine {
    /// Reads the machine's facts from /proc and /etc. Missing files give
    /// empty or default values: they are informational.
    pub fn read() -> Machine {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_kib: mem_total_kib(&read("/proc/meminfo")).unwrap_or(0),
            os_image: pretty_name(&read("/etc/os-release")).unwrap_or_else(|| "Linux".into()),
            kernel_version: read("/proc/sys/kernel/osrelease").trim().to_string(),
            architecture: go_arch(std::env::consts::ARCH).to_string(),
            machine_id: read("/etc/machine-id").trim().to_string(),
            boot_id: read("/proc/sys/kernel/random/boot_id").trim().to_string(),
            container_runtime_version: String::new(),
        }
    }
}

/// `MemTotal:  16318760 kB` -> 16318760.
fn mem_total_kib(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"` -> the quoted text.
fn pretty_name(os_release: &str) -> Option<String> {
    os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim().trim_matches('"').trim_matches('\'').to_string())
        .filter(|v| !v.is_empty())
}

/// Rust's architecture names -> Go's, which Kubernetes uses.
fn go_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// The labels of the Node.
pub fn labels(node: &NodeIdentity, machine: &Machine) -> BTreeMap<String, String> {
    let mut labels = node.extra_labels.clone();
    labels.extend([
        (LABEL_HOSTNAME.to_string(), node.name.clone()),
        (LABEL_OS.to_string(), "linux".to_string()),
        (LABEL_ARCH.to_string(), machine.architecture.clone()),
    ]);
    labels
}

/// Parses `key=value,key2=` (`--node-labels`).
pub fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    text.split(',')
        .filter(|kv| !kv.trim().is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            if k.trim().is_empty() {
                return Err(format!("invalid label {kv:?}: expected key=value"));
            }
            Ok((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// Parses `key=value:Effect,key:Effect` (`--register-with-taints`).
pub fn parse_taints(text: &str) -> Result<Vec<k8s_openapi::api::core::v1::Taint>, String> {
    text.split(',')
        .filter(|t| !t.trim().is_empty())
        .map(|t| {
            let (kv, effect) = t
                .rsplit_once(':')
                .ok_or_else(|| format!("invalid taint {t:?}: expected key[=value]:Effect"))?;
            if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
                return Err(format!(
                    "invalid taint {t:?}: effect must be NoSchedule, PreferNoSchedule or NoExecute"
                ));
            }
            let (key, value) = match kv.split_once('=') {
                Some((k, v)) => (k, Some(v.to_string())),
                None => (kv, None),
            };
            Ok(k8s_openapi::api::core::v1::Taint {
                key: key.trim().to_string(),
                value,
                effect: effect.to_string(),
                time_added: None,
            })
        })
        .collect()
}

/// The conditions this agent reports: (type, status, reason, message),
/// with upstream's reasons and messages.
const CONDITIONS: [(&str, &str, &str, &str); 4] = [
    (
        "MemoryPressure",
        "False",
        "KubeletHasSufficientMemory",
        "kubelet has sufficient memory available",
    ),
    (
        "DiskPressure",
        "False",
        "KubeletHasNoDiskPressure",
        "kubelet has no disk pressure",
    ),
    (
        "PIDPressure",
        "False",
        "KubeletHasSufficientPID",
        "kubelet has sufficient PID available",
    ),
    (
        "Ready",
        "True",
        "KubeletReady",
        "kubelet is posting ready status",
    ),
];

/// The status the node should report now. `previous` is what the Node
/// says today: a condition whose status is unchanged keeps its
/// `lastTransitionTime`, and conditions of other types (written by someone
/// else) are kept as they are.
pub fn desired_status(
    node: &NodeIdentity,
    machine: &Machine,
    previous: Option<&NodeStatus>,
    now: Timestamp,
) -> NodeStatus {
    let previous_conditions = previous
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut conditions: Vec<NodeCondition> = CONDITIONS
        .iter()
        .map(|(type_, status, reason, message)| {
            let since = previous_conditions
                .iter()
                .find(|c| c.type_ == *type_ && c.status == *status)
                .and_then(|c| c.last_transition_time.clone())
                .unwrap_or(Time(now));
            NodeCondition {
                type_: type_.to_string(),
                status: status.to_string(),
                reason: Some(reason.to_string()),
                message: Some(message.to_string()),
                last_heartbeat_time: Some(Time(now)),
                last_transition_time: Some(since),
            }
        })
        .collect();
    conditions.extend(
        previous_conditions
            .into_iter()
            .filter(|c| !CONDITIONS.iter().any(|(t, ..)| *t == c.type_)),
    );
    let resources = BTreeMap::from([
        ("cpu".to_string(), Quantity(machine.cpus.to_string())),
        (
            "memory".to_string(),
            Quantity(format!("{}Ki", machine.memory_kib)),
        ),
        ("pods".to_string(), Quantity(MAX_PODS.to_string())),
    ]);
    NodeStatus {
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: node.ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: node.name.clone(),
            },
        ]),
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(node.kubelet_port),
            }),
        }),
        conditions: Some(conditions),
        node_info: Some(NodeSystemInfo {
            architecture: machine.architecture.clone(),
            boot_id: machine.boot_id.clone(),
            container_runtime_version: machine.container_runtime_version.clone(),
            kernel_version: machine.kernel_version.clone(),
            kube_proxy_version: String::new(),
            kubelet_version: KUBELET_VERSION.into(),
            machine_id: machine.machine_id.clone(),
            operating_system: "linux".into(),
            os_image: machine.os_image.clone(),
            system_uuid: String::new(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// True when `reported` already says everything `desired` does, heartbeat
/// times aside: nothing to post but the periodic heartbeat.
pub fn reports_match(desired: &NodeStatus, reported: &NodeStatus) -> bool {
    fn without_heartbeats(status: &NodeStatus) -> Option<Vec<NodeCondition>> {
        status.conditions.clone().map(|cs| {
            cs.into_iter()
                .map(|c| NodeCondition {
                    last_heartbeat_time: None,
                    ..c
                })
                .collect()
        })
    }
    desired.addresses == reported.addresses
        && desired.capacity == reported.capacity
        && desired.allocatable == reported.allocatable
        && desired.node_info == reported.node_info
        && desired.daemon_endpoints == reported.daemon_endpoints
        && without_heartbeats(desired) == without_heartbeats(reported)
}

/// The pod CIDR the controller gave the Node, if any.
pub fn pod_cidr(node: &Node) -> Option<String> {
    let spec = node.spec.as_ref()?;
    spec.pod_cidrs
        .as_ref()
        .and_then(|c| c.first().cloned())
        .or_else(|| spec.pod_cidr.clone())
        .filter(|c| !c.is_empty())
}

/// Creates the Node, or takes over the existing one: labels added, status
/// posted (transition times kept). Returns the Node as stored.
pub async fn register(
    client: &kube::Client,
    node: &NodeIdentity,
    machine: &Machine,
) -> Result<Node, NodeError> {
    let api_error = |action| {
        let node = node.name.clone();
        move |source| NodeError::Api {
            node,
            action,
            source,
        }
    };
    let nodes: Api<Node> = Api::all(client.clone());
    let existing = nodes
        .get_opt(&node.name)
        .await
        .map_err(api_error("reading the Node"))?;
    if existing.is_none() {
        let new = Node {
            metadata: ObjectMeta {
                name: Some(node.name.clone()),
                labels: Some(labels(node, machine)),
                ..Default::default()
            },
            spec: (!node.taints.is_empty()).then(|| k8s_openapi::api::core::v1::NodeSpec {
                taints: Some(node.taints.clone()),
                ..Default::default()
            }),
            status: Some(desired_status(node, machine, None, Timestamp::now())),
        };
        match nodes.create(&PostParams::default(), &new).await {
            Ok(created) => {
                tracing::info!(node = %node.name, ip = %node.ip, "registered the Node");
                return Ok(created);
            }
            // Created meanwhile (another agent start racing us): take it over.
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(api_error("creating the Node")(e)),
        }
    }
    let labels_patch = json!({"metadata": {"labels": labels(node, machine)}});
    let current = nodes
        .patch(
            &node.name,
            &PatchParams::default(),
            &Patch::Merge(&labels_patch),
        )
        .await
        .map_err(api_error("labelling the Node"))?;
    tracing::info!(node = %node.name, ip = %node.ip, "the Node exists: taking it over");
    post_status(&nodes, node, machine, current.status.as_ref()).await
}

/// The longest pause between two registration attempts.
const REGISTER_BACKOFF_MAX: Duration = Duration::from_secs(16);

/// [`register`], tried again with back-off until it works: after a reboot
/// the node agent often starts before the apiserver (on the master, next
/// to it; on a worker, while the master is still booting), and must wait
/// for it rather than exit (the kubelet does the same).
pub async fn register_until_done(
    client: &kube::Client,
    node: &NodeIdentity,
    machine: &Machine,
) -> Node {
    let mut pause = Duration::from_millis(500);
    loop {
        match register(client, node, machine).await {
            Ok(registered) => return registered,
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    retry_in = ?pause,
                    "waiting for the apiserver to register the Node"
                );
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(REGISTER_BACKOFF_MAX);
            }
        }
    }
}

/// Posts the node's status, computed against `previous`.
async fn post_status(
    nodes: &Api<Node>,
    node: &NodeIdentity,
    machine: &Machine,
    previous: Option<&NodeStatus>,
) -> Result<Node, NodeError> {
    let status = desired_status(node, machine, previous, Timestamp::now());
    nodes
        .patch_status(
            &node.name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": status })),
        )
        .await
        .map_err(|source| NodeError::Api {
            node: node.name.clone(),
            action: "posting the node status",
            source,
        })
}

/// Renews the node's Lease, creating it if missing. The Lease is owned
/// by the Node (as upstream), so deleting the Node deletes it too.
pub async fn renew_lease(
    client: &kube::Client,
    node_name: &str,
    node_uid: Option<&str>,
) -> Result<(), NodeError> {
    let api_error = |action| {
        move |source| NodeError::Api {
            node: node_name.to_string(),
            action,
            source,
        }
    };
    let leases: Api<Lease> = Api::namespaced(client.clone(), NODE_LEASE_NAMESPACE);
    let renew_time = MicroTime(Timestamp::now());
    let spec = json!({
        "holderIdentity": node_name,
        "leaseDurationSeconds": LEASE_DURATION_SECONDS,
        "renewTime": renew_time,
    });
    let patched = leases
        .patch(
            node_name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "spec": spec })),
        )
        .await;
    match patched {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let owner = node_uid.map(
                |uid| json!([{"apiVersion": "v1", "kind": "Node", "name": node_name, "uid": uid}]),
            );
            let lease: Lease = serde_json::from_value(json!({
                "metadata": {"name": node_name, "namespace": NODE_LEASE_NAMESPACE, "ownerReferences": owner},
                "spec": spec,
            }))
            .expect("a Lease");
            match leases.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(()),
                // Created meanwhile: the next renewal patches it.
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                Err(e) => Err(api_error("creating the node Lease")(e)),
            }
        }
        Err(e) => Err(api_error("renewing the node Lease")(e)),
    }
}

/// How often the heartbeats go out.
#[derive(Debug, Clone, Copy)]
pub struct Heartbeats {
    /// Lease renewal period (upstream: 10 s).
    pub lease_renew_interval: Duration,
    /// Node status is posted at least this often, changed or not.
    pub status_report_interval: Duration,
}

/// Registers the Node, then keeps it reported and its Lease renewed,
/// forever; sends the node's pod CIDR into `pod_cidr` whenever it appears
/// or changes. Failed renewals are logged and retried at the next tick:
/// a node keeps running through an apiserver outage. `runtime_version`
/// brings the container runtime's version once it answers.
pub async fn run(
    client: kube::Client,
    node: NodeIdentity,
    mut machine: Machine,
    heartbeats: Heartbeats,
    pod_cidr: watch::Sender<Option<PodCidr>>,
    mut runtime_version: watch::Receiver<String>,
) -> Result<(), NodeError> {
    machine.container_runtime_version = runtime_version.borrow_and_update().clone();
    let nodes: Api<Node> = Api::all(client.clone());
    let mut current = register_until_done(&client, &node, &machine).await;
    publish_pod_cidr(&current, &pod_cidr);
    let mut last_post = tokio::time::Instant::now();
    // A status the Node no longer shows (someone changed it) is posted
    // again, at most once per Lease tick so two writers cannot ping-pong.
    let mut drifted = false;

    let mut own_node = watcher(
        nodes.clone(),
        watcher::Config::default().fields(&format!("metadata.name={}", node.name)),
    )
    .boxed();
    let mut tick = tokio::time::interval(heartbeats.lease_renew_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            Ok(()) = runtime_version.changed() => {
                machine.container_runtime_version = runtime_version.borrow_and_update().clone();
                drifted = true;
            }
            _ = tick.tick() => {
                let uid = current.metadata.uid.clone();
                if let Err(e) = renew_lease(&client, &node.name, uid.as_deref()).await {
                    tracing::warn!(error = %e, "lease renewal failed; retrying at the next tick");
                }
                if drifted || last_post.elapsed() >= heartbeats.status_report_interval {
                    match post_status(&nodes, &node, &machine, current.status.as_ref()).await {
                        Ok(posted) => {
                            current = posted;
                            last_post = tokio::time::Instant::now();
                            drifted = false;
                        }
                        Err(NodeError::Api { source: kube::Error::Api(s), .. }) if s.code == 404 => {
                            tracing::warn!(node = %node.name, "the Node was deleted: registering again");
                            current = register_until_done(&client, &node, &machine).await;
                            last_post = tokio::time::Instant::now();
                        }
                        Err(e) => tracing::warn!(error = %e, "node status post failed; retrying at the next tick"),
                    }
                }
            }
            event = own_node.next() => {
                let seen = match event {
                    Some(Ok(watcher::Event::Apply(n) | watcher::Event::InitApply(n))) => n,
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "watching the Node");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                    None => return Err(NodeError::WatchEnded { node: node.name.clone() }),
                };
                publish_pod_cidr(&seen, &pod_cidr);
                let desired = desired_status(&node, &machine, seen.status.as_ref(), Timestamp::now());
                if !reports_match(&desired, &seen.status.clone().unwrap_or_default()) {
                    tracing::info!(node = %node.name, "the Node's status differs from this node's report: posting it again");
                    drifted = true;
                }
                current = seen;
            }
        }
    }
}

/// Sends the Node's pod CIDR on, when it is new.
fn publish_pod_cidr(node: &Node, channel: &watch::Sender<Option<PodCidr>>) {
    let Some(text) = pod_cidr(node) else {
        return;
    };
    match PodCidr::parse(&text) {
        Ok(cidr) => {
            channel.send_if_modified(|held| {
                if *held == Some(cidr) {
                    return false;
                }
                tracing::info!(%cidr, "the node has a pod CIDR");
                *held = Some(cidr);
                true
            });
        }
        Err(e) => tracing::warn!(error = %e, "the Node's pod CIDR is not usable"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> NodeIdentity {
        NodeIdentity {
            name: "worker1".into(),
            ip: "192.168.56.11".parse().unwrap(),
            kubelet_port: 10250,
            extra_labels: BTreeMap::new(),
            taints: vec![],
        }
    }

    fn machine() -> Machine {
        Machine {
            cpus: 2,
            memory_kib: 2048000,
            os_image: "Debian GNU/Linux 12 (bookworm)".into(),
            kernel_version: "6.1.0".into(),
            architecture: "amd64".into(),
            machine_id: "abc".into(),
            boot_id: "boot".into(),
            container_runtime_version: "containerd://1.6.20".into(),
        }
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn machine_facts_are_parsed_from_proc_and_etc() {
        assert_eq!(
            mem_total_kib("MemTotal:       16318760 kB\nMemFree: 1 kB\n"),
            Some(16318760)
        );
        assert_eq!(
            pretty_name("NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n")
                .as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("aarch64"), "arm64");
        let m = Machine::read();
        assert!(m.cpus >= 1 && m.memory_kib > 0 && !m.kernel_version.is_empty());
    }

    #[test]
    fn the_status_names_the_given_ip_and_the_machine() {
        let s = desired_status(&identity(), &machine(), None, at(1000));
        let addresses: Vec<_> = s
            .addresses
            .unwrap()
            .into_iter()
            .map(|a| (a.type_, a.address))
            .collect();
        assert_eq!(
            addresses,
            [
                ("InternalIP".to_string(), "192.168.56.11".to_string()),
                ("Hostname".to_string(), "worker1".to_string())
            ]
        );
        let capacity = s.capacity.unwrap();
        assert_eq!(capacity["cpu"].0, "2");
        assert_eq!(capacity["memory"].0, "2048000Ki");
        assert_eq!(capacity["pods"].0, "110");
        let kubelet = s.daemon_endpoints.unwrap().kubelet_endpoint.unwrap();
        assert_eq!(kubelet.port, 10250, "where the apiserver finds the kubelet");
        let info = s.node_info.unwrap();
        assert_eq!(info.kubelet_version, "v1.35.0-kube-lite");
        assert_eq!(info.container_runtime_version, "containerd://1.6.20");
        let ready = s
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True");
        assert_eq!(ready.reason.as_deref(), Some("KubeletReady"));
    }

    #[test]
    fn transition_times_move_only_when_a_status_changes() {
        let first = desired_status(&identity(), &machine(), None, at(1000));
        let later = desired_status(&identity(), &machine(), Some(&first), at(2000));
        for c in later.conditions.as_ref().unwrap() {
            assert_eq!(c.last_transition_time, Some(Time(at(1000))), "{}", c.type_);
            assert_eq!(c.last_heartbeat_time, Some(Time(at(2000))), "{}", c.type_);
        }
        assert!(reports_match(&later, &first));

        // The controller marked the node Unknown; the agent's next report
        // is a transition back to True.
        let mut unknown = later.clone();
        let conditions = unknown.conditions.as_mut().unwrap();
        let ready = conditions.iter_mut().find(|c| c.type_ == "Ready").unwrap();
        ready.status = "Unknown".into();
        ready.reason = Some("NodeStatusUnknown".into());
        conditions.push(NodeCondition {
            type_: "NetworkUnavailable".into(),
            status: "False".into(),
            ..Default::default()
        });
        assert!(!reports_match(&later, &unknown));
        let back = desired_status(&identity(), &machine(), Some(&unknown), at(3000));
        let find = |s: &NodeStatus, t: &str| {
            s.conditions
                .as_ref()
                .unwrap()
                .iter()
                .find(|c| c.type_ == t)
                .cloned()
                .unwrap()
        };
        assert_eq!(
            find(&back, "Ready").last_transition_time,
            Some(Time(at(3000)))
        );
        assert_eq!(
            find(&back, "DiskPressure").last_transition_time,
            Some(Time(at(1000)))
        );
        // Someone else's condition is left alone.
        assert_eq!(find(&back, "NetworkUnavailable").status, "False");
    }

    #[test]
    fn the_pod_cidr_is_read_from_either_field() {
        let mut node = Node::default();
        assert_eq!(pod_cidr(&node), None);
        node.spec = Some(Default::default());
        node.spec.as_mut().unwrap().pod_cidr = Some("10.244.1.0/24".into());
        assert_eq!(pod_cidr(&node).as_deref(), Some("10.244.1.0/24"));
        node.spec.as_mut().unwrap().pod_cidrs = Some(vec!["10.244.2.0/24".into()]);
        assert_eq!(pod_cidr(&node).as_deref(), Some("10.244.2.0/24"));
    }
}
