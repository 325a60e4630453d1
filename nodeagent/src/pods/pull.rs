//! Getting a container's image onto the node, as the kubelet's image
//! manager does before it creates the container.
//!
//! - `imagePullPolicy` decides whether to ask the runtime at all:
//!   `IfNotPresent` pulls only when `ImageStatus` finds nothing, `Always`
//!   pulls every time (the registry answers quickly when nothing changed),
//!   `Never` never pulls and fails with `ErrImageNeverPull` when the image
//!   is absent. (The apiserver defaults it: `Always` for `:latest` or no
//!   tag, `IfNotPresent` otherwise.)
//! - `imagePullSecrets` (Secrets of type `kubernetes.io/dockerconfigjson`)
//!   give credentials per registry; the ones for the image's registry are
//!   tried in order, then an anonymous pull (the kubelet's keyring).
//! - A failed pull is `ErrImagePull` with the runtime's message, then
//!   `ImagePullBackOff` while the worker waits (10 s, doubling to 5 min).

use k8s_openapi::api::core::v1::{Container, Pod, Secret};
use k8s_openapi::ByteString;

use crate::cri::{v1, Runtime};

/// `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Always,
    IfNotPresent,
    Never,
}

/// The container's policy, defaulted as the apiserver does when a Pod
/// reached us without it.
pub fn policy(container: &Container) -> Policy {
    match container.image_pull_policy.as_deref() {
        Some("Always") => Policy::Always,
        Some("Never") => Policy::Never,
        Some("IfNotPresent") => Policy::IfNotPresent,
        _ => {
            let image = container.image.as_deref().unwrap_or_default();
            let last = image.rsplit('/').next().unwrap_or_default();
            let tag = last.split('@').next().unwrap_or_default().split_once(':');
            match tag {
                None if !image.contains('@') => Policy::Always,
                Some((_, "latest")) => Policy::Always,
                _ => Policy::IfNotPresent,
            }
        }
    }
}

/// Why the image is not there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullError {
    /// `ErrImagePull`: the runtime's message.
    Failed(String),
    /// `ErrImageNeverPull`.
    NeverPull(String),
}

impl PullError {
    pub fn reason(&self) -> &'static str {
        match self {
            PullError::Failed(_) => "ErrImagePull",
            PullError::NeverPull(_) => "ErrImageNeverPull",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            PullError::Failed(m) | PullError::NeverPull(m) => m,
        }
    }
}

/// What happened, for the Pod's events.
#[derive(Debug, Clone, PartialEq)]
pub enum Pulled {
    /// It was on the node already.
    Present,
    /// Pulled now: how long it took and the image's size.
    Pulled { seconds: f64, size: u64 },
}

/// Makes `image` present by `policy`; `on_pull` is called before a pull
/// starts (the `Pulling` event). Also gives the image as `ImageStatus`
/// describes it (its user, for `runAsNonRoot`).
pub async fn ensure(
    runtime: &mut Runtime,
    image: &str,
    policy: Policy,
    credentials: &[v1::AuthConfig],
    on_pull: impl FnOnce(),
) -> Result<(Pulled, Option<v1::Image>), PullError> {
    let present = runtime
        .image(image)
        .await
        .map_err(|status| PullError::Failed(go_status(&status)))?;
    match (policy, present) {
        (Policy::Never, None) => {
            return Err(PullError::NeverPull(format!(
                "Container image {image:?} is not present with pull policy of Never"
            )))
        }
        (Policy::Never | Policy::IfNotPresent, Some(found)) => {
            return Ok((Pulled::Present, Some(found)))
        }
        _ => {}
    }
    on_pull();
    let begin = std::time::Instant::now();
    let mut last = None;
    let attempts = credentials.iter().cloned().map(Some).chain([None]);
    for auth in attempts {
        match runtime.pull_with(image, auth).await {
            Ok(_) => {
                let seconds = begin.elapsed().as_secs_f64();
                let found = runtime.image(image).await.ok().flatten();
                let size = found.as_ref().map_or(0, |i| i.size);
                return Ok((Pulled::Pulled { seconds, size }, found));
            }
            Err(status) => last = Some(status),
        }
    }
    Err(PullError::Failed(
        last.map(|s| go_status(&s)).unwrap_or_default(),
    ))
}

/// A gRPC error as Go's grpc prints it (the kubelet passes that text on):
/// `rpc error: code = NotFound desc = ...`.
pub fn go_status(status: &tonic::Status) -> String {
    format!(
        "rpc error: code = {:?} desc = {}",
        status.code(),
        status.message()
    )
}

/// The registry an image comes from (`docker.io` when the first part of
/// its name is no host), as the credentials are keyed.
pub fn registry_host(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first
        }
        _ => "docker.io",
    }
}

