//! containerd, set up for the node agent: the container runtime every
//! node needs before its agent can run a Pod.
//!
//! kubeadm leaves this to the administrator; kube-lite does it, because
//! the settings must match what the node agent and its CNI plugin
//! expect, and a classroom should not debug TOML:
//!
//! - `config.toml` (version 2): the CRI plugin's sandbox image
//!   (`registry.k8s.io/pause:3.10`), runc as the runtime with the cgroup
//!   driver of the node agent (systemd's on a VM, cgroupfs without
//!   systemd), the CNI directories, and `certs.d` for registry hosts;
//! - the CNI plugins in `/opt/cni/bin`: `kube-lite` (the node agent's
//!   `kube-lite-cni`) and `loopback` (from Debian's
//!   containernetworking-plugins), which containerd runs for every Pod;
//! - containerd restarted when its configuration changed, and checked to
//!   answer on its socket.
//!
//! Every path comes from the [`Layout`], so the lab's VMs (`--root`) each
//! get a containerd of their own: own root, state, socket and runc
//! state.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::layout::Layout;
use crate::{Error, Result};

/// The sandbox ("pause") image, as kubeadm 1.35 configures it.
pub const SANDBOX_IMAGE: &str = "registry.k8s.io/pause:3.10";

/// Where Debian's containernetworking-plugins puts `loopback`.
pub const DEBIAN_CNI_PLUGINS: &str = "/usr/lib/cni";

/// How long containerd gets to answer on its socket.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// What containerd's configuration depends on besides the paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// The cgroup driver: systemd's where systemd runs the machine.
    pub systemd_cgroup: bool,
    /// Whether processes may lower their OOM score (CAP_SYS_RESOURCE).
    /// A VM may; a container standing in for one (the lab on a CI
    /// machine) may not, and then containerd must not ask runc to (it
    /// gives the pause process -998), or no Pod starts.
    pub can_lower_oom_score: bool,
}

impl Settings {
    /// This machine's: `systemd` as the unit driver, and the capability
    /// read from this process (run as root, like containerd).
    pub fn detect(systemd: bool) -> Settings {
        Settings {
            systemd_cgroup: systemd,
            can_lower_oom_score: has_capability(CAP_SYS_RESOURCE),
        }
    }
}

/// capability.h: CAP_SYS_RESOURCE, needed to lower `oom_score_adj`.
const CAP_SYS_RESOURCE: u32 = 24;

/// Whether this process has capability `bit` in its effective set
/// (`CapEff` in /proc/self/status).
fn has_capability(bit: u32) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << bit) != 0)
}

