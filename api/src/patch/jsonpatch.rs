//! JSON patch (RFC 6902), `application/json-patch+json`.
//!
//! A list of operations applied in order, each naming its target with a
//! JSON pointer (RFC 6901): `/spec/ports/0/port` walks keys and list
//! indices; `~1` stands for `/` and `~0` for `~` inside a key, so the label
//! `app.kubernetes.io/name` is `/metadata/labels/app.kubernetes.io~1name`;
//! `-` after a list means "past the end" (append). The whole patch applies
//! or nothing does, and a `test` operation lets a client say "only if this
//! field still has this value", a cheap precondition.

use serde_json::{Map, Value};

use super::{json_equal, PatchError};

/// The most operations one JSON patch may have (kube-apiserver's
/// `maxJSONPatchOperations`).
pub const MAX_OPERATIONS: usize = 10_000;

/// The most bytes `copy` operations may duplicate in one patch: the
/// request body limit, so that a patch cannot make an object bigger than a
/// request could have been (kube-apiserver's `AccumulatedCopySizeLimit`).
pub const MAX_COPIED_BYTES: usize = 3 * 1024 * 1024;

/// Applies an RFC 6902 JSON patch (a list of operations) to `original`.
///
/// An error names the operation (its index in the list) and why it failed.
/// Patches of more than [`MAX_OPERATIONS`] operations, or that copy more
/// than [`MAX_COPIED_BYTES`], are refused before they grow anything.
pub fn json_patch(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let Value::Array(operations) = patch else {
        return Err(PatchError::Malformed(
            "a JSON patch must be a list of operations".to_string(),
        ));
    };
    if operations.len() > MAX_OPERATIONS {
        return Err(PatchError::TooManyOperations {
            limit: MAX_OPERATIONS,
            count: operations.len(),
        });
    }
    let mut document = original.clone();
    let mut copied = 0usize;
    for (index, operation) in operations.iter().enumerate() {
        let operation = Operation::parse(operation)
            .map_err(|reason| PatchError::InvalidOperation { index, reason })?;
        if let OperationKind::Copy(from) = &operation.kind {
            if let Some(value) = from.resolve(&document) {
                copied += serde_json::to_vec(value).map_or(0, |bytes| bytes.len());
                if copied > MAX_COPIED_BYTES {
                    return Err(PatchError::CopiesTooLarge {
                        limit: MAX_COPIED_BYTES,
                    });
                }
            }
        }
        operation
            .apply(&mut document)
            .map_err(|reason| PatchError::OperationFailed {
                index,
                op: operation.name().to_string(),
                path: operation.path.to_string(),
                reason,
            })?;
    }
    Ok(document)
}

/// One RFC 6902 operation, with its target.
struct Operation {
    kind: OperationKind,
    path: Pointer,
}

enum OperationKind {
    Add(Value),
    Remove,
    Replace(Value),
    Move(Pointer),
    Copy(Pointer),
    Test(Value),
}

impl Operation {
    /// Reads `{"op": ..., "path": ..., "value"/"from": ...}`; members the
    /// operation does not use are ignored, as the RFC requires.
    fn parse(operation: &Value) -> Result<Operation, String> {
        let Value::Object(members) = operation else {
            return Err(format!("expected an object, got {operation}"));
        };
        let op = match members.get("op") {
            Some(Value::String(op)) => op.as_str(),
            Some(other) => return Err(format!("\"op\" must be a string, got {other}")),
            None => return Err("missing \"op\"".to_string()),
        };
        let path = Pointer::parse(required_string(members, "path")?)?;
        let value = || {
            members
                .get("value")
                .cloned()
                .ok_or_else(|| format!("\"{op}\" needs a \"value\""))
        };
        let from = || Pointer::parse(required_string(members, "from")?);
        let kind = match op {
            "add" => OperationKind::Add(value()?),
            "remove" => OperationKind::Remove,
            "replace" => OperationKind::Replace(value()?),
            "move" => OperationKind::Move(from()?),
            "copy" => OperationKind::Copy(from()?),
            "test" => OperationKind::Test(value()?),
            other => {
                return Err(format!(
                    "unknown op \"{other}\" (expected add, remove, replace, move, copy or test)"
                ))
            }
        };
        Ok(Operation { kind, path })
    }

