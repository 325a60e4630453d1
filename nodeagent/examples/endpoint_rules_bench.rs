//! Benchmark: an endpoint change -> its rules live on every node.
//!
//! What a student sees in lesson step 7 (a Pod replaced, curl keeps
//! working): how long after the API learns about a new endpoint do all
//! nodes' kernels DNAT to it. The benchmark writes the EndpointSlice of a
//! selectorless Service itself (time 0 = the write is acknowledged), then
//! polls `nft list table ip kube-lite` in each lab node until the new
//! endpoint is in `service-endpoints` (`: IP . 8080`); the sample is the slowest node.
//!
//! ```text
//! cargo build --release --workspace --bins --examples
//! sudo target/release/examples/endpoint_rules_bench [--changes 100]
//! ```
//!
//! Brings up its own lab (master + 2 workers) and removes it at the end.
//! The polling itself takes a few milliseconds per look, which bounds the
//! resolution. Target: p99 < 100 ms.

mod bench;
use bench::{arg, percentile, start_lab};

use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;

const NODES: [&str; 3] = ["kl-master", "kl-worker1", "kl-worker2"];

/// The slice with one endpoint, `ip`.
fn slice(ip: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "bench-manual", "labels": {
            "kubernetes.io/service-name": "bench",
            "endpointslice.kubernetes.io/managed-by": "bench.kube-lite.io"}},
        "addressType": "IPv4",
        "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}]
    })
}

/// Polls one node until its table DNATs to `ip`; the time it took.
fn wait_rule(node: &str, ip: &str, start: Instant) -> Duration {
    let wanted = format!(": {ip} . 8080");
    let deadline = start + Duration::from_secs(10);
    loop {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                node,
                "nft",
                "list",
                "table",
                "ip",
                "kube-lite",
            ])
            .output()
            .expect("nft");
        if String::from_utf8_lossy(&out.stdout).contains(&wanted) {
            return start.elapsed();
        }
        assert!(Instant::now() < deadline, "{node} never got {wanted}");
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let changes = arg("--changes", 100).clamp(1, 1000);
    let run = start_lab().await?;
    let services: Api<Service> = Api::namespaced(run.client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(run.client.clone(), "default");
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": "bench"},
                "spec": {"ports": [{"port": 80, "targetPort": 8080}]}
            }))?,
        )
        .await?;
    slices
        .create(
            &PostParams::default(),
            &serde_json::from_value(slice("10.244.200.1"))?,
        )
        .await?;
    // Warm up: every node has programmed the Service.
    let start = Instant::now();
    for node in NODES {
        wait_rule(node, "10.244.200.1", start);
    }

    let mut samples = Vec::with_capacity(changes);
    for i in 0..changes {
        // Fake endpoint addresses: rules are written for them, no packet
        // is ever sent to them.
        let ip = format!("10.244.{}.{}", 201 + i / 250, 1 + i % 250);
        let patch =
            serde_json::json!({"endpoints": [{"addresses": [ip], "conditions": {"ready": true}}]});
        slices
            .patch(
                "bench-manual",
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        let start = Instant::now();
        let ip_for_threads = ip.clone();
        let per_node: Vec<Duration> = std::thread::scope(|scope| {
            let handles: Vec<_> = NODES
                .iter()
                .map(|node| {
                    let ip = ip_for_threads.clone();
                    scope.spawn(move || wait_rule(node, &ip, start))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("poller"))
                .collect()
        });
        samples.push(per_node.into_iter().max().unwrap_or_default());
    }
    samples.sort();
    let pct = |p: f64| percentile(&samples, p);
    println!(
        "Endpoint change -> the endpoint in service-endpoints on all 3 nodes, {changes} changes:"
    );
    println!(
        "  p50 {:.1} ms   p90 {:.1} ms   p99 {:.1} ms   max {:.1} ms",
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.9).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        samples.last().unwrap().as_secs_f64() * 1e3
    );
    run.lab.down()?;
    Ok(())
}
