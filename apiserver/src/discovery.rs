//! Discovery: how clients learn what this API server serves.
//!
//! A Kubernetes client knows no URLs in advance. Before `kubectl get svc` can
//! send a request it must learn that `svc` is the short name of `services`,
//! that services live in the core group `v1` under `/api/v1`, that they are
//! namespaced, and which verbs they allow. kube-apiserver publishes this in
//! two forms:
//!
//! - **Legacy discovery**, one document per level: `GET /api` lists the
//!   versions of the core group (`APIVersions`), `GET /apis` the named groups
//!   (`APIGroupList`), and `GET /api/v1` or `/apis/apps/v1` the resources of
//!   one group/version (`APIResourceList`). A client needs 2 + N requests.
//! - **Aggregated discovery** (`apidiscovery.k8s.io/v2`): the same facts for
//!   every group/version in a single `APIGroupDiscoveryList` answered at
//!   `/api` and `/apis`, when the client asks for it in its `Accept` header.
//!   kubectl asks for it first and falls back to legacy discovery when the
//!   server answers plain JSON.
//!
//! Both forms, and `GET /version`, are derived from the resource table
//! [`api::resources::RESOURCES`], so adding a resource there makes it
//! discoverable here.

use api::k8s::apimachinery::pkg::apis::meta::v1 as meta;
use api::k8s::apimachinery::pkg::version::Info;
use api::resources::{ResourceType, Subresource, RESOURCES};
use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::status::StatusError;

/// The media type of aggregated discovery. A client that wants it lists it
/// in `Accept`; the server confirms by answering with it as `Content-Type`
/// (client-go decides which decoder to use from that header alone).
pub const AGGREGATED_DISCOVERY_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// The Kubernetes release kube-lite presents itself as. kubectl warns when
/// the server's minor version is more than one away from its own, so this
/// matches the kubectl the course uses (1.35).
pub const KUBERNETES_MAJOR: &str = "1";
/// See [`KUBERNETES_MAJOR`].
pub const KUBERNETES_MINOR: &str = "35";
/// `gitVersion` of `/version`: a semantic version kubectl can parse, marked
/// as kube-lite's build of that release.
pub const GIT_VERSION: &str = "v1.35.0-kube-lite";
/// When Kubernetes v1.35.0 was released; kube-lite reports it as its build
/// date so that `/version` is the same on every build.
const BUILD_DATE: &str = "2025-12-17T00:00:00Z";

/// Serves `/api`, `/api/{version}`, `/apis`, `/apis/{group}`,
/// `/apis/{group}/{version}` and `/version`.
///
/// Longer paths (`/apis/{group}/{version}/{resource}`) can be merged
/// alongside; a catch-all such as `/apis/{*rest}` cannot (axum refuses the
/// overlap).
///
/// Each answers with a trailing slash too (`/api/`, `/apis/apps/`,
/// `/version/`), as kube-apiserver does: the Python client asks for those.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/api", get(serve_core_versions))
        .route("/api/", get(serve_core_versions))
        .route("/api/{version}", get(serve_core_resources))
        .route("/api/{version}/", get(serve_core_resources))
        .route("/apis", get(serve_groups))
        .route("/apis/", get(serve_groups))
        .route("/apis/{group}", get(serve_group))
        .route("/apis/{group}/", get(serve_group))
        .route("/apis/{group}/{version}", get(serve_group_resources))
        .route("/apis/{group}/{version}/", get(serve_group_resources))
        .route("/version", get(serve_version))
        .route("/version/", get(serve_version))
}

// ---------------------------------------------------------------------------
// What the table serves, grouped the way discovery presents it.
// ---------------------------------------------------------------------------

/// Every group/version with at least one resource, in table order
/// (`("", "v1")` is the core group).
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut seen: Vec<(&'static str, &'static str)> = Vec::new();
    for r in RESOURCES {
        if !seen.contains(&(r.group, r.version)) {
            seen.push((r.group, r.version));
        }
    }
    seen
}

/// The versions of one group, preferred first (the table lists the
/// preferred version first).
fn versions_of(group: &str) -> Vec<&'static str> {
    group_versions()
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(_, v)| v)
        .collect()
}

