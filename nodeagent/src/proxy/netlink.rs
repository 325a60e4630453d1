//! Talking to nf_tables directly: the table's transactions as netlink
//! messages.
//!
//! `nft` is a translator. It reads text such as `add rule ip kube-lite
//! services ip daddr . meta l4proto . th dport vmap @service-ips`, turns it
//! into *expressions* (small instructions for the kernel's packet-matching
//! virtual machine: "load 4 bytes of the network header at offset 16 into
//! register 1", "look registers 1.. up in set service-ips"), and sends them
//! to the kernel over a netlink socket, in one *batch* that the kernel
//! applies all at once or not at all. `nft --debug=netlink` prints them.
//!
//! Before it sends anything, `nft` 1.0.6 reads the whole table back from the
//! kernel (to check names and types): with 100,000 chains that alone takes
//! a second, for any change however small. The proxy does not need it: it
//! knows what it wrote. So it speaks the same protocol itself. [`Batch`]
//! implements [`Transaction`]: each command becomes the message `nft` would
//! send for its text, byte for byte the same expressions and the same
//! user data (comments, and the set "typeof" notes `nft list` reads), so
//! that `nft list table ip kube-lite` prints exactly what `rules.rs` wrote.
//! A unit test checks that by loading a ruleset both ways.
//!
//! The wire format: every message is a `nlmsghdr` (length, type, flags,
//! sequence number), an `nfgenmsg` (address family `ip`), then attributes
//! (type, length, value, padded to 4 bytes; attributes nest). A batch is
//! `BATCH_BEGIN`, the messages, `BATCH_END`, all in one `send`. The kernel
//! processes it during that call, answers every failing message with an
//! error naming its sequence number, and acknowledges the last one.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{self, sockopt, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockType};

use super::nftables::{
    Addr, Hook, Key, Proto, Rule, SetType, Stmt, Transaction, Verdict, TABLE, TABLE_COMMENT,
};

/// What can go wrong talking to nf_tables.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("{action}: {source}")]
    System { action: String, source: Errno },
    #[error("entering network namespace {netns:?}: {source}")]
    Netns {
        netns: String,
        source: std::io::Error,
    },
    #[error(
        "the kernel rejected the transaction ({commands} commands; nothing changed): {message}: {errno}"
    )]
    Rejected {
        commands: usize,
        /// Which message failed, e.g. `add rule to chain services`.
        message: String,
        errno: Errno,
    },
    #[error("no answer from the kernel to the transaction")]
    NoAnswer,
}

// Netlink and nfnetlink framing (linux/netlink.h, linux/netfilter/nfnetlink.h).
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
const NLA_F_NESTED: u16 = 0x8000;
/// Socket option (level SOL_NETLINK): errors carry only the header of the
/// failed message.
const NETLINK_CAP_ACK: nix::libc::c_int = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFPROTO_IPV4: u8 = 2;

// Message types (linux/netfilter/nf_tables.h, enum nf_tables_msg_types).
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_DELCHAIN: u16 = 5;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_DELRULE: u16 = 8;
const NFT_MSG_NEWSET: u16 = 9;
const NFT_MSG_DELSET: u16 = 11;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;

// Attributes, by object.
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_FLAGS: u16 = 2;
const NFTA_TABLE_USERDATA: u16 = 6;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_CHAIN_USERDATA: u16 = 12;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_SET_DATA_TYPE: u16 = 6;
const NFTA_SET_DATA_LEN: u16 = 7;
const NFTA_SET_DESC: u16 = 9;
const NFTA_SET_ID: u16 = 10;
const NFTA_SET_TIMEOUT: u16 = 11;
const NFTA_SET_USERDATA: u16 = 13;
const NFTA_SET_DESC_SIZE: u16 = 1;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_SET_ELEM_LIST_SET_ID: u16 = 4;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_SET_ELEM_USERDATA: u16 = 6;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;

// Set flags and data types.
const NFT_SET_ANONYMOUS: u32 = 0x1;
const NFT_SET_CONSTANT: u32 = 0x2;
const NFT_SET_MAP: u32 = 0x8;
const NFT_SET_TIMEOUT: u32 = 0x10;
const NFT_SET_EVAL: u32 = 0x20;
const NFT_DATA_VERDICT: u32 = 0xffff_ff00;

// Verdict codes.
const NF_DROP: i32 = 0;
const NFT_JUMP: i32 = -3;
const NFT_GOTO: i32 = -4;
const NFT_RETURN: i32 = -5;

// Registers: 0 holds the verdict; 1 is a 16-byte register, which is also
// 4-byte registers 8..11 (a concatenated key is built across 8, 9, 10).
const REG_VERDICT: u32 = 0;
const REG_1: u32 = 1;
const REG_2: u32 = 2;
const REG32_01: u32 = 9;
const REG32_02: u32 = 10;

/// nft's data type numbers (its `enum datatypes`), as it records them in
/// a set's key type; a concatenation is the types shifted by 6 bits each.
const TYPE_IPADDR: u32 = 7;
const TYPE_INET_PROTOCOL: u32 = 12;
const TYPE_INET_SERVICE: u32 = 13;

/// The most a message's attribute of elements may hold (its length field
/// has 16 bits); a longer run of elements goes on in a new message.
const MAX_ELEMENTS_BYTES: usize = 60_000;

/// A transaction being written as nf_tables messages.
pub struct Batch {
    buf: Vec<u8>,
    /// Where each message starts (index = sequence number - 1), to say
    /// which one the kernel rejected.
    starts: Vec<u32>,
    commands: usize,
    /// An element message still open for more elements of the same set:
    /// (set name, add or delete, where its ELEMENTS attribute starts).
    open_elements: Option<(String, bool, usize)>,
    /// Where the current message and its open attributes start.
    message_start: usize,
    nests: Vec<usize>,
    next_set_id: u32,
}

impl Default for Batch {
    fn default() -> Self {
        Batch::new()
    }
}

impl Batch {
    pub fn new() -> Batch {
        Batch::with_capacity(4096)
    }

    /// A batch expected to grow to about `bytes` (a full resync: as big
    /// as the last one), allocated once.
    pub fn with_capacity(bytes: usize) -> Batch {
        let mut batch = Batch::messages(bytes);
        // BATCH_BEGIN: "what follows is one transaction of nf_tables".
        batch.begin_raw(NFNL_MSG_BATCH_BEGIN, 0, 0, NFNL_SUBSYS_NFTABLES);
        batch.end_message();
        batch
    }

    /// Messages that are not a transaction (a request to read).
    fn messages(bytes: usize) -> Batch {
        Batch {
            buf: Vec::with_capacity(bytes),
            starts: vec![],
            commands: 0,
            open_elements: None,
            message_start: 0,
            nests: vec![],
            next_set_id: 1,
        }
    }

