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

use std::collections::BTreeMap;

use anyhow::Context as _;
use chrono::{DateTime, Local, Utc};
use clap::Args;
use serde_json::{json, Value};

use api::resources::ResourceType;

use crate::client::{ApiError, Client, ErrorList};
use crate::resource_args;
use crate::tabwriter::TabWriter;

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

// ---------------------------------------------------------------------
// Services

/// `10.244.1.5:80,10.244.2.3:80`: the ready endpoints of the slices for
/// one Service port (matched by port name), at most three then `+ N more...`.
pub fn format_endpoint_slices(slices: &[Value], port_name: &str) -> String {
    if slices.is_empty() {
        return "<none>".to_string();
    }
    const MAX: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0;
    let ready = |endpoint: &Value| at(endpoint, "/conditions/ready").as_bool().unwrap_or(true);
    for slice in slices {
        let ports = list_at(slice, "/ports");
        if ports.is_empty() {
            // Headless Services may have no ports: addresses alone.
            for endpoint in list_at(slice, "/endpoints") {
                if list.len() == MAX {
                    more = true;
                }
                if !ready(endpoint) {
                    continue;
                }
                if !more {
                    list.push(str_at(endpoint, "/addresses/0").to_string());
                }
                count += 1;
            }
            continue;
        }
        for port in ports {
            if str_at(port, "/name") != port_name {
                continue;
            }
            for endpoint in list_at(slice, "/endpoints") {
                if list.len() == MAX {
                    more = true;
                }
                if !ready(endpoint) {
                    continue;
                }
                if !more {
                    let address = str_at(endpoint, "/addresses/0");
                    let port = int_at(port, "/port");
                    list.push(if address.contains(':') {
                        format!("[{address}]:{port}")
                    } else {
                        format!("{address}:{port}")
                    });
                }
                count += 1;
            }
        }
    }
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", count - MAX)
    } else {
        joined
    }
}

pub fn describe_service(
    svc: &Value,
    slices: &[Value],
    events: &[Value],
    now: DateTime<Utc>,
) -> String {
    let mut w = Page::default();
    w.object_header(svc);
    w.write(
        0,
        &format!(
            "Selector:\t{}\n",
            format_labels(&string_map(svc, "/spec/selector"))
        ),
    );
    w.write(0, &format!("Type:\t{}\n", str_at(svc, "/spec/type")));
    if let Some(policy) = at(svc, "/spec/ipFamilyPolicy").as_str() {
        w.write(0, &format!("IP Family Policy:\t{policy}\n"));
    }
    let families: Vec<&str> = list_at(svc, "/spec/ipFamilies")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    w.write(
        0,
        &format!("IP Families:\t{}\n", none_if_empty(&families.join(","))),
    );
    w.write(0, &format!("IP:\t{}\n", str_at(svc, "/spec/clusterIP")));
    let ips: Vec<&str> = list_at(svc, "/spec/clusterIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    w.write(0, &format!("IPs:\t{}\n", none_if_empty(&ips.join(","))));
    let external: Vec<&str> = list_at(svc, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    if !external.is_empty() {
        w.write(0, &format!("External IPs:\t{}\n", external.join(",")));
    }
    let lb_ip = str_at(svc, "/spec/loadBalancerIP");
    if !lb_ip.is_empty() {
        w.write(0, &format!("Desired LoadBalancer IP:\t{lb_ip}\n"));
    }
    let external_name = str_at(svc, "/spec/externalName");
    if !external_name.is_empty() {
        w.write(0, &format!("External Name:\t{external_name}\n"));
    }
    let ingress: Vec<String> = list_at(svc, "/status/loadBalancer/ingress")
        .iter()
        .map(|i| {
            let ip = str_at(i, "/ip");
            if ip.is_empty() {
                str_at(i, "/hostname").to_string()
            } else if let Some(mode) = at(i, "/ipMode").as_str() {
                format!("{ip} ({mode})")
            } else {
                ip.to_string()
            }
        })
        .collect();
    if !ingress.is_empty() {
        w.write(
            0,
            &format!("LoadBalancer Ingress:\t{}\n", ingress.join(", ")),
        );
    }
    for port in list_at(svc, "/spec/ports") {
        let port_name = str_at(port, "/name");
        let shown_name = if port_name.is_empty() {
            "<unset>"
        } else {
            port_name
        };
        let protocol = str_at(port, "/protocol");
        w.write(
            0,
            &format!(
                "Port:\t{shown_name}\t{}/{protocol}\n",
                int_at(port, "/port")
            ),
        );
        w.write(
            0,
            &format!(
                "TargetPort:\t{}/{protocol}\n",
                int_or_string(at(port, "/targetPort"))
            ),
        );
        let node_port = int_at(port, "/nodePort");
        if node_port != 0 {
            w.write(
                0,
                &format!("NodePort:\t{shown_name}\t{node_port}/{protocol}\n"),
            );
        }
        w.write(
            0,
            &format!(
                "Endpoints:\t{}\n",
                format_endpoint_slices(slices, port_name)
            ),
        );
    }
    w.write(
        0,
        &format!(
            "Session Affinity:\t{}\n",
            str_at(svc, "/spec/sessionAffinity")
        ),
    );
    let etp = str_at(svc, "/spec/externalTrafficPolicy");
    if !etp.is_empty() {
        w.write(0, &format!("External Traffic Policy:\t{etp}\n"));
    }
    if let Some(itp) = at(svc, "/spec/internalTrafficPolicy").as_str() {
        w.write(0, &format!("Internal Traffic Policy:\t{itp}\n"));
    }
    let health = int_at(svc, "/spec/healthCheckNodePort");
    if health != 0 {
        w.write(0, &format!("HealthCheck NodePort:\t{health}\n"));
    }
    let ranges: Vec<&str> = list_at(svc, "/spec/loadBalancerSourceRanges")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    if !ranges.is_empty() {
        w.write(
            0,
            &format!("LoadBalancer Source Ranges:\t{}\n", ranges.join(",")),
        );
    }
    if let Some(td) = at(svc, "/spec/trafficDistribution").as_str() {
        w.write(0, &format!("Traffic Distribution:\t{td}\n"));
    }
    w.events(events, now);
    w.finish()
}

fn none_if_empty(s: &str) -> &str {
    if s.is_empty() {
        "<none>"
    } else {
        s
    }
}

// ---------------------------------------------------------------------
// Deployments and the Pod template

/// The ReplicaSets a Deployment controls, split into the one running its
/// current template (new) and the rest (old), like kubectl's
/// `deploymentutil.GetAllReplicaSets`.
fn split_replica_sets<'a>(
    deploy: &Value,
    replica_sets: &'a [Value],
) -> (Vec<&'a Value>, Vec<&'a Value>) {
    let uid = str_at(deploy, "/metadata/uid");
    let mut owned: Vec<&Value> = replica_sets
        .iter()
        .filter(|rs| {
            list_at(rs, "/metadata/ownerReferences")
                .iter()
                .any(|o| bool_at(o, "/controller") && str_at(o, "/uid") == uid)
        })
        .collect();
    owned.sort_by_key(|rs| str_at(rs, "/metadata/creationTimestamp").to_string());
    let without_hash = |template: &Value| {
        let mut t = template.clone();
        if let Some(labels) = t
            .pointer_mut("/metadata/labels")
            .and_then(Value::as_object_mut)
        {
            labels.remove("pod-template-hash");
        }
        t
    };
    let wanted = without_hash(at(deploy, "/spec/template"));
    let new_index = owned
        .iter()
        .position(|rs| without_hash(at(rs, "/spec/template")) == wanted);
    let new: Vec<&Value> = new_index.map(|i| vec![owned[i]]).unwrap_or_default();
    let old: Vec<&Value> = owned
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != new_index)
        .map(|(_, rs)| *rs)
        .collect();
    (old, new)
}

fn replica_sets_line(sets: &[&Value]) -> String {
    let parts: Vec<String> = sets
        .iter()
        .map(|rs| {
            format!(
                "{} ({}/{} replicas created)",
                str_at(rs, "/metadata/name"),
                int_at(rs, "/status/replicas"),
                int_at(rs, "/spec/replicas")
            )
        })
        .collect();
    if parts.is_empty() {
        "<none>".to_string()
    } else {
        parts.join(", ")
    }
}

