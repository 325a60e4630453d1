//! `kubectl exec`: run a command in a container, wired to this terminal.
//!
//! `kubectl exec -it web-1 -- sh` opens one WebSocket to
//! `/api/v1/namespaces/NS/pods/web-1/exec?command=sh&stdin=true&stdout=true&tty=true`
//! with the subprotocol `v5.channel.k8s.io`. The API server passes it on
//! to the kubelet of the Pod's node, which starts `sh` inside the
//! container. Then every WebSocket message carries one stream, named by
//! its first byte: 0 what we type, 1 and 2 what the command prints, 3 how
//! it ended (a `Status`), 4 our terminal's size, 255 "this stream is over"
//! (sent when our stdin ends, so `echo hi | kubectl exec -i pod -- cat`
//! finishes).
//!
//! With `-t` the local terminal goes into raw mode: keys go to the remote
//! side as typed (Ctrl-C interrupts the remote command, not kubectl), and
//! the remote terminal draws. The command's exit code becomes ours:
//! `command terminated with exit code 3`, exit status 3.

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::os::fd::AsFd as _;

use clap::Args;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{status_from_answer, ApiError, Client};
use crate::containers;

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The Pod (`NAME` or `pod/NAME`)
    pub pod: String,
    /// The container (default: the Pod's only or default container)
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Pass stdin to the command
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Stdin is a terminal: raw mode, terminal size follows ours
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Only print what the command prints
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// The command and its arguments, after `--`
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// A remote command that exited non-zero: kubectl prints this line and
/// exits with the same code.
#[derive(Debug, thiserror::Error)]
#[error("command terminated with exit code {code}")]
pub struct ExitCodeError {
    pub code: u8,
}

pub async fn run(client: &Client, args: ExecArgs) -> anyhow::Result<()> {
    if args.command.is_empty() {
        anyhow::bail!("you must specify at least one command for the container");
    }
    let name = containers::pod_name(&args.pod)?;
    let pod = containers::get_pod(client, &name).await?;
    if let Some(phase @ ("Succeeded" | "Failed")) = pod["status"]["phase"].as_str() {
        anyhow::bail!("cannot exec into a container in a completed pod; current phase is {phase}");
    }
    let container = match &args.container {
        Some(c) if !containers::has_container(&pod, c) => {
            anyhow::bail!("container {c} not found in pod {name}")
        }
        Some(c) => c.clone(),
        None => {
            let (c, notice) = containers::default_container(&pod)?;
            if let (Some(notice), false) = (notice, args.quiet) {
                eprintln!("{notice}");
            }
            c
        }
    };
    // A terminal only makes sense when our stdin is one (kubectl's rule).
    let tty = args.stdin && args.tty && {
        let terminal = std::io::stdin().is_terminal();
        if !terminal && !args.quiet {
            eprintln!("Unable to use a TTY - input is not a terminal or the right kind of file");
        }
        terminal
    };
    let mut query = form_urlencoded::Serializer::new(String::new());
    for word in &args.command {
        query.append_pair("command", word);
    }
    query
        .append_pair("container", &container)
        .append_pair("stdin", &args.stdin.to_string())
        .append_pair("stdout", "true")
        .append_pair("stderr", &(!tty).to_string())
        .append_pair("tty", &tty.to_string());
    let path = format!(
        "/api/v1/namespaces/{}/pods/{name}/exec?{}",
        client.namespace,
        query.finish()
    );
    let code = session(client, &path, args.stdin, tty).await?;
    match code {
        0 => Ok(()),
        code => Err(ExitCodeError { code }.into()),
    }
}

type Ws = tokio_tungstenite::WebSocketStream<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>;

/// Opens the WebSocket (kube-rs offers `v5.channel.k8s.io` and
/// `v4.channel.k8s.io`, over the kubeconfig's TLS and credentials); a
/// refused upgrade is the server's `Status`. Returns whether the server
/// chose v5, which can close stdin.
async fn connect(client: &Client, path: &str) -> anyhow::Result<(Ws, bool)> {
    let request = http::Request::get(path).body(vec![])?;
    match client.kube().connect(request).await {
        Ok(connection) => {
            let v5 = connection.supports_stream_close();
            Ok((connection.into_stream(), v5))
        }
        Err(kube::Error::UpgradeConnection(e)) => Err(ApiError::Status(status_from_answer(
            http::StatusCode::BAD_REQUEST,
            &e.to_string(),
        ))
        .into()),
        Err(e) => Err(client.transport_error(e).into()),
    }
}

