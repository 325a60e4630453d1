//! OCI image layouts, made with `umoci`.
//!
//! An OCI image is three kinds of blobs, each named by its SHA-256:
//! layers (tar files of a root filesystem's changes, gzipped), a config
//! (the ENTRYPOINT, CMD, ENV, ... a runtime applies) and a manifest
//! listing the config and the layers in order. An *image layout* is a
//! directory holding such blobs (`blobs/sha256/...`) and an `index.json`
//! naming manifests by tag: what `skopeo copy oci:DIR:TAG` reads and
//! pushes to a registry. `umoci` writes layouts:
//!
//! ```text
//! umoci init --layout DIR
//! umoci new --image DIR:TAG
//! umoci raw add-layer --image DIR:TAG layer.tar     # one per layer
//! umoci config --image DIR:TAG --config.cmd nginx ...
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{run, ImageError};

/// What a runtime applies when it starts a container of the image (the
/// parts of the OCI image config Kubernetes uses).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub stop_signal: Option<String>,
    pub exposed_ports: Vec<String>,
}

/// An image layout directory.
#[derive(Debug, Clone)]
pub struct OciLayout {
    pub dir: PathBuf,
}

impl OciLayout {
    /// A new, empty layout at `dir` (which must not exist).
    pub fn init(dir: &Path) -> Result<OciLayout, ImageError> {
        umoci(
            "creating an image layout",
            &["init", "--layout", &path(dir)],
        )?;
        Ok(OciLayout {
            dir: dir.to_path_buf(),
        })
    }

    /// `DIR:TAG`, as umoci and skopeo's `oci:` transport name an image.
    pub fn reference(&self, tag: &str) -> String {
        format!("{}:{tag}", path(&self.dir))
    }

    /// Builds image `tag` from `layers` (uncompressed tar files, bottom
    /// first) and `config`.
    pub fn build(
        &self,
        tag: &str,
        layers: &[PathBuf],
        config: &ImageConfig,
    ) -> Result<(), ImageError> {
        let image = self.reference(tag);
        umoci(
            &format!("creating image {tag}"),
            &["new", "--image", &image],
        )?;
        for layer in layers {
            umoci(
                &format!("adding layer {} to {tag}", layer.display()),
                &[
                    "raw",
                    "add-layer",
                    "--no-history",
                    "--image",
                    &image,
                    &path(layer),
                ],
            )?;
        }
        let mut args: Vec<String> = vec![
            "config".into(),
            "--no-history".into(),
            "--image".into(),
            image,
            "--os".into(),
            "linux".into(),
            "--architecture".into(),
            "amd64".into(),
        ];
        // umoci takes a list option once per element; an empty list is
        // the option with an empty value... which would be one empty
        // element, so empty lists are left out (they are empty already).
        for part in &config.entrypoint {
            args.extend(["--config.entrypoint".into(), part.clone()]);
        }
        for part in &config.cmd {
            args.extend(["--config.cmd".into(), part.clone()]);
        }
        for variable in &config.env {
            args.extend(["--config.env".into(), variable.clone()]);
        }
        for port in &config.exposed_ports {
            args.extend(["--config.exposedports".into(), port.clone()]);
        }
        if let Some(dir) = &config.working_dir {
            args.extend(["--config.workingdir".into(), dir.clone()]);
        }
        if let Some(user) = &config.user {
            args.extend(["--config.user".into(), user.clone()]);
        }
        if let Some(signal) = &config.stop_signal {
            args.extend(["--config.stopsignal".into(), signal.clone()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        umoci(&format!("configuring image {tag}"), &args)?;
        Ok(())
    }

    /// Another tag for the image `from` names.
    pub fn tag(&self, from: &str, to: &str) -> Result<(), ImageError> {
        umoci(
            &format!("tagging {from} as {to}"),
            &["tag", "--image", &self.reference(from), to],
        )
    }

    /// Removes the blobs no tag refers to (each umoci step leaves the
    /// previous manifest and config behind).
    pub fn gc(&self) -> Result<(), ImageError> {
        umoci(
            "collecting unused blobs",
            &["gc", "--layout", &path(&self.dir)],
        )
    }
}

fn umoci(what: &str, args: &[&str]) -> Result<(), ImageError> {
    run(what, Command::new("umoci").args(args)).map(|_| ())
}

fn path(path: &Path) -> String {
    path.display().to_string()
}

/// Packs directory `dir` as a layer tar at `tar`: numeric owners, sorted
/// names and a fixed time, so the same files give the same layer digest.
pub fn pack_layer(dir: &Path, tar: &Path) -> Result<(), ImageError> {
    run(
        &format!("packing {} as a layer", dir.display()),
        Command::new("tar")
            .args(["--numeric-owner", "--sort=name", "--mtime=@0", "-C"])
            .arg(dir)
            .arg("-cf")
            .arg(tar)
            .arg("."),
    )
    .map(|_| ())
}
