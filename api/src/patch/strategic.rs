//! Strategic merge patch, `application/strategic-merge-patch+json`:
//! Kubernetes' merge patch that knows which lists have keys.
//!
//! It reads like a merge patch (send the part you change; `null` deletes a
//! map key) but a list whose field has a merge key (see `mergekeys`) merges
//! item by item: `{"containers": [{"name": "nginx", "image": "nginx:1.27"}]}`
//! changes one container's image and keeps every other container and every
//! other field of that container. Lists of strings with the merge strategy
//! (`finalizers`) are unioned. Other lists replace, as in a merge patch.
//!
//! Directives say what plain JSON cannot:
//! - `{"$patch": "replace"}` in a map or as a list item: replace instead of
//!   merge; `{"$patch": "delete"}` in a map deletes its contents, and as a
//!   list item (`{"name": "sidecar", "$patch": "delete"}`) deletes the item
//!   with that key; `{"$patch": "merge"}` spells out the default.
//! - `"$deleteFromPrimitiveList/finalizers": ["a"]` removes strings from a
//!   merged list of strings.
//! - `"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]` gives
//!   the order of a merged list; items the patch does not name (added by the
//!   server) keep their place relative to the named ones.
//! - `"$retainKeys": ["type"]` drops the map's keys that are not listed, so
//!   switching a Deployment to `type: Recreate` also clears `rollingUpdate`.
//!
//! This follows apimachinery's `strategicpatch.StrategicMergeMapPatch`,
//! including its list ordering rules. One difference: `{"$patch": "merge"}`
//! is accepted (upstream rejects it although the docs describe it).

use serde_json::{Map, Value};

use super::mergekeys::{FieldPath, PatchSchema};
use super::PatchError;

/// The key of the `$patch` directive (`replace`, `delete`, `merge`).
pub(super) const DIRECTIVE: &str = "$patch";
/// Keys of a map to keep; the others are cleared.
pub(super) const RETAIN_KEYS: &str = "$retainKeys";
/// Prefix of `$setElementOrder/<list>`.
pub(super) const SET_ELEMENT_ORDER: &str = "$setElementOrder";
/// Prefix of `$deleteFromPrimitiveList/<list>`.
pub(super) const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

/// Applies a strategic merge patch to `original`, an object of kind `kind`.
///
/// The kind chooses the merge keys: `spec.ports` merges by `port` in a
/// Service, `spec.template.spec.containers` by `name` in a Deployment.
pub fn strategic_merge_patch(
    kind: &str,
    original: &Value,
    patch: &Value,
) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::Malformed(
            "a strategic merge patch must be a JSON object".to_string(),
        ));
    };
    let schema = PatchSchema::for_kind(kind);
    let original = original.as_object().cloned().unwrap_or_default();
    merge_map(&FieldPath::root(&schema), original, patch.clone()).map(Value::Object)
}

/// Merges the patch map `patch` into `original`, at position `at`.
fn merge_map(
    at: &FieldPath,
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(directive) = patch.remove(DIRECTIVE) {
        match directive.as_str() {
            Some("replace") => return merge_map(at, Map::new(), patch),
            Some("delete") => return Ok(Map::new()),
            Some("merge") => {}
            _ => {
                return Err(invalid(
                    at,
                    format!("unknown $patch: {directive} (expected replace, delete or merge)"),
                ))
            }
        }
    }
    apply_retain_keys(at, &mut original, &mut patch)?;
    apply_element_orders(at, &mut original, &mut patch)?;

    // Deletions from primitive lists run after the additions to the same
    // lists, so that one patch can both add and remove strings.
    let mut deletions = Vec::new();
    for (key, value) in patch {
        if key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
            let list = directive_target(at, &key, DELETE_FROM_PRIMITIVE_LIST)?.to_string();
            deletions.push((list, value));
        } else {
            merge_field(at, &mut original, key, value)?;
        }
    }
    for (list, doomed) in deletions {
        let Value::Array(doomed) = doomed else {
            return Err(invalid(
                &at.field(&list),
                format!("{DELETE_FROM_PRIMITIVE_LIST}/{list} must be a list"),
            ));
        };
        if let Some(Value::Array(items)) = original.get_mut(&list) {
            items.retain(|item| !doomed.contains(item));
        }
    }
    Ok(original)
}

