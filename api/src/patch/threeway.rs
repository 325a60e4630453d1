//! The patch `kubectl apply` sends: a three-way diff.
//!
//! `kubectl apply -f ngx-svc.yml` must turn the live Service into what the
//! file says without undoing what others did to it: the apiserver picked a
//! `clusterIP`, a controller writes `status`, someone ran `kubectl label`.
//! A two-way diff (live -> file) cannot tell "the user removed this field"
//! from "the user never wrote this field", so kubectl keeps a third input,
//! the manifest it applied last time (the
//! [`LAST_APPLIED_ANNOTATION`](super::LAST_APPLIED_ANNOTATION)). The patch
//! is then:
//!
//! - **changes**: every field of the new manifest that the live object
//!   lacks or has differently (live -> new, ignoring what only live has);
//! - **deletions**: every field the last applied manifest had and the new
//!   one does not (last -> new, only removals): `null` for a map key,
//!   `{"name": "x", "$patch": "delete"}` for a keyed list item,
//!   `$deleteFromPrimitiveList/<field>` for strings of a merged list.
//!
//! Keyed lists that change also get `$setElementOrder/<field>`, so the
//! server keeps the manifest's order. An empty patch `{}` means the live
//! object already matches: kubectl prints `unchanged`.
//!
//! This follows apimachinery's `strategicpatch.CreateThreeWayMergePatch`
//! with `overwrite=true`, as `kubectl apply` calls it.

use serde_json::{json, Map, Value};

use super::json_equal;
use super::mergekeys::{FieldPath, PatchSchema, Strategy};
use super::strategic::{
    unmergeable, DELETE_FROM_PRIMITIVE_LIST, DIRECTIVE, RETAIN_KEYS, SET_ELEMENT_ORDER,
};
use super::PatchError;

/// Computes the strategic merge patch `kubectl apply` sends to make
/// `current` (the live object) match `modified` (the manifest, with its
/// last-applied annotation already set), given the manifest applied last
/// time. Returns `{}` when nothing changes.
///
/// Without `last_applied` (an object created by `kubectl create`), nothing
/// is deleted: only fields the manifest sets are changed.
pub fn three_way_strategic_patch(
    kind: &str,
    last_applied: Option<&Value>,
    modified: &Value,
    current: &Value,
) -> Result<Value, PatchError> {
    let Value::Object(modified) = modified else {
        return Err(PatchError::Malformed(
            "the configuration to apply must be a JSON object".to_string(),
        ));
    };
    let schema = PatchSchema::for_kind(kind);
    let root = FieldPath::root(&schema);
    let nothing = Map::new();
    let current = current.as_object().unwrap_or(&nothing);
    let changes = diff_maps(&root, current, modified, Diff::CHANGES)?;
    let deletions = match last_applied.and_then(Value::as_object) {
        Some(last_applied) => diff_maps(&root, last_applied, modified, Diff::DELETIONS)?,
        None => Map::new(),
    };
    Ok(Value::Object(combine(&root, deletions, changes)))
}

/// Which half of the three-way patch a diff computes.
#[derive(Debug, Clone, Copy)]
struct Diff {
    /// Record fields that were added or changed.
    changes: bool,
    /// Record fields that were removed.
    deletions: bool,
    /// The map being diffed has a retainKeys strategy: list the keys kept.
    retain_keys: bool,
}

impl Diff {
    /// live -> manifest: what to set. Fields only the live object has are
    /// the server's (or another client's), so they are not removed.
    const CHANGES: Diff = Diff {
        changes: true,
        deletions: false,
        retain_keys: false,
    };
    /// last applied -> manifest: what the user took out.
    const DELETIONS: Diff = Diff {
        changes: false,
        deletions: true,
        retain_keys: false,
    };
}

