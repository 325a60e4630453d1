//! The lesson with the real kubectl (v1.35) against the real apiserver:
//! apply with kubectl's default `--validate=strict`, get, describe, scale,
//! the NodePort switch, and delete. What a student types on a real cluster
//! must work here unchanged.

mod common;

use std::process::Output;

use common::{kubectl, workspace_root, ApiServer};

struct Kubectl {
    server: String,
    home: tempfile::TempDir,
}

impl Kubectl {
    fn new(server: &str) -> Kubectl {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("config"), "").unwrap();
        Kubectl {
            server: server.to_string(),
            home,
        }
    }

    /// Runs kubectl with a private discovery cache; asserts success and
    /// returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {} failed:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn run(&self, args: &[&str]) -> Output {
        std::process::Command::new(kubectl())
            .arg("--server")
            .arg(&self.server)
            .arg("--cache-dir")
            .arg(self.home.path().join("cache"))
            .args(args)
            .env("KUBECONFIG", self.home.path().join("config"))
            .env("HOME", self.home.path())
            .output()
            .expect("running kubectl")
    }
}

fn lesson(file: &str) -> String {
    workspace_root()
        .join("examples/lesson")
        .join(file)
        .display()
        .to_string()
}

#[test]
fn the_lesson_with_the_real_kubectl() {
    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::start(dir.path());
    let k = Kubectl::new(&server.url);

    let out = k.ok(&[
        "apply",
        "-f",
        &lesson("ngx-conf.yml"),
        "-f",
        &lesson("ngx-dep.yml"),
        "-f",
        &lesson("ngx-svc.yml"),
    ]);
    assert_eq!(
        out,
        "configmap/ngx-conf created\ndeployment.apps/ngx-dep created\nservice/ngx-svc created\n"
    );
    let out = k.ok(&["apply", "-f", &lesson("all-in-one.yml")]);
    assert_eq!(
        out,
        "configmap/ngx-conf unchanged\ndeployment.apps/ngx-dep unchanged\nservice/ngx-svc unchanged\n"
    );

    // get svc: TYPE ClusterIP, an IP from 10.96.0.0/12, 80/TCP.
    let out = k.ok(&["get", "svc"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("NAME      TYPE        CLUSTER-IP"),
        "{out}"
    );
    let cols: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        (cols[0], cols[1], cols[3], cols[4]),
        ("ngx-svc", "ClusterIP", "<none>", "80/TCP")
    );
    let ip: std::net::Ipv4Addr = cols[2].parse().unwrap();
    assert!(
        ip.octets()[0] == 10 && (96..112).contains(&ip.octets()[1]),
        "{ip}"
    );

    // describe svc reads EndpointSlices: none until the controller exists.
    let out = k.ok(&["describe", "svc", "ngx-svc"]);
    assert!(
        out.contains("Selector:                 app=ngx-dep"),
        "{out}"
    );
    assert!(
        out.contains(&format!("IP:                       {ip}")),
        "{out}"
    );
    assert!(out.contains("TargetPort:               80/TCP"), "{out}");
    assert!(out.contains("Endpoints:                <none>"), "{out}");

    let out = k.ok(&["get", "deploy", "ngx-dep", "-o", "wide"]);
    assert!(
        out.contains("nginx:alpine") && out.contains("app=ngx-dep"),
        "{out}"
    );
    assert_eq!(
        k.ok(&["scale", "deploy", "ngx-dep", "--replicas=5"]),
        "deployment.apps/ngx-dep scaled\n"
    );
    assert!(k
        .ok(&["describe", "deploy", "ngx-dep"])
        .contains("5 desired"));

    // The NodePort step keeps the ClusterIP and opens a port in range.
    assert_eq!(
        k.ok(&["apply", "-f", &lesson("ngx-svc-nodeport.yml")]),
        "service/ngx-svc configured\n"
    );
    let out = k.ok(&[
        "get",
        "svc",
        "ngx-svc",
        "-o",
        "jsonpath={.spec.type} {.spec.clusterIP} {.spec.ports[0].nodePort}",
    ]);
    let parts: Vec<&str> = out.split(' ').collect();
    assert_eq!(parts[0], "NodePort");
    assert_eq!(
        parts[1],
        ip.to_string(),
        "the ClusterIP is static for the Service's life"
    );
    let node_port: u16 = parts[2].parse().unwrap();
    assert!((30000..=32767).contains(&node_port));
    assert!(k
        .ok(&["get", "svc"])
        .contains(&format!("80:{node_port}/TCP")));

    // Namespaces of a fresh cluster.
    let out = k.ok(&["get", "ns", "-o", "name"]);
    assert_eq!(
        out,
        "namespace/default\nnamespace/kube-node-lease\nnamespace/kube-public\nnamespace/kube-system\n"
    );

    // Delete everything; errors come back as kubectl prints them.
    let out = k.ok(&["delete", "-f", &lesson("all-in-one.yml")]);
    assert!(out.contains("service \"ngx-svc\" deleted"), "{out}");
    let missing = k.run(&["get", "svc", "ngx-svc"]);
    assert!(!missing.status.success());
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr).trim(),
        "Error from server (NotFound): services \"ngx-svc\" not found"
    );
}
