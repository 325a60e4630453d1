//! Benchmark of the Endpoints loop, against the real apiserver and
//! controller binaries.
//!
//! ```text
//! cargo build --release -p controller -p apiserver --bins --examples
//! target/release/examples/endpoints_bench
//! ```
//!
//! 1. **Pod ready -> EndpointSlice written.** A Service with 10 Pods; one
//!    Pod's Ready condition is flipped [`FLIPS`] times. Each flip is timed
//!    from just before the status write until a watch on the slices shows
//!    the new condition. Also reported: how far the slice's
//!    `last-change-trigger-time` lies behind the moment the watch saw the
//!    slice: what a proxy would measure. The trigger time is the Pod's
//!    Ready `lastTransitionTime`, whole seconds on the wire (as upstream),
//!    so that figure lies between the true latency and latency + 1 s.
//! 2. **Convergence of 1,000 Services over 10,000 Pods.** Pods are created
//!    with an IP and a Ready status directly (no Deployments), 10 per
//!    Service, while the controller runs; then the controller is killed,
//!    every Endpoints and slice deleted, and a fresh controller started:
//!    the time until all 1,000 Services have correct slices again is the
//!    cold-start convergence.
//!
//! Pods are bound to Nodes whose Leases the benchmark renews, so the node
//! lifecycle loop leaves them alone. Every loop is bounded in count and
//! time; traffic stays on loopback.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context as _};
use e2e::harness::{bin_dir, ApiServer, Component};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

/// Ready flips timed in part 1.
const FLIPS: usize = 200;
/// Time between two flips (10 Pods take turns: each flips once a second).
const FLIP_INTERVAL: Duration = Duration::from_millis(100);
/// Longest wait for one flip to show in a slice.
const FLIP_TIMEOUT: Duration = Duration::from_secs(5);
/// Part 2: Services (`ENDPOINTS_BENCH_SERVICES` for a quick run with
/// fewer), and Pods per Service.
const SERVICES: usize = 1000;

fn service_count() -> usize {
    std::env::var("ENDPOINTS_BENCH_SERVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SERVICES)
}
const PODS_PER_SERVICE: usize = 10;
/// Requests in flight while creating objects.
const IN_FLIGHT: usize = 32;
/// Longest wait for part 2 to converge.
const CONVERGENCE_TIMEOUT: Duration = Duration::from_secs(300);
/// Nodes the Pods are bound to.
const NODES: usize = 4;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    println!("binaries from {}", bin_dir().display());
    let dir = tempfile::tempdir()?;
    let apiserver = ApiServer::start(dir.path());
    let client = Client::try_from(kube::Config::new(apiserver.url.parse()?))?;

    let renewing = Arc::new(AtomicBool::new(true));
    register_nodes(&client).await?;
    let heartbeat = tokio::spawn(renew_leases(client.clone(), renewing.clone()));

    let mut controller = start_controller(&apiserver);
    pod_ready_latency(&client).await?;

    controller = convergence(&client, &apiserver, controller).await?;

    renewing.store(false, Ordering::SeqCst);
    heartbeat.abort();
    drop(controller);
    Ok(())
}

fn start_controller(apiserver: &ApiServer) -> Component {
    Component::start(
        "controller",
        &[
            "--server".into(),
            apiserver.url.clone(),
            "--leader-lease-duration".into(),
            "2".into(),
        ],
    )
}

fn node_name(i: usize) -> String {
    format!("bench-node-{}", i % NODES)
}

async fn register_nodes(client: &Client) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    for i in 0..NODES {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": node_name(i)},
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                       "lastHeartbeatTime": now, "lastTransitionTime": now}]}
        }))?;
        nodes.create(&PostParams::default(), &node).await?;
    }
    Ok(())
}

/// Plays the kubelets' heartbeat: each node's Lease renewed every second.
async fn renew_leases(client: Client, renewing: Arc<AtomicBool>) {
    let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    while renewing.load(Ordering::SeqCst) {
        for i in 0..NODES {
            let name = node_name(i);
            let renew = MicroTime(k8s_openapi::jiff::Timestamp::now());
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(name.clone()),
                    lease_duration_seconds: Some(40),
                    renew_time: Some(renew.clone()),
                    ..Default::default()
                }),
            };
            if leases.create(&PostParams::default(), &lease).await.is_err() {
                let patch = json!({"spec": {"renewTime": renew}});
                let _ = leases
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn pod_ip(k: usize) -> String {
    format!("10.244.{}.{}", k / 250, k % 250 + 2)
}

async fn create_service(services: &Api<Service>, name: &str) -> anyhow::Result<()> {
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 80}]},
    }))?;
    services
        .create(&PostParams::default(), &svc)
        .await
        .with_context(|| format!("creating Service {name}"))?;
    Ok(())
}

