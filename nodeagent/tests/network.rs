//! The pod network against the real kernel (run as root).
//!
//! Each test first creates a network namespace that plays "the node"
//! (`kl-nettest-<pid>-<test>`) and runs the code under test inside it with
//! [`netns::run_in_blocking`], so the host's own network is never touched.
//! Pod namespaces, which containerd makes on a real node, are made by the
//! test (`kl-nettest-<pid>-<test>-pod-<name>`); the Pod's side of the
//! network in them is the CNI plugin's code ([`veth`]). Traffic (ping)
//! only flows between namespaces the test created. A [`TestNode`] guard
//! removes the node namespace and every Pod namespace of the test, also
//! when a test panics.

use std::net::Ipv4Addr;
use std::process::Command;

use ipnet::Ipv4Net;
use nodeagent::network::{
    netns, pod_hash, veth, BridgeNetfilter, NodeRoute, PodInterface, PodNetwork, RouteSync,
};

/// The node of one test: its namespace, and cleanup on drop.
struct TestNode {
    netns: String,
}

impl TestNode {
    fn create(test: &str) -> TestNode {
        assert!(
            nix::unistd::Uid::effective().is_root(),
            "the network tests need root (namespaces, links, routes)"
        );
        let pid = std::process::id();
        let node = TestNode {
            netns: format!("kl-nettest-{pid}-{test}"),
        };
        netns::create(&node.netns).expect("creating the test node namespace");
        // The node's own loopback, as on a real machine.
        node.ip(&["link", "set", "lo", "up"]);
        node
    }

    /// Runs `ip ARGS` inside the node namespace and returns stdout; panics on
    /// failure.
    fn ip(&self, args: &[&str]) -> String {
        run_in_netns(&self.netns, "ip", args).unwrap_or_else(|error| panic!("{error}"))
    }

    /// Runs `work` with a [`PodNetwork`] inside the node namespace.
    fn run<F, Fut, T>(&self, work: F) -> T
    where
        F: FnOnce(PodNetwork) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = T>,
        T: Send + 'static,
    {
        netns::run_in_blocking(&self.netns, move |handle| work(PodNetwork::new(handle)))
            .expect("running inside the test node namespace")
    }

    fn pod_prefix(&self) -> String {
        format!("{}-pod-", self.netns)
    }

    /// A Pod's namespace, made as containerd makes one, and the interface
    /// the CNI plugin would give it.
    fn pod(&self, name: &str, ip: &str) -> PodInterface {
        let key = format!("{name}/eth0");
        PodInterface {
            netns: netns::create(&format!("{}{name}", self.pod_prefix())).expect("a Pod netns"),
            ifname: "eth0".to_string(),
            host_veth: veth::host_veth_name(&pod_hash(&key)),
            ip: net(ip),
            gateway: GATEWAY,
        }
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        // Independent of the code under test: plain `ip netns delete`.
        let prefix = self.pod_prefix();
        let mut leftovers: Vec<String> = std::fs::read_dir(netns::NETNS_RUN_DIR)
            .map(|entries| {
                entries
                    .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
                    .filter(|name| name.starts_with(&prefix))
                    .collect()
            })
            .unwrap_or_default();
        leftovers.push(self.netns.clone());
        for name in leftovers {
            let _ = Command::new("ip").args(["netns", "delete", &name]).output();
            let _ = std::fs::remove_file(netns::path(&name));
        }
    }
}

