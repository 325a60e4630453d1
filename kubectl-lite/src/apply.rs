//! `kubectl apply -f`: make the cluster match the manifest.
//!
//! Apply is *declarative*: the manifest says what should exist, and apply
//! works out what to do. For each object of the manifest it reads the live
//! object; if there is none it creates it, otherwise it sends only the
//! difference as a *three-way strategic merge patch* computed from
//!
//! 1. the manifest applied last time (kept on the object in the annotation
//!    `kubectl.kubernetes.io/last-applied-configuration`): fields that were
//!    in it and are gone from the new manifest are deleted;
//! 2. the new manifest: fields it sets are set;
//! 3. the live object: fields nobody declared (the ClusterIP the API
//!    server allocated, a replica count changed by `kubectl scale`) are
//!    left alone.
//!
//! Re-applying an unchanged manifest therefore computes `{}` and prints
//! `unchanged`. This module also reads manifests (files, directories, `-`
//! for stdin), which `delete -f` shares.

use std::io::Read as _;
use std::path::Path;

use anyhow::anyhow;
use clap::Args;
use serde_json::{json, Value};

use api::decode::{decode_manifests, Document};
use api::resources::{self, ResourceType};

use crate::client::{ApiError, Client, ErrorList, PatchType};
use crate::output;

/// Where apply remembers what it applied.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The field manager kubectl's client-side apply reports.
const FIELD_MANAGER: &str = "kubectl-client-side-apply";

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Files, directories or - (stdin) holding the manifests
    #[arg(short = 'f', long = "filename", required = true)]
    pub filenames: Vec<String>,
}

/// One object read from a manifest, with where it came from.
#[derive(Debug, Clone)]
pub struct ManifestObject {
    /// The file as kubectl names it in messages (`ngx-svc.yml`, `STDIN`).
    pub source: String,
    pub document: Document,
}

/// Reads every `-f` argument: a file, a directory (its `.yaml`, `.yml` and
/// `.json` files, in name order) or `-` for stdin. Files that cannot be
/// read or parsed are reported and skipped; the others are still used.
pub fn read_manifests(filenames: &[String]) -> (Vec<ManifestObject>, Vec<anyhow::Error>) {
    let mut objects = Vec::new();
    let mut errors = Vec::new();
    for name in filenames {
        let mut files: Vec<(String, String)> = Vec::new();
        if name == "-" {
            let mut text = String::new();
            match std::io::stdin().read_to_string(&mut text) {
                Ok(_) => files.push(("STDIN".to_string(), text)),
                Err(e) => errors.push(anyhow!("reading stdin: {e}")),
            }
        } else {
            let path = Path::new(name);
            if !path.exists() {
                errors.push(anyhow!("the path \"{name}\" does not exist"));
                continue;
            }
            if path.is_dir() {
                let mut entries: Vec<_> = match std::fs::read_dir(path) {
                    Ok(entries) => entries.filter_map(Result::ok).map(|e| e.path()).collect(),
                    Err(e) => {
                        errors.push(anyhow!("error reading {name}: {e}"));
                        continue;
                    }
                };
                entries.sort();
                for entry in entries {
                    let is_manifest = entry
                        .extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
                    if entry.is_file() && is_manifest {
                        let source = entry.display().to_string();
                        match std::fs::read_to_string(&entry) {
                            Ok(text) => files.push((source, text)),
                            Err(e) => errors.push(anyhow!("error reading {source}: {e}")),
                        }
                    }
                }
            } else {
                match std::fs::read_to_string(path) {
                    Ok(text) => files.push((name.clone(), text)),
                    Err(e) => errors.push(anyhow!("error reading {name}: {e}")),
                }
            }
        }
        for (source, text) in files {
            match decode_manifests(&text, &source) {
                Ok(documents) => {
                    objects.extend(documents.into_iter().map(|document| ManifestObject {
                        source: source.clone(),
                        document,
                    }))
                }
                Err(e) => errors.push(e.into()),
            }
        }
    }
    (objects, errors)
}

