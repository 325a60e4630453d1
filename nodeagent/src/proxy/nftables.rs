//! The words of nftables the service proxy uses, as data.
//!
//! A rule such as
//!
//! ```text
//! ip saddr != 10.244.0.0/16 jump mark-for-masquerade comment "off-cluster clients"
//! ```
//!
//! is a list of statements ([`Stmt`]): a match (`ip saddr != 10.244.0.0/16`) and a
//! verdict (`jump mark-for-masquerade`). `rules.rs` builds rules from these
//! statements, never from strings, so that each rule can be written two
//! ways:
//!
//! - as the text `nft` reads and prints (`Display` here): what the unit
//!   tests compare, what the debug log shows, and exactly what
//!   `nft list table ip kube-lite` prints back;
//! - as nf_tables netlink messages (`netlink/`): what the proxy sends to
//!   the kernel, the same bytes `nft -f` would send for that text.
//!
//! The [`Transaction`] trait is the list of things a transaction can do
//! (add a chain, flush it, add an element ...); `sync.rs` writes its diffs
//! and full resyncs against it, once, for both forms.
//!
//! Only what the service proxy needs is here: IPv4, TCP/UDP/SCTP, and the
//! seven kinds of sets and maps of its table.

use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// The one table everything lives in (`nft list table ip kube-lite`).
pub const TABLE: &str = "kube-lite";

/// The table's comment.
pub const TABLE_COMMENT: &str = "Services of kube-lite (kube-proxy nftables mode)";

/// nftables keeps at most this many bytes of a comment.
pub const COMMENT_MAX: usize = 127;

/// A transport protocol of a Service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
}

impl Proto {
    /// From the API's `TCP`, `UDP`, `SCTP` (any case).
    pub fn parse(protocol: &str) -> Option<Proto> {
        match protocol.to_ascii_lowercase().as_str() {
            "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            "sctp" => Some(Proto::Sctp),
            _ => None,
        }
    }

    /// The IP protocol number (`meta l4proto`).
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Sctp => 132,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which address of the IPv4 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addr {
    Saddr,
    Daddr,
}

impl Addr {
    fn name(self) -> &'static str {
        match self {
            Addr::Saddr => "saddr",
            Addr::Daddr => "daddr",
        }
    }
}

/// Where a rule sends the packet.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// Run that chain, then come back.
    Jump(String),
    /// Run that chain instead (no coming back).
    Goto(String),
    /// Back to the chain that jumped here.
    Return,
    Drop,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Jump(chain) => write!(f, "jump {chain}"),
            Verdict::Goto(chain) => write!(f, "goto {chain}"),
            Verdict::Return => f.write_str("return"),
            Verdict::Drop => f.write_str("drop"),
        }
    }
}

