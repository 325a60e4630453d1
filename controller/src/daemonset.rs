//! # DaemonSets: one Pod on every node that should have one
//!
//! A DaemonSet says "run this Pod on each node" - a log shipper, a node
//! exporter, a network agent. This loop compares, node by node, where the
//! DaemonSet's Pods are with where they should be, as upstream's
//! `pkg/controller/daemon` does:
//!
//! - **Which nodes**: those the scheduler would accept the Pod on
//!   ([`crate::scheduler::filter`]): `nodeSelector` and required node
//!   affinity match, and every `NoSchedule`/`NoExecute` taint is tolerated.
//!   A DaemonSet's Pods tolerate more than others ([`daemon_tolerations`]):
//!   a node that is not ready, unreachable, under pressure or cordoned
//!   keeps its daemon - but the control-plane node's taint is tolerated
//!   only when the template says so. A node whose labels stop matching,
//!   or that gains a `NoExecute` taint the Pod does not tolerate, loses its
//!   Pod; an untolerated `NoSchedule` taint stops new Pods only.
//! - **Its Pods** are claimed as a ReplicaSet claims them
//!   ([`crate::ownership`]) and carry a node affinity naming their node
//!   (`matchFields: metadata.name In [node]`): the scheduler binds them
//!   there, as it does every Pod. A node joining gets a Pod; a node leaving
//!   takes its Pod with it; a second Pod on one node is deleted.
//! - **Updates**: each Pod carries the `controller-revision-hash` of the
//!   template it was made from. With `RollingUpdate`, Pods of an older
//!   template are replaced node by node: deleted first while no more than
//!   `maxUnavailable` nodes lack an available Pod, or with `maxSurge`, a new
//!   Pod started beside the old one, which goes once the new one is
//!   available. `OnDelete` replaces a Pod only when someone deletes it.
//! - **Status**: `desiredNumberScheduled`, `currentNumberScheduled`,
//!   `numberMisscheduled`, `numberReady`, `updatedNumberScheduled`,
//!   `numberAvailable`, `numberUnavailable`, `observedGeneration` -
//!   what `kubectl get ds` and `kubectl rollout status ds/X` read.
//!
//! What to do is a pure function ([`plan`]) of the DaemonSet, the nodes and
//! the Pods, tested as a table; [`reconcile`] only carries it out. As the
//! ReplicaSet loop does, a plan made from the cache that has work in it is
//! made again from the apiserver's list before anything is created, so a
//! cache that lags never doubles a Pod.
//!
//! - **History**: each template version is a ControllerRevision
//!   `NAME-<hash>` ([`crate::history`]), what `kubectl rollout history|undo
//!   ds/X` read and restore.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodTemplateSpec, Toleration,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};

use crate::ownership::{controller_of, Owner};
use crate::podcontrol::PodControl;
use crate::replicaset::{is_pod_active, is_pod_available, pod_from_template};
use crate::{Context, Error, Result};

const COMPONENT: &str = "daemonset-controller";

/// The label naming the template version a Pod was made from (upstream's
/// `ControllerRevisionHashLabelKey`, shared with StatefulSets).
pub const REVISION_HASH_LABEL: &str = "controller-revision-hash";

// ---------------------------------------------------------------------------
// Which nodes, and with which Pod (pure)

/// The tolerations every daemon Pod gets besides its own
/// (`AddOrUpdateDaemonPodTolerations`): a daemon stays on a node that is
/// not ready, unreachable, under pressure or cordoned.
pub fn daemon_tolerations(host_network: bool) -> Vec<Toleration> {
    let toleration = |key: &str, effect: &str| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    };
    let mut tolerations = vec![
        toleration(crate::nodelifecycle::TAINT_NOT_READY, "NoExecute"),
        toleration(crate::nodelifecycle::TAINT_UNREACHABLE, "NoExecute"),
        toleration("node.kubernetes.io/disk-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/memory-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/pid-pressure", "NoSchedule"),
        toleration(crate::scheduler::TAINT_UNSCHEDULABLE, "NoSchedule"),
    ];
    if host_network {
        tolerations.push(toleration(
            "node.kubernetes.io/network-unavailable",
            "NoSchedule",
        ));
    }
    tolerations
}

