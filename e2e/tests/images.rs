//! The lab's images and its registry: what `e2e up` builds from Debian
//! packages and serves on 192.168.56.1:5000.
//!
//! The image tests unpack the built layouts with `umoci` into a temporary
//! directory and look at the files, or run the image's program under
//! `chroot` (so it sees only the image's files). The registry tests ask it
//! from inside a lab node, as containerd does. Needs root; the registry
//! tests take the lab lock.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use e2e::harness::{bin_dir, ensure_built};
use e2e::images::{self, BuiltImage, LAB_IMAGES};
use e2e::lab::{registry_ca, Lab, LabOptions, REGISTRY_ADDRESS};
use serde_json::Value;

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the image tests unpack images with their owners and must run as root"
    );
}

fn built(repository: &str) -> BuiltImage {
    require_root();
    ensure_built(&["e2e"]);
    let image = LAB_IMAGES
        .iter()
        .find(|image| image.repository == repository)
        .unwrap();
    images::build(image, &images::cache_dir(), &bin_dir()).expect("building the image")
}

/// The image's root filesystem, unpacked under `dir`.
fn unpack(image: &BuiltImage, tag: &str, dir: &Path) -> PathBuf {
    let bundle = dir.join("bundle");
    let out = Command::new("umoci")
        .args(["unpack", "--image", &image.layout.reference(tag)])
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    bundle.join("rootfs")
}

