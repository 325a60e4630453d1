//! The Endpoints loop against a real apiserver: Services get Endpoints and
//! EndpointSlices listing the Pods they select.
//!
//! Most tests run only this loop (in this process, through
//! `endpoints::run`) and write Pods and their status by hand, as a
//! kubelet would, so each Pod's IP and readiness are exactly what the test
//! says. The last test runs the whole controller binary with fake nodes and
//! reads the result through `kubectl-lite describe svc`.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{eventually, Cluster, FakeNode, InProcessLoop};
use controller::endpoints;
use k8s_openapi::api::core::v1::{EndpointSubset, Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{json, Value};

/// How long the loop may take to show a change before a test fails.
const SECS: u64 = 20;

fn services(c: &Cluster) -> Api<Service> {
    Api::namespaced(c.client.clone(), "default")
}

fn endpoints_api(c: &Cluster) -> Api<Endpoints> {
    Api::namespaced(c.client.clone(), "default")
}

fn slices_api(c: &Cluster) -> Api<EndpointSlice> {
    Api::namespaced(c.client.clone(), "default")
}

/// A ClusterIP Service selecting `app=<selector>`.
async fn create_service(
    c: &Cluster,
    name: &str,
    selector: Option<&str>,
    ports: Value,
    extra: Value,
) -> Service {
    let mut spec = json!({"ports": ports});
    if let Some(app) = selector {
        spec["selector"] = json!({"app": app});
    }
    for (k, v) in extra.as_object().into_iter().flatten() {
        spec[k] = v.clone();
    }
    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "labels": {"tier": "test"}},
        "spec": spec,
    }))
    .unwrap();
    services(c)
        .create(&PostParams::default(), &svc)
        .await
        .unwrap_or_else(|e| panic!("creating Service {name}: {e}"))
}

fn port_80() -> Value {
    json!([{"port": 80, "targetPort": 80, "protocol": "TCP"}])
}

/// A Pod labelled `app=<app>` on `node`, with status written as a kubelet
/// would: Running, `ip`, Ready or not. `container_ports` are (name, port).
async fn create_pod(
    c: &Cluster,
    name: &str,
    app: &str,
    ip: &str,
    ready: bool,
    container_ports: &[(&str, i32)],
) -> Pod {
    let ports: Vec<Value> = container_ports
        .iter()
        .map(|(n, p)| json!({"name": n, "containerPort": p}))
        .collect();
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
        "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "nginx", "ports": ports}]},
    }))
    .unwrap();
    c.pods("default")
        .create(&PostParams::default(), &pod)
        .await
        .unwrap_or_else(|e| panic!("creating Pod {name}: {e}"));
    // The Pod's condition changed a minute ago: a later change in a test
    // falls in another second (times are whole seconds on the wire).
    let then = chrono::Utc::now() - chrono::Duration::seconds(60);
    set_status_at(c, name, ip, ready, then).await
}

/// Writes the Pod's status, its Ready condition changed now.
async fn set_status(c: &Cluster, name: &str, ip: &str, ready: bool) -> Pod {
    set_status_at(c, name, ip, ready, chrono::Utc::now()).await
}

async fn set_status_at(
    c: &Cluster,
    name: &str,
    ip: &str,
    ready: bool,
    changed: chrono::DateTime<chrono::Utc>,
) -> Pod {
    let flag = if ready { "True" } else { "False" };
    let changed = changed.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let status = json!({"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": flag, "lastTransitionTime": changed}],
    }});
    c.pods("default")
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap_or_else(|e| panic!("writing status of Pod {name}: {e}"))
}

async fn get_endpoints(c: &Cluster, name: &str) -> Option<Endpoints> {
    endpoints_api(c).get_opt(name).await.unwrap()
}

async fn slices_of(c: &Cluster, service: &str) -> Vec<EndpointSlice> {
    let lp = ListParams::default().labels(&format!("kubernetes.io/service-name={service}"));
    slices_api(c).list(&lp).await.unwrap().items
}

