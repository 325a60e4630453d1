//! The course around the Services lesson, with the real kubectl 1.35 on a
//! lab of a master and two workers (issue 12): what a teacher shows next
//! to Services. Needs root; takes the lab lock.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use e2e::harness::{bin_dir, ensure_built, eventually, kubectl};
use e2e::lab::{Lab, LabOptions};

struct Course {
    _dir: tempfile::TempDir,
    lab: Lab,
}

impl Course {
    fn up() -> Course {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the course test builds a lab of network namespaces and must run as root"
        );
        ensure_built(&["apiserver", "controller", "nodeagent", "e2e"]);
        let dir = tempfile::tempdir().unwrap();
        let lab = Lab::up(LabOptions {
            workers: 2,
            dir: dir.path().join("lab"),
            bin_dir: bin_dir(),
        })
        .expect("lab up");
        let course = Course { _dir: dir, lab };
        eventually(60, "3 Ready nodes", || {
            let out = course.kubectl(&["get", "nodes", "--no-headers"]);
            (out.matches(" Ready ").count() == 3).then_some(())
        });
        course
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        use std::io::Write as _;
        let mut child = Command::new(kubectl())
            .arg("--kubeconfig")
            .arg(self.lab.kubeconfig())
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        child.wait_with_output().expect("kubectl")
    }

    /// The real kubectl, which must succeed; its stdout.
    fn kubectl(&self, args: &[&str]) -> String {
        let out = self.run(args, None);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn apply(&self, manifest: &str) {
        let out = self.run(&["apply", "-f", "-"], Some(manifest));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The nodes of the Running Pods with a label.
    fn running_on(&self, selector: &str) -> Vec<String> {
        let out = self.kubectl(&[
            "get",
            "pods",
            "-l",
            selector,
            "--field-selector=status.phase=Running",
            "-o",
            "jsonpath={range .items[*]}{.spec.nodeName}{\"\\n\"}{end}",
        ]);
        out.lines().map(str::to_string).collect()
    }
}

fn echo_deployment(name: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      terminationGracePeriodSeconds: 2\n      containers:\n      - name: echo\n        image: kube-lite/echo\n"
    )
}

#[test]
fn kubectl_drain_evicts_a_nodes_pods_and_they_come_back_elsewhere() {
    let course = Course::up();
    course.apply(&echo_deployment("web", 4));
    let nodes = eventually(90, "4 running Pods on both workers", || {
        let nodes = course.running_on("app=web");
        (nodes.len() == 4 && nodes.iter().any(|n| n == "kl-worker1")).then_some(nodes)
    });
    assert!(
        nodes.iter().all(|n| n.starts_with("kl-worker")),
        "{nodes:?}"
    );

    let drained = course.kubectl(&[
        "drain",
        "kl-worker1",
        "--ignore-daemonsets",
        "--force",
        "--timeout=90s",
    ]);
    assert!(drained.contains("evicting pod default/web-"), "{drained}");
    assert!(drained.contains("node/kl-worker1 drained"), "{drained}");
    assert_eq!(
        course.kubectl(&[
            "get",
            "node",
            "kl-worker1",
            "-o",
            "jsonpath={.spec.unschedulable}"
        ]),
        "true"
    );
    // The Deployment's new Pods go where they may: kl-worker2.
    eventually(90, "4 running Pods on kl-worker2", || {
        let nodes = course.running_on("app=web");
        (nodes.len() == 4 && nodes.iter().all(|n| n == "kl-worker2")).then_some(())
    });
    course.kubectl(&["uncordon", "kl-worker1"]);
    course.kubectl(&["delete", "deployment", "web"]);
    course.lab.down().expect("lab down");
}

const AGENT: &str = "
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      terminationGracePeriodSeconds: 2
      containers: [{name: echo, image: kube-lite/echo}]
";

