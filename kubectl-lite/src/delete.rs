//! `kubectl delete`: remove objects by name, by label, or by manifest.
//!
//! A delete is a `DELETE` on the object's URL with `DeleteOptions` in the
//! body. kubectl asks for `propagationPolicy: Background`: the object goes
//! at once and the garbage collector removes what it owned afterwards
//! (deleting a Deployment removes its ReplicaSets, whose removal removes the
//! Pods). An object may linger after the call (finalizers, graceful Pod
//! shutdown), so kubectl then waits until it is really gone.

use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{json, Value};

use api::resources::ResourceType;

use crate::apply;
use crate::client::{Client, ErrorList};
use crate::resource_args;

/// How long `delete` waits for deleted objects to disappear.
const WAIT_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// TYPE NAME..., TYPE/NAME..., or TYPE with -l or --all
    pub args: Vec<String>,
    /// Delete the objects described in these manifests
    #[arg(short = 'f', long = "filename")]
    pub filenames: Vec<String>,
    /// Selector (label query) to filter on
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Delete every object of the type in the namespace
    #[arg(long)]
    pub all: bool,
    /// Treat "not found" as a successful delete
    #[arg(long)]
    pub ignore_not_found: bool,
    /// Wait for the objects to be gone before returning
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub wait: bool,
    /// What happens to the objects this one owns: "background" (deleted
    /// after it), "foreground" (deleted before it) or "orphan" (kept)
    #[arg(long, default_value = "background", value_parser = ["background", "foreground", "orphan", "true", "false"])]
    pub cascade: String,
    /// Seconds a Pod gets to shut down (default: its own
    /// terminationGracePeriodSeconds); 0 removes it at once
    #[arg(long)]
    pub grace_period: Option<i64>,
}

/// `--cascade` as the `propagationPolicy` of DeleteOptions (kubectl still
/// accepts the old `true`/`false`).
fn propagation_policy(cascade: &str) -> &'static str {
    match cascade {
        "foreground" => "Foreground",
        "orphan" | "false" => "Orphan",
        _ => "Background",
    }
}

/// One object to delete.
struct Doomed {
    resource: &'static ResourceType,
    namespace: Option<String>,
    name: String,
    /// The manifest it came from, for error messages.
    source: String,
}

impl Doomed {
    fn path(&self) -> String {
        self.resource
            .object_path(self.namespace.as_deref(), &self.name)
    }
}

/// `service "ngx-svc" deleted from default namespace`: kubectl 1.35's line.
pub fn deleted_line(resource: &ResourceType, name: &str, namespace: Option<&str>) -> String {
    let kind = resource.kind.to_lowercase();
    let kind = if resource.group.is_empty() {
        kind
    } else {
        format!("{kind}.{}", resource.group)
    };
    match namespace {
        Some(ns) if resource.namespaced => format!("{kind} \"{name}\" deleted from {ns} namespace"),
        _ => format!("{kind} \"{name}\" deleted"),
    }
}

