//! Services as nftables rules: kube-lite's kube-proxy (its nftables mode).
//!
//! A Service's ClusterIP belongs to no interface and no machine: no
//! process listens on it. It works because every node rewrites packets
//! addressed to it. kube-proxy watches Services and EndpointSlices and
//! keeps, on each node, a packet-rewriting table in the kernel (netfilter)
//! in line with them: a packet to `10.96.0.50:80` leaves the node addressed
//! to one of the Service's Pods, say `10.244.2.7:80`, chosen at random;
//! the reply is rewritten back by conntrack, so the client only ever sees
//! the ClusterIP. NodePorts work the same way on the node's own addresses.
//!
//! Here that table is `ip kube-lite` (upstream: `ip kube-proxy`). Its
//! transactions go to the kernel as nf_tables netlink messages - the same
//! messages `nft -f` sends, without `nft`'s whole-table read before each
//! one - so `nft list table ip kube-lite` shows what the lesson talks
//! about. The packet's way through it is told in this directory's
//! README.md.
//!
//! # Layout
//!
//! - [`endpoints`]: which endpoints of a Service port this node uses
//!   (ready, serving, terminating; traffic policies; topology), with
//!   table-style tests (upstream's `CategorizeEndpoints`).
//! - [`rules`]: what the table should hold - a pure function from Services,
//!   EndpointSlices and this node to map elements (an endpoint is one
//!   element of `service-endpoints`, not a chain), unit-tested as text.
//! - [`nftables`]: the statements, sets and keys those rules are made of,
//!   printable as `nft` text.
//! - [`sync`]: diffing that against what was last written and sending only
//!   the difference as one atomic transaction; full resyncs that repair
//!   drift; removing stale UDP conntrack entries.
//! - [`netlink`]: a transaction as nf_tables netlink messages, and the
//!   socket that sends them.
//! - [`conntrack`]: removing the UDP conntrack entries a change left stale.
//! - [`metrics`]: sync duration, network programming latency and table
//!   size, on `/metrics` of port 10249 like kube-proxy's.
//! - [`view`]: one Service as programmed on this node, read back from the
//!   kernel, served on the kubelet port for `kubectl-lite trace`.
//!
//! This module ties them together: the agent's shared watch caches of
//! Services and EndpointSlices ([`crate::informer`], read by the cluster
//! DNS too) and a watch of this Node feed a loop that, after every batch
//! of changes, recomputes the Services that changed and syncs them.

pub mod conntrack;
pub mod endpoints;
pub mod metrics;
pub mod netlink;
pub mod nftables;
pub mod rules;
pub mod sync;
pub mod view;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt as _, StreamExt as _};
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Node, Service};
use kube::runtime::reflector;
use kube::runtime::{watcher, WatchStreamExt as _};
use kube::{Api, ResourceExt as _};
use tokio::time::Instant;

use self::metrics::ProxyMetrics;
use self::rules::NodeContext;
use self::sync::{Dirty, Syncer};
use crate::informer::{CachedSlice, Notice, ServiceCaches};

/// How often the table is checked for drift by default.
pub const DEFAULT_RESYNC_INTERVAL: Duration = Duration::from_secs(30);

/// After a failed transaction, the next try (a full resync) comes after
/// this long, doubling up to [`MAX_RETRY_DELAY`].
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(500);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// How the proxy is set up.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// This Node's name: its endpoints are "local".
    pub node_name: String,
    /// This Node's address (where the metrics port listens by default).
    pub node_ip: Ipv4Addr,
    /// The Pod range (10.244.0.0/16): sources outside it are masqueraded.
    pub cluster_cidr: Ipv4Net,
    /// The Service range (10.96.0.0/12): unallocated addresses in it drop.
    pub service_cidr: Ipv4Net,
    /// Where `/metrics` is served (kube-proxy: node IP, port 10249); `None`
    /// serves nothing.
    pub metrics_addr: Option<SocketAddr>,
    /// How often the table is checked for drift (a cheap look at one
    /// chain; a full rewrite if it is wrong).
    pub resync_interval: Duration,
    /// Run `nft` and `conntrack` in this named network namespace instead of
    /// the agent's own (tests and benchmarks; the agent itself runs inside
    /// its node's namespace and leaves this `None`).
    pub netns: Option<String>,
}

impl ProxyConfig {
    /// The lab's defaults: cluster CIDR 10.244.0.0/16, service CIDR
    /// 10.96.0.0/12, metrics on `node_ip:10249`.
    pub fn new(node_name: &str, node_ip: Ipv4Addr) -> ProxyConfig {
        ProxyConfig {
            node_name: node_name.to_string(),
            node_ip,
            cluster_cidr: crate::nodenet::DEFAULT_CLUSTER_CIDR,
            service_cidr: crate::nodenet::DEFAULT_SERVICE_CIDR,
            metrics_addr: Some(SocketAddr::from((node_ip, metrics::DEFAULT_METRICS_PORT))),
            resync_interval: DEFAULT_RESYNC_INTERVAL,
            netns: None,
        }
    }
}

