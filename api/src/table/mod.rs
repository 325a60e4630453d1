//! # The Table that `kubectl get` prints
//!
//! `kubectl get svc` formats nothing itself. It asks the apiserver for a
//! `meta.k8s.io/v1` **Table** (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`)
//! and the server answers with the columns and, per object, a row of cells
//! that are already text:
//!
//! ```text
//! {"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":{"resourceVersion":"42"},
//!  "columnDefinitions":[{"name":"Name","type":"string","format":"name",
//!                        "description":"...","priority":0}, ...],
//!  "rows":[{"cells":["ngx-svc","NodePort","10.96.0.17","<none>","80:30651/TCP","5m","app=ngx-dep"],
//!           "object":{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":{...}}}]}
//! ```
//!
//! So the knowledge of what `PORT(S)` means lives in the server
//! (kube-apiserver's `pkg/printers/internalversion/printers.go`, which the
//! files below follow), and any kubectl can print any server's resources.
//! The server always fills every column; those with `priority: 1` are the
//! ones kubectl only shows with `-o wide`.
//!
//! # Layout
//! - this file: the Table ([`to_table`]), its column definitions, and which
//!   printer serves which resource.
//! - `age`: [`format_age`], the `5m` / `2d3h` / `3y12d` durations kubectl shows.
//! - `pod`, `service`, `core`, `apps`, `coordination`: each resource's
//!   columns and cells (pods; services, endpoints and endpointslices;
//!   namespaces, configmaps, nodes and events; deployments, replicasets and
//!   daemonsets; leases).
//! - `print`: the client half, turning a Table into kubectl's aligned text
//!   ([`print_table`], [`TablePrinter`] for `get -w`).

mod age;
mod apps;
mod batch;
mod certificates;
mod coordination;
mod core;
mod pod;
mod print;
mod rbac;
mod service;

use std::borrow::Borrow;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::resources::ResourceType;

pub use age::{age_of, format_age};
pub use apps::format_label_selector;
pub use print::{no_resources_message, print_rows_only, print_table, PrintOptions, TablePrinter};

