//! `nodeagent`: kube-lite's kubelet (and, later, kube-proxy and DNS) for
//! one node.
//!
//! ```text
//! nodeagent --server http://192.168.56.10:6443 --node-name worker1 --node-ip 192.168.56.11
//! nodeagent --kubeconfig ~/.kube/config --node-name worker1 --node-ip 192.168.56.11
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
    /// The image catalog: which node program each image runs.
    #[arg(long)]
    image_catalog: Option<PathBuf>,
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    anyhow::ensure!(
        args.lease_renew_interval > 0 && args.node_status_report_interval > 0,
        "--lease-renew-interval and --node-status-report-interval must be at least 1 second"
    );
    let config = match (&args.server, &args.kubeconfig) {
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
    let client = kube::Client::try_from(config)?;
    let mut settings = nodeagent::Config::new(&args.node_name, args.node_ip);
    if let Some(dir) = args.data_dir {
        settings.data_dir = dir;
    }
    settings.image_catalog = args.image_catalog;
    settings.lease_renew_interval = Duration::from_secs(args.lease_renew_interval);
    settings.node_status_report_interval = Duration::from_secs(args.node_status_report_interval);
    settings.pod_network = !args.no_pod_network;
    nodeagent::run(client, settings).await
}