/// The Ready status a kubelet would write (times are whole seconds on
/// the wire, as upstream's `metav1.Time`).
fn status(ip: &str, ready: bool, changed: chrono::DateTime<chrono::Utc>) -> serde_json::Value {
    let changed = changed.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let flag = if ready { "True" } else { "False" };
    json!({"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": flag, "lastTransitionTime": changed}],
    }})
}

async fn create_pod(pods: &Api<Pod>, name: &str, app: &str, k: usize) -> anyhow::Result<()> {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"nodeName": node_name(k), "containers": [{"name": "c", "image": "nginx"}]},
    }))?;
    pods.create(&PostParams::default(), &pod)
        .await
        .with_context(|| format!("creating Pod {name}"))?;
    // Ready since a minute ago: the first flip of part 1 is then a change
    // in a later second.
    let then = chrono::Utc::now() - chrono::Duration::seconds(60);
    let status = status(&pod_ip(k), true, then);
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .with_context(|| format!("writing status of Pod {name}"))?;
    Ok(())
}

/// `(ready endpoints, all endpoints)` of a Service's slices.
fn counts(slices: &[&EndpointSlice]) -> (usize, usize) {
    let endpoints: Vec<_> = slices
        .iter()
        .flat_map(|s| s.endpoints.iter().flatten())
        .collect();
    let ready = endpoints
        .iter()
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
        .count();
    (ready, endpoints.len())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(label: &str, mut values: Vec<Duration>) {
    values.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "  {label}: n={} p50={:.1} ms p99={:.1} ms max={:.1} ms",
        values.len(),
        ms(percentile(&values, 50.0)),
        ms(percentile(&values, 99.0)),
        ms(values.last().copied().unwrap_or_default()),
    );
}

// ---------------------------------------------------------------------
// Part 1

async fn pod_ready_latency(client: &Client) -> anyhow::Result<()> {
    println!("== pod ready -> EndpointSlice written ({FLIPS} flips)");
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    create_service(&services, "lat").await?;
    for k in 0..10 {
        create_pod(&pods, &format!("lat-{k}"), "lat", 60_000 + k).await?;
    }

    // Every slice version the watch shows, with when it arrived.
    let (tx, mut seen) =
        tokio::sync::mpsc::unbounded_channel::<(Instant, SystemTime, EndpointSlice)>();
    let config = watcher::Config::default().labels("kubernetes.io/service-name=lat");
    let watch = tokio::spawn(async move {
        let mut stream = watcher(slices, config)
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Ok(Some(slice)) = stream.try_next().await {
            if tx.send((Instant::now(), SystemTime::now(), slice)).is_err() {
                break;
            }
        }
    });
    let ready_of = |slice: &EndpointSlice, ip: &str| {
        slice
            .endpoints
            .iter()
            .flatten()
            .find(|e| e.addresses.first().map(String::as_str) == Some(ip))
            .and_then(|e| e.conditions.as_ref().and_then(|c| c.ready))
    };
    // Until all 10 are in, ready.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, _, slice) = tokio::time::timeout_at(deadline.into(), seen.recv())
            .await
            .context("waiting for the first slice")?
            .context("watch ended")?;
        if counts(&[&slice]) == (10, 10) {
            break;
        }
    }

    let mut write_to_slice = Vec::new();
    let mut trigger_to_seen = Vec::new();
    let mut trigger_matches = 0;
    let mut ready = true;
    for flip in 0..FLIPS {
        let k = flip % 10;
        let ip = pod_ip(60_000 + k);
        if k == 0 {
            ready = !ready;
        }
        let status = status(&ip, ready, chrono::Utc::now());
        let started = Instant::now();
        let written = pods
            .patch_status(
                &format!("lat-{k}"),
                &PatchParams::default(),
                &Patch::Merge(&status),
            )
            .await?;
        // The stored lastTransitionTime (whole seconds).
        let transition = written
            .status
            .and_then(|s| s.conditions)
            .and_then(|c| c.into_iter().find(|c| c.type_ == "Ready"))
            .and_then(|c| c.last_transition_time)
            .map(|t| t.0.to_string())
            .unwrap_or_default();
        let deadline = started + FLIP_TIMEOUT;
        loop {
            let Ok(Some((at, wall, slice))) =
                tokio::time::timeout_at(deadline.into(), seen.recv()).await
            else {
                bail!("flip {flip} of lat-{k} did not show within {FLIP_TIMEOUT:?}");
            };
            if ready_of(&slice, &ip) != Some(ready) {
                continue;
            }
            write_to_slice.push(at.duration_since(started));
            let stamped = slice
                .annotations()
                .get("endpoints.kubernetes.io/last-change-trigger-time")
                .cloned()
                .unwrap_or_default();
            if let Ok(trigger) = chrono::DateTime::parse_from_rfc3339(&stamped) {
                let seen_at = chrono::DateTime::<chrono::Utc>::from(wall);
                let behind = seen_at
                    .signed_duration_since(trigger)
                    .to_std()
                    .unwrap_or_default();
                trigger_to_seen.push(behind);
                let written = chrono::DateTime::parse_from_rfc3339(&transition)?;
                if trigger == written {
                    trigger_matches += 1;
                }
            }
            break;
        }
        // One flip per FLIP_INTERVAL: a Pod's flips are then a second
        // apart, so each carries a new (whole-second) transition time.
        tokio::time::sleep_until((started + FLIP_INTERVAL).into()).await;
    }
    watch.abort();
    summary("status write -> slice seen by a watch", write_to_slice);
    summary("trigger time -> slice seen by a watch", trigger_to_seen);
    println!(
        "  trigger time equal to the Pod's Ready lastTransitionTime: {trigger_matches}/{FLIPS}"
    );
    Ok(())
}

