//! The nginx image for real: the node's nginx, the catalog's command and
//! environment, the official layout bind-mounted as a Pod's runtime would,
//! in namespaces of its own.
//!
//! Needs root and the node's nginx (Debian `nginx-light`); without either
//! the tests fail. Each test starts nginx with `unshare --mount --uts
//! --net`: private mounts (the bind mounts never show on the machine), its
//! own hostname (the Pod's name) and its own network stack, reached only
//! through that namespace's loopback with `nsenter --net`. The namespaces
//! belong to the nginx processes and vanish with them; an [`IsolatedNginx`]
//! guard kills every process in its network namespace, by PID, also when a
//! test panics.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use nodeagent::images::{BindMount, Catalog, Image, Layout};

/// How long nginx gets to start answering, and to stop.
const TIMEOUT: Duration = Duration::from_secs(10);

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the image tests make mount, UTS and network namespaces and must run as root"
    );
}

/// The catalog's nginx image, whose program must be on the node.
fn nginx_image() -> Image {
    let image = Catalog::builtin()
        .resolve("nginx:1.25")
        .expect("nginx image");
    let program = &image.argv(&[], &[])[0];
    let path = image
        .env
        .iter()
        .find(|(name, _)| name == "PATH")
        .map(|(_, value)| value.clone())
        .expect("the image sets PATH");
    assert!(
        path.split(':')
            .any(|dir| Path::new(dir).join(program).is_file()),
        "the nginx image runs `{program}`, found on no directory of PATH={path}: \
         install Debian's nginx-light on the node"
    );
    image
}

/// nginx started as a Pod's container would be, in fresh namespaces.
struct IsolatedNginx {
    child: Child,
    /// `net:[inode]` of nginx's network namespace, once it has its own.
    netns: Option<String>,
    stdout: PathBuf,
    stderr: PathBuf,
}

/// Quotes a word for `sh`.
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

fn netns_of(pid: i32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/ns/net"))
        .ok()
        .map(|l| l.to_string_lossy().into_owned())
}

/// The processes in the network namespace `netns` (what `ip netns pids`
/// does for a named one).
fn pids_in(netns: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
                .filter(|pid| netns_of(*pid).as_deref() == Some(netns))
                .collect()
        })
        .unwrap_or_default()
}

