//! A transaction being written: nf_tables messages, their attributes and
//! elements, and what nft stores with a set.

use super::*;

/// What an element message does to its elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ElementOp {
    Add,
    Delete,
    Destroy,
}

/// A transaction being written as nf_tables messages.
pub struct Batch {
    pub(super) buf: Vec<u8>,
    /// Where each message starts (index = sequence number - 1), to say
    /// which one the kernel rejected.
    pub(super) starts: Vec<u32>,
    pub(super) commands: usize,
    /// An element message still open for more elements of the same set:
    /// (set name, what it does, where its ELEMENTS attribute starts).
    pub(super) open_elements: Option<(String, ElementOp, usize)>,
    /// Where the current message and its open attributes start.
    pub(super) message_start: usize,
    pub(super) nests: Vec<usize>,
    pub(super) next_set_id: u32,
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
    pub(super) fn messages(bytes: usize) -> Batch {
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
    pub(super) fn finish(mut self) -> (Vec<u8>, Vec<u32>, usize) {
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

    pub(super) fn begin_raw(&mut self, kind: u16, flags: u16, seq: u32, res_id: u16) {
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
    pub(super) fn begin(&mut self, message: u16, flags: u16) {
        self.close_elements();
        self.starts.push(self.buf.len() as u32);
        let seq = self.starts.len() as u32;
        self.begin_raw((NFNL_SUBSYS_NFTABLES << 8) | message, flags, seq, 0);
    }

    pub(super) fn end_message(&mut self) {
        let len = (self.buf.len() - self.message_start) as u32;
        self.buf[self.message_start..self.message_start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    pub(super) fn attr(&mut self, kind: u16, value: &[u8]) {
        let len = 4 + value.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.pad();
    }

    pub(super) fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// A string attribute: NUL-terminated, as the kernel expects.
    pub(super) fn str(&mut self, kind: u16, value: &str) {
        let len = 4 + value.len() + 1;
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value.as_bytes());
        self.buf.push(0);
        self.pad();
    }

    /// A number attribute: big-endian, as nf_tables expects.
    pub(super) fn u32(&mut self, kind: u16, value: u32) {
        self.attr(kind, &value.to_be_bytes());
    }

    pub(super) fn nest(&mut self, kind: u16) {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    }

    pub(super) fn end_nest(&mut self) {
        let start = self.nests.pop().expect("an open nest");
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    /// `NFTA_DATA_VALUE` inside a nest of `kind`.
    pub(super) fn data_value(&mut self, kind: u16, value: &[u8]) {
        self.nest(kind);
        self.attr(NFTA_DATA_VALUE, value);
        self.end_nest();
    }

    pub(super) fn verdict(&mut self, kind: u16, verdict: &Verdict) {
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
    pub(super) fn comment(&mut self, kind: u16, comment: &str) {
        // (Comments are cut to 127 bytes when made: the length fits.)
        let len = 4 + 2 + comment.len() + 1;
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(&[0, (comment.len() + 1) as u8]);
        self.buf.extend_from_slice(comment.as_bytes());
        self.buf.push(0);
        self.pad();
    }
}

impl Batch {
    // --- elements ---

    /// Adds an element to the open element message of the same set and
    /// kind, or opens a new one: a map's elements travel together, as nft
    /// sends them.
    /// An element named by its key alone (a delete or destroy).
    fn element_by_key(&mut self, set: &str, op: ElementOp, key: &Key) {
        self.commands += 1;
        self.element_message(set, op);
        self.nest(NFTA_LIST_ELEM);
        self.key(key);
        self.end_nest();
    }

    pub(super) fn element_message(&mut self, set: &str, op: ElementOp) {
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

    pub(super) fn close_elements(&mut self) {
        if self.open_elements.take().is_some() {
            self.end_nest();
            self.end_message();
        }
    }

    pub(super) fn key(&mut self, key: &Key) {
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

    pub(super) fn value(&mut self, value: &Value) {
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
            SetType::ClusterIpPorts => (0, concat_type(&[ip, proto, service]), 12, None),
            SetType::NodePorts => (0, concat_type(&[proto, service]), 8, None),
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
        self.element_by_key(set, ElementOp::Delete, key);
    }

    fn destroy_element(&mut self, set: &str, key: &Key) {
        self.element_by_key(set, ElementOp::Destroy, key);
    }

    fn len(&self) -> usize {
        self.commands
    }
}

pub(super) fn nul_terminated(text: &str) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    bytes.push(0);
    bytes
}

/// One user data record: type, length (one byte each), value.
pub(super) fn udata_record(out: &mut Vec<u8>, kind: u8, value: &[u8]) {
    out.push(kind);
    out.push(value.len() as u8);
    out.extend_from_slice(value);
}

/// What nft 1.0.6 stores with a set for its own printing: the byte order
/// of keys and values, what they are "typeof", and the comment.
pub(super) fn set_udata(set: SetType, comment: &str) -> Vec<u8> {
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
        SetType::AddressPairs | SetType::ClusterIpPorts | SetType::NodePorts => {
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
    pub(super) fn udata(&self) -> Vec<u8> {
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
