//! The service proxy against the real kernel and a real apiserver (run as
//! root).
//!
//! The test builds a small node out of network namespaces it creates
//! (names `klpx<pid>-...`), never touching the machine's own:
//!
//! ```text
//!   klpx-ext (192.168.200.2)  --veth--  klpx-node (192.168.200.1, br0 10.244.1.1/24)
//!                                          |-- klpx-a (10.244.1.2, echo "pod-a")
//!                                          |-- klpx-b (10.244.1.3, echo "pod-b")
//!                                          `-- klpx-c (10.244.1.4, the client)
//! ```
//!
//! The proxy runs in this test process (so it reaches the apiserver on the
//! machine's loopback) and programs `ip kube-lite` in the node namespace
//! (`ProxyConfig::netns`). The test writes Services and EndpointSlices
//! itself (no controller), then sends traffic only between its own
//! namespaces. Every namespace and process it made is removed when the
//! test ends, also on failure (the [`Lab`] guard).

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use e2e::harness::{bin_dir, ensure_built, ApiServer};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::Api;
use nodeagent::proxy::metrics::ProxyMetrics;
use nodeagent::proxy::ProxyConfig;
use serde_json::json;

/// The namespaces and processes of the test, removed on drop.
struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    servers: Vec<Child>,
}

impl Lab {
    fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    fn create() -> Lab {
        assert!(
            nix::unistd::Uid::effective().is_root(),
            "the proxy tests need root (namespaces, nftables)"
        );
        ensure_built(&["nodeagent", "kube-lite-echo"]);
        let mut lab = Lab {
            prefix: format!("klpx{}", std::process::id()),
            namespaces: vec![],
            servers: vec![],
        };
        for name in ["node", "a", "b", "c", "ext"] {
            let ns = lab.ns(name);
            sh(&format!("ip netns add {ns}"));
            lab.namespaces.push(ns.clone());
            sh(&format!("ip -n {ns} link set lo up"));
        }
        let node = lab.ns("node");
        sh(&format!(
            "ip -n {node} link add br0 type bridge && ip -n {node} addr add 10.244.1.1/24 dev br0 && ip -n {node} link set br0 up"
        ));
        // What the node agent's network part does on a real node: forward,
        // pass bridged packets through netfilter, route the service range.
        sh(&format!(
            "ip netns exec {node} sysctl -qw net.ipv4.ip_forward=1"
        ));
        sh(&format!(
            "ip netns exec {node} sysctl -qw net.bridge.bridge-nf-call-iptables=1"
        ));
        sh(&format!("ip -n {node} route add 10.96.0.0/12 dev br0"));
        for (i, pod) in ["a", "b", "c"].iter().enumerate() {
            let ns = lab.ns(pod);
            let ip = format!("10.244.1.{}", i + 2);
            sh(&format!(
                "ip -n {node} link add v{pod} type veth peer name eth0 netns {ns} && \
                 ip -n {node} link set v{pod} master br0 && ip -n {node} link set v{pod} type bridge_slave hairpin on && \
                 ip -n {node} link set v{pod} up && \
                 ip -n {ns} addr add {ip}/24 dev eth0 && ip -n {ns} link set eth0 up && \
                 ip -n {ns} route add default via 10.244.1.1"
            ));
        }
        let ext = lab.ns("ext");
        sh(&format!(
            "ip -n {node} link add vext type veth peer name eth1 netns {ext} && \
             ip -n {node} addr add 192.168.200.1/24 dev vext && ip -n {node} link set vext up && \
             ip -n {ext} addr add 192.168.200.2/24 dev eth1 && ip -n {ext} link set eth1 up"
        ));
        for pod in ["a", "b"] {
            let server = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &lab.ns(pod),
                    "unshare",
                    "--uts",
                    "sh",
                    "-c",
                ])
                .arg(format!(
                    "hostname pod-{pod} && exec {} --port 8080",
                    bin_dir().join("kube-lite-echo").display()
                ))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting an echo server");
            lab.servers.push(server);
        }
        lab
    }

    /// Runs `command` in namespace `ns`: (success, stdout).
    fn exec(&self, ns: &str, command: &str) -> (bool, String) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns(ns), "sh", "-c", command])
            .stderr(Stdio::null())
            .output()
            .expect("ip netns exec");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// One HTTP request from `ns`: the echo answer, or None.
    fn curl(&self, ns: &str, url: &str) -> Option<String> {
        let (ok, body) = self.exec(ns, &format!("curl -s --max-time 2 {url}"));
        ok.then_some(body)
    }

    /// curl's exit code for one request from `ns` (0 answered, 7 refused,
    /// 28 timed out after 2 s).
    fn curl_exit(&self, ns: &str, url: &str) -> i32 {
        let (_, out) = self.exec(
            ns,
            &format!("curl -s -o /dev/null --max-time 2 {url}; echo $?"),
        );
        out.trim().parse().expect("curl's exit code")
    }

    /// The `srv :` lines of `count` requests (bounded: 2 s each at most).
    fn servers_hit(&self, ns: &str, url: &str, count: usize) -> Vec<String> {
        (0..count)
            .filter_map(|_| self.curl(ns, url))
            .filter_map(|body| field(&body, "srv"))
            .collect()
    }

    fn nft(&self, args: &str) -> String {
        self.exec("node", &format!("nft {args}")).1
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for server in &mut self.servers {
            let _ = server.kill();
            let _ = server.wait();
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn sh(command: &str) {
    let status = Command::new("sh")
        .args(["-c", command])
        .status()
        .expect("sh");
    assert!(status.success(), "failed: {command}");
}

/// The value of a `name: value` line of an echo answer.
fn field(body: &str, name: &str) -> Option<String> {
    body.lines()
        .find(|l| l.split(':').next().map(str::trim) == Some(name))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

fn service(name: &str, spec: serde_json::Value) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }))
    .unwrap()
}

