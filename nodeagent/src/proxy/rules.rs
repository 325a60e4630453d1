//! What the `ip kube-lite` table should hold: a pure function from the
//! API's Services and EndpointSlices (and this node) to nftables objects.
//!
//! Nothing here touches the kernel. [`base_ruleset`] is the skeleton every
//! node has: hooks, maps, masquerading. [`SharedChain`]s are the few
//! chains that exist once per *kind* of Service port ("pick 1 of 3"), each
//! with its set of ports, created when some port needs them; [`dispatch`]
//! is the rule per kind that leads there. [`service_table`] is what one
//! Service adds: **map elements only**. `sync.rs` compares two versions
//! of a Service's elements and sends only the difference.
//!
//! # The shape, and why
//!
//! A packet to a ClusterIP meets, in order:
//!
//! - `nat-prerouting` / `nat-output` -> `services`: one rule per kind of
//!   port, `ip daddr . meta l4proto . th dport @services-with-2-endpoints
//!   goto pick-1-of-2`; the set holds `10.96.0.50 . tcp . 80`, which says
//!   "this port has two endpoints";
//! - `pick-1-of-2`: `dnat ip to ip daddr . meta l4proto . th dport .
//!   numgen random mod 2 map @service-endpoints`: the map has
//!   `10.96.0.50 . tcp . 80 . 0 : 10.244.1.5 . 80` and
//!   `... . 1 : 10.244.2.7 . 80`.
//!
//! So an endpoint is one element of one map, not a chain, and a Service
//! port is one element of one set: an endpoint change, even one that
//! changes the count, is a few plain elements. That matters for the
//! kernel: a transaction that adds a rule, or a map element that jumps to
//! a chain, makes nf_tables check the whole table for loops again at
//! commit (it walks every chain from every base chain, and every jumping
//! element of every verdict map on the way); one that only adds or
//! removes plain elements does not. With a chain per endpoint
//! (kube-proxy's shape) an endpoint change at 10,000 Services cost the
//! kernel 150-260 ms; with one verdict map of every port (`ClusterIP .
//! proto . port : goto pick-1-of-N`) a count change still cost 1 ms at
//! 10,000 Services and 10-40 ms at 100,000; as elements of sets it costs
//! about 0.1 ms at any size (see docs/benchmarks.md).
//!
//! Every element carries a comment naming its Service port and Pod, so
//! that `nft list table ip kube-lite` reads like the API.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use crate::informer::CachedSlice;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Service, ServicePort};

use super::endpoints::{categorize, endpoints_of, Endpoint, TrafficPolicy};
use super::nftables::{
    truncate, Addr, Hook, HookPoint, Key, Proto, Rule, Script, SetType, Stmt, Transaction, Value,
    Verdict,
};

/// The one table everything lives in (`nft list table ip kube-lite`).
pub use super::nftables::TABLE;

/// The packet mark that asks `masquerading` to rewrite the source address
/// (upstream's masquerade bit 14).
pub const MASQUERADE_MARK: u32 = 0x4000;

/// 127.0.0.0/8: NodePorts are not served on loopback addresses, as
/// upstream.
const LOOPBACK: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8);

/// Base chain: packets arriving from Pods and other machines, before
/// routing. Jumps to [`SERVICES_CHAIN`].
pub const NAT_PREROUTING_CHAIN: &str = "nat-prerouting";
/// Base chain: packets sent by the node's own processes. Jumps to
/// [`SERVICES_CHAIN`].
pub const NAT_OUTPUT_CHAIN: &str = "nat-output";
/// Base chain: every connection's first packet leaving, after routing:
/// hairpin and marked packets are masqueraded.
pub const NAT_POSTROUTING_CHAIN: &str = "nat-postrouting";
/// Base chain (filter, after the prerouting DNAT): new connections to a
/// local address: NodePorts without endpoints; affinity to remember.
pub const FILTER_INPUT_CHAIN: &str = "filter-input";
/// Base chain (filter, after the prerouting DNAT): new forwarded
/// connections (from Pods): no endpoints, unknown ClusterIP ports,
/// affinity to remember.
pub const FILTER_FORWARD_CHAIN: &str = "filter-forward";
/// Base chain (filter, before the output DNAT): new connections from the
/// node itself, checked against the no-endpoint maps.
pub const FILTER_OUTPUT_CHAIN: &str = "filter-output";
/// Base chain (filter, after the output DNAT): connections from the node
/// itself that no Service took; affinity to remember.
pub const FILTER_OUTPUT_POST_DNAT_CHAIN: &str = "filter-output-post-dnat";

