//! Volumes: directories a Pod's containers see at their `mountPath`.
//!
//! kube-lite implements the kinds the lesson (and most first Pods) use:
//!
//! - **configMap**: each key of a ConfigMap becomes a file. The lesson
//!   mounts `ngx-conf` at /etc/nginx/conf.d, so nginx reads the ConfigMap's
//!   `default.conf` as its server block. When the ConfigMap changes, the
//!   files change too (a running nginx needs a reload to notice).
//! - **secret**: the same for a Secret's keys, but in a directory that is
//!   a `tmpfs` of its own, as the kubelet does it: a Secret's values live
//!   in memory and never reach the node's disk.
//! - **projected**: several sources in one directory - the ServiceAccount
//!   token, ConfigMap and Secret keys, the Pod's name and namespace (every
//!   Pod's `kube-api-access-*` volume is one).
//! - **emptyDir**: an empty directory that lives as long as the Pod, shared
//!   by its containers; with `medium: Memory`, a `tmpfs`.
//! - **hostPath**: a file or directory of the node itself, checked (or
//!   created) by its `type` as the kubelet does.
//!
//! The files of a ConfigMap volume are swapped *atomically*, the way the
//! kubelet's AtomicWriter does it, so a reader never sees half an update:
//!
//! ```text
//! ngx-conf-vol/
//!     ..2026_12_02_17_45_29.000000001/default.conf   the data, one dir per version
//!     ..data -> ..2026_12_02_17_45_29.000000001      switched with one rename(2)
//!     default.conf -> ..data/default.conf            what the container opens
//! ```
//!
//! `ls -la /etc/nginx/conf.d` inside a Pod shows exactly this, as on a
//! real cluster.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{ConfigMap, KeyToPath, Secret, Volume};

/// Why a volume could not be set up: reported as the kubelet's
/// `FailedMount` event and leaves the Pod `ContainerCreating`.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("MountVolume.SetUp failed for volume {volume:?} : configmap {configmap:?} not found")]
    ConfigMapNotFound { volume: String, configmap: String },
    #[error("MountVolume.SetUp failed for volume {volume:?} : configmap references non-existent config key: {key}")]
    MissingKey { volume: String, key: String },
    #[error("MountVolume.SetUp failed for volume {volume:?} : secret {secret:?} not found")]
    SecretNotFound { volume: String, secret: String },
    #[error("MountVolume.SetUp failed for volume {volume:?} : references non-existent secret key: {key}")]
    MissingSecretKey { volume: String, key: String },
    #[error("MountVolume.SetUp failed for volume {volume:?} : invalid path {path:?}")]
    InvalidPath { volume: String, path: String },
    #[error("MountVolume.SetUp failed for volume {volume:?} : hostPath type check failed: {path} is not a {wanted}")]
    HostPathType {
        volume: String,
        path: String,
        wanted: String,
    },
    #[error("volume {volume:?}: {kind} volumes are not supported by kube-lite (configMap, secret, emptyDir, hostPath and projected are)")]
    Unsupported { volume: String, kind: String },
    #[error("MountVolume.SetUp failed for volume {volume:?} : {action}: {source}")]
    Io {
        volume: String,
        action: String,
        #[source]
        source: std::io::Error,
    },
}

/// The files of a volume: path (relative) -> content and mode.
pub type Files = BTreeMap<String, (Vec<u8>, u32)>;

/// Which keys of a ConfigMap or Secret become files, and with which
/// modes: a `configMap` or `secret` volume, or a projected source.
struct Keys<'a> {
    volume: &'a str,
    items: Option<&'a [KeyToPath]>,
    default_mode: u32,
    optional: bool,
}

/// What a ConfigMap or Secret holds, and how to word its absence.
enum Source<'a> {
    ConfigMap(&'a str, Option<&'a ConfigMap>),
    Secret(&'a str, Option<&'a Secret>),
}

