//! The transactions a change makes, as text.
use super::*;
use crate::informer::CachedSlice;
use crate::proxy::nftables::Proto;
use crate::proxy::rules::{Element, SetName};

fn node() -> NodeContext {
    NodeContext {
        node_name: "worker1".into(),
        cluster_cidr: "10.244.0.0/16".parse().unwrap(),
        service_cidr: "10.96.0.0/12".parse().unwrap(),
        node_labels: BTreeMap::new(),
    }
}

/// A Service port `10.96.0.50:80` with these endpoints in bucket order.
fn port_with(endpoints: &[&str]) -> ServiceTable {
    let mut t = ServiceTable::default();
    let ip = "10.96.0.50".parse().unwrap();
    let chain = SharedChain::Pick(endpoints.len() as u32);
    t.chains.insert(chain);
    t.elements.insert(
        (
            SetName::PortsOf(chain),
            Key::ClusterIpPort(ip, Proto::Tcp, 80),
        ),
        Element {
            value: None,
            comment: "s".into(),
        },
    );
    for (i, e) in endpoints.iter().enumerate() {
        let e: Ipv4Addr = e.parse().unwrap();
        t.elements.insert(
            (
                SetName::Named(rules::SERVICE_ENDPOINTS_MAP),
                Key::ClusterIpBucket(ip, Proto::Tcp, 80, i as u32),
            ),
            Element {
                value: Some(Value::Endpoint(e, 80)),
                comment: format!("s -> {e}"),
            },
        );
        t.hairpin.insert(e, "h".into());
    }
    t
}

