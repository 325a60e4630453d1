//! Bearer tokens: how Pods and joining nodes prove who they are.
//!
//! - **ServiceAccount tokens** are JWTs the apiserver signs with the
//!   cluster's service-account key (`--service-account-signing-key-file`,
//!   ES256). `POST .../serviceaccounts/NAME/token` (`kubectl create token`,
//!   and the node agent for each Pod) asks for one: it names the
//!   ServiceAccount (`sub: system:serviceaccount:<ns>:<name>`), expires
//!   (10 minutes at least, an hour by default), and may be *bound* to a
//!   Pod. A token is accepted only while its ServiceAccount - and its Pod,
//!   if bound - still exist with the same uid: deleting the Pod revokes
//!   it, before it expires.
//! - **Bootstrap tokens** (`abcdef.0123456789abcdef`) are Secrets
//!   `bootstrap-token-<id>` in kube-system, as kubeadm makes them: the
//!   caller is `system:bootstrap:<id>` in `system:bootstrappers`, for the
//!   few things a joining node needs before it has a certificate.

use std::sync::Arc;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use api::user::{UserInfo, BOOTSTRAPPERS, SERVICE_ACCOUNTS};

use crate::storage::{ObjectKey, Store};

/// The issuer (and default audience) of ServiceAccount tokens, as
/// kubeadm sets `--service-account-issuer`.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// How long a requested token lives unless asked otherwise (upstream: 1 h).
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The shortest life a token may be asked for (upstream: 10 minutes).
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The longest (upstream's `--service-account-max-token-expiration`
/// default is none; kube-lite caps at a day).
pub const MAX_EXPIRATION_SECONDS: i64 = 24 * 3600;

/// An object a token is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundRef {
    pub name: String,
    pub uid: String,
}

/// The `kubernetes.io` claim: whose token it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaims {
    pub namespace: String,
    pub serviceaccount: BoundRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<BoundRef>,
}

/// A ServiceAccount token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaims,
}

/// The keys that sign and check ServiceAccount tokens.
pub struct ServiceAccountTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    pub issuer: String,
}

impl std::fmt::Debug for ServiceAccountTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountTokens")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// `system:serviceaccount:<namespace>:<name>`.
pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

impl ServiceAccountTokens {
    /// From the signing key (PKCS#8 EC, PEM) and its public key (PEM).
    pub fn from_pem(
        private_pem: &str,
        public_pem: &str,
        issuer: &str,
    ) -> anyhow::Result<ServiceAccountTokens> {
        Ok(ServiceAccountTokens {
            encoding: EncodingKey::from_ec_pem(private_pem.as_bytes())
                .map_err(|e| anyhow::anyhow!("the service-account signing key: {e}"))?,
            decoding: DecodingKey::from_ec_pem(public_pem.as_bytes())
                .map_err(|e| anyhow::anyhow!("the service-account public key: {e}"))?,
            issuer: issuer.to_string(),
        })
    }

    /// Signs a token with these claims.
    pub fn sign(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), claims, &self.encoding)
    }

    /// The claims of a token this key signed, for this issuer, meant for
    /// one of `audiences`, not expired; None otherwise.
    pub fn check(&self, token: &str, audiences: &[String]) -> Option<Claims> {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(audiences);
        validation.leeway = 0;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .ok()
            .map(|data| data.claims)
    }

    /// The caller a token names, if its ServiceAccount (and Pod) are still
    /// the ones it was issued for.
    pub fn authenticate(&self, store: &Store, token: &str) -> Option<UserInfo> {
        let claims = self.check(token, std::slice::from_ref(&self.issuer))?;
        let k = &claims.kubernetes;
        let live_uid = |plural: &str, name: &str| -> Option<String> {
            let resource = api::resources::by_plural("", "v1", plural)?;
            let object = store.get(&ObjectKey::new(resource, Some(&k.namespace), name))?;
            object["metadata"]["uid"].as_str().map(String::from)
        };
        if live_uid("serviceaccounts", &k.serviceaccount.name)? != k.serviceaccount.uid {
            return None;
        }
        if let Some(pod) = &k.pod {
            if live_uid("pods", &pod.name)? != pod.uid {
                return None;
            }
        }
        let mut user = UserInfo::authenticated(
            &service_account_user(&k.namespace, &k.serviceaccount.name),
            &[
                SERVICE_ACCOUNTS.to_string(),
                format!("{SERVICE_ACCOUNTS}:{}", k.namespace),
            ],
        );
        user.uid = k.serviceaccount.uid.clone();
        Some(user)
    }
}

