//! Pod validation (`ValidatePodSpec`, `ValidatePodTemplateSpec`,
//! `ValidatePodUpdate`).
//!
//! A pod spec is checked the same way in a Pod and in the template of a
//! Deployment, ReplicaSet or DaemonSet, so a broken template is refused
//! when the Deployment is applied instead of surfacing later as Pods that
//! never get created. Once a Pod exists its spec is almost frozen: the node
//! agent has started processes from it, so only the image (and a few
//! scheduling details) may change; anything else needs a new Pod, which is
//! what a Deployment rollout does.

use api::names;
use serde_json::Value;

use super::meta::{validate_annotations, validate_labels};
use super::service::validate_port_num_or_name;
use super::{
    child, index, is_set, list, not_found, quote, render, str_field, validate_enum,
    validate_nonnegative, validate_port_number, validate_protocol, validate_syntax,
};
use crate::status::FieldError;

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const TERMINATION_MESSAGE_POLICIES: &[&str] = &["File", "FallbackToLogsOnError"];
const HTTP_SCHEMES: &[&str] = &["HTTP", "HTTPS"];
const HOST_PATH_TYPES: &[&str] = &[
    "",
    "BlockDevice",
    "CharDevice",
    "Directory",
    "DirectoryOrCreate",
    "File",
    "FileOrCreate",
    "Socket",
];
/// How a probe or lifecycle hook acts, in the order upstream checks them.
const HANDLER_TYPES: &[&str] = &["exec", "httpGet", "tcpSocket", "grpc", "sleep"];

/// What may change in a running Pod, as upstream lists it.
const POD_UPDATE_MESSAGE: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// A Pod, created or replacing `old`.
pub(crate) fn validate_pod(pod: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    if let Some(old) = old {
        validate_pod_update(&pod["spec"], &old["spec"], errs);
    }
    validate_pod_spec(&pod["spec"], "spec", errs);
}

/// A pod template (`spec.template` of a workload): its labels and
/// annotations, and its spec.
pub(crate) fn validate_pod_template(template: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let meta = &template["metadata"];
    // (sic: upstream names these `spec.template.labels`, without `metadata`)
    validate_labels(meta, "labels", path, errs);
    validate_annotations(meta, &child(path, "annotations"), errs);
    validate_pod_spec(&template["spec"], &child(path, "spec"), errs);
}

/// `ValidatePodSpec`.
pub(crate) fn validate_pod_spec(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let volumes = validate_volumes(spec, &child(path, "volumes"), errs);

    let containers_path = child(path, "containers");
    let containers = list(spec, "containers");
    let mut container_names: Vec<&str> = Vec::new();
    if containers.is_empty() {
        errs.push(FieldError::required(&containers_path, ""));
    }
    for (i, container) in containers.iter().enumerate() {
        validate_container(
            container,
            &volumes,
            &mut container_names,
            &index(&containers_path, i),
            errs,
        );
    }
    let init_path = child(path, "initContainers");
    for (i, container) in list(spec, "initContainers").iter().enumerate() {
        // Init container names share the namespace of regular ones.
        validate_container(
            container,
            &volumes,
            &mut container_names,
            &index(&init_path, i),
            errs,
        );
    }

    validate_enum(spec, "restartPolicy", path, RESTART_POLICIES, true, errs);
    validate_enum(spec, "dnsPolicy", path, DNS_POLICIES, true, errs);
    validate_labels(spec, "nodeSelector", path, errs);

    for (field, check) in [
        (
            "serviceAccountName",
            names::is_dns1123_subdomain as fn(&str) -> Vec<String>,
        ),
        ("nodeName", names::is_dns1123_subdomain),
        ("hostname", names::is_dns1123_label),
        ("subdomain", names::is_dns1123_label),
    ] {
        let value = str_field(spec, field);
        if !value.is_empty() {
            validate_syntax(value, check, &child(path, field), errs);
        }
    }
    if let Some(deadline) = spec.get("activeDeadlineSeconds").filter(|v| !v.is_null()) {
        let seconds = deadline.as_i64().unwrap_or(0);
        if !(1..=i64::from(i32::MAX)).contains(&seconds) {
            errs.push(FieldError::invalid(
                child(path, "activeDeadlineSeconds"),
                render(Some(deadline)),
                "must be between 1 and 2147483647, inclusive",
            ));
        }
    }
}

