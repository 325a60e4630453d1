//! Making the kernel's table match [`rules`](super::rules): diff, then one
//! atomic nf_tables transaction (sent by [`netlink`](super::netlink)).
//!
//! The proxier remembers, Service by Service, the objects it last
//! computed elements from (and which endpoint it put in which bucket).
//! When a Service or one of its EndpointSlices changes, it computes that
//! Service's old and new elements, compares them and sends only the
//! difference: an endpoint leaving a Service of three is "delete bucket 2,
//! put its endpoint in the leaving one's bucket, move the port from
//! `services-with-3-endpoints` to `services-with-2-endpoints`" - a handful
//! of element commands, whatever the number of other Services. Shared
//! chains (`pick-1-of-N`, ...) and their sets are counted: created with the
//! first port that needs them, deleted with the last.
//!
//! The kernel applies a transaction all at once or not at all: a failed
//! one leaves the previous rules in place; it is logged and retried as a
//! full resync.
//!
//! A full resync (at start, after a failure, when the table drifted - e.g.
//! someone ran `nft flush table ip kube-lite` - and every
//! [`FULL_RESYNC_INTERVAL`]) deletes and recreates the whole table in one
//! transaction: packets see the old table or the new one, never none.
//! Established connections are not disturbed: their address rewriting
//! lives in conntrack, not in the rules.
//!
//! After a sync, [`conntrack`](super::conntrack) removes the stale UDP
//! entries of endpoints that went away.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::ResourceExt as _;
use tokio::time::Instant;

use crate::informer::CachedSlice;

use super::conntrack::{stale_conntrack_filters, Conntrack};
use super::metrics::ProxyMetrics;
use super::netlink::{Batch, Socket};
use super::nftables::{Key, Script, Transaction, Value};
use super::rules::{
    self, AffinityPort, ElementKey, NodeContext, ServiceBuckets, ServiceTable, SharedChain,
    UdpServicePort,
};
use super::ProxyError;

/// Even without any sign of drift, the whole table is rewritten this often
/// (upstream's nftables proxier: hourly).
pub const FULL_RESYNC_INTERVAL: Duration = Duration::from_secs(3600);

/// The start of a full transaction: an empty table where the old one was
/// (`table` first, so that `delete table` has something to delete the
/// first time).
pub fn replace_table(tx: &mut impl Transaction) {
    tx.add_table();
    tx.delete_table();
    tx.add_table();
}

/// A full sync computes this many Services between two yields to the
/// runtime, so that the agent's other tasks (DNS answers) go on meanwhile.
const SERVICES_PER_YIELD: usize = 256;

/// What is in the table besides the Services' own elements: how many
/// Service ports use each shared chain, and how many Services each
/// hairpin pair.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedState {
    pub chains: BTreeMap<SharedChain, usize>,
    pub hairpin: HashMap<Ipv4Addr, usize>,
}

/// One Service's change: its elements before (`None`: it had none) and
/// after.
pub type Change<'a> = (Option<&'a ServiceTable>, Option<&'a ServiceTable>);

