//! The kubelet's Events: `Pulled`, `Created`, `Started`, `Killing`,
//! `BackOff`, `Unhealthy`, `FailedMount`... the bottom of `kubectl describe
//! pod`, and the first place to look when a Pod does not come up.
//!
//! An Event is a side note: failing to write one is logged, never fatal,
//! and a pod worker never waits for one. Workers hand their Events to a
//! [`Recorder`], whose own task writes them in order.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::PostParams;
use kube::Api;

/// Queues Events for writing; cheap to clone.
#[derive(Debug, Clone)]
pub struct Recorder {
    node_name: String,
    queue: tokio::sync::mpsc::UnboundedSender<Event>,
}

impl Recorder {
    /// A recorder for the kubelet of `node_name`; starts the task that
    /// writes the Events (must be called inside a tokio runtime).
    pub fn new(client: kube::Client, node_name: &str) -> Recorder {
        let (queue, mut events) = tokio::sync::mpsc::unbounded_channel::<Event>();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let namespace = event.metadata.namespace.clone().unwrap_or_default();
                let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
                if let Err(error) = api.create(&PostParams::default(), &event).await {
                    tracing::debug!(%error, reason = ?event.reason, "cannot write an Event");
                }
            }
        });
        Recorder {
            node_name: node_name.to_string(),
            queue,
        }
    }

    /// Queues an Event about `pod`.
    pub fn publish(&self, pod: &Pod, kind: &str, reason: &str, message: &str) {
        let _ = self
            .queue
            .send(event(&self.node_name, pod, kind, reason, message));
    }
}

pub const NORMAL: &str = "Normal";
pub const WARNING: &str = "Warning";

/// An Event about `pod` from the kubelet of `node_name`.
fn event(node_name: &str, pod: &Pod, kind: &str, reason: &str, message: &str) -> Event {
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let now = Time(super::now_seconds());
    Event {
        metadata: ObjectMeta {
            // Upstream names Events `<object>.<unique hex>`.
            name: Some(format!("{name}.{:x}", rand_suffix())),
            namespace: Some(namespace.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(name),
            namespace: Some(namespace.clone()),
            uid: pod.metadata.uid.clone(),
            resource_version: pod.metadata.resource_version.clone(),
            ..Default::default()
        },
        reason: Some(reason.into()),
        message: Some(message.into()),
        type_: Some(kind.into()),
        count: Some(1),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        source: Some(EventSource {
            component: Some("kubelet".into()),
            host: Some(node_name.to_string()),
        }),
        reporting_component: Some("kubelet".into()),
        reporting_instance: Some(node_name.to_string()),
        ..Default::default()
    }
}

/// A unique-enough suffix: nanoseconds since the epoch.
fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}
