//! API errors as Kubernetes `Status` objects.
//!
//! Every error a Kubernetes API server returns is a `meta.k8s.io/v1 Status`
//! with an HTTP code, a machine-readable `reason` (`NotFound`, `Conflict`,
//! `Invalid`, ...) and a human message. kubectl prints
//! `Error from server (<reason>): <message>`, and client libraries branch on
//! `reason` and `code`, so the exact shape matters as much as the code.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// One problem with one field, as the `details.causes` of an Invalid Status.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// Path of the field, like `spec.ports[0].port`.
    pub field: String,
    pub kind: FieldErrorKind,
    /// What the user gave, rendered as Kubernetes does (strings quoted).
    pub value: Option<String>,
    /// Why it is wrong.
    pub detail: String,
}

/// The kinds of field error Kubernetes distinguishes (`field.ErrorType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorKind {
    Invalid,
    Required,
    Duplicate,
    NotSupported,
    Forbidden,
    TooLong,
    NotFound,
}

impl FieldErrorKind {
    /// The `reason` of a Status cause.
    fn cause_reason(self) -> &'static str {
        match self {
            Self::Invalid => "FieldValueInvalid",
            Self::Required => "FieldValueRequired",
            Self::Duplicate => "FieldValueDuplicate",
            Self::NotSupported => "FieldValueNotSupported",
            Self::Forbidden => "FieldValueForbidden",
            Self::TooLong => "FieldValueTooLong",
            Self::NotFound => "FieldValueNotFound",
        }
    }

    /// How the message names the kind: `Invalid value: 0: ...`.
    fn label(self) -> &'static str {
        match self {
            Self::Invalid => "Invalid value",
            Self::Required => "Required value",
            Self::Duplicate => "Duplicate value",
            Self::NotSupported => "Unsupported value",
            Self::Forbidden => "Forbidden",
            Self::TooLong => "Too long",
            Self::NotFound => "Not found",
        }
    }
}

impl FieldError {
    pub fn invalid(
        field: impl Into<String>,
        value: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            kind: FieldErrorKind::Invalid,
            value: Some(value.into()),
            detail: detail.into(),
        }
    }

    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            kind: FieldErrorKind::Required,
            value: None,
            detail: detail.into(),
        }
    }

    pub fn duplicate(field: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            kind: FieldErrorKind::Duplicate,
            value: Some(value.into()),
            detail: String::new(),
        }
    }

    pub fn not_supported(
        field: impl Into<String>,
        value: impl Into<String>,
        supported: &[&str],
    ) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        Self {
            field: field.into(),
            kind: FieldErrorKind::NotSupported,
            value: Some(value.into()),
            detail: format!("supported values: {}", list.join(", ")),
        }
    }

    /// A reference to something that does not exist: `Not found: "x"`.
    pub fn not_found(field: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            kind: FieldErrorKind::NotFound,
            value: Some(value.into()),
            detail: String::new(),
        }
    }

    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            kind: FieldErrorKind::Forbidden,
            value: None,
            detail: detail.into(),
        }
    }

    /// `spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive`
    pub fn message(&self) -> String {
        let mut msg = format!("{}: {}", self.field, self.kind.label());
        if let Some(v) = &self.value {
            msg.push_str(": ");
            msg.push_str(v);
        }
        if !self.detail.is_empty() {
            msg.push_str(": ");
            msg.push_str(&self.detail);
        }
        msg
    }
}

/// Quotes a string value the way Kubernetes field errors show it.
pub fn quoted(s: &str) -> String {
    format!("\"{s}\"")
}

/// An error answered to the client as a `Status`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct StatusError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    /// `details` of the Status: name, group, kind, causes.
    pub details: Option<Value>,
    /// Seconds a client should wait (429/503 answers).
    pub retry_after: Option<u64>,
}

/// Identifies the object an error is about, for `details`.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// Resource plural (`services`), as Kubernetes puts it in `details.kind`.
    pub plural: &'a str,
    pub group: &'a str,
    /// The kind, for Invalid messages (`Service "x" is invalid`).
    pub kind: &'a str,
    pub name: &'a str,
}

