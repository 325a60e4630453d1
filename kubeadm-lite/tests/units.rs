//! The units kubeadm-lite writes are ones systemd accepts: checked with
//! `systemd-analyze verify` (syntax, directives, that each ExecStart is an
//! executable), on the real binaries.

use std::path::PathBuf;
use std::process::Command;

use kubeadm_lite::clusterinfo::ClusterConfiguration;
use kubeadm_lite::layout::Layout;
use kubeadm_lite::units::{self, Machine};

/// Where cargo put this package's binary, and the other components'.
fn bin_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_BIN_EXE_kubeadm-lite"))
        .parent()
        .expect("the binary's directory")
        .to_path_buf();
    if ["apiserver", "controller", "nodeagent"]
        .iter()
        .any(|b| !dir.join(b).exists())
    {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args([
            "build",
            "--bins",
            "-p",
            "apiserver",
            "-p",
            "controller",
            "-p",
            "nodeagent",
        ]);
        if dir.file_name() == Some("release".as_ref()) {
            build.arg("--release");
        }
        assert!(build.status().expect("cargo build").success());
    }
    dir
}

#[test]
fn systemd_accepts_the_units() {
    let root = tempfile::tempdir().unwrap();
    let machine = Machine {
        node_name: "master".into(),
        node_ip: "192.168.56.10".parse().unwrap(),
        layout: Layout::new(root.path()),
        bin_dir: bin_dir(),
        systemd: true,
    };
    let cluster = ClusterConfiguration::default();
    let written = [
        units::apiserver(&machine, &cluster),
        units::controller(&machine, &cluster),
        units::nodeagent(&machine, &cluster, true),
    ];
    units::install(&machine.layout, &written, false).unwrap();
    for unit in &written {
        let file = machine.layout.unit(unit.component);
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&file)
            .output()
            .expect("systemd-analyze (Debian's systemd package) must be installed");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