/// Merges one key of a patch map into `original`.
fn merge_field(
    at: &FieldPath,
    original: &mut Map<String, Value>,
    key: String,
    value: Value,
) -> Result<(), PatchError> {
    let field = at.field(&key);
    let merged = match (original.remove(&key), value) {
        (_, Value::Null) => None,
        (Some(Value::Object(old)), Value::Object(new)) => {
            Some(Value::Object(merge_map(&field, old, new)?))
        }
        (Some(Value::Array(old)), Value::Array(new)) => {
            Some(Value::Array(merge_list(&field, old, new)?))
        }
        (_, new) => apply_to_absent(&field, new)?,
    };
    if let Some(merged) = merged {
        original.insert(key, merged);
    }
    Ok(())
}

/// What a patch value becomes where the original has nothing to merge
/// with: the value itself, minus its directives and nulls.
fn apply_to_absent(at: &FieldPath, value: Value) -> Result<Option<Value>, PatchError> {
    match value {
        Value::Null => Ok(None),
        Value::Object(map) if map.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") => {
            Ok(None)
        }
        Value::Object(map) => Ok(Some(Value::Object(merge_map(at, Map::new(), map)?))),
        Value::Array(items) => Ok(Some(Value::Array(merge_list(at, Vec::new(), items)?))),
        scalar => Ok(Some(scalar)),
    }
}

/// Merges a patch list into the list at `at`, by the field's strategy.
fn merge_list(
    at: &FieldPath,
    original: Vec<Value>,
    patch: Vec<Value>,
) -> Result<Vec<Value>, PatchError> {
    match at.strategy().filter(|s| s.merges_list()) {
        Some(strategy) => match strategy.merge_key() {
            Some(key) => merge_keyed_list(at, key, original, patch),
            None => merge_set(at, original, patch),
        },
        // An atomic list: the patch's list replaces it.
        None => patch
            .into_iter()
            .filter(|item| item.get(DIRECTIVE).is_none())
            .map(|item| match item {
                Value::Object(map) => merge_map(at, Map::new(), map).map(Value::Object),
                other => Ok(other),
            })
            .collect(),
    }
}

/// Merges a list of objects by `key`: patch items merge into the original
/// item with the same key or are added; `$patch: delete` items remove the
/// item with their key; a `$patch: replace` item makes the patch's items
/// the whole list.
fn merge_keyed_list(
    at: &FieldPath,
    key: &'static str,
    original: Vec<Value>,
    patch: Vec<Value>,
) -> Result<Vec<Value>, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let mut items = into_objects(at, key, original)?;
    let mut additions = Vec::new();
    let mut replace = false;
    for mut item in into_objects(at, key, patch)? {
        let Some(directive) = item.remove(DIRECTIVE) else {
            additions.push(item);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let doomed = merge_key_value(at, key, &item)?;
                items.retain(|old| old.get(key) != Some(&doomed));
            }
            Some("replace") => replace = true,
            // An explicit merge of one item; a bare `{"$patch": "merge"}`
            // marker has nothing to merge.
            Some("merge") if item.contains_key(key) => additions.push(item),
            Some("merge") => {}
            _ => {
                return Err(invalid(
                    at,
                    format!("unknown $patch: {directive} in a list (expected delete or replace)"),
                ))
            }
        }
    }
    if replace {
        items.clear();
    }

    let live: Vec<Value> = items
        .iter()
        .filter_map(|item| item.get(key).cloned())
        .collect();
    let mut wanted = Vec::with_capacity(additions.len());
    for addition in additions {
        let value = merge_key_value(at, key, &addition)?;
        let item_at = at.item(key, &value);
        match items.iter().position(|old| old.get(key) == Some(&value)) {
            Some(i) => {
                let old = std::mem::take(&mut items[i]);
                items[i] = merge_map(&item_at, old, addition)?;
            }
            None => items.push(merge_map(&item_at, Map::new(), addition)?),
        }
        wanted.push(value);
    }
    let merged = items.into_iter().map(Value::Object).collect();
    Ok(arrange(merged, Identity::MergeKey(key), &wanted, &live))
}

