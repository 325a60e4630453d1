//! The rules every object's `metadata` follows, and label selectors.
//!
//! Names end up in URLs and DNS (`ngx-svc.default.svc.cluster.local`), so
//! each kind picks a syntax: a DNS-1035 label for Services (the name is a
//! DNS label that must start with a letter), a DNS-1123 label for
//! Namespaces, a DNS-1123 subdomain for everything else. Labels are what
//! selectors match, so their keys and values have a syntax too; annotations
//! are free-form values but limited in total size (256 KiB), because every
//! watcher receives them with every change.

use api::names;
use api::resources::ResourceType;
use serde_json::Value;

use super::{child, entries, index, quote, render, str_field, validate_immutable, validate_syntax};
use crate::status::{FieldError, FieldErrorKind};

/// The most bytes all annotation keys and values together may take.
pub(crate) const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// Finalizers Kubernetes itself understands; any other must be qualified
/// with a domain (`example.com/cleanup`).
const STANDARD_FINALIZERS: &[&str] = &["kubernetes", "orphan", "foregroundDeletion"];

/// Which name syntax a kind uses.
fn name_check(resource: &ResourceType) -> fn(&str) -> Vec<String> {
    match (resource.group, resource.kind) {
        ("", "Service") => names::is_dns1035_label,
        ("", "Namespace") => names::is_dns1123_label,
        ("rbac.authorization.k8s.io", _) => names::is_path_segment_name,
        _ => names::is_dns1123_subdomain,
    }
}

/// `ValidateObjectMeta`: name, generateName, namespace, labels,
/// annotations, finalizers.
pub(crate) fn validate(resource: &ResourceType, obj: &Value, errs: &mut Vec<FieldError>) {
    let meta = &obj["metadata"];
    let check = name_check(resource);

    let generate_name = str_field(meta, "generateName");
    if !generate_name.is_empty() {
        // A prefix may end in '-': the random suffix follows it.
        let masked = match generate_name.strip_suffix('-') {
            Some(rest) => format!("{rest}a"),
            None => generate_name.to_string(),
        };
        for msg in check(&masked) {
            errs.push(FieldError::invalid(
                "metadata.generateName",
                quote(generate_name),
                msg,
            ));
        }
    }
    let name = str_field(meta, "name");
    if name.is_empty() {
        errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        validate_syntax(name, check, "metadata.name", errs);
    }

    let namespace = str_field(meta, "namespace");
    if resource.namespaced {
        if namespace.is_empty() {
            errs.push(FieldError::required("metadata.namespace", ""));
        } else {
            validate_syntax(
                namespace,
                names::is_dns1123_label,
                "metadata.namespace",
                errs,
            );
        }
    } else if !namespace.is_empty() {
        errs.push(FieldError::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        ));
    }

    if let Some(generation) = meta.get("generation").and_then(Value::as_i64) {
        if generation < 0 {
            errs.push(FieldError::invalid(
                "metadata.generation",
                generation.to_string(),
                super::NEGATIVE_MSG,
            ));
        }
    }
    validate_labels(meta, "labels", "metadata", errs);
    validate_annotations(meta, "metadata.annotations", errs);
    for (i, finalizer) in super::list(meta, "finalizers").iter().enumerate() {
        validate_finalizer_name(
            finalizer.as_str().unwrap_or(""),
            &index("metadata.finalizers", i),
            errs,
        );
    }
}

/// `ValidateObjectMetaUpdate`: an object keeps its name and namespace.
/// (uid, creationTimestamp and the like are copied from the stored object
/// by the REST layer before this runs.)
pub(crate) fn validate_update(obj: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    for field in ["name", "namespace"] {
        let new_value = obj["metadata"]
            .get(field)
            .filter(|v| v.as_str() != Some(""));
        let old_value = old["metadata"]
            .get(field)
            .filter(|v| v.as_str() != Some(""));
        validate_immutable(new_value, old_value, &child("metadata", field), errs);
    }
}

/// `ValidateLabels` for the map at `obj[key]`. Errors name the whole map
/// (`metadata.labels`), as upstream's do.
pub(crate) fn validate_labels(obj: &Value, key: &str, parent: &str, errs: &mut Vec<FieldError>) {
    let path = child(parent, key);
    for (label, value) in entries(obj, key) {
        validate_label_key(label, &path, errs);
        let value = value.as_str().unwrap_or("");
        validate_syntax(value, names::is_valid_label_value, &path, errs);
    }
}

/// A label key is a qualified name (`app`, `kubernetes.io/name`).
pub(crate) fn validate_label_key(key: &str, path: &str, errs: &mut Vec<FieldError>) {
    validate_syntax(key, names::is_qualified_name, path, errs);
}

/// `ValidateAnnotations`: keys are qualified names (case does not matter)
/// and everything together fits in 256 KiB.
pub(crate) fn validate_annotations(meta: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let annotations = entries(meta, "annotations");
    let mut total = 0;
    for (key, value) in &annotations {
        for msg in names::is_qualified_name(&key.to_lowercase()) {
            errs.push(FieldError::invalid(path, quote(key), msg));
        }
        total += key.len() + value.as_str().map_or(0, str::len);
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError {
            field: path.to_string(),
            kind: FieldErrorKind::TooLong,
            value: None,
            detail: format!("may not be more than {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"),
        });
    }
}

