//! Events: what `kubectl describe` shows at the bottom of a page.
//!
//! An Event is an ordinary object (`v1/Event`) that points at another one
//! (`involvedObject`) and says what happened to it: `Scheduled`,
//! `ScalingReplicaSet`, `FailedScheduling`... Controllers write them as a
//! side note; nothing depends on them, so a failure to write one is logged
//! and otherwise ignored.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::PostParams;
use kube::Api;

/// `Normal` or `Warning`, as `kubectl describe` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Writes Events on behalf of one controller.
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
}

impl Recorder {
    pub fn new(client: kube::Client) -> Recorder {
        Recorder { client }
    }

    /// Records that `reason` happened to `regarding`, reported by
    /// `component` (`deployment-controller`, `default-scheduler`, ...).
    pub async fn publish(
        &self,
        component: &str,
        regarding: &ObjectReference,
        event_type: EventType,
        reason: &str,
        message: &str,
    ) {
        // Events of cluster-scoped objects (Nodes) live in `default`.
        let namespace = regarding
            .namespace
            .clone()
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| "default".into());
        let now = k8s_openapi::jiff::Timestamp::now();
        let name = format!(
            "{}.{:x}",
            regarding.name.as_deref().unwrap_or("unknown"),
            now.as_nanosecond()
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            involved_object: regarding.clone(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            type_: Some(event_type.as_str().into()),
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            source: Some(EventSource {
                component: Some(component.into()),
                host: None,
            }),
            reporting_component: Some(component.into()),
            ..Default::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        if let Err(e) = api.create(&PostParams::default(), &event).await {
            tracing::debug!(reason, error = %e, "could not record event");
        }
    }
}