impl IsolatedNginx {
    /// Runs `image` with hostname `hostname` and `mounts` made in order
    /// (the layout's, then the Pod's volumes), plus a private /tmp.
    fn start(image: &Image, hostname: &str, mounts: &[BindMount], dir: &Path) -> IsolatedNginx {
        let mut script = vec![
            "set -e".to_string(),
            format!("hostname {}", quote(hostname)),
            "ip link set lo up".to_string(),
        ];
        for mount in mounts {
            script.push(format!(
                "mount --bind {} {}",
                quote(&mount.source.to_string_lossy()),
                quote(&mount.target.to_string_lossy())
            ));
        }
        // A Pod's /tmp is its own: nginx's pid file and temp files go there.
        script.push("mount -t tmpfs -o mode=1777 tmpfs /tmp".to_string());
        script.push(r#"exec "$@""#.to_string());
        let stdout = dir.join("nginx.stdout");
        let stderr = dir.join("nginx.stderr");
        let mut command = Command::new("unshare");
        command
            .args(["--mount", "--uts", "--net", "--", "sh", "-c"])
            .arg(script.join("\n"))
            .arg("sh")
            .args(image.argv(&[], &[]))
            .env_clear()
            .envs(image.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap());
        let child = command.spawn().expect("starting unshare");
        let mut nginx = IsolatedNginx {
            child,
            netns: None,
            stdout,
            stderr,
        };
        // Only a namespace that is not ours may ever be emptied by Drop.
        let own = netns_of(std::process::id() as i32).expect("own netns");
        let deadline = Instant::now() + TIMEOUT;
        while nginx.netns.is_none() {
            match netns_of(nginx.pid()) {
                Some(ns) if ns != own => nginx.netns = Some(ns),
                _ => {
                    if let Ok(Some(status)) = nginx.child.try_wait() {
                        panic!("nginx exited at once ({status}): {}", nginx.output());
                    }
                    assert!(Instant::now() < deadline, "unshare made no namespace");
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        nginx
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn output(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            std::fs::read_to_string(&self.stdout).unwrap_or_default(),
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        )
    }

    /// `curl` inside nginx's network namespace, to its loopback; `None`
    /// while nothing answers.
    fn curl(&self, path: &str) -> Option<String> {
        let out = Command::new("nsenter")
            .arg(format!("--net=/proc/{}/ns/net", self.pid()))
            .args(["--", "curl", "-sS", "--max-time", "2"])
            .arg(format!("http://127.0.0.1:80{path}"))
            .output()
            .expect("running nsenter curl");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The answer to `GET path`, waiting for nginx to listen.
    fn get(&mut self, path: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(answer) = self.curl(path) {
                return answer;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("nginx exited ({status}): {}", self.output());
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not answer within {TIMEOUT:?}: {}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops nginx with the image's stop signal and checks that it exits
    /// and takes its namespaces along.
    fn stop(mut self, signal: Signal) {
        kill(Pid::from_raw(self.pid()), signal).expect("signalling nginx");
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "nginx ignored {signal}");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            status.success(),
            "nginx exit status {status}: {}",
            self.output()
        );
        let netns = self.netns.clone().unwrap();
        while !pids_in(&netns).is_empty() {
            assert!(
                Instant::now() < deadline,
                "processes left in {netns}: {:?}",
                pids_in(&netns)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for IsolatedNginx {
    fn drop(&mut self) {
        // Master and workers: everything in the namespace, by PID. With no
        // process left the kernel frees the namespaces (nothing else holds
        // them), and the mounts inside go with the mount namespace.
        if let Some(netns) = &self.netns {
            let deadline = Instant::now() + TIMEOUT;
            loop {
                let pids = pids_in(netns);
                if pids.is_empty() || Instant::now() > deadline {
                    break;
                }
                for pid in pids {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
                let _ = self.child.try_wait();
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lesson's ConfigMap (`examples/lesson/ngx-conf.yml`) as a directory
/// of files, as a ConfigMap volume shows it.
fn lesson_configmap(dir: &Path) -> PathBuf {
    #[derive(serde::Deserialize)]
    struct ConfigMap {
        data: std::collections::BTreeMap<String, String>,
    }
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/lesson/ngx-conf.yml");
    let text = std::fs::read_to_string(&file).unwrap();
    let configmap: ConfigMap = serde_saphyr::from_str(&text).unwrap();
    assert!(configmap.data.contains_key("default.conf"));
    let volume = dir.join("volume-ngx-conf");
    std::fs::create_dir_all(&volume).unwrap();
    for (key, value) in configmap.data {
        std::fs::write(volume.join(key), value).unwrap();
    }
    volume
}

#[test]
fn the_lesson_configmap_over_the_nginx_layout_answers_with_the_pod_s_hostname() {
    require_root();
    let image = nginx_image();
    assert_eq!(image.layout, Layout::Nginx);
    let tmp = tempfile::tempdir().unwrap();
    let mut mounts = image.layout.write(&tmp.path().join("layout")).unwrap();
    // The Pod's volume, mounted after the image's files like the kubelet's.
    mounts.push(BindMount {
        source: lesson_configmap(tmp.path()),
        target: "/etc/nginx/conf.d".into(),
    });
    let pod = "ngx-dep-6d5b9f7c4-x2x8k";
    let mut nginx = IsolatedNginx::start(&image, pod, &mounts, tmp.path());

    let answer = nginx.get("/hello?x=1");
    let lines: Vec<&str> = answer.lines().collect();
    assert_eq!(lines.len(), 4, "{answer}");
    assert_eq!(lines[0], "srv : 127.0.0.1:80");
    assert_eq!(lines[1], format!("host: {pod}"));
    assert_eq!(lines[2], "uri : GET 127.0.0.1 /hello?x=1");
    let date = lines[3].strip_prefix("date: ").expect(lines[3]);
    assert!(
        date.len() == 25 && &date[10..11] == "T" && date[19..].starts_with(['+', '-']),
        "an ISO 8601 time: {date}"
    );
    // The access log is the container's stdout, as in the image; nginx
    // writes it after the answer, so give it a moment (bounded).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let log = loop {
        let log = std::fs::read_to_string(&nginx.stdout).unwrap();
        if log.contains("\"GET /hello?x=1 HTTP/1.1\" 200") || std::time::Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(log.contains("\"GET /hello?x=1 HTTP/1.1\" 200"), "{log}");

    nginx.stop(image.stop_signal);
}

#[test]
fn without_volumes_the_nginx_layout_serves_the_welcome_page() {
    require_root();
    let image = nginx_image();
    let tmp = tempfile::tempdir().unwrap();
    let mounts = image.layout.write(&tmp.path().join("layout")).unwrap();
    let mut nginx = IsolatedNginx::start(&image, "web-0", &mounts, tmp.path());

    let page = nginx.get("/");
    assert!(page.contains("<h1>Welcome to nginx!</h1>"), "{page}");
    // Served by a worker running as www-data: the files are readable.
    let missing = nginx.get("/nope");
    assert!(missing.contains("404 Not Found"), "{missing}");
    let log = std::fs::read_to_string(&nginx.stdout).unwrap();
    assert!(log.contains("\"GET / HTTP/1.1\" 200"), "{log}");
    assert!(log.contains("\"GET /nope HTTP/1.1\" 404"), "{log}");
    // The node's own nginx files stayed as they were.
    let node_conf = std::fs::read_to_string("/etc/nginx/nginx.conf").unwrap();
    assert_ne!(node_conf, nodeagent::images::nginx::NGINX_CONF);

    nginx.stop(image.stop_signal);
}

// ---------------------------------------------------------------------
// The admin's catalog file (no root needed)
// ---------------------------------------------------------------------

fn catalog_file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("images.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn an_admin_catalog_comes_before_the_built_ins() {
    let tmp = tempfile::tempdir().unwrap();
    let path = catalog_file(
        tmp.path(),
        r#"# Old manifests pin nginx 1.x.
images:
  - repository: nginx
    tag: "1.*"
    cmd: [nginx-debug, -g, "daemon off;"]
    layout: nginx
    stopSignal: SIGQUIT
  - repository: registry.example.com/team/worker
    entrypoint: [/usr/local/bin/worker]
    cmd: [--verbose]
    env: [WORKER_MODE=batch, "GREETING=a=b"]
    workingDir: /var/lib/worker
"#,
    );
    let catalog = Catalog::load(&path).expect("a valid catalog");
    let old = catalog.resolve("nginx:1.25").unwrap();
    assert_eq!(old.cmd[0], "nginx-debug");
    assert_eq!(old.layout, Layout::Nginx);
    assert_eq!(old.stop_signal, Signal::SIGQUIT);
    assert_eq!(old.image_id, "kube-lite://docker.io/library/nginx:1.*");
    // Other tags fall through to the built-in entry.
    assert_eq!(catalog.resolve("nginx").unwrap().cmd[0], "nginx");

    let worker = catalog
        .resolve("registry.example.com/team/worker:v2")
        .unwrap();
    assert_eq!(
        worker.argv(&[], &[]),
        ["/usr/local/bin/worker", "--verbose"]
    );
    let env: Vec<(&str, &str)> = worker
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        env,
        [
            // containerd's default, as the image set none
            ("PATH", nodeagent::images::DEFAULT_PATH),
            ("WORKER_MODE", "batch"),
            ("GREETING", "a=b"),
        ]
    );
    assert_eq!(worker.working_dir.as_deref(), Some("/var/lib/worker"));
    assert_eq!(worker.stop_signal, Signal::SIGTERM);
    assert_eq!(
        catalog.known(),
        [
            "nginx:1.*",
            "registry.example.com/team/worker",
            "nginx",
            "busybox",
            "alpine",
            "kube-lite/echo"
        ]
    );
    let err = catalog.resolve("redis").unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "not found in the kube-lite image catalog ({} + built-in)",
            path.display()
        )),
        "{err}"
    );
}

#[test]
fn an_empty_catalog_file_is_the_built_ins() {
    let tmp = tempfile::tempdir().unwrap();
    let path = catalog_file(tmp.path(), "# nothing yet\n\n");
    let catalog = Catalog::load(&path).unwrap();
    assert_eq!(
        catalog.known(),
        ["nginx", "busybox", "alpine", "kube-lite/echo"]
    );
}

#[test]
fn catalog_errors_name_the_file_the_line_and_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        // (text, line, field, words of the message)
        (
            "images:\n  - repository: nginx\n    cmds: [nginx]\n",
            3,
            "images[0]",
            "cmds",
        ),
        (
            "images:\n  - repository: a\n  - repository: nginx\n    layout: apache\n",
            4,
            "images[1].layout",
            "apache",
        ),
        (
            "images:\n  - repository: app\n    env:\n      - A=1\n      - JUSTANAME\n",
            5,
            "images[0].env[1]",
            "not NAME=value",
        ),
        (
            "images:\n  - repository: Nginx\n",
            2,
            "images[0].repository",
            "lowercase",
        ),
        (
            "images:\n  - repository: nginx:1.25\n",
            2,
            "images[0].repository",
            "`tag`",
        ),
        (
            "images:\n  - repository: nginx\n    tag: \"1.[0-9]\"\n",
            3,
            "images[0].tag",
            "not a tag pattern",
        ),
        (
            "images:\n  - repository: nginx\n    stopSignal: SIGSTOPP\n",
            3,
            "images[0].stopSignal",
            "not a signal",
        ),
        (
            "images:\n  - repository: nginx\n    workingDir: relative\n",
            3,
            "images[0].workingDir",
            "absolute",
        ),
        (
            "images:\n  - repository: nginx\n    cmd: [nginx\n",
            3,
            "images[0].cmd",
            "unclosed bracket",
        ),
        ("imagez: []\n", 1, "imagez", "unknown field"),
    ];
    for (text, line, field, words) in cases {
        let path = catalog_file(tmp.path(), text);
        let err = Catalog::load(&path)
            .map(|_| ())
            .expect_err(text)
            .to_string();
        let at = format!("{}:{line}: image catalog: ", path.display());
        assert!(err.starts_with(&at), "{text}\n-> {err}");
        assert!(err.contains(field), "{text}\n-> {err}");
        assert!(err.contains(words), "{text}\n-> {err}");
    }
    let missing = tmp.path().join("nope.yaml");
    let err = Catalog::load(&missing).map(|_| ()).unwrap_err().to_string();
    assert!(
        err.contains("reading the image catalog") && err.contains("nope.yaml"),
        "{err}"
    );
}