/// `ValidateVolumes`; returns the names a volumeMount may refer to.
fn validate_volumes<'a>(spec: &'a Value, path: &str, errs: &mut Vec<FieldError>) -> Vec<&'a str> {
    let mut seen: Vec<&str> = Vec::new();
    for (i, volume) in list(spec, "volumes").iter().enumerate() {
        let volume_path = index(path, i);
        let name = str_field(volume, "name");
        let name_path = child(&volume_path, "name");
        if name.is_empty() {
            errs.push(FieldError::required(&name_path, ""));
        } else {
            validate_syntax(name, names::is_dns1123_label, &name_path, errs);
            if seen.contains(&name) {
                errs.push(FieldError::duplicate(&name_path, quote(name)));
            } else {
                seen.push(name);
            }
        }
        validate_volume_source(volume, &volume_path, errs);
    }
    seen
}

/// Exactly one source per volume, and the fields the common ones need.
fn validate_volume_source(volume: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let sources: Vec<&String> = volume
        .as_object()
        .map(|m| m.keys().filter(|k| *k != "name").collect())
        .unwrap_or_default();
    match sources.as_slice() {
        [] => {
            errs.push(FieldError::required(path, "must specify a volume type"));
            return;
        }
        [_] => {}
        [_, extra, ..] => errs.push(FieldError::forbidden(
            child(path, extra),
            "may not specify more than 1 volume type",
        )),
    }
    if let Some(cm) = volume.get("configMap").filter(|v| v.is_object()) {
        let cm_path = child(path, "configMap");
        if str_field(cm, "name").is_empty() {
            errs.push(FieldError::required(child(&cm_path, "name"), ""));
        }
        validate_file_mode(cm, "defaultMode", &cm_path, errs);
        validate_key_to_paths(cm, &cm_path, errs);
    }
    if let Some(secret) = volume.get("secret").filter(|v| v.is_object()) {
        let secret_path = child(path, "secret");
        if str_field(secret, "secretName").is_empty() {
            errs.push(FieldError::required(child(&secret_path, "secretName"), ""));
        }
        validate_file_mode(secret, "defaultMode", &secret_path, errs);
        validate_key_to_paths(secret, &secret_path, errs);
    }
    if let Some(host_path) = volume.get("hostPath").filter(|v| v.is_object()) {
        let hp_path = child(path, "hostPath");
        if str_field(host_path, "path").is_empty() {
            errs.push(FieldError::required(child(&hp_path, "path"), ""));
        }
        if host_path.get("type").is_some_and(|t| !t.is_null()) {
            validate_enum(host_path, "type", &hp_path, HOST_PATH_TYPES, false, errs);
        }
    }
}

/// File modes are octal 0-0777.
fn validate_file_mode(obj: &Value, field: &str, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(mode) = obj.get(field).and_then(Value::as_i64) {
        if !(0..=0o777).contains(&mode) {
            errs.push(FieldError::invalid(
                child(path, field),
                mode.to_string(),
                "must be a number between 0 and 0777 (octal), both inclusive",
            ));
        }
    }
}

/// `items` of a ConfigMap or Secret volume: a key and a relative path each.
fn validate_key_to_paths(source: &Value, path: &str, errs: &mut Vec<FieldError>) {
    for (i, item) in list(source, "items").iter().enumerate() {
        let item_path = index(&child(path, "items"), i);
        if str_field(item, "key").is_empty() {
            errs.push(FieldError::required(child(&item_path, "key"), ""));
        }
        let file = str_field(item, "path");
        if file.is_empty() {
            errs.push(FieldError::required(child(&item_path, "path"), ""));
        } else if file.starts_with('/') {
            errs.push(FieldError::invalid(
                child(&item_path, "path"),
                quote(file),
                "must be a relative path",
            ));
        } else if file.split('/').any(|part| part == "..") {
            errs.push(FieldError::invalid(
                child(&item_path, "path"),
                quote(file),
                "must not contain '..'",
            ));
        }
        validate_file_mode(item, "mode", &item_path, errs);
    }
}