pub async fn run(client: &Client, args: DeleteArgs) -> anyhow::Result<()> {
    let mut errors = Vec::new();
    let mut doomed = Vec::new();
    if !args.filenames.is_empty() {
        if !args.args.is_empty() {
            anyhow::bail!("when paths, URLs, or stdin is provided as input, you may not specify resource arguments as well");
        }
        let (objects, read_errors) = apply::read_manifests(&args.filenames);
        errors.extend(read_errors);
        for object in &objects {
            match apply::resolve_target(client, object) {
                Ok(target) => doomed.push(Doomed {
                    resource: target.resource,
                    namespace: target.namespace,
                    name: target.name,
                    source: object.source.clone(),
                }),
                Err(e) => errors.push(e),
            }
        }
    } else {
        if args.args.is_empty() {
            anyhow::bail!("You must provide one or more resources by argument or filename.\nExample resource specifications include:\n   '-f rsrc.yaml'\n   '--filename=rsrc.json'\n   '<resource> <name>'\n   '<resource>'");
        }
        let refs = resource_args::parse(&args.args)?;
        for r in refs {
            let namespace = r.resource.namespaced.then(|| client.namespace.clone());
            if r.names.is_empty() {
                if !args.all && args.selector.is_none() {
                    anyhow::bail!("resource(s) were provided, but no name was specified");
                }
                let mut query = Vec::new();
                if let Some(selector) = &args.selector {
                    query.push(("labelSelector", selector.clone()));
                }
                let list = client
                    .get(&r.resource.collection_path(namespace.as_deref()), &query)
                    .await?;
                for item in list["items"].as_array().into_iter().flatten() {
                    doomed.push(Doomed {
                        resource: r.resource,
                        namespace: namespace.clone(),
                        name: item["metadata"]["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        source: String::new(),
                    });
                }
            } else {
                for name in r.names {
                    doomed.push(Doomed {
                        resource: r.resource,
                        namespace: namespace.clone(),
                        name,
                        source: String::new(),
                    });
                }
            }
        }
    }

    let mut options = json!({"propagationPolicy": propagation_policy(&args.cascade)});
    if let Some(seconds) = args.grace_period {
        options["gracePeriodSeconds"] = json!(seconds);
    }
    let mut deleted: Vec<(Doomed, String)> = Vec::new();
    let mut found = 0;
    for target in doomed {
        match client.delete(&target.path(), &options).await {
            Ok(answer) => {
                found += 1;
                println!(
                    "{}",
                    deleted_line(target.resource, &target.name, target.namespace.as_deref())
                );
                let uid = deleted_uid(&answer);
                deleted.push((target, uid));
            }
            Err(e) if e.is_not_found() && args.ignore_not_found => {}
            Err(e) => errors.push(e.with_source("deleting", &target.source)),
        }
    }
    if found == 0 && errors.is_empty() {
        println!("No resources found");
    }
    if args.wait {
        for (target, uid) in &deleted {
            if let Err(e) = wait_until_gone(client, target, uid).await {
                errors.push(e);
            }
        }
    }
    ErrorList(errors).into_result()
}

/// The uid of the deleted object, from the object or Status the server
/// answered with: waiting must not mistake a re-created object for the old one.
fn deleted_uid(answer: &Value) -> String {
    answer["metadata"]["uid"]
        .as_str()
        .or_else(|| answer["details"]["uid"].as_str())
        .unwrap_or_default()
        .to_string()
}

async fn wait_until_gone(client: &Client, target: &Doomed, uid: &str) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(50);
    loop {
        match client.get(&target.path(), &[]).await {
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.into()),
            Ok(object) => {
                let current_uid = object["metadata"]["uid"].as_str().unwrap_or_default();
                if !uid.is_empty() && current_uid != uid {
                    return Ok(());
                }
            }
        }
        if start.elapsed() > WAIT_TIMEOUT {
            anyhow::bail!(
                "timed out waiting for the condition on {}/{}",
                target.resource,
                target.name
            );
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::resources::lookup;

    #[test]
    fn deleted_lines_match_kubectl_1_35() {
        assert_eq!(
            deleted_line(lookup("svc").unwrap(), "ngx-svc", Some("default")),
            "service \"ngx-svc\" deleted from default namespace"
        );
        assert_eq!(
            deleted_line(lookup("deploy").unwrap(), "ngx-dep", Some("default")),
            "deployment.apps \"ngx-dep\" deleted from default namespace"
        );
        assert_eq!(
            deleted_line(lookup("ns").unwrap(), "lesson", None),
            "namespace \"lesson\" deleted"
        );
    }

    #[test]
    fn uid_is_read_from_object_or_status() {
        assert_eq!(deleted_uid(&json!({"metadata": {"uid": "u1"}})), "u1");
        assert_eq!(
            deleted_uid(&json!({"kind": "Status", "details": {"uid": "u2"}})),
            "u2"
        );
    }
}
