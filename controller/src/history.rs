//! # ControllerRevisions: the template versions of a StatefulSet or DaemonSet
//!
//! A Deployment keeps its history in ReplicaSets. A StatefulSet or a
//! DaemonSet has no object in between, so each version of its Pod template
//! is stored as a `ControllerRevision` (upstream's `pkg/controller/history`):
//!
//! - its **name** is the owner's name and a hash of the template
//!   (`web-7c5b9f4d8`), which is also what each Pod's
//!   `controller-revision-hash` label says it was made from;
//! - its **data** is the strategic merge patch that puts the template back,
//!   `{"spec":{"template":{..., "$patch":"replace"}}}` - `kubectl rollout
//!   undo` sends exactly that to the owner;
//! - its **revision** is a number that grows with each new version; going
//!   back to an older template gives that revision the next number rather
//!   than making a copy, so `kubectl rollout history` lists each template
//!   once, in the order it was last used.
//!
//! Old revisions beyond `revisionHistoryLimit` are deleted, except those a
//! Pod still runs.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{json, Value};

use crate::Result;

/// The data of a revision: the patch that restores `template`.
pub fn template_patch(template: &PodTemplateSpec) -> Value {
    let mut template = serde_json::to_value(template).expect("a template serializes");
    template["$patch"] = json!("replace");
    json!({ "spec": { "template": template } })
}

/// The template a revision restores.
pub fn template_of(revision: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut template = revision.data.0.pointer("/spec/template")?.clone();
    template.as_object_mut()?.remove("$patch");
    serde_json::from_value(template).ok()
}

/// The revision name for `template` of the owner `owner_name`.
pub fn revision_name(
    owner_name: &str,
    template: &PodTemplateSpec,
    collisions: Option<i32>,
) -> String {
    format!(
        "{owner_name}-{}",
        crate::deployment::pod_template_hash(template, collisions)
    )
}

/// The revisions an owner (by uid) has, oldest first.
pub async fn list(
    api: &Api<ControllerRevision>,
    selector: &str,
    owner_uid: &str,
) -> Result<Vec<ControllerRevision>> {
    let mut revisions: Vec<ControllerRevision> = api
        .list(&ListParams::default().labels(selector))
        .await?
        .items
        .into_iter()
        .filter(|r| {
            crate::ownership::controller_of(&r.metadata).is_some_and(|o| o.uid == owner_uid)
        })
        .collect();
    revisions.sort_by_key(|r| r.revision);
    Ok(revisions)
}

/// Makes `template` the newest revision: an existing revision of the same
/// template gets the next number (a rollback), otherwise a new one is
/// created. Returns it, and the revisions as they now are.
pub async fn record(
    api: &Api<ControllerRevision>,
    owner: OwnerReference,
    template: &PodTemplateSpec,
    collisions: Option<i32>,
    mut revisions: Vec<ControllerRevision>,
) -> Result<(ControllerRevision, Vec<ControllerRevision>)> {
    let data = template_patch(template);
    let next = revisions.last().map_or(1, |r| r.revision.unwrap_or(0) + 1);
    if let Some(i) = revisions.iter().position(|r| r.data.0 == data) {
        if i + 1 == revisions.len() {
            let newest = revisions[i].clone();
            return Ok((newest, revisions));
        }
        let name = revisions[i].name_any();
        let bumped = api
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "revision": next })),
            )
            .await?;
        revisions[i] = bumped.clone();
        revisions.sort_by_key(|r| r.revision);
        return Ok((bumped, revisions));
    }
    let labels: BTreeMap<String, String> = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let revision = ControllerRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(&owner.name, template, collisions)),
            labels: Some(labels),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        data: RawExtension(data),
        revision: Some(next),
    };
    let created = match api.create(&PostParams::default(), &revision).await {
        Ok(created) => created,
        // Made by an earlier round whose list we did not see: use it.
        Err(kube::Error::Api(s)) if s.code == 409 => api.get(&revision.name_any()).await?,
        Err(e) => return Err(e.into()),
    };
    revisions.push(created.clone());
    Ok((created, revisions))
}

/// Deletes the oldest revisions beyond `limit`, keeping those in `live`
/// (the current and update revisions, those Pods still run).
pub async fn truncate(
    api: &Api<ControllerRevision>,
    revisions: &[ControllerRevision],
    live: &[String],
    limit: i32,
) -> Result<()> {
    let old: Vec<&ControllerRevision> = revisions
        .iter()
        .filter(|r| !live.contains(&r.name_any()))
        .collect();
    let excess = old.len().saturating_sub(limit.max(0) as usize);
    for revision in old.into_iter().take(excess) {
        match api
            .delete(&revision.name_any(), &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};

    fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "nginx".into(),
                    image: Some(image.into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    #[test]
    fn the_data_is_a_patch_that_restores_the_template() {
        let t = template("nginx:1");
        let data = template_patch(&t);
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        let revision = ControllerRevision {
            data: RawExtension(data),
            ..Default::default()
        };
        assert_eq!(template_of(&revision), Some(t));
    }

    #[test]
    fn names_follow_the_template() {
        let a = revision_name("web", &template("nginx:1"), None);
        let b = revision_name("web", &template("nginx:2"), None);
        assert!(a.starts_with("web-"));
        assert_ne!(a, b);
        assert_eq!(a, revision_name("web", &template("nginx:1"), None));
    }
}
