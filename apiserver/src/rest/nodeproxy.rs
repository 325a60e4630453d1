//! `pods/log`, `pods/exec` and `pods/portforward`: requests the apiserver
//! passes on to a node.
//!
//! The API stores objects, not container output. `kubectl logs web-1` is
//! `GET /api/v1/namespaces/default/pods/web-1/log`, and the apiserver can
//! only answer it by asking the kubelet of the node that runs the Pod:
//!
//! 1. read the Pod: which node (`spec.nodeName`), which container (the
//!    `container` parameter, or the Pod's only container);
//! 2. read the Node: its `InternalIP` and the kubelet's port
//!    (`status.daemonEndpoints.kubeletEndpoint.Port`, which the kubelet
//!    reports itself);
//! 3. forward: `GET https://<ip>:<port>/containerLogs/<ns>/<pod>/<container>`
//!    with the same options, and stream the answer back as it comes, so
//!    that `kubectl logs -f` shows lines as they are written. For exec,
//!    `/exec/<ns>/<pod>/<container>`: the WebSocket upgrade is forwarded
//!    to the kubelet, and once both sides switched protocols the apiserver
//!    copies bytes both ways without looking at them. The subprotocol the
//!    kubelet picked goes back to the client unchanged.
//!
//! `kubectl port-forward` is the same kind of upgrade, to
//! `/portForward/<ns>/<pod>`: a WebSocket carrying SPDY, or SPDY itself
//! (`Upgrade: SPDY/3.1`, `X-Stream-Protocol-Version: portforward.k8s.io`);
//! the kubelet does the forwarding.
//!
//! `nodes/{name}/proxy/{path}` is the general form: `GET
//! /api/v1/nodes/kl-worker1/proxy/kube-lite/services/default/ngx-svc` is
//! `GET /kube-lite/services/default/ngx-svc` on that node's kubelet, its
//! answer passed back as it is (kube-lite forwards GET only: the kubelet
//! port serves nothing else through it).
//!
//! kube-lite's kubelets speak plain HTTP on the node network (upstream
//! uses TLS with client certificates both ways).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{header, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

use super::request::Target;
use super::write::key_of;
use super::App;
use crate::status::StatusError;
use crate::storage::ObjectKey;

/// The kubelet port assumed when a Node does not report one (upstream's
/// default too).
const DEFAULT_KUBELET_PORT: u16 = 10250;

/// How long connecting to a kubelet may take before the node is declared
/// unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Kubelet error bodies are short texts; anything longer is cut.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The `pods/log` parameters passed on to the kubelet (`PodLogOptions`).
const LOG_PARAMETERS: &[&str] = &[
    "follow",
    "previous",
    "timestamps",
    "sinceSeconds",
    "sinceTime",
    "tailLines",
    "limitBytes",
];

/// The header naming a SPDY stream protocol (`portforward.k8s.io`).
const STREAM_PROTOCOL: &str = "x-stream-protocol-version";

/// The `pods/attach` parameters passed on to the kubelet (`PodAttachOptions`).
const ATTACH_PARAMETERS: &[&str] = &["stdin", "stdout", "stderr", "tty"];

/// The `pods/exec` parameters passed on to the kubelet (`PodExecOptions`).
const EXEC_PARAMETERS: &[&str] = &["command", "stdin", "stdout", "stderr", "tty"];