    /// Bytes written so far.
    pub fn size(&self) -> usize {
        self.buf.len()
    }

    /// The messages, closed by BATCH_END; the last message asks for an
    /// acknowledgement, so that success is an answer too.
    fn finish(mut self) -> (Vec<u8>, Vec<u32>, usize) {
        self.close_elements();
        if let Some(last) = self.starts.last() {
            let flags_at = *last as usize + 6;
            let flags =
                u16::from_ne_bytes([self.buf[flags_at], self.buf[flags_at + 1]]) | NLM_F_ACK;
            self.buf[flags_at..flags_at + 2].copy_from_slice(&flags.to_ne_bytes());
        }
        let seq = self.starts.len() as u32 + 1;
        self.begin_raw(NFNL_MSG_BATCH_END, 0, seq, NFNL_SUBSYS_NFTABLES);
        self.end_message();
        (self.buf, self.starts, self.commands)
    }

    // --- framing ---

    fn begin_raw(&mut self, kind: u16, flags: u16, seq: u32, res_id: u16) {
        self.message_start = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set at the end
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf
            .extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // port: the kernel
        let family = if res_id == 0 { NFPROTO_IPV4 } else { 0 };
        self.buf.extend_from_slice(&[family, 0]);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
    }

    /// Starts a message of nf_tables (`NFT_MSG_*`).
    fn begin(&mut self, message: u16, flags: u16) {
        self.close_elements();
        self.starts.push(self.buf.len() as u32);
        let seq = self.starts.len() as u32;
        self.begin_raw((NFNL_SUBSYS_NFTABLES << 8) | message, flags, seq, 0);
    }

