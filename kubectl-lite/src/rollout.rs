//! `kubectl rollout status`: wait for a Deployment to finish rolling out.
//!
//! A Deployment's `status` says how far the controller got: how many
//! replicas run the current template (`updatedReplicas`), how many are
//! available, and which `generation` of the spec it has seen
//! (`observedGeneration`). The rollout is done when the controller has seen
//! the latest spec, every desired replica is updated, no old replica is
//! left and every updated replica is available. `rollout status` watches
//! the Deployment and prints kubectl's progress line at every change.

use std::time::Duration;

use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::client::{Client, JSON};
use crate::resource_args;

#[derive(Debug, Args)]
pub struct RolloutArgs {
    #[command(subcommand)]
    pub command: RolloutCommand,
}

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Show the status of a rollout, waiting until it is done
    Status {
        /// TYPE NAME or TYPE/NAME (deploy/ngx-dep)
        #[arg(required = true)]
        args: Vec<String>,
        /// Keep watching until the rollout is done (false: print once)
        #[arg(short = 'w', long, default_value_t = true, action = clap::ArgAction::Set)]
        watch: bool,
        /// Give up after this long (30s, 5m, 1h; 0 waits forever)
        #[arg(long, default_value = "0s")]
        timeout: String,
    },
}

/// kubectl's `DeploymentStatusViewer`: the line to print and whether the
/// rollout is complete.
pub fn deployment_status(deploy: &Value) -> anyhow::Result<(String, bool)> {
    let name = deploy["metadata"]["name"].as_str().unwrap_or_default();
    let int = |pointer: &str| deploy.pointer(pointer).and_then(Value::as_i64);
    let generation = int("/metadata/generation").unwrap_or(0);
    let observed = int("/status/observedGeneration").unwrap_or(0);
    if generation > observed {
        return Ok((
            "Waiting for deployment spec update to be observed...".to_string(),
            false,
        ));
    }
    let timed_out = deploy["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded");
    if timed_out {
        bail!("deployment {name:?} exceeded its progress deadline");
    }
    let updated = int("/status/updatedReplicas").unwrap_or(0);
    let replicas = int("/status/replicas").unwrap_or(0);
    let available = int("/status/availableReplicas").unwrap_or(0);
    if let Some(desired) = int("/spec/replicas") {
        if updated < desired {
            return Ok((
                format!("Waiting for deployment {name:?} rollout to finish: {updated} out of {desired} new replicas have been updated..."),
                false,
            ));
        }
    }
    if replicas > updated {
        return Ok((
            format!(
                "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...",
                replicas - updated
            ),
            false,
        ));
    }
    if available < updated {
        return Ok((
            format!("Waiting for deployment {name:?} rollout to finish: {available} of {updated} updated replicas are available..."),
            false,
        ));
    }
    Ok((format!("deployment {name:?} successfully rolled out"), true))
}

/// `30s`, `5m`, `1h30m`, `0` (Go duration syntax, whole units).
fn parse_timeout(text: &str) -> anyhow::Result<Option<Duration>> {
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number
            .parse()
            .map_err(|_| anyhow::anyhow!("invalid timeout {text:?}"))?;
        number.clear();
        total += match c {
            's' => n,
            'm' => n * 60,
            'h' => n * 3600,
            _ => bail!("invalid timeout {text:?}"),
        };
    }
    if !number.is_empty() {
        total += number.parse::<u64>()?;
    }
    Ok((total > 0).then(|| Duration::from_secs(total)))
}

pub async fn run(client: &Client, args: RolloutArgs) -> anyhow::Result<()> {
    let RolloutCommand::Status {
        args,
        watch,
        timeout,
    } = args.command;
    let timeout = parse_timeout(&timeout)?;
    let refs = resource_args::parse(&args)?;
    let names: Vec<(&api::resources::ResourceType, &String)> = refs
        .iter()
        .flat_map(|r| r.names.iter().map(move |n| (r.resource, n)))
        .collect();
    let [(resource, name)] = names.as_slice() else {
        bail!("rollout status needs exactly one resource: TYPE NAME or TYPE/NAME");
    };
    if resource.kind != "Deployment" {
        bail!(
            "no status viewer has been implemented for {}",
            resource.kind
        );
    }
    let namespace = Some(client.namespace.as_str());
    // A missing Deployment is an error straight away, as in kubectl.
    client.get_object(resource, namespace, name, JSON).await?;
    let follow = follow(client, resource, namespace, name, watch);
    match timeout {
        None => follow.await,
        Some(limit) => match tokio::time::timeout(limit, follow).await {
            Ok(result) => result,
            Err(_) => bail!("timed out waiting for the condition"),
        },
    }
}

