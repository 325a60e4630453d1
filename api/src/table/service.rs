//! Services and where their traffic goes: `kubectl get svc,ep,endpointslices`.
//!
//! A Service row answers "how do I reach it": TYPE, the virtual CLUSTER-IP
//! (`None` for a headless Service), what is reachable from outside
//! (EXTERNAL-IP), and PORT(S), where `80:30651/TCP` means port 80 on the
//! ClusterIP and 30651 on every node. The Endpoints and EndpointSlice rows
//! answer "which Pods are behind it": `10.244.1.5:80,10.244.2.3:80`, cut
//! after three with `+ N more...`.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::age::since;
use super::{format_labels, int, list, text, timestamp, Column, Printer, AGE, NAME};

/// Upstream's "at most this many addresses or ports, then `+ N more...`".
const LISTED: usize = 3;

pub(super) const SERVICES: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Type", "type determines how the Service is exposed."),
        Column::string(
            "Cluster-IP",
            "clusterIP is the IP address of the service and is usually assigned randomly.",
        ),
        Column::string(
            "External-IP",
            "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
        ),
        Column::string(
            "Port(s)",
            "The list of ports that are exposed by this service.",
        ),
        AGE,
        Column::string(
            "Selector",
            "Route service traffic to pods with label keys and values matching this selector.",
        )
        .wide(),
    ],
    cells: service_cells,
    conditions: None,
};

pub(super) const ENDPOINTS: Printer = Printer {
    columns: &[
        NAME,
        Column::string(
            "Endpoints",
            "The set of all endpoints is the union of all subsets.",
        ),
        AGE,
    ],
    cells: endpoints_cells,
    conditions: None,
};

pub(super) const ENDPOINTSLICES: Printer = Printer {
    columns: &[
        NAME,
        Column::string(
            "AddressType",
            "addressType specifies the type of address carried by this EndpointSlice.",
        ),
        Column::string(
            "Ports",
            "ports specifies the list of network ports exposed by each endpoint in this slice.",
        ),
        Column::string(
            "Endpoints",
            "endpoints is a list of unique endpoints in this slice.",
        ),
        AGE,
    ],
    cells: endpointslice_cells,
    conditions: None,
};

fn service_cells(svc: &Value, now: DateTime<Utc>) -> Vec<Value> {
    // The apiserver defaults `type` to ClusterIP; an object stored before
    // defaulting reads the same way.
    let service_type = match text(svc, "/spec/type") {
        "" => "ClusterIP",
        service_type => service_type,
    };
    let cluster_ip = list(svc, "/spec/clusterIPs")
        .first()
        .and_then(Value::as_str)
        .or(Some(text(svc, "/spec/clusterIP")))
        .filter(|ip| !ip.is_empty())
        .unwrap_or("<none>");
    let ports = port_list(list(svc, "/spec/ports"));
    vec![
        json!(text(svc, "/metadata/name")),
        json!(service_type),
        json!(cluster_ip),
        json!(external_ip(svc, service_type)),
        json!(if ports.is_empty() {
            "<none>".to_string()
        } else {
            ports
        }),
        json!(since(timestamp(svc, "/metadata/creationTimestamp"), now)),
        json!(format_labels(svc.pointer("/spec/selector"))),
    ]
}

