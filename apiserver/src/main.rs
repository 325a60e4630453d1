//! `apiserver`: kube-lite's kube-apiserver.
//!
//! ```text
//! apiserver --listen 127.0.0.1:6443 --data-dir /var/lib/kube-lite
//! ```

use clap::Parser;

#[derive(Parser)]
#[command(version, about = "kube-lite's Kubernetes API server")]
struct Args {
    /// Address and port to serve on (HTTPS with the certificate below;
    /// without one, plain HTTP on a loopback address only).
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: String,
    /// The serving certificate (PEM), signed by the cluster CA.
    #[arg(long, requires = "tls_private_key_file")]
    tls_cert_file: Option<std::path::PathBuf>,
    /// The serving certificate's private key (PEM).
    #[arg(long, requires = "tls_cert_file")]
    tls_private_key_file: Option<std::path::PathBuf>,
    /// The private key that signs ServiceAccount tokens (PEM; kubeadm's
    /// sa.key). Without it, a key made at start.
    #[arg(long, requires = "service_account_key_file")]
    service_account_signing_key_file: Option<std::path::PathBuf>,
    /// Its public key (PEM; kubeadm's sa.pub), to check tokens.
    #[arg(long, requires = "service_account_signing_key_file")]
    service_account_key_file: Option<std::path::PathBuf>,
    /// The issuer of ServiceAccount tokens, and their default audience.
    #[arg(long, default_value = apiserver::tokens::DEFAULT_ISSUER)]
    service_account_issuer: String,
    /// The address Pods reach the API at, behind the `kubernetes` Service
    /// (default: the --listen address, unless it is loopback).
    #[arg(long)]
    advertise_address: Option<std::net::IpAddr>,
    /// The client certificate the apiserver presents to kubelets (PEM).
    #[arg(long, requires_all = ["kubelet_client_key", "kubelet_certificate_authority"])]
    kubelet_client_certificate: Option<std::path::PathBuf>,
    /// Its private key (PEM).
    #[arg(long, requires = "kubelet_client_certificate")]
    kubelet_client_key: Option<std::path::PathBuf>,
    /// The CA that signs kubelets' serving certificates: with it, the
    /// apiserver reaches kubelets over HTTPS and checks who answers.
    #[arg(long, requires = "kubelet_client_certificate")]
    kubelet_certificate_authority: Option<std::path::PathBuf>,
    /// Read requests in flight at once; beyond, 429 Too Many Requests.
    #[arg(long, default_value_t = apiserver::limits::DEFAULT_READS)]
    max_requests_inflight: usize,
    /// Write requests in flight at once; beyond, 429 Too Many Requests.
    #[arg(long, default_value_t = apiserver::limits::DEFAULT_MUTATIONS)]
    max_mutating_requests_inflight: usize,
    /// The CA whose client certificates authenticate users (CN = user,
    /// O = groups).
    #[arg(long, requires = "tls_cert_file")]
    client_ca_file: Option<std::path::PathBuf>,
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
    /// Acknowledge writes before they are fsynced. For the benchmark that
    /// measures what fsync costs only: a power cut can lose such writes.
    #[arg(long)]
    unsafe_skip_fsync: bool,
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
    let read = |flag: &str, path: &std::path::Path| {
        std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("--{flag} {}: {e}", path.display()))
    };
    let tls = match (&args.tls_cert_file, &args.tls_private_key_file) {
        (Some(cert), Some(key)) => Some(api::tls::TlsFiles {
            cert_pem: read("tls-cert-file", cert)?,
            key_pem: read("tls-private-key-file", key)?,
            client_ca_pem: args
                .client_ca_file
                .as_deref()
                .map(|ca| read("client-ca-file", ca))
                .transpose()?,
        }),
        _ => None,
    };
    let kubelet_client = match (
        &args.kubelet_client_certificate,
        &args.kubelet_client_key,
        &args.kubelet_certificate_authority,
    ) {
        (Some(cert), Some(key), Some(ca)) => Some((
            read("kubelet-client-certificate", cert)?,
            read("kubelet-client-key", key)?,
            read("kubelet-certificate-authority", ca)?,
        )),
        _ => None,
    };
    let service_account_keys = match (
        &args.service_account_signing_key_file,
        &args.service_account_key_file,
    ) {
        (Some(private), Some(public)) => Some((
            read("service-account-signing-key-file", private)?,
            read("service-account-key-file", public)?,
        )),
        _ => None,
    };
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
            storage_fsync: !args.unsafe_skip_fsync,
            advertise_address: args.advertise_address,
            service_account_keys,
            kubelet_client,
            service_account_issuer: args.service_account_issuer,
            max_reads_in_flight: args.max_requests_inflight.max(1),
            max_mutations_in_flight: args.max_mutating_requests_inflight.max(1),
            tls,
        },
    )
    .await
}
