//! `kubectl exec`: a command run in a container, wired to the user's
//! terminal over a WebSocket.
//!
//! On the wire, `kubectl exec -it web-1 -- sh` is one HTTP request that
//! the apiserver forwards to this node:
//!
//! ```text
//! GET /exec/default/web-1/web?command=sh&stdin=true&stdout=true&tty=true
//! Connection: Upgrade
//! Upgrade: websocket
//! Sec-WebSocket-Protocol: v5.channel.k8s.io
//! ```
//!
//! The kubelet checks the container runs, answers `101 Switching
//! Protocols` with the subprotocol it picked, starts the command inside the
//! container ([`super::enter`]) and then shuttles bytes: client messages
//! on channel 0 go to the process's stdin, its output goes back on
//! channels 1 and 2 ([`super::channel`]). When the process exits the
//! kubelet sends its exit status as a `Status` on channel 3 and closes the
//! WebSocket; kubectl exits with the same code. If the client goes away
//! first, the process is killed: an exec never outlives its session.
//!
//! Everything that can be refused (bad query, unknown container, not a
//! WebSocket) is refused before the upgrade, as a plain HTTP error. That
//! matters for kubectl: when the WebSocket upgrade fails it retries once
//! over SPDY, and the answer to that second request is what the user sees.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::channel::{self, Incoming, Protocol};
use super::enter::{self, ExecIo, ExecTarget, Streams};
use super::{error_response, parse_bool, query_pairs, Containers};

/// How long output is still drained after the process exited: a
/// background child (`sleep 100 &`) may hold stdout open forever, and the
/// exit status must not wait for it.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(1);

/// The exec URL's query: the command and which streams to attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOptions {
    pub command: Vec<String>,
    pub streams: Streams,
}

impl ExecOptions {
    pub fn from_query(query: Option<&str>) -> Result<ExecOptions, String> {
        let mut command = Vec::new();
        let mut streams = Streams {
            stdin: false,
            stdout: false,
            stderr: false,
            tty: false,
        };
        for (key, value) in query_pairs(query) {
            match key.as_str() {
                "command" => command.push(value),
                "stdin" | "input" => streams.stdin = parse_bool(&key, &value)?,
                "stdout" | "output" => streams.stdout = parse_bool(&key, &value)?,
                "stderr" | "error" => streams.stderr = parse_bool(&key, &value)?,
                "tty" => streams.tty = parse_bool(&key, &value)?,
                _ => {}
            }
        }
        if command.is_empty() {
            return Err("you must specify at least one command for the container".into());
        }
        if !streams.stdin && !streams.stdout && !streams.stderr {
            return Err("you must specify at least 1 of stdin, stdout, stderr".into());
        }
        // A terminal has one output: stderr goes where stdout goes.
        if streams.tty {
            streams.stderr = false;
        }
        Ok(ExecOptions { command, streams })
    }
}

/// `GET|POST /exec/{namespace}/{pod}/{container}`.
pub async fn handle(
    State(containers): State<Arc<dyn Containers>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    mut request: Request,
) -> Response {
    let opts = match ExecOptions::from_query(request.uri().query()) {
        Ok(opts) => opts,
        Err(message) => return error_response(StatusCode::BAD_REQUEST, message),
    };
    // Found now, while the container is known to run.
    let target = match containers.exec_target(&namespace, &pod, &container) {
        Ok(target) => target,
        Err(e) => return e.into_response(),
    };
    let (key, protocol) = match websocket_request(request.headers()) {
        Ok(accepted) => accepted,
        Err(message) => return error_response(StatusCode::BAD_REQUEST, message),
    };
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                tracing::debug!(%namespace, %pod, %container, command = ?opts.command, "exec");
                session(ws, protocol, &target, &opts).await;
            }
            Err(e) => tracing::debug!(error = %e, "exec: the upgrade did not complete"),
        }
    });
    switching_protocols(&key, protocol)
}

/// `101 Switching Protocols` to a WebSocket with the `channel.k8s.io`
/// version picked (exec and attach answer alike).
pub(super) fn switching_protocols(key: &str, protocol: Protocol) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    headers.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(protocol.name()),
    );
    response
}

