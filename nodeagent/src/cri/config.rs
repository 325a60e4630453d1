//! A Pod in the CRI's words: the `PodSandboxConfig` and `ContainerConfig`
//! the kubelet sends containerd for a Pod and each of its containers
//! (upstream: pkg/kubelet/kuberuntime's `generatePodSandboxConfig` and
//! `generateContainerConfig`).
//!
//! - **Labels** say what a sandbox or container is, so a restarted agent
//!   finds its Pods again by listing them: `io.kubernetes.pod.uid`,
//!   `io.kubernetes.pod.name`, `io.kubernetes.pod.namespace`,
//!   `io.kubernetes.container.name`. **Annotations** carry what the agent
//!   needs back later (the restart count, the grace period).
//! - **cgroups**: a Pod's containers share the Pod's cgroup
//!   `<cgroup root>/kubepods[/burstable|/besteffort]/pod<uid>` (the
//!   cgroupfs driver's names), its QoS class decides where.
//! - **Resources**: a CPU request becomes CPU shares (1 CPU = 1024), a
//!   CPU limit a CFS quota per 100 ms period, a memory limit the cgroup's
//!   memory limit; the OOM score follows the QoS class.
//! - **Security**: `securityContext` becomes runc's user, capabilities,
//!   privileged mode, read-only root, `no_new_privs`.
//!
//! Everything here is a pure function of the Pod: what the runtime does
//! with it is checked against containerd in `tests/lab_containerd.rs`.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, SecurityContext};

use super::v1;
use api::quantity::Quantity;

/// The labels the kubelet puts on sandboxes and containers.
pub const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
pub const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";
pub const CONTAINER_NAME_LABEL: &str = "io.kubernetes.container.name";
/// Annotations the agent reads back.
pub const RESTART_COUNT_ANNOTATION: &str = "io.kubernetes.container.restartCount";
pub const GRACE_PERIOD_ANNOTATION: &str = "io.kubernetes.pod.terminationGracePeriod";

/// The CFS period the kubelet uses: 100 ms.
pub const CPU_PERIOD_US: i64 = 100_000;
/// CPU shares of one CPU, and the kernel's minimum.
const SHARES_PER_CPU: i128 = 1024;
const MIN_SHARES: i64 = 2;
/// OOM scores by QoS class (pkg/kubelet/qos/policy.go).
pub const GUARANTEED_OOM_SCORE_ADJ: i64 = -997;
pub const BEST_EFFORT_OOM_SCORE_ADJ: i64 = 1000;

/// What the node adds to every Pod's configuration.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// The kubelet's `--cgroup-root`: `/` on a VM.
    pub cgroup_root: String,
    /// The kubelet's `--cgroup-driver`: `systemd` where systemd runs the
    /// machine (and containerd's runc has `SystemdCgroup`), `cgroupfs`
    /// otherwise. They must agree, or runc refuses the cgroup's name.
    pub systemd_cgroup: bool,
    /// `/var/log/pods` on a VM.
    pub pod_logs_dir: std::path::PathBuf,
    /// The node's memory in bytes, for burstable OOM scores.
    pub memory_capacity: i128,
}

/// A Pod's QoS class, as the apiserver recorded it (`BestEffort` when
/// missing).
pub fn qos_class(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.qos_class.as_deref())
        .unwrap_or("BestEffort")
}

fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or_default()
}

/// The Pod's cgroup, under the node's cgroup root: a path with
/// cgroupfs, a slice name with systemd (`kubepods-burstable-pod<uid>.slice`,
/// whose dashes say where it nests; the UID's own become `_`).
pub fn pod_cgroup(pod: &Pod, node: &NodeSettings) -> String {
    if node.systemd_cgroup {
        let tier = match qos_class(pod) {
            "Guaranteed" => String::new(),
            other => format!("-{}", other.to_ascii_lowercase()),
        };
        return format!("kubepods{tier}-pod{}.slice", uid(pod).replace('-', "_"));
    }
    let tier = match qos_class(pod) {
        "Guaranteed" => String::new(),
        other => format!("/{}", other.to_ascii_lowercase()),
    };
    format!(
        "{}/kubepods{tier}/pod{}",
        node.cgroup_root.trim_end_matches('/'),
        uid(pod)
    )
}

/// `/var/log/pods/<namespace>_<name>_<uid>`.
pub fn pod_log_dir(pod: &Pod, node: &NodeSettings) -> std::path::PathBuf {
    node.pod_logs_dir.join(format!(
        "{}_{}_{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default(),
        uid(pod)
    ))
}

