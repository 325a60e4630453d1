//! The pod network as a CNI plugin: the program containerd runs to give
//! each Pod sandbox its interface and address.
//!
//! On a real node the kubelet never touches the network itself. It asks
//! the container runtime for a Pod sandbox; the runtime makes the
//! sandbox's network namespace and runs the CNI plugins its configuration
//! names, which plug the namespace into the node's network:
//!
//! ```text
//!  nodeagent (kubelet)        containerd (CRI)               kube-lite (CNI plugin)
//!  ------------------         ----------------               ----------------------
//!  RunPodSandbox  ---gRPC-->  new netns <state>/netns/cni-…
//!                             reads 10-kube-lite.conflist
//!                             runs bin_dir/kube-lite  --->   CNI_COMMAND=ADD
//!                               env: CNI_CONTAINERID,         lock + allocate 10.244.1.7
//!                                    CNI_NETNS, CNI_IFNAME    cni0 up with 10.244.1.1/24
//!                               stdin: the plugin's entry     veth pair, hairpin on,
//!                                                             eth0 10.244.1.7/24 in netns,
//!                             <--- stdout: the result ----    default via 10.244.1.1
//!                             runs bin_dir/loopback (lo up)
//!  PodSandboxStatus <-------  network.ip = 10.244.1.7
//!  status.podIP = 10.244.1.7
//! ```
//!
//! StopPodSandbox runs the plugin with `CNI_COMMAND=DEL`, which gives the
//! address back and deletes the pair. Routes to the other nodes' Pods and
//! to the Service CIDR are not per Pod: the agent keeps them
//! ([`crate::nodenet`]), and writes the conflist once it knows the node's
//! pod CIDR ([`config::write_conflist`]).
//!
//! The binary is `kube-lite-cni` (installed as `kube-lite` in containerd's
//! CNI `bin_dir`, the conflist's `type`); every call is a process of its
//! own, so IPAM takes a file lock ([`crate::ipam::DirLock`]).
//!
//! # Layout
//! - [`spec`]: the protocol: environment, commands, results, error codes.
//! - [`config`]: the plugin's configuration and the conflist the agent writes.
//! - [`plugin`]: ADD, DEL, CHECK, STATUS and GC.

pub mod config;
pub mod plugin;
pub mod spec;

use std::error::Error as _;

use config::{NetConf, VersionRequest};
use spec::{Command, Environment, ErrorCode, ErrorResult, VersionResult, SUPPORTED_VERSIONS};

use crate::ipam::IpamError;
use crate::network::NetworkError;

/// Why a call failed; each maps to a CNI error code.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error("incompatible CNI version {version:?}: this plugin supports {SUPPORTED_VERSIONS:?}")]
    IncompatibleVersion { version: String },
    #[error("{command:?} needs CNI version {since} or later; the configuration says {version}")]
    CommandTooNew {
        command: Command,
        since: &'static str,
        version: String,
    },
    #[error("{0}")]
    InvalidEnvironment(String),
    #[error("cannot decode the network configuration on stdin")]
    Decode(#[source] serde_json::Error),
    #[error("invalid network configuration: {0}")]
    InvalidConfig(String),
    #[error("reading stdin")]
    Stdin(#[source] std::io::Error),
    #[error("starting the plugin's async runtime")]
    Runtime(#[source] std::io::Error),
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error("CHECK failed: {0}")]
    CheckFailed(String),
    #[error("not ready: {0}")]
    NotAvailable(String),
}

impl CniError {
    pub fn code(&self) -> ErrorCode {
        match self {
            CniError::IncompatibleVersion { .. } | CniError::CommandTooNew { .. } => {
                ErrorCode::IncompatibleVersion
            }
            CniError::InvalidEnvironment(_) => ErrorCode::InvalidEnvironment,
            CniError::Decode(_) => ErrorCode::Decode,
            CniError::InvalidConfig(_) => ErrorCode::InvalidConfig,
            CniError::Stdin(_) | CniError::Runtime(_) => ErrorCode::Io,
            CniError::Ipam(IpamError::RangeFull { .. }) => ErrorCode::RangeFull,
            CniError::Ipam(_) => ErrorCode::Io,
            CniError::Network(_) => ErrorCode::Network,
            CniError::CheckFailed(_) => ErrorCode::CheckFailed,
            CniError::NotAvailable(_) => ErrorCode::NotAvailable,
        }
    }

    /// The error as the spec prints it: `msg` is this error, `details`
    /// the chain of its causes.
    pub fn to_result(&self, cni_version: &str) -> ErrorResult {
        let mut details = Vec::new();
        let mut source = self.source();
        while let Some(cause) = source {
            details.push(cause.to_string());
            source = cause.source();
        }
        ErrorResult {
            cni_version: cni_version.to_string(),
            code: self.code() as u32,
            msg: self.to_string(),
            details: details.join(": "),
        }
    }
}

/// One invocation: what to print on stdout on success (nothing for DEL,
/// CHECK, STATUS and GC), or the error. Must run on a tokio runtime in
/// the node's network namespace.
pub async fn run(env: &Environment, stdin: &[u8]) -> Result<Option<serde_json::Value>, CniError> {
    if env.command == Command::Version {
        let request: VersionRequest = if stdin.iter().all(u8::is_ascii_whitespace) {
            VersionRequest { cni_version: None }
        } else {
            serde_json::from_slice(stdin).map_err(CniError::Decode)?
        };
        let version = request
            .cni_version
            .filter(|version| spec::is_supported(version))
            .unwrap_or_else(|| config::CONFLIST_VERSION.to_string());
        let result = VersionResult {
            cni_version: version,
            supported_versions: SUPPORTED_VERSIONS.iter().map(|v| v.to_string()).collect(),
        };
        return Ok(Some(serde_json::to_value(result).expect("serialisable")));
    }
    let conf: NetConf = serde_json::from_slice(stdin).map_err(CniError::Decode)?;
    if !spec::is_supported(&conf.cni_version) {
        return Err(CniError::IncompatibleVersion {
            version: conf.cni_version,
        });
    }
    if !spec::at_least(&conf.cni_version, env.command.since()) {
        return Err(CniError::CommandTooNew {
            command: env.command,
            since: env.command.since(),
            version: conf.cni_version,
        });
    }
    let cidr = conf.validate().map_err(CniError::InvalidConfig)?;
    let handle = connect()?;
    match env.command {
        Command::Add => {
            let result = plugin::add(&handle, env, &conf, cidr).await?;
            Ok(Some(serde_json::to_value(result).expect("serialisable")))
        }
        Command::Del => plugin::del(&handle, env, &conf, cidr).await.map(|()| None),
        Command::Check => plugin::check(&handle, env, &conf, cidr)
            .await
            .map(|()| None),
        Command::Status => plugin::status(&conf, cidr).map(|()| None),
        Command::Gc => plugin::gc(&handle, &conf, cidr).await.map(|()| None),
        Command::Version => unreachable!("answered above"),
    }
}

/// The version to put in an error: the configuration's when it can be
/// read, else the newest this plugin speaks.
pub fn error_version(stdin: &[u8]) -> String {
    serde_json::from_slice::<VersionRequest>(stdin)
        .ok()
        .and_then(|request| request.cni_version)
        .unwrap_or_else(|| config::CONFLIST_VERSION.to_string())
}

fn connect() -> Result<rtnetlink::Handle, CniError> {
    let (connection, handle, _) =
        rtnetlink::new_connection().map_err(|source| NetworkError::Io {
            action: "opening a netlink socket".into(),
            source,
        })?;
    tokio::spawn(connection);
    Ok(handle)
}