/// (ip, ready) of every endpoint in the slices.
fn slice_endpoints(slices: &[EndpointSlice]) -> BTreeSet<(String, bool)> {
    slices
        .iter()
        .flat_map(|s| s.endpoints.iter().flatten())
        .map(|e| {
            let ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false);
            (e.addresses[0].clone(), ready)
        })
        .collect()
}

/// (ip, ready) of every address in the Endpoints.
fn addresses(subsets: &[EndpointSubset]) -> BTreeSet<(String, bool)> {
    let mut all = BTreeSet::new();
    for s in subsets {
        for a in s.addresses.iter().flatten() {
            all.insert((a.ip.clone(), true));
        }
        for a in s.not_ready_addresses.iter().flatten() {
            all.insert((a.ip.clone(), false));
        }
    }
    all
}

fn set(items: &[(&str, bool)]) -> BTreeSet<(String, bool)> {
    items.iter().map(|(ip, r)| (ip.to_string(), *r)).collect()
}

/// Waits until the Service's Endpoints and slices both list exactly
/// `want`; returns them.
async fn wait_for(
    c: &Cluster,
    service: &str,
    want: &BTreeSet<(String, bool)>,
) -> (Endpoints, Vec<EndpointSlice>) {
    let what = format!("endpoints of {service} to be {want:?}");
    eventually(SECS, &what, || async {
        let ep = get_endpoints(c, service).await?;
        let slices = slices_of(c, service).await;
        let in_endpoints = addresses(ep.subsets.as_deref().unwrap_or_default());
        (in_endpoints == *want && slice_endpoints(&slices) == *want).then_some((ep, slices))
    })
    .await
}

#[tokio::test]
async fn two_ready_pods_are_listed_in_endpoints_and_one_slice() {
    let c = Cluster::apiserver_only().await;
    let _loop = InProcessLoop::start(&c, endpoints::run);
    let svc = create_service(&c, "ngx-svc", Some("ngx-dep"), port_80(), json!({})).await;
    create_pod(&c, "ngx-1", "ngx-dep", "10.244.1.5", true, &[]).await;
    create_pod(&c, "ngx-2", "ngx-dep", "10.244.2.3", true, &[]).await;
    create_pod(&c, "other", "other", "10.244.2.9", true, &[]).await;

    let want = set(&[("10.244.1.5", true), ("10.244.2.3", true)]);
    let (ep, slices) = wait_for(&c, "ngx-svc", &want).await;

    let subsets = ep.subsets.clone().unwrap();
    assert_eq!(subsets.len(), 1);
    let port = &subsets[0].ports.as_ref().unwrap()[0];
    assert_eq!((port.name.as_deref(), port.port), (None, 80));
    assert_eq!(port.protocol.as_deref(), Some("TCP"));
    assert_eq!(ep.labels().get("tier").map(String::as_str), Some("test"));
    assert!(ep
        .annotations()
        .contains_key(api::endpointslice::LAST_CHANGE_TRIGGER_TIME));

    assert_eq!(slices.len(), 1);
    let slice = &slices[0];
    assert!(
        slice.name_any().starts_with("ngx-svc-"),
        "{}",
        slice.name_any()
    );
    assert_eq!(slice.address_type, "IPv4");
    let labels = slice.labels();
    assert_eq!(labels["kubernetes.io/service-name"], "ngx-svc");
    assert_eq!(
        labels["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    let owner = &slice.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Service", "ngx-svc")
    );
    assert_eq!(Some(&owner.uid), svc.metadata.uid.as_ref());
    assert_eq!(
        (owner.controller, owner.block_owner_deletion),
        (Some(true), Some(true))
    );
    assert!(slice
        .annotations()
        .contains_key(api::endpointslice::LAST_CHANGE_TRIGGER_TIME));

    // The port's name is present, empty, as upstream writes it.
    let raw: Value = serde_json::to_value(slice).unwrap();
    assert_eq!(
        raw["ports"],
        json!([{"name": "", "protocol": "TCP", "port": 80}])
    );
    for endpoint in slice.endpoints.as_ref().unwrap() {
        let conditions = endpoint.conditions.as_ref().unwrap();
        assert_eq!(
            (conditions.ready, conditions.serving, conditions.terminating),
            (Some(true), Some(true), Some(false))
        );
        assert_eq!(endpoint.node_name.as_deref(), Some("node-a"));
        let target = endpoint.target_ref.as_ref().unwrap();
        assert_eq!(target.kind.as_deref(), Some("Pod"));
        assert!(target.name.as_deref().unwrap().starts_with("ngx-"));
        assert!(target.uid.is_some());
    }
}

