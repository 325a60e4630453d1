//! The container monitor: the small process that is a running container's
//! parent (what `conmon` is for CRI-O, or `containerd-shim` for containerd).
//!
//! Why not let the node agent itself be the parent? Because the agent must
//! be able to restart - after an upgrade, a crash, `kill` - without taking
//! the node's Pods down with it. A container whose stdout is a pipe into the
//! agent would die of SIGPIPE the moment it logs after the agent went away.
//! So every container gets a monitor, started as `nodeagent monitor
//! SPEC.json` in its own session, which outlives the agent and:
//!
//! 1. joins the Pod's network namespace (so `ip netns pids` lists it);
//! 2. starts the container's program in a fresh UTS namespace (hostname =
//!    Pod name) and a fresh mount namespace where it bind-mounts the Pod's
//!    files (volumes, /etc/hosts, /etc/resolv.conf) and gives the container
//!    private /tmp and /run;
//! 3. writes the container's PID to a file the agent reads;
//! 4. copies the container's stdout and stderr into its log file, in the
//!    CRI format `kubectl logs` is served from, rotating it at a size cap;
//! 5. when the container exits, writes its exit code to a file and exits
//!    itself. The agent notices (it watches the monitor's PID) and reads it.
//!
//! A restarted agent finds all of this on disk and adopts the container as
//! it is: nothing of a running container depends on the agent being there.
//!
//! The monitor is single-threaded until the container has started, which
//! is what makes the work between `fork` and `exec` (namespaces, mounts)
//! safe to write as ordinary code.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use nix::mount::{mount, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use serde::{Deserialize, Serialize};

/// The first argument that turns the `nodeagent` binary into a monitor.
pub const MONITOR_COMMAND: &str = "monitor";

/// The exit code reported when the program could not be started at all
/// (containerd's answer too: 128 and reason `StartError`).
pub const START_ERROR_EXIT_CODE: i32 = 128;

/// Everything the monitor needs to start one container instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MonitorSpec {
    /// The Pod's network namespace file (`/run/netns/kl-pod-...`); `None`
    /// for `hostNetwork` Pods, which share the node's.
    pub netns: Option<PathBuf>,
    /// The hostname the container sees: the Pod's name.
    pub hostname: String,
    /// The program and its arguments, resolved from the image and the
    /// container's `command`/`args`.
    pub argv: Vec<String>,
    /// The complete environment of the program.
    pub env: Vec<(String, String)>,
    /// The working directory (`workingDir`, or the image's), `/` if none.
    pub working_dir: Option<String>,
    /// What to mount in the container's mount namespace, in order.
    pub mounts: Vec<Mount>,
    /// The CRI log file of this instance.
    pub log_path: PathBuf,
    /// The log is rotated (one older file, `<log>.1`) past this size.
    pub log_max_bytes: u64,
    /// Where the container's [`ProcessRecord`] goes once it started.
    pub pid_path: PathBuf,
    /// Where its [`ExitRecord`] goes when it ended.
    pub exit_path: PathBuf,
    /// `stdin: true`: the container's stdin stays open for `kubectl
    /// attach`; `None`: it reads /dev/null.
    #[serde(default)]
    pub attach: Option<AttachSpec>,
}

/// A container whose stdin is kept for `kubectl attach` (what conmon does
/// with its attach socket and control fifo):
///
/// - `<dir>/stdin` is a fifo the container reads its input from (through
///   its terminal when `tty`); an attach session writes into it;
/// - `<dir>/ctl` takes control lines: `resize W H` (the terminal's size)
///   and `close-stdin` (`stdinOnce`: the first session is over, the
///   container reads end-of-file once its writer has gone).
///
/// The container's output goes to its log as always; an attach session
/// follows the log. With `tty`, output is logged as it comes, partial
/// lines included, so that a shell's prompt shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachSpec {
    pub dir: PathBuf,
    pub stdin_once: bool,
    pub tty: bool,
}

/// One mount of a container's filesystem view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Where the container sees it, e.g. `/etc/nginx/conf.d`.
    pub target: PathBuf,
    pub source: MountSource,
    pub read_only: bool,
}

/// What is mounted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountSource {
    /// A file or directory of the node (a volume, a Pod file) bound at the
    /// target.
    Bind(PathBuf),
    /// A fresh, empty, memory-backed directory (the Pod's private /tmp).
    Tmpfs,
}