/// One statement of a rule: a match (the rule goes on only if it holds) or
/// an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stmt {
    /// `ct state new`: the first packet of a connection.
    CtStateNew,
    /// `ct status dnat`: the connection's destination was rewritten.
    CtStatusDnat,
    /// `ct original ip daddr 10.96.0.0/12`: where the client sent it,
    /// before any DNAT.
    CtOriginalDaddr {
        negate: bool,
        net: Ipv4Net,
    },
    /// `ip daddr 10.96.0.50`, `ip saddr != 10.244.0.0/16`.
    Ip {
        addr: Addr,
        negate: bool,
        net: Ipv4Net,
    },
    /// `ip daddr @cluster-ips`: the address is in a set.
    IpInSet {
        addr: Addr,
        set: String,
    },
    /// `ip saddr . ip daddr @hairpin-endpoints`: the pair is in a set.
    AddressPairInSet(String),
    /// `meta l4proto tcp`.
    L4Proto(Proto),
    /// `meta l4proto { tcp, udp, sctp }` (an anonymous set).
    L4ProtoIn(Vec<Proto>),
    /// `fib daddr type local`: the address belongs to this node.
    FibLocal(Addr),
    /// `ip daddr . meta l4proto . th dport @set`: the ClusterIP port is in
    /// a set.
    ClusterIpPortInSet(String),
    /// `meta l4proto . th dport @set`: the port is in a set.
    NodePortInSet(String),
    /// `ip daddr . meta l4proto . th dport vmap @map`.
    ClusterIpVmap(String),
    /// `meta l4proto . th dport vmap @map`.
    NodePortVmap(String),
    /// `ct original ip daddr . meta l4proto . ct original proto-dst vmap
    /// @map`: the ClusterIP and port the client used, after the DNAT (nft
    /// needs a `meta l4proto` match first to know the port's type).
    OriginalClusterIpVmap(String),
    /// `meta l4proto . ct original proto-dst vmap @map` (after a `meta
    /// l4proto` match).
    OriginalNodePortVmap(String),
    /// `mark and MASK == 0`.
    MarkClear(u32),
    /// `mark set mark or BITS`.
    MarkSetOr(u32),
    /// `mark set mark xor BITS`.
    MarkSetXor(u32),
    /// `dnat ip to ip daddr . meta l4proto . th dport . numgen random mod
    /// N map @map`: bucket `0..N-1` of this ClusterIP port, at random.
    DnatClusterIpPick {
        map: String,
        modulus: u32,
    },
    /// `dnat ip to meta l4proto . th dport . numgen random mod N offset K
    /// map @map`: bucket `K..K+N-1` of this NodePort, at random.
    DnatNodePortPick {
        map: String,
        modulus: u32,
        offset: u32,
    },
    /// `dnat ip to ip saddr . ip daddr . meta l4proto . th dport map @map`:
    /// the endpoint this client was sent to last time, if remembered.
    DnatRemembered(String),
    /// `update @map { ip saddr . ct original ip daddr . meta l4proto . ct
    /// original proto-dst timeout Ns : ip daddr . tcp dport }` (after `meta
    /// l4proto tcp`): remember which endpoint this client got.
    RememberClient {
        map: String,
        proto: Proto,
        timeout_seconds: u32,
    },
    /// `numgen random mod N 0`: true for one packet in N, at random.
    /// (kube-proxy's shape: a chain per endpoint, picked by a cascade of
    /// these. Not in kube-lite's table; the scale benchmark builds that
    /// shape as its reference.)
    NumgenIsZero {
        modulus: u32,
    },
    /// `dnat to 10.244.2.7:80` (after `meta l4proto tcp`): kube-proxy's
    /// per-endpoint DNAT, for the same reference.
    Dnat(Ipv4Addr, u16),
    /// `masquerade fully-random`.
    MasqueradeFullyRandom,
    /// `reject with tcp reset`.
    RejectTcpReset,
    /// `reject with icmp type port-unreachable`.
    RejectPortUnreachable,
    Verdict(Verdict),
}

impl Stmt {
    /// The named set or map this statement uses, if any.
    pub fn set(&self) -> Option<&str> {
        match self {
            Stmt::IpInSet { set, .. }
            | Stmt::AddressPairInSet(set)
            | Stmt::ClusterIpPortInSet(set)
            | Stmt::NodePortInSet(set)
            | Stmt::ClusterIpVmap(set)
            | Stmt::NodePortVmap(set)
            | Stmt::OriginalClusterIpVmap(set)
            | Stmt::OriginalNodePortVmap(set)
            | Stmt::DnatClusterIpPick { map: set, .. }
            | Stmt::DnatNodePortPick { map: set, .. }
            | Stmt::DnatRemembered(set)
            | Stmt::RememberClient { map: set, .. } => Some(set),
            _ => None,
        }
    }
}

