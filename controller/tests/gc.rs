//! The garbage collector against a real apiserver: Background, Foreground
//! and Orphan deletion by ownerReferences.
//!
//! Only the collector runs (in this process, through `gc::run`), so the
//! Deployment and ReplicaSet loops do not create or delete anything behind
//! the tests' backs: every owner and dependent here is written by hand, as
//! those loops would write them.

mod common;

use common::{eventually, Cluster, FakeNode, InProcessLoop};
use controller::gc;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

/// How long any cascade may take before a test fails.
const CASCADE_SECS: u64 = 30;

async fn create<K>(client: &kube::Client, object: Value) -> K
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
{
    let api: Api<K> = Api::namespaced(client.clone(), "default");
    let object: K = serde_json::from_value(object).expect("a valid object");
    api.create(&PostParams::default(), &object)
        .await
        .unwrap_or_else(|e| panic!("creating {}: {e}", object.name_any()))
}

/// A controller's reference, as upstream's `metav1.NewControllerRef` makes
/// it: `controller: true, blockOwnerDeletion: true`. (kube-rs's
/// `controller_owner_ref` leaves `blockOwnerDeletion` out, and then a
/// Foreground delete does not wait for the dependent.)
fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        block_owner_deletion: Some(true),
        ..owner
            .controller_owner_ref(&())
            .expect("owner has a name and uid")
    }
}

/// A plain reference, as a second owner would be named.
fn plain_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    owner.owner_ref(&()).expect("owner has a name and uid")
}

fn config_map(name: &str, owners: &[OwnerReference]) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "ownerReferences": owners},
        "data": {"k": "v"},
    })
}

fn pod_template(app: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": "nginx", "image": "nginx:alpine"}]},
    })
}

/// A Deployment `app`, its ReplicaSet and `pods` Pods, wired by
/// ownerReferences as the Deployment and ReplicaSet loops would wire them.
/// Pods go to `node` when given (they then terminate gracefully).
async fn deployment_tree(
    client: &kube::Client,
    app: &str,
    pods: usize,
    node: Option<&str>,
) -> (Deployment, ReplicaSet, Vec<Pod>) {
    let deployment: Deployment = create(
        client,
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": app},
            "spec": {"replicas": pods, "selector": {"matchLabels": {"app": app}},
                     "template": pod_template(app)},
        }),
    )
    .await;
    let replicaset: ReplicaSet = create(
        client,
        json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": format!("{app}-5d8f7c9b6"), "labels": {"app": app},
                         "ownerReferences": [controller_ref(&deployment)]},
            "spec": {"replicas": pods, "selector": {"matchLabels": {"app": app}},
                     "template": pod_template(app)},
        }),
    )
    .await;
    let mut created = Vec::new();
    for i in 0..pods {
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("{app}-5d8f7c9b6-pod{i}"), "labels": {"app": app},
                         "ownerReferences": [controller_ref(&replicaset)]},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:alpine"}]},
        });
        if let Some(node) = node {
            pod["spec"]["nodeName"] = json!(node);
        }
        created.push(create::<Pod>(client, pod).await);
    }
    (deployment, replicaset, created)
}

async fn exists<K>(client: &kube::Client, name: &str) -> Option<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
{
    let api: Api<K> = Api::namespaced(client.clone(), "default");
    api.get_opt(name).await.expect("reading from the apiserver")
}

async fn pods_of(client: &kube::Client, app: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .expect("listing pods")
        .items
}

fn owner_uids<K: Resource>(object: &K) -> Vec<String> {
    object
        .owner_references()
        .iter()
        .map(|r| r.uid.clone())
        .collect()
}

