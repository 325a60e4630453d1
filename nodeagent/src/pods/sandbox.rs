//! The Pod sandbox: what a Pod has before any of its containers starts.
//!
//! The kubelet asks the runtime for a sandbox per Pod (`RunPodSandbox`):
//! containerd starts the `pause` container, whose namespaces the Pod's
//! containers join, and calls the CNI plugin ([`crate::cni`]) to give its
//! network namespace `eth0` and the Pod's IP. The sandbox also gets the
//! Pod's hostname and its `/etc/resolv.conf` (the cluster DNS with the
//! `<ns>.svc.cluster.local` search path: why `curl ngx-svc` works from a
//! Pod), from the config made here ([`crate::cri::config::sandbox_config`]).
//!
//! Beside it, the kubelet keeps a directory per Pod on the node,
//! `<data-dir>/pods/<uid>/`, for what it writes itself and mounts into
//! the containers: the volumes and `/etc/hosts` ("Kubernetes-managed hosts
//! file", naming the Pod by its IP).
//!
//! A sandbox is found again by its Pod's UID label: a restarted agent
//! adopts it. One that is no longer ready (its network namespace went
//! with a reboot) is replaced by a new attempt, and the Pod's containers
//! start again in it, as the kubelet does.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;

use crate::cri::config::{self, NodeSettings};
use crate::cri::{v1, Runtime};

/// Where the node's own resolver configuration is (`dnsPolicy: Default`
/// and host-network Pods use it).
pub const NODE_RESOLV_CONF: &str = "/etc/resolv.conf";

/// The directory of one Pod on the node.
#[derive(Debug, Clone)]
pub struct PodDir {
    root: PathBuf,
}

impl PodDir {
    /// `<pods dir>/<uid>`.
    pub fn new(pods_dir: &Path, uid: &str) -> PodDir {
        PodDir {
            root: pods_dir.join(uid),
        }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The Pod's `/etc/hosts`, mounted into its containers (the kubelet's
    /// `etc-hosts`).
    pub fn etc_hosts(&self) -> PathBuf {
        self.root.join("etc-hosts")
    }

    /// Creates the directory and writes `/etc/hosts`. Idempotent.
    pub fn prepare(&self, hosts: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.root)?;
        let path = self.etc_hosts();
        if std::fs::read_to_string(&path).ok().as_deref() == Some(hosts) {
            return Ok(());
        }
        std::fs::write(path, hosts)
    }
}

/// A Pod's sandbox in the runtime.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub id: String,
    /// The Pod's IP: the CNI plugin's address, or the node's with
    /// `hostNetwork`.
    pub ip: Ipv4Addr,
    /// What it was made from: containers are created with it.
    pub config: v1::PodSandboxConfig,
}

/// Why the sandbox could not be made (`FailedCreatePodSandBox`).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("{}", super::pull::go_status(.0))]
    Runtime(#[from] tonic::Status),
    #[error("the sandbox {id} has no IP: {ip:?}")]
    NoIp { id: String, ip: String },
}

/// The labels that find the sandboxes of Pod `uid`.
fn selector(uid: &str) -> HashMap<String, String> {
    HashMap::from([(config::POD_UID_LABEL.to_string(), uid.to_string())])
}

/// Finds `pod`'s ready sandbox or runs a new one; says which. Sandboxes of
/// the Pod that are not ready are stopped and removed (with their
/// containers) once a new one runs.
pub async fn ensure(
    runtime: &mut Runtime,
    pod: &Pod,
    node_ip: Ipv4Addr,
    resolv_conf: &str,
    node: &NodeSettings,
) -> Result<(Sandbox, bool), SandboxError> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let existing = runtime.sandboxes(selector(&uid)).await?;
    let ready = existing
        .iter()
        .filter(|s| s.state == v1::PodSandboxState::SandboxReady as i32)
        .max_by_key(|s| s.metadata.as_ref().map_or(0, |m| m.attempt));
    let attempt = existing
        .iter()
        .map(|s| s.metadata.as_ref().map_or(0, |m| m.attempt) + 1)
        .max()
        .unwrap_or(0);
    let (id, attempt, new) = match ready {
        Some(s) => (
            s.id.clone(),
            s.metadata.as_ref().map_or(0, |m| m.attempt),
            false,
        ),
        None => {
            let config = config::sandbox_config(pod, attempt, resolv_conf, node);
            (runtime.run_sandbox(&config).await?, attempt, true)
        }
    };
    for old in existing.iter().filter(|s| s.id != id) {
        if let Err(status) = runtime.remove_sandbox(&old.id).await {
            tracing::warn!(sandbox = %old.id, error = %status.message(), "cannot remove an old sandbox");
        }
    }
    let config = config::sandbox_config(pod, attempt, resolv_conf, node);
    let ip = if host_network(pod) {
        node_ip
    } else {
        let status = runtime.sandbox_status(&id).await?;
        let ip = status.network.map(|n| n.ip).unwrap_or_default();
        ip.parse()
            .map_err(|_| SandboxError::NoIp { id: id.clone(), ip })?
    };
    Ok((Sandbox { id, ip, config }, new))
}

/// Every sandbox on the node, with the UID of its Pod.
pub async fn all(runtime: &mut Runtime) -> Result<Vec<(String, String)>, tonic::Status> {
    Ok(runtime
        .sandboxes(HashMap::new())
        .await?
        .into_iter()
        .map(|s| {
            let uid = s
                .labels
                .get(config::POD_UID_LABEL)
                .cloned()
                .unwrap_or_default();
            (s.id, uid)
        })
        .collect())
}

