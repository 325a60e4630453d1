//! `kubectl describe`: one object, explained for a human.
//!
//! Where `get` prints one line per object, `describe` prints a page about
//! one object and what surrounds it: for a Service the Pod addresses behind
//! it (its *endpoints*, read from the EndpointSlices labelled
//! `kubernetes.io/service-name=<svc>`), for a Deployment its ReplicaSets, for
//! a Node the Pods it runs, and for everything the recent *events* that
//! mention it. This is usually the first command to run when something does
//! not work, so the pages mirror real kubectl's layout line for line
//! (labels `Name:`, `Selector:`, `Endpoints:`, the same indentation and the
//! same column alignment, see [`crate::tabwriter`]).
//!
//! Objects are read as JSON (`serde_json::Value`) rather than typed
//! structs: a describe page should show what is there even when a field
//! kubectl-lite does not know about is missing or new.
//!
//! This file fetches what a page needs and holds the page writer
//! ([`Page`]); each kind's page is a file of its own (`service.rs`,
//! `deployment.rs`, `pod.rs`, `node.rs`...), the Pod template they share
//! in `podtemplate.rs`, and any other kind in `generic.rs`.

use std::collections::BTreeMap;

use anyhow::Context as _;
use chrono::{DateTime, Local, Utc};
use clap::Args;
use serde_json::{json, Value};

use api::resources::ResourceType;

use crate::client::{ApiError, Client, ErrorList};
use crate::resource_args;
use crate::tabwriter::TabWriter;

mod configmap;
mod daemonset;
mod deployment;
mod endpoints;
mod generic;
mod job;
mod namespace;
mod node;
mod pod;
mod podtemplate;
mod replicaset;
mod service;
mod statefulset;
#[cfg(test)]
mod tests;

pub use configmap::*;
pub use daemonset::*;
pub use deployment::*;
pub use endpoints::*;
pub use generic::*;
pub use job::*;
pub use namespace::*;
pub use node::*;
pub use pod::*;
use podtemplate::*;
pub use replicaset::*;
pub use service::*;
pub use statefulset::*;

/// Annotations longer than this are printed on their own lines, cut at
/// this length.
const MAX_ANNOTATION_LEN: usize = 140;

/// The annotation `kubectl apply` keeps; describe hides it.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Node labels that give a node its ROLES.
const NODE_ROLE_PREFIX: &str = "node-role.kubernetes.io/";
const NODE_ROLE_LABEL: &str = "kubernetes.io/role";

#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// TYPE [NAME_PREFIX...] or TYPE/NAME
    #[arg(required = true)]
    pub args: Vec<String>,
    /// Selector (label query) to filter on
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Describe objects in every namespace
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

pub async fn run(client: &Client, args: DescribeArgs) -> anyhow::Result<()> {
    let refs = resource_args::parse(&args.args)?;
    let namespace = (!args.all_namespaces).then_some(client.namespace.as_str());
    let mut errors = Vec::new();
    let mut pages = Vec::new();
    for r in &refs {
        let objects = if r.names.is_empty() {
            list(client, r.resource, namespace, args.selector.as_deref()).await?
        } else {
            let mut found = Vec::new();
            for name in &r.names {
                match client
                    .get_object(r.resource, namespace, name, crate::client::JSON)
                    .await
                {
                    Ok(object) => found.push(object),
                    // `describe svc ngx` describes every Service whose name
                    // starts with "ngx" when none is called exactly that.
                    Err(e) if e.is_not_found() && args.args.len() == 2 => {
                        return describe_matching(client, r.resource, namespace, name, e).await;
                    }
                    Err(e) => errors.push(e.into()),
                }
            }
            found
        };
        for object in objects {
            match describe_object(client, r.resource, &object).await {
                Ok(page) => pages.push(page),
                Err(e) => errors.push(e),
            }
        }
    }
    print!("{}", pages.join("\n\n"));
    if pages.is_empty() && errors.is_empty() {
        if args.all_namespaces {
            eprintln!("No resources found");
        } else {
            eprintln!("No resources found in {} namespace.", client.namespace);
        }
    }
    ErrorList(errors).into_result()
}

/// kubectl's `DescribeMatchingResources`: every object whose name starts
/// with `prefix`, or the original NotFound when there is none.
async fn describe_matching(
    client: &Client,
    resource: &ResourceType,
    namespace: Option<&str>,
    prefix: &str,
    not_found: ApiError,
) -> anyhow::Result<()> {
    let matching: Vec<Value> = list(client, resource, namespace, None)
        .await?
        .into_iter()
        .filter(|o| str_at(o, "/metadata/name").starts_with(prefix))
        .collect();
    if matching.is_empty() {
        return Err(not_found.into());
    }
    for object in matching {
        println!("{}", describe_object(client, resource, &object).await?);
    }
    Ok(())
}

