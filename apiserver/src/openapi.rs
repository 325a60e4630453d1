//! OpenAPI: the machine-readable description of the API that kubectl reads
//! before it writes.
//!
//! kube-apiserver publishes an OpenAPI v3 document per group/version under
//! `/openapi/v3/<api/v1 | apis/apps/v1 | ...>`, plus an index at
//! `/openapi/v3` whose `serverRelativeURL`s carry a content `hash`, so that
//! clients can cache every document forever and refetch only when the index
//! points elsewhere.
//!
//! kubectl reads it for one decision above all: `kubectl apply` (and create,
//! replace) run with `--validate=strict` by default, and kubectl then looks
//! for the PATCH operation of the object's kind (found by its
//! `x-kubernetes-group-version-kind`) and checks whether it accepts the
//! `fieldValidation` query parameter. If it does, kubectl sends
//! `fieldValidation=Strict` and lets the server reject unknown fields;
//! otherwise it wants to validate on the client and fails without a schema.
//!
//! Students read it too: `kubectl explain service.spec` walks the kind's
//! schema, field by field, with upstream's descriptions.
//!
//! kube-lite therefore publishes, derived from
//! [`api::resources::RESOURCES`], one PATCH operation per resource (and per
//! patchable subresource) and the full schema of every served kind and of
//! everything it refers to. The schemas are not written here: they are
//! generated from the `k8s-openapi` types (their `schemars` support, which
//! carries upstream's descriptions, types and required fields), under
//! upstream's names (`io.k8s.api.core.v1.ServiceSpec`), and each kind's
//! schema is marked with its `x-kubernetes-group-version-kind`, which is
//! how kubectl finds it. Two choices matter:
//!
//! - The PATCH request body lists `application/json-patch+json` and
//!   `application/merge-patch+json` but not
//!   `application/strategic-merge-patch+json`. kubectl computes strategic
//!   merge patches from the OpenAPI schema when the operation advertises
//!   that type, and our schemas carry no merge keys; without it, kubectl
//!   uses the merge keys compiled into it, which are the right ones. kubectl
//!   still *sends* strategic merge patches, and the server accepts them.
//! - `/openapi/v2` is an empty document (no definitions): kubectl only
//!   falls back to it for kinds v3 does not describe, and an undescribed
//!   kind must pass validation so that kubectl says the kind is not served.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::LazyLock;

use api::resources::{ResourceType, RESOURCES};
use axum::extract::{Path, Query};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use k8s_openapi::schemars::generate::{SchemaGenerator, SchemaSettings};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::discovery;
use crate::status::StatusError;

/// Schema name of the PATCH request body, as kube-apiserver names it.
const PATCH_SCHEMA: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";

/// How long a client may cache a document fetched by its hash: the content
/// behind a hash never changes, so a year (kube-apiserver sets `Expires` a
/// year ahead).
const IMMUTABLE_CACHE_CONTROL: &str = "public, immutable, max-age=31536000";

/// Serves `/openapi/v3`, `/openapi/v3/{*path}` and `/openapi/v2`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/openapi/v3", get(serve_index))
        .route("/openapi/v3/{*group_version}", get(serve_group_version))
        .route("/openapi/v2", get(serve_v2))
}

/// One group/version's document, rendered once, with its content hash.
struct Published {
    /// `api/v1` or `apis/apps/v1`: the index key and the URL suffix.
    key: String,
    body: String,
    hash: String,
}

impl Published {
    fn server_relative_url(&self) -> String {
        format!("/openapi/v3/{}?hash={}", self.key, self.hash)
    }
}

/// The table never changes while the server runs, so every document is
/// rendered on first use and served from memory afterwards.
static PUBLISHED: LazyLock<Vec<Published>> = LazyLock::new(|| {
    discovery::group_versions()
        .into_iter()
        .map(|(group, version)| {
            let body = group_version_document(group, version)
                .expect("every group/version of the table has resources")
                .to_string();
            Published {
                key: document_key(group, version),
                hash: content_hash(&body),
                body,
            }
        })
        .collect()
});

/// `api/v1` for the core group, `apis/<group>/<version>` otherwise: the
/// group/version's URL prefix without the leading slash.
pub fn document_key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// A hash of the document's bytes. It only has to change when the document
/// does: kube-apiserver uses SHA-512; `DefaultHasher` (fixed keys, so the
/// same on every run of one build) serves the purpose without a crypto
/// dependency.
fn content_hash(body: &str) -> String {
    let mut hasher = DefaultHasher::new();
    body.hash(&mut hasher);
    format!("{:016X}", hasher.finish())
}

