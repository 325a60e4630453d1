//! `kubectl create <kind>`: the real kubectl sends these bodies in
//! protobuf (`application/vnd.kubernetes.protobuf`), which the apiserver
//! reads with Kubernetes' own .proto definitions. Each test has its own
//! apiserver over HTTPS and the administrator's kubeconfig.

mod common;

use base64::Engine as _;
use common::{kubectl_as, text};

type Fixture = common::Secure;

fn start() -> Fixture {
    Fixture::start()
}

impl Fixture {
    /// Runs kubectl as the administrator; asserts success; stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = kubectl_as(&self.admin, args, None);
        assert!(
            out.status.success(),
            "kubectl {}: {}",
            args.join(" "),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    fn jsonpath(&self, what: &[&str], path: &str) -> String {
        let output = format!("jsonpath={path}");
        self.ok(&[what, &["-o", &output]].concat())
    }
}

fn decoded(base64: &str) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(base64)
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

#[test]
fn create_secret_generic_stores_the_literals_as_data() {
    let f = start();
    f.ok(&[
        "create",
        "secret",
        "generic",
        "db",
        "--from-literal=password=s3cret",
    ]);
    let password = f.jsonpath(&["get", "secret", "db"], "{.data.password}");
    assert_eq!(decoded(&password), "s3cret");
    assert_eq!(f.jsonpath(&["get", "secret", "db"], "{.type}"), "Opaque");
}

#[test]
fn create_secret_tls_stores_the_certificate_and_key() {
    let f = start();
    let issued = f
        .api
        .ca
        .issue(&api::pki::CertRequest::server(
            "web",
            &["web.default.svc"],
            &[],
        ))
        .unwrap();
    let cert = f.dir.path().join("web.crt");
    let key = f.dir.path().join("web.key");
    std::fs::write(&cert, &issued.cert_pem).unwrap();
    std::fs::write(&key, &issued.key_pem).unwrap();
    f.ok(&[
        "create",
        "secret",
        "tls",
        "web-tls",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(
        f.jsonpath(&["get", "secret", "web-tls"], "{.type}"),
        "kubernetes.io/tls"
    );
    let stored = f.jsonpath(&["get", "secret", "web-tls"], "{.data.tls\\.crt}");
    assert_eq!(decoded(&stored), issued.cert_pem);
}

#[test]
fn create_secret_docker_registry_stores_a_docker_config() {
    let f = start();
    f.ok(&[
        "create",
        "secret",
        "docker-registry",
        "registry",
        "--docker-server=registry.example",
        "--docker-username=student",
        "--docker-password=pass",
    ]);
    assert_eq!(
        f.jsonpath(&["get", "secret", "registry"], "{.type}"),
        "kubernetes.io/dockerconfigjson"
    );
    let config = f.jsonpath(
        &["get", "secret", "registry"],
        "{.data.\\.dockerconfigjson}",
    );
    let config: serde_json::Value = serde_json::from_str(&decoded(&config)).unwrap();
    assert_eq!(config["auths"]["registry.example"]["username"], "student");
}

#[test]
fn create_namespace_makes_a_namespace() {
    let f = start();
    assert_eq!(
        f.ok(&["create", "namespace", "web"]),
        "namespace/web created"
    );
    assert_eq!(
        f.jsonpath(&["get", "namespace", "web"], "{.status.phase}"),
        "Active"
    );
}

#[test]
fn create_deployment_makes_its_pod_template() {
    let f = start();
    f.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:alpine",
        "--replicas=2",
        "--port=80",
    ]);
    let get = ["get", "deployment", "web"];
    assert_eq!(f.jsonpath(&get, "{.spec.replicas}"), "2");
    assert_eq!(
        f.jsonpath(&get, "{.spec.template.spec.containers[0].image}"),
        "nginx:alpine"
    );
    assert_eq!(
        f.jsonpath(
            &get,
            "{.spec.template.spec.containers[0].ports[0].containerPort}"
        ),
        "80"
    );
    assert_eq!(f.jsonpath(&get, "{.spec.selector.matchLabels.app}"), "web");
}

#[test]
fn create_service_clusterip_maps_port_to_target_port() {
    let f = start();
    f.ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"]);
    let get = ["get", "service", "web"];
    assert_eq!(f.jsonpath(&get, "{.spec.ports[0].port}"), "80");
    assert_eq!(f.jsonpath(&get, "{.spec.ports[0].targetPort}"), "8080");
    let ip = f.jsonpath(&get, "{.spec.clusterIP}");
    let ip: std::net::Ipv4Addr = ip.parse().unwrap();
    let [a, b, ..] = ip.octets();
    assert!(
        a == 10 && (96..112).contains(&b),
        "{ip} is not in 10.96.0.0/12"
    );
}

#[test]
fn create_service_nodeport_gets_a_node_port() {
    let f = start();
    f.ok(&[
        "create",
        "service",
        "nodeport",
        "web",
        "--tcp=80:80",
        "--node-port=30080",
    ]);
    assert_eq!(
        f.jsonpath(&["get", "service", "web"], "{.spec.ports[0].nodePort}"),
        "30080"
    );
}

#[test]
fn create_configmap_from_literals() {
    let f = start();
    f.ok(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=color=blue",
    ]);
    assert_eq!(
        f.jsonpath(&["get", "configmap", "settings"], "{.data.color}"),
        "blue"
    );
}

#[test]
fn create_serviceaccount_and_rolebinding() {
    let f = start();
    f.ok(&["create", "serviceaccount", "builder"]);
    f.ok(&[
        "create",
        "rolebinding",
        "builder-view",
        "--clusterrole=view",
        "--serviceaccount=default:builder",
    ]);
    assert_eq!(
        f.jsonpath(
            &["get", "rolebinding", "builder-view"],
            "{.subjects[0].kind}/{.subjects[0].name}"
        ),
        "ServiceAccount/builder"
    );
    assert_eq!(
        f.ok(&[
            "auth",
            "can-i",
            "list",
            "pods",
            "--as=system:serviceaccount:default:builder"
        ]),
        "yes"
    );
}

#[test]
fn a_server_dry_run_stores_nothing() {
    let f = start();
    assert_eq!(
        f.ok(&[
            "create",
            "configmap",
            "draft",
            "--from-literal=a=b",
            "--dry-run=server",
            "-o",
            "name"
        ]),
        "configmap/draft"
    );
    let out = kubectl_as(&f.admin, &["get", "configmap", "draft"], None);
    assert_eq!(
        text(&out.stderr),
        "Error from server (NotFound): configmaps \"draft\" not found"
    );
}
