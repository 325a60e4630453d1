//! Facts about Pods that more than one component needs.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Container, Pod, PodCondition, PodSpec, Taint, Toleration};

/// The Pod's `Ready` condition, if it reports one.
pub fn ready_condition(pod: &Pod) -> Option<&PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// The Ready condition is True (upstream's `IsPodReady`).
pub fn is_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// Whether `toleration` tolerates `taint` (upstream's
/// `Toleration.ToleratesTaint`): an empty effect or key matches any;
/// `Exists` ignores the value, `Equal` (the default) compares it.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

/// The first `NoSchedule` or `NoExecute` taint of `taints` that `pod` does
/// not tolerate: what keeps it off that node.
pub fn untolerated_taint<'a>(pod: &Pod, taints: &'a [Taint]) -> Option<&'a Taint> {
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default();
    taints.iter().find(|taint| {
        matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute")
            && !tolerations.iter().any(|t| tolerates(t, taint))
    })
}

/// Every container of the spec: init containers, then the others.
fn all_containers(spec: &PodSpec) -> impl Iterator<Item = &Container> {
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
}

/// The ConfigMaps a Pod reads, by name in its namespace (upstream's
/// `VisitPodConfigmapNames`): volumes, projected volume sources,
/// `envFrom` and `env[].valueFrom.configMapKeyRef`. The node that runs
/// the Pod may read exactly these (the Node authorizer), and its agent
/// watches exactly these.
pub fn configmap_names(spec: &PodSpec) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for volume in spec.volumes.iter().flatten() {
        if let Some(source) = &volume.config_map {
            names.insert(source.name.clone());
        }
        for projection in volume
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten())
        {
            if let Some(source) = &projection.config_map {
                names.insert(source.name.clone());
            }
        }
    }
    for container in all_containers(spec) {
        for from in container.env_from.iter().flatten() {
            if let Some(source) = &from.config_map_ref {
                names.insert(source.name.clone());
            }
        }
        for var in container.env.iter().flatten() {
            if let Some(key_ref) = var
                .value_from
                .as_ref()
                .and_then(|v| v.config_map_key_ref.as_ref())
            {
                names.insert(key_ref.name.clone());
            }
        }
    }
    names.retain(|n| !n.is_empty());
    names
}

/// The Secrets a Pod reads, by name in its namespace (upstream's
/// `VisitPodSecretNames`): `imagePullSecrets`, volumes, projected volume
/// sources, `envFrom` and `env[].valueFrom.secretKeyRef`.
pub fn secret_names(spec: &PodSpec) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for pull in spec.image_pull_secrets.iter().flatten() {
        names.insert(pull.name.clone());
    }
    for volume in spec.volumes.iter().flatten() {
        if let Some(name) = volume.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            names.insert(name);
        }
        for projection in volume
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten())
        {
            if let Some(source) = &projection.secret {
                names.insert(source.name.clone());
            }
        }
    }
    for container in all_containers(spec) {
        for from in container.env_from.iter().flatten() {
            if let Some(source) = &from.secret_ref {
                names.insert(source.name.clone());
            }
        }
        for var in container.env.iter().flatten() {
            if let Some(key_ref) = var
                .value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref())
            {
                names.insert(key_ref.name.clone());
            }
        }
    }
    names.retain(|n| !n.is_empty());
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ready_is_the_ready_condition() {
        let pod = |status: &str| -> Pod {
            serde_json::from_value(json!({"status": {"conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": status}]}}))
            .unwrap()
        };
        assert!(is_ready(&pod("True")));
        assert!(!is_ready(&pod("False")));
        assert!(!is_ready(&Pod::default()));
    }

    #[test]
    fn a_pod_reads_the_configmaps_and_secrets_it_names_wherever_it_names_them() {
        let spec: PodSpec = serde_json::from_value(json!({
            "imagePullSecrets": [{"name": "registry"}],
            "initContainers": [{"name": "init", "envFrom": [{"secretRef": {"name": "init-env"}}]}],
            "containers": [{
                "name": "web",
                "envFrom": [{"configMapRef": {"name": "web-env"}}],
                "env": [
                    {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "a"}}},
                    {"name": "B", "valueFrom": {"secretKeyRef": {"name": "password", "key": "b"}}},
                    {"name": "C", "value": "plain"}
                ]
            }],
            "volumes": [
                {"name": "conf", "configMap": {"name": "ngx-conf"}},
                {"name": "tls", "secret": {"secretName": "web-tls"}},
                {"name": "token", "projected": {"sources": [
                    {"serviceAccountToken": {"path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt"}},
                    {"secret": {"name": "extra"}}
                ]}},
                {"name": "scratch", "emptyDir": {}}
            ]
        }))
        .unwrap();
        let names = |set: BTreeSet<String>| set.into_iter().collect::<Vec<_>>();
        assert_eq!(
            names(configmap_names(&spec)),
            ["kube-root-ca.crt", "ngx-conf", "settings", "web-env"]
        );
        assert_eq!(
            names(secret_names(&spec)),
            ["extra", "init-env", "password", "registry", "web-tls"]
        );
    }
}

