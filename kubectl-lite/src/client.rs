//! Talking to the API server over HTTP, and turning its errors into the
//! lines kubectl prints.
//!
//! Everything kubectl does is a REST call: `GET` a collection or an object,
//! `POST` to create, `PATCH` to change, `DELETE` to remove, and `GET
//! ?watch=true` to follow changes as a stream of events, one JSON object per
//! line. When the server says no, its answer is a `Status` object with a
//! machine-readable `reason` (`NotFound`, `AlreadyExists`, `Invalid`, ...)
//! and a human `message`; kubectl prints it as
//! `Error from server (NotFound): services "x" not found`. This module does
//! both halves: [`Client`] makes the calls, [`error_message`] renders any
//! error the way kubectl's `CheckErr` does.

use std::fmt;

use futures::{StreamExt, TryStreamExt as _};
use http::header::{HeaderValue, ACCEPT, CONTENT_TYPE, USER_AGENT};
use http::{Method, StatusCode};
use http_body_util::BodyExt as _;
use kube::client::Body;
use serde::Deserialize;
use serde_json::Value;

use crate::kubeconfig::ClusterTarget;

/// The `Accept` header that asks the server to render a list as a
/// `meta.k8s.io/v1 Table` (the columns `kubectl get` prints), falling back
/// to plain JSON for servers that cannot.
pub const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

/// Plain JSON objects and lists.
pub const JSON: &str = "application/json";

/// Patch flavours kubectl sends (`Content-Type` of a PATCH).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 7386: maps merge, lists and scalars replace. `label`, `scale`.
    Merge,
    /// Kubernetes' own merge that knows list keys (containers by name,
    /// ports by port). `apply`.
    StrategicMerge,
}

impl PatchType {
    fn content_type(self) -> &'static str {
        match self {
            PatchType::Merge => "application/merge-patch+json",
            PatchType::StrategicMerge => "application/strategic-merge-patch+json",
        }
    }
}

/// A `meta.k8s.io/v1 Status`: how a Kubernetes API server reports failure.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Status {
    #[serde(default)]
    pub code: u16,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub details: Option<StatusDetails>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct StatusDetails {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub causes: Vec<StatusCause>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct StatusCause {
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub field: String,
}

/// Why a call to the API server failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The server answered with an error `Status`.
    #[error("{}", .0.message)]
    Status(Status),
    /// Nothing listens at the server's address.
    #[error(
        "The connection to the server {host} was refused - did you specify the right host or port?"
    )]
    ConnectionRefused { host: String },
    /// Any other transport problem (DNS, timeout, reset...).
    #[error("Unable to connect to the server: {0}")]
    Unreachable(String),
    /// The server answered 2xx with something that is not the JSON we asked for.
    #[error("the server returned an unreadable answer: {0}")]
    Decode(String),
}

impl ApiError {
    /// True for `Error from server (NotFound)`.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ApiError::Status(s) if s.code == 404 || s.reason == "NotFound")
    }

    /// Names the manifest an error came from, as kubectl does for `apply -f`
    /// and `delete -f`: `error when creating "ngx-svc.yml": ...`.
    pub fn with_source(self, verb: &str, source: &str) -> anyhow::Error {
        match self {
            ApiError::Status(mut status) if !source.is_empty() => {
                status.message = format!("error when {verb} {source:?}: {}", status.message);
                ApiError::Status(status).into()
            }
            other if !source.is_empty() => {
                anyhow::anyhow!("error when {verb} {source:?}: {other}")
            }
            other => other.into(),
        }
    }
}

/// Several independent failures, reported together at the end like
/// kubectl's aggregate errors (`apply -f` of several documents, `get a b`).
#[derive(Debug)]
pub struct ErrorList(pub Vec<anyhow::Error>);

impl fmt::Display for ErrorList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(|e| format!("{e:#}")).collect();
        write!(f, "{}", lines.join("\n"))
    }
}

impl std::error::Error for ErrorList {}

impl ErrorList {
    /// `Ok` when nothing failed, else the collected errors (a single error
    /// is returned as itself).
    pub fn into_result(mut self) -> anyhow::Result<()> {
        match self.0.len() {
            0 => Ok(()),
            1 => Err(self.0.remove(0)),
            _ => Err(anyhow::Error::new(self)),
        }
    }
}

