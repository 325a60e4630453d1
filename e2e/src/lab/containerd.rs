//! Each lab VM's containerd: Debian's containerd, one per node, with the
//! configuration `kubeadm-lite` writes on the node's disk (own root,
//! state, socket, runc state and CNI directories), started in the node's
//! network namespace as its `containerd.service` would be.
//!
//! The node's containerd pulls `docker.io` and `registry.k8s.io` images
//! from the lab's registry ([`super::registry`]): `certs.d/<registry>/hosts.toml`
//! on the node's disk names it as the mirror, with the registry's CA.
//!
//! A container is not a process of containerd: containerd starts a shim
//! per Pod sandbox (`containerd-shim-runc-v2`, in the node's namespace),
//! and the shim runs the containers (the pause process and the Pod's
//! containers, in the Pod's namespaces) as its children. So `down` and
//! `reboot` end the shims' descendants too, and remove the sockets the
//! shims listen on (`/run/containerd/s/<hash>`, shared by every
//! containerd of the machine); their mounts (root filesystems, network
//! namespaces, `/dev/shm`) all lie under the node's disk.

use std::collections::HashMap;

use super::*;

/// The program, from Debian's `containerd` package.
pub const CONTAINERD_PROGRAM: &str = "/usr/bin/containerd";

/// The registries whose images the lab's registry serves.
pub const MIRRORED_REGISTRIES: &[&str] = &["docker.io", "registry.k8s.io"];

/// Writes `certs.d/<registry>/hosts.toml` on `node`'s disk for each of
/// [`MIRRORED_REGISTRIES`], naming the lab's registry as the only host
/// (no fallback to the internet, which the lab has not), and one for the
/// private registry (its CA).
pub(super) fn registry_mirrors(dir: &Path, node: &Node) -> Result<(), LabError> {
    let layout = node_layout(dir, node);
    let hosts = MIRRORED_REGISTRIES
        .iter()
        .map(|registry| (*registry, REGISTRY_ADDRESS))
        // The private registry is itself, with the lab's CA.
        .chain([(PRIVATE_REGISTRY_ADDRESS, PRIVATE_REGISTRY_ADDRESS)]);
    for (registry, server) in hosts {
        let file = layout
            .containerd_certs_d()
            .join(registry)
            .join("hosts.toml");
        let text = kubeadm_lite::containerd::registry_hosts(
            &format!("https://{server}"),
            &registry_ca(dir),
        );
        if std::fs::read_to_string(&file).is_ok_and(|old| old == text) {
            continue;
        }
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)
                .map_err(io_error(format!("creating {}", parent.display())))?;
        }
        std::fs::write(&file, text).map_err(io_error(format!("writing {}", file.display())))?;
    }
    Ok(())
}

/// Starts `node`'s containerd from the configuration kubeadm-lite wrote,
/// unless it runs already or there is none yet.
pub fn start_containerd(options: &LabOptions, node: &Node) -> Result<(), LabError> {
    let config = node_layout(&options.dir, node).containerd_config();
    if !config.exists() {
        return Ok(());
    }
    ensure_running(
        options,
        &Component {
            name: format!("containerd-{}", node.name),
            program: PathBuf::from(CONTAINERD_PROGRAM),
            netns: Some(node.netns()),
            args: vec!["--config".into(), config.display().to_string()],
        },
    )
}

/// The processes that run containers on the node whose namespace is
/// `netns`: the descendants of its shims.
pub(super) fn container_pids(netns: &str) -> Result<Vec<i32>, LabError> {
    let shims: Vec<i32> = netns_pids(netns)?
        .into_iter()
        .filter(|pid| lab_binary_of(*pid) == Some("containerd-shim-runc-v2"))
        .collect();
    Ok(descendants(&shims))
}

