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

use e2e::harness::{bin_dir, ensure_built, eventually, workspace_root};
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
        ensure_built(&[
            "apiserver",
            "controller",
            "nodeagent",
            "e2e",
            "kubectl-lite",
        ]);
        let dir = std::env::temp_dir().join(format!("kl-lesson-{}", std::process::id()));
        let lab = Lab::up(LabOptions {
            workers: 2,
            dir,
            bin_dir: bin_dir(),
        })
        .expect("lab up");
        let cluster = Cluster { lab };
        eventually(60, "3 Ready nodes", || {
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
        eventually(90, &format!("{n} ready Pods {selector}"), || {
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
    eventually(30, "the kube-dns Service", || {
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
        "expose",
        "deploy",
        "ngx-dep",
        "--port=80",
        "--target-port=80",
        "--dry-run=client",
        "-o",
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
    assert!(
        cluster_ip.starts_with("10.9") || cluster_ip.starts_with("10.1"),
        "{cluster_ip}"
    );

    // 4-5. Endpoints = the two Pods' IPs, on the two workers.
    let pods = c.wait_ready("app=ngx-dep", 2);
    let mut nodes: Vec<&str> = pods.iter().map(|(_, n)| n.as_str()).collect();
    nodes.sort();
    assert_eq!(nodes, ["kl-worker1", "kl-worker2"]);
    let pod_ips: Vec<String> = pods
        .iter()
        .map(|(p, _)| c.jsonpath(&["get", "pod", p], "{.status.podIP}"))
        .collect();
    eventually(30, "Endpoints listing both Pods", || {
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
        assert!(
            answer.contains(&format!("uri : GET {cluster_ip} /")),
            "{answer}"
        );
        *seen.entry(Cluster::host_of(&answer).unwrap()).or_insert(0) += 1;
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen.len(), 2, "requests spread over both Pods: {seen:?}");
    // The apiserver is a Service too: `kubernetes` in default, 10.96.0.1:443
    // -> the master's 6443, reached by name from a Pod (TLS, anonymous: the
    // version answers, the Pods do not).
    assert!(c
        .kubectl(&["get", "svc", "kubernetes", "--no-headers"])
        .contains("10.96.0.1"));
    let anonymously = |path: &str| {
        let out = c.run_kubectl(&[
            "exec",
            client,
            "--",
            "curl",
            "-sk",
            "-m",
            "3",
            &format!("https://kubernetes.default.svc{path}"),
        ]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let version = anonymously("/version");
    assert!(version.contains("\"gitVersion\""), "{version}");
    let pods_anonymously = anonymously("/api/v1/pods");
    assert!(
        pods_anonymously.contains("\"reason\":\"Unauthorized\""),
        "{pods_anonymously}"
    );
    // Every Pod has its ServiceAccount's identity (a token the node agent
    // asked for, the cluster CA, its namespace): the default account may
    // do nothing until a RoleBinding says so.
    let as_pod = |path: &str| {
        let out = c.run_kubectl(&[
            "exec",
            client,
            "--",
            "sh",
            "-c",
            &format!(
                "curl -s -m 3 --cacert /var/run/secrets/kubernetes.io/serviceaccount/ca.crt \
                 -H \"Authorization: Bearer $(cat /var/run/secrets/kubernetes.io/serviceaccount/token)\" \
                 https://kubernetes.default.svc{path}"
            ),
        ]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let denied = as_pod("/api/v1/namespaces/default/pods");
    assert!(
        denied.contains("pods is forbidden: User \\\"system:serviceaccount:default:default\\\" cannot list resource \\\"pods\\\""),
        "{denied}"
    );
    c.apply(
        "apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: default-view, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{kind: ServiceAccount, name: default, namespace: default}]
",
    );
    eventually(10, "the RoleBinding to let the Pod list Pods", || {
        as_pod("/api/v1/namespaces/default/pods")
            .contains("\"kind\":\"PodList\"")
            .then_some(())
    });
    c.kubectl(&["delete", "rolebinding", "default-view"]);
    // A Pod that names a node itself still meets that node's taints: the
    // master's node agent rejects it, as a kubelet does.
    c.apply(
        "apiVersion: v1
kind: Pod
metadata: {name: on-master}
spec:
  nodeName: kl-master
  containers: [{name: c, image: kube-lite/echo}]
",
    );
    let rejected = eventually(20, "the master to reject the Pod", || {
        let phase = c.jsonpath(
            &["get", "pod", "on-master"],
            "{.status.phase} {.status.reason}",
        );
        (phase == "Failed TaintToleration").then_some(phase)
    });
    assert_eq!(rejected, "Failed TaintToleration");
    let message = c.jsonpath(&["get", "pod", "on-master"], "{.status.message}");
    assert_eq!(
        message,
        "Pod was rejected: Predicate TaintToleration failed: node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"
    );
    c.kubectl(&["delete", "pod", "on-master"]);
    // A node agent's port answers only the apiserver: from a Pod, the TLS
    // handshake fails (no certificate the cluster CA signed).
    let kubelet = c.run_kubectl(&[
        "exec",
        client,
        "--",
        "curl",
        "-sk",
        "-m",
        "3",
        "https://192.168.56.11:10250/healthz",
    ]);
    assert!(!kubelet.status.success(), "{kubelet:?}");
    assert!(
        !String::from_utf8_lossy(&kubelet.stdout).contains("ok"),
        "{kubelet:?}"
    );
    // ... and from a node.
    let from_node = c.on_node(
        "kl-worker1",
        &["curl", "-s", "-m", "3", &format!("http://{cluster_ip}")],
    );
    assert!(
        String::from_utf8_lossy(&from_node.stdout).contains("host: ngx-dep-"),
        "{from_node:?}"
    );
    // The path a packet takes, as each node's kernel has it
    // (`kubectl-lite trace`, kube-lite's own verb).
    let node_names = c.jsonpath(&["get", "nodes"], "{.items[*].metadata.name}");
    eventually(30, "every node's table to hold both endpoints", || {
        let trace = c.kubectl(&["trace", "svc/ngx-svc"]);
        let complete = node_names
            .split_whitespace()
            .all(|node| trace.contains(&format!("node {node}: service default/ngx-svc")))
            && trace
                .matches(&format!(
                    "@services-with-2-endpoints  {cluster_ip} . tcp . 80 : goto pick-1-of-2"
                ))
                .count()
                == node_names.split_whitespace().count()
            && pod_ips
                .iter()
                .all(|ip| trace.contains(&format!("-> {ip}:80")));
        complete.then_some(())
    });
    let from = c.kubectl(&["trace", "svc/ngx-svc", "--from", &format!("pod/{client}")]);
    assert_eq!(from.matches("node kl-").count(), 1, "{from}");
    assert!(from.contains(&format!("from pod/{client}")), "{from}");
    assert!(from.contains("is an endpoint"), "{from}");
    // ping gets no answer.
    let ping = c.run_kubectl(&[
        "exec",
        client,
        "--",
        "ping",
        "-c",
        "1",
        "-W",
        "1",
        &cluster_ip,
    ]);
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
    eventually(30, "Endpoints following the new Pod", || {
        let describe = c.kubectl(&["describe", "svc", "ngx-svc"]);
        new_ips
            .iter()
            .all(|ip| describe.contains(&format!("{ip}:80")))
            .then_some(())
    });
    let (client, _) = &pods[0];
    assert!(c
        .curl_from_pod(client, &format!("http://{cluster_ip}"))
        .is_some());

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
    for name in [
        "ngx-svc",
        "ngx-svc.default",
        "ngx-svc.default.svc.cluster.local",
    ] {
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
        let answer = eventually(20, &format!("NodePort on {node}"), || {
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
        eventually(20, &format!("ngx-svc's rules gone from {node}"), || {
            (!c.nft_table(node).contains("ngx-svc")).then_some(())
        });
    }
    // The freed NodePort can be taken by a new Service at once.
    c.apply(&format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: reuse\nspec:\n  type: NodePort\n  selector: {{app: x}}\n  ports:\n  - port: 80\n    nodePort: {node_port}\n"
    ));

    c.lab.down().expect("lab down");
}

/// The echo image's Deployment: answers HTTP (and UDP) on 8080 with its
/// hostname and the client's address.
fn echo_deployment(name: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n      - name: echo\n        image: kube-lite/echo\n        ports:\n        - containerPort: 8080\n          name: http\n"
    )
}

fn service(name: &str, app: &str, extra_spec: &str, ports: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  selector: {{app: {app}}}\n{extra_spec}  ports:\n{ports}"
    )
}

/// The `client: ip:port` line of an echo answer: who the Pod saw.
fn client_of(answer: &str) -> Option<String> {
    answer
        .lines()
        .find_map(|l| l.strip_prefix("client: "))
        .map(|c| c.rsplit_once(':').map_or(c, |(ip, _)| ip).to_string())
}

#[test]
fn services_datapath_cases() {
    let c = Cluster::up();
    c.apply(&echo_deployment("solo", 1));
    c.apply(&echo_deployment("echo", 2));
    let solo = c.wait_ready("app=solo", 1);
    let echo = c.wait_ready("app=echo", 2);
    let (solo_pod, solo_node) = solo[0].clone();
    // Every container gets the variables in-cluster clients read to find
    // the apiserver (the echo server keeps its environment; nginx clears
    // its own, which is what exec shows).
    let host = c.kubectl(&[
        "exec",
        &solo_pod,
        "--",
        "printenv",
        "KUBERNETES_SERVICE_HOST",
    ]);
    assert_eq!(host.trim(), "10.96.0.1");
    let port = c.kubectl(&[
        "exec",
        &solo_pod,
        "--",
        "printenv",
        "KUBERNETES_SERVICE_PORT",
    ]);
    assert_eq!(port.trim(), "443");

    // Hairpin: a Pod reaching its own Service lands on itself and answers.
    c.apply(&service(
        "solo",
        "solo",
        "  type: NodePort\n",
        "  - port: 80\n    targetPort: http\n    nodePort: 30080\n",
    ));
    let solo_ip = c.jsonpath(&["get", "svc", "solo"], "{.spec.clusterIP}");
    let answer = eventually(20, "hairpin", || {
        c.curl_from_pod(&solo_pod, &format!("http://{solo_ip}"))
    });
    assert_eq!(
        Cluster::host_of(&answer).as_deref(),
        Some(solo_pod.as_str())
    );

    // NodePort on every node: the master and the worker without the Pod.
    for (node, ip) in NODE_IPS {
        let answer = eventually(20, &format!("NodePort 30080 on {node}"), || {
            let out = Command::new("curl")
                .args(["-s", "-m", "3", &format!("http://{ip}:30080")])
                .output()
                .unwrap();
            let body = String::from_utf8_lossy(&out.stdout).into_owned();
            body.contains(&solo_pod).then_some(body)
        });
        assert!(
            answer.contains("host: "),
            "{node} (Pod on {solo_node}): {answer}"
        );
    }
    // An explicit nodePort that is taken is refused, naming the field.
    let clash = {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            file.path(),
            service(
                "clash",
                "solo",
                "  type: NodePort\n",
                "  - port: 80\n    nodePort: 30080\n",
            ),
        )
        .unwrap();
        c.run_kubectl(&["apply", "-f", file.path().to_str().unwrap()])
    };
    assert!(!clash.status.success());
    let why = String::from_utf8_lossy(&clash.stderr);
    assert!(
        why.contains("spec.ports[0].nodePort")
            && why.contains("30080")
            && why.contains("already allocated"),
        "{why}"
    );

    // Session affinity: many requests from one Pod hit one backend.
    c.apply(&service(
        "sticky",
        "echo",
        "  sessionAffinity: ClientIP\n",
        "  - port: 80\n    targetPort: 8080\n",
    ));
    let sticky_ip = c.jsonpath(&["get", "svc", "sticky"], "{.spec.clusterIP}");
    let mut hosts = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let answer = eventually(20, "sticky answers", || {
            c.curl_from_pod(&solo_pod, &format!("http://{sticky_ip}"))
        });
        hosts.extend(Cluster::host_of(&answer));
    }
    assert_eq!(
        hosts.len(),
        1,
        "ClientIP affinity keeps one backend: {hosts:?}"
    );

    // externalTrafficPolicy Local: the client's IP is preserved, and only
    // nodes with a local endpoint answer (the master has none).
    c.apply(&service(
        "local",
        "echo",
        "  type: NodePort\n  externalTrafficPolicy: Local\n",
        "  - port: 80\n    targetPort: 8080\n    nodePort: 30081\n",
    ));
    for (node, ip) in NODE_IPS {
        let has_local = echo.iter().any(|(_, n)| n == node);
        if has_local {
            let answer = eventually(20, &format!("ETP Local on {node}"), || {
                let out = Command::new("curl")
                    .args(["-s", "-m", "3", &format!("http://{ip}:30081")])
                    .output()
                    .unwrap();
                let body = String::from_utf8_lossy(&out.stdout).into_owned();
                body.contains("host: ").then_some(body)
            });
            assert_eq!(
                client_of(&answer).as_deref(),
                Some("192.168.56.1"),
                "the VM host's address is preserved: {answer}"
            );
        } else {
            let out = Command::new("curl")
                .args(["-s", "-m", "2", &format!("http://{ip}:30081")])
                .output()
                .unwrap();
            assert!(
                !out.status.success(),
                "{node} has no local endpoint and must not answer"
            );
        }
    }

    // A Service without endpoints refuses at once, never a timeout.
    c.apply(&service(
        "empty",
        "nothing-has-this-label",
        "",
        "  - port: 80\n",
    ));
    let empty_ip = c.jsonpath(&["get", "svc", "empty"], "{.spec.clusterIP}");
    let url = format!("http://{empty_ip}");
    eventually(20, "the empty Service's reject rule", || {
        let out = c.on_node("kl-worker1", &["curl", "-s", "-m", "5", &url]);
        // curl exit 7: connection refused (a timeout would be 28).
        (out.status.code() == Some(7)).then_some(())
    });

    // UDP: the echo server answers datagrams on its port.
    c.apply(&service(
        "echo-udp",
        "echo",
        "",
        "  - port: 5353\n    targetPort: 8080\n    protocol: UDP\n",
    ));
    let udp_ip = c.jsonpath(&["get", "svc", "echo-udp"], "{.spec.clusterIP}");
    // bash's /dev/udp sends one datagram; dd reads the one answer whole.
    let script = format!(
        "exec 3<>/dev/udp/{udp_ip}/5353; printf ping >&3; timeout 2 dd bs=4096 count=1 <&3 2>/dev/null"
    );
    let answer = eventually(20, "a UDP answer", || {
        let out = c.run_kubectl(&["exec", &solo_pod, "--", "bash", "-c", &script]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    assert!(answer.contains("host: echo-"), "{answer}");

    // A node agent restart under a stream of requests from that node: no
    // request fails (the rules stay in the kernel while the agent is away).
    let echo_ip = {
        c.apply(&service(
            "echo",
            "echo",
            "",
            "  - port: 80\n    targetPort: 8080\n",
        ));
        c.jsonpath(&["get", "svc", "echo"], "{.spec.clusterIP}")
    };
    eventually(20, "the echo Service", || {
        let out = c.on_node(
            "kl-worker1",
            &["curl", "-s", "-m", "2", &format!("http://{echo_ip}")],
        );
        out.status.success().then_some(())
    });
    let stream_script = format!(
        "f=0; i=0; while [ $i -lt 150 ]; do curl -s -m 2 -o /dev/null http://{echo_ip} || f=$((f+1)); i=$((i+1)); sleep 0.02; done; echo failures=$f"
    );
    let stream = std::thread::spawn(move || {
        Command::new("ip")
            .args(["netns", "exec", "kl-worker1", "sh", "-c", &stream_script])
            .output()
            .unwrap()
    });
    std::thread::sleep(Duration::from_millis(500));
    let agent = c.lab.pid("nodeagent-kl-worker1").expect("agent");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(agent), None);
    e2e::lab::up(&c.lab.options).expect("restart the agent");
    let out = stream.join().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "failures=0",
        "requests during the agent restart"
    );

    // Drift: someone flushes the table; the agent puts it back.
    let flushed = c.on_node("kl-worker2", &["nft", "flush", "table", "ip", "kube-lite"]);
    assert!(flushed.status.success());
    eventually(90, "the rules repaired after a flush", || {
        let out = c.on_node(
            "kl-worker2",
            &["curl", "-s", "-m", "2", &format!("http://{echo_ip}")],
        );
        String::from_utf8_lossy(&out.stdout)
            .contains("host: echo-")
            .then_some(())
    });

    // DNS follows the API: a new Service's name resolves from a Pod (the
    // time it took is printed, not asserted).
    c.apply(&service(
        "late",
        "echo",
        "",
        "  - port: 80\n    targetPort: 8080\n",
    ));
    let created = Instant::now();
    let late_ip = c.jsonpath(&["get", "svc", "late"], "{.spec.clusterIP}");
    let resolved = eventually(10, "the new Service's name", || {
        let out = c.run_kubectl(&["exec", &solo_pod, "--", "getent", "hosts", "late"]);
        String::from_utf8_lossy(&out.stdout)
            .starts_with(&late_ip)
            .then(|| created.elapsed())
    });
    eprintln!("a new Service resolved {resolved:?} after its creation");

    // kube-proxy's metrics on every node's port 10249: syncs happened and
    // the network programming latency was observed.
    for (node, ip) in NODE_IPS {
        let out = Command::new("curl")
            .args(["-s", "-m", "3", &format!("http://{ip}:10249/metrics")])
            .output()
            .unwrap();
        let metrics = String::from_utf8_lossy(&out.stdout);
        assert!(metrics.contains("kubeproxy_services"), "{node}: {metrics}");
        for name in [
            "kubeproxy_sync_proxy_rules_duration_seconds_count",
            "kubeproxy_network_programming_duration_seconds_count",
        ] {
            let count: f64 = metrics
                .lines()
                .find_map(|l| {
                    l.strip_prefix(name)?
                        .split_whitespace()
                        .last()?
                        .parse()
                        .ok()
                })
                .unwrap_or_else(|| panic!("{node}: no {name} in\n{metrics}"));
            // kl-worker1's agent restarted above and has seen no endpoint
            // change since (the initial sync has no trigger to measure from).
            let must_have_seen = name.contains("sync_proxy_rules") || node != "kl-worker1";
            assert!(!must_have_seen || count >= 1.0, "{node}: {name} = {count}");
        }
    }

    c.lab.down().expect("lab down");
}
