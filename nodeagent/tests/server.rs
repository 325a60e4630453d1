//! The kubelet's server (`nodeagent::server`) on a real port, over a real
//! process in its own namespaces ([`e2e::container::TestContainer`]) and
//! real CRI log files: `exec` over WebSocket with the `channel.k8s.io`
//! protocol and `containerLogs` with kubectl's options. Needs root.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::container::{cri_line, pids_running, TestContainer, MARKER};
use futures::{SinkExt, StreamExt};
use nodeagent::server::table::{ContainerEntry, ContainerTable};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// A server on a free loopback port over `table`.
async fn start_server(table: Arc<ContainerTable>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(nodeagent::server::serve(listener, table));
    format!("127.0.0.1:{}", addr.port())
}

/// One container `web` in Pod `default/web-1`, running `container`.
fn table_with(container: &TestContainer, log: Vec<PathBuf>) -> Arc<ContainerTable> {
    let table = Arc::new(ContainerTable::new());
    table.insert(
        "default",
        "web-1",
        "web",
        ContainerEntry {
            log,
            pid: Some(container.pid),
            ..Default::default()
        },
    );
    table
}

/// What an exec session returned.
#[derive(Debug, Default)]
struct Session {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    status: Value,
    /// Answers to our pings (kubectl pings every 5 s and gives up
    /// after a minute without an answer).
    pongs: usize,
}

type Ws = WebSocketStream<TcpStream>;

/// Opens an exec WebSocket like kubectl does; returns it and the
/// negotiated subprotocol.
async fn connect(addr: &str, path_and_query: &str, protocols: &str) -> (Ws, String) {
    let mut request = format!("ws://{addr}{path_and_query}")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", protocols.parse().unwrap());
    let stream = TcpStream::connect(addr).await.unwrap();
    let (ws, response) = tokio_tungstenite::client_async(request, stream)
        .await
        .expect("WebSocket upgrade");
    let protocol = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (ws, protocol)
}

