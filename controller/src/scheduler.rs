//! The scheduler (kube-scheduler): picks a node for every Pod that has none.
//!
//! A Pod is created without `spec.nodeName`; nothing runs it until the
//! scheduler decides where it goes. Scheduling is two steps, as upstream:
//!
//! 1. **Filter**: drop the nodes the Pod cannot run on. A node must be
//!    schedulable (not cordoned: `spec.unschedulable`), carry no
//!    `NoSchedule`/`NoExecute` taint the Pod does not tolerate, and match
//!    the Pod's `nodeSelector` (and required node affinity). A node that is
//!    not Ready counts as tainted `node.kubernetes.io/not-ready` (or
//!    `.../unreachable`), the taints upstream's node lifecycle controller
//!    puts on such nodes, so an unready node is filtered like any tainted
//!    one, with the same message. Last, the Pod's CPU and memory requests
//!    ([`api::pod::requests`]) must fit in the node's `allocatable` next to
//!    what the Pods already there request, with room for one more Pod
//!    (NodeResourcesFit: `Insufficient cpu`, `Insufficient memory`, `Too
//!    many pods`, every reason counted).
//! 2. **Score**: among the nodes left, prefer the one with the fewest Pods
//!    of the same owner (so the two replicas of a ReplicaSet land on two
//!    nodes), then the fewest Pods in total, then the first name.
//!
//! The decision is written as a `pods/binding` subresource (a `v1/Binding`
//! naming the node), which sets `spec.nodeName` once and for all. The
//! kubelet of that node then starts the Pod.
//!
//! A Pod that fits nowhere stays Pending. The scheduler says why in the
//! Pod's `PodScheduled` condition (`False`, reason `Unschedulable`) and in a
//! `FailedScheduling` event, in upstream's words:
//!
//! ```text
//! 0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector,
//! 2 node(s) had untolerated taint {node.kubernetes.io/unreachable: }.
//! 0/3 nodes are available: 1 node(s) had untolerated taint
//! {node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu.
//! ```
//!
//! and tries again whenever a Node changes (and every few seconds).
//!
//! # Counting Pods that are not in the cache yet
//!
//! The scheduler counts Pods per node from its watch cache, which lags a
//! little behind its own bindings. Two Pods created together would both see
//! two empty nodes and both pick the first. Upstream's answer is to *assume*:
//! the scheduler records its decision in memory before the binding is even
//! sent, and counts assumed Pods as if bound until the watch shows them.
//! kube-lite does the same with [`Scheduler::assumed`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    Binding, Node, NodeSelectorRequirement, ObjectReference, Pod, Taint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, Controller, WatchStreamExt};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use crate::events::EventType;
use crate::nodelifecycle::{TAINT_NOT_READY, TAINT_UNREACHABLE};
use crate::{Context, Error, Result};

/// The name Pods ask for in `spec.schedulerName` (the default when empty).
pub const SCHEDULER_NAME: &str = "default-scheduler";

/// How often an unschedulable Pod is tried again even if no Node changed.
pub const UNSCHEDULABLE_RETRY: Duration = Duration::from_secs(5);

/// The cordon taint: a Pod that tolerates it may go to a cordoned node.
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// Why a node cannot take a Pod; `Display` gives upstream's filter message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unfit {
    /// The node is cordoned (`spec.unschedulable`).
    Unschedulable,
    /// A `NoSchedule`/`NoExecute` taint the Pod does not tolerate.
    UntoleratedTaint { key: String, value: String },
    /// `nodeSelector` or required node affinity does not match the labels.
    SelectorMismatch,
    /// The node's allocatable Pods are all taken.
    TooManyPods,
    /// The Pod's CPU request exceeds what the node has left.
    InsufficientCpu,
    /// The Pod's memory request exceeds what the node has left.
    InsufficientMemory,
}

