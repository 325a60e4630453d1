//! ClusterIP vs Pod IP: what the Service rules cost a packet.
//!
//! ```sh
//! cargo build --release -p nodeagent --bins --examples
//! sudo target/release/examples/proxy_datapath_bench   # PROXY_BENCH_REQUESTS=N per round
//! ```
//!
//! Builds two "nodes" out of network namespaces it creates (`klpxdp<pid>-*`,
//! all removed at the end; no traffic leaves them):
//!
//! ```text
//!  node1 (br0 10.244.1.1)  ==192.168.210.0/24==  node2 (br0 10.244.2.1)
//!    `-- client 10.244.1.2                         |-- server1 10.244.2.2 (echo)
//!                                                  `-- server2 10.244.2.3 (echo)
//! ```
//!
//! with host-gw routes between the nodes, and the proxy's table in node1
//! for one Service `10.96.0.100:80 -> server1:8080, server2:8080`. From
//! the client, alternating rounds of HTTP requests (a new TCP connection
//! each, as `curl` does, so every request goes through the nat hooks) go
//! to the ClusterIP and to the Pod IPs directly; then 10,000 other
//! Services are added to the table and the rounds are repeated. Every
//! loop is bounded in count and time.

mod bench;
use bench::percentile;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use nodeagent::informer::CachedSlice;
use nodeagent::proxy::netlink::{Batch, Socket};
use nodeagent::proxy::rules::NodeContext;
use nodeagent::proxy::sync;
use serde_json::json;

/// Namespaces and echo servers, removed on drop.
struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    servers: Vec<Child>,
}

impl Lab {
    fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for s in &mut self.servers {
            let _ = s.kill();
            let _ = s.wait();
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn sh(command: &str) {
    let status = Command::new("sh").args(["-c", command]).status().unwrap();
    assert!(status.success(), "failed: {command}");
}

fn build_lab() -> Lab {
    let mut lab = Lab {
        prefix: format!("klpxdp{}", std::process::id()),
        namespaces: vec![],
        servers: vec![],
    };
    for name in ["node1", "node2", "client", "server1", "server2"] {
        let ns = lab.ns(name);
        sh(&format!("ip netns add {ns} && ip -n {ns} link set lo up"));
        lab.namespaces.push(ns);
    }
    let (n1, n2) = (lab.ns("node1"), lab.ns("node2"));
    for (node, block) in [(&n1, 1), (&n2, 2)] {
        sh(&format!(
            "ip -n {node} link add br0 type bridge && ip -n {node} addr add 10.244.{block}.1/24 dev br0 && ip -n {node} link set br0 up && \
             ip netns exec {node} sysctl -qw net.ipv4.ip_forward=1 && \
             ip netns exec {node} sysctl -qw net.bridge.bridge-nf-call-iptables=1"
        ));
    }
    sh(&format!(
        "ip -n {n1} link add eth1 type veth peer name eth1 netns {n2} && \
         ip -n {n1} addr add 192.168.210.1/24 dev eth1 && ip -n {n1} link set eth1 up && \
         ip -n {n2} addr add 192.168.210.2/24 dev eth1 && ip -n {n2} link set eth1 up && \
         ip -n {n1} route add 10.244.2.0/24 via 192.168.210.2 && \
         ip -n {n2} route add 10.244.1.0/24 via 192.168.210.1 && \
         ip -n {n1} route add 10.96.0.0/12 dev br0"
    ));
    for (pod, node, ip) in [
        ("client", &n1, "10.244.1.2"),
        ("server1", &n2, "10.244.2.2"),
        ("server2", &n2, "10.244.2.3"),
    ] {
        let ns = lab.ns(pod);
        let gateway = if node == &n1 {
            "10.244.1.1"
        } else {
            "10.244.2.1"
        };
        sh(&format!(
            "ip -n {node} link add v{pod} type veth peer name eth0 netns {ns} && \
             ip -n {node} link set v{pod} master br0 && ip -n {node} link set v{pod} up && \
             ip -n {ns} addr add {ip}/24 dev eth0 && ip -n {ns} link set eth0 up && \
             ip -n {ns} route add default via {gateway}"
        ));
    }
    let agent = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("kube-lite-echo");
    assert!(
        agent.exists(),
        "build the kube-lite-echo binary first ({agent:?})"
    );
    for pod in ["server1", "server2"] {
        let server = Command::new("ip")
            .args(["netns", "exec", &lab.ns(pod)])
            .arg(&agent)
            .args(["--port", "8080"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        lab.servers.push(server);
    }
    lab
}

fn service(name: &str, ip: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "bench"},
        "spec": {"clusterIP": ip, "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]},
    }))
    .unwrap()
}

fn slice(name: &str, ips: &[&str]) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{name}-x"), "namespace": "bench",
                     "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "ports": [{"port": 8080, "protocol": "TCP"}],
        "endpoints": ips.iter().map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}})).collect::<Vec<_>>(),
    }))
    .unwrap()
}

