//! Whole reconciles against a real apiserver.

use super::*;
use crate::replicaset::test_cluster::{synced, TestCluster};

const NGX_DEP: &str = include_str!("../../../examples/lesson/ngx-dep.yml");

fn lesson_deployment() -> Deployment {
    let docs = api::decode::decode_manifests(NGX_DEP, "ngx-dep.yml").unwrap();
    serde_json::from_value(docs[0].value.clone()).unwrap()
}

struct Fixture {
    cluster: TestCluster,
    ctrl: Arc<DeploymentController>,
    deployments: Api<Deployment>,
    rss: Api<ReplicaSet>,
}

impl Fixture {
    async fn start(d: Deployment) -> Fixture {
        let cluster = TestCluster::start();
        let ctrl = Arc::new(DeploymentController::new(
            cluster.ctx.clone(),
            cluster.cache(),
        ));
        let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), "default");
        deployments
            .create(&PostParams::default(), &d)
            .await
            .unwrap();
        Fixture {
            rss: Api::namespaced(cluster.client.clone(), "default"),
            deployments,
            cluster,
            ctrl,
        }
    }

    /// One pass, with the ReplicaSet cache caught up first.
    async fn reconcile(&self) -> Action {
        synced(&self.ctrl.replicasets, &self.cluster.client).await;
        let d = self.deployments.get("ngx-dep").await.unwrap();
        reconcile(Arc::new(d), self.ctrl.clone()).await.unwrap()
    }

    async fn deployment(&self) -> Deployment {
        self.deployments.get("ngx-dep").await.unwrap()
    }

    /// Oldest revision first (creation times are whole seconds, too
    /// coarse to order them in a fast test).
    async fn replica_sets(&self) -> Vec<ReplicaSet> {
        let mut rss = self.rss.list(&Default::default()).await.unwrap().items;
        rss.sort_by(by_revision);
        rss
    }

    async fn versions(&self) -> Vec<String> {
        let mut all = vec![self.deployment().await.resource_version().unwrap()];
        all.extend(
            self.replica_sets()
                .await
                .iter()
                .map(|rs| rs.resource_version().unwrap()),
        );
        all
    }

    /// Plays the ReplicaSet loop and the kubelets: every ReplicaSet
    /// reports its Pods present and available, `terminating` of them
    /// still shutting down.
    async fn report(&self, terminating: i32) {
        for rs in self.replica_sets().await {
            let n = rs_replicas(&rs);
            let status = json!({"status": {
                "replicas": n, "readyReplicas": n, "availableReplicas": n,
                "fullyLabeledReplicas": n, "terminatingReplicas": terminating,
                "observedGeneration": rs.metadata.generation,
            }});
            self.rss
                .patch_status(
                    &rs.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&status),
                )
                .await
                .unwrap();
        }
    }

    async fn set_image(&self, image: &str) {
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "nginx", "image": image}
        ]}}}});
        self.deployments
            .patch(
                "ngx-dep",
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
            .unwrap();
    }
}

fn condition_reason(d: &Deployment, type_: &str) -> Option<String> {
    get_condition(d.status.as_ref()?, type_)?.reason.clone()
}

fn sizes(rss: &[ReplicaSet]) -> Vec<i32> {
    rss.iter().map(rs_replicas).collect()
}

