//! The DNS server itself: questions in over UDP and TCP, answers out.
//!
//! `hickory-server` does the protocol work - sockets, parsing, TCP's
//! length-prefixed framing, truncating UDP answers that do not fit (the
//! client then retries over TCP). This module is the glue: for each
//! question it asks the cluster zone ([`super::records`]) and either
//! sends that answer, with the "authoritative" flag, or relays what the
//! node's upstream resolvers say ([`super::upstream`]).
//!
//! Header flags, as CoreDNS sets them: cluster answers are authoritative
//! (`aa`) and do not claim recursion (`ra` unset - why `dig` warns
//! "recursion requested but not available", as it does against CoreDNS);
//! relayed answers keep the upstream's flags.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, Message, Metadata, OpCode, Query, ResponseCode,
};
use hickory_server::proto::rr::{DNSClass, Name, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;
use tokio::net::{TcpListener, UdpSocket};

use super::cache::SharedZone;
use super::records::{Answer, Resolution};
use super::upstream::Upstream;

/// How long an idle TCP client may keep its connection (hickory's
/// default for its own server).
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// How many answers may wait to be written to one TCP connection.
const TCP_RESPONSE_BUFFER: usize = 32;

/// Answers questions from the cluster zone and the upstream resolvers.
pub struct ClusterDnsHandler {
    /// The cluster's domain, known before the zone is: questions under it
    /// get SERVFAIL, not forwarding, while the cache fills.
    origin: Name,
    zone: SharedZone,
    upstream: Upstream,
    /// Rotates address answers, so that clients that take the first
    /// address spread over a headless Service's Pods (CoreDNS's
    /// `loadbalance` plugin, in every kubeadm Corefile).
    rotation: AtomicUsize,
}

impl ClusterDnsHandler {
    pub fn new(origin: Name, zone: SharedZone, upstream: Upstream) -> Self {
        ClusterDnsHandler {
            origin,
            zone,
            upstream,
            rotation: AtomicUsize::new(0),
        }
    }

    /// What to answer `query`, as records, before any encoding.
    async fn resolve(&self, query: &Query, request: &Request) -> Reply {
        let qname = query.name();
        let qtype = query.query_type();
        if request.metadata.op_code != OpCode::Query {
            return Reply::Error(ResponseCode::NotImp);
        }
        if query.query_class() != DNSClass::IN {
            return Reply::Error(ResponseCode::Refused);
        }
        let zone = self.zone.borrow().clone();
        let resolution = match zone {
            Some(zone) => zone.resolve(qname, qtype),
            None if self.origin.zone_of(qname) => return Reply::Error(ResponseCode::ServFail),
            None => Resolution::Forward,
        };
        match resolution {
            Resolution::Answer(mut answer) => {
                if let Some(target) = answer.chase.take() {
                    self.chase(&mut answer, target, qtype, request.protocol())
                        .await;
                }
                self.rotate(&mut answer.answers);
                Reply::Cluster(answer)
            }
            Resolution::Forward => {
                match self
                    .upstream
                    .query(
                        query,
                        request.metadata.recursion_desired,
                        request.protocol(),
                    )
                    .await
                {
                    Ok(message) => Reply::Relayed(message),
                    Err(error) => {
                        tracing::debug!(%error, name = %qname, "cannot forward; answering SERVFAIL");
                        Reply::Error(ResponseCode::ServFail)
                    }
                }
            }
        }
    }

    /// Appends the upstream's answer for the target of an ExternalName's
    /// CNAME. When upstream cannot say, the CNAME alone is the answer (the
    /// client may still resolve the target itself).
    async fn chase(
        &self,
        answer: &mut Answer,
        target: Name,
        qtype: RecordType,
        protocol: Protocol,
    ) {
        if !matches!(qtype, RecordType::A | RecordType::AAAA) || self.upstream.servers().is_empty()
        {
            return;
        }
        let question = Query::query(target, qtype);
        match self.upstream.query(&question, true, protocol).await {
            Ok(message) => answer.answers.extend(message.answers),
            Err(error) => {
                tracing::debug!(%error, "cannot resolve an ExternalName's target upstream")
            }
        }
    }

    /// Round robin over address-only answers.
    fn rotate(&self, answers: &mut [Record]) {
        let addresses_only = answers
            .iter()
            .all(|r| matches!(r.record_type(), RecordType::A | RecordType::AAAA));
        if answers.len() > 1 && addresses_only {
            let turn = self.rotation.fetch_add(1, Ordering::Relaxed);
            answers.rotate_left(turn % answers.len());
        }
    }
}

/// The three kinds of answers.
enum Reply {
    /// From the cluster zone.
    Cluster(Answer),
    /// From an upstream resolver.
    Relayed(Message),
    /// Only a response code.
    Error(ResponseCode),
}

#[async_trait::async_trait]
impl RequestHandler for ClusterDnsHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let reply = match request.request_info() {
            Ok(info) => self.resolve(info.query.original(), request).await,
            // Not exactly one question: nothing standard to answer.
            Err(_) => Reply::Error(ResponseCode::FormErr),
        };
        let edns = request.edns.as_ref().map(|asked| {
            let mut edns = Edns::new();
            edns.set_max_payload(asked.max_payload().max(512));
            edns
        });
        let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());
        let mut metadata = Metadata::response_from_request(&request.metadata);
        let sent = match &reply {
            Reply::Cluster(answer) => {
                metadata.authoritative = true;
                metadata.response_code = answer.code;
                let message = builder.build(
                    metadata,
                    answer.answers.iter(),
                    answer.authority.iter(),
                    std::iter::empty(),
                    answer.additionals.iter(),
                );
                response_handle.send_response(message).await
            }
            Reply::Relayed(upstream) => {
                metadata.authoritative = upstream.metadata.authoritative;
                metadata.truncation = upstream.metadata.truncation;
                metadata.recursion_available = upstream.metadata.recursion_available;
                metadata.authentic_data = upstream.metadata.authentic_data;
                metadata.response_code = upstream.metadata.response_code;
                let message = builder.build(
                    metadata,
                    upstream.answers.iter(),
                    upstream.authorities.iter(),
                    std::iter::empty(),
                    upstream.additionals.iter(),
                );
                response_handle.send_response(message).await
            }
            Reply::Error(code) => {
                let message = builder.error_msg(&request.metadata, *code);
                response_handle.send_response(message).await
            }
        };
        sent.unwrap_or_else(|error| {
            tracing::debug!(%error, "cannot send a DNS answer");
            metadata.response_code = ResponseCode::ServFail;
            ResponseInfo::from(Header {
                metadata,
                counts: HeaderCounts::default(),
            })
        })
    }
}

