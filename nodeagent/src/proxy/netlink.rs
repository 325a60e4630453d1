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
    Addr, Hook, Key, Proto, Rule, SetType, Stmt, Transaction, Value, Verdict, TABLE, TABLE_COMMENT,
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
const NFT_MSG_GETSETELEM: u16 = 13;
const NFT_MSG_DELSETELEM: u16 = 14;
/// Deletes an element if it is there (Linux 6.3).
const NFT_MSG_DESTROYSETELEM: u16 = 30;

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
const REG32_03: u32 = 11;
const REG32_05: u32 = 13;

/// nft's data type numbers (its `enum datatypes`), as it records them in
/// a set's key type; a concatenation is the types shifted by 6 bits each.
const TYPE_IPADDR: u32 = 7;
const TYPE_INET_PROTOCOL: u32 = 12;
const TYPE_INET_SERVICE: u32 = 13;
/// A number without a type of its own (a numgen bucket).
const TYPE_INTEGER: u32 = 4;
const NFT_SET_TIMEOUT_FLAGS: u32 = NFT_SET_TIMEOUT | NFT_SET_EVAL;

/// A concatenation's type: each field's type, 6 bits each.
const fn concat_type(types: &[u32]) -> u32 {
    let mut t = 0;
    let mut i = 0;
    while i < types.len() {
        t = (t << 6) | types[i];
        i += 1;
    }
    t
}

// nf_tables' conntrack keys (`NFT_CT_*`) and the ct status bit of DNAT.
const NFT_CT_STATE: u32 = 0;
const NFT_CT_STATUS: u32 = 2;
const NFT_CT_PROTO_DST: u32 = 12;
const NFT_CT_DST_IP: u32 = 20;
const IPS_DST_NAT: u32 = 0x20;

/// The most a message's attribute of elements may hold (its length field
/// has 16 bits); a longer run of elements goes on in a new message.
const MAX_ELEMENTS_BYTES: usize = 60_000;

/// What an element message does to its elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ElementOp {
    Add,
    Delete,
    Destroy,
}

/// A transaction being written as nf_tables messages.
pub struct Batch {
    buf: Vec<u8>,
    /// Where each message starts (index = sequence number - 1), to say
    /// which one the kernel rejected.
    starts: Vec<u32>,
    commands: usize,
    /// An element message still open for more elements of the same set:
    /// (set name, what it does, where its ELEMENTS attribute starts).
    open_elements: Option<(String, ElementOp, usize)>,
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

    /// `[ ct load KEY => reg DREG (, dir original) ]`
    fn ct_load(&mut self, key: u32, direction: Option<u8>, dreg: u32) {
        self.expr("ct");
        self.u32(2, key); // NFTA_CT_KEY
        self.u32(1, dreg); // NFTA_CT_DREG
        if let Some(direction) = direction {
            self.attr(3, &[direction]); // NFTA_CT_DIRECTION: 0 original
        }
        self.end_expr();
    }

    /// `[ numgen reg DREG = random mod MODULUS (offset OFFSET) ]`: the
    /// number is in host order.
    fn numgen(&mut self, dreg: u32, modulus: u32, offset: u32) {
        self.expr("numgen");
        self.u32(1, dreg); // NFTA_NG_DREG
        self.u32(2, modulus); // NFTA_NG_MODULUS
        self.u32(3, 1); // NFTA_NG_TYPE: random
        if offset != 0 {
            self.u32(4, offset); // NFTA_NG_OFFSET
        }
        self.end_expr();
    }

    /// `[ lookup reg 1 set NAME dreg 1 ]`: a data map; the element's value
    /// lands in registers 8.. (an endpoint: address in 8, port in 9).
    fn lookup_data(&mut self, map: &str) {
        self.expr("lookup");
        self.str(1, map); // NFTA_LOOKUP_SET
        self.u32(2, REG_1); // NFTA_LOOKUP_SREG
        self.u32(3, REG_1); // NFTA_LOOKUP_DREG
        self.end_expr();
    }

