//! What Pods and every workload print of a Pod template: containers (image, ports, probes, state, environment), volumes, tolerations.

use super::*;

pub(super) fn pod_template(w: &mut Page, template: &Value) {
    w.write(0, "Pod Template:\n");
    w.labels("", "  Labels", &string_map(template, "/metadata/labels"));
    let annotations = string_map(template, "/metadata/annotations");
    if !annotations.is_empty() {
        w.annotations("  Annotations", &annotations);
    }
    let account = str_at(template, "/spec/serviceAccountName");
    if !account.is_empty() {
        w.write(1, &format!("Service Account:\t{account}\n"));
    }
    let init = list_at(template, "/spec/initContainers");
    if !init.is_empty() {
        containers(w, "Init Containers", init, &[], None, "  ");
    }
    containers(
        w,
        "Containers",
        list_at(template, "/spec/containers"),
        &[],
        None,
        "  ",
    );
    volumes(w, list_at(template, "/spec/volumes"), "  ");
    let priority_class = str_at(template, "/spec/priorityClassName");
    if !priority_class.is_empty() {
        w.write(1, &format!("Priority Class Name:\t{priority_class}\n"));
    }
    w.labels(
        "",
        "  Node-Selectors",
        &string_map(template, "/spec/nodeSelector"),
    );
    tolerations(w, "  Tolerations", list_at(template, "/spec/tolerations"));
}

