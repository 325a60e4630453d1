//! Benchmark: what containerd itself takes for a Pod, asked directly over
//! the CRI (as `crictl runp` + `crictl create` + `crictl start` would).
//!
//! The floor under the node agent's Pod create -> Ready: a sandbox
//! (containerd's pause container, its network namespace, the CNI plugin)
//! and an nginx container in it, with the image already present. Also the
//! time to pull nginx from the lab's registry.
//!
//! ```text
//! cargo build --release --workspace --bins --examples
//! sudo target/release/examples/cri_bench [--pods 100] [--parallel 4]
//! ```
//!
//! Brings up its own lab (master + 2 workers) and takes it down at the
//! end, also on failure; every sandbox is stopped and removed right after
//! it is timed, so at most `--parallel` exist at once. Needs root.

mod bench;
use bench::{arg, percentile, start_lab};

use std::sync::Arc;
use std::time::{Duration, Instant};

use nodeagent::cri::{image_spec, v1, Runtime};
use tokio::sync::Semaphore;

/// The cgroup parent of the benchmark's sandboxes, removed at the end.
const CGROUP_PARENT: &str = "/kube-lite-cri-bench";
const NGINX: &str = "docker.io/library/nginx:alpine";

fn sandbox_config(n: usize, logs: &std::path::Path) -> v1::PodSandboxConfig {
    v1::PodSandboxConfig {
        metadata: Some(v1::PodSandboxMetadata {
            name: format!("bench-{n}"),
            uid: format!("uid-bench-{n}"),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: format!("bench-{n}"),
        log_directory: logs.join(n.to_string()).display().to_string(),
        linux: Some(v1::LinuxPodSandboxConfig {
            cgroup_parent: CGROUP_PARENT.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// RunPodSandbox, CreateContainer, StartContainer: the timed part.
async fn start_pod(runtime: &mut Runtime, config: v1::PodSandboxConfig) -> anyhow::Result<String> {
    let sandbox = runtime.run_sandbox(&config).await?;
    let container = v1::ContainerConfig {
        metadata: Some(v1::ContainerMetadata {
            name: "nginx".into(),
            attempt: 0,
        }),
        image: Some(image_spec(NGINX)),
        log_path: "nginx/0.log".into(),
        ..Default::default()
    };
    runtime
        .start_container(&sandbox, container, &config)
        .await?;
    Ok(sandbox)
}

fn report(what: &str, mut samples: Vec<Duration>, elapsed: Duration) {
    samples.sort();
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    println!(
        "{what}: {} pods, p50 {}, p90 {}, p99 {}, max {}, {:.1} pods/s",
        samples.len(),
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.9)),
        ms(percentile(&samples, 0.99)),
        ms(*samples.last().unwrap()),
        samples.len() as f64 / elapsed.as_secs_f64()
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let total = arg("--pods", 100).clamp(1, 1000);
    let parallel = arg("--parallel", 4).clamp(1, 50);
    let run = start_lab().await?;
    let result = measure(&run, total, parallel).await;
    for controller in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = std::fs::remove_dir(
            controller
                .path()
                .join(CGROUP_PARENT.trim_start_matches('/')),
        );
    }
    result
}

async fn measure(run: &bench::BenchLab, total: usize, parallel: usize) -> anyhow::Result<()> {
    let worker = e2e::lab::Node::all(2).remove(1);
    let layout = e2e::lab::node_layout(&run.dir, &worker);
    let conflist = layout.cni_conf_dir().join(api::cni::CONFLIST_FILE);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !conflist.exists() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "no CNI conflist on {}",
            worker.name
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut runtime = Runtime::connect(&layout.containerd_endpoint()).await?;

    // The pull: from the lab registry over TLS, then unpacked.
    let started = Instant::now();
    runtime.pull(NGINX).await?;
    println!(
        "pull {NGINX} from the lab registry (cold): {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    // The sandbox image, pulled by the first sandbox: not timed.
    let logs = tempfile::tempdir()?;
    let warmup = start_pod(&mut runtime, sandbox_config(usize::MAX, logs.path())).await?;
    runtime.remove_sandbox(&warmup).await?;

    let gate = Arc::new(Semaphore::new(parallel));
    let began = Instant::now();
    let mut tasks = vec![];
    for n in 0..total {
        let permit = gate.clone().acquire_owned().await?;
        let mut runtime = runtime.clone();
        let config = sandbox_config(n, logs.path());
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let sandbox = start_pod(&mut runtime, config).await?;
            let took = started.elapsed();
            runtime.remove_sandbox(&sandbox).await?;
            drop(permit);
            anyhow::Ok(took)
        }));
    }
    let mut samples = vec![];
    for task in tasks {
        samples.push(task.await??);
    }
    report(
        &format!("containerd sandbox + nginx started, {parallel} in flight"),
        samples,
        began.elapsed(),
    );
    Ok(())
}