fn net_text(net: &Ipv4Net) -> String {
    if net.prefix_len() == 32 {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

impl fmt::Display for Stmt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stmt::CtStateNew => f.write_str("ct state new"),
            Stmt::CtStatusDnat => f.write_str("ct status dnat"),
            Stmt::CtOriginalDaddr { negate, net } => {
                let op = if *negate { "!= " } else { "" };
                write!(f, "ct original ip daddr {op}{}", net_text(net))
            }
            Stmt::Ip { addr, negate, net } => {
                let op = if *negate { "!= " } else { "" };
                write!(f, "ip {} {op}{}", addr.name(), net_text(net))
            }
            Stmt::IpInSet { addr, set } => write!(f, "ip {} @{set}", addr.name()),
            Stmt::AddressPairInSet(set) => write!(f, "ip saddr . ip daddr @{set}"),
            Stmt::L4Proto(proto) => write!(f, "meta l4proto {proto}"),
            Stmt::L4ProtoIn(protos) => {
                let names: Vec<&str> = protos.iter().map(|p| p.name()).collect();
                write!(f, "meta l4proto {{ {} }}", names.join(", "))
            }
            Stmt::FibLocal(addr) => write!(f, "fib {} type local", addr.name()),
            Stmt::ClusterIpPortInSet(set) => write!(f, "ip daddr . meta l4proto . th dport @{set}"),
            Stmt::NodePortInSet(set) => write!(f, "meta l4proto . th dport @{set}"),
            Stmt::ClusterIpVmap(map) => write!(f, "ip daddr . meta l4proto . th dport vmap @{map}"),
            Stmt::NodePortVmap(map) => write!(f, "meta l4proto . th dport vmap @{map}"),
            Stmt::OriginalClusterIpVmap(map) => write!(
                f,
                "ct original ip daddr . meta l4proto . ct original proto-dst vmap @{map}"
            ),
            Stmt::OriginalNodePortVmap(map) => {
                write!(f, "meta l4proto . ct original proto-dst vmap @{map}")
            }
            Stmt::MarkClear(mask) => write!(f, "mark and {mask:#x} == 0"),
            Stmt::MarkSetOr(bits) => write!(f, "mark set mark or {bits:#x}"),
            Stmt::MarkSetXor(bits) => write!(f, "mark set mark xor {bits:#x}"),
            Stmt::DnatClusterIpPick { map, modulus } => write!(
                f,
                "dnat ip to ip daddr . meta l4proto . th dport . numgen random mod {modulus} map @{map}"
            ),
            Stmt::DnatNodePortPick {
                map,
                modulus,
                offset,
            } => {
                write!(f, "dnat ip to meta l4proto . th dport . numgen random mod {modulus}")?;
                if *offset != 0 {
                    write!(f, " offset {offset}")?;
                }
                write!(f, " map @{map}")
            }
            Stmt::DnatRemembered(map) => write!(
                f,
                "dnat ip to ip saddr . ip daddr . meta l4proto . th dport map @{map}"
            ),
            Stmt::RememberClient {
                map,
                proto,
                timeout_seconds,
            } => write!(
                f,
                "update @{map} {{ ip saddr . ct original ip daddr . meta l4proto . ct original proto-dst timeout {timeout_seconds}s : ip daddr . {proto} dport }}"
            ),
            Stmt::NumgenIsZero { modulus } => write!(f, "numgen random mod {modulus} 0"),
            Stmt::Dnat(ip, port) => write!(f, "dnat to {ip}:{port}"),
            Stmt::MasqueradeFullyRandom => f.write_str("masquerade fully-random"),
            Stmt::RejectTcpReset => f.write_str("reject with tcp reset"),
            Stmt::RejectPortUnreachable => f.write_str("reject with icmp type port-unreachable"),
            Stmt::Verdict(verdict) => verdict.fmt(f),
        }
    }
}

/// A rule: statements, then a comment saying what it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub stmts: Vec<Stmt>,
    pub comment: String,
}

impl Rule {
    pub fn new(stmts: Vec<Stmt>, comment: &str) -> Rule {
        Rule {
            stmts,
            comment: truncate(comment),
        }
    }

    /// Whether this rule uses the named set or map.
    pub fn uses_set(&self, name: &str) -> bool {
        self.stmts.iter().any(|s| s.set() == Some(name))
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for stmt in &self.stmts {
            write!(f, "{stmt} ")?;
        }
        write!(f, "comment {}", quote(&self.comment))
    }
}

/// The netfilter hooks the base chains attach to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookPoint {
    Prerouting,
    Input,
    Forward,
    Output,
    Postrouting,
}

