//! `kubectl-lite trace svc/NAME [--node NODE] [--from pod/P]`: the way a
//! packet to a Service goes, node by node, as each node's kernel has it.
//!
//! kube-lite's own verb: the real kubectl has none like it (on a real
//! cluster one logs into a node and reads `nft list ruleset`). Each node's
//! agent reads its `ip kube-lite` table back from the kernel and serves
//! what concerns one Service on its kubelet port; the apiserver passes the
//! request on (`GET /api/v1/nodes/NODE/proxy/kube-lite/services/NS/NAME`,
//! see `api::serviceview`). This command prints it with the names `nft
//! list table ip kube-lite` uses: map, key, chain, bucket, endpoint, Pod.
//!
//! `--from pod/P` traces from one Pod: only its node rewrites its packets,
//! and the Pod's own address says whether the connection is masqueraded
//! (hairpin) or keeps its source.

use std::fmt::Write as _;

use api::serviceview::{Path, ServiceView, PATH};
use clap::Args;
use serde_json::Value;

use crate::client::Client;
use crate::containers;

#[derive(Debug, Args)]
pub struct TraceArgs {
    /// The Service (`svc/NAME`)
    pub service: String,
    /// Only this node (default: every node)
    #[arg(long)]
    pub node: Option<String>,
    /// Trace from this Pod (`pod/NAME`): its node, its address
    #[arg(long)]
    pub from: Option<String>,
}

/// The Pod a trace starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromPod {
    pub name: String,
    pub ip: String,
    pub node: String,
}

/// `svc/NAME`, `service/NAME`, `services/NAME` -> NAME.
pub fn service_name(arg: &str) -> anyhow::Result<String> {
    match arg.split_once('/') {
        Some(("svc" | "service" | "services", name)) if !name.is_empty() => Ok(name.to_string()),
        _ => anyhow::bail!("trace works on Services: give svc/NAME (got {arg:?})"),
    }
}

pub async fn run(client: &Client, args: TraceArgs) -> anyhow::Result<()> {
    let name = service_name(&args.service)?;
    let namespace = client.namespace.clone();
    let service = client
        .get(
            &format!("/api/v1/namespaces/{namespace}/services/{name}"),
            &[],
        )
        .await?;
    let from = match &args.from {
        Some(pod) => {
            let pod_name = containers::pod_name(pod)
                .map_err(|_| anyhow::anyhow!("--from: give pod/NAME (got {pod:?})"))?;
            let pod = containers::get_pod(client, &pod_name).await?;
            let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
            let ip = pod["status"]["podIP"].as_str().unwrap_or_default();
            if node.is_empty() || ip.is_empty() {
                anyhow::bail!("--from: pod {pod_name} has no node or no IP yet");
            }
            Some(FromPod {
                name: pod_name,
                ip: ip.to_string(),
                node: node.to_string(),
            })
        }
        None => None,
    };
    let nodes: Vec<String> = match (&args.node, &from) {
        (Some(node), _) => vec![node.clone()],
        // A Pod's packets are rewritten by its own node only.
        (None, Some(from)) => vec![from.node.clone()],
        (None, None) => {
            let list = client.get("/api/v1/nodes", &[]).await?;
            list["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string))
                .collect()
        }
    };
    let mut failed = false;
    let mut out = String::new();
    for node in &nodes {
        let path = format!("/api/v1/nodes/{node}/proxy{PATH}/{namespace}/{name}");
        match client.get(&path, &[]).await {
            Ok(answer) => match serde_json::from_value::<ServiceView>(answer) {
                Ok(view) => out.push_str(&render(&service, &view, from.as_ref())),
                Err(e) => {
                    failed = true;
                    let _ = writeln!(out, "node {node}: unreadable answer: {e}\n");
                }
            },
            Err(e) => {
                failed = true;
                let _ = writeln!(
                    out,
                    "node {node}: {}\n",
                    crate::client::error_message(&e.into())
                );
            }
        }
    }
    print!("{out}");
    if failed {
        anyhow::bail!("some nodes could not be traced");
    }
    Ok(())
}

/// What one node's kernel does with packets to the Service, as text.
pub fn render(service: &Value, view: &ServiceView, from: Option<&FromPod>) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "node {}: service {} (table ip kube-lite, read from the kernel)",
        view.node, view.service
    );
    if view.cluster_ip.is_empty() {
        let kind = if service["spec"]["type"] == "ExternalName" {
            "an ExternalName Service: a DNS name, no address to rewrite"
        } else {
            "headless: no ClusterIP, DNS answers with the Pods' addresses"
        };
        let _ = writeln!(w, "  nothing programmed: {kind}\n");
        return out;
    }
    if let Some(from) = from {
        let _ = writeln!(
            w,
            "  from pod/{} ({}) on {}: its packets leave through cni0 and meet nat-prerouting here",
            from.name, from.ip, from.node
        );
    }
    for port in &view.ports {
        let _ = writeln!(
            w,
            "  to {}:{}/{} ({})",
            view.cluster_ip, port.port, port.protocol, port.label
        );
        let _ = writeln!(
            w,
            "    nat-prerouting | nat-output -> services: which set of ports holds ip daddr . meta l4proto . th dport?"
        );
        write_path(w, &port.cluster_ip, from, false);
        if let Some(node_port) = &port.node_port {
            let _ = writeln!(
                w,
                "  to <an address of {}>:{}/{} (NodePort of {})",
                view.node, node_port.node_port, port.protocol, port.label
            );
            let _ = writeln!(
                w,
                "    services: fib daddr type local ip daddr != 127.0.0.0/8 jump nodeports: which set of ports holds meta l4proto . th dport?"
            );
            write_path(w, &node_port.path, from, true);
        }
        if let Some(chain) = &port.affinity {
            let _ = writeln!(
                w,
                "  ClientIP affinity: after the DNAT, affinity-check -> {chain} remembers client -> endpoint in @affinity-clients; the pick chain looks there first"
            );
        }
    }
    if !view.hairpin.is_empty() {
        let _ = writeln!(
            w,
            "  hairpin: a connection from {} to itself is masqueraded in nat-postrouting (@hairpin-endpoints)",
            view.hairpin.join(", ")
        );
        if let Some(from) = from.filter(|f| view.hairpin.contains(&f.ip)) {
            let _ = writeln!(
                w,
                "    pod/{} is an endpoint: when it draws its own bucket, its source becomes the node's address",
                from.name
            );
        }
    }
    for client in &view.remembered_clients {
        let _ = writeln!(
            w,
            "  remembered: {} -> {} goes to {}",
            client.client, client.destination, client.endpoint
        );
    }
    out.push('\n');
    out
}

