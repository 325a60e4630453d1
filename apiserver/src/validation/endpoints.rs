//! Endpoints and EndpointSlice validation.
//!
//! These objects are the bridge from a Service to its Pods: the endpoints
//! controller writes the Pods' IPs and ports into them and kube-proxy turns
//! each entry into a DNAT rule. An address that is not a real Pod address
//! (loopback, link-local, the unspecified address) would make every node
//! rewrite Service traffic to itself, so those are refused.

use api::names;
use serde_json::Value;

use super::{
    child, index, list, quote, str_field, validate_ip, validate_non_special_ip,
    validate_port_number, validate_protocol, validate_syntax, IMMUTABLE_MSG, PROTOCOLS,
};
use crate::status::FieldError;

const ADDRESS_TYPES: &[&str] = &["FQDN", "IPv4", "IPv6"];
/// Upstream's cap on endpoints per slice.
const MAX_ENDPOINTS: usize = 1000;
/// Upstream's cap on ports per slice.
const MAX_PORTS: usize = 20000;

/// `ValidateEndpoints`: `subsets` of addresses and ports.
pub(crate) fn validate_endpoints(obj: &Value, errs: &mut Vec<FieldError>) {
    for (i, subset) in list(obj, "subsets").iter().enumerate() {
        let path = index("subsets", i);
        let addresses = list(subset, "addresses");
        let not_ready = list(subset, "notReadyAddresses");
        if addresses.is_empty() && not_ready.is_empty() {
            errs.push(FieldError::required(
                &path,
                "must specify `addresses` or `notReadyAddresses`",
            ));
        }
        for (field, entries) in [("addresses", addresses), ("notReadyAddresses", not_ready)] {
            for (j, address) in entries.iter().enumerate() {
                validate_endpoint_address(address, &index(&child(&path, field), j), errs);
            }
        }
        let ports = list(subset, "ports");
        for (j, port) in ports.iter().enumerate() {
            let port_path = index(&child(&path, "ports"), j);
            let name = str_field(port, "name");
            if ports.len() > 1 && name.is_empty() {
                errs.push(FieldError::required(child(&port_path, "name"), ""));
            } else if !name.is_empty() {
                validate_syntax(
                    name,
                    names::is_dns1123_label,
                    &child(&port_path, "name"),
                    errs,
                );
            }
            validate_port_number(port, "port", &port_path, errs);
            validate_protocol(port, &port_path, errs);
        }
    }
}

fn validate_endpoint_address(address: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let ip = str_field(address, "ip");
    let ip_path = child(path, "ip");
    let hostname = str_field(address, "hostname");
    if !hostname.is_empty() {
        validate_syntax(
            hostname,
            names::is_dns1123_label,
            &child(path, "hostname"),
            errs,
        );
    }
    if let Some(node) = address.get("nodeName").and_then(Value::as_str) {
        validate_syntax(
            node,
            names::is_dns1123_subdomain,
            &child(path, "nodeName"),
            errs,
        );
    }
    if validate_ip(ip, &ip_path, errs) {
        validate_non_special_ip(ip, &ip_path, errs);
    }
}

/// `ValidateEndpointSlice`: an address type, endpoints of that type, ports.
pub(crate) fn validate_endpointslice(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let address_type = str_field(obj, "addressType");
    if address_type.is_empty() {
        errs.push(FieldError::required("addressType", ""));
    } else if !ADDRESS_TYPES.contains(&address_type) {
        errs.push(FieldError::not_supported(
            "addressType",
            quote(address_type),
            ADDRESS_TYPES,
        ));
    }

    let endpoints = list(obj, "endpoints");
    if endpoints.len() > MAX_ENDPOINTS {
        errs.push(too_many("endpoints", endpoints.len(), MAX_ENDPOINTS));
    } else {
        for (i, endpoint) in endpoints.iter().enumerate() {
            validate_slice_endpoint(endpoint, address_type, &index("endpoints", i), errs);
        }
    }

    let ports = list(obj, "ports");
    if ports.len() > MAX_PORTS {
        errs.push(too_many("ports", ports.len(), MAX_PORTS));
    } else {
        let mut names_seen: Vec<&str> = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            let path = index("ports", i);
            let name = str_field(port, "name");
            if !name.is_empty() {
                validate_syntax(name, names::is_dns1123_label, &child(&path, "name"), errs);
            }
            if names_seen.contains(&name) {
                errs.push(FieldError::duplicate(child(&path, "name"), quote(name)));
            } else {
                names_seen.push(name);
            }
            match port.get("protocol").and_then(Value::as_str) {
                None => errs.push(FieldError::required(child(&path, "protocol"), "")),
                Some(p) if !PROTOCOLS.contains(&p) => errs.push(FieldError::not_supported(
                    child(&path, "protocol"),
                    quote(p),
                    PROTOCOLS,
                )),
                Some(_) => {}
            }
            // No port means "all ports"; a given one must be real.
            if port.get("port").is_some_and(|p| !p.is_null()) {
                validate_port_number(port, "port", &path, errs);
            }
        }
    }

    if let Some(old) = old {
        let old_type = str_field(old, "addressType");
        if old_type != address_type {
            errs.push(FieldError::invalid(
                "addressType",
                quote(address_type),
                IMMUTABLE_MSG,
            ));
        }
    }
}