/// Serves `GET .../pods/{name}/log` and `GET|POST .../pods/{name}/exec`.
pub async fn dispatch(
    app: &Arc<App>,
    target: &Target,
    sub: &str,
    parts: &mut Parts,
) -> Result<Response, StatusError> {
    if target.resource.subresource(sub).is_none() {
        return Err(StatusError::no_route(&format!(
            "{}/{}",
            target.resource, sub
        )));
    }
    let allowed = match sub {
        "log" => parts.method == Method::GET,
        _ => parts.method == Method::GET || parts.method == Method::POST,
    };
    if !allowed {
        return Err(StatusError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({} {}/{sub})",
            parts.method, target.resource
        )));
    }
    let query = query_pairs(parts.uri.query());
    let pod = app.get_object(&key_of(target))?;
    let pod_name = target.name.clone().unwrap_or_default();
    let namespace = target.namespace.clone().unwrap_or_default();
    let node_name = match pod["spec"]["nodeName"].as_str() {
        Some(node) if !node.is_empty() => node.to_string(),
        _ => {
            return Err(StatusError::bad_request(format!(
                "pod {pod_name:?} does not have a host assigned"
            )))
        }
    };
    let kubelet = Kubelet::of_node(app, &node_name)?;
    if sub == "portforward" {
        // The whole Pod: the ports travel in the SPDY streams' headers.
        let uri = format!(
            "/portForward/{}/{}",
            encode_segment(&namespace),
            encode_segment(&pod_name)
        );
        return kubelet.upgrade(&uri, parts).await;
    }
    let container = choose_container(&pod, &pod_name, param(&query, "container"))?;
    let (path, passed) = match sub {
        "log" => ("containerLogs", LOG_PARAMETERS),
        "attach" => ("attach", ATTACH_PARAMETERS),
        _ => ("exec", EXEC_PARAMETERS),
    };
    let forwarded: Vec<(&str, &str)> = query
        .iter()
        .filter(|(k, _)| passed.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let uri = format!(
        "/{path}/{}/{}/{}?{}",
        encode_segment(&namespace),
        encode_segment(&pod_name),
        encode_segment(&container),
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(forwarded)
            .finish()
    );
    match sub {
        "log" => kubelet.logs(&uri).await,
        _ => kubelet.upgrade(&uri, parts).await,
    }
}

/// `(node, path)` of `/api/v1/nodes/{node}/proxy[/{path}]`.
pub fn node_proxy_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/api/v1/nodes/")?;
    let (node, rest) = rest.split_once('/')?;
    let rest = match rest.strip_prefix("proxy")? {
        "" => "",
        tail => tail.strip_prefix('/')?,
    };
    (!node.is_empty()).then_some((node, rest))
}

/// Serves `GET /api/v1/nodes/{node}/proxy/{path}`: the same path and query
/// on the node's kubelet, its answer (status, content type, body) passed
/// back.
pub async fn node_proxy(
    app: &Arc<App>,
    node: &str,
    path: &str,
    parts: &Parts,
) -> Result<Response, StatusError> {
    if parts.method != Method::GET {
        return Err(StatusError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({} nodes/proxy): kube-lite passes on GET only",
            parts.method
        )));
    }
    if app.store.get(&node_key(node)?).is_none() {
        return Err(StatusError::not_found(crate::status::Subject {
            plural: "nodes",
            group: "",
            kind: "Node",
            name: node,
        }));
    }
    let kubelet = Kubelet::of_node(app, node)?;
    let uri = match parts.uri.query() {
        Some(query) => format!("/{path}?{query}"),
        None => format!("/{path}"),
    };
    kubelet.get(&uri).await
}

fn node_key(node: &str) -> Result<ObjectKey, StatusError> {
    let nodes = api::resources::by_plural("", "v1", "nodes")
        .ok_or_else(|| StatusError::internal("the nodes resource is not registered"))?;
    Ok(ObjectKey::new(nodes, None, node))
}

