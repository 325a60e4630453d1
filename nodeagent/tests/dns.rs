//! Cluster DNS against the real apiserver, asked over the wire.
//!
//! Each test starts an apiserver (a child process, killed by PID when the
//! test ends, even on failure), writes Services, EndpointSlices and Pods
//! through the API, and runs `nodeagent::dns::run` in the test on a
//! loopback address. Questions are real DNS messages over UDP and TCP;
//! the search-path test even asks through glibc, as `curl` in a Pod does.
//! Upstream resolvers are fakes on loopback: nothing leaves the machine.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use e2e::harness::ApiServer;
use hickory_server::proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_server::proto::rr::rdata::A;
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::Api;
use nodeagent::dns::{self, DnsConfig};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// A host-only LAN address: published in the EndpointSlice, never sent to.
const NODE_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 56, 11);
const CLUSTER_DNS: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

struct Cluster {
    _dir: tempfile::TempDir,
    _apiserver: ApiServer,
    client: kube::Client,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let apiserver = ApiServer::start(dir.path());
        let client =
            kube::Client::try_from(kube::Config::new(apiserver.url.parse().unwrap())).unwrap();
        Cluster {
            _dir: dir,
            _apiserver: apiserver,
            client,
        }
    }

    fn services(&self, namespace: &str) -> Api<Service> {
        Api::namespaced(self.client.clone(), namespace)
    }

    fn slices(&self, namespace: &str) -> Api<EndpointSlice> {
        Api::namespaced(self.client.clone(), namespace)
    }

    async fn create_service(
        &self,
        namespace: &str,
        name: &str,
        spec: serde_json::Value,
    ) -> Service {
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": namespace}, "spec": spec
        }))
        .unwrap();
        self.services(namespace)
            .create(&PostParams::default(), &service)
            .await
            .unwrap_or_else(|e| panic!("creating Service {name}: {e}"))
    }

    async fn create_slice(
        &self,
        namespace: &str,
        service: &str,
        ports: serde_json::Value,
        endpoints: serde_json::Value,
    ) {
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": format!("{service}-1"), "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "ports": ports, "endpoints": endpoints
        }))
        .unwrap();
        self.slices(namespace)
            .create(&PostParams::default(), &slice)
            .await
            .unwrap_or_else(|e| panic!("creating the slice of {service}: {e}"));
    }

    /// A Pod with a running status and `ip`, as a node agent reports it.
    async fn create_pod(&self, namespace: &str, name: &str, ip: &str) {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
        let status = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}});
        pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
    }

    /// Runs a node's cluster DNS on a free loopback port of `ip`; it stops
    /// when the returned guard is dropped.
    async fn start_dns(&self, node: &str, ip: Ipv4Addr, upstream: Vec<SocketAddr>) -> Dns {
        self.start_dns_on(node, free_dns_addr(ip), upstream).await
    }

    async fn start_dns_on(&self, node: &str, listen: SocketAddr, upstream: Vec<SocketAddr>) -> Dns {
        let config = DnsConfig {
            node_name: node.into(),
            node_ip: NODE_IP,
            cluster_domain: "cluster.local".into(),
            cluster_dns_ip: CLUSTER_DNS,
            listen,
            upstream,
        };
        let task = tokio::spawn(dns::run(self.client.clone(), config));
        let dns = Dns { addr: listen, task };
        // Ready once the cache is synced and the kube-dns Service exists.
        eventually(20, "cluster DNS to answer its own Service", || async {
            let answer = dns
                .try_ask("kube-dns.kube-system.svc.cluster.local.", RecordType::A)
                .await?;
            (addresses(&answer) == [IpAddr::V4(CLUSTER_DNS)]).then_some(())
        })
        .await;
        dns
    }
}

