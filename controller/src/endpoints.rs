//! Endpoints: which Pods are behind a Service, right now.
//!
//! A Service names its Pods only indirectly, by a label selector
//! (`selector: {app: ngx-dep}`). Something has to turn that selector into
//! addresses a proxy can send packets to, and keep the list current as Pods
//! come, go, and turn ready or not. That is this loop, kube-controller-
//! manager's *endpoints* and *endpointslice* controllers in one. For every
//! Service with a selector it writes:
//!
//! - a v1 **Endpoints** object with the Service's name: `subsets` of
//!   `addresses` (ready Pods), `notReadyAddresses` and `ports`. The original
//!   API, still read by older tools (`kubectl get endpoints`).
//! - discovery.k8s.io/v1 **EndpointSlices**, the same endpoints in slices of
//!   at most 100 with per-endpoint conditions: what kube-proxy, DNS and
//!   `kubectl describe svc` read. See [`crate::endpointslice`].
//!
//! Which Pods count, as upstream decides it:
//! - only Pods with an IP, not finished (phase `Succeeded`/`Failed`);
//! - a Pod that is not Ready is listed, as not ready (`notReadyAddresses`,
//!   `ready: false`), unless the Service sets `publishNotReadyAddresses`,
//!   which makes every address ready (for peers that must find each other
//!   before they are ready, like a database cluster);
//! - a terminating Pod (`deletionTimestamp` set) stays in the slices with
//!   `terminating: true` (and `serving` saying whether it still answers)
//!   so proxies can drain it; the v1 Endpoints drop it.
//!
//! A Service *without* a selector is left alone: its Endpoints are written
//! by hand (to point a Service at something outside the cluster), and this
//! loop must not fight the user.
//!
//! Every write carries `endpoints.kubernetes.io/last-change-trigger-time`:
//! when the change it reflects happened (a Pod's Ready transition, or the
//! Service's creation; see [`TriggerTimes`]). A proxy that programs the
//! rules can subtract it from "now" to measure the whole
//! Pod-ready -> packets-flow latency, to the second (API times are whole
//! seconds).
//!
//! # How the loop is wired
//!
//! ```text
//!  Services ──watch──▶ cache ───────────┐         Pods ──watch──▶ cache
//!     │ Delete events                   ▼                           │ a Pod wakes the Services
//!     ▼                       reconcile(Service) ◀──────────────────┘ that select it, now or before
//!  clean up after it                    │  ◀── its Endpoints / slices changed by someone else
//!                                       ▼
//!            GET Endpoints, LIST slices (fresh), write only the difference
//! ```
//!
//! - Pods are many and change often, so they are read from a watch cache
//!   (a kube-rs reflector), never listed per reconcile.
//! - Our own outputs (the Endpoints and the slices) are read fresh from the
//!   apiserver in each reconcile. A cache of them lags behind our own
//!   writes, and a reconcile that does not see the slice it created a
//!   moment ago would create a second one. Upstream guards its cache with a
//!   generation tracker; two small reads are simpler, and the comparison
//!   with what we want means a reconcile with nothing to change writes
//!   nothing.
//! - A Pod event wakes every Service in its namespace that selects it, and
//!   also those that selected its previous version, so that relabelling a
//!   Pod (`kubectl label pod x app=debug --overwrite`) takes it out of the
//!   old Service.
//!
//! # When a Service is deleted
//!
//! kube-rs's `Controller` reconciles objects that exist; a deleted Service
//! never reaches `reconcile`. So the Service watch itself is tapped: a
//! *Delete* event triggers [`EndpointsController::clean_up_after`], which
//! deletes the Endpoints of that name and the Service's slices (the slices
//! also carry an ownerReference, so the garbage collector would get them
//! too; the Endpoints have no owner, as upstream). A Service deleted while
//! no controller was watching produces no event: each time the Service
//! watch (re)lists, [`EndpointsController::sweep_orphans`] removes Endpoints
//! and slices whose Service is gone, as upstream's `checkLeftoverEndpoints`
//! does at start-up.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::mpsc;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Pod, Service, ServicePort,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, PostParams, Preconditions};
use kube::runtime::controller::{self, Action};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, Controller, WatchStreamExt};
use kube::{Api, Resource, ResourceExt};

use crate::endpointslice::{self, LABEL_HEADLESS, LABEL_MANAGED_BY};
use crate::events::EventType;
use crate::{Context, Error, Result};
use api::endpointslice::SERVICE_NAME_LABEL;

/// Annotation on Endpoints and slices: when the change they reflect
/// happened (RFC 3339, with a fraction when the source has one).
pub use api::endpointslice::LAST_CHANGE_TRIGGER_TIME;

/// Annotation set to `truncated` when an Endpoints object had to drop
/// addresses beyond [`MAX_ENDPOINTS_ADDRESSES`].
pub const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";

/// Upstream's cap on addresses in one v1 Endpoints object; above it, only
/// the slices have them all.
pub const MAX_ENDPOINTS_ADDRESSES: usize = 1000;

/// Endpoints used as a leader-election lock by old components carry this;
/// they have no Service and must not be swept.
pub const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";

/// Services synced at the same time (upstream's `--concurrent-service-endpoint-syncs`
/// defaults to 5; our syncs wait on the apiserver, not the CPU).
pub const CONCURRENT_SYNCS: u16 = 16;

/// Names in Events, as upstream reports them.
const ENDPOINTS_COMPONENT: &str = "endpoint-controller";
const SLICES_COMPONENT: &str = "endpoint-slice-controller";

