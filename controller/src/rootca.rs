//! The cluster CA in every namespace: the ConfigMap `kube-root-ca.crt`
//! (kube-controller-manager's root-ca-cert-publisher).
//!
//! A Pod that calls the apiserver must check its certificate against the
//! cluster CA. Every Pod's `kube-api-access-*` volume projects `ca.crt`
//! from this ConfigMap of its own namespace, so it must be in every
//! namespace, and be put back if changed or deleted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::{reflector::ObjectRef, watcher};
use kube::ResourceExt as _;

use crate::{Context, Error, Result};

/// The ConfigMap's name, and its one key.
pub const NAME: &str = "kube-root-ca.crt";
pub const KEY: &str = "ca.crt";

/// A certificate (DER) as PEM.
pub fn pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    if ctx.config.root_ca_pem.is_none() {
        // Dev mode: no CA to publish.
        return std::future::pending().await;
    }
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let configmaps: Api<ConfigMap> = Api::all(ctx.client.clone());
    Controller::new(namespaces, watcher::Config::default())
        .watches(
            configmaps,
            watcher::Config::default().fields(&format!("metadata.name={NAME}")),
            |cm| cm.namespace().map(|ns| ObjectRef::new(&ns)),
        )
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "kube-root-ca.crt");
            }
            futures::future::ready(())
        })
        .await;
    Ok(())
}

pub fn error_policy(namespace: Arc<Namespace>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(namespace = %namespace.name_any(), %error, "publishing kube-root-ca.crt");
    Action::requeue(Duration::from_secs(1))
}

/// Makes `kube-root-ca.crt` in `namespace` hold the CA. Idempotent.
pub async fn reconcile(namespace: Arc<Namespace>, ctx: Arc<Context>) -> Result<Action> {
    let Some(ca) = &ctx.config.root_ca_pem else {
        return Ok(Action::await_change());
    };
    if namespace.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &namespace.name_any());
    let data = BTreeMap::from([(KEY.to_string(), ca.clone())]);
    match api.get_opt(NAME).await? {
        Some(current) if current.data.as_ref() == Some(&data) => {}
        Some(mut current) => {
            current.data = Some(data);
            api.replace(NAME, &PostParams::default(), &current).await?;
        }
        None => {
            let configmap = ConfigMap {
                metadata: kube::api::ObjectMeta {
                    name: Some(NAME.into()),
                    ..Default::default()
                },
                data: Some(data),
                ..Default::default()
            };
            match api.create(&PostParams::default(), &configmap).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(Action::await_change())
}
