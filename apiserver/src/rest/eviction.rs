//! `pods/eviction`: the polite way to remove a Pod, what `kubectl drain`
//! uses.
//!
//! An Eviction (`policy/v1`) is a delete that first asks the Pod's
//! PodDisruptionBudgets whether the application can lose it now. kube-lite
//! serves no PodDisruptionBudgets yet, so every eviction is allowed: it
//! deletes the Pod with the Eviction's `deleteOptions` - gracefully, as
//! any delete of a running Pod - and answers 201 with a Status of Success,
//! as kube-apiserver does.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;

use super::delete::{self, DeleteOptions};
use super::request::{self, FieldValidation, Target, WriteOptions};
use super::write::key_of;
use super::{json_response, App};
use crate::status::StatusError;

/// `POST .../pods/{name}/eviction`
pub async fn evict(
    app: &std::sync::Arc<App>,
    target: &Target,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Result<Response, StatusError> {
    let raw = request::decode_object(body, &request::content_type(headers))?;
    let eviction =
        super::schema::decode_kind("Eviction", "policy/v1", &raw, FieldValidation::Strict)?.object;
    let name = target.name.as_deref().unwrap_or_default();
    if eviction["metadata"]["name"].as_str() != Some(name) {
        return Err(StatusError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    let opts: DeleteOptions = match eviction.get("deleteOptions") {
        Some(options) if !options.is_null() => serde_json::from_value(options.clone())
            .map_err(|e| StatusError::bad_request(format!("invalid deleteOptions: {e}")))?,
        _ => DeleteOptions::default(),
    };
    let query: WriteOptions = request::query(query)?;
    let dry_run = query.is_dry_run() || opts.dry_run.iter().any(|d| d == "All");
    delete::delete_object(app, key_of(target), &opts, dry_run).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}
