//! `-o yaml`, `-o json`, `-o name` and the one-line results of a command.
//!
//! Besides tables, kubectl shows objects three ways: the whole object as
//! YAML or JSON, or just its name as `<kind>.<group>/<name>`
//! (`service/ngx-svc`, `deployment.apps/ngx-dep`). The same name, followed
//! by what happened, is what every write command prints:
//! `deployment.apps/ngx-dep created`, `service/ngx-svc labeled`.
//! When several objects are printed as YAML or JSON, kubectl wraps them in
//! a `v1 List`.

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::yaml;

/// The `-o` formats kubectl-lite understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// The default: the server's table.
    Table,
    /// The table with its priority-1 columns (`-o wide`).
    Wide,
    Yaml,
    Json,
    /// `kind.group/name`, one per line.
    Name,
    /// `-o jsonpath='{.spec.clusterIP}'` (parsed once; a CLI run prints
    /// with one template, so it lives for the whole run).
    JsonPath(&'static crate::jsonpath::Template),
}

impl OutputFormat {
    /// Parses `-o`; `None` means no `-o` was given.
    pub fn parse(flag: Option<&str>) -> anyhow::Result<Self> {
        Ok(match flag {
            None | Some("") => OutputFormat::Table,
            Some("wide") => OutputFormat::Wide,
            Some("yaml") => OutputFormat::Yaml,
            Some("json") => OutputFormat::Json,
            Some("name") => OutputFormat::Name,
            Some(other) if other.starts_with("jsonpath=") => {
                let template = crate::jsonpath::Template::parse(&other["jsonpath=".len()..])
                    .map_err(|e| anyhow::anyhow!(e))?;
                OutputFormat::JsonPath(Box::leak(Box::new(template)))
            }
            Some(other) => anyhow::bail!(
                "unable to match a printer suitable for the output format \"{other}\", allowed formats are: json,jsonpath,name,wide,yaml"
            ),
        })
    }
}

/// `service` for core objects, `deployment.apps` otherwise: how kubectl
/// names an object's kind in its output.
pub fn qualified_kind(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap_or_default().to_lowercase();
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    match api_version.split_once('/') {
        Some((group, _)) if !group.is_empty() => format!("{kind}.{group}"),
        _ => kind,
    }
}

/// `service/ngx-svc`: what `-o name` prints.
pub fn object_name(object: &Value) -> String {
    format!(
        "{}/{}",
        qualified_kind(object),
        object["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// `service/ngx-svc created`, with ` (dry run)` for `--dry-run=client`.
pub fn action_line(object: &Value, action: &str, dry_run: bool) -> String {
    let mut line = format!("{} {action}", object_name(object));
    if dry_run {
        line.push_str(" (dry run)");
    }
    line
}

/// Several objects as kubectl prints them together: a `v1 List`.
pub fn as_list(items: Vec<Value>) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": items,
        "metadata": {"resourceVersion": ""},
    })
}

/// Prints objects read from the server: one as itself, several (or a list
/// request) as a `List`.
pub fn render_objects(format: OutputFormat, items: Vec<Value>, single: bool) -> String {
    match format {
        OutputFormat::Name => items.iter().map(|o| object_name(o) + "\n").collect(),
        OutputFormat::JsonPath(template) => {
            if single && items.len() == 1 {
                template.render(&items[0])
            } else {
                template.render(&as_list(items))
            }
        }
        OutputFormat::Yaml | OutputFormat::Json => {
            let value = if single && items.len() == 1 {
                items.into_iter().next().unwrap_or(Value::Null)
            } else {
                as_list(items)
            };
            if format == OutputFormat::Yaml {
                yaml::to_yaml(&value)
            } else {
                to_json(&value, &sorted_keys)
            }
        }
        OutputFormat::Table | OutputFormat::Wide => {
            unreachable!("tables are printed by the get command")
        }
    }
}

/// Prints an object kubectl built itself (`create`, `expose` with
/// `--dry-run=client`). Go prints typed objects as JSON in struct field
/// order (`kind` before `apiVersion`), hence [`go_field_order`].
pub fn render_built(format: OutputFormat, object: &Value, action: &str) -> String {
    match format {
        OutputFormat::Yaml => yaml::to_yaml(object),
        OutputFormat::Json => to_json(object, &go_field_order),
        OutputFormat::Name => object_name(object) + "\n",
        OutputFormat::JsonPath(template) => template.render(object),
        OutputFormat::Table | OutputFormat::Wide => action_line(object, action, true) + "\n",
    }
}

/// Orders keys alphabetically, as Go's `encoding/json` does for maps
/// (objects read from the server are maps to kubectl).
pub fn sorted_keys(a: &str, b: &str) -> std::cmp::Ordering {
    a.cmp(b)
}

