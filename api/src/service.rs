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

/// The environment variables a Service gives the containers of its
/// namespace (the kubelet's "service links", and for `default/kubernetes`
/// every container's `KUBERNETES_SERVICE_HOST`/`_PORT`, which in-cluster
/// clients read):
///
/// ```text
/// NGX_SVC_SERVICE_HOST=10.96.0.50      NGX_SVC_PORT=tcp://10.96.0.50:80
/// NGX_SVC_SERVICE_PORT=80              NGX_SVC_PORT_80_TCP=tcp://10.96.0.50:80
/// NGX_SVC_SERVICE_PORT_HTTP=80         NGX_SVC_PORT_80_TCP_PROTO=tcp
///                                      NGX_SVC_PORT_80_TCP_PORT=80
///                                      NGX_SVC_PORT_80_TCP_ADDR=10.96.0.50
/// ```
///
/// None for a Service without a ClusterIP (headless, ExternalName).
pub fn link_env(service: &Service) -> Vec<(String, String)> {
    let Some(spec) = &service.spec else {
        return vec![];
    };
    if has_no_cluster_ip(service) {
        return vec![];
    }
    let ip = spec.cluster_ip.clone().unwrap_or_default();
    let prefix = service
        .metadata
        .name
        .as_deref()
        .unwrap_or_default()
        .to_uppercase()
        .replace('-', "_");
    let ports = spec.ports.as_deref().unwrap_or_default();
    let Some(first) = ports.first() else {
        return vec![];
    };
    let mut env = vec![
        (format!("{prefix}_SERVICE_HOST"), ip.clone()),
        (format!("{prefix}_SERVICE_PORT"), first.port.to_string()),
    ];
    for port in ports {
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            env.push((
                format!(
                    "{prefix}_SERVICE_PORT_{}",
                    name.to_uppercase().replace('-', "_")
                ),
                port.port.to_string(),
            ));
        }
    }
    let protocol = |p: &k8s_openapi::api::core::v1::ServicePort| {
        p.protocol.as_deref().unwrap_or("TCP").to_string()
    };
    env.push((
        format!("{prefix}_PORT"),
        format!("{}://{ip}:{}", protocol(first).to_lowercase(), first.port),
    ));
    for port in ports {
        let proto = protocol(port);
        let var = format!("{prefix}_PORT_{}_{proto}", port.port);
        env.push((
            var.clone(),
            format!("{}://{ip}:{}", proto.to_lowercase(), port.port),
        ));
        env.push((format!("{var}_PROTO"), proto.to_lowercase()));
        env.push((format!("{var}_PORT"), port.port.to_string()));
        env.push((format!("{var}_ADDR"), ip.clone()));
    }
    env
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

    #[test]
    fn service_links_as_the_kubelet_writes_them() {
        let service: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "kubernetes", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.1",
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]},
        }))
        .unwrap();
        let env = link_env(&service);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
        assert_eq!(get("KUBERNETES_SERVICE_PORT"), Some("443"));
        assert_eq!(get("KUBERNETES_SERVICE_PORT_HTTPS"), Some("443"));
        assert_eq!(get("KUBERNETES_PORT"), Some("tcp://10.96.0.1:443"));
        assert_eq!(get("KUBERNETES_PORT_443_TCP_ADDR"), Some("10.96.0.1"));
        let headless: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "db"}, "spec": {"clusterIP": "None", "ports": [{"port": 5432}]},
        }))
        .unwrap();
        assert!(link_env(&headless).is_empty());
    }
}
