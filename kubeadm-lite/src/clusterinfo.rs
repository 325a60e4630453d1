//! What a joining node reads before it has credentials, and how it
//! decides to trust it.
//!
//! - **`kube-public/cluster-info`** (anyone may read it): a kubeconfig
//!   with the apiserver's address and the cluster CA, no user.
//! - **`kube-system/kubeadm-config`** (bootstrappers and nodes may read
//!   it): the `ClusterConfiguration`, here the Pod and Service ranges a
//!   node agent needs.
//!
//! Discovery is *token-based with a pinned CA*, as kubeadm's: the first
//! read of cluster-info cannot check the server (the CA is what is being
//! fetched), so the CA it returns is trusted only if its public key has
//! the hash the join command names (`--discovery-token-ca-cert-hash`,
//! printed by init on the master). Then cluster-info is read again over
//! TLS checked against that CA, which proves the server holds its key.
//! (kubeadm also checks a JWS signature of cluster-info made with the
//! token; kube-lite relies on the hash alone, which kubeadm's docs call
//! the stronger of the two.)

use std::net::Ipv4Addr;

use base64::Engine as _;
use ipnet::Ipv4Net;
use serde_json::{json, Value};

use crate::{Error, Result};

/// The namespace and name of cluster-info.
pub const CLUSTER_INFO: (&str, &str) = ("kube-public", "cluster-info");
/// The namespace and name of kubeadm-config.
pub const KUBEADM_CONFIG: (&str, &str) = ("kube-system", "kubeadm-config");

/// The cluster's settings every node shares (kubeadm's
/// `ClusterConfiguration`, the parts kube-lite uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfiguration {
    /// `--pod-network-cidr`: each node gets a /24 of it.
    pub pod_subnet: Ipv4Net,
    /// `--service-cidr`: ClusterIPs.
    pub service_subnet: Ipv4Net,
    pub dns_domain: String,
    /// The apiserver's port.
    pub port: u16,
}

impl Default for ClusterConfiguration {
    fn default() -> Self {
        ClusterConfiguration {
            pod_subnet: "10.244.0.0/16".parse().expect("a CIDR"),
            service_subnet: "10.96.0.0/12".parse().expect("a CIDR"),
            dns_domain: "cluster.local".into(),
            port: 6443,
        }
    }
}

/// The `n`th address of a range.
fn nth(range: Ipv4Net, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(range.network()) + n)
}

impl ClusterConfiguration {
    /// The `kubernetes` Service's ClusterIP: the range's first address.
    pub fn kubernetes_service_ip(&self) -> Ipv4Addr {
        nth(self.service_subnet, 1)
    }

    /// The cluster DNS Service's ClusterIP: the tenth (kubeadm's choice).
    pub fn dns_ip(&self) -> Ipv4Addr {
        nth(self.service_subnet, 10)
    }

    /// As kubeadm stores it in `kubeadm-config`.
    pub fn to_yaml(&self, endpoint: &str) -> String {
        format!(
            "apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
clusterName: kubernetes
controlPlaneEndpoint: {endpoint}
networking:
  dnsDomain: {}
  podSubnet: {}
  serviceSubnet: {}
",
            self.dns_domain, self.pod_subnet, self.service_subnet
        )
    }

    /// Reads `kubeadm-config`'s `ClusterConfiguration`.
    pub fn from_yaml(text: &str) -> Result<ClusterConfiguration> {
        let bad = |why: String| Error::Refused(format!("kubeadm-config: {why}"));
        let value: Value = serde_saphyr::from_str(text).map_err(|e| bad(e.to_string()))?;
        let networking = &value["networking"];
        let cidr = |field: &str| -> Result<Ipv4Net> {
            networking[field]
                .as_str()
                .ok_or_else(|| bad(format!("no networking.{field}")))?
                .parse()
                .map_err(|e| bad(format!("networking.{field}: {e}")))
        };
        let port = value["controlPlaneEndpoint"]
            .as_str()
            .and_then(|e| e.rsplit_once(':'))
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(6443);
        Ok(ClusterConfiguration {
            pod_subnet: cidr("podSubnet")?,
            service_subnet: cidr("serviceSubnet")?,
            dns_domain: networking["dnsDomain"]
                .as_str()
                .unwrap_or("cluster.local")
                .to_string(),
            port,
        })
    }
}

/// cluster-info's kubeconfig: the server and the CA, nobody's credentials.
pub fn cluster_info_kubeconfig(server: &str, ca_pem: &str) -> String {
    format!(
        "apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: {}
    server: {server}
  name: \"\"
contexts: null
current-context: \"\"
kind: Config
preferences: {{}}
users: null
",
        base64::engine::general_purpose::STANDARD.encode(ca_pem)
    )
}

/// The ConfigMap `kube-public/cluster-info`.
pub fn cluster_info(server: &str, ca_pem: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CLUSTER_INFO.1, "namespace": CLUSTER_INFO.0},
        "data": {"kubeconfig": cluster_info_kubeconfig(server, ca_pem)},
    })
}

/// The ConfigMap `kube-system/kubeadm-config`, and the Role and
/// RoleBinding that let joining and joined nodes read it (kubeadm's
/// `kubeadm:nodes-kubeadm-config`).
pub fn kubeadm_config(cluster: &ClusterConfiguration, endpoint: &str) -> Vec<Value> {
    let (namespace, name) = KUBEADM_CONFIG;
    let role = "kubeadm:nodes-kubeadm-config";
    vec![
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace},
            "data": {"ClusterConfiguration": cluster.to_yaml(endpoint)},
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": role, "namespace": namespace},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"],
                       "resourceNames": [name], "verbs": ["get"]}],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": role, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                 "name": api::bootstraptoken::DEFAULT_NODE_TOKEN_GROUP},
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": api::user::NODES},
            ],
        }),
    ]
}

