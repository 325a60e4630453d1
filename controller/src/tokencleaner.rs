//! Expired bootstrap tokens are deleted (kube-controller-manager's
//! `tokencleaner`).
//!
//! The apiserver already refuses a token past its `expiration`; deleting
//! its Secret too keeps `kubectl -n kube-system get secrets` honest about
//! which join commands still work. Each Secret is looked at when it
//! changes, and again when it is due to expire.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::ResourceExt as _;

use crate::{Context, Error, Result};

pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), api::bootstraptoken::NAMESPACE);
    Controller::new(
        secrets,
        watcher::Config::default().fields(&format!("type={}", api::bootstraptoken::SECRET_TYPE)),
    )
    .run(reconcile, error_policy, ctx)
    .for_each(|result| {
        if let Err(e) = result {
            tracing::debug!(error = %e, "bootstrap tokens");
        }
        futures::future::ready(())
    })
    .await;
    Ok(())
}

pub fn error_policy(secret: Arc<Secret>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(secret = %secret.name_any(), %error, "cleaning bootstrap tokens");
    Action::requeue(Duration::from_secs(10))
}

/// When a bootstrap token Secret expires (its `expiration`), if it says.
pub fn expiration(secret: &Secret) -> Option<chrono::DateTime<chrono::Utc>> {
    let bytes = &secret.data.as_ref()?.get("expiration")?.0;
    let text = String::from_utf8(bytes.clone()).ok()?;
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// Deletes the Secret once expired; otherwise looks again then.
pub async fn reconcile(secret: Arc<Secret>, ctx: Arc<Context>) -> Result<Action> {
    if secret.type_.as_deref() != Some(api::bootstraptoken::SECRET_TYPE) {
        return Ok(Action::await_change());
    }
    let Some(expires) = expiration(&secret) else {
        return Ok(Action::await_change()); // never expires
    };
    let left = expires - chrono::Utc::now();
    if left > chrono::Duration::zero() {
        return Ok(Action::requeue(
            left.to_std().unwrap_or_default() + Duration::from_secs(1),
        ));
    }
    let name = secret.name_any();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), api::bootstraptoken::NAMESPACE);
    match api.delete(&name, &DeleteParams::default()).await {
        Ok(_) => tracing::info!(secret = %name, "deleted an expired bootstrap token"),
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => {
            return Err(Error::api(
                format!("secret kube-system/{name}"),
                "deleting an expired token",
                e,
            ))
        }
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expiration_is_read_from_the_secret() {
        let value = api::bootstraptoken::secret(
            "abcdef.0123456789abcdef",
            "2026-12-08T10:00:00Z".parse().unwrap(),
            "test",
        );
        let secret: Secret = serde_json::from_value(value).unwrap();
        assert_eq!(
            expiration(&secret),
            Some("2026-12-08T10:00:00Z".parse().unwrap())
        );
    }
}
