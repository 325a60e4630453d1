//! Making the kernel's table match [`rules`](super::rules): diff, then one
//! atomic nf_tables transaction (sent by [`netlink`](super::netlink)).
//!
//! The proxier remembers, Service by Service, the objects it last
//! computed rules from. When a Service or one of its EndpointSlices
//! changes, it computes that Service's old and new rules, compares them
//! and sends only the difference: one endpoint going away is a handful of lines (flush
//! and rewrite one `service-...` chain, delete one `endpoint-...` chain),
//! whatever the number of other Services. The kernel applies a transaction
//! all at once or not at all: a failed one leaves the previous rules in
//! place; it is logged and retried as a full resync.
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

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::ResourceExt as _;
use tokio::time::Instant;

use super::conntrack::{stale_conntrack_filters, Conntrack};
use super::metrics::ProxyMetrics;
use super::netlink::{Batch, Socket};
use super::nftables::{Script, Transaction};
use super::rules::{self, NodeContext, Ruleset, ServiceRules, UdpServicePort};
use super::ProxyError;

/// Even without any sign of drift, the whole table is rewritten this often
/// (upstream's nftables proxier: hourly).
pub const FULL_RESYNC_INTERVAL: Duration = Duration::from_secs(3600);

/// The transaction that replaces the whole table by `parts` (the
/// skeleton first, then each Service): `table` first, so that `delete
/// table` has something to delete the first time, then the table again,
/// then every part's objects.
pub fn full_transaction(
    tx: &mut impl Transaction,
    parts: impl IntoIterator<Item = impl Borrow<Ruleset>>,
) {
    replace_table(tx);
    for part in parts {
        rules::write_ruleset(tx, part.borrow());
    }
}

/// The start of a full transaction: an empty table where the old one was.
pub fn replace_table(tx: &mut impl Transaction) {
    tx.add_table();
    tx.delete_table();
    tx.add_table();
}

/// A full sync computes this many Services between two yields to the
/// runtime, so that the agent's other tasks (DNS answers) go on meanwhile.
const SERVICES_PER_YIELD: usize = 256;

/// What it takes to turn one ruleset into another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Diff {
    /// Nothing changed: no transaction.
    Unchanged,
    /// The commands that do it were written into the transaction.
    Partial,
    /// The change cannot be written as a difference (a chain's hook or
    /// comment, a set's type or timeout changed): rewrite the table.
    /// Nothing was written into the transaction.
    NeedsFullResync,
}

/// Writes into `tx` the commands that turn `old` into `new`. Whether a
/// full resync is needed is decided before anything is written: then `tx`
/// is left as it was.
pub fn diff_transaction(tx: &mut impl Transaction, old: &Ruleset, new: &Ruleset) -> Diff {
    for (name, chain) in &new.chains {
        if old
            .chains
            .get(name)
            .is_some_and(|o| o.hook != chain.hook || o.comment != chain.comment)
        {
            return Diff::NeedsFullResync;
        }
    }
    // Sets and maps whose declaration changed (an endpoints map's
    // `numgen random mod N` when N changes) are deleted and created again,
    // with all their elements; the chains that refer to them are rewritten
    // anyway (their rule names the same N).
    let recreated: BTreeSet<&String> = new
        .sets
        .iter()
        .filter(|(name, set)| old.sets.get(*name).is_some_and(|o| o != *set))
        .map(|(name, _)| name)
        .collect();
    // (A set still referred to by a chain that stays as it is - an
    // affinity timeout changed - cannot be deleted: rewrite the table.)
    for name in &recreated {
        let kept_reference = new.chains.iter().any(|(chain_name, chain)| {
            old.chains.get(chain_name) == Some(chain)
                && chain.rules.iter().any(|r| r.uses_set(name))
        });
        if kept_reference {
            return Diff::NeedsFullResync;
        }
    }
    let before = tx.len();
    // 1. New sets and maps, before rules refer to them.
    for (name, set) in &new.sets {
        if !old.sets.contains_key(name) {
            tx.add_set(name, set.ty, &set.comment);
        }
    }
    // 2. New chains, before rules and map elements refer to them.
    for (name, chain) in &new.chains {
        if !old.chains.contains_key(name) {
            tx.add_chain(name, chain.hook, &chain.comment);
        }
    }
    // 3. Chains whose rules changed, and chains going away, are emptied:
    //    this drops their references to other chains and sets.
    let mut rewritten = vec![];
    for (name, chain) in &old.chains {
        match new.chains.get(name) {
            Some(new_chain) if new_chain.rules == chain.rules => {}
            Some(_) => {
                tx.flush_chain(name);
                rewritten.push(name);
            }
            None => tx.flush_chain(name),
        }
    }
    for name in &recreated {
        let set = &new.sets[*name];
        tx.delete_set(name, set.ty);
        tx.add_set(name, set.ty, &set.comment);
    }
    // 4. Map elements that go or change, before the chains they point to.
    for ((set, key), element) in &old.elements {
        if recreated.contains(set) {
            continue;
        }
        if new.elements.get(&(set.clone(), key.clone())) != Some(element) {
            tx.delete_element(set, key);
        }
    }
    // 5. The rules of new and rewritten chains.
    for (name, chain) in &new.chains {
        if !old.chains.contains_key(name) || rewritten.contains(&name) {
            for rule in &chain.rules {
                tx.add_rule(name, rule);
            }
        }
    }
    // 6. New and changed map elements.
    for ((set, key), element) in &new.elements {
        if recreated.contains(set) || old.elements.get(&(set.clone(), key.clone())) != Some(element)
        {
            tx.add_element(set, key, element.value.as_ref(), &element.comment);
        }
    }
    // 7. Chains and sets nothing refers to any more.
    for name in old.chains.keys() {
        if !new.chains.contains_key(name) {
            tx.delete_chain(name);
        }
    }
    for (name, set) in &old.sets {
        if !new.sets.contains_key(name) {
            tx.delete_set(name, set.ty);
        }
    }
    if tx.len() == before {
        Diff::Unchanged
    } else {
        Diff::Partial
    }
}