/// What an object of a manifest is and where it lives.
#[derive(Debug, Clone)]
pub struct Target {
    pub resource: &'static ResourceType,
    pub name: String,
    /// `None` for cluster-scoped objects (Namespaces, Nodes).
    pub namespace: Option<String>,
}

impl Target {
    /// Kubernetes' `Name: "x", Namespace: "y"` description of an object,
    /// used in kubectl's longer error messages.
    fn describe(&self) -> String {
        format!(
            "Resource: \"{}/{}, Resource={}\", GroupVersionKind: \"{}/{}, Kind={}\"\nName: \"{}\", Namespace: \"{}\"",
            self.resource.group,
            self.resource.version,
            self.resource.plural,
            self.resource.group,
            self.resource.version,
            self.resource.kind,
            self.name,
            self.namespace.as_deref().unwrap_or_default()
        )
    }

    pub fn object_path(&self) -> String {
        self.resource
            .object_path(self.namespace.as_deref(), &self.name)
    }

    pub fn collection_path(&self) -> String {
        self.resource.collection_path(self.namespace.as_deref())
    }
}

/// Finds the resource of a manifest object and settles its namespace: the
/// manifest's, else `-n`, else the context's. With an explicit `-n`, a
/// manifest naming another namespace is refused, as kubectl does.
pub fn resolve_target(client: &Client, object: &ManifestObject) -> anyhow::Result<Target> {
    let value = &object.document.value;
    let api_version = value["apiVersion"].as_str().unwrap_or_default();
    let kind = value["kind"].as_str().unwrap_or_default();
    let name = value["metadata"]["name"].as_str().unwrap_or_default();
    let manifest_namespace = value["metadata"]["namespace"].as_str().unwrap_or_default();
    let Some(resource) = resources::by_kind(api_version, kind) else {
        let version = api_version.rsplit('/').next().unwrap_or(api_version);
        let group = api_version
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or_default();
        let group_version = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        return Err(anyhow!(
            "resource mapping not found for name: {name:?} namespace: {manifest_namespace:?} from {:?}: no matches for kind {kind:?} in version {group_version:?}\nensure CRDs are installed first",
            object.source
        ));
    };
    if value["metadata"]["generateName"].is_string() && name.is_empty() {
        return Err(anyhow!(
            "from {}: cannot use generate name with apply",
            value["metadata"]["generateName"]
                .as_str()
                .unwrap_or_default()
        ));
    }
    let namespace = if resource.namespaced {
        if client.namespace_explicit
            && !manifest_namespace.is_empty()
            && manifest_namespace != client.namespace
        {
            return Err(anyhow!(
                "the namespace from the provided object {manifest_namespace:?} does not match the namespace {:?}. You must pass '--namespace={manifest_namespace}' to perform this operation.",
                client.namespace
            ));
        }
        Some(if manifest_namespace.is_empty() {
            client.namespace.clone()
        } else {
            manifest_namespace.to_string()
        })
    } else {
        None
    };
    Ok(Target {
        resource,
        name: name.to_string(),
        namespace,
    })
}

/// Compact JSON the way Go's encoder writes it, plus its final newline.
fn go_compact_json(value: &Value) -> String {
    // serde_json sorts keys like Go does for maps; only Go's HTML escaping
    // needs adding.
    let mut text = serde_json::to_string(value).unwrap_or_default();
    for (c, escaped) in [('<', "\\u003c"), ('>', "\\u003e"), ('&', "\\u0026")] {
        text = text.replace(c, escaped);
    }
    text.push('\n');
    text
}

