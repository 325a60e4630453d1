//! `nodeagent`: kube-lite's kubelet (and, later, kube-proxy and DNS) for
//! one node.
//!
//! ```text
//! nodeagent --kubeconfig /etc/kube-lite/nodeagent.conf --node-name worker1 --node-ip 192.168.56.11
//! nodeagent --server http://127.0.0.1:6443 --node-name n1 --node-ip 127.0.0.1   # dev mode
//! ```

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;

#[derive(Parser)]
#[command(
    version,
    about = "kube-lite's node agent: kubelet, pod network, Service rules"
)]
struct Args {
    /// The apiserver's URL.
    #[arg(long, conflicts_with = "kubeconfig")]
    server: Option<String>,
    /// A kubeconfig file (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The Node's name.
    #[arg(long)]
    node_name: String,
    /// The address other nodes reach this one at, reported as the Node's
    /// InternalIP. Given, never guessed: the first interface of a VM is
    /// often a NAT one with the same address on every VM.
    #[arg(long)]
    node_ip: Ipv4Addr,
    /// Where state that survives restarts is kept
    /// (default /var/lib/kube-lite/<node-name>).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The container runtime's CRI socket.
    #[arg(long, default_value = nodeagent::cri::DEFAULT_ENDPOINT)]
    container_runtime_endpoint: String,
    /// The cgroup the Pods' cgroups go under (`kubepods/...` below it).
    #[arg(long, default_value = "/")]
    cgroup_root: String,
    /// `systemd` or `cgroupfs`: how Pods' cgroups are named; must be
    /// containerd's (runc's `SystemdCgroup`).
    #[arg(long, default_value = "cgroupfs", value_parser = ["cgroupfs", "systemd"])]
    cgroup_driver: String,
    /// Where containers' logs go (`<ns>_<pod>_<uid>/<container>/N.log`).
    #[arg(long, default_value = nodeagent::DEFAULT_POD_LOGS_DIR)]
    pod_logs_dir: PathBuf,
    /// Seconds between renewals of the node's Lease.
    #[arg(long, default_value_t = 10)]
    lease_renew_interval: u64,
    /// Seconds between Node status posts when nothing changed.
    #[arg(long, default_value_t = 60)]
    node_status_report_interval: u64,
    /// Register and heartbeat only: never touch links, addresses or
    /// routes. For tests that run the agent outside a node's namespace.
    #[arg(long)]
    no_pod_network: bool,
    /// Extra Node labels, `key=value,...` (kubeadm labels the control
    /// plane `node-role.kubernetes.io/control-plane=`).
    #[arg(long, default_value = "")]
    node_labels: String,
    /// Taints to register the Node with, `key[=value]:Effect,...` (kubeadm:
    /// `node-role.kubernetes.io/control-plane:NoSchedule`).
    #[arg(long, default_value = "")]
    register_with_taints: String,
    /// The cluster's Pod range (the controller's --cluster-cidr): routes
    /// into it are this agent's to manage.
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: ipnet::Ipv4Net,
    /// The Service range (the apiserver's --service-cluster-ip-range),
    /// routed onto cni0.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cidr: ipnet::Ipv4Net,
    /// The cluster DNS Service's IP, for Pods' resolv.conf.
    #[arg(long, default_value_t = nodeagent::DEFAULT_CLUSTER_DNS)]
    cluster_dns: Ipv4Addr,
    /// The cluster's DNS domain.
    #[arg(long, default_value = nodeagent::DEFAULT_CLUSTER_DOMAIN)]
    cluster_domain: String,
    /// The port of the kubelet's server (`kubectl logs`, `kubectl exec`)
    /// on --node-ip; 0 picks a free one.
    #[arg(long, default_value_t = nodeagent::server::DEFAULT_KUBELET_PORT)]
    kubelet_port: u16,
    /// The address the kubelet's server listens on (default: --node-ip).
    #[arg(long)]
    kubelet_address: Option<std::net::IpAddr>,
    /// The kubelet port's serving certificate (PEM), signed by the cluster
    /// CA for the node's name and IP. Without it, plain HTTP (dev mode).
    #[arg(long, requires_all = ["tls_private_key_file", "client_ca_file"])]
    tls_cert_file: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, requires = "tls_cert_file")]
    tls_private_key_file: Option<PathBuf>,
    /// The CA whose client certificates may call the kubelet port (the
    /// apiserver's kubelet-client certificate).
    #[arg(long, requires = "tls_cert_file")]
    client_ca_file: Option<PathBuf>,
    /// The service proxy's metrics port on --node-ip (kube-proxy's
    /// 10249); 0 serves none.
    #[arg(long, default_value_t = nodeagent::proxy::metrics::DEFAULT_METRICS_PORT)]
    proxy_metrics_port: u16,
    /// Where to write the CNI conflist containerd reads (containerd's
    /// `cni.conf_dir`).
    #[arg(long, default_value = nodeagent::DEFAULT_CNI_CONF_DIR)]
    cni_conf_dir: std::path::PathBuf,
    /// Where the CNI plugin records the Pods' addresses.
    #[arg(long, default_value = nodeagent::DEFAULT_CNI_DATA_DIR)]
    cni_data_dir: std::path::PathBuf,
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(agent())
}

