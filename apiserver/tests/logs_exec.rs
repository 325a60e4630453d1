//! `pods/log` and `pods/exec` through the real apiserver to a real kubelet
//! server (`nodeagent::server` on a loopback port, over a process in its
//! own namespaces and real CRI log files), with a raw client and with the
//! real kubectl 1.35. Needs root (the test container uses namespaces).

mod common;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{kubectl, ApiServer, Client};
use e2e::container::{cri_line, TestContainer};
use futures::StreamExt;
use nodeagent::server::table::{ContainerEntry, ContainerTable};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// The apiserver, a kubelet server for node `node-1` and these Pods:
/// `web-1` (container `web` on node-1, running), `multi` (containers `a`
/// and `b`), `pending` (no node), `lost` (node `ghost`, no such Node) and
/// `away` (node-2, whose kubelet does not listen).
struct Cluster {
    api: Client,
    server: ApiServer,
    table: Arc<ContainerTable>,
    log: PathBuf,
    _container: TestContainer,
    _dir: tempfile::TempDir,
}

async fn cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::start(&dir.path().join("data"));
    let api = Client::new(&server.url);
    let container = TestContainer::start("web-1", &[]);

    let log = dir.path().join("web.log");
    let t = "2026-01-01T00:00:00.000000001Z";
    std::fs::write(
        &log,
        [
            cri_line(t, "stdout", true, "one"),
            cri_line(t, "stderr", true, "two"),
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let kubelet_port = listener.local_addr().unwrap().port();
    tokio::spawn(nodeagent::server::serve(listener, table.clone()));

    for (node, port) in [
        ("node-1", kubelet_port),
        ("node-2", e2e::harness::free_port()),
    ] {
        let status = json!({
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        });
        let created = api
            .post(
                "/api/v1/nodes",
                &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}}),
            )
            .await;
        assert_eq!(created.code, 201, "{}", created.body);
        let patched = api
            .patch(
                &format!("/api/v1/nodes/{node}/status"),
                "application/merge-patch+json",
                &json!({ "status": status }),
            )
            .await;
        assert_eq!(patched.code, 200, "{}", patched.body);
    }
    for (pod, node, containers) in [
        ("web-1", "node-1", vec!["web"]),
        ("multi", "node-1", vec!["a", "b"]),
        ("pending", "", vec!["web"]),
        ("lost", "ghost", vec!["web"]),
        ("away", "node-2", vec!["web"]),
    ] {
        let containers: Vec<Value> = containers
            .iter()
            .map(|c| json!({"name": c, "image": "busybox"}))
            .collect();
        let mut spec = json!({ "containers": containers });
        if !node.is_empty() {
            spec["nodeName"] = json!(node);
        }
        let created = api
            .post(
                "/api/v1/namespaces/default/pods",
                &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod}, "spec": spec}),
            )
            .await;
        assert_eq!(created.code, 201, "{}", created.body);
    }
    Cluster {
        api,
        server,
        table,
        log,
        _container: container,
        _dir: dir,
    }
}

