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
//! # Layout
//!
//! - `wire`: a [`Batch`]: messages, attributes, elements; the
//!   [`Transaction`] implementation; what nft stores with a set for its
//!   own printing.
//! - `expressions`: each statement of a rule as the kernel's expressions
//!   (`payload`, `cmp`, `lookup`, `numgen`, `nat`, ...).
//! - `socket`: the [`Socket`] that sends a batch and reads the answers,
//!   and the dumps (a chain's rules, a set's elements).
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
const NFT_MSG_GETSET: u16 = 10;
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

mod expressions;
mod socket;
mod wire;

pub use socket::{DumpedElement, Socket};
pub use wire::Batch;

#[cfg(test)]
mod tests;