/// The manifest as apply sends it: namespace filled in, and the
/// last-applied annotation set to the manifest itself (without that
/// annotation, with an empty `annotations` map when it had none: kubectl's
/// exact bytes, so that the annotation reads the same as on a real
/// cluster).
pub fn with_last_applied(manifest: &Value, namespace: Option<&str>) -> Value {
    let mut object = manifest.clone();
    if let Some(ns) = namespace {
        object["metadata"]["namespace"] = json!(ns);
    }
    let mut annotations = object["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    annotations.remove(LAST_APPLIED);
    object["metadata"]["annotations"] = Value::Object(annotations.clone());
    let last_applied = go_compact_json(&object);
    annotations.insert(LAST_APPLIED.to_string(), json!(last_applied));
    object["metadata"]["annotations"] = Value::Object(annotations);
    object
}

pub async fn run(client: &Client, args: ApplyArgs) -> anyhow::Result<()> {
    let (objects, mut errors) = read_manifests(&args.filenames);
    if objects.is_empty() && errors.is_empty() {
        anyhow::bail!("no objects passed to apply");
    }
    for object in &objects {
        match apply_one(client, object).await {
            Ok(line) => println!("{line}"),
            Err(e) => errors.push(e),
        }
    }
    ErrorList(errors).into_result()
}

/// Applies one object and says what happened (`service/ngx-svc created`).
async fn apply_one(client: &Client, object: &ManifestObject) -> anyhow::Result<String> {
    let target = resolve_target(client, object)?;
    let modified = with_last_applied(&object.document.value, target.namespace.as_deref());
    let query = [
        ("fieldManager", FIELD_MANAGER.to_string()),
        ("fieldValidation", "Strict".to_string()),
    ];
    if target.name.is_empty() {
        return Err(anyhow!(
            "error when retrieving current configuration of:\n{}\nfrom server for: {:?}: resource name may not be empty",
            target.describe(),
            object.source
        ));
    }
    let current = match client.get(&target.object_path(), &[]).await {
        Ok(current) => current,
        Err(e) if e.is_not_found() => {
            let created = client
                .create(&target.collection_path(), &query, &modified)
                .await
                .map_err(|e| e.with_source("creating", &object.source))?;
            return Ok(output::action_line(
                &or_sent(created, &modified),
                "created",
                false,
            ));
        }
        Err(ApiError::Status(mut status)) => {
            status.message = format!(
                "error when retrieving current configuration of:\n{}\nfrom server for: {:?}: {}",
                target.describe(),
                object.source,
                status.message
            );
            return Err(ApiError::Status(status).into());
        }
        Err(e) => return Err(e.into()),
    };
    let last_applied: Option<Value> = current["metadata"]["annotations"][LAST_APPLIED]
        .as_str()
        .and_then(|text| serde_json::from_str(text).ok());
    if last_applied.is_none() {
        eprintln!(
            "Warning: resource {}/{} is missing the {LAST_APPLIED} annotation which is required by kubectl-lite apply. kubectl-lite apply should only be used on resources created declaratively by either kubectl-lite create --save-config or kubectl-lite apply. The missing annotation will be patched automatically.",
            target.resource.plural, target.name
        );
    }
    let patch = api::patch::three_way_strategic_patch(
        target.resource.kind,
        last_applied.as_ref(),
        &modified,
        &current,
    )
    .map_err(|e| {
        anyhow!(
            "error when applying patch:\nto:\n{}\nfor: {:?}: {e}",
            target.describe(),
            object.source
        )
    })?;
    if patch.as_object().is_some_and(|p| p.is_empty()) {
        return Ok(output::action_line(&current, "unchanged", false));
    }
    let patched = client
        .patch(
            &target.object_path(),
            PatchType::StrategicMerge,
            &query,
            &patch,
        )
        .await
        .map_err(|e| match e {
            ApiError::Status(mut status) => {
                status.message = format!(
                    "error when applying patch:\n{patch}\nto:\n{}\nfor: {:?}: {}",
                    target.describe(),
                    object.source,
                    status.message
                );
                anyhow::Error::new(ApiError::Status(status))
            }
            other => other.into(),
        })?;
    Ok(output::action_line(
        &or_sent(patched, &modified),
        "configured",
        false,
    ))
}

/// The server's answer, or what we sent when the answer lacks a kind (so
/// the printed name is always right).
fn or_sent(answer: Value, sent: &Value) -> Value {
    if answer["kind"].is_string() && answer["metadata"]["name"].is_string() {
        answer
    } else {
        sent.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubeconfig::ClusterTarget;

    fn client(namespace: &str, explicit: bool) -> Client {
        Client::new(
            &ClusterTarget {
                config: kube::Config::new("http://127.0.0.1:1".parse().unwrap()),
                server: "http://127.0.0.1:1".into(),
                namespace: namespace.into(),
            },
            explicit,
        )
        .unwrap()
    }

    fn manifest(value: Value) -> ManifestObject {
        ManifestObject {
            source: "ngx-svc.yml".into(),
            document: Document {
                index: 1,
                line: 1,
                value,
            },
        }
    }

    fn service() -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ngx-svc"},
               "spec": {"selector": {"app": "ngx-dep"},
                        "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}]}})
    }

    #[test]
    fn last_applied_is_kubectls_compact_json() {
        let object = with_last_applied(&service(), Some("default"));
        assert_eq!(
            object["metadata"]["annotations"][LAST_APPLIED],
            "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"annotations\":{},\"name\":\"ngx-svc\",\"namespace\":\"default\"},\"spec\":{\"ports\":[{\"port\":80,\"protocol\":\"TCP\",\"targetPort\":80}],\"selector\":{\"app\":\"ngx-dep\"}}}\n"
        );
        assert_eq!(object["metadata"]["namespace"], "default");
        // Applying the annotated object again gives the same annotation.
        let again = with_last_applied(&object, Some("default"));
        assert_eq!(again, object);
    }

    #[tokio::test]
    async fn namespace_comes_from_manifest_then_flag() {
        let mut value = service();
        let target = resolve_target(&client("lesson", false), &manifest(value.clone())).unwrap();
        assert_eq!(target.namespace.as_deref(), Some("lesson"));
        assert_eq!(
            target.object_path(),
            "/api/v1/namespaces/lesson/services/ngx-svc"
        );
        value["metadata"]["namespace"] = json!("web");
        let target = resolve_target(&client("lesson", false), &manifest(value.clone())).unwrap();
        assert_eq!(target.namespace.as_deref(), Some("web"));
        let err = resolve_target(&client("lesson", true), &manifest(value)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the namespace from the provided object \"web\" does not match the namespace \"lesson\". You must pass '--namespace=web' to perform this operation."
        );
    }

    #[tokio::test]
    async fn cluster_scoped_objects_have_no_namespace() {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "lesson"}});
        let target = resolve_target(&client("default", false), &manifest(ns)).unwrap();
        assert_eq!(target.namespace, None);
        assert_eq!(target.object_path(), "/api/v1/namespaces/lesson");
    }

    #[tokio::test]
    async fn unknown_kinds_are_named() {
        let widget =
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}});
        let err = resolve_target(&client("default", false), &manifest(widget)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "resource mapping not found for name: \"w\" namespace: \"\" from \"ngx-svc.yml\": no matches for kind \"Widget\" in version \"example.com/v1\"\nensure CRDs are installed first"
        );
    }

    #[test]
    fn directories_are_read_in_name_order_and_bad_files_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("b.yml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a2\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();
        let (objects, errors) = read_manifests(&[
            dir.path().display().to_string(),
            "/nonexistent.yml".to_string(),
        ]);
        let names: Vec<&str> = objects
            .iter()
            .map(|o| o.document.value["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["a", "a2", "b"]);
        assert!(objects[0].source.ends_with("a.yaml"));
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].to_string(),
            "the path \"/nonexistent.yml\" does not exist"
        );
    }
}
