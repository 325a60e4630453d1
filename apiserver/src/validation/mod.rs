//! Validation: what Kubernetes refuses, and how it says so.
//!
//! After defaulting (and, for Services, allocation), every object written
//! through the API is checked against the rules of its kind. A broken
//! object is refused with `422 Invalid` and one *cause* per problem, each
//! naming the field (`spec.ports[0].port`), what kind of problem it is
//! (`Invalid value`, `Required value`, `Duplicate value`, ...), the value
//! given and why it is wrong:
//!
//! ```text
//! The Service "ngx-svc" is invalid: spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive
//! ```
//!
//! The rules and their wording follow upstream's
//! `pkg/apis/core/validation`, `pkg/apis/apps/validation` and
//! apimachinery's `ValidateObjectMeta`, so a student sees here what a real
//! cluster would answer. Values in messages are rendered like apimachinery
//! renders them: strings quoted, numbers plain, lists and maps as JSON.
//!
//! # Layout
//! - [`meta`]: names, namespaces, labels, annotations, finalizers, label
//!   selectors; what every kind shares.
//! - [`service`]: Services, ports, ClusterIPs and traffic policies.
//! - [`pod`]: Pod specs (also inside pod templates) and Pod updates.
//! - [`apps`]: Deployments, ReplicaSets and DaemonSets.
//! - [`endpoints`]: Endpoints and EndpointSlices.
//! - [`configmap`], [`cluster`] (Namespaces and Nodes), [`event`], [`lease`].

use api::resources::ResourceType;
use serde_json::Value;

use crate::status::FieldError;

mod apps;
mod batch;
mod certificates;
mod cluster;
mod configmap;
mod endpoints;
mod event;
mod lease;
mod meta;
mod pod;
mod rbac;
pub(crate) mod service;

/// Validates `obj` (an object of kind `resource`) for a create, or for an
/// update of `old` when given. An empty list means the object is valid.
pub fn validate(resource: &ResourceType, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(old) = old {
        meta::validate_update(obj, old, &mut errs);
    }
    meta::validate(resource, obj, &mut errs);
    match (resource.group, resource.kind) {
        ("", "Service") => service::validate(obj, old, &mut errs),
        ("", "Pod") => pod::validate_pod(obj, old, &mut errs),
        ("", "ConfigMap") => configmap::validate(obj, &mut errs),
        ("", "Secret") => configmap::validate_secret(obj, &mut errs),
        ("", "Namespace") => cluster::validate_namespace(obj, &mut errs),
        ("", "Node") => cluster::validate_node(obj, old, &mut errs),
        ("", "Endpoints") => endpoints::validate_endpoints(obj, &mut errs),
        ("", "Event") => event::validate(obj, &mut errs),
        ("apps", "Deployment") => apps::validate_deployment(obj, old, &mut errs),
        ("apps", "ReplicaSet") => apps::validate_replicaset(obj, old, &mut errs),
        ("apps", "DaemonSet") => apps::validate_daemonset(obj, old, &mut errs),
        ("apps", "StatefulSet") => apps::validate_statefulset(obj, old, &mut errs),
        ("apps", "ControllerRevision") => apps::validate_controller_revision(obj, old, &mut errs),
        ("batch", "Job") => batch::validate_job(obj, old, &mut errs),
        ("batch", "CronJob") => batch::validate_cronjob(obj, &mut errs),
        ("discovery.k8s.io", "EndpointSlice") => {
            endpoints::validate_endpointslice(obj, old, &mut errs)
        }
        ("coordination.k8s.io", "Lease") => lease::validate(obj, &mut errs),
        ("certificates.k8s.io", "CertificateSigningRequest") => {
            certificates::validate(obj, old, &mut errs)
        }
        ("rbac.authorization.k8s.io", "Role") => rbac::validate_role(obj, true, &mut errs),
        ("rbac.authorization.k8s.io", "ClusterRole") => rbac::validate_role(obj, false, &mut errs),
        ("rbac.authorization.k8s.io", "RoleBinding") => {
            rbac::validate_binding(obj, old, true, &mut errs)
        }
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            rbac::validate_binding(obj, old, false, &mut errs)
        }
        _ => {}
    }
    errs
}

