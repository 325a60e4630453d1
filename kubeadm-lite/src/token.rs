//! Bootstrap tokens and the join command (`kubeadm token create
//! --print-join-command`).
//!
//! The join command carries two things: a token (the master trusts whoever
//! holds it, for 24 hours, to ask for a node certificate) and the CA's
//! hash (the worker trusts the master whose CA has it).

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};

use crate::{Error, Result};

/// How long a token made by init or `token create` is valid (kubeadm's).
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);

/// Stores a new token valid for `ttl`; returns it.
pub async fn create(client: kube::Client, ttl: Duration, description: &str) -> Result<String> {
    let token = api::bootstraptoken::generate();
    let expires = chrono::Utc::now()
        + chrono::Duration::from_std(ttl).map_err(|_| Error::flag("--ttl", "too long"))?;
    let secret: Secret =
        serde_json::from_value(api::bootstraptoken::secret(&token, expires, description))
            .map_err(|e| Error::Refused(format!("the token's Secret: {e}")))?;
    let secrets: Api<Secret> = Api::namespaced(client, api::bootstraptoken::NAMESPACE);
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .map_err(Error::api("storing the bootstrap token"))?;
    Ok(token)
}

/// `kubeadm-lite join HOST:PORT --token T --discovery-token-ca-cert-hash H`
pub fn join_command(endpoint: &str, token: &str, ca_pem: &str) -> Result<String> {
    let hash = api::pki::public_key_hash(ca_pem)
        .ok_or_else(|| Error::Refused("the cluster CA is not a certificate".into()))?;
    Ok(format!(
        "kubeadm-lite join {endpoint} --token {token} --discovery-token-ca-cert-hash {hash}"
    ))
}

/// `--ttl`: `24h`, `30m`, `90s` or `0` (never expires is not offered: a
/// forgotten token would stay a way in).
pub fn parse_ttl(text: &str) -> Result<Duration> {
    let bad = || {
        Error::flag(
            "--ttl",
            format!("{text:?} is not a duration like 24h, 30m or 90s"),
        )
    };
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "h" => n * 3600,
        "m" => n * 60,
        "s" => n,
        _ => return Err(bad()),
    };
    if seconds == 0 {
        return Err(Error::flag("--ttl", "must be longer than zero"));
    }
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_read_like_kubeadms() {
        assert_eq!(parse_ttl("24h").unwrap(), DEFAULT_TTL);
        assert_eq!(parse_ttl("90s").unwrap(), Duration::from_secs(90));
        assert!(parse_ttl("1d")
            .unwrap_err()
            .to_string()
            .starts_with("--ttl: \"1d\""));
        assert!(parse_ttl("0s").is_err());
    }

    #[test]
    fn the_join_command_names_the_ca_hash() {
        let ca = api::pki::Ca::generate().unwrap();
        let command = join_command(
            "192.168.56.10:6443",
            "abcdef.0123456789abcdef",
            ca.cert_pem(),
        )
        .unwrap();
        assert!(command.starts_with(
            "kubeadm-lite join 192.168.56.10:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:"
        ));
    }
}
