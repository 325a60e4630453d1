//! CertificateSigningRequests (`certificates.k8s.io/v1`): how a node gets
//! its certificates without anyone copying keys around.
//!
//! A joining node makes its own key, and sends only a *request* (PKCS#10,
//! PEM `CERTIFICATE REQUEST`): "sign my public key for `CN=system:node:w1,
//! O=system:nodes`". The request is an object like any other:
//!
//! ```text
//! node (bootstrap token) ──POST csr──▶ apiserver ──▶ controller: approve? sign?
//!        ◀── GET csr: status.certificate ─────────────────────────┘
//! ```
//!
//! Who asked (`spec.username`, `spec.groups`) is written by the apiserver
//! from the caller's credentials, never taken from the body. Approval is a
//! condition (`Approved` / `Denied`) set through the `/approval`
//! subresource (`kubectl certificate approve`, or the controller's
//! approver for the kinds of requests it recognises); the signer then
//! fills `status.certificate` through `/status`. The *signer name* says
//! which CA and which rules: the ones below are Kubernetes' built-in
//! signers, all served by the cluster CA.

use std::net::IpAddr;

use serde_json::Value;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

/// Client certificates for the apiserver, for anyone an approver trusts.
pub const SIGNER_KUBE_APISERVER_CLIENT: &str = "kubernetes.io/kube-apiserver-client";
/// A kubelet's client certificate (`system:node:<name>` in `system:nodes`).
pub const SIGNER_KUBELET_CLIENT: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// A kubelet's serving certificate, for its port 10250.
pub const SIGNER_KUBELET_SERVING: &str = "kubernetes.io/kubelet-serving";

/// The condition an approver sets.
pub const APPROVED: &str = "Approved";
/// The condition a refusing approver sets.
pub const DENIED: &str = "Denied";
/// The condition a signer sets when it cannot sign.
pub const FAILED: &str = "Failed";

/// The key usages a request may name (`spec.usages`), as upstream spells
/// them.
pub const KNOWN_USAGES: &[&str] = &[
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
];

/// The shortest certificate a request may ask for (`spec.expirationSeconds`).
pub const MIN_EXPIRATION_SECONDS: i64 = 600;

/// What a PKCS#10 request asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedRequest {
    pub common_name: String,
    pub organizations: Vec<String>,
    pub dns_names: Vec<String>,
    pub ips: Vec<IpAddr>,
    /// Email addresses and URIs: the kubelet signers refuse any.
    pub other_names: Vec<String>,
}

/// Reads a PEM `CERTIFICATE REQUEST` and checks its signature (the
/// requester holds the private key). The error is upstream's wording where
/// it has one.
pub fn parse_request(pem_text: &[u8]) -> Result<ParsedRequest, String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem_text)
        .map_err(|_| "PEM block type must be CERTIFICATE REQUEST".to_string())?;
    if pem.label != "CERTIFICATE REQUEST" {
        return Err("PEM block type must be CERTIFICATE REQUEST".into());
    }
    let (_, request) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&pem.contents)
            .map_err(|e| format!("asn1: {e}"))?;
    request
        .verify_signature()
        .map_err(|_| "the request's signature does not match its public key".to_string())?;
    let subject = &request.certification_request_info.subject;
    let mut parsed = ParsedRequest {
        common_name: subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_string(),
        organizations: subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok())
            .map(String::from)
            .collect(),
        ..ParsedRequest::default()
    };
    for extension in request.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(names) = extension {
            for name in &names.general_names {
                match name {
                    GeneralName::DNSName(dns) => parsed.dns_names.push(dns.to_string()),
                    GeneralName::IPAddress(bytes) => match bytes.len() {
                        4 => parsed.ips.push(IpAddr::from(
                            <[u8; 4]>::try_from(*bytes).unwrap_or_default(),
                        )),
                        16 => parsed.ips.push(IpAddr::from(
                            <[u8; 16]>::try_from(*bytes).unwrap_or_default(),
                        )),
                        _ => parsed.other_names.push(format!("{bytes:?}")),
                    },
                    other => parsed.other_names.push(other.to_string()),
                }
            }
        }
    }
    Ok(parsed)
}

/// The request's PEM bytes from an object (`spec.request` is base64 in
/// JSON, as every `[]byte`).
pub fn request_pem(csr: &Value) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let encoded = csr["spec"]["request"].as_str()?;
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
}

