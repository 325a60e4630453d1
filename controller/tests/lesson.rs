//! The lesson with the whole control plane: the real apiserver and
//! controller, two fake nodes playing kubelets, and kubectl-lite.
//!
//! This is issue 3's "done when" walked in one story: ngx-dep becomes two
//! Pods on two nodes, ngx-svc's Endpoints and EndpointSlices list exactly
//! their IPs (and `describe svc` shows them), scaling and deleting Pods is
//! followed, a node that goes silent drops out and its Pods move, and
//! deleting the Deployment or the namespace cascades.

mod common;

use std::collections::BTreeSet;

use common::{eventually, Cluster, FakeNode};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Endpoints, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, ListParams};
use kube::Api;

/// Time the control plane gets to follow a change before a test fails.
const SECS: u64 = 60;

fn lesson(file: &str) -> String {
    e2e::harness::workspace_root()
        .join("examples/lesson")
        .join(file)
        .display()
        .to_string()
}

fn ok(cluster: &Cluster, args: &[&str]) -> String {
    let out = cluster.kubectl_lite(args);
    assert!(
        out.status.success(),
        "kubectl-lite {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// IPs of the ready Pods labelled app=ngx-dep, and their nodes.
async fn ready_pods(cluster: &Cluster, ns: &str) -> Vec<(String, String)> {
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), ns);
    let list = pods
        .list(&ListParams::default().labels("app=ngx-dep"))
        .await
        .unwrap();
    list.items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| {
            let status = p.status?;
            let ready = status
                .conditions?
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            ready.then_some((status.pod_ip?, p.spec?.node_name?))
        })
        .collect()
}

/// The ready addresses of ngx-svc, from the v1 Endpoints and from the
/// EndpointSlices; `Some` when both agree.
async fn endpoint_ips(cluster: &Cluster, ns: &str) -> Option<BTreeSet<String>> {
    let endpoints: Api<Endpoints> = Api::namespaced(cluster.client.clone(), ns);
    let from_endpoints: BTreeSet<String> = endpoints
        .get_opt("ngx-svc")
        .await
        .ok()??
        .subsets
        .unwrap_or_default()
        .iter()
        .flat_map(|s| s.addresses.clone().unwrap_or_default())
        .map(|a| a.ip)
        .collect();
    let slices: Api<EndpointSlice> = Api::namespaced(cluster.client.clone(), ns);
    let from_slices: BTreeSet<String> = slices
        .list(&ListParams::default().labels("kubernetes.io/service-name=ngx-svc"))
        .await
        .ok()?
        .items
        .iter()
        .flat_map(|s| s.endpoints.clone().unwrap_or_default())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
        .flat_map(|e| e.addresses)
        .collect();
    (from_endpoints == from_slices).then_some(from_endpoints)
}