const PODS: &str = "/api/v1/namespaces/default/pods";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_logs_through_the_apiserver() {
    let c = cluster().await;
    let got = c.api.get(&format!("{PODS}/web-1/log")).await;
    assert_eq!((got.code, got.body), (200, json!("one\ntwo\n")));
    let got = c
        .api
        .get(&format!("{PODS}/web-1/log?tailLines=1&container=web"))
        .await;
    assert_eq!(got.body, json!("two\n"));

    // Errors as Status objects, in kube-apiserver's and the kubelet's words.
    let status = |got: common::Answer| {
        (
            got.code,
            got.body["reason"].as_str().unwrap_or_default().to_string(),
            got.body["message"].as_str().unwrap_or_default().to_string(),
        )
    };
    assert_eq!(
        status(c.api.get(&format!("{PODS}/multi/log")).await),
        (
            400,
            "BadRequest".into(),
            "a container name must be specified for pod multi, choose one of: [a b]".into()
        )
    );
    assert_eq!(
        status(c.api.get(&format!("{PODS}/web-1/log?container=db")).await),
        (
            400,
            "BadRequest".into(),
            "container db is not valid for pod web-1".into()
        )
    );
    assert_eq!(
        status(c.api.get(&format!("{PODS}/pending/log")).await).0,
        400
    );
    let (code, _, message) = status(c.api.get(&format!("{PODS}/lost/log")).await);
    assert_eq!(code, 503);
    assert!(message.contains("\"ghost\""), "{message}");
    let (code, reason, message) = status(c.api.get(&format!("{PODS}/away/log")).await);
    assert_eq!((code, reason.as_str()), (503, "ServiceUnavailable"));
    assert!(message.contains("node \"node-2\""), "{message}");
    // The kubelet's own refusal, passed on with its code.
    assert_eq!(
        status(c.api.get(&format!("{PODS}/web-1/log?previous=true")).await),
        (
            400,
            "BadRequest".into(),
            "previous terminated container \"web\" in pod \"web-1\" not found".into()
        )
    );
    assert_eq!(
        status(c.api.get(&format!("{PODS}/multi/log?container=a")).await).0,
        404,
        "the kubelet does not know container a"
    );
    assert_eq!(status(c.api.get(&format!("{PODS}/nope/log")).await).0, 404);

    // -f: chunks arrive while the file grows; the end when the container stops.
    let response = c
        .api
        .http
        .get(format!(
            "{}{PODS}/web-1/log?follow=true&tailLines=1",
            c.server.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !seen.contains("two\n") {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("first lines");
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap().unwrap()));
    }
    let now = format!(
        "{}",
        k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S.%9fZ")
    );
    std::fs::OpenOptions::new()
        .append(true)
        .open(&c.log)
        .unwrap()
        .write_all(cri_line(&now, "stdout", true, "three").as_bytes())
        .unwrap();
    while !seen.contains("three\n") {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .unwrap_or_else(|_| panic!("no new line through the apiserver: {seen:?}"));
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap().unwrap()));
    }
    c.table.update("default", "web-1", "web", |e| e.pid = None);
    loop {
        match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Some(chunk)) => seen.push_str(&String::from_utf8_lossy(&chunk.unwrap())),
            Ok(None) => break,
            Err(_) => panic!("logs -f did not end: {seen:?}"),
        }
    }
    assert_eq!(seen, "two\nthree\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_websocket_through_the_apiserver() {
    let c = cluster().await;
    let addr = c.server.url.trim_start_matches("http://").to_string();
    for protocol in ["v5.channel.k8s.io", "v4.channel.k8s.io"] {
        let mut request = format!(
            "ws://{addr}{PODS}/web-1/exec?command=sh&command=-c&command=hostname%3B+exit+4&stdout=true&stderr=true"
        )
        .into_client_request()
        .unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
        let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let (mut ws, response) = tokio_tungstenite::client_async(request, stream)
            .await
            .expect("the upgrade goes through the apiserver");
        assert_eq!(
            response.headers()["Sec-WebSocket-Protocol"],
            protocol,
            "the kubelet's choice reaches the client"
        );
        let mut stdout = Vec::new();
        let mut status = Value::Null;
        let read = async {
            while let Some(message) = ws.next().await {
                match message.unwrap() {
                    Message::Binary(data) if data.first() == Some(&1) => {
                        stdout.extend_from_slice(&data[1..])
                    }
                    Message::Binary(data) if data.first() == Some(&3) => {
                        status = serde_json::from_slice(&data[1..]).unwrap()
                    }
                    Message::Close(_) => break,
                    _ => {}
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), read)
            .await
            .expect("the exec ended");
        assert_eq!(String::from_utf8_lossy(&stdout), "web-1\n");
        assert_eq!(status["reason"], "NonZeroExitCode");
        assert_eq!(status["details"]["causes"][0]["message"], "4");
    }

    // Not a WebSocket (kubectl's SPDY fallback): a clear 400, at once.
    for method in ["GET", "POST"] {
        let got = tokio::time::timeout(
            Duration::from_secs(10),
            c.api.send(
                method,
                &format!("{PODS}/web-1/exec?command=hostname&stdout=true"),
                "",
                None,
            ),
        )
        .await
        .expect("no hang");
        assert_eq!(got.code, 400, "{}", got.body);
        assert_eq!(got.body["kind"], "Status");
        assert!(
            got.body["message"].as_str().unwrap().contains("WebSocket"),
            "{}",
            got.body
        );
    }
    let got = c
        .api
        .get(&format!("{PODS}/pending/exec?command=hostname&stdout=true"))
        .await;
    assert_eq!(got.code, 400);
    assert_eq!(
        got.body["message"],
        "pod \"pending\" does not have a host assigned"
    );
}

/// kubectl with a private home and cache, against the apiserver; killed
/// by PID if it runs longer than 60 s (a hang is a failure, not a wait).
fn run_kubectl(server: &str, home: &std::path::Path, args: &[&str], stdin: Option<&str>) -> Output {
    let child = Command::new(kubectl())
        .arg("--server")
        .arg(server)
        .arg("--cache-dir")
        .arg(home.join("cache"))
        .args(args)
        .env("KUBECONFIG", home.join("config"))
        .env("HOME", home)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running kubectl");
    wait_bounded(child, stdin, &format!("kubectl {}", args.join(" ")))
}

/// Feeds `stdin`, then waits for the process; kills it by PID after 60 s.
fn wait_bounded(mut child: std::process::Child, stdin: Option<&str>, what: &str) -> Output {
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input.as_bytes()).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what} hung; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_kubectl_logs_and_exec() {
    let c = cluster().await;
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("config"), "").unwrap();
    let url = c.server.url.clone();
    let home_path = home.path().to_path_buf();
    let k = move |args: &[&str], stdin: Option<&str>| {
        let url = url.clone();
        let home = home_path.clone();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let stdin = stdin.map(str::to_string);
        async move {
            tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                run_kubectl(&url, &home, &args, stdin.as_deref())
            })
            .await
            .unwrap()
        }
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();

    let out = k(&["logs", "web-1"], None).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "one\ntwo\n");
    let out = k(&["logs", "web-1", "--tail=1", "--timestamps"], None).await;
    assert_eq!(text(&out.stdout), "2026-01-01T00:00:00.000000001Z two\n");
    // (kubectl picks a container itself when there are several.)
    let out = k(&["logs", "web-1", "-c", "db"], None).await;
    assert!(!out.status.success());
    // (kubectl checks this itself, in the apiserver's words.)
    assert!(
        text(&out.stderr).contains("container db is not valid for pod web-1"),
        "{}",
        text(&out.stderr)
    );

    let out = k(&["exec", "web-1", "--", "hostname"], None).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "web-1\n");

    let out = k(
        &["exec", "web-1", "--", "sh", "-c", "echo bad >&2; exit 3"],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("bad\n"), "{stderr}");
    assert!(
        stderr.contains("command terminated with exit code 3"),
        "{stderr}"
    );

    let out = k(
        &["exec", "-i", "web-1", "--", "cat"],
        Some("typed\nlines\n"),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "typed\nlines\n");

    // Refusals reach the user (after kubectl's SPDY retry), and never hang.
    let out = k(&["exec", "pending", "--", "hostname"], None).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("does not have a host assigned"),
        "{}",
        text(&out.stderr)
    );
    // -it in a real terminal (`script` gives kubectl a 30x100 pty): the
    // remote side gets a terminal of kubectl's size, kubectl our exit code.
    let script = format!(
        "stty rows 30 cols 100; {} --server {} --cache-dir {} exec -it web-1 -- sh -c '[ -t 0 ] && echo is-a-tty; stty size; exit 5'",
        kubectl().display(),
        c.server.url,
        home.path().join("cache").display()
    );
    let mut command = Command::new("script");
    command
        .args(["-qec", &script, "/dev/null"])
        .env("HOME", home.path())
        .env("KUBECONFIG", home.path().join("config"));
    let out = tokio::task::spawn_blocking(move || {
        let child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_bounded(child, Some(""), "script kubectl exec -it")
    })
    .await
    .unwrap();
    let stdout = text(&out.stdout);
    assert!(stdout.contains("is-a-tty"), "{stdout:?}");
    assert!(stdout.contains("30 100"), "{stdout:?}");
    assert!(
        stdout.contains("command terminated with exit code 5"),
        "{stdout:?}"
    );
    assert_eq!(out.status.code(), Some(5), "{stdout:?}");

    // The kubelet's own refusal, through both of kubectl's attempts.
    let out = k(&["exec", "multi", "-c", "b", "--", "hostname"], None).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("pod \"multi\" does not exist"),
        "{}",
        text(&out.stderr)
    );
    let out = k(&["exec", "away", "--", "hostname"], None).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("node-2"),
        "{}",
        text(&out.stderr)
    );
}

