//! CertificateSigningRequests over HTTPS with the real kubectl (issue 13):
//! who asked is recorded by the server, `kubectl get csr` and `kubectl
//! certificate approve|deny`, approving and signing are permissions of
//! their own, and bad requests are refused with the field.

mod common;

use std::path::PathBuf;

use base64::Engine as _;
use common::{kubectl_as, text};

type Fixture = common::Secure;

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

impl Fixture {
    fn apply(&self, kubeconfig: &std::path::Path, manifest: &str) -> std::process::Output {
        kubectl_as(kubeconfig, &["apply", "-f", "-"], Some(manifest))
    }

    /// A joining node: a bootstrap token `abcdef.0123456789abcdef`, and a
    /// kubeconfig that carries only it.
    fn bootstrapper(&self) -> PathBuf {
        let expires = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
        let out = self.apply(
            &self.admin,
            &format!(
                "
apiVersion: v1
kind: Secret
metadata: {{name: bootstrap-token-abcdef, namespace: kube-system}}
type: bootstrap.kubernetes.io/token
data:
  token-id: {}
  token-secret: {}
  usage-bootstrap-authentication: {}
  auth-extra-groups: {}
  expiration: {}
",
                b64("abcdef"),
                b64("0123456789abcdef"),
                b64("true"),
                b64("system:bootstrappers:kubeadm:default-node-token"),
                b64(&expires)
            ),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        self.token_kubeconfig("abcdef.0123456789abcdef")
    }
}

/// A CSR manifest for `cn` in `o`, to `signer`.
fn csr_manifest(name: &str, cn: &str, o: &[&str], signer: &str, usages: &str) -> String {
    let (request, _key) = api::certificates::make_request(cn, o, &[], &[]).unwrap();
    format!(
        "
apiVersion: certificates.k8s.io/v1
kind: CertificateSigningRequest
metadata: {{name: {name}}}
spec:
  request: {}
  signerName: {signer}
  usages: {usages}
  username: system:admin
  groups: [system:masters]
",
        b64(&request)
    )
}

fn node_client_csr(name: &str) -> String {
    csr_manifest(
        name,
        "system:node:w1",
        &["system:nodes"],
        "kubernetes.io/kube-apiserver-client-kubelet",
        "[digital signature, client auth]",
    )
}

#[test]
fn a_csr_records_who_sent_it_and_kubectl_lists_it_pending() {
    let f = Fixture::start();
    let joining = f.bootstrapper();
    let out = kubectl_as(
        &joining,
        &["create", "-f", "-"],
        Some(&node_client_csr("node-w1")),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let who = kubectl_as(
        &f.admin,
        &[
            "get",
            "csr",
            "node-w1",
            "-o",
            "jsonpath={.spec.username} {.spec.groups}",
        ],
        None,
    );
    assert_eq!(
        text(&who.stdout),
        r#"system:bootstrap:abcdef ["system:bootstrappers","system:bootstrappers:kubeadm:default-node-token","system:authenticated"]"#
    );
    let listed = text(&kubectl_as(&f.admin, &["get", "csr"], None).stdout);
    let lines: Vec<&str> = listed.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "AGE",
            "SIGNERNAME",
            "REQUESTOR",
            "REQUESTEDDURATION",
            "CONDITION"
        ]
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[0], "node-w1");
    assert_eq!(
        row[2..],
        [
            "kubernetes.io/kube-apiserver-client-kubelet",
            "system:bootstrap:abcdef",
            "<none>",
            "Pending"
        ]
    );
}

