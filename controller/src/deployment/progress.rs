//! Status and conditions (upstream's `progress.go` and
//! `SetDeploymentCondition`): `Available`, `Progressing`, and the progress
//! deadline.

use super::*;

pub(super) fn get_condition<'a>(
    status: &'a DeploymentStatus,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_.as_deref() == Some(type_))
}

/// Kubernetes times are whole seconds on the wire; comparing with what
/// comes back is easier if ours are too.
pub(super) fn now_seconds() -> Timestamp {
    Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_else(|_| Timestamp::now())
}

pub(super) fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
) -> DeploymentCondition {
    let now = Time(now_seconds());
    DeploymentCondition {
        type_: Some(type_.into()),
        status: Some(status.into()),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

/// Sets a condition, keeping the existing one if status and reason are
/// unchanged, and its transition time if only the reason changed.
pub(super) fn set_condition(status: &mut DeploymentStatus, mut condition: DeploymentCondition) {
    if let Some(current) = get_condition(status, condition.type_.as_deref().unwrap_or_default()) {
        if current.status == condition.status && current.reason == condition.reason {
            return;
        }
        if current.status == condition.status {
            condition.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(status, condition.type_.as_deref().unwrap_or_default());
    status
        .conditions
        .get_or_insert_with(Vec::new)
        .push(condition);
}

pub(super) fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_.as_deref() != Some(type_));
    }
}

impl Rollout<'_> {
    /// The counts and the Available condition (`calculateStatus`).
    pub(super) fn calculate_status(
        &self,
        all: &[ReplicaSet],
        new_rs: Option<&ReplicaSet>,
    ) -> DeploymentStatus {
        let available = sum(all, rs_available);
        let total = sum(all, rs_replicas);
        // Zero counts are left out, as upstream's `omitempty` does.
        let count = |n: i32| (n != 0).then_some(n);
        let terminating = all
            .iter()
            .map(|rs| rs.status.as_ref().and_then(|s| s.terminating_replicas))
            .sum::<Option<i32>>();
        let mut status = DeploymentStatus {
            observed_generation: self.d.metadata.generation,
            replicas: count(sum(all, rs_status_replicas)),
            updated_replicas: count(new_rs.map_or(0, rs_status_replicas)),
            ready_replicas: count(sum(all, rs_ready)),
            available_replicas: count(available),
            unavailable_replicas: count((total - available).max(0)),
            terminating_replicas: terminating,
            collision_count: self.d.status.as_ref().and_then(|s| s.collision_count),
            conditions: self.d.status.as_ref().and_then(|s| s.conditions.clone()),
        };
        let replicas = self.replicas();
        if available >= replicas - self.strategy.max_unavailable(replicas) {
            set_condition(
                &mut status,
                new_condition(
                    cond::AVAILABLE,
                    "True",
                    cond::MINIMUM_REPLICAS_AVAILABLE,
                    "Deployment has minimum availability.".into(),
                ),
            );
        } else {
            set_condition(
                &mut status,
                new_condition(
                    cond::AVAILABLE,
                    "False",
                    cond::MINIMUM_REPLICAS_UNAVAILABLE,
                    "Deployment does not have minimum availability.".into(),
                ),
            );
        }
        status
    }

    /// Status plus the Progressing condition (`syncRolloutStatus`); asks to
    /// be woken when the progress deadline would pass.
    pub(super) async fn sync_rollout_status(
        &mut self,
        all: &[ReplicaSet],
        new_rs: Option<&ReplicaSet>,
    ) -> Result<Action> {
        let mut status = self.calculate_status(all, new_rs);
        let deadline = progress_deadline(&self.d);
        if deadline.is_none() {
            remove_condition(&mut status, cond::PROGRESSING);
        }
        let current = self
            .d
            .status
            .as_ref()
            .and_then(|s| get_condition(s, cond::PROGRESSING))
            .cloned();
        let complete_shown = status.replicas == status.updated_replicas
            && current
                .as_ref()
                .is_some_and(|c| c.reason.as_deref() == Some(cond::NEW_REPLICA_SET_AVAILABLE));
        if deadline.is_some() && !complete_shown {
            let subject = match new_rs {
                Some(rs) => format!("ReplicaSet {:?}", name_of(&rs.metadata)),
                None => format!("Deployment {:?}", self.name),
            };
            if deployment_complete(&self.d, &status) {
                set_condition(
                    &mut status,
                    new_condition(
                        cond::PROGRESSING,
                        "True",
                        cond::NEW_REPLICA_SET_AVAILABLE,
                        format!("{subject} has successfully progressed."),
                    ),
                );
            } else if deployment_progressing(&self.d, &status) {
                // Progress refreshes lastUpdateTime even with the same
                // reason: that is the clock of the progress deadline.
                let mut condition = new_condition(
                    cond::PROGRESSING,
                    "True",
                    cond::REPLICA_SET_UPDATED,
                    format!("{subject} is progressing."),
                );
                if let Some(current) = &current {
                    if current.status.as_deref() == Some("True") {
                        condition.last_transition_time = current.last_transition_time.clone();
                    }
                    remove_condition(&mut status, cond::PROGRESSING);
                }
                set_condition(&mut status, condition);
            } else if deployment_timed_out(&self.d, &status, Timestamp::now()) {
                set_condition(
                    &mut status,
                    new_condition(
                        cond::PROGRESSING,
                        "False",
                        cond::PROGRESS_DEADLINE_EXCEEDED,
                        format!("{subject} has timed out progressing."),
                    ),
                );
            }
        }
        // The ReplicaSets' failures (FailedCreate...) show on the Deployment,
        // the new ReplicaSet's first.
        let failure = new_rs
            .into_iter()
            .chain(all)
            .flat_map(|rs| rs.status.iter().flat_map(|s| s.conditions.iter().flatten()))
            .find(|c| c.type_.as_deref() == Some(cond::REPLICA_FAILURE))
            .map(|c| DeploymentCondition {
                type_: Some(cond::REPLICA_FAILURE.into()),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                last_update_time: c.last_transition_time.clone(),
                last_transition_time: c.last_transition_time.clone(),
            });
        match failure {
            Some(condition) => set_condition(&mut status, condition),
            None => remove_condition(&mut status, cond::REPLICA_FAILURE),
        }

        if self.d.status.as_ref() == Some(&status) {
            return Ok(self.requeue_for_deadline(&status));
        }
        self.write_status(status).await?;
        Ok(Action::await_change())
    }

    /// A rollout that stops moving gets no event; come back when its
    /// deadline passes to mark it ProgressDeadlineExceeded
    /// (`requeueStuckDeployment`).
    pub(super) fn requeue_for_deadline(&self, status: &DeploymentStatus) -> Action {
        let (Some(deadline), Some(current)) = (
            progress_deadline(&self.d),
            get_condition(status, cond::PROGRESSING),
        ) else {
            return Action::await_change();
        };
        if deployment_complete(&self.d, status)
            || current.reason.as_deref() == Some(cond::PROGRESS_DEADLINE_EXCEEDED)
        {
            return Action::await_change();
        }
        let Some(updated) = current.last_update_time.as_ref() else {
            return Action::await_change();
        };
        let due = updated.0 + SignedDuration::from_secs(i64::from(deadline));
        let after = due.duration_since(Timestamp::now());
        let after = Duration::try_from(after).unwrap_or(Duration::ZERO);
        Action::requeue(after.max(Duration::from_secs(1)) + Duration::from_secs(1))
    }
}
