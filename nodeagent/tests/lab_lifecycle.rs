//! What the kubelet does for a Pod beyond starting it, on a real lab:
//! the Pod's own view of the world (hostname, /etc/hosts, resolv.conf,
//! environment), ConfigMap volumes that follow the ConfigMap, an emptyDir
//! shared by two containers, readiness and liveness probes, and graceful
//! deletion (SIGTERM, then SIGKILL after the grace period).
//!
//! The test looks inside a container the way `nsenter` does: it joins the
//! namespaces of the container's process. Needs root; takes the lab lock.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{condition, container_pid, lab_up, statuses, wait_for};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::Api;

/// Runs a command inside a container (its network, UTS and mount
/// namespaces), like `kubectl exec`.
fn in_container(pid: i32, command: &[&str]) -> String {
    let out = Command::new("nsenter")
        .args([
            "--target",
            &pid.to_string(),
            "--net",
            "--uts",
            "--mount",
            "--",
        ])
        .args(command)
        .output()
        .expect("nsenter");
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn pod(value: serde_json::Value) -> Pod {
    serde_json::from_value(value).expect("a valid Pod")
}

async fn running(pods: &Api<Pod>, name: &str) -> Pod {
    wait_for(40, &format!("{name} running"), || async {
        let p = pods.get(name).await.ok()?;
        let all_running = !statuses(&p).is_empty()
            && statuses(&p)
                .iter()
                .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()));
        all_running.then_some(p)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_see_their_world_and_the_kubelet_watches_over_them() {
    let (_tmp, lab) = lab_up(2);
    let client = lab.client().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let create = PostParams::default();

    configmaps
        .create(
            &create,
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": "settings"},
                "data": {"greeting": "hello", "color": "blue"}
            }))
            .unwrap(),
        )
        .await
        .unwrap();

    // A Pod with a ConfigMap volume, an emptyDir shared by two containers
    // and an environment from the API.
    pods.create(
        &create,
        &pod(serde_json::json!({
            "metadata": {"name": "world", "labels": {"app": "world"}},
            "spec": {
                "volumes": [
                    {"name": "settings", "configMap": {"name": "settings"}},
                    {"name": "shared", "emptyDir": {}}
                ],
                "containers": [
                    {"name": "writer", "image": "busybox",
                     "command": ["sh", "-c", "echo from-writer > /shared/note; exec sleep 3600"],
                     "env": [
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                        {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "color"}}},
                        {"name": "GREETING", "value": "$(COLOR) world"}
                     ],
                     "volumeMounts": [
                        {"name": "settings", "mountPath": "/config"},
                        {"name": "shared", "mountPath": "/shared"}
                     ]},
                    {"name": "reader", "image": "busybox",
                     "command": ["sleep", "3600"],
                     "volumeMounts": [{"name": "shared", "mountPath": "/data"}]}
                ]
            }
        })),
    )
    .await
    .unwrap();
    let world = running(&pods, "world").await;
    let ip = world.status.as_ref().unwrap().pod_ip.clone().unwrap();
    let writer = container_pid(&lab, &world, "writer").await;
    let reader = container_pid(&lab, &world, "reader").await;

    // Its own hostname, hosts file and resolver configuration.
    assert_eq!(in_container(writer, &["hostname"]).trim(), "world");
    let hosts = in_container(writer, &["cat", "/etc/hosts"]);
    assert!(
        hosts.starts_with("# Kubernetes-managed hosts file."),
        "{hosts}"
    );
    assert!(hosts.contains(&format!("{ip}\tworld\n")), "{hosts}");
    assert_eq!(
        in_container(writer, &["cat", "/etc/resolv.conf"]),
        "search default.svc.cluster.local svc.cluster.local cluster.local\n\
         nameserver 10.96.0.10\noptions ndots:5\n"
    );
    // eth0 holds the Pod IP; the default route goes to the node's bridge.
    let addr = in_container(writer, &["ip", "-4", "addr", "show", "eth0"]);
    assert!(addr.contains(&format!("inet {ip}/24")), "{addr}");
    // Private /tmp: a file written there is not on the node.
    in_container(
        writer,
        &["sh", "-c", "echo mine > /tmp/kube-lite-private-test"],
    );
    assert!(!std::path::Path::new("/tmp/kube-lite-private-test").exists());

    // The environment: fieldRef, configMapKeyRef and $(VAR) expansion.
    let environ = std::fs::read(format!("/proc/{writer}/environ")).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    for expected in [
        "POD_NAME=world".to_string(),
        format!("POD_IP={ip}"),
        "COLOR=blue".into(),
        "GREETING=blue world".into(),
        "HOSTNAME=world".into(),
    ] {
        assert!(
            environ.split('\0').any(|kv| kv == expected),
            "{expected} in {environ:?}"
        );
    }

    // The emptyDir is one directory for both containers.
    assert_eq!(
        in_container(reader, &["cat", "/data/note"]),
        "from-writer\n"
    );

    // ConfigMap keys are files, and follow the ConfigMap.
    assert_eq!(in_container(writer, &["cat", "/config/greeting"]), "hello");
    configmaps
        .patch(
            "settings",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"data": {"greeting": "bonjour"}})),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while in_container(writer, &["cat", "/config/greeting"]) != "bonjour" {
        assert!(
            Instant::now() < deadline,
            "the volume did not follow the ConfigMap"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The volume is read-only, as on a real node.
    let write = Command::new("nsenter")
        .args(["--target", &writer.to_string(), "--mount", "--", "sh", "-c"])
        .arg("echo x > /config/new")
        .output()
        .unwrap();
    assert!(!write.status.success(), "a configMap volume is read-only");

    // Probes: the echo server answers its readiness probe; a probe on a
    // port nobody listens on keeps the Pod running but not Ready.
    for (name, port) in [("ready", 8080), ("never-ready", 9999)] {
        pods.create(
            &create,
            &pod(serde_json::json!({
                "metadata": {"name": name},
                "spec": {"containers": [{"name": "echo", "image": "kube-lite/echo",
                    "readinessProbe": {"httpGet": {"path": "/", "port": port}, "periodSeconds": 1}}]}
            })),
        )
        .await
        .unwrap();
    }
    wait_for(30, "the echo Pod Ready", || async {
        let p = pods.get("ready").await.ok()?;
        (condition(&p, "Ready").as_deref() == Some("True")).then_some(())
    })
    .await;
    let never = running(&pods, "never-ready").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let never = pods
        .get(never.metadata.name.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(condition(&never, "Ready").as_deref(), Some("False"));
    assert_eq!(
        condition(&never, "ContainersReady").as_deref(),
        Some("False")
    );
    assert_eq!(
        never.status.as_ref().unwrap().phase.as_deref(),
        Some("Running")
    );

    // A failing liveness probe gets the container restarted.
    pods.create(
        &create,
        &pod(serde_json::json!({
            "metadata": {"name": "unhealthy"},
            "spec": {"terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "c", "image": "busybox",
                "command": ["sleep", "3600"],
                "livenessProbe": {"exec": {"command": ["false"]},
                                  "periodSeconds": 1, "failureThreshold": 2}}]}
        })),
    )
    .await
    .unwrap();
    wait_for(40, "a liveness restart", || async {
        let p = pods.get("unhealthy").await.ok()?;
        statuses(&p)
            .first()
            .is_some_and(|c| c.restart_count >= 1)
            .then_some(())
    })
    .await;

    // restartPolicy Never: a command that finishes makes the Pod
    // Succeeded, its output stays readable, and its sandbox is removed.
    pods.create(
        &create,
        &pod(serde_json::json!({
            "metadata": {"name": "once"},
            "spec": {"restartPolicy": "Never",
                     "containers": [{"name": "c", "image": "busybox", "workingDir": "/etc",
                                     "command": ["sh", "-c", "echo ran in $(pwd)"]}]}
        })),
    )
    .await
    .unwrap();
    let once = wait_for(30, "the Pod to succeed", || async {
        let p = pods.get("once").await.ok()?;
        (p.status.as_ref()?.phase.as_deref() == Some("Succeeded")).then_some(p)
    })
    .await;
    let terminated = statuses(&once)[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(
        (terminated.exit_code, terminated.reason.as_deref()),
        (0, Some("Completed"))
    );
    assert_eq!(condition(&once, "Ready").as_deref(), Some("False"));
    let node = once.spec.as_ref().unwrap().node_name.as_deref().unwrap();
    let node = e2e::lab::Node::all(lab.options.workers)
        .into_iter()
        .find(|n| n.name == node)
        .unwrap();
    // The CRI log, where the kubelet names it.
    let logs = std::fs::read_to_string(
        e2e::lab::node_layout(&lab.options.dir, &node)
            .pod_logs_dir()
            .join(format!(
                "default_once_{}/c/0.log",
                once.metadata.uid.as_deref().unwrap()
            )),
    )
    .unwrap();
    assert!(logs.ends_with(" stdout F ran in /etc\n"), "{logs:?}");

    // Graceful deletion, told by what happens rather than by a stopwatch:
    // a process that handles SIGTERM is gone long before its (10 minute)
    // grace period; one that ignores SIGTERM is still there a moment into
    // its 10 s grace period, and SIGKILLed once it is over.
    for (name, grace, script) in [
        (
            "polite",
            600,
            "trap 'exit 0' TERM; while true; do sleep 0.1; done",
        ),
        (
            "stubborn",
            10,
            "trap '' TERM; while true; do sleep 0.1; done",
        ),
    ] {
        pods.create(
            &create,
            &pod(serde_json::json!({
                "metadata": {"name": name},
                "spec": {"terminationGracePeriodSeconds": grace,
                         "containers": [{"name": "c", "image": "busybox",
                                         "command": ["sh", "-c", script]}]}
            })),
        )
        .await
        .unwrap();
        running(&pods, name).await;
    }
    let gone = |name: &'static str| {
        let pods = pods.clone();
        async move {
            wait_for(30, &format!("{name} gone"), || async {
                pods.get_opt(name).await.ok()?.is_none().then_some(())
            })
            .await
        }
    };
    pods.delete("polite", &DeleteParams::default())
        .await
        .unwrap();
    gone("polite").await;
    pods.delete("stubborn", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stubborn = pods
        .get("stubborn")
        .await
        .expect("still there in its grace period");
    assert!(stubborn.metadata.deletion_timestamp.is_some());
    gone("stubborn").await;

    lab.down().expect("lab down");
}

/// The Warning events of the Pod `name` with `reason`, by message.
async fn warnings(client: &kube::Client, name: &str, reason: &str) -> Vec<String> {
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    let params = kube::api::ListParams::default()
        .fields(&format!("involvedObject.name={name},reason={reason}"));
    events
        .list(&params)
        .await
        .map(|l| l.items.into_iter().filter_map(|e| e.message).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_reach_their_pods_in_memory_and_in_the_environment() {
    let (_tmp, lab) = lab_up(1);
    let client = lab.client().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), "default");
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let create = PostParams::default();
    secrets
        .create(
            &create,
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": "db"},
                "stringData": {"password": "s3cret", "user": "admin"}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    configmaps
        .create(
            &create,
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": "web-env"}, "data": {"MODE": "prod"}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    pods.create(
        &create,
        &pod(serde_json::json!({
            "metadata": {"name": "vault"},
            "spec": {
                "imagePullSecrets": [{"name": "registry"}],
                "volumes": [{"name": "db", "secret": {"secretName": "db"}}],
                "containers": [{
                    "name": "c", "image": "busybox", "command": ["sleep", "3600"],
                    "env": [{"name": "PASSWORD",
                             "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}],
                    "envFrom": [{"configMapRef": {"name": "web-env"}, "prefix": "CFG_"},
                                {"secretRef": {"name": "db"}, "prefix": "DB_"}],
                    "volumeMounts": [{"name": "db", "mountPath": "/secret"}]
                }]
            }
        })),
    )
    .await
    .unwrap();
    let vault = running(&pods, "vault").await;
    let pid = container_pid(&lab, &vault, "c").await;

    // The keys are files, on a tmpfs: in memory, never on the node's disk.
    assert_eq!(in_container(pid, &["cat", "/secret/password"]), "s3cret");
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let secret_mount = mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/secret"))
        .unwrap_or_else(|| panic!("/secret is not a mount: {mountinfo}"));
    assert!(
        secret_mount.contains(" - tmpfs "),
        "not memory-backed: {secret_mount}"
    );

    // The environment: secretKeyRef and both kinds of envFrom.
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    for expected in ["PASSWORD=s3cret", "CFG_MODE=prod", "DB_user=admin"] {
        assert!(
            environ.split('\0').any(|kv| kv == expected),
            "{expected} in {environ:?}"
        );
    }

    // The files follow the Secret.
    secrets
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"stringData": {"password": "n3w"}})),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while in_container(pid, &["cat", "/secret/password"]) != "n3w" {
        assert!(
            Instant::now() < deadline,
            "the volume did not follow the Secret"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A pull secret that does not exist is reported as the kubelet does.
    let missing = warnings(&client, "vault", "FailedToRetrieveImagePullSecret").await;
    assert_eq!(
        missing,
        ["Unable to retrieve some image pull secrets (registry); attempting to pull the image may not succeed."]
    );

    // A Secret volume whose Secret does not exist keeps the Pod waiting,
    // with the kubelet's FailedMount message.
    pods.create(
        &create,
        &pod(serde_json::json!({
            "metadata": {"name": "no-secret"},
            "spec": {
                "volumes": [{"name": "s", "secret": {"secretName": "nope"}}],
                "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"],
                                "volumeMounts": [{"name": "s", "mountPath": "/s"}]}]
            }
        })),
    )
    .await
    .unwrap();
    let failed = wait_for(30, "FailedMount for the missing Secret", || async {
        let found = warnings(&client, "no-secret", "FailedMount").await;
        (!found.is_empty()).then_some(found)
    })
    .await;
    assert_eq!(
        failed,
        ["MountVolume.SetUp failed for volume \"s\" : secret \"nope\" not found"]
    );

    // Deleting the Pod unmounts its Secret volume.
    let uid = vault.metadata.uid.clone().unwrap();
    pods.delete("vault", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(30, "vault gone", || async {
        pods.get_opt("vault").await.ok()?.is_none().then_some(())
    })
    .await;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&uid),
        "a mount of the deleted Pod is left: {mounts}"
    );

    lab.down().expect("lab down");
}