    fn name(&self) -> &'static str {
        match self.kind {
            OperationKind::Add(_) => "add",
            OperationKind::Remove => "remove",
            OperationKind::Replace(_) => "replace",
            OperationKind::Move(_) => "move",
            OperationKind::Copy(_) => "copy",
            OperationKind::Test(_) => "test",
        }
    }

    fn apply(&self, document: &mut Value) -> Result<(), String> {
        match &self.kind {
            OperationKind::Add(value) => add(document, &self.path, value.clone()),
            OperationKind::Remove => remove(document, &self.path).map(drop),
            OperationKind::Replace(value) => {
                let target = self
                    .path
                    .resolve_mut(document)
                    .ok_or_else(|| format!("no value at {}", self.path))?;
                *target = value.clone();
                Ok(())
            }
            OperationKind::Move(from) => {
                if from.is_proper_prefix_of(&self.path) {
                    return Err(format!("cannot move {from} into one of its own children"));
                }
                if *from == self.path {
                    return match from.resolve(document) {
                        Some(_) => Ok(()),
                        None => Err(format!("no value at {from}")),
                    };
                }
                let value = remove(document, from)?;
                add(document, &self.path, value)
            }
            OperationKind::Copy(from) => {
                let value = from
                    .resolve(document)
                    .ok_or_else(|| format!("no value at {from}"))?
                    .clone();
                add(document, &self.path, value)
            }
            OperationKind::Test(expected) => {
                let actual = self
                    .path
                    .resolve(document)
                    .ok_or_else(|| format!("no value at {}", self.path))?;
                if json_equal(actual, expected) {
                    Ok(())
                } else {
                    Err(format!("test failed: value is {actual}, not {expected}"))
                }
            }
        }
    }
}

fn required_string<'a>(members: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    match members.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(format!("\"{name}\" must be a string, got {other}")),
        None => Err(format!("missing \"{name}\"")),
    }
}

/// `add`: sets a key of an object (replacing it if present) or inserts into
/// a list, shifting later items; the parent must exist.
fn add(document: &mut Value, path: &Pointer, value: Value) -> Result<(), String> {
    let Some((parent_path, last)) = path.split_last() else {
        *document = value;
        return Ok(());
    };
    let parent = parent_path
        .resolve_mut(document)
        .ok_or_else(|| format!("parent {parent_path} does not exist"))?;
    match parent {
        Value::Object(map) => {
            map.insert(last.to_string(), value);
            Ok(())
        }
        Value::Array(items) => {
            let index = if last == "-" {
                items.len()
            } else {
                list_index(last)?
            };
            if index > items.len() {
                return Err(format!(
                    "index {index} is out of range: {parent_path} has {} items",
                    items.len()
                ));
            }
            items.insert(index, value);
            Ok(())
        }
        _ => Err(format!("{parent_path} is neither an object nor a list")),
    }
}

/// `remove`: takes the target out of its parent and returns it.
fn remove(document: &mut Value, path: &Pointer) -> Result<Value, String> {
    let Some((parent_path, last)) = path.split_last() else {
        return Err("cannot remove the whole document".to_string());
    };
    let missing = || format!("no value at {path}");
    match parent_path.resolve_mut(document).ok_or_else(missing)? {
        Value::Object(map) => map.remove(last).ok_or_else(missing),
        Value::Array(items) => {
            let index = list_index(last)?;
            if index >= items.len() {
                return Err(missing());
            }
            Ok(items.remove(index))
        }
        _ => Err(missing()),
    }
}

/// A list index as RFC 6901 spells it: decimal digits, no leading zeros.
fn list_index(token: &str) -> Result<usize, String> {
    let valid = !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'));
    if !valid {
        return Err(format!("\"{token}\" is not a list index"));
    }
    token
        .parse()
        .map_err(|_| format!("\"{token}\" is not a list index"))
}

/// A JSON pointer (RFC 6901), as its unescaped reference tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pointer(Vec<String>);