#[test]
fn kubectl_certificate_approve_and_deny_set_the_conditions() {
    let f = Fixture::start();
    for name in ["one", "two"] {
        let out = f.apply(&f.admin, &node_client_csr(name));
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let approve = kubectl_as(&f.admin, &["certificate", "approve", "one"], None);
    assert_eq!(
        text(&approve.stdout),
        "certificatesigningrequest.certificates.k8s.io/one approved"
    );
    let deny = kubectl_as(&f.admin, &["certificate", "deny", "two"], None);
    assert_eq!(
        text(&deny.stdout),
        "certificatesigningrequest.certificates.k8s.io/two denied"
    );
    let conditions = kubectl_as(
        &f.admin,
        &[
            "get",
            "csr",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.status.conditions[0].type}/{.status.conditions[0].reason} {end}",
        ],
        None,
    );
    assert_eq!(
        text(&conditions.stdout),
        "one=Approved/KubectlApprove two=Denied/KubectlDeny"
    );
    // A denied request cannot be approved as well (kubectl itself
    // refuses to try, so the PUT is raw).
    let mut two: serde_json::Value = serde_json::from_slice(
        &kubectl_as(&f.admin, &["get", "csr", "two", "-o", "json"], None).stdout,
    )
    .unwrap();
    let conditions = two["status"]["conditions"].as_array_mut().unwrap();
    conditions.push(serde_json::json!({"type": "Approved", "status": "True", "reason": "Both"}));
    let file = f.dir.path().join("two.json");
    std::fs::write(&file, two.to_string()).unwrap();
    let both = kubectl_as(
        &f.admin,
        &[
            "replace",
            "--raw",
            "/apis/certificates.k8s.io/v1/certificatesigningrequests/two/approval",
            "-f",
            &file.display().to_string(),
        ],
        None,
    );
    assert!(
        text(&both.stderr).contains("Approved and Denied conditions are mutually exclusive"),
        "{}",
        text(&both.stderr)
    );
}

#[test]
fn a_bootstrapper_cannot_approve_its_own_request() {
    let f = Fixture::start();
    let joining = f.bootstrapper();
    kubectl_as(
        &joining,
        &["create", "-f", "-"],
        Some(&node_client_csr("mine")),
    );
    let out = kubectl_as(&joining, &["certificate", "approve", "mine"], None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("Forbidden"),
        "{}",
        text(&out.stderr)
    );
    // Write access to /approval is not enough without `approve` on the signer.
    let approver = f.api.kubeconfig("jane", &[]);
    let out = f.apply(
        &f.admin,
        "
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: csr-approval-only}
rules:
- {apiGroups: [certificates.k8s.io], resources: [certificatesigningrequests, certificatesigningrequests/approval], verbs: [get, list, update]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: jane-csr-approval-only}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: csr-approval-only}
subjects: [{kind: User, name: jane, apiGroup: rbac.authorization.k8s.io}]
",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = kubectl_as(&approver, &["certificate", "approve", "mine"], None);
    assert!(
        text(&out.stderr).contains(
            "user not permitted to approve requests with signerName \"kubernetes.io/kube-apiserver-client-kubelet\""
        ),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn no_certificate_before_approval() {
    let f = Fixture::start();
    f.apply(&f.admin, &node_client_csr("early"));
    let path = "/apis/certificates.k8s.io/v1/certificatesigningrequests/early/status";
    let body = r#"{"status":{"certificate":"LS0tLS1CRUdJTg=="}}"#;
    let out = kubectl_as(
        &f.admin,
        &[
            "patch",
            "csr",
            "early",
            "--subresource=status",
            "--type=merge",
            "-p",
            body,
        ],
        None,
    );
    assert!(
        text(&out.stderr).contains(
            "status.certificate: Forbidden: updates may not set certificate content unless the Approved condition is present"
        ),
        "{path}: {}",
        text(&out.stderr)
    );
}

#[test]
fn bad_requests_are_refused_with_the_field() {
    let f = Fixture::start();
    let garbage = format!(
        "
apiVersion: certificates.k8s.io/v1
kind: CertificateSigningRequest
metadata: {{name: garbage}}
spec: {{request: {}, signerName: nonsense, usages: [flying]}}
",
        b64("hello")
    );
    let out = f.apply(&f.admin, &garbage);
    let stderr = text(&out.stderr);
    for expected in [
        "spec.request: Invalid value: <bytes>: PEM block type must be CERTIFICATE REQUEST",
        "spec.signerName: Invalid value: \"nonsense\": must be a fully qualified domain and path of the form 'example.com/signer-name'",
        "spec.usages[0]: Unsupported value: \"flying\"",
    ] {
        assert!(stderr.contains(expected), "{expected}\n{stderr}");
    }
    // Nobody gets system:masters through a CSR.
    let masters = csr_manifest(
        "masters",
        "eve",
        &["system:masters"],
        "kubernetes.io/kube-apiserver-client",
        "[client auth]",
    );
    let out = f.apply(&f.admin, &masters);
    assert!(
        text(&out.stderr).contains(
            "use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed"
        ),
        "{}",
        text(&out.stderr)
    );
}
