//! What an apply does to the object: merge the applied configuration into
//! it, then remove what the manager applied last time, no longer applies,
//! and nobody else owns.
//!
//! The merge follows the types ([`super::schema`]): structs and granular
//! maps merge field by field, list maps item by item (matched by key),
//! sets as a union; a scalar or an atomic value is replaced whole.

use serde_json::{Map, Value};

use super::compare::item_element;
use super::fieldset::Set;
use super::schema::Type;

/// `live` with `config` merged in.
pub fn merge(ty: &Type, live: Option<&Value>, config: &Value) -> Value {
    let Some(live) = live else {
        return config.clone();
    };
    match (live, config) {
        (Value::Object(old), Value::Object(new)) if !ty.is_atomic() => {
            let mut out = old.clone();
            for (name, value) in new {
                let field = ty.field(name);
                out.insert(name.clone(), merge(&field.ty, old.get(name), value));
            }
            Value::Object(out)
        }
        (Value::Array(old), Value::Array(new))
            if !ty.is_atomic() && matches!(ty, Type::List { .. }) =>
        {
            Value::Array(merge_list(ty, old, new))
        }
        _ => config.clone(),
    }
}

/// Merges two granular lists. The applied items come in the applied
/// order; an item only the live list has stays after the item it
/// followed there.
fn merge_list(ty: &Type, old: &[Value], new: &[Value]) -> Vec<Value> {
    let element = |i: usize, v: &Value| item_element(ty, i, v);
    let old_elements: Vec<_> = old.iter().enumerate().map(|(i, v)| element(i, v)).collect();
    let new_elements: Vec<_> = new.iter().enumerate().map(|(i, v)| element(i, v)).collect();
    let in_new = |e: &Option<String>| new_elements.contains(e);

    // Live-only items, grouped behind the last shared item before them.
    let mut leading = Vec::new();
    let mut following: Vec<(Option<String>, Vec<Value>)> = Vec::new();
    let mut last_shared: Option<Option<String>> = None;
    for (e, item) in old_elements.iter().zip(old) {
        if in_new(e) {
            last_shared = Some(e.clone());
        } else {
            match &last_shared {
                None => leading.push(item.clone()),
                Some(shared) => match following.iter_mut().find(|(s, _)| s == shared) {
                    Some((_, items)) => items.push(item.clone()),
                    None => following.push((shared.clone(), vec![item.clone()])),
                },
            }
        }
    }

    let mut out = leading;
    for (e, item) in new_elements.iter().zip(new) {
        let live = old_elements.iter().position(|o| o == e).map(|i| &old[i]);
        out.push(merge(&ty.item(), live, item));
        if let Some((_, items)) = following.iter().find(|(s, _)| s == e) {
            out.extend(items.iter().cloned());
        }
    }
    out
}

/// Removes from `value` every path of `set` that is a member: a field, a
/// map key or a list item - unless `keep` (what managers still own) has
/// something under it: then only the members below go. A struct or map
/// left empty by the removal goes too, as Go's `omitempty` would drop it.
pub fn remove(ty: &Type, value: &mut Value, set: &Set, keep: Option<&Set>) {
    let kept = |element: &String| keep.and_then(|k| k.child(std::slice::from_ref(element)));
    let whole = |element: &String, subset: &Set| {
        subset.is_member() && kept(element).is_none_or(Set::is_empty)
    };
    match value {
        Value::Object(map) => {
            for (element, subset) in set.children() {
                let Some(name) = element.strip_prefix("f:") else {
                    continue;
                };
                if whole(element, subset) {
                    map.remove(name);
                    continue;
                }
                let field = ty.field(name);
                if let Some(child) = map.get_mut(name) {
                    let was_empty = is_empty(child);
                    remove(&field.ty, child, subset, kept(element));
                    if !was_empty && is_empty(child) {
                        map.remove(name);
                    }
                }
            }
        }
        Value::Array(items) => {
            let item_type = ty.item();
            let mut survivors = Vec::with_capacity(items.len());
            for (i, mut item) in std::mem::take(items).into_iter().enumerate() {
                let Some(element) = item_element(ty, i, &item) else {
                    survivors.push(item);
                    continue;
                };
                match set.child(std::slice::from_ref(&element)) {
                    Some(subset) if whole(&element, subset) => {}
                    Some(subset) => {
                        remove(&item_type, &mut item, subset, kept(&element));
                        survivors.push(item);
                    }
                    None => survivors.push(item),
                }
            }
            *items = survivors;
        }
        _ => {}
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.is_empty(),
        Value::Array(list) => list.is_empty(),
        _ => false,
    }
}

/// Removes `null` fields from structs: Go decodes them as unset.
pub fn drop_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// An empty map, for an object that does not exist yet.
pub fn empty() -> Value {
    Value::Object(Map::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fieldmanager::compare::field_set;
    use serde_json::json;

    fn deployment() -> Type {
        Type::of_kind("apps/v1", "Deployment")
    }

    #[test]
    fn list_maps_merge_item_by_item_and_atomic_values_are_replaced() {
        let live = json!({"spec": {
            "selector": {"matchLabels": {"app": "a", "tier": "x"}},
            "template": {"spec": {"containers": [
                {"name": "a", "image": "a:1", "imagePullPolicy": "Always"},
                {"name": "sidecar", "image": "s:1"}
            ]}}
        }});
        let config = json!({"spec": {
            "selector": {"matchLabels": {"app": "a"}},
            "template": {"spec": {"containers": [{"name": "a", "image": "a:2"}]}}
        }});
        let merged = merge(&deployment(), Some(&live), &config);
        assert_eq!(
            merged,
            json!({"spec": {
                "selector": {"matchLabels": {"app": "a"}},
                "template": {"spec": {"containers": [
                    {"name": "a", "image": "a:2", "imagePullPolicy": "Always"},
                    {"name": "sidecar", "image": "s:1"}
                ]}}
            }})
        );
    }

    #[test]
    fn removing_a_set_drops_fields_items_and_emptied_maps() {
        let mut object = json!({
            "metadata": {"labels": {"a": "1"}, "annotations": {"x": "y"}},
            "spec": {"template": {"spec": {"containers": [
                {"name": "a", "image": "a"}, {"name": "b", "image": "b"}
            ]}}}
        });
        let gone = field_set(
            &deployment(),
            &json!({
                "metadata": {"labels": {"a": "1"}},
                "spec": {"template": {"spec": {"containers": [{"name": "b"}]}}}
            }),
        );
        remove(&deployment(), &mut object, &gone, None);
        assert_eq!(
            object,
            json!({
                "metadata": {"annotations": {"x": "y"}},
                "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "a"}]}}}
            })
        );
    }
}
