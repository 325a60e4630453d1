//! CertificateSigningRequests: approving the requests joining nodes make,
//! and signing approved ones with the cluster CA
//! (kube-controller-manager's `csrapproving` and `csrsigning`).
//!
//! ```text
//! CSR created ──▶ approve? (node client / node serving, by the rules below)
//!      │                  └── otherwise it waits for `kubectl certificate approve`
//!      ▼
//! Approved ──▶ sign with the cluster CA ──▶ status.certificate
//! ```
//!
//! **What is approved without a person.**
//! - A node's client certificate (`kubernetes.io/kube-apiserver-client-kubelet`)
//!   asked by a joining node's bootstrap token (`system:bootstrappers`), or
//!   by the node itself renewing: the subject must be exactly
//!   `CN=system:node:<name>, O=system:nodes`, with client usages and no
//!   alternative names. Upstream asks the authorizer whether the requester
//!   may create `certificatesigningrequests/nodeclient`; kubeadm binds that
//!   to the bootstrappers, so kube-lite checks the group directly.
//! - A node's serving certificate (`kubernetes.io/kubelet-serving`) asked
//!   by that node (`system:node:<name>`), for its own name and addresses
//!   only: an address another Node reports is refused. Upstream leaves
//!   these to a person or an add-on approver; kube-lite approves them so
//!   that `kubeadm-lite join` is one command.
//!
//! Anything else waits for `kubectl certificate approve`.
//!
//! **Signing** needs the CA's key (`--cluster-signing-cert-file`,
//! `--cluster-signing-key-file`, on the master only); without it this half
//! does nothing. The certificate lasts `spec.expirationSeconds`, at most
//! `--cluster-signing-duration` (a year, as upstream).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::ResourceExt as _;
use serde_json::{json, Value};

use api::certificates::{self as csr, ParsedRequest};
use api::user::{BOOTSTRAPPERS, NODES, NODE_USER_PREFIX};

use crate::{Context, Error, Result};

pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let requests: Api<CertificateSigningRequest> = Api::all(ctx.client.clone());
    Controller::new(requests, watcher::Config::default())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "certificatesigningrequests");
            }
            futures::future::ready(())
        })
        .await;
    Ok(())
}

pub fn error_policy(
    request: Arc<CertificateSigningRequest>,
    error: &Error,
    _ctx: Arc<Context>,
) -> Action {
    if !error.is_conflict() {
        tracing::warn!(csr = %request.name_any(), %error, "certificate signing request");
    }
    Action::requeue(Duration::from_secs(2))
}

