//! The Pod lifecycle event generator: how a pod worker hears that one of
//! its containers exited.
//!
//! containerd does not call the kubelet back. The kubelet's "generic PLEG"
//! lists every container once a second (one `ListContainers` for the
//! whole node), compares the states with the previous list and wakes the
//! workers of the Pods whose containers changed. Ours does the same; a
//! worker then asks `ContainerStatus` for the details (exit code, reason).
//!
//! A second is the delay between a container's exit and the worker's
//! reaction (a restart, `Completed`), as on a real node.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::cri::{config, Runtime};

/// How often the runtime's containers are listed (the kubelet's
/// `relistPeriod`).
pub const RELIST_PERIOD: Duration = Duration::from_secs(1);

/// The workers to wake, by Pod UID.
#[derive(Debug, Clone, Default)]
pub struct Pleg {
    workers: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

impl Pleg {
    /// What the worker of Pod `uid` waits on.
    pub fn subscribe(&self, uid: &str) -> Arc<Notify> {
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(workers.entry(uid.to_string()).or_default())
    }

    pub fn unsubscribe(&self, uid: &str) {
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        workers.remove(uid);
    }

    fn wake(&self, uid: &str) {
        let workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(notify) = workers.get(uid) {
            notify.notify_one();
        }
    }

    /// Relists forever. A runtime that does not answer is retried at the
    /// next period (and logged once per outage).
    pub async fn run(self, mut runtime: Runtime) {
        // Container ID -> (state, Pod UID).
        let mut last: HashMap<String, (i32, String)> = HashMap::new();
        let mut down = false;
        let mut tick = tokio::time::interval(RELIST_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let containers = match runtime.containers(HashMap::new()).await {
                Ok(list) => {
                    if down {
                        tracing::info!("the container runtime answers again");
                        down = false;
                    }
                    list
                }
                Err(status) => {
                    if !down {
                        tracing::warn!(error = %status.message(), "cannot list containers; retrying");
                        down = true;
                    }
                    continue;
                }
            };
            let mut now = HashMap::with_capacity(containers.len());
            for c in containers {
                let uid = c
                    .labels
                    .get(config::POD_UID_LABEL)
                    .cloned()
                    .unwrap_or_default();
                if last.get(&c.id).map(|(state, _)| *state) != Some(c.state) {
                    self.wake(&uid);
                }
                now.insert(c.id, (c.state, uid));
            }
            for (id, (_, uid)) in &last {
                if !now.contains_key(id) {
                    self.wake(uid);
                }
            }
            last = now;
        }
    }
}
