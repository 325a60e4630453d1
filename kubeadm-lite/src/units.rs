//! The systemd units that run kube-lite on a VM, and how they start.
//!
//! One unit per component, `kube-lite-apiserver`, `kube-lite-controller`
//! (master) and `kube-lite-nodeagent` (every node), each:
//!
//! - `Restart=always`: a crash, an OOM kill or an apiserver that is not up
//!   yet after a reboot are all answered by starting again;
//! - after `network-online.target`: the host-only address must be there
//!   before the apiserver binds to it or a node agent registers it;
//! - `WantedBy=multi-user.target`: enabled, so a reboot starts it.
//!
//! The node agent's Pods are containerd's (its shims are their parents),
//! so stopping or restarting the agent leaves them running: the new agent
//! adopts them by their labels, as a restarted kubelet does.
//!
//! Where systemd is absent (a container, the lab), `--no-systemd` writes
//! the same files but starts nothing; the commands are printed instead,
//! and [`exec_start`] reads them back for whoever supervises them.

use std::path::Path;

use crate::clusterinfo::ClusterConfiguration;
use crate::layout::Layout;
use crate::{Error, Result};

/// The components a VM may run, in the order they start.
pub const CONTROL_PLANE: &[&str] = &["apiserver", "controller"];
pub const NODE: &str = "nodeagent";

/// `kube-lite-apiserver.service`
pub fn unit_name(component: &str) -> String {
    format!("kube-lite-{component}.service")
}

/// One component's unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub component: &'static str,
    pub description: &'static str,
    /// The program and its arguments.
    pub command: Vec<String>,
}

/// The machine a unit runs on.
#[derive(Debug, Clone)]
pub struct Machine {
    pub node_name: String,
    pub node_ip: std::net::Ipv4Addr,
    pub layout: Layout,
    pub bin_dir: std::path::PathBuf,
    /// systemd runs the machine: units are started with it, and cgroups
    /// are its slices (containerd's runc is configured the same way).
    pub systemd: bool,
}

fn path(p: impl AsRef<Path>) -> String {
    p.as_ref().display().to_string()
}

/// kube-apiserver: on the node's host-only address, with the cluster's
/// certificates.
pub fn apiserver(machine: &Machine, cluster: &ClusterConfiguration) -> Unit {
    let l = &machine.layout;
    let (cert, key) = l.apiserver_cert();
    let (sa_key, sa_pub) = l.service_account_keys();
    let (kubelet_cert, kubelet_key) = l.apiserver_kubelet_client();
    Unit {
        component: "apiserver",
        description: "kube-lite apiserver (kube-apiserver)",
        command: vec![
            path(machine.bin_dir.join("apiserver")),
            "--listen".into(),
            format!("{}:{}", machine.node_ip, cluster.port),
            "--data-dir".into(),
            path(l.apiserver_data()),
            "--service-cluster-ip-range".into(),
            cluster.service_subnet.to_string(),
            "--tls-cert-file".into(),
            path(cert),
            "--tls-private-key-file".into(),
            path(key),
            "--client-ca-file".into(),
            path(l.ca_cert()),
            "--service-account-signing-key-file".into(),
            path(sa_key),
            "--service-account-key-file".into(),
            path(sa_pub),
            "--kubelet-client-certificate".into(),
            path(kubelet_cert),
            "--kubelet-client-key".into(),
            path(kubelet_key),
            "--kubelet-certificate-authority".into(),
            path(l.ca_cert()),
        ],
    }
}

/// kube-controller-manager (and the scheduler), signing node certificates
/// with the CA.
pub fn controller(machine: &Machine, cluster: &ClusterConfiguration) -> Unit {
    let l = &machine.layout;
    Unit {
        component: "controller",
        description: "kube-lite controller (kube-controller-manager, kube-scheduler)",
        command: vec![
            path(machine.bin_dir.join("controller")),
            "--kubeconfig".into(),
            path(l.controller_conf()),
            "--cluster-cidr".into(),
            cluster.pod_subnet.to_string(),
            "--cluster-signing-cert-file".into(),
            path(l.ca_cert()),
            "--cluster-signing-key-file".into(),
            path(l.ca_key()),
        ],
    }
}

/// The node agent (kubelet, kube-proxy, the pod network, DNS). The control
/// plane's node is labelled and tainted as kubeadm does, so that ordinary
/// Pods go to the workers.
pub fn nodeagent(machine: &Machine, cluster: &ClusterConfiguration, control_plane: bool) -> Unit {
    let l = &machine.layout;
    let (cert, key) = l.kubelet_serving();
    let mut command = vec![
        path(machine.bin_dir.join("nodeagent")),
        "--kubeconfig".into(),
        path(l.nodeagent_conf()),
        "--node-name".into(),
        machine.node_name.clone(),
        "--node-ip".into(),
        machine.node_ip.to_string(),
        "--data-dir".into(),
        path(l.nodeagent_data()),
        "--tls-cert-file".into(),
        path(cert),
        "--tls-private-key-file".into(),
        path(key),
        "--client-ca-file".into(),
        path(l.ca_cert()),
        "--cluster-cidr".into(),
        cluster.pod_subnet.to_string(),
        "--service-cidr".into(),
        cluster.service_subnet.to_string(),
        "--cluster-dns".into(),
        cluster.dns_ip().to_string(),
        "--cluster-domain".into(),
        cluster.dns_domain.clone(),
        "--cni-conf-dir".into(),
        path(l.cni_conf_dir()),
        "--cni-data-dir".into(),
        path(l.cni_data_dir()),
        "--container-runtime-endpoint".into(),
        l.containerd_endpoint(),
        "--cgroup-driver".into(),
        if machine.systemd {
            "systemd"
        } else {
            "cgroupfs"
        }
        .into(),
        "--cgroup-root".into(),
        l.cgroup_root(&machine.node_name),
        "--pod-logs-dir".into(),
        path(l.pod_logs_dir()),
    ];
    if control_plane {
        command.extend([
            "--node-labels".into(),
            "node-role.kubernetes.io/control-plane=".into(),
            "--register-with-taints".into(),
            "node-role.kubernetes.io/control-plane:NoSchedule".into(),
        ]);
    }
    Unit {
        component: NODE,
        description: "kube-lite node agent (kubelet, kube-proxy)",
        command,
    }
}

