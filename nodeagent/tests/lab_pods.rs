//! Real Pods on a real lab (master + 2 workers, each a network namespace
//! with its own node agent): the lesson's nginx Pods, the pod network
//! between nodes, and the kubelet's life cycle - restarts, deletion,
//! agent restarts, bad images and crashing commands.
//!
//! Needs root; takes the lab lock (one lab per machine).

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{container_pid, is_ready, wait_for};
use e2e::harness::{bin_dir, ensure_built, workspace_root};
use e2e::lab::{Lab, LabOptions};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, ListParams};
use kube::Api;

/// The network namespace of a Pod, as the node agent names it.
fn pod_netns(pod: &Pod) -> String {
    let node = pod.spec.as_ref().unwrap().node_name.clone().unwrap();
    let uid = pod.metadata.uid.as_deref().unwrap();
    format!("kl-pod-{node}-{}", nodeagent::network::pod_hash(uid))
}

/// Runs a command inside a Pod's network namespace (the test plays a
/// process of that Pod) and returns its stdout.
fn in_pod_netns(pod: &Pod, command: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &pod_netns(pod)])
        .args(command)
        .output()
        .expect("ip netns exec");
    assert!(
        out.status.success(),
        "{command:?} in {}: {}",
        pod_netns(pod),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn netns_exists(name: &str) -> bool {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name))
}

