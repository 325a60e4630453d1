//! Real components as child processes, for tests.
//!
//! Tests talk to the same binaries a user runs. A test gets an
//! [`ApiServer`] on a free loopback port with a fresh data directory, and
//! may start a [`Component`] (the controller, later the node agent) against
//! it. Each is killed by its PID when dropped, so a failing test leaves
//! nothing running.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The repository's root (the Cargo workspace).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e lives in the workspace")
        .to_path_buf()
}

/// Where cargo puts the binaries of the running test's profile
/// (`target/debug`), found from the test executable's own path
/// (`target/debug/deps/<test>`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_path_buf()
}

/// Builds the workspace's binaries when one of `binaries` is missing:
/// cargo only builds the binaries of the package under test.
pub fn ensure_built(binaries: &[&str]) {
    // The lab (`e2e`) builds its cluster with kubeadm-lite, and its
    // images and Pods with the CNI plugin and the echo server.
    let lab = ["kubeadm-lite", "kube-lite-cni", "kube-lite-echo"];
    let binaries: Vec<&str> = if binaries.contains(&"e2e") {
        binaries.iter().chain(lab.iter()).copied().collect()
    } else {
        binaries.to_vec()
    };
    static BUILD: Mutex<()> = Mutex::new(());
    let _one_build_at_a_time = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if binaries.iter().any(|b| !bin_dir().join(b).exists()) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let mut build = Command::new(cargo);
        build.args(["build", "--workspace", "--bins"]);
        if bin_dir().file_name() == Some("release".as_ref()) {
            build.arg("--release");
        }
        let status = build.status().expect("running cargo build");
        assert!(status.success(), "cargo build --workspace --bins failed");
    }
    for b in binaries {
        assert!(
            bin_dir().join(b).exists(),
            "no {b} binary in {}",
            bin_dir().display()
        );
    }
}

/// A loopback port nobody is listening on right now.
///
/// The port comes from below the kernel's ephemeral range: one that
/// `bind(0)` hands out and the test lets go can be taken, before the
/// server binds it, as the source port of any outgoing connection (a
/// kubectl of another test), and the server fails with EADDRINUSE. Each
/// call tries the next port of a sequence that starts at a place chosen
/// by the process ID, so concurrent tests get different ports.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOWEST: u32 = 10_000;
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .filter(|&start| start > LOWEST + 1_000)
        .unwrap_or(32_768);
    let span = ephemeral_start - LOWEST;
    let start = std::process::id().wrapping_mul(7_919);
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (LOWEST + start.wrapping_add(n) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between {LOWEST} and {ephemeral_start}");
}

/// A running component process, killed by PID when dropped.
pub struct Component {
    child: Child,
    pub name: String,
}

