//! Which containers of which Pods run here, by the names `kubectl` uses:
//! what the kubelet's server needs to answer `kubectl logs`, `exec`,
//! `attach` and `port-forward` (it receives a namespace, a Pod name and a
//! container name, and must find the runtime's container).
//!
//! The pod workers keep it current after every sync; the server only
//! reads it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::Pod;

use super::container::Observed;
use crate::cri::Runtime;
use crate::server::attach::AttachTarget;
use crate::server::enter::ExecTarget;
use crate::server::{ContainerLog, Containers, LookupError};

/// What the server needs of one container.
#[derive(Debug, Clone)]
pub struct ContainerView {
    pub name: String,
    /// The runtime's current container for it.
    pub current: Option<Observed>,
    /// The log of the one before (`--previous`).
    pub previous_log: Option<String>,
    /// Why it does not run yet (`ContainerCreating`, `ErrImagePull`...).
    pub waiting: Option<String>,
    /// Whether it was created with `stdin: true` / `tty: true` (attach).
    pub stdin: bool,
    pub tty: bool,
}

/// One Pod as the registry knows it.
#[derive(Debug, Clone)]
struct Entry {
    namespace: String,
    name: String,
    containers: Vec<ContainerView>,
}

/// The node's Pods, by UID, and the runtime that runs them.
#[derive(Debug, Clone)]
pub struct Registry {
    pods: Arc<RwLock<HashMap<String, Entry>>>,
    runtime: Runtime,
}

impl Registry {
    pub fn new(runtime: Runtime) -> Registry {
        Registry {
            pods: Arc::default(),
            runtime,
        }
    }

    /// Records the containers of `pod` (called by its worker after every
    /// sync).
    pub fn update(&self, pod: &Pod, containers: &[ContainerView]) {
        let entry = Entry {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            containers: containers.to_vec(),
        };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        self.pods
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(uid, entry);
    }

    pub fn remove(&self, uid: &str) {
        self.pods
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid);
    }

    fn pod(&self, namespace: &str, pod: &str) -> Result<Entry, LookupError> {
        let pods = self.pods.read().unwrap_or_else(|e| e.into_inner());
        pods.values()
            .find(|e| e.namespace == namespace && e.name == pod)
            .cloned()
            .ok_or_else(|| LookupError::PodNotFound {
                namespace: namespace.to_string(),
                pod: pod.to_string(),
            })
    }

    fn find(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<ContainerView, LookupError> {
        self.pod(namespace, pod)?
            .containers
            .into_iter()
            .find(|c| c.name == container)
            .ok_or_else(|| LookupError::ContainerNotFound {
                pod: pod.to_string(),
                container: container.to_string(),
            })
    }

    /// The current container when it runs.
    fn running(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<Observed, LookupError> {
        let view = self.find(namespace, pod, container)?;
        match view.current {
            Some(current) if current.running() => Ok(current),
            Some(_) => Err(LookupError::NotRunning {
                pod: pod.to_string(),
                container: container.to_string(),
            }),
            None => Err(LookupError::Waiting {
                pod: pod.to_string(),
                container: container.to_string(),
                reason: view.waiting.unwrap_or_else(|| "ContainerCreating".into()),
            }),
        }
    }
}

impl Containers for Registry {
    fn logs(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Result<ContainerLog, LookupError> {
        let view = self.find(namespace, pod, container)?;
        let path = if previous {
            view.previous_log.ok_or_else(|| LookupError::NoPrevious {
                pod: pod.to_string(),
                container: container.to_string(),
            })?
        } else {
            match view.current {
                Some(current) => current.log_path,
                None => {
                    return Err(LookupError::Waiting {
                        pod: pod.to_string(),
                        container: container.to_string(),
                        reason: view.waiting.unwrap_or_else(|| "ContainerCreating".into()),
                    })
                }
            }
        };
        Ok(ContainerLog {
            files: vec![PathBuf::from(path)],
        })
    }

    fn running_pid(&self, namespace: &str, pod: &str, container: &str) -> Result<i32, LookupError> {
        let current = self.running(namespace, pod, container)?;
        current.pid.ok_or_else(|| LookupError::NotRunning {
            pod: pod.to_string(),
            container: container.to_string(),
        })
    }

    fn is_running(&self, namespace: &str, pod: &str, container: &str) -> bool {
        self.running(namespace, pod, container).is_ok()
    }

    fn exec_target(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<ExecTarget, LookupError> {
        let current = self.running(namespace, pod, container)?;
        Ok(ExecTarget::Runc {
            root: PathBuf::from(&current.runc_root),
            container_id: current.id,
        })
    }

    fn attach_target(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<AttachTarget, LookupError> {
        let current = self.running(namespace, pod, container)?;
        let view = self.find(namespace, pod, container)?;
        Ok(AttachTarget {
            runtime: self.runtime.clone(),
            container_id: current.id,
            stdin: view.stdin,
            tty: view.tty,
        })
    }

    fn network_pid(&self, namespace: &str, pod: &str) -> Result<i32, LookupError> {
        let entry = self.pod(namespace, pod)?;
        // Every container of a Pod shares its network namespace.
        entry
            .containers
            .iter()
            .find_map(|c| c.current.as_ref().filter(|c| c.running())?.pid)
            .ok_or_else(|| LookupError::NotRunning {
                pod: pod.to_string(),
                container: entry
                    .containers
                    .first()
                    .map(|c| c.name.clone())
                    .unwrap_or_default(),
            })
    }
}
