//! These tests program real tables, in network namespaces they create
//! (`ip netns add`), and need root.
use super::*;
use crate::proxy::nftables::Script;
use std::process::Command;

/// A network namespace for one test, deleted when dropped.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("klnl{}-{tag}", std::process::id());
        let status = Command::new("ip").args(["netns", "add", &name]).status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "ip netns add {name} (root?)"
        );
        Netns(name)
    }

    fn nft(&self, args: &[&str], stdin: Option<&str>) -> String {
        use std::io::Write as _;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.0, "nft"])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("nft");
        let mut input = child.stdin.take().unwrap();
        input
            .write_all(stdin.unwrap_or_default().as_bytes())
            .unwrap();
        drop(input);
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "nft {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// One of everything the proxy writes: the skeleton, every kind of
/// shared chain, every kind of element.
fn everything(tx: &mut impl Transaction) {
    use crate::proxy::rules::{self, SharedChain};
    let node = crate::proxy::rules::NodeContext {
        node_name: "node1".into(),
        cluster_cidr: "10.244.0.0/16".parse().unwrap(),
        service_cidr: "10.96.0.0/12".parse().unwrap(),
        node_labels: Default::default(),
    };
    let ip = |s: &str| s.parse().unwrap();
    tx.add_table();
    tx.delete_table();
    tx.add_table();
    rules::write_ruleset(tx, &rules::base_ruleset(&node));
    for chain in [
        SharedChain::Pick(2),
        SharedChain::NodePortPick(1),
        SharedChain::NodePortLocal { local: 1, all: 3 },
        SharedChain::NodePortLocal { local: 0, all: 2 },
        SharedChain::Remember(60),
    ] {
        rules::write_ruleset(tx, &chain.ruleset(&node));
    }
    rules::write_rules(
        tx,
        &rules::dispatch(&[
            SharedChain::Pick(2),
            SharedChain::NodePortPick(1),
            SharedChain::NodePortLocal { local: 1, all: 3 },
            SharedChain::NodePortLocal { local: 0, all: 2 },
        ]),
    );
    // kube-proxy's shape, the scale benchmark's reference.
    tx.add_chain("service-X", None, "a Service, kube-proxy's way");
    tx.add_chain("endpoint-A", None, "an endpoint, kube-proxy's way");
    tx.add_rule(
        "service-X",
        &Rule::new(
            vec![
                Stmt::NumgenIsZero { modulus: 2 },
                Stmt::Verdict(Verdict::Goto("endpoint-A".into())),
            ],
            "1 in 2",
        ),
    );
    tx.add_rule(
        "endpoint-A",
        &Rule::new(
            vec![Stmt::L4Proto(Proto::Udp), Stmt::Dnat(ip("10.244.1.5"), 53)],
            "dnat",
        ),
    );
    let goto = |c: &str| Value::Verdict(Verdict::Goto(c.into()));
    let a = ip("10.96.0.50");
    tx.add_element(
        "services-with-2-endpoints",
        &Key::ClusterIpPort(a, Proto::Tcp, 80),
        None,
        "default/ngx-svc:80",
    );
    tx.add_element(
        rules::NO_ENDPOINT_SERVICES_MAP,
        &Key::ClusterIpPort(ip("10.96.0.60"), Proto::Udp, 53),
        Some(&Value::Verdict(Verdict::Drop)),
        "dns",
    );
    tx.add_element(
        "nodeports-with-1-endpoint",
        &Key::NodePort(Proto::Tcp, 30080),
        None,
        "nodeport",
    );
    for bucket in 0..2 {
        tx.add_element(
            rules::SERVICE_ENDPOINTS_MAP,
            &Key::ClusterIpBucket(a, Proto::Tcp, 80, bucket),
            Some(&Value::Endpoint(
                ip(&format!("10.244.1.{}", bucket + 5)),
                8080,
            )),
            "default/ngx-svc:80 -> ngx-dep-66fffb58f7-xlxwp 10.244.1.5:8080",
        );
    }
    tx.add_element(
        rules::NODEPORT_ENDPOINTS_MAP,
        &Key::NodePortBucket(Proto::Udp, 30053, 7),
        Some(&Value::Endpoint(ip("10.244.2.7"), 53)),
        "dns",
    );
    tx.add_element(
        rules::HAIRPIN_SET,
        &Key::AddressPair(ip("10.244.1.5"), ip("10.244.1.5")),
        None,
        "ngx-dep-66fffb58f7-xlxwp: hairpin",
    );
    tx.add_element(
        rules::AFFINITY_SERVICES_MAP,
        &Key::ClusterIpPort(a, Proto::Tcp, 80),
        Some(&goto("remember-client-60s")),
        "default/ngx-svc:80",
    );
    tx.add_element(
        rules::AFFINITY_NODEPORTS_MAP,
        &Key::NodePort(Proto::Tcp, 30080),
        Some(&goto("remember-client-60s")),
        "default/ngx-svc:80",
    );
    tx.add_element(
        rules::CLUSTER_IPS_SET,
        &Key::Address(a),
        None,
        "default/ngx-svc",
    );
}

