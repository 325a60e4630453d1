//! The kubeconfig file: which cluster kubectl talks to, and as whom.
//!
//! kubectl never asks where the API server is. It reads a kubeconfig file
//! (`--kubeconfig`, else the `KUBECONFIG` environment variable, else
//! `~/.kube/config`) that lists *clusters* (a server URL and the CA to
//! trust), *users* (credentials: a client certificate, a token) and
//! *contexts* (a cluster + a user + a default namespace), and names one
//! context as `current-context`. `--server` and `--namespace` on the
//! command line override what the context says.
//!
//! The file format and the credentials are kube-rs's
//! ([`kube::config::Kubeconfig`], [`kube::Config`]): the same code the
//! controller and the node agents use. What is kubectl's own is where it
//! looks, how several files merge, and what it does with no file at all.

use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};

/// Where kubectl goes when nothing names a server: the insecure port old API
/// servers listened on. Nothing answers there today, which is why a missing
/// kubeconfig shows up as "The connection to the server localhost:8080 was
/// refused".
pub const DEFAULT_SERVER: &str = "http://localhost:8080";

/// The namespace used when neither `-n` nor the context names one.
pub const DEFAULT_NAMESPACE: &str = "default";

/// What a command needs to know to reach the cluster.
#[derive(Debug, Clone)]
pub struct ClusterTarget {
    /// Base URL of the API server, without a trailing slash.
    pub server: String,
    /// The namespace used when a command is not told one.
    pub namespace: String,
    /// How to reach it: the server, the CA, the credentials.
    pub config: kube::Config,
}

#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("error loading config file \"{path}\": {message}")]
    Load { path: PathBuf, message: String },
    #[error("context was not found for specified context: {0}")]
    MissingContext(String),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Reads one file; a file that does not exist is an empty config, as for
/// kubectl on a fresh machine.
pub fn load(path: &Path) -> Result<Kubeconfig, KubeconfigError> {
    let failed = |message: String| KubeconfigError::Load {
        path: path.to_path_buf(),
        message,
    };
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Ok(Kubeconfig::default()),
        Ok(_) => Kubeconfig::read_from(path).map_err(|e| failed(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Kubeconfig::default()),
        Err(e) => Err(failed(e.to_string())),
    }
}