#[tokio::test]
async fn first_pass_creates_the_replica_set_and_a_second_pass_writes_nothing() {
    let f = Fixture::start(lesson_deployment()).await;
    f.reconcile().await;

    let d = f.deployment().await;
    let rss = f.replica_sets().await;
    assert_eq!(rss.len(), 1);
    let rs = &rss[0];
    let hash = pod_template_hash(&d.spec.template, None);
    assert_eq!(rs.name_any(), format!("ngx-dep-{hash}"));
    assert_eq!(rs.labels().get(POD_TEMPLATE_HASH_LABEL), Some(&hash));
    let selector = rs.spec.selector.match_labels.clone().unwrap();
    assert_eq!(selector.get(POD_TEMPLATE_HASH_LABEL), Some(&hash));
    assert_eq!(selector.get("app").map(String::as_str), Some("ngx-dep"));
    let template_labels = rs
        .spec
        .template
        .as_ref()
        .unwrap()
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    assert_eq!(template_labels.get(POD_TEMPLATE_HASH_LABEL), Some(&hash));
    let owner = controller_of(&rs.metadata).unwrap();
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Deployment", d.uid().unwrap().as_str())
    );
    assert_eq!(owner.block_owner_deletion, Some(true));
    assert_eq!(rs.spec.replicas, Some(2));
    assert_eq!(annotation(&rs.metadata, REVISION_ANNOTATION), Some("1"));
    assert_eq!(
        annotation(&rs.metadata, DESIRED_REPLICAS_ANNOTATION),
        Some("2")
    );
    // 2 replicas, 25% surge rounded up: at most 3 Pods.
    assert_eq!(annotation(&rs.metadata, MAX_REPLICAS_ANNOTATION), Some("3"));

    assert_eq!(annotation(&d.metadata, REVISION_ANNOTATION), Some("1"));
    let status = d.status.clone().unwrap();
    assert_eq!(status.observed_generation, d.metadata.generation);
    assert_eq!(
        condition_reason(&d, cond::PROGRESSING).as_deref(),
        Some(cond::NEW_REPLICA_SET_CREATED)
    );
    assert_eq!(
        condition_reason(&d, cond::AVAILABLE).as_deref(),
        Some(cond::MINIMUM_REPLICAS_UNAVAILABLE)
    );

    let before = f.versions().await;
    f.reconcile().await;
    assert_eq!(f.versions().await, before, "a second pass writes nothing");

    // The Pods show up: Available, then complete.
    f.report(0).await;
    f.reconcile().await;
    let d = f.deployment().await;
    let status = d.status.clone().unwrap();
    assert_eq!(
        (
            status.replicas,
            status.updated_replicas,
            status.available_replicas
        ),
        (Some(2), Some(2), Some(2))
    );
    assert_eq!(
        condition_reason(&d, cond::AVAILABLE).as_deref(),
        Some(cond::MINIMUM_REPLICAS_AVAILABLE)
    );
    assert_eq!(
        condition_reason(&d, cond::PROGRESSING).as_deref(),
        Some(cond::NEW_REPLICA_SET_AVAILABLE)
    );
    let before = f.versions().await;
    f.reconcile().await;
    assert_eq!(
        f.versions().await,
        before,
        "a settled deployment gets no writes"
    );
}

#[tokio::test]
async fn a_rolling_update_stays_within_surge_and_unavailability() {
    let f = Fixture::start(lesson_deployment()).await;
    f.reconcile().await;
    f.report(0).await;
    f.reconcile().await;

    f.set_image("nginx:1.27").await;
    let mut steps = 0;
    loop {
        f.reconcile().await;
        let rss = f.replica_sets().await;
        let total: i32 = sizes(&rss).iter().sum();
        // maxSurge 1 (25% of 2, up), maxUnavailable 0 (25% of 2, down).
        assert!(total <= 3, "surge exceeded: {:?}", sizes(&rss));
        assert!(total >= 2, "below the minimum: {:?}", sizes(&rss));
        f.report(0).await;
        let d = f.deployment().await;
        if condition_reason(&d, cond::PROGRESSING).as_deref()
            == Some(cond::NEW_REPLICA_SET_AVAILABLE)
            && rss.len() == 2
        {
            break;
        }
        steps += 1;
        assert!(steps < 20, "the rollout does not finish: {:?}", sizes(&rss));
    }
    let rss = f.replica_sets().await;
    assert_eq!(sizes(&rss), [0, 2]);
    assert_eq!(annotation(&rss[1].metadata, REVISION_ANNOTATION), Some("2"));
    let d = f.deployment().await;
    assert_eq!(annotation(&d.metadata, REVISION_ANNOTATION), Some("2"));
    let status = d.status.unwrap();
    assert_eq!(
        (status.replicas, status.updated_replicas),
        (Some(2), Some(2))
    );
}