/// Why the proxy stopped, or why one step failed.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("running {program}: {source} (is it installed? scripts/install-deps.sh installs it)")]
    Spawn {
        program: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Netlink(#[from] netlink::NetlinkError),
    #[error("a blocking task of the proxy panicked")]
    Blocking,
    #[error("conntrack -D {args}: {stderr}")]
    Conntrack { args: String, stderr: String },
    #[error("serving metrics on {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the watch of {0} ended")]
    WatchEnded(&'static str),
}

/// Runs the service proxy until the agent stops: syncs the table from the
/// shared caches of Services and EndpointSlices (one copy, shared with the
/// cluster DNS: [`crate::informer`]) and a watch of this Node, and serves
/// the metrics in `metrics`. Transaction failures are logged and retried,
/// never returned.
pub async fn run(
    client: kube::Client,
    config: ProxyConfig,
    caches: ServiceCaches,
    metrics: Arc<ProxyMetrics>,
) -> Result<(), ProxyError> {
    let serve_metrics = {
        let metrics = metrics.clone();
        let addr = config.metrics_addr;
        async move {
            if let Some(addr) = addr {
                // Metrics are for people: a port already taken must not
                // stop the Services from working.
                if let Err(error) = metrics::serve(addr, metrics).await {
                    tracing::error!(%error, "no service proxy metrics");
                }
            }
            std::future::pending::<Result<(), ProxyError>>().await
        }
    };
    let proxier = Proxier::new(client, config, metrics)?;
    tokio::select! {
        r = serve_metrics => r,
        r = proxier.run(caches) => r,
    }
}

/// The watches and the sync loop.
struct Proxier {
    client: kube::Client,
    config: ProxyConfig,
    metrics: Arc<ProxyMetrics>,
    syncer: Syncer,
    /// Services to recompute at the next sync.
    dirty: Dirty,
    /// Change trigger times of EndpointSlices not yet programmed.
    triggers: Vec<(String, chrono::DateTime<chrono::Utc>)>,
}

/// The three watches the proxier waits for before its first sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watch {
    Services,
    EndpointSlices,
    Node,
}

impl Watch {
    fn name(self) -> &'static str {
        match self {
            Watch::Services => "Services",
            Watch::EndpointSlices => "EndpointSlices",
            Watch::Node => "Nodes",
        }
    }
}

/// Which watches have listed at least once.
#[derive(Debug, Default)]
struct Listed {
    services: bool,
    slices: bool,
    node: bool,
}

impl Listed {
    fn set(&mut self, watch: Watch) {
        match watch {
            Watch::Services => self.services = true,
            Watch::EndpointSlices => self.slices = true,
            Watch::Node => self.node = true,
        }
    }

    fn all(&self) -> bool {
        self.services && self.slices && self.node
    }
}

/// What a watch event asks of the proxier.
enum Change {
    Service(String),
    Slice {
        slice: Arc<CachedSlice>,
        deleted: bool,
        trigger: Option<chrono::DateTime<chrono::Utc>>,
    },
    Node(BTreeMap<String, String>),
    /// A (re)list finished: everything may have changed.
    Listed(Watch),
    Nothing,
}

impl Proxier {
    fn new(
        client: kube::Client,
        config: ProxyConfig,
        metrics: Arc<ProxyMetrics>,
    ) -> Result<Proxier, ProxyError> {
        let node = NodeContext {
            node_name: config.node_name.clone(),
            cluster_cidr: config.cluster_cidr,
            service_cidr: config.service_cidr,
            node_labels: BTreeMap::new(),
        };
        Ok(Proxier {
            syncer: Syncer::new(node, config.netns.clone(), metrics.clone())?,
            client,
            config,
            metrics,
            dirty: Dirty::default(),
            triggers: vec![],
        })
    }

