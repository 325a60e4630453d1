//! Defaulting: the fields Kubernetes fills in when a manifest leaves them out.
//!
//! The lesson's Service manifest says only `port: 80`, yet `kubectl get svc
//! -o yaml` shows `type: ClusterIP`, `protocol: TCP`, `sessionAffinity:
//! None`, `ipFamilies: [IPv4]` and more. The API server wrote those: before
//! an object is validated and stored, every field the user did not set gets
//! its default (`pkg/apis/core/v1/defaults.go`, `pkg/apis/apps/v1/defaults.go`
//! upstream). Controllers and kubectl then never have to guess what an
//! absent field means.
//!
//! Two properties matter:
//!
//! - Only *unset* fields are touched. In Go an empty string or a zero
//!   number is the same as "unset" for non-pointer fields, so we treat `""`
//!   and `0` that way where Go does, and `null`/absent everywhere.
//! - Defaulting is idempotent: defaulting a defaulted object changes
//!   nothing. The API server defaults on every write (create, update,
//!   patch), so this is what keeps `kubectl apply` from showing diffs.
//!
//! Defaults are applied to the JSON object itself, so fields kube-lite does
//! not know about are kept untouched.

use api::resources::ResourceType;
use serde_json::{json, Map, Value};

/// `terminationGracePeriodSeconds` when a Pod does not say.
pub const DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS: i64 = 30;
/// `sessionAffinityConfig.clientIP.timeoutSeconds` for ClientIP affinity: 3 hours.
pub const DEFAULT_CLIENT_IP_AFFINITY_SECONDS: i64 = 10800;
/// The file mode of ConfigMap/Secret volume files, 0644.
pub const DEFAULT_VOLUME_FILE_MODE: i64 = 0o644;

