//! The test kubelet itself: a Pod bound to a fake node turns Running and
//! Ready with an IP, and a graceful delete completes.

mod common;

use common::{eventually, Cluster, FakeNode};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, PostParams};

#[tokio::test]
async fn fake_nodes_run_pods_bound_to_them() {
    let cluster = Cluster::apiserver_only().await;
    let _node = FakeNode::start(&cluster.client, "n1", 1).await;
    let pods = cluster.pods("default");
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "p"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let ip = eventually(10, "the pod to run", || async {
        let p = pods.get("p").await.ok()?;
        let s = p.status?;
        (s.phase.as_deref() == Some("Running")).then_some(s.pod_ip?)
    })
    .await;
    assert_eq!(ip, "10.244.1.2");

    pods.delete("p", &DeleteParams::default()).await.unwrap();
    eventually(10, "the graceful delete to finish", || async {
        pods.get_opt("p").await.ok()?.is_none().then_some(())
    })
    .await;
}
