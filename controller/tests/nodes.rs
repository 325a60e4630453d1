//! Nodes: the scheduler, pod CIDR allocation and node lifecycle, against a
//! real apiserver, with fake nodes playing the kubelets.
//!
//! Most tests run the controller binary. The spreading test runs only the
//! scheduler loop in the test process, so that Pods can name an owner that
//! does not exist without the garbage collector deleting them.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{eventually, Cluster, FakeNode};
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::{json, Value};

/// Aborts a task running one loop in the test process when dropped.
struct Running(tokio::task::JoinHandle<anyhow::Result<()>>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn pod(name: &str, extra: Value) -> Pod {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "ngx"}},
        "spec": {"containers": [{"name": "nginx", "image": "nginx:alpine"}]},
    });
    merge(&mut pod, extra);
    serde_json::from_value(pod).unwrap()
}

fn merge(into: &mut Value, patch: Value) {
    match (into, patch) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

async fn node_of(pods: &Api<Pod>, name: &str) -> Option<String> {
    let p = pods.get(name).await.ok()?;
    p.spec?.node_name.filter(|n| !n.is_empty())
}

async fn patch_node(client: &kube::Client, name: &str, patch: Value) {
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_or_else(|e| panic!("patching node {name}: {e}"));
}

/// Events in `default` about object `name` with this reason.
async fn events(client: &kube::Client, name: &str, reason: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    let list = api.list(&ListParams::default()).await.unwrap();
    list.items
        .into_iter()
        .filter(|e| {
            e.involved_object.name.as_deref() == Some(name) && e.reason.as_deref() == Some(reason)
        })
        .collect()
}

fn condition<'a>(
    pod: &'a Pod,
    type_: &str,
) -> Option<&'a k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

#[tokio::test]
async fn pods_of_one_owner_spread_even_when_created_together() {
    let cluster = Cluster::apiserver_only().await;
    let nodes = [
        FakeNode::start(&cluster.client, "kl-worker1", 1).await,
        FakeNode::start(&cluster.client, "kl-worker2", 2).await,
        FakeNode::start(&cluster.client, "kl-worker3", 3).await,
    ];
    let ctx = controller::Context::new(cluster.client.clone(), Default::default());
    let _scheduler = Running(tokio::spawn(controller::scheduler::run(Arc::new(ctx))));

    // Six Pods of one ReplicaSet, created at the same moment: the watch
    // cannot show the first bindings before the last decisions, so only
    // the scheduler's assumed bindings keep them apart.
    let pods = cluster.pods("default");
    let owner = json!({"metadata": {"ownerReferences": [{"apiVersion": "apps/v1",
        "kind": "ReplicaSet", "name": "ngx-dep-6796688696", "uid": "3f6c1a52-0000-4000-8000-000000000001",
        "controller": true, "blockOwnerDeletion": true}]}});
    let names: Vec<String> = (0..6).map(|i| format!("ngx-dep-6796688696-p{i}")).collect();
    let creations = names.iter().map(|n| {
        let pods = pods.clone();
        let p = pod(n, owner.clone());
        async move { pods.create(&PostParams::default(), &p).await }
    });
    for created in futures::future::join_all(creations).await {
        created.unwrap();
    }

    let placement = eventually(20, "all six Pods to be bound", || async {
        let mut placement = BTreeMap::new();
        for n in &names {
            placement.insert(n.clone(), node_of(&pods, n).await?);
        }
        Some(placement)
    })
    .await;
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for node in placement.values() {
        *per_node.entry(node).or_default() += 1;
    }
    assert_eq!(
        per_node,
        BTreeMap::from([("kl-worker1", 2), ("kl-worker2", 2), ("kl-worker3", 2)]),
        "placement: {placement:?}"
    );

    let first = &names[0];
    let node = &placement[first];
    let scheduled = eventually(10, "a Scheduled event", || async {
        let e = events(&cluster.client, first, "Scheduled").await;
        (!e.is_empty()).then_some(e)
    })
    .await;
    assert_eq!(
        scheduled[0].message.as_deref(),
        Some(format!("Successfully assigned default/{first} to {node}").as_str())
    );
    drop(nodes);
}