/// One container: name, image, ports, mounts, policies, probes.
fn validate_container<'a>(
    container: &'a Value,
    volumes: &[&str],
    names_seen: &mut Vec<&'a str>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    let name = str_field(container, "name");
    let name_path = child(path, "name");
    if name.is_empty() {
        errs.push(FieldError::required(&name_path, ""));
    } else {
        validate_syntax(name, names::is_dns1123_label, &name_path, errs);
    }
    if names_seen.contains(&name) {
        errs.push(FieldError::duplicate(&name_path, quote(name)));
    } else {
        names_seen.push(name);
    }

    let image = str_field(container, "image");
    if image.is_empty() {
        errs.push(FieldError::required(child(path, "image"), ""));
    } else if image.trim() != image {
        errs.push(FieldError::invalid(
            child(path, "image"),
            quote(image),
            "must not have leading or trailing whitespace",
        ));
    }

    validate_container_ports(container, &child(path, "ports"), errs);

    for (i, env) in list(container, "env").iter().enumerate() {
        if str_field(env, "name").is_empty() {
            errs.push(FieldError::required(
                child(&index(&child(path, "env"), i), "name"),
                "",
            ));
        }
    }

    let mut mount_paths: Vec<&str> = Vec::new();
    for (i, mount) in list(container, "volumeMounts").iter().enumerate() {
        let mount_path = index(&child(path, "volumeMounts"), i);
        let volume = str_field(mount, "name");
        if volume.is_empty() {
            errs.push(FieldError::required(child(&mount_path, "name"), ""));
        }
        if !volumes.contains(&volume) {
            errs.push(not_found(child(&mount_path, "name"), volume));
        }
        let target = str_field(mount, "mountPath");
        if target.is_empty() {
            errs.push(FieldError::required(child(&mount_path, "mountPath"), ""));
        }
        if mount_paths.contains(&target) {
            errs.push(FieldError::invalid(
                child(&mount_path, "mountPath"),
                quote(target),
                "must be unique",
            ));
        }
        mount_paths.push(target);
    }

    validate_enum(
        container,
        "imagePullPolicy",
        path,
        PULL_POLICIES,
        true,
        errs,
    );
    validate_enum(
        container,
        "terminationMessagePolicy",
        path,
        TERMINATION_MESSAGE_POLICIES,
        true,
        errs,
    );

    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let Some(spec) = container.get(probe).filter(|p| !p.is_null()) else {
            continue;
        };
        let probe_path = child(path, probe);
        validate_handler(spec, &probe_path, errs);
        for field in [
            "initialDelaySeconds",
            "timeoutSeconds",
            "periodSeconds",
            "successThreshold",
            "failureThreshold",
        ] {
            validate_nonnegative(spec, field, &probe_path, errs);
        }
        // A liveness or startup probe that must succeed twice would only
        // delay a restart; upstream insists on 1.
        if probe != "readinessProbe" {
            if let Some(threshold) = spec.get("successThreshold").and_then(Value::as_i64) {
                if threshold != 1 {
                    errs.push(FieldError::invalid(
                        child(&probe_path, "successThreshold"),
                        threshold.to_string(),
                        "must be 1",
                    ));
                }
            }
        }
    }
    if let Some(lifecycle) = container.get("lifecycle").filter(|l| l.is_object()) {
        for hook in ["postStart", "preStop"] {
            if let Some(handler) = lifecycle.get(hook).filter(|h| !h.is_null()) {
                validate_handler(handler, &child(&child(path, "lifecycle"), hook), errs);
            }
        }
    }
}