/// A running DNS server; aborted when dropped.
struct Dns {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<Result<(), dns::DnsError>>,
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Dns {
    async fn ask(&self, name: &str, qtype: RecordType) -> Message {
        self.try_ask(name, qtype)
            .await
            .unwrap_or_else(|| panic!("no answer for {name} {qtype} from {}", self.addr))
    }

    /// One question over UDP, with a 5 s limit.
    async fn try_ask(&self, name: &str, qtype: RecordType) -> Option<Message> {
        assert!(
            !self.task.is_finished(),
            "the DNS server on {} stopped (is the port in use?)",
            self.addr
        );
        let (id, question) = question(name, qtype);
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket.connect(self.addr).await.unwrap();
        socket.send(&question).await.unwrap();
        let mut buffer = vec![0; 65535];
        let n = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buffer))
            .await
            .ok()?
            .ok()?;
        let answer = Message::from_vec(&buffer[..n]).unwrap();
        assert_eq!(answer.metadata.id, id);
        Some(answer)
    }

    /// One question over TCP.
    async fn ask_tcp(&self, name: &str, qtype: RecordType) -> Message {
        let (id, question) = question(name, qtype);
        let mut stream = TcpStream::connect(self.addr).await.unwrap();
        stream.write_u16(question.len() as u16).await.unwrap();
        stream.write_all(&question).await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(5), async {
            let length = stream.read_u16().await.unwrap();
            let mut answer = vec![0; usize::from(length)];
            stream.read_exact(&mut answer).await.unwrap();
            answer
        })
        .await
        .expect("an answer over TCP");
        let answer = Message::from_vec(&answer).unwrap();
        assert_eq!(answer.metadata.id, id);
        answer
    }
}

fn question(name: &str, qtype: RecordType) -> (u16, Vec<u8>) {
    let id = rand::random();
    let mut message = Message::query();
    message.metadata.id = id;
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    (id, message.to_vec().unwrap())
}

/// A loopback address of `ip` whose port is free for UDP and TCP.
fn free_dns_addr(ip: Ipv4Addr) -> SocketAddr {
    for _ in 0..50 {
        let udp = std::net::UdpSocket::bind((ip, 0)).unwrap();
        let addr = udp.local_addr().unwrap();
        if std::net::TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
    panic!("no free port on {ip}");
}

fn addresses(answer: &Message) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = answer
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    ips.sort();
    ips
}

fn lines(records: &[Record]) -> Vec<String> {
    let mut lines: Vec<String> = records.iter().map(ToString::to_string).collect();
    lines.sort();
    lines
}

use e2e::harness::eventually_async as eventually;