fn diff(state: &mut SharedState, changes: &[Change<'_>]) -> Vec<String> {
    let mut script = Script::default();
    state.diff(&mut script, changes, &node());
    script.text.lines().map(String::from).collect()
}

#[test]
fn a_new_service_creates_its_shared_chain_first() {
    let mut state = SharedState::default();
    let new = port_with(&["10.244.1.5", "10.244.2.7"]);
    let tx = diff(&mut state, &[(None, Some(&new))]);
    assert!(
        tx[0].starts_with("add set ip kube-lite services-with-2-endpoints "),
        "{tx:#?}"
    );
    assert!(
        tx[1].starts_with("add chain ip kube-lite pick-1-of-2 "),
        "{tx:#?}"
    );
    let first_element = tx
        .iter()
        .position(|l| l.starts_with("add element"))
        .unwrap();
    assert!(
        tx[..first_element]
            .iter()
            .all(|l| l.contains("pick-1-of-2") || l.contains("services-with-2-endpoints")),
        "{tx:#?}"
    );
    // The dispatch is written again, with a rule for the new kind.
    assert!(
        tx.iter().any(|l| l.starts_with(
            "add rule ip kube-lite services ip daddr . meta l4proto . th dport @services-with-2-endpoints goto pick-1-of-2"
        )),
        "{tx:#?}"
    );
    assert_eq!(state.chains[&SharedChain::Pick(2)], 1);
    assert_eq!(state.hairpin.len(), 2);
    // A second Service of two endpoints shares the chain.
    let tx = diff(&mut state, &[(None, Some(&new))]);
    assert!(tx.iter().all(|l| l.starts_with("add element")), "{tx:#?}");
    assert_eq!(state.chains[&SharedChain::Pick(2)], 2);
}

#[test]
fn an_endpoint_leaving_is_elements_only() {
    let mut state = SharedState::default();
    let two = port_with(&["10.244.1.5", "10.244.2.7"]);
    let three = port_with(&["10.244.1.5", "10.244.2.7", "10.244.2.9"]);
    diff(&mut state, &[(None, Some(&two))]);
    diff(&mut state, &[(None, Some(&three))]);
    diff(&mut state, &[(None, Some(&three))]);
    // 10.244.2.9 leaves the second Service: bucket 2 goes, the port moves
    // to the set of the ports with two endpoints; nothing else (no rule, no
    // chain, no jump: the kernel does not walk the table).
    let tx = diff(&mut state, &[(Some(&three), Some(&two))]);
    assert_eq!(tx, [
        "delete element ip kube-lite service-endpoints { 10.96.0.50 . tcp . 80 . 2 }",
        "delete element ip kube-lite services-with-3-endpoints { 10.96.0.50 . tcp . 80 }",
        "add element ip kube-lite services-with-2-endpoints { 10.96.0.50 . tcp . 80 comment \"s\" }",
    ]);
    assert_eq!(state.chains[&SharedChain::Pick(3)], 1);
}

#[test]
fn the_last_port_of_a_kind_takes_its_chain_set_and_dispatch_rule() {
    let mut state = SharedState::default();
    let two = port_with(&["10.244.1.5", "10.244.2.7"]);
    let three = port_with(&["10.244.1.5", "10.244.2.7", "10.244.2.9"]);
    diff(&mut state, &[(None, Some(&two))]);
    diff(&mut state, &[(None, Some(&three))]);
    let tx = diff(&mut state, &[(Some(&three), Some(&two))]);
    let flush = tx
        .iter()
        .position(|l| l == "flush chain ip kube-lite services")
        .expect("the dispatch is rewritten");
    assert!(
        !tx[flush..]
            .iter()
            .any(|l| l.contains("@services-with-3-endpoints")),
        "{tx:#?}"
    );
    assert_eq!(
        tx[tx.len() - 3..],
        [
            "flush chain ip kube-lite pick-1-of-3",
            "delete chain ip kube-lite pick-1-of-3",
            "delete set ip kube-lite services-with-3-endpoints",
        ]
    );
    assert!(!state.chains.contains_key(&SharedChain::Pick(3)));
}

#[test]
fn a_hairpin_pair_stays_while_another_service_has_the_endpoint() {
    let mut state = SharedState::default();
    let a = port_with(&["10.244.1.5"]);
    diff(&mut state, &[(None, Some(&a))]);
    diff(&mut state, &[(None, Some(&a))]);
    let tx = diff(&mut state, &[(Some(&a), None)]);
    assert!(!tx.iter().any(|l| l.contains("hairpin")), "{tx:#?}");
    let tx = diff(&mut state, &[(Some(&a), None)]);
    assert!(
        tx.iter()
            .any(|l| l.contains("delete element ip kube-lite hairpin-endpoints")),
        "{tx:#?}"
    );
    assert_eq!(state, SharedState::default());
}

#[test]
fn unchanged_services_need_no_transaction() {
    let mut state = SharedState::default();
    let a = port_with(&["10.244.1.5"]);
    diff(&mut state, &[(None, Some(&a))]);
    assert!(diff(&mut state, &[(Some(&a), Some(&a))]).is_empty());
}

#[test]
fn stale_affinity_names_ports_that_lost_endpoints() {
    let port = |eps: &[&str]| AffinityPort {
        cluster_ip: "10.96.0.50".parse().unwrap(),
        proto: Proto::Tcp,
        port: 80,
        node_port: Some(30080),
        endpoints: eps.iter().map(|e| (e.parse().unwrap(), 80)).collect(),
    };
    let table = |eps: &[&str]| ServiceTable {
        affinity_ports: vec![port(eps)],
        ..Default::default()
    };
    let two = Some(table(&["10.244.1.5", "10.244.2.7"]));
    let one = Some(table(&["10.244.1.5"]));
    assert!(stale_affinity(std::slice::from_ref(&one), std::slice::from_ref(&two)).is_empty());
    let stale = stale_affinity(std::slice::from_ref(&two), &[one]);
    assert_eq!(stale.len(), 1);
    assert_eq!(stale[0].endpoints.len(), 1);
    // The Service gone: every remembered client of it goes.
    let stale = stale_affinity(&[two], &[None]);
    assert!(stale[0].endpoints.is_empty());
}

#[test]
fn the_slice_index_follows_slices_between_services() {
    let slice = |service: &str| -> CachedSlice {
        serde_json::from_value::<k8s_openapi::api::discovery::v1::EndpointSlice>(
            serde_json::json!({
                "metadata": {"name": "s1", "namespace": "default",
                             "labels": {"kubernetes.io/service-name": service}},
                "addressType": "IPv4", "endpoints": [],
            }),
        )
        .unwrap()
        .into()
    };
    let (store, mut writer) = kube::runtime::reflector::store::<CachedSlice>();
    let mut index = SliceIndex::default();
    writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(slice("a")));
    assert_eq!(index.changed(&slice("a"), false), None);
    assert_eq!(index.of("default/a", &store).len(), 1);
    // Relabelled to b: a loses it, and is named so it is synced too.
    writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(slice("b")));
    assert_eq!(index.changed(&slice("b"), false), Some("default/a".into()));
    assert_eq!(index.of("default/a", &store).len(), 0);
    assert_eq!(index.of("default/b", &store).len(), 1);
    assert_eq!(index.changed(&slice("b"), true), None);
    assert_eq!(index.of("default/b", &store).len(), 0);
}
