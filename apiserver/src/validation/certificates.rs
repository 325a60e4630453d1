//! CertificateSigningRequest validation (`certificates.k8s.io/v1`).
//!
//! A request that an approver would read must be readable: a signed
//! PKCS#10 request, a signer, the usages it wants. The status may carry a
//! certificate only once approved, and never a different one later.

use serde_json::Value;

use api::certificates::{self as csr, APPROVED, DENIED, FAILED, KNOWN_USAGES};

use super::{index, render};
use crate::status::FieldError;

/// `ValidateCertificateSigningRequestCreate` / `...Update`.
pub(crate) fn validate(object: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let spec = &object["spec"];
    match spec["request"].as_str() {
        None | Some("") => errs.push(FieldError::required("spec.request", "")),
        Some(_) => match csr::request_pem(object) {
            None => errs.push(FieldError::invalid(
                "spec.request",
                "<bytes>",
                "PEM block type must be CERTIFICATE REQUEST",
            )),
            Some(pem) => {
                if let Err(why) = csr::parse_request(&pem) {
                    errs.push(FieldError::invalid("spec.request", "<bytes>", why));
                }
            }
        },
    }
    match spec["signerName"].as_str() {
        None | Some("") => errs.push(FieldError::required("spec.signerName", "")),
        Some(name) => {
            if let Some(why) = signer_name_problem(name) {
                errs.push(FieldError::invalid(
                    "spec.signerName",
                    render(Some(&spec["signerName"])),
                    why,
                ));
            }
        }
    }
    match spec["usages"].as_array() {
        None => errs.push(FieldError::required("spec.usages", "")),
        Some(usages) if usages.is_empty() => errs.push(FieldError::required("spec.usages", "")),
        Some(usages) => {
            for (i, usage) in usages.iter().enumerate() {
                let text = usage.as_str().unwrap_or_default();
                if !KNOWN_USAGES.contains(&text) {
                    errs.push(FieldError::not_supported(
                        index("spec.usages", i),
                        render(Some(usage)),
                        KNOWN_USAGES,
                    ));
                }
            }
        }
    }
    if let Some(seconds) = spec.get("expirationSeconds").filter(|v| !v.is_null()) {
        if seconds.as_i64().unwrap_or(0) < csr::MIN_EXPIRATION_SECONDS {
            errs.push(FieldError::invalid(
                "spec.expirationSeconds",
                render(Some(seconds)),
                "may not specify a duration less than 600 seconds (10 minutes)",
            ));
        }
    }
    validate_status(object, old, errs);
}

/// A signer name is a domain and a path: `example.com/my-signer`.
fn signer_name_problem(name: &str) -> Option<&'static str> {
    let Some((domain, path)) = name.split_once('/') else {
        return Some(
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        );
    };
    if path.is_empty()
        || !domain.contains('.')
        || !api::names::is_dns1123_subdomain(domain).is_empty()
    {
        return Some(
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        );
    }
    None
}

fn validate_status(object: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let conditions = object["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut seen: Vec<&str> = Vec::new();
    for (i, condition) in conditions.iter().enumerate() {
        let path = index("status.conditions", i);
        let kind = condition["type"].as_str().unwrap_or_default();
        if kind.is_empty() {
            errs.push(FieldError::required(format!("{path}.type"), ""));
            continue;
        }
        if seen.contains(&kind) && matches!(kind, APPROVED | DENIED | FAILED) {
            errs.push(FieldError::duplicate(
                format!("{path}.type"),
                render(Some(&condition["type"])),
            ));
        }
        seen.push(kind);
        if matches!(kind, APPROVED | DENIED) && condition["status"] != "True" {
            errs.push(FieldError::not_supported(
                format!("{path}.status"),
                render(Some(&condition["status"])),
                &["True"],
            ));
        }
    }
    if seen.contains(&APPROVED) && seen.contains(&DENIED) {
        errs.push(FieldError::invalid(
            "status.conditions",
            "",
            "Approved and Denied conditions are mutually exclusive",
        ));
    }
    let certificate = object["status"]["certificate"].as_str().unwrap_or_default();
    let before = old
        .and_then(|o| o["status"]["certificate"].as_str())
        .unwrap_or_default();
    if !certificate.is_empty() && certificate != before {
        if !before.is_empty() {
            errs.push(FieldError::forbidden(
                "status.certificate",
                "updates may not modify existing certificate content",
            ));
        } else if !csr::is_approved(object) {
            errs.push(FieldError::forbidden(
                "status.certificate",
                "updates may not set certificate content unless the Approved condition is present",
            ));
        }
    }
}
