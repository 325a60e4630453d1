//! Subresources: one part of an object behind its own URL.
//!
//! - `/status`: controllers and node agents report what *is* through it;
//!   users state what they *want* through the object itself. Keeping them
//!   apart means a `kubectl apply` never overwrites a status and a status
//!   report never changes a spec.
//! - `/scale` (Deployments, ReplicaSets): an `autoscaling/v1 Scale` view of
//!   `spec.replicas`; `kubectl scale` patches it.
//! - `/binding` (Pods): the scheduler's decision, "run this Pod on that
//!   node", which sets `spec.nodeName` once.
//! - `/approval` (CertificateSigningRequests): the Approved/Denied
//!   conditions, see [`crate::certificates`].
//! - `/token` (ServiceAccounts): a signed token for it, see
//!   [`crate::tokens`].
//! - `/log` and `/exec` (Pods): served by the node that runs the Pod, see
//!   [`super::nodeproxy`].

use std::sync::Arc;

use api::patch::PatchType;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::objectmeta::resource_version;
use super::request::{self, Target, WriteOptions};
use super::write::{self, key_of, Part};
use super::{json_response, subject, App};
use crate::status::StatusError;

pub async fn dispatch(
    app: &Arc<App>,
    target: &Target,
    sub: &str,
    method: &Method,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Result<Response, StatusError> {
    if target.resource.subresource(sub).is_none() {
        return Err(StatusError::no_route(&format!(
            "{}/{}",
            target.resource, sub
        )));
    }
    match (sub, method) {
        ("status", &Method::GET) => super::read::get(app, target, headers, query),
        ("status", &Method::PUT) => {
            write::update(app, target, headers, query, body, Part::Status).await
        }
        ("status", &Method::PATCH) => {
            write::patch(app, target, headers, query, body, Part::Status).await
        }
        ("approval", &Method::GET) => super::read::get(app, target, headers, query),
        ("approval", &Method::PUT) => {
            write::update(app, target, headers, query, body, Part::Approval).await
        }
        ("approval", &Method::PATCH) => {
            write::patch(app, target, headers, query, body, Part::Approval).await
        }
        ("scale", &Method::GET) => {
            let object = app.get_object(&key_of(target))?;
            Ok(json_response(StatusCode::OK, &scale_of(&object)?))
        }
        ("scale", &Method::PUT) | ("scale", &Method::PATCH) => {
            update_scale(app, target, method, headers, query, body).await
        }
        ("binding", &Method::POST) => bind(app, target, headers, body).await,
        ("eviction", &Method::POST) => {
            super::eviction::evict(app, target, headers, query, body).await
        }
        ("token", &Method::POST) => crate::tokens::token_request(
            app,
            target.namespace.as_deref().unwrap_or_default(),
            target.name.as_deref().unwrap_or_default(),
            super::protobuf::is_protobuf(
                headers
                    .get(axum::http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok()),
            ),
            body,
        ),
        _ => Err(StatusError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({method} {}/{sub})",
            target.resource
        ))),
    }
}

/// The `Scale` view of a Deployment or ReplicaSet.
fn scale_of(object: &Value) -> Result<Value, StatusError> {
    let selector = match object["spec"].get("selector") {
        Some(sel) => {
            let sel: api::k8s::apimachinery::pkg::apis::meta::v1::LabelSelector =
                serde_json::from_value(sel.clone()).unwrap_or_default();
            api::selector::LabelSelector::from_k8s(&sel)
                .map(|s| s.to_string())
                .unwrap_or_default()
        }
        None => String::new(),
    };
    let meta = &object["metadata"];
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": { "replicas": object["spec"]["replicas"].as_i64().unwrap_or(0) },
        "status": {
            "replicas": object["status"]["replicas"].as_i64().unwrap_or(0),
            "selector": selector,
        },
    }))
}

