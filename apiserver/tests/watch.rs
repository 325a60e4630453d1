//! Watches against the real server: resuming from a resourceVersion,
//! 410 for expired history, initial events, selectors, and kube-rs's
//! reflector (the client library every controller uses).

mod common;

use std::time::Duration;

use common::{ApiServer, Client};
use futures::StreamExt;
use serde_json::{json, Value};

/// Reads `n` events from a watch, failing after 10 s.
async fn read_events(client: &Client, path: &str, n: usize) -> Vec<Value> {
    let resp = client
        .http
        .get(format!("{}{}", client.base, path))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "watch {path}");
    let mut stream = resp.bytes_stream();
    let mut buffer = Vec::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while events.len() < n {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "only {} of {n} events from {path}: {events:?}",
                    events.len()
                )
            })
            .expect("stream open")
            .unwrap();
        buffer.extend_from_slice(&chunk);
        while let Some(pos) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=pos).collect();
            events.push(serde_json::from_slice(&line).unwrap());
        }
    }
    events
}

async fn create_cm(api: &Client, name: &str, labels: Value) -> Value {
    let a = api
        .post(
            "/api/v1/namespaces/default/configmaps",
            &json!({"metadata": {"name": name, "labels": labels}}),
        )
        .await;
    assert_eq!(a.code, 201);
    a.body
}

fn rv(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn watch_resumes_from_a_version_without_loss_or_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::start(dir.path());
    let api = Client::new(&server.url);
    let a = create_cm(&api, "a", json!({})).await;
    create_cm(&api, "b", json!({})).await;
    api.delete("/api/v1/namespaces/default/configmaps/a").await;
    create_cm(&api, "c", json!({})).await;

    let path = format!(
        "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={}",
        rv(&a)
    );
    let events = read_events(&api, &path, 3).await;
    let seen: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().into(),
                e["object"]["metadata"]["name"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("ADDED".into(), "b".into()),
            ("DELETED".into(), "a".into()),
            ("ADDED".into(), "c".into())
        ]
    );
    let versions: Vec<u64> = events.iter().map(|e| rv(&e["object"])).collect();
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "in order: {versions:?}"
    );

    // Live events follow the replay.
    let live = {
        let api = api.clone();
        let path = format!(
            "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={}",
            versions[2]
        );
        tokio::spawn(async move { read_events(&api, &path, 1).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    create_cm(&api, "d", json!({})).await;
    let live = live.await.unwrap();
    assert_eq!(live[0]["object"]["metadata"]["name"], "d");
}

#[tokio::test]
async fn expired_versions_get_410() {
    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::start_with(dir.path(), &["--watch-history", "5"]);
    let api = Client::new(&server.url);
    let first = create_cm(&api, "x0", json!({})).await;
    for i in 1..20 {
        create_cm(&api, &format!("x{i}"), json!({})).await;
    }
    let path = format!(
        "/api/v1/configmaps?watch=true&resourceVersion={}",
        rv(&first)
    );
    let events = read_events(&api, &path, 1).await;
    assert_eq!(events[0]["type"], "ERROR");
    assert_eq!(events[0]["object"]["kind"], "Status");
    assert_eq!(events[0]["object"]["code"], 410);
    assert_eq!(events[0]["object"]["reason"], "Expired");
}

#[tokio::test]
async fn initial_events_end_with_a_bookmark_and_selectors_filter() {
    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::start(dir.path());
    let api = Client::new(&server.url);
    create_cm(&api, "web", json!({"app": "web"})).await;
    create_cm(&api, "db", json!({"app": "db"})).await;

    let path = "/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&labelSelector=app%3Dweb";
    let events = read_events(&api, path, 2).await;
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["metadata"]["name"], "web");
    assert_eq!(events[1]["type"], "BOOKMARK");
    assert_eq!(
        events[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );

    // An object that stops matching is DELETED for this watch.
    let current_rv = events[1]["object"]["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let watch = {
        let api = api.clone();
        let path = format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={current_rv}&labelSelector=app%3Dweb");
        tokio::spawn(async move { read_events(&api, &path, 2).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let relabel = |app: &str| json!({"metadata": {"labels": {"app": app}}});
    api.patch(
        "/api/v1/namespaces/default/configmaps/web",
        "application/merge-patch+json",
        &relabel("other"),
    )
    .await;
    api.patch(
        "/api/v1/namespaces/default/configmaps/db",
        "application/merge-patch+json",
        &relabel("web"),
    )
    .await;
    let events = watch.await.unwrap();
    assert_eq!(
        (
            events[0]["type"].as_str(),
            events[0]["object"]["metadata"]["name"].as_str()
        ),
        (Some("DELETED"), Some("web"))
    );
    assert_eq!(
        (
            events[1]["type"].as_str(),
            events[1]["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("db"))
    );
}

#[tokio::test]
async fn kube_rs_reflector_follows_the_server() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::{reflector, watcher, WatchStreamExt};

    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::start(dir.path());
    let api = Client::new(&server.url);
    create_cm(&api, "before", json!({})).await;

    let config = kube::Config::new(server.url.parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let cms: kube::Api<ConfigMap> = kube::Api::namespaced(client, "default");
    let (reader, writer) = reflector::store();
    let stream = reflector(writer, watcher(cms, watcher::Config::default()))
        .applied_objects()
        .boxed();
    let driver = tokio::spawn(async move {
        let mut stream = stream;
        while stream.next().await.is_some() {}
    });

    create_cm(&api, "after", json!({})).await;
    api.delete("/api/v1/namespaces/default/configmaps/before")
        .await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut names: Vec<String> = reader
            .state()
            .iter()
            .map(|c| c.metadata.name.clone().unwrap())
            .collect();
        names.sort();
        if names == vec!["after".to_string()] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "reflector saw {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    driver.abort();
}