/// What the proxier last wrote for one Service: not the rules themselves
/// (at 10,000 Services they would take hundreds of megabytes) but the
/// objects they were computed from. The rules are a pure function of
/// them, so the old rules of a changed Service are simply computed again
/// and compared with the new ones. The objects are the watch cache's own
/// (shared, `Arc`): an unchanged Service costs a pointer.
#[derive(Debug, Clone)]
pub struct AppliedService {
    pub service: Arc<Service>,
    pub slices: Vec<Arc<EndpointSlice>>,
    /// Its UDP ports as programmed (for conntrack cleanup).
    pub udp_ports: Vec<UdpServicePort>,
    /// How many ports, chains, rules and elements it programmed (metrics).
    pub counts: Counts,
}

/// Sizes, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub ports: usize,
    pub chains: usize,
    pub rules: usize,
    pub elements: usize,
}

impl Counts {
    fn of(rules: &ServiceRules) -> Counts {
        Counts {
            ports: rules.ports,
            chains: rules.ruleset.chains.len(),
            rules: rules.ruleset.rule_count(),
            elements: rules.ruleset.elements.len(),
        }
    }

    fn add(&mut self, other: Counts) {
        self.ports += other.ports;
        self.chains += other.chains;
        self.rules += other.rules;
        self.elements += other.elements;
    }
}