impl Pointer {
    /// `""` is the whole document; anything else starts with `/`.
    fn parse(text: &str) -> Result<Pointer, String> {
        if text.is_empty() {
            return Ok(Pointer(Vec::new()));
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!("path \"{text}\" must start with \"/\""));
        };
        rest.split('/')
            .map(|token| {
                unescape(token)
                    .ok_or_else(|| format!("path \"{text}\" has a \"~\" not followed by 0 or 1"))
            })
            .collect::<Result<_, _>>()
            .map(Pointer)
    }

    fn split_last(&self) -> Option<(Pointer, &str)> {
        let (last, parent) = self.0.split_last()?;
        Some((Pointer(parent.to_vec()), last))
    }

    /// True when `self` names an ancestor of `other` (a move would then
    /// put a value inside itself).
    fn is_proper_prefix_of(&self, other: &Pointer) -> bool {
        self.0.len() < other.0.len() && other.0.starts_with(&self.0)
    }

    fn resolve<'v>(&self, document: &'v Value) -> Option<&'v Value> {
        self.0
            .iter()
            .try_fold(document, |value, token| match value {
                Value::Object(map) => map.get(token),
                Value::Array(items) => items.get(list_index(token).ok()?),
                _ => None,
            })
    }

    fn resolve_mut<'v>(&self, document: &'v mut Value) -> Option<&'v mut Value> {
        self.0
            .iter()
            .try_fold(document, |value, token| match value {
                Value::Object(map) => map.get_mut(token),
                Value::Array(items) => items.get_mut(list_index(token).ok()?),
                _ => None,
            })
    }
}