/// `ip netns exec NETNS PROGRAM ARGS`, stdout on success.
fn run_in_netns(netns: &str, program: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new("ip")
        .args(["netns", "exec", netns, program])
        .args(args)
        .output()
        .map_err(|error| format!("running ip netns exec {netns} {program}: {error}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "ip netns exec {netns} {program} {args:?} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// One ping from `netns` to `target`: at most three tries of one second,
/// the first one may wait for ARP.
fn ping(netns: &str, target: &str) -> Result<(), String> {
    let mut last_error = String::new();
    for _ in 0..3 {
        match run_in_netns(netns, "ping", &["-c1", "-W1", target]) {
            Ok(_) => return Ok(()),
            Err(error) => last_error = error,
        }
    }
    Err(last_error)
}

/// The name under /run/netns of a Pod's namespace.
fn name_of(pod: &PodInterface) -> String {
    pod.netns
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn net(text: &str) -> Ipv4Net {
    text.parse().unwrap()
}

fn ipv4_addresses(netns: &str, link: &str) -> Vec<String> {
    run_in_netns(netns, "ip", &["-o", "-4", "addr", "show", "dev", link])
        .unwrap_or_else(|error| panic!("{error}"))
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|word| *word == "inet")?;
            words.next().map(str::to_string)
        })
        .collect()
}

const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 1);

#[test]
fn namespaces_are_created_listed_entered_and_deleted_like_ip_netns() {
    let node = TestNode::create("ns");
    let name = format!("{}probe", node.pod_prefix());
    let path = netns::create(&name).expect("create");
    assert_eq!(
        netns::create(&name).expect("create again"),
        path,
        "create is idempotent"
    );
    assert!(netns::exists(&name));
    let listed = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains(&name),
        "`ip netns list` shows the namespace"
    );

    // Inside, netlink sees a fresh stack: only `lo`.
    let links = netns::run_in_blocking(&name, |handle| async move {
        use futures::TryStreamExt;
        let links: Vec<_> = handle.link().get().execute().try_collect().await.unwrap();
        links.len()
    })
    .expect("run_in");
    assert_eq!(links, 1, "a new namespace has only lo");

    netns::delete(&name).expect("delete");
    assert!(!netns::exists(&name));
    assert!(!netns::path(&name).exists());
    netns::delete(&name).expect("deleting a missing namespace is fine");
    assert!(netns::create("a/b").is_err(), "names are file names");
}