impl SharedState {
    /// Writes into `tx` the commands that turn the Services' old elements
    /// into their new ones, and updates the counts. Order: new shared
    /// chains (so that elements can point at them), elements that go or
    /// change, elements that come, then chains nothing points at any more.
    pub fn diff(&mut self, tx: &mut impl Transaction, changes: &[Change<'_>], node: &NodeContext) {
        let mut chain_delta: BTreeMap<SharedChain, isize> = BTreeMap::new();
        let mut hairpin_delta: BTreeMap<Ipv4Addr, (isize, &str)> = BTreeMap::new();
        for (old, new) in changes {
            for (table, sign) in [(old, -1), (new, 1)] {
                let Some(table) = table else { continue };
                for chain in &table.chains {
                    *chain_delta.entry(*chain).or_default() += sign;
                }
                for (ip, comment) in &table.hairpin {
                    let entry = hairpin_delta.entry(*ip).or_insert((0, comment));
                    entry.0 += sign;
                    if sign > 0 {
                        entry.1 = comment;
                    }
                }
            }
        }
        let mut gone_chains = vec![];
        let mut dispatch_changed = false;
        for (chain, delta) in &chain_delta {
            let before = self.chains.get(chain).copied().unwrap_or(0);
            let after = before.saturating_add_signed(*delta);
            if before == 0 && after > 0 {
                rules::write_ruleset(tx, &chain.ruleset(node));
                dispatch_changed |= chain.port_set().is_some();
            } else if before > 0 && after == 0 {
                gone_chains.push(*chain);
                dispatch_changed |= chain.port_set().is_some();
            }
            if after == 0 {
                self.chains.remove(chain);
            } else {
                self.chains.insert(*chain, after);
            }
        }
        let empty = BTreeMap::new();
        fn elements<'a>(
            t: &Option<&'a ServiceTable>,
            empty: &'a BTreeMap<ElementKey, rules::Element>,
        ) -> &'a BTreeMap<ElementKey, rules::Element> {
            t.map_or(empty, |t| &t.elements)
        }
        for (old, new) in changes {
            let new_elements = elements(new, &empty);
            for (key, element) in elements(old, &empty) {
                if new_elements.get(key) != Some(element) {
                    tx.delete_element(&key.0.name(), &key.1);
                }
            }
        }
        let mut added_pairs = vec![];
        for (ip, (delta, comment)) in &hairpin_delta {
            let before = self.hairpin.get(ip).copied().unwrap_or(0);
            let after = before.saturating_add_signed(*delta);
            if before > 0 && after == 0 {
                tx.delete_element(rules::HAIRPIN_SET, &Key::AddressPair(*ip, *ip));
            } else if before == 0 && after > 0 {
                added_pairs.push((*ip, *comment));
            }
            if after == 0 {
                self.hairpin.remove(ip);
            } else {
                self.hairpin.insert(*ip, after);
            }
        }
        for (old, new) in changes {
            let old_elements = elements(old, &empty);
            for (key, element) in elements(new, &empty) {
                if old_elements.get(key) != Some(element) {
                    tx.add_element(
                        &key.0.name(),
                        &key.1,
                        element.value.as_ref(),
                        &element.comment,
                    );
                }
            }
        }
        for (ip, comment) in added_pairs {
            tx.add_element(rules::HAIRPIN_SET, &Key::AddressPair(ip, ip), None, comment);
        }
        // A kind of port came or went: the dispatch is written again (a
        // handful of rules), before the chains and sets it no longer
        // names are deleted.
        if dispatch_changed {
            tx.flush_chain(rules::SERVICES_CHAIN);
            tx.flush_chain(rules::NODEPORTS_CHAIN);
            rules::write_rules(tx, &rules::dispatch(self.chains.keys()));
        }
        for chain in gone_chains {
            let name = chain.to_string();
            tx.flush_chain(&name);
            tx.delete_chain(&name);
            let ruleset = chain.ruleset(node);
            for (set, spec) in &ruleset.sets {
                tx.delete_set(set, spec.ty);
            }
        }
    }

    /// The number of chains and rules the shared chains add, with the
    /// dispatch rules that lead to them.
    fn counts(&self, node: &NodeContext) -> (usize, usize) {
        let rules: usize = self
            .chains
            .keys()
            .map(|c| c.ruleset(node).rule_count())
            .sum();
        let dispatch = rules::dispatch(self.chains.keys()).rule_count();
        (self.chains.len(), rules + dispatch)
    }

    /// How many rules the dispatch chain should have (the drift probe).
    fn dispatch_rules(&self) -> usize {
        rules::dispatch(self.chains.keys()).chains[rules::SERVICES_CHAIN]
            .rules
            .len()
    }
}

/// A whole table being written: the skeleton, then each Service's
/// elements as they come (a shared chain and its set just before the first
/// element that needs them), then the dispatch rules and hairpin pairs.
pub struct FullTable<'a, T: Transaction> {
    tx: &'a mut T,
    node: &'a NodeContext,
    shared: SharedState,
    hairpin: BTreeMap<Ipv4Addr, String>,
}