/// List then watch the one Deployment, printing a line per change.
async fn follow(
    client: &Client,
    resource: &api::resources::ResourceType,
    namespace: Option<&str>,
    name: &str,
    watch: bool,
) -> anyhow::Result<()> {
    let collection = resource.collection_path(namespace);
    let selector = ("fieldSelector", format!("metadata.name={name}"));
    let mut last_line = String::new();
    loop {
        let list = client
            .get(&collection, std::slice::from_ref(&selector))
            .await?;
        let Some(deploy) = list["items"].as_array().and_then(|items| items.first()) else {
            bail!("object has been deleted");
        };
        let (message, done) = deployment_status(deploy)?;
        // After a re-list, repeat the line only if something changed.
        if message != last_line {
            println!("{message}");
        }
        if done || !watch {
            return Ok(());
        }
        last_line = message;
        let version = list["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("0")
            .to_string();
        let mut stream = client
            .watch(
                &collection,
                &[selector.clone(), ("resourceVersion", version)],
                JSON,
            )
            .await?;
        while let Some(event) = stream.next().await {
            let event = event?;
            match event.event_type.as_str() {
                "ADDED" | "MODIFIED" => {
                    let (message, done) = deployment_status(&event.object)?;
                    println!("{message}");
                    if done {
                        return Ok(());
                    }
                    last_line = message;
                }
                "DELETED" => bail!("object has been deleted"),
                // An expired resourceVersion (410 Gone) or a bookmark:
                // list again and continue from there.
                _ => break,
            }
        }
        // The server closed the watch: start over from a fresh list,
        // without hammering a server that keeps closing it.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(spec_replicas: i64, status: Value, generation: i64) -> Value {
        json!({"metadata": {"name": "ngx-dep", "generation": generation},
               "spec": {"replicas": spec_replicas}, "status": status})
    }

    #[test]
    fn messages_follow_the_rollout() {
        let waiting = deploy(2, json!({"observedGeneration": 1}), 2);
        assert_eq!(
            deployment_status(&waiting).unwrap(),
            (
                "Waiting for deployment spec update to be observed...".to_string(),
                false
            )
        );
        let updating = deploy(
            2,
            json!({"observedGeneration": 1, "updatedReplicas": 1, "replicas": 1}),
            1,
        );
        assert_eq!(
            deployment_status(&updating).unwrap().0,
            "Waiting for deployment \"ngx-dep\" rollout to finish: 1 out of 2 new replicas have been updated..."
        );
        let old_left = deploy(
            2,
            json!({"observedGeneration": 1, "updatedReplicas": 2, "replicas": 3}),
            1,
        );
        assert_eq!(
            deployment_status(&old_left).unwrap().0,
            "Waiting for deployment \"ngx-dep\" rollout to finish: 1 old replicas are pending termination..."
        );
        let starting = deploy(
            2,
            json!({"observedGeneration": 1, "updatedReplicas": 2, "replicas": 2, "availableReplicas": 1}),
            1,
        );
        assert_eq!(
            deployment_status(&starting).unwrap().0,
            "Waiting for deployment \"ngx-dep\" rollout to finish: 1 of 2 updated replicas are available..."
        );
        let done = deploy(
            2,
            json!({"observedGeneration": 1, "updatedReplicas": 2, "replicas": 2, "availableReplicas": 2}),
            1,
        );
        assert_eq!(
            deployment_status(&done).unwrap(),
            (
                "deployment \"ngx-dep\" successfully rolled out".to_string(),
                true
            )
        );
    }

    #[test]
    fn progress_deadline_is_an_error() {
        let stuck = deploy(
            2,
            json!({"observedGeneration": 1, "conditions": [
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}),
            1,
        );
        assert_eq!(
            deployment_status(&stuck).unwrap_err().to_string(),
            "deployment \"ngx-dep\" exceeded its progress deadline"
        );
    }

    #[test]
    fn timeouts_use_go_duration_units() {
        assert_eq!(parse_timeout("0s").unwrap(), None);
        assert_eq!(parse_timeout("90s").unwrap(), Some(Duration::from_secs(90)));
        assert_eq!(
            parse_timeout("1h30m").unwrap(),
            Some(Duration::from_secs(5400))
        );
        assert!(parse_timeout("5x").is_err());
    }
}