#[tokio::test]
async fn not_ready_pods_are_listed_as_not_ready_unless_published() {
    let c = Cluster::apiserver_only().await;
    let _loop = InProcessLoop::start(&c, endpoints::run);
    create_service(&c, "web", Some("web"), port_80(), json!({})).await;
    create_service(
        &c,
        "peers",
        Some("web"),
        port_80(),
        json!({"publishNotReadyAddresses": true}),
    )
    .await;
    create_pod(&c, "web-1", "web", "10.244.1.5", true, &[]).await;
    create_pod(&c, "web-2", "web", "10.244.1.6", false, &[]).await;

    let (ep, slices) = wait_for(
        &c,
        "web",
        &set(&[("10.244.1.5", true), ("10.244.1.6", false)]),
    )
    .await;
    let not_ready = &ep.subsets.unwrap()[0].not_ready_addresses.clone().unwrap()[0];
    assert_eq!(not_ready.ip, "10.244.1.6");
    let endpoint = slices[0]
        .endpoints
        .iter()
        .flatten()
        .find(|e| e.addresses[0] == "10.244.1.6")
        .unwrap();
    let conditions = endpoint.conditions.as_ref().unwrap();
    assert_eq!(
        (conditions.ready, conditions.serving),
        (Some(false), Some(false))
    );

    // publishNotReadyAddresses: every address counts as ready.
    wait_for(
        &c,
        "peers",
        &set(&[("10.244.1.5", true), ("10.244.1.6", true)]),
    )
    .await;

    // The Pod turns ready: it moves, and the trigger time is its change.
    let pod = set_status(&c, "web-2", "10.244.1.6", true).await;
    let (ep, slices) = wait_for(
        &c,
        "web",
        &set(&[("10.244.1.5", true), ("10.244.1.6", true)]),
    )
    .await;
    let changed = pod.status.unwrap().conditions.unwrap()[0]
        .last_transition_time
        .clone()
        .unwrap();
    let changed = endpoints::format_trigger_time(changed.0);
    assert_eq!(
        ep.annotations()[api::endpointslice::LAST_CHANGE_TRIGGER_TIME],
        changed
    );
    assert_eq!(
        slices[0].annotations()[api::endpointslice::LAST_CHANGE_TRIGGER_TIME],
        changed
    );
}