/// Checks that the request is a WebSocket upgrade offering a
/// `channel.k8s.io` version we speak; returns its key and that version.
pub(super) fn websocket_request(headers: &HeaderMap) -> Result<(String, Protocol), String> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .unwrap_or_default()
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        })
    };
    let supported = Protocol::ALL.map(Protocol::name).join(", ");
    if !has_token(header::CONNECTION, "upgrade") || !has_token(header::UPGRADE, "websocket") {
        let asked = headers
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .map(|u| format!(" (this request asked for {u:?})"))
            .unwrap_or_default();
        return Err(format!(
            "unable to upgrade connection: exec is served over WebSocket only, with subprotocol {supported}{asked}"
        ));
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .ok_or("unable to upgrade connection: missing Sec-WebSocket-Key")?;
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v != "13")
    {
        return Err(
            "unable to upgrade connection: unsupported Sec-WebSocket-Version, 13 is required"
                .into(),
        );
    }
    let offered = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let protocol = Protocol::negotiate(offered).ok_or_else(|| {
        format!("unable to upgrade connection: none of the requested subprotocols is supported; supported: {supported}")
    })?;
    Ok((key.to_string(), protocol))
}

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Runs the command and connects it to the WebSocket until it exits (then
/// sends its status and closes) or the client goes away (then kills it).
async fn session(ws: Socket, protocol: Protocol, target: &ExecTarget, opts: &ExecOptions) {
    let (mut sink, mut incoming) = ws.split();
    // One writer for the socket; outputs and the status queue up here.
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(16);
    let writer = tokio::spawn(async move {
        while let Some(message) = out_rx.recv().await {
            if sink.send(message).await.is_err() {
                return;
            }
        }
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            })))
            .await;
        let _ = sink.close().await;
    });

    // kubectl sends the terminal's size as its first message: the terminal
    // gets that size before the command starts. Any other first message is
    // put back in front of the rest.
    let mut first = None;
    let mut tty_size = None;
    if opts.streams.tty {
        if let Ok(Some(message)) =
            tokio::time::timeout(Duration::from_secs(1), incoming.next()).await
        {
            match &message {
                Ok(Message::Binary(data)) => match channel::decode(data) {
                    Incoming::Resize(size) => tty_size = Some((size.width, size.height)),
                    _ => first = Some(message),
                },
                _ => first = Some(message),
            }
        }
    }
    let mut incoming = futures::stream::iter(first).chain(incoming);
    let status = match enter::spawn(target, &opts.command, opts.streams, tty_size) {
        Ok(mut exec) => {
            let pid = exec.child.id();
            let mut tasks = tokio::task::JoinSet::new();
            let (stdin_tx, stdin_rx) = mpsc::channel::<Vec<u8>>(8);
            let pty = match exec.io {
                ExecIo::Pipes {
                    stdin,
                    stdout,
                    stderr,
                } => {
                    if let Some(stdin) = stdin {
                        tasks.spawn(feed_stdin(stdin_rx, Input::Pipe(stdin)));
                    }
                    if let Some(out) = stdout {
                        tasks.spawn(pump(out, channel::STDOUT, out_tx.clone()));
                    }
                    if let Some(err) = stderr {
                        tasks.spawn(pump(err, channel::STDERR, out_tx.clone()));
                    }
                    None
                }
                ExecIo::Tty(pty) => {
                    let pty = Arc::new(pty);
                    if opts.streams.stdin {
                        tasks.spawn(feed_stdin(stdin_rx, Input::Tty(Arc::clone(&pty))));
                    }
                    tasks.spawn(pump_tty(Arc::clone(&pty), out_tx.clone()));
                    Some(pty)
                }
            };
            let mut stdin_tx = Some(stdin_tx);
            let exited = loop {
                tokio::select! {
                    status = exec.child.wait() => break Some(status),
                    message = incoming.next() => match message {
                        Some(Ok(Message::Binary(data))) => match channel::decode(&data) {
                            Incoming::Stdin(bytes) => {
                                // Waiting here is TCP back-pressure on the
                                // client; outputs flow on in their own tasks.
                                if let Some(tx) = &stdin_tx {
                                    if tx.send(bytes.to_vec()).await.is_err() {
                                        stdin_tx = None;
                                    }
                                }
                            }
                            Incoming::CloseStdin if protocol == Protocol::V5 => stdin_tx = None,
                            Incoming::Resize(size) => {
                                if let Some(pty) = &pty {
                                    let _ = pty.resize(size.width, size.height);
                                }
                            }
                            _ => {}
                        },
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break None,
                        Some(Ok(_)) => {}
                    },
                }
            };
            match exited {
                Some(status) => {
                    // Drain what the process wrote before it exited.
                    let drained = async { while tasks.join_next().await.is_some() {} };
                    let _ = tokio::time::timeout(DRAIN_AFTER_EXIT, drained).await;
                    tasks.abort_all();
                    Some(match status {
                        Ok(status) => exit_status(&opts.command, status),
                        Err(e) => channel::internal_error(&format!("waiting for the command: {e}")),
                    })
                }
                None => {
                    // The client is gone: the process is ours, end it and
                    // what it started (its process group or session).
                    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                        // runc's child is the command, in the container's
                        // own session when it has a terminal.
                        enter::kill_children(pid);
                        let _ = nix::sys::signal::killpg(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                    let _ = exec.child.kill().await;
                    tasks.abort_all();
                    None
                }
            }
        }
        Err(e) => Some(channel::internal_error(&spawn_error(&opts.command, &e))),
    };
    if let Some(status) = status {
        let json = serde_json::to_vec(&status).unwrap_or_default();
        let _ = out_tx
            .send(Message::Binary(
                channel::frame(channel::ERROR, &json).into(),
            ))
            .await;
    }
    drop(out_tx);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    // The closing handshake: read on until the client's Close. Dropping the
    // socket while the client still sends (a keystroke, a resize, its own
    // Close) makes the kernel answer with a reset, and a reset can destroy
    // the status and Close still unread on the client's side.
    let handshake = async { while let Some(Ok(_)) = incoming.next().await {} };
    let _ = tokio::time::timeout(Duration::from_secs(5), handshake).await;
}