impl StatusError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    fn with_subject(mut self, s: Subject<'_>) -> Self {
        let mut d = json!({ "name": s.name, "kind": s.plural });
        if !s.group.is_empty() {
            d["group"] = json!(s.group);
        }
        self.details = Some(d);
        self
    }

    /// 400: the request itself is malformed (bad JSON, bad selector).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 404 for a missing object: `services "x" not found`.
    pub fn not_found(s: Subject<'_>) -> Self {
        let what = qualified(s.plural, s.group);
        Self::new(404, "NotFound", format!("{what} \"{}\" not found", s.name)).with_subject(s)
    }

    /// 404 for a URL that names nothing we serve.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    /// 405 for a verb a resource does not support.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    /// 409 on create of an existing name.
    pub fn already_exists(s: Subject<'_>) -> Self {
        let what = qualified(s.plural, s.group);
        Self::new(
            409,
            "AlreadyExists",
            format!("{what} \"{}\" already exists", s.name),
        )
        .with_subject(s)
    }

    /// 409 when the client's resourceVersion is stale (optimistic concurrency).
    pub fn conflict(s: Subject<'_>) -> Self {
        let what = qualified(s.plural, s.group);
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {what} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                s.name
            ),
        )
        .with_subject(s)
    }

    /// 410 when a watch asks for history we no longer keep.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 413 for request bodies over the limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("the request body is too large: limit is {limit} bytes"),
        )
    }

    /// 415 for a Content-Type we cannot read.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/merge-patch+json, application/json-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got {content_type:?})"),
        )
    }

    /// 422 with one cause per field error:
    /// `Service "x" is invalid: spec.ports[0].port: Invalid value: ...`.
    pub fn invalid(s: Subject<'_>, errors: &[FieldError]) -> Self {
        let messages: Vec<String> = errors.iter().map(FieldError::message).collect();
        let joined = if messages.len() == 1 {
            messages[0].clone()
        } else {
            format!("[{}]", messages.join(", "))
        };
        let mut e = Self::new(
            422,
            "Invalid",
            format!(
                "{} \"{}\" is invalid: {joined}",
                qualified_kind(s.kind, s.group),
                s.name
            ),
        );
        let causes: Vec<Value> = errors
            .iter()
            .map(|fe| {
                json!({
                    "reason": fe.kind.cause_reason(),
                    "message": fe.message().split_once(": ").map(|(_, m)| m.to_string()).unwrap_or_default(),
                    "field": fe.field,
                })
            })
            .collect();
        let mut d = json!({ "name": s.name, "kind": s.kind, "causes": causes });
        if !s.group.is_empty() {
            d["group"] = json!(s.group);
        }
        e.details = Some(d);
        e
    }

    /// 422 raised while a namespace is being deleted, or 404 when missing:
    /// namespaced objects need their namespace.
    pub fn namespace_not_found(namespace: &str) -> Self {
        Self::not_found(Subject {
            plural: "namespaces",
            group: "",
            kind: "Namespace",
            name: namespace,
        })
    }

    /// 500 for our own failures (storage). Never for client mistakes.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// The Status object as JSON.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        // Always there, if only empty, as kube-apiserver writes it:
        // `kubectl debug` reads `details` without checking.
        s["details"] = self.details.clone().unwrap_or_else(|| json!({}));
        if let Some(secs) = self.retry_after {
            s["details"]["retryAfterSeconds"] = json!(secs);
        }
        s
    }
}

/// `services` or `deployments.apps`, as messages name a resource.
pub fn qualified(plural: &str, group: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

/// `Service` or `Deployment.apps`, as Invalid messages name a kind.
fn qualified_kind(kind: &str, group: &str) -> String {
    if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    }
}

impl IntoResponse for StatusError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (
            code,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            self.to_status().to_string(),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            if let Ok(v) = secs.to_string().parse() {
                resp.headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_status_names_the_field_like_kubernetes() {
        let e = StatusError::invalid(
            Subject {
                plural: "services",
                group: "",
                kind: "Service",
                name: "ngx-svc",
            },
            &[FieldError::invalid(
                "spec.ports[0].port",
                "0",
                "must be between 1 and 65535, inclusive",
            )],
        );
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "Service \"ngx-svc\" is invalid: spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"
        );
        let s = e.to_status();
        assert_eq!(s["details"]["causes"][0]["field"], "spec.ports[0].port");
        assert_eq!(s["details"]["causes"][0]["reason"], "FieldValueInvalid");
    }

    #[test]
    fn not_found_uses_the_group_qualified_resource() {
        let e = StatusError::not_found(Subject {
            plural: "deployments",
            group: "apps",
            kind: "Deployment",
            name: "web",
        });
        assert_eq!(e.message, "deployments.apps \"web\" not found");
        assert_eq!(e.to_status()["details"]["group"], "apps");
    }
}
