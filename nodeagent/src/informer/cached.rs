//! What the agent keeps of an EndpointSlice: the fields its readers use,
//! in compact form.
//!
//! The service proxy and the cluster DNS read every EndpointSlice of the
//! cluster, so the cache holds them all, for as long as the agent runs. A
//! `k8s-openapi` EndpointSlice is built to carry every field of the API:
//! each endpoint is 352 bytes before any of its strings (seven optional
//! strings for its `targetRef` alone), and a slice of ten endpoints takes
//! about 6 KB. At 100,000 Services that is 600 MB of cache.
//!
//! client-go's informers take a *transform* function for this; so do
//! ours ([`Informer::new`](super::Informer::new)): each slice is projected
//! once, as it arrives from the watch, onto [`CachedSlice`] - names,
//! ports, and per endpoint its addresses, conditions (defaults applied),
//! node, Pod, hostname and zone hints - about 1.5 KB for the same slice.
//! The facts behind the projection (which label names the Service, what
//! an unset condition means) are the `api` crate's.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::Lookup;
use std::borrow::Cow;

use api::endpointslice::{Conditions, LAST_CHANGE_TRIGGER_TIME, SERVICE_NAME_LABEL};

/// An EndpointSlice as the agent caches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedSlice {
    pub namespace: Box<str>,
    pub name: Box<str>,
    /// The Service it belongs to (its `kubernetes.io/service-name` label).
    pub service: Option<Box<str>>,
    /// When the change it reflects happened
    /// (`endpoints.kubernetes.io/last-change-trigger-time`).
    pub trigger_time: Option<DateTime<Utc>>,
    pub address_type: AddressType,
    pub ports: Box<[CachedPort]>,
    /// Empty for an FQDN slice (its addresses are names, which neither the
    /// proxy nor the DNS serves).
    pub endpoints: Box<[CachedEndpoint]>,
}

/// `addressType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressType {
    IPv4,
    IPv6,
    /// `FQDN` (deprecated), or anything else.
    Other,
}

/// One port of a slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedPort {
    /// Empty for an unnamed port.
    pub name: Box<str>,
    /// `TCP` (the default), `UDP`, `SCTP`.
    pub protocol: Box<str>,
    /// None when unset (a headless Service may have no ports) or out of
    /// range.
    pub port: Option<u16>,
}

/// One endpoint of a slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedEndpoint {
    /// Its addresses (the EndpointSlice controller writes exactly one;
    /// kube-proxy reads only the first).
    pub addresses: Box<[IpAddr]>,
    /// `ready`, `serving`, `terminating`, with the API's defaults.
    pub conditions: Conditions,
    pub hostname: Option<Box<str>>,
    pub node_name: Option<Box<str>>,
    /// The object behind it (`targetRef.name`: a Pod's name).
    pub target_name: Option<Box<str>>,
    /// The zones it is hinted for (topology-aware routing).
    pub zone_hints: Box<[Box<str>]>,
}

fn boxed(s: Option<String>) -> Option<Box<str>> {
    s.map(String::into_boxed_str)
}

impl From<EndpointSlice> for CachedSlice {
    fn from(slice: EndpointSlice) -> CachedSlice {
        let metadata = slice.metadata;
        let address_type = match slice.address_type.as_str() {
            "IPv4" => AddressType::IPv4,
            "IPv6" => AddressType::IPv6,
            _ => AddressType::Other,
        };
        let endpoints = if address_type == AddressType::Other {
            Box::default()
        } else {
            slice
                .endpoints
                .into_iter()
                .flatten()
                .map(|endpoint| CachedEndpoint {
                    addresses: endpoint
                        .addresses
                        .iter()
                        .filter_map(|a| a.parse().ok())
                        .collect(),
                    conditions: Conditions::of(&endpoint),
                    hostname: boxed(endpoint.hostname),
                    node_name: boxed(endpoint.node_name),
                    target_name: boxed(endpoint.target_ref.and_then(|r| r.name)),
                    zone_hints: endpoint
                        .hints
                        .and_then(|h| h.for_zones)
                        .into_iter()
                        .flatten()
                        .map(|z| z.name.into_boxed_str())
                        .collect(),
                })
                .collect()
        };
        let mut labels = metadata.labels.unwrap_or_default();
        let mut annotations = metadata.annotations.unwrap_or_default();
        CachedSlice {
            namespace: metadata.namespace.unwrap_or_default().into_boxed_str(),
            name: metadata.name.unwrap_or_default().into_boxed_str(),
            service: boxed(labels.remove(SERVICE_NAME_LABEL)),
            trigger_time: annotations
                .remove(LAST_CHANGE_TRIGGER_TIME)
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.with_timezone(&Utc)),
            address_type,
            ports: slice
                .ports
                .into_iter()
                .flatten()
                .map(|p| CachedPort {
                    name: p.name.unwrap_or_default().into_boxed_str(),
                    protocol: p.protocol.unwrap_or_else(|| "TCP".into()).into_boxed_str(),
                    port: p.port.and_then(|n| u16::try_from(n).ok()),
                })
                .collect(),
            endpoints,
        }
    }
}

