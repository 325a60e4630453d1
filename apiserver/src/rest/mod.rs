//! The REST API: Kubernetes verbs over HTTP.
//!
//! kube-apiserver maps HTTP methods on resource URLs to verbs:
//!
//! | request                               | verb             |
//! |---------------------------------------|------------------|
//! | `GET    .../services`                 | list             |
//! | `GET    .../services?watch=true`      | watch            |
//! | `GET    .../services/ngx-svc`         | get              |
//! | `POST   .../services`                 | create           |
//! | `PUT    .../services/ngx-svc`         | update           |
//! | `PATCH  .../services/ngx-svc`         | patch            |
//! | `DELETE .../services/ngx-svc`         | delete           |
//! | `DELETE .../services`                 | deletecollection |
//!
//! plus subresources (`/status`, `/scale`, `/binding`) that change one part
//! of an object, and `/log` and `/exec` that a node serves. This module routes a request to the verb; the verbs live in
//! [`read`], [`write`] and [`delete`], object metadata rules in
//! [`objectmeta`], typed decoding in [`schema`], subresources in
//! [`subresources`], and the requests passed on to a node's kubelet
//! (`pods/log`, `pods/exec`) in [`nodeproxy`].

pub mod apply;
pub mod delete;
pub mod eviction;
pub mod nodeproxy;
pub mod objectmeta;
pub mod protobuf;
pub mod proxy;
pub mod read;
pub mod request;
pub mod schema;
pub mod subresources;
pub mod write;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::Value;

use crate::services::ServiceAllocations;
use crate::status::{StatusError, Subject};
use crate::storage::{ObjectKey, Store};
use request::Target;

/// What every handler shares.
pub struct App {
    pub store: Arc<Store>,
    /// ClusterIP and NodePort allocators.
    pub services: ServiceAllocations,
    /// Signs and checks ServiceAccount tokens.
    pub tokens: Arc<crate::tokens::ServiceAccountTokens>,
    /// HTTPS with identities, or dev mode (no Pod identities either).
    pub mode: crate::authn::Mode,
    /// How to reach kubelets over HTTPS (the kubelet-client certificate
    /// and the CA their serving certificates come from); None: plain HTTP.
    pub kubelet_tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl App {
    /// The stored object `target` names, or 404.
    pub fn get_object(&self, key: &ObjectKey) -> Result<Arc<Value>, StatusError> {
        self.store
            .get(key)
            .ok_or_else(|| StatusError::not_found(subject(key.resource, &key.name)))
    }
}

/// Names an object in error messages.
pub fn subject<'a>(resource: &'a api::resources::ResourceType, name: &'a str) -> Subject<'a> {
    Subject {
        plural: resource.plural,
        group: resource.group,
        kind: resource.kind,
        name,
    }
}

/// The whole HTTP API: health checks, discovery, OpenAPI, and every
/// resource URL.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(ok))
        .route("/livez", get(ok))
        .route("/readyz", get(ok))
        .merge(crate::discovery::routes())
        .merge(crate::openapi::routes())
        .fallback(handle)
        .with_state(app)
}

async fn ok() -> &'static str {
    "ok"
}

async fn handle(State(app): State<Arc<App>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    match dispatch(app, req).await {
        Ok(response) => response,
        Err(e) => {
            if e.code >= 500 {
                tracing::error!(%method, %path, code = e.code, message = %e.message, "request failed");
            } else {
                tracing::debug!(%method, %path, code = e.code, message = %e.message, "request refused");
            }
            e.into_response()
        }
    }
}

