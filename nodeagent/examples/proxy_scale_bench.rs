//! The service proxy at scale: 10,000 Services x 10 endpoints.
//!
//! ```sh
//! cargo build --release -p nodeagent --examples
//! sudo target/release/examples/proxy_scale_bench     # PROXY_BENCH_SERVICES=N, PROXY_BENCH_ENDPOINTS=M
//! ```
//!
//! Runs the proxy's own steps (`rules::service_ruleset` for every
//! Service, `sync::full_transaction`, then `sync::diff_transaction` for one
//! Service) on in-memory Services and EndpointSlices, and applies the
//! transactions with `nft -f -` inside a network namespace it creates
//! (`klpxbench<pid>`, deleted at the end): no traffic, nothing in the
//! machine's own netfilter. Measures the first full sync, one endpoint
//! change (20 times), the drift probe, and the process's memory (which
//! holds the objects, as the agent's watch caches do, and what was
//! applied).

mod bench;
use bench::percentile;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Instant;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use nodeagent::proxy::nftables::{Script, Transaction as _};
use nodeagent::proxy::rules::{self, NodeContext, Ruleset, ServiceRules};
use nodeagent::proxy::sync::{self, Diff, Nft};
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

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "run as root (it creates a network namespace)"
    );
    let n = env("PROXY_BENCH_SERVICES", 10_000);
    let m = env("PROXY_BENCH_ENDPOINTS", 10);
    let ns = Namespace(format!("klpxbench{}", std::process::id()));
    let status = Command::new("ip")
        .args(["netns", "add", &ns.0])
        .status()
        .unwrap();
    assert!(status.success(), "ip netns add");
    let nft = Nft {
        netns: Some(ns.0.clone()),
    };
    let node = NodeContext {
        node_name: "node0".into(),
        cluster_cidr: "10.244.0.0/16".parse().unwrap(),
        service_cidr: "10.96.0.0/12".parse().unwrap(),
        node_labels: BTreeMap::new(),
    };
    println!("{n} Services x {m} endpoints, nft {}", nft_version());
    let services: Vec<Service> = (0..n).map(service).collect();
    let mut slices: Vec<EndpointSlice> = (0..n).map(|i| slice(i, m)).collect();
    let rss_objects = memory_mb("VmRSS:");

    // First full sync: compute every Service, one transaction.
    let start = Instant::now();
    let mut applied: BTreeMap<String, ServiceRules> = BTreeMap::new();
    for (service, slice) in services.iter().zip(&slices) {
        let rules = rules::service_ruleset(service, &[slice], &node);
        applied.insert(
            format!("bench/{}", service.metadata.name.as_ref().unwrap()),
            rules,
        );
    }
    let base = rules::base_ruleset(&node);
    let mut script = Script::default();
    sync::full_transaction(
        &mut script,
        std::iter::once(&base).chain(applied.values().map(|r| &r.ruleset)),
    );
    let text = script.text;
    let computed = start.elapsed();
    nft.apply(&text)
        .await
        .expect("the full transaction applies");
    let full = start.elapsed();
    let lines = text.lines().count();
    let bytes = text.len();
    drop(text);
    let chains: usize = applied.values().map(|r| r.ruleset.chains.len()).sum();
    let rule_count: usize = applied.values().map(|r| r.ruleset.rule_count()).sum();
    println!(
        "first full sync: {:.2} s (compute + text {:.2} s, nft {:.2} s); {lines} lines, {:.1} MB, {chains} chains, {rule_count} rules",
        full.as_secs_f64(),
        computed.as_secs_f64(),
        (full - computed).as_secs_f64(),
        bytes as f64 / 1e6
    );
    let rss_after_full = memory_mb("VmRSS:");

    // One endpoint change at a time: the last endpoint of one Service
    // stops being ready, then comes back.
    let mut samples = vec![];
    let mut tx_lines = vec![];
    for round in 0..20 {
        let i = (round * 7919) % n;
        let key = format!("bench/svc{i}");
        let mut changed = slices[i].clone();
        let eps = changed.endpoints.as_mut().unwrap();
        let last = eps.last_mut().unwrap();
        let ready = last
            .conditions
            .as_ref()
            .and_then(|c| c.ready)
            .unwrap_or(true);
        last.conditions.as_mut().unwrap().ready = Some(!ready);
        slices[i] = changed;
        let start = Instant::now();
        let new = rules::service_ruleset(&services[i], &[&slices[i]], &node);
        let old: &Ruleset = &applied[&key].ruleset;
        let mut script = Script::default();
        let Diff::Partial = sync::diff_transaction(&mut script, old, &new.ruleset) else {
            panic!("an endpoint change is a partial sync")
        };
        nft.apply(&script.text)
            .await
            .expect("the partial transaction applies");
        samples.push(start.elapsed());
        tx_lines.push(script.len());
        applied.insert(key, new);
    }
    samples.sort();
    println!(
        "one endpoint change: p50 {:.1} ms, max {:.1} ms, {}..{} lines per transaction",
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        samples.last().unwrap().as_secs_f64() * 1e3,
        tx_lines.iter().min().unwrap(),
        tx_lines.iter().max().unwrap()
    );
    let start = Instant::now();
    let intact = sync::table_looks_intact(&nft).await;
    println!(
        "drift probe (nft list chain ip kube-lite services): {:.1} ms, intact {intact}",
        start.elapsed().as_secs_f64() * 1e3
    );
    println!(
        "memory: RSS {:.0} MB with the objects, {:.0} MB after the full sync, peak {:.0} MB",
        rss_objects,
        rss_after_full,
        memory_mb("VmHWM:")
    );
}

fn nft_version() -> String {
    Command::new("nft")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
