//! A container's environment variables, as the kubelet computes them
//! (`makeEnvironmentVariables`).
//!
//! In order, later names winning (the runtime puts the image's own
//! variables, `PATH` and nginx's `NGINX_VERSION`, under all of them):
//!
//! 1. Kubernetes' own: `HOSTNAME`, and the service links (`NGX_SVC_SERVICE_HOST`,
//!    `KUBERNETES_SERVICE_HOST`...);
//! 2. `envFrom`: every key of a ConfigMap or Secret, with an optional prefix;
//! 3. `env`: plain values with `$(VAR)` expansion, or `valueFrom` a field
//!    of the Pod, a ConfigMap key or a Secret key.
//!
//! A ConfigMap or Secret that is missing (and not `optional`) keeps the
//! container from being created: the error becomes the container's
//! `CreateContainerConfigError` message, in the kubelet's words.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Container, EnvVarSource, Pod};

use super::{sandbox, Shared};

/// The service environment variables of a container of `pod` (in
/// `namespace`): those of every Service of its namespace (unless
/// `enableServiceLinks: false`), and always those of `default/kubernetes`
/// (`KUBERNETES_SERVICE_HOST`, `KUBERNETES_SERVICE_PORT`, which in-cluster
/// clients read), as the kubelet writes them.
fn service_env(shared: &Shared, pod: &Pod, namespace: &str) -> Vec<(String, String)> {
    let Some(services) = &shared.services else {
        return vec![];
    };
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let mut chosen: Vec<std::sync::Arc<k8s_openapi::api::core::v1::Service>> = services
        .state()
        .into_iter()
        .filter(|s| {
            let ns = s.metadata.namespace.as_deref().unwrap_or_default();
            let name = s.metadata.name.as_deref().unwrap_or_default();
            (links && ns == namespace) || (ns == "default" && name == "kubernetes")
        })
        .collect();
    chosen.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    chosen.dedup_by(|a, b| a.metadata.uid == b.metadata.uid);
    chosen
        .iter()
        .flat_map(|s| api::service::link_env(s))
        .collect()
}

/// The container's environment (see the module doc for the order).
pub fn container_env(
    shared: &Shared,
    pod: &Pod,
    spec: &Container,
    pod_ip: Ipv4Addr,
) -> Result<Vec<(String, String)>, String> {
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
        env.retain(|(name, _)| *name != k);
        env.push((k, v));
    };
    set(&mut env, "HOSTNAME".into(), sandbox::hostname(pod));
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    for (name, value) in service_env(shared, pod, &ns) {
        set(&mut env, name, value);
    }
    for from in spec.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or_default();
        if let Some(source) = &from.config_map_ref {
            match shared.configmaps.get(&ns, &source.name) {
                Some(configmap) => {
                    for (key, value) in configmap.data.iter().flatten() {
                        set(&mut env, format!("{prefix}{key}"), value.clone());
                    }
                }
                None if source.optional == Some(true) => {}
                None => return Err(format!("configmap {:?} not found", source.name)),
            }
        }
        if let Some(source) = &from.secret_ref {
            match shared.secrets.get(&ns, &source.name) {
                Some(secret) => {
                    for (key, value) in secret.data.iter().flatten() {
                        set(&mut env, format!("{prefix}{key}"), text(&value.0));
                    }
                }
                None if source.optional == Some(true) => {}
                None => return Err(format!("secret {:?} not found", source.name)),
            }
        }
    }
    for var in spec.env.iter().flatten() {
        let value = match &var.value_from {
            Some(from) => match value_from(shared, pod, &ns, pod_ip, &var.name, from)? {
                Some(value) => value,
                // An optional key that is missing: no variable at all.
                None => continue,
            },
            None => expand_vars(var.value.as_deref().unwrap_or_default(), &env),
        };
        set(&mut env, var.name.clone(), value);
    }
    Ok(env)
}

/// The value of `env[].valueFrom`; `None` for an optional key that is
/// not there.
fn value_from(
    shared: &Shared,
    pod: &Pod,
    ns: &str,
    pod_ip: Ipv4Addr,
    var: &str,
    from: &EnvVarSource,
) -> Result<Option<String>, String> {
    if let Some(field) = &from.field_ref {
        let value = match field.field_path.as_str() {
            "metadata.name" => pod.metadata.name.clone().unwrap_or_default(),
            "metadata.namespace" => ns.to_string(),
            "metadata.uid" => pod.metadata.uid.clone().unwrap_or_default(),
            "spec.nodeName" => shared.node_name.clone(),
            "spec.serviceAccountName" => pod
                .spec
                .as_ref()
                .and_then(|s| s.service_account_name.clone())
                .unwrap_or_default(),
            "status.podIP" => pod_ip.to_string(),
            "status.hostIP" => shared.node_ip.to_string(),
            path => {
                let key_in = |prefix: &str| path.strip_prefix(prefix)?.strip_suffix("']");
                let map = if let Some(key) = key_in("metadata.labels['") {
                    pod.metadata.labels.as_ref().map(|m| (m, key))
                } else if let Some(key) = key_in("metadata.annotations['") {
                    // An Indexed Job's Pods read their index this way.
                    pod.metadata.annotations.as_ref().map(|m| (m, key))
                } else {
                    return Err(format!("unsupported fieldRef {path:?} in env {var:?}"));
                };
                map.and_then(|(m, key)| m.get(key).cloned())
                    .unwrap_or_default()
            }
        };
        return Ok(Some(value));
    }
    if let Some(key_ref) = &from.config_map_key_ref {
        let configmap = shared.configmaps.get(ns, &key_ref.name);
        let value = configmap
            .as_ref()
            .and_then(|c| c.data.as_ref()?.get(&key_ref.key).cloned());
        return match value {
            Some(v) => Ok(Some(v)),
            None if key_ref.optional == Some(true) => Ok(None),
            None if configmap.is_none() => Err(format!("configmap {:?} not found", key_ref.name)),
            None => Err(format!(
                "couldn't find key {} in ConfigMap {ns}/{}",
                key_ref.key, key_ref.name
            )),
        };
    }
    if let Some(key_ref) = &from.secret_key_ref {
        let secret = shared.secrets.get(ns, &key_ref.name);
        let value = secret
            .as_ref()
            .and_then(|s| s.data.as_ref()?.get(&key_ref.key).map(|v| text(&v.0)));
        return match value {
            Some(v) => Ok(Some(v)),
            None if key_ref.optional == Some(true) => Ok(None),
            None if secret.is_none() => Err(format!("secret {:?} not found", key_ref.name)),
            None => Err(format!(
                "couldn't find key {} in Secret {ns}/{}",
                key_ref.key, key_ref.name
            )),
        };
    }
    Err(format!(
        "env {var:?}: only value, fieldRef, configMapKeyRef and secretKeyRef are supported by kube-lite"
    ))
}

/// A Secret's bytes as an environment value (an environment holds text).
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Kubernetes' `$(VAR)` expansion in command, args and env values;
/// `$$(VAR)` escapes, unknown references stay as they are.
pub fn expand_vars(input: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match env.iter().rev().find(|(k, _)| k == name) {
                        Some((_, v)) => out.push_str(v),
                        None => out.push_str(&format!("$({name})")),
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_expand_like_kubernetes() {
        let env = vec![("NAME".to_string(), "web".to_string())];
        assert_eq!(expand_vars("hello $(NAME)!", &env), "hello web!");
        assert_eq!(
            expand_vars("$$(NAME) $(OTHER) $", &env),
            "$(NAME) $(OTHER) $"
        );
    }
}