/// The loop's state: its caches and what it remembers between syncs.
pub struct EndpointsController {
    pub ctx: Arc<Context>,
    /// Every Pod of the cluster.
    pub pods: Store<Pod>,
    /// Every Service of the cluster.
    pub services: Store<Service>,
    trigger_times: TriggerTimes,
    /// Pod -> the Services its previous version selected, noted just
    /// before the cache takes the new version (see [`run`]).
    previously_selected_by: Mutex<HashMap<ObjectRef<Pod>, Vec<ObjectRef<Service>>>>,
    /// True while the Pod watch (re)lists: its Pods wake no Service one by
    /// one, every Service is synced when the list is complete.
    pods_listing: AtomicBool,
}

/// Runs the loop until its watches end.
pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let client = ctx.client.clone();
    let (services, services_writer) = reflector::store::<Service>();
    let (pods, pods_writer) = reflector::store::<Pod>();
    let ctl = Arc::new(EndpointsController::new(ctx, pods, services.clone()));

    // Services: a deletion or a (re)list is news for the clean-up.
    let (cleanup_tx, cleanup_rx) = mpsc::unbounded::<Cleanup>();
    let service_events = watcher(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(services_writer)
    .inspect_ok(move |event| match event {
        watcher::Event::Delete(service) => {
            let _ = cleanup_tx.unbounded_send(Cleanup::Deleted(Box::new(service.clone())));
        }
        watcher::Event::InitDone => {
            let _ = cleanup_tx.unbounded_send(Cleanup::Sweep);
        }
        _ => {}
    })
    .applied_objects();

    // Pods: before the cache takes a new version, note which Services the
    // old version was selected by. A (re)list wakes every Service once, at
    // its end, rather than once per Pod (10,000 Pods would be 10,000
    // wake-ups); that also covers Pods deleted while the watch was down,
    // which produce no event.
    let (relisted_tx, relisted_rx) = mpsc::unbounded::<()>();
    let noting = ctl.clone();
    let pod_events = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .inspect_ok(move |event| match event {
            watcher::Event::Apply(pod)
            | watcher::Event::InitApply(pod)
            | watcher::Event::Delete(pod) => noting.note_previous_selection(pod),
            watcher::Event::Init => noting.pods_listing.store(true, Ordering::SeqCst),
            watcher::Event::InitDone => {
                noting.pods_listing.store(false, Ordering::SeqCst);
                let _ = relisted_tx.unbounded_send(());
            }
        })
        .reflect(pods_writer)
        .touched_objects();

    let mapper = ctl.clone();
    let managed_slices = watcher::Config::default().labels(&format!(
        "{LABEL_MANAGED_BY}={}",
        endpointslice::CONTROLLER_NAME
    ));
    let syncing = Controller::for_stream(service_events, services)
        .watches_stream(pod_events, move |pod| mapper.services_to_sync(&pod))
        // Someone changed or deleted our output: put it back.
        .owns(Api::<EndpointSlice>::all(client.clone()), managed_slices)
        .watches(
            Api::<Endpoints>::all(client),
            watcher::Config::default(),
            |endpoints| {
                Some(
                    ObjectRef::<Service>::new(&endpoints.name_any())
                        .within(&endpoints.namespace()?),
                )
            },
        )
        .reconcile_all_on(relisted_rx)
        .with_config(controller::Config::default().concurrency(CONCURRENT_SYNCS))
        .run(reconcile, error_policy, ctl.clone())
        .for_each(|result| async move {
            match result {
                Ok(_) => {}
                // A trigger for a Service that is gone (its Endpoints
                // changed, say): the clean-up handles those.
                Err(controller::Error::ObjectNotFound(service)) => {
                    tracing::debug!(%service, "no such Service");
                }
                // Already reported by `error_policy`.
                Err(controller::Error::ReconcilerFailed(..)) => {}
                Err(e) => tracing::warn!(error = %e, "endpoints controller"),
            }
        });

    let cleaning = cleanup_rx.for_each(|job| {
        let ctl = ctl.clone();
        async move {
            let outcome = match &job {
                Cleanup::Deleted(service) => ctl.clean_up_after(service).await,
                Cleanup::Sweep => ctl.sweep_orphans().await,
            };
            if let Err(e) = outcome {
                tracing::warn!(error = %e, ?job, "cleaning up Endpoints of deleted Services");
            }
        }
    });

    tokio::join!(syncing, cleaning);
    Ok(())
}

/// Work for the clean-up, from the Service watch.
enum Cleanup {
    /// This Service was deleted.
    Deleted(Box<Service>),
    /// The Service cache was (re)filled from a full list: deletions may
    /// have been missed.
    Sweep,
}

impl std::fmt::Debug for Cleanup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cleanup::Deleted(s) => write!(f, "deleted Service {}", ObjectRef::from_obj(s.as_ref())),
            Cleanup::Sweep => write!(f, "sweep"),
        }
    }
}

