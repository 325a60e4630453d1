//! Authorization: may this caller do this?
//!
//! kube-apiserver first turns the request into *attributes* (upstream's
//! `RequestInfo`): for a resource request the verb (`get`, `list`,
//! `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`),
//! API group, resource, subresource, namespace and name; for anything else
//! the path and the HTTP verb. Then each authorizer in turn may allow,
//! deny or have no opinion; with no "allow", the answer is 403 Forbidden,
//! worded so that the reader sees who asked for what:
//!
//! ```text
//! pods is forbidden: User "jane" cannot list resource "pods" in API group "" in the namespace "default"
//! ```
//!
//! Who decides, in order (kube-apiserver's `--authorization-mode
//! Node,RBAC`, after its privileged-group check):
//!
//! - members of `system:masters` may do anything, whatever RBAC says
//!   (a cluster can always be repaired with the admin certificate);
//! - the [`node`] authorizer speaks for node agents (`system:node:<name>`):
//!   what every node agent needs;
//! - [`rbac`]: the roles bound to the caller (the defaults are in
//!   [`policy`]: anonymous callers get health, version and discovery,
//!   every authenticated one `system:basic-user` too, ...).

pub mod node;
pub mod policy;
pub mod rbac;
pub mod review;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use api::user::{UserInfo, SYSTEM_MASTERS};

use crate::authn::Caller;
use crate::status::StatusError;
use crate::storage::{Snapshot, Store};

/// The ConfigMap a joining node reads anonymously (kubeadm's
/// `cluster-info`, with the CA certificate and the apiserver's address).
pub const CLUSTER_INFO_PATH: &str = "/api/v1/namespaces/kube-public/configmaps/cluster-info";

/// What a request asks to do (upstream's `RequestInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attributes {
    /// A request on an API resource.
    Resource {
        verb: String,
        group: String,
        resource: String,
        subresource: String,
        namespace: String,
        name: String,
    },
    /// Any other path: `/healthz`, `/api`, `/version`, `/metrics`.
    NonResource { verb: String, path: String },
}

impl Attributes {
    /// The attributes of a request, from its method, path and query.
    pub fn of(method: &Method, path: &str, query: Option<&str>) -> Attributes {
        let http_verb = method.as_str().to_ascii_lowercase();
        let non_resource = || Attributes::NonResource {
            verb: http_verb.clone(),
            path: path.to_string(),
        };
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, rest) = match segments.as_slice() {
            ["api", _version, rest @ ..] if !rest.is_empty() => ("", rest),
            ["apis", group, _version, rest @ ..] if !rest.is_empty() => (*group, rest),
            _ => return non_resource(),
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, resource, rest @ ..]
                if !matches!(*resource, "status" | "finalize") =>
            {
                (ns.to_string(), [&[*resource][..], rest].concat())
            }
            _ => (String::new(), rest.to_vec()),
        };
        let (resource, name, subresource) = match rest.as_slice() {
            [resource] => (*resource, "", ""),
            [resource, name] => (*resource, *name, ""),
            // `nodes/NAME/proxy/anything...`: the rest is the kubelet's.
            [resource, name, sub, ..] => (*resource, *name, *sub),
            _ => return non_resource(),
        };
        let watch = query.is_some_and(|q| {
            form_urlencoded::parse(q.as_bytes())
                .any(|(k, v)| k == "watch" && crate::rest::request::query_bool(&v))
        });
        let verb = match (method, name.is_empty()) {
            (&Method::GET | &Method::HEAD, true) if watch => "watch",
            (&Method::GET | &Method::HEAD, true) => "list",
            (&Method::GET | &Method::HEAD, false) => "get",
            (&Method::POST, _) => "create",
            (&Method::PUT, _) => "update",
            (&Method::PATCH, _) => "patch",
            (&Method::DELETE, true) => "deletecollection",
            (&Method::DELETE, false) => "delete",
            _ => return non_resource(),
        };
        // A list or watch of one object by `metadata.name` is authorized
        // as that object (upstream's RequestInfo does the same): how a
        // node agent follows the one Secret a Pod of its names.
        let name = match verb {
            "list" | "watch" => query.and_then(name_from_field_selector).unwrap_or_default(),
            _ => name.to_string(),
        };
        // A WebSocket exec or attach is a GET, but it runs a command: it
        // needs what a POST would (upstream since 1.31).
        let verb = if matches!(subresource, "exec" | "attach" | "portforward") {
            "create"
        } else {
            verb
        };
        Attributes::Resource {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: subresource.into(),
            namespace,
            name,
        }
    }
}

