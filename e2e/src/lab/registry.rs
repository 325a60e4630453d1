//! The lab's image registry: Debian's `docker-registry` on the VirtualBox
//! host's address, 192.168.56.1:5000, standing in for Docker Hub and
//! registry.k8s.io.
//!
//! Every node's containerd lists it as the mirror of both (hosts.toml in
//! `certs.d/docker.io` and `certs.d/registry.k8s.io`), so `nginx:alpine`
//! is pulled as `https://192.168.56.1:5000/v2/library/nginx/manifests/alpine`
//! and the lesson's manifests run unchanged.
//!
//! Who may call it: anyone on the host-only LAN may pull, anonymously,
//! as anyone may pull public images from Docker Hub; nobody may push.
//! It serves TLS with a certificate from its own CA (`registry/ca.crt`,
//! which the nodes' containerd trusts) and runs read-only. It is filled
//! ("seeded") before that, by a second, writable instance on a loopback
//! port that only this machine can reach, with `skopeo copy` from the
//! image layouts [`crate::images`] builds.
//!
//! A second instance serves the same images as a *private* registry, on
//! 192.168.56.1:5001: it asks for a user name and password (HTTP basic
//! auth, `htpasswd` with bcrypt), as a company's registry would. A Pod
//! pulls from it only with an `imagePullSecrets` Secret holding them
//! ([`PRIVATE_REGISTRY_USER`], [`PRIVATE_REGISTRY_PASSWORD`]); without,
//! the pull fails with `401 Unauthorized`.

use std::net::{IpAddr, TcpListener};
use std::os::unix::ffi::OsStrExt;

use super::*;
use crate::images::{BuiltImage, ImageError};

/// Where the nodes pull from: the host's LAN address, the registry port.
pub const REGISTRY_ADDRESS: &str = "192.168.56.1:5000";

/// The private registry: the same images, behind a password.
pub const PRIVATE_REGISTRY_ADDRESS: &str = "192.168.56.1:5001";
/// Its user. A lab fixture on the host-only LAN, written down on purpose:
/// students type it into a Secret.
pub const PRIVATE_REGISTRY_USER: &str = "student";
pub const PRIVATE_REGISTRY_PASSWORD: &str = "kube-lite-lab";

/// Component name of the serving registry (PID and log files).
const REGISTRY: &str = "docker-registry";
/// Component name of the private registry.
const PRIVATE: &str = "docker-registry-private";
/// Component name of the seeding registry.
const SEEDER: &str = "docker-registry-seed";
/// The program, from Debian's `docker-registry` package.
const REGISTRY_PROGRAM: &str = "/usr/bin/docker-registry";
/// How long a registry gets to answer `/v2/`.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The registry's directory under the lab's: config, certificates, data.
pub fn registry_dir(dir: &Path) -> PathBuf {
    dir.join("registry")
}

/// The CA the nodes' containerd trusts for the registry.
pub fn registry_ca(dir: &Path) -> PathBuf {
    registry_dir(dir).join("ca.crt")
}

/// Fills the registry with `images` unless it already holds exactly
/// these builds; serving stops meanwhile, and is not restarted here.
pub fn seed_registry(dir: &Path, images: &[BuiltImage]) -> Result<(), LabError> {
    let marker = registry_dir(dir).join("seeded");
    let mut want = String::new();
    for built in images {
        let index = built.layout.dir.join("index.json");
        let text =
            std::fs::read(&index).map_err(io_error(format!("reading {}", index.display())))?;
        want.push_str(&format!(
            "{} {}\n",
            built.image.repository,
            crate::images::sha256_hex(&text)
        ));
    }
    if std::fs::read_to_string(&marker).is_ok_and(|have| have == want) {
        return Ok(());
    }
    stop_registry(dir, REGISTRY);
    stop_registry(dir, PRIVATE);
    let port = free_loopback_port()?;
    let address = format!("127.0.0.1:{port}");
    let config = write_config(dir, "config-seed.yml", &address, false, None)?;
    start_registry(dir, SEEDER, &config)?;
    let pushed = (|| -> Result<(), LabError> {
        wait_ready(dir, SEEDER, &format!("http://{address}/v2/"), None)?;
        for built in images {
            for tag in built.image.tags {
                eprintln!(
                    "lab: skopeo copy oci:{}:{tag} docker://{address}/{}:{tag}",
                    built.layout.dir.display(),
                    built.image.repository
                );
                crate::images::run(
                    &format!("pushing {}", built.image.pod_name(tag)),
                    Command::new("skopeo")
                        .args([
                            "--insecure-policy",
                            "copy",
                            "--quiet",
                            "--dest-tls-verify=false",
                        ])
                        .arg(format!("oci:{}", built.layout.reference(tag)))
                        .arg(format!(
                            "docker://{address}/{}:{tag}",
                            built.image.repository
                        )),
                )
                .map_err(image_error)?;
            }
        }
        Ok(())
    })();
    stop_registry(dir, SEEDER);
    pushed?;
    std::fs::write(&marker, want).map_err(io_error(format!("writing {}", marker.display())))
}

