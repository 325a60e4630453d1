//! # kube-lite `e2e`: clusters for tests
//!
//! kind builds throwaway Kubernetes clusters for tests; this crate does the
//! same for kube-lite.
//!
//! # Layout
//! - [`harness`]: the real component binaries (`apiserver`, `controller`,
//!   ...) started as processes on loopback ports with private data
//!   directories, and stopped by PID when dropped - also when a test fails.
//! - [`lab`]: the multi-node lab - one network namespace per "VM" on a
//!   host-only bridge, the control plane inside `kl-master` - built by
//!   `e2e up`, removed by `e2e down`, and held by end-to-end tests as a
//!   [`lab::Lab`].
//! - [`images`]: the lab's container images, built from Debian packages
//!   (mmdebstrap, umoci) and cached; the lab's registry serves them.
//! - [`pki`]: the lab's CA, the apiserver's certificate and a kubeconfig
//!   per identity (administrator, controller, each node agent).
//! - [`container`]: a process in fresh namespaces standing in for a
//!   container, for tests of `kubectl logs` and `kubectl exec` without a
//!   Pod runtime.

pub mod container;
pub mod harness;
pub mod images;
pub mod lab;
pub mod pki;