/// Named groups (everything but the core group), in table order.
fn named_groups() -> Vec<&'static str> {
    let mut groups: Vec<&'static str> = Vec::new();
    for (g, _) in group_versions() {
        if !g.is_empty() && !groups.contains(&g) {
            groups.push(g);
        }
    }
    groups
}

fn resources_of<'a>(
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static ResourceType> + 'a {
    RESOURCES
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// `None` for an empty list, so that the field is left out as
/// kube-apiserver does (`omitempty`).
fn non_empty(list: &[&str]) -> Option<Vec<String>> {
    (!list.is_empty()).then(|| strings(list))
}

fn group_version_string(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

// ---------------------------------------------------------------------------
// Legacy discovery documents.
// ---------------------------------------------------------------------------

/// `GET /api`: the versions of the core group. `server_address` is where
/// clients reach this server (kube-apiserver reports its advertised address;
/// we report the address the client used).
pub fn api_versions(server_address: &str) -> meta::APIVersions {
    meta::APIVersions {
        versions: strings(&versions_of("")),
        server_address_by_client_cidrs: vec![meta::ServerAddressByClientCIDR {
            client_cidr: "0.0.0.0/0".to_string(),
            server_address: server_address.to_string(),
        }],
    }
}

/// `GET /apis/{group}`: one named group and its versions.
pub fn api_group(group: &str) -> Option<meta::APIGroup> {
    let versions: Vec<meta::GroupVersionForDiscovery> = versions_of(group)
        .into_iter()
        .map(|v| meta::GroupVersionForDiscovery {
            group_version: group_version_string(group, v),
            version: v.to_string(),
        })
        .collect();
    if group.is_empty() || versions.is_empty() {
        return None;
    }
    Some(meta::APIGroup {
        name: group.to_string(),
        preferred_version: versions.first().cloned(),
        server_address_by_client_cidrs: None,
        versions,
    })
}

/// `GET /apis`: every named group. The core group is not listed here; it
/// is discovered through `/api`.
pub fn api_group_list() -> meta::APIGroupList {
    meta::APIGroupList {
        groups: named_groups().into_iter().filter_map(api_group).collect(),
    }
}

/// `GET /api/v1` or `/apis/{group}/{version}`: the resources of one
/// group/version, each followed by its subresources (`pods`, `pods/status`,
/// `pods/log`, ...).
pub fn api_resource_list(group: &str, version: &str) -> Option<meta::APIResourceList> {
    let mut resources = Vec::new();
    for r in resources_of(group, version) {
        resources.push(api_resource(r));
        resources.extend(r.subresources.iter().map(|s| api_subresource(r, s)));
    }
    if resources.is_empty() {
        return None;
    }
    Some(meta::APIResourceList {
        group_version: group_version_string(group, version),
        resources,
    })
}

fn api_resource(r: &ResourceType) -> meta::APIResource {
    meta::APIResource {
        name: r.plural.to_string(),
        singular_name: r.singular.to_string(),
        namespaced: r.namespaced,
        kind: r.kind.to_string(),
        verbs: strings(r.verbs),
        short_names: non_empty(r.short_names),
        categories: non_empty(r.categories),
        ..Default::default()
    }
}

/// A subresource is listed as `<plural>/<subresource>`. Its `group` and
/// `version` are only given when its kind lives elsewhere
/// (`deployments/scale` speaks `autoscaling/v1 Scale`).
fn api_subresource(r: &ResourceType, s: &Subresource) -> meta::APIResource {
    let foreign = s.group != r.group || s.version != r.version;
    meta::APIResource {
        name: format!("{}/{}", r.plural, s.name),
        singular_name: String::new(),
        namespaced: r.namespaced,
        kind: s.kind.to_string(),
        verbs: strings(s.verbs),
        group: foreign.then(|| s.group.to_string()),
        version: foreign.then(|| s.version.to_string()),
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------
// Aggregated discovery (apidiscovery.k8s.io/v2). k8s-openapi does not ship
// these types, so they are declared here with upstream's names and JSON
// field names (k8s.io/api/apidiscovery/v2).
// ---------------------------------------------------------------------------

/// Every group of one discovery root (`/api` or `/apis`) in one document.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct APIGroupDiscoveryList {
    pub api_version: &'static str,
    pub kind: &'static str,
    /// Always empty: discovery has no resourceVersion.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Groups in priority order.
    pub items: Vec<APIGroupDiscovery>,
}

/// One group and all its versions, preferred version first.
#[derive(Debug, Clone, Serialize)]
pub struct APIGroupDiscovery {
    /// Only `name` is set; it is empty for the core group.
    pub metadata: GroupName,
    pub versions: Vec<APIVersionDiscovery>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupName {
    #[serde(skip_serializing_if = "str::is_empty")]
    pub name: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct APIVersionDiscovery {
    pub version: &'static str,
    pub resources: Vec<APIResourceDiscovery>,
    /// `Current`: served by this server, never a stale copy from an
    /// aggregated API server.
    pub freshness: &'static str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct APIResourceDiscovery {
    /// The plural, as in URLs.
    pub resource: &'static str,
    pub response_kind: GroupVersionKind,
    /// `Namespaced` or `Cluster`.
    pub scope: &'static str,
    pub singular_resource: &'static str,
    pub verbs: &'static [&'static str],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub short_names: &'static [&'static str],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub categories: &'static [&'static str],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subresources: Vec<APISubresourceDiscovery>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct APISubresourceDiscovery {
    pub subresource: &'static str,
    pub response_kind: GroupVersionKind,
    pub verbs: &'static [&'static str],
}

/// `metav1.GroupVersionKind`: every field is always present, `group` is
/// `""` for the core group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GroupVersionKind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
}

