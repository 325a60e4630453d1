//! From manifest text to objects, and strict decoding.
//!
//! A manifest is what `kubectl apply -f ngx-dep.yml` reads: one or more
//! objects written in YAML, separated by lines holding only `---`, or in
//! JSON. Each object says what it is with `apiVersion` and `kind`; without
//! them nobody could tell a Service from a Deployment, so they are required.
//! A document of `kind: List` (what `kubectl get -o yaml` prints) carries
//! its objects in `items` and is unpacked. Errors say which file, which
//! document and which line, because a manifest can hold dozens of objects.
//!
//! The API server receives the same objects one at a time, as a request body
//! in JSON or YAML ([`decode_body`]).
//!
//! **Strict decoding.** YAML and JSON accept any key, so a typo such as
//! `spec.prots` would silently be ignored and the Service would have no
//! ports. Kubernetes therefore compares each object with the schema of its
//! kind; with `fieldValidation=Strict` (kubectl's default) an unknown field
//! is an error. kube-lite does the same by decoding into the typed
//! `k8s-openapi` structs and collecting every field the decoder had to skip
//! ([`unknown_fields`]), reported in Kubernetes' form `spec.ports[0].foo`.

use serde::de::{DeserializeOwned, Error as _};
use serde::Serialize;
use serde_json::Value;

/// One object of a manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// 1-based number of the document in the file, counting only documents
    /// with content. Objects unpacked from one `List` share its number.
    pub index: usize,
    /// 1-based line of the document's first line of content.
    pub line: usize,
    /// The object, with at least `apiVersion` and `kind`.
    pub value: Value,
}

/// Why manifest text or a request body could not be turned into objects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A document of a manifest file is malformed or not an object.
    #[error("error parsing {file}: document {document} (line {line}): {problem}")]
    Manifest {
        /// The file name (or `-` for stdin), as the user gave it.
        file: String,
        document: usize,
        line: usize,
        problem: String,
    },
    /// A request body is malformed; the API server answers 400.
    #[error("{0}")]
    Body(String),
    /// A request body in a format kube-lite does not read; the API server
    /// answers 415.
    #[error("unsupported media type {0:?}: send application/json or application/yaml")]
    UnsupportedMediaType(String),
}

/// Where a document sits, for error messages.
struct Position<'a> {
    file: &'a str,
    document: usize,
    line: usize,
}

impl Position<'_> {
    fn error(&self, problem: impl Into<String>) -> DecodeError {
        DecodeError::Manifest {
            file: self.file.to_string(),
            document: self.document,
            line: self.line,
            problem: problem.into(),
        }
    }
}

/// Decodes every object of a manifest file. `source` names the file in
/// errors. JSON is recognised, as kubectl does, by a leading `{`; anything
/// else is read as YAML. Empty documents (only comments, or nothing) are
/// skipped, so a file may start with `---` or end with one. A file with no
/// objects at all gives an empty list; whether that is an error is the
/// caller's decision (kubectl: "no objects passed to apply").
pub fn decode_manifests(text: &str, source: &str) -> Result<Vec<Document>, DecodeError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim_start().starts_with('{') {
        decode_json_stream(text, source)
    } else {
        decode_yaml_stream(text, source)
    }
}

/// YAML as Kubernetes reads it (YAML 1.1 flavoured, like `sigs.k8s.io/yaml`):
/// `0644` is octal (a volume's `defaultMode`), `yes`/`no` are booleans.
fn yaml_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.legacy_octal_numbers = true;
    options
}

/// Is this line a document separator? Like kubectl, only `---` at the start
/// of a line, followed by nothing but blanks (or, more leniently than
/// kubectl, a comment).
fn is_document_separator(line: &str) -> bool {
    match line.strip_prefix("---") {
        Some(rest) => {
            let rest = rest.trim();
            rest.is_empty() || rest.starts_with('#')
        }
        None => false,
    }
}