/// `GET /openapi/v3`: `{"paths": {"api/v1": {"serverRelativeURL": ...}}}`.
pub fn index() -> Value {
    let paths: Map<String, Value> = PUBLISHED
        .iter()
        .map(|p| {
            (
                p.key.clone(),
                json!({ "serverRelativeURL": p.server_relative_url() }),
            )
        })
        .collect();
    json!({ "paths": paths })
}

/// The OpenAPI document of one group/version, `None` when the table serves
/// nothing there.
pub fn group_version_document(group: &str, version: &str) -> Option<Value> {
    let resources: Vec<&ResourceType> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if resources.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    schemas.insert(
        PATCH_SCHEMA.to_string(),
        json!({
            "type": "object",
            "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.",
        }),
    );
    let mut kinds = Vec::new();
    for r in resources {
        let object_kind = GroupVersionKind::of_resource(r);
        kinds.push(object_kind);
        if r.verbs.contains(&"patch") {
            let object_path = r.object_path(Some("{namespace}"), "{name}");
            paths.insert(
                object_path.clone(),
                path_item(r, patch_operation(r, object_kind, None)),
            );
        }
        for s in r.subresources.iter().filter(|s| s.verbs.contains(&"patch")) {
            let kind = GroupVersionKind {
                group: s.group,
                version: s.version,
                kind: s.kind,
            };
            paths.insert(
                format!(
                    "{}/{}",
                    r.object_path(Some("{namespace}"), "{name}"),
                    s.name
                ),
                path_item(r, patch_operation(r, kind, Some(s.name))),
            );
            kinds.push(kind);
        }
    }
    schemas.extend(kind_schemas(&kinds));
    Some(json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": discovery::GIT_VERSION },
        "paths": paths,
        "components": { "schemas": schemas },
    }))
}

#[derive(Debug, Clone, Copy)]
struct GroupVersionKind {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
}

impl GroupVersionKind {
    /// The kind a resource's objects have.
    fn of_resource(r: &ResourceType) -> Self {
        Self {
            group: r.group,
            version: r.version,
            kind: r.kind,
        }
    }

    /// The Go package a kind comes from: `core`, `apps`, `discovery`
    /// (for `discovery.k8s.io`), `autoscaling`, ...
    fn package(&self) -> &'static str {
        if self.group.is_empty() {
            "core"
        } else {
            self.group.split('.').next().unwrap_or(self.group)
        }
    }

    /// `io.k8s.api.core.v1.Service`, the name kube-apiserver gives the
    /// kind's schema.
    fn schema_name(&self) -> String {
        format!(
            "io.k8s.api.{}.{}.{}",
            self.package(),
            self.version,
            self.kind
        )
    }

    fn to_json(self) -> Value {
        json!({ "group": self.group, "version": self.version, "kind": self.kind })
    }
}

/// The schemas of `kinds` and of every type they refer to, by upstream's
/// schema names; each kind's own marked with its group/version/kind.
fn kind_schemas(kinds: &[GroupVersionKind]) -> Map<String, Value> {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let mut named = Vec::new();
    for kind in kinds {
        if generate(*kind, &mut generator) {
            named.push(*kind);
        }
    }
    let mut schemas = generator.take_definitions(true);
    mark_list_and_map_types(&mut schemas);
    for kind in named {
        if let Some(Value::Object(schema)) = schemas.get_mut(&kind.schema_name()) {
            let marks = schema
                .entry("x-kubernetes-group-version-kind")
                .or_insert_with(|| json!([]));
            if let Value::Array(list) = marks {
                if !list.contains(&kind.to_json()) {
                    list.push(kind.to_json());
                }
            }
        }
    }
    schemas
}

