//! # kube-lite `kubeadm-lite`: one command per VM
//!
//! This crate plays kubeadm. On the master, `kubeadm-lite init` makes the
//! cluster's certificates and kubeconfigs, installs the control plane and
//! the node agent as systemd units, waits for the node to be Ready and
//! prints a join command. On each worker, that join command finds the
//! cluster, checks it is the right one, gets the node its own certificates
//! and installs the node agent:
//!
//! ```text
//! master:  kubeadm-lite init --node-ip 192.168.56.10
//!            certs ─▶ kubeconfigs ─▶ units ─▶ apiserver ready ─▶ bootstrap token,
//!            cluster-info ─▶ node Ready ─▶ prints `kubeadm-lite join ...`
//! worker:  kubeadm-lite join 192.168.56.10:6443 --token T --discovery-token-ca-cert-hash H
//!            cluster-info (anonymous) ─▶ CA hash matches? ─▶ CSR with the token
//!            ─▶ approved + signed by the controller ─▶ unit ─▶ node Ready
//! ```
//!
//! Trust flows one way: the worker trusts the master because the CA it
//! was shown has the hash the teacher copied (not because the network said
//! so), and the master trusts the worker because it holds a token the
//! master made. No key ever travels: each node makes its own and sends a
//! certificate signing request.
//!
//! # Layout
//! - [`layout`]: where everything lives on a VM (`/etc/kube-lite`,
//!   `/var/lib/kube-lite`, the units), under `--root` for the lab.
//! - [`preflight`]: the checks made before anything is written.
//! - [`certs`]: the master's PKI and kubeconfigs.
//! - [`units`]: the systemd units, or their commands with `--no-systemd`.
//! - [`containerd`]: containerd configured for the node agent, with the
//!   CNI plugins it runs.
//! - [`clusterinfo`]: `cluster-info` and `kubeadm-config`, what a joining
//!   node reads; discovery and the CA hash check.
//! - [`bootstrap`]: TLS bootstrapping: certificates through CSRs.
//! - [`wait`]: waiting for the apiserver and the node, with progress.
//! - [`init`], [`join`], [`token`], [`reset`]: the commands.

pub mod bootstrap;
pub mod certs;
pub mod clusterinfo;
pub mod containerd;
pub mod init;
pub mod join;
pub mod layout;
pub mod preflight;
pub mod reset;
pub mod token;
pub mod units;
pub mod wait;

use std::path::PathBuf;

/// Printed (at the start of a line) when init has written the units and
/// waits for the control plane: with `--no-systemd`, whoever supervises
/// the processes starts them now.
pub const WAITING_FOR_CONTROL_PLANE: &str = "[wait-control-plane]";
/// Printed when containerd's configuration is written and kubeadm-lite
/// waits for containerd to answer: with `--no-systemd`, whoever
/// supervises the processes (re)starts containerd now.
pub const WAITING_FOR_CONTAINERD: &str = "[containerd] Waiting for containerd";
/// Printed when join has written the node agent's unit and waits for the
/// node to be Ready.
pub const WAITING_FOR_NODE: &str = "[kubelet-start] Waiting for node";

/// Why a command failed. Every message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag or argument is wrong; nothing was written.
    #[error("{flag}: {message}")]
    Flag { flag: String, message: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {}", api_message(.source))]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("{what}: {source}")]
    Pki {
        what: String,
        #[source]
        source: api::pki::PkiError,
    },
    /// Something did not happen in time; `hint` says where to look.
    #[error("{what} did not happen within {seconds}s. {hint}")]
    Timeout {
        what: String,
        seconds: u64,
        hint: String,
    },
    /// The cluster answered, and the answer is not acceptable.
    #[error("{0}")]
    Refused(String),
    /// Something this VM needs is not installed; the message says how
    /// to install it. Nothing was written.
    #[error("[preflight] {0}")]
    Missing(String),
    #[error("{command}: {message}")]
    Command { command: String, message: String },
}

impl Error {
    pub fn flag(flag: &str, message: impl Into<String>) -> Error {
        Error::Flag {
            flag: flag.into(),
            message: message.into(),
        }
    }

    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }

    pub fn api(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let what = what.into();
        move |source| Error::Api { what, source }
    }

    pub fn pki(what: impl Into<String>) -> impl FnOnce(api::pki::PkiError) -> Error {
        let what = what.into();
        move |source| Error::Pki { what, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the apiserver said (its Status message), or the client's error.
pub fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => other.to_string(),
    }
}

/// Where the kube-lite binaries are: next to this one, unless told.
pub fn default_bin_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/usr/local/bin"))
}

/// A kube client from a kubeconfig file.
pub async fn client(kubeconfig: &std::path::Path) -> Result<kube::Client> {
    let text = std::fs::read_to_string(kubeconfig)
        .map_err(Error::io(format!("reading {}", kubeconfig.display())))?;
    client_from_yaml(&text, &kubeconfig.display().to_string()).await
}

/// A kube client from a kubeconfig's text (`what` names it in errors).
pub async fn client_from_yaml(text: &str, what: &str) -> Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(text)
        .map_err(|e| Error::Refused(format!("{what} is not a kubeconfig: {e}")))?;
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .map_err(|e| Error::Refused(format!("{what}: {e}")))?;
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_str(&api::useragent::user_agent("kubeadm"))
            .unwrap_or(http::HeaderValue::from_static("kubeadm")),
    ));
    kube::Client::try_from(config).map_err(Error::api(format!("a client for {what}")))
}

/// Writes `text` to `path` so that a crash leaves the old file or the new
/// one, never half of one (a temporary file, synced, renamed), readable by
/// its owner only when `private`.
pub fn write_file(path: &std::path::Path, text: &str, private: bool) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let what = || format!("writing {}", path.display());
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(Error::io(what()))?;
    }
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(&temporary)
        .map_err(Error::io(what()))?;
    file.write_all(text.as_bytes()).map_err(Error::io(what()))?;
    file.sync_all().map_err(Error::io(what()))?;
    std::fs::rename(&temporary, path).map_err(Error::io(what()))
}