/// The credentials the Pod's `imagePullSecrets` hold for `image`'s
/// registry, in the order the Pod names them. A `.dockerconfigjson` maps
/// registries (`https://index.docker.io/v1/`, `registry.example:5000`)
/// to a `username`/`password` or an `auth` (base64 of `user:password`).
pub fn credentials(image: &str, secrets: &[std::sync::Arc<Secret>]) -> Vec<v1::AuthConfig> {
    let wanted = normalize_host(registry_host(image));
    let mut found = vec![];
    for secret in secrets {
        let data = secret.data.as_ref();
        let Some(ByteString(json)) = data
            .and_then(|d| d.get(".dockerconfigjson"))
            .or_else(|| data.and_then(|d| d.get(".dockercfg")))
        else {
            continue;
        };
        let Ok(config) = serde_json::from_slice::<serde_json::Value>(json) else {
            continue;
        };
        // `.dockerconfigjson` nests the registries under `auths`;
        // the older `.dockercfg` is the map itself.
        let auths = config.get("auths").unwrap_or(&config);
        let Some(auths) = auths.as_object() else {
            continue;
        };
        for (key, entry) in auths {
            if normalize_host(key) != wanted {
                continue;
            }
            let text = |name: &str| {
                entry
                    .get(name)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            // `serveraddress` only when the entry says it (the kubelet's
            // way): containerd gives the credentials to no other host, and
            // compares it as a URL's host.
            found.push(v1::AuthConfig {
                username: text("username"),
                password: text("password"),
                auth: text("auth"),
                server_address: text("serveraddress"),
                ..Default::default()
            });
        }
    }
    found
}

/// `https://index.docker.io/v1/` and `registry-1.docker.io` are Docker
/// Hub as `docker.io` is; a scheme and a path are not part of the host.
fn normalize_host(key: &str) -> String {
    let host = key
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default();
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        other => other.to_string(),
    }
}

/// The Pod's `imagePullSecrets` that exist (from the followed Secrets).
pub fn pull_secrets(
    pod: &Pod,
    get: impl Fn(&str) -> Option<std::sync::Arc<Secret>>,
) -> Vec<std::sync::Arc<Secret>> {
    pod.spec
        .iter()
        .flat_map(|s| s.image_pull_secrets.iter().flatten())
        .filter_map(|r| get(&r.name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(image: &str, policy: Option<&str>) -> Container {
        Container {
            name: "c".into(),
            image: Some(image.into()),
            image_pull_policy: policy.map(String::from),
            ..Default::default()
        }
    }

    #[test]
    fn the_policy_defaults_by_tag_as_the_apiserver_does() {
        assert_eq!(policy(&container("nginx", None)), Policy::Always);
        assert_eq!(policy(&container("nginx:latest", None)), Policy::Always);
        assert_eq!(
            policy(&container("nginx:alpine", None)),
            Policy::IfNotPresent
        );
        assert_eq!(
            policy(&container("registry:5000/nginx", None)),
            Policy::Always,
            "a registry's port is not a tag"
        );
        assert_eq!(
            policy(&container("nginx@sha256:abc", None)),
            Policy::IfNotPresent
        );
        assert_eq!(policy(&container("nginx", Some("Never"))), Policy::Never);
    }

    #[test]
    fn the_registry_is_the_first_part_when_it_looks_like_a_host() {
        assert_eq!(registry_host("nginx"), "docker.io");
        assert_eq!(registry_host("library/nginx:1"), "docker.io");
        assert_eq!(
            registry_host("registry.k8s.io/pause:3.10"),
            "registry.k8s.io"
        );
        assert_eq!(registry_host("192.168.56.1:5000/x"), "192.168.56.1:5000");
        assert_eq!(registry_host("localhost/x"), "localhost");
    }

    #[test]
    fn credentials_are_those_of_the_images_registry() {
        let config = serde_json::json!({"auths": {
            "https://index.docker.io/v1/": {"auth": "dXNlcjpwdw=="},
            "registry.example:5000": {"username": "u", "password": "p"},
        }});
        let secret = Secret {
            data: Some(
                [(
                    ".dockerconfigjson".to_string(),
                    ByteString(serde_json::to_vec(&config).unwrap()),
                )]
                .into(),
            ),
            ..Default::default()
        };
        let secrets = [std::sync::Arc::new(secret)];
        let hub = credentials("private/app:1", &secrets);
        assert_eq!(hub.len(), 1);
        assert_eq!(hub[0].auth, "dXNlcjpwdw==");
        let own = credentials("registry.example:5000/app", &secrets);
        assert_eq!(
            (own[0].username.as_str(), own[0].password.as_str()),
            ("u", "p")
        );
        assert!(credentials("quay.io/app", &secrets).is_empty());
    }
}