/// Every process below `roots` in the process tree (not the roots).
fn descendants(roots: &[i32]) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for pid in entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        {
            if let Some(parent) = parent_pid(pid) {
                children.entry(parent).or_default().push(pid);
            }
        }
    }
    let mut found = vec![];
    let mut queue: Vec<i32> = roots.to_vec();
    while let Some(pid) = queue.pop() {
        for &child in children.get(&pid).into_iter().flatten() {
            found.push(child);
            queue.push(child);
        }
    }
    found
}

/// The fourth field of `/proc/<pid>/stat`, after the command name in
/// parentheses (which may itself hold spaces and parentheses).
fn parent_pid(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

/// The sockets `node`'s shims listen on: each sandbox's bundle under the
/// state directory has an `address` file with `unix:///run/containerd/s/<hash>`.
pub(super) fn shim_sockets(dir: &Path, node_name: &str) -> Vec<PathBuf> {
    let tasks = Layout::new(dir.join(node_name))
        .containerd_state()
        .join("io.containerd.runtime.v2.task");
    let mut sockets = vec![];
    for namespace in std::fs::read_dir(&tasks).into_iter().flatten().flatten() {
        for bundle in std::fs::read_dir(namespace.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(address) = std::fs::read_to_string(bundle.path().join("address")) {
                if let Some(path) = address.trim().strip_prefix("unix://") {
                    sockets.push(PathBuf::from(path));
                }
            }
        }
    }
    sockets
}

/// Removes shim sockets whose shim is gone (a killed shim leaves its
/// socket file behind).
pub(super) fn remove_shim_sockets(sockets: &[PathBuf]) {
    for socket in sockets {
        if socket.starts_with("/run/containerd/s") && std::fs::remove_file(socket).is_ok() {
            eprintln!("lab: removed shim socket {}", socket.display());
        }
    }
}

/// The cgroup every lab node's Pods go under (the node agent's
/// `--cgroup-root /kube-lite-lab/<node>`, which kubeadm-lite gives it).
pub const CGROUP_PARENT: &str = "kube-lite-lab";

/// Removes the Pods' cgroups of `node` (of every node with `None`), once
/// their processes are gone, in every hierarchy (cgroup v1's controllers,
/// or v2's one tree). A killed process leaves its cgroup only when it is
/// reaped, which PID 1 may take a moment to do: tried for a while.
pub(super) fn remove_pod_cgroups(node: Option<&str>) -> Result<(), LabError> {
    let relative = match node {
        Some(node) => format!("{CGROUP_PARENT}/{node}"),
        None => CGROUP_PARENT.to_string(),
    };
    let roots = || {
        let mut roots = vec![PathBuf::from("/sys/fs/cgroup")];
        roots.extend(
            std::fs::read_dir("/sys/fs/cgroup")
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path()),
        );
        roots
            .into_iter()
            .map(|root| root.join(&relative))
            .filter(|dir| dir.is_dir())
            .collect::<Vec<_>>()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left = roots();
        if left.is_empty() {
            return Ok(());
        }
        for dir in &left {
            remove_cgroup_tree(dir);
        }
        if std::time::Instant::now() > deadline {
            return Err(LabError::Cgroups(roots()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// rmdir of a cgroup and those below it, deepest first (a cgroup goes
/// with rmdir once it has no children and no processes).
fn remove_cgroup_tree(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup_tree(&entry.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// What a reboot loses of containerd: its state directory (`/run` is a
/// tmpfs on a VM), with the mounts under it.
pub(super) fn forget_containerd_state(dir: &Path, node: &Node) -> Result<(), LabError> {
    let state = node_layout(dir, node).containerd_state();
    if !state.exists() {
        return Ok(());
    }
    detach_mounts_under(&state);
    let mut left = vec![];
    remove_tree(&state, &mut left);
    if left.is_empty() {
        Ok(())
    } else {
        Err(LabError::Leftovers(left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_a_descendant_of_its_parent() {
        let me = std::process::id() as i32;
        let parent = parent_pid(me).unwrap();
        assert!(descendants(&[parent]).contains(&me));
        assert!(!descendants(&[me]).contains(&me));
    }
}
