//! Service validation (`ValidateService`, `ValidateServiceUpdate`).
//!
//! A Service promises a stable address for a changing set of Pods, so most
//! rules protect that promise: ports are well-formed and unambiguous (a
//! client connecting to port 80/TCP must reach exactly one `targetPort`),
//! the type and the address fields agree (a headless Service has no
//! ClusterIP, an ExternalName Service has none at all), and once a Service
//! has its ClusterIP the address never changes, because clients and DNS
//! caches hold on to it.

use api::names;
use api::service::is_headless_spec;
use serde_json::Value;

use super::meta::validate_labels;
use super::{
    child, index, int_field, is_set, list, quote, render, str_field, validate_cidr, validate_enum,
    validate_ip, validate_non_special_ip, validate_port_number, validate_protocol, validate_syntax,
};
use crate::status::FieldError;

/// The longest ClientIP affinity: one day.
const MAX_CLIENT_IP_AFFINITY_SECONDS: i64 = 86400;

const SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const SESSION_AFFINITIES: &[&str] = &["ClientIP", "None"];
const TRAFFIC_POLICIES: &[&str] = &["Cluster", "Local"];
const IP_FAMILIES: &[&str] = &["IPv4", "IPv6"];
const IP_FAMILY_POLICIES: &[&str] = &["PreferDualStack", "RequireDualStack", "SingleStack"];
const TRAFFIC_DISTRIBUTIONS: &[&str] = &["PreferClose", "PreferSameNode", "PreferSameZone"];

/// Validates a Service for create, or for an update of `old`.
///
/// The object is first prepared as the allocation step prepares it
/// (omitted ClusterIP and NodePorts kept from `old`, `clusterIP` and
/// `clusterIPs` in step), so the result does not depend on whether the
/// caller validates before or after allocating.
pub(crate) fn validate(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let mut svc = obj.clone();
    match old {
        Some(old) => crate::services::prepare_for_update(&mut svc, old),
        None => crate::services::prepare_for_create(&mut svc),
    }
    let spec = &svc["spec"];
    if let Some(old) = old {
        let old_spec = &old["spec"];
        validate_cluster_ips_update(old_spec, spec, errs);
        validate_ip_families_update(old_spec, spec, errs);
        if str_field(old_spec, "type") == "LoadBalancer"
            && str_field(spec, "type") == "LoadBalancer"
            && old_spec.get("loadBalancerClass") != spec.get("loadBalancerClass")
        {
            errs.push(FieldError::invalid(
                "spec.loadBalancerClass",
                render(spec.get("loadBalancerClass")),
                "may not change once set",
            ));
        }
        if needs_health_check(old_spec)
            && needs_health_check(spec)
            && int_field(old_spec, "healthCheckNodePort") != int_field(spec, "healthCheckNodePort")
        {
            errs.push(FieldError::forbidden(
                "spec.healthCheckNodePort",
                super::IMMUTABLE_MSG,
            ));
        }
    }
    validate_spec(spec, errs);
}

