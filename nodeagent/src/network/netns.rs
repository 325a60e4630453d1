//! Network namespaces: a Pod's private network stack.
//!
//! A network namespace is a complete copy of the kernel's network stack:
//! its own links, addresses, routes, netfilter rules and sysctls under
//! /proc/sys/net. A Pod's containers share one (that is why they reach each
//! other on localhost); the kubelet's runtime creates it before any container
//! runs and hands it to the CNI plugin.
//!
//! A namespace lives as long as something refers to it: a process inside,
//! an open file descriptor, or a bind mount of its `/proc/<tid>/ns/net`
//! file. `ip netns add NAME` uses the bind mount: it mounts the namespace
//! onto the empty file `/run/netns/NAME`, so it outlives any process and any
//! tool can enter it by path (`ip netns exec NAME ...`, `nsenter
//! --net=/run/netns/NAME`). [`create`] and [`delete`] do exactly that, so
//! `ip netns list` shows kube-lite's Pods.
//!
//! Working inside a namespace is the subtle part. `setns(2)` switches the
//! namespace of the *calling thread* only, and a netlink socket belongs to
//! the namespace its creator was in when it was created. A tokio worker
//! thread runs many tasks, so it must never be moved: [`run_in`] starts a
//! dedicated std thread, `setns`es it into the namespace, opens the netlink
//! connection there and drives it with its own current-thread runtime.

use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use rtnetlink::Handle;

use super::{NetworkError, Result};

/// Where `ip netns` keeps named network namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Path of the namespace file of `name`.
pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

fn validate(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 255 || name.contains('/') || name == "." || name == ".." {
        return Err(NetworkError::InvalidNamespaceName(name.to_string()));
    }
    Ok(())
}

/// Whether `name` is a live named namespace (its file is a mounted nsfs
/// file, not a leftover empty file).
pub fn exists(name: &str) -> bool {
    validate(name).is_ok() && is_namespace_mount(&path(name))
}

fn is_namespace_mount(file: &Path) -> bool {
    nix::sys::statfs::statfs(file)
        .map(|stat| stat.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
        .unwrap_or(false)
}

/// Creates the named namespace `name` like `ip netns add`, or does nothing
/// if it exists. Returns the path of its file.
pub fn create(name: &str) -> Result<PathBuf> {
    validate(name)?;
    let file = path(name);
    if is_namespace_mount(&file) {
        return Ok(file);
    }
    make_run_dir_shared()?;
    File::create(&file).map_err(|source| NetworkError::Io {
        action: format!("creating namespace file {}", file.display()),
        source,
    })?;
    // unshare() moves the calling thread into a fresh namespace, so do it on
    // a throwaway thread; the bind mount keeps the namespace alive after the
    // thread ends. /proc/thread-self, not /proc/self: the latter is the
    // main thread, which stays where it was.
    let target = file.clone();
    let mounted = std::thread::Builder::new()
        .name(format!("netns-add-{name}"))
        .spawn(move || -> Result<()> {
            unshare(CloneFlags::CLONE_NEWNET).map_err(|source| NetworkError::System {
                action: "unshare(CLONE_NEWNET)".into(),
                source,
            })?;
            mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|source| NetworkError::System {
                action: format!("bind-mounting the new namespace onto {}", target.display()),
                source,
            })
        })
        .map_err(|source| NetworkError::Io {
            action: "starting a thread to create a namespace".into(),
            source,
        })?
        .join()
        .map_err(|_| NetworkError::NamespaceThreadPanicked(name.to_string()))?;
    if let Err(error) = mounted {
        let _ = std::fs::remove_file(&file);
        return Err(error);
    }
    Ok(file)
}

