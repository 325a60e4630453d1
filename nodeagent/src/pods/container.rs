//! Container instances, as the agent sees and controls them.
//!
//! Each start of a container is an *instance*, numbered from 0: instance N
//! is what `restartCount: N` reports, and its files sit together in the
//! container's directory of the Pod:
//!
//! ```text
//! <data-dir>/pods/<pod uid>/containers/nginx/
//!     0.spec.json     what the monitor was asked to run
//!     0.monitor.json  the monitor's PID (the agent watches it)
//!     0.pid.json      the container's PID, written by the monitor
//!     0.log           its output, CRI format (`kubectl logs`)
//!     0.exit.json     how it ended, written by the monitor
//!     1.spec.json     ... the next start, after a restart
//! ```
//!
//! Everything the agent knows about a container can be read back from
//! these files: that is how a restarted agent adopts running containers.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::io::unix::AsyncFd;

use super::monitor::{self, ExitRecord, MonitorSpec, ProcessRecord};

/// Where a Pod's container keeps its instances.
#[derive(Debug, Clone)]
pub struct ContainerDir {
    dir: PathBuf,
}

impl ContainerDir {
    pub fn new(dir: PathBuf) -> ContainerDir {
        ContainerDir { dir }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn file(&self, n: u32, suffix: &str) -> PathBuf {
        self.dir.join(format!("{n}.{suffix}"))
    }

    /// The CRI log of instance `n`.
    pub fn log_path(&self, n: u32) -> PathBuf {
        self.file(n, "log")
    }

    /// Where the monitor of instance `n` records its container's PID.
    /// Where `kubectl attach` reaches the container's stdin: the fifos
    /// `stdin` and `ctl` (see the monitor), shared by its instances.
    pub fn attach_dir(&self) -> PathBuf {
        self.dir.join("attach")
    }

    pub fn pid_path(&self, n: u32) -> PathBuf {
        self.file(n, "pid.json")
    }

    /// Where the monitor of instance `n` records how it ended.
    pub fn exit_path(&self, n: u32) -> PathBuf {
        self.file(n, "exit.json")
    }

    /// The process record of instance `n`, if it started.
    pub fn process(&self, n: u32) -> Option<ProcessRecord> {
        monitor::read_json(&self.pid_path(n)).ok().flatten()
    }

    /// The process record of instance `n` while that process still runs
    /// (the PID not reused: its start time matches the record).
    pub fn live_process(&self, n: u32) -> Option<ProcessRecord> {
        self.process(n)
            .filter(|record| is_same_process(record.pid, record.start_ticks))
    }

    /// The exit record of instance `n`, if it ended.
    pub fn exit(&self, n: u32) -> Option<ExitRecord> {
        monitor::read_json(&self.exit_path(n)).ok().flatten()
    }

    /// The log files of instance `n`, oldest first (a rotated part, then
    /// the current file), as far as they exist.
    pub fn log_files(&self, n: u32) -> Vec<PathBuf> {
        let current = self.log_path(n);
        let mut rotated = current.clone().into_os_string();
        rotated.push(".1");
        [PathBuf::from(rotated), current]
            .into_iter()
            .filter(|p| p.exists())
            .collect()
    }

    /// The highest instance number that was started, if any.
    pub fn latest_instance(&self) -> Option<u32> {
        std::fs::read_dir(&self.dir)
            .ok()?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".monitor.json")?.parse::<u32>().ok()
            })
            .max()
    }
}

/// The monitor of an instance, recorded by the agent when it started it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorRecord {
    pub pid: i32,
    pub start_ticks: u64,
    /// `containerID` without the `kube-lite://` scheme.
    pub container_id: String,
}

/// What an instance is doing now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceState {
    /// The monitor runs but has not started the program yet.
    Starting,
    Running(ProcessRecord),
    Exited(ExitRecord),
}

/// One start of a container.
#[derive(Debug)]
pub struct Instance {
    /// Its number: the container's restartCount while it is the latest.
    pub n: u32,
    pub dir: ContainerDir,
    pub monitor: MonitorRecord,
    /// Readable once the monitor has exited; `None` if it already had
    /// when we looked.
    exited: Option<AsyncFd<OwnedFd>>,
}