impl<'a, T: Transaction> FullTable<'a, T> {
    /// Starts the transaction: an empty table where the old one was, and
    /// the skeleton.
    pub fn new(tx: &'a mut T, node: &'a NodeContext) -> FullTable<'a, T> {
        replace_table(tx);
        rules::write_ruleset(tx, &rules::base_ruleset(node));
        FullTable {
            tx,
            node,
            shared: SharedState::default(),
            hairpin: BTreeMap::new(),
        }
    }

    /// One Service's elements.
    pub fn add(&mut self, table: &ServiceTable) {
        for chain in &table.chains {
            let users = self.shared.chains.entry(*chain).or_default();
            if *users == 0 {
                rules::write_ruleset(self.tx, &chain.ruleset(self.node));
            }
            *users += 1;
        }
        for (key, element) in &table.elements {
            self.tx.add_element(
                &key.0.name(),
                &key.1,
                element.value.as_ref(),
                &element.comment,
            );
        }
        for (ip, comment) in &table.hairpin {
            *self.shared.hairpin.entry(*ip).or_default() += 1;
            self.hairpin.entry(*ip).or_insert_with(|| comment.clone());
        }
    }

    /// The dispatch rules and the hairpin pairs. Returns what the table
    /// shares.
    pub fn finish(self) -> SharedState {
        rules::write_rules(self.tx, &rules::dispatch(self.shared.chains.keys()));
        for (ip, comment) in self.hairpin {
            self.tx.add_element(
                rules::HAIRPIN_SET,
                &Key::AddressPair(ip, ip),
                None,
                &comment,
            );
        }
        self.shared
    }
}

/// The whole table for `services` and their `slices` (benchmarks, tests).
pub fn write_full_table(
    tx: &mut impl Transaction,
    services: &[Service],
    slices: &[CachedSlice],
    node: &NodeContext,
) -> SharedState {
    let mut by_service: BTreeMap<String, Vec<&CachedSlice>> = BTreeMap::new();
    for slice in slices {
        if let Some(key) = slice.service_key() {
            by_service.entry(key).or_default().push(slice);
        }
    }
    let mut table = FullTable::new(tx, node);
    for service in services {
        let key = api::service::key(
            service.metadata.namespace.as_deref().unwrap_or_default(),
            service.metadata.name.as_deref().unwrap_or_default(),
        );
        let slices = by_service.get(&key).map(Vec::as_slice).unwrap_or_default();
        table.add(&rules::service_table(
            service,
            slices,
            node,
            &ServiceBuckets::new(),
        ));
    }
    table.finish()
}

/// What the proxier last wrote for one Service: not the elements
/// themselves (at 100,000 Services they would take hundreds of megabytes)
/// but the objects they were computed from, and its buckets. The elements
/// are a pure function of them, so the old elements of a changed Service
/// are simply computed again and compared with the new ones. The objects
/// are the watch cache's own (shared, `Arc`): an unchanged Service costs a
/// pointer.
#[derive(Debug, Clone)]
pub struct AppliedService {
    pub service: Arc<Service>,
    pub slices: Vec<Arc<CachedSlice>>,
    pub buckets: ServiceBuckets,
    /// Its UDP ports as programmed (for conntrack cleanup).
    pub udp_ports: Vec<UdpServicePort>,
    /// Its ClientIP-affinity ports as programmed.
    pub affinity_ports: Vec<AffinityPort>,
    /// How many ports and elements it programmed (metrics).
    pub ports: usize,
    pub elements: usize,
}

/// Which Services a sync recomputes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dirty {
    /// Every Service (after a relist, a node label change, a failure, or
    /// drift).
    All,
    /// These (`namespace/name`).
    Only(BTreeSet<String>),
}

impl Default for Dirty {
    fn default() -> Dirty {
        Dirty::Only(BTreeSet::new())
    }
}

impl Dirty {
    /// One more Service to recompute.
    pub fn insert(&mut self, key: String) {
        if let Dirty::Only(keys) = self {
            keys.insert(key);
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self, Dirty::Only(keys) if keys.is_empty())
    }
}

impl<const N: usize> From<[String; N]> for Dirty {
    fn from(keys: [String; N]) -> Dirty {
        Dirty::Only(keys.into())
    }
}