impl Source<'_> {
    /// Key -> bytes, or `None` when the object does not exist.
    fn data(&self) -> Option<BTreeMap<String, Vec<u8>>> {
        match self {
            Source::ConfigMap(_, configmap) => {
                let configmap = (*configmap)?;
                let mut data: BTreeMap<String, Vec<u8>> = configmap
                    .data
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
                    .collect();
                for (k, v) in configmap.binary_data.iter().flatten() {
                    data.insert(k.clone(), v.0.clone());
                }
                Some(data)
            }
            Source::Secret(_, secret) => Some(
                (*secret)?
                    .data
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.0.clone()))
                    .collect(),
            ),
        }
    }

    fn not_found(&self, volume: &str) -> VolumeError {
        match self {
            Source::ConfigMap(name, _) => VolumeError::ConfigMapNotFound {
                volume: volume.into(),
                configmap: name.to_string(),
            },
            Source::Secret(name, _) => VolumeError::SecretNotFound {
                volume: volume.into(),
                secret: name.to_string(),
            },
        }
    }

    fn missing_key(&self, volume: &str, key: &str) -> VolumeError {
        let (volume, key) = (volume.to_string(), key.to_string());
        match self {
            Source::ConfigMap(..) => VolumeError::MissingKey { volume, key },
            Source::Secret(..) => VolumeError::MissingSecretKey { volume, key },
        }
    }
}

/// The files `keys` selects from `source`: every key as a file of its
/// name, or only `items`, each at its path.
fn key_files(keys: Keys<'_>, source: Source<'_>) -> Result<Files, VolumeError> {
    let Some(data) = source.data() else {
        if keys.optional {
            return Ok(Files::new());
        }
        return Err(source.not_found(keys.volume));
    };
    let mut files = Files::new();
    match keys.items {
        Some(items) if !items.is_empty() => {
            for item in items {
                let Some(content) = data.get(&item.key) else {
                    if keys.optional {
                        continue;
                    }
                    return Err(source.missing_key(keys.volume, &item.key));
                };
                check_relative(keys.volume, &item.path)?;
                let mode = item.mode.map_or(keys.default_mode, |m| m as u32);
                files.insert(item.path.clone(), (content.clone(), mode));
            }
        }
        _ => {
            for (key, content) in data {
                check_relative(keys.volume, &key)?;
                files.insert(key, (content, keys.default_mode));
            }
        }
    }
    Ok(files)
}

/// Computes the files a configMap volume should hold, from the volume's
/// spec and the ConfigMap (`None` when it does not exist).
pub fn configmap_files(
    volume: &Volume,
    configmap: Option<&ConfigMap>,
) -> Result<Files, VolumeError> {
    let source = volume.config_map.as_ref().expect("a configMap volume");
    let keys = Keys {
        volume: &volume.name,
        items: source.items.as_deref(),
        default_mode: source.default_mode.map_or(DEFAULT_MODE, |m| m as u32),
        optional: source.optional == Some(true),
    };
    key_files(keys, Source::ConfigMap(&source.name, configmap))
}

/// Computes the files a secret volume should hold, from the volume's spec
/// and the Secret (`None` when it does not exist).
pub fn secret_files(volume: &Volume, secret: Option<&Secret>) -> Result<Files, VolumeError> {
    let source = volume.secret.as_ref().expect("a secret volume");
    let name = source.secret_name.as_deref().unwrap_or_default();
    let keys = Keys {
        volume: &volume.name,
        items: source.items.as_deref(),
        default_mode: source.default_mode.map_or(DEFAULT_MODE, |m| m as u32),
        optional: source.optional == Some(true),
    };
    key_files(keys, Source::Secret(name, secret))
}

/// The mode of volume files when the volume does not say (0644, the
/// API's default for configMap, secret and projected volumes).
const DEFAULT_MODE: u32 = 0o644;

/// What a projected volume's `serviceAccountToken` source asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenWanted {
    pub audience: Option<String>,
    pub expiration_seconds: i64,
}

/// The token source of a projected volume, if it has one (it has at most
/// one, as the API's validation allows).
pub fn token_wanted(volume: &Volume) -> Option<TokenWanted> {
    volume
        .projected
        .as_ref()?
        .sources
        .iter()
        .flatten()
        .find_map(|s| s.service_account_token.as_ref())
        .map(|t| TokenWanted {
            audience: t.audience.clone().filter(|a| !a.is_empty()),
            expiration_seconds: t.expiration_seconds.unwrap_or(3600),
        })
}

