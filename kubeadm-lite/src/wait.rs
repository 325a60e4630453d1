//! Waiting, with a progress line, for what a command started: the
//! apiserver answering `/readyz`, a Node reporting Ready, a certificate
//! being signed. Each wait is bounded and says where to look when it runs
//! out.

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::Api;

use crate::{Error, Result};

/// How long init and join wait for the control plane and the node.
pub const TIMEOUT: Duration = Duration::from_secs(240);
const POLL: Duration = Duration::from_millis(500);
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Polls `check` until it returns `Ok(Some(_))` or `timeout` passes; every
/// ten seconds prints how long it has waited and the last reason.
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, hint: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, String>>,
{
    let start = Instant::now();
    let mut next_progress = start + PROGRESS_EVERY;
    let mut reason = String::from("no answer yet");
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(why) => reason = why,
        }
        if start.elapsed() >= timeout {
            return Err(Error::Timeout {
                what: what.into(),
                seconds: timeout.as_secs(),
                hint: format!("Last: {reason}. {hint}"),
            });
        }
        if Instant::now() >= next_progress {
            println!(
                "  ... still waiting for {what} ({}s): {reason}",
                start.elapsed().as_secs()
            );
            next_progress += PROGRESS_EVERY;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Until `GET server/readyz` answers 200 over TLS checked against the CA.
pub async fn apiserver(server: &str, ca_pem: &str, hint: &str) -> Result<()> {
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes())
        .map_err(|e| Error::Refused(format!("the cluster CA: {e}")))?;
    let http = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(3))
        .build()
        .map_err(|e| Error::Refused(format!("an HTTPS client: {e}")))?;
    let url = format!("{server}/readyz");
    until(&format!("the apiserver at {server}"), TIMEOUT, hint, || {
        let request = http.get(&url).send();
        async move {
            match request.await {
                Ok(answer) if answer.status().is_success() => Ok(Some(())),
                Ok(answer) => Err(format!("/readyz answered {}", answer.status())),
                Err(e) => Err(crate::clusterinfo::error_text(&e)),
            }
        }
    })
    .await
}

/// Whether a Node's Ready condition is True.
pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// Until the Node `name` is Ready.
pub async fn node_ready(client: kube::Client, name: &str, hint: &str) -> Result<()> {
    let nodes: Api<Node> = Api::all(client);
    until(&format!("node {name} to be Ready"), TIMEOUT, hint, || {
        let nodes = nodes.clone();
        async move {
            match nodes.get_opt(name).await {
                Ok(Some(node)) if is_ready(&node) => Ok(Some(())),
                Ok(Some(_)) => Err("registered, not Ready yet".into()),
                Ok(None) => Err("not registered yet".into()),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await
}
