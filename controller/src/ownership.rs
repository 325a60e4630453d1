//! Claiming: which objects a workload controller owns (upstream's
//! `ControllerRefManager`), shared by every loop that makes Pods or
//! ReplicaSets.
//!
//! An object belongs to a controller through an `ownerReference` with
//! `controller: true` (at most one per object). Labels decide what a
//! controller *should* own: its `selector`. The two are kept in step:
//!
//! | the object ...                          | the owner ...                      |
//! |-----------------------------------------|------------------------------------|
//! | is controlled by it and matches         | owns it                            |
//! | is controlled by it, no longer matches  | releases it (removes its reference)|
//! | has no controller and matches           | adopts it (adds its reference)     |
//! | is controlled by another                | leaves it alone                    |
//!
//! An owner being deleted adopts and releases nothing, and only *active*
//! objects (a Pod not finished nor being deleted) are adopted or released:
//! that is how `kubectl label pod P app-` takes a Pod out of its
//! ReplicaSet for debugging, and how a new ReplicaSet picks up Pods left by
//! a deleted one with `--cascade=orphan`.
//!
//! Adopting and releasing are merge patches carrying the object's
//! `resourceVersion`, so they fail (409) rather than overwrite a change
//! the controller has not seen.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::Result;

/// The ownerReference with `controller: true`, if any (`GetControllerOf`).
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// The owner side of a claim: a workload object and its selector.
pub struct Owner {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub name: String,
    pub uid: String,
    pub selector: api::selector::LabelSelector,
    /// The owner is being deleted: it adopts and releases nothing.
    pub deleting: bool,
}

/// What an owner does with one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Controlled by this owner and matching: one of its own.
    Owned,
    /// An orphan that matches: to adopt.
    Adopt,
    /// Controlled by this owner but no longer matching: to release.
    Release,
    /// Someone else's, or nothing to do with it.
    Ignore,
}

impl Owner {
    /// The ownerReference this owner writes into what it creates or adopts.
    pub fn reference(&self) -> OwnerReference {
        OwnerReference {
            api_version: self.api_version.into(),
            kind: self.kind.into(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    fn matches(&self, meta: &ObjectMeta) -> bool {
        let none = std::collections::BTreeMap::new();
        self.selector.matches(meta.labels.as_ref().unwrap_or(&none))
    }

    /// Whether the object is ours or could become ours: the only objects
    /// worth copying out of a cache.
    pub fn may_claim(&self, meta: &ObjectMeta) -> bool {
        match controller_of(meta) {
            Some(owner) => owner.uid == self.uid,
            None => self.matches(meta),
        }
    }

    /// How an object (`active`: not finished nor being deleted) relates to
    /// this owner (the table in the module doc).
    pub fn classify(&self, meta: &ObjectMeta, active: bool) -> Claim {
        let matches = self.matches(meta);
        match controller_of(meta) {
            Some(owner) if owner.uid == self.uid => {
                if matches {
                    Claim::Owned
                } else if !self.deleting && active {
                    Claim::Release
                } else {
                    Claim::Ignore
                }
            }
            Some(_) => Claim::Ignore,
            None if matches && active && !self.deleting => Claim::Adopt,
            None => Claim::Ignore,
        }
    }

    /// This owner's objects among `objects` (inactive ones included),
    /// adopting and releasing on the way; `active` says which objects may
    /// be adopted or released (see the module doc).
    pub async fn claim<K>(
        &self,
        api: &Api<K>,
        objects: Vec<K>,
        active: impl Fn(&K) -> bool,
    ) -> Result<Vec<K>>
    where
        K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + std::fmt::Debug,
    {
        let mut ours = Vec::new();
        for object in objects {
            match self.classify(object.meta(), active(&object)) {
                Claim::Owned => ours.push(object),
                Claim::Ignore => {}
                Claim::Release => self.release(api, &object).await?,
                Claim::Adopt => ours.extend(self.adopt(api, &object).await?),
            }
        }
        Ok(ours)
    }

    /// Adds this owner's reference to `object`; `None` when the object is
    /// gone meanwhile.
    pub async fn adopt<K>(&self, api: &Api<K>, object: &K) -> Result<Option<K>>
    where
        K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + std::fmt::Debug,
    {
        let mut references = object.owner_references().to_vec();
        references.push(self.reference());
        let patch = json!({"metadata": {
            "ownerReferences": references,
            "resourceVersion": object.resource_version(),
        }});
        tracing::info!(owner = %self.name, kind = self.kind, object = %object.name_any(), "adopting");
        match api
            .patch(
                &object.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(adopted) => Ok(Some(adopted)),
            Err(kube::Error::Api(s)) if s.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes this owner's reference from `object` (gone meanwhile: done).
    pub async fn release<K>(&self, api: &Api<K>, object: &K) -> Result<()>
    where
        K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + std::fmt::Debug,
    {
        let references: Vec<&OwnerReference> = object
            .owner_references()
            .iter()
            .filter(|r| r.uid != self.uid)
            .collect();
        let patch = json!({"metadata": {
            "ownerReferences": if references.is_empty() { None } else { Some(references) },
            "resourceVersion": object.resource_version(),
        }});
        tracing::info!(owner = %self.name, kind = self.kind, object = %object.name_any(), "releasing");
        match api
            .patch(
                &object.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
            other => other.map(|_| ()).map_err(Into::into),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(deleting: bool) -> Owner {
        Owner {
            api_version: "apps/v1",
            kind: "ReplicaSet",
            name: "web".into(),
            uid: "u1".into(),
            selector: api::selector::LabelSelector::parse("app=web").unwrap(),
            deleting,
        }
    }

    fn meta(app: &str, controller_uid: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            labels: Some([("app".to_string(), app.to_string())].into()),
            owner_references: controller_uid.map(|uid| {
                vec![OwnerReference {
                    uid: uid.into(),
                    controller: Some(true),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_claim_table() {
        let live = owner(false);
        let cases = [
            // (labels, controller, active) -> claim
            ("web", Some("u1"), true, Claim::Owned),
            ("web", Some("u1"), false, Claim::Owned),
            ("db", Some("u1"), true, Claim::Release),
            ("db", Some("u1"), false, Claim::Ignore),
            ("web", None, true, Claim::Adopt),
            ("web", None, false, Claim::Ignore),
            ("db", None, true, Claim::Ignore),
            ("web", Some("u2"), true, Claim::Ignore),
        ];
        for (app, controller, active, want) in cases {
            assert_eq!(
                live.classify(&meta(app, controller), active),
                want,
                "{app} {controller:?} active={active}"
            );
        }
    }

    #[test]
    fn an_owner_being_deleted_adopts_and_releases_nothing() {
        let dying = owner(true);
        assert_eq!(dying.classify(&meta("web", None), true), Claim::Ignore);
        assert_eq!(dying.classify(&meta("db", Some("u1")), true), Claim::Ignore);
        assert_eq!(dying.classify(&meta("web", Some("u1")), true), Claim::Owned);
    }
}