/// The order of fields in the Go structs kubectl builds for `create` and
/// `expose` (ObjectMeta, DeploymentSpec, Container, ServiceSpec,
/// ServicePort, ...). One list works for all of them because each struct
/// orders the fields it shares with another the same way.
pub fn go_field_order(a: &str, b: &str) -> std::cmp::Ordering {
    const ORDER: &[&str] = &[
        "kind",
        "apiVersion",
        "metadata",
        "name",
        "generateName",
        "namespace",
        "creationTimestamp",
        "labels",
        "annotations",
        "spec",
        "immutable",
        "data",
        "binaryData",
        "replicas",
        "image",
        "ports",
        "hostPort",
        "containerPort",
        "protocol",
        "appProtocol",
        "port",
        "targetPort",
        "nodePort",
        "selector",
        "matchLabels",
        "template",
        "containers",
        "resources",
        "strategy",
        "clusterIP",
        "type",
        "externalName",
        "status",
        "loadBalancer",
    ];
    let rank = |k: &str| ORDER.iter().position(|o| *o == k).unwrap_or(ORDER.len());
    rank(a).cmp(&rank(b)).then_with(|| a.cmp(b))
}

/// JSON the way Go's `json.MarshalIndent(obj, "", "    ")` writes it:
/// four-space indent, `<`, `>` and `&` escaped, a final newline.
pub fn to_json(value: &Value, order: &dyn Fn(&str, &str) -> std::cmp::Ordering) -> String {
    let mut out = String::new();
    write_json(&mut out, value, 0, order);
    out.push('\n');
    out
}

fn write_json(
    out: &mut String,
    value: &Value,
    indent: usize,
    order: &dyn Fn(&str, &str) -> std::cmp::Ordering,
) {
    let pad = |n: usize| " ".repeat(n * 4);
    match value {
        Value::Object(map) if !map.is_empty() => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| order(a, b));
            out.push_str("{\n");
            for (i, key) in keys.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                write_json_string(out, key);
                out.push_str(": ");
                write_json(out, &map[key.as_str()], indent + 1, order);
                if i + 1 < keys.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            out.push_str(&pad(indent));
            out.push('}');
        }
        Value::Array(items) if !items.is_empty() => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                write_json(out, item, indent + 1, order);
                if i + 1 < items.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            out.push_str(&pad(indent));
            out.push(']');
        }
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
        Value::String(s) => write_json_string(out, s),
        other => out.push_str(&other.to_string()),
    }
}

fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "ngx-dep"}})
    }

    #[test]
    fn names_are_group_qualified_except_for_core() {
        assert_eq!(object_name(&deployment()), "deployment.apps/ngx-dep");
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ngx-svc"}});
        assert_eq!(object_name(&svc), "service/ngx-svc");
        assert_eq!(
            action_line(&svc, "created", false),
            "service/ngx-svc created"
        );
        assert_eq!(
            action_line(&deployment(), "created", true),
            "deployment.apps/ngx-dep created (dry run)"
        );
    }

    #[test]
    fn several_objects_become_a_list() {
        let yaml = render_objects(OutputFormat::Yaml, vec![deployment(), deployment()], false);
        assert!(yaml.starts_with("apiVersion: v1\nitems:\n- apiVersion: apps/v1\n"));
        assert!(yaml.ends_with("kind: List\nmetadata:\n  resourceVersion: \"\"\n"));
        let one = render_objects(OutputFormat::Yaml, vec![deployment()], true);
        assert_eq!(
            one,
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ngx-dep\n"
        );
    }

    #[test]
    fn json_is_go_style() {
        let value = json!({"b": {"x": [1, "<a&b>"]}, "a": {}, "c": []});
        assert_eq!(
            to_json(&value, &sorted_keys),
            "{\n    \"a\": {},\n    \"b\": {\n        \"x\": [\n            1,\n            \"\\u003ca\\u0026b\\u003e\"\n        ]\n    },\n    \"c\": []\n}\n"
        );
    }

    #[test]
    fn built_objects_use_struct_order() {
        // kubectl create deployment ngx-dep --image=nginx:alpine --dry-run=client -o json
        let value = json!({
            "kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {"name": "ngx-dep", "labels": {"app": "ngx-dep"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "ngx-dep"}},
                "template": {"metadata": {"labels": {"app": "ngx-dep"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx:alpine", "resources": {}}]}},
                "strategy": {}},
            "status": {}
        });
        let expected = r#"{
    "kind": "Deployment",
    "apiVersion": "apps/v1",
    "metadata": {
        "name": "ngx-dep",
        "labels": {
            "app": "ngx-dep"
        }
    },
    "spec": {
        "replicas": 1,
        "selector": {
            "matchLabels": {
                "app": "ngx-dep"
            }
        },
        "template": {
            "metadata": {
                "labels": {
                    "app": "ngx-dep"
                }
            },
            "spec": {
                "containers": [
                    {
                        "name": "nginx",
                        "image": "nginx:alpine",
                        "resources": {}
                    }
                ]
            }
        },
        "strategy": {}
    },
    "status": {}
}
"#;
        assert_eq!(
            render_built(OutputFormat::Json, &value, "created"),
            expected
        );
    }

    #[test]
    fn unknown_output_format_is_refused() {
        assert_eq!(
            OutputFormat::parse(Some("wide")).unwrap(),
            OutputFormat::Wide
        );
        let err = OutputFormat::parse(Some("xml")).unwrap_err();
        assert!(err.to_string().contains("\"xml\""));
    }
}