/// The container a request is about: the one named, or the Pod's only one.
/// Errors in kube-apiserver's words.
fn choose_container(
    pod: &Value,
    pod_name: &str,
    asked: Option<&str>,
) -> Result<String, StatusError> {
    let names = |field: &str| -> Vec<String> {
        pod["spec"][field]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let containers = names("containers");
    let init = names("initContainers");
    let ephemeral = names("ephemeralContainers");
    match asked.filter(|c| !c.is_empty()) {
        Some(c) => {
            if containers
                .iter()
                .chain(&init)
                .chain(&ephemeral)
                .any(|n| n == c)
            {
                Ok(c.to_string())
            } else {
                Err(StatusError::bad_request(format!(
                    "container {c} is not valid for pod {pod_name}"
                )))
            }
        }
        None if containers.len() == 1 => Ok(containers[0].clone()),
        None => {
            let mut message = format!(
                "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                containers.join(" ")
            );
            if !init.is_empty() {
                message.push_str(&format!(
                    " or one of the init containers: [{}]",
                    init.join(" ")
                ));
            }
            Err(StatusError::bad_request(message))
        }
    }
}

/// Where a node's kubelet listens.
struct Kubelet {
    node: String,
    ip: IpAddr,
    port: u16,
    /// HTTPS with the kubelet-client certificate, checking that the
    /// kubelet's certificate names this IP (so that editing a Node's
    /// address cannot aim the apiserver at another host); None: HTTP.
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl Kubelet {
    /// Reads the Node: its InternalIP and the port its kubelet reported.
    fn of_node(app: &App, node: &str) -> Result<Kubelet, StatusError> {
        let nodes = api::resources::by_plural("", "v1", "nodes")
            .ok_or_else(|| StatusError::internal("the nodes resource is not registered"))?;
        let unavailable = |why: String| {
            StatusError::new(
                503,
                "ServiceUnavailable",
                format!("the kubelet of node {node:?} cannot be reached: {why}"),
            )
        };
        let object = app
            .store
            .get(&ObjectKey::new(nodes, None, node))
            .ok_or_else(|| unavailable(format!("nodes {node:?} not found")))?;
        let ip = object["status"]["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["type"] == "InternalIP")
            .and_then(|a| a["address"].as_str())
            .and_then(|a| a.parse::<IpAddr>().ok())
            .ok_or_else(|| unavailable("the Node reports no InternalIP".into()))?;
        let port = object["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
            .unwrap_or(DEFAULT_KUBELET_PORT);
        Ok(Kubelet {
            node: node.to_string(),
            ip,
            port,
            tls: app.kubelet_tls.clone(),
        })
    }

    /// An HTTP/1.1 connection to the kubelet, upgrades allowed.
    async fn connect(&self) -> Result<hyper::client::conn::http1::SendRequest<Body>, StatusError> {
        let unavailable = |why: String| {
            StatusError::new(
                503,
                "ServiceUnavailable",
                format!(
                    "the kubelet of node {:?} at {}:{} cannot be reached: {why}",
                    self.node, self.ip, self.port
                ),
            )
        };
        let stream =
            tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((self.ip, self.port)))
                .await
                .map_err(|_| unavailable("connection timed out".into()))?
                .map_err(|e| unavailable(e.to_string()))?;
        let Some(tls) = &self.tls else {
            return Self::handshake(stream, &unavailable).await;
        };
        let name = rustls::pki_types::ServerName::IpAddress(self.ip.into());
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, stream)
            .await
            .map_err(|e| unavailable(format!("TLS: {e}")))?;
        Self::handshake(stream, &unavailable).await
    }

    /// HTTP/1.1 over `stream`, the connection driven in the background.
    async fn handshake<S>(
        stream: S,
        unavailable: &(dyn Fn(String) -> StatusError + Sync),
    ) -> Result<hyper::client::conn::http1::SendRequest<Body>, StatusError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(error = %e, "kubelet connection ended");
            }
        });
        Ok(sender)
    }

    fn request(&self, method: Method, uri: &str) -> Result<Request<Body>, StatusError> {
        Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, format!("{}:{}", self.ip, self.port))
            .body(Body::empty())
            .map_err(|e| StatusError::internal(format!("building the kubelet request: {e}")))
    }

    /// `GET uri` on the kubelet: its answer when it is a success, else a
    /// `Status` with the kubelet's code and words.
    async fn fetch(
        &self,
        uri: &str,
    ) -> Result<hyper::Response<hyper::body::Incoming>, StatusError> {
        let mut sender = self.connect().await?;
        let request = self.request(Method::GET, uri)?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| self.lost(e))?;
        if !response.status().is_success() {
            return Err(kubelet_error(response).await);
        }
        Ok(response)
    }

    /// `pods/log`: the kubelet's answer, streamed as it comes.
    async fn logs(&self, uri: &str) -> Result<Response, StatusError> {
        let response = self.fetch(uri).await?;
        Ok((
            [(header::CONTENT_TYPE, "text/plain")],
            Body::new(response.into_body()),
        )
            .into_response())
    }

    /// `nodes/proxy`: the kubelet's answer as it is, streamed; an error
    /// answer becomes a `Status` with its code.
    async fn get(&self, uri: &str) -> Result<Response, StatusError> {
        let response = self.fetch(uri).await?;
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .cloned()
            .unwrap_or_else(|| header::HeaderValue::from_static("text/plain"));
        Ok((
            [(header::CONTENT_TYPE, content_type)],
            Body::new(response.into_body()),
        )
            .into_response())
    }

    /// `pods/exec` and `pods/portforward`: forwards the upgrade (WebSocket,
    /// or SPDY for port-forward) and, once both sides switched protocols,
    /// copies bytes both ways until either closes. A request that is no
    /// upgrade is still asked of the kubelet, whose answer (unknown
    /// container, not running, "WebSocket only") is what the client sees;
    /// it never hangs.
    async fn upgrade(&self, uri: &str, parts: &mut Parts) -> Result<Response, StatusError> {
        let mut request = self.request(Method::GET, uri)?;
        for name in [
            header::CONNECTION,
            header::UPGRADE,
            header::SEC_WEBSOCKET_KEY,
            header::SEC_WEBSOCKET_VERSION,
            header::SEC_WEBSOCKET_PROTOCOL,
            header::SEC_WEBSOCKET_EXTENSIONS,
            header::HeaderName::from_static(STREAM_PROTOCOL),
        ] {
            for value in parts.headers.get_all(&name) {
                request.headers_mut().append(name.clone(), value.clone());
            }
        }
        let mut sender = self.connect().await?;
        let mut response = sender
            .send_request(request)
            .await
            .map_err(|e| self.lost(e))?;
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Err(kubelet_error(response).await);
        }
        let Some(client_upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
            return Err(StatusError::bad_request(
                "the connection cannot be upgraded (HTTP/1.1 is required for exec and port-forward)",
            ));
        };
        let kubelet_upgrade = hyper::upgrade::on(&mut response);
        let node = self.node.clone();
        tokio::spawn(async move {
            let (client, kubelet) = match tokio::join!(client_upgrade, kubelet_upgrade) {
                (Ok(c), Ok(k)) => (c, k),
                (c, k) => {
                    tracing::debug!(%node, client = ?c.err(), kubelet = ?k.err(), "upgrade failed");
                    return;
                }
            };
            let mut client = TokioIo::new(client);
            let mut kubelet = TokioIo::new(kubelet);
            if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut kubelet).await {
                tracing::debug!(%node, error = %e, "upgraded stream ended");
            }
        });
        let mut answer = Response::new(Body::empty());
        *answer.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        for name in [
            header::CONNECTION,
            header::UPGRADE,
            header::SEC_WEBSOCKET_ACCEPT,
            header::SEC_WEBSOCKET_PROTOCOL,
            header::SEC_WEBSOCKET_EXTENSIONS,
            header::HeaderName::from_static(STREAM_PROTOCOL),
        ] {
            for value in response.headers().get_all(&name) {
                answer.headers_mut().append(name.clone(), value.clone());
            }
        }
        Ok(answer)
    }

    fn lost(&self, e: hyper::Error) -> StatusError {
        StatusError::new(
            503,
            "ServiceUnavailable",
            format!(
                "the kubelet of node {:?} at {}:{} did not answer: {e}",
                self.node, self.ip, self.port
            ),
        )
    }
}

