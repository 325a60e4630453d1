//! Two controllers: one leads, the other waits, and takes over when the
//! leader dies.

mod common;

use common::{eventually, Cluster};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

async fn holder(client: &kube::Client) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    leases
        .get_opt("kube-lite-controller")
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec?.holder_identity)
}

#[tokio::test]
async fn a_second_controller_waits_and_takes_over() {
    let mut cluster = Cluster::start().await;
    let first = cluster.controller.as_ref().unwrap().pid();
    let leader = eventually(10, "the first controller to lead", || async {
        holder(&cluster.client).await
    })
    .await;
    assert!(
        leader.ends_with(&format!("_{first}")),
        "{leader} is the first controller"
    );

    // The second one starts while the first still renews: it must wait.
    let standby = e2e::harness::Component::start(
        "controller",
        &[
            "--server".into(),
            cluster.apiserver.url.clone(),
            "--leader-lease-duration".into(),
            "3".into(),
        ],
    );
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let still = holder(&cluster.client).await.unwrap();
    assert!(
        still.ends_with(&format!("_{first}")),
        "the leader keeps the lease: {still}"
    );

    cluster.kill_controller();
    let second = standby.pid();
    eventually(20, "the standby to take over", || async {
        holder(&cluster.client)
            .await
            .filter(|h| h.ends_with(&format!("_{second}")))
    })
    .await;
}
