//! What goes wrong with containers, as a kubelet on containerd reports
//! it, on a real lab: a command that is not in the image, a memory limit
//! exceeded, a container that exits at once, a private image without its
//! pull secret, and containerd restarted under running Pods.
//!
//! Needs root; takes the lab lock (one lab per machine).

mod common;

use std::time::Duration;

use common::{container_pid, lab_up, statuses, wait_for};
use e2e::lab::Node;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::api::PostParams;
use kube::Api;

fn pod(value: serde_json::Value) -> Pod {
    serde_json::from_value(value).expect("a valid Pod")
}

async fn status_of(pods: &Api<Pod>, name: &str) -> Option<ContainerStatus> {
    statuses(&pods.get(name).await.ok()?).into_iter().next()
}

#[tokio::test(flavor = "multi_thread")]
async fn container_failures_read_as_the_kubelet_reports_them() {
    let (_tmp, lab) = lab_up(1);
    let pods: Api<Pod> = Api::namespaced(lab.client().await.unwrap(), "default");
    let create = PostParams::default();
    for p in [
        serde_json::json!({
            "metadata": {"name": "no-such-command"},
            "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["/nope"]}]}
        }),
        serde_json::json!({
            "metadata": {"name": "hungry"},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox",
                "command": ["sh", "-c", "x=a; while true; do x=$x$x; done"],
                "resources": {"limits": {"memory": "16Mi"}}}]}
        }),
        serde_json::json!({
            "metadata": {"name": "crasher"},
            "spec": {"containers": [{"name": "c", "image": "busybox",
                "command": ["sh", "-c", "echo run $(cat /proc/sys/kernel/random/uuid); exit 1"]}]}
        }),
        serde_json::json!({
            "metadata": {"name": "quick"},
            "spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox",
                "command": ["sh", "-c", "echo done"]}]}
        }),
    ] {
        pods.create(&create, &pod(p)).await.unwrap();
    }

    // A command that is not in the image: runc cannot start it. The
    // container ends with StartError (exit 128) and is restarted with a
    // back-off; the message is runc's.
    let start_error = wait_for(60, "a StartError", || async {
        let c = status_of(&pods, "no-such-command").await?;
        let last = c.last_state.clone().and_then(|s| s.terminated);
        let now = c.state.clone().and_then(|s| s.terminated);
        last.or(now)
            .filter(|t| t.reason.as_deref() == Some("StartError"))
    })
    .await;
    assert_eq!(start_error.exit_code, 128);
    assert!(
        start_error
            .message
            .as_deref()
            .is_some_and(|m| m.contains("/nope")),
        "{start_error:?}"
    );

    // Over its memory limit: the kernel kills it, the status says so.
    let oom = wait_for(60, "OOMKilled", || async {
        status_of(&pods, "hungry").await?.state?.terminated
    })
    .await;
    assert_eq!(
        (oom.reason.as_deref(), oom.exit_code),
        (Some("OOMKilled"), 137),
        "{oom:?}"
    );
    let phase = pods.get("hungry").await.unwrap().status.unwrap().phase;
    assert_eq!(phase.as_deref(), Some("Failed"));

    // Exits at once with 1 under Always: restarted (CrashLoopBackOff);
    // `kubectl logs --previous` reads the run before the current one.
    wait_for(60, "a restart of the crasher", || async {
        (status_of(&pods, "crasher").await?.restart_count >= 1).then_some(())
    })
    .await;
    let previous = pods
        .logs(
            "crasher",
            &kube::api::LogParams {
                previous: true,
                ..Default::default()
            },
        )
        .await
        .expect("logs --previous");
    assert!(previous.starts_with("run "), "{previous:?}");
    let current = pods.logs("crasher", &Default::default()).await.unwrap();
    assert!(
        current.starts_with("run ") && current != previous,
        "{current:?}"
    );

    // Exits at once with 0 under OnFailure: Completed, not restarted.
    let quick = wait_for(60, "the quick Pod to succeed", || async {
        let p = pods.get("quick").await.ok()?;
        (p.status.as_ref()?.phase.as_deref() == Some("Succeeded")).then_some(p)
    })
    .await;
    let c = statuses(&quick).remove(0);
    assert_eq!(c.restart_count, 0);
    let done = c.state.unwrap().terminated.unwrap();
    assert_eq!(
        (done.reason.as_deref(), done.exit_code),
        (Some("Completed"), 0)
    );
    assert!(
        done.container_id
            .as_deref()
            .is_some_and(|id| id.starts_with("containerd://")),
        "{done:?}"
    );

    lab.down().expect("lab down");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_private_image_needs_its_pull_secret() {
    let (_tmp, lab) = lab_up(1);
    let client = lab.client().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let image = format!(
        "{}/library/busybox:latest",
        e2e::lab::PRIVATE_REGISTRY_ADDRESS
    );
    let private = |name: &str, secret: Option<&str>| {
        pod(serde_json::json!({
            "metadata": {"name": name},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "imagePullSecrets": secret.map(|s| vec![serde_json::json!({"name": s})]),
                "containers": [{"name": "c", "image": image, "command": ["sleep", "3600"]}]
            }
        }))
    };
    // Without credentials: the registry's 401, in the kubelet's words.
    pods.create(&PostParams::default(), &private("anonymous", None))
        .await
        .unwrap();
    let refused = wait_for(60, "ErrImagePull", || async {
        status_of(&pods, "anonymous")
            .await?
            .state?
            .waiting
            .filter(|w| w.reason.as_deref() == Some("ErrImagePull"))
    })
    .await;
    let message = refused.message.unwrap_or_default();
    assert!(
        message.contains("401 Unauthorized") && message.contains(&image),
        "{message}"
    );
    // With a kubernetes.io/dockerconfigjson Secret naming the registry.
    let config = serde_json::json!({"auths": {e2e::lab::PRIVATE_REGISTRY_ADDRESS: {
        "username": e2e::lab::PRIVATE_REGISTRY_USER,
        "password": e2e::lab::PRIVATE_REGISTRY_PASSWORD,
    }}});
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "lab-registry"},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": config.to_string()}
    }))
    .unwrap();
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client, "default")
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    pods.create(
        &PostParams::default(),
        &private("with-secret", Some("lab-registry")),
    )
    .await
    .unwrap();
    wait_for(60, "the Pod with the secret running", || async {
        status_of(&pods, "with-secret").await?.state?.running
    })
    .await;

    lab.down().expect("lab down");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_path_volume_and_a_pre_stop_hook() {
    let (_tmp, lab) = lab_up(1);
    let pods: Api<Pod> = Api::namespaced(lab.client().await.unwrap(), "default");
    // A directory of this machine (the lab's nodes share its files),
    // removed when the test ends.
    let host = tempfile::tempdir().unwrap();
    let path = host.path().display().to_string();
    pods.create(
        &PostParams::default(),
        &pod(serde_json::json!({
            "metadata": {"name": "hooked"},
            "spec": {
                "terminationGracePeriodSeconds": 20,
                "volumes": [{"name": "host", "hostPath": {"path": path, "type": "Directory"}},
                            {"name": "made", "hostPath": {"path": format!("{path}/made"), "type": "DirectoryOrCreate"}}],
                "containers": [{"name": "c", "image": "busybox",
                    "command": ["sh", "-c", "echo hello > /host/from-pod; sleep 3600"],
                    "volumeMounts": [{"name": "host", "mountPath": "/host"},
                                     {"name": "made", "mountPath": "/made"}],
                    "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "echo bye > /host/pre-stop"]}}}}]
            }
        })),
    )
    .await
    .unwrap();
    wait_for(60, "the Pod's file on the node", || async {
        std::fs::read_to_string(host.path().join("from-pod"))
            .ok()
            .filter(|t| t == "hello\n")
    })
    .await;
    assert!(host.path().join("made").is_dir(), "DirectoryOrCreate");
    // Deleting the Pod runs its preStop hook first (then SIGTERM: sleep
    // under sh as PID 1 ignores it, and SIGKILL comes after the grace
    // period, which the hook did not use up).
    pods.delete("hooked", &Default::default()).await.unwrap();
    wait_for(30, "the preStop hook's file", || async {
        std::fs::read_to_string(host.path().join("pre-stop"))
            .ok()
            .filter(|t| t == "bye\n")
    })
    .await;
    // A hostPath of the wrong type keeps the Pod from starting, and says why.
    pods.create(
        &PostParams::default(),
        &pod(serde_json::json!({
            "metadata": {"name": "wrong-type"},
            "spec": {
                "volumes": [{"name": "host", "hostPath": {"path": format!("{path}/from-pod"), "type": "Directory"}}],
                "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"],
                    "volumeMounts": [{"name": "host", "mountPath": "/host"}]}]
            }
        })),
    )
    .await
    .unwrap();
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(lab.client().await.unwrap(), "default");
    let message = wait_for(30, "a FailedMount event", || async {
        events
            .list(&kube::api::ListParams::default().fields("involvedObject.name=wrong-type"))
            .await
            .ok()?
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("FailedMount"))?
            .message
    })
    .await;
    assert!(message.contains("is not a directory"), "{message}");

    lab.down().expect("lab down");
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_run_through_a_containerd_restart_and_the_agent_reconnects() {
    let (_tmp, lab) = lab_up(1);
    let pods: Api<Pod> = Api::namespaced(lab.client().await.unwrap(), "default");
    let sleeper = |name: &str| {
        pod(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]}
        }))
    };
    pods.create(&PostParams::default(), &sleeper("before"))
        .await
        .unwrap();
    let running = |name: &'static str| {
        let pods = pods.clone();
        async move {
            wait_for(60, &format!("{name} running"), || async {
                let p = pods.get(name).await.ok()?;
                let c = statuses(&p).into_iter().next()?;
                c.state?.running.map(|_| p)
            })
            .await
        }
    };
    let before = running("before").await;
    let pid = container_pid(&lab, &before, "c").await;

    // containerd goes away and comes back (`systemctl restart containerd`).
    lab.stop("containerd-kl-worker1").expect("containerd runs");
    let worker = Node::all(1)
        .into_iter()
        .find(|n| n.name == "kl-worker1")
        .unwrap();
    e2e::lab::start_containerd(&lab.options, &worker).expect("containerd again");

    // The container never stopped: same process, same restart count.
    assert!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok(),
        "the container's process survived containerd's restart"
    );
    // The agent's calls reach the new containerd: a new Pod runs, and the
    // old one is still reported running, never restarted.
    pods.create(&PostParams::default(), &sleeper("after"))
        .await
        .unwrap();
    running("after").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let c = status_of(&pods, "before").await.unwrap();
    assert_eq!(c.restart_count, 0);
    assert!(c.state.unwrap().running.is_some());
    assert_eq!(container_pid(&lab, &before, "c").await, pid);

    lab.down().expect("lab down");
}
