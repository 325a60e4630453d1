//! Deployments, ReplicaSets and Pods with the whole controller binary.
//!
//! Each test runs the real apiserver and controller (its Deployment,
//! ReplicaSet and scheduler loops) and two [`FakeNode`]s playing the
//! kubelets: Pods bound to them turn Running and Ready, and graceful
//! deletions finish. The tests walk what a student does in the lesson:
//! apply `ngx-dep`, scale it, delete a Pod, roll out a new image (watched
//! with `rollout status` from kubectl-lite and from the real kubectl), and
//! what an operator fears: a controller killed in the middle of a
//! scale-up.

mod common;

use std::collections::BTreeSet;
use std::process::Output;

use common::{eventually, Cluster, FakeNode};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

/// How long the controller may take to show a change before a test fails.
const SECS: u64 = 60;

fn lesson(file: &str) -> String {
    e2e::harness::workspace_root()
        .join("examples/lesson")
        .join(file)
        .display()
        .to_string()
}

/// A cluster with the controller running and two nodes.
async fn cluster_with_nodes() -> (Cluster, FakeNode, FakeNode) {
    let cluster = Cluster::start().await;
    let n1 = FakeNode::start(&cluster.client, "worker1", 1).await;
    let n2 = FakeNode::start(&cluster.client, "worker2", 2).await;
    (cluster, n1, n2)
}

fn deployments(c: &Cluster) -> Api<Deployment> {
    Api::namespaced(c.client.clone(), "default")
}

fn replica_sets(c: &Cluster) -> Api<ReplicaSet> {
    Api::namespaced(c.client.clone(), "default")
}

fn is_active(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && !matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The Pods of `app` that count as replicas.
async fn active_pods(c: &Cluster, app: &str) -> Vec<Pod> {
    let params = ListParams::default().labels(&format!("app={app}"));
    let pods = c.pods("default").list(&params).await.expect("listing pods");
    pods.items.into_iter().filter(is_active).collect()
}

/// Waits until `app` has exactly `n` active Pods, all Ready, and returns them.
async fn ready_pods(c: &Cluster, app: &str, n: usize) -> Vec<Pod> {
    eventually(SECS, &format!("{n} ready pods of {app}"), || async move {
        let pods = active_pods(c, app).await;
        (pods.len() == n && pods.iter().all(is_ready)).then_some(pods)
    })
    .await
}

/// Waits until the Deployment reports its rollout complete the way
/// `kubectl rollout status` reads it.
async fn rolled_out(c: &Cluster, name: &str) -> Deployment {
    eventually(
        SECS,
        &format!("deployment {name} to roll out"),
        || async move {
            let d = deployments(c).get(name).await.ok()?;
            let status = d.status.clone()?;
            let replicas = d.spec.replicas.unwrap_or(1);
            let done = status.observed_generation >= d.metadata.generation
                && status.updated_replicas.unwrap_or(0) == replicas
                && status.replicas.unwrap_or(0) == replicas
                && status.available_replicas.unwrap_or(0) == replicas;
            done.then_some(d)
        },
    )
    .await
}

async fn scale(c: &Cluster, name: &str, replicas: i32) {
    let patch = json!({"spec": {"replicas": replicas}});
    deployments(c)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("scaling the deployment");
}

/// Events about `name` with `reason`, as `kubectl describe` lists them.
async fn events(c: &Cluster, name: &str, reason: &str) -> Vec<String> {
    let api: Api<Event> = Api::namespaced(c.client.clone(), "default");
    let list = api
        .list(&ListParams::default())
        .await
        .expect("listing events");
    list.items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| e.message)
        .collect()
}