/// The name a `fieldSelector` requires exactly (`metadata.name=x` or
/// `==x`, possibly beside other terms), if it is a valid path segment.
fn name_from_field_selector(query: &str) -> Option<String> {
    let selector = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "fieldSelector")?
        .1;
    let name = selector.split(',').find_map(|term| {
        let value = term.trim().strip_prefix("metadata.name")?;
        value
            .strip_prefix("==")
            .or_else(|| value.strip_prefix('='))
            .map(str::trim)
    })?;
    let valid = !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '%']);
    valid.then(|| name.to_string())
}

/// What an authorizer says (upstream's `Decision` and reason): a
/// `NoOpinion` may carry why, which kube-apiserver appends to the 403.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    NoOpinion(Option<String>),
}

/// The decision for `user` doing `attributes`, by the roles and bindings
/// of `snapshot`: `Ok`, or the reasons the authorizers gave for not
/// allowing it (empty when they gave none).
pub fn decide(
    snapshot: &Snapshot<'_>,
    user: &UserInfo,
    attributes: &Attributes,
) -> Result<(), String> {
    if user.in_group(SYSTEM_MASTERS) {
        return Ok(());
    }
    let reason = match node::authorize(snapshot, user, attributes) {
        Decision::Allow => return Ok(()),
        Decision::NoOpinion(reason) => reason,
    };
    if rbac::allows(snapshot, user, attributes) {
        return Ok(());
    }
    Err(reason.unwrap_or_default())
}

/// Whether `user` may do `attributes`.
pub fn allowed(snapshot: &Snapshot<'_>, user: &UserInfo, attributes: &Attributes) -> bool {
    decide(snapshot, user, attributes).is_ok()
}

/// Allowed, or the 403 that says why not.
pub fn check(
    snapshot: &Snapshot<'_>,
    user: &UserInfo,
    attributes: &Attributes,
) -> Result<(), StatusError> {
    decide(snapshot, user, attributes).map_err(|reason| forbidden(user, attributes, &reason))
}

/// 403, worded as kube-apiserver words it, with the authorizers' reason
/// after a colon when they gave one.
pub fn forbidden(user: &UserInfo, attributes: &Attributes, reason: &str) -> StatusError {
    let mut error = forbidden_without_reason(user, attributes);
    if !reason.is_empty() {
        error.message = format!("{}: {reason}", error.message);
    }
    error
}

fn forbidden_without_reason(user: &UserInfo, attributes: &Attributes) -> StatusError {
    match attributes {
        Attributes::NonResource { verb, path } => StatusError::new(
            403,
            "Forbidden",
            format!(
                "forbidden: User \"{}\" cannot {verb} path \"{path}\"",
                user.username
            ),
        ),
        Attributes::Resource {
            verb,
            group,
            resource,
            subresource,
            namespace,
            name,
        } => {
            let qualified = crate::status::qualified(resource, group);
            let what = if name.is_empty() {
                format!("{qualified} is forbidden")
            } else {
                format!("{qualified} \"{name}\" is forbidden")
            };
            let full_resource = if subresource.is_empty() {
                resource.clone()
            } else {
                format!("{resource}/{subresource}")
            };
            let scope = if namespace.is_empty() {
                "at the cluster scope".to_string()
            } else {
                format!("in the namespace \"{namespace}\"")
            };
            let mut error = StatusError::new(
                403,
                "Forbidden",
                format!(
                    "{what}: User \"{}\" cannot {verb} resource \"{full_resource}\" in API group \"{group}\" {scope}",
                    user.username
                ),
            );
            let mut details = json!({"kind": resource});
            if !name.is_empty() {
                details["name"] = json!(name);
            }
            if !group.is_empty() {
                details["group"] = json!(group);
            }
            error.details = Some(details);
            error
        }
    }
}