/// Dispatch: one rule per [`SharedChain`] in use, `ip daddr . meta
/// l4proto . th dport @services-with-2-endpoints goto pick-1-of-2`, then
/// [`NODEPORTS_CHAIN`] for the node's own addresses. Rewritten (see
/// [`dispatch`]) only when a kind of port appears or goes.
pub const SERVICES_CHAIN: &str = "services";
/// NodePort dispatch: `meta l4proto . th dport @nodeports-with-2-endpoints
/// goto nodeport-pick-1-of-2`, ...
pub const NODEPORTS_CHAIN: &str = "nodeports";
/// Map `ClusterIP . protocol . port . bucket -> endpoint IP . port`, the
/// buckets numbered 0 to N-1.
pub const SERVICE_ENDPOINTS_MAP: &str = "service-endpoints";
/// Map `protocol . nodePort . bucket -> endpoint IP . port`.
pub const NODEPORT_ENDPOINTS_MAP: &str = "nodeport-endpoints";
/// Set of `endpoint . endpoint` pairs: a Pod sent to itself through a
/// Service (hairpin) is masqueraded.
pub const HAIRPIN_SET: &str = "hairpin-endpoints";
/// Set of every ClusterIP in use, to reject ports a Service does not have.
pub const CLUSTER_IPS_SET: &str = "cluster-ips";
/// Rejects new connections to unknown ports of ClusterIPs and drops the
/// rest of the service range (so `ping <ClusterIP>` gets no answer).
pub const CLUSTER_IPS_CHECK_CHAIN: &str = "cluster-ips-check";
/// Looks new connections up in [`NO_ENDPOINT_SERVICES_MAP`].
pub const SERVICE_ENDPOINTS_CHECK_CHAIN: &str = "service-endpoints-check";
/// Looks new connections to local addresses up in
/// [`NO_ENDPOINT_NODEPORTS_MAP`].
pub const NODEPORT_ENDPOINTS_CHECK_CHAIN: &str = "nodeport-endpoints-check";
/// Verdict map `ClusterIP . protocol . port -> reject or drop` for Service
/// ports without endpoints.
pub const NO_ENDPOINT_SERVICES_MAP: &str = "no-endpoint-services";
/// Verdict map `protocol . nodePort -> reject or drop` for NodePorts
/// without endpoints (for this node).
pub const NO_ENDPOINT_NODEPORTS_MAP: &str = "no-endpoint-nodeports";
/// Answers a connection attempt at once: TCP reset, or ICMP port-unreachable.
pub const REJECT_CHAIN: &str = "reject-chain";
/// Sets the [`MASQUERADE_MARK`].
pub const MARK_FOR_MASQUERADE_CHAIN: &str = "mark-for-masquerade";
/// Masquerades (SNAT to the outgoing interface's address) marked packets.
pub const MASQUERADING_CHAIN: &str = "masquerading";
/// Dynamic map `client . address . protocol . port -> endpoint`: where
/// each client of a ClientIP-affinity Service was sent, for its
/// `timeoutSeconds`.
pub const AFFINITY_CLIENTS_MAP: &str = "affinity-clients";
/// Verdict map `ClusterIP . protocol . port -> goto remember-client-Ts`
/// for Service ports with ClientIP affinity.
pub const AFFINITY_SERVICES_MAP: &str = "affinity-services";
/// Verdict map `protocol . nodePort -> goto remember-client-Ts`.
pub const AFFINITY_NODEPORTS_MAP: &str = "affinity-nodeports";
/// After a DNAT: is this a port with ClientIP affinity? Then remember.
pub const AFFINITY_CHECK_CHAIN: &str = "affinity-check";

/// How many clients [`AFFINITY_CLIENTS_MAP`] may remember at once.
pub const AFFINITY_CLIENTS_MAX: u32 = 1 << 20;

/// The node label giving its zone (topology-aware routing).
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// ClientIP affinity's default timeout: three hours, as the API defaults.
pub const DEFAULT_AFFINITY_TIMEOUT_SECONDS: i32 = 10800;

/// What the rules need to know about the node they run on.
#[derive(Debug, Clone)]
pub struct NodeContext {
    /// This node's name: endpoints with this `nodeName` are local.
    pub node_name: String,
    /// The Pod range: sources inside it are Pods (not masqueraded for
    /// ClusterIP traffic), sources outside are "off-cluster".
    pub cluster_cidr: Ipv4Net,
    /// The Service range: whatever no Service took in it is dropped.
    pub service_cidr: Ipv4Net,
    /// This Node's labels (its zone, for topology-aware routing).
    pub node_labels: BTreeMap<String, String>,
}

/// A chain: a base chain hooked into netfilter, or a regular one reached
/// by `jump`/`goto`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// `type nat hook output priority -100` for a base chain.
    pub hook: Option<Hook>,
    pub comment: String,
    /// Its rules, in order.
    pub rules: Vec<Rule>,
}

/// A named set or map: its type (`set` or `map` follows from it) and
/// comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    pub ty: SetType,
    pub comment: String,
}

/// One element of a set (no value) or map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub value: Option<Value>,
    pub comment: String,
}

/// A set of nftables objects of the table, keyed by name: the skeleton
/// and the shared chains.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    pub sets: BTreeMap<String, Set>,
    pub chains: BTreeMap<String, Chain>,
}

impl Ruleset {
    fn chain(&mut self, name: &str, comment: &str) -> &mut Chain {
        self.chains
            .entry(name.to_string())
            .or_insert_with(|| Chain {
                hook: None,
                comment: truncate(comment),
                rules: vec![],
            })
    }

    fn rule(&mut self, chain: &str, stmts: Vec<Stmt>, comment: &str) {
        self.chains
            .get_mut(chain)
            .unwrap_or_else(|| panic!("rule for undeclared chain {chain}"))
            .rules
            .push(Rule::new(stmts, comment));
    }

    fn set(&mut self, name: &str, ty: SetType, comment: &str) {
        self.sets.insert(
            name.to_string(),
            Set {
                ty,
                comment: truncate(comment),
            },
        );
    }

    /// The number of rules in all chains.
    pub fn rule_count(&self) -> usize {
        self.chains.values().map(|c| c.rules.len()).sum()
    }

    /// The `nft -f` text that creates this ruleset in an existing (empty)
    /// table (see [`write_ruleset`]).
    pub fn to_script(&self) -> String {
        let mut s = Script::default();
        write_ruleset(&mut s, self);
        s.text
    }
}

/// Writes the commands that create `r` in an existing table: sets and
/// maps, then chains, then rules (which refer to chains and sets).
pub fn write_ruleset(tx: &mut impl Transaction, r: &Ruleset) {
    for (name, set) in &r.sets {
        tx.add_set(name, set.ty, &set.comment);
    }
    for (name, chain) in &r.chains {
        tx.add_chain(name, chain.hook, &chain.comment);
    }
    write_rules(tx, r);
}

/// The rules of every chain of `r` (the chains exist).
pub fn write_rules(tx: &mut impl Transaction, r: &Ruleset) {
    for (name, chain) in &r.chains {
        for rule in &chain.rules {
            tx.add_rule(name, rule);
        }
    }
}

fn jump(chain: &str) -> Stmt {
    Stmt::Verdict(Verdict::Jump(chain.to_string()))
}