/// Renders an error as kubectl prints it on stderr (without the final
/// newline). Mirrors `cmdutil.CheckErr`: server errors become
/// `Error from server (Reason): message`, validation errors list their
/// causes, everything else gets an `error: ` prefix.
pub fn error_message(err: &anyhow::Error) -> String {
    if let Some(list) = err.downcast_ref::<ErrorList>() {
        if list.0.len() == 1 {
            return error_message(&list.0[0]);
        }
        // kubectl's MultipleErrors: one line each, no "error: " prefix.
        let lines: Vec<String> = list
            .0
            .iter()
            .map(|e| standard_message(e).unwrap_or_else(|| format!("{e:#}")))
            .collect();
        return lines.join("\n");
    }
    if let Some(ApiError::Status(status)) = err.downcast_ref::<ApiError>() {
        if let Some(message) = invalid_message(status) {
            return message;
        }
    }
    if let Some(message) = standard_message(err) {
        return message;
    }
    let message = format!("{err:#}");
    if message.starts_with("error: ") {
        message
    } else {
        format!("error: {message}")
    }
}

/// kubectl's StandardErrorMessage: the errors it recognises.
fn standard_message(err: &anyhow::Error) -> Option<String> {
    match err.downcast_ref::<ApiError>()? {
        ApiError::Status(status) if status.reason == "Unauthorized" => Some(format!(
            "error: You must be logged in to the server ({})",
            status.message
        )),
        ApiError::Status(status) if !status.reason.is_empty() => Some(format!(
            "Error from server ({}): {}",
            status.reason, status.message
        )),
        ApiError::Status(status) => Some(format!("Error from server: {}", status.message)),
        other => Some(other.to_string()),
    }
}

/// `The Service "x" is invalid: spec.ports[0].port: Invalid value: ...`
fn invalid_message(status: &Status) -> Option<String> {
    if status.reason != "Invalid" {
        return None;
    }
    let Some(details) = &status.details else {
        let mut s = "The request is invalid".to_string();
        if !status.message.is_empty() {
            s.push_str(": ");
            s.push_str(&status.message);
        }
        return Some(s);
    };
    let mut prefix = "The request is invalid".to_string();
    if !details.kind.is_empty() || !details.name.is_empty() {
        prefix = format!("The {} {:?} is invalid", details.kind, details.name);
    } else if !status.message.is_empty() && details.causes.is_empty() {
        prefix = format!("{prefix}: {}", status.message);
    }
    let mut causes: Vec<String> = Vec::new();
    for cause in &details.causes {
        let line = format!("{}: {}", cause.field, cause.message);
        if !causes.contains(&line) {
            causes.push(line);
        }
    }
    Some(match causes.len() {
        0 => prefix,
        1 => format!("{prefix}: {}", causes[0]),
        _ => {
            let mut s = format!("{prefix}: ");
            for cause in causes {
                s.push_str(&format!("\n* {cause}"));
            }
            s
        }
    })
}

/// One event of a watch stream: `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`
/// or `ERROR`, with the object (a Status for `ERROR`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WatchEvent {
    #[serde(rename = "type")]
    pub event_type: String,
    pub object: Value,
}

/// An open `?watch=true` response, read one line (one event) at a time.
pub struct WatchStream {
    body: futures::stream::BoxStream<'static, Result<bytes::Bytes, ApiError>>,
    buffer: Vec<u8>,
}

impl WatchStream {
    /// The next event, or `None` when the server closed the stream.
    pub async fn next(&mut self) -> Option<Result<WatchEvent, ApiError>> {
        loop {
            if let Some(pos) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=pos).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some(
                    serde_json::from_slice(&line).map_err(|e| ApiError::Decode(e.to_string())),
                );
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buffer.extend_from_slice(&chunk),
                Some(Err(e)) => return Some(Err(e)),
                None => {
                    if self.buffer.iter().all(u8::is_ascii_whitespace) {
                        return None;
                    }
                    let rest = std::mem::take(&mut self.buffer);
                    return Some(
                        serde_json::from_slice(&rest).map_err(|e| ApiError::Decode(e.to_string())),
                    );
                }
            }
        }
    }
}