/// Makes the Endpoints and EndpointSlices of `service` list the Pods it
/// selects. Writes nothing when they already do.
pub async fn reconcile(service: Arc<Service>, ctl: Arc<EndpointsController>) -> Result<Action> {
    let Some(selector) = selector(&service) else {
        // Hand-written Endpoints (or ExternalName): not ours to manage.
        return Ok(Action::await_change());
    };
    if service.metadata.deletion_timestamp.is_some() {
        // Going away; writing now would race the garbage collector.
        return Ok(Action::await_change());
    }
    // A half-filled Pod cache would make us drop endpoints that exist.
    crate::wait_for_cache(&ctl.pods).await?;

    let namespace = service.namespace().unwrap_or_default();
    let name = service.name_any();
    let pods = ctl.pods.state_filter(|pod| {
        pod.metadata.namespace.as_deref() == Some(namespace.as_str()) && selects(selector, pod)
    });
    let trigger_time = ctl.trigger_times.compute(&service, &pods);

    let endpoints_api: Api<Endpoints> = Api::namespaced(ctl.ctx.client.clone(), &namespace);
    let slices_api: Api<EndpointSlice> = Api::namespaced(ctl.ctx.client.clone(), &namespace);
    let (current_endpoints, current_slices) = tokio::try_join!(
        async { endpoints_api.get_opt(&name).await.map_err(Error::from) },
        endpointslice::list_managed(&slices_api, &name),
    )?;

    let endpoints_write = endpoints_update(&service, &pods, current_endpoints, trigger_time);
    let slice_plan = endpointslice::plan(
        &service,
        endpointslice::desired_endpoints(&service, &pods),
        current_slices,
        endpointslice::MAX_ENDPOINTS_PER_SLICE,
    );
    if endpoints_write.is_none() && slice_plan.is_empty() {
        return Ok(Action::await_change());
    }
    tracing::debug!(
        service = %ObjectRef::from_obj(&*service),
        pods = pods.len(),
        ?trigger_time,
        endpoints = endpoints_write.is_some(),
        slices = ?(slice_plan.create.len(), slice_plan.update.len(), slice_plan.delete.len()),
        "writing endpoints (slices: create, update, delete)"
    );

    let (endpoints_result, slices_result) = tokio::join!(
        async {
            match endpoints_write {
                Some(write) => ctl.write_endpoints(&endpoints_api, write).await,
                None => Ok(()),
            }
        },
        async {
            let result = endpointslice::apply(&slices_api, slice_plan, trigger_time).await;
            if let Err(e) = &result {
                if !is_conflict(e) {
                    let message = format!(
                        "Error updating Endpoint Slices for Service {namespace}/{name}: {e}"
                    );
                    ctl.ctx
                        .events
                        .publish(
                            SLICES_COMPONENT,
                            &service.object_ref(&()),
                            EventType::Warning,
                            "FailedToUpdateEndpointSlices",
                            &message,
                        )
                        .await;
                }
            }
            result
        },
    );

    // Deleted while we wrote? Then the clean-up may have run before our
    // writes: run it again, after them.
    let still_there = ctl
        .services
        .get(&ObjectRef::from_obj(&*service))
        .is_some_and(|s| s.uid() == service.uid());
    if !still_there {
        ctl.clean_up_after(&service).await?;
    }
    endpoints_result?;
    slices_result?;
    Ok(Action::await_change())
}

/// Failed syncs are retried: soon after a conflict (someone wrote in
/// between; the next read sees it), later after other errors.
pub fn error_policy(
    service: Arc<Service>,
    error: &Error,
    _ctl: Arc<EndpointsController>,
) -> Action {
    if is_conflict(error) {
        tracing::debug!(service = %ObjectRef::from_obj(&*service), "conflict, syncing again");
        return Action::requeue(Duration::from_millis(100));
    }
    tracing::warn!(service = %ObjectRef::from_obj(&*service), %error, "syncing endpoints");
    Action::requeue(Duration::from_secs(2))
}

fn is_conflict(error: &Error) -> bool {
    matches!(error, Error::Kube(kube::Error::Api(s)) if s.code == 409)
}

/// A create or an update of the v1 Endpoints object.
pub enum EndpointsWrite {
    Create(Endpoints),
    Update(Endpoints),
}

impl EndpointsController {
    pub fn new(
        ctx: Arc<Context>,
        pods: Store<Pod>,
        services: Store<Service>,
    ) -> EndpointsController {
        EndpointsController {
            ctx,
            pods,
            services,
            trigger_times: TriggerTimes::default(),
            previously_selected_by: Mutex::new(HashMap::new()),
            pods_listing: AtomicBool::new(false),
        }
    }

    /// The Services in `pod`'s namespace whose selector matches its labels.
    pub fn services_selecting(&self, pod: &Pod) -> Vec<ObjectRef<Service>> {
        let namespace = pod.metadata.namespace.as_deref();
        self.services
            .state_filter(|s| {
                s.metadata.namespace.as_deref() == namespace
                    && selector(s).is_some_and(|sel| selects(sel, pod))
            })
            .iter()
            .map(|s| ObjectRef::from_obj(s.as_ref()))
            .collect()
    }

    /// Called with each Pod event before the cache applies it: remembers
    /// which Services selected the version being replaced.
    fn note_previous_selection(&self, pod: &Pod) {
        let key = ObjectRef::from_obj(pod);
        if let Some(previous) = self.pods.get(&key) {
            if previous.labels() != pod.labels() {
                let before = self.services_selecting(&previous);
                let mut noted = self.previously_selected_by.lock().expect("lock");
                noted.insert(key, before);
            }
        }
    }