/// The strategic merge patch from the map `original` to the map `modified`.
fn diff_maps(
    at: &FieldPath,
    original: &Map<String, Value>,
    modified: &Map<String, Value>,
    diff: Diff,
) -> Result<Map<String, Value>, PatchError> {
    let mut patch = Map::new();
    let mut retained = Vec::new();
    for (key, new) in modified {
        if diff.retain_keys && !new.is_null() {
            retained.push(key.clone());
        }
        let Some(old) = original.get(key) else {
            if diff.changes {
                patch.insert(key.clone(), new.clone());
            }
            continue;
        };
        let field = at.field(key);
        match (old, new) {
            (Value::Object(old), Value::Object(new)) => {
                let retain_keys = field.strategy().is_some_and(Strategy::retains_keys);
                let nested = diff_maps(
                    &field,
                    old,
                    new,
                    Diff {
                        retain_keys,
                        ..diff
                    },
                )?;
                if !nested.is_empty() {
                    patch.insert(key.clone(), Value::Object(nested));
                }
            }
            (Value::Array(old), Value::Array(new)) => {
                diff_list_field(&field, key, old, new, diff, &mut patch)?;
            }
            _ => {
                if diff.changes && !json_equal(old, new) {
                    patch.insert(key.clone(), new.clone());
                }
            }
        }
    }
    if diff.deletions {
        for key in original.keys() {
            if !modified.contains_key(key) {
                patch.insert(key.clone(), Value::Null);
            }
        }
    }
    // A retainKeys map lists what it keeps whenever it changes, or when the
    // original has keys the manifest dropped (a defaulted `rollingUpdate`
    // after switching to `type: Recreate`).
    let has_extra_keys = original
        .iter()
        .any(|(key, value)| !value.is_null() && !modified.contains_key(key));
    if !retained.is_empty() && (!patch.is_empty() || has_extra_keys) {
        retained.sort();
        patch.insert(RETAIN_KEYS.to_string(), json!(retained));
    }
    Ok(patch)
}

/// Diffs the list field `key`: merged lists by item, atomic lists whole.
fn diff_list_field(
    field: &FieldPath,
    key: &str,
    old: &[Value],
    new: &[Value],
    diff: Diff,
    patch: &mut Map<String, Value>,
) -> Result<(), PatchError> {
    let Some(strategy) = field.strategy().filter(|s| s.merges_list()) else {
        if diff.changes && !json_equal(&Value::from(old), &Value::from(new)) {
            patch.insert(key.to_string(), Value::from(new));
        }
        return Ok(());
    };
    let diff = Diff {
        retain_keys: strategy.retains_keys(),
        ..diff
    };
    let lists = match strategy.merge_key() {
        Some(merge_key) => diff_keyed_lists(field, merge_key, old, new, diff)?,
        None => diff_sets(field, old, new, diff)?,
    };
    if !lists.items.is_empty() {
        patch.insert(key.to_string(), Value::Array(lists.items));
    }
    if !lists.removed_strings.is_empty() {
        let name = format!("{DELETE_FROM_PRIMITIVE_LIST}/{key}");
        patch.insert(name, Value::Array(lists.removed_strings));
    }
    if !lists.order.is_empty() {
        let name = format!("{SET_ELEMENT_ORDER}/{key}");
        patch.insert(name, Value::Array(lists.order));
    }
    Ok(())
}

/// The patch of one merged list: its items (changed, added or deleted),
/// the strings removed from a merged string list, and the order to keep.
#[derive(Default)]
struct ListPatch {
    items: Vec<Value>,
    removed_strings: Vec<Value>,
    order: Vec<Value>,
}

