//! One lab per machine: the lock its users take turns on, and [`Lab`],
//! the guard a test holds (up when made, down when dropped).

use super::*;

/// An exclusive `flock` on [`LOCK_PATH`], held while a user owns the lab.
/// Released when dropped (the kernel also releases it if the process
/// dies, so a crash never leaves the lab locked).
pub struct LabLock {
    _lock: nix::fcntl::Flock<File>,
}

impl LabLock {
    /// Takes the lock, waiting at most `wait` for the current holder.
    pub fn acquire(wait: Duration) -> Result<LabLock, LabError> {
        let deadline = Instant::now() + wait;
        let mut told = false;
        loop {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(LOCK_PATH)
                .map_err(io_error(format!("opening {LOCK_PATH}")))?;
            match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(LabLock { _lock: lock }),
                Err((_, nix::errno::Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                    if !told {
                        eprintln!("lab: waiting for {LOCK_PATH} (another lab user holds it)");
                        told = true;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Err(LabError::Locked(wait)),
                Err((_, errno)) => {
                    return Err(LabError::Io {
                        context: format!("locking {LOCK_PATH}"),
                        source: errno.into(),
                    })
                }
            }
        }
    }
}

/// How long [`Lab::up`] waits for another test's lab to go away.
pub const TEST_LOCK_WAIT: Duration = Duration::from_secs(20 * 60);

/// The lab as the end-to-end tests hold it: built by [`Lab::up`] under the
/// machine's lab lock, and torn down when dropped - also when the test
/// panics (then the components' last log lines are printed first).
pub struct Lab {
    pub options: LabOptions,
    lock: Option<LabLock>,
}

impl Lab {
    /// Takes the lab lock and brings the lab up. If `up` fails, whatever it
    /// made is removed before the error is returned.
    ///
    /// A lab that is already there was made by `e2e up` (which does not
    /// keep the lock) or left by a killed test: a test must not adopt it and
    /// then tear it down under someone's feet, so that is an error.
    pub fn up(options: LabOptions) -> Result<Lab, LabError> {
        let lock = LabLock::acquire(TEST_LOCK_WAIT)?;
        let nodes: Vec<String> = netns_list()?
            .into_iter()
            .filter(|n| is_node_netns(n))
            .collect();
        if !nodes.is_empty() {
            return Err(LabError::AlreadyUp(nodes));
        }
        let lab = Lab {
            options,
            lock: Some(lock),
        };
        up(&lab.options)?; // on error, dropping `lab` runs down
        Ok(lab)
    }

    /// The apiserver's URL (from the host and every node).
    pub fn server(&self) -> String {
        apiserver_url()
    }

    /// The kubeconfig written for the host (the administrator's).
    pub fn kubeconfig(&self) -> PathBuf {
        kubeconfig_path(&self.options.dir)
    }

    /// A client of the lab's apiserver as its administrator, from
    /// [`Lab::kubeconfig`].
    pub async fn client(&self) -> Result<kube::Client, LabError> {
        client_from(&self.kubeconfig()).await
    }

    /// The PID of a running component (`apiserver`, `controller`,
    /// `nodeagent-worker1`).
    pub fn pid(&self, component: &str) -> Option<i32> {
        recorded_pid(&self.options.dir, component)
    }

    /// Stops a running component as `systemctl stop` would its unit
    /// (SIGTERM, then SIGKILL), and waits until it is gone. Its PID.
    pub fn stop(&self, component: &str) -> Option<i32> {
        let pid = self.pid(component)?;
        stop_processes(vec![pid]);
        Some(pid)
    }

    /// Tears the lab down now and reports how it went, then releases the
    /// lock.
    pub fn down(mut self) -> Result<(), LabError> {
        let result = down(&self.options.dir);
        self.lock = None;
        result
    }

    fn print_logs(&self) {
        let Ok(entries) = std::fs::read_dir(self.options.dir.join("logs")) else {
            return;
        };
        for entry in entries.flatten() {
            eprintln!(
                "---- last lines of {} ----\n{}",
                entry.path().display(),
                log_tail(&entry.path(), 30)
            );
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.lock.is_none() {
            return; // already down
        }
        if std::thread::panicking() {
            self.print_logs();
        }
        if let Err(e) = down(&self.options.dir) {
            eprintln!("lab: tearing down the lab failed: {e}");
        }
    }
}