/// Runs the exec session; returns the remote command's exit code.
async fn session(client: &Client, path: &str, stdin: bool, tty: bool) -> anyhow::Result<u8> {
    let (ws, can_close_stdin) = connect(client, path).await?;
    let (mut sink, mut incoming) = ws.split();
    let _raw = if tty { RawMode::enter() } else { None };

    // Reading stdin blocks; a plain thread does it so that it can never
    // hold the program open once the command is over.
    let (stdin_tx, mut stdin_rx) = mpsc::channel::<Option<Vec<u8>>>(4);
    if stdin {
        std::thread::spawn(move || {
            let mut input = std::io::stdin().lock();
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match input.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = stdin_tx.blocking_send(None);
                        return;
                    }
                    Ok(n) => {
                        if stdin_tx.blocking_send(Some(buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                }
            }
        });
    } else {
        drop(stdin_tx);
    }
    let mut stdin_open = stdin;

    let mut resizes = if tty {
        if let Some(size) = terminal_size() {
            sink.send(Message::Binary(size.into())).await?;
        }
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok()
    } else {
        None
    };

    let mut status = Value::Null;
    loop {
        tokio::select! {
            message = incoming.next() => match message {
                Some(Ok(Message::Binary(data))) => match data.split_first() {
                    Some((&STDOUT, bytes)) => {
                        let mut out = std::io::stdout().lock();
                        out.write_all(bytes)?;
                        out.flush()?;
                    }
                    Some((&STDERR, bytes)) => {
                        let mut err = std::io::stderr().lock();
                        err.write_all(bytes)?;
                        err.flush()?;
                    }
                    Some((&ERROR, bytes)) => {
                        status = serde_json::from_slice(bytes).unwrap_or_else(|_| {
                            json!({"status": "Failure", "message": String::from_utf8_lossy(bytes)})
                        });
                    }
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | None => break,
                Some(Ok(_)) => {}
                // The exit status arrived: the session is over, however the
                // connection then ends.
                Some(Err(_)) if !status.is_null() => break,
                Some(Err(e)) => return Err(ApiError::Unreachable(e.to_string()).into()),
            },
            input = stdin_rx.recv(), if stdin_open => match input {
                Some(Some(bytes)) => {
                    let mut message = Vec::with_capacity(bytes.len() + 1);
                    message.push(STDIN);
                    message.extend_from_slice(&bytes);
                    sink.send(Message::Binary(message.into())).await?;
                }
                _ => {
                    stdin_open = false;
                    // v5: tell the command its input is over.
                    if can_close_stdin {
                        sink.send(Message::Binary(vec![CLOSE, STDIN].into())).await?;
                    }
                }
            },
            Some(()) = next_resize(&mut resizes) => {
                if let Some(size) = terminal_size() {
                    sink.send(Message::Binary(size.into())).await?;
                }
            }
        }
    }
    exit_code(&status)
}

async fn next_resize(signal: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match signal {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// The exit code a `Status` from the error channel stands for.
fn exit_code(status: &Value) -> anyhow::Result<u8> {
    match status["status"].as_str() {
        // No status at all: the stream ended cleanly (kubectl: success).
        None | Some("Success") => Ok(0),
        Some(_) if status["reason"] == "NonZeroExitCode" => {
            let code = status["details"]["causes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["reason"] == "ExitCode")
                .and_then(|c| c["message"].as_str())
                .ok_or_else(|| {
                    anyhow::anyhow!("error stream protocol error: details must be set")
                })?;
            code.parse().map_err(|_| {
                anyhow::anyhow!("error stream protocol error: invalid exit code value {code:?}")
            })
        }
        Some(_) => anyhow::bail!(
            "error executing remote command: {}",
            status["message"].as_str().unwrap_or_default()
        ),
    }
}

/// A resize message with the local terminal's size.
fn terminal_size() -> Option<Vec<u8>> {
    nix::ioctl_read_bad!(get_window_size, nix::libc::TIOCGWINSZ, nix::pty::Winsize);
    let mut size = nix::pty::Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let stdout = std::io::stdout();
    // SAFETY: TIOCGWINSZ fills the Winsize we pass.
    unsafe { get_window_size(std::os::fd::AsRawFd::as_raw_fd(&stdout.as_fd()), &mut size) }.ok()?;
    let json = json!({"Width": size.ws_col, "Height": size.ws_row}).to_string();
    let mut message = vec![RESIZE];
    message.extend_from_slice(json.as_bytes());
    Some(message)
}

/// The local terminal in raw mode, restored when dropped.
struct RawMode {
    saved: nix::sys::termios::Termios,
}

impl RawMode {
    fn enter() -> Option<RawMode> {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        let saved = tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            std::io::stdin().as_fd(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.saved,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_from_status() {
        assert_eq!(
            exit_code(&json!({"metadata": {}, "status": "Success"})).unwrap(),
            0
        );
        assert_eq!(exit_code(&Value::Null).unwrap(), 0);
        let three = json!({"status": "Failure", "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}});
        assert_eq!(exit_code(&three).unwrap(), 3);
        let failed = json!({"status": "Failure", "message": "boom"});
        assert_eq!(
            exit_code(&failed).unwrap_err().to_string(),
            "error executing remote command: boom"
        );
    }
}