#[tokio::test]
async fn a_named_target_port_is_resolved_per_pod() {
    let c = Cluster::apiserver_only().await;
    let _loop = InProcessLoop::start(&c, endpoints::run);
    let ports = json!([{"name": "web", "port": 80, "targetPort": "http", "protocol": "TCP"}]);
    create_service(&c, "named", Some("named"), ports, json!({})).await;
    create_pod(
        &c,
        "named-1",
        "named",
        "10.244.1.5",
        true,
        &[("http", 8080)],
    )
    .await;
    create_pod(
        &c,
        "named-2",
        "named",
        "10.244.1.6",
        true,
        &[("http", 9090)],
    )
    .await;
    // Declares no port called `http`: not an endpoint of this port.
    create_pod(
        &c,
        "named-3",
        "named",
        "10.244.1.7",
        true,
        &[("metrics", 9100)],
    )
    .await;

    let want = set(&[("10.244.1.5", true), ("10.244.1.6", true)]);
    let slices = eventually(SECS, "two slices, one per port number", || async {
        let slices = slices_of(&c, "named").await;
        let with_ports: Vec<_> = slices
            .iter()
            .filter(|s| !s.ports.as_deref().unwrap_or_default().is_empty())
            .cloned()
            .collect();
        (slice_endpoints(&with_ports) == want && with_ports.len() == 2).then_some(with_ports)
    })
    .await;
    let mut by_port: BTreeMap<i32, String> = BTreeMap::new();
    for slice in &slices {
        let port = &slice.ports.as_ref().unwrap()[0];
        assert_eq!(port.name.as_deref(), Some("web"));
        by_port.insert(
            port.port.unwrap(),
            slice.endpoints.as_ref().unwrap()[0].addresses[0].clone(),
        );
    }
    assert_eq!(
        by_port,
        BTreeMap::from([(8080, "10.244.1.5".into()), (9090, "10.244.1.6".into())])
    );

    let ep = eventually(SECS, "Endpoints with two subsets", || async {
        let ep = get_endpoints(&c, "named").await?;
        (ep.subsets.as_ref()?.len() == 2).then_some(ep)
    })
    .await;
    let mut subsets: Vec<(String, i32)> = ep
        .subsets
        .unwrap()
        .iter()
        .map(|s| {
            (
                s.addresses.as_ref().unwrap()[0].ip.clone(),
                s.ports.as_ref().unwrap()[0].port,
            )
        })
        .collect();
    subsets.sort();
    assert_eq!(
        subsets,
        vec![("10.244.1.5".into(), 8080), ("10.244.1.6".into(), 9090)]
    );
}

#[tokio::test]
async fn scaling_to_five_and_to_150_pods() {
    let c = Cluster::apiserver_only().await;
    let _loop = InProcessLoop::start(&c, endpoints::run);
    create_service(&c, "many", Some("many"), port_80(), json!({})).await;
    let ip = |i: usize| format!("10.244.{}.{}", i / 100, i % 100 + 2);
    for i in 0..2 {
        create_pod(&c, &format!("many-{i}"), "many", &ip(i), true, &[]).await;
    }
    let want = |n: usize| (0..n).map(|i| (ip(i), true)).collect::<BTreeSet<_>>();
    wait_for(&c, "many", &want(2)).await;

    for i in 2..5 {
        create_pod(&c, &format!("many-{i}"), "many", &ip(i), true, &[]).await;
    }
    let (_, slices) = wait_for(&c, "many", &want(5)).await;
    assert_eq!(slices.len(), 1);

    for i in 5..150 {
        create_pod(&c, &format!("many-{i}"), "many", &ip(i), true, &[]).await;
    }
    let (_, slices) = wait_for(&c, "many", &want(150)).await;
    assert_eq!(slices.len(), 2, "150 endpoints need two slices");
    for slice in &slices {
        assert!(slice.endpoints.as_ref().unwrap().len() <= 100);
    }
}

#[tokio::test]
async fn a_terminating_pod_is_marked_terminating_and_leaves_the_endpoints() {
    let c = Cluster::apiserver_only().await;
    let _loop = InProcessLoop::start(&c, endpoints::run);
    create_service(&c, "term", Some("term"), port_80(), json!({})).await;
    create_pod(&c, "term-1", "term", "10.244.1.5", true, &[]).await;
    create_pod(&c, "term-2", "term", "10.244.1.6", true, &[]).await;
    wait_for(
        &c,
        "term",
        &set(&[("10.244.1.5", true), ("10.244.1.6", true)]),
    )
    .await;

    // A Pod bound to a node is deleted gracefully: deletionTimestamp first.
    c.pods("default")
        .delete("term-2", &DeleteParams::default())
        .await
        .unwrap();
    let (conditions, ep) = eventually(SECS, "term-2 marked terminating", || async {
        let slices = slices_of(&c, "term").await;
        let endpoint = slices
            .iter()
            .flat_map(|s| s.endpoints.iter().flatten())
            .find(|e| e.addresses[0] == "10.244.1.6")?
            .clone();
        let conditions = endpoint.conditions.unwrap();
        let ep = get_endpoints(&c, "term").await?;
        (conditions.terminating == Some(true)).then_some((conditions, ep))
    })
    .await;
    // Still serving (it is Ready) but no longer ready for new connections.
    assert_eq!(
        (conditions.ready, conditions.serving),
        (Some(false), Some(true))
    );
    assert_eq!(
        addresses(ep.subsets.as_deref().unwrap_or_default()),
        set(&[("10.244.1.5", true)])
    );
}