/// Computes the files of a projected volume: what its sources project
/// into one directory. kube-lite serves `serviceAccountToken` (the token
/// the worker obtained, `token`), `configMap`, `secret` and `downwardAPI`
/// (the Pod's name, namespace, uid); the `kube-api-access-*` volume every
/// Pod gets is a token, a ConfigMap and the namespace.
pub fn projected_files(
    volume: &Volume,
    pod: &k8s_openapi::api::core::v1::Pod,
    configmap: impl Fn(&str) -> Option<std::sync::Arc<ConfigMap>>,
    secret: impl Fn(&str) -> Option<std::sync::Arc<Secret>>,
    token: Option<&str>,
) -> Result<Files, VolumeError> {
    let projected = volume.projected.as_ref().expect("a projected volume");
    let default_mode = projected.default_mode.map_or(DEFAULT_MODE, |m| m as u32);
    let mut files = Files::new();
    for source in projected.sources.iter().flatten() {
        if let Some(t) = &source.service_account_token {
            check_relative(&volume.name, &t.path)?;
            let Some(token) = token else {
                return Err(VolumeError::Io {
                    volume: volume.name.clone(),
                    action: "requesting a ServiceAccount token".into(),
                    source: std::io::Error::other("no token yet"),
                });
            };
            files.insert(t.path.clone(), (token.as_bytes().to_vec(), default_mode));
        } else if let Some(c) = &source.config_map {
            let keys = Keys {
                volume: &volume.name,
                items: c.items.as_deref(),
                default_mode,
                optional: c.optional == Some(true),
            };
            let found = configmap(&c.name);
            files.extend(key_files(
                keys,
                Source::ConfigMap(&c.name, found.as_deref()),
            )?);
        } else if let Some(s) = &source.secret {
            let keys = Keys {
                volume: &volume.name,
                items: s.items.as_deref(),
                default_mode,
                optional: s.optional == Some(true),
            };
            let found = secret(&s.name);
            files.extend(key_files(keys, Source::Secret(&s.name, found.as_deref()))?);
        } else if let Some(d) = &source.downward_api {
            for item in d.items.iter().flatten() {
                check_relative(&volume.name, &item.path)?;
                let field = item.field_ref.as_ref().map(|f| f.field_path.as_str());
                let value = match field {
                    Some("metadata.name") => pod.metadata.name.clone(),
                    Some("metadata.namespace") => pod.metadata.namespace.clone(),
                    Some("metadata.uid") => pod.metadata.uid.clone(),
                    _ => {
                        return Err(VolumeError::Unsupported {
                            volume: volume.name.clone(),
                            kind: format!("downwardAPI {field:?}"),
                        })
                    }
                };
                let mode = item.mode.map_or(default_mode, |m| m as u32);
                files.insert(
                    item.path.clone(),
                    (value.unwrap_or_default().into_bytes(), mode),
                );
            }
        } else {
            return Err(VolumeError::Unsupported {
                volume: volume.name.clone(),
                kind: "projected clusterTrustBundle or podCertificate".into(),
            });
        }
    }
    Ok(files)
}

/// Turns an I/O error of `action` on `volume` into a [`VolumeError`].
fn io_error(volume: &str, action: String) -> impl FnOnce(std::io::Error) -> VolumeError {
    let volume = volume.to_string();
    move |source| VolumeError::Io {
        volume,
        action,
        source,
    }
}

fn check_relative(volume: &str, path: &str) -> Result<(), VolumeError> {
    let p = Path::new(path);
    let ok = !path.is_empty()
        && !path.starts_with("..")
        && p.components().all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(())
    } else {
        Err(VolumeError::InvalidPath {
            volume: volume.to_string(),
            path: path.to_string(),
        })
    }
}

