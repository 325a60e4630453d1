//! Schema: decoding request bodies into the real Kubernetes types.
//!
//! kube-apiserver decodes every body into its Go struct. Two things follow,
//! and kube-lite reproduces both by decoding into the `k8s-openapi` structs:
//! - a field of the wrong type (`port: "eighty"`) is a 400 BadRequest;
//! - a field the type does not have (`spec.bogus`) is dropped. Under
//!   `fieldValidation=Strict` (kubectl's default) it is an error instead,
//!   under `Warn` the client gets a warning.
//!
//! Storing the re-encoded struct rather than the client's JSON also means
//! every stored object has exactly the shape the type defines.

use api::resources::ResourceType;
use serde_json::Value;

use super::request::FieldValidation;
use crate::status::StatusError;

/// A body after decoding: the pruned object and any warnings to return.
pub struct Decoded {
    pub object: Value,
    pub warnings: Vec<String>,
}

/// Decodes `value` as the kind `kind_name` (`Service`, `Scale`, ...),
/// applying the field validation mode.
pub fn decode_kind(
    kind_name: &str,
    api_version: &str,
    value: &Value,
    validation: FieldValidation,
) -> Result<Decoded, StatusError> {
    // Kinds without a typed struct are stored as sent.
    let result = api::decode::decode_kind(api_version, kind_name, value).unwrap_or_else(|| {
        Ok(api::decode::Typed {
            object: value.clone(),
            unknown: Vec::new(),
        })
    });
    let api::decode::Typed { object, unknown } = result.map_err(|e| {
        StatusError::bad_request(format!(
            "{kind_name} in version \"{api_version}\" cannot be handled as a {kind_name}: {e}"
        ))
    })?;
    if unknown.is_empty() {
        return Ok(Decoded {
            object,
            warnings: Vec::new(),
        });
    }
    let messages: Vec<String> = unknown
        .iter()
        .map(|path| format!("unknown field \"{path}\""))
        .collect();
    match validation {
        FieldValidation::Strict => Err(StatusError::bad_request(format!(
            "{kind_name} in version \"{api_version}\" cannot be handled as a {kind_name}: strict decoding error: {}",
            messages.join(", ")
        ))),
        FieldValidation::Warn => Ok(Decoded {
            object,
            warnings: messages,
        }),
        FieldValidation::Ignore => Ok(Decoded {
            object,
            warnings: Vec::new(),
        }),
    }
}

/// Decodes the body of a create or update of `resource`, checking that its
/// `apiVersion`/`kind` (when given) are the resource's.
pub fn decode_object(
    resource: &ResourceType,
    mut value: Value,
    validation: FieldValidation,
) -> Result<Decoded, StatusError> {
    let expected_version = resource.api_version();
    match value["apiVersion"].as_str() {
        None | Some("") => value["apiVersion"] = Value::String(expected_version.clone()),
        Some(v) if v == expected_version => {}
        Some(v) => {
            return Err(StatusError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({expected_version})"
            )))
        }
    }
    match value["kind"].as_str() {
        None | Some("") => value["kind"] = Value::String(resource.kind.to_string()),
        Some(k) if k == resource.kind => {}
        Some(k) => {
            return Err(StatusError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                resource.kind
            )))
        }
    }
    decode_kind(resource.kind, &expected_version, &value, validation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strict_rejects_and_warn_prunes_unknown_fields() {
        let svc = api::resources::lookup("svc").unwrap();
        let body = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "s"},
            "spec": {"ports": [{"port": 80, "bogus": 1}]}
        });
        let err = decode_object(svc, body.clone(), FieldValidation::Strict)
            .err()
            .unwrap();
        assert_eq!(err.code, 400);
        assert!(
            err.message
                .contains("unknown field \"spec.ports[0].bogus\""),
            "{}",
            err.message
        );

        let ok = decode_object(svc, body, FieldValidation::Warn).unwrap();
        assert_eq!(ok.warnings.len(), 1);
        assert!(ok.object["spec"]["ports"][0].get("bogus").is_none());
    }

    #[test]
    fn wrong_types_and_kinds_are_bad_requests() {
        let svc = api::resources::lookup("svc").unwrap();
        let body = json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": "eighty"}]}});
        assert_eq!(
            decode_object(svc, body, FieldValidation::Ignore)
                .err()
                .unwrap()
                .code,
            400
        );
        let body = json!({"apiVersion": "apps/v1", "kind": "Service", "metadata": {"name": "s"}});
        assert_eq!(
            decode_object(svc, body, FieldValidation::Ignore)
                .err()
                .unwrap()
                .code,
            400
        );
    }
}