/// The skeleton of the table, the same on every node whatever the
/// Services: base chains hooked into netfilter, dispatch, the maps, the
/// affinity check and masquerading.
pub fn base_ruleset(node: &NodeContext) -> Ruleset {
    let mut r = Ruleset::default();
    let base = |r: &mut Ruleset, name: &str, hook: Hook, comment: &str| {
        r.chain(name, comment).hook = Some(hook);
    };
    let filter = |point, priority| Hook {
        nat: false,
        point,
        priority,
    };
    let nat = |point, priority| Hook {
        nat: true,
        point,
        priority,
    };
    // Filter chains run at -110: just before the output DNAT (-100), so
    // filter-output sees the address the client used; input and forward
    // come after prerouting's DNAT anyway. The post-DNAT output chain sees
    // what no Service rewrote.
    base(
        &mut r,
        FILTER_INPUT_CHAIN,
        filter(HookPoint::Input, -110),
        "new connections to this node: NodePorts without endpoints, affinity",
    );
    base(
        &mut r,
        FILTER_FORWARD_CHAIN,
        filter(HookPoint::Forward, -110),
        "new forwarded connections: no endpoints, unknown ClusterIP ports, affinity",
    );
    base(
        &mut r,
        FILTER_OUTPUT_CHAIN,
        filter(HookPoint::Output, -110),
        "new connections from this node: Services without endpoints",
    );
    base(
        &mut r,
        FILTER_OUTPUT_POST_DNAT_CHAIN,
        filter(HookPoint::Output, -90),
        "new connections from this node, after the DNAT: unknown ports, affinity",
    );
    // nft 1.0.6 wants a number, not `dstnat`, on the output hook.
    base(
        &mut r,
        NAT_PREROUTING_CHAIN,
        nat(HookPoint::Prerouting, -100),
        "packets from Pods and other machines: Service DNAT",
    );
    base(
        &mut r,
        NAT_OUTPUT_CHAIN,
        nat(HookPoint::Output, -100),
        "packets from this node's processes: Service DNAT",
    );
    base(
        &mut r,
        NAT_POSTROUTING_CHAIN,
        nat(HookPoint::Postrouting, 100),
        "leaving packets: masquerade hairpin and marked connections",
    );
    r.chain(
        SERVICES_CHAIN,
        "dispatch: ClusterIPs by number of endpoints, then NodePorts on local addresses",
    );
    r.chain(NODEPORTS_CHAIN, "NodePorts by number of endpoints");
    r.chain(
        MARK_FOR_MASQUERADE_CHAIN,
        "marks a packet so that masquerading rewrites its source",
    );
    r.chain(
        MASQUERADING_CHAIN,
        "SNAT of marked packets to the outgoing interface's address",
    );
    r.chain(
        SERVICE_ENDPOINTS_CHECK_CHAIN,
        "reject or drop new connections to Service ports without endpoints",
    );
    r.chain(
        NODEPORT_ENDPOINTS_CHECK_CHAIN,
        "reject or drop new connections to NodePorts without endpoints",
    );
    r.chain(
        CLUSTER_IPS_CHECK_CHAIN,
        "reject unknown ports of ClusterIPs, drop the rest of the service range",
    );
    r.chain(
        REJECT_CHAIN,
        "helper for no-endpoint-services and no-endpoint-nodeports",
    );
    r.chain(
        AFFINITY_CHECK_CHAIN,
        "DNATed to a port with ClientIP affinity? remember the client",
    );

    r.set(
        SERVICE_ENDPOINTS_MAP,
        SetType::ClusterIpEndpoints,
        "ClusterIP . protocol . port . bucket 0..N-1 -> endpoint",
    );
    r.set(
        NODEPORT_ENDPOINTS_MAP,
        SetType::NodePortEndpoints,
        "protocol . nodePort . bucket -> endpoint",
    );
    r.set(
        NO_ENDPOINT_SERVICES_MAP,
        SetType::ClusterIpPortVmap,
        "reject or drop packets to Service ports with no endpoints",
    );
    r.set(
        NO_ENDPOINT_NODEPORTS_MAP,
        SetType::NodePortVmap,
        "reject or drop packets to NodePorts with no endpoints",
    );
    r.set(CLUSTER_IPS_SET, SetType::Addresses, "ClusterIPs in use");
    r.set(
        HAIRPIN_SET,
        SetType::AddressPairs,
        "endpoint . endpoint: a Pod that reached itself through a Service",
    );
    r.set(
        AFFINITY_CLIENTS_MAP,
        SetType::RememberedClients {
            size: AFFINITY_CLIENTS_MAX,
        },
        "client . address . protocol . port -> its endpoint (ClientIP affinity)",
    );
    r.set(
        AFFINITY_SERVICES_MAP,
        SetType::ClusterIpPortVmap,
        "ClusterIP . protocol . port with ClientIP affinity -> its timeout",
    );
    r.set(
        AFFINITY_NODEPORTS_MAP,
        SetType::NodePortVmap,
        "protocol . nodePort with ClientIP affinity -> its timeout",
    );

    // The hooks.
    for chain in [
        FILTER_INPUT_CHAIN,
        FILTER_FORWARD_CHAIN,
        FILTER_OUTPUT_CHAIN,
    ] {
        r.rule(
            chain,
            vec![Stmt::CtStateNew, jump(SERVICE_ENDPOINTS_CHECK_CHAIN)],
            "Services without endpoints",
        );
    }
    r.rule(
        FILTER_INPUT_CHAIN,
        vec![Stmt::CtStateNew, jump(NODEPORT_ENDPOINTS_CHECK_CHAIN)],
        "NodePorts without endpoints",
    );
    for chain in [FILTER_FORWARD_CHAIN, FILTER_OUTPUT_POST_DNAT_CHAIN] {
        r.rule(
            chain,
            vec![Stmt::CtStateNew, jump(CLUSTER_IPS_CHECK_CHAIN)],
            "ClusterIP traffic no Service took",
        );
    }
    for chain in [
        FILTER_INPUT_CHAIN,
        FILTER_FORWARD_CHAIN,
        FILTER_OUTPUT_POST_DNAT_CHAIN,
    ] {
        r.rule(
            chain,
            vec![
                Stmt::CtStateNew,
                Stmt::CtStatusDnat,
                jump(AFFINITY_CHECK_CHAIN),
            ],
            "ClientIP affinity: remember where a new client went",
        );
    }
    for chain in [NAT_PREROUTING_CHAIN, NAT_OUTPUT_CHAIN] {
        r.rule(chain, vec![jump(SERVICES_CHAIN)], "Service dispatch");
    }
    // Hairpin: a Pod that reached its own Service and was sent to itself
    // would get the answer from itself, straight, and never un-DNATed;
    // masquerading makes it come back through the node.
    r.rule(
        NAT_POSTROUTING_CHAIN,
        vec![
            Stmt::CtStatusDnat,
            Stmt::AddressPairInSet(HAIRPIN_SET.to_string()),
            Stmt::MasqueradeFullyRandom,
        ],
        "hairpin: a Pod sent to itself",
    );
    r.rule(
        NAT_POSTROUTING_CHAIN,
        vec![jump(MASQUERADING_CHAIN)],
        "masquerade marked packets",
    );

    // (The dispatch rules depend on the Services: see `dispatch`.)

    // Masquerading.
    r.rule(
        MARK_FOR_MASQUERADE_CHAIN,
        vec![Stmt::MarkSetOr(MASQUERADE_MARK)],
        "to be masqueraded",
    );
    r.rule(
        MASQUERADING_CHAIN,
        vec![
            Stmt::MarkClear(MASQUERADE_MARK),
            Stmt::Verdict(Verdict::Return),
        ],
        "not marked: leave the source alone",
    );
    r.rule(
        MASQUERADING_CHAIN,
        vec![Stmt::MarkSetXor(MASQUERADE_MARK)],
        "clear the mark",
    );
    r.rule(
        MASQUERADING_CHAIN,
        vec![Stmt::MasqueradeFullyRandom],
        "source := the outgoing interface's address",
    );

    // No endpoints, unknown ports, unallocated ClusterIPs.
    r.rule(
        SERVICE_ENDPOINTS_CHECK_CHAIN,
        vec![Stmt::ClusterIpVmap(NO_ENDPOINT_SERVICES_MAP.to_string())],
        "ClusterIP . protocol . port without endpoints",
    );
    r.rule(
        NODEPORT_ENDPOINTS_CHECK_CHAIN,
        vec![
            Stmt::FibLocal(Addr::Daddr),
            not_loopback(),
            Stmt::NodePortVmap(NO_ENDPOINT_NODEPORTS_MAP.to_string()),
        ],
        "NodePort without endpoints",
    );
    r.rule(
        CLUSTER_IPS_CHECK_CHAIN,
        vec![
            Stmt::IpInSet {
                addr: Addr::Daddr,
                set: CLUSTER_IPS_SET.to_string(),
            },
            Stmt::L4ProtoIn(vec![Proto::Tcp, Proto::Udp, Proto::Sctp]),
            Stmt::Verdict(Verdict::Goto(REJECT_CHAIN.to_string())),
        ],
        "reject traffic to unknown ports of ClusterIPs",
    );
    // Upstream rejects ICMP to a ClusterIP too; we drop it, so that `ping
    // <ClusterIP>` gets no answer at all: the IP is virtual.
    r.rule(
        CLUSTER_IPS_CHECK_CHAIN,
        vec![
            Stmt::Ip {
                addr: Addr::Daddr,
                negate: false,
                net: node.service_cidr,
            },
            Stmt::Verdict(Verdict::Drop),
        ],
        "drop traffic to unallocated ClusterIPs and ping to ClusterIPs",
    );
    r.rule(
        REJECT_CHAIN,
        vec![Stmt::L4Proto(Proto::Tcp), Stmt::RejectTcpReset],
        "TCP: connection refused at once",
    );
    r.rule(
        REJECT_CHAIN,
        vec![Stmt::RejectPortUnreachable],
        "UDP and others: ICMP port unreachable",
    );

    // Affinity: the connection was DNATed (its first packet, after the
    // nat chains); if the address and port the client used belong to a
    // port with affinity, its timeout chain remembers the endpoint. (nft
    // reads `ct original proto-dst` only after a protocol match.)
    for proto in [Proto::Tcp, Proto::Udp, Proto::Sctp] {
        r.rule(
            AFFINITY_CHECK_CHAIN,
            vec![
                Stmt::L4Proto(proto),
                Stmt::OriginalClusterIpVmap(AFFINITY_SERVICES_MAP.to_string()),
            ],
            "a ClusterIP port with affinity",
        );
    }
    r.rule(
        AFFINITY_CHECK_CHAIN,
        vec![
            Stmt::CtOriginalDaddr {
                negate: false,
                net: node.service_cidr,
            },
            Stmt::Verdict(Verdict::Return),
        ],
        "other ClusterIPs: no affinity",
    );
    for proto in [Proto::Tcp, Proto::Udp, Proto::Sctp] {
        r.rule(
            AFFINITY_CHECK_CHAIN,
            vec![
                Stmt::L4Proto(proto),
                Stmt::OriginalNodePortVmap(AFFINITY_NODEPORTS_MAP.to_string()),
            ],
            "a NodePort with affinity",
        );
    }
    r
}

