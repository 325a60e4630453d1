//! The Services lesson end to end, on a lab of a master and two workers,
//! the way a student walks it (../shared/lesson/README.md, steps 1-11),
//! then the datapath cases students ask about: hairpin, NodePorts on nodes
//! without local Pods, explicit nodePorts, session affinity,
//! externalTrafficPolicy Local, Services without endpoints, UDP, cleanup,
//! agent restarts under load and drift repair.
//!
//! Every request comes from inside the lab: from a Pod (`kubectl-lite
//! exec`), from a node's namespace, or - for NodePorts only - from the host
//! to a node's LAN address, as the VirtualBox host would. Needs root; takes
//! the lab lock.

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use e2e::harness::{bin_dir, ensure_built, workspace_root};
use e2e::lab::{Lab, LabOptions};

const NODE_IPS: [(&str, &str); 3] = [
    ("kl-master", "192.168.56.10"),
    ("kl-worker1", "192.168.56.11"),
    ("kl-worker2", "192.168.56.12"),
];

struct Cluster {
    lab: Lab,
}

impl Cluster {
    fn up() -> Cluster {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the lesson test builds a lab of network namespaces and must run as root"
        );
        ensure_built(&["apiserver", "controller", "nodeagent", "e2e", "kubectl-lite"]);
        let dir = std::env::temp_dir().join(format!("kl-lesson-{}", std::process::id()));
        let lab = Lab::up(LabOptions {
            workers: 2,
            dir,
            bin_dir: bin_dir(),
        })
        .expect("lab up");
        let cluster = Cluster { lab };
        cluster.eventually(60, "3 Ready nodes", || {
            let out = cluster.kubectl(&["get", "nodes", "--no-headers"]);
            (out.matches(" Ready ").count() == 3).then_some(())
        });
        cluster
    }

    fn run_kubectl(&self, args: &[&str]) -> Output {
        Command::new(bin_dir().join("kubectl-lite"))
            .arg("--kubeconfig")
            .arg(self.lab.kubeconfig())
            .args(args)
            .output()
            .expect("kubectl-lite")
    }

    /// kubectl-lite, which must succeed; its stdout.
    fn kubectl(&self, args: &[&str]) -> String {
        let out = self.run_kubectl(args);
        assert!(
            out.status.success(),
            "kubectl-lite {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn apply(&self, manifest: &str) -> String {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), manifest).unwrap();
        self.kubectl(&["apply", "-f", file.path().to_str().unwrap()])
    }

    fn lesson_file(name: &str) -> String {
        workspace_root()
            .join("examples/lesson")
            .join(name)
            .display()
            .to_string()
    }

    /// `curl` from inside a Pod; the body, or None when it failed.
    fn curl_from_pod(&self, pod: &str, url: &str) -> Option<String> {
        let out = self.run_kubectl(&["exec", pod, "--", "curl", "-s", "-m", "3", url]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A command on a node (a VM): inside its network namespace.
    fn on_node(&self, node: &str, command: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", node])
            .args(command)
            .output()
            .expect("ip netns exec")
    }

    fn eventually<T>(&self, secs: u64, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = check() {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Names of the Ready Pods with a label, and their nodes.
    fn ready_pods(&self, selector: &str) -> Vec<(String, String)> {
        let out = self.kubectl(&["get", "pods", "-l", selector, "-o", "wide", "--no-headers"]);
        out.lines()
            .filter(|l| l.split_whitespace().nth(1) == Some("1/1"))
            .filter(|l| l.split_whitespace().nth(2) == Some("Running"))
            .map(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                (cols[0].to_string(), cols[6].to_string())
            })
            .collect()
    }

    fn wait_ready(&self, selector: &str, n: usize) -> Vec<(String, String)> {
        self.eventually(90, &format!("{n} ready Pods {selector}"), || {
            let pods = self.ready_pods(selector);
            (pods.len() == n).then_some(pods)
        })
    }

    fn jsonpath(&self, args: &[&str], path: &str) -> String {
        let mut all = args.to_vec();
        let flag = format!("jsonpath={path}");
        all.extend(["-o", &flag]);
        self.kubectl(&all)
    }

    /// The `host:` line of a lesson answer.
    fn host_of(answer: &str) -> Option<String> {
        answer
            .lines()
            .find_map(|l| l.strip_prefix("host: "))
            .map(str::to_string)
    }

    fn nft_table(&self, node: &str) -> String {
        let out = self.on_node(node, &["nft", "list", "table", "ip", "kube-lite"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

#[test]
fn the_lesson_steps_1_to_11() {
    let c = Cluster::up();

    // The DNS Service exists before the student starts.
    c.eventually(30, "the kube-dns Service", || {
        c.run_kubectl(&["get", "svc", "-n", "kube-system", "kube-dns"])
            .status
            .success()
            .then_some(())
    });
    c.kubectl(&[
        "apply",
        "-f",
        &Cluster::lesson_file("ngx-conf.yml"),
        "-f",
        &Cluster::lesson_file("ngx-dep.yml"),
    ]);

    // 1. A Service template from the Deployment.
    let template = c.kubectl(&[
        "expose", "deploy", "ngx-dep", "--port=80", "--target-port=80", "--dry-run=client", "-o",
        "yaml",
    ]);
    assert!(template.contains("kind: Service"), "{template}");
    assert!(template.contains("app: ngx-dep"), "{template}");

    // 2. Apply the Service (and the all-in-one file: nothing changes).
    let applied = c.kubectl(&["apply", "-f", &Cluster::lesson_file("ngx-svc.yml")]);
    assert!(applied.contains("service/ngx-svc created"), "{applied}");
    c.kubectl(&["apply", "-f", &Cluster::lesson_file("all-in-one.yml")]);

    // 3. A ClusterIP from the service range.
    let svc = c.kubectl(&["get", "svc", "ngx-svc", "--no-headers"]);
    let cols: Vec<&str> = svc.split_whitespace().collect();
    assert_eq!(cols[1], "ClusterIP", "{svc}");
    assert_eq!(cols[4], "80/TCP", "{svc}");
    let cluster_ip = c.jsonpath(&["get", "svc", "ngx-svc"], "{.spec.clusterIP}");
    assert!(cluster_ip.starts_with("10.9") || cluster_ip.starts_with("10.1"), "{cluster_ip}");

    // 4-5. Endpoints = the two Pods' IPs, on the two workers.
    let pods = c.wait_ready("app=ngx-dep", 2);
    let mut nodes: Vec<&str> = pods.iter().map(|(_, n)| n.as_str()).collect();
    nodes.sort();
    assert_eq!(nodes, ["kl-worker1", "kl-worker2"]);
    let pod_ips: Vec<String> = pods
        .iter()
        .map(|(p, _)| c.jsonpath(&["get", "pod", p], "{.status.podIP}"))
        .collect();
    c.eventually(30, "Endpoints listing both Pods", || {
        let describe = c.kubectl(&["describe", "svc", "ngx-svc"]);
        pod_ips
            .iter()
            .all(|ip| describe.contains(&format!("{ip}:80")))
            .then_some(())
    });

    // 6. curl the ClusterIP from a Pod: both Pods answer, with their names.
    let (client, _) = &pods[0];
    let mut seen = BTreeMap::new();
    for _ in 0..30 {
        let answer = c
            .curl_from_pod(client, &format!("http://{cluster_ip}"))
            .expect("curl the ClusterIP from a Pod");
        assert!(answer.contains(&format!("uri : GET {cluster_ip} /")), "{answer}");
        *seen.entry(Cluster::host_of(&answer).unwrap()).or_insert(0) += 1;
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen.len(), 2, "requests spread over both Pods: {seen:?}");
    // ... and from a node.
    let from_node = c.on_node(
        "kl-worker1",
        &["curl", "-s", "-m", "3", &format!("http://{cluster_ip}")],
    );
    assert!(
        String::from_utf8_lossy(&from_node.stdout).contains("host: ngx-dep-"),
        "{from_node:?}"
    );
    // ping gets no answer.
    let ping = c.run_kubectl(&["exec", client, "--", "ping", "-c", "1", "-W", "1", &cluster_ip]);
    assert!(!ping.status.success(), "a ClusterIP does not answer ping");

    // 7. Delete a Pod: a new one, a new endpoint, curl keeps working.
    let (victim, _) = &pods[1];
    c.kubectl(&["delete", "pod", victim]);
    let pods = c.wait_ready("app=ngx-dep", 2);
    assert!(pods.iter().all(|(p, _)| p != victim));
    let new_ips: Vec<String> = pods
        .iter()
        .map(|(p, _)| c.jsonpath(&["get", "pod", p], "{.status.podIP}"))
        .collect();
    c.eventually(30, "Endpoints following the new Pod", || {
        let describe = c.kubectl(&["describe", "svc", "ngx-svc"]);
        new_ips
            .iter()
            .all(|ip| describe.contains(&format!("{ip}:80")))
            .then_some(())
    });
    let (client, _) = &pods[0];
    assert!(c.curl_from_pod(client, &format!("http://{cluster_ip}")).is_some());

    // 8. Scale to 5: curl reaches all five.
    c.kubectl(&["scale", "deploy", "ngx-dep", "--replicas=5"]);
    let five = c.wait_ready("app=ngx-dep", 5);
    let mut hosts = std::collections::BTreeSet::new();
    for _ in 0..100 {
        if let Some(answer) = c.curl_from_pod(client, &format!("http://{cluster_ip}")) {
            hosts.extend(Cluster::host_of(&answer));
        }
        if hosts.len() == 5 {
            break;
        }
    }
    let names: std::collections::BTreeSet<String> = five.into_iter().map(|(p, _)| p).collect();
    assert_eq!(hosts, names, "curl reaches all five Pods");

    // 9. DNS from inside a Pod.
    for name in ["ngx-svc", "ngx-svc.default", "ngx-svc.default.svc.cluster.local"] {
        let answer = c
            .curl_from_pod(client, &format!("http://{name}"))
            .unwrap_or_else(|| panic!("curl http://{name} from a Pod"));
        assert!(answer.contains("host: ngx-dep-"), "{name}: {answer}");
    }
    let client_ip = c.jsonpath(&["get", "pod", client], "{.status.podIP}");
    let record = format!("{}.default.pod.cluster.local", client_ip.replace('.', "-"));
    let resolved = c.kubectl(&["exec", client, "--", "getent", "hosts", &record]);
    assert!(resolved.starts_with(&client_ip), "{record}: {resolved}");
    let namespaces = c.kubectl(&["get", "ns", "--no-headers"]);
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(namespaces.contains(ns), "{namespaces}");
    }

    // 10. NodePort: every node answers, including the master (no Pods).
    c.kubectl(&["apply", "-f", &Cluster::lesson_file("ngx-svc-nodeport.yml")]);
    let svc = c.kubectl(&["get", "svc", "ngx-svc", "--no-headers"]);
    assert!(svc.contains("NodePort"), "{svc}");
    let node_port = c.jsonpath(&["get", "svc", "ngx-svc"], "{.spec.ports[0].nodePort}");
    assert!(svc.contains(&format!("80:{node_port}/TCP")), "{svc}");
    assert_eq!(
        c.jsonpath(&["get", "svc", "ngx-svc"], "{.spec.clusterIP}"),
        cluster_ip,
        "the ClusterIP stays"
    );
    for (node, ip) in NODE_IPS {
        // From the VM host (the host namespace) to the node's LAN address.
        let answer = c.eventually(20, &format!("NodePort on {node}"), || {
            let out = Command::new("curl")
                .args(["-s", "-m", "3", &format!("http://{ip}:{node_port}")])
                .output()
                .unwrap();
            let body = String::from_utf8_lossy(&out.stdout).into_owned();
            body.contains("host: ngx-dep-").then_some(body)
        });
        assert!(answer.contains(&format!("uri : GET {ip} /")), "{answer}");
    }

    // 11. Delete everything: rules gone from every node, IP and port freed.
    c.kubectl(&["delete", "-f", &Cluster::lesson_file("all-in-one.yml")]);
    for (node, _) in NODE_IPS {
        c.eventually(20, &format!("ngx-svc's rules gone from {node}"), || {
            (!c.nft_table(node).contains("ngx-svc")).then_some(())
        });
    }
    // The freed NodePort can be taken by a new Service at once.
    c.apply(&format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: reuse\nspec:\n  type: NodePort\n  selector: {{app: x}}\n  ports:\n  - port: 80\n    nodePort: {node_port}\n"
    ));

    c.lab.down().expect("lab down");
}
