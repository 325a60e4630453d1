//! Helpers for the apiserver's tests: the real apiserver process (from the
//! e2e harness), a small JSON client, and the real kubectl.

#![allow(dead_code)]

use serde_json::Value;

#[allow(unused_imports)]
pub use e2e::harness::ApiServer;

/// A small JSON client for the tests.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
}

pub struct Answer {
    pub code: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Client {
    pub fn new(base: &str) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: base.to_string(),
        }
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Option<Vec<u8>>,
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(b) = body {
            req = req.header("content-type", content_type).body(b);
        }
        let resp = req.send().await.expect("request reaches the apiserver");
        let code = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap_or_default();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).to_string()));
        Answer {
            code,
            body,
            headers,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send("GET", path, "", None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.send(
            "POST",
            path,
            "application/json",
            Some(serde_json::to_vec(body).unwrap()),
        )
        .await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Answer {
        self.send(
            "PUT",
            path,
            "application/json",
            Some(serde_json::to_vec(body).unwrap()),
        )
        .await
    }

    pub async fn patch(&self, path: &str, content_type: &str, body: &Value) -> Answer {
        self.send(
            "PATCH",
            path,
            content_type,
            Some(serde_json::to_vec(body).unwrap()),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send("DELETE", path, "", None).await
    }
}

#[allow(unused_imports)]
pub use e2e::harness::{kubectl, workspace_root};

/// The real kubectl as the holder of `kubeconfig`, with `stdin` if given.
pub fn kubectl_as(
    kubeconfig: &std::path::Path,
    args: &[&str],
    stdin: Option<&str>,
) -> std::process::Output {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new(kubectl())
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running kubectl");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("kubectl's stdin")
            .write_all(text.as_bytes())
            .expect("writing kubectl's stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("kubectl's output")
}

/// A command's output as trimmed text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

/// An apiserver over HTTPS with a CA of its own (in a directory of its
/// own), and the administrator's kubeconfig.
pub struct Secure {
    pub dir: tempfile::TempDir,
    pub api: e2e::harness::SecureApiServer,
    pub admin: std::path::PathBuf,
}

impl Secure {
    pub fn start() -> Secure {
        let dir = tempfile::tempdir().unwrap();
        let api = e2e::harness::SecureApiServer::start(dir.path());
        let admin = api.admin_kubeconfig();
        Secure { dir, api, admin }
    }

    /// A kubeconfig that trusts the CA and carries only `token`.
    #[allow(dead_code)] // not every test file uses tokens
    pub fn token_kubeconfig(&self, token: &str) -> std::path::PathBuf {
        let path = self
            .dir
            .path()
            .join(format!("token-{}.kubeconfig", &token[..6]));
        let text = api::pki::token_kubeconfig(
            "c",
            &self.api.server.url,
            self.api.ca.cert_pem(),
            "u",
            token,
            Some("default"),
        );
        std::fs::write(&path, text).unwrap();
        path
    }
}
