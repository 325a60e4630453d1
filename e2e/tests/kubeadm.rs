//! `kubeadm-lite` on the lab (issue 13): the lab itself is built with
//! `init` on kl-master and the printed join command on the workers, so
//! these tests look at what that did, then at what must be refused and at
//! `reset`. Every kubeadm-lite here runs inside a lab node's network
//! namespace, as on a VM. Needs root; takes the lab lock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use e2e::harness::{bin_dir, ensure_built, eventually, kubectl};
use e2e::lab::{node_command, node_layout, Lab, LabOptions, Node};

struct Cluster {
    dir: tempfile::TempDir,
    lab: Lab,
    options: LabOptions,
}

fn node(name: &str) -> Node {
    Node::all(2)
        .into_iter()
        .find(|n| n.name == name)
        .expect("a lab node")
}

impl Cluster {
    /// A lab of kl-master and kl-worker1.
    fn up() -> Cluster {
        Cluster::with_workers(1)
    }

    fn with_workers(workers: usize) -> Cluster {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the kubeadm-lite tests build a lab of network namespaces and must run as root"
        );
        ensure_built(&["apiserver", "controller", "nodeagent", "e2e"]);
        let dir = tempfile::tempdir().unwrap();
        let options = LabOptions {
            workers,
            dir: dir.path().join("lab"),
            bin_dir: bin_dir(),
        };
        let lab = Lab::up(options.clone()).expect("lab up");
        Cluster { dir, lab, options }
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(kubectl())
            .arg("--kubeconfig")
            .arg(self.lab.kubeconfig())
            .args(args)
            .output()
            .expect("kubectl")
    }

    fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// `kubeadm-lite ARGS` on the lab node `on`.
    fn kubeadm(&self, on: &str, args: &[&str]) -> Output {
        node_command(&node(on), bin_dir().join("kubeadm-lite"))
            .unwrap()
            .args(args)
            .output()
            .expect("kubeadm-lite")
    }

    /// A fresh join command, made on the master as a teacher would.
    fn join_command(&self) -> Vec<String> {
        let root = self.options.dir.join("kl-master").display().to_string();
        let out = self.kubeadm(
            "kl-master",
            &["token", "create", "--print-join-command", "--root", &root],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let command = text(&out.stdout);
        assert!(
            command.starts_with("kubeadm-lite join 192.168.56.10:6443 --token "),
            "{command}"
        );
        command
            .split_whitespace()
            .skip(1)
            .map(String::from)
            .collect()
    }

    /// A root on kl-worker1 that no join has used.
    fn spare_root(&self) -> PathBuf {
        self.dir.path().join("spare")
    }

    /// `kubeadm-lite join ARGS` on kl-worker1 as a new VM would run it:
    /// named kl-spare, on the spare root, without systemd.
    fn join_spare(&self, args: &[String]) -> Output {
        let root = self.spare_root().display().to_string();
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend(["--node-name", "kl-spare", "--root", &root, "--no-systemd"]);
        self.kubeadm("kl-worker1", &all)
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.options.dir.join("logs").join(name)).unwrap_or_default()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

/// Every file under `dir` with its contents.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut all = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                all.insert(path.clone(), std::fs::read(&path).unwrap_or_default());
            }
        }
    }
    all
}

/// The words of the first line of docs/vms.md that starts with `start`
/// (a command continued with `\` included).
fn documented(start: &str) -> Vec<String> {
    let page = std::fs::read_to_string(e2e::harness::workspace_root().join("docs/vms.md")).unwrap();
    let mut lines = page.lines().skip_while(|l| !l.starts_with(start));
    let mut command = String::new();
    for line in lines.by_ref() {
        command.push_str(line.trim().trim_end_matches('\\'));
        command.push(' ');
        if !line.trim_end().ends_with('\\') {
            break;
        }
    }
    assert!(!command.is_empty(), "docs/vms.md has no `{start}` command");
    command.split_whitespace().map(String::from).collect()
}

