//! Reboots (issue 13): `e2e reboot NODE` does to a lab node what a VM
//! reboot does, and its units bring it back. With the lesson's Deployment
//! and NodePort Service running, after a worker's or the master's reboot
//! the node is Ready again, its Pods run, the ClusterIP and the NodePort
//! answer, and no object is lost - within the 30 s the issue asks for.
//! Needs root; takes the lab lock.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Instant;

use e2e::harness::{bin_dir, ensure_built, eventually, kubectl, workspace_root};
use e2e::lab::{Lab, LabOptions};

/// How long a rebooted node may take to serve again (the figure).
const BACK_WITHIN: u64 = 30;

struct Cluster {
    _dir: tempfile::TempDir,
    lab: Lab,
    options: LabOptions,
    cluster_ip: String,
    node_port: String,
}

impl Cluster {
    /// A lab with the lesson's nginx Deployment behind a NodePort Service.
    fn up() -> Cluster {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the reboot test builds a lab of network namespaces and must run as root"
        );
        ensure_built(&["apiserver", "controller", "nodeagent", "e2e"]);
        let dir = tempfile::tempdir().unwrap();
        let options = LabOptions {
            workers: 2,
            dir: dir.path().join("lab"),
            bin_dir: bin_dir(),
        };
        let lab = Lab::up(options.clone()).expect("lab up");
        let mut cluster = Cluster {
            _dir: dir,
            lab,
            options,
            cluster_ip: String::new(),
            node_port: String::new(),
        };
        let lesson = workspace_root().join("examples/lesson");
        for manifest in ["all-in-one.yml", "ngx-svc-nodeport.yml"] {
            cluster.kubectl(&["apply", "-f", &lesson.join(manifest).display().to_string()]);
        }
        eventually(90, "both nginx Pods running", || {
            (cluster.running_pods().len() == 2).then_some(())
        });
        cluster.cluster_ip =
            cluster.kubectl(&["get", "svc", "ngx-svc", "-o", "jsonpath={.spec.clusterIP}"]);
        cluster.node_port = cluster.kubectl(&[
            "get",
            "svc",
            "ngx-svc",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ]);
        cluster
    }

    fn kubectl(&self, args: &[&str]) -> String {
        let out = Command::new(kubectl())
            .arg("--kubeconfig")
            .arg(self.lab.kubeconfig())
            .args(args)
            .output()
            .expect("kubectl");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// kubectl that may fail (the apiserver is rebooting): its stdout.
    fn try_kubectl(&self, args: &[&str]) -> Option<String> {
        let out = Command::new(kubectl())
            .arg("--kubeconfig")
            .arg(self.lab.kubeconfig())
            .arg("--request-timeout=3s")
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// `node` of each Running, ready nginx Pod.
    fn running_pods(&self) -> Vec<String> {
        self.try_kubectl(&[
            "get",
            "pods",
            "-l",
            "app=ngx-dep",
            "-o",
            "jsonpath={range .items[*]}{.spec.nodeName} {.status.phase} {.status.containerStatuses[0].ready}{\"\\n\"}{end}",
        ])
        .unwrap_or_default()
        .lines()
        .filter(|l| l.ends_with(" Running true"))
        .map(|l| l.split(' ').next().unwrap_or_default().to_string())
        .collect()
    }

    /// Every object of the lesson and the cluster's own, by kind, name
    /// and uid: a lost or re-created object shows as a difference.
    fn objects(&self) -> BTreeSet<String> {
        self.kubectl(&[
            "get",
            "deploy,rs,pods,svc,ep,cm,sa,nodes,clusterroles,secrets",
            "-A",
            "-o",
            "jsonpath={range .items[*]}{.kind}/{.metadata.namespace}/{.metadata.name}/{.metadata.uid}{\"\\n\"}{end}",
        ])
        .lines()
        .map(String::from)
        .collect()
    }

    /// The HTTP status of `url` fetched from inside `node` (a lab
    /// namespace: never from the host).
    fn http_status(&self, node: &str, url: &str) -> String {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                node,
                "curl",
                "-s",
                "-m",
                "2",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                url,
            ])
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Whether `node`'s agent has reported the Node since `since` (the
    /// Ready condition's heartbeat), and it is Ready.
    fn ready_since(&self, node: &str, since: chrono::DateTime<chrono::Utc>) -> bool {
        let Some(out) = self.try_kubectl(&[
            "get",
            "node",
            node,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status} {.status.conditions[?(@.type==\"Ready\")].lastHeartbeatTime}",
        ]) else {
            return false;
        };
        let Some((status, heartbeat)) = out.split_once(' ') else {
            return false;
        };
        let heartbeat: Option<chrono::DateTime<chrono::Utc>> = heartbeat.parse().ok();
        status == "True" && heartbeat.is_some_and(|h| h >= since - chrono::Duration::seconds(1))
    }

    fn reboot(&self, node: &str) -> chrono::DateTime<chrono::Utc> {
        let before = chrono::Utc::now();
        e2e::lab::reboot(&self.options, node).expect("reboot");
        before
    }

    /// Waits (at most [`BACK_WITHIN`] from `start`) until `node` serves
    /// again: Ready and reporting, both Pods running, the ClusterIP and its
    /// NodePort answering from inside it. The seconds it took.
    fn wait_back(
        &self,
        node: &str,
        node_ip: &str,
        since: chrono::DateTime<chrono::Utc>,
        start: Instant,
    ) -> f64 {
        let cluster_ip = format!("http://{}/", self.cluster_ip);
        let node_port = format!("http://{node_ip}:{}/", self.node_port);
        eventually(
            BACK_WITHIN,
            &format!("{node} serving again after its reboot"),
            || {
                (self.ready_since(node, since)
                    && self.running_pods().len() == 2
                    && self.http_status(node, &cluster_ip) == "200"
                    && self.http_status(node, &node_port) == "200")
                    .then_some(())
            },
        );
        start.elapsed().as_secs_f64()
    }
}

#[test]
fn a_rebooted_worker_is_ready_again_with_its_pods_and_services() {
    let cluster = Cluster::up();
    let before = cluster.objects();
    let start = Instant::now();
    let since = cluster.reboot("kl-worker1");
    let took = cluster.wait_back("kl-worker1", "192.168.56.11", since, start);
    eprintln!("kl-worker1 served again {took:.1}s after its reboot");
    // Its Pod was restarted in place (the restartPolicy), not replaced:
    // in a new sandbox, as the counter says once the agent reported it.
    eventually(
        BACK_WITHIN,
        "the Pod on kl-worker1 restarted in place",
        || {
            let restarts = cluster.kubectl(&[
                "get",
                "pods",
                "-l",
                "app=ngx-dep",
                "--field-selector=spec.nodeName=kl-worker1",
                "-o",
                "jsonpath={.items[0].status.containerStatuses[0].restartCount}",
            ]);
            (restarts == "1").then_some(())
        },
    );
    assert_eq!(
        cluster.objects(),
        before,
        "objects changed across the reboot"
    );
}

#[test]
fn a_rebooted_master_comes_back_without_losing_an_object() {
    let cluster = Cluster::up();
    let before = cluster.objects();
    let start = Instant::now();
    let since = cluster.reboot("kl-master");
    let took = cluster.wait_back("kl-master", "192.168.56.10", since, start);
    eprintln!("kl-master served again {took:.1}s after its reboot");
    assert_eq!(
        cluster.objects(),
        before,
        "objects changed across the reboot"
    );
    // The master's agent started before the apiserver and waited for it.
    let log =
        std::fs::read_to_string(cluster.options.dir.join("logs/nodeagent-kl-master.log")).unwrap();
    assert!(
        log.contains("waiting for the apiserver to register the Node"),
        "the master's node agent never waited for the apiserver"
    );
    // The workers kept serving through it: their NodePorts answer.
    let worker_port = format!("http://192.168.56.12:{}/", cluster.node_port);
    assert_eq!(cluster.http_status("kl-worker2", &worker_port), "200");
}

#[test]
fn the_controller_campaigns_again_after_the_apiserver_was_gone() {
    let cluster = Cluster::up();
    let controller = cluster.lab.pid("controller").expect("controller pid");
    let apiserver = cluster.lab.pid("apiserver").expect("apiserver pid");
    // The apiserver is gone longer than the leader lease (15 s): the
    // controller cannot renew it and must step down.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(apiserver),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let log_path = cluster.options.dir.join("logs/controller.log");
    eventually(40, "the controller to step down", || {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .contains("lost leadership")
            .then_some(())
    });
    let master = e2e::lab::Node::all(0).remove(0);
    e2e::lab::start_unit(&cluster.options, &master, "apiserver").expect("apiserver back");
    eventually(40, "the controller to lead again", || {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let after = log.split("lost leadership").nth(1).unwrap_or_default();
        after.contains("became the leader").then_some(())
    });
    assert_eq!(
        cluster.lab.pid("controller"),
        Some(controller),
        "the controller was restarted"
    );
    assert!(
        std::path::Path::new(&format!("/proc/{controller}")).exists(),
        "the controller exited instead of campaigning again"
    );
    // And it works: a scale is carried out.
    cluster.kubectl(&["scale", "deployment", "ngx-dep", "--replicas=3"]);
    eventually(60, "3 running Pods after the scale", || {
        (cluster.running_pods().len() == 3).then_some(())
    });
}