/// An EndpointSlice of Service `service`: `(ip, node, ready)` endpoints.
fn slice(
    service: &str,
    ports: serde_json::Value,
    endpoints: &[(&str, &str, bool)],
) -> EndpointSlice {
    serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {
            "name": format!("{service}-x"), "namespace": "default",
            "labels": {"kubernetes.io/service-name": service},
            "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": chrono::Utc::now().to_rfc3339()},
        },
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": endpoints.iter().map(|(ip, node, ready)| json!({
            "addresses": [ip], "nodeName": node,
            "conditions": {"ready": ready, "serving": ready, "terminating": false},
        })).collect::<Vec<_>>(),
    }))
    .unwrap()
}

fn http_port() -> serde_json::Value {
    json!([{"name": "", "protocol": "TCP", "port": 8080}])
}

async fn put_slice(api: &Api<EndpointSlice>, slice: &EndpointSlice) {
    let name = slice.metadata.name.clone().unwrap();
    // A merge patch replaces the lists; a new slice is created.
    let result = match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(slice))
        .await
    {
        Err(kube::Error::Api(status)) if status.code == 404 => {
            api.create(&PostParams::default(), slice).await
        }
        other => other,
    };
    result.unwrap_or_else(|e| panic!("writing EndpointSlice {name}: {e}"));
}

/// A part of the scenario that sends traffic (blocking: it runs commands).
type Step = Box<dyn FnOnce(&Lab, &ProxyMetrics) + Send>;