impl Unit {
    /// The unit file.
    pub fn render(&self) -> String {
        format!(
            "# Written by kubeadm-lite; `kubeadm-lite reset` removes it.
[Unit]
Description={description}
Wants=network-online.target
After=network-online.target

[Service]
ExecStart={exec}
Environment=RUST_LOG=info
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
",
            description = self.description,
            exec = self.command.join(" "),
        )
    }

    /// The command as a shell would take it.
    pub fn command_line(&self) -> String {
        self.command.join(" ")
    }
}

/// Every word of a command must be one word for systemd and the shell
/// alike: no spaces or quotes (paths under `--root` included).
pub fn check_words(unit: &Unit) -> Result<()> {
    match unit
        .command
        .iter()
        .find(|w| w.is_empty() || w.contains(|c: char| c.is_whitespace() || "\"'\\$".contains(c)))
    {
        Some(word) => Err(Error::flag(
            "--root/--bin-dir",
            format!("{word:?} cannot be written into a unit: use paths without spaces or quotes"),
        )),
        None => Ok(()),
    }
}

/// The command of a unit file (`ExecStart=`), split into words.
pub fn exec_start(unit_file: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(unit_file)
        .map_err(Error::io(format!("reading {}", unit_file.display())))?;
    text.lines()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .map(|command| command.split_whitespace().map(String::from).collect())
        .ok_or_else(|| Error::Refused(format!("{} has no ExecStart=", unit_file.display())))
}

/// Whether systemd runs this machine (its runtime directory exists).
pub fn systemd_running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// Runs `systemctl ARGS`.
pub fn systemctl(args: &[&str]) -> Result<()> {
    let command = format!("systemctl {}", args.join(" "));
    let output = std::process::Command::new("systemctl")
        .args(args)
        .output()
        .map_err(Error::io(format!("running {command}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            command,
            message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

/// Writes the units; with systemd, enables and starts them.
pub fn install(layout: &Layout, units: &[Unit], systemd: bool) -> Result<()> {
    for unit in units {
        check_words(unit)?;
    }
    for unit in units {
        let file = layout.unit(unit.component);
        crate::write_file(&file, &unit.render(), false)?;
        println!("[systemd] Wrote {}", file.display());
    }
    if systemd {
        systemctl(&["daemon-reload"])?;
        let names: Vec<String> = units.iter().map(|u| unit_name(u.component)).collect();
        let mut args = vec!["enable", "--now"];
        args.extend(names.iter().map(String::as_str));
        systemctl(&args)?;
        println!("[systemd] Enabled and started {}", names.join(", "));
    } else {
        println!(
            "[systemd] --no-systemd: start these commands now, and again after every reboot \
             (what the units would run):"
        );
        for unit in units {
            println!("  {}", unit.command_line());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        Machine {
            node_name: "master".into(),
            node_ip: "192.168.56.10".parse().unwrap(),
            layout: Layout::new("/"),
            bin_dir: "/usr/local/bin".into(),
            systemd: true,
        }
    }

    #[test]
    fn a_unit_restarts_and_starts_after_the_network() {
        let unit = apiserver(&machine(), &ClusterConfiguration::default());
        let text = unit.render();
        for line in [
            "Restart=always",
            "After=network-online.target",
            "Wants=network-online.target",
            "WantedBy=multi-user.target",
            "ExecStart=/usr/local/bin/apiserver --listen 192.168.56.10:6443 --data-dir /var/lib/kube-lite/apiserver",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
        assert!(!text.contains("KillMode"));
    }

    #[test]
    fn the_command_reads_back_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let unit = nodeagent(&machine(), &ClusterConfiguration::default(), true);
        crate::write_file(&layout.unit(NODE), &unit.render(), false).unwrap();
        assert_eq!(exec_start(&layout.unit(NODE)).unwrap(), unit.command);
        // The agent talks to the node's containerd, with its cgroup driver.
        for flag in [
            "--container-runtime-endpoint unix:///run/containerd/containerd.sock",
            "--cgroup-driver systemd",
            "--cgroup-root /",
            "--pod-logs-dir /var/log/pods",
        ] {
            assert!(unit.command_line().contains(flag), "{flag}");
        }
        assert!(unit
            .command_line()
            .ends_with("--register-with-taints node-role.kubernetes.io/control-plane:NoSchedule"));
    }

    #[test]
    fn a_path_with_a_space_is_refused_naming_the_flag() {
        let mut m = machine();
        m.bin_dir = "/opt/my bin".into();
        let error = check_words(&controller(&m, &ClusterConfiguration::default())).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("--root/--bin-dir: \"/opt/my bin/controller\""),
            "{error}"
        );
    }
}
