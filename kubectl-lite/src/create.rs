//! `kubectl create deployment|configmap|namespace|service`: objects from
//! flags.
//!
//! These *generators* build a complete object from a few flags, with the
//! conventions kubectl uses: a Deployment labels its Pods `app=<name>` and
//! selects them by that label, a Service created this way selects
//! `app=<name>` too, each container is named after its image. With
//! `--dry-run=client -o yaml` the object is printed instead of created, a
//! common way to start a manifest.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use crate::client::Client;
use crate::output::{self, OutputFormat};

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(subcommand)]
    pub what: CreateCommand,
}

/// Flags every generator shares.
#[derive(Debug, Args, Clone)]
pub struct CreateCommon {
    /// none, or client to print the object without creating it
    #[arg(long, default_value = "none")]
    pub dry_run: String,
    /// Output format: yaml, json or name
    #[arg(short = 'o', long)]
    pub output: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum CreateCommand {
    /// Create a Deployment running the given image
    #[command(alias = "deploy")]
    Deployment {
        name: String,
        /// Image to run (several make several containers)
        #[arg(long, required = true)]
        image: Vec<String>,
        /// Number of replicas
        #[arg(long, default_value_t = 1)]
        replicas: i64,
        /// The containerPort of the first container
        #[arg(long)]
        port: Option<i64>,
        #[command(flatten)]
        common: CreateCommon,
    },
    /// Create a ConfigMap from literal values or files
    #[command(alias = "cm")]
    Configmap {
        name: String,
        /// key=value (repeatable)
        #[arg(long)]
        from_literal: Vec<String>,
        /// path, key=path, or a directory (repeatable)
        #[arg(long)]
        from_file: Vec<String>,
        #[command(flatten)]
        common: CreateCommon,
    },
    /// Create a Namespace
    #[command(alias = "ns")]
    Namespace {
        name: String,
        #[command(flatten)]
        common: CreateCommon,
    },
    /// Create a Service
    #[command(alias = "svc")]
    Service {
        #[command(subcommand)]
        kind: ServiceKind,
    },
}

#[derive(Debug, Subcommand)]
pub enum ServiceKind {
    /// A ClusterIP Service (a virtual IP inside the cluster)
    Clusterip {
        name: String,
        /// port[:targetPort] (repeatable)
        #[arg(long)]
        tcp: Vec<String>,
        /// The ClusterIP to ask for, or None for a headless Service
        #[arg(long)]
        clusterip: Option<String>,
        #[command(flatten)]
        common: CreateCommon,
    },
    /// A NodePort Service (also open on every node's IP)
    Nodeport {
        name: String,
        /// port[:targetPort] (repeatable)
        #[arg(long)]
        tcp: Vec<String>,
        /// The port to open on every node (default: allocated)
        #[arg(long)]
        node_port: Option<i64>,
        #[command(flatten)]
        common: CreateCommon,
    },
}

/// `nginx` from `registry.example/library/nginx:alpine`: the container name
/// kubectl derives from an image.
pub fn container_name(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    let name = last.split(':').next().unwrap_or(last);
    let name = name.split('@').next().unwrap_or(name);
    name.replace(['_', '.'], "-")
}

pub fn build_deployment(name: &str, images: &[String], replicas: i64, port: Option<i64>) -> Value {
    let labels = json!({"app": name});
    let mut containers: Vec<Value> = images
        .iter()
        .map(|image| json!({"name": container_name(image), "image": image, "resources": {}}))
        .collect();
    if let (Some(port), Some(first)) = (port.filter(|p| *p >= 0), containers.first_mut()) {
        first["ports"] = json!([{"containerPort": port}]);
    }
    json!({
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": containers}},
            "strategy": {},
        },
        "status": {},
    })
}

/// ConfigMap keys: letters, digits, `-`, `_` and `.`, not `.` or `..`.
fn check_configmap_key(key: &str) -> anyhow::Result<()> {
    let valid_chars = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let mut problems = Vec::new();
    if !valid_chars {
        problems.push("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')".to_string());
    }
    if key.len() > 253 {
        problems.push("must be no more than 253 characters".to_string());
    }
    if key == "." || key == ".." || key.starts_with("..") {
        problems.push("must not be '.' or '..' or start with '..'".to_string());
    }
    if !problems.is_empty() {
        bail!(
            "{key:?} is not a valid key name for a ConfigMap: {}",
            problems.join(",")
        );
    }
    Ok(())
}