/// A kubelet error (plain text) as a `Status` with the same code.
async fn kubelet_error(response: hyper::Response<hyper::body::Incoming>) -> StatusError {
    let code = response.status().as_u16();
    let body = axum::body::to_bytes(Body::new(response.into_body()), MAX_ERROR_BODY)
        .await
        .unwrap_or_default();
    let message = String::from_utf8_lossy(&body).trim().to_string();
    let reason = match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        422 => "Invalid",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    };
    StatusError::new(code, reason, message)
}

fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A path segment; Kubernetes names need no escaping, but a container
/// name from a query string could hold anything.
fn encode_segment(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn node_proxy_paths() {
        assert_eq!(
            node_proxy_path("/api/v1/nodes/n1/proxy/kube-lite/services/default/x"),
            Some(("n1", "kube-lite/services/default/x"))
        );
        assert_eq!(node_proxy_path("/api/v1/nodes/n1/proxy"), Some(("n1", "")));
        assert_eq!(node_proxy_path("/api/v1/nodes/n1/proxyx"), None);
        assert_eq!(node_proxy_path("/api/v1/nodes/n1/status"), None);
        assert_eq!(node_proxy_path("/api/v1/nodes/n1"), None);
    }

    #[test]
    fn the_only_container_is_the_default() {
        let pod = json!({"spec": {"containers": [{"name": "web"}]}});
        assert_eq!(choose_container(&pod, "p", None).unwrap(), "web");
        assert_eq!(choose_container(&pod, "p", Some("web")).unwrap(), "web");
        let e = choose_container(&pod, "p", Some("db")).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "container db is not valid for pod p")
        );
    }

    #[test]
    fn several_containers_need_a_name() {
        let pod = json!({"spec": {
            "containers": [{"name": "a"}, {"name": "b"}],
            "initContainers": [{"name": "init"}],
        }});
        let e = choose_container(&pod, "p", None).unwrap_err();
        assert_eq!(
            e.message,
            "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [init]"
        );
        assert_eq!(choose_container(&pod, "p", Some("init")).unwrap(), "init");
    }
}