impl HookPoint {
    fn name(self) -> &'static str {
        match self {
            HookPoint::Prerouting => "prerouting",
            HookPoint::Input => "input",
            HookPoint::Forward => "forward",
            HookPoint::Output => "output",
            HookPoint::Postrouting => "postrouting",
        }
    }

    /// The kernel's number for it (`NF_INET_*`).
    pub fn number(self) -> u32 {
        match self {
            HookPoint::Prerouting => 0,
            HookPoint::Input => 1,
            HookPoint::Forward => 2,
            HookPoint::Output => 3,
            HookPoint::Postrouting => 4,
        }
    }
}

/// What makes a chain a base chain: `type nat hook output priority -100`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hook {
    /// `nat` (may rewrite addresses; sees only first packets) or `filter`.
    pub nat: bool,
    pub point: HookPoint,
    /// Lower runs first.
    pub priority: i32,
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.nat { "nat" } else { "filter" };
        write!(
            f,
            "type {kind} hook {} priority {}",
            self.point.name(),
            self.priority
        )
    }
}

/// The kinds of sets and maps the table has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetType {
    /// `type ipv4_addr . inet_proto . inet_service : verdict`.
    ClusterIpPortVmap,
    /// `type inet_proto . inet_service : verdict`.
    NodePortVmap,
    /// `type ipv4_addr . inet_proto . inet_service`: ClusterIP ports.
    ClusterIpPorts,
    /// `type inet_proto . inet_service`: NodePorts.
    NodePorts,
    /// `type ipv4_addr`.
    Addresses,
    /// `type ipv4_addr . ipv4_addr`.
    AddressPairs,
    /// `typeof ip daddr . meta l4proto . th dport . numgen random mod 1 :
    /// ip daddr . th dport`: ClusterIP . protocol . port . bucket ->
    /// endpoint. (`typeof`, because a bucket number has no type of its own
    /// in nftables; `numgen random mod 1` only says "a number like the one
    /// numgen makes".)
    ClusterIpEndpoints,
    /// `typeof meta l4proto . th dport . numgen random mod 1 : ip daddr .
    /// th dport`: protocol . nodePort . bucket -> endpoint.
    NodePortEndpoints,
    /// `type ipv4_addr . ipv4_addr . inet_proto . inet_service : ipv4_addr
    /// . inet_service ; flags dynamic,timeout ; size N`: client . address
    /// and port it used -> the endpoint it got, filled in by the packet
    /// path (`update`), each entry expiring after its Service's timeout.
    RememberedClients { size: u32 },
}

impl SetType {
    /// `map` (elements have a value) or `set`.
    pub fn kind(self) -> &'static str {
        match self {
            SetType::ClusterIpPorts
            | SetType::NodePorts
            | SetType::Addresses
            | SetType::AddressPairs => "set",
            _ => "map",
        }
    }
}

impl fmt::Display for SetType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetType::ClusterIpPortVmap => {
                f.write_str("type ipv4_addr . inet_proto . inet_service : verdict")
            }
            SetType::ClusterIpPorts => f.write_str("type ipv4_addr . inet_proto . inet_service"),
            SetType::NodePorts => f.write_str("type inet_proto . inet_service"),
            SetType::NodePortVmap => f.write_str("type inet_proto . inet_service : verdict"),
            SetType::Addresses => f.write_str("type ipv4_addr"),
            SetType::AddressPairs => f.write_str("type ipv4_addr . ipv4_addr"),
            SetType::ClusterIpEndpoints => f.write_str(
                "typeof ip daddr . meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport",
            ),
            SetType::NodePortEndpoints => f.write_str(
                "typeof meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport",
            ),
            SetType::RememberedClients { size } => write!(
                f,
                "type ipv4_addr . ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service ; flags dynamic,timeout ; size {size}"
            ),
        }
    }
}