/// The harness's bounded wait, for a condition.
fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    e2e::harness::eventually(secs, what, || check().then_some(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_in_a_node_namespace() {
    let lab = Arc::new(Lab::create());
    let data = tempfile::tempdir().unwrap();
    let apiserver = ApiServer::start(data.path());
    let client = kube::Client::try_from(kube::Config::new(apiserver.url.parse().unwrap())).unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");

    // The lesson's ngx-svc (here on port 80 -> 8080), two endpoints.
    services
        .create(
            &PostParams::default(),
            &service(
                "ngx-svc",
                json!({
                    "clusterIP": "10.96.100.10",
                    "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}],
                }),
            ),
        )
        .await
        .unwrap();
    put_slice(
        &slices,
        &slice(
            "ngx-svc",
            http_port(),
            &[("10.244.1.2", "node1", true), ("10.244.1.3", "node1", true)],
        ),
    )
    .await;

    let metrics = Arc::new(ProxyMetrics::new());
    let mut config = ProxyConfig::new("node1", "192.168.200.1".parse().unwrap());
    let metrics_port = e2e::harness::free_port();
    config.metrics_addr = Some(([127, 0, 0, 1], metrics_port).into());
    config.resync_interval = Duration::from_secs(1);
    config.netns = Some(lab.ns("node"));
    // The caches the agent shares between the proxy and the DNS.
    let (informers, watch) = nodeagent::informer::ServiceInformers::new(client.clone());
    let caches = informers.subscribe();
    let watches = tokio::spawn(watch);
    let proxy = tokio::spawn(nodeagent::proxy::run(
        client.clone(),
        config,
        caches,
        metrics.clone(),
    ));

    let l = lab.clone();
    let m = metrics.clone();
    let blocking = move |f: Step| {
        let l = l.clone();
        let m = m.clone();
        tokio::task::spawn_blocking(move || f(&l, &m))
    };

    // ClusterIP from a Pod and from the node: both endpoints answer.
    blocking(Box::new(|lab, _| {
        eventually(20, "ngx-svc to answer", || {
            lab.curl("c", "10.96.100.10").is_some()
        });
        let from_pod: BTreeSet<String> = lab
            .servers_hit("c", "10.96.100.10", 30)
            .into_iter()
            .collect();
        assert_eq!(
            from_pod,
            BTreeSet::from(["10.244.1.2:8080".into(), "10.244.1.3:8080".into()])
        );
        let from_node: BTreeSet<String> = lab
            .servers_hit("node", "10.96.100.10", 30)
            .into_iter()
            .collect();
        assert_eq!(from_node.len(), 2, "{from_node:?}");
        // Hairpin: pod-a through its own Service, landing on itself too.
        let hairpin = lab.servers_hit("a", "10.96.100.10", 30);
        assert_eq!(hairpin.len(), 30, "every hairpin request answered");
        assert!(
            hairpin.contains(&"10.244.1.2:8080".to_string()),
            "{hairpin:?}"
        );
        // An unknown port of a ClusterIP is refused at once: curl's exit
        // code 7 (connection refused), not 28 (its 2 s timeout).
        assert_eq!(lab.curl_exit("c", "10.96.100.10:81"), 7);
        // ping gets no answer: the IP is virtual.
        assert!(!lab.exec("c", "ping -c 1 -W 1 10.96.100.10").0);
        // The table reads like the lesson.
        let table = lab.nft("list table ip kube-lite");
        assert!(
            table.contains("comment \"default/ngx-svc:80 -> 10.244.1.2:8080\""),
            "{table}"
        );
        assert!(table.contains("chain pick-1-of-2"), "{table}");
    }))
    .await
    .unwrap();

    // A Service without endpoints rejects at once.
    services
        .create(
            &PostParams::default(),
            &service(
                "empty",
                json!({
                    "clusterIP": "10.96.100.11",
                    "ports": [{"port": 80, "targetPort": 8080}],
                }),
            ),
        )
        .await
        .unwrap();
    blocking(Box::new(|lab, _| {
        eventually(10, "empty's reject rule", || {
            lab.nft("list map ip kube-lite no-endpoint-services")
                .contains("10.96.100.11")
        });
        for from in ["c", "node"] {
            // Refused (exit code 7), not left to curl's 2 s timeout (28).
            assert_eq!(lab.curl_exit(from, "10.96.100.11"), 7, "from {from}");
        }
    }))
    .await
    .unwrap();

    // NodePort from another machine (ext): masqueraded, both endpoints.
    services
        .create(
            &PostParams::default(),
            &service(
                "ngx-np",
                json!({
                    "type": "NodePort", "clusterIP": "10.96.100.12",
                    "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080}],
                }),
            ),
        )
        .await
        .unwrap();
    put_slice(
        &slices,
        &slice(
            "ngx-np",
            http_port(),
            &[("10.244.1.2", "node1", true), ("10.244.1.3", "node1", true)],
        ),
    )
    .await;
    // externalTrafficPolicy Local: one endpoint here, one on another node.
    services
        .create(&PostParams::default(), &service("ngx-local", json!({
            "type": "NodePort", "clusterIP": "10.96.100.13", "externalTrafficPolicy": "Local",
            "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30081}],
        })))
        .await
        .unwrap();
    put_slice(
        &slices,
        &slice(
            "ngx-local",
            http_port(),
            &[("10.244.1.3", "node1", true), ("10.244.2.9", "node2", true)],
        ),
    )
    .await;
    // ClientIP affinity.
    services
        .create(
            &PostParams::default(),
            &service(
                "sticky",
                json!({
                    "clusterIP": "10.96.100.14", "sessionAffinity": "ClientIP",
                    "ports": [{"port": 80, "targetPort": 8080}],
                }),
            ),
        )
        .await
        .unwrap();
    put_slice(
        &slices,
        &slice(
            "sticky",
            http_port(),
            &[("10.244.1.2", "node1", true), ("10.244.1.3", "node1", true)],
        ),
    )
    .await;
    blocking(Box::new(|lab, _| {
        eventually(10, "the NodePort", || {
            lab.curl("ext", "192.168.200.1:30080").is_some()
        });
        let mut seen = BTreeSet::new();
        for _ in 0..30 {
            let body = lab
                .curl("ext", "192.168.200.1:30080")
                .expect("NodePort answer");
            seen.insert(field(&body, "srv").unwrap());
            let client = field(&body, "client").unwrap();
            assert!(
                client.starts_with("10.244.1.1:"),
                "NodePort traffic is masqueraded: {client}"
            );
        }
        assert_eq!(seen.len(), 2, "{seen:?}");
        eventually(10, "the ETP Local NodePort", || {
            lab.curl("ext", "192.168.200.1:30081").is_some()
        });
        for _ in 0..10 {
            let body = lab
                .curl("ext", "192.168.200.1:30081")
                .expect("ETP Local answer");
            assert_eq!(field(&body, "srv").unwrap(), "10.244.1.3:8080");
            let client = field(&body, "client").unwrap();
            assert!(
                client.starts_with("192.168.200.2:"),
                "client IP preserved: {client}"
            );
        }
        eventually(10, "sticky", || lab.curl("c", "10.96.100.14").is_some());
        let sticky: BTreeSet<String> = lab
            .servers_hit("c", "10.96.100.14", 20)
            .into_iter()
            .collect();
        assert_eq!(sticky.len(), 1, "ClientIP affinity: {sticky:?}");
    }))
    .await
    .unwrap();

    // UDP, and the stale conntrack entry of an endpoint that went away.
    services
        .create(
            &PostParams::default(),
            &service(
                "udp",
                json!({
                    "clusterIP": "10.96.100.15",
                    "ports": [{"name": "dns", "port": 53, "targetPort": 8080, "protocol": "UDP"}],
                }),
            ),
        )
        .await
        .unwrap();
    let udp_ports = json!([{"name": "dns", "protocol": "UDP", "port": 8080}]);
    put_slice(
        &slices,
        &slice("udp", udp_ports.clone(), &[("10.244.1.2", "node1", true)]),
    )
    .await;
    // From one fixed source port, as a resolver would.
    let udp = "python3 -c \"import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); \
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('0.0.0.0', 40000)); s.settimeout(1); \
s.sendto(b'hi', ('10.96.100.15', 53)); print(s.recvfrom(4096)[0].decode())\"";
    let udp_host = move |lab: &Lab| {
        let (_, out) = lab.exec("c", udp);
        field(&out, "host")
    };
    blocking(Box::new(move |lab, _| {
        eventually(10, "the UDP Service", || {
            udp_host(lab).as_deref() == Some("pod-a")
        });
    }))
    .await
    .unwrap();
    put_slice(
        &slices,
        &slice("udp", udp_ports, &[("10.244.1.3", "node1", true)]),
    )
    .await;
    blocking(Box::new(move |lab, _| {
        // Without the conntrack cleanup this source port would stay on
        // pod-a (gone) forever.
        eventually(10, "UDP to move to pod-b", || {
            udp_host(lab).as_deref() == Some("pod-b")
        });
    }))
    .await
    .unwrap();

    // Fifty other Services, then one endpoint change: a small transaction.
    for i in 0..50 {
        let name = format!("other{i}");
        services
            .create(
                &PostParams::default(),
                &service(
                    &name,
                    json!({
                        "clusterIP": format!("10.96.101.{}", i + 1),
                        "ports": [{"port": 80, "targetPort": 8080}],
                    }),
                ),
            )
            .await
            .unwrap();
        put_slice(
            &slices,
            &slice(
                &name,
                http_port(),
                &[("10.244.1.2", "node1", true), ("10.244.1.3", "node1", true)],
            ),
        )
        .await;
    }
    blocking(Box::new(|lab, _| {
        eventually(20, "the other Services", || {
            lab.nft("list table ip kube-lite")
                .contains("10.96.101.50 . tcp")
        });
    }))
    .await
    .unwrap();
    put_slice(
        &slices,
        &slice(
            "ngx-svc",
            http_port(),
            &[
                ("10.244.1.2", "node1", true),
                ("10.244.1.3", "node1", false),
            ],
        ),
    )
    .await;
    blocking(Box::new(|lab, metrics| {
        eventually(10, "pod-b to leave ngx-svc", || {
            !lab.nft("list table ip kube-lite")
                .contains("default/ngx-svc:80 -> 10.244.1.3:8080")
        });
        let lines = metrics.last_transaction_lines.get();
        assert!(
            (1..=10).contains(&lines),
            "one endpoint change took a {lines}-line transaction"
        );
        let hits: BTreeSet<String> = lab
            .servers_hit("c", "10.96.100.10", 10)
            .into_iter()
            .collect();
        assert_eq!(hits, BTreeSet::from(["10.244.1.2:8080".to_string()]));
    }))
    .await
    .unwrap();

    // Drift: someone flushes the table; the next check repairs it.
    blocking(Box::new(|lab, _| {
        lab.nft("flush table ip kube-lite");
        assert!(
            lab.curl("c", "10.96.100.10").is_none()
                || lab
                    .nft("list chain ip kube-lite services")
                    .contains("goto pick-1-of-")
        );
        eventually(10, "the table to be repaired", || {
            lab.curl("c", "10.96.100.10").is_some()
        });
    }))
    .await
    .unwrap();

    // Deleting a Service removes its rules.
    services
        .delete("ngx-np", &DeleteParams::default())
        .await
        .unwrap();
    blocking(Box::new(|lab, _| {
        eventually(10, "ngx-np's rules to go", || {
            let table = lab.nft("list table ip kube-lite");
            !table.contains("default/ngx-np") && !table.contains("30080")
        });
    }))
    .await
    .unwrap();

    // kube-proxy's metrics, over HTTP (here on loopback).
    let text = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for metric in [
        "kubeproxy_sync_proxy_rules_duration_seconds_count",
        "kubeproxy_network_programming_duration_seconds_count",
        "kubeproxy_sync_proxy_rules_nftables_objects{kind=\"chain\"}",
        "kubeproxy_services ",
    ] {
        assert!(text.contains(metric), "no {metric} in\n{text}");
    }
    proxy.abort();
    watches.abort();
}