impl CachedSlice {
    /// `namespace/name` of the Service it belongs to.
    pub fn service_key(&self) -> Option<String> {
        let service = self.service.as_deref()?;
        Some(api::service::key(&self.namespace, service))
    }
}

/// How the cache finds a slice: by namespace and name, like any object.
impl Lookup for CachedSlice {
    type DynamicType = ();

    fn kind(_: &()) -> Cow<'_, str> {
        "EndpointSlice".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "discovery.k8s.io".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "endpointslices".into()
    }
    fn name(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(&self.name))
    }
    fn namespace(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(&self.namespace))
    }
    // Not kept: nothing reads them from the cache.
    fn resource_version(&self) -> Option<Cow<'_, str>> {
        None
    }
    fn uid(&self) -> Option<Cow<'_, str>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn project(value: serde_json::Value) -> CachedSlice {
        CachedSlice::from(serde_json::from_value::<EndpointSlice>(value).unwrap())
    }

    #[test]
    fn keeps_what_the_proxy_and_the_dns_read() {
        let slice = project(json!({
            "metadata": {"name": "ngx-svc-abcde", "namespace": "default",
                         "labels": {SERVICE_NAME_LABEL: "ngx-svc", "other": "x"},
                         "annotations": {LAST_CHANGE_TRIGGER_TIME: "2026-12-07T08:00:00Z",
                                         "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{
                "addresses": ["10.244.1.5"],
                "conditions": {"ready": false, "terminating": true},
                "hostname": "web-0",
                "nodeName": "kl-worker1",
                "targetRef": {"kind": "Pod", "name": "ngx-dep-1", "namespace": "default", "uid": "u"},
                "hints": {"forZones": [{"name": "a"}]},
            }],
        }));
        assert_eq!(slice.service_key().as_deref(), Some("default/ngx-svc"));
        assert_eq!(
            slice.trigger_time.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-12-07T08:00:00+00:00")
        );
        assert_eq!(
            slice.ports[..],
            [CachedPort {
                name: "http".into(),
                protocol: "TCP".into(),
                port: Some(8080),
            }]
        );
        let endpoint = &slice.endpoints[0];
        assert_eq!(
            endpoint.addresses[..],
            ["10.244.1.5".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            endpoint.conditions,
            Conditions {
                ready: false,
                serving: false,
                terminating: true
            }
        );
        assert_eq!(endpoint.hostname.as_deref(), Some("web-0"));
        assert_eq!(endpoint.node_name.as_deref(), Some("kl-worker1"));
        assert_eq!(endpoint.target_name.as_deref(), Some("ngx-dep-1"));
        assert_eq!(endpoint.zone_hints[..], ["a".into()]);
    }

    #[test]
    fn fqdn_slices_and_bad_values_keep_nothing_unusable() {
        let slice = project(json!({
            "metadata": {"name": "x", "namespace": "default"},
            "addressType": "FQDN",
            "ports": [{"port": 70000, "protocol": "UDP"}],
            "endpoints": [{"addresses": ["example.com"]}],
        }));
        assert_eq!(slice.address_type, AddressType::Other);
        assert!(slice.endpoints.is_empty());
        assert_eq!(slice.ports[0].port, None);
        assert_eq!(&*slice.ports[0].protocol, "UDP");
        assert_eq!(slice.service_key(), None);
    }
}
