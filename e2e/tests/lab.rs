//! The lab, checked on the real system: namespaces, links, addresses and
//! routes as `ip` shows them, the control plane answering over the LAN,
//! `up` run twice, and `down` - also after a crash.
//!
//! Needs root (it creates network namespaces). The two tests share the
//! machine's one lab and take turns through its lock.

mod common;

use std::path::Path;
use std::process::Command;

use common::ip;
use e2e::harness::{bin_dir, ensure_built};
use e2e::lab::{self, Lab, LabOptions};

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the lab tests build network namespaces and must run as root"
    );
}

fn lab_options(dir: &Path, workers: usize) -> LabOptions {
    ensure_built(&["apiserver", "controller", "nodeagent", "e2e"]);
    LabOptions {
        workers,
        dir: dir.to_path_buf(),
        bin_dir: bin_dir(),
    }
}

/// `ip -br addr` of one link in one namespace: "eth1 UP 192.168.56.11/24".
fn node_addresses(netns: &str, link: &str) -> String {
    ip(&["-n", netns, "-4", "-br", "addr", "show", "dev", link])
}

fn node_namespaces() -> Vec<String> {
    ip(&["netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n == "kl-master" || n.starts_with("kl-worker"))
        .map(str::to_string)
        .collect()
}

fn sysctl_in(netns: &str, key: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", netns, "sysctl", "-n", key])
        .output()
        .expect("running sysctl");
    assert!(out.status.success(), "{key} in {netns}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn process_alive(pid: i32) -> bool {
    // A killed child of this test may linger as a zombie: that is gone.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// Nothing of the lab is left on the machine.
fn assert_lab_gone(dir: &Path, pids: &[i32]) {
    assert_eq!(
        node_namespaces(),
        Vec::<String>::new(),
        "node namespaces left"
    );
    let links = ip(&["-br", "link", "show"]);
    assert!(!links.contains("kl-lan0"), "bridge left:\n{links}");
    assert!(!links.contains("kl-master-lan"), "LAN port left:\n{links}");
    assert!(!links.contains("kl-worker"), "LAN port left:\n{links}");
    let unreachable = ip(&["route", "show", "type", "unreachable"]);
    assert!(
        !unreachable.contains("10.96.0.0/12") && !unreachable.contains("10.244.0.0/16"),
        "unreachable routes left:\n{unreachable}"
    );
    for pid in pids {
        assert!(!process_alive(*pid), "process {pid} still running");
    }
    let registries = Command::new("pgrep")
        .args(["-f", &format!("docker-registry serve {}", dir.display())])
        .output()
        .unwrap();
    assert!(
        registries.stdout.is_empty(),
        "the lab's registry still runs: {}",
        String::from_utf8_lossy(&registries.stdout)
    );
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn up_builds_the_vms_and_the_control_plane_and_down_removes_everything() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lab");
    let options = lab_options(&dir, 2);
    let lab = Lab::up(options.clone()).expect("lab up");

    // The VMs and the host-only LAN.
    let mut namespaces = node_namespaces();
    namespaces.sort();
    assert_eq!(namespaces, ["kl-master", "kl-worker1", "kl-worker2"]);
    let bridge = ip(&["-4", "-br", "addr", "show", "dev", "kl-lan0"]);
    assert!(bridge.contains("192.168.56.1/24"), "{bridge}");
    for (ns, lan_ip) in [
        ("kl-master", "192.168.56.10/24"),
        ("kl-worker1", "192.168.56.11/24"),
        ("kl-worker2", "192.168.56.12/24"),
    ] {
        assert!(node_addresses(ns, "eth1").contains(lan_ip), "{ns} eth1");
        // The dual-NIC trap: every node's NAT NIC has the same address.
        assert!(
            node_addresses(ns, "eth0").contains("10.0.2.15/24"),
            "{ns} eth0"
        );
        assert_eq!(ip(&["-n", ns, "route", "show", "default"]), "", "{ns}");
        assert_eq!(sysctl_in(ns, "net.ipv4.ip_forward"), "1", "{ns}");
        assert_eq!(
            sysctl_in(ns, "net.bridge.bridge-nf-call-iptables"),
            "1",
            "{ns}"
        );
        let port = format!("kl-{}-lan", ns.trim_start_matches("kl-"));
        let port = ip(&["-d", "link", "show", &port]);
        assert!(port.contains("master kl-lan0"), "{port}");
    }
    // The LAN carries traffic between nodes.
    let ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            "kl-worker1",
            "ping",
            "-c1",
            "-W1",
            "192.168.56.12",
        ])
        .output()
        .unwrap();
    assert!(ping.status.success(), "worker1 -> worker2: {ping:?}");

    // The host refuses cluster ranges instead of routing them out.
    let unreachable = ip(&["route", "show", "type", "unreachable"]);
    assert!(unreachable.contains("10.96.0.0/12"), "{unreachable}");
    assert!(unreachable.contains("10.244.0.0/16"), "{unreachable}");

    // The control plane, from the host over the LAN.
    assert!(
        lab::apiserver_ready(&dir),
        "apiserver /readyz from the host"
    );
    let apiserver = lab.pid("apiserver").expect("apiserver pid file");
    let controller = lab.pid("controller").expect("controller pid file");
    assert!(process_alive(apiserver) && process_alive(controller));
    let in_master = ip(&["netns", "pids", "kl-master"]);
    for pid in [apiserver, controller] {
        assert!(
            in_master.split_whitespace().any(|p| p == pid.to_string()),
            "{pid} runs in kl-master: {in_master}"
        );
    }
    let kubeconfig = std::fs::read_to_string(lab.kubeconfig()).unwrap();
    assert!(kubeconfig.contains("server: https://192.168.56.10:6443"));
    assert!(kubeconfig.contains("client-certificate-data: "));
    let status = lab::status(&dir).unwrap().to_string();
    assert!(status.contains("readyz: ok"), "{status}");

    // up again: the same lab, the same processes.
    lab::up(&options).expect("second up");
    assert_eq!(lab.pid("apiserver"), Some(apiserver));
    assert_eq!(lab.pid("controller"), Some(controller));
    assert_eq!(node_namespaces().len(), 3);
    assert!(lab::apiserver_ready(&dir));

    lab.down().expect("down");
    assert_lab_gone(&dir, &[apiserver, controller]);
}

#[test]
fn down_after_a_crash_still_removes_everything() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lab");
    let lab = Lab::up(lab_options(&dir, 1)).expect("lab up");
    let apiserver = lab.pid("apiserver").unwrap();
    let controller = lab.pid("controller").unwrap();

    // The crash: the apiserver dies and the PID files are lost; the
    // controller and the namespaces are still there.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(apiserver),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::fs::remove_dir_all(dir.join("pids")).unwrap();
    assert!(process_alive(controller));

    lab.down().expect("down after a crash");
    assert_lab_gone(&dir, &[apiserver, controller]);
}

#[test]
fn down_with_no_lab_does_nothing_and_succeeds() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lab");
    let _turn = lab::LabLock::acquire(lab::TEST_LOCK_WAIT).unwrap();
    lab::down(&dir).expect("down on a clean machine");
    assert_lab_gone(&dir, &[]);
}

