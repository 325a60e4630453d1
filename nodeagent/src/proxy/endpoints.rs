//! Which endpoints of a Service port this node sends new connections to
//! (upstream: `pkg/proxy/topology.go`, `CategorizeEndpoints`).
//!
//! This is the policy half of the proxy; [`rules`](super::rules) turns
//! its answer into map elements. Kept apart so that the rules of
//! readiness, traffic policies and topology are read, and tested, in one
//! place:
//!
//! - only **ready** endpoints get new connections; when none is ready,
//!   **serving and terminating** ones do (a Deployment rolling its last Pod
//!   keeps answering while the new one starts);
//! - `internalTrafficPolicy: Local` (ClusterIP traffic) and
//!   `externalTrafficPolicy: Local` (NodePort traffic) use this node's
//!   endpoints only; `Cluster` (the default) uses all of them;
//! - with topology-aware routing on, and every ready endpoint hinted, the
//!   cluster-wide endpoints are those hinted for this node's zone.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use crate::informer::cached::AddressType;
use crate::informer::CachedSlice;
use k8s_openapi::api::core::v1::ServicePort;

/// One Service port's endpoint, as EndpointSlices report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
    /// The Pod behind it (`targetRef.name`), for comments.
    pub pod: Option<String>,
    /// Ready for new connections (`conditions.ready`, default true).
    pub ready: bool,
    /// Able to answer (`conditions.serving`, default: `ready`).
    pub serving: bool,
    /// Its Pod is being deleted (`conditions.terminating`, default false).
    pub terminating: bool,
    /// On this node (`nodeName`).
    pub local: bool,
    /// Zones it is hinted for (topology-aware routing).
    pub zone_hints: BTreeSet<String>,
}

impl Endpoint {
    /// Draining, but still answering: used only when nothing is ready.
    pub fn serving_terminating(&self) -> bool {
        self.serving && self.terminating
    }

    /// `10.244.2.7:80`.
    pub fn address(&self) -> (Ipv4Addr, u16) {
        (self.ip, self.port)
    }
}

/// The endpoints of one Service port, from all the Service's slices: the
/// slice's port of the same name and protocol gives the number (this is how
/// a named `targetPort` is resolved per Pod). Sorted by address.
pub fn endpoints_of(port: &ServicePort, slices: &[&CachedSlice], node_name: &str) -> Vec<Endpoint> {
    let port_name = port.name.as_deref().unwrap_or_default();
    let protocol = port.protocol.as_deref().unwrap_or("TCP");
    let mut seen = BTreeSet::new();
    let mut endpoints = vec![];
    for slice in slices {
        if slice.address_type != AddressType::IPv4 {
            continue;
        }
        let Some(number) = slice.ports.iter().find_map(|p| {
            let same = &*p.name == port_name && &*p.protocol == protocol;
            same.then_some(p.port).flatten()
        }) else {
            continue;
        };
        for endpoint in slice.endpoints.iter() {
            // kube-proxy reads only the first address.
            let Some(IpAddr::V4(ip)) = endpoint.addresses.first().copied() else {
                continue;
            };
            if !seen.insert((ip, number)) {
                continue;
            }
            let conditions = endpoint.conditions;
            endpoints.push(Endpoint {
                ip,
                port: number,
                pod: endpoint.target_name.as_deref().map(String::from),
                ready: conditions.ready,
                serving: conditions.serving,
                terminating: conditions.terminating,
                local: endpoint.node_name.as_deref() == Some(node_name),
                zone_hints: endpoint.zone_hints.iter().map(|z| z.to_string()).collect(),
            });
        }
    }
    endpoints.sort_by_key(Endpoint::address);
    endpoints
}

/// Whose traffic goes to this node's endpoints only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficPolicy {
    /// `internalTrafficPolicy: Local`: ClusterIP traffic.
    pub internal_local: bool,
    /// `externalTrafficPolicy: Local`: NodePort traffic.
    pub external_local: bool,
}

