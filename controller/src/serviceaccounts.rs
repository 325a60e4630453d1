//! ServiceAccounts: every namespace has one named `default`
//! (kube-controller-manager's serviceaccounts-controller).
//!
//! A Pod that names no ServiceAccount runs as `default` of its namespace,
//! and its identity - the token the node agent asks for and mounts at
//! `/var/run/secrets/kubernetes.io/serviceaccount/token` - is that
//! account's. So the account must exist before the first Pod, in every
//! namespace, and come back if someone deletes it: this loop watches
//! Namespaces (and ServiceAccounts, to see a deletion) and creates it
//! where it is missing.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::{reflector::ObjectRef, watcher};
use kube::ResourceExt as _;

use crate::{Context, Error, Result};

/// The account every namespace has.
pub const DEFAULT: &str = "default";

pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let accounts: Api<ServiceAccount> = Api::all(ctx.client.clone());
    Controller::new(namespaces, watcher::Config::default())
        .watches(accounts, watcher::Config::default(), |account| {
            (account.name_any() == DEFAULT)
                .then(|| account.namespace().map(|ns| ObjectRef::new(&ns)))
                .flatten()
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "serviceaccounts");
            }
            futures::future::ready(())
        })
        .await;
    Ok(())
}

pub fn error_policy(namespace: Arc<Namespace>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(namespace = %namespace.name_any(), %error, "default ServiceAccount");
    Action::requeue(Duration::from_secs(1))
}

/// Creates `default` in `namespace` unless it is there (or the namespace
/// is going away). Idempotent.
pub async fn reconcile(namespace: Arc<Namespace>, ctx: Arc<Context>) -> Result<Action> {
    if namespace.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let accounts: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &namespace.name_any());
    if accounts.get_opt(DEFAULT).await?.is_some() {
        return Ok(Action::await_change());
    }
    let account = ServiceAccount {
        metadata: kube::api::ObjectMeta {
            name: Some(DEFAULT.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    match accounts.create(&PostParams::default(), &account).await {
        Ok(_) => Ok(Action::await_change()),
        // Made meanwhile (by us, earlier): fine.
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}