/// Serves the registry read-only with TLS on [`REGISTRY_ADDRESS`], unless
/// it runs already; waits until it answers.
pub fn serve_registry(dir: &Path) -> Result<(), LabError> {
    ensure_certificate(dir)?;
    let htpasswd = ensure_htpasswd(dir)?;
    for (name, file, address, auth) in [
        (REGISTRY, "config.yml", REGISTRY_ADDRESS, None),
        (
            PRIVATE,
            "config-private.yml",
            PRIVATE_REGISTRY_ADDRESS,
            Some(htpasswd.as_path()),
        ),
    ] {
        let config = write_config(dir, file, address, true, auth)?;
        if !recorded_pid(dir, name).is_some_and(|pid| runs_binary(pid, Path::new(REGISTRY_PROGRAM)))
        {
            start_registry(dir, name, &config)?;
        }
        let login = match auth {
            Some(_) => format!("{PRIVATE_REGISTRY_USER}:{PRIVATE_REGISTRY_PASSWORD}@"),
            None => String::new(),
        };
        wait_ready(
            dir,
            name,
            &format!("https://{login}{address}/v2/"),
            Some(&registry_ca(dir)),
        )?;
    }
    Ok(())
}

/// The private registry's password file (bcrypt, made by Apache's
/// `htpasswd`, Debian package apache2-utils); made once per lab.
fn ensure_htpasswd(dir: &Path) -> Result<PathBuf, LabError> {
    let path = registry_dir(dir).join("htpasswd");
    if path.exists() {
        return Ok(path);
    }
    let line = crate::images::run(
        "hashing the private registry's password (htpasswd, Debian package apache2-utils)",
        Command::new("htpasswd").args(["-Bbn", PRIVATE_REGISTRY_USER, PRIVATE_REGISTRY_PASSWORD]),
    )
    .map_err(image_error)?;
    std::fs::write(&path, line).map_err(io_error(format!("writing {}", path.display())))?;
    Ok(path)
}

/// The registry's TLS certificate, for 192.168.56.1, from its own CA;
/// made once per lab.
fn ensure_certificate(dir: &Path) -> Result<(), LabError> {
    let registry = registry_dir(dir);
    let (cert, key) = (registry.join("tls.crt"), registry.join("tls.key"));
    if cert.exists() && key.exists() && registry_ca(dir).exists() {
        return Ok(());
    }
    std::fs::create_dir_all(&registry)
        .map_err(io_error(format!("creating {}", registry.display())))?;
    let failed = |e: api::pki::PkiError| image_error(ImageError::Certificate(e.to_string()));
    let ca = api::pki::Ca::generate_named("kube-lite lab registry").map_err(failed)?;
    let host: IpAddr = REGISTRY_ADDRESS
        .split(':')
        .next()
        .and_then(|h| h.parse().ok())
        .expect("REGISTRY_ADDRESS is IP:PORT");
    let issued = ca
        .issue(&api::pki::CertRequest::server("registry", &[], &[host]))
        .map_err(failed)?;
    for (path, text) in [
        (&registry_ca(dir), ca.cert_pem().to_string()),
        (&cert, issued.cert_pem),
        (&key, issued.key_pem),
    ] {
        std::fs::write(path, text).map_err(io_error(format!("writing {}", path.display())))?;
    }
    Ok(())
}

