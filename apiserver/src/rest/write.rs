//! Writes: create, update (PUT) and patch.
//!
//! Every write goes through the same steps, in the order kube-apiserver
//! runs them:
//!
//! ```text
//! decode body ─▶ server-owned metadata ─▶ defaults ─▶ allocate (Services)
//!     ─▶ validate ─▶ storage: check name / resourceVersion, store, flush
//! ```
//!
//! Every write records who made it in `metadata.managedFields` (the
//! `fieldManager`, or the client's User-Agent), just after the defaults;
//! a `PATCH` with `application/apply-patch+yaml` is a server-side apply
//! (see [`crate::fieldmanager`]).
//!
//! Updates use optimistic concurrency. A client that sends the
//! `resourceVersion` it read gets 409 Conflict if the object has changed
//! since; a client that sends none (or a patch) has its change applied to
//! the latest version, retried if someone else wrote in between.

use std::sync::Arc;

use api::patch::PatchType;
use api::resources::ResourceType;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::objectmeta::{self, resource_version};
use super::request::{self, Target, WriteOptions};
use super::schema::{self, Decoded};
use super::{json_response_with_warnings, subject, App};
use crate::fieldmanager;
use crate::services::Allocation;
use crate::status::{FieldError, StatusError};
use crate::storage::ObjectKey;

/// Which part of an object a write may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The object itself: spec and metadata; `status` is kept as stored.
    Main,
    /// The `/status` subresource: only `status` changes.
    Status,
    /// A CertificateSigningRequest's `/approval`: only its `Approved` and
    /// `Denied` conditions change ([`crate::certificates`]).
    Approval,
}

/// How a write's fields are recorded in `managedFields`.
#[derive(Debug, Clone)]
pub enum Fields {
    /// An Update by this manager, through the object's endpoint or the
    /// named subresource (`status`, `scale`).
    Update {
        manager: String,
        subresource: &'static str,
    },
    /// Recorded already (a server-side apply), or the server's own write
    /// (a binding) that no manager owns.
    Untracked,
}

impl Fields {
    /// The Update of a client's request: its `fieldManager`, else its
    /// User-Agent.
    pub fn of_request(
        opts: &WriteOptions,
        headers: &HeaderMap,
        subresource: &'static str,
    ) -> Result<Fields, StatusError> {
        let manager = request_manager(opts, headers)?;
        Ok(Fields::Update {
            manager,
            subresource,
        })
    }

    fn track(&self, resource: &ResourceType, part: Part, old: Option<&Value>, new: &mut Value) {
        if let Fields::Update {
            manager,
            subresource,
        } = self
        {
            fieldmanager::track_update(resource, part, subresource, old, new, manager);
        }
    }
}

/// The manager a request writes as.
fn request_manager(opts: &WriteOptions, headers: &HeaderMap) -> Result<String, StatusError> {
    let field_manager = opts.field_manager.as_deref();
    fieldmanager::validate_field_manager(field_manager.unwrap_or_default())?;
    let user_agent = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    Ok(fieldmanager::manager_name(field_manager, user_agent))
}

/// The subresource a [`Part`] writes through, as managedFields names it.
pub fn subresource_of(part: Part) -> &'static str {
    match part {
        Part::Main => "",
        Part::Status => "status",
        Part::Approval => "approval",
    }
}

