//! Which container of a Pod `logs` and `exec` talk to.
//!
//! A Pod may run several containers, and logs and processes belong to one
//! of them. kubectl reads the Pod first and picks: the one named with `-c`,
//! else the one the `kubectl.kubernetes.io/default-container` annotation
//! names, else the first, saying so on stderr when there was a choice
//! (`Defaulted container "a" out of: a, b`).

use serde_json::Value;

use crate::client::Client;

/// The annotation that names a Pod's default container (KEP 2227).
pub const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";

/// The Pod's name from `POD` or `pod/POD` (also `pods/`, `po/`).
pub fn pod_name(arg: &str) -> anyhow::Result<String> {
    match arg.split_once('/') {
        None => Ok(arg.to_string()),
        Some(("pod" | "pods" | "po", name)) if !name.is_empty() => Ok(name.to_string()),
        Some((kind, _)) => anyhow::bail!(
            "kubectl-lite works on Pods only here: {kind:?} is not supported, name a pod"
        ),
    }
}

/// Reads the Pod (a missing one is `Error from server (NotFound)`).
pub async fn get_pod(client: &Client, name: &str) -> anyhow::Result<Value> {
    let path = format!("/api/v1/namespaces/{}/pods/{name}", client.namespace);
    Ok(client.get(&path, &[]).await?)
}

fn names(pod: &Value, field: &str) -> Vec<String> {
    pod["spec"][field]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the Pod has a container (of any kind) with this name.
pub fn has_container(pod: &Value, name: &str) -> bool {
    ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .any(|field| names(pod, field).iter().any(|n| n == name))
}

/// The container to use when none was named, and the notice kubectl
/// prints when there was a choice (`quiet` suppresses it).
pub fn default_container(pod: &Value) -> anyhow::Result<(String, Option<String>)> {
    let containers = names(pod, "containers");
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let Some(first) = containers.first() else {
        anyhow::bail!(
            "pod {}/{pod_name} does not have any containers",
            pod["metadata"]["namespace"].as_str().unwrap_or_default()
        );
    };
    if let Some(named) = pod["metadata"]["annotations"][DEFAULT_CONTAINER_ANNOTATION].as_str() {
        if has_container(pod, named) {
            return Ok((named.to_string(), None));
        }
    }
    let init = names(pod, "initContainers");
    let ephemeral = names(pod, "ephemeralContainers");
    let notice = (containers.len() > 1 || !init.is_empty() || !ephemeral.is_empty()).then(|| {
        let all: Vec<String> = containers
            .iter()
            .cloned()
            .chain(init.iter().map(|n| format!("{n} (init)")))
            .chain(ephemeral.iter().map(|n| format!("{n} (ephem)")))
            .collect();
        format!("Defaulted container {first:?} out of: {}", all.join(", "))
    });
    Ok((first.clone(), notice))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn picks_like_kubectl() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "a"}, {"name": "b"}],
            "initContainers": [{"name": "i"}],
        }});
        let (name, notice) = default_container(&pod).unwrap();
        assert_eq!(name, "a");
        assert_eq!(
            notice.unwrap(),
            "Defaulted container \"a\" out of: a, b, i (init)"
        );
        let one = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "web"}]}});
        assert_eq!(default_container(&one).unwrap(), ("web".into(), None));
        let annotated = json!({"metadata": {"name": "p", "annotations": {DEFAULT_CONTAINER_ANNOTATION: "b"}},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(default_container(&annotated).unwrap(), ("b".into(), None));
        assert!(has_container(&pod, "i") && !has_container(&pod, "z"));
        assert_eq!(pod_name("pod/web").unwrap(), "web");
        assert!(pod_name("deploy/web").is_err());
    }
}
