//! Request bodies in protobuf (`application/vnd.kubernetes.protobuf`), as
//! the real kubectl sends them for the kinds it knows (`kubectl create
//! secret|namespace|deployment|...`, `auth can-i`, `create token`).
//!
//! The body is the 4 bytes `k8s\0`, then a `runtime.Unknown` message: the
//! object's apiVersion and kind, and the object itself, protobuf-encoded
//! (`raw`). Which bytes are which field is Kubernetes' `.proto` files'
//! business: `protos/` holds them (see `protos/vendor.sh`), compiled at
//! build time into a descriptor set (`build.rs`), so one generic decoder
//! reads every kind - a `DynamicMessage` of `prost-reflect` - and turns it
//! into the JSON the rest of the apiserver reads. The answer is JSON,
//! which kubectl accepts as well (its Accept header lists both).
//!
//! The JSON is not the protobuf message field for field; go-to-protobuf
//! leaves a few differences that this file undoes, each in one table:
//!
//! The tables live in [`crate::gotypes`]:
//!
//! - [`POINTERS`]: Go writes every field that is not a pointer even when
//!   it holds its zero value (`nodeName: ""`, `hostNetwork: false`), which
//!   means "not set" - JSON leaves those out - while a pointer field holds
//!   a zero on purpose (`replicas: 0`, `automountServiceAccountToken:
//!   false`). The pointer fields are listed in `protos/pointers.txt`;
//! - [`SCALARS`]: types that are one JSON value but a message on the wire
//!   (`Time` is seconds and nanos, a `Quantity` is a string in a message,
//!   `IntOrString` is a tagged pair);
//! - [`INLINE`]: Go structs embedded `json:",inline"`, which protobuf keeps
//!   as a nested message (a Volume's `volumeSource`);
//! - [`RENAMED`]: fields whose protobuf name is not their JSON name.

use base64::Engine as _;
use prost::Message as _;
use prost_reflect::{DynamicMessage, MapKey, ReflectMessage as _, Value as Field};
use serde_json::{json, Map, Value};

use crate::gotypes::{message_type, INLINE, POINTERS, RENAMED, SCALARS};
use crate::status::StatusError;

/// The media type of Kubernetes protobuf.
pub const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// The magic number before every protobuf-encoded Kubernetes object.
const MAGIC: &[u8] = b"k8s\0";

/// Go's zero time (year 1), which protobuf carries as these seconds.
const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

/// Whether a `Content-Type` is Kubernetes protobuf.
pub fn is_protobuf(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| ct.split(';').next().map(str::trim) == Some(PROTOBUF))
}

/// An object's type and bytes, out of the envelope.
struct Envelope {
    api_version: String,
    kind: String,
    raw: Vec<u8>,
}

fn bad(why: impl std::fmt::Display) -> StatusError {
    StatusError::bad_request(format!("the protobuf body could not be read: {why}"))
}

/// Opens the envelope.
fn envelope(body: &[u8]) -> Result<Envelope, StatusError> {
    let message = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("it does not start with \"k8s\\0\""))?;
    let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown::decode(message).map_err(bad)?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    Ok(Envelope {
        api_version: type_meta.api_version.unwrap_or_default(),
        kind: type_meta.kind.unwrap_or_default(),
        raw: unknown.raw.unwrap_or_default(),
    })
}

/// Decodes a protobuf body into the object's JSON, `apiVersion` and
/// `kind` included.
pub fn decode(body: &[u8]) -> Result<Value, StatusError> {
    let envelope = envelope(body)?;
    let descriptor = message_type(&envelope.api_version, &envelope.kind).ok_or_else(|| {
        StatusError::bad_request(format!(
            "no kind {:?} is registered for version {:?} in scheme",
            envelope.kind, envelope.api_version
        ))
    })?;
    let message = DynamicMessage::decode(descriptor, envelope.raw.as_slice()).map_err(|e| {
        StatusError::bad_request(format!(
            "{} in version {:?} cannot be handled as a {}: {e}",
            envelope.kind, envelope.api_version, envelope.kind
        ))
    })?;
    let mut object = Map::new();
    object.insert("apiVersion".into(), json!(envelope.api_version));
    object.insert("kind".into(), json!(envelope.kind));
    if let Value::Object(fields) = message_json(&message) {
        object.extend(fields);
    }
    Ok(Value::Object(object))
}

