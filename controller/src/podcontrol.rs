//! Creating and deleting a workload's Pods, with the Events a student reads
//! in `kubectl describe` (upstream's `PodControl`): `SuccessfulCreate
//! Created pod: web-x7k2p`, `FailedCreate Error creating: ...`,
//! `SuccessfulDelete Deleted pod: web-x7k2p`.

use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, ResourceExt};

use crate::events::{EventType, Recorder};
use crate::Result;

/// The Pods of one owner, in its namespace.
pub struct PodControl<'a> {
    pub api: Api<Pod>,
    pub events: &'a Recorder,
    /// Who reports (`daemonset-controller`).
    pub component: &'static str,
    /// The owner the Events are about.
    pub owner: ObjectReference,
}

impl PodControl<'_> {
    /// Creates `pod`, saying so (or why not) in an Event.
    pub async fn create(&self, pod: &Pod) -> Result<Pod> {
        match self.api.create(&PostParams::default(), pod).await {
            Ok(created) => {
                let message = format!("Created pod: {}", created.name_any());
                self.event(EventType::Normal, "SuccessfulCreate", &message)
                    .await;
                Ok(created)
            }
            Err(e) => {
                let message = format!("Error creating: {e}");
                self.event(EventType::Warning, "FailedCreate", &message)
                    .await;
                Err(e.into())
            }
        }
    }

    /// Deletes the Pod `name` (already gone: done), saying so in an Event.
    pub async fn delete(&self, name: &str) -> Result<()> {
        match self.api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {
                let message = format!("Deleted pod: {name}");
                self.event(EventType::Normal, "SuccessfulDelete", &message)
                    .await;
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn event(&self, kind: EventType, reason: &str, message: &str) {
        self.events
            .publish(self.component, &self.owner, kind, reason, message)
            .await;
    }
}