// ---------------------------------------------------------------------------
// Field paths, as apimachinery's `field.Path` prints them.

/// `parent.name`
pub(crate) fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// `parent[i]`
pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// `parent[key]`, for map entries (`data[default.conf]`).
pub(crate) fn key(path: &str, key: &str) -> String {
    format!("{path}[{key}]")
}

// ---------------------------------------------------------------------------
// Rendering values the way apimachinery's field errors do.

/// A string value: `"Ngx"`.
pub(crate) fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// Any value: strings quoted, numbers and booleans plain, and everything
/// else as JSON with sorted map keys (what Go's `json.Marshal` prints for
/// lists and maps). An absent value is Go's `null`.
pub(crate) fn render(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "null".into(),
        Some(Value::String(s)) => quote(s),
        Some(v) => canonical_json(v),
    }
}

fn canonical_json(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", quote(k), canonical_json(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Reading JSON leniently: absent or mistyped fields read as Go's zero
// values (decoding has already refused what is not the right type).

/// A string field, `""` when absent.
pub(crate) fn str_field<'a>(obj: &'a Value, key: &str) -> &'a str {
    obj.get(key).and_then(Value::as_str).unwrap_or("")
}

/// A list field, empty when absent.
pub(crate) fn list<'a>(obj: &'a Value, key: &str) -> &'a [Value] {
    obj.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// A map field's entries, none when absent.
pub(crate) fn entries<'a>(obj: &'a Value, key: &str) -> Vec<(&'a str, &'a Value)> {
    obj.get(key)
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.as_str(), v)).collect())
        .unwrap_or_default()
}

/// True when the field is present and not null.
pub(crate) fn is_set(obj: &Value, key: &str) -> bool {
    obj.get(key).is_some_and(|v| !v.is_null())
}

/// An integer field, 0 when absent (Go's zero for a non-pointer int).
pub(crate) fn int_field(obj: &Value, key: &str) -> i64 {
    obj.get(key).and_then(Value::as_i64).unwrap_or(0)
}

// ---------------------------------------------------------------------------
// Checks shared by several kinds.

/// `IsValidPortNum`'s message.
pub(crate) const PORT_RANGE_MSG: &str = "must be between 1 and 65535, inclusive";
/// `ValidateNonnegativeField`'s message.
pub(crate) const NEGATIVE_MSG: &str = "must be greater than or equal to 0";
/// `ValidateImmutableField`'s message.
pub(crate) const IMMUTABLE_MSG: &str = "field is immutable";
/// The protocols a port may use, sorted as upstream lists them.
pub(crate) const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

/// A port number field (0 when absent) must be 1-65535.
pub(crate) fn validate_port_number(
    obj: &Value,
    field: &str,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    let port = int_field(obj, field);
    if !(1..=65535).contains(&port) {
        errs.push(FieldError::invalid(
            child(path, field),
            render(Some(obj.get(field).unwrap_or(&Value::from(0)))),
            PORT_RANGE_MSG,
        ));
    }
}

/// A `protocol` field must be given and be TCP, UDP or SCTP.
pub(crate) fn validate_protocol(port: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let protocol = str_field(port, "protocol");
    let path = child(path, "protocol");
    if protocol.is_empty() {
        errs.push(FieldError::required(path, ""));
    } else if !PROTOCOLS.contains(&protocol) {
        errs.push(FieldError::not_supported(path, quote(protocol), PROTOCOLS));
    }
}

/// A value that must be one of `supported` (listed in upstream's order).
pub(crate) fn validate_enum(
    obj: &Value,
    field: &str,
    path: &str,
    supported: &[&str],
    required: bool,
    errs: &mut Vec<FieldError>,
) {
    let value = str_field(obj, field);
    let path = child(path, field);
    if value.is_empty() {
        if required {
            errs.push(FieldError::required(path, ""));
        }
    } else if !supported.contains(&value) {
        errs.push(FieldError::not_supported(path, quote(value), supported));
    }
}