    fn end_message(&mut self) {
        let len = (self.buf.len() - self.message_start) as u32;
        self.buf[self.message_start..self.message_start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    fn attr(&mut self, kind: u16, value: &[u8]) {
        let len = 4 + value.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// A string attribute: NUL-terminated, as the kernel expects.
    fn str(&mut self, kind: u16, value: &str) {
        let len = 4 + value.len() + 1;
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value.as_bytes());
        self.buf.push(0);
        self.pad();
    }

    /// A number attribute: big-endian, as nf_tables expects.
    fn u32(&mut self, kind: u16, value: u32) {
        self.attr(kind, &value.to_be_bytes());
    }

    fn nest(&mut self, kind: u16) {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    }

    fn end_nest(&mut self) {
        let start = self.nests.pop().expect("an open nest");
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    /// `NFTA_DATA_VALUE` inside a nest of `kind`.
    fn data_value(&mut self, kind: u16, value: &[u8]) {
        self.nest(kind);
        self.attr(NFTA_DATA_VALUE, value);
        self.end_nest();
    }

    fn verdict(&mut self, kind: u16, verdict: &Verdict) {
        self.nest(kind);
        self.nest(NFTA_DATA_VERDICT);
        let (code, chain) = match verdict {
            Verdict::Jump(chain) => (NFT_JUMP, Some(chain)),
            Verdict::Goto(chain) => (NFT_GOTO, Some(chain)),
            Verdict::Return => (NFT_RETURN, None),
            Verdict::Drop => (NF_DROP, None),
        };
        self.attr(NFTA_VERDICT_CODE, &code.to_be_bytes());
        if let Some(chain) = chain {
            self.str(NFTA_VERDICT_CHAIN, chain);
        }
        self.end_nest();
        self.end_nest();
    }

    /// nftables' "user data": type-length-value records the kernel keeps
    /// for `nft` without reading them. A comment is record 0.
    fn comment(&mut self, kind: u16, comment: &str) {
        // (Comments are cut to 127 bytes when made: the length fits.)
        let len = 4 + 2 + comment.len() + 1;
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(&[0, (comment.len() + 1) as u8]);
        self.buf.extend_from_slice(comment.as_bytes());
        self.buf.push(0);
        self.pad();
    }

    // --- expressions ---

    /// Starts one expression of a rule: its name, then its attributes.
    fn expr(&mut self, name: &str) {
        self.nest(NFTA_LIST_ELEM);
        self.str(NFTA_EXPR_NAME, name);
        self.nest(NFTA_EXPR_DATA);
    }

    fn end_expr(&mut self) {
        self.end_nest();
        self.end_nest();
    }

    /// `[ payload load LENb @ BASE header + OFFSET => reg DREG ]`
    fn payload(&mut self, base: u32, offset: u32, len: u32, dreg: u32) {
        self.expr("payload");
        self.u32(1, dreg); // NFTA_PAYLOAD_DREG
        self.u32(2, base); // NFTA_PAYLOAD_BASE: 1 network, 2 transport
        self.u32(3, offset); // NFTA_PAYLOAD_OFFSET
        self.u32(4, len); // NFTA_PAYLOAD_LEN
        self.end_expr();
    }

    /// `[ meta load KEY => reg DREG ]` (3 mark, 16 l4proto).
    fn meta_load(&mut self, key: u32, dreg: u32) {
        self.expr("meta");
        self.u32(2, key); // NFTA_META_KEY
        self.u32(1, dreg); // NFTA_META_DREG
        self.end_expr();
    }

    /// `[ cmp eq|neq reg SREG DATA ]`
    fn cmp(&mut self, sreg: u32, negate: bool, data: &[u8]) {
        self.expr("cmp");
        self.u32(1, sreg); // NFTA_CMP_SREG
        self.u32(2, u32::from(negate)); // NFTA_CMP_OP: 0 eq, 1 neq
        self.data_value(3, data); // NFTA_CMP_DATA
        self.end_expr();
    }

    /// `[ bitwise reg 1 = ( reg 1 & MASK ) ^ XOR ]` on 4 bytes.
    fn bitwise(&mut self, mask: &[u8; 4], xor: &[u8; 4]) {
        self.expr("bitwise");
        self.u32(1, REG_1); // NFTA_BITWISE_SREG
        self.u32(2, REG_1); // NFTA_BITWISE_DREG
        self.u32(3, 4); // NFTA_BITWISE_LEN
        self.data_value(4, mask); // NFTA_BITWISE_MASK
        self.data_value(5, xor); // NFTA_BITWISE_XOR
        self.end_expr();
    }

    /// `[ lookup reg SREG set NAME (dreg 0) ]`: a set match, or with
    /// `verdict` a verdict map (the element's verdict goes to register 0).
    fn lookup(&mut self, set: &str, set_id: Option<u32>, verdict: bool) {
        self.expr("lookup");
        self.str(1, set); // NFTA_LOOKUP_SET
        self.u32(2, REG_1); // NFTA_LOOKUP_SREG
        if verdict {
            self.u32(3, REG_VERDICT); // NFTA_LOOKUP_DREG
        }
        if let Some(id) = set_id {
            self.u32(4, id); // NFTA_LOOKUP_SET_ID
        }
        self.end_expr();
    }

    /// `[ immediate reg DREG DATA ]`
    fn immediate(&mut self, dreg: u32, data: &[u8]) {
        self.expr("immediate");
        self.u32(1, dreg); // NFTA_IMMEDIATE_DREG
        self.data_value(2, data); // NFTA_IMMEDIATE_DATA
        self.end_expr();
    }

    /// `ip saddr|daddr [!=] NET`: load as many bytes as the prefix covers
    /// (a /16 is a 2-byte compare), or mask when it is not whole bytes.
    fn ip_match(&mut self, addr: Addr, negate: bool, net: &ipnet::Ipv4Net) {
        let offset = match addr {
            Addr::Saddr => 12,
            Addr::Daddr => 16,
        };
        let prefix = net.prefix_len();
        let octets = net.network().octets();
        if prefix > 0 && prefix.is_multiple_of(8) {
            let len = u32::from(prefix / 8);
            self.payload(1, offset, len, REG_1);
            self.cmp(REG_1, negate, &octets[..len as usize]);
        } else {
            self.payload(1, offset, 4, REG_1);
            self.bitwise(&net.netmask().octets(), &[0; 4]);
            self.cmp(REG_1, negate, &octets);
        }
    }

    fn stmt(&mut self, stmt: &Stmt, anonymous_sets: &mut Vec<u32>) {
        match stmt {
            Stmt::CtStateNew => {
                self.expr("ct");
                self.u32(2, 0); // NFTA_CT_KEY: NFT_CT_STATE
                self.u32(1, REG_1); // NFTA_CT_DREG
                self.end_expr();
                // ct state is a bit field in host order; "new" is bit 3.
                self.bitwise(&8u32.to_ne_bytes(), &[0; 4]);
                self.cmp(REG_1, true, &[0; 4]);
            }
            Stmt::Ip { addr, negate, net } => self.ip_match(*addr, *negate, net),
            Stmt::IpInSet { addr, set } => {
                let offset = if *addr == Addr::Saddr { 12 } else { 16 };
                self.payload(1, offset, 4, REG_1);
                self.lookup(set, None, false);
            }
            Stmt::L4Proto(proto) => {
                self.meta_load(16, REG_1);
                self.cmp(REG_1, false, &[proto.number()]);
            }
            Stmt::L4ProtoIn(_) => {
                self.meta_load(16, REG_1);
                let id = anonymous_sets.remove(0);
                self.lookup("__set%d", Some(id), false);
            }
            Stmt::Dport(proto, port) => {
                // `tcp dport` implies `meta l4proto tcp`: nft writes both,
                // and hides the first again when it prints the rule.
                self.meta_load(16, REG_1);
                self.cmp(REG_1, false, &[proto.number()]);
                self.payload(2, 2, 2, REG_1);
                self.cmp(REG_1, false, &port.to_be_bytes());
            }
            Stmt::FibLocal(addr) => {
                self.expr("fib");
                self.u32(1, REG_1); // NFTA_FIB_DREG
                self.u32(2, 3); // NFTA_FIB_RESULT: address type
                self.u32(3, if *addr == Addr::Saddr { 1 } else { 2 }); // NFTA_FIB_FLAGS
                self.end_expr();
                self.cmp(REG_1, false, &2u32.to_ne_bytes()); // RTN_LOCAL
            }
            Stmt::ClusterIpVmap(map) => {
                // The key `daddr . l4proto . dport` is built in registers
                // 8, 9 and 10, each field in its own 4 bytes.
                self.payload(1, 16, 4, REG_1);
                self.meta_load(16, REG32_01);
                self.payload(2, 2, 2, REG32_02);
                self.lookup(map, None, true);
            }
            Stmt::NodePortVmap(map) => {
                self.meta_load(16, REG_1);
                self.payload(2, 2, 2, REG32_01);
                self.lookup(map, None, true);
            }
            Stmt::NumgenIsZero { modulus } => {
                self.expr("numgen");
                self.u32(1, REG_1); // NFTA_NG_DREG
                self.u32(2, *modulus); // NFTA_NG_MODULUS
                self.u32(3, 1); // NFTA_NG_TYPE: random
                self.end_expr();
                // The number is in host order.
                self.cmp(REG_1, false, &0u32.to_ne_bytes());
            }
            Stmt::MarkClear(mask) => {
                self.meta_load(3, REG_1);
                self.bitwise(&mask.to_ne_bytes(), &[0; 4]);
                self.cmp(REG_1, false, &[0; 4]);
            }
            Stmt::MarkSetOr(bits) | Stmt::MarkSetXor(bits) => {
                // mark | bits is (mark & !bits) ^ bits; mark ^ bits is
                // (mark & all) ^ bits.
                let mask = if matches!(stmt, Stmt::MarkSetOr(_)) {
                    !bits
                } else {
                    u32::MAX
                };
                self.meta_load(3, REG_1);
                self.bitwise(&mask.to_ne_bytes(), &bits.to_ne_bytes());
                self.expr("meta");
                self.u32(2, 3); // NFTA_META_KEY: mark
                self.u32(3, REG_1); // NFTA_META_SREG
                self.end_expr();
            }
            Stmt::UpdateSaddr(set) => {
                self.payload(1, 12, 4, REG_1);
                self.expr("dynset");
                self.str(1, set); // NFTA_DYNSET_SET_NAME
                self.u32(3, 1); // NFTA_DYNSET_OP: update
                self.u32(4, REG_1); // NFTA_DYNSET_SREG_KEY
                self.end_expr();
            }
            Stmt::Dnat(ip, port) => {
                self.immediate(REG_1, &ip.octets());
                self.immediate(REG_2, &port.to_be_bytes());
                self.expr("nat");
                self.u32(1, 1); // NFTA_NAT_TYPE: dnat
                self.u32(2, u32::from(NFPROTO_IPV4)); // NFTA_NAT_FAMILY
                self.u32(3, REG_1); // NFTA_NAT_REG_ADDR_MIN
                self.u32(5, REG_2); // NFTA_NAT_REG_PROTO_MIN
                self.u32(7, 2); // NFTA_NAT_FLAGS: port given
                self.end_expr();
            }
            Stmt::MasqueradeFullyRandom => {
                self.expr("masq");
                self.u32(1, 0x10); // NFTA_MASQ_FLAGS: fully random
                self.end_expr();
            }
            Stmt::RejectTcpReset | Stmt::RejectPortUnreachable => {
                let (kind, code) = if *stmt == Stmt::RejectTcpReset {
                    (1, 0) // TCP reset
                } else {
                    (0, 3) // ICMP port unreachable
                };
                self.expr("reject");
                self.u32(1, kind); // NFTA_REJECT_TYPE
                self.attr(2, &[code]); // NFTA_REJECT_ICMP_CODE
                self.end_expr();
            }
            Stmt::Verdict(verdict) => {
                self.expr("immediate");
                self.u32(1, REG_VERDICT);
                self.verdict(2, verdict); // NFTA_IMMEDIATE_DATA
                self.end_expr();
            }
        }
    }

    /// `meta l4proto { tcp, udp, sctp }` needs its anonymous set first: a
    /// constant set the kernel names (`__set%d`) and the rule finds by id.
    fn anonymous_protocol_set(&mut self, protos: &[Proto]) -> u32 {
        let id = self.next_set_id;
        self.next_set_id += 1;
        self.begin(NFT_MSG_NEWSET, NLM_F_CREATE);
        self.str(NFTA_SET_TABLE, TABLE);
        self.str(NFTA_SET_NAME, "__set%d");
        self.u32(NFTA_SET_FLAGS, NFT_SET_ANONYMOUS | NFT_SET_CONSTANT);
        self.u32(NFTA_SET_KEY_TYPE, TYPE_INET_PROTOCOL);
        self.u32(NFTA_SET_KEY_LEN, 1);
        self.u32(NFTA_SET_ID, id);
        self.nest(NFTA_SET_DESC);
        self.u32(NFTA_SET_DESC_SIZE, protos.len() as u32);
        self.end_nest();
        // Host byte order, and "typeof meta l4proto" for nft's printing.
        let mut udata = vec![];
        udata_record(&mut udata, 0, &1u32.to_ne_bytes());
        let mut typeof_ = vec![];
        udata_record(&mut typeof_, 0, &9u32.to_ne_bytes()); // nft's EXPR_META
        let mut meta = vec![];
        udata_record(&mut meta, 0, &16u32.to_ne_bytes()); // l4proto
        udata_record(&mut typeof_, 1, &meta);
        udata_record(&mut udata, 3, &typeof_);
        self.attr(NFTA_SET_USERDATA, &udata);
        self.end_message();

        self.begin(NFT_MSG_NEWSETELEM, NLM_F_CREATE);
        self.str(NFTA_SET_ELEM_LIST_TABLE, TABLE);
        self.str(NFTA_SET_ELEM_LIST_SET, "__set%d");
        self.u32(NFTA_SET_ELEM_LIST_SET_ID, id);
        self.nest(NFTA_SET_ELEM_LIST_ELEMENTS);
        for proto in protos {
            self.nest(NFTA_LIST_ELEM);
            self.data_value(NFTA_SET_ELEM_KEY, &[proto.number()]);
            self.end_nest();
        }
        self.end_nest();
        self.end_message();
        id
    }

    // --- elements ---

    /// Adds an element to the open element message of the same set and
    /// kind, or opens a new one: a map's elements travel together, as nft
    /// sends them.
    fn element_message(&mut self, set: &str, add: bool) {
        if let Some((open_set, open_add, start)) = &self.open_elements {
            if open_set == set && *open_add == add && self.buf.len() - start < MAX_ELEMENTS_BYTES {
                return;
            }
        }
        self.close_elements();
        if add {
            self.begin(NFT_MSG_NEWSETELEM, NLM_F_CREATE);
        } else {
            self.begin(NFT_MSG_DELSETELEM, 0);
        }
        self.str(NFTA_SET_ELEM_LIST_TABLE, TABLE);
        self.str(NFTA_SET_ELEM_LIST_SET, set);
        let start = self.buf.len();
        self.nest(NFTA_SET_ELEM_LIST_ELEMENTS);
        self.open_elements = Some((set.to_string(), add, start));
    }

    fn close_elements(&mut self) {
        if self.open_elements.take().is_some() {
            self.end_nest();
            self.end_message();
        }
    }

    fn key(&mut self, key: &Key) {
        // Each field of a concatenation takes a whole number of 4-byte
        // registers.
        let mut bytes = Vec::with_capacity(12);
        match key {
            Key::ClusterIpPort(ip, proto, port) => {
                bytes.extend_from_slice(&ip.octets());
                bytes.extend_from_slice(&[proto.number(), 0, 0, 0]);
                bytes.extend_from_slice(&port.to_be_bytes());
                bytes.extend_from_slice(&[0, 0]);
            }
            Key::NodePort(proto, port) => {
                bytes.extend_from_slice(&[proto.number(), 0, 0, 0]);
                bytes.extend_from_slice(&port.to_be_bytes());
                bytes.extend_from_slice(&[0, 0]);
            }
            Key::Address(ip) => bytes.extend_from_slice(&ip.octets()),
        }
        self.data_value(NFTA_SET_ELEM_KEY, &bytes);
    }
}

impl Transaction for Batch {
    fn add_table(&mut self) {
        self.commands += 1;
        self.begin(NFT_MSG_NEWTABLE, NLM_F_CREATE);
        self.str(NFTA_TABLE_NAME, TABLE);
        self.u32(NFTA_TABLE_FLAGS, 0);
        self.comment(NFTA_TABLE_USERDATA, TABLE_COMMENT);
        self.end_message();
    }

    fn delete_table(&mut self) {
        self.commands += 1;
        self.begin(NFT_MSG_DELTABLE, 0);
        self.str(NFTA_TABLE_NAME, TABLE);
        self.end_message();
    }

    fn add_set(&mut self, name: &str, set: SetType, comment: &str) {
        self.commands += 1;
        self.begin(NFT_MSG_NEWSET, NLM_F_CREATE);
        self.str(NFTA_SET_TABLE, TABLE);
        self.str(NFTA_SET_NAME, name);
        let (mut flags, key_type, key_len) = match set {
            SetType::ClusterIpPortVmap => (
                NFT_SET_MAP,
                (TYPE_IPADDR << 12) | (TYPE_INET_PROTOCOL << 6) | TYPE_INET_SERVICE,
                12,
            ),
            SetType::NodePortVmap => (
                NFT_SET_MAP,
                (TYPE_INET_PROTOCOL << 6) | TYPE_INET_SERVICE,
                8,
            ),
            SetType::Addresses | SetType::RecentAddresses { .. } => (0, TYPE_IPADDR, 4),
        };
        if let SetType::RecentAddresses { .. } = set {
            flags |= NFT_SET_TIMEOUT | NFT_SET_EVAL;
        }
        self.u32(NFTA_SET_FLAGS, flags);
        self.u32(NFTA_SET_KEY_TYPE, key_type);
        self.u32(NFTA_SET_KEY_LEN, key_len);
        // The kernel wants an id on every new set (rules of the same batch
        // may refer to it by id); ours refer by name.
        self.u32(NFTA_SET_ID, self.next_set_id);
        self.next_set_id += 1;
        if flags & NFT_SET_MAP != 0 {
            self.u32(NFTA_SET_DATA_TYPE, NFT_DATA_VERDICT);
            self.u32(NFTA_SET_DATA_LEN, 0);
        }
        if let SetType::RecentAddresses { timeout_seconds } = set {
            let ms = u64::from(timeout_seconds) * 1000;
            self.attr(NFTA_SET_TIMEOUT, &ms.to_be_bytes());
        }
        self.attr(NFTA_SET_USERDATA, &set_udata(set, comment));
        self.end_message();
    }

    fn delete_set(&mut self, name: &str, _set: SetType) {
        self.commands += 1;
        self.begin(NFT_MSG_DELSET, 0);
        self.str(NFTA_SET_TABLE, TABLE);
        self.str(NFTA_SET_NAME, name);
        self.end_message();
    }

    fn add_chain(&mut self, name: &str, hook: Option<Hook>, comment: &str) {
        self.commands += 1;
        self.begin(NFT_MSG_NEWCHAIN, NLM_F_CREATE);
        self.str(NFTA_CHAIN_TABLE, TABLE);
        self.str(NFTA_CHAIN_NAME, name);
        if let Some(hook) = hook {
            self.str(NFTA_CHAIN_TYPE, if hook.nat { "nat" } else { "filter" });
            self.nest(NFTA_CHAIN_HOOK);
            self.u32(NFTA_HOOK_HOOKNUM, hook.point.number());
            self.attr(NFTA_HOOK_PRIORITY, &hook.priority.to_be_bytes());
            self.end_nest();
        }
        self.comment(NFTA_CHAIN_USERDATA, comment);
        self.end_message();
    }

    fn flush_chain(&mut self, name: &str) {
        // Deleting rules without naming one deletes them all.
        self.commands += 1;
        self.begin(NFT_MSG_DELRULE, 0);
        self.str(NFTA_RULE_TABLE, TABLE);
        self.str(NFTA_RULE_CHAIN, name);
        self.end_message();
    }

    fn delete_chain(&mut self, name: &str) {
        self.commands += 1;
        self.begin(NFT_MSG_DELCHAIN, 0);
        self.str(NFTA_CHAIN_TABLE, TABLE);
        self.str(NFTA_CHAIN_NAME, name);
        self.end_message();
    }

    fn add_rule(&mut self, chain: &str, rule: &Rule) {
        self.commands += 1;
        let mut anonymous_sets = vec![];
        for stmt in &rule.stmts {
            if let Stmt::L4ProtoIn(protos) = stmt {
                anonymous_sets.push(self.anonymous_protocol_set(protos));
            }
        }
        self.begin(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND);
        self.str(NFTA_RULE_TABLE, TABLE);
        self.str(NFTA_RULE_CHAIN, chain);
        self.nest(NFTA_RULE_EXPRESSIONS);
        for stmt in &rule.stmts {
            self.stmt(stmt, &mut anonymous_sets);
        }
        self.end_nest();
        self.comment(NFTA_RULE_USERDATA, &rule.comment);
        self.end_message();
    }

    fn add_element(&mut self, set: &str, key: &Key, value: Option<&Verdict>, comment: &str) {
        self.commands += 1;
        self.element_message(set, true);
        self.nest(NFTA_LIST_ELEM);
        self.key(key);
        if let Some(value) = value {
            self.verdict(NFTA_SET_ELEM_DATA, value);
        }
        self.comment(NFTA_SET_ELEM_USERDATA, comment);
        self.end_nest();
    }

    fn delete_element(&mut self, set: &str, key: &Key) {
        self.commands += 1;
        self.element_message(set, false);
        self.nest(NFTA_LIST_ELEM);
        self.key(key);
        self.end_nest();
    }

    fn len(&self) -> usize {
        self.commands
    }
}

fn nul_terminated(text: &str) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    bytes.push(0);
    bytes
}

/// One user data record: type, length (one byte each), value.
fn udata_record(out: &mut Vec<u8>, kind: u8, value: &[u8]) {
    out.push(kind);
    out.push(value.len() as u8);
    out.extend_from_slice(value);
}

/// What nft 1.0.6 stores with a set for its own printing: the byte order
/// of keys and values, what the key is "typeof", and the comment.
fn set_udata(set: SetType, comment: &str) -> Vec<u8> {
    let mut udata = vec![];
    let u32_ = |v: u32| v.to_ne_bytes();
    match set {
        SetType::ClusterIpPortVmap | SetType::NodePortVmap => {
            udata_record(&mut udata, 0, &u32_(0)); // key byte order: mixed
            udata_record(&mut udata, 1, &u32_(0)); // data byte order
                                                   // "typeof" a concatenation (nft's EXPR_CONCAT, 13) of nothing:
                                                   // nft prints the declared `type` instead.
            let mut concat = vec![];
            udata_record(&mut concat, 0, &u32_(13));
            udata_record(&mut concat, 1, &[]);
            udata_record(&mut udata, 3, &concat);
            udata_record(&mut udata, 6, &u32_(0)); // data is no interval
        }
        SetType::Addresses | SetType::RecentAddresses { .. } => {
            udata_record(&mut udata, 0, &u32_(2)); // key byte order: big endian
        }
    }
    udata_record(&mut udata, 7, &nul_terminated(comment));
    udata
}

/// How long to wait for the kernel's answer (it comes during the `send`;
/// this only bounds a kernel that never answers).
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// A netlink socket to nf_tables, in the agent's network namespace or in a
/// named one.
#[derive(Debug)]
pub struct Socket {
    fd: OwnedFd,
}

impl Socket {
    /// Opens the socket; with `netns`, inside `/run/netns/<netns>` (a
    /// netlink socket belongs to the namespace it was created in, so a
    /// short-lived thread enters the namespace, creates it and leaves).
    pub fn open(netns: Option<&str>) -> Result<Socket, NetlinkError> {
        let Some(netns) = netns else {
            return Socket::open_here();
        };
        let path = format!("/run/netns/{netns}");
        let file = File::open(&path).map_err(|source| NetlinkError::Netns {
            netns: netns.to_string(),
            source,
        })?;
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(
                        |errno| NetlinkError::Netns {
                            netns: netns.to_string(),
                            source: errno.into(),
                        },
                    )?;
                    Socket::open_here()
                })
                .join()
                .unwrap_or_else(|_| Err(NetlinkError::NoAnswer))
        })
    }

    fn open_here() -> Result<Socket, NetlinkError> {
        let system = |action: &str| {
            let action = action.to_string();
            move |source| NetlinkError::System { action, source }
        };
        let fd = socket::socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            socket::SockProtocol::NetlinkNetFilter,
        )
        .map_err(system("opening a netlink socket to nf_tables"))?;
        socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))
            .map_err(system("binding the nf_tables socket"))?;
        // Room for many error messages, should a big transaction fail, and
        // each of them only as long as a header (by default an error
        // carries a copy of the whole failed message).
        socket::setsockopt(&fd, sockopt::RcvBufForce, &(4 << 20))
            .map_err(system("sizing the nf_tables socket"))?;
        let on: nix::libc::c_int = 1;
        // SAFETY: `fd` is an open socket, and the option value is a c_int
        // of the size given.
        let rc = unsafe {
            nix::libc::setsockopt(
                fd.as_raw_fd(),
                nix::libc::SOL_NETLINK,
                NETLINK_CAP_ACK,
                (&on as *const nix::libc::c_int).cast(),
                std::mem::size_of::<nix::libc::c_int>() as nix::libc::socklen_t,
            )
        };
        Errno::result(rc).map_err(system("asking for short error messages"))?;
        let timeout = nix::sys::time::TimeVal::new(RECEIVE_TIMEOUT.as_secs() as i64, 0);
        socket::setsockopt(&fd, sockopt::ReceiveTimeout, &timeout)
            .map_err(system("setting the nf_tables socket's timeout"))?;
        Ok(Socket { fd })
    }

    /// Sends the batch as one transaction and waits for the kernel's
    /// verdict on it. Blocking: the kernel does all the work during the
    /// `send`.
    pub fn commit(&self, batch: Batch) -> Result<(), NetlinkError> {
        let (buf, starts, commands) = batch.finish();
        if starts.is_empty() {
            return Ok(());
        }
        let last_seq = starts.len() as u32;
        // The whole batch must go in one message of the socket.
        socket::setsockopt(&self.fd, sockopt::SndBufForce, &(buf.len() + 4096)).map_err(
            |source| NetlinkError::System {
                action: "sizing the nf_tables socket for the batch".into(),
                source,
            },
        )?;
        socket::send(self.fd.as_raw_fd(), &buf, MsgFlags::empty()).map_err(|source| {
            NetlinkError::System {
                action: format!("sending a transaction of {} bytes", buf.len()),
                source,
            }
        })?;
        // The kernel answered during the `send`: every answer is already
        // queued, so read without waiting until there is none left.
        let mut failure = None;
        let mut acked = false;
        let overflowed = self.read_answers(MsgFlags::MSG_DONTWAIT, |kind, seq, payload| {
            if kind != NLMSG_ERROR {
                return true;
            }
            let code = i32::from_ne_bytes(payload[..4].try_into().unwrap_or_default());
            if code != 0 && failure.is_none() {
                failure = Some((seq, Errno::from_raw(-code)));
            }
            // A batch the kernel could not even start is answered at the
            // BATCH_BEGIN (sequence 0).
            acked |= seq == last_seq || seq == 0;
            true
        })?;
        // Answers beyond the socket's buffer are dropped (the first ones
        // stay): only a failing batch has that many.
        if overflowed && failure.is_none() {
            failure = Some((0, Errno::ENOBUFS));
        }
        if let Some((seq, errno)) = failure {
            return Err(NetlinkError::Rejected {
                commands,
                message: describe(&buf, &starts, seq),
                errno,
            });
        }
        if !acked {
            return Err(NetlinkError::NoAnswer);
        }
        Ok(())
    }

    /// How many rules the chain has now (0 when the table or the chain
    /// does not exist). The drift probe: `nft flush table` leaves the
    /// dispatch chain empty.
    pub fn rule_count(&self, chain: &str) -> Result<usize, NetlinkError> {
        let mut request = Batch::messages(128);
        request.begin(NFT_MSG_GETRULE, NLM_F_DUMP);
        request.str(NFTA_RULE_TABLE, TABLE);
        request.str(NFTA_RULE_CHAIN, chain);
        request.end_message();
        socket::send(self.fd.as_raw_fd(), &request.buf, MsgFlags::empty()).map_err(|source| {
            NetlinkError::System {
                action: format!("asking for the rules of chain {chain}"),
                source,
            }
        })?;
        let mut count = 0;
        // A dump is sent piece by piece as it is read: wait for each.
        self.read_answers(MsgFlags::empty(), |kind, _seq, _payload| match kind {
            NLMSG_DONE | NLMSG_ERROR => false,
            _ => {
                count += 1;
                true
            }
        })?;
        Ok(count)
    }

    /// Reads netlink messages, giving each (type, sequence number, payload)
    /// to `each` until it returns false - or, with `MSG_DONTWAIT`, until
    /// none is left. Returns whether the kernel dropped answers that did
    /// not fit the socket's buffer.
    fn read_answers(
        &self,
        flags: MsgFlags,
        mut each: impl FnMut(u16, u32, &[u8]) -> bool,
    ) -> Result<bool, NetlinkError> {
        let mut buf = vec![0u8; 1 << 20];
        let mut overflowed = false;
        loop {
            let n = match socket::recv(self.fd.as_raw_fd(), &mut buf, flags) {
                Ok(n) => n,
                Err(Errno::EAGAIN) if flags.contains(MsgFlags::MSG_DONTWAIT) => {
                    return Ok(overflowed)
                }
                Err(Errno::EAGAIN) => return Err(NetlinkError::NoAnswer),
                Err(Errno::ENOBUFS) => {
                    overflowed = true;
                    continue;
                }
                Err(Errno::EINTR) => continue,
                Err(source) => {
                    return Err(NetlinkError::System {
                        action: "reading the kernel's answer".into(),
                        source,
                    })
                }
            };
            let mut at = 0;
            while at + 16 <= n {
                let len =
                    u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap_or_default()) as usize;
                if len < 16 || at + len > n {
                    break;
                }
                let kind = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
                let seq = u32::from_ne_bytes(buf[at + 8..at + 12].try_into().unwrap_or_default());
                if !each(kind, seq, &buf[at + 16..at + len]) {
                    return Ok(overflowed);
                }
                at += (len + 3) & !3;
            }
        }
    }
}

