//! What the benchmarks share: a `--flag N` from the command line and
//! percentiles read off sorted samples. Each benchmark uses part of it.
#![allow(dead_code)]

use std::time::Duration;

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