/// The template with the revision label and the daemon tolerations: what
/// every Pod of this version looks like before it is given a node.
pub fn versioned_template(template: &PodTemplateSpec, hash: &str) -> PodTemplateSpec {
    let mut template = template.clone();
    template
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(Default::default)
        .insert(REVISION_HASH_LABEL.into(), hash.into());
    let spec = template.spec.get_or_insert_with(Default::default);
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for extra in daemon_tolerations(spec.host_network == Some(true)) {
        if !tolerations.contains(&extra) {
            tolerations.push(extra);
        }
    }
    template
}

/// Whether a node should run the daemon, and whether one already there may
/// stay (`NodeShouldRunDaemonPod`): an untolerated `NoSchedule` taint keeps
/// new Pods off but lets a running one stay.
fn placement(pod: &Pod, node: &Node) -> (bool, bool) {
    let should_run = crate::scheduler::filter(pod, node).is_ok();
    if should_run {
        return (true, true);
    }
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default();
    let evicting = crate::scheduler::effective_taints(node)
        .into_iter()
        .any(|t| {
            t.effect == "NoExecute" && !tolerations.iter().any(|x| api::pod::tolerates(x, &t))
        });
    let may_stay = crate::scheduler::matches_node_selector(pod, node) && !evicting;
    (false, may_stay)
}

/// The node a daemon Pod is for: where it is bound, or before that the
/// node its affinity names.
pub fn node_of(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(node) = spec.node_name.as_ref().filter(|n| !n.is_empty()) {
        return Some(node.clone());
    }
    spec.affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name" && r.operator == "In")
        .and_then(|r| r.values.as_ref()?.first().cloned())
}

/// Pins a Pod to `node` with required node affinity
/// (`ReplaceDaemonSetPodNodeNameNodeAffinity`): the scheduler binds it.
fn pin_to_node(pod: &mut Pod, node: &str) {
    let spec = pod.spec.get_or_insert_with(Default::default);
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let node_affinity = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: "In".into(),
                values: Some(vec![node.into()]),
            }]),
            ..Default::default()
        }],
    });
}

fn revision_of(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()?
        .get(REVISION_HASH_LABEL)
        .map(String::as_str)
}

/// An `IntOrString` of a rolling update against `desired` nodes, percent
/// rounded up (upstream's `GetScaledValueFromIntOrPercent(.., true)`).
fn scaled(value: Option<&IntOrString>, desired: usize, default: usize) -> usize {
    match value {
        None => default,
        Some(IntOrString::Int(n)) => (*n).max(0) as usize,
        Some(IntOrString::String(s)) => {
            let percent: usize = s.trim_end_matches('%').parse().unwrap_or(0);
            (percent * desired).div_ceil(100)
        }
    }
}

/// What one pass should do.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Nodes to give a new Pod of the current version.
    pub create_on: Vec<String>,
    /// Pods to delete, by name.
    pub delete: Vec<String>,
    pub status: DaemonSetStatus,
}

