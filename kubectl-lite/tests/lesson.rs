//! The Services lesson, walked with kubectl-lite against a real kube-lite
//! API server (no controller, no nodes: Deployments get no Pods, so
//! Services have no endpoints).
//!
//! Each test starts its own `apiserver` binary on a free loopback port with
//! a temporary data directory, runs the `kubectl-lite` binary as a student
//! would, and checks what it prints and its exit code. The API server is
//! stopped by PID when the test ends, also when it fails.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The lesson's manifests: the repo's copy in `examples/lesson/`.
fn lesson_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/lesson")
}

fn lesson_file(name: &str) -> String {
    lesson_dir().join(name).display().to_string()
}

/// A running API server (the e2e harness stops it by PID when dropped),
/// with a scratch directory for manifests and a private HOME.
struct ApiServer {
    /// Kept for its Drop: the process lives as long as this value.
    _process: e2e::harness::ApiServer,
    url: String,
    dir: tempfile::TempDir,
}

impl ApiServer {
    fn start() -> ApiServer {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let process = e2e::harness::ApiServer::start(&dir.path().join("data"));
        ApiServer {
            url: process.url.clone(),
            _process: process,
            dir,
        }
    }

    /// Runs `kubectl-lite --server <url> args...` with no kubeconfig.
    fn kubectl(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("running kubectl-lite")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kubectl-lite"));
        command
            .arg("--server")
            .arg(&self.url)
            .args(args)
            .env("KUBECONFIG", self.dir.path().join("no-kubeconfig"))
            .env("HOME", self.dir.path());
        command
    }

    /// Runs kubectl-lite and insists on success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl-lite {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Runs kubectl-lite and insists on exit code 1; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "kubectl-lite {args:?} should fail: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).expect("utf-8 output")
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("writing a manifest");
        path.display().to_string()
    }
}

/// The cells of the table row for `name` (first column).
fn row<'a>(table: &'a str, name: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&name))
        .unwrap_or_else(|| panic!("no row {name} in:\n{table}"))
}

/// A ClusterIP from the default service range 10.96.0.0/12.
fn in_service_range(ip: &str) -> bool {
    let octets: Vec<u8> = ip.split('.').filter_map(|o| o.parse().ok()).collect();
    octets.len() == 4 && octets[0] == 10 && (96..112).contains(&octets[1])
}