/// "add rule to chain X", from the failed message's bytes.
fn describe(buf: &[u8], starts: &[u32], seq: u32) -> String {
    let Some(start) = seq.checked_sub(1).and_then(|i| starts.get(i as usize)) else {
        return "the batch".into();
    };
    let start = *start as usize;
    let len = u32::from_ne_bytes(buf[start..start + 4].try_into().unwrap_or_default()) as usize;
    let kind = u16::from_ne_bytes([buf[start + 4], buf[start + 5]]) & 0xff;
    let (what, name_attr) = match kind {
        NFT_MSG_NEWTABLE => ("add table", NFTA_TABLE_NAME),
        NFT_MSG_DELTABLE => ("delete table", NFTA_TABLE_NAME),
        NFT_MSG_NEWCHAIN => ("add chain", NFTA_CHAIN_NAME),
        NFT_MSG_DELCHAIN => ("delete chain", NFTA_CHAIN_NAME),
        NFT_MSG_NEWRULE => ("add rule to chain", NFTA_RULE_CHAIN),
        NFT_MSG_DELRULE => ("flush chain", NFTA_RULE_CHAIN),
        NFT_MSG_NEWSET => ("add set", NFTA_SET_NAME),
        NFT_MSG_DELSET => ("delete set", NFTA_SET_NAME),
        NFT_MSG_NEWSETELEM => ("add elements to", NFTA_SET_ELEM_LIST_SET),
        NFT_MSG_DELSETELEM => ("delete elements from", NFTA_SET_ELEM_LIST_SET),
        _ => ("message", 0),
    };
    // The top-level attributes follow the 16-byte header and 4-byte nfgenmsg.
    let mut at = start + 20;
    let end = (start + len).min(buf.len());
    while at + 4 <= end {
        let attr_len = u16::from_ne_bytes([buf[at], buf[at + 1]]) as usize;
        let attr_type = u16::from_ne_bytes([buf[at + 2], buf[at + 3]]) & !NLA_F_NESTED;
        if attr_len < 4 {
            break;
        }
        if attr_type == name_attr {
            let value = &buf[at + 4..(at + attr_len).min(end)];
            let name = String::from_utf8_lossy(value.split(|b| *b == 0).next().unwrap_or_default());
            return format!("{what} {name}");
        }
        at += (attr_len + 3) & !3;
    }
    what.to_string()
}

