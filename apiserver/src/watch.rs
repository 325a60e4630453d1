//! Watch: a stream of changes, resumable by resourceVersion.
//!
//! Every controller, node agent and `kubectl get -w` in Kubernetes runs on
//! watches: `GET /api/v1/services?watch=true&resourceVersion=42` answers with
//! a never-ending chunked response, one JSON event per line:
//!
//! ```text
//! {"type":"ADDED","object":{"kind":"Service",...,"resourceVersion":"43"}}
//! {"type":"MODIFIED","object":{...,"resourceVersion":"47"}}
//! {"type":"BOOKMARK","object":{"kind":"Service","metadata":{"resourceVersion":"52"}}}
//! ```
//!
//! The rules a client relies on:
//! - events come in resourceVersion order, none lost or repeated, starting
//!   right after the version asked for (that is how list-then-watch works);
//! - without a resourceVersion (or with "0"), the watch first replays the
//!   current objects as ADDED events;
//! - `sendInitialEvents=true` does the same and then marks the end of the
//!   replay with a BOOKMARK annotated `k8s.io/initial-events-end: "true"`;
//! - a version older than the kept history gets an ERROR event carrying a
//!   410 `Expired` Status: the client must list again;
//! - with `allowWatchBookmarks=true`, idle watches get BOOKMARK events that
//!   move the client's resume point forward;
//! - with a selector, an object that stops matching is reported DELETED and
//!   one that starts matching ADDED.

use std::sync::Arc;
use std::time::Duration;

use api::resources::ResourceType;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use crate::status::StatusError;
use crate::storage::{Event, EventType, Store};

/// How often an idle watch that allows bookmarks gets one.
pub const BOOKMARK_INTERVAL: Duration = Duration::from_secs(10);

/// Longest a watch runs when the client sets no `timeoutSeconds`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Decides which objects a watch sees (namespace, label and field selectors).
pub type Filter = Arc<dyn Fn(&Value) -> bool + Send + Sync>;

/// Turns a stored object into what the client asked for (the object itself,
/// or a Table row for `kubectl get -w`).
pub type Render = Arc<dyn Fn(&Value) -> Value + Send + Sync>;

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Replay the current objects as ADDED, then follow (`resourceVersion`
    /// unset or "0").
    CurrentState,
    /// Replay the current objects, mark the end with a bookmark, then follow
    /// (`sendInitialEvents=true`).
    InitialEvents,
    /// Everything after this resourceVersion.
    After(u64),
}

/// A watch request, already parsed and validated by the REST layer.
pub struct WatchRequest {
    pub resource: &'static ResourceType,
    pub start: Start,
    pub filter: Filter,
    pub render: Render,
    pub allow_bookmarks: bool,
    pub timeout: Duration,
}

/// Starts a watch; returns the stream of newline-terminated JSON events.
/// The stream ends at the timeout, or when the client goes away.
pub fn start(store: Arc<Store>, req: WatchRequest) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let mut watch = Watch {
            req,
            tx,
            last_rv: 0,
        };
        watch.run(store).await;
    });
    rx
}

struct Watch {
    req: WatchRequest,
    tx: mpsc::Sender<Bytes>,
    /// The newest event this watch has considered (sent or filtered out):
    /// the resume point a bookmark reports.
    last_rv: u64,
}

/// Sending failed: the client is gone.
struct Disconnected;

impl Watch {
    async fn run(&mut self, store: Arc<Store>) {
        let deadline = tokio::time::sleep(self.req.timeout);
        tokio::pin!(deadline);
        let Ok(mut events) = self.replay(&store).await else {
            return;
        };
        let mut bookmarks = tokio::time::interval(BOOKMARK_INTERVAL);
        bookmarks.tick().await; // the first tick is immediate
        loop {
            tokio::select! {
                received = events.recv() => {
                    let sent = match received {
                        Ok(event) => self.consider(&event).await,
                        Err(broadcast::error::RecvError::Lagged(_)) => self.catch_up(&store).await,
                        Err(broadcast::error::RecvError::Closed) => return,
                    };
                    if sent.is_err() {
                        return;
                    }
                }
                _ = bookmarks.tick(), if self.req.allow_bookmarks => {
                    if self.send_bookmark(false).await.is_err() {
                        return;
                    }
                }
                _ = &mut deadline => return,
                _ = self.tx.closed() => return,
            }
        }
    }

