//! The garbage collector: what `ownerReferences` mean when an owner goes.
//!
//! Kubernetes objects point at the objects they belong to. A Pod made by a
//! ReplicaSet carries
//!
//! ```yaml
//! metadata:
//!   ownerReferences:
//!   - apiVersion: apps/v1
//!     kind: ReplicaSet
//!     name: ngx-dep-6796688696
//!     uid: 9f1c...            # this very ReplicaSet, not a later one of the same name
//!     controller: true
//!     blockOwnerDeletion: true
//! ```
//!
//! and the ReplicaSet points the same way at its Deployment; an
//! EndpointSlice points at its Service. Nobody ever writes "delete the
//! children" into a controller: deleting an owner is one API call, and this
//! collector makes its dependents follow, in one of three ways chosen by the
//! `propagationPolicy` of the delete:
//!
//! - **Background** (kubectl's default): the owner is removed at once. The
//!   collector then finds dependents all of whose owners are gone and
//!   deletes them, in Background too, so a Deployment's removal removes its
//!   ReplicaSets, whose removal removes their Pods.
//! - **Foreground**: the apiserver only marks the owner (`deletionTimestamp`)
//!   and adds the `foregroundDeletion` finalizer. The collector deletes the
//!   dependents - in Foreground again when they own objects themselves, so
//!   it recurses Deployment -> ReplicaSets -> Pods - and waits until the
//!   dependents that block their owner (`blockOwnerDeletion: true`, which
//!   every controller sets on what it creates) are really gone. A Pod on a
//!   node is gone only when its node agent has stopped it. Then it removes
//!   the finalizer, and removing an object's last finalizer deletes it.
//! - **Orphan**: the owner gets the `orphan` finalizer; the collector removes
//!   the ownerReferences that point at it from every dependent, then the
//!   finalizer. The dependents live on, owned by nobody.
//!
//! An owner *exists* only if an object with the reference's name **and
//! uid** exists: a Deployment deleted and created again under the same name
//! is a different owner, and the old one's ReplicaSets are garbage. A
//! namespaced owner is looked for in its dependent's namespace only; a
//! cluster-scoped object (a Node) cannot have a namespaced owner, and such
//! a reference is ignored with an `OwnerRefInvalidNamespace` warning Event.
//!
//! # How this collector is built
//!
//! ```text
//!   watch Pods ─────┐                         ┌─▶ applier(Pods)        ─▶ reconcile(pod)
//!   watch ReplicaSets┼─▶ caches + dependency ─┼─▶ applier(ReplicaSets) ─▶ reconcile(rs)
//!   watch ...  ─────┘    graph (owner uid ->  └─▶ ...
//!                        its dependents)
//! ```
//!
//! - One reflector per kind of the resource table (Events and Namespaces
//!   aside: see below) keeps a cache of every object, as
//!   [`DynamicObject`]s, because the collector treats all kinds alike.
//! - The same watch events feed the [`DependencyGraph`], an index from an
//!   owner's uid to the objects that name it (upstream's GraphBuilder).
//! - One reconcile loop per kind, run by kube-rs's [`applier`]: the engine
//!   inside `kube::runtime::Controller`, used directly because the collector
//!   must wake objects of one kind from events of another (when a
//!   ReplicaSet disappears, its Pods need a look), which `Controller` could
//!   only do with one extra watch per pair of kinds. The applier still gives
//!   what a Controller gives: one reconcile at a time per object, merged
//!   duplicate requests, and retries through [`error_policy`].
//! - [`reconcile`] looks at one object in two roles, like upstream's
//!   `attemptToDelete` and `attemptToOrphan` queues:
//!   - as an **owner being deleted** with the `orphan` or `foregroundDeletion`
//!     finalizer: orphan its dependents, or delete them and wait;
//!   - as a **dependent**: classify each owner as *solid* (exists),
//!     *dangling* (gone, or same name with another uid) or *waiting* (being
//!     deleted in Foreground). No solid owner left: delete it. Solid owners
//!     left: keep it, but drop its references to the others.
//!
//! The caches decide when nothing needs doing, which is almost always (a
//! Pod's status changed; its ReplicaSet is in the cache: done). Before
//! acting, the collector asks the apiserver: it re-reads the dependent and
//! every owner the cache does not show, and deletes with the uid and
//! resourceVersion it read as preconditions. A cache that lags behind can
//! delay a deletion, never cause a wrong one. Uids are never reused, so an
//! owner uid once confirmed absent is remembered as absent.
//!
//! # Not here
//!
//! - Deleting a **namespace** deletes everything in it; kube-lite's
//!   apiserver does that itself (`apiserver/src/namespaces.rs`, upstream's
//!   namespace controller), so Namespaces are not watched here. Neither are
//!   Events: nothing owns them or is owned by them, and they are many.
//! - Upstream detects cycles of Foreground deletions (an owner and its
//!   dependent both waiting for each other) and breaks them by unblocking
//!   ownerReferences; kube-lite's objects never form such cycles.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::resources::{ResourceType, RESOURCES};
use futures::channel::mpsc;
use futures::future::BoxFuture;
use futures::{stream, FutureExt, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use kube::runtime::controller::{self, applier, Action, ReconcileReason, ReconcileRequest};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::runtime::{reflector, WatchStreamExt};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use crate::events::{EventType, Recorder};
use crate::{Context, Error, Result};

/// The finalizer of an Orphan delete: take the ownerReferences away.
pub const ORPHAN_FINALIZER: &str = "orphan";

/// The finalizer of a Foreground delete: dependents first.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

/// Kinds of the resource table the collector does not watch (see the
/// module doc).
const UNWATCHED_KINDS: &[&str] = &["Event", "Namespace"];

/// An owner waiting for its dependents is woken by their deletion; this is
/// the safety net should a wake-up be missed (a watch that reconnected).
const WAITING_RECHECK: Duration = Duration::from_secs(10);

/// Retry after a failed reconcile, typically a conflict: someone changed
/// the object between our read and our write, so read again.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);

/// How many absent owner uids are remembered (upstream keeps 500).
const ABSENT_OWNERS_REMEMBERED: usize = 1000;

/// Names one object of any kind: the kind is the `ApiResource` inside.
type Ref = ObjectRef<DynamicObject>;

/// Runs the garbage collector until the process stops.
pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let mut writers = Vec::new();
    let mut wake_ups = Vec::new();
    let mut kinds = Vec::new();
    for resource in RESOURCES.iter().filter(|r| is_watched(r)) {
        let api_resource = api_resource(resource);
        let writer = reflector::store::Writer::new(api_resource.clone());
        let (wake, woken) = mpsc::unbounded();
        kinds.push(WatchedKind {
            resource,
            api_resource,
            store: writer.as_reader(),
            wake,
        });
        writers.push(writer);
        wake_ups.push(woken);
    }
    let gc = Arc::new(GarbageCollector {
        client: ctx.client.clone(),
        events: ctx.events.clone(),
        kinds,
        graph: Mutex::default(),
        absent_owners: Mutex::default(),
    });
    let loops = writers
        .into_iter()
        .zip(wake_ups)
        .enumerate()
        .map(|(kind, (writer, woken))| run_kind(gc.clone(), kind, writer, woken));
    futures::future::join_all(loops).await;
    anyhow::bail!("the garbage collector's loops stopped")
}