/// Makes /run/netns a shared mount point, as `ip netns add` does, so that
/// namespace mounts made later also appear in mount namespaces copied from
/// this one (and unmounting here unmounts there, letting namespaces die).
fn make_run_dir_shared() -> Result<()> {
    std::fs::create_dir_all(NETNS_RUN_DIR).map_err(|source| NetworkError::Io {
        action: format!("creating {NETNS_RUN_DIR}"),
        source,
    })?;
    let make_shared = || {
        mount(
            None::<&str>,
            NETNS_RUN_DIR,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match make_shared() {
        Ok(()) => Ok(()),
        // Not a mount point yet: bind it onto itself first, then retry.
        Err(nix::errno::Errno::EINVAL) => mount(
            Some(NETNS_RUN_DIR),
            NETNS_RUN_DIR,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .and_then(|()| make_shared())
        .map_err(|source| NetworkError::System {
            action: format!("making {NETNS_RUN_DIR} a shared mount"),
            source,
        }),
        Err(source) => Err(NetworkError::System {
            action: format!("making {NETNS_RUN_DIR} a shared mount"),
            source,
        }),
    }
}

/// Deletes the named namespace like `ip netns delete`; a missing one is
/// fine. The namespace itself disappears once no process is left inside
/// (its links, including the Pod end of a veth pair, go with it).
pub fn delete(name: &str) -> Result<()> {
    validate(name)?;
    let file = path(name);
    match umount2(&file, MntFlags::MNT_DETACH) {
        // EINVAL: not a mount (leftover file); ENOENT: already gone.
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(source) => {
            return Err(NetworkError::System {
                action: format!("unmounting {}", file.display()),
                source,
            })
        }
    }
    match std::fs::remove_file(&file) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(NetworkError::Io {
            action: format!("removing {}", file.display()),
            source,
        }),
    }
}

/// Names of all named namespaces (everything in /run/netns).
pub fn list() -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(NETNS_RUN_DIR) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(NetworkError::Io {
                action: format!("listing {NETNS_RUN_DIR}"),
                source,
            })
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

/// Opens the namespace file of `name`, e.g. to move a link into it.
pub fn open(name: &str) -> Result<File> {
    validate(name)?;
    open_path(&path(name))
}

/// Opens a namespace file by path: a name under /run/netns, or a file
/// elsewhere (containerd mounts the namespaces it makes under its state
/// directory and passes the path to the CNI plugin as `CNI_NETNS`).
pub fn open_path(file: &Path) -> Result<File> {
    if !is_namespace_mount(file) {
        return Err(NetworkError::Io {
            action: format!("opening network namespace {}", file.display()),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} is not a namespace", file.display()),
            ),
        });
    }
    File::open(file).map_err(|source| NetworkError::Io {
        action: format!("opening {}", file.display()),
        source,
    })
}

/// Runs `work` with a netlink handle inside namespace `name` and returns
/// its result, without blocking the calling async task.
///
/// `work` runs on a dedicated thread with its own current-thread tokio
/// runtime; the future need not be `Send`. Anything `work` does on that
/// thread (netlink, reading /proc/sys/net, connecting sockets) happens in the
/// namespace; `spawn_blocking` or `tokio::fs` would run on other threads
/// and so in the *wrong* namespace: use `std::fs` there.
pub async fn run_in<F, Fut, T>(name: &str, work: F) -> Result<T>
where
    F: FnOnce(Handle) -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    validate(name)?;
    run_in_path(&path(name), work).await
}

/// Like [`run_in`], for a namespace file given by path.
pub async fn run_in_path<F, Fut, T>(file: &Path, work: F) -> Result<T>
where
    F: FnOnce(Handle) -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    let namespace = open_path(file)?;
    let name = file.display().to_string();
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let thread_name = name.clone();
    std::thread::Builder::new()
        .name("netns".to_string())
        .spawn(move || {
            let _ = sender.send(enter_and_run(&thread_name, namespace, work));
        })
        .map_err(|source| NetworkError::Io {
            action: format!("starting a thread for namespace {name:?}"),
            source,
        })?;
    receiver
        .await
        .map_err(|_| NetworkError::NamespaceThreadPanicked(name))?
}

/// Like [`run_in`], for callers that are not async (tests, start-up code):
/// blocks the calling thread until `work` is done.
pub fn run_in_blocking<F, Fut, T>(name: &str, work: F) -> Result<T>
where
    F: FnOnce(Handle) -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    let namespace = open(name)?;
    let thread_name = name.to_string();
    std::thread::Builder::new()
        .name(format!("netns-{name}"))
        .spawn(move || enter_and_run(&thread_name, namespace, work))
        .map_err(|source| NetworkError::Io {
            action: format!("starting a thread for namespace {name:?}"),
            source,
        })?
        .join()
        .map_err(|_| NetworkError::NamespaceThreadPanicked(name.to_string()))?
}

/// On the dedicated thread: enter the namespace, then open the netlink
/// socket (it binds to the namespace current at creation) and run `work`.
fn enter_and_run<F, Fut, T>(name: &str, namespace: File, work: F) -> Result<T>
where
    F: FnOnce(Handle) -> Fut,
    Fut: Future<Output = T>,
{
    setns(&namespace, CloneFlags::CLONE_NEWNET).map_err(|source| NetworkError::System {
        action: format!("entering network namespace {name:?} (setns)"),
        source,
    })?;
    drop(namespace);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| NetworkError::Io {
            action: "building a runtime for a namespace thread".into(),
            source,
        })?;
    runtime.block_on(async move {
        let (connection, handle, _) =
            rtnetlink::new_connection().map_err(|source| NetworkError::Io {
                action: format!("opening a netlink socket in namespace {name:?}"),
                source,
            })?;
        tokio::spawn(connection);
        Ok(work(handle).await)
    })
}