#[test]
fn a_daemonset_runs_one_pod_per_worker_follows_taints_and_rolls_out() {
    let course = Course::up();
    course.apply(AGENT);
    course.kubectl(&["rollout", "status", "ds/agent", "--timeout=90s"]);
    // A worker the controller saw before its first Ready gets its agent a
    // moment later (a not-ready node takes no new daemon Pods).
    eventually(60, "an agent on each worker, none on the master", || {
        let mut nodes = course.running_on("app=agent");
        nodes.sort();
        (nodes == ["kl-worker1", "kl-worker2"]).then_some(())
    });

    // A NoExecute taint it does not tolerate takes the Pod away; without
    // it the node gets one again.
    course.kubectl(&["taint", "node", "kl-worker2", "dedicated=db:NoExecute"]);
    eventually(60, "the agent gone from kl-worker2", || {
        (course.running_on("app=agent") == ["kl-worker1"]).then_some(())
    });
    course.kubectl(&["taint", "node", "kl-worker2", "dedicated=db:NoExecute-"]);
    eventually(60, "the agent back on kl-worker2", || {
        (course.running_on("app=agent").len() == 2).then_some(())
    });

    // A new template rolls out node by node.
    course.kubectl(&["set", "env", "ds/agent", "MODE=v2"]);
    course.kubectl(&["rollout", "status", "ds/agent", "--timeout=120s"]);
    let env = course.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=agent",
        "-o",
        "jsonpath={range .items[*]}{.spec.containers[0].env[0].value}{\" \"}{end}",
    ]);
    assert_eq!(env.trim(), "v2 v2");
    // Each template is a revision; undo goes back to the first.
    let history = course.kubectl(&["rollout", "history", "ds/agent"]);
    assert!(
        history.contains("\n1 ") && history.contains("\n2 "),
        "{history}"
    );
    course.kubectl(&["rollout", "undo", "ds/agent"]);
    course.kubectl(&["rollout", "status", "ds/agent", "--timeout=120s"]);
    eventually(60, "the first template back on every agent", || {
        let env = course.kubectl(&[
            "get",
            "pods",
            "-l",
            "app=agent",
            "-o",
            "jsonpath={range .items[*]}{.spec.containers[0].env}{\"|\"}{end}",
        ]);
        (env.trim() == "||").then_some(())
    });
    let table = course.kubectl(&["get", "ds", "agent", "--no-headers"]);
    let columns: Vec<&str> = table.split_whitespace().collect();
    assert_eq!(&columns[..6], ["agent", "2", "2", "2", "2", "2"], "{table}");
    course.kubectl(&["delete", "ds", "agent"]);
    course.lab.down().expect("lab down");
}

/// A Job whose first run fails: the kubelet restarts the container in its
/// Pod (OnFailure), the second run finds the mark the first one left in
/// the Pod's emptyDir and succeeds.
const RETRY_JOB: &str = "
apiVersion: batch/v1
kind: Job
metadata: {name: retry}
spec:
  backoffLimit: 3
  template:
    spec:
      restartPolicy: OnFailure
      volumes: [{name: scratch, emptyDir: {}}]
      containers:
      - name: work
        image: busybox
        volumeMounts: [{name: scratch, mountPath: /scratch}]
        command: [sh, -c, 'if [ -f /scratch/tried ]; then echo done on the second try; else touch /scratch/tried; echo failing once; exit 1; fi']
";

#[test]
fn a_job_retries_a_failing_pod_and_completes() {
    let course = Course::up();
    course.apply(RETRY_JOB);
    course.kubectl(&[
        "wait",
        "--for=condition=complete",
        "job/retry",
        "--timeout=90s",
    ]);
    let row = course.kubectl(&["get", "job", "retry", "--no-headers"]);
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&columns[..3], ["retry", "Complete", "1/1"], "{row}");
    assert_eq!(
        course.kubectl(&["logs", "job/retry"]).trim(),
        "done on the second try"
    );
    let restarts = course.kubectl(&[
        "get",
        "pods",
        "-l",
        "batch.kubernetes.io/job-name=retry",
        "-o",
        "jsonpath={.items[0].status.containerStatuses[0].restartCount}",
    ]);
    assert_eq!(restarts, "1");

    // The imperative way, in protobuf: kubectl create job.
    course.kubectl(&[
        "create",
        "job",
        "hello",
        "--image=busybox",
        "--",
        "echo",
        "hello",
    ]);
    course.kubectl(&[
        "wait",
        "--for=condition=complete",
        "job/hello",
        "--timeout=60s",
    ]);
    assert_eq!(course.kubectl(&["logs", "job/hello"]).trim(), "hello");
    course.lab.down().expect("lab down");
}

const TICK: &str = "
apiVersion: batch/v1
kind: CronJob
metadata: {name: tick}
spec:
  schedule: '*/1 * * * *'
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: tick, image: busybox, command: [echo, tick]}]
";

