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

use common::{container_pid, is_ready, sandbox_id, wait_for};
use e2e::harness::{bin_dir, ensure_built, workspace_root};
use e2e::lab::{Lab, LabOptions};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, ListParams};
use kube::Api;

/// Runs a command of this machine inside a Pod's network namespace (the
/// test plays a process of that Pod), entered through one of its
/// containers' processes, and returns its stdout.
async fn in_pod_netns(lab: &Lab, pod: &Pod, command: &[&str]) -> String {
    let pid = nginx_pid(lab, pod).await;
    let out = Command::new("nsenter")
        .args(["--target", &pid.to_string(), "--net", "--"])
        .args(command)
        .output()
        .expect("nsenter");
    assert!(
        out.status.success(),
        "{command:?} in the network of {}: {}",
        pod.metadata.name.as_deref().unwrap_or_default(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Where the node's CNI plugin records that `ip` is taken.
fn ip_file(lab: &Lab, node: &str, ip: &str) -> std::path::PathBuf {
    let node = e2e::lab::Node::all(lab.options.workers)
        .into_iter()
        .find(|n| n.name == node)
        .unwrap();
    e2e::lab::node_layout(&lab.options.dir, &node)
        .cni_data_dir()
        .join(api::cni::NETWORK_NAME)
        .join(ip)
}

fn node_links(node: &str) -> String {
    let links = Command::new("ip")
        .args(["-n", node, "link"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&links.stdout).into_owned()
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
async fn nginx_pid(lab: &Lab, pod: &Pod) -> i32 {
    container_pid(lab, pod, "nginx").await
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
        &lab,
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
    )
    .await;
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
    let pid = nginx_pid(&lab, a).await;
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
    let b_pid = nginx_pid(&lab, b).await;
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
    assert_eq!(
        nginx_pid(&lab, &after).await,
        b_pid,
        "the same nginx process"
    );
    assert!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(b_pid), None).is_ok(),
        "nginx still runs"
    );

    // Deleting a Pod removes its sandbox, and with it (the CNI plugin's
    // DEL) its veth and IP.
    let sandbox = sandbox_id(&lab, &after).await.expect("a sandbox");
    let veth = nodeagent::cni::plugin::host_veth_name(&sandbox, "eth0");
    let b_ip_file = ip_file(
        &lab,
        &b_node,
        after.status.as_ref().unwrap().pod_ip.as_ref().unwrap(),
    );
    assert!(b_ip_file.exists() && node_links(&b_node).contains(&veth));
    pods.delete(&b_name, &DeleteParams::default())
        .await
        .unwrap();
    wait_for(30, "the deleted Pod to be gone", || async {
        pods.get_opt(&b_name).await.ok()?.is_none().then_some(())
    })
    .await;
    assert_eq!(sandbox_id(&lab, &after).await, None, "sandbox removed");
    assert!(!b_ip_file.exists(), "{} released", b_ip_file.display());
    assert!(!node_links(&b_node).contains(&veth), "{veth} removed");
    assert!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(b_pid), None).is_err(),
        "its nginx ended"
    );
    // ... and the Deployment replaces it.
    let replaced = ready_lesson_pods(&pods).await;

    // A Pod force-deleted while its node agent is down: the restarted agent
    // finds its sandbox (container, IP) and removes it.
    let c = &replaced[0];
    let (c_name, c_pid) = (c.metadata.name.clone().unwrap(), nginx_pid(&lab, c).await);
    let c_node = c.spec.as_ref().unwrap().node_name.clone().unwrap();
    let c_ip_file = ip_file(
        &lab,
        &c_node,
        c.status.as_ref().unwrap().pod_ip.as_ref().unwrap(),
    );
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
        sandbox_id(&lab, c).await.is_some(),
        "nobody removed it yet: its agent is down"
    );
    e2e::lab::up(&lab.options).expect("lab up restarts the agent");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sandbox = sandbox_id(&lab, c).await;
        let running = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c_pid), None).is_ok();
        if sandbox.is_none() && !c_ip_file.exists() && !running {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted agent should remove the leftovers of {c_name}: sandbox {sandbox:?}, ip {}, process {running}",
            c_ip_file.exists(),
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
