//! A Service: its selector, ports, and the endpoints behind each port (read from its EndpointSlices).

use super::*;

/// `10.244.1.5:80,10.244.2.3:80`: the ready endpoints of the slices for
/// one Service port (matched by port name), at most three then `+ N more...`.
pub fn format_endpoint_slices(slices: &[Value], port_name: &str) -> String {
    if slices.is_empty() {
        return "<none>".to_string();
    }
    const MAX: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0;
    let ready = |endpoint: &Value| at(endpoint, "/conditions/ready").as_bool().unwrap_or(true);
    for slice in slices {
        let ports = list_at(slice, "/ports");
        if ports.is_empty() {
            // Headless Services may have no ports: addresses alone.
            for endpoint in list_at(slice, "/endpoints") {
                if list.len() == MAX {
                    more = true;
                }
                if !ready(endpoint) {
                    continue;
                }
                if !more {
                    list.push(str_at(endpoint, "/addresses/0").to_string());
                }
                count += 1;
            }
            continue;
        }
        for port in ports {
            if str_at(port, "/name") != port_name {
                continue;
            }
            for endpoint in list_at(slice, "/endpoints") {
                if list.len() == MAX {
                    more = true;
                }
                if !ready(endpoint) {
                    continue;
                }
                if !more {
                    let address = str_at(endpoint, "/addresses/0");
                    let port = int_at(port, "/port");
                    list.push(if address.contains(':') {
                        format!("[{address}]:{port}")
                    } else {
                        format!("{address}:{port}")
                    });
                }
                count += 1;
            }
        }
    }
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", count - MAX)
    } else {
        joined
    }
}

pub fn describe_service(
    svc: &Value,
    slices: &[Value],
    events: &[Value],
    now: DateTime<Utc>,
) -> String {
    let mut w = Page::default();
    w.object_header(svc);
    w.write(
        0,
        &format!(
            "Selector:\t{}\n",
            format_labels(&string_map(svc, "/spec/selector"))
        ),
    );
    w.write(0, &format!("Type:\t{}\n", str_at(svc, "/spec/type")));
    if let Some(policy) = at(svc, "/spec/ipFamilyPolicy").as_str() {
        w.write(0, &format!("IP Family Policy:\t{policy}\n"));
    }
    let families: Vec<&str> = list_at(svc, "/spec/ipFamilies")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    w.write(
        0,
        &format!("IP Families:\t{}\n", none_if_empty(&families.join(","))),
    );
    w.write(0, &format!("IP:\t{}\n", str_at(svc, "/spec/clusterIP")));
    let ips: Vec<&str> = list_at(svc, "/spec/clusterIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    w.write(0, &format!("IPs:\t{}\n", none_if_empty(&ips.join(","))));
    let external: Vec<&str> = list_at(svc, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    if !external.is_empty() {
        w.write(0, &format!("External IPs:\t{}\n", external.join(",")));
    }
    let lb_ip = str_at(svc, "/spec/loadBalancerIP");
    if !lb_ip.is_empty() {
        w.write(0, &format!("Desired LoadBalancer IP:\t{lb_ip}\n"));
    }
    let external_name = str_at(svc, "/spec/externalName");
    if !external_name.is_empty() {
        w.write(0, &format!("External Name:\t{external_name}\n"));
    }
    let ingress: Vec<String> = list_at(svc, "/status/loadBalancer/ingress")
        .iter()
        .map(|i| {
            let ip = str_at(i, "/ip");
            if ip.is_empty() {
                str_at(i, "/hostname").to_string()
            } else if let Some(mode) = at(i, "/ipMode").as_str() {
                format!("{ip} ({mode})")
            } else {
                ip.to_string()
            }
        })
        .collect();
    if !ingress.is_empty() {
        w.write(
            0,
            &format!("LoadBalancer Ingress:\t{}\n", ingress.join(", ")),
        );
    }
    for port in list_at(svc, "/spec/ports") {
        let port_name = str_at(port, "/name");
        let shown_name = if port_name.is_empty() {
            "<unset>"
        } else {
            port_name
        };
        let protocol = str_at(port, "/protocol");
        w.write(
            0,
            &format!(
                "Port:\t{shown_name}\t{}/{protocol}\n",
                int_at(port, "/port")
            ),
        );
        w.write(
            0,
            &format!(
                "TargetPort:\t{}/{protocol}\n",
                int_or_string(at(port, "/targetPort"))
            ),
        );
        let node_port = int_at(port, "/nodePort");
        if node_port != 0 {
            w.write(
                0,
                &format!("NodePort:\t{shown_name}\t{node_port}/{protocol}\n"),
            );
        }
        w.write(
            0,
            &format!(
                "Endpoints:\t{}\n",
                format_endpoint_slices(slices, port_name)
            ),
        );
    }
    w.write(
        0,
        &format!(
            "Session Affinity:\t{}\n",
            str_at(svc, "/spec/sessionAffinity")
        ),
    );
    let etp = str_at(svc, "/spec/externalTrafficPolicy");
    if !etp.is_empty() {
        w.write(0, &format!("External Traffic Policy:\t{etp}\n"));
    }
    if let Some(itp) = at(svc, "/spec/internalTrafficPolicy").as_str() {
        w.write(0, &format!("Internal Traffic Policy:\t{itp}\n"));
    }
    let health = int_at(svc, "/spec/healthCheckNodePort");
    if health != 0 {
        w.write(0, &format!("HealthCheck NodePort:\t{health}\n"));
    }
    let ranges: Vec<&str> = list_at(svc, "/spec/loadBalancerSourceRanges")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    if !ranges.is_empty() {
        w.write(
            0,
            &format!("LoadBalancer Source Ranges:\t{}\n", ranges.join(",")),
        );
    }
    if let Some(td) = at(svc, "/spec/trafficDistribution").as_str() {
        w.write(0, &format!("Traffic Distribution:\t{td}\n"));
    }
    w.events(events, now);
    w.finish()
}

pub(super) fn none_if_empty(s: &str) -> &str {
    if s.is_empty() {
        "<none>"
    } else {
        s
    }
}