/// What each row carries besides its cells, chosen by the client with
/// `includeObject=` (in the query or the `Accept` header's parameters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IncludeObject {
    /// Cells only.
    None,
    /// The object's metadata as a `PartialObjectMetadata`: what kubectl asks
    /// for, because `-A` reads the NAMESPACE column from it and `-w` needs
    /// the object's identity, while the full object would waste bandwidth.
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` parameter (`None`, `Metadata`, `Object`).
    pub fn from_param(value: &str) -> Option<Self> {
        match value {
            "None" => Some(Self::None),
            "Metadata" => Some(Self::Metadata),
            "Object" => Some(Self::Object),
            _ => None,
        }
    }
}

/// Builds the whole Table for `objects` of one resource: a list answer, or a
/// single object's (`kubectl get svc ngx-svc`) with one object. Objects may
/// be owned or shared (`Value`, `&Value`, `Arc<Value>`).
/// `list_meta` becomes the Table's `metadata` (`resourceVersion`, and
/// `continue` when paging); `kubectl get -w` starts its watch from that
/// `resourceVersion`.
pub fn to_table(
    resource: &ResourceType,
    objects: &[impl Borrow<Value>],
    now: DateTime<Utc>,
    include_object: IncludeObject,
    list_meta: Value,
) -> Value {
    let objects: Vec<&Value> = objects.iter().map(Borrow::borrow).collect();
    serde_json::to_value(table(resource, &objects, now, include_object, list_meta))
        .expect("a table serializes")
}

/// The `Table` of `objects`, borrowing them: serialized straight to the
/// answer, so that a LIST of thousands of objects copies none of their
/// metadata (`managedFields` is most of it).
pub fn table<'a>(
    resource: &ResourceType,
    objects: &[&'a Value],
    now: DateTime<Utc>,
    include_object: IncludeObject,
    list_meta: Value,
) -> Table<'a> {
    let printer = printer_for(resource);
    let rows = objects
        .iter()
        .map(|obj| Row {
            cells: (printer.cells)(obj, now),
            conditions: printer.conditions.and_then(|conditions| conditions(obj)),
            object: match include_object {
                IncludeObject::None => None,
                IncludeObject::Metadata => Some(RowObject::Metadata {
                    kind: "PartialObjectMetadata",
                    api_version: "meta.k8s.io/v1",
                    metadata: obj.get("metadata").unwrap_or(&EMPTY_METADATA),
                }),
                IncludeObject::Object => Some(RowObject::Object(obj)),
            },
        })
        .collect();
    Table {
        kind: "Table",
        api_version: "meta.k8s.io/v1",
        metadata: list_meta,
        column_definitions: column_definitions(resource),
        rows,
    }
}

static EMPTY_METADATA: std::sync::LazyLock<Value> =
    std::sync::LazyLock::new(|| Value::Object(Map::new()));

/// A `meta.k8s.io/v1` Table, as it goes on the wire.
#[derive(Debug, serde::Serialize)]
pub struct Table<'a> {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    metadata: Value,
    #[serde(rename = "columnDefinitions")]
    column_definitions: Vec<Value>,
    rows: Vec<Row<'a>>,
}

#[derive(Debug, serde::Serialize)]
struct Row<'a> {
    cells: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    conditions: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    object: Option<RowObject<'a>>,
}

#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
enum RowObject<'a> {
    Metadata {
        kind: &'static str,
        #[serde(rename = "apiVersion")]
        api_version: &'static str,
        metadata: &'a Value,
    },
    Object(&'a Value),
}

/// The `columnDefinitions` of a resource's Table, wide columns included.
pub fn column_definitions(resource: &ResourceType) -> Vec<Value> {
    printer_for(resource)
        .columns
        .iter()
        .map(|column| {
            json!({
                "name": column.name,
                "type": column.cell_type,
                "format": column.format,
                "description": column.description,
                "priority": column.priority,
            })
        })
        .collect()
}

/// The cells of one object's row, one per column definition (wide columns
/// included, as kube-apiserver always renders them).
pub fn row_cells(resource: &ResourceType, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    (printer_for(resource).cells)(obj, now)
}

/// `Set.String()` of a label map as kubectl shows it: `app=ngx,tier=web`,
/// keys sorted, `<none>` when there are none (a Service's SELECTOR, a
/// DaemonSet's NODE SELECTOR).
pub fn format_labels(labels: Option<&Value>) -> String {
    let mut pairs: Vec<String> = labels
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .map(|(key, value)| format!("{key}={}", value.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    if pairs.is_empty() {
        return "<none>".to_string();
    }
    pairs.sort();
    pairs.join(",")
}

/// One column of a resource's table, as `columnDefinitions` carries it.
#[derive(Debug, Clone, Copy)]
struct Column {
    /// Upstream spells it `Cluster-IP`, `Nominated Node`; kubectl upper-cases it.
    name: &'static str,
    /// The OpenAPI type of the cells: `string`, `integer`, `date`.
    cell_type: &'static str,
    /// `name` marks the column holding the object's name: kubectl prefixes it
    /// with the kind (`service/ngx-svc`) when several kinds are printed.
    format: &'static str,
    /// Upstream uses the field's API documentation; we keep its first sentence.
    description: &'static str,
    /// 0: always shown; 1: only with `-o wide`.
    priority: u8,
}

impl Column {
    const fn string(name: &'static str, description: &'static str) -> Self {
        Column {
            name,
            cell_type: "string",
            format: "",
            description,
            priority: 0,
        }
    }

    const fn integer(name: &'static str, description: &'static str) -> Self {
        Column {
            cell_type: "integer",
            ..Column::string(name, description)
        }
    }

    /// Shown only by `kubectl get -o wide`.
    const fn wide(self) -> Self {
        Column {
            priority: 1,
            ..self
        }
    }
}

/// The NAME column every resource starts with.
const NAME: Column = Column {
    format: "name",
    ..Column::string("Name", "Name must be unique within a namespace.")
};

/// The AGE column: time since `metadata.creationTimestamp`.
const AGE: Column = Column::string(
    "Age",
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
);

/// The wide CONTAINERS / IMAGES columns of workload controllers.
const CONTAINERS: Column =
    Column::string("Containers", "Names of each container in the template.").wide();
const IMAGES: Column = Column::string(
    "Images",
    "Images referenced by each container in the template.",
)
.wide();

/// How one resource becomes rows: its columns and the functions filling them.
#[derive(Clone, Copy)]
struct Printer {
    columns: &'static [Column],
    /// One cell per column, wide ones included.
    cells: fn(&Value, DateTime<Utc>) -> Vec<Value>,
    /// Row conditions (only Pods have them: `Completed` once they finished).
    conditions: Option<fn(&Value) -> Option<Value>>,
}

fn printer_for(resource: &ResourceType) -> Printer {
    match (resource.group, resource.kind) {
        ("", "Namespace") => core::NAMESPACES,
        ("", "Pod") => pod::PODS,
        ("", "Service") => service::SERVICES,
        ("", "Endpoints") => service::ENDPOINTS,
        ("", "ConfigMap") => core::CONFIGMAPS,
        ("", "Secret") => core::SECRETS,
        ("", "ServiceAccount") => core::SERVICEACCOUNTS,
        ("", "Node") => core::NODES,
        ("", "Event") => core::EVENTS,
        ("apps", "Deployment") => apps::DEPLOYMENTS,
        ("apps", "ReplicaSet") => apps::REPLICASETS,
        ("apps", "DaemonSet") => apps::DAEMONSETS,
        ("apps", "StatefulSet") => apps::STATEFULSETS,
        ("apps", "ControllerRevision") => apps::CONTROLLER_REVISIONS,
        ("batch", "Job") => batch::JOBS,
        ("batch", "CronJob") => batch::CRONJOBS,
        ("discovery.k8s.io", "EndpointSlice") => service::ENDPOINTSLICES,
        ("coordination.k8s.io", "Lease") => coordination::LEASES,
        ("certificates.k8s.io", "CertificateSigningRequest") => certificates::CSRS,
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => rbac::BINDINGS,
        _ => DEFAULT,
    }
}

/// What kube-apiserver's default table convertor shows for a resource
/// without its own printer: the name and the creation time as a timestamp.
const DEFAULT: Printer = Printer {
    columns: &[
        NAME,
        Column {
            cell_type: "date",
            ..Column::string(
                "Created At",
                "CreationTimestamp is a timestamp representing the server time when this object was created.",
            )
        },
    ],
    cells: default_cells,
    conditions: None,
};

fn default_cells(obj: &Value, _now: DateTime<Utc>) -> Vec<Value> {
    // Go formats the zero time when the field is unset.
    let created = timestamp(obj, "/metadata/creationTimestamp")
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string());
    vec![json!(text(obj, "/metadata/name")), json!(created)]
}

// Reading objects. Upstream's printers read typed Go structs, where an unset
// field is its zero value ("", 0, empty list); these accessors give the same
// zero values for a JSON object, so each printer reads like its Go original.

/// The string at a JSON pointer (`/spec/type`), "" when absent.
fn text<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The integer at a JSON pointer, 0 when absent.
fn int(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer)
        .and_then(Value::as_i64)
        .unwrap_or_default()
}

/// The boolean at a JSON pointer, false when absent.
fn flag(obj: &Value, pointer: &str) -> bool {
    obj.pointer(pointer)
        .and_then(Value::as_bool)
        .unwrap_or_default()
}

/// The list at a JSON pointer, empty when absent.
fn list<'a>(obj: &'a Value, pointer: &str) -> &'a [Value] {
    obj.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The timestamp (`Time` or `MicroTime`) at a JSON pointer.
fn timestamp(obj: &Value, pointer: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(obj.pointer(pointer)?.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `<none>` for an empty cell, the way upstream fills blanks.
fn or_none(value: &str) -> String {
    if value.is_empty() {
        "<none>".to_string()
    } else {
        value.to_string()
    }
}

/// The wide CONTAINERS and IMAGES cells of a pod template: `nginx,sidecar`.
fn container_cells(template: &Value) -> (String, String) {
    let containers = list(template, "/spec/containers");
    let names: Vec<&str> = containers.iter().map(|c| text(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| text(c, "/image")).collect();
    (names.join(","), images.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{lookup, RESOURCES};

    fn now() -> DateTime<Utc> {
        "2026-11-25T10:00:00Z".parse().unwrap()
    }

    fn ngx_svc() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "ngx-svc",
                "namespace": "default",
                "uid": "7d3c1f0e-0000-4000-8000-000000000001",
                "resourceVersion": "812",
                "creationTimestamp": "2026-11-25T09:55:00Z",
            },
            "spec": {
                "type": "ClusterIP",
                "clusterIP": "10.96.0.17",
                "clusterIPs": ["10.96.0.17"],
                "selector": {"app": "ngx-dep"},
                "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}],
            },
        })
    }

    #[test]
    fn service_columns_match_upstream_names_types_and_priorities() {
        let columns = column_definitions(lookup("svc").unwrap());
        let summary: Vec<(&str, &str, i64)> = columns
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap(),
                    c["type"].as_str().unwrap(),
                    c["priority"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("Name", "string", 0),
                ("Type", "string", 0),
                ("Cluster-IP", "string", 0),
                ("External-IP", "string", 0),
                ("Port(s)", "string", 0),
                ("Age", "string", 0),
                ("Selector", "string", 1),
            ]
        );
        assert_eq!(columns[0]["format"], "name");
        assert_eq!(columns[1]["format"], "");
        assert!(columns[2]["description"]
            .as_str()
            .unwrap()
            .contains("clusterIP"));
    }

    #[test]
    fn table_carries_list_metadata_cells_and_partial_object_metadata() {
        let svc = lookup("svc").unwrap();
        let table = to_table(
            svc,
            &[ngx_svc()],
            now(),
            IncludeObject::default(),
            json!({"resourceVersion": "900"}),
        );
        assert_eq!(table["kind"], "Table");
        assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(table["metadata"], json!({"resourceVersion": "900"}));
        assert_eq!(table["columnDefinitions"].as_array().unwrap().len(), 7);
        let row = &table["rows"][0];
        assert_eq!(
            row["cells"],
            json!([
                "ngx-svc",
                "ClusterIP",
                "10.96.0.17",
                "<none>",
                "80/TCP",
                "5m",
                "app=ngx-dep"
            ])
        );
        assert_eq!(
            row["object"],
            json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": ngx_svc()["metadata"],
            })
        );
        assert!(row.get("conditions").is_none());
    }

    #[test]
    fn include_object_chooses_what_rows_carry() {
        let svc = lookup("svc").unwrap();
        let objects = [ngx_svc()];
        let none = to_table(svc, &objects, now(), IncludeObject::None, json!({}));
        assert!(none["rows"][0].get("object").is_none());
        let whole = to_table(svc, &objects, now(), IncludeObject::Object, json!({}));
        assert_eq!(whole["rows"][0]["object"], ngx_svc());
        // The apiserver's cache hands out shared objects.
        let shared = [std::sync::Arc::new(ngx_svc())];
        let from_shared = to_table(svc, &shared, now(), IncludeObject::Object, json!({}));
        assert_eq!(from_shared, whole);
        assert_eq!(
            IncludeObject::from_param("Object"),
            Some(IncludeObject::Object)
        );
        assert_eq!(IncludeObject::from_param("None"), Some(IncludeObject::None));
        assert_eq!(IncludeObject::from_param("all"), None);
    }

    #[test]
    fn empty_list_still_has_columns() {
        let table = to_table(
            lookup("pods").unwrap(),
            &[] as &[Value],
            now(),
            IncludeObject::Metadata,
            json!({"resourceVersion": "1"}),
        );
        assert_eq!(table["rows"], json!([]));
        assert_eq!(table["columnDefinitions"].as_array().unwrap().len(), 9);
    }

    #[test]
    fn every_resource_fills_exactly_one_cell_per_column_even_from_an_empty_object() {
        for resource in RESOURCES {
            let columns = column_definitions(resource);
            let cells = row_cells(resource, &json!({}), now());
            assert_eq!(cells.len(), columns.len(), "{resource}");
            assert_eq!(columns.iter().filter(|c| c["format"] == "name").count(), 1);
            for (column, cell) in columns.iter().zip(&cells) {
                let expected = match column["type"].as_str().unwrap() {
                    "integer" => cell.is_i64(),
                    _ => cell.is_string() || cell.is_i64(),
                };
                assert!(expected, "{resource} {} {cell}", column["name"]);
            }
        }
    }

    #[test]
    fn resource_without_printer_gets_the_default_name_and_created_at() {
        let widgets = ResourceType {
            kind: "Widget",
            plural: "widgets",
            singular: "widget",
            ..*lookup("cm").unwrap()
        };
        let names: Vec<Value> = column_definitions(&widgets)
            .iter()
            .map(|c| c["name"].clone())
            .collect();
        assert_eq!(names, [json!("Name"), json!("Created At")]);
        let obj = json!({"metadata": {"name": "w1", "creationTimestamp": "2026-01-02T03:04:05Z"}});
        assert_eq!(
            row_cells(&widgets, &obj, now()),
            [json!("w1"), json!("2026-01-02T03:04:05Z")]
        );
    }

    #[test]
    fn labels_print_sorted_or_none() {
        assert_eq!(
            format_labels(Some(&json!({"tier": "web", "app": "ngx"}))),
            "app=ngx,tier=web"
        );
        assert_eq!(format_labels(Some(&json!({}))), "<none>");
        assert_eq!(format_labels(None), "<none>");
    }
}
