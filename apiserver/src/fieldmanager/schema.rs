//! The shape of an object as server-side apply sees it: for each field,
//! whether it is a leaf, a struct, a map or a list, and how a list's items
//! are told apart. structured-merge-diff reads this from the OpenAPI
//! schema; kube-lite reads the same facts from the Go types
//! ([`crate::gotypes`]: the `.proto` messages and the tags of each field).
//!
//! - A **struct** is granular: each field is owned on its own. A struct
//!   marked `+structType=atomic` (a `LabelSelector`, an `ObjectReference`)
//!   is one field, owned whole.
//! - A **map** (`map[string]X`, labels, a ConfigMap's data) is granular by
//!   key, unless `+mapType=atomic` (a Service's `selector`).
//! - A **list** is `atomic` (owned and replaced whole: `args`,
//!   `tolerations`), a `set` of scalars (`finalizers`), or a `map` whose
//!   items are told apart by their keys (`containers` by `name`, a
//!   container's `ports` by `containerPort` and `protocol`). With no
//!   `+listType`, a `patchStrategy:"merge"` list is a map on its
//!   `patchMergeKey` (a set for scalars); any other list is atomic.
//! - A field the types do not have (a custom resource, a kind kube-lite
//!   has no `.proto` for) is **deduced** from its value, as upstream does
//!   for schemaless objects: objects are granular maps, lists atomic.

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};

use crate::gotypes::{self, INLINE, RENAMED, SCALARS};

/// How a list's items are told apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    /// The list is one value.
    Atomic,
    /// Scalars, each item its own value.
    Set,
    /// Objects, each told apart by the values of these fields.
    Map(Vec<&'static str>),
}

/// The type of a value in an object.
#[derive(Debug, Clone)]
pub enum Type {
    /// A string, number or boolean (also Time, Quantity, IntOrString).
    Scalar,
    /// A Go struct; `atomic` when `+structType=atomic`.
    Struct {
        message: MessageDescriptor,
        atomic: bool,
    },
    /// A `map[string]X`; `atomic` when `+mapType=atomic`.
    Map { value: Box<Type>, atomic: bool },
    /// A list of items of one type.
    List { item: Box<Type>, list: ListType },
    /// Not in the types: deduced from the value.
    Deduced,
}

/// A field of a struct (or an entry of a map).
#[derive(Debug, Clone)]
pub struct Field {
    pub ty: Type,
    /// Go writes the field even when it is not set: a struct that is not a
    /// pointer, a list, map or scalar without `omitempty`. An object always "has"
    /// it, empty, so its first value is a change of its content, not the
    /// field being added.
    pub always_present: bool,
}

impl Type {
    /// The type of a whole object of `kind` in `api_version`.
    pub fn of_kind(api_version: &str, kind: &str) -> Type {
        match gotypes::message_type(api_version, kind) {
            Some(message) => Type::Struct {
                atomic: false,
                message,
            },
            None => Type::Deduced,
        }
    }

    /// True when the value is owned and replaced whole.
    pub fn is_atomic(&self) -> bool {
        match self {
            Type::Scalar => true,
            Type::Struct { atomic, .. } | Type::Map { atomic, .. } => *atomic,
            Type::List { list, .. } => *list == ListType::Atomic,
            Type::Deduced => false,
        }
    }

    /// The field `name` of a struct, the value type of a map.
    pub fn field(&self, name: &str) -> Field {
        match self {
            Type::Struct { message, .. } => struct_field(message, name).unwrap_or(Field {
                ty: Type::Deduced,
                always_present: false,
            }),
            Type::Map { value, .. } => Field {
                ty: (**value).clone(),
                always_present: false,
            },
            _ => Field {
                ty: Type::Deduced,
                always_present: false,
            },
        }
    }

    /// True for a struct's declared fields: their paths are not members of
    /// a field set themselves (a map's keys are).
    pub fn declares(&self, name: &str) -> bool {
        match self {
            Type::Struct { message, .. } => struct_field(message, name).is_some(),
            _ => false,
        }
    }

    /// The default of a struct's field (`+default=`), which stands in for
    /// a list-map key the item leaves out: a port's `protocol` is `TCP`.
    pub fn default_of(&self, name: &str) -> Option<serde_json::Value> {
        match self {
            Type::Struct { message, .. } => gotypes::tag(message.full_name(), name, "default")
                .and_then(|v| serde_json::from_str(v).ok()),
            _ => None,
        }
    }

    /// The item type of a list.
    pub fn item(&self) -> Type {
        match self {
            Type::List { item, .. } => (**item).clone(),
            _ => Type::Deduced,
        }
    }

    /// The list type of a list (deduced lists are atomic).
    pub fn list_type(&self) -> ListType {
        match self {
            Type::List { list, .. } => list.clone(),
            _ => ListType::Atomic,
        }
    }
}

/// Finds the JSON field `name` of `message`, looking into the messages
/// JSON shows inline, and through renamed fields.
fn struct_field(message: &MessageDescriptor, name: &str) -> Option<Field> {
    let full = message.full_name();
    let proto_name = RENAMED
        .iter()
        .find(|(m, _, json)| *m == full && *json == name)
        .map_or(name, |(_, proto, _)| proto);
    if let Some(field) = message.get_field_by_name(proto_name) {
        if !INLINE.contains(&(full, proto_name)) {
            return Some(field_of(message, &field, name));
        }
    }
    INLINE
        .iter()
        .filter(|(m, _)| *m == full)
        .filter_map(|(_, inline)| message.get_field_by_name(inline))
        .find_map(|inline| match inline.kind() {
            Kind::Message(inner) => struct_field(&inner, name),
            _ => None,
        })
}

