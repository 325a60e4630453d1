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
async fn patches_and_applies_racing_each_other_are_retried_not_refused() {
    let (_dir, _server, client) = start();
    let path = "/api/v1/namespaces/default/configmaps";
    let created = client
        .post(path, &json!({"metadata": {"name": "shared"}, "data": {}}))
        .await;
    assert_eq!(created.code, 201, "{}", created.body);
    // Bounded: 8 writers x 10 writes, each its own key; none names a
    // resourceVersion, so none may be refused for another's write.
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let client = client.clone();
            tokio::spawn(async move {
                for i in 0..10 {
                    let (content_type, body) = if w % 2 == 0 {
                        (
                            "application/merge-patch+json",
                            json!({"data": {format!("w{w}-{i}"): "x"}}),
                        )
                    } else {
                        (
                            "application/apply-patch+yaml",
                            json!({"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": "shared"},
                                   "data": {format!("w{w}-{i}"): "x"}}),
                        )
                    };
                    let answer = client
                        .patch(
                            &format!("{path}/shared?fieldManager=writer-{w}"),
                            content_type,
                            &body,
                        )
                        .await;
                    assert_eq!(answer.code, 200, "writer {w}: {}", answer.body);
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let stored = client.get(&format!("{path}/shared")).await.body;
    let data = stored["data"].as_object().unwrap();
    // Merge patches keep every key; an applier keeps its last one only.
    for w in (0..8).step_by(2) {
        for i in 0..10 {
            assert!(data.contains_key(&format!("w{w}-{i}")), "{data:?}");
        }
    }
    for w in (1..8).step_by(2) {
        assert!(data.contains_key(&format!("w{w}-9")), "{data:?}");
        assert!(!data.contains_key(&format!("w{w}-0")), "{data:?}");
    }
}

#[tokio::test]
async fn a_patch_naming_an_old_resource_version_is_a_conflict() {
    let (_dir, _server, client) = start();
    let path = "/api/v1/namespaces/default/configmaps";
    let created = client
        .post(
            path,
            &json!({"metadata": {"name": "pinned"}, "data": {"a": "1"}}),
        )
        .await;
    let old_rv = created.body["metadata"]["resourceVersion"].clone();
    let changed = client
        .patch(
            &format!("{path}/pinned"),
            "application/merge-patch+json",
            &json!({"data": {"a": "2"}}),
        )
        .await;
    assert_eq!(changed.code, 200, "{}", changed.body);
    let stale = client
        .patch(
            &format!("{path}/pinned"),
            "application/merge-patch+json",
            &json!({"metadata": {"resourceVersion": old_rv}, "data": {"a": "3"}}),
        )
        .await;
    assert_eq!(stale.code, 409, "{}", stale.body);
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
