//! The CNI plugin (`kube-lite-cni`) run as a runtime runs it: a process
//! with `CNI_*` variables and the configuration on stdin, against the real
//! kernel (run as root).
//!
//! Each test makes a namespace that plays the node (`kl-cnitest-<pid>-<test>`)
//! and runs the plugin inside it with `ip netns exec`, so `cni0` and the
//! veths are made there and never on the host. Pod namespaces
//! (`kl-cnitest-<pid>-<test>-<n>`) are made by the test, as containerd makes
//! them; the [`Node`] guard deletes all of them, also when a test panics.
//! Traffic (ping) flows only between those namespaces.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

struct Node {
    netns: String,
    pods: Vec<String>,
    data: tempfile::TempDir,
    subnet: String,
}

/// What one plugin call printed, and whether it exited 0.
struct Call {
    ok: bool,
    stdout: Value,
    stderr: String,
}

impl Node {
    fn create(test: &str) -> Node {
        Node::with_subnet(test, "10.244.1.0/24")
    }

    fn with_subnet(test: &str, subnet: &str) -> Node {
        assert!(
            nix::unistd::Uid::effective().is_root(),
            "the CNI tests need root (namespaces, links)"
        );
        let netns = format!("kl-cnitest-{}-{test}", std::process::id());
        ip(&["netns", "add", &netns]);
        ip(&["-n", &netns, "link", "set", "lo", "up"]);
        Node {
            netns,
            pods: Vec::new(),
            data: tempfile::tempdir().unwrap(),
            subnet: subnet.to_string(),
        }
    }

    /// A Pod namespace, made the way containerd makes one.
    fn pod_netns(&mut self) -> String {
        let name = format!("{}-{}", self.netns, self.pods.len());
        ip(&["netns", "add", &name]);
        self.pods.push(name.clone());
        name
    }

    /// The plugin's entry as libcni passes it: the list's name and
    /// version copied in.
    fn conf(&self) -> Value {
        json!({
            "cniVersion": "1.0.0",
            "name": "kube-lite",
            "type": "kube-lite",
            "bridge": "cni0",
            "ipam": { "subnet": self.subnet, "dataDir": self.data.path() },
        })
    }

    fn ipam_dir(&self) -> PathBuf {
        self.data.path().join("kube-lite")
    }

    /// Runs the plugin in the node namespace.
    fn cni(&self, command: &str, container: &str, pod_netns: Option<&str>, conf: &Value) -> Call {
        let mut env = vec![
            ("CNI_COMMAND", command.to_string()),
            ("CNI_CONTAINERID", container.to_string()),
            ("CNI_IFNAME", "eth0".to_string()),
            ("CNI_PATH", "/usr/lib/cni".to_string()),
            (
                "CNI_ARGS",
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web".to_string(),
            ),
        ];
        if let Some(pod) = pod_netns {
            env.push(("CNI_NETNS", format!("/run/netns/{pod}")));
        }
        self.run_plugin(&env, &conf.to_string())
    }

    fn run_plugin(&self, env: &[(&str, String)], stdin: &str) -> Call {
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.netns,
                env!("CARGO_BIN_EXE_kube-lite-cni"),
            ])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running kube-lite-cni");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let stdout = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {text}"))
        };
        Call {
            ok: output.status.success(),
            stdout,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn add(&mut self, container: &str) -> (String, Value) {
        let pod = self.pod_netns();
        let call = self.cni("ADD", container, Some(&pod), &self.conf());
        assert!(call.ok, "ADD failed: {} {}", call.stdout, call.stderr);
        (pod, call.stdout)
    }

    fn in_node(&self, args: &[&str]) -> String {
        ip(&[&["-n", self.netns.as_str()], args].concat())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for name in self.pods.iter().chain([&self.netns]) {
            let _ = Command::new("ip").args(["netns", "delete", name]).output();
        }
    }
}

