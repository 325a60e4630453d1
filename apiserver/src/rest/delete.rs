//! Deletes: immediate, graceful, and held by finalizers.
//!
//! Deleting in Kubernetes is not always instant:
//! - a Pod running on a node is deleted *gracefully*: the server only sets
//!   `deletionTimestamp` (now + grace period); the node's kubelet stops the
//!   containers (SIGTERM, then SIGKILL) and then deletes the Pod for good
//!   with a grace period of 0;
//! - an object with `metadata.finalizers` stays, marked with
//!   `deletionTimestamp`, until whoever owns each finalizer removes it;
//! - a Namespace turns `Terminating`; its contents are deleted, then it is.
//!
//! `kubectl delete` waits for the object to be gone in all three cases.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};

use super::objectmeta::{self, resource_version};
use super::request::{self, Target, WriteOptions};
use super::write::key_of;
use super::{json_response, subject, App};
use crate::status::StatusError;
use crate::storage::ObjectKey;

/// Namespaces that exist from the first start and may not be deleted.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// The finalizer that makes the garbage collector orphan the dependents
/// (remove their ownerReferences) before the owner goes.
pub const ORPHAN_FINALIZER: &str = "orphan";

/// The finalizer that makes the garbage collector delete the dependents
/// before the owner goes.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