/// `PUT|PATCH .../deployments/x/scale`: the new replica count goes into the
/// object's `spec.replicas`.
async fn update_scale(
    app: &App,
    target: &Target,
    method: &Method,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Result<Response, StatusError> {
    let opts: WriteOptions = request::query(query)?;
    let validation = opts.field_validation()?;
    let is_patch = method == Method::PATCH;
    let content_type = request::content_type(headers);
    let patch_type = if is_patch {
        Some(
            PatchType::from_content_type(&content_type)
                .ok_or_else(|| StatusError::unsupported_media_type(&content_type))?,
        )
    } else {
        None
    };
    let put_body = if is_patch {
        None
    } else {
        Some(request::decode_object(body, &content_type)?)
    };
    let body = body.to_vec();
    let name = target.name.clone().unwrap_or_default();
    let resource = target.resource;
    let fields = write::Fields::of_request(&opts, headers, "scale")?;
    let updated = write::update_object(
        app,
        key_of(target),
        Part::Main,
        opts.is_dry_run(),
        fields,
        move |current| {
            let scale = scale_of(current)?;
            let wanted = match (&patch_type, &put_body) {
                (Some(pt), _) => api::patch::apply_patch("Scale", *pt, &scale, &body)
                    .map_err(|e| StatusError::bad_request(e.to_string()))?,
                (None, Some(b)) => b.clone(),
                (None, None) => scale.clone(),
            };
            let wanted =
                super::schema::decode_kind("Scale", "autoscaling/v1", &wanted, validation)?.object;
            let replicas = wanted["spec"]["replicas"].as_i64().unwrap_or(0);
            if replicas < 0 {
                return Err(StatusError::invalid(
                    subject(resource, &name),
                    &[crate::status::FieldError::invalid(
                        "spec.replicas",
                        replicas.to_string(),
                        "must be greater than or equal to 0",
                    )],
                ));
            }
            let mut new = current.clone();
            new["spec"]["replicas"] = json!(replicas);
            // A resourceVersion in the Scale is a precondition on the object.
            match resource_version(&wanted) {
                Some(rv) if Some(rv) != resource_version(&scale) => {
                    new["metadata"]["resourceVersion"] = json!(rv);
                }
                _ => {}
            }
            Ok(new)
        },
    )
    .await?;
    Ok(json_response(StatusCode::OK, &scale_of(&updated)?))
}

/// `POST .../pods/x/binding`: sets `spec.nodeName`, once.
async fn bind(
    app: &App,
    target: &Target,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, StatusError> {
    let raw = request::decode_object(body, &request::content_type(headers))?;
    let binding =
        super::schema::decode_kind("Binding", "v1", &raw, request::FieldValidation::Strict)?.object;
    let node = binding["target"]["name"].as_str().unwrap_or("").to_string();
    if node.is_empty() {
        return Err(StatusError::invalid(
            subject(target.resource, target.name.as_deref().unwrap_or_default()),
            &[crate::status::FieldError::required("target.name", "")],
        ));
    }
    let pod_name = target.name.clone().unwrap_or_default();
    // The binding is the scheduler's decision, not a field it manages.
    let untracked = write::Fields::Untracked;
    write::update_object(app, key_of(target), Part::Main, false, untracked, move |current| {
        match current["spec"]["nodeName"].as_str() {
            Some(existing) if !existing.is_empty() => Err(StatusError::new(
                409,
                "Conflict",
                format!("Operation cannot be fulfilled on pods/binding \"{pod_name}\": pod {pod_name} is already assigned to node \"{existing}\""),
            )),
            _ => {
                let mut new = current.clone();
                new["spec"]["nodeName"] = json!(node);
                Ok(new)
            }
        }
    })
    .await?;
    // As kube-apiserver does, a bound Pod reports `PodScheduled: True`.
    let untracked = write::Fields::Untracked;
    write::update_object(
        app,
        key_of(target),
        Part::Status,
        false,
        untracked,
        |current| {
            let mut new = current.clone();
            let condition = json!({
                "type": "PodScheduled",
                "status": "True",
                "lastTransitionTime": super::objectmeta::now_rfc3339(),
            });
            let conditions = &mut new["status"]["conditions"];
            if !conditions.is_array() {
                *conditions = json!([]);
            }
            if let Some(list) = conditions.as_array_mut() {
                match list.iter_mut().find(|c| c["type"] == "PodScheduled") {
                    Some(existing) if existing["status"] == "True" => {}
                    Some(existing) => *existing = condition,
                    None => list.push(condition),
                }
            }
            Ok(new)
        },
    )
    .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}