fn cluster_ip(service: &Service) -> Ipv4Addr {
    service
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_pods_and_reverse_names_answer_over_udp_and_tcp() {
    let c = Cluster::start();
    let ngx = c
        .create_service(
            "default",
            "ngx-svc",
            json!({"ports": [{"name": "http", "port": 80}]}),
        )
        .await;
    let ngx_ip = cluster_ip(&ngx);
    c.create_slice(
        "default",
        "ngx-svc",
        json!([{"name": "http", "port": 80, "protocol": "TCP"}]),
        json!([{"addresses": ["10.244.1.10"], "conditions": {"ready": true}}]),
    )
    .await;
    c.create_service(
        "default",
        "db",
        json!({"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}),
    )
    .await;
    c.create_slice(
        "default",
        "db",
        json!([{"name": "pg", "port": 5432, "protocol": "TCP"}]),
        json!([
            {"addresses": ["10.244.1.5"], "hostname": "db-0", "conditions": {"ready": true}},
            {"addresses": ["10.244.2.6"], "hostname": "db-1", "conditions": {"ready": true}},
            {"addresses": ["10.244.2.7"], "hostname": "db-2", "conditions": {"ready": false}},
        ]),
    )
    .await;
    c.create_service(
        "default",
        "empty",
        json!({"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}),
    )
    .await;
    c.create_service(
        "default",
        "ext",
        json!({"type": "ExternalName", "externalName": "db.example.test"}),
    )
    .await;
    c.create_pod("default", "web", "10.244.2.20").await;

    let dns = c
        .start_dns("worker1", Ipv4Addr::new(127, 0, 0, 1), vec![])
        .await;

    // A: the ClusterIP, authoritative, with recursion not claimed.
    let answer = dns
        .ask("ngx-svc.default.svc.cluster.local.", RecordType::A)
        .await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert!(answer.metadata.authoritative);
    assert_eq!(answer.metadata.message_type, MessageType::Response);
    assert_eq!(
        lines(&answer.answers),
        [format!(
            "ngx-svc.default.svc.cluster.local. 5 IN A {ngx_ip}"
        )]
    );
    // The same over TCP.
    let answer = dns
        .ask_tcp("ngx-svc.default.svc.cluster.local.", RecordType::A)
        .await;
    assert_eq!(addresses(&answer), [IpAddr::V4(ngx_ip)]);
    // AAAA of an IPv4 Service: NODATA with the SOA.
    let answer = dns
        .ask("ngx-svc.default.svc.cluster.local.", RecordType::AAAA)
        .await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert!(answer.answers.is_empty());
    assert_eq!(answer.authorities.len(), 1);
    assert_eq!(answer.authorities[0].record_type(), RecordType::SOA);

    // Headless: the ready endpoints.
    let answer = dns
        .ask("db.default.svc.cluster.local.", RecordType::A)
        .await;
    assert_eq!(
        addresses(&answer),
        [
            "10.244.1.5".parse::<IpAddr>().unwrap(),
            "10.244.2.6".parse().unwrap()
        ]
    );
    let answer = dns
        .ask("db-1.db.default.svc.cluster.local.", RecordType::A)
        .await;
    assert_eq!(
        addresses(&answer),
        ["10.244.2.6".parse::<IpAddr>().unwrap()]
    );
    // Headless without ready endpoints: NXDOMAIN.
    let answer = dns
        .ask("empty.default.svc.cluster.local.", RecordType::A)
        .await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);

    // SRV of a named port, addresses in the additional section.
    let answer = dns
        .ask(
            "_http._tcp.ngx-svc.default.svc.cluster.local.",
            RecordType::SRV,
        )
        .await;
    assert_eq!(
        lines(&answer.answers),
        ["_http._tcp.ngx-svc.default.svc.cluster.local. 5 IN SRV 0 100 80 ngx-svc.default.svc.cluster.local."]
    );
    assert_eq!(
        lines(&answer.additionals),
        [format!(
            "ngx-svc.default.svc.cluster.local. 5 IN A {ngx_ip}"
        )]
    );
    let answer = dns
        .ask("_pg._tcp.db.default.svc.cluster.local.", RecordType::SRV)
        .await;
    assert_eq!(
        lines(&answer.answers),
        [
            "_pg._tcp.db.default.svc.cluster.local. 5 IN SRV 0 50 5432 db-0.db.default.svc.cluster.local.",
            "_pg._tcp.db.default.svc.cluster.local. 5 IN SRV 0 50 5432 db-1.db.default.svc.cluster.local.",
        ]
    );

    // ExternalName: a CNAME (no upstream here to chase the target).
    let answer = dns
        .ask("ext.default.svc.cluster.local.", RecordType::A)
        .await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        lines(&answer.answers),
        ["ext.default.svc.cluster.local. 5 IN CNAME db.example.test."]
    );

    // Pod records.
    let answer = dns
        .ask("10-244-2-20.default.pod.cluster.local.", RecordType::A)
        .await;
    assert_eq!(
        addresses(&answer),
        ["10.244.2.20".parse::<IpAddr>().unwrap()]
    );
    let answer = dns
        .ask("10-244-2-21.default.pod.cluster.local.", RecordType::A)
        .await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);

    // PTR: the Service, an endpoint, a Pod.
    let octets = ngx_ip.octets();
    let reverse = format!(
        "{}.{}.{}.{}.in-addr.arpa.",
        octets[3], octets[2], octets[1], octets[0]
    );
    let answer = dns.ask(&reverse, RecordType::PTR).await;
    assert_eq!(
        lines(&answer.answers),
        [format!(
            "{reverse} 5 IN PTR ngx-svc.default.svc.cluster.local."
        )]
    );
    let answer = dns.ask("5.1.244.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(
        lines(&answer.answers),
        ["5.1.244.10.in-addr.arpa. 5 IN PTR db-0.db.default.svc.cluster.local."]
    );
    let answer = dns.ask("20.2.244.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(
        lines(&answer.answers),
        ["20.2.244.10.in-addr.arpa. 5 IN PTR 10-244-2-20.default.pod.cluster.local."]
    );

    // Unknown names of the zone: NXDOMAIN with the SOA.
    let answer = dns
        .ask("nope.default.svc.cluster.local.", RecordType::A)
        .await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
    assert!(answer.metadata.authoritative);
    let soa = lines(&answer.authorities);
    assert_eq!(soa.len(), 1);
    assert!(
        soa[0].starts_with(
            "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. "
        ) && soa[0].ends_with(" 7200 1800 86400 5"),
        "{soa:?}"
    );
    let answer = dns.ask("dns-version.cluster.local.", RecordType::TXT).await;
    assert_eq!(
        lines(&answer.answers),
        ["dns-version.cluster.local. 28800 IN TXT 1.1.0"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_follow_api_changes() {
    let c = Cluster::start();
    let dns = c
        .start_dns("worker1", Ipv4Addr::new(127, 0, 0, 1), vec![])
        .await;
    // How long each change took to show is printed, not asserted (this
    // machine is shared); `eventually` fails the test after 5 s.
    let took = |what: &'static str, started: Instant| {
        println!("{what}: answered after {:?}", started.elapsed());
    };

    // A new Service.
    let started = Instant::now();
    let web = c
        .create_service("default", "web", json!({"ports": [{"port": 80}]}))
        .await;
    let ip = IpAddr::V4(cluster_ip(&web));
    eventually(5, "the new Service's name", || async {
        let answer = dns
            .ask("web.default.svc.cluster.local.", RecordType::A)
            .await;
        (addresses(&answer) == [ip]).then_some(())
    })
    .await;
    took("a new Service", started);

    // A headless Service gaining a ready endpoint.
    c.create_service(
        "default",
        "db",
        json!({"clusterIP": "None", "ports": [{"port": 5432}]}),
    )
    .await;
    let started = Instant::now();
    c.create_slice(
        "default",
        "db",
        json!([{"port": 5432, "protocol": "TCP"}]),
        json!([{"addresses": ["10.244.1.5"], "conditions": {"ready": true}}]),
    )
    .await;
    eventually(5, "the headless Service's endpoint", || async {
        let answer = dns
            .ask("db.default.svc.cluster.local.", RecordType::A)
            .await;
        (addresses(&answer) == ["10.244.1.5".parse::<IpAddr>().unwrap()]).then_some(())
    })
    .await;
    took("a new endpoint", started);

    // An ExternalName changing its target.
    c.create_service(
        "default",
        "ext",
        json!({"type": "ExternalName", "externalName": "a.example.test"}),
    )
    .await;
    eventually(5, "the ExternalName", || async {
        let answer = dns
            .ask("ext.default.svc.cluster.local.", RecordType::CNAME)
            .await;
        (!answer.answers.is_empty()).then_some(())
    })
    .await;
    let started = Instant::now();
    c.services("default")
        .patch(
            "ext",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"externalName": "b.example.test"}})),
        )
        .await
        .unwrap();
    eventually(5, "the new ExternalName target", || async {
        let answer = dns
            .ask("ext.default.svc.cluster.local.", RecordType::CNAME)
            .await;
        (lines(&answer.answers) == ["ext.default.svc.cluster.local. 5 IN CNAME b.example.test."])
            .then_some(())
    })
    .await;
    took("an ExternalName change", started);

    // A deleted Service.
    let started = Instant::now();
    c.services("default")
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    eventually(5, "the deleted Service's NXDOMAIN", || async {
        let answer = dns
            .ask("web.default.svc.cluster.local.", RecordType::A)
            .await;
        (answer.metadata.response_code == ResponseCode::NXDomain).then_some(())
    })
    .await;
    took("a deleted Service", started);
}

