//! Benchmark: Pod create -> Ready on the lab, beside what containerd
//! itself takes for the same Pod, in one run.
//!
//! What a student waits for after `kubectl apply`: the apiserver stores the
//! Pod, the scheduler binds it, the node agent asks containerd for the
//! sandbox (pause, network namespace, the CNI plugin) and the nginx
//! container, and reports the Pod Ready. Measured from sending the create
//! to seeing `Ready=True` through a watch, for `--pods` Pods created
//! `--parallel` at a time, with the image already on the nodes.
//!
//! In the same run, before the Pods:
//!
//! - the cold pull of `nginx:alpine` from the lab's registry (TLS, one
//!   46 MB layer, unpacked), on kl-worker1;
//! - containerd's own time for the same sandbox and container, asked
//!   directly over the CRI as `crictl runp`/`create`/`start` would, with
//!   the configs the agent makes (`nodeagent::cri::config`): the floor
//!   under the agent's time, so that its overhead shows.
//!
//! And after them, with the Pods still there (the scheduler spreads them:
//! about `--pods`/2 per worker), each worker agent's resident memory.
//!
//! ```text
//! cargo build --release --workspace --bins --examples
//! sudo target/release/examples/pod_ready_bench [--pods 200] [--parallel 4] [--direct 40]
//! ```
//!
//! Brings up its own lab (master + 2 workers) and takes it down at the end,
//! also on failure. Needs root. Targets: p50 < 500 ms, p99 < 1 s.

mod bench;
use bench::{arg, percentile, start_lab, BenchLab};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use kube::Api;
use nodeagent::cri::config::{self, NodeSettings};
use nodeagent::cri::Runtime;
use tokio::sync::{Mutex, Semaphore};

const NGINX: &str = "nginx:alpine";
const WORKER: &str = "kl-worker1";

fn pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                     "labels": {"bench": "pod-ready"}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "nginx", "image": NGINX,
                            "ports": [{"containerPort": 80}]}]
        },
        "status": {"qosClass": "BestEffort"}
    }))
    .expect("a valid Pod")
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// One line of figures.
fn report(what: &str, mut samples: Vec<Duration>, elapsed: Duration) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("{what}:");
    println!(
        "  {} Pods  p50 {:.1} ms   p90 {:.1} ms   p99 {:.1} ms   max {:.1} ms   ({:.1} Pods/s)",
        samples.len(),
        ms(percentile(&samples, 0.50)),
        ms(percentile(&samples, 0.90)),
        ms(percentile(&samples, 0.99)),
        ms(*samples.last().expect("samples")),
        samples.len() as f64 / elapsed.as_secs_f64()
    );
}

/// The worker's containerd and what its agent gives every Pod.
async fn worker_runtime(run: &BenchLab) -> anyhow::Result<(Runtime, NodeSettings)> {
    let node = e2e::lab::Node::all(2)
        .into_iter()
        .find(|n| n.name == WORKER)
        .expect("the lab's worker");
    let layout = e2e::lab::node_layout(&run.dir, &node);
    let runtime = Runtime::connect(&layout.containerd_endpoint()).await?;
    let settings = NodeSettings {
        cgroup_root: layout.cgroup_root(WORKER),
        systemd_cgroup: false,
        pod_logs_dir: layout.pod_logs_dir(),
        memory_capacity: 1 << 30,
    };
    Ok((runtime, settings))
}

/// containerd alone: RunPodSandbox, CreateContainer, StartContainer for
/// the Pod the agent would make, `parallel` at a time; each sandbox is
/// removed right after it is timed.
async fn direct(run: &BenchLab, total: usize, parallel: usize) -> anyhow::Result<()> {
    let (mut runtime, settings) = worker_runtime(run).await?;
    let started = Instant::now();
    runtime.pull(NGINX).await?;
    println!(
        "pull of {NGINX} from the lab registry on {WORKER} (cold): {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    let one = |n: usize, runtime: Runtime| {
        let settings = settings.clone();
        async move {
            let mut runtime = runtime;
            let pod = pod(&format!("direct-{n}"));
            let container = &pod.spec.as_ref().expect("spec").containers[0];
            let resolv = "nameserver 10.96.0.10\n";
            let began = Instant::now();
            let sandbox_config = config::sandbox_config(&pod, 0, resolv, &settings);
            let sandbox = runtime.run_sandbox(&sandbox_config).await?;
            let container = config::container_config(&pod, container, 0, &[], vec![], &settings)?;
            runtime
                .start_container(&sandbox, container, &sandbox_config)
                .await?;
            let took = began.elapsed();
            runtime.remove_sandbox(&sandbox).await?;
            anyhow::Ok(took)
        }
    };
    // The pause image comes with the first sandbox: not timed.
    one(usize::MAX, runtime.clone()).await?;
    let gate = Arc::new(Semaphore::new(parallel));
    let began = Instant::now();
    let mut tasks = vec![];
    for n in 0..total {
        let permit = gate.clone().acquire_owned().await?;
        let task = one(n, runtime.clone());
        tasks.push(tokio::spawn(async move {
            let took = task.await;
            drop(permit);
            took
        }));
    }
    let mut samples = vec![];
    for task in tasks {
        samples.push(task.await??);
    }
    report(
        &format!(
            "containerd alone (direct CRI calls): sandbox + nginx started, {parallel} in flight"
        ),
        samples,
        began.elapsed(),
    );
    Ok(())
}

/// Through the cluster: create -> Ready seen by a watch.
async fn through_the_agent(run: &BenchLab, total: usize, parallel: usize) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(run.client.clone(), "default");
    let fresh = |name: &str| {
        let mut p = pod(name);
        p.metadata.uid = None;
        p.status = None;
        p
    };
    // Both workers schedulable, nginx present on both.
    for n in 0..2 {
        pods.create(&PostParams::default(), &fresh(&format!("bench-warmup-{n}")))
            .await?;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let list = pods
            .list(&ListParams::default().labels("bench=pod-ready"))
            .await?;
        if list.items.iter().filter(|p| is_ready(p)).count() == 2 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the warm-up Pods never got Ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // One watch sees every Pod become Ready; creators record start times.
    let started: Arc<Mutex<HashMap<String, Instant>>> = Default::default();
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
            pods.create(&PostParams::default(), &fresh(&name)).await?;
            next += 1;
        }
        let (name, at) = tokio::time::timeout(Duration::from_secs(60), ready_rx.recv())
            .await
            .map_err(|_| anyhow::anyhow!("no Pod got Ready for 60 s"))?
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
    report(
        &format!("through the cluster (create -> Ready): nginx Pods, {parallel} in flight"),
        latencies,
        elapsed,
    );

    // The agents' memory with the Pods running.
    for node in ["kl-worker1", "kl-worker2"] {
        let on_node = pods
            .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
            .await?
            .items
            .len();
        let pid = run
            .lab
            .pid(&format!("nodeagent-{node}"))
            .ok_or_else(|| anyhow::anyhow!("no agent on {node}"))?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let rss = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .unwrap_or("?")
            .trim()
            .to_string();
        println!("node agent of {node} with {on_node} Pods running: RSS {rss}");
    }
    let _ = pods
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("bench=pod-ready"),
        )
        .await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let total = arg("--pods", 200).clamp(1, 220);
    let parallel = arg("--parallel", 4).clamp(1, 50);
    let direct_total = arg("--direct", 40).clamp(1, 1000);
    let run = start_lab().await?;
    let mut result = direct(&run, direct_total, parallel).await;
    if result.is_ok() {
        result = through_the_agent(&run, total, parallel).await;
    }
    let down = run.lab.down();
    result?;
    Ok(down?)
}
