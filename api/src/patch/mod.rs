//! Patches: how a client changes part of an object without sending all of it.
//!
//! `PATCH /api/v1/namespaces/default/services/ngx-svc` carries a body whose
//! `Content-Type` says how to read it. Kubernetes understands three kinds:
//!
//! - `application/merge-patch+json` ([RFC 7386]): a partial object; maps
//!   merge, `null` deletes, everything else (lists too) replaces.
//!   `kubectl label`, `annotate` and `scale` send these.
//! - `application/json-patch+json` ([RFC 6902]): a list of operations
//!   (`add`, `remove`, `replace`, `move`, `copy`, `test`) on JSON pointers.
//! - `application/strategic-merge-patch+json`: Kubernetes' own merge patch
//!   that knows the built-in types. A Deployment's `containers` list merges
//!   by container `name` instead of being replaced, so a patch that changes
//!   one image keeps the other containers. `kubectl apply` sends these,
//!   computed by a three-way diff between the last applied manifest, the new
//!   manifest and the live object.
//!
//! # Layout
//! - `merge`: RFC 7386, applied ([`merge_patch`]) and computed
//!   ([`two_way_merge_patch`]).
//! - `jsonpatch`: RFC 6902 operations and JSON pointers ([`json_patch`]).
//! - `mergekeys`: which lists merge, by which key, per kind (the
//!   `patchStrategy`/`patchMergeKey` tags of the Go types).
//! - `strategic`: applying a strategic merge patch, as the apiserver does
//!   ([`strategic_merge_patch`]).
//! - `threeway`: computing the patch `kubectl apply` sends
//!   ([`three_way_strategic_patch`]).
//!
//! [`apply_patch`] is the apiserver's entry point: it reads a `PATCH` body
//! of a given [`PatchType`] and dispatches.
//!
//! Everything works on `serde_json::Value`: the apiserver patches the stored
//! JSON before decoding it, exactly as kube-apiserver patches the versioned
//! object's JSON.
//!
//! [RFC 7386]: https://www.rfc-editor.org/rfc/rfc7386
//! [RFC 6902]: https://www.rfc-editor.org/rfc/rfc6902

mod jsonpatch;
mod merge;
mod mergekeys;
mod strategic;
mod threeway;

pub use jsonpatch::json_patch;
pub use merge::{merge_patch, two_way_merge_patch};
pub use strategic::strategic_merge_patch;
pub use threeway::three_way_strategic_patch;

use serde_json::Value;

/// The annotation where `kubectl apply` keeps the manifest it last applied.
///
/// It is the `last_applied` of the next [`three_way_strategic_patch`]: a
/// field that was in it but is gone from the new manifest gets deleted,
/// while fields the user never wrote (a Service's `clusterIP`) are left to
/// the server.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The three patch formats of `PATCH` requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatchType {
    /// `application/json-patch+json`: RFC 6902 operations.
    Json,
    /// `application/merge-patch+json`: RFC 7386 merge patch.
    Merge,
    /// `application/strategic-merge-patch+json`: Kubernetes' merge patch
    /// that merges lists by key.
    StrategicMerge,
}

impl PatchType {
    /// Reads a request's `Content-Type`, ignoring parameters such as
    /// `; charset=utf-8`. Any other media type is not a patch (the apiserver
    /// answers 415 Unsupported Media Type).
    pub fn from_content_type(content_type: &str) -> Option<PatchType> {
        let media_type = content_type.split(';').next().unwrap_or("").trim();
        match media_type.to_ascii_lowercase().as_str() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            _ => None,
        }
    }

    /// The `Content-Type` a client sends for this kind of patch.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::StrategicMerge => "application/strategic-merge-patch+json",
        }
    }
}

/// Why a patch could not be applied or computed.
///
/// The apiserver answers [`PatchError::is_bad_request`] errors with
/// 400 BadRequest (the body itself is wrong) and the others with
/// 422 Unprocessable Entity (a well-formed patch that does not fit this
/// object), as kube-apiserver does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The body is not JSON, or not the shape its patch type needs.
    #[error("{0}")]
    Malformed(String),
    /// A JSON patch operation is missing a member or names an unknown op.
    #[error("json patch operation {index} is invalid: {reason}")]
    InvalidOperation { index: usize, reason: String },
    /// A JSON patch operation could not be applied to this object: a path
    /// that does not exist, an index out of range, a failed `test`.
    #[error("json patch operation {index} ({op} {path}) failed: {reason}")]
    OperationFailed {
        /// Position of the operation in the patch, from 0.
        index: usize,
        op: String,
        path: String,
        reason: String,
    },
    /// More operations than a JSON patch may have (kube-apiserver: 413).
    #[error("The allowed maximum operations in a JSON patch is {limit}, got {count}")]
    TooManyOperations { limit: usize, count: usize },
    /// `copy` operations that would grow the object past the limit: a
    /// small patch could otherwise double an object many times over.
    #[error("Unable to apply patch: the accumulated size of copied values exceeds the limit of {limit} bytes")]
    CopiesTooLarge { limit: usize },
    /// A strategic merge patch directive (`$patch`, `$retainKeys`,
    /// `$setElementOrder/...`, `$deleteFromPrimitiveList/...`) is malformed.
    #[error("invalid strategic merge patch at {path}: {reason}")]
    InvalidDirective { path: String, reason: String },
    /// A strategic merge patch (or a manifest being diffed) does not fit the
    /// object: a merge-keyed list item without its key, a list of lists, a
    /// list mixing objects and strings.
    #[error("cannot merge {path}: {reason}")]
    Unmergeable { path: String, reason: String },
}