/// Where the DaemonSet's Pods should be, from the nodes and its claimed
/// Pods (active or failed), for the template version `hash`.
pub fn plan(ds: &DaemonSet, nodes: &[Node], pods: &[Pod], hash: &str, now: Timestamp) -> Plan {
    let spec = &ds.spec;
    let template = versioned_template(&spec.template, hash);
    let probe = Pod {
        metadata: template.metadata.clone().unwrap_or_default(),
        spec: template.spec.clone(),
        status: None,
    };
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let mut by_node: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
    let mut plan = Plan::default();
    for pod in pods {
        match node_of(pod) {
            Some(node) => by_node.entry(node).or_default().push(pod),
            None => plan.delete.push(pod.name_any()),
        }
    }
    let known: HashMap<String, &Node> = nodes.iter().map(|n| (n.name_any(), n)).collect();
    // A node that is gone takes its Pods with it.
    for (node, here) in &by_node {
        if !known.contains_key(node) {
            plan.delete.extend(
                here.iter()
                    .filter(|p| is_pod_active(p))
                    .map(|p| p.name_any()),
            );
        }
    }
    let status = &mut plan.status;
    // Nodes that should run it, with what they have.
    let mut running: Vec<(String, Vec<&Pod>)> = Vec::new();
    for node in nodes {
        let name = node.name_any();
        let here: Vec<&Pod> = by_node.get(&name).cloned().unwrap_or_default();
        let (should_run, may_stay) = placement(&probe, node);
        // A failed daemon Pod is deleted; the next pass makes a new one.
        let (active, failed): (Vec<&Pod>, Vec<&Pod>) =
            here.into_iter().partition(|p| is_pod_active(p));
        plan.delete.extend(
            failed
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .map(|p| p.name_any()),
        );
        if should_run {
            status.desired_number_scheduled += 1;
            if !active.is_empty() {
                status.current_number_scheduled += 1;
            }
            running.push((name, active));
        } else {
            if !active.is_empty() {
                status.number_misscheduled += 1;
            }
            if !may_stay {
                plan.delete.extend(active.iter().map(|p| p.name_any()));
            }
        }
    }

    let rolling = spec
        .update_strategy
        .as_ref()
        .is_none_or(|s| s.type_.as_deref().unwrap_or("RollingUpdate") == "RollingUpdate");
    let rolling_update = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    let desired = status.desired_number_scheduled as usize;
    let max_surge = scaled(
        rolling_update.and_then(|r| r.max_surge.as_ref()),
        desired,
        0,
    );
    let mut max_unavailable = scaled(
        rolling_update.and_then(|r| r.max_unavailable.as_ref()),
        desired,
        1,
    );
    if max_surge == 0 && max_unavailable == 0 {
        max_unavailable = 1;
    }
    let available = |p: &Pod| is_pod_available(p, min_ready, now);
    let mut unavailable = running
        .iter()
        .filter(|(_, here)| !here.iter().any(|p| available(p)))
        .count();
    let (mut number_available, mut updated) = (0, 0);
    let mut surged = running.iter().filter(|(_, here)| here.len() > 1).count();
    for (node, here) in &running {
        let (new, old): (Vec<&&Pod>, Vec<&&Pod>) =
            here.iter().partition(|p| revision_of(p) == Some(hash));
        if here.iter().any(|p| is_pod_available(p, 0, now)) {
            status.number_ready += 1;
        }
        if here.iter().any(|p| available(p)) {
            number_available += 1;
        }
        if !new.is_empty() {
            updated += 1;
        }
        match (new.len(), old.len()) {
            (0, 0) => plan.create_on.push(node.clone()),
            // More than one of a version: keep the oldest.
            (n, _) if n > 1 => plan
                .delete
                .extend(oldest_first(&new)[1..].iter().map(|p| p.name_any())),
            (0, o) if o > 1 => plan
                .delete
                .extend(oldest_first(&old)[1..].iter().map(|p| p.name_any())),
            // Only an old one: the rolling update's business.
            (0, _) if rolling => {
                let old = old[0];
                if max_surge > 0 {
                    if surged < max_surge && available(old) {
                        surged += 1;
                        plan.create_on.push(node.clone());
                    } else if !available(old) {
                        plan.delete.push(old.name_any());
                    }
                } else if !available(old) {
                    plan.delete.push(old.name_any());
                } else if unavailable < max_unavailable {
                    unavailable += 1;
                    plan.delete.push(old.name_any());
                }
            }
            // New and old side by side (a surge): the old goes once the
            // new one is available.
            (_, o) if o > 0 && new.iter().any(|p| available(p)) => {
                plan.delete.extend(old.iter().map(|p| p.name_any()));
            }
            _ => {}
        }
    }
    status.number_available = Some(number_available);
    status.number_unavailable = Some(status.desired_number_scheduled - number_available);
    status.updated_number_scheduled = Some(updated);
    status.observed_generation = ds.metadata.generation;
    status.collision_count = ds.status.as_ref().and_then(|s| s.collision_count);
    plan.delete.sort();
    plan.delete.dedup();
    plan
}