async fn list(
    client: &Client,
    resource: &ResourceType,
    namespace: Option<&str>,
    selector: Option<&str>,
) -> anyhow::Result<Vec<Value>> {
    let mut query = Vec::new();
    if let Some(selector) = selector {
        query.push(("labelSelector", selector.to_string()));
    }
    let list = client
        .get(&resource.collection_path(namespace), &query)
        .await?;
    Ok(items(&list).to_vec())
}

/// Fetches what a page needs besides the object, then renders it.
async fn describe_object(
    client: &Client,
    resource: &ResourceType,
    object: &Value,
) -> anyhow::Result<String> {
    let name = str_at(object, "/metadata/name");
    let namespace = str_at(object, "/metadata/namespace");
    let now = Utc::now();
    Ok(match resource.kind {
        "Service" => {
            let slices = client
                .get(
                    &format!("/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"),
                    &[(
                        "labelSelector",
                        format!("kubernetes.io/service-name={name}"),
                    )],
                )
                .await
                .map(|l| items(&l).to_vec())
                .unwrap_or_default();
            let events = events_for(client, object, Some("Service")).await;
            describe_service(object, &slices, &events, now)
        }
        "Deployment" => {
            let replica_sets = client
                .get(
                    &format!("/apis/apps/v1/namespaces/{namespace}/replicasets"),
                    &[],
                )
                .await
                .map(|l| items(&l).to_vec())
                .unwrap_or_default();
            let events = events_for(client, object, Some("Deployment")).await;
            describe_deployment(object, &replica_sets, &events, now)
        }
        "Pod" => {
            // kubectl drops the kind from a Pod's event query.
            let events = events_for(client, object, None).await;
            describe_pod(object, &events, now)
        }
        "Node" => {
            let pods = client
                .get(
                    "/api/v1/pods",
                    &[(
                        "fieldSelector",
                        format!(
                            "spec.nodeName={name},status.phase!=Succeeded,status.phase!=Failed"
                        ),
                    )],
                )
                .await
                .map(|l| items(&l).to_vec())
                .context("listing the node's pods")?;
            let lease = client
                .get(
                    &format!(
                        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}"
                    ),
                    &[],
                )
                .await
                .map_err(|e| e.to_string());
            let mut events = events_for(client, object, Some("Node")).await;
            // The kubelet reports node events with the node name as UID.
            let mut by_name = object.clone();
            by_name["metadata"]["uid"] = json!(name);
            events.extend(events_for(client, &by_name, Some("Node")).await);
            describe_node(
                object,
                &pods,
                lease.as_ref().map_err(String::as_str),
                &events,
                now,
            )
        }
        kind @ ("StatefulSet" | "DaemonSet") => {
            let selector = label_selector(at(object, "/spec/selector"));
            let pods = client
                .get(
                    &format!("/api/v1/namespaces/{namespace}/pods"),
                    &[("labelSelector", selector)],
                )
                .await
                .map(|l| items(&l).to_vec())
                .map_err(|e| e.to_string());
            let events = events_for(client, object, Some(kind)).await;
            let pods = pods.as_deref().map_err(String::as_str);
            if kind == "StatefulSet" {
                describe_stateful_set(object, pods, &events, now)
            } else {
                describe_daemon_set(object, pods, &events, now)
            }
        }
        "ReplicaSet" => {
            let selector = label_selector(at(object, "/spec/selector"));
            let pods = client
                .get(
                    &format!("/api/v1/namespaces/{namespace}/pods"),
                    &[("labelSelector", selector)],
                )
                .await
                .map(|l| items(&l).to_vec())
                .map_err(|e| e.to_string());
            let events = events_for(client, object, Some("ReplicaSet")).await;
            describe_replica_set(
                object,
                pods.as_deref().map_err(String::as_str),
                &events,
                now,
            )
        }
        "Job" => {
            let events = events_for(client, object, Some("Job")).await;
            describe_job(object, &events, now)
        }
        "CronJob" => {
            let events = events_for(client, object, Some("CronJob")).await;
            describe_cron_job(object, &events, now)
        }
        "Endpoints" => {
            let events = events_for(client, object, Some("Endpoints")).await;
            describe_endpoints(object, &events, now)
        }
        "ConfigMap" => {
            let events = events_for(client, object, Some("ConfigMap")).await;
            describe_configmap(object, &events, now)
        }
        "Namespace" => describe_namespace(object),
        kind => {
            let events = events_for(client, object, Some(kind)).await;
            describe_generic(object, &events, now)
        }
    })
}

