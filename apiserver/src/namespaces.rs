//! Namespaces: the four that always exist, and how one is deleted.
//!
//! A fresh Kubernetes cluster has `default`, `kube-system`, `kube-public`
//! and `kube-node-lease`; kube-lite creates them on first start.
//!
//! Deleting a namespace deletes everything in it. The namespace first turns
//! `Terminating` (so nothing new can be created in it), then its objects are
//! deleted - Pods on nodes gracefully, so their node agent stops them - and
//! when nothing is left the namespace itself goes. In Kubernetes the
//! namespace controller does this; kube-lite's apiserver does it itself.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::rest::delete::{delete_object, DeleteOptions, SYSTEM_NAMESPACES};
use crate::rest::objectmeta;
use crate::rest::App;
use crate::status::StatusError;
use crate::storage::{ObjectKey, Store};

fn namespaces() -> &'static api::resources::ResourceType {
    api::resources::lookup("namespaces").expect("namespaces are in the resource table")
}

/// Creates the system namespaces that do not exist yet.
pub async fn ensure_system_namespaces(store: &Store) -> Result<(), StatusError> {
    for name in SYSTEM_NAMESPACES {
        let object = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": { "kubernetes.io/metadata.name": name },
            },
        });
        crate::bootstrap::ensure(store, namespaces(), object, &[], |_| false).await?;
    }
    Ok(())
}

/// Resumes deleting namespaces that were `Terminating` when the server
/// stopped.
pub fn resume_terminating(app: &Arc<App>) {
    let terminating: Vec<String> = app
        .store
        .snapshot()
        .list(namespaces(), None, None)
        .filter(|(_, o)| objectmeta::is_being_deleted(o))
        .map(|((_, name), _)| name.clone())
        .collect();
    for namespace in terminating {
        let app = app.clone();
        tokio::spawn(finalize(app, namespace));
    }
}

/// Deletes everything in `namespace`, waits until it is all gone, then
/// deletes the namespace.
///
/// Returns a boxed future: deleting a namespace starts this task, and this
/// task deletes objects, so the future's type must be spelled out for the
/// compiler to see that it is `Send`.
pub fn finalize(app: Arc<App>, namespace: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(finalize_namespace(app, namespace))
}

async fn finalize_namespace(app: Arc<App>, namespace: String) {
    let opts = DeleteOptions {
        propagation_policy: Some("Background".into()),
        ..Default::default()
    };
    loop {
        let remaining: Vec<ObjectKey> = {
            let snapshot = app.store.snapshot();
            api::resources::RESOURCES
                .iter()
                .filter(|r| r.namespaced)
                .flat_map(|r| {
                    snapshot
                        .list(r, Some(&namespace), None)
                        .map(move |((ns, name), _)| ObjectKey::new(r, Some(ns), name))
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        if remaining.is_empty() {
            break;
        }
        for key in remaining {
            if let Err(e) = delete_object(&app, key.clone(), &opts, false).await {
                if e.code != 404 && e.code != 409 {
                    tracing::warn!(namespace, object = %key.name, error = %e, "namespace cleanup");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let key = ObjectKey::new(namespaces(), None, &namespace);
    let result = app.store.write(move |txn| Ok(txn.delete(key))).await;
    if let Err(e) = result {
        tracing::error!(namespace, error = %e, "could not remove finalized namespace");
    }
}
