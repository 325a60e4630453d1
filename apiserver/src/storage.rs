//! Storage: objects in sled, one global resourceVersion, and watch history.
//!
//! In Kubernetes, etcd stores every object and hands out the
//! `resourceVersion`: a single counter that grows with every write, across
//! all kinds. Clients use it twice: as an optimistic lock ("update this
//! Service only if nobody changed it since version 42") and as a position in
//! the stream of changes ("watch everything after version 42").
//!
//! kube-lite keeps the same contract with sled:
//!
//! ```text
//!  handlers ──write(closure)──▶ writer thread ──batch──▶ sled (insert + flush)
//!                                    │                        │ durable
//!                                    ▼                        ▼
//!                             cache + history ◀── publish ── events to watchers
//! ```
//!
//! - **One writer.** Every write is a closure sent to a single thread that
//!   runs them one after another, so checks such as "does this name exist?"
//!   and "is the resourceVersion current?" cannot race.
//! - **Group commit.** The writer takes every closure that is waiting, writes
//!   their changes, and flushes sled once for the whole batch. Each write is
//!   durable before its caller hears back (acknowledged = durable), yet many
//!   concurrent writes share one disk flush.
//! - **Cache and history.** After the flush, the batch's changes become
//!   visible in an in-memory copy of every object (reads and lists never touch
//!   disk) and are appended to a bounded history of events, which is what lets
//!   a watch resume from a resourceVersion without missing anything.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::{mpsc, Arc, RwLock, RwLockReadGuard};

use api::resources::ResourceType;
use serde_json::Value;
use tokio::sync::{broadcast, oneshot};

use crate::status::StatusError;

/// How many events the history keeps by default. A watch that resumes from
/// an older resourceVersion gets 410 Gone and must list again, as with etcd
/// compaction.
pub const DEFAULT_HISTORY_LEN: usize = 100_000;

/// The most writes one flush covers.
const MAX_BATCH: usize = 512;

/// sled key of the persisted resourceVersion counter (objects' keys all
/// contain '/', so they cannot collide with it).
const RV_KEY: &[u8] = b"!resourceVersion";

/// What happened to an object, as a watch reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    /// The `type` of a watch event.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, in the order of its resourceVersion.
#[derive(Debug)]
pub struct Event {
    pub resource_version: u64,
    pub event_type: EventType,
    pub resource: &'static ResourceType,
    /// The object after the change (for deletes: its last state, carrying
    /// the resourceVersion of the delete).
    pub object: Arc<Value>,
    /// The object before the change, so a watch with a selector can tell
    /// when an object starts or stops matching it.
    pub previous: Option<Arc<Value>>,
}

/// Identifies one stored object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub resource: &'static ResourceType,
    /// "" for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(resource: &'static ResourceType, namespace: Option<&str>, name: &str) -> Self {
        ObjectKey {
            resource,
            namespace: if resource.namespaced {
                namespace.unwrap_or_default().to_string()
            } else {
                String::new()
            },
            name: name.to_string(),
        }
    }

    /// The sled key: `services/default/ngx-svc`, `deployments.apps/default/web`,
    /// `nodes//kl-master`.
    fn storage_key(&self) -> String {
        format!("{}/{}/{}", self.resource, self.namespace, self.name)
    }
}

/// Identifies a resource in the cache: (group, plural).
type ResourceId = (&'static str, &'static str);

fn resource_id(resource: &ResourceType) -> ResourceId {
    (resource.group, resource.plural)
}

/// Everything readers see: the objects and the recent history.
struct State {
    resource_version: u64,
    /// Per resource, objects ordered by (namespace, name) - the order a list
    /// returns them in.
    objects: HashMap<ResourceId, BTreeMap<(String, String), Arc<Value>>>,
    history: VecDeque<Arc<Event>>,
    history_len: usize,
}

impl State {
    fn table(&self, resource: &ResourceType) -> Option<&BTreeMap<(String, String), Arc<Value>>> {
        self.objects.get(&resource_id(resource))
    }
}

/// A consistent read of the cache at one resourceVersion.
pub struct Snapshot<'a> {
    state: RwLockReadGuard<'a, State>,
}