#[test]
fn netlink_writes_what_nft_writes() {
    let by_nft = Netns::new("nft");
    let by_netlink = Netns::new("nl");
    let mut script = Script::default();
    everything(&mut script);
    by_nft.nft(&["-f", "-"], Some(&script.text));
    let mut batch = Batch::new();
    everything(&mut batch);
    assert_eq!(batch.len(), script.len());
    let socket = Socket::open(Some(&by_netlink.0)).unwrap();
    socket.commit(batch).unwrap();
    let list = ["list", "table", "ip", TABLE];
    let expected = by_nft.nft(&list, None);
    assert_eq!(by_netlink.nft(&list, None), expected);
    // The same again, field by field: the expressions as the kernel
    // holds them. (Sorted: a hash set lists its elements in an order
    // of its own.)
    let debug = ["--debug=netlink", "list", "table", "ip", TABLE];
    let sorted = |text: String| {
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        lines.sort();
        lines
    };
    assert_eq!(
        sorted(by_netlink.nft(&debug, None)),
        sorted(by_nft.nft(&debug, None))
    );
    assert_eq!(socket.rule_count("services").unwrap(), 2);
    let mut sets = socket.set_names().unwrap();
    sets.sort();
    assert!(
        sets.iter()
            .any(|s| s == "nodeports-with-1-local-of-3-endpoints"),
        "{sets:?}"
    );
    // Elements read back: key, value, comment.
    use crate::proxy::rules;
    let read = |set: &str, ty| socket.elements(set, ty).unwrap();
    let a: std::net::Ipv4Addr = "10.96.0.50".parse().unwrap();
    assert_eq!(
        read("services-with-2-endpoints", SetType::ClusterIpPorts),
        [DumpedElement {
            key: Key::ClusterIpPort(a, Proto::Tcp, 80),
            value: None,
            comment: "default/ngx-svc:80".into(),
        }]
    );
    let mut buckets = read(rules::SERVICE_ENDPOINTS_MAP, SetType::ClusterIpEndpoints);
    buckets.sort_by(|x, y| x.key.cmp(&y.key));
    assert_eq!(buckets.len(), 2);
    assert_eq!(buckets[1].key, Key::ClusterIpBucket(a, Proto::Tcp, 80, 1));
    assert_eq!(
        buckets[1].value,
        Some(Value::Endpoint("10.244.1.6".parse().unwrap(), 8080))
    );
    assert_eq!(
        read(rules::NODEPORT_ENDPOINTS_MAP, SetType::NodePortEndpoints)[0].key,
        Key::NodePortBucket(Proto::Udp, 30053, 7)
    );
    assert_eq!(
        read(rules::NO_ENDPOINT_SERVICES_MAP, SetType::ClusterIpPortVmap)[0].value,
        Some(Value::Verdict(Verdict::Drop))
    );
    assert_eq!(
        read(rules::HAIRPIN_SET, SetType::AddressPairs)[0].comment,
        "ngx-dep-66fffb58f7-xlxwp: hairpin"
    );
    assert!(read("no-such-set", SetType::Addresses).is_empty());
    // Remembered clients, read back; destroying one that is not (or no
    // longer) there is no error.
    let client = Key::Client(
        "10.244.1.3".parse().unwrap(),
        "10.96.0.50".parse().unwrap(),
        Proto::Tcp,
        80,
    );
    let endpoint = Value::Endpoint("10.244.1.5".parse().unwrap(), 8080);
    let mut batch = Batch::new();
    batch.add_element(
        crate::proxy::rules::AFFINITY_CLIENTS_MAP,
        &client,
        Some(&endpoint),
        "",
    );
    socket.commit(batch).unwrap();
    assert_eq!(
        socket
            .map_entries(crate::proxy::rules::AFFINITY_CLIENTS_MAP)
            .unwrap(),
        [(client.clone(), endpoint)]
    );
    for _ in 0..2 {
        let mut batch = Batch::new();
        batch.destroy_element(crate::proxy::rules::AFFINITY_CLIENTS_MAP, &client);
        socket.commit(batch).unwrap();
    }
    assert!(socket
        .map_entries(crate::proxy::rules::AFFINITY_CLIENTS_MAP)
        .unwrap()
        .is_empty());
    assert_eq!(socket.rule_count("nonexistent").unwrap(), 0);
    by_netlink.nft(&["flush", "table", "ip", TABLE], None);
    assert_eq!(socket.rule_count("services").unwrap(), 0);
}