/// The keys, shared.
pub type Tokens = Option<Arc<ServiceAccountTokens>>;

/// `abcdef.0123456789abcdef`: a bootstrap token's form.
pub fn is_bootstrap_token(token: &str) -> bool {
    api::bootstraptoken::is_token(token)
}

/// The caller a bootstrap token names, if kube-system holds it, unexpired
/// and meant for authentication.
pub fn authenticate_bootstrap(
    store: &Store,
    token: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<UserInfo> {
    let (id, secret) = token.split_once('.')?;
    let secrets = api::resources::by_plural("", "v1", "secrets")?;
    let object = store.get(&ObjectKey::new(
        secrets,
        Some("kube-system"),
        &format!("{}{id}", api::bootstraptoken::SECRET_PREFIX),
    ))?;
    if object["type"] != api::bootstraptoken::SECRET_TYPE {
        return None;
    }
    let field = |name: &str| -> Option<String> {
        let encoded = object["data"][name].as_str()?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        String::from_utf8(bytes).ok()
    };
    if field("token-id")? != id || field("token-secret")? != secret {
        return None;
    }
    if field("usage-bootstrap-authentication").as_deref() != Some("true") {
        return None;
    }
    if let Some(expiration) = field("expiration") {
        let expires = chrono::DateTime::parse_from_rfc3339(&expiration).ok()?;
        if expires <= now {
            return None;
        }
    }
    let mut groups = vec![BOOTSTRAPPERS.to_string()];
    groups.extend(
        field("auth-extra-groups")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|g| g.starts_with("system:bootstrappers:"))
            .map(String::from),
    );
    Some(UserInfo::authenticated(
        &format!("system:bootstrap:{id}"),
        &groups,
    ))
}

/// A token request's spec, from JSON (or protobuf, converted).
pub struct TokenRequestSpec {
    pub audiences: Vec<String>,
    pub expiration_seconds: i64,
    /// `boundObjectRef` of kind Pod: its name and (optional) uid.
    pub pod: Option<(String, String)>,
}