    /// `[ nat dnat ip addr_min reg 1 addr_max reg 1 proto_min reg 9
    /// proto_max reg 9 flags 0x3 ]`: to the address in register 8 and the
    /// port in register 9.
    fn dnat_from_registers(&mut self) {
        self.expr("nat");
        self.u32(1, 1); // NFTA_NAT_TYPE: dnat
        self.u32(2, u32::from(NFPROTO_IPV4)); // NFTA_NAT_FAMILY
        self.u32(3, REG_1); // NFTA_NAT_REG_ADDR_MIN
        self.u32(4, REG_1); // NFTA_NAT_REG_ADDR_MAX
        self.u32(5, REG32_01); // NFTA_NAT_REG_PROTO_MIN
        self.u32(6, REG32_01); // NFTA_NAT_REG_PROTO_MAX
        self.u32(7, 3); // NFTA_NAT_FLAGS: address and port given
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
                self.ct_load(NFT_CT_STATE, None, REG_1);
                // ct state is a bit field in host order; "new" is bit 3.
                self.bitwise(&8u32.to_ne_bytes(), &[0; 4]);
                self.cmp(REG_1, true, &[0; 4]);
            }
            Stmt::CtStatusDnat => {
                self.ct_load(NFT_CT_STATUS, None, REG_1);
                self.bitwise(&IPS_DST_NAT.to_ne_bytes(), &[0; 4]);
                self.cmp(REG_1, true, &[0; 4]);
            }
            Stmt::CtOriginalDaddr { negate, net } => {
                self.ct_load(NFT_CT_DST_IP, Some(0), REG_1);
                if net.prefix_len() < 32 {
                    self.bitwise(&net.netmask().octets(), &[0; 4]);
                }
                self.cmp(REG_1, *negate, &net.network().octets());
            }
            Stmt::AddressPairInSet(set) => {
                self.payload(1, 12, 4, REG_1);
                self.payload(1, 16, 4, REG32_01);
                self.lookup(set, None, false);
            }
            Stmt::OriginalClusterIpVmap(map) => {
                self.ct_load(NFT_CT_DST_IP, Some(0), REG_1);
                self.meta_load(16, REG32_01);
                self.ct_load(NFT_CT_PROTO_DST, Some(0), REG32_02);
                self.lookup(map, None, true);
            }
            Stmt::OriginalNodePortVmap(map) => {
                self.meta_load(16, REG_1);
                self.ct_load(NFT_CT_PROTO_DST, Some(0), REG32_01);
                self.lookup(map, None, true);
            }
            Stmt::DnatClusterIpPick { map, modulus } => {
                // ClusterIP . l4proto . port . bucket in registers 8-11;
                // the endpoint (address, port) comes back in 8 and 9.
                self.payload(1, 16, 4, REG_1);
                self.meta_load(16, REG32_01);
                self.payload(2, 2, 2, REG32_02);
                self.numgen(REG32_03, *modulus, 0);
                self.lookup_data(map);
                self.dnat_from_registers();
            }
            Stmt::DnatNodePortPick {
                map,
                modulus,
                offset,
            } => {
                self.meta_load(16, REG_1);
                self.payload(2, 2, 2, REG32_01);
                self.numgen(REG32_02, *modulus, *offset);
                self.lookup_data(map);
                self.dnat_from_registers();
            }
            Stmt::DnatRemembered(map) => {
                self.payload(1, 12, 4, REG_1);
                self.payload(1, 16, 4, REG32_01);
                self.meta_load(16, REG32_02);
                self.payload(2, 2, 2, REG32_03);
                self.lookup_data(map);
                self.dnat_from_registers();
            }
            Stmt::RememberClient {
                map,
                proto: _,
                timeout_seconds,
            } => {
                // Key: client . original address . l4proto . original
                // port (registers 8-11); value: where the packet goes now
                // (registers 12 and 13).
                self.payload(1, 12, 4, REG_1);
                self.ct_load(NFT_CT_DST_IP, Some(0), REG32_01);
                self.meta_load(16, REG32_02);
                self.ct_load(NFT_CT_PROTO_DST, Some(0), REG32_03);
                self.payload(1, 16, 4, REG_2);
                self.payload(2, 2, 2, REG32_05);
                self.expr("dynset");
                self.u32(4, REG_1); // NFTA_DYNSET_SREG_KEY
                self.u32(5, REG_2); // NFTA_DYNSET_SREG_DATA
                self.u32(3, 1); // NFTA_DYNSET_OP: update
                let ms = u64::from(*timeout_seconds) * 1000;
                self.attr(6, &ms.to_be_bytes()); // NFTA_DYNSET_TIMEOUT
                self.str(1, map); // NFTA_DYNSET_SET_NAME
                self.end_expr();
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
            Stmt::NumgenIsZero { modulus } => {
                self.numgen(REG_1, *modulus, 0);
                self.cmp(REG_1, false, &0u32.to_ne_bytes());
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
    fn element_message(&mut self, set: &str, op: ElementOp) {
        if let Some((open_set, open_op, start)) = &self.open_elements {
            if open_set == set && *open_op == op && self.buf.len() - start < MAX_ELEMENTS_BYTES {
                return;
            }
        }
        self.close_elements();
        match op {
            ElementOp::Add => self.begin(NFT_MSG_NEWSETELEM, NLM_F_CREATE),
            ElementOp::Delete => self.begin(NFT_MSG_DELSETELEM, 0),
            ElementOp::Destroy => self.begin(NFT_MSG_DESTROYSETELEM, 0),
        }
        self.str(NFTA_SET_ELEM_LIST_TABLE, TABLE);
        self.str(NFTA_SET_ELEM_LIST_SET, set);
        let start = self.buf.len();
        self.nest(NFTA_SET_ELEM_LIST_ELEMENTS);
        self.open_elements = Some((set.to_string(), op, start));
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
            Key::AddressPair(a, b) => {
                bytes.extend_from_slice(&a.octets());
                bytes.extend_from_slice(&b.octets());
            }
            Key::ClusterIpBucket(ip, proto, port, bucket) => {
                bytes.extend_from_slice(&ip.octets());
                bytes.extend_from_slice(&[proto.number(), 0, 0, 0]);
                bytes.extend_from_slice(&port.to_be_bytes());
                bytes.extend_from_slice(&[0, 0]);
                // numgen's numbers are in host order.
                bytes.extend_from_slice(&bucket.to_ne_bytes());
            }
            Key::NodePortBucket(proto, port, bucket) => {
                bytes.extend_from_slice(&[proto.number(), 0, 0, 0]);
                bytes.extend_from_slice(&port.to_be_bytes());
                bytes.extend_from_slice(&[0, 0]);
                bytes.extend_from_slice(&bucket.to_ne_bytes());
            }
            Key::Client(client, ip, proto, port) => {
                bytes.extend_from_slice(&client.octets());
                bytes.extend_from_slice(&ip.octets());
                bytes.extend_from_slice(&[proto.number(), 0, 0, 0]);
                bytes.extend_from_slice(&port.to_be_bytes());
                bytes.extend_from_slice(&[0, 0]);
            }
        }
        self.data_value(NFTA_SET_ELEM_KEY, &bytes);
    }

    fn value(&mut self, value: &Value) {
        match value {
            Value::Verdict(verdict) => self.verdict(NFTA_SET_ELEM_DATA, verdict),
            Value::Endpoint(ip, port) => {
                let mut bytes = [0u8; 8];
                bytes[..4].copy_from_slice(&ip.octets());
                bytes[4..6].copy_from_slice(&port.to_be_bytes());
                self.data_value(NFTA_SET_ELEM_DATA, &bytes);
            }
        }
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
        let ip = TYPE_IPADDR;
        let proto = TYPE_INET_PROTOCOL;
        let service = TYPE_INET_SERVICE;
        let endpoint = Some((concat_type(&[ip, service]), 8));
        // Flags, key type and length (each field of a concatenation takes
        // whole 4-byte registers), data type and length.
        let (flags, key_type, key_len, data) = match set {
            SetType::ClusterIpPortVmap => (
                NFT_SET_MAP,
                concat_type(&[ip, proto, service]),
                12,
                Some((NFT_DATA_VERDICT, 0)),
            ),
            SetType::NodePortVmap => (
                NFT_SET_MAP,
                concat_type(&[proto, service]),
                8,
                Some((NFT_DATA_VERDICT, 0)),
            ),
            SetType::Addresses => (0, ip, 4, None),
            SetType::AddressPairs => (0, concat_type(&[ip, ip]), 8, None),
            SetType::ClusterIpEndpoints => (
                NFT_SET_MAP,
                concat_type(&[ip, proto, service, TYPE_INTEGER]),
                16,
                endpoint,
            ),
            SetType::NodePortEndpoints => (
                NFT_SET_MAP,
                concat_type(&[proto, service, TYPE_INTEGER]),
                12,
                endpoint,
            ),
            SetType::RememberedClients { .. } => (
                NFT_SET_MAP | NFT_SET_TIMEOUT_FLAGS,
                concat_type(&[ip, ip, proto, service]),
                16,
                endpoint,
            ),
        };
        self.u32(NFTA_SET_FLAGS, flags);
        self.u32(NFTA_SET_KEY_TYPE, key_type);
        self.u32(NFTA_SET_KEY_LEN, key_len);
        if let Some((data_type, data_len)) = data {
            self.u32(NFTA_SET_DATA_TYPE, data_type);
            self.u32(NFTA_SET_DATA_LEN, data_len);
        }
        // The kernel wants an id on every new set (rules of the same batch
        // may refer to it by id); ours refer by name.
        self.u32(NFTA_SET_ID, self.next_set_id);
        self.next_set_id += 1;
        if let SetType::RememberedClients { size } = set {
            self.nest(NFTA_SET_DESC);
            self.u32(NFTA_SET_DESC_SIZE, size);
            self.end_nest();
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

    fn add_element(&mut self, set: &str, key: &Key, value: Option<&Value>, comment: &str) {
        self.commands += 1;
        self.element_message(set, ElementOp::Add);
        self.nest(NFTA_LIST_ELEM);
        self.key(key);
        if let Some(value) = value {
            self.value(value);
        }
        self.comment(NFTA_SET_ELEM_USERDATA, comment);
        self.end_nest();
    }

    fn delete_element(&mut self, set: &str, key: &Key) {
        self.commands += 1;
        self.element_message(set, ElementOp::Delete);
        self.nest(NFTA_LIST_ELEM);
        self.key(key);
        self.end_nest();
    }

    fn destroy_element(&mut self, set: &str, key: &Key) {
        self.commands += 1;
        self.element_message(set, ElementOp::Destroy);
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
/// of keys and values, what they are "typeof", and the comment.
fn set_udata(set: SetType, comment: &str) -> Vec<u8> {
    let mut udata = vec![];
    let u32_ = |v: u32| v.to_ne_bytes();
    // Record numbers (nft's NFTNL_UDATA_SET_*).
    const KEY_BYTEORDER: u8 = 0;
    const DATA_BYTEORDER: u8 = 1;
    const KEY_TYPEOF: u8 = 3;
    const DATA_TYPEOF: u8 = 4;
    const DATA_INTERVAL: u8 = 6;
    const COMMENT: u8 = 7;
    // A concatenation declared with `type`: nft prints the declared types.
    let untyped = || Typeof::Concat(vec![]).udata();
    let endpoint = || Typeof::Concat(vec![Typeof::IP_DADDR, Typeof::TH_DPORT]).udata();
    match set {
        SetType::Addresses => {
            udata_record(&mut udata, KEY_BYTEORDER, &u32_(2)); // big endian
        }
        SetType::AddressPairs => {
            udata_record(&mut udata, KEY_BYTEORDER, &u32_(0)); // mixed
            udata_record(&mut udata, KEY_TYPEOF, &untyped());
        }
        SetType::ClusterIpPortVmap | SetType::NodePortVmap => {
            udata_record(&mut udata, KEY_BYTEORDER, &u32_(0));
            udata_record(&mut udata, DATA_BYTEORDER, &u32_(0));
            udata_record(&mut udata, KEY_TYPEOF, &untyped());
            udata_record(&mut udata, DATA_INTERVAL, &u32_(0));
        }
        SetType::RememberedClients { .. } => {
            udata_record(&mut udata, KEY_BYTEORDER, &u32_(0));
            udata_record(&mut udata, DATA_BYTEORDER, &u32_(0));
            udata_record(&mut udata, KEY_TYPEOF, &untyped());
            udata_record(&mut udata, DATA_TYPEOF, &untyped());
            udata_record(&mut udata, DATA_INTERVAL, &u32_(0));
        }
        SetType::ClusterIpEndpoints | SetType::NodePortEndpoints => {
            let mut key = vec![];
            if set == SetType::ClusterIpEndpoints {
                key.push(Typeof::IP_DADDR);
            }
            key.extend([Typeof::META_L4PROTO, Typeof::TH_DPORT, Typeof::NumgenRandom]);
            udata_record(&mut udata, KEY_BYTEORDER, &u32_(0));
            udata_record(&mut udata, DATA_BYTEORDER, &u32_(0));
            udata_record(&mut udata, KEY_TYPEOF, &Typeof::Concat(key).udata());
            udata_record(&mut udata, DATA_TYPEOF, &endpoint());
            udata_record(&mut udata, DATA_INTERVAL, &u32_(0));
        }
    }
    udata_record(&mut udata, COMMENT, &nul_terminated(comment));
    udata
}

/// An expression as nft describes it in a set's "typeof" user data (what
/// `typeof ip daddr . th dport` is made of), so that `nft list` prints the
/// set as it was declared.
enum Typeof {
    /// A header field: nft's protocol description and field numbers.
    Payload {
        desc: u32,
        field: u32,
    },
    /// `meta KEY`.
    Meta(u32),
    /// `numgen random mod 1`.
    NumgenRandom,
    Concat(Vec<Typeof>),
}

impl Typeof {
    /// `ip daddr`.
    const IP_DADDR: Typeof = Typeof::Payload {
        desc: 12,
        field: 12,
    };
    /// `th dport`.
    const TH_DPORT: Typeof = Typeof::Payload { desc: 11, field: 2 };
    /// `meta l4proto`.
    const META_L4PROTO: Typeof = Typeof::Meta(16);

    /// Record 0: nft's expression type; record 1: its description.
    fn udata(&self) -> Vec<u8> {
        let u32_ = |v: u32| v.to_ne_bytes();
        let mut data = vec![];
        let kind = match self {
            Typeof::Payload { desc, field } => {
                udata_record(&mut data, 0, &u32_(*desc));
                udata_record(&mut data, 1, &u32_(*field));
                7
            }
            Typeof::Meta(key) => {
                udata_record(&mut data, 0, &u32_(*key));
                9
            }
            Typeof::NumgenRandom => {
                udata_record(&mut data, 0, &u32_(1)); // random
                udata_record(&mut data, 1, &u32_(1)); // mod 1
                udata_record(&mut data, 2, &u32_(0)); // offset 0
                23
            }
            Typeof::Concat(fields) => {
                for (i, field) in fields.iter().enumerate() {
                    udata_record(&mut data, i as u8, &field.udata());
                }
                13
            }
        };
        let mut out = vec![];
        udata_record(&mut out, 0, &u32_(kind));
        udata_record(&mut out, 1, &data);
        out
    }
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

    /// The entries of a map of remembered clients
    /// ([`SetType::RememberedClients`]) as they are now: the packet path
    /// adds them, so only the kernel knows them. One dump.
    pub fn map_entries(&self, map: &str) -> Result<Vec<(Key, Value)>, NetlinkError> {
        let elements = self.elements(map, SetType::RememberedClients { size: 0 })?;
        Ok(elements
            .into_iter()
            .filter_map(|e| Some((e.key, e.value?)))
            .collect())
    }

    /// Every element of a set or map of type `ty`, read back from the
    /// kernel: key, value and comment. One dump.
    pub fn elements(&self, set: &str, ty: SetType) -> Result<Vec<DumpedElement>, NetlinkError> {
        let mut request = Batch::messages(128);
        request.begin(NFT_MSG_GETSETELEM, NLM_F_DUMP);
        request.str(NFTA_SET_ELEM_LIST_TABLE, TABLE);
        request.str(NFTA_SET_ELEM_LIST_SET, set);
        request.end_message();
        socket::send(self.fd.as_raw_fd(), &request.buf, MsgFlags::empty()).map_err(|source| {
            NetlinkError::System {
                action: format!("asking for the elements of {set}"),
                source,
            }
        })?;
        let mut elements = vec![];
        let mut failed = None;
        self.read_answers(MsgFlags::empty(), |kind, _seq, payload| {
            if kind == NLMSG_DONE {
                return false;
            }
            if kind == NLMSG_ERROR {
                let code = i32::from_ne_bytes(payload[..4].try_into().unwrap_or_default());
                if code != 0 {
                    failed = Some(Errno::from_raw(-code));
                }
                return false;
            }
            // After the 4-byte nfgenmsg: table, set, ELEMENTS.
            for (attr, value) in attributes(payload.get(4..).unwrap_or_default()) {
                if attr != NFTA_SET_ELEM_LIST_ELEMENTS {
                    continue;
                }
                for (_, element) in attributes(value) {
                    if let Some(element) = dumped_element(ty, element) {
                        elements.push(element);
                    }
                }
            }
            true
        })?;
        match failed {
            // No table yet, or no such set: nothing programmed.
            Some(Errno::ENOENT) => Ok(vec![]),
            Some(errno) => Err(NetlinkError::System {
                action: format!("reading the elements of {set}"),
                source: errno,
            }),
            None => Ok(elements),
        }
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

/// The attributes in `bytes`: (type without flags, value).
fn attributes(bytes: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let header = bytes.get(at..at + 4)?;
        let len = u16::from_ne_bytes([header[0], header[1]]) as usize;
        let kind = u16::from_ne_bytes([header[2], header[3]]) & !NLA_F_NESTED;
        if len < 4 {
            return None;
        }
        let value = bytes.get(at + 4..at + len)?;
        at += (len + 3) & !3;
        Some((kind, value))
    })
}

/// One element as the kernel lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpedElement {
    pub key: Key,
    pub value: Option<Value>,
    pub comment: String,
}

/// An element's attributes (key, data, user data) as a [`DumpedElement`]
/// of a set of type `ty`.
fn dumped_element(ty: SetType, element: &[u8]) -> Option<DumpedElement> {
    let mut key = None;
    let mut value = None;
    let mut comment = String::new();
    for (attr, bytes) in attributes(element) {
        match attr {
            NFTA_SET_ELEM_KEY => {
                let data = attributes(bytes).find(|(a, _)| *a == NFTA_DATA_VALUE)?.1;
                key = parse_key(ty, data);
            }
            NFTA_SET_ELEM_DATA => {
                for (kind, inner) in attributes(bytes) {
                    if kind == NFTA_DATA_VALUE {
                        value = parse_endpoint(inner).map(|(ip, port)| Value::Endpoint(ip, port));
                    } else if kind == NFTA_DATA_VERDICT {
                        value = parse_verdict(inner).map(Value::Verdict);
                    }
                }
            }
            // Record 0, the comment, NUL-terminated.
            NFTA_SET_ELEM_USERDATA if bytes.len() > 2 && bytes[0] == 0 => {
                let text = &bytes[2..(2 + bytes[1] as usize).min(bytes.len())];
                let text = text.split(|b| *b == 0).next().unwrap_or_default();
                comment = String::from_utf8_lossy(text).into_owned();
            }
            _ => {}
        }
    }
    Some(DumpedElement {
        key: key?,
        value,
        comment,
    })
}

fn parse_ip(b: &[u8]) -> Option<std::net::Ipv4Addr> {
    Some(<[u8; 4]>::try_from(b.get(..4)?).ok()?.into())
}

fn parse_port(b: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(..2)?.try_into().ok()?))
}

fn parse_proto(b: u8) -> Option<Proto> {
    match b {
        6 => Some(Proto::Tcp),
        17 => Some(Proto::Udp),
        132 => Some(Proto::Sctp),
        _ => None,
    }
}

fn parse_bucket(b: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(..4)?.try_into().ok()?))
}