/// Makes `dir` hold exactly `files`, switching atomically; does nothing
/// when it already does. Returns whether anything changed.
pub fn write_atomically(volume: &str, dir: &Path, files: &Files) -> Result<bool, VolumeError> {
    let io = |action: String| io_error(volume, action);
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let data_link = dir.join("..data");
    if let Ok(current) = std::fs::read_link(&data_link) {
        if read_files(&dir.join(&current)).as_ref() == Some(files) {
            return Ok(false);
        }
    }
    // 1. The new version, in a directory of its own.
    let stamp = chrono::Utc::now()
        .format("..%Y_%m_%d_%H_%M_%S.%f")
        .to_string();
    let version = dir.join(&stamp);
    for (path, (content, mode)) in files {
        let file = version.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)
                .map_err(io(format!("creating {}", parent.display())))?;
        }
        std::fs::write(&file, content).map_err(io(format!("writing {}", file.display())))?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(*mode))
            .map_err(io(format!("setting the mode of {}", file.display())))?;
    }
    std::fs::create_dir_all(&version).map_err(io(format!("creating {}", version.display())))?;
    // 2. Switch `..data` to it with one rename.
    let tmp_link = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp_link);
    std::os::unix::fs::symlink(&stamp, &tmp_link)
        .map_err(io(format!("linking {}", tmp_link.display())))?;
    let old = std::fs::read_link(&data_link).ok();
    std::fs::rename(&tmp_link, &data_link)
        .map_err(io(format!("switching {}", data_link.display())))?;
    // 3. The user-visible names point through `..data`.
    let wanted: std::collections::BTreeSet<String> = files
        .keys()
        .filter_map(|p| p.split('/').next().map(str::to_string))
        .collect();
    for name in &wanted {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(name), &link)
                .map_err(io(format!("linking {}", link.display())))?;
        }
    }
    // 4. Remove names that went away, and the old version.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with("..") && !wanted.contains(&name) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    if let Some(old) = old {
        if old != Path::new(&stamp) {
            let _ = std::fs::remove_dir_all(dir.join(old));
        }
    }
    Ok(true)
}

/// Makes `dir` a `tmpfs` of its own (once): a Secret volume's files live
/// in memory, never on the node's disk (the kubelet mounts secret volumes
/// the same way; `mount | grep secret` on a node shows them).
pub fn memory_backed(volume: &str, dir: &Path) -> Result<(), VolumeError> {
    use nix::mount::{mount, MsFlags};
    let io = |action: String| io_error(volume, action);
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    if is_mount_point(dir) {
        return Ok(());
    }
    mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=0755"),
    )
    .map_err(|errno| std::io::Error::from_raw_os_error(errno as i32))
    .map_err(io(format!("mounting a tmpfs at {}", dir.display())))
}

/// Checks a `hostPath` volume by its `type`, creating what the `...OrCreate`
/// types ask for (as the kubelet does before the container starts).
pub fn host_path(
    volume: &str,
    source: &k8s_openapi::api::core::v1::HostPathVolumeSource,
) -> Result<(), VolumeError> {
    use std::os::unix::fs::FileTypeExt;
    let path = Path::new(&source.path);
    let io = |action: String| io_error(volume, action);
    let kind = source.type_.as_deref().unwrap_or_default();
    match kind {
        "DirectoryOrCreate" if !path.exists() => {
            std::fs::create_dir_all(path).map_err(io(format!("creating {}", path.display())))?;
        }
        "FileOrCreate" if !path.exists() => {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(io(format!("creating {}", path.display())))?;
        }
        _ => {}
    }
    let meta = std::fs::metadata(path);
    let file_type = meta.as_ref().map(|m| m.file_type()).ok();
    let (ok, wanted) = match kind {
        "" => (true, ""),
        "Directory" | "DirectoryOrCreate" => (file_type.is_some_and(|t| t.is_dir()), "directory"),
        "File" | "FileOrCreate" => (file_type.is_some_and(|t| t.is_file()), "file"),
        "Socket" => (file_type.is_some_and(|t| t.is_socket()), "socket"),
        "CharDevice" => (
            file_type.is_some_and(|t| t.is_char_device()),
            "character device",
        ),
        "BlockDevice" => (
            file_type.is_some_and(|t| t.is_block_device()),
            "block device",
        ),
        other => (false, other),
    };
    if ok {
        Ok(())
    } else {
        Err(VolumeError::HostPathType {
            volume: volume.into(),
            path: source.path.clone(),
            wanted: wanted.into(),
        })
    }
}

/// Whether `dir` is the root of a mount (it sits on another device than
/// its parent).
fn is_mount_point(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(own), Some(Ok(parent))) = (std::fs::metadata(dir), dir.parent().map(std::fs::metadata))
    else {
        return false;
    };
    own.dev() != parent.dev()
}