    /// Which Services a Pod event concerns: those selecting it now, and
    /// those that selected it before a label change.
    pub fn services_to_sync(&self, pod: &Pod) -> Vec<ObjectRef<Service>> {
        let before = self
            .previously_selected_by
            .lock()
            .expect("lock")
            .remove(&ObjectRef::from_obj(pod));
        if self.pods_listing.load(Ordering::SeqCst) {
            // Part of a full list: every Service is synced once it ends.
            return Vec::new();
        }
        let mut services = self.services_selecting(pod);
        for service in before.into_iter().flatten() {
            if !services.contains(&service) {
                services.push(service);
            }
        }
        services
    }

    async fn write_endpoints(&self, api: &Api<Endpoints>, write: EndpointsWrite) -> Result<()> {
        let (result, reason, endpoints) = match write {
            EndpointsWrite::Create(endpoints) => (
                api.create(&PostParams::default(), &endpoints).await,
                "FailedToCreateEndpoint",
                endpoints,
            ),
            EndpointsWrite::Update(endpoints) => (
                api.replace(&endpoints.name_any(), &PostParams::default(), &endpoints)
                    .await,
                "FailedToUpdateEndpoint",
                endpoints,
            ),
        };
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let conflict = matches!(&e, kube::Error::Api(s) if s.code == 409);
                if !conflict {
                    let message = format!(
                        "Failed to write endpoints {}/{}: {e}",
                        endpoints.namespace().unwrap_or_default(),
                        endpoints.name_any()
                    );
                    let regarding = endpoints.object_ref(&());
                    self.ctx
                        .events
                        .publish(
                            ENDPOINTS_COMPONENT,
                            &regarding,
                            EventType::Warning,
                            reason,
                            &message,
                        )
                        .await;
                }
                Err(e.into())
            }
        }
    }

    /// Deletes what this loop wrote for a Service that is gone: the
    /// Endpoints of that name and the slices it owned. If a new Service of
    /// the same name exists already, its Endpoints are left to it and only
    /// the old owner's slices go.
    pub async fn clean_up_after(&self, service: &Service) -> Result<()> {
        let namespace = service.namespace().unwrap_or_default();
        let name = service.name_any();
        self.trigger_times.forget(&namespace, &name);
        let client = self.ctx.client.clone();
        let services_api: Api<Service> = Api::namespaced(client.clone(), &namespace);
        let replacement = services_api.get_opt(&name).await?;
        if let Some(replacement) = &replacement {
            if replacement.uid() == service.uid() {
                return Ok(()); // not deleted after all (a stale event)
            }
        } else {
            let endpoints_api: Api<Endpoints> = Api::namespaced(client.clone(), &namespace);
            if let Some(endpoints) = endpoints_api.get_opt(&name).await? {
                delete_exact(&endpoints_api, &endpoints).await?;
            }
        }
        let slices_api: Api<EndpointSlice> = Api::namespaced(client, &namespace);
        for slice in endpointslice::list_managed(&slices_api, &name).await? {
            let ours = replacement.is_none() || endpointslice::owned_by(&slice, service);
            if ours {
                delete_exact(&slices_api, &slice).await?;
            }
        }
        tracing::debug!(service = %ObjectRef::from_obj(service), "cleaned up after deleted Service");
        Ok(())
    }

    /// Deletes Endpoints and managed slices whose Service no longer exists
    /// (deleted while nobody was watching). The cache says who is missing;
    /// the apiserver confirms before anything is deleted.
    pub async fn sweep_orphans(&self) -> Result<()> {
        let client = self.ctx.client.clone();
        let all_endpoints: Api<Endpoints> = Api::all(client.clone());
        let managed = ListParams::default().labels(&format!(
            "{LABEL_MANAGED_BY}={}",
            endpointslice::CONTROLLER_NAME
        ));
        let all_slices: Api<EndpointSlice> = Api::all(client.clone());
        let mut missing: BTreeSet<(String, String)> = BTreeSet::new();
        let has_service = |namespace: &str, name: &str| {
            self.services
                .get(&ObjectRef::new(name).within(namespace))
                .is_some()
        };
        for endpoints in all_endpoints.list(&ListParams::default()).await? {
            let namespace = endpoints.namespace().unwrap_or_default();
            if endpoints.annotations().contains_key(LEADER_ANNOTATION)
                || has_service(&namespace, &endpoints.name_any())
            {
                continue;
            }
            missing.insert((namespace, endpoints.name_any()));
        }
        for slice in all_slices.list(&managed).await? {
            let namespace = slice.namespace().unwrap_or_default();
            if let Some(service) = slice.labels().get(SERVICE_NAME_LABEL) {
                if !has_service(&namespace, service) {
                    missing.insert((namespace, service.clone()));
                }
            }
        }
        for (namespace, name) in missing {
            let services_api: Api<Service> = Api::namespaced(client.clone(), &namespace);
            if services_api.get_opt(&name).await?.is_some() {
                continue; // created after our list: not an orphan
            }
            let endpoints_api: Api<Endpoints> = Api::namespaced(client.clone(), &namespace);
            if let Some(endpoints) = endpoints_api.get_opt(&name).await? {
                if !endpoints.annotations().contains_key(LEADER_ANNOTATION) {
                    delete_exact(&endpoints_api, &endpoints).await?;
                }
            }
            let slices_api: Api<EndpointSlice> = Api::namespaced(client.clone(), &namespace);
            for slice in endpointslice::list_managed(&slices_api, &name).await? {
                delete_exact(&slices_api, &slice).await?;
            }
            tracing::info!(
                namespace,
                service = name,
                "deleted Endpoints and slices of a Service that is gone"
            );
        }
        Ok(())
    }
}