#[cfg(test)]
mod tests {
    //! These tests program real tables, in network namespaces they create
    //! (`ip netns add`), and need root.
    use super::*;
    use crate::proxy::nftables::{HookPoint, Script};
    use std::process::Command;

    /// A network namespace for one test, deleted when dropped.
    struct Netns(String);

    impl Netns {
        fn new(tag: &str) -> Netns {
            let name = format!("klnl{}-{tag}", std::process::id());
            let status = Command::new("ip").args(["netns", "add", &name]).status();
            assert!(
                status.is_ok_and(|s| s.success()),
                "ip netns add {name} (root?)"
            );
            Netns(name)
        }

        fn nft(&self, args: &[&str], stdin: Option<&str>) -> String {
            use std::io::Write as _;
            let mut child = Command::new("ip")
                .args(["netns", "exec", &self.0, "nft"])
                .args(args)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("nft");
            let mut input = child.stdin.take().unwrap();
            input
                .write_all(stdin.unwrap_or_default().as_bytes())
                .unwrap();
            drop(input);
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "nft {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    }

    impl Drop for Netns {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }

    /// One of everything the proxy writes.
    fn everything(tx: &mut impl Transaction) {
        let ip = |s: &str| s.parse().unwrap();
        tx.add_table();
        tx.delete_table();
        tx.add_table();
        tx.add_set(
            "service-ips",
            SetType::ClusterIpPortVmap,
            "ClusterIP traffic",
        );
        tx.add_set("service-nodeports", SetType::NodePortVmap, "NodePorts");
        tx.add_set("cluster-ips", SetType::Addresses, "ClusterIPs in use");
        tx.add_set(
            "affinity-X",
            SetType::RecentAddresses {
                timeout_seconds: 60,
            },
            "recent clients",
        );
        tx.add_chain(
            "nat-output",
            Some(Hook {
                nat: true,
                point: HookPoint::Output,
                priority: -100,
            }),
            "base",
        );
        tx.add_chain(
            "filter-forward",
            Some(Hook {
                nat: false,
                point: HookPoint::Forward,
                priority: -110,
            }),
            "filter",
        );
        tx.add_chain(
            "nat-postrouting",
            Some(Hook {
                nat: true,
                point: HookPoint::Postrouting,
                priority: 100,
            }),
            "leaving",
        );
        for chain in [
            "services",
            "mark-for-masquerade",
            "masquerading",
            "reject-chain",
            "service-X",
            "endpoint-A",
            "endpoint-B",
        ] {
            tx.add_chain(chain, None, &format!("the {chain} chain"));
        }
        let rule = |stmts: Vec<Stmt>, comment: &str| Rule::new(stmts, comment);
        let jump = |c: &str| Stmt::Verdict(Verdict::Jump(c.into()));
        let goto = |c: &str| Stmt::Verdict(Verdict::Goto(c.into()));
        tx.add_rule("nat-output", &rule(vec![jump("services")], "dispatch"));
        tx.add_rule(
            "filter-forward",
            &rule(vec![Stmt::CtStateNew, jump("reject-chain")], "new"),
        );
        tx.add_rule(
            "filter-forward",
            &rule(
                vec![
                    Stmt::IpInSet {
                        addr: Addr::Daddr,
                        set: "cluster-ips".into(),
                    },
                    Stmt::L4ProtoIn(vec![Proto::Tcp, Proto::Udp, Proto::Sctp]),
                    goto("reject-chain"),
                ],
                "unknown ports",
            ),
        );
        tx.add_rule(
            "filter-forward",
            &rule(
                vec![
                    Stmt::Ip {
                        addr: Addr::Daddr,
                        negate: false,
                        net: ip("10.96.0.0/12"),
                    },
                    Stmt::Verdict(Verdict::Drop),
                ],
                "service range",
            ),
        );
        tx.add_rule(
            "services",
            &rule(
                vec![Stmt::ClusterIpVmap("service-ips".into())],
                "ClusterIPs",
            ),
        );
        tx.add_rule(
            "services",
            &rule(
                vec![
                    Stmt::FibLocal(Addr::Daddr),
                    Stmt::Ip {
                        addr: Addr::Daddr,
                        negate: true,
                        net: ip("127.0.0.0/8"),
                    },
                    Stmt::NodePortVmap("service-nodeports".into()),
                ],
                "NodePorts",
            ),
        );
        tx.add_rule(
            "mark-for-masquerade",
            &rule(vec![Stmt::MarkSetOr(0x4000)], "mark"),
        );
        tx.add_rule(
            "nat-postrouting",
            &rule(vec![jump("masquerading")], "masquerade"),
        );
        tx.add_rule(
            "masquerading",
            &rule(
                vec![Stmt::MarkClear(0x4000), Stmt::Verdict(Verdict::Return)],
                "unmarked",
            ),
        );
        tx.add_rule(
            "masquerading",
            &rule(vec![Stmt::MarkSetXor(0x4000)], "clear"),
        );
        tx.add_rule(
            "masquerading",
            &rule(vec![Stmt::MasqueradeFullyRandom], "masquerade"),
        );
        tx.add_rule(
            "reject-chain",
            &rule(vec![Stmt::L4Proto(Proto::Tcp), Stmt::RejectTcpReset], "tcp"),
        );
        tx.add_rule(
            "reject-chain",
            &rule(vec![Stmt::RejectPortUnreachable], "udp"),
        );
        tx.add_rule(
            "service-X",
            &rule(
                vec![
                    Stmt::Ip {
                        addr: Addr::Daddr,
                        negate: false,
                        net: ip("10.96.0.50/32"),
                    },
                    Stmt::Dport(Proto::Tcp, 80),
                    Stmt::Ip {
                        addr: Addr::Saddr,
                        negate: true,
                        net: ip("10.244.0.0/16"),
                    },
                    jump("mark-for-masquerade"),
                ],
                "off-cluster",
            ),
        );
        tx.add_rule(
            "service-X",
            &rule(
                vec![
                    Stmt::IpInSet {
                        addr: Addr::Saddr,
                        set: "affinity-X".into(),
                    },
                    goto("endpoint-A"),
                ],
                "affinity",
            ),
        );
        tx.add_rule(
            "service-X",
            &rule(
                vec![
                    Stmt::FibLocal(Addr::Saddr),
                    Stmt::Ip {
                        addr: Addr::Saddr,
                        negate: false,
                        net: ip("10.244.0.0/16"),
                    },
                    Stmt::NumgenIsZero { modulus: 2 },
                    goto("endpoint-A"),
                ],
                "1 in 2",
            ),
        );
        tx.add_rule("service-X", &rule(vec![goto("endpoint-B")], "the rest"));
        for (chain, ep) in [("endpoint-A", "10.244.1.5"), ("endpoint-B", "10.244.2.7")] {
            tx.add_rule(
                chain,
                &rule(
                    vec![
                        Stmt::Ip {
                            addr: Addr::Saddr,
                            negate: false,
                            net: ip(&format!("{ep}/32")),
                        },
                        jump("mark-for-masquerade"),
                    ],
                    "hairpin",
                ),
            );
            tx.add_rule(
                chain,
                &rule(vec![Stmt::UpdateSaddr("affinity-X".into())], "remember"),
            );
            tx.add_rule(
                chain,
                &rule(
                    vec![
                        Stmt::L4Proto(Proto::Udp),
                        Stmt::Dnat(ep.parse().unwrap(), 53),
                    ],
                    &format!("-> {ep}:53"),
                ),
            );
        }
        let a = "10.96.0.50".parse().unwrap();
        tx.add_element(
            "service-ips",
            &Key::ClusterIpPort(a, Proto::Tcp, 80),
            Some(&Verdict::Goto("service-X".into())),
            "default/ngx-svc:80",
        );
        tx.add_element(
            "service-ips",
            &Key::ClusterIpPort("10.96.0.60".parse().unwrap(), Proto::Udp, 53),
            Some(&Verdict::Drop),
            "dns",
        );
        tx.add_element(
            "service-nodeports",
            &Key::NodePort(Proto::Tcp, 30080),
            Some(&Verdict::Goto("service-X".into())),
            "nodeport",
        );
        tx.add_element("cluster-ips", &Key::Address(a), None, "default/ngx-svc");
    }

    #[test]
    fn netlink_writes_what_nft_writes() {
        let by_nft = Netns::new("nft");
        let by_netlink = Netns::new("nl");
        let mut script = Script::default();
        everything(&mut script);
        by_nft.nft(&["-f", "-"], Some(&script.text));
        let mut batch = Batch::new();
        everything(&mut batch);
        assert_eq!(batch.len(), script.len());
        let socket = Socket::open(Some(&by_netlink.0)).unwrap();
        socket.commit(batch).unwrap();
        let list = ["list", "table", "ip", TABLE];
        let expected = by_nft.nft(&list, None);
        assert_eq!(by_netlink.nft(&list, None), expected);
        // The same again, field by field: the expressions as the kernel
        // holds them. (Sorted: a hash set lists its elements in an order
        // of its own.)
        let debug = ["--debug=netlink", "list", "table", "ip", TABLE];
        let sorted = |text: String| {
            let mut lines: Vec<String> = text.lines().map(String::from).collect();
            lines.sort();
            lines
        };
        assert_eq!(
            sorted(by_netlink.nft(&debug, None)),
            sorted(by_nft.nft(&debug, None))
        );
        assert_eq!(socket.rule_count("services").unwrap(), 2);
        assert_eq!(socket.rule_count("nonexistent").unwrap(), 0);
        by_netlink.nft(&["flush", "table", "ip", TABLE], None);
        assert_eq!(socket.rule_count("services").unwrap(), 0);
    }

    #[test]
    fn a_failed_transaction_changes_nothing_and_says_why() {
        let ns = Netns::new("fail");
        let socket = Socket::open(Some(&ns.0)).unwrap();
        let node = crate::proxy::rules::NodeContext {
            node_name: "node1".into(),
            cluster_cidr: "10.244.0.0/16".parse().unwrap(),
            service_cidr: "10.96.0.0/12".parse().unwrap(),
            node_labels: Default::default(),
        };
        let mut batch = Batch::new();
        crate::proxy::sync::full_transaction(
            &mut batch,
            std::iter::once(crate::proxy::rules::base_ruleset(&node)),
        );
        socket.commit(batch).expect("the base table applies");
        let list = ["list", "table", "ip", TABLE];
        let before = ns.nft(&list, None);
        let mut batch = Batch::new();
        batch.add_chain("b", None, "b");
        batch.add_rule(
            "b",
            &Rule::new(vec![Stmt::Verdict(Verdict::Jump("missing".into()))], "bad"),
        );
        let error = socket.commit(batch).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("add rule to chain b") && text.contains("nothing changed"),
            "{text}"
        );
        assert!(
            matches!(
                error,
                NetlinkError::Rejected {
                    errno: Errno::ENOENT,
                    ..
                }
            ),
            "{text}"
        );
        // Chain b was in the same transaction: nothing of it is there.
        assert_eq!(ns.nft(&list, None), before);
        // A big transaction where everything fails still names the first
        // failure (the answers are short enough to fit the socket).
        let mut batch = Batch::new();
        for i in 0..20_000 {
            batch.add_rule(
                "services",
                &Rule::new(
                    vec![Stmt::Verdict(Verdict::Jump(format!("missing-{i}")))],
                    "bad",
                ),
            );
        }
        let error = socket.commit(batch).unwrap_err();
        assert!(
            matches!(
                error,
                NetlinkError::Rejected {
                    errno: Errno::ENOENT,
                    commands: 20_000,
                    ..
                }
            ),
            "{error}"
        );
        assert_eq!(ns.nft(&list, None), before);
    }
}
