//! `kubectl scale`: change how many Pods a Deployment wants.
//!
//! Scaling does not edit the Deployment itself but its `scale`
//! *subresource* (`.../deployments/ngx-dep/scale`), a small
//! `autoscaling/v1 Scale` object with just `spec.replicas`. The same
//! subresource is what the HorizontalPodAutoscaler writes, so anything that
//! can be scaled is scaled the same way. The Deployment controller then
//! notices the new count and creates or removes Pods; the Service's
//! endpoints follow.

use clap::Args;
use serde_json::json;

use crate::client::{Client, ErrorList, PatchType};
use crate::output;
use crate::resource_args;

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// TYPE NAME or TYPE/NAME (deploy/ngx-dep)
    #[arg(required = true)]
    pub args: Vec<String>,
    /// The new desired number of replicas
    #[arg(long)]
    pub replicas: Option<i64>,
}

pub async fn run(client: &Client, args: ScaleArgs) -> anyhow::Result<()> {
    let replicas = match args.replicas {
        None => anyhow::bail!("required flag(s) \"replicas\" not set"),
        Some(n) if n >= 0 => n,
        Some(_) => anyhow::bail!(
            "The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0"
        ),
    };
    let refs = resource_args::parse(&args.args)?;
    if refs.iter().all(|r| r.names.is_empty()) {
        anyhow::bail!("resource(s) were provided, but no name was specified");
    }
    let patch = json!({"spec": {"replicas": replicas}});
    let mut errors = Vec::new();
    for r in &refs {
        let namespace = Some(client.namespace.as_str());
        for name in &r.names {
            let path = r.resource.object_path(namespace, name);
            // Read the object first, like kubectl: a missing Deployment is
            // reported as `deployments.apps "x" not found`.
            let object = match client
                .get_object(r.resource, namespace, name, crate::client::JSON)
                .await
            {
                Ok(object) => object,
                Err(e) => {
                    errors.push(e.into());
                    continue;
                }
            };
            if r.resource.subresource("scale").is_none() {
                errors.push(anyhow::anyhow!(
                    "cannot scale {}: it has no scale subresource",
                    r.resource
                ));
                continue;
            }
            match client
                .patch(&format!("{path}/scale"), PatchType::Merge, &[], &patch)
                .await
            {
                Ok(_) => {
                    let mut shown = object;
                    if shown.get("kind").is_none() {
                        shown["kind"] = json!(r.resource.kind);
                        shown["apiVersion"] = json!(r.resource.api_version());
                    }
                    println!("{}", output::action_line(&shown, "scaled", false));
                }
                Err(e) => errors.push(e.into()),
            }
        }
    }
    ErrorList(errors).into_result()
}