/// EXTERNAL-IP: what reaches the Service from outside the cluster.
fn external_ip(svc: &Value, service_type: &str) -> String {
    let external_ips: Vec<&str> = list(svc, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match service_type {
        "ClusterIP" | "NodePort" if external_ips.is_empty() => "<none>".to_string(),
        "ClusterIP" | "NodePort" => external_ips.join(","),
        "LoadBalancer" => {
            // What the cloud's load balancer reported, sorted and deduplicated.
            let ingress: BTreeSet<&str> = list(svc, "/status/loadBalancer/ingress")
                .iter()
                .map(|i| match text(i, "/ip") {
                    "" => text(i, "/hostname"),
                    ip => ip,
                })
                .filter(|address| !address.is_empty())
                .collect();
            let mut addresses: Vec<&str> = ingress.into_iter().collect();
            addresses.extend(external_ips);
            if addresses.is_empty() {
                // No load balancer yet (there is none without a cloud).
                "<pending>".to_string()
            } else {
                addresses.join(",")
            }
        }
        "ExternalName" => text(svc, "/spec/externalName").to_string(),
        _ => "<unknown>".to_string(),
    }
}

/// PORT(S): `80/TCP`, or `80:30651/TCP` when the port also has a NodePort.
fn port_list(ports: &[Value]) -> String {
    ports
        .iter()
        .map(|port| {
            let protocol = match text(port, "/protocol") {
                "" => "TCP",
                protocol => protocol,
            };
            match int(port, "/nodePort") {
                node_port if node_port > 0 => {
                    format!("{}:{node_port}/{protocol}", int(port, "/port"))
                }
                _ => format!("{}/{protocol}", int(port, "/port")),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn endpoints_cells(endpoints: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        json!(text(endpoints, "/metadata/name")),
        json!(endpoint_addresses(endpoints)),
        json!(since(
            timestamp(endpoints, "/metadata/creationTimestamp"),
            now
        )),
    ]
}

/// ENDPOINTS: every ready `ip:port` pair of every subset, the first three
/// shown. Not-ready addresses are not listed: they receive no traffic.
fn endpoint_addresses(endpoints: &Value) -> String {
    let subsets = list(endpoints, "/subsets");
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    let mut shown = Vec::new();
    let mut count = 0;
    for subset in subsets {
        let addresses = list(subset, "/addresses");
        let ports = list(subset, "/ports");
        if ports.is_empty() {
            // A headless Service may have no ports: bare IPs then.
            count += addresses.len();
            for address in addresses.iter().take(LISTED.saturating_sub(shown.len())) {
                shown.push(text(address, "/ip").to_string());
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            for address in addresses.iter().take(LISTED.saturating_sub(shown.len())) {
                shown.push(host_port(text(address, "/ip"), int(port, "/port")));
            }
        }
    }
    with_more(shown, count).unwrap_or_default()
}

/// `10.244.1.5:80`, or `[fd00::5]:80` for IPv6 (Go's `net.JoinHostPort`).
fn host_port(ip: &str, port: i64) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

fn endpointslice_cells(slice: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let ports: Vec<String> = list(slice, "/ports")
        .iter()
        .map(|port| match port.get("port").and_then(Value::as_i64) {
            Some(number) => number.to_string(),
            None => match port.get("name").and_then(Value::as_str) {
                Some(name) => name.to_string(),
                // Every port of the endpoints.
                None => "*".to_string(),
            },
        })
        .collect();
    let addresses: Vec<&str> = list(slice, "/endpoints")
        .iter()
        .flat_map(|endpoint| list(endpoint, "/addresses"))
        .filter_map(Value::as_str)
        .collect();
    vec![
        json!(text(slice, "/metadata/name")),
        json!(text(slice, "/addressType")),
        json!(first_of(ports)),
        json!(first_of(addresses.iter().map(|a| a.to_string()).collect())),
        json!(since(timestamp(slice, "/metadata/creationTimestamp"), now)),
    ]
}

/// The first few items and how many more, `<unset>` for none.
fn first_of(items: Vec<String>) -> String {
    let count = items.len();
    let shown = items.into_iter().take(LISTED).collect();
    with_more(shown, count).unwrap_or_else(|| "<unset>".to_string())
}

/// `a,b,c + 2 more...`; `None` when nothing is listed.
fn with_more(shown: Vec<String>, count: usize) -> Option<String> {
    let listed = shown.join(",");
    if count > shown.len() {
        Some(format!("{listed} + {} more...", count - LISTED))
    } else if listed.is_empty() {
        None
    } else {
        Some(listed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-25T10:00:00Z".parse().unwrap()
    }

    /// The lesson's `ngx-svc.yml` as the apiserver stores it after
    /// defaulting and allocating its ClusterIP.
    fn ngx_svc() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "ngx-svc",
                "namespace": "default",
                "creationTimestamp": "2026-11-25T09:55:00Z",
            },
            "spec": {
                "type": "ClusterIP",
                "clusterIP": "10.96.0.17",
                "clusterIPs": ["10.96.0.17"],
                "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack",
                "internalTrafficPolicy": "Cluster",
                "sessionAffinity": "None",
                "selector": {"app": "ngx-dep"},
                "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}],
            },
            "status": {"loadBalancer": {}},
        })
    }

    #[test]
    fn cluster_ip_service_from_the_lesson() {
        assert_eq!(
            service_cells(&ngx_svc(), now()),
            [
                json!("ngx-svc"),
                json!("ClusterIP"),
                json!("10.96.0.17"),
                json!("<none>"),
                json!("80/TCP"),
                json!("5m"),
                json!("app=ngx-dep"),
            ]
        );
    }

    #[test]
    fn node_port_service_shows_both_ports() {
        let mut svc = ngx_svc();
        svc["spec"]["type"] = json!("NodePort");
        svc["spec"]["externalTrafficPolicy"] = json!("Cluster");
        svc["spec"]["ports"][0]["nodePort"] = json!(30651);
        let cells = service_cells(&svc, now());
        assert_eq!(cells[1], "NodePort");
        assert_eq!(cells[3], "<none>");
        assert_eq!(cells[4], "80:30651/TCP");
    }

    #[test]
    fn several_ports_are_comma_joined_and_selector_sorted() {
        let mut svc = ngx_svc();
        svc["spec"]["selector"] = json!({"tier": "web", "app": "ngx-dep"});
        svc["spec"]["ports"] = json!([
            {"name": "http", "port": 80, "protocol": "TCP"},
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "https", "port": 443},
        ]);
        let cells = service_cells(&svc, now());
        assert_eq!(cells[4], "80/TCP,53/UDP,443/TCP");
        assert_eq!(cells[6], "app=ngx-dep,tier=web");
    }

    #[test]
    fn headless_and_selectorless_services() {
        let mut svc = ngx_svc();
        svc["spec"]["clusterIP"] = json!("None");
        svc["spec"]["clusterIPs"] = json!(["None"]);
        svc["spec"].as_object_mut().unwrap().remove("selector");
        let cells = service_cells(&svc, now());
        assert_eq!(cells[2], "None");
        assert_eq!(cells[6], "<none>");
    }

    #[test]
    fn external_name_service_shows_its_dns_name() {
        let svc = json!({
            "metadata": {"name": "db", "creationTimestamp": "2026-11-25T09:00:00Z"},
            "spec": {"type": "ExternalName", "externalName": "db.example.com"},
        });
        assert_eq!(
            service_cells(&svc, now())[1..5],
            [
                json!("ExternalName"),
                json!("<none>"),
                json!("db.example.com"),
                json!("<none>")
            ]
        );
    }

    #[test]
    fn load_balancer_is_pending_until_it_gets_an_address() {
        let mut svc = ngx_svc();
        svc["spec"]["type"] = json!("LoadBalancer");
        assert_eq!(service_cells(&svc, now())[3], "<pending>");
        svc["status"]["loadBalancer"]["ingress"] = json!([
            {"ip": "203.0.113.9"}, {"hostname": "lb.example.com"}, {"ip": "203.0.113.9"},
        ]);
        svc["spec"]["externalIPs"] = json!(["192.0.2.1"]);
        assert_eq!(
            service_cells(&svc, now())[3],
            "203.0.113.9,lb.example.com,192.0.2.1"
        );
    }

    #[test]
    fn cluster_ip_service_with_external_ips_lists_them() {
        let mut svc = ngx_svc();
        svc["spec"]["externalIPs"] = json!(["192.0.2.1", "192.0.2.2"]);
        assert_eq!(service_cells(&svc, now())[3], "192.0.2.1,192.0.2.2");
    }

    fn endpoints(subsets: Value) -> Value {
        json!({
            "metadata": {"name": "ngx-svc", "creationTimestamp": "2026-11-25T09:55:00Z"},
            "subsets": subsets,
        })
    }

    #[test]
    fn endpoints_list_ready_addresses_with_ports() {
        let ep = endpoints(json!([{
            "addresses": [{"ip": "10.244.1.5"}, {"ip": "10.244.2.3"}],
            "notReadyAddresses": [{"ip": "10.244.2.9"}],
            "ports": [{"port": 80, "protocol": "TCP"}],
        }]));
        assert_eq!(
            endpoints_cells(&ep, now()),
            [
                json!("ngx-svc"),
                json!("10.244.1.5:80,10.244.2.3:80"),
                json!("5m")
            ]
        );
    }

    #[test]
    fn endpoints_beyond_three_are_counted() {
        let ep = endpoints(json!([{
            "addresses": [
                {"ip": "10.244.1.5"}, {"ip": "10.244.1.6"}, {"ip": "10.244.2.3"},
                {"ip": "10.244.2.4"}, {"ip": "10.244.3.2"},
            ],
            "ports": [{"port": 80}],
        }]));
        assert_eq!(
            endpoint_addresses(&ep),
            "10.244.1.5:80,10.244.1.6:80,10.244.2.3:80 + 2 more..."
        );
        let two_ports = endpoints(json!([{
            "addresses": [{"ip": "10.244.1.5"}, {"ip": "10.244.2.3"}],
            "ports": [{"name": "http", "port": 80}, {"name": "metrics", "port": 9113}],
        }]));
        assert_eq!(
            endpoint_addresses(&two_ports),
            "10.244.1.5:80,10.244.2.3:80,10.244.1.5:9113 + 1 more..."
        );
    }

    #[test]
    fn endpoints_without_subsets_or_ports() {
        assert_eq!(endpoint_addresses(&endpoints(json!([]))), "<none>");
        assert_eq!(
            endpoint_addresses(&json!({"metadata": {"name": "x"}})),
            "<none>"
        );
        let headless = endpoints(json!([{"addresses": [{"ip": "10.244.1.5"}]}]));
        assert_eq!(endpoint_addresses(&headless), "10.244.1.5");
        let ipv6 = endpoints(json!([{"addresses": [{"ip": "fd00::5"}], "ports": [{"port": 80}]}]));
        assert_eq!(endpoint_addresses(&ipv6), "[fd00::5]:80");
    }

    #[test]
    fn endpointslice_lists_ports_and_addresses() {
        let slice = json!({
            "metadata": {"name": "ngx-svc-x7k2p", "creationTimestamp": "2026-11-25T09:55:00Z"},
            "addressType": "IPv4",
            "ports": [{"name": "", "port": 80, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.244.1.5"], "conditions": {"ready": true}},
                {"addresses": ["10.244.2.3"], "conditions": {"ready": true}},
            ],
        });
        assert_eq!(
            endpointslice_cells(&slice, now()),
            [
                json!("ngx-svc-x7k2p"),
                json!("IPv4"),
                json!("80"),
                json!("10.244.1.5,10.244.2.3"),
                json!("5m"),
            ]
        );
    }

    #[test]
    fn endpointslice_edge_cases() {
        let slice = json!({
            "metadata": {"name": "s"},
            "addressType": "IPv4",
            "ports": [{"name": "http"}, {}, {"port": 1}, {"port": 2}],
            "endpoints": [],
        });
        let cells = endpointslice_cells(&slice, now());
        assert_eq!(cells[2], "http,*,1 + 1 more...");
        assert_eq!(cells[3], "<unset>");
        assert_eq!(cells[4], "<unknown>");
    }
}
