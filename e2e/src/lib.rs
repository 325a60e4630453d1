//! # kube-lite `e2e`: clusters for tests
//!
//! kind builds throwaway Kubernetes clusters for tests; this crate does the
//! same for kube-lite.
//!
//! # Layout
//! - [`harness`]: the real component binaries (`apiserver`, `controller`,
//!   ...) started as processes on loopback ports with private data
//!   directories, and stopped by PID when dropped - also when a test fails.

pub mod harness;
