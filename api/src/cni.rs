//! The names the node agent's CNI plugin, the conflist it writes and
//! kubeadm-lite's containerd setup must agree on.

/// The plugin's program as built (`target/debug/kube-lite-cni`).
pub const PLUGIN_BINARY: &str = "kube-lite-cni";

/// The plugin's name in containerd's CNI `bin_dir`, and `type` in the
/// conflist.
pub const PLUGIN_TYPE: &str = "kube-lite";

/// The network's name (the conflist's `name`); the IPAM directory is
/// `<dataDir>/<name>`, as host-local's is.
pub const NETWORK_NAME: &str = "kube-lite";

/// The conflist's file name: containerd takes the first in lexical order.
pub const CONFLIST_FILE: &str = "10-kube-lite.conflist";
