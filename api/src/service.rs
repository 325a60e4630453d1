//! Facts about Services that more than one component needs.

use k8s_openapi::api::core::v1::Service;
use serde_json::Value;

/// The annotation that turns topology-aware routing on for a Service.
pub const TOPOLOGY_MODE_ANNOTATION: &str = "service.kubernetes.io/topology-mode";

/// `clusterIP: None`: a headless Service - no virtual IP; its DNS name
/// answers with its Pods' addresses.
pub fn is_headless(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

/// [`is_headless`] of a Service's `spec` as JSON (the apiserver's view):
/// `clusterIPs: [None]`, or before defaulting fills `clusterIPs`,
/// `clusterIP: None`.
pub fn is_headless_spec(spec: &Value) -> bool {
    match spec.get("clusterIPs").and_then(Value::as_array) {
        Some(ips) if !ips.is_empty() => ips.len() == 1 && ips[0] == "None",
        _ => spec.get("clusterIP").and_then(Value::as_str) == Some("None"),
    }
}

/// No virtual IP to route to: headless, or none allocated yet.
pub fn has_no_cluster_ip(service: &Service) -> bool {
    matches!(
        service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()),
        None | Some("") | Some("None")
    )
}

/// `namespace/name`: how a Service is named across the node agent and
/// controllers (the key of the EndpointSlices that belong to it, too).
pub fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn headless_in_both_forms() {
        let svc = |ip: Option<&str>| -> Service {
            serde_json::from_value(json!({"spec": {"clusterIP": ip}})).unwrap()
        };
        assert!(is_headless(&svc(Some("None"))));
        assert!(!is_headless(&svc(Some("10.96.0.1"))));
        assert!(!is_headless(&svc(None)));
        assert!(has_no_cluster_ip(&svc(None)) && has_no_cluster_ip(&svc(Some("None"))));
        assert!(is_headless_spec(&json!({"clusterIP": "None"})));
        assert!(is_headless_spec(&json!({"clusterIPs": ["None"]})));
        assert!(!is_headless_spec(
            &json!({"clusterIPs": ["10.96.0.1"], "clusterIP": "None"})
        ));
        assert!(!is_headless_spec(&json!({})));
    }
}