/// A finalizer is a qualified name, and unless it is one of Kubernetes'
/// own it must carry a domain prefix.
pub(crate) fn validate_finalizer_name(name: &str, path: &str, errs: &mut Vec<FieldError>) {
    let before = errs.len();
    validate_syntax(name, names::is_qualified_name, path, errs);
    if errs.len() == before && !name.contains('/') && !STANDARD_FINALIZERS.contains(&name) {
        errs.push(FieldError::invalid(
            path,
            quote(name),
            "name is neither a standard finalizer name nor is it fully qualified",
        ));
    }
}

/// `ValidateLabelSelector` for a `matchLabels`/`matchExpressions` selector.
pub(crate) fn validate_label_selector(selector: &Value, path: &str, errs: &mut Vec<FieldError>) {
    validate_labels(selector, "matchLabels", path, errs);
    for (i, expr) in super::list(selector, "matchExpressions").iter().enumerate() {
        let expr_path = index(&child(path, "matchExpressions"), i);
        let values = super::list(expr, "values");
        match str_field(expr, "operator") {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(FieldError::required(
                        child(&expr_path, "values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(FieldError::forbidden(
                        child(&expr_path, "values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            other => errs.push(FieldError::invalid(
                child(&expr_path, "operator"),
                quote(other),
                "not a valid selector operator",
            )),
        }
        validate_label_key(str_field(expr, "key"), &child(&expr_path, "key"), errs);
        for (j, value) in values.iter().enumerate() {
            let value = value.as_str().unwrap_or("");
            validate_syntax(
                value,
                names::is_valid_label_value,
                &index(&child(&expr_path, "values"), j),
                errs,
            );
        }
    }
}

/// A label selector rendered as upstream renders a `*metav1.LabelSelector`
/// in messages: JSON in field order, empty fields left out.
pub(crate) fn render_label_selector(selector: Option<&Value>) -> String {
    let Some(selector) = selector.filter(|s| !s.is_null()) else {
        return "null".into();
    };
    let mut fields = Vec::new();
    if let Some(labels) = selector
        .get("matchLabels")
        .filter(|l| l.as_object().is_some_and(|m| !m.is_empty()))
    {
        fields.push(format!("\"matchLabels\":{}", render(Some(labels))));
    }
    let exprs = super::list(selector, "matchExpressions");
    if !exprs.is_empty() {
        let rendered: Vec<String> = exprs
            .iter()
            .map(|e| {
                let mut parts = vec![
                    format!("\"key\":{}", quote(str_field(e, "key"))),
                    format!("\"operator\":{}", quote(str_field(e, "operator"))),
                ];
                let values = super::list(e, "values");
                if !values.is_empty() {
                    parts.push(format!("\"values\":{}", render(e.get("values"))));
                }
                format!("{{{}}}", parts.join(","))
            })
            .collect();
        fields.push(format!("\"matchExpressions\":[{}]", rendered.join(",")));
    }
    format!("{{{}}}", fields.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::resources::lookup;
    use serde_json::json;

    fn messages(resource: &str, obj: Value) -> Vec<String> {
        let mut errs = Vec::new();
        validate(lookup(resource).unwrap(), &obj, &mut errs);
        errs.iter().map(FieldError::message).collect()
    }

    #[test]
    fn service_names_are_dns_1035_labels() {
        assert_eq!(
            messages("svc", json!({ "metadata": { "name": "Ngx", "namespace": "default" } })),
            vec!["metadata.name: Invalid value: \"Ngx\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"]
        );
        // A name that starts with a digit is fine for most kinds, not for Services.
        assert_eq!(
            messages(
                "svc",
                json!({ "metadata": { "name": "1svc", "namespace": "default" } })
            )
            .len(),
            1
        );
        assert!(messages(
            "cm",
            json!({ "metadata": { "name": "1cm", "namespace": "default" } })
        )
        .is_empty());
    }

    #[test]
    fn namespace_names_are_dns_1123_labels() {
        assert_eq!(
            messages("ns", json!({ "metadata": { "name": "a.b" } })),
            vec!["metadata.name: Invalid value: \"a.b\": must not contain dots"]
        );
        assert!(messages("ns", json!({ "metadata": { "name": "lab" } })).is_empty());
    }

    #[test]
    fn other_names_are_dns_1123_subdomains() {
        let got = messages(
            "deploy",
            json!({ "metadata": { "name": "Ngx_Dep", "namespace": "default" } }),
        );
        assert_eq!(got.len(), 1);
        assert!(got[0].starts_with(
            "metadata.name: Invalid value: \"Ngx_Dep\": a lowercase RFC 1123 subdomain must consist of"
        ), "{got:?}");
        assert!(messages(
            "deploy",
            json!({ "metadata": { "name": "ngx-dep.v1", "namespace": "default" } })
        )
        .is_empty());
    }

    #[test]
    fn a_name_is_required() {
        assert_eq!(
            messages("cm", json!({ "metadata": { "namespace": "default" } })),
            vec!["metadata.name: Required value: name or generateName is required"]
        );
    }

    #[test]
    fn generate_name_prefixes_may_end_with_a_dash() {
        assert!(messages(
            "po",
            json!({ "metadata": { "name": "ngx-x2kqz", "generateName": "ngx-", "namespace": "default" } })
        )
        .is_empty());
        let got = messages(
            "po",
            json!({ "metadata": { "name": "ngx-x2kqz", "generateName": "Ngx-", "namespace": "default" } }),
        );
        assert_eq!(got.len(), 1);
        assert!(
            got[0].starts_with("metadata.generateName: Invalid value: \"Ngx-\""),
            "{got:?}"
        );
    }

    #[test]
    fn namespaced_objects_need_a_namespace_and_cluster_objects_refuse_one() {
        assert_eq!(
            messages("cm", json!({ "metadata": { "name": "c" } })),
            vec!["metadata.namespace: Required value"]
        );
        assert_eq!(
            messages(
                "no",
                json!({ "metadata": { "name": "n1", "namespace": "default" } })
            ),
            vec!["metadata.namespace: Forbidden: not allowed on this type"]
        );
    }

    #[test]
    fn label_keys_and_values_are_checked() {
        let got = messages(
            "cm",
            json!({ "metadata": { "name": "c", "namespace": "default",
                "labels": { "-app": "ok", "tier": "-bad" } } }),
        );
        assert_eq!(got, vec![
            "metadata.labels: Invalid value: \"-app\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
            "metadata.labels: Invalid value: \"-bad\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
        ]);
    }

    #[test]
    fn annotation_keys_ignore_case_and_their_size_is_limited() {
        assert!(messages(
            "cm",
            json!({ "metadata": { "name": "c", "namespace": "default",
                "annotations": { "Example.com/Note": "fine" } } })
        )
        .is_empty());
        let got = messages(
            "cm",
            json!({ "metadata": { "name": "c", "namespace": "default",
                "annotations": { "bad key": "x" } } }),
        );
        assert_eq!(got.len(), 1);
        assert!(got[0].starts_with(
            "metadata.annotations: Invalid value: \"bad key\": name part must consist of"
        ));
        let big = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT);
        assert_eq!(
            messages(
                "cm",
                json!({ "metadata": { "name": "c", "namespace": "default",
                    "annotations": { "note": big } } })
            ),
            vec!["metadata.annotations: Too long: may not be more than 262144 bytes"]
        );
    }

    #[test]
    fn finalizers_must_be_standard_or_qualified() {
        assert!(messages(
            "cm",
            json!({ "metadata": { "name": "c", "namespace": "default",
                "finalizers": ["foregroundDeletion", "example.com/cleanup"] } })
        )
        .is_empty());
        assert_eq!(
            messages(
                "cm",
                json!({ "metadata": { "name": "c", "namespace": "default", "finalizers": ["cleanup"] } })
            ),
            vec!["metadata.finalizers[0]: Invalid value: \"cleanup\": name is neither a standard finalizer name nor is it fully qualified"]
        );
    }

    #[test]
    fn names_and_namespaces_are_immutable() {
        let mut errs = Vec::new();
        validate_update(
            &json!({ "metadata": { "name": "b", "namespace": "default" } }),
            &json!({ "metadata": { "name": "a", "namespace": "default" } }),
            &mut errs,
        );
        assert_eq!(
            errs.iter().map(FieldError::message).collect::<Vec<_>>(),
            vec!["metadata.name: Invalid value: \"b\": field is immutable"]
        );
    }

    #[test]
    fn selector_operators_and_values_are_checked() {
        let mut errs = Vec::new();
        validate_label_selector(
            &json!({ "matchExpressions": [
                { "key": "tier", "operator": "In" },
                { "key": "tier", "operator": "Exists", "values": ["x"] },
                { "key": "tier", "operator": "Near", "values": ["x"] }
            ] }),
            "spec.selector",
            &mut errs,
        );
        let got: Vec<String> = errs.iter().map(FieldError::message).collect();
        assert_eq!(got, vec![
            "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
            "spec.selector.matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            "spec.selector.matchExpressions[2].operator: Invalid value: \"Near\": not a valid selector operator",
        ]);
    }

    #[test]
    fn selectors_render_in_field_order() {
        assert_eq!(
            render_label_selector(Some(&json!({ "matchLabels": { "app": "y" } }))),
            "{\"matchLabels\":{\"app\":\"y\"}}"
        );
        assert_eq!(
            render_label_selector(Some(&json!({ "matchExpressions": [{ "key": "a", "operator": "Exists" }],
                "matchLabels": { "app": "y" } }))),
            "{\"matchLabels\":{\"app\":\"y\"},\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Exists\"}]}"
        );
        assert_eq!(render_label_selector(None), "null");
    }
}