/// What a Pod asks of a node, as the scheduler counts it (upstream's
/// `resource.PodRequests`): per resource, the larger of the sum of its
/// containers' requests and its largest init container's request (init
/// containers run one at a time, before the others), plus the Pod's
/// overhead. A request left out defaults to the limit (the apiserver
/// writes it so; done here too for objects that skipped defaulting).
/// A quantity that does not parse counts as nothing: the apiserver
/// refuses such Pods.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodRequests {
    /// Millicores.
    pub cpu_milli: i128,
    /// Bytes.
    pub memory: i128,
}

pub fn requests(spec: &k8s_openapi::api::core::v1::PodSpec) -> PodRequests {
    use crate::quantity::Quantity;
    let of =
        |container: &k8s_openapi::api::core::v1::Container, resource: &str| -> Option<Quantity> {
            let resources = container.resources.as_ref()?;
            let value = resources
                .requests
                .as_ref()
                .and_then(|r| r.get(resource))
                .or_else(|| resources.limits.as_ref().and_then(|l| l.get(resource)))?;
            Quantity::parse(&value.0).ok()
        };
    let one = |c: &k8s_openapi::api::core::v1::Container| PodRequests {
        cpu_milli: of(c, "cpu").map_or(0, |q| q.milli()),
        memory: of(c, "memory").map_or(0, |q| q.value()),
    };
    let mut total = spec
        .containers
        .iter()
        .map(one)
        .fold(PodRequests::default(), |a, b| PodRequests {
            cpu_milli: a.cpu_milli + b.cpu_milli,
            memory: a.memory + b.memory,
        });
    for init in spec.init_containers.iter().flatten().map(one) {
        total.cpu_milli = total.cpu_milli.max(init.cpu_milli);
        total.memory = total.memory.max(init.memory);
    }
    if let Some(overhead) = &spec.overhead {
        let get = |name: &str| overhead.get(name).and_then(|q| Quantity::parse(&q.0).ok());
        total.cpu_milli += get("cpu").map_or(0, |q| q.milli());
        total.memory += get("memory").map_or(0, |q| q.value());
    }
    total
}

#[cfg(test)]
mod request_tests {
    use super::*;

    #[test]
    fn containers_add_up_and_init_containers_take_the_max() {
        let spec: k8s_openapi::api::core::v1::PodSpec = serde_json::from_value(serde_json::json!({
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "1", "memory": "64Mi"}}}],
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "100Mi"}}},
                {"name": "b", "resources": {"limits": {"cpu": "500m", "memory": "28Mi"}}},
                {"name": "c"}
            ]
        }))
        .unwrap();
        let r = requests(&spec);
        assert_eq!(r.cpu_milli, 1000, "the init container's 1 CPU beats 750m");
        assert_eq!(r.memory, 128 << 20, "100Mi + 28Mi beats 64Mi");
    }
}
