//! CertificateSigningRequests: `kubectl get csr`.
//!
//! REQUESTOR is who sent the request (a joining node's bootstrap token is
//! `system:bootstrap:<id>`), CONDITION where it stands (`Pending`,
//! `Approved,Issued`, `Denied`).

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::age::since;
use super::{format_age, text, timestamp, Column, Printer, AGE, NAME};

pub(super) const CSRS: Printer = Printer {
    columns: &[
        NAME,
        AGE,
        Column::string(
            "SignerName",
            "signerName indicates the requested signer, and is a qualified name.",
        ),
        Column::string(
            "Requestor",
            "request contains an x509 certificate signing request encoded in a \"CERTIFICATE REQUEST\" PEM block.",
        ),
        Column::string(
            "RequestedDuration",
            "expirationSeconds is the requested duration of validity of the issued certificate.",
        ),
        Column::string(
            "Condition",
            "conditions applied to the request. Known conditions are \"Approved\", \"Denied\", and \"Failed\".",
        ),
    ],
    cells: csr_cells,
    conditions: None,
};

fn csr_cells(csr: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let duration = match csr["spec"]["expirationSeconds"].as_i64() {
        Some(seconds) => format_age(chrono::Duration::seconds(seconds.max(0))),
        None => "<none>".into(),
    };
    vec![
        json!(text(csr, "/metadata/name")),
        json!(since(timestamp(csr, "/metadata/creationTimestamp"), now)),
        json!(text(csr, "/spec/signerName")),
        json!(text(csr, "/spec/username")),
        json!(duration),
        json!(crate::certificates::condition_summary(csr)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csr_shows_its_requestor_and_condition() {
        let now: DateTime<Utc> = "2026-12-07T10:00:00Z".parse().unwrap();
        let csr = json!({
            "metadata": {"name": "csr-8x2kq", "creationTimestamp": "2026-12-07T09:58:00Z"},
            "spec": {"signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                     "username": "system:bootstrap:abcdef"},
            "status": {"conditions": [{"type": "Approved", "status": "True"}], "certificate": "LS0t"},
        });
        assert_eq!(
            csr_cells(&csr, now),
            [
                json!("csr-8x2kq"),
                json!("2m"),
                json!("kubernetes.io/kube-apiserver-client-kubelet"),
                json!("system:bootstrap:abcdef"),
                json!("<none>"),
                json!("Approved,Issued"),
            ]
        );
        let asked = json!({"metadata": {"name": "x"}, "spec": {"expirationSeconds": 86400}});
        assert_eq!(csr_cells(&asked, now)[4], "24h");
        assert_eq!(csr_cells(&asked, now)[5], "Pending");
    }
}
