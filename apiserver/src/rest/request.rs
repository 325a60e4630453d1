//! Reading a request: which object the URL names, the query options, the
//! body, and what the client accepts back.
//!
//! Kubernetes URLs have one shape for everything:
//!
//! ```text
//! /api/v1/namespaces/default/services/ngx-svc/status
//! └─group/version─┘└─namespace──┘└resource┘└name─┘└subresource
//! /apis/apps/v1/deployments            (all namespaces, a collection)
//! /api/v1/nodes/kl-master              (a cluster-scoped object)
//! ```

use api::resources::{self, ResourceType};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::Value;

use crate::status::StatusError;

/// The largest request body accepted (kube-apiserver's limit is 3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// How much of an oversized body is read (and thrown away) before
/// answering 413. A client still sending when the server answers and
/// closes the connection would see a reset instead of the Status.
const MAX_DRAIN_BYTES: usize = 64 * 1024 * 1024;

/// Reads the request body, up to [`MAX_BODY_BYTES`]; larger bodies get
/// 413 RequestEntityTooLarge.
pub async fn read_body(body: axum::body::Body) -> Result<bytes::Bytes, StatusError> {
    use futures::StreamExt as _;
    let mut stream = body.into_data_stream();
    let mut collected = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| StatusError::bad_request(format!("reading request body: {e}")))?;
        seen += chunk.len();
        if seen <= MAX_BODY_BYTES {
            collected.extend_from_slice(&chunk);
        } else if seen > MAX_DRAIN_BYTES {
            break;
        }
    }
    if seen > MAX_BODY_BYTES {
        return Err(StatusError::too_large(MAX_BODY_BYTES));
    }
    Ok(bytes::Bytes::from(collected))
}

/// What a URL points at.
#[derive(Debug, Clone)]
pub struct Target {
    pub resource: &'static ResourceType,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

impl Target {
    /// Parses a resource URL; None when the path is not one (the caller
    /// answers 404).
    pub fn parse(path: &str) -> Option<Target> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, version, rest) = match segments.as_slice() {
            ["api", version, rest @ ..] => ("", *version, rest),
            ["apis", group, version, rest @ ..] => (*group, *version, rest),
            _ => return None,
        };
        // `namespaces/{ns}/{resource}/...` is a namespaced resource; but
        // `namespaces/{name}` and `namespaces/{name}/status` are the
        // Namespace object itself.
        let (namespace, rest) = match rest {
            ["namespaces", ns, resource, rest @ ..]
                if !matches!(*resource, "status" | "finalize") =>
            {
                (Some(ns.to_string()), {
                    let mut v = vec![*resource];
                    v.extend_from_slice(rest);
                    v
                })
            }
            _ => (None, rest.to_vec()),
        };
        let (plural, name, subresource) = match rest.as_slice() {
            [plural] => (*plural, None, None),
            [plural, name] => (*plural, Some(name.to_string()), None),
            [plural, name, sub] => (*plural, Some(name.to_string()), Some(sub.to_string())),
            _ => return None,
        };
        let resource = resources::by_plural(group, version, plural)?;
        if namespace.is_some() && !resource.namespaced {
            return None;
        }
        if name.as_deref() == Some("") {
            return None;
        }
        Some(Target {
            resource,
            namespace,
            name,
            subresource,
        })
    }
}

/// Query options of reads (`ListOptions` in Kubernetes).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadOptions {
    pub watch: Option<String>,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    pub timeout_seconds: Option<u64>,
    #[serde(default, deserialize_with = "optional_query_bool")]
    pub allow_watch_bookmarks: Option<bool>,
    #[serde(default, deserialize_with = "optional_query_bool")]
    pub send_initial_events: Option<bool>,
    pub limit: Option<usize>,
    #[serde(rename = "continue")]
    pub continue_token: Option<String>,
    pub include_object: Option<String>,
}

impl ReadOptions {
    pub fn is_watch(&self) -> bool {
        self.watch.as_deref().is_some_and(query_bool)
    }
}

/// A boolean query parameter as Kubernetes reads it: anything but `0` and
/// `false` (in any case) is true - the Python client sends `watch=True`.
pub fn query_bool(value: &str) -> bool {
    value != "0" && !value.eq_ignore_ascii_case("false")
}

/// [`query_bool`] for serde.
fn optional_query_bool<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<bool>, D::Error> {
    let value: Option<String> = Option::deserialize(deserializer)?;
    Ok(value.as_deref().map(query_bool))
}

/// Query options of writes.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteOptions {
    pub dry_run: Option<String>,
    pub field_manager: Option<String>,
    /// Server-side apply takes over conflicting fields (`force=true`).
    #[serde(default, deserialize_with = "optional_query_bool")]
    pub force: Option<bool>,
    pub field_validation: Option<String>,
    /// DELETE options may also come as query parameters.
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<String>,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
}