/// Diffs a list of objects merged by `merge_key`.
fn diff_keyed_lists(
    at: &FieldPath,
    merge_key: &str,
    original: &[Value],
    modified: &[Value],
    diff: Diff,
) -> Result<ListPatch, PatchError> {
    if original.is_empty() {
        return Ok(ListPatch {
            items: if diff.changes {
                modified.to_vec()
            } else {
                Vec::new()
            },
            ..ListPatch::default()
        });
    }
    let original = keyed_items(at, merge_key, original)?;
    let modified = keyed_items(at, merge_key, modified)?;

    let mut items = Vec::new();
    for (id, new) in &modified {
        match original.iter().find(|(old_id, _)| old_id == id) {
            Some((_, old)) => {
                let mut nested = diff_maps(&at.item(merge_key, id), old, new, diff)?;
                if !nested.is_empty() {
                    nested.insert(merge_key.to_string(), (*id).clone());
                    items.push(Value::Object(nested));
                }
            }
            None if diff.changes => items.push(Value::Object((*new).clone())),
            None => {}
        }
    }
    if diff.deletions {
        for (id, _) in &original {
            if !modified.iter().any(|(new_id, _)| new_id == id) {
                items.push(json!({ merge_key: id, DIRECTIVE: "delete" }));
            }
        }
    }

    // kubectl sends the order whenever the list's content or order changes.
    let same_order = original.len() == modified.len()
        && original
            .iter()
            .zip(&modified)
            .all(|((a, _), (b, _))| a == b);
    let order = if (diff.changes && (!items.is_empty() || !same_order))
        || (diff.deletions && !items.is_empty())
    {
        modified
            .iter()
            .map(|(id, _)| json!({ merge_key: id }))
            .collect()
    } else {
        Vec::new()
    };
    Ok(ListPatch {
        items,
        removed_strings: Vec::new(),
        order,
    })
}

/// Diffs a list of strings merged as a set (`finalizers`).
fn diff_sets(
    at: &FieldPath,
    original: &[Value],
    modified: &[Value],
    diff: Diff,
) -> Result<ListPatch, PatchError> {
    if original.is_empty() {
        return Ok(ListPatch {
            items: if diff.changes {
                modified.to_vec()
            } else {
                Vec::new()
            },
            ..ListPatch::default()
        });
    }
    if let Some(item) = original
        .iter()
        .chain(modified)
        .find(|v| v.is_object() || v.is_array())
    {
        return Err(unmergeable(
            at,
            format!("expected a list of strings, found {item}"),
        ));
    }
    let mut added = Vec::new();
    if diff.changes {
        for value in modified {
            if !original.contains(value) && !added.contains(value) {
                added.push(value.clone());
            }
        }
    }
    let mut removed = Vec::new();
    if diff.deletions {
        for value in original {
            if !modified.contains(value) && !removed.contains(value) {
                removed.push(value.clone());
            }
        }
    }
    let order = if (diff.deletions && !removed.is_empty()) || (diff.changes && original != modified)
    {
        modified.to_vec()
    } else {
        Vec::new()
    };
    Ok(ListPatch {
        items: added,
        removed_strings: removed,
        order,
    })
}

/// An item of a keyed list: its merge key value and its fields.
type KeyedItem<'v> = (&'v Value, &'v Map<String, Value>);

/// Pairs each item of a keyed list with its merge key value.
fn keyed_items<'v>(
    at: &FieldPath,
    merge_key: &str,
    list: &'v [Value],
) -> Result<Vec<KeyedItem<'v>>, PatchError> {
    list.iter()
        .map(|item| match item {
            Value::Object(map) => map.get(merge_key).map(|id| (id, map)).ok_or_else(|| {
                unmergeable(at, format!("item {item} has no merge key \"{merge_key}\""))
            }),
            other => Err(unmergeable(
                at,
                format!("expected a list of objects merged by {merge_key}, found {other}"),
            )),
        })
        .collect()
}