impl Instance {
    /// Starts instance `n`: writes its spec and starts a monitor for it,
    /// in a session of its own so that it outlives the agent.
    pub fn start(dir: &ContainerDir, n: u32, spec: &MonitorSpec) -> std::io::Result<Instance> {
        std::fs::create_dir_all(dir.path())?;
        let spec_path = dir.file(n, "spec.json");
        monitor::write_json_atomically(&spec_path, spec)?;
        let monitor_log = std::fs::File::create(dir.file(n, "monitor.log"))?;
        let mut command = Command::new("/proc/self/exe");
        command
            .arg(monitor::MONITOR_COMMAND)
            .arg(&spec_path)
            .stdin(Stdio::null())
            .stdout(monitor_log.try_clone()?)
            .stderr(monitor_log);
        // SAFETY: setsid is async-signal-safe and touches no memory.
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| nix::unistd::setsid().map(|_| ()).map_err(Into::into));
        }
        let child = command.spawn()?;
        let pid = child.id() as i32;
        // The child is reaped in `exited` (waitpid), not through `Child`.
        drop(child);
        let monitor = MonitorRecord {
            pid,
            start_ticks: monitor::process_start_ticks(pid).unwrap_or(0),
            container_id: uuid::Uuid::new_v4().simple().to_string(),
        };
        monitor::write_json_atomically(&dir.file(n, "monitor.json"), &monitor)?;
        let exited = watch_exit(&monitor);
        Ok(Instance {
            n,
            dir: dir.clone(),
            monitor,
            exited,
        })
    }

    /// Finds instance `n` on disk (after an agent restart).
    pub fn adopt(dir: &ContainerDir, n: u32) -> Option<Instance> {
        let monitor: MonitorRecord = monitor::read_json(&dir.file(n, "monitor.json")).ok()??;
        let exited = watch_exit(&monitor);
        Some(Instance {
            n,
            dir: dir.clone(),
            monitor,
            exited,
        })
    }

    /// `kube-lite://<id>`, as `containerID` in the Pod status.
    pub fn container_id(&self) -> String {
        format!("kube-lite://{}", self.monitor.container_id)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.log_path(self.n)
    }

    fn monitor_alive(&self) -> bool {
        is_same_process(self.monitor.pid, self.monitor.start_ticks)
    }

    /// The container's process, when it runs now.
    pub fn running_process(&self) -> Option<ProcessRecord> {
        self.dir.live_process(self.n)
    }

    /// What the instance is doing, read from its files and /proc.
    pub fn state(&self) -> InstanceState {
        if let Some(exit) = self.dir.exit(self.n) {
            return InstanceState::Exited(exit);
        }
        if self.monitor_alive() {
            return match self.running_process() {
                Some(process) => InstanceState::Running(process),
                None => InstanceState::Starting,
            };
        }
        // Check the exit file again: the monitor may have written it and
        // exited between the two looks.
        if let Some(exit) = self.dir.exit(self.n) {
            return InstanceState::Exited(exit);
        }
        InstanceState::Exited(ExitRecord {
            exit_code: 137,
            signal: None,
            reason: "Error".into(),
            message: Some("the container's monitor ended without recording an exit".into()),
            finished_at: monitor::now_rfc3339(),
        })
    }

    /// Resolves when the monitor has exited (so the instance has ended).
    pub async fn exited(&self) {
        if let Some(fd) = &self.exited {
            if let Ok(mut guard) = fd.readable().await {
                guard.retain_ready();
            }
        } else if self.monitor_alive() {
            // No pidfd (old kernel): poll.
            while self.monitor_alive() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        // Collect the monitor if it is our child (started by this agent).
        let _ = nix::sys::wait::waitpid(
            Pid::from_raw(self.monitor.pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
    }

    /// Whether the monitor has exited, without waiting.
    pub fn has_exited(&self) -> bool {
        !self.monitor_alive()
    }

    /// Sends `signal` to the container's main process, if it runs.
    pub fn signal(&self, signal: Signal) {
        if let Some(process) = self.running_process() {
            let _ = kill(Pid::from_raw(process.pid), signal);
        }
    }

    /// Stops the instance the way the kubelet stops a container: SIGTERM,
    /// then, after `grace`, SIGKILL to the container's process group.
    pub async fn stop(&self, grace: Duration) {
        if self.has_exited() {
            return;
        }
        self.signal(Signal::SIGTERM);
        if tokio::time::timeout(grace, self.exited()).await.is_ok() {
            return;
        }
        if let Some(process) = self.running_process() {
            let _ = killpg(Pid::from_raw(process.pid), Signal::SIGKILL);
            let _ = kill(Pid::from_raw(process.pid), Signal::SIGKILL);
        }
        if tokio::time::timeout(Duration::from_secs(5), self.exited())
            .await
            .is_err()
            && self.monitor_alive()
        {
            // The monitor itself is stuck: it is ours, end it.
            let _ = kill(Pid::from_raw(self.monitor.pid), Signal::SIGKILL);
        }
    }
}

/// Whether `pid` is still the process that started at `start_ticks`.
fn is_same_process(pid: i32, start_ticks: u64) -> bool {
    monitor::process_start_ticks(pid).is_some_and(|t| start_ticks == 0 || t == start_ticks)
}

/// A pidfd for the monitor: it becomes readable when the process exits,
/// whether or not it is our child (a restarted agent adopts monitors
/// started by its predecessor).
fn watch_exit(monitor: &MonitorRecord) -> Option<AsyncFd<OwnedFd>> {
    // SAFETY: pidfd_open takes a PID and flags and returns a new fd or -1.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, monitor.pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel just gave us this descriptor; nobody else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // Opened by PID: make sure it is still the monitor and not a newcomer
    // that got the PID after the monitor ended.
    if !is_same_process(monitor.pid, monitor.start_ticks) {
        return None;
    }
    // SAFETY: the AsyncFd owns the descriptor and deregisters it before
    // closing it on drop.
    unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }.ok()
}
