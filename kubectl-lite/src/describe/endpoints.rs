//! An Endpoints object: its subsets, as addresses and ports.

use super::*;

/// The v1 Endpoints object: the addresses behind a Service, grouped in
/// subsets that share the same ports.
pub fn describe_endpoints(ep: &Value, events: &[Value], now: DateTime<Utc>) -> String {
    let mut w = Page::default();
    w.object_header(ep);
    w.write(0, "Subsets:\n");
    for subset in list_at(ep, "/subsets") {
        let ips = |field: &str| {
            let ips: Vec<&str> = list_at(subset, field)
                .iter()
                .map(|a| str_at(a, "/ip"))
                .collect();
            none_if_empty(&ips.join(",")).to_string()
        };
        w.write(1, &format!("Addresses:\t{}\n", ips("/addresses")));
        w.write(
            1,
            &format!("NotReadyAddresses:\t{}\n", ips("/notReadyAddresses")),
        );
        let ports = list_at(subset, "/ports");
        if !ports.is_empty() {
            w.write(1, "Ports:\n");
            w.write(2, "Name\tPort\tProtocol\n");
            w.write(2, "----\t----\t--------\n");
            for port in ports {
                let name = str_at(port, "/name");
                w.write(
                    2,
                    &format!(
                        "{}\t{}\t{}\n",
                        if name.is_empty() { "<unset>" } else { name },
                        int_at(port, "/port"),
                        str_at(port, "/protocol")
                    ),
                );
            }
        }
        w.write(0, "\n");
    }
    w.events(events, now);
    w.finish()
}
