//! The ConfigMaps and Secrets this node's Pods name, each followed by a
//! watch of its own (the kubelet's watch-based configmap and secret
//! managers, `pkg/kubelet/util/manager`).
//!
//! A node may read only the objects its own Pods reference (the apiserver's
//! Node authorizer), and then only one object at a time: so instead of one
//! watch of every ConfigMap in the cluster, the agent opens one watch per
//! referenced object (`fieldSelector=metadata.name=<name>` in its
//! namespace) for as long as some Pod of the node names it. Many Pods
//! naming one object share one watch (counted by Pod UID); the watch ends
//! when the last of them stops naming it.
//!
//! A worker asks [`Referenced::follow`] on every sync (cheap when nothing
//! changed), waits until [`Referenced::known`] says each object has been
//! listed once - so a volume is never written from an empty cache - and
//! then reads with [`Referenced::get`]. Every change of a followed object
//! bumps the shared `changed` counter, which wakes the workers to refresh
//! their volumes.
//!
//! The trade-off: one watch per object is one HTTP/2 stream each on the
//! apiserver (a classroom has tens), against a cluster-wide watch that
//! would hand a node every Secret of every namespace.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, RwLock};

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::AbortHandle;

/// What the agent knows of one followed object.
#[derive(Debug, Clone)]
enum Seen<K> {
    /// Its watch has not finished its first list yet.
    NotYet,
    /// Listed, and it does not exist.
    Missing,
    Present(Arc<K>),
}

/// One followed object: who names it, what it is, the watch behind it.
struct Followed<K> {
    pods: HashSet<String>,
    seen: Arc<RwLock<Seen<K>>>,
    watch: AbortHandle,
}

impl<K> Drop for Followed<K> {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

/// The objects of kind `K` that this node's Pods name, by (namespace, name).
pub struct Referenced<K> {
    client: kube::Client,
    objects: Mutex<HashMap<(String, String), Followed<K>>>,
    changed: Arc<watch::Sender<u64>>,
}

impl<K> Referenced<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    /// Follows nothing yet; every change will bump `changed`.
    pub fn new(client: kube::Client, changed: Arc<watch::Sender<u64>>) -> Self {
        Referenced {
            client,
            objects: Mutex::new(HashMap::new()),
            changed,
        }
    }

    /// The Pod `uid` (in `namespace`) now names exactly `names`: follow
    /// the new ones, stop following those no Pod names any more.
    pub fn follow(&self, uid: &str, namespace: &str, names: &BTreeSet<String>) {
        let mut objects = self.objects.lock().expect("referenced objects lock");
        for ((ns, name), followed) in objects.iter_mut() {
            if ns != namespace || !names.contains(name) {
                followed.pods.remove(uid);
            }
        }
        objects.retain(|_, followed| !followed.pods.is_empty());
        for name in names {
            objects
                .entry((namespace.to_string(), name.clone()))
                .or_insert_with(|| self.start(namespace, name))
                .pods
                .insert(uid.to_string());
        }
    }

    /// The Pod `uid` is gone: it names nothing any more.
    pub fn forget(&self, uid: &str) {
        self.follow(uid, "", &BTreeSet::new());
    }

    /// Whether each of `names` has been listed at least once (present or
    /// known to be missing).
    pub fn known(&self, namespace: &str, names: &BTreeSet<String>) -> bool {
        let objects = self.objects.lock().expect("referenced objects lock");
        names.iter().all(|name| {
            objects
                .get(&(namespace.to_string(), name.clone()))
                .is_some_and(|f| !matches!(*f.seen.read().expect("seen lock"), Seen::NotYet))
        })
    }

    /// The object, when it is followed and exists.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        let objects = self.objects.lock().expect("referenced objects lock");
        let followed = objects.get(&(namespace.to_string(), name.to_string()))?;
        let seen = followed.seen.read().expect("seen lock");
        match &*seen {
            Seen::Present(object) => Some(Arc::clone(object)),
            Seen::NotYet | Seen::Missing => None,
        }
    }

    /// Starts the watch of one object.
    fn start(&self, namespace: &str, name: &str) -> Followed<K> {
        let seen = Arc::new(RwLock::new(Seen::NotYet));
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let stream = watcher::watcher(api, config).default_backoff();
        let (slot, changed) = (Arc::clone(&seen), Arc::clone(&self.changed));
        let what = format!("{}/{namespace}/{name}", K::plural(&()));
        let task = tokio::spawn(async move {
            futures::pin_mut!(stream);
            // What the current (re)list has found so far.
            let mut listing: Option<Arc<K>> = None;
            while let Some(event) = stream.next().await {
                let now = match event {
                    Ok(Event::Init) => {
                        listing = None;
                        continue;
                    }
                    Ok(Event::InitApply(object)) => {
                        listing = Some(Arc::new(object));
                        continue;
                    }
                    Ok(Event::InitDone) => listing.take().map_or(Seen::Missing, Seen::Present),
                    Ok(Event::Apply(object)) => Seen::Present(Arc::new(object)),
                    Ok(Event::Delete(_)) => Seen::Missing,
                    Err(error) => {
                        tracing::warn!(object = %what, %error, "watch of a referenced object; retrying");
                        continue;
                    }
                };
                *slot.write().expect("seen lock") = now;
                changed.send_modify(|n| *n += 1);
            }
        });
        Followed {
            pods: HashSet::new(),
            seen,
            watch: task.abort_handle(),
        }
    }
}