/// The events that mention an object, found by the field selector
/// `involvedObject.kind=...,involvedObject.name=...,...`. A server without
/// events (404) or any other failure just means no events, as in kubectl.
async fn events_for(client: &Client, object: &Value, kind: Option<&str>) -> Vec<Value> {
    let namespace = str_at(object, "/metadata/namespace");
    let mut fields = BTreeMap::new();
    if let Some(kind) = kind {
        fields.insert("involvedObject.kind", kind.to_string());
    }
    fields.insert(
        "involvedObject.name",
        str_at(object, "/metadata/name").to_string(),
    );
    fields.insert("involvedObject.namespace", namespace.to_string());
    fields.insert(
        "involvedObject.uid",
        str_at(object, "/metadata/uid").to_string(),
    );
    let selector: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let path = if namespace.is_empty() {
        "/api/v1/events".to_string()
    } else {
        format!("/api/v1/namespaces/{namespace}/events")
    };
    match client
        .get(&path, &[("fieldSelector", selector.join(","))])
        .await
    {
        Ok(list) => items(&list).to_vec(),
        // No events (or no events API) is not worth failing the page for.
        Err(_) => Vec::new(),
    }
}

// ---------------------------------------------------------------------
// Reading JSON without ceremony: a missing field reads as Go's zero value,
// which is what kubectl prints for it.

fn at<'a>(v: &'a Value, pointer: &str) -> &'a Value {
    v.pointer(pointer).unwrap_or(&Value::Null)
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    at(v, pointer).as_str().unwrap_or_default()
}

fn int_at(v: &Value, pointer: &str) -> i64 {
    at(v, pointer).as_i64().unwrap_or_default()
}

fn bool_at(v: &Value, pointer: &str) -> bool {
    at(v, pointer).as_bool().unwrap_or_default()
}

fn list_at<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    at(v, pointer)
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn items(list: &Value) -> &[Value] {
    list_at(list, "/items")
}

fn string_map(v: &Value, pointer: &str) -> BTreeMap<String, String> {
    at(v, pointer)
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A number or a name, as `targetPort` and probe ports are (IntOrString).
fn int_or_string(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => "0".to_string(),
    }
}

/// `Mon, 02 Jan 2006 15:04:05 -0700` in local time, Go's RFC1123Z.
fn rfc1123z(timestamp: &str) -> String {
    match DateTime::parse_from_rfc3339(timestamp) {
        Ok(t) => t
            .with_timezone(&Local)
            .format("%a, %d %b %Y %H:%M:%S %z")
            .to_string(),
        Err(_) => "Mon, 01 Jan 0001 00:00:00 +0000".to_string(),
    }
}

/// `5m`, `2d3h`: how long ago, or `<unknown>` without a time.
fn age_since(timestamp: &str, now: DateTime<Utc>) -> String {
    match DateTime::parse_from_rfc3339(timestamp) {
        Ok(t) => api::table::format_age(now.signed_duration_since(t.with_timezone(&Utc))),
        Err(_) => "<unknown>".to_string(),
    }
}

/// `app=ngx-dep,tier=web`, or `<none>`: Go's `labels.FormatLabels`.
fn format_labels(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "<none>".to_string();
    }
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

// ---------------------------------------------------------------------
// The page being written: kubectl's PrefixWriter, two spaces per level,
// aligned at the end.

#[derive(Default)]
struct Page {
    text: String,
}

impl Page {
    fn write(&mut self, level: usize, text: &str) {
        self.text.push_str(&"  ".repeat(level));
        self.text.push_str(text);
    }

    fn finish(self) -> String {
        TabWriter::describe().align(&self.text)
    }

    /// `Labels:  app=ngx-dep` and one line per further label.
    /// `Name:` and `Namespace:`, the first lines of every namespaced page.
    fn name_and_namespace(&mut self, object: &Value) {
        self.write(0, &format!("Name:\t{}\n", str_at(object, "/metadata/name")));
        self.write(
            0,
            &format!("Namespace:\t{}\n", str_at(object, "/metadata/namespace")),
        );
    }

    /// Name, Namespace, Labels and Annotations, as most pages begin.
    fn object_header(&mut self, object: &Value) {
        self.name_and_namespace(object);
        self.labels("", "Labels", &string_map(object, "/metadata/labels"));
        self.annotations("Annotations", &string_map(object, "/metadata/annotations"));
    }

    fn labels(&mut self, initial_indent: &str, title: &str, labels: &BTreeMap<String, String>) {
        self.write(0, &format!("{initial_indent}{title}:\t"));
        if labels.is_empty() {
            self.write(0, "<none>\n");
            return;
        }
        for (i, (k, v)) in labels.iter().enumerate() {
            if i != 0 {
                self.write(0, &format!("{initial_indent}\t"));
            }
            self.write(0, &format!("{k}={v}\n"));
        }
    }

