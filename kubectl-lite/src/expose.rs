//! `kubectl expose`: write the Service for an existing workload.
//!
//! A Service finds its Pods by label, so exposing a Deployment means
//! copying the Deployment's Pod selector (`spec.selector.matchLabels`) into
//! a new Service's `spec.selector`, and its container port into the
//! Service's ports. `--dry-run=client -o yaml` prints that Service instead
//! of creating it: the quickest way to get a correct manifest to edit,
//! which is how the lesson starts.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail};
use clap::Args;
use serde_json::{json, Map, Value};

use crate::client::Client;
use crate::output::{self, OutputFormat};
use crate::resource_args;

#[derive(Debug, Args)]
pub struct ExposeArgs {
    /// TYPE NAME or TYPE/NAME of the object to expose (deploy ngx-dep)
    #[arg(required = true)]
    pub args: Vec<String>,
    /// The port the Service serves on (default: the container's port)
    #[arg(long)]
    pub port: Option<String>,
    /// The port on the Pods traffic goes to (default: --port)
    #[arg(long)]
    pub target_port: Option<String>,
    /// ClusterIP, NodePort, LoadBalancer or ExternalName
    #[arg(long = "type")]
    pub service_type: Option<String>,
    /// The Service's name (default: the exposed object's name)
    #[arg(long)]
    pub name: Option<String>,
    /// TCP, UDP or SCTP (default: the container port's protocol)
    #[arg(long)]
    pub protocol: Option<String>,
    /// A label selector to use instead of the object's (k=v,k2=v2)
    #[arg(long)]
    pub selector: Option<String>,
    /// Labels for the Service (k=v,k2=v2; default: the object's labels)
    #[arg(short = 'l', long)]
    pub labels: Option<String>,
    /// ClusterIP to ask for, or None for a headless Service
    #[arg(long = "cluster-ip")]
    pub cluster_ip: Option<String>,
    /// None or ClientIP
    #[arg(long)]
    pub session_affinity: Option<String>,
    /// none, or client to print the Service without creating it
    #[arg(long, default_value = "none")]
    pub dry_run: String,
    /// Output format: yaml, json or name
    #[arg(short = 'o', long)]
    pub output: Option<String>,
}

/// What the user asked for, separated from clap for testing.
#[derive(Debug, Default, Clone)]
pub struct ExposeOptions {
    pub port: Option<String>,
    pub target_port: Option<String>,
    pub service_type: Option<String>,
    pub name: Option<String>,
    pub protocol: Option<String>,
    pub selector: Option<String>,
    pub labels: Option<String>,
    pub cluster_ip: Option<String>,
    pub session_affinity: Option<String>,
}

/// `app=ngx-dep,tier=web` into a map, as kubectl's expose parses it.
fn parse_labels(spec: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    for pair in spec.split(',') {
        let parts: Vec<&str> = pair.split('=').collect();
        if parts.len() != 2 {
            bail!("unexpected label spec: {pair}");
        }
        if parts[0].is_empty() {
            bail!("unexpected empty label key");
        }
        labels.insert(parts[0].to_string(), parts[1].to_string());
    }
    Ok(labels)
}

/// The Pod selector of an object that can be exposed.
fn selector_of(object: &Value) -> anyhow::Result<BTreeMap<String, String>> {
    let kind = object["kind"].as_str().unwrap_or_default();
    let map = |v: &Value| -> BTreeMap<String, String> {
        v.as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    match kind {
        "Deployment" | "ReplicaSet" => {
            let selector = &object["spec"]["selector"];
            if selector["matchExpressions"]
                .as_array()
                .is_some_and(|e| !e.is_empty())
            {
                bail!("couldn't retrieve selectors via --selector flag or introspection: the {kind} has matchExpressions in its selector, which a Service cannot express");
            }
            let labels = map(&selector["matchLabels"]);
            if labels.is_empty() {
                bail!("couldn't retrieve selectors via --selector flag or introspection: the {kind} has no matchLabels");
            }
            Ok(labels)
        }
        "Service" => Ok(map(&object["spec"]["selector"])),
        "Pod" => Ok(map(&object["metadata"]["labels"])),
        _ => unreachable!("checked by the caller"),
    }
}

/// The ports of the exposed object with their protocols: container ports
/// of the Pod template, or a Service's own ports.
fn ports_of(object: &Value) -> Vec<(i64, String)> {
    let containers = match object["kind"].as_str() {
        Some("Deployment") | Some("ReplicaSet") => {
            &object["spec"]["template"]["spec"]["containers"]
        }
        Some("Pod") => &object["spec"]["containers"],
        Some("Service") => {
            return object["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    (
                        p["port"].as_i64().unwrap_or_default(),
                        p["protocol"].as_str().unwrap_or("TCP").to_string(),
                    )
                })
                .collect();
        }
        _ => &Value::Null,
    };
    containers
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
        .map(|p| {
            (
                p["containerPort"].as_i64().unwrap_or_default(),
                p["protocol"].as_str().unwrap_or("TCP").to_string(),
            )
        })
        .collect()
}