fn validate_spec(spec: &Value, errs: &mut Vec<FieldError>) {
    let service_type = str_field(spec, "type");
    let headless = is_headless_spec(spec);
    let ports = list(spec, "ports");

    if ports.is_empty() && !headless && service_type != "ExternalName" {
        errs.push(FieldError::required("spec.ports", ""));
    }
    match service_type {
        "LoadBalancer" | "NodePort" if headless => errs.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            quote("None"),
            format!("may not be set to 'None' for {service_type} services"),
        )),
        "ExternalName" => validate_external_name(spec, errs),
        _ => {}
    }

    let mut port_names = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        validate_service_port(
            port,
            ports.len() > 1,
            &mut port_names,
            &index("spec.ports", i),
            errs,
        );
    }

    if is_set(spec, "selector") {
        validate_labels(spec, "selector", "spec", errs);
    }

    validate_enum(
        spec,
        "sessionAffinity",
        "spec",
        SESSION_AFFINITIES,
        true,
        errs,
    );
    match str_field(spec, "sessionAffinity") {
        "ClientIP" => validate_client_ip_affinity(spec, errs),
        "None" if is_set(spec, "sessionAffinityConfig") => errs.push(FieldError::forbidden(
            "spec.sessionAffinityConfig",
            "must not be set when session affinity is None",
        )),
        _ => {}
    }

    errs.extend(cluster_ips_related_fields(spec));

    for (i, ip) in list(spec, "externalIPs").iter().enumerate() {
        let path = index("spec.externalIPs", i);
        let ip = ip.as_str().unwrap_or("");
        if validate_ip(ip, &path, errs) {
            validate_non_special_ip(ip, &path, errs);
        }
    }

    validate_enum(spec, "type", "spec", SERVICE_TYPES, true, errs);

    if service_type == "ClusterIP" {
        for (i, port) in ports.iter().enumerate() {
            if int_field(port, "nodePort") != 0 {
                errs.push(FieldError::forbidden(
                    child(&index("spec.ports", i), "nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }

    // A NodePort may serve one port per protocol.
    let mut node_ports = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let node_port = int_field(port, "nodePort");
        if node_port == 0 {
            continue;
        }
        let key = (str_field(port, "protocol"), node_port);
        if node_ports.contains(&key) {
            errs.push(FieldError::duplicate(
                child(&index("spec.ports", i), "nodePort"),
                node_port.to_string(),
            ));
        }
        node_ports.push(key);
    }

    // A port number may appear once per protocol: otherwise a connection
    // to it would have two possible targets.
    let mut seen = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let key = (str_field(port, "protocol"), int_field(port, "port"));
        if seen.contains(&key) {
            errs.push(FieldError::duplicate(
                index("spec.ports", i),
                render_port_key(key.0, key.1),
            ));
        }
        seen.push(key);
    }

    let source_ranges = list(spec, "loadBalancerSourceRanges");
    if !source_ranges.is_empty() {
        // Upstream names this field with a capital L in its errors.
        let path = "spec.LoadBalancerSourceRanges";
        if service_type != "LoadBalancer" {
            errs.push(FieldError::forbidden(
                path,
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        for (i, range) in source_ranges.iter().enumerate() {
            validate_cidr(range.as_str().unwrap_or("").trim(), &index(path, i), errs);
        }
    }

    if is_set(spec, "allocateLoadBalancerNodePorts") && service_type != "LoadBalancer" {
        errs.push(FieldError::forbidden(
            "spec.allocateLoadBalancerNodePorts",
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    if service_type == "LoadBalancer" && !is_set(spec, "allocateLoadBalancerNodePorts") {
        // (sic: upstream leaves out the `spec.` here)
        errs.push(FieldError::required("allocateLoadBalancerNodePorts", ""));
    }

    if let Some(class) = spec.get("loadBalancerClass").filter(|c| !c.is_null()) {
        if service_type == "LoadBalancer" {
            validate_syntax(
                class.as_str().unwrap_or(""),
                names::is_qualified_name,
                "spec.loadBalancerClass",
                errs,
            );
        } else {
            errs.push(FieldError::forbidden(
                "spec.loadBalancerClass",
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
    }

    validate_traffic_policies(spec, errs);
}

/// An ExternalName Service is a DNS CNAME: it has a name to point at and
/// no addresses of its own.
fn validate_external_name(spec: &Value, errs: &mut Vec<FieldError>) {
    if !list(spec, "clusterIPs").is_empty() {
        errs.push(FieldError::forbidden(
            "spec.clusterIPs",
            "may not be set for ExternalName services",
        ));
    }
    if !list(spec, "ipFamilies").is_empty() {
        errs.push(FieldError::forbidden(
            "spec.ipFamilies",
            "may not be set for ExternalName services",
        ));
    }
    if is_set(spec, "ipFamilyPolicy") {
        errs.push(FieldError::forbidden(
            "spec.ipFamilyPolicy",
            "may not be set for ExternalName services",
        ));
    }
    // A trailing dot marks a fully qualified name.
    let external_name = str_field(spec, "externalName");
    let cname = external_name.strip_suffix('.').unwrap_or(external_name);
    if cname.is_empty() {
        errs.push(FieldError::required("spec.externalName", ""));
    } else {
        validate_syntax(
            cname,
            names::is_dns1123_subdomain,
            "spec.externalName",
            errs,
        );
    }
}

/// `validateServicePort`.
fn validate_service_port<'a>(
    port: &'a Value,
    require_name: bool,
    names_seen: &mut Vec<&'a str>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    let name = str_field(port, "name");
    let name_path = child(path, "name");
    if require_name && name.is_empty() {
        errs.push(FieldError::required(name_path, ""));
    } else if !name.is_empty() {
        validate_syntax(name, names::is_dns1123_label, &name_path, errs);
        if names_seen.contains(&name) {
            errs.push(FieldError::duplicate(name_path, quote(name)));
        } else {
            names_seen.push(name);
        }
    }
    validate_port_number(port, "port", path, errs);
    validate_protocol(port, path, errs);
    validate_port_num_or_name(port.get("targetPort"), &child(path, "targetPort"), errs);
    if let Some(app_protocol) = port.get("appProtocol").and_then(Value::as_str) {
        validate_syntax(
            app_protocol,
            names::is_qualified_name,
            &child(path, "appProtocol"),
            errs,
        );
    }
}

/// A `targetPort` (or probe port): a number 1-65535 or an IANA port name
/// that a container port carries.
pub(crate) fn validate_port_num_or_name(
    value: Option<&Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    match value {
        Some(Value::String(name)) => validate_syntax(name, names::is_valid_port_name, path, errs),
        other => {
            let number = other.and_then(Value::as_i64).unwrap_or(0);
            if !(1..=65535).contains(&number) {
                errs.push(FieldError::invalid(
                    path,
                    number.to_string(),
                    super::PORT_RANGE_MSG,
                ));
            }
        }
    }
}

/// How upstream prints the duplicate-port key (an internal `ServicePort`
/// with only protocol and port set, marshalled with Go field names).
fn render_port_key(protocol: &str, port: i64) -> String {
    format!(
        "{{\"Name\":\"\",\"Protocol\":{},\"AppProtocol\":null,\"Port\":{port},\"TargetPort\":0,\"NodePort\":0}}",
        quote(protocol)
    )
}

fn validate_client_ip_affinity(spec: &Value, errs: &mut Vec<FieldError>) {
    let detail = "when session affinity type is ClientIP";
    let config_path = "spec.sessionAffinityConfig";
    let Some(config) = spec.get("sessionAffinityConfig").filter(|c| !c.is_null()) else {
        errs.push(FieldError::required(config_path, detail));
        return;
    };
    let client_ip_path = child(config_path, "clientIP");
    let Some(client_ip) = config.get("clientIP").filter(|c| !c.is_null()) else {
        errs.push(FieldError::required(client_ip_path, detail));
        return;
    };
    let timeout_path = child(&client_ip_path, "timeoutSeconds");
    let Some(timeout) = client_ip.get("timeoutSeconds").filter(|t| !t.is_null()) else {
        errs.push(FieldError::required(timeout_path, detail));
        return;
    };
    let seconds = timeout.as_i64().unwrap_or(0);
    if seconds <= 0 || seconds > MAX_CLIENT_IP_AFFINITY_SECONDS {
        errs.push(FieldError::invalid(
            timeout_path,
            render(Some(timeout)),
            format!("must be greater than 0 and less than {MAX_CLIENT_IP_AFFINITY_SECONDS}"),
        ));
    }
}

/// External and internal traffic policies, the health-check port and the
/// traffic distribution.
fn validate_traffic_policies(spec: &Value, errs: &mut Vec<FieldError>) {
    let external = str_field(spec, "externalTrafficPolicy");
    if !crate::defaults::externally_accessible(spec) {
        if !external.is_empty() {
            errs.push(FieldError::invalid(
                "spec.externalTrafficPolicy",
                quote(external),
                "may only be set for externally-accessible services",
            ));
        }
    } else {
        validate_enum(
            spec,
            "externalTrafficPolicy",
            "spec",
            TRAFFIC_POLICIES,
            true,
            errs,
        );
    }

    let health_check_port = int_field(spec, "healthCheckNodePort");
    if !needs_health_check(spec) {
        if health_check_port != 0 {
            errs.push(FieldError::invalid(
                "spec.healthCheckNodePort",
                health_check_port.to_string(),
                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            ));
        }
    } else if health_check_port == 0 {
        errs.push(FieldError::required("spec.healthCheckNodePort", ""));
    } else {
        validate_port_number(spec, "healthCheckNodePort", "spec", errs);
    }

    let service_type = str_field(spec, "type");
    if !is_set(spec, "internalTrafficPolicy")
        && matches!(service_type, "ClusterIP" | "NodePort" | "LoadBalancer")
    {
        errs.push(FieldError::required("spec.internalTrafficPolicy", ""));
    }
    validate_enum(
        spec,
        "internalTrafficPolicy",
        "spec",
        TRAFFIC_POLICIES,
        false,
        errs,
    );
    validate_enum(
        spec,
        "trafficDistribution",
        "spec",
        TRAFFIC_DISTRIBUTIONS,
        false,
        errs,
    );
}

/// `ValidateServiceClusterIPsRelatedFields`: `clusterIP`, `clusterIPs`,
/// `ipFamilies` and `ipFamilyPolicy` agree with each other. Also run by
/// the allocation step before it trusts these fields.
pub(crate) fn cluster_ips_related_fields(spec: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if str_field(spec, "type") == "ExternalName" {
        return errs;
    }
    let cluster_ip = str_field(spec, "clusterIP");
    let cluster_ips: Vec<&str> = list(spec, "clusterIPs")
        .iter()
        .map(|v| v.as_str().unwrap_or(""))
        .collect();
    let rendered_ips = render(spec.get("clusterIPs"));

    if !cluster_ip.is_empty() {
        if cluster_ips.is_empty() {
            errs.push(FieldError::required("spec.clusterIPs", ""));
        } else if cluster_ips[0] != cluster_ip {
            errs.push(FieldError::invalid(
                "spec.clusterIPs",
                &rendered_ips,
                "first value must match `clusterIP`",
            ));
        }
    } else if !cluster_ips.is_empty() {
        errs.push(FieldError::invalid(
            "spec.clusterIPs",
            &rendered_ips,
            "must be empty when `clusterIP` is not specified",
        ));
    }

    let families: Vec<&str> = list(spec, "ipFamilies")
        .iter()
        .map(|v| v.as_str().unwrap_or(""))
        .collect();
    for (i, family) in families.iter().enumerate() {
        let path = index("spec.ipFamilies", i);
        if !IP_FAMILIES.contains(family) {
            errs.push(FieldError::not_supported(&path, quote(family), IP_FAMILIES));
        }
        if families[..i].contains(family) {
            errs.push(FieldError::duplicate(path, quote(family)));
        }
    }
    validate_enum(
        spec,
        "ipFamilyPolicy",
        "spec",
        IP_FAMILY_POLICIES,
        false,
        &mut errs,
    );

    let mut has_invalid_ips = false;
    for (i, ip) in cluster_ips.iter().enumerate() {
        if i == 0 && *ip == "None" {
            if cluster_ips.len() > 1 {
                has_invalid_ips = true;
                errs.push(FieldError::invalid(
                    "spec.clusterIPs",
                    &rendered_ips,
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        if !validate_ip(ip, &index("spec.clusterIPs", i), &mut errs) {
            has_invalid_ips = true;
        }
    }
    if cluster_ips.len() > 2 {
        errs.push(FieldError::invalid(
            "spec.clusterIPs",
            &rendered_ips,
            "may only hold up to 2 values",
        ));
    }
    if has_invalid_ips {
        return errs;
    }
    if cluster_ips.len() > 1 {
        let v6 = cluster_ips.iter().filter(|ip| ip.contains(':')).count();
        if v6 != 1 || cluster_ips.len() != 2 {
            errs.push(FieldError::invalid(
                "spec.clusterIPs",
                &rendered_ips,
                "may specify no more than one IP for each IP family",
            ));
        }
    }
    if !is_headless_spec(spec) {
        for (i, (ip, family)) in cluster_ips.iter().zip(&families).enumerate() {
            let is_v6 = ip.contains(':');
            let expected = match *family {
                "IPv4" if is_v6 => "IPv4",
                "IPv6" if !is_v6 => "IPv6",
                _ => continue,
            };
            errs.push(FieldError::invalid(
                index("spec.clusterIPs", i),
                quote(ip),
                format!("expected an {expected} value as indicated by `ipFamilies[{i}]`"),
            ));
        }
    }
    errs
}

/// A Service keeps its ClusterIP: clients and DNS caches hold on to it
/// (`validateUpgradeDowngradeClusterIPs`). Only a change to or from
/// ExternalName, or a headless Service staying headless, is exempt.
fn validate_cluster_ips_update(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    if str_field(new, "type") == "ExternalName" || str_field(old, "type") == "ExternalName" {
        return;
    }
    if is_headless_spec(old) && is_headless_spec(new) {
        return;
    }
    let old_ips = list(old, "clusterIPs");
    let new_ips = list(new, "clusterIPs");
    let rendered = render(new.get("clusterIPs"));
    let changed = |path: String| FieldError::invalid(path, &rendered, "may not change once set");
    if old_ips.len() == new_ips.len() {
        for (i, (a, b)) in old_ips.iter().zip(new_ips).enumerate() {
            if a != b {
                errs.push(changed(index("spec.clusterIPs", i)));
            }
        }
    } else if old_ips.len() > new_ips.len() {
        if new_ips.is_empty() {
            errs.push(FieldError::invalid(
                "spec.clusterIPs[0]",
                &rendered,
                "primary clusterIP can not be unset",
            ));
        } else if new_ips[0] != old_ips[0] {
            errs.push(changed("spec.clusterIPs[0]".into()));
        }
        if new_ips.len() == 1 && str_field(new, "ipFamilyPolicy") != "SingleStack" {
            errs.push(FieldError::invalid(
                "spec.ipFamilyPolicy",
                render(new.get("ipFamilyPolicy")),
                "must be set to 'SingleStack' when releasing the secondary clusterIP",
            ));
        }
    } else if !old_ips.is_empty() && new_ips[0] != old_ips[0] {
        errs.push(changed("spec.clusterIPs[0]".into()));
    }
}

/// The primary IP family is as permanent as the primary ClusterIP
/// (`validateUpgradeDowngradeIPFamilies`).
fn validate_ip_families_update(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    if str_field(new, "type") == "ExternalName" || str_field(old, "type") == "ExternalName" {
        return;
    }
    if is_headless_spec(old) || is_headless_spec(new) {
        return;
    }
    let old_families = list(old, "ipFamilies");
    let new_families = list(new, "ipFamilies");
    let path = "spec.ipFamilies[0]";
    if old_families.len() == new_families.len() {
        if old_families != new_families {
            errs.push(FieldError::invalid(
                path,
                render(new.get("ipFamilies")),
                "may not change once set",
            ));
        }
    } else if old_families.len() > new_families.len() {
        if list(new, "clusterIPs").is_empty() {
            errs.push(FieldError::invalid(
                path,
                render(new.get("ipFamilies")),
                "primary ipFamily can not be unset",
            ));
        }
        if !new_families.is_empty() && new_families[0] != old_families[0] {
            errs.push(FieldError::invalid(
                path,
                render(new.get("clusterIPs")),
                "may not change once set",
            ));
        }
        if new_families.len() == 1 && str_field(new, "ipFamilyPolicy") != "SingleStack" {
            errs.push(FieldError::invalid(
                "spec.ipFamilyPolicy",
                render(new.get("ipFamilyPolicy")),
                "must be set to 'SingleStack' when releasing the secondary ipFamily",
            ));
        }
    } else if !old_families.is_empty() && new_families[0] != old_families[0] {
        errs.push(FieldError::invalid(
            path,
            render(new.get("clusterIPs")),
            "may not change once set",
        ));
    }
}

fn needs_health_check(spec: &Value) -> bool {
    str_field(spec, "type") == "LoadBalancer" && str_field(spec, "externalTrafficPolicy") == "Local"
}

#[cfg(test)]
mod tests {
    use crate::defaults::apply_defaults;
    use crate::status::FieldError;
    use api::resources::lookup;
    use serde_json::{json, Value};

    /// A defaulted Service named `s` with the given spec.
    fn service(spec: Value) -> Value {
        let mut svc = json!({ "metadata": { "name": "s", "namespace": "default" }, "spec": spec });
        apply_defaults(lookup("svc").unwrap(), &mut svc);
        svc
    }

    fn messages(svc: &Value, old: Option<&Value>) -> Vec<String> {
        crate::validation::validate(lookup("svc").unwrap(), svc, old)
            .iter()
            .map(FieldError::message)
            .collect()
    }

    fn one_error(spec: Value) -> String {
        let got = messages(&service(spec), None);
        assert_eq!(got.len(), 1, "{got:#?}");
        got[0].clone()
    }

    #[test]
    fn the_lesson_services_are_valid() {
        let svc = service(
            json!({ "selector": { "app": "ngx-dep" }, "ports": [{ "port": 80, "targetPort": 80, "protocol": "TCP" }] }),
        );
        assert_eq!(messages(&svc, None), Vec::<String>::new());
        let svc = service(
            json!({ "type": "NodePort", "selector": { "app": "ngx-dep" }, "ports": [{ "port": 80 }] }),
        );
        assert_eq!(messages(&svc, None), Vec::<String>::new());
    }

    #[test]
    fn ports_are_required() {
        assert_eq!(
            one_error(json!({ "selector": { "app": "x" } })),
            "spec.ports: Required value"
        );
        // ...except for headless and ExternalName Services.
        assert!(messages(&service(json!({ "clusterIP": "None" })), None).is_empty());
        assert!(messages(
            &service(json!({ "type": "ExternalName", "externalName": "example.com" })),
            None
        )
        .is_empty());
    }

    #[test]
    fn port_numbers_are_1_to_65535() {
        assert_eq!(
            one_error(json!({ "ports": [{ "port": 0, "targetPort": 80 }] })),
            "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"
        );
    }

    #[test]
    fn target_ports_are_numbers_or_port_names() {
        assert_eq!(
            one_error(json!({ "ports": [{ "port": 80, "targetPort": 70000 }] })),
            "spec.ports[0].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive"
        );
        assert_eq!(
            one_error(json!({ "ports": [{ "port": 80, "targetPort": "Http" }] })),
            "spec.ports[0].targetPort: Invalid value: \"Http\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"
        );
        assert!(messages(
            &service(json!({ "ports": [{ "port": 80, "targetPort": "http" }] })),
            None
        )
        .is_empty());
    }

    #[test]
    fn a_port_and_protocol_may_appear_once() {
        assert_eq!(
            one_error(json!({ "ports": [{ "name": "a", "port": 80 }, { "name": "b", "port": 80 }] })),
            "spec.ports[1]: Duplicate value: {\"Name\":\"\",\"Protocol\":\"TCP\",\"AppProtocol\":null,\"Port\":80,\"TargetPort\":0,\"NodePort\":0}"
        );
        // The same number over another protocol is another port.
        assert!(messages(
            &service(json!({ "ports": [{ "name": "a", "port": 53 }, { "name": "b", "port": 53, "protocol": "UDP" }] })),
            None
        )
        .is_empty());
    }

    #[test]
    fn several_ports_need_unique_names() {
        assert_eq!(
            one_error(json!({ "ports": [{ "name": "http", "port": 80 }, { "port": 443 }] })),
            "spec.ports[1].name: Required value"
        );
        assert_eq!(
            one_error(
                json!({ "ports": [{ "name": "http", "port": 80 }, { "name": "http", "port": 443 }] })
            ),
            "spec.ports[1].name: Duplicate value: \"http\""
        );
    }

    #[test]
    fn protocols_are_tcp_udp_or_sctp() {
        assert_eq!(
            one_error(json!({ "ports": [{ "port": 80, "protocol": "HTTP" }] })),
            "spec.ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\""
        );
    }

    #[test]
    fn the_type_is_one_of_four() {
        assert_eq!(
            one_error(json!({ "type": "Internal", "ports": [{ "port": 80 }] })),
            "spec.type: Unsupported value: \"Internal\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""
        );
    }

    #[test]
    fn cluster_ip_services_may_not_ask_for_a_node_port() {
        assert_eq!(
            one_error(json!({ "ports": [{ "port": 80, "nodePort": 30080 }] })),
            "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
        );
    }

    #[test]
    fn a_node_port_serves_one_port_per_protocol() {
        assert_eq!(
            one_error(json!({ "type": "NodePort", "ports": [
                { "name": "a", "port": 80, "nodePort": 30080 },
                { "name": "b", "port": 81, "nodePort": 30080 }
            ] })),
            "spec.ports[1].nodePort: Duplicate value: 30080"
        );
    }

    #[test]
    fn session_affinity_is_client_ip_or_none() {
        assert_eq!(
            one_error(json!({ "sessionAffinity": "Cookie", "ports": [{ "port": 80 }] })),
            "spec.sessionAffinity: Unsupported value: \"Cookie\": supported values: \"ClientIP\", \"None\""
        );
    }

    #[test]
    fn client_ip_affinity_lasts_at_most_a_day() {
        for timeout in [0, 86401] {
            assert_eq!(
                one_error(json!({ "sessionAffinity": "ClientIP",
                    "sessionAffinityConfig": { "clientIP": { "timeoutSeconds": timeout } },
                    "ports": [{ "port": 80 }] })),
                format!("spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: {timeout}: must be greater than 0 and less than 86400")
            );
        }
        assert!(messages(
            &service(json!({ "sessionAffinity": "ClientIP", "ports": [{ "port": 80 }] })),
            None
        )
        .is_empty());
    }

    #[test]
    fn external_traffic_policy_is_for_externally_reachable_services() {
        assert_eq!(
            one_error(json!({ "externalTrafficPolicy": "Local", "ports": [{ "port": 80 }] })),
            "spec.externalTrafficPolicy: Invalid value: \"Local\": may only be set for externally-accessible services"
        );
        assert_eq!(
            one_error(json!({ "type": "NodePort", "externalTrafficPolicy": "Nearest", "ports": [{ "port": 80 }] })),
            "spec.externalTrafficPolicy: Unsupported value: \"Nearest\": supported values: \"Cluster\", \"Local\""
        );
    }

    #[test]
    fn cluster_ips_must_be_ips() {
        assert_eq!(
            one_error(json!({ "clusterIP": "abc", "ports": [{ "port": 80 }] })),
            "spec.clusterIPs[0]: Invalid value: \"abc\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
        );
        for fine in ["10.96.0.50", "None", ""] {
            assert!(
                messages(
                    &service(json!({ "clusterIP": fine, "ports": [{ "port": 80 }] })),
                    None
                )
                .is_empty(),
                "{fine}"
            );
        }
    }

    #[test]
    fn cluster_ip_and_cluster_ips_must_agree() {
        assert_eq!(
            one_error(
                json!({ "clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.6"], "ports": [{ "port": 80 }] })
            ),
            "spec.clusterIPs: Invalid value: [\"10.96.0.6\"]: first value must match `clusterIP`"
        );
    }

    #[test]
    fn the_cluster_ip_may_not_change_once_set() {
        let old = service(
            json!({ "clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"], "ports": [{ "port": 80 }] }),
        );
        let new = service(
            json!({ "clusterIP": "10.96.0.6", "clusterIPs": ["10.96.0.6"], "ports": [{ "port": 80 }] }),
        );
        assert_eq!(
            messages(&new, Some(&old)),
            vec!["spec.clusterIPs[0]: Invalid value: [\"10.96.0.6\"]: may not change once set"]
        );
        // Changing only clusterIP changes clusterIPs with it, and is refused too.
        let mut only_singular = old.clone();
        only_singular["spec"]["clusterIP"] = json!("10.96.0.7");
        assert_eq!(
            messages(&only_singular, Some(&old)),
            vec!["spec.clusterIPs[0]: Invalid value: [\"10.96.0.7\"]: may not change once set"]
        );
        // Leaving it out keeps it.
        let omitted = service(json!({ "ports": [{ "port": 80 }] }));
        assert!(messages(&omitted, Some(&old)).is_empty());
    }

    #[test]
    fn a_headless_service_cannot_be_a_node_port() {
        assert_eq!(
            one_error(json!({ "type": "NodePort", "clusterIP": "None", "ports": [{ "port": 80 }] })),
            "spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort services"
        );
    }

    #[test]
    fn external_name_services_need_a_dns_name_and_no_ip() {
        assert_eq!(
            one_error(json!({ "type": "ExternalName" })),
            "spec.externalName: Required value"
        );
        let got = one_error(json!({ "type": "ExternalName", "externalName": "Example_com" }));
        assert!(
            got.starts_with(
                "spec.externalName: Invalid value: \"Example_com\": a lowercase RFC 1123 subdomain"
            ),
            "{got}"
        );
        assert!(messages(
            &service(json!({ "type": "ExternalName", "externalName": "example.com." })),
            None
        )
        .is_empty());
        assert_eq!(
            one_error(
                json!({ "type": "ExternalName", "externalName": "example.com", "clusterIP": "10.96.0.5" })
            ),
            "spec.clusterIPs: Forbidden: may not be set for ExternalName services"
        );
    }

    #[test]
    fn selector_labels_are_checked() {
        let got =
            one_error(json!({ "selector": { "app": "bad value" }, "ports": [{ "port": 80 }] }));
        assert!(
            got.starts_with("spec.selector: Invalid value: \"bad value\": a valid label must be"),
            "{got}"
        );
    }

    #[test]
    fn load_balancer_only_fields_are_refused_elsewhere() {
        assert_eq!(
            one_error(json!({ "loadBalancerSourceRanges": ["10.0.0.0/8"], "ports": [{ "port": 80 }] })),
            "spec.LoadBalancerSourceRanges: Forbidden: may only be used when `type` is 'LoadBalancer'"
        );
    }
}