/// A fake upstream resolver on loopback: `*.example.test` A 192.0.2.7,
/// NXDOMAIN for anything else, over UDP and TCP. Counts questions.
struct FakeUpstream {
    addr: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn fake_answer(question: &[u8]) -> Vec<u8> {
    let query = Message::from_vec(question).unwrap();
    let mut answer = Message::response(query.metadata.id, query.metadata.op_code);
    answer.metadata.recursion_desired = query.metadata.recursion_desired;
    answer.metadata.recursion_available = true;
    let q = query.queries[0].clone();
    let known = Name::from_ascii("example.test.").unwrap().zone_of(q.name());
    if known && q.query_type() == RecordType::A {
        answer.add_answer(Record::from_rdata(
            q.name().clone(),
            300,
            RData::A(A(Ipv4Addr::new(192, 0, 2, 7))),
        ));
    } else if !known {
        answer.metadata.response_code = ResponseCode::NXDomain;
    }
    answer.add_query(q);
    answer.to_vec().unwrap()
}

async fn start_fake_upstream() -> FakeUpstream {
    let addr = free_dns_addr(Ipv4Addr::new(127, 0, 0, 1));
    let udp = UdpSocket::bind(addr).await.unwrap();
    let tcp = TcpListener::bind(addr).await.unwrap();
    let udp_task = tokio::spawn(async move {
        let mut buffer = vec![0; 65535];
        while let Ok((n, from)) = udp.recv_from(&mut buffer).await {
            let _ = udp.send_to(&fake_answer(&buffer[..n]), from).await;
        }
    });
    let tcp_task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = tcp.accept().await {
            tokio::spawn(async move {
                let length = stream.read_u16().await.unwrap();
                let mut question = vec![0; usize::from(length)];
                stream.read_exact(&mut question).await.unwrap();
                let answer = fake_answer(&question);
                stream.write_u16(answer.len() as u16).await.unwrap();
                stream.write_all(&answer).await.unwrap();
            });
        }
    });
    FakeUpstream {
        addr,
        tasks: vec![udp_task, tcp_task],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_outside_the_cluster_are_forwarded_or_servfail_at_once() {
    let c = Cluster::start();
    c.create_service(
        "default",
        "ext",
        json!({"type": "ExternalName", "externalName": "db.example.test"}),
    )
    .await;
    let upstream = start_fake_upstream().await;
    let dns = c
        .start_dns("worker1", Ipv4Addr::new(127, 0, 0, 1), vec![upstream.addr])
        .await;

    // Relayed over UDP and TCP, with the upstream's flags.
    let answer = dns.ask("www.example.test.", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert!(!answer.metadata.authoritative);
    assert!(answer.metadata.recursion_available);
    assert_eq!(addresses(&answer), ["192.0.2.7".parse::<IpAddr>().unwrap()]);
    let answer = dns.ask_tcp("www.example.test.", RecordType::A).await;
    assert_eq!(addresses(&answer), ["192.0.2.7".parse::<IpAddr>().unwrap()]);
    // The upstream's NXDOMAIN is relayed as it is.
    let answer = dns.ask("www.elsewhere.test.", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
    // An ExternalName's target is chased upstream.
    let answer = dns
        .ask("ext.default.svc.cluster.local.", RecordType::A)
        .await;
    assert_eq!(
        lines(&answer.answers),
        [
            "db.example.test. 300 IN A 192.0.2.7",
            "ext.default.svc.cluster.local. 5 IN CNAME db.example.test.",
        ]
    );
    // Cluster names never go upstream.
    let answer = dns
        .ask("nope.default.svc.cluster.local.", RecordType::A)
        .await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
    assert!(answer.metadata.authoritative);

    // Without upstream: SERVFAIL at once.
    let lonely = c
        .start_dns("worker2", Ipv4Addr::new(127, 0, 0, 1), vec![])
        .await;
    let answer = lonely.ask("www.example.test.", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
    // The ExternalName still answers its CNAME.
    let answer = lonely
        .ask("ext.default.svc.cluster.local.", RecordType::A)
        .await;
    assert_eq!(
        lines(&answer.answers),
        ["ext.default.svc.cluster.local. 5 IN CNAME db.example.test."]
    );

    // An upstream nobody listens on (a node with no route out fails the
    // same way): SERVFAIL at once too, not a hang.
    let nobody = free_dns_addr(Ipv4Addr::new(127, 0, 0, 1));
    let refused = c
        .start_dns("worker3", Ipv4Addr::new(127, 0, 0, 1), vec![nobody])
        .await;
    let answer = refused.ask("www.example.test.", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);

    // An upstream that never answers: SERVFAIL after its timeout.
    let silent = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 1), 0))
        .await
        .unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let slow = c
        .start_dns("worker4", Ipv4Addr::new(127, 0, 0, 1), vec![silent_addr])
        .await;
    let answer = slow.ask("www.example.test.", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_publishes_its_endpoint_of_the_kube_dns_service() {
    let c = Cluster::start();
    let first = c
        .start_dns("worker1", Ipv4Addr::new(127, 0, 0, 1), vec![])
        .await;
    let second = c
        .start_dns("worker2", Ipv4Addr::new(127, 0, 0, 1), vec![])
        .await;

    // One Service, as kubeadm's, but selectorless and node-local.
    let service = c.services("kube-system").get("kube-dns").await.unwrap();
    let spec = service.spec.clone().unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.10"));
    assert_eq!(spec.internal_traffic_policy.as_deref(), Some("Local"));
    assert_eq!(spec.selector, None);
    let ports: Vec<_> = spec
        .ports
        .unwrap()
        .into_iter()
        .map(|p| (p.name.unwrap(), p.port, p.protocol.unwrap()))
        .collect();
    assert_eq!(
        ports,
        [
            ("dns".into(), 53, "UDP".into()),
            ("dns-tcp".into(), 53, "TCP".into())
        ]
    );
    let labels = service.metadata.labels.clone().unwrap();
    assert_eq!(labels["k8s-app"], "kube-dns");
    assert_eq!(labels["kubernetes.io/name"], "CoreDNS");

    // One slice per node: its node IP, the port it listens on, ready.
    for (node, dns) in [("worker1", &first), ("worker2", &second)] {
        let slice = eventually(10, "the node's slice", || async {
            c.slices("kube-system")
                .get_opt(&format!("kube-dns-{node}"))
                .await
                .unwrap()
        })
        .await;
        let json = serde_json::to_value(&slice).unwrap();
        assert_eq!(
            json["metadata"]["labels"]["kubernetes.io/service-name"],
            "kube-dns"
        );
        assert_eq!(
            json["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
            "nodeagent.kube-lite.io"
        );
        assert_eq!(json["addressType"], "IPv4");
        assert_eq!(json["endpoints"][0]["addresses"], json!(["192.168.56.11"]));
        assert_eq!(json["endpoints"][0]["nodeName"], node);
        assert_eq!(json["endpoints"][0]["conditions"]["ready"], true);
        let port = dns.addr.port();
        assert_eq!(
            json["ports"],
            json!([
                {"name": "dns", "port": port, "protocol": "UDP"},
                {"name": "dns-tcp", "port": port, "protocol": "TCP"}
            ])
        );
    }

    // A deleted slice comes back; so does a deleted Service.
    c.slices("kube-system")
        .delete("kube-dns-worker1", &DeleteParams::default())
        .await
        .unwrap();
    eventually(10, "the slice to come back", || async {
        c.slices("kube-system")
            .get_opt("kube-dns-worker1")
            .await
            .unwrap()
    })
    .await;
    c.services("kube-system")
        .delete("kube-dns", &DeleteParams::default())
        .await
        .unwrap();
    eventually(10, "the Service to come back", || async {
        c.services("kube-system").get_opt("kube-dns").await.unwrap()
    })
    .await;

    // An admin's change to the Service stays.
    c.services("kube-system")
        .patch(
            "kube-dns",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "platform"}},
                                  "spec": {"sessionAffinity": "ClientIP"}})),
        )
        .await
        .unwrap();
    // Give the agents a reason to look: touch a slice.
    c.slices("kube-system")
        .delete("kube-dns-worker2", &DeleteParams::default())
        .await
        .unwrap();
    eventually(10, "the slice to come back", || async {
        c.slices("kube-system")
            .get_opt("kube-dns-worker2")
            .await
            .unwrap()
    })
    .await;
    let service = c.services("kube-system").get("kube-dns").await.unwrap();
    assert_eq!(service.metadata.labels.unwrap()["team"], "platform");
    assert_eq!(
        service.spec.unwrap().session_affinity.as_deref(),
        Some("ClientIP")
    );
}