/// Adds what k8s-openapi's schemas leave out and the Go types' markers
/// say (`protos/fields.txt`, [`crate::gotypes`]): `x-kubernetes-list-type`
/// and `x-kubernetes-list-map-keys` on lists (`containers` is a map keyed
/// by `name`), `x-kubernetes-map-type` on atomic maps and structs (a
/// LabelSelector). Server-side apply merges by the same facts.
fn mark_list_and_map_types(schemas: &mut Map<String, Value>) {
    for (name, schema) in schemas.iter_mut() {
        let Some(message) = name.strip_prefix("io.k8s.") else {
            continue;
        };
        let message = format!("k8s.io.{message}");
        if crate::gotypes::tag(&message, "-", "structType") == Some("atomic") {
            schema["x-kubernetes-map-type"] = json!("atomic");
        }
        let Some(Value::Object(properties)) = schema.get_mut("properties") else {
            continue;
        };
        for (field, property) in properties.iter_mut() {
            let tag = |name: &str| crate::gotypes::tag(&message, field, name);
            if let Some(list_type) = tag("listType") {
                property["x-kubernetes-list-type"] = json!(list_type);
            }
            if let Some(keys) = tag("listMapKey") {
                let keys: Vec<&str> = keys.split(',').collect();
                property["x-kubernetes-list-map-keys"] = json!(keys);
            }
            if let Some(map_type) = tag("mapType") {
                property["x-kubernetes-map-type"] = json!(map_type);
            }
        }
    }
}

/// Adds the schema of `kind` (from its `k8s-openapi` type) to `generator`;
/// false for a kind with no type here.
fn generate(kind: GroupVersionKind, generator: &mut SchemaGenerator) -> bool {
    use k8s_openapi::api::{
        apps, authentication, authorization, autoscaling, batch, certificates, coordination, core,
        discovery, policy, rbac,
    };
    macro_rules! schema {
        ($t:ty) => {{
            generator.subschema_for::<$t>();
            true
        }};
    }
    match (kind.group, kind.version, kind.kind) {
        ("", "v1", "Namespace") => schema!(core::v1::Namespace),
        ("", "v1", "Pod") => schema!(core::v1::Pod),
        ("", "v1", "Binding") => schema!(core::v1::Binding),
        ("", "v1", "Service") => schema!(core::v1::Service),
        ("", "v1", "Endpoints") => schema!(core::v1::Endpoints),
        ("", "v1", "Secret") => schema!(core::v1::Secret),
        ("", "v1", "ServiceAccount") => schema!(core::v1::ServiceAccount),
        ("", "v1", "ConfigMap") => schema!(core::v1::ConfigMap),
        ("", "v1", "Node") => schema!(core::v1::Node),
        ("", "v1", "Event") => schema!(core::v1::Event),
        ("apps", "v1", "Deployment") => schema!(apps::v1::Deployment),
        ("apps", "v1", "ReplicaSet") => schema!(apps::v1::ReplicaSet),
        ("apps", "v1", "DaemonSet") => schema!(apps::v1::DaemonSet),
        ("apps", "v1", "StatefulSet") => schema!(apps::v1::StatefulSet),
        ("apps", "v1", "ControllerRevision") => schema!(apps::v1::ControllerRevision),
        ("autoscaling", "v1", "Scale") => schema!(autoscaling::v1::Scale),
        ("batch", "v1", "Job") => schema!(batch::v1::Job),
        ("batch", "v1", "CronJob") => schema!(batch::v1::CronJob),
        ("policy", "v1", "Eviction") => schema!(policy::v1::Eviction),
        ("discovery.k8s.io", "v1", "EndpointSlice") => schema!(discovery::v1::EndpointSlice),
        ("coordination.k8s.io", "v1", "Lease") => schema!(coordination::v1::Lease),
        ("certificates.k8s.io", "v1", "CertificateSigningRequest") => {
            schema!(certificates::v1::CertificateSigningRequest)
        }
        ("rbac.authorization.k8s.io", "v1", "ClusterRole") => schema!(rbac::v1::ClusterRole),
        ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding") => {
            schema!(rbac::v1::ClusterRoleBinding)
        }
        ("rbac.authorization.k8s.io", "v1", "Role") => schema!(rbac::v1::Role),
        ("rbac.authorization.k8s.io", "v1", "RoleBinding") => schema!(rbac::v1::RoleBinding),
        ("authentication.k8s.io", "v1", "TokenRequest") => {
            schema!(authentication::v1::TokenRequest)
        }
        ("authentication.k8s.io", "v1", "SelfSubjectReview") => {
            schema!(authentication::v1::SelfSubjectReview)
        }
        ("authorization.k8s.io", "v1", "SelfSubjectAccessReview") => {
            schema!(authorization::v1::SelfSubjectAccessReview)
        }
        _ => false,
    }
}

/// The path item of one object URL: its path parameters, and PATCH.
fn path_item(r: &ResourceType, patch: Value) -> Value {
    let mut parameters = vec![path_parameter("name", r.kind)];
    if r.namespaced {
        parameters.push(json!({
            "name": "namespace",
            "in": "path",
            "description": "object name and auth scope, such as for teams and projects",
            "required": true,
            "schema": { "type": "string", "uniqueItems": true },
        }));
    }
    json!({ "parameters": parameters, "patch": patch })
}