/// The authorization step of every request (after authentication).
pub async fn authorize(State(store): State<Arc<Store>>, request: Request, next: Next) -> Response {
    let Some(Caller(user)) = request.extensions().get::<Caller>().cloned() else {
        return crate::authn::unauthorized().into_response();
    };
    let attributes = Attributes::of(
        request.method(),
        request.uri().path(),
        request.uri().query(),
    );
    if let Err(error) = check(&store.snapshot(), &user, &attributes) {
        tracing::debug!(user = %user.username, ?attributes, "forbidden");
        return error.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A resource request, shared by the authorizers' tests.
    pub(super) fn resource(
        verb: &str,
        group: &str,
        resource: &str,
        sub: &str,
        ns: &str,
        name: &str,
    ) -> Attributes {
        Attributes::Resource {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            name: name.into(),
        }
    }

    #[test]
    fn request_attributes() {
        let of =
            |method: Method, path: &str, query: Option<&str>| Attributes::of(&method, path, query);
        assert_eq!(
            of(Method::GET, "/api/v1/namespaces/default/pods", None),
            resource("list", "", "pods", "", "default", "")
        );
        assert_eq!(
            of(
                Method::GET,
                "/api/v1/pods",
                Some("watch=true&resourceVersion=5")
            ),
            resource("watch", "", "pods", "", "", "")
        );
        assert_eq!(
            of(
                Method::PATCH,
                "/apis/apps/v1/namespaces/default/deployments/ngx-dep/scale",
                None
            ),
            resource(
                "patch",
                "apps",
                "deployments",
                "scale",
                "default",
                "ngx-dep"
            )
        );
        assert_eq!(
            of(
                Method::GET,
                "/api/v1/namespaces/default/pods/p/exec",
                Some("command=sh")
            ),
            resource("create", "", "pods", "exec", "default", "p")
        );
        assert_eq!(
            of(
                Method::GET,
                "/api/v1/nodes/kl-worker1/proxy/kube-lite/services/default/x",
                None
            ),
            resource("get", "", "nodes", "proxy", "", "kl-worker1")
        );
        assert_eq!(
            of(Method::DELETE, "/api/v1/namespaces/web", None),
            resource("delete", "", "namespaces", "", "", "web")
        );
        assert_eq!(
            of(Method::PUT, "/api/v1/namespaces/web/finalize", None),
            resource("update", "", "namespaces", "finalize", "", "web")
        );
        assert_eq!(
            of(
                Method::GET,
                "/api/v1/namespaces/default/secrets",
                Some("fieldSelector=metadata.name%3Ddb&watch=true")
            ),
            resource("watch", "", "secrets", "", "default", "db")
        );
        assert_eq!(
            of(
                Method::GET,
                "/api/v1/namespaces/default/secrets",
                Some("fieldSelector=metadata.name!%3Ddb")
            ),
            resource("list", "", "secrets", "", "default", "")
        );
        assert_eq!(
            of(Method::GET, "/apis/apps/v1", None),
            Attributes::NonResource {
                verb: "get".into(),
                path: "/apis/apps/v1".into()
            }
        );
    }

    #[test]
    fn forbidden_says_who_and_what_as_upstream() {
        let user = UserInfo::authenticated("jane", &[]);
        let error = forbidden(
            &user,
            &resource("list", "", "secrets", "", "default", ""),
            "",
        );
        assert_eq!(
            error.message,
            "secrets is forbidden: User \"jane\" cannot list resource \"secrets\" in API group \"\" in the namespace \"default\""
        );
        let error = forbidden(
            &user,
            &resource("patch", "", "nodes", "status", "", "kl-worker2"),
            "",
        );
        assert_eq!(
            error.message,
            "nodes \"kl-worker2\" is forbidden: User \"jane\" cannot patch resource \"nodes/status\" in API group \"\" at the cluster scope"
        );
        let error = forbidden(
            &user,
            &Attributes::NonResource {
                verb: "get".into(),
                path: "/metrics".into(),
            },
            "",
        );
        assert_eq!(
            error.message,
            "forbidden: User \"jane\" cannot get path \"/metrics\""
        );
    }
}