/// Builds the Service kubectl would create for `object`.
pub fn build_service(object: &Value, options: &ExposeOptions) -> anyhow::Result<Value> {
    let kind = object["kind"].as_str().unwrap_or_default();
    if !matches!(kind, "Deployment" | "ReplicaSet" | "Service" | "Pod") {
        let group = object["apiVersion"]
            .as_str()
            .and_then(|v| v.split_once('/'))
            .map(|(g, _)| format!(".{g}"))
            .unwrap_or_default();
        bail!("cannot expose a {kind}{group}");
    }
    let selector = match &options.selector {
        Some(spec) => parse_labels(spec)?,
        None => selector_of(object)?,
    };
    if selector.is_empty() {
        bail!("couldn't retrieve selectors via --selector flag or introspection: the {kind} has no labels to select its Pods by");
    }
    let object_ports = ports_of(object);
    let ports: Vec<String> = match &options.port {
        Some(port) => port.split(',').map(str::to_string).collect(),
        None => object_ports.iter().map(|(p, _)| p.to_string()).collect(),
    };
    let headless = options.cluster_ip.as_deref() == Some("None");
    if ports.is_empty() && !headless {
        bail!("couldn't find port via --port flag or introspection");
    }
    let mut service_ports = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let number: i64 = port
            .parse()
            .map_err(|_| anyhow!("strconv.Atoi: parsing {port:?}: invalid syntax"))?;
        let protocol = options.protocol.clone().unwrap_or_else(|| {
            object_ports
                .iter()
                .find(|(p, _)| *p == number)
                .map(|(_, proto)| proto.clone())
                .unwrap_or_else(|| "TCP".to_string())
        });
        let mut entry = Map::new();
        if ports.len() > 1 {
            entry.insert("name".into(), json!(format!("port-{}", i + 1)));
        }
        entry.insert("port".into(), json!(number));
        entry.insert("protocol".into(), json!(protocol));
        let target = match &options.target_port {
            // A number stays a number; a name (`http`) refers to a
            // container port by name.
            Some(t) => t
                .parse::<i64>()
                .map(|n| json!(n))
                .unwrap_or_else(|_| json!(t)),
            None => json!(number),
        };
        entry.insert("targetPort".into(), target);
        service_ports.push(Value::Object(entry));
    }
    let name = options.name.clone().unwrap_or_else(|| {
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        name.chars()
            .take(api::names::DNS1035_LABEL_MAX_LENGTH)
            .collect()
    });
    let labels = match &options.labels {
        Some(spec) => parse_labels(spec)?,
        None => object["metadata"]["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default(),
    };
    let mut metadata = json!({"name": name});
    if !labels.is_empty() {
        metadata["labels"] = json!(labels);
    }
    let mut spec = json!({"selector": selector});
    if !service_ports.is_empty() {
        spec["ports"] = json!(service_ports);
    }
    if let Some(t) = &options.service_type {
        spec["type"] = json!(t);
    }
    if let Some(affinity) = &options.session_affinity {
        if affinity != "None" && affinity != "ClientIP" {
            bail!("unknown session affinity: {affinity}");
        }
        spec["sessionAffinity"] = json!(affinity);
    }
    if let Some(ip) = &options.cluster_ip {
        spec["clusterIP"] = json!(ip);
    }
    Ok(json!({
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": metadata,
        "spec": spec,
        "status": {"loadBalancer": {}},
    }))
}