/// A started container process, as the monitor recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    /// The container's main process on the node.
    pub pid: i32,
    /// Its start time in clock ticks since boot (`/proc/<pid>/stat` field
    /// 22): together with the PID it names the process even after PIDs
    /// wrap around.
    pub start_ticks: u64,
    /// RFC 3339, for `state.running.startedAt`.
    pub started_at: String,
}

/// How a container instance ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// The exit code; 128 + N when killed by signal N (what a shell and
    /// Kubernetes show).
    pub exit_code: i32,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// `Completed`, `Error` or `StartError`, as `state.terminated.reason`.
    pub reason: String,
    /// Why it could not start, for `StartError`.
    pub message: Option<String>,
    /// RFC 3339.
    pub finished_at: String,
}

impl ExitRecord {
    /// The record of a process that ended with `status`.
    pub fn from_status(status: std::process::ExitStatus) -> ExitRecord {
        let (exit_code, signal) = match (status.code(), status.signal()) {
            (Some(code), _) => (code, None),
            (None, Some(signal)) => (128 + signal, Some(signal)),
            (None, None) => (255, None),
        };
        ExitRecord {
            exit_code,
            signal,
            reason: if exit_code == 0 { "Completed" } else { "Error" }.into(),
            message: None,
            finished_at: now_rfc3339(),
        }
    }
}

/// Now, as Kubernetes writes times: RFC 3339 UTC, whole seconds.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Writes `value` as JSON so that a reader sees all of it or nothing:
/// a temporary file, flushed, renamed over the target.
pub fn write_json_atomically<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(&serde_json::to_vec(value).map_err(std::io::Error::other)?)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Reads a JSON file written by [`write_json_atomically`]; `None` when it
/// does not exist (yet).
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> std::io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(std::io::Error::other),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The start time (clock ticks since boot) of a live process, `None` when
/// there is no such process or it is a zombie.
pub fn process_start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ppid ...": comm may hold spaces, so split after ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is the state (field 3); starttime is field 22.
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// The monitor's `main`: runs one container instance to its end. Errors
/// before the container started are written as a `StartError` exit record
/// too, so that the agent always learns what happened.
pub fn main(spec_path: &Path) -> anyhow::Result<()> {
    let spec: MonitorSpec = read_json(spec_path)
        .with_context(|| format!("reading {}", spec_path.display()))?
        .with_context(|| format!("{} does not exist", spec_path.display()))?;
    let log = Arc::new(Mutex::new(
        CriLog::open(&spec.log_path, spec.log_max_bytes)
            .with_context(|| format!("opening {}", spec.log_path.display()))?,
    ));
    let outcome = run_container(&spec, &log);
    let record = match outcome {
        Ok(record) => record,
        Err(error) => {
            let message = format!("{error:#}");
            if let Ok(mut log) = log.lock() {
                log.line("stderr", message.as_bytes(), true);
            }
            ExitRecord {
                exit_code: START_ERROR_EXIT_CODE,
                signal: None,
                reason: "StartError".into(),
                message: Some(message),
                finished_at: now_rfc3339(),
            }
        }
    };
    write_json_atomically(&spec.exit_path, &record)
        .with_context(|| format!("writing {}", spec.exit_path.display()))
}

