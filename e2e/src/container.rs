//! A stand-in container for tests of `kubectl logs` and `kubectl exec`.
//!
//! The kubelet's server (`nodeagent::server`) only needs a container's
//! main process and log files. [`TestContainer`] is such a process, made
//! without any Pod runtime: `unshare --net --uts --mount` gives `sleep` a
//! fresh network namespace (only a loopback, down), its own hostname and a
//! private mount namespace with a tmpfs on `/mnt` holding a `marker` file,
//! and runs it in `/mnt`. An exec that prints the hostname, reads
//! `/mnt/marker` or prints `pwd` proves it joined the container's
//! namespaces rather than the node's. Killed by PID when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The content of `/mnt/marker`, seen only inside the container.
pub const MARKER: &str = "inside the container";

/// A process in its own namespaces, killed and reaped when dropped.
pub struct TestContainer {
    child: Child,
    /// The host PID of the container's main process.
    pub pid: i32,
    pub hostname: String,
}

impl TestContainer {
    /// Starts one whose hostname is `hostname` and whose environment is
    /// exactly `env` (plus a PATH). Panics (failing the test) when it
    /// cannot: these tests need root.
    pub fn start(hostname: &str, env: &[(&str, &str)]) -> TestContainer {
        let script = format!(
            "hostname \"$1\" && mount -t tmpfs kl-test /mnt && echo '{MARKER}' > /mnt/marker && cd /mnt && exec sleep 600"
        );
        let child = Command::new("unshare")
            .args(["--net", "--uts", "--mount", "--propagation", "private"])
            .args(["sh", "-c", &script, "sh", hostname])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting unshare (needs root and util-linux)");
        let pid = child.id() as i32;
        let container = TestContainer {
            child,
            pid,
            hostname: hostname.to_string(),
        };
        // Ready once the script has exec'd `sleep` (same PID throughout).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "sleep" {
                return container;
            }
            assert!(
                Instant::now() < deadline,
                "the test container (pid {pid}) did not start: comm is {comm:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process still exists (not yet reaped).
    pub fn exists(pid: i32) -> bool {
        Path::new(&format!("/proc/{pid}")).exists()
    }
}

impl Drop for TestContainer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The PIDs of the processes whose command line is exactly `argv`: how a
/// test finds the process an exec started (give it a unique argument).
pub fn pids_running(argv: &[&str]) -> Vec<i32> {
    let wanted: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted))
        .collect()
}

/// One line of a CRI log file (the format containerd writes and the
/// kubelet reads): `<time> <stream> <F|P> <content>\n`.
pub fn cri_line(time: &str, stream: &str, full: bool, content: &str) -> String {
    let tag = if full { "F" } else { "P" };
    format!("{time} {stream} {tag} {content}\n")
}
