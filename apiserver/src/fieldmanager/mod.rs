//! Field management: who set which field of an object
//! (`metadata.managedFields`), and server-side apply.
//!
//! Every write records its manager - the `fieldManager` query parameter,
//! or the client's User-Agent up to its first `/` (`kubectl`,
//! `kube-controller-manager`) - and the fields it set:
//!
//! - an **Update** (create, PUT, a JSON/merge/strategic patch, a status
//!   write) gives its manager the fields it added or changed, taking them
//!   from any other manager;
//! - an **Apply** (`PATCH` with `application/apply-patch+yaml`, `kubectl
//!   apply --server-side`) sends the fields its manager wants, and only
//!   those: they are merged into the object, the fields it applied last
//!   time and no longer sends are removed (when nobody else owns them),
//!   and changing a field another manager owns is a **conflict**, 409,
//!   unless `force=true` takes the field over.
//!
//! kube-apiserver does this with structured-merge-diff; kube-lite with the
//! four files here:
//!
//! - `schema.rs`: the type of each field, from the Go types (which lists
//!   are maps and by which keys, which structs are atomic);
//! - `fieldset.rs`: sets of field paths and their `FieldsV1` form;
//! - `compare.rs`: the fields a value sets, the fields a write changed;
//! - `merge.rs`: apply's merge and removal.
//!
//! As upstream, the entries are kept per (manager, operation, API version
//! for updates, subresource); `apiVersion`, `kind` and the metadata the
//! server owns (`name`, `uid`, `resourceVersion`...) are nobody's.
//! Update entries are capped at ten, the oldest merged into
//! `ancient-changes`; `kubectl apply --server-side` after client-side
//! applies takes the fields the last-applied annotation still holds
//! without a conflict, and keeps that annotation in step.

pub mod compare;
pub mod fieldset;
pub mod merge;
pub mod schema;

use api::resources::ResourceType;
use serde_json::{json, Map, Value};

use crate::rest::write::Part;
use crate::status::StatusError;
use fieldset::Set;
use schema::Type;

/// How many Update entries an object keeps (upstream's
/// `DefaultMaxUpdateManagers`).
const MAX_UPDATE_MANAGERS: usize = 10;

/// The manager the oldest Update entries are merged into.
const ANCIENT_CHANGES: &str = "ancient-changes";

/// What a write does, as `managedFields` records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One `managedFields` entry: a manager and the fields it owns.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: Operation,
    api_version: String,
    subresource: String,
    time: Option<String>,
    fields: Set,
}

impl Entry {
    /// Entries are one manager's when all of these match (an apply's API
    /// version does not count).
    fn same_manager(&self, other: &Entry) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == Operation::Apply || self.api_version == other.api_version)
    }

    fn to_json(&self) -> Value {
        let mut entry = Map::new();
        entry.insert("manager".into(), json!(self.manager));
        entry.insert("operation".into(), json!(self.operation.as_str()));
        entry.insert("apiVersion".into(), json!(self.api_version));
        if let Some(time) = &self.time {
            entry.insert("time".into(), json!(time));
        }
        entry.insert("fieldsType".into(), json!("FieldsV1"));
        entry.insert("fieldsV1".into(), self.fields.to_fields_v1());
        if !self.subresource.is_empty() {
            entry.insert("subresource".into(), json!(self.subresource));
        }
        Value::Object(entry)
    }

    /// How a conflict names this manager: `"kubectl-edit" using apps/v1 at
    /// 2026-12-07T10:00:00Z`, `"kubectl"` for an applier.
    fn describe(&self) -> String {
        let mut out = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            out.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == Operation::Update {
            out.push_str(&format!(" using {}", self.api_version));
            if let Some(time) = &self.time {
                out.push_str(&format!(" at {time}"));
            }
        }
        out
    }
}

/// The decoded `managedFields` of an object.
#[derive(Debug, Clone, Default)]
struct Managed {
    entries: Vec<Entry>,
}