/// The exit status as a `Status`; a signal counts as 128 + its number,
/// as shells and container runtimes report it.
fn exit_status(command: &[String], status: std::process::ExitStatus) -> serde_json::Value {
    use std::os::unix::process::ExitStatusExt as _;
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1);
    if code == 0 {
        channel::success()
    } else {
        channel::exit_code(command, code)
    }
}

/// Why the command could not start, in runc's words where they exist.
fn spawn_error(command: &[String], e: &std::io::Error) -> String {
    let program = command.first().map(String::as_str).unwrap_or_default();
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            format!("exec: {program:?}: executable file not found in $PATH")
        }
        std::io::ErrorKind::PermissionDenied => format!("exec: {program:?}: permission denied"),
        _ => format!("exec: {program:?}: {e}"),
    }
}

/// Where stdin bytes go.
enum Input {
    Pipe(tokio::process::ChildStdin),
    Tty(Arc<enter::Pty>),
}

/// Copies client input to the process; closing the pipe when the client
/// closes stdin tells the process its input is over (a terminal has no
/// such thing: the user types Ctrl-D).
async fn feed_stdin(mut rx: mpsc::Receiver<Vec<u8>>, mut input: Input) {
    while let Some(bytes) = rx.recv().await {
        let written = match &mut input {
            Input::Pipe(pipe) => pipe.write_all(&bytes).await,
            Input::Tty(pty) => pty.write_all(&bytes).await,
        };
        if written.is_err() {
            return;
        }
    }
}

/// Copies one output pipe to its channel until EOF.
async fn pump(mut from: impl AsyncRead + Unpin, channel_id: u8, to: mpsc::Sender<Message>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let message = Message::Binary(channel::frame(channel_id, &buf[..n]).into());
                if to.send(message).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Copies the terminal's output to stdout until it closes.
async fn pump_tty(pty: Arc<enter::Pty>, to: mpsc::Sender<Message>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match pty.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let message = Message::Binary(channel::frame(channel::STDOUT, &buf[..n]).into());
                if to.send(message).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_like_kubectl_sends_it() {
        let o = ExecOptions::from_query(Some(
            "command=sh&command=-c&command=echo+a%26b&stdin=true&stdout=true&stderr=true&tty=true",
        ))
        .unwrap();
        assert_eq!(o.command, ["sh", "-c", "echo a&b"]);
        assert!(o.streams.stdin && o.streams.stdout && o.streams.tty);
        assert!(!o.streams.stderr, "a terminal merges stderr into stdout");
        assert!(ExecOptions::from_query(Some("stdout=true")).is_err());
        assert!(ExecOptions::from_query(Some("command=ls")).is_err());
    }

    #[test]
    fn only_websocket_upgrades_with_our_subprotocol() {
        let mut h = HeaderMap::new();
        assert!(websocket_request(&h)
            .unwrap_err()
            .contains("WebSocket only"));
        h.insert(header::CONNECTION, "keep-alive, Upgrade".parse().unwrap());
        h.insert(header::UPGRADE, "SPDY/3.1".parse().unwrap());
        assert!(websocket_request(&h).unwrap_err().contains("SPDY/3.1"));
        h.insert(header::UPGRADE, "websocket".parse().unwrap());
        h.insert(
            header::SEC_WEBSOCKET_KEY,
            "dGhlIHNhbXBsZSBub25jZQ==".parse().unwrap(),
        );
        h.insert(header::SEC_WEBSOCKET_VERSION, "13".parse().unwrap());
        assert!(websocket_request(&h).unwrap_err().contains("subprotocol"));
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            "v5.channel.k8s.io".parse().unwrap(),
        );
        assert_eq!(websocket_request(&h).unwrap().1, Protocol::V5);
    }
}
