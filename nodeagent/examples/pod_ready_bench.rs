//! Benchmark: Pod create -> Ready on the lab.
//!
//! What a student waits for after `kubectl apply`: the apiserver stores the
//! Pod, the scheduler binds it, the node agent sets up the sandbox (network
//! namespace, veth, IP), starts nginx through a monitor and reports the
//! Pod Ready. Measured from sending the create to seeing `Ready=True`
//! through a watch, for `--pods` Pods created `--parallel` at a time.
//!
//! ```text
//! cargo build --release --workspace --bins --examples
//! sudo target/release/examples/pod_ready_bench [--pods 200] [--parallel 4]
//! ```
//!
//! Brings up its own lab (master + 2 workers) and takes it down at the end,
//! also on failure. Needs root. Targets: p50 < 300 ms, p99 < 1 s.

mod bench;
use bench::{arg, percentile, start_lab};

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use kube::Api;
use tokio::sync::Mutex;

fn pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "pod-ready"}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "nginx", "image": "nginx:alpine",
                            "ports": [{"containerPort": 80}]}]
        }
    }))
    .expect("a valid Pod")
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let total = arg("--pods", 200).clamp(1, 1000);
    let parallel = arg("--parallel", 4).clamp(1, 50);
    let run = start_lab().await?;
    let pods: Api<Pod> = Api::namespaced(run.client.clone(), "default");
    // Wait for both workers to be schedulable (Ready with a pod CIDR).
    let warmup = pod("bench-warmup");
    pods.create(&PostParams::default(), &warmup).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pods
        .get("bench-warmup")
        .await
        .map(|p| is_ready(&p))
        .unwrap_or(false)
    {
        anyhow::ensure!(Instant::now() < deadline, "the warm-up Pod never got Ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // One watch sees every Pod become Ready; creators record start times.
    let started: std::sync::Arc<Mutex<HashMap<String, Instant>>> = Default::default();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let watch_pods = pods.clone();
    let watch = tokio::spawn(async move {
        let stream = watcher::watcher(
            watch_pods,
            watcher::Config::default().labels("bench=pod-ready"),
        );
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            if let Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) = event {
                if is_ready(&p) {
                    let _ = ready_tx
                        .send((p.metadata.name.clone().unwrap_or_default(), Instant::now()));
                }
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut latencies = Vec::with_capacity(total);
    let mut seen = std::collections::HashSet::new();
    let run_start = Instant::now();
    let mut next = 0;
    while latencies.len() < total {
        // Keep `parallel` Pods in flight.
        while next < total && next - latencies.len() < parallel {
            let name = format!("bench-{next:04}");
            started.lock().await.insert(name.clone(), Instant::now());
            pods.create(&PostParams::default(), &pod(&name)).await?;
            next += 1;
        }
        let (name, at) = tokio::time::timeout(Duration::from_secs(30), ready_rx.recv())
            .await
            .map_err(|_| anyhow::anyhow!("no Pod got Ready for 30 s"))?
            .ok_or_else(|| anyhow::anyhow!("the watch ended"))?;
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(start) = started.lock().await.get(&name) {
            latencies.push(at - *start);
        }
    }
    let elapsed = run_start.elapsed();
    watch.abort();
    latencies.sort();
    println!(
        "Pod create -> Ready, {total} nginx Pods, {parallel} in flight, lab of master + 2 workers:"
    );
    println!(
        "  p50 {:.1} ms   p90 {:.1} ms   p99 {:.1} ms   max {:.1} ms   ({:.1} Pods/s)",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.90).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3,
        total as f64 / elapsed.as_secs_f64()
    );
    // Clean up the Pods through the API (their processes, namespaces and
    // IPs go with them), then the lab.
    let _ = pods
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("bench=pod-ready"),
        )
        .await;
    let _ = pods.delete("bench-warmup", &DeleteParams::default()).await;
    run.lab.down()?;
    Ok(())
}