fn field_of(message: &MessageDescriptor, field: &FieldDescriptor, json_name: &str) -> Field {
    let full = message.full_name();
    let tags = gotypes::tags(full, json_name);
    let has = |tag: &str| tags.contains(&tag);
    if field.is_map() {
        let value = match field.kind() {
            Kind::Message(entry) => entry
                .get_field_by_name("value")
                .map_or(Type::Scalar, |v| value_type(&v.kind())),
            _ => Type::Scalar,
        };
        return Field {
            ty: Type::Map {
                value: Box::new(value),
                atomic: gotypes::tag(full, json_name, "mapType") == Some("atomic"),
            },
            always_present: !has("omitempty"),
        };
    }
    let item = value_type(&field.kind());
    if field.is_list() {
        let list = match gotypes::tag(full, json_name, "listType") {
            Some("atomic") => ListType::Atomic,
            Some("set") => ListType::Set,
            Some("map") => ListType::Map(keys(full, json_name, "listMapKey")),
            _ => match gotypes::tag(full, json_name, "patchStrategy") {
                Some(strategy) if strategy.split(',').any(|s| s == "merge") => {
                    match gotypes::tag(full, json_name, "patchMergeKey") {
                        Some(key) => ListType::Map(vec![key]),
                        None => ListType::Set,
                    }
                }
                _ => ListType::Atomic,
            },
        };
        return Field {
            ty: Type::List {
                item: Box::new(item),
                list,
            },
            always_present: !has("omitempty"),
        };
    }
    // A struct that is not a pointer is always written, `omitempty` or not
    // (a template's `creationTimestamp: null`, a Time); so is a scalar
    // without `omitempty`.
    let is_struct = matches!(field.kind(), Kind::Message(_));
    let always_present = !has("pointer") && (is_struct || !has("omitempty"));
    Field {
        ty: item,
        always_present,
    }
}

/// The type of a field's values (of one item, for a list).
fn value_type(kind: &Kind) -> Type {
    match kind {
        Kind::Message(message) if SCALARS.contains(&message.full_name()) => Type::Scalar,
        Kind::Message(message) => Type::Struct {
            atomic: gotypes::tag(message.full_name(), "-", "structType") == Some("atomic"),
            message: message.clone(),
        },
        _ => Type::Scalar,
    }
}

/// A comma-separated tag value as a list (`listMapKey=containerPort,protocol`).
fn keys(message: &str, field: &str, tag: &str) -> Vec<&'static str> {
    gotypes::tag(message, field, tag)
        .map(|v| v.split(',').collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(kind: (&str, &str), path: &str) -> Field {
        let mut field = Field {
            ty: Type::of_kind(kind.0, kind.1),
            always_present: true,
        };
        for name in path.split('.') {
            let ty = match &field.ty {
                Type::List { item, .. } => (**item).clone(),
                other => other.clone(),
            };
            field = ty.field(name);
        }
        field
    }

    const DEPLOYMENT: (&str, &str) = ("apps/v1", "Deployment");

    #[test]
    fn lists_are_told_apart_by_their_map_keys() {
        let ports = at(DEPLOYMENT, "spec.template.spec.containers.ports");
        assert_eq!(
            ports.ty.list_type(),
            ListType::Map(vec!["containerPort", "protocol"])
        );
        let containers = at(DEPLOYMENT, "spec.template.spec.containers");
        assert_eq!(containers.ty.list_type(), ListType::Map(vec!["name"]));
        assert!(containers.always_present, "containers has no omitempty");
        assert!(!ports.always_present);
        assert_eq!(
            at(("v1", "Service"), "spec.ports").ty.list_type(),
            ListType::Map(vec!["port", "protocol"])
        );
        assert_eq!(
            at(("v1", "Pod"), "spec.tolerations").ty.list_type(),
            ListType::Atomic
        );
        assert_eq!(
            at(("v1", "Pod"), "metadata.finalizers").ty.list_type(),
            ListType::Set
        );
    }

    #[test]
    fn structs_maps_and_pointers() {
        assert!(at(DEPLOYMENT, "spec.selector").ty.is_atomic());
        assert!(!at(DEPLOYMENT, "spec.selector").always_present);
        assert!(at(DEPLOYMENT, "spec.strategy").always_present);
        assert!(!at(DEPLOYMENT, "spec.strategy.rollingUpdate").always_present);
        assert!(at(DEPLOYMENT, "spec.template.metadata").always_present);
        assert!(matches!(
            at(DEPLOYMENT, "metadata.labels").ty,
            Type::Map { atomic: false, .. }
        ));
        assert!(at(("v1", "Service"), "spec.selector").ty.is_atomic());
        assert!(matches!(at(DEPLOYMENT, "spec.replicas").ty, Type::Scalar));
        let port = at(("v1", "Service"), "spec.ports").ty.item();
        assert_eq!(port.default_of("protocol"), Some(serde_json::json!("TCP")));
        assert_eq!(port.default_of("port"), None);
        assert!(matches!(
            at(DEPLOYMENT, "spec.strategy.rollingUpdate.maxSurge").ty,
            Type::Scalar
        ));
    }

    #[test]
    fn inline_fields_and_unknown_kinds() {
        // A Volume's source is inline in JSON.
        let config_map = at(("v1", "Pod"), "spec.volumes.configMap");
        assert!(matches!(config_map.ty, Type::Struct { .. }));
        assert!(matches!(
            Type::of_kind("example.com/v1", "Widget"),
            Type::Deduced
        ));
        assert!(matches!(
            at(DEPLOYMENT, "spec.noSuchField").ty,
            Type::Deduced
        ));
    }
}
