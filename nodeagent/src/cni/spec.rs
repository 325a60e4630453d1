//! The CNI protocol: what a runtime hands a plugin and what it gets back
//! (the Container Network Interface specification, versions 0.3.0 to
//! 1.1.0).
//!
//! A plugin is a program. The runtime runs it once per operation with:
//! - environment variables naming the operation and the container
//!   ([`Environment`]): `CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`,
//!   `CNI_IFNAME`, `CNI_ARGS`, `CNI_PATH`;
//! - the network's configuration as JSON on stdin (one entry of the
//!   conflist, with the list's `name` and `cniVersion` copied in);
//!
//! and reads JSON from stdout: a [`AddResult`] after ADD, a
//! [`VersionResult`] after VERSION, nothing after DEL, CHECK, STATUS and
//! GC, or an [`ErrorResult`] with a non-zero exit status.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The versions of the specification this plugin speaks. CHECK exists
/// from 0.4.0, STATUS and GC from 1.1.0.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The operation a runtime asks for (`CNI_COMMAND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Connect a container to the network; prints the result.
    Add,
    /// Disconnect it; must succeed when it is already gone.
    Del,
    /// Verify that an earlier ADD's work is still in place.
    Check,
    /// Which spec versions the plugin speaks.
    Version,
    /// Whether the plugin can serve ADDs now (1.1.0).
    Status,
    /// Release what belongs to attachments the runtime no longer has (1.1.0).
    Gc,
}

impl Command {
    fn parse(text: &str) -> Option<Command> {
        Some(match text {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            _ => return None,
        })
    }

    /// The first spec version that has this command.
    pub fn since(self) -> &'static str {
        match self {
            Command::Add | Command::Del | Command::Version => "0.3.0",
            Command::Check => "0.4.0",
            Command::Status | Command::Gc => "1.1.0",
        }
    }
}

/// The spec's well-known error codes (0-99 are reserved for it; plugins
/// use 100 and up for their own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    IncompatibleVersion = 1,
    UnsupportedField = 2,
    UnknownContainer = 3,
    InvalidEnvironment = 4,
    Io = 5,
    Decode = 6,
    InvalidConfig = 7,
    TryAgainLater = 11,
    NotAvailable = 50,
    /// The plugin's own: an earlier ADD's work is not (all) in place.
    CheckFailed = 100,
    /// The plugin's own: the pod network has no free address.
    RangeFull = 101,
    /// The plugin's own: a netlink or namespace operation failed.
    Network = 102,
}

/// The environment of one invocation, checked as the spec requires for
/// the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    pub command: Command,
    /// The runtime's ID of the container (the Pod sandbox's ID under
    /// containerd); ADD, DEL and CHECK only.
    pub container_id: String,
    /// The network namespace file; DEL may come without one (the namespace
    /// is gone) and must still release what the container had.
    pub netns: Option<PathBuf>,
    /// The interface to create inside the namespace: `eth0`.
    pub ifname: String,
    /// `CNI_ARGS`: `K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-1;...`.
    pub args: Vec<(String, String)>,
}

impl Environment {
    /// Reads the environment through `var` (`std::env::var` in the plugin,
    /// a map in tests).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Environment, String> {
        let command = var("CNI_COMMAND")
            .ok_or("CNI_COMMAND is not set: it must be ADD, DEL, CHECK, VERSION, STATUS or GC")?;
        let command = Command::parse(&command).ok_or_else(|| {
            format!("CNI_COMMAND {command:?} is not one of ADD, DEL, CHECK, VERSION, STATUS, GC")
        })?;
        let needs_container = matches!(command, Command::Add | Command::Del | Command::Check);
        let required = |name: &str| -> Result<String, String> {
            match var(name) {
                Some(value) if !value.is_empty() => Ok(value),
                _ => Err(format!("{name} is required for {command:?}")),
            }
        };
        let (container_id, ifname) = if needs_container {
            let id = required("CNI_CONTAINERID")?;
            validate_container_id(&id)?;
            let ifname = required("CNI_IFNAME")?;
            validate_interface_name(&ifname)?;
            (id, ifname)
        } else {
            (String::new(), String::new())
        };
        let netns = match command {
            Command::Add | Command::Check => Some(PathBuf::from(required("CNI_NETNS")?)),
            Command::Del => var("CNI_NETNS")
                .filter(|value| !value.is_empty())
                .map(PathBuf::from),
            _ => None,
        };
        let args = var("CNI_ARGS")
            .unwrap_or_default()
            .split(';')
            .filter(|pair| !pair.is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((key, value)) => Ok((key.to_string(), value.to_string())),
                None => Err(format!("CNI_ARGS entry {pair:?} is not KEY=VALUE")),
            })
            .collect::<Result<_, _>>()?;
        Ok(Environment {
            command,
            container_id,
            netns,
            ifname,
            args,
        })
    }

    /// A `CNI_ARGS` value, e.g. `K8S_POD_NAME`.
    pub fn arg(&self, key: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, value)| value.as_str())
    }
}

