//! Forwarding: names outside the cluster go to the node's own resolvers.
//!
//! A Pod's resolv.conf names only the cluster DNS, so every name a Pod
//! looks up arrives here, `example.com` included. Those are not the
//! cluster's to answer: like CoreDNS's `forward . /etc/resolv.conf`, the
//! server passes them to the nameservers of the *node's* /etc/resolv.conf
//! and relays the answer. Two details from CoreDNS's `forward` plugin:
//!
//! - the question goes upstream over the transport the client used: a
//!   UDP answer too big for a datagram comes back truncated (TC), and the
//!   client retries over TCP, which is then forwarded over TCP;
//! - our own addresses are skipped: a node whose resolv.conf names the
//!   cluster DNS would otherwise forward to itself forever (the classic
//!   CoreDNS "loop detected" crash).
//!
//! When no upstream answers - none configured, or none reachable, as on
//! the lab's nodes, which have no route out - the client gets SERVFAIL at
//! once, never a silent timeout: a resolver that times out waits 5 s per
//! try, a SERVFAIL lets it give up (or try its next search suffix) now.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Edns, Message, MessageType, Query};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};

/// The node's resolver configuration, as on every Linux machine.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// How long one upstream server gets to answer (CoreDNS `forward`'s read
/// timeout). Unreachable servers fail faster: the kernel says so at once.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// The largest UDP answer asked for: the DNS flag day 2020 value, which
/// avoids IP fragmentation on any path.
const EDNS_PAYLOAD: u16 = 1232;

/// Why a forwarded question got no answer.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("no upstream resolver is configured (none in {RESOLV_CONF} but our own addresses)")]
    NoServers,
    #[error("asking {server} over {protocol}: {source}")]
    Io {
        server: SocketAddr,
        protocol: Protocol,
        #[source]
        source: io::Error,
    },
    #[error("{server} did not answer within {UPSTREAM_TIMEOUT:?}")]
    Timeout { server: SocketAddr },
    #[error("{server} sent an answer that is not DNS: {reason}")]
    Malformed { server: SocketAddr, reason: String },
    #[error("encoding the question for upstream: {0}")]
    Encode(String),
}

/// The node's upstream resolvers, tried in order.
#[derive(Debug, Clone)]
pub struct Upstream {
    servers: Vec<SocketAddr>,
    timeout: Duration,
}

impl Upstream {
    pub fn new(servers: Vec<SocketAddr>) -> Self {
        Upstream {
            servers,
            timeout: UPSTREAM_TIMEOUT,
        }
    }

    pub fn servers(&self) -> &[SocketAddr] {
        &self.servers
    }

    /// Asks `question` of each server in turn until one answers (any
    /// answer, NXDOMAIN included, is an answer).
    pub async fn query(
        &self,
        question: &Query,
        recursion_desired: bool,
        protocol: Protocol,
    ) -> Result<Message, UpstreamError> {
        let mut last_error = UpstreamError::NoServers;
        for server in &self.servers {
            match self
                .ask(*server, question, recursion_desired, protocol)
                .await
            {
                Ok(answer) => return Ok(answer),
                Err(error) => {
                    tracing::debug!(%error, "upstream resolver failed");
                    last_error = error;
                }
            }
        }
        Err(last_error)
    }

    async fn ask(
        &self,
        server: SocketAddr,
        question: &Query,
        recursion_desired: bool,
        protocol: Protocol,
    ) -> Result<Message, UpstreamError> {
        // A fresh random ID per question: an off-path attacker must guess
        // it (and the random source port) to slip in a forged answer.
        let id: u16 = rand::random();
        let mut message = Message::query();
        message.metadata.id = id;
        message.metadata.recursion_desired = recursion_desired;
        message.add_query(question.clone());
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        message.set_edns(edns);
        let bytes = message
            .to_vec()
            .map_err(|e| UpstreamError::Encode(e.to_string()))?;
        let io_error = |source| UpstreamError::Io {
            server,
            protocol,
            source,
        };
        let exchange = async {
            match protocol {
                Protocol::Tcp => ask_tcp(server, &bytes).await.map_err(io_error),
                _ => ask_udp(server, &bytes, id).await.map_err(io_error),
            }
        };
        let raw = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| UpstreamError::Timeout { server })??;
        let answer = Message::from_vec(&raw).map_err(|e| UpstreamError::Malformed {
            server,
            reason: e.to_string(),
        })?;
        if answer.metadata.id != id || answer.metadata.message_type != MessageType::Response {
            return Err(UpstreamError::Malformed {
                server,
                reason: "the answer does not match the question".into(),
            });
        }
        Ok(answer)
    }
}

