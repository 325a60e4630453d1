//! `kubectl attach` (and `kubectl run -i`): the user's terminal on a
//! running container's own stdin and output, where `exec` starts a new
//! process.
//!
//! `GET|POST /attach/{namespace}/{pod}/{container}?stdin=true&stdout=true&tty=true`
//! is the same WebSocket as exec (`v5.channel.k8s.io`, see
//! [`super::channel`]). The container's stdin and output belong to the
//! runtime (containerd holds them for the container's whole life), so the
//! kubelet asks the runtime: the CRI's `Attach` answers with a URL on
//! containerd's streaming server, and the kubelet connects the user to it.
//!
//! ```text
//! kubectl ──v5.channel.k8s.io──▶ apiserver ──▶ kubelet (here) ──v4.channel.k8s.io──▶ containerd
//!                                                                  /attach/<token>     stream server
//! ```
//!
//! The real kubelet hands the upgraded connection through as it is. Here
//! the two WebSockets are bridged message by message: channels 0-4 mean
//! the same in v4 and v5, and containerd 1.6 speaks v4 only. What v4
//! cannot say is v5's "stdin is closed": a container attached with
//! `stdinOnce` gets its end of input when the session ends, not when the
//! user's input does.
//!
//! When the container exits, containerd ends the stream with a status, and
//! the session ends; when the user goes, the container goes on.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path as UrlPath, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::channel::{self, Incoming};
use super::exec::{switching_protocols, websocket_request};
use super::{error_response, parse_bool, query_pairs, Containers};
use crate::cri::{v1, Runtime};

/// The container `kubectl attach` reaches.
#[derive(Debug, Clone)]
pub struct AttachTarget {
    pub runtime: Runtime,
    pub container_id: String,
    /// Whether it was created with `stdin: true` and `tty: true`.
    pub stdin: bool,
    pub tty: bool,
}

/// `GET|POST /attach/{namespace}/{pod}/{container}`.
pub async fn handle(
    State(containers): State<Arc<dyn Containers>>,
    UrlPath((namespace, pod, container)): UrlPath<(String, String, String)>,
    mut request: Request,
) -> Response {
    let mut stdin = false;
    let mut tty = false;
    for (key, value) in query_pairs(request.uri().query()) {
        let parsed = match key.as_str() {
            "stdin" | "input" => parse_bool(&key, &value).map(|v| stdin = v),
            "tty" => parse_bool(&key, &value).map(|v| tty = v),
            _ => Ok(()),
        };
        if let Err(message) = parsed {
            return error_response(StatusCode::BAD_REQUEST, message);
        }
    }
    let target = match containers.attach_target(&namespace, &pod, &container) {
        Ok(target) => target,
        Err(e) => return e.into_response(),
    };
    if stdin && !target.stdin {
        return error_response(
            StatusCode::BAD_REQUEST,
            format!("container {container} in pod {pod} does not have stdin enabled (set stdin: true in its spec)"),
        );
    }
    let (key, protocol) = match websocket_request(request.headers()) {
        Ok(accepted) => accepted,
        Err(message) => return error_response(StatusCode::BAD_REQUEST, message),
    };
    // The runtime's stream, asked for before the upgrade so that a refusal
    // is still an HTTP error.
    let stream = match runtime_stream(&target, stdin, tty && target.tty).await {
        Ok(stream) => stream,
        Err(message) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, message),
    };
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                tracing::debug!(%namespace, %pod, %container, "attach");
                bridge(ws, stream).await;
            }
            Err(e) => tracing::debug!(error = %e, "attach: the upgrade did not complete"),
        }
    });
    switching_protocols(&key, protocol)
}

/// The WebSocket to the runtime's stream server.
type RuntimeSocket = WebSocketStream<tokio::net::TcpStream>;

/// CRI `Attach`, then a WebSocket to the URL it gave.
async fn runtime_stream(
    target: &AttachTarget,
    stdin: bool,
    tty: bool,
) -> Result<RuntimeSocket, String> {
    let answer = target
        .runtime
        .clone()
        .runtime
        .attach(v1::AttachRequest {
            container_id: target.container_id.clone(),
            stdin,
            tty,
            stdout: true,
            stderr: !tty,
        })
        .await
        .map_err(|s| format!("error attaching to container: {}", s.message()))?
        .into_inner();
    let url = answer.url.replacen("http://", "ws://", 1);
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("the runtime's stream URL {url:?}: {e}"))?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        http::HeaderValue::from_static("v4.channel.k8s.io"),
    );
    let host = request
        .uri()
        .authority()
        .map(|a| a.to_string())
        .ok_or_else(|| format!("the runtime's stream URL {url:?} has no host"))?;
    let tcp = tokio::net::TcpStream::connect(&host)
        .await
        .map_err(|e| format!("connecting to the runtime's stream server {host}: {e}"))?;
    let (ws, _) = tokio_tungstenite::client_async(request, tcp)
        .await
        .map_err(|e| format!("the runtime's stream server {host}: {e}"))?;
    Ok(ws)
}

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Carries messages both ways until either side ends.
async fn bridge(client: Socket, runtime: RuntimeSocket) {
    let (mut to_client, mut from_client) = client.split();
    let (mut to_runtime, mut from_runtime) = runtime.split();
    loop {
        tokio::select! {
            message = from_runtime.next() => match message {
                Some(Ok(Message::Binary(data))) => {
                    // containerd opens each channel with an empty message.
                    if data.len() <= 1 {
                        continue;
                    }
                    if to_client.send(Message::Binary(data)).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    // The container ended (its status went by on channel 3).
                    let _ = to_client.close().await;
                    break;
                }
                Some(Ok(_)) => {}
            },
            message = from_client.next() => match message {
                Some(Ok(Message::Binary(data))) => {
                    // Input and resizes pass; v5's "stdin is closed" has no
                    // v4 form (see the module doc).
                    let pass = matches!(
                        channel::decode(&data),
                        Incoming::Stdin(_) | Incoming::Resize(_)
                    );
                    if pass && to_runtime.send(Message::Binary(data)).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), to_runtime.close()).await;
                    return;
                }
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), to_runtime.close()).await;
}