// ---------------------------------------------------------------------
// Part 2

/// The Services (of `svc-NNNN`) whose slices list their 10 ready Pods.
async fn converged(
    slices: &Api<EndpointSlice>,
    endpoints: &Api<Endpoints>,
) -> anyhow::Result<(usize, usize)> {
    let managed = ListParams::default()
        .labels("endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io");
    let list = slices.list(&managed).await?;
    let mut by_service: BTreeMap<String, Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in &list.items {
        if let Some(service) = slice.labels().get("kubernetes.io/service-name") {
            if service.starts_with("svc-") {
                by_service.entry(service.clone()).or_default().push(slice);
            }
        }
    }
    let good_slices = by_service
        .values()
        .filter(|s| counts(s) == (PODS_PER_SERVICE, PODS_PER_SERVICE))
        .count();
    let good_endpoints = endpoints
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter(|e| e.name_any().starts_with("svc-"))
        .filter(|e| {
            let ready: usize = e
                .subsets
                .iter()
                .flatten()
                .map(|s| s.addresses.as_ref().map_or(0, Vec::len))
                .sum();
            ready == PODS_PER_SERVICE
        })
        .count();
    Ok((good_slices, good_endpoints))
}

/// Polls until every Service has correct slices and Endpoints; returns
/// when the slices were done and when both were.
async fn wait_converged(
    client: &Client,
    since: Instant,
    services: usize,
) -> anyhow::Result<(Duration, Duration)> {
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let deadline = since + CONVERGENCE_TIMEOUT;
    let mut slices_done = None;
    let mut last_report = Instant::now();
    loop {
        let (good_slices, good_endpoints) = converged(&slices, &endpoints).await?;
        if good_slices == services && slices_done.is_none() {
            slices_done = Some(since.elapsed());
        }
        if let (Some(s), true) = (slices_done, good_endpoints == services) {
            return Ok((s, since.elapsed()));
        }
        if Instant::now() > deadline {
            bail!("not converged after {CONVERGENCE_TIMEOUT:?}: {good_slices} slices, {good_endpoints} Endpoints right");
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            println!(
                "  ... {:.0?}: {good_slices}/{services} Services' slices right",
                since.elapsed()
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn convergence(
    client: &Client,
    apiserver: &ApiServer,
    controller: Component,
) -> anyhow::Result<Component> {
    let n = service_count();
    println!(
        "== convergence: {n} Services over {} Pods",
        n * PODS_PER_SERVICE
    );
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    let started = Instant::now();
    futures::stream::iter(0..n)
        .map(|s| {
            let services = services.clone();
            async move { create_service(&services, &format!("svc-{s:04}")).await }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<_>>()
        .await?;
    futures::stream::iter(0..n * PODS_PER_SERVICE)
        .map(|k| {
            let pods = pods.clone();
            let s = k / PODS_PER_SERVICE;
            async move {
                create_pod(
                    &pods,
                    &format!("svc-{s:04}-{}", k % PODS_PER_SERVICE),
                    &format!("svc-{s:04}"),
                    k,
                )
                .await
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<_>>()
        .await?;
    let written = started.elapsed();
    println!(
        "  live: created {n} Services and {} Pods (create + status) in {written:.1?}",
        n * PODS_PER_SERVICE
    );
    let (slices_done, all_done) = wait_converged(client, started, n).await?;
    println!(
        "  live: all slices right {slices_done:.1?} after the first write ({:.1?} after the last), Endpoints too at {all_done:.1?}",
        slices_done.saturating_sub(written)
    );

    // Cold start: a new controller finds 1,000 Services with nothing written.
    controller.kill();
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let _ = leases
        .delete("kube-lite-controller", &DeleteParams::default())
        .await;
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    slices
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await?;
    endpoints
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await?;
    let left: BTreeSet<String> = slices
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(|s| s.name_any())
        .collect();
    if !left.is_empty() {
        bail!("{} slices survived the delete", left.len());
    }
    let started = Instant::now();
    let controller = start_controller(apiserver);
    let (slices_done, all_done) = wait_converged(client, started, n).await?;
    println!(
        "  cold start: all slices right {slices_done:.1?} after the controller started, Endpoints too at {all_done:.1?}"
    );
    Ok(controller)
}
