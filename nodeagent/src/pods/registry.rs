//! Which containers of which Pods run on this node, and where their files
//! are: what the kubelet's server needs to answer `kubectl logs` and
//! `kubectl exec` (it receives a namespace, a Pod name and a container
//! name).
//!
//! The pod workers keep it current; the server only reads it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::Pod;

use super::container::ContainerDir;
use crate::server::{ContainerLog, Containers, LookupError};

/// One Pod as the registry knows it.
#[derive(Debug, Clone)]
struct Entry {
    namespace: String,
    name: String,
    /// Container name, its directory and its latest instance number.
    containers: Vec<(String, ContainerDir, Option<u32>)>,
}

/// The node's running Pods, by UID.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    pods: Arc<RwLock<HashMap<String, Entry>>>,
}

impl Registry {
    /// Records the containers of `pod` (called by its worker after every
    /// sync).
    pub fn update(&self, pod: &Pod, containers: &[(String, ContainerDir, Option<u32>)]) {
        let entry = Entry {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            containers: containers.to_vec(),
        };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        self.pods.write().expect("registry lock").insert(uid, entry);
    }

    pub fn remove(&self, uid: &str) {
        self.pods.write().expect("registry lock").remove(uid);
    }

    /// The directory and latest instance of a container.
    fn find(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<(ContainerDir, Option<u32>), LookupError> {
        let pods = self.pods.read().expect("registry lock");
        let entry = pods
            .values()
            .find(|e| e.namespace == namespace && e.name == pod)
            .ok_or_else(|| LookupError::PodNotFound {
                namespace: namespace.to_string(),
                pod: pod.to_string(),
            })?;
        let (_, dir, n) = entry
            .containers
            .iter()
            .find(|(name, _, _)| name == container)
            .ok_or_else(|| LookupError::ContainerNotFound {
                pod: pod.to_string(),
                container: container.to_string(),
            })?;
        Ok((dir.clone(), *n))
    }
}

/// The container's running process, from its instance's PID record.
fn running_process(dir: &ContainerDir, n: u32) -> Option<i32> {
    let record = dir.live_process(n)?;
    let ended = dir.exit_path(n).exists();
    (!ended).then_some(record.pid)
}

impl Containers for Registry {
    fn logs(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Result<ContainerLog, LookupError> {
        let (dir, n) = self.find(namespace, pod, container)?;
        let waiting = || LookupError::Waiting {
            pod: pod.to_string(),
            container: container.to_string(),
            reason: "ContainerCreating".into(),
        };
        let n = n.ok_or_else(waiting)?;
        let n = if previous {
            n.checked_sub(1).ok_or_else(|| LookupError::NoPrevious {
                pod: pod.to_string(),
                container: container.to_string(),
            })?
        } else {
            n
        };
        Ok(ContainerLog {
            files: dir.log_files(n),
        })
    }

    fn running_pid(&self, namespace: &str, pod: &str, container: &str) -> Result<i32, LookupError> {
        let (dir, n) = self.find(namespace, pod, container)?;
        let n = n.ok_or_else(|| LookupError::Waiting {
            pod: pod.to_string(),
            container: container.to_string(),
            reason: "ContainerCreating".into(),
        })?;
        running_process(&dir, n).ok_or_else(|| LookupError::NotRunning {
            pod: pod.to_string(),
            container: container.to_string(),
        })
    }

    fn is_running(&self, namespace: &str, pod: &str, container: &str) -> bool {
        self.find(namespace, pod, container)
            .ok()
            .and_then(|(dir, n)| running_process(&dir, n?))
            .is_some()
    }

    fn attach_target(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<crate::server::attach::AttachTarget, LookupError> {
        self.running_pid(namespace, pod, container)?;
        let (dir, n) = self.find(namespace, pod, container)?;
        let n = n.unwrap_or_default();
        Ok(crate::server::attach::AttachTarget {
            dir: dir.attach_dir(),
            log: dir.log_path(n),
        })
    }

    fn network_pid(&self, namespace: &str, pod: &str) -> Result<i32, LookupError> {
        let pods = self.pods.read().expect("registry lock");
        let entry = pods
            .values()
            .find(|e| e.namespace == namespace && e.name == pod)
            .ok_or_else(|| LookupError::PodNotFound {
                namespace: namespace.to_string(),
                pod: pod.to_string(),
            })?;
        // Every container of a Pod shares its network namespace.
        entry
            .containers
            .iter()
            .find_map(|(_, dir, n)| running_process(dir, (*n)?))
            .ok_or_else(|| LookupError::NotRunning {
                pod: pod.to_string(),
                container: entry
                    .containers
                    .first()
                    .map(|(name, _, _)| name.clone())
                    .unwrap_or_default(),
            })
    }
}