/// `validateContainerPorts`: names unique and valid, numbers in range.
fn validate_container_ports(container: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let mut names_seen: Vec<&str> = Vec::new();
    for (i, port) in list(container, "ports").iter().enumerate() {
        let port_path = index(path, i);
        let name = str_field(port, "name");
        if !name.is_empty() {
            let before = errs.len();
            validate_syntax(
                name,
                names::is_valid_port_name,
                &child(&port_path, "name"),
                errs,
            );
            if errs.len() == before {
                if names_seen.contains(&name) {
                    errs.push(FieldError::duplicate(
                        child(&port_path, "name"),
                        quote(name),
                    ));
                } else {
                    names_seen.push(name);
                }
            }
        }
        if super::int_field(port, "containerPort") == 0 {
            errs.push(FieldError::required(child(&port_path, "containerPort"), ""));
        } else {
            validate_port_number(port, "containerPort", &port_path, errs);
        }
        if super::int_field(port, "hostPort") != 0 {
            validate_port_number(port, "hostPort", &port_path, errs);
        }
        validate_protocol(port, &port_path, errs);
    }
}

/// A probe's or hook's action: exactly one of exec, httpGet, tcpSocket,
/// grpc or sleep (`validateHandler`).
fn validate_handler(handler: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let mut found = 0;
    for kind in HANDLER_TYPES {
        let Some(action) = handler.get(*kind).filter(|a| !a.is_null()) else {
            continue;
        };
        let action_path = child(path, kind);
        if found > 0 {
            errs.push(FieldError::forbidden(
                action_path,
                "may not specify more than 1 handler type",
            ));
            continue;
        }
        found += 1;
        match *kind {
            "exec" if list(action, "command").is_empty() => {
                errs.push(FieldError::required(child(&action_path, "command"), ""));
            }
            "httpGet" => {
                if str_field(action, "path").is_empty() {
                    errs.push(FieldError::required(child(&action_path, "path"), ""));
                }
                validate_port_num_or_name(action.get("port"), &child(&action_path, "port"), errs);
                let scheme = str_field(action, "scheme");
                if !HTTP_SCHEMES.contains(&scheme) {
                    errs.push(FieldError::not_supported(
                        child(&action_path, "scheme"),
                        quote(scheme),
                        HTTP_SCHEMES,
                    ));
                }
            }
            "tcpSocket" => {
                validate_port_num_or_name(action.get("port"), &child(&action_path, "port"), errs);
            }
            "grpc" => validate_port_number(action, "port", &action_path, errs),
            _ => {}
        }
    }
    if found == 0 {
        errs.push(FieldError::required(path, "must specify a handler type"));
    }
}

/// `ValidatePodUpdate`: a Pod's spec may only change in its images, its
/// deadline, added tolerations and its grace period. Everything else needs
/// a new Pod.
fn validate_pod_update(new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    if list(new, "containers").len() != list(old, "containers").len() {
        errs.push(FieldError::forbidden(
            "spec.containers",
            "pod updates may not add or remove containers",
        ));
        return;
    }
    if masked_spec(new, old) != masked_spec(old, old) {
        errs.push(FieldError::forbidden("spec", POD_UPDATE_MESSAGE));
    }
}

