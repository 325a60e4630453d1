//! `kubectl port-forward`: TCP connections from the user's machine to a
//! port inside a Pod, through the apiserver and this node.
//!
//! `kubectl port-forward pod/web 8080:80` listens on `localhost:8080`.
//! For each connection it accepts, it opens two streams on one SPDY
//! connection to the Pod ([`super::spdy`]): an *error* stream and a *data*
//! stream, both with the headers `port: 80` and the same `requestid`. The
//! kubelet connects to port 80 *inside the Pod's network namespace*, on
//! `localhost` - so a server bound to 127.0.0.1 in the Pod is reachable
//! too - and copies bytes between that connection and the data stream. If
//! the connection fails, the reason goes back on the error stream, and
//! kubectl prints it (`an error occurred forwarding 8080 -> 80: ...`).
//!
//! The SPDY connection arrives one of two ways, both an HTTP upgrade of
//! `GET|POST /portForward/{namespace}/{pod}` (the apiserver passes them on
//! from `pods/{name}/portforward`):
//!
//! - a WebSocket with subprotocol `SPDY/3.1+portforward.k8s.io`: the SPDY
//!   bytes travel inside binary messages (kubectl 1.31+ tries this first);
//! - `Upgrade: SPDY/3.1` with `X-Stream-Protocol-Version:
//!   portforward.k8s.io`: the raw connection (kubectl's fallback).
//!
//! Connecting inside the Pod happens on a thread of its own that joins the
//! namespace (`setns`) and ends after the connection is made: the agent's
//! other threads never change namespace, and a socket stays in the
//! namespace it was made in.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use nix::sched::CloneFlags;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::spdy::{self, Decoder, Encoder, Frame};
use super::{error_response, Containers};

/// The port-forward protocol, and its name as a WebSocket tunnel.
pub const PROTOCOL: &str = "portforward.k8s.io";
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// How long connecting to the Pod's port may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes read from the Pod per data frame.
const CHUNK: usize = 32 * 1024;

/// How the SPDY connection is carried.
enum Transport {
    /// SPDY frames inside WebSocket binary messages.
    WebSocket { key: String },
    /// SPDY straight on the upgraded connection.
    Spdy,
}

/// `GET|POST /portForward/{namespace}/{pod}`.
pub async fn handle(
    State(containers): State<Arc<dyn Containers>>,
    Path((namespace, pod)): Path<(String, String)>,
    mut request: Request,
) -> Response {
    let pid = match containers.network_pid(&namespace, &pod) {
        Ok(pid) => pid,
        Err(e) => return e.into_response(),
    };
    let transport = match transport_of(request.headers()) {
        Ok(transport) => transport,
        Err(message) => return error_response(StatusCode::BAD_REQUEST, message),
    };
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    match &transport {
        Transport::WebSocket { key } => {
            headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
                headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
            }
            headers.insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(TUNNEL_PROTOCOL),
            );
        }
        Transport::Spdy => {
            headers.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
            headers.insert(
                "X-Stream-Protocol-Version",
                HeaderValue::from_static(PROTOCOL),
            );
        }
    }
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(upgraded) => TokioIo::new(upgraded),
            Err(e) => {
                tracing::debug!(error = %e, "port-forward: the upgrade did not complete");
                return;
            }
        };
        tracing::debug!(%namespace, %pod, "port-forward");
        let (incoming, outgoing) = match transport {
            Transport::WebSocket { .. } => {
                let ws = WebSocketStream::from_raw_socket(upgraded, Role::Server, None).await;
                carry_over_websocket(ws)
            }
            Transport::Spdy => carry_raw(upgraded),
        };
        session(incoming, outgoing, pid, &pod).await;
    });
    response
}

/// A WebSocket tunnel offering our protocol, or a SPDY upgrade for it.
fn transport_of(headers: &HeaderMap) -> Result<Transport, String> {
    let tokens = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_string())
            .collect()
    };
    let upgrade = tokens("upgrade");
    if !tokens("connection")
        .iter()
        .any(|t| t.eq_ignore_ascii_case("upgrade"))
        || upgrade.is_empty()
    {
        return Err("unable to upgrade: missing upgrade headers in request".into());
    }
    if upgrade.iter().any(|u| u.eq_ignore_ascii_case("websocket")) {
        if !tokens("sec-websocket-protocol")
            .iter()
            .any(|p| p == TUNNEL_PROTOCOL)
        {
            return Err(format!(
                "unable to upgrade: none of the requested subprotocols is supported; supported: {TUNNEL_PROTOCOL}"
            ));
        }
        let key = headers
            .get(header::SEC_WEBSOCKET_KEY)
            .and_then(|v| v.to_str().ok())
            .ok_or("unable to upgrade: missing Sec-WebSocket-Key")?;
        return Ok(Transport::WebSocket {
            key: key.to_string(),
        });
    }
    if upgrade.iter().any(|u| u.eq_ignore_ascii_case("SPDY/3.1")) {
        if !tokens("x-stream-protocol-version")
            .iter()
            .any(|p| p == PROTOCOL)
        {
            return Err(format!(
                "unable to upgrade: unable to negotiate protocol: client supports {:?}, server supports [{PROTOCOL}]",
                tokens("x-stream-protocol-version")
            ));
        }
        return Ok(Transport::Spdy);
    }
    Err(format!(
        "unable to upgrade: unsupported protocol {upgrade:?}"
    ))
}

