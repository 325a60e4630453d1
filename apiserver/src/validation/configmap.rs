//! ConfigMap validation.
//!
//! Each key of a ConfigMap can become a file name when the ConfigMap is
//! mounted as a volume (`default.conf` in the lesson), so keys are limited
//! to characters that are safe in file names, may not be `.` or `..`, and
//! the same key may not appear both as text (`data`) and as bytes
//! (`binaryData`).

use serde_json::Value;

use super::{entries, key, quote};
use crate::status::{FieldError, FieldErrorKind};

/// The most bytes a ConfigMap's values may hold together (1 MiB, as a Secret).
const MAX_CONFIGMAP_SIZE: usize = 1024 * 1024;

/// `IsConfigMapKey`'s syntax message.
const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

/// `ValidateConfigMap`.
pub(crate) fn validate(cm: &Value, errs: &mut Vec<FieldError>) {
    let data = entries(cm, "data");
    let binary = entries(cm, "binaryData");
    let mut total = 0;
    for (field, own, other, other_name) in [
        ("data", &data, &binary, "binaryData"),
        ("binaryData", &binary, &data, "data"),
    ] {
        for (name, value) in own {
            let path = key(field, name);
            for msg in config_key_problems(name) {
                errs.push(FieldError::invalid(&path, quote(name), msg));
            }
            if other.iter().any(|(k, _)| k == name) {
                errs.push(FieldError::invalid(
                    &path,
                    quote(name),
                    format!("duplicate of key present in {other_name}"),
                ));
            }
            total += value.as_str().map_or(0, str::len);
        }
    }
    if total > MAX_CONFIGMAP_SIZE {
        errs.push(FieldError {
            field: String::new(),
            kind: FieldErrorKind::TooLong,
            value: None,
            detail: format!("may not be more than {MAX_CONFIGMAP_SIZE} bytes"),
        });
    }
}

/// `ValidateSecret`: keys as a ConfigMap's, at most 1 MiB of data, and
/// the keys its `type` requires (`kubectl create secret tls` makes
/// `tls.crt` and `tls.key`).
pub(crate) fn validate_secret(secret: &Value, errs: &mut Vec<FieldError>) {
    let data = entries(secret, "data");
    let mut total = 0;
    for (name, value) in &data {
        let path = key("data", name);
        for msg in config_key_problems(name) {
            errs.push(FieldError::invalid(&path, quote(name), msg));
        }
        // Stored as base64: 4 characters carry 3 bytes.
        total += value.as_str().map_or(0, |v| v.len() / 4 * 3);
    }
    if total > MAX_CONFIGMAP_SIZE {
        errs.push(FieldError {
            field: "data".into(),
            kind: FieldErrorKind::TooLong,
            value: None,
            detail: format!("may not be more than {MAX_CONFIGMAP_SIZE} bytes"),
        });
    }
    let required: &[&str] = match secret["type"].as_str().unwrap_or_default() {
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        _ => &[],
    };
    for wanted in required {
        if !data.iter().any(|(k, _)| k == wanted) {
            errs.push(FieldError::required(key("data", wanted), ""));
        }
    }
}

/// `IsConfigMapKey`: `[-._a-zA-Z0-9]+`, at most 253 characters, and not a
/// path that climbs out of the volume.
fn config_key_problems(name: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if name.len() > 253 {
        problems.push("must be no more than 253 characters".to_string());
    }
    let charset_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if !charset_ok {
        problems.push(CONFIG_KEY_MSG.to_string());
    }
    if name == "." {
        problems.push("must not be '.'".to_string());
    } else if name == ".." {
        problems.push("must not be '..'".to_string());
    } else if name.starts_with("..") {
        problems.push("must not start with '..'".to_string());
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn messages(cm: Value) -> Vec<String> {
        let mut errs = Vec::new();
        validate(&cm, &mut errs);
        errs.iter().map(FieldError::message).collect()
    }

    #[test]
    fn the_lesson_configmap_is_valid() {
        assert!(
            messages(json!({ "data": { "default.conf": "server { listen 80; }" } })).is_empty()
        );
    }

    #[test]
    fn keys_must_be_file_name_safe() {
        assert_eq!(
            messages(json!({ "data": { "nginx/default.conf": "x", "..data": "y" } })),
            vec![
                "data[..data]: Invalid value: \"..data\": must not start with '..'",
                format!("data[nginx/default.conf]: Invalid value: \"nginx/default.conf\": {CONFIG_KEY_MSG}").as_str(),
            ]
        );
    }

    #[test]
    fn a_key_may_not_be_both_text_and_binary() {
        assert_eq!(
            messages(json!({ "data": { "a": "x" }, "binaryData": { "a": "eA==" } })),
            vec![
                "data[a]: Invalid value: \"a\": duplicate of key present in binaryData",
                "binaryData[a]: Invalid value: \"a\": duplicate of key present in data",
            ]
        );
    }
}
