//! Reads: get, list and watch.
//!
//! A list answers a snapshot of the cache together with the
//! resourceVersion it was taken at; a client then watches from exactly that
//! version and never misses a change. Lists filter by label and field
//! selectors, page with `limit`/`continue`, and come back as a `Table` when
//! `kubectl get` asks for one.

use std::sync::Arc;
use std::time::Duration;

use api::resources::ResourceType;
use api::selector::{FieldSelector, LabelSelector};
use api::table::IncludeObject;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use serde_json::{json, Value};

use super::request::{self, ReadOptions, Rendering, Target};
use super::{json_response, App};
use crate::status::StatusError;
use crate::storage::ObjectKey;
use crate::watch::{self, Filter, Render, Start, WatchRequest};

/// `GET .../services/ngx-svc`
pub fn get(
    app: &App,
    target: &Target,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Response, StatusError> {
    let opts: ReadOptions = request::query(query)?;
    let name = target.name.as_deref().unwrap_or_default();
    let key = ObjectKey::new(target.resource, target.namespace.as_deref(), name);
    let object = app.get_object(&key)?;
    let body = match request::rendering(headers) {
        Rendering::Objects => (*object).clone(),
        Rendering::Table => api::table::to_table(
            target.resource,
            std::slice::from_ref(&object),
            chrono::Utc::now(),
            include_object(&opts)?,
            json!({ "resourceVersion": request_rv(&object) }),
        ),
    };
    Ok(json_response(StatusCode::OK, &body))
}

fn request_rv(object: &Value) -> String {
    object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// `GET .../services` and `GET .../services?watch=true`
pub async fn list_or_watch(
    app: &App,
    target: &Target,
    headers: &HeaderMap,
    opts: ReadOptions,
) -> Result<Response, StatusError> {
    let filter = filter(target, &opts)?;
    let rendering = request::rendering(headers);
    if opts.is_watch() {
        watch(app, target, rendering, filter, opts)
    } else {
        list(app, target, rendering, filter, opts)
    }
}

/// Builds the predicate for namespace, label and field selectors; bad
/// selectors and unsupported fields are 400s.
fn filter(target: &Target, opts: &ReadOptions) -> Result<Filter, StatusError> {
    let labels = match opts.label_selector.as_deref() {
        Some(s) if !s.is_empty() => LabelSelector::parse(s)
            .map_err(|e| StatusError::bad_request(format!("unable to parse requirement: {e}")))?,
        _ => LabelSelector::default(),
    };
    let fields = match opts.field_selector.as_deref() {
        Some(s) if !s.is_empty() => FieldSelector::parse(s)
            .map_err(|e| StatusError::bad_request(format!("invalid field selector: {e}")))?,
        _ => FieldSelector::default(),
    };
    for field in fields.fields() {
        if !target.resource.supports_field(field) {
            return Err(StatusError::bad_request(format!(
                "field label not supported: {field}"
            )));
        }
    }
    let namespace = target.namespace.clone();
    Ok(Arc::new(move |object: &Value| {
        let in_namespace = namespace
            .as_deref()
            .is_none_or(|ns| object["metadata"]["namespace"].as_str() == Some(ns));
        in_namespace && labels.matches_value(object) && fields.matches_value(object)
    }))
}

fn include_object(opts: &ReadOptions) -> Result<IncludeObject, StatusError> {
    match opts.include_object.as_deref() {
        None | Some("") | Some("Metadata") => Ok(IncludeObject::Metadata),
        Some("Object") => Ok(IncludeObject::Object),
        Some("None") => Ok(IncludeObject::None),
        Some(other) => Err(StatusError::bad_request(format!(
            "includeObject: Unsupported value: \"{other}\""
        ))),
    }
}

/// Where a page ends: the last (namespace, name) returned, at which version.
#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: u64,
    ns: String,
    name: String,
}

fn encode_continue(token: &ContinueToken) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(token).unwrap_or_default())
}