impl Snapshot<'_> {
    pub fn resource_version(&self) -> u64 {
        self.state.resource_version
    }

    pub fn get(&self, key: &ObjectKey) -> Option<Arc<Value>> {
        self.state
            .table(key.resource)?
            .get(&(key.namespace.clone(), key.name.clone()))
            .cloned()
    }

    /// Objects of one resource, in one namespace or all, ordered by
    /// (namespace, name), starting after `after` (for `continue` tokens).
    pub fn list(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        after: Option<&(String, String)>,
    ) -> impl Iterator<Item = (&(String, String), &Arc<Value>)> {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let table = self.state.table(resource);
        // Keys sort by namespace first: one namespace is one range.
        let lower = match (after, namespace) {
            (Some(k), Some(ns)) if k.0.as_str() < ns => Included((ns.to_string(), String::new())),
            (Some(k), _) => Excluded(k.clone()),
            (None, Some(ns)) => Included((ns.to_string(), String::new())),
            (None, None) => Unbounded,
        };
        let ns = namespace.map(str::to_string);
        table
            .into_iter()
            .flat_map(move |t| t.range((lower.clone(), Unbounded)))
            .take_while(move |((obj_ns, _), _)| ns.as_ref().is_none_or(|n| n == obj_ns))
    }

    /// Events after `resource_version`, or None when the history no longer
    /// reaches back that far (the caller answers 410 Gone).
    pub fn events_since(&self, resource_version: u64) -> Option<Vec<Arc<Event>>> {
        if resource_version >= self.state.resource_version {
            return Some(Vec::new());
        }
        let oldest = self.state.history.front()?.resource_version;
        // Every event with rv > resource_version must still be present.
        if resource_version + 1 < oldest {
            return None;
        }
        Some(
            self.state
                .history
                .iter()
                .filter(|e| e.resource_version > resource_version)
                .cloned()
                .collect(),
        )
    }
}

/// A change staged by a write closure.
struct Change {
    key: ObjectKey,
    /// None = delete.
    object: Option<Arc<Value>>,
    event: Arc<Event>,
}

/// The view a write closure gets: current objects, including changes made
/// earlier in the same batch, and the operations to change them.
pub struct Txn<'a> {
    state: &'a State,
    resource_version: u64,
    staged: Vec<Change>,
    /// Latest staged value per key within this batch (None = deleted).
    overlay: HashMap<ObjectKey, Option<Arc<Value>>>,
}

impl Txn<'_> {
    /// The current object, as this batch has left it so far.
    pub fn get(&self, key: &ObjectKey) -> Option<Arc<Value>> {
        if let Some(staged) = self.overlay.get(key) {
            return staged.clone();
        }
        self.state
            .table(key.resource)?
            .get(&(key.namespace.clone(), key.name.clone()))
            .cloned()
    }

    /// Stores `object` under `key` with the next resourceVersion, written
    /// into `metadata.resourceVersion`. Returns the stored object.
    pub fn put(&mut self, key: ObjectKey, mut object: Value) -> Arc<Value> {
        let previous = self.get(&key);
        self.resource_version += 1;
        object["metadata"]["resourceVersion"] = Value::String(self.resource_version.to_string());
        let object = Arc::new(object);
        let event_type = if previous.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.stage(
            key,
            Some(object.clone()),
            event_type,
            object.clone(),
            previous,
        );
        object
    }

    /// Removes the object under `key`, if any. Returns its last state with
    /// the resourceVersion of the deletion, as the DELETED event carries it.
    pub fn delete(&mut self, key: ObjectKey) -> Option<Arc<Value>> {
        let previous = self.get(&key)?;
        self.resource_version += 1;
        let mut last = (*previous).clone();
        last["metadata"]["resourceVersion"] = Value::String(self.resource_version.to_string());
        let last = Arc::new(last);
        self.stage(key, None, EventType::Deleted, last.clone(), Some(previous));
        Some(last)
    }

    fn stage(
        &mut self,
        key: ObjectKey,
        object: Option<Arc<Value>>,
        event_type: EventType,
        event_object: Arc<Value>,
        previous: Option<Arc<Value>>,
    ) {
        let event = Arc::new(Event {
            resource_version: self.resource_version,
            event_type,
            resource: key.resource,
            object: event_object,
            previous,
        });
        self.overlay.insert(key.clone(), object.clone());
        self.staged.push(Change { key, object, event });
    }

    /// Marks where one closure's changes begin, so they can be dropped if
    /// it fails.
    fn savepoint(&self) -> (usize, u64) {
        (self.staged.len(), self.resource_version)
    }

    /// Drops the changes made since `savepoint`: a failed write changes
    /// nothing.
    fn rollback_to(&mut self, (len, rv): (usize, u64)) {
        self.staged.truncate(len);
        self.resource_version = rv;
        self.overlay.clear();
        for change in &self.staged {
            self.overlay
                .insert(change.key.clone(), change.object.clone());
        }
    }
}