#[test]
fn the_lab_follows_docs_vms_md_init_and_the_printed_join_command() {
    let c = Cluster::with_workers(2);
    let init = c.log("kubeadm-kl-master.log");
    // The lab ran the documented init, adding only what a namespace needs.
    let ran: Vec<&str> = init
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let doc = documented("kubeadm-lite init ");
    assert_eq!(ran[..2], ["$", "kubeadm-lite"]);
    for pair in doc[2..].chunks(2) {
        let at = ran
            .iter()
            .position(|w| *w == pair[0])
            .unwrap_or_else(|| panic!("init without {}", pair[0]));
        assert_eq!(ran[at + 1], pair[1], "{}", pair[0]);
    }
    assert!(
        init.contains("Your kube-lite control plane has initialized successfully!"),
        "{init}"
    );
    // The join command has the documented form and was run as printed.
    let printed = init
        .lines()
        .find(|l| l.starts_with("kubeadm-lite join "))
        .expect("init printed a join command");
    let printed_words: Vec<&str> = printed.split_whitespace().collect();
    let doc = documented("kubeadm-lite join ");
    assert_eq!(printed_words.len(), doc.len(), "{printed}");
    for (word, documented) in printed_words.iter().zip(&doc) {
        if documented.starts_with("--")
            || documented.contains(':') && !documented.starts_with("sha256:")
        {
            assert_eq!(word, documented);
        }
    }
    for worker in ["kl-worker1", "kl-worker2"] {
        let log = c.log(&format!("kubeadm-{worker}.log"));
        assert!(
            log.starts_with(&format!("$ {printed} ")),
            "{worker} ran: {}",
            log.lines().next().unwrap_or_default()
        );
        assert!(log.contains("This node has joined the cluster"), "{log}");
    }
    let nodes = c.kubectl_ok(&["get", "nodes", "--no-headers", "-o", "wide"]);
    let ready: Vec<(&str, &str)> = nodes
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w[1], w[5])
        })
        .collect();
    assert_eq!(
        ready,
        [
            ("Ready", "192.168.56.10"),
            ("Ready", "192.168.56.11"),
            ("Ready", "192.168.56.12")
        ],
        "{nodes}"
    );
}

#[test]
fn a_joined_worker_got_its_certificates_through_csrs() {
    let c = Cluster::up();
    let join = c.log("kubeadm-kl-worker1.log");
    assert!(join.contains("This node has joined the cluster"), "{join}");
    assert!(
        join.contains("Using node IP 192.168.56.11"),
        "the NAT address trap: {join}"
    );
    // The worker's certificates came through CSRs, approved and signed.
    let csrs = c.kubectl_ok(&["get", "csr", "--no-headers"]);
    let rows: Vec<Vec<&str>> = csrs
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{csrs}");
    assert!(rows.iter().all(|r| r[5] == "Approved,Issued"), "{csrs}");
    assert!(
        rows.iter()
            .any(|r| r[2] == "kubernetes.io/kube-apiserver-client-kubelet"
                && r[3].starts_with("system:bootstrap:")),
        "{csrs}"
    );
    assert!(
        rows.iter()
            .any(|r| r[2] == "kubernetes.io/kubelet-serving" && r[3] == "system:node:kl-worker1"),
        "{csrs}"
    );
    // The worker acts as its node, and its port's certificate is one the
    // apiserver trusts (it checks it against the cluster CA).
    let worker = node_layout(&c.options.dir, &node("kl-worker1"));
    let whoami = Command::new(kubectl())
        .arg("--kubeconfig")
        .arg(worker.nodeagent_conf())
        .args([
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ])
        .output()
        .unwrap();
    assert_eq!(
        text(&whoami.stdout),
        "system:node:kl-worker1",
        "{}",
        text(&whoami.stderr)
    );
    assert!(
        !worker.ca_key().exists(),
        "the CA key must stay on the master"
    );
    let healthz = c.kubectl_ok(&["get", "--raw", "/api/v1/nodes/kl-worker1/proxy/healthz"]);
    assert_eq!(healthz, "ok");
}

