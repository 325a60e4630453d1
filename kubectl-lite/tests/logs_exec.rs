//! `kubectl-lite logs` and `kubectl-lite exec` against the real apiserver,
//! which forwards them to a real kubelet server (`nodeagent::server` on a
//! loopback port, over a process in its own namespaces and real CRI log
//! files). Needs root (the test container uses namespaces).

use std::io::{BufRead, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::container::{cri_line, pids_running, TestContainer};
use nodeagent::server::table::{ContainerEntry, ContainerTable};
use serde_json::json;

const STAMP: &str = "2026-01-01T00:00:00.000000001Z";

/// The apiserver with node `node-1` (a kubelet server on loopback) and
/// Pods `web-1` (container `web`, running), `multi` (`a` and `b`) and
/// `pending` (no node yet).
struct Cluster {
    url: String,
    table: Arc<ContainerTable>,
    log: PathBuf,
    dir: tempfile::TempDir,
    _server: e2e::harness::ApiServer,
    _container: TestContainer,
    _runtime: tokio::runtime::Runtime,
}

fn cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let server = e2e::harness::ApiServer::start(&dir.path().join("data"));
    let container = TestContainer::start("web-1", &[]);
    let log = dir.path().join("web.log");
    std::fs::write(
        &log,
        [
            cri_line(STAMP, "stdout", true, "one"),
            cri_line(STAMP, "stderr", true, "two"),
        ]
        .concat(),
    )
    .unwrap();
    let table = Arc::new(ContainerTable::new());
    table.insert(
        "default",
        "web-1",
        "web",
        ContainerEntry {
            log: vec![log.clone()],
            pid: Some(container.pid),
            ..Default::default()
        },
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    runtime.spawn(nodeagent::server::serve(listener, table.clone()));

    let http = reqwest::Client::new();
    let send =
        |method: reqwest::Method, path: &str, content_type: &str, body: serde_json::Value| {
            runtime.block_on(async {
                let answer = http
                    .request(method, format!("{}{path}", server.url))
                    .header("content-type", content_type)
                    .body(body.to_string())
                    .send()
                    .await
                    .unwrap();
                let code = answer.status();
                assert!(
                    code.is_success(),
                    "{path}: {}",
                    answer.text().await.unwrap()
                );
            })
        };
    send(
        reqwest::Method::POST,
        "/api/v1/nodes",
        "application/json",
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}}),
    );
    send(
        reqwest::Method::PATCH,
        "/api/v1/nodes/node-1/status",
        "application/merge-patch+json",
        json!({"status": {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        }}),
    );
    for (pod, node, containers) in [
        ("web-1", "node-1", vec!["web"]),
        ("multi", "node-1", vec!["a", "b"]),
        ("pending", "", vec!["web"]),
    ] {
        let containers: Vec<_> = containers
            .iter()
            .map(|c| json!({"name": c, "image": "busybox"}))
            .collect();
        let mut spec = json!({ "containers": containers });
        if !node.is_empty() {
            spec["nodeName"] = json!(node);
        }
        send(
            reqwest::Method::POST,
            "/api/v1/namespaces/default/pods",
            "application/json",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod}, "spec": spec}),
        );
    }
    Cluster {
        url: server.url.clone(),
        table,
        log,
        dir,
        _server: server,
        _container: container,
        _runtime: runtime,
    }
}