/// What one successful sync did.
#[derive(Debug)]
pub struct Synced {
    /// The table was rewritten as a whole.
    pub full: bool,
    /// The Services recomputed (`namespace/name`).
    pub services: BTreeSet<String>,
    /// Commands sent (0: nothing had changed).
    pub commands: usize,
    /// Their size as netlink messages.
    pub bytes: usize,
    /// How long the kernel took to apply them (the rest of a sync is
    /// computing and encoding).
    pub commit_time: Duration,
}

/// The proxy's memory of the table and the way to change it: the netlink
/// socket, what was last written, and whether the next sync must rewrite
/// everything.
pub struct Syncer {
    socket: Arc<Socket>,
    conntrack: Conntrack,
    node: NodeContext,
    /// The skeleton for this node (it depends only on the node's ranges),
    /// built once: the drift probe and the metrics read it.
    base: rules::Ruleset,
    applied: BTreeMap<String, AppliedService>,
    /// Which EndpointSlices belong to which Service.
    slices: SliceIndex,
    /// Sums over `applied`, for the metrics.
    totals: Totals,
    shared: SharedState,
    /// The next sync rewrites the whole table.
    full: bool,
    last_full: Option<Instant>,
    /// The size of the last full transaction (the next one is allocated
    /// at that size at once).
    last_full_bytes: usize,
    metrics: Arc<ProxyMetrics>,
}

impl Syncer {
    /// Opens the nf_tables socket (in `netns`, or here). The first sync
    /// will be a full one.
    pub fn new(
        node: NodeContext,
        netns: Option<String>,
        metrics: Arc<ProxyMetrics>,
    ) -> Result<Syncer, ProxyError> {
        Ok(Syncer {
            socket: Arc::new(Socket::open(netns.as_deref())?),
            conntrack: Conntrack { netns },
            base: rules::base_ruleset(&node),
            node,
            applied: BTreeMap::new(),
            slices: SliceIndex::default(),
            totals: Totals::default(),
            shared: SharedState::default(),
            full: true,
            last_full: None,
            last_full_bytes: 0,
            metrics,
        })
    }

    /// An EndpointSlice was created, changed or deleted: where to find it
    /// when its Service is synced. (The proxier calls this for every slice
    /// notice; a relist or full sync reads the whole cache again.)
    /// Returns the Service it belonged to before, if that was another.
    pub fn slice_changed(&mut self, slice: &CachedSlice, deleted: bool) -> Option<String> {
        self.slices.changed(slice, deleted)
    }

    /// The next sync rewrites the whole table.
    pub fn force_full(&mut self) {
        self.full = true;
    }

    pub fn node(&self) -> &NodeContext {
        &self.node
    }

    /// New node labels (its zone): every Service may change, and the old
    /// elements were computed with the old labels, so rewrite everything.
    pub fn set_node_labels(&mut self, labels: BTreeMap<String, String>) {
        if labels != self.node.node_labels {
            self.node.node_labels = labels;
            self.full = true;
        }
    }

    /// Whether a drift check is due: the table is old, or its dispatch
    /// chain lost its rules (`nft flush table ip kube-lite`, `nft delete
    /// table ...`). Reads one chain, not the table.
    pub async fn needs_repair(&self) -> bool {
        if self.full {
            return false;
        }
        if self
            .last_full
            .is_none_or(|t| t.elapsed() >= FULL_RESYNC_INTERVAL)
        {
            return true;
        }
        let expected = self.shared.dispatch_rules();
        let socket = self.socket.clone();
        let found = tokio::task::spawn_blocking(move || socket.rule_count(rules::SERVICES_CHAIN))
            .await
            .map_err(|_| ProxyError::Blocking);
        !matches!(found, Ok(Ok(n)) if n == expected)
    }

