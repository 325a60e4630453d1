//! # kube-lite `apiserver`: the Kubernetes API over sled
//!
//! This crate plays kube-apiserver and etcd. It serves the Kubernetes REST
//! API (the same URLs, verbs, objects and errors) so that the real `kubectl`
//! and kube-rs clients work against it, and it is the only component that
//! writes storage. Everything else in kube-lite is a client.
//!
//! # Layout
//! - [`storage`]: objects in sled, one global resourceVersion, every write
//!   flushed before it is acknowledged, and the event history watches read.
//! - [`watch`]: `?watch=true` streams: resume from a resourceVersion,
//!   bookmarks, initial events, 410 Gone.
//! - [`rest`]: the verbs (get, list, create, update, patch, delete, ...)
//!   as HTTP handlers, with object metadata semantics (uid, generation,
//!   optimistic concurrency) and subresources.
//! - [`defaults`] and [`validation`]: what Kubernetes fills in and what it
//!   refuses (422 Invalid with field paths).
//! - [`clusterip`] and [`nodeport`]: the Service IP and port allocators;
//!   [`services`] runs them when a Service is created, changed or deleted.
//! - [`namespaces`]: the system namespaces, and deleting a namespace with
//!   everything in it.
//! - [`discovery`] and [`openapi`]: how clients learn what is served.
//! - [`status`]: every error as a Kubernetes `Status`.
//! - [`authn`] and [`authz`] (with `api::tls`): HTTPS, who is calling (client
//!   certificates, anonymous), and what they may do (Node authorizer,
//!   RBAC). Every request goes through authentication, then
//!   authorization, before any handler; [`admission`] then narrows what a
//!   node may write to its own objects (NodeRestriction). [`limits`]
//!   answers 429 when too many requests are in flight.

pub mod admission;
pub mod authn;
pub mod authz;
pub mod bootstrap;
pub mod certificates;
pub mod clusterip;
pub mod defaults;
pub mod discovery;
pub mod durability;
pub mod fieldmanager;
pub mod gotypes;
pub mod jobs;
pub mod kubernetes_service;
pub mod limits;
pub mod namespaces;
pub mod nodeport;
pub mod openapi;
pub mod rest;
pub mod services;
pub mod status;
pub mod storage;
pub mod tokens;
pub mod validation;
pub mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// How an apiserver is set up (the command-line flags).
#[derive(Debug, Clone)]
pub struct Config {
    /// Where sled keeps its files.
    pub data_dir: PathBuf,
    /// ClusterIPs come from here (`--service-cluster-ip-range`).
    pub service_cluster_ip_range: String,
    /// NodePorts come from here (`--service-node-port-range`).
    pub service_node_port_range: String,
    /// How many events watches can resume from (`--watch-history`).
    pub watch_history: usize,
    /// Whether writes are fsynced before they are acknowledged (always,
    /// but for the benchmark that measures what it costs).
    pub storage_fsync: bool,
    /// The key that signs ServiceAccount tokens, its public half (PEM) and
    /// the issuer; None: a key made at start (tokens die with the process).
    pub service_account_keys: Option<(String, String)>,
    pub service_account_issuer: String,
    /// The kubelet-client certificate, its key and the CA of kubelets'
    /// serving certificates (PEM; `--kubelet-client-certificate`,
    /// `--kubelet-client-key`, `--kubelet-certificate-authority`).
    pub kubelet_client: Option<(String, String, String)>,
    /// The address Pods reach the API at (`--advertise-address`); by
    /// default the listen address, unless it is loopback or unspecified.
    /// Without one there is no `kubernetes` Service (dev mode).
    pub advertise_address: Option<std::net::IpAddr>,
    /// Requests in flight at once (`--max-requests-inflight`,
    /// `--max-mutating-requests-inflight`); beyond, 429.
    pub max_reads_in_flight: usize,
    pub max_mutations_in_flight: usize,
    /// The serving certificate and the client CA; None: dev mode (plain
    /// HTTP, loopback only, every caller an administrator).
    pub tls: Option<api::tls::TlsFiles>,
}