/// `ip daddr != 127.0.0.0/8`: NodePorts are served on every address of
/// the node (`fib daddr type local`: its node IP, the bridge, ...) but not
/// on loopback, as upstream.
fn not_loopback() -> Stmt {
    Stmt::Ip {
        addr: Addr::Daddr,
        negate: true,
        net: LOOPBACK,
    }
}

/// The rules of the dispatch chains ([`SERVICES_CHAIN`] and
/// [`NODEPORTS_CHAIN`]) when `chains` are in use: for each kind of port,
/// "in its set? go to its chain".
///
/// Why a set per kind rather than one verdict map `ClusterIP . proto .
/// port : goto pick-1-of-N` (one lookup instead of one per kind): a
/// verdict element that jumps makes the kernel check the whole table for
/// loops at commit, walking every such element. With a verdict map of
/// 100,000 ports, each endpoint count change cost 10-40 ms of that walk;
/// moving a port from one set to another is two plain elements, and the
/// kernel walks nothing. The price is a hash lookup per kind of port for
/// the first packet of a connection (there are few kinds: 1, 2, 3
/// endpoints...).
pub fn dispatch<'a>(chains: impl IntoIterator<Item = &'a SharedChain>) -> Ruleset {
    let mut r = Ruleset::default();
    r.chain(SERVICES_CHAIN, "");
    r.chain(NODEPORTS_CHAIN, "");
    for chain in chains {
        let Some(set) = chain.port_set() else {
            continue;
        };
        let (dispatcher, lookup) = match chain {
            SharedChain::Pick(_) => (SERVICES_CHAIN, Stmt::ClusterIpPortInSet(set)),
            _ => (NODEPORTS_CHAIN, Stmt::NodePortInSet(set)),
        };
        r.rule(
            dispatcher,
            vec![lookup, Stmt::Verdict(Verdict::Goto(chain.to_string()))],
            &chain.description(),
        );
    }
    r.rule(
        SERVICES_CHAIN,
        vec![
            Stmt::FibLocal(Addr::Daddr),
            not_loopback(),
            jump(NODEPORTS_CHAIN),
        ],
        "NodePorts on this node's addresses",
    );
    r
}