/// One element and the chain and buckets it leads to.
fn write_path(w: &mut String, path: &Path, from: Option<&FromPod>, node_port: bool) {
    if path.map.is_empty() {
        let _ = writeln!(
            w,
            "      no element for {} in any map: not programmed on this node (yet?)",
            path.key
        );
        return;
    }
    let _ = writeln!(
        w,
        "      @{}  {} : {}   \"{}\"",
        path.map, path.key, path.verdict, path.comment
    );
    if path.map.starts_with("no-endpoint") {
        let what = if path.verdict == "drop" {
            "dropped: endpoints exist, but none this node may use (traffic policy Local)"
        } else {
            "refused at once: TCP reset, or ICMP port unreachable (no endpoints)"
        };
        let _ = writeln!(
            w,
            "    filter chains -> {}: {what}",
            if node_port {
                "nodeport-endpoints-check"
            } else {
                "service-endpoints-check"
            }
        );
        return;
    }
    let chain = path.verdict.trim_start_matches("goto ");
    let buckets = &path.buckets;
    if let Some(rest) = chain.strip_prefix("nodeport-local-") {
        // nodeport-local-L-of-A: buckets 0..A-1 every endpoint, A.. local.
        let (local, all) = rest
            .split_once("-of-")
            .and_then(|(l, a)| Some((l.parse::<u32>().ok()?, a.parse::<u32>().ok()?)))
            .unwrap_or((0, 0));
        let _ = writeln!(
            w,
            "    {chain}: externalTrafficPolicy Local, {local} endpoint(s) on this node of {all}"
        );
        let pod = from.map_or("Pods and this node".to_string(), |f| {
            format!("pod/{}", f.name)
        });
        let _ = writeln!(w, "      {pod}: every endpoint, numgen random mod {all}:");
        for b in buckets.iter().filter(|b| b.bucket < all) {
            let _ = writeln!(
                w,
                "        @{} bucket {} -> {}   \"{}\"",
                b.map, b.bucket, b.endpoint, b.comment
            );
        }
        if local > 0 {
            let _ = writeln!(
                w,
                "      other clients: this node's, numgen random mod {local} offset {all}, source kept:"
            );
            for b in buckets.iter().filter(|b| b.bucket >= all) {
                let _ = writeln!(
                    w,
                    "        @{} bucket {} -> {}   \"{}\"",
                    b.map, b.bucket, b.endpoint, b.comment
                );
            }
        } else {
            let _ = writeln!(
                w,
                "      other clients: no endpoint here: not rewritten, dropped by nodeport-endpoints-check"
            );
        }
        return;
    }
    let n = buckets.len();
    let masquerade = if node_port {
        "jump mark-for-masquerade (the source becomes this node's address)".to_string()
    } else {
        match from {
            Some(f) => format!("pod/{} is inside the Pod range: source kept", f.name),
            None => "clients outside the Pod range are masqueraded".to_string(),
        }
    };
    let map = if node_port {
        "@nodeport-endpoints"
    } else {
        "@service-endpoints"
    };
    let _ = writeln!(
        w,
        "    {chain}: {masquerade}; then dnat to the bucket numgen random mod {n} draws in {map}:"
    );
    for b in buckets {
        let _ = writeln!(
            w,
            "        @{} bucket {} -> {}   \"{}\"",
            b.map, b.bucket, b.endpoint, b.comment
        );
    }
    let _ = writeln!(
        w,
        "    -> routed to the Pod; conntrack un-NATs the reply on this node"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::serviceview::{Bucket, NodePortPath, PortView};
    use serde_json::json;

    fn bucket(map: &str, bucket: u32, endpoint: &str) -> Bucket {
        Bucket {
            map: map.into(),
            bucket,
            endpoint: endpoint.into(),
            comment: format!("default/ngx-svc:80 -> pod {endpoint}"),
        }
    }

    fn view() -> ServiceView {
        ServiceView {
            node: "kl-worker1".into(),
            service: "default/ngx-svc".into(),
            cluster_ip: "10.96.0.50".into(),
            ports: vec![PortView {
                label: "default/ngx-svc:80".into(),
                protocol: "tcp".into(),
                port: 80,
                cluster_ip: Path {
                    map: "services-with-2-endpoints".into(),
                    key: "10.96.0.50 . tcp . 80".into(),
                    verdict: "goto pick-1-of-2".into(),
                    comment: "default/ngx-svc:80".into(),
                    buckets: vec![
                        bucket("service-endpoints", 0, "10.244.1.5:80"),
                        bucket("service-endpoints", 1, "10.244.2.7:80"),
                    ],
                },
                node_port: Some(NodePortPath {
                    node_port: 30080,
                    path: Path {
                        map: "nodeports-with-1-local-of-2-endpoints".into(),
                        key: "tcp . 30080".into(),
                        verdict: "goto nodeport-local-1-of-2".into(),
                        comment: "default/ngx-svc:80".into(),
                        buckets: vec![
                            bucket("nodeport-endpoints", 0, "10.244.1.5:80"),
                            bucket("nodeport-endpoints", 1, "10.244.2.7:80"),
                            bucket("nodeport-endpoints", 2, "10.244.1.5:80"),
                        ],
                    },
                }),
                affinity: None,
            }],
            hairpin: vec!["10.244.1.5".into(), "10.244.2.7".into()],
            remembered_clients: vec![],
        }
    }

    #[test]
    fn the_path_names_what_nft_list_names() {
        let text = render(&json!({}), &view(), None);
        for line in [
            "node kl-worker1: service default/ngx-svc (table ip kube-lite, read from the kernel)",
            "  to 10.96.0.50:80/tcp (default/ngx-svc:80)",
            "      @services-with-2-endpoints  10.96.0.50 . tcp . 80 : goto pick-1-of-2   \"default/ngx-svc:80\"",
            "    pick-1-of-2: clients outside the Pod range are masqueraded; then dnat to the bucket numgen random mod 2 draws in @service-endpoints:",
            "        @service-endpoints bucket 1 -> 10.244.2.7:80   \"default/ngx-svc:80 -> pod 10.244.2.7:80\"",
            "    nodeport-local-1-of-2: externalTrafficPolicy Local, 1 endpoint(s) on this node of 2",
            "      other clients: this node's, numgen random mod 1 offset 2, source kept:",
            "        @nodeport-endpoints bucket 2 -> 10.244.1.5:80   \"default/ngx-svc:80 -> pod 10.244.1.5:80\"",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn from_a_pod_that_is_an_endpoint_says_hairpin() {
        let from = FromPod {
            name: "ngx-dep-1".into(),
            ip: "10.244.1.5".into(),
            node: "kl-worker1".into(),
        };
        let text = render(&json!({}), &view(), Some(&from));
        assert!(
            text.contains("pod/ngx-dep-1 is inside the Pod range: source kept"),
            "{text}"
        );
        assert!(text.contains("pod/ngx-dep-1 is an endpoint"), "{text}");
    }

    #[test]
    fn no_endpoints_and_headless() {
        let mut v = view();
        v.ports[0].cluster_ip = Path {
            map: "no-endpoint-services".into(),
            key: "10.96.0.50 . tcp . 80".into(),
            verdict: "goto reject-chain".into(),
            comment: "default/ngx-svc:80".into(),
            buckets: vec![],
        };
        let text = render(&json!({}), &v, None);
        assert!(
            text.contains("service-endpoints-check: refused at once"),
            "{text}"
        );
        let headless = ServiceView {
            cluster_ip: String::new(),
            ..view()
        };
        assert!(render(&json!({}), &headless, None).contains("headless"));
    }

    #[test]
    fn only_services_are_traced() {
        assert_eq!(service_name("svc/ngx-svc").unwrap(), "ngx-svc");
        let e = service_name("deploy/ngx").unwrap_err().to_string();
        assert!(e.contains("svc/NAME"), "{e}");
    }
}
