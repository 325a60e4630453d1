//! Authentication: who is calling.
//!
//! kube-apiserver asks each authenticator in turn and takes the first that
//! recognizes the request's credentials:
//!
//! - **x509 client certificates**: the TLS handshake proved the caller
//!   holds the key of a certificate the cluster CA signed; its CN is the
//!   user name and each O a group (`CN=kubernetes-admin, O=system:masters`).
//!   `api::tls` reads it once per connection and hands it to every
//!   request of that connection as a `PeerIdentity`.
//! - **bearer tokens** (`Authorization: Bearer ...`): ServiceAccount and
//!   bootstrap tokens ([`tokens`](crate::tokens)). A token that is not
//!   valid is a 401, never a fall-back to anonymous.
//! - **anonymous**: no credentials at all. As kube-apiserver configured
//!   with `anonymous.conditions` (1.34), anonymous requests are accepted
//!   only on a few paths: health, version, discovery and the `cluster-info`
//!   ConfigMap a joining node reads; anywhere else they get 401
//!   Unauthorized.
//!
//! In dev mode (plain HTTP on loopback, no TLS material) there are no
//! credentials to check: every request is `system:unsecured` in
//! `system:masters`, as kube-apiserver's old insecure port was.
//!
//! **Impersonation** (`kubectl --as=jane --as-group=dev`): a caller that
//! RBAC allows to `impersonate` users (and groups) acts as that user for
//! this request - how an administrator checks what someone else may do.
//!
//! The result is a [`Caller`] in the request's extensions; the authorizer
//! ([`authz`](crate::authz)) decides what it may do.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use api::tls::PeerIdentity;
use api::user::{UserInfo, ANONYMOUS, AUTHENTICATED, SYSTEM_MASTERS};

use crate::authz::{check, Attributes};
use crate::status::StatusError;
use crate::storage::Store;

/// How this apiserver is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// HTTPS: callers prove who they are.
    Secure,
    /// Plain HTTP on loopback: every caller is an administrator.
    Dev,
}

/// Who made this request, once authenticated.
#[derive(Debug, Clone)]
pub struct Caller(pub UserInfo);

/// The dev-mode user.
pub const UNSECURED_USER: &str = "system:unsecured";

/// Paths anonymous callers may reach (then subject to authorization):
/// health, version, discovery and OpenAPI, and the ConfigMap a joining
/// node reads before it has credentials.
pub fn anonymous_may_ask(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    matches!(path, "/healthz" | "/livez" | "/readyz" | "/version")
        || path.starts_with("/healthz/")
        || path.starts_with("/livez/")
        || path.starts_with("/readyz/")
        || is_discovery(path)
        || path == crate::authz::CLUSTER_INFO_PATH
}

/// `/api`, `/api/v1`, `/apis`, `/apis/<group>`, `/apis/<group>/<version>`,
/// `/openapi/...`: where clients learn what is served.
pub fn is_discovery(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    matches!(
        segments.as_slice(),
        ["api"] | ["api", _] | ["apis"] | ["apis", _] | ["apis", _, _] | ["openapi", ..]
    )
}

/// What authentication needs: how the server is reached, and the store
/// (impersonation is authorized by RBAC).
#[derive(Clone)]
pub struct Authenticator {
    pub mode: Mode,
    pub store: Arc<Store>,
    pub tokens: Arc<crate::tokens::ServiceAccountTokens>,
}

/// The authentication step of every request.
pub async fn authenticate(
    State(authenticator): State<Authenticator>,
    mut request: Request,
    next: Next,
) -> Response {
    let user = caller(&authenticator, &request)
        .and_then(|user| impersonate(&authenticator.store, user, request.headers()));
    match user {
        Ok(user) => {
            request.extensions_mut().insert(Caller(user));
            next.run(request).await
        }
        Err(error) => error.into_response(),
    }
}

fn caller(authenticator: &Authenticator, request: &Request) -> Result<UserInfo, StatusError> {
    if authenticator.mode == Mode::Dev {
        return Ok(UserInfo::authenticated(
            UNSECURED_USER,
            &[SYSTEM_MASTERS.to_string(), AUTHENTICATED.to_string()],
        ));
    }
    if let Some(PeerIdentity(Some(user))) = request.extensions().get::<PeerIdentity>() {
        return Ok(user.clone());
    }
    if let Some(authorization) = request.headers().get(axum::http::header::AUTHORIZATION) {
        // A token that no authenticator accepts is an error, never a
        // fall-back to anonymous.
        let token = authorization
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(unauthorized)?;
        let user = if crate::tokens::is_bootstrap_token(token) {
            crate::tokens::authenticate_bootstrap(&authenticator.store, token, chrono::Utc::now())
        } else {
            authenticator
                .tokens
                .authenticate(&authenticator.store, token)
        };
        return user.ok_or_else(unauthorized);
    }
    if anonymous_may_ask(request.uri().path()) {
        return Ok(UserInfo::anonymous());
    }
    Err(unauthorized())
}

/// The user a request impersonates (`Impersonate-User`,
/// `Impersonate-Group` headers), if `user` may; else `user` itself.
fn impersonate(
    store: &Store,
    user: UserInfo,
    headers: &axum::http::HeaderMap,
) -> Result<UserInfo, StatusError> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(String::from)
            .collect()
    };
    let target = values("impersonate-user");
    let groups = values("impersonate-group");
    let Some(target) = target.first() else {
        if groups.is_empty() {
            return Ok(user);
        }
        return Err(StatusError::bad_request(
            "requested [Impersonate-Group] without impersonating a user",
        ));
    };
    let snapshot = store.snapshot();
    let check = |resource: &str, name: &str| -> Result<(), StatusError> {
        let attributes = Attributes::Resource {
            verb: "impersonate".into(),
            group: String::new(),
            resource: resource.into(),
            subresource: String::new(),
            namespace: String::new(),
            name: name.into(),
        };
        check(&snapshot, &user, &attributes)
    };
    check("users", target)?;
    for group in &groups {
        check("groups", group)?;
    }
    let mut all = groups;
    if let Some(namespace) = target
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
        .map(|(ns, _)| ns)
    {
        all.push(api::user::SERVICE_ACCOUNTS.into());
        all.push(format!("{}:{namespace}", api::user::SERVICE_ACCOUNTS));
    }
    if target == ANONYMOUS {
        return Ok(UserInfo {
            username: target.clone(),
            uid: String::new(),
            groups: all,
        });
    }
    Ok(UserInfo::authenticated(target, &all))
}

/// 401, worded as kube-apiserver words it.
pub fn unauthorized() -> StatusError {
    StatusError::new(401, "Unauthorized", "Unauthorized")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_paths() {
        for path in [
            "/healthz",
            "/livez",
            "/readyz",
            "/version",
            "/version/",
            "/api",
            "/api/v1",
            "/apis/",
            "/apis/apps",
            "/apis/apps/v1",
            "/openapi/v2",
            "/openapi/v3/api/v1",
            "/api/v1/namespaces/kube-public/configmaps/cluster-info",
        ] {
            assert!(anonymous_may_ask(path), "{path}");
        }
        for path in [
            "/api/v1/pods",
            "/api/v1/namespaces/default/pods",
            "/apis/apps/v1/deployments",
            "/api/v1/namespaces/kube-public/configmaps",
            "/api/v1/namespaces/kube-system/configmaps/cluster-info",
            "/metrics",
        ] {
            assert!(!anonymous_may_ask(path), "{path}");
        }
    }
}