fn path_parameter(name: &str, kind: &str) -> Value {
    json!({
        "name": name,
        "in": "path",
        "description": format!("name of the {kind}"),
        "required": true,
        "schema": { "type": "string", "uniqueItems": true },
    })
}

/// `patchCoreV1NamespacedService`, `patchAppsV1NamespacedDeploymentScale`,
/// `patchCoreV1Node`: kube-apiserver's operation ids.
fn operation_id(r: &ResourceType, subresource: Option<&str>) -> String {
    let mut id = String::from("patch");
    id.push_str(&capitalize(GroupVersionKind::of_resource(r).package()));
    id.push_str(&capitalize(r.version));
    if r.namespaced {
        id.push_str("Namespaced");
    }
    id.push_str(r.kind);
    if let Some(s) = subresource {
        id.push_str(&capitalize(s));
    }
    id
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// PATCH of an object (or of one of its subresources) answering `kind`.
fn patch_operation(r: &ResourceType, kind: GroupVersionKind, subresource: Option<&str>) -> Value {
    let body_schema =
        json!({ "schema": { "$ref": format!("#/components/schemas/{PATCH_SCHEMA}") } });
    let answer = json!({
        "application/json": {
            "schema": { "$ref": format!("#/components/schemas/{}", kind.schema_name()) }
        }
    });
    let what = match subresource {
        Some(s) => format!("{s} of the specified {}", r.kind),
        None => format!("the specified {}", r.kind),
    };
    json!({
        "tags": [format!("{}_{}", GroupVersionKind::of_resource(r).package(), r.version)],
        "description": format!("partially update {what}"),
        "operationId": operation_id(r, subresource),
        "parameters": [
            {
                "name": "fieldManager",
                "in": "query",
                "description": "a name associated with the actor or entity that is making these changes",
                "schema": { "type": "string", "uniqueItems": true },
            },
            {
                "name": "fieldValidation",
                "in": "query",
                "description": "how the server handles unknown or duplicate fields in the request: Ignore, Warn or Strict",
                "schema": { "type": "string", "uniqueItems": true },
            },
            {
                "name": "force",
                "in": "query",
                "description": "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.",
                "schema": { "type": "boolean", "uniqueItems": true },
            },
        ],
        // No strategic-merge-patch+json: see the module documentation.
        "requestBody": {
            "content": {
                "application/apply-patch+yaml": body_schema,
                "application/json-patch+json": body_schema,
                "application/merge-patch+json": body_schema,
            },
            "required": true,
        },
        "responses": {
            "200": { "description": "OK", "content": answer },
            "201": { "description": "Created", "content": answer },
        },
        "x-kubernetes-action": "patch",
        "x-kubernetes-group-version-kind": kind.to_json(),
    })
}

// ---------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------

async fn serve_index() -> Json<Value> {
    Json(index())
}

#[derive(Debug, Deserialize)]
struct DocumentQuery {
    hash: Option<String>,
}

/// `GET /openapi/v3/apis/apps/v1?hash=...`. Like kube-apiserver, a stale
/// hash is redirected to the current one, and a matching hash makes the
/// answer cacheable forever.
async fn serve_group_version(
    Path(group_version): Path<String>,
    Query(query): Query<DocumentQuery>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let Some(doc) = PUBLISHED.iter().find(|p| p.key == group_version) else {
        return StatusError::no_route(uri.path()).into_response();
    };
    let etag = format!("\"{}\"", doc.hash);
    if let Some(hash) = query.hash.as_deref() {
        if hash != doc.hash {
            return (
                StatusCode::MOVED_PERMANENTLY,
                [(header::LOCATION, doc.server_relative_url())],
            )
                .into_response();
        }
    }
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/json")],
            doc.body.clone(),
        )
            .into_response()
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if query.hash.is_some() {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(IMMUTABLE_CACHE_CONTROL),
        );
    }
    response
}

