//! The service proxy at scale: 10,000 Services x 10 endpoints.
//!
//! ```sh
//! cargo build --release -p nodeagent --examples
//! sudo target/release/examples/proxy_scale_bench     # PROXY_BENCH_SERVICES=N, PROXY_BENCH_ENDPOINTS=M, PROXY_BENCH_CHANGES=K, PROXY_BENCH_REFERENCE=0|1
//! ```
//!
//! Runs the proxy's own [`Syncer`] - the code the node agent runs - on
//! watch caches filled with generated Services and EndpointSlices, and
//! programs a network namespace it creates (`klpxbench<pid>`, deleted at
//! the end): no traffic, nothing in the machine's own netfilter. Measures
//! the first full sync, endpoint changes (200 of each kind by default:
//! one endpoint replaced by another, and one endpoint leaving and coming
//! back), each from the changed EndpointSlice in the cache to the kernel's
//! acknowledgement, the drift probe, and the process's memory (the
//! objects, as the agent's watch caches hold them, and what the syncer
//! keeps).
//!
//! The reference, in the same run, in a second namespace: the same
//! Services in kube-proxy's shape (a chain per Service port, a chain per
//! endpoint, picked by a `numgen` cascade - kube-lite's table before the
//! flat maps), and the kernel's time for the transaction of one endpoint
//! leaving and coming back there.

mod bench;
use bench::percentile;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::watcher;
use nodeagent::informer::CachedSlice;
use nodeagent::proxy::metrics::ProxyMetrics;
use nodeagent::proxy::netlink::{Batch, Socket};
use nodeagent::proxy::nftables::{
    Key, Proto, Rule, SetType, Stmt, Transaction as _, Value, Verdict,
};
use nodeagent::proxy::rules::{self, NodeContext};
use nodeagent::proxy::sync::{self, Syncer};
use serde_json::json;

struct Namespace(String);

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn memory_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn service(i: usize) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": format!("svc{i}"), "namespace": "bench"},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": format!("10.{}.{}.{}", 96 + i / 65536, (i / 256) % 256, i % 256),
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
        },
    }))
    .unwrap()
}

fn slice(i: usize, endpoints: usize) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {
            "name": format!("svc{i}-abcde"), "namespace": "bench",
            "labels": {"kubernetes.io/service-name": format!("svc{i}")},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": (0..endpoints).map(|e| json!({
            "addresses": [format!("10.244.{}.{}", e % 250, 2 + i % 250)],
            "nodeName": format!("node{}", e % 3),
            "conditions": {"ready": true},
        })).collect::<Vec<_>>(),
    }))
    .unwrap()
}