/// A write waiting for the writer thread.
trait Job: Send {
    /// Runs the closure against the batch; remembers its result.
    fn run(&mut self, txn: &mut Txn<'_>);
    /// Hands the result to the caller once the batch is durable.
    fn finish(self: Box<Self>, flushed: Result<(), StatusError>);
}

struct WriteJob<T, F> {
    closure: Option<F>,
    result: Option<Result<T, StatusError>>,
    reply: oneshot::Sender<Result<T, StatusError>>,
}

impl<T, F> Job for WriteJob<T, F>
where
    T: Send,
    F: FnOnce(&mut Txn<'_>) -> Result<T, StatusError> + Send,
{
    fn run(&mut self, txn: &mut Txn<'_>) {
        let savepoint = txn.savepoint();
        let closure = self.closure.take().expect("a job runs once");
        let result = closure(txn);
        if result.is_err() {
            txn.rollback_to(savepoint);
        }
        self.result = Some(result);
    }

    fn finish(self: Box<Self>, flushed: Result<(), StatusError>) {
        let result = match (flushed, self.result) {
            (Ok(()), Some(result)) => result,
            // A write that succeeded in memory but could not be made durable
            // is reported as failed.
            (Err(e), Some(Ok(_))) => Err(e),
            (_, Some(Err(e))) => Err(e),
            (_, None) => Err(StatusError::internal("write was not run")),
        };
        // The caller may have gone away (client disconnected); that is fine.
        let _ = self.reply.send(result);
    }
}

/// Errors opening the store.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("opening sled database at {path}: {source}")]
    Open { path: String, source: sled::Error },
    #[error("reading stored object {key}: {source}")]
    Corrupt {
        key: String,
        source: serde_json::Error,
    },
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
}

/// The store: shared by every request handler.
pub struct Store {
    state: Arc<RwLock<State>>,
    writes: mpsc::Sender<Box<dyn Job>>,
    events: broadcast::Sender<Arc<Event>>,
}

impl Store {
    /// Opens (or creates) the database in `dir` and loads every object into
    /// the cache. Writes are acknowledged once fsynced ([`crate::durability`]).
    pub fn open(dir: &Path, history_len: usize) -> Result<Arc<Store>, StorageError> {
        Store::open_with(dir, history_len, true)
    }