#[test]
fn a_failed_transaction_changes_nothing_and_says_why() {
    let ns = Netns::new("fail");
    let socket = Socket::open(Some(&ns.0)).unwrap();
    let node = crate::proxy::rules::NodeContext {
        node_name: "node1".into(),
        cluster_cidr: "10.244.0.0/16".parse().unwrap(),
        service_cidr: "10.96.0.0/12".parse().unwrap(),
        node_labels: Default::default(),
    };
    let mut batch = Batch::new();
    crate::proxy::sync::replace_table(&mut batch);
    crate::proxy::rules::write_ruleset(&mut batch, &crate::proxy::rules::base_ruleset(&node));
    socket.commit(batch).expect("the base table applies");
    let list = ["list", "table", "ip", TABLE];
    let before = ns.nft(&list, None);
    let mut batch = Batch::new();
    batch.add_chain("b", None, "b");
    batch.add_rule(
        "b",
        &Rule::new(vec![Stmt::Verdict(Verdict::Jump("missing".into()))], "bad"),
    );
    let error = socket.commit(batch).unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("add rule to chain b") && text.contains("nothing changed"),
        "{text}"
    );
    assert!(
        matches!(
            error,
            NetlinkError::Rejected {
                errno: Errno::ENOENT,
                ..
            }
        ),
        "{text}"
    );
    // Chain b was in the same transaction: nothing of it is there.
    assert_eq!(ns.nft(&list, None), before);
    // A big transaction where everything fails still names the first
    // failure (the answers are short enough to fit the socket).
    let mut batch = Batch::new();
    for i in 0..20_000 {
        batch.add_rule(
            "services",
            &Rule::new(
                vec![Stmt::Verdict(Verdict::Jump(format!("missing-{i}")))],
                "bad",
            ),
        );
    }
    let error = socket.commit(batch).unwrap_err();
    assert!(
        matches!(
            error,
            NetlinkError::Rejected {
                errno: Errno::ENOENT,
                commands: 20_000,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(ns.nft(&list, None), before);
}
