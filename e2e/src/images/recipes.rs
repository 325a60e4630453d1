//! How each lab image's root filesystem and config are made, from Debian
//! packages and kube-lite's own programs only.
//!
//! | image | root filesystem | runs |
//! |-------|-----------------|------|
//! | `registry.k8s.io/pause` | `/pause`, a static C program (`e2e/images/pause.c`) | `/pause` as 65535 |
//! | `busybox` | Debian's `busybox-static` and a link per applet | `sh` |
//! | `nginx` | Debian minbase + `nginx-light` and `curl` (the official image has curl too), laid out like the official image | `nginx -g 'daemon off;'` |
//! | `kube-lite/echo` | Debian minbase + `curl` and `kube-lite-echo` (agnhost style) | `kube-lite-echo` |
//!
//! Each recipe also says what its result depends on ([`Recipe::inputs`]):
//! the cache key. Debian's packages are taken as the mirror serves them
//! at build time; bump [`REVISION`] to rebuild everything.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::oci::{pack_layer, ImageConfig};
use super::{io_error, run, ImageError};

/// Changes when a recipe changes in a way its inputs do not show.
pub const REVISION: &str = "1";

/// Debian's release the images are built from.
pub const SUITE: &str = "bookworm";

/// The mirror `mmdebstrap` downloads from; `KUBE_LITE_DEBIAN_MIRROR`
/// overrides it (a local mirror or apt-cacher).
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

/// `PATH` as the official Debian- and Alpine-based images set it.
pub const IMAGE_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const PAUSE_C: &str = include_str!("../../images/pause.c");
const NGINX_CONF: &str = include_str!("../../images/nginx/nginx.conf");
const NGINX_DEFAULT_CONF: &str = include_str!("../../images/nginx/default.conf");
const NGINX_INDEX_HTML: &str = include_str!("../../images/nginx/index.html");
const NGINX_50X_HTML: &str = include_str!("../../images/nginx/50x.html");

/// The users every image knows (the official images have root and
/// nobody; nginx's has its own user, 101).
const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";

/// One image's way of being made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipe {
    Pause,
    Busybox,
    Nginx,
    Echo,
}

/// A recipe's result: layers (uncompressed tars, bottom first) and config.
#[derive(Debug)]
pub struct Made {
    pub layers: Vec<PathBuf>,
    pub config: ImageConfig,
}

impl Recipe {
    /// Everything the result depends on, as text hashed into the cache key.
    pub fn inputs(self, bin_dir: &Path) -> Result<String, ImageError> {
        let debian = format!("{SUITE} {}", mirror());
        Ok(match self {
            Recipe::Pause => format!("pause {REVISION}\n{PAUSE_C}"),
            Recipe::Busybox => format!("busybox {REVISION} {debian} busybox-static"),
            Recipe::Nginx => format!(
                "nginx {REVISION} {debian} {}\n{NGINX_CONF}{NGINX_DEFAULT_CONF}{NGINX_INDEX_HTML}{NGINX_50X_HTML}",
                NGINX_PACKAGES.join(",")
            ),
            Recipe::Echo => {
                let binary = echo_binary(bin_dir)?;
                let bytes = fs::read(&binary).map_err(io_error(format!("reading {}", binary.display())))?;
                format!(
                    "echo {REVISION} {debian} {} {}",
                    ECHO_PACKAGES.join(","),
                    super::sha256_hex(&bytes)
                )
            }
        })
    }

    /// Makes the layers in `work` (an empty scratch directory).
    pub fn make(self, work: &Path, bin_dir: &Path) -> Result<Made, ImageError> {
        match self {
            Recipe::Pause => pause(work),
            Recipe::Busybox => busybox(work),
            Recipe::Nginx => nginx(work),
            Recipe::Echo => echo(work, bin_dir),
        }
    }
}

fn mirror() -> String {
    std::env::var("KUBE_LITE_DEBIAN_MIRROR").unwrap_or_else(|_| DEFAULT_MIRROR.to_string())
}

