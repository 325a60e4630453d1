//! What the benchmarks share: a `--flag N` from the command line and
//! percentiles read off sorted samples. Each benchmark uses part of it.
#![allow(dead_code)]

use std::time::Duration;

use e2e::harness::{bin_dir, ensure_built};
use e2e::lab::{Lab, LabOptions};

/// The number after `name` on the command line (`--pods 200`), or `default`.
pub fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The sample at fraction `p` (0.5 is the median, 0.99 the p99) of samples
/// sorted in ascending order: the nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// A lab of master + 2 workers for one benchmark run, with a client of its
/// apiserver. Its directory is temporary: fields drop in order, the lab
/// before the directory it lives in.
pub struct BenchLab {
    pub lab: Lab,
    pub client: kube::Client,
    /// The lab's directory (`DIR`: the VMs' disks, logs).
    pub dir: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// Builds the binaries if needed and brings up the lab (as root: it makes
/// network namespaces).
pub async fn start_lab() -> anyhow::Result<BenchLab> {
    anyhow::ensure!(
        nix::unistd::geteuid().is_root(),
        "the benchmark builds a lab of network namespaces: run it as root"
    );
    ensure_built(&["apiserver", "controller", "nodeagent", "e2e"]);
    let dir = tempfile::tempdir()?;
    let lab_dir = dir.path().join("lab");
    let lab = Lab::up(LabOptions {
        workers: 2,
        dir: lab_dir.clone(),
        bin_dir: bin_dir(),
    })?;
    let client = lab.client().await?;
    Ok(BenchLab {
        lab,
        client,
        dir: lab_dir,
        _dir: dir,
    })
}