fn ip(args: &[&str]) -> String {
    let output = Command::new("ip").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn ping(from: &str, target: &str) -> bool {
    (0..3).any(|_| {
        Command::new("ip")
            .args(["netns", "exec", from, "ping", "-c1", "-W1", target])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn address_of(result: &Value) -> String {
    result["ips"][0]["address"].as_str().unwrap().to_string()
}

#[test]
fn version_lists_the_spec_versions_it_speaks() {
    let node = Node::create("version");
    let call = node.run_plugin(
        &[("CNI_COMMAND", "VERSION".to_string())],
        r#"{"cniVersion":"1.0.0"}"#,
    );
    assert!(call.ok, "{}", call.stderr);
    assert_eq!(
        call.stdout,
        json!({
            "cniVersion": "1.0.0",
            "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
        })
    );
}

#[test]
fn add_plugs_the_pod_into_the_bridge_and_reports_it() {
    let mut node = Node::create("add");
    let (pod, result) = node.add("sandbox1");
    assert_eq!(result["cniVersion"], "1.0.0");
    let interfaces = result["interfaces"].as_array().unwrap();
    assert_eq!(interfaces.len(), 3, "{result}");
    assert_eq!(interfaces[0]["name"], "cni0");
    let host_veth = interfaces[1]["name"].as_str().unwrap();
    assert!(host_veth.starts_with("veth"), "{result}");
    assert_eq!(interfaces[2]["name"], "eth0");
    assert_eq!(interfaces[2]["sandbox"], format!("/run/netns/{pod}"));
    assert_eq!(
        result["ips"],
        json!([{"address": "10.244.1.2/24", "gateway": "10.244.1.1", "interface": 2}])
    );
    assert_eq!(
        result["routes"],
        json!([{"dst": "0.0.0.0/0", "gw": "10.244.1.1"}])
    );
    // What the result says is what the kernel has.
    let eth0 = ip(&["-n", &pod, "-o", "-4", "addr", "show", "dev", "eth0"]);
    assert!(eth0.contains("inet 10.244.1.2/24"), "{eth0}");
    let mac = ip(&["-n", &pod, "-o", "link", "show", "eth0"]);
    assert!(
        mac.contains(interfaces[2]["mac"].as_str().unwrap()),
        "{mac}"
    );
    let default = ip(&["-n", &pod, "route", "show", "default"]);
    assert!(default.contains("via 10.244.1.1 dev eth0"), "{default}");
    let port = node.in_node(&["-d", "-o", "link", "show", host_veth]);
    assert!(port.contains("master cni0"), "{port}");
    assert!(port.contains("hairpin on"), "{port}");
    let bridge = node.in_node(&["-o", "-4", "addr", "show", "dev", "cni0"]);
    assert!(bridge.contains("inet 10.244.1.1/24"), "{bridge}");
    assert!(ping(&pod, "10.244.1.1"), "the Pod reaches its gateway");
    // IPAM recorded the attachment under <dataDir>/<network name>.
    let owner = std::fs::read_to_string(node.ipam_dir().join("10.244.1.2")).unwrap();
    assert_eq!(owner, "sandbox1/eth0");
}

#[test]
fn add_again_for_the_same_sandbox_changes_nothing() {
    let mut node = Node::create("again");
    let (pod, first) = node.add("sandbox1");
    let again = node.cni("ADD", "sandbox1", Some(&pod), &node.conf());
    assert!(again.ok, "{}", again.stdout);
    assert_eq!(again.stdout, first);
    let addresses = ip(&["-n", &pod, "-o", "-4", "addr", "show", "dev", "eth0"]);
    assert_eq!(addresses.lines().count(), 1, "{addresses}");
}

#[test]
fn pods_on_one_bridge_reach_each_other() {
    let mut node = Node::create("pair");
    let (pod_a, a) = node.add("sandboxa");
    let (pod_b, b) = node.add("sandboxb");
    assert_eq!(address_of(&a), "10.244.1.2/24");
    assert_eq!(address_of(&b), "10.244.1.3/24");
    assert!(ping(&pod_a, "10.244.1.3"));
    assert!(ping(&pod_b, "10.244.1.2"));
}

#[test]
fn parallel_adds_never_share_an_address() {
    let mut node = Node::create("parallel");
    let pods: Vec<String> = (0..8).map(|_| node.pod_netns()).collect();
    let node = &node;
    let addresses: Vec<String> = std::thread::scope(|scope| {
        let calls: Vec<_> = pods
            .iter()
            .enumerate()
            .map(|(i, pod)| {
                scope
                    .spawn(move || node.cni("ADD", &format!("sandbox{i}"), Some(pod), &node.conf()))
            })
            .collect();
        calls
            .into_iter()
            .map(|call| {
                let call = call.join().unwrap();
                assert!(call.ok, "{} {}", call.stdout, call.stderr);
                address_of(&call.stdout)
            })
            .collect()
    });
    let distinct: std::collections::HashSet<_> = addresses.iter().collect();
    assert_eq!(distinct.len(), 8, "{addresses:?}");
}

#[test]
fn del_gives_the_address_back_and_removes_the_pair() {
    let mut node = Node::create("del");
    let (pod, result) = node.add("sandbox1");
    let host_veth = result["interfaces"][1]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let call = node.cni("DEL", "sandbox1", Some(&pod), &node.conf());
    assert!(call.ok, "{}", call.stdout);
    assert_eq!(call.stdout, Value::Null, "DEL prints nothing");
    assert!(!node.ipam_dir().join("10.244.1.2").exists());
    assert!(!node.in_node(&["-o", "link", "show"]).contains(&host_veth));
    assert!(!ip(&["-n", &pod, "-o", "link", "show"]).contains("eth0"));
}

#[test]
fn del_of_what_is_gone_succeeds() {
    let mut node = Node::create("delgone");
    let (pod, _) = node.add("sandbox1");
    // The runtime removed the namespace first, then retries DEL twice.
    ip(&["netns", "delete", &pod]);
    for _ in 0..2 {
        let call = node.cni("DEL", "sandbox1", None, &node.conf());
        assert!(call.ok, "{} {}", call.stdout, call.stderr);
    }
    assert!(!node.ipam_dir().join("10.244.1.2").exists());
    let never_added = node.cni("DEL", "nosuchsandbox", None, &node.conf());
    assert!(never_added.ok, "{}", never_added.stdout);
}

#[test]
fn check_passes_after_add_and_names_what_is_missing() {
    let mut node = Node::create("check");
    let (pod, result) = node.add("sandbox1");
    let mut conf = node.conf();
    conf["prevResult"] = result;
    let call = node.cni("CHECK", "sandbox1", Some(&pod), &conf);
    assert!(call.ok, "{}", call.stdout);
    ip(&["-n", &pod, "link", "del", "eth0"]);
    let call = node.cni("CHECK", "sandbox1", Some(&pod), &conf);
    assert!(!call.ok);
    assert_eq!(call.stdout["code"], 100);
    assert!(
        call.stdout["msg"]
            .as_str()
            .unwrap()
            .contains("eth0 is missing"),
        "{}",
        call.stdout
    );
}

#[test]
fn bad_configuration_and_environment_get_cni_errors() {
    let mut node = Node::create("bad");
    let pod = node.pod_netns();
    let mut conf = node.conf();
    conf["ipam"]["subnet"] = json!("10.244.1.0");
    let call = node.cni("ADD", "sandbox1", Some(&pod), &conf);
    assert!(!call.ok);
    assert_eq!(call.stdout["code"], 7, "{}", call.stdout);
    assert!(call.stdout["msg"].as_str().unwrap().contains("ipam.subnet"));

    let mut conf = node.conf();
    conf["cniVersion"] = json!("2.0.0");
    let call = node.cni("ADD", "sandbox1", Some(&pod), &conf);
    assert_eq!(call.stdout["code"], 1, "{}", call.stdout);

    let call = node.cni("ADD", "sandbox1", Some("no-such-namespace"), &node.conf());
    assert_eq!(call.stdout["code"], 4, "{}", call.stdout);
    assert!(call.stdout["msg"].as_str().unwrap().contains("CNI_NETNS"));

    let call = node.run_plugin(&[("CNI_COMMAND", "ADD".to_string())], "{}");
    assert_eq!(call.stdout["code"], 4, "{}", call.stdout);
    assert!(call.stdout["msg"]
        .as_str()
        .unwrap()
        .contains("CNI_CONTAINERID"));

    let call = node.cni("ADD", "sandbox1", Some(&pod), &json!("not a config"));
    assert_eq!(call.stdout["code"], 6, "{}", call.stdout);
    // Nothing was allocated by any of them.
    assert!(!node.ipam_dir().join("10.244.1.2").exists());
}

#[test]
fn status_reports_a_full_range_as_not_available() {
    // A /30 has one Pod address.
    let mut node = Node::with_subnet("status", "10.244.1.0/30");
    let mut conf = node.conf();
    conf["cniVersion"] = json!("1.1.0");
    let status = node.run_plugin(&[("CNI_COMMAND", "STATUS".to_string())], &conf.to_string());
    assert!(status.ok, "{}", status.stdout);
    node.add("sandbox1");
    let status = node.run_plugin(&[("CNI_COMMAND", "STATUS".to_string())], &conf.to_string());
    assert!(!status.ok);
    assert_eq!(status.stdout["code"], 50, "{}", status.stdout);
    let pod = node.pod_netns();
    let full = node.cni("ADD", "sandbox2", Some(&pod), &node.conf());
    assert_eq!(full.stdout["code"], 101, "{}", full.stdout);
    // STATUS is a 1.1.0 command.
    let old = node.run_plugin(
        &[("CNI_COMMAND", "STATUS".to_string())],
        &node.conf().to_string(),
    );
    assert_eq!(old.stdout["code"], 1, "{}", old.stdout);
}

#[test]
fn gc_releases_attachments_the_runtime_no_longer_has() {
    let mut node = Node::create("gc");
    let (_, kept) = node.add("kept");
    let (_, gone) = node.add("gone");
    let gone_veth = gone["interfaces"][1]["name"].as_str().unwrap().to_string();
    let mut conf = node.conf();
    conf["cniVersion"] = json!("1.1.0");
    conf["cni.dev/valid-attachments"] = json!([{"containerID": "kept", "ifname": "eth0"}]);
    let call = node.run_plugin(&[("CNI_COMMAND", "GC".to_string())], &conf.to_string());
    assert!(call.ok, "{}", call.stdout);
    assert!(node
        .ipam_dir()
        .join(address_of(&kept).trim_end_matches("/24"))
        .exists());
    assert!(!node
        .ipam_dir()
        .join(address_of(&gone).trim_end_matches("/24"))
        .exists());
    assert!(!node.in_node(&["-o", "link", "show"]).contains(&gone_veth));
}

#[test]
fn the_agents_conflist_is_a_working_configuration() {
    let mut node = Node::create("conflist");
    let conf_dir = node.data.path().join("net.d");
    let cidr = nodeagent::ipam::PodCidr::parse("10.244.1.0/24").unwrap();
    let written =
        nodeagent::cni::config::write_conflist(&conf_dir, cidr, node.data.path()).unwrap();
    assert!(written);
    assert!(!nodeagent::cni::config::write_conflist(&conf_dir, cidr, node.data.path()).unwrap());
    let list: Value = serde_json::from_str(
        &std::fs::read_to_string(conf_dir.join("10-kube-lite.conflist")).unwrap(),
    )
    .unwrap();
    // libcni: each plugin gets its entry with the list's name and version.
    let mut entry = list["plugins"][0].clone();
    entry["name"] = list["name"].clone();
    entry["cniVersion"] = list["cniVersion"].clone();
    let pod = node.pod_netns();
    let call = node.cni("ADD", "sandbox1", Some(&pod), &entry);
    assert!(call.ok, "{}", call.stdout);
    assert_eq!(address_of(&call.stdout), "10.244.1.2/24");
}
