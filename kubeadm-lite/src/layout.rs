//! Where everything lives on a VM, as kubeadm lays out `/etc/kubernetes`:
//!
//! ```text
//! /etc/kube-lite/
//!   pki/ca.crt ca.key                 the cluster CA (the key on the master only)
//!   pki/apiserver.crt .key            the apiserver's serving certificate
//!   pki/apiserver-kubelet-client.*    what the apiserver shows node agents
//!   pki/sa.key sa.pub                 signs and checks ServiceAccount tokens
//!   pki/kubelet.crt .key              this node agent's serving certificate
//!   admin.conf                        kubernetes-admin (system:masters)
//!   controller.conf                   system:kube-controller-manager
//!   nodeagent.conf                    system:node:<name> (kubeadm's kubelet.conf)
//! /var/lib/kube-lite/apiserver        the apiserver's database
//! /var/lib/kube-lite/nodeagent        the node agent's state
//! /etc/systemd/system/kube-lite-*.service
//! /etc/containerd/config.toml         containerd, set up for the node agent
//! /etc/containerd/certs.d/            registry mirrors (hosts.toml), if any
//! /var/lib/containerd, /run/containerd  containerd's data and state
//! /opt/cni/bin/kube-lite, loopback    the CNI plugins containerd runs
//! /etc/cni/net.d/10-kube-lite.conflist  written by the node agent
//! /var/lib/cni/networks/kube-lite/    the plugin's address records
//! ```
//!
//! `--root DIR` puts all of it under DIR: the lab gives each of its
//! namespace "VMs" a directory as its disk.

use std::path::{Path, PathBuf};

/// The paths of one machine.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout under `root` (`/` on a VM).
    pub fn new(root: impl Into<PathBuf>) -> Layout {
        Layout { root: root.into() }
    }

    fn under(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn etc(&self) -> PathBuf {
        self.under("/etc/kube-lite")
    }

    pub fn pki(&self) -> PathBuf {
        self.etc().join("pki")
    }

    pub fn ca_cert(&self) -> PathBuf {
        self.pki().join("ca.crt")
    }

    pub fn ca_key(&self) -> PathBuf {
        self.pki().join("ca.key")
    }

    /// The apiserver's serving certificate and key.
    pub fn apiserver_cert(&self) -> (PathBuf, PathBuf) {
        (
            self.pki().join("apiserver.crt"),
            self.pki().join("apiserver.key"),
        )
    }

    /// The apiserver's client certificate towards node agents.
    pub fn apiserver_kubelet_client(&self) -> (PathBuf, PathBuf) {
        (
            self.pki().join("apiserver-kubelet-client.crt"),
            self.pki().join("apiserver-kubelet-client.key"),
        )
    }

    /// The ServiceAccount token key pair (private, public).
    pub fn service_account_keys(&self) -> (PathBuf, PathBuf) {
        (self.pki().join("sa.key"), self.pki().join("sa.pub"))
    }

    /// The node agent's serving certificate and key (its port 10250).
    pub fn kubelet_serving(&self) -> (PathBuf, PathBuf) {
        (
            self.pki().join("kubelet.crt"),
            self.pki().join("kubelet.key"),
        )
    }

    pub fn admin_conf(&self) -> PathBuf {
        self.etc().join("admin.conf")
    }

    pub fn controller_conf(&self) -> PathBuf {
        self.etc().join("controller.conf")
    }

    pub fn nodeagent_conf(&self) -> PathBuf {
        self.etc().join("nodeagent.conf")
    }

    pub fn var(&self) -> PathBuf {
        self.under("/var/lib/kube-lite")
    }

    pub fn apiserver_data(&self) -> PathBuf {
        self.var().join("apiserver")
    }

    pub fn nodeagent_data(&self) -> PathBuf {
        self.var().join("nodeagent")
    }

    pub fn containerd_config(&self) -> PathBuf {
        self.under("/etc/containerd/config.toml")
    }

    /// Registry hosts (`certs.d/docker.io/hosts.toml`, ...).
    pub fn containerd_certs_d(&self) -> PathBuf {
        self.under("/etc/containerd/certs.d")
    }

    pub fn containerd_root(&self) -> PathBuf {
        self.under("/var/lib/containerd")
    }

    /// containerd's state: lost at a reboot (`/run` is a tmpfs).
    pub fn containerd_state(&self) -> PathBuf {
        self.under("/run/containerd")
    }

    pub fn containerd_socket(&self) -> PathBuf {
        self.containerd_state().join("containerd.sock")
    }

    /// `unix://` + the socket: the node agent's `--container-runtime-endpoint`.
    pub fn containerd_endpoint(&self) -> String {
        format!("unix://{}", self.containerd_socket().display())
    }

    pub fn cni_bin_dir(&self) -> PathBuf {
        self.under("/opt/cni/bin")
    }

    pub fn cni_conf_dir(&self) -> PathBuf {
        self.under("/etc/cni/net.d")
    }

    /// The CNI plugin's IPAM records (host-local's place).
    pub fn cni_data_dir(&self) -> PathBuf {
        self.under("/var/lib/cni/networks")
    }

    /// Where the node agent puts containers' logs.
    pub fn pod_logs_dir(&self) -> PathBuf {
        self.under("/var/log/pods")
    }

    /// The cgroup the node's Pods go under: the kubelet's default `/` on
    /// a VM; one per node for the lab's VMs, which share one machine's
    /// cgroups (`/kube-lite-lab/kl-worker1`).
    pub fn cgroup_root(&self, node_name: &str) -> String {
        if self.root == Path::new("/") {
            "/".into()
        } else {
            format!("/kube-lite-lab/{node_name}")
        }
    }

    pub fn units_dir(&self) -> PathBuf {
        self.under("/etc/systemd/system")
    }

    /// `kube-lite-<component>.service`.
    pub fn unit(&self, component: &str) -> PathBuf {
        self.units_dir().join(crate::units::unit_name(component))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_holds_the_whole_machine() {
        let vm = Layout::new("/");
        assert_eq!(vm.admin_conf(), Path::new("/etc/kube-lite/admin.conf"));
        assert_eq!(
            vm.unit("nodeagent"),
            Path::new("/etc/systemd/system/kube-lite-nodeagent.service")
        );
        let lab = Layout::new("/lab/kl-worker1");
        assert_eq!(
            lab.ca_cert(),
            Path::new("/lab/kl-worker1/etc/kube-lite/pki/ca.crt")
        );
        assert_eq!(
            lab.nodeagent_data(),
            Path::new("/lab/kl-worker1/var/lib/kube-lite/nodeagent")
        );
    }
}