#[test]
fn a_cronjob_fires_on_its_minute_and_a_job_can_be_made_from_it() {
    let course = Course::up();
    course.apply(TICK);
    // Made by hand from the template, as kubectl does it.
    course.kubectl(&["create", "job", "by-hand", "--from=cronjob/tick"]);
    course.kubectl(&[
        "wait",
        "--for=condition=complete",
        "job/by-hand",
        "--timeout=60s",
    ]);
    assert_eq!(course.kubectl(&["logs", "job/by-hand"]).trim(), "tick");
    // The schedule's next minute (bounded: at most 60 s away, plus the run).
    let job = eventually(90, "a Job made by the schedule", || {
        let names = course.kubectl(&[
            "get",
            "jobs",
            "-o",
            "jsonpath={range .items[?(@.metadata.ownerReferences[0].kind==\"CronJob\")]}{.metadata.name}{\"\\n\"}{end}",
        ]);
        names
            .lines()
            .find(|n| n.starts_with("tick-"))
            .map(str::to_string)
    });
    course.kubectl(&[
        "wait",
        "--for=condition=complete",
        &format!("job/{job}"),
        "--timeout=60s",
    ]);
    let minutes: i64 = job.trim_start_matches("tick-").parse().unwrap();
    let scheduled = course.kubectl(&[
        "get",
        "job",
        &job,
        "-o",
        "jsonpath={.metadata.annotations.batch\\.kubernetes\\.io/cronjob-scheduled-timestamp}",
    ]);
    let scheduled: k8s_openapi::jiff::Timestamp = scheduled.parse().unwrap();
    assert_eq!(scheduled.as_second(), minutes * 60, "named by its minute");
    let row = course.kubectl(&["get", "cronjob", "tick", "--no-headers"]);
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&columns[..4], ["tick", "*/1", "*", "*"], "{row}");
    course.kubectl(&["delete", "cronjob", "tick"]);
    course.lab.down().expect("lab down");
}

/// A StatefulSet of two echo Pods behind its headless Service.
const WEB: &str = "
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{port: 8080}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: web
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 2
      containers: [{name: echo, image: kube-lite/echo}]
";

#[test]
fn a_statefulset_makes_named_pods_in_order_that_resolve_by_name() {
    let course = Course::up();
    course.apply(WEB);
    course.kubectl(&["rollout", "status", "sts/web", "--timeout=120s"]);
    let names = course.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}{\" \"}{end}",
    ]);
    let mut names: Vec<&str> = names.split_whitespace().collect();
    names.sort();
    assert_eq!(names, ["web-0", "web-1"]);
    // OrderedReady: web-1 was made only once web-0 was Ready.
    let ready_at = course.kubectl(&[
        "get",
        "pod",
        "web-0",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].lastTransitionTime}",
    ]);
    let created_at = course.kubectl(&[
        "get",
        "pod",
        "web-1",
        "-o",
        "jsonpath={.metadata.creationTimestamp}",
    ]);
    assert!(
        created_at >= ready_at,
        "web-1 at {created_at}, web-0 Ready at {ready_at}"
    );
    let table = course.kubectl(&["get", "sts", "web", "--no-headers"]);
    assert!(table.starts_with("web   2/2"), "{table}");

    // Each Pod has a name in DNS through the headless Service.
    let ip = course.kubectl(&["get", "pod", "web-0", "-o", "jsonpath={.status.podIP}"]);
    let record = "web-0.web.default.svc.cluster.local";
    let resolved = eventually(30, "web-0's DNS name", || {
        let out = course.run(&["exec", "web-1", "--", "getent", "hosts", record], None);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.starts_with(&ip).then_some(text)
    });
    assert!(resolved.contains(record), "{resolved}");

    // A new template rolls out from the highest ordinal down, and the
    // history keeps both versions.
    course.kubectl(&["set", "env", "sts/web", "MODE=v2"]);
    course.kubectl(&["rollout", "status", "sts/web", "--timeout=120s"]);
    let env = course.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={range .items[*]}{.spec.containers[0].env[0].value}{\" \"}{end}",
    ]);
    assert_eq!(env.trim(), "v2 v2");
    let history = course.kubectl(&["rollout", "history", "sts/web"]);
    assert!(
        history.contains("\n1 ") && history.contains("\n2 "),
        "{history}"
    );
    course.kubectl(&["rollout", "undo", "sts/web"]);
    course.kubectl(&["rollout", "status", "sts/web", "--timeout=120s"]);
    let env = course.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={range .items[*]}{.spec.containers[0].env}{end}",
    ]);
    assert_eq!(env.trim(), "", "back to the first template");

    // Scaling down removes the highest ordinal.
    course.kubectl(&["scale", "sts/web", "--replicas=1"]);
    eventually(60, "web-1 gone, web-0 kept", || {
        let out = course.kubectl(&["get", "pods", "-l", "app=web", "--no-headers"]);
        (out.lines().count() == 1 && out.starts_with("web-0 ")).then_some(())
    });
    course.kubectl(&["delete", "sts", "web"]);
    course.kubectl(&["delete", "svc", "web"]);
    course.lab.down().expect("lab down");
}

