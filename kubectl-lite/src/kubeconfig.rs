//! The kubeconfig file: which cluster kubectl talks to, and as whom.
//!
//! kubectl never asks where the API server is. It reads a kubeconfig file
//! (`--kubeconfig`, else the `KUBECONFIG` environment variable, else
//! `~/.kube/config`) that lists *clusters* (a server URL), *users*
//! (credentials) and *contexts* (a cluster + a user + a default namespace),
//! and names one context as `current-context`. `--server` and
//! `--namespace` on the command line override what the context says.
//!
//! kube-lite serves plain HTTP without authentication, so only the server
//! and the namespace matter here; users are read and ignored.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where kubectl goes when nothing names a server: the insecure port old API
/// servers listened on. Nothing answers there today, which is why a missing
/// kubeconfig shows up as "The connection to the server localhost:8080 was
/// refused".
pub const DEFAULT_SERVER: &str = "http://localhost:8080";

/// The namespace used when neither `-n` nor the context names one.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The parts of a kubeconfig file kubectl-lite uses.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct Kubeconfig {
    #[serde(default)]
    pub current_context: Option<String>,
    #[serde(default)]
    pub clusters: Vec<NamedCluster>,
    #[serde(default)]
    pub contexts: Vec<NamedContext>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct NamedCluster {
    pub name: String,
    pub cluster: Cluster,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Cluster {
    #[serde(default)]
    pub server: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct NamedContext {
    pub name: String,
    pub context: Context,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Context {
    #[serde(default)]
    pub cluster: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
}

/// What a command needs to know to reach the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTarget {
    /// Base URL of the API server, without a trailing slash.
    pub server: String,
    /// The namespace used when a command is not told one.
    pub namespace: String,
}

#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("error loading config file \"{path}\": {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("error loading config file \"{path}\": {message}")]
    Parse { path: PathBuf, message: String },
    #[error("context was not found for specified context: {0}")]
    MissingContext(String),
}

impl Kubeconfig {
    /// Parses a kubeconfig document.
    pub fn parse(text: &str, path: &Path) -> Result<Self, KubeconfigError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_saphyr::from_str(text).map_err(|e| KubeconfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Reads one file; a file that does not exist is an empty config, as
    /// for kubectl on a fresh machine.
    pub fn load(path: &Path) -> Result<Self, KubeconfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(KubeconfigError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Merges several files the way `KUBECONFIG=a:b` does: the first file
    /// that sets a value (current-context, or a named cluster or context)
    /// wins.
    pub fn merge(files: Vec<Kubeconfig>) -> Self {
        let mut merged = Kubeconfig::default();
        for file in files {
            if merged.current_context.is_none() {
                merged.current_context = file.current_context.filter(|c| !c.is_empty());
            }
            for cluster in file.clusters {
                if !merged.clusters.iter().any(|c| c.name == cluster.name) {
                    merged.clusters.push(cluster);
                }
            }
            for context in file.contexts {
                if !merged.contexts.iter().any(|c| c.name == context.name) {
                    merged.contexts.push(context);
                }
            }
        }
        merged
    }

    /// The current context, if the config names one that exists.
    pub fn current(&self) -> Result<Option<&Context>, KubeconfigError> {
        let Some(name) = &self.current_context else {
            return Ok(None);
        };
        self.contexts
            .iter()
            .find(|c| &c.name == name)
            .map(|c| Some(&c.context))
            .ok_or_else(|| KubeconfigError::MissingContext(name.clone()))
    }

    /// Resolves the server and namespace, with command-line overrides
    /// taking precedence over the current context.
    pub fn target(
        &self,
        server_flag: Option<&str>,
        namespace_flag: Option<&str>,
    ) -> Result<ClusterTarget, KubeconfigError> {
        let context = self.current()?;
        let context_server = context
            .and_then(|ctx| ctx.cluster.as_ref())
            .and_then(|name| self.clusters.iter().find(|c| &c.name == name))
            .and_then(|c| c.cluster.server.clone());
        let server = server_flag
            .map(str::to_string)
            .or(context_server)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_SERVER.to_string());
        let namespace = namespace_flag
            .map(str::to_string)
            .or_else(|| context.and_then(|ctx| ctx.namespace.clone()))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
        Ok(ClusterTarget {
            server: normalize_server(&server),
            namespace,
        })
    }
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

/// Loads the kubeconfig the way kubectl finds it and resolves the target.
pub fn resolve(
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
            return Err(KubeconfigError::Read {
                path: path.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such file or directory",
                ),
            });
        }
        files.push(Kubeconfig::load(path)?);
    }
    Kubeconfig::merge(files).target(server_flag, namespace_flag)
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
        Kubeconfig::parse(text, Path::new("test")).unwrap()
    }

    #[test]
    fn current_context_gives_server_and_namespace() {
        let target = parse(LAB_CONFIG).target(None, None).unwrap();
        assert_eq!(target.server, "http://192.168.56.10:6443");
        assert_eq!(target.namespace, "lesson");
    }

    #[test]
    fn flags_override_the_context() {
        let target = parse(LAB_CONFIG)
            .target(Some("127.0.0.1:8001"), Some("kube-system"))
            .unwrap();
        assert_eq!(target.server, "http://127.0.0.1:8001");
        assert_eq!(target.namespace, "kube-system");
    }

    #[test]
    fn context_without_namespace_uses_default_and_trims_slash() {
        let mut config = parse(LAB_CONFIG);
        config.current_context = Some("elsewhere".into());
        let target = config.target(None, None).unwrap();
        assert_eq!(target.server, "http://127.0.0.1:9999");
        assert_eq!(target.namespace, "default");
    }

    #[test]
    fn no_config_means_localhost_8080() {
        let target = Kubeconfig::default().target(None, None).unwrap();
        assert_eq!(target.server, "http://localhost:8080");
        assert_eq!(target.namespace, "default");
    }

    #[test]
    fn unknown_current_context_is_an_error() {
        let mut config = parse(LAB_CONFIG);
        config.current_context = Some("gone".into());
        let err = config.target(None, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "context was not found for specified context: gone"
        );
    }

    #[test]
    fn merge_keeps_the_first_value() {
        let first = parse("current-context: a\ncontexts:\n- name: a\n  context: {cluster: c1}\n");
        let second = parse(LAB_CONFIG);
        let merged = Kubeconfig::merge(vec![first, second]);
        assert_eq!(merged.current_context.as_deref(), Some("a"));
        assert_eq!(merged.contexts.len(), 3);
        // Cluster c1 is named but not defined anywhere: fall back to the default.
        assert_eq!(
            merged.target(None, None).unwrap().server,
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

    #[test]
    fn resolve_reads_the_file_named_by_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, LAB_CONFIG).unwrap();
        let target = resolve(Some(&path), None, None).unwrap();
        assert_eq!(target.namespace, "lesson");
        let missing = resolve(Some(&dir.path().join("nope")), None, None);
        assert!(missing.is_err());
    }

    #[test]
    fn malformed_file_names_the_file() {
        let err = Kubeconfig::parse("contexts: [", Path::new("/x/config")).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("error loading config file \"/x/config\""));
    }
}
