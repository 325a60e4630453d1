//! `kubectl label` and `kubectl annotate`: change an object's metadata.
//!
//! Labels are what selectors match: a Service sends traffic to the Pods
//! whose labels match its selector, so `kubectl label pod x app=ngx-dep`
//! can add a Pod to a Service and `kubectl label pod x app-` take it out.
//! Annotations are free-form notes nobody selects on. Both commands read
//! the object, change the map, and send the difference as a JSON merge
//! patch (`{"metadata":{"labels":{"app":"x","old":null}}}`; `null`
//! removes a key). Changing a key that already has another value needs
//! `--overwrite`, so that a typo cannot silently move a Pod between
//! Services.

use std::collections::BTreeMap;

use anyhow::bail;
use clap::Args;
use serde_json::{json, Map, Value};

use crate::client::{Client, ErrorList, PatchType};
use crate::output;
use crate::resource_args;

#[derive(Debug, Args)]
pub struct LabelArgs {
    /// TYPE NAME KEY=VALUE... KEY-... (or TYPE/NAME ...)
    #[arg(required = true)]
    pub args: Vec<String>,
    /// Allow changing keys that already have a value
    #[arg(long)]
    pub overwrite: bool,
    /// Change every object of the type matching this selector
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Change every object of the type in the namespace
    #[arg(long)]
    pub all: bool,
}

/// Which metadata map a command edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataMap {
    Labels,
    Annotations,
}

impl MetadataMap {
    fn field(self) -> &'static str {
        match self {
            MetadataMap::Labels => "labels",
            MetadataMap::Annotations => "annotations",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            MetadataMap::Labels => "label",
            MetadataMap::Annotations => "annotation",
        }
    }
}

/// The requested change: keys to set and keys to remove (`key-`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MetadataChange {
    pub set: BTreeMap<String, String>,
    pub remove: Vec<String>,
}

/// Splits the arguments into resource arguments and changes: changes are
/// the ones with `=` or ending in `-`.
pub fn split_args(args: &[String]) -> (Vec<String>, Vec<String>) {
    let is_change = |a: &String| a.contains('=') || (a.ends_with('-') && a.len() > 1);
    let resources = args.iter().filter(|a| !is_change(a)).cloned().collect();
    let changes = args.iter().filter(|a| is_change(a)).cloned().collect();
    (resources, changes)
}

pub fn parse_changes(map: MetadataMap, specs: &[String]) -> anyhow::Result<MetadataChange> {
    let mut change = MetadataChange::default();
    for spec in specs {
        if spec.contains('=') {
            let parts: Vec<&str> = match map {
                MetadataMap::Labels => spec.split('=').collect(),
                // Annotation values may contain '='.
                MetadataMap::Annotations => spec.splitn(2, '=').collect(),
            };
            if parts.len() != 2 || parts[0].is_empty() {
                bail!("invalid {} spec: {spec}", map.noun());
            }
            if map == MetadataMap::Labels {
                let problems = api::names::is_valid_label_value(parts[1]);
                if !problems.is_empty() {
                    bail!("invalid label value: {spec:?}: {}", problems.join(";"));
                }
            }
            change
                .set
                .insert(parts[0].to_string(), parts[1].to_string());
        } else if let Some(key) = spec.strip_suffix('-') {
            change.remove.push(key.to_string());
        } else {
            bail!("unknown {} spec: {spec}", map.noun());
        }
    }
    match map {
        MetadataMap::Labels => {
            if change.remove.iter().any(|k| change.set.contains_key(k)) {
                bail!("can not both modify and remove a label in the same command");
            }
        }
        MetadataMap::Annotations => {
            let both: Vec<&str> = change
                .remove
                .iter()
                .filter(|k| change.set.contains_key(*k))
                .map(String::as_str)
                .collect();
            if !both.is_empty() {
                bail!(
                    "can not both modify and remove the following annotation(s) in the same command: {}",
                    both.join(", ")
                );
            }
        }
    }
    if change.set.is_empty() && change.remove.is_empty() {
        bail!("at least one {} update is required", map.noun());
    }
    Ok(change)
}

/// What applying a change to an object's map does.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The merge patch to send, `None` when nothing changes.
    pub patch: Option<Value>,
    /// `labeled`, `unlabeled`, `not labeled`, `modified`, or `annotated`.
    pub verb: &'static str,
}

/// Checks `--overwrite` and computes the merge patch for one object.
pub fn plan(
    map: MetadataMap,
    current: &Map<String, Value>,
    change: &MetadataChange,
    overwrite: bool,
) -> anyhow::Result<Outcome> {
    let value_of = |k: &str| current.get(k).and_then(Value::as_str);
    if !overwrite {
        let conflicts: Vec<(&String, &str)> = change
            .set
            .iter()
            .filter_map(|(k, v)| value_of(k).filter(|old| old != v).map(|old| (k, old)))
            .collect();
        if !conflicts.is_empty() {
            match map {
                MetadataMap::Labels => {
                    let errors = conflicts
                        .iter()
                        .map(|(k, old)| {
                            anyhow::anyhow!(
                                "'{k}' already has a value ({old}), and --overwrite is false"
                            )
                        })
                        .collect();
                    return Err(ErrorList(errors).into_result().unwrap_err());
                }
                MetadataMap::Annotations => {
                    let list: Vec<String> = conflicts
                        .iter()
                        .map(|(k, old)| format!("'{k}' already has a value ({old})"))
                        .collect();
                    bail!(
                        "--overwrite is false but found the following declared annotation(s): {}",
                        list.join("; ")
                    );
                }
            }
        }
    }
    let mut diff = Map::new();
    let mut added = 0;
    let mut removed = 0;
    for (k, v) in &change.set {
        if value_of(k) != Some(v.as_str()) {
            diff.insert(k.clone(), json!(v));
            added += 1;
        }
    }
    for k in &change.remove {
        if current.contains_key(k) {
            diff.insert(k.clone(), Value::Null);
            removed += 1;
        }
    }
    let verb = match map {
        MetadataMap::Annotations => "annotated",
        MetadataMap::Labels => match (added > 0, removed > 0) {
            (true, true) => "modified",
            (true, false) => "labeled",
            (false, true) => "unlabeled",
            (false, false) => "not labeled",
        },
    };
    let patch = (!diff.is_empty()).then(|| json!({"metadata": {map.field(): diff}}));
    Ok(Outcome { patch, verb })
}