/// `nodes/{name}/proxy/{path}`: GET passed on to the node's kubelet, as
/// `kubectl get --raw` uses it; the kubelet's refusals and unknown nodes
/// come back as Status objects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_proxy_passes_get_to_the_kubelet() {
    let c = cluster().await;
    let got = c.api.get("/api/v1/nodes/node-1/proxy/healthz").await;
    assert_eq!((got.code, got.body), (200, json!("ok")));
    let got = c.api.get("/api/v1/nodes/node-1/proxy/nothing-here").await;
    assert_eq!(
        (got.code, got.body["reason"].clone()),
        (404, json!("NotFound"))
    );
    let got = c.api.get("/api/v1/nodes/ghost/proxy/healthz").await;
    assert_eq!(got.code, 404);
    assert_eq!(got.body["message"], "nodes \"ghost\" not found");
    let got = c.api.get("/api/v1/nodes/node-2/proxy/healthz").await;
    assert_eq!(
        (got.code, got.body["reason"].clone()),
        (503, json!("ServiceUnavailable"))
    );

    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("config"), "").unwrap();
    let url = c.server.url.clone();
    let home_path = home.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        run_kubectl(
            &url,
            &home_path,
            &["get", "--raw", "/api/v1/nodes/node-1/proxy/healthz"],
            None,
        )
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok");
}