    /// [`Store::open`], choosing whether writes are fsynced before they are
    /// acknowledged (`fsync: false` only measures what fsync costs: a power
    /// cut may then lose acknowledged writes).
    pub fn open_with(
        dir: &Path,
        history_len: usize,
        fsync: bool,
    ) -> Result<Arc<Store>, StorageError> {
        let db = sled::Config::new()
            .path(dir)
            // sled would flush every 500 ms on its own; we flush explicitly
            // before acknowledging each batch instead.
            .flush_every_ms(None)
            .open()
            .map_err(|source| StorageError::Open {
                path: dir.display().to_string(),
                source,
            })?;
        let tree = db.open_tree("objects")?;

        let mut state = State {
            resource_version: 0,
            objects: HashMap::new(),
            history: VecDeque::new(),
            history_len: history_len.max(1),
        };
        if let Some(rv) = tree.get(RV_KEY)? {
            state.resource_version = String::from_utf8_lossy(&rv).parse().unwrap_or(0);
        }
        for entry in tree.iter() {
            let (key, bytes) = entry?;
            if key.as_ref() == RV_KEY {
                continue;
            }
            let key = String::from_utf8_lossy(&key).to_string();
            let object: Value =
                serde_json::from_slice(&bytes).map_err(|source| StorageError::Corrupt {
                    key: key.clone(),
                    source,
                })?;
            let mut parts = key.splitn(3, '/');
            let (Some(resource), Some(ns), Some(name)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let Some(rt) = api::resources::RESOURCES
                .iter()
                .find(|r| r.to_string() == resource)
            else {
                continue;
            };
            state
                .objects
                .entry(resource_id(rt))
                .or_default()
                .insert((ns.to_string(), name.to_string()), Arc::new(object));
        }

        let state = Arc::new(RwLock::new(state));
        // The channel only needs to cover a burst; a watcher that falls
        // further behind catches up from the history.
        let (events, _) = broadcast::channel(4096);
        let (writes, queue) = mpsc::channel();
        let disk_sync = if fsync {
            Some(std::sync::Mutex::new(
                crate::durability::DiskSync::open(dir)
                    .map_err(|e| StorageError::Sled(sled::Error::Io(e)))?,
            ))
        } else {
            None
        };
        let writer = Writer {
            db,
            tree,
            disk_sync,
            state: state.clone(),
            events: events.clone(),
        };
        std::thread::Builder::new()
            .name("storage-writer".into())
            .spawn(move || writer.run(queue))
            .map_err(|e| StorageError::Sled(sled::Error::Io(e)))?;
        Ok(Arc::new(Store {
            state,
            writes,
            events,
        }))
    }

    /// A consistent view of all objects at the current resourceVersion.
    pub fn snapshot(&self) -> Snapshot<'_> {
        Snapshot {
            state: self.state.read().unwrap_or_else(|e| e.into_inner()),
        }
    }

    pub fn get(&self, key: &ObjectKey) -> Option<Arc<Value>> {
        self.snapshot().get(key)
    }

    /// Subscribes to new events. Taken while holding a snapshot, the
    /// subscription starts exactly after the snapshot's resourceVersion.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }

    /// Runs `closure` on the writer thread and returns its result once its
    /// changes are durable. An error from the closure discards its changes.
    pub async fn write<T, F>(&self, closure: F) -> Result<T, StatusError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Txn<'_>) -> Result<T, StatusError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = WriteJob {
            closure: Some(closure),
            result: None,
            reply,
        };
        self.writes
            .send(Box::new(job))
            .map_err(|_| StatusError::internal("storage writer has stopped"))?;
        answer
            .await
            .unwrap_or_else(|_| Err(StatusError::internal("storage writer dropped the write")))
    }
}

/// The single writer: owns the sled handles.
struct Writer {
    db: sled::Db,
    tree: sled::Tree,
    /// None: sled's flush only (benchmarks).
    disk_sync: Option<std::sync::Mutex<crate::durability::DiskSync>>,
    state: Arc<RwLock<State>>,
    events: broadcast::Sender<Arc<Event>>,
}

impl Writer {
    fn run(self, queue: mpsc::Receiver<Box<dyn Job>>) {
        // Ends when every Store handle is dropped.
        while let Ok(first) = queue.recv() {
            let mut jobs = vec![first];
            while jobs.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            self.commit_batch(jobs);
        }
        let _ = self.db.flush();
    }

    fn commit_batch(&self, mut jobs: Vec<Box<dyn Job>>) {
        // 1. Run every closure against the cache plus this batch's changes.
        //    Only this thread changes the state, so a read lock is enough.
        let (changes, resource_version) = {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            let mut txn = Txn {
                state: &state,
                resource_version: state.resource_version,
                staged: Vec::new(),
                overlay: HashMap::new(),
            };
            for job in jobs.iter_mut() {
                job.run(&mut txn);
            }
            (txn.staged, txn.resource_version)
        };

        // 2. Make them durable: one sled batch, one flush.
        let flushed = if changes.is_empty() {
            Ok(())
        } else {
            self.persist(&changes, resource_version)
        };

        // 3. Publish: cache, history, watchers - under the write lock so a
        //    reader sees all of the batch or none of it.
        if flushed.is_ok() && !changes.is_empty() {
            let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
            state.resource_version = resource_version;
            for change in changes {
                let table = state
                    .objects
                    .entry(resource_id(change.key.resource))
                    .or_default();
                let id = (change.key.namespace, change.key.name);
                match change.object {
                    Some(object) => {
                        table.insert(id, object);
                    }
                    None => {
                        table.remove(&id);
                    }
                }
                if state.history.len() >= state.history_len {
                    state.history.pop_front();
                }
                state.history.push_back(change.event.clone());
                // No receivers is fine.
                let _ = self.events.send(change.event);
            }
        }

        for job in jobs {
            job.finish(flushed.clone());
        }
    }

