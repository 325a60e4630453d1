//! Server-side apply: `PATCH` with `application/apply-patch+yaml`
//! (`kubectl apply --server-side`, kube-rs `Patch::Apply`).
//!
//! The body is the configuration a manager wants - a partial object, in
//! YAML or JSON. It is merged into the stored object by
//! [`crate::fieldmanager::apply`], then goes through the same defaults,
//! validation and storage as any update. An apply to an object that does
//! not exist creates it (201).

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use super::request::{Target, WriteOptions};
use super::schema;
use super::write::{self, Fields, Part};
use super::{json_response_with_warnings, App};
use crate::fieldmanager;
use crate::status::{FieldError, StatusError};

pub async fn apply(
    app: &App,
    target: &Target,
    opts: &WriteOptions,
    body: &[u8],
    part: Part,
) -> Result<Response, StatusError> {
    let manager = opts.field_manager.clone().unwrap_or_default();
    if manager.is_empty() {
        // kubectl sends `kubectl`; a controller must name itself.
        return Err(write::invalid_patch_options(FieldError::required(
            "fieldManager",
            "is required for apply patch",
        )));
    }
    fieldmanager::validate_field_manager(&manager)?;
    let validation = opts.field_validation()?;
    let force = opts.force.unwrap_or(false);
    let config = api::decode::decode_body(body, "application/yaml")
        .map_err(|e| StatusError::bad_request(format!("error decoding YAML: {e}")))?;
    if !config.is_object() {
        return Err(StatusError::bad_request(
            "error decoding YAML: the body must be an object",
        ));
    }
    let resource = target.resource;
    let key = write::key_of(target);
    if let Some(name) = config["metadata"]["name"].as_str() {
        if name != key.name {
            return Err(StatusError::bad_request(format!(
                "the name of the object ({name}) does not match the name on the URL ({})",
                key.name
            )));
        }
    }

    let warnings = Arc::new(Mutex::new(Vec::new()));
    let decode = {
        let warnings = warnings.clone();
        move |object: Value| -> Result<Value, StatusError> {
            let decoded = schema::decode_object(resource, object, validation)?;
            if let Ok(mut w) = warnings.lock() {
                *w = decoded.warnings;
            }
            Ok(decoded.object)
        }
    };

    let exists = match app.get_object(&key) {
        Ok(_) => true,
        Err(e) if e.code == 404 && part == Part::Main => false,
        Err(e) => return Err(e),
    };
    let (code, object) = if exists {
        let config = config.clone();
        let updated = write::update_object(
            app,
            key,
            part,
            opts.is_dry_run(),
            Fields::Untracked,
            move |current| {
                let mut applied =
                    fieldmanager::apply(resource, part, Some(current), &config, &manager, force)?;
                // Applied to the latest version, retried if another write
                // gets in between, unless the configuration names a version.
                if config["metadata"]["resourceVersion"].is_null() {
                    super::objectmeta::forget_resource_version(&mut applied);
                }
                decode(applied)
            },
        )
        .await?;
        (StatusCode::OK, updated)
    } else {
        let mut applied = fieldmanager::apply(resource, part, None, &config, &manager, force)?;
        applied["metadata"]["name"] = Value::String(key.name.clone());
        let created = write::create_object(
            app,
            resource,
            target.namespace.as_deref(),
            decode(applied)?,
            opts.is_dry_run(),
            Fields::Untracked,
        )
        .await?;
        (StatusCode::CREATED, created)
    };
    let warnings = warnings.lock().map(|w| w.clone()).unwrap_or_default();
    Ok(json_response_with_warnings(code, &object, &warnings))
}