type Bytes = Vec<u8>;

/// The connection's bytes, in and out, whatever carries them.
fn carry_raw(
    upgraded: TokioIo<hyper::upgrade::Upgraded>,
) -> (mpsc::Receiver<Bytes>, mpsc::Sender<Bytes>) {
    let (mut reader, mut writer) = tokio::io::split(upgraded);
    let (in_tx, in_rx) = mpsc::channel::<Bytes>(16);
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let mut buffer = vec![0u8; CHUNK];
        while let Ok(n) = reader.read(&mut buffer).await {
            if n == 0 || in_tx.send(buffer[..n].to_vec()).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(bytes) = out_rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
    });
    (in_rx, out_tx)
}

fn carry_over_websocket(
    ws: WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>,
) -> (mpsc::Receiver<Bytes>, mpsc::Sender<Bytes>) {
    let (mut sink, mut stream) = ws.split();
    let (in_tx, in_rx) = mpsc::channel::<Bytes>(16);
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            let bytes = match message {
                Message::Binary(bytes) => bytes.to_vec(),
                Message::Close(_) => break,
                _ => continue,
            };
            if in_tx.send(bytes).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(bytes) = out_rx.recv().await {
            if sink.send(Message::Binary(bytes.into())).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    (in_rx, out_tx)
}

/// One forwarded connection: its two streams.
#[derive(Default)]
struct Pair {
    error: Option<u32>,
    data: Option<u32>,
    /// Bytes from the client for the Pod (`None`: the client's half closed).
    to_pod: Option<mpsc::Sender<Option<Bytes>>>,
}

/// Reads frames until the client goes away; each data stream gets its
/// connection into the Pod.
async fn session(
    mut incoming: mpsc::Receiver<Bytes>,
    outgoing: mpsc::Sender<Bytes>,
    pid: i32,
    pod: &str,
) {
    // One writer owns the encoder: header compression is one stream.
    let (frames, mut frames_rx) = mpsc::channel::<Frame>(64);
    tokio::spawn(async move {
        let mut encoder = Encoder::default();
        while let Some(frame) = frames_rx.recv().await {
            if outgoing.send(encoder.encode(&frame)).await.is_err() {
                break;
            }
        }
    });
    let mut decoder = Decoder::default();
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    let mut by_stream: HashMap<u32, String> = HashMap::new();
    while let Some(bytes) = incoming.recv().await {
        let decoded = match decoder.push(&bytes) {
            Ok(decoded) => decoded,
            Err(e) => {
                tracing::debug!(error = %e, "port-forward: not SPDY/3");
                let _ = frames
                    .send(Frame::GoAway {
                        last_good: 0,
                        status: 1,
                    })
                    .await;
                break;
            }
        };
        for frame in decoded {
            match frame {
                Frame::SynStream { id, headers, .. } => {
                    let _ = frames
                        .send(Frame::SynReply {
                            id,
                            fin: false,
                            headers: Vec::new(),
                        })
                        .await;
                    let request = spdy::header(&headers, "requestid")
                        .unwrap_or_default()
                        .to_string();
                    by_stream.insert(id, request.clone());
                    let pair = pairs.entry(request.clone()).or_default();
                    match spdy::header(&headers, "streamtype") {
                        Some("error") => pair.error = Some(id),
                        Some("data") => {
                            pair.data = Some(id);
                            let port = spdy::header(&headers, "port").unwrap_or_default();
                            let (to_pod, from_client) = mpsc::channel(16);
                            pair.to_pod = Some(to_pod);
                            let error = pair.error;
                            tokio::spawn(forward(
                                pid,
                                pod.to_string(),
                                port.to_string(),
                                id,
                                error,
                                from_client,
                                frames.clone(),
                            ));
                        }
                        _ => {
                            let _ = frames
                                .send(Frame::RstStream {
                                    id,
                                    status: spdy::INTERNAL_ERROR,
                                })
                                .await;
                        }
                    }
                }
                Frame::Data { id, fin, data } => {
                    let Some(pair) = by_stream.get(&id).and_then(|r| pairs.get_mut(r)) else {
                        continue;
                    };
                    if pair.data != Some(id) {
                        continue; // the client writes nothing on the error stream
                    }
                    if let Some(to_pod) = &pair.to_pod {
                        if !data.is_empty() {
                            let _ = to_pod.send(Some(data)).await;
                        }
                        if fin {
                            let _ = to_pod.send(None).await;
                        }
                    }
                }
                Frame::RstStream { id, .. } => {
                    if let Some(request) = by_stream.remove(&id) {
                        pairs.remove(&request);
                    }
                }
                Frame::Ping(id) => {
                    let _ = frames.send(Frame::Ping(id)).await;
                }
                Frame::GoAway { .. } => return,
                Frame::SynReply { .. } | Frame::Ignored => {}
            }
        }
    }
}

/// One forwarded connection: connect inside the Pod, then copy both ways;
/// the data stream and the error stream end with it.
async fn forward(
    pid: i32,
    pod: String,
    port: String,
    data: u32,
    error: Option<u32>,
    mut from_client: mpsc::Receiver<Option<Bytes>>,
    frames: mpsc::Sender<Frame>,
) {
    let connected = match port.parse::<u16>() {
        Ok(number) if number > 0 => connect_in_pod(pid, number)
            .await
            .map_err(|e| format!("error forwarding port {number} to pod {pod}, uid : {e}")),
        _ => Err(format!("unable to parse '{port}' as a port")),
    };
    let end = |id: u32| Frame::Data {
        id,
        fin: true,
        data: Vec::new(),
    };
    let stream = match connected {
        Ok(stream) => stream,
        Err(message) => {
            tracing::debug!(%message, "port-forward");
            if let Some(error) = error {
                let _ = frames
                    .send(Frame::Data {
                        id: error,
                        fin: true,
                        data: message.into_bytes(),
                    })
                    .await;
            }
            let _ = frames.send(end(data)).await;
            return;
        }
    };
    let (mut reader, mut writer) = stream.into_split();
    // Ends when the client closes its half (then the Pod's answer may go
    // on) or goes away altogether (then everything ends).
    let client_to_pod = async move {
        loop {
            match from_client.recv().await {
                Some(Some(bytes)) => {
                    if writer.write_all(&bytes).await.is_err() {
                        return true;
                    }
                }
                Some(None) => {
                    let _ = writer.shutdown().await;
                    return false;
                }
                None => return true,
            }
        }
    };
    let pod_to_client = {
        let frames = frames.clone();
        async move {
            let mut buffer = vec![0u8; CHUNK];
            loop {
                match reader.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let frame = Frame::Data {
                            id: data,
                            fin: false,
                            data: buffer[..n].to_vec(),
                        };
                        if frames.send(frame).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
    };
    // The Pod's answer ending ends the forwarded connection, as upstream.
    tokio::select! {
        _ = pod_to_client => {}
        _ = async {
            if !client_to_pod.await {
                std::future::pending::<()>().await;
            }
        } => {}
    }
    let _ = frames.send(end(data)).await;
    if let Some(error) = error {
        let _ = frames.send(end(error)).await;
    }
}

/// Connects to `localhost:port` in the network namespace of process `pid`
/// (IPv4, then IPv6), from a thread that exists only for that.
async fn connect_in_pod(pid: i32, port: u16) -> Result<TcpStream, String> {
    let (done, result) = oneshot::channel();
    std::thread::spawn(move || {
        let connected = (|| -> Result<std::net::TcpStream, String> {
            let namespace = File::open(format!("/proc/{pid}/ns/net"))
                .map_err(|e| format!("the Pod's network namespace: {e}"))?;
            nix::sched::setns(namespace.as_fd(), CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("entering the Pod's network namespace: {e}"))?;
            let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
            let e4 = match std::net::TcpStream::connect_timeout(&v4, CONNECT_TIMEOUT) {
                Ok(stream) => return Ok(stream),
                Err(e) => e,
            };
            let e6: io::Error = match std::net::TcpStream::connect_timeout(&v6, CONNECT_TIMEOUT) {
                Ok(stream) => return Ok(stream),
                Err(e) => e,
            };
            Err(format!(
                "failed to connect to localhost:{port} inside namespace of pid {pid}, IPv4: dial tcp4 {v4}: connect: {} IPv6 dial tcp6 {v6}: connect: {}",
                go_style(&e4),
                go_style(&e6)
            ))
        })();
        let _ = done.send(connected);
    });
    let stream = result
        .await
        .map_err(|_| "the connecting thread ended".to_string())??;
    stream.set_nonblocking(true).map_err(|e| e.to_string())?;
    TcpStream::from_std(stream).map_err(|e| e.to_string())
}

/// An OS error as Go prints it: `connection refused`, not `Connection
/// refused (os error 111)` (kubectl users search for the former).
fn go_style(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(at) => &text[..at],
        None => text.as_str(),
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (n, v) in pairs {
            map.append(
                header::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn errors_read_as_go_writes_them() {
        let refused = io::Error::from_raw_os_error(111);
        assert_eq!(go_style(&refused), "connection refused");
    }

    #[test]
    fn a_websocket_tunnel_or_a_spdy_upgrade_is_accepted() {
        let ws = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-protocol", "SPDY/3.1+portforward.k8s.io"),
        ]);
        assert!(matches!(transport_of(&ws), Ok(Transport::WebSocket { .. })));
        let raw = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "portforward.k8s.io"),
        ]);
        assert!(matches!(transport_of(&raw), Ok(Transport::Spdy)));
        assert_eq!(
            transport_of(&headers(&[])).err().unwrap(),
            "unable to upgrade: missing upgrade headers in request"
        );
        let exec_protocol = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "x"),
            ("sec-websocket-protocol", "v5.channel.k8s.io"),
        ]);
        assert!(transport_of(&exec_protocol).is_err());
    }
}