/// Which of the two discovery roots a document answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscoveryRoot {
    /// `/api`: the core group only.
    Core,
    /// `/apis`: the named groups.
    Named,
}

/// The aggregated discovery document of `/api` or `/apis`.
pub fn aggregated_discovery(root: DiscoveryRoot) -> APIGroupDiscoveryList {
    let groups: Vec<&'static str> = match root {
        DiscoveryRoot::Core => vec![""],
        DiscoveryRoot::Named => named_groups(),
    };
    let items = groups
        .into_iter()
        .map(|group| APIGroupDiscovery {
            metadata: GroupName { name: group },
            versions: versions_of(group)
                .into_iter()
                .map(|version| APIVersionDiscovery {
                    version,
                    resources: resources_of(group, version)
                        .map(resource_discovery)
                        .collect(),
                    freshness: "Current",
                })
                .collect(),
        })
        .collect();
    APIGroupDiscoveryList {
        api_version: "apidiscovery.k8s.io/v2",
        kind: "APIGroupDiscoveryList",
        metadata: serde_json::Map::new(),
        items,
    }
}

fn resource_discovery(r: &'static ResourceType) -> APIResourceDiscovery {
    APIResourceDiscovery {
        resource: r.plural,
        response_kind: GroupVersionKind {
            group: r.group,
            version: r.version,
            kind: r.kind,
        },
        scope: if r.namespaced {
            "Namespaced"
        } else {
            "Cluster"
        },
        singular_resource: r.singular,
        verbs: r.verbs,
        short_names: r.short_names,
        categories: r.categories,
        subresources: r
            .subresources
            .iter()
            .map(|s| APISubresourceDiscovery {
                subresource: s.name,
                response_kind: GroupVersionKind {
                    group: s.group,
                    version: s.version,
                    kind: s.kind,
                },
                verbs: s.verbs,
            })
            .collect(),
    }
}

/// True when the client's `Accept` header prefers aggregated discovery.
///
/// Media ranges are taken in the client's order (kubectl lists aggregated
/// discovery first, then plain JSON as the fallback); the first one we can
/// serve decides. Protobuf ranges are skipped: we answer JSON only.
pub fn prefers_aggregated(accept: Option<&str>) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media_type = parts.next().unwrap_or_default().to_ascii_lowercase();
        let params: Vec<(String, String)> = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        if param("q").and_then(|q| q.parse::<f32>().ok()) == Some(0.0) {
            continue; // q=0 means "not acceptable".
        }
        let aggregated_v2 = param("g") == Some("apidiscovery.k8s.io")
            && param("v") == Some("v2")
            && param("as") == Some("APIGroupDiscoveryList");
        match (media_type.as_str(), param("as")) {
            ("application/json", Some(_)) if aggregated_v2 => return true,
            // Another `as=` (an older discovery version) is not ours.
            ("application/json", Some(_)) => {}
            ("application/json" | "application/*" | "*/*", None) => return false,
            _ => {}
        }
    }
    false
}

