//! The table as text: what each kind of Service port adds.
use super::*;
use api::endpointslice::SERVICE_NAME_LABEL;
use k8s_openapi::api::core::v1::{
    ClientIPConfig, ObjectReference, ServiceSpec, SessionAffinityConfig,
};
use k8s_openapi::api::discovery::v1::{
    Endpoint as SliceEndpoint, EndpointConditions, EndpointPort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

fn node() -> NodeContext {
    NodeContext {
        node_name: "worker1".into(),
        cluster_cidr: "10.244.0.0/16".parse().unwrap(),
        service_cidr: "10.96.0.0/12".parse().unwrap(),
        node_labels: BTreeMap::new(),
    }
}

fn port(name: Option<&str>, protocol: &str, port: i32, target: IntOrString) -> ServicePort {
    ServicePort {
        name: name.map(str::to_string),
        protocol: Some(protocol.into()),
        port,
        target_port: Some(target),
        ..Default::default()
    }
}

/// The lesson's `ngx-svc`: ClusterIP 10.96.0.50, port 80.
fn ngx_svc() -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some("ngx-svc".into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            cluster_ip: Some("10.96.0.50".into()),
            ports: Some(vec![port(None, "TCP", 80, IntOrString::Int(80))]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn nodeport(mut svc: Service, etp_local: bool) -> Service {
    let spec = svc.spec.as_mut().unwrap();
    spec.type_ = Some("NodePort".into());
    spec.ports.as_mut().unwrap()[0].node_port = Some(30080);
    if etp_local {
        spec.external_traffic_policy = Some("Local".into());
    }
    svc
}

struct Ep {
    ip: &'static str,
    node: &'static str,
    ready: bool,
    serving: bool,
    terminating: bool,
}

fn ep(ip: &'static str, node: &'static str) -> Ep {
    Ep {
        ip,
        node,
        ready: true,
        serving: true,
        terminating: false,
    }
}

/// A slice as the agent caches it.
fn slice(service: &str, ports: &[(Option<&str>, &str, i32)], endpoints: &[Ep]) -> CachedSlice {
    CachedSlice::from(EndpointSlice {
        metadata: ObjectMeta {
            name: Some(format!("{service}-abcde")),
            namespace: Some("default".into()),
            labels: Some([(SERVICE_NAME_LABEL.to_string(), service.to_string())].into()),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        ports: Some(
            ports
                .iter()
                .map(|(name, protocol, port)| EndpointPort {
                    name: name.map(str::to_string),
                    protocol: Some(protocol.to_string()),
                    port: Some(*port),
                    ..Default::default()
                })
                .collect(),
        ),
        endpoints: Some(
            endpoints
                .iter()
                .map(|e| SliceEndpoint {
                    addresses: vec![e.ip.into()],
                    node_name: Some(e.node.into()),
                    target_ref: Some(ObjectReference {
                        kind: Some("Pod".into()),
                        name: Some(format!("pod-{}", e.ip.rsplit('.').next().unwrap())),
                        ..Default::default()
                    }),
                    conditions: Some(EndpointConditions {
                        ready: Some(e.ready),
                        serving: Some(e.serving),
                        terminating: Some(e.terminating),
                    }),
                    ..Default::default()
                })
                .collect(),
        ),
    })
}

fn table(service: &Service, slices: &[CachedSlice]) -> ServiceTable {
    let slices: Vec<&CachedSlice> = slices.iter().collect();
    service_table(service, &slices, &node(), &ServiceBuckets::new())
}

fn script(service: &Service, slices: &[CachedSlice]) -> String {
    table(service, slices).to_script()
}

fn assert_lines(text: &str, expected: &[&str]) {
    for line in expected {
        assert!(
            text.lines().any(|l| l == *line),
            "missing {line}\nin\n{text}"
        );
    }
}

fn two_pods() -> [CachedSlice; 1] {
    [slice(
        "ngx-svc",
        &[(None, "TCP", 80)],
        &[ep("10.244.1.5", "worker1"), ep("10.244.2.7", "worker2")],
    )]
}

#[test]
fn ngx_svc_with_two_endpoints_is_elements_only() {
    let t = table(&ngx_svc(), &two_pods());
    assert_eq!(t.to_script().lines().collect::<Vec<_>>(), [
        "add element ip kube-lite cluster-ips { 10.96.0.50 comment \"default/ngx-svc\" }",
        "add element ip kube-lite service-endpoints { 10.96.0.50 . tcp . 80 . 0 comment \"default/ngx-svc:80 -> pod-5 10.244.1.5:80\" : 10.244.1.5 . 80 }",
        "add element ip kube-lite service-endpoints { 10.96.0.50 . tcp . 80 . 1 comment \"default/ngx-svc:80 -> pod-7 10.244.2.7:80\" : 10.244.2.7 . 80 }",
        "add element ip kube-lite services-with-2-endpoints { 10.96.0.50 . tcp . 80 comment \"default/ngx-svc:80\" }",
    ]);
    assert_eq!(t.chains, BTreeSet::from([SharedChain::Pick(2)]));
    assert_eq!(
        t.hairpin
            .keys()
            .map(|ip| ip.to_string())
            .collect::<Vec<_>>(),
        ["10.244.1.5", "10.244.2.7"]
    );
    assert!(t.affinity_ports.is_empty());
}

#[test]
fn the_pick_chain_draws_one_bucket_of_n() {
    let text = SharedChain::Pick(3).ruleset(&node()).to_script();
    assert_lines(&text, &[
        "add chain ip kube-lite pick-1-of-3 { comment \"ClusterIP ports with 3 endpoint(s): pick 1 at random\" ; }",
        "add rule ip kube-lite pick-1-of-3 ip saddr != 10.244.0.0/16 jump mark-for-masquerade comment \"masquerade off-cluster clients\"",
        "add rule ip kube-lite pick-1-of-3 dnat ip to ip saddr . ip daddr . meta l4proto . th dport map @affinity-clients comment \"ClientIP affinity: the endpoint this client had\"",
        "add rule ip kube-lite pick-1-of-3 dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 3 map @service-endpoints comment \"bucket 0..2 of the port, at random\"",
    ]);
}

#[test]
fn no_endpoints_rejects() {
    let text = script(&ngx_svc(), &[]);
    assert_lines(&text, &[
        "add element ip kube-lite no-endpoint-services { 10.96.0.50 . tcp . 80 comment \"default/ngx-svc:80\" : goto reject-chain }",
    ]);
    assert!(!text.contains("services-with-"), "{text}");
    // Not ready and not serving-terminating: the same.
    let mut unready = ep("10.244.1.5", "worker1");
    unready.ready = false;
    unready.serving = false;
    let text = script(
        &ngx_svc(),
        &[slice("ngx-svc", &[(None, "TCP", 80)], &[unready])],
    );
    assert!(text.contains("no-endpoint-services"), "{text}");
}

#[test]
fn nodeport_has_its_own_buckets_and_masquerades() {
    let svc = nodeport(ngx_svc(), false);
    let t = table(
        &svc,
        &[slice(
            "ngx-svc",
            &[(None, "TCP", 80)],
            &[ep("10.244.2.7", "worker2")],
        )],
    );
    assert_lines(&t.to_script(), &[
        "add element ip kube-lite nodeports-with-1-endpoint { tcp . 30080 comment \"default/ngx-svc:80\" }",
        "add element ip kube-lite nodeport-endpoints { tcp . 30080 . 0 comment \"default/ngx-svc:80 -> pod-7 10.244.2.7:80\" : 10.244.2.7 . 80 }",
    ]);
    assert!(t.chains.contains(&SharedChain::NodePortPick(1)));
    assert_lines(&SharedChain::NodePortPick(1).ruleset(&node()).to_script(), &[
        "add rule ip kube-lite nodeport-pick-1-of-1 jump mark-for-masquerade comment \"masquerade NodePort traffic\"",
    ]);
    // Without endpoints the NodePort rejects too.
    assert_lines(&script(&svc, &[]), &[
        "add element ip kube-lite no-endpoint-nodeports { tcp . 30080 comment \"default/ngx-svc:80\" : goto reject-chain }",
    ]);
}

#[test]
fn external_traffic_policy_local_uses_this_nodes_endpoints_for_outside_clients() {
    let svc = nodeport(ngx_svc(), true);
    let t = table(&svc, &two_pods());
    // Buckets 0-1: every endpoint (Pods and the node itself); bucket 2:
    // the one on this node (worker1), for everyone else.
    assert_lines(&t.to_script(), &[
        "add element ip kube-lite nodeports-with-1-local-of-2-endpoints { tcp . 30080 comment \"default/ngx-svc:80\" }",
        "add element ip kube-lite nodeport-endpoints { tcp . 30080 . 1 comment \"default/ngx-svc:80 -> pod-7 10.244.2.7:80\" : 10.244.2.7 . 80 }",
        "add element ip kube-lite nodeport-endpoints { tcp . 30080 . 2 comment \"default/ngx-svc:80 -> pod-5 10.244.1.5:80\" : 10.244.1.5 . 80 }",
    ]);
    let chain = SharedChain::NodePortLocal { local: 1, all: 2 }
        .ruleset(&node())
        .to_script();
    assert_lines(&chain, &[
        "add rule ip kube-lite nodeport-local-1-of-2 ip saddr 10.244.0.0/16 dnat ip to meta l4proto . th dport . numgen random mod 2 map @nodeport-endpoints comment \"Pods: every endpoint\"",
        "add rule ip kube-lite nodeport-local-1-of-2 dnat ip to meta l4proto . th dport . numgen random mod 1 offset 2 map @nodeport-endpoints comment \"others: this node's endpoints, buckets 2..2\"",
    ]);
    // The outside clients' rule does not mark: the Pod sees the client.
    let last = chain.lines().last().unwrap();
    assert!(!last.contains("mark"), "{last}");
    // No endpoint on this node: the NodePort drops for outside clients
    // (they should try a node that has one), the ClusterIP still works.
    let t = table(
        &svc,
        &[slice(
            "ngx-svc",
            &[(None, "TCP", 80)],
            &[ep("10.244.2.7", "worker2")],
        )],
    );
    assert_lines(&t.to_script(), &[
        "add element ip kube-lite no-endpoint-nodeports { tcp . 30080 comment \"default/ngx-svc:80\" : drop }",
        "add element ip kube-lite nodeports-with-0-local-of-1-endpoint { tcp . 30080 comment \"default/ngx-svc:80\" }",
        "add element ip kube-lite services-with-1-endpoint { 10.96.0.50 . tcp . 80 comment \"default/ngx-svc:80\" }",
    ]);
}

#[test]
fn internal_traffic_policy_local_uses_local_endpoints_only() {
    let mut svc = ngx_svc();
    svc.spec.as_mut().unwrap().internal_traffic_policy = Some("Local".into());
    let text = script(&svc, &two_pods());
    assert_lines(&text, &[
        "add element ip kube-lite services-with-1-endpoint { 10.96.0.50 . tcp . 80 comment \"default/ngx-svc:80\" }",
    ]);
    assert!(!text.contains("10.244.2.7"), "{text}");
    let text = script(
        &svc,
        &[slice(
            "ngx-svc",
            &[(None, "TCP", 80)],
            &[ep("10.244.2.7", "worker2")],
        )],
    );
    assert_lines(&text, &[
        "add element ip kube-lite no-endpoint-services { 10.96.0.50 . tcp . 80 comment \"default/ngx-svc:80\" : drop }",
    ]);
}

#[test]
fn client_ip_affinity_remembers_for_the_services_timeout() {
    let mut svc = nodeport(ngx_svc(), false);
    let spec = svc.spec.as_mut().unwrap();
    spec.session_affinity = Some("ClientIP".into());
    spec.session_affinity_config = Some(SessionAffinityConfig {
        client_ip: Some(ClientIPConfig {
            timeout_seconds: Some(60),
        }),
    });
    let t = table(&svc, &two_pods());
    assert_lines(&t.to_script(), &[
        "add element ip kube-lite affinity-services { 10.96.0.50 . tcp . 80 comment \"default/ngx-svc:80\" : goto remember-client-60s }",
        "add element ip kube-lite affinity-nodeports { tcp . 30080 comment \"default/ngx-svc:80\" : goto remember-client-60s }",
    ]);
    assert!(t.chains.contains(&SharedChain::Remember(60)));
    assert_eq!(t.affinity_ports.len(), 1);
    assert_eq!(t.affinity_ports[0].endpoints.len(), 2);
    assert_lines(&SharedChain::Remember(60).ruleset(&node()).to_script(), &[
        "add rule ip kube-lite remember-client-60s meta l4proto udp update @affinity-clients { ip saddr . ct original ip daddr . meta l4proto . ct original proto-dst timeout 60s : ip daddr . udp dport } comment \"udp\"",
    ]);
}

#[test]
fn multi_port_and_named_target_ports() {
    let svc = Service {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some("10.96.0.60".into()),
            ports: Some(vec![
                port(Some("http"), "TCP", 80, IntOrString::String("web".into())),
                port(Some("metrics"), "TCP", 9090, IntOrString::Int(9100)),
            ]),
            ..Default::default()
        }),
        ..Default::default()
    };
    // Two Pods name their port "web" with different numbers: one slice
    // each, as the EndpointSlice controller writes them.
    let slices = [
        slice(
            "web",
            &[(Some("http"), "TCP", 8080), (Some("metrics"), "TCP", 9100)],
            &[ep("10.244.1.5", "worker1")],
        ),
        slice(
            "web",
            &[(Some("http"), "TCP", 8081), (Some("metrics"), "TCP", 9100)],
            &[ep("10.244.2.7", "worker2")],
        ),
    ];
    let text = script(&svc, &slices);
    for needle in [
        "10.96.0.60 . tcp . 80 . 0 comment \"default/web:http -> pod-5 10.244.1.5:8080\" : 10.244.1.5 . 8080",
        "10.96.0.60 . tcp . 80 . 1 comment \"default/web:http -> pod-7 10.244.2.7:8081\" : 10.244.2.7 . 8081",
        "10.96.0.60 . tcp . 9090 . 0 comment \"default/web:metrics -> pod-5 10.244.1.5:9100\" : 10.244.1.5 . 9100",
        "services-with-2-endpoints { 10.96.0.60 . tcp . 80 comment \"default/web:http\" }",
        "services-with-2-endpoints { 10.96.0.60 . tcp . 9090 comment \"default/web:metrics\" }",
    ] {
        assert!(text.contains(needle), "missing {needle}\nin\n{text}");
    }
}

#[test]
fn udp_service() {
    let svc = Service {
        metadata: ObjectMeta {
            name: Some("dns".into()),
            namespace: Some("kube-system".into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some("10.96.0.10".into()),
            ports: Some(vec![port(Some("dns"), "UDP", 53, IntOrString::Int(5353))]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut slice = slice(
        "dns",
        &[(Some("dns"), "UDP", 5353)],
        &[ep("10.244.1.9", "worker1")],
    );
    slice.namespace = "kube-system".into();
    let t = service_table(&svc, &[&slice], &node(), &ServiceBuckets::new());
    assert!(t.to_script().contains(
        "10.96.0.10 . udp . 53 . 0 comment \"kube-system/dns:dns -> pod-9 10.244.1.9:5353\" : 10.244.1.9 . 5353"
    ));
    assert_eq!(t.udp_ports.len(), 1);
    assert_eq!(
        t.udp_ports[0].endpoints,
        BTreeSet::from(["10.244.1.9".parse().unwrap()])
    );
}

#[test]
fn a_removed_endpoint_is_refilled_from_the_highest_bucket() {
    let three = [slice(
        "ngx-svc",
        &[(None, "TCP", 80)],
        &[
            ep("10.244.1.5", "worker1"),
            ep("10.244.2.7", "worker2"),
            ep("10.244.2.9", "worker2"),
        ],
    )];
    let before = table(&ngx_svc(), &three);
    let refs: Vec<&CachedSlice> = three.iter().collect();
    // 10.244.2.9 stays, 10.244.1.5 stays, 10.244.2.7 (bucket 1) leaves:
    // the endpoint of bucket 2 moves into bucket 1.
    let mut gone = slice(
        "ngx-svc",
        &[(None, "TCP", 80)],
        &[ep("10.244.1.5", "worker1"), ep("10.244.2.9", "worker2")],
    );
    gone.name = "x".into();
    let after = service_table(&ngx_svc(), &[&gone], &node(), &before.buckets);
    let order = &after.buckets[&(Proto::Tcp, 80)].internal;
    assert_eq!(
        order,
        &vec![
            ("10.244.1.5".parse().unwrap(), 80),
            ("10.244.2.9".parse().unwrap(), 80)
        ]
    );
    // Computing again from the kept buckets gives the same table.
    let again = service_table(&ngx_svc(), &[&gone], &node(), &after.buckets);
    assert_eq!(again, after);
    // A new endpoint goes to the end.
    let back = service_table(&ngx_svc(), &refs, &node(), &after.buckets);
    assert_eq!(
        back.buckets[&(Proto::Tcp, 80)].internal[2],
        ("10.244.2.7".parse().unwrap(), 80)
    );
}

#[test]
fn terminating_endpoints_only_when_no_ready_ones() {
    let mut draining = ep("10.244.1.5", "worker1");
    draining.ready = false;
    draining.terminating = true;
    let text = script(
        &ngx_svc(),
        &[slice(
            "ngx-svc",
            &[(None, "TCP", 80)],
            &[draining, ep("10.244.2.7", "worker2")],
        )],
    );
    assert!(
        !text.contains("10.244.1.5 . 80"),
        "draining endpoint got new connections:\n{text}"
    );
    let mut draining = ep("10.244.1.5", "worker1");
    draining.ready = false;
    draining.terminating = true;
    let text = script(
        &ngx_svc(),
        &[slice("ngx-svc", &[(None, "TCP", 80)], &[draining])],
    );
    assert!(text.contains(": 10.244.1.5 . 80"), "{text}");
}

#[test]
fn headless_and_external_name_services_get_nothing() {
    let mut svc = ngx_svc();
    svc.spec.as_mut().unwrap().cluster_ip = Some("None".into());
    assert_eq!(script(&svc, &[]), "");
    let mut svc = ngx_svc();
    svc.spec.as_mut().unwrap().type_ = Some("ExternalName".into());
    assert_eq!(script(&svc, &[]), "");
}

#[test]
fn the_dispatch_has_a_rule_per_kind_of_port() {
    let text = dispatch(&[
        SharedChain::Pick(2),
        SharedChain::NodePortLocal { local: 1, all: 3 },
        SharedChain::Remember(60),
    ])
    .to_script();
    assert_eq!(
        text.lines().filter(|l| l.starts_with("add rule")).collect::<Vec<_>>(),
        [
            "add rule ip kube-lite nodeports meta l4proto . th dport @nodeports-with-1-local-of-3-endpoints goto nodeport-local-1-of-3 comment \"NodePorts, externalTrafficPolicy Local: 1 endpoint(s) here, 3 in all\"",
            "add rule ip kube-lite services ip daddr . meta l4proto . th dport @services-with-2-endpoints goto pick-1-of-2 comment \"ClusterIP ports with 2 endpoint(s)\"",
            "add rule ip kube-lite services fib daddr type local ip daddr != 127.0.0.0/8 jump nodeports comment \"NodePorts on this node's addresses\"",
        ]
    );
}

#[test]
fn port_set_names_name_their_chain() {
    for chain in [
        SharedChain::Pick(1),
        SharedChain::Pick(12),
        SharedChain::NodePortPick(1),
        SharedChain::NodePortPick(3),
        SharedChain::NodePortLocal { local: 0, all: 1 },
        SharedChain::NodePortLocal { local: 2, all: 5 },
    ] {
        let set = chain.port_set().unwrap();
        assert_eq!(SharedChain::of_port_set(&set), Some(chain), "{set}");
    }
    assert_eq!(
        SharedChain::Pick(1).port_set().unwrap(),
        "services-with-1-endpoint"
    );
    assert_eq!(SharedChain::Remember(60).port_set(), None);
    assert_eq!(SharedChain::of_port_set("service-endpoints"), None);
}

#[test]
fn the_base_table() {
    let text = base_ruleset(&node()).to_script();
    assert_lines(&text, &[
        "add rule ip kube-lite nat-postrouting ct status dnat ip saddr . ip daddr @hairpin-endpoints masquerade fully-random comment \"hairpin: a Pod sent to itself\"",
        "add rule ip kube-lite cluster-ips-check ip daddr 10.96.0.0/12 drop comment \"drop traffic to unallocated ClusterIPs and ping to ClusterIPs\"",
        "add rule ip kube-lite reject-chain meta l4proto tcp reject with tcp reset comment \"TCP: connection refused at once\"",
        "add rule ip kube-lite affinity-check ct original ip daddr 10.96.0.0/12 return comment \"other ClusterIPs: no affinity\"",
    ]);
    assert!(
        text.contains("add chain ip kube-lite nat-output { type nat hook output priority -100 ;"),
        "{text}"
    );
}