impl fmt::Display for Unfit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unfit::Unschedulable => write!(f, "node(s) were unschedulable"),
            Unfit::UntoleratedTaint { key, value } => {
                write!(f, "node(s) had untolerated taint {{{key}: {value}}}")
            }
            Unfit::SelectorMismatch => {
                write!(f, "node(s) didn't match Pod's node affinity/selector")
            }
            // NodeResourcesFit's reasons, without "node(s)" upstream.
            Unfit::TooManyPods => write!(f, "Too many pods"),
            Unfit::InsufficientCpu => write!(f, "Insufficient cpu"),
            Unfit::InsufficientMemory => write!(f, "Insufficient memory"),
        }
    }
}

/// A decision recorded before the binding is confirmed by the watch.
#[derive(Debug, Clone)]
struct Assumed {
    namespace: String,
    name: String,
    node: String,
}

/// The scheduler's state: the caches it decides from and what it assumed.
pub struct Scheduler {
    pub ctx: Arc<Context>,
    /// Every Pod (bound or not), to count Pods per node.
    pub pods: Store<Pod>,
    /// Every Node.
    pub nodes: Store<Node>,
    /// Pod uid -> the node we bound (or are binding) it to, until the
    /// cache shows the Pod with that `spec.nodeName`. Behind a lock taken
    /// for the whole decision, so two decisions never see the same counts.
    assumed: Mutex<HashMap<String, Assumed>>,
}

/// Runs the scheduler until the watches end.
pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::all(ctx.client.clone());
    let nodes_api: Api<Node> = Api::all(ctx.client.clone());

    // A Node cache to decide from. The Controller below watches Nodes as
    // well, only to know *when* to retry unschedulable Pods.
    let (nodes, writer) = reflector::store();
    let node_cache = reflector::reflector(
        writer,
        watcher(nodes_api.clone(), watcher::Config::default()).default_backoff(),
    )
    .touched_objects()
    .for_each(|_| futures::future::ready(()));
    let mut node_cache = std::pin::pin!(node_cache);
    // Decide from a complete Node list only. Waited for here, once, rather
    // than in each reconcile: kube-runtime's `wait_until_ready` wakes only
    // the last of several concurrent waiters, so reconciles waiting on it
    // together would hang.
    tokio::select! {
        () = &mut node_cache => anyhow::bail!("the scheduler's node watch ended"),
        ready = nodes.wait_until_ready() => ready.context("the scheduler's node cache")?,
    }

    let controller = Controller::new(pods, watcher::Config::default());
    let scheduler = Arc::new(Scheduler::new(ctx, controller.store(), nodes));
    let waiting = scheduler.pods.clone();
    let scheduling = controller
        // Any Node change may make room: retry every Pod still waiting.
        .watches(nodes_api, watcher::Config::default(), move |_node| {
            waiting
                .state()
                .iter()
                .filter(|p| needs_scheduling(p))
                .map(|p| ObjectRef::from_obj(p.as_ref()))
                .collect::<Vec<_>>()
        })
        .run(reconcile, error_policy, scheduler)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "scheduler");
            }
            futures::future::ready(())
        });
    tokio::join!(node_cache, scheduling);
    Ok(())
}

impl Scheduler {
    pub fn new(ctx: Arc<Context>, pods: Store<Pod>, nodes: Store<Node>) -> Scheduler {
        Scheduler {
            ctx,
            pods,
            nodes,
            assumed: Mutex::new(HashMap::new()),
        }
    }