/// The key of a set or map element.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    /// `10.96.0.50 . tcp . 80`.
    ClusterIpPort(Ipv4Addr, Proto, u16),
    /// `tcp . 30080`.
    NodePort(Proto, u16),
    /// `10.96.0.50`.
    Address(Ipv4Addr),
    /// `10.244.1.5 . 10.244.1.5`.
    AddressPair(Ipv4Addr, Ipv4Addr),
    /// `10.96.0.50 . tcp . 80 . 1`: a ClusterIP port's bucket.
    ClusterIpBucket(Ipv4Addr, Proto, u16, u32),
    /// `tcp . 30080 . 1`: a NodePort's bucket.
    NodePortBucket(Proto, u16, u32),
    /// `10.244.1.3 . 10.96.0.50 . tcp . 80`: a client and the address and
    /// port it used.
    Client(Ipv4Addr, Ipv4Addr, Proto, u16),
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::ClusterIpPort(ip, proto, port) => write!(f, "{ip} . {proto} . {port}"),
            Key::NodePort(proto, port) => write!(f, "{proto} . {port}"),
            Key::Address(ip) => write!(f, "{ip}"),
            Key::AddressPair(a, b) => write!(f, "{a} . {b}"),
            Key::ClusterIpBucket(ip, proto, port, bucket) => {
                write!(f, "{ip} . {proto} . {port} . {bucket}")
            }
            Key::NodePortBucket(proto, port, bucket) => write!(f, "{proto} . {port} . {bucket}"),
            Key::Client(client, ip, proto, port) => write!(f, "{client} . {ip} . {proto} . {port}"),
        }
    }
}

/// The value of a map element.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Value {
    /// `goto pick-1-of-2`, `drop` (verdict maps).
    Verdict(Verdict),
    /// `10.244.2.7 . 80`: where a DNAT sends the packet.
    Endpoint(Ipv4Addr, u16),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Verdict(verdict) => verdict.fmt(f),
            Value::Endpoint(ip, port) => write!(f, "{ip} . {port}"),
        }
    }
}

/// Everything a transaction can do to the table. `sync.rs` writes its
/// transactions against this; [`Script`] makes `nft -f` text of them,
/// `netlink::Batch` nf_tables messages.
pub trait Transaction {
    /// `table ip kube-lite { comment ... }` (creates it if missing).
    fn add_table(&mut self);
    fn delete_table(&mut self);
    fn add_set(&mut self, name: &str, set: SetType, comment: &str);
    fn delete_set(&mut self, name: &str, set: SetType);
    fn add_chain(&mut self, name: &str, hook: Option<Hook>, comment: &str);
    /// Removes every rule of the chain.
    fn flush_chain(&mut self, name: &str);
    fn delete_chain(&mut self, name: &str);
    fn add_rule(&mut self, chain: &str, rule: &Rule);
    fn add_element(&mut self, set: &str, key: &Key, value: Option<&Value>, comment: &str);
    fn delete_element(&mut self, set: &str, key: &Key);
    /// Deletes the element if it is still there: for entries the packet
    /// path made, which may expire before the transaction runs. (nft 1.0.6
    /// has no word for it; its text says `delete`.)
    fn destroy_element(&mut self, set: &str, key: &Key);
    /// How many commands so far.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A transaction as `nft -f` text, one command per line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Script {
    pub text: String,
    lines: usize,
}

impl Script {
    fn line(&mut self, line: fmt::Arguments<'_>) {
        use fmt::Write as _;
        let _ = self.text.write_fmt(line);
        self.text.push('\n');
        self.lines += 1;
    }
}