fn decode_yaml_stream(text: &str, source: &str) -> Result<Vec<Document>, DecodeError> {
    let mut documents = Vec::new();
    let mut index = 0;
    // The text between separators, with the file line it starts on.
    let mut sections: Vec<(usize, &str)> = Vec::new();
    let (mut start, mut start_line, mut offset) = (0, 1, 0);
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if is_document_separator(line) {
            sections.push((start_line, &text[start..offset]));
            start = offset + line.len();
            start_line = i + 2;
        }
        offset += line.len();
    }
    sections.push((start_line, &text[start..]));

    for (first_line, section) in sections {
        // The document starts at its first line that is neither blank nor
        // a comment; a section without one is empty and skipped.
        let content_line = section.lines().position(|l| {
            let l = l.trim();
            !l.is_empty() && !l.starts_with('#')
        });
        let Some(content_line) = content_line else {
            continue;
        };
        index += 1;
        let position = Position {
            file: source,
            document: index,
            line: first_line + content_line,
        };
        // Parse the section preceded by as many empty lines as came before
        // it, so the parser's "at line N" is a line of the whole file.
        let padded = format!("{}{}", "\n".repeat(first_line - 1), section);
        let value: Value = serde_saphyr::from_str_with_options(&padded, yaml_options())
            .map_err(|err| position.error(yaml_problem(&err)))?;
        // A document holding only `null` or `...` is empty too.
        if !value.is_null() {
            push_objects(value, &position, &mut documents)?;
        }
    }
    Ok(documents)
}

/// A YAML error as one line: the parser's message and its location.
fn yaml_problem(err: &serde_saphyr::Error) -> String {
    match err.without_snippet() {
        serde_saphyr::Error::MultipleDocuments { .. } => {
            "more than one YAML document here: separate documents with a line holding only '---'"
                .to_string()
        }
        err => err.to_string(),
    }
}

fn decode_json_stream(text: &str, source: &str) -> Result<Vec<Document>, DecodeError> {
    let mut documents = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let mut index = 0;
    loop {
        // Where the next value starts, for its line number.
        let rest = &text[stream.byte_offset()..];
        let start = text.len() - rest.trim_start().len();
        if start == text.len() {
            break;
        }
        index += 1;
        let position = Position {
            file: source,
            document: index,
            line: text[..start].matches('\n').count() + 1,
        };
        match stream.next() {
            None => break,
            Some(Ok(value)) => push_objects(value, &position, &mut documents)?,
            // serde_json's message already says "at line N column M" of the
            // whole text.
            Some(Err(err)) => return Err(position.error(err.to_string())),
        }
    }
    Ok(documents)
}

/// Checks that `value` is an object with `apiVersion` and `kind`, and
/// appends it, or its items if it is a list.
fn push_objects(
    value: Value,
    position: &Position<'_>,
    out: &mut Vec<Document>,
) -> Result<(), DecodeError> {
    let value = check_object(value).map_err(|problem| position.error(problem))?;
    let kind = value["kind"].as_str().unwrap_or_default().to_string();
    let is_list = kind.ends_with("List") && value.get("items").is_some_and(Value::is_array);
    if !is_list {
        out.push(Document {
            index: position.document,
            line: position.line,
            value,
        });
        return Ok(());
    }
    // A typed list (`ServiceList`, as the API returns) may leave apiVersion
    // and kind out of its items; they are those of the list. A plain `List`
    // holds any kinds, so its items must say what they are.
    let item_kind = kind.strip_suffix("List").filter(|k| !k.is_empty());
    let api_version = value["apiVersion"].clone();
    let Value::Object(mut list) = value else {
        unreachable!("check_object returned an object");
    };
    let Some(Value::Array(items)) = list.remove("items") else {
        unreachable!("is_list checked that items is an array");
    };
    for (i, mut item) in items.into_iter().enumerate() {
        if let (Some(item_kind), Value::Object(fields)) = (item_kind, &mut item) {
            fields
                .entry("kind")
                .or_insert_with(|| Value::from(item_kind));
            fields
                .entry("apiVersion")
                .or_insert_with(|| api_version.clone());
        }
        // Items may themselves be lists; unpack them too.
        let mut unpacked = Vec::new();
        push_objects(item, position, &mut unpacked).map_err(|err| match err {
            DecodeError::Manifest { problem, .. } => {
                position.error(format!("items[{i}]: {problem}"))
            }
            other => other,
        })?;
        out.extend(unpacked);
    }
    Ok(())
}

/// The checks apimachinery's decoder makes before anything else, with its
/// messages: an object, with a `kind`, with an `apiVersion`.
fn check_object(value: Value) -> Result<Value, String> {
    let found = match &value {
        Value::Object(_) => None,
        Value::Array(_) => Some("a list"),
        Value::String(_) => Some("a string"),
        Value::Number(_) => Some("a number"),
        Value::Bool(_) => Some("a boolean"),
        Value::Null => Some("null"),
    };
    if let Some(found) = found {
        return Err(format!(
            "expected an object with apiVersion and kind, found {found}"
        ));
    }
    for (field, label) in [("kind", "Kind"), ("apiVersion", "apiVersion")] {
        match value.get(field) {
            Some(Value::String(s)) if !s.is_empty() => {}
            None | Some(Value::Null) | Some(Value::String(_)) => {
                return Err(format!("Object '{label}' is missing in '{value}'"));
            }
            Some(other) => return Err(format!("{field} must be a string, not {other}")),
        }
    }
    Ok(value)
}