/// A message as JSON: its set fields, by JSON name.
fn message_json(message: &DynamicMessage) -> Value {
    let full_name = message.descriptor().full_name().to_string();
    if SCALARS.contains(&full_name.as_str()) {
        return scalar_json(&full_name, message);
    }
    let mut object = Map::new();
    for (field, value) in message.fields() {
        let name = field.name();
        let json = field_json(value);
        if is_zero(&json) && !POINTERS.contains(&(full_name.as_str(), name)) {
            continue;
        }
        if INLINE.contains(&(full_name.as_str(), name)) {
            if let Value::Object(inner) = json {
                object.extend(inner);
            }
            continue;
        }
        let name = RENAMED
            .iter()
            .find(|(message, from, _)| *message == full_name && *from == name)
            .map_or(name, |(_, _, to)| to);
        object.insert(name.to_string(), json);
    }
    Value::Object(object)
}

/// A Go zero value: what a field that is not a pointer holds when unset.
fn is_zero(json: &Value) -> bool {
    match json {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(_) | Value::Object(_) => false,
    }
}

fn field_json(value: &Field) -> Value {
    match value {
        Field::Bool(b) => json!(b),
        Field::I32(n) => json!(n),
        Field::I64(n) => json!(n),
        Field::U32(n) => json!(n),
        Field::U64(n) => json!(n),
        Field::F32(n) => json!(n),
        Field::F64(n) => json!(n),
        Field::String(s) => json!(s),
        // Bytes are base64 in JSON (a Secret's data).
        Field::Bytes(b) => json!(base64::engine::general_purpose::STANDARD.encode(b)),
        Field::EnumNumber(n) => json!(n),
        Field::Message(m) => message_json(m),
        Field::List(items) => Value::Array(items.iter().map(field_json).collect()),
        Field::Map(entries) => {
            let mut object = Map::new();
            for (key, value) in entries {
                let key = match key {
                    MapKey::String(s) => s.clone(),
                    MapKey::Bool(b) => b.to_string(),
                    MapKey::I32(n) => n.to_string(),
                    MapKey::I64(n) => n.to_string(),
                    MapKey::U32(n) => n.to_string(),
                    MapKey::U64(n) => n.to_string(),
                };
                object.insert(key, field_json(value));
            }
            Value::Object(object)
        }
    }
}

