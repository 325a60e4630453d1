//! `kubectl get`: list objects, or follow them with `-w`.
//!
//! kubectl does not know how to print a Service or a Pod: it asks the API
//! server to do it. A list request carries
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io,application/json`
//! and the server answers with a `meta.k8s.io/v1 Table`: column definitions
//! (`NAME`, `TYPE`, `CLUSTER-IP`, ..., priority 1 for `-o wide` only) and
//! one row of already formatted cells per object. kubectl only aligns them
//! ([`api::table::print_table`]). That is why `kubectl get` shows the same
//! columns for every server version and for custom resources it has never
//! heard of.
//!
//! `-o yaml|json|name` ask for the objects themselves instead. `-w` prints
//! the list, then opens a *watch* from the list's `resourceVersion` and
//! prints one row per change as the server streams them.

use clap::Args;
use serde_json::{json, Value};

use api::resources::ResourceType;
use api::table::{no_resources_message, print_table, PrintOptions, TablePrinter};

use crate::client::{Client, ErrorList, TABLE_ACCEPT};
use crate::output::{self, OutputFormat};
use crate::resource_args::{self, ResourceRef};

#[derive(Debug, Args)]
pub struct GetArgs {
    /// TYPE[,TYPE...] [NAME...] or TYPE/NAME...
    pub args: Vec<String>,
    /// Output format: wide, yaml, json or name
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Selector (label query) to filter on, e.g. -l app=ngx-dep
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Selector (field query) to filter on, e.g. --field-selector spec.nodeName=n1
    #[arg(long)]
    pub field_selector: Option<String>,
    /// After listing, watch for changes
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// List across all namespaces
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Don't print headers
    #[arg(long)]
    pub no_headers: bool,
    /// Show all labels as the last column
    #[arg(long)]
    pub show_labels: bool,
}

pub async fn run(client: &Client, args: GetArgs) -> anyhow::Result<()> {
    if args.args.is_empty() {
        eprintln!(
            "You must specify the type of resource to get. Use \"kubectl-lite api-resources\" for a complete list of supported resources.\n"
        );
        anyhow::bail!(
            "Required resource not specified.\nSee 'kubectl-lite get -h' for help and examples"
        );
    }
    let format = OutputFormat::parse(args.output.as_deref())?;
    let refs = resource_args::parse(&args.args)?;
    if args.all_namespaces && refs.iter().any(|r| !r.names.is_empty()) {
        anyhow::bail!("a resource cannot be retrieved by name across all namespaces");
    }
    let namespace = (!args.all_namespaces).then_some(client.namespace.as_str());
    let query = list_query(&args);
    if args.watch {
        return watch(client, &args, &refs, namespace, &query, format).await;
    }
    match format {
        OutputFormat::Table | OutputFormat::Wide => {
            print_tables(client, &args, &refs, namespace, &query, format).await
        }
        _ => print_objects(client, &refs, namespace, &query, format).await,
    }
}

fn list_query(args: &GetArgs) -> Vec<(&'static str, String)> {
    let mut query = Vec::new();
    if let Some(selector) = &args.selector {
        query.push(("labelSelector", selector.clone()));
    }
    if let Some(selector) = &args.field_selector {
        query.push(("fieldSelector", selector.clone()));
    }
    query
}

/// `deployment.apps/` when one command prints several kinds.
fn kind_prefix(resource: &ResourceType) -> String {
    let kind = resource.kind.to_lowercase();
    if resource.group.is_empty() {
        format!("{kind}/")
    } else {
        format!("{kind}.{}/", resource.group)
    }
}

/// kubectl prefixes names with their kind when more than one type was
/// asked for (`svc,deploy`, `all`, `svc/a deploy/b`).
fn several_types_requested(args: &[String], refs: &[ResourceRef]) -> bool {
    let first = args.first().map(String::as_str).unwrap_or_default();
    first.contains(',')
        || first == "all"
        || refs
            .windows(2)
            .any(|pair| pair[0].resource != pair[1].resource)
}

fn print_options(args: &GetArgs, format: OutputFormat, resource: &ResourceType) -> PrintOptions {
    PrintOptions {
        wide: format == OutputFormat::Wide,
        with_namespace: args.all_namespaces && resource.namespaced,
        no_headers: args.no_headers,
        kind_prefix: None,
    }
}

/// One Table per resource type: the list, or the named objects' rows put
/// together.
async fn fetch_table(
    client: &Client,
    r: &ResourceRef,
    namespace: Option<&str>,
    query: &[(&str, String)],
    errors: &mut Vec<anyhow::Error>,
) -> Option<Value> {
    if r.names.is_empty() {
        match client
            .get_table(&r.resource.collection_path(namespace), query)
            .await
        {
            Ok(table) => return Some(table),
            Err(e) => {
                errors.push(e.into());
                return None;
            }
        }
    }
    let mut merged: Option<Value> = None;
    for name in &r.names {
        match client
            .get_object(r.resource, namespace, name, TABLE_ACCEPT)
            .await
        {
            Ok(table) => match &mut merged {
                None => merged = Some(table),
                Some(m) => {
                    let rows = table["rows"].as_array().cloned().unwrap_or_default();
                    if let Some(existing) = m["rows"].as_array_mut() {
                        existing.extend(rows);
                    }
                }
            },
            Err(e) => errors.push(e.into()),
        }
    }
    merged
}

/// `--show-labels`: a LABELS column made from each row's object metadata.
fn add_labels_column(table: &mut Value) {
    if let Some(columns) = table["columnDefinitions"].as_array_mut() {
        columns.push(json!({"name": "Labels", "type": "string", "format": "", "priority": 0}));
    }
    if let Some(rows) = table["rows"].as_array_mut() {
        for row in rows {
            let labels = api::table::format_labels(row.pointer("/object/metadata/labels"));
            if let Some(cells) = row["cells"].as_array_mut() {
                cells.push(json!(labels));
            }
        }
    }
}

async fn print_tables(
    client: &Client,
    args: &GetArgs,
    refs: &[ResourceRef],
    namespace: Option<&str>,
    query: &[(&str, String)],
    format: OutputFormat,
) -> anyhow::Result<()> {
    let mut errors = Vec::new();
    let mut tables = Vec::new();
    for r in refs {
        if let Some(mut table) = fetch_table(client, r, namespace, query, &mut errors).await {
            if args.show_labels {
                add_labels_column(&mut table);
            }
            tables.push((r.resource, table));
        }
    }
    let kinds_with_rows: Vec<&ResourceType> = tables
        .iter()
        .filter(|(_, t)| t["rows"].as_array().is_some_and(|r| !r.is_empty()))
        .map(|(r, _)| *r)
        .collect();
    let with_kind = several_types_requested(&args.args, refs)
        || kinds_with_rows.windows(2).any(|p| p[0] != p[1]);
    let mut out = String::new();
    for (resource, table) in &tables {
        let mut options = print_options(args, format, resource);
        if with_kind {
            options.kind_prefix = Some(kind_prefix(resource));
        }
        let text = print_table(table, &options);
        if text.is_empty() {
            continue;
        }
        // An empty line between the tables of different kinds.
        if !out.is_empty() && !args.no_headers {
            out.push('\n');
        }
        out.push_str(&text);
    }
    print!("{out}");
    if out.is_empty() && errors.is_empty() {
        let all_namespaced = refs.iter().all(|r| r.resource.namespaced);
        eprintln!(
            "{}",
            no_resources_message(namespace.filter(|_| all_namespaced))
        );
    }
    ErrorList(errors).into_result()
}

/// Items of a list answer, with the `apiVersion` and `kind` servers leave
/// out of list items filled in, as kubectl does.
fn typed_items(list: &Value, resource: &ResourceType) -> Vec<Value> {
    list["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut item| {
            if item.get("apiVersion").is_none() {
                item["apiVersion"] = json!(resource.api_version());
            }
            if item.get("kind").is_none() {
                item["kind"] = json!(resource.kind);
            }
            item
        })
        .collect()
}

async fn print_objects(
    client: &Client,
    refs: &[ResourceRef],
    namespace: Option<&str>,
    query: &[(&str, String)],
    format: OutputFormat,
) -> anyhow::Result<()> {
    let mut errors = Vec::new();
    let mut objects = Vec::new();
    for r in refs {
        if r.names.is_empty() {
            match client
                .get(&r.resource.collection_path(namespace), query)
                .await
            {
                Ok(list) => objects.extend(typed_items(&list, r.resource)),
                Err(e) => errors.push(e.into()),
            }
        }
        for name in &r.names {
            match client
                .get_object(r.resource, namespace, name, crate::client::JSON)
                .await
            {
                Ok(object) => objects.push(object),
                Err(e) => errors.push(e.into()),
            }
        }
    }
    // `get svc x -o yaml` prints the object; anything else prints a List.
    let single = refs.len() == 1 && refs[0].names.len() == 1;
    if single && objects.is_empty() {
        return ErrorList(errors).into_result();
    }
    if format == OutputFormat::Name && objects.is_empty() && errors.is_empty() {
        let all_namespaced = refs.iter().all(|r| r.resource.namespaced);
        eprintln!(
            "{}",
            no_resources_message(namespace.filter(|_| all_namespaced))
        );
        return Ok(());
    }
    print!("{}", output::render_objects(format, objects, single));
    ErrorList(errors).into_result()
}

/// `get -w`: print the current list, then every change.
async fn watch(
    client: &Client,
    args: &GetArgs,
    refs: &[ResourceRef],
    namespace: Option<&str>,
    query: &[(&str, String)],
    format: OutputFormat,
) -> anyhow::Result<()> {
    let [r] = refs else {
        anyhow::bail!("you may only specify a single resource type");
    };
    let mut query = query.to_vec();
    match r.names.as_slice() {
        [] => {}
        [name] => query.push(("fieldSelector", format!("metadata.name={name}"))),
        _ => anyhow::bail!("watch is only supported on individual resources and resource collections, but 2 resources were found"),
    }
    let collection = r.resource.collection_path(namespace);
    let tables = matches!(format, OutputFormat::Table | OutputFormat::Wide);
    let mut printer = TablePrinter::new(print_options(args, format, r.resource));
    let mut printed_objects = 0;

    let list = if tables {
        client.get_table(&collection, &query).await?
    } else {
        client.get(&collection, &query).await?
    };
    if tables {
        let mut table = list.clone();
        if args.show_labels {
            add_labels_column(&mut table);
        }
        print!("{}", printer.print(&table));
    } else {
        for object in typed_items(&list, r.resource) {
            print!("{}", watch_object(format, &object, &mut printed_objects));
        }
    }
    let resource_version = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    query.push(("resourceVersion", resource_version));
    let accept = if tables {
        TABLE_ACCEPT
    } else {
        crate::client::JSON
    };
    let mut stream = client.watch(&collection, &query, accept).await?;
    while let Some(event) = stream.next().await {
        let event = event?;
        match event.event_type.as_str() {
            "BOOKMARK" => continue,
            "ERROR" => {
                let status: crate::client::Status =
                    serde_json::from_value(event.object).unwrap_or_default();
                return Err(crate::client::ApiError::Status(status).into());
            }
            _ => {}
        }
        if tables {
            let mut table = event.object;
            if args.show_labels {
                add_labels_column(&mut table);
            }
            print!("{}", printer.print(&table));
        } else {
            let mut object = event.object;
            if object.get("kind").is_none() {
                object["kind"] = json!(r.resource.kind);
                object["apiVersion"] = json!(r.resource.api_version());
            }
            print!("{}", watch_object(format, &object, &mut printed_objects));
        }
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
    }
    Ok(())
}

/// One object of a `-w -o yaml|json|name` stream; YAML documents are
/// separated by `---` like kubectl's printer does.
fn watch_object(format: OutputFormat, object: &Value, printed: &mut usize) -> String {
    let text = output::render_objects(format, vec![object.clone()], true);
    let separator = if format == OutputFormat::Yaml && *printed > 0 {
        "---\n"
    } else {
        ""
    };
    *printed += 1;
    format!("{separator}{text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(args: &[&str]) -> (Vec<String>, Vec<ResourceRef>) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let refs = resource_args::parse(&args).unwrap();
        (args, refs)
    }

    #[test]
    fn kind_prefix_is_used_for_several_types() {
        let (a, r) = refs(&["svc,deploy"]);
        assert!(several_types_requested(&a, &r));
        let (a, r) = refs(&["all"]);
        assert!(several_types_requested(&a, &r));
        let (a, r) = refs(&["svc/a", "deploy/b"]);
        assert!(several_types_requested(&a, &r));
        let (a, r) = refs(&["svc", "a", "b"]);
        assert!(!several_types_requested(&a, &r));
        assert_eq!(kind_prefix(r[0].resource), "service/");
        assert_eq!(
            kind_prefix(api::resources::lookup("deploy").unwrap()),
            "deployment.apps/"
        );
    }

    #[test]
    fn show_labels_adds_a_column() {
        let mut table = json!({
            "columnDefinitions": [{"name": "Name", "type": "string", "format": "name", "priority": 0}],
            "rows": [
                {"cells": ["a"], "object": {"metadata": {"labels": {"app": "x", "tier": "web"}}}},
                {"cells": ["b"], "object": {"metadata": {}}}
            ]
        });
        add_labels_column(&mut table);
        assert_eq!(
            print_table(&table, &PrintOptions::default()),
            "NAME   LABELS\na      app=x,tier=web\nb      <none>\n"
        );
    }

    #[test]
    fn list_items_get_their_kind() {
        let list = json!({"items": [{"metadata": {"name": "a"}}]});
        let items = typed_items(&list, api::resources::lookup("deploy").unwrap());
        assert_eq!(items[0]["kind"], "Deployment");
        assert_eq!(items[0]["apiVersion"], "apps/v1");
    }

    #[test]
    fn watched_yaml_documents_are_separated() {
        let object = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"}});
        let mut printed = 0;
        let first = watch_object(OutputFormat::Yaml, &object, &mut printed);
        let second = watch_object(OutputFormat::Yaml, &object, &mut printed);
        assert!(first.starts_with("apiVersion"));
        assert!(second.starts_with("---\napiVersion"));
    }
}