pub fn build_configmap(name: &str, literals: &[String], files: &[String]) -> anyhow::Result<Value> {
    let mut data: BTreeMap<String, String> = BTreeMap::new();
    let mut add = |key: String, value: String| -> anyhow::Result<()> {
        check_configmap_key(&key)?;
        if data.contains_key(&key) {
            bail!("cannot add key {key:?}, another key by that name already exists in Data for ConfigMap {name:?}");
        }
        data.insert(key, value);
        Ok(())
    };
    for source in files {
        let (key, path) = match source.matches('=').count() {
            0 => (
                Path::new(source)
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default(),
                source.clone(),
            ),
            1 if source.starts_with('=') => {
                bail!("key name for file path {} missing", &source[1..])
            }
            1 if source.ends_with('=') => {
                bail!(
                    "file path for key name {} missing",
                    &source[..source.len() - 1]
                )
            }
            1 => {
                let (k, p) = source.split_once('=').unwrap_or_default();
                (k.to_string(), p.to_string())
            }
            _ => bail!("key names or file paths cannot contain '='"),
        };
        let metadata =
            std::fs::metadata(&path).map_err(|e| anyhow!("error reading {path}: {e}"))?;
        if metadata.is_dir() {
            if source.contains('=') {
                bail!("cannot give a key name for a directory path");
            }
            let mut entries: Vec<_> = std::fs::read_dir(&path)
                .map_err(|e| anyhow!("error listing files in {path}: {e}"))?
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .collect();
            entries.sort_by_key(|e| e.file_name());
            for entry in entries {
                let text = std::fs::read_to_string(entry.path())
                    .map_err(|e| anyhow!("error reading {}: {e}", entry.path().display()))?;
                add(entry.file_name().to_string_lossy().to_string(), text)?;
            }
        } else {
            let text =
                std::fs::read_to_string(&path).map_err(|e| anyhow!("error reading {path}: {e}"))?;
            add(key, text)?;
        }
    }
    for literal in literals {
        match literal.split_once('=') {
            Some((key, value)) if !key.is_empty() => add(key.to_string(), value.to_string())?,
            _ => bail!("invalid literal source {literal}, expected key=value"),
        }
    }
    let mut object = json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": name}});
    if !data.is_empty() {
        object["data"] = json!(data);
    }
    Ok(object)
}

