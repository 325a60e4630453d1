//! The Pod sandbox: what a Pod has before any of its containers starts.
//!
//! On a real node the container runtime makes a "sandbox" per Pod (the
//! `pause` container): the network namespace with the Pod's IP, and the
//! files every container of the Pod shares. kube-lite's sandbox is:
//!
//! - the Pod's directory, `<data-dir>/pods/<uid>/`, holding its volumes,
//!   its containers' logs and the files below;
//! - the network namespace `kl-pod-<node>-<hash>` with `eth0` and an IP
//!   from the node's pod CIDR ([`crate::network`], [`crate::ipam`]);
//! - `/etc/hosts` naming the Pod ("Kubernetes-managed hosts file"),
//!   `/etc/resolv.conf` pointing at the cluster DNS with the
//!   `<ns>.svc.cluster.local` search path (why `curl ngx-svc` works from a
//!   Pod), and `/etc/hostname` - bind-mounted into every container.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};

use super::container::ContainerDir;

/// Where the node's own resolver configuration is (`dnsPolicy: Default`
/// and host-network Pods use it).
pub const NODE_RESOLV_CONF: &str = "/etc/resolv.conf";

/// The directory of one Pod on the node.
#[derive(Debug, Clone)]
pub struct PodDir {
    root: PathBuf,
}

/// Who a Pod directory belongs to, written into it so that a restarted
/// agent (and the kubelet server) can tell without the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRecord {
    pub namespace: String,
    pub name: String,
    pub uid: String,
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

    pub fn container(&self, name: &str) -> ContainerDir {
        ContainerDir::new(self.root.join("containers").join(name))
    }

    /// Files of the image layout of a container (nginx's config tree).
    pub fn image_dir(&self, container: &str) -> PathBuf {
        self.root.join("images").join(container)
    }

    pub fn etc(&self) -> PathBuf {
        self.root.join("etc")
    }

    fn record_path(&self) -> PathBuf {
        self.root.join("pod.json")
    }

    pub fn record(&self) -> Option<PodRecord> {
        super::monitor::read_json(&self.record_path())
            .ok()
            .flatten()
    }

    /// Creates the directory and its shared files. Idempotent.
    pub fn prepare(&self, record: &PodRecord, files: &PodFiles) -> std::io::Result<()> {
        std::fs::create_dir_all(self.etc())?;
        super::monitor::write_json_atomically(&self.record_path(), record)?;
        write_if_changed(&self.etc().join("hosts"), &files.hosts)?;
        write_if_changed(&self.etc().join("resolv.conf"), &files.resolv_conf)?;
        write_if_changed(
            &self.etc().join("hostname"),
            &format!("{}\n", files.hostname),
        )
    }
}

fn write_if_changed(path: &Path, content: &str) -> std::io::Result<()> {
    if std::fs::read_to_string(path).ok().as_deref() == Some(content) {
        return Ok(());
    }
    std::fs::write(path, content)
}

/// The shared files of a Pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFiles {
    pub hostname: String,
    pub hosts: String,
    pub resolv_conf: String,
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