/// Reads messages until the server closes, sorting them by channel.
async fn collect(ws: &mut Ws) -> Session {
    let mut session = Session::default();
    let read_all = async {
        while let Some(message) = ws.next().await {
            match message.expect("a WebSocket message") {
                Message::Binary(data) => match data.first() {
                    Some(1) => session.stdout.extend_from_slice(&data[1..]),
                    Some(2) => session.stderr.extend_from_slice(&data[1..]),
                    Some(3) => session.status = serde_json::from_slice(&data[1..]).unwrap(),
                    _ => {}
                },
                Message::Pong(_) => session.pongs += 1,
                Message::Close(_) => break,
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read_all)
        .await
        .expect("the exec session ended in time");
    session
}

fn exec_path(command: &[&str], flags: &str) -> String {
    let commands: Vec<String> = command
        .iter()
        .map(|c| format!("command={}", urlencode(c)))
        .collect();
    format!("/exec/default/web-1/web?{}&{flags}", commands.join("&"))
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_runs_inside_the_container_namespaces() {
    let container = TestContainer::start("web-1", &[("GREETING", "hello-from-pod")]);
    let addr = start_server(table_with(&container, vec![])).await;

    let (mut ws, protocol) = connect(
        &addr,
        &exec_path(&["hostname"], "stdout=true&stderr=true"),
        "v5.channel.k8s.io",
    )
    .await;
    assert_eq!(protocol, "v5.channel.k8s.io");
    let s = collect(&mut ws).await;
    assert_eq!(String::from_utf8_lossy(&s.stdout), "web-1\n");
    assert_eq!(
        s.status,
        serde_json::json!({"metadata": {}, "status": "Success"})
    );

    // Mounts, working directory and environment are the container's.
    let (mut ws, _) = connect(
        &addr,
        &exec_path(
            &["sh", "-c", "cat marker; pwd; echo $GREETING"],
            "stdout=true&stderr=true",
        ),
        "v4.channel.k8s.io",
    )
    .await;
    let s = collect(&mut ws).await;
    assert_eq!(
        String::from_utf8_lossy(&s.stdout),
        format!("{MARKER}\n/mnt\nhello-from-pod\n")
    );
    assert_eq!(s.status["status"], "Success");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_exit_code_and_stderr() {
    let container = TestContainer::start("web-1", &[]);
    let addr = start_server(table_with(&container, vec![])).await;
    let (mut ws, _) = connect(
        &addr,
        &exec_path(
            &["sh", "-c", "echo out; echo oops >&2; exit 3"],
            "stdout=true&stderr=true",
        ),
        "v5.channel.k8s.io",
    )
    .await;
    let s = collect(&mut ws).await;
    assert_eq!(String::from_utf8_lossy(&s.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&s.stderr), "oops\n");
    assert_eq!(s.status["status"], "Failure");
    assert_eq!(s.status["reason"], "NonZeroExitCode");
    assert_eq!(
        s.status["details"]["causes"][0],
        serde_json::json!({"reason": "ExitCode", "message": "3"})
    );

    // A program that does not exist: a Failure status, no hang.
    let (mut ws, _) = connect(
        &addr,
        &exec_path(&["no-such-program"], "stdout=true"),
        "v5.channel.k8s.io",
    )
    .await;
    let s = collect(&mut ws).await;
    assert_eq!(s.status["status"], "Failure");
    let message = s.status["message"].as_str().unwrap();
    assert!(
        message.contains("\"no-such-program\": executable file not found"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_with_stdin_and_close() {
    let container = TestContainer::start("web-1", &[]);
    let addr = start_server(table_with(&container, vec![])).await;
    let (mut ws, _) = connect(
        &addr,
        &exec_path(&["cat"], "stdin=true&stdout=true&stderr=true"),
        "v5.channel.k8s.io",
    )
    .await;
    ws.send(Message::Ping(b"heartbeat".to_vec().into()))
        .await
        .unwrap();
    ws.send(Message::Binary(b"\x00hello\n".to_vec().into()))
        .await
        .unwrap();
    ws.send(Message::Binary(b"\x00world\n".to_vec().into()))
        .await
        .unwrap();
    // v5: stdin is over, cat sees EOF and exits.
    ws.send(Message::Binary(vec![255, 0].into())).await.unwrap();
    let s = collect(&mut ws).await;
    assert_eq!(String::from_utf8_lossy(&s.stdout), "hello\nworld\n");
    assert_eq!(s.status["status"], "Success");
    assert_eq!(s.pongs, 1, "a ping is answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_with_a_terminal() {
    let container = TestContainer::start("web-1", &[]);
    let addr = start_server(table_with(&container, vec![])).await;
    let (mut ws, _) = connect(
        &addr,
        &exec_path(&["sh"], "stdin=true&stdout=true&tty=true"),
        "v5.channel.k8s.io",
    )
    .await;
    ws.send(Message::Binary(
        b"\x04{\"Width\":100,\"Height\":30}".to_vec().into(),
    ))
    .await
    .unwrap();
    ws.send(Message::Binary(
        b"\x00[ -t 0 ] && echo is-a-tty; stty size; hostname; exit 7\n"
            .to_vec()
            .into(),
    ))
    .await
    .unwrap();
    let s = collect(&mut ws).await;
    let out = String::from_utf8_lossy(&s.stdout);
    // The terminal echoes input and ends lines with \r\n.
    assert!(out.contains("is-a-tty\r\n"), "{out:?}");
    assert!(out.contains("30 100\r\n"), "{out:?}");
    assert!(out.contains("web-1\r\n"), "{out:?}");
    assert!(s.stderr.is_empty(), "a terminal has no separate stderr");
    assert_eq!(s.status["details"]["causes"][0]["message"], "7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_websocket_kills_the_process() {
    let container = TestContainer::start("web-1", &[]);
    let addr = start_server(table_with(&container, vec![])).await;
    for tty in ["false", "true"] {
        // A unique argument to find the exec'd process by.
        let argv = ["sleep", "417.5"];
        let (mut ws, _) = connect(
            &addr,
            &exec_path(&argv, &format!("stdin=true&stdout=true&tty={tty}")),
            "v5.channel.k8s.io",
        )
        .await;
        let deadline = Instant::now() + Duration::from_secs(10);
        let pid = loop {
            if let Some(pid) = pids_running(&argv).first() {
                break *pid;
            }
            assert!(Instant::now() < deadline, "the exec'd sleep never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        ws.close(None).await.unwrap();
        drop(ws);
        // Killed and reaped: no process, no zombie left.
        let deadline = Instant::now() + Duration::from_secs(10);
        while TestContainer::exists(pid) {
            assert!(
                Instant::now() < deadline,
                "exec'd process {pid} (tty={tty}) outlived its WebSocket"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A plain GET; returns the code and body.
async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    let code = response.status().as_u16();
    (code, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_in_the_kubelet_words() {
    let container = TestContainer::start("web-1", &[]);
    let table = table_with(&container, vec![]);
    table.insert(
        "default",
        "starting",
        "app",
        ContainerEntry {
            waiting: Some("ContainerCreating".into()),
            ..Default::default()
        },
    );
    let addr = start_server(Arc::clone(&table)).await;
    let base = format!("http://{addr}");

    let (code, body) = get(&format!("{base}/containerLogs/default/nope/web")).await;
    assert_eq!((code, body.trim()), (404, "pod \"nope\" does not exist"));
    let (code, body) = get(&format!("{base}/containerLogs/default/web-1/db")).await;
    assert_eq!(
        (code, body.trim()),
        (404, "container \"db\" not found in pod \"web-1\"")
    );
    let (code, body) = get(&format!("{base}/containerLogs/default/starting/app")).await;
    assert_eq!(
        (code, body.trim()),
        (
            400,
            "container \"app\" in pod \"starting\" is waiting to start: ContainerCreating"
        )
    );
    let (code, body) = get(&format!(
        "{base}/containerLogs/default/web-1/web?previous=true"
    ))
    .await;
    assert_eq!(
        (code, body.trim()),
        (
            400,
            "previous terminated container \"web\" in pod \"web-1\" not found"
        )
    );
    let (code, body) = get(&format!(
        "{base}/containerLogs/default/web-1/web?tailLines=x"
    ))
    .await;
    assert_eq!(code, 400, "{body}");

    // exec: refused before any upgrade, so kubectl shows the reason.
    let (code, body) = get(&format!("{base}{}", exec_path(&["ls"], "stdout=true"))).await;
    assert_eq!(code, 400);
    assert!(body.contains("WebSocket"), "{body}");
    let (code, body) = get(&format!("{base}/exec/default/web-1/web?stdout=true")).await;
    assert_eq!(code, 400);
    assert!(body.contains("at least one command"), "{body}");
    let (code, body) = get(&format!(
        "{base}/exec/default/starting/app?command=ls&stdout=true"
    ))
    .await;
    assert_eq!(code, 400);
    assert!(body.contains("waiting to start"), "{body}");
    table.update("default", "web-1", "web", |e| e.pid = None);
    let (code, body) = get(&format!("{base}{}", exec_path(&["ls"], "stdout=true"))).await;
    assert_eq!(
        (code, body.trim()),
        (400, "container \"web\" in pod \"web-1\" is not running")
    );
}

fn write_log(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.concat()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_like_kubectl_logs() {
    let container = TestContainer::start("web-1", &[]);
    let dir = tempfile::tempdir().unwrap();
    let rotated = dir.path().join("1.log.1");
    let current = dir.path().join("1.log");
    let previous = dir.path().join("0.log");
    let old = "2020-01-01T00:00:00.000000001Z";
    write_log(
        &previous,
        &[cri_line(old, "stdout", true, "previous instance")],
    );
    write_log(
        &rotated,
        &[
            cri_line(old, "stdout", true, "one"),
            cri_line(old, "stderr", true, "two"),
        ],
    );
    let now = chrono_now();
    write_log(
        &current,
        &[
            cri_line(&now, "stdout", false, "thr"),
            cri_line(&now, "stdout", true, "ee"),
            cri_line(&now, "stdout", true, "four"),
            "garbage that is not a CRI line\n".to_string(),
        ],
    );
    let table = table_with(&container, vec![rotated.clone(), current.clone()]);
    table.update("default", "web-1", "web", |e| {
        e.previous_log = Some(vec![previous.clone()])
    });
    let addr = start_server(Arc::clone(&table)).await;
    let logs = format!("http://{addr}/containerLogs/default/web-1/web");

    assert_eq!(get(&logs).await, (200, "one\ntwo\nthree\nfour\n".into()));
    assert_eq!(get(&format!("{logs}?tailLines=2")).await.1, "three\nfour\n");
    assert_eq!(get(&format!("{logs}?tailLines=0")).await.1, "");
    assert_eq!(get(&format!("{logs}?limitBytes=6")).await.1, "one\ntw");
    assert_eq!(
        get(&format!("{logs}?sinceSeconds=3600")).await.1,
        "three\nfour\n"
    );
    assert_eq!(
        get(&format!("{logs}?timestamps=true&tailLines=2")).await.1,
        format!("{now} three\n{now} four\n")
    );
    assert_eq!(
        get(&format!("{logs}?previous=true")).await.1,
        "previous instance\n"
    );

    // Follow: lines appear as they are written; the answer ends when the
    // container stops.
    let follow = reqwest::get(format!("{logs}?follow=true&tailLines=1"))
        .await
        .unwrap();
    assert_eq!(follow.status(), 200);
    let mut body = follow.bytes_stream();
    let mut seen = String::new();
    let mut read_until = async |wanted: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !seen.contains(wanted) {
            let chunk = tokio::time::timeout_at(deadline.into(), body.next())
                .await
                .unwrap_or_else(|_| panic!("waiting for {wanted:?}, got {seen:?}"));
            match chunk {
                Some(chunk) => seen.push_str(&String::from_utf8_lossy(&chunk.unwrap())),
                None => break,
            }
        }
        seen.clone()
    };
    assert_eq!(read_until("four\n").await, "four\n");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&current)
        .unwrap();
    file.write_all(cri_line(&chrono_now(), "stdout", true, "five").as_bytes())
        .unwrap();
    assert_eq!(read_until("five\n").await, "four\nfive\n");
    // Written just before the container stops: still sent, then the end.
    file.write_all(cri_line(&chrono_now(), "stderr", true, "six").as_bytes())
        .unwrap();
    table.update("default", "web-1", "web", |e| e.pid = None);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline.into(), body.next()).await {
            Ok(Some(chunk)) => seen.push_str(&String::from_utf8_lossy(&chunk.unwrap())),
            Ok(None) => break,
            Err(_) => panic!("logs -f did not end after the container stopped: {seen:?}"),
        }
    }
    assert_eq!(seen, "four\nfive\nsix\n");
}

/// Now in the CRI log's format (RFC 3339, UTC, nanoseconds).
fn chrono_now() -> String {
    let now = k8s_openapi::jiff::Timestamp::now();
    format!("{}", now.strftime("%Y-%m-%dT%H:%M:%S.%9fZ"))
}
