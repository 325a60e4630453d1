//! The pod network between lab nodes, as the node agents build it: every
//! node gets a pod CIDR from the controller, a bridge `cni0` holding the
//! first address of it, and a route to every other node's pod CIDR via
//! that node's LAN address (flannel's host-gw). Checked with `ip` inside
//! the node namespaces, and with a ping from one node to another node's
//! Pod gateway across the lab LAN. A restarted agent keeps it all.
//!
//! Needs root (the lab creates network namespaces); takes the lab lock.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::ip;
use e2e::harness::{bin_dir, ensure_built};
use e2e::lab::{Lab, LabOptions};
use k8s_openapi::api::core::v1::Node;
use kube::Api;

const NODES: [(&str, &str); 3] = [
    ("kl-master", "192.168.56.10"),
    ("kl-worker1", "192.168.56.11"),
    ("kl-worker2", "192.168.56.12"),
];

fn in_node(netns: &str, command: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", netns])
        .args(command)
        .output()
        .expect("running ip netns exec")
}

fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Waits until the three lab Nodes are Ready with a pod CIDR each, and
/// returns node name -> pod CIDR.
async fn ready_nodes_with_pod_cidrs(client: kube::Client) -> BTreeMap<String, String> {
    let nodes: Api<Node> = Api::all(client);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut cidrs = BTreeMap::new();
        if let Ok(list) = nodes.list(&Default::default()).await {
            for node in list.items.iter().filter(|n| is_ready(n)) {
                let cidr = node.spec.as_ref().and_then(|s| s.pod_cidr.clone());
                if let (Some(name), Some(cidr)) = (node.metadata.name.clone(), cidr) {
                    cidrs.insert(name, cidr);
                }
            }
        }
        if NODES.iter().all(|(name, _)| cidrs.contains_key(*name)) {
            return cidrs;
        }
        assert!(
            Instant::now() < deadline,
            "the lab Nodes did not all become Ready with a pod CIDR: {cidrs:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `10.244.1.0/24` -> `10.244.1.1`, the node's Pod gateway.
fn gateway(pod_cidr: &str) -> String {
    let network = pod_cidr.split('/').next().unwrap();
    let mut octets: Vec<u8> = network.split('.').map(|o| o.parse().unwrap()).collect();
    octets[3] += 1;
    octets
        .iter()
        .map(u8::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// Polls `check` (a description of what is still wrong, or None) until it
/// is satisfied; panics with the last description after `secs` seconds.
fn until_nothing_wrong(secs: u64, mut check: impl FnMut() -> Option<String>) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let Some(problem) = check() else { return };
        assert!(Instant::now() < deadline, "{problem}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_get_a_bridge_and_host_gw_routes_to_each_other() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the pod network test builds network namespaces and must run as root"
    );
    ensure_built(&["apiserver", "controller", "nodeagent", "e2e"]);
    let tmp = tempfile::tempdir().unwrap();
    let lab = Lab::up(LabOptions {
        workers: 2,
        dir: tmp.path().join("lab"),
        bin_dir: bin_dir(),
    })
    .expect("lab up");
    let client = lab.client().await.unwrap();

    let cidrs = ready_nodes_with_pod_cidrs(client).await;
    let distinct: std::collections::BTreeSet<&String> = cidrs.values().collect();
    assert_eq!(distinct.len(), 3, "pod CIDRs must differ: {cidrs:?}");

    for (node, _) in NODES {
        let gw = format!("{}/24", gateway(&cidrs[node]));
        until_nothing_wrong(30, || {
            let out = Command::new("ip")
                .args(["-n", node, "-4", "addr", "show", "cni0"])
                .output()
                .unwrap();
            let addr = String::from_utf8_lossy(&out.stdout);
            (!addr.contains(&format!("inet {gw} "))).then(|| {
                format!(
                    "{node}: cni0 should hold {gw}: {addr}{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
        });
        until_nothing_wrong(30, || {
            let routes = ip(&["-n", node, "route"]);
            let missing: Vec<String> = NODES
                .iter()
                .filter(|(other, _)| *other != node)
                .map(|(other, other_ip)| format!("{} via {other_ip} ", cidrs[*other]))
                .filter(|want| !routes.contains(want.as_str()))
                .collect();
            let service = routes.contains("10.96.0.0/12 dev cni0");
            (!missing.is_empty() || !service).then(|| {
                format!("{node}: missing {missing:?} (service route: {service}) in\n{routes}")
            })
        });
        assert_eq!(
            ip(&["-n", node, "route", "show", "default"]),
            "",
            "{node} must have no default route"
        );
    }

    // worker1 -> worker2's Pod gateway: routed over the LAN by host-gw.
    let target = gateway(&cidrs["kl-worker2"]);
    let ping = in_node("kl-worker1", &["ping", "-c1", "-W2", &target]);
    assert!(
        ping.status.success(),
        "kl-worker1 -> {target} (kl-worker2's cni0): {ping:?}"
    );

    // A restarted agent finds its network in place and keeps it.
    let agent = lab.pid("nodeagent-kl-worker1").expect("kl-worker1's agent");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(agent), None);
    e2e::lab::up(&lab.options).expect("lab up restarts the agent");
    assert_ne!(lab.pid("nodeagent-kl-worker1"), Some(agent), "restarted");
    let routes = ip(&["-n", "kl-worker1", "route"]);
    assert!(
        routes.contains(&format!("{} via 192.168.56.12 ", cidrs["kl-worker2"])),
        "{routes}"
    );
    lab.down().expect("lab down");
}