#[test]
fn lesson_walk() {
    let cluster = ApiServer::start();

    // Step 2: create everything from the three files.
    assert_eq!(
        cluster.ok(&[
            "apply",
            "-f",
            &lesson_file("ngx-conf.yml"),
            "-f",
            &lesson_file("ngx-dep.yml"),
            "-f",
            &lesson_file("ngx-svc.yml"),
        ]),
        "configmap/ngx-conf created\ndeployment.apps/ngx-dep created\nservice/ngx-svc created\n"
    );
    // The same objects from the all-in-one file: nothing to do.
    assert_eq!(
        cluster.ok(&["apply", "-f", &lesson_file("all-in-one.yml")]),
        "configmap/ngx-conf unchanged\ndeployment.apps/ngx-dep unchanged\nservice/ngx-svc unchanged\n"
    );

    // Step 1 (needs the Deployment): the Service template kubectl 1.35 prints.
    assert_eq!(
        cluster.ok(&[
            "expose",
            "deploy",
            "ngx-dep",
            "--port=80",
            "--target-port=80",
            "--dry-run=client",
            "-o",
            "yaml",
        ]),
        "apiVersion: v1
kind: Service
metadata:
  name: ngx-dep
spec:
  ports:
  - port: 80
    protocol: TCP
    targetPort: 80
  selector:
    app: ngx-dep
status:
  loadBalancer: {}
"
    );

    // Step 3: a ClusterIP from the service range, port 80/TCP.
    let services = cluster.ok(&["get", "svc"]);
    let lines: Vec<&str> = services.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    let ngx = row(&services, "ngx-svc");
    assert_eq!(ngx[1], "ClusterIP");
    assert!(in_service_range(ngx[2]), "{services}");
    assert_eq!(&ngx[3..5], ["<none>", "80/TCP"]);
    let cluster_ip = ngx[2].to_string();
    // Columns line up: every cell starts where its header does.
    let age_column = lines[0].find("AGE").unwrap();
    assert_eq!(&lines[1][age_column - 3..age_column], "   ");

    // The last-applied annotation is kubectl's exact text.
    let yaml = cluster.ok(&["get", "svc", "ngx-svc", "-o", "yaml"]);
    assert!(yaml.starts_with("apiVersion: v1\nkind: Service\nmetadata:\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: |\n      {\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"annotations\":{},\"name\":\"ngx-svc\",\"namespace\":\"default\"},\"spec\":{\"ports\":[{\"port\":80,\"protocol\":\"TCP\",\"targetPort\":80}],\"selector\":{\"app\":\"ngx-dep\"}}}\n"), "{yaml}");
    assert!(
        yaml.contains(&format!("  clusterIP: {cluster_ip}\n")),
        "{yaml}"
    );

    // Step 4 without Pods: the Service has no endpoints yet.
    assert_eq!(
        cluster.ok(&["describe", "svc", "ngx-svc"]),
        format!(
            "Name:                     ngx-svc
Namespace:                default
Labels:                   <none>
Annotations:              <none>
Selector:                 app=ngx-dep
Type:                     ClusterIP
IP Family Policy:         SingleStack
IP Families:              IPv4
IP:                       {cluster_ip}
IPs:                      {cluster_ip}
Port:                     <unset>  80/TCP
TargetPort:               80/TCP
Endpoints:                <none>
Session Affinity:         None
Internal Traffic Policy:  Cluster
Events:                   <none>
"
        )
    );

    // Editing a manifest and re-applying patches only what changed.
    let edited = std::fs::read_to_string(lesson_file("ngx-svc.yml"))
        .unwrap()
        .replace(
            "  selector:\n",
            "  sessionAffinity: ClientIP\n  selector:\n",
        );
    let edited = cluster.write("ngx-svc-edited.yml", &edited);
    assert_eq!(
        cluster.ok(&["apply", "-f", &edited]),
        "service/ngx-svc configured\n"
    );
    assert!(cluster
        .ok(&["describe", "svc", "ngx-svc"])
        .contains("Session Affinity:         ClientIP\n"));

    // Step 10: NodePort keeps the ClusterIP and adds a port in 30000-32767.
    assert_eq!(
        cluster.ok(&["apply", "-f", &lesson_file("ngx-svc-nodeport.yml")]),
        "service/ngx-svc configured\n"
    );
    let services = cluster.ok(&["get", "svc"]);
    let ngx = row(&services, "ngx-svc");
    assert_eq!(ngx[1], "NodePort");
    assert_eq!(
        ngx[2], cluster_ip,
        "the ClusterIP is static for the Service's life"
    );
    let node_port: u16 = ngx[4]
        .strip_prefix("80:")
        .and_then(|p| p.strip_suffix("/TCP"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("PORT(S) {} is not 80:<nodeport>/TCP", ngx[4]));
    assert!((30000..=32767).contains(&node_port));
    assert!(cluster
        .ok(&["describe", "svc", "ngx-svc"])
        .contains(&format!(
            "NodePort:                 <unset>  {node_port}/TCP\n"
        )));

    // Step 8: scale through the scale subresource.
    assert_eq!(
        cluster.ok(&["scale", "deploy", "ngx-dep", "--replicas=5"]),
        "deployment.apps/ngx-dep scaled\n"
    );
    assert_eq!(
        cluster.ok(&["scale", "deploy/ngx-dep", "--replicas=3"]),
        "deployment.apps/ngx-dep scaled\n"
    );
    let deploy: serde_json::Value =
        serde_json::from_str(&cluster.ok(&["get", "deploy", "ngx-dep", "-o", "json"])).unwrap();
    assert_eq!(deploy["spec"]["replicas"], 3);
    // The manifest declares `replicas: 2`, so re-applying it undoes the
    // scale (apply owns the fields it declares).
    assert_eq!(
        cluster.ok(&["apply", "-f", &lesson_file("ngx-dep.yml")]),
        "deployment.apps/ngx-dep configured\n"
    );

    // Labels: add, refuse to overwrite, overwrite, remove.
    assert_eq!(
        cluster.ok(&["label", "svc", "ngx-svc", "tier=web"]),
        "service/ngx-svc labeled\n"
    );
    assert_eq!(
        cluster.fails(&["label", "svc", "ngx-svc", "tier=db"]),
        "error: 'tier' already has a value (web), and --overwrite is false\n"
    );
    assert_eq!(
        cluster.ok(&["label", "svc", "ngx-svc", "tier=db", "--overwrite"]),
        "service/ngx-svc labeled\n"
    );
    assert_eq!(
        cluster.ok(&["get", "svc", "-l", "tier=db", "-o", "name"]),
        "service/ngx-svc\n"
    );
    assert_eq!(
        cluster.ok(&["label", "svc", "ngx-svc", "tier-"]),
        "service/ngx-svc unlabeled\n"
    );
    assert_eq!(
        cluster.ok(&["annotate", "svc", "ngx-svc", "note=hello"]),
        "service/ngx-svc annotated\n"
    );

    // Several kinds at once: kind-prefixed names, a blank line between.
    let all = cluster.ok(&["get", "svc,deploy"]);
    let blocks: Vec<&str> = all.split("\n\n").collect();
    assert_eq!(blocks.len(), 2, "{all}");
    assert!(blocks[0].contains("\nservice/ngx-svc "), "{all}");
    assert!(blocks[1].starts_with("NAME                      READY   UP-TO-DATE   AVAILABLE   AGE\ndeployment.apps/ngx-dep   0/2     0            0           "), "{all}");

    // Step 11: delete everything in the file.
    assert_eq!(
        cluster.ok(&["delete", "-f", &lesson_file("all-in-one.yml")]),
        "configmap \"ngx-conf\" deleted from default namespace\n\
         deployment.apps \"ngx-dep\" deleted from default namespace\n\
         service \"ngx-svc\" deleted from default namespace\n"
    );
    let out = cluster.kubectl(&["get", "svc,deploy,cm"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "No resources found in default namespace.\n"
    );
    // Deleting again reports each missing object and fails.
    assert_eq!(
        cluster.fails(&["delete", "-f", &lesson_file("all-in-one.yml")]),
        "Error from server (NotFound): error when deleting \"".to_string()
            + &lesson_file("all-in-one.yml")
            + "\": configmaps \"ngx-conf\" not found\n"
            + "Error from server (NotFound): error when deleting \""
            + &lesson_file("all-in-one.yml")
            + "\": deployments.apps \"ngx-dep\" not found\n"
            + "Error from server (NotFound): error when deleting \""
            + &lesson_file("all-in-one.yml")
            + "\": services \"ngx-svc\" not found\n"
    );
}

#[test]
fn a_whole_directory_and_stdin_apply_too() {
    let cluster = ApiServer::start();
    let out = cluster.ok(&["apply", "-f", &lesson_dir().display().to_string()]);
    // Files in name order: all-in-one.yml, ngx-conf.yml, ngx-dep.yml,
    // ngx-svc-nodeport.yml, ngx-svc.yml.
    assert_eq!(
        out,
        "configmap/ngx-conf created\ndeployment.apps/ngx-dep created\nservice/ngx-svc created\n\
         configmap/ngx-conf unchanged\ndeployment.apps/ngx-dep unchanged\n\
         service/ngx-svc configured\nservice/ngx-svc configured\n"
    );
    let manifest =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-stdin\ndata:\n  a: b\n";
    let mut child = cluster
        .command(&["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(manifest.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "configmap/from-stdin created\n"
    );
}

#[test]
fn errors_read_like_kubectl() {
    let cluster = ApiServer::start();
    assert_eq!(
        cluster.fails(&["get", "svc", "nope"]),
        "Error from server (NotFound): services \"nope\" not found\n"
    );
    assert_eq!(
        cluster.fails(&["describe", "deploy", "nope"]),
        "Error from server (NotFound): deployments.apps \"nope\" not found\n"
    );
    assert_eq!(
        cluster.fails(&["-n", "typo", "get", "svc", "x"]),
        "Error from server (NotFound): namespaces \"typo\" not found\n"
    );
    assert_eq!(
        cluster.fails(&["get", "widgets"]),
        "error: the server doesn't have a resource type \"widgets\"\n"
    );
    let out = cluster.kubectl(&["get", "pods"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "No resources found in default namespace.\n"
    );

    // One bad document does not stop the others; the run fails at the end.
    let manifest = cluster.write(
        "mixed.yml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: good\n---\n\
         apiVersion: v1\nkind: Service\nmetadata:\n  name: typo\nspec:\n  prots:\n  - port: 80\n",
    );
    let out = cluster.kubectl(&["apply", "-f", &manifest]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "configmap/good created\n"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "Error from server (BadRequest): error when creating \"{manifest}\": "
        )),
        "{stderr}"
    );
    assert!(stderr.contains("unknown field \"spec.prots\""), "{stderr}");

    // A manifest that is not YAML names the file, document and line.
    let broken = cluster.write(
        "broken.yml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [x\n",
    );
    let stderr = cluster.fails(&["apply", "-f", &broken]);
    assert!(
        stderr.starts_with(&format!(
            "error: error parsing {broken}: document 1 (line 1): "
        )),
        "{stderr}"
    );

    // Nothing listens: kubectl's connection message.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-lite"))
        .args([
            "--server",
            &format!("http://127.0.0.1:{port}"),
            "get",
            "svc",
        ])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("The connection to the server 127.0.0.1:{port} was refused - did you specify the right host or port?\n")
    );
}

#[test]
fn kubeconfig_context_picks_server_and_namespace() {
    let cluster = ApiServer::start();
    cluster.ok(&["create", "namespace", "lesson"]);
    let config = cluster.write(
        "kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster:\n    server: {}\n\
             contexts:\n- name: lab\n  context:\n    cluster: lab\n    namespace: lesson\n    user: admin\n\
             current-context: lab\nusers:\n- name: admin\n  user: {{}}\n",
            cluster.url
        ),
    );
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_kubectl-lite"))
            .args(args)
            .env("KUBECONFIG", &config)
            .output()
            .unwrap()
    };
    let out = run(&["apply", "-f", &lesson_file("ngx-svc.yml")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["get", "svc", "-o", "name"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "service/ngx-svc\n");
    // The default namespace is empty; -A finds it in "lesson".
    let out = cluster.kubectl(&["get", "svc", "-A", "--no-headers"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("lesson "), "{text}");
    // -n on the command line wins over the context.
    let out = run(&["-n", "default", "get", "svc"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "No resources found in default namespace.\n"
    );
}

#[test]
fn create_generators_and_discovery() {
    let cluster = ApiServer::start();
    assert_eq!(
        cluster.ok(&[
            "create",
            "deployment",
            "web",
            "--image=nginx:alpine",
            "--replicas=2",
            "--port=80"
        ]),
        "deployment.apps/web created\n"
    );
    assert_eq!(
        cluster.ok(&[
            "create",
            "configmap",
            "web-conf",
            "--from-literal=mode=lesson"
        ]),
        "configmap/web-conf created\n"
    );
    assert_eq!(
        cluster.ok(&[
            "create",
            "service",
            "nodeport",
            "web-np",
            "--tcp=80:80",
            "--node-port=30080"
        ]),
        "service/web-np created\n"
    );
    assert_eq!(
        cluster.ok(&["expose", "deploy", "web", "--port=8080", "--target-port=80"]),
        "service/web exposed\n"
    );
    let services = cluster.ok(&["get", "svc", "-o", "wide"]);
    assert_eq!(row(&services, "web-np")[4], "80:30080/TCP");
    assert_eq!(row(&services, "web")[4], "8080/TCP");
    assert_eq!(row(&services, "web")[6], "app=web");
    let described = cluster.ok(&["describe", "deploy", "web"]);
    assert!(described.contains("Replicas:               2 desired | 0 updated | 0 total | 0 available | 0 unavailable\n"), "{described}");
    assert!(
        described.contains("  Containers:\n   nginx:\n    Image:         nginx:alpine\n"),
        "{described}"
    );

    let resources = cluster.ok(&["api-resources"]);
    let services_row = row(&resources, "services");
    assert_eq!(services_row, ["services", "svc", "v1", "true", "Service"]);
    assert_eq!(row(&resources, "deployments")[2], "apps/v1");

    let version = cluster.ok(&["version"]);
    assert!(
        version.starts_with("Client Version: v1.35.0+kube-lite-"),
        "{version}"
    );
    assert!(version.contains("\nServer Version: v"), "{version}");
    assert_eq!(
        cluster.ok(&["cluster-info"]).lines().next().unwrap(),
        format!("Kubernetes control plane is running at {}", cluster.url)
    );

    // Deleting by name, by label and --all.
    assert_eq!(
        cluster.ok(&["delete", "svc", "web-np"]),
        "service \"web-np\" deleted from default namespace\n"
    );
    assert_eq!(
        cluster.ok(&["delete", "svc", "-l", "app=web"]),
        "service \"web\" deleted from default namespace\n"
    );
    assert_eq!(
        cluster.ok(&["delete", "deploy", "--all"]),
        "deployment.apps \"web\" deleted from default namespace\n"
    );
}

/// Sends a JSON merge patch to the API server (plays a controller writing
/// status).
fn merge_patch(url: &str, body: &str) {
    let address = url.trim_start_matches("http://");
    let (host, path) = address.split_once('/').unwrap();
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    use std::io::{Read, Write};
    write!(
        stream,
        "PATCH /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/merge-patch+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn watch_and_rollout_status_follow_changes() {
    let cluster = ApiServer::start();
    cluster.ok(&["apply", "-f", &lesson_file("ngx-dep.yml")]);

    // get -w prints the table, then a row per change.
    let mut watch = cluster
        .command(&["get", "svc", "-w"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    cluster.ok(&["apply", "-f", &lesson_file("ngx-svc.yml")]);
    // Whether the Service came with the list or with an event, the header
    // is printed once, right before the first row.
    let header = lines.next().unwrap().unwrap();
    assert!(
        header.starts_with("NAME      TYPE        CLUSTER-IP"),
        "{header}"
    );
    let first_row = lines.next().unwrap().unwrap();
    assert!(
        first_row.starts_with("ngx-svc   ClusterIP   10."),
        "{first_row}"
    );
    cluster.ok(&["label", "svc", "ngx-svc", "watched=yes"]);
    let changed_row = lines.next().unwrap().unwrap();
    assert!(
        changed_row.starts_with("ngx-svc   ClusterIP   10."),
        "{changed_row}"
    );
    let _ = watch.kill();
    let _ = watch.wait();

    // rollout status waits for the controller's status updates.
    let mut rollout = cluster
        .command(&["rollout", "status", "deploy/ngx-dep", "--timeout=60s"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(rollout.stdout.take().unwrap()).lines();
    let status_url = format!(
        "{}/apis/apps/v1/namespaces/default/deployments/ngx-dep/status",
        cluster.url
    );
    let first = lines.next().unwrap().unwrap();
    assert!(
        first == "Waiting for deployment spec update to be observed..."
            || first == "Waiting for deployment \"ngx-dep\" rollout to finish: 0 out of 2 new replicas have been updated...",
        "{first}"
    );
    merge_patch(
        &status_url,
        r#"{"status":{"observedGeneration":1,"replicas":2,"updatedReplicas":2,"availableReplicas":1}}"#,
    );
    let mut seen = Vec::new();
    loop {
        let line = lines.next().unwrap().unwrap();
        if line.contains("1 of 2 updated replicas are available") {
            break;
        }
        seen.push(line);
        assert!(seen.len() < 5, "{seen:?}");
    }
    merge_patch(&status_url, r#"{"status":{"availableReplicas":2}}"#);
    assert_eq!(
        lines.next().unwrap().unwrap(),
        "deployment \"ngx-dep\" successfully rolled out"
    );
    let status = rollout.wait().unwrap();
    assert!(status.success());
}
