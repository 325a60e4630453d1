//! `pods/eviction` (policy/v1 Eviction) against the real apiserver (dev
//! mode): allowed (no PodDisruptionBudgets are served), a 201 Status, and
//! the Pod deleted as a delete would; the wrong name and a missing Pod are
//! refused as kube-apiserver refuses them.

mod common;

use common::{ApiServer, Client};
use serde_json::json;

fn start() -> (tempfile::TempDir, ApiServer, Client) {
    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::start(dir.path());
    let client = Client::new(&server.url);
    (dir, server, client)
}

const PODS: &str = "/api/v1/namespaces/default/pods";

fn eviction(name: &str) -> serde_json::Value {
    json!({"apiVersion": "policy/v1", "kind": "Eviction",
           "metadata": {"name": name, "namespace": "default"}})
}

async fn unscheduled_pod(client: &Client, name: &str) {
    let pod = json!({"metadata": {"name": name},
                     "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let created = client.post(PODS, &pod).await;
    assert_eq!(created.code, 201, "{}", created.body);
}

#[tokio::test]
async fn an_eviction_deletes_the_pod_and_answers_201() {
    let (_dir, _server, client) = start();
    unscheduled_pod(&client, "p").await;
    let answer = client
        .post(&format!("{PODS}/p/eviction"), &eviction("p"))
        .await;
    assert_eq!(answer.code, 201, "{}", answer.body);
    assert_eq!(answer.body["status"], "Success");
    assert_eq!(client.get(&format!("{PODS}/p")).await.code, 404);
}

#[tokio::test]
async fn an_eviction_naming_another_pod_is_a_bad_request() {
    let (_dir, _server, client) = start();
    unscheduled_pod(&client, "p").await;
    let answer = client
        .post(&format!("{PODS}/p/eviction"), &eviction("q"))
        .await;
    assert_eq!(answer.code, 400, "{}", answer.body);
    assert_eq!(
        answer.body["message"],
        "name in URL does not match name in Eviction object"
    );
    assert_eq!(client.get(&format!("{PODS}/p")).await.code, 200);
}

#[tokio::test]
async fn evicting_a_missing_pod_is_404() {
    let (_dir, _server, client) = start();
    let answer = client
        .post(&format!("{PODS}/ghost/eviction"), &eviction("ghost"))
        .await;
    assert_eq!(answer.code, 404, "{}", answer.body);
    assert_eq!(answer.body["message"], "pods \"ghost\" not found");
}

#[tokio::test]
async fn discovery_offers_eviction_as_kubectl_drain_looks_for_it() {
    let (_dir, _server, client) = start();
    let v1 = client.get("/api/v1").await.body;
    let entry = v1["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pods/eviction")
        .cloned()
        .expect("pods/eviction in /api/v1");
    assert_eq!(
        (&entry["group"], &entry["version"], &entry["kind"]),
        (&json!("policy"), &json!("v1"), &json!("Eviction"))
    );
}