/// The media type of OpenAPI v2 in protobuf (gnostic's `openapi_v2.Document`),
/// the only form kubectl reads v2 in.
const OPENAPI_V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// `GET /openapi/v2`: an empty document - a Swagger 2.0 header with no
/// definitions. kubectl validates a kind v3 does not describe (a kind
/// kube-lite does not serve) against v2, and a kind v2 does not describe
/// either passes, so that what follows says what is wrong, as on a real
/// cluster: `no matches for kind "Ingress" in version "networking.k8s.io/v1"`.
/// Without a v2 at all, kubectl would stop at "failed to download openapi".
async fn serve_v2(headers: HeaderMap) -> Response {
    let wants_protobuf = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains(OPENAPI_V2_PROTOBUF));
    if wants_protobuf {
        // Answered with a dot where the request has `@`: the Go mime parser
        // kubectl uses refuses the `@` in a Content-Type.
        return (
            [(
                header::CONTENT_TYPE,
                "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
            )],
            empty_v2_document_protobuf(),
        )
            .into_response();
    }
    Json(json!({
        "swagger": "2.0",
        "info": { "title": "Kubernetes", "version": discovery::GIT_VERSION },
        "paths": {},
        "definitions": {},
    }))
    .into_response()
}

/// `openapi_v2.Document{swagger: "2.0", info: {title, version}}`: field 1
/// (swagger), field 2 (info: 1 title, 2 version), written with prost's
/// field encoders.
fn empty_v2_document_protobuf() -> Vec<u8> {
    use prost::encoding::{bytes, string};
    let mut info = Vec::new();
    string::encode(1, &"Kubernetes".to_string(), &mut info);
    string::encode(2, &discovery::GIT_VERSION.to_string(), &mut info);
    let mut document = Vec::new();
    string::encode(1, &"2.0".to_string(), &mut document);
    bytes::encode(2, &info, &mut document);
    document
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(path: &str, if_none_match: Option<&str>) -> (StatusCode, HeaderMap, Vec<u8>) {
        let mut req = Request::get(path);
        if let Some(tag) = if_none_match {
            req = req.header(header::IF_NONE_MATCH, tag);
        }
        let resp = routes::<()>()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, headers, body.to_vec())
    }

    /// What kubectl's field-validation check does: find a PATCH operation
    /// whose GVK is `kind`, and look for `fieldValidation` among its own
    /// parameters.
    fn patch_supports_field_validation(doc: &Value, group: &str, kind: &str) -> bool {
        doc["paths"].as_object().unwrap().values().any(|item| {
            let op = &item["patch"];
            op["x-kubernetes-group-version-kind"]["kind"] == kind
                && op["x-kubernetes-group-version-kind"]["group"] == group
                && op["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
        })
    }

    #[test]
    fn every_resource_has_a_patch_operation_accepting_field_validation() {
        // (Reviews are questions, created and never patched.)
        for r in RESOURCES.iter().filter(|r| r.verbs.contains(&"patch")) {
            let doc = group_version_document(r.group, r.version).unwrap();
            assert!(
                patch_supports_field_validation(&doc, r.group, r.kind),
                "{}",
                r.kind
            );
            let path = r.object_path(Some("{namespace}"), "{name}");
            let op = &doc["paths"][&path]["patch"];
            assert_eq!(op["x-kubernetes-group-version-kind"]["version"], r.version);
            let schema_name = GroupVersionKind::of_resource(r).schema_name();
            let schema = &doc["components"]["schemas"][&schema_name];
            assert_eq!(schema["type"], "object");
            assert_eq!(schema["x-kubernetes-group-version-kind"][0]["kind"], r.kind);
        }
    }

    #[test]
    fn patch_bodies_leave_strategic_merge_patch_out() {
        for (group, version) in discovery::group_versions() {
            let doc = group_version_document(group, version).unwrap();
            for item in doc["paths"].as_object().unwrap().values() {
                let content = item["patch"]["requestBody"]["content"].as_object().unwrap();
                assert!(content.contains_key("application/merge-patch+json"));
                assert!(!content.contains_key("application/strategic-merge-patch+json"));
            }
        }
    }

    #[test]
    fn schemas_carry_list_map_keys_and_atomic_types() {
        let apps = group_version_document("apps", "v1").unwrap();
        let schemas = &apps["components"]["schemas"];
        let containers = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-list-type"], "map");
        assert_eq!(containers["x-kubernetes-list-map-keys"], json!(["name"]));
        let ports = &schemas["io.k8s.api.core.v1.Container"]["properties"]["ports"];
        assert_eq!(
            ports["x-kubernetes-list-map-keys"],
            json!(["containerPort", "protocol"])
        );
        let tolerations = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["tolerations"];
        assert_eq!(tolerations["x-kubernetes-list-type"], "atomic");
        let selector = &schemas["io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"];
        assert_eq!(selector["x-kubernetes-map-type"], "atomic");
        let node_selector = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["nodeSelector"];
        assert_eq!(node_selector["x-kubernetes-map-type"], "atomic");
    }

    #[test]
    fn paths_follow_the_kubernetes_url_layout() {
        let core = group_version_document("", "v1").unwrap();
        let paths = core["paths"].as_object().unwrap();
        assert!(paths.contains_key("/api/v1/namespaces/{namespace}/services/{name}"));
        assert!(paths.contains_key("/api/v1/namespaces/{namespace}/pods/{name}/status"));
        assert!(paths.contains_key("/api/v1/nodes/{name}"));
        assert!(paths.contains_key("/api/v1/namespaces/{name}"));
        let svc = &paths["/api/v1/namespaces/{namespace}/services/{name}"];
        assert_eq!(svc["patch"]["operationId"], "patchCoreV1NamespacedService");
        let names: Vec<&Value> = svc["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| &p["name"])
            .collect();
        assert_eq!(names, ["name", "namespace"]);
        let node = &paths["/api/v1/nodes/{name}"];
        assert_eq!(node["parameters"].as_array().unwrap().len(), 1);

        let apps = group_version_document("apps", "v1").unwrap();
        let scale = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
            ["patch"];
        assert_eq!(scale["operationId"], "patchAppsV1NamespacedDeploymentScale");
        assert_eq!(
            scale["x-kubernetes-group-version-kind"],
            json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
        );
        assert!(apps["components"]["schemas"]
            .get("io.k8s.api.autoscaling.v1.Scale")
            .is_some());
        let discovery_doc = group_version_document("discovery.k8s.io", "v1").unwrap();
        assert!(discovery_doc["components"]["schemas"]
            .get("io.k8s.api.discovery.v1.EndpointSlice")
            .is_some());
        assert!(group_version_document("storage.k8s.io", "v1").is_none());
    }

    #[tokio::test]
    async fn index_points_at_every_group_version_document() {
        let (status, headers, body) = get("/openapi/v3", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        let index: Value = serde_json::from_slice(&body).unwrap();
        let paths = index["paths"].as_object().unwrap();
        assert_eq!(paths.len(), discovery::group_versions().len());
        for (group, version) in discovery::group_versions() {
            let key = document_key(group, version);
            let url = paths[&key]["serverRelativeURL"].as_str().unwrap();
            assert!(
                url.starts_with(&format!("/openapi/v3/{key}?hash=")),
                "{url}"
            );
            let (status, headers, body) = get(url, None).await;
            assert_eq!(status, StatusCode::OK, "{url}");
            assert_eq!(headers[header::CONTENT_TYPE], "application/json");
            assert_eq!(headers[header::CACHE_CONTROL], IMMUTABLE_CACHE_CONTROL);
            let doc: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(doc, group_version_document(group, version).unwrap());
        }
    }

    #[tokio::test]
    async fn stale_hashes_redirect_and_etags_revalidate() {
        let (status, headers, _) = get("/openapi/v3/apis/apps/v1?hash=0123", None).await;
        assert_eq!(status, StatusCode::MOVED_PERMANENTLY);
        let location = headers[header::LOCATION].to_str().unwrap();
        assert!(location.starts_with("/openapi/v3/apis/apps/v1?hash="));
        assert_ne!(location, "/openapi/v3/apis/apps/v1?hash=0123");

        let (status, headers, _) = get("/openapi/v3/apis/apps/v1", None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers.get(header::CACHE_CONTROL).is_none());
        let etag = headers[header::ETAG].to_str().unwrap().to_string();
        let (status, _, body) = get("/openapi/v3/apis/apps/v1", Some(&etag)).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert!(body.is_empty());
    }

    #[tokio::test]
    async fn unknown_documents_are_not_found() {
        for path in ["/openapi/v3/apis/storage.k8s.io/v1", "/openapi/v3/api/v2"] {
            let (status, headers, body) = get(path, None).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(headers[header::CONTENT_TYPE], "application/json");
            let s: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(s["kind"], "Status");
        }
    }

    #[tokio::test]
    async fn v2_is_an_empty_document() {
        let (status, _, body) = get("/openapi/v2", None).await;
        assert_eq!(status, StatusCode::OK);
        let doc: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(doc["swagger"], "2.0");
        assert_eq!(doc["definitions"], json!({}));
        let protobuf = empty_v2_document_protobuf();
        assert_eq!(&protobuf[..5], b"\x0a\x032.0");
    }
}