/// One HTTP request on a new connection; its latency.
fn request(to: SocketAddr) -> std::io::Result<Duration> {
    let start = Instant::now();
    let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")?;
    let mut answer = Vec::with_capacity(512);
    stream.read_to_end(&mut answer)?;
    if !answer.starts_with(b"HTTP/1.1 200") {
        return Err(std::io::Error::other("not a 200 answer"));
    }
    Ok(start.elapsed())
}

/// Runs on a thread inside the client's namespace: alternating rounds to
/// the ClusterIP and the Pod IPs. Returns (ClusterIP, Pod IP) latencies.
fn measure(client_ns: &str, rounds: usize, per_round: usize) -> (Vec<Duration>, Vec<Duration>) {
    let ns = std::fs::File::open(format!("/run/netns/{client_ns}")).unwrap();
    let handle = std::thread::spawn(move || {
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let cluster_ip: SocketAddr = "10.96.0.100:80".parse().unwrap();
        let pods: [SocketAddr; 2] = [
            "10.244.2.2:8080".parse().unwrap(),
            "10.244.2.3:8080".parse().unwrap(),
        ];
        let deadline = Instant::now() + Duration::from_secs(120);
        // Warm-up (ARP, conntrack, caches).
        for i in 0..200 {
            let _ = request(cluster_ip);
            let _ = request(pods[i % 2]);
        }
        let (mut via_service, mut direct) = (vec![], vec![]);
        for _ in 0..rounds {
            for i in 0..per_round {
                via_service.push(request(cluster_ip).expect("request to the ClusterIP"));
                direct.push(request(pods[i % 2]).expect("request to a Pod IP"));
            }
            if Instant::now() > deadline {
                break;
            }
        }
        (via_service, direct)
    });
    handle.join().unwrap()
}

struct Figures {
    rps: f64,
    p50: f64,
    p99: f64,
}

fn figures(mut samples: Vec<Duration>) -> Figures {
    samples.sort();
    let total: Duration = samples.iter().sum();
    let at = |p: f64| percentile(&samples, p).as_secs_f64() * 1e6;
    Figures {
        rps: samples.len() as f64 / total.as_secs_f64(),
        p50: at(0.5),
        p99: at(0.99),
    }
}

fn report(title: &str, (via_service, direct): (Vec<Duration>, Vec<Duration>)) {
    let n = via_service.len();
    let (s, d) = (figures(via_service), figures(direct));
    println!("{title} ({n} requests each, one connection per request, sequential):");
    println!(
        "  Pod IP    : {:8.0} req/s  p50 {:6.0} us  p99 {:6.0} us",
        d.rps, d.p50, d.p99
    );
    println!(
        "  ClusterIP : {:8.0} req/s  p50 {:6.0} us  p99 {:6.0} us",
        s.rps, s.p50, s.p99
    );
    println!(
        "  ratio ClusterIP/Pod IP: throughput {:.3}, p50 latency {:.3}, p99 latency {:.3}",
        s.rps / d.rps,
        s.p50 / d.p50,
        s.p99 / d.p99
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert!(nix::unistd::Uid::effective().is_root(), "run as root");
    let per_round = std::env::var("PROXY_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let rounds = 6;
    let others = std::env::var("PROXY_BENCH_OTHER_SERVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000usize);
    let lab = build_lab();
    let socket = Socket::open(Some(&lab.ns("node1"))).expect("a netlink socket in node1");
    let node = NodeContext {
        node_name: "node1".into(),
        cluster_cidr: "10.244.0.0/16".parse().unwrap(),
        service_cidr: "10.96.0.0/12".parse().unwrap(),
        node_labels: BTreeMap::new(),
    };
    let mut services = vec![service("echo", "10.96.0.100")];
    let mut slices = vec![slice("echo", &["10.244.2.2", "10.244.2.3"])];
    socket
        .commit(full_batch(&services, &slices, &node))
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    report("one Service", measure(&lab.ns("client"), rounds, per_round));

    for i in 0..others {
        let name = format!("other{i}");
        let ip = format!("10.{}.{}.{}", 97 + i / 65536, (i / 256) % 256, i % 256);
        services.push(service(&name, &ip));
        slices.push(slice(&name, &["10.244.2.2", "10.244.2.3"]));
    }
    let start = Instant::now();
    socket
        .commit(full_batch(&services, &slices, &node))
        .unwrap();
    println!(
        "programmed {others} other Services in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    report(
        &format!("with {others} other Services"),
        measure(&lab.ns("client"), rounds, per_round),
    );
}

/// The transaction that replaces the table by these Services'.
fn full_batch(services: &[Service], slices: &[EndpointSlice], node: &NodeContext) -> Batch {
    let mut batch = Batch::new();
    let slices: Vec<CachedSlice> = slices.iter().cloned().map(CachedSlice::from).collect();
    sync::write_full_table(&mut batch, services, &slices, node);
    batch
}