/// Puts the deletions and the changes into one patch. They never set the
/// same field (deletions name fields the manifest lacks, changes fields it
/// has), so this is a union; a keyed list both touch is joined item by item
/// and ordered by its `$setElementOrder`, deletions last.
fn combine(
    at: &FieldPath,
    deletions: Map<String, Value>,
    changes: Map<String, Value>,
) -> Map<String, Value> {
    let mut combined = deletions;
    for (key, value) in changes {
        let field = at.field(&key);
        let merge_key = field.strategy().and_then(Strategy::merge_key);
        let merged = match (combined.remove(&key), value, merge_key) {
            (Some(Value::Object(deleted)), Value::Object(changed), _) => {
                Value::Object(combine(&field, deleted, changed))
            }
            (Some(Value::Array(deleted)), Value::Array(changed), Some(merge_key)) => {
                let order = combined.get(&format!("{SET_ELEMENT_ORDER}/{key}"));
                Value::Array(combine_keyed_lists(
                    &field, merge_key, deleted, changed, order,
                ))
            }
            (_, value, _) => value,
        };
        combined.insert(key, merged);
    }
    combined
}

fn combine_keyed_lists(
    at: &FieldPath,
    merge_key: &str,
    deleted: Vec<Value>,
    changed: Vec<Value>,
    order: Option<&Value>,
) -> Vec<Value> {
    let mut items = changed;
    let mut deletes = Vec::new();
    for item in deleted {
        if item.get(DIRECTIVE).is_some() {
            deletes.push(item);
            continue;
        }
        let id = item.get(merge_key).cloned().unwrap_or_default();
        match items
            .iter()
            .position(|other| other.get(merge_key) == Some(&id))
        {
            Some(i) => {
                if let (Value::Object(deleted), Value::Object(changed)) =
                    (item, std::mem::take(&mut items[i]))
                {
                    items[i] = Value::Object(combine(&at.item(merge_key, &id), deleted, changed));
                }
            }
            None => items.push(item),
        }
    }
    if let Some(Value::Array(order)) = order {
        let rank = |item: &Value| {
            order
                .iter()
                .position(|o| o.get(merge_key) == item.get(merge_key))
                .unwrap_or(usize::MAX)
        };
        items.sort_by_key(rank);
    }
    items.extend(deletes);
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::{strategic_merge_patch, LAST_APPLIED_ANNOTATION};

    fn three_way(kind: &str, last: &Value, modified: &Value, current: &Value) -> Value {
        three_way_strategic_patch(kind, Some(last), modified, current)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    // The lesson's manifests (/work/shared/lesson), as the JSON kubectl
    // reads from their YAML.

    const DEFAULT_CONF: &str = "server {\n  listen 80;\n  location / {\n    \
        default_type text/plain;\n    return 200\n      'srv : $server_addr:$server_port\\nhost: \
        $hostname\\nuri : $request_method $host $request_uri\\ndate: $time_iso8601\\n';\n  }\n}\n";

    fn ngx_conf() -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ngx-conf"},
               "data": {"default.conf": DEFAULT_CONF}})
    }

    fn ngx_dep() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "ngx-dep"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "ngx-dep"}},
                "template": {
                    "metadata": {"labels": {"app": "ngx-dep"}},
                    "spec": {
                        "volumes": [{"name": "ngx-conf-vol", "configMap": {"name": "ngx-conf"}}],
                        "containers": [{
                            "image": "nginx:alpine", "name": "nginx",
                            "ports": [{"containerPort": 80}],
                            "volumeMounts": [{"mountPath": "/etc/nginx/conf.d", "name": "ngx-conf-vol"}]
                        }]
                    }
                }
            }
        })
    }

    fn ngx_svc() -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ngx-svc"},
               "spec": {"selector": {"app": "ngx-dep"},
                        "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}]}})
    }

    fn ngx_svc_nodeport() -> Value {
        let mut svc = ngx_svc();
        svc["spec"]["type"] = json!("NodePort");
        svc
    }

    /// Sets `value` under `object` at a `.`-separated path (numbers index
    /// lists), creating maps.
    fn set(object: &mut Value, path: &str, value: Value) {
        let mut at = object;
        for key in path.split('.') {
            at = match key.parse::<usize>() {
                Ok(index) if at.is_array() => &mut at[index],
                _ => &mut at[key],
            };
        }
        *at = value;
    }

    /// Fills `key` of the map at `object` when it is absent, as defaulting
    /// does.
    fn default(object: &mut Value, key: &str, value: Value) {
        if let Value::Object(map) = object {
            map.entry(key).or_insert(value);
        }
    }

    /// What kube-apiserver adds to an object it stores: identity, defaults,
    /// allocations and status. Only fills what is absent, so storing twice
    /// changes nothing.
    fn serve(mut obj: Value) -> Value {
        let meta = &mut obj["metadata"];
        default(meta, "namespace", json!("default"));
        default(meta, "uid", json!("8d3b9c4e-0000-4000-8000-000000000001"));
        default(meta, "creationTimestamp", json!("2026-11-25T10:00:00Z"));
        let kind = obj["kind"].as_str().unwrap_or_default().to_string();
        match kind.as_str() {
            "Service" => {
                let spec = &mut obj["spec"];
                default(spec, "type", json!("ClusterIP"));
                default(spec, "clusterIP", json!("10.96.240.115"));
                default(spec, "clusterIPs", json!(["10.96.240.115"]));
                default(spec, "sessionAffinity", json!("None"));
                default(spec, "ipFamilies", json!(["IPv4"]));
                default(spec, "internalTrafficPolicy", json!("Cluster"));
                let node_port = spec["type"] == json!("NodePort");
                if node_port {
                    default(spec, "externalTrafficPolicy", json!("Cluster"));
                } else if let Value::Object(spec) = spec {
                    spec.remove("externalTrafficPolicy");
                }
                for (i, port) in spec["ports"]
                    .as_array_mut()
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    default(port, "protocol", json!("TCP"));
                    let target = port["port"].clone();
                    default(port, "targetPort", target);
                    // Leaving NodePort releases the node ports.
                    if node_port {
                        default(port, "nodePort", json!(30651 + i));
                    } else if let Value::Object(port) = port {
                        port.remove("nodePort");
                    }
                }
                set(&mut obj, "status.loadBalancer", json!({}));
            }
            "Deployment" => {
                let spec = &mut obj["spec"];
                default(spec, "revisionHistoryLimit", json!(10));
                default(spec, "progressDeadlineSeconds", json!(600));
                default(spec, "strategy", json!({"type": "RollingUpdate"}));
                if spec["strategy"]["type"] == json!("RollingUpdate") {
                    default(
                        &mut spec["strategy"],
                        "rollingUpdate",
                        json!({"maxSurge": "25%", "maxUnavailable": "25%"}),
                    );
                }
                let pod = &mut spec["template"]["spec"];
                default(pod, "restartPolicy", json!("Always"));
                default(pod, "dnsPolicy", json!("ClusterFirst"));
                default(pod, "terminationGracePeriodSeconds", json!(30));
                for volume in pod["volumes"].as_array_mut().into_iter().flatten() {
                    if volume["configMap"].is_object() {
                        default(&mut volume["configMap"], "defaultMode", json!(420));
                    }
                }
                for container in pod["containers"].as_array_mut().into_iter().flatten() {
                    default(container, "imagePullPolicy", json!("IfNotPresent"));
                    default(
                        container,
                        "terminationMessagePath",
                        json!("/dev/termination-log"),
                    );
                    for port in container["ports"].as_array_mut().into_iter().flatten() {
                        default(port, "protocol", json!("TCP"));
                    }
                }
                default(&mut obj["metadata"], "annotations", json!({}));
                default(
                    &mut obj["metadata"]["annotations"],
                    "deployment.kubernetes.io/revision",
                    json!("1"),
                );
                let replicas = obj["spec"]["replicas"].clone();
                set(
                    &mut obj,
                    "status",
                    json!({
                    "replicas": replicas, "readyReplicas": replicas,
                    "conditions": [{"type": "Available", "status": "True"}]}),
                );
            }
            _ => {}
        }
        obj
    }

    /// `kubectl apply` of `manifest` against `live` (or a create when
    /// there is none), and the object the server then stores. Returns the
    /// patch sent too (`None` for a create).
    fn kubectl_apply(manifest: &Value, live: Option<&Value>) -> (Option<Value>, Value) {
        let kind = manifest["kind"].as_str().unwrap();
        let mut modified = manifest.clone();
        default(&mut modified["metadata"], "annotations", json!({}));
        modified["metadata"]["annotations"][LAST_APPLIED_ANNOTATION] =
            json!(serde_json::to_string(manifest).unwrap());
        let Some(live) = live else {
            return (None, serve(modified));
        };
        let last: Option<Value> = live["metadata"]["annotations"][LAST_APPLIED_ANNOTATION]
            .as_str()
            .map(|text| serde_json::from_str(text).unwrap());
        let patch = three_way_strategic_patch(kind, last.as_ref(), &modified, live).unwrap();
        let patched = strategic_merge_patch(kind, live, &patch).unwrap();
        (Some(patch), serve(patched))
    }

    /// Edits a manifest the way a student edits the lesson's YAML.
    fn edited(manifest: Value, edit: impl FnOnce(&mut Value)) -> Value {
        let mut manifest = manifest;
        edit(&mut manifest);
        manifest
    }

    fn lesson_edits() -> Vec<(&'static str, Value, Value)> {
        let dep = ngx_dep;
        let containers = "spec.template.spec.containers";
        vec![
            ("svc: ClusterIP -> NodePort", ngx_svc(), ngx_svc_nodeport()),
            ("svc: NodePort -> ClusterIP", ngx_svc_nodeport(), ngx_svc()),
            (
                "svc: second port",
                ngx_svc(),
                edited(ngx_svc(), |m| {
                    set(
                        m,
                        "spec.ports",
                        json!([
                    {"port": 80, "targetPort": 80, "protocol": "TCP", "name": "http"},
                    {"port": 443, "targetPort": 443, "protocol": "TCP", "name": "https"}]),
                    );
                }),
            ),
            (
                "svc: session affinity, label",
                ngx_svc(),
                edited(ngx_svc(), |m| {
                    set(m, "spec.sessionAffinity", json!("ClientIP"));
                    set(m, "metadata.labels", json!({"app": "ngx-svc"}));
                }),
            ),
            (
                "dep: new image",
                dep(),
                edited(dep(), |m| {
                    set(
                        m,
                        &format!("{containers}.0.image"),
                        json!("nginx:1.27-alpine"),
                    );
                }),
            ),
            (
                "dep: scale",
                dep(),
                edited(dep(), |m| set(m, "spec.replicas", json!(5))),
            ),
            (
                "dep: env and a sidecar first",
                dep(),
                edited(dep(), |m| {
                    set(
                        m,
                        &format!("{containers}.0.env"),
                        json!([{"name": "MODE", "value": "x"}]),
                    );
                    let nginx = m["spec"]["template"]["spec"]["containers"][0].clone();
                    set(
                        m,
                        containers,
                        json!([{"name": "sidecar", "image": "busybox"}, nginx]),
                    );
                }),
            ),
            (
                "dep: drop the volume and its mount",
                dep(),
                edited(dep(), |m| {
                    let spec = m["spec"]["template"]["spec"].as_object_mut().unwrap();
                    spec.remove("volumes");
                    spec["containers"][0]
                        .as_object_mut()
                        .unwrap()
                        .remove("volumeMounts");
                }),
            ),
            (
                "dep: volume from configMap to emptyDir",
                dep(),
                edited(dep(), |m| {
                    set(
                        m,
                        "spec.template.spec.volumes.0",
                        json!({"name": "ngx-conf-vol", "emptyDir": {}}),
                    );
                }),
            ),
            (
                "dep: Recreate strategy",
                dep(),
                edited(dep(), |m| {
                    set(m, "spec.strategy", json!({"type": "Recreate"}));
                }),
            ),
            (
                "dep: second port, finalizer",
                dep(),
                edited(dep(), |m| {
                    set(
                        m,
                        &format!("{containers}.0.ports"),
                        json!([{"containerPort": 80}, {"containerPort": 8080, "name": "alt"}]),
                    );
                    set(m, "metadata.finalizers", json!(["example.com/keep"]));
                }),
            ),
            (
                "conf: edit, add and drop keys",
                ngx_conf(),
                edited(ngx_conf(), |m| {
                    set(m, "data", json!({"index.html": "hi"}));
                }),
            ),
        ]
    }

    /// The round trip: applying an edited manifest to the live object the
    /// original manifest created gives what creating from the edited
    /// manifest gives. Nothing the user wrote is lost, nothing they removed
    /// stays, and the server's fields survive.
    #[test]
    fn applying_an_edit_equals_creating_from_it() {
        for (name, original, edit) in lesson_edits() {
            let (_, live) = kubectl_apply(&original, None);
            let (patch, updated) = kubectl_apply(&edit, Some(&live));
            let (_, created) = kubectl_apply(&edit, None);
            assert_eq!(updated, created, "{name}: patch was {}", patch.unwrap());
            // And once applied, applying again changes nothing.
            let (patch, _) = kubectl_apply(&edit, Some(&updated));
            assert_eq!(patch, Some(json!({})), "{name}: second apply");
        }
    }

    #[test]
    fn reapplying_the_lesson_is_unchanged() {
        for manifest in [ngx_conf(), ngx_dep(), ngx_svc(), ngx_svc_nodeport()] {
            let (_, live) = kubectl_apply(&manifest, None);
            let (patch, after) = kubectl_apply(&manifest, Some(&live));
            assert_eq!(patch, Some(json!({})), "{}", manifest["kind"]);
            assert_eq!(after, live);
        }
    }

    #[test]
    fn nodeport_step_sends_only_the_type() {
        let (_, live) = kubectl_apply(&ngx_svc(), None);
        let (patch, updated) = kubectl_apply(&ngx_svc_nodeport(), Some(&live));
        let patch = patch.unwrap();
        assert_eq!(patch["spec"], json!({"type": "NodePort"}));
        assert_eq!(
            patch["metadata"]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["annotations"]
        );
        // The ClusterIP the server picked is kept.
        assert_eq!(updated["spec"]["clusterIP"], live["spec"]["clusterIP"]);
        assert_eq!(updated["spec"]["ports"][0]["nodePort"], json!(30651));
    }

    #[test]
    fn image_change_patch_is_what_kubectl_sends() {
        let last = ngx_dep();
        let modified = edited(ngx_dep(), |m| {
            set(
                m,
                "spec.template.spec.containers.0.image",
                json!("nginx:1.27-alpine"),
            );
        });
        let current = serve(ngx_dep());
        assert_eq!(
            three_way("Deployment", &last, &modified, &current),
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "nginx"}],
                "containers": [{"name": "nginx", "image": "nginx:1.27-alpine"}]}}}})
        );
    }

    #[test]
    fn removed_fields_are_deleted_and_unapplied_ones_kept() {
        let last = json!({"kind": "Service", "metadata": {"name": "s",
            "labels": {"app": "s", "old": "x"}},
            "spec": {"ports": [{"port": 80}, {"port": 81}], "sessionAffinity": "ClientIP"}});
        let modified = json!({"kind": "Service", "metadata": {"name": "s",
            "labels": {"app": "s"}},
            "spec": {"ports": [{"port": 80}]}});
        // `kubectl label svc s team=a` added a label nobody applied.
        let current = json!({"kind": "Service", "metadata": {"name": "s", "uid": "u",
            "labels": {"app": "s", "old": "x", "team": "a"}},
            "spec": {"clusterIP": "10.96.0.10", "sessionAffinity": "ClientIP",
                     "ports": [{"port": 80, "protocol": "TCP"}, {"port": 81, "protocol": "TCP"}]},
            "status": {"loadBalancer": {}}});
        let patch = three_way("Service", &last, &modified, &current);
        assert_eq!(
            patch,
            json!({"metadata": {"labels": {"old": null}},
                   "spec": {"sessionAffinity": null,
                            "$setElementOrder/ports": [{"port": 80}],
                            "ports": [{"port": 81, "$patch": "delete"}]}})
        );
        let patched = strategic_merge_patch("Service", &current, &patch).unwrap();
        assert_eq!(
            patched,
            json!({"kind": "Service", "metadata": {"name": "s", "uid": "u",
                "labels": {"app": "s", "team": "a"}},
                "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 80, "protocol": "TCP"}]},
                "status": {"loadBalancer": {}}})
        );
    }

    #[test]
    fn without_last_applied_nothing_is_deleted() {
        let modified = json!({"metadata": {"name": "c"}, "data": {"a": "1"}});
        let current = json!({"metadata": {"name": "c"}, "data": {"a": "0", "b": "2"}});
        let patch = three_way_strategic_patch("ConfigMap", None, &modified, &current).unwrap();
        assert_eq!(patch, json!({"data": {"a": "1"}}));
    }

    #[test]
    fn removed_finalizers_use_the_parallel_deletion_list() {
        let last = json!({"metadata": {"finalizers": ["a", "b"]}});
        let modified = json!({"metadata": {"finalizers": ["a", "c"]}});
        let current = json!({"metadata": {"finalizers": ["a", "b", "server"]}});
        let patch = three_way("Namespace", &last, &modified, &current);
        assert_eq!(
            patch,
            json!({"metadata": {
                "finalizers": ["c"],
                "$deleteFromPrimitiveList/finalizers": ["b"],
                "$setElementOrder/finalizers": ["a", "c"]}})
        );
        let patched = strategic_merge_patch("Namespace", &current, &patch).unwrap();
        assert_eq!(
            patched,
            json!({"metadata": {"finalizers": ["a", "c", "server"]}})
        );
    }

    #[test]
    fn deleting_a_container_and_a_nested_field_in_one_patch() {
        let last = json!({"spec": {"containers": [
            {"name": "a", "image": "x", "env": [{"name": "E", "value": "1"}]},
            {"name": "b", "image": "y"}]}});
        let modified = json!({"spec": {"containers": [{"name": "a", "image": "x2"}]}});
        let current = json!({"spec": {"containers": [
            {"name": "a", "image": "x", "env": [{"name": "E", "value": "1"}],
             "imagePullPolicy": "IfNotPresent"},
            {"name": "b", "image": "y"}]}});
        let patch = three_way("Pod", &last, &modified, &current);
        assert_eq!(
            patch,
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "a"}],
                "containers": [
                    {"name": "a", "image": "x2", "env": null},
                    {"name": "b", "$patch": "delete"}]}})
        );
        let patched = strategic_merge_patch("Pod", &current, &patch).unwrap();
        assert_eq!(
            patched,
            json!({"spec": {"containers": [
                {"name": "a", "image": "x2", "imagePullPolicy": "IfNotPresent"}]}})
        );
    }

    #[test]
    fn deployment_strategy_switch_retains_only_type() {
        let last = json!({"spec": {"strategy": {"type": "RollingUpdate"}}});
        let modified = json!({"spec": {"strategy": {"type": "Recreate"}}});
        let current = json!({"spec": {"strategy": {"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}}});
        let patch = three_way("Deployment", &last, &modified, &current);
        assert_eq!(
            patch,
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}})
        );
    }

    #[test]
    fn manifests_that_cannot_be_merged_are_errors() {
        let current = json!({"spec": {"containers": [{"name": "a"}]}});
        let modified = json!({"spec": {"containers": [{"image": "x"}]}});
        let err = three_way_strategic_patch("Pod", None, &modified, &current).unwrap_err();
        assert!(
            matches!(&err, PatchError::Unmergeable { path, .. } if path == "spec.containers"),
            "{err}"
        );
        let err = three_way_strategic_patch("Pod", None, &json!([]), &current).unwrap_err();
        assert!(matches!(err, PatchError::Malformed(_)));
    }
}
