//! `kubectl version` and `kubectl cluster-info`: which cluster is this?
//!
//! `GET /version` answers the server's build (`gitVersion: v1.35.0`);
//! kubectl prints it under its own and warns when the two are more than
//! one minor version apart, the skew Kubernetes supports between clients
//! and servers. `cluster-info` prints where the control plane answers and
//! the cluster's add-on Services: those in `kube-system` labelled
//! `kubernetes.io/cluster-service=true`, such as the DNS Service
//! (`kube-dns`), reachable through the API server's service proxy.

use clap::Args;

use crate::client::Client;

/// The kubectl release whose behaviour kubectl-lite follows, with our own
/// version as build metadata so that nobody mistakes it for kubectl.
pub const CLIENT_VERSION: &str = concat!("v1.35.0+kube-lite-", env!("CARGO_PKG_VERSION"));

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Print the client version only (no server needed)
    #[arg(long)]
    pub client: bool,
}

/// `(major, minor)` of a `v1.35.2`-style version.
fn major_minor(version: &str) -> Option<(u64, u64)> {
    let mut parts = version.trim_start_matches('v').split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// kubectl's skew warning, if client and server are too far apart.
pub fn skew_warning(client: &str, server: &str) -> Option<String> {
    let (client_major, client_minor) = major_minor(client)?;
    let (server_major, server_minor) = major_minor(server)?;
    if client_major != server_major || client_minor.abs_diff(server_minor) <= 1 {
        return None;
    }
    Some(format!(
        "version difference between client ({client_major}.{client_minor}) and server ({server_major}.{server_minor}) exceeds the supported minor version skew of +/-1"
    ))
}

pub async fn run_version(client: &Client, args: VersionArgs) -> anyhow::Result<()> {
    let ours = CLIENT_VERSION;
    println!("Client Version: {ours}");
    if args.client {
        return Ok(());
    }
    let info = client.get("/version", &[]).await?;
    let server = info["gitVersion"].as_str().unwrap_or_default();
    println!("Server Version: {server}");
    if let Some(warning) = skew_warning(ours, server) {
        eprintln!("Warning: {warning}");
    }
    Ok(())
}

/// `kube-dns:dns`: how the service proxy URL names a Service port, with a
/// scheme guessed like kubectl (`https:` for port 443 or a port named
/// https).
fn proxy_name(service: &serde_json::Value) -> String {
    let name = service["metadata"]["name"].as_str().unwrap_or_default();
    let Some(port) = service["spec"]["ports"].get(0) else {
        return name.to_string();
    };
    let port_name = port["name"].as_str().unwrap_or_default();
    let scheme = if port_name == "https" || port["port"].as_i64() == Some(443) {
        "https"
    } else {
        ""
    };
    match (scheme.is_empty(), port_name.is_empty()) {
        (true, true) => name.to_string(),
        (true, false) => format!("{name}:{port_name}"),
        (false, true) => format!("{scheme}:{name}"),
        (false, false) => format!("{scheme}:{name}:{port_name}"),
    }
}

/// The lines of `cluster-info`.
pub fn cluster_info_text(server: &str, services: &[serde_json::Value]) -> String {
    let mut text = format!("Kubernetes control plane is running at {server}\n");
    for service in services {
        let ingress = &service["status"]["loadBalancer"]["ingress"][0];
        let link = if ingress.is_object() {
            let ip = ingress["ip"]
                .as_str()
                .filter(|ip| !ip.is_empty())
                .or_else(|| ingress["hostname"].as_str())
                .unwrap_or_default();
            service["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| format!("http://{ip}:{} ", p["port"].as_i64().unwrap_or_default()))
                .collect::<String>()
        } else {
            format!(
                "{server}/api/v1/namespaces/{}/services/{}/proxy",
                service["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default(),
                proxy_name(service)
            )
        };
        let shown = service["metadata"]["labels"]["kubernetes.io/name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .or_else(|| service["metadata"]["name"].as_str())
            .unwrap_or_default();
        text.push_str(&format!("{shown} is running at {link}\n"));
    }
    text.push_str(
        "\nTo further debug and diagnose cluster problems, use 'kubectl cluster-info dump'.\n",
    );
    text
}

pub async fn run_cluster_info(client: &Client) -> anyhow::Result<()> {
    let namespace = if client.namespace_explicit {
        client.namespace.as_str()
    } else {
        "kube-system"
    };
    let list = client
        .get(
            &format!("/api/v1/namespaces/{namespace}/services"),
            &[(
                "labelSelector",
                "kubernetes.io/cluster-service=true".to_string(),
            )],
        )
        .await?;
    let services = list["items"].as_array().cloned().unwrap_or_default();
    print!("{}", cluster_info_text(client.server(), &services));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn skew_of_more_than_one_minor_is_warned() {
        assert_eq!(skew_warning("v1.35.0+kube-lite-0.1.0", "v1.34.2"), None);
        assert_eq!(skew_warning("v1.35.0", "v1.36.0"), None);
        assert_eq!(
            skew_warning("v1.35.0", "v1.31.4").unwrap(),
            "version difference between client (1.35) and server (1.31) exceeds the supported minor version skew of +/-1"
        );
        assert_eq!(skew_warning("v1.35.0", "garbage"), None);
    }

    #[test]
    fn cluster_info_lists_dns_through_the_proxy() {
        let dns = json!({
            "metadata": {"name": "kube-dns", "namespace": "kube-system",
                         "labels": {"kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"}},
            "spec": {"ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}
        });
        assert_eq!(
            cluster_info_text("http://192.168.56.10:6443", &[dns]),
            "Kubernetes control plane is running at http://192.168.56.10:6443\n\
             CoreDNS is running at http://192.168.56.10:6443/api/v1/namespaces/kube-system/services/kube-dns:dns/proxy\n\
             \n\
             To further debug and diagnose cluster problems, use 'kubectl cluster-info dump'.\n"
        );
    }

    #[test]
    fn https_ports_get_a_scheme() {
        let svc = json!({"metadata": {"name": "dash"}, "spec": {"ports": [{"port": 443}]}});
        assert_eq!(proxy_name(&svc), "https:dash");
    }
}