impl Cluster {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kubectl-lite"));
        command
            .arg("--server")
            .arg(&self.url)
            .args(args)
            .env("KUBECONFIG", self.dir.path().join("no-kubeconfig"))
            .env("HOME", self.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Runs kubectl-lite with `stdin`; killed by PID after 60 s (a hang
    /// fails the test).
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut command = self.command(args);
        command.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        wait_bounded(command.spawn().unwrap(), stdin, args)
    }
}

fn wait_bounded(mut child: std::process::Child, stdin: Option<&str>, what: &[&str]) -> Output {
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{} hung: {}",
                what.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

#[test]
fn logs() {
    let c = cluster();
    let out = c.run(&["logs", "web-1"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "one\ntwo\n");
    let out = c.run(&["logs", "pod/web-1", "--tail", "1", "--timestamps"], None);
    assert_eq!(text(&out.stdout), format!("{STAMP} two\n"));
    let out = c.run(&["logs", "web-1", "--limit-bytes=5"], None);
    assert_eq!(text(&out.stdout), "one\nt");

    let out = c.run(&["logs", "nope"], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Error from server (NotFound): pods \"nope\" not found\n"
    );
    let out = c.run(&["logs", "web-1", "-c", "db"], None);
    assert_eq!(
        text(&out.stderr),
        "error: container db is not valid for pod web-1\n"
    );
    let out = c.run(&["logs", "web-1", "--previous"], None);
    assert_eq!(
        text(&out.stderr),
        "Error from server (BadRequest): previous terminated container \"web\" in pod \"web-1\" not found\n"
    );
    // Two containers: kubectl picks the first and says so.
    let out = c.run(&["logs", "multi"], None);
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("Defaulted container \"a\" out of: a, b\n"),
        "{stderr}"
    );
    let out = c.run(&["logs", "pending"], None);
    assert_eq!(
        text(&out.stderr),
        "Error from server (BadRequest): pod \"pending\" does not have a host assigned\n"
    );
}

#[test]
fn logs_follow() {
    let c = cluster();
    let mut child = c
        .command(&["logs", "-f", "web-1", "--tail=1"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Read on a thread so that a missing line fails after a bound.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.by_ref() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let next = || {
        rx.recv_timeout(Duration::from_secs(20))
            .expect("a line from logs -f")
    };
    assert_eq!(next(), "two");
    let now = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%9fZ")
        .to_string();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&c.log)
        .unwrap()
        .write_all(cri_line(&now, "stdout", true, "three").as_bytes())
        .unwrap();
    assert_eq!(next(), "three");
    // The container stops: logs -f ends by itself, successfully.
    c.table.update("default", "web-1", "web", |e| e.pid = None);
    let out = wait_bounded(child, None, &["logs", "-f"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn exec() {
    let c = cluster();
    let out = c.run(&["exec", "web-1", "--", "hostname"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "web-1\n");

    let out = c.run(
        &[
            "exec",
            "web-1",
            "--",
            "sh",
            "-c",
            "echo out; echo bad >&2; exit 3",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(text(&out.stdout), "out\n");
    assert_eq!(
        text(&out.stderr),
        "bad\ncommand terminated with exit code 3\n"
    );

    // -i: stdin goes to the command, and its end ends `cat`.
    let out = c.run(
        &["exec", "-i", "web-1", "--", "cat"],
        Some("typed\nlines\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "typed\nlines\n");

    // -t without a terminal: kubectl's warning, then no terminal.
    let out = c.run(
        &[
            "exec",
            "-it",
            "web-1",
            "--",
            "sh",
            "-c",
            "cat; [ -t 0 ] || echo no-tty",
        ],
        Some("piped\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "piped\nno-tty\n");
    assert_eq!(
        text(&out.stderr),
        "Unable to use a TTY - input is not a terminal or the right kind of file\n"
    );

    let out = c.run(&["exec", "web-1", "--", "no-such-program"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("error: error executing remote command: "),
        "{}",
        text(&out.stderr)
    );
    let out = c.run(&["exec", "pending", "--", "hostname"], None);
    assert_eq!(
        text(&out.stderr),
        "Error from server (BadRequest): pod \"pending\" does not have a host assigned\n"
    );
    let out = c.run(&["exec", "web-1", "-c", "db", "--", "hostname"], None);
    assert_eq!(
        text(&out.stderr),
        "error: container db not found in pod web-1\n"
    );
    let out = c.run(&["exec", "web-1"], None);
    assert_eq!(
        text(&out.stderr),
        "error: you must specify at least one command for the container\n"
    );
}

/// Ctrl-C on kubectl ends the remote command too: the kubelet kills what
/// an exec started when its WebSocket closes, through the apiserver.
#[test]
fn exec_ends_with_the_client() {
    let c = cluster();
    let argv = ["sleep", "419.5"];
    let mut args = vec!["exec", "web-1", "--"];
    args.extend(argv);
    let mut child = c.command(&args).stdin(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let pid = loop {
        if let Some(pid) = pids_running(&argv).first() {
            break *pid;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the exec'd sleep never started");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TestContainer::exists(pid) {
        assert!(
            Instant::now() < deadline,
            "exec'd process {pid} outlived kubectl-lite"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `-it` in a real terminal: `script` gives kubectl-lite a pseudo-terminal
/// of 30 rows and 100 columns; the remote side must see a terminal of the
/// same size.
#[test]
fn exec_with_a_terminal() {
    let c = cluster();
    let kubectl = format!(
        "{} --server {} exec -it web-1 -- sh -c '[ -t 0 ] && echo is-a-tty; stty size; exit 5'",
        env!("CARGO_BIN_EXE_kubectl-lite"),
        c.url
    );
    let mut command = Command::new("script");
    command
        .args([
            "-qec",
            &format!("stty rows 30 cols 100; {kubectl}"),
            "/dev/null",
        ])
        .env("HOME", c.dir.path())
        .env("KUBECONFIG", c.dir.path().join("no-kubeconfig"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = wait_bounded(command.spawn().unwrap(), Some(""), &["script", "exec -it"]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("is-a-tty"), "{stdout:?}");
    assert!(stdout.contains("30 100"), "{stdout:?}");
    assert!(
        stdout.contains("command terminated with exit code 5"),
        "{stdout:?}"
    );
    assert_eq!(out.status.code(), Some(5), "{stdout:?}");
}