/// Whether the collector watches objects of `resource`.
fn is_watched(resource: &ResourceType) -> bool {
    !UNWATCHED_KINDS.contains(&resource.kind)
        && ["list", "watch", "delete"]
            .iter()
            .all(|verb| resource.verbs.contains(verb))
}

/// What kube-rs needs to reach objects of `resource` without a Rust type.
fn api_resource(resource: &ResourceType) -> ApiResource {
    ApiResource {
        group: resource.group.to_string(),
        version: resource.version.to_string(),
        api_version: resource.api_version(),
        kind: resource.kind.to_string(),
        plural: resource.plural.to_string(),
    }
}

/// The reconcile loop of one kind: its watch (which also feeds the graph),
/// the wake-ups other kinds send it, and the applier running [`reconcile`].
async fn run_kind(
    gc: Arc<GarbageCollector>,
    kind: usize,
    writer: reflector::store::Writer<DynamicObject>,
    woken: mpsc::UnboundedReceiver<WakeUp>,
) {
    let watched = &gc.kinds[kind];
    let label = watched.resource.to_string();
    let api: Api<DynamicObject> = Api::all_with(gc.client.clone(), &watched.api_resource);
    let store = watched.store.clone();

    let mut relist = Relist::default();
    let observer = gc.clone();
    let own_changes = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .flat_map(move |event| {
            let requests = match event {
                Ok(event) => observer.observe(kind, event, &mut relist),
                Err(e) => {
                    tracing::warn!(error = %e, "garbage collector: watching {}", observer.kinds[kind].resource);
                    Vec::new()
                }
            };
            stream::iter(requests)
        });
    let wake_ups = woken.map(ReconcileRequest::from);
    let queue = stream::select(own_changes, wake_ups).map(Ok::<_, Infallible>);

    let context = Arc::new(KindLoop { gc, kind });
    applier(
        |object, ctx| -> BoxFuture<'static, Result<Action>> { reconcile(object, ctx).boxed() },
        error_policy,
        context,
        store,
        queue,
        controller::Config::default(),
    )
    .for_each(|result| {
        match result {
            Ok(_) => {}
            // A wake-up for an object that is gone by now: nothing to do.
            Err(controller::Error::ObjectNotFound(_)) => {}
            Err(e) => tracing::debug!(error = %e, "garbage collector: {label}"),
        }
        std::future::ready(())
    })
    .await;
}