#[tokio::test]
async fn a_service_without_selector_keeps_its_hand_written_endpoints() {
    let c = Cluster::apiserver_only().await;
    let _loop = InProcessLoop::start(&c, endpoints::run);
    create_service(&c, "external", None, port_80(), json!({})).await;
    let by_hand: Endpoints = serde_json::from_value(json!({
        "metadata": {"name": "external", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": "192.168.56.1"}], "ports": [{"port": 80}]}],
    }))
    .unwrap();
    let by_hand = endpoints_api(&c)
        .create(&PostParams::default(), &by_hand)
        .await
        .unwrap();
    // A Pod that *would* match if the Service had a selector.
    create_pod(&c, "stray", "external", "10.244.1.5", true, &[]).await;

    // Once another Service is served, the loop has seen all of the above.
    create_service(&c, "barrier", Some("external"), port_80(), json!({})).await;
    wait_for(&c, "barrier", &set(&[("10.244.1.5", true)])).await;

    let now = get_endpoints(&c, "external").await.unwrap();
    assert_eq!(now.resource_version(), by_hand.resource_version());
    assert!(slices_of(&c, "external").await.is_empty());
}

#[tokio::test]
async fn nothing_is_written_when_nothing_changed() {
    let c = Cluster::apiserver_only().await;
    let _loop = InProcessLoop::start(&c, endpoints::run);
    create_service(&c, "calm", Some("calm"), port_80(), json!({})).await;
    create_pod(&c, "calm-1", "calm", "10.244.1.5", true, &[]).await;
    create_pod(&c, "calm-2", "calm", "10.244.1.6", false, &[]).await;
    let (ep, slices) = wait_for(
        &c,
        "calm",
        &set(&[("10.244.1.5", true), ("10.244.1.6", false)]),
    )
    .await;

    // Wake the loop for this Service twice, with nothing that matters.
    let touch = json!({"metadata": {"annotations": {"touched": "1"}}});
    services(&c)
        .patch("calm", &PatchParams::default(), &Patch::Merge(&touch))
        .await
        .unwrap();
    c.pods("default")
        .patch("calm-1", &PatchParams::default(), &Patch::Merge(&touch))
        .await
        .unwrap();
    create_service(&c, "barrier", Some("calm"), port_80(), json!({})).await;
    wait_for(
        &c,
        "barrier",
        &set(&[("10.244.1.5", true), ("10.244.1.6", false)]),
    )
    .await;

    let after = get_endpoints(&c, "calm").await.unwrap();
    assert_eq!(after.resource_version(), ep.resource_version());
    let after = slices_of(&c, "calm").await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].resource_version(), slices[0].resource_version());
}

#[tokio::test]
async fn relabelling_a_pod_takes_it_out_of_the_service() {
    let c = Cluster::apiserver_only().await;
    let _loop = InProcessLoop::start(&c, endpoints::run);
    create_service(&c, "relabel", Some("relabel"), port_80(), json!({})).await;
    create_pod(&c, "relabel-1", "relabel", "10.244.1.5", true, &[]).await;
    create_pod(&c, "relabel-2", "relabel", "10.244.1.6", true, &[]).await;
    wait_for(
        &c,
        "relabel",
        &set(&[("10.244.1.5", true), ("10.244.1.6", true)]),
    )
    .await;

    let debug = json!({"metadata": {"labels": {"app": "debug"}}});
    c.pods("default")
        .patch("relabel-2", &PatchParams::default(), &Patch::Merge(&debug))
        .await
        .unwrap();
    wait_for(&c, "relabel", &set(&[("10.244.1.5", true)])).await;
}