#[tokio::test]
async fn kubectl_delete_deployment_removes_its_replicasets_and_pods() {
    let cluster = Cluster::apiserver_only().await;
    let client = &cluster.client;
    let _gc = InProcessLoop::start(&cluster, gc::run);
    let (_, replicaset, _) = deployment_tree(client, "web", 2, None).await;
    // Not owned by anything: the collector leaves it alone.
    let bystander: Pod = create(
        client,
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "bystander", "labels": {"app": "web"}},
               "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    )
    .await;

    let out = cluster.kubectl_lite(&["delete", "deploy", "web"]);
    assert!(
        out.status.success(),
        "kubectl-lite delete: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    eventually(
        CASCADE_SECS,
        "the ReplicaSet and its Pods to go",
        || async {
            let rs_gone = exists::<ReplicaSet>(client, &replicaset.name_any())
                .await
                .is_none();
            let names: Vec<String> = pods_of(client, "web")
                .await
                .iter()
                .map(|p| p.name_any())
                .collect();
            (rs_gone && names == [bystander.name_any()]).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn orphan_deletion_keeps_dependents_and_removes_only_the_owners_reference() {
    let cluster = Cluster::apiserver_only().await;
    let client = &cluster.client;
    let _gc = InProcessLoop::start(&cluster, gc::run);
    let owner: ConfigMap = create(client, config_map("owner", &[])).await;
    let first: ConfigMap = create(client, config_map("first", &[controller_ref(&owner)])).await;
    let second: ConfigMap = create(client, config_map("second", &[controller_ref(&owner)])).await;
    // The orphans' own dependents keep their owner.
    let grandchild: ConfigMap =
        create(client, config_map("grandchild", &[controller_ref(&first)])).await;

    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    config_maps
        .delete("owner", &DeleteParams::orphan())
        .await
        .expect("deleting the owner with propagationPolicy Orphan");

    // The owner goes only once the collector has orphaned the dependents
    // and removed the `orphan` finalizer.
    eventually(CASCADE_SECS, "the owner to go", || async {
        exists::<ConfigMap>(client, "owner")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    for name in [first.name_any(), second.name_any()] {
        let orphan = exists::<ConfigMap>(client, &name)
            .await
            .unwrap_or_else(|| panic!("{name} was deleted; Orphan keeps dependents"));
        assert!(
            owner_uids(&orphan).is_empty(),
            "{name} still names its owner: {:?}",
            orphan.owner_references()
        );
    }
    let grandchild_now = exists::<ConfigMap>(client, &grandchild.name_any())
        .await
        .expect("the orphan's own dependent stays");
    assert_eq!(owner_uids(&grandchild_now), owner_uids(&grandchild));
}

#[tokio::test]
async fn foreground_deletion_keeps_the_owner_until_its_dependents_are_gone() {
    let cluster = Cluster::apiserver_only().await;
    let client = &cluster.client;
    let _gc = InProcessLoop::start(&cluster, gc::run);
    let owner: ConfigMap = create(client, config_map("owner", &[])).await;
    create::<ConfigMap>(client, config_map("free", &[controller_ref(&owner)])).await;
    // A dependent that someone else's finalizer holds: it is deleted
    // (deletionTimestamp) but stays until that finalizer goes.
    let mut held = config_map("held", &[controller_ref(&owner)]);
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    create::<ConfigMap>(client, held).await;

    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    config_maps
        .delete("owner", &DeleteParams::foreground())
        .await
        .expect("deleting the owner with propagationPolicy Foreground");

    eventually(CASCADE_SECS, "the dependents to be deleted", || async {
        let free_gone = exists::<ConfigMap>(client, "free").await.is_none();
        let held_deleted = exists::<ConfigMap>(client, "held")
            .await
            .is_some_and(|cm| cm.metadata.deletion_timestamp.is_some());
        (free_gone && held_deleted).then_some(())
    })
    .await;
    // "held" still exists, so its owner must too, marked and waiting.
    let waiting = exists::<ConfigMap>(client, "owner")
        .await
        .expect("the owner waits for its blocking dependent");
    assert!(waiting.metadata.deletion_timestamp.is_some());
    assert!(
        waiting
            .finalizers()
            .iter()
            .any(|f| f == "foregroundDeletion"),
        "finalizers: {:?}",
        waiting.finalizers()
    );

    // Let the held dependent go: then the owner goes.
    config_maps
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .expect("removing the hold finalizer");
    eventually(
        CASCADE_SECS,
        "the owner to go after its dependents",
        || async {
            let owner_gone = exists::<ConfigMap>(client, "owner").await.is_none();
            let held_gone = exists::<ConfigMap>(client, "held").await.is_none();
            (owner_gone && held_gone).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn foreground_deletion_of_a_deployment_removes_pods_then_replicaset_then_deployment() {
    let cluster = Cluster::apiserver_only().await;
    let client = &cluster.client;
    // The Pods run on a node: deleting one only marks it, and it is gone
    // when the node (here a fake kubelet) has stopped it.
    let _node = FakeNode::start(client, "node-1", 1).await;
    let (deployment, replicaset, _) = deployment_tree(client, "web", 2, Some("node-1")).await;
    // Started after the tree exists: the collector deletes the ReplicaSet
    // in Foreground only if it knows the ReplicaSet has Pods, and Pods
    // created milliseconds before the delete may not have reached its
    // cache yet (upstream's dependency graph has the same window).
    let _gc = InProcessLoop::start(&cluster, gc::run);

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deployments
        .delete("web", &DeleteParams::foreground())
        .await
        .expect("deleting the Deployment with propagationPolicy Foreground");

    // Read owners before dependents: a dependent seen after its owner was
    // seen gone would mean the owner did not wait for it.
    eventually(CASCADE_SECS, "the whole tree to go", || async {
        let deployment_now = exists::<Deployment>(client, &deployment.name_any()).await;
        let replicaset_now = exists::<ReplicaSet>(client, &replicaset.name_any()).await;
        let pods_now = pods_of(client, "web").await;
        if !pods_now.is_empty() {
            assert!(
                replicaset_now.is_some(),
                "the ReplicaSet went before its Pods"
            );
        }
        if let Some(rs) = &replicaset_now {
            assert!(
                deployment_now.is_some(),
                "the Deployment went before its ReplicaSet"
            );
            if rs.metadata.deletion_timestamp.is_some() {
                // Recursion: the ReplicaSet itself is deleted in Foreground.
                assert!(
                    rs.finalizers().iter().any(|f| f == "foregroundDeletion"),
                    "the ReplicaSet is deleted in Foreground: {:?}",
                    rs.finalizers()
                );
            }
        }
        if let Some(d) = &deployment_now {
            assert!(
                d.finalizers().iter().any(|f| f == "foregroundDeletion"),
                "the Deployment waits with its finalizer: {:?}",
                d.finalizers()
            );
        }
        (deployment_now.is_none() && replicaset_now.is_none() && pods_now.is_empty()).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_dependent_of_an_owner_recreated_under_the_same_name_is_deleted() {
    let cluster = Cluster::apiserver_only().await;
    let client = &cluster.client;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    // Before the collector runs: an owner, its dependent, the owner deleted
    // and created again. The name matches; the uid does not.
    let first_owner: ConfigMap = create(client, config_map("owner", &[])).await;
    create::<ConfigMap>(client, config_map("stale", &[controller_ref(&first_owner)])).await;
    config_maps
        .delete("owner", &DeleteParams::background())
        .await
        .expect("deleting the first owner");
    let second_owner: ConfigMap = create(client, config_map("owner", &[])).await;
    assert_ne!(first_owner.uid(), second_owner.uid());
    let current: ConfigMap = create(
        client,
        config_map("current", &[controller_ref(&second_owner)]),
    )
    .await;

    let _gc = InProcessLoop::start(&cluster, gc::run);
    eventually(CASCADE_SECS, "the stale dependent to go", || async {
        exists::<ConfigMap>(client, "stale")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    let owner_now = exists::<ConfigMap>(client, "owner")
        .await
        .expect("the new owner stays");
    assert_eq!(owner_now.uid(), second_owner.uid());
    let current_now = exists::<ConfigMap>(client, "current")
        .await
        .expect("the new owner's dependent stays");
    assert_eq!(owner_uids(&current_now), owner_uids(&current));
}

#[tokio::test]
async fn a_dependent_with_a_remaining_owner_is_kept() {
    let cluster = Cluster::apiserver_only().await;
    let client = &cluster.client;
    let _gc = InProcessLoop::start(&cluster, gc::run);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let leaving: ConfigMap = create(client, config_map("leaving", &[])).await;
    let staying: ConfigMap = create(client, config_map("staying", &[])).await;
    create::<ConfigMap>(
        client,
        config_map("shared", &[plain_ref(&leaving), plain_ref(&staying)]),
    )
    .await;

    config_maps
        .delete("leaving", &DeleteParams::background())
        .await
        .expect("deleting one owner");
    // The collector keeps it, and drops the reference to the owner that is gone.
    let shared = eventually(CASCADE_SECS, "the dangling reference to go", || async {
        let shared = exists::<ConfigMap>(client, "shared")
            .await
            .expect("a dependent with an owner left is kept");
        (owner_uids(&shared).len() == 1).then_some(shared)
    })
    .await;
    assert_eq!(owner_uids(&shared), [staying.uid().unwrap()]);

    // Its last owner goes: so does it.
    config_maps
        .delete("staying", &DeleteParams::background())
        .await
        .expect("deleting the other owner");
    eventually(
        CASCADE_SECS,
        "the dependent to follow its last owner",
        || async {
            exists::<ConfigMap>(client, "shared")
                .await
                .is_none()
                .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn foreground_deletion_lets_a_dependent_with_another_owner_live() {
    let cluster = Cluster::apiserver_only().await;
    let client = &cluster.client;
    let _gc = InProcessLoop::start(&cluster, gc::run);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let leaving: ConfigMap = create(client, config_map("leaving", &[])).await;
    let staying: ConfigMap = create(client, config_map("staying", &[])).await;
    create::<ConfigMap>(
        client,
        config_map("shared", &[controller_ref(&leaving), plain_ref(&staying)]),
    )
    .await;

    config_maps
        .delete("leaving", &DeleteParams::foreground())
        .await
        .expect("deleting one owner with propagationPolicy Foreground");
    // The dependent lets go of the deleted owner instead of being deleted,
    // and the owner, no longer blocked, goes.
    eventually(CASCADE_SECS, "the owner to go", || async {
        exists::<ConfigMap>(client, "leaving")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    let shared = exists::<ConfigMap>(client, "shared")
        .await
        .expect("a dependent with another owner is kept");
    assert_eq!(owner_uids(&shared), [staying.uid().unwrap()]);
}

#[tokio::test]
async fn a_cluster_scoped_object_naming_a_namespaced_owner_is_kept_with_a_warning() {
    use k8s_openapi::api::core::v1::{Event, Node};
    let cluster = Cluster::apiserver_only().await;
    let client = &cluster.client;
    let _gc = InProcessLoop::start(&cluster, gc::run);
    // A Node cannot be owned by a ConfigMap: the reference cannot resolve,
    // so it must never be the reason to delete the Node.
    let owner: ConfigMap = create(client, config_map("owner", &[])).await;
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node-1", "ownerReferences": [controller_ref(&owner)]},
    }))
    .unwrap();
    nodes
        .create(&PostParams::default(), &node)
        .await
        .expect("creating the node");

    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    eventually(
        CASCADE_SECS,
        "an OwnerRefInvalidNamespace event",
        || async {
            let list = events.list(&ListParams::default()).await.ok()?;
            list.items
                .into_iter()
                .find(|e| {
                    e.reason.as_deref() == Some("OwnerRefInvalidNamespace")
                        && e.involved_object.name.as_deref() == Some("node-1")
                })
                .map(|_| ())
        },
    )
    .await;
    assert!(
        nodes.get_opt("node-1").await.unwrap().is_some(),
        "the node was deleted"
    );
}