/// Server-side apply on the lab: the lesson's Deployment applied by the
/// server, a scale by hand is a conflict the next apply names, and
/// `--force-conflicts` takes the field back; the controller's status
/// writes are recorded as its own.
#[test]
fn server_side_apply_names_the_conflict_with_a_scale_and_forces_it() {
    let course = Course::up();
    let manifest = echo_deployment("web", 2);
    let apply = |extra: &[&str]| {
        course.run(
            &[&["apply", "--server-side", "-f", "-"], extra].concat(),
            Some(&manifest),
        )
    };
    let out = apply(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    course.kubectl(&["rollout", "status", "deploy/web", "--timeout=90s"]);
    course.kubectl(&["scale", "deploy/web", "--replicas=3"]);
    let out = apply(&[]);
    assert!(!out.status.success(), "the apply must conflict");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains(
            "Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\""
        ),
        "{err}"
    );
    let out = apply(&["--force-conflicts"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    course.kubectl(&["rollout", "status", "deploy/web", "--timeout=90s"]);
    let managers = course.kubectl(&[
        "get",
        "deploy",
        "web",
        "--show-managed-fields",
        "-o",
        "jsonpath={range .metadata.managedFields[*]}{.manager}/{.operation}/{.subresource}{\" \"}{end}",
    ]);
    let mut managers: Vec<&str> = managers.split_whitespace().collect();
    managers.sort();
    // As on a real cluster: the controller owns the revision annotation
    // and the status; the scale's entry went with its only field.
    assert_eq!(
        managers,
        [
            "kube-controller-manager/Update/",
            "kube-controller-manager/Update/status",
            "kubectl/Apply/"
        ],
    );
    let object: serde_json::Value = serde_json::from_str(&course.kubectl(&[
        "get",
        "deploy",
        "web",
        "--show-managed-fields",
        "-o",
        "json",
    ]))
    .unwrap();
    let controller = object["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "kube-controller-manager" && e.get("subresource").is_none())
        .unwrap();
    assert_eq!(
        controller["fieldsV1"],
        serde_json::json!({"f:metadata": {"f:annotations": {
            ".": {}, "f:deployment.kubernetes.io/revision": {}
        }}})
    );
    assert_eq!(
        course.kubectl(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "2"
    );
    course.kubectl(&["delete", "deployment", "web"]);
    course.lab.down().expect("lab down");
}

/// `services/NAME/proxy` and `pods/NAME/proxy`, with `kubectl get --raw`
/// and through `kubectl proxy` on the host.
#[test]
fn the_apiserver_proxies_http_to_a_service_and_a_pod() {
    use std::io::{BufRead as _, Read as _, Write as _};

    let course = Course::up();
    course.apply(&echo_deployment("web", 1));
    course.kubectl(&[
        "expose",
        "deployment",
        "web",
        "--port=80",
        "--target-port=8080",
    ]);
    course.kubectl(&["rollout", "status", "deploy/web", "--timeout=90s"]);
    let pod = course.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    let via_service = eventually(30, "an answer through the Service", || {
        let out = course.run(
            &[
                "get",
                "--raw",
                "/api/v1/namespaces/default/services/web:80/proxy/hello?x=1",
            ],
            None,
        );
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    assert!(
        via_service.contains(&format!("host: {pod}")),
        "{via_service}"
    );
    assert!(via_service.contains("/hello?x=1"), "{via_service}");
    let via_pod = course.kubectl(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/default/pods/{pod}:8080/proxy/"),
    ]);
    assert!(via_pod.contains(&format!("host: {pod}")), "{via_pod}");

    // A Service without endpoints answers 503, as upstream words it.
    course.kubectl(&["create", "service", "clusterip", "empty", "--tcp=80:8080"]);
    let out = course.run(
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/default/services/empty:80/proxy/",
        ],
        None,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains("no endpoints available for service \"empty:80\""),
        "{err}"
    );

    // `kubectl proxy` on the host, then plain HTTP to it.
    let mut proxy = Started(
        Command::new(kubectl())
            .arg("--kubeconfig")
            .arg(course.lab.kubeconfig())
            .args(["proxy", "--port=0"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl proxy"),
    );
    let mut line = String::new();
    std::io::BufReader::new(proxy.0.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .trim()
        .strip_prefix("Starting to serve on ")
        .unwrap_or_else(|| panic!("kubectl proxy said {line:?}"))
        .to_string();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /api/v1/namespaces/default/services/web:80/proxy/ HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    drop(proxy);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(&format!("host: {pod}")), "{answer}");

    course.kubectl(&["delete", "deployment", "web"]);
    course.kubectl(&["delete", "service", "web", "empty"]);
    course.lab.down().expect("lab down");
}

/// Ends a process this test started (and waits for it), also when an
/// assertion fails first.
struct Started(std::process::Child);

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Course {
    /// `kubectl port-forward TARGET :PORT` in the background, and the
    /// local address it listens on.
    fn port_forward(&self, target: &str, port: u16) -> (Started, String) {
        self.port_forward_over(target, port, true)
    }

    /// The same; `websockets: false` makes kubectl speak SPDY straight
    /// (its fallback when a WebSocket upgrade is refused).
    fn port_forward_over(&self, target: &str, port: u16, websockets: bool) -> (Started, String) {
        use std::io::BufRead as _;
        let mut child = Started(
            Command::new(kubectl())
                .env("KUBECTL_PORT_FORWARD_WEBSOCKETS", websockets.to_string())
                .arg("--kubeconfig")
                .arg(self.lab.kubeconfig())
                .args(["port-forward", target, &format!(":{port}")])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("kubectl port-forward"),
        );
        let mut line = String::new();
        std::io::BufReader::new(child.0.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        // `Forwarding from 127.0.0.1:40123 -> 8080`
        let address = line
            .strip_prefix("Forwarding from ")
            .and_then(|rest| rest.split(" -> ").next())
            .unwrap_or_else(|| panic!("kubectl port-forward said {line:?}"))
            .to_string();
        (child, address)
    }
}

/// One HTTP GET over a plain TCP connection to `address`.
fn http_get(address: &str, path: &str) -> std::io::Result<String> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

#[test]
fn kubectl_port_forward_reaches_a_pod_and_a_service() {
    let course = Course::up();
    course.apply(&echo_deployment("web", 1));
    course.kubectl(&[
        "expose",
        "deployment",
        "web",
        "--port=80",
        "--target-port=8080",
    ]);
    course.kubectl(&["rollout", "status", "deploy/web", "--timeout=90s"]);
    let pod = course.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);

    // Over a WebSocket tunnel (kubectl's first choice) and over SPDY.
    for websockets in [true, false] {
        let (forwarder, address) =
            course.port_forward_over(&format!("pod/{pod}"), 8080, websockets);
        for round in 0..3 {
            let answer = http_get(&address, &format!("/round-{round}")).unwrap();
            assert!(answer.starts_with("HTTP/1.1 200"), "{websockets}: {answer}");
            assert!(answer.contains(&format!("host: {pod}")), "{answer}");
            assert!(answer.contains(&format!("/round-{round}")), "{answer}");
        }
        drop(forwarder);
    }

    // A Service: kubectl picks one of its Pods and the target port.
    let (forwarder, address) = course.port_forward("svc/web", 80);
    let answer = http_get(&address, "/via-service").unwrap();
    assert!(answer.contains(&format!("host: {pod}")), "{answer}");
    drop(forwarder);

    // Nothing listens on 9999 in the Pod: kubectl says why.
    let (mut forwarder, address) = course.port_forward(&format!("pod/{pod}"), 9999);
    let _ = http_get(&address, "/");
    drop(forwarder.0.kill());
    let mut err = String::new();
    use std::io::Read as _;
    let _ = forwarder.0.stderr.take().unwrap().read_to_string(&mut err);
    assert!(
        err.contains("an error occurred forwarding") && err.contains("connection refused"),
        "{err}"
    );
    drop(forwarder);

    course.kubectl(&["delete", "deployment", "web"]);
    course.kubectl(&["delete", "service", "web"]);
    course.lab.down().expect("lab down");
}

/// `kubectl cp` both ways: a `tar` run by exec in the container.
#[test]
fn kubectl_cp_copies_files_into_and_out_of_a_pod() {
    let course = Course::up();
    course.apply(&echo_deployment("web", 1));
    course.kubectl(&["rollout", "status", "deploy/web", "--timeout=90s"]);
    let pod = course.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("notes.txt");
    std::fs::write(&local, "kube-lite was here\n").unwrap();
    course.kubectl(&[
        "cp",
        local.to_str().unwrap(),
        &format!("{pod}:/tmp/notes.txt"),
    ]);
    let inside = course.kubectl(&["exec", &pod, "--", "cat", "/tmp/notes.txt"]);
    assert_eq!(inside, "kube-lite was here\n");
    let back = dir.path().join("back.txt");
    course.kubectl(&[
        "cp",
        &format!("{pod}:/tmp/notes.txt"),
        back.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(&back).unwrap(),
        "kube-lite was here\n"
    );
    course.kubectl(&["delete", "deployment", "web"]);
    course.lab.down().expect("lab down");
}

/// An Indexed Job: each Pod prints its index; all five succeed once.
const INDEXED: &str = "
apiVersion: batch/v1
kind: Job
metadata: {name: shards}
spec:
  completions: 5
  parallelism: 2
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: work
        image: busybox
        command: [sh, -c, 'echo shard $JOB_COMPLETION_INDEX of $(hostname)']
";

#[test]
fn an_indexed_job_runs_each_index_once() {
    let course = Course::up();
    course.apply(INDEXED);
    course.kubectl(&[
        "wait",
        "--for=condition=complete",
        "job/shards",
        "--timeout=120s",
    ]);
    assert_eq!(
        course.kubectl(&[
            "get",
            "job",
            "shards",
            "-o",
            "jsonpath={.status.completedIndexes}"
        ]),
        "0-4"
    );
    let pods = course.kubectl(&[
        "get",
        "pods",
        "-l",
        "batch.kubernetes.io/job-name=shards",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}",
    ]);
    let mut lines = Vec::new();
    for pod in pods.lines() {
        lines.push(course.kubectl(&["logs", pod]).trim().to_string());
    }
    lines.sort();
    let expected: Vec<String> = (0..5).map(|i| format!("shard {i} of shards-{i}")).collect();
    assert_eq!(lines, expected);
    course.kubectl(&["delete", "job", "shards"]);
    course.lab.down().expect("lab down");
}

/// `kubectl run -i --rm`: a Pod whose container reads what the user types,
/// attached to, then deleted; `kubectl attach` to a running one.
#[test]
fn kubectl_run_i_rm_and_attach_reach_the_containers_stdin() {
    let course = Course::up();
    let out = course.run(
        &[
            "run",
            "asker",
            "--rm",
            "-i",
            "--restart=Never",
            "--image=busybox",
            "--pod-running-timeout=90s",
            "--",
            "sh",
            "-c",
            "read line; echo got $line",
        ],
        Some("hello\n"),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("got hello"), "{stdout}{stderr}");
    assert!(stdout.contains("pod \"asker\" deleted"), "{stdout}{stderr}");

    // A Pod that keeps reading: attach, say something, detach.
    course.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: echoer}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: busybox\n    stdin: true\n    command: [sh, -c, 'while read line; do echo heard $line; done']\n",
    );
    eventually(60, "echoer running", || {
        let phase = course.kubectl(&["get", "pod", "echoer", "-o", "jsonpath={.status.phase}"]);
        (phase == "Running").then_some(())
    });
    // `kubectl attach -i` stays until the user leaves (as on a real
    // cluster): read until both answers came, then end it.
    let mut attach = Started(
        Command::new(kubectl())
            .arg("--kubeconfig")
            .arg(course.lab.kubeconfig())
            .args(["attach", "echoer", "-i"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl attach"),
    );
    {
        use std::io::{BufRead as _, Write as _};
        let mut stdin = attach.0.stdin.take().unwrap();
        let stdout = attach.0.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        // The session may start after the first line is typed: type until heard.
        let mut heard = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        for word in ["one", "two"] {
            loop {
                writeln!(stdin, "{word}").unwrap();
                if let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) {
                    heard.push(line.clone());
                    if line == format!("heard {word}") {
                        break;
                    }
                }
                assert!(Instant::now() < deadline, "attach heard only {heard:?}");
            }
        }
    }
    drop(attach);
    // Still running: attach does not end the container.
    assert_eq!(
        course.kubectl(&["get", "pod", "echoer", "-o", "jsonpath={.status.phase}"]),
        "Running"
    );
    course.kubectl(&["delete", "pod", "echoer"]);
    course.lab.down().expect("lab down");
}

/// `kubectl run -it --rm ... -- sh` on a terminal (`script` gives kubectl
/// one): the shell runs on the container's terminal, echoes what is typed
/// and answers; leaving it deletes the Pod.
#[test]
fn kubectl_run_it_rm_gives_a_shell_on_a_terminal() {
    let course = Course::up();
    let command = format!(
        "{} --kubeconfig {} run shell --rm -it --restart=Never --image=busybox --pod-running-timeout=90s -- sh",
        kubectl().display(),
        course.lab.kubeconfig().display()
    );
    let mut child = Started(
        Command::new("script")
            .args(["-q", "-e", "-c", &command, "/dev/null"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("script (util-linux)"),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::Read as _;
        let mut stdout = stdout;
        let mut buffer = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buffer) {
            if n == 0 || tx.send(buffer[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let mut stdin = child.0.stdin.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    // Type until the shell answers (the first keys may come before attach).
    while !seen.contains("answer-42") {
        use std::io::Write as _;
        let _ = stdin.write_all(b"echo answer-$((40+2))\r");
        let _ = stdin.flush();
        while let Ok(chunk) = rx.recv_timeout(Duration::from_millis(700)) {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        assert!(
            Instant::now() < deadline,
            "no answer on the terminal:\n{seen}"
        );
    }
    {
        use std::io::Write as _;
        let _ = stdin.write_all(b"exit\r");
    }
    let until = Instant::now() + Duration::from_secs(60);
    while !seen.contains("pod \"shell\" deleted") && Instant::now() < until {
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(500)) {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    assert!(seen.contains("pod \"shell\" deleted"), "{seen}");
    drop(child);
    course.lab.down().expect("lab down");
}

/// A node leaving takes its daemon Pod with it; the node coming back (its
/// agent registers it again) gets a new one.
#[test]
fn a_daemonset_follows_a_node_leaving_and_joining() {
    let course = Course::up();
    course.apply(AGENT);
    let on_worker2 = || {
        course.kubectl(&[
            "get",
            "pods",
            "-l",
            "app=agent",
            "--field-selector=spec.nodeName=kl-worker2,status.phase=Running",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ])
    };
    let before = eventually(90, "an agent on kl-worker2", || {
        let name = on_worker2();
        (!name.is_empty() && !name.contains(' ')).then_some(name)
    });
    let node_uid = course.kubectl(&[
        "get",
        "node",
        "kl-worker2",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    course.kubectl(&["delete", "node", "kl-worker2"]);
    // The agent registers its node again (a new object), and the
    // DaemonSet gives the node a new Pod; the old one went with the node.
    let after = eventually(120, "a new agent on the node registered again", || {
        let uid = course.run(
            &[
                "get",
                "node",
                "kl-worker2",
                "-o",
                "jsonpath={.metadata.uid}",
            ],
            None,
        );
        let uid = String::from_utf8_lossy(&uid.stdout).into_owned();
        let name = on_worker2();
        (!uid.is_empty() && uid != node_uid && !name.is_empty() && name != before).then_some(name)
    });
    eventually(
        60,
        &format!("the old Pod {before} gone (new: {after})"),
        || {
            let old = course.run(&["get", "pod", &before], None);
            (!old.status.success()).then_some(())
        },
    );
    course.kubectl(&["delete", "ds", "agent"]);
    course.lab.down().expect("lab down");
}
