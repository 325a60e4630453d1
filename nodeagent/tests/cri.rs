//! The CRI client against a real containerd (issue 14): a containerd of
//! its own (root, state and socket in a temporary directory), asked for
//! its version and its images over `runtime.v1`. Needs root and Debian's
//! `containerd` package.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nodeagent::cri::{v1, Runtime};

/// A containerd started by this test, stopped by PID when dropped.
struct Containerd {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Containerd {
    fn start() -> Containerd {
        assert!(
            nix::unistd::geteuid().is_root(),
            "containerd needs root: run the tests as root"
        );
        let dir = tempfile::tempdir().unwrap();
        let p = |name: &str| dir.path().join(name).display().to_string();
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{socket}"
[plugins."io.containerd.grpc.v1.cri"]
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    conf_dir = "{cni}"
"#,
            root = p("root"),
            state = p("state"),
            socket = p("containerd.sock"),
            cni = p("cni"),
        );
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("containerd (Debian's containerd package) must be installed");
        let containerd = Containerd { child, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !containerd.dir.path().join("containerd.sock").exists() {
            assert!(
                Instant::now() < deadline,
                "containerd did not start: {}",
                containerd.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        containerd
    }

    fn endpoint(&self) -> String {
        format!(
            "unix://{}",
            self.dir.path().join("containerd.sock").display()
        )
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }
}

#[tokio::test]
async fn containerd_answers_version_over_runtime_v1() {
    let containerd = Containerd::start();
    let mut runtime = Runtime::connect(&containerd.endpoint()).await.unwrap();
    let version = runtime
        .version()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", containerd.log()));
    assert_eq!(version.runtime_name, "containerd");
    assert_eq!(version.runtime_api_version, "v1");
    assert!(!version.runtime_version.is_empty());
    let images = runtime
        .images
        .list_images(v1::ListImagesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(images.images.is_empty(), "a fresh containerd has no images");
}

#[tokio::test]
async fn a_wrong_endpoint_is_refused_naming_it() {
    let error = Runtime::connect("/run/containerd/containerd.sock")
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "/run/containerd/containerd.sock: not a unix:// endpoint"
    );
}
