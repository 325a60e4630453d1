//! The Go types of the Kubernetes API, as data: what kube-apiserver knows
//! from its Go structs and their tags, and kube-lite reads from the
//! `.proto` files and tag lists in `protos/` (see `protos/vendor.sh`).
//!
//! - the messages of every served group ([`DESCRIPTORS`]), compiled by
//!   `build.rs`: which fields a type has, and of which type;
//! - the few places where the JSON is not the protobuf message field for
//!   field ([`SCALARS`], [`INLINE`], [`RENAMED`]);
//! - per field, what the Go tags and markers say ([`tags`]): a pointer
//!   ([`POINTERS`]), `omitempty`, `+listType`, `+listMapKey`, `+mapType`,
//!   `+structType`, `patchStrategy` and `patchMergeKey`.
//!
//! Protobuf request bodies (`rest/protobuf.rs`) and server-side apply
//! (`fieldmanager/`) read them.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use prost_reflect::{DescriptorPool, MessageDescriptor};

/// Every message of the groups kube-lite serves, from `protos/`.
pub static DESCRIPTORS: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(include_bytes!(concat!(env!("OUT_DIR"), "/kubernetes.fds")).as_ref())
        .expect("the descriptor set built by build.rs")
});

/// The (message, field) pairs that are pointers in Go, whose zero values
/// are kept.
pub static POINTERS: LazyLock<HashSet<(&'static str, &'static str)>> = LazyLock::new(|| {
    include_str!("../protos/pointers.txt")
        .lines()
        .filter_map(|line| line.split_once(' '))
        .collect()
});

/// Messages that are one JSON value, by full name.
pub const SCALARS: &[&str] = &[
    "k8s.io.apimachinery.pkg.apis.meta.v1.Time",
    "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime",
    "k8s.io.apimachinery.pkg.api.resource.Quantity",
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString",
    "k8s.io.apimachinery.pkg.runtime.RawExtension",
    "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1",
    // `map<string, ExtraValue>`: a list of strings per key.
    "k8s.io.api.authentication.v1.ExtraValue",
    "k8s.io.api.authorization.v1.ExtraValue",
    "k8s.io.api.certificates.v1.ExtraValue",
];

/// (message, field) pairs whose fields JSON shows one level up.
pub const INLINE: &[(&str, &str)] = &[
    ("k8s.io.api.core.v1.Volume", "volumeSource"),
    (
        "k8s.io.api.core.v1.PersistentVolumeSpec",
        "persistentVolumeSource",
    ),
    ("k8s.io.api.core.v1.Probe", "handler"),
    (
        "k8s.io.api.core.v1.EphemeralContainer",
        "ephemeralContainerCommon",
    ),
    (
        "k8s.io.api.core.v1.SecretProjection",
        "localObjectReference",
    ),
    (
        "k8s.io.api.core.v1.ConfigMapVolumeSource",
        "localObjectReference",
    ),
    (
        "k8s.io.api.core.v1.ConfigMapProjection",
        "localObjectReference",
    ),
    (
        "k8s.io.api.core.v1.ConfigMapKeySelector",
        "localObjectReference",
    ),
    (
        "k8s.io.api.core.v1.SecretKeySelector",
        "localObjectReference",
    ),
    (
        "k8s.io.api.core.v1.ConfigMapEnvSource",
        "localObjectReference",
    ),
    ("k8s.io.api.core.v1.SecretEnvSource", "localObjectReference"),
];

/// (message, protobuf name, JSON name).
pub const RENAMED: &[(&str, &str, &str)] = &[(
    "k8s.io.api.authentication.v1.BoundObjectReference",
    "uID",
    "uid",
)];

/// The message type of `kind` in `api_version`: `apps/v1` `Deployment`
/// is `k8s.io.api.apps.v1.Deployment` (a group's package is its first
/// label; the core group's is `core`). `DeleteOptions` and the other
/// meta types are the same in every group.
pub fn message_type(api_version: &str, kind: &str) -> Option<MessageDescriptor> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let package = match group.split('.').next() {
        None | Some("") => "core",
        Some(first) => first,
    };
    DESCRIPTORS
        .get_message_by_name(&format!("k8s.io.api.{package}.{version}.{kind}"))
        .or_else(|| {
            DESCRIPTORS.get_message_by_name(&format!("k8s.io.apimachinery.pkg.apis.meta.v1.{kind}"))
        })
}

/// The tags of every (message, JSON field) that has any, from
/// `protos/fields.txt`; the field `-` holds the markers of the type itself.
type Tags = HashMap<&'static str, HashMap<&'static str, Vec<&'static str>>>;
static TAGS: LazyLock<Tags> = LazyLock::new(|| {
    let mut tags = Tags::new();
    for line in include_str!("../protos/fields.txt").lines() {
        let mut words = line.split(' ');
        if let (Some(message), Some(field)) = (words.next(), words.next()) {
            tags.entry(message)
                .or_default()
                .insert(field, words.collect());
        }
    }
    tags
});

/// The tags of a field (`omitempty`, `listType=map`, `listMapKey=a,b`...),
/// or of the type itself when `field` is `-`.
pub fn tags(message: &str, field: &str) -> &'static [&'static str] {
    TAGS.get(message)
        .and_then(|fields| fields.get(field))
        .map_or(&[], Vec::as_slice)
}

/// The value of the tag `name=value` of a field, if it has one.
pub fn tag(message: &str, field: &str, name: &str) -> Option<&'static str> {
    tags(message, field)
        .iter()
        .find_map(|t| t.strip_prefix(name)?.strip_prefix('='))
}
