//! Finding or making the new ReplicaSet, scaling, and cleaning up old
//! ReplicaSets (upstream's `sync.go`).

use super::*;

impl Rollout<'_> {
    /// Splits `rss` into the new ReplicaSet and the old ones, bringing the
    /// new one's revision and annotations up to date and creating it if
    /// `create` (`getAllReplicaSetsAndSyncRevision`). `rss` is updated with
    /// what we wrote.
    pub(super) async fn replica_sets_and_sync_revision(
        &mut self,
        rss: &mut Vec<ReplicaSet>,
        create: bool,
    ) -> Result<(Option<ReplicaSet>, Vec<ReplicaSet>)> {
        let new_index = find_new_replica_set(&self.d, rss);
        let old: Vec<ReplicaSet> = rss
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != new_index)
            .map(|(_, rs)| rs.clone())
            .collect();
        let new_revision = old.iter().filter_map(revision).max().unwrap_or(0) + 1;

        if let Some(index) = new_index {
            let mut rs = rss[index].clone();
            let annotations_changed = set_new_replica_set_annotations(
                &self.d,
                &mut rs,
                new_revision,
                true,
                self.strategy.max_surge(),
            );
            let min_ready_changed = rs.spec.min_ready_seconds.unwrap_or(0)
                != self.d.spec.min_ready_seconds.unwrap_or(0);
            if annotations_changed || min_ready_changed {
                rs.spec.min_ready_seconds = self.d.spec.min_ready_seconds;
                let updated = self
                    .replicasets()
                    .replace(name_of(&rs.metadata), &PostParams::default(), &rs)
                    .await?;
                rss[index] = updated.clone();
                return Ok((Some(updated), old));
            }
            if let Some(rs_revision) = annotation(&rs.metadata, REVISION_ANNOTATION) {
                self.set_deployment_revision(rs_revision).await?;
            }
            let mut status = self.status();
            if progress_deadline(&self.d).is_some()
                && get_condition(&status, cond::PROGRESSING).is_none()
            {
                let message = format!("Found new replica set {:?}", name_of(&rs.metadata));
                set_condition(
                    &mut status,
                    new_condition(
                        cond::PROGRESSING,
                        "True",
                        cond::FOUND_NEW_REPLICA_SET,
                        message,
                    ),
                );
                self.write_status(status).await?;
            }
            return Ok((Some(rs), old));
        }
        if !create {
            return Ok((None, old));
        }
        let created = self.create_new_replica_set(&old, new_revision).await?;
        rss.push(created.clone());
        Ok((Some(created), old))
    }

    /// Creates `<deployment>-<hash>` for the current template.
    pub(super) async fn create_new_replica_set(
        &mut self,
        old: &[ReplicaSet],
        new_revision: i64,
    ) -> Result<ReplicaSet> {
        let collision_count = self.d.status.as_ref().and_then(|s| s.collision_count);
        let hash = pod_template_hash(&self.d.spec.template, collision_count);
        let mut template = self.d.spec.template.clone();
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
        let mut selector = self.d.spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
        let rs_name = format!("{}-{hash}", self.name);
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(rs_name.clone()),
                namespace: Some(self.namespace.clone()),
                owner_references: Some(vec![self.owner().reference()]),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                ..Default::default()
            },
            spec: ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: self.d.spec.min_ready_seconds,
                selector,
                template: Some(template),
            },
            status: None,
        };
        let all_replicas = sum(old, rs_replicas);
        let size = new_replica_set_size(self.strategy, self.replicas(), all_replicas, 0);
        rs.spec.replicas = Some(size);
        set_new_replica_set_annotations(
            &self.d,
            &mut rs,
            new_revision,
            false,
            self.strategy.max_surge(),
        );

        let (created, already_existed) = match self
            .replicasets()
            .create(&PostParams::default(), &rs)
            .await
        {
            Ok(created) => (created, false),
            Err(kube::Error::Api(s)) if s.is_already_exists() => {
                // Ours from an earlier pass whose answer we missed, or a
                // different template that hashes the same.
                let existing = self.replicasets().get(&rs_name).await?;
                let ours = controller_of(&existing.metadata)
                    .is_some_and(|o| Some(&o.uid) == self.d.metadata.uid.as_ref());
                let same = existing
                    .spec
                    .template
                    .as_ref()
                    .is_some_and(|t| equal_ignoring_hash(t, &self.d.spec.template));
                if !(ours && same) {
                    // A hash collision: count it, so the next pass
                    // hashes differently.
                    let mut status = self.status();
                    status.collision_count = Some(collision_count.unwrap_or(0) + 1);
                    self.write_status(status).await?;
                    return Err(Error::invalid(
                            format!("deployment {}/{}", self.namespace, self.name),
                            format!(
                                "replica set {rs_name:?} exists with another template (hash collision); retrying with collisionCount {}",
                                collision_count.unwrap_or(0) + 1
                            ),
                        ));
                }
                (existing, true)
            }
            Err(e) => {
                let message = format!("Failed to create new replica set {rs_name:?}: {e}");
                if progress_deadline(&self.d).is_some() {
                    let mut status = self.status();
                    set_condition(
                        &mut status,
                        new_condition(
                            cond::PROGRESSING,
                            "False",
                            cond::REPLICA_SET_CREATE_ERROR,
                            message.clone(),
                        ),
                    );
                    // The create error is the one worth reporting.
                    let _ = self.write_status(status).await;
                }
                self.event(EventType::Warning, cond::REPLICA_SET_CREATE_ERROR, &message)
                    .await;
                return Err(e.into());
            }
        };
        if !already_existed && size > 0 {
            let message = format!("Scaled up replica set {rs_name} from 0 to {size}");
            self.event(EventType::Normal, "ScalingReplicaSet", &message)
                .await;
        }
        self.set_deployment_revision(&new_revision.to_string())
            .await?;
        if !already_existed && progress_deadline(&self.d).is_some() {
            let mut status = self.status();
            let message = format!("Created new replica set {rs_name:?}");
            set_condition(
                &mut status,
                new_condition(
                    cond::PROGRESSING,
                    "True",
                    cond::NEW_REPLICA_SET_CREATED,
                    message,
                ),
            );
            self.write_status(status).await?;
        }
        Ok(created)
    }

    // -- scaling -----------------------------------------------------------

    /// Sets a ReplicaSet's size and its replica annotations
    /// (`scaleReplicaSet`); true if the size changed.
    pub(super) async fn scale_replica_set(
        &self,
        rs: &ReplicaSet,
        size: i32,
    ) -> Result<(bool, ReplicaSet)> {
        let desired = self.replicas();
        let max = desired + self.strategy.max_surge();
        let size_changed = rs_replicas(rs) != size;
        if !size_changed && !replicas_annotations_need_update(rs, desired, max) {
            return Ok((false, rs.clone()));
        }
        let old_size = rs_replicas(rs);
        let mut scaled = rs.clone();
        scaled.spec.replicas = Some(size);
        set_replicas_annotations(&mut scaled, desired, max);
        let rs_name = name_of(&rs.metadata);
        let updated = self
            .replicasets()
            .replace(rs_name, &PostParams::default(), &scaled)
            .await?;
        if size_changed {
            let direction = if old_size < size { "up" } else { "down" };
            let message =
                format!("Scaled {direction} replica set {rs_name} from {old_size} to {size}");
            self.event(EventType::Normal, "ScalingReplicaSet", &message)
                .await;
        }
        Ok((size_changed, updated))
    }

    pub(super) async fn scale_replica_set_if_needed(
        &self,
        rs: &ReplicaSet,
        size: i32,
    ) -> Result<(bool, ReplicaSet)> {
        if rs_replicas(rs) == size {
            return Ok((false, rs.clone()));
        }
        self.scale_replica_set(rs, size).await
    }

    /// `kubectl scale` happened: some active ReplicaSet was last sized for
    /// another Deployment size (`isScalingEvent`).
    pub(super) fn is_scaling_event(&self, new_rs: Option<&ReplicaSet>, old: &[ReplicaSet]) -> bool {
        let replicas = self.replicas();
        new_rs
            .into_iter()
            .chain(old)
            .filter(|rs| rs_replicas(rs) > 0)
            .filter_map(|rs| int_annotation(rs, DESIRED_REPLICAS_ANNOTATION))
            .any(|desired| desired != replicas)
    }

    /// Scaling without rolling (also what a paused Deployment does): resize
    /// the ReplicaSets, then report (`sync`).
    pub(super) async fn sync_scaling(
        &mut self,
        new_rs: Option<ReplicaSet>,
        old: Vec<ReplicaSet>,
    ) -> Result<Action> {
        self.scale(new_rs.as_ref(), &old).await?;
        if self.d.spec.paused == Some(true) {
            self.cleanup_old_replica_sets(&old).await?;
        }
        let all = with_new(&old, new_rs.as_ref());
        let status = self.calculate_status(&all, new_rs.as_ref());
        if self.d.status.as_ref() != Some(&status) {
            self.write_status(status).await?;
        }
        Ok(Action::await_change())
    }

    /// Proportional scaling (`scale`).
    pub(super) async fn scale(
        &self,
        new_rs: Option<&ReplicaSet>,
        old: &[ReplicaSet],
    ) -> Result<()> {
        let replicas = self.replicas();
        // One active ReplicaSet (or none: the newest one) takes everything.
        let mut newest_first = old.to_vec();
        newest_first.sort_by(|a, b| by_creation(b, a));
        let all = with_new(&newest_first, new_rs);
        let active_rss = active(&all);
        let only = match active_rss.len() {
            0 => new_rs.cloned().or_else(|| newest_first.first().cloned()),
            1 => Some(active_rss[0].clone()),
            _ => None,
        };
        if let Some(rs) = only {
            self.scale_replica_set_if_needed(&rs, replicas).await?;
            return Ok(());
        }
        // A saturated new ReplicaSet leaves nothing for the old ones.
        let saturated = new_rs.is_some_and(|rs| {
            rs_replicas(rs) == replicas
                && int_annotation(rs, DESIRED_REPLICAS_ANNOTATION) == Some(replicas)
                && rs_available(rs) == replicas
        });
        if saturated {
            for rs in active(old) {
                self.scale_replica_set_if_needed(&rs, 0).await?;
            }
            return Ok(());
        }
        if self.strategy == Strategy::Recreate {
            return Ok(());
        }
        // Share the change among the active ReplicaSets by size: largest
        // first; on ties, newer ones grow first and older ones shrink first.
        let mut rss = active_rss;
        let max_replicas = replicas + self.strategy.max_surge();
        let allowed = if replicas > 0 { max_replicas } else { 0 };
        let to_add = allowed - sum(&rss, rs_replicas);
        if to_add > 0 {
            rss.sort_by(|a, b| {
                rs_replicas(b)
                    .cmp(&rs_replicas(a))
                    .then_with(|| by_creation(b, a))
            });
        } else if to_add < 0 {
            rss.sort_by(|a, b| {
                rs_replicas(b)
                    .cmp(&rs_replicas(a))
                    .then_with(|| by_creation(a, b))
            });
        }
        let status_replicas = self.status().replicas.unwrap_or(0);
        let mut added = 0;
        let mut sizes: Vec<i32> = Vec::with_capacity(rss.len());
        for rs in &rss {
            let share = proportion(
                rs_replicas(rs),
                int_annotation(rs, MAX_REPLICAS_ANNOTATION),
                replicas,
                max_replicas,
                status_replicas,
                to_add,
                added,
            );
            sizes.push(rs_replicas(rs) + share);
            added += share;
        }
        for (i, rs) in rss.iter().enumerate() {
            let mut size = sizes[i];
            // Leftovers of the rounding go to the largest one.
            if i == 0 && to_add != 0 {
                size = (size + to_add - added).max(0);
            }
            self.scale_replica_set(rs, size).await?;
        }
        Ok(())
    }

    // -- RollingUpdate -----------------------------------------------------

    /// Deletes the oldest empty ReplicaSets beyond `revisionHistoryLimit`
    /// (`cleanupDeployment`).
    pub(super) async fn cleanup_old_replica_sets(&self, old: &[ReplicaSet]) -> Result<()> {
        let Some(limit) = self.d.spec.revision_history_limit else {
            return Ok(());
        };
        let mut cleanable: Vec<&ReplicaSet> = old
            .iter()
            .filter(|rs| rs.metadata.deletion_timestamp.is_none())
            .collect();
        let excess = cleanable.len() as i64 - i64::from(limit);
        if excess <= 0 {
            return Ok(());
        }
        cleanable.sort_by(|a, b| by_revision(a, b));
        for rs in cleanable.into_iter().take(excess as usize) {
            let observed = rs
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            if rs_status_replicas(rs) != 0
                || rs_replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0) > observed
            {
                continue;
            }
            tracing::info!(deployment = %self.name, replicaset = %name_of(&rs.metadata), "deleting old replica set");
            match self
                .replicasets()
                .delete(name_of(&rs.metadata), &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    // -- status ----------------------------------------------------------------
}

/// `old` with the new ReplicaSet appended, when there is one.
pub(super) fn with_new(old: &[ReplicaSet], new_rs: Option<&ReplicaSet>) -> Vec<ReplicaSet> {
    let mut all = old.to_vec();
    all.extend(new_rs.cloned());
    all
}
