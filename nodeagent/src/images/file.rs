//! The admin's image catalog file (`--image-catalog FILE`).
//!
//! A list of images, each with the configuration `docker inspect` would show
//! for it. Entries are tried in order, before the built-in ones:
//!
//! ```yaml
//! images:
//!   # Old manifests pin nginx 1.x: serve them with the node's nginx-debug.
//!   - repository: nginx          # = docker.io/library/nginx
//!     tag: "1.*"                 # a glob over the tag; omitted = any tag
//!     cmd: [nginx-debug, -g, "daemon off;"]
//!     layout: nginx              # plain (default) | nginx
//!     stopSignal: SIGQUIT        # default SIGTERM
//!   - repository: registry.example.com/team/worker
//!     entrypoint: [/usr/local/bin/worker]
//!     cmd: [--verbose]
//!     env: [WORKER_MODE=batch]   # NAME=value, as in `docker inspect`
//!     workingDir: /var/lib/worker
//! ```
//!
//! Unknown fields are errors, not silently ignored: a misspelt `cmd` would
//! otherwise turn into a Pod that runs the wrong thing.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use nix::sys::signal::Signal;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{reference, Entry, Image, Layout, DEFAULT_PATH};

/// A catalog file that cannot be used. Every message starts with
/// `FILE:LINE:` (when the line is known) and names the field, so an admin
/// can go straight to the mistake.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("reading the image catalog {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not YAML, or not shaped like a catalog (unknown field, wrong type).
    #[error("{path}:{line}: image catalog: {field}: {message}")]
    Syntax {
        path: PathBuf,
        line: u64,
        /// Where in the document, like `images[1].layout`.
        field: String,
        message: String,
    },
    /// Well-formed, but a value makes no sense (a bad repository name, an
    /// env entry without `=`).
    #[error("{path}:{line}: image catalog: {field}: {message}")]
    Invalid {
        path: PathBuf,
        line: u64,
        field: String,
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    images: Vec<EntryFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EntryFile {
    repository: Spanned<String>,
    #[serde(default)]
    tag: Option<Spanned<String>>,
    #[serde(default)]
    entrypoint: Vec<String>,
    #[serde(default)]
    cmd: Vec<String>,
    #[serde(default)]
    env: Vec<Spanned<String>>,
    #[serde(default)]
    working_dir: Option<Spanned<String>>,
    #[serde(default)]
    layout: Layout,
    #[serde(default)]
    stop_signal: Option<Spanned<String>>,
}

/// Reads the entries of the catalog file at `path`.
pub(super) fn read(path: &Path) -> Result<Vec<Entry>, CatalogError> {
    let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Parses catalog text; `path` only names it in errors.
pub(super) fn parse(path: &Path, text: &str) -> Result<Vec<Entry>, CatalogError> {
    // A file of only comments is an empty catalog, not an error.
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Ok(vec![]);
    }
    // serde_path_to_error tracks where in the document serde was when it
    // failed (`images[1].layout`); the parser's error knows the line.
    let mut failed_at = None;
    let parsed = serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_path_to_error::deserialize::<_, CatalogFile>(de).map_err(|err| {
            failed_at = Some(err.path().to_string());
            err.into_inner()
        })
    });
    let file = parsed.map_err(|err| CatalogError::Syntax {
        path: path.to_path_buf(),
        line: err.location().map_or(0, |l| l.line()),
        field: failed_at.unwrap_or_else(|| "(document)".to_string()),
        // The parser's one-line message ("... at line 3, column 10"),
        // without the source snippet it can add.
        message: err
            .without_snippet()
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
    })?;
    file.images
        .into_iter()
        .enumerate()
        .map(|(index, entry)| entry.check(path, index))
        .collect()
}

impl EntryFile {
    fn check(self, path: &Path, index: usize) -> Result<Entry, CatalogError> {
        let invalid = |field: &str, line: u64, message: String| CatalogError::Invalid {
            path: path.to_path_buf(),
            line,
            field: format!("images[{index}].{field}"),
            message,
        };
        let written = self.repository.value.as_str();
        let line = self.repository.referenced.line();
        if written.contains([':', '@']) && reference::normalize_repository(written).is_err() {
            return Err(invalid(
                "repository",
                line,
                format!("{written:?} is not a repository name: put a tag in `tag`, no digests"),
            ));
        }
        let repository = reference::normalize_repository(written)
            .map_err(|why| invalid("repository", line, format!("{written:?}: {why}")))?;
        let tag = match self.tag {
            None => None,
            Some(tag) => {
                let pattern = tag.value;
                let valid = !pattern.is_empty()
                    && pattern
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_.-*?".contains(c));
                if !valid {
                    return Err(invalid(
                        "tag",
                        tag.referenced.line(),
                        format!(
                            "{pattern:?} is not a tag pattern (letters, digits, `_.-`, and the \
                             globs `*` and `?`)"
                        ),
                    ));
                }
                // "*" is the same as no pattern, and then also fits digests.
                (pattern != "*").then_some(pattern)
            }
        };
        let mut env = vec![];
        for (i, entry) in self.env.iter().enumerate() {
            match entry.value.split_once('=') {
                Some((name, value)) if !name.is_empty() => {
                    env.push((name.to_string(), value.to_string()))
                }
                _ => {
                    return Err(invalid(
                        &format!("env[{i}]"),
                        entry.referenced.line(),
                        format!("{:?} is not NAME=value", entry.value),
                    ))
                }
            }
        }
        // What containerd's default process spec does for an image without
        // a PATH: give it the usual one, or `nginx` would not be found.
        if !env.iter().any(|(name, _)| name == "PATH") {
            env.insert(0, ("PATH".to_string(), DEFAULT_PATH.to_string()));
        }
        let working_dir = match self.working_dir {
            Some(dir) if !dir.value.starts_with('/') => {
                return Err(invalid(
                    "workingDir",
                    dir.referenced.line(),
                    format!("{:?} is not an absolute path", dir.value),
                ))
            }
            dir => dir.map(|d| d.value),
        };
        let stop_signal = match self.stop_signal {
            None => Signal::SIGTERM,
            Some(name) => {
                let full = if name.value.starts_with("SIG") {
                    name.value.clone()
                } else {
                    format!("SIG{}", name.value)
                };
                Signal::from_str(&full).map_err(|_| {
                    invalid(
                        "stopSignal",
                        name.referenced.line(),
                        format!(
                            "{:?} is not a signal name (like SIGTERM or SIGQUIT)",
                            name.value
                        ),
                    )
                })?
            }
        };
        let image_id = match &tag {
            Some(tag) => format!("kube-lite://{repository}:{tag}"),
            None => format!("kube-lite://{repository}"),
        };
        let image = Image {
            entrypoint: self.entrypoint,
            cmd: self.cmd,
            env,
            working_dir,
            layout: self.layout,
            stop_signal,
            image_id,
        };
        Ok(Entry::checked(written, repository, tag, image))
    }
}