/// What [`categorize`] decided for one Service port on this node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Categorized<'a> {
    /// For traffic policy `Cluster`: every usable endpoint (in this zone,
    /// with topology-aware routing). Empty when no policy of the port is
    /// `Cluster`.
    pub cluster: Vec<&'a Endpoint>,
    /// For traffic policy `Local`: the usable endpoints on this node.
    /// Empty when no policy of the port is `Local`.
    pub local: Vec<&'a Endpoint>,
    /// Some endpoint somewhere can take a connection: when a `Local`
    /// policy finds none here, the packet is dropped (try another node),
    /// not rejected (there is nothing at all).
    pub any: bool,
}

impl Categorized<'_> {
    /// The endpoints for ClusterIP traffic.
    pub fn internal(&self, policy: TrafficPolicy) -> &[&Endpoint] {
        if policy.internal_local {
            &self.local
        } else {
            &self.cluster
        }
    }
}

/// Sorts one Service port's endpoints into the ones this node uses for
/// each traffic policy. `has_node_port`: whether external traffic
/// arrives at all; `zone`: this node's zone when topology-aware routing
/// is on for the Service.
pub fn categorize<'a>(
    endpoints: &'a [Endpoint],
    policy: TrafficPolicy,
    has_node_port: bool,
    zone: Option<&str>,
) -> Categorized<'a> {
    let uses_cluster = !policy.internal_local || (has_node_port && !policy.external_local);
    let uses_local = policy.internal_local || (has_node_port && policy.external_local);
    // Ready ones; if there are none, the draining ones that still serve.
    let usable = |keep: &dyn Fn(&Endpoint) -> bool| -> Vec<&'a Endpoint> {
        let ready: Vec<&Endpoint> = endpoints.iter().filter(|e| e.ready && keep(e)).collect();
        if !ready.is_empty() {
            return ready;
        }
        endpoints
            .iter()
            .filter(|e| e.serving_terminating() && keep(e))
            .collect()
    };
    let mut out = Categorized::default();
    if uses_cluster {
        // Topology-aware routing applies only when every ready endpoint
        // carries hints and some is for this zone (upstream's safeguard).
        let by_zone = zone.filter(|zone| {
            let mut ready = endpoints.iter().filter(|e| e.ready).peekable();
            ready.peek().is_some()
                && ready.clone().all(|e| !e.zone_hints.is_empty())
                && ready.clone().any(|e| e.zone_hints.contains(*zone))
        });
        out.cluster = match by_zone {
            Some(zone) => usable(&|e: &Endpoint| e.zone_hints.contains(zone)),
            None => usable(&|_| true),
        };
        out.any = !out.cluster.is_empty();
    }
    if uses_local {
        out.any |= endpoints.iter().any(|e| e.ready || e.serving_terminating());
        out.local = usable(&|e: &Endpoint| e.local);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(ip: &str, local: bool, ready: bool, terminating: bool) -> Endpoint {
        Endpoint {
            ip: ip.parse().unwrap(),
            port: 80,
            pod: None,
            ready,
            serving: ready || terminating,
            terminating,
            local,
            zone_hints: BTreeSet::new(),
        }
    }

    fn ips(endpoints: &[&Endpoint]) -> Vec<String> {
        endpoints.iter().map(|e| e.ip.to_string()).collect()
    }

    const CLUSTER: TrafficPolicy = TrafficPolicy {
        internal_local: false,
        external_local: false,
    };
    const ITP_LOCAL: TrafficPolicy = TrafficPolicy {
        internal_local: true,
        external_local: false,
    };
    const ETP_LOCAL: TrafficPolicy = TrafficPolicy {
        internal_local: false,
        external_local: true,
    };

    /// (what, endpoints (ip, local, ready, terminating), policy, node
    /// port?, cluster, local, any)
    #[test]
    fn categorize_table() {
        type Case = (
            &'static str,
            Vec<(&'static str, bool, bool, bool)>,
            TrafficPolicy,
            bool,
            Vec<&'static str>,
            Vec<&'static str>,
            bool,
        );
        let cases: Vec<Case> = vec![
            ("nothing", vec![], CLUSTER, false, vec![], vec![], false),
            (
                "ready ones only",
                vec![
                    ("10.0.0.1", false, true, false),
                    ("10.0.0.2", false, false, false),
                ],
                CLUSTER,
                false,
                vec!["10.0.0.1"],
                vec![],
                true,
            ),
            (
                "terminating ones are not used while one is ready",
                vec![
                    ("10.0.0.1", false, false, true),
                    ("10.0.0.2", false, true, false),
                ],
                CLUSTER,
                false,
                vec!["10.0.0.2"],
                vec![],
                true,
            ),
            (
                "serving terminating ones when nothing is ready",
                vec![
                    ("10.0.0.1", false, false, true),
                    ("10.0.0.2", false, false, false),
                ],
                CLUSTER,
                false,
                vec!["10.0.0.1"],
                vec![],
                true,
            ),
            (
                "not ready and not serving: none",
                vec![("10.0.0.1", true, false, false)],
                CLUSTER,
                true,
                vec![],
                vec![],
                false,
            ),
            (
                "internal Local: this node's only",
                vec![
                    ("10.0.0.1", true, true, false),
                    ("10.0.0.2", false, true, false),
                ],
                ITP_LOCAL,
                false,
                vec![],
                vec!["10.0.0.1"],
                true,
            ),
            (
                "internal Local, none here: drop, not reject",
                vec![("10.0.0.2", false, true, false)],
                ITP_LOCAL,
                false,
                vec![],
                vec![],
                true,
            ),
            (
                "external Local keeps every endpoint for ClusterIP traffic",
                vec![
                    ("10.0.0.1", true, true, false),
                    ("10.0.0.2", false, true, false),
                ],
                ETP_LOCAL,
                true,
                vec!["10.0.0.1", "10.0.0.2"],
                vec!["10.0.0.1"],
                true,
            ),
            (
                "external Local without a NodePort is ClusterIP only",
                vec![("10.0.0.1", true, true, false)],
                ETP_LOCAL,
                false,
                vec!["10.0.0.1"],
                vec![],
                true,
            ),
            (
                "a local terminating one when no local one is ready",
                vec![
                    ("10.0.0.1", true, false, true),
                    ("10.0.0.2", false, true, false),
                ],
                ETP_LOCAL,
                true,
                vec!["10.0.0.2"],
                vec!["10.0.0.1"],
                true,
            ),
        ];
        for (what, eps, policy, node_port, cluster, local, any) in cases {
            let endpoints: Vec<Endpoint> =
                eps.iter().map(|(ip, l, r, t)| ep(ip, *l, *r, *t)).collect();
            let got = categorize(&endpoints, policy, node_port, None);
            assert_eq!(ips(&got.cluster), cluster, "{what}: cluster");
            assert_eq!(ips(&got.local), local, "{what}: local");
            assert_eq!(got.any, any, "{what}: any");
        }
    }

    #[test]
    fn topology_hints_keep_this_zones_endpoints() {
        let mut a = ep("10.0.0.1", false, true, false);
        a.zone_hints.insert("zone-a".into());
        let mut b = ep("10.0.0.2", false, true, false);
        b.zone_hints.insert("zone-b".into());
        let endpoints = [a, b];
        let got = categorize(&endpoints, CLUSTER, false, Some("zone-a"));
        assert_eq!(ips(&got.cluster), ["10.0.0.1"]);
        // A zone nobody is hinted for: every endpoint, as without hints.
        let got = categorize(&endpoints, CLUSTER, false, Some("zone-c"));
        assert_eq!(ips(&got.cluster), ["10.0.0.1", "10.0.0.2"]);
        // One endpoint without hints: hints are ignored.
        let endpoints = [endpoints[0].clone(), ep("10.0.0.3", false, true, false)];
        let got = categorize(&endpoints, CLUSTER, false, Some("zone-a"));
        assert_eq!(ips(&got.cluster), ["10.0.0.1", "10.0.0.3"]);
    }
}