/// Approves `request` if it is a kind this controller recognises, and
/// signs it once approved. Idempotent: a decided or signed request is left
/// as it is.
pub async fn reconcile(
    request: Arc<CertificateSigningRequest>,
    ctx: Arc<Context>,
) -> Result<Action> {
    let object = serde_json::to_value(request.as_ref())
        .map_err(|e| Error::invalid(request.name_any(), e.to_string()))?;
    if csr::is_denied(&object) || csr::is_failed(&object) || csr::is_issued(&object) {
        return Ok(Action::await_change());
    }
    let name = request.name_any();
    let api: Api<CertificateSigningRequest> = Api::all(ctx.client.clone());
    if !csr::is_approved(&object) {
        let Some(message) = recognise(&object, &ctx).await? else {
            return Ok(Action::await_change()); // a person decides
        };
        let approved = json!({"status": {"conditions": [{
            "type": csr::APPROVED,
            "status": "True",
            "reason": "AutoApproved",
            "message": message,
            "lastUpdateTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }]}});
        api.patch_subresource(
            "approval",
            &name,
            &PatchParams::default(),
            &Patch::Merge(&approved),
        )
        .await
        .map_err(|e| Error::api(format!("csr/{name}"), "approving", e))?;
        tracing::info!(csr = %name, "approved: {message}");
        // The approval comes back as a change: signing is the next pass.
        return Ok(Action::await_change());
    }
    let Some(ca) = &ctx.config.cluster_signing else {
        return Ok(Action::await_change());
    };
    let signer = object["spec"]["signerName"].as_str().unwrap_or_default();
    if ![
        csr::SIGNER_KUBELET_CLIENT,
        csr::SIGNER_KUBELET_SERVING,
        csr::SIGNER_KUBE_APISERVER_CLIENT,
    ]
    .contains(&signer)
    {
        return Ok(Action::await_change()); // another signer's
    }
    let request_pem = csr::request_pem(&object).unwrap_or_default();
    let usages: Vec<String> = request.spec.usages.clone().unwrap_or_default();
    let validity = request
        .spec
        .expiration_seconds
        .map(|s| Duration::from_secs(s.max(csr::MIN_EXPIRATION_SECONDS as i32) as u64))
        .map_or(ca.duration, |asked| asked.min(ca.duration));
    let status = match ca
        .ca
        .sign_request(&String::from_utf8_lossy(&request_pem), &usages, validity)
    {
        Ok(cert) => {
            use base64::Engine as _;
            json!({"status": {"certificate": base64::engine::general_purpose::STANDARD.encode(cert)}})
        }
        // Upstream's signer marks what it cannot sign as Failed.
        Err(e) => json!({"status": {"conditions": [{
            "type": csr::FAILED,
            "status": "True",
            "reason": "SignerValidationFailure",
            "message": e.to_string(),
            "lastUpdateTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }]}}),
    };
    // Status conditions are a list: keep the Approved one the merge
    // would otherwise drop (the apiserver keeps approval conditions as
    // stored anyway).
    let mut status = status;
    if status["status"]["conditions"].is_array() {
        let mut all = object["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        all.extend(
            status["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
        status["status"]["conditions"] = Value::Array(all);
    }
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .map_err(|e| Error::api(format!("csr/{name}"), "signing", e))?;
    tracing::info!(csr = %name, signer, "signed");
    Ok(Action::await_change())
}

/// Why `object` may be approved without a person, or None.
async fn recognise(object: &Value, ctx: &Context) -> Result<Option<&'static str>> {
    let spec = &object["spec"];
    let Some(parsed) = csr::request_pem(object).and_then(|pem| csr::parse_request(&pem).ok())
    else {
        return Ok(None);
    };
    let usages: Vec<String> = spec["usages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u.as_str().map(String::from))
        .collect();
    let username = spec["username"].as_str().unwrap_or_default();
    let groups: Vec<&str> = spec["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g.as_str())
        .collect();
    let node = match parsed.common_name.strip_prefix(NODE_USER_PREFIX) {
        Some(node) if !node.is_empty() && parsed.organizations == [NODES] => node,
        _ => return Ok(None),
    };
    match spec["signerName"].as_str() {
        Some(csr::SIGNER_KUBELET_CLIENT) => {
            let bare = parsed.dns_names.is_empty()
                && parsed.ips.is_empty()
                && parsed.other_names.is_empty();
            if !bare || !csr::usages_fit(&usages, "client auth") {
                return Ok(None);
            }
            if groups.contains(&BOOTSTRAPPERS) {
                Ok(Some(
                    "Auto approving kubelet client certificate after SubjectAccessReview.",
                ))
            } else if username == parsed.common_name {
                Ok(Some(
                    "Auto approving self kubelet client certificate after SubjectAccessReview.",
                ))
            } else {
                Ok(None)
            }
        }
        Some(csr::SIGNER_KUBELET_SERVING) => {
            if username != parsed.common_name
                || !groups.contains(&NODES)
                || !csr::usages_fit(&usages, "server auth")
                || !serving_names_are_the_nodes(node, &parsed, ctx).await?
            {
                return Ok(None);
            }
            Ok(Some(
                "Auto approving kubelet serving certificate: the node's own name and addresses.",
            ))
        }
        _ => Ok(None),
    }
}

/// A serving certificate names only `node` and addresses no other Node
/// reports (and, once the Node exists, addresses it reports).
async fn serving_names_are_the_nodes(
    node: &str,
    parsed: &ParsedRequest,
    ctx: &Context,
) -> Result<bool> {
    if !parsed.other_names.is_empty()
        || parsed.dns_names.iter().any(|d| d != node)
        || (parsed.dns_names.is_empty() && parsed.ips.is_empty())
    {
        return Ok(false);
    }
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let all = nodes
        .list(&Default::default())
        .await
        .map_err(|e| Error::api("nodes", "listing", e))?;
    let addresses = |n: &Node| -> Vec<IpAddr> {
        n.status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|a| a.address.parse().ok())
            .collect()
    };
    for other in &all.items {
        let own = other.name_any() == node;
        let theirs = addresses(other);
        for ip in &parsed.ips {
            if !own && theirs.contains(ip) {
                return Ok(false);
            }
            if own && !theirs.is_empty() && !theirs.contains(ip) {
                return Ok(false);
            }
        }
    }
    Ok(true)
}