/// `10.244.2.7 . 80` (8 bytes).
fn parse_endpoint(b: &[u8]) -> Option<(std::net::Ipv4Addr, u16)> {
    Some((parse_ip(b)?, parse_port(b.get(4..)?)?))
}

/// A verdict's attributes: code, and the chain of a jump or goto.
fn parse_verdict(b: &[u8]) -> Option<Verdict> {
    let mut code = None;
    let mut chain = None;
    for (attr, value) in attributes(b) {
        match attr {
            NFTA_VERDICT_CODE => code = Some(i32::from_be_bytes(value.get(..4)?.try_into().ok()?)),
            NFTA_VERDICT_CHAIN => {
                let name = value.split(|b| *b == 0).next().unwrap_or_default();
                chain = Some(String::from_utf8_lossy(name).into_owned());
            }
            _ => {}
        }
    }
    match code? {
        NF_DROP => Some(Verdict::Drop),
        NFT_RETURN => Some(Verdict::Return),
        NFT_JUMP => Some(Verdict::Jump(chain?)),
        NFT_GOTO => Some(Verdict::Goto(chain?)),
        _ => None,
    }
}

/// An element's key, as [`Batch`] wrote it for a set of type `ty`.
fn parse_key(ty: SetType, b: &[u8]) -> Option<Key> {
    let at = |i: usize| b.get(i..);
    Some(match ty {
        SetType::ClusterIpPortVmap => {
            Key::ClusterIpPort(parse_ip(b)?, parse_proto(*b.get(4)?)?, parse_port(at(8)?)?)
        }
        SetType::NodePortVmap => Key::NodePort(parse_proto(*b.first()?)?, parse_port(at(4)?)?),
        SetType::Addresses => Key::Address(parse_ip(b)?),
        SetType::AddressPairs => Key::AddressPair(parse_ip(b)?, parse_ip(at(4)?)?),
        SetType::ClusterIpEndpoints => Key::ClusterIpBucket(
            parse_ip(b)?,
            parse_proto(*b.get(4)?)?,
            parse_port(at(8)?)?,
            parse_bucket(at(12)?)?,
        ),
        SetType::NodePortEndpoints => Key::NodePortBucket(
            parse_proto(*b.first()?)?,
            parse_port(at(4)?)?,
            parse_bucket(at(8)?)?,
        ),
        SetType::RememberedClients { .. } => Key::Client(
            parse_ip(b)?,
            parse_ip(at(4)?)?,
            parse_proto(*b.get(8)?)?,
            parse_port(at(12)?)?,
        ),
    })
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
        NFT_MSG_DESTROYSETELEM => ("destroy elements of", NFTA_SET_ELEM_LIST_SET),
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
    use crate::proxy::nftables::Script;
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

    /// One of everything the proxy writes: the skeleton, every kind of
    /// shared chain, every kind of element.
    fn everything(tx: &mut impl Transaction) {
        use crate::proxy::rules::{self, SharedChain};
        let node = crate::proxy::rules::NodeContext {
            node_name: "node1".into(),
            cluster_cidr: "10.244.0.0/16".parse().unwrap(),
            service_cidr: "10.96.0.0/12".parse().unwrap(),
            node_labels: Default::default(),
        };
        let ip = |s: &str| s.parse().unwrap();
        tx.add_table();
        tx.delete_table();
        tx.add_table();
        rules::write_ruleset(tx, &rules::base_ruleset(&node));
        for chain in [
            SharedChain::Pick(2),
            SharedChain::NodePortPick(1),
            SharedChain::NodePortLocal { local: 1, all: 3 },
            SharedChain::NodePortLocal { local: 0, all: 2 },
            SharedChain::Remember(60),
        ] {
            rules::write_ruleset(tx, &chain.ruleset(&node));
        }
        // kube-proxy's shape, the scale benchmark's reference.
        tx.add_chain("service-X", None, "a Service, kube-proxy's way");
        tx.add_chain("endpoint-A", None, "an endpoint, kube-proxy's way");
        tx.add_rule(
            "service-X",
            &Rule::new(
                vec![
                    Stmt::NumgenIsZero { modulus: 2 },
                    Stmt::Verdict(Verdict::Goto("endpoint-A".into())),
                ],
                "1 in 2",
            ),
        );
        tx.add_rule(
            "endpoint-A",
            &Rule::new(
                vec![Stmt::L4Proto(Proto::Udp), Stmt::Dnat(ip("10.244.1.5"), 53)],
                "dnat",
            ),
        );
        let goto = |c: &str| Value::Verdict(Verdict::Goto(c.into()));
        let a = ip("10.96.0.50");
        tx.add_element(
            rules::SERVICE_IPS_MAP,
            &Key::ClusterIpPort(a, Proto::Tcp, 80),
            Some(&goto("pick-1-of-2")),
            "default/ngx-svc:80",
        );
        tx.add_element(
            rules::NO_ENDPOINT_SERVICES_MAP,
            &Key::ClusterIpPort(ip("10.96.0.60"), Proto::Udp, 53),
            Some(&Value::Verdict(Verdict::Drop)),
            "dns",
        );
        tx.add_element(
            rules::SERVICE_NODEPORTS_MAP,
            &Key::NodePort(Proto::Tcp, 30080),
            Some(&goto("nodeport-pick-1-of-1")),
            "nodeport",
        );
        for bucket in 0..2 {
            tx.add_element(
                rules::SERVICE_ENDPOINTS_MAP,
                &Key::ClusterIpBucket(a, Proto::Tcp, 80, bucket),
                Some(&Value::Endpoint(
                    ip(&format!("10.244.1.{}", bucket + 5)),
                    8080,
                )),
                "default/ngx-svc:80 -> ngx-dep-66fffb58f7-xlxwp 10.244.1.5:8080",
            );
        }
        tx.add_element(
            rules::NODEPORT_ENDPOINTS_MAP,
            &Key::NodePortBucket(Proto::Udp, 30053, 7),
            Some(&Value::Endpoint(ip("10.244.2.7"), 53)),
            "dns",
        );
        tx.add_element(
            rules::HAIRPIN_SET,
            &Key::AddressPair(ip("10.244.1.5"), ip("10.244.1.5")),
            None,
            "ngx-dep-66fffb58f7-xlxwp: hairpin",
        );
        tx.add_element(
            rules::AFFINITY_SERVICES_MAP,
            &Key::ClusterIpPort(a, Proto::Tcp, 80),
            Some(&goto("remember-client-60s")),
            "default/ngx-svc:80",
        );
        tx.add_element(
            rules::AFFINITY_NODEPORTS_MAP,
            &Key::NodePort(Proto::Tcp, 30080),
            Some(&goto("remember-client-60s")),
            "default/ngx-svc:80",
        );
        tx.add_element(
            rules::CLUSTER_IPS_SET,
            &Key::Address(a),
            None,
            "default/ngx-svc",
        );
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
        // Elements read back: key, value, comment.
        use crate::proxy::rules;
        let read = |set: &str, ty| socket.elements(set, ty).unwrap();
        let a: std::net::Ipv4Addr = "10.96.0.50".parse().unwrap();
        assert_eq!(
            read(rules::SERVICE_IPS_MAP, SetType::ClusterIpPortVmap),
            [DumpedElement {
                key: Key::ClusterIpPort(a, Proto::Tcp, 80),
                value: Some(Value::Verdict(Verdict::Goto("pick-1-of-2".into()))),
                comment: "default/ngx-svc:80".into(),
            }]
        );
        let mut buckets = read(rules::SERVICE_ENDPOINTS_MAP, SetType::ClusterIpEndpoints);
        buckets.sort_by(|x, y| x.key.cmp(&y.key));
        assert_eq!(buckets.len(), 2);
        assert_eq!(buckets[1].key, Key::ClusterIpBucket(a, Proto::Tcp, 80, 1));
        assert_eq!(
            buckets[1].value,
            Some(Value::Endpoint("10.244.1.6".parse().unwrap(), 8080))
        );
        assert_eq!(
            read(rules::NODEPORT_ENDPOINTS_MAP, SetType::NodePortEndpoints)[0].key,
            Key::NodePortBucket(Proto::Udp, 30053, 7)
        );
        assert_eq!(
            read(rules::NO_ENDPOINT_SERVICES_MAP, SetType::ClusterIpPortVmap)[0].value,
            Some(Value::Verdict(Verdict::Drop))
        );
        assert_eq!(
            read(rules::HAIRPIN_SET, SetType::AddressPairs)[0].comment,
            "ngx-dep-66fffb58f7-xlxwp: hairpin"
        );
        assert!(read("no-such-set", SetType::Addresses).is_empty());
        // Remembered clients, read back; destroying one that is not (or no
        // longer) there is no error.
        let client = Key::Client(
            "10.244.1.3".parse().unwrap(),
            "10.96.0.50".parse().unwrap(),
            Proto::Tcp,
            80,
        );
        let endpoint = Value::Endpoint("10.244.1.5".parse().unwrap(), 8080);
        let mut batch = Batch::new();
        batch.add_element(
            crate::proxy::rules::AFFINITY_CLIENTS_MAP,
            &client,
            Some(&endpoint),
            "",
        );
        socket.commit(batch).unwrap();
        assert_eq!(
            socket
                .map_entries(crate::proxy::rules::AFFINITY_CLIENTS_MAP)
                .unwrap(),
            [(client.clone(), endpoint)]
        );
        for _ in 0..2 {
            let mut batch = Batch::new();
            batch.destroy_element(crate::proxy::rules::AFFINITY_CLIENTS_MAP, &client);
            socket.commit(batch).unwrap();
        }
        assert!(socket
            .map_entries(crate::proxy::rules::AFFINITY_CLIENTS_MAP)
            .unwrap()
            .is_empty());
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
        crate::proxy::sync::replace_table(&mut batch);
        crate::proxy::rules::write_ruleset(&mut batch, &crate::proxy::rules::base_ruleset(&node));
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
