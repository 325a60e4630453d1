//! What the `ip kube-lite` table should hold: a pure function from the
//! API's Services and EndpointSlices (and this node) to nftables objects.
//!
//! Nothing here touches the kernel. [`base_ruleset`] is the skeleton every
//! node has (hooks, dispatch maps, masquerading); [`service_ruleset`] is
//! what one Service adds to it; [`desired`] is the two together, and
//! [`Ruleset::to_script`] prints a ruleset as the `nft -f` text that creates
//! it. `sync.rs` compares two rulesets and sends only the difference.
//!
//! # The shape (kube-proxy's nftables mode)
//!
//! A packet to a Service meets these objects, in order:
//!
//! - base chains `nat-prerouting` (packets from Pods and other machines)
//!   and `nat-output` (packets from the node itself) jump to `services`;
//! - `services` looks up `daddr . l4proto . dport` in the verdict map
//!   `service-ips` (ClusterIP) and, for local destination addresses only
//!   (`fib daddr type local`), `l4proto . dport` in `service-nodeports`;
//! - the map element says `goto` a per-Service-port chain,
//!   `service-<HASH>-<namespace>/<name>/<protocol>/<port name>`, which
//!   picks an endpoint at random: `numgen random mod 2 0 goto endpoint-A`
//!   (one connection in two), then `goto endpoint-B` (the rest);
//! - each `endpoint-<HASH>-.../<port name>__<ip>/<port>` chain rewrites the
//!   destination: `dnat to ip:port`;
//! - on the way out, `nat-postrouting` -> `masquerading` rewrites the source
//!   of packets marked 0x4000 by `mark-for-masquerade` (hairpin, NodePort
//!   and off-cluster clients), so that replies come back through this node.
//!
//! A Service without usable endpoints gets no nat rules at all: its
//! address is in `no-endpoint-services` (or `no-endpoint-nodeports`), which
//! the filter chains consult for new connections, and which send them to
//! `reject-chain` (a TCP reset, an ICMP port-unreachable): the client fails
//! at once instead of waiting for a timeout.
//!
//! Every chain, rule and map element carries a comment naming its Service
//! port, `namespace/name:port`, and its endpoint where it has one, so that
//! `nft list table ip kube-lite` reads like the API.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::nftables::{
    truncate, Addr, Hook, HookPoint, Key, Proto, Rule, Script, SetType, Stmt, Transaction, Verdict,
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
/// Base chain: every packet leaving, after routing. Jumps to
/// [`MASQUERADING_CHAIN`].
pub const NAT_POSTROUTING_CHAIN: &str = "nat-postrouting";
/// Base chain (filter, before DNAT): new connections arriving for a local
/// address, checked against the no-endpoint maps.
pub const FILTER_INPUT_CHAIN: &str = "filter-input";
/// Base chain (filter, before DNAT): new connections being forwarded
/// (from Pods), checked against the no-endpoint maps and the ClusterIP
/// range.
pub const FILTER_FORWARD_CHAIN: &str = "filter-forward";
/// Base chain (filter, before DNAT): new connections from the node itself,
/// checked against the no-endpoint maps.
pub const FILTER_OUTPUT_CHAIN: &str = "filter-output";
/// Base chain (filter, after DNAT): connections from the node itself that
/// no Service took, checked against the ClusterIP range.
pub const FILTER_OUTPUT_POST_DNAT_CHAIN: &str = "filter-output-post-dnat";

/// Dispatch: looks a packet's destination up in [`SERVICE_IPS_MAP`] and
/// [`SERVICE_NODEPORTS_MAP`].
pub const SERVICES_CHAIN: &str = "services";
/// Verdict map `ClusterIP . protocol . port -> goto service chain`.
pub const SERVICE_IPS_MAP: &str = "service-ips";
/// Verdict map `protocol . nodePort -> goto external chain`, consulted only
/// for the node's own addresses.
pub const SERVICE_NODEPORTS_MAP: &str = "service-nodeports";
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

/// Per Service port, the chain of "Cluster" traffic policy (every usable
/// endpoint of the cluster).
pub const SERVICE_CHAIN_PREFIX: &str = "service-";
/// Per Service port, the chain of "Local" traffic policy (endpoints on
/// this node only).
pub const LOCAL_CHAIN_PREFIX: &str = "local-";
/// Per Service port, where NodePort traffic enters.
pub const EXTERNAL_CHAIN_PREFIX: &str = "external-";
/// Per endpoint of a Service port: the DNAT.
pub const ENDPOINT_CHAIN_PREFIX: &str = "endpoint-";
/// Per endpoint of a ClientIP-affinity Service port: the clients it has
/// served recently.
pub const AFFINITY_SET_PREFIX: &str = "affinity-";

/// The EndpointSlice label naming its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The node label giving its zone (topology-aware routing).
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// The Service annotation that turns topology-aware routing on.
pub const TOPOLOGY_MODE_ANNOTATION: &str = "service.kubernetes.io/topology-mode";

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
    /// e.g. `type ipv4_addr . inet_proto . inet_service : verdict`.
    pub ty: SetType,
    pub comment: String,
}

/// One element of a set (no value) or map (a value, e.g. `goto chain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub value: Option<Verdict>,
    pub comment: String,
}

