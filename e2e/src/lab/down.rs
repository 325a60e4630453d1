//! `down`: remove the lab, found from the system (namespaces, links,
//! routes, processes), also after a crash lost the PID files.

use super::*;

/// Removes the lab: processes (components, containerd and the Pods'
/// containers), the Pods' cgroups, namespaces (their veth pairs go with
/// them), LAN ports, the bridge, the unreachable routes and the files
/// under `dir` that `up` made. What to remove is read from the system, so
/// this works after a crash and when nothing is left (then it does
/// nothing). Every step is tried; the first error is returned.
pub fn down(dir: &Path) -> Result<(), LabError> {
    let mut first_error = None;
    let mut keep = |r: Result<(), LabError>| {
        if let Err(e) = r {
            eprintln!("lab: {e}");
            first_error.get_or_insert(e);
        }
    };
    // The components, containerd and its shims, and so the Pods' containers.
    keep(stop_components(dir));
    keep(remove_pod_cgroups(None));
    // LAN ports first: deleting one end of a veth pair deletes the other
    // at once, while a deleted namespace's links go away only later, in
    // the background.
    match links(None) {
        Ok(links) => {
            for link in links
                .iter()
                .filter(|l| is_lan_port(l) || l.as_str() == LAN_BRIDGE)
            {
                keep(ip_change(
                    &format!("removing {link}"),
                    &["link", "del", link],
                ));
            }
        }
        Err(e) => keep(Err(e)),
    }
    match netns_list() {
        Ok(namespaces) => {
            for ns in namespaces.iter().filter(|n| is_node_netns(n)) {
                keep(ip_change(
                    &format!("removing node {ns}"),
                    &["netns", "del", ns],
                ));
            }
        }
        Err(e) => keep(Err(e)),
    }
    match unreachable_routes() {
        Ok(routes) => {
            for cidr in [SERVICE_CIDR, POD_CIDR] {
                if routes.iter().any(|r| r == cidr) {
                    keep(ip_change(
                        "removing an unreachable route",
                        &["route", "del", "unreachable", cidr],
                    ));
                }
            }
        }
        Err(e) => keep(Err(e)),
    }
    keep(remove_files(dir));
    first_error.map_or(Ok(()), Err)
}

/// Ends every lab process: those named by PID files, and any process of a
/// lab binary still inside a node namespace (found with `ip netns pids`,
/// which is how a crash that lost the PID files is survived).
pub(super) fn stop_components(dir: &Path) -> Result<(), LabError> {
    let mut pids: Vec<i32> = vec![];
    if let Ok(entries) = std::fs::read_dir(dir.join("pids")) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(component) = name.strip_suffix(".pid") else {
                continue;
            };
            let binary = component_binary(component);
            if let Some(pid) = recorded_pid(dir, component) {
                if lab_binary_of(pid) == Some(binary) {
                    pids.push(pid);
                } else {
                    // Exited by itself: collect it if it is our child.
                    reap(pid);
                }
            }
        }
    }
    // The registry runs on the host: found by its config under `dir`.
    pids.extend(registry_pids(dir));
    let mut sockets = vec![];
    for ns in netns_list()?.iter().filter(|n| is_node_netns(n)) {
        let out = ip(
            &format!("listing processes in {ns}"),
            &["netns", "pids", ns],
        )?;
        pids.extend(
            out.split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
                .filter(|p| lab_binary_of(*p).is_some()),
        );
        // The containers, below containerd's shims.
        pids.extend(container_pids(ns)?);
        sockets.extend(shim_sockets(dir, ns));
    }
    stop_processes(pids);
    remove_shim_sockets(&sockets);
    Ok(())
}

