//! The watch cache behind the answers: Services, EndpointSlices, Pods and
//! Namespaces, kept current by kube-rs reflectors (the Services and
//! EndpointSlices are the agent's shared informers, which the service
//! proxy reads too: one copy of them in memory).
//!
//! A DNS server must answer in microseconds, so it never asks the
//! apiserver anything while answering. Like CoreDNS's `kubernetes`
//! plugin (client-go informers), it lists each resource once and then
//! follows the watch: every change lands in a local store within
//! milliseconds. After each burst of changes the cache builds a new
//! [`ClusterZone`] (the indexes the answers are read from) and hands it
//! to the server through a `watch` channel; a query in flight keeps the
//! zone it started with. That is how an answer follows `kubectl apply`
//! within a second - well under the records' 5 s TTL.
//!
//! Until every resource has been listed once, there is no zone: the
//! server answers cluster names with SERVFAIL ("ask again") rather than
//! with NXDOMAIN from a half-filled cache, as CoreDNS does before its
//! informers have synced.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::stream::{BoxStream, SelectAll};
use futures::StreamExt;
use hickory_server::proto::rr::Name;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;
use tokio::sync::watch;

use super::records::{ApiObjects, ClusterZone};
use super::DnsError;
use crate::informer::{CachedSlice, Notice, ServiceCaches, Subscription};

/// The zone as the server sees it: `None` until the caches are filled.
pub type SharedZone = watch::Receiver<Option<Arc<ClusterZone>>>;

/// What one watch event means for the zone.
enum Change {
    /// The object store changed: the zone must be rebuilt.
    Changed,
    /// A resource's first list is complete (its store is usable).
    Listed(usize),
    /// Nothing yet (an object of a list in progress).
    Nothing,
}

/// The stores of the four watched resources.
struct Stores {
    services: Store<Service>,
    endpoint_slices: Store<CachedSlice>,
    pods: Store<Pod>,
    namespaces: Store<Namespace>,
}

impl Stores {
    fn snapshot(&self) -> ApiObjects {
        ApiObjects {
            services: self.services.state(),
            endpoint_slices: self.endpoint_slices.state(),
            pods: self.pods.state(),
            namespaces: self.namespaces.state(),
        }
    }
}

/// Follows the API and publishes a new zone on `zone` after every change.
/// Services and EndpointSlices come from the agent's shared informers
/// (the service proxy reads the same caches); Pods and Namespaces are
/// watched here. Runs until the watches end (they retry errors
/// themselves, so only when the client is gone).
pub async fn follow(
    client: kube::Client,
    origin: Name,
    dns_ip: std::net::Ipv4Addr,
    zone: watch::Sender<Option<Arc<ClusterZone>>>,
    caches: ServiceCaches,
) -> Result<(), DnsError> {
    let mut events: SelectAll<BoxStream<'static, Result<Change, watcher::Error>>> =
        SelectAll::new();
    let services = caches.services.store.clone();
    events.push(notices_into(caches.services, 0));
    let endpoint_slices = caches.slices.store.clone();
    events.push(notices_into(caches.slices, 1));
    // Every Pod of the cluster is cached, so only what a Pod record needs
    // is kept: its namespace, phase and IPs (CoreDNS trims them too).
    let (pods, writer) = reflector::store::<Pod>();
    events.push(watch_into(Api::all(client.clone()), writer, 2, |pod| {
        pod.metadata.managed_fields = None;
        pod.metadata.annotations = None;
        pod.spec = None;
        if let Some(status) = pod.status.as_mut() {
            status.conditions = None;
            status.container_statuses = None;
            status.init_container_statuses = None;
        }
    }));
    let (namespaces, writer) = reflector::store::<Namespace>();
    events.push(watch_into(Api::all(client), writer, 3, |_| {}));
    let stores = Stores {
        services,
        endpoint_slices,
        pods,
        namespaces,
    };

    let mut listed = [false; 4];
    let mut dirty = false;
    loop {
        tokio::select! {
            // Drain every event already waiting before rebuilding, so a
            // burst of changes costs one rebuild.
            biased;
            event = events.next() => match event {
                None => return Err(DnsError::WatchEnded),
                Some(Err(error)) => tracing::warn!(%error, "cluster DNS watch failed; retrying"),
                Some(Ok(Change::Listed(index))) => {
                    listed[index] = true;
                    dirty = true;
                }
                Some(Ok(Change::Changed)) => dirty = true,
                Some(Ok(Change::Nothing)) => {}
            },
            () = std::future::ready(()), if dirty && listed.iter().all(|l| *l) => {
                dirty = false;
                let objects = stores.snapshot();
                let built = ClusterZone::build(&origin, dns_ip, unix_seconds(), &objects);
                let first = zone.send_replace(Some(Arc::new(built))).is_none();
                if first {
                    tracing::info!(
                        services = objects.services.len(),
                        endpoint_slices = objects.endpoint_slices.len(),
                        pods = objects.pods.len(),
                        "cluster DNS cache synced"
                    );
                }
            }
        }
    }
}

/// A shared informer's notices as a stream of [`Change`]s.
fn notices_into<K>(
    subscription: Subscription<K>,
    index: usize,
) -> BoxStream<'static, Result<Change, watcher::Error>>
where
    K: kube::runtime::reflector::Lookup<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    subscription
        .notices()
        .map(move |notice| {
            Ok(match notice {
                Notice::Applied(_) | Notice::Deleted(_) => Change::Changed,
                Notice::Listed => Change::Listed(index),
            })
        })
        .boxed()
}

/// One resource's watch, feeding `writer`'s store, as a stream of
/// [`Change`]s. `trim` drops the fields DNS never reads before they are
/// stored.
fn watch_into<K>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    index: usize,
    trim: fn(&mut K),
) -> BoxStream<'static, Result<Change, watcher::Error>>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(trim)
        .reflect(writer)
        .map(move |event| {
            event.map(|event| match event {
                Event::Apply(_) | Event::Delete(_) => Change::Changed,
                Event::InitDone => Change::Listed(index),
                Event::Init | Event::InitApply(_) => Change::Nothing,
            })
        })
        .boxed()
}

/// The SOA serial: the time of the last change, in Unix seconds.
fn unix_seconds() -> u32 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    u32::try_from(now).unwrap_or(u32::MAX)
}