impl Component {
    /// Starts `binary` (from [`bin_dir`]) with `args`; its log goes to the
    /// test's stderr, filtered by `RUST_LOG` (default `warn`).
    pub fn start(binary: &str, args: &[String]) -> Component {
        ensure_built(&[binary]);
        let log = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
        let child = Command::new(bin_dir().join(binary))
            .args(args)
            .env("RUST_LOG", log)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {binary}: {e}"));
        Component {
            child,
            name: binary.to_string(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process at once (SIGKILL): a crash, not a clean stop.
    pub fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The apiserver on a free loopback port.
pub struct ApiServer {
    pub process: Component,
    pub url: String,
    pub data_dir: PathBuf,
}

impl ApiServer {
    pub fn start(data_dir: &Path) -> ApiServer {
        Self::start_with(data_dir, &[])
    }

    /// Starts it with extra flags (`--watch-history 5`, ...).
    pub fn start_with(data_dir: &Path, extra_args: &[&str]) -> ApiServer {
        let port = free_port();
        let mut args = vec![
            "--listen".to_string(),
            format!("127.0.0.1:{port}"),
            "--data-dir".into(),
            data_dir.display().to_string(),
        ];
        args.extend(extra_args.iter().map(|a| a.to_string()));
        let process = Component::start("apiserver", &args);
        let server = ApiServer {
            process,
            url: format!("http://127.0.0.1:{port}"),
            data_dir: data_dir.to_path_buf(),
        };
        server.wait_ready();
        server
    }

    /// Kills the process at once (SIGKILL): a crash, not a clean stop.
    pub fn crash(self) {
        self.process.kill();
    }

    fn wait_ready(&self) {
        let addr = self.url.trim_start_matches("http://");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(mut s) = std::net::TcpStream::connect(addr) {
                use std::io::{Read, Write};
                let _ =
                    s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                let mut answer = String::new();
                let _ = s.read_to_string(&mut answer);
                if answer.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("apiserver at {} did not become ready", self.url);
    }
}

/// An apiserver serving HTTPS on a free loopback port, with a CA of its
/// own, and kubeconfigs for whoever a test needs to be.
pub struct SecureApiServer {
    pub server: ApiServer,
    pub ca: api::pki::Ca,
    dir: PathBuf,
}

impl SecureApiServer {
    /// Makes a CA and the apiserver's certificate under `dir/pki`, and
    /// starts the apiserver with them (data in `dir/data`).
    pub fn start(dir: &Path) -> SecureApiServer {
        let pki = dir.join("pki");
        std::fs::create_dir_all(&pki).expect("creating the test PKI dir");
        let ca = api::pki::Ca::generate().expect("a test CA");
        let serving = ca
            .issue(&api::pki::CertRequest::server(
                "kube-apiserver",
                &api::pki::apiserver_names(),
                &["127.0.0.1".parse().expect("an IP")],
            ))
            .expect("the apiserver's certificate");
        let write = |name: &str, text: &str| {
            let path = pki.join(name);
            std::fs::write(&path, text).expect("writing the test PKI");
            path.display().to_string()
        };
        let ca_file = write("ca.crt", ca.cert_pem());
        let cert_file = write("apiserver.crt", &serving.cert_pem);
        let key_file = write("apiserver.key", &serving.key_pem);
        let port = free_port();
        let args: Vec<String> = [
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            &dir.join("data").display().to_string(),
            "--tls-cert-file",
            &cert_file,
            "--tls-private-key-file",
            &key_file,
            "--client-ca-file",
            &ca_file,
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        let process = Component::start("apiserver", &args);
        let server = ApiServer {
            process,
            url: format!("https://127.0.0.1:{port}"),
            data_dir: dir.join("data"),
        };
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !crate::pki::https_ready(addr, ca.cert_pem()) {
            assert!(
                Instant::now() < deadline,
                "apiserver at {} did not become ready",
                server.url
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        SecureApiServer {
            server,
            ca,
            dir: dir.to_path_buf(),
        }
    }

    /// A kubeconfig (written under the test's dir) for a client
    /// certificate of `user` in `groups`.
    pub fn kubeconfig(&self, user: &str, groups: &[&str]) -> PathBuf {
        let credentials = self
            .ca
            .issue(&api::pki::CertRequest::client(user, groups))
            .expect("a client certificate");
        let path = self
            .dir
            .join(format!("{}.kubeconfig", user.replace(':', "-")));
        let text = api::pki::kubeconfig(
            "test",
            &self.server.url,
            self.ca.cert_pem(),
            user,
            &credentials,
            Some("default"),
        );
        std::fs::write(&path, text).expect("writing a test kubeconfig");
        path
    }

    /// The administrator's kubeconfig (`system:masters`).
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.kubeconfig("kubernetes-admin", &[api::user::SYSTEM_MASTERS])
    }
}

/// The real kubectl, installed on first use. Tests run as threads of one
/// process, so the install happens once, not once per test.
pub fn kubectl() -> PathBuf {
    static KUBECTL: OnceLock<PathBuf> = OnceLock::new();
    KUBECTL.get_or_init(find_or_install_kubectl).clone()
}

fn find_or_install_kubectl() -> PathBuf {
    if let Some(path) = std::env::var_os("KUBECTL") {
        return PathBuf::from(path);
    }
    let tools = workspace_root().join(".tools");
    let kubectl = tools.join("kubectl");
    if kubectl.exists() {
        return kubectl;
    }
    let script = [
        workspace_root().join("scripts/get-kubectl.sh"),
        workspace_root().join("../shared/tools/get-kubectl"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .expect("kubectl is not installed and no get-kubectl script was found; set KUBECTL");
    let status = std::process::Command::new("bash")
        .arg(&script)
        .arg(&tools)
        .status()
        .expect("running get-kubectl");
    assert!(status.success(), "get-kubectl failed: {status}");
    assert!(kubectl.exists(), "get-kubectl did not install {kubectl:?}");
    kubectl
}

/// Polls `check` every 100 ms until it returns `Some`, or panics with
/// `what` after `secs` seconds: every test's bounded wait for something
/// the cluster does on its own time.
pub fn eventually<T>(secs: u64, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// [`eventually`] for async checks, in tokio tests.
pub async fn eventually_async<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