/// An integer that may not be negative.
pub(crate) fn validate_nonnegative(
    obj: &Value,
    field: &str,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    if let Some(n) = obj.get(field).and_then(Value::as_i64) {
        if n < 0 {
            errs.push(FieldError::invalid(
                child(path, field),
                n.to_string(),
                NEGATIVE_MSG,
            ));
        }
    }
}

/// Runs one of `api::names`' syntax checks and reports each problem as an
/// Invalid value of `path`.
pub(crate) fn validate_syntax(
    value: &str,
    check: fn(&str) -> Vec<String>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    for msg in check(value) {
        errs.push(FieldError::invalid(path, quote(value), msg));
    }
}

/// A field that may not change after creation.
pub(crate) fn validate_immutable(
    new: Option<&Value>,
    old: Option<&Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    let normalize = |v: Option<&Value>| v.filter(|v| !v.is_null()).cloned();
    if normalize(new) != normalize(old) {
        errs.push(FieldError::invalid(path, render(new), IMMUTABLE_MSG));
    }
}

/// A reference to something that does not exist, like a volumeMount naming
/// no volume (upstream's `field.NotFound`).
/// A reference to something missing: `...name: Not found: "x"`.
pub(crate) fn not_found(path: impl Into<String>, value: &str) -> FieldError {
    FieldError::not_found(path, quote(value))
}

/// Checks an IP address as upstream's `IsValidIP` does: it must parse,
/// have no leading zeros, not be IPv4-mapped IPv6, and be canonical.
/// Returns whether it was valid.
pub(crate) fn validate_ip(value: &str, path: &str, errs: &mut Vec<FieldError>) -> bool {
    let before = errs.len();
    match value.parse::<std::net::IpAddr>() {
        Err(_) if is_sloppy_ipv4(value) => {
            errs.push(FieldError::invalid(
                path,
                quote(value),
                "must not have leading 0s",
            ));
        }
        Err(_) => errs.push(FieldError::invalid(
            path,
            quote(value),
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        )),
        Ok(std::net::IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_some() => {
            errs.push(FieldError::invalid(
                path,
                quote(value),
                "must not be an IPv4-mapped IPv6 address",
            ));
        }
        Ok(ip) if ip.to_string() != value => errs.push(FieldError::invalid(
            path,
            quote(value),
            format!("must be in canonical form ({})", quote(&ip.to_string())),
        )),
        Ok(_) => {}
    }
    errs.len() == before
}

/// Four dot-separated decimal numbers up to 255, leading zeros allowed: what
/// Go's lenient parser accepts and the strict one refuses.
fn is_sloppy_ipv4(value: &str) -> bool {
    let parts: Vec<&str> = value.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 3
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u16>().is_ok_and(|n| n <= 255)
        })
}

/// Checks a CIDR as upstream's `IsValidCIDR` does. Returns whether it was valid.
pub(crate) fn validate_cidr(value: &str, path: &str, errs: &mut Vec<FieldError>) -> bool {
    let invalid = || {
        FieldError::invalid(
            path,
            quote(value),
            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        )
    };
    let Some((addr, prefix)) = value.split_once('/') else {
        errs.push(invalid());
        return false;
    };
    let (Ok(ip), Ok(prefix)) = (addr.parse::<std::net::IpAddr>(), prefix.parse::<u8>()) else {
        errs.push(invalid());
        return false;
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        errs.push(invalid());
        return false;
    }
    let masked = match ip {
        std::net::IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            std::net::IpAddr::V4((bits & mask).into())
        }
        std::net::IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            std::net::IpAddr::V6((bits & mask).into())
        }
    };
    if masked != ip {
        errs.push(FieldError::invalid(
            path,
            quote(value),
            "must not have bits set beyond the prefix length",
        ));
        return false;
    }
    let canonical = format!("{masked}/{prefix}");
    if canonical != value {
        errs.push(FieldError::invalid(
            path,
            quote(value),
            format!("must be in canonical form ({})", quote(&canonical)),
        ));
        return false;
    }
    true
}