/// Starts the container, copies its output into the log until it exits
/// and returns how it ended.
fn run_container(spec: &MonitorSpec, log: &Arc<Mutex<CriLog>>) -> anyhow::Result<ExitRecord> {
    anyhow::ensure!(!spec.argv.is_empty(), "no command to run");
    if let Some(netns) = &spec.netns {
        let file = File::open(netns)
            .with_context(|| format!("opening the Pod's network namespace {}", netns.display()))?;
        setns(&file, CloneFlags::CLONE_NEWNET).context("joining the Pod's network namespace")?;
    }
    for m in &spec.mounts {
        if let MountSource::Bind(path) = &m.source {
            anyhow::ensure!(
                path.exists(),
                "mount source {} does not exist",
                path.display()
            );
        }
    }
    let plan = MountPlan::new(spec)?;
    let hostname = spec.hostname.clone();
    let working_dir = CString::new(spec.working_dir.clone().unwrap_or_else(|| "/".into()))
        .context("workingDir holds a NUL byte")?;

    let attach = spec.attach.as_ref().map(Attach::prepare).transpose()?;
    let tty = attach.as_ref().is_some_and(|a| a.pty.is_some());
    let mut command = Command::new(&spec.argv[0]);
    command
        .args(&spec.argv[1..])
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)));
    match &attach {
        Some(a) => a.wire(&mut command)?,
        None => {
            command
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
        }
    }
    // SAFETY: the monitor has one thread, so nothing between fork and exec
    // can find a lock held by another thread; each step is a system call
    // on data prepared above.
    unsafe {
        command.pre_exec(move || {
            // Its own process group: the agent can signal the container
            // and everything it started at once.
            nix::unistd::setsid()?;
            if tty {
                // The terminal (stdin by now) becomes its controlling one.
                crate::server::enter::set_controlling_tty(0, 0)?;
            }
            unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS)?;
            nix::unistd::sethostname(&hostname)?;
            plan.apply()?;
            nix::unistd::chdir(working_dir.as_c_str())?;
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(|error| {
        if error.kind() == std::io::ErrorKind::NotFound {
            anyhow::anyhow!(
                "exec: {:?}: executable file not found in $PATH (or a mount target is missing): {error}",
                spec.argv[0]
            )
        } else {
            anyhow::anyhow!("starting {:?}: {error}", spec.argv[0])
        }
    })?;
    // The container holds its ends of the pipes and terminal now; the
    // monitor's copies would keep them open after it exits.
    drop(command);
    let pid = child.id() as i32;
    let record = ProcessRecord {
        pid,
        start_ticks: process_start_ticks(pid).unwrap_or(0),
        started_at: now_rfc3339(),
    };
    write_json_atomically(&spec.pid_path, &record)
        .with_context(|| format!("writing {}", spec.pid_path.display()))?;

    let copiers: Vec<_> = [
        (
            "stdout",
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ),
        (
            "stderr",
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ),
    ]
    .into_iter()
    .filter_map(|(stream, pipe)| pipe.map(|p| (stream, p)))
    .map(|(stream, pipe)| {
        let log = Arc::clone(log);
        std::thread::spawn(move || copy_lines(stream, pipe, &log))
    })
    .collect::<Vec<_>>();
    let copiers = match attach {
        Some(attach) => {
            let mut all = copiers;
            all.extend(attach.serve(Arc::clone(log)));
            all
        }
        None => copiers,
    };
    let status = child.wait().context("waiting for the container")?;
    // In a real container the end of its first process ends every other
    // process of the container (the kernel empties its PID namespace).
    // Here: its process group. That also closes the pipes, so the copiers
    // below finish.
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    for copier in copiers {
        let _ = copier.join();
    }
    Ok(ExitRecord::from_status(status))
}

/// The monitor's side of an attachable container.
struct Attach {
    spec: AttachSpec,
    /// The monitor's own handle on the stdin fifo: a writer that keeps the
    /// container from reading end-of-file between sessions (dropped on
    /// `close-stdin`), and, with a terminal, the reader that forwards to it.
    keeper: Arc<Mutex<Option<File>>>,
    /// The terminal's two ends (master, slave), with `tty`.
    pty: Option<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)>,
}

