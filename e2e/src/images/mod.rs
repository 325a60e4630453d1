//! The lab's container images: built from Debian packages on this
//! machine, served by the lab's own registry.
//!
//! The lab has no internet, yet the lesson's manifests say
//! `image: nginx:alpine` and containerd pulls what Pods name. So the
//! VirtualBox host's part of the lab (the host namespace, 192.168.56.1)
//! runs a registry ([`crate::lab::REGISTRY_ADDRESS`]) that every node's containerd uses as
//! its mirror of `docker.io` and `registry.k8s.io`, and `e2e up` seeds it
//! with the images of [`LAB_IMAGES`], built here from Debian packages and
//! kube-lite's own programs ([`recipes`]) as OCI image layouts
//! ([`oci`]).
//!
//! A build is cached under [`cache_dir`] by a hash of everything it
//! depends on, so only the first `e2e up` builds (about a minute, most
//! of it `mmdebstrap` downloading nginx's packages); after that, pushing
//! to the registry takes seconds.
//!
//! On VMs none of this exists: containerd pulls from Docker Hub.

pub mod oci;
pub mod recipes;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci::OciLayout;
use recipes::Recipe;

/// One image the lab serves: its repository in the registry (`library/nginx`
/// is what `docker.io/library/nginx`, i.e. `nginx`, is pulled as) and tags.
#[derive(Debug)]
pub struct LabImage {
    pub repository: &'static str,
    pub tags: &'static [&'static str],
    pub recipe: Recipe,
}

impl LabImage {
    /// The name a Pod uses for the first tag, e.g. `nginx:alpine`.
    pub fn pod_name(&self, tag: &str) -> String {
        let short = self
            .repository
            .strip_prefix("library/")
            .unwrap_or(self.repository);
        format!("{short}:{tag}")
    }

    /// A name for the cache directory.
    fn slug(&self) -> String {
        self.repository.replace('/', "-")
    }
}

/// The sandbox image (containerd's `sandbox_image`), as kubeadm 1.35
/// configures it.
pub const PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.10";

/// Every image the lab serves. `pause` is `registry.k8s.io/pause`; the
/// others are Docker Hub's (`library/` is the official images' namespace).
pub const LAB_IMAGES: &[LabImage] = &[
    LabImage {
        repository: "pause",
        tags: &["3.10"],
        recipe: Recipe::Pause,
    },
    LabImage {
        repository: "library/busybox",
        tags: &["latest", "1.36", "stable"],
        recipe: Recipe::Busybox,
    },
    LabImage {
        repository: "library/nginx",
        tags: &["alpine", "latest", "stable"],
        recipe: Recipe::Nginx,
    },
    LabImage {
        repository: "kube-lite/echo",
        tags: &["latest"],
        recipe: Recipe::Echo,
    },
];

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{what}: `{command}` failed: {stderr}")]
    Command {
        what: String,
        command: String,
        stderr: String,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{0} is missing: build the workspace's binaries first (`cargo build --workspace --bins`)"
    )]
    MissingBinary(PathBuf),
    #[error("the registry at {address} did not answer within {timeout:?}; its log {log}:\n{tail}")]
    RegistryNotReady {
        address: String,
        timeout: Duration,
        log: PathBuf,
        tail: String,
    },
    #[error("the registry's certificate: {0}")]
    Certificate(String),
}

pub(crate) fn io_error(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ImageError {
    let context = context.into();
    move |source| ImageError::Io { context, source }
}

/// Runs a command to completion and returns its stdout; a failure says
/// what was being done.
pub(crate) fn run(what: &str, command: &mut Command) -> Result<String, ImageError> {
    let shown = format!("{command:?}").replace('"', "");
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(io_error(format!("{what}: running `{shown}`")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        return Err(ImageError::Command {
            what: what.to_string(),
            command: shown,
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Where built images are kept between labs: `KUBE_LITE_IMAGE_CACHE`, or
/// /var/cache/kube-lite/images.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("KUBE_LITE_IMAGE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/kube-lite/images"))
}

/// An image ready to push: its layout (tagged with every tag).
#[derive(Debug)]
pub struct BuiltImage {
    pub image: &'static LabImage,
    pub layout: OciLayout,
    /// Whether it came from the cache.
    pub cached: bool,
    pub took: Duration,
}

/// Builds every image of [`LAB_IMAGES`] that the cache does not hold.
pub fn build_all(cache: &Path, bin_dir: &Path) -> Result<Vec<BuiltImage>, ImageError> {
    LAB_IMAGES
        .iter()
        .map(|image| build(image, cache, bin_dir))
        .collect()
}

/// The cached layout of `image`, built first when the cache has none for
/// its current inputs. A build happens in a scratch directory renamed
/// into place at the end, so an interrupted build leaves nothing that
/// looks finished; older builds of the same image are removed.
pub fn build(
    image: &'static LabImage,
    cache: &Path,
    bin_dir: &Path,
) -> Result<BuiltImage, ImageError> {
    // One build at a time in this process (scratch names carry the PID);
    // another process finishing first is handled at the rename.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let inputs = image.recipe.inputs(bin_dir)?;
    let key = &sha256_hex(inputs.as_bytes())[..16];
    let name = format!("{}-{key}", image.slug());
    let done = cache.join(&name);
    let layout = OciLayout {
        dir: done.join("oci"),
    };
    if layout.dir.join("index.json").exists() {
        return Ok(BuiltImage {
            image,
            layout,
            cached: true,
            took: started.elapsed(),
        });
    }
    std::fs::create_dir_all(cache).map_err(io_error(format!("creating {}", cache.display())))?;
    let scratch = cache.join(format!(".build-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch)
        .map_err(io_error(format!("creating {}", scratch.display())))?;
    let result = (|| {
        eprintln!(
            "images: building {} ({:?})",
            image.pod_name(image.tags[0]),
            image.recipe
        );
        let work = scratch.join("work");
        std::fs::create_dir_all(&work).map_err(io_error("creating the work directory"))?;
        let made = image.recipe.make(&work, bin_dir)?;
        let built = OciLayout::init(&scratch.join("oci"))?;
        built.build(image.tags[0], &made.layers, &made.config)?;
        for tag in &image.tags[1..] {
            built.tag(image.tags[0], tag)?;
        }
        built.gc()?;
        std::fs::remove_dir_all(&work).map_err(io_error("removing the work directory"))?;
        if layout.dir.join("index.json").exists() {
            // Another process built the same inputs meanwhile.
            return std::fs::remove_dir_all(&scratch)
                .map_err(io_error("removing a duplicate build"));
        }
        remove_older_builds(cache, &image.slug())?;
        std::fs::rename(&scratch, &done)
            .map_err(io_error(format!("moving the build to {}", done.display())))
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    result?;
    Ok(BuiltImage {
        image,
        layout,
        cached: false,
        took: started.elapsed(),
    })
}

fn remove_older_builds(cache: &Path, slug: &str) -> Result<(), ImageError> {
    let prefix = format!("{slug}-");
    for entry in
        std::fs::read_dir(cache).map_err(io_error(format!("listing {}", cache.display())))?
    {
        let entry = entry.map_err(io_error("listing the image cache"))?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        // `<slug>-<16 hex>`; another image's slug may start with ours.
        let is_ours = file_name
            .strip_prefix(&prefix)
            .is_some_and(|key| key.len() == 16 && key.chars().all(|c| c.is_ascii_hexdigit()));
        if is_ours {
            std::fs::remove_dir_all(entry.path())
                .map_err(io_error(format!("removing {}", entry.path().display())))?;
        }
    }
    Ok(())
}
