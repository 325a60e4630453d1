//! Cluster DNS: how `curl ngx-svc` inside a Pod finds the Service.
//!
//! A Service gets a stable virtual IP, but nobody types IPs: Kubernetes
//! gives every Service and Pod a DNS name, and every Pod a resolv.conf
//! that points at the cluster's DNS server and lists search suffixes:
//!
//! ```text
//! search default.svc.cluster.local svc.cluster.local cluster.local
//! nameserver 10.96.0.10
//! options ndots:5
//! ```
//!
//! With `ndots:5`, a name with fewer than five dots is tried with each
//! suffix first, so `ngx-svc` is asked as
//! `ngx-svc.default.svc.cluster.local` - a name this server answers with
//! the Service's ClusterIP. The names and their answers are fixed by
//! Kubernetes' DNS specification ("Kubernetes DNS-Based Service
//! Discovery", github.com/kubernetes/dns, `docs/specification.md`):
//! `<svc>.<ns>.svc.<zone>` for Services (A, SRV, PTR; the endpoints for
//! a headless Service; a CNAME for an ExternalName),
//! `<hostname>.<svc>.<ns>.svc.<zone>` for the endpoints of a Service, and
//! (a CoreDNS extension every cluster has) `<a-b-c-d>.<ns>.pod.<zone>`
//! for Pods. Everything else is forwarded to the node's own resolvers.
//!
//! On a real cluster CoreDNS answers, as a Deployment behind the
//! `kube-dns` Service. In kube-lite every node agent answers for the Pods
//! of its own node, the way NodeLocal DNSCache puts a DNS server on every
//! node; see [`service`] for how the `kube-dns` Service leads each Pod to
//! its own node.
//!
//! # Layout
//!
//! - [`records`]: the names and their answers, computed from a snapshot
//!   of Services, EndpointSlices, Pods and Namespaces (pure, unit-tested).
//! - [`cache`]: the watch cache (kube-rs reflectors) that rebuilds that
//!   snapshot after every change.
//! - [`server`]: the DNS protocol over UDP and TCP (`hickory-server`).
//! - [`upstream`]: forwarding names outside the cluster to the node's
//!   resolvers.
//! - [`service`]: the `kube-dns` Service and this node's EndpointSlice.

pub mod cache;
pub mod records;
pub mod server;
pub mod service;
pub mod upstream;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use hickory_server::proto::rr::Name;
use tokio::sync::watch;

use crate::informer::{ServiceCaches, ServiceInformers};

/// The DNS port.
pub const DNS_PORT: u16 = 53;

/// How the cluster DNS of one node is set up.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// The Node's name: it names this node's EndpointSlice.
    pub node_name: String,
    /// The node IP: the address published in the EndpointSlice.
    pub node_ip: Ipv4Addr,
    /// The cluster's domain (`cluster.local`).
    pub cluster_domain: String,
    /// The `kube-dns` Service's ClusterIP (10.96.0.10).
    pub cluster_dns_ip: Ipv4Addr,
    /// Where the server listens: the node IP, port 53 (tests use a
    /// loopback address and a free port).
    pub listen: SocketAddr,
    /// The resolvers names outside the cluster are forwarded to, tried in
    /// order; none means SERVFAIL for them.
    pub upstream: Vec<SocketAddr>,
}

impl DnsConfig {
    /// The configuration of a node: listen on `node_ip:53`, forward to the
    /// nameservers of the node's /etc/resolv.conf except our own
    /// addresses.
    pub fn for_node(
        node_name: &str,
        node_ip: Ipv4Addr,
        cluster_domain: &str,
        cluster_dns_ip: Ipv4Addr,
    ) -> Self {
        let ours = [IpAddr::V4(node_ip), IpAddr::V4(cluster_dns_ip)];
        DnsConfig {
            node_name: node_name.to_string(),
            node_ip,
            cluster_domain: cluster_domain.to_string(),
            cluster_dns_ip,
            listen: SocketAddr::new(node_ip.into(), DNS_PORT),
            upstream: upstream::nameservers_from_file(upstream::RESOLV_CONF.as_ref(), &ours),
        }
    }
}

/// Why the cluster DNS stopped.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("binding the cluster DNS {protocol} socket on {addr}: {source}")]
    Bind {
        protocol: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the cluster domain {domain:?} is not a DNS name: {reason}")]
    Domain { domain: String, reason: String },
    #[error("a watch of the cluster DNS ended")]
    WatchEnded,
    #[error("the cluster DNS server failed: {0}")]
    Server(String),
}

/// Runs this node's cluster DNS until it fails: binds the server, fills
/// the cache, then publishes the `kube-dns` Service and this node's
/// endpoint - only once it can answer, so that no Pod is sent to a server
/// that would say SERVFAIL. This one watches Services and EndpointSlices
/// itself; the agent uses [`run_shared`].
pub async fn run(client: kube::Client, config: DnsConfig) -> Result<(), DnsError> {
    let (informers, watch) = ServiceInformers::new(client.clone());
    let caches = informers.subscribe();
    tokio::select! {
        r = run_shared(client, config, caches) => r,
        () = watch => Err(DnsError::WatchEnded),
    }
}

/// [`run`], reading the Services and EndpointSlices the agent shares with
/// the service proxy.
pub async fn run_shared(
    client: kube::Client,
    config: DnsConfig,
    caches: ServiceCaches,
) -> Result<(), DnsError> {
    let mut origin = Name::from_ascii(&config.cluster_domain).map_err(|e| DnsError::Domain {
        domain: config.cluster_domain.clone(),
        reason: e.to_string(),
    })?;
    origin.set_fqdn(true);
    let listeners = server::Listeners::bind(config.listen).await?;
    let listen = listeners.local_addr().map_err(|source| DnsError::Bind {
        protocol: "UDP",
        addr: config.listen,
        source,
    })?;
    tracing::info!(
        %listen,
        upstream = ?config.upstream,
        domain = %origin,
        "cluster DNS listening"
    );
    let (zone_tx, zone_rx) = watch::channel(None);
    let handler = server::ClusterDnsHandler::new(
        origin.clone(),
        zone_rx.clone(),
        upstream::Upstream::new(config.upstream.clone()),
    );
    let cache = cache::follow(
        client.clone(),
        origin,
        config.cluster_dns_ip,
        zone_tx,
        caches,
    );
    let publish = async {
        let mut synced = zone_rx;
        if synced.wait_for(Option::is_some).await.is_err() {
            return Err(DnsError::WatchEnded);
        }
        service::publish(
            client,
            service::desired_service(config.cluster_dns_ip),
            service::desired_slice(&config.node_name, config.node_ip, listen.port()),
        )
        .await
    };
    tokio::select! {
        r = server::serve(listeners, handler) => r,
        r = cache => r,
        r = publish => r,
    }
}
