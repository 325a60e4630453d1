//! The kubelet's Events: `Pulled`, `Created`, `Started`, `Killing`,
//! `BackOff`, `Unhealthy`, `FailedMount`... the bottom of `kubectl describe
//! pod`, and the first place to look when a Pod does not come up.
//!
//! An Event is a side note: failing to write one is logged, never fatal.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::PostParams;
use kube::Api;

use super::Shared;

pub const NORMAL: &str = "Normal";
pub const WARNING: &str = "Warning";

/// Writes an Event about `pod` from this node's kubelet.
pub async fn publish(shared: &Shared, pod: &Pod, kind: &str, reason: &str, message: &str) {
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let now = Time(super::now_seconds());
    let event = Event {
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
            host: Some(shared.node_name.clone()),
        }),
        reporting_component: Some("kubelet".into()),
        reporting_instance: Some(shared.node_name.clone()),
        ..Default::default()
    };
    let api: Api<Event> = Api::namespaced(shared.client.clone(), &namespace);
    if let Err(error) = api.create(&PostParams::default(), &event).await {
        tracing::debug!(%error, reason, "cannot write an Event");
    }
}

/// A unique-enough suffix: nanoseconds since the epoch.
fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}