/// `mmdebstrap --variant=VARIANT --include=PACKAGES SUITE DIR "deb MIRROR SUITE main"`,
/// without documentation, man pages and translations (as the slim
/// images leave them out), and without device nodes (the runtime
/// mounts /dev).
fn debian_rootfs(variant: &str, packages: &[&str], dir: &Path) -> Result<(), ImageError> {
    let source = format!("deb {} {SUITE} main", mirror());
    let include = format!("--include={}", packages.join(","));
    let mut command = Command::new("mmdebstrap");
    command
        .arg(format!("--variant={variant}"))
        .arg(include)
        .args(["--format=directory", "--quiet"]);
    for excluded in [
        "/usr/share/doc/*",
        "/usr/share/man/*",
        "/usr/share/locale/*",
        "/usr/share/info/*",
    ] {
        command.arg(format!("--dpkgopt=path-exclude={excluded}"));
    }
    command.arg(SUITE).arg(dir).arg(source);
    eprintln!(
        "images: mmdebstrap --variant={variant} --include={} {SUITE} {}",
        packages.join(","),
        dir.display()
    );
    run(
        &format!("installing {} into a root filesystem", packages.join(", ")),
        &mut command,
    )?;
    empty_dir(&dir.join("dev"))
}

fn empty_dir(dir: &Path) -> Result<(), ImageError> {
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(io_error(format!("emptying {}", dir.display())))?;
    }
    make_dir(dir, 0o755)
}

fn make_dir(dir: &Path, mode: u32) -> Result<(), ImageError> {
    fs::create_dir_all(dir).map_err(io_error(format!("creating {}", dir.display())))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
        .map_err(io_error(format!("setting the mode of {}", dir.display())))
}

fn write(path: &Path, text: &str) -> Result<(), ImageError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_error(format!("creating {}", parent.display())))?;
    }
    fs::write(path, text).map_err(io_error(format!("writing {}", path.display())))
}

fn link(target: &str, at: &Path) -> Result<(), ImageError> {
    if at.symlink_metadata().is_ok() {
        fs::remove_file(at).map_err(io_error(format!("replacing {}", at.display())))?;
    }
    symlink(target, at).map_err(io_error(format!("linking {} to {target}", at.display())))
}

/// The directory every minimal root filesystem has: `/tmp` (sticky,
/// writable by all), `/root`, `/etc/passwd` and `/etc/group`.
fn base_files(rootfs: &Path) -> Result<(), ImageError> {
    make_dir(&rootfs.join("tmp"), 0o1777)?;
    make_dir(&rootfs.join("root"), 0o700)?;
    write(&rootfs.join("etc/passwd"), PASSWD)?;
    write(&rootfs.join("etc/group"), GROUP)
}

fn layer(rootfs: &Path, work: &Path, name: &str) -> Result<PathBuf, ImageError> {
    let tar = work.join(format!("{name}.tar"));
    pack_layer(rootfs, &tar)?;
    Ok(tar)
}

fn strings(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|part| part.to_string()).collect()
}

/// `cc -static -Os -s pause.c`: 0.7 MB, needs nothing from the image.
fn pause(work: &Path) -> Result<Made, ImageError> {
    let source = work.join("pause.c");
    write(&source, PAUSE_C)?;
    let rootfs = work.join("rootfs");
    make_dir(&rootfs, 0o755)?;
    eprintln!(
        "images: cc -static -Os -s -o {}/pause pause.c",
        rootfs.display()
    );
    run(
        "compiling the pause program (needs gcc and libc6-dev)",
        Command::new("cc")
            .args(["-static", "-Os", "-s", "-o"])
            .arg(rootfs.join("pause"))
            .arg(&source),
    )?;
    Ok(Made {
        layers: vec![layer(&rootfs, work, "pause")?],
        config: ImageConfig {
            entrypoint: strings(&["/pause"]),
            user: Some("65535:65535".into()),
            ..ImageConfig::default()
        },
    })
}

/// Debian's static busybox and one symbolic link per applet, where
/// `busybox --list-full` says it lives (`bin/sh`, `usr/bin/wget`, ...).
fn busybox(work: &Path) -> Result<Made, ImageError> {
    let extracted = work.join("extract");
    debian_rootfs("extract", &["busybox-static"], &extracted)?;
    let rootfs = work.join("rootfs");
    make_dir(&rootfs.join("bin"), 0o755)?;
    let busybox = rootfs.join("bin/busybox");
    fs::copy(extracted.join("bin/busybox"), &busybox)
        .map_err(io_error("copying busybox out of busybox-static"))?;
    let applets = run(
        "listing busybox's applets",
        Command::new(&busybox).arg("--list-full"),
    )?;
    for applet in applets
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "bin/busybox")
    {
        let at = rootfs.join(applet);
        if let Some(parent) = at.parent() {
            make_dir(parent, 0o755)?;
        }
        link("/bin/busybox", &at)?;
    }
    base_files(&rootfs)?;
    make_dir(&rootfs.join("home"), 0o755)?;
    make_dir(&rootfs.join("var"), 0o755)?;
    Ok(Made {
        layers: vec![layer(&rootfs, work, "busybox")?],
        config: ImageConfig {
            cmd: strings(&["sh"]),
            env: strings(&[IMAGE_PATH]),
            ..ImageConfig::default()
        },
    })
}