    /// Brings the table in line with the stores for the Services in
    /// `dirty` (all of them when a full resync is due).
    /// On failure nothing changed in the kernel, and the next sync is a
    /// full one.
    pub async fn sync(
        &mut self,
        services: &Store<Service>,
        slices: &Store<CachedSlice>,
        dirty: Dirty,
    ) -> Result<Synced, ProxyError> {
        let start = Instant::now();
        let all = dirty == Dirty::All || self.full;
        let mut dirty = match dirty {
            Dirty::All => BTreeSet::new(),
            Dirty::Only(keys) => keys,
        };
        if all {
            dirty.extend(self.applied.keys().cloned());
            for s in services.state() {
                dirty.insert(api::service::key(
                    s.namespace().as_deref().unwrap_or_default(),
                    &s.name_any(),
                ));
            }
            // Everything is read anyway: index the slices again from the
            // cache, in case a notice was missed.
            self.slices.rebuild(slices);
        }
        let mut slices_by_service: BTreeMap<String, Vec<Arc<CachedSlice>>> = BTreeMap::new();
        for key in &dirty {
            let found = self.slices.of(key, slices);
            if !found.is_empty() {
                slices_by_service.insert(key.clone(), found);
            }
        }
        let current = |key: &String| -> Option<(Arc<Service>, Vec<Arc<CachedSlice>>)> {
            let (namespace, name) = key.split_once('/')?;
            let service = services.get(&ObjectRef::new(name).within(namespace))?;
            Some((
                service,
                slices_by_service.get(key).cloned().unwrap_or_default(),
            ))
        };
        let no_buckets = ServiceBuckets::new();

        let mut computed: BTreeMap<String, Option<AppliedService>> = BTreeMap::new();
        let full = self.full;
        let mut shared = self.shared.clone();
        let batch = if !full {
            // A partial sync: the dirty Services' old elements (computed
            // again from what was applied) against their new ones.
            let mut olds = vec![];
            let mut news = vec![];
            for key in &dirty {
                let applied = self.applied.get(key);
                olds.push(applied.map(|a| compute(&a.service, &a.slices, &self.node, &a.buckets)));
                let previous = applied.map_or(&no_buckets, |a| &a.buckets);
                let now = current(key).map(|(service, slices)| {
                    let table = compute(&service, &slices, &self.node, previous);
                    let applied = applied_service(service, slices, &table);
                    (table, applied)
                });
                computed.insert(key.clone(), now.as_ref().map(|(_, a)| a.clone()));
                news.push(now.map(|(t, _)| t));
            }
            let changes: Vec<Change<'_>> = olds
                .iter()
                .zip(&news)
                .map(|(o, n)| (o.as_ref(), n.as_ref()))
                .collect();
            let mut batch = Batch::new();
            shared.diff(&mut batch, &changes, &self.node);
            let stale = stale_affinity(&olds, &news);
            if !stale.is_empty() {
                self.forget_clients(&mut batch, &stale).await;
            }
            if tracing::enabled!(tracing::Level::DEBUG) && !batch.is_empty() {
                let mut script = Script::default();
                self.shared.clone().diff(&mut script, &changes, &self.node);
                tracing::debug!("nf_tables transaction, as nft text:\n{}", script.text);
            }
            batch
        } else {
            // The whole table in one transaction, written Service by
            // Service so that only one Service's elements are in memory at
            // a time (the batch itself is the big thing).
            let mut batch = Batch::with_capacity(self.last_full_bytes + self.last_full_bytes / 8);
            let mut table = FullTable::new(&mut batch, &self.node);
            for (i, key) in dirty.iter().enumerate() {
                if i % SERVICES_PER_YIELD == SERVICES_PER_YIELD - 1 {
                    tokio::task::yield_now().await;
                }
                let previous = self.applied.get(key).map_or(&no_buckets, |a| &a.buckets);
                let now = current(key).map(|(service, slices)| {
                    let service_table = compute(&service, &slices, &self.node, previous);
                    table.add(&service_table);
                    applied_service(service, slices, &service_table)
                });
                computed.insert(key.clone(), now);
            }
            shared = table.finish();
            batch
        };
        let commands = batch.len();
        let bytes = batch.size();
        let commit_start = Instant::now();
        if !batch.is_empty() {
            let socket = self.socket.clone();
            let result = tokio::task::spawn_blocking(move || socket.commit(batch))
                .await
                .map_err(|_| ProxyError::Blocking)?;
            if let Err(error) = result {
                self.full = true;
                return Err(error.into());
            }
        }
        let commit_time = commit_start.elapsed();

        // Applied: remember it, clean conntrack, report.
        self.shared = shared;
        if full {
            self.full = false;
            self.last_full = Some(Instant::now());
            self.last_full_bytes = bytes;
        }
        for (key, now) in computed {
            let previous = self.applied.remove(&key);
            let old_udp = previous
                .as_ref()
                .map(|r| r.udp_ports.as_slice())
                .unwrap_or_default();
            let new_udp = now
                .as_ref()
                .map(|r| r.udp_ports.as_slice())
                .unwrap_or_default();
            for filter in stale_conntrack_filters(old_udp, new_udp) {
                if let Err(error) = self.conntrack.delete(&filter).await {
                    tracing::warn!(%error, service = %key, "removing stale UDP conntrack entries");
                }
            }
            if let Some(previous) = &previous {
                self.totals.elements -= previous.elements;
                self.totals.ports -= previous.ports;
            }
            if let Some(now) = now.filter(|n| n.elements > 0) {
                self.totals.elements += now.elements;
                self.totals.ports += now.ports;
                self.applied.insert(key, now);
            }
        }
        self.report(start, full, commands);
        tracing::info!(
            full,
            services = dirty.len(),
            commands,
            bytes,
            elapsed_ms = start.elapsed().as_millis() as u64,
            "service rules synced"
        );
        Ok(Synced {
            full,
            services: dirty,
            commands,
            bytes,
            commit_time,
        })
    }

