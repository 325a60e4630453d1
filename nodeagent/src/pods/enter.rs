//! Entering a running container: what `nsenter --target PID --net --uts
//! --mount` does, and what `kubectl exec` and exec probes need.
//!
//! A container is nothing but a process in some namespaces. To run another
//! command "in" it, start a process and move it into the same namespaces
//! (the ones `/proc/<pid>/ns/` of the container's main process names)
//! before it executes the command. It then sees the Pod's network, its
//! hostname and its files (volumes, /etc/hosts) exactly as the container
//! does, and gets the container's environment.

use std::fs::File;
use std::os::unix::process::CommandExt as _;

use nix::sched::{setns, CloneFlags};

/// The namespaces a command joins, in the order it joins them: the mount
/// namespace last, since after it `/proc/<pid>/...` paths would be looked
/// up in the container's view.
const NAMESPACES: [(&str, CloneFlags); 3] = [
    ("net", CloneFlags::CLONE_NEWNET),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// A command that runs `program args` inside the namespaces of process
/// `pid`, with its environment, from `/`.
pub fn command(
    pid: i32,
    program: &str,
    args: &[String],
) -> std::io::Result<tokio::process::Command> {
    // Open the namespace files now, in the agent: between fork and exec
    // the child only calls setns on them.
    let namespaces: Vec<(File, CloneFlags)> = NAMESPACES
        .iter()
        .map(|(name, flag)| File::open(format!("/proc/{pid}/ns/{name}")).map(|f| (f, *flag)))
        .collect::<std::io::Result<_>>()?;
    let environ = std::fs::read(format!("/proc/{pid}/environ"))?;
    let env: Vec<(String, String)> = environ
        .split(|b| *b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect();
    let mut std_command = std::process::Command::new(program);
    std_command
        .args(args)
        .env_clear()
        .envs(env)
        .current_dir("/");
    // SAFETY: only setns, an async-signal-safe system call, on descriptors
    // opened before the fork; the Vec is moved in, not allocated here.
    unsafe {
        std_command.pre_exec(move || {
            for (file, flag) in &namespaces {
                setns(file, *flag)?;
            }
            // Re-enter "/" of the new mount namespace.
            nix::unistd::chdir("/")?;
            Ok(())
        });
    }
    let mut command = tokio::process::Command::from(std_command);
    command.kill_on_drop(true);
    Ok(command)
}
