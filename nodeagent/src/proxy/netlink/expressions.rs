//! Statements as the kernel's expressions: what `nft --debug=netlink`
//! prints for a rule.

use super::wire::*;
use super::*;

impl Batch {
    // --- expressions ---

    /// Starts one expression of a rule: its name, then its attributes.
    pub(super) fn expr(&mut self, name: &str) {
        self.nest(NFTA_LIST_ELEM);
        self.str(NFTA_EXPR_NAME, name);
        self.nest(NFTA_EXPR_DATA);
    }

    pub(super) fn end_expr(&mut self) {
        self.end_nest();
        self.end_nest();
    }

    /// `[ payload load LENb @ BASE header + OFFSET => reg DREG ]`
    pub(super) fn payload(&mut self, base: u32, offset: u32, len: u32, dreg: u32) {
        self.expr("payload");
        self.u32(1, dreg); // NFTA_PAYLOAD_DREG
        self.u32(2, base); // NFTA_PAYLOAD_BASE: 1 network, 2 transport
        self.u32(3, offset); // NFTA_PAYLOAD_OFFSET
        self.u32(4, len); // NFTA_PAYLOAD_LEN
        self.end_expr();
    }

    /// `[ meta load KEY => reg DREG ]` (3 mark, 16 l4proto).
    pub(super) fn meta_load(&mut self, key: u32, dreg: u32) {
        self.expr("meta");
        self.u32(2, key); // NFTA_META_KEY
        self.u32(1, dreg); // NFTA_META_DREG
        self.end_expr();
    }

    /// `[ cmp eq|neq reg SREG DATA ]`
    pub(super) fn cmp(&mut self, sreg: u32, negate: bool, data: &[u8]) {
        self.expr("cmp");
        self.u32(1, sreg); // NFTA_CMP_SREG
        self.u32(2, u32::from(negate)); // NFTA_CMP_OP: 0 eq, 1 neq
        self.data_value(3, data); // NFTA_CMP_DATA
        self.end_expr();
    }

    /// `[ bitwise reg 1 = ( reg 1 & MASK ) ^ XOR ]` on 4 bytes.
    pub(super) fn bitwise(&mut self, mask: &[u8; 4], xor: &[u8; 4]) {
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
    pub(super) fn lookup(&mut self, set: &str, set_id: Option<u32>, verdict: bool) {
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
    pub(super) fn ct_load(&mut self, key: u32, direction: Option<u8>, dreg: u32) {
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
    pub(super) fn numgen(&mut self, dreg: u32, modulus: u32, offset: u32) {
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
    pub(super) fn lookup_data(&mut self, map: &str) {
        self.expr("lookup");
        self.str(1, map); // NFTA_LOOKUP_SET
        self.u32(2, REG_1); // NFTA_LOOKUP_SREG
        self.u32(3, REG_1); // NFTA_LOOKUP_DREG
        self.end_expr();
    }

    /// `[ nat dnat ip addr_min reg 1 addr_max reg 1 proto_min reg 9
    /// proto_max reg 9 flags 0x3 ]`: to the address in register 8 and the
    /// port in register 9.
    pub(super) fn dnat_from_registers(&mut self) {
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
    pub(super) fn immediate(&mut self, dreg: u32, data: &[u8]) {
        self.expr("immediate");
        self.u32(1, dreg); // NFTA_IMMEDIATE_DREG
        self.data_value(2, data); // NFTA_IMMEDIATE_DATA
        self.end_expr();
    }

    /// `ip saddr|daddr [!=] NET`: load as many bytes as the prefix covers
    /// (a /16 is a 2-byte compare), or mask when it is not whole bytes.
    pub(super) fn ip_match(&mut self, addr: Addr, negate: bool, net: &ipnet::Ipv4Net) {
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

    pub(super) fn stmt(&mut self, stmt: &Stmt, anonymous_sets: &mut Vec<u32>) {
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
            Stmt::ClusterIpPortInSet(set) => {
                self.payload(1, 16, 4, REG_1);
                self.meta_load(16, REG32_01);
                self.payload(2, 2, 2, REG32_02);
                self.lookup(set, None, false);
            }
            Stmt::NodePortInSet(set) => {
                self.meta_load(16, REG_1);
                self.payload(2, 2, 2, REG32_01);
                self.lookup(set, None, false);
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
    pub(super) fn anonymous_protocol_set(&mut self, protos: &[Proto]) -> u32 {
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
}