    /// Decides under the lock, and assumes the Pod bound if a node fits.
    fn decide(&self, pod: &Pod, uid: &str) -> Decision {
        let mut assumed = self.assumed.lock().unwrap_or_else(|e| e.into_inner());
        if assumed.contains_key(uid) {
            return Decision::InFlight;
        }
        self.forget_confirmed(&mut assumed);
        let nodes = self.nodes.state();
        let pods = self.pods.state();
        let placed = pods.iter().filter_map(|p| {
            let node = p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty())
                .or_else(|| {
                    let uid = p.metadata.uid.as_deref()?;
                    assumed.get(uid).map(|a| a.node.clone())
                })?;
            (!is_terminal(p)).then(|| Placed {
                node,
                owner: controller_uid(p),
                requests: p.spec.as_ref().map(api::pod::requests).unwrap_or_default(),
            })
        });
        let decision = schedule(pod, &nodes, placed);
        if let Decision::Bind(node) = &decision {
            assumed.insert(
                uid.to_string(),
                Assumed {
                    namespace: pod.namespace().unwrap_or_default(),
                    name: pod.name_any(),
                    node: node.clone(),
                },
            );
        }
        decision
    }

    /// Drops assumptions the cache has caught up with (the Pod shows a
    /// node) or that no longer matter (the Pod is gone).
    fn forget_confirmed(&self, assumed: &mut HashMap<String, Assumed>) {
        assumed.retain(|uid, a| {
            let key = ObjectRef::<Pod>::new(&a.name).within(&a.namespace);
            match self.pods.get(&key) {
                Some(p) if p.metadata.uid.as_deref() == Some(uid.as_str()) => p
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .is_none_or(str::is_empty),
                _ => false,
            }
        });
    }

    fn forget(&self, uid: &str) {
        let mut assumed = self.assumed.lock().unwrap_or_else(|e| e.into_inner());
        assumed.remove(uid);
    }
}

/// What to do with one Pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Bind it to this node.
    Bind(String),
    /// No node fits; the message says why.
    Unschedulable(String),
    /// A binding of this Pod is already under way.
    InFlight,
}

/// A Pod already on a node (bound, or assumed bound).
#[derive(Debug, Clone)]
pub struct Placed {
    pub node: String,
    /// Its controller's uid (ReplicaSet...), for spreading.
    pub owner: Option<String>,
    pub requests: api::pod::PodRequests,
}

/// Schedules one Pod: filters `nodes` (against what the Pods already
/// `placed` on them request), then scores the ones left by those Pods.
pub fn schedule(pod: &Pod, nodes: &[Arc<Node>], placed: impl Iterator<Item = Placed>) -> Decision {
    if nodes.is_empty() {
        return Decision::Unschedulable("no nodes available to schedule pods".into());
    }
    let owner = controller_uid(pod);
    let mut load: HashMap<String, NodeLoad> = HashMap::new();
    for placed in placed {
        let entry = load.entry(placed.node).or_default();
        entry.pods += 1;
        entry.cpu_milli += placed.requests.cpu_milli;
        entry.memory += placed.requests.memory;
        if owner.is_some() && placed.owner == owner {
            entry.same_owner += 1;
        }
    }
    let wanted = pod
        .spec
        .as_ref()
        .map(api::pod::requests)
        .unwrap_or_default();
    let mut reasons: BTreeMap<Unfit, usize> = BTreeMap::new();
    let mut feasible = Vec::new();
    for node in nodes {
        let used = load.get(&node.name_any()).copied().unwrap_or_default();
        match filter(pod, node)
            .map_err(|why| vec![why])
            .and_then(|()| fits(wanted, node, used))
        {
            Ok(()) => feasible.push(node.name_any()),
            Err(why) => {
                for reason in why {
                    *reasons.entry(reason).or_default() += 1;
                }
            }
        }
    }
    if feasible.is_empty() {
        return Decision::Unschedulable(failure_message(nodes.len(), &reasons));
    }
    let best = feasible
        .into_iter()
        .min_by_key(|name| {
            let l = load.get(name).copied().unwrap_or_default();
            (l.same_owner, l.pods, name.clone())
        })
        .expect("feasible is not empty");
    Decision::Bind(best)
}

/// NodeResourcesFit: room for one more Pod, and for its CPU and memory
/// requests next to what the node's Pods already request, against the
/// node's `allocatable`. Every reason counts, as upstream counts them. A
/// resource the Node does not report is not limited (upstream would
/// count it as zero and place nothing there).
pub fn fits(wanted: api::pod::PodRequests, node: &Node, used: NodeLoad) -> Result<(), Vec<Unfit>> {
    let allocatable = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
    let get = |name: &str| {
        allocatable
            .and_then(|a| a.get(name))
            .and_then(|q| api::quantity::Quantity::parse(&q.0).ok())
    };
    let mut reasons = vec![];
    if let Some(pods) = get("pods") {
        if used.pods as i128 + 1 > pods.value() {
            reasons.push(Unfit::TooManyPods);
        }
    }
    if let Some(cpu) = get("cpu") {
        if wanted.cpu_milli > 0 && wanted.cpu_milli > cpu.milli() - used.cpu_milli {
            reasons.push(Unfit::InsufficientCpu);
        }
    }
    if let Some(memory) = get("memory") {
        if wanted.memory > 0 && wanted.memory > memory.value() - used.memory {
            reasons.push(Unfit::InsufficientMemory);
        }
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(reasons)
    }
}

