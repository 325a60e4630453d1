//! Image references: what a Pod's `image:` field means.
//!
//! `nginx`, `nginx:latest` and `docker.io/library/nginx:latest` are the
//! same image. Docker (and containerd, through the same
//! `distribution/reference` rules) normalises a short name before pulling
//! it: a name without a registry is on Docker Hub (`docker.io`), a Docker
//! Hub name without an organisation is an official image (`library/`), and
//! a reference with neither tag nor digest means the tag `latest`. kube-lite
//! follows the same rules, so a catalog entry for `nginx` matches every way a
//! manifest may spell it, and error messages show the full name a registry
//! would have been asked for.

use std::fmt;

/// The registry of names without one.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// Docker Hub's organisation of the official images (`nginx` is
/// `library/nginx`).
const OFFICIAL_IMAGES: &str = "library";
/// Docker Hub's old name, still accepted and rewritten.
const LEGACY_DEFAULT_REGISTRY: &str = "index.docker.io";
/// The tag of a reference that names neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";
/// distribution/reference's limit on a repository name.
const MAX_NAME_LENGTH: usize = 255;
/// ... and on a tag.
const MAX_TAG_LENGTH: usize = 128;

/// A parsed, normalised image reference:
/// `registry/path[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `docker.io/library/nginx`: registry and path, normalised.
    pub repository: String,
    /// The tag; `latest` when neither a tag nor a digest was given, `None`
    /// for a reference by digest only (`nginx@sha256:...`).
    pub tag: Option<String>,
    /// `sha256:<hex>`, if the reference pins one.
    pub digest: Option<String>,
}

/// Why a name is not an image reference (Docker's "invalid reference
/// format", with the detail).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid reference format: {0}")]
pub struct InvalidReference(pub String);

impl Reference {
    /// Parses and normalises `name` the way `docker pull` does.
    pub fn parse(name: &str) -> Result<Reference, InvalidReference> {
        let invalid = |why: &str| InvalidReference(format!("{why} in {name:?}"));
        if name.is_empty() {
            return Err(InvalidReference("empty image name".into()));
        }
        let (rest, digest) = match name.split_once('@') {
            Some((rest, digest)) => {
                check_digest(digest).map_err(&invalid)?;
                (rest, Some(digest.to_string()))
            }
            None => (name, None),
        };
        // A ':' after the last '/' starts the tag; one before it belongs to
        // a registry's port (`localhost:5000/app`).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let tag = &rest[last_slash + i + 1..];
                check_tag(tag).map_err(&invalid)?;
                (&rest[..last_slash + i], Some(tag.to_string()))
            }
            None => (rest, None),
        };
        let repository = normalize_repository(repository).map_err(&invalid)?;
        let tag = match (&tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_string()),
            _ => tag,
        };
        Ok(Reference {
            repository,
            tag,
            digest,
        })
    }
}

impl fmt::Display for Reference {
    /// The fully qualified form: `docker.io/library/nginx:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// `nginx` -> `docker.io/library/nginx`; `quay.io/x/y` stays.
///
/// The first path component is a registry only if it looks like a host:
/// it has a `.` or a `:` (a port), or is `localhost` (Docker's
/// `splitDockerDomain`).
pub fn normalize_repository(name: &str) -> Result<String, &'static str> {
    let (registry, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DEFAULT_REGISTRY, name),
    };
    check_registry(registry)?;
    let registry = if registry == LEGACY_DEFAULT_REGISTRY {
        DEFAULT_REGISTRY
    } else {
        registry
    };
    for component in path.split('/') {
        check_path_component(component)?;
    }
    let full = if registry == DEFAULT_REGISTRY && !path.contains('/') {
        format!("{registry}/{OFFICIAL_IMAGES}/{path}")
    } else {
        format!("{registry}/{path}")
    };
    if full.len() > MAX_NAME_LENGTH {
        return Err("repository name longer than 255 characters");
    }
    Ok(full)
}

