//! Pod conditions, as controllers report them.
//!
//! A Pod's `status.conditions` (`PodScheduled`, `Ready`, ...) are mostly the
//! kubelet's to write, but two controllers speak there too: the scheduler
//! says why a Pod cannot be placed (`PodScheduled=False`), and the node
//! lifecycle controller marks the Pods of a lost node not `Ready`. Both
//! write one condition through the `status` subresource with a strategic
//! merge patch, which merges the condition list by `type` and leaves the
//! others alone.

use k8s_openapi::api::core::v1::{Pod, PodCondition};
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::Result;

/// The Pod's condition of type `type_`, if it has one.
pub fn condition<'a>(pod: &'a Pod, type_: &str) -> Option<&'a PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// Writes `condition` (a JSON PodCondition) into the Pod's status.
/// Returns false when the Pod no longer exists.
pub async fn set_condition(
    client: &kube::Client,
    pod: &Pod,
    condition: serde_json::Value,
) -> Result<bool> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let patch = json!({"status": {"conditions": [condition]}});
    match pods
        .patch_status(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(&patch),
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(e.into()),
    }
}