/// Pods on a node: how many, what they request, and how many share the
/// scheduled Pod's controller (for spreading).
#[derive(Debug, Default, Clone, Copy)]
pub struct NodeLoad {
    /// Pods with the same controller (ReplicaSet...) as the Pod scheduled.
    pub same_owner: usize,
    pub pods: usize,
    pub cpu_milli: i128,
    pub memory: i128,
}

/// Upstream's summary: `0/3 nodes are available: 1 node(s) ..., 2 node(s) ....`
/// Each reason is counted once per node (the first filter a node fails),
/// and the "<count> <reason>" strings are sorted, as upstream sorts them.
pub fn failure_message(total: usize, reasons: &BTreeMap<Unfit, usize>) -> String {
    let mut parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    format!("0/{total} nodes are available: {}.", parts.join(", "))
}

/// Can `pod` run on `node`? The checks run in upstream's plugin order
/// (NodeUnschedulable, TaintToleration, NodeAffinity); the first failure is
/// the node's reason.
pub fn filter(pod: &Pod, node: &Node) -> Result<(), Unfit> {
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default();
    let cordoned = node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    let cordon_taint = Taint {
        key: TAINT_UNSCHEDULABLE.into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    };
    if cordoned && !tolerations.iter().any(|t| tolerates(t, &cordon_taint)) {
        return Err(Unfit::Unschedulable);
    }
    for taint in effective_taints(node) {
        if !matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute") {
            continue; // PreferNoSchedule only lowers a score upstream.
        }
        if !tolerations.iter().any(|t| tolerates(t, &taint)) {
            return Err(Unfit::UntoleratedTaint {
                key: taint.key.clone(),
                value: taint.value.clone().unwrap_or_default(),
            });
        }
    }
    if !matches_node_selector(pod, node) {
        return Err(Unfit::SelectorMismatch);
    }
    Ok(())
}

/// The node's taints, plus the one upstream's lifecycle controller would
/// have added for its Ready condition if it has not been added yet:
/// `not-ready` when Ready is False or missing, `unreachable` when Unknown.
/// So a node is only a candidate when it is Ready (or the Pod tolerates
/// exactly that state, as DaemonSet Pods do upstream).
pub fn effective_taints(node: &Node) -> Vec<Taint> {
    let mut taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let implied = match node_ready_status(node) {
        Some("True") => None,
        Some("Unknown") => Some(TAINT_UNREACHABLE),
        _ => Some(TAINT_NOT_READY),
    };
    if let Some(key) = implied {
        let already = taints
            .iter()
            .any(|t| t.key == TAINT_NOT_READY || t.key == TAINT_UNREACHABLE);
        if !already {
            taints.push(Taint {
                key: key.into(),
                effect: "NoSchedule".into(),
                ..Default::default()
            });
        }
    }
    taints
}

/// The status of the node's `Ready` condition (`True`, `False`, `Unknown`).
pub fn node_ready_status(node: &Node) -> Option<&str> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.as_str())
}

/// Whether `toleration` tolerates `taint` (the fact lives in `api::pod`).
pub use api::pod::tolerates;

/// `spec.nodeSelector` (every label must match) and, if present, required
/// node affinity (any term; every expression of a term).
pub fn matches_node_selector(pod: &Pod, node: &Node) -> bool {
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    if let Some(selector) = &spec.node_selector {
        if !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            return false;
        }
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    let Some(required) = required else {
        return true;
    };
    let name = node.name_any();
    required.node_selector_terms.iter().any(|term| {
        let exprs = term.match_expressions.as_deref().unwrap_or_default();
        let fields = term.match_fields.as_deref().unwrap_or_default();
        // An empty term selects nothing, as upstream.
        (!exprs.is_empty() || !fields.is_empty())
            && exprs
                .iter()
                .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
            && fields.iter().all(|r| {
                let value = (r.key == "metadata.name").then_some(name.as_str());
                requirement_matches(r, value)
            })
    })
}

