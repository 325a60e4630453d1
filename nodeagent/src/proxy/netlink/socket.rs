//! The netlink socket to nf_tables: sending a transaction, reading the
//! kernel's answers, and the dumps the proxy reads back.

use super::wire::*;
use super::*;
use nix::sys::socket::{self, sockopt, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockType};

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

    pub(super) fn open_here() -> Result<Socket, NetlinkError> {
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
        self.ask_dump(
            NFT_MSG_GETRULE,
            (NFTA_RULE_TABLE, NFTA_RULE_CHAIN),
            chain,
            || format!("asking for the rules of chain {chain}"),
        )?;
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

    /// The names of the table's sets and maps (none when the table does
    /// not exist). One dump.
    pub fn set_names(&self) -> Result<Vec<String>, NetlinkError> {
        let mut request = Batch::messages(128);
        request.begin(NFT_MSG_GETSET, NLM_F_DUMP);
        request.str(NFTA_SET_TABLE, TABLE);
        request.end_message();
        socket::send(self.fd.as_raw_fd(), &request.buf, MsgFlags::empty()).map_err(|source| {
            NetlinkError::System {
                action: "asking for the sets of the table".into(),
                source,
            }
        })?;
        let mut names = vec![];
        self.read_answers(MsgFlags::empty(), |kind, _seq, payload| {
            if kind == NLMSG_DONE || kind == NLMSG_ERROR {
                return false;
            }
            // After the 4-byte nfgenmsg: the set's attributes.
            for (attr, value) in attributes(payload.get(4..).unwrap_or_default()) {
                if attr == NFTA_SET_NAME {
                    let name = value.strip_suffix(&[0]).unwrap_or(value);
                    names.push(String::from_utf8_lossy(name).into_owned());
                }
            }
            true
        })?;
        Ok(names)
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
        self.ask_dump(
            NFT_MSG_GETSETELEM,
            (NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_ELEM_LIST_SET),
            set,
            || format!("asking for the elements of {set}"),
        )?;
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

    /// Asks for a dump of one object of our table (a chain's rules, a
    /// set's elements): `message` with the table's name and `name` in the
    /// two attributes `attrs`. The answer is read with `read_answers`.
    fn ask_dump(
        &self,
        message: u16,
        attrs: (u16, u16),
        name: &str,
        what: impl FnOnce() -> String,
    ) -> Result<(), NetlinkError> {
        let mut request = Batch::messages(128);
        request.begin(message, NLM_F_DUMP);
        request.str(attrs.0, TABLE);
        request.str(attrs.1, name);
        request.end_message();
        socket::send(self.fd.as_raw_fd(), &request.buf, MsgFlags::empty()).map_err(|source| {
            NetlinkError::System {
                action: what(),
                source,
            }
        })?;
        Ok(())
    }

    /// Reads netlink messages, giving each (type, sequence number, payload)
    /// to `each` until it returns false - or, with `MSG_DONTWAIT`, until
    /// none is left. Returns whether the kernel dropped answers that did
    /// not fit the socket's buffer.
    pub(super) fn read_answers(
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
pub(super) fn attributes(bytes: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
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
pub(super) fn dumped_element(ty: SetType, element: &[u8]) -> Option<DumpedElement> {
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

pub(super) fn parse_ip(b: &[u8]) -> Option<std::net::Ipv4Addr> {
    Some(<[u8; 4]>::try_from(b.get(..4)?).ok()?.into())
}

pub(super) fn parse_port(b: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(..2)?.try_into().ok()?))
}

pub(super) fn parse_proto(b: u8) -> Option<Proto> {
    match b {
        6 => Some(Proto::Tcp),
        17 => Some(Proto::Udp),
        132 => Some(Proto::Sctp),
        _ => None,
    }
}

pub(super) fn parse_bucket(b: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(..4)?.try_into().ok()?))
}

/// `10.244.2.7 . 80` (8 bytes).
pub(super) fn parse_endpoint(b: &[u8]) -> Option<(std::net::Ipv4Addr, u16)> {
    Some((parse_ip(b)?, parse_port(b.get(4..)?)?))
}

/// A verdict's attributes: code, and the chain of a jump or goto.
pub(super) fn parse_verdict(b: &[u8]) -> Option<Verdict> {
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
pub(super) fn parse_key(ty: SetType, b: &[u8]) -> Option<Key> {
    let at = |i: usize| b.get(i..);
    Some(match ty {
        SetType::ClusterIpPortVmap | SetType::ClusterIpPorts => {
            Key::ClusterIpPort(parse_ip(b)?, parse_proto(*b.get(4)?)?, parse_port(at(8)?)?)
        }
        SetType::NodePortVmap | SetType::NodePorts => {
            Key::NodePort(parse_proto(*b.first()?)?, parse_port(at(4)?)?)
        }
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
pub(super) fn describe(buf: &[u8], starts: &[u32], seq: u32) -> String {
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
