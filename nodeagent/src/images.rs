//! Container images, and why kube-lite has a catalog instead.
//!
//! On a real node a container image is a filesystem (the layers) plus a
//! little configuration: the ENTRYPOINT and CMD to run, the ENV, the working
//! directory, the signal that stops it. The runtime pulls it from a registry
//! by name (`nginx:1.25`), unpacks it as the container's root filesystem and
//! starts the process the configuration names.
//!
//! kube-lite pulls nothing and unpacks nothing: a Pod's container is a
//! program already installed on the node, run in the Pod's namespaces. The
//! [`Catalog`] says which program an image name stands for, with the same
//! configuration the real image has, so that everything Kubernetes does with
//! that configuration still happens - `command` replacing the ENTRYPOINT,
//! `args` replacing the CMD ([`Image::argv`]), the image's ENV under the
//! container's `env`. What the image's filesystem would have provided and
//! the node's program needs (nginx's config layout) is written per Pod and
//! bind-mounted in its mount namespace ([`Layout`]). An image the catalog
//! does not know fails the Pod the way an unknown image fails a pull
//! ([`UnknownImage`], shown as `ErrImagePull`).
//!
//! The built-in catalog covers the lesson: `nginx`, `busybox`, `alpine` and
//! `kube-lite/echo` (an echo server built into the node agent, see
//! [`crate::echo`]). An admin extends or overrides it with a YAML file
//! (`--image-catalog`, format in [`file`]); its entries come first.
//!
//! Not in the catalog on purpose: `registry.k8s.io/e2e-test-images/agnhost`.
//! Kubernetes' own tests use its subcommands (`netexec`, `serve-hostname`,
//! ...) with their exact flags and endpoints; the echo server implements
//! none of them, and a Pod that asks for agnhost and gets something else
//! would fail in confusing ways. Better a clear `ErrImagePull`.

pub mod file;
pub mod nginx;
pub mod reference;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;

pub use file::CatalogError;
pub use nginx::nginx_layout;
pub use reference::{InvalidReference, Reference};

/// The `PATH` the official Debian- and Alpine-based images set, and the
/// one every built-in image gets: a Pod finds `nginx` in /usr/sbin and `sh`
/// in /bin through it, exactly as inside the real image.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The argument of the node agent that runs the built-in echo server
/// (`nodeagent echo`).
pub const ECHO_SUBCOMMAND: &str = "echo";

/// What a container of an image runs: the parts of an image's
/// configuration Kubernetes uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The image's ENTRYPOINT and CMD, as `docker inspect` shows them.
    /// Kubernetes rules: the container's `command` replaces the
    /// entrypoint, its `args` replace the cmd (see [`Image::argv`]).
    pub entrypoint: Vec<String>,
    /// See [`Image::entrypoint`].
    pub cmd: Vec<String>,
    /// The image's ENV (`PATH`, ...), in order. A container's own `env`
    /// entries override these by name.
    pub env: Vec<(String, String)>,
    /// The image's WORKDIR; `None` is `/`. A container's `workingDir`
    /// overrides it.
    pub working_dir: Option<String>,
    /// The files the image would have and the node's program needs, that
    /// the runtime writes and bind-mounts into the Pod.
    pub layout: Layout,
    /// The image's STOPSIGNAL: what the runtime sends first when the Pod
    /// is deleted (SIGKILL follows after the grace period). nginx's
    /// official image says SIGQUIT, nginx's graceful shutdown; SIGTERM
    /// would make it drop connections at once.
    pub stop_signal: Signal,
    /// What `status.containerStatuses[].imageID` shows. A registry would
    /// give a content digest; kube-lite has no content, so the ID says
    /// where the image came from instead: `kube-lite://` and the catalog
    /// entry's repository (and tag pattern, if it has one).
    pub image_id: String,
}

/// Files an image would carry that the node's program expects, written per
/// Pod and bind-mounted over the node's own directories in the Pod's mount
/// namespace (before the Pod's volumes, so a ConfigMap mounted at
/// `/etc/nginx/conf.d` lands on top).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Nothing: the program runs with the node's files (`sh` and its
    /// tools, the echo server).
    #[default]
    Plain,
    /// The official nginx image's configuration, html and log layout (see
    /// [`nginx_layout`]): the node's Debian nginx, configured like
    /// `docker run nginx`.
    Nginx,
}

/// A bind mount the runtime makes in a Pod's mount namespace: `source` (a
/// path on the node) appears at `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub source: PathBuf,
    pub target: PathBuf,
}

impl Layout {
    /// Writes this layout's files under `dir` (a directory private to one
    /// Pod) and returns the bind mounts to make, in order.
    pub fn write(self, dir: &Path) -> io::Result<Vec<BindMount>> {
        match self {
            Layout::Plain => Ok(vec![]),
            Layout::Nginx => nginx_layout(dir),
        }
    }
}