/// Unmounts the memory-backed volumes of a Pod's directory, so that it can
/// be removed (a mount point cannot).
pub fn unmount_memory_backed(pod_dir: &Path) {
    let kinds = ["secret", "empty-dir"];
    let entries = kinds
        .iter()
        .filter_map(|kind| std::fs::read_dir(pod_dir.join("volumes").join(kind)).ok())
        .flatten();
    for entry in entries.flatten() {
        let dir = entry.path();
        if is_mount_point(&dir) {
            if let Err(error) = nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH) {
                tracing::warn!(dir = %dir.display(), %error, "unmounting a secret volume");
            }
        }
    }
}

/// The files of one version directory, as [`Files`].
fn read_files(version: &Path) -> Option<Files> {
    fn walk(root: &Path, dir: &Path, out: &mut Files) -> Option<()> {
        for entry in std::fs::read_dir(dir).ok()?.flatten() {
            let path = entry.path();
            let meta = entry.metadata().ok()?;
            if meta.is_dir() {
                walk(root, &path, out)?;
            } else {
                let rel = path.strip_prefix(root).ok()?.to_string_lossy().into_owned();
                let mode = meta.permissions().mode() & 0o7777;
                out.insert(rel, (std::fs::read(&path).ok()?, mode));
            }
        }
        Some(())
    }
    let mut files = Files::new();
    walk(version, version, &mut files)?;
    Some(files)
}

/// The kind of a volume, for directories and messages.
pub fn kind(volume: &Volume) -> &'static str {
    if volume.config_map.is_some() {
        "configmap"
    } else if volume.empty_dir.is_some() {
        "empty-dir"
    } else if volume.secret.is_some() {
        "secret"
    } else if volume.host_path.is_some() {
        "host-path"
    } else if volume.persistent_volume_claim.is_some() {
        "persistentVolumeClaim"
    } else if volume.projected.is_some() {
        "projected"
    } else {
        "unknown"
    }
}

/// Where a Pod keeps a volume: `<pod dir>/volumes/<kind>/<name>`, like the
/// kubelet's `pods/<uid>/volumes/kubernetes.io~configmap/<name>`.
pub fn volume_dir(pod_dir: &Path, volume: &Volume) -> PathBuf {
    pod_dir
        .join("volumes")
        .join(kind(volume))
        .join(&volume.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ConfigMapVolumeSource, KeyToPath};

    fn volume(items: Option<Vec<KeyToPath>>, optional: Option<bool>) -> Volume {
        Volume {
            name: "conf".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: "ngx-conf".into(),
                items,
                optional,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn configmap(data: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn keys_become_files_and_updates_switch_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let vol = volume(None, None);
        let files = configmap_files(&vol, Some(&configmap(&[("default.conf", "one")]))).unwrap();
        assert!(write_atomically("conf", dir.path(), &files).unwrap());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("default.conf")).unwrap(),
            "one"
        );
        assert!(
            !write_atomically("conf", dir.path(), &files).unwrap(),
            "unchanged"
        );
        let first = std::fs::read_link(dir.path().join("..data")).unwrap();

        let files = configmap_files(&vol, Some(&configmap(&[("other.conf", "two")]))).unwrap();
        assert!(write_atomically("conf", dir.path(), &files).unwrap());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("other.conf")).unwrap(),
            "two"
        );
        assert!(!dir.path().join("default.conf").exists(), "removed key");
        assert!(!dir.path().join(first).exists(), "old version removed");
        assert_eq!(
            std::fs::read_link(dir.path().join("other.conf")).unwrap(),
            Path::new("..data/other.conf")
        );
    }

    #[test]
    fn items_modes_and_missing_configmaps() {
        let vol = volume(
            Some(vec![KeyToPath {
                key: "a".into(),
                path: "sub/a.txt".into(),
                mode: Some(0o600),
                ..Default::default()
            }]),
            None,
        );
        let files = configmap_files(&vol, Some(&configmap(&[("a", "x"), ("b", "y")]))).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files["sub/a.txt"], (b"x".to_vec(), 0o600));
        let err = configmap_files(&vol, None).unwrap_err().to_string();
        assert!(err.contains("configmap \"ngx-conf\" not found"), "{err}");
        assert!(configmap_files(&volume(None, Some(true)), None)
            .unwrap()
            .is_empty());
        let bad = volume(
            Some(vec![KeyToPath {
                key: "a".into(),
                path: "../escape".into(),
                mode: None,
                ..Default::default()
            }]),
            None,
        );
        assert!(configmap_files(&bad, Some(&configmap(&[("a", "x")]))).is_err());
    }
}