/// The chains that exist once per kind of Service port, whatever the
/// number of Services: a port with three endpoints goes to
/// `pick-1-of-3`, like every other port with three. They are created
/// when the first port needs them and deleted when the last one stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SharedChain {
    /// ClusterIP traffic to a port with N endpoints: `pick-1-of-N`.
    Pick(u32),
    /// NodePort traffic, externalTrafficPolicy Cluster:
    /// `nodeport-pick-1-of-N`.
    NodePortPick(u32),
    /// NodePort traffic, externalTrafficPolicy Local, with `local`
    /// endpoints on this node out of `all`: `nodeport-local-L-of-A`.
    NodePortLocal { local: u32, all: u32 },
    /// Remembers a ClientIP-affinity client for so many seconds:
    /// `remember-client-Ts`.
    Remember(u32),
}

impl fmt::Display for SharedChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SharedChain::Pick(n) => write!(f, "pick-1-of-{n}"),
            SharedChain::NodePortPick(n) => write!(f, "nodeport-pick-1-of-{n}"),
            SharedChain::NodePortLocal { local, all } => {
                write!(f, "nodeport-local-{local}-of-{all}")
            }
            SharedChain::Remember(seconds) => write!(f, "remember-client-{seconds}s"),
        }
    }
}

impl SharedChain {
    /// The set of the ports that go to this chain (`services-with-2-endpoints`
    /// for `pick-1-of-2`), if it is reached from the dispatch.
    pub fn port_set(&self) -> Option<String> {
        let endpoints = |n: u32| if n == 1 { "endpoint" } else { "endpoints" };
        match *self {
            SharedChain::Pick(n) => Some(format!("services-with-{n}-{}", endpoints(n))),
            SharedChain::NodePortPick(n) => Some(format!("nodeports-with-{n}-{}", endpoints(n))),
            SharedChain::NodePortLocal { local, all } => Some(format!(
                "nodeports-with-{local}-local-of-{all}-{}",
                endpoints(all)
            )),
            SharedChain::Remember(_) => None,
        }
    }

    /// The chain whose set is `set` (the view reads the sets back).
    pub fn of_port_set(set: &str) -> Option<SharedChain> {
        fn trim(s: &str) -> &str {
            s.trim_end_matches("-endpoints")
                .trim_end_matches("-endpoint")
        }
        let number = |s: &str| s.parse::<u32>().ok();
        if let Some(rest) = set.strip_prefix("services-with-") {
            return number(trim(rest)).map(SharedChain::Pick);
        }
        let rest = trim(set.strip_prefix("nodeports-with-")?);
        match rest.split_once("-local-of-") {
            Some((local, all)) => Some(SharedChain::NodePortLocal {
                local: number(local)?,
                all: number(all)?,
            }),
            None => number(rest).map(SharedChain::NodePortPick),
        }
    }

    /// What kind of port goes to this chain, in words (comments).
    fn description(&self) -> String {
        match *self {
            SharedChain::Pick(n) => format!("ClusterIP ports with {n} endpoint(s)"),
            SharedChain::NodePortPick(n) => format!("NodePorts with {n} endpoint(s)"),
            SharedChain::NodePortLocal { local, all } => format!(
                "NodePorts, externalTrafficPolicy Local: {local} endpoint(s) here, {all} in all"
            ),
            SharedChain::Remember(seconds) => {
                format!("ClientIP affinity: remember the client for {seconds}s")
            }
        }
    }

