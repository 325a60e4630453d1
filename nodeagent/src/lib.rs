//! `nodeagent`: everything kube-lite runs on a node.
//!
//! On a real cluster a node runs several programs: the kubelet (registers
//! the node, runs its Pods, reports on them), a CNI network plugin (gives
//! each Pod an interface and an IP), kube-proxy (turns Services into packet
//! rewriting rules) and, somewhere in the cluster, CoreDNS. kube-lite's
//! node agent is all of them in one process, one module each, so that a
//! reader can follow a Pod from the API object to the process and the
//! packets.
//!
//! The agent talks to the control plane only through the apiserver, like
//! a kubelet: it watches what it must do (its Node, the Pods bound to it)
//! and writes back what is (the Node's status, its Lease, Pod statuses).
//!
//! # Layout
//!
//! - [`node`]: the Node object, registration, status and heartbeats (the
//!   kubelet's node status manager and node Lease).
//! - [`ipam`]: numbering Pods from the node's pod CIDR, persisted on disk
//!   (the `host-local` IPAM of the CNI bridge plugin).
//! - [`network`]: network namespaces, the `cni0` bridge, veth pairs and
//!   routes between nodes (the CNI `bridge` plugin with flannel host-gw).
//! - [`nodenet`]: the node's side of the pod network, kept in line with
//!   the API: `cni0` once the pod CIDR is known, routes to the other nodes
//!   (what flanneld does).
//! - [`cni`]: the pod network as a CNI plugin (`kube-lite-cni`), which
//!   containerd runs for every Pod sandbox: ADD, DEL, CHECK, STATUS, GC.
//! - [`cri`]: the CRI client (`runtime.v1` over gRPC) to containerd, and a
//!   Pod in the CRI's words.
//! - [`echo`]: the program of the `kube-lite/echo` image, an HTTP and UDP
//!   echo server (binary `kube-lite-echo`; like agnhost's `netexec` in
//!   Kubernetes' tests).
//! - [`pods`]: the kubelet's pod workers: Pods run by containerd, through
//!   the CRI.
//! - [`server`]: the kubelet's own HTTP port, serving `kubectl logs` and
//!   `kubectl exec` through the apiserver.
//! - [`proxy`]: Services as nftables rules, table `ip kube-lite`
//!   (kube-proxy's nftables mode).
//! - [`dns`]: cluster DNS for the Pods of this node, answering Service
//!   and Pod names from a watch cache (CoreDNS, as NodeLocal DNSCache
//!   places it: one per node).
//! - [`informer`]: one watch and one cache of Services and EndpointSlices
//!   shared by the proxy and the DNS, slices kept in compact form
//!   (client-go's shared informers and transforms).

pub mod cni;
pub mod cri;
pub mod dns;
pub mod echo;
pub mod informer;
pub mod ipam;
pub mod network;
pub mod node;
pub mod nodenet;
pub mod pods;
pub mod proxy;
pub mod server;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;

use crate::ipam::PodCidr;
use crate::nodenet::NodeNetworkConfig;

/// The file in the data directory that holds the node's pod CIDR once the
/// controller gave it one: the place an admin (or a test) looks.
pub const POD_CIDR_FILE: &str = "pod-cidr";

/// The cluster DNS Service's ClusterIP (the tenth address of the service
/// range, as kubeadm chooses it).
pub const DEFAULT_CLUSTER_DNS: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