#[tokio::test]
async fn deleting_the_service_deletes_its_endpoints_and_slices() {
    let c = Cluster::apiserver_only().await;
    let _loop = InProcessLoop::start(&c, endpoints::run);
    create_service(&c, "gone", Some("gone"), port_80(), json!({})).await;
    create_pod(&c, "gone-1", "gone", "10.244.1.5", true, &[]).await;
    wait_for(&c, "gone", &set(&[("10.244.1.5", true)])).await;

    services(&c)
        .delete("gone", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        SECS,
        "Endpoints and slices of a deleted Service to go",
        || async {
            (get_endpoints(&c, "gone").await.is_none() && slices_of(&c, "gone").await.is_empty())
                .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn leftovers_of_services_deleted_while_stopped_are_swept_at_start() {
    let c = Cluster::apiserver_only().await;
    // What a loop wrote for a Service that was deleted while it was down.
    let leftover: Endpoints = serde_json::from_value(json!({
        "metadata": {"name": "leftover", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": "10.244.1.5"}], "ports": [{"port": 80}]}],
    }))
    .unwrap();
    endpoints_api(&c)
        .create(&PostParams::default(), &leftover)
        .await
        .unwrap();
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"generateName": "leftover-", "namespace": "default", "labels": {
            "kubernetes.io/service-name": "leftover",
            "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.1.5"]}],
        "ports": [{"name": "", "port": 80, "protocol": "TCP"}],
    }))
    .unwrap();
    slices_api(&c)
        .create(&PostParams::default(), &slice)
        .await
        .unwrap();

    let _loop = InProcessLoop::start(&c, endpoints::run);
    eventually(
        SECS,
        "leftover Endpoints and slices to be swept",
        || async {
            (get_endpoints(&c, "leftover").await.is_none()
                && slices_of(&c, "leftover").await.is_empty())
            .then_some(())
        },
    )
    .await;
}

/// The whole controller, fake nodes, and the lesson's `describe svc`.
#[tokio::test]
async fn kubectl_lite_describe_svc_shows_the_endpoints() {
    let mut c = Cluster::apiserver_only().await;
    let _node1 = FakeNode::start(&c.client, "worker1", 1).await;
    let _node2 = FakeNode::start(&c.client, "worker2", 2).await;
    c.start_controller();
    create_service(&c, "ngx-svc", Some("ngx-dep"), port_80(), json!({})).await;
    for (name, node) in [("ngx-a", "worker1"), ("ngx-b", "worker2")] {
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": "ngx-dep"}},
            "spec": {"nodeName": node, "containers": [{"name": "nginx", "image": "nginx:alpine"}]},
        }))
        .unwrap();
        c.pods("default")
            .create(&PostParams::default(), &pod)
            .await
            .unwrap();
    }
    let ips: BTreeSet<String> = eventually(SECS, "both Pods to get an IP and be ready", || async {
        let pods = c.pods("default").list(&ListParams::default()).await.ok()?;
        let ips: BTreeSet<String> = pods
            .items
            .iter()
            .filter(|p| api::pod::is_ready(p))
            .filter_map(endpoints::ipv4_address)
            .collect();
        (ips.len() == 2).then_some(ips)
    })
    .await;
    let want: BTreeSet<String> = ips.iter().map(|ip| format!("{ip}:80")).collect();

    let line = eventually(SECS, "describe svc to show both endpoints", || async {
        let out = c.kubectl_lite(&["describe", "svc", "ngx-svc"]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let line = text
            .lines()
            .find(|l| l.starts_with("Endpoints:"))?
            .to_string();
        let shown: BTreeSet<String> = line
            .trim_start_matches("Endpoints:")
            .trim()
            .split(',')
            .map(str::to_string)
            .collect();
        (shown == want).then_some(line)
    })
    .await;
    // `Endpoints:  10.244.1.2:80,10.244.2.2:80`, as on a real cluster.
    assert!(line.contains(','), "{line}");
}
