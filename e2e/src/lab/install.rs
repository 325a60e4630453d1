//! Installing the cluster on the lab's VMs the way a teacher does on
//! VirtualBox: `kubeadm-lite init` on kl-master, the join command it
//! printed on each worker ([docs/vms.md]). Each VM's disk is
//! `DIR/<node>` (`--root`); there is no systemd (`--no-systemd`), so when
//! kubeadm-lite says it waits, the lab starts the units' commands
//! ([`super::process`]).

use super::*;

/// A node's "disk": `DIR/<node name>`, laid out as a VM's root.
pub fn node_layout(dir: &Path, node: &Node) -> Layout {
    Layout::new(dir.join(&node.name))
}

/// The node agent's data directory on the lab node `node` (its
/// `/var/lib/kube-lite/nodeagent`).
pub fn nodeagent_data_dir(dir: &Path, node: &str) -> PathBuf {
    Layout::new(dir.join(node)).nodeagent_data()
}

/// `kubeadm-lite init` for kl-master.
pub(super) fn init_args(options: &LabOptions) -> Vec<String> {
    let master = Node::all(0).remove(0);
    [
        "init",
        "--node-ip",
        &master.lan_ip.to_string(),
        "--node-name",
        &master.name,
        "--pod-network-cidr",
        POD_CIDR,
        "--service-cidr",
        SERVICE_CIDR,
        "--root",
        &options.dir.join(&master.name).display().to_string(),
        "--bin-dir",
        &options.bin_dir.display().to_string(),
        "--no-systemd",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

/// The printed join command, as printed, and what a lab VM adds: its name
/// (the namespaces share the machine's host name), its disk, where the
/// binaries are, and no systemd.
pub(super) fn join_args(options: &LabOptions, worker: &Node, command: &str) -> Vec<String> {
    let mut args: Vec<String> = command
        .split_whitespace()
        .skip(1) // "kubeadm-lite"
        .map(String::from)
        .collect();
    args.extend([
        "--node-name".into(),
        worker.name.clone(),
        "--root".into(),
        options.dir.join(&worker.name).display().to_string(),
        "--bin-dir".into(),
        options.bin_dir.display().to_string(),
        "--no-systemd".into(),
    ]);
    args
}

/// A join command made on the master (`kubeadm-lite token create
/// --print-join-command`), for workers added to a lab that is up.
pub(super) fn new_join_command(options: &LabOptions, master: &Node) -> Result<String, LabError> {
    let root = options.dir.join(&master.name).display().to_string();
    let output = kubeadm(
        options,
        master,
        &[
            "token".into(),
            "create".into(),
            "--print-join-command".into(),
            "--root".into(),
            root,
        ],
        "",
    )?;
    output
        .into_iter()
        .find(|line| line.starts_with("kubeadm-lite join "))
        .ok_or_else(|| LabError::Kubeadm {
            node: master.name.clone(),
            message: "`token create --print-join-command` printed no join command".into(),
            log: log_file(&options.dir, &format!("kubeadm-{}", master.name)),
        })
}

/// Runs `kubeadm-lite ARGS` inside `node`'s network namespace, its output
/// into `DIR/logs/kubeadm-<node>.log` and on the lab's stderr. When a line
/// starts with `marker`, the node's units are started (what systemd would
/// do), and containerd when kubeadm-lite waits for it. Returns the
/// output's lines.
pub(super) fn kubeadm(
    options: &LabOptions,
    node: &Node,
    args: &[String],
    marker: &str,
) -> Result<Vec<String>, LabError> {
    use std::io::{BufRead as _, Write as _};
    for sub in ["logs", "pids"] {
        let d = options.dir.join(sub);
        std::fs::create_dir_all(&d).map_err(io_error(format!("creating {}", d.display())))?;
    }
    let log_path = log_file(&options.dir, &format!("kubeadm-{}", node.name));
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io_error(format!("opening {}", log_path.display())))?;
    let stderr = log
        .try_clone()
        .map_err(io_error(format!("opening {}", log_path.display())))?;
    let mut command = Command::new(options.bin_dir.join("kubeadm-lite"));
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr);
    enter_netns(&mut command, &node.netns())?;
    eprintln!("lab: {}: kubeadm-lite {}", node.name, args.join(" "));
    // The command first, as a shell transcript would show it.
    let _ = writeln!(log, "$ kubeadm-lite {}", args.join(" "));
    let mut child = command.spawn().map_err(io_error(format!(
        "starting kubeadm-lite in {}",
        node.netns()
    )))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = vec![];
    for line in std::io::BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let _ = writeln!(log, "{line}");
        eprintln!("lab: {}: {line}", node.name);
        if line.starts_with(WAITING_FOR_CONTAINERD) {
            start_containerd(options, node)?;
        }
        if !marker.is_empty() && line.starts_with(marker) {
            start_units(options, node)?;
        }
        lines.push(line);
    }
    let status = child.wait().map_err(io_error(format!(
        "waiting for kubeadm-lite in {}",
        node.netns()
    )))?;
    if status.success() {
        Ok(lines)
    } else {
        Err(LabError::Kubeadm {
            node: node.name.clone(),
            message: log_tail(&log_path, 5),
            log: log_path,
        })
    }
}