fn oldest_first<'a>(pods: &[&&'a Pod]) -> Vec<&'a Pod> {
    let mut pods: Vec<&Pod> = pods.iter().map(|p| **p).collect();
    pods.sort_by(|a, b| {
        a.metadata
            .creation_timestamp
            .cmp(&b.metadata.creation_timestamp)
            .then_with(|| a.name_any().cmp(&b.name_any()))
    });
    pods
}

// ---------------------------------------------------------------------------
// The loop

/// What the DaemonSet loop shares between reconciles.
pub struct DaemonSetController {
    ctx: Arc<Context>,
    pods: Store<Pod>,
    nodes: Store<Node>,
}

/// Runs the DaemonSet loop: DaemonSets are the primary objects; a Pod
/// change wakes its DaemonSet, a Node change wakes them all.
pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let client = ctx.client.clone();
    let (pods, pod_events) = crate::watch_all::<Pod>(&client);
    let (nodes, node_events) = crate::watch_all::<Node>(&client);
    let controller = Controller::new(Api::<DaemonSet>::all(client), watcher::Config::default());
    let daemonsets = controller.store();
    let every_daemonset = daemonsets.clone();
    let state = Arc::new(DaemonSetController { ctx, pods, nodes });
    controller
        .watches_stream(pod_events, move |pod| daemon_set_of_pod(&daemonsets, &pod))
        .watches_stream(node_events, move |_node| {
            every_daemonset
                .state()
                .iter()
                .map(|ds| ObjectRef::from_obj(ds.as_ref()))
                .collect::<Vec<_>>()
        })
        .run(reconcile, error_policy, state)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "daemonset loop");
            }
        })
        .await;
    Ok(())
}

/// The DaemonSet to wake for a Pod change: its controller, or for an
/// orphan every DaemonSet whose selector matches it.
fn daemon_set_of_pod(daemonsets: &Store<DaemonSet>, pod: &Pod) -> Vec<ObjectRef<DaemonSet>> {
    let namespace = pod.namespace().unwrap_or_default();
    if let Some(owner) = controller_of(&pod.metadata) {
        if owner.kind == "DaemonSet" {
            return vec![ObjectRef::new(&owner.name).within(&namespace)];
        }
        return Vec::new();
    }
    daemonsets
        .state()
        .iter()
        .filter(|ds| ds.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|ds| {
            api::selector::LabelSelector::from_k8s(&ds.spec.selector)
                .is_ok_and(|s| !s.is_empty() && s.matches(pod.labels()))
        })
        .map(|ds| ObjectRef::from_obj(ds.as_ref()))
        .collect()
}

/// Conflicts mean the cache was behind: retry soon, quietly.
pub fn error_policy(ds: Arc<DaemonSet>, error: &Error, _ctrl: Arc<DaemonSetController>) -> Action {
    let name = format!("{}/{}", ds.namespace().unwrap_or_default(), ds.name_any());
    crate::requeue_after_error(&format!("daemon set {name}"), error)
}

