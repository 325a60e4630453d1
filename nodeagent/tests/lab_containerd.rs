//! Each lab VM's containerd, with the CNI plugin and the lab's registry
//! (issue 14): what the node agent will ask for through the CRI, asked
//! here directly, as `crictl` would. Needs root; takes the lab lock.
//!
//! The sandboxes this test makes are removed through the CRI at the end;
//! if the test fails first, the lab's `down` (the [`Lab`] guard) ends the
//! shims and their containers and detaches their mounts.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::harness::{bin_dir, ensure_built};
use e2e::lab::{node_layout, Lab, LabOptions, Node};
use nodeagent::cri::config::{self, NodeSettings};
use nodeagent::cri::{v1, Runtime};

/// The cgroup parent of the test's sandboxes (cgroupfs driver), removed
/// when dropped.
const CGROUP_PARENT: &str = "/kube-lite-lab-test";

struct Fixture {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    /// Taken (and so brought down) first when the fixture drops.
    lab: Option<Lab>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // The lab down first: its containers are killed. A killed
        // process leaves its cgroup only once it is reaped, which PID 1
        // may take a moment to do: retry for a while.
        drop(self.lab.take());
        let deadline = Instant::now() + Duration::from_secs(20);
        let cgroups = || {
            std::fs::read_dir("/sys/fs/cgroup")
                .into_iter()
                .flatten()
                .flatten()
                .map(|controller| {
                    controller
                        .path()
                        .join(CGROUP_PARENT.trim_start_matches('/'))
                })
                .filter(|dir| dir.exists())
                .collect::<Vec<_>>()
        };
        while Instant::now() < deadline {
            let left = cgroups();
            if left.is_empty() {
                return;
            }
            left.iter().for_each(|dir| remove_cgroups(dir));
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!("cgroups left behind: {:?}", cgroups());
    }
}

