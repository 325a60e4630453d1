//! CertificateSigningRequests: what the apiserver adds to a plain stored
//! object (upstream's `pkg/registry/certificates` strategies and the
//! certificate admission plugins). The flow is in [`api::certificates`].
//!
//! - **Who asked is the server's to say.** A create records the caller in
//!   `spec.username`, `spec.uid`, `spec.groups` and `spec.extra`: an
//!   approver decides on that, so a body cannot claim to be someone else.
//! - **Three endpoints, three parts.** The object itself changes only
//!   metadata (a request is immutable once sent); `/approval` only the
//!   `Approved`/`Denied` conditions; `/status` the certificate and the
//!   other conditions.
//! - **Approving and signing are permissions of their own** (the
//!   CertificateApproval and CertificateSigning plugins): write access to
//!   `/approval` is not enough, the caller also needs the verb `approve`
//!   (or `sign`, for `/status`) on `signers` named after the request's
//!   signer, or its domain with `/*`.
//! - **No one gets `system:masters` through a CSR**
//!   (CertificateSubjectRestriction).

use serde_json::{json, Value};

use api::certificates::{self as csr, APPROVED, DENIED};
use api::user::{UserInfo, SYSTEM_MASTERS};

use crate::authz::Attributes;
use crate::rest::write::Part;
use crate::status::StatusError;
use crate::storage::Snapshot;

/// Whether `resource` is CertificateSigningRequests.
pub fn is_csr(resource: &api::resources::ResourceType) -> bool {
    (resource.group, resource.kind) == ("certificates.k8s.io", "CertificateSigningRequest")
}

/// A create: the requester is the caller, the status starts empty, and no
/// request for an apiserver client certificate may name `system:masters`.
pub fn prepare_for_create(object: &mut Value, caller: &UserInfo) -> Result<(), StatusError> {
    let spec = &mut object["spec"];
    if !spec.is_object() {
        *spec = json!({});
    }
    spec["username"] = json!(caller.username);
    if caller.uid.is_empty() {
        if let Some(spec) = spec.as_object_mut() {
            spec.remove("uid");
        }
    } else {
        spec["uid"] = json!(caller.uid);
    }
    spec["groups"] = json!(caller.groups);
    if let Some(spec) = spec.as_object_mut() {
        spec.remove("extra");
    }
    if let Some(object) = object.as_object_mut() {
        object.remove("status");
    }
    if object["spec"]["signerName"] == csr::SIGNER_KUBE_APISERVER_CLIENT {
        let masters = csr::request_pem(object)
            .and_then(|pem| csr::parse_request(&pem).ok())
            .is_some_and(|request| request.organizations.iter().any(|o| o == SYSTEM_MASTERS));
        if masters {
            return Err(StatusError::new(
                403,
                "Forbidden",
                format!(
                    "use of {} signer with {SYSTEM_MASTERS} group is not allowed",
                    csr::SIGNER_KUBE_APISERVER_CLIENT
                ),
            ));
        }
    }
    Ok(())
}

fn is_approval(condition: &Value) -> bool {
    condition["type"] == APPROVED || condition["type"] == DENIED
}

