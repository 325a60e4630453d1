//! `kubectl api-resources`: what this API server serves.
//!
//! A Kubernetes API server describes itself through *discovery*:
//! `GET /api/v1` lists the core resources (pods, services, ...), `GET /apis`
//! lists the API groups (`apps`, `discovery.k8s.io`, ...) with their
//! preferred version, and `GET /apis/{group}/{version}` lists each group's
//! resources with their kind, short names, verbs and whether they live in a
//! namespace. kubectl uses this to turn `svc` into
//! `/api/v1/namespaces/default/services`; `api-resources` prints it.

use clap::Args;
use serde_json::Value;

use crate::client::{Client, ErrorList};
use crate::tabwriter::TabWriter;

#[derive(Debug, Args)]
pub struct ApiResourcesArgs {
    /// Output format: wide or name
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Only resources that are (true) or are not (false) namespaced
    #[arg(long)]
    pub namespaced: Option<bool>,
    /// Only resources of this API group ("" for the core group)
    #[arg(long)]
    pub api_group: Option<String>,
    /// Don't print headers
    #[arg(long)]
    pub no_headers: bool,
}

/// One row of `api-resources`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiResource {
    pub name: String,
    pub short_names: Vec<String>,
    pub group: String,
    pub version: String,
    pub namespaced: bool,
    pub kind: String,
    pub verbs: Vec<String>,
    pub categories: Vec<String>,
}

impl ApiResource {
    fn group_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// Reads one `APIResourceList`, leaving out subresources (`pods/log`) and
/// resources without verbs, as kubectl does.
pub fn resources_of(list: &Value, group: &str, version: &str) -> Vec<ApiResource> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    list["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| {
            let name = r["name"].as_str().unwrap_or_default();
            !name.contains('/') && !strings(&r["verbs"]).is_empty()
        })
        .map(|r| ApiResource {
            name: r["name"].as_str().unwrap_or_default().to_string(),
            short_names: strings(&r["shortNames"]),
            group: group.to_string(),
            version: version.to_string(),
            namespaced: r["namespaced"].as_bool().unwrap_or_default(),
            kind: r["kind"].as_str().unwrap_or_default().to_string(),
            verbs: strings(&r["verbs"]),
            categories: strings(&r["categories"]),
        })
        .collect()
}

/// Asks the server for everything it serves, in each group's preferred
/// version.
pub async fn discover(client: &Client) -> anyhow::Result<Vec<ApiResource>> {
    let mut resources = Vec::new();
    let mut errors = Vec::new();
    let core = client.get("/api/v1", &[]).await?;
    resources.extend(resources_of(&core, "", "v1"));
    let groups = client.get("/apis", &[]).await?;
    for group in groups["groups"].as_array().into_iter().flatten() {
        let name = group["name"].as_str().unwrap_or_default();
        let version = group["preferredVersion"]["version"]
            .as_str()
            .or_else(|| group["versions"][0]["version"].as_str())
            .unwrap_or_default();
        match client.get(&format!("/apis/{name}/{version}"), &[]).await {
            Ok(list) => resources.extend(resources_of(&list, name, version)),
            Err(e) => errors.push(anyhow::anyhow!(
                "unable to retrieve the complete list of server APIs: {name}/{version}: {e}"
            )),
        }
    }
    ErrorList(errors).into_result()?;
    Ok(resources)
}

/// The `api-resources` table: sorted by group, then name.
pub fn render(mut resources: Vec<ApiResource>, wide: bool, no_headers: bool) -> String {
    resources.sort_by(|a, b| a.group.cmp(&b.group).then_with(|| a.name.cmp(&b.name)));
    let mut text = String::new();
    if !no_headers {
        text.push_str("NAME\tSHORTNAMES\tAPIVERSION\tNAMESPACED\tKIND");
        if wide {
            text.push_str("\tVERBS\tCATEGORIES");
        }
        text.push('\n');
    }
    for r in &resources {
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}",
            r.name,
            r.short_names.join(","),
            r.group_version(),
            r.namespaced,
            r.kind
        ));
        if wide {
            text.push_str(&format!(
                "\t{}\t{}",
                r.verbs.join(","),
                r.categories.join(",")
            ));
        }
        text.push('\n');
    }
    TabWriter::table().align(&text)
}

pub async fn run(client: &Client, args: ApiResourcesArgs) -> anyhow::Result<()> {
    let mut resources = discover(client).await?;
    if let Some(namespaced) = args.namespaced {
        resources.retain(|r| r.namespaced == namespaced);
    }
    if let Some(group) = &args.api_group {
        resources.retain(|r| &r.group == group);
    }
    match args.output.as_deref() {
        None | Some("") => print!("{}", render(resources, false, args.no_headers)),
        Some("wide") => print!("{}", render(resources, true, args.no_headers)),
        Some("name") => {
            resources.sort_by(|a, b| a.group.cmp(&b.group).then_with(|| a.name.cmp(&b.name)));
            for r in resources {
                if r.group.is_empty() {
                    println!("{}", r.name);
                } else {
                    println!("{}.{}", r.name, r.group);
                }
            }
        }
        Some(other) => anyhow::bail!(
            "--output {other} is not available in kubectl api-resources; allowed values: wide, name"
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_matches_kubectl_layout() {
        let core = json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
            {"name": "services", "singularName": "service", "namespaced": true, "kind": "Service",
             "verbs": ["create", "get", "list"], "shortNames": ["svc"], "categories": ["all"]},
            {"name": "services/status", "namespaced": true, "kind": "Service", "verbs": ["get"]},
            {"name": "namespaces", "namespaced": false, "kind": "Namespace", "verbs": ["get"], "shortNames": ["ns"]},
            {"name": "bindings", "namespaced": true, "kind": "Binding", "verbs": ["create"]}
        ]});
        let apps = json!({"resources": [
            {"name": "deployments", "namespaced": true, "kind": "Deployment", "verbs": ["get"], "shortNames": ["deploy"]}
        ]});
        let mut resources = resources_of(&core, "", "v1");
        resources.extend(resources_of(&apps, "apps", "v1"));
        assert_eq!(
            render(resources.clone(), false, false),
            "NAME          SHORTNAMES   APIVERSION   NAMESPACED   KIND\n\
             bindings                   v1           true         Binding\n\
             namespaces    ns           v1           false        Namespace\n\
             services      svc          v1           true         Service\n\
             deployments   deploy       apps/v1      true         Deployment\n"
        );
        let wide = render(resources, true, true);
        assert!(wide.starts_with("bindings "));
        assert!(
            wide.contains("Service      create,get,list   all\n"),
            "{wide}"
        );
    }
}