    /// The chain, its rules, and its set of ports.
    pub fn ruleset(&self, node: &NodeContext) -> Ruleset {
        let mut r = Ruleset::default();
        let name = self.to_string();
        match (self, self.port_set()) {
            (SharedChain::Pick(_), Some(set)) => {
                r.set(&set, SetType::ClusterIpPorts, &self.description());
            }
            (_, Some(set)) => r.set(&set, SetType::NodePorts, &self.description()),
            (_, None) => {}
        }
        let remembered = || Stmt::DnatRemembered(AFFINITY_CLIENTS_MAP.to_string());
        let mark = || jump(MARK_FOR_MASQUERADE_CHAIN);
        let pods = || Stmt::Ip {
            addr: Addr::Saddr,
            negate: false,
            net: node.cluster_cidr,
        };
        let nodeport_pick = |modulus, offset| Stmt::DnatNodePortPick {
            map: NODEPORT_ENDPOINTS_MAP.to_string(),
            modulus,
            offset,
        };
        match *self {
            SharedChain::Pick(n) => {
                r.chain(&name, &format!("{}: pick 1 at random", self.description()));
                // A client outside the Pod range (another machine routing
                // the service range here) is masqueraded: the endpoint may
                // be on another node, and the reply must come back here.
                r.rule(
                    &name,
                    vec![
                        Stmt::Ip {
                            addr: Addr::Saddr,
                            negate: true,
                            net: node.cluster_cidr,
                        },
                        mark(),
                    ],
                    "masquerade off-cluster clients",
                );
                r.rule(
                    &name,
                    vec![remembered()],
                    "ClientIP affinity: the endpoint this client had",
                );
                r.rule(
                    &name,
                    vec![Stmt::DnatClusterIpPick {
                        map: SERVICE_ENDPOINTS_MAP.to_string(),
                        modulus: n,
                    }],
                    &format!("bucket 0..{} of the port, at random", n.saturating_sub(1)),
                );
            }
            SharedChain::NodePortPick(n) => {
                r.chain(&name, &format!("{}: pick 1 at random", self.description()));
                // The endpoint may be on another node: masquerade, or its
                // reply would go straight to the client and be dropped.
                r.rule(&name, vec![mark()], "masquerade NodePort traffic");
                r.rule(
                    &name,
                    vec![remembered()],
                    "ClientIP affinity: the endpoint this client had",
                );
                r.rule(
                    &name,
                    vec![nodeport_pick(n, 0)],
                    &format!(
                        "bucket 0..{} of the NodePort, at random",
                        n.saturating_sub(1)
                    ),
                );
            }
            SharedChain::NodePortLocal { local, all } => {
                r.chain(&name, &self.description());
                if all > 0 {
                    // Pods and the node itself are not "external": they use
                    // every endpoint (buckets 0..all-1).
                    r.rule(
                        &name,
                        vec![Stmt::FibLocal(Addr::Saddr), mark()],
                        "masquerade traffic from this node",
                    );
                }
                r.rule(
                    &name,
                    vec![remembered()],
                    "ClientIP affinity: the endpoint this client had",
                );
                if all > 0 {
                    r.rule(
                        &name,
                        vec![pods(), nodeport_pick(all, 0)],
                        "Pods: every endpoint",
                    );
                    r.rule(
                        &name,
                        vec![Stmt::FibLocal(Addr::Saddr), nodeport_pick(all, 0)],
                        "this node: every endpoint",
                    );
                }
                if local > 0 {
                    // The client keeps its address: no mark.
                    r.rule(
                        &name,
                        vec![nodeport_pick(local, all)],
                        &format!(
                            "others: this node's endpoints, buckets {all}..{}",
                            all + local - 1
                        ),
                    );
                }
            }
            SharedChain::Remember(seconds) => {
                r.chain(&name, &self.description());
                for proto in [Proto::Tcp, Proto::Udp, Proto::Sctp] {
                    r.rule(
                        &name,
                        vec![
                            Stmt::L4Proto(proto),
                            Stmt::RememberClient {
                                map: AFFINITY_CLIENTS_MAP.to_string(),
                                proto,
                                timeout_seconds: seconds,
                            },
                        ],
                        &format!("{proto}"),
                    );
                }
            }
        }
        r
    }
}

/// An endpoint's place in a map: `(IP, port)`, in bucket order.
pub type Buckets = Vec<(Ipv4Addr, u16)>;

/// Which endpoint is in which bucket, per Service port: kept from one
/// sync to the next, so that a change moves as few elements as possible.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortBuckets {
    /// `service-endpoints` (ClusterIP traffic).
    pub internal: Buckets,
    /// `nodeport-endpoints` 0..A-1: every endpoint (Cluster policy) or
    /// the Pods' and the node's share (Local policy).
    pub external: Buckets,
    /// `nodeport-endpoints` A..: this node's (Local policy).
    pub local: Buckets,
}

/// A Service's buckets, by port (protocol, port number).
pub type ServiceBuckets = BTreeMap<(Proto, u16), PortBuckets>;

/// The new bucket order for `endpoints`, given the old one: endpoints
/// that stay keep their bucket; a removed endpoint's bucket is refilled
/// from the highest one (so buckets stay 0..N-1 and the pick stays
/// uniform); new endpoints go at the end.
pub fn refill(old: &[(Ipv4Addr, u16)], endpoints: &[&Endpoint]) -> Buckets {
    let wanted: BTreeSet<(Ipv4Addr, u16)> = endpoints.iter().map(|e| e.address()).collect();
    let mut order: Buckets = old.to_vec();
    let mut i = 0;
    while i < order.len() {
        if wanted.contains(&order[i]) {
            i += 1;
        } else {
            order.swap_remove(i);
        }
    }
    let kept: BTreeSet<(Ipv4Addr, u16)> = order.iter().copied().collect();
    order.extend(
        endpoints
            .iter()
            .map(|e| e.address())
            .filter(|a| !kept.contains(a)),
    );
    order
}

/// One UDP Service port as programmed: what the conntrack cleanup of
/// `sync.rs` compares between two syncs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpServicePort {
    /// `namespace/name:port`.
    pub label: String,
    pub cluster_ip: Ipv4Addr,
    pub port: u16,
    pub node_port: Option<u16>,
    /// The serving endpoints' addresses.
    pub endpoints: BTreeSet<Ipv4Addr>,
}

/// One ClientIP-affinity Service port as programmed: the clients
/// remembered for it may point only at these endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffinityPort {
    pub cluster_ip: Ipv4Addr,
    pub proto: Proto,
    pub port: u16,
    pub node_port: Option<u16>,
    pub endpoints: BTreeSet<(Ipv4Addr, u16)>,
}

/// The set or map an element is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SetName {
    /// One of the skeleton ([`SERVICE_ENDPOINTS_MAP`], ...).
    Named(&'static str),
    /// The set of the ports that go to a shared chain
    /// ([`SharedChain::port_set`]).
    PortsOf(SharedChain),
}

impl SetName {
    pub fn name(&self) -> std::borrow::Cow<'static, str> {
        match self {
            SetName::Named(name) => (*name).into(),
            SetName::PortsOf(chain) => chain.port_set().unwrap_or_default().into(),
        }
    }
}