/// The resolution a Pod's `curl` does: glibc's resolver with the Pod's
/// resolv.conf (search path, ndots:5), in a private mount namespace where
/// /etc/resolv.conf names our server. glibc only speaks to port 53, so
/// the server listens on 127.53.0.1:53 (loopback).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pods_resolver_finds_services_by_short_names() {
    let c = Cluster::start();
    let ngx = c
        .create_service(
            "default",
            "ngx-svc",
            json!({"ports": [{"name": "http", "port": 80}]}),
        )
        .await;
    let ngx_ip = cluster_ip(&ngx).to_string();
    let listen: SocketAddr = (Ipv4Addr::new(127, 53, 0, 1), 53).into();
    let dns = c.start_dns_on("worker1", listen, vec![]).await;

    let dir = tempfile::tempdir().unwrap();
    let resolv_conf = dir.path().join("resolv.conf");
    std::fs::write(
        &resolv_conf,
        "search default.svc.cluster.local svc.cluster.local cluster.local\n\
         nameserver 127.53.0.1\noptions ndots:5\n",
    )
    .unwrap();
    let nsswitch = dir.path().join("nsswitch.conf");
    std::fs::write(&nsswitch, "hosts: files dns\n").unwrap();
    let getent = |what: &'static str, key: String| {
        let resolv_conf = resolv_conf.clone();
        let nsswitch = nsswitch.clone();
        async move {
            let output = tokio::time::timeout(
                Duration::from_secs(20),
                tokio::process::Command::new("unshare")
                    .args(["--mount", "--propagation", "private", "sh", "-c"])
                    .arg(
                        "mount --bind \"$1\" /etc/resolv.conf && \
                         mount --bind \"$2\" /etc/nsswitch.conf && exec getent \"$3\" \"$4\"",
                    )
                    .arg("sh")
                    .arg(&resolv_conf)
                    .arg(&nsswitch)
                    .arg(what)
                    .arg(&key)
                    .kill_on_drop(true)
                    .output(),
            )
            .await
            .expect("getent finished")
            .expect("running unshare");
            String::from_utf8_lossy(&output.stdout).into_owned()
        }
    };
    for name in [
        "ngx-svc",
        "ngx-svc.default",
        "ngx-svc.default.svc",
        "ngx-svc.default.svc.cluster.local",
    ] {
        // `ahosts` asks A and AAAA, as curl does.
        let out = getent("ahosts", name.to_string()).await;
        let first = out.split_whitespace().next().unwrap_or_default();
        assert_eq!(first, ngx_ip, "getent ahosts {name}: {out:?}");
    }
    let out = getent("hosts", ngx_ip.clone()).await;
    assert!(
        out.contains("ngx-svc.default.svc.cluster.local"),
        "getent hosts {ngx_ip}: {out:?}"
    );
    let out = getent("ahosts", "nope".to_string()).await;
    assert!(out.is_empty(), "{out:?}");

    // dig (bind9-dnsutils) shows what docs/dns.md says it shows: an
    // authoritative answer, recursion not offered, as from CoreDNS.
    let dig = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new("dig")
            .args([
                "@127.53.0.1",
                "+tries=1",
                "+time=5",
                "ngx-svc.default.svc.cluster.local",
            ])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("dig finished")
    .expect("running dig (bind9-dnsutils, scripts/install-deps.sh)");
    let out = String::from_utf8_lossy(&dig.stdout);
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains("flags: qr aa rd;"), "{out}");
    assert!(
        out.contains("recursion requested but not available"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "ngx-svc.default.svc.cluster.local. 5 IN\tA\t{ngx_ip}"
        )),
        "{out}"
    );
    drop(dns);
}
