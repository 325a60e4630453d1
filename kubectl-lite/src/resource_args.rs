//! How kubectl reads `TYPE NAME...`, `TYPE/NAME...` and `TYPE1,TYPE2`.
//!
//! Most commands name their objects the same few ways: `get svc`,
//! `get svc ngx-svc other`, `get svc/ngx-svc deploy/ngx-dep`,
//! `get svc,deploy` and `get all`. The type may be a plural, a singular, a
//! short name or a kind (`services`, `service`, `svc`, `Service`), resolved
//! through the resource table in `api::resources`. This module turns the
//! arguments into a list of (resource, names) pairs, in the order given.

use anyhow::bail;

use api::resources::{self, ResourceType};

/// One resource type and the names asked for (none means "all of them").
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceRef {
    pub resource: &'static ResourceType,
    pub names: Vec<String>,
}

/// The order `kubectl get all` prints the members of the `all` category.
const ALL_ORDER: &[&str] = &[
    "pods",
    "replicationcontrollers",
    "services",
    "daemonsets",
    "deployments",
    "replicasets",
    "statefulsets",
    "horizontalpodautoscalers",
    "cronjobs",
    "jobs",
];

/// Resolves a resource type name, failing like kubectl does for unknown
/// ones.
pub fn resolve_type(name: &str) -> anyhow::Result<&'static ResourceType> {
    match resources::lookup(name) {
        Some(resource) => Ok(resource),
        None => bail!("the server doesn't have a resource type \"{name}\""),
    }
}

/// Expands `svc,deploy` or `all` into resource types.
pub fn resolve_types(list: &str) -> anyhow::Result<Vec<&'static ResourceType>> {
    let mut types = Vec::new();
    for name in list.split(',').filter(|n| !n.is_empty()) {
        if name == "all" {
            let mut members: Vec<&'static ResourceType> = resources::in_category("all").collect();
            members.sort_by_key(|r| {
                ALL_ORDER
                    .iter()
                    .position(|p| *p == r.plural)
                    .unwrap_or(ALL_ORDER.len())
            });
            types.extend(members);
        } else {
            types.push(resolve_type(name)?);
        }
    }
    Ok(types)
}

/// Parses the arguments after the verb.
pub fn parse(args: &[String]) -> anyhow::Result<Vec<ResourceRef>> {
    let Some(first) = args.first() else {
        return Ok(Vec::new());
    };
    if args.iter().any(|a| a.contains('/')) {
        if !args.iter().all(|a| a.contains('/')) {
            bail!(
                "there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'kubectl get resource/<resource_name>' instead of 'kubectl get resource resource/<resource_name>'"
            );
        }
        let mut refs: Vec<ResourceRef> = Vec::new();
        for arg in args {
            let (kind, name) = arg.split_once('/').unwrap_or((arg, ""));
            if name.is_empty() {
                bail!("arguments in resource/name form must have a single resource and name");
            }
            let resource = resolve_type(kind)?;
            // Consecutive names of one type are fetched as one group.
            match refs.last_mut() {
                Some(last) if last.resource == resource => last.names.push(name.to_string()),
                _ => refs.push(ResourceRef {
                    resource,
                    names: vec![name.to_string()],
                }),
            }
        }
        return Ok(refs);
    }
    let names: Vec<String> = args[1..].to_vec();
    Ok(resolve_types(first)?
        .into_iter()
        .map(|resource| ResourceRef {
            resource,
            names: names.clone(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn type_then_names() {
        let refs = parse(&args(&["svc", "a", "b"])).unwrap();
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].resource.plural, "services");
        assert_eq!(refs[0].names, vec!["a", "b"]);
    }

    #[test]
    fn several_types_share_the_names() {
        let refs = parse(&args(&["svc,deploy"])).unwrap();
        let plurals: Vec<&str> = refs.iter().map(|r| r.resource.plural).collect();
        assert_eq!(plurals, vec!["services", "deployments"]);
        assert!(refs.iter().all(|r| r.names.is_empty()));
    }

    #[test]
    fn slash_form_groups_by_type() {
        let refs = parse(&args(&["svc/a", "svc/b", "deploy/c"])).unwrap();
        assert_eq!(refs.len(), 2);
        assert_eq!(refs[0].names, vec!["a", "b"]);
        assert_eq!(refs[1].resource.kind, "Deployment");
    }

    #[test]
    fn mixing_forms_is_refused() {
        let err = parse(&args(&["svc", "deploy/c"])).unwrap_err();
        assert!(err.to_string().starts_with("there is no need to specify"));
    }

    #[test]
    fn unknown_type_is_named() {
        let err = parse(&args(&["widgets"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the server doesn't have a resource type \"widgets\""
        );
    }

    #[test]
    fn all_expands_in_kubectl_order() {
        let plurals: Vec<&str> = resolve_types("all")
            .unwrap()
            .iter()
            .map(|r| r.plural)
            .collect();
        assert_eq!(
            plurals,
            vec![
                "pods",
                "services",
                "daemonsets",
                "deployments",
                "replicasets",
                "statefulsets",
                "cronjobs",
                "jobs"
            ]
        );
    }
}