impl TokenRequestSpec {
    pub fn from_json(spec: &Value) -> TokenRequestSpec {
        let audiences = spec["audiences"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect();
        let bound = &spec["boundObjectRef"];
        TokenRequestSpec {
            audiences,
            expiration_seconds: spec["expirationSeconds"]
                .as_i64()
                .unwrap_or(DEFAULT_EXPIRATION_SECONDS),
            pod: (bound["kind"] == "Pod").then(|| {
                (
                    bound["name"].as_str().unwrap_or_default().to_string(),
                    bound["uid"].as_str().unwrap_or_default().to_string(),
                )
            }),
        }
    }
}

/// `POST .../serviceaccounts/NAME/token` (a `TokenRequest`): a token for
/// that ServiceAccount, optionally bound to one of its Pods.
pub fn token_request(
    app: &crate::rest::App,
    namespace: &str,
    name: &str,
    protobuf_body: bool,
    body: &[u8],
) -> Result<axum::response::Response, crate::status::StatusError> {
    use crate::status::{FieldError, StatusError, Subject};
    let accounts = api::resources::by_plural("", "v1", "serviceaccounts")
        .ok_or_else(|| StatusError::internal("serviceaccounts are not served"))?;
    let account = app.get_object(&ObjectKey::new(accounts, Some(namespace), name))?;
    let spec = if protobuf_body {
        crate::rest::protobuf::decode(body)?["spec"].clone()
    } else {
        let request: Value = serde_json::from_slice(body).map_err(|e| {
            StatusError::bad_request(format!(
                "TokenRequest in version \"v1\" cannot be handled as a TokenRequest: {e}"
            ))
        })?;
        request["spec"].clone()
    };
    let mut wanted = TokenRequestSpec::from_json(&spec);
    if wanted.expiration_seconds < MIN_EXPIRATION_SECONDS {
        return Err(StatusError::invalid(
            Subject {
                plural: "tokenrequests",
                group: "authentication.k8s.io",
                kind: "TokenRequest",
                name,
            },
            &[FieldError::invalid(
                "spec.expirationSeconds",
                wanted.expiration_seconds.to_string(),
                "may not specify a duration less than 10 minutes",
            )],
        ));
    }
    wanted.expiration_seconds = wanted.expiration_seconds.min(MAX_EXPIRATION_SECONDS);
    if wanted.audiences.is_empty() {
        wanted.audiences = vec![app.tokens.issuer.clone()];
    }
    let pod = match &wanted.pod {
        None => None,
        Some((pod_name, uid)) => {
            let pods = api::resources::by_plural("", "v1", "pods")
                .ok_or_else(|| StatusError::internal("pods are not served"))?;
            let pod = app.get_object(&ObjectKey::new(pods, Some(namespace), pod_name))?;
            let live = pod["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if !uid.is_empty() && *uid != live {
                return Err(StatusError::new(
                    409,
                    "Conflict",
                    format!("the UID in the bound object reference ({uid}) does not match the UID in record. The object might have been deleted and then recreated"),
                ));
            }
            let runs_as = pod["spec"]["serviceAccountName"]
                .as_str()
                .unwrap_or("default");
            if runs_as != name {
                return Err(StatusError::bad_request(format!(
                    "cannot bind token for serviceaccount \"{name}\" to pod running with different serviceaccount name."
                )));
            }
            Some(BoundRef {
                name: pod_name.clone(),
                uid: live,
            })
        }
    };
    let now = chrono::Utc::now();
    let expires = now + chrono::Duration::seconds(wanted.expiration_seconds);
    let claims = Claims {
        iss: app.tokens.issuer.clone(),
        sub: service_account_user(namespace, name),
        aud: wanted.audiences.clone(),
        exp: expires.timestamp(),
        iat: now.timestamp(),
        nbf: now.timestamp(),
        jti: uuid::Uuid::new_v4().to_string(),
        kubernetes: KubernetesClaims {
            namespace: namespace.to_string(),
            serviceaccount: BoundRef {
                name: name.to_string(),
                uid: account["metadata"]["uid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            },
            pod: pod.clone(),
        },
    };
    let token = app
        .tokens
        .sign(&claims)
        .map_err(|e| StatusError::internal(format!("signing the token: {e}")))?;
    let mut answer_spec = serde_json::json!({
        "audiences": wanted.audiences,
        "expirationSeconds": wanted.expiration_seconds,
    });
    if let Some(pod) = &pod {
        answer_spec["boundObjectRef"] = serde_json::json!({"kind": "Pod", "apiVersion": "v1", "name": pod.name, "uid": pod.uid});
    }
    Ok(crate::rest::json_response(
        axum::http::StatusCode::CREATED,
        &serde_json::json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": null},
            "spec": answer_spec,
            "status": {"token": token,
                       "expirationTimestamp": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)},
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> ServiceAccountTokens {
        let (private, public) = api::pki::service_account_key().unwrap();
        ServiceAccountTokens::from_pem(&private, &public, DEFAULT_ISSUER).unwrap()
    }

    fn claims(exp_in: i64, aud: &str) -> Claims {
        let now = chrono::Utc::now().timestamp();
        Claims {
            iss: DEFAULT_ISSUER.into(),
            sub: "system:serviceaccount:default:default".into(),
            aud: vec![aud.into()],
            exp: now + exp_in,
            iat: now,
            nbf: now,
            jti: "j".into(),
            kubernetes: KubernetesClaims {
                namespace: "default".into(),
                serviceaccount: BoundRef {
                    name: "default".into(),
                    uid: "u".into(),
                },
                pod: None,
            },
        }
    }

    #[test]
    fn tokens_check_signature_audience_and_expiry() {
        let keys = keys();
        let aud = [DEFAULT_ISSUER.to_string()];
        let token = keys.sign(&claims(600, DEFAULT_ISSUER)).unwrap();
        assert_eq!(
            keys.check(&token, &aud).unwrap().sub,
            "system:serviceaccount:default:default"
        );
        // Another key, another audience, expired, tampered: refused.
        assert!(self::keys().check(&token, &aud).is_none());
        assert!(keys
            .check(&keys.sign(&claims(600, "vault")).unwrap(), &aud)
            .is_none());
        assert!(keys
            .check(&keys.sign(&claims(-10, DEFAULT_ISSUER)).unwrap(), &aud)
            .is_none());
        // Another payload under the first one's signature: refused.
        let mut parts: Vec<&str> = token.split('.').collect();
        let mut admin = claims(600, DEFAULT_ISSUER);
        admin.sub = "system:serviceaccount:kube-system:admin".into();
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&admin).unwrap());
        parts[1] = &forged;
        assert!(keys.check(&parts.join("."), &aud).is_none());
    }

    #[test]
    fn bootstrap_token_form() {
        assert!(is_bootstrap_token("abcdef.0123456789abcdef"));
        assert!(!is_bootstrap_token("ABCDEF.0123456789abcdef"));
        assert!(!is_bootstrap_token("abcdef.0123456789abcde"));
        assert!(!is_bootstrap_token("eyJhbGciOi.x.y"));
    }
}
