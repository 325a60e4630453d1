//! `RollingUpdate` (upstream's `rolling.go`): the new ReplicaSet up while
//! the total stays under `replicas + maxSurge`, old ones down while
//! `replicas - maxUnavailable` Pods stay available - the arithmetic, then
//! the steps.

use super::*;

/// `maxSurge`/`maxUnavailable` as a number of Pods out of `total`
/// (`intstr.GetScaledValueFromIntOrPercent`): `3` is 3, `"25%"` is a
/// quarter of `total`, rounded up or down.
pub fn scaled_value(value: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match value {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let number = s
                .strip_suffix('%')
                .ok_or_else(|| format!("{s:?} is neither a number nor a percentage"))?;
            let percent: i64 = number
                .parse()
                .map_err(|_| format!("{s:?} is not a valid percentage"))?;
            let product = percent * i64::from(total);
            // div_euclid floors; adding 99 first makes it a ceiling.
            let scaled = if round_up {
                (product + 99).div_euclid(100)
            } else {
                product.div_euclid(100)
            };
            i32::try_from(scaled).map_err(|_| format!("{s:?} of {total} is out of range"))
        }
    }
}

/// `(maxSurge, maxUnavailable)` in Pods for `desired` replicas
/// (`ResolveFenceposts`). Surge rounds up and unavailability rounds down,
/// so a rollout of 1 replica with the 25% defaults surges by 1 and keeps
/// the old Pod until the new one is available. Both 0 would never move, so
/// that case allows 1 unavailable.
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> Result<(i32, i32), String> {
    let default = IntOrString::String("25%".into());
    let surge = scaled_value(max_surge.unwrap_or(&default), desired, true)
        .map_err(|e| format!("maxSurge: {e}"))?;
    let unavailable = scaled_value(max_unavailable.unwrap_or(&default), desired, false)
        .map_err(|e| format!("maxUnavailable: {e}"))?;
    if surge == 0 && unavailable == 0 {
        return Ok((0, 1));
    }
    Ok((surge, unavailable))
}

/// A Deployment's `spec.strategy`, resolved to numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Kill every old Pod first, then start the new ones.
    Recreate,
    /// Replace Pods a few at a time.
    RollingUpdate {
        max_surge: i32,
        max_unavailable: i32,
    },
}

impl Strategy {
    /// Reads `spec.strategy` (RollingUpdate with 25%/25% when unset).
    pub fn of(d: &Deployment) -> Result<Strategy, String> {
        let strategy = d.spec.strategy.as_ref();
        if strategy.and_then(|s| s.type_.as_deref()) == Some("Recreate") {
            return Ok(Strategy::Recreate);
        }
        let rolling = strategy.and_then(|s| s.rolling_update.as_ref());
        let (max_surge, max_unavailable) = resolve_fenceposts(
            rolling.and_then(|r| r.max_surge.as_ref()),
            rolling.and_then(|r| r.max_unavailable.as_ref()),
            desired_replicas(d),
        )
        .map_err(|e| format!("spec.strategy.rollingUpdate.{e}"))?;
        Ok(Strategy::RollingUpdate {
            max_surge,
            max_unavailable,
        })
    }

    /// Pods allowed above `replicas` (`MaxSurge`); none for Recreate.
    pub fn max_surge(self) -> i32 {
        match self {
            Strategy::Recreate => 0,
            Strategy::RollingUpdate { max_surge, .. } => max_surge,
        }
    }

    /// Pods allowed to be unavailable (`MaxUnavailable`), never more than
    /// `replicas`; none for Recreate.
    pub fn max_unavailable(self, replicas: i32) -> i32 {
        match self {
            Strategy::RollingUpdate {
                max_unavailable, ..
            } if replicas > 0 => max_unavailable.min(replicas),
            _ => 0,
        }
    }
}

/// How big the new ReplicaSet may be now (`NewRSNewReplicas`): with
/// RollingUpdate, as big as the surge allows given every ReplicaSet's size
/// (`all_replicas`, the new one's included), never above `replicas`; with
/// Recreate, `replicas` straight away (old Pods are gone by then).
pub fn new_replica_set_size(
    strategy: Strategy,
    replicas: i32,
    all_replicas: i32,
    new_rs_replicas: i32,
) -> i32 {
    match strategy {
        Strategy::Recreate => replicas,
        Strategy::RollingUpdate { max_surge, .. } => {
            let max_total = replicas + max_surge;
            if all_replicas >= max_total {
                return new_rs_replicas;
            }
            let scale_up = (max_total - all_replicas).min(replicas - new_rs_replicas);
            new_rs_replicas + scale_up
        }
    }
}

/// How many Pods old ReplicaSets may lose now without going below the
/// minimum available (`reconcileOldReplicaSets`): Pods of the new
/// ReplicaSet that are not available yet count against the budget.
pub fn old_scale_down_budget(
    all_replicas: i32,
    replicas: i32,
    max_unavailable: i32,
    new_rs_unavailable: i32,
) -> i32 {
    let min_available = replicas - max_unavailable;
    all_replicas - min_available - new_rs_unavailable
}