/// The spec with every field that may change replaced by the old one's
/// value, so that comparing two masked specs finds forbidden changes only.
fn masked_spec(spec: &Value, old: &Value) -> Value {
    let mut masked = spec.clone();
    for list_name in ["containers", "initContainers"] {
        if let Some(containers) = masked.get_mut(list_name).and_then(Value::as_array_mut) {
            for (i, container) in containers.iter_mut().enumerate() {
                if let Some(c) = container.as_object_mut() {
                    match old[list_name][i].get("image") {
                        Some(image) => c.insert("image".into(), image.clone()),
                        None => c.remove("image"),
                    };
                }
            }
        }
    }
    let Some(map) = masked.as_object_mut() else {
        return masked;
    };
    for field in ["activeDeadlineSeconds", "terminationGracePeriodSeconds"] {
        match old.get(field) {
            Some(v) => map.insert(field.into(), v.clone()),
            None => map.remove(field),
        };
    }
    // Tolerations may only be added to.
    let old_tolerations = list(old, "tolerations");
    let new_tolerations = list(spec, "tolerations");
    if old_tolerations.iter().all(|t| new_tolerations.contains(t)) {
        match old.get("tolerations") {
            Some(v) => map.insert("tolerations".into(), v.clone()),
            None => map.remove("tolerations"),
        };
    }
    // Binding a Pod to a node sets nodeName once (kube-lite's scheduler
    // may do it with a plain update as well as with pods/binding).
    if str_field(old, "nodeName").is_empty() && is_set(spec, "nodeName") {
        match old.get("nodeName") {
            Some(v) => map.insert("nodeName".into(), v.clone()),
            None => map.remove("nodeName"),
        };
    }
    masked
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn messages(pod: Value, old: Option<Value>) -> Vec<String> {
        let mut errs = Vec::new();
        validate_pod(&pod, old.as_ref(), &mut errs);
        errs.iter().map(FieldError::message).collect()
    }

    /// A defaulted Pod like the ones ngx-dep creates.
    fn ngx_pod() -> Value {
        json!({ "spec": {
            "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
            "volumes": [{ "name": "ngx-conf-vol", "configMap": { "name": "ngx-conf", "defaultMode": 420 } }],
            "containers": [{
                "name": "nginx", "image": "nginx:alpine",
                "imagePullPolicy": "IfNotPresent", "terminationMessagePolicy": "File",
                "ports": [{ "containerPort": 80, "protocol": "TCP" }],
                "volumeMounts": [{ "mountPath": "/etc/nginx/conf.d", "name": "ngx-conf-vol" }]
            }]
        } })
    }

    #[test]
    fn the_lesson_pod_is_valid() {
        assert_eq!(messages(ngx_pod(), None), Vec::<String>::new());
    }

    #[test]
    fn a_pod_needs_a_container() {
        let mut pod = ngx_pod();
        pod["spec"]["containers"] = json!([]);
        pod["spec"]["volumes"] = json!([]);
        assert_eq!(messages(pod, None), vec!["spec.containers: Required value"]);
    }

    #[test]
    fn container_names_are_dns_labels_and_unique() {
        let mut pod = ngx_pod();
        let first = pod["spec"]["containers"][0].clone();
        let mut second = first.clone();
        second["name"] = json!("Nginx");
        pod["spec"]["containers"] = json!([first.clone(), first, second]);
        assert_eq!(
            messages(pod, None),
            vec![
                "spec.containers[1].name: Duplicate value: \"nginx\"",
                "spec.containers[2].name: Invalid value: \"Nginx\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            ]
        );
    }

    #[test]
    fn init_containers_may_not_reuse_a_container_name() {
        let mut pod = ngx_pod();
        pod["spec"]["initContainers"] = json!([{ "name": "nginx", "image": "busybox",
            "imagePullPolicy": "Always", "terminationMessagePolicy": "File" }]);
        assert_eq!(
            messages(pod, None),
            vec!["spec.initContainers[0].name: Duplicate value: \"nginx\""]
        );
    }

    #[test]
    fn an_image_is_required() {
        let mut pod = ngx_pod();
        pod["spec"]["containers"][0]["image"] = json!("");
        assert_eq!(
            messages(pod, None),
            vec!["spec.containers[0].image: Required value"]
        );
    }

    #[test]
    fn container_ports_are_checked() {
        let mut pod = ngx_pod();
        pod["spec"]["containers"][0]["ports"] = json!([
            { "containerPort": 70000, "protocol": "TCP", "name": "http" },
            { "containerPort": 81, "protocol": "TCP", "name": "http" },
            { "protocol": "TCP" },
            { "containerPort": 53, "protocol": "ICMP" }
        ]);
        assert_eq!(
            messages(pod, None),
            vec![
                "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.containers[0].ports[1].name: Duplicate value: \"http\"",
                "spec.containers[0].ports[2].containerPort: Required value",
                "spec.containers[0].ports[3].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            ]
        );
    }

    #[test]
    fn volume_mounts_must_name_a_volume() {
        let mut pod = ngx_pod();
        pod["spec"]["containers"][0]["volumeMounts"][0]["name"] = json!("conf");
        assert_eq!(
            messages(pod, None),
            vec!["spec.containers[0].volumeMounts[0].name: Not found: \"conf\""]
        );
    }

    #[test]
    fn volume_names_are_unique() {
        let mut pod = ngx_pod();
        let volume = pod["spec"]["volumes"][0].clone();
        pod["spec"]["volumes"] = json!([volume.clone(), volume]);
        assert_eq!(
            messages(pod, None),
            vec!["spec.volumes[1].name: Duplicate value: \"ngx-conf-vol\""]
        );
    }

    #[test]
    fn a_volume_has_exactly_one_source() {
        let mut pod = ngx_pod();
        pod["spec"]["volumes"] = json!([
            { "name": "ngx-conf-vol" },
            { "name": "b", "emptyDir": {}, "hostPath": { "path": "/tmp" } },
            { "name": "c", "configMap": {} }
        ]);
        assert_eq!(
            messages(pod, None),
            vec![
                "spec.volumes[0]: Required value: must specify a volume type",
                "spec.volumes[1].hostPath: Forbidden: may not specify more than 1 volume type",
                "spec.volumes[2].configMap.name: Required value",
            ]
        );
    }

    #[test]
    fn restart_and_dns_policies_are_enumerations() {
        let mut pod = ngx_pod();
        pod["spec"]["restartPolicy"] = json!("Sometimes");
        pod["spec"]["dnsPolicy"] = json!("");
        assert_eq!(
            messages(pod, None),
            vec![
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
                "spec.dnsPolicy: Required value",
            ]
        );
    }

    #[test]
    fn probes_need_one_handler_and_sane_numbers() {
        let mut pod = ngx_pod();
        let c = &mut pod["spec"]["containers"][0];
        c["livenessProbe"] = json!({ "periodSeconds": 10, "successThreshold": 2 });
        c["readinessProbe"] = json!({ "httpGet": { "path": "/", "port": "web-port-name-too-long", "scheme": "HTTP" },
            "tcpSocket": { "port": 80 }, "timeoutSeconds": -1 });
        assert_eq!(
            messages(pod, None),
            vec![
                "spec.containers[0].livenessProbe: Required value: must specify a handler type",
                "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
                "spec.containers[0].readinessProbe.httpGet.port: Invalid value: \"web-port-name-too-long\": must be no more than 15 characters",
                "spec.containers[0].readinessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type",
                "spec.containers[0].readinessProbe.timeoutSeconds: Invalid value: -1: must be greater than or equal to 0",
            ]
        );
    }

    #[test]
    fn a_running_pod_may_change_its_image_but_not_its_ports() {
        let old = ngx_pod();
        let mut new_image = old.clone();
        new_image["spec"]["containers"][0]["image"] = json!("nginx:1.27");
        assert!(messages(new_image, Some(old.clone())).is_empty());

        let mut bound = old.clone();
        bound["spec"]["nodeName"] = json!("worker1");
        assert!(messages(bound.clone(), Some(old.clone())).is_empty());
        let mut moved = bound.clone();
        moved["spec"]["nodeName"] = json!("worker2");
        assert_eq!(
            messages(moved, Some(bound)),
            vec![format!("spec: Forbidden: {POD_UPDATE_MESSAGE}")]
        );

        let mut new_port = old.clone();
        new_port["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(8080);
        assert_eq!(
            messages(new_port, Some(old.clone())),
            vec![format!("spec: Forbidden: {POD_UPDATE_MESSAGE}")]
        );

        let mut fewer = old.clone();
        fewer["spec"]["containers"] = json!([]);
        assert_eq!(
            messages(fewer, Some(old))[0],
            "spec.containers: Forbidden: pod updates may not add or remove containers"
        );
    }
}