/// The processes in the cgroups of a lab node's Pods.
fn pod_processes(node: &str) -> Vec<i32> {
    let marker = format!("/{}/{node}/", lab::CGROUP_PARENT);
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .is_ok_and(|cgroups| cgroups.contains(&marker))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn down_ends_the_pods_containers_and_removes_their_cgroups_and_mounts() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lab");
    let lab = Lab::up(lab_options(&dir, 1)).expect("lab up");
    // A Pod that ignores SIGTERM, with a volume that is a mount of its own
    // (a tmpfs under the lab's directory).
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(lab.client().await.unwrap(), "default");
    let pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "stubborn"},
        "spec": {
            "volumes": [{"name": "scratch", "emptyDir": {"medium": "Memory"}}],
            "containers": [{"name": "c", "image": "busybox",
                "command": ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"],
                "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}]
        }
    }))
    .unwrap();
    pods.create(&Default::default(), &pod).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let phase = pods
            .get("stubborn")
            .await
            .ok()
            .and_then(|p| p.status?.phase);
        if phase.as_deref() == Some("Running") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the Pod never ran");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // The node agent crashed: nobody but `down` will clean its Pods up.
    if let Some(agent) = lab.pid("nodeagent-kl-worker1") {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(agent),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    }
    let containers = pod_processes("kl-worker1");
    assert!(!containers.is_empty(), "the Pod's processes");
    let status = lab::status(&dir).unwrap();
    assert!(status.to_string().contains("(1 Pod sandbox)"), "{status}");

    lab.down().expect("down");
    for pid in &containers {
        assert!(!process_alive(*pid), "Pod process {pid} still running");
    }
    let cgroups: Vec<_> = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|c| c.path().join(lab::CGROUP_PARENT))
        .filter(|c| c.exists())
        .collect();
    assert!(cgroups.is_empty(), "Pod cgroups left: {cgroups:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(dir.to_str().unwrap()),
        "mounts left under the lab:\n{mounts}"
    );
    assert_lab_gone(&dir, &[]);
}
