//! Entering a container: a new process that sees what the container sees.
//!
//! A container is not a thing the kernel knows; it is a process whose
//! namespaces differ from the node's: its own network stack (the Pod's IP),
//! its own hostname (the Pod's name), its own mounts (volumes, a private
//! `/tmp`). `kubectl exec` does not talk to the running program; the
//! runtime starts *another* process and puts it in the same namespaces,
//! with the same environment and working directory. That is what
//! `nsenter --target PID --net --uts --mount` does, and what runc does for
//! `runc exec`.
//!
//! Joining happens in the child between `fork` and `exec` (`setns` in a
//! `pre_exec` hook): the agent's own threads must never change namespace.
//! Only system calls run there; the namespace files, the environment and
//! the directory are read before the fork. The PID namespace is left
//! alone: kube-lite's containers share the node's.
//!
//! With `tty=true` the process gets a pseudo-terminal instead of pipes:
//! the slave side becomes its stdin/stdout/stderr and its controlling
//! terminal (a new session, `TIOCSCTTY`), so shells print prompts, `vi`
//! works and Ctrl-C reaches the foreground job. The agent keeps the master
//! side, and terminal resizes from the client become `TIOCSWINSZ` on it.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::process::Stdio;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt, Winsize};
use nix::sched::CloneFlags;
use tokio::io::unix::AsyncFd;
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};

/// The namespaces an exec joins, in the order it joins them: the mount
/// namespace last, since `/proc` paths are no longer needed after it.
const NAMESPACES: [(&str, CloneFlags); 3] = [
    ("net", CloneFlags::CLONE_NEWNET),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// Where an exec runs.
pub enum ExecTarget {
    /// In the namespaces of a process (a [`super::table::ContainerTable`]
    /// entry: a process a test started, with no runtime around it).
    Namespaces(ContainerView),
    /// In a runc container: `runc --root ROOT exec ID command...`, which
    /// puts the command in all the container's namespaces and its cgroup,
    /// as its user, with its capabilities, environment and working
    /// directory (the container's process spec) - what containerd's shim
    /// runs for a CRI exec.
    Runc {
        root: std::path::PathBuf,
        container_id: String,
    },
}

/// The runc program: on the agent's PATH, else Debian's place.
fn runc_program() -> std::path::PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("runc"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| "/usr/sbin/runc".into())
}

/// What a process needs to look like it runs in the container whose main
/// process is `pid`: read from `/proc/<pid>` before anything is forked.
pub struct ContainerView {
    namespaces: Vec<(File, CloneFlags)>,
    env: Vec<(OsString, OsString)>,
    cwd: CString,
}

impl ContainerView {
    /// Reads the namespaces, environment and working directory of `pid`.
    pub fn of(pid: i32) -> io::Result<ContainerView> {
        let proc = format!("/proc/{pid}");
        let namespaces = NAMESPACES
            .iter()
            .map(|(name, flag)| Ok((File::open(format!("{proc}/ns/{name}"))?, *flag)))
            .collect::<io::Result<_>>()?;
        let environ = std::fs::read(format!("{proc}/environ"))?;
        let env = environ
            .split(|b| *b == 0)
            .filter_map(|var| {
                let eq = var.iter().position(|b| *b == b'=')?;
                Some((
                    OsString::from_vec(var[..eq].to_vec()),
                    OsString::from_vec(var[eq + 1..].to_vec()),
                ))
            })
            .collect();
        let cwd = std::fs::read_link(format!("{proc}/cwd"))
            .ok()
            .and_then(|p| CString::new(p.into_os_string().into_vec()).ok())
            .unwrap_or_else(|| c"/".into());
        Ok(ContainerView {
            namespaces,
            env,
            cwd,
        })
    }
}

/// Which standard streams the client wants (the query of the exec URL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Streams {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// A started exec: the process and its side of the streams.
pub struct Exec {
    /// Killed (and reaped by tokio) if dropped while running.
    pub child: Child,
    pub io: ExecIo,
}

/// The agent's ends of the process's streams.
pub enum ExecIo {
    Pipes {
        stdin: Option<ChildStdin>,
        stdout: Option<ChildStdout>,
        stderr: Option<ChildStderr>,
    },
    /// stdout and stderr are both the terminal.
    Tty(Pty),
}