// ---------------------------------------------------------------------------
// /version
// ---------------------------------------------------------------------------

/// `GET /version`: which Kubernetes release this server implements.
pub fn version_info() -> Info {
    Info {
        major: KUBERNETES_MAJOR.to_string(),
        minor: KUBERNETES_MINOR.to_string(),
        git_version: GIT_VERSION.to_string(),
        // Set KUBE_LITE_GIT_COMMIT at build time to report the commit.
        git_commit: option_env!("KUBE_LITE_GIT_COMMIT")
            .unwrap_or("unknown")
            .to_string(),
        git_tree_state: "clean".to_string(),
        build_date: BUILD_DATE.to_string(),
        // Fields of a Go build; there is no Go here.
        go_version: String::new(),
        compiler: "rustc".to_string(),
        platform: platform(),
        // The API behaviour we emulate is the release's own.
        emulation_major: Some(KUBERNETES_MAJOR.to_string()),
        emulation_minor: Some(KUBERNETES_MINOR.to_string()),
        ..Default::default()
    }
}

/// `linux/amd64`: Go's names for the OS and architecture we run on.
fn platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    format!("{}/{}", std::env::consts::OS, arch)
}

// ---------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------

/// The answer of `/api` and `/apis` depends on `Accept`; `Vary` tells HTTP
/// caches (kubectl keeps one on disk) not to mix the two forms up.
fn negotiated(headers: &HeaderMap, root: DiscoveryRoot, legacy: impl Serialize) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let mut response = if prefers_aggregated(accept) {
        let mut r = Json(aggregated_discovery(root)).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(AGGREGATED_DISCOVERY_CONTENT_TYPE),
        );
        r
    } else {
        Json(legacy).into_response()
    };
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    response
}

/// The `host:port` the client used to reach us.
fn server_address(headers: &HeaderMap, uri: &Uri) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| uri.authority().map(|a| a.to_string()))
        .unwrap_or_default()
}

async fn serve_core_versions(headers: HeaderMap, uri: Uri) -> Response {
    let address = server_address(&headers, &uri);
    negotiated(&headers, DiscoveryRoot::Core, api_versions(&address))
}

async fn serve_groups(headers: HeaderMap) -> Response {
    negotiated(&headers, DiscoveryRoot::Named, api_group_list())
}

async fn serve_core_resources(Path(version): Path<String>, uri: Uri) -> Response {
    match api_resource_list("", &version) {
        Some(list) => Json(list).into_response(),
        None => StatusError::no_route(uri.path()).into_response(),
    }
}

async fn serve_group(Path(group): Path<String>, uri: Uri) -> Response {
    match api_group(&group) {
        Some(g) => Json(g).into_response(),
        None => StatusError::no_route(uri.path()).into_response(),
    }
}

