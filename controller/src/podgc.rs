//! The Pod garbage collector's orphan rule: a Pod bound to a Node that no
//! longer exists is deleted (upstream's PodGC `gcOrphaned`).
//!
//! A Node disappears when a worker leaves (`kubeadm-lite reset`, `kubectl
//! delete node`). Its Pods stay bound to it, and no kubelet will ever
//! report on them or confirm they stopped: `kubectl get pods` would show
//! them `Running` forever, and their ReplicaSet would count them. So the
//! collector force-deletes them (grace period 0), after a quarantine of
//! 40 s during which the Node must stay absent (a Node object re-created
//! by its returning agent, or a cache behind, saves them), and the
//! ReplicaSet replaces them on a node that exists.
//!
//! It sweeps every 20 s: a Pod whose node goes away produces no event of
//! its own.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams};
use kube::ResourceExt as _;

use crate::{Context, Result};

/// How long a Pod's node must stay absent before the Pod goes (upstream's
/// `quarantineTime`).
pub const QUARANTINE: Duration = Duration::from_secs(40);
/// How often the collector looks.
const SWEEP_EVERY: Duration = Duration::from_secs(20);

/// A Pod: (namespace, name).
pub type PodKey = (String, String);

/// The collector's memory: when each Pod was first seen bound to a node
/// that did not exist.
#[derive(Debug, Default)]
pub struct Quarantine {
    since: BTreeMap<PodKey, Instant>,
}

impl Quarantine {
    /// One sweep over `pods` (key, node name) against the `nodes` that
    /// exist: the Pods whose quarantine is over. Pods whose node exists
    /// again, or that are gone, leave the quarantine.
    pub fn sweep(
        &mut self,
        pods: &[(PodKey, String)],
        nodes: &BTreeSet<String>,
        now: Instant,
    ) -> Vec<PodKey> {
        let orphans: BTreeSet<&PodKey> = pods
            .iter()
            .filter(|(_, node)| !node.is_empty() && !nodes.contains(node))
            .map(|(key, _)| key)
            .collect();
        self.since.retain(|key, _| orphans.contains(key));
        let mut due = vec![];
        for key in orphans {
            let since = *self.since.entry(key.clone()).or_insert(now);
            if now.duration_since(since) >= QUARANTINE {
                due.push(key.clone());
            }
        }
        due
    }
}

pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let mut quarantine = Quarantine::default();
    loop {
        if let Err(e) = sweep(&ctx, &mut quarantine).await {
            tracing::warn!(error = %e, "pod garbage collection");
        }
        tokio::time::sleep(SWEEP_EVERY).await;
    }
}

async fn sweep(ctx: &Context, quarantine: &mut Quarantine) -> Result<()> {
    let nodes: BTreeSet<String> = Api::<Node>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(|n| n.name_any())
        .collect();
    let pods: Vec<(PodKey, String)> = Api::<Pod>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(|p| {
            let node = p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default();
            ((p.namespace().unwrap_or_default(), p.name_any()), node)
        })
        .collect();
    for (namespace, name) in quarantine.sweep(&pods, &nodes, Instant::now()) {
        let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
        match api
            .delete(&name, &DeleteParams::default().grace_period(0))
            .await
        {
            Ok(_) => {
                tracing::info!(pod = %format!("{namespace}/{name}"), "deleted: its node no longer exists")
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                return Err(crate::Error::api(
                    format!("pod {namespace}/{name}"),
                    "deleting an orphan",
                    e,
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, node: &str) -> (PodKey, String) {
        (("default".into(), name.into()), node.into())
    }

    #[test]
    fn a_pod_goes_only_after_its_node_was_absent_for_the_quarantine() {
        let mut q = Quarantine::default();
        let nodes: BTreeSet<String> = ["kl-master".to_string()].into();
        let pods = [
            pod("a", "kl-worker1"),
            pod("b", "kl-master"),
            pod("pending", ""),
        ];
        let t0 = Instant::now();
        assert!(q.sweep(&pods, &nodes, t0).is_empty());
        assert!(q
            .sweep(&pods, &nodes, t0 + Duration::from_secs(20))
            .is_empty());
        assert_eq!(
            q.sweep(&pods, &nodes, t0 + QUARANTINE),
            [("default".to_string(), "a".to_string())]
        );
    }

    #[test]
    fn a_node_that_comes_back_saves_its_pods() {
        let mut q = Quarantine::default();
        let pods = [pod("a", "kl-worker1")];
        let t0 = Instant::now();
        q.sweep(&pods, &BTreeSet::new(), t0);
        let back: BTreeSet<String> = ["kl-worker1".to_string()].into();
        assert!(q
            .sweep(&pods, &back, t0 + Duration::from_secs(30))
            .is_empty());
        // Gone again: the quarantine starts over.
        assert!(q
            .sweep(&pods, &BTreeSet::new(), t0 + Duration::from_secs(50))
            .is_empty());
        assert_eq!(
            q.sweep(&pods, &BTreeSet::new(), t0 + Duration::from_secs(90))
                .len(),
            1
        );
    }
}
