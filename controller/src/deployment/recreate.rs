//! `Recreate` (upstream's `recreate.go`): every old ReplicaSet to 0, wait
//! until their Pods are gone, then the new one up.

use super::*;

impl Rollout<'_> {
    pub(super) async fn rollout_recreate(
        &mut self,
        mut rss: Vec<ReplicaSet>,
        new_rs: Option<ReplicaSet>,
        old: Vec<ReplicaSet>,
    ) -> Result<Action> {
        let all = with_new(&old, new_rs.as_ref());
        let mut scaled_down = false;
        for rs in active(&old) {
            scaled_down |= self.scale_replica_set_if_needed(&rs, 0).await?.0;
        }
        if scaled_down || old_pods_running(&old) {
            return self.sync_rollout_status(&all, new_rs.as_ref()).await;
        }
        let (new_rs, old, all) = match new_rs {
            Some(rs) => (rs, old, all),
            None => {
                let (new_rs, old) = self.replica_sets_and_sync_revision(&mut rss, true).await?;
                let new_rs = new_rs.ok_or_else(|| {
                    Error::invalid(
                        format!("deployment {}/{}", self.namespace, self.name),
                        "no new replica set after creating it",
                    )
                })?;
                let all = with_new(&old, Some(&new_rs));
                (new_rs, old, all)
            }
        };
        self.scale_replica_set_if_needed(&new_rs, self.replicas())
            .await?;
        if deployment_complete(&self.d, &self.status()) {
            self.cleanup_old_replica_sets(&old).await?;
        }
        self.sync_rollout_status(&all, Some(&new_rs)).await
    }

    // -- history -------------------------------------------------------------
}

/// Whether Pods of old ReplicaSets may still run (`oldPodsRunning`), told
/// by their status: Pods counted, Pods still terminating, or a status not
/// yet written for the latest spec. When the last terminating Pod is gone
/// the ReplicaSet's status changes, which wakes this Deployment again.
pub(super) fn old_pods_running(old: &[ReplicaSet]) -> bool {
    old.iter().any(|rs| {
        let status = rs.status.clone().unwrap_or_default();
        status.replicas > 0
            || status.terminating_replicas.unwrap_or(0) > 0
            || status.observed_generation.unwrap_or(0) < rs.metadata.generation.unwrap_or(0)
    })
}