impl Image {
    /// The process's argument vector for a container with this image,
    /// `command` and `args` (Kubernetes' rules, as containerd applies them):
    ///
    /// | command | args | runs |
    /// | --- | --- | --- |
    /// | - | - | entrypoint + cmd |
    /// | given | - | command (the image's cmd is dropped too) |
    /// | - | given | entrypoint + args |
    /// | given | given | command + args |
    ///
    /// `$(VAR)` references in `command` and `args` are expanded by the
    /// kubelet before this.
    pub fn argv(&self, command: &[String], args: &[String]) -> Vec<String> {
        if command.is_empty() {
            let args = if args.is_empty() { &self.cmd[..] } else { args };
            self.entrypoint.iter().chain(args).cloned().collect()
        } else {
            command.iter().chain(args).cloned().collect()
        }
    }
}

/// The image catalog: entries tried in order, the first that matches a
/// reference wins. An admin's entries come before the built-in ones, so a
/// file can override `nginx`.
#[derive(Debug, Clone)]
pub struct Catalog {
    entries: Vec<Entry>,
    /// The admin's file, if any, for messages.
    source: Option<PathBuf>,
}

/// One catalog entry: which references it matches and the image they get.
#[derive(Debug, Clone)]
struct Entry {
    /// The name as written (`nginx`, `nginx:1.*`), for messages.
    name: String,
    /// Normalised: `docker.io/library/nginx`.
    repository: String,
    /// A glob over the tag (`1.*`); `None` matches any tag, and also
    /// references by digest only, which name no tag.
    tag: Option<String>,
    image: Image,
}

impl Entry {
    fn new(repository: &str, tag: Option<&str>, image: Image) -> Entry {
        let repository_full = reference::normalize_repository(repository)
            .unwrap_or_else(|why| panic!("built-in image {repository}: {why}"));
        Entry::checked(repository, repository_full, tag.map(str::to_string), image)
    }

    /// An entry whose repository has been normalised already.
    fn checked(written: &str, repository: String, tag: Option<String>, image: Image) -> Entry {
        let name = match &tag {
            Some(tag) => format!("{written}:{tag}"),
            None => written.to_string(),
        };
        Entry {
            name,
            repository,
            tag,
            image,
        }
    }

    fn matches(&self, reference: &Reference) -> bool {
        if self.repository != reference.repository {
            return false;
        }
        match (&self.tag, &reference.tag) {
            (None, _) => true,
            (Some(pattern), Some(tag)) => glob_match(pattern, tag),
            // A digest alone says nothing about the tag.
            (Some(_), None) => false,
        }
    }
}

impl Catalog {
    /// The built-in catalog: `nginx`, `busybox`, `alpine`, `kube-lite/echo`
    /// (any tag each). The echo image runs this very executable.
    pub fn builtin() -> Catalog {
        Catalog {
            entries: builtin_entries(&agent_executable()),
            source: None,
        }
    }

    /// The admin's catalog file `path`, followed by the built-ins. Errors
    /// name the file, the line and the field.
    pub fn load(path: &Path) -> Result<Catalog, CatalogError> {
        let mut entries = file::read(path)?;
        entries.extend(builtin_entries(&agent_executable()));
        Ok(Catalog {
            entries,
            source: Some(path.to_path_buf()),
        })
    }

    /// The image a container's `image:` runs, or why there is none (the
    /// message of the Pod's `ErrImagePull` / `InvalidImageName`).
    pub fn resolve(&self, image: &str) -> Result<Image, UnknownImage> {
        let not_found = |reference: String, invalid| UnknownImage {
            reference,
            invalid,
            catalog: self.source.clone(),
            known: self.known(),
        };
        let reference =
            Reference::parse(image).map_err(|e| not_found(image.to_string(), Some(e)))?;
        self.entries
            .iter()
            .find(|entry| entry.matches(&reference))
            .map(|entry| entry.image.clone())
            .ok_or_else(|| not_found(reference.to_string(), None))
    }

    /// The names of the catalog's entries, in order, once each.
    pub fn known(&self) -> Vec<String> {
        let mut names: Vec<String> = vec![];
        for entry in &self.entries {
            if !names.contains(&entry.name) {
                names.push(entry.name.clone());
            }
        }
        names
    }
}

/// An image the catalog cannot give: the node's equivalent of a failed
/// pull.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub struct UnknownImage {
    /// The reference, fully qualified when it could be parsed
    /// (`docker.io/library/foo:1.0`), as given otherwise.
    pub reference: String,
    /// Set when the name is not an image reference at all.
    pub invalid: Option<InvalidReference>,
    /// The admin's catalog file, if one was loaded.
    pub catalog: Option<PathBuf>,
    /// The catalog's entries, to say what would have worked.
    pub known: Vec<String>,
}