    /// Sends what comes before live events (initial objects or history) and
    /// returns the live subscription, which starts exactly where the replay
    /// ends.
    async fn replay(
        &mut self,
        store: &Store,
    ) -> Result<broadcast::Receiver<Arc<Event>>, Disconnected> {
        enum Replay {
            Objects(Vec<Arc<Value>>),
            Events(Vec<Arc<Event>>),
            Expired(u64, u64),
        }
        // Subscribe while holding the snapshot: the writer publishes under
        // the write lock, so no event can fall between the two.
        let (replay, subscription, snapshot_rv) = {
            let snapshot = store.snapshot();
            let subscription = store.subscribe();
            let replay = match self.req.start {
                Start::CurrentState | Start::InitialEvents => Replay::Objects(
                    snapshot
                        .list(self.req.resource, None, None)
                        .map(|(_, o)| o.clone())
                        .filter(|o| (self.req.filter)(o))
                        .collect(),
                ),
                Start::After(rv) => match snapshot.events_since(rv) {
                    Some(events) => Replay::Events(events),
                    None => Replay::Expired(rv, snapshot.resource_version()),
                },
            };
            (replay, subscription, snapshot.resource_version())
        };
        match replay {
            Replay::Objects(objects) => {
                self.last_rv = snapshot_rv;
                for object in objects {
                    self.send(EventType::Added.as_str(), &object).await?;
                }
                if self.req.start == Start::InitialEvents {
                    self.send_bookmark(true).await?;
                }
            }
            Replay::Events(events) => {
                if let Start::After(rv) = self.req.start {
                    self.last_rv = rv;
                }
                for event in events {
                    self.consider(&event).await?;
                }
                self.last_rv = self.last_rv.max(snapshot_rv);
            }
            Replay::Expired(asked, current) => {
                let status =
                    StatusError::gone(format!("too old resource version: {asked} ({current})"));
                let line = event_line("ERROR", &status.to_status());
                let _ = self.tx.send(line).await;
                return Err(Disconnected);
            }
        }
        Ok(subscription)
    }

    /// After falling behind the live channel, reads what was missed from the
    /// history instead.
    async fn catch_up(&mut self, store: &Store) -> Result<(), Disconnected> {
        let missed = store.snapshot().events_since(self.last_rv);
        match missed {
            Some(events) => {
                for event in events {
                    self.consider(&event).await?;
                }
                Ok(())
            }
            // Too far behind even for the history: end the watch; the client
            // resumes and, if need be, gets 410 and relists.
            None => Err(Disconnected),
        }
    }

    /// Sends `event` if this watch should see it, translating selector
    /// transitions into ADDED/DELETED.
    async fn consider(&mut self, event: &Event) -> Result<(), Disconnected> {
        if event.resource_version <= self.last_rv {
            return Ok(()); // already covered by the replay
        }
        self.last_rv = event.resource_version;
        if event.resource != self.req.resource {
            return Ok(());
        }
        let matches_now = (self.req.filter)(&event.object);
        let matched_before = event
            .previous
            .as_ref()
            .is_some_and(|p| (self.req.filter)(p));
        let event_type = match (event.event_type, matched_before, matches_now) {
            (EventType::Added, _, true) => EventType::Added,
            (EventType::Modified, true, true) => EventType::Modified,
            (EventType::Modified, false, true) => EventType::Added,
            (EventType::Modified, true, false) => EventType::Deleted,
            (EventType::Deleted, true, _) => EventType::Deleted,
            _ => return Ok(()),
        };
        self.send(event_type.as_str(), &event.object).await
    }

    async fn send(&self, event_type: &str, object: &Value) -> Result<(), Disconnected> {
        let rendered = (self.req.render)(object);
        self.tx
            .send(event_line(event_type, &rendered))
            .await
            .map_err(|_| Disconnected)
    }

    /// A BOOKMARK: "you have seen everything up to this version".
    async fn send_bookmark(&self, initial_events_end: bool) -> Result<(), Disconnected> {
        let mut metadata = json!({ "resourceVersion": self.last_rv.to_string() });
        if initial_events_end {
            metadata["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
        }
        let object = json!({
            "kind": self.req.resource.kind,
            "apiVersion": self.req.resource.api_version(),
            "metadata": metadata,
        });
        self.tx
            .send(event_line("BOOKMARK", &object))
            .await
            .map_err(|_| Disconnected)
    }
}

fn event_line(event_type: &str, object: &Value) -> Bytes {
    let mut line =
        serde_json::to_vec(&json!({ "type": event_type, "object": object })).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}
