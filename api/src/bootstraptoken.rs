//! Bootstrap tokens (`abcdef.0123456789abcdef`): how a machine that has no
//! credentials yet proves it was invited to join.
//!
//! A token is an id and a secret. It lives as a Secret
//! `kube-system/bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token`
//! with an expiry; the apiserver authenticates the bearer as
//! `system:bootstrap:<id>` in `system:bootstrappers` (and the extra groups
//! the Secret names), who may do little more than ask for a certificate.
//! The id is public (it names the Secret), the secret part is not.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use rand::Rng as _;
use serde_json::{json, Value};

/// The Secret type the authenticator accepts.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// The Secret's name is this and the token's id.
pub const SECRET_PREFIX: &str = "bootstrap-token-";
/// Where token Secrets live.
pub const NAMESPACE: &str = "kube-system";
/// The group kubeadm puts its join tokens in (bound to node bootstrapping).
pub const DEFAULT_NODE_TOKEN_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";

fn lowercase_alphanumeric(s: &str, n: usize) -> bool {
    s.len() == n
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// `abcdef.0123456789abcdef`: six and sixteen of `[a-z0-9]`.
pub fn is_token(token: &str) -> bool {
    token.split_once('.').is_some_and(|(id, secret)| {
        lowercase_alphanumeric(id, 6) && lowercase_alphanumeric(secret, 16)
    })
}

/// A new random token.
pub fn generate() -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let mut pick = |n: usize| -> String {
        (0..n)
            .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
            .collect()
    };
    let id = pick(6);
    format!("{id}.{}", pick(16))
}

/// The Secret that makes `token` valid until `expires`, for joining nodes
/// (kubeadm's default token: authentication and signing usages, the
/// default node-token group).
pub fn secret(token: &str, expires: DateTime<Utc>, description: &str) -> Value {
    let (id, secret) = token.split_once('.').unwrap_or((token, ""));
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": format!("{SECRET_PREFIX}{id}"), "namespace": NAMESPACE},
        "type": SECRET_TYPE,
        "data": {
            "token-id": b64(id),
            "token-secret": b64(secret),
            "expiration": b64(&expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            "usage-bootstrap-authentication": b64("true"),
            "usage-bootstrap-signing": b64("true"),
            "auth-extra-groups": b64(DEFAULT_NODE_TOKEN_GROUP),
            "description": b64(description),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_is_six_dot_sixteen_lowercase() {
        assert!(is_token("abcdef.0123456789abcdef"));
        assert!(!is_token("ABCDEF.0123456789abcdef"));
        assert!(!is_token("abcdef.0123456789abcde"));
        assert!(!is_token("abcdef0123456789abcdef"));
        for _ in 0..20 {
            assert!(is_token(&generate()));
        }
    }

    #[test]
    fn the_secret_names_the_id() {
        let expires = "2026-12-08T10:00:00Z".parse().unwrap();
        let s = secret("abcdef.0123456789abcdef", expires, "join");
        assert_eq!(s["metadata"]["name"], "bootstrap-token-abcdef");
        assert_eq!(s["type"], SECRET_TYPE);
        assert_eq!(
            s["data"]["expiration"],
            base64::engine::general_purpose::STANDARD.encode("2026-12-08T10:00:00Z")
        );
    }
}