/// A client for one API server: kube-rs's, which brings the kubeconfig's
/// TLS settings and credentials (a client certificate, a token).
#[derive(Clone)]
pub struct Client {
    http: kube::Client,
    server: String,
    /// The namespace commands use when not told one (`-n`, else the
    /// kubeconfig context, else `default`).
    pub namespace: String,
    /// True when the user passed `-n`: `apply` then refuses manifests that
    /// name another namespace.
    pub namespace_explicit: bool,
}

impl Client {
    /// A client for `target`; fails when its credentials cannot be read
    /// (a certificate that is not PEM, a missing file).
    pub fn new(target: &ClusterTarget, namespace_explicit: bool) -> anyhow::Result<Self> {
        let mut config = target.config.clone();
        config.connect_timeout = Some(std::time::Duration::from_secs(30));
        let http = kube::Client::try_from(config)
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e:#}"))?;
        Ok(Client {
            http,
            server: target.server.clone(),
            namespace: target.namespace.clone(),
            namespace_explicit,
        })
    }

    /// The underlying kube-rs client (exec's WebSocket upgrade).
    pub fn kube(&self) -> &kube::Client {
        &self.http
    }

    /// The server's base URL, as `cluster-info` prints it.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// `host:port` of the server, as kubectl names it in connection errors.
    fn host(&self) -> String {
        let without_scheme = self
            .server
            .split_once("://")
            .map(|(_, rest)| rest)
            .unwrap_or(&self.server);
        without_scheme
            .split('/')
            .next()
            .unwrap_or(without_scheme)
            .to_string()
    }

