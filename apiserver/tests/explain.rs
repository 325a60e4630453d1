//! What the real kubectl reads in the OpenAPI documents (issue 12):
//! `kubectl explain` walks the kinds' schemas, generated from the
//! k8s-openapi types with upstream's descriptions; a kind that is not
//! served passes validation and is named as kubectl names it. One
//! apiserver over HTTPS per test.

mod common;

use common::{kubectl_as, text, Secure};

fn explain(f: &Secure, args: &[&str]) -> String {
    let out = kubectl_as(&f.admin, &[&["explain"], args].concat(), None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn explain_service_spec_lists_its_fields_with_descriptions() {
    let f = Secure::start();
    let out = explain(&f, &["service.spec"]);
    assert!(
        out.starts_with("KIND:       Service\nVERSION:    v1"),
        "{out}"
    );
    assert!(out.contains("FIELD: spec <ServiceSpec>"), "{out}");
    assert!(
        out.contains("ServiceSpec describes the attributes that a user creates on a service."),
        "{out}"
    );
    assert!(out.contains("  clusterIP\t<string>"), "{out}");
    assert!(out.contains("  ports\t<[]ServicePort>"), "{out}");
}

#[test]
fn explain_deployment_spec_replicas_describes_one_field() {
    let f = Secure::start();
    let out = explain(&f, &["deployment.spec.replicas"]);
    assert!(
        out.starts_with("GROUP:      apps\nKIND:       Deployment"),
        "{out}"
    );
    assert!(out.contains("FIELD: replicas <integer>"), "{out}");
    assert!(out.contains("Number of desired pods."), "{out}");
}

#[test]
fn explain_pods_spec_recursive_walks_every_level() {
    let f = Secure::start();
    let out = explain(&f, &["pods.spec", "--recursive"]);
    assert!(
        out.contains("  containers\t<[]Container> -required-"),
        "{out}"
    );
    assert!(out.contains("    image\t<string>"), "{out}");
    assert!(
        out.contains("      containerPort\t<integer> -required-"),
        "{out}"
    );
}

#[test]
fn explain_a_field_that_does_not_exist_says_so() {
    let f = Secure::start();
    let out = kubectl_as(&f.admin, &["explain", "service.spec.nope"], None);
    assert!(!out.status.success());
    assert_eq!(text(&out.stderr), "error: field \"nope\" does not exist");
}

#[test]
fn a_manifest_with_an_unserved_kind_applies_the_rest_and_names_the_kind() {
    let f = Secure::start();
    let manifest = "
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {color: blue}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  defaultBackend:
    service: {name: web, port: {number: 80}}
";
    let out = kubectl_as(&f.admin, &["apply", "-f", "-"], Some(manifest));
    assert!(!out.status.success());
    assert_eq!(text(&out.stdout), "configmap/settings created");
    assert_eq!(
        text(&out.stderr),
        "error: resource mapping not found for name: \"web\" namespace: \"\" from \"STDIN\": no matches for kind \"Ingress\" in version \"networking.k8s.io/v1\"\nensure CRDs are installed first"
    );
}