/// Recompute every Service (after a relist, or for a full resync).
pub const ALL_SERVICES: &str = "";

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
    applied: BTreeMap<String, AppliedService>,
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
            node,
            applied: BTreeMap::new(),
            full: true,
            last_full: None,
            last_full_bytes: 0,
            metrics,
        })
    }

    /// The next sync rewrites the whole table.
    pub fn force_full(&mut self) {
        self.full = true;
    }

    pub fn node(&self) -> &NodeContext {
        &self.node
    }

    /// New node labels (its zone): every Service may change, and the old
    /// rules were computed with the old labels, so rewrite everything.
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
        let expected = rules::base_ruleset(&self.node).chains[rules::SERVICES_CHAIN]
            .rules
            .len();
        let socket = self.socket.clone();
        let found = tokio::task::spawn_blocking(move || socket.rule_count(rules::SERVICES_CHAIN))
            .await
            .map_err(|_| ProxyError::Blocking);
        !matches!(found, Ok(Ok(n)) if n == expected)
    }

    /// Brings the table in line with the stores for the Services in
    /// `dirty` (or all of them: [`ALL_SERVICES`], or a full resync due).
    /// On failure nothing changed in the kernel, and the next sync is a
    /// full one.
    pub async fn sync(
        &mut self,
        services: &Store<Service>,
        slices: &Store<EndpointSlice>,
        mut dirty: BTreeSet<String>,
    ) -> Result<Synced, ProxyError> {
        let start = Instant::now();
        if dirty.remove(ALL_SERVICES) || self.full {
            dirty.extend(self.applied.keys().cloned());
            for s in services.state() {
                dirty.insert(rules::service_key(
                    s.namespace().as_deref().unwrap_or_default(),
                    &s.name_any(),
                ));
            }
        }
        let mut slices_by_service: BTreeMap<String, Vec<Arc<EndpointSlice>>> = BTreeMap::new();
        for slice in slices.state() {
            if let Some(key) = rules::slice_service_key(&slice) {
                if dirty.contains(&key) {
                    slices_by_service.entry(key).or_default().push(slice);
                }
            }
        }
        let current = |key: &String| -> Option<(Arc<Service>, Vec<Arc<EndpointSlice>>)> {
            let (namespace, name) = key.split_once('/')?;
            let service = services.get(&ObjectRef::new(name).within(namespace))?;
            Some((
                service,
                slices_by_service.get(key).cloned().unwrap_or_default(),
            ))
        };

        // A partial sync: the dirty Services' old rules (computed again
        // from what was applied) against their new ones.
        let mut batch = Batch::new();
        let mut computed: BTreeMap<String, Option<AppliedService>> = BTreeMap::new();
        let mut full = self.full;
        if !full {
            let mut old = Ruleset::default();
            let mut new = Ruleset::default();
            for key in &dirty {
                if let Some(applied) = self.applied.get(key) {
                    old.extend(&compute(&applied.service, &applied.slices, &self.node).ruleset);
                }
                let now = current(key).map(|(service, slices)| {
                    let rules = compute(&service, &slices, &self.node);
                    new.extend(&rules.ruleset);
                    applied_service(service, slices, &rules)
                });
                computed.insert(key.clone(), now);
            }
            match diff_transaction(&mut batch, &old, &new) {
                Diff::Unchanged | Diff::Partial => {
                    if tracing::enabled!(tracing::Level::DEBUG) && !batch.is_empty() {
                        let mut script = Script::default();
                        diff_transaction(&mut script, &old, &new);
                        tracing::debug!("nf_tables transaction, as nft text:\n{}", script.text);
                    }
                }
                Diff::NeedsFullResync => {
                    tracing::info!("a change needs a full resync");
                    full = true;
                }
            }
        }
        if full {
            // The whole table in one transaction, written Service by
            // Service so that only one Service's rules are in memory at a
            // time (the batch itself is the big thing).
            batch = Batch::with_capacity(self.last_full_bytes + self.last_full_bytes / 8);
            computed.clear();
            replace_table(&mut batch);
            rules::write_ruleset(&mut batch, &rules::base_ruleset(&self.node));
            for (i, key) in dirty.iter().enumerate() {
                if i % SERVICES_PER_YIELD == SERVICES_PER_YIELD - 1 {
                    tokio::task::yield_now().await;
                }
                let now = current(key).map(|(service, slices)| {
                    let rules = compute(&service, &slices, &self.node);
                    rules::write_ruleset(&mut batch, &rules.ruleset);
                    applied_service(service, slices, &rules)
                });
                computed.insert(key.clone(), now);
            }
        }
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
            if let Some(now) = now.filter(|n| n.counts != Counts::default()) {
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

    fn report(&self, start: Instant, full: bool, commands: usize) {
        let elapsed = start.elapsed().as_secs_f64();
        self.metrics.sync_duration.observe(elapsed);
        if full {
            self.metrics.full_sync_duration.observe(elapsed);
        } else {
            self.metrics.partial_sync_duration.observe(elapsed);
        }
        let base = rules::base_ruleset(&self.node);
        let mut total = Counts {
            ports: 0,
            chains: base.chains.len(),
            rules: base.rule_count(),
            elements: base.elements.len(),
        };
        for applied in self.applied.values() {
            total.add(applied.counts);
        }
        self.metrics
            .set_counts(total.chains, total.rules, total.elements);
        self.metrics.services.set(self.applied.len() as i64);
        self.metrics.service_ports.set(total.ports as i64);
        self.metrics.last_transaction_lines.set(commands as i64);
    }

    /// How many Services are programmed.
    pub fn service_count(&self) -> usize {
        self.applied.len()
    }
}

fn compute(service: &Service, slices: &[Arc<EndpointSlice>], node: &NodeContext) -> ServiceRules {
    let slices: Vec<&EndpointSlice> = slices.iter().map(Arc::as_ref).collect();
    rules::service_ruleset(service, &slices, node)
}

fn applied_service(
    service: Arc<Service>,
    slices: Vec<Arc<EndpointSlice>>,
    rules: &ServiceRules,
) -> AppliedService {
    AppliedService {
        service,
        slices,
        udp_ports: rules.udp_ports.clone(),
        counts: Counts::of(rules),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::nftables::{Addr, Key, Proto, Rule, Script, SetType, Stmt, Verdict};
    use crate::proxy::rules::{Chain, Element, Set};

    fn chain(rules: Vec<Vec<Stmt>>) -> Chain {
        Chain {
            hook: None,
            comment: "c".into(),
            rules: rules.into_iter().map(|r| Rule::new(r, "c")).collect(),
        }
    }

    fn goto(chain: &str) -> Vec<Stmt> {
        vec![Stmt::Verdict(Verdict::Goto(chain.into()))]
    }

    fn one_in(modulus: u32, chain: &str) -> Vec<Stmt> {
        vec![
            Stmt::NumgenIsZero { modulus },
            Stmt::Verdict(Verdict::Goto(chain.into())),
        ]
    }

    fn dnat(ip: &str) -> Vec<Stmt> {
        vec![
            Stmt::L4Proto(Proto::Tcp),
            Stmt::Dnat(ip.parse().unwrap(), 80),
        ]
    }

    fn drop() -> Vec<Stmt> {
        vec![Stmt::Verdict(Verdict::Drop)]
    }

    /// The diff as text, or what it said when it wrote nothing.
    fn diff(old: &Ruleset, new: &Ruleset) -> Result<String, Diff> {
        let mut script = Script::default();
        match diff_transaction(&mut script, old, new) {
            Diff::Partial => Ok(script.text),
            other => {
                assert!(script.is_empty(), "{other:?} wrote {}", script.text);
                Err(other)
            }
        }
    }

    #[test]
    fn equal_rulesets_need_no_transaction() {
        let mut r = Ruleset::default();
        r.chains.insert("a".into(), chain(vec![drop()]));
        assert_eq!(diff(&r, &r), Err(Diff::Unchanged));
    }

    #[test]
    fn one_endpoint_gone_is_a_small_transaction() {
        let mut old = Ruleset::default();
        old.chains.insert(
            "service-X".into(),
            chain(vec![one_in(2, "endpoint-A"), goto("endpoint-B")]),
        );
        old.chains
            .insert("endpoint-A".into(), chain(vec![dnat("10.244.1.5")]));
        old.chains
            .insert("endpoint-B".into(), chain(vec![dnat("10.244.2.7")]));
        let mut new = old.clone();
        new.chains.remove("endpoint-B");
        new.chains
            .insert("service-X".into(), chain(vec![goto("endpoint-A")]));
        let Ok(tx) = diff(&old, &new) else {
            panic!("expected a partial transaction")
        };
        assert_eq!(
            tx,
            "flush chain ip kube-lite endpoint-B\n\
             flush chain ip kube-lite service-X\n\
             add rule ip kube-lite service-X goto endpoint-A comment \"c\"\n\
             delete chain ip kube-lite endpoint-B\n"
        );
    }

    #[test]
    fn changed_elements_are_replaced() {
        let key = Key::ClusterIpPort("10.96.0.1".parse().unwrap(), Proto::Tcp, 80);
        let mut old = Ruleset::default();
        old.elements.insert(
            ("no-endpoint-services".into(), key.clone()),
            Element {
                value: Some(Verdict::Goto("reject-chain".into())),
                comment: "s".into(),
            },
        );
        let mut new = Ruleset::default();
        new.chains.insert("service-X".into(), chain(vec![drop()]));
        new.elements.insert(
            ("service-ips".into(), key),
            Element {
                value: Some(Verdict::Goto("service-X".into())),
                comment: "s".into(),
            },
        );
        let Ok(tx) = diff(&old, &new) else {
            panic!("expected a partial transaction")
        };
        let lines: Vec<&str> = tx.lines().collect();
        assert_eq!(lines, [
            "add chain ip kube-lite service-X { comment \"c\" ; }",
            "delete element ip kube-lite no-endpoint-services { 10.96.0.1 . tcp . 80 }",
            "add rule ip kube-lite service-X drop comment \"c\"",
            "add element ip kube-lite service-ips { 10.96.0.1 . tcp . 80 comment \"s\" : goto service-X }",
        ]);
    }

    #[test]
    fn comment_changes_need_a_full_resync() {
        let mut old = Ruleset::default();
        old.chains.insert("a".into(), chain(vec![]));
        let mut new = old.clone();
        new.chains.get_mut("a").unwrap().comment = "other".into();
        assert_eq!(diff(&old, &new), Err(Diff::NeedsFullResync));
    }

    #[test]
    fn a_changed_set_still_in_use_needs_a_full_resync() {
        // An affinity timeout changed; the chain that uses the set did not.
        let affinity = |timeout_seconds| Set {
            ty: SetType::RecentAddresses { timeout_seconds },
            comment: "a".into(),
        };
        let mut old = Ruleset::default();
        old.sets.insert("affinity-A".into(), affinity(60));
        old.chains.insert(
            "endpoint-A".into(),
            chain(vec![vec![Stmt::UpdateSaddr("affinity-A".into())]]),
        );
        let mut new = old.clone();
        new.sets.insert("affinity-A".into(), affinity(120));
        assert_eq!(diff(&old, &new), Err(Diff::NeedsFullResync));
        // A chain that does not use it does not count.
        old.chains.insert(
            "endpoint-A".into(),
            chain(vec![vec![Stmt::IpInSet {
                addr: Addr::Saddr,
                set: "affinity-B".into(),
            }]]),
        );
        new.chains = old.chains.clone();
        assert!(diff(&old, &new).is_ok());
    }
}