/// Merges a list of strings (or numbers) as a set: the patch's values are
/// added, none is repeated.
fn merge_set(
    at: &FieldPath,
    original: Vec<Value>,
    patch: Vec<Value>,
) -> Result<Vec<Value>, PatchError> {
    if let Some(item) = original
        .iter()
        .chain(&patch)
        .find(|v| v.is_object() || v.is_array())
    {
        return Err(unmergeable(
            at,
            format!("expected a list of strings, found {item}"),
        ));
    }
    let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
    for value in original.iter().chain(&patch) {
        if !merged.contains(value) {
            merged.push(value.clone());
        }
    }
    Ok(arrange(merged, Identity::Itself, &patch, &original))
}

/// What identifies an item of a merged list.
#[derive(Debug, Clone, Copy)]
enum Identity {
    /// The value of the merge key (`name` of a container).
    MergeKey(&'static str),
    /// The item itself (a finalizer string).
    Itself,
}

impl Identity {
    fn of(self, item: &Value) -> Option<&Value> {
        match self {
            Identity::MergeKey(key) => item.get(key),
            Identity::Itself => Some(item),
        }
    }
}

/// Orders a merged list as apimachinery does: the items the patch names
/// come in the patch's order (`wanted`); the others, which only the live
/// object has, keep their live order, and each goes before the first named
/// item that followed it in the live list (`live`). So a sidecar the server
/// injected stays next to the container it was next to.
fn arrange(merged: Vec<Value>, identity: Identity, wanted: &[Value], live: &[Value]) -> Vec<Value> {
    let position = |list: &[Value], item: &Value| {
        identity
            .of(item)
            .and_then(|id| list.iter().position(|other| other == id))
    };
    let (mut named, mut server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|item| position(wanted, item).is_some());
    named.sort_by_key(|item| position(wanted, item));
    server_only.sort_by_key(|item| position(live, item).unwrap_or(usize::MAX));

    let mut arranged = Vec::with_capacity(named.len() + server_only.len());
    let mut named = named.into_iter().peekable();
    let mut server_only = server_only.into_iter().peekable();
    loop {
        let server_first = match (server_only.peek(), named.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(s), Some(n)) => {
                matches!((position(live, s), position(live, n)), (Some(s), Some(n)) if s < n)
            }
        };
        let next = if server_first {
            server_only.next()
        } else {
            named.next()
        };
        arranged.extend(next);
    }
    arranged
}

/// `$retainKeys`: clears the original's keys that are not listed. Every
/// key the patch sets must be listed, or the patch contradicts itself.
fn apply_retain_keys(
    at: &FieldPath,
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), PatchError> {
    let Some(retained) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retained) = retained else {
        return Err(invalid(
            at,
            format!("{RETAIN_KEYS} must be a list of field names"),
        ));
    };
    let keep: Vec<&str> = retained.iter().filter_map(Value::as_str).collect();
    for (key, value) in patch.iter() {
        let is_directive =
            key.starts_with(DELETE_FROM_PRIMITIVE_LIST) || key.starts_with(SET_ELEMENT_ORDER);
        if !value.is_null() && !is_directive && !keep.contains(&key.as_str()) {
            return Err(invalid(
                at,
                format!("the patch sets {key} but {RETAIN_KEYS} does not keep it"),
            ));
        }
    }
    original.retain(|key, _| keep.contains(&key.as_str()));
    Ok(())
}

