//! Limits against abuse (issue 11): JSON patch bombs, and requests in
//! flight beyond the limit. The apiserver must refuse at once, with
//! upstream's codes, and keep serving everyone else.

mod common;

use std::time::Duration;

use common::{ApiServer, Client};
use serde_json::{json, Value};

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";

async fn with_configmap(api: &ApiServer) -> Client {
    let client = Client::new(&api.url);
    let created = client
        .post(
            CONFIGMAPS,
            &json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "target"}, "data": {"a": "1"}}),
        )
        .await;
    assert_eq!(created.code, 201, "{:?}", created.body);
    client
}

async fn json_patch(client: &Client, ops: Vec<Value>) -> common::Answer {
    client
        .send(
            "PATCH",
            &format!("{CONFIGMAPS}/target"),
            "application/json-patch+json",
            Some(serde_json::to_vec(&ops).unwrap()),
        )
        .await
}

#[tokio::test]
async fn a_json_patch_of_too_many_operations_is_413_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let api = ApiServer::start(dir.path());
    let client = with_configmap(&api).await;
    let ops: Vec<Value> = (0..10_001)
        .map(|i| json!({"op": "add", "path": format!("/data/k{i}"), "value": "v"}))
        .collect();
    let answer = json_patch(&client, ops).await;
    assert_eq!(answer.code, 413);
    assert_eq!(answer.body["reason"], "RequestEntityTooLarge");
    assert_eq!(
        answer.body["message"],
        "The allowed maximum operations in a JSON patch is 10000, got 10001"
    );
    let after = client.get(&format!("{CONFIGMAPS}/target")).await;
    assert_eq!(after.body["data"], json!({"a": "1"}));
}

#[tokio::test]
async fn a_json_patch_that_copies_itself_big_is_422_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let api = ApiServer::start(dir.path());
    let client = with_configmap(&api).await;
    // Each copy nests the annotations in themselves: 40 doublings of
    // 1 KiB would be a petabyte.
    let mut ops = vec![json!({"op": "add", "path": "/metadata/annotations",
                              "value": {"x": "y".repeat(1024)}})];
    for i in 0..40 {
        ops.push(json!({"op": "copy", "from": "/metadata/annotations",
                        "path": format!("/metadata/annotations/k{i}")}));
    }
    let answer = json_patch(&client, ops).await;
    assert_eq!(answer.code, 422, "{:?}", answer.body);
    assert!(
        answer.body["message"]
            .as_str()
            .unwrap()
            .contains("accumulated size of copied values"),
        "{:?}",
        answer.body
    );
    assert_eq!(client.get("/readyz").await.code, 200);
}

#[tokio::test]
async fn beyond_the_writes_in_flight_the_answer_is_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let api = ApiServer::start_with(dir.path(), &["--max-mutating-requests-inflight", "1"]);
    let addr = api.url.trim_start_matches("http://").to_string();
    let mut held = hold_a_write(&addr);
    let client = Client::new(&api.url);
    // The second write finds no room. The held one may need a moment to
    // arrive, and may itself lose the one place to a second write in
    // flight at that moment (then its connection has a 429): hold another.
    let mut answer = None;
    for _ in 0..50 {
        let a = client
            .post(
                CONFIGMAPS,
                &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "second"}}),
            )
            .await;
        if a.code == 429 {
            answer = Some(a);
            break;
        }
        if answered(&held) {
            held = hold_a_write(&addr);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answer = answer.expect("a 429 while the first write is in flight");
    assert_eq!(answer.body["reason"], "TooManyRequests");
    assert_eq!(
        answer.body["message"],
        "Too many requests, please try again later."
    );
    assert_eq!(answer.headers["retry-after"], "1");
    // Reads have their own room.
    assert_eq!(client.get(CONFIGMAPS).await.code, 200);
    drop(held);
}

/// One write that stays in flight: it promises 100 bytes of body and
/// sends one.
fn hold_a_write(addr: &str) -> std::net::TcpStream {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    std::io::Write::write_all(
        &mut stream,
        format!(
            "POST {CONFIGMAPS} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
        )
        .as_bytes(),
    )
    .unwrap();
    stream
}

/// Whether the server has answered on `stream` (a write still in flight
/// has no answer yet).
fn answered(stream: &std::net::TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let answered = stream.peek(&mut [0u8; 1]).is_ok();
    stream.set_nonblocking(false).unwrap();
    answered
}
