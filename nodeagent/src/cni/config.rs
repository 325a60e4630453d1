//! The plugin's network configuration, and the conflist the node agent
//! writes for containerd.
//!
//! containerd reads the first `*.conflist` of its CNI configuration
//! directory (`/etc/cni/net.d` on a VM) and, for each Pod sandbox, runs
//! each plugin of the list with that plugin's entry on stdin. The agent
//! writes one list with one plugin, once it knows the node's pod CIDR:
//!
//! ```json
//! { "cniVersion": "1.0.0", "name": "kube-lite",
//!   "plugins": [ { "type": "kube-lite", "bridge": "cni0",
//!                  "ipam": { "subnet": "10.244.1.0/24",
//!                            "dataDir": "/var/lib/kube-lite/cni/networks" } } ] }
//! ```
//!
//! `type` is the program's name in containerd's CNI `bin_dir`. The list
//! says 1.0.0 because containerd 1.6 (Debian 12) refuses newer lists.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::spec::AddResult;
use crate::ipam::PodCidr;

pub use api::cni::{CONFLIST_FILE, NETWORK_NAME, PLUGIN_TYPE};

/// The spec version the agent's conflist asks for.
pub const CONFLIST_VERSION: &str = "1.0.0";

/// One plugin entry as the runtime passes it on stdin.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    pub cni_version: String,
    pub name: String,
    #[serde(rename = "type")]
    pub plugin_type: String,
    /// The node bridge the Pods plug into.
    #[serde(default = "default_bridge")]
    pub bridge: String,
    pub ipam: IpamConf,
    /// CHECK (and DEL) get ADD's result back here.
    #[serde(default)]
    pub prev_result: Option<AddResult>,
    /// GC: the attachments the runtime still has; everything else goes.
    #[serde(rename = "cni.dev/valid-attachments", default)]
    pub valid_attachments: Option<Vec<Attachment>>,
}

fn default_bridge() -> String {
    crate::network::BRIDGE_NAME.to_string()
}

/// Where addresses come from: the node's pod CIDR, recorded in a
/// directory (see [`crate::ipam`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamConf {
    pub subnet: String,
    pub data_dir: PathBuf,
}

/// A container's interface that GC must keep.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

/// VERSION's stdin: only the version matters.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionRequest {
    #[serde(default)]
    pub cni_version: Option<String>,
}

impl NetConf {
    /// The IPAM directory of this network.
    pub fn ipam_dir(&self) -> PathBuf {
        self.ipam.data_dir.join(&self.name)
    }

    /// Checks what the plugin relies on, naming the field.
    pub fn validate(&self) -> Result<PodCidr, String> {
        if self.plugin_type != PLUGIN_TYPE {
            return Err(format!(
                "type {:?}: this plugin is {PLUGIN_TYPE:?}",
                self.plugin_type
            ));
        }
        if self.name.is_empty() || self.name.contains('/') || self.name.starts_with('.') {
            return Err(format!(
                "name {:?} must be a non-empty file name (it names the IPAM directory)",
                self.name
            ));
        }
        if self.bridge.is_empty() || self.bridge.len() > 15 {
            return Err(format!(
                "bridge {:?} must be an interface name of 1-15 characters",
                self.bridge
            ));
        }
        if !self.ipam.data_dir.is_absolute() {
            return Err(format!(
                "ipam.dataDir {:?} must be an absolute path",
                self.ipam.data_dir
            ));
        }
        PodCidr::parse(&self.ipam.subnet).map_err(|error| format!("ipam.subnet: {error}"))
    }
}

/// The conflist for a node whose pod CIDR is `subnet`, allocating under
/// `data_dir`.
pub fn conflist(subnet: PodCidr, data_dir: &Path) -> serde_json::Value {
    serde_json::json!({
        "cniVersion": CONFLIST_VERSION,
        "name": NETWORK_NAME,
        "plugins": [{
            "type": PLUGIN_TYPE,
            "bridge": crate::network::BRIDGE_NAME,
            "ipam": {
                "subnet": subnet.to_string(),
                "dataDir": data_dir,
            },
        }],
    })
}

/// Writes [`conflist`] to `<conf_dir>/10-kube-lite.conflist` unless it
/// already says the same. The file is written to a temporary name and
/// renamed, so containerd never reads half a file. Returns whether it
/// changed.
pub fn write_conflist(conf_dir: &Path, subnet: PodCidr, data_dir: &Path) -> std::io::Result<bool> {
    let path = conf_dir.join(CONFLIST_FILE);
    let mut text = serde_json::to_string_pretty(&conflist(subnet, data_dir))
        .expect("a JSON value always serialises");
    text.push('\n');
    if fs::read_to_string(&path).is_ok_and(|existing| existing == text) {
        return Ok(false);
    }
    fs::create_dir_all(conf_dir)?;
    let tmp = conf_dir.join(format!(".{CONFLIST_FILE}.tmp"));
    let mut file = fs::File::create(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    fs::rename(&tmp, &path)?;
    Ok(true)
}
