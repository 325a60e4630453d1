//! The apiserver over HTTPS: who may connect and what anonymous callers
//! get (issue 11). Each test starts its own apiserver with a CA of its own
//! (`e2e::harness::SecureApiServer`), and talks to it as the real kubectl,
//! kube-rs, or a plain HTTPS client would.

mod common;

use std::process::Command;

use e2e::harness::{bin_dir, free_port, kubectl, SecureApiServer};
use serde_json::Value;

struct Fixture {
    _dir: tempfile::TempDir,
    api: SecureApiServer,
}

fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let api = SecureApiServer::start(dir.path());
    Fixture { _dir: dir, api }
}

/// An HTTPS client that trusts the test CA and presents no certificate.
fn anonymous(api: &SecureApiServer) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(api.ca.cert_pem().as_bytes()).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap()
}

async fn get(client: &reqwest::Client, url: String) -> (u16, Value) {
    let response = client.get(url).send().await.unwrap();
    let code = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (code, body)
}

#[tokio::test]
async fn anonymous_requests_get_401_outside_the_public_paths() {
    let f = start();
    let (code, body) = get(
        &anonymous(&f.api),
        format!("{}/api/v1/namespaces/default/pods", f.api.server.url),
    )
    .await;
    assert_eq!(code, 401);
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["reason"], "Unauthorized");
    assert_eq!(body["message"], "Unauthorized");
}

#[tokio::test]
async fn anonymous_callers_may_read_health_version_and_discovery() {
    let f = start();
    let client = anonymous(&f.api);
    for path in [
        "/readyz",
        "/livez",
        "/version",
        "/api",
        "/apis",
        "/apis/apps/v1",
    ] {
        let response = client
            .get(format!("{}{path}", f.api.server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
    }
}

#[tokio::test]
async fn anonymous_callers_may_not_change_cluster_info() {
    let f = start();
    let response = anonymous(&f.api)
        .put(format!(
            "{}/api/v1/namespaces/kube-public/configmaps/cluster-info",
            f.api.server.url
        ))
        .header("Content-Type", "application/json")
        .body(r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cluster-info"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["reason"], "Forbidden");
    assert_eq!(
        body["message"],
        "configmaps \"cluster-info\" is forbidden: User \"system:anonymous\" cannot update resource \"configmaps\" in API group \"\" in the namespace \"kube-public\""
    );
    assert_eq!(body["details"]["kind"], "configmaps");
}

#[tokio::test]
async fn a_bearer_token_nobody_issued_is_refused() {
    let f = start();
    let response = anonymous(&f.api)
        .get(format!("{}/version", f.api.server.url))
        .bearer_auth("abcdef.0123456789abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
}

#[tokio::test]
async fn the_real_kubectl_works_with_the_admin_kubeconfig() {
    let f = start();
    let output = Command::new(kubectl())
        .arg("--kubeconfig")
        .arg(f.api.admin_kubeconfig())
        .args(["get", "namespaces"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("kube-system"), "{stdout}");
}

#[tokio::test]
async fn kube_rs_works_with_a_client_certificate() {
    let f = start();
    let client = e2e::lab::client_from(&f.api.admin_kubeconfig())
        .await
        .unwrap();
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client);
    let list = namespaces.list(&Default::default()).await.unwrap();
    assert!(list
        .items
        .iter()
        .any(|n| n.metadata.name.as_deref() == Some("default")));
}

#[tokio::test]
async fn a_certificate_from_another_ca_does_not_get_in() {
    let f = start();
    let other = tempfile::tempdir().unwrap();
    let stranger = SecureApiServer::start(other.path());
    // A kubeconfig that trusts our apiserver's CA but carries a client
    // certificate the other cluster's CA signed.
    let mut text = std::fs::read_to_string(stranger.admin_kubeconfig()).unwrap();
    let ours = std::fs::read_to_string(f.api.admin_kubeconfig()).unwrap();
    let field = |text: &str, key: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key).map(str::to_string))
            .unwrap()
    };
    text = text
        .replace(&stranger.server.url, &f.api.server.url)
        .replace(
            &field(&text, "certificate-authority-data: "),
            &field(&ours, "certificate-authority-data: "),
        );
    let path = other.path().join("stranger.kubeconfig");
    std::fs::write(&path, text).unwrap();
    let output = Command::new(kubectl())
        .arg("--kubeconfig")
        .arg(&path)
        .args(["get", "namespaces"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    // The handshake refuses the certificate. With TLS 1.3 the client may
    // see that as the server's alert or, when it writes its request
    // before reading the alert, as a broken pipe; either way it never got
    // an HTTP answer (not even a 401 or 403).
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("certificate")
            || stderr.contains("tls")
            || stderr.contains("Unable to connect to the server"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("Unauthorized") && !stderr.contains("Forbidden"),
        "{stderr}"
    );
}

#[test]
fn plain_http_on_a_non_loopback_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    e2e::harness::ensure_built(&["apiserver"]);
    let output = Command::new(bin_dir().join("apiserver"))
        .args(["--listen", &format!("0.0.0.0:{}", free_port())])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing to serve plain HTTP on 0.0.0.0:")
            && stderr.contains("--tls-cert-file"),
        "{stderr}"
    );
}

/// A user certificate made the classic way, with openssl, naming two
/// groups (two `O`s), and signed by the cluster CA.
fn openssl_user_certificate(f: &Fixture, subject: &str) -> api::pki::Issued {
    let dir = f._dir.path().join("openssl");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ca.crt"), f.api.ca.cert_pem()).unwrap();
    std::fs::write(dir.join("ca.key"), f.api.ca.key_pem()).unwrap();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("openssl (scripts/install-deps.sh installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        "user.key",
    ]);
    openssl(&[
        "req", "-new", "-key", "user.key", "-subj", subject, "-out", "user.csr",
    ]);
    // X.509 v3 (with an extension): rustls, unlike Go, refuses v1
    // certificates, which `openssl x509 -req` makes without `-extfile`.
    std::fs::write(dir.join("v3.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    openssl(&[
        "x509", "-req", "-in", "user.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-days", "1",
        "-extfile", "v3.ext", "-out", "user.crt",
    ]);
    api::pki::Issued {
        cert_pem: std::fs::read_to_string(dir.join("user.crt")).unwrap(),
        key_pem: std::fs::read_to_string(dir.join("user.key")).unwrap(),
    }
}

#[test]
fn a_certificate_with_several_organizations_is_in_each_group() {
    let f = start();
    let credentials = openssl_user_certificate(&f, "/O=dev/O=qa/CN=jane");
    let path = f._dir.path().join("jane.kubeconfig");
    let text = api::pki::kubeconfig(
        "test",
        &f.api.server.url,
        f.api.ca.cert_pem(),
        "jane",
        &credentials,
        Some("default"),
    );
    std::fs::write(&path, text).unwrap();
    let output = Command::new(kubectl())
        .args(["--kubeconfig", path.to_str().unwrap(), "auth", "whoami"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("[dev qa system:authenticated]"), "{stdout}");
}