fn decode_continue(s: &str) -> Result<ContinueToken, StatusError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| StatusError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"))
}

fn list(
    app: &App,
    target: &Target,
    rendering: Rendering,
    filter: Filter,
    opts: ReadOptions,
) -> Result<Response, StatusError> {
    let after = match opts.continue_token.as_deref() {
        Some(t) if !t.is_empty() => {
            let token = decode_continue(t)?;
            Some((token.ns, token.name))
        }
        _ => None,
    };
    let limit = opts.limit.filter(|&l| l > 0);

    let snapshot = app.store.snapshot();
    let resource_version = snapshot.resource_version();
    let mut items: Vec<Arc<Value>> = Vec::new();
    let mut last_key = None;
    let mut more = false;
    for (key, object) in snapshot.list(target.resource, target.namespace.as_deref(), after.as_ref())
    {
        if !filter(object) {
            continue;
        }
        if limit.is_some_and(|l| items.len() >= l) {
            more = true;
            break;
        }
        items.push(object.clone());
        last_key = Some(key.clone());
    }
    drop(snapshot);

    let mut list_meta = json!({ "resourceVersion": resource_version.to_string() });
    if let (true, Some((ns, name))) = (more, last_key) {
        list_meta["continue"] = json!(encode_continue(&ContinueToken {
            rv: resource_version,
            ns,
            name
        }));
    }
    Ok(match rendering {
        Rendering::Table => {
            let objects: Vec<&Value> = items.iter().map(|o| o.as_ref()).collect();
            let table = api::table::table(
                target.resource,
                &objects,
                chrono::Utc::now(),
                include_object(&opts)?,
                list_meta,
            );
            json_response(StatusCode::OK, &table)
        }
        Rendering::Objects => json_response(
            StatusCode::OK,
            &list_object(target.resource, &items, list_meta),
        ),
    })
}

/// `{"kind":"ServiceList","apiVersion":"v1","metadata":{...},"items":[...]}`,
/// borrowing the stored objects: serialized straight to the answer.
#[derive(serde::Serialize)]
struct List<'a> {
    kind: String,
    #[serde(rename = "apiVersion")]
    api_version: String,
    metadata: Value,
    items: Vec<&'a Value>,
}

fn list_object<'a>(resource: &ResourceType, items: &'a [Arc<Value>], list_meta: Value) -> List<'a> {
    List {
        kind: resource.list_kind(),
        api_version: resource.api_version(),
        metadata: list_meta,
        items: items.iter().map(|o| o.as_ref()).collect(),
    }
}

fn watch(
    app: &App,
    target: &Target,
    rendering: Rendering,
    filter: Filter,
    opts: ReadOptions,
) -> Result<Response, StatusError> {
    let start = if opts.send_initial_events == Some(true) {
        Start::InitialEvents
    } else {
        match opts.resource_version.as_deref() {
            None | Some("") | Some("0") => Start::CurrentState,
            Some(rv) => Start::After(rv.parse().map_err(|_| {
                StatusError::bad_request(format!("invalid resource version: {rv:?}"))
            })?),
        }
    };
    let render: Render = match rendering {
        Rendering::Objects => Arc::new(|object: &Value| object.clone()),
        Rendering::Table => {
            let resource = target.resource;
            let include = include_object(&opts)?;
            Arc::new(move |object: &Value| {
                api::table::to_table(
                    resource,
                    std::slice::from_ref(object),
                    chrono::Utc::now(),
                    include,
                    json!({ "resourceVersion": request_rv(object) }),
                )
            })
        }
    };
    let timeout = opts
        .timeout_seconds
        .map(Duration::from_secs)
        .unwrap_or(watch::DEFAULT_TIMEOUT);
    let events = watch::start(
        app.store.clone(),
        WatchRequest {
            resource: target.resource,
            start,
            filter,
            render,
            allow_bookmarks: opts.allow_watch_bookmarks == Some(true),
            timeout,
        },
    );
    Ok(super::stream_response(events))
}