#[test]
fn pods_on_the_bridge_reach_each_other_and_the_gateway() {
    let node = TestNode::create("pods");
    let (pod_a, pod_b) = (
        node.pod("a", "10.244.1.2/24"),
        node.pod("b", "10.244.1.3/24"),
    );
    let (a, b) = (pod_a.clone(), pod_b.clone());
    let status = node.run(|network| async move {
        let status = network
            .ensure_bridge(net("10.244.1.1/24"))
            .await
            .expect("ensure_bridge");
        let again = network
            .ensure_bridge(net("10.244.1.1/24"))
            .await
            .expect("ensure_bridge again");
        assert_eq!(status, again, "ensure_bridge is idempotent");
        let bridge = network.bridge_index().await.expect("cni0");
        for pod in [&a, &b, &a] {
            // The third: setting up twice changes nothing.
            veth::setup_pod_interface(network.handle(), bridge, pod)
                .await
                .expect("setup");
        }
        status
    });

    // The bridge: address, up, sysctls of the node namespace.
    assert_eq!(ipv4_addresses(&node.netns, "cni0"), ["10.244.1.1/24"]);
    let bridge = node.ip(&["-o", "link", "show", "cni0"]);
    assert!(
        bridge.contains(",UP") || bridge.contains("<UP"),
        "cni0 is up: {bridge}"
    );
    assert_eq!(
        run_in_netns(&node.netns, "cat", &["/proc/sys/net/ipv4/ip_forward"])
            .unwrap()
            .trim(),
        "1"
    );
    assert!(
        matches!(
            status.bridge_netfilter,
            BridgeNetfilter::Enabled | BridgeNetfilter::EnabledAfterModprobe
        ),
        "bridge netfilter: {:?}",
        status.bridge_netfilter
    );
    assert_eq!(
        run_in_netns(
            &node.netns,
            "cat",
            &["/proc/sys/net/bridge/bridge-nf-call-iptables"]
        )
        .unwrap()
        .trim(),
        "1"
    );

    // Each Pod: eth0 with its IP (exactly one, also after the second
    // setup), lo up, default route via the gateway; host veth on cni0 with
    // hairpin on.
    for (pod, ip) in [(&pod_a, "10.244.1.2/24"), (&pod_b, "10.244.1.3/24")] {
        assert!(
            netns::exists(&name_of(pod)),
            "{} exists",
            pod.netns.display()
        );
        assert_eq!(ipv4_addresses(&name_of(pod), "eth0"), [ip]);
        let lo = run_in_netns(&name_of(pod), "ip", &["-o", "link", "show", "lo"]).unwrap();
        assert!(lo.contains(",UP"), "lo is up in the Pod: {lo}");
        let default = run_in_netns(&name_of(pod), "ip", &["route", "show", "default"]).unwrap();
        assert!(
            default.contains("via 10.244.1.1 dev eth0"),
            "default route: {default}"
        );
        let host = node.ip(&["-o", "link", "show", &pod.host_veth]);
        assert!(
            host.contains("master cni0"),
            "{} is a port of cni0: {host}",
            pod.host_veth
        );
        let hairpin = run_in_netns(
            &node.netns,
            "cat",
            &[&format!(
                "/sys/class/net/{}/brport/hairpin_mode",
                pod.host_veth
            )],
        )
        .unwrap();
        assert_eq!(hairpin.trim(), "1", "hairpin mode on {}", pod.host_veth);
    }

    ping(&name_of(&pod_a), "10.244.1.3").expect("pod A reaches pod B");
    ping(&name_of(&pod_a), "10.244.1.1").expect("pod A reaches the gateway");
    ping(&name_of(&pod_b), "10.244.1.2").expect("pod B reaches pod A");

    // Removal takes the veth pair and leaves the namespace (containerd's),
    // and is idempotent.
    let a = pod_a.clone();
    node.run(|network| async move {
        veth::remove_pod_interface(network.handle(), &a)
            .await
            .expect("remove A");
        veth::remove_pod_interface(network.handle(), &a)
            .await
            .expect("remove A twice");
    });
    assert!(netns::exists(&name_of(&pod_a)), "the namespace is not ours");
    let links = node.ip(&["-o", "link", "show"]);
    assert!(
        !links.contains(&pod_a.host_veth),
        "pod A's veth is gone: {links}"
    );
    assert!(links.contains(&pod_b.host_veth), "pod B's veth stays");

    // With the host end gone first (a crash), the Pod end is removed from
    // inside the namespace.
    node.ip(&["link", "del", &pod_b.host_veth]);
    let b = pod_b.clone();
    node.run(|network| async move {
        veth::remove_pod_interface(network.handle(), &b)
            .await
            .expect("remove B")
    });
    assert!(run_in_netns(&name_of(&pod_b), "ip", &["link", "show", "eth0"]).is_err());
}

#[test]
fn setup_repairs_a_half_made_pod_network() {
    let node = TestNode::create("repair");
    let pod = node.pod("r", "10.244.1.5/24");
    let setup = |node: &TestNode, pod: &PodInterface| {
        let pod = pod.clone();
        node.run(|network| async move {
            network
                .ensure_bridge(net("10.244.1.1/24"))
                .await
                .expect("ensure_bridge");
            let bridge = network.bridge_index().await.expect("cni0");
            veth::setup_pod_interface(network.handle(), bridge, &pod)
                .await
                .expect("setup")
        })
    };
    setup(&node, &pod);
    // Simulate a crash that lost the Pod end: delete eth0 inside the Pod
    // (which removes the host end too) and recreate only a host-side link
    // with the veth name, as if the move had not happened yet.
    run_in_netns(&name_of(&pod), "ip", &["link", "del", "eth0"]).unwrap();
    node.ip(&[
        "link",
        "add",
        &pod.host_veth,
        "type",
        "veth",
        "peer",
        "name",
        "kltmppeer",
    ]);
    setup(&node, &pod);
    assert_eq!(ipv4_addresses(&name_of(&pod), "eth0"), ["10.244.1.5/24"]);
    ping(&name_of(&pod), "10.244.1.1").expect("the repaired Pod reaches its gateway");
    assert!(
        !node.ip(&["-o", "link", "show"]).contains("kltmppeer"),
        "the stale pair was removed"
    );
}