/// Endpoint and external IPs may not be special addresses
/// (`ValidateNonSpecialIP`): traffic to them would never leave the node.
pub(crate) fn validate_non_special_ip(value: &str, path: &str, errs: &mut Vec<FieldError>) {
    let Ok(ip) = value.parse::<std::net::IpAddr>() else {
        return;
    };
    let problem = if ip.is_unspecified() {
        Some("may not be unspecified (0.0.0.0, ::)")
    } else if ip.is_loopback() {
        Some("may not be in the loopback range (127.0.0.0/8, ::1/128)")
    } else if match ip {
        std::net::IpAddr::V4(v4) => v4.is_link_local(),
        std::net::IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    } {
        Some("may not be in the link-local range (169.254.0.0/16, fe80::/10)")
    } else if match ip {
        std::net::IpAddr::V4(v4) => v4.octets()[..3] == [224, 0, 0],
        std::net::IpAddr::V6(v6) => (v6.segments()[0] & 0xff0f) == 0xff02,
    } {
        Some("may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)")
    } else {
        None
    };
    if let Some(problem) = problem {
        errs.push(FieldError::invalid(path, quote(value), problem));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_render_like_apimachinery() {
        assert_eq!(render(Some(&json!("Ngx"))), "\"Ngx\"");
        assert_eq!(render(Some(&json!(0))), "0");
        assert_eq!(render(None), "null");
        assert_eq!(render(Some(&json!(["10.96.0.5"]))), "[\"10.96.0.5\"]");
        assert_eq!(
            render(Some(&json!({ "tier": "web", "app": "x" }))),
            "{\"app\":\"x\",\"tier\":\"web\"}"
        );
    }

    #[test]
    fn ips_are_checked_strictly() {
        let mut errs = Vec::new();
        assert!(validate_ip("10.96.0.5", "f", &mut errs));
        assert!(!validate_ip("010.96.0.5", "f", &mut errs));
        assert!(!validate_ip("10.96.0", "f", &mut errs));
        assert!(!validate_ip("::ffff:1.2.3.4", "f", &mut errs));
        assert!(!validate_ip("2001:DB8::1", "f", &mut errs));
        let messages: Vec<String> = errs.iter().map(FieldError::message).collect();
        assert_eq!(
            messages,
            vec![
                "f: Invalid value: \"010.96.0.5\": must not have leading 0s",
                "f: Invalid value: \"10.96.0\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                "f: Invalid value: \"::ffff:1.2.3.4\": must not be an IPv4-mapped IPv6 address",
                "f: Invalid value: \"2001:DB8::1\": must be in canonical form (\"2001:db8::1\")",
            ]
        );
    }

    #[test]
    fn cidrs_are_checked_strictly() {
        let mut errs = Vec::new();
        assert!(validate_cidr("10.244.1.0/24", "f", &mut errs));
        assert!(!validate_cidr("10.244.1.1/24", "f", &mut errs));
        assert!(!validate_cidr("10.244.1.0", "f", &mut errs));
        assert_eq!(
            errs[0].message(),
            "f: Invalid value: \"10.244.1.1/24\": must not have bits set beyond the prefix length"
        );
        assert_eq!(
            errs[1].message(),
            "f: Invalid value: \"10.244.1.0\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
        );
    }

    #[test]
    fn special_ips_are_refused() {
        let mut errs = Vec::new();
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "169.254.1.1",
            "224.0.0.5",
            "10.244.1.5",
        ] {
            validate_non_special_ip(ip, "ip", &mut errs);
        }
        assert_eq!(errs.len(), 4);
        assert_eq!(
            errs[1].message(),
            "ip: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)"
        );
    }
}
