//! TLS bootstrapping: a node gets its certificates by asking, as kubelets
//! do.
//!
//! 1. With the bootstrap token (user `system:bootstrap:<id>`), the node
//!    sends a CertificateSigningRequest for `CN=system:node:<name>,
//!    O=system:nodes` to the signer `kubernetes.io/kube-apiserver-client-kubelet`.
//!    The controller approves it (a bootstrapper asking for a node client
//!    certificate) and signs it with the cluster CA.
//! 2. With that certificate (now `system:node:<name>`), it asks for its
//!    serving certificate, for its own name and address, to the signer
//!    `kubernetes.io/kubelet-serving`.
//!
//! The private keys are made here and never leave the node.

use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::ByteString;
use kube::api::{Api, ObjectMeta, PostParams};

use api::certificates as csr;
use api::pki::Issued;

use crate::{Error, Result};

/// How long a request may wait to be approved and signed.
pub const SIGNING_TIMEOUT: Duration = Duration::from_secs(60);

/// What to ask for.
#[derive(Debug, Clone)]
pub struct Ask<'a> {
    pub signer: &'a str,
    pub common_name: &'a str,
    pub organizations: &'a [&'a str],
    pub dns_names: &'a [&'a str],
    pub ips: &'a [IpAddr],
    pub usages: &'a [&'a str],
}

/// A node's client certificate request.
pub fn node_client(common_name: &str) -> Ask<'_> {
    Ask {
        signer: csr::SIGNER_KUBELET_CLIENT,
        common_name,
        organizations: &[api::user::NODES],
        dns_names: &[],
        ips: &[],
        usages: csr::KUBELET_CLIENT_USAGES,
    }
}

/// Sends a CertificateSigningRequest and waits until it is signed: the new
/// key and its certificate. A denial or a failure is an error with the
/// approver's reason.
pub async fn request_certificate(client: kube::Client, ask: &Ask<'_>) -> Result<Issued> {
    let (request_pem, key_pem) =
        csr::make_request(ask.common_name, ask.organizations, ask.dns_names, ask.ips)
            .map_err(|e| Error::Refused(format!("making a certificate request: {e}")))?;
    let requests: Api<CertificateSigningRequest> = Api::all(client);
    let object = CertificateSigningRequest {
        metadata: ObjectMeta {
            generate_name: Some("csr-".into()),
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(request_pem.into_bytes()),
            signer_name: ask.signer.into(),
            usages: Some(ask.usages.iter().map(|u| u.to_string()).collect()),
            ..Default::default()
        },
        status: None,
    };
    let created = requests
        .create(&PostParams::default(), &object)
        .await
        .map_err(|e| refused_token(e, "sending a certificate signing request"))?;
    let name = created.metadata.name.unwrap_or_default();
    println!(
        "[kubelet-start] Sent certificate signing request {name} ({}, {})",
        ask.common_name, ask.signer
    );
    let hint = format!(
        "Is the controller running on the master? There, `kubectl get csr` shows the request \
         and `kubectl certificate approve {name}` approves it by hand."
    );
    let cert_pem = crate::wait::until(
        &format!("certificate signing request {name} to be signed"),
        SIGNING_TIMEOUT,
        &hint,
        || {
            let requests = requests.clone();
            let name = name.clone();
            async move {
                let current = requests.get(&name).await.map_err(|e| e.to_string())?;
                let value = serde_json::to_value(&current).map_err(|e| e.to_string())?;
                if csr::is_denied(&value) || csr::is_failed(&value) {
                    return Ok(Some(Err(value)));
                }
                Ok(current
                    .status
                    .and_then(|s| s.certificate)
                    .filter(|c| !c.0.is_empty())
                    .map(|c| Ok(String::from_utf8_lossy(&c.0).into_owned())))
            }
        },
    )
    .await?
    .map_err(|refused| {
        let condition = refused["status"]["conditions"]
            .as_array()
            .and_then(|c| c.last().cloned())
            .unwrap_or_default();
        Error::Refused(format!(
            "certificate signing request {name} was {}: {} {}",
            condition["type"].as_str().unwrap_or("refused"),
            condition["reason"].as_str().unwrap_or_default(),
            condition["message"].as_str().unwrap_or_default()
        ))
    })?;
    println!("[kubelet-start] Certificate signing request {name} was approved and signed");
    Ok(Issued { cert_pem, key_pem })
}

/// A request refused with 401 means the token is not (or no longer)
/// valid: say what to do.
pub fn refused_token(error: kube::Error, what: &str) -> Error {
    match &error {
        kube::Error::Api(status) if status.code == 401 => Error::Refused(format!(
            "{what}: the bootstrap token was refused (401 Unauthorized): it has expired or was \
             deleted. On the master, `kubeadm-lite token create --print-join-command` makes a \
             new join command."
        )),
        _ => Error::Api {
            what: what.into(),
            source: error,
        },
    }
}
