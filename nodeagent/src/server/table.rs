//! A fixed table of containers: the kubelet's server without a Pod runtime.
//!
//! Tests (and anyone who wants to see `kubectl logs`/`exec` work on their
//! own) fill it with log files and PIDs of processes they started, and
//! serve it with [`super::serve`]. The Pod runtime implements
//! [`Containers`] over the Pods it really runs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use super::{ContainerLog, Containers, LookupError};

/// What the table knows of one container.
#[derive(Debug, Clone, Default)]
pub struct ContainerEntry {
    /// The current instance's log files, oldest first.
    pub log: Vec<PathBuf>,
    /// The log of the instance before the last restart, if there was one.
    pub previous_log: Option<Vec<PathBuf>>,
    /// The main process, while the container runs.
    pub pid: Option<i32>,
    /// Why it has not started (`ContainerCreating`), if it has not.
    pub waiting: Option<String>,
}

/// Containers by namespace, pod and name.
#[derive(Debug, Default)]
pub struct ContainerTable {
    entries: Mutex<HashMap<(String, String, String), ContainerEntry>>,
}

impl ContainerTable {
    pub fn new() -> ContainerTable {
        ContainerTable::default()
    }

    /// Adds or replaces a container.
    pub fn insert(&self, namespace: &str, pod: &str, container: &str, entry: ContainerEntry) {
        self.lock().insert(key(namespace, pod, container), entry);
    }

    /// Changes a container in place (say, `pid = None` once it stopped).
    pub fn update(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        change: impl FnOnce(&mut ContainerEntry),
    ) {
        if let Some(entry) = self.lock().get_mut(&key(namespace, pod, container)) {
            change(entry);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String, String), ContainerEntry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn find(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<ContainerEntry, LookupError> {
        let entries = self.lock();
        if let Some(entry) = entries.get(&key(namespace, pod, container)) {
            return Ok(entry.clone());
        }
        if entries.keys().any(|(ns, p, _)| ns == namespace && p == pod) {
            Err(LookupError::ContainerNotFound {
                pod: pod.into(),
                container: container.into(),
            })
        } else {
            Err(LookupError::PodNotFound {
                namespace: namespace.into(),
                pod: pod.into(),
            })
        }
    }
}

fn key(namespace: &str, pod: &str, container: &str) -> (String, String, String) {
    (namespace.into(), pod.into(), container.into())
}

impl Containers for ContainerTable {
    fn logs(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Result<ContainerLog, LookupError> {
        let entry = self.find(namespace, pod, container)?;
        if previous {
            return entry
                .previous_log
                .map(|files| ContainerLog { files })
                .ok_or(LookupError::NoPrevious {
                    pod: pod.into(),
                    container: container.into(),
                });
        }
        match entry.waiting {
            Some(reason) => Err(LookupError::Waiting {
                pod: pod.into(),
                container: container.into(),
                reason,
            }),
            None => Ok(ContainerLog { files: entry.log }),
        }
    }

    fn running_pid(&self, namespace: &str, pod: &str, container: &str) -> Result<i32, LookupError> {
        let entry = self.find(namespace, pod, container)?;
        if let Some(reason) = entry.waiting {
            return Err(LookupError::Waiting {
                pod: pod.into(),
                container: container.into(),
                reason,
            });
        }
        entry.pid.ok_or(LookupError::NotRunning {
            pod: pod.into(),
            container: container.into(),
        })
    }

    fn is_running(&self, namespace: &str, pod: &str, container: &str) -> bool {
        self.find(namespace, pod, container)
            .is_ok_and(|e| e.pid.is_some() && e.waiting.is_none())
    }

    fn network_pid(&self, namespace: &str, pod: &str) -> Result<i32, LookupError> {
        let entries = self.lock();
        entries
            .iter()
            .filter(|((ns, p, _), _)| ns == namespace && p == pod)
            .find_map(|(_, e)| e.pid.filter(|_| e.waiting.is_none()))
            .ok_or(LookupError::PodNotFound {
                namespace: namespace.into(),
                pod: pod.into(),
            })
    }
}