impl Managed {
    /// Reads `metadata.managedFields`; an entry that cannot be read is
    /// dropped, as upstream starts over from nothing rather than fail the
    /// write.
    fn decode(object: &Value) -> Managed {
        let list = object["metadata"]["managedFields"].as_array();
        let entries = list
            .into_iter()
            .flatten()
            .filter_map(|entry| {
                let operation = match entry["operation"].as_str()? {
                    "Apply" => Operation::Apply,
                    "Update" => Operation::Update,
                    _ => return None,
                };
                Some(Entry {
                    manager: entry["manager"].as_str().unwrap_or_default().to_string(),
                    operation,
                    api_version: entry["apiVersion"].as_str().unwrap_or_default().to_string(),
                    subresource: entry["subresource"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    time: entry["time"].as_str().map(str::to_string),
                    fields: Set::from_fields_v1(entry.get("fieldsV1")?).ok()?,
                })
            })
            .collect();
        Managed { entries }
    }

    /// True for `managedFields: []` or `[{}]`: the client resets them.
    fn is_reset(object: &Value) -> bool {
        match object["metadata"]["managedFields"].as_array() {
            Some(list) if list.is_empty() => true,
            Some(list) => list.len() == 1 && list[0].as_object().is_some_and(Map::is_empty),
            None => false,
        }
    }

    /// Writes the entries into `object`, in upstream's order (Apply before
    /// Update, then by time and manager).
    fn encode(mut self, object: &mut Value) {
        self.entries.retain(|e| !e.fields.is_empty());
        self.cap_updaters();
        self.entries.sort_by(|a, b| {
            (
                a.operation.as_str(),
                &a.time,
                &a.manager,
                &a.api_version,
                &a.subresource,
            )
                .cmp(&(
                    b.operation.as_str(),
                    &b.time,
                    &b.manager,
                    &b.api_version,
                    &b.subresource,
                ))
        });
        let Some(meta) = object["metadata"].as_object_mut() else {
            return;
        };
        if self.entries.is_empty() {
            meta.remove("managedFields");
        } else {
            let list = self.entries.iter().map(Entry::to_json).collect();
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }

    /// At most [`MAX_UPDATE_MANAGERS`] Update entries: the oldest ones
    /// are merged, per API version, into one named `ancient-changes` (so
    /// that a field many clients touched does not grow the list forever),
    /// as upstream's capManagersManager does.
    fn cap_updaters(&mut self) {
        let is_updater = |e: &Entry| e.operation == Operation::Update;
        let mut count = self.entries.iter().filter(|e| is_updater(e)).count();
        if count <= MAX_UPDATE_MANAGERS {
            return;
        }
        // Oldest first.
        let mut order: Vec<usize> = (0..self.entries.len())
            .filter(|i| is_updater(&self.entries[*i]))
            .collect();
        order.sort_by(|a, b| {
            let (a, b) = (&self.entries[*a], &self.entries[*b]);
            (&a.time, &a.manager).cmp(&(&b.time, &b.manager))
        });
        let mut first_of_version: Vec<(String, usize)> = Vec::new();
        let mut gone = Vec::new();
        for i in order {
            if count <= MAX_UPDATE_MANAGERS {
                break;
            }
            let version = self.entries[i].api_version.clone();
            match first_of_version.iter().find(|(v, _)| *v == version) {
                Some((_, first)) => {
                    let first = *first;
                    // The first of this version becomes the bucket.
                    let merged = self.entries[first].fields.union(&self.entries[i].fields);
                    let time = self.entries[i].time.clone();
                    let bucket = &mut self.entries[first];
                    bucket.manager = ANCIENT_CHANGES.into();
                    bucket.subresource.clear();
                    bucket.fields = merged;
                    bucket.time = time;
                    gone.push(i);
                    count -= 1;
                }
                None => first_of_version.push((version, i)),
            }
        }
        gone.sort_unstable();
        for i in gone.into_iter().rev() {
            self.entries.remove(i);
        }
    }

    /// The entry of `who`, created empty if it has none.
    fn entry(&mut self, who: &Entry) -> &mut Entry {
        match self.entries.iter().position(|e| e.same_manager(who)) {
            Some(i) => &mut self.entries[i],
            None => {
                self.entries.push(who.clone());
                self.entries.last_mut().expect("just pushed")
            }
        }
    }
}

/// The manager of a write: `fieldManager`, or the User-Agent's first word.
pub fn manager_name(field_manager: Option<&str>, user_agent: Option<&str>) -> String {
    match field_manager {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => user_agent
            .unwrap_or_default()
            .split('/')
            .next()
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_control())
            .take(128)
            .collect(),
    }
}

/// Checks a write's `fieldManager` as upstream's ValidatePatchOptions.
pub fn validate_field_manager(field_manager: &str) -> Result<(), StatusError> {
    if field_manager.chars().count() > 128 {
        return Err(StatusError::bad_request(
            "fieldManager: Too long: may not be more than 128 bytes",
        ));
    }
    if let Some((i, c)) = field_manager.char_indices().find(|(_, c)| c.is_control()) {
        return Err(StatusError::bad_request(format!(
            "fieldManager: Invalid value: {field_manager:?}: invalid character U+{:04X} (at position {i})",
            c as u32
        )));
    }
    Ok(())
}

/// What a write's fields may be owned through: the object's own endpoint
/// owns all but `status` (for kinds with a status subresource), `/status`
/// only `status`; and no one owns what the server sets.
fn ownable(resource: &ResourceType, part: Part, set: Set) -> Set {
    let mut server = Set::new();
    for path in [
        &["f:apiVersion"][..],
        &["f:kind"],
        &["f:metadata"],
        &["f:metadata", "f:name"],
        &["f:metadata", "f:namespace"],
        &["f:metadata", "f:creationTimestamp"],
        &["f:metadata", "f:selfLink"],
        &["f:metadata", "f:uid"],
        &["f:metadata", "f:generation"],
        &["f:metadata", "f:managedFields"],
        &["f:metadata", "f:resourceVersion"],
        &["f:metadata", "f:deletionTimestamp"],
        &["f:metadata", "f:deletionGracePeriodSeconds"],
    ] {
        let path: Vec<String> = path.iter().map(|e| e.to_string()).collect();
        server.insert(&path);
    }
    let set = set.difference(&server);
    let status = vec!["f:status".to_string()];
    match part {
        Part::Main if crate::rest::objectmeta::has_status_subresource(resource) => {
            let mut reset = Set::new();
            reset.insert(&status);
            // Everything under status too: remove the subtree.
            match set.child(&status) {
                Some(sub) => set.difference(&reset).difference(&prefix(&status, sub)),
                None => set,
            }
        }
        Part::Main => set,
        Part::Status | Part::Approval => match set.child(&status) {
            Some(sub) => prefix(&status, sub),
            None => Set::new(),
        },
    }
}

/// `sub` moved under `path`.
fn prefix(path: &[String], sub: &Set) -> Set {
    let mut out = Set::new();
    for p in sub.paths() {
        let full: Vec<String> = path.iter().cloned().chain(p).collect();
        out.insert(&full);
    }
    out
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Records an Update by `manager`: `old` (`None` for a create) became
/// `new`; `new`'s `managedFields` are set.
pub fn track_update(
    resource: &ResourceType,
    part: Part,
    subresource: &str,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
) {
    // The client may write managedFields itself (kubectl's migration to
    // server-side apply does); `[]` clears them; otherwise they are kept.
    let mut managed = if Managed::is_reset(new) {
        Managed::default()
    } else {
        let sent = Managed::decode(new);
        let changed =
            old.is_none_or(|o| o["metadata"]["managedFields"] != new["metadata"]["managedFields"]);
        if subresource.is_empty() && changed && !sent.entries.is_empty() {
            sent
        } else {
            old.map(Managed::decode).unwrap_or_default()
        }
    };
    if let Some(meta) = new["metadata"].as_object_mut() {
        meta.remove("managedFields");
    }
    let ty = Type::of_kind(&resource.api_version(), resource.kind);
    let mut old_plain = old.cloned();
    if let Some(meta) = old_plain
        .as_mut()
        .and_then(|o| o["metadata"].as_object_mut())
    {
        meta.remove("managedFields");
    }
    let changes = compare::compare(&ty, old_plain.as_ref(), new);
    let taken = ownable(resource, part, changes.added.union(&changes.modified));
    let who = Entry {
        manager: if manager.is_empty() {
            "unknown".into()
        } else {
            manager.to_string()
        },
        operation: Operation::Update,
        api_version: resource.api_version(),
        subresource: subresource.to_string(),
        time: None,
        fields: Set::new(),
    };
    for entry in &mut managed.entries {
        if !entry.same_manager(&who) {
            entry.fields = entry.fields.difference(&taken).difference(&changes.removed);
        }
    }
    if !taken.is_empty() {
        let entry = managed.entry(&who);
        entry.fields = entry.fields.difference(&changes.removed).union(&taken);
        entry.time = Some(now());
    } else if let Some(entry) = managed.entries.iter_mut().find(|e| e.same_manager(&who)) {
        entry.fields = entry.fields.difference(&changes.removed);
    }
    managed.encode(new);
}

/// A server-side apply of `config` by `manager` to `live` (`None`: the
/// object does not exist yet). Returns the new object, `managedFields`
/// set, or a 409 naming the conflicts.
pub fn apply(
    resource: &ResourceType,
    part: Part,
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
) -> Result<Value, StatusError> {
    let expected = resource.api_version();
    let sent = config["apiVersion"].as_str().unwrap_or_default();
    if sent != expected {
        return Err(StatusError::bad_request(format!(
            "Incorrect version specified in apply patch. Specified patch version: {sent}, expected: {expected}"
        )));
    }
    if !config["metadata"]["managedFields"].is_null() {
        return Err(StatusError::bad_request(
            "metadata.managedFields must be nil",
        ));
    }
    let ty = Type::of_kind(&expected, resource.kind);
    let empty = merge::empty();
    let live_value = live.unwrap_or(&empty);
    let mut managed = Managed::decode(live_value);
    let mut live_plain = live_value.clone();
    if let Some(meta) = live_plain["metadata"].as_object_mut() {
        meta.remove("managedFields");
    }

    let who = Entry {
        manager: manager.to_string(),
        operation: Operation::Apply,
        api_version: expected.clone(),
        subresource: crate::rest::write::subresource_of(part).to_string(),
        time: None,
        fields: Set::new(),
    };
    let last = managed
        .entries
        .iter()
        .find(|e| e.same_manager(&who))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let applied = ownable(resource, part, compare::field_set(&ty, config));

    // Merge, then remove what this manager applied before, sends no more,
    // and nobody else owns.
    let mut new = merge::merge(&ty, live.map(|_| &live_plain), config);
    let others = managed
        .entries
        .iter()
        .filter(|e| !e.same_manager(&who))
        .fold(Set::new(), |all, e| all.union(&e.fields));
    let owned_now = others.union(&applied);
    let gone = last.difference(&owned_now);
    merge::remove(&ty, &mut new, &gone, Some(&owned_now));
    merge::drop_nulls(&mut new);

    // Conflicts: fields this apply changes that others own.
    let changes = compare::compare(&ty, Some(&live_plain), &new);
    let changed = changes.added.union(&changes.modified);
    let mut conflicts = Vec::new();
    for entry in managed.entries.iter().filter(|e| !e.same_manager(&who)) {
        let clash = entry.fields.intersection(&changed);
        for path in clash.paths() {
            conflicts.push((entry.describe(), path));
        }
    }
    // `kubectl apply --server-side` after client-side applies: the fields
    // the last-applied annotation holds, unchanged since, are taken over
    // without a conflict (kubectl then moves their ownership itself).
    if manager == "kubectl" {
        let allowed = last_applied_fields(&ty, &expected, &live_plain);
        conflicts.retain(|(_, path)| !allowed.has(path));
    }
    if !conflicts.is_empty() && !force {
        return Err(conflict_error(conflicts));
    }
    for entry in managed.entries.iter_mut().filter(|e| !e.same_manager(&who)) {
        entry.fields = entry
            .fields
            .difference(&changed)
            .difference(&changes.removed);
    }
    let entry = managed.entry(&who);
    entry.fields = applied;
    // The time says when the manager last changed the object.
    if new != live_plain || entry.time.is_none() {
        entry.time = Some(now());
    }

    // kubectl's client-side apply reads its annotation: keep it in step.
    if manager == "kubectl" {
        update_last_applied(&mut new, config);
    }
    managed.encode(&mut new);
    Ok(new)
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

fn update_last_applied(object: &mut Value, config: &Value) {
    if object["metadata"]["annotations"][LAST_APPLIED].is_null() {
        return;
    }
    let mut last = config.clone();
    if let Some(annotations) = last["metadata"]["annotations"].as_object_mut() {
        annotations.remove(LAST_APPLIED);
    }
    object["metadata"]["annotations"][LAST_APPLIED] = json!(last.to_string());
}

/// The fields of `live`'s last-applied annotation whose values `live`
/// still has.
fn last_applied_fields(ty: &Type, api_version: &str, live: &Value) -> Set {
    let Some(text) = live["metadata"]["annotations"][LAST_APPLIED].as_str() else {
        return Set::new();
    };
    let Ok(last) = serde_json::from_str::<Value>(text) else {
        return Set::new();
    };
    if last["apiVersion"] != api_version {
        return Set::new();
    }
    let changes = compare::compare(ty, Some(&last), live);
    compare::field_set(ty, &last)
        .difference(&changes.modified)
        .difference(&changes.added)
        .difference(&changes.removed)
}

/// 409 Conflict, worded as kube-apiserver words it.
fn conflict_error(conflicts: Vec<(String, Vec<fieldset::Element>)>) -> StatusError {
    let conflicts: Vec<(String, String)> = conflicts
        .into_iter()
        .map(|(manager, path)| (manager, fieldset::display(&path)))
        .collect();
    let message = if let [(manager, path)] = conflicts.as_slice() {
        format!("Apply failed with 1 conflict: conflict with {manager}: {path}")
    } else {
        let mut managers: Vec<&String> = conflicts.iter().map(|(m, _)| m).collect();
        managers.sort();
        managers.dedup();
        let mut lines = Vec::new();
        for manager in managers {
            lines.push(format!("conflicts with {manager}:"));
            for (_, path) in conflicts.iter().filter(|(m, _)| m == manager) {
                lines.push(format!("- {path}"));
            }
        }
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    let causes = conflicts
        .iter()
        .map(|(manager, path)| {
            json!({"type": "FieldManagerConflict", "message": format!("conflict with {manager}"), "field": path})
        })
        .collect();
    let mut error = StatusError::new(409, "Conflict", message);
    error.details = Some(json!({ "causes": Value::Array(causes) }));
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configmaps() -> &'static ResourceType {
        api::resources::lookup("configmaps").unwrap()
    }

    #[test]
    fn many_updaters_are_capped_into_ancient_changes() {
        let mut object =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}});
        for i in 0..12 {
            let old = object.clone();
            object["data"][format!("k{i}")] = json!("v");
            track_update(
                configmaps(),
                Part::Main,
                "",
                Some(&old),
                &mut object,
                &format!("writer-{i:02}"),
            );
        }
        let entries = object["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(entries.len(), MAX_UPDATE_MANAGERS);
        let ancient = entries
            .iter()
            .find(|e| e["manager"] == ANCIENT_CHANGES)
            .expect("an ancient-changes entry");
        // It holds what the merged managers owned.
        assert!(
            ancient["fieldsV1"]["f:data"]["f:k0"].is_object(),
            "{ancient}"
        );
        assert!(entries.iter().any(|e| e["manager"] == "writer-11"));
    }

    #[test]
    fn an_update_takes_what_it_changed_from_others() {
        let mut object = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
        track_update(configmaps(), Part::Main, "", None, &mut object, "creator");
        let old = object.clone();
        object["data"]["a"] = json!("2");
        track_update(
            configmaps(),
            Part::Main,
            "",
            Some(&old),
            &mut object,
            "editor",
        );
        let entries = object["metadata"]["managedFields"].as_array().unwrap();
        let of = |manager: &str| {
            entries
                .iter()
                .find(|e| e["manager"] == manager)
                .map(|e| e["fieldsV1"].clone())
        };
        // The creator keeps the map it added; the key goes to the editor.
        assert_eq!(of("creator"), Some(json!({"f:data": {}})));
        assert_eq!(of("editor"), Some(json!({"f:data": {"f:a": {}}})));
    }
}
