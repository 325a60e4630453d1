//! Which fields a value sets, and which fields a write changed: the two
//! questions field ownership asks of an object.
//!
//! - [`field_set`] is what an applied configuration claims: its scalars,
//!   atomic values and empty objects, each list-map and set item, each
//!   key of a map (structured-merge-diff's `ToFieldSet`);
//! - [`compare`] says what a write added, modified and removed
//!   (structured-merge-diff's `Compare`). An update's manager owns what it
//!   added or modified.
//!
//! The one subtlety: a field Go always writes (a struct that is not a
//! pointer, a list without `omitempty`) is never *added* - the old object
//! had it, empty - so `spec` and `containers` are not members of a
//! create's field set, while `labels` and a new container's `ports` are.
//! That is why `kubectl create deployment` shows `"f:labels":{".":{},...}`
//! but `"f:spec":{"f:replicas":{},...}`.

use serde_json::{Map, Value};

use super::fieldset::{self, Element, Set};
use super::schema::{ListType, Type};

/// The element of a list item, or `None` for the items of an atomic list.
pub fn item_element(list: &Type, index: usize, item: &Value) -> Option<Element> {
    match list.list_type() {
        ListType::Atomic => None,
        ListType::Set => Some(fieldset::value(item)),
        ListType::Map(keys) => {
            let item_type = list.item();
            let mut values = Map::new();
            for name in keys {
                match item
                    .get(name)
                    .cloned()
                    .or_else(|| item_type.default_of(name))
                {
                    Some(v) => {
                        values.insert(name.to_string(), v);
                    }
                    // An item without its key: validation refuses it; until
                    // then it is told apart by position.
                    None => return Some(format!("i:{index}")),
                }
            }
            Some(fieldset::key(&values))
        }
    }
}

/// The items of a granular list, by element (the first of duplicates).
fn items<'v>(list: &Type, value: Option<&'v Value>) -> Vec<(Element, &'v Value)> {
    let mut out: Vec<(Element, &Value)> = Vec::new();
    for (i, item) in value
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(element) = item_element(list, i, item) {
            if !out.iter().any(|(e, _)| *e == element) {
                out.push((element, item));
            }
        }
    }
    out
}

/// True for a value that is walked into rather than owned as one.
fn granular(ty: &Type, value: &Value) -> bool {
    if ty.is_atomic() {
        return false;
    }
    match value {
        Value::Object(map) => !map.is_empty() && !matches!(ty, Type::List { .. }),
        Value::Array(list) => !list.is_empty() && matches!(ty, Type::List { .. }),
        _ => false,
    }
}

/// The fields `value` sets.
pub fn field_set(ty: &Type, value: &Value) -> Set {
    let mut set = Set::new();
    walk_set(ty, value, &mut Vec::new(), &mut set);
    set
}

fn walk_set(ty: &Type, value: &Value, path: &mut Vec<Element>, set: &mut Set) {
    if !granular(ty, value) {
        set.insert(path);
        return;
    }
    match value {
        Value::Object(map) => {
            for (name, child) in map {
                let field = ty.field(name);
                path.push(fieldset::field(name));
                walk_set(&field.ty, child, path, set);
                // A map's keys are members themselves, a struct's fields
                // only through their content.
                if !ty.declares(name) {
                    set.insert(path);
                }
                path.pop();
            }
        }
        Value::Array(_) => {
            for (element, item) in items(ty, Some(value)) {
                path.push(element);
                walk_set(&ty.item(), item, path, set);
                set.insert(path);
                path.pop();
            }
        }
        _ => set.insert(path),
    }
}

/// What a write changed.
#[derive(Debug, Default)]
pub struct Comparison {
    pub added: Set,
    pub modified: Set,
    pub removed: Set,
}

/// Compares the object before (`old`, `None` for a create) and after a
/// write.
pub fn compare(ty: &Type, old: Option<&Value>, new: &Value) -> Comparison {
    let mut out = Comparison::default();
    // Before a create there is the zero object: its always-present fields
    // are there, empty.
    let zero = Value::Object(Map::new());
    walk_compare(
        ty,
        Some(old.unwrap_or(&zero)),
        Some(new),
        &mut Vec::new(),
        &mut out,
    );
    out
}