/// One node selector requirement against a label's value (None: absent).
fn requirement_matches(req: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    let number = |s: &str| s.parse::<i64>().ok();
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => {
            matches!((value.and_then(number), values.first().and_then(|x| number(x))), (Some(v), Some(x)) if v > x)
        }
        "Lt" => {
            matches!((value.and_then(number), values.first().and_then(|x| number(x))), (Some(v), Some(x)) if v < x)
        }
        _ => false,
    }
}

/// The uid of the Pod's controller (its ReplicaSet, ...), if any.
pub fn controller_uid(pod: &Pod) -> Option<String> {
    pod.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.clone())
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// A Pod this scheduler should place: no node yet, asks for the default
/// scheduler, not being deleted, not finished.
pub fn needs_scheduling(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    spec.node_name.as_deref().is_none_or(str::is_empty)
        && spec
            .scheduler_name
            .as_deref()
            .is_none_or(|s| s.is_empty() || s == SCHEDULER_NAME)
        && pod.metadata.deletion_timestamp.is_none()
        && !is_terminal(pod)
}

/// Places one Pod. Idempotent: a bound Pod, or a Pod whose binding is in
/// flight, is left alone; an unschedulable Pod whose condition already says
/// why is not written again.
pub async fn reconcile(pod: Arc<Pod>, scheduler: Arc<Scheduler>) -> Result<Action> {
    if !needs_scheduling(&pod) {
        return Ok(Action::await_change());
    }
    let uid = pod
        .metadata
        .uid
        .clone()
        .ok_or_else(|| Error::invalid(format!("pod {}", pod.name_any()), "no uid"))?;
    // The node cache is complete: `run` waited for it before starting.
    let decision = scheduler.decide(&pod, &uid);
    tracing::debug!(pod = %pod.name_any(), ?decision, "decided");
    match decision {
        Decision::InFlight => Ok(Action::await_change()),
        Decision::Bind(node) => match bind(&scheduler.ctx, &pod, &node).await {
            Ok(()) => Ok(Action::await_change()),
            Err(e) => {
                scheduler.forget(&uid);
                Err(e)
            }
        },
        Decision::Unschedulable(message) => {
            mark_unschedulable(&scheduler.ctx, &pod, &message).await?;
            Ok(Action::requeue(UNSCHEDULABLE_RETRY))
        }
    }
}

pub fn error_policy(pod: Arc<Pod>, error: &Error, _scheduler: Arc<Scheduler>) -> Action {
    tracing::warn!(pod = %pod.name_any(), %error, "scheduling failed");
    Action::requeue(Duration::from_secs(1))
}

/// Posts the Binding, then records the `Scheduled` event.
async fn bind(ctx: &Context, pod: &Pod, node: &str) -> Result<()> {
    let namespace = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.into()),
            ..Default::default()
        },
    };
    let bound: Result<serde_json::Value, kube::Error> = pods
        .create_subresource("binding", &name, &PostParams::default(), &binding)
        .await;
    match bound {
        Ok(_) => {}
        // Someone (an earlier attempt of ours) bound it already: done.
        Err(kube::Error::Api(s)) if s.code == 409 => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    tracing::info!(pod = %format!("{namespace}/{name}"), node, "scheduled");
    // A Pod that waited carries PodScheduled=False; say it is placed now.
    let waited =
        crate::podstatus::condition(pod, "PodScheduled").is_some_and(|c| c.status != "True");
    if waited {
        let patch = json!({"status": {"conditions": [{
            "type": "PodScheduled", "status": "True", "reason": null, "message": null,
            "lastTransitionTime": Time(Timestamp::now()),
        }]}});
        if let Err(e) = pods
            .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
        {
            tracing::debug!(pod = %name, error = %e, "setting PodScheduled=True");
        }
    }
    ctx.events
        .publish(
            SCHEDULER_NAME,
            &pod.object_ref(&()),
            EventType::Normal,
            "Scheduled",
            &format!("Successfully assigned {namespace}/{name} to {node}"),
        )
        .await;
    Ok(())
}