/// The cluster's DNS, as the kubelet's `--cluster-dns` and
/// `--cluster-domain` give it.
#[derive(Debug, Clone)]
pub struct ClusterDns {
    pub server: Ipv4Addr,
    pub domain: String,
}

/// The Pod's hostname: `spec.hostname`, else its name, cut to the 63
/// characters a hostname may have.
pub fn hostname(pod: &Pod) -> String {
    let spec = pod.spec.as_ref();
    let name = spec
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
    name.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches(['-', '.'])
        .to_string()
}

/// Whether the Pod shares the node's network namespace.
pub fn host_network(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.host_network) == Some(true)
}

/// The Pod's /etc/hosts, as the kubelet writes it.
pub fn hosts_file(pod: &Pod, ip: Ipv4Addr, dns: &ClusterDns) -> String {
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    let spec = pod.spec.as_ref();
    let host = hostname(pod);
    match spec
        .and_then(|s| s.subdomain.as_deref())
        .filter(|s| !s.is_empty())
    {
        Some(subdomain) => {
            let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
            out.push_str(&format!(
                "{ip}\t{host}.{subdomain}.{ns}.svc.{}\t{host}\n",
                dns.domain
            ));
        }
        None => out.push_str(&format!("{ip}\t{host}\n")),
    }
    let aliases = spec.and_then(|s| s.host_aliases.as_ref());
    if let Some(aliases) = aliases.filter(|a| !a.is_empty()) {
        out.push_str("\n# Entries added by HostAliases.\n");
        for alias in aliases {
            let names = alias.hostnames.clone().unwrap_or_default().join("\t");
            out.push_str(&format!("{}\t{names}\n", alias.ip));
        }
    }
    out
}

/// The Pod's /etc/resolv.conf for its `dnsPolicy`.
pub fn resolv_conf(pod: &Pod, dns: &ClusterDns, node_resolv_conf: &str) -> String {
    let spec = pod.spec.as_ref();
    let policy = spec
        .and_then(|s| s.dns_policy.clone())
        .unwrap_or_else(|| "ClusterFirst".into());
    let cluster = match policy.as_str() {
        "ClusterFirst" => !host_network(pod),
        "ClusterFirstWithHostNet" => true,
        _ => false,
    };
    let (mut servers, mut searches, mut options): (Vec<String>, Vec<String>, Vec<String>) =
        if cluster {
            let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
            let d = &dns.domain;
            (
                vec![dns.server.to_string()],
                vec![format!("{ns}.svc.{d}"), format!("svc.{d}"), d.clone()],
                vec!["ndots:5".into()],
            )
        } else if policy == "None" {
            (vec![], vec![], vec![])
        } else {
            parse_resolv_conf(node_resolv_conf)
        };
    if let Some(config) = spec.and_then(|s| s.dns_config.as_ref()) {
        servers.extend(config.nameservers.clone().unwrap_or_default());
        searches.extend(config.searches.clone().unwrap_or_default());
        for option in config.options.clone().unwrap_or_default() {
            let Some(name) = option.name else { continue };
            options.retain(|o| o.split(':').next() != Some(name.as_str()));
            options.push(match option.value {
                Some(v) => format!("{name}:{v}"),
                None => name,
            });
        }
    }
    let mut out = String::new();
    if !searches.is_empty() {
        out.push_str(&format!("search {}\n", searches.join(" ")));
    }
    for server in servers {
        out.push_str(&format!("nameserver {server}\n"));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// Nameservers, search domains and options of a resolv.conf.
fn parse_resolv_conf(text: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut servers, mut searches, mut options) = (vec![], vec![], vec![]);
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => servers.extend(words.next().map(str::to_string)),
            Some("search") | Some("domain") => searches = words.map(str::to_string).collect(),
            Some("options") => options.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    (servers, searches, options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: serde_json::Value) -> Pod {
        serde_json::from_value(yaml).unwrap()
    }

    fn dns() -> ClusterDns {
        ClusterDns {
            server: Ipv4Addr::new(10, 96, 0, 10),
            domain: "cluster.local".into(),
        }
    }

    #[test]
    fn cluster_first_resolv_conf() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"containers": []}
        }));
        assert_eq!(
            resolv_conf(&p, &dns(), "nameserver 1.1.1.1\n"),
            "search shop.svc.cluster.local svc.cluster.local cluster.local\n\
             nameserver 10.96.0.10\noptions ndots:5\n"
        );
        let host = pod(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"containers": [], "hostNetwork": true}
        }));
        assert_eq!(
            resolv_conf(&host, &dns(), "nameserver 192.168.56.1\nsearch lan\n"),
            "search lan\nnameserver 192.168.56.1\n"
        );
    }

    #[test]
    fn hosts_names_the_pod() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "ngx-dep-6796688696-cmj2z", "namespace": "default"},
            "spec": {"containers": [], "hostAliases": [{"ip": "1.2.3.4", "hostnames": ["a", "b"]}]}
        }));
        let hosts = hosts_file(&p, Ipv4Addr::new(10, 244, 1, 5), &dns());
        assert!(hosts.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(
            hosts.contains("10.244.1.5\tngx-dep-6796688696-cmj2z\n"),
            "{hosts}"
        );
        assert!(hosts.contains("1.2.3.4\ta\tb\n"));
        assert_eq!(hostname(&p), "ngx-dep-6796688696-cmj2z");
    }
}
