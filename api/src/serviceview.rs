//! How one Service is programmed on one node: what a node agent reads back
//! from its kernel's `ip kube-lite` table and serves on its kubelet port
//! (`GET /kube-lite/services/{namespace}/{name}`, reached through the
//! apiserver as `/api/v1/nodes/{node}/proxy/kube-lite/services/...`), and
//! what `kubectl-lite trace` prints.
//!
//! This is kube-lite's own, not a Kubernetes API: upstream has no such
//! view (one reads `nft list` on the node). Every name in it - map, chain,
//! key, comment - is exactly what `nft list table ip kube-lite` prints, so
//! that a student can go from one to the other.

use serde::{Deserialize, Serialize};

/// The kubelet path of the view, below which come `{namespace}/{name}`.
pub const PATH: &str = "/kube-lite/services";

/// One Service on one node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceView {
    /// The node whose kernel this was read from.
    pub node: String,
    /// `namespace/name`.
    pub service: String,
    /// Its ClusterIP, or empty (headless, ExternalName: nothing to
    /// program).
    pub cluster_ip: String,
    pub ports: Vec<PortView>,
    /// Endpoints of this Service whose pair is in `hairpin-endpoints`: a
    /// connection from one of them to itself is masqueraded.
    pub hairpin: Vec<String>,
    /// Clients `affinity-clients` remembers for this Service (ClientIP
    /// affinity): `client -> endpoint`, with the address and port used.
    pub remembered_clients: Vec<RememberedClient>,
}

/// One port of the Service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortView {
    /// `namespace/name:port`, as the table's comments say.
    pub label: String,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    pub port: u16,
    /// What a packet to the ClusterIP meets.
    pub cluster_ip: Path,
    /// What a packet to the NodePort meets, on any address of the node.
    pub node_port: Option<NodePortPath>,
    /// The chain that remembers clients (`remember-client-10800s`) when
    /// the port has ClientIP affinity.
    pub affinity: Option<String>,
}

/// A NodePort and its path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodePortPath {
    pub node_port: u16,
    pub path: Path,
}

/// The element a packet's destination finds, and the buckets it leads to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Path {
    /// The set or map the element is in: the set of the ports of its kind
    /// (`services-with-2-endpoints`, `nodeports-with-1-endpoint`,
    /// `nodeports-with-1-local-of-2-endpoints`), or `no-endpoint-services` /
    /// `no-endpoint-nodeports` (reject or drop); empty when the kernel has
    /// no element for it at all.
    pub map: String,
    /// `10.96.0.50 . tcp . 80`.
    pub key: String,
    /// `goto pick-1-of-2` (the dispatch rule of its set), `goto
    /// reject-chain`, `drop`.
    pub verdict: String,
    pub comment: String,
    /// The endpoints it picks from, by bucket.
    pub buckets: Vec<Bucket>,
}

/// One bucket of `service-endpoints` or `nodeport-endpoints`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    pub map: String,
    pub bucket: u32,
    /// `10.244.2.7:80`.
    pub endpoint: String,
    /// `default/ngx-svc:80 -> ngx-dep-66fffb58f7-xlxwp 10.244.2.7:80`.
    pub comment: String,
}

/// One entry of `affinity-clients`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RememberedClient {
    pub client: String,
    /// The address and port the client used: `10.96.0.50:80`.
    pub destination: String,
    /// `10.244.2.7:80`.
    pub endpoint: String,
}