/// Fills in every default of `obj`, an object of kind `resource`.
/// Kinds without defaults are left as they are.
pub fn apply_defaults(resource: &ResourceType, obj: &mut Value) {
    if !obj.is_object() {
        return;
    }
    match (resource.group, resource.kind) {
        ("", "Service") => default_service(obj),
        ("", "Pod") => default_pod(obj),
        ("", "Namespace") => default_namespace(obj),
        ("", "Node") => default_node(obj),
        ("", "Endpoints") => default_endpoints(obj),
        ("", "Secret") => {
            set_if_unset(obj, "type", json!("Opaque"));
            merge_string_data(obj);
        }
        ("apps", "Deployment") => {
            default_deployment(obj);
            default_pod_template(obj);
        }
        ("apps", "ReplicaSet") => {
            if let Some(spec) = object_at(obj, "spec") {
                set_if_absent(spec, "replicas", json!(1));
            }
            default_pod_template(obj);
        }
        ("apps", "DaemonSet") => {
            default_daemonset(obj);
            default_pod_template(obj);
        }
        ("apps", "StatefulSet") => {
            default_statefulset(obj);
            default_pod_template(obj);
        }
        ("batch", "Job") => {
            default_job(obj);
            default_pod_template(obj);
        }
        ("batch", "CronJob") => {
            if let Some(spec) = object_at(obj, "spec") {
                set_if_absent(spec, "concurrencyPolicy", json!("Allow"));
                set_if_absent(spec, "suspend", json!(false));
                set_if_absent(spec, "successfulJobsHistoryLimit", json!(3));
                set_if_absent(spec, "failedJobsHistoryLimit", json!(1));
                // The Jobs it makes are defaulted when they are created;
                // their template is defaulted here as upstream does.
                if let Some(job_template) = object_at(spec, "jobTemplate") {
                    default_pod_template(job_template);
                }
            }
        }
        ("discovery.k8s.io", "EndpointSlice") => {
            for port in objects_in(obj, "ports") {
                set_if_absent(port, "name", json!(""));
                set_if_absent(port, "protocol", json!("TCP"));
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// Job

/// `SetDefaults_Job`: one Pod at a time until one succeeds, 6 retries.
fn default_job(job: &mut Value) {
    let Some(spec) = object_at(job, "spec") else {
        return;
    };
    if spec.get("completions").is_none_or(Value::is_null)
        && spec.get("parallelism").is_none_or(Value::is_null)
    {
        spec["completions"] = json!(1);
        spec["parallelism"] = json!(1);
    }
    set_if_absent(spec, "parallelism", json!(1));
    set_if_absent(spec, "backoffLimit", json!(6));
    set_if_absent(spec, "completionMode", json!("NonIndexed"));
    set_if_absent(spec, "suspend", json!(false));
    set_if_absent(spec, "manualSelector", json!(false));
    set_if_absent(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
    // A Job without labels wears its template's.
    let template_labels = job["spec"]["template"]["metadata"]["labels"].clone();
    let no_labels = job["metadata"]["labels"]
        .as_object()
        .is_none_or(|l| l.is_empty());
    if no_labels && template_labels.is_object() {
        job["metadata"]["labels"] = template_labels;
    }
}

// ---------------------------------------------------------------------------
// Secret

/// `stringData` is a write-only convenience: each of its values is stored
/// in `data`, base64-encoded, over a `data` value of the same key, and
/// `stringData` itself is never stored (upstream does this in the v1 to
/// internal conversion, so `kubectl get secret -o yaml` never shows it).
fn merge_string_data(secret: &mut Value) {
    use base64::Engine as _;
    let Some(Value::Object(string_data)) =
        secret.as_object_mut().and_then(|o| o.remove("stringData"))
    else {
        return;
    };
    if !secret["data"].is_object() {
        secret["data"] = json!({});
    }
    for (key, value) in string_data {
        let text = value.as_str().unwrap_or_default();
        secret["data"][key] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
}

// ---------------------------------------------------------------------------
// Service

fn default_service(svc: &mut Value) {
    let Some(spec) = object_at(svc, "spec") else {
        return;
    };
    set_if_unset(spec, "sessionAffinity", json!("None"));
    match spec["sessionAffinity"].as_str() {
        // Upstream drops a config that does not apply.
        Some("None") => {
            if let Some(map) = spec.as_object_mut() {
                map.remove("sessionAffinityConfig");
            }
        }
        Some("ClientIP") => {
            let timeout = spec.pointer("/sessionAffinityConfig/clientIP/timeoutSeconds");
            if timeout.is_none_or(Value::is_null) {
                spec["sessionAffinityConfig"] = json!({
                    "clientIP": { "timeoutSeconds": DEFAULT_CLIENT_IP_AFFINITY_SECONDS }
                });
            }
        }
        _ => {}
    }
    set_if_unset(spec, "type", json!("ClusterIP"));
    for port in objects_in(spec, "ports") {
        set_if_unset(port, "protocol", json!("TCP"));
        // targetPort defaults to the port itself: "forward 80 to 80".
        let target_unset = match port.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::Number(n)) => n.as_i64() == Some(0),
            Some(Value::String(s)) => s.is_empty(),
            Some(_) => false,
        };
        if target_unset {
            let port_number = port.get("port").cloned().unwrap_or(json!(0));
            port["targetPort"] = port_number;
        }
    }
    let service_type = spec["type"].as_str().unwrap_or_default().to_string();
    if externally_accessible(spec) {
        set_if_unset(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if matches!(
        service_type.as_str(),
        "ClusterIP" | "NodePort" | "LoadBalancer"
    ) {
        set_if_absent(spec, "internalTrafficPolicy", json!("Cluster"));
        // `ipFamilies` and `ipFamilyPolicy` are not defaults: like upstream,
        // the allocation step fills them (crate::services), because they
        // depend on the cluster's configuration and on the stored object.
    }
    if service_type == "LoadBalancer" {
        set_if_absent(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    if let Some(status) = object_at(svc, "status") {
        object_at(status, "loadBalancer");
    }
}

/// Whether traffic from outside the cluster can reach the Service (so that
/// `externalTrafficPolicy` means something): NodePort and LoadBalancer
/// Services, and ClusterIP ones with `externalIPs` (`pkg/api/service`).
pub(crate) fn externally_accessible(spec: &Value) -> bool {
    match spec["type"].as_str() {
        Some("NodePort" | "LoadBalancer") => true,
        Some("ClusterIP") => spec["externalIPs"]
            .as_array()
            .is_some_and(|ips| !ips.is_empty()),
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// Pods and pod templates

fn default_pod(pod: &mut Value) {
    if let Some(spec) = object_at(pod, "spec") {
        default_pod_spec(spec);
        // These three are Pod-only upstream (SetDefaults_Pod), so that pod
        // templates inside Deployments do not grow them.
        set_if_absent(spec, "enableServiceLinks", json!(true));
        for container in containers_mut(spec) {
            default_requests_from_limits(container);
        }
        if spec["hostNetwork"].as_bool() == Some(true) {
            for container in containers_mut(spec) {
                for port in objects_in(container, "ports") {
                    // With the node's network, the container port is the host port.
                    if is_zero(port.get("hostPort")) {
                        port["hostPort"] = port.get("containerPort").cloned().unwrap_or(json!(0));
                    }
                }
            }
        }
    }
    // A new Pod waits for scheduling; the node agent reports from there on.
    let status_unset = match pod.get("status") {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(_) => false,
    };
    if status_unset {
        let qos = qos_class(&pod["spec"]);
        pod["status"] = json!({ "phase": "Pending", "qosClass": qos });
    }
}

/// Defaults the pod template of a workload (`spec.template.spec`).
fn default_pod_template(obj: &mut Value) {
    let spec = object_at(obj, "spec")
        .and_then(|spec| object_at(spec, "template"))
        .and_then(|template| object_at(template, "spec"));
    if let Some(pod_spec) = spec {
        default_pod_spec(pod_spec);
    }
}

/// SetDefaults_PodSpec plus the defaults of everything inside a pod spec.
fn default_pod_spec(spec: &mut Value) {
    set_if_unset(spec, "dnsPolicy", json!("ClusterFirst"));
    set_if_unset(spec, "restartPolicy", json!("Always"));
    set_if_absent(spec, "securityContext", json!({}));
    set_if_absent(
        spec,
        "terminationGracePeriodSeconds",
        json!(DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS),
    );
    set_if_unset(spec, "schedulerName", json!("default-scheduler"));
    for container in containers_mut(spec) {
        default_container(container);
    }
    for volume in objects_in(spec, "volumes") {
        default_volume(volume);
    }
}

/// Both `containers` and `initContainers` of a pod spec.
fn containers_mut(spec: &mut Value) -> impl Iterator<Item = &mut Value> {
    let map = spec.as_object_mut();
    map.into_iter().flat_map(|map| {
        map.iter_mut()
            .filter(|(key, _)| *key == "containers" || *key == "initContainers")
            .filter_map(|(_, list)| list.as_array_mut())
            .flatten()
            .filter(|c| c.is_object())
    })
}

fn default_container(container: &mut Value) {
    if is_unset(container.get("imagePullPolicy")) {
        let image = container["image"].as_str().unwrap_or_default();
        let policy = if image_tag(image) == "latest" {
            "Always"
        } else {
            "IfNotPresent"
        };
        container["imagePullPolicy"] = json!(policy);
    }
    set_if_unset(
        container,
        "terminationMessagePath",
        json!("/dev/termination-log"),
    );
    set_if_unset(container, "terminationMessagePolicy", json!("File"));
    for port in objects_in(container, "ports") {
        set_if_unset(port, "protocol", json!("TCP"));
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(probe) = container.get_mut(probe).filter(|p| p.is_object()) {
            set_if_zero(probe, "timeoutSeconds", json!(1));
            set_if_zero(probe, "periodSeconds", json!(10));
            set_if_zero(probe, "successThreshold", json!(1));
            set_if_zero(probe, "failureThreshold", json!(3));
            default_handler(probe);
        }
    }
    for hook in ["postStart", "preStop"] {
        if let Some(handler) = container
            .get_mut("lifecycle")
            .and_then(|l| l.get_mut(hook))
            .filter(|h| h.is_object())
        {
            default_handler(handler);
        }
    }
    for env in objects_in(container, "env") {
        if let Some(field_ref) = env
            .get_mut("valueFrom")
            .and_then(|v| v.get_mut("fieldRef"))
            .filter(|f| f.is_object())
        {
            set_if_unset(field_ref, "apiVersion", json!("v1"));
        }
    }
}

/// The defaults of a probe's or lifecycle hook's action.
fn default_handler(handler: &mut Value) {
    if let Some(http) = handler.get_mut("httpGet").filter(|h| h.is_object()) {
        set_if_unset(http, "path", json!("/"));
        set_if_unset(http, "scheme", json!("HTTP"));
    }
    if let Some(grpc) = handler.get_mut("grpc").filter(|g| g.is_object()) {
        set_if_absent(grpc, "service", json!(""));
    }
}

/// The tag of an image reference, as the container runtime reads it:
/// `nginx:alpine` -> `alpine`, `nginx` -> `latest`, and a digest reference
/// (`nginx@sha256:...`) has no tag at all.
fn image_tag(image: &str) -> &str {
    if image.contains('@') {
        return "";
    }
    // A ':' before the last '/' belongs to a registry host (`host:5000/x`).
    let last_part = image.rsplit('/').next().unwrap_or(image);
    match last_part.rsplit_once(':') {
        Some((_, tag)) => tag,
        None => "latest",
    }
}

/// A container that sets limits but not requests gets requests equal to its
/// limits: what it may use is also what the scheduler reserves.
fn default_requests_from_limits(container: &mut Value) {
    let Some(limits) = container
        .pointer("/resources/limits")
        .and_then(Value::as_object)
        .cloned()
    else {
        return;
    };
    let Some(resources) = object_at(container, "resources") else {
        return;
    };
    let Some(requests) = object_at(resources, "requests").and_then(Value::as_object_mut) else {
        return;
    };
    for (name, quantity) in limits {
        requests.entry(name).or_insert(quantity);
    }
}

/// The Pod's quality-of-service class (`pkg/apis/core/helper/qos`), which
/// decides who is evicted first when a node runs short of memory.
fn qos_class(spec: &Value) -> &'static str {
    const QOS_RESOURCES: [&str; 2] = ["cpu", "memory"];
    let containers = ["containers", "initContainers"]
        .into_iter()
        .filter_map(|key| spec[key].as_array())
        .flatten();
    let mut any_set = false;
    let mut guaranteed = true;
    for container in containers {
        let requests = &container["resources"]["requests"];
        let limits = &container["resources"]["limits"];
        for resource in QOS_RESOURCES {
            let request = requests[resource]
                .as_str()
                .map(str::to_string)
                .or_else(|| requests[resource].as_number().map(ToString::to_string));
            let limit = limits[resource]
                .as_str()
                .map(str::to_string)
                .or_else(|| limits[resource].as_number().map(ToString::to_string));
            let is_nonzero =
                |q: &Option<String>| q.as_deref().is_some_and(|q| !is_zero_quantity(q));
            if is_nonzero(&request) || is_nonzero(&limit) {
                any_set = true;
            }
            if limit.is_none() || (request.is_some() && request != limit) {
                guaranteed = false;
            }
        }
    }
    if !any_set {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn is_zero_quantity(q: &str) -> bool {
    q.trim_end_matches(|c: char| c.is_ascii_alphabetic())
        .parse::<f64>()
        .is_ok_and(|n| n == 0.0)
}

fn default_volume(volume: &mut Value) {
    let Some(map) = volume.as_object_mut() else {
        return;
    };
    // A volume that names no source is an emptyDir.
    if map.keys().all(|key| key == "name") {
        map.insert("emptyDir".into(), json!({}));
    }
    for source in ["configMap", "secret", "projected", "downwardAPI"] {
        if let Some(src) = volume.get_mut(source).filter(|s| s.is_object()) {
            set_if_absent(src, "defaultMode", json!(DEFAULT_VOLUME_FILE_MODE));
        }
    }
    if let Some(items) = volume
        .get_mut("downwardAPI")
        .and_then(|d| d.get_mut("items"))
        .and_then(Value::as_array_mut)
    {
        for field_ref in items.iter_mut().filter_map(|i| i.get_mut("fieldRef")) {
            if field_ref.is_object() {
                set_if_unset(field_ref, "apiVersion", json!("v1"));
            }
        }
    }
    if let Some(host_path) = volume.get_mut("hostPath").filter(|h| h.is_object()) {
        set_if_absent(host_path, "type", json!(""));
    }
}

// ---------------------------------------------------------------------------
// Workloads (apps/v1)

fn default_deployment(deploy: &mut Value) {
    let Some(spec) = object_at(deploy, "spec") else {
        return;
    };
    set_if_absent(spec, "replicas", json!(1));
    if let Some(strategy) = object_at(spec, "strategy") {
        set_if_unset(strategy, "type", json!("RollingUpdate"));
        if strategy["type"] == "RollingUpdate" {
            if let Some(rolling) = object_at(strategy, "rollingUpdate") {
                set_if_absent(rolling, "maxUnavailable", json!("25%"));
                set_if_absent(rolling, "maxSurge", json!("25%"));
            }
        }
    }
    set_if_absent(spec, "revisionHistoryLimit", json!(10));
    set_if_absent(spec, "progressDeadlineSeconds", json!(600));
}

fn default_daemonset(ds: &mut Value) {
    let Some(spec) = object_at(ds, "spec") else {
        return;
    };
    if let Some(strategy) = object_at(spec, "updateStrategy") {
        set_if_unset(strategy, "type", json!("RollingUpdate"));
        if strategy["type"] == "RollingUpdate" {
            if let Some(rolling) = object_at(strategy, "rollingUpdate") {
                set_if_absent(rolling, "maxUnavailable", json!(1));
                set_if_absent(rolling, "maxSurge", json!(0));
            }
        }
    }
    set_if_absent(spec, "revisionHistoryLimit", json!(10));
}

/// `SetDefaults_StatefulSet`.
fn default_statefulset(sts: &mut Value) {
    let Some(spec) = object_at(sts, "spec") else {
        return;
    };
    set_if_absent(spec, "replicas", json!(1));
    set_if_unset(spec, "podManagementPolicy", json!("OrderedReady"));
    if let Some(strategy) = object_at(spec, "updateStrategy") {
        set_if_unset(strategy, "type", json!("RollingUpdate"));
        if strategy["type"] == "RollingUpdate" {
            if let Some(rolling) = object_at(strategy, "rollingUpdate") {
                set_if_absent(rolling, "partition", json!(0));
            }
        }
    }
    if let Some(retention) = object_at(spec, "persistentVolumeClaimRetentionPolicy") {
        set_if_unset(retention, "whenDeleted", json!("Retain"));
        set_if_unset(retention, "whenScaled", json!("Retain"));
    }
    set_if_absent(spec, "revisionHistoryLimit", json!(10));
}

// ---------------------------------------------------------------------------
// Cluster objects

fn default_namespace(ns: &mut Value) {
    // Every namespace is labelled with its own name, so that selectors
    // (NetworkPolicies, for instance) can pick namespaces by name.
    if let Some(name) = ns.pointer("/metadata/name").and_then(Value::as_str) {
        if !name.is_empty() {
            let name = name.to_string();
            if let Some(labels) = object_at(&mut ns["metadata"], "labels") {
                labels["kubernetes.io/metadata.name"] = json!(name);
            }
        }
    }
    // The `kubernetes` finalizer makes deletion wait until the namespace
    // controller has emptied the namespace. Upstream adds it on create only:
    // the controller removes it at the end of a deletion, and it must not
    // come back then.
    let deleting = !is_unset(ns.pointer("/metadata/deletionTimestamp"));
    if !deleting {
        if let Some(spec) = object_at(ns, "spec") {
            set_if_absent(spec, "finalizers", json!(["kubernetes"]));
        }
    }
    if let Some(status) = object_at(ns, "status") {
        set_if_unset(status, "phase", json!("Active"));
    }
}

fn default_node(node: &mut Value) {
    // What Pods may use defaults to everything the node has.
    let capacity = node.pointer("/status/capacity").cloned();
    if let (Some(capacity), Some(status)) = (capacity, node.get_mut("status")) {
        if capacity.is_object() {
            set_if_absent(status, "allocatable", capacity);
        }
    }
}

fn default_endpoints(ep: &mut Value) {
    for subset in objects_in(ep, "subsets") {
        for port in objects_in(subset, "ports") {
            set_if_unset(port, "protocol", json!("TCP"));
        }
    }
}

// ---------------------------------------------------------------------------
// JSON plumbing

/// True for a Go zero string: absent, null or "".
fn is_unset(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(_) => false,
    }
}

/// True for a Go zero number: absent, null or 0.
fn is_zero(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        Some(_) => false,
    }
}

/// Sets a string field that is absent, null or empty (a Go string field).
fn set_if_unset(obj: &mut Value, key: &str, value: Value) {
    if is_unset(obj.get(key)) {
        obj[key] = value;
    }
}

/// Sets a number field that is absent, null or zero (a Go int field).
fn set_if_zero(obj: &mut Value, key: &str, value: Value) {
    if is_zero(obj.get(key)) {
        obj[key] = value;
    }
}

/// Sets a field that is absent or null (a Go pointer, slice or map field,
/// for which an explicit zero is a real value).
fn set_if_absent(obj: &mut Value, key: &str, value: Value) {
    if obj.get(key).is_none_or(Value::is_null) {
        obj[key] = value;
    }
}

/// The object at `obj[key]`, created empty when absent or null. `None` when
/// it holds something else, which decoding or validation will report.
fn object_at<'a>(obj: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    let map: &mut Map<String, Value> = obj.as_object_mut()?;
    let slot = map.entry(key).or_insert(Value::Null);
    if slot.is_null() {
        *slot = json!({});
    }
    slot.is_object().then_some(slot)
}

/// The objects of the list at `obj[key]` (nothing when absent).
fn objects_in<'a>(obj: &'a mut Value, key: &str) -> impl Iterator<Item = &'a mut Value> {
    obj.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter(|v| v.is_object())
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::resources::lookup;

    fn defaulted(resource: &str, mut obj: Value) -> Value {
        let rt = lookup(resource).unwrap();
        apply_defaults(rt, &mut obj);
        // Idempotence: a second pass changes nothing.
        let mut again = obj.clone();
        apply_defaults(rt, &mut again);
        assert_eq!(again, obj, "defaulting twice differs from defaulting once");
        obj
    }

    #[test]
    fn secret_string_data_is_stored_as_data_and_wins_over_it() {
        let secret = defaulted(
            "secrets",
            json!({
                "metadata": {"name": "db"},
                "data": {"user": "YWRtaW4=", "password": "b2xk"},
                "stringData": {"password": "s3cret"}
            }),
        );
        assert_eq!(
            secret,
            json!({
                "metadata": {"name": "db"},
                "type": "Opaque",
                "data": {"user": "YWRtaW4=", "password": "czNjcmV0"}
            })
        );
    }

    /// The lesson's ngx-svc.yml, as kubectl sends it.
    fn lesson_service() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": { "name": "ngx-svc", "namespace": "default" },
            "spec": {
                "selector": { "app": "ngx-dep" },
                "ports": [{ "port": 80, "targetPort": 80, "protocol": "TCP" }]
            }
        })
    }

    /// The lesson's ngx-dep.yml.
    fn lesson_deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": { "name": "ngx-dep", "namespace": "default" },
            "spec": {
                "replicas": 2,
                "selector": { "matchLabels": { "app": "ngx-dep" } },
                "template": {
                    "metadata": { "labels": { "app": "ngx-dep" } },
                    "spec": {
                        "volumes": [{ "name": "ngx-conf-vol", "configMap": { "name": "ngx-conf" } }],
                        "containers": [{
                            "image": "nginx:alpine",
                            "name": "nginx",
                            "ports": [{ "containerPort": 80 }],
                            "volumeMounts": [{ "mountPath": "/etc/nginx/conf.d", "name": "ngx-conf-vol" }]
                        }]
                    }
                }
            }
        })
    }

    #[test]
    fn lesson_service_gets_what_kubectl_get_shows() {
        let svc = defaulted("svc", lesson_service());
        assert_eq!(
            svc["spec"],
            json!({
                "selector": { "app": "ngx-dep" },
                "ports": [{ "port": 80, "targetPort": 80, "protocol": "TCP" }],
                "type": "ClusterIP",
                "sessionAffinity": "None",
                "internalTrafficPolicy": "Cluster"
            })
        );
        assert_eq!(svc["status"], json!({ "loadBalancer": {} }));
        assert_eq!(svc["metadata"]["name"], "ngx-svc");
    }

    #[test]
    fn service_ports_default_protocol_and_target_port() {
        let svc = defaulted(
            "svc",
            json!({ "spec": { "ports": [{ "port": 8080 }, { "port": 53, "protocol": "UDP", "targetPort": "dns" }] } }),
        );
        assert_eq!(svc["spec"]["ports"][0]["protocol"], "TCP");
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
        assert_eq!(svc["spec"]["ports"][1]["protocol"], "UDP");
        assert_eq!(svc["spec"]["ports"][1]["targetPort"], "dns");
    }

    #[test]
    fn nodeport_services_get_an_external_traffic_policy() {
        let svc = defaulted(
            "svc",
            json!({ "spec": { "type": "NodePort", "ports": [{ "port": 80 }] } }),
        );
        assert_eq!(svc["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(svc["spec"]["internalTrafficPolicy"], "Cluster");
        let lb = defaulted("svc", json!({ "spec": { "type": "LoadBalancer" } }));
        assert_eq!(lb["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
        let cluster_ip = defaulted("svc", lesson_service());
        assert!(cluster_ip["spec"].get("externalTrafficPolicy").is_none());
        let local = defaulted(
            "svc",
            json!({ "spec": { "type": "NodePort", "externalTrafficPolicy": "Local" } }),
        );
        assert_eq!(local["spec"]["externalTrafficPolicy"], "Local");
    }

    #[test]
    fn external_name_services_get_no_ip_fields() {
        let svc = defaulted(
            "svc",
            json!({ "spec": { "type": "ExternalName", "externalName": "example.com" } }),
        );
        let spec = svc["spec"].as_object().unwrap();
        for absent in [
            "ipFamilies",
            "ipFamilyPolicy",
            "internalTrafficPolicy",
            "externalTrafficPolicy",
        ] {
            assert!(!spec.contains_key(absent), "{absent}");
        }
        assert_eq!(spec["sessionAffinity"], "None");
    }

    #[test]
    fn client_ip_affinity_gets_a_three_hour_timeout() {
        let svc = defaulted("svc", json!({ "spec": { "sessionAffinity": "ClientIP" } }));
        assert_eq!(
            svc["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"],
            10800
        );
        let custom = defaulted(
            "svc",
            json!({ "spec": { "sessionAffinity": "ClientIP",
                "sessionAffinityConfig": { "clientIP": { "timeoutSeconds": 60 } } } }),
        );
        assert_eq!(
            custom["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"],
            60
        );
        // With no affinity, a leftover config is dropped, as upstream does.
        let none = defaulted(
            "svc",
            json!({ "spec": { "sessionAffinityConfig": { "clientIP": { "timeoutSeconds": 60 } } } }),
        );
        assert!(none["spec"].get("sessionAffinityConfig").is_none());
    }

    #[test]
    fn lesson_deployment_gets_apps_v1_and_pod_template_defaults() {
        let deploy = defaulted("deploy", lesson_deployment());
        let spec = &deploy["spec"];
        assert_eq!(spec["replicas"], 2, "a set value is kept");
        assert_eq!(
            spec["strategy"],
            json!({ "type": "RollingUpdate", "rollingUpdate": { "maxSurge": "25%", "maxUnavailable": "25%" } })
        );
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(spec["progressDeadlineSeconds"], 600);
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Always");
        assert_eq!(pod["dnsPolicy"], "ClusterFirst");
        assert_eq!(pod["terminationGracePeriodSeconds"], 30);
        assert_eq!(pod["schedulerName"], "default-scheduler");
        assert_eq!(pod["securityContext"], json!({}));
        // enableServiceLinks is a Pod default, not a template default.
        assert!(pod.get("enableServiceLinks").is_none());
        let c = &pod["containers"][0];
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c["terminationMessagePolicy"], "File");
        assert_eq!(
            c["ports"][0],
            json!({ "containerPort": 80, "protocol": "TCP" })
        );
        assert_eq!(pod["volumes"][0]["configMap"]["defaultMode"], 420);
        assert_eq!(
            spec["selector"],
            json!({ "matchLabels": { "app": "ngx-dep" } })
        );
    }

    #[test]
    fn deployment_replicas_default_to_one_but_zero_stays_zero() {
        let deploy = defaulted("deploy", json!({ "spec": {} }));
        assert_eq!(deploy["spec"]["replicas"], 1);
        let scaled_down = defaulted("deploy", json!({ "spec": { "replicas": 0 } }));
        assert_eq!(scaled_down["spec"]["replicas"], 0);
        let recreate = defaulted(
            "deploy",
            json!({ "spec": { "strategy": { "type": "Recreate" } } }),
        );
        assert_eq!(recreate["spec"]["strategy"], json!({ "type": "Recreate" }));
    }

    #[test]
    fn replicasets_and_daemonsets_get_their_defaults() {
        let rs = defaulted(
            "rs",
            json!({ "spec": { "template": { "spec": { "containers": [] } } } }),
        );
        assert_eq!(rs["spec"]["replicas"], 1);
        assert_eq!(rs["spec"]["template"]["spec"]["restartPolicy"], "Always");
        let ds = defaulted("ds", json!({ "spec": {} }));
        assert_eq!(
            ds["spec"]["updateStrategy"],
            json!({ "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": 1, "maxSurge": 0 } })
        );
        assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);
    }

    #[test]
    fn image_pull_policy_depends_on_the_tag() {
        assert_eq!(image_tag("nginx"), "latest");
        assert_eq!(image_tag("nginx:latest"), "latest");
        assert_eq!(image_tag("nginx:alpine"), "alpine");
        assert_eq!(image_tag("registry:5000/nginx"), "latest");
        assert_eq!(image_tag("registry:5000/nginx:1.27"), "1.27");
        assert_eq!(image_tag("nginx@sha256:abcd"), "");
        let pod = defaulted(
            "po",
            json!({ "spec": { "containers": [
                { "name": "a", "image": "busybox" },
                { "name": "b", "image": "busybox:1.36" },
                { "name": "c", "image": "busybox", "imagePullPolicy": "Never" }
            ], "initContainers": [{ "name": "i", "image": "alpine:latest" }] } }),
        );
        let c = &pod["spec"]["containers"];
        assert_eq!(c[0]["imagePullPolicy"], "Always");
        assert_eq!(c[1]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c[2]["imagePullPolicy"], "Never");
        assert_eq!(
            pod["spec"]["initContainers"][0]["imagePullPolicy"],
            "Always"
        );
        assert_eq!(
            pod["spec"]["initContainers"][0]["terminationMessagePolicy"],
            "File"
        );
    }

    #[test]
    fn pods_get_pending_status_service_links_and_probe_defaults() {
        let pod = defaulted(
            "po",
            json!({ "metadata": { "name": "p" }, "spec": { "containers": [{
                "name": "web", "image": "nginx:alpine",
                "livenessProbe": { "httpGet": { "port": 80 } },
                "readinessProbe": { "tcpSocket": { "port": 80 }, "periodSeconds": 5 },
                "lifecycle": { "preStop": { "httpGet": { "port": 80, "path": "/quit" } } },
                "env": [{ "name": "NODE", "valueFrom": { "fieldRef": { "fieldPath": "spec.nodeName" } } }]
            }] } }),
        );
        assert_eq!(
            pod["status"],
            json!({ "phase": "Pending", "qosClass": "BestEffort" })
        );
        assert_eq!(pod["spec"]["enableServiceLinks"], true);
        let c = &pod["spec"]["containers"][0];
        assert_eq!(
            c["livenessProbe"],
            json!({ "httpGet": { "port": 80, "path": "/", "scheme": "HTTP" },
                "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3 })
        );
        assert_eq!(c["readinessProbe"]["periodSeconds"], 5);
        assert_eq!(c["readinessProbe"]["failureThreshold"], 3);
        assert_eq!(
            c["lifecycle"]["preStop"]["httpGet"],
            json!({ "port": 80, "path": "/quit", "scheme": "HTTP" })
        );
        assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
    }

    #[test]
    fn an_existing_pod_status_is_left_alone() {
        let pod = defaulted(
            "po",
            json!({ "spec": { "containers": [] }, "status": { "phase": "Running", "podIP": "10.244.1.5" } }),
        );
        assert_eq!(
            pod["status"],
            json!({ "phase": "Running", "podIP": "10.244.1.5" })
        );
    }

    #[test]
    fn pod_requests_default_to_limits_and_decide_the_qos_class() {
        let guaranteed = defaulted(
            "po",
            json!({ "spec": { "containers": [{ "name": "a", "image": "x",
                "resources": { "limits": { "cpu": "500m", "memory": "64Mi" } } }] } }),
        );
        assert_eq!(
            guaranteed["spec"]["containers"][0]["resources"]["requests"],
            json!({ "cpu": "500m", "memory": "64Mi" })
        );
        assert_eq!(guaranteed["status"]["qosClass"], "Guaranteed");
        let burstable = defaulted(
            "po",
            json!({ "spec": { "containers": [{ "name": "a", "image": "x",
                "resources": { "requests": { "cpu": "100m" } } }] } }),
        );
        assert_eq!(burstable["status"]["qosClass"], "Burstable");
    }

    #[test]
    fn host_network_pods_use_the_container_port_as_host_port() {
        let pod = defaulted(
            "po",
            json!({ "spec": { "hostNetwork": true, "containers": [{ "name": "a", "image": "x",
                "ports": [{ "containerPort": 8080 }] }] } }),
        );
        assert_eq!(pod["spec"]["containers"][0]["ports"][0]["hostPort"], 8080);
    }

    #[test]
    fn volumes_without_a_source_are_empty_dirs() {
        let pod = defaulted(
            "po",
            json!({ "spec": { "containers": [], "volumes": [
                { "name": "scratch" },
                { "name": "host", "hostPath": { "path": "/var/log" } },
                { "name": "s", "secret": { "secretName": "x", "defaultMode": 256 } }
            ] } }),
        );
        let v = &pod["spec"]["volumes"];
        assert_eq!(v[0], json!({ "name": "scratch", "emptyDir": {} }));
        assert_eq!(v[1]["hostPath"], json!({ "path": "/var/log", "type": "" }));
        assert_eq!(v[2]["secret"]["defaultMode"], 256);
    }

    #[test]
    fn namespaces_get_the_kubernetes_finalizer_phase_and_name_label() {
        let ns = defaulted("ns", json!({ "metadata": { "name": "lab" } }));
        assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(ns["status"]["phase"], "Active");
        assert_eq!(
            ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "lab"
        );
        // While the namespace is being deleted, a removed finalizer stays removed.
        let terminating = defaulted(
            "ns",
            json!({ "metadata": { "name": "lab", "deletionTimestamp": "2025-01-01T00:00:00Z" },
                "spec": {}, "status": { "phase": "Terminating" } }),
        );
        assert!(terminating["spec"].get("finalizers").is_none());
        assert_eq!(terminating["status"]["phase"], "Terminating");
    }

    #[test]
    fn endpoint_ports_default_to_tcp() {
        let slice = defaulted(
            "endpointslices",
            json!({ "addressType": "IPv4", "ports": [{ "port": 80 }, { "port": 53, "protocol": "UDP", "name": "dns" }] }),
        );
        assert_eq!(
            slice["ports"][0],
            json!({ "port": 80, "protocol": "TCP", "name": "" })
        );
        assert_eq!(slice["ports"][1]["protocol"], "UDP");
        let ep = defaulted("ep", json!({ "subsets": [{ "ports": [{ "port": 80 }] }] }));
        assert_eq!(ep["subsets"][0]["ports"][0]["protocol"], "TCP");
    }

    #[test]
    fn nodes_get_allocatable_from_capacity() {
        let node = defaulted(
            "no",
            json!({ "status": { "capacity": { "cpu": "2", "pods": "110" } } }),
        );
        assert_eq!(
            node["status"]["allocatable"],
            json!({ "cpu": "2", "pods": "110" })
        );
    }

    #[test]
    fn kinds_without_defaults_and_odd_shapes_are_left_alone() {
        let cm = json!({ "metadata": { "name": "c" }, "data": { "a": "b" } });
        assert_eq!(defaulted("cm", cm.clone()), cm);
        // A spec of the wrong type is not replaced (decoding reports it).
        let odd = json!({ "spec": "nonsense" });
        assert_eq!(defaulted("svc", odd.clone())["spec"], "nonsense");
    }
}