/// What discovery found: the server to use and the CA it proved it holds.
#[derive(Debug, Clone)]
pub struct Discovered {
    pub server: String,
    pub ca_pem: String,
}

/// The server and CA of cluster-info's kubeconfig.
fn read_cluster_info(config_map: &Value) -> Result<Discovered> {
    let text = config_map["data"]["kubeconfig"]
        .as_str()
        .ok_or_else(|| Error::Refused("the cluster-info ConfigMap has no kubeconfig".into()))?;
    server_and_ca(text).map_err(|why| {
        Error::Refused(format!(
            "the kubeconfig in the cluster-info ConfigMap {why}"
        ))
    })
}

/// The server and CA of a kubeconfig's first cluster; the error says what
/// it lacks (`names no server`, ...).
pub fn server_and_ca(kubeconfig: &str) -> Result<Discovered, &'static str> {
    let kubeconfig: Value = serde_saphyr::from_str(kubeconfig).map_err(|_| "is not readable")?;
    let cluster = &kubeconfig["clusters"][0]["cluster"];
    let server = cluster["server"]
        .as_str()
        .ok_or("names no server")?
        .to_string();
    let ca_pem = cluster["certificate-authority-data"]
        .as_str()
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or("has no certificate-authority-data")?;
    Ok(Discovered { server, ca_pem })
}

fn cluster_info_url(endpoint: &str) -> String {
    let (namespace, name) = CLUSTER_INFO;
    format!("https://{endpoint}/api/v1/namespaces/{namespace}/configmaps/{name}")
}

async fn fetch(client: reqwest::Client, url: &str, endpoint: &str) -> Result<Value> {
    let answer = client.get(url).send().await.map_err(|e| {
        Error::flag(
            "API_SERVER_ENDPOINT",
            format!(
                "cannot reach the apiserver at {endpoint}: {}",
                source_text(&e)
            ),
        )
    })?;
    if !answer.status().is_success() {
        return Err(Error::Refused(format!(
            "{endpoint} answered {} for cluster-info: is it a kube-lite master made by `kubeadm-lite init`?",
            answer.status()
        )));
    }
    answer
        .json()
        .await
        .map_err(|e| Error::Refused(format!("cluster-info from {endpoint} is not JSON: {e}")))
}

/// The innermost cause of a request error (reqwest's own text is
/// "error sending request").
pub fn error_text(error: &reqwest::Error) -> String {
    source_text(error)
}

fn source_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut last = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        last = e.to_string();
        source = e.source();
    }
    last
}

/// Discovery: cluster-info from `endpoint` (`192.168.56.10:6443`), its CA
/// checked against `ca_hash` (`sha256:...`), then read again with the CA
/// pinned.
pub async fn discover(endpoint: &str, ca_hash: &str) -> Result<Discovered> {
    let url = cluster_info_url(endpoint);
    let insecure = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| Error::Refused(format!("an HTTPS client: {e}")))?;
    let unverified = read_cluster_info(&fetch(insecure, &url, endpoint).await?)?;
    let actual = api::pki::public_key_hash(&unverified.ca_pem)
        .ok_or_else(|| Error::Refused("the CA in cluster-info is not a certificate".into()))?;
    if actual != ca_hash {
        return Err(Error::Refused(format!(
            "cluster CA found in cluster-info ConfigMap is invalid: none of the public keys \
             \"{actual}\" are pinned (--discovery-token-ca-cert-hash is {ca_hash}). \
             This is not the cluster the join command was made for: copy the command from \
             the master again (`kubeadm-lite token create --print-join-command` there)."
        )));
    }
    let pinned = reqwest::Certificate::from_pem(unverified.ca_pem.as_bytes())
        .map_err(|e| Error::Refused(format!("the CA in cluster-info: {e}")))?;
    let verified_client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(pinned)
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| Error::Refused(format!("an HTTPS client: {e}")))?;
    let verified = read_cluster_info(&fetch(verified_client, &url, endpoint).await?)?;
    if verified.ca_pem != unverified.ca_pem {
        return Err(Error::Refused(
            "cluster-info changed between two reads: try again".into(),
        ));
    }
    Ok(verified)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_range_names_the_kubernetes_and_dns_addresses() {
        let cluster = ClusterConfiguration::default();
        assert_eq!(cluster.kubernetes_service_ip().to_string(), "10.96.0.1");
        assert_eq!(cluster.dns_ip().to_string(), "10.96.0.10");
    }

    #[test]
    fn the_configuration_reads_back() {
        let cluster = ClusterConfiguration {
            pod_subnet: "10.200.0.0/16".parse().unwrap(),
            port: 7443,
            ..Default::default()
        };
        let text = cluster.to_yaml("192.168.56.10:7443");
        assert_eq!(ClusterConfiguration::from_yaml(&text).unwrap(), cluster);
    }

    #[test]
    fn cluster_info_carries_the_server_and_ca() {
        let ca = api::pki::Ca::generate().unwrap();
        let info = cluster_info("https://192.168.56.10:6443", ca.cert_pem());
        let read = read_cluster_info(&info).unwrap();
        assert_eq!(read.server, "https://192.168.56.10:6443");
        assert_eq!(read.ca_pem, ca.cert_pem());
    }
}
