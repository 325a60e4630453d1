//! Benchmark: durable creates, big Table lists and watch latency.
//!
//! ```text
//! cargo build --release -p apiserver --bins --examples
//! target/release/examples/bench
//! ```
//!
//! Starts the release `apiserver` binary on a loopback port with a fresh
//! data directory, and measures, in one run:
//! 1. raw sled insert+flush (1 and 16 threads), the ceiling for durable writes;
//! 2. Service creates over HTTP with 16 concurrent clients, and what
//!    fsync before acknowledging costs (against `--unsafe-skip-fsync`);
//! 3. LIST of 10,000 Services rendered as a Table (what `kubectl get svc -A` asks);
//! 4. watch delivery latency on an idle server.
//!
//! Every loop is bounded in count and time; the server is stopped by PID at
//! the end, also on failure.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;

const CLIENTS: usize = 16;
const CREATES: usize = 10_000;
const WATCH_SAMPLES: usize = 200;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// sled alone: insert a Service-sized value and flush, from `threads`
/// threads, for `total` writes.
fn raw_sled(threads: usize, total: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new()
        .path(dir.path())
        .flush_every_ms(None)
        .open()
        .unwrap();
    let value = vec![b'x'; 900];
    let counter = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let db = db.clone();
            let value = value.clone();
            let counter = counter.clone();
            s.spawn(move || loop {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                db.insert(format!("services/default/s{i}"), value.as_slice())
                    .unwrap();
                db.flush().unwrap();
            });
        }
    });
    total as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let exe = std::env::current_exe().unwrap();
    let apiserver = exe.parent().unwrap().parent().unwrap().join("apiserver");
    assert!(
        apiserver.exists(),
        "build it first: cargo build --release -p apiserver --bins --examples"
    );

    println!("# kube-lite apiserver benchmark");
    let sled_1 = raw_sled(1, 2_000);
    let sled_16 = raw_sled(16, 5_000);
    println!("raw sled insert+flush, 1 thread:   {sled_1:>8.0} writes/s");
    println!("raw sled insert+flush, 16 threads: {sled_16:>8.0} writes/s");

    let (base, _server, _dir) = start_plain(&apiserver, &[]).await;
    let http = reqwest::Client::new();

    let (creates_per_s, list_ms) = creates_and_lists(&http, &base).await;
    println!(
        "Service creates over HTTP, {CLIENTS} clients: {creates_per_s:>8.0} creates/s ({:.2}x raw sled with 16 threads)",
        creates_per_s / sled_16
    );
    println!(
        "LIST {CREATES} Services as Table: p50 {:.1} ms, max {:.1} ms",
        percentile(&list_ms, 0.5),
        list_ms[list_ms.len() - 1]
    );

    // 2b. What fsync costs (issue 13): the same creates on a server that
    // acknowledges after sled's flush only, and one client at a time
    // (no group commit to share the fsync) on both.
    let one_client = creates(&http, &base, 1, 500, "one").await;
    let (nosync_base, _nosync_server, _nosync_dir) =
        start_plain(&apiserver, &["--unsafe-skip-fsync"]).await;
    let nosync_16 = creates(&http, &nosync_base, CLIENTS, CREATES, "svc").await;
    let nosync_1 = creates(&http, &nosync_base, 1, 500, "one").await;
    println!(
        "fsync before acknowledging: {CLIENTS} clients {creates_per_s:.0} vs {nosync_16:.0} creates/s without ({:.2}x); \
         1 client {one_client:.0} vs {nosync_1:.0} creates/s ({:.2}x)",
        creates_per_s / nosync_16,
        one_client / nosync_1
    );

    // 3b. The same over HTTPS with a client certificate (issue 11), in
    // this run: what TLS costs.
    let (tls_base, tls_http, _tls_server, _tls_dir) = start_tls(&apiserver).await;
    let (tls_creates, tls_list) = creates_and_lists(&tls_http, &tls_base).await;
    println!(
        "over HTTPS with a client certificate: {tls_creates:>8.0} creates/s ({:.3}x plain), LIST p50 {:.1} ms ({:.3}x plain)",
        tls_creates / creates_per_s,
        percentile(&tls_list, 0.5),
        percentile(&tls_list, 0.5) / percentile(&list_ms, 0.5)
    );

    // 4. Watch latency: write, then time until the event arrives.
    let resp = http
        .get(format!(
            "{base}/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=0"
        ))
        .send()
        .await
        .unwrap();
    let mut stream = resp.bytes_stream();
    let mut latencies = Vec::new();
    let mut round_trips = Vec::new();
    for i in 0..WATCH_SAMPLES {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let start = Instant::now();
        let r = http
            .post(format!("{base}/api/v1/namespaces/default/configmaps"))
            .json(&json!({"metadata": {"name": format!("cm-{i}")}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        let acked = start.elapsed();
        let chunk = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("event within 5 s")
            .unwrap()
            .unwrap();
        assert!(chunk.ends_with(b"\n"));
        // Time from the write being acknowledged to the event, floored at 0
        // (the event may arrive before the response).
        let event = start.elapsed();
        latencies.push(event.saturating_sub(acked).as_secs_f64() * 1000.0);
        round_trips.push(event.as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    round_trips.sort_by(f64::total_cmp);
    println!(
        "watch event after the write was sent (includes the durable write): p50 {:.2} ms, p99 {:.2} ms",
        percentile(&round_trips, 0.5),
        percentile(&round_trips, 0.99)
    );
    println!(
        "watch event after acknowledged write: p50 {:.2} ms, p99 {:.2} ms",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
}

/// A plain-HTTP apiserver on a loopback port with `extra` flags and a
/// fresh data directory, ready.
async fn start_plain(
    apiserver: &std::path::Path,
    extra: &[&str],
) -> (String, Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Server(
        Command::new(apiserver)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(dir.path())
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while http.get(format!("{base}/readyz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "apiserver did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (base, server, dir)
}

/// 10,000 durable Service creates from 16 clients, then 10 LISTs of them
/// as a Table: creates per second, and the LIST times (ms, sorted).
async fn creates_and_lists(http: &reqwest::Client, base: &str) -> (f64, Vec<f64>) {
    let creates_per_s = creates(http, base, CLIENTS, CREATES, "svc").await;
    (creates_per_s, lists(http, base).await)
}

/// `count` Service creates from `clients` concurrent clients (names
/// `<prefix>-<i>`): creates per second.
async fn creates(
    http: &reqwest::Client,
    base: &str,
    clients: usize,
    count: usize,
    prefix: &str,
) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let prefix = prefix.to_string();
        let http = http.clone();
        let base = base.to_string();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let svc = json!({"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": format!("{prefix}-{i}"), "labels": {"app": "bench"}},
                    "spec": {"selector": {"app": format!("a{i}")}, "ports": [{"port": 80, "targetPort": 8080}]}});
                let r = http
                    .post(format!("{base}/api/v1/namespaces/default/services"))
                    .json(&svc)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 201);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    count as f64 / start.elapsed().as_secs_f64()
}

/// 10 LISTs of every Service as a Table: the times (ms, sorted).
async fn lists(http: &reqwest::Client, base: &str) -> Vec<f64> {
    let mut list_ms = Vec::new();
    for _ in 0..10 {
        let start = Instant::now();
        let body = http
            .get(format!("{base}/api/v1/services"))
            .header(
                "accept",
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
            )
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        list_ms.push(start.elapsed().as_secs_f64() * 1000.0);
        assert!(body.len() > CREATES * 100);
    }
    list_ms.sort_by(f64::total_cmp);
    list_ms
}

/// A second apiserver, serving HTTPS with a CA of its own, and a client
/// that presents an admin certificate.
async fn start_tls(
    apiserver: &std::path::Path,
) -> (String, reqwest::Client, Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let ca = api::pki::Ca::generate().unwrap();
    let serving = ca
        .issue(&api::pki::CertRequest::server(
            "kube-apiserver",
            &["localhost"],
            &["127.0.0.1".parse().unwrap()],
        ))
        .unwrap();
    let admin = ca
        .issue(&api::pki::CertRequest::client(
            "kubernetes-admin",
            &["system:masters"],
        ))
        .unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let (ca_file, cert, key) = (
        write("ca.crt", ca.cert_pem()),
        write("apiserver.crt", &serving.cert_pem),
        write("apiserver.key", &serving.key_pem),
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Server(
        Command::new(apiserver)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(dir.path().join("data"))
            .arg("--tls-cert-file")
            .arg(&cert)
            .arg("--tls-private-key-file")
            .arg(&key)
            .arg("--client-ca-file")
            .arg(&ca_file)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let identity =
        reqwest::Identity::from_pem(format!("{}{}", admin.cert_pem, admin.key_pem).as_bytes())
            .unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.cert_pem().as_bytes()).unwrap())
        .identity(identity)
        // The same protocol as the plain run (HTTP/1.1 on kept-alive
        // connections), so that only TLS differs.
        .http1_only()
        .build()
        .unwrap();
    let base = format!("https://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while http.get(format!("{base}/readyz")).send().await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the HTTPS apiserver did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (base, http, server, dir)
}
