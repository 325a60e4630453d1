//! The lab's processes: the units' commands started inside a node's
//! network namespace, in their own session, with PID and log files -
//! what systemd does for the units on a VM.

use super::*;

/// Starts what `node`'s units would run, from their files (as systemd
/// does at boot): containerd, the apiserver and controller on the master,
/// the node agent everywhere. Already running ones are left alone.
pub fn start_units(options: &LabOptions, node: &Node) -> Result<(), LabError> {
    start_containerd(options, node)?;
    for component in ["apiserver", "controller", "nodeagent"] {
        start_unit(options, node, component)?;
    }
    Ok(())
}

/// Starts one unit's command of `node`, unless it has no such unit or it
/// runs already.
pub fn start_unit(options: &LabOptions, node: &Node, component: &str) -> Result<(), LabError> {
    let unit = node_layout(&options.dir, node).unit(component);
    if !unit.exists() {
        return Ok(());
    }
    let mut command = kubeadm_lite::units::exec_start(&unit).map_err(|e| LabError::Kubeadm {
        node: node.name.clone(),
        message: e.to_string(),
        log: unit.clone(),
    })?;
    let program = PathBuf::from(command.remove(0));
    let name = if component == "nodeagent" {
        format!("nodeagent-{}", node.name)
    } else {
        component.to_string()
    };
    ensure_running(
        options,
        &Component {
            name,
            program,
            netns: Some(node.netns()),
            args: command,
        },
    )
}

/// A process the lab runs inside a node namespace.
pub(super) struct Component {
    /// Names its log and PID files: `apiserver`, `nodeagent-kl-worker1`.
    pub(super) name: String,
    /// The program, as the unit names it.
    pub(super) program: PathBuf,
    /// The node namespace; `None` is the host's (the registry).
    pub(super) netns: Option<String>,
    pub(super) args: Vec<String>,
}

pub(super) fn pid_file(dir: &Path, component: &str) -> PathBuf {
    dir.join("pids").join(format!("{component}.pid"))
}

pub(super) fn log_file(dir: &Path, component: &str) -> PathBuf {
    dir.join("logs").join(format!("{component}.log"))
}

/// The PID recorded for a component, if any.
pub fn recorded_pid(dir: &Path, component: &str) -> Option<i32> {
    std::fs::read_to_string(pid_file(dir, component))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Starts a component unless the PID file names a live process of the same
/// binary (PIDs are reused: liveness alone is not enough).
pub(super) fn ensure_running(options: &LabOptions, component: &Component) -> Result<(), LabError> {
    let binary_path = component.program.clone();
    if let Some(pid) = recorded_pid(&options.dir, &component.name) {
        if runs_binary(pid, &binary_path) {
            return Ok(());
        }
    }
    for sub in ["logs", "pids"] {
        let d = options.dir.join(sub);
        std::fs::create_dir_all(&d).map_err(io_error(format!("creating {}", d.display())))?;
    }
    let log_path = log_file(&options.dir, &component.name);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io_error(format!("opening {}", log_path.display())))?;
    let log_for_stderr = log
        .try_clone()
        .map_err(io_error(format!("opening {}", log_path.display())))?;
    let mut command = Command::new(&binary_path);
    command
        .args(&component.args)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_for_stderr);
    let place = component.netns.as_deref().unwrap_or("the host namespace");
    match &component.netns {
        Some(netns) => enter_netns(&mut command, netns)?,
        None => own_session(&mut command),
    }
    let child = command
        .spawn()
        .map_err(io_error(format!("starting {} in {place}", component.name)))?;
    let pid_path = pid_file(&options.dir, &component.name);
    std::fs::write(&pid_path, format!("{}\n", child.id()))
        .map_err(io_error(format!("writing {}", pid_path.display())))?;
    eprintln!(
        "lab: started {} in {place} (pid {}, log {})",
        component.name,
        child.id(),
        log_path.display()
    );
    Ok(())
}

/// A command that runs `program` inside the lab node `node`'s network
/// namespace (only that one: see [`enter_netns`]), as a shell on that VM.
pub fn node_command(
    node: &Node,
    program: impl AsRef<std::ffi::OsStr>,
) -> Result<Command, LabError> {
    let mut command = Command::new(program);
    enter_netns(&mut command, &node.netns())?;
    Ok(command)
}

/// Makes `command` start in its own session inside the network namespace
/// `netns`.
///
/// Only the *network* namespace: `ip netns exec` would also give the
/// process a private copy of the mount table, and the network namespaces
/// a node agent creates for its Pods (bind mounts under /run/netns) would
/// then be invisible to everyone else - including the same node agent
/// after a restart. The own session means neither a terminal hangup nor a
/// Ctrl-C sent to `e2e up` reaches it: it lives until `down`.
pub(super) fn enter_netns(command: &mut Command, netns: &str) -> Result<(), LabError> {
    let netns_path = format!("/run/netns/{netns}");
    let netns = File::open(&netns_path).map_err(io_error(format!("opening {netns_path}")))?;
    // SAFETY: between fork and exec the child only makes two system calls
    // (setsid, setns), both async-signal-safe, on a file descriptor opened
    // before the fork.
    unsafe {
        command.pre_exec(move || {
            nix::unistd::setsid()?;
            nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)?;
            Ok(())
        });
    }
    Ok(())
}

/// Makes `command` start in its own session (see [`enter_netns`]).
pub(super) fn own_session(command: &mut Command) {
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid()?;
            Ok(())
        });
    }
}

/// The binary of a component named in `pids/`: `nodeagent-kl-worker1`
/// runs `nodeagent`, `docker-registry` runs `docker-registry`.
pub(super) fn component_binary(component: &str) -> &str {
    component.split("-kl-").next().unwrap_or(component)
}

/// Whether `pid` is a live process whose command line starts with
/// `binary` (a zombie's command line is empty).
pub(super) fn runs_binary(pid: i32, binary: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    argv0 == binary.as_os_str().as_encoded_bytes()
}

/// The file name of a process's executable, if it is one of
/// [`LAB_BINARIES`] (`/proc/<pid>/exe` says "(deleted)" after a rebuild).
pub(super) fn lab_binary_of(pid: i32) -> Option<&'static str> {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let name = exe.file_name()?.to_string_lossy().into_owned();
    let name = name.trim_end_matches(" (deleted)");
    LAB_BINARIES.iter().copied().find(|b| *b == name)
}

/// Asks `GET /readyz` at `addr`; true on a 200.
/// Whether the apiserver answers /readyz over the LAN, from the caller's
/// namespace (the host), with a certificate the lab's CA (in `dir`)
/// signed.
pub fn apiserver_ready(dir: &Path) -> bool {
    let master = Node::all(0).remove(0);
    let Ok(ca) = std::fs::read_to_string(node_layout(dir, &master).ca_cert()) else {
        return false;
    };
    crate::pki::https_ready(SocketAddr::from((MASTER_IP, APISERVER_PORT)), &ca)
}

pub(super) fn wait_apiserver_ready(dir: &Path) -> Result<(), LabError> {
    let deadline = Instant::now() + APISERVER_READY_TIMEOUT;
    while Instant::now() < deadline {
        if apiserver_ready(dir) {
            return Ok(());
        }
        std::thread::sleep(POLL);
    }
    let log = log_file(dir, "apiserver");
    Err(LabError::ApiserverNotReady {
        url: apiserver_url(),
        timeout: APISERVER_READY_TIMEOUT,
        tail: log_tail(&log, 20),
        log,
    })
}

/// The last `lines` lines of a log file (empty if unreadable).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