    /// Adds to `batch` the removal of every remembered client that points
    /// at an endpoint its port no longer has. The packet path fills the
    /// map, so the proxy reads it first; an entry that expires meanwhile
    /// is no error (`destroy`, not `delete`).
    async fn forget_clients(&self, batch: &mut Batch, stale: &[StaleAffinity]) {
        let socket = self.socket.clone();
        let entries =
            tokio::task::spawn_blocking(move || socket.map_entries(rules::AFFINITY_CLIENTS_MAP))
                .await;
        let entries = match entries {
            Ok(Ok(entries)) => entries,
            Ok(Err(error)) => {
                tracing::warn!(%error, "reading the remembered ClientIP-affinity clients");
                return;
            }
            Err(_) => return,
        };
        for (key, value) in entries {
            let (Key::Client(_, address, proto, port), Value::Endpoint(ip, endpoint_port)) =
                (&key, &value)
            else {
                continue;
            };
            let outside_services = !self.node.service_cidr.contains(address);
            let stale = stale.iter().any(|s| {
                let same_port = s.proto == *proto
                    && ((s.cluster_ip == *address && s.port == *port)
                        || (outside_services && s.node_port == Some(*port)));
                same_port && !s.endpoints.contains(&(*ip, *endpoint_port))
            });
            if stale {
                batch.destroy_element(rules::AFFINITY_CLIENTS_MAP, &key);
            }
        }
    }

    fn report(&self, start: Instant, full: bool, commands: usize) {
        let elapsed = start.elapsed().as_secs_f64();
        self.metrics.sync_duration.observe(elapsed);
        if full {
            self.metrics.full_sync_duration.observe(elapsed);
        } else {
            self.metrics.partial_sync_duration.observe(elapsed);
        }
        let base = &self.base;
        let (shared_chains, shared_rules) = self.shared.counts(&self.node);
        let elements = self.totals.elements + self.shared.hairpin.len();
        let ports = self.totals.ports;
        self.metrics.set_counts(
            base.chains.len() + shared_chains,
            base.rule_count() + shared_rules,
            elements,
        );
        self.metrics.services.set(self.applied.len() as i64);
        self.metrics.service_ports.set(ports as i64);
        self.metrics.last_transaction_lines.set(commands as i64);
    }

    /// How many Services are programmed.
    pub fn service_count(&self) -> usize {
        self.applied.len()
    }
}

/// Sums over the programmed Services, kept as they change (summing
/// 10,000 Services on every sync costs more than the sync).
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    elements: usize,
    ports: usize,
}