/// Sets `PodScheduled=False` (reason `Unschedulable`) and records a
/// `FailedScheduling` event, unless the condition already says exactly that.
async fn mark_unschedulable(ctx: &Context, pod: &Pod, message: &str) -> Result<()> {
    let current = crate::podstatus::condition(pod, "PodScheduled");
    let unchanged = current.is_some_and(|c| {
        c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
            && c.message.as_deref() == Some(message)
    });
    if unchanged {
        return Ok(());
    }
    let transition = match current {
        Some(c) if c.status == "False" => c.last_transition_time.clone(),
        _ => None,
    }
    .unwrap_or(Time(Timestamp::now()));
    let condition = json!({
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": message, "lastTransitionTime": transition,
    });
    if !crate::podstatus::set_condition(&ctx.client, pod, condition).await? {
        return Ok(());
    }
    tracing::info!(pod = %pod.name_any(), message, "unschedulable");
    ctx.events
        .publish(
            SCHEDULER_NAME,
            &pod.object_ref(&()),
            EventType::Warning,
            "FailedScheduling",
            message,
        )
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Toleration;

    fn node(name: &str, extra: serde_json::Value) -> Arc<Node> {
        let mut node = json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        });
        merge(&mut node, extra);
        Arc::new(serde_json::from_value(node).unwrap())
    }

    fn pod(extra: serde_json::Value) -> Pod {
        let mut pod = json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u-p"},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]},
        });
        merge(&mut pod, extra);
        serde_json::from_value(pod).unwrap()
    }

    fn merge(into: &mut serde_json::Value, patch: serde_json::Value) {
        match (into, patch) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (slot, v) => *slot = v,
        }
    }

    fn toleration(v: serde_json::Value) -> Toleration {
        serde_json::from_value(v).unwrap()
    }

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: (!value.is_empty()).then(|| value.into()),
            effect: effect.into(),
            time_added: None,
        }
    }

    #[test]
    fn tolerations_follow_upstream_rules() {
        let t = taint("dedicated", "infra", "NoSchedule");
        let yes = [
            json!({"key": "dedicated", "operator": "Equal", "value": "infra", "effect": "NoSchedule"}),
            json!({"key": "dedicated", "value": "infra"}),
            json!({"key": "dedicated", "operator": "Exists"}),
            json!({"operator": "Exists"}),
            json!({"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}),
        ];
        for v in yes {
            assert!(tolerates(&toleration(v.clone()), &t), "{v} should tolerate");
        }
        let no = [
            json!({"key": "dedicated", "value": "gpu"}),
            json!({"key": "other", "operator": "Exists"}),
            json!({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}),
            json!({"operator": "Exists", "effect": "NoExecute"}),
        ];
        for v in no {
            assert!(
                !tolerates(&toleration(v.clone()), &t),
                "{v} should not tolerate"
            );
        }
    }

    #[test]
    fn filter_reports_the_first_failing_check() {
        let plain = pod(json!({}));
        assert_eq!(filter(&plain, &node("a", json!({}))), Ok(()));
        assert_eq!(
            filter(&plain, &node("a", json!({"spec": {"unschedulable": true}}))),
            Err(Unfit::Unschedulable)
        );
        let tainted = node(
            "a",
            json!({"spec": {"taints": [{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]}}),
        );
        assert_eq!(
            filter(&plain, &tainted),
            Err(Unfit::UntoleratedTaint {
                key: "dedicated".into(),
                value: "infra".into()
            })
        );
        let tolerant =
            pod(json!({"spec": {"tolerations": [{"key": "dedicated", "operator": "Exists"}]}}));
        assert_eq!(filter(&tolerant, &tainted), Ok(()));
        // PreferNoSchedule does not filter.
        let soft = node(
            "a",
            json!({"spec": {"taints": [{"key": "x", "effect": "PreferNoSchedule"}]}}),
        );
        assert_eq!(filter(&plain, &soft), Ok(()));
        let picky = pod(json!({"spec": {"nodeSelector": {"disk": "ssd"}}}));
        assert_eq!(
            filter(&picky, &node("a", json!({}))),
            Err(Unfit::SelectorMismatch)
        );
        assert_eq!(
            filter(
                &picky,
                &node("a", json!({"metadata": {"labels": {"disk": "ssd"}}}))
            ),
            Ok(())
        );
    }

    #[test]
    fn unready_nodes_count_as_tainted() {
        let plain = pod(json!({}));
        let unknown = node(
            "a",
            json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
        );
        assert_eq!(
            filter(&plain, &unknown),
            Err(Unfit::UntoleratedTaint {
                key: TAINT_UNREACHABLE.into(),
                value: "".into()
            })
        );
        let never = node("a", json!({"status": {"conditions": []}}));
        assert_eq!(
            filter(&plain, &never),
            Err(Unfit::UntoleratedTaint {
                key: TAINT_NOT_READY.into(),
                value: "".into()
            })
        );
        // The node lifecycle controller's own taint is not doubled.
        let tainted_unknown = node(
            "a",
            json!({"spec": {"taints": [{"key": TAINT_UNREACHABLE, "effect": "NoExecute"}]},
                   "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
        );
        assert_eq!(effective_taints(&tainted_unknown).len(), 1);
    }

    #[test]
    fn required_node_affinity() {
        let affinity = |exprs: serde_json::Value| {
            pod(json!({"spec": {"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": exprs}
            ]}}}}}))
        };
        let n = node(
            "a",
            json!({"metadata": {"labels": {"zone": "b", "cores": "8"}}}),
        );
        let cases = [
            (
                json!([{"key": "zone", "operator": "In", "values": ["a", "b"]}]),
                true,
            ),
            (
                json!([{"key": "zone", "operator": "NotIn", "values": ["b"]}]),
                false,
            ),
            (json!([{"key": "gpu", "operator": "DoesNotExist"}]), true),
            (
                json!([{"key": "zone", "operator": "Exists"}, {"key": "cores", "operator": "Gt", "values": ["4"]}]),
                true,
            ),
            (
                json!([{"key": "cores", "operator": "Lt", "values": ["4"]}]),
                false,
            ),
        ];
        for (exprs, fits) in cases {
            assert_eq!(
                matches_node_selector(&affinity(exprs.clone()), &n),
                fits,
                "{exprs}"
            );
        }
    }

    #[test]
    fn failure_message_matches_upstream() {
        let nodes = vec![
            node(
                "a",
                json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
            ),
            node(
                "b",
                json!({"spec": {"taints": [{"key": TAINT_UNREACHABLE, "effect": "NoSchedule"}]}}),
            ),
            node("c", json!({})),
        ];
        let picky = pod(json!({"spec": {"nodeSelector": {"disk": "ssd"}}}));
        assert_eq!(
            schedule(&picky, &nodes, std::iter::empty()),
            Decision::Unschedulable(
                "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, \
                 2 node(s) had untolerated taint {node.kubernetes.io/unreachable: }."
                    .into()
            )
        );
        assert_eq!(
            schedule(&picky, &[], std::iter::empty()),
            Decision::Unschedulable("no nodes available to schedule pods".into())
        );
    }

    #[test]
    fn spreads_by_owner_then_total_then_name() {
        let owned = pod(json!({"metadata": {"ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs-1", "controller": true}
        ]}}));
        let nodes = vec![
            node("a", json!({})),
            node("b", json!({})),
            node("c", json!({})),
        ];
        let rs = || Some("rs-1".to_string());
        let other = || Some("rs-2".to_string());
        // Empty cluster: the first name.
        assert_eq!(
            schedule(&owned, &nodes, std::iter::empty()),
            Decision::Bind("a".into())
        );
        // One of ours on a: b and c tie on owner and total; b by name.
        let placed = vec![("a".to_string(), rs())];
        assert_eq!(
            schedule(&owned, &nodes, at(placed)),
            Decision::Bind("b".into())
        );
        // Fewest of ours beats fewest overall: b is crowded by others.
        let placed = vec![
            ("a".to_string(), rs()),
            ("c".to_string(), rs()),
            ("b".to_string(), other()),
            ("b".to_string(), other()),
            ("b".to_string(), None),
        ];
        assert_eq!(
            schedule(&owned, &nodes, at(placed)),
            Decision::Bind("b".into())
        );
        // A tie on ours: the fewest Pods in total.
        let placed = vec![("a".to_string(), other()), ("b".to_string(), None)];
        let ours_nowhere = schedule(&owned, &nodes, at(placed));
        assert_eq!(ours_nowhere, Decision::Bind("c".into()));
    }

    fn at(placed: Vec<(String, Option<String>)>) -> impl Iterator<Item = Placed> {
        placed.into_iter().map(|(node, owner)| Placed {
            node,
            owner,
            requests: Default::default(),
        })
    }

    fn sized(name: &str, cpu: &str, memory: &str, pods: &str) -> Arc<Node> {
        node(
            name,
            json!({"status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods}}}),
        )
    }

    fn asking(cpu: &str, memory: &str) -> Pod {
        pod(
            json!({"spec": {"containers": [{"name": "c", "image": "nginx",
            "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}}),
        )
    }

    #[test]
    fn requests_must_fit_what_the_node_has_left() {
        let nodes = vec![sized("a", "2", "2Gi", "110"), sized("b", "2", "2Gi", "110")];
        assert_eq!(
            schedule(&asking("3", "1Gi"), &nodes, std::iter::empty()),
            Decision::Unschedulable("0/2 nodes are available: 2 Insufficient cpu.".into())
        );
        assert_eq!(
            schedule(&asking("3", "3Gi"), &nodes, std::iter::empty()),
            Decision::Unschedulable(
                "0/2 nodes are available: 2 Insufficient cpu, 2 Insufficient memory.".into()
            )
        );
        // 1.5 CPU already requested on a: 1 CPU only fits on b.
        let busy = Placed {
            node: "a".into(),
            owner: None,
            requests: api::pod::PodRequests {
                cpu_milli: 1500,
                memory: 0,
            },
        };
        assert_eq!(
            schedule(&asking("1", "64Mi"), &nodes, std::iter::once(busy)),
            Decision::Bind("b".into())
        );
    }

    #[test]
    fn a_full_node_has_too_many_pods_and_other_reasons_add_up() {
        let nodes = vec![
            sized("a", "2", "2Gi", "1"),
            sized("b", "1", "2Gi", "110"),
            node(
                "c",
                json!({"spec": {"taints": [{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]},
                             "status": {"allocatable": {"cpu": "8", "memory": "8Gi", "pods": "110"}}}),
            ),
        ];
        let placed = at(vec![("a".to_string(), None)]);
        assert_eq!(
            schedule(&asking("1500m", "64Mi"), &nodes, placed),
            Decision::Unschedulable(
                "0/3 nodes are available: 1 Insufficient cpu, 1 Too many pods, \
                 1 node(s) had untolerated taint {dedicated: infra}."
                    .into()
            )
        );
    }

    #[test]
    fn a_pod_without_requests_only_needs_room_for_one_more_pod() {
        let nodes = vec![sized("a", "100m", "1Mi", "110")];
        assert_eq!(
            schedule(&pod(json!({})), &nodes, std::iter::empty()),
            Decision::Bind("a".into())
        );
    }

    #[test]
    fn which_pods_wait_for_this_scheduler() {
        assert!(needs_scheduling(&pod(json!({}))));
        assert!(needs_scheduling(&pod(
            json!({"spec": {"schedulerName": "default-scheduler"}})
        )));
        assert!(!needs_scheduling(&pod(
            json!({"spec": {"schedulerName": "other"}})
        )));
        assert!(!needs_scheduling(&pod(json!({"spec": {"nodeName": "a"}}))));
        assert!(!needs_scheduling(&pod(
            json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}})
        )));
        assert!(!needs_scheduling(&pod(
            json!({"status": {"phase": "Succeeded"}})
        )));
    }
}