/// Starts `command` inside the container `target`. `tty_size` (columns,
/// rows) is the terminal's size from the start, so that the command's
/// first look at it is already right.
pub fn spawn(
    target: &ExecTarget,
    command: &[String],
    streams: Streams,
    tty_size: Option<(u16, u16)>,
) -> io::Result<Exec> {
    let Some((program, args)) = command.split_first() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no command given",
        ));
    };
    let (mut cmd, view) = match target {
        ExecTarget::Namespaces(view) => {
            let mut cmd = Command::new(program);
            cmd.args(args)
                .env_clear()
                .envs(view.env.iter().map(|(k, v)| (k, v)));
            (cmd, Some(view))
        }
        ExecTarget::Runc { root, container_id } => {
            let mut cmd = Command::new(runc_program());
            cmd.arg("--root").arg(root).arg("exec");
            if streams.tty {
                // runc makes the container's terminal and copies between
                // it and ours (its stdio), resizing it on SIGWINCH.
                cmd.args(["--tty", "--env", "TERM=xterm"]);
            }
            cmd.arg(container_id).args(command);
            (cmd, None)
        }
    };
    cmd.kill_on_drop(true);
    let pty = if streams.tty {
        let (master, slave) = open_pty()?;
        if let Some((width, height)) = tty_size {
            let size = Winsize {
                ws_row: height,
                ws_col: width,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            // SAFETY: a valid descriptor and a pointer to a live Winsize.
            unsafe { set_window_size(master.as_raw_fd(), &size) }?;
        }
        // Docker and runc do the same: programs need TERM to draw.
        if view.is_some_and(|view| !view.env.iter().any(|(k, _)| k == "TERM")) {
            cmd.env("TERM", "xterm");
        }
        cmd.stdin(Stdio::from(slave.try_clone()?))
            .stdout(Stdio::from(slave.try_clone()?))
            .stderr(Stdio::from(slave));
        Some(master)
    } else {
        cmd.stdin(piped_if(streams.stdin))
            .stdout(piped_if(streams.stdout))
            .stderr(piped_if(streams.stderr));
        // Its own process group, so that ending the exec also ends what
        // it started (`sh -c 'a | b'`).
        cmd.process_group(0);
        None
    };
    let namespaces: Vec<(RawFd, CloneFlags)> = view
        .iter()
        .flat_map(|view| &view.namespaces)
        .map(|(f, flag)| (f.as_raw_fd(), *flag))
        .collect();
    let cwd = view.map(|view| view.cwd.clone());
    let tty = streams.tty;
    // SAFETY: the closure runs in the forked child of a multi-threaded
    // process, so it only makes system calls (setns, chdir, setsid, ioctl)
    // on data prepared above; it allocates nothing and takes no locks.
    unsafe {
        cmd.pre_exec(move || {
            for (fd, flag) in &namespaces {
                nix::sched::setns(std::os::fd::BorrowedFd::borrow_raw(*fd), *flag)?;
            }
            if let Some(cwd) = &cwd {
                nix::unistd::chdir(cwd.as_c_str())?;
            }
            if tty {
                // A new session whose controlling terminal is the pty
                // (stdin is the slave by now).
                nix::unistd::setsid()?;
                set_controlling_tty(0, 0)?;
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    let io = match pty {
        Some(master) => ExecIo::Tty(Pty::new(master)?),
        None => ExecIo::Pipes {
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
        },
    };
    Ok(Exec { child, io })
}

/// SIGKILL to the children of `pid` (a runc exec's command).
pub fn kill_children(pid: i32) {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for child in procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
    {
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        // `pid (comm) state ppid ...`: the comm may hold spaces.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok());
        if ppid == Some(pid) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn piped_if(wanted: bool) -> Stdio {
    if wanted {
        Stdio::piped()
    } else {
        Stdio::null()
    }
}

nix::ioctl_write_int_bad!(set_controlling_tty, nix::libc::TIOCSCTTY);
nix::ioctl_write_ptr_bad!(set_window_size, nix::libc::TIOCSWINSZ, Winsize);

/// A new pseudo-terminal pair, both ends close-on-exec from the start so
/// that no other process the agent starts meanwhile inherits them (a
/// leaked slave would keep the terminal open after the exec ends).
pub(crate) fn open_pty() -> io::Result<(OwnedFd, OwnedFd)> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let slave_path = ptsname_r(&master)?;
    let slave = nix::fcntl::open(
        slave_path.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    // SAFETY: posix_openpt returned a new descriptor that we own alone.
    let master = unsafe { OwnedFd::from_raw_fd(master.into_raw_fd()) };
    Ok((master, slave))
}

/// The agent's side of an exec's terminal, non-blocking on tokio.
pub struct Pty {
    master: AsyncFd<OwnedFd>,
}

impl Pty {
    fn new(master: OwnedFd) -> io::Result<Pty> {
        let flags = OFlag::from_bits_truncate(fcntl(&master, FcntlArg::F_GETFL)?);
        fcntl(&master, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        // SAFETY: an OwnedFd keeps its descriptor open and unchanged for
        // as long as the AsyncFd owns it.
        let master = unsafe { AsyncFd::register(master) }?;
        Ok(Pty { master })
    }

    /// Reads what the process wrote; 0 once the terminal is closed on the
    /// process's side (Linux reports that as EIO).
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.master.readable().await?;
            match guard.try_io(|fd| nix::unistd::read(fd.get_ref(), buf).map_err(io::Error::from)) {
                Ok(Err(e)) if e.raw_os_error() == Some(nix::libc::EIO) => return Ok(0),
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Types `data` into the terminal.
    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let mut guard = self.master.writable().await?;
            match guard.try_io(|fd| nix::unistd::write(fd.get_ref(), data).map_err(io::Error::from))
            {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }

    /// Sets the terminal's size; the process gets SIGWINCH.
    pub fn resize(&self, width: u16, height: u16) -> io::Result<()> {
        let size = Winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: a valid descriptor and a pointer to a live Winsize.
        unsafe { set_window_size(self.master.get_ref().as_fd().as_raw_fd(), &size) }?;
        Ok(())
    }
}