fn validate_slice_endpoint(
    endpoint: &Value,
    address_type: &str,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    let addresses_path = child(path, "addresses");
    let addresses = list(endpoint, "addresses");
    if addresses.is_empty() {
        errs.push(FieldError::required(
            &addresses_path,
            "must contain at least 1 address",
        ));
    } else if addresses.len() > 100 {
        errs.push(too_many(&addresses_path, addresses.len(), 100));
    }
    for (i, address) in addresses.iter().enumerate() {
        let address = address.as_str().unwrap_or("");
        let address_path = index(&addresses_path, i);
        match address_type {
            "IPv4" => {
                if address.parse::<std::net::Ipv4Addr>().is_err() {
                    errs.push(FieldError::invalid(
                        &address_path,
                        quote(address),
                        "must be a valid IPv4 address",
                    ));
                } else {
                    validate_non_special_ip(address, &address_path, errs);
                }
            }
            "IPv6" => {
                if address.parse::<std::net::Ipv6Addr>().is_err() {
                    errs.push(FieldError::invalid(
                        &address_path,
                        quote(address),
                        "must be a valid IPv6 address",
                    ));
                } else {
                    validate_non_special_ip(address, &address_path, errs);
                }
            }
            "FQDN" => validate_syntax(address, names::is_dns1123_subdomain, &address_path, errs),
            _ => {}
        }
    }
    if let Some(node) = endpoint.get("nodeName").and_then(Value::as_str) {
        validate_syntax(
            node,
            names::is_dns1123_subdomain,
            &child(path, "nodeName"),
            errs,
        );
    }
    if let Some(hostname) = endpoint.get("hostname").and_then(Value::as_str) {
        validate_syntax(
            hostname,
            names::is_dns1123_label,
            &child(path, "hostname"),
            errs,
        );
    }
}

/// `field.TooMany`: `Too many: 1001: must have at most 1000 items`. The
/// status kinds have no "Too many", so it reads as an invalid count.
fn too_many(path: &str, actual: usize, max: usize) -> FieldError {
    FieldError::invalid(
        path,
        actual.to_string(),
        format!("must have at most {max} items"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn messages(check: fn(&Value, &mut Vec<FieldError>), obj: Value) -> Vec<String> {
        let mut errs = Vec::new();
        check(&obj, &mut errs);
        errs.iter().map(FieldError::message).collect()
    }

    fn slice_messages(obj: Value, old: Option<Value>) -> Vec<String> {
        let mut errs = Vec::new();
        validate_endpointslice(&obj, old.as_ref(), &mut errs);
        errs.iter().map(FieldError::message).collect()
    }

    #[test]
    fn endpoints_ports_are_real_ports() {
        let got = messages(
            validate_endpoints,
            json!({ "subsets": [{
                "addresses": [{ "ip": "10.244.1.5" }],
                "ports": [{ "port": 0, "protocol": "TCP" }]
            }] }),
        );
        assert_eq!(got, vec!["subsets[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"]);
    }

    #[test]
    fn endpoints_addresses_are_real_pod_ips() {
        let got = messages(
            validate_endpoints,
            json!({ "subsets": [
                { "addresses": [{ "ip": "127.0.0.1" }, { "ip": "pod-a" }] },
                { "ports": [{ "port": 80, "protocol": "TCP" }] }
            ] }),
        );
        assert_eq!(got, vec![
            "subsets[0].addresses[0].ip: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)",
            "subsets[0].addresses[1].ip: Invalid value: \"pod-a\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            "subsets[1]: Required value: must specify `addresses` or `notReadyAddresses`",
        ]);
    }

    #[test]
    fn endpointslices_need_an_address_type() {
        assert_eq!(
            slice_messages(json!({}), None),
            vec!["addressType: Required value"]
        );
        assert_eq!(
            slice_messages(json!({ "addressType": "IPX" }), None),
            vec!["addressType: Unsupported value: \"IPX\": supported values: \"FQDN\", \"IPv4\", \"IPv6\""]
        );
    }

    #[test]
    fn endpointslice_addresses_match_the_address_type() {
        let got = slice_messages(
            json!({ "addressType": "IPv4",
                "endpoints": [{ "addresses": ["10.244.1.5"] }, { "addresses": ["fd00::5"] }, { "addresses": [] }],
                "ports": [{ "name": "", "port": 80, "protocol": "TCP" }, { "name": "", "port": 81, "protocol": "TCP" }] }),
            None,
        );
        assert_eq!(
            got,
            vec![
            "endpoints[1].addresses[0]: Invalid value: \"fd00::5\": must be a valid IPv4 address",
            "endpoints[2].addresses: Required value: must contain at least 1 address",
            "ports[1].name: Duplicate value: \"\"",
        ]
        );
    }

    #[test]
    fn the_address_type_is_immutable() {
        assert_eq!(
            slice_messages(
                json!({ "addressType": "IPv6" }),
                Some(json!({ "addressType": "IPv4" }))
            ),
            vec!["addressType: Invalid value: \"IPv6\": field is immutable"]
        );
    }
}
