//! The official Python `kubernetes` client (Debian's python3-kubernetes,
//! installed by scripts/install-deps.sh) against the apiserver over HTTPS
//! with the administrator's kubeconfig: what a course's Python exercises
//! call. Each test has its own apiserver.

mod common;

use std::process::Command;

use common::Secure;

/// Runs `body` after `from kubernetes import client, config, watch` and
/// loading the admin kubeconfig; asserts success; its stdout, trimmed.
fn python(f: &Secure, body: &str) -> String {
    let script = format!(
        "import sys\nfrom kubernetes import client, config, watch\nconfig.load_kube_config(sys.argv[1])\n{body}\n"
    );
    let output = Command::new("/usr/bin/python3")
        .args(["-c", &script])
        .arg(&f.admin)
        .output()
        .expect("/usr/bin/python3 (scripts/install-deps.sh installs it)");
    assert!(
        output.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[test]
fn it_lists_namespaces() {
    let f = Secure::start();
    let names = python(
        &f,
        "print(' '.join(n.metadata.name for n in client.CoreV1Api().list_namespace().items))",
    );
    assert!(names.contains("kube-system"), "{names}");
}

#[test]
fn version_api_get_code_reads_version_with_a_trailing_slash() {
    let f = Secure::start();
    let version = python(&f, "print(client.VersionApi().get_code().git_version)");
    assert!(version.starts_with("v1.35"), "{version}");
}

#[test]
fn core_api_get_api_versions() {
    let f = Secure::start();
    assert_eq!(
        python(&f, "print(client.CoreApi().get_api_versions().versions)"),
        "['v1']"
    );
}

#[test]
fn deleting_a_service_answers_with_the_service() {
    let f = Secure::start();
    let deleted = python(
        &f,
        "v1 = client.CoreV1Api()
svc = client.V1Service(metadata=client.V1ObjectMeta(name='web'),
    spec=client.V1ServiceSpec(selector={'app': 'web'}, ports=[client.V1ServicePort(port=80)]))
v1.create_namespaced_service('default', svc)
gone = v1.delete_namespaced_service('web', 'default')
print(gone.kind, len(v1.list_namespaced_service('default').items))",
    );
    // This client (22.6) reads the answer as a Status; the apiserver's is
    // the Service, as kube-apiserver's is since 1.23: it reads fine.
    assert_eq!(deleted, "Service 0");
}

#[test]
fn deleting_an_unscheduled_pod_answers_with_the_pod() {
    let f = Secure::start();
    let deleted = python(
        &f,
        "v1 = client.CoreV1Api()
v1.create_namespaced_service_account('default', client.V1ServiceAccount(metadata=client.V1ObjectMeta(name='default')))
pod = client.V1Pod(metadata=client.V1ObjectMeta(name='p'),
    spec=client.V1PodSpec(containers=[client.V1Container(name='c', image='busybox')]))
v1.create_namespaced_pod('default', pod)
gone = v1.delete_namespaced_pod('p', 'default')
print(gone.kind, gone.metadata.name)
print(len(v1.list_namespaced_pod('default').items))",
    );
    assert_eq!(deleted, "Pod p\n0");
}

#[test]
fn a_watch_streams_the_objects() {
    let f = Secure::start();
    let seen = python(
        &f,
        "v1 = client.CoreV1Api()
v1.create_namespaced_config_map('default', client.V1ConfigMap(metadata=client.V1ObjectMeta(name='settings'), data={'a': 'b'}))
for event in watch.Watch().stream(v1.list_namespaced_config_map, 'default', timeout_seconds=5):
    if event['object'].metadata.name == 'settings':
        print(event['type'], event['object'].data['a'])
        break",
    );
    assert_eq!(seen, "ADDED b");
}