/// EndpointSlices by the Service they belong to (`namespace/name`), so
/// that a partial sync reads a Service's slices without walking the cache
/// (at 10,000 Services that walk, touching every slice, cost more than the
/// kernel's part of the change). Names only: a slice lives in its
/// Service's namespace.
#[derive(Debug, Default)]
pub struct SliceIndex {
    /// `namespace/service` -> the names of its slices.
    by_service: HashMap<String, Vec<String>>,
    /// `namespace/slice` -> `namespace/service`.
    owner: HashMap<String, String>,
}

impl SliceIndex {
    /// Records where a slice belongs now (or that it is gone). Returns
    /// the Service it belonged to before, if that was another one.
    pub fn changed(&mut self, slice: &CachedSlice, deleted: bool) -> Option<String> {
        let (namespace, name) = (&*slice.namespace, &*slice.name);
        let slice_key = format!("{namespace}/{name}");
        let old = self.owner.remove(&slice_key);
        if let Some(old) = &old {
            if let Some(names) = self.by_service.get_mut(old) {
                names.retain(|n| n != name);
                if names.is_empty() {
                    self.by_service.remove(old);
                }
            }
        }
        let own = slice.service_key();
        if let Some(key) = own.as_ref().filter(|_| !deleted) {
            self.by_service
                .entry(key.clone())
                .or_default()
                .push(name.to_string());
            self.owner.insert(slice_key, key.clone());
        }
        old.filter(|old| own.as_ref() != Some(old))
    }

    /// Indexes every slice of the cache again.
    pub fn rebuild(&mut self, slices: &Store<CachedSlice>) {
        *self = SliceIndex::default();
        for slice in slices.state() {
            self.changed(&slice, false);
        }
    }

    /// The slices of one Service (`namespace/name`), from the cache.
    pub fn of(&self, service: &str, slices: &Store<CachedSlice>) -> Vec<Arc<CachedSlice>> {
        let namespace = service.split_once('/').map_or("", |(ns, _)| ns);
        self.by_service
            .get(service)
            .into_iter()
            .flatten()
            .filter_map(|name| slices.get(&ObjectRef::new(name).within(namespace)))
            .collect()
    }
}

/// A ClientIP-affinity port whose remembered clients may point at
/// endpoints it no longer has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleAffinity {
    pub cluster_ip: Ipv4Addr,
    pub proto: super::nftables::Proto,
    pub port: u16,
    pub node_port: Option<u16>,
    /// The endpoints clients may still be sent to.
    pub endpoints: BTreeSet<(Ipv4Addr, u16)>,
}

/// The affinity ports that lost endpoints (or their affinity, or the
/// Service) between `olds` and `news`.
pub fn stale_affinity(
    olds: &[Option<ServiceTable>],
    news: &[Option<ServiceTable>],
) -> Vec<StaleAffinity> {
    let mut stale = vec![];
    for (old, new) in olds.iter().zip(news) {
        let Some(old) = old else { continue };
        for port in &old.affinity_ports {
            let now = new.as_ref().and_then(|n| {
                n.affinity_ports
                    .iter()
                    .find(|p| p.proto == port.proto && p.port == port.port)
            });
            let endpoints = now.map(|p| p.endpoints.clone()).unwrap_or_default();
            if !port.endpoints.is_subset(&endpoints) {
                stale.push(StaleAffinity {
                    cluster_ip: port.cluster_ip,
                    proto: port.proto,
                    port: port.port,
                    node_port: port.node_port,
                    endpoints,
                });
            }
        }
    }
    stale
}

fn compute(
    service: &Service,
    slices: &[Arc<CachedSlice>],
    node: &NodeContext,
    previous: &ServiceBuckets,
) -> ServiceTable {
    let slices: Vec<&CachedSlice> = slices.iter().map(Arc::as_ref).collect();
    rules::service_table(service, &slices, node, previous)
}

fn applied_service(
    service: Arc<Service>,
    slices: Vec<Arc<CachedSlice>>,
    table: &ServiceTable,
) -> AppliedService {
    AppliedService {
        service,
        slices,
        buckets: table.buckets.clone(),
        udp_ports: table.udp_ports.clone(),
        affinity_ports: table.affinity_ports.clone(),
        ports: table.ports,
        elements: table.elements.len(),
    }
}

#[cfg(test)]
mod tests;