/// How long an update without a precondition keeps retrying when other
/// writes get in between (upstream retries until the request's deadline):
/// with many writers on one object, one of them wins each storage round,
/// so a fixed small number of attempts would refuse writes that only had
/// to wait their turn.
const UPDATE_RETRY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads the query options and decodes the body of a create or update.
fn decode_request(
    target: &Target,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Result<(WriteOptions, Decoded), StatusError> {
    let opts: WriteOptions = request::query(query)?;
    let raw = request::decode_object(body, &request::content_type(headers))?;
    let decoded = schema::decode_object(target.resource, raw, opts.field_validation()?)?;
    Ok((opts, decoded))
}

/// `POST .../services`
pub async fn create(
    app: &App,
    target: &Target,
    caller: Option<&api::user::UserInfo>,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Result<Response, StatusError> {
    let (
        opts,
        Decoded {
            mut object,
            warnings,
        },
    ) = decode_request(target, headers, query, body)?;
    if crate::certificates::is_csr(target.resource) {
        let caller = caller.ok_or_else(crate::authn::unauthorized)?;
        crate::certificates::prepare_for_create(&mut object, caller)?;
    }
    let fields = Fields::of_request(&opts, headers, "")?;
    let created = create_object(
        app,
        target.resource,
        target.namespace.as_deref(),
        object,
        opts.is_dry_run(),
        fields,
    )
    .await?;
    Ok(json_response_with_warnings(
        StatusCode::CREATED,
        &created,
        &warnings,
    ))
}

/// Creates `object` (already decoded) in `namespace`.
pub async fn create_object(
    app: &App,
    resource: &'static ResourceType,
    namespace: Option<&str>,
    mut object: Value,
    dry_run: bool,
    fields: Fields,
) -> Result<Arc<Value>, StatusError> {
    // Namespace: the URL's, which the body may repeat but not contradict.
    let namespace = if resource.namespaced {
        let from_body = object["metadata"]["namespace"].as_str().unwrap_or("");
        let Some(ns) = namespace else {
            return Err(StatusError::bad_request(format!(
                "{resource} must be created in a namespace: POST to .../namespaces/{{namespace}}/{}",
                resource.plural
            )));
        };
        if !from_body.is_empty() && from_body != ns {
            return Err(StatusError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        object["metadata"]["namespace"] = Value::String(ns.to_string());
        // Admission runs before validation, as upstream: a create into a
        // namespace that does not exist is 404 even when it is invalid.
        namespace_accepts_objects(app.store.get(&namespace_key(ns)), ns)?;
        Some(ns.to_string())
    } else {
        if let Some(meta) = object["metadata"].as_object_mut() {
            meta.remove("namespace");
        }
        None
    };

    // Name: given, or generated from generateName.
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let name = if name.is_empty() {
        match object["metadata"]["generateName"].as_str() {
            Some(prefix) if !prefix.is_empty() => {
                let generated = api::names::generate_name(prefix);
                object["metadata"]["name"] = Value::String(generated.clone());
                generated
            }
            _ => {
                return Err(StatusError::invalid(
                    subject(resource, ""),
                    &[FieldError::required(
                        "metadata.name",
                        "name or generateName is required",
                    )],
                ))
            }
        }
    } else {
        name
    };

    objectmeta::prepare_for_create(resource, &mut object);
    if (resource.group, resource.kind) == ("batch", "Job") {
        crate::jobs::generate_selector(&mut object);
    }
    crate::defaults::apply_defaults(resource, &mut object);
    // Ownership is of what the client sent and the defaults, not of what
    // admission and allocation add (the token volume, the ClusterIP).
    fields.track(resource, Part::Main, None, &mut object);
    // (In dev mode there are no identities: Pods get no token either.)
    if (resource.group, resource.kind) == ("", "Pod") && app.mode == crate::authn::Mode::Secure {
        crate::admission::service_account(&mut object);
    }
    let allocation = allocate(app, resource, &mut object, None)?;
    let errors = crate::validation::validate(resource, &object, None);
    if !errors.is_empty() {
        rollback(app, allocation);
        return Err(StatusError::invalid(subject(resource, &name), &errors));
    }
    if dry_run {
        rollback(app, allocation);
        return Ok(Arc::new(object));
    }

    let key = ObjectKey::new(resource, namespace.as_deref(), &name);
    let result = app
        .store
        .write(move |txn| {
            if let Some(ns) = &namespace {
                // Again, atomically with the write: it may have gone since.
                namespace_accepts_objects(txn.get(&namespace_key(ns)), ns)?;
            }
            if txn.get(&key).is_some() {
                return Err(StatusError::already_exists(subject(
                    key.resource,
                    &key.name,
                )));
            }
            Ok(txn.put(key, object))
        })
        .await;
    finish(app, allocation, result)
}

/// The key of the Namespace `ns`.
fn namespace_key(ns: &str) -> ObjectKey {
    let namespaces = api::resources::lookup("namespaces").expect("namespaces are in the table");
    ObjectKey::new(namespaces, None, ns)
}

/// Namespaced objects need their namespace (`namespace`, the stored
/// Namespace `ns` if any) to exist and not be going away: upstream's
/// NamespaceLifecycle admission.
fn namespace_accepts_objects(namespace: Option<Arc<Value>>, ns: &str) -> Result<(), StatusError> {
    match namespace {
        None => Err(StatusError::namespace_not_found(ns)),
        Some(n) if objectmeta::is_being_deleted(&n) => Err(StatusError::new(
            403,
            "Forbidden",
            format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// `PUT .../services/ngx-svc` (and `/status`)
pub async fn update(
    app: &App,
    target: &Target,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
    part: Part,
) -> Result<Response, StatusError> {
    let (opts, Decoded { object, warnings }) = decode_request(target, headers, query, body)?;
    let key = key_of(target);
    let body_name = object["metadata"]["name"].as_str().unwrap_or("");
    if body_name != key.name {
        return Err(StatusError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({})",
            key.name
        )));
    }
    if let Some(ns) = object["metadata"]["namespace"].as_str() {
        if target.resource.namespaced && !ns.is_empty() && ns != key.namespace {
            return Err(StatusError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    }
    let fields = Fields::of_request(&opts, headers, subresource_of(part))?;
    let updated = update_object(app, key, part, opts.is_dry_run(), fields, move |_current| {
        Ok(object.clone())
    })
    .await?;
    Ok(json_response_with_warnings(
        StatusCode::OK,
        &updated,
        &warnings,
    ))
}

/// `PATCH .../services/ngx-svc` (and `/status`)
pub async fn patch(
    app: &App,
    target: &Target,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
    part: Part,
) -> Result<Response, StatusError> {
    let opts: WriteOptions = request::query(query)?;
    let content_type = request::content_type(headers);
    if is_apply_patch(&content_type) {
        return super::apply::apply(app, target, &opts, body, part).await;
    }
    let patch_type = PatchType::from_content_type(&content_type)
        .ok_or_else(|| StatusError::unsupported_media_type(&content_type))?;
    if opts.force.is_some() {
        return Err(invalid_patch_options(FieldError::forbidden(
            "force",
            "may not be specified for non-apply patch",
        )));
    }
    let validation = opts.field_validation()?;
    let fields = Fields::of_request(&opts, headers, subresource_of(part))?;
    let resource = target.resource;
    let body = body.to_vec();
    let warnings = Arc::new(std::sync::Mutex::new(Vec::new()));
    let collected = warnings.clone();
    let updated = update_object(
        app,
        key_of(target),
        part,
        opts.is_dry_run(),
        fields,
        move |current| {
            let mut patched = patch_object(resource, patch_type, current, &body)?;
            // The patch applies to the latest version unless it names one
            // (then a newer version is a conflict); without this, a patch
            // racing another write would be refused instead of retried.
            if !names_resource_version(patch_type, &body) {
                objectmeta::forget_resource_version(&mut patched);
            }
            let decoded = schema::decode_object(resource, patched, validation)?;
            if let Ok(mut w) = collected.lock() {
                *w = decoded.warnings;
            }
            Ok(decoded.object)
        },
    )
    .await?;
    let warnings = warnings.lock().map(|w| w.clone()).unwrap_or_default();
    Ok(json_response_with_warnings(
        StatusCode::OK,
        &updated,
        &warnings,
    ))
}

/// Whether a patch body sets `metadata.resourceVersion`: a precondition.
fn names_resource_version(patch_type: PatchType, body: &[u8]) -> bool {
    let Ok(patch) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    match patch_type {
        PatchType::Json => patch.as_array().is_some_and(|ops| {
            ops.iter()
                .any(|op| op["path"] == "/metadata/resourceVersion" && op["op"] != "test")
        }),
        PatchType::Merge | PatchType::StrategicMerge => {
            patch["metadata"]["resourceVersion"].is_string()
        }
    }
}

/// True for `application/apply-patch+yaml`: a server-side apply.
pub fn is_apply_patch(content_type: &str) -> bool {
    content_type.split(';').next().unwrap_or("").trim() == "application/apply-patch+yaml"
}

/// 422 for bad PATCH options, as upstream's ValidatePatchOptions.
pub fn invalid_patch_options(error: FieldError) -> StatusError {
    StatusError::invalid(
        crate::status::Subject {
            plural: "",
            group: "meta.k8s.io",
            kind: "PatchOptions",
            name: "",
        },
        &[error],
    )
}

/// Applies a patch body to an object, mapping patch errors to 400/422.
pub fn patch_object(
    resource: &ResourceType,
    patch_type: PatchType,
    current: &Value,
    body: &[u8],
) -> Result<Value, StatusError> {
    api::patch::apply_patch(resource.kind, patch_type, current, body).map_err(|e| {
        if e.is_bad_request() {
            StatusError::bad_request(e.to_string())
        } else if let api::patch::PatchError::TooManyOperations { .. } = e {
            StatusError::new(413, "RequestEntityTooLarge", e.to_string())
        } else {
            StatusError::new(422, "Invalid", e.to_string())
        }
    })
}

pub fn key_of(target: &Target) -> ObjectKey {
    ObjectKey::new(
        target.resource,
        target.namespace.as_deref(),
        target.name.as_deref().unwrap_or_default(),
    )
}

/// What the storage step of an update did.
enum Written {
    Stored(Arc<Value>),
    /// Someone else wrote first; the update can be retried on the new state.
    Raced,
}

/// The update loop (Kubernetes' `GuaranteedUpdate`): read the current
/// object, compute the new one with `mutate`, and store it only if nobody
/// wrote in between; otherwise try again.
pub async fn update_object<F>(
    app: &App,
    key: ObjectKey,
    part: Part,
    dry_run: bool,
    fields: Fields,
    mutate: F,
) -> Result<Arc<Value>, StatusError>
where
    F: Fn(&Value) -> Result<Value, StatusError>,
{
    let resource = key.resource;
    let deadline = std::time::Instant::now() + UPDATE_RETRY_DEADLINE;
    while std::time::Instant::now() < deadline {
        let current = app.get_object(&key)?;
        let current_rv = resource_version(&current).unwrap_or("").to_string();
        let proposed = mutate(&current)?;

        // A resourceVersion in the request is a precondition.
        let client_precondition = match resource_version(&proposed) {
            Some(rv) if rv != current_rv => {
                return Err(StatusError::conflict(subject(resource, &key.name)))
            }
            Some(_) => true,
            None => false,
        };

        let mut new = merge_part(resource, part, &current, proposed);
        if crate::certificates::is_csr(resource) {
            crate::certificates::prepare_for_update(part, &current, &mut new);
        }
        // Name and namespace come from the URL; a body may leave them out.
        new["metadata"]["name"] = Value::String(key.name.clone());
        if resource.namespaced {
            new["metadata"]["namespace"] = Value::String(key.namespace.clone());
        }
        objectmeta::prepare_for_update(resource, &current, &mut new);
        crate::defaults::apply_defaults(resource, &mut new);
        fields.track(resource, part, Some(&current), &mut new);
        if objectmeta::same_apart_from_version(&current, &new) {
            return Ok(current); // nothing to write
        }
        let allocation = match part {
            Part::Main => allocate(app, resource, &mut new, Some(&current))?,
            Part::Status | Part::Approval => None,
        };
        let errors = crate::validation::validate(resource, &new, Some(&current));
        if !errors.is_empty() {
            rollback(app, allocation);
            return Err(StatusError::invalid(subject(resource, &key.name), &errors));
        }
        if dry_run {
            rollback(app, allocation);
            return Ok(Arc::new(new));
        }

        // Removing the last finalizer of an object being deleted deletes it.
        let finalized = objectmeta::is_being_deleted(&new)
            && objectmeta::finalizers(&new).is_empty()
            && !objectmeta::finalizers(&current).is_empty();
        let write_key = key.clone();
        let result = app
            .store
            .write(move |txn| {
                let stored = txn
                    .get(&write_key)
                    .ok_or_else(|| StatusError::not_found(subject(resource, &write_key.name)))?;
                if resource_version(&stored).unwrap_or("") != current_rv {
                    return Ok(Written::Raced);
                }
                if finalized {
                    return Ok(Written::Stored(txn.delete(write_key).unwrap_or(stored)));
                }
                Ok(Written::Stored(txn.put(write_key, new)))
            })
            .await;
        match result {
            Ok(Written::Stored(stored)) => {
                if finalized && resource.kind == "Service" {
                    app.services.release(&stored);
                }
                return finish(app, allocation, Ok(stored));
            }
            Ok(Written::Raced) => {
                rollback(app, allocation);
                if client_precondition {
                    return Err(StatusError::conflict(subject(resource, &key.name)));
                }
                // Let the writer that won finish before reading again.
                tokio::task::yield_now().await;
            }
            Err(e) => {
                rollback(app, allocation);
                return Err(e);
            }
        }
    }
    Err(StatusError::conflict(subject(resource, &key.name)))
}

/// Combines the stored object with what the client sent, keeping the part
/// the client may not change through this endpoint.
fn merge_part(resource: &ResourceType, part: Part, current: &Value, mut proposed: Value) -> Value {
    match part {
        Part::Main if objectmeta::has_status_subresource(resource) => {
            match current.get("status") {
                Some(status) => proposed["status"] = status.clone(),
                None => {
                    if let Some(obj) = proposed.as_object_mut() {
                        obj.remove("status");
                    }
                }
            }
            proposed
        }
        Part::Main => proposed,
        Part::Status | Part::Approval => {
            let mut merged = current.clone();
            match proposed.get("status") {
                Some(status) => merged["status"] = status.clone(),
                None => {
                    if let Some(obj) = merged.as_object_mut() {
                        obj.remove("status");
                    }
                }
            }
            // Keep the client's precondition, if any.
            if let Some(rv) = resource_version(&proposed) {
                merged["metadata"]["resourceVersion"] = Value::String(rv.to_string());
            }
            merged
        }
    }
}

/// Runs the Service allocators for Services; nothing for other kinds.
fn allocate(
    app: &App,
    resource: &ResourceType,
    object: &mut Value,
    old: Option<&Value>,
) -> Result<Option<Allocation>, StatusError> {
    if resource.kind != "Service" {
        return Ok(None);
    }
    app.services.allocate(object, old).map(Some)
}

fn rollback(app: &App, allocation: Option<Allocation>) {
    if let Some(a) = allocation {
        a.rollback(&app.services);
    }
}

/// Settles an allocation after the storage write: keep it if the write
/// succeeded, free it if not.
fn finish(
    app: &App,
    allocation: Option<Allocation>,
    result: Result<Arc<Value>, StatusError>,
) -> Result<Arc<Value>, StatusError> {
    match (&result, allocation) {
        (Ok(_), Some(a)) => a.commit(&app.services),
        (Err(_), Some(a)) => a.rollback(&app.services),
        (_, None) => {}
    }
    result
}