fn kubectl(lab: &Lab, args: &[&str]) -> String {
    let out = Command::new(bin_dir().join("kubectl-lite"))
        .arg("--kubeconfig")
        .arg(lab.kubeconfig())
        .args(args)
        .output()
        .expect("kubectl-lite");
    assert!(
        out.status.success(),
        "kubectl-lite {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn container(pod: &Pod) -> k8s_openapi::api::core::v1::ContainerStatus {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.first().cloned())
        .unwrap_or_default()
}

/// The running nginx Pods of the lesson's Deployment, once there are two
/// and both are Ready.
async fn ready_lesson_pods(pods: &Api<Pod>) -> Vec<Pod> {
    wait_for(60, "2 ready ngx-dep Pods", || async {
        let list = pods
            .list(&ListParams::default().labels("app=ngx-dep"))
            .await
            .ok()?;
        let ready: Vec<Pod> = list
            .items
            .into_iter()
            .filter(|p| is_ready(p) && p.metadata.deletion_timestamp.is_none())
            .collect();
        (ready.len() == 2).then_some(ready)
    })
    .await
}

/// The PID of a Pod's nginx master process.
fn nginx_pid(lab: &Lab, pod: &Pod) -> i32 {
    container_pid(lab, pod, "nginx")
}

#[tokio::test(flavor = "multi_thread")]
async fn lesson_pods_run_on_the_workers_and_live_like_pods() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the lab test builds network namespaces and must run as root"
    );
    ensure_built(&[
        "apiserver",
        "controller",
        "nodeagent",
        "e2e",
        "kubectl-lite",
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let lab = Lab::up(LabOptions {
        workers: 2,
        dir: tmp.path().join("lab"),
        bin_dir: bin_dir(),
    })
    .expect("lab up");
    let client = lab.client().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    // Nodes advertise their LAN address, never the NAT NIC's 10.0.2.15.
    let nodes: Api<Node> = Api::all(client.clone());
    let addresses: BTreeMap<String, String> = wait_for(30, "3 nodes", || async {
        let list = nodes.list(&ListParams::default()).await.ok()?;
        let map: BTreeMap<String, String> = list
            .items
            .iter()
            .filter_map(|n| {
                let ip = n
                    .status
                    .as_ref()?
                    .addresses
                    .as_ref()?
                    .iter()
                    .find(|a| a.type_ == "InternalIP")?
                    .address
                    .clone();
                Some((n.metadata.name.clone()?, ip))
            })
            .collect();
        (map.len() == 3).then_some(map)
    })
    .await;
    for (node, ip) in &addresses {
        assert!(ip.starts_with("192.168.56."), "{node} advertises {ip}");
    }

    // The lesson: ngx-conf + ngx-dep give 2 nginx Pods on different workers
    // (the control-plane node is tainted, as kubeadm does).
    let lesson = workspace_root().join("examples/lesson");
    kubectl(
        &lab,
        &[
            "apply",
            "-f",
            lesson.join("ngx-conf.yml").to_str().unwrap(),
            "-f",
            lesson.join("ngx-dep.yml").to_str().unwrap(),
        ],
    );
    let ready = ready_lesson_pods(&pods).await;
    let nodes_of: Vec<String> = ready
        .iter()
        .map(|p| p.spec.as_ref().unwrap().node_name.clone().unwrap())
        .collect();
    let mut sorted = nodes_of.clone();
    sorted.sort();
    assert_eq!(sorted, ["kl-worker1", "kl-worker2"], "one Pod per worker");

    // From a Pod on one node, curl the other Pod's IP: nginx answers with
    // the lesson's text, and host is that Pod's name (its own hostname).
    let (a, b) = (&ready[0], &ready[1]);
    let b_ip = b.status.as_ref().unwrap().pod_ip.clone().unwrap();
    // (Ready means its process started; nginx may still be binding its
    // port on a loaded machine: a refused connection is retried.)
    let answer = in_pod_netns(
        a,
        &[
            "curl",
            "-s",
            "-m",
            "5",
            "--retry",
            "5",
            "--retry-connrefused",
            "--retry-delay",
            "1",
            &format!("http://{b_ip}/"),
        ],
    );
    let b_name = b.metadata.name.clone().unwrap();
    assert!(
        answer.starts_with(&format!("srv : {b_ip}:80\n")),
        "{answer}"
    );
    assert!(answer.contains(&format!("\nhost: {b_name}\n")), "{answer}");
    assert!(
        answer.contains(&format!("\nuri : GET {b_ip} /\n")),
        "{answer}"
    );
    assert!(answer.contains("\ndate: "), "{answer}");

    // `kubectl-lite logs`: nginx's access log (its stdout) shows that
    // request; `kubectl-lite exec` runs commands inside the Pod.
    let b_logs = wait_for(10, "the access log line", || async {
        let logs = kubectl(&lab, &["logs", &b_name]);
        logs.contains("\"GET / HTTP/1.1\" 200").then_some(logs)
    })
    .await;
    assert!(
        b_logs.contains(&a.status.as_ref().unwrap().pod_ip.clone().unwrap()),
        "{b_logs}"
    );
    let a_name = a.metadata.name.clone().unwrap();
    assert_eq!(
        kubectl(&lab, &["exec", &a_name, "--", "hostname"]).trim(),
        a_name
    );
    let mut cat = Command::new(bin_dir().join("kubectl-lite"))
        .arg("--kubeconfig")
        .arg(lab.kubeconfig())
        .args(["exec", "-i", &a_name, "--", "cat", "/etc/hostname", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = cat.stdin.take().unwrap();
        stdin.write_all(b"from stdin\n").unwrap();
    }
    let out = cat.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{a_name}\nfrom stdin\n")
    );
    // -it, in a real terminal (`script` gives kubectl-lite one).
    let it = Command::new("script")
        .args([
            "-qec",
            &format!(
                "{} --kubeconfig {} exec -it {a_name} -- sh -c '[ -t 0 ] && echo is-a-tty; hostname; exit 4'",
                bin_dir().join("kubectl-lite").display(),
                lab.kubeconfig().display()
            ),
            "/dev/null",
        ])
        .stdin(std::process::Stdio::piped())
        .output()
        .unwrap();
    let it_out = String::from_utf8_lossy(&it.stdout);
    assert!(
        it_out.contains("is-a-tty") && it_out.contains(&a_name),
        "{it_out:?}"
    );
    assert!(
        it_out.contains("command terminated with exit code 4"),
        "{it_out:?}"
    );

    // Killing the container's process: the kubelet restarts it.
    let pid = nginx_pid(&lab, a);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let restarted = wait_for(30, "the killed container to run again", || async {
        let pod = pods.get(&a_name).await.ok()?;
        let c = container(&pod);
        (c.restart_count == 1 && is_ready(&pod)).then_some(pod)
    })
    .await;
    let last = container(&restarted)
        .last_state
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(last.exit_code, 137, "SIGKILL is 128 + 9");

    // Restarting a node agent keeps its Pods running: same process, same
    // restart count, still Ready.
    let b_pid = nginx_pid(&lab, b);
    let b_node = b.spec.as_ref().unwrap().node_name.clone().unwrap();
    let agent = lab.pid(&format!("nodeagent-{b_node}")).expect("agent pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(agent), None);
    e2e::lab::up(&lab.options).expect("lab up restarts the agent");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = pods.get(&b_name).await.unwrap();
    assert!(is_ready(&after), "still ready after the agent restart");
    assert_eq!(container(&after).restart_count, 0);
    assert_eq!(nginx_pid(&lab, &after), b_pid, "the same nginx process");
    assert!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(b_pid), None).is_ok(),
        "nginx still runs"
    );

    // Deleting a Pod removes its namespace, veth and IP.
    let netns = pod_netns(&after);
    let veth = format!("veth{}", &netns[netns.len() - 8..]);
    let ip_file = e2e::lab::nodeagent_data_dir(&lab.options.dir, &b_node).join(format!(
        "networks/kube-lite/{}",
        after.status.as_ref().unwrap().pod_ip.as_ref().unwrap()
    ));
    assert!(netns_exists(&netns) && ip_file.exists());
    pods.delete(&b_name, &DeleteParams::default())
        .await
        .unwrap();
    wait_for(30, "the deleted Pod to be gone", || async {
        pods.get_opt(&b_name).await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(!netns_exists(&netns), "{netns} removed");
    assert!(!ip_file.exists(), "{} released", ip_file.display());
    let links = Command::new("ip")
        .args(["-n", &b_node, "link"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&links.stdout).contains(&veth),
        "{veth} removed"
    );
    assert!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(b_pid), None).is_err(),
        "its nginx ended"
    );
    // ... and the Deployment replaces it.
    let replaced = ready_lesson_pods(&pods).await;

    // A Pod force-deleted while its node agent is down: the restarted agent
    // finds its leftovers (process, namespace, IP) and removes them.
    let c = &replaced[0];
    let (c_name, c_pid, c_netns) = (
        c.metadata.name.clone().unwrap(),
        nginx_pid(&lab, c),
        pod_netns(c),
    );
    let c_node = c.spec.as_ref().unwrap().node_name.clone().unwrap();
    let c_ip_file = e2e::lab::nodeagent_data_dir(&lab.options.dir, &c_node).join(format!(
        "networks/kube-lite/{}",
        c.status.as_ref().unwrap().pod_ip.as_ref().unwrap()
    ));
    let agent = lab.pid(&format!("nodeagent-{c_node}")).expect("agent pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(agent), None);
    let force = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    pods.delete(&c_name, &force).await.unwrap();
    assert!(
        pods.get_opt(&c_name).await.unwrap().is_none(),
        "force-deleted"
    );
    assert!(
        netns_exists(&c_netns),
        "nobody removed it yet: its agent is down"
    );
    e2e::lab::up(&lab.options).expect("lab up restarts the agent");
    let deadline = Instant::now() + Duration::from_secs(30);
    while netns_exists(&c_netns)
        || c_ip_file.exists()
        || nix::sys::signal::kill(nix::unistd::Pid::from_raw(c_pid), None).is_ok()
    {
        assert!(
            Instant::now() < deadline,
            "the restarted agent should remove the leftovers of {c_name}: netns {}, ip {}, process {}",
            netns_exists(&c_netns),
            c_ip_file.exists(),
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(c_pid), None).is_ok()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ready_lesson_pods(&pods).await;

    // An unknown image and a crashing command show the kubelet's reasons.
    let bad: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "bad-image"},
        "spec": {"containers": [{"name": "c", "image": "no-such-image:1.0"}]}
    }))
    .unwrap();
    let crash: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "crasher"},
        "spec": {"containers": [{"name": "c", "image": "busybox",
                  "command": ["sh", "-c", "echo bye; exit 3"]}]}
    }))
    .unwrap();
    for p in [&bad, &crash] {
        pods.create(&Default::default(), p).await.unwrap();
    }
    let waiting = wait_for(30, "ErrImagePull", || async {
        let c = container(&pods.get("bad-image").await.ok()?);
        c.state?
            .waiting
            .filter(|w| w.reason.as_deref() == Some("ErrImagePull"))
    })
    .await;
    assert!(
        waiting.message.unwrap().contains("no-such-image"),
        "the message names the image"
    );
    let crashed = wait_for(30, "CrashLoopBackOff", || async {
        let c = container(&pods.get("crasher").await.ok()?);
        let waiting = c.state.clone()?.waiting?;
        (waiting.reason.as_deref() == Some("CrashLoopBackOff")).then_some(c)
    })
    .await;
    let last = crashed.last_state.unwrap().terminated.unwrap();
    assert_eq!((last.exit_code, last.reason.as_deref()), (3, Some("Error")));
    assert!(crashed.restart_count >= 1);
    let phase = pods.get("crasher").await.unwrap().status.unwrap().phase;
    assert_eq!(phase.as_deref(), Some("Running"), "restartPolicy Always");

    lab.down().expect("lab down");
}