/// Undoes `~1` -> `/` and `~0` -> `~` in one pass, so `~01` is `~1`.
fn unescape(token: &str) -> Option<String> {
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

impl std::fmt::Display for Pointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return write!(f, "\"\"");
        }
        for token in &self.0 {
            write!(f, "/{}", token.replace('~', "~0").replace('/', "~1"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_bombs_are_refused_before_they_grow() {
        let ops: Vec<Value> = (0..=MAX_OPERATIONS)
            .map(|_| serde_json::json!({"op": "test", "path": "/a", "value": 1}))
            .collect();
        let error = json_patch(&serde_json::json!({"a": 1}), &Value::Array(ops)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "The allowed maximum operations in a JSON patch is 10000, got 10001"
        );
        // Each copy doubles the object: 30 of them would be 2^30 times it.
        let mut ops =
            vec![serde_json::json!({"op": "add", "path": "/x", "value": "y".repeat(1024)})];
        for i in 0..30 {
            ops.push(serde_json::json!({"op": "copy", "from": "/x", "path": format!("/x{i}")}));
            ops.push(serde_json::json!({"op": "copy", "from": "", "path": "/x"}));
        }
        let error = json_patch(&serde_json::json!({}), &Value::Array(ops)).unwrap_err();
        assert!(
            matches!(error, PatchError::CopiesTooLarge { .. }),
            "{error}"
        );
    }
    use serde_json::json;

    fn patched(doc: Value, patch: Value) -> Value {
        json_patch(&doc, &patch).unwrap_or_else(|e| panic!("{e}"))
    }

    fn failure(doc: Value, patch: Value) -> PatchError {
        json_patch(&doc, &patch).expect_err("patch should fail")
    }

    // RFC 6902 Appendix A, in order.

    #[test]
    fn a1_add_an_object_member() {
        let doc = patched(
            json!({"foo": "bar"}),
            json!([{"op": "add", "path": "/baz", "value": "qux"}]),
        );
        assert_eq!(doc, json!({"baz": "qux", "foo": "bar"}));
    }

    #[test]
    fn a2_add_an_array_element() {
        let doc = patched(
            json!({"foo": ["bar", "baz"]}),
            json!([{"op": "add", "path": "/foo/1", "value": "qux"}]),
        );
        assert_eq!(doc, json!({"foo": ["bar", "qux", "baz"]}));
    }

    #[test]
    fn a3_a4_remove_a_member_and_an_element() {
        let doc = patched(
            json!({"baz": "qux", "foo": "bar"}),
            json!([{"op": "remove", "path": "/baz"}]),
        );
        assert_eq!(doc, json!({"foo": "bar"}));
        let doc = patched(
            json!({"foo": ["bar", "qux", "baz"]}),
            json!([{"op": "remove", "path": "/foo/1"}]),
        );
        assert_eq!(doc, json!({"foo": ["bar", "baz"]}));
    }

    #[test]
    fn a5_replace_a_value() {
        let doc = patched(
            json!({"baz": "qux", "foo": "bar"}),
            json!([{"op": "replace", "path": "/baz", "value": "boo"}]),
        );
        assert_eq!(doc, json!({"baz": "boo", "foo": "bar"}));
    }

    #[test]
    fn a6_a7_move_a_value_and_an_element() {
        let doc = patched(
            json!({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}}),
            json!([{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}]),
        );
        assert_eq!(
            doc,
            json!({"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}})
        );
        let doc = patched(
            json!({"foo": ["all", "grass", "cows", "eat"]}),
            json!([{"op": "move", "from": "/foo/1", "path": "/foo/3"}]),
        );
        assert_eq!(doc, json!({"foo": ["all", "cows", "eat", "grass"]}));
    }

    #[test]
    fn a8_test_a_value_success() {
        let doc = json!({"baz": "qux", "foo": ["a", 2, "c"]});
        let out = patched(
            doc.clone(),
            json!([
                {"op": "test", "path": "/baz", "value": "qux"},
                {"op": "test", "path": "/foo/1", "value": 2}
            ]),
        );
        assert_eq!(out, doc);
    }

    #[test]
    fn a9_test_a_value_error_names_the_operation() {
        let err = failure(
            json!({"baz": "qux"}),
            json!([{"op": "test", "path": "/baz", "value": "bar"}]),
        );
        assert_eq!(
            err,
            PatchError::OperationFailed {
                index: 0,
                op: "test".into(),
                path: "/baz".into(),
                reason: "test failed: value is \"qux\", not \"bar\"".into(),
            }
        );
        assert!(!err.is_bad_request());
        assert_eq!(
            err.to_string(),
            "json patch operation 0 (test /baz) failed: test failed: value is \"qux\", not \"bar\""
        );
    }

    #[test]
    fn a10_add_a_nested_member_object() {
        let doc = patched(
            json!({"foo": "bar"}),
            json!([{"op": "add", "path": "/child", "value": {"grandchild": {}}}]),
        );
        assert_eq!(doc, json!({"foo": "bar", "child": {"grandchild": {}}}));
    }

    #[test]
    fn a11_ignore_unrecognized_members() {
        let doc = patched(
            json!({"foo": "bar"}),
            json!([{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}]),
        );
        assert_eq!(doc, json!({"foo": "bar", "baz": "qux"}));
    }

    #[test]
    fn a12_add_to_a_nonexistent_target_fails() {
        let err = failure(
            json!({"foo": "bar"}),
            json!([{"op": "add", "path": "/baz/bat", "value": "qux"}]),
        );
        assert!(
            matches!(&err, PatchError::OperationFailed { index: 0, reason, .. }
                if reason == "parent /baz does not exist"),
            "{err}"
        );
    }

    #[test]
    fn a13_invalid_json_patch_document() {
        // The RFC's example repeats "op"; serde keeps the last one, so the
        // equivalent failure here is an operation without a value.
        let err = failure(
            json!({"foo": "bar"}),
            json!([{"op": "add", "path": "/baz"}]),
        );
        assert_eq!(
            err,
            PatchError::InvalidOperation {
                index: 0,
                reason: "\"add\" needs a \"value\"".into()
            }
        );
        assert!(err.is_bad_request());
    }

    #[test]
    fn a14_escape_ordering() {
        let doc = json!({"/": 9, "~1": 10});
        let out = patched(
            doc.clone(),
            json!([{"op": "test", "path": "/~01", "value": 10}]),
        );
        assert_eq!(out, doc);
    }

    #[test]
    fn a15_comparing_strings_and_numbers() {
        let err = failure(
            json!({"/": 9, "~1": 10}),
            json!([{"op": "test", "path": "/~01", "value": "10"}]),
        );
        assert!(
            matches!(err, PatchError::OperationFailed { index: 0, .. }),
            "{err}"
        );
    }

    #[test]
    fn a16_adding_an_array_value() {
        let doc = patched(
            json!({"foo": ["bar"]}),
            json!([{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}]),
        );
        assert_eq!(doc, json!({"foo": ["bar", ["abc", "def"]]}));
    }

    #[test]
    fn copy_replace_root_and_escaped_label_keys() {
        let pod = json!({"metadata": {"labels": {"app.kubernetes.io/name": "web"}}});
        let doc = patched(
            pod,
            json!([
                {"op": "copy", "from": "/metadata/labels/app.kubernetes.io~1name",
                 "path": "/metadata/labels/app"},
                {"op": "remove", "path": "/metadata/labels/app.kubernetes.io~1name"}
            ]),
        );
        assert_eq!(doc, json!({"metadata": {"labels": {"app": "web"}}}));
        let doc = patched(doc, json!([{"op": "replace", "path": "", "value": [1]}]));
        assert_eq!(doc, json!([1]));
    }

    #[test]
    fn failures_stop_the_whole_patch_and_say_which_operation() {
        let svc = json!({"spec": {"ports": [{"port": 80}]}});
        let err = failure(
            svc,
            json!([
                {"op": "replace", "path": "/spec/ports/0/port", "value": 81},
                {"op": "remove", "path": "/spec/ports/1"}
            ]),
        );
        assert_eq!(
            err.to_string(),
            "json patch operation 1 (remove /spec/ports/1) failed: no value at /spec/ports/1"
        );
    }

    #[test]
    fn bad_indices_and_moves() {
        let doc = json!({"a": [1, 2], "b": {"c": 1}});
        let err = failure(
            doc.clone(),
            json!([{"op": "add", "path": "/a/3", "value": 0}]),
        );
        assert!(err.to_string().contains("index 3 is out of range"), "{err}");
        let err = failure(doc.clone(), json!([{"op": "remove", "path": "/a/01"}]));
        assert!(err.to_string().contains("not a list index"), "{err}");
        let err = failure(doc.clone(), json!([{"op": "remove", "path": "/a/-"}]));
        assert!(err.to_string().contains("not a list index"), "{err}");
        let err = failure(
            doc.clone(),
            json!([{"op": "move", "from": "/b", "path": "/b/c/d"}]),
        );
        assert!(err.to_string().contains("own children"), "{err}");
        let err = failure(
            doc.clone(),
            json!([{"op": "replace", "path": "/z", "value": 0}]),
        );
        assert!(err.to_string().contains("no value at /z"), "{err}");
        let out = patched(
            doc.clone(),
            json!([{"op": "move", "from": "/b", "path": "/b"}]),
        );
        assert_eq!(out, doc);
    }

    #[test]
    fn malformed_operations_are_invalid() {
        let doc = json!({});
        for (op, reason) in [
            (json!({"path": "/a"}), "missing \"op\""),
            (json!({"op": "frob", "path": "/a"}), "unknown op \"frob\""),
            (json!({"op": "remove"}), "missing \"path\""),
            (
                json!({"op": "remove", "path": "a"}),
                "must start with \"/\"",
            ),
            (
                json!({"op": "remove", "path": "/a~2"}),
                "not followed by 0 or 1",
            ),
            (json!({"op": "copy", "path": "/a"}), "missing \"from\""),
            (json!(7), "expected an object"),
        ] {
            let err = failure(doc.clone(), json!([op]));
            assert!(
                matches!(&err, PatchError::InvalidOperation { index: 0, reason: r } if r.contains(reason)),
                "{err} should say {reason}"
            );
        }
        assert!(matches!(
            failure(doc, json!({"op": "add"})),
            PatchError::Malformed(_)
        ));
    }

    #[test]
    fn add_with_null_value_is_allowed() {
        let doc = patched(
            json!({}),
            json!([{"op": "add", "path": "/a", "value": null}]),
        );
        assert_eq!(doc, json!({"a": null}));
    }
}