/// The type of every condition whose status is `True`.
fn true_conditions(csr: &Value) -> impl Iterator<Item = &str> {
    csr["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["status"] == "True")
        .filter_map(|c| c["type"].as_str())
}

pub fn is_approved(csr: &Value) -> bool {
    true_conditions(csr).any(|t| t == APPROVED)
}

pub fn is_denied(csr: &Value) -> bool {
    true_conditions(csr).any(|t| t == DENIED)
}

pub fn is_failed(csr: &Value) -> bool {
    true_conditions(csr).any(|t| t == FAILED)
}

/// Whether the signer has written the certificate.
pub fn is_issued(csr: &Value) -> bool {
    csr["status"]["certificate"]
        .as_str()
        .is_some_and(|c| !c.is_empty())
}

/// The `CONDITION` column of `kubectl get csr` (upstream's
/// `extractCSRStatus`): `Denied`, `Approved` or `Pending`, then
/// `,Failed` and `,Issued` when they apply (`Approved,Issued`).
pub fn condition_summary(csr: &Value) -> String {
    let has = |wanted: &str| {
        csr["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == wanted)
    };
    let mut summary = if has(DENIED) {
        "Denied"
    } else if has(APPROVED) {
        "Approved"
    } else {
        "Pending"
    }
    .to_string();
    if has(FAILED) {
        summary.push_str(",Failed");
    }
    if is_issued(csr) {
        summary.push_str(",Issued");
    }
    summary
}

/// The key usages of a kubelet's client certificate (what the kubelet
/// asks for with an ECDSA key).
pub const KUBELET_CLIENT_USAGES: &[&str] = &["digital signature", "client auth"];
/// The key usages of a kubelet's serving certificate.
pub const KUBELET_SERVING_USAGES: &[&str] = &["digital signature", "server auth"];

/// Whether `usages` are all among `allowed`, and include `required`:
/// upstream's check for the kubelet signers (key encipherment is allowed
/// too, for RSA keys).
pub fn usages_fit(usages: &[String], required: &str) -> bool {
    let allowed = ["digital signature", "key encipherment", required];
    usages.iter().any(|u| u == required) && usages.iter().all(|u| allowed.contains(&u.as_str()))
}

/// A new key (ECDSA P-256) and a request for `common_name` in
/// `organizations` naming these DNS names and addresses: (request PEM,
/// key PEM).
pub fn make_request(
    common_name: &str,
    organizations: &[&str],
    dns_names: &[&str],
    ips: &[IpAddr],
) -> Result<(String, String), rcgen::Error> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::default();
    let mut name = rcgen::DistinguishedName::new();
    for organization in organizations {
        name.push(rcgen::DnType::OrganizationName, *organization);
    }
    name.push(rcgen::DnType::CommonName, common_name);
    params.distinguished_name = name;
    for dns in dns_names {
        params
            .subject_alt_names
            .push(rcgen::SanType::DnsName((*dns).try_into()?));
    }
    for ip in ips {
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress(*ip));
    }
    let request = params.serialize_request(&key)?;
    Ok((request.pem()?, key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_request_says_what_it_asks_for() {
        let ip: IpAddr = "192.168.56.11".parse().unwrap();
        let (pem, key) = make_request("system:node:w1", &["system:nodes"], &["w1"], &[ip]).unwrap();
        assert!(key.contains("PRIVATE KEY"));
        let parsed = parse_request(pem.as_bytes()).unwrap();
        assert_eq!(parsed.common_name, "system:node:w1");
        assert_eq!(parsed.organizations, ["system:nodes"]);
        assert_eq!(parsed.dns_names, ["w1"]);
        assert_eq!(parsed.ips, [ip]);
        assert!(parsed.other_names.is_empty());
    }

    #[test]
    fn not_a_request_is_refused_in_upstreams_words() {
        let error = parse_request(b"hello").unwrap_err();
        assert_eq!(error, "PEM block type must be CERTIFICATE REQUEST");
        let ca = crate::pki::Ca::generate().unwrap();
        let error = parse_request(ca.cert_pem().as_bytes()).unwrap_err();
        assert_eq!(error, "PEM block type must be CERTIFICATE REQUEST");
    }

    #[test]
    fn the_condition_column_says_where_a_request_is() {
        let pending = json!({"status": {}});
        assert_eq!(condition_summary(&pending), "Pending");
        let issued = json!({"status": {"conditions": [{"type": "Approved", "status": "True"}],
                                       "certificate": "LS0t"}});
        assert_eq!(condition_summary(&issued), "Approved,Issued");
        assert!(is_approved(&issued) && is_issued(&issued) && !is_denied(&issued));
    }

    #[test]
    fn kubelet_usages_must_fit_the_signer() {
        let owned = |u: &[&str]| u.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(usages_fit(&owned(KUBELET_CLIENT_USAGES), "client auth"));
        assert!(usages_fit(
            &owned(&["key encipherment", "digital signature", "client auth"]),
            "client auth"
        ));
        assert!(!usages_fit(
            &owned(&["client auth", "server auth"]),
            "client auth"
        ));
        assert!(!usages_fit(&owned(&["digital signature"]), "client auth"));
    }
}