    /// Sends one request and returns the decoded JSON answer.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        accept: &str,
        body: Option<(&str, &Value)>,
    ) -> Result<Value, ApiError> {
        let response = self.send(method, path, query, accept, body).await?;
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| ApiError::Unreachable(e.to_string()))?
            .to_bytes();
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| ApiError::Decode(e.to_string()))
    }

    /// Sends a request; a non-2xx answer becomes [`ApiError::Status`].
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        accept: &str,
        body: Option<(&str, &Value)>,
    ) -> Result<http::Response<Body>, ApiError> {
        let mut uri = path.to_string();
        if !query.is_empty() {
            let mut pairs = form_urlencoded::Serializer::new(String::new());
            for (key, value) in query {
                pairs.append_pair(key, value);
            }
            uri.push('?');
            uri.push_str(&pairs.finish());
        }
        let mut request = http::Request::builder()
            .method(method)
            .uri(uri)
            .header(ACCEPT, accept)
            .header(
                USER_AGENT,
                HeaderValue::from_static(concat!("kubectl-lite/", env!("CARGO_PKG_VERSION"))),
            );
        let bytes = match body {
            Some((content_type, value)) => {
                request = request.header(CONTENT_TYPE, content_type);
                value.to_string().into_bytes()
            }
            None => vec![],
        };
        let request = request
            .body(Body::from(bytes))
            .map_err(|e| ApiError::Unreachable(format!("building the request for {path}: {e}")))?;
        let response = self
            .http
            .send(request)
            .await
            .map_err(|e| self.transport_error(e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let code = response.status();
        let text = response
            .into_body()
            .collect()
            .await
            .map(|c| String::from_utf8_lossy(&c.to_bytes()).into_owned())
            .unwrap_or_default();
        Err(ApiError::Status(status_from_answer(code, &text)))
    }

    /// A failure to reach the server, as kubectl words it: "connection
    /// refused" names the host; anything else says what went wrong (no
    /// route, a certificate the CA did not sign, ...).
    pub fn transport_error(&self, err: kube::Error) -> ApiError {
        if let kube::Error::Api(status) = &err {
            return ApiError::Status(Status {
                code: status.code,
                reason: status.reason.clone(),
                message: status.message.clone(),
                details: None,
            });
        }
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        while let Some(e) = source {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::ConnectionRefused {
                    return ApiError::ConnectionRefused { host: self.host() };
                }
            }
            source = e.source();
        }
        // The innermost cause is the one that says what happened.
        let mut causes = vec![err.to_string()];
        let mut source = std::error::Error::source(&err);
        while let Some(e) = source {
            causes.push(e.to_string());
            source = e.source();
        }
        ApiError::Unreachable(causes.join(": "))
    }

    /// `GET` an answer that is not JSON and may never end (`pods/log`
    /// with `follow=true`): its body, to be read as it comes.
    pub async fn get_stream(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<futures::stream::BoxStream<'static, Result<bytes::Bytes, ApiError>>, ApiError> {
        let response = self
            .send(Method::GET, path, query, "text/plain, */*", None)
            .await?;
        Ok(response
            .into_body()
            .into_data_stream()
            .map_err(|e| ApiError::Unreachable(e.to_string()))
            .boxed())
    }

    /// `GET` an object or a list as plain JSON.
    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, ApiError> {
        self.request(Method::GET, path, query, JSON, None).await
    }

    /// `GET` one object by name, as plain JSON or (with [`TABLE_ACCEPT`]) as
    /// a one-row Table. Like kubectl, a NotFound in a namespace other than
    /// `default` checks the namespace itself, so that a typo in `-n` says
    /// `namespaces "web" not found` rather than blaming the object.
    pub async fn get_object(
        &self,
        resource: &api::resources::ResourceType,
        namespace: Option<&str>,
        name: &str,
        accept: &str,
    ) -> Result<Value, ApiError> {
        let answer = self
            .request(
                Method::GET,
                &resource.object_path(namespace, name),
                &[],
                accept,
                None,
            )
            .await;
        match (answer, namespace) {
            (Err(e), Some(ns)) if e.is_not_found() && resource.namespaced && ns != "default" => {
                match self.get(&format!("/api/v1/namespaces/{ns}"), &[]).await {
                    Err(ns_error) if ns_error.is_not_found() => Err(ns_error),
                    _ => Err(e),
                }
            }
            (answer, _) => answer,
        }
    }

    /// `GET` rendered as a `meta.k8s.io/v1 Table`.
    pub async fn get_table(&self, path: &str, query: &[(&str, String)]) -> Result<Value, ApiError> {
        self.request(Method::GET, path, query, TABLE_ACCEPT, None)
            .await
    }

    /// `POST` a new object to a collection.
    pub async fn create(
        &self,
        collection: &str,
        query: &[(&str, String)],
        object: &Value,
    ) -> Result<Value, ApiError> {
        self.request(Method::POST, collection, query, JSON, Some((JSON, object)))
            .await
    }

    /// `PATCH` an object (or a subresource such as `/scale`).
    pub async fn patch(
        &self,
        path: &str,
        patch_type: PatchType,
        query: &[(&str, String)],
        patch: &Value,
    ) -> Result<Value, ApiError> {
        self.request(
            Method::PATCH,
            path,
            query,
            JSON,
            Some((patch_type.content_type(), patch)),
        )
        .await
    }

    /// `DELETE` an object with `DeleteOptions` in the body.
    pub async fn delete(&self, path: &str, options: &Value) -> Result<Value, ApiError> {
        self.request(Method::DELETE, path, &[], JSON, Some((JSON, options)))
            .await
    }

    /// Opens `?watch=true` on a collection.
    pub async fn watch(
        &self,
        collection: &str,
        query: &[(&str, String)],
        accept: &str,
    ) -> Result<WatchStream, ApiError> {
        let mut query = query.to_vec();
        query.push(("watch", "true".to_string()));
        let response = self
            .send(Method::GET, collection, &query, accept, None)
            .await?;
        Ok(WatchStream {
            body: response
                .into_body()
                .into_data_stream()
                .map_err(|e| ApiError::Unreachable(e.to_string()))
                .boxed(),
            buffer: Vec::new(),
        })
    }
}

