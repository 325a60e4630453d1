//! A cluster for controller tests: the real apiserver and controller
//! binaries, and fake nodes that play the kubelet's part.
//!
//! Until the node agent exists, [`FakeNode`] does what a kubelet tells the
//! control plane: it registers a Node, renews the node's Lease, reports the
//! Pods bound to it as Running and Ready with an IP from the node's pod
//! CIDR, and finishes graceful deletions. Everything it does goes through
//! the API, as a kubelet's would.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use e2e::harness::{bin_dir, ApiServer, Component};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;

/// Controller flags for tests: short grace periods so node failures show
/// within seconds.
pub struct ControllerFlags {
    pub node_monitor_grace_period: u64,
    pub pod_eviction_timeout: u64,
}

impl Default for ControllerFlags {
    fn default() -> Self {
        ControllerFlags {
            node_monitor_grace_period: 4,
            pod_eviction_timeout: 4,
        }
    }
}

pub struct Cluster {
    pub apiserver: ApiServer,
    pub controller: Option<Component>,
    pub client: kube::Client,
    pub flags: ControllerFlags,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// An apiserver and a running controller.
    pub async fn start() -> Cluster {
        let mut cluster = Self::apiserver_only().await;
        cluster.start_controller();
        cluster
    }

    /// An apiserver alone (start the controller with [`start_controller`]).
    pub async fn apiserver_only() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let apiserver = ApiServer::start(dir.path());
        let config = kube::Config::new(apiserver.url.parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        Cluster {
            apiserver,
            controller: None,
            client,
            flags: ControllerFlags::default(),
            _dir: dir,
        }
    }

    pub fn start_controller(&mut self) {
        let args = vec![
            "--server".to_string(),
            self.apiserver.url.clone(),
            "--node-monitor-grace-period".into(),
            self.flags.node_monitor_grace_period.to_string(),
            "--pod-eviction-timeout".into(),
            self.flags.pod_eviction_timeout.to_string(),
            "--leader-lease-duration".into(),
            "3".into(),
        ];
        self.controller = Some(Component::start("controller", &args));
    }

    /// Kills the controller process (SIGKILL), as a crash would.
    pub fn kill_controller(&mut self) {
        if let Some(c) = self.controller.take() {
            c.kill();
        }
    }

    /// Runs `kubectl-lite --server <apiserver> args...`.
    pub fn kubectl_lite(&self, args: &[&str]) -> Output {
        std::process::Command::new(bin_dir().join("kubectl-lite"))
            .arg("--server")
            .arg(&self.apiserver.url)
            .args(args)
            .output()
            .expect("running kubectl-lite")
    }

    pub fn pods(&self, namespace: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), namespace)
    }
}

/// The harness's bounded wait, for async checks.
pub use e2e::harness::eventually_async as eventually;