    /// `Annotations:` without apply's bookkeeping; long values on their own
    /// lines.
    fn annotations(&mut self, title: &str, annotations: &BTreeMap<String, String>) {
        self.write(0, &format!("{title}:\t"));
        let shown: Vec<(&String, &String)> = annotations
            .iter()
            .filter(|(k, _)| *k != LAST_APPLIED)
            .collect();
        if shown.is_empty() {
            self.write(0, "<none>\n");
            return;
        }
        for (i, (key, value)) in shown.into_iter().enumerate() {
            if i != 0 {
                self.write(0, "\t");
            }
            let value = value.strip_suffix('\n').unwrap_or(value);
            if value.len() + key.len() + 2 > MAX_ANNOTATION_LEN || value.contains('\n') {
                self.write(0, &format!("{key}:\n"));
                for line in value.split('\n') {
                    self.write(
                        0,
                        &format!("\t  {}\n", shorten(line, MAX_ANNOTATION_LEN - 2)),
                    );
                }
            } else {
                self.write(0, &format!("{key}: {value}\n"));
            }
        }
    }

    /// The `Events:` table, oldest first.
    fn events(&mut self, events: &[Value], now: DateTime<Utc>) {
        if events.is_empty() {
            self.write(0, "Events:\t<none>\n");
            return;
        }
        let mut events: Vec<&Value> = events.iter().collect();
        events.sort_by_key(|e| str_at(e, "/lastTimestamp").to_string());
        self.write(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n");
        self.write(1, "----\t------\t----\t----\t-------\n");
        for e in events {
            let first_seen = if str_at(e, "/eventTime").is_empty() {
                age_since(str_at(e, "/firstTimestamp"), now)
            } else {
                age_since(str_at(e, "/eventTime"), now)
            };
            let interval = if !at(e, "/series").is_null() {
                format!(
                    "{} (x{} over {first_seen})",
                    age_since(str_at(e, "/series/lastObservedTime"), now),
                    int_at(e, "/series/count")
                )
            } else if int_at(e, "/count") > 1 {
                format!(
                    "{} (x{} over {first_seen})",
                    age_since(str_at(e, "/lastTimestamp"), now),
                    int_at(e, "/count")
                )
            } else {
                first_seen
            };
            let mut source = str_at(e, "/source/component");
            if source.is_empty() {
                source = str_at(e, "/reportingComponent");
            }
            let mut message = str_at(e, "/message").trim().to_string();
            let field_path = str_at(e, "/involvedObject/fieldPath");
            if !field_path.is_empty() {
                message = format!("{field_path}: {message}");
            }
            self.write(
                1,
                &format!(
                    "{}\t{}\t{interval}\t{source}\t{message}\n",
                    str_at(e, "/type"),
                    str_at(e, "/reason")
                ),
            );
        }
    }
}

/// `Kind/name` of an object's controller (`Controlled By:`), if any.
fn controlled_by(object: &Value) -> Option<String> {
    list_at(object, "/metadata/ownerReferences")
        .iter()
        .find(|o| bool_at(o, "/controller"))
        .map(|o| format!("{}/{}", str_at(o, "/kind"), str_at(o, "/name")))
}

/// A workload's `Conditions:` table (Type, Status, Reason), when it has any.
fn workload_conditions(w: &mut Page, object: &Value) {
    let conditions = list_at(object, "/status/conditions");
    if conditions.is_empty() {
        return;
    }
    w.write(0, "Conditions:\n  Type\tStatus\tReason\n");
    w.write(1, "----\t------\t------\n");
    for c in conditions {
        w.write(
            1,
            &format!(
                "{} \t{}\t{}\n",
                str_at(c, "/type"),
                str_at(c, "/status"),
                str_at(c, "/reason")
            ),
        );
    }
}

/// `2 Running / 0 Waiting / 0 Succeeded / 0 Failed`: the phases of the
/// Pods `owner` controls (kubectl's `getPodStatusForController`).
fn pods_status(owner: &Value, pods: Result<&[Value], &str>) -> String {
    let pods = match pods {
        Err(e) => return format!("error in fetching pods: {e}"),
        Ok(pods) => pods,
    };
    let uid = str_at(owner, "/metadata/uid");
    let owned: Vec<&Value> = pods
        .iter()
        .filter(|p| {
            list_at(p, "/metadata/ownerReferences")
                .iter()
                .any(|o| bool_at(o, "/controller") && str_at(o, "/uid") == uid)
        })
        .collect();
    let count = |phase: &str| {
        owned
            .iter()
            .filter(|p| str_at(p, "/status/phase") == phase)
            .count()
    };
    format!(
        "{} Running / {} Waiting / {} Succeeded / {} Failed",
        count("Running"),
        count("Pending"),
        count("Succeeded"),
        count("Failed")
    )
}

fn shorten(s: &str, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s.to_string()
    }
}