#[tokio::test]
async fn scaling_in_the_middle_of_a_rollout_is_proportional() {
    let f = Fixture::start(lesson_deployment()).await;
    f.reconcile().await;
    f.report(0).await;
    f.reconcile().await;
    f.set_image("nginx:1.27").await;
    f.reconcile().await;
    assert_eq!(sizes(&f.replica_sets().await), [2, 1]);

    let patch = json!({"spec": {"replicas": 4}});
    f.deployments
        .patch("ngx-dep", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    f.reconcile().await;
    // From 3 (max 3) to 5 (4 + 1 surge): each grows by its share.
    let rss = f.replica_sets().await;
    assert_eq!(sizes(&rss), [3, 2]);
    for rs in &rss {
        assert_eq!(
            annotation(&rs.metadata, DESIRED_REPLICAS_ANNOTATION),
            Some("4")
        );
        assert_eq!(annotation(&rs.metadata, MAX_REPLICAS_ANNOTATION), Some("5"));
    }
}

#[tokio::test]
async fn recreate_waits_for_old_pods_to_be_gone() {
    let mut d = lesson_deployment();
    d.spec.strategy = Some(serde_json::from_value(json!({"type": "Recreate"})).unwrap());
    d.spec.revision_history_limit = Some(0);
    let f = Fixture::start(d).await;
    f.reconcile().await;
    f.report(0).await;
    f.reconcile().await;

    f.set_image("nginx:1.27").await;
    f.reconcile().await;
    let rss = f.replica_sets().await;
    assert_eq!(
        sizes(&rss),
        [0],
        "old pods go first, no new replica set yet"
    );

    // Scaled to 0 but its Pods are still shutting down.
    f.report(2).await;
    f.reconcile().await;
    assert_eq!(f.replica_sets().await.len(), 1);

    f.report(0).await;
    f.reconcile().await;
    let rss = f.replica_sets().await;
    assert_eq!(sizes(&rss), [0, 2]);

    // Done: with revisionHistoryLimit 0 the old one is deleted.
    f.report(0).await;
    f.reconcile().await;
    f.reconcile().await;
    let rss = f.replica_sets().await;
    assert_eq!(rss.len(), 1);
    assert_eq!(annotation(&rss[0].metadata, REVISION_ANNOTATION), Some("2"));
}

#[tokio::test]
async fn a_paused_deployment_scales_but_does_not_roll_out() {
    let f = Fixture::start(lesson_deployment()).await;
    f.reconcile().await;
    f.report(0).await;
    f.reconcile().await;
    let patch = json!({"spec": {"paused": true}});
    f.deployments
        .patch("ngx-dep", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    f.reconcile().await;
    let d = f.deployment().await;
    assert_eq!(
        condition_reason(&d, cond::PROGRESSING).as_deref(),
        Some(cond::DEPLOYMENT_PAUSED)
    );

    f.set_image("nginx:1.27").await;
    let patch = json!({"spec": {"replicas": 3}});
    f.deployments
        .patch("ngx-dep", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    f.reconcile().await;
    assert_eq!(sizes(&f.replica_sets().await), [3], "scaled, not rolled");

    let patch = json!({"spec": {"paused": false}});
    f.deployments
        .patch("ngx-dep", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    f.reconcile().await;
    assert_eq!(
        f.replica_sets().await.len(),
        2,
        "resumed: the rollout starts"
    );
}

#[tokio::test]
async fn a_stuck_rollout_exceeds_its_progress_deadline() {
    let mut d = lesson_deployment();
    d.spec.progress_deadline_seconds = Some(3);
    let f = Fixture::start(d).await;
    // The new Pods never become available: no report. A pass that
    // writes status waits for the watch event of its own write, so pass
    // again until nothing is left to write (a loaded machine may need a
    // pass more than an idle one).
    let mut action = Action::await_change();
    for _ in 0..5 {
        action = f.reconcile().await;
        if action != Action::await_change() {
            break;
        }
    }
    // It asks to come back when the deadline has passed...
    assert_ne!(action, Action::await_change());
    tokio::time::sleep(Duration::from_millis(3100)).await;
    f.reconcile().await;
    // ...and then says so, which ends `kubectl rollout status` with an error.
    let d = f.deployment().await;
    let progressing = get_condition(d.status.as_ref().unwrap(), cond::PROGRESSING).unwrap();
    assert_eq!(
        progressing.reason.as_deref(),
        Some(cond::PROGRESS_DEADLINE_EXCEEDED)
    );
    assert_eq!(progressing.status.as_deref(), Some("False"));
    assert_eq!(
        progressing.message.as_deref(),
        Some(
            format!(
                "ReplicaSet {:?} has timed out progressing.",
                f.replica_sets().await[0].name_any()
            )
            .as_str()
        )
    );
}

#[tokio::test]
async fn adopts_a_matching_orphan_replica_set() {
    let f = Fixture::start(lesson_deployment()).await;
    let d = f.deployment().await;
    let hash = pod_template_hash(&d.spec.template, None);
    let mut template = d.spec.template.clone();
    template
        .metadata
        .as_mut()
        .unwrap()
        .labels
        .as_mut()
        .unwrap()
        .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
    let orphan: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "hand-made", "labels": {"app": "ngx-dep"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "ngx-dep", POD_TEMPLATE_HASH_LABEL: hash}},
            "template": template,
        }
    }))
    .unwrap();
    f.rss.create(&PostParams::default(), &orphan).await.unwrap();
    f.reconcile().await;

    let rss = f.replica_sets().await;
    assert_eq!(
        rss.len(),
        1,
        "adopted as the new replica set, no second one"
    );
    let owner = controller_of(&rss[0].metadata).unwrap();
    assert_eq!(owner.uid, d.uid().unwrap());
    assert_eq!(annotation(&rss[0].metadata, REVISION_ANNOTATION), Some("1"));
}