/// A path component: lowercase letters and digits, separated by one `.`,
/// one or two `_`, or any number of `-`.
fn check_path_component(component: &str) -> Result<(), &'static str> {
    if component.is_empty() {
        return Err("empty path component");
    }
    if component.chars().any(|c| c.is_ascii_uppercase()) {
        return Err("repository name must be lowercase");
    }
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err("a path component must start and end with a letter or digit");
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let allowed = separator == "."
            || separator == "_"
            || separator == "__"
            || separator.bytes().all(|b| b == b'-');
        if !allowed {
            return Err("invalid character in repository name");
        }
    }
    Ok(())
}

/// `host[:port]`, the host made of dot-separated labels.
fn check_registry(registry: &str) -> Result<(), &'static str> {
    let (host, port) = match registry.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (registry, None),
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err("invalid registry port");
        }
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if !host.split('.').all(label_ok) {
        return Err("invalid registry host");
    }
    Ok(())
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn check_tag(tag: &str) -> Result<(), &'static str> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    match tag.as_bytes() {
        [] => Err("empty tag"),
        [first, ..] if !word(*first) => Err("a tag must start with a letter, digit or '_'"),
        bytes if bytes.len() > MAX_TAG_LENGTH => Err("tag longer than 128 characters"),
        bytes if !bytes.iter().all(|b| word(*b) || *b == b'.' || *b == b'-') => {
            Err("invalid character in tag")
        }
        _ => Ok(()),
    }
}

/// `algorithm:hex`; sha256 digests must be 64 hex digits.
fn check_digest(digest: &str) -> Result<(), &'static str> {
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return Err("a digest is algorithm:hex, like sha256:<64 hex digits>");
    };
    let algorithm_ok = !algorithm.is_empty()
        && algorithm
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b));
    if !algorithm_ok || encoded.is_empty() {
        return Err("invalid digest");
    }
    if algorithm == "sha256"
        && (encoded.len() != 64 || !encoded.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err("a sha256 digest has 64 hex digits");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(name: &str) -> String {
        Reference::parse(name).unwrap().to_string()
    }

    #[test]
    fn short_names_are_official_images_on_docker_hub_with_tag_latest() {
        assert_eq!(full("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(full("nginx:latest"), "docker.io/library/nginx:latest");
        assert_eq!(
            full("docker.io/library/nginx:latest"),
            "docker.io/library/nginx:latest"
        );
        assert_eq!(
            full("index.docker.io/library/nginx"),
            "docker.io/library/nginx:latest"
        );
        assert_eq!(
            full("nginx:1.25-alpine"),
            "docker.io/library/nginx:1.25-alpine"
        );
        assert_eq!(full("kube-lite/echo"), "docker.io/kube-lite/echo:latest");
    }

    #[test]
    fn registries_are_recognised_by_a_dot_a_port_or_localhost() {
        assert_eq!(
            full("registry.k8s.io/e2e-test-images/agnhost:2.39"),
            "registry.k8s.io/e2e-test-images/agnhost:2.39"
        );
        assert_eq!(full("localhost:5000/app"), "localhost:5000/app:latest");
        assert_eq!(full("localhost/app"), "localhost/app:latest");
    }

    #[test]
    fn a_digest_pins_the_image_and_implies_no_tag() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let r = Reference::parse(&format!("docker.io/library/nginx@{digest}")).unwrap();
        assert_eq!(r.repository, "docker.io/library/nginx");
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some(digest.as_str()));
        let r = Reference::parse(&format!("nginx:1.25@{digest}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("1.25"));
    }

    #[test]
    fn malformed_names_are_refused_with_the_reason() {
        for (name, why) in [
            ("", "empty"),
            ("Nginx", "lowercase"),
            ("nginx:", "empty tag"),
            ("nginx:-x", "tag must start"),
            ("nginx@sha256:abc", "64 hex"),
            ("nginx@", "digest"),
            ("ng!nx", "invalid character"),
            ("library//nginx", "empty path component"),
        ] {
            let err = Reference::parse(name).unwrap_err().to_string();
            assert!(err.contains(why), "{name:?}: {err}");
            assert!(err.starts_with("invalid reference format"), "{err}");
        }
    }
}