/// The sockets of the server, bound before anything else so that a port
/// already in use is reported at start.
pub struct Listeners {
    pub udp: UdpSocket,
    pub tcp: TcpListener,
}

impl Listeners {
    /// Binds UDP and TCP on `addr`; with port 0, TCP takes the port UDP
    /// got, so one address serves both (as DNS expects).
    pub async fn bind(addr: SocketAddr) -> Result<Self, super::DnsError> {
        let udp = UdpSocket::bind(addr)
            .await
            .map_err(|source| super::DnsError::Bind {
                protocol: "UDP",
                addr,
                source,
            })?;
        let addr = udp.local_addr().map_err(|source| super::DnsError::Bind {
            protocol: "UDP",
            addr,
            source,
        })?;
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(|source| super::DnsError::Bind {
                protocol: "TCP",
                addr,
                source,
            })?;
        Ok(Listeners { udp, tcp })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.udp.local_addr()
    }
}

/// Serves DNS on `listeners` until the sockets fail. Dropping the future
/// stops every task of the server.
pub async fn serve(
    listeners: Listeners,
    handler: ClusterDnsHandler,
) -> Result<(), super::DnsError> {
    let mut server = Server::new(handler);
    server.register_socket(listeners.udp);
    server.register_listener(listeners.tcp, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
    server
        .block_until_done()
        .await
        .map_err(|e| super::DnsError::Server(e.to_string()))?;
    Err(super::DnsError::Server("the DNS server stopped".into()))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::sync::{Arc, Mutex};

    use hickory_server::net::runtime::TokioTime;
    use hickory_server::net::NetError;
    use hickory_server::proto::rr::rdata::{A, CNAME};
    use hickory_server::proto::rr::RData;
    use hickory_server::proto::serialize::binary::BinEncoder;
    use hickory_server::zone_handler::MessageResponse;
    use tokio::sync::watch;

    use super::*;
    use crate::dns::records::{ApiObjects, ClusterZone};

    /// Keeps the last answer, decoded.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Option<Message>>>);

    #[async_trait::async_trait]
    impl ResponseHandler for Captured {
        async fn send_response<'a>(
            &mut self,
            response: MessageResponse<
                '_,
                'a,
                impl Iterator<Item = &'a Record> + Send + 'a,
                impl Iterator<Item = &'a Record> + Send + 'a,
                impl Iterator<Item = &'a Record> + Send + 'a,
                impl Iterator<Item = &'a Record> + Send + 'a,
            >,
        ) -> Result<ResponseInfo, NetError> {
            let mut bytes = Vec::new();
            let info = response.destructive_emit(&mut BinEncoder::new(&mut bytes))?;
            *self.0.lock().unwrap() = Some(Message::from_vec(&bytes).unwrap());
            Ok(info)
        }
    }

    fn origin() -> Name {
        Name::from_ascii("cluster.local.").unwrap()
    }

    async fn ask(handler: &ClusterDnsHandler, name: &str, qtype: RecordType) -> Message {
        let mut question = Message::query();
        question.metadata.id = 7;
        question.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        let request = Request::from_bytes(
            question.to_vec().unwrap(),
            "127.0.0.1:5353".parse().unwrap(),
            Protocol::Udp,
        )
        .unwrap();
        let captured = Captured::default();
        handler
            .handle_request::<_, TokioTime>(&request, captured.clone())
            .await;
        let answer = captured.0.lock().unwrap().take().expect("an answer");
        assert_eq!(answer.metadata.id, 7);
        answer
    }

    #[tokio::test]
    async fn before_the_cache_is_synced_cluster_names_get_servfail() {
        let (zone_tx, zone_rx) = watch::channel(None);
        let handler = ClusterDnsHandler::new(origin(), zone_rx, Upstream::new(vec![]));
        let answer = ask(&handler, "web.default.svc.cluster.local.", RecordType::A).await;
        assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);

        zone_tx.send_replace(Some(Arc::new(ClusterZone::build(
            &origin(),
            Ipv4Addr::new(10, 96, 0, 10),
            1,
            &ApiObjects::default(),
        ))));
        let answer = ask(&handler, "web.default.svc.cluster.local.", RecordType::A).await;
        assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
        assert!(answer.metadata.authoritative);
        assert!(!answer.metadata.recursion_available);
        // Not the cluster's, and no upstream: SERVFAIL.
        let answer = ask(&handler, "example.test.", RecordType::A).await;
        assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
    }

    #[test]
    fn address_answers_take_turns_and_cname_chains_keep_their_order() {
        let (_zone_tx, zone_rx) = watch::channel(None);
        let handler = ClusterDnsHandler::new(origin(), zone_rx, Upstream::new(vec![]));
        let name = Name::from_ascii("db.default.svc.cluster.local.").unwrap();
        let a = |last: u8| Record::from_rdata(name.clone(), 5, RData::A(A::new(10, 244, 1, last)));
        let mut firsts = vec![];
        for _ in 0..3 {
            let mut answers = vec![a(1), a(2), a(3)];
            handler.rotate(&mut answers);
            firsts.push(answers[0].clone());
        }
        assert_eq!(firsts, [a(1), a(2), a(3)]);
        let cname = Record::from_rdata(name.clone(), 5, RData::CNAME(CNAME(origin())));
        let mut chain = vec![cname.clone(), a(1)];
        handler.rotate(&mut chain);
        assert_eq!(chain, [cname, a(1)]);
    }
}
