//! Bearer tokens over HTTPS (issue 11): ServiceAccount tokens from
//! `kubectl create token` (a TokenRequest), bound tokens revoked with
//! their Pod, and kubeadm's bootstrap tokens. Each test has its own
//! apiserver and CA; the real kubectl speaks to it.

mod common;

use common::{kubectl_as, text};

type Fixture = common::Secure;

fn start() -> Fixture {
    Fixture::start()
}

impl Fixture {
    fn apply(&self, manifest: &str) {
        let out = kubectl_as(&self.admin, &["apply", "-f", "-"], Some(manifest));
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
}

const ACCOUNT: &str = "
apiVersion: v1
kind: ServiceAccount
metadata: {name: default, namespace: default}
";

#[test]
fn kubectl_create_token_gives_a_token_that_authenticates_as_the_account() {
    let f = start();
    f.apply(ACCOUNT);
    let created = kubectl_as(&f.admin, &["create", "token", "default"], None);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let token = text(&created.stdout);
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let as_account = f.token_kubeconfig(&token);
    let whoami = text(&kubectl_as(&as_account, &["auth", "whoami"], None).stdout);
    assert!(
        whoami.contains("system:serviceaccount:default:default"),
        "{whoami}"
    );
    assert!(
        whoami.contains("system:serviceaccounts:default"),
        "{whoami}"
    );
    let denied = kubectl_as(&as_account, &["get", "pods"], None);
    assert_eq!(
        text(&denied.stderr),
        "Error from server (Forbidden): pods is forbidden: User \"system:serviceaccount:default:default\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
    );
    f.apply(
        "
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: default-view, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{kind: ServiceAccount, name: default, namespace: default}]
",
    );
    let allowed = kubectl_as(&as_account, &["get", "pods"], None);
    assert!(allowed.status.success(), "{}", text(&allowed.stderr));
}

#[test]
fn a_token_dies_with_its_account() {
    let f = start();
    f.apply(ACCOUNT);
    let token = text(&kubectl_as(&f.admin, &["create", "token", "default"], None).stdout);
    let as_account = f.token_kubeconfig(&token);
    assert!(kubectl_as(&as_account, &["auth", "whoami"], None)
        .status
        .success());
    kubectl_as(&f.admin, &["delete", "serviceaccount", "default"], None);
    f.apply(ACCOUNT); // the same name, another uid
    let after = kubectl_as(&as_account, &["auth", "whoami"], None);
    assert!(
        text(&after.stderr).contains("Unauthorized"),
        "{}",
        text(&after.stderr)
    );
}

#[test]
fn a_short_token_is_refused_with_the_field() {
    let f = start();
    f.apply(ACCOUNT);
    let out = kubectl_as(
        &f.admin,
        &["create", "token", "default", "--duration=1m"],
        None,
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_bootstrap_token_is_a_bootstrapper_and_no_more() {
    let f = start();
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let expires = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    f.apply(&format!(
        "
apiVersion: v1
kind: Secret
metadata: {{name: bootstrap-token-abcdef, namespace: kube-system}}
type: bootstrap.kubernetes.io/token
data:
  token-id: {}
  token-secret: {}
  usage-bootstrap-authentication: {}
  expiration: {}
",
        b64("abcdef"),
        b64("0123456789abcdef"),
        b64("true"),
        b64(&expires)
    ));
    let joining = f.token_kubeconfig("abcdef.0123456789abcdef");
    let whoami = text(&kubectl_as(&joining, &["auth", "whoami"], None).stdout);
    assert!(whoami.contains("system:bootstrap:abcdef"), "{whoami}");
    assert!(whoami.contains("system:bootstrappers"), "{whoami}");
    let can = |args: &[&str]| {
        text(&kubectl_as(&joining, &[&["auth", "can-i"], args].concat(), None).stdout)
    };
    // kubeadm's join: a CertificateSigningRequest (asked as a raw review:
    // kubectl resolves resource names through discovery first).
    let review = kubectl_as(
        &joining,
        &["create", "-f", "-", "--validate=false", "-o", "jsonpath={.status.allowed}"],
        Some(
            "
apiVersion: authorization.k8s.io/v1
kind: SelfSubjectAccessReview
spec:
  resourceAttributes: {group: certificates.k8s.io, resource: certificatesigningrequests, verb: create}
",
        ),
    );
    assert_eq!(text(&review.stdout), "true", "{}", text(&review.stderr));
    assert_eq!(can(&["list", "pods"]), "no");
    // A wrong secret is no one, not anonymous.
    let wrong = f.token_kubeconfig("abcdef.0000000000000000");
    assert!(text(&kubectl_as(&wrong, &["auth", "whoami"], None).stderr).contains("Unauthorized"));
}

#[test]
fn a_token_bound_to_a_pod_dies_with_the_pod() {
    let f = start();
    f.apply(ACCOUNT);
    f.apply(
        "
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default}
spec:
  containers: [{name: c, image: kube-lite/echo}]
",
    );
    let created = kubectl_as(
        &f.admin,
        &[
            "create",
            "token",
            "default",
            "--bound-object-kind=Pod",
            "--bound-object-name=client",
        ],
        None,
    );
    assert!(created.status.success(), "{}", text(&created.stderr));
    let as_pod = f.token_kubeconfig(&text(&created.stdout));
    assert!(kubectl_as(&as_pod, &["auth", "whoami"], None)
        .status
        .success());
    let deleted = kubectl_as(
        &f.admin,
        &["delete", "pod", "client", "--grace-period=0", "--force"],
        None,
    );
    assert!(deleted.status.success(), "{}", text(&deleted.stderr));
    let after = kubectl_as(&as_pod, &["auth", "whoami"], None);
    assert!(
        text(&after.stderr).contains("Unauthorized"),
        "{}",
        text(&after.stderr)
    );
}