async fn agent() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,hickory_server=warn".into()),
        )
        .init();
    let args = Args::parse();
    anyhow::ensure!(
        args.lease_renew_interval > 0 && args.node_status_report_interval > 0,
        "--lease-renew-interval and --node-status-report-interval must be at least 1 second"
    );
    let mut config = match (&args.server, &args.kubeconfig) {
        (Some(server), _) => kube::Config::new(server.parse().context("--server is not a URL")?),
        (None, Some(path)) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
        }
        (None, None) => kube::Config::infer()
            .await
            .context("no --server and no kubeconfig")?,
    };
    // Writes are recorded as this component's in managedFields.
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_str(&api::useragent::user_agent("kubelet"))?,
    ));
    let client = kube::Client::try_from(config)?;
    let mut settings = nodeagent::Config::new(&args.node_name, args.node_ip);
    if let Some(dir) = args.data_dir {
        settings.data_dir = dir;
    }
    anyhow::ensure!(
        args.cgroup_root.starts_with('/'),
        "--cgroup-root {:?}: must be an absolute cgroup path, like /",
        args.cgroup_root
    );
    settings.container_runtime_endpoint = args.container_runtime_endpoint;
    settings.cgroup_root = args.cgroup_root;
    settings.cgroup_driver_systemd = args.cgroup_driver == "systemd";
    settings.pod_logs_dir = args.pod_logs_dir;
    settings.lease_renew_interval = Duration::from_secs(args.lease_renew_interval);
    settings.node_status_report_interval = Duration::from_secs(args.node_status_report_interval);
    settings.pod_network = !args.no_pod_network;
    settings.kubelet_port = args.kubelet_port;
    settings.kubelet_address = args.kubelet_address;
    settings.proxy_metrics_port = args.proxy_metrics_port;
    let read = |flag: &str, path: &std::path::Path| {
        std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("--{flag} {}: {e}", path.display()))
    };
    if let (Some(cert), Some(key), Some(ca)) = (
        &args.tls_cert_file,
        &args.tls_private_key_file,
        &args.client_ca_file,
    ) {
        settings.kubelet_tls = Some(api::tls::TlsFiles {
            cert_pem: read("tls-cert-file", cert)?,
            key_pem: read("tls-private-key-file", key)?,
            client_ca_pem: Some(read("client-ca-file", ca)?),
        });
    }
    settings.node_labels = nodeagent::node::parse_labels(&args.node_labels)
        .map_err(|e| anyhow::anyhow!("--node-labels: {e}"))?;
    settings.register_with_taints = nodeagent::node::parse_taints(&args.register_with_taints)
        .map_err(|e| anyhow::anyhow!("--register-with-taints: {e}"))?;
    settings.cluster_dns = args.cluster_dns;
    settings.cluster_cidr = args.cluster_cidr;
    settings.service_cidr = args.service_cidr;
    settings.cluster_domain = args.cluster_domain;
    settings.cni_conf_dir = args.cni_conf_dir;
    settings.cni_data_dir = args.cni_data_dir;
    nodeagent::run(client, settings).await
}