/// The JSON value of a [`SCALARS`] message.
fn scalar_json(full_name: &str, message: &DynamicMessage) -> Value {
    let get = |name: &str| message.get_field_by_name(name).map(|v| v.into_owned());
    let int = |name: &str| get(name).and_then(|v| v.as_i64().or(v.as_i32().map(i64::from)));
    let text = |name: &str| get(name).and_then(|v| v.as_str().map(str::to_string));
    let bytes = |name: &str| get(name).and_then(|v| v.as_bytes().map(|b| b.to_vec()));
    let short = full_name.rsplit('.').next().unwrap_or_default();
    match short {
        "Time" | "MicroTime" => {
            let seconds = int("seconds").unwrap_or(0);
            let nanos = int("nanos").unwrap_or(0) as u32;
            // Go writes a zero Time as an empty message (time_proto.go:
            // `Marshal` of a zero Time is nothing), which reads as 0 and 0;
            // older encoders wrote year 1. Both are JSON's `null`.
            if (seconds == GO_ZERO_TIME_SECONDS || seconds == 0) && nanos == 0 {
                return Value::Null;
            }
            let Some(at) = chrono::DateTime::from_timestamp(seconds, nanos) else {
                return Value::Null;
            };
            let format = if short == "Time" {
                chrono::SecondsFormat::Secs
            } else {
                chrono::SecondsFormat::Micros
            };
            json!(at.to_rfc3339_opts(format, true))
        }
        "Quantity" => json!(text("string").unwrap_or_default()),
        // type 0 is an int, 1 a string.
        "IntOrString" => match int("type") {
            Some(1) => json!(text("strVal").unwrap_or_default()),
            _ => json!(int("intVal").unwrap_or(0)),
        },
        // The raw bytes are the object, in JSON.
        "RawExtension" | "FieldsV1" => {
            let field = if short == "RawExtension" {
                "raw"
            } else {
                "Raw"
            };
            bytes(field)
                .and_then(|raw| serde_json::from_slice(&raw).ok())
                .unwrap_or(Value::Null)
        }
        "ExtraValue" => match get("items") {
            Some(items) => field_json(&items),
            None => json!([]),
        },
        _ => message_json(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};

    /// The body kubectl would send for `object` (k8s-pb's generated
    /// types, encoded by prost: an encoder independent of the decoder).
    fn body(api_version: &str, kind: &str, object: &impl prost::Message) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(object.encode_to_vec()),
            ..Default::default()
        };
        let mut body = MAGIC.to_vec();
        body.extend(unknown.encode_to_vec());
        body
    }

    fn meta(name: &str) -> Option<k8s_pb::apimachinery::pkg::apis::meta::v1::ObjectMeta> {
        Some(k8s_pb::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        })
    }

    #[test]
    fn a_secret_is_its_json_with_data_in_base64() {
        let secret = k8s_pb::api::core::v1::Secret {
            metadata: meta("db"),
            data: [("password".to_string(), b"s3cret".to_vec())].into(),
            r#type: Some("Opaque".into()),
            ..Default::default()
        };
        assert_eq!(
            decode(&body("v1", "Secret", &secret)).unwrap(),
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "db"},
                "data": {"password": "czNjcmV0"},
                "type": "Opaque"
            })
        );
    }

    #[test]
    fn inline_structs_int_or_strings_and_quantities_are_as_in_json() {
        use k8s_pb::api::core::v1::{
            ConfigMapVolumeSource, Container, ContainerPort, HttpGetAction, LocalObjectReference,
            PodSpec, Probe, ProbeHandler, ResourceRequirements, Volume, VolumeSource,
        };
        use k8s_pb::apimachinery::pkg::api::resource::Quantity;
        use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
        let spec = PodSpec {
            containers: vec![Container {
                name: Some("web".into()),
                image: Some("nginx:alpine".into()),
                ports: vec![ContainerPort {
                    container_port: Some(80),
                    ..Default::default()
                }],
                readiness_probe: Some(Probe {
                    handler: Some(ProbeHandler {
                        http_get: Some(HttpGetAction {
                            port: Some(IntOrString {
                                r#type: Some(1),
                                str_val: Some("http".into()),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    period_seconds: Some(1),
                    ..Default::default()
                }),
                resources: Some(ResourceRequirements {
                    limits: [(
                        "memory".to_string(),
                        Quantity {
                            string: Some("64Mi".into()),
                        },
                    )]
                    .into(),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            volumes: vec![Volume {
                name: Some("conf".into()),
                volume_source: Some(VolumeSource {
                    config_map: Some(ConfigMapVolumeSource {
                        local_object_reference: Some(LocalObjectReference {
                            name: Some("ngx-conf".into()),
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }],
            ..Default::default()
        };
        let pod = k8s_pb::api::core::v1::Pod {
            metadata: meta("web"),
            spec: Some(spec),
            ..Default::default()
        };
        let json = decode(&body("v1", "Pod", &pod)).unwrap();
        assert_eq!(
            json["spec"],
            json!({
                "containers": [{
                    "name": "web", "image": "nginx:alpine",
                    "ports": [{"containerPort": 80}],
                    "readinessProbe": {"httpGet": {"port": "http"}, "periodSeconds": 1},
                    "resources": {"limits": {"memory": "64Mi"}}
                }],
                "volumes": [{"name": "conf", "configMap": {"name": "ngx-conf"}}]
            })
        );
    }

    #[test]
    fn times_are_rfc3339_and_renamed_fields_take_their_json_names() {
        use k8s_pb::api::authentication::v1::{
            BoundObjectReference, TokenRequest, TokenRequestSpec,
        };
        let request = TokenRequest {
            metadata: Some(k8s_pb::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                creation_timestamp: Some(k8s_pb::apimachinery::pkg::apis::meta::v1::Time {
                    seconds: Some(1_796_640_000),
                    nanos: Some(0),
                }),
                ..Default::default()
            }),
            spec: Some(TokenRequestSpec {
                bound_object_ref: Some(BoundObjectReference {
                    kind: Some("Pod".into()),
                    u_id: Some("1234".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let json = decode(&body("authentication.k8s.io/v1", "TokenRequest", &request)).unwrap();
        assert_eq!(
            json["metadata"]["creationTimestamp"],
            "2026-12-07T10:40:00Z"
        );
        assert_eq!(
            json["spec"]["boundObjectRef"],
            json!({"kind": "Pod", "uid": "1234"})
        );
    }

    #[test]
    fn go_zero_values_mean_unset_except_in_pointer_fields() {
        use k8s_pb::api::apps::v1::{Deployment, DeploymentSpec};
        use k8s_pb::api::core::v1::{PodSpec, PodTemplateSpec};
        use k8s_pb::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
        // What Go writes for a Deployment scaled to zero that leaves the
        // rest unset: every non-pointer field, at its zero value.
        let deployment = Deployment {
            metadata: Some(ObjectMeta {
                name: Some("web".into()),
                namespace: Some(String::new()),
                creation_timestamp: Some(Time {
                    seconds: Some(GO_ZERO_TIME_SECONDS),
                    nanos: Some(0),
                }),
                ..Default::default()
            }),
            spec: Some(DeploymentSpec {
                replicas: Some(0),
                min_ready_seconds: Some(0),
                paused: Some(false),
                template: Some(PodTemplateSpec {
                    // Go marshals a zero Time as an empty message.
                    metadata: Some(ObjectMeta {
                        creation_timestamp: Some(Time {
                            seconds: Some(0),
                            nanos: Some(0),
                        }),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        node_name: Some(String::new()),
                        host_network: Some(false),
                        automount_service_account_token: Some(false),
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let json = decode(&body("apps/v1", "Deployment", &deployment)).unwrap();
        assert_eq!(json["metadata"], json!({"name": "web"}));
        assert_eq!(
            json["spec"],
            json!({
                "replicas": 0,
                "template": {"metadata": {}, "spec": {"automountServiceAccountToken": false}}
            })
        );
    }

    #[test]
    fn unknown_kinds_and_broken_bodies_are_400s() {
        let unknown = decode(&body(
            "v1",
            "Gadget",
            &k8s_pb::api::core::v1::Secret::default(),
        ))
        .unwrap_err();
        assert_eq!(unknown.code, 400);
        assert_eq!(
            unknown.message,
            "no kind \"Gadget\" is registered for version \"v1\" in scheme"
        );
        assert_eq!(decode(b"not protobuf").unwrap_err().code, 400);
        let mut truncated = body(
            "v1",
            "Secret",
            &k8s_pb::api::core::v1::Secret {
                metadata: meta("db"),
                ..Default::default()
            },
        );
        truncated.truncate(truncated.len() - 2);
        assert_eq!(decode(&truncated).unwrap_err().code, 400);
    }
}