/// One kind the collector watches: its cache and its loop's wake-up line.
struct WatchedKind {
    resource: &'static ResourceType,
    api_resource: ApiResource,
    store: Store<DynamicObject>,
    wake: mpsc::UnboundedSender<WakeUp>,
}

/// Asks the loop of `target`'s kind to reconcile it, because `cause`
/// changed.
struct WakeUp {
    target: Ref,
    cause: Ref,
}

impl From<WakeUp> for ReconcileRequest<DynamicObject> {
    fn from(wake_up: WakeUp) -> Self {
        ReconcileRequest {
            obj_ref: wake_up.target,
            reason: ReconcileReason::RelatedObjectUpdated {
                obj_ref: Box::new(wake_up.cause),
            },
        }
    }
}

/// The context of one kind's loop: the collector, and which kind it is
/// (a [`DynamicObject`] does not reliably say).
pub struct KindLoop {
    gc: Arc<GarbageCollector>,
    kind: usize,
}

/// What all the loops share: the caches, the graph, the client.
pub struct GarbageCollector {
    client: kube::Client,
    events: Recorder,
    kinds: Vec<WatchedKind>,
    graph: Mutex<DependencyGraph>,
    /// Owner uids the apiserver confirmed absent. A uid is never reused, so
    /// the answer never goes stale; it saves a GET per Pod when a
    /// ReplicaSet with many Pods goes.
    absent_owners: Mutex<HashSet<String>>,
}

/// Who owns whom, by uid: upstream's dependency graph, reduced to what the
/// decisions need.
#[derive(Default)]
pub struct DependencyGraph {
    /// Each object with ownerReferences, and those references.
    owners_of: HashMap<Ref, Vec<OwnerReference>>,
    /// Each owner uid named anywhere, and the objects naming it.
    dependents_of: HashMap<String, HashSet<Ref>>,
}

impl DependencyGraph {
    /// Records the current ownerReferences of `object`; returns the ones it
    /// no longer has (their owners may be waiting for it to let go).
    pub fn record(&mut self, object: Ref, owners: Vec<OwnerReference>) -> Vec<OwnerReference> {
        let previous = if owners.is_empty() {
            self.owners_of.remove(&object).unwrap_or_default()
        } else {
            for owner in &owners {
                self.dependents_of
                    .entry(owner.uid.clone())
                    .or_default()
                    .insert(object.clone());
            }
            self.owners_of
                .insert(object.clone(), owners.clone())
                .unwrap_or_default()
        };
        let dropped: Vec<OwnerReference> = previous
            .into_iter()
            .filter(|old| !owners.iter().any(|new| new.uid == old.uid))
            .collect();
        for owner in &dropped {
            self.unlink(&owner.uid, &object);
        }
        dropped
    }

    /// Forgets a deleted object; returns the ownerReferences it had.
    pub fn forget(&mut self, object: &Ref) -> Vec<OwnerReference> {
        let owners = self.owners_of.remove(object).unwrap_or_default();
        for owner in &owners {
            self.unlink(&owner.uid, object);
        }
        owners
    }

    /// The objects whose ownerReferences name `owner_uid`.
    pub fn dependents(&self, owner_uid: &str) -> Vec<Ref> {
        self.dependents_of
            .get(owner_uid)
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Every object that has an owner of kind `owner`.
    fn dependents_of_kind(&self, owner: &ApiResource) -> Vec<Ref> {
        self.owners_of
            .iter()
            .filter(|(_, owners)| {
                owners
                    .iter()
                    .any(|o| o.kind == owner.kind && o.api_version == owner.api_version)
            })
            .map(|(object, _)| object.clone())
            .collect()
    }

    /// The recorded objects of one kind.
    fn objects_of_kind(&self, kind: &ApiResource) -> Vec<Ref> {
        self.owners_of
            .keys()
            .filter(|r| &r.dyntype == kind)
            .cloned()
            .collect()
    }

    fn unlink(&mut self, owner_uid: &str, object: &Ref) {
        if let Some(dependents) = self.dependents_of.get_mut(owner_uid) {
            dependents.remove(object);
            if dependents.is_empty() {
                self.dependents_of.remove(owner_uid);
            }
        }
    }
}

/// The objects a re-list has returned so far. A watch that reconnects
/// lists everything again; whatever it no longer lists was deleted while
/// the watch was down, without a Delete event.
#[derive(Default)]
struct Relist {
    seen: Option<HashSet<Ref>>,
}

/// What an owner reference resolves to, from a dependent's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OwnerState {
    /// The owner exists (same name and uid) and is not deleting its
    /// dependents: the dependent stays.
    Solid,
    /// No object with that name and uid exists.
    Dangling,
    /// The owner is being deleted in Foreground: it waits for this
    /// dependent to go.
    WaitingForDependentsDeletion,
}

