//! Shared informers: one watch and one cache per kind of object, for the
//! whole agent.
//!
//! The service proxy and the cluster DNS both need every Service and every
//! EndpointSlice of the cluster. If each watched them itself, the agent
//! would hold two copies of the same objects - at 10,000 Services, tens of
//! megabytes. client-go's answer, used wherever several controllers share
//! a process, is the *shared informer*: one watch fills one cache (here a
//! kube-rs reflector store), and each consumer receives a stream of
//! notices saying what changed, then reads the objects from the cache.
//!
//! ```text
//!  apiserver --watch--> informer --> store (one copy of the objects)
//!                          |
//!                          +--notices--> service proxy
//!                          +--notices--> cluster DNS
//! ```
//!
//! A consumer that falls behind (its queue of notices overflows) is told
//! [`Notice::Listed`] instead of the notices it missed: "anything may have
//! changed, look at the whole cache again" - the same thing a relist says.
//!
//! What is cached need not be the API object: an informer projects each
//! object as it arrives (client-go's *transform*). Services are cached as
//! they are, less what no one reads; EndpointSlices, by far the bulk, as
//! the compact [`CachedSlice`] (see [`cached`]).

pub mod cached;

use std::future::Future;
use std::sync::Arc;

use futures::{Stream, StreamExt as _};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::reflector::{self, Lookup, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt as _;
use kube::Api;

pub use cached::CachedSlice;
use tokio::sync::broadcast;

use api::service::TOPOLOGY_MODE_ANNOTATION;

/// Notices a consumer may be this many behind before it is told
/// [`Notice::Listed`] instead.
const QUEUE: usize = 4096;

/// What changed in an informer's cache.
#[derive(Debug)]
pub enum Notice<K> {
    /// An object was created or changed; the cache has the new version.
    Applied(Arc<K>),
    /// An object was deleted; the cache no longer has it.
    Deleted(Arc<K>),
    /// The cache holds a complete list (the first list, a relist, or
    /// notices were missed): anything may have changed.
    Listed,
}

impl<K> Clone for Notice<K> {
    fn clone(&self) -> Self {
        match self {
            Notice::Applied(object) => Notice::Applied(object.clone()),
            Notice::Deleted(object) => Notice::Deleted(object.clone()),
            Notice::Listed => Notice::Listed,
        }
    }
}

/// One kind's cache and the way to hear about its changes. Cheap to clone.
pub struct Informer<K: 'static + Lookup<DynamicType = ()> + Clone> {
    store: Store<K>,
    notices: broadcast::Sender<Notice<K>>,
}

/// A consumer's view of an informer: the cache, and its own queue of
/// notices (it sees every change after it subscribed).
pub struct Subscription<K: 'static + Lookup<DynamicType = ()> + Clone> {
    pub store: Store<K>,
    notices: broadcast::Receiver<Notice<K>>,
}

impl<K> Subscription<K>
where
    K: 'static + Lookup<DynamicType = ()> + Clone + Send + Sync,
{
    /// The notices as a stream; it ends when the informer stops.
    pub fn notices(self) -> impl Stream<Item = Notice<K>> + Send + 'static {
        futures::stream::unfold(self.notices, |mut notices| async move {
            match notices.recv().await {
                Ok(notice) => Some((notice, notices)),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "a watch consumer fell behind; it looks at everything again"
                    );
                    Some((Notice::Listed, notices))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        })
    }
}