    fn persist(&self, changes: &[Change], resource_version: u64) -> Result<(), StatusError> {
        let mut batch = sled::Batch::default();
        for change in changes {
            let key = change.key.storage_key();
            match &change.object {
                Some(object) => {
                    let bytes = serde_json::to_vec(object.as_ref())
                        .map_err(|e| StatusError::internal(format!("encoding {key}: {e}")))?;
                    batch.insert(key.as_bytes(), bytes);
                }
                None => batch.remove(key.as_bytes()),
            }
        }
        batch.insert(RV_KEY, resource_version.to_string().as_bytes());
        let failed = |e: &dyn std::fmt::Display| {
            tracing::error!(error = %e, "storage write failed");
            StatusError::internal(format!("storage write failed: {e}"))
        };
        self.tree
            .apply_batch(batch)
            .and_then(|_| self.db.flush().map(|_| ()))
            .map_err(|e| failed(&e))?;
        if let Some(sync) = &self.disk_sync {
            sync.lock()
                .unwrap_or_else(|e| e.into_inner())
                .sync()
                .map_err(|e| failed(&e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc_key(name: &str) -> ObjectKey {
        ObjectKey::new(
            api::resources::lookup("svc").unwrap(),
            Some("default"),
            name,
        )
    }

    #[tokio::test]
    async fn writes_get_increasing_versions_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), DEFAULT_HISTORY_LEN).unwrap();
            let a = store
                .write(|txn| Ok(txn.put(svc_key("a"), json!({"metadata": {"name": "a"}}))))
                .await
                .unwrap();
            let b = store
                .write(|txn| Ok(txn.put(svc_key("b"), json!({"metadata": {"name": "b"}}))))
                .await
                .unwrap();
            assert_eq!(a["metadata"]["resourceVersion"], "1");
            assert_eq!(b["metadata"]["resourceVersion"], "2");
            store
                .write(|txn| Ok(txn.delete(svc_key("a"))))
                .await
                .unwrap();
        }
        // The writer thread flushes and exits when the store is dropped;
        // sled releases its lock shortly after.
        let store = loop {
            match Store::open(dir.path(), DEFAULT_HISTORY_LEN) {
                Ok(s) => break s,
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        };
        let snap = store.snapshot();
        assert_eq!(snap.resource_version(), 3);
        assert!(snap.get(&svc_key("a")).is_none());
        assert_eq!(snap.get(&svc_key("b")).unwrap()["metadata"]["name"], "b");
    }

    #[tokio::test]
    async fn a_failed_closure_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), DEFAULT_HISTORY_LEN).unwrap();
        let r: Result<(), _> = store
            .write(|txn| {
                txn.put(svc_key("x"), json!({"metadata": {"name": "x"}}));
                Err(StatusError::bad_request("no"))
            })
            .await;
        assert!(r.is_err());
        assert!(store.get(&svc_key("x")).is_none());
        assert_eq!(store.snapshot().resource_version(), 0);
    }

    #[tokio::test]
    async fn history_serves_events_after_a_version() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), DEFAULT_HISTORY_LEN).unwrap();
        for name in ["a", "b", "c"] {
            store
                .write(move |txn| Ok(txn.put(svc_key(name), json!({"metadata": {"name": name}}))))
                .await
                .unwrap();
        }
        let events = store.snapshot().events_since(1).unwrap();
        let versions: Vec<u64> = events.iter().map(|e| e.resource_version).collect();
        assert_eq!(versions, vec![2, 3]);
        assert_eq!(events[0].event_type, EventType::Added);
    }
}