/// The labels of a Pod's sandbox: the Pod's own and the kubelet's.
fn sandbox_labels(pod: &Pod) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = pod
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    labels.insert(
        POD_NAME_LABEL.into(),
        pod.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(
        POD_NAMESPACE_LABEL.into(),
        pod.metadata.namespace.clone().unwrap_or_default(),
    );
    labels.insert(POD_UID_LABEL.into(), uid(pod).into());
    labels
}

/// `resolv.conf` text (as [`crate::pods::sandbox::resolv_conf`] writes it)
/// in the CRI's form.
pub fn dns_config(resolv_conf: &str) -> v1::DnsConfig {
    let mut config = v1::DnsConfig::default();
    for line in resolv_conf.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => config.servers.extend(words.map(String::from)),
            Some("search") => config.searches.extend(words.map(String::from)),
            Some("options") => config.options.extend(words.map(String::from)),
            _ => {}
        }
    }
    config
}

/// Which namespaces a Pod's containers share: the network with the Pod
/// (or the node's, `hostNetwork`), IPC with the Pod, and processes only
/// with themselves unless `shareProcessNamespace`.
fn namespace_options(spec: &PodSpec) -> v1::NamespaceOption {
    let mode = |pod_wide: bool, otherwise: v1::NamespaceMode| {
        if pod_wide {
            v1::NamespaceMode::Pod as i32
        } else {
            otherwise as i32
        }
    };
    v1::NamespaceOption {
        network: mode(!spec.host_network.unwrap_or(false), v1::NamespaceMode::Node),
        pid: mode(
            spec.share_process_namespace.unwrap_or(false),
            v1::NamespaceMode::Container,
        ),
        ipc: v1::NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

/// The sandbox of `pod` (its `attempt`-th: a new one after the old was
/// lost, e.g. at a reboot).
pub fn sandbox_config(
    pod: &Pod,
    attempt: u32,
    resolv_conf: &str,
    node: &NodeSettings,
) -> v1::PodSandboxConfig {
    let spec = pod.spec.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let host_network = spec.host_network.unwrap_or(false);
    let port_mappings = spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.is_some_and(|port| port > 0))
        .map(|p| v1::PortMapping {
            protocol: match p.protocol.as_deref() {
                Some("UDP") => v1::Protocol::Udp as i32,
                Some("SCTP") => v1::Protocol::Sctp as i32,
                _ => v1::Protocol::Tcp as i32,
            },
            container_port: p.container_port,
            host_port: p.host_port.unwrap_or_default(),
            host_ip: p.host_ip.clone().unwrap_or_default(),
        })
        .collect();
    let pod_security = spec.security_context.clone().unwrap_or_default();
    let mut annotations: HashMap<String, String> = pod
        .metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    annotations.insert(
        GRACE_PERIOD_ANNOTATION.into(),
        spec.termination_grace_period_seconds
            .unwrap_or(30)
            .to_string(),
    );
    v1::PodSandboxConfig {
        metadata: Some(v1::PodSandboxMetadata {
            name: name.clone(),
            uid: uid(pod).into(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            attempt,
        }),
        hostname: if host_network {
            String::new()
        } else {
            spec.hostname.clone().unwrap_or(name)
        },
        log_directory: pod_log_dir(pod, node).display().to_string(),
        dns_config: (!host_network).then(|| dns_config(resolv_conf)),
        port_mappings,
        labels: sandbox_labels(pod),
        annotations,
        linux: Some(v1::LinuxPodSandboxConfig {
            cgroup_parent: pod_cgroup(pod, node),
            security_context: Some(v1::LinuxSandboxSecurityContext {
                namespace_options: Some(namespace_options(&spec)),
                run_as_user: pod_security
                    .run_as_user
                    .map(|value| v1::Int64Value { value }),
                run_as_group: pod_security
                    .run_as_group
                    .map(|value| v1::Int64Value { value }),
                supplemental_groups: pod_security.supplemental_groups.clone().unwrap_or_default(),
                // containerd refuses a privileged container in a sandbox
                // that is not privileged itself.
                privileged: spec
                    .containers
                    .iter()
                    .chain(spec.init_containers.iter().flatten())
                    .any(|c| c.security_context.as_ref().and_then(|s| s.privileged) == Some(true)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Why a container cannot be configured: a user error the Pod's events
/// show (`CreateContainerConfigError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{field}: {value:?} is not a quantity")]
    Quantity { field: String, value: String },
    #[error("container has runAsNonRoot and image will run as root (pod: {pod:?}, container: {container})")]
    RunsAsRoot { pod: String, container: String },
}

fn quantity(
    container: &Container,
    part: &str,
    resource: &str,
) -> Result<Option<Quantity>, ConfigError> {
    let resources = container.resources.as_ref();
    let list = match part {
        "limits" => resources.and_then(|r| r.limits.as_ref()),
        _ => resources.and_then(|r| r.requests.as_ref()),
    };
    let Some(value) = list.and_then(|l| l.get(resource)) else {
        return Ok(None);
    };
    Quantity::parse(&value.0)
        .map(Some)
        .map_err(|_| ConfigError::Quantity {
            field: format!("resources.{part}.{resource}"),
            value: value.0.clone(),
        })
}

/// The cgroup settings of a container (kuberuntime's
/// `generateLinuxContainerResources`).
pub fn container_resources(
    pod: &Pod,
    container: &Container,
    node: &NodeSettings,
) -> Result<v1::LinuxContainerResources, ConfigError> {
    let cpu_request = quantity(container, "requests", "cpu")?;
    let cpu_limit = quantity(container, "limits", "cpu")?;
    let memory_request = quantity(container, "requests", "memory")?;
    let memory_limit = quantity(container, "limits", "memory")?;
    // A request defaults to the limit (the apiserver does this too).
    let cpu = cpu_request.or(cpu_limit);
    let cpu_shares = match cpu {
        Some(q) => ((q.milli() * SHARES_PER_CPU / 1000) as i64).max(MIN_SHARES),
        None => MIN_SHARES,
    };
    let cpu_quota = cpu_limit.map_or(0, |q| {
        // At least 1 ms per period, as the kernel requires.
        ((q.milli() * CPU_PERIOD_US as i128 / 1000) as i64).max(1000)
    });
    let oom_score_adj = match qos_class(pod) {
        "Guaranteed" => GUARANTEED_OOM_SCORE_ADJ,
        "BestEffort" => BEST_EFFORT_OOM_SCORE_ADJ,
        _ => {
            let request = memory_request.or(memory_limit).map_or(0, |q| q.value());
            let score = 1000 - (1000 * request) / node.memory_capacity.max(1);
            (score as i64).clamp(2, 999)
        }
    };
    Ok(v1::LinuxContainerResources {
        cpu_period: if cpu_limit.is_some() {
            CPU_PERIOD_US
        } else {
            0
        },
        cpu_quota,
        cpu_shares,
        memory_limit_in_bytes: memory_limit.map_or(0, |q| q.value() as i64),
        oom_score_adj,
        ..Default::default()
    })
}

/// A container's security settings: the container's `securityContext`
/// over the Pod's.
pub fn container_security(pod: &Pod, container: &Container) -> v1::LinuxContainerSecurityContext {
    let pod_security = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default();
    let own: SecurityContext = container.security_context.clone().unwrap_or_default();
    let capabilities = own.capabilities.clone().unwrap_or_default();
    let run_as_user = own.run_as_user.or(pod_security.run_as_user);
    let run_as_group = own.run_as_group.or(pod_security.run_as_group);
    let spec = pod.spec.clone().unwrap_or_default();
    v1::LinuxContainerSecurityContext {
        capabilities: Some(v1::Capability {
            add_capabilities: capabilities.add.unwrap_or_default(),
            drop_capabilities: capabilities.drop.unwrap_or_default(),
            ..Default::default()
        }),
        privileged: own.privileged.unwrap_or(false),
        namespace_options: Some(namespace_options(&spec)),
        run_as_user: run_as_user.map(|value| v1::Int64Value { value }),
        run_as_group: run_as_group.map(|value| v1::Int64Value { value }),
        readonly_rootfs: own.read_only_root_filesystem.unwrap_or(false),
        supplemental_groups: pod_security.supplemental_groups.clone().unwrap_or_default(),
        // allowPrivilegeEscalation defaults to true (unless privileged
        // or CAP_SYS_ADMIN, where it must be): no_new_privs is its opposite.
        no_new_privs: own.allow_privilege_escalation == Some(false),
        ..Default::default()
    }
}

/// Whether the container must not run as root but would: `runAsNonRoot`
/// with `runAsUser` 0, or with no user where the image's user is root
/// (`image_user` is the image config's `User`, `""` meaning root).
pub fn check_run_as_non_root(
    pod: &Pod,
    container: &Container,
    image_user: &str,
) -> Result<(), ConfigError> {
    let pod_security = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default();
    let own = container.security_context.clone().unwrap_or_default();
    if !own
        .run_as_non_root
        .or(pod_security.run_as_non_root)
        .unwrap_or(false)
    {
        return Ok(());
    }
    let user = own.run_as_user.or(pod_security.run_as_user);
    let image_is_root = {
        let name = image_user.split(':').next().unwrap_or_default();
        name.is_empty() || name == "0" || name == "root"
    };
    if user == Some(0) || (user.is_none() && image_is_root) {
        return Err(ConfigError::RunsAsRoot {
            pod: pod.metadata.name.clone().unwrap_or_default(),
            container: container.name.clone(),
        });
    }
    Ok(())
}

/// The labels of a container: the kubelet's.
pub fn container_labels(pod: &Pod, container: &Container) -> HashMap<String, String> {
    HashMap::from([
        (
            POD_NAME_LABEL.into(),
            pod.metadata.name.clone().unwrap_or_default(),
        ),
        (
            POD_NAMESPACE_LABEL.into(),
            pod.metadata.namespace.clone().unwrap_or_default(),
        ),
        (POD_UID_LABEL.into(), uid(pod).into()),
        (CONTAINER_NAME_LABEL.into(), container.name.clone()),
    ])
}

/// The `restart_count`-th container of `container` in `pod`, with its
/// environment (resolved by [`crate::pods::env`]) and mounts (made by
/// [`crate::pods::volumes`]). Logs go to `<name>/<restart_count>.log`
/// under the sandbox's log directory, as the kubelet names them.
pub fn container_config(
    pod: &Pod,
    container: &Container,
    restart_count: u32,
    env: &[(String, String)],
    mounts: Vec<v1::Mount>,
    node: &NodeSettings,
) -> Result<v1::ContainerConfig, ConfigError> {
    Ok(v1::ContainerConfig {
        metadata: Some(v1::ContainerMetadata {
            name: container.name.clone(),
            attempt: restart_count,
        }),
        image: Some(v1::ImageSpec {
            image: container.image.clone().unwrap_or_default(),
            ..Default::default()
        }),
        // The runtime merges these with the image's ENTRYPOINT and CMD
        // by Kubernetes' rules.
        command: container.command.clone().unwrap_or_default(),
        args: container.args.clone().unwrap_or_default(),
        working_dir: container.working_dir.clone().unwrap_or_default(),
        // `value` is `bytes` in cri-api 0.35 (`string` before): the same
        // on the wire.
        envs: env
            .iter()
            .map(|(key, value)| v1::KeyValue {
                key: key.clone(),
                value: value.clone().into_bytes(),
            })
            .collect(),
        mounts,
        labels: container_labels(pod, container),
        annotations: HashMap::from([(
            RESTART_COUNT_ANNOTATION.to_string(),
            restart_count.to_string(),
        )]),
        log_path: format!("{}/{restart_count}.log", container.name),
        stdin: container.stdin.unwrap_or(false),
        stdin_once: container.stdin_once.unwrap_or(false),
        tty: container.tty.unwrap_or(false),
        linux: Some(v1::LinuxContainerConfig {
            resources: Some(container_resources(pod, container, node)?),
            security_context: Some(container_security(pod, container)),
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: serde_json::Value, qos: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u-1", "labels": {"app": "web"}},
            "spec": spec,
            "status": {"qosClass": qos},
        }))
        .unwrap()
    }

    fn node() -> NodeSettings {
        NodeSettings {
            cgroup_root: "/".into(),
            systemd_cgroup: false,
            pod_logs_dir: "/var/log/pods".into(),
            memory_capacity: 4 << 30,
        }
    }

    #[test]
    fn the_pods_cgroup_follows_its_qos_class() {
        let spec = serde_json::json!({"containers": [{"name": "c"}]});
        assert_eq!(
            pod_cgroup(&pod(spec.clone(), "Guaranteed"), &node()),
            "/kubepods/podu-1"
        );
        assert_eq!(
            pod_cgroup(&pod(spec.clone(), "Burstable"), &node()),
            "/kubepods/burstable/podu-1"
        );
        let lab = NodeSettings {
            cgroup_root: "/kube-lite/kl-worker1".into(),
            ..node()
        };
        assert_eq!(
            pod_cgroup(&pod(spec.clone(), "BestEffort"), &lab),
            "/kube-lite/kl-worker1/kubepods/besteffort/podu-1"
        );
        let systemd = NodeSettings {
            systemd_cgroup: true,
            ..node()
        };
        assert_eq!(
            pod_cgroup(&pod(spec.clone(), "Burstable"), &systemd),
            "kubepods-burstable-podu_1.slice"
        );
        assert_eq!(
            pod_cgroup(&pod(spec, "Guaranteed"), &systemd),
            "kubepods-podu_1.slice"
        );
    }

    #[test]
    fn requests_and_limits_become_shares_quota_and_memory() {
        let p = pod(
            serde_json::json!({"containers": [{"name": "c", "resources": {
                "requests": {"cpu": "250m", "memory": "64Mi"},
                "limits": {"cpu": "500m", "memory": "128Mi"}}}]}),
            "Burstable",
        );
        let c = &p.spec.as_ref().unwrap().containers[0];
        let r = container_resources(&p, c, &node()).unwrap();
        assert_eq!(r.cpu_shares, 256);
        assert_eq!(r.cpu_period, 100_000);
        assert_eq!(r.cpu_quota, 50_000);
        assert_eq!(r.memory_limit_in_bytes, 128 << 20);
        // 1000 - 1000 * 64Mi / 4Gi = 985 (rounded down).
        assert_eq!(r.oom_score_adj, 985);
    }

    #[test]
    fn best_effort_gets_minimum_shares_and_the_highest_oom_score() {
        let p = pod(
            serde_json::json!({"containers": [{"name": "c"}]}),
            "BestEffort",
        );
        let c = &p.spec.as_ref().unwrap().containers[0];
        let r = container_resources(&p, c, &node()).unwrap();
        assert_eq!(
            (r.cpu_shares, r.cpu_quota, r.memory_limit_in_bytes),
            (2, 0, 0)
        );
        assert_eq!(r.oom_score_adj, 1000);
    }

    #[test]
    fn a_bad_quantity_names_its_field() {
        let p = pod(
            serde_json::json!({"containers": [{"name": "c", "resources": {"limits": {"memory": "lots"}}}]}),
            "Burstable",
        );
        let c = &p.spec.as_ref().unwrap().containers[0];
        let error = container_resources(&p, c, &node()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "resources.limits.memory: \"lots\" is not a quantity"
        );
    }

    #[test]
    fn the_security_context_of_the_container_wins_over_the_pods() {
        let p = pod(
            serde_json::json!({"securityContext": {"runAsUser": 1000, "runAsGroup": 3000},
                "containers": [{"name": "c", "securityContext": {"runAsUser": 2000,
                    "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
                    "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false}}]}),
            "BestEffort",
        );
        let c = &p.spec.as_ref().unwrap().containers[0];
        let s = container_security(&p, c);
        assert_eq!(s.run_as_user.unwrap().value, 2000);
        assert_eq!(s.run_as_group.unwrap().value, 3000);
        let caps = s.capabilities.unwrap();
        assert_eq!(
            (caps.add_capabilities, caps.drop_capabilities),
            (vec!["NET_ADMIN".to_string()], vec!["ALL".to_string()])
        );
        assert!(s.readonly_rootfs && s.no_new_privs && !s.privileged);
    }

    #[test]
    fn run_as_non_root_refuses_a_root_image_without_a_user() {
        let p = pod(
            serde_json::json!({"securityContext": {"runAsNonRoot": true}, "containers": [{"name": "c"}]}),
            "BestEffort",
        );
        let c = &p.spec.as_ref().unwrap().containers[0];
        assert!(check_run_as_non_root(&p, c, "").is_err());
        assert!(check_run_as_non_root(&p, c, "101:101").is_ok());
        let with_user = pod(
            serde_json::json!({"securityContext": {"runAsNonRoot": true, "runAsUser": 1000}, "containers": [{"name": "c"}]}),
            "BestEffort",
        );
        let c = &with_user.spec.as_ref().unwrap().containers[0];
        assert!(check_run_as_non_root(&with_user, c, "").is_ok());
    }

    #[test]
    fn the_sandbox_carries_the_pods_identity_dns_and_log_directory() {
        let p = pod(
            serde_json::json!({"containers": [{"name": "c"}]}),
            "BestEffort",
        );
        let resolv = "nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n";
        let config = sandbox_config(&p, 0, resolv, &node());
        assert_eq!(config.hostname, "web");
        assert_eq!(config.log_directory, "/var/log/pods/default_web_u-1");
        assert_eq!(config.labels[POD_UID_LABEL], "u-1");
        assert_eq!(config.labels["app"], "web");
        let dns = config.dns_config.unwrap();
        assert_eq!(dns.servers, ["10.96.0.10"]);
        assert_eq!(dns.searches.len(), 3);
        assert_eq!(dns.options, ["ndots:5"]);
        assert_eq!(config.annotations[GRACE_PERIOD_ANNOTATION], "30");
    }
}