pub async fn run(client: &Client, args: ExposeArgs) -> anyhow::Result<()> {
    let format = OutputFormat::parse(args.output.as_deref())?;
    let dry_run = match args.dry_run.as_str() {
        "none" => false,
        "client" => true,
        other => bail!("Invalid dry-run value ({other}). Must be \"none\" or \"client\"."),
    };
    let refs = resource_args::parse(&args.args)?;
    let [r] = refs.as_slice() else {
        bail!("you must provide one resource to expose");
    };
    let [name] = r.names.as_slice() else {
        bail!(
            "you must provide one name of a {} to expose",
            r.resource.singular
        );
    };
    let mut object = client
        .get_object(
            r.resource,
            Some(&client.namespace),
            name,
            crate::client::JSON,
        )
        .await?;
    if object.get("kind").is_none() {
        object["kind"] = json!(r.resource.kind);
        object["apiVersion"] = json!(r.resource.api_version());
    }
    let options = ExposeOptions {
        port: args.port,
        target_port: args.target_port,
        service_type: args.service_type,
        name: args.name,
        protocol: args.protocol,
        selector: args.selector,
        labels: args.labels,
        cluster_ip: args.cluster_ip,
        session_affinity: args.session_affinity,
    };
    let mut service = build_service(&object, &options)?;
    if dry_run {
        if client.namespace_explicit {
            service["metadata"]["namespace"] = json!(client.namespace);
        }
        print!("{}", output::render_built(format, &service, "exposed"));
        return Ok(());
    }
    let created = client
        .create(
            &format!("/api/v1/namespaces/{}/services", client.namespace),
            &[("fieldManager", "kubectl-expose".to_string())],
            &service,
        )
        .await?;
    match format {
        OutputFormat::Table | OutputFormat::Wide => {
            println!("{}", output::action_line(&created, "exposed", false))
        }
        _ => print!("{}", output::render_objects(format, vec![created], true)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lesson's Deployment as the API server returns it.
    fn ngx_dep() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "ngx-dep", "namespace": "default", "uid": "u"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "ngx-dep"}},
                "template": {
                    "metadata": {"labels": {"app": "ngx-dep"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx:alpine",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}
                }
            }
        })
    }

    #[test]
    fn lesson_step_one_prints_kubectls_service() {
        let options = ExposeOptions {
            port: Some("80".into()),
            target_port: Some("80".into()),
            ..ExposeOptions::default()
        };
        let service = build_service(&ngx_dep(), &options).unwrap();
        // kubectl 1.35: expose deploy ngx-dep --port=80 --target-port=80 --dry-run=client -o yaml
        assert_eq!(
            output::render_built(OutputFormat::Yaml, &service, "exposed"),
            "apiVersion: v1
kind: Service
metadata:
  name: ngx-dep
spec:
  ports:
  - port: 80
    protocol: TCP
    targetPort: 80
  selector:
    app: ngx-dep
status:
  loadBalancer: {}
"
        );
    }

    #[test]
    fn port_defaults_to_the_container_port_and_labels_are_copied() {
        let mut deploy = ngx_dep();
        deploy["metadata"]["labels"] = json!({"app": "ngx-dep", "team": "web"});
        let options = ExposeOptions {
            service_type: Some("NodePort".into()),
            name: Some("ngx-np".into()),
            ..ExposeOptions::default()
        };
        let service = build_service(&deploy, &options).unwrap();
        assert_eq!(service["metadata"]["name"], "ngx-np");
        assert_eq!(service["metadata"]["labels"]["team"], "web");
        assert_eq!(service["spec"]["type"], "NodePort");
        assert_eq!(
            service["spec"]["ports"],
            json!([{"port": 80, "protocol": "TCP", "targetPort": 80}])
        );
    }

    #[test]
    fn several_ports_get_names_and_named_target_ports_stay_strings() {
        let options = ExposeOptions {
            port: Some("80,443".into()),
            target_port: Some("http".into()),
            ..ExposeOptions::default()
        };
        let service = build_service(&ngx_dep(), &options).unwrap();
        assert_eq!(
            service["spec"]["ports"],
            json!([
                {"name": "port-1", "port": 80, "protocol": "TCP", "targetPort": "http"},
                {"name": "port-2", "port": 443, "protocol": "TCP", "targetPort": "http"}
            ])
        );
    }

    #[test]
    fn objects_without_pods_cannot_be_exposed() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        let err = build_service(&cm, &ExposeOptions::default()).unwrap_err();
        assert_eq!(err.to_string(), "cannot expose a ConfigMap");
        let mut deploy = ngx_dep();
        deploy["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([]);
        let err = build_service(&deploy, &ExposeOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "couldn't find port via --port flag or introspection"
        );
    }
}