/// The zero value Go writes for a field that is always present: `{}` for
/// a struct, `null` for a nil list or map (and, as near as matters, for a
/// scalar).
fn empty_like(ty: &Type) -> &'static Value {
    static EMPTY_OBJECT: std::sync::LazyLock<Value> =
        std::sync::LazyLock::new(|| Value::Object(Map::new()));
    static NULL: Value = Value::Null;
    match ty {
        Type::Struct { .. } => &EMPTY_OBJECT,
        _ => &NULL,
    }
}

fn walk_compare(
    ty: &Type,
    old: Option<&Value>,
    new: Option<&Value>,
    path: &mut Vec<Element>,
    out: &mut Comparison,
) {
    let walks_into = |v: Option<&Value>| v.is_some_and(|v| granular(ty, v));
    if !walks_into(old) && !walks_into(new) {
        // A leaf: a scalar, an atomic value, an empty object or list.
        match (old, new) {
            (None, Some(_)) => out.added.insert(path),
            (Some(_), None) => out.removed.insert(path),
            (Some(a), Some(b)) if a != b => out.modified.insert(path),
            _ => {}
        }
        return;
    }
    match (old.or(new), ty) {
        (Some(Value::Array(_)), _) | (_, Type::List { .. }) => {
            let old_items = items(ty, old);
            let new_items = items(ty, new);
            for (element, item) in &old_items {
                let now = new_items
                    .iter()
                    .find(|(e, _)| e == element)
                    .map(|(_, v)| *v);
                path.push(element.clone());
                walk_compare(&ty.item(), Some(item), now, path, out);
                path.pop();
            }
            for (element, item) in &new_items {
                if !old_items.iter().any(|(e, _)| e == element) {
                    path.push(element.clone());
                    walk_compare(&ty.item(), None, Some(item), path, out);
                    path.pop();
                }
            }
        }
        _ => {
            let empty = Map::new();
            let old_map = old.and_then(Value::as_object).unwrap_or(&empty);
            let new_map = new.and_then(Value::as_object).unwrap_or(&empty);
            let names = old_map
                .keys()
                .chain(new_map.keys().filter(|k| !old_map.contains_key(*k)));
            for name in names {
                let field = ty.field(name);
                // Go writes this field in every object that has its parent.
                let implied = field.always_present.then(|| empty_like(&field.ty));
                let old_child = old_map.get(name).or(old.and(implied));
                let new_child = new_map.get(name).or(new.and(implied));
                path.push(fieldset::field(name));
                walk_compare(&field.ty, old_child, new_child, path, out);
                path.pop();
            }
        }
    }
    match (old, new) {
        (None, Some(_)) => out.added.insert(path),
        (Some(_), None) => out.removed.insert(path),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Type {
        Type::of_kind("apps/v1", "Deployment")
    }

    #[test]
    fn an_applied_configuration_owns_its_leaves_and_items() {
        let config = json!({
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {"containers": [
                    {"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}]}
                ]}}
            }
        });
        let set = field_set(&deployment(), &config);
        assert_eq!(
            set.to_fields_v1(),
            json!({
                "f:metadata": {"f:labels": {"f:app": {}}, "f:name": {}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {"f:spec": {"f:containers": {
                        "k:{\"name\":\"nginx\"}": {
                            ".": {}, "f:image": {}, "f:name": {},
                            "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}
                        }
                    }}}
                }
            })
        );
    }

    #[test]
    fn a_create_adds_what_go_does_not_always_write() {
        let new = json!({
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 1,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
                "template": {"spec": {"containers": [{"name": "nginx", "resources": {}}]}}
            }
        });
        let changed = compare(&deployment(), None, &new);
        assert_eq!(
            changed.added.to_fields_v1(),
            json!({
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}, "f:name": {}},
                "f:spec": {
                    "f:replicas": {},
                    "f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}}, "f:type": {}},
                    "f:template": {"f:spec": {"f:containers": {
                        "k:{\"name\":\"nginx\"}": {".": {}, "f:name": {}, "f:resources": {}}
                    }}}
                }
            })
        );
    }

    #[test]
    fn an_update_modifies_and_removes() {
        let old = json!({"spec": {"replicas": 1, "paused": true, "template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}}});
        let new = json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}}});
        let changed = compare(&deployment(), Some(&old), &new);
        assert_eq!(
            changed.modified.to_fields_v1(),
            json!({"f:spec": {"f:replicas": {}}})
        );
        assert_eq!(
            changed.removed.to_fields_v1(),
            json!({"f:spec": {"f:paused": {}}})
        );
        assert!(changed.added.is_empty());
    }
}