/// `$setElementOrder/<list>`: merges the list (if the patch has it) and
/// puts the result in the given order. Runs before the other keys, and
/// takes the list out of `patch` so it is not merged twice.
fn apply_element_orders(
    at: &FieldPath,
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), PatchError> {
    let directives: Vec<String> = patch
        .keys()
        .filter(|key| key.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for directive in directives {
        let order = patch.remove(&directive).unwrap_or_default();
        let name = directive_target(at, &directive, SET_ELEMENT_ORDER)?.to_string();
        let field = at.field(&name);
        let Value::Array(order) = order else {
            return Err(invalid(&field, format!("{directive} must be a list")));
        };
        // Only merged lists have an order to keep; an atomic list is
        // replaced in the patch's order anyway.
        let Some(strategy) = field.strategy().filter(|s| s.merges_list()) else {
            continue;
        };
        let identity = match strategy.merge_key() {
            Some(key) => Identity::MergeKey(key),
            None => Identity::Itself,
        };
        let wanted = order
            .iter()
            .map(|item| {
                identity.of(item).cloned().ok_or_else(|| {
                    invalid(&field, format!("{directive} item {item} has no merge key"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;

        let not_a_list = |value: Option<&Value>| value.is_some_and(|v| !v.is_array());
        if not_a_list(patch.get(&name)) || not_a_list(original.get(&name)) {
            // The list is being replaced by something else: no order.
            continue;
        }
        let patch_list = patch.remove(&name).map(into_list);
        let original_list = original.remove(&name).map(into_list);
        if let Some(patch_list) = &patch_list {
            check_order(&field, identity, patch_list, &wanted, &directive)?;
        }
        let live: Vec<Value> = original_list
            .iter()
            .flatten()
            .filter_map(|item| identity.of(item).cloned())
            .collect();
        let merged = match (original_list, patch_list) {
            (None, None) => continue,
            (Some(original_list), None) => original_list,
            (original_list, Some(patch_list)) => {
                merge_list(&field, original_list.unwrap_or_default(), patch_list)?
            }
        };
        original.insert(
            name,
            Value::Array(arrange(merged, identity, &wanted, &live)),
        );
    }
    Ok(())
}

/// The items a patch list names must appear in `$setElementOrder` in the
/// same relative order.
fn check_order(
    field: &FieldPath,
    identity: Identity,
    patch_list: &[Value],
    wanted: &[Value],
    directive: &str,
) -> Result<(), PatchError> {
    let mut named = Vec::new();
    for item in patch_list
        .iter()
        .filter(|item| item.get(DIRECTIVE).is_none())
    {
        match identity.of(item) {
            Some(id) => named.push(id),
            None => return Err(unmergeable(field, format!("item {item} has no merge key"))),
        }
    }
    let mut named = named.into_iter().peekable();
    for id in wanted {
        if named.peek() == Some(&id) {
            named.next();
        }
    }
    match named.next() {
        None => Ok(()),
        Some(id) => Err(invalid(
            field,
            format!("{id} is in the patch list but out of the order {directive} gives"),
        )),
    }
}

/// The list a directive such as `$setElementOrder/containers` names.
fn directive_target<'k>(at: &FieldPath, key: &'k str, prefix: &str) -> Result<&'k str, PatchError> {
    key.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|name| !name.is_empty())
        .ok_or_else(|| {
            invalid(
                at,
                format!("{key} does not name a list (expected {prefix}/<field>)"),
            )
        })
}

fn into_list(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        _ => Vec::new(),
    }
}

/// The items of a list merged by `key`, which must all be objects.
fn into_objects(
    at: &FieldPath,
    key: &str,
    list: Vec<Value>,
) -> Result<Vec<Map<String, Value>>, PatchError> {
    list.into_iter()
        .map(|item| match item {
            Value::Object(map) => Ok(map),
            other => Err(unmergeable(
                at,
                format!("expected a list of objects merged by {key}, found {other}"),
            )),
        })
        .collect()
}

fn merge_key_value(
    at: &FieldPath,
    key: &str,
    item: &Map<String, Value>,
) -> Result<Value, PatchError> {
    item.get(key).cloned().ok_or_else(|| {
        unmergeable(
            at,
            format!(
                "item {} has no merge key \"{key}\"",
                Value::Object(item.clone())
            ),
        )
    })
}

pub(super) fn invalid(at: &FieldPath, reason: impl Into<String>) -> PatchError {
    PatchError::InvalidDirective {
        path: at.shown(),
        reason: reason.into(),
    }
}

pub(super) fn unmergeable(at: &FieldPath, reason: impl Into<String>) -> PatchError {
    PatchError::Unmergeable {
        path: at.shown(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(kind: &str, original: Value, patch: Value) -> Value {
        strategic_merge_patch(kind, &original, &patch).unwrap_or_else(|e| panic!("{e}"))
    }

    fn deployment(containers: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "ngx-dep"},
               "spec": {"replicas": 2, "template": {"spec": {"containers": containers}}}})
    }

    fn containers_of(deploy: &Value) -> &Value {
        &deploy["spec"]["template"]["spec"]["containers"]
    }

    #[test]
    fn deployment_containers_merge_by_name() {
        let live = deployment(json!([
            {"name": "nginx", "image": "nginx:alpine",
             "ports": [{"containerPort": 80, "protocol": "TCP"}]},
            {"name": "sidecar", "image": "busybox"}
        ]));
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "nginx", "image": "nginx:1.27-alpine"}]}}}});
        let patched = smp("Deployment", live, patch);
        assert_eq!(
            containers_of(&patched),
            &json!([
                {"name": "nginx", "image": "nginx:1.27-alpine",
                 "ports": [{"containerPort": 80, "protocol": "TCP"}]},
                {"name": "sidecar", "image": "busybox"}
            ])
        );
        assert_eq!(patched["spec"]["replicas"], json!(2));
    }

    #[test]
    fn the_same_list_replaces_in_a_kind_without_merge_keys() {
        // A ConfigMap has no `spec.template.spec.containers`: plain merge.
        let live = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a"}, {"name": "b"}]}}}});
        let patch =
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "x": 1}]}}}});
        let patched = smp("ConfigMap", live, patch);
        assert_eq!(containers_of(&patched), &json!([{"name": "a", "x": 1}]));
    }

    #[test]
    fn container_ports_merge_by_container_port() {
        let live = json!({"spec": {"containers": [{"name": "web", "ports": [
            {"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443}]}]}});
        let patch = json!({"spec": {"containers": [{"name": "web", "ports": [
            {"containerPort": 443, "name": "https"}]}]}});
        let patched = smp("Pod", live, patch);
        assert_eq!(
            patched["spec"]["containers"][0]["ports"],
            json!([{"containerPort": 80, "protocol": "TCP"},
                   {"containerPort": 443, "name": "https"}])
        );
    }

    #[test]
    fn service_ports_merge_by_port() {
        let live = json!({"kind": "Service", "spec": {"ports": [
            {"port": 80, "targetPort": 80, "protocol": "TCP"},
            {"port": 443, "targetPort": 443, "protocol": "TCP"}]}});
        let patch = json!({"spec": {"ports": [
            {"port": 80, "targetPort": 8080}, {"port": 8443, "protocol": "TCP"}]}});
        let patched = smp("Service", live, patch);
        // Without $setElementOrder, apimachinery puts the patch's items in
        // the patch's order and each live-only item before the first patch
        // item it preceded in the live list: 443 preceded nothing.
        assert_eq!(
            patched["spec"]["ports"],
            json!([{"port": 80, "targetPort": 8080, "protocol": "TCP"},
                   {"port": 8443, "protocol": "TCP"},
                   {"port": 443, "targetPort": 443, "protocol": "TCP"}])
        );
    }

    #[test]
    fn patch_delete_removes_a_container() {
        let live = deployment(json!([{"name": "nginx"}, {"name": "sidecar"}, {"name": "logs"}]));
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "sidecar", "$patch": "delete"}]}}}});
        let patched = smp("Deployment", live, patch);
        assert_eq!(
            containers_of(&patched),
            &json!([{"name": "nginx"}, {"name": "logs"}])
        );
    }

    #[test]
    fn patch_replace_in_a_list_and_on_a_map() {
        let live = deployment(json!([{"name": "nginx", "image": "a"}, {"name": "sidecar"}]));
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"$patch": "replace"}, {"name": "only", "image": "b"}]}}}});
        let patched = smp("Deployment", live, patch);
        assert_eq!(
            containers_of(&patched),
            &json!([{"name": "only", "image": "b"}])
        );

        let live = json!({"spec": {"selector": {"app": "a", "tier": "web"}, "type": "ClusterIP"}});
        let patch = json!({"spec": {"selector": {"$patch": "replace", "app": "b"}}});
        let patched = smp("Service", live, patch);
        assert_eq!(
            patched["spec"],
            json!({"selector": {"app": "b"}, "type": "ClusterIP"})
        );
    }

    #[test]
    fn patch_delete_and_merge_on_maps() {
        let live = json!({"metadata": {"labels": {"a": "1"}, "name": "x"}});
        let patched = smp(
            "Pod",
            live.clone(),
            json!({"metadata": {"labels": {"$patch": "delete"}}}),
        );
        assert_eq!(patched, json!({"metadata": {"labels": {}, "name": "x"}}));
        let patched = smp(
            "Pod",
            live,
            json!({"metadata": {"labels": {"$patch": "merge", "b": "2"}}}),
        );
        assert_eq!(patched["metadata"]["labels"], json!({"a": "1", "b": "2"}));
        assert_eq!(
            smp("Pod", json!({"a": 1}), json!({"$patch": "delete"})),
            json!({})
        );
    }

    #[test]
    fn nulls_delete_and_are_dropped_where_nothing_is_deleted() {
        let live = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
        let patch =
            json!({"metadata": {"labels": {"a": null}, "annotations": {"x": "1", "y": null}}});
        let patched = smp("ConfigMap", live, patch);
        assert_eq!(
            patched,
            json!({"metadata": {"labels": {"b": "2"}, "annotations": {"x": "1"}}})
        );
    }

    #[test]
    fn set_element_order_reorders_and_keeps_server_only_items_in_place() {
        // Live order 1 2 9 3 4, where 9 is something only the server has
        // (an injected sidecar); the patch asks for 2 1 4 3.
        let live = deployment(json!([
            {"name": "c1", "other": "a"}, {"name": "c2"}, {"name": "c9"},
            {"name": "c3"}, {"name": "c4"}]));
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [
                {"name": "c2"}, {"name": "c1"}, {"name": "c4"}, {"name": "c3"}]}}}});
        let patched = smp("Deployment", live, patch);
        assert_eq!(
            containers_of(&patched),
            &json!([{"name": "c2"}, {"name": "c1", "other": "a"}, {"name": "c9"},
                    {"name": "c4"}, {"name": "c3"}])
        );
    }

    #[test]
    fn set_element_order_places_new_items() {
        let live = deployment(json!([{"name": "nginx"}]));
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "nginx"}],
            "containers": [{"name": "sidecar", "image": "busybox"}]}}}});
        let patched = smp("Deployment", live, patch);
        assert_eq!(
            containers_of(&patched),
            &json!([{"name": "sidecar", "image": "busybox"}, {"name": "nginx"}])
        );
    }

    #[test]
    fn set_element_order_must_agree_with_the_patch_list() {
        let live = deployment(json!([{"name": "a"}, {"name": "b"}]));
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "b", "x": 1}, {"name": "a", "x": 1}]}}}});
        let err = strategic_merge_patch("Deployment", &live, &patch).unwrap_err();
        assert!(err.is_bad_request(), "{err}");
        assert!(
            err.to_string().contains("spec.template.spec.containers"),
            "{err}"
        );
    }

    #[test]
    fn retain_keys_clears_what_is_not_listed() {
        let live = json!({"spec": {"replicas": 2, "strategy": {"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}}});
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
        let patched = smp("Deployment", live, patch);
        assert_eq!(
            patched["spec"],
            json!({"replicas": 2, "strategy": {"type": "Recreate"}})
        );
    }

    #[test]
    fn retain_keys_in_volumes_switches_the_volume_source() {
        let live = json!({"spec": {"volumes": [
            {"name": "conf", "configMap": {"name": "ngx-conf", "defaultMode": 420}},
            {"name": "data", "emptyDir": {}}]}});
        let patch = json!({"spec": {"volumes": [
            {"name": "conf", "secret": {"secretName": "s"}, "$retainKeys": ["name", "secret"]}]}});
        let patched = smp("Pod", live, patch);
        assert_eq!(
            patched["spec"]["volumes"],
            json!([{"name": "conf", "secret": {"secretName": "s"}},
                   {"name": "data", "emptyDir": {}}])
        );
    }

    #[test]
    fn retain_keys_must_cover_the_patch() {
        let live = json!({"spec": {"strategy": {"type": "RollingUpdate"}}});
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"],
            "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let err = strategic_merge_patch("Deployment", &live, &patch).unwrap_err();
        assert!(
            matches!(&err, PatchError::InvalidDirective { path, reason }
                if path == "spec.strategy" && reason.contains("rollingUpdate")),
            "{err}"
        );
    }

    #[test]
    fn finalizers_are_a_set() {
        let live = json!({"metadata": {"finalizers": ["a", "b"]}});
        let patched = smp(
            "Namespace",
            live.clone(),
            json!({"metadata": {"finalizers": ["c", "a"]}}),
        );
        let mut finalizers: Vec<String> =
            serde_json::from_value(patched["metadata"]["finalizers"].clone()).unwrap();
        finalizers.sort();
        assert_eq!(finalizers, ["a", "b", "c"]);

        let patch = json!({"metadata": {
            "$setElementOrder/finalizers": ["a", "c"],
            "$deleteFromPrimitiveList/finalizers": ["b"],
            "finalizers": ["c"]}});
        let patched = smp("Namespace", live, patch);
        assert_eq!(patched["metadata"]["finalizers"], json!(["a", "c"]));
    }

    #[test]
    fn delete_from_a_missing_primitive_list_adds_nothing() {
        let live = json!({"metadata": {"name": "x"}});
        let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}});
        assert_eq!(smp("Pod", live.clone(), patch), live);
    }

    #[test]
    fn owner_references_merge_by_uid() {
        let live = json!({"metadata": {"ownerReferences": [
            {"uid": "u1", "kind": "ReplicaSet", "name": "rs-1"}]}});
        let patch = json!({"metadata": {"ownerReferences": [
            {"uid": "u1", "controller": true}, {"uid": "u2", "kind": "Node", "name": "n1"}]}});
        let patched = smp("Pod", live, patch);
        assert_eq!(
            patched["metadata"]["ownerReferences"],
            json!([{"uid": "u1", "kind": "ReplicaSet", "name": "rs-1", "controller": true},
                   {"uid": "u2", "kind": "Node", "name": "n1"}])
        );
    }

    #[test]
    fn status_conditions_merge_by_type() {
        let live = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False"}, {"type": "MemoryPressure", "status": "False"}],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}});
        let patch = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "Hostname", "address": "n1"}]}});
        let patched = smp("Node", live, patch);
        assert_eq!(
            patched["status"]["conditions"],
            json!([{"type": "Ready", "status": "True"}, {"type": "MemoryPressure", "status": "False"}])
        );
        assert_eq!(patched["status"]["addresses"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn atomic_lists_are_replaced() {
        let live = json!({"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]}});
        let patch = json!({"spec": {"taints": [{"key": "b", "effect": "NoSchedule"}]}});
        assert_eq!(smp("Node", live, patch.clone()), patch);

        let live = json!({"subsets": [{"addresses": [{"ip": "10.244.1.5"}]}]});
        let patch = json!({"subsets": [{"addresses": [{"ip": "10.244.2.7"}]}]});
        assert_eq!(smp("Endpoints", live, patch.clone()), patch);

        let live = json!({"spec": {"tolerations": [{"key": "a"}, {"key": "b"}]}});
        let patch = json!({"spec": {"tolerations": [{"key": "a", "operator": "Exists"}]}});
        assert_eq!(smp("Pod", live, patch.clone()), patch);
    }

    #[test]
    fn new_fields_lose_their_directives() {
        let live = json!({"metadata": {"name": "x"}});
        let patch = json!({"spec": {"containers": [
            {"name": "a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "$patch": "delete"}]}]}});
        let patched = smp("Pod", live, patch);
        assert_eq!(
            patched["spec"],
            json!({"containers": [{"name": "a", "env": [{"name": "X", "value": "1"}]}]})
        );
    }

    #[test]
    fn unmergeable_patches_say_where() {
        let live = deployment(json!([{"name": "nginx"}]));
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}});
        let err = strategic_merge_patch("Deployment", &live, &patch).unwrap_err();
        assert!(
            matches!(&err, PatchError::Unmergeable { path, reason }
                if path == "spec.template.spec.containers" && reason.contains("\"name\"")),
            "{err}"
        );
        assert!(!err.is_bad_request());

        let patch = json!({"spec": {"template": {"spec": {"containers": ["nginx"]}}}});
        let err = strategic_merge_patch("Deployment", &live, &patch).unwrap_err();
        assert!(matches!(err, PatchError::Unmergeable { .. }), "{err}");

        let live =
            json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80}]}]}});
        let patch = json!({"spec": {"containers": [{"name": "a", "ports": [{"name": "http"}]}]}});
        let err = strategic_merge_patch("Pod", &live, &patch).unwrap_err();
        assert!(
            err.to_string().contains("spec.containers[name=a].ports"),
            "{err}"
        );
    }

    #[test]
    fn unknown_directives_are_bad_requests() {
        let live = json!({"metadata": {"name": "x"}});
        for patch in [
            json!({"metadata": {"$patch": "frob"}}),
            json!({"metadata": {"$retainKeys": "name"}}),
            json!({"metadata": {"$setElementOrder/finalizers": "a"}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}),
            json!({"metadata": {"$setElementOrder": []}}),
        ] {
            let err = strategic_merge_patch("Pod", &live, &patch).unwrap_err();
            assert!(err.is_bad_request(), "{patch}: {err}");
        }
        let err = strategic_merge_patch("Pod", &live, &json!([1])).unwrap_err();
        assert!(matches!(err, PatchError::Malformed(_)));
    }
}