#[tokio::test]
async fn a_pod_asking_more_cpu_than_any_node_has_waits_with_insufficient_cpu() {
    let cluster = Cluster::start().await;
    // Fake nodes have 2 CPUs and 2Gi allocatable.
    let _n1 = FakeNode::start(&cluster.client, "kl-worker1", 1).await;
    let _n2 = FakeNode::start(&cluster.client, "kl-worker2", 2).await;
    let pods = cluster.pods("default");
    let big = pod(
        "big",
        json!({"spec": {"containers": [{"name": "c", "image": "nginx",
            "resources": {"requests": {"cpu": "3", "memory": "64Mi"}}}]}}),
    );
    pods.create(&PostParams::default(), &big).await.unwrap();
    let expected = "0/2 nodes are available: 2 Insufficient cpu.";
    let failed = eventually(20, "a FailedScheduling event", || async {
        let e = events(&cluster.client, "big", "FailedScheduling").await;
        (!e.is_empty()).then_some(e)
    })
    .await;
    assert_eq!(failed[0].message.as_deref(), Some(expected));
    assert_eq!(node_of(&pods, "big").await, None);
    // One that fits lands.
    let small = pod(
        "small",
        json!({"spec": {"containers": [{"name": "c", "image": "nginx",
            "resources": {"requests": {"cpu": "1500m"}}}]}}),
    );
    pods.create(&PostParams::default(), &small).await.unwrap();
    eventually(20, "small is bound", || async {
        node_of(&pods, "small").await
    })
    .await;
}