/// A map or set element's place: which map, which key.
pub type ElementKey = (SetName, Key);

/// What one Service contributes to the table: elements, and the shared
/// chains and hairpin pairs they need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceTable {
    pub elements: BTreeMap<ElementKey, Element>,
    /// The shared chains its elements jump to.
    pub chains: BTreeSet<SharedChain>,
    /// Its endpoints' addresses, each with a comment, for
    /// [`HAIRPIN_SET`] (shared by the Services an endpoint is in).
    pub hairpin: BTreeMap<Ipv4Addr, String>,
    /// Its buckets, to keep for the next sync.
    pub buckets: ServiceBuckets,
    /// Its UDP ports (for conntrack cleanup).
    pub udp_ports: Vec<UdpServicePort>,
    /// Its ports with ClientIP affinity (for cleaning remembered clients).
    pub affinity_ports: Vec<AffinityPort>,
    /// How many ports it programs.
    pub ports: usize,
}

impl ServiceTable {
    fn element(&mut self, set: &'static str, key: Key, value: Option<Value>, comment: &str) {
        self.element_in(SetName::Named(set), key, value, comment);
    }

    fn element_in(&mut self, set: SetName, key: Key, value: Option<Value>, comment: &str) {
        self.elements.insert(
            (set, key),
            Element {
                value,
                comment: truncate(comment),
            },
        );
    }

    /// The `nft -f` text of its elements (tests, debug logs).
    pub fn to_script(&self) -> String {
        let mut s = Script::default();
        for ((set, key), element) in &self.elements {
            s.add_element(&set.name(), key, element.value.as_ref(), &element.comment);
        }
        s.text
    }
}

/// What one Service adds to the table, given its EndpointSlices and its
/// buckets of the last sync (`previous`).
///
/// Headless Services (`clusterIP: None`), ExternalName Services and
/// Services without a ClusterIP yet get nothing: there is no virtual IP to
/// catch.
pub fn service_table(
    service: &Service,
    slices: &[&CachedSlice],
    node: &NodeContext,
    previous: &ServiceBuckets,
) -> ServiceTable {
    let mut out = ServiceTable::default();
    let Some(spec) = &service.spec else {
        return out;
    };
    let namespace = service.metadata.namespace.as_deref().unwrap_or_default();
    let name = service.metadata.name.as_deref().unwrap_or_default();
    if spec.type_.as_deref() == Some("ExternalName") {
        return out;
    }
    let Some(cluster_ip) = spec
        .cluster_ip
        .as_deref()
        .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
    else {
        return out;
    };
    let node_ports_on = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
    let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        let seconds = spec
            .session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .unwrap_or(DEFAULT_AFFINITY_TIMEOUT_SECONDS);
        // The API only allows 1 to 86400 seconds.
        seconds.clamp(1, 86_400) as u32
    });
    let policy = TrafficPolicy {
        internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
        external_local: spec.external_traffic_policy.as_deref() == Some("Local"),
    };
    let topology = service
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(api::service::TOPOLOGY_MODE_ANNOTATION))
        .is_some_and(|mode| mode == "Auto" || mode == "auto")
        || spec.traffic_distribution.as_deref() == Some("PreferClose");
    let zone = topology
        .then(|| node.node_labels.get(ZONE_LABEL).map(String::as_str))
        .flatten();
    out.element(
        CLUSTER_IPS_SET,
        Key::Address(cluster_ip),
        None,
        &api::service::key(namespace, name),
    );
    for port in spec.ports.iter().flatten() {
        // The API only allows TCP, UDP and SCTP: anything else cannot be
        // written as a rule, and is skipped rather than failing the table.
        let Some(info) = PortInfo::new(namespace, name, port, cluster_ip, node_ports_on) else {
            continue;
        };
        let endpoints = endpoints_of(port, slices, &node.node_name);
        let old = previous
            .get(&(info.protocol, info.port))
            .cloned()
            .unwrap_or_default();
        let buckets = write_port(
            &mut out,
            &info,
            &endpoints,
            policy,
            zone,
            affinity_timeout,
            &old,
        );
        out.buckets.insert((info.protocol, info.port), buckets);
        out.ports += 1;
        if info.protocol == Proto::Udp {
            out.udp_ports.push(UdpServicePort {
                label: info.label.clone(),
                cluster_ip,
                port: info.port,
                node_port: info.node_port,
                endpoints: endpoints
                    .iter()
                    .filter(|e| e.serving)
                    .map(|e| e.ip)
                    .collect(),
            });
        }
    }
    out
}

/// A Service port's names and numbers.
struct PortInfo {
    /// `namespace/name:port` (the port's name, or its number when unnamed).
    label: String,
    protocol: Proto,
    cluster_ip: Ipv4Addr,
    port: u16,
    node_port: Option<u16>,
}

impl PortInfo {
    /// `None` for a protocol other than TCP, UDP and SCTP.
    fn new(
        namespace: &str,
        name: &str,
        port: &ServicePort,
        cluster_ip: Ipv4Addr,
        node_ports_on: bool,
    ) -> Option<PortInfo> {
        let protocol = Proto::parse(port.protocol.as_deref().unwrap_or("TCP"))?;
        let number = u16::try_from(port.port).unwrap_or_default();
        Some(PortInfo {
            label: port_label(namespace, name, port),
            protocol,
            cluster_ip,
            port: number,
            node_port: node_ports_on
                .then_some(port.node_port)
                .flatten()
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0),
        })
    }
}

/// `namespace/name:port` - the port's name, or its number when unnamed:
/// how every comment of the table names a Service port.
pub fn port_label(namespace: &str, name: &str, port: &ServicePort) -> String {
    match port.name.as_deref() {
        Some(port_name) if !port_name.is_empty() => format!("{namespace}/{name}:{port_name}"),
        _ => format!("{namespace}/{name}:{}", port.port),
    }
}