/// docker-registry's configuration: storage under the lab's directory,
/// read-only with TLS for serving, writable on loopback for seeding; with
/// `auth`, basic auth against that htpasswd file.
fn write_config(
    dir: &Path,
    name: &str,
    address: &str,
    serving: bool,
    auth: Option<&Path>,
) -> Result<PathBuf, LabError> {
    let registry = registry_dir(dir);
    let data = registry.join("data");
    std::fs::create_dir_all(&data).map_err(io_error(format!("creating {}", data.display())))?;
    let mut config = format!(
        "version: 0.1\n\
         log:\n  level: warn\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: false\n\
         \x20 maintenance:\n    uploadpurging:\n      enabled: false\n    readonly:\n      enabled: {serving}\n\
         http:\n  addr: {address}\n",
        data = data.display(),
    );
    if serving {
        config.push_str(&format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            registry.join("tls.crt").display(),
            registry.join("tls.key").display()
        ));
    }
    if let Some(htpasswd) = auth {
        config.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: kube-lite-lab\n    path: {}\n",
            htpasswd.display()
        ));
    }
    let path = registry.join(name);
    std::fs::write(&path, config).map_err(io_error(format!("writing {}", path.display())))?;
    Ok(path)
}

fn start_registry(dir: &Path, name: &str, config: &Path) -> Result<(), LabError> {
    if !Path::new(REGISTRY_PROGRAM).exists() {
        return Err(LabError::MissingBinary {
            binary: "docker-registry (Debian package docker-registry)".into(),
            dir: PathBuf::from("/usr/bin"),
        });
    }
    let options = LabOptions {
        workers: 0,
        dir: dir.to_path_buf(),
        bin_dir: PathBuf::new(),
    };
    ensure_running(
        &options,
        &Component {
            name: name.to_string(),
            program: PathBuf::from(REGISTRY_PROGRAM),
            netns: None,
            args: vec!["serve".into(), config.display().to_string()],
        },
    )
}

/// Stops a registry this lab started (by its PID file).
pub(super) fn stop_registry(dir: &Path, name: &str) {
    if let Some(pid) = recorded_pid(dir, name) {
        if runs_binary(pid, Path::new(REGISTRY_PROGRAM)) {
            stop_processes(vec![pid]);
        }
        reap(pid);
    }
    let _ = std::fs::remove_file(pid_file(dir, name));
}

/// The docker-registry processes serving from this lab's registry
/// directory (what `down` ends when the PID files are lost).
pub(super) fn registry_pids(dir: &Path) -> Vec<i32> {
    let registry = registry_dir(dir);
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| lab_binary_of(*pid) == Some(REGISTRY))
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            cmdline
                .split(|byte| *byte == 0)
                .any(|arg| Path::new(std::ffi::OsStr::from_bytes(arg)).starts_with(&registry))
        })
        .collect()
}

/// Polls `GET url` with curl until it answers 200.
fn wait_ready(dir: &Path, name: &str, url: &str, ca: Option<&Path>) -> Result<(), LabError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let mut curl = Command::new("curl");
        curl.args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "2",
        ]);
        if let Some(ca) = ca {
            curl.arg("--cacert").arg(ca);
        }
        let code = curl.arg(url).output().ok().map(|o| o.stdout);
        if code.as_deref() == Some(b"200") {
            return Ok(());
        }
        if Instant::now() > deadline {
            let log = log_file(dir, name);
            return Err(image_error(ImageError::RegistryNotReady {
                address: url.to_string(),
                timeout: READY_TIMEOUT,
                tail: log_tail(&log, 20),
                log,
            }));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn free_loopback_port() -> Result<u16, LabError> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(io_error("finding a free loopback port"))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(io_error("finding a free loopback port"))
}

fn image_error(error: ImageError) -> LabError {
    LabError::Images(error)
}