/// The apiserver applies `kubectl-lite apply -f` as a user would type it.
fn apply(c: &Cluster, file: &str) {
    let out = c.kubectl_lite(&["apply", "-f", &lesson(file)]);
    assert!(out.status.success(), "kubectl-lite apply: {}", text(&out));
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `kubectl-lite rollout status deploy/<name>`, bounded by its own timeout.
async fn kubectl_lite_rollout_status(c: &Cluster, name: &str) -> Output {
    tokio::process::Command::new(e2e::harness::bin_dir().join("kubectl-lite"))
        .args(["--server", &c.apiserver.url])
        .args([
            "rollout",
            "status",
            &format!("deploy/{name}"),
            "--timeout=60s",
        ])
        .output()
        .await
        .expect("running kubectl-lite")
}

/// `kubectl rollout status deploy/<name>` with the real kubectl.
async fn kubectl_rollout_status(c: &Cluster, name: &str) -> Output {
    let home = tempfile::tempdir().expect("a home for kubectl");
    let kubeconfig = home.path().join("config");
    std::fs::write(&kubeconfig, "").expect("an empty kubeconfig");
    tokio::process::Command::new(e2e::harness::kubectl())
        .args(["--server", &c.apiserver.url])
        .arg("--cache-dir")
        .arg(home.path().join("cache"))
        .args([
            "rollout",
            "status",
            &format!("deploy/{name}"),
            "--timeout=60s",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("HOME", home.path())
        .output()
        .await
        .expect("running kubectl")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ngx_dep_runs_two_pods_then_scales_and_heals() {
    let (c, _n1, _n2) = cluster_with_nodes().await;
    apply(&c, "ngx-dep.yml");

    // 2 Pods named ngx-dep-<pod-template-hash>-<5 characters>, one per node.
    let pods = ready_pods(&c, "ngx-dep", 2).await;
    let rss = replica_sets(&c)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert_eq!(rss.len(), 1);
    let hash = rss[0].labels()["pod-template-hash"].clone();
    assert_eq!(rss[0].name_any(), format!("ngx-dep-{hash}"));
    for pod in &pods {
        let name = pod.name_any();
        let suffix = name
            .strip_prefix(&format!("ngx-dep-{hash}-"))
            .unwrap_or_else(|| panic!("{name} is not named after its replica set"));
        assert_eq!(suffix.len(), 5, "{name}");
        assert_eq!(pod.labels()["pod-template-hash"], hash);
        let owner = &pod.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("ReplicaSet", rss[0].name_any().as_str())
        );
        assert_eq!(
            (owner.controller, owner.block_owner_deletion),
            (Some(true), Some(true))
        );
    }
    let nodes: BTreeSet<_> = pods
        .iter()
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
        .collect();
    assert_eq!(nodes.len(), 2, "spread over both nodes: {nodes:?}");
    let d = rolled_out(&c, "ngx-dep").await;
    assert_eq!(d.annotations()["deployment.kubernetes.io/revision"], "1");
    let scaled = events(&c, "ngx-dep", "ScalingReplicaSet").await;
    assert!(
        scaled.contains(&format!("Scaled up replica set ngx-dep-{hash} from 0 to 2")),
        "{scaled:?}"
    );

    // kubectl scale deploy ngx-dep --replicas=5
    scale(&c, "ngx-dep", 5).await;
    ready_pods(&c, "ngx-dep", 5).await;
    rolled_out(&c, "ngx-dep").await;

    // kubectl delete pod <one>: a new one replaces it.
    let victim = active_pods(&c, "ngx-dep").await[0].name_any();
    c.pods("default")
        .delete(&victim, &DeleteParams::default())
        .await
        .expect("deleting a pod");
    let pods = eventually(SECS, "a replacement pod", || async {
        let pods = active_pods(&c, "ngx-dep").await;
        let replaced = pods.len() == 5
            && pods.iter().all(is_ready)
            && pods.iter().all(|p| p.name_any() != victim);
        replaced.then_some(pods)
    })
    .await;
    assert!(pods.iter().all(|p| p.labels()["pod-template-hash"] == hash));
    // The ReplicaSet's status catches up with its Pods.
    let rs_name = format!("ngx-dep-{hash}");
    eventually(SECS, "the replica set to report 5 ready", || async {
        let status = replica_sets(&c).get(&rs_name).await.ok()?.status?;
        (status.replicas == 5 && status.ready_replicas == Some(5)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_completes_for_both_kubectls() {
    let (c, _n1, _n2) = cluster_with_nodes().await;
    apply(&c, "ngx-dep.yml");
    ready_pods(&c, "ngx-dep", 2).await;
    let first = kubectl_lite_rollout_status(&c, "ngx-dep").await;
    assert!(first.status.success(), "{}", text(&first));
    let old_hash = replica_sets(&c)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items[0]
        .labels()["pod-template-hash"]
        .clone();

    // kubectl set image deploy/ngx-dep nginx=nginx:1.27
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "nginx", "image": "nginx:1.27"}
    ]}}}});
    deployments(&c)
        .patch(
            "ngx-dep",
            &PatchParams::default(),
            &Patch::Strategic(&patch),
        )
        .await
        .expect("changing the image");

    let lite = kubectl_lite_rollout_status(&c, "ngx-dep").await;
    assert!(
        lite.status.success(),
        "kubectl-lite rollout status: {}",
        text(&lite)
    );
    assert!(
        text(&lite).contains("successfully rolled out"),
        "{}",
        text(&lite)
    );
    let real = kubectl_rollout_status(&c, "ngx-dep").await;
    assert!(
        real.status.success(),
        "kubectl rollout status: {}",
        text(&real)
    );
    assert!(
        text(&real).contains("successfully rolled out"),
        "{}",
        text(&real)
    );

    let d = rolled_out(&c, "ngx-dep").await;
    assert_eq!(d.annotations()["deployment.kubernetes.io/revision"], "2");
    let progressing = d
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.type_.as_deref() == Some("Progressing"))
        })
        .and_then(|c| c.reason.clone());
    assert_eq!(progressing.as_deref(), Some("NewReplicaSetAvailable"));

    let rss = replica_sets(&c)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert_eq!(rss.len(), 2);
    let old = rss
        .iter()
        .find(|rs| rs.labels()["pod-template-hash"] == old_hash)
        .unwrap();
    let new = rss
        .iter()
        .find(|rs| rs.labels()["pod-template-hash"] != old_hash)
        .unwrap();
    assert_eq!(old.spec.replicas, Some(0));
    assert_eq!(new.spec.replicas, Some(2));
    assert_eq!(new.annotations()["deployment.kubernetes.io/revision"], "2");
    assert_eq!(old.annotations()["deployment.kubernetes.io/revision"], "1");

    // Only Pods of the new template remain, once the old ones terminated.
    let new_hash = new.labels()["pod-template-hash"].clone();
    eventually(SECS, "old pods to be gone", || async {
        let params = ListParams::default().labels("app=ngx-dep");
        let pods = c.pods("default").list(&params).await.ok()?.items;
        let only_new = pods.len() == 2
            && pods
                .iter()
                .all(|p| p.labels()["pod-template-hash"] == new_hash);
        only_new.then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_replaces_every_pod_at_once() {
    let (c, _n1, _n2) = cluster_with_nodes().await;
    apply(&c, "ngx-dep.yml");
    let patch =
        json!({"spec": {"replicas": 3, "strategy": {"type": "Recreate", "rollingUpdate": null}}});
    deployments(&c)
        .patch("ngx-dep", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("switching to Recreate");
    let before: BTreeSet<String> = ready_pods(&c, "ngx-dep", 3)
        .await
        .iter()
        .map(|p| p.name_any())
        .collect();
    rolled_out(&c, "ngx-dep").await;

    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "nginx", "image": "nginx:1.27"}
    ]}}}});
    deployments(&c)
        .patch(
            "ngx-dep",
            &PatchParams::default(),
            &Patch::Strategic(&patch),
        )
        .await
        .expect("changing the image");
    let lite = kubectl_lite_rollout_status(&c, "ngx-dep").await;
    assert!(
        lite.status.success(),
        "kubectl-lite rollout status: {}",
        text(&lite)
    );

    let after = ready_pods(&c, "ngx-dep", 3).await;
    assert!(
        after.iter().all(|p| !before.contains(&p.name_any())),
        "every pod replaced"
    );
    let rss = replica_sets(&c)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    let mut sizes: Vec<i32> = rss.iter().map(|rs| rs.spec.replicas.unwrap_or(1)).collect();
    sizes.sort();
    assert_eq!(sizes, [0, 3]);
    // Recreate scales the old ReplicaSet to 0 before the new one starts:
    // the new one is created at its full size.
    let new = rss.iter().find(|rs| rs.spec.replicas == Some(3)).unwrap();
    let scaled = events(&c, "ngx-dep", "ScalingReplicaSet").await;
    assert!(
        scaled.contains(&format!(
            "Scaled up replica set {} from 0 to 3",
            new.name_any()
        )),
        "{scaled:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_the_controller_mid_scale_up_makes_no_extra_pods() {
    let (mut c, _n1, _n2) = cluster_with_nodes().await;
    apply(&c, "ngx-dep.yml");
    ready_pods(&c, "ngx-dep", 2).await;
    rolled_out(&c, "ngx-dep").await;

    scale(&c, "ngx-dep", 30).await;
    // Kill the controller as soon as the scale-up has begun.
    eventually(SECS, "the scale-up to begin", || async {
        (active_pods(&c, "ngx-dep").await.len() > 2).then_some(())
    })
    .await;
    c.kill_controller();
    let created_before_the_crash = active_pods(&c, "ngx-dep").await.len();
    eprintln!("{created_before_the_crash} pods when the controller was killed");
    c.start_controller();

    ready_pods(&c, "ngx-dep", 30).await;
    rolled_out(&c, "ngx-dep").await;
    // Exactly 30, and never more: an overshoot would have been corrected by
    // deleting Pods, which leaves SuccessfulDelete events.
    let all = c
        .pods("default")
        .list(&ListParams::default().labels("app=ngx-dep"))
        .await
        .unwrap()
        .items;
    assert_eq!(
        all.len(),
        30,
        "{created_before_the_crash} pods existed at the crash"
    );
    let rs_name = replica_sets(&c)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items[0]
        .name_any();
    assert_eq!(
        events(&c, &rs_name, "SuccessfulDelete").await,
        Vec::<String>::new()
    );
}