/// Plays the kubelet of one node.
pub struct FakeNode {
    pub name: String,
    /// While true, the node's Lease is renewed every second.
    pub renewing: Arc<AtomicBool>,
    /// While true, Pods bound here are reported Ready.
    pub pods_ready: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeNode {
    /// Registers node `name` (InternalIP 192.168.56.(10+index)) and starts
    /// playing its kubelet.
    pub async fn start(client: &kube::Client, name: &str, index: u8) -> FakeNode {
        let nodes: Api<Node> = Api::all(client.clone());
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}},
            "status": {
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                    "lastHeartbeatTime": now(), "lastTransitionTime": now()}],
                "addresses": [{"type": "InternalIP", "address": format!("192.168.56.{}", 10 + index as u32)},
                              {"type": "Hostname", "address": name}],
                "capacity": {"cpu": "2", "memory": "2Gi", "pods": "110"},
                "allocatable": {"cpu": "2", "memory": "2Gi", "pods": "110"},
                "nodeInfo": {"kubeletVersion": "v1.35.0-kube-lite", "osImage": "fake", "kernelVersion": "6",
                    "containerRuntimeVersion": "fake", "architecture": "amd64", "operatingSystem": "linux",
                    "machineID": "", "systemUUID": "", "bootID": "", "kubeProxyVersion": ""}
            }
        }))
        .unwrap();
        match nodes.create(&PostParams::default(), &node).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => panic!("registering node {name}: {e}"),
        }
        let renewing = Arc::new(AtomicBool::new(true));
        let pods_ready = Arc::new(AtomicBool::new(true));
        let kubelet = Kubelet {
            client: client.clone(),
            name: name.to_string(),
            index,
            renewing: renewing.clone(),
            pods_ready: pods_ready.clone(),
            ips: BTreeMap::new(),
            next_ip: 2,
        };
        let task = tokio::spawn(kubelet.run());
        FakeNode {
            name: name.to_string(),
            renewing,
            pods_ready,
            task,
        }
    }

    /// Stops renewing the Lease: to the control plane, the node is gone.
    pub fn stop_renewing(&self) {
        self.renewing.store(false, Ordering::SeqCst);
    }

    pub fn resume_renewing(&self) {
        self.renewing.store(true, Ordering::SeqCst);
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

struct Kubelet {
    client: kube::Client,
    name: String,
    index: u8,
    renewing: Arc<AtomicBool>,
    pods_ready: Arc<AtomicBool>,
    /// Pod uid -> the IP this node gave it.
    ips: BTreeMap<String, String>,
    next_ip: u32,
}

impl Kubelet {
    async fn run(mut self) {
        let mut last_renewal = tokio::time::Instant::now() - Duration::from_secs(10);
        loop {
            if self.renewing.load(Ordering::SeqCst)
                && last_renewal.elapsed() >= Duration::from_secs(1)
            {
                self.renew_lease().await;
                last_renewal = tokio::time::Instant::now();
            }
            if self.renewing.load(Ordering::SeqCst) {
                self.sync_pods().await;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    async fn renew_lease(&self) {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), "kube-node-lease");
        let renew = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.name.clone()),
                lease_duration_seconds: Some(40),
                renew_time: Some(renew.clone()),
                ..Default::default()
            }),
        };
        if leases.create(&PostParams::default(), &lease).await.is_err() {
            let patch = json!({"spec": {"renewTime": renew, "holderIdentity": self.name}});
            let _ = leases
                .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await;
        }
    }

    /// The pod CIDR's first three octets: from the Node once IPAM gave it
    /// one, else 10.244.<index>.
    async fn pod_prefix(&self) -> String {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let cidr = nodes
            .get_opt(&self.name)
            .await
            .ok()
            .flatten()
            .and_then(|n| n.spec.and_then(|s| s.pod_cidr));
        match cidr {
            Some(c) => c.split('.').take(3).collect::<Vec<_>>().join("."),
            None => format!("10.244.{}", self.index),
        }
    }

    async fn sync_pods(&mut self) {
        let pods: Api<Pod> = Api::all(self.client.clone());
        let lp = ListParams::default().fields(&format!("spec.nodeName={}", self.name));
        let Ok(list) = pods.list(&lp).await else {
            return;
        };
        let prefix = self.pod_prefix().await;
        let ready = self.pods_ready.load(Ordering::SeqCst);
        for pod in list.items {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
            if pod.metadata.deletion_timestamp.is_some() {
                // Containers "stopped": finish the graceful deletion.
                let _ = api
                    .delete(&name, &DeleteParams::default().grace_period(0))
                    .await;
                self.ips.remove(&uid);
                continue;
            }
            let ip = match self.ips.get(&uid) {
                Some(ip) => ip.clone(),
                None => {
                    let ip = format!("{prefix}.{}", self.next_ip);
                    self.next_ip += 1;
                    self.ips.insert(uid.clone(), ip.clone());
                    ip
                }
            };
            let status = pod.status.clone().unwrap_or_default();
            let is_ready = status
                .conditions
                .as_ref()
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                .is_some_and(|c| c.status == "True");
            if status.phase.as_deref() == Some("Running")
                && status.pod_ip.as_deref() == Some(ip.as_str())
                && is_ready == ready
            {
                continue;
            }
            let flag = if ready { "True" } else { "False" };
            let containers: Vec<_> = pod
                .spec
                .as_ref()
                .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
                .unwrap_or_default();
            let container_statuses: Vec<_> = containers
                .iter()
                .zip(
                    pod.spec
                        .as_ref()
                        .map(|s| s.containers.clone())
                        .unwrap_or_default(),
                )
                .map(|(n, c)| {
                    json!({"name": n, "image": c.image, "imageID": "", "ready": ready,
                    "restartCount": 0, "started": true, "state": {"running": {"startedAt": now()}}})
                })
                .collect();
            let patch = json!({"status": {
                "phase": "Running",
                "hostIP": format!("192.168.56.{}", 10 + self.index as u32),
                "podIP": ip, "podIPs": [{"ip": ip}],
                "startTime": now(),
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": now()},
                    {"type": "Initialized", "status": "True", "lastTransitionTime": now()},
                    {"type": "ContainersReady", "status": flag, "lastTransitionTime": now()},
                    {"type": "Ready", "status": flag, "lastTransitionTime": now()}
                ],
                "containerStatuses": container_statuses,
            }});
            let _ = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await;
        }
    }
}

/// One controller loop running inside the test process (instead of the
/// whole controller binary), stopped when dropped.
pub struct InProcessLoop(tokio::task::JoinHandle<anyhow::Result<()>>);

impl InProcessLoop {
    /// Starts `run` (e.g. `controller::gc::run`) against the cluster.
    /// `RUST_LOG=controller=debug` shows what the loop decides.
    pub fn start<F, Fut>(cluster: &Cluster, run: F) -> InProcessLoop
    where
        F: FnOnce(Arc<controller::Context>) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let ctx = controller::Context::new(cluster.client.clone(), controller::Config::default());
        InProcessLoop(tokio::spawn(run(Arc::new(ctx))))
    }
}

impl Drop for InProcessLoop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