/// Reconciles one object: as an owner being deleted, and as a dependent.
/// Running it twice changes nothing more.
pub async fn reconcile(object: Arc<DynamicObject>, ctx: Arc<KindLoop>) -> Result<Action> {
    let gc = &ctx.gc;
    let kind = &gc.kinds[ctx.kind];
    // Decisions about dependents read every kind's cache: wait for all.
    gc.wait_until_synced().await?;

    if object.metadata.deletion_timestamp.is_some() {
        if has_finalizer(&object, ORPHAN_FINALIZER) {
            gc.orphan_dependents(kind, &object).await?;
            // Foreground, if asked too, sees the result on the next event.
            return Ok(Action::await_change());
        }
        if has_finalizer(&object, FOREGROUND_FINALIZER) {
            return gc.delete_dependents_first(kind, &object).await;
        }
        // Already going; its dependents are looked at once it is gone.
        return Ok(Action::await_change());
    }
    if owner_references(&object).is_empty() {
        return Ok(Action::await_change());
    }
    gc.attempt_to_delete(kind, &object).await?;
    Ok(Action::await_change())
}

/// Failed reconciles are retried: most failures are conflicts with a
/// concurrent writer, or an apiserver that is briefly away.
pub fn error_policy(object: Arc<DynamicObject>, error: &Error, ctx: Arc<KindLoop>) -> Action {
    let what = format!("{} {}", ctx.gc.kinds[ctx.kind].resource, describe(&object));
    match error {
        // A precondition failed: the object changed under us. Routine.
        Error::Kube(kube::Error::Api(status)) if status.code == 409 => {
            tracing::debug!(error = %error, "garbage collector: {what}, retrying")
        }
        _ => tracing::warn!(error = %error, "garbage collector: {what}"),
    }
    Action::requeue(RETRY_AFTER_ERROR)
}

impl GarbageCollector {
    async fn wait_until_synced(&self) -> Result<()> {
        for kind in &self.kinds {
            crate::wait_for_cache(&kind.store).await.map_err(|_| {
                Error::CacheStopped(format!("garbage collector's {}", kind.resource))
            })?;
        }
        Ok(())
    }

    /// Updates the graph from one watch event of `kind`, wakes the objects
    /// the event concerns, and returns the reconcile requests of the
    /// event's own object.
    fn observe(
        &self,
        kind: usize,
        event: watcher::Event<DynamicObject>,
        relist: &mut Relist,
    ) -> Vec<ReconcileRequest<DynamicObject>> {
        let watched = &self.kinds[kind];
        let dyntype = &watched.api_resource;
        match event {
            watcher::Event::Apply(object) | watcher::Event::InitApply(object) => {
                let this = ObjectRef::from_obj_with(&object, dyntype.clone());
                let dropped = self
                    .lock_graph()
                    .record(this.clone(), owner_references(&object));
                // An owner waiting in Foreground counts dependents that still
                // name it; this one just stopped.
                self.wake_deleting_owners(&object, dropped, &this);
                if let Some(seen) = &mut relist.seen {
                    // During a re-list the cache is replaced only at the end
                    // (InitDone): reconcile then, against the new cache.
                    seen.insert(this);
                    return Vec::new();
                }
                if needs_attention(&object) {
                    return vec![ReconcileRequest {
                        obj_ref: this,
                        reason: ReconcileReason::ObjectUpdated,
                    }];
                }
                Vec::new()
            }
            watcher::Event::Delete(object) => {
                let this = ObjectRef::from_obj_with(&object, dyntype.clone());
                self.lock_graph().forget(&this);
                self.wake_deleting_owners(&object, owner_references(&object), &this);
                // Its dependents may have lost their last owner.
                if let Some(uid) = &object.metadata.uid {
                    let dependents = self.lock_graph().dependents(uid);
                    for dependent in dependents {
                        self.wake(dependent, &this);
                    }
                }
                Vec::new()
            }
            watcher::Event::Init => {
                relist.seen = Some(HashSet::new());
                Vec::new()
            }
            watcher::Event::InitDone => {
                let seen = relist.seen.take().unwrap_or_default();
                // Objects deleted while the watch was down.
                let missed: Vec<Ref> = self
                    .lock_graph()
                    .objects_of_kind(dyntype)
                    .into_iter()
                    .filter(|r| !seen.contains(r))
                    .collect();
                for gone in &missed {
                    let owners = self.lock_graph().forget(gone);
                    for owner in owners {
                        if let Some(owner_ref) = self.owner_ref(gone.namespace.as_deref(), &owner) {
                            self.wake(owner_ref, gone);
                        }
                    }
                }
                // Owners of this kind deleted while the watch was down left
                // dependents behind without a Delete event to wake them.
                // (The "cause" names no object: the re-list itself is it.)
                let cause = ObjectRef::new_with("", dyntype.clone());
                let dependents = self.lock_graph().dependents_of_kind(dyntype);
                for dependent in dependents {
                    self.wake(dependent, &cause);
                }
                seen.into_iter()
                    .filter(|r| watched.store.get(r).is_some_and(|o| needs_attention(&o)))
                    .map(|obj_ref| ReconcileRequest {
                        obj_ref,
                        reason: ReconcileReason::ObjectUpdated,
                    })
                    .collect()
            }
        }
    }

