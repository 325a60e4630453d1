//! Node lifecycle: noticing that a node has gone silent, and moving its Pods.
//!
//! Every kubelet renews a Lease named after its node in the
//! `kube-node-lease` namespace (every 10 s upstream). The Lease is the
//! node's heartbeat: it is tiny, so renewing it is cheap, unlike rewriting
//! the whole Node status. This loop (upstream's node lifecycle controller)
//! compares the Lease's `renewTime` with the grace period
//! (`--node-monitor-grace-period`, 40 s by default):
//!
//! - **Lease too old**: the node is unreachable. The controller
//!   1. sets the node's `Ready` condition to `Unknown`, reason
//!      `NodeStatusUnknown` ("Kubelet stopped posting node status."), and
//!      records a `NodeNotReady` event;
//!   2. taints it `node.kubernetes.io/unreachable` with effect `NoSchedule`
//!      (the scheduler places nothing new there) and `NoExecute` (with
//!      `timeAdded`: the eviction clock starts then);
//!   3. turns the `Ready` condition of every Pod on it `False`
//!      (upstream's `MarkPodsNotReady`), so the endpoints loops stop sending
//!      Service traffic to Pods nobody can vouch for;
//!   4. once a Pod has tolerated the `NoExecute` taint long enough, deletes
//!      it ("taint-based eviction"): after `--pod-eviction-timeout`, or
//!      after the Pod's own `tolerationSeconds` if it tolerates the taint;
//!      never if it tolerates it without a time limit. The ReplicaSet then
//!      creates a replacement, which the scheduler puts on a healthy node.
//!      The deletion is graceful, but no kubelet is there to finish it, so
//!      on the next pass the controller force-deletes (grace period 0) the
//!      Pods left terminating on the unreachable node, as upstream's Pod
//!      garbage collector does.
//! - **Lease fresh again**: the node is back. The controller removes the
//!   `unreachable` taints. It sets `Ready` back to `True` only when the
//!   `Unknown` was its own doing (reason `NodeStatusUnknown`): a `False` or
//!   `Unknown` posted by the kubelet itself is the kubelet's to clear. The
//!   Pods' `Ready` conditions are the kubelet's too: it reports them again.
//!
//! The loop runs on every Node and Lease change, and every quarter of the
//! grace period, since a Lease that stops changing produces no event.
//!
//! Every step is stored in the Node itself (its condition, its taints and
//! their `timeAdded`), so a restarted controller carries on where the
//! previous one stopped.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, Controller};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use crate::events::EventType;
use crate::{Context, Result};

/// The taint of a node whose heartbeat stopped (Ready `Unknown`).
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The taint of a node whose kubelet reports Ready `False`.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// Where kubelets keep their heartbeat Leases, one per node.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// The reason of a `Ready=Unknown` set by this controller.
pub const REASON_STATUS_UNKNOWN: &str = "NodeStatusUnknown";
/// The reason when the node never posted a Ready condition at all.
pub const REASON_NEVER_UPDATED: &str = "NodeStatusNeverUpdated";

/// Who signs the events (upstream's name for this controller).
const COMPONENT: &str = "node-controller";

/// Runs the loop over Nodes, woken by their Leases too.
pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let leases: Api<Lease> = Api::namespaced(ctx.client.clone(), NODE_LEASE_NAMESPACE);
    Controller::new(nodes, watcher::Config::default())
        // A Lease is named after its node.
        .watches(leases, watcher::Config::default(), |lease| {
            Some(ObjectRef::<Node>::new(&lease.name_any()))
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "node lifecycle");
            }
            futures::future::ready(())
        })
        .await;
    Ok(())
}

pub fn error_policy(node: Arc<Node>, error: &crate::Error, _ctx: Arc<Context>) -> Action {
    match error {
        // A conditional write lost to a newer version of the Node (our
        // cached copy was behind): normal, retry soon with the new one.
        crate::Error::Kube(kube::Error::Api(s)) if s.code == 409 => {
            tracing::debug!(node = %node.name_any(), %error, "node changed meanwhile");
            Action::requeue(Duration::from_millis(200))
        }
        _ => {
            tracing::warn!(node = %node.name_any(), %error, "node lifecycle");
            Action::requeue(Duration::from_secs(1))
        }
    }
}

