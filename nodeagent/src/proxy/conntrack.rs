//! Stale UDP conntrack entries: what a sync must clean after itself.
//!
//! The kernel rewrites only the first packet of a connection by the rules;
//! conntrack remembers the rewrite for the rest. TCP connections end, so
//! an endpoint that goes away only keeps the connections it had (they
//! drain). UDP has no end for conntrack: a client that keeps sending from
//! one port (a DNS resolver) keeps hitting the entry of an endpoint that
//! is gone, or the "no rewrite" entry made while the Service had no
//! endpoints. So after a sync the proxy deletes (`conntrack -D`) the
//! entries of UDP endpoints that stopped serving, and those of UDP Service
//! ports that just got their first endpoints, as upstream.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;

use tokio::process::Command;

use super::rules::UdpServicePort;
use super::ProxyError;

/// Runs `conntrack`, in the agent's network namespace or in a named one
/// (`/run/netns/<name>`, via `nsenter`): tests and benchmarks program a
/// namespace they made while the agent stays where it can reach the
/// apiserver.
#[derive(Debug, Clone, Default)]
pub struct Conntrack {
    pub netns: Option<String>,
}

impl Conntrack {
    /// `conntrack -D ARGS`; "no entry matched" is not an error.
    pub async fn delete(&self, args: &[String]) -> Result<(), ProxyError> {
        let mut command = match &self.netns {
            Some(netns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{netns}")).arg("conntrack");
                c
            }
            None => Command::new("conntrack"),
        };
        let output = command
            .kill_on_drop(true)
            .arg("-D")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|source| ProxyError::Spawn {
                program: "conntrack",
                source,
            })?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if output.status.success() || stderr.contains("0 flow entries") {
            return Ok(());
        }
        Err(ProxyError::Conntrack {
            args: args.join(" "),
            stderr: stderr.trim().to_string(),
        })
    }
}

/// The `conntrack -D` filters that remove stale UDP entries after the
/// Service ports `old` became `new` (both for one Service).
pub fn stale_conntrack_filters(old: &[UdpServicePort], new: &[UdpServicePort]) -> Vec<Vec<String>> {
    let by_port =
        |ports: &[UdpServicePort]| -> BTreeMap<(std::net::Ipv4Addr, u16), UdpServicePort> {
            ports
                .iter()
                .map(|p| ((p.cluster_ip, p.port), p.clone()))
                .collect()
        };
    let old = by_port(old);
    let new = by_port(new);
    let mut filters = vec![];
    let s = |v: &dyn ToString| v.to_string();
    for (key, old_port) in &old {
        let gone: BTreeSet<_> = match new.get(key) {
            Some(new_port) => old_port.endpoints.difference(&new_port.endpoints).collect(),
            None => old_port.endpoints.iter().collect(),
        };
        for endpoint in gone {
            // Entries that were rewritten to the endpoint that is gone.
            filters.push(vec![
                s(&"-p"),
                s(&"udp"),
                s(&"--orig-dst"),
                s(&old_port.cluster_ip),
                s(&"--orig-port-dst"),
                s(&old_port.port),
                s(&"--dst-nat"),
                s(endpoint),
            ]);
            if let Some(node_port) = old_port.node_port {
                filters.push(vec![
                    s(&"-p"),
                    s(&"udp"),
                    s(&"--orig-port-dst"),
                    s(&node_port),
                    s(&"--dst-nat"),
                    s(endpoint),
                ]);
            }
        }
    }
    for (key, new_port) in &new {
        let had_none = old.get(key).is_none_or(|p| p.endpoints.is_empty());
        if had_none && !new_port.endpoints.is_empty() {
            // Entries made while the port rejected: they would keep a
            // client that never changes its source port from the endpoints.
            filters.push(vec![
                s(&"-p"),
                s(&"udp"),
                s(&"--orig-dst"),
                s(&new_port.cluster_ip),
                s(&"--orig-port-dst"),
                s(&new_port.port),
            ]);
            if let Some(node_port) = new_port.node_port {
                filters.push(vec![
                    s(&"-p"),
                    s(&"udp"),
                    s(&"--orig-port-dst"),
                    s(&node_port),
                ]);
            }
        }
    }
    filters
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_udp_entries() {
        let port = |eps: &[&str]| UdpServicePort {
            label: "default/dns:53".into(),
            cluster_ip: "10.96.0.10".parse().unwrap(),
            port: 53,
            node_port: None,
            endpoints: eps.iter().map(|e| e.parse().unwrap()).collect(),
        };
        let filters = stale_conntrack_filters(
            &[port(&["10.244.1.5", "10.244.2.7"])],
            &[port(&["10.244.1.5"])],
        );
        assert_eq!(
            filters,
            vec![[
                "-p",
                "udp",
                "--orig-dst",
                "10.96.0.10",
                "--orig-port-dst",
                "53",
                "--dst-nat",
                "10.244.2.7"
            ]
            .map(String::from)
            .to_vec()]
        );
        let filters = stale_conntrack_filters(&[port(&[])], &[port(&["10.244.1.5"])]);
        assert_eq!(
            filters,
            vec![[
                "-p",
                "udp",
                "--orig-dst",
                "10.96.0.10",
                "--orig-port-dst",
                "53"
            ]
            .map(String::from)
            .to_vec()]
        );
        assert!(
            stale_conntrack_filters(&[port(&["10.244.1.5"])], &[port(&["10.244.1.5"])]).is_empty()
        );
    }
}
