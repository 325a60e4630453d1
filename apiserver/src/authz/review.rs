//! The questions a caller may ask about itself: "may I?"
//! (`SelfSubjectAccessReview`, `kubectl auth can-i`) and "who am I?"
//! (`SelfSubjectReview`, `kubectl auth whoami`).
//!
//! Neither is stored: a `POST` carries the question in `spec` and the
//! answer comes back in `status` of the same object, 201 Created, as from
//! kube-apiserver. Asking is allowed to every authenticated caller
//! (`system:basic-user`).

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use api::user::UserInfo;

use super::Attributes;
use crate::rest::{json_response, protobuf};
use crate::status::StatusError;
use crate::storage::Store;

fn body_json(body: &[u8], kind: &str) -> Result<Value, StatusError> {
    serde_json::from_slice(body).map_err(|e| {
        StatusError::bad_request(format!(
            "{kind} in version \"v1\" cannot be handled as a {kind}: {e}"
        ))
    })
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

/// The attributes a `SelfSubjectAccessReview` asks about.
fn asked(spec: &Value) -> Result<Attributes, StatusError> {
    let text = |v: &Value, f: &str| {
        v.get(f)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    if let Some(r) = spec.get("resourceAttributes").filter(|v| v.is_object()) {
        return Ok(Attributes::Resource {
            verb: text(r, "verb"),
            group: text(r, "group"),
            resource: text(r, "resource"),
            subresource: text(r, "subresource"),
            namespace: text(r, "namespace"),
            name: text(r, "name"),
        });
    }
    if let Some(n) = spec.get("nonResourceAttributes").filter(|v| v.is_object()) {
        return Ok(Attributes::NonResource {
            verb: text(n, "verb"),
            path: text(n, "path"),
        });
    }
    Err(StatusError::invalid(
        crate::status::Subject {
            plural: "selfsubjectaccessreviews",
            group: "authorization.k8s.io",
            kind: "SelfSubjectAccessReview",
            name: "",
        },
        &[crate::status::FieldError::invalid(
            "spec.resourceAttributes",
            "null",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )],
    ))
}

/// `POST .../selfsubjectaccessreviews`: whether the caller may do what
/// `spec` describes.
pub fn access_review(
    store: &Store,
    user: &UserInfo,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, StatusError> {
    let mut review = if protobuf::is_protobuf(content_type(headers)) {
        protobuf::decode(body)?
    } else {
        body_json(body, "SelfSubjectAccessReview")?
    };
    let attributes = asked(&review["spec"])?;
    let decision = super::decide(&store.snapshot(), user, &attributes);
    review["apiVersion"] = json!("authorization.k8s.io/v1");
    review["kind"] = json!("SelfSubjectAccessReview");
    review["metadata"] = json!({"creationTimestamp": null});
    review["status"] = match decision {
        Ok(()) => json!({"allowed": true}),
        Err(reason) if reason.is_empty() => json!({"allowed": false}),
        Err(reason) => json!({"allowed": false, "reason": reason}),
    };
    Ok(json_response(StatusCode::CREATED, &review))
}

/// `POST .../selfsubjectreviews`: who the caller is.
pub fn self_review(
    user: &UserInfo,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, StatusError> {
    // The body carries nothing to answer, but it must be readable.
    if protobuf::is_protobuf(content_type(headers)) {
        protobuf::decode(body)?;
    } else if !body.is_empty() {
        body_json(body, "SelfSubjectReview")?;
    }
    let mut user_info = json!({"username": user.username, "groups": user.groups});
    if !user.uid.is_empty() {
        user_info["uid"] = json!(user.uid);
    }
    Ok(json_response(
        StatusCode::CREATED,
        &json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "SelfSubjectReview",
            "metadata": {"creationTimestamp": null},
            "status": {"userInfo": user_info},
        }),
    ))
}