/// Debian's nginx with the official image's layout: `nginx.conf` that
/// includes `/etc/nginx/conf.d/*.conf`, the default server in
/// `conf.d/default.conf` serving `/usr/share/nginx/html`, user `nginx`
/// (101), and the logs linked to the container's stdout and stderr, where
/// `kubectl logs` reads them.
/// nginx and, as in the official `nginx:alpine`, `curl`: the lesson
/// curls Services from inside an nginx Pod.
const NGINX_PACKAGES: &[&str] = &["nginx-light", "curl"];

fn nginx(work: &Path) -> Result<Made, ImageError> {
    let rootfs = work.join("rootfs");
    debian_rootfs("minbase", NGINX_PACKAGES, &rootfs)?;
    let etc = rootfs.join("etc");
    append(
        &etc.join("passwd"),
        "nginx:x:101:101:nginx user:/nonexistent:/bin/false\n",
    )?;
    append(&etc.join("group"), "nginx:x:101:\n")?;
    write(&etc.join("nginx/nginx.conf"), NGINX_CONF)?;
    write(&etc.join("nginx/conf.d/default.conf"), NGINX_DEFAULT_CONF)?;
    let html = rootfs.join("usr/share/nginx/html");
    write(&html.join("index.html"), NGINX_INDEX_HTML)?;
    write(&html.join("50x.html"), NGINX_50X_HTML)?;
    let logs = rootfs.join("var/log/nginx");
    make_dir(&logs, 0o755)?;
    link("/dev/stdout", &logs.join("access.log"))?;
    link("/dev/stderr", &logs.join("error.log"))?;
    Ok(Made {
        layers: vec![layer(&rootfs, work, "nginx")?],
        config: ImageConfig {
            cmd: strings(&["nginx", "-g", "daemon off;"]),
            env: strings(&[IMAGE_PATH]),
            stop_signal: Some("SIGQUIT".into()),
            exposed_ports: strings(&["80/tcp"]),
            ..ImageConfig::default()
        },
    })
}

fn append(path: &Path, text: &str) -> Result<(), ImageError> {
    let mut existing =
        fs::read_to_string(path).map_err(io_error(format!("reading {}", path.display())))?;
    if !existing.contains(text) {
        existing.push_str(text);
    }
    write(path, &existing)
}

/// What the echo image carries besides its program: like Kubernetes' own
/// test image agnhost (whose `netexec` it plays), a shell and `curl`, so
/// that tests reach Services from inside a Pod.
const ECHO_PACKAGES: &[&str] = &["curl"];

/// The program `kube-lite-echo` (built with the workspace, against this
/// machine's Debian, the image's suite), stripped, on Debian minbase with
/// [`ECHO_PACKAGES`].
fn echo(work: &Path, bin_dir: &Path) -> Result<Made, ImageError> {
    let binary = echo_binary(bin_dir)?;
    let rootfs = work.join("rootfs");
    debian_rootfs("minbase", ECHO_PACKAGES, &rootfs)?;
    make_dir(&rootfs.join("usr/local/bin"), 0o755)?;
    let target = rootfs.join("usr/local/bin/kube-lite-echo");
    run(
        "stripping kube-lite-echo",
        Command::new("strip").arg("-o").arg(&target).arg(&binary),
    )?;
    Ok(Made {
        layers: vec![layer(&rootfs, work, "echo")?],
        config: ImageConfig {
            entrypoint: strings(&["/usr/local/bin/kube-lite-echo"]),
            env: strings(&[IMAGE_PATH]),
            exposed_ports: strings(&["8080/tcp", "8080/udp"]),
            ..ImageConfig::default()
        },
    })
}

fn echo_binary(bin_dir: &Path) -> Result<PathBuf, ImageError> {
    let binary = bin_dir.join("kube-lite-echo");
    if binary.exists() {
        Ok(binary)
    } else {
        Err(ImageError::MissingBinary(binary))
    }
}