/// Resolves the server, namespace and credentials, with command-line
/// overrides taking precedence over the current context. No usable
/// context (no file, or a context whose cluster is not defined) means
/// [`DEFAULT_SERVER`], without credentials, as for kubectl.
pub async fn target(
    config: Kubeconfig,
    server_flag: Option<&str>,
    namespace_flag: Option<&str>,
) -> Result<ClusterTarget, KubeconfigError> {
    let context = match config.current_context.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(name) => Some(
            config
                .contexts
                .iter()
                .find(|c| c.name == name)
                .ok_or_else(|| KubeconfigError::MissingContext(name.to_string()))?
                .context
                .clone()
                .unwrap_or_default(),
        ),
    };
    let cluster_defined = context.as_ref().is_some_and(|ctx| {
        config.clusters.iter().any(|c| {
            c.name == ctx.cluster && c.cluster.as_ref().is_some_and(|c| c.server.is_some())
        })
    });
    let mut kube_config = if cluster_defined {
        kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default())
            .await
            .map_err(|e| KubeconfigError::Invalid(e.to_string()))?
    } else {
        kube::Config::new(DEFAULT_SERVER.parse().expect("a valid URL"))
    };
    if let Some(server) = server_flag.filter(|s| !s.is_empty()) {
        kube_config.cluster_url = normalize_server(server)
            .parse()
            .map_err(|e| KubeconfigError::Invalid(format!("--server {server:?}: {e}")))?;
    }
    let namespace = namespace_flag
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .or_else(|| {
            context
                .and_then(|ctx| ctx.namespace)
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
    kube_config.default_namespace = namespace.clone();
    // Logs followed and watches may stay quiet for a long time: no read
    // timeout (kubectl has none either).
    kube_config.read_timeout = None;
    kube_config.write_timeout = None;
    Ok(ClusterTarget {
        server: kube_config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_string(),
        namespace,
        config: kube_config,
    })
}

/// kubectl accepts `--server=host:port` without a scheme; plain HTTP is then
/// assumed here (real kubectl assumes https only for port 443).
fn normalize_server(server: &str) -> String {
    let server = server.trim_end_matches('/');
    if server.contains("://") {
        server.to_string()
    } else {
        format!("http://{server}")
    }
}

/// The files to read: `--kubeconfig`, else every entry of `KUBECONFIG`,
/// else `~/.kube/config`.
pub fn config_paths(flag: Option<&Path>, env: Option<&str>, home: Option<&Path>) -> Vec<PathBuf> {
    if let Some(path) = flag {
        return vec![path.to_path_buf()];
    }
    if let Some(list) = env.filter(|l| !l.is_empty()) {
        return std::env::split_paths(list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
    }
    home.map(|h| vec![h.join(".kube").join("config")])
        .unwrap_or_default()
}

/// Merges several files the way `KUBECONFIG=a:b` does: the first file that
/// sets a value (current-context, or a named cluster, context or user)
/// wins.
pub fn merge(files: Vec<Kubeconfig>) -> Result<Kubeconfig, KubeconfigError> {
    files
        .into_iter()
        .try_fold(Kubeconfig::default(), Kubeconfig::merge)
        .map_err(|e| KubeconfigError::Invalid(e.to_string()))
}

/// Loads the kubeconfig the way kubectl finds it and resolves the target.
pub async fn resolve(
    kubeconfig_flag: Option<&Path>,
    server_flag: Option<&str>,
    namespace_flag: Option<&str>,
) -> Result<ClusterTarget, KubeconfigError> {
    let env = std::env::var("KUBECONFIG").ok();
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let paths = config_paths(kubeconfig_flag, env.as_deref(), home.as_deref());
    let mut files = Vec::new();
    for path in &paths {
        // An explicit --kubeconfig must exist, like kubectl insists.
        if kubeconfig_flag.is_some() && !path.exists() {
            return Err(KubeconfigError::Load {
                path: path.clone(),
                message: "no such file or directory".into(),
            });
        }
        files.push(load(path)?);
    }
    target(merge(files)?, server_flag, namespace_flag).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB_CONFIG: &str = r#"
apiVersion: v1
kind: Config
clusters:
- cluster:
    server: http://192.168.56.10:6443
  name: kube-lite
- cluster:
    server: http://127.0.0.1:9999/
  name: other
contexts:
- context:
    cluster: kube-lite
    namespace: lesson
    user: admin
  name: lab
- context:
    cluster: other
    user: admin
  name: elsewhere
current-context: lab
users:
- name: admin
  user: {}
"#;

    fn parse(text: &str) -> Kubeconfig {
        Kubeconfig::from_yaml(text).unwrap()
    }

    #[tokio::test]
    async fn current_context_gives_server_and_namespace() {
        let target = target(parse(LAB_CONFIG), None, None).await.unwrap();
        assert_eq!(target.server, "http://192.168.56.10:6443");
        assert_eq!(target.namespace, "lesson");
    }

    #[tokio::test]
    async fn flags_override_the_context() {
        let target = target(
            parse(LAB_CONFIG),
            Some("127.0.0.1:8001"),
            Some("kube-system"),
        )
        .await
        .unwrap();
        assert_eq!(target.server, "http://127.0.0.1:8001");
        assert_eq!(target.namespace, "kube-system");
    }

    #[tokio::test]
    async fn context_without_namespace_uses_default_and_trims_slash() {
        let mut config = parse(LAB_CONFIG);
        config.current_context = Some("elsewhere".into());
        let target = target(config, None, None).await.unwrap();
        assert_eq!(target.server, "http://127.0.0.1:9999");
        assert_eq!(target.namespace, "default");
    }

    #[tokio::test]
    async fn no_config_means_localhost_8080() {
        let target = target(Kubeconfig::default(), None, None).await.unwrap();
        assert_eq!(target.server, "http://localhost:8080");
        assert_eq!(target.namespace, "default");
    }

    #[tokio::test]
    async fn unknown_current_context_is_an_error() {
        let mut config = parse(LAB_CONFIG);
        config.current_context = Some("gone".into());
        let err = target(config, None, None).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "context was not found for specified context: gone"
        );
    }

    #[tokio::test]
    async fn merge_keeps_the_first_value() {
        let first = parse("current-context: a\ncontexts:\n- name: a\n  context: {cluster: c1}\n");
        let second = parse(LAB_CONFIG);
        let merged = merge(vec![first, second]).unwrap();
        assert_eq!(merged.current_context.as_deref(), Some("a"));
        assert_eq!(merged.contexts.len(), 3);
        // Cluster c1 is named but not defined anywhere: fall back to the default.
        assert_eq!(
            target(merged, None, None).await.unwrap().server,
            "http://localhost:8080"
        );
    }

    #[test]
    fn paths_follow_kubectl_precedence() {
        let home = Path::new("/home/student");
        assert_eq!(
            config_paths(Some(Path::new("/tmp/k")), Some("/a:/b"), Some(home)),
            vec![PathBuf::from("/tmp/k")]
        );
        assert_eq!(
            config_paths(None, Some("/a:/b"), Some(home)),
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
        assert_eq!(
            config_paths(None, None, Some(home)),
            vec![PathBuf::from("/home/student/.kube/config")]
        );
    }

    #[tokio::test]
    async fn resolve_reads_the_file_named_by_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, LAB_CONFIG).unwrap();
        let target = resolve(Some(&path), None, None).await.unwrap();
        assert_eq!(target.namespace, "lesson");
        let missing = resolve(Some(&dir.path().join("nope")), None, None).await;
        assert!(missing.is_err());
    }

    #[test]
    fn malformed_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, "contexts: [").unwrap();
        let err = load(&path).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("error loading config file \"{}\"", path.display())),
            "{err}"
        );
    }
}