pub fn describe_deployment(
    deploy: &Value,
    replica_sets: &[Value],
    events: &[Value],
    now: DateTime<Utc>,
) -> String {
    let mut w = Page::default();
    w.name_and_namespace(deploy);
    w.write(
        0,
        &format!(
            "CreationTimestamp:\t{}\n",
            rfc1123z(str_at(deploy, "/metadata/creationTimestamp"))
        ),
    );
    w.labels("", "Labels", &string_map(deploy, "/metadata/labels"));
    w.annotations("Annotations", &string_map(deploy, "/metadata/annotations"));
    w.write(
        0,
        &format!(
            "Selector:\t{}\n",
            label_selector(at(deploy, "/spec/selector"))
        ),
    );
    w.write(
        0,
        &format!(
            "Replicas:\t{} desired | {} updated | {} total | {} available | {} unavailable\n",
            int_at(deploy, "/spec/replicas"),
            int_at(deploy, "/status/updatedReplicas"),
            int_at(deploy, "/status/replicas"),
            int_at(deploy, "/status/availableReplicas"),
            int_at(deploy, "/status/unavailableReplicas")
        ),
    );
    w.write(
        0,
        &format!("StrategyType:\t{}\n", str_at(deploy, "/spec/strategy/type")),
    );
    w.write(
        0,
        &format!(
            "MinReadySeconds:\t{}\n",
            int_at(deploy, "/spec/minReadySeconds")
        ),
    );
    let rolling = at(deploy, "/spec/strategy/rollingUpdate");
    if !rolling.is_null() {
        w.write(
            0,
            &format!(
                "RollingUpdateStrategy:\t{} max unavailable, {} max surge\n",
                int_or_string(at(rolling, "/maxUnavailable")),
                int_or_string(at(rolling, "/maxSurge"))
            ),
        );
    }
    pod_template(&mut w, at(deploy, "/spec/template"));
    let conditions = list_at(deploy, "/status/conditions");
    if !conditions.is_empty() {
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
    let (old, new) = split_replica_sets(deploy, replica_sets);
    if !old.is_empty() || !new.is_empty() {
        w.write(
            0,
            &format!("OldReplicaSets:\t{}\n", replica_sets_line(&old)),
        );
        w.write(0, &format!("NewReplicaSet:\t{}\n", replica_sets_line(&new)));
    }
    w.events(events, now);
    w.finish()
}

/// A `spec.selector` (`matchLabels` + `matchExpressions`) as text.
fn label_selector(selector: &Value) -> String {
    serde_json::from_value(selector.clone())
        .ok()
        .and_then(|s| api::selector::LabelSelector::from_k8s(&s).ok())
        .map(|s| s.to_string())
        .unwrap_or_default()
}

fn pod_template(w: &mut Page, template: &Value) {
    w.write(0, "Pod Template:\n");
    w.labels("", "  Labels", &string_map(template, "/metadata/labels"));
    let annotations = string_map(template, "/metadata/annotations");
    if !annotations.is_empty() {
        w.annotations("  Annotations", &annotations);
    }
    let account = str_at(template, "/spec/serviceAccountName");
    if !account.is_empty() {
        w.write(1, &format!("Service Account:\t{account}\n"));
    }
    let init = list_at(template, "/spec/initContainers");
    if !init.is_empty() {
        containers(w, "Init Containers", init, &[], None, "  ");
    }
    containers(
        w,
        "Containers",
        list_at(template, "/spec/containers"),
        &[],
        None,
        "  ",
    );
    volumes(w, list_at(template, "/spec/volumes"), "  ");
    let priority_class = str_at(template, "/spec/priorityClassName");
    if !priority_class.is_empty() {
        w.write(1, &format!("Priority Class Name:\t{priority_class}\n"));
    }
    w.labels(
        "",
        "  Node-Selectors",
        &string_map(template, "/spec/nodeSelector"),
    );
    tolerations(w, "  Tolerations", list_at(template, "/spec/tolerations"));
}

/// The `Containers:` section of a Pod or a Pod template. `statuses` and
/// `pod` are given for real Pods only.
fn containers(
    w: &mut Page,
    label: &str,
    containers: &[Value],
    statuses: &[Value],
    pod: Option<&Value>,
    space: &str,
) {
    let none = if containers.is_empty() { " <none>" } else { "" };
    w.write(0, &format!("{space}{label}:{none}\n"));
    let name_indent = if space.is_empty() { "" } else { " " };
    for container in containers {
        let name = str_at(container, "/name");
        let status = statuses.iter().find(|s| str_at(s, "/name") == name);
        w.write(1, &format!("{name_indent}{name}:\n"));
        if let Some(status) = status {
            w.write(
                2,
                &format!("Container ID:\t{}\n", str_at(status, "/containerID")),
            );
        }
        w.write(2, &format!("Image:\t{}\n", str_at(container, "/image")));
        if let Some(status) = status {
            w.write(2, &format!("Image ID:\t{}\n", str_at(status, "/imageID")));
        }
        let ports = list_at(container, "/ports");
        let describe_ports = |field: &str| {
            ports
                .iter()
                .map(|p| {
                    let mut s = format!("{}/{}", int_at(p, field), str_at(p, "/protocol"));
                    let port_name = str_at(p, "/name");
                    if !port_name.is_empty() {
                        s = format!("{s} ({port_name})");
                    }
                    s
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let container_ports = describe_ports("/containerPort");
        if container_ports.contains(',') {
            w.write(2, &format!("Ports:\t{container_ports}\n"));
        } else {
            w.write(2, &format!("Port:\t{}\n", none_if_empty(&container_ports)));
        }
        let host_ports = describe_ports("/hostPort");
        if host_ports.contains(',') {
            w.write(2, &format!("Host Ports:\t{host_ports}\n"));
        } else {
            w.write(2, &format!("Host Port:\t{}\n", none_if_empty(&host_ports)));
        }
        for (field, title) in [("/command", "Command"), ("/args", "Args")] {
            let parts = list_at(container, field);
            if !parts.is_empty() {
                w.write(2, &format!("{title}:\n"));
                for part in parts.iter().filter_map(Value::as_str) {
                    for line in part.split('\n') {
                        w.write(3, &format!("{line}\n"));
                    }
                }
            }
        }
        if let Some(status) = status {
            container_state(w, "State", at(status, "/state"));
            if !at(status, "/lastState/terminated").is_null() {
                container_state(w, "Last State", at(status, "/lastState"));
            }
            let ready = if bool_at(status, "/ready") {
                "True"
            } else {
                "False"
            };
            w.write(2, &format!("Ready:\t{ready}\n"));
            w.write(
                2,
                &format!("Restart Count:\t{}\n", int_at(status, "/restartCount")),
            );
        }
        for (field, title) in [
            ("/resources/limits", "Limits"),
            ("/resources/requests", "Requests"),
        ] {
            let values = string_map(container, field);
            if !values.is_empty() {
                w.write(2, &format!("{title}:\n"));
                for (resource, quantity) in values {
                    w.write(3, &format!("{resource}:\t{quantity}\n"));
                }
            }
        }
        for (field, title) in [
            ("/livenessProbe", "Liveness"),
            ("/readinessProbe", "Readiness"),
            ("/startupProbe", "Startup"),
        ] {
            let probe = at(container, field);
            if !probe.is_null() {
                w.write(2, &format!("{title}:\t{}\n", describe_probe(probe)));
            }
        }
        let env_from = list_at(container, "/envFrom");
        if !env_from.is_empty() {
            w.write(2, "Environment Variables from:\n");
            for source in env_from {
                let (from, reference) = if !at(source, "/configMapRef").is_null() {
                    ("ConfigMap", at(source, "/configMapRef"))
                } else {
                    ("Secret", at(source, "/secretRef"))
                };
                let optional = bool_at(reference, "/optional");
                let name = str_at(reference, "/name");
                let prefix = str_at(source, "/prefix");
                if prefix.is_empty() {
                    w.write(3, &format!("{name}\t{from}\tOptional: {optional}\n"));
                } else {
                    w.write(
                        3,
                        &format!("{name}\t{from} with prefix '{prefix}'\tOptional: {optional}\n"),
                    );
                }
            }
        }
        env_vars(w, container, pod);
        let mounts = list_at(container, "/volumeMounts");
        let none = if mounts.is_empty() { "\t<none>" } else { "" };
        w.write(2, &format!("Mounts:{none}\n"));
        let mut mounts: Vec<&Value> = mounts.iter().collect();
        mounts.sort_by_key(|m| str_at(m, "/mountPath").to_string());
        for mount in mounts {
            let mut flags = vec![if bool_at(mount, "/readOnly") {
                "ro".to_string()
            } else {
                "rw".to_string()
            }];
            let sub_path = str_at(mount, "/subPath");
            if !sub_path.is_empty() {
                flags.push(format!("path={sub_path:?}"));
            }
            w.write(
                3,
                &format!(
                    "{} from {} ({})\n",
                    str_at(mount, "/mountPath"),
                    str_at(mount, "/name"),
                    flags.join(",")
                ),
            );
        }
    }
}

fn env_vars(w: &mut Page, container: &Value, pod: Option<&Value>) {
    let env = list_at(container, "/env");
    let none = if env.is_empty() { "\t<none>" } else { "" };
    w.write(2, &format!("Environment:{none}\n"));
    for e in env {
        let name = str_at(e, "/name");
        let from = at(e, "/valueFrom");
        if from.is_null() {
            for (i, line) in str_at(e, "/value").split('\n').enumerate() {
                if i == 0 {
                    w.write(3, &format!("{name}:\t{line}\n"));
                } else {
                    w.write(3, &format!("\t{line}\n"));
                }
            }
        } else if !at(from, "/fieldRef").is_null() {
            let path = str_at(from, "/fieldRef/fieldPath");
            let value = pod.map(|p| pod_field(p, path)).unwrap_or_default();
            w.write(
                3,
                &format!(
                    "{name}:\t{value} ({}:{path})\n",
                    str_at(from, "/fieldRef/apiVersion")
                ),
            );
        } else if !at(from, "/resourceFieldRef").is_null() {
            w.write(
                3,
                &format!(
                    "{name}:\t ({})\n",
                    str_at(from, "/resourceFieldRef/resource")
                ),
            );
        } else if !at(from, "/secretKeyRef").is_null() {
            let r = at(from, "/secretKeyRef");
            w.write(
                3,
                &format!(
                    "{name}:\t<set to the key '{}' in secret '{}'>\tOptional: {}\n",
                    str_at(r, "/key"),
                    str_at(r, "/name"),
                    bool_at(r, "/optional")
                ),
            );
        } else if !at(from, "/configMapKeyRef").is_null() {
            let r = at(from, "/configMapKeyRef");
            w.write(
                3,
                &format!(
                    "{name}:\t<set to the key '{}' of config map '{}'>\tOptional: {}\n",
                    str_at(r, "/key"),
                    str_at(r, "/name"),
                    bool_at(r, "/optional")
                ),
            );
        }
    }
}

/// The downward-API fields an env var can read (`fieldRef.fieldPath`).
fn pod_field(pod: &Value, path: &str) -> String {
    let pointer = match path {
        "metadata.name" => "/metadata/name",
        "metadata.namespace" => "/metadata/namespace",
        "metadata.uid" => "/metadata/uid",
        "spec.nodeName" => "/spec/nodeName",
        "spec.serviceAccountName" => "/spec/serviceAccountName",
        "status.hostIP" => "/status/hostIP",
        "status.podIP" => "/status/podIP",
        _ => return String::new(),
    };
    str_at(pod, pointer).to_string()
}

fn describe_probe(probe: &Value) -> String {
    let attrs = format!(
        "delay={}s timeout={}s period={}s #success={} #failure={}",
        int_at(probe, "/initialDelaySeconds"),
        int_at(probe, "/timeoutSeconds"),
        int_at(probe, "/periodSeconds"),
        int_at(probe, "/successThreshold"),
        int_at(probe, "/failureThreshold")
    );
    if !at(probe, "/exec").is_null() {
        let command: Vec<&str> = list_at(probe, "/exec/command")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        return format!("exec [{}] {attrs}", command.join(" "));
    }
    if !at(probe, "/httpGet").is_null() {
        let get = at(probe, "/httpGet");
        let scheme = str_at(get, "/scheme").to_lowercase();
        let host = str_at(get, "/host");
        let port = int_or_string(at(get, "/port"));
        return format!(
            "http-get {scheme}://{host}:{port}{} {attrs}",
            str_at(get, "/path")
        );
    }
    if !at(probe, "/tcpSocket").is_null() {
        return format!(
            "tcp-socket {}:{} {attrs}",
            str_at(probe, "/tcpSocket/host"),
            int_or_string(at(probe, "/tcpSocket/port"))
        );
    }
    format!("unknown {attrs}")
}

fn container_state(w: &mut Page, title: &str, state: &Value) {
    if !at(state, "/running").is_null() {
        w.write(2, &format!("{title}:\tRunning\n"));
        w.write(
            3,
            &format!(
                "Started:\t{}\n",
                rfc1123z(str_at(state, "/running/startedAt"))
            ),
        );
    } else if !at(state, "/terminated").is_null() {
        let t = at(state, "/terminated");
        w.write(2, &format!("{title}:\tTerminated\n"));
        let reason = str_at(t, "/reason");
        if !reason.is_empty() {
            w.write(3, &format!("Reason:\t{reason}\n"));
        }
        let message = str_at(t, "/message");
        if !message.is_empty() {
            w.write(3, &format!("Message:\t{message}\n"));
        }
        w.write(3, &format!("Exit Code:\t{}\n", int_at(t, "/exitCode")));
        let signal = int_at(t, "/signal");
        if signal > 0 {
            w.write(3, &format!("Signal:\t{signal}\n"));
        }
        w.write(
            3,
            &format!("Started:\t{}\n", rfc1123z(str_at(t, "/startedAt"))),
        );
        w.write(
            3,
            &format!("Finished:\t{}\n", rfc1123z(str_at(t, "/finishedAt"))),
        );
    } else {
        w.write(2, &format!("{title}:\tWaiting\n"));
        let reason = str_at(state, "/waiting/reason");
        if !reason.is_empty() {
            w.write(3, &format!("Reason:\t{reason}\n"));
        }
    }
}

fn volumes(w: &mut Page, volumes: &[Value], space: &str) {
    if volumes.is_empty() {
        w.write(0, &format!("{space}Volumes:\t<none>\n"));
        return;
    }
    w.write(0, &format!("{space}Volumes:\n"));
    let name_indent = if space.is_empty() { "" } else { " " };
    for volume in volumes {
        w.write(1, &format!("{name_indent}{}:\n", str_at(volume, "/name")));
        if let Some(cm) = volume.get("configMap") {
            w.write(
                2,
                &format!(
                    "Type:\tConfigMap (a volume populated by a ConfigMap)\n    Name:\t{}\n    Optional:\t{}\n",
                    str_at(cm, "/name"),
                    bool_at(cm, "/optional")
                ),
            );
        } else if let Some(secret) = volume.get("secret") {
            w.write(
                2,
                &format!(
                    "Type:\tSecret (a volume populated by a Secret)\n    SecretName:\t{}\n    Optional:\t{}\n",
                    str_at(secret, "/secretName"),
                    bool_at(secret, "/optional")
                ),
            );
        } else if let Some(dir) = volume.get("emptyDir") {
            let limit = at(dir, "/sizeLimit")
                .as_str()
                .filter(|l| !l.is_empty() && *l != "0");
            w.write(
                2,
                &format!(
                    "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n    Medium:\t{}\n    SizeLimit:\t{}\n",
                    str_at(dir, "/medium"),
                    limit.unwrap_or("<unset>")
                ),
            );
        } else if let Some(host) = volume.get("hostPath") {
            let kind = at(host, "/type").as_str().unwrap_or("<none>");
            w.write(
                2,
                &format!(
                    "Type:\tHostPath (bare host directory volume)\n    Path:\t{}\n    HostPathType:\t{kind}\n",
                    str_at(host, "/path")
                ),
            );
        } else if let Some(claim) = volume.get("persistentVolumeClaim") {
            w.write(
                2,
                &format!(
                    "Type:\tPersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same namespace)\n    ClaimName:\t{}\n    ReadOnly:\t{}\n",
                    str_at(claim, "/claimName"),
                    bool_at(claim, "/readOnly")
                ),
            );
        } else {
            w.write(1, "<unknown>\n");
        }
    }
}

fn tolerations(w: &mut Page, title: &str, tolerations: &[Value]) {
    w.write(0, &format!("{title}:\t"));
    if tolerations.is_empty() {
        w.write(0, "<none>\n");
        return;
    }
    let mut sorted: Vec<&Value> = tolerations.iter().collect();
    sorted.sort_by_key(|t| str_at(t, "/key").to_string());
    for (i, t) in sorted.into_iter().enumerate() {
        if i != 0 {
            w.write(0, "\t");
        }
        let (key, value, effect) = (str_at(t, "/key"), str_at(t, "/value"), str_at(t, "/effect"));
        let mut line = key.to_string();
        if !value.is_empty() {
            line.push_str(&format!("={value}"));
        }
        if !effect.is_empty() {
            line.push_str(&format!(":{effect}"));
        }
        if str_at(t, "/operator") == "Exists" && value.is_empty() {
            if !key.is_empty() || !effect.is_empty() {
                line.push_str(" op=Exists");
            } else {
                line.push_str("op=Exists");
            }
        }
        if let Some(seconds) = at(t, "/tolerationSeconds").as_i64() {
            line.push_str(&format!(" for {seconds}s"));
        }
        w.write(0, &format!("{line}\n"));
    }
}

// ---------------------------------------------------------------------
// Pods

/// BestEffort, Burstable or Guaranteed: how the kubelet ranks a Pod when
/// the node runs short, from its containers' requests and limits.
fn qos_class(pod: &Value) -> String {
    let recorded = str_at(pod, "/status/qosClass");
    if !recorded.is_empty() {
        return recorded.to_string();
    }
    let containers = list_at(pod, "/spec/containers");
    let mut any = false;
    let mut guaranteed = true;
    for c in containers
        .iter()
        .chain(list_at(pod, "/spec/initContainers"))
    {
        let requests = string_map(c, "/resources/requests");
        let limits = string_map(c, "/resources/limits");
        if !requests.is_empty() || !limits.is_empty() {
            any = true;
        }
        for resource in ["cpu", "memory"] {
            let limit = limits.get(resource);
            let request = requests.get(resource).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
    .to_string()
}

pub fn describe_pod(pod: &Value, events: &[Value], now: DateTime<Utc>) -> String {
    let mut w = Page::default();
    w.name_and_namespace(pod);
    if let Some(priority) = at(pod, "/spec/priority").as_i64() {
        w.write(0, &format!("Priority:\t{priority}\n"));
    }
    let priority_class = str_at(pod, "/spec/priorityClassName");
    if !priority_class.is_empty() {
        w.write(0, &format!("Priority Class Name:\t{priority_class}\n"));
    }
    let account = str_at(pod, "/spec/serviceAccountName");
    if !account.is_empty() {
        w.write(0, &format!("Service Account:\t{account}\n"));
    }
    let node = str_at(pod, "/spec/nodeName");
    if node.is_empty() {
        w.write(0, "Node:\t<none>\n");
    } else {
        w.write(
            0,
            &format!("Node:\t{node}/{}\n", str_at(pod, "/status/hostIP")),
        );
    }
    let start = str_at(pod, "/status/startTime");
    if !start.is_empty() {
        w.write(0, &format!("Start Time:\t{}\n", rfc1123z(start)));
    }
    w.labels("", "Labels", &string_map(pod, "/metadata/labels"));
    w.annotations("Annotations", &string_map(pod, "/metadata/annotations"));
    let phase = str_at(pod, "/status/phase");
    let deleting = str_at(pod, "/metadata/deletionTimestamp");
    if !deleting.is_empty() && phase != "Failed" && phase != "Succeeded" {
        w.write(
            0,
            &format!(
                "Status:\tTerminating (lasts {})\n",
                age_since(deleting, now)
            ),
        );
        w.write(
            0,
            &format!(
                "Termination Grace Period:\t{}s\n",
                int_at(pod, "/metadata/deletionGracePeriodSeconds")
            ),
        );
    } else {
        w.write(0, &format!("Status:\t{phase}\n"));
    }
    for (field, title) in [("/status/reason", "Reason"), ("/status/message", "Message")] {
        let text = str_at(pod, field);
        if !text.is_empty() {
            w.write(0, &format!("{title}:\t{text}\n"));
        }
    }
    w.write(0, &format!("IP:\t{}\n", str_at(pod, "/status/podIP")));
    let ips = list_at(pod, "/status/podIPs");
    if ips.is_empty() {
        w.write(0, "IPs:\t<none>\n");
    } else {
        w.write(0, "IPs:\n");
        for ip in ips {
            w.write(1, &format!("IP:\t{}\n", str_at(ip, "/ip")));
        }
    }
    if let Some(owner) = list_at(pod, "/metadata/ownerReferences")
        .iter()
        .find(|o| bool_at(o, "/controller"))
    {
        w.write(
            0,
            &format!(
                "Controlled By:\t{}/{}\n",
                str_at(owner, "/kind"),
                str_at(owner, "/name")
            ),
        );
    }
    let nominated = str_at(pod, "/status/nominatedNodeName");
    if !nominated.is_empty() {
        w.write(0, &format!("NominatedNodeName:\t{nominated}\n"));
    }
    let init = list_at(pod, "/spec/initContainers");
    if !init.is_empty() {
        containers(
            &mut w,
            "Init Containers",
            init,
            list_at(pod, "/status/initContainerStatuses"),
            Some(pod),
            "",
        );
    }
    containers(
        &mut w,
        "Containers",
        list_at(pod, "/spec/containers"),
        list_at(pod, "/status/containerStatuses"),
        Some(pod),
        "",
    );
    let conditions = list_at(pod, "/status/conditions");
    if !conditions.is_empty() {
        w.write(0, "Conditions:\n  Type\tStatus\n");
        for c in conditions {
            w.write(
                1,
                &format!("{} \t{} \n", str_at(c, "/type"), str_at(c, "/status")),
            );
        }
    }
    volumes(&mut w, list_at(pod, "/spec/volumes"), "");
    w.write(0, &format!("QoS Class:\t{}\n", qos_class(pod)));
    w.labels("", "Node-Selectors", &string_map(pod, "/spec/nodeSelector"));
    tolerations(&mut w, "Tolerations", list_at(pod, "/spec/tolerations"));
    w.events(events, now);
    w.finish()
}

// ---------------------------------------------------------------------
// Nodes

/// A resource quantity (`500m`, `2`, `16Gi`), enough of Kubernetes'
/// `resource.Quantity` to add requests and print percentages.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Quantity {
    /// The amount in thousandths of the unit (millicores, millibytes).
    milli: i128,
    /// Whether it was written with binary suffixes (`Ki`, `Mi`, ...).
    binary: bool,
}

impl Quantity {
    fn parse(s: &str) -> Self {
        let s = s.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
            .unwrap_or(s.len());
        let (number, suffix) = s.split_at(split);
        let value: f64 = number.parse().unwrap_or(0.0);
        let (factor, binary): (f64, bool) = match suffix {
            "m" => (0.001, false),
            "" => (1.0, false),
            "k" => (1e3, false),
            "M" => (1e6, false),
            "G" => (1e9, false),
            "T" => (1e12, false),
            "P" => (1e15, false),
            "E" => (1e18, false),
            "Ki" => (1024.0, true),
            "Mi" => (1024f64.powi(2), true),
            "Gi" => (1024f64.powi(3), true),
            "Ti" => (1024f64.powi(4), true),
            "Pi" => (1024f64.powi(5), true),
            "Ei" => (1024f64.powi(6), true),
            _ => (1.0, false),
        };
        Quantity {
            milli: (value * factor * 1000.0).round() as i128,
            binary,
        }
    }

    fn add(self, other: Quantity) -> Quantity {
        Quantity {
            milli: self.milli + other.milli,
            binary: self.binary || other.binary,
        }
    }

    /// The canonical form kubectl prints: the largest suffix that keeps the
    /// number whole.
    fn canonical(self) -> String {
        if self.milli == 0 {
            return "0".to_string();
        }
        if self.milli % 1000 != 0 {
            return format!("{}m", self.milli);
        }
        let value = self.milli / 1000;
        let (base, suffixes): (i128, &[&str]) = if self.binary {
            (1024, &["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"])
        } else {
            (1000, &["", "k", "M", "G", "T", "P", "E"])
        };
        let mut n = value;
        let mut i = 0;
        while n % base == 0 && i + 1 < suffixes.len() {
            n /= base;
            i += 1;
        }
        format!("{n}{}", suffixes[i])
    }
}

/// A Pod's total request (or limit) of one resource: the sum over its
/// containers, or the largest init container if that is more.
fn pod_total(pod: &Value, kind: &str, resource: &str) -> Quantity {
    let sum = list_at(pod, "/spec/containers")
        .iter()
        .filter_map(|c| at(c, &format!("/resources/{kind}/{resource}")).as_str())
        .map(Quantity::parse)
        .fold(Quantity::default(), Quantity::add);
    list_at(pod, "/spec/initContainers")
        .iter()
        .filter_map(|c| at(c, &format!("/resources/{kind}/{resource}")).as_str())
        .map(Quantity::parse)
        .fold(sum, |acc, q| if q.milli > acc.milli { q } else { acc })
}

fn percent(part: Quantity, whole: Quantity) -> i128 {
    if whole.milli == 0 {
        0
    } else {
        (part.milli as f64 / whole.milli as f64 * 100.0) as i128
    }
}

pub fn describe_node(
    node: &Value,
    pods: &[Value],
    lease: Result<&Value, &str>,
    events: &[Value],
    now: DateTime<Utc>,
) -> String {
    let mut w = Page::default();
    let name = str_at(node, "/metadata/name");
    w.write(0, &format!("Name:\t{name}\n"));
    let labels = string_map(node, "/metadata/labels");
    let mut roles: Vec<String> = labels
        .iter()
        .filter_map(|(k, v)| {
            if let Some(role) = k.strip_prefix(NODE_ROLE_PREFIX) {
                (!role.is_empty()).then(|| role.to_string())
            } else if k == NODE_ROLE_LABEL && !v.is_empty() {
                Some(v.clone())
            } else {
                None
            }
        })
        .collect();
    roles.sort();
    roles.dedup();
    w.write(0, &format!("Roles:\t{}\n", none_if_empty(&roles.join(","))));
    w.labels("", "Labels", &labels);
    w.annotations("Annotations", &string_map(node, "/metadata/annotations"));
    w.write(
        0,
        &format!(
            "CreationTimestamp:\t{}\n",
            rfc1123z(str_at(node, "/metadata/creationTimestamp"))
        ),
    );
    let mut taints: Vec<&Value> = list_at(node, "/spec/taints").iter().collect();
    taints.sort_by_key(|t| format!("{},{}", str_at(t, "/effect"), str_at(t, "/key")));
    w.write(0, "Taints:\t");
    if taints.is_empty() {
        w.write(0, "<none>\n");
    }
    for (i, t) in taints.iter().enumerate() {
        if i != 0 {
            w.write(0, "\t");
        }
        let value = str_at(t, "/value");
        let text = if value.is_empty() {
            format!("{}:{}", str_at(t, "/key"), str_at(t, "/effect"))
        } else {
            format!("{}={value}:{}", str_at(t, "/key"), str_at(t, "/effect"))
        };
        w.write(0, &format!("{text}\n"));
    }
    w.write(
        0,
        &format!("Unschedulable:\t{}\n", bool_at(node, "/spec/unschedulable")),
    );
    match lease {
        Ok(lease) => {
            w.write(0, "Lease:\n");
            let holder = at(lease, "/spec/holderIdentity")
                .as_str()
                .unwrap_or("<unset>");
            w.write(1, &format!("HolderIdentity:\t{holder}\n"));
            for (field, title) in [
                ("/spec/acquireTime", "AcquireTime"),
                ("/spec/renewTime", "RenewTime"),
            ] {
                let time = str_at(lease, field);
                let shown = if time.is_empty() {
                    "<unset>".to_string()
                } else {
                    rfc1123z(time)
                };
                w.write(1, &format!("{title}:\t{shown}\n"));
            }
        }
        Err(e) => w.write(0, &format!("Lease:\tFailed to get lease: {e}\n")),
    }
    let conditions = list_at(node, "/status/conditions");
    if !conditions.is_empty() {
        w.write(
            0,
            "Conditions:\n  Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage\n",
        );
        w.write(
            1,
            "----\t------\t-----------------\t------------------\t------\t-------\n",
        );
        for c in conditions {
            w.write(
                1,
                &format!(
                    "{} \t{} \t{} \t{} \t{} \t{}\n",
                    str_at(c, "/type"),
                    str_at(c, "/status"),
                    rfc1123z(str_at(c, "/lastHeartbeatTime")),
                    rfc1123z(str_at(c, "/lastTransitionTime")),
                    str_at(c, "/reason"),
                    str_at(c, "/message")
                ),
            );
        }
    }
    w.write(0, "Addresses:\n");
    for address in list_at(node, "/status/addresses") {
        w.write(
            1,
            &format!(
                "{}:\t{}\n",
                str_at(address, "/type"),
                str_at(address, "/address")
            ),
        );
    }
    let capacity = string_map(node, "/status/capacity");
    let allocatable = string_map(node, "/status/allocatable");
    for (title, resources) in [("Capacity", &capacity), ("Allocatable", &allocatable)] {
        if !resources.is_empty() {
            w.write(0, &format!("{title}:\n"));
            for (resource, quantity) in resources {
                w.write(0, &format!("  {resource}:\t{quantity}\n"));
            }
        }
    }
    w.write(0, "System Info:\n");
    for (field, title) in [
        ("machineID", "Machine ID"),
        ("systemUUID", "System UUID"),
        ("bootID", "Boot ID"),
        ("kernelVersion", "Kernel Version"),
        ("osImage", "OS Image"),
        ("operatingSystem", "Operating System"),
        ("architecture", "Architecture"),
        ("containerRuntimeVersion", "Container Runtime Version"),
        ("kubeletVersion", "Kubelet Version"),
        ("kubeProxyVersion", "Kube-Proxy Version"),
    ] {
        w.write(
            0,
            &format!(
                "  {title}:\t{}\n",
                str_at(node, &format!("/status/nodeInfo/{field}"))
            ),
        );
    }
    let pod_cidr = str_at(node, "/spec/podCIDR");
    if !pod_cidr.is_empty() {
        w.write(0, &format!("PodCIDR:\t{pod_cidr}\n"));
    }
    let cidrs: Vec<&str> = list_at(node, "/spec/podCIDRs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    if !cidrs.is_empty() {
        w.write(0, &format!("PodCIDRs:\t{}\n", cidrs.join(",")));
    }
    let provider = str_at(node, "/spec/providerID");
    if !provider.is_empty() {
        w.write(0, &format!("ProviderID:\t{provider}\n"));
    }
    node_resources(
        &mut w,
        pods,
        if allocatable.is_empty() {
            &capacity
        } else {
            &allocatable
        },
        now,
    );
    w.events(events, now);
    w.finish()
}

fn node_resources(
    w: &mut Page,
    pods: &[Value],
    allocatable: &BTreeMap<String, String>,
    now: DateTime<Utc>,
) {
    let alloc = |r: &str| {
        allocatable
            .get(r)
            .map(|q| Quantity::parse(q))
            .unwrap_or_default()
    };
    let (cpu, memory, storage) = (alloc("cpu"), alloc("memory"), alloc("ephemeral-storage"));
    w.write(
        0,
        &format!("Non-terminated Pods:\t({} in total)\n", pods.len()),
    );
    w.write(
        1,
        "Namespace\tName\t\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge\n",
    );
    w.write(
        1,
        "---------\t----\t\t------------\t----------\t---------------\t-------------\t---\n",
    );
    let mut totals = [Quantity::default(); 6];
    for pod in pods {
        let values = [
            pod_total(pod, "requests", "cpu"),
            pod_total(pod, "limits", "cpu"),
            pod_total(pod, "requests", "memory"),
            pod_total(pod, "limits", "memory"),
            pod_total(pod, "requests", "ephemeral-storage"),
            pod_total(pod, "limits", "ephemeral-storage"),
        ];
        for (total, value) in totals.iter_mut().zip(values) {
            *total = total.add(value);
        }
        w.write(
            1,
            &format!(
                "{}\t{}\t\t{} ({}%)\t{} ({}%)\t{} ({}%)\t{} ({}%)\t{}\n",
                str_at(pod, "/metadata/namespace"),
                str_at(pod, "/metadata/name"),
                values[0].canonical(),
                percent(values[0], cpu),
                values[1].canonical(),
                percent(values[1], cpu),
                values[2].canonical(),
                percent(values[2], memory),
                values[3].canonical(),
                percent(values[3], memory),
                age_since(str_at(pod, "/metadata/creationTimestamp"), now)
            ),
        );
    }
    w.write(
        0,
        "Allocated resources:\n  (Total limits may be over 100 percent, i.e., overcommitted.)\n",
    );
    w.write(1, "Resource\tRequests\tLimits\n");
    w.write(1, "--------\t--------\t------\n");
    for (resource, requests, limits, whole) in [
        ("cpu", totals[0], totals[1], cpu),
        ("memory", totals[2], totals[3], memory),
        ("ephemeral-storage", totals[4], totals[5], storage),
    ] {
        w.write(
            1,
            &format!(
                "{resource}\t{} ({}%)\t{} ({}%)\n",
                requests.canonical(),
                percent(requests, whole),
                limits.canonical(),
                percent(limits, whole)
            ),
        );
    }
}

// ---------------------------------------------------------------------
// ReplicaSets and Endpoints

/// A ReplicaSet: how many Pods it wants and, among the Pods it owns, how
/// many are in each phase.
pub fn describe_replica_set(
    rs: &Value,
    pods: Result<&[Value], &str>,
    events: &[Value],
    now: DateTime<Utc>,
) -> String {
    let mut w = Page::default();
    w.name_and_namespace(rs);
    w.write(
        0,
        &format!("Selector:\t{}\n", label_selector(at(rs, "/spec/selector"))),
    );
    w.labels("", "Labels", &string_map(rs, "/metadata/labels"));
    w.annotations("Annotations", &string_map(rs, "/metadata/annotations"));
    if let Some(owner) = list_at(rs, "/metadata/ownerReferences")
        .iter()
        .find(|o| bool_at(o, "/controller"))
    {
        w.write(
            0,
            &format!(
                "Controlled By:\t{}/{}\n",
                str_at(owner, "/kind"),
                str_at(owner, "/name")
            ),
        );
    }
    w.write(
        0,
        &format!(
            "Replicas:\t{} current / {} desired\n",
            int_at(rs, "/status/replicas"),
            int_at(rs, "/spec/replicas")
        ),
    );
    w.write(0, "Pods Status:\t");
    match pods {
        Err(e) => w.write(0, &format!("error in fetching pods: {e}\n")),
        Ok(pods) => {
            let uid = str_at(rs, "/metadata/uid");
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
            w.write(
                0,
                &format!(
                    "{} Running / {} Waiting / {} Succeeded / {} Failed\n",
                    count("Running"),
                    count("Pending"),
                    count("Succeeded"),
                    count("Failed")
                ),
            );
        }
    }
    pod_template(&mut w, at(rs, "/spec/template"));
    let conditions = list_at(rs, "/status/conditions");
    if !conditions.is_empty() {
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
    w.events(events, now);
    w.finish()
}

/// The v1 Endpoints object: the addresses behind a Service, grouped in
/// subsets that share the same ports.
pub fn describe_endpoints(ep: &Value, events: &[Value], now: DateTime<Utc>) -> String {
    let mut w = Page::default();
    w.object_header(ep);
    w.write(0, "Subsets:\n");
    for subset in list_at(ep, "/subsets") {
        let ips = |field: &str| {
            let ips: Vec<&str> = list_at(subset, field)
                .iter()
                .map(|a| str_at(a, "/ip"))
                .collect();
            none_if_empty(&ips.join(",")).to_string()
        };
        w.write(1, &format!("Addresses:\t{}\n", ips("/addresses")));
        w.write(
            1,
            &format!("NotReadyAddresses:\t{}\n", ips("/notReadyAddresses")),
        );
        let ports = list_at(subset, "/ports");
        if !ports.is_empty() {
            w.write(1, "Ports:\n");
            w.write(2, "Name\tPort\tProtocol\n");
            w.write(2, "----\t----\t--------\n");
            for port in ports {
                let name = str_at(port, "/name");
                w.write(
                    2,
                    &format!(
                        "{}\t{}\t{}\n",
                        if name.is_empty() { "<unset>" } else { name },
                        int_at(port, "/port"),
                        str_at(port, "/protocol")
                    ),
                );
            }
        }
        w.write(0, "\n");
    }
    w.events(events, now);
    w.finish()
}

// ---------------------------------------------------------------------
// ConfigMaps, Namespaces and everything else

pub fn describe_configmap(cm: &Value, events: &[Value], now: DateTime<Utc>) -> String {
    let mut w = Page::default();
    w.object_header(cm);
    w.write(0, "\nData\n====\n");
    for (key, value) in string_map(cm, "/data") {
        w.write(0, &format!("{key}:\n----\n"));
        w.write(0, &format!("{value}\n"));
        w.write(0, "\n");
    }
    w.write(0, "\nBinaryData\n====\n");
    for (key, value) in string_map(cm, "/binaryData") {
        // Base64 text: 4 characters carry 3 bytes.
        let padding = value.chars().rev().take_while(|c| *c == '=').count();
        let bytes = value.len() / 4 * 3 - padding;
        w.write(0, &format!("{key}: {bytes} bytes\n"));
    }
    w.write(0, "\n");
    w.events(events, now);
    w.finish()
}

pub fn describe_namespace(ns: &Value) -> String {
    let mut w = Page::default();
    w.write(0, &format!("Name:\t{}\n", str_at(ns, "/metadata/name")));
    w.labels("", "Labels", &string_map(ns, "/metadata/labels"));
    w.annotations("Annotations", &string_map(ns, "/metadata/annotations"));
    w.write(0, &format!("Status:\t{}\n", str_at(ns, "/status/phase")));
    let conditions = list_at(ns, "/status/conditions");
    if !conditions.is_empty() {
        w.write(0, "Conditions:\n");
        w.write(1, "Type\tStatus\tLastTransitionTime\tReason\tMessage\n");
        w.write(1, "----\t------\t------------------\t------\t-------\n");
        for c in conditions {
            w.write(
                1,
                &format!(
                    "{}\t{}\t{}\t{}\t{}\n",
                    str_at(c, "/type"),
                    str_at(c, "/status"),
                    rfc1123z(str_at(c, "/lastTransitionTime")),
                    str_at(c, "/reason"),
                    str_at(c, "/message")
                ),
            );
        }
    }
    w.finish()
}

/// Objects without a page of their own: every field, nested, with
/// human labels (`creationTimestamp` -> `Creation Timestamp`).
pub fn describe_generic(object: &Value, events: &[Value], now: DateTime<Utc>) -> String {
    let mut w = Page::default();
    w.object_header(object);
    let skip = [
        ".metadata.managedFields",
        ".metadata.name",
        ".metadata.namespace",
        ".metadata.labels",
        ".metadata.annotations",
    ];
    if let Some(map) = object.as_object() {
        unstructured_content(&mut w, 0, map, "", &skip);
    }
    w.events(events, now);
    w.finish()
}

fn unstructured_content(
    w: &mut Page,
    level: usize,
    content: &serde_json::Map<String, Value>,
    prefix: &str,
    skip: &[&str],
) {
    for (field, value) in content {
        let path = format!("{prefix}.{field}");
        if skip.contains(&path.as_str()) {
            continue;
        }
        match value {
            Value::Object(child) => {
                w.write(level, &format!("{}:\n", smart_label(field)));
                unstructured_content(w, level + 1, child, &path, skip);
            }
            Value::Array(children) => {
                w.write(level, &format!("{}:\n", smart_label(field)));
                for child in children {
                    match child {
                        Value::Object(m) => unstructured_content(w, level + 1, m, &path, skip),
                        Value::String(s) => w.write(level + 1, &format!("{s}\n")),
                        other => w.write(level + 1, &format!("{other}\n")),
                    }
                }
            }
            Value::String(s) => w.write(level, &format!("{}:\t{s}\n", smart_label(field))),
            Value::Null => w.write(level, &format!("{}:\t<nil>\n", smart_label(field))),
            other => w.write(level, &format!("{}:\t{other}\n", smart_label(field))),
        }
    }
}

/// `creationTimestamp` -> `Creation Timestamp`, `apiVersion` -> `API Version`.
fn smart_label(field: &str) -> String {
    if field.chars().any(|c| !c.is_alphabetic() && c != '-') {
        return field.to_string();
    }
    // Split camelCase into words, keeping runs of capitals together.
    let chars: Vec<char> = field.chars().collect();
    let mut words: Vec<String> = Vec::new();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let starts_word = c.is_uppercase()
            && i > 0
            && (chars[i - 1].is_lowercase()
                || chars.get(i + 1).is_some_and(|n| n.is_lowercase())
                    && chars[i - 1].is_uppercase());
        if starts_word && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
        .into_iter()
        .map(|word| {
            let upper = word.to_uppercase();
            if ["API", "URL", "UID", "OSB", "GUID"].contains(&upper.as_str()) {
                upper
            } else {
                let mut chars = word.chars();
                match chars.next() {
                    Some(first) => first.to_uppercase().collect::<String>() + chars.as_str(),
                    None => String::new(),
                }
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-25T10:00:00Z".parse().unwrap()
    }

    /// The lesson's ClusterIP Service as the API server stores it.
    fn ngx_svc() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "ngx-svc", "namespace": "default", "uid": "u1",
                "annotations": {LAST_APPLIED: "{\"apiVersion\":\"v1\"}\n"}},
            "spec": {"clusterIP": "10.96.240.115", "clusterIPs": ["10.96.240.115"],
                "internalTrafficPolicy": "Cluster", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
                "selector": {"app": "ngx-dep"}, "sessionAffinity": "None", "type": "ClusterIP"},
            "status": {"loadBalancer": {}}
        })
    }

    fn slice(addresses: &[(&str, Option<bool>)], port_name: &str, port: i64) -> Value {
        let endpoints: Vec<Value> = addresses
            .iter()
            .map(|(ip, ready)| match ready {
                Some(r) => json!({"addresses": [ip], "conditions": {"ready": r}}),
                None => json!({"addresses": [ip]}),
            })
            .collect();
        json!({"addressType": "IPv4", "endpoints": endpoints,
               "ports": [{"name": port_name, "port": port, "protocol": "TCP"}]})
    }

    #[test]
    fn service_without_pods_has_no_endpoints() {
        // Verified against kubectl 1.35.2 describing the same object.
        assert_eq!(
            describe_service(&ngx_svc(), &[], &[], now()),
            "Name:                     ngx-svc
Namespace:                default
Labels:                   <none>
Annotations:              <none>
Selector:                 app=ngx-dep
Type:                     ClusterIP
IP Family Policy:         SingleStack
IP Families:              IPv4
IP:                       10.96.240.115
IPs:                      10.96.240.115
Port:                     <unset>  80/TCP
TargetPort:               80/TCP
Endpoints:                <none>
Session Affinity:         None
Internal Traffic Policy:  Cluster
Events:                   <none>
"
        );
    }

    #[test]
    fn nodeport_service_lists_ready_endpoints_and_events() {
        let mut svc = ngx_svc();
        svc["spec"]["type"] = json!("NodePort");
        svc["spec"]["externalTrafficPolicy"] = json!("Cluster");
        svc["spec"]["ports"][0]["nodePort"] = json!(30651);
        let slices = [slice(
            &[
                ("10.244.1.5", Some(true)),
                ("10.244.2.3", None),
                ("10.244.2.9", Some(false)),
            ],
            "",
            80,
        )];
        let events = [json!({
            "type": "Normal", "reason": "Type", "message": "ClusterIP -> NodePort ",
            "source": {"component": "service-controller"}, "count": 2,
            "firstTimestamp": "2026-11-25T09:00:00Z", "lastTimestamp": "2026-11-25T09:55:00Z"
        })];
        let page = describe_service(&svc, &slices, &events, now());
        let lines: Vec<&str> = page.lines().collect();
        assert!(lines.contains(&"Type:                     NodePort"));
        assert!(lines.contains(&"NodePort:                 <unset>  30651/TCP"));
        assert!(lines.contains(&"Endpoints:                10.244.1.5:80,10.244.2.3:80"));
        assert!(lines.contains(&"External Traffic Policy:  Cluster"));
        assert!(page.ends_with(
            "Events:\n  Type    Reason  Age               From                Message\n  ----    ------  ----              ----                -------\n  Normal  Type    5m (x2 over 60m)  service-controller  ClusterIP -> NodePort\n"
        ), "{page}");
    }

    #[test]
    fn endpoints_beyond_three_are_counted() {
        let ips: Vec<(String, Option<bool>)> =
            (1..=5).map(|i| (format!("10.244.1.{i}"), None)).collect();
        let ips: Vec<(&str, Option<bool>)> = ips.iter().map(|(ip, r)| (ip.as_str(), *r)).collect();
        assert_eq!(
            format_endpoint_slices(&[slice(&ips, "http", 8080)], "http"),
            "10.244.1.1:8080,10.244.1.2:8080,10.244.1.3:8080 + 2 more..."
        );
        // A port of another name contributes nothing.
        assert_eq!(format_endpoint_slices(&[slice(&ips, "http", 8080)], ""), "");
    }

    fn ngx_dep() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "ngx-dep", "namespace": "default", "uid": "dep",
                "creationTimestamp": "2026-11-25T09:00:00Z", "generation": 1,
                "annotations": {"deployment.kubernetes.io/revision": "1"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "ngx-dep"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {"metadata": {"labels": {"app": "ngx-dep"}}, "spec": {
                    "containers": [{"name": "nginx", "image": "nginx:alpine",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "volumeMounts": [{"mountPath": "/etc/nginx/conf.d", "name": "ngx-conf-vol"}]}],
                    "volumes": [{"name": "ngx-conf-vol", "configMap": {"name": "ngx-conf"}}]}}},
            "status": {"replicas": 2, "updatedReplicas": 2, "availableReplicas": 1, "unavailableReplicas": 1,
                "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}]}
        })
    }

    #[test]
    fn deployment_page_matches_kubectl() {
        let deploy = ngx_dep();
        let mut template = deploy["spec"]["template"].clone();
        template["metadata"]["labels"]["pod-template-hash"] = json!("6796688696");
        let rs = json!({"metadata": {"name": "ngx-dep-6796688696", "uid": "rs",
                "ownerReferences": [{"controller": true, "uid": "dep", "kind": "Deployment", "name": "ngx-dep"}]},
            "spec": {"replicas": 2, "template": template}, "status": {"replicas": 2}});
        let expected = format!(
            "Name:                   ngx-dep
Namespace:              default
CreationTimestamp:      {}
Labels:                 <none>
Annotations:            deployment.kubernetes.io/revision: 1
Selector:               app=ngx-dep
Replicas:               2 desired | 2 updated | 2 total | 1 available | 1 unavailable
StrategyType:           RollingUpdate
MinReadySeconds:        0
RollingUpdateStrategy:  25% max unavailable, 25% max surge
Pod Template:
  Labels:  app=ngx-dep
  Containers:
   nginx:
    Image:        nginx:alpine
    Port:         80/TCP
    Host Port:    0/TCP
    Environment:  <none>
    Mounts:
      /etc/nginx/conf.d from ngx-conf-vol (rw)
  Volumes:
   ngx-conf-vol:
    Type:          ConfigMap (a volume populated by a ConfigMap)
    Name:          ngx-conf
    Optional:      false
  Node-Selectors:  <none>
  Tolerations:     <none>
Conditions:
  Type           Status  Reason
  ----           ------  ------
  Available      False   MinimumReplicasUnavailable
OldReplicaSets:  <none>
NewReplicaSet:   ngx-dep-6796688696 (2/2 replicas created)
Events:          <none>
",
            rfc1123z("2026-11-25T09:00:00Z")
        );
        assert_eq!(describe_deployment(&deploy, &[rs], &[], now()), expected);
    }

    #[test]
    fn pod_page_shows_node_ip_owner_and_container_state() {
        let pod = json!({
            "metadata": {"name": "ngx-dep-6796688696-cmj2z", "namespace": "default",
                "labels": {"app": "ngx-dep"},
                "ownerReferences": [{"kind": "ReplicaSet", "name": "ngx-dep-6796688696", "controller": true}]},
            "spec": {"nodeName": "kl-worker1", "containers": [{"name": "nginx", "image": "nginx:alpine"}]},
            "status": {"phase": "Running", "hostIP": "192.168.56.11", "podIP": "10.244.1.5",
                "podIPs": [{"ip": "10.244.1.5"}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "nginx", "ready": true, "restartCount": 0,
                    "image": "nginx:alpine", "imageID": "", "state": {"waiting": {"reason": "ContainerCreating"}}}]}
        });
        let page = describe_pod(&pod, &[], now());
        assert_eq!(
            page,
            "Name:         ngx-dep-6796688696-cmj2z
Namespace:    default
Node:         kl-worker1/192.168.56.11
Labels:       app=ngx-dep
Annotations:  <none>
Status:       Running
IP:           10.244.1.5
IPs:
  IP:           10.244.1.5
Controlled By:  ReplicaSet/ngx-dep-6796688696
Containers:
  nginx:
    Container ID:   
    Image:          nginx:alpine
    Image ID:       
    Port:           <none>
    Host Port:      <none>
    State:          Waiting
      Reason:       ContainerCreating
    Ready:          True
    Restart Count:  0
    Environment:    <none>
    Mounts:         <none>
Conditions:
  Type           Status
  Ready          True 
Volumes:         <none>
QoS Class:       BestEffort
Node-Selectors:  <none>
Tolerations:     <none>
Events:          <none>
"
        );
    }

    #[test]
    fn node_page_totals_pod_requests() {
        let node = json!({
            "metadata": {"name": "kl-worker1", "labels": {"node-role.kubernetes.io/worker": ""}},
            "spec": {"podCIDR": "10.244.1.0/24"},
            "status": {"allocatable": {"cpu": "2", "memory": "2Gi"}, "capacity": {"cpu": "2", "memory": "2Gi"},
                "addresses": [{"type": "InternalIP", "address": "192.168.56.11"}]}
        });
        let pod = |name: &str, cpu: &str, memory: &str| {
            json!({"metadata": {"name": name, "namespace": "default", "creationTimestamp": "2026-11-25T09:50:00Z"},
                   "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}})
        };
        let page = describe_node(
            &node,
            &[pod("a", "500m", "512Mi"), pod("b", "1", "512Mi")],
            Err("leases.coordination.k8s.io \"kl-worker1\" not found"),
            &[],
            now(),
        );
        let lines: Vec<&str> = page.lines().collect();
        assert!(lines.contains(&"Roles:              worker"), "{page}");
        assert!(lines.contains(&"Lease:              Failed to get lease: leases.coordination.k8s.io \"kl-worker1\" not found"));
        assert!(
            lines.contains(&"PodCIDR:                      10.244.1.0/24"),
            "{page}"
        );
        assert!(lines.contains(&"  default                     a       500m (25%)    0 (0%)      512Mi (25%)      0 (0%)         10m"), "{page}");
        assert!(
            lines.contains(&"  cpu                1500m (75%)  0 (0%)"),
            "{page}"
        );
        assert!(
            lines.contains(&"  memory             1Gi (50%)    0 (0%)"),
            "{page}"
        );
    }

    #[test]
    fn quantities_add_up_in_canonical_form() {
        let q = Quantity::parse;
        assert_eq!(q("100m").add(q("200m")).canonical(), "300m");
        assert_eq!(q("1").add(q("1")).canonical(), "2");
        assert_eq!(q("128Mi").add(q("128Mi")).canonical(), "256Mi");
        assert_eq!(q("4026372Ki").canonical(), "4026372Ki");
        assert_eq!(q("1G").canonical(), "1G");
        assert_eq!(Quantity::default().canonical(), "0");
    }

    #[test]
    fn configmap_and_generic_pages() {
        let cm = json!({"metadata": {"name": "ngx-conf", "namespace": "default"},
                        "data": {"default.conf": "server {}\n"}});
        assert_eq!(
            describe_configmap(&cm, &[], now()),
            "Name:         ngx-conf\nNamespace:    default\nLabels:       <none>\nAnnotations:  <none>\n\nData\n====\ndefault.conf:\n----\nserver {}\n\n\n\nBinaryData\n====\n\nEvents:  <none>\n"
        );
        let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "n1", "namespace": "kube-node-lease", "creationTimestamp": "2026-11-25T09:00:00Z"},
            "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40}});
        assert_eq!(
            describe_generic(&lease, &[], now()),
            "Name:         n1\nNamespace:    kube-node-lease\nLabels:       <none>\nAnnotations:  <none>\nAPI Version:  coordination.k8s.io/v1\nKind:         Lease\nMetadata:\n  Creation Timestamp:  2026-11-25T09:00:00Z\nSpec:\n  Holder Identity:         n1\n  Lease Duration Seconds:  40\nEvents:                    <none>\n"
        );
    }

    #[test]
    fn endpoints_and_replica_sets_match_kubectl() {
        // Verified against kubectl 1.35.2 describing the same objects.
        let ep = json!({"metadata": {"name": "ngx-svc", "namespace": "default"}, "subsets": [
            {"addresses": [{"ip": "10.244.1.5"}, {"ip": "10.244.2.3"}],
             "notReadyAddresses": [{"ip": "10.244.2.9"}],
             "ports": [{"port": 80, "protocol": "TCP"}, {"name": "https", "port": 443, "protocol": "TCP"}]}]});
        assert_eq!(
            describe_endpoints(&ep, &[], now()),
            "Name:         ngx-svc
Namespace:    default
Labels:       <none>
Annotations:  <none>
Subsets:
  Addresses:          10.244.1.5,10.244.2.3
  NotReadyAddresses:  10.244.2.9
  Ports:
    Name     Port  Protocol
    ----     ----  --------
    <unset>  80    TCP
    https    443   TCP

Events:  <none>
"
        );
        let rs = json!({
            "metadata": {"name": "ngx-dep-6796688696", "namespace": "default", "uid": "rs",
                "ownerReferences": [{"kind": "Deployment", "name": "ngx-dep", "controller": true}]},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "ngx-dep"}},
                "template": {"metadata": {"labels": {"app": "ngx-dep"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx:alpine"}]}}},
            "status": {"replicas": 2}
        });
        let owned = |phase: &str| {
            json!({"metadata": {"ownerReferences": [{"controller": true, "uid": "rs"}]},
                                         "status": {"phase": phase}})
        };
        let pods = [
            owned("Running"),
            owned("Pending"),
            json!({"status": {"phase": "Running"}}),
        ];
        let page = describe_replica_set(&rs, Ok(&pods), &[], now());
        assert!(
            page.starts_with(
                "Name:           ngx-dep-6796688696
Namespace:      default
Selector:       app=ngx-dep
Labels:         <none>
Annotations:    <none>
Controlled By:  Deployment/ngx-dep
Replicas:       2 current / 2 desired
Pods Status:    1 Running / 1 Waiting / 0 Succeeded / 0 Failed
Pod Template:
"
            ),
            "{page}"
        );
    }

    #[test]
    fn smart_labels_split_camel_case() {
        assert_eq!(smart_label("creationTimestamp"), "Creation Timestamp");
        assert_eq!(smart_label("apiVersion"), "API Version");
        assert_eq!(smart_label("clusterIP"), "Cluster IP");
        assert_eq!(smart_label("podCIDRs"), "Pod CID Rs");
        assert_eq!(smart_label("x-y"), "X-y");
        assert_eq!(smart_label("a.b"), "a.b");
    }
}