/// Deletes exactly this object (by uid), not a newer one of the same
/// name; gone already is fine.
async fn delete_exact<K>(api: &Api<K>, object: &K) -> Result<()>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: object.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&object.name_any(), &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------------
// Services and Pods: who is selected, how

/// The selector of a Service this loop manages: `None` for Services
/// without one (their Endpoints are hand-written) and for ExternalName
/// Services (a DNS alias has no endpoints).
pub fn selector(service: &Service) -> Option<&BTreeMap<String, String>> {
    let spec = service.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    // `selector: {}` is treated as no selector: after a round trip through
    // upstream's storage an empty map *is* absent.
    spec.selector.as_ref().filter(|s| !s.is_empty())
}

/// True if every `key: value` of the selector is among the Pod's labels.
pub fn selects(selector: &BTreeMap<String, String>, pod: &Pod) -> bool {
    let labels = pod.labels();
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

pub fn service_ports(service: &Service) -> &[ServicePort] {
    service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default()
}

pub fn publishes_not_ready(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
}

/// Upstream's `ShouldPodBeInEndpoints`: running (not finished), with an
/// IP, and not terminating unless `include_terminating`.
pub fn should_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded") | Some("Failed")) {
        return false;
    }
    if ipv4_address(pod).is_none() {
        return false;
    }
    include_terminating || pod.metadata.deletion_timestamp.is_none()
}

/// The Pod's IPv4 address (`status.podIPs`, else `status.podIP`).
pub fn ipv4_address(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let listed = status.pod_ips.iter().flatten().map(|p| p.ip.as_str());
    listed
        .chain(status.pod_ip.as_deref())
        .find(|ip| ip.parse::<Ipv4Addr>().is_ok())
        .map(str::to_string)
}

/// The port number a Service port reaches on this Pod: a number
/// `targetPort` as is (the port itself when unset), a named one looked up
/// in the Pod's container ports with the same protocol (upstream's
/// `FindPort`). `None`: the Pod does not serve this port.
pub fn find_port(pod: &Pod, service_port: &ServicePort) -> Option<i32> {
    match &service_port.target_port {
        None => Some(service_port.port),
        Some(IntOrString::Int(port)) => Some(*port),
        Some(IntOrString::String(name)) => {
            let protocol = service_port.protocol.as_deref().unwrap_or("TCP");
            let spec = pod.spec.as_ref()?;
            // Sidecars (init containers that keep running) count too.
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|p| p.container_port)
        }
    }
}

/// A Pod with `hostname` and `subdomain` = the Service's name gets a DNS
/// name under a headless Service (`web-0.nginx.default.svc...`).
pub fn hostname_for(service: &Service, pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let hostname = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    let same_namespace = pod.metadata.namespace == service.metadata.namespace;
    (same_namespace && spec.subdomain.as_deref() == Some(service.name_any().as_str()))
        .then(|| hostname.to_string())
}

// ---------------------------------------------------------------------
// The v1 Endpoints object