#[tokio::test]
async fn a_pod_that_fits_nowhere_waits_and_says_why() {
    let cluster = Cluster::start().await;
    let _n1 = FakeNode::start(&cluster.client, "kl-worker1", 1).await;
    let _n2 = FakeNode::start(&cluster.client, "kl-worker2", 2).await;
    // worker1 has the SSD but is reserved; worker2 has no SSD.
    patch_node(
        &cluster.client,
        "kl-worker1",
        json!({"metadata": {"labels": {"disk": "ssd"}},
               "spec": {"taints": [{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]}}),
    )
    .await;

    let pods = cluster.pods("default");
    let picky = pod("picky", json!({"spec": {"nodeSelector": {"disk": "ssd"}}}));
    pods.create(&PostParams::default(), &picky).await.unwrap();

    let expected = "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, \
                    1 node(s) had untolerated taint {dedicated: infra}.";
    eventually(20, "PodScheduled=False with the reason", || async {
        let p = pods.get("picky").await.ok()?;
        let c = condition(&p, "PodScheduled")?;
        (c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
            && c.message.as_deref() == Some(expected))
        .then_some(())
    })
    .await;
    let failed = eventually(10, "a FailedScheduling event", || async {
        let e = events(&cluster.client, "picky", "FailedScheduling").await;
        (!e.is_empty()).then_some(e)
    })
    .await;
    assert_eq!(failed[0].message.as_deref(), Some(expected));
    assert_eq!(failed[0].type_.as_deref(), Some("Warning"));
    assert_eq!(node_of(&pods, "picky").await, None);
    assert_eq!(
        pods.get("picky")
            .await
            .unwrap()
            .status
            .unwrap()
            .phase
            .as_deref(),
        Some("Pending")
    );

    // Lifting the taint is a Node change: the Pod is tried again and lands.
    patch_node(
        &cluster.client,
        "kl-worker1",
        json!({"spec": {"taints": null}}),
    )
    .await;
    let node = eventually(20, "the Pod to be bound", || node_of(&pods, "picky")).await;
    assert_eq!(node, "kl-worker1");
}

#[tokio::test]
async fn cordoned_nodes_get_no_new_pods() {
    let cluster = Cluster::start().await;
    let _n1 = FakeNode::start(&cluster.client, "kl-worker1", 1).await;
    let _n2 = FakeNode::start(&cluster.client, "kl-worker2", 2).await;
    patch_node(
        &cluster.client,
        "kl-worker1",
        json!({"spec": {"unschedulable": true}}),
    )
    .await;

    let pods = cluster.pods("default");
    // The scheduler works from its cache of Nodes, as kube-scheduler does:
    // a Pod made right after `kubectl cordon` may still land there. Wait
    // until it has seen the cordon: a probe that may only run on
    // kl-worker1 is refused as unschedulable (a probe placed before that
    // is deleted and another one tried).
    let mut seen = false;
    for attempt in 0..20 {
        let probe = format!("probe-{attempt}");
        pods.create(
            &PostParams::default(),
            &pod(
                &probe,
                json!({"spec": {"nodeSelector": {"kubernetes.io/hostname": "kl-worker1"}}}),
            ),
        )
        .await
        .unwrap();
        let outcome = eventually(20, "the probe to be placed or refused", || async {
            let p = pods.get(&probe).await.ok()?;
            if p.spec.as_ref()?.node_name.is_some() {
                return Some(false);
            }
            let refused = p.status?.conditions?.iter().any(|c| {
                c.type_ == "PodScheduled"
                    && c.message
                        .as_deref()
                        .is_some_and(|m| m.contains("unschedulable"))
            });
            refused.then_some(true)
        })
        .await;
        pods.delete(&probe, &Default::default()).await.unwrap();
        if outcome {
            seen = true;
            break;
        }
    }
    assert!(seen, "the scheduler never saw the cordon");
    for name in ["a", "b", "c"] {
        pods.create(&PostParams::default(), &pod(name, json!({})))
            .await
            .unwrap();
    }
    for name in ["a", "b", "c"] {
        let node = eventually(20, "the Pod to be bound", || node_of(&pods, name)).await;
        assert_eq!(node, "kl-worker2", "pod {name}");
    }
}

async fn pod_cidr(client: &kube::Client, node: &str) -> Option<String> {
    let nodes: Api<Node> = Api::all(client.clone());
    nodes.get(node).await.ok()?.spec?.pod_cidr
}

#[tokio::test]
async fn nodes_get_distinct_pod_cidrs_that_survive_a_restart() {
    let mut cluster = Cluster::start().await;
    let client = cluster.client.clone();
    let _n1 = FakeNode::start(&client, "kl-master", 0).await;
    let first = eventually(20, "a pod CIDR for kl-master", || {
        pod_cidr(&client, "kl-master")
    })
    .await;
    let _n2 = FakeNode::start(&client, "kl-worker1", 1).await;
    let second = eventually(20, "a pod CIDR for kl-worker1", || {
        pod_cidr(&client, "kl-worker1")
    })
    .await;
    assert_eq!(first, "10.244.0.0/24");
    assert_eq!(second, "10.244.1.0/24");
    let nodes: Api<Node> = Api::all(client.clone());
    let spec = nodes.get("kl-worker1").await.unwrap().spec.unwrap();
    assert_eq!(spec.pod_cidrs, Some(vec![second.clone()]));

    // While the controller is down, someone registers a node with a CIDR
    // of its own choosing: the next controller must see it as taken.
    cluster.kill_controller();
    let manual: Node = serde_json::from_value(json!({
        "metadata": {"name": "manual"},
        "spec": {"podCIDR": "10.244.2.0/24", "podCIDRs": ["10.244.2.0/24"]},
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &manual).await.unwrap();
    cluster.start_controller();

    let _n3 = FakeNode::start(&client, "kl-worker2", 2).await;
    let third = eventually(30, "a pod CIDR for kl-worker2", || {
        pod_cidr(&client, "kl-worker2")
    })
    .await;
    assert_eq!(third, "10.244.3.0/24");
    assert_eq!(pod_cidr(&client, "kl-master").await.unwrap(), first);
    assert_eq!(pod_cidr(&client, "kl-worker1").await.unwrap(), second);
}

fn has_taint(node: &Node, key: &str, effect: &str) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|ts| ts.iter().any(|t| t.key == key && t.effect == effect))
}

#[tokio::test]
async fn a_node_whose_lease_stops_is_tainted_and_loses_its_pods() {
    let cluster = Cluster::start().await;
    let client = cluster.client.clone();
    let worker1 = FakeNode::start(&client, "kl-worker1", 1).await;
    let _worker2 = FakeNode::start(&client, "kl-worker2", 2).await;
    let pods = cluster.pods("default");
    let nodes: Api<Node> = Api::all(client.clone());

    // Two Pods on worker1: one plain (evicted after the timeout), one that
    // tolerates an unreachable node forever (stays, so its Ready=False can
    // be seen without racing the eviction).
    let on_worker1 = json!({"spec": {"nodeName": "kl-worker1"}});
    let mut stays = on_worker1.clone();
    merge(
        &mut stays,
        json!({"spec": {"tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}]}}),
    );
    pods.create(&PostParams::default(), &pod("evicted", on_worker1))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("stays", stays))
        .await
        .unwrap();
    for name in ["evicted", "stays"] {
        eventually(20, "the Pod to be Ready", || async {
            let p = pods.get(name).await.ok()?;
            (condition(&p, "Ready")?.status == "True").then_some(())
        })
        .await;
    }

    worker1.stop_renewing();
    let node = eventually(30, "worker1 Ready=Unknown and tainted", || async {
        let n = nodes.get("kl-worker1").await.ok()?;
        let ready = n
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == "Ready")?
            .clone();
        (ready.status == "Unknown"
            && has_taint(&n, "node.kubernetes.io/unreachable", "NoSchedule")
            && has_taint(&n, "node.kubernetes.io/unreachable", "NoExecute"))
        .then_some((n, ready))
    })
    .await;
    let (node, ready) = node;
    assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
    assert_eq!(
        ready.message.as_deref(),
        Some("Kubelet stopped posting node status.")
    );
    let no_execute = node
        .spec
        .unwrap()
        .taints
        .unwrap()
        .into_iter()
        .find(|t| t.effect == "NoExecute")
        .unwrap();
    assert!(no_execute.time_added.is_some());
    // The event is written after the condition: wait for it too.
    let not_ready = eventually(10, "a NodeNotReady event", || async {
        let e = events(&client, "kl-worker1", "NodeNotReady").await;
        (!e.is_empty()).then_some(e)
    })
    .await;
    assert_eq!(
        not_ready[0].message.as_deref(),
        Some("Node kl-worker1 status is now: NodeNotReady")
    );

    eventually(20, "the tolerating Pod to turn not ready", || async {
        let p = pods.get("stays").await.ok()?;
        (condition(&p, "Ready")?.status == "False").then_some(())
    })
    .await;

    // New Pods go to the healthy node only.
    pods.create(&PostParams::default(), &pod("new", json!({})))
        .await
        .unwrap();
    let placed = eventually(20, "the new Pod to be bound", || node_of(&pods, "new")).await;
    assert_eq!(placed, "kl-worker2");

    // After the eviction timeout the plain Pod is deleted, for good: no
    // kubelet finishes the graceful deletion, so the controller does.
    eventually(40, "the plain Pod to be evicted", || async {
        pods.get_opt("evicted").await.ok()?.is_none().then_some(())
    })
    .await;
    eventually(10, "a TaintManagerEviction event", || async {
        let e = events(&client, "evicted", "TaintManagerEviction").await;
        (!e.is_empty()).then_some(())
    })
    .await;
    let still = pods.get("stays").await.unwrap();
    assert!(still.metadata.deletion_timestamp.is_none());

    // The node comes back: taints gone, Ready again.
    worker1.resume_renewing();
    eventually(30, "worker1 Ready again without taints", || async {
        let n = nodes.get("kl-worker1").await.ok()?;
        let ready = n
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == "Ready")?
            .status
            .clone();
        let tainted = has_taint(&n, "node.kubernetes.io/unreachable", "NoSchedule")
            || has_taint(&n, "node.kubernetes.io/unreachable", "NoExecute");
        (ready == "True" && !tainted).then_some(())
    })
    .await;
}

/// The whole chain with the real loops: a ReplicaSet's Pods land one per
/// node, and when a node goes silent its Pod is replaced on the other one.
#[tokio::test]
async fn replica_set_pods_spread_and_move_off_a_silent_node() {
    use k8s_openapi::api::apps::v1::ReplicaSet;

    let cluster = Cluster::start().await;
    let client = cluster.client.clone();
    let worker1 = FakeNode::start(&client, "kl-worker1", 1).await;
    let _worker2 = FakeNode::start(&client, "kl-worker2", 2).await;
    let rs: ReplicaSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:alpine"}]},
            },
        },
    }))
    .unwrap();
    let replicasets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    replicasets
        .create(&PostParams::default(), &rs)
        .await
        .unwrap();

    let pods = cluster.pods("default");
    let web = ListParams::default().labels("app=web");
    // (pod name, node) of the live Pods, once there are two, both bound.
    let placement = || async {
        let list = pods.list(&web).await.ok()?;
        let live: Vec<(String, String)> = list
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(|p| {
                let node = p.spec.and_then(|s| s.node_name).unwrap_or_default();
                (p.metadata.name.unwrap_or_default(), node)
            })
            .collect();
        (live.len() == 2 && live.iter().all(|(_, n)| !n.is_empty())).then_some(live)
    };
    let before = eventually(30, "two bound Pods", placement).await;
    let mut nodes_used: Vec<&str> = before.iter().map(|(_, n)| n.as_str()).collect();
    nodes_used.sort();
    assert_eq!(nodes_used, ["kl-worker1", "kl-worker2"], "{before:?}");

    worker1.stop_renewing();
    let after = eventually(60, "both Pods on kl-worker2", || async {
        let live = placement().await?;
        live.iter().all(|(_, n)| n == "kl-worker2").then_some(live)
    })
    .await;
    let moved = before.iter().find(|(_, n)| n == "kl-worker1").unwrap();
    assert!(
        after.iter().all(|(name, _)| name != &moved.0),
        "the Pod of kl-worker1 was replaced: {after:?}"
    );
    // And the evicted one is gone for good (force-deleted).
    eventually(30, "the evicted Pod to be gone", || async {
        pods.get_opt(&moved.0).await.ok()?.is_none().then_some(())
    })
    .await;
}