/// The cluster's DNS domain.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// How the agent was started.
#[derive(Debug, Clone)]
pub struct Config {
    /// The Node's name (`--node-name`).
    pub node_name: String,
    /// The address other nodes reach this one at (`--node-ip`), reported
    /// as the Node's InternalIP.
    pub node_ip: Ipv4Addr,
    /// Where the agent keeps what must survive a restart (IP allocations,
    /// Pod state). One per node: the lab runs several nodes on one machine.
    pub data_dir: PathBuf,
    /// The container runtime's socket (`--container-runtime-endpoint`,
    /// `unix:///run/containerd/containerd.sock`).
    pub container_runtime_endpoint: String,
    /// The cgroup under which Pods' cgroups go (`--cgroup-root`, `/`:
    /// `/kubepods/...`).
    pub cgroup_root: String,
    /// `--cgroup-driver systemd` (else `cgroupfs`, the kubelet's default):
    /// as containerd's runc is configured.
    pub cgroup_driver_systemd: bool,
    /// Where containers' logs go (`--pod-logs-dir`, `/var/log/pods`).
    pub pod_logs_dir: PathBuf,
    /// How often the node Lease is renewed.
    pub lease_renew_interval: Duration,
    /// How often the Node status is posted when nothing changed.
    pub node_status_report_interval: Duration,
    /// The cluster's Pod range, of which each node owns a block.
    pub cluster_cidr: ipnet::Ipv4Net,
    /// The Service range, routed onto `cni0`.
    pub service_cidr: ipnet::Ipv4Net,
    /// Whether the agent builds the node's pod network (`cni0`, routes).
    /// Off only for tests that run the agent in the machine's own network
    /// namespace to check registration: there it must not touch links or
    /// routes (`--no-pod-network`).
    pub pod_network: bool,
    /// Extra labels of the Node (`--node-labels`).
    pub node_labels: std::collections::BTreeMap<String, String>,
    /// Taints the Node registers with (`--register-with-taints`).
    pub register_with_taints: Vec<k8s_openapi::api::core::v1::Taint>,
    /// The cluster DNS Service's IP, written into Pods' resolv.conf
    /// (`--cluster-dns`, 10.96.0.10).
    pub cluster_dns: Ipv4Addr,
    /// The cluster's DNS domain (`--cluster-domain`, cluster.local).
    pub cluster_domain: String,
    /// The port of the kubelet's server ([`server`]) on the node IP
    /// (`--kubelet-port`, upstream's 10250; 0 picks a free one).
    pub kubelet_port: u16,
    /// The address the kubelet's server listens on (`--kubelet-address`,
    /// the kubelet's `--address`); the node IP when not given.
    pub kubelet_address: Option<std::net::IpAddr>,
    /// The service proxy's metrics port on the node IP
    /// (`--proxy-metrics-port`, kube-proxy's 10249; 0 serves none).
    pub proxy_metrics_port: u16,
    /// HTTPS for the kubelet port, only for clients the cluster CA signed
    /// in `system:masters` (the apiserver); None: plain HTTP (dev mode).
    pub kubelet_tls: Option<api::tls::TlsFiles>,
    /// Where the agent writes the CNI conflist containerd reads
    /// (`--cni-conf-dir`, /etc/cni/net.d), once it knows the pod CIDR.
    pub cni_conf_dir: PathBuf,
    /// Where the CNI plugin records addresses (`--cni-data-dir`,
    /// /var/lib/cni/networks), written into the conflist.
    pub cni_data_dir: PathBuf,
}

impl Config {
    /// A configuration with upstream's intervals (Lease every 10 s, status
    /// every minute) and the data directory `/var/lib/kube-lite/<node>`.
    pub fn new(node_name: &str, node_ip: Ipv4Addr) -> Config {
        Config {
            node_name: node_name.to_string(),
            node_ip,
            data_dir: default_data_dir(node_name),
            container_runtime_endpoint: cri::DEFAULT_ENDPOINT.into(),
            cgroup_root: "/".into(),
            cgroup_driver_systemd: false,
            pod_logs_dir: PathBuf::from(DEFAULT_POD_LOGS_DIR),
            lease_renew_interval: Duration::from_secs(10),
            node_status_report_interval: Duration::from_secs(60),
            cluster_cidr: nodenet::DEFAULT_CLUSTER_CIDR,
            service_cidr: nodenet::DEFAULT_SERVICE_CIDR,
            pod_network: true,
            kubelet_port: server::DEFAULT_KUBELET_PORT,
            kubelet_address: None,
            kubelet_tls: None,
            proxy_metrics_port: proxy::metrics::DEFAULT_METRICS_PORT,
            node_labels: Default::default(),
            register_with_taints: vec![],
            cluster_dns: DEFAULT_CLUSTER_DNS,
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.to_string(),
            cni_conf_dir: PathBuf::from(DEFAULT_CNI_CONF_DIR),
            cni_data_dir: PathBuf::from(DEFAULT_CNI_DATA_DIR),
        }
    }
}