/// What `subsets` should be: the selected Pods' addresses, in upstream's
/// canonical packing (addresses that serve the same ports share a subset).
pub fn desired_subsets(service: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let publish_not_ready = publishes_not_ready(service);
    let ports = service_ports(service);
    // port (None: a headless Service without ports) -> address -> ready
    let mut by_port: BTreeMap<Option<PortOrder>, BTreeMap<AddressOrder, (EndpointAddress, bool)>> =
        BTreeMap::new();
    let mut add = |port: Option<EndpointPort>, address: &EndpointAddress, ready: bool| {
        let addresses = by_port.entry(port.map(PortOrder)).or_default();
        let entry = addresses
            .entry(AddressOrder::of(address))
            .or_insert_with(|| (address.clone(), ready));
        entry.1 |= ready;
    };
    for pod in pods {
        if !should_be_in_endpoints(pod, publish_not_ready) {
            continue;
        }
        let Some(ip) = ipv4_address(pod) else {
            continue;
        };
        let address = EndpointAddress {
            ip,
            hostname: hostname_for(service, pod),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(endpointslice::pod_reference(pod)),
        };
        let ready = publish_not_ready || api::pod::is_ready(pod);
        if ports.is_empty() {
            if api::service::has_no_cluster_ip(service) {
                add(None, &address, ready);
            }
            continue;
        }
        for service_port in ports {
            let Some(number) = find_port(pod, service_port) else {
                continue;
            };
            let port = EndpointPort {
                // The v1 API omits an empty name.
                name: service_port.name.clone().filter(|n| !n.is_empty()),
                port: number,
                protocol: Some(
                    service_port
                        .protocol
                        .clone()
                        .unwrap_or_else(|| "TCP".into()),
                ),
                app_protocol: service_port.app_protocol.clone(),
            };
            add(Some(port), &address, ready);
        }
    }

    // Ports with the same set of addresses form one subset.
    let mut subsets: BTreeMap<Vec<(AddressOrder, bool)>, EndpointSubset> = BTreeMap::new();
    for (port, addresses) in by_port {
        let key = addresses
            .iter()
            .map(|(k, (_, ready))| (k.clone(), *ready))
            .collect();
        let subset = subsets.entry(key).or_insert_with(|| {
            let (ready, not_ready): (Vec<_>, Vec<_>) =
                addresses.into_values().partition(|(_, r)| *r);
            EndpointSubset {
                addresses: non_empty(ready.into_iter().map(|(a, _)| a).collect()),
                not_ready_addresses: non_empty(not_ready.into_iter().map(|(a, _)| a).collect()),
                ports: None,
            }
        });
        if let Some(PortOrder(port)) = port {
            subset.ports.get_or_insert_with(Vec::new).push(port);
        }
    }
    subsets.into_values().collect()
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

/// Orders addresses by IP (numerically), then Pod uid.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct AddressOrder(Option<Ipv4Addr>, String, String);

impl AddressOrder {
    fn of(address: &EndpointAddress) -> AddressOrder {
        let uid = address
            .target_ref
            .as_ref()
            .and_then(|r| r.uid.clone())
            .unwrap_or_default();
        AddressOrder(address.ip.parse().ok(), address.ip.clone(), uid)
    }
}

/// Orders ports by name, number, protocol.
#[derive(Debug, Clone)]
struct PortOrder(EndpointPort);

impl PartialEq for PortOrder {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for PortOrder {}

impl PortOrder {
    fn key(&self) -> (&Option<String>, i32, &Option<String>, &Option<String>) {
        (
            &self.0.name,
            self.0.port,
            &self.0.protocol,
            &self.0.app_protocol,
        )
    }
}

impl PartialOrd for PortOrder {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PortOrder {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// Keeps at most [`MAX_ENDPOINTS_ADDRESSES`] addresses, ready ones first,
/// each subset keeping its share (upstream's `truncateEndpoints`). True if
/// anything was dropped.
pub fn truncate(subsets: &mut [EndpointSubset]) -> bool {
    let count = |s: &EndpointSubset, ready: bool| {
        let list = if ready {
            &s.addresses
        } else {
            &s.not_ready_addresses
        };
        list.as_ref().map_or(0, Vec::len)
    };
    let total_ready: usize = subsets.iter().map(|s| count(s, true)).sum();
    let total_not_ready: usize = subsets.iter().map(|s| count(s, false)).sum();
    if total_ready + total_not_ready <= MAX_ENDPOINTS_ADDRESSES {
        return false;
    }
    // Over the cap with ready addresses alone: cut those, drop the rest.
    let cut_ready = total_ready > MAX_ENDPOINTS_ADDRESSES;
    let (room, total) = if cut_ready {
        (MAX_ENDPOINTS_ADDRESSES, total_ready)
    } else {
        (MAX_ENDPOINTS_ADDRESSES - total_ready, total_not_ready)
    };
    let mut left = room;
    for subset in subsets.iter_mut() {
        let share = (count(subset, cut_ready) * room).div_ceil(total).min(left);
        let list = if cut_ready {
            subset.not_ready_addresses = None;
            &mut subset.addresses
        } else {
            &mut subset.not_ready_addresses
        };
        if let Some(list) = list {
            list.truncate(share);
            left -= list.len();
        }
    }
    true
}

/// The labels of a Service's Endpoints: the Service's own, plus the
/// headless marker.
pub fn endpoints_labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels = service.labels().clone();
    if api::service::has_no_cluster_ip(service) {
        labels.insert(LABEL_HEADLESS.into(), String::new());
    } else {
        labels.remove(LABEL_HEADLESS);
    }
    labels
}

/// Decides whether the Endpoints object needs a write, and which.
pub fn endpoints_update(
    service: &Service,
    pods: &[Arc<Pod>],
    current: Option<Endpoints>,
    trigger_time: Option<Timestamp>,
) -> Option<EndpointsWrite> {
    let mut subsets = desired_subsets(service, pods);
    let truncated = truncate(&mut subsets);
    let labels = endpoints_labels(service);
    if let Some(current) = &current {
        let same = normalized(current.subsets.clone().unwrap_or_default())
            == normalized(subsets.clone())
            && current.labels() == &labels
            && current.annotations().contains_key(OVER_CAPACITY) == truncated;
        if same {
            return None;
        }
    }
    let create = current.is_none();
    let mut endpoints = current.unwrap_or_else(|| Endpoints {
        metadata: ObjectMeta {
            name: Some(service.name_any()),
            namespace: service.namespace(),
            ..Default::default()
        },
        ..Default::default()
    });
    endpoints.subsets = Some(subsets);
    endpoints.metadata.labels = Some(labels);
    let annotations = endpoints
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new);
    match trigger_time {
        Some(t) => annotations.insert(LAST_CHANGE_TRIGGER_TIME.into(), format_trigger_time(t)),
        None => annotations.remove(LAST_CHANGE_TRIGGER_TIME),
    };
    if truncated {
        annotations.insert(OVER_CAPACITY.into(), "truncated".into());
    } else {
        annotations.remove(OVER_CAPACITY);
    }
    Some(if create {
        EndpointsWrite::Create(endpoints)
    } else {
        EndpointsWrite::Update(endpoints)
    })
}

/// Empty lists and absent lists are the same thing on the wire.
fn normalized(subsets: Vec<EndpointSubset>) -> Vec<EndpointSubset> {
    subsets
        .into_iter()
        .map(|s| EndpointSubset {
            addresses: s.addresses.filter(|v| !v.is_empty()),
            not_ready_addresses: s.not_ready_addresses.filter(|v| !v.is_empty()),
            ports: s.ports.filter(|v| !v.is_empty()),
        })
        .collect()
}

// ---------------------------------------------------------------------
// last-change-trigger-time

/// RFC 3339 in UTC with as many fractional digits as needed, like Go's
/// `time.RFC3339Nano` upstream uses.
pub fn format_trigger_time(t: Timestamp) -> String {
    t.to_string()
}

/// Computes the `last-change-trigger-time` of each sync (upstream's
/// `TriggerTimeTracker`): the *oldest* change not yet reflected, so that
/// "now - trigger time" at the consumer is the full latency of the change
/// that waited longest. A Pod's change time is its Ready condition's
/// `lastTransitionTime`; a new Service's is its creation.
#[derive(Default)]
pub struct TriggerTimes {
    services: Mutex<HashMap<(String, String), SeenTimes>>,
}

#[derive(Default)]
struct SeenTimes {
    service: Option<Timestamp>,
    pods: HashMap<String, Timestamp>,
}

impl TriggerTimes {
    pub fn compute(&self, service: &Service, pods: &[Arc<Pod>]) -> Option<Timestamp> {
        let key = (service.namespace().unwrap_or_default(), service.name_any());
        let created = service.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let mut services = self.services.lock().expect("lock");
        let known = services.contains_key(&key);
        let seen = services.entry(key).or_default();
        let mut oldest_change: Option<Timestamp> = None;
        let mut pod_times = HashMap::new();
        for pod in pods {
            let Some(changed) =
                api::pod::ready_condition(pod).and_then(|c| c.last_transition_time.as_ref())
            else {
                continue;
            };
            let name = pod.name_any();
            if seen
                .pods
                .get(&name)
                .is_none_or(|before| changed.0 > *before)
            {
                oldest_change = Some(oldest_change.map_or(changed.0, |t| t.min(changed.0)));
            }
            pod_times.insert(name, changed.0);
        }
        if let Some(created) = created {
            if seen.service.is_none_or(|before| created > before) {
                oldest_change = Some(oldest_change.map_or(created, |t| t.min(created)));
            }
        }
        seen.pods = pod_times;
        seen.service = created;
        if known {
            oldest_change
        } else {
            created
        }
    }

    pub fn forget(&self, namespace: &str, name: &str) {
        let key = (namespace.to_string(), name.to_string());
        self.services.lock().expect("lock").remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::api::{Patch, PatchParams};
    use serde_json::json;

    fn service(spec: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid",
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn pod(name: &str, ip: &str, ready: bool, changed: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                             "labels": {"app": "web"}},
                "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "nginx",
                         "ports": [{"name": "http", "containerPort": 8080}]}]},
                "status": {"phase": "Running", "podIP": ip,
                           "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"},
                                           "lastTransitionTime": changed}]}
            }))
            .unwrap(),
        )
    }

    #[test]
    fn subsets_pack_addresses_that_share_ports() {
        let svc = service(
            json!({"selector": {"app": "web"}, "clusterIP": "10.96.0.10", "ports": [
            {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
            {"name": "admin", "port": 81, "targetPort": 81, "protocol": "TCP"}]}),
        );
        let mut no_http = (*pod("c", "10.244.0.4", true, "2026-01-01T00:00:00Z")).clone();
        no_http.spec.as_mut().unwrap().containers[0].ports = None;
        let pods = vec![
            pod("b", "10.244.0.10", true, "2026-01-01T00:00:00Z"),
            pod("a", "10.244.0.9", false, "2026-01-01T00:00:00Z"),
            Arc::new(no_http),
        ];
        let subsets = desired_subsets(&svc, &pods);
        // admin (81) is served by all three, http (8080) by a and b only.
        let summary: Vec<(Vec<String>, Vec<String>, Vec<i32>)> = subsets
            .iter()
            .map(|s| {
                let ips = |l: &Option<Vec<EndpointAddress>>| {
                    l.iter().flatten().map(|a| a.ip.clone()).collect()
                };
                (
                    ips(&s.addresses),
                    ips(&s.not_ready_addresses),
                    s.ports.iter().flatten().map(|p| p.port).collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    vec!["10.244.0.4".into(), "10.244.0.10".into()],
                    vec!["10.244.0.9".into()],
                    vec![81]
                ),
                (
                    vec!["10.244.0.10".into()],
                    vec!["10.244.0.9".into()],
                    vec![8080]
                ),
            ]
        );
    }

    #[test]
    fn unready_terminating_and_finished_pods() {
        let svc = service(json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}));
        let mut terminating = (*pod("t", "10.244.0.5", true, "2026-01-01T00:00:00Z")).clone();
        terminating.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
        let mut done = (*pod("d", "10.244.0.6", true, "2026-01-01T00:00:00Z")).clone();
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let mut no_ip = (*pod("n", "", true, "2026-01-01T00:00:00Z")).clone();
        no_ip.status.as_mut().unwrap().pod_ip = None;
        let pods = vec![Arc::new(terminating), Arc::new(done), Arc::new(no_ip)];
        assert!(desired_subsets(&svc, &pods).is_empty());

        // publishNotReadyAddresses keeps terminating Pods, as ready.
        let svc = service(
            json!({"selector": {"app": "web"}, "publishNotReadyAddresses": true,
                                 "ports": [{"port": 80}]}),
        );
        let subsets = desired_subsets(&svc, &pods);
        assert_eq!(subsets.len(), 1);
        assert_eq!(subsets[0].addresses.as_ref().unwrap()[0].ip, "10.244.0.5");
    }

    #[test]
    fn a_headless_service_without_ports_lists_bare_addresses() {
        let svc = service(json!({"selector": {"app": "web"}, "clusterIP": "None"}));
        let pods = vec![pod("a", "10.244.0.9", true, "2026-01-01T00:00:00Z")];
        let subsets = desired_subsets(&svc, &pods);
        assert_eq!(subsets.len(), 1);
        assert_eq!(subsets[0].addresses.as_ref().unwrap()[0].ip, "10.244.0.9");
        assert!(subsets[0].ports.is_none());
        assert_eq!(
            endpoints_labels(&svc)
                .get(LABEL_HEADLESS)
                .map(String::as_str),
            Some("")
        );
        let groups = endpointslice::desired_endpoints(&svc, &pods);
        assert_eq!(groups.len(), 1);
        assert!(groups.values().next().unwrap().ports.is_empty());
    }

    #[test]
    fn more_than_a_thousand_addresses_are_truncated_ready_first() {
        let address = |i: usize| EndpointAddress {
            ip: format!("10.244.{}.{}", i / 250, i % 250),
            ..Default::default()
        };
        let mut subsets = vec![EndpointSubset {
            addresses: Some((0..900).map(address).collect()),
            not_ready_addresses: Some((900..1200).map(address).collect()),
            ports: None,
        }];
        assert!(truncate(&mut subsets));
        assert_eq!(subsets[0].addresses.as_ref().unwrap().len(), 900);
        assert_eq!(subsets[0].not_ready_addresses.as_ref().unwrap().len(), 100);
        assert!(!truncate(&mut subsets));
    }

    #[test]
    fn trigger_time_is_the_oldest_unseen_change() {
        let svc = service(json!({"selector": {"app": "web"}}));
        let times = TriggerTimes::default();
        let a = pod("a", "10.244.0.2", true, "2026-01-01T00:00:05Z");
        let b = pod("b", "10.244.0.3", true, "2026-01-01T00:00:06Z");
        // First sync of a Service: its creation.
        let first = times.compute(&svc, &[a.clone(), b.clone()]).unwrap();
        assert_eq!(format_trigger_time(first), "2026-01-01T00:00:00Z");
        // Nothing new: no trigger time.
        assert_eq!(times.compute(&svc, &[a.clone(), b.clone()]), None);
        // Two Pods changed since: the older change.
        let a2 = pod("a", "10.244.0.2", false, "2026-01-01T00:00:09.25Z");
        let b2 = pod("b", "10.244.0.3", false, "2026-01-01T00:00:08.5Z");
        let t = times.compute(&svc, &[a2, b2]).unwrap();
        assert_eq!(format_trigger_time(t), "2026-01-01T00:00:08.5Z");
    }

    /// A store holding `objects`, as a reflector would after its first list.
    fn store_of<K>(objects: Vec<K>) -> Store<K>
    where
        K: Resource<DynamicType = ()> + Clone + 'static,
    {
        let (store, mut writer) = reflector::store();
        writer.apply_watcher_event(&watcher::Event::Init);
        for object in objects {
            writer.apply_watcher_event(&watcher::Event::InitApply(object));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        store
    }

    #[tokio::test]
    async fn reconciling_twice_writes_once() {
        let dir = tempfile::tempdir().unwrap();
        let apiserver = e2e::harness::ApiServer::start(dir.path());
        let client =
            kube::Client::try_from(kube::Config::new(apiserver.url.parse().unwrap())).unwrap();
        let ctx = Arc::new(Context::new(client.clone(), crate::Config::default()));

        let services_api: Api<Service> = Api::namespaced(client.clone(), "default");
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]},
        }))
        .unwrap();
        let svc = services_api
            .create(&PostParams::default(), &svc)
            .await
            .unwrap();
        let pods_api: Api<Pod> = Api::namespaced(client.clone(), "default");
        let mut pods = Vec::new();
        for (name, ip, ready) in [
            ("web-1", "10.244.1.2", true),
            ("web-2", "10.244.2.2", false),
        ] {
            let mut p = (*pod(name, ip, ready, "2026-01-01T00:00:05Z")).clone();
            let status = p.status.take();
            p.metadata.uid = None;
            pods_api.create(&PostParams::default(), &p).await.unwrap();
            let patch = json!({"status": status});
            let written = pods_api
                .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap();
            pods.push(written);
        }
        let ctl = Arc::new(EndpointsController::new(
            ctx,
            store_of(pods),
            store_of(vec![svc.clone()]),
        ));
        let svc = Arc::new(svc);

        reconcile(svc.clone(), ctl.clone()).await.unwrap();
        let endpoints_api: Api<Endpoints> = Api::namespaced(client.clone(), "default");
        let slices_api: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
        let ep = endpoints_api.get("web").await.unwrap();
        let slices = endpointslice::list_managed(&slices_api, "web")
            .await
            .unwrap();
        assert_eq!(slices.len(), 1);
        assert_eq!(slices[0].endpoints.as_ref().unwrap().len(), 2);
        let subsets = ep.subsets.as_ref().unwrap();
        assert_eq!(subsets[0].ports.as_ref().unwrap()[0].port, 8080);

        reconcile(svc, ctl).await.unwrap();
        let again = endpoints_api.get("web").await.unwrap();
        assert_eq!(again.resource_version(), ep.resource_version());
        let slices_again = endpointslice::list_managed(&slices_api, "web")
            .await
            .unwrap();
        assert_eq!(slices_again.len(), 1);
        assert_eq!(
            slices_again[0].resource_version(),
            slices[0].resource_version()
        );
    }
}