pub async fn run(client: &Client, args: LabelArgs, map: MetadataMap) -> anyhow::Result<()> {
    let (resource_args, change_args) = split_args(&args.args);
    let change = parse_changes(map, &change_args)?;
    let refs = resource_args::parse(&resource_args)?;
    if refs.is_empty() {
        bail!("one or more resources must be specified as <resource> <name> or <resource>/<name>");
    }
    let mut errors = Vec::new();
    for r in &refs {
        let namespace = Some(client.namespace.as_str());
        let mut objects = Vec::new();
        if r.names.is_empty() {
            if args.selector.is_none() && !args.all {
                bail!("resource(s) were provided, but no name was specified");
            }
            let query: Vec<(&str, String)> = args
                .selector
                .iter()
                .map(|s| ("labelSelector", s.clone()))
                .collect();
            let list = client
                .get(&r.resource.collection_path(namespace), &query)
                .await?;
            objects.extend(list["items"].as_array().cloned().unwrap_or_default());
        } else {
            for name in &r.names {
                match client
                    .get_object(r.resource, namespace, name, crate::client::JSON)
                    .await
                {
                    Ok(object) => objects.push(object),
                    Err(e) => errors.push(e.into()),
                }
            }
        }
        for mut object in objects {
            if object.get("kind").is_none() {
                object["kind"] = json!(r.resource.kind);
                object["apiVersion"] = json!(r.resource.api_version());
            }
            let name = object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let current = object["metadata"][map.field()]
                .as_object()
                .cloned()
                .unwrap_or_default();
            if map == MetadataMap::Labels {
                for key in change.remove.iter().filter(|k| !current.contains_key(*k)) {
                    println!("label {key:?} not found.");
                }
            }
            let outcome = match plan(map, &current, &change, args.overwrite) {
                Ok(outcome) => outcome,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            if let Some(patch) = &outcome.patch {
                if let Err(e) = client
                    .patch(
                        &r.resource.object_path(namespace, &name),
                        PatchType::Merge,
                        &[],
                        patch,
                    )
                    .await
                {
                    errors.push(e.into());
                    continue;
                }
            }
            println!("{}", output::action_line(&object, outcome.verb, false));
        }
    }
    ErrorList(errors).into_result()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn labels(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn arguments_split_into_objects_and_changes() {
        let (resources, changes) = split_args(&strings(&["svc", "ngx-svc", "app=x", "old-"]));
        assert_eq!(resources, strings(&["svc", "ngx-svc"]));
        assert_eq!(changes, strings(&["app=x", "old-"]));
    }

    #[test]
    fn adding_and_removing_labels_is_one_merge_patch() {
        let change = parse_changes(MetadataMap::Labels, &strings(&["tier=web", "old-"])).unwrap();
        let outcome = plan(
            MetadataMap::Labels,
            &labels(json!({"app": "ngx", "old": "1"})),
            &change,
            false,
        )
        .unwrap();
        assert_eq!(
            outcome.patch,
            Some(json!({"metadata": {"labels": {"tier": "web", "old": null}}}))
        );
        assert_eq!(outcome.verb, "modified");
    }

    #[test]
    fn overwriting_needs_the_flag() {
        let change = parse_changes(MetadataMap::Labels, &strings(&["app=y"])).unwrap();
        let current = labels(json!({"app": "x"}));
        let err = plan(MetadataMap::Labels, &current, &change, false).unwrap_err();
        assert_eq!(
            crate::client::error_message(&err),
            "error: 'app' already has a value (x), and --overwrite is false"
        );
        let outcome = plan(MetadataMap::Labels, &current, &change, true).unwrap();
        assert_eq!(outcome.verb, "labeled");
        let err = plan(MetadataMap::Annotations, &current, &change, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--overwrite is false but found the following declared annotation(s): 'app' already has a value (x)"
        );
    }

    #[test]
    fn same_value_is_not_labeled_and_sends_nothing() {
        let change = parse_changes(MetadataMap::Labels, &strings(&["app=x"])).unwrap();
        let outcome = plan(
            MetadataMap::Labels,
            &labels(json!({"app": "x"})),
            &change,
            false,
        )
        .unwrap();
        assert_eq!(outcome.patch, None);
        assert_eq!(outcome.verb, "not labeled");
    }

    #[test]
    fn bad_specs_are_refused() {
        let err = parse_changes(MetadataMap::Labels, &strings(&["a=b=c"])).unwrap_err();
        assert_eq!(err.to_string(), "invalid label spec: a=b=c");
        let err = parse_changes(MetadataMap::Labels, &strings(&["a=x", "a-"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "can not both modify and remove a label in the same command"
        );
        let err = parse_changes(MetadataMap::Labels, &strings(&["a=has space"])).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("invalid label value: \"a=has space\": "));
        // Annotation values may hold '='.
        let change = parse_changes(MetadataMap::Annotations, &strings(&["note=a=b"])).unwrap();
        assert_eq!(change.set["note"], "a=b");
    }
}