/// containerd's configuration for this machine.
pub fn config(layout: &Layout, settings: Settings) -> String {
    let quoted = |path: PathBuf| toml_string(&path.display().to_string());
    format!(
        r#"# Written by kubeadm-lite: containerd for the kube-lite node agent.
version = 2
root = {root}
state = {state}

[grpc]
  address = {socket}

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = {sandbox}
  # Pod network namespaces live under the state directory, not in the
  # machine-wide /run/netns.
  netns_mounts_under_state_dir = true
  # false on a VM; true where lowering OOM scores is not allowed.
  restrict_oom_score_adj = {restrict_oom}
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # The node agent's cgroup driver: systemd's where systemd runs.
        SystemdCgroup = {systemd_cgroup}
        Root = {runc_root}
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = {cni_bin}
    conf_dir = {cni_conf}
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = {certs_d}

[plugins."io.containerd.internal.v1.opt"]
  path = {opt}
"#,
        root = quoted(layout.containerd_root()),
        systemd_cgroup = settings.systemd_cgroup,
        restrict_oom = !settings.can_lower_oom_score,
        state = quoted(layout.containerd_state()),
        socket = quoted(layout.containerd_socket()),
        sandbox = toml_string(SANDBOX_IMAGE),
        runc_root = quoted(layout.containerd_state().join("runc")),
        cni_bin = quoted(layout.cni_bin_dir()),
        cni_conf = quoted(layout.cni_conf_dir()),
        certs_d = quoted(layout.containerd_certs_d()),
        opt = quoted(layout.containerd_root().join("opt")),
    )
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A `hosts.toml` (for `certs.d/<registry>/`) that makes `registry`'s
/// images come from `host` (an `https://` URL) trusting `ca`, and from
/// nowhere else. The lab uses it for its registry (it has no internet); a
/// classroom with a local registry can too.
///
/// `host` is both the mirror (`[host."..."]`) and the `server`, the host
/// tried when the mirrors fail, so that an image the registry lacks is
/// "not found" there instead of a request to the internet. containerd
/// 1.6 reads `server` only next to a `[host]` table.
pub fn registry_hosts(host: &str, ca: &Path) -> String {
    let (host, ca) = (toml_string(host), toml_string(&ca.display().to_string()));
    format!(
        "server = {host}\nca = {ca}\n\n[host.{host}]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = {ca}\n"
    )
}

/// containerd and runc are installed, and so is Debian's `loopback` CNI
/// plugin (checked before anything is written).
pub fn preflight() -> Result<()> {
    for (program, package) in [("containerd", "containerd"), ("runc", "runc")] {
        if which(program).is_none() {
            return Err(Error::Missing(format!(
                "{program} is not installed: `apt install containerd runc` (Debian package {package})"
            )));
        }
    }
    if !Path::new(DEBIAN_CNI_PLUGINS).join("loopback").exists() {
        return Err(Error::Missing(format!(
            "{DEBIAN_CNI_PLUGINS}/loopback is missing: `apt install containernetworking-plugins`"
        )));
    }
    Ok(())
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Writes the configuration and installs the CNI plugins; returns whether
/// the configuration changed (containerd must then be restarted).
pub fn install(layout: &Layout, bin_dir: &Path, settings: Settings) -> Result<bool> {
    if !settings.can_lower_oom_score {
        println!(
            "[containerd] This machine does not let processes lower their OOM score \
             (no CAP_SYS_RESOURCE: a container?): restrict_oom_score_adj = true"
        );
    }
    let path = layout.containerd_config();
    let text = config(layout, settings);
    let changed = std::fs::read_to_string(&path).map_or(true, |old| old != text);
    if changed {
        crate::write_file(&path, &text, false)?;
        println!("[containerd] Wrote {}", path.display());
    } else {
        println!("[containerd] {} is up to date", path.display());
    }
    let bin = layout.cni_bin_dir();
    std::fs::create_dir_all(&bin).map_err(Error::io(format!("creating {}", bin.display())))?;
    for (name, target) in [
        (api::cni::PLUGIN_TYPE, bin_dir.join(api::cni::PLUGIN_BINARY)),
        ("loopback", Path::new(DEBIAN_CNI_PLUGINS).join("loopback")),
    ] {
        let link = bin.join(name);
        if std::fs::read_link(&link).is_ok_and(|existing| existing == target) {
            continue;
        }
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&target, &link).map_err(Error::io(format!(
            "linking {} to {}",
            link.display(),
            target.display()
        )))?;
        println!(
            "[containerd] Linked CNI plugin {} -> {}",
            link.display(),
            target.display()
        );
    }
    Ok(changed)
}

/// The command that runs this machine's containerd (what Debian's
/// containerd.service runs, with the config's path).
pub fn command_line(layout: &Layout) -> String {
    format!(
        "containerd --config {}",
        layout.containerd_config().display()
    )
}

/// Restarts containerd under systemd when `changed`, and enables it.
pub fn restart(changed: bool) -> Result<()> {
    crate::units::systemctl(&["enable", "containerd"])?;
    if changed {
        crate::units::systemctl(&["restart", "containerd"])?;
        println!("[containerd] Restarted containerd");
    } else {
        crate::units::systemctl(&["start", "containerd"])?;
    }
    Ok(())
}

/// Waits until containerd accepts connections on its socket.
pub fn wait_ready(layout: &Layout, where_to_look: &str) -> Result<()> {
    let socket = layout.containerd_socket();
    println!(
        "{} on {} (up to {}s)",
        crate::WAITING_FOR_CONTAINERD,
        socket.display(),
        READY_TIMEOUT.as_secs()
    );
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        match std::os::unix::net::UnixStream::connect(&socket) {
            Ok(_) => {
                println!("[containerd] containerd answers");
                return Ok(());
            }
            Err(error) if Instant::now() > deadline => {
                return Err(Error::Timeout {
                    what: format!("containerd answering on {} ({error})", socket.display()),
                    seconds: READY_TIMEOUT.as_secs(),
                    hint: where_to_look.to_string(),
                })
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The containerd phase of init and join: configure, (re)start, wait.
pub fn setup(layout: &Layout, bin_dir: &Path, systemd: bool) -> Result<()> {
    let changed = install(layout, bin_dir, Settings::detect(systemd))?;
    let where_to_look = if systemd {
        restart(changed)?;
        "Look at `journalctl -u containerd`."
    } else {
        println!(
            "[containerd] --no-systemd: {} containerd now, and after every reboot:\n  {}",
            if changed { "(re)start" } else { "start" },
            command_line(layout)
        );
        "Look at the output of the command printed above."
    };
    wait_ready(layout, where_to_look)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_puts_everything_under_the_machines_root() {
        let settings = Settings {
            systemd_cgroup: false,
            can_lower_oom_score: true,
        };
        let text = config(&Layout::new("/lab/kl-worker1"), settings);
        assert!(text.contains("root = \"/lab/kl-worker1/var/lib/containerd\""));
        assert!(text.contains("address = \"/lab/kl-worker1/run/containerd/containerd.sock\""));
        assert!(text.contains("SystemdCgroup = false"));
        assert!(text.contains("restrict_oom_score_adj = false"));
        assert!(text.contains("bin_dir = \"/lab/kl-worker1/opt/cni/bin\""));
        assert!(text.contains("sandbox_image = \"registry.k8s.io/pause:3.10\""));
    }

    #[test]
    fn a_registry_host_replaces_the_registry() {
        let text = registry_hosts("https://192.168.56.1:5000", Path::new("/lab/ca.crt"));
        assert_eq!(
            text,
            "server = \"https://192.168.56.1:5000\"\nca = \"/lab/ca.crt\"\n\n\
             [host.\"https://192.168.56.1:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n  \
             ca = \"/lab/ca.crt\"\n"
        );
    }
}