pub fn build_namespace(name: &str) -> Value {
    json!({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": name}, "spec": {}, "status": {}})
}

/// `--tcp=80:8080` into a Service port named `80-8080`.
fn service_port(tcp: &str, node_port: Option<i64>) -> anyhow::Result<Value> {
    let (port, target) = match tcp.split_once(':') {
        Some((p, t)) => (p, Some(t)),
        None => (tcp, None),
    };
    let port: i64 = port
        .parse()
        .map_err(|_| anyhow!("strconv.Atoi: parsing {port:?}: invalid syntax"))?;
    let target = match target {
        None => json!(port),
        Some(t) => t
            .parse::<i64>()
            .map(|n| json!(n))
            .unwrap_or_else(|_| json!(t)),
    };
    let mut entry = Map::new();
    entry.insert("name".into(), json!(tcp.replace(':', "-")));
    entry.insert("protocol".into(), json!("TCP"));
    entry.insert("port".into(), json!(port));
    entry.insert("targetPort".into(), target);
    if let Some(n) = node_port.filter(|n| *n > 0) {
        entry.insert("nodePort".into(), json!(n));
    }
    Ok(Value::Object(entry))
}

pub fn build_service(
    name: &str,
    service_type: &str,
    tcp: &[String],
    node_port: Option<i64>,
    cluster_ip: Option<&str>,
) -> anyhow::Result<Value> {
    if tcp.is_empty() && cluster_ip != Some("None") {
        bail!("at least one tcp port specifier must be provided");
    }
    let ports = tcp
        .iter()
        .map(|t| service_port(t, node_port))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let labels = json!({"app": name});
    let mut spec = json!({"selector": labels, "type": service_type});
    if !ports.is_empty() {
        spec["ports"] = json!(ports);
    }
    if let Some(ip) = cluster_ip {
        spec["clusterIP"] = json!(ip);
    }
    Ok(json!({
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
        "status": {"loadBalancer": {}},
    }))
}

pub async fn run(client: &Client, args: CreateArgs) -> anyhow::Result<()> {
    let (object, common) = match args.what {
        CreateCommand::Deployment {
            name,
            image,
            replicas,
            port,
            common,
        } => (build_deployment(&name, &image, replicas, port), common),
        CreateCommand::Configmap {
            name,
            from_literal,
            from_file,
            common,
        } => (build_configmap(&name, &from_literal, &from_file)?, common),
        CreateCommand::Namespace { name, common } => (build_namespace(&name), common),
        CreateCommand::Service { kind } => match kind {
            ServiceKind::Clusterip {
                name,
                tcp,
                clusterip,
                common,
            } => (
                build_service(&name, "ClusterIP", &tcp, None, clusterip.as_deref())?,
                common,
            ),
            ServiceKind::Nodeport {
                name,
                tcp,
                node_port,
                common,
            } => (
                build_service(&name, "NodePort", &tcp, node_port, None)?,
                common,
            ),
        },
    };
    create(client, object, &common).await
}

async fn create(client: &Client, mut object: Value, common: &CreateCommon) -> anyhow::Result<()> {
    let format = OutputFormat::parse(common.output.as_deref())?;
    let dry_run = match common.dry_run.as_str() {
        "none" => false,
        "client" => true,
        other => bail!("Invalid dry-run value ({other}). Must be \"none\" or \"client\"."),
    };
    let api_version = object["apiVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let kind = object["kind"].as_str().unwrap_or_default().to_string();
    let resource = api::resources::by_kind(&api_version, &kind)
        .ok_or_else(|| anyhow!("no resource for {api_version} {kind}"))?;
    if resource.namespaced && client.namespace_explicit {
        // kubectl writes the namespace into the object only when -n was given.
        object["metadata"]["namespace"] = json!(client.namespace);
    }
    if dry_run {
        print!("{}", output::render_built(format, &object, "created"));
        return Ok(());
    }
    let namespace = resource.namespaced.then_some(client.namespace.as_str());
    let created = client
        .create(
            &resource.collection_path(namespace),
            &[
                ("fieldManager", "kubectl-create".to_string()),
                ("fieldValidation", "Strict".to_string()),
            ],
            &object,
        )
        .await?;
    match format {
        OutputFormat::Table | OutputFormat::Wide => {
            println!("{}", output::action_line(&object, "created", false))
        }
        _ => print!("{}", output::render_objects(format, vec![created], true)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::to_yaml;

    #[test]
    fn container_names_come_from_the_image() {
        assert_eq!(container_name("nginx:alpine"), "nginx");
        assert_eq!(container_name("registry.k8s.io/pause:3.9"), "pause");
        assert_eq!(container_name("busybox@sha256:abc"), "busybox");
    }

    #[test]
    fn deployment_matches_kubectl() {
        let deploy = build_deployment("ngx-dep", &["nginx:alpine".into()], 2, Some(80));
        // kubectl 1.35.2: create deployment ngx-dep --image=nginx:alpine --replicas=2 --port=80 --dry-run=client -o yaml
        assert_eq!(
            to_yaml(&deploy),
            "apiVersion: apps/v1
kind: Deployment
metadata:
  labels:
    app: ngx-dep
  name: ngx-dep
spec:
  replicas: 2
  selector:
    matchLabels:
      app: ngx-dep
  strategy: {}
  template:
    metadata:
      labels:
        app: ngx-dep
    spec:
      containers:
      - image: nginx:alpine
        name: nginx
        ports:
        - containerPort: 80
        resources: {}
status: {}
"
        );
    }

    #[test]
    fn configmap_from_literals_and_file_matches_kubectl() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ngx.conf");
        std::fs::write(&file, "server {\n  listen 80;\n}\n").unwrap();
        let cm = build_configmap(
            "c",
            &["a=b".into(), "x=1".into()],
            &[file.display().to_string()],
        )
        .unwrap();
        assert_eq!(
            to_yaml(&cm),
            "apiVersion: v1\ndata:\n  a: b\n  ngx.conf: |\n    server {\n      listen 80;\n    }\n  x: \"1\"\nkind: ConfigMap\nmetadata:\n  name: c\n"
        );
        let err = build_configmap("c", &["a=1".into(), "a=2".into()], &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot add key \"a\", another key by that name already exists in Data for ConfigMap \"c\""
        );
        let err = build_configmap("c", &["novalue".into()], &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid literal source novalue, expected key=value"
        );
    }

    #[test]
    fn services_match_kubectl() {
        let svc = build_service("ns1", "NodePort", &["80:8080".into()], Some(30080), None).unwrap();
        // kubectl 1.35.2: create service nodeport ns1 --tcp=80:8080 --node-port=30080 --dry-run=client -o yaml
        assert_eq!(
            to_yaml(&svc),
            "apiVersion: v1
kind: Service
metadata:
  labels:
    app: ns1
  name: ns1
spec:
  ports:
  - name: 80-8080
    nodePort: 30080
    port: 80
    protocol: TCP
    targetPort: 8080
  selector:
    app: ns1
  type: NodePort
status:
  loadBalancer: {}
"
        );
        let svc = build_service("s1", "ClusterIP", &["443".into()], None, None).unwrap();
        assert_eq!(
            svc["spec"]["ports"],
            json!([{"name": "443", "port": 443, "protocol": "TCP", "targetPort": 443}])
        );
        assert!(to_yaml(&svc).contains("  - name: \"443\"\n"));
    }

    #[test]
    fn namespace_matches_kubectl() {
        assert_eq!(
            to_yaml(&build_namespace("foo")),
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: foo\nspec: {}\nstatus: {}\n"
        );
    }
}