/// The spec: an alphanumeric character, then alphanumerics, `_`, `.`, `-`.
fn validate_container_id(id: &str) -> Result<(), String> {
    let mut chars = id.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        Ok(())
    } else {
        Err(format!(
            "CNI_CONTAINERID {id:?} must start with a letter or digit and hold only letters, digits, '_', '.' and '-'"
        ))
    }
}

/// Linux's rules for a link name: 1-15 bytes, not `.` or `..`, no `/`,
/// `:` or white space.
fn validate_interface_name(name: &str) -> Result<(), String> {
    let bad_char = name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace());
    if name.is_empty() || name.len() > 15 || name == "." || name == ".." || bad_char {
        return Err(format!(
            "CNI_IFNAME {name:?} is not a valid interface name (1-15 characters, no '/', ':' or spaces, not '.' or '..')"
        ));
    }
    Ok(())
}

/// Whether `version` is one this plugin speaks.
pub fn is_supported(version: &str) -> bool {
    SUPPORTED_VERSIONS.contains(&version)
}

/// Orders two `MAJOR.MINOR.PATCH` versions (both from
/// [`SUPPORTED_VERSIONS`] or a command's `since`).
pub fn at_least(version: &str, minimum: &str) -> bool {
    let parse = |text: &str| -> Vec<u32> {
        text.split('.')
            .map(|part| part.parse().unwrap_or(0))
            .collect()
    };
    parse(version) >= parse(minimum)
}

/// VERSION's answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VersionResult {
    pub cni_version: String,
    pub supported_versions: Vec<String>,
}

/// ADD's answer: the interfaces made, the addresses given, the routes set
/// inside the container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AddResult {
    pub cni_version: String,
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub dns: Dns,
}

/// One interface of an [`AddResult`]; `sandbox` is set for the ones inside
/// the container's namespace.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

/// One address of an [`AddResult`]. `interface` is an index into
/// `interfaces`; `version` ("4") exists before spec 1.0.0 only.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IpConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// A route set inside the container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Route {
    pub dst: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<String>,
}

/// DNS settings for the container; the kubelet sets Pods' DNS itself, so
/// this plugin leaves it empty, as the bridge plugin does.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Dns {}

/// What a failed invocation prints on stdout.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ErrorResult {
    pub cni_version: String,
    pub code: u32,
    pub msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<Environment, String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Environment::from_vars(|name| map.get(name).cloned())
    }

    #[test]
    fn add_needs_container_netns_and_interface() {
        let error = env(&[("CNI_COMMAND", "ADD"), ("CNI_IFNAME", "eth0")]).unwrap_err();
        assert_eq!(error, "CNI_CONTAINERID is required for Add");
        let error = env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "abc"),
            ("CNI_IFNAME", "eth0"),
        ])
        .unwrap_err();
        assert_eq!(error, "CNI_NETNS is required for Add");
    }

    #[test]
    fn del_may_come_without_a_namespace() {
        let parsed = env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "abc"),
            ("CNI_IFNAME", "eth0"),
            (
                "CNI_ARGS",
                "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;IgnoreUnknown=1",
            ),
        ])
        .unwrap();
        assert_eq!(parsed.netns, None);
        assert_eq!(parsed.arg("K8S_POD_NAME"), Some("web"));
    }

    #[test]
    fn bad_ids_and_interface_names_are_named() {
        let error = env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "-x/y"),
            ("CNI_IFNAME", "eth0"),
        ])
        .unwrap_err();
        assert!(error.starts_with("CNI_CONTAINERID \"-x/y\""), "{error}");
        let error = env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "x"),
            ("CNI_IFNAME", "a-very-long-interface"),
        ])
        .unwrap_err();
        assert!(error.starts_with("CNI_IFNAME"), "{error}");
        let error = env(&[("CNI_COMMAND", "RESET")]).unwrap_err();
        assert!(error.contains("\"RESET\""), "{error}");
    }

    #[test]
    fn versions_compare_by_number() {
        assert!(at_least("1.0.0", "0.4.0"));
        assert!(at_least("0.4.0", "0.4.0"));
        assert!(!at_least("0.3.1", "0.4.0"));
        assert!(at_least("1.1.0", "1.1.0"));
        assert!(!at_least("1.0.0", "1.1.0"));
    }
}