impl UnknownImage {
    /// The container's waiting reason, as the kubelet sets it:
    /// `InvalidImageName` for a malformed name, `ErrImagePull` otherwise.
    pub fn reason(&self) -> &'static str {
        if self.invalid.is_some() {
            "InvalidImageName"
        } else {
            "ErrImagePull"
        }
    }

    fn message(&self) -> String {
        if let Some(invalid) = &self.invalid {
            return format!(
                "failed to resolve reference {:?}: {invalid}",
                self.reference
            );
        }
        let catalog = match &self.catalog {
            Some(path) => format!("{} + built-in", path.display()),
            None => "built-in".to_string(),
        };
        format!(
            "failed to resolve reference {:?}: not found in the kube-lite image catalog ({catalog}); \
             known images: {}",
            self.reference,
            self.known.join(", ")
        )
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::Plain => "plain",
            Layout::Nginx => "nginx",
        })
    }
}

/// The running node agent's executable, which serves the echo image.
///
/// Resolved when the catalog is built, so a Pod runs the agent's binary by
/// its path. After a rebuild `/proc/self/exe` reads `... (deleted)`; the
/// path then names the new binary, which serves the same image.
fn agent_executable() -> PathBuf {
    match std::env::current_exe() {
        Ok(path) => {
            let text = path.to_string_lossy();
            match text.strip_suffix(" (deleted)") {
                Some(live) => PathBuf::from(live),
                None => path,
            }
        }
        // Found through PATH at start, like any command.
        Err(_) => PathBuf::from("nodeagent"),
    }
}

/// The built-in images. `agent` is the node agent's executable.
fn builtin_entries(agent: &Path) -> Vec<Entry> {
    let path_env = vec![("PATH".to_string(), DEFAULT_PATH.to_string())];
    let strings = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    let image = |repository: &str, entrypoint: Vec<String>, cmd: Vec<String>, layout, stop| Image {
        entrypoint,
        cmd,
        env: path_env.clone(),
        working_dir: None,
        layout,
        stop_signal: stop,
        image_id: format!(
            "kube-lite://{}",
            reference::normalize_repository(repository).expect("built-in names are valid")
        ),
    };
    vec![
        // The official image's CMD; its ENTRYPOINT is a script that only
        // tunes the config (listen on IPv6, envsubst templates), which
        // kube-lite's layout does not need.
        Entry::new(
            "nginx",
            None,
            image(
                "nginx",
                vec![],
                strings(&["nginx", "-g", "daemon off;"]),
                Layout::Nginx,
                Signal::SIGQUIT,
            ),
        ),
        // busybox and alpine run the node's own /bin/sh and tools.
        Entry::new(
            "busybox",
            None,
            image(
                "busybox",
                vec![],
                strings(&["sh"]),
                Layout::Plain,
                Signal::SIGTERM,
            ),
        ),
        Entry::new(
            "alpine",
            None,
            image(
                "alpine",
                vec![],
                strings(&["sh"]),
                Layout::Plain,
                Signal::SIGTERM,
            ),
        ),
        Entry::new(
            "kube-lite/echo",
            None,
            image(
                "kube-lite/echo",
                vec![
                    agent.to_string_lossy().into_owned(),
                    ECHO_SUBCOMMAND.to_string(),
                ],
                vec![],
                Layout::Plain,
                Signal::SIGTERM,
            ),
        ),
    ]
}