async fn serve_group_resources(
    Path((group, version)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    // The core group is only served under /api.
    let list = (!group.is_empty())
        .then(|| api_resource_list(&group, &version))
        .flatten();
    match list {
        Some(list) => Json(list).into_response(),
        None => StatusError::no_route(uri.path()).into_response(),
    }
}

async fn serve_version() -> Json<Info> {
    Json(version_info())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use serde_json::Value;
    use tower::ServiceExt;

    /// Sends one GET to the discovery routes; returns status, Content-Type
    /// and the JSON body.
    async fn get_json(path: &str, accept: Option<&str>) -> (StatusCode, String, Value) {
        let mut req = Request::get(path).header(header::HOST, "10.0.0.1:6443");
        if let Some(a) = accept {
            req = req.header(header::ACCEPT, a);
        }
        let resp = routes::<()>()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            content_type,
            serde_json::from_slice(&bytes).unwrap(),
        )
    }

    /// What kubectl 1.35 sends for `/api` and `/apis`.
    const KUBECTL_ACCEPT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

    fn find<'a>(list: &'a Value, key: &str, name: &str) -> Option<&'a Value> {
        list.as_array()?.iter().find(|r| r[key] == name)
    }

    #[test]
    fn every_resource_and_subresource_is_in_its_group_version_list() {
        for r in RESOURCES {
            let list =
                serde_json::to_value(api_resource_list(r.group, r.version).unwrap()).unwrap();
            assert_eq!(list["kind"], "APIResourceList");
            assert_eq!(list["groupVersion"], r.api_version());
            let entry = find(&list["resources"], "name", r.plural).unwrap();
            assert_eq!(entry["kind"], r.kind);
            assert_eq!(entry["singularName"], r.singular);
            assert_eq!(entry["namespaced"], r.namespaced);
            assert_eq!(entry["verbs"], serde_json::json!(r.verbs));
            if r.short_names.is_empty() {
                assert!(entry.get("shortNames").is_none(), "{}", r.plural);
            } else {
                assert_eq!(entry["shortNames"], serde_json::json!(r.short_names));
            }
            for s in r.subresources {
                let name = format!("{}/{}", r.plural, s.name);
                let sub = find(&list["resources"], "name", &name)
                    .unwrap_or_else(|| panic!("{name} missing"));
                assert_eq!(sub["kind"], s.kind);
                assert_eq!(sub["verbs"], serde_json::json!(s.verbs));
            }
        }
    }

    #[test]
    fn short_names_kubectl_relies_on_are_advertised() {
        let core = serde_json::to_value(api_resource_list("", "v1").unwrap()).unwrap();
        let apps = serde_json::to_value(api_resource_list("apps", "v1").unwrap()).unwrap();
        for (list, plural, short) in [
            (&core, "services", "svc"),
            (&core, "pods", "po"),
            (&core, "endpoints", "ep"),
            (&core, "namespaces", "ns"),
            (&core, "configmaps", "cm"),
            (&core, "nodes", "no"),
            (&apps, "deployments", "deploy"),
            (&apps, "replicasets", "rs"),
        ] {
            let entry = find(&list["resources"], "name", plural).unwrap();
            assert!(
                entry["shortNames"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s == short),
                "{plural} lacks {short}"
            );
        }
    }

    #[test]
    fn subresources_name_their_own_kind_and_group() {
        let core = serde_json::to_value(api_resource_list("", "v1").unwrap()).unwrap();
        let status = find(&core["resources"], "name", "pods/status").unwrap();
        assert_eq!(status["kind"], "Pod");
        assert_eq!(status["singularName"], "");
        assert!(status.get("group").is_none());
        assert!(find(&core["resources"], "name", "pods/log").is_some());

        let apps = serde_json::to_value(api_resource_list("apps", "v1").unwrap()).unwrap();
        let scale = find(&apps["resources"], "name", "deployments/scale").unwrap();
        assert_eq!(scale["group"], "autoscaling");
        assert_eq!(scale["version"], "v1");
        assert_eq!(scale["kind"], "Scale");
    }

    #[test]
    fn group_list_names_only_groups_with_resources() {
        let list = serde_json::to_value(api_group_list()).unwrap();
        let names: Vec<&str> = list["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        let mut expected: Vec<&str> = Vec::new();
        for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
            if !expected.contains(&r.group) {
                expected.push(r.group);
            }
        }
        assert_eq!(names, expected);
        // Scale is only a subresource's kind; autoscaling serves nothing.
        assert!(!names.contains(&"autoscaling"));
        let apps = find(&list["groups"], "name", "apps").unwrap();
        assert_eq!(apps["preferredVersion"]["groupVersion"], "apps/v1");
    }

    #[test]
    fn aggregated_discovery_covers_every_resource() {
        let core = serde_json::to_value(aggregated_discovery(DiscoveryRoot::Core)).unwrap();
        let named = serde_json::to_value(aggregated_discovery(DiscoveryRoot::Named)).unwrap();
        assert_eq!(named["apiVersion"], "apidiscovery.k8s.io/v2");
        assert_eq!(named["kind"], "APIGroupDiscoveryList");
        assert!(core["items"][0]["metadata"].get("name").is_none());
        for r in RESOURCES {
            let doc = if r.group.is_empty() { &core } else { &named };
            let group = doc["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|g| g["metadata"]["name"].as_str().unwrap_or("") == r.group)
                .unwrap();
            let version = find(&group["versions"], "version", r.version).unwrap();
            assert_eq!(version["freshness"], "Current");
            let entry = find(&version["resources"], "resource", r.plural).unwrap();
            assert_eq!(entry["responseKind"]["kind"], r.kind);
            assert_eq!(entry["responseKind"]["group"], r.group);
            assert_eq!(
                entry["scope"],
                if r.namespaced {
                    "Namespaced"
                } else {
                    "Cluster"
                }
            );
            assert_eq!(entry["singularResource"], r.singular);
            let subs = entry["subresources"].as_array().map_or(0, Vec::len);
            assert_eq!(subs, r.subresources.len(), "{}", r.plural);
        }
        let apps = &named["items"][0]["versions"][0]["resources"];
        let deploy = find(apps, "resource", "deployments").unwrap();
        let scale = find(&deploy["subresources"], "subresource", "scale").unwrap();
        assert_eq!(
            scale["responseKind"],
            serde_json::json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
        );
    }

    #[test]
    fn accept_header_selects_aggregated_discovery_in_client_order() {
        assert!(prefers_aggregated(Some(KUBECTL_ACCEPT)));
        assert!(prefers_aggregated(Some(
            "application/json; g=apidiscovery.k8s.io; as=APIGroupDiscoveryList; v=v2"
        )));
        assert!(!prefers_aggregated(None));
        assert!(!prefers_aggregated(Some("application/json")));
        assert!(!prefers_aggregated(Some("*/*")));
        // The client prefers plain JSON: legacy it is.
        assert!(!prefers_aggregated(Some(
            "application/json,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        )));
        // Only an older discovery version we do not serve, then JSON.
        assert!(!prefers_aggregated(Some(
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
        )));
        // Protobuf first is skipped, the JSON form of v2 is served.
        assert!(prefers_aggregated(Some(
            "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        )));
        assert!(!prefers_aggregated(Some(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0,application/json"
        )));
    }

    #[tokio::test]
    async fn api_answers_legacy_or_aggregated_by_accept_header() {
        let (status, ct, body) = get_json("/api", Some("application/json")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ct, "application/json");
        assert_eq!(body["kind"], "APIVersions");
        assert_eq!(body["versions"], serde_json::json!(["v1"]));
        assert_eq!(
            body["serverAddressByClientCIDRs"][0],
            serde_json::json!({"clientCIDR": "0.0.0.0/0", "serverAddress": "10.0.0.1:6443"})
        );

        let (status, ct, body) = get_json("/apis", Some(KUBECTL_ACCEPT)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ct, AGGREGATED_DISCOVERY_CONTENT_TYPE);
        assert_eq!(body["kind"], "APIGroupDiscoveryList");
        assert_eq!(body["items"][0]["metadata"]["name"], "apps");

        let (_, _, body) = get_json("/apis", None).await;
        assert_eq!(body["kind"], "APIGroupList");
    }

    #[tokio::test]
    async fn group_and_version_documents_are_served() {
        let (status, _, body) = get_json("/api/v1", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["groupVersion"], "v1");
        let (_, _, body) = get_json("/apis/apps", None).await;
        assert_eq!(body["kind"], "APIGroup");
        assert_eq!(body["versions"][0]["groupVersion"], "apps/v1");
        let (_, _, body) = get_json("/apis/discovery.k8s.io/v1", None).await;
        assert_eq!(body["resources"][0]["name"], "endpointslices");
    }

    #[tokio::test]
    async fn unknown_groups_and_versions_are_not_found_statuses() {
        for path in [
            "/api/v2",
            "/apis/storage.k8s.io",
            "/apis/storage.k8s.io/v1",
            "/apis/apps/v1beta1",
            "/apis/autoscaling/v1",
        ] {
            let (status, ct, body) = get_json(path, None).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(ct, "application/json");
            assert_eq!(body["kind"], "Status");
            assert_eq!(body["reason"], "NotFound");
            assert!(body["message"].as_str().unwrap().contains(path));
        }
    }

    #[tokio::test]
    async fn version_matches_the_kubectl_release_we_target() {
        let (status, _, body) = get_json("/version", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["major"], "1");
        assert_eq!(body["minor"], "35");
        // kubectl compares major.minor parsed from gitVersion.
        let git = body["gitVersion"].as_str().unwrap();
        assert!(git.starts_with("v1.35."), "{git}");
        assert_eq!(body["compiler"], "rustc");
        assert!(body["platform"].as_str().unwrap().contains('/'));
    }
}