/// The parts of `DeleteOptions` kube-lite honours.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<String>,
    pub preconditions: Option<Preconditions>,
    #[serde(default)]
    pub dry_run: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Preconditions {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

/// What a delete did.
pub enum Deleted {
    /// The object is gone; this was its last state.
    Gone(Arc<Value>),
    /// The object is marked for deletion and still exists.
    Pending(Arc<Value>),
}

/// Reads delete options from the body (kubectl sends
/// `{"propagationPolicy":"Background"}`, or the same in protobuf) and the
/// query.
fn options(
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(DeleteOptions, bool), StatusError> {
    let q: WriteOptions = request::query(query)?;
    let invalid =
        |e: serde_json::Error| StatusError::bad_request(format!("invalid DeleteOptions: {e}"));
    let mut opts: DeleteOptions = if body.iter().all(u8::is_ascii_whitespace) {
        DeleteOptions::default()
    } else if request::content_type(headers) == super::protobuf::PROTOBUF {
        serde_json::from_value(super::protobuf::decode(body)?).map_err(invalid)?
    } else {
        serde_json::from_slice(body).map_err(invalid)?
    };
    if opts.grace_period_seconds.is_none() {
        opts.grace_period_seconds = q.grace_period_seconds;
    }
    if opts.propagation_policy.is_none() {
        opts.propagation_policy = q.propagation_policy.clone();
    }
    let dry_run = q.is_dry_run() || opts.dry_run.iter().any(|d| d == "All");
    Ok((opts, dry_run))
}

/// `DELETE .../services/ngx-svc`
pub async fn delete(
    app: &Arc<super::App>,
    target: &Target,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, StatusError> {
    let (opts, dry_run) = options(query, headers, body)?;
    let key = key_of(target);
    match delete_object(app, key, &opts, dry_run).await? {
        Deleted::Gone(last) if target.resource.returns_deleted_object() => {
            Ok(json_response(StatusCode::OK, &*last))
        }
        Deleted::Gone(last) => Ok(json_response(
            StatusCode::OK,
            &success_status(target, &last),
        )),
        Deleted::Pending(object) => Ok(json_response(StatusCode::OK, &*object)),
    }
}

/// The `Status` answered for an object that is gone.
fn success_status(target: &Target, last: &Value) -> Value {
    let mut details = json!({
        "name": last["metadata"]["name"],
        "kind": target.resource.plural,
        "uid": last["metadata"]["uid"],
    });
    if !target.resource.group.is_empty() {
        details["group"] = json!(target.resource.group);
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}

/// Deletes one object, gracefully or through finalizers where Kubernetes
/// would.
///
/// Without preconditions the caller asked to delete whatever is there, so
/// a write that lands between our read and our delete (a controller
/// updating the status, say) is no reason to answer 409: decide again on
/// the new version and delete that (etcd3's Delete in kube-apiserver
/// retries the same way). With preconditions, a conflict is the answer.
pub async fn delete_object(
    app: &Arc<App>,
    key: ObjectKey,
    opts: &DeleteOptions,
    dry_run: bool,
) -> Result<Deleted, StatusError> {
    const ATTEMPTS: usize = 16;
    for _ in 1..ATTEMPTS {
        match delete_once(app, key.clone(), opts, dry_run).await {
            Err(e) if e.reason == "Conflict" && opts.preconditions.is_none() => {
                tracing::debug!(resource = %key.resource, name = %key.name, "changed while deleting; deciding again");
            }
            answer => return answer,
        }
    }
    delete_once(app, key, opts, dry_run).await
}

async fn delete_once(
    app: &Arc<App>,
    key: ObjectKey,
    opts: &DeleteOptions,
    dry_run: bool,
) -> Result<Deleted, StatusError> {
    let resource = key.resource;
    let current = app.get_object(&key)?;
    if let Some(p) = &opts.preconditions {
        let uid_differs = p
            .uid
            .as_deref()
            .is_some_and(|u| current["metadata"]["uid"].as_str() != Some(u));
        let rv_differs = p
            .resource_version
            .as_deref()
            .is_some_and(|rv| resource_version(&current) != Some(rv));
        if uid_differs || rv_differs {
            return Err(StatusError::conflict(subject(resource, &key.name)));
        }
    }

    if resource.kind == "Namespace" {
        return delete_namespace(app, key, dry_run).await;
    }

    // Orphan and Foreground deletion hand the object to the garbage
    // collector through a finalizer: it first orphans or deletes the
    // dependents, then removes the finalizer, which deletes the object.
    let policy_finalizer = match opts.propagation_policy.as_deref() {
        None | Some("") | Some("Background") => None,
        Some("Orphan") => Some(ORPHAN_FINALIZER),
        Some("Foreground") => Some(FOREGROUND_FINALIZER),
        Some(other) => {
            return Err(StatusError::bad_request(format!(
                "propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            )))
        }
    };

    // Graceful or finalized: mark, do not remove.
    if let Some(deadline) = graceful_deadline(&current, opts) {
        return mark_for_deletion(app, key, deadline, policy_finalizer, dry_run).await;
    }
    if policy_finalizer.is_some() || !objectmeta::finalizers(&current).is_empty() {
        let grace = GraceDeadline {
            at: objectmeta::now_rfc3339(),
            seconds: 0,
        };
        return mark_for_deletion(app, key, grace, policy_finalizer, dry_run).await;
    }

    if dry_run {
        return Ok(Deleted::Gone(current));
    }
    let expected_rv = resource_version(&current).unwrap_or("").to_string();
    let name = key.name.clone();
    let last = app
        .store
        .write(move |txn| {
            let stored = txn
                .get(&key)
                .ok_or_else(|| StatusError::not_found(subject(resource, &key.name)))?;
            if resource_version(&stored) != Some(expected_rv.as_str()) {
                // Someone changed it after we decided how to delete it:
                // `delete_object` decides again.
                return Err(StatusError::conflict(subject(resource, &key.name)));
            }
            Ok(txn.delete(key).unwrap_or(stored))
        })
        .await?;
    if resource.kind == "Service" {
        app.services.release(&last);
    }
    tracing::debug!(resource = %resource, name, "deleted");
    Ok(Deleted::Gone(last))
}

/// When (and with what grace period) a Pod's deletion completes.
struct GraceDeadline {
    at: String,
    seconds: i64,
}

/// A Pod on a node that is still running gets a grace period; everything
/// else goes at once. `gracePeriodSeconds=0` means "now".
fn graceful_deadline(current: &Value, opts: &DeleteOptions) -> Option<GraceDeadline> {
    if current["kind"] != "Pod" {
        return None;
    }
    let on_a_node = current["spec"]["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty());
    let finished = matches!(
        current["status"]["phase"].as_str(),
        Some("Succeeded") | Some("Failed")
    );
    let seconds = opts
        .grace_period_seconds
        .or_else(|| current["spec"]["terminationGracePeriodSeconds"].as_i64())
        .unwrap_or(30);
    if !on_a_node || finished || seconds <= 0 {
        return None;
    }
    // A second delete may shorten the grace period, never lengthen it.
    if let Some(existing) = current["metadata"]["deletionGracePeriodSeconds"].as_i64() {
        if existing <= seconds {
            return Some(GraceDeadline {
                at: current["metadata"]["deletionTimestamp"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                seconds: existing,
            });
        }
    }
    let at = (chrono::Utc::now() + chrono::Duration::seconds(seconds))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    Some(GraceDeadline { at, seconds })
}

async fn mark_for_deletion(
    app: &App,
    key: ObjectKey,
    deadline: GraceDeadline,
    finalizer: Option<&'static str>,
    dry_run: bool,
) -> Result<Deleted, StatusError> {
    let is_pod = key.resource.kind == "Pod";
    // Metadata the update path preserves from the stored object, so write
    // it directly here.
    let resource = key.resource;
    if dry_run {
        return Ok(Deleted::Pending(app.get_object(&key)?));
    }
    let marked = app
        .store
        .write(move |txn| {
            let stored = txn
                .get(&key)
                .ok_or_else(|| StatusError::not_found(subject(resource, &key.name)))?;
            let mut object = (*stored).clone();
            let already = objectmeta::is_being_deleted(&object);
            let mut added_finalizer = false;
            if let Some(f) = finalizer {
                if !objectmeta::finalizers(&object).iter().any(|x| x == f) {
                    let list = &mut object["metadata"]["finalizers"];
                    if !list.is_array() {
                        *list = json!([]);
                    }
                    if let Some(a) = list.as_array_mut() {
                        a.push(json!(f));
                    }
                    added_finalizer = true;
                }
            }
            if already
                && !added_finalizer
                && object["metadata"]["deletionGracePeriodSeconds"].as_i64()
                    == Some(deadline.seconds)
            {
                return Ok(stored);
            }
            if !already || is_pod {
                object["metadata"]["deletionTimestamp"] = json!(deadline.at);
                object["metadata"]["deletionGracePeriodSeconds"] = json!(deadline.seconds);
            }
            Ok(txn.put(key, object))
        })
        .await?;
    Ok(Deleted::Pending(marked))
}

/// Namespaces go `Terminating`; a background task deletes what is in them,
/// then the namespace itself (kube-controller-manager's namespace
/// controller does this in Kubernetes).
async fn delete_namespace(
    app: &Arc<App>,
    key: ObjectKey,
    dry_run: bool,
) -> Result<Deleted, StatusError> {
    if SYSTEM_NAMESPACES.contains(&key.name.as_str()) {
        return Err(StatusError::new(
            403,
            "Forbidden",
            format!(
                "namespaces \"{}\" is forbidden: this namespace may not be deleted",
                key.name
            ),
        ));
    }
    if dry_run {
        return Ok(Deleted::Pending(app.get_object(&key)?));
    }
    let resource = key.resource;
    let write_key = key.clone();
    let marked = app
        .store
        .write(move |txn| {
            let stored = txn
                .get(&write_key)
                .ok_or_else(|| StatusError::not_found(subject(resource, &write_key.name)))?;
            if objectmeta::is_being_deleted(&stored) {
                return Ok(stored);
            }
            let mut object = (*stored).clone();
            object["metadata"]["deletionTimestamp"] = json!(objectmeta::now_rfc3339());
            object["status"]["phase"] = json!("Terminating");
            Ok(txn.put(write_key, object))
        })
        .await?;
    let app = app.clone();
    let namespace = key.name.clone();
    tokio::spawn(crate::namespaces::finalize(app, namespace));
    Ok(Deleted::Pending(marked))
}

/// `DELETE .../services?labelSelector=...`: deletes every match, answers
/// the list of what was deleted.
pub async fn delete_collection(
    app: &Arc<App>,
    target: &Target,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, StatusError> {
    let (opts, dry_run) = options(query, headers, body)?;
    let read: request::ReadOptions = request::query(query)?;
    let labels = match read.label_selector.as_deref() {
        Some(s) if !s.is_empty() => api::selector::LabelSelector::parse(s)
            .map_err(|e| StatusError::bad_request(e.to_string()))?,
        _ => Default::default(),
    };
    let fields = match read.field_selector.as_deref() {
        Some(s) if !s.is_empty() => api::selector::FieldSelector::parse(s)
            .map_err(|e| StatusError::bad_request(e.to_string()))?,
        _ => Default::default(),
    };
    let names: Vec<(String, String)> = app
        .store
        .snapshot()
        .list(target.resource, target.namespace.as_deref(), None)
        .filter(|(_, o)| labels.matches_value(o) && fields.matches_value(o))
        .map(|(k, _)| k.clone())
        .collect();
    let mut items = Vec::new();
    for (ns, name) in names {
        let key = ObjectKey::new(target.resource, Some(&ns), &name);
        match delete_object(app, key, &opts, dry_run).await {
            Ok(Deleted::Gone(o)) | Ok(Deleted::Pending(o)) => items.push((*o).clone()),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "kind": target.resource.list_kind(),
            "apiVersion": target.resource.api_version(),
            "metadata": {},
            "items": items,
        }),
    ))
}