/// Shell-style glob over a tag: `*` is any run of characters, `?` one.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Classic backtracking over the last `*` seen: linear for tags.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((star_p, star_t)) = star {
            pi = star_p + 1;
            ti = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    fn catalog() -> Catalog {
        Catalog {
            entries: builtin_entries(Path::new("/usr/local/bin/nodeagent")),
            source: None,
        }
    }

    #[test]
    fn every_spelling_of_nginx_resolves_to_the_nginx_image() {
        let catalog = catalog();
        let digest = format!("sha256:{}", "0f".repeat(32));
        for name in [
            "nginx".to_string(),
            "nginx:latest".into(),
            "docker.io/library/nginx:latest".into(),
            "nginx:alpine".into(),
            "nginx:1.25-alpine".into(),
            format!("docker.io/library/nginx@{digest}"),
        ] {
            let image = catalog
                .resolve(&name)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(image.layout, Layout::Nginx, "{name}");
            assert_eq!(image.cmd, strings(&["nginx", "-g", "daemon off;"]));
            assert_eq!(image.image_id, "kube-lite://docker.io/library/nginx");
            assert_eq!(image.stop_signal, Signal::SIGQUIT);
        }
    }

    #[test]
    fn the_shell_images_and_the_echo_image() {
        let catalog = catalog();
        for name in ["busybox", "busybox:1.36", "alpine:3.19"] {
            let image = catalog.resolve(name).unwrap();
            assert_eq!(image.cmd, ["sh"]);
            assert_eq!(image.layout, Layout::Plain);
            assert_eq!(image.env, [("PATH".to_string(), DEFAULT_PATH.to_string())]);
        }
        let echo = catalog.resolve("kube-lite/echo:0.1").unwrap();
        assert_eq!(echo.entrypoint, ["/usr/local/bin/nodeagent", "echo"]);
        assert!(echo.cmd.is_empty());
        assert_eq!(echo.image_id, "kube-lite://docker.io/kube-lite/echo");
    }

    #[test]
    fn the_built_in_catalog_runs_the_current_executable_for_echo() {
        let echo = Catalog::builtin().resolve("kube-lite/echo").unwrap();
        let exe = std::env::current_exe().unwrap();
        assert_eq!(echo.entrypoint[0], exe.to_string_lossy());
    }

    #[test]
    fn an_unknown_image_fails_like_a_pull_and_lists_what_is_known() {
        let err = catalog().resolve("foo:1.0").unwrap_err();
        assert_eq!(err.reason(), "ErrImagePull");
        assert_eq!(
            err.to_string(),
            "failed to resolve reference \"docker.io/library/foo:1.0\": not found in the \
             kube-lite image catalog (built-in); known images: nginx, busybox, alpine, kube-lite/echo"
        );
        // Close is not enough: another organisation is another image.
        assert!(catalog().resolve("bitnami/nginx").is_err());
        assert!(catalog()
            .resolve("registry.k8s.io/e2e-test-images/agnhost:2.39")
            .is_err());
    }

    #[test]
    fn a_malformed_name_is_an_invalid_image_name() {
        let err = catalog().resolve("NGINX").unwrap_err();
        assert_eq!(err.reason(), "InvalidImageName");
        assert!(
            err.to_string()
                .starts_with("failed to resolve reference \"NGINX\": invalid reference format"),
            "{err}"
        );
    }

    #[test]
    fn argv_follows_kubernetes_command_and_args_rules() {
        let image = Image {
            entrypoint: strings(&["/docker-entrypoint.sh"]),
            cmd: strings(&["nginx", "-g", "daemon off;"]),
            ..catalog().resolve("nginx").unwrap()
        };
        let none: Vec<String> = vec![];
        assert_eq!(
            image.argv(&none, &none),
            ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]
        );
        assert_eq!(
            image.argv(&strings(&["sleep"]), &none),
            ["sleep"],
            "command without args drops the image's cmd"
        );
        assert_eq!(
            image.argv(&none, &strings(&["nginx-debug"])),
            ["/docker-entrypoint.sh", "nginx-debug"]
        );
        assert_eq!(
            image.argv(&strings(&["sh", "-c"]), &strings(&["echo hi"])),
            ["sh", "-c", "echo hi"]
        );
    }

    #[test]
    fn tag_globs() {
        assert!(glob_match("*", "anything"));
        assert!(glob_match("1.*", "1.25-alpine"));
        assert!(!glob_match("1.*", "2.0"));
        assert!(glob_match("1.2?", "1.25"));
        assert!(!glob_match("1.2?", "1.250"));
        assert!(glob_match("*-alpine", "1.25-alpine"));
        assert!(!glob_match("*-alpine", "alpine"));
        assert!(glob_match("a*b*c", "aXbYbZc"));
        assert!(glob_match("latest", "latest"));
    }

    #[test]
    fn a_tag_pattern_restricts_an_entry_and_the_next_one_matches() {
        let mut entries = vec![Entry::new(
            "nginx",
            Some("1.*"),
            Image {
                cmd: strings(&["nginx-old"]),
                ..catalog().resolve("nginx").unwrap()
            },
        )];
        entries.extend(builtin_entries(Path::new("/bin/nodeagent")));
        let catalog = Catalog {
            entries,
            source: Some("/etc/kube-lite/images.yaml".into()),
        };
        assert_eq!(catalog.resolve("nginx:1.25").unwrap().cmd, ["nginx-old"]);
        assert_eq!(catalog.resolve("nginx:2").unwrap().cmd[0], "nginx");
        // By digest alone the tag is unknown: only an any-tag entry fits.
        let digest = format!("nginx@sha256:{}", "1".repeat(64));
        assert_eq!(catalog.resolve(&digest).unwrap().cmd[0], "nginx");
        assert_eq!(
            catalog.known(),
            ["nginx:1.*", "nginx", "busybox", "alpine", "kube-lite/echo"]
        );
    }
}