/// Reads an error answer: a `Status` when the server sent one, otherwise a
/// Status made up from the HTTP code, as client-go does.
pub fn status_from_answer(code: StatusCode, body: &str) -> Status {
    if let Ok(status) = serde_json::from_str::<Status>(body) {
        if !status.message.is_empty() || !status.reason.is_empty() {
            return Status {
                code: if status.code == 0 {
                    code.as_u16()
                } else {
                    status.code
                },
                ..status
            };
        }
    }
    let (reason, message) = match code.as_u16() {
        400 => ("BadRequest", body.trim().to_string()),
        401 => (
            "Unauthorized",
            "the server has asked for the client to provide credentials".to_string(),
        ),
        403 => ("Forbidden", body.trim().to_string()),
        404 => (
            "NotFound",
            "the server could not find the requested resource".to_string(),
        ),
        405 => (
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".to_string(),
        ),
        409 => ("Conflict", body.trim().to_string()),
        415 => (
            "UnsupportedMediaType",
            "the server does not support the media type of the request".to_string(),
        ),
        422 => ("Invalid", body.trim().to_string()),
        429 => (
            "TooManyRequests",
            "the server has received too many requests and has asked us to try again later"
                .to_string(),
        ),
        503 => (
            "ServiceUnavailable",
            "the server is currently unable to handle the request".to_string(),
        ),
        _ => (
            "InternalError",
            format!(
                "an error on the server ({:?}) has prevented the request from succeeding",
                body.trim()
            ),
        ),
    };
    Status {
        code: code.as_u16(),
        reason: reason.to_string(),
        message,
        details: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_error(json: &str) -> anyhow::Error {
        ApiError::Status(serde_json::from_str(json).unwrap()).into()
    }

    #[test]
    fn not_found_prints_like_kubectl() {
        let err = status_error(
            r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404,
                "message":"services \"x\" not found","details":{"name":"x","kind":"services"}}"#,
        );
        assert_eq!(
            error_message(&err),
            r#"Error from server (NotFound): services "x" not found"#
        );
    }

    #[test]
    fn invalid_lists_its_causes() {
        let one = status_error(
            r#"{"reason":"Invalid","code":422,"message":"Service \"s\" is invalid: spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "details":{"name":"s","kind":"Service","causes":[{"reason":"FieldValueInvalid","field":"spec.ports[0].port","message":"Invalid value: 0: must be between 1 and 65535, inclusive"}]}}"#,
        );
        assert_eq!(
            error_message(&one),
            r#"The Service "s" is invalid: spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"#
        );
        let two = status_error(
            r#"{"reason":"Invalid","code":422,"message":"m",
                "details":{"name":"s","kind":"Service","causes":[
                  {"field":"spec.ports","message":"Required value"},
                  {"field":"spec.selector","message":"Invalid value: x"}]}}"#,
        );
        assert_eq!(
            error_message(&two),
            "The Service \"s\" is invalid: \n* spec.ports: Required value\n* spec.selector: Invalid value: x"
        );
    }

    #[test]
    fn plain_errors_get_the_error_prefix() {
        let err = anyhow::anyhow!("'app' already has a value (x), and --overwrite is false");
        assert_eq!(
            error_message(&err),
            "error: 'app' already has a value (x), and --overwrite is false"
        );
    }

    #[test]
    fn source_is_added_to_server_messages() {
        let err = ApiError::Status(Status {
            code: 409,
            reason: "AlreadyExists".into(),
            message: "services \"s\" already exists".into(),
            details: None,
        })
        .with_source("creating", "ngx-svc.yml");
        assert_eq!(
            error_message(&err),
            r#"Error from server (AlreadyExists): error when creating "ngx-svc.yml": services "s" already exists"#
        );
    }

    #[test]
    fn several_errors_print_one_per_line() {
        let list = ErrorList(vec![
            status_error(
                r#"{"reason":"NotFound","code":404,"message":"services \"a\" not found"}"#,
            ),
            anyhow::anyhow!("something else"),
        ]);
        assert_eq!(
            error_message(&anyhow::Error::new(list)),
            "Error from server (NotFound): services \"a\" not found\nsomething else"
        );
    }

    #[test]
    fn answers_without_status_are_named_by_code() {
        let status = status_from_answer(StatusCode::NOT_FOUND, "404 page not found");
        assert_eq!(status.reason, "NotFound");
        assert_eq!(
            status.message,
            "the server could not find the requested resource"
        );
        let status = status_from_answer(
            StatusCode::CONFLICT,
            r#"{"kind":"Status","reason":"AlreadyExists","message":"exists","code":409}"#,
        );
        assert_eq!(status.reason, "AlreadyExists");
    }

    #[tokio::test]
    async fn refused_connection_names_the_host() {
        // Bind then drop a listener: the port is free and nothing listens.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = format!("http://127.0.0.1:{port}");
        let target = ClusterTarget {
            config: kube::Config::new(server.parse().unwrap()),
            server,
            namespace: "default".into(),
        };
        let err = Client::new(&target, false)
            .unwrap()
            .get("/api/v1/namespaces", &[])
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("The connection to the server 127.0.0.1:{port} was refused - did you specify the right host or port?")
        );
    }
}