#[test]
fn a_wrong_ca_hash_is_refused_and_nothing_is_written() {
    let c = Cluster::up();
    let mut args = c.join_command();
    let at = args
        .iter()
        .position(|a| a == "--discovery-token-ca-cert-hash")
        .unwrap();
    args[at + 1] = format!("sha256:{}", "0".repeat(64));
    let root = c.spare_root();
    let out = c.join_spare(&args);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(
            "cluster CA found in cluster-info ConfigMap is invalid: none of the public keys"
        ),
        "{}",
        text(&out.stderr)
    );
    assert!(!root.exists(), "a refused join wrote {}", root.display());
}

#[test]
fn an_expired_token_is_refused_with_what_to_do() {
    let c = Cluster::up();
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: bootstrap-token-oldtkn, namespace: kube-system}}\ntype: bootstrap.kubernetes.io/token\ndata:\n  token-id: {}\n  token-secret: {}\n  usage-bootstrap-authentication: {}\n  auth-extra-groups: {}\n  expiration: {}\n",
        b64("oldtkn"),
        b64("0123456789abcdef"),
        b64("true"),
        b64("system:bootstrappers:kubeadm:default-node-token"),
        b64("2026-01-01T00:00:00Z"),
    );
    let applied = {
        use std::io::Write as _;
        let mut child = Command::new(kubectl())
            .arg("--kubeconfig")
            .arg(c.lab.kubeconfig())
            .args(["apply", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(secret.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    assert!(applied.status.success(), "{}", text(&applied.stderr));
    let mut args = c.join_command();
    let at = args.iter().position(|a| a == "--token").unwrap();
    args[at + 1] = "oldtkn.0123456789abcdef".into();
    let root = c.spare_root();
    let out = c.join_spare(&args);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(
            "the bootstrap token was refused (401 Unauthorized): it has expired or was deleted. \
             On the master, `kubeadm-lite token create --print-join-command` makes a new join command."
        ),
        "{}",
        text(&out.stderr)
    );
    assert!(!root.exists(), "a refused join wrote {}", root.display());
}

#[test]
fn bad_input_names_the_flag_before_anything_is_written() {
    let c = Cluster::up();
    let good = c.join_command();
    let root = c.spare_root();
    let root_arg = root.display().to_string();
    let with = |change: &dyn Fn(&mut Vec<String>)| -> String {
        let mut args = good.clone();
        change(&mut args);
        let out = c.join_spare(&args);
        assert!(!out.status.success(), "{args:?} was accepted");
        text(&out.stderr)
    };
    let set = |flag: &'static str, value: &'static str| {
        move |args: &mut Vec<String>| match args.iter().position(|a| a == flag) {
            Some(at) => args[at + 1] = value.into(),
            None => args.extend([flag.to_string(), value.to_string()]),
        }
    };
    let token = with(&set("--token", "not-a-token"));
    assert!(
        token.starts_with("error: --token: \"not-a-token\" is not a bootstrap token"),
        "{token}"
    );
    let ip = with(&set("--node-ip", "192.168.56.99"));
    assert!(
        ip.starts_with(
            "error: --node-ip: 192.168.56.99 is not an address of this machine (it has "
        ),
        "{ip}"
    );
    let nat = with(&set("--node-ip", "10.0.2.15"));
    assert!(
        nat.starts_with("error: --node-ip: 10.0.2.15 is VirtualBox's NAT address"),
        "{nat}"
    );
    let unreachable = with(&|args: &mut Vec<String>| args[1] = "192.168.56.99:6443".into());
    assert!(
        unreachable.starts_with(
            "error: API_SERVER_ENDPOINT: cannot reach the apiserver at 192.168.56.99:6443"
        ),
        "{unreachable}"
    );
    assert!(!root.exists(), "a refused join wrote {}", root.display());
    let init = c.kubeadm(
        "kl-worker1",
        &[
            "init",
            "--node-ip",
            "192.168.56.11",
            "--service-cidr",
            "10.244.0.0/16",
            "--root",
            &root_arg,
            "--no-systemd",
        ],
    );
    assert!(
        text(&init.stderr).starts_with(
            "error: --service-cidr: 10.244.0.0/16 overlaps --pod-network-cidr 10.244.0.0/16"
        ),
        "{}",
        text(&init.stderr)
    );
    assert!(!root.exists(), "a refused init wrote {}", root.display());
}

#[test]
fn init_and_join_twice_change_nothing() {
    let c = Cluster::up();
    let master = node_layout(&c.options.dir, &node("kl-master"));
    let worker = node_layout(&c.options.dir, &node("kl-worker1"));
    let before = (
        files(&master.etc()),
        files(&worker.etc()),
        files(&master.units_dir()),
    );
    let root = c.options.dir.join("kl-master").display().to_string();
    let again = c.kubeadm(
        "kl-master",
        &[
            "init",
            "--node-ip",
            "192.168.56.10",
            "--node-name",
            "kl-master",
            "--root",
            &root,
            "--no-systemd",
        ],
    );
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(
        text(&again.stdout).contains("This VM is already a kube-lite master"),
        "{}",
        text(&again.stdout)
    );
    let mut join = c.join_command();
    let root = c.options.dir.join("kl-worker1").display().to_string();
    join.extend(["--node-name", "kl-worker1", "--root", &root, "--no-systemd"].map(String::from));
    let join: Vec<&str> = join.iter().map(String::as_str).collect();
    let again = c.kubeadm("kl-worker1", &join);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(
        text(&again.stdout).contains("This VM has already joined"),
        "{}",
        text(&again.stdout)
    );
    let after = (
        files(&master.etc()),
        files(&worker.etc()),
        files(&master.units_dir()),
    );
    assert!(before == after, "a second init or join changed files");
}

#[test]
fn reset_takes_a_worker_out_and_leaves_nothing_behind_and_it_can_join_again() {
    let c = Cluster::up();
    // A Pod on the worker, so that reset has Pods to remove.
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers: [{name: echo, image: kube-lite/echo}]\n";
    std::fs::write(c.dir.path().join("web.yml"), deployment).unwrap();
    c.kubectl_ok(&[
        "apply",
        "-f",
        &c.dir.path().join("web.yml").display().to_string(),
    ]);
    eventually(60, "the Pod running on kl-worker1", || {
        let pods = text(
            &c.kubectl(&[
                "get",
                "pods",
                "-l",
                "app=web",
                "--field-selector=status.phase=Running",
                "-o",
                "name",
            ])
            .stdout,
        );
        (!pods.is_empty()).then_some(())
    });
    // Stop the node agent, as `systemctl stop` would (the lab runs it).
    c.lab
        .stop("nodeagent-kl-worker1")
        .expect("the worker's agent");
    let worker = node_layout(&c.options.dir, &node("kl-worker1"));
    let root = c.options.dir.join("kl-worker1").display().to_string();
    let reset = c.kubeadm("kl-worker1", &["reset", "--root", &root, "--no-systemd"]);
    assert!(
        reset.status.success(),
        "{}\n{}",
        text(&reset.stdout),
        text(&reset.stderr)
    );
    assert!(
        text(&reset.stdout).contains("Deleted Node kl-worker1"),
        "{}",
        text(&reset.stdout)
    );

    let gone = c.kubectl(&["get", "node", "kl-worker1"]);
    assert!(
        text(&gone.stderr).contains("NotFound"),
        "{}",
        text(&gone.stderr)
    );
    for path in [worker.etc(), worker.var(), worker.unit("nodeagent")] {
        assert!(!path.exists(), "{} left", path.display());
    }
    let in_worker = |args: &[&str]| {
        let out = node_command(&node("kl-worker1"), args[0])
            .unwrap()
            .args(&args[1..])
            .output()
            .unwrap();
        (out.status.success(), text(&out.stdout))
    };
    assert!(!in_worker(&["ip", "link", "show", "cni0"]).0, "cni0 left");
    assert!(
        !in_worker(&["nft", "list", "table", "ip", "kube-lite"]).0,
        "the nft table left"
    );
    let routes = in_worker(&["ip", "-4", "route", "show"]).1;
    assert!(!routes.contains("10.244."), "Pod routes left:\n{routes}");
    // Its Pod went through containerd (as `crictl rmp -af`): no sandbox
    // network namespace is left under containerd's state.
    assert!(
        text(&reset.stdout).contains("Removed Pod default/web-"),
        "{}",
        text(&reset.stdout)
    );
    let netns_dir = worker
        .containerd_state()
        .join("io.containerd.grpc.v1.cri/netns");
    let left: Vec<_> = std::fs::read_dir(&netns_dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "Pod network namespaces left: {left:?}");
    // Its Pod, bound to a Node that no longer exists, is collected (after
    // the Pod garbage collector's 40 s quarantine).
    eventually(90, "the Pod of the removed node to be deleted", || {
        let on_worker = text(
            &c.kubectl(&[
                "get",
                "pods",
                "--field-selector=spec.nodeName=kl-worker1",
                "-o",
                "name",
            ])
            .stdout,
        );
        on_worker.is_empty().then_some(())
    });

    // The same VM joins again with a new join command.
    let mut join = c.join_command();
    join.extend(["--node-name", "kl-worker1", "--root", &root, "--no-systemd"].map(String::from));
    let join: Vec<&str> = join.iter().map(String::as_str).collect();
    let mut child = node_command(&node("kl-worker1"), bin_dir().join("kubeadm-lite"))
        .unwrap()
        .args(&join)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // join waits for the Node to be Ready: start its unit once written.
    eventually(60, "the new unit", || {
        worker.unit("nodeagent").exists().then_some(())
    });
    e2e::lab::start_unit(&c.options, &node("kl-worker1"), "nodeagent").unwrap();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    use std::io::Read as _;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{stderr}");
    eventually(60, "kl-worker1 Ready again", || {
        text(
            &c.kubectl(&["get", "node", "kl-worker1", "--no-headers"])
                .stdout,
        )
        .contains(" Ready ")
        .then_some(())
    });
}

#[test]
fn reset_on_the_master_removes_the_cluster_and_leaves_nothing_behind() {
    let c = Cluster::up();
    // Stop its units' processes, as `systemctl stop` would.
    for component in ["apiserver", "controller", "nodeagent-kl-master"] {
        c.lab.stop(component).expect(component);
    }
    let master = node_layout(&c.options.dir, &node("kl-master"));
    let root = c.options.dir.join("kl-master").display().to_string();
    let reset = c.kubeadm("kl-master", &["reset", "--root", &root, "--no-systemd"]);
    assert!(
        reset.status.success(),
        "{}\n{}",
        text(&reset.stdout),
        text(&reset.stderr)
    );
    for path in [
        master.etc(),
        master.var(),
        master.unit("apiserver"),
        master.unit("controller"),
        master.unit("nodeagent"),
    ] {
        assert!(!path.exists(), "{} left", path.display());
    }
    let in_master = |args: &[&str]| {
        node_command(&node("kl-master"), args[0])
            .unwrap()
            .args(&args[1..])
            .output()
            .unwrap()
    };
    assert!(
        !in_master(&["ip", "link", "show", "cni0"]).status.success(),
        "cni0 left"
    );
    assert!(
        !in_master(&["nft", "list", "table", "ip", "kube-lite"])
            .status
            .success(),
        "the nft table left"
    );
    let routes = text(&in_master(&["ip", "-4", "route", "show"]).stdout);
    assert!(!routes.contains("10.244."), "Pod routes left:\n{routes}");
}