#[test]
fn route_sync_adds_replaces_and_removes_host_gw_routes() {
    let node = TestNode::create("routes");
    // The node's LAN interface, so that other node IPs are reachable next
    // hops: one end of a veth pair whose other end stays unused in the node.
    node.ip(&[
        "link", "add", "eth1", "type", "veth", "peer", "name", "eth1-lan",
    ]);
    node.ip(&["addr", "add", "192.168.56.11/24", "dev", "eth1"]);
    node.ip(&["link", "set", "eth1-lan", "up"]);
    node.ip(&["link", "set", "eth1", "up"]);
    // A stale host-gw route from a deleted node, and a route outside the Pod
    // range that sync must leave alone.
    node.ip(&["route", "add", "10.244.9.0/24", "via", "192.168.56.19"]);
    node.ip(&["route", "add", "10.50.0.0/16", "via", "192.168.56.14"]);

    let cluster = net("10.244.0.0/16");
    let route = |cidr: &str, ip: [u8; 4]| NodeRoute {
        pod_cidr: net(cidr),
        node_ip: Ipv4Addr::from(ip),
    };
    let first = vec![
        route("10.244.2.0/24", [192, 168, 56, 12]),
        route("10.244.3.0/24", [192, 168, 56, 13]),
    ];
    let second = vec![route("10.244.2.0/24", [192, 168, 56, 22])];
    let (sync1, sync1_again, sync2) = node.run(move |network| async move {
        network
            .ensure_bridge(net("10.244.1.1/24"))
            .await
            .expect("ensure_bridge");
        let sync1 = network.sync_routes(cluster, &first).await.expect("sync 1");
        let sync1_again = network
            .sync_routes(cluster, &first)
            .await
            .expect("sync 1 again");
        let sync2 = network.sync_routes(cluster, &second).await.expect("sync 2");
        network
            .ensure_service_route(net("10.96.0.0/12"))
            .await
            .expect("service route");
        network
            .ensure_service_route(net("10.96.0.0/12"))
            .await
            .expect("service route again");
        (sync1, sync1_again, sync2)
    });
    assert_eq!(
        sync1,
        RouteSync {
            added: vec![net("10.244.2.0/24"), net("10.244.3.0/24")],
            replaced: vec![],
            removed: vec![net("10.244.9.0/24")],
        }
    );
    assert!(
        sync1_again.is_unchanged(),
        "a second sync changes nothing: {sync1_again:?}"
    );
    assert_eq!(
        sync2,
        RouteSync {
            added: vec![],
            replaced: vec![net("10.244.2.0/24")],
            removed: vec![net("10.244.3.0/24")],
        }
    );

    let routes = node.ip(&["-4", "route", "show"]);
    assert!(
        routes.contains("10.244.2.0/24 via 192.168.56.22 dev eth1"),
        "{routes}"
    );
    assert!(!routes.contains("10.244.3.0/24"), "{routes}");
    assert!(!routes.contains("10.244.9.0/24"), "{routes}");
    assert!(
        routes.contains("10.50.0.0/16 via 192.168.56.14"),
        "unrelated route kept: {routes}"
    );
    assert!(
        routes.contains("10.244.1.0/24 dev cni0"),
        "the local Pod subnet stays: {routes}"
    );
    assert!(
        routes.contains("10.96.0.0/12 dev cni0"),
        "service CIDR routed onto cni0: {routes}"
    );
    let lookup = node.ip(&["route", "get", "10.96.0.1"]);
    assert!(
        lookup.contains("dev cni0 src 10.244.1.1"),
        "a ClusterIP leaves via cni0 from the gateway address: {lookup}"
    );
}