/// Checks one node's heartbeat and acts on it. Idempotent: each step
/// first looks whether it is already done.
pub async fn reconcile(node: Arc<Node>, ctx: Arc<Context>) -> Result<Action> {
    let grace = ctx.config.node_monitor_grace_period;
    let period = (grace / 4).max(Duration::from_millis(100));
    let leases: Api<Lease> = Api::namespaced(ctx.client.clone(), NODE_LEASE_NAMESPACE);
    // Read the Lease afresh: a stale cached copy would look like silence.
    let lease = leases.get_opt(&node.name_any()).await?;
    let now = Timestamp::now();
    let silent_for = last_heartbeat(&node, lease.as_ref()).map(|h| elapsed(now, h));
    match silent_for {
        Some(silence) if silence <= grace => {
            mark_reachable(&ctx, &node, now).await?;
            // Look again when the Lease would expire if not renewed.
            let left = grace - silence + Duration::from_millis(50);
            Ok(Action::requeue(period.min(left)))
        }
        _ => {
            let since = mark_unreachable(&ctx, &node, now).await?;
            let next_eviction = handle_pods(&ctx, &node, since, now).await?;
            Ok(Action::requeue(
                next_eviction.map_or(period, |d| period.min(d)),
            ))
        }
    }
}

/// The latest sign of life: the Lease's `renewTime`, the Ready condition's
/// `lastHeartbeatTime` (older kubelets post status instead of a Lease), or
/// the node's creation (a node just registered gets a full grace period).
pub fn last_heartbeat(node: &Node, lease: Option<&Lease>) -> Option<Timestamp> {
    let renewed = lease
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0);
    let posted = ready_condition(node)
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0);
    let created = node.metadata.creation_timestamp.as_ref().map(|t| t.0);
    [renewed, posted, created].into_iter().flatten().max()
}

fn elapsed(now: Timestamp, since: Timestamp) -> Duration {
    Duration::try_from(now.duration_since(since)).unwrap_or(Duration::ZERO)
}

fn ready_condition(node: &Node) -> Option<&NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

fn taints_of(node: &Node) -> Vec<Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
}

/// The taints an unreachable node should carry: its own, without any
/// `not-ready` taint (unreachable replaces it), plus `unreachable`
/// `NoSchedule` and `NoExecute` (stamped `now`). None when already so.
pub fn with_unreachable_taints(current: &[Taint], now: Timestamp) -> Option<Vec<Taint>> {
    let has = |effect: &str| {
        current
            .iter()
            .any(|t| t.key == TAINT_UNREACHABLE && t.effect == effect)
    };
    let stale = current.iter().any(|t| t.key == TAINT_NOT_READY);
    if has("NoSchedule") && has("NoExecute") && !stale {
        return None;
    }
    let mut taints: Vec<Taint> = current
        .iter()
        .filter(|t| t.key != TAINT_NOT_READY)
        .cloned()
        .collect();
    if !has("NoSchedule") {
        taints.push(Taint {
            key: TAINT_UNREACHABLE.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        });
    }
    if !has("NoExecute") {
        taints.push(Taint {
            key: TAINT_UNREACHABLE.into(),
            effect: "NoExecute".into(),
            time_added: Some(Time(now)),
            ..Default::default()
        });
    }
    Some(taints)
}

/// The taints without `unreachable` ones; None when there were none.
pub fn without_unreachable_taints(current: &[Taint]) -> Option<Vec<Taint>> {
    if !current.iter().any(|t| t.key == TAINT_UNREACHABLE) {
        return None;
    }
    Some(
        current
            .iter()
            .filter(|t| t.key != TAINT_UNREACHABLE)
            .cloned()
            .collect(),
    )
}