/// `default/ngx-svc:80 -> ngx-dep-66fffb58f7-xlxwp 10.244.2.2:80`.
fn endpoint_comment(label: &str, endpoint: &Endpoint) -> String {
    match &endpoint.pod {
        Some(pod) => format!("{label} -> {pod} {}:{}", endpoint.ip, endpoint.port),
        None => format!("{label} -> {}:{}", endpoint.ip, endpoint.port),
    }
}

/// The elements of one Service port (upstream's `syncProxyRules` loop
/// body). Returns the port's buckets.
fn write_port(
    out: &mut ServiceTable,
    info: &PortInfo,
    endpoints: &[Endpoint],
    policy: TrafficPolicy,
    zone: Option<&str>,
    affinity_timeout: Option<u32>,
    old: &PortBuckets,
) -> PortBuckets {
    let label = info.label.as_str();
    let categorized = categorize(endpoints, policy, info.node_port.is_some(), zone);
    let by_address: BTreeMap<(Ipv4Addr, u16), &Endpoint> =
        endpoints.iter().map(|e| (e.address(), e)).collect();
    let mut buckets = PortBuckets::default();
    let mut reachable: BTreeSet<(Ipv4Addr, u16)> = BTreeSet::new();
    // Writes `order` into a map's buckets from `first` on, and notes the
    // endpoints for hairpin and affinity.
    let mut fill = |out: &mut ServiceTable,
                    set: &'static str,
                    order: &Buckets,
                    first: u32,
                    key: &dyn Fn(u32) -> Key| {
        for (i, address) in order.iter().enumerate() {
            let endpoint = by_address[address];
            let comment = endpoint_comment(label, endpoint);
            out.element(
                set,
                key(first + i as u32),
                Some(Value::Endpoint(endpoint.ip, endpoint.port)),
                &comment,
            );
            // (Shared by every Service the endpoint is in: it names the
            // Pod, not a Service.)
            out.hairpin
                .entry(endpoint.ip)
                .or_insert_with(|| match &endpoint.pod {
                    Some(pod) => format!("{pod}: hairpin"),
                    None => format!("{}: hairpin", endpoint.ip),
                });
            reachable.insert(*address);
        }
    };
    // No endpoints anywhere: reject at once. Endpoints elsewhere but a
    // Local policy and none here: drop (the client should try another
    // node), as upstream.
    let no_endpoints = if categorized.any {
        Verdict::Drop
    } else {
        Verdict::Goto(REJECT_CHAIN.to_string())
    };
    let goto = |chain: SharedChain| Some(Value::Verdict(Verdict::Goto(chain.to_string())));

    // ClusterIP traffic.
    let clusterip_key = Key::ClusterIpPort(info.cluster_ip, info.protocol, info.port);
    let internal = categorized.internal(policy);
    if internal.is_empty() {
        out.element(
            NO_ENDPOINT_SERVICES_MAP,
            clusterip_key,
            Some(Value::Verdict(no_endpoints.clone())),
            label,
        );
    } else {
        buckets.internal = refill(&old.internal, internal);
        let chain = SharedChain::Pick(buckets.internal.len() as u32);
        out.chains.insert(chain);
        out.element_in(SetName::PortsOf(chain), clusterip_key, None, label);
        let (ip, proto, port) = (info.cluster_ip, info.protocol, info.port);
        fill(out, SERVICE_ENDPOINTS_MAP, &buckets.internal, 0, &|b| {
            Key::ClusterIpBucket(ip, proto, port, b)
        });
        if let Some(timeout) = affinity_timeout {
            let remember = SharedChain::Remember(timeout);
            out.chains.insert(remember);
            out.element(
                AFFINITY_SERVICES_MAP,
                Key::ClusterIpPort(ip, proto, port),
                goto(remember),
                label,
            );
        }
    }

    // NodePort traffic.
    if let Some(node_port) = info.node_port {
        let key = Key::NodePort(info.protocol, node_port);
        let proto = info.protocol;
        let bucket = |b| Key::NodePortBucket(proto, node_port, b);
        let chain = if !policy.external_local {
            (!categorized.cluster.is_empty()).then(|| {
                buckets.external = refill(&old.external, &categorized.cluster);
                fill(out, NODEPORT_ENDPOINTS_MAP, &buckets.external, 0, &bucket);
                SharedChain::NodePortPick(buckets.external.len() as u32)
            })
        } else {
            // Local: this node's endpoints for external clients; every
            // endpoint (of the ClusterIP's policy) for Pods and the node.
            let all = if categorized.cluster.is_empty() {
                &categorized.local
            } else {
                &categorized.cluster
            };
            (!all.is_empty()).then(|| {
                buckets.external = refill(&old.external, all);
                buckets.local = refill(&old.local, &categorized.local);
                let first_local = buckets.external.len() as u32;
                fill(out, NODEPORT_ENDPOINTS_MAP, &buckets.external, 0, &bucket);
                fill(
                    out,
                    NODEPORT_ENDPOINTS_MAP,
                    &buckets.local,
                    first_local,
                    &bucket,
                );
                SharedChain::NodePortLocal {
                    local: buckets.local.len() as u32,
                    all: first_local,
                }
            })
        };
        if let Some(chain) = chain {
            out.chains.insert(chain);
            out.element_in(SetName::PortsOf(chain), key.clone(), None, label);
            if let Some(timeout) = affinity_timeout {
                let remember = SharedChain::Remember(timeout);
                out.chains.insert(remember);
                out.element(AFFINITY_NODEPORTS_MAP, key.clone(), goto(remember), label);
            }
        }
        let external_here = if policy.external_local {
            !buckets.local.is_empty()
        } else {
            chain.is_some()
        };
        if !external_here {
            out.element(
                NO_ENDPOINT_NODEPORTS_MAP,
                key,
                Some(Value::Verdict(no_endpoints)),
                label,
            );
        }
    }
    if affinity_timeout.is_some() && !reachable.is_empty() {
        out.affinity_ports.push(AffinityPort {
            cluster_ip: info.cluster_ip,
            proto: info.protocol,
            port: info.port,
            node_port: info.node_port,
            endpoints: reachable,
        });
    }
    buckets
}

#[cfg(test)]
mod tests;
