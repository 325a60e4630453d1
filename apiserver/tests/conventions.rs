//! The API conventions clients lean on (issue 12): every Status carries
//! `details`, discovery answers with a trailing slash too, admission
//! (NamespaceLifecycle) answers before validation, and a DELETE without
//! preconditions is not failed by a concurrent update. Each test runs the
//! real apiserver (dev mode) on its own port and data directory.

mod common;

use common::{ApiServer, Client};
use serde_json::{json, Value};

fn start() -> (tempfile::TempDir, ApiServer, Client) {
    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::start(dir.path());
    let client = Client::new(&server.url);
    (dir, server, client)
}

#[tokio::test]
async fn every_status_has_details_even_empty() {
    let (_dir, _server, client) = start();
    let no_route = client.get("/api/v1/nothing-here").await;
    assert_eq!(no_route.code, 404);
    assert_eq!(no_route.body["details"], json!({}), "{}", no_route.body);
    let bad = client
        .send(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            Some(b"{not json".to_vec()),
        )
        .await;
    assert_eq!(bad.code, 400);
    assert!(bad.body["details"].is_object(), "{}", bad.body);
}

#[tokio::test]
async fn discovery_answers_with_and_without_a_trailing_slash() {
    let (_dir, _server, client) = start();
    for path in [
        "/version",
        "/api",
        "/apis",
        "/api/v1",
        "/apis/apps",
        "/apis/apps/v1",
    ] {
        let plain = client.get(path).await;
        let slashed = client.get(&format!("{path}/")).await;
        assert_eq!(plain.code, 200, "{path}");
        assert_eq!(slashed.code, 200, "{path}/: {}", slashed.body);
        assert_eq!(plain.body, slashed.body, "{path}");
    }
}

#[tokio::test]
async fn a_missing_namespace_is_404_before_the_object_is_validated() {
    let (_dir, _server, client) = start();
    let invalid = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "x"},
        "data": {"not a valid key": "1"}
    });
    let answer = client
        .post("/api/v1/namespaces/nope/configmaps", &invalid)
        .await;
    assert_eq!(answer.code, 404, "{}", answer.body);
    assert_eq!(answer.body["message"], "namespaces \"nope\" not found");
    // In a namespace that exists, the same object is invalid.
    let answer = client
        .post("/api/v1/namespaces/default/configmaps", &invalid)
        .await;
    assert_eq!(answer.code, 422, "{}", answer.body);
}

#[tokio::test]
async fn a_delete_is_not_failed_by_updates_racing_it() {
    let (_dir, _server, client) = start();
    let path = "/api/v1/namespaces/default/configmaps";
    // Bounded: 40 rounds of create, then delete while four writers keep
    // updating the object.
    for round in 0..40 {
        let created = client
            .post(
                path,
                &json!({"metadata": {"name": "busy"}, "data": {"n": "0"}}),
            )
            .await;
        assert_eq!(created.code, 201, "{}", created.body);
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let client = client.clone();
                tokio::spawn(async move {
                    for i in 0..20 {
                        let patch = json!({"data": {"n": format!("{w}-{i}")}});
                        let answer = client
                            .patch(
                                &format!("{path}/busy"),
                                "application/merge-patch+json",
                                &patch,
                            )
                            .await;
                        if answer.code == 404 {
                            break;
                        }
                    }
                })
            })
            .collect();
        tokio::task::yield_now().await;
        let deleted = client.delete(&format!("{path}/busy")).await;
        assert_eq!(
            deleted.code, 200,
            "round {round}: a delete without preconditions answered {}",
            deleted.body
        );
        for writer in writers {
            writer.await.unwrap();
        }
    }
    let left: Value = client.get(&format!("{path}/busy")).await.body;
    assert_eq!(left["reason"], "NotFound");
}