/// Writes `spec.taints` (a list replaced whole by any patch). The
/// resourceVersion makes it conditional: if the Node changed since we
/// read it, the write fails with 409 and the next pass starts over.
async fn write_taints(ctx: &Context, node: &Node, taints: &[Taint]) -> Result<()> {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let taints = if taints.is_empty() {
        serde_json::Value::Null
    } else {
        json!(taints)
    };
    let patch = json!({
        "metadata": {"resourceVersion": node.resource_version()},
        "spec": {"taints": taints},
    });
    nodes
        .patch(
            &node.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    Ok(())
}

/// Sets one node condition through the status subresource (a strategic
/// merge patch merges `conditions` by `type`, leaving the others alone).
async fn write_condition(ctx: &Context, node: &Node, condition: &NodeCondition) -> Result<()> {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let patch = json!({"status": {"conditions": [condition]}});
    nodes
        .patch_status(
            &node.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(&patch),
        )
        .await?;
    Ok(())
}

/// Steps 1 and 2: Ready `Unknown` and the unreachable taints. Returns when
/// the `NoExecute` taint was added (the start of the eviction clock).
async fn mark_unreachable(ctx: &Context, node: &Node, now: Timestamp) -> Result<Timestamp> {
    let name = node.name_any();
    let taints = taints_of(node);
    if let Some(new) = with_unreachable_taints(&taints, now) {
        write_taints(ctx, node, &new).await?;
        tracing::info!(node = %name, "tainted unreachable");
    }
    let current = ready_condition(node);
    if current.is_none_or(|c| c.status != "Unknown") {
        let (reason, message) = match current {
            Some(_) => (
                REASON_STATUS_UNKNOWN,
                "Kubelet stopped posting node status.",
            ),
            None => (REASON_NEVER_UPDATED, "Kubelet never posted node status."),
        };
        let condition = NodeCondition {
            type_: "Ready".into(),
            status: "Unknown".into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_transition_time: Some(Time(now)),
            // Keep the last heartbeat the kubelet posted.
            last_heartbeat_time: current.and_then(|c| c.last_heartbeat_time.clone()),
        };
        write_condition(ctx, node, &condition).await?;
        tracing::warn!(node = %name, "node stopped renewing its lease: Ready=Unknown");
        ctx.events
            .publish(
                COMPONENT,
                &node.object_ref(&()),
                EventType::Normal,
                "NodeNotReady",
                &format!("Node {name} status is now: NodeNotReady"),
            )
            .await;
    }
    let added = taints
        .iter()
        .find(|t| t.key == TAINT_UNREACHABLE && t.effect == "NoExecute")
        .and_then(|t| t.time_added.as_ref())
        .map_or(now, |t| t.0);
    Ok(added)
}

/// The node is heard from again: drop the unreachable taints, and undo our
/// own `Ready=Unknown`.
async fn mark_reachable(ctx: &Context, node: &Node, now: Timestamp) -> Result<()> {
    let name = node.name_any();
    if let Some(new) = without_unreachable_taints(&taints_of(node)) {
        write_taints(ctx, node, &new).await?;
        tracing::info!(node = %name, "lease renewed: removed the unreachable taints");
    }
    let ours = ready_condition(node).is_some_and(|c| {
        c.status == "Unknown"
            && matches!(
                c.reason.as_deref(),
                Some(REASON_STATUS_UNKNOWN | REASON_NEVER_UPDATED)
            )
    });
    if ours {
        let condition = NodeCondition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: Some("KubeletReady".into()),
            message: Some("kubelet is posting ready status".into()),
            last_transition_time: Some(Time(now)),
            last_heartbeat_time: Some(Time(now)),
        };
        write_condition(ctx, node, &condition).await?;
        ctx.events
            .publish(
                COMPONENT,
                &node.object_ref(&()),
                EventType::Normal,
                "NodeReady",
                &format!("Node {name} status is now: NodeReady"),
            )
            .await;
    }
    Ok(())
}

/// How long a Pod stays on a node tainted unreachable since `timeAdded`:
/// its own `tolerationSeconds` if it tolerates the `NoExecute` taint (None:
/// forever, when it tolerates it without a limit), else the controller's
/// `--pod-eviction-timeout` (upstream adds a 300 s toleration to every Pod
/// instead; kube-lite keeps the older, simpler flag).
pub fn eviction_delay(pod: &Pod, default: Duration) -> Option<Duration> {
    let taint = Taint {
        key: TAINT_UNREACHABLE.into(),
        effect: "NoExecute".into(),
        ..Default::default()
    };
    let tolerations: &[Toleration] = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default();
    let matching: Vec<&Toleration> = tolerations
        .iter()
        .filter(|t| crate::scheduler::tolerates(t, &taint))
        .collect();
    if matching.is_empty() {
        return Some(default);
    }
    // With several, the longest wins; one without a limit wins outright.
    let mut longest = Duration::ZERO;
    for t in matching {
        match t.toleration_seconds {
            None => return None,
            Some(s) => longest = longest.max(Duration::from_secs(s.max(0) as u64)),
        }
    }
    Some(longest)
}

/// Steps 3 and 4 for every Pod on the unreachable node: mark it not ready,
/// evict it when its time has come, force-delete it if it is already
/// terminating. Returns how long until the next Pod is due, if any.
async fn handle_pods(
    ctx: &Context,
    node: &Node,
    tainted_at: Timestamp,
    now: Timestamp,
) -> Result<Option<Duration>> {
    let node_name = node.name_any();
    let all: Api<Pod> = Api::all(ctx.client.clone());
    let on_node = ListParams::default().fields(&format!("spec.nodeName={node_name}"));
    let pods = all.list(&on_node).await?.items;
    let tainted_for = elapsed(now, tainted_at);
    let mut next_due: Option<Duration> = None;
    for pod in &pods {
        mark_pod_not_ready(ctx, pod).await?;
        let Some(delay) = eviction_delay(pod, ctx.config.pod_eviction_timeout) else {
            continue;
        };
        if tainted_for < delay {
            let left = delay - tainted_for;
            next_due = Some(next_due.map_or(left, |d| d.min(left)));
            continue;
        }
        evict(ctx, pod, &node_name).await?;
    }
    Ok(next_due)
}