/// The `Containers:` section of a Pod or a Pod template. `statuses` and
/// `pod` are given for real Pods only.
pub(super) fn containers(
    w: &mut Page,
    label: &str,
    containers: &[Value],
    statuses: &[Value],
    pod: Option<&Value>,
    space: &str,
) {
    let none = if containers.is_empty() { " <none>" } else { "" };
    w.write(0, &format!("{space}{label}:{none}\n"));
    let name_indent = if space.is_empty() { "" } else { " " };
    for container in containers {
        let name = str_at(container, "/name");
        let status = statuses.iter().find(|s| str_at(s, "/name") == name);
        w.write(1, &format!("{name_indent}{name}:\n"));
        if let Some(status) = status {
            w.write(
                2,
                &format!("Container ID:\t{}\n", str_at(status, "/containerID")),
            );
        }
        w.write(2, &format!("Image:\t{}\n", str_at(container, "/image")));
        if let Some(status) = status {
            w.write(2, &format!("Image ID:\t{}\n", str_at(status, "/imageID")));
        }
        let ports = list_at(container, "/ports");
        let describe_ports = |field: &str| {
            ports
                .iter()
                .map(|p| {
                    let mut s = format!("{}/{}", int_at(p, field), str_at(p, "/protocol"));
                    let port_name = str_at(p, "/name");
                    if !port_name.is_empty() {
                        s = format!("{s} ({port_name})");
                    }
                    s
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let container_ports = describe_ports("/containerPort");
        if container_ports.contains(',') {
            w.write(2, &format!("Ports:\t{container_ports}\n"));
        } else {
            w.write(2, &format!("Port:\t{}\n", none_if_empty(&container_ports)));
        }
        let host_ports = describe_ports("/hostPort");
        if host_ports.contains(',') {
            w.write(2, &format!("Host Ports:\t{host_ports}\n"));
        } else {
            w.write(2, &format!("Host Port:\t{}\n", none_if_empty(&host_ports)));
        }
        for (field, title) in [("/command", "Command"), ("/args", "Args")] {
            let parts = list_at(container, field);
            if !parts.is_empty() {
                w.write(2, &format!("{title}:\n"));
                for part in parts.iter().filter_map(Value::as_str) {
                    for line in part.split('\n') {
                        w.write(3, &format!("{line}\n"));
                    }
                }
            }
        }
        if let Some(status) = status {
            container_state(w, "State", at(status, "/state"));
            if !at(status, "/lastState/terminated").is_null() {
                container_state(w, "Last State", at(status, "/lastState"));
            }
            let ready = if bool_at(status, "/ready") {
                "True"
            } else {
                "False"
            };
            w.write(2, &format!("Ready:\t{ready}\n"));
            w.write(
                2,
                &format!("Restart Count:\t{}\n", int_at(status, "/restartCount")),
            );
        }
        for (field, title) in [
            ("/resources/limits", "Limits"),
            ("/resources/requests", "Requests"),
        ] {
            let values = string_map(container, field);
            if !values.is_empty() {
                w.write(2, &format!("{title}:\n"));
                for (resource, quantity) in values {
                    w.write(3, &format!("{resource}:\t{quantity}\n"));
                }
            }
        }
        for (field, title) in [
            ("/livenessProbe", "Liveness"),
            ("/readinessProbe", "Readiness"),
            ("/startupProbe", "Startup"),
        ] {
            let probe = at(container, field);
            if !probe.is_null() {
                w.write(2, &format!("{title}:\t{}\n", describe_probe(probe)));
            }
        }
        let env_from = list_at(container, "/envFrom");
        if !env_from.is_empty() {
            w.write(2, "Environment Variables from:\n");
            for source in env_from {
                let (from, reference) = if !at(source, "/configMapRef").is_null() {
                    ("ConfigMap", at(source, "/configMapRef"))
                } else {
                    ("Secret", at(source, "/secretRef"))
                };
                let optional = bool_at(reference, "/optional");
                let name = str_at(reference, "/name");
                let prefix = str_at(source, "/prefix");
                if prefix.is_empty() {
                    w.write(3, &format!("{name}\t{from}\tOptional: {optional}\n"));
                } else {
                    w.write(
                        3,
                        &format!("{name}\t{from} with prefix '{prefix}'\tOptional: {optional}\n"),
                    );
                }
            }
        }
        env_vars(w, container, pod);
        let mounts = list_at(container, "/volumeMounts");
        let none = if mounts.is_empty() { "\t<none>" } else { "" };
        w.write(2, &format!("Mounts:{none}\n"));
        let mut mounts: Vec<&Value> = mounts.iter().collect();
        mounts.sort_by_key(|m| str_at(m, "/mountPath").to_string());
        for mount in mounts {
            let mut flags = vec![if bool_at(mount, "/readOnly") {
                "ro".to_string()
            } else {
                "rw".to_string()
            }];
            let sub_path = str_at(mount, "/subPath");
            if !sub_path.is_empty() {
                flags.push(format!("path={sub_path:?}"));
            }
            w.write(
                3,
                &format!(
                    "{} from {} ({})\n",
                    str_at(mount, "/mountPath"),
                    str_at(mount, "/name"),
                    flags.join(",")
                ),
            );
        }
    }
}

pub(super) fn env_vars(w: &mut Page, container: &Value, pod: Option<&Value>) {
    let env = list_at(container, "/env");
    let none = if env.is_empty() { "\t<none>" } else { "" };
    w.write(2, &format!("Environment:{none}\n"));
    for e in env {
        let name = str_at(e, "/name");
        let from = at(e, "/valueFrom");
        if from.is_null() {
            for (i, line) in str_at(e, "/value").split('\n').enumerate() {
                if i == 0 {
                    w.write(3, &format!("{name}:\t{line}\n"));
                } else {
                    w.write(3, &format!("\t{line}\n"));
                }
            }
        } else if !at(from, "/fieldRef").is_null() {
            let path = str_at(from, "/fieldRef/fieldPath");
            let value = pod.map(|p| pod_field(p, path)).unwrap_or_default();
            w.write(
                3,
                &format!(
                    "{name}:\t{value} ({}:{path})\n",
                    str_at(from, "/fieldRef/apiVersion")
                ),
            );
        } else if !at(from, "/resourceFieldRef").is_null() {
            w.write(
                3,
                &format!(
                    "{name}:\t ({})\n",
                    str_at(from, "/resourceFieldRef/resource")
                ),
            );
        } else if !at(from, "/secretKeyRef").is_null() {
            let r = at(from, "/secretKeyRef");
            w.write(
                3,
                &format!(
                    "{name}:\t<set to the key '{}' in secret '{}'>\tOptional: {}\n",
                    str_at(r, "/key"),
                    str_at(r, "/name"),
                    bool_at(r, "/optional")
                ),
            );
        } else if !at(from, "/configMapKeyRef").is_null() {
            let r = at(from, "/configMapKeyRef");
            w.write(
                3,
                &format!(
                    "{name}:\t<set to the key '{}' of config map '{}'>\tOptional: {}\n",
                    str_at(r, "/key"),
                    str_at(r, "/name"),
                    bool_at(r, "/optional")
                ),
            );
        }
    }
}

/// The downward-API fields an env var can read (`fieldRef.fieldPath`).
pub(super) fn pod_field(pod: &Value, path: &str) -> String {
    let pointer = match path {
        "metadata.name" => "/metadata/name",
        "metadata.namespace" => "/metadata/namespace",
        "metadata.uid" => "/metadata/uid",
        "spec.nodeName" => "/spec/nodeName",
        "spec.serviceAccountName" => "/spec/serviceAccountName",
        "status.hostIP" => "/status/hostIP",
        "status.podIP" => "/status/podIP",
        _ => return String::new(),
    };
    str_at(pod, pointer).to_string()
}

pub(super) fn describe_probe(probe: &Value) -> String {
    let attrs = format!(
        "delay={}s timeout={}s period={}s #success={} #failure={}",
        int_at(probe, "/initialDelaySeconds"),
        int_at(probe, "/timeoutSeconds"),
        int_at(probe, "/periodSeconds"),
        int_at(probe, "/successThreshold"),
        int_at(probe, "/failureThreshold")
    );
    if !at(probe, "/exec").is_null() {
        let command: Vec<&str> = list_at(probe, "/exec/command")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        return format!("exec [{}] {attrs}", command.join(" "));
    }
    if !at(probe, "/httpGet").is_null() {
        let get = at(probe, "/httpGet");
        let scheme = str_at(get, "/scheme").to_lowercase();
        let host = str_at(get, "/host");
        let port = int_or_string(at(get, "/port"));
        return format!(
            "http-get {scheme}://{host}:{port}{} {attrs}",
            str_at(get, "/path")
        );
    }
    if !at(probe, "/tcpSocket").is_null() {
        return format!(
            "tcp-socket {}:{} {attrs}",
            str_at(probe, "/tcpSocket/host"),
            int_or_string(at(probe, "/tcpSocket/port"))
        );
    }
    format!("unknown {attrs}")
}

pub(super) fn container_state(w: &mut Page, title: &str, state: &Value) {
    if !at(state, "/running").is_null() {
        w.write(2, &format!("{title}:\tRunning\n"));
        w.write(
            3,
            &format!(
                "Started:\t{}\n",
                rfc1123z(str_at(state, "/running/startedAt"))
            ),
        );
    } else if !at(state, "/terminated").is_null() {
        let t = at(state, "/terminated");
        w.write(2, &format!("{title}:\tTerminated\n"));
        let reason = str_at(t, "/reason");
        if !reason.is_empty() {
            w.write(3, &format!("Reason:\t{reason}\n"));
        }
        let message = str_at(t, "/message");
        if !message.is_empty() {
            w.write(3, &format!("Message:\t{message}\n"));
        }
        w.write(3, &format!("Exit Code:\t{}\n", int_at(t, "/exitCode")));
        let signal = int_at(t, "/signal");
        if signal > 0 {
            w.write(3, &format!("Signal:\t{signal}\n"));
        }
        w.write(
            3,
            &format!("Started:\t{}\n", rfc1123z(str_at(t, "/startedAt"))),
        );
        w.write(
            3,
            &format!("Finished:\t{}\n", rfc1123z(str_at(t, "/finishedAt"))),
        );
    } else {
        w.write(2, &format!("{title}:\tWaiting\n"));
        let reason = str_at(state, "/waiting/reason");
        if !reason.is_empty() {
            w.write(3, &format!("Reason:\t{reason}\n"));
        }
    }
}

pub(super) fn volumes(w: &mut Page, volumes: &[Value], space: &str) {
    if volumes.is_empty() {
        w.write(0, &format!("{space}Volumes:\t<none>\n"));
        return;
    }
    w.write(0, &format!("{space}Volumes:\n"));
    let name_indent = if space.is_empty() { "" } else { " " };
    for volume in volumes {
        w.write(1, &format!("{name_indent}{}:\n", str_at(volume, "/name")));
        if let Some(cm) = volume.get("configMap") {
            w.write(
                2,
                &format!(
                    "Type:\tConfigMap (a volume populated by a ConfigMap)\n    Name:\t{}\n    Optional:\t{}\n",
                    str_at(cm, "/name"),
                    bool_at(cm, "/optional")
                ),
            );
        } else if let Some(secret) = volume.get("secret") {
            w.write(
                2,
                &format!(
                    "Type:\tSecret (a volume populated by a Secret)\n    SecretName:\t{}\n    Optional:\t{}\n",
                    str_at(secret, "/secretName"),
                    bool_at(secret, "/optional")
                ),
            );
        } else if let Some(dir) = volume.get("emptyDir") {
            let limit = at(dir, "/sizeLimit")
                .as_str()
                .filter(|l| !l.is_empty() && *l != "0");
            w.write(
                2,
                &format!(
                    "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n    Medium:\t{}\n    SizeLimit:\t{}\n",
                    str_at(dir, "/medium"),
                    limit.unwrap_or("<unset>")
                ),
            );
        } else if let Some(host) = volume.get("hostPath") {
            let kind = at(host, "/type").as_str().unwrap_or("<none>");
            w.write(
                2,
                &format!(
                    "Type:\tHostPath (bare host directory volume)\n    Path:\t{}\n    HostPathType:\t{kind}\n",
                    str_at(host, "/path")
                ),
            );
        } else if let Some(claim) = volume.get("persistentVolumeClaim") {
            w.write(
                2,
                &format!(
                    "Type:\tPersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same namespace)\n    ClaimName:\t{}\n    ReadOnly:\t{}\n",
                    str_at(claim, "/claimName"),
                    bool_at(claim, "/readOnly")
                ),
            );
        } else {
            w.write(1, "<unknown>\n");
        }
    }
}

pub(super) fn tolerations(w: &mut Page, title: &str, tolerations: &[Value]) {
    w.write(0, &format!("{title}:\t"));
    if tolerations.is_empty() {
        w.write(0, "<none>\n");
        return;
    }
    let mut sorted: Vec<&Value> = tolerations.iter().collect();
    sorted.sort_by_key(|t| str_at(t, "/key").to_string());
    for (i, t) in sorted.into_iter().enumerate() {
        if i != 0 {
            w.write(0, "\t");
        }
        let (key, value, effect) = (str_at(t, "/key"), str_at(t, "/value"), str_at(t, "/effect"));
        let mut line = key.to_string();
        if !value.is_empty() {
            line.push_str(&format!("={value}"));
        }
        if !effect.is_empty() {
            line.push_str(&format!(":{effect}"));
        }
        if str_at(t, "/operator") == "Exists" && value.is_empty() {
            if !key.is_empty() || !effect.is_empty() {
                line.push_str(" op=Exists");
            } else {
                line.push_str("op=Exists");
            }
        }
        if let Some(seconds) = at(t, "/tolerationSeconds").as_i64() {
            line.push_str(&format!(" for {seconds}s"));
        }
        w.write(0, &format!("{line}\n"));
    }
}
