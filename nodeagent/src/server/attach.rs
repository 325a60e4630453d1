//! `kubectl attach` (and `kubectl run -i`): the user's terminal on a
//! running container's own stdin and output, where `exec` starts a new
//! process.
//!
//! `GET|POST /attach/{namespace}/{pod}/{container}?stdin=true&stdout=true&tty=true`
//! is the same WebSocket as exec (`v5.channel.k8s.io`, see
//! [`super::channel`]). A container started with `stdin: true` reads from
//! the fifo its monitor made (`pods::monitor::AttachSpec`): what the
//! client sends on channel 0 is written there, a terminal resize becomes a
//! `resize W H` line on the control fifo, and the end of the client's
//! input (`stdinOnce`) a `close-stdin` line. Output is what the container
//! writes to its log from now on, followed as `kubectl logs -f` follows
//! it, each line on channel 1 or 2 as it was written. When the container
//! exits, the session ends with a success status; when the client goes,
//! the container goes on.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path as UrlPath, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::channel::{self, Incoming, Protocol};
use super::exec::{switching_protocols, websocket_request};
use super::{error_response, parse_bool, query_pairs, Containers};

/// How often the log is looked at for new output.
const FOLLOW_EVERY: Duration = Duration::from_millis(50);

/// What attaching to one container needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachTarget {
    /// The fifos `stdin` and `ctl`.
    pub dir: PathBuf,
    /// The log file its instance writes.
    pub log: PathBuf,
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
    if stdin && !target.dir.join("stdin").exists() {
        return error_response(
            StatusCode::BAD_REQUEST,
            format!("container {container} in pod {pod} does not have stdin enabled (set stdin: true in its spec)"),
        );
    }
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
                tracing::debug!(%namespace, %pod, %container, "attach");
                session(
                    ws,
                    protocol,
                    &containers,
                    (&namespace, &pod, &container),
                    &target,
                    stdin,
                    tty,
                )
                .await;
            }
            Err(e) => tracing::debug!(error = %e, "attach: the upgrade did not complete"),
        }
    });
    switching_protocols(&key, protocol)
}

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

async fn session(
    ws: Socket,
    protocol: Protocol,
    containers: &Arc<dyn Containers>,
    (namespace, pod, container): (&str, &str, &str),
    target: &AttachTarget,
    stdin: bool,
    tty: bool,
) {
    let (mut sink, mut incoming) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(16);
    let writer = tokio::spawn(async move {
        while let Some(message) = out_rx.recv().await {
            if sink.send(message).await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    let follower = tokio::spawn(follow_log(target.log.clone(), tty, out_tx.clone()));
    let mut input = if stdin {
        open_for_writing(&target.dir.join("stdin")).await
    } else {
        None
    };
    let ctl = open_for_writing(&target.dir.join("ctl")).await;
    let mut ctl = ctl;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {
                if !containers.is_running(namespace, pod, container) {
                    break;
                }
            }
            message = incoming.next() => match message {
                Some(Ok(Message::Binary(data))) => match channel::decode(&data) {
                    Incoming::Stdin(bytes) => {
                        if let Some(fifo) = &mut input {
                            if fifo.write_all(bytes).await.is_err() {
                                input = None;
                            }
                        }
                    }
                    Incoming::CloseStdin if protocol == Protocol::V5 => {
                        input = None;
                        control(&mut ctl, "close-stdin").await;
                    }
                    Incoming::Resize(size) => {
                        control(&mut ctl, &format!("resize {} {}", size.width, size.height)).await;
                    }
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    // The session is over; the container goes on (without
                    // input, if it was to be read once).
                    control(&mut ctl, "close-stdin").await;
                    follower.abort();
                    return;
                }
                Some(Ok(_)) => {}
            },
        }
    }
    // The container ended: what it wrote last, then the status.
    tokio::time::sleep(FOLLOW_EVERY * 3).await;
    follower.abort();
    let json = serde_json::to_vec(&channel::success()).unwrap_or_default();
    let _ = out_tx
        .send(Message::Binary(
            channel::frame(channel::ERROR, &json).into(),
        ))
        .await;
    drop(out_tx);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
}

/// A fifo opened for writing without waiting for a reader (the monitor
/// reads both fifos as long as the container runs).
async fn open_for_writing(path: &Path) -> Option<tokio::fs::File> {
    tokio::fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
        .await
        .ok()
}

async fn control(ctl: &mut Option<tokio::fs::File>, line: &str) {
    if let Some(fifo) = ctl {
        let _ = fifo.write_all(format!("{line}\n").as_bytes()).await;
    }
}

/// Sends what is appended to the container's log from now on: each CRI
/// line's content on its stream's channel (all on stdout with a terminal),
/// with its newline when the line was complete.
async fn follow_log(path: PathBuf, tty: bool, out: mpsc::Sender<Message>) {
    let Ok(mut file) = tokio::fs::File::open(&path).await else {
        return;
    };
    let _ = file.seek(std::io::SeekFrom::End(0)).await;
    let mut pending = Vec::new();
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        match file.read(&mut buffer).await {
            Ok(0) => tokio::time::sleep(FOLLOW_EVERY).await,
            Ok(n) => {
                pending.extend_from_slice(&buffer[..n]);
                while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    if let Some((stream, content)) = cri_line(&line[..line.len() - 1]) {
                        let channel = if stream == "stderr" && !tty {
                            channel::STDERR
                        } else {
                            channel::STDOUT
                        };
                        let message = Message::Binary(channel::frame(channel, &content).into());
                        if out.send(message).await.is_err() {
                            return;
                        }
                    }
                }
            }
            Err(_) => return,
        }
    }
}

/// `<time> <stream> <P|F> <content>`: the stream and the content, with a
/// newline for a complete (`F`) line.
fn cri_line(line: &[u8]) -> Option<(&str, Vec<u8>)> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let _time = parts.next()?;
    let stream = std::str::from_utf8(parts.next()?).ok()?;
    let tag = parts.next()?;
    let mut content = parts.next().unwrap_or_default().to_vec();
    if tag == b"F" {
        content.push(b'\n');
    }
    Some((stream, content))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_give_their_stream_and_content() {
        assert_eq!(
            cri_line(b"2026-12-07T15:00:00.1Z stdout F got hello"),
            Some(("stdout", b"got hello\n".to_vec()))
        );
        assert_eq!(
            cri_line(b"2026-12-07T15:00:00.1Z stderr P / # "),
            Some(("stderr", b"/ # ".to_vec()))
        );
        assert_eq!(cri_line(b"garbage"), None);
    }
}