/// The image's config (`config` of the OCI image config blob).
fn config(image: &BuiltImage, tag: &str) -> Value {
    let blob = |digest: &str| -> Value {
        let path = image
            .layout
            .dir
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let index: Value =
        serde_json::from_slice(&std::fs::read(image.layout.dir.join("index.json")).unwrap())
            .unwrap();
    let manifest = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no tag {tag} in {index}"));
    let manifest = blob(manifest["digest"].as_str().unwrap());
    blob(manifest["config"]["digest"].as_str().unwrap())["config"].clone()
}

fn chroot(rootfs: &Path, argv: &[&str]) -> Output {
    Command::new("/usr/sbin/chroot")
        .arg(rootfs)
        .args(argv)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .output()
        .unwrap()
}

#[test]
fn nginx_is_laid_out_like_the_official_image() {
    let nginx = built("library/nginx");
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = unpack(&nginx, "alpine", tmp.path());
    let conf = std::fs::read_to_string(rootfs.join("etc/nginx/nginx.conf")).unwrap();
    assert!(conf.contains("include /etc/nginx/conf.d/*.conf;"), "{conf}");
    assert!(conf.contains("user  nginx;"), "{conf}");
    let default = std::fs::read_to_string(rootfs.join("etc/nginx/conf.d/default.conf")).unwrap();
    assert!(
        default.contains("root   /usr/share/nginx/html;"),
        "{default}"
    );
    let index = std::fs::read_to_string(rootfs.join("usr/share/nginx/html/index.html")).unwrap();
    assert!(index.contains("Welcome to nginx!"));
    for (log, target) in [("access.log", "/dev/stdout"), ("error.log", "/dev/stderr")] {
        let link = std::fs::read_link(rootfs.join("var/log/nginx").join(log)).unwrap();
        assert_eq!(link, Path::new(target));
    }
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(passwd.contains("nginx:x:101:101:"), "{passwd}");
    // nginx itself accepts the configuration, inside the image.
    let test = chroot(&rootfs, &["/usr/sbin/nginx", "-t"]);
    assert!(
        test.status.success(),
        "{}",
        String::from_utf8_lossy(&test.stderr)
    );
}

#[test]
fn nginx_runs_in_the_foreground_and_stops_gracefully() {
    let nginx = built("library/nginx");
    let config = config(&nginx, "alpine");
    assert_eq!(
        config["Cmd"],
        serde_json::json!(["nginx", "-g", "daemon off;"])
    );
    assert_eq!(config["StopSignal"], "SIGQUIT");
    assert!(config["ExposedPorts"].get("80/tcp").is_some(), "{config}");
    // Every tag is the same image.
    for tag in ["latest", "stable"] {
        assert_eq!(self::config(&nginx, tag), config);
    }
}

#[test]
fn busybox_has_a_shell_and_its_applets() {
    let busybox = built("library/busybox");
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = unpack(&busybox, "latest", tmp.path());
    assert_eq!(
        std::fs::read_link(rootfs.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    let out = chroot(
        &rootfs,
        &["/bin/sh", "-c", "wget --help 2>&1 | head -1; id -un"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("BusyBox"), "{text}");
    assert!(text.ends_with("root\n"), "{text}");
    assert_eq!(config(&busybox, "latest")["Cmd"], serde_json::json!(["sh"]));
}

#[test]
fn the_echo_image_needs_nothing_but_its_own_files() {
    let echo = built("kube-lite/echo");
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = unpack(&echo, "latest", tmp.path());
    let out = chroot(&rootfs, &["/usr/local/bin/kube-lite-echo", "--help"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("--port"));
    assert_eq!(
        config(&echo, "latest")["Entrypoint"],
        serde_json::json!(["/usr/local/bin/kube-lite-echo"])
    );
}

#[test]
fn the_pause_image_is_one_static_program() {
    let pause = built("pause");
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = unpack(&pause, "3.10", tmp.path());
    let mut files: Vec<String> = std::fs::read_dir(&rootfs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["pause"]);
    let out = chroot(&rootfs, &["/pause", "-v"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "pause (kube-lite) 3.10\n"
    );
    let config = config(&pause, "3.10");
    assert_eq!(config["Entrypoint"], serde_json::json!(["/pause"]));
    assert_eq!(config["User"], "65535:65535");
}

#[test]
fn a_second_build_comes_from_the_cache() {
    let first = built("library/busybox");
    let again = built("library/busybox");
    assert!(again.cached);
    assert_eq!(again.layout.dir, first.layout.dir);
}

/// A lab without workers: the registry and the master are enough.
fn lab() -> (tempfile::TempDir, Lab) {
    require_root();
    ensure_built(&["apiserver", "controller", "nodeagent", "e2e"]);
    let dir = tempfile::tempdir().unwrap();
    let lab = Lab::up(LabOptions {
        workers: 0,
        dir: dir.path().join("lab"),
        bin_dir: bin_dir(),
    })
    .expect("lab up");
    (dir, lab)
}

/// `curl` from inside kl-master, as the node's containerd asks.
fn curl_from_node(args: &[&str]) -> Output {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            "kl-master",
            "curl",
            "-s",
            "--max-time",
            "5",
        ])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_registry_serves_every_lab_image_to_the_nodes() {
    let (dir, _lab) = lab();
    let ca = registry_ca(&dir.path().join("lab"));
    for image in LAB_IMAGES {
        for tag in image.tags {
            let url = format!(
                "https://{REGISTRY_ADDRESS}/v2/{}/manifests/{tag}",
                image.repository
            );
            let out = curl_from_node(&[
                "--cacert",
                ca.to_str().unwrap(),
                "-H",
                "Accept: application/vnd.oci.image.manifest.v1+json",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{content_type}",
                &url,
            ]);
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                "200 application/vnd.oci.image.manifest.v1+json",
                "{url}"
            );
        }
    }
}

#[test]
fn the_registry_refuses_pushes() {
    let (dir, _lab) = lab();
    let ca = registry_ca(&dir.path().join("lab"));
    let out = curl_from_node(&[
        "--cacert",
        ca.to_str().unwrap(),
        "-X",
        "POST",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("https://{REGISTRY_ADDRESS}/v2/library/nginx/blobs/uploads/"),
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "405");
}

#[test]
fn the_registry_speaks_only_tls_with_its_own_certificate() {
    let (_dir, _lab) = lab();
    let url = format!("https://{REGISTRY_ADDRESS}/v2/");
    // Without the lab registry's CA: curl's "peer certificate cannot be
    // authenticated" (60).
    let out = curl_from_node(&[&url]);
    assert_eq!(out.status.code(), Some(60), "{out:?}");
    let plain = curl_from_node(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://{REGISTRY_ADDRESS}/v2/"),
    ]);
    assert_eq!(String::from_utf8_lossy(&plain.stdout), "400", "{plain:?}");
}