    async fn run(mut self, caches: ServiceCaches) -> Result<(), ProxyError> {
        let services = caches.services.store.clone();
        let slices = caches.slices.store.clone();
        let service_events = caches
            .services
            .notices()
            .map(|notice| Ok(service_change(&notice)));
        let slice_events = caches
            .slices
            .notices()
            .map(|notice| Ok(slice_change(&notice)));
        let (_nodes, node_writer) = reflector::store::<Node>();
        let own_node =
            watcher::Config::default().fields(&format!("metadata.name={}", self.config.node_name));
        let node_events = reflector::reflector(
            node_writer,
            watcher(Api::<Node>::all(self.client.clone()), own_node).default_backoff(),
        )
        .map(|event| event.map(|e| node_change(&e)));
        let mut service_events = std::pin::pin!(service_events);
        let mut slice_events = std::pin::pin!(slice_events);
        let mut node_events = std::pin::pin!(node_events);
        let mut listed = Listed::default();
        let mut probe = tokio::time::interval(self.config.resync_interval);
        probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut retry_delay = FIRST_RETRY_DELAY;
        let mut retry_at: Option<Instant> = None;
        let mut synced_once = false;
        loop {
            tokio::select! {
                event = service_events.next() => self.note(Watch::Services, event, &mut listed)?,
                event = slice_events.next() => self.note(Watch::EndpointSlices, event, &mut listed)?,
                event = node_events.next() => self.note(Watch::Node, event, &mut listed)?,
                _ = probe.tick() => {
                    if synced_once && self.syncer.needs_repair().await {
                        tracing::info!("the table drifted or is old: full resync");
                        self.syncer.force_full();
                        self.dirty = Dirty::All;
                    }
                }
                _ = sleep_until_opt(retry_at) => retry_at = None,
            }
            // Take every change already waiting, so that a burst of events
            // becomes one sync.
            loop {
                let mut progressed = false;
                if let Some(event) = service_events.next().now_or_never() {
                    self.note(Watch::Services, event, &mut listed)?;
                    progressed = true;
                }
                if let Some(event) = slice_events.next().now_or_never() {
                    self.note(Watch::EndpointSlices, event, &mut listed)?;
                    progressed = true;
                }
                if let Some(event) = node_events.next().now_or_never() {
                    self.note(Watch::Node, event, &mut listed)?;
                    progressed = true;
                }
                if !progressed {
                    break;
                }
            }
            if !listed.all() || retry_at.is_some() {
                // Upstream waits for the first lists too: syncing a partial
                // view would delete rules of Services not yet seen.
                continue;
            }
            if synced_once && self.dirty.is_empty() {
                continue;
            }
            let dirty = std::mem::take(&mut self.dirty);
            match self.syncer.sync(&services, &slices, dirty).await {
                Ok(synced) => {
                    synced_once = true;
                    retry_delay = FIRST_RETRY_DELAY;
                    self.programmed(&synced);
                }
                Err(error) => {
                    tracing::error!(%error, retry_in = ?retry_delay, "service proxy sync failed; the previous rules stay");
                    self.metrics.sync_failures.inc();
                    // The syncer's next sync is a full one, of everything.
                    self.dirty = Dirty::All;
                    retry_at = Some(Instant::now() + retry_delay);
                    retry_delay = (retry_delay * 2).min(MAX_RETRY_DELAY);
                }
            }
        }
    }

    /// Records what a watch event changed.
    fn note(
        &mut self,
        watch: Watch,
        event: Option<Result<Change, watcher::Error>>,
        listed: &mut Listed,
    ) -> Result<(), ProxyError> {
        let what = watch.name();
        match event {
            None => return Err(ProxyError::WatchEnded(what)),
            Some(Err(error)) => tracing::warn!(%error, "watching {what}"),
            Some(Ok(change)) => match change {
                Change::Service(key) => {
                    self.dirty.insert(key);
                }
                Change::Slice {
                    slice,
                    deleted,
                    trigger,
                } => {
                    // A slice that moved to another Service changes both.
                    if let Some(old) = self.syncer.slice_changed(&slice, deleted) {
                        self.dirty.insert(old);
                    }
                    if let Some(key) = slice.service_key() {
                        if let Some(trigger) = trigger {
                            self.triggers.push((key.clone(), trigger));
                        }
                        self.dirty.insert(key);
                    }
                }
                Change::Node(labels) => {
                    if labels != self.syncer.node().node_labels {
                        self.syncer.set_node_labels(labels);
                        self.dirty = Dirty::All;
                    }
                }
                Change::Listed(which) => {
                    debug_assert_eq!(which, watch);
                    listed.set(watch);
                    // After a relist, deletions may have been missed:
                    // recompute every Service (the diff stays small).
                    self.dirty = Dirty::All;
                }
                Change::Nothing => {}
            },
        }
        Ok(())
    }

    /// Network programming latency: from each change the synced Services
    /// were waiting for to now, when their rules are live.
    fn programmed(&mut self, synced: &sync::Synced) {
        let now = chrono::Utc::now();
        let metrics = &self.metrics;
        self.triggers.retain(|(key, at)| {
            if synced.full || synced.services.contains(key) {
                let latency = (now - *at).num_milliseconds().max(0) as f64 / 1000.0;
                metrics.network_programming.observe(latency);
                false
            } else {
                true
            }
        });
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn service_change(notice: &Notice<Service>) -> Change {
    match notice {
        Notice::Applied(s) | Notice::Deleted(s) => Change::Service(api::service::key(
            s.namespace().as_deref().unwrap_or_default(),
            &s.name_any(),
        )),
        Notice::Listed => Change::Listed(Watch::Services),
    }
}

fn slice_change(notice: &Notice<CachedSlice>) -> Change {
    match notice {
        Notice::Applied(slice) | Notice::Deleted(slice) => Change::Slice {
            slice: slice.clone(),
            deleted: matches!(notice, Notice::Deleted(_)),
            trigger: slice.trigger_time,
        },
        Notice::Listed => Change::Listed(Watch::EndpointSlices),
    }
}

fn node_change(event: &watcher::Event<Node>) -> Change {
    match event {
        watcher::Event::Apply(node) | watcher::Event::InitApply(node) => {
            Change::Node(node.labels().clone())
        }
        watcher::Event::InitDone => Change::Listed(Watch::Node),
        watcher::Event::Delete(_) | watcher::Event::Init => Change::Nothing,
    }
}
