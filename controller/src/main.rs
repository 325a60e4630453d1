//! `controller`: kube-lite's kube-controller-manager and kube-scheduler.
//!
//! ```text
//! controller --server http://127.0.0.1:6443
//! controller --kubeconfig ~/.kube/config
//! ```

use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;

#[derive(Parser)]
#[command(version, about = "kube-lite's controllers and scheduler")]
struct Args {
    /// The apiserver's URL.
    #[arg(long, conflicts_with = "kubeconfig")]
    server: Option<String>,
    /// A kubeconfig file (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long)]
    kubeconfig: Option<std::path::PathBuf>,
    /// Seconds without a node Lease renewal before the node is NotReady.
    #[arg(long, default_value_t = 40)]
    node_monitor_grace_period: u64,
    /// Seconds a NotReady node keeps its Pods before they are evicted.
    #[arg(long, default_value_t = 60)]
    pod_eviction_timeout: u64,
    /// The range node pod CIDRs are cut from.
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: String,
    /// Prefix length of each node's pod CIDR.
    #[arg(long, default_value_t = 24)]
    node_cidr_mask_size: u8,
    /// The CA certificate that signs approved CertificateSigningRequests.
    #[arg(long, requires = "cluster_signing_key_file")]
    cluster_signing_cert_file: Option<std::path::PathBuf>,
    /// Its private key.
    #[arg(long, requires = "cluster_signing_cert_file")]
    cluster_signing_key_file: Option<std::path::PathBuf>,
    /// The longest certificate it signs, in hours (upstream's 8760h).
    #[arg(long, default_value_t = 8760)]
    cluster_signing_duration_hours: u64,
    /// Seconds the leader Lease lasts without renewal.
    #[arg(long, default_value_t = 15)]
    leader_lease_duration: u64,
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
    // The cluster CA the kubeconfig trusts is the one Pods must trust to
    // reach the apiserver: published as kube-root-ca.crt.
    let root_ca_pem = config
        .root_cert
        .as_ref()
        .and_then(|certs| certs.first())
        .map(|der| controller::rootca::pem(der));
    // Writes are recorded as this component's in managedFields.
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_str(&api::useragent::user_agent("kube-controller-manager"))?,
    ));
    let client = kube::Client::try_from(config)?;
    let cluster_signing = match (
        &args.cluster_signing_cert_file,
        &args.cluster_signing_key_file,
    ) {
        (Some(cert), Some(key)) => {
            let read = |path: &std::path::Path, flag: &str| {
                std::fs::read_to_string(path)
                    .with_context(|| format!("--{flag}: reading {}", path.display()))
            };
            let ca = api::pki::Ca::load(
                &read(cert, "cluster-signing-cert-file")?,
                &read(key, "cluster-signing-key-file")?,
            )
            .context("--cluster-signing-cert-file/--cluster-signing-key-file")?;
            Some(std::sync::Arc::new(controller::ClusterSigning {
                ca,
                duration: Duration::from_secs(args.cluster_signing_duration_hours * 3600),
            }))
        }
        _ => None,
    };
    let settings = controller::Config {
        cluster_signing,
        root_ca_pem,
        node_monitor_grace_period: Duration::from_secs(args.node_monitor_grace_period),
        pod_eviction_timeout: Duration::from_secs(args.pod_eviction_timeout),
        cluster_cidr: args.cluster_cidr,
        node_cidr_mask_size: args.node_cidr_mask_size,
        leader_lease_duration: Duration::from_secs(args.leader_lease_duration),
        ..Default::default()
    };
    // Wait to be the leader, then run. Losing the lease (another
    // controller took it, or the apiserver was gone longer than the lease:
    // a master reboot) stops every loop and campaigns again, as
    // kube-controller-manager's leader election does without exiting.
    loop {
        let leader = controller::leaderelection::acquire(client.clone(), &settings).await?;
        let ctx = controller::Context::new(client.clone(), settings.clone());
        tokio::select! {
            r = controller::run(ctx) => return r,
            lost = leader.lost() => {
                tracing::warn!(reason = %lost, "lost leadership: stopping the controllers, campaigning again");
            }
        }
    }
}