/// How strictly unknown fields are treated (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    /// Reject the request (kubectl's default: `--validate=strict`).
    Strict,
    /// Accept, drop the fields, and warn in a `Warning` header (the
    /// server's default).
    Warn,
    /// Accept and drop silently.
    Ignore,
}

impl WriteOptions {
    pub fn field_validation(&self) -> Result<FieldValidation, StatusError> {
        match self.field_validation.as_deref() {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(StatusError::bad_request(format!(
                "fieldValidation: Unsupported value: \"{other}\": supported values: \"Ignore\", \"Strict\", \"Warn\""
            ))),
        }
    }

    /// `dryRun=All`: validate and answer as if written, store nothing.
    pub fn is_dry_run(&self) -> bool {
        self.dry_run.as_deref() == Some("All")
    }
}

/// Parses the query string into `T`, answering 400 on nonsense.
pub fn query<T: for<'de> Deserialize<'de> + Default>(
    query: Option<&str>,
) -> Result<T, StatusError> {
    match query {
        None | Some("") => Ok(T::default()),
        Some(q) => axum::extract::Query::<T>::try_from_uri(
            &format!("/?{q}")
                .parse()
                .map_err(|_| StatusError::bad_request("malformed query string"))?,
        )
        .map(|axum::extract::Query(t)| t)
        .map_err(|e| {
            StatusError::bad_request(format!("invalid query parameters: {}", e.body_text()))
        }),
    }
}

/// What the client wants back for reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rendering {
    /// The objects (or list) as JSON.
    Objects,
    /// A `meta.k8s.io/v1` Table, as `kubectl get` asks for.
    Table,
}

/// Reads the Accept header. kubectl asks for
/// `application/json;as=Table;v=v1;g=meta.k8s.io,application/json`: a Table
/// if we can, plain JSON otherwise.
pub fn rendering(headers: &HeaderMap) -> Rendering {
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let wants_table = accept.split(',').any(|media| {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        params.contains(&"as=Table") && params.contains(&"g=meta.k8s.io")
    });
    if wants_table {
        Rendering::Table
    } else {
        Rendering::Objects
    }
}

/// The request's Content-Type without parameters, lower-case.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Decodes a create/update body: JSON, YAML or protobuf, exactly one
/// object.
pub fn decode_object(body: &[u8], content_type: &str) -> Result<Value, StatusError> {
    match content_type {
        "application/json" | "application/yaml" | "" | "*/*" => {}
        super::protobuf::PROTOBUF => return super::protobuf::decode(body),
        other => return Err(StatusError::unsupported_media_type(other)),
    }
    let value = api::decode::decode_body(body, content_type)
        .map_err(|e| StatusError::bad_request(e.to_string()))?;
    if !value.is_object() {
        return Err(StatusError::bad_request(
            "the request body must be a single object",
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_booleans_are_true_unless_zero_or_false() {
        for yes in ["true", "True", "1", "yes", ""] {
            assert!(query_bool(yes), "{yes:?}");
        }
        for no in ["false", "FALSE", "0"] {
            assert!(!query_bool(no), "{no:?}");
        }
        let opts: ReadOptions = query(Some("watch=True&allowWatchBookmarks=True")).unwrap();
        assert!(opts.is_watch());
        assert_eq!(opts.allow_watch_bookmarks, Some(true));
    }

    #[test]
    fn parses_every_url_shape() {
        let t = Target::parse("/api/v1/namespaces/default/services/ngx-svc/status").unwrap();
        assert_eq!(t.resource.plural, "services");
        assert_eq!(t.namespace.as_deref(), Some("default"));
        assert_eq!(t.name.as_deref(), Some("ngx-svc"));
        assert_eq!(t.subresource.as_deref(), Some("status"));

        let t = Target::parse("/apis/apps/v1/deployments").unwrap();
        assert_eq!(t.resource.kind, "Deployment");
        assert!(t.namespace.is_none() && t.name.is_none());

        let t = Target::parse("/api/v1/namespaces/kube-system").unwrap();
        assert_eq!(t.resource.kind, "Namespace");
        assert_eq!(t.name.as_deref(), Some("kube-system"));

        let t = Target::parse("/api/v1/namespaces/x/status").unwrap();
        assert_eq!(t.resource.kind, "Namespace");
        assert_eq!(t.subresource.as_deref(), Some("status"));

        assert!(Target::parse("/api/v1/widgets").is_none());
        assert!(Target::parse("/api/v1/namespaces/default/nodes/n1").is_none());
        assert!(Target::parse("/apis/apps/v2/deployments").is_none());
    }

    #[test]
    fn table_only_when_asked_like_kubectl() {
        let mut h = HeaderMap::new();
        h.insert(
            "accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
                .parse()
                .unwrap(),
        );
        assert_eq!(rendering(&h), Rendering::Table);
        h.insert("accept", "application/json".parse().unwrap());
        assert_eq!(rendering(&h), Rendering::Objects);
    }
}