async fn dispatch(app: Arc<App>, req: Request) -> Result<Response, StatusError> {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    // `nodes/{name}/proxy/{path...}`: the rest of the path is the
    // kubelet's, not the API's.
    if let Some((node, rest)) = nodeproxy::node_proxy_path(&path) {
        return nodeproxy::node_proxy(&app, node, rest, &parts).await;
    }
    // `pods|services/{name}/proxy/{path...}`: HTTP to the Pod.
    if let Some(proxied) = proxy::proxy_path(&path) {
        let body = request::read_body(body).await?;
        return proxy::proxy(&app, proxied, &parts, body).await;
    }
    let target = Target::parse(&path).ok_or_else(|| StatusError::no_route(&path))?;
    // Served by the Pod's node: streamed (logs -f) or upgraded (exec), so
    // the request goes on before any body is read.
    if let (Some(_), Some(sub @ ("log" | "exec" | "attach" | "portforward"))) =
        (&target.name, target.subresource.as_deref())
    {
        return nodeproxy::dispatch(&app, &target, sub, &mut parts).await;
    }
    let query = parts.uri.query();
    let body = request::read_body(body).await?;
    if let Some(node) = parts
        .extensions
        .get::<crate::authn::Caller>()
        .and_then(|c| c.0.node_name())
    {
        crate::admission::node_restriction(
            &app,
            node,
            &parts.method,
            &target,
            &request::content_type(&parts.headers),
            &body,
        )?;
    }
    // Questions, not objects: answered, never stored.
    if let (&Method::POST, None) = (&parts.method, &target.name) {
        let caller = || {
            parts
                .extensions
                .get::<crate::authn::Caller>()
                .map(|c| c.0.clone())
                .ok_or_else(crate::authn::unauthorized)
        };
        match (target.resource.group, target.resource.plural) {
            ("authorization.k8s.io", "selfsubjectaccessreviews") => {
                return crate::authz::review::access_review(
                    &app.store,
                    &caller()?,
                    &parts.headers,
                    &body,
                );
            }
            ("authentication.k8s.io", "selfsubjectreviews") => {
                return crate::authz::review::self_review(&caller()?, &parts.headers, &body);
            }
            _ => {}
        }
    }

    let sub = target.subresource.as_deref();
    match (&parts.method, target.name.is_some(), sub) {
        (&Method::GET, false, _) => {
            let opts = request::query(query)?;
            read::list_or_watch(&app, &target, &parts.headers, opts).await
        }
        (&Method::GET, true, None) => read::get(&app, &target, &parts.headers, query),
        (&Method::POST, false, None) => {
            let caller = parts.extensions.get::<crate::authn::Caller>();
            write::create(
                &app,
                &target,
                caller.map(|c| &c.0),
                &parts.headers,
                query,
                &body,
            )
            .await
        }
        (&Method::PUT, true, None) => {
            write::update(
                &app,
                &target,
                &parts.headers,
                query,
                &body,
                write::Part::Main,
            )
            .await
        }
        (&Method::PATCH, true, None) => {
            write::patch(
                &app,
                &target,
                &parts.headers,
                query,
                &body,
                write::Part::Main,
            )
            .await
        }
        (&Method::DELETE, true, None) => {
            delete::delete(&app, &target, query, &parts.headers, &body).await
        }
        (&Method::DELETE, false, None) => {
            delete::delete_collection(&app, &target, query, &parts.headers, &body).await
        }
        (_, true, Some(sub)) => {
            if crate::certificates::is_csr(target.resource)
                && matches!(parts.method, Method::PUT | Method::PATCH)
            {
                let caller = parts
                    .extensions
                    .get::<crate::authn::Caller>()
                    .ok_or_else(crate::authn::unauthorized)?;
                let stored = app.get_object(&write::key_of(&target))?;
                let part = if sub == "approval" {
                    write::Part::Approval
                } else {
                    write::Part::Status
                };
                crate::certificates::authorize_signer(
                    &app.store.snapshot(),
                    &caller.0,
                    part,
                    stored["spec"]["signerName"].as_str().unwrap_or_default(),
                )?;
            }
            subresources::dispatch(
                &app,
                &target,
                sub,
                &parts.method,
                &parts.headers,
                query,
                &body,
            )
            .await
        }
        (method, _, _) => Err(StatusError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({method} {})",
            target.resource
        ))),
    }
}

/// A JSON answer with a status code.
pub fn json_response(code: StatusCode, value: &impl serde::Serialize) -> Response {
    (
        code,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(value).unwrap_or_default(),
    )
        .into_response()
}

/// A JSON answer that also carries `Warning` headers (unknown fields under
/// `fieldValidation=Warn`), which kubectl prints as `Warning: ...`.
pub fn json_response_with_warnings(
    code: StatusCode,
    value: &Value,
    warnings: &[String],
) -> Response {
    let mut response = json_response(code, value);
    for warning in warnings {
        let header = format!("299 - \"{}\"", warning.replace('"', "'"));
        if let Ok(v) = header.parse() {
            response
                .headers_mut()
                .append(axum::http::header::WARNING, v);
        }
    }
    response
}

/// A chunked stream of watch events.
pub fn stream_response(events: tokio::sync::mpsc::Receiver<bytes::Bytes>) -> Response {
    let stream =
        tokio_stream::wrappers::ReceiverStream::new(events).map(Ok::<_, std::convert::Infallible>);
    Response::builder()
        .status(StatusCode::OK)
        .header(axum::http::header::CONTENT_TYPE, "application/json")
        .header(axum::http::header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

use tokio_stream::StreamExt as _;