impl<K> Informer<K>
where
    K: 'static + Lookup<DynamicType = ()> + Clone + Send + Sync,
{
    /// An informer for `api`, and the future that runs its watch (it must
    /// be polled for anything to happen; it ends only if the watch does).
    /// `project` turns each object into what is cached (dropping what no
    /// consumer reads). Subscribe before polling the future, or the first
    /// notices are lost.
    pub fn new<Raw>(
        api: Api<Raw>,
        config: watcher::Config,
        project: fn(Raw) -> K,
    ) -> (Informer<K>, impl Future<Output = ()> + Send + 'static)
    where
        Raw: 'static
            + kube::Resource<DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + serde::de::DeserializeOwned
            + Send,
    {
        let (store, mut writer) = reflector::store::<K>();
        let (notices, _) = broadcast::channel(QUEUE);
        let sender = notices.clone();
        let kind = Raw::kind(&()).into_owned();
        let run = async move {
            let mut events = watcher::watcher(api, config).default_backoff().boxed();
            while let Some(event) = events.next().await {
                let event = match event {
                    Ok(event) => project_event(event, project),
                    Err(error) => {
                        tracing::warn!(%error, %kind, "watch failed; retrying");
                        continue;
                    }
                };
                writer.apply_watcher_event(&event);
                let notice = match event {
                    Event::Apply(object) => Notice::Applied(Arc::new(object)),
                    Event::Delete(object) => Notice::Deleted(Arc::new(object)),
                    Event::InitDone => Notice::Listed,
                    Event::Init | Event::InitApply(_) => continue,
                };
                // No subscriber is not an error: nobody is listening yet.
                let _ = sender.send(notice);
            }
        };
        (Informer { store, notices }, run)
    }

    /// A new consumer: every change from now on.
    pub fn subscribe(&self) -> Subscription<K> {
        Subscription {
            store: self.store.clone(),
            notices: self.notices.subscribe(),
        }
    }
}

/// A watch event with its object projected.
fn project_event<Raw, K>(event: Event<Raw>, project: fn(Raw) -> K) -> Event<K> {
    match event {
        Event::Apply(object) => Event::Apply(project(object)),
        Event::Delete(object) => Event::Delete(project(object)),
        Event::InitApply(object) => Event::InitApply(project(object)),
        Event::Init => Event::Init,
        Event::InitDone => Event::InitDone,
    }
}

/// Drops what none of the agent's consumers reads: managed fields, and
/// every annotation but `keep` (`kubectl apply` alone adds a copy of the
/// whole object as an annotation).
pub fn trim_metadata(metadata: &mut ObjectMeta, keep: &str) {
    metadata.managed_fields = None;
    if let Some(annotations) = metadata.annotations.as_mut() {
        annotations.retain(|key, _| key == keep);
    }
}

/// What the service proxy and the cluster DNS both read: every Service
/// and every EndpointSlice of the cluster.
pub struct ServiceInformers {
    services: Informer<Service>,
    slices: Informer<CachedSlice>,
}

/// One consumer's subscription to [`ServiceInformers`].
pub struct ServiceCaches {
    pub services: Subscription<Service>,
    pub slices: Subscription<CachedSlice>,
}

impl ServiceInformers {
    /// The informers, and the future that runs their two watches (it ends
    /// only if both watches do).
    pub fn new(client: kube::Client) -> (ServiceInformers, impl Future<Output = ()> + Send) {
        let (services, watch_services) = Informer::new(
            Api::all(client.clone()),
            watcher::Config::default(),
            |mut service: Service| {
                trim_metadata(&mut service.metadata, TOPOLOGY_MODE_ANNOTATION);
                service.status = None;
                service
            },
        );
        let (slices, watch_slices) = Informer::new(
            Api::<EndpointSlice>::all(client),
            watcher::Config::default(),
            CachedSlice::from,
        );
        let watch = async move {
            tokio::join!(watch_services, watch_slices);
        };
        (ServiceInformers { services, slices }, watch)
    }

    /// A new consumer of both.
    pub fn subscribe(&self) -> ServiceCaches {
        ServiceCaches {
            services: self.services.subscribe(),
            slices: self.slices.subscribe(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::endpointslice::LAST_CHANGE_TRIGGER_TIME;

    #[test]
    fn cached_objects_keep_only_the_annotation_read() {
        let mut metadata = ObjectMeta {
            annotations: Some(
                [
                    (
                        LAST_CHANGE_TRIGGER_TIME.to_string(),
                        "2026-12-03T00:00:00Z".to_string(),
                    ),
                    (
                        "kubectl.kubernetes.io/last-applied-configuration".to_string(),
                        "{...}".to_string(),
                    ),
                ]
                .into(),
            ),
            managed_fields: Some(vec![Default::default()]),
            ..Default::default()
        };
        trim_metadata(&mut metadata, LAST_CHANGE_TRIGGER_TIME);
        assert_eq!(metadata.managed_fields, None);
        let kept: Vec<&String> = metadata
            .annotations
            .iter()
            .flatten()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(kept, [LAST_CHANGE_TRIGGER_TIME]);
    }
}