impl Attach {
    /// Makes the fifos (anew: an earlier instance may have left them) and
    /// the terminal.
    fn prepare(spec: &AttachSpec) -> anyhow::Result<Attach> {
        std::fs::create_dir_all(&spec.dir)
            .with_context(|| format!("creating {}", spec.dir.display()))?;
        for name in ["stdin", "ctl"] {
            let path = spec.dir.join(name);
            let _ = std::fs::remove_file(&path);
            nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600))
                .with_context(|| format!("creating the fifo {}", path.display()))?;
        }
        let keeper = OpenOptions::new()
            .read(true)
            .write(true)
            .open(spec.dir.join("stdin"))
            .context("opening the stdin fifo")?;
        let pty = if spec.tty {
            Some(crate::server::enter::open_pty().context("opening a terminal")?)
        } else {
            None
        };
        Ok(Attach {
            spec: spec.clone(),
            keeper: Arc::new(Mutex::new(Some(keeper))),
            pty,
        })
    }

    /// The container's stdio: the terminal, or the fifo and pipes.
    fn wire(&self, command: &mut Command) -> anyhow::Result<()> {
        match &self.pty {
            Some((_, slave)) => {
                command
                    .stdin(Stdio::from(slave.try_clone()?))
                    .stdout(Stdio::from(slave.try_clone()?))
                    .stderr(Stdio::from(slave.try_clone()?));
            }
            None => {
                // Does not block: the keeper is a writer already.
                let stdin = File::open(self.spec.dir.join("stdin"))
                    .context("opening the stdin fifo for the container")?;
                command
                    .stdin(Stdio::from(stdin))
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
            }
        }
        Ok(())
    }

    /// After the start: the threads that carry input and control, and with
    /// a terminal, its output into the log.
    fn serve(self, log: Arc<Mutex<CriLog>>) -> Vec<std::thread::JoinHandle<()>> {
        let mut copiers = Vec::new();
        let master = self.pty.map(|(master, slave)| {
            drop(slave); // the container holds it now
            File::from(master)
        });
        if let Some(master) = &master {
            // Terminal output, as it comes (a prompt has no newline).
            if let Ok(out) = master.try_clone() {
                copiers.push(std::thread::spawn(move || copy_chunks(out, &log)));
            }
            // Input from sessions into the terminal.
            let input = self
                .keeper
                .lock()
                .ok()
                .and_then(|k| k.as_ref().and_then(|f| f.try_clone().ok()));
            if let (Some(mut input), Ok(mut to_pty)) = (input, master.try_clone()) {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut input, &mut to_pty);
                });
            }
        }
        let keeper = Arc::clone(&self.keeper);
        let stdin_once = self.spec.stdin_once;
        let resize_target = master.as_ref().and_then(|m| m.try_clone().ok());
        if let Ok(ctl) = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.spec.dir.join("ctl"))
        {
            std::thread::spawn(move || {
                for line in BufReader::new(ctl).lines().map_while(Result::ok) {
                    let words: Vec<&str> = line.split_whitespace().collect();
                    match words.as_slice() {
                        ["close-stdin"] if stdin_once => {
                            if let Ok(mut k) = keeper.lock() {
                                k.take();
                            }
                        }
                        ["resize", w, h] => {
                            if let (Some(m), Ok(w), Ok(h)) =
                                (&resize_target, w.parse::<u16>(), h.parse::<u16>())
                            {
                                let size = nix::pty::Winsize {
                                    ws_row: h,
                                    ws_col: w,
                                    ws_xpixel: 0,
                                    ws_ypixel: 0,
                                };
                                use std::os::fd::AsRawFd as _;
                                // SAFETY: a valid descriptor and a live Winsize.
                                let _ = unsafe {
                                    crate::server::enter::set_window_size(m.as_raw_fd(), &size)
                                };
                            }
                        }
                        _ => {}
                    }
                }
            });
        }
        copiers
    }
}

/// Copies a terminal's output into the log as it comes: complete lines,
/// then what is left of the chunk as a partial line.
fn copy_chunks(mut from: File, log: &Mutex<CriLog>) {
    let mut buffer = vec![0u8; 4096];
    loop {
        // Linux reports the other side closing as EIO.
        let n = match from.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut chunk = &buffer[..n];
        if let Ok(mut log) = log.lock() {
            while !chunk.is_empty() {
                match chunk.iter().position(|b| *b == b'\n') {
                    Some(end) => {
                        let line = &chunk[..end];
                        log.line("stdout", line.strip_suffix(b"\r").unwrap_or(line), true);
                        chunk = &chunk[end + 1..];
                    }
                    None => {
                        log.line("stdout", chunk, false);
                        chunk = &[];
                    }
                }
            }
        }
    }
}

/// Copies one output stream of the container into the log, line by line.
fn copy_lines(stream: &'static str, pipe: Box<dyn Read + Send>, log: &Mutex<CriLog>) {
    let mut reader = BufReader::with_capacity(CriLog::MAX_LINE, pipe);
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        // Read at most MAX_LINE bytes: a longer line is logged in parts.
        let read = (&mut reader)
            .take(CriLog::MAX_LINE as u64)
            .read_until(b'\n', &mut line);
        match read {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let complete = line.last() == Some(&b'\n');
                let content = line.strip_suffix(b"\n").unwrap_or(&line);
                if let Ok(mut log) = log.lock() {
                    log.line(stream, content, complete);
                }
            }
        }
    }
}

/// The mounts of a container, prepared before `fork` and applied after it.
struct MountPlan {
    steps: Vec<MountStep>,
}