impl Config {
    /// How callers are authenticated.
    pub fn mode(&self) -> authn::Mode {
        if self.tls.is_some() {
            authn::Mode::Secure
        } else {
            authn::Mode::Dev
        }
    }
}

/// Opens storage, prepares the allocators and system namespaces, and
/// returns the router ready to serve.
pub async fn build(config: &Config, listening: SocketAddr) -> anyhow::Result<axum::Router> {
    use anyhow::Context as _;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let store =
        storage::Store::open_with(&config.data_dir, config.watch_history, config.storage_fsync)?;
    let services = services::ServiceAllocations::new(
        &config.service_cluster_ip_range,
        &config.service_node_port_range,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    {
        // The allocators are persisted as the Services themselves.
        let snapshot = store.snapshot();
        let svc = api::resources::lookup("services").expect("services are in the table");
        services.rebuild(snapshot.list(svc, None, None).map(|(_, o)| o.as_ref()));
    }
    namespaces::ensure_system_namespaces(&store)
        .await
        .map_err(|e| anyhow::anyhow!("creating system namespaces: {e}"))?;
    authz::policy::ensure_defaults(&store)
        .await
        .map_err(|e| anyhow::anyhow!("creating the default roles: {e}"))?;
    let (private, public) = match &config.service_account_keys {
        Some(keys) => keys.clone(),
        None => {
            tracing::info!("no --service-account-signing-key-file: tokens are signed with a key made now, and die with this process");
            api::pki::service_account_key()?
        }
    };
    let tokens = Arc::new(tokens::ServiceAccountTokens::from_pem(
        &private,
        &public,
        &config.service_account_issuer,
    )?);
    let app = Arc::new(rest::App {
        store: store.clone(),
        services,
        tokens: tokens.clone(),
        mode: config.mode(),
        kubelet_tls: match &config.kubelet_client {
            Some((cert, key, ca)) => Some(api::tls::client_config(ca, cert, key)?),
            None => None,
        },
    });
    namespaces::resume_terminating(&app);
    let advertised = config
        .advertise_address
        .or_else(|| Some(listening.ip()).filter(|ip| !ip.is_loopback() && !ip.is_unspecified()));
    if let Some(ip) = advertised {
        kubernetes_service::ensure(&app, SocketAddr::new(ip, listening.port()))
            .await
            .map_err(|e| anyhow::anyhow!("writing the kubernetes Service: {e}"))?;
    }
    // Layers run outside in: authentication first, then authorization,
    // then the handlers.
    Ok(rest::router(app)
        .layer(axum::middleware::from_fn_with_state(
            store.clone(),
            authz::authorize,
        ))
        .layer(axum::middleware::from_fn_with_state(
            authn::Authenticator {
                mode: config.mode(),
                store,
                tokens,
            },
            authn::authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            limits::InFlight::new(config.max_reads_in_flight, config.max_mutations_in_flight),
            limits::limit,
        )))
}

/// Serves the API on `listener` until the process ends: HTTPS with TLS
/// material, else plain HTTP, which only a loopback address may serve.
pub async fn serve(listener: tokio::net::TcpListener, config: &Config) -> anyhow::Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    let tls = match &config.tls {
        Some(files) => Some(api::tls::server_config(
            files,
            api::tls::ClientCertificates::Optional,
        )?),
        None if addr.ip().is_loopback() => None,
        None => anyhow::bail!(
            "refusing to serve plain HTTP on {addr}: without --tls-cert-file and \
             --tls-private-key-file the apiserver listens only on a loopback address \
             (dev mode, every caller an administrator). Make the cluster's certificates \
             (the lab: `e2e up` writes them to DIR/pki; see docs/security.md) and pass \
             them, or listen on 127.0.0.1"
        ),
    };
    let router = build(config, addr).await?;
    match tls {
        Some(tls_config) => {
            tracing::info!(%addr, data_dir = %config.data_dir.display(), "apiserver listening (HTTPS)");
            Ok(api::tls::serve(listener, router, tls_config).await?)
        }
        None => {
            tracing::info!(%addr, data_dir = %config.data_dir.display(), "apiserver listening (plain HTTP, dev mode: every caller is an administrator)");
            axum::serve(listener, router).await?;
            Ok(())
        }
    }
}