/// Removes a cgroup directory and those below it, deepest first (a
/// cgroup is removed with rmdir, once it has no children).
fn remove_cgroups(dir: &std::path::Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroups(&entry.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}

fn lab() -> Fixture {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the lab test builds network namespaces and runs containerd: run as root"
    );
    ensure_built(&["apiserver", "controller", "nodeagent", "e2e"]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lab");
    let lab = Lab::up(LabOptions {
        workers: 2,
        dir: dir.clone(),
        bin_dir: bin_dir(),
    })
    .expect("lab up");
    Fixture {
        _dir: tmp,
        dir,
        lab: Some(lab),
    }
}

fn node(name: &str) -> Node {
    Node::all(2).into_iter().find(|n| n.name == name).unwrap()
}

async fn runtime(fixture: &Fixture, name: &str) -> Runtime {
    let endpoint = node_layout(&fixture.dir, &node(name)).containerd_endpoint();
    Runtime::connect(&endpoint)
        .await
        .expect("the node's containerd")
}

fn in_node(node: &str, command: &[&str]) -> std::process::Output {
    Command::new("ip")
        .args(["netns", "exec", node])
        .args(command)
        .output()
        .unwrap()
}

/// Waits until the node agent has written the CNI conflist (it does once
/// the controller gave the node its pod CIDR).
fn wait_for_conflist(fixture: &Fixture, name: &str) -> serde_json::Value {
    let file = node_layout(&fixture.dir, &node(name))
        .cni_conf_dir()
        .join(api::cni::CONFLIST_FILE);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(&file) {
            return serde_json::from_str(&text).unwrap();
        }
        assert!(Instant::now() < deadline, "no {}", file.display());
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn sandbox_config(name: &str, log_dir: &std::path::Path) -> v1::PodSandboxConfig {
    v1::PodSandboxConfig {
        metadata: Some(v1::PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: log_dir.display().to_string(),
        labels: BTreeMap::from([("test".to_string(), "lab_containerd".to_string())])
            .into_iter()
            .collect(),
        linux: Some(v1::LinuxPodSandboxConfig {
            cgroup_parent: CGROUP_PARENT.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_node_runs_a_containerd_of_its_own() {
    let fixture = lab();
    let mut seen = vec![];
    for name in ["kl-master", "kl-worker1", "kl-worker2"] {
        let version = runtime(&fixture, name).await.version().await.unwrap();
        assert_eq!(version.runtime_name, "containerd");
        assert!(version.runtime_version.starts_with("1.6."), "{version:?}");
        let socket = node_layout(&fixture.dir, &node(name)).containerd_socket();
        seen.push(socket);
    }
    seen.dedup();
    assert_eq!(seen.len(), 3);
    let pid = fixture
        .lab
        .as_ref()
        .unwrap()
        .pid("containerd-kl-worker1")
        .expect("a PID file");
    let netns = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let node_netns = std::fs::metadata("/run/netns/kl-worker1").unwrap();
    use std::os::unix::fs::MetadataExt as _;
    assert_eq!(
        netns.to_string_lossy(),
        format!("net:[{}]", node_netns.ino()),
        "containerd runs in its VM's network namespace"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn images_come_from_the_lab_registry() {
    let fixture = lab();
    let mut runtime = runtime(&fixture, "kl-worker1").await;
    let pulled = runtime
        .images
        .pull_image(v1::PullImageRequest {
            image: Some(v1::ImageSpec {
                image: "nginx:alpine".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("pulling nginx:alpine through the mirror")
        .into_inner();
    assert!(pulled.image_ref.starts_with("sha256:"), "{pulled:?}");
    let status = runtime
        .images
        .image_status(v1::ImageStatusRequest {
            image: Some(v1::ImageSpec {
                image: "docker.io/library/nginx:alpine".into(),
                ..Default::default()
            }),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner();
    let image = status.image.expect("the image is there");
    assert!(image
        .repo_tags
        .contains(&"docker.io/library/nginx:alpine".to_string()));
    // An image the registry does not have: the registry's answer.
    let missing = runtime
        .images
        .pull_image(v1::PullImageRequest {
            image: Some(v1::ImageSpec {
                image: "no-such-image:1.0".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(missing.message().contains("not found"), "{missing:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sandbox_gets_its_address_from_the_cni_plugin_and_serves_across_nodes() {
    let fixture = lab();
    let conflist = wait_for_conflist(&fixture, "kl-worker1");
    let subnet = conflist["plugins"][0]["ipam"]["subnet"]
        .as_str()
        .unwrap()
        .to_string();
    let prefix = subnet.trim_end_matches(".0/24").to_string();
    let logs = tempfile::tempdir().unwrap();
    let mut runtime = runtime(&fixture, "kl-worker1").await;
    let config = sandbox_config("web", logs.path());
    let sandbox = runtime.run_sandbox(&config).await.unwrap_or_else(|e| {
        panic!(
            "RunPodSandbox: {e:?}\ncontainerd's log:\n{}",
            e2e::lab::log_tail(&fixture.dir.join("logs/containerd-kl-worker1.log"), 30)
        )
    });
    let status = runtime
        .runtime
        .pod_sandbox_status(v1::PodSandboxStatusRequest {
            pod_sandbox_id: sandbox.clone(),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    let ip = status.network.unwrap().ip;
    assert!(ip.starts_with(&format!("{prefix}.")), "{ip} in {subnet}");
    let record = node_layout(&fixture.dir, &node("kl-worker1"))
        .cni_data_dir()
        .join("kube-lite")
        .join(&ip);
    let owner = std::fs::read_to_string(&record).unwrap();
    assert_eq!(owner, format!("{sandbox}/eth0"));

    runtime.pull("nginx:alpine").await.unwrap();
    let nginx = v1::ContainerConfig {
        metadata: Some(v1::ContainerMetadata {
            name: "nginx".into(),
            attempt: 0,
        }),
        image: Some(nodeagent::cri::image_spec("docker.io/library/nginx:alpine")),
        log_path: "nginx/0.log".into(),
        ..Default::default()
    };
    runtime
        .start_container(&sandbox, nginx, &config)
        .await
        .expect("CreateContainer and StartContainer");
    // From the other worker: host-gw across the lab LAN.
    let deadline = Instant::now() + Duration::from_secs(20);
    let page = loop {
        let out = in_node(
            "kl-worker2",
            &["curl", "-s", "--max-time", "2", &format!("http://{ip}/")],
        );
        let page = String::from_utf8_lossy(&out.stdout).into_owned();
        if page.contains("Welcome to nginx!") || Instant::now() > deadline {
            break page;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(page.contains("Welcome to nginx!"), "{page}");
    // nginx logs the request to stdout, which the CRI log file holds.
    let log = std::fs::read_to_string(logs.path().join("nginx/0.log")).unwrap();
    assert!(log.contains("\"GET / HTTP/1.1\" 200"), "{log}");

    runtime
        .remove_sandbox(&sandbox)
        .await
        .expect("StopPodSandbox and RemovePodSandbox");
    assert!(!record.exists(), "CNI DEL gave {ip} back");
}

/// A Pod of one busybox container sleeping, started from its spec through
/// [`config`], on kl-worker1: (runtime, sandbox, container).
async fn busybox_pod(
    fixture: &Fixture,
    name: &str,
    container: serde_json::Value,
    logs: &std::path::Path,
) -> (Runtime, String, String) {
    wait_for_conflist(fixture, "kl-worker1");
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
        "spec": {"containers": [container]},
        "status": {"qosClass": "Burstable"},
    }))
    .unwrap();
    let node = NodeSettings {
        cgroup_root: CGROUP_PARENT.into(),
        systemd_cgroup: false,
        pod_logs_dir: logs.to_path_buf(),
        memory_capacity: 1 << 30,
    };
    let mut runtime = runtime(fixture, "kl-worker1").await;
    runtime.pull("busybox").await.expect("pulling busybox");
    let sandbox_config = config::sandbox_config(&pod, 0, "nameserver 10.96.0.10\n", &node);
    let sandbox = runtime
        .run_sandbox(&sandbox_config)
        .await
        .expect("RunPodSandbox");
    let spec = &pod.spec.as_ref().unwrap().containers[0];
    let container_config = config::container_config(&pod, spec, 0, &[], vec![], &node).unwrap();
    let container = runtime
        .start_container(&sandbox, container_config, &sandbox_config)
        .await
        .expect("CreateContainer and StartContainer");
    (runtime, sandbox, container)
}

/// `ExecSync`: (exit code, stdout + stderr).
async fn exec(runtime: &mut Runtime, container: &str, command: &str) -> (i32, String) {
    let out = runtime
        .runtime
        .exec_sync(v1::ExecSyncRequest {
            container_id: container.into(),
            cmd: vec!["sh".into(), "-c".into(), command.into()],
            timeout: 10,
        })
        .await
        .expect("ExecSync")
        .into_inner();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.exit_code, text)
}

fn sleeper(extra: serde_json::Value) -> serde_json::Value {
    let mut container =
        serde_json::json!({"name": "box", "image": "busybox", "command": ["sleep", "3600"]});
    container
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    container
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_runs_as_its_security_context_says() {
    let fixture = lab();
    let logs = tempfile::tempdir().unwrap();
    let (mut runtime, _, container) = busybox_pod(
        &fixture,
        "user",
        sleeper(serde_json::json!({"securityContext": {"runAsUser": 1000, "runAsGroup": 3000}})),
        logs.path(),
    )
    .await;
    let (code, id) = exec(&mut runtime, &container, "id -u; id -g").await;
    assert_eq!((code, id.as_str()), (0, "1000\n3000\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_sees_its_image_and_its_own_processes_only() {
    let fixture = lab();
    let logs = tempfile::tempdir().unwrap();
    let (mut runtime, _, container) = busybox_pod(
        &fixture,
        "alone",
        sleeper(serde_json::json!({})),
        logs.path(),
    )
    .await;
    // Its processes: sleep as PID 1, and this exec's shell and cat; none
    // of the node's (its containerd, node agent, apiserver).
    let (_, names) = exec(&mut runtime, &container, "cat /proc/[0-9]*/comm").await;
    let names: std::collections::BTreeSet<&str> = names.lines().collect();
    let own: std::collections::BTreeSet<&str> = ["cat", "sh", "sleep"].into();
    assert!(
        names.is_subset(&own) && names.contains("sleep"),
        "visible processes: {names:?}"
    );
    let (_, first) = exec(&mut runtime, &container, "cat /proc/1/comm").await;
    assert_eq!(first, "sleep\n");
    // The node's files are not there: its kube-lite state, the checkout.
    for path in ["/etc/kube-lite", "/var/lib/kube-lite", "/work"] {
        let (code, _) = exec(&mut runtime, &container, &format!("test -e {path}")).await;
        assert_eq!(code, 1, "{path} is visible in the container");
    }
}

/// Bit 21 of `CapEff`: CAP_SYS_ADMIN.
async fn has_sys_admin(runtime: &mut Runtime, container: &str) -> bool {
    let (_, status) = exec(runtime, container, "grep CapEff /proc/self/status").await;
    let hex = status.split_whitespace().nth(1).unwrap();
    u64::from_str_radix(hex, 16).unwrap() & (1 << 21) != 0
}

#[tokio::test(flavor = "multi_thread")]
async fn only_a_privileged_container_has_cap_sys_admin() {
    let fixture = lab();
    let logs = tempfile::tempdir().unwrap();
    let (mut runtime, _, plain) = busybox_pod(
        &fixture,
        "plain",
        sleeper(serde_json::json!({})),
        logs.path(),
    )
    .await;
    assert!(!has_sys_admin(&mut runtime, &plain).await);
    let (code, _) = exec(&mut runtime, &plain, "mount -t tmpfs none /mnt").await;
    assert_ne!(code, 0, "an unprivileged container cannot mount");
    let (mut runtime, _, privileged) = busybox_pod(
        &fixture,
        "privileged",
        sleeper(serde_json::json!({"securityContext": {"privileged": true}})),
        logs.path(),
    )
    .await;
    assert!(has_sys_admin(&mut runtime, &privileged).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_root_filesystem_refuses_writes() {
    let fixture = lab();
    let logs = tempfile::tempdir().unwrap();
    let (mut runtime, _, container) = busybox_pod(
        &fixture,
        "readonly",
        sleeper(serde_json::json!({"securityContext": {"readOnlyRootFilesystem": true}})),
        logs.path(),
    )
    .await;
    let (code, error) = exec(&mut runtime, &container, "touch /written").await;
    assert_ne!(code, 0);
    assert!(error.contains("Read-only file system"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_over_its_memory_limit_is_oom_killed() {
    let fixture = lab();
    let logs = tempfile::tempdir().unwrap();
    // 64 MB in a shell variable, under a 16 MiB limit.
    let hog = serde_json::json!({
        "name": "hog", "image": "busybox",
        "command": ["sh", "-c", "x=$(head -c 64000000 /dev/zero | tr '\\0' a); sleep 3600"],
        "resources": {"limits": {"memory": "16Mi"}},
    });
    let (mut runtime, _, container) = busybox_pod(&fixture, "hog", hog, logs.path()).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status = runtime
            .runtime
            .container_status(v1::ContainerStatusRequest {
                container_id: container.clone(),
                verbose: false,
            })
            .await
            .unwrap()
            .into_inner()
            .status
            .unwrap();
        if status.state == v1::ContainerState::ContainerExited as i32 || Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        status.state,
        v1::ContainerState::ContainerExited as i32,
        "{status:?}"
    );
    assert_eq!(status.reason, "OOMKilled", "{status:?}");
    assert_eq!(status.exit_code, 137);
}