    fn lock_graph(&self) -> std::sync::MutexGuard<'_, DependencyGraph> {
        // A panic while holding the lock leaves a graph that is still a
        // valid index; keep using it.
        self.graph.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the owners among `owners` that are being deleted (those may be
    /// waiting for `dependent`).
    fn wake_deleting_owners(
        &self,
        dependent: &DynamicObject,
        owners: impl IntoIterator<Item = OwnerReference>,
        cause: &Ref,
    ) {
        let namespace = dependent.metadata.namespace.as_deref();
        for owner in owners {
            let Some(owner_ref) = self.owner_ref(namespace, &owner) else {
                continue;
            };
            let deleting = self
                .cached(&owner_ref)
                .is_some_and(|o| o.metadata.deletion_timestamp.is_some());
            if deleting {
                self.wake(owner_ref, cause);
            }
        }
    }

    /// Sends `target` to its kind's loop.
    fn wake(&self, target: Ref, cause: &Ref) {
        if let Some(kind) = self.kinds.iter().find(|k| k.api_resource == target.dyntype) {
            // The receiver lives as long as the collector.
            let _ = kind.wake.unbounded_send(WakeUp {
                target,
                cause: cause.clone(),
            });
        }
    }

    /// The watched kind of `resource`, if it is watched.
    fn watched(&self, resource: &ResourceType) -> Option<&WatchedKind> {
        self.kinds.iter().find(|k| k.resource == resource)
    }

    /// Where a watched owner lives, for a dependent in `namespace`.
    fn owner_ref(&self, namespace: Option<&str>, owner: &OwnerReference) -> Option<Ref> {
        let resource = api::resources::by_kind(&owner.api_version, &owner.kind)?;
        let watched = self.watched(resource)?;
        let owner_ref = ObjectRef::new_with(&owner.name, watched.api_resource.clone());
        match (resource.namespaced, namespace) {
            (true, Some(ns)) => Some(owner_ref.within(ns)),
            (true, None) => None,
            (false, _) => Some(owner_ref),
        }
    }

    fn cached(&self, object: &Ref) -> Option<Arc<DynamicObject>> {
        self.kinds
            .iter()
            .find(|k| k.api_resource == object.dyntype)
            .and_then(|k| k.store.get(object))
    }

    /// The API of `resource` in `namespace` (ignored when cluster-scoped).
    fn api(&self, resource: &ResourceType, namespace: Option<&str>) -> Api<DynamicObject> {
        let api_resource = api_resource(resource);
        match namespace {
            Some(ns) if resource.namespaced => {
                Api::namespaced_with(self.client.clone(), ns, &api_resource)
            }
            _ => Api::all_with(self.client.clone(), &api_resource),
        }
    }

    /// The dependents of `owner` in the caches: objects whose
    /// ownerReferences carry its uid (in its namespace, if it has one).
    fn dependents(&self, owner: &DynamicObject) -> Vec<(&WatchedKind, Arc<DynamicObject>)> {
        let Some(uid) = owner.metadata.uid.as_deref() else {
            return Vec::new();
        };
        let refs = self.lock_graph().dependents(uid);
        let mut dependents = Vec::new();
        for dependent_ref in refs {
            let Some(kind) = self
                .kinds
                .iter()
                .find(|k| k.api_resource == dependent_ref.dyntype)
            else {
                continue;
            };
            let Some(dependent) = kind.store.get(&dependent_ref) else {
                continue;
            };
            let same_namespace = owner.metadata.namespace.is_none()
                || owner.metadata.namespace == dependent.metadata.namespace;
            if same_namespace && reference_to(&dependent, uid).is_some() {
                dependents.push((kind, dependent));
            }
        }
        dependents
    }

    /// Orphan: removes the references to `owner` from its dependents, then
    /// the `orphan` finalizer.
    async fn orphan_dependents(&self, kind: &WatchedKind, owner: &DynamicObject) -> Result<()> {
        let uid = owner.metadata.uid.clone().unwrap_or_default();
        for (dependent_kind, dependent) in self.dependents(owner) {
            tracing::debug!(
                "orphaning {} {} (owner {} {} is deleted with propagationPolicy Orphan)",
                dependent_kind.resource,
                describe(&dependent),
                kind.resource,
                describe(owner)
            );
            self.remove_owner_references(
                dependent_kind.resource,
                &dependent,
                std::slice::from_ref(&uid),
            )
            .await?;
        }
        self.remove_finalizer(kind.resource, owner, ORPHAN_FINALIZER)
            .await
    }

    /// Foreground: asks each dependent's loop to delete it (its owner is
    /// now *waiting*), and removes the `foregroundDeletion` finalizer once no
    /// blocking dependent is left.
    async fn delete_dependents_first(
        &self,
        kind: &WatchedKind,
        owner: &DynamicObject,
    ) -> Result<Action> {
        let uid = owner.metadata.uid.clone().unwrap_or_default();
        let owner_ref = ObjectRef::from_obj_with(owner, kind.api_resource.clone());
        let mut blocking = 0;
        for (dependent_kind, dependent) in self.dependents(owner) {
            if reference_to(&dependent, &uid).is_some_and(|r| r.block_owner_deletion == Some(true))
            {
                blocking += 1;
            }
            // One being deleted already is on its way (a Pod its node agent
            // is stopping, a ReplicaSet deleting its own Pods first).
            if dependent.metadata.deletion_timestamp.is_none() {
                let dependent_ref =
                    ObjectRef::from_obj_with(&*dependent, dependent_kind.api_resource.clone());
                self.wake(dependent_ref, &owner_ref);
            }
        }
        if blocking > 0 {
            tracing::debug!(
                "{} {} waits for {blocking} dependents to be deleted",
                kind.resource,
                describe(owner)
            );
            return Ok(Action::requeue(WAITING_RECHECK));
        }
        self.remove_finalizer(kind.resource, owner, FOREGROUND_FINALIZER)
            .await?;
        Ok(Action::await_change())
    }

    /// Background, and the dependents of a Foreground delete: deletes
    /// `cached` if none of its owners is left, or drops its references to
    /// owners that are gone if some are.
    async fn attempt_to_delete(&self, kind: &WatchedKind, cached: &DynamicObject) -> Result<()> {
        // The common case - every owner is there - costs no API call.
        let states = self.classify(kind, cached).await?;
        if states.iter().all(|(_, s)| *s == OwnerState::Solid) {
            return Ok(());
        }

        // Something is to be done: decide again on the latest version.
        let api = self.api(kind.resource, cached.metadata.namespace.as_deref());
        let latest = match api.get_opt(&cached.name_any()).await? {
            Some(latest) if latest.metadata.uid == cached.metadata.uid => latest,
            _ => return Ok(()), // gone, or another object by now
        };
        if latest.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        let states = self.classify(kind, &latest).await?;
        let uids_of = |wanted: &[OwnerState]| -> Vec<String> {
            states
                .iter()
                .filter(|(_, s)| wanted.contains(s))
                .map(|(r, _)| r.uid.clone())
                .collect()
        };
        if states.is_empty() {
            return Ok(());
        }
        if states.iter().any(|(_, s)| *s == OwnerState::Solid) {
            // Kept for the solid owners. References to the others go: a
            // waiting owner would otherwise wait for this object forever.
            let stale = uids_of(&[
                OwnerState::Dangling,
                OwnerState::WaitingForDependentsDeletion,
            ]);
            if !stale.is_empty() {
                tracing::debug!(
                    "{} {}: removing references to owners that are gone or going",
                    kind.resource,
                    describe(&latest)
                );
                self.remove_owner_references(kind.resource, &latest, &stale)
                    .await?;
            }
            return Ok(());
        }

        let waited_for = states
            .iter()
            .any(|(_, s)| *s == OwnerState::WaitingForDependentsDeletion);
        let policy = if waited_for && !self.dependents(&latest).is_empty() {
            // An owner waits for this one, which has dependents itself:
            // those go first, so the wait covers the whole tree.
            PropagationPolicy::Foreground
        } else if has_finalizer(&latest, ORPHAN_FINALIZER) {
            PropagationPolicy::Orphan
        } else if has_finalizer(&latest, FOREGROUND_FINALIZER) {
            PropagationPolicy::Foreground
        } else {
            PropagationPolicy::Background
        };
        tracing::debug!(
            "deleting {} {} ({policy:?}): no owner of it is left",
            kind.resource,
            describe(&latest)
        );
        let params = DeleteParams {
            propagation_policy: Some(policy),
            // Exactly what we decided on: not a new object of the same name,
            // not one that was given a new owner meanwhile.
            preconditions: Some(Preconditions {
                uid: latest.metadata.uid.clone(),
                resource_version: latest.metadata.resource_version.clone(),
            }),
            ..DeleteParams::default()
        };
        match api.delete(&latest.name_any(), &params).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The state of each owner of `dependent`.
    async fn classify(
        &self,
        kind: &WatchedKind,
        dependent: &DynamicObject,
    ) -> Result<Vec<(OwnerReference, OwnerState)>> {
        let mut states = Vec::new();
        for owner in owner_references(dependent) {
            let state = self.owner_state(kind, dependent, &owner).await?;
            states.push((owner, state));
        }
        Ok(states)
    }

    /// Whether `owner` (named by `dependent`) exists: the cache first, the
    /// apiserver when the cache does not show it.
    async fn owner_state(
        &self,
        kind: &WatchedKind,
        dependent: &DynamicObject,
        owner: &OwnerReference,
    ) -> Result<OwnerState> {
        let Some(resource) = api::resources::by_kind(&owner.api_version, &owner.kind) else {
            // A kind this cluster does not serve: never delete on a guess.
            tracing::debug!(
                "{}: owner kind {} {} is unknown; keeping it",
                describe(dependent),
                owner.api_version,
                owner.kind
            );
            return Ok(OwnerState::Solid);
        };
        let namespace = dependent.metadata.namespace.as_deref();
        if resource.namespaced && namespace.is_none() {
            // A cluster-scoped object cannot be owned by a namespaced one.
            // Such a reference cannot be resolved, so it is never taken as
            // a reason to delete; the owner of the object is told why.
            let message = format!(
                "ownerRef [{}/{}, namespace: , name: {}, uid: {}] does not exist in namespace \"\"",
                owner.api_version, owner.kind, owner.name, owner.uid
            );
            tracing::warn!("{} {}: {message}", kind.resource, describe(dependent));
            self.events
                .publish(
                    "garbage-collector-controller",
                    &dependent.object_ref(&kind.api_resource),
                    EventType::Warning,
                    "OwnerRefInvalidNamespace",
                    &message,
                )
                .await;
            return Ok(OwnerState::Solid);
        }
        if self.is_known_absent(&owner.uid) {
            return Ok(OwnerState::Dangling);
        }
        if let Some(cached) = self
            .owner_ref(namespace, owner)
            .and_then(|r| self.cached(&r))
            .filter(|o| o.metadata.uid.as_deref() == Some(owner.uid.as_str()))
        {
            return Ok(state_of(&cached));
        }
        // The cache does not show it (or shows another uid): ask.
        let api = self.api(resource, namespace);
        match api.get_opt(&owner.name).await? {
            Some(live) if live.metadata.uid.as_deref() == Some(owner.uid.as_str()) => {
                Ok(state_of(&live))
            }
            _ => {
                self.remember_absent(&owner.uid);
                Ok(OwnerState::Dangling)
            }
        }
    }

    fn is_known_absent(&self, uid: &str) -> bool {
        let absent = self.absent_owners.lock().unwrap_or_else(|e| e.into_inner());
        absent.contains(uid)
    }

    fn remember_absent(&self, uid: &str) {
        let mut absent = self.absent_owners.lock().unwrap_or_else(|e| e.into_inner());
        if absent.len() >= ABSENT_OWNERS_REMEMBERED {
            absent.clear();
        }
        absent.insert(uid.to_string());
    }

    /// Removes the ownerReferences with these uids from `dependent`. A
    /// strategic merge patch deletes list items by uid on the server, so
    /// a concurrent change to its other references is kept.
    async fn remove_owner_references(
        &self,
        resource: &ResourceType,
        dependent: &DynamicObject,
        owner_uids: &[String],
    ) -> Result<()> {
        let deletions: Vec<_> = owner_uids
            .iter()
            .map(|uid| json!({"$patch": "delete", "uid": uid}))
            .collect();
        let patch = json!({"metadata": {"ownerReferences": deletions}});
        let api = self.api(resource, dependent.metadata.namespace.as_deref());
        match api
            .patch(
                &dependent.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes `finalizer` from the latest version of `object`. When it was
    /// the last one, the apiserver deletes the object.
    async fn remove_finalizer(
        &self,
        resource: &ResourceType,
        object: &DynamicObject,
        finalizer: &str,
    ) -> Result<()> {
        let api = self.api(resource, object.metadata.namespace.as_deref());
        let latest = match api.get_opt(&object.name_any()).await? {
            Some(latest) if latest.metadata.uid == object.metadata.uid => latest,
            _ => return Ok(()),
        };
        if !has_finalizer(&latest, finalizer) {
            return Ok(());
        }
        let remaining: Vec<&String> = latest
            .finalizers()
            .iter()
            .filter(|f| *f != finalizer)
            .collect();
        tracing::debug!(
            "{resource} {}: removing the {finalizer} finalizer",
            describe(&latest)
        );
        // The resourceVersion makes it a compare-and-swap: finalizers added
        // meanwhile by someone else are not lost.
        let patch = json!({"metadata": {
            "resourceVersion": latest.metadata.resource_version,
            "finalizers": remaining,
        }});
        match api
            .patch(
                &latest.name_any(),
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// An owner that exists: solid, unless it is deleting its dependents.
fn state_of(owner: &DynamicObject) -> OwnerState {
    if owner.metadata.deletion_timestamp.is_some() && has_finalizer(owner, FOREGROUND_FINALIZER) {
        OwnerState::WaitingForDependentsDeletion
    } else {
        OwnerState::Solid
    }
}

/// Whether the collector has anything to consider about `object`.
fn needs_attention(object: &DynamicObject) -> bool {
    if object.metadata.deletion_timestamp.is_some() {
        has_finalizer(object, ORPHAN_FINALIZER) || has_finalizer(object, FOREGROUND_FINALIZER)
    } else {
        !owner_references(object).is_empty()
    }
}

fn owner_references(object: &DynamicObject) -> Vec<OwnerReference> {
    object.metadata.owner_references.clone().unwrap_or_default()
}

fn reference_to<'a>(object: &'a DynamicObject, owner_uid: &str) -> Option<&'a OwnerReference> {
    object
        .metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| r.uid == owner_uid)
}

fn has_finalizer(object: &DynamicObject, finalizer: &str) -> bool {
    object.finalizers().iter().any(|f| f == finalizer)
}

fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// `default/web-7d4b9c` or `node-1`, for logs.
fn describe(object: &DynamicObject) -> String {
    match &object.metadata.namespace {
        Some(ns) => format!("{ns}/{}", object.name_any()),
        None => object.name_any(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods() -> ApiResource {
        api_resource(api::resources::lookup("pods").unwrap())
    }

    fn pod(name: &str) -> Ref {
        ObjectRef::new_with(name, pods()).within("default")
    }

    fn owner(uid: &str) -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: format!("rs-{uid}"),
            uid: uid.into(),
            ..OwnerReference::default()
        }
    }

    #[test]
    fn the_graph_follows_ownerreferences_as_they_change() {
        let mut graph = DependencyGraph::default();
        assert!(graph.record(pod("a"), vec![owner("u1")]).is_empty());
        assert!(graph
            .record(pod("b"), vec![owner("u1"), owner("u2")])
            .is_empty());
        let mut of_u1 = graph.dependents("u1");
        of_u1.sort_by(|x, y| x.name.cmp(&y.name));
        assert_eq!(of_u1, vec![pod("a"), pod("b")]);

        // b lets go of u1: reported, so a waiting u1 can be woken.
        let dropped = graph.record(pod("b"), vec![owner("u2")]);
        assert_eq!(dropped.iter().map(|o| &o.uid).collect::<Vec<_>>(), ["u1"]);
        assert_eq!(graph.dependents("u1"), vec![pod("a")]);

        // a is deleted: it is no one's dependent any more.
        let had = graph.forget(&pod("a"));
        assert_eq!(had.len(), 1);
        assert!(graph.dependents("u1").is_empty());
        assert!(!graph.dependents_of.contains_key("u1"));

        // b loses every owner: it leaves the graph.
        let dropped = graph.record(pod("b"), Vec::new());
        assert_eq!(dropped.len(), 1);
        assert!(graph.owners_of.is_empty() && graph.dependents_of.is_empty());
    }

    #[test]
    fn dependents_are_found_by_owner_kind_for_relists() {
        let mut graph = DependencyGraph::default();
        graph.record(pod("a"), vec![owner("u1")]);
        let replicasets = api_resource(api::resources::lookup("rs").unwrap());
        let deployments = api_resource(api::resources::lookup("deploy").unwrap());
        assert_eq!(graph.dependents_of_kind(&replicasets), vec![pod("a")]);
        assert!(graph.dependents_of_kind(&deployments).is_empty());
        assert_eq!(graph.objects_of_kind(&pods()), vec![pod("a")]);
    }

    #[test]
    fn events_and_namespaces_are_not_watched() {
        let watched: Vec<&str> = RESOURCES
            .iter()
            .filter(|r| is_watched(r))
            .map(|r| r.kind)
            .collect();
        for kind in [
            "Pod",
            "ReplicaSet",
            "Deployment",
            "EndpointSlice",
            "ConfigMap",
        ] {
            assert!(watched.contains(&kind), "{kind} is watched");
        }
        assert!(!watched.contains(&"Event") && !watched.contains(&"Namespace"));
    }
}