/// Upstream's `MarkPodsNotReady`: a Pod with a `Ready` condition gets it
/// set to `False`, and a `NodeNotReady` warning.
async fn mark_pod_not_ready(ctx: &Context, pod: &Pod) -> Result<()> {
    let Some(ready) = crate::podstatus::condition(pod, "Ready") else {
        return Ok(());
    };
    if ready.status == "False" {
        return Ok(());
    }
    let condition = json!({
        "type": "Ready", "status": "False", "lastTransitionTime": Time(Timestamp::now()),
    });
    if !crate::podstatus::set_condition(&ctx.client, pod, condition).await? {
        return Ok(());
    }
    ctx.events
        .publish(
            COMPONENT,
            &pod.object_ref(&()),
            EventType::Warning,
            "NodeNotReady",
            "Node is not ready",
        )
        .await;
    Ok(())
}

/// Deletes a Pod of an unreachable node: gracefully first (the Pod shows
/// as Terminating, its ReplicaSet replaces it), then, on a later pass, for
/// good (grace period 0), since no kubelet will confirm it stopped.
async fn evict(ctx: &Context, pod: &Pod, node_name: &str) -> Result<()> {
    let namespace = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let params = if terminating {
        DeleteParams::default().grace_period(0)
    } else {
        DeleteParams::default()
    };
    match pods.delete(&name, &params).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    if terminating {
        tracing::info!(pod = %format!("{namespace}/{name}"), node = node_name, "force-deleted a terminating pod of an unreachable node");
    } else {
        tracing::info!(pod = %format!("{namespace}/{name}"), node = node_name, "evicted");
        ctx.events
            .publish(
                COMPONENT,
                &pod.object_ref(&()),
                EventType::Normal,
                "TaintManagerEviction",
                &format!("Marking for deletion Pod {namespace}/{name}"),
            )
            .await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            effect: effect.into(),
            ..Default::default()
        }
    }

    #[test]
    fn unreachable_taints_are_added_once() {
        let now = Timestamp::now();
        let own = taint("dedicated", "NoSchedule");
        let stale = taint(TAINT_NOT_READY, "NoExecute");
        let added = with_unreachable_taints(&[own.clone(), stale], now).unwrap();
        let keys: Vec<_> = added
            .iter()
            .map(|t| (t.key.as_str(), t.effect.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("dedicated", "NoSchedule"),
                (TAINT_UNREACHABLE, "NoSchedule"),
                (TAINT_UNREACHABLE, "NoExecute"),
            ]
        );
        // Only the NoExecute taint carries the eviction clock.
        assert_eq!(added[2].time_added, Some(Time(now)));
        assert_eq!(with_unreachable_taints(&added, Timestamp::now()), None);

        let removed = without_unreachable_taints(&added).unwrap();
        assert_eq!(removed, vec![own]);
        assert_eq!(without_unreachable_taints(&removed), None);
    }

    #[test]
    fn eviction_waits_for_tolerations() {
        let pod = |tolerations: serde_json::Value| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c", "image": "nginx"}], "tolerations": tolerations}
            }))
            .unwrap()
        };
        let default = Duration::from_secs(60);
        assert_eq!(eviction_delay(&pod(json!([])), default), Some(default));
        let limited = pod(json!([{"key": TAINT_UNREACHABLE, "operator": "Exists",
            "effect": "NoExecute", "tolerationSeconds": 5}]));
        assert_eq!(
            eviction_delay(&limited, default),
            Some(Duration::from_secs(5))
        );
        let forever = pod(json!([{"operator": "Exists"}]));
        assert_eq!(eviction_delay(&forever, default), None);
        // A toleration of another taint changes nothing.
        let unrelated = pod(json!([{"key": "dedicated", "operator": "Exists"}]));
        assert_eq!(eviction_delay(&unrelated, default), Some(default));
    }

    #[test]
    fn the_latest_sign_of_life_counts() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "n", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "status": {"conditions": [{"type": "Ready", "status": "True",
                "lastHeartbeatTime": "2024-01-01T00:01:00Z"}]}
        }))
        .unwrap();
        let lease: Lease = serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "spec": {"renewTime": "2024-01-01T00:02:00.000000Z"}
        }))
        .unwrap();
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        assert_eq!(
            last_heartbeat(&node, None),
            Some(at("2024-01-01T00:01:00Z"))
        );
        assert_eq!(
            last_heartbeat(&node, Some(&lease)),
            Some(at("2024-01-01T00:02:00Z"))
        );
    }

    /// `reconcile` against a real apiserver: a silent node is marked once
    /// (a second pass writes nothing), and a renewed Lease undoes it.
    #[tokio::test]
    async fn reconcile_marks_a_silent_node_once_and_undoes_it() {
        use k8s_openapi::api::coordination::v1::Lease;
        use kube::api::PostParams;

        let dir = tempfile::tempdir().unwrap();
        let server = e2e::harness::ApiServer::start(dir.path());
        let client =
            kube::Client::try_from(kube::Config::new(server.url.parse().unwrap())).unwrap();
        // A just-registered node gets a grace period from its creation, so
        // the marking passes use a 1 s grace; the recovery a long one.
        let with_grace = |seconds| {
            let config = crate::Config {
                node_monitor_grace_period: Duration::from_secs(seconds),
                pod_eviction_timeout: Duration::from_secs(3600),
                ..Default::default()
            };
            Arc::new(Context::new(client.clone(), config))
        };
        let ctx = with_grace(1);
        let patient = with_grace(3600);
        let nodes: Api<Node> = Api::all(client.clone());
        let leases: Api<Lease> = Api::namespaced(client.clone(), NODE_LEASE_NAMESPACE);
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

        let an_hour_ago = Timestamp::from_second(Timestamp::now().as_second() - 3600).unwrap();
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "n1"},
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                "lastHeartbeatTime": Time(an_hour_ago)}]}
        }))
        .unwrap();
        nodes.create(&PostParams::default(), &node).await.unwrap();
        let lease: Lease = serde_json::from_value(json!({
            "metadata": {"name": "n1"},
            "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40,
                "renewTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(an_hour_ago)}
        }))
        .unwrap();
        leases.create(&PostParams::default(), &lease).await.unwrap();
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx"}]},
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
        let ready = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}});
        pods.patch_status("p", &PatchParams::default(), &Patch::Merge(&ready))
            .await
            .unwrap();

        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let marked = loop {
            let node = nodes.get("n1").await.unwrap();
            if ready_condition(&node).unwrap().status == "Unknown" {
                break node;
            }
            assert!(tokio::time::Instant::now() < deadline, "n1 never marked");
            reconcile(Arc::new(node), ctx.clone()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let condition = ready_condition(&marked).unwrap();
        assert_eq!(condition.status, "Unknown");
        assert_eq!(condition.reason.as_deref(), Some(REASON_STATUS_UNKNOWN));
        assert_eq!(
            condition.last_heartbeat_time,
            Some(Time(an_hour_ago)),
            "the kubelet's last heartbeat is kept"
        );
        assert_eq!(
            with_unreachable_taints(&taints_of(&marked), Timestamp::now()),
            None
        );
        let p = pods.get("p").await.unwrap();
        let pod_ready = p.status.unwrap().conditions.unwrap();
        assert_eq!(
            pod_ready
                .iter()
                .find(|c| c.type_ == "Ready")
                .unwrap()
                .status,
            "False"
        );

        // Twice changes nothing.
        reconcile(Arc::new(marked.clone()), ctx.clone())
            .await
            .unwrap();
        let again = nodes.get("n1").await.unwrap();
        assert_eq!(again.resource_version(), marked.resource_version());
        assert_eq!(
            pods.get("p").await.unwrap().resource_version(),
            p.metadata.resource_version
        );

        // The Lease is renewed: taints go, Ready comes back (ours to undo).
        let renew = json!({"spec": {"renewTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(Timestamp::now())}});
        leases
            .patch("n1", &PatchParams::default(), &Patch::Merge(&renew))
            .await
            .unwrap();
        reconcile(Arc::new(again), patient.clone()).await.unwrap();
        let back = nodes.get("n1").await.unwrap();
        assert_eq!(ready_condition(&back).unwrap().status, "True");
        assert!(taints_of(&back).is_empty());
        reconcile(Arc::new(back.clone()), ctx.clone())
            .await
            .unwrap();
        assert_eq!(
            nodes.get("n1").await.unwrap().resource_version(),
            back.resource_version()
        );
    }
}