/// A set of nftables objects of the table, keyed by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    pub sets: BTreeMap<String, Set>,
    pub chains: BTreeMap<String, Chain>,
    /// `(set or map name, key) -> element`.
    pub elements: BTreeMap<(String, Key), Element>,
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

    fn element(&mut self, set: &str, key: Key, value: Option<Verdict>, comment: &str) {
        self.elements.insert(
            (set.to_string(), key),
            Element {
                value,
                comment: truncate(comment),
            },
        );
    }

    /// Adds every object of `other` (the union of a node's Services).
    pub fn extend(&mut self, other: &Ruleset) {
        self.sets
            .extend(other.sets.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.chains
            .extend(other.chains.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.elements
            .extend(other.elements.iter().map(|(k, v)| (k.clone(), v.clone())));
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

/// Writes the commands that create `r` in an existing table, in four
/// passes so that every object exists before anything refers to it: sets
/// and maps, then chains, then rules (which refer to chains and sets),
/// then elements (which refer to chains).
///
/// A full transaction calls this once per part (the skeleton first, then
/// each Service) rather than merging them first: a Service's objects
/// refer only to its own objects and to the skeleton's, so part by part is
/// a valid order too.
pub fn write_ruleset(tx: &mut impl Transaction, r: &Ruleset) {
    for (name, set) in &r.sets {
        tx.add_set(name, set.ty, &set.comment);
    }
    for (name, chain) in &r.chains {
        tx.add_chain(name, chain.hook, &chain.comment);
    }
    for (name, chain) in &r.chains {
        for rule in &chain.rules {
            tx.add_rule(name, rule);
        }
    }
    for ((set, key), element) in &r.elements {
        tx.add_element(set, key, element.value.as_ref(), &element.comment);
    }
}

/// The skeleton of the table, the same on every node whatever the
/// Services: base chains hooked into netfilter, the dispatch and
/// no-endpoint maps, and masquerading.
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
    // Filter chains run just before DNAT (-100), so they see the address
    // the client used; the post-DNAT one sees what no Service rewrote.
    base(
        &mut r,
        FILTER_INPUT_CHAIN,
        filter(HookPoint::Input, -110),
        "new connections to this node: NodePorts and Services without endpoints",
    );
    base(
        &mut r,
        FILTER_FORWARD_CHAIN,
        filter(HookPoint::Forward, -110),
        "new forwarded connections: Services without endpoints, unknown ClusterIP ports",
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
        "new connections from this node that no Service rewrote",
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
        "leaving packets: masquerade those marked for it",
    );
    r.chain(
        SERVICES_CHAIN,
        "dispatch: ClusterIPs, then NodePorts on local addresses",
    );
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

    r.set(
        SERVICE_IPS_MAP,
        SetType::ClusterIpPortVmap,
        "ClusterIP traffic",
    );
    r.set(
        SERVICE_NODEPORTS_MAP,
        SetType::NodePortVmap,
        "NodePort traffic",
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

    // The hooks.
    let jump = |chain: &str| Stmt::Verdict(Verdict::Jump(chain.to_string()));
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
    for chain in [NAT_PREROUTING_CHAIN, NAT_OUTPUT_CHAIN] {
        r.rule(chain, vec![jump(SERVICES_CHAIN)], "Service dispatch");
    }
    r.rule(
        NAT_POSTROUTING_CHAIN,
        vec![jump(MASQUERADING_CHAIN)],
        "masquerade marked packets",
    );

    // Dispatch.
    r.rule(
        SERVICES_CHAIN,
        vec![Stmt::ClusterIpVmap(SERVICE_IPS_MAP.to_string())],
        "ClusterIP . protocol . port",
    );
    // `fib daddr type local`: any address of this node (its node IP, the
    // bridge, ...) but not loopback, as upstream.
    let not_loopback = Stmt::Ip {
        addr: Addr::Daddr,
        negate: true,
        net: LOOPBACK,
    };
    r.rule(
        SERVICES_CHAIN,
        vec![
            Stmt::FibLocal(Addr::Daddr),
            not_loopback.clone(),
            Stmt::NodePortVmap(SERVICE_NODEPORTS_MAP.to_string()),
        ],
        "NodePorts on this node's addresses",
    );

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
            not_loopback,
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
    r
}

/// One Service port's endpoint, as EndpointSlices report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
    /// Ready for new connections (`conditions.ready`, default true).
    pub ready: bool,
    /// Able to answer (`conditions.serving`, default: `ready`).
    pub serving: bool,
    /// Its Pod is being deleted (`conditions.terminating`, default false).
    pub terminating: bool,
    /// On this node (`nodeName`).
    pub local: bool,
    /// Zones it is hinted for (topology-aware routing).
    pub zone_hints: BTreeSet<String>,
}

impl Endpoint {
    fn serving_terminating(&self) -> bool {
        self.serving && self.terminating
    }
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

/// What one Service contributes to the table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceRules {
    pub ruleset: Ruleset,
    /// Its UDP ports (for conntrack cleanup).
    pub udp_ports: Vec<UdpServicePort>,
    /// How many ports it programs.
    pub ports: usize,
}

/// `namespace/name` of a Service or of the Service an EndpointSlice
/// belongs to.
pub fn service_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// The Service an EndpointSlice belongs to (`kubernetes.io/service-name`).
pub fn slice_service_key(slice: &EndpointSlice) -> Option<String> {
    let name = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    Some(service_key(slice.metadata.namespace.as_deref()?, name))
}

/// The whole table for this node: the skeleton plus every Service.
pub fn desired(services: &[Service], slices: &[EndpointSlice], node: &NodeContext) -> Ruleset {
    let mut by_service: BTreeMap<String, Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in slices {
        if let Some(key) = slice_service_key(slice) {
            by_service.entry(key).or_default().push(slice);
        }
    }
    let mut ruleset = base_ruleset(node);
    for service in services {
        let key = service_key(
            service.metadata.namespace.as_deref().unwrap_or_default(),
            service.metadata.name.as_deref().unwrap_or_default(),
        );
        let slices = by_service.get(&key).map(Vec::as_slice).unwrap_or_default();
        ruleset.extend(&service_ruleset(service, slices, node).ruleset);
    }
    ruleset
}

/// What one Service adds to the table, given its EndpointSlices.
///
/// Headless Services (`clusterIP: None`), ExternalName Services and
/// Services without a ClusterIP yet get nothing: there is no virtual IP to
/// catch.
pub fn service_ruleset(
    service: &Service,
    slices: &[&EndpointSlice],
    node: &NodeContext,
) -> ServiceRules {
    let mut out = ServiceRules::default();
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
        .and_then(|a| a.get(TOPOLOGY_MODE_ANNOTATION))
        .is_some_and(|mode| mode == "Auto" || mode == "auto")
        || spec.traffic_distribution.as_deref() == Some("PreferClose");
    out.ruleset.element(
        CLUSTER_IPS_SET,
        Key::Address(cluster_ip),
        None,
        &service_key(namespace, name),
    );
    for port in spec.ports.iter().flatten() {
        // The API only allows TCP, UDP and SCTP: anything else cannot be
        // written as a rule, and is skipped rather than failing the table.
        let Some(port_info) = PortInfo::new(namespace, name, port, cluster_ip, node_ports_on)
        else {
            continue;
        };
        let endpoints = endpoints_of(port, slices, &node.node_name);
        let program = PortProgram {
            info: &port_info,
            node,
            policy,
            affinity_timeout,
            topology,
        };
        program.write(&endpoints, &mut out.ruleset);
        out.ports += 1;
        if port_info.protocol == Proto::Udp {
            out.udp_ports.push(UdpServicePort {
                label: port_info.label.clone(),
                cluster_ip,
                port: port_info.port,
                node_port: port_info.node_port,
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

/// The endpoints of one Service port, from all the Service's slices: the
/// slice's port of the same name and protocol gives the number (this is how
/// a named `targetPort` is resolved per Pod).
pub fn endpoints_of(
    port: &ServicePort,
    slices: &[&EndpointSlice],
    node_name: &str,
) -> Vec<Endpoint> {
    let port_name = port.name.as_deref().unwrap_or_default();
    let protocol = port.protocol.as_deref().unwrap_or("TCP");
    let mut seen = BTreeSet::new();
    let mut endpoints = vec![];
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let Some(number) = slice.ports.iter().flatten().find_map(|p| {
            let same_name = p.name.as_deref().unwrap_or_default() == port_name;
            let same_protocol = p.protocol.as_deref().unwrap_or("TCP") == protocol;
            (same_name && same_protocol).then_some(p.port).flatten()
        }) else {
            continue;
        };
        let Ok(number) = u16::try_from(number) else {
            continue;
        };
        for endpoint in slice.endpoints.iter().flatten() {
            let Some(ip) = endpoint
                .addresses
                .first()
                .and_then(|a| a.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            if !seen.insert((ip, number)) {
                continue;
            }
            let conditions = endpoint.conditions.as_ref();
            let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
            endpoints.push(Endpoint {
                ip,
                port: number,
                ready,
                serving: conditions.and_then(|c| c.serving).unwrap_or(ready),
                terminating: conditions.and_then(|c| c.terminating).unwrap_or(false),
                local: endpoint.node_name.as_deref() == Some(node_name),
                zone_hints: endpoint
                    .hints
                    .iter()
                    .flat_map(|h| h.for_zones.iter().flatten())
                    .map(|z| z.name.clone())
                    .collect(),
            });
        }
    }
    // A stable order: the numgen index of an endpoint does not move when
    // an unrelated endpoint comes or goes more than it must.
    endpoints.sort_by_key(|e| (e.ip, e.port));
    endpoints
}

#[derive(Debug, Clone, Copy)]
struct TrafficPolicy {
    internal_local: bool,
    external_local: bool,
}

/// A Service port's names and numbers.
struct PortInfo {
    /// `namespace/name:port` (the port's name, or its number when unnamed).
    label: String,
    /// `<HASH>-namespace/name/protocol/portname`, the per-port chains' base.
    chain_base: String,
    /// `namespace/name/protocol/portname`, for endpoint chain names.
    name_base: String,
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
        let port_name = port.name.as_deref().unwrap_or_default();
        let number = u16::try_from(port.port).unwrap_or_default();
        let label = if port_name.is_empty() {
            format!("{namespace}/{name}:{number}")
        } else {
            format!("{namespace}/{name}:{port_name}")
        };
        // Chain names keep the lowercase protocol name (`tcp`).
        let name_base = format!("{namespace}/{name}/{}/{port_name}", protocol.name());
        Some(PortInfo {
            label,
            chain_base: hash_and_name(&name_base),
            name_base,
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

    fn service_chain(&self) -> String {
        format!("{SERVICE_CHAIN_PREFIX}{}", self.chain_base)
    }
    fn local_chain(&self) -> String {
        format!("{LOCAL_CHAIN_PREFIX}{}", self.chain_base)
    }
    fn external_chain(&self) -> String {
        format!("{EXTERNAL_CHAIN_PREFIX}{}", self.chain_base)
    }
    fn endpoint_base(&self, endpoint: &Endpoint) -> String {
        hash_and_name(&format!(
            "{}__{}/{}",
            self.name_base, endpoint.ip, endpoint.port
        ))
    }
    fn endpoint_chain(&self, endpoint: &Endpoint) -> String {
        format!("{ENDPOINT_CHAIN_PREFIX}{}", self.endpoint_base(endpoint))
    }
    fn affinity_set(&self, endpoint: &Endpoint) -> String {
        format!("{AFFINITY_SET_PREFIX}{}", self.endpoint_base(endpoint))
    }
}

/// Writes one Service port (upstream's `syncProxyRules` loop body).
struct PortProgram<'a> {
    info: &'a PortInfo,
    node: &'a NodeContext,
    policy: TrafficPolicy,
    affinity_timeout: Option<u32>,
    topology: bool,
}

impl PortProgram<'_> {
    fn write(&self, endpoints: &[Endpoint], r: &mut Ruleset) {
        let info = self.info;
        let label = info.label.as_str();
        let external = info.node_port.is_some();
        // Which endpoints each traffic policy uses (upstream's
        // CategorizeEndpoints): ready ones; only when there are none,
        // serving-and-terminating ones, which are draining but still answer.
        let uses_cluster = !self.policy.internal_local || (external && !self.policy.external_local);
        let uses_local = self.policy.internal_local || (external && self.policy.external_local);
        let mut cluster_endpoints: Vec<&Endpoint> = vec![];
        let mut has_endpoints = false;
        if uses_cluster {
            let zone = self.node.node_labels.get(ZONE_LABEL);
            let by_zone = self.topology
                && zone.is_some_and(|zone| {
                    let ready = endpoints.iter().filter(|e| e.ready);
                    ready.clone().all(|e| !e.zone_hints.is_empty())
                        && ready.clone().any(|e| e.zone_hints.contains(zone))
                });
            cluster_endpoints = endpoints
                .iter()
                .filter(|e| e.ready && (!by_zone || zone.is_some_and(|z| e.zone_hints.contains(z))))
                .collect();
            if cluster_endpoints.is_empty() {
                cluster_endpoints = endpoints
                    .iter()
                    .filter(|e| e.serving_terminating())
                    .collect();
            }
            has_endpoints = !cluster_endpoints.is_empty();
        }
        let mut local_endpoints: Vec<&Endpoint> = vec![];
        if uses_local {
            has_endpoints |= endpoints.iter().any(|e| e.ready || e.serving_terminating());
            local_endpoints = endpoints.iter().filter(|e| e.local && e.ready).collect();
            if local_endpoints.is_empty() {
                local_endpoints = endpoints
                    .iter()
                    .filter(|e| e.local && e.serving_terminating())
                    .collect();
            }
        }
        let mut reachable: Vec<&Endpoint> = cluster_endpoints.clone();
        for e in &local_endpoints {
            if !reachable.contains(e) {
                reachable.push(e);
            }
        }

        let service_chain = info.service_chain();
        let local_chain = info.local_chain();
        let external_chain = info.external_chain();
        let uses_service_chain = !cluster_endpoints.is_empty() && uses_cluster;
        let uses_local_chain = !local_endpoints.is_empty() && uses_local;
        let (internal_chain, has_internal) = if self.policy.internal_local {
            (&local_chain, has_endpoints && !local_endpoints.is_empty())
        } else {
            (&service_chain, has_endpoints)
        };
        let (external_policy_chain, has_external) = if self.policy.external_local {
            (&local_chain, has_endpoints && !local_endpoints.is_empty())
        } else {
            (&service_chain, has_endpoints)
        };
        let uses_external_chain = has_endpoints && external;
        // No endpoints anywhere: reject at once. Endpoints elsewhere but a
        // Local policy and none here: drop (the client should try another
        // node), as upstream.
        let no_endpoint_verdict = |has: bool| {
            if has_endpoints {
                (!has).then_some(Verdict::Drop)
            } else {
                Some(Verdict::Goto(REJECT_CHAIN.to_string()))
            }
        };
        let goto = |chain: &str| Verdict::Goto(chain.to_string());
        let jump_to_mark = || Stmt::Verdict(Verdict::Jump(MARK_FOR_MASQUERADE_CHAIN.to_string()));

        let clusterip_key = Key::ClusterIpPort(info.cluster_ip, info.protocol, info.port);
        if has_internal {
            r.element(
                SERVICE_IPS_MAP,
                clusterip_key,
                Some(goto(internal_chain)),
                label,
            );
        } else if let Some(verdict) = no_endpoint_verdict(has_internal) {
            r.element(
                NO_ENDPOINT_SERVICES_MAP,
                clusterip_key,
                Some(verdict),
                label,
            );
        }
        if let Some(node_port) = info.node_port {
            let key = Key::NodePort(info.protocol, node_port);
            if uses_external_chain {
                r.element(
                    SERVICE_NODEPORTS_MAP,
                    key.clone(),
                    Some(goto(&external_chain)),
                    label,
                );
            }
            if let Some(verdict) = no_endpoint_verdict(has_external) {
                r.element(NO_ENDPOINT_NODEPORTS_MAP, key, Some(verdict), label);
            }
        }

        if uses_service_chain {
            r.chain(
                &service_chain,
                &format!(
                    "{label} (ClusterIP {}:{}, all endpoints)",
                    info.cluster_ip, info.port
                ),
            );
        }
        if uses_local_chain {
            r.chain(&local_chain, &format!("{label} (endpoints on this node)"));
        }
        if has_internal {
            // A client outside the Pod range (another machine routing the
            // service range to this node) is masqueraded: the endpoint may
            // be on another node, and the reply must come back here.
            r.rule(
                internal_chain,
                vec![
                    Stmt::Ip {
                        addr: Addr::Daddr,
                        negate: false,
                        net: Ipv4Net::from(info.cluster_ip),
                    },
                    Stmt::Dport(info.protocol, info.port),
                    Stmt::Ip {
                        addr: Addr::Saddr,
                        negate: true,
                        net: self.node.cluster_cidr,
                    },
                    jump_to_mark(),
                ],
                &format!("{label}: masquerade off-cluster clients"),
            );
        }
        if uses_external_chain {
            r.chain(
                &external_chain,
                &format!("{label} (NodePort {})", info.node_port.unwrap_or_default()),
            );
            if !self.policy.external_local {
                // The endpoint may be on another node: masquerade, or its
                // reply would go straight to the client and be dropped.
                r.rule(
                    &external_chain,
                    vec![jump_to_mark()],
                    &format!("{label}: masquerade NodePort traffic"),
                );
            } else {
                // externalTrafficPolicy: Local keeps the client's address:
                // only local endpoints, no masquerade. Pods and the node
                // itself are not "external" and use every endpoint.
                let short_circuit = if uses_service_chain {
                    &service_chain
                } else {
                    &local_chain
                };
                if uses_service_chain || uses_local_chain {
                    r.rule(
                        &external_chain,
                        vec![
                            Stmt::Ip {
                                addr: Addr::Saddr,
                                negate: false,
                                net: self.node.cluster_cidr,
                            },
                            Stmt::Verdict(goto(short_circuit)),
                        ],
                        &format!("{label}: short-circuit Pod traffic"),
                    );
                    r.rule(
                        &external_chain,
                        vec![Stmt::FibLocal(Addr::Saddr), jump_to_mark()],
                        &format!("{label}: masquerade traffic from this node"),
                    );
                    r.rule(
                        &external_chain,
                        vec![
                            Stmt::FibLocal(Addr::Saddr),
                            Stmt::Verdict(goto(short_circuit)),
                        ],
                        &format!("{label}: short-circuit traffic from this node"),
                    );
                }
            }
            if has_external {
                r.rule(
                    &external_chain,
                    vec![Stmt::Verdict(goto(external_policy_chain))],
                    &format!("{label}: to the endpoints"),
                );
            }
        }

        if let Some(timeout) = self.affinity_timeout {
            for e in &reachable {
                r.set(
                    &info.affinity_set(e),
                    SetType::RecentAddresses {
                        timeout_seconds: timeout,
                    },
                    &format!(
                        "{label} -> {}:{}: recent clients (ClientIP affinity)",
                        e.ip, e.port
                    ),
                );
            }
        }
        if uses_service_chain {
            self.write_balancing(r, &service_chain, &cluster_endpoints);
        }
        if uses_local_chain {
            self.write_balancing(r, &local_chain, &local_endpoints);
        }
        for e in &reachable {
            let chain = info.endpoint_chain(e);
            let to = format!("{}:{}", e.ip, e.port);
            r.chain(&chain, &format!("{label} -> {to}"));
            // Hairpin: a Pod that reaches its own Service and lands on
            // itself would get a reply from itself; masquerading makes the
            // reply go back through the node to be un-DNATed.
            r.rule(
                &chain,
                vec![
                    Stmt::Ip {
                        addr: Addr::Saddr,
                        negate: false,
                        net: Ipv4Net::from(e.ip),
                    },
                    jump_to_mark(),
                ],
                &format!("{label} -> {to}: hairpin"),
            );
            if self.affinity_timeout.is_some() {
                r.rule(
                    &chain,
                    vec![Stmt::UpdateSaddr(info.affinity_set(e))],
                    &format!("{label} -> {to}: remember the client"),
                );
            }
            // nft 1.0.6: a DNAT with a port needs the protocol stated first.
            r.rule(
                &chain,
                vec![Stmt::L4Proto(info.protocol), Stmt::Dnat(e.ip, e.port)],
                &format!("{label} -> {to}"),
            );
        }
    }

    /// Affinity first (a client seen recently goes back to its endpoint),
    /// then a random pick.
    fn write_balancing(&self, r: &mut Ruleset, chain: &str, endpoints: &[&Endpoint]) {
        let info = self.info;
        if self.affinity_timeout.is_some() {
            for e in endpoints {
                r.rule(
                    chain,
                    vec![
                        Stmt::IpInSet {
                            addr: Addr::Saddr,
                            set: info.affinity_set(e),
                        },
                        Stmt::Verdict(Verdict::Goto(info.endpoint_chain(e))),
                    ],
                    &format!("{} -> {}:{}: affinity", info.label, e.ip, e.port),
                );
            }
        }
        // The random pick, endpoint by endpoint: the first rule takes 1 in
        // N of the connections, the next 1 in N-1 of those left, ..., the
        // last takes the rest - each endpoint gets 1/N. (iptables'
        // kube-proxy does the same with `statistic mode random
        // probability`. Upstream's nftables mode uses one verdict map per
        // Service instead; the kernel finds a named set by walking the
        // list of all sets, so 10,000 such maps make every change slow.)
        let n = endpoints.len();
        for (i, e) in endpoints.iter().enumerate() {
            let left = n - i;
            let to = format!("{} -> {}:{}", info.label, e.ip, e.port);
            let goto = Stmt::Verdict(Verdict::Goto(info.endpoint_chain(e)));
            if left > 1 {
                // (A Service port has far fewer than 2^32 endpoints.)
                let modulus = u32::try_from(left).unwrap_or(u32::MAX);
                r.rule(
                    chain,
                    vec![Stmt::NumgenIsZero { modulus }, goto],
                    &format!("{to}: 1 in {left}"),
                );
            } else if n == 1 {
                r.rule(chain, vec![goto], &format!("{to}: the only endpoint"));
            } else {
                r.rule(chain, vec![goto], &format!("{to}: the rest"));
            }
        }
    }
}

/// `<HASH>-<name>`: a short hash of the name first, so that chains of
/// similar names (two endpoints differing in one digit) are told apart
/// at a glance, as upstream (which uses SHA-256; any stable hash will do
/// here: FNV-1a, base32).
pub fn hash_and_name(name: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut prefix = String::with_capacity(8);
    for i in 0..8 {
        prefix.push(BASE32[((hash >> (i * 5)) & 31) as usize] as char);
    }
    format!("{prefix}-{name}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ClientIPConfig, ServiceSpec, SessionAffinityConfig};
    use k8s_openapi::api::discovery::v1::{
        Endpoint as SliceEndpoint, EndpointConditions, EndpointPort,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn node() -> NodeContext {
        NodeContext {
            node_name: "worker1".into(),
            cluster_cidr: "10.244.0.0/16".parse().unwrap(),
            service_cidr: "10.96.0.0/12".parse().unwrap(),
            node_labels: BTreeMap::new(),
        }
    }

    fn port(name: Option<&str>, protocol: &str, port: i32, target: IntOrString) -> ServicePort {
        ServicePort {
            name: name.map(str::to_string),
            protocol: Some(protocol.into()),
            port,
            target_port: Some(target),
            ..Default::default()
        }
    }

    /// The lesson's `ngx-svc`: ClusterIP 10.96.0.50, port 80.
    fn ngx_svc() -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("ngx-svc".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("ClusterIP".into()),
                cluster_ip: Some("10.96.0.50".into()),
                ports: Some(vec![port(None, "TCP", 80, IntOrString::Int(80))]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    struct Ep {
        ip: &'static str,
        node: &'static str,
        ready: bool,
        serving: bool,
        terminating: bool,
    }

    fn ep(ip: &'static str, node: &'static str) -> Ep {
        Ep {
            ip,
            node,
            ready: true,
            serving: true,
            terminating: false,
        }
    }

    fn slice(
        service: &str,
        ports: &[(Option<&str>, &str, i32)],
        endpoints: &[Ep],
    ) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                name: Some(format!("{service}-abcde")),
                namespace: Some("default".into()),
                labels: Some([(SERVICE_NAME_LABEL.to_string(), service.to_string())].into()),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            ports: Some(
                ports
                    .iter()
                    .map(|(name, protocol, port)| EndpointPort {
                        name: name.map(str::to_string),
                        protocol: Some(protocol.to_string()),
                        port: Some(*port),
                        ..Default::default()
                    })
                    .collect(),
            ),
            endpoints: Some(
                endpoints
                    .iter()
                    .map(|e| SliceEndpoint {
                        addresses: vec![e.ip.into()],
                        node_name: Some(e.node.into()),
                        conditions: Some(EndpointConditions {
                            ready: Some(e.ready),
                            serving: Some(e.serving),
                            terminating: Some(e.terminating),
                        }),
                        ..Default::default()
                    })
                    .collect(),
            ),
        }
    }

    fn script(service: &Service, slices: &[EndpointSlice]) -> String {
        let slices: Vec<&EndpointSlice> = slices.iter().collect();
        service_ruleset(service, &slices, &node())
            .ruleset
            .to_script()
    }

    fn lines_with<'a>(script: &'a str, needle: &str) -> Vec<&'a str> {
        script.lines().filter(|l| l.contains(needle)).collect()
    }

    const NGX_CHAIN: &str = "service-";

    #[test]
    fn chain_names_follow_upstream() {
        let name = hash_and_name("default/ngx-svc/tcp/");
        assert!(name.ends_with("-default/ngx-svc/tcp/"), "{name}");
        assert_eq!(name.len(), 8 + 1 + "default/ngx-svc/tcp/".len());
        assert_eq!(name, hash_and_name("default/ngx-svc/tcp/"), "stable");
        assert_ne!(
            hash_and_name("a/b/tcp/__10.244.1.5/80")[..8],
            hash_and_name("a/b/tcp/__10.244.1.6/80")[..8]
        );
    }

    #[test]
    fn ngx_svc_with_two_endpoints() {
        let slices = [slice(
            "ngx-svc",
            &[(None, "TCP", 80)],
            &[ep("10.244.1.5", "worker1"), ep("10.244.2.7", "worker2")],
        )];
        let text = script(&ngx_svc(), &slices);
        let chain = format!(
            "{SERVICE_CHAIN_PREFIX}{}",
            hash_and_name("default/ngx-svc/tcp/")
        );
        let ep1 = format!(
            "{ENDPOINT_CHAIN_PREFIX}{}",
            hash_and_name("default/ngx-svc/tcp/__10.244.1.5/80")
        );
        let ep2 = format!(
            "{ENDPOINT_CHAIN_PREFIX}{}",
            hash_and_name("default/ngx-svc/tcp/__10.244.2.7/80")
        );
        let expected = [
            format!("add chain ip kube-lite {chain} {{ comment \"default/ngx-svc:80 (ClusterIP 10.96.0.50:80, all endpoints)\" ; }}"),
            format!("add chain ip kube-lite {ep1} {{ comment \"default/ngx-svc:80 -> 10.244.1.5:80\" ; }}"),
            format!("add rule ip kube-lite {chain} ip daddr 10.96.0.50 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade comment \"default/ngx-svc:80: masquerade off-cluster clients\""),
            format!("add rule ip kube-lite {chain} numgen random mod 2 0 goto {ep1} comment \"default/ngx-svc:80 -> 10.244.1.5:80: 1 in 2\""),
            format!("add rule ip kube-lite {chain} goto {ep2} comment \"default/ngx-svc:80 -> 10.244.2.7:80: the rest\""),
            format!("add rule ip kube-lite {ep1} ip saddr 10.244.1.5 jump mark-for-masquerade comment \"default/ngx-svc:80 -> 10.244.1.5:80: hairpin\""),
            format!("add rule ip kube-lite {ep1} meta l4proto tcp dnat to 10.244.1.5:80 comment \"default/ngx-svc:80 -> 10.244.1.5:80\""),
            format!("add rule ip kube-lite {ep2} meta l4proto tcp dnat to 10.244.2.7:80 comment \"default/ngx-svc:80 -> 10.244.2.7:80\""),
            format!("add element ip kube-lite service-ips {{ 10.96.0.50 . tcp . 80 comment \"default/ngx-svc:80\" : goto {chain} }}"),
            "add element ip kube-lite cluster-ips { 10.96.0.50 comment \"default/ngx-svc\" }".to_string(),
        ];
        for line in &expected {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line}\nin\n{text}"
            );
        }
        // ClusterIP only: no NodePort, no rejects, no affinity.
        assert!(!text.contains("service-nodeports"), "{text}");
        assert!(!text.contains("no-endpoint"), "{text}");
        assert!(!text.contains("affinity"), "{text}");
        assert_eq!(lines_with(&text, "add chain").len(), 3, "{text}");
    }

    #[test]
    fn no_endpoints_rejects_and_has_no_nat_chains() {
        let text = script(&ngx_svc(), &[]);
        assert!(text.contains(
            "add element ip kube-lite no-endpoint-services { 10.96.0.50 . tcp . 80 comment \"default/ngx-svc:80\" : goto reject-chain }"
        ), "{text}");
        assert!(!text.contains("add chain"), "{text}");
        assert!(!text.contains("service-ips"), "{text}");
        // Not ready and not serving-terminating: the same.
        let mut unready = ep("10.244.1.5", "worker1");
        unready.ready = false;
        unready.serving = false;
        let text = script(
            &ngx_svc(),
            &[slice("ngx-svc", &[(None, "TCP", 80)], &[unready])],
        );
        assert!(text.contains("no-endpoint-services"), "{text}");
    }

    #[test]
    fn nodeport_goes_through_the_external_chain_and_masquerades() {
        let mut svc = ngx_svc();
        let spec = svc.spec.as_mut().unwrap();
        spec.type_ = Some("NodePort".into());
        spec.ports.as_mut().unwrap()[0].node_port = Some(30080);
        let slices = [slice(
            "ngx-svc",
            &[(None, "TCP", 80)],
            &[ep("10.244.2.7", "worker2")],
        )];
        let text = script(&svc, &slices);
        let ext = format!(
            "{EXTERNAL_CHAIN_PREFIX}{}",
            hash_and_name("default/ngx-svc/tcp/")
        );
        let chain = format!(
            "{SERVICE_CHAIN_PREFIX}{}",
            hash_and_name("default/ngx-svc/tcp/")
        );
        assert!(text.contains(&format!(
            "add element ip kube-lite service-nodeports {{ tcp . 30080 comment \"default/ngx-svc:80\" : goto {ext} }}"
        )), "{text}");
        assert!(
            text.contains(&format!(
                "add rule ip kube-lite {ext} jump mark-for-masquerade"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!("add rule ip kube-lite {ext} goto {chain}")),
            "{text}"
        );
        // Without endpoints the NodePort rejects too.
        let text = script(&svc, &[]);
        assert!(text.contains(
            "add element ip kube-lite no-endpoint-nodeports { tcp . 30080 comment \"default/ngx-svc:80\" : goto reject-chain }"
        ), "{text}");
    }

    #[test]
    fn external_traffic_policy_local_keeps_the_client_address() {
        let mut svc = ngx_svc();
        let spec = svc.spec.as_mut().unwrap();
        spec.type_ = Some("NodePort".into());
        spec.external_traffic_policy = Some("Local".into());
        spec.ports.as_mut().unwrap()[0].node_port = Some(30080);
        let ext = format!(
            "{EXTERNAL_CHAIN_PREFIX}{}",
            hash_and_name("default/ngx-svc/tcp/")
        );
        let local = format!(
            "{LOCAL_CHAIN_PREFIX}{}",
            hash_and_name("default/ngx-svc/tcp/")
        );
        let chain = format!(
            "{SERVICE_CHAIN_PREFIX}{}",
            hash_and_name("default/ngx-svc/tcp/")
        );
        // One endpoint here, one elsewhere: NodePort traffic from outside
        // goes to the local one only, unmasqueraded.
        let slices = [slice(
            "ngx-svc",
            &[(None, "TCP", 80)],
            &[ep("10.244.1.5", "worker1"), ep("10.244.2.7", "worker2")],
        )];
        let text = script(&svc, &slices);
        let ext_rules = lines_with(&text, &format!("add rule ip kube-lite {ext} "));
        assert_eq!(ext_rules.len(), 4, "{text}");
        assert!(ext_rules[0].contains(&format!("ip saddr 10.244.0.0/16 goto {chain}")));
        assert!(ext_rules[1].contains("fib saddr type local jump mark-for-masquerade"));
        assert!(ext_rules[3].contains(&format!("goto {local}")));
        assert!(!ext_rules
            .iter()
            .any(|r| r.contains(&format!("{ext} jump mark-for-masquerade"))));
        let local_rules = lines_with(&text, &format!("add rule ip kube-lite {local} "));
        // Only the local endpoint, taking every connection.
        assert_eq!(local_rules.len(), 1, "{text}");
        assert!(
            local_rules[0].contains(&format!(
                "goto {}{} comment \"default/ngx-svc:80 -> 10.244.1.5:80: the only endpoint\"",
                ENDPOINT_CHAIN_PREFIX,
                hash_and_name("default/ngx-svc/tcp/__10.244.1.5/80")
            )),
            "{text}"
        );
        // No local endpoint on this node: the NodePort drops (clients try
        // a node that has one), the ClusterIP still works.
        let slices = [slice(
            "ngx-svc",
            &[(None, "TCP", 80)],
            &[ep("10.244.2.7", "worker2")],
        )];
        let text = script(&svc, &slices);
        assert!(text.contains("add element ip kube-lite no-endpoint-nodeports { tcp . 30080 comment \"default/ngx-svc:80\" : drop }"), "{text}");
        assert!(
            text.contains("add element ip kube-lite service-ips { 10.96.0.50 . tcp . 80"),
            "{text}"
        );
    }

    #[test]
    fn internal_traffic_policy_local_uses_local_endpoints_only() {
        let mut svc = ngx_svc();
        svc.spec.as_mut().unwrap().internal_traffic_policy = Some("Local".into());
        let local = format!(
            "{LOCAL_CHAIN_PREFIX}{}",
            hash_and_name("default/ngx-svc/tcp/")
        );
        let slices = [slice(
            "ngx-svc",
            &[(None, "TCP", 80)],
            &[ep("10.244.1.5", "worker1"), ep("10.244.2.7", "worker2")],
        )];
        let text = script(&svc, &slices);
        assert!(
            text.contains(&format!(
                "10.96.0.50 . tcp . 80 comment \"default/ngx-svc:80\" : goto {local}"
            )),
            "{text}"
        );
        assert!(!text.contains("10.244.2.7"), "{text}");
        let slices = [slice(
            "ngx-svc",
            &[(None, "TCP", 80)],
            &[ep("10.244.2.7", "worker2")],
        )];
        let text = script(&svc, &slices);
        assert!(text.contains("no-endpoint-services { 10.96.0.50 . tcp . 80 comment \"default/ngx-svc:80\" : drop }"), "{text}");
    }

    #[test]
    fn client_ip_affinity_uses_timed_sets() {
        let mut svc = ngx_svc();
        let spec = svc.spec.as_mut().unwrap();
        spec.session_affinity = Some("ClientIP".into());
        spec.session_affinity_config = Some(SessionAffinityConfig {
            client_ip: Some(ClientIPConfig {
                timeout_seconds: Some(60),
            }),
        });
        let slices = [slice(
            "ngx-svc",
            &[(None, "TCP", 80)],
            &[ep("10.244.1.5", "worker1"), ep("10.244.2.7", "worker2")],
        )];
        let text = script(&svc, &slices);
        let set = format!(
            "{AFFINITY_SET_PREFIX}{}",
            hash_and_name("default/ngx-svc/tcp/__10.244.1.5/80")
        );
        let ep1 = format!(
            "{ENDPOINT_CHAIN_PREFIX}{}",
            hash_and_name("default/ngx-svc/tcp/__10.244.1.5/80")
        );
        let chain = format!(
            "{SERVICE_CHAIN_PREFIX}{}",
            hash_and_name("default/ngx-svc/tcp/")
        );
        assert!(text.contains(&format!("add set ip kube-lite {set} {{ type ipv4_addr ; flags dynamic,timeout ; timeout 60s ;")), "{text}");
        assert!(
            text.contains(&format!(
                "add rule ip kube-lite {chain} ip saddr @{set} goto {ep1}"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "add rule ip kube-lite {ep1} update @{set} {{ ip saddr }}"
            )),
            "{text}"
        );
        // Affinity (one rule per endpoint) before the random pick.
        let rules = lines_with(&text, &format!("add rule ip kube-lite {chain} "));
        assert!(
            rules[1].contains("affinity") && rules[2].contains("affinity"),
            "{text}"
        );
        assert!(rules[3].contains("numgen random mod 2 0"), "{text}");
    }

    #[test]
    fn multi_port_and_named_target_ports() {
        let svc = Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some("10.96.0.60".into()),
                ports: Some(vec![
                    port(Some("http"), "TCP", 80, IntOrString::String("web".into())),
                    port(Some("metrics"), "TCP", 9090, IntOrString::Int(9100)),
                ]),
                ..Default::default()
            }),
            ..Default::default()
        };
        // Two Pods name their port "web" with different numbers: one slice
        // each, as the EndpointSlice controller writes them.
        let slices = [
            slice(
                "web",
                &[(Some("http"), "TCP", 8080), (Some("metrics"), "TCP", 9100)],
                &[ep("10.244.1.5", "worker1")],
            ),
            slice(
                "web",
                &[(Some("http"), "TCP", 8081), (Some("metrics"), "TCP", 9100)],
                &[ep("10.244.2.7", "worker2")],
            ),
        ];
        let text = script(&svc, &slices);
        assert!(
            text.contains(
                "dnat to 10.244.1.5:8080 comment \"default/web:http -> 10.244.1.5:8080\""
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "dnat to 10.244.2.7:8081 comment \"default/web:http -> 10.244.2.7:8081\""
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "dnat to 10.244.1.5:9100 comment \"default/web:metrics -> 10.244.1.5:9100\""
            ),
            "{text}"
        );
        assert!(
            text.contains("10.96.0.60 . tcp . 80 comment \"default/web:http\""),
            "{text}"
        );
        assert!(
            text.contains("10.96.0.60 . tcp . 9090 comment \"default/web:metrics\""),
            "{text}"
        );
        assert!(
            text.contains(&hash_and_name("default/web/tcp/http")),
            "{text}"
        );
        assert!(
            text.contains(&hash_and_name("default/web/tcp/metrics")),
            "{text}"
        );
    }

    #[test]
    fn udp_service() {
        let svc = Service {
            metadata: ObjectMeta {
                name: Some("dns".into()),
                namespace: Some("kube-system".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some("10.96.0.10".into()),
                ports: Some(vec![port(Some("dns"), "UDP", 53, IntOrString::Int(5353))]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut slice = slice(
            "dns",
            &[(Some("dns"), "UDP", 5353)],
            &[ep("10.244.1.9", "worker1")],
        );
        slice.metadata.namespace = Some("kube-system".into());
        let rules = service_ruleset(&svc, &[&slice], &node());
        let text = rules.ruleset.to_script();
        assert!(
            text.contains("10.96.0.10 . udp . 53 comment \"kube-system/dns:dns\""),
            "{text}"
        );
        assert!(
            text.contains("meta l4proto udp dnat to 10.244.1.9:5353"),
            "{text}"
        );
        assert!(
            text.contains(&hash_and_name("kube-system/dns/udp/dns")),
            "{text}"
        );
        assert_eq!(rules.udp_ports.len(), 1);
        assert_eq!(
            rules.udp_ports[0].endpoints,
            BTreeSet::from(["10.244.1.9".parse().unwrap()])
        );
    }

    #[test]
    fn the_random_pick_gives_each_endpoint_an_equal_share() {
        let slices = [slice(
            "ngx-svc",
            &[(None, "TCP", 80)],
            &[
                ep("10.244.1.5", "worker1"),
                ep("10.244.2.7", "worker2"),
                ep("10.244.2.9", "worker2"),
            ],
        )];
        let text = script(&ngx_svc(), &slices);
        let chain = format!(
            "{SERVICE_CHAIN_PREFIX}{}",
            hash_and_name("default/ngx-svc/tcp/")
        );
        let endpoint = |ip: &str| {
            format!(
                "{ENDPOINT_CHAIN_PREFIX}{}",
                hash_and_name(&format!("default/ngx-svc/tcp/__{ip}/80"))
            )
        };
        let rules = lines_with(&text, &format!("add rule ip kube-lite {chain} "));
        // 1/3 to the first; half of the remaining 2/3 to the second; the
        // rest (1/3) to the third.
        assert_eq!(rules.len(), 4, "{text}");
        assert!(
            rules[1].contains(&format!(
                "numgen random mod 3 0 goto {}",
                endpoint("10.244.1.5")
            )),
            "{text}"
        );
        assert!(
            rules[2].contains(&format!(
                "numgen random mod 2 0 goto {}",
                endpoint("10.244.2.7")
            )),
            "{text}"
        );
        assert!(
            rules[3].contains(&format!("{chain} goto {} comment", endpoint("10.244.2.9"))),
            "{text}"
        );
        assert!(rules[3].ends_with(": the rest\""), "{text}");
    }

    #[test]
    fn terminating_endpoints_only_when_no_ready_ones() {
        let mut draining = ep("10.244.1.5", "worker1");
        draining.ready = false;
        draining.terminating = true;
        let slices = [slice(
            "ngx-svc",
            &[(None, "TCP", 80)],
            &[draining, ep("10.244.2.7", "worker2")],
        )];
        let text = script(&ngx_svc(), &slices);
        assert!(
            !text.contains("10.244.1.5"),
            "draining endpoint got new connections:\n{text}"
        );
        let mut draining = ep("10.244.1.5", "worker1");
        draining.ready = false;
        draining.terminating = true;
        let slices = [slice("ngx-svc", &[(None, "TCP", 80)], &[draining])];
        let text = script(&ngx_svc(), &slices);
        assert!(text.contains("dnat to 10.244.1.5:80"), "{text}");
    }

    #[test]
    fn headless_and_external_name_services_get_nothing() {
        let mut svc = ngx_svc();
        svc.spec.as_mut().unwrap().cluster_ip = Some("None".into());
        assert_eq!(script(&svc, &[]), "");
        let mut svc = ngx_svc();
        svc.spec.as_mut().unwrap().type_ = Some("ExternalName".into());
        assert_eq!(script(&svc, &[]), "");
    }

    #[test]
    fn the_base_table() {
        let text = base_ruleset(&node()).to_script();
        for line in [
            "add chain ip kube-lite nat-output { type nat hook output priority -100 ;",
            "add rule ip kube-lite services ip daddr . meta l4proto . th dport vmap @service-ips",
            "add rule ip kube-lite services fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports",
            "add rule ip kube-lite masquerading masquerade fully-random",
            "add rule ip kube-lite cluster-ips-check ip daddr 10.96.0.0/12 drop",
            "add rule ip kube-lite reject-chain meta l4proto tcp reject with tcp reset",
        ] {
            assert!(text.contains(line), "missing {line}\nin\n{text}");
        }
        assert!(NGX_CHAIN.starts_with("service"));
    }

    #[test]
    fn desired_is_the_union() {
        let slices = [slice(
            "ngx-svc",
            &[(None, "TCP", 80)],
            &[ep("10.244.1.5", "worker1")],
        )];
        let all = desired(&[ngx_svc()], &slices, &node());
        assert!(all.chains.contains_key(SERVICES_CHAIN));
        assert!(all.elements.contains_key(&(
            SERVICE_IPS_MAP.to_string(),
            Key::ClusterIpPort("10.96.0.50".parse().unwrap(), Proto::Tcp, 80)
        )));
    }
}