/// Makes one DaemonSet's Pods match the nodes (`syncDaemonSet`).
pub async fn reconcile(ds: Arc<DaemonSet>, ctrl: Arc<DaemonSetController>) -> Result<Action> {
    crate::wait_for_cache(&ctrl.pods).await?;
    crate::wait_for_cache(&ctrl.nodes).await?;
    let namespace = ds.namespace().unwrap_or_default();
    let name = ds.name_any();
    let object = format!("daemon set {namespace}/{name}");
    let selector = api::selector::LabelSelector::from_k8s(&ds.spec.selector)
        .map_err(|e| Error::invalid(&object, format!("spec.selector: {e}")))?;
    if selector.is_empty() {
        return Err(Error::invalid(
            &object,
            "spec.selector is empty and would select every pod",
        ));
    }
    let owner = Owner {
        api_version: "apps/v1",
        kind: "DaemonSet",
        name: name.clone(),
        uid: ds.metadata.uid.clone().unwrap_or_default(),
        selector: selector.clone(),
        deleting: ds.metadata.deletion_timestamp.is_some(),
    };
    let pods_api: Api<Pod> = Api::namespaced(ctrl.ctx.client.clone(), &namespace);
    let collision = ds.status.as_ref().and_then(|s| s.collision_count);
    let hash = crate::deployment::pod_template_hash(&ds.spec.template, collision);
    // Each template version is kept as a ControllerRevision (`kubectl
    // rollout history|undo ds/X` read them).
    let revisions_api: Api<ControllerRevision> =
        Api::namespaced(ctrl.ctx.client.clone(), &namespace);
    let revisions = crate::history::list(&revisions_api, &selector.to_string(), &owner.uid).await?;
    let (_, revisions) = crate::history::record(
        &revisions_api,
        owner.reference(),
        &ds.spec.template,
        collision,
        revisions,
    )
    .await?;
    let nodes: Vec<Node> = ctrl.nodes.state().iter().map(|n| (**n).clone()).collect();
    let now = Timestamp::now();

    // First from the cache...
    let cached: Vec<Pod> = ctrl
        .pods
        .state()
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(namespace.as_str()))
        .filter(|p| owner.may_claim(&p.metadata))
        .map(|p| (**p).clone())
        .collect();
    let mut ours = owner.claim(&pods_api, cached, is_pod_active).await?;
    let mut todo = plan(&ds, &nodes, &ours, &hash, now);
    if owner.deleting {
        todo.create_on.clear();
        todo.delete.clear();
    }
    if !todo.create_on.is_empty() || !todo.delete.is_empty() {
        // ...and when the cache says there is work, from the apiserver.
        let fresh = pods_api
            .list(&ListParams::default().labels(&selector.to_string()))
            .await?
            .items;
        ours = owner.claim(&pods_api, fresh, is_pod_active).await?;
        todo = plan(&ds, &nodes, &ours, &hash, now);
        let template = versioned_template(&ds.spec.template, &hash);
        let control = PodControl {
            api: pods_api.clone(),
            events: &ctrl.ctx.events,
            component: COMPONENT,
            owner: ds.object_ref(&()),
        };
        for node in &todo.create_on {
            let mut pod = pod_from_template(&template, &namespace, &name, owner.reference());
            pin_to_node(&mut pod, node);
            control.create(&pod).await?;
        }
        for victim in &todo.delete {
            control.delete(victim).await?;
        }
    }

    // Keep the revisions Pods run, and revisionHistoryLimit others.
    let live: Vec<String> = std::iter::once(hash.as_str())
        .chain(ours.iter().filter_map(revision_of))
        .map(|h| format!("{name}-{h}"))
        .collect();
    let limit = ds.spec.revision_history_limit.unwrap_or(10);
    crate::history::truncate(&revisions_api, &revisions, &live, limit).await?;

    if ds.status.as_ref() != Some(&todo.status) {
        let mut updated = (*ds).clone();
        updated.status = Some(todo.status);
        Api::<DaemonSet>::namespaced(ctrl.ctx.client.clone(), &namespace)
            .replace_status(&name, &PostParams::default(), &updated)
            .await?;
    }
    // Availability after minReadySeconds comes with no event of its own.
    let min_ready = ds.spec.min_ready_seconds.unwrap_or(0);
    let waiting = min_ready > 0
        && ours
            .iter()
            .any(|p| is_pod_available(p, 0, now) && !is_pod_available(p, min_ready, now));
    Ok(if waiting {
        Action::requeue(Duration::from_secs(1))
    } else {
        Action::await_change()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HASH: &str = "v2";

    fn node(name: &str, extra: serde_json::Value) -> Node {
        let mut node = json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        });
        if let Some(spec) = extra.get("spec") {
            node["spec"] = spec.clone();
        }
        if let Some(labels) = extra.get("labels") {
            node["metadata"]["labels"] = labels.clone();
        }
        serde_json::from_value(node).unwrap()
    }

    fn lab() -> Vec<Node> {
        vec![
            node(
                "kl-master",
                json!({"spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}}),
            ),
            node("kl-worker1", json!({})),
            node("kl-worker2", json!({})),
        ]
    }

    fn daemonset(spec: serde_json::Value) -> DaemonSet {
        let mut ds = json!({
            "metadata": {"name": "agent", "namespace": "default", "generation": 3},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {"metadata": {"labels": {"app": "agent"}},
                             "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
            }
        });
        for (k, v) in spec.as_object().unwrap() {
            if k == "templateSpec" {
                for (tk, tv) in v.as_object().unwrap() {
                    ds["spec"]["template"]["spec"][tk] = tv.clone();
                }
            } else {
                ds["spec"][k] = v.clone();
            }
        }
        serde_json::from_value(ds).unwrap()
    }

    /// A daemon Pod of `revision` on `node`, Ready (available) or not.
    fn pod(name: &str, node: &str, revision: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default",
                         "creationTimestamp": format!("2026-12-07T10:00:{:02}Z", name.len()),
                         "labels": {"app": "agent", REVISION_HASH_LABEL: revision}},
            "spec": {"nodeName": node, "containers": [{"name": "c"}]},
            "status": {"phase": "Running", "conditions": [{
                "type": "Ready", "status": if ready { "True" } else { "False" },
                "lastTransitionTime": "2026-12-07T09:00:00Z"}]}
        }))
        .unwrap()
    }

    fn now() -> Timestamp {
        "2026-12-07T11:00:00Z".parse().unwrap()
    }

    #[test]
    fn every_worker_gets_one_and_the_control_plane_none() {
        let plan = plan(&daemonset(json!({})), &lab(), &[], HASH, now());
        assert_eq!(plan.create_on, ["kl-worker1", "kl-worker2"]);
        assert_eq!(plan.status.desired_number_scheduled, 2);
        assert_eq!(plan.status.current_number_scheduled, 0);
    }

    #[test]
    fn tolerating_the_control_plane_taint_runs_there_too() {
        let ds = daemonset(json!({"templateSpec": {"tolerations": [
            {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}
        ]}}));
        let plan = plan(&ds, &lab(), &[], HASH, now());
        assert_eq!(plan.create_on, ["kl-master", "kl-worker1", "kl-worker2"]);
    }

    #[test]
    fn a_node_selector_picks_the_nodes() {
        let ds = daemonset(
            json!({"templateSpec": {"nodeSelector": {"kubernetes.io/hostname": "kl-worker2"}}}),
        );
        let pods = [pod("agent-a", "kl-worker1", HASH, true)];
        let plan = plan(&ds, &lab(), &pods, HASH, now());
        assert_eq!(plan.create_on, ["kl-worker2"]);
        assert_eq!(plan.delete, ["agent-a"], "labels stopped matching: it goes");
        assert_eq!(plan.status.number_misscheduled, 1);
    }

    #[test]
    fn a_cordoned_node_gets_its_daemon_and_a_not_ready_one_keeps_it() {
        let mut nodes = lab();
        nodes[1] = node("kl-worker1", json!({"spec": {"unschedulable": true}}));
        nodes[2].status = None; // no Ready condition: not-ready (NoSchedule too)
        let empty = plan(&daemonset(json!({})), &nodes, &[], HASH, now());
        assert_eq!(empty.create_on, ["kl-worker1"], "none for a not-ready node");
        let pods = [pod("agent-b", "kl-worker2", HASH, true)];
        let kept = plan(&daemonset(json!({})), &nodes, &pods, HASH, now());
        assert!(kept.delete.is_empty(), "{kept:?}");
    }

    #[test]
    fn a_no_schedule_taint_keeps_the_running_pod_and_no_execute_evicts_it() {
        let taint = |effect: &str| {
            node(
                "kl-worker1",
                json!({"spec": {"taints": [{"key": "dedicated", "value": "db", "effect": effect}]}}),
            )
        };
        let pods = [
            pod("agent-a", "kl-worker1", HASH, true),
            pod("agent-b", "kl-worker2", HASH, true),
        ];
        let mut nodes = lab();
        nodes[1] = taint("NoSchedule");
        let kept = plan(&daemonset(json!({})), &nodes, &pods, HASH, now());
        assert!(
            kept.delete.is_empty() && kept.create_on.is_empty(),
            "{kept:?}"
        );
        assert_eq!(kept.status.number_misscheduled, 1);
        nodes[1] = taint("NoExecute");
        let evicted = plan(&daemonset(json!({})), &nodes, &pods, HASH, now());
        assert_eq!(evicted.delete, ["agent-a"]);
    }

    #[test]
    fn a_node_that_leaves_takes_its_pod_and_doubles_lose_the_newer() {
        let pods = [
            pod("agent-a", "kl-worker1", HASH, true),
            pod("agent-bb", "kl-worker2", HASH, true),
            pod("agent-ccc", "kl-worker2", HASH, true),
            pod("agent-dddd", "kl-worker3", HASH, true),
        ];
        let plan = plan(&daemonset(json!({})), &lab(), &pods, HASH, now());
        assert_eq!(plan.delete, ["agent-ccc", "agent-dddd"]);
        assert!(plan.create_on.is_empty());
    }

    #[test]
    fn a_rolling_update_replaces_one_available_pod_at_a_time() {
        let pods = [
            pod("agent-a", "kl-worker1", "v1", true),
            pod("agent-b", "kl-worker2", "v1", true),
        ];
        let plan = plan(&daemonset(json!({})), &lab(), &pods, HASH, now());
        assert_eq!(plan.delete, ["agent-a"], "maxUnavailable 1");
        assert_eq!(plan.status.updated_number_scheduled, Some(0));
        // With one node already down, the budget is spent.
        let pods = [
            pod("agent-a", "kl-worker1", HASH, false),
            pod("agent-b", "kl-worker2", "v1", true),
        ];
        let waiting = super::plan(&daemonset(json!({})), &lab(), &pods, HASH, now());
        assert!(waiting.delete.is_empty(), "{waiting:?}");
        assert_eq!(waiting.status.updated_number_scheduled, Some(1));
    }

    #[test]
    fn on_delete_leaves_old_pods_alone() {
        let ds = daemonset(json!({"updateStrategy": {"type": "OnDelete"}}));
        let pods = [
            pod("agent-a", "kl-worker1", "v1", true),
            pod("agent-b", "kl-worker2", "v1", true),
        ];
        let plan = plan(&ds, &lab(), &pods, HASH, now());
        assert!(
            plan.delete.is_empty() && plan.create_on.is_empty(),
            "{plan:?}"
        );
    }

    #[test]
    fn max_surge_starts_the_new_pod_first_and_then_removes_the_old() {
        let ds = daemonset(json!({"updateStrategy": {"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}));
        let pods = [
            pod("agent-a", "kl-worker1", "v1", true),
            pod("agent-b", "kl-worker2", "v1", true),
        ];
        let first = plan(&ds, &lab(), &pods, HASH, now());
        assert_eq!(first.create_on, ["kl-worker1"]);
        assert!(first.delete.is_empty());
        let pods = [
            pod("agent-a", "kl-worker1", "v1", true),
            pod("agent-c", "kl-worker1", HASH, true),
            pod("agent-b", "kl-worker2", "v1", true),
        ];
        let second = plan(&ds, &lab(), &pods, HASH, now());
        assert_eq!(second.delete, ["agent-a"]);
        assert!(
            second.create_on.is_empty(),
            "the surge is in use: {second:?}"
        );
    }

    #[test]
    fn status_counts_what_kubectl_reads() {
        let pods = [
            pod("agent-a", "kl-worker1", HASH, true),
            pod("agent-b", "kl-worker2", HASH, false),
        ];
        let status = plan(&daemonset(json!({})), &lab(), &pods, HASH, now()).status;
        assert_eq!(
            (
                status.desired_number_scheduled,
                status.current_number_scheduled,
                status.number_ready,
                status.number_available,
                status.number_unavailable,
                status.updated_number_scheduled,
                status.observed_generation,
            ),
            (2, 2, 1, Some(1), Some(1), Some(2), Some(3))
        );
    }

    #[test]
    fn pods_are_pinned_by_affinity_and_found_by_it_before_binding() {
        let mut pod = Pod::default();
        pin_to_node(&mut pod, "kl-worker2");
        assert_eq!(node_of(&pod).as_deref(), Some("kl-worker2"));
        let template = versioned_template(&daemonset(json!({})).spec.template, HASH);
        let tolerations = template.spec.unwrap().tolerations.unwrap();
        assert_eq!(tolerations.len(), 6);
        assert_eq!(
            template.metadata.unwrap().labels.unwrap()[REVISION_HASH_LABEL],
            HASH
        );
    }
}
