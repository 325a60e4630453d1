//! `apiserver`: kube-lite's kube-apiserver.
//!
//! ```text
//! apiserver --listen 127.0.0.1:6443 --data-dir /var/lib/kube-lite
//! ```

use clap::Parser;

#[derive(Parser)]
#[command(version, about = "kube-lite's Kubernetes API server")]
struct Args {
    /// Address and port to serve plain HTTP on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: String,
    /// Directory for the sled database (created if missing).
    #[arg(long)]
    data_dir: std::path::PathBuf,
    /// The range ClusterIPs are allocated from.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cluster_ip_range: String,
    /// The range NodePorts are allocated from.
    #[arg(long, default_value = "30000-32767")]
    service_node_port_range: String,
    /// How many recent changes a watch can resume from; older
    /// resourceVersions get 410 Gone.
    #[arg(long, default_value_t = apiserver::storage::DEFAULT_HISTORY_LEN)]
    watch_history: usize,
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
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("listening on {}: {e}", args.listen))?;
    apiserver::serve(
        listener,
        &apiserver::Config {
            data_dir: args.data_dir,
            service_cluster_ip_range: args.service_cluster_ip_range,
            service_node_port_range: args.service_node_port_range,
            watch_history: args.watch_history,
        },
    )
    .await
}
