//! JSON merge patch (RFC 7386), `application/merge-patch+json`.
//!
//! The simplest patch: send the part of the object you want to change.
//! Maps merge key by key, `null` deletes a key, and any other value, lists
//! included, replaces what was there. It knows nothing about Kubernetes, so
//! it cannot add one container to a list: it can only send the whole list.
//! That is enough for `kubectl label`/`annotate` (maps) and `kubectl scale`
//! (a number), which is why kubectl uses it there.

use serde_json::{Map, Value};

/// Applies an RFC 7386 merge patch to `original`.
///
/// A patch that is not an object replaces the whole document, and merging
/// into something that is not an object starts from `{}`, as the RFC says.
pub fn merge_patch(original: &Value, patch: &Value) -> Value {
    let Value::Object(patch) = patch else {
        return patch.clone();
    };
    let mut merged = match original {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    for (key, value) in patch {
        if value.is_null() {
            merged.remove(key);
        } else {
            // A key the original lacks merges into null, which drops the
            // nulls nested in `value`: there is nothing for them to delete.
            let current = merged.get(key).unwrap_or(&Value::Null);
            let value = merge_patch(current, value);
            merged.insert(key.clone(), value);
        }
    }
    Value::Object(merged)
}

/// The merge patch that turns `original` into `modified`: changed and added
/// keys with their new value, removed keys as `null`, nested maps as nested
/// patches. Returns `{}` when nothing changed.
///
/// `kubectl label pod web tier=fe` computes this between the object it read
/// and the object with the new label, and sends only
/// `{"metadata":{"labels":{"tier":"fe"}}}`.
pub fn two_way_merge_patch(original: &Value, modified: &Value) -> Value {
    let (Value::Object(original), Value::Object(modified)) = (original, modified) else {
        return modified.clone();
    };
    let mut patch = Map::new();
    for (key, new) in modified {
        match original.get(key) {
            Some(old) if old == new => {}
            Some(old @ Value::Object(_)) if new.is_object() => {
                patch.insert(key.clone(), two_way_merge_patch(old, new));
            }
            _ => {
                patch.insert(key.clone(), new.clone());
            }
        }
    }
    for key in original.keys() {
        if !modified.contains_key(key) {
            patch.insert(key.clone(), Value::Null);
        }
    }
    Value::Object(patch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The test cases of RFC 7386 Appendix A: (original, patch, result).
    #[test]
    fn rfc7386_examples() {
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"a": "foo"}), json!("bar"), json!("bar")),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (original, patch, result) in cases {
            assert_eq!(
                merge_patch(&original, &patch),
                result,
                "{original} + {patch}"
            );
        }
    }

    #[test]
    fn merge_patch_of_the_rfc_introduction() {
        let original = json!({
            "title": "Goodbye!",
            "author": {"givenName": "John", "familyName": "Doe"},
            "tags": ["example", "sample"],
            "content": "This will be unchanged"
        });
        let patch = json!({
            "title": "Hello!",
            "phoneNumber": "+01-123-456-7890",
            "author": {"familyName": null},
            "tags": ["example"]
        });
        assert_eq!(
            merge_patch(&original, &patch),
            json!({
                "title": "Hello!",
                "author": {"givenName": "John"},
                "tags": ["example"],
                "content": "This will be unchanged",
                "phoneNumber": "+01-123-456-7890"
            })
        );
    }

    #[test]
    fn two_way_patch_of_a_label_change() {
        let pod = json!({"metadata": {"name": "web", "labels": {"app": "web", "old": "x"}},
                         "spec": {"containers": [{"name": "c"}]}});
        let labelled = json!({"metadata": {"name": "web", "labels": {"app": "web", "tier": "fe"}},
                              "spec": {"containers": [{"name": "c"}]}});
        let patch = two_way_merge_patch(&pod, &labelled);
        assert_eq!(
            patch,
            json!({"metadata": {"labels": {"tier": "fe", "old": null}}})
        );
        assert_eq!(merge_patch(&pod, &patch), labelled);
    }

    #[test]
    fn two_way_patch_replaces_lists_and_is_empty_when_equal() {
        let a = json!({"spec": {"replicas": 2, "ports": [1, 2]}});
        let b = json!({"spec": {"replicas": 5, "ports": [1]}});
        assert_eq!(
            two_way_merge_patch(&a, &b),
            json!({"spec": {"replicas": 5, "ports": [1]}})
        );
        assert_eq!(two_way_merge_patch(&a, &a), json!({}));
        assert_eq!(merge_patch(&a, &two_way_merge_patch(&a, &b)), b);
    }
}