/// Where the kubelet puts containers' logs (its `podLogsDir`).
pub const DEFAULT_POD_LOGS_DIR: &str = "/var/log/pods";

/// containerd's default CNI configuration directory.
pub const DEFAULT_CNI_CONF_DIR: &str = "/etc/cni/net.d";

/// Where host-local keeps addresses; the kube-lite plugin does the same.
pub const DEFAULT_CNI_DATA_DIR: &str = "/var/lib/cni/networks";

/// `/var/lib/kube-lite/<node>`: like the kubelet's /var/lib/kubelet, with
/// the node's name so that lab nodes on one machine do not share it.
pub fn default_data_dir(node_name: &str) -> PathBuf {
    Path::new("/var/lib/kube-lite").join(node_name)
}

/// Runs the agent until an unrecoverable error.
///
/// Node registration and heartbeats start at once and never wait for the
/// network: a node without a pod CIDR yet is still a node. The network
/// part ([`nodenet`]) sets up `cni0` when the controller has given the
/// node its pod CIDR, and retries its failures itself: a broken network
/// never stops the heartbeats. Needs root (it changes links and routes).
pub async fn run(client: kube::Client, config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    // A handle on the runtime, connected at its first use and again after
    // containerd restarts.
    let runtime = cri::Runtime::lazy(&config.container_runtime_endpoint)?;
    // The kubelet's port, bound first so that the Node reports the port
    // it really got (`--kubelet-port 0`).
    let kubelet_address = config
        .kubelet_address
        .unwrap_or(std::net::IpAddr::V4(config.node_ip));
    let kubelet_listener = tokio::net::TcpListener::bind((kubelet_address, config.kubelet_port))
        .await
        .with_context(|| {
            format!(
                "binding the kubelet port {kubelet_address}:{}",
                config.kubelet_port
            )
        })?;
    let identity = node::NodeIdentity {
        name: config.node_name.clone(),
        ip: config.node_ip,
        kubelet_port: kubelet_listener.local_addr()?.port(),
        extra_labels: config.node_labels.clone(),
        taints: config.register_with_taints.clone(),
    };
    let machine = node::Machine::read();
    let heartbeats = node::Heartbeats {
        lease_renew_interval: config.lease_renew_interval,
        status_report_interval: config.node_status_report_interval,
    };
    let (pod_cidr_tx, pod_cidr_rx) = watch::channel(None);
    let network_config = NodeNetworkConfig {
        node_name: config.node_name.clone(),
        cluster_cidr: config.cluster_cidr,
        service_cidr: config.service_cidr,
        cni_conf_dir: config.cni_conf_dir.clone(),
        cni_data_dir: config.cni_data_dir.clone(),
    };
    let network_client = client.clone();
    let network_pod_cidr = pod_cidr_rx.clone();
    let pod_network = config.pod_network;
    let node_network = async move {
        if pod_network {
            nodenet::run(network_client, network_config, network_pod_cidr).await
        } else {
            tracing::info!("--no-pod-network: leaving links and routes alone");
            std::future::pending().await
        }
    };
    // One watch and one cache of Services and EndpointSlices, read by
    // the cluster DNS, the service proxy and the Pods' environment
    // (shared informers).
    let (informers, watch) = informer::ServiceInformers::new(client.clone());
    let dns_caches = informers.subscribe();
    let proxy_caches = informers.subscribe();
    let registry = pods::Registry::new(runtime.clone());
    let (runtime_version_tx, runtime_version) = watch::channel(String::new());
    let pods_config = pods::PodsConfig {
        node_name: config.node_name.clone(),
        node_ip: config.node_ip,
        data_dir: config.data_dir.clone(),
        runtime,
        node_settings: cri::config::NodeSettings {
            cgroup_root: config.cgroup_root.clone(),
            systemd_cgroup: config.cgroup_driver_systemd,
            pod_logs_dir: config.pod_logs_dir.clone(),
            memory_capacity: i128::from(machine.memory_kib) * 1024,
        },
        dns: pods::ClusterDns {
            server: config.cluster_dns,
            domain: config.cluster_domain.clone(),
        },
        services: config
            .pod_network
            .then(|| proxy_caches.services.store.clone()),
        runtime_version: runtime_version_tx,
    };
    let kubelet_containers = std::sync::Arc::new(registry.clone());
    let pods = pods::run(client.clone(), pods_config, registry);
    // Cluster DNS listens on the node IP: only where the node has its own
    // network namespace (never in the machine's, under --no-pod-network).
    let dns_config = dns::DnsConfig::for_node(
        &config.node_name,
        config.node_ip,
        &config.cluster_domain,
        config.cluster_dns,
    );
    // The kubelet's port: logs and exec, and the service proxy's view of
    // one Service (where the proxy runs).
    let mut kubelet_routes = server::router(kubelet_containers);
    if pod_network {
        let view = proxy::view::ViewState {
            node: config.node_name.clone(),
            services: proxy_caches.services.store.clone(),
            socket: std::sync::Arc::new(proxy::netlink::Socket::open(None)?),
        };
        kubelet_routes = kubelet_routes.merge(proxy::view::router(view));
    }
    let kubelet_server =
        server::serve_router(kubelet_listener, kubelet_routes, config.kubelet_tls.clone());
    let watches = async move {
        if pod_network {
            watch.await;
            anyhow::bail!("the watches of Services and EndpointSlices ended")
        }
        std::future::pending().await
    };
    let dns_client = client.clone();
    let dns = async move {
        if pod_network {
            dns::run_shared(dns_client, dns_config, dns_caches).await
        } else {
            std::future::pending().await
        }
    };
    // Services as nftables rules, only in the node's own namespace (never
    // in the machine's netfilter, under --no-pod-network).
    let mut proxy_config = proxy::ProxyConfig::new(&config.node_name, config.node_ip);
    proxy_config.cluster_cidr = config.cluster_cidr;
    proxy_config.service_cidr = config.service_cidr;
    proxy_config.metrics_addr = (config.proxy_metrics_port != 0)
        .then(|| std::net::SocketAddr::from((config.node_ip, config.proxy_metrics_port)));
    let proxy_client = client.clone();
    let proxy = async move {
        if pod_network {
            proxy::run(
                proxy_client,
                proxy_config,
                proxy_caches,
                std::sync::Arc::new(proxy::metrics::ProxyMetrics::new()),
            )
            .await
        } else {
            std::future::pending().await
        }
    };
    let node_status = node::run(
        client,
        identity,
        machine,
        heartbeats,
        pod_cidr_tx,
        runtime_version,
    );
    tokio::select! {
        r = node_status => r.context("node status"),
        r = follow_pod_cidr(&config.data_dir, pod_cidr_rx) => r,
        r = node_network => r.context("node network"),
        r = pods => r.context("pods"),
        r = kubelet_server => r.context("kubelet server"),
        r = proxy => r.context("service proxy"),
        r = dns => r.context("cluster DNS"),
        r = watches => r,
    }
}

/// Records the node's pod CIDR in [`POD_CIDR_FILE`] whenever it is given
/// (the place an admin, or a test, looks).
async fn follow_pod_cidr(
    data_dir: &Path,
    mut pod_cidr: watch::Receiver<Option<PodCidr>>,
) -> anyhow::Result<()> {
    loop {
        let cidr = *pod_cidr
            .wait_for(Option::is_some)
            .await
            .context("the node status task ended")?;
        let cidr = cidr.expect("waited for Some");
        write_atomically(&data_dir.join(POD_CIDR_FILE), &format!("{cidr}\n"))?;
        tracing::info!(%cidr, gateway = %cidr.gateway(), "pod network block ready");
        // A Node keeps its block for life; a new one only comes if the
        // Node was deleted and registered again.
        pod_cidr
            .changed()
            .await
            .context("the node status task ended")?;
    }
}

/// Writes a small file so that a reader sees the old or the new content,
/// never a part: a temporary file, flushed, renamed over the old one.
fn write_atomically(path: &Path, content: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    let mut file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(content.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}