/// One question over UDP, from a fresh socket connected to `server` (so
/// that only its datagrams arrive, and an ICMP "unreachable" fails the
/// receive at once).
async fn ask_udp(server: SocketAddr, question: &[u8], id: u16) -> io::Result<Vec<u8>> {
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    socket.send(question).await?;
    let mut buffer = vec![0u8; usize::from(u16::MAX)];
    loop {
        let n = socket.recv(&mut buffer).await?;
        // A late answer to an earlier question cannot arrive on a fresh
        // socket, but a stray datagram could: check the ID.
        if n >= 2 && u16::from_be_bytes([buffer[0], buffer[1]]) == id {
            buffer.truncate(n);
            return Ok(buffer);
        }
    }
}

/// One question over TCP: each message is preceded by its length in two
/// bytes (RFC 1035 4.2.2).
async fn ask_tcp(server: SocketAddr, question: &[u8]) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(server).await?;
    let length = u16::try_from(question.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "question too long"))?;
    let mut framed = Vec::with_capacity(question.len() + 2);
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(question);
    stream.write_all(&framed).await?;
    let length = stream.read_u16().await?;
    let mut answer = vec![0u8; usize::from(length)];
    stream.read_exact(&mut answer).await?;
    Ok(answer)
}

/// The `nameserver` lines of a resolv.conf, on port 53, without the
/// addresses in `ours` (this server's own: forwarding to them would loop).
pub fn nameservers(resolv_conf: &str, ours: &[IpAddr]) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next())?
        })
        // An IPv6 nameserver may carry a zone (`fe80::1%eth0`).
        .filter_map(|address| address.split('%').next()?.parse::<IpAddr>().ok())
        .filter(|ip| !ours.contains(ip))
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// [`nameservers`] of the file at `path`; none when it cannot be read
/// (logged: the cluster's own names work without it).
pub fn nameservers_from_file(path: &Path, ours: &[IpAddr]) -> Vec<SocketAddr> {
    match std::fs::read_to_string(path) {
        Ok(text) => nameservers(&text, ours),
        Err(error) => {
            tracing::warn!(%error, path = %path.display(), "cannot read the node's resolver configuration; names outside the cluster will get SERVFAIL");
            vec![]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_skip_our_own_addresses_and_comments() {
        let conf = "# generated\nsearch lan\nnameserver 192.168.56.1\nnameserver 10.96.0.10\n\
                    nameserver fe80::1%eth0\noptions ndots:1\nnameserver not-an-ip\n";
        let ours: Vec<IpAddr> = vec!["10.96.0.10".parse().unwrap()];
        assert_eq!(
            nameservers(conf, &ours),
            vec![
                "192.168.56.1:53".parse::<SocketAddr>().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
    }

    #[test]
    fn an_empty_resolv_conf_has_no_nameservers() {
        assert!(nameservers("search example\n", &[]).is_empty());
    }

    #[tokio::test]
    async fn no_servers_fails_at_once() {
        let upstream = Upstream::new(vec![]);
        let question = Query::query(
            "example.test.".parse().unwrap(),
            hickory_server::proto::rr::RecordType::A,
        );
        let error = upstream
            .query(&question, true, Protocol::Udp)
            .await
            .unwrap_err();
        // NoServers, not a timeout: nothing was sent anywhere.
        assert!(matches!(error, UpstreamError::NoServers), "{error}");
    }
}