/// Waits until ngx-svc lists exactly the ready Pods, `n` of them.
async fn endpoints_follow_pods(cluster: &Cluster, ns: &str, n: usize) -> BTreeSet<String> {
    eventually(
        SECS,
        &format!("{n} endpoints matching the ready pods"),
        || async {
            let pods: BTreeSet<String> = ready_pods(cluster, ns)
                .await
                .into_iter()
                .map(|(ip, _)| ip)
                .collect();
            let endpoints = endpoint_ips(cluster, ns).await?;
            (pods.len() == n && endpoints == pods).then_some(endpoints)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lesson_on_two_nodes() {
    let cluster = Cluster::start().await;
    let node1 = FakeNode::start(&cluster.client, "kl-worker1", 1).await;
    let _node2 = FakeNode::start(&cluster.client, "kl-worker2", 2).await;
    ok(
        &cluster,
        &[
            "apply",
            "-f",
            &lesson("ngx-conf.yml"),
            "-f",
            &lesson("ngx-dep.yml"),
            "-f",
            &lesson("ngx-svc.yml"),
        ],
    );

    // Two Pods named ngx-dep-<hash>-<xxxxx>, one per node.
    let pods = eventually(SECS, "two ready ngx-dep pods", || async {
        let p = ready_pods(&cluster, "default").await;
        (p.len() == 2).then_some(p)
    })
    .await;
    let nodes: BTreeSet<&str> = pods.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(nodes.len(), 2, "spread over both nodes: {pods:?}");
    let names = ok(&cluster, &["get", "pods", "-o", "name"]);
    for line in names.lines() {
        let name = line.trim_start_matches("pod/");
        let parts: Vec<&str> = name.rsplitn(3, '-').collect();
        assert_eq!(parts.len(), 3, "{name}");
        assert_eq!(parts[2], "ngx-dep");
        assert_eq!(parts[1].len(), 10, "pod-template-hash in {name}");
        assert_eq!(parts[0].len(), 5, "random suffix in {name}");
    }

    // Endpoints and EndpointSlices list exactly the ready Pod IPs, and
    // describe shows them as the lesson's step 4 does.
    let ips = endpoints_follow_pods(&cluster, "default", 2).await;
    let described = ok(&cluster, &["describe", "svc", "ngx-svc"]);
    for ip in &ips {
        assert!(
            described.contains(&format!("{ip}:80")),
            "{ip} in:\n{described}"
        );
    }

    // Scale to 5: five endpoints.
    ok(&cluster, &["scale", "deploy", "ngx-dep", "--replicas=5"]);
    let five = endpoints_follow_pods(&cluster, "default", 5).await;

    // Delete a Pod: a replacement comes, and the endpoints follow.
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    let victim = pods
        .list(&ListParams::default().labels("app=ngx-dep"))
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|p| p.status.as_ref().and_then(|s| s.pod_ip.as_ref()) == five.iter().next())
        .unwrap();
    let victim_ip = victim.status.unwrap().pod_ip.unwrap();
    ok(
        &cluster,
        &["delete", "pod", victim.metadata.name.as_deref().unwrap()],
    );
    let after = eventually(
        SECS,
        "the deleted pod's IP to leave the endpoints",
        || async {
            let now = endpoints_follow_pods(&cluster, "default", 5).await;
            (!now.contains(&victim_ip)).then_some(now)
        },
    )
    .await;
    assert_eq!(after.len(), 5);

    // A node whose Lease stops: its Pods leave the endpoints and move.
    node1.stop_renewing();
    eventually(
        SECS,
        "all five pods on kl-worker2, in the endpoints",
        || async {
            let pods = ready_pods(&cluster, "default").await;
            let endpoints = endpoint_ips(&cluster, "default").await?;
            let on_two = pods.iter().filter(|(_, n)| n == "kl-worker2").count();
            let ips: BTreeSet<String> = pods
                .iter()
                .filter(|(_, n)| n == "kl-worker2")
                .map(|(ip, _)| ip.clone())
                .collect();
            (on_two == 5 && endpoints == ips).then_some(())
        },
    )
    .await;

    // Deleting the Deployment removes its ReplicaSet and Pods.
    ok(&cluster, &["delete", "deploy", "ngx-dep"]);
    let replica_sets: Api<ReplicaSet> = Api::namespaced(cluster.client.clone(), "default");
    eventually(
        SECS,
        "the deployment's replicasets and pods to go",
        || async {
            let rs = replica_sets
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .len();
            let live = pods
                .list(&ListParams::default().labels("app=ngx-dep"))
                .await
                .ok()?
                .items
                .len();
            (rs == 0 && live == 0).then_some(())
        },
    )
    .await;
    let empty = endpoint_ips(&cluster, "default").await.unwrap();
    assert!(empty.is_empty(), "no pods, no endpoints: {empty:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_namespace_removes_everything_in_it() {
    let cluster = Cluster::start().await;
    let _node = FakeNode::start(&cluster.client, "kl-worker1", 1).await;
    ok(&cluster, &["create", "namespace", "lab"]);
    ok(
        &cluster,
        &["apply", "-n", "lab", "-f", &lesson("all-in-one.yml")],
    );
    endpoints_follow_pods(&cluster, "lab", 2).await;

    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(cluster.client.clone());
    namespaces
        .delete("lab", &DeleteParams::default())
        .await
        .unwrap();
    eventually(SECS, "namespace lab and its contents to go", || async {
        namespaces
            .get_opt("lab")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "lab");
    assert!(pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
}