#[tokio::main]
async fn main() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "run as root (it creates a network namespace)"
    );
    let n = env("PROXY_BENCH_SERVICES", 10_000);
    let m = env("PROXY_BENCH_ENDPOINTS", 10);
    let changes = env("PROXY_BENCH_CHANGES", 200);
    let ns = Namespace(format!("klpxbench{}", std::process::id()));
    let status = Command::new("ip")
        .args(["netns", "add", &ns.0])
        .status()
        .unwrap();
    assert!(status.success(), "ip netns add");
    let node = NodeContext {
        node_name: "node0".into(),
        cluster_cidr: "10.244.0.0/16".parse().unwrap(),
        service_cidr: "10.96.0.0/12".parse().unwrap(),
        node_labels: BTreeMap::new(),
    };
    println!("{n} Services x {m} endpoints, kernel {}", kernel());
    // The agent's watch caches, filled as a watch would fill them.
    let (services, mut service_writer) = reflector::store::<Service>();
    let (slices, mut slice_writer) = reflector::store::<CachedSlice>();
    for i in 0..n {
        service_writer.apply_watcher_event(&watcher::Event::Apply(service(i)));
        // As the informer caches them: projected.
        let cached = CachedSlice::from(slice(i, m));
        slice_writer.apply_watcher_event(&watcher::Event::Apply(cached));
    }
    let rss_objects = memory_mb("VmRSS:");
    let mut syncer = Syncer::new(
        node.clone(),
        Some(ns.0.clone()),
        Arc::new(ProxyMetrics::new()),
    )
    .expect("a netlink socket in the namespace");

    // First full sync: every Service, one transaction.
    let start = Instant::now();
    let synced = syncer
        .sync(&services, &slices, sync::Dirty::All)
        .await
        .expect("the full sync applies");
    assert!(synced.full);
    println!(
        "first full sync: {:.2} s (the kernel applying the transaction: {:.2} s); {} commands, {:.1} MB of netlink messages, {} Services",
        start.elapsed().as_secs_f64(),
        synced.commit_time.as_secs_f64(),
        synced.commands,
        synced.bytes as f64 / 1e6,
        syncer.service_count(),
    );
    let rss_after_full = memory_mb("VmRSS:");

    // One endpoint replaced by another (a Pod replaced: the count stays),
    // then one endpoint leaving and coming back (the count changes: the
    // port moves to the set of another kind).
    for kind in ["replaced", "leaves or comes back"] {
        let mut samples = vec![];
        let mut commits = vec![];
        let mut commands = vec![];
        for round in 0..changes {
            let i = (round * 7919) % n;
            let key = format!("bench/svc{i}");
            let mut changed = (*slices
                .get(&ObjectRef::new(&format!("svc{i}-abcde")).within("bench"))
                .unwrap())
            .clone();
            let last = changed.endpoints.last_mut().unwrap();
            if kind == "replaced" {
                // 10.244.x.y <-> 10.245.x.y
                if let IpAddr::V4(ip) = &mut last.addresses[0] {
                    let [a, b, c, d] = ip.octets();
                    *ip = Ipv4Addr::new(a, if b == 245 { 244 } else { 245 }, c, d);
                }
            } else {
                let conditions = &mut last.conditions;
                conditions.ready = !conditions.ready;
                conditions.serving = conditions.ready;
            }
            // As the proxier does on the slice's notice.
            let start = Instant::now();
            syncer.slice_changed(&changed, false);
            slice_writer.apply_watcher_event(&watcher::Event::Apply(changed));
            let synced = syncer
                .sync(&services, &slices, [key].into())
                .await
                .expect("the partial sync applies");
            samples.push(start.elapsed());
            commits.push(synced.commit_time);
            assert!(!synced.full && synced.commands > 0);
            commands.push(synced.commands);
        }
        samples.sort();
        commits.sort();
        println!(
            "one endpoint {kind}: p50 {:.2} ms, p99 {:.2} ms (the kernel: p50 {:.3} ms, p99 {:.3} ms), {}..{} commands per transaction",
            percentile(&samples, 0.5).as_secs_f64() * 1e3,
            percentile(&samples, 0.99).as_secs_f64() * 1e3,
            percentile(&commits, 0.5).as_secs_f64() * 1e3,
            percentile(&commits, 0.99).as_secs_f64() * 1e3,
            commands.iter().min().unwrap(),
            commands.iter().max().unwrap()
        );
    }
    // The kernel's share, measured apart: the same table, a transaction
    // that adds (then removes) one address of the plain set `cluster-ips`
    // - no jump, so the kernel has no reason to walk the table again.
    let socket = Socket::open(Some(&ns.0)).expect("a second socket");
    let probe: Ipv4Addr = "10.111.255.254".parse().unwrap();
    let mut plain = vec![];
    for _ in 0..changes.max(1) {
        let mut add = Batch::new();
        add.add_element(rules::CLUSTER_IPS_SET, &Key::Address(probe), None, "probe");
        let start = Instant::now();
        socket.commit(add).expect("adding a plain element");
        plain.push(start.elapsed());
        let mut delete = Batch::new();
        delete.delete_element(rules::CLUSTER_IPS_SET, &Key::Address(probe));
        socket.commit(delete).expect("deleting it");
    }
    plain.sort();
    println!(
        "one plain set element (no jump, no walk of the table): p50 {:.2} ms",
        percentile(&plain, 0.5).as_secs_f64() * 1e3
    );
    let start = Instant::now();
    let repair = syncer.needs_repair().await;
    println!(
        "drift probe (the rules of chain services, over netlink): {:.1} ms, repair needed: {repair}",
        start.elapsed().as_secs_f64() * 1e3
    );
    assert!(!repair);
    println!(
        "memory: RSS {:.0} MB with the objects, {:.0} MB after the full sync, peak {:.0} MB",
        rss_objects,
        rss_after_full,
        memory_mb("VmHWM:")
    );
    drop(socket);
    drop(syncer);
    // PROXY_BENCH_REFERENCE=0 skips it (at 100,000 Services it is 1.1
    // million chains).
    if env("PROXY_BENCH_REFERENCE", 1) != 0 {
        reference(n, m, changes, &node);
    }
}