/// The formats a request body can be in.
enum BodyFormat {
    Json,
    Yaml,
}

/// Decodes an API request body into one object, as the API server needs.
///
/// `content_type` is the request's `Content-Type`; parameters such as
/// `charset` are ignored and an empty one means JSON. The patch types
/// (`application/merge-patch+json`, ...) are JSON too; a JSON patch
/// (`application/json-patch+json`) is a list of operations rather than an
/// object.
pub fn decode_body(bytes: &[u8], content_type: &str) -> Result<Value, DecodeError> {
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let format = match media_type.as_str() {
        "" | "*/*" | "application/json" => BodyFormat::Json,
        "application/yaml" | "application/x-yaml" | "text/yaml" => BodyFormat::Yaml,
        "application/apply-patch+yaml" => BodyFormat::Yaml,
        t if t.ends_with("+json") => BodyFormat::Json,
        _ => return Err(DecodeError::UnsupportedMediaType(content_type.to_string())),
    };
    let text = std::str::from_utf8(bytes)
        .map_err(|err| DecodeError::Body(format!("the request body is not UTF-8 text: {err}")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(DecodeError::Body("the request body is empty".to_string()));
    }
    let value: Value = match format {
        BodyFormat::Json => serde_json::from_str(text).map_err(|err| {
            DecodeError::Body(format!("the request body is not valid JSON: {err}"))
        })?,
        BodyFormat::Yaml => {
            serde_saphyr::from_str_with_options(text, yaml_options()).map_err(|err| {
                DecodeError::Body(format!(
                    "the request body is not valid YAML: {}",
                    yaml_problem(&err)
                ))
            })?
        }
    };
    let json_patch = media_type == "application/json-patch+json";
    match &value {
        Value::Object(_) if !json_patch => Ok(value),
        Value::Array(_) if json_patch => Ok(value),
        _ if json_patch => Err(DecodeError::Body(
            "a JSON patch must be a list of operations".to_string(),
        )),
        _ => Err(DecodeError::Body(
            "the request body must be a single object".to_string(),
        )),
    }
}

/// An object after strict decoding into its typed struct.
#[derive(Debug, Clone, PartialEq)]
pub struct Typed {
    /// The object re-encoded from the struct: exactly the fields the type
    /// has (unknown fields dropped, as kube-apiserver drops them).
    pub object: Value,
    /// The path of every field the type does not have (`spec.ports[0].foo`).
    pub unknown: Vec<String>,
}

/// Decodes `value` as the typed object `K` and returns the path of every
/// field `K` does not have, in Kubernetes' notation (`spec.ports[0].foo`).
///
/// A value of the wrong type (a string where a port number belongs) is an
/// error naming its path: `spec.ports[0].port: invalid type: string "80",
/// expected i32`.
pub fn unknown_fields<K: DeserializeOwned + Serialize>(
    value: &Value,
) -> Result<Vec<String>, serde_json::Error> {
    decode_typed::<K>(value).map(|typed| typed.unknown)
}

/// Decodes `value` as `K` once: the pruned object and the unknown fields.
pub fn decode_typed<K: DeserializeOwned + Serialize>(
    value: &Value,
) -> Result<Typed, serde_json::Error> {
    let mut unknown = Vec::new();
    let mut track = serde_path_to_error::Track::new();
    // Two layers around the JSON value: the outer one reports the fields
    // `K` skips, the inner one remembers where a type error happened.
    let tracked = serde_path_to_error::Deserializer::new(value, &mut track);
    let decoded: Result<K, serde_json::Error> = serde_ignored::deserialize(tracked, |path| {
        let mut segments = Vec::new();
        ignored_path_segments(&path, &mut segments);
        unknown.push(field_path(&segments));
    });
    match decoded {
        Ok(object) => Ok(Typed {
            object: serde_json::to_value(object)?,
            unknown,
        }),
        Err(err) => {
            let segments: Vec<PathSegment> = track
                .path()
                .iter()
                .filter_map(|segment| match segment {
                    serde_path_to_error::Segment::Seq { index } => Some(PathSegment::Index(*index)),
                    serde_path_to_error::Segment::Map { key } => {
                        Some(PathSegment::Field(key.clone()))
                    }
                    _ => None,
                })
                .collect();
            if segments.is_empty() {
                Err(err)
            } else {
                Err(serde_json::Error::custom(format!(
                    "{}: {err}",
                    field_path(&segments)
                )))
            }
        }
    }
}

/// A step of a field path.
enum PathSegment {
    Field(String),
    Index(usize),
}

/// Flattens serde_ignored's linked path, skipping the steps that are not
/// fields or indexes (`Option` and newtype wrappers).
fn ignored_path_segments(path: &serde_ignored::Path<'_>, out: &mut Vec<PathSegment>) {
    use serde_ignored::Path;
    match path {
        Path::Root => {}
        Path::Seq { parent, index } => {
            ignored_path_segments(parent, out);
            out.push(PathSegment::Index(*index));
        }
        Path::Map { parent, key } => {
            ignored_path_segments(parent, out);
            out.push(PathSegment::Field(key.clone()));
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => ignored_path_segments(parent, out),
    }
}

/// `spec.ports[0].foo`
fn field_path(segments: &[PathSegment]) -> String {
    let mut path = String::new();
    for segment in segments {
        match segment {
            PathSegment::Field(name) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(name);
            }
            PathSegment::Index(i) => path.push_str(&format!("[{i}]")),
        }
    }
    path
}

/// [`decode_typed`] for the typed object of `apiVersion`/`kind`: every
/// kind of the resource table, plus the kinds that only appear as request
/// bodies (`Binding`, `Scale`, `DeleteOptions`). `None` for a kind kube-lite
/// has no schema for.
pub fn decode_kind(
    api_version: &str,
    kind: &str,
    value: &Value,
) -> Option<Result<Typed, serde_json::Error>> {
    use k8s_openapi::api::{
        apps, authentication, authorization, autoscaling, certificates, coordination, core,
        discovery, rbac,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta;

    type Check = fn(&Value) -> Result<Typed, serde_json::Error>;
    let check: Check = match (api_version, kind) {
        ("v1", "Namespace") => decode_typed::<core::v1::Namespace>,
        ("v1", "Pod") => decode_typed::<core::v1::Pod>,
        ("v1", "Service") => decode_typed::<core::v1::Service>,
        ("v1", "Endpoints") => decode_typed::<core::v1::Endpoints>,
        ("v1", "ConfigMap") => decode_typed::<core::v1::ConfigMap>,
        ("v1", "Secret") => decode_typed::<core::v1::Secret>,
        ("v1", "ServiceAccount") => decode_typed::<core::v1::ServiceAccount>,
        ("authentication.k8s.io/v1", "TokenRequest") => {
            decode_typed::<authentication::v1::TokenRequest>
        }
        ("v1", "Node") => decode_typed::<core::v1::Node>,
        ("v1", "Event") => decode_typed::<core::v1::Event>,
        ("v1", "Binding") => decode_typed::<core::v1::Binding>,
        ("policy/v1", "Eviction") => decode_typed::<k8s_openapi::api::policy::v1::Eviction>,
        ("apps/v1", "Deployment") => decode_typed::<apps::v1::Deployment>,
        ("apps/v1", "ReplicaSet") => decode_typed::<apps::v1::ReplicaSet>,
        ("apps/v1", "DaemonSet") => decode_typed::<apps::v1::DaemonSet>,
        ("apps/v1", "StatefulSet") => decode_typed::<apps::v1::StatefulSet>,
        ("apps/v1", "ControllerRevision") => decode_typed::<apps::v1::ControllerRevision>,
        ("batch/v1", "Job") => decode_typed::<k8s_openapi::api::batch::v1::Job>,
        ("batch/v1", "CronJob") => decode_typed::<k8s_openapi::api::batch::v1::CronJob>,
        ("discovery.k8s.io/v1", "EndpointSlice") => decode_typed::<discovery::v1::EndpointSlice>,
        ("coordination.k8s.io/v1", "Lease") => decode_typed::<coordination::v1::Lease>,
        ("certificates.k8s.io/v1", "CertificateSigningRequest") => {
            decode_typed::<certificates::v1::CertificateSigningRequest>
        }
        ("autoscaling/v1", "Scale") => decode_typed::<autoscaling::v1::Scale>,
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => decode_typed::<rbac::v1::ClusterRole>,
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            decode_typed::<rbac::v1::ClusterRoleBinding>
        }
        ("rbac.authorization.k8s.io/v1", "Role") => decode_typed::<rbac::v1::Role>,
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => decode_typed::<rbac::v1::RoleBinding>,
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => {
            decode_typed::<authorization::v1::SelfSubjectAccessReview>
        }
        ("authentication.k8s.io/v1", "SelfSubjectReview") => {
            decode_typed::<authentication::v1::SelfSubjectReview>
        }
        // Clients send DeleteOptions with either group, or with none.
        ("" | "v1" | "meta.k8s.io/v1", "DeleteOptions") => decode_typed::<meta::v1::DeleteOptions>,
        _ => return None,
    };
    Some(check(value))
}

/// The unknown fields of a manifest of `apiVersion`/`kind` (see
/// [`decode_kind`]).
pub fn unknown_fields_for_kind(
    api_version: &str,
    kind: &str,
    value: &Value,
) -> Option<Result<Vec<String>, serde_json::Error>> {
    decode_kind(api_version, kind, value).map(|r| r.map(|typed| typed.unknown))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::RESOURCES;
    use serde_json::json;

    /// The lesson's manifest, as the repo keeps it in examples/lesson/.
    const ALL_IN_ONE: &str = include_str!("../../examples/lesson/all-in-one.yml");

    /// The lesson's NodePort Service, from examples/lesson/.
    const NGX_SVC_NODEPORT: &str = include_str!("../../examples/lesson/ngx-svc-nodeport.yml");

    fn strict(doc: &Document) -> Vec<String> {
        let api_version = doc.value["apiVersion"].as_str().unwrap();
        let kind = doc.value["kind"].as_str().unwrap();
        unknown_fields_for_kind(api_version, kind, &doc.value)
            .unwrap_or_else(|| panic!("no schema for {kind}"))
            .unwrap_or_else(|err| panic!("{kind}: {err}"))
    }

    #[test]
    fn lesson_manifest_decodes_cleanly() {
        let docs = decode_manifests(ALL_IN_ONE, "all-in-one.yml").unwrap();
        let summary: Vec<(usize, usize, &str)> = docs
            .iter()
            .map(|d| (d.index, d.line, d.value["kind"].as_str().unwrap()))
            .collect();
        assert_eq!(
            summary,
            [
                (1, 2, "ConfigMap"),
                (2, 17, "Deployment"),
                (3, 44, "Service")
            ]
        );
        for doc in &docs {
            assert!(strict(doc).is_empty(), "{:?}", doc.value);
        }
        let dep = &docs[1].value;
        assert_eq!(dep["spec"]["replicas"], 2);
        assert_eq!(
            dep["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
            80
        );
        let conf = docs[0].value["data"]["default.conf"].as_str().unwrap();
        assert!(conf.starts_with("server {\n  listen 80;\n"));
        assert!(conf.contains(r"'srv : $server_addr:$server_port\nhost"));
    }

    #[test]
    fn the_repos_lesson_examples_decode_cleanly() {
        // examples/lesson/ is the repo's copy of the lesson's manifests.
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/lesson");
        let mut checked = 0;
        for entry in std::fs::read_dir(dir)
            .expect("examples/lesson exists")
            .flatten()
        {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("yml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let docs = decode_manifests(&text, &path.display().to_string()).unwrap();
            assert!(!docs.is_empty(), "{}", path.display());
            for doc in &docs {
                assert!(strict(doc).is_empty(), "{}", path.display());
                checked += 1;
            }
        }
        assert!(checked >= 7, "all five lesson files, seven objects");
    }

    #[test]
    fn nodeport_service_with_blank_lines_and_leading_comment() {
        let docs = decode_manifests(NGX_SVC_NODEPORT, "ngx-svc-nodeport.yml").unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!((docs[0].index, docs[0].line), (1, 2));
        assert_eq!(docs[0].value["spec"]["type"], "NodePort");
        assert_eq!(docs[0].value["spec"]["ports"][0]["targetPort"], 80);
        assert!(strict(&docs[0]).is_empty());
    }

    #[test]
    fn kubectl_dry_run_output_decodes_cleanly() {
        // What `kubectl create deployment ngx-dep --image=nginx:alpine
        // --dry-run=client -o yaml` prints: nulls and empty objects included.
        let text = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  creationTimestamp: null
  labels:
    app: ngx-dep
  name: ngx-dep
spec:
  replicas: 1
  selector:
    matchLabels:
      app: ngx-dep
  strategy: {}
  template:
    metadata:
      creationTimestamp: null
      labels:
        app: ngx-dep
    spec:
      containers:
      - image: nginx:alpine
        name: nginx
        resources: {}
status: {}
"#;
        let docs = decode_manifests(text, "dry-run.yml").unwrap();
        assert!(strict(&docs[0]).is_empty());
    }

    #[test]
    fn unknown_fields_are_reported_with_kubernetes_paths() {
        let svc = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "ngx-svc", "labels": {"any.key/works": "x"}},
            "spec": {
                "selector": {"app": "ngx-dep"},
                "ports": [{"port": 80}, {"port": 81, "foo": 1}],
                "bogus": "x"
            },
            "extra": {"deep": true}
        });
        let mut unknown = unknown_fields::<k8s_openapi::api::core::v1::Service>(&svc).unwrap();
        unknown.sort();
        assert_eq!(unknown, ["extra", "spec.bogus", "spec.ports[1].foo"]);

        // The brief's example, from YAML.
        let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  bogus: x\n  ports:\n  - port: 80\n    foo: 1\n";
        let docs = decode_manifests(text, "svc.yml").unwrap();
        let mut unknown = strict(&docs[0]);
        unknown.sort();
        assert_eq!(unknown, ["spec.bogus", "spec.ports[0].foo"]);

        let dep = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i", "imagePullPolicy": "Always", "portz": []}]}}}
        });
        assert_eq!(
            unknown_fields_for_kind("apps/v1", "Deployment", &dep)
                .unwrap()
                .unwrap(),
            ["spec.template.spec.containers[0].portz"]
        );
    }

    #[test]
    fn type_errors_name_their_path() {
        let svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "s"},
            "spec": {"ports": [{"port": 80}, {"port": "eighty"}]}
        });
        let err = unknown_fields::<k8s_openapi::api::core::v1::Service>(&svc).unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.ports[1].port: invalid type: string \"eighty\", expected i32"
        );
        // A wrong apiVersion for the kind is refused (by the object itself,
        // so without a path).
        let wrong = json!({"apiVersion": "v2", "kind": "Service", "metadata": {"name": "s"}});
        let err = unknown_fields::<k8s_openapi::api::core::v1::Service>(&wrong).unwrap_err();
        assert_eq!(err.to_string(), "invalid value: string \"v2\", expected v1");
        let nested =
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"labels": {"a": 1}}});
        let err = unknown_fields::<k8s_openapi::api::core::v1::Service>(&nested).unwrap_err();
        assert_eq!(
            err.to_string(),
            "metadata.labels.a: invalid type: integer `1`, expected a string"
        );
        // Not an object at all.
        let err = unknown_fields::<k8s_openapi::api::core::v1::Service>(&json!([1])).unwrap_err();
        assert!(err.to_string().contains("invalid type: sequence"), "{err}");
    }

    #[test]
    fn every_served_kind_has_a_schema() {
        for resource in RESOURCES {
            let value = json!({
                "apiVersion": resource.api_version(),
                "kind": resource.kind,
                "metadata": {"name": "x", "nmae": "typo"}
            });
            let unknown = unknown_fields_for_kind(&resource.api_version(), resource.kind, &value)
                .unwrap_or_else(|| panic!("no schema for {}", resource.kind))
                .unwrap_or_else(|err| panic!("{}: {err}", resource.kind));
            assert_eq!(unknown, ["metadata.nmae"], "{}", resource.kind);
        }
        for (api_version, kind) in [
            ("v1", "Binding"),
            ("policy/v1", "Eviction"),
            ("autoscaling/v1", "Scale"),
            ("meta.k8s.io/v1", "DeleteOptions"),
            ("v1", "DeleteOptions"),
            ("", "DeleteOptions"),
        ] {
            assert!(
                unknown_fields_for_kind(api_version, kind, &json!({})).is_some(),
                "{api_version} {kind}"
            );
        }
        assert!(unknown_fields_for_kind("v1", "PersistentVolumeClaim", &json!({})).is_none());
        assert!(unknown_fields_for_kind("apps/v2", "Deployment", &json!({})).is_none());
    }

    #[test]
    fn request_only_kinds_are_checked_too() {
        let binding = json!({
            "apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": "ngx-1"},
            "target": {"kind": "Node", "name": "node1", "nodeName": "oops"}
        });
        assert_eq!(
            unknown_fields_for_kind("v1", "Binding", &binding)
                .unwrap()
                .unwrap(),
            ["target.nodeName"]
        );
        let scale = json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "spec": {"replicas": 3, "replica": 1}});
        assert_eq!(
            unknown_fields_for_kind("autoscaling/v1", "Scale", &scale)
                .unwrap()
                .unwrap(),
            ["spec.replica"]
        );
        let delete = json!({"propagationPolicy": "Background", "gracePeriodSecond": 0});
        assert_eq!(
            unknown_fields_for_kind("", "DeleteOptions", &delete)
                .unwrap()
                .unwrap(),
            ["gracePeriodSecond"]
        );
    }

    #[test]
    fn yaml_syntax_errors_name_file_document_and_line() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n# second\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b: c\n";
        let err = decode_manifests(text, "cm.yml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "error parsing cm.yml: document 2 (line 7): mapping values are not allowed in this context at line 10, column 10"
        );
        assert!(matches!(
            err,
            DecodeError::Manifest {
                document: 2,
                line: 7,
                ..
            }
        ));

        let bad_indent = "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n spec: {}\n";
        let err = decode_manifests(bad_indent, "svc.yml")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("error parsing svc.yml: document 1 (line 1): "),
            "{err}"
        );
        assert!(err.contains("line 5"), "{err}");
    }

    #[test]
    fn documents_must_say_what_they_are() {
        let err = decode_manifests("apiVersion: v1\nmetadata:\n  name: x\n", "x.yml").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"error parsing x.yml: document 1 (line 1): Object 'Kind' is missing in '{"apiVersion":"v1","metadata":{"name":"x"}}'"#
        );
        let err = decode_manifests("kind: Pod\n", "x.yml").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"error parsing x.yml: document 1 (line 1): Object 'apiVersion' is missing in '{"kind":"Pod"}'"#
        );
        let err = decode_manifests("kind: ''\napiVersion: v1\n", "x.yml").unwrap_err();
        assert!(err.to_string().contains("Object 'Kind' is missing"));
        let err = decode_manifests("kind: 5\napiVersion: v1\n", "x.yml").unwrap_err();
        assert!(
            err.to_string().ends_with("kind must be a string, not 5"),
            "{err}"
        );
        let err = decode_manifests("- a\n- b\n", "x.yml").unwrap_err();
        assert!(err
            .to_string()
            .ends_with("expected an object with apiVersion and kind, found a list"));
        let err = decode_manifests("just text\n", "x.yml").unwrap_err();
        assert!(err.to_string().ends_with("found a string"), "{err}");
    }

    #[test]
    fn empty_documents_and_separators_are_skipped() {
        let text = "---\n# only a comment\n---\n\n---   \napiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n--- # trailing comment\n...\n---\nnull\n---\r\napiVersion: v1\r\nkind: Namespace\r\nmetadata:\r\n  name: b\r\n---\n";
        let docs = decode_manifests(text, "ns.yml").unwrap();
        let found: Vec<(usize, usize, &str)> = docs
            .iter()
            .map(|d| {
                (
                    d.index,
                    d.line,
                    d.value["metadata"]["name"].as_str().unwrap(),
                )
            })
            .collect();
        // `...` and `null` are documents (numbered) without objects.
        assert_eq!(found, [(1, 6, "a"), (4, 15, "b")]);
        assert!(decode_manifests("", "empty.yml").unwrap().is_empty());
        assert!(decode_manifests("# nothing\n\n", "empty.yml")
            .unwrap()
            .is_empty());
        assert!(decode_manifests("\u{feff}kind: Namespace\napiVersion: v1\n", "bom.yml").is_ok());
    }

    #[test]
    fn yaml_scalars_are_read_as_kubernetes_does() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  labels:\n    version: '1.10'\ndata:\n  port: \"8080\"\nmode: 0644\nflag: yes\n";
        let docs = decode_manifests(text, "c.yml").unwrap();
        let v = &docs[0].value;
        assert_eq!(v["metadata"]["labels"]["version"], "1.10");
        assert_eq!(v["data"]["port"], "8080");
        assert_eq!(v["mode"], 420);
        assert_eq!(v["flag"], true);
    }

    #[test]
    fn lists_are_unpacked() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata:\n    name: a\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: b\n";
        let docs = decode_manifests(text, "list.yml").unwrap();
        let kinds: Vec<&str> = docs
            .iter()
            .map(|d| d.value["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["Namespace", "ConfigMap"]);
        assert!(docs.iter().all(|d| d.index == 1 && d.line == 1));

        // Typed lists lend their apiVersion and kind to the items.
        let typed = json!({"apiVersion": "v1", "kind": "ServiceList", "metadata": {}, "items": [{"metadata": {"name": "s"}}]});
        let docs = decode_manifests(&typed.to_string(), "svcs.json").unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].value["kind"], "Service");
        assert_eq!(docs[0].value["apiVersion"], "v1");

        // A plain List's items must name their kind.
        let err = decode_manifests(
            "apiVersion: v1\nkind: List\nitems:\n- metadata: {}\n",
            "l.yml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("items[0]: Object 'Kind' is missing"), "{err}");

        assert!(
            decode_manifests("apiVersion: v1\nkind: List\nitems: []\n", "l.yml")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn json_manifests_single_list_and_stream() {
        let one = r#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}"#;
        let docs = decode_manifests(one, "ns.json").unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!((docs[0].index, docs[0].line), (1, 1));

        let stream = format!("\n{one}\n\n{}\n", one.replace("\"a\"", "\"b\""));
        let docs = decode_manifests(&stream, "ns.json").unwrap();
        let found: Vec<(usize, usize)> = docs.iter().map(|d| (d.index, d.line)).collect();
        assert_eq!(found, [(1, 2), (2, 4)]);

        let list = json!({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}},
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}}
        ]});
        let docs =
            decode_manifests(&serde_json::to_string_pretty(&list).unwrap(), "l.json").unwrap();
        assert_eq!(docs.len(), 2);

        let err = decode_manifests("{\"kind\": \"Pod\",\n \"apiVersion\": }", "bad.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("error parsing bad.json: document 1 (line 1): "),
            "{err}"
        );
        assert!(err.contains("line 2 column"), "{err}");
        let err = decode_manifests(&format!("{one}\n{{\"kind\": \"Pod\"}}"), "two.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "error parsing two.json: document 2 (line 2): Object 'apiVersion' is missing"
            ),
            "{err}"
        );
    }

    #[test]
    fn bodies_in_json_and_yaml() {
        let json_body = br#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}}"#;
        for content_type in [
            "application/json",
            "",
            "application/json; charset=utf-8",
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ] {
            let v = decode_body(json_body, content_type).unwrap();
            assert_eq!(v["metadata"]["name"], "a", "{content_type}");
        }
        let yaml_body = b"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n";
        assert_eq!(
            decode_body(yaml_body, "application/yaml").unwrap()["kind"],
            "Namespace"
        );
        // DeleteOptions bodies carry no kind, and need none.
        assert_eq!(
            decode_body(br#"{"propagationPolicy":"Background"}"#, "application/json").unwrap()
                ["propagationPolicy"],
            "Background"
        );
        let patch = br#"[{"op":"replace","path":"/spec/replicas","value":3}]"#;
        assert!(decode_body(patch, "application/json-patch+json")
            .unwrap()
            .is_array());
    }

    #[test]
    fn body_errors_are_one_line() {
        let cases: [(&[u8], &str, &str); 8] = [
            (b"{\"a\": ", "application/json", "the request body is not valid JSON: EOF while parsing a value at line 1 column 6"),
            (b"", "application/json", "the request body is empty"),
            (b"[1]", "application/json", "the request body must be a single object"),
            (b"{}", "application/json-patch+json", "a JSON patch must be a list of operations"),
            (b"a: 1\n---\nb: 2\n", "application/yaml", "the request body is not valid YAML: more than one YAML document here: separate documents with a line holding only '---'"),
            (b"a: b: c\n", "application/yaml", "the request body is not valid YAML: mapping values are not allowed in this context at line 1, column 5"),
            (b"\xff\xfe", "application/json", "the request body is not UTF-8 text: invalid utf-8 sequence of 1 bytes from index 0"),
            (b"k8s\0", "application/vnd.kubernetes.protobuf", "unsupported media type \"application/vnd.kubernetes.protobuf\": send application/json or application/yaml"),
        ];
        for (body, content_type, expected) in cases {
            let err = decode_body(body, content_type).unwrap_err();
            assert_eq!(err.to_string(), expected, "{content_type}");
            assert!(!err.to_string().contains('\n'));
        }
        assert!(matches!(
            decode_body(b"x", "application/vnd.kubernetes.protobuf"),
            Err(DecodeError::UnsupportedMediaType(_))
        ));
    }
}