impl Transaction for Script {
    fn add_table(&mut self) {
        // Over several lines: nft 1.0.6 does not take a one-line table
        // with a comment.
        self.line(format_args!(
            "table ip {TABLE} {{\n\tcomment {}\n}}",
            quote(TABLE_COMMENT)
        ));
    }
    fn delete_table(&mut self) {
        self.line(format_args!("delete table ip {TABLE}"));
    }
    fn add_set(&mut self, name: &str, set: SetType, comment: &str) {
        self.line(format_args!(
            "add {} ip {TABLE} {name} {{ {set} ; comment {} ; }}",
            set.kind(),
            quote(comment)
        ));
    }
    fn delete_set(&mut self, name: &str, set: SetType) {
        self.line(format_args!("delete {} ip {TABLE} {name}", set.kind()));
    }
    fn add_chain(&mut self, name: &str, hook: Option<Hook>, comment: &str) {
        match hook {
            Some(hook) => self.line(format_args!(
                "add chain ip {TABLE} {name} {{ {hook} ; comment {} ; }}",
                quote(comment)
            )),
            None => self.line(format_args!(
                "add chain ip {TABLE} {name} {{ comment {} ; }}",
                quote(comment)
            )),
        }
    }
    fn flush_chain(&mut self, name: &str) {
        self.line(format_args!("flush chain ip {TABLE} {name}"));
    }
    fn delete_chain(&mut self, name: &str) {
        self.line(format_args!("delete chain ip {TABLE} {name}"));
    }
    fn add_rule(&mut self, chain: &str, rule: &Rule) {
        self.line(format_args!("add rule ip {TABLE} {chain} {rule}"));
    }
    fn add_element(&mut self, set: &str, key: &Key, value: Option<&Value>, comment: &str) {
        match value {
            Some(value) => self.line(format_args!(
                "add element ip {TABLE} {set} {{ {key} comment {} : {value} }}",
                quote(comment)
            )),
            None => self.line(format_args!(
                "add element ip {TABLE} {set} {{ {key} comment {} }}",
                quote(comment)
            )),
        }
    }
    fn delete_element(&mut self, set: &str, key: &Key) {
        self.line(format_args!("delete element ip {TABLE} {set} {{ {key} }}"));
    }
    fn destroy_element(&mut self, set: &str, key: &Key) {
        self.delete_element(set, key);
    }
    fn len(&self) -> usize {
        self.lines
    }
}

/// `"comment"`, cut to what nftables keeps, without inner quotes.
pub fn quote(comment: &str) -> String {
    format!("\"{}\"", truncate(comment).replace('"', "'"))
}

/// Cuts a comment to [`COMMENT_MAX`] bytes (on a character boundary).
pub fn truncate(comment: &str) -> String {
    if comment.len() <= COMMENT_MAX {
        return comment.to_string();
    }
    let mut end = COMMENT_MAX;
    while !comment.is_char_boundary(end) {
        end -= 1;
    }
    comment[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_print_as_nft_reads_them() {
        let rule = Rule::new(
            vec![
                Stmt::Ip {
                    addr: Addr::Daddr,
                    negate: false,
                    net: "10.96.0.50/32".parse().unwrap(),
                },
                Stmt::Ip {
                    addr: Addr::Saddr,
                    negate: true,
                    net: "10.244.0.0/16".parse().unwrap(),
                },
                Stmt::Verdict(Verdict::Jump("mark-for-masquerade".into())),
            ],
            "default/ngx-svc:80",
        );
        assert_eq!(
            rule.to_string(),
            "ip daddr 10.96.0.50 ip saddr != 10.244.0.0/16 jump mark-for-masquerade comment \"default/ngx-svc:80\""
        );
        let rule = Rule::new(
            vec![Stmt::MarkClear(0x4000), Stmt::Verdict(Verdict::Return)],
            "x",
        );
        assert_eq!(
            rule.to_string(),
            "mark and 0x4000 == 0 return comment \"x\""
        );
        assert_eq!(
            Key::ClusterIpPort("10.96.0.50".parse().unwrap(), Proto::Udp, 53).to_string(),
            "10.96.0.50 . udp . 53"
        );
        assert_eq!(
            Key::ClusterIpBucket("10.96.0.50".parse().unwrap(), Proto::Tcp, 80, 2).to_string(),
            "10.96.0.50 . tcp . 80 . 2"
        );
        assert_eq!(
            Stmt::DnatNodePortPick {
                map: "nodeport-endpoints".into(),
                modulus: 2,
                offset: 3
            }
            .to_string(),
            "dnat ip to meta l4proto . th dport . numgen random mod 2 offset 3 map @nodeport-endpoints"
        );
    }

    #[test]
    fn long_comments_are_cut_on_a_character_boundary() {
        let long = "é".repeat(100);
        let cut = truncate(&long);
        assert!(cut.len() <= COMMENT_MAX && long.starts_with(&cut));
    }
}