fn conditions(object: &Value) -> Vec<Value> {
    object["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// An update through `part`: `new` (the stored object with the client's
/// change merged in) keeps what that endpoint may not change.
pub fn prepare_for_update(part: Part, current: &Value, new: &mut Value) {
    // The request itself never changes.
    new["spec"] = current["spec"].clone();
    let proposed = conditions(new);
    let stored = conditions(current);
    let kept: Vec<Value> = match part {
        Part::Main => {
            new["status"] = current["status"].clone();
            return;
        }
        // The approval conditions as stored, the others from the client.
        Part::Status => stored
            .iter()
            .filter(|c| is_approval(c))
            .chain(proposed.iter().filter(|c| !is_approval(c)))
            .cloned()
            .collect(),
        // The reverse, and the certificate as stored.
        Part::Approval => {
            match current["status"].get("certificate") {
                Some(certificate) => new["status"]["certificate"] = certificate.clone(),
                None => {
                    if let Some(status) = new["status"].as_object_mut() {
                        status.remove("certificate");
                    }
                }
            }
            proposed
                .iter()
                .filter(|c| is_approval(c))
                .chain(stored.iter().filter(|c| !is_approval(c)))
                .cloned()
                .collect()
        }
    };
    if kept.is_empty() {
        if let Some(status) = new["status"].as_object_mut() {
            status.remove("conditions");
        }
    } else {
        new["status"]["conditions"] = Value::Array(kept);
    }
}

/// CertificateApproval / CertificateSigning: may `caller` approve (through
/// `/approval`) or sign (through `/status`) requests for `signer_name`?
pub fn authorize_signer(
    snapshot: &Snapshot<'_>,
    caller: &UserInfo,
    part: Part,
    signer_name: &str,
) -> Result<(), StatusError> {
    let (verb, doing) = match part {
        Part::Approval => ("approve", "approve"),
        Part::Status => ("sign", "sign"),
        Part::Main => return Ok(()),
    };
    let on = |name: String| Attributes::Resource {
        verb: verb.into(),
        group: "certificates.k8s.io".into(),
        resource: "signers".into(),
        subresource: String::new(),
        namespace: String::new(),
        name,
    };
    // `example.com/*` grants every signer of that domain.
    let domain = signer_name
        .split_once('/')
        .map(|(domain, _)| format!("{domain}/*"));
    let allowed = crate::authz::allowed(snapshot, caller, &on(signer_name.to_string()))
        || domain.is_some_and(|d| crate::authz::allowed(snapshot, caller, &on(d)));
    if allowed {
        Ok(())
    } else {
        Err(StatusError::new(
            403,
            "Forbidden",
            format!("user not permitted to {doing} requests with signerName \"{signer_name}\""),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(kind: &str) -> Value {
        json!({"type": kind, "status": "True", "reason": "Test"})
    }

    fn stored() -> Value {
        json!({
            "spec": {"signerName": csr::SIGNER_KUBELET_CLIENT, "username": "system:bootstrap:abcdef"},
            "status": {"conditions": [condition("Approved")], "certificate": "LS0tQ0VSVA=="},
        })
    }

    #[test]
    fn a_create_records_the_caller_not_the_body() {
        let mut object = json!({"spec": {"username": "system:admin", "groups": ["system:masters"],
                                         "signerName": csr::SIGNER_KUBELET_CLIENT},
                                "status": {"certificate": "forged"}});
        let caller =
            UserInfo::authenticated("system:bootstrap:abcdef", &["system:bootstrappers".into()]);
        prepare_for_create(&mut object, &caller).unwrap();
        assert_eq!(object["spec"]["username"], "system:bootstrap:abcdef");
        assert_eq!(
            object["spec"]["groups"],
            json!(["system:bootstrappers", "system:authenticated"])
        );
        assert!(object.get("status").is_none());
    }

    #[test]
    fn no_masters_through_a_csr() {
        let (request, _) = csr::make_request("eve", &[SYSTEM_MASTERS], &[], &[]).unwrap();
        use base64::Engine as _;
        let mut object = json!({"spec": {
            "signerName": csr::SIGNER_KUBE_APISERVER_CLIENT,
            "request": base64::engine::general_purpose::STANDARD.encode(request),
        }});
        let error =
            prepare_for_create(&mut object, &UserInfo::authenticated("eve", &[])).unwrap_err();
        assert_eq!(error.code, 403);
        assert_eq!(
            error.message,
            "use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed"
        );
    }

    #[test]
    fn the_status_endpoint_cannot_approve_and_approval_cannot_sign() {
        let mut through_status = json!({
            "spec": {"username": "changed"},
            "status": {"conditions": [condition("Denied"), condition("Failed")], "certificate": "new"},
        });
        prepare_for_update(Part::Status, &stored(), &mut through_status);
        assert_eq!(through_status["spec"], stored()["spec"]);
        assert_eq!(
            through_status["status"]["conditions"],
            json!([condition("Approved"), condition("Failed")])
        );
        assert_eq!(through_status["status"]["certificate"], "new");

        let mut through_approval = json!({
            "status": {"conditions": [condition("Denied")], "certificate": "forged"},
        });
        prepare_for_update(Part::Approval, &stored(), &mut through_approval);
        assert_eq!(
            through_approval["status"]["conditions"],
            json!([condition("Denied")])
        );
        assert_eq!(through_approval["status"]["certificate"], "LS0tQ0VSVA==");
    }

    #[test]
    fn the_object_itself_changes_only_metadata() {
        let mut new =
            json!({"metadata": {"labels": {"a": "b"}}, "spec": {"username": "x"}, "status": {}});
        prepare_for_update(Part::Main, &stored(), &mut new);
        assert_eq!(new["spec"], stored()["spec"]);
        assert_eq!(new["status"], stored()["status"]);
        assert_eq!(new["metadata"]["labels"]["a"], "b");
    }
}
