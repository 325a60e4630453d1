//! The pod-template hash: how a ReplicaSet is named after the template it
//! runs (`<deployment>-<hash>`), and how the new ReplicaSet is found.

use super::*;

/// FNV-1a, 32 bits: the hash Go's `hash/fnv` gives `ComputeHash`.
pub(super) fn fnv32a(bytes: &[u8], mut hash: u32) -> u32 {
    for b in bytes {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}
pub(super) const FNV32_OFFSET: u32 = 0x811c_9dc5;

/// Maps each byte of `s` onto [`SAFE_ALPHABET`] (`rand.SafeEncodeString`).
pub fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()] as char)
        .collect()
}

/// The `pod-template-hash` of a template, as upstream's `ComputeHash`:
/// FNV-32a of the template (here its JSON form, which is stable: struct
/// fields in order, maps sorted), plus the Deployment's `collisionCount`
/// when set, printed in decimal and safe-encoded (up to 10 characters,
/// e.g. `6796688696`).
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let json = serde_json::to_vec(template).expect("a PodTemplateSpec always serializes");
    let mut hash = fnv32a(&json, FNV32_OFFSET);
    if let Some(count) = collision_count {
        // Upstream writes the count as 8 bytes, little-endian u32 first.
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&(count as u32).to_le_bytes());
        hash = fnv32a(&bytes, hash);
    }
    safe_encode(&hash.to_string())
}

/// Whether two templates are the same version, ignoring the hash label
/// (`EqualIgnoreHash`): that is how the new ReplicaSet is recognised, so a
/// change in how hashes are computed never starts a rollout by itself.
pub fn equal_ignoring_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    pub(super) fn without_hash(t: &PodTemplateSpec) -> PodTemplateSpec {
        let mut t = t.clone();
        if let Some(meta) = t.metadata.as_mut() {
            if let Some(labels) = meta.labels.as_mut() {
                labels.remove(POD_TEMPLATE_HASH_LABEL);
                if labels.is_empty() {
                    meta.labels = None;
                }
            }
        }
        if t.metadata == Some(ObjectMeta::default()) {
            t.metadata = None;
        }
        t
    }
    without_hash(a) == without_hash(b)
}