/// kube-proxy's shape, in a namespace of its own: `service-ips` points at
/// a chain per Service port, which picks a chain per endpoint with a
/// `numgen` cascade; each endpoint chain DNATs. One endpoint leaving is
/// "rewrite the Service chain, delete the endpoint chain"; coming back,
/// the reverse. Those transactions add rules with `goto`s, so the kernel
/// checks the whole table again at commit.
fn reference(n: usize, m: usize, changes: usize, node: &NodeContext) {
    let ns = Namespace(format!("klpxref{}", std::process::id()));
    let status = Command::new("ip")
        .args(["netns", "add", &ns.0])
        .status()
        .unwrap();
    assert!(status.success(), "ip netns add");
    let socket = Socket::open(Some(&ns.0)).expect("a netlink socket in the reference namespace");
    let cluster_ip = |i: usize| -> Ipv4Addr {
        format!("10.{}.{}.{}", 96 + i / 65536, (i / 256) % 256, i % 256)
            .parse()
            .unwrap()
    };
    let endpoint = |i: usize, e: usize| -> Ipv4Addr {
        format!("10.244.{}.{}", e % 250, 2 + i % 250)
            .parse()
            .unwrap()
    };
    let goto = |c: String| Stmt::Verdict(Verdict::Goto(c));
    let cascade = |batch: &mut Batch, i: usize, count: usize| {
        for e in 0..count {
            let left = count - e;
            let mut stmts = vec![];
            if left > 1 {
                stmts.push(Stmt::NumgenIsZero {
                    modulus: left as u32,
                });
            }
            stmts.push(goto(format!("endpoint-{i}-{e}")));
            batch.add_rule(&format!("service-{i}"), &Rule::new(stmts, "pick"));
        }
    };
    let endpoint_chain = |batch: &mut Batch, i: usize, e: usize| {
        let chain = format!("endpoint-{i}-{e}");
        batch.add_chain(&chain, None, "an endpoint");
        batch.add_rule(
            &chain,
            &Rule::new(
                vec![Stmt::L4Proto(Proto::Tcp), Stmt::Dnat(endpoint(i, e), 8080)],
                "dnat",
            ),
        );
    };
    let start = Instant::now();
    let mut batch = Batch::new();
    sync::replace_table(&mut batch);
    rules::write_ruleset(&mut batch, &rules::base_ruleset(node));
    // kube-proxy's dispatch: one verdict map of every Service port.
    batch.add_set(
        REFERENCE_SERVICE_IPS,
        SetType::ClusterIpPortVmap,
        "kube-proxy's service-ips",
    );
    batch.add_rule(
        rules::SERVICES_CHAIN,
        &Rule::new(
            vec![Stmt::ClusterIpVmap(REFERENCE_SERVICE_IPS.into())],
            "kube-proxy's dispatch",
        ),
    );
    for i in 0..n {
        batch.add_chain(&format!("service-{i}"), None, "a Service port");
        for e in 0..m {
            endpoint_chain(&mut batch, i, e);
        }
        cascade(&mut batch, i, m);
        batch.add_element(
            REFERENCE_SERVICE_IPS,
            &Key::ClusterIpPort(cluster_ip(i), Proto::Tcp, 80),
            Some(&Value::Verdict(Verdict::Goto(format!("service-{i}")))),
            "a Service port",
        );
    }
    socket.commit(batch).expect("the reference table applies");
    println!(
        "reference (kube-proxy's shape, {} chains): loaded in {:.2} s",
        n * (m + 1),
        start.elapsed().as_secs_f64()
    );
    let mut commits = vec![];
    for round in 0..changes.min(50) {
        let i = (round * 7919) % n;
        // Leaves: the Service chain rewritten, the endpoint chain gone.
        let mut leave = Batch::new();
        leave.flush_chain(&format!("service-{i}"));
        cascade(&mut leave, i, m - 1);
        leave.flush_chain(&format!("endpoint-{i}-{}", m - 1));
        leave.delete_chain(&format!("endpoint-{i}-{}", m - 1));
        let start = Instant::now();
        socket.commit(leave).expect("an endpoint leaves");
        commits.push(start.elapsed());
        // Comes back.
        let mut back = Batch::new();
        endpoint_chain(&mut back, i, m - 1);
        back.flush_chain(&format!("service-{i}"));
        cascade(&mut back, i, m);
        let start = Instant::now();
        socket.commit(back).expect("it comes back");
        commits.push(start.elapsed());
    }
    commits.sort();
    println!(
        "reference: one endpoint leaves or comes back: the kernel p50 {:.1} ms, p99 {:.1} ms ({} transactions)",
        percentile(&commits, 0.5).as_secs_f64() * 1e3,
        percentile(&commits, 0.99).as_secs_f64() * 1e3,
        commits.len()
    );
}

/// The reference's verdict map (kube-proxy calls it `service-ips`).
const REFERENCE_SERVICE_IPS: &str = "service-ips";

fn kernel() -> String {
    Command::new("uname")
        .arg("-r")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