/// The share of a scaling change one ReplicaSet takes (`GetProportion`):
/// its size times the change in the Deployment's maximum size, rounded,
/// and never more than what is left to hand out.
pub fn proportion(
    rs_replicas: i32,
    rs_max_replicas_annotation: Option<i32>,
    deployment_replicas: i32,
    deployment_max_replicas: i32,
    deployment_status_replicas: i32,
    to_add: i32,
    added: i32,
) -> i32 {
    if rs_replicas == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = if deployment_replicas == 0 {
        -rs_replicas
    } else {
        let before = match rs_max_replicas_annotation {
            Some(n) if n != 0 => n,
            _ => deployment_status_replicas,
        };
        if before == 0 {
            rs_replicas
        } else {
            let size =
                f64::from(rs_replicas) * f64::from(deployment_max_replicas) / f64::from(before);
            size.round() as i32 - rs_replicas
        }
    };
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

impl Rollout<'_> {
    pub(super) async fn rollout_rolling(&mut self, mut rss: Vec<ReplicaSet>) -> Result<Action> {
        let (new_rs, old) = self.replica_sets_and_sync_revision(&mut rss, true).await?;
        let new_rs = new_rs.ok_or_else(|| {
            Error::invalid(
                format!("deployment {}/{}", self.namespace, self.name),
                "no new replica set after creating it",
            )
        })?;
        let all = with_new(&old, Some(&new_rs));

        if self.reconcile_new_replica_set(&all, &new_rs).await? {
            return self.sync_rollout_status(&all, Some(&new_rs)).await;
        }
        if self
            .reconcile_old_replica_sets(&all, active(&old), &new_rs)
            .await?
        {
            return self.sync_rollout_status(&all, Some(&new_rs)).await;
        }
        if deployment_complete(&self.d, &self.status()) {
            self.cleanup_old_replica_sets(&old).await?;
        }
        self.sync_rollout_status(&all, Some(&new_rs)).await
    }

    /// Grows the new ReplicaSet as far as maxSurge allows (or shrinks it if
    /// it is above `replicas`).
    pub(super) async fn reconcile_new_replica_set(
        &self,
        all: &[ReplicaSet],
        new_rs: &ReplicaSet,
    ) -> Result<bool> {
        let replicas = self.replicas();
        let current = rs_replicas(new_rs);
        if current == replicas {
            return Ok(false);
        }
        let size = if current > replicas {
            replicas
        } else {
            new_replica_set_size(self.strategy, replicas, sum(all, rs_replicas), current)
        };
        Ok(self.scale_replica_set_if_needed(new_rs, size).await?.0)
    }

    /// Shrinks old ReplicaSets as far as maxUnavailable allows: first their
    /// unavailable Pods (free to remove), then available ones.
    pub(super) async fn reconcile_old_replica_sets(
        &self,
        all: &[ReplicaSet],
        old_active: Vec<ReplicaSet>,
        new_rs: &ReplicaSet,
    ) -> Result<bool> {
        if sum(&old_active, rs_replicas) == 0 {
            return Ok(false);
        }
        let replicas = self.replicas();
        let max_unavailable = self.strategy.max_unavailable(replicas);
        let new_unavailable = rs_replicas(new_rs) - rs_available(new_rs);
        let budget = old_scale_down_budget(
            sum(all, rs_replicas),
            replicas,
            max_unavailable,
            new_unavailable,
        );
        if budget <= 0 {
            return Ok(false);
        }
        let (old_active, cleaned) = self.cleanup_unhealthy_replicas(old_active, budget).await?;
        let all = with_new(&old_active, Some(new_rs));
        let scaled = self.scale_down_old_replica_sets(&all, old_active).await?;
        Ok(cleaned + scaled > 0)
    }

    /// Removes Pods that are not available from old ReplicaSets, oldest
    /// ReplicaSet first, up to `budget` (`cleanupUnhealthyReplicas`).
    pub(super) async fn cleanup_unhealthy_replicas(
        &self,
        mut old: Vec<ReplicaSet>,
        budget: i32,
    ) -> Result<(Vec<ReplicaSet>, i32)> {
        old.sort_by(by_creation);
        let mut total = 0;
        for rs in old.iter_mut() {
            if total >= budget {
                break;
            }
            let size = rs_replicas(rs);
            if size == 0 || size == rs_available(rs) {
                continue;
            }
            let scale_down = (budget - total).min(size - rs_available(rs));
            let (_, updated) = self
                .scale_replica_set_if_needed(rs, size - scale_down)
                .await?;
            *rs = updated;
            total += scale_down;
        }
        Ok((old, total))
    }

    /// Scales old ReplicaSets down while more than the minimum is available
    /// (`scaleDownOldReplicaSetsForRollingUpdate`).
    pub(super) async fn scale_down_old_replica_sets(
        &self,
        all: &[ReplicaSet],
        mut old: Vec<ReplicaSet>,
    ) -> Result<i32> {
        let replicas = self.replicas();
        let min_available = replicas - self.strategy.max_unavailable(replicas);
        let available = sum(all, rs_available);
        if available <= min_available {
            return Ok(0);
        }
        old.sort_by(by_creation);
        let wanted = available - min_available;
        let mut total = 0;
        for rs in &old {
            if total >= wanted {
                break;
            }
            let size = rs_replicas(rs);
            if size == 0 {
                continue;
            }
            let scale_down = size.min(wanted - total);
            self.scale_replica_set_if_needed(rs, size - scale_down)
                .await?;
            total += scale_down;
        }
        Ok(total)
    }

    // -- Recreate ----------------------------------------------------------
}
