//! Object metadata: the fields the server owns.
//!
//! Whatever a client sends, some of `metadata` is the server's to set:
//! - `uid` and `creationTimestamp`, once, at create;
//! - `resourceVersion`, on every write (storage does that);
//! - `generation`, which counts changes to the desired state (`spec`) only,
//!   so a controller can say "I have acted on generation 3"
//!   (`status.observedGeneration`);
//! - `deletionTimestamp`, when a graceful or finalized delete begins.
//!
//! A client that sends them gets them overwritten or preserved, never
//! obeyed.

use api::resources::ResourceType;
use chrono::{SecondsFormat, Utc};
use serde_json::{json, Map, Value};

/// RFC 3339 in seconds, as Kubernetes writes timestamps.
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Resources whose objects track `metadata.generation`.
pub fn tracks_generation(resource: &ResourceType) -> bool {
    matches!(
        resource.kind,
        "Pod" | "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet"
    )
}

/// Resources whose `status` is only written through the `/status`
/// subresource: the main resource ignores status changes and vice versa.
pub fn has_status_subresource(resource: &ResourceType) -> bool {
    resource.subresources.iter().any(|s| s.name == "status")
}

/// Fills what a new object gets from the server.
pub fn prepare_for_create(resource: &ResourceType, object: &mut Value) {
    let meta = metadata_mut(object);
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
    for owned in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        meta.remove(owned);
    }
    if tracks_generation(resource) {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    // Status is the system's report, not the client's wish: new objects of
    // these kinds start with an empty one (defaulting may fill it).
    if matches!(
        resource.kind,
        "Service" | "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet" | "Namespace" | "Pod"
    ) {
        if let Some(obj) = object.as_object_mut() {
            obj.remove("status");
        }
    }
}

/// Carries the server-owned metadata of `current` into an update, and
/// bumps `generation` when the desired state changed.
pub fn prepare_for_update(resource: &ResourceType, current: &Value, new: &mut Value) {
    let current_meta = current["metadata"].as_object().cloned().unwrap_or_default();
    let meta = metadata_mut(new);
    for owned in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match current_meta.get(owned) {
            Some(v) => meta.insert(owned.into(), v.clone()),
            None => meta.remove(owned),
        };
    }
    if tracks_generation(resource) && desired_state_changed(current, new) {
        let generation = current["metadata"]["generation"].as_i64().unwrap_or(1);
        new["metadata"]["generation"] = json!(generation + 1);
    }
}

/// True when anything but metadata and status differs.
fn desired_state_changed(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| -> Map<String, Value> {
        let mut m = v.as_object().cloned().unwrap_or_default();
        m.remove("metadata");
        m.remove("status");
        m
    };
    strip(a) != strip(b)
}

/// True when two versions of an object differ in anything but their
/// resourceVersion (a no-op update is not written).
pub fn same_apart_from_version(a: &Value, b: &Value) -> bool {
    let mut a = a.clone();
    let mut b = b.clone();
    for v in [&mut a, &mut b] {
        if let Some(meta) = v["metadata"].as_object_mut() {
            meta.remove("resourceVersion");
        }
    }
    a == b
}

/// `metadata` as a map, created if missing or not an object.
pub fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    object["metadata"]
        .as_object_mut()
        .expect("metadata was just made an object")
}

/// The object's `metadata.resourceVersion`, when set.
pub fn resource_version(object: &Value) -> Option<&str> {
    object["metadata"]["resourceVersion"]
        .as_str()
        .filter(|s| !s.is_empty())
}

/// The object's finalizers.
pub fn finalizers(object: &Value) -> Vec<String> {
    object["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

pub fn is_being_deleted(object: &Value) -> bool {
    object["metadata"]["deletionTimestamp"].is_string()
}

/// Removes `metadata.resourceVersion`: the write is not conditional on a
/// version (the storage step checks the one it read).
pub fn forget_resource_version(object: &mut Value) {
    if let Some(meta) = object["metadata"].as_object_mut() {
        meta.remove("resourceVersion");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_counts_spec_changes_only() {
        let deploy = api::resources::lookup("deploy").unwrap();
        let mut current = json!({"metadata": {"name": "d"}, "spec": {"replicas": 1}});
        prepare_for_create(deploy, &mut current);
        assert_eq!(current["metadata"]["generation"], 1);

        let mut relabelled = current.clone();
        relabelled["metadata"]["labels"] = json!({"a": "b"});
        prepare_for_update(deploy, &current, &mut relabelled);
        assert_eq!(relabelled["metadata"]["generation"], 1);

        let mut scaled = current.clone();
        scaled["spec"]["replicas"] = json!(3);
        scaled["metadata"]["uid"] = json!("forged");
        prepare_for_update(deploy, &current, &mut scaled);
        assert_eq!(scaled["metadata"]["generation"], 2);
        assert_eq!(scaled["metadata"]["uid"], current["metadata"]["uid"]);
    }
}
