//! Request bodies in protobuf (`application/vnd.kubernetes.protobuf`), as
//! the real kubectl sends them for the kinds it knows.
//!
//! The body is the 4 bytes `k8s\0`, then a `runtime.Unknown` message: the
//! object's apiVersion and kind, and the object itself, protobuf-encoded
//! (`raw`). The message types are kube-rs's generated `k8s-pb` ones. Only
//! the authorization questions are read this way yet (`kubectl auth
//! can-i`, `auth whoami`); the answer is JSON, which kubectl also accepts.

use prost::Message as _;

use crate::status::StatusError;

/// The media type of Kubernetes protobuf.
pub const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// The magic number before every protobuf-encoded Kubernetes object.
const MAGIC: &[u8] = b"k8s\0";

/// An object's type and bytes, out of the envelope.
pub struct Envelope {
    pub api_version: String,
    pub kind: String,
    pub raw: Vec<u8>,
}

/// Whether a `Content-Type` is Kubernetes protobuf.
pub fn is_protobuf(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| ct.split(';').next().map(str::trim) == Some(PROTOBUF))
}

/// Opens the envelope.
pub fn envelope(body: &[u8]) -> Result<Envelope, StatusError> {
    let bad =
        |why: &str| StatusError::bad_request(format!("the protobuf body could not be read: {why}"));
    let message = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("it does not start with \"k8s\\0\""))?;
    let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown::decode(message)
        .map_err(|e| bad(&e.to_string()))?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    Ok(Envelope {
        api_version: type_meta.api_version.unwrap_or_default(),
        kind: type_meta.kind.unwrap_or_default(),
        raw: unknown.raw.unwrap_or_default(),
    })
}

/// A `SelfSubjectAccessReview`'s spec, as the JSON the handler reads.
pub fn access_review_spec(raw: &[u8]) -> Result<serde_json::Value, StatusError> {
    use k8s_pb::api::authorization::v1::SelfSubjectAccessReview;
    let review = SelfSubjectAccessReview::decode(raw).map_err(|e| {
        StatusError::bad_request(format!(
            "SelfSubjectAccessReview in version \"v1\" cannot be handled as a SelfSubjectAccessReview: {e}"
        ))
    })?;
    let spec = review.spec.unwrap_or_default();
    let mut json = serde_json::json!({});
    if let Some(r) = spec.resource_attributes {
        json["resourceAttributes"] = serde_json::json!({
            "namespace": r.namespace, "verb": r.verb, "group": r.group, "version": r.version,
            "resource": r.resource, "subresource": r.subresource, "name": r.name,
        });
    }
    if let Some(n) = spec.non_resource_attributes {
        json["nonResourceAttributes"] = serde_json::json!({"path": n.path, "verb": n.verb});
    }
    Ok(json)
}

/// A `TokenRequest`'s spec (`kubectl create token`), as JSON.
pub fn token_request_spec(raw: &[u8]) -> Result<serde_json::Value, StatusError> {
    use k8s_pb::api::authentication::v1::TokenRequest;
    let request = TokenRequest::decode(raw).map_err(|e| {
        StatusError::bad_request(format!(
            "TokenRequest in version \"v1\" cannot be handled as a TokenRequest: {e}"
        ))
    })?;
    let spec = request.spec.unwrap_or_default();
    let mut json = serde_json::json!({"audiences": spec.audiences});
    if let Some(seconds) = spec.expiration_seconds {
        json["expirationSeconds"] = serde_json::json!(seconds);
    }
    if let Some(bound) = spec.bound_object_ref {
        json["boundObjectRef"] = serde_json::json!({
            "kind": bound.kind, "apiVersion": bound.api_version,
            "name": bound.name, "uid": bound.u_id,
        });
    }
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_pb::api::authorization::v1::{
        ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    };

    #[test]
    fn reads_what_kubectl_auth_can_i_sends() {
        let review = SelfSubjectAccessReview {
            spec: Some(SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some("default".into()),
                    verb: Some("list".into()),
                    resource: Some("pods".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown {
            type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
                api_version: Some("authorization.k8s.io/v1".into()),
                kind: Some("SelfSubjectAccessReview".into()),
            }),
            raw: Some(review.encode_to_vec()),
            ..Default::default()
        };
        let mut body = MAGIC.to_vec();
        body.extend(unknown.encode_to_vec());
        let opened = envelope(&body).unwrap();
        assert_eq!(opened.kind, "SelfSubjectAccessReview");
        let spec = access_review_spec(&opened.raw).unwrap();
        assert_eq!(spec["resourceAttributes"]["verb"], "list");
        assert_eq!(spec["resourceAttributes"]["namespace"], "default");
        assert!(envelope(b"not protobuf").is_err());
    }
}