/// Ends processes the lab made, as a kubelet ends a container: SIGTERM,
/// [`STOP_GRACE`] to exit, then SIGKILL.
pub(super) fn stop_processes(mut pids: Vec<i32>) {
    pids.sort_unstable();
    pids.dedup();
    for &pid in &pids {
        eprintln!("lab: stopping pid {pid}");
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    wait_gone(&pids, STOP_GRACE);
    for &pid in pids.iter().filter(|p| !is_gone(**p)) {
        eprintln!("lab: pid {pid} ignored SIGTERM, killing it");
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    wait_gone(&pids, STOP_GRACE);
    for &pid in pids.iter().filter(|p| !is_gone(**p)) {
        // Stuck in the kernel (state D): it goes when the kernel lets it.
        eprintln!("lab: pid {pid} survived SIGKILL for {STOP_GRACE:?}; leaving it");
    }
}

/// The processes in a network namespace (`ip netns pids`).
pub(super) fn netns_pids(ns: &str) -> Result<Vec<i32>, LabError> {
    let out = ip(
        &format!("listing processes in {ns}"),
        &["netns", "pids", ns],
    )?;
    Ok(out
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
        .collect())
}

/// Collects an exited child of this process (a test that ran `up`), so
/// it does not linger as a zombie; does nothing for other processes.
pub(super) fn reap(pid: i32) {
    let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
}

/// Gone: no such process, or a zombie waiting for its parent.
pub(super) fn is_gone(pid: i32) -> bool {
    reap(pid);
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

pub(super) fn wait_gone(pids: &[i32], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline && !pids.iter().all(|p| is_gone(*p)) {
        std::thread::sleep(POLL);
    }
}

/// Removes what `up` wrote under `dir`, and `dir` itself if that leaves
/// it empty (anything else in it is not ours).
///
/// Pods' containers bind-mount files from their node's directory (volumes,
/// /etc/hosts, nginx's config). Those mounts live in the Pods' own mount
/// namespaces, which end with their processes; a mount that is still in
/// this namespace under `dir` is detached lazily (which never waits). What
/// still cannot be removed is skipped - the rest is removed anyway - and
/// reported in the error.
pub(super) fn remove_files(dir: &Path) -> Result<(), LabError> {
    let mut made: Vec<PathBuf> = ["pids", "logs", "kubeconfig", "pki", "registry"]
        .iter()
        .map(|p| dir.join(p))
        .collect();
    // The VMs' disks (DIR/kl-master/, ...), for a lab of any size.
    if let Ok(entries) = std::fs::read_dir(dir) {
        made.extend(entries.flatten().map(|e| e.path()).filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(is_node_netns)
        }));
    }
    detach_mounts_under(dir);
    let mut left = vec![];
    for path in made {
        remove_tree(&path, &mut left);
    }
    let _ = std::fs::remove_dir(dir);
    if left.is_empty() {
        return Ok(());
    }
    for (path, error) in &left {
        eprintln!("lab: could not remove {}: {error}", path.display());
    }
    Err(LabError::Leftovers(left))
}

/// Removes `path` and everything under it, without following symlinks,
/// going on past what cannot be removed (collected in `left`).
pub(super) fn remove_tree(path: &Path, left: &mut Vec<(PathBuf, std::io::Error)>) {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => return left.push((path.to_path_buf(), e)),
    };
    if !metadata.is_dir() {
        if let Err(e) = std::fs::remove_file(path) {
            left.push((path.to_path_buf(), e));
        }
        return;
    }
    match std::fs::read_dir(path) {
        Ok(entries) => {
            for entry in entries.flatten() {
                remove_tree(&entry.path(), left);
            }
        }
        Err(e) => return left.push((path.to_path_buf(), e)),
    }
    if let Err(e) = std::fs::remove_dir(path) {
        // A child that could not go is already reported.
        if !left.iter().any(|(p, _)| p.starts_with(path)) {
            left.push((path.to_path_buf(), e));
        }
    }
}

/// Lazily unmounts every mount of this mount namespace at or below `dir`,
/// deepest first (a mount there makes `rmdir` fail with EBUSY).
pub(super) fn detach_mounts_under(dir: &Path) {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut mounts: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|point| PathBuf::from(unescape_mountinfo(point)))
        .filter(|point| point.starts_with(dir))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    mounts.dedup();
    for point in mounts {
        eprintln!("lab: detaching the mount at {}", point.display());
        if let Err(e) = nix::mount::umount2(&point, nix::mount::MntFlags::MNT_DETACH) {
            eprintln!("lab: detaching {}: {e}", point.display());
        }
    }
}

/// Mount points in /proc/self/mountinfo escape space, tab, newline and
/// backslash as `\ooo` (octal).
pub(super) fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
