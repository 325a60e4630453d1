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

pub mod clusterip;
pub mod defaults;
pub mod discovery;
pub mod namespaces;
pub mod nodeport;
pub mod openapi;
pub mod rest;
pub mod services;
pub mod status;
pub mod storage;
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
}

/// Opens storage, prepares the allocators and system namespaces, and
/// returns the router ready to serve.
pub async fn build(config: &Config) -> anyhow::Result<axum::Router> {
    use anyhow::Context as _;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let store = storage::Store::open(&config.data_dir, config.watch_history)?;
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
    let app = Arc::new(rest::App { store, services });
    namespaces::resume_terminating(&app);
    Ok(rest::router(app))
}

/// Serves the API on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, config: &Config) -> anyhow::Result<()> {
    let router = build(config).await?;
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "apiserver listening");
    axum::serve(listener, router).await?;
    Ok(())
}