struct MountStep {
    /// The source path, or `None` for tmpfs.
    source: Option<CString>,
    target: PathBuf,
    /// Whether the source is a directory (decides what to create when the
    /// target does not exist).
    source_is_dir: bool,
    read_only: bool,
}

/// `path` with the links of its existing part resolved (`/var/run/x` ->
/// `/run/x` when /var/run links to /run); the part that does not exist yet
/// is kept as written.
fn through_links(path: &std::path::Path) -> PathBuf {
    let mut existing = path;
    let mut missing = vec![];
    while !existing.exists() {
        let (Some(parent), Some(name)) = (existing.parent(), existing.file_name()) else {
            return path.to_path_buf();
        };
        missing.push(name);
        existing = parent;
    }
    let mut resolved = std::fs::canonicalize(existing).unwrap_or_else(|_| existing.to_path_buf());
    for name in missing.into_iter().rev() {
        resolved.push(name);
    }
    resolved
}

impl MountPlan {
    /// Orders the mounts: the bind mounts first, while every source is
    /// still visible by its path (a test's data directory may be under
    /// /tmp), then the private tmpfs mounts, then the bind mounts that go
    /// *inside* one of those (a volume mounted at /tmp/cache), whose sources
    /// must then not be under a tmpfs target themselves.
    ///
    /// Sources are resolved by path inside the new mount namespace: a file
    /// descriptor opened before `unshare` would name a mount of the old
    /// namespace, which mount(2) refuses (EINVAL).
    fn new(spec: &MonitorSpec) -> anyhow::Result<MountPlan> {
        // Targets are compared as the kernel will walk them: on Debian
        // /var/run is a link to /run, so /var/run/secrets/... lies inside
        // the container's /run tmpfs, and must be mounted after it (else it
        // would be made on the node's /run, then hidden). Only the order
        // uses the resolved paths; each mount keeps its own target.
        let tmpfs_targets: Vec<PathBuf> = spec
            .mounts
            .iter()
            .filter(|m| m.source == MountSource::Tmpfs)
            .map(|m| through_links(&m.target))
            .collect();
        let inside_tmpfs = |m: &Mount| {
            let target = through_links(&m.target);
            m.source != MountSource::Tmpfs && tmpfs_targets.iter().any(|t| target.starts_with(t))
        };
        let binds_first = spec
            .mounts
            .iter()
            .filter(|m| m.source != MountSource::Tmpfs && !inside_tmpfs(m));
        let tmpfs = spec
            .mounts
            .iter()
            .filter(|m| m.source == MountSource::Tmpfs);
        let binds_inside = spec.mounts.iter().filter(|m| inside_tmpfs(m));
        let steps = binds_first
            .chain(tmpfs)
            .chain(binds_inside)
            .map(|m| {
                let (source, source_is_dir) = match &m.source {
                    MountSource::Bind(path) => (
                        Some(CString::new(path.as_os_str().as_encoded_bytes())?),
                        path.is_dir(),
                    ),
                    MountSource::Tmpfs => (None, true),
                };
                Ok(MountStep {
                    source,
                    target: m.target.clone(),
                    source_is_dir,
                    read_only: m.read_only,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(MountPlan { steps })
    }

    /// Runs in the container's process, inside its new mount namespace.
    fn apply(&self) -> std::io::Result<()> {
        // Our mounts must not propagate back to the node (the new namespace
        // starts as a copy whose mounts may be "shared" with the node's).
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )?;
        // Each bind source is opened now, before any tmpfs goes up: a
        // source under /tmp (a test's data directory) would be hidden by
        // the container's own /tmp. Binding from /proc/self/fd/N reaches
        // it whatever is mounted over its path since.
        let sources: Vec<Option<std::os::fd::OwnedFd>> = self
            .steps
            .iter()
            .map(|step| {
                step.source
                    .as_ref()
                    .map(|source| {
                        nix::fcntl::open(
                            source.as_c_str(),
                            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
                            nix::sys::stat::Mode::empty(),
                        )
                        .map_err(std::io::Error::from)
                    })
                    .transpose()
            })
            .collect::<std::io::Result<_>>()?;
        for (step, opened) in self.steps.iter().zip(&sources) {
            if !step.target.exists() {
                // A mount point the node does not have: create it (an empty
                // directory or file; a real image would have it).
                if step.source_is_dir {
                    std::fs::create_dir_all(&step.target)?;
                } else {
                    if let Some(parent) = step.target.parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    File::create(&step.target)?;
                }
            }
            match opened {
                Some(fd) => {
                    use std::os::fd::AsRawFd as _;
                    let source = format!("/proc/self/fd/{}", fd.as_raw_fd());
                    mount(
                        Some(source.as_str()),
                        &step.target,
                        None::<&str>,
                        MsFlags::MS_BIND | MsFlags::MS_REC,
                        None::<&str>,
                    )?;
                    if step.read_only {
                        mount(
                            None::<&str>,
                            &step.target,
                            None::<&str>,
                            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                            None::<&str>,
                        )?;
                    }
                }
                None => mount(
                    Some("tmpfs"),
                    &step.target,
                    Some("tmpfs"),
                    MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                    Some("mode=1777"),
                )?,
            }
        }
        Ok(())
    }
}

/// A container's log in the CRI format, the one `kubectl logs` is served
/// from on every node (`/var/log/pods/...` with containerd):
///
/// ```text
/// 2026-12-02T17:45:29.123456789Z stdout F 10.244.1.3 - - "GET / HTTP/1.1" 200
/// ```
///
/// time, stream, `F` for a full line or `P` for a part of a longer one,
/// then the content.
pub struct CriLog {
    path: PathBuf,
    file: File,
    written: u64,
    max_bytes: u64,
}

impl CriLog {
    /// Longer lines are split into `P` parts of this size (containerd's
    /// default is 16 KiB too).
    pub const MAX_LINE: usize = 16 * 1024;

    pub fn open(path: &Path, max_bytes: u64) -> std::io::Result<CriLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let written = file.metadata()?.len();
        Ok(CriLog {
            path: path.to_path_buf(),
            file,
            written,
            max_bytes,
        })
    }

    /// Appends one line; past the size cap the file becomes `<log>.1`
    /// (replacing an older one) and a new file starts.
    pub fn line(&mut self, stream: &str, content: &[u8], complete: bool) {
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let tag = if complete { "F" } else { "P" };
        let mut entry = Vec::with_capacity(content.len() + 48);
        entry.extend_from_slice(format!("{time} {stream} {tag} ").as_bytes());
        entry.extend_from_slice(content);
        entry.push(b'\n');
        if self.written > 0 && self.written + entry.len() as u64 > self.max_bytes {
            self.rotate();
        }
        if self.file.write_all(&entry).is_ok() {
            self.written += entry.len() as u64;
        }
    }

    fn rotate(&mut self) {
        let mut old = self.path.clone().into_os_string();
        old.push(".1");
        if std::fs::rename(&self.path, &old).is_ok() {
            if let Ok(file) = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
            {
                self.file = file;
                self.written = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_records_follow_the_shell_convention() {
        let killed = std::process::ExitStatus::from_raw(9); // raw wait status: signal 9
        let record = ExitRecord::from_status(killed);
        assert_eq!((record.exit_code, record.signal), (137, Some(9)));
        assert_eq!(record.reason, "Error");
        let ok = ExitRecord::from_status(std::process::ExitStatus::from_raw(0));
        assert_eq!((ok.exit_code, ok.reason.as_str()), (0, "Completed"));
        let three = ExitRecord::from_status(std::process::ExitStatus::from_raw(3 << 8));
        assert_eq!(three.exit_code, 3);
    }

    #[test]
    fn cri_log_lines_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut log = CriLog::open(&path, 120).unwrap();
        log.line("stdout", b"hello", true);
        log.line("stderr", b"part", false);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].ends_with(" stdout F hello"), "{text}");
        assert!(lines[1].ends_with(" stderr P part"), "{text}");
        assert!(chrono::DateTime::parse_from_rfc3339(lines[0].split(' ').next().unwrap()).is_ok());
        // Past 120 bytes the file rotates.
        log.line("stdout", b"third line that does not fit", true);
        let rotated = std::fs::read_to_string(dir.path().join("0.log.1")).unwrap();
        assert_eq!(rotated, text);
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains("third line"));
    }

    #[test]
    fn start_ticks_of_this_process() {
        let me = std::process::id() as i32;
        assert!(process_start_ticks(me).is_some());
        assert_eq!(process_start_ticks(i32::MAX), None);
    }
}