impl PatchError {
    /// True when the request body itself is wrong (400 BadRequest); false
    /// when a well-formed patch cannot apply to this object (422).
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            PatchError::Malformed(_)
                | PatchError::InvalidOperation { .. }
                | PatchError::InvalidDirective { .. }
        )
    }
}

/// Applies a `PATCH` request body of the given type to `original`, the
/// stored object of kind `kind`, and returns the patched object.
pub fn apply_patch(
    kind: &str,
    patch_type: PatchType,
    original: &Value,
    patch_body: &[u8],
) -> Result<Value, PatchError> {
    let patch: Value =
        serde_json::from_slice(patch_body).map_err(|e| PatchError::Malformed(e.to_string()))?;
    match patch_type {
        PatchType::Json => json_patch(original, &patch),
        PatchType::Merge if !patch.is_object() => Err(PatchError::Malformed(
            "a merge patch must be a JSON object".to_string(),
        )),
        PatchType::Merge => Ok(merge_patch(original, &patch)),
        PatchType::StrategicMerge => strategic_merge_patch(kind, original, &patch),
    }
}

/// JSON equality as RFC 6902 `test` defines it: numbers compare by value
/// (`1` equals `1.0`), objects regardless of key order.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_types_ignore_parameters_and_case() {
        assert_eq!(
            PatchType::from_content_type("application/strategic-merge-patch+json; charset=utf-8"),
            Some(PatchType::StrategicMerge)
        );
        assert_eq!(
            PatchType::from_content_type("Application/Merge-Patch+JSON"),
            Some(PatchType::Merge)
        );
        assert_eq!(
            PatchType::from_content_type("application/json-patch+json"),
            Some(PatchType::Json)
        );
        assert_eq!(PatchType::from_content_type("application/json"), None);
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml"),
            None
        );
        for t in [PatchType::Json, PatchType::Merge, PatchType::StrategicMerge] {
            assert_eq!(PatchType::from_content_type(t.content_type()), Some(t));
        }
    }

    #[test]
    fn apply_patch_dispatches_on_type() {
        let svc = json!({"kind": "Service", "spec": {"ports": [
            {"port": 80, "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}]}});
        let body = br#"{"spec":{"ports":[{"port":80,"name":"http"}]}}"#;

        // Strategic: ports merge by `port`, the 443 port stays.
        let merged = apply_patch("Service", PatchType::StrategicMerge, &svc, body).unwrap();
        assert_eq!(
            merged["spec"]["ports"],
            json!([{"port": 80, "protocol": "TCP", "name": "http"},
                   {"port": 443, "protocol": "TCP"}])
        );
        // Merge patch: the list is replaced.
        let replaced = apply_patch("Service", PatchType::Merge, &svc, body).unwrap();
        assert_eq!(
            replaced["spec"]["ports"],
            json!([{"port": 80, "name": "http"}])
        );
        let json_body = br#"[{"op":"replace","path":"/spec/ports/1/port","value":8443}]"#;
        let ops = apply_patch("Service", PatchType::Json, &svc, json_body).unwrap();
        assert_eq!(ops["spec"]["ports"][1]["port"], json!(8443));
    }

    #[test]
    fn malformed_bodies_are_bad_requests() {
        let obj = json!({"kind": "ConfigMap"});
        for t in [PatchType::Json, PatchType::Merge, PatchType::StrategicMerge] {
            let err = apply_patch("ConfigMap", t, &obj, b"{not json").unwrap_err();
            assert!(
                matches!(&err, PatchError::Malformed(m) if m.contains("key must be a string")),
                "{err}"
            );
            assert!(err.is_bad_request());
        }
        let err = apply_patch("ConfigMap", PatchType::Merge, &obj, b"[1]").unwrap_err();
        assert!(err.is_bad_request(), "{err}");
        let err = apply_patch("ConfigMap", PatchType::Json, &obj, b"{}").unwrap_err();
        assert!(err.is_bad_request(), "{err}");
        let err = apply_patch("ConfigMap", PatchType::StrategicMerge, &obj, b"\"x\"").unwrap_err();
        assert!(err.is_bad_request(), "{err}");
    }

    #[test]
    fn inapplicable_patches_are_unprocessable() {
        let obj = json!({"data": {"a": "1"}});
        let err = apply_patch(
            "ConfigMap",
            PatchType::Json,
            &obj,
            br#"[{"op":"test","path":"/data/a","value":"2"}]"#,
        )
        .unwrap_err();
        assert!(!err.is_bad_request(), "{err}");
        let err = apply_patch(
            "ConfigMap",
            PatchType::Json,
            &obj,
            br#"[{"op":"remove","path":"/data/b"}]"#,
        )
        .unwrap_err();
        assert!(!err.is_bad_request(), "{err}");
    }

    #[test]
    fn json_equality_compares_numbers_by_value() {
        assert!(json_equal(&json!(1), &json!(1.0)));
        assert!(json_equal(
            &json!({"a": [1, "x"]}),
            &json!({"a": [1.0, "x"]})
        ));
        assert!(!json_equal(&json!(1), &json!("1")));
        assert!(!json_equal(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(!json_equal(&json!([1, 2]), &json!([2, 1])));
    }
}
