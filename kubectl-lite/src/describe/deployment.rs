//! A Deployment: its strategy, Pod template, and old and new ReplicaSets.

use super::*;

/// The ReplicaSets a Deployment controls, split into the one running its
/// current template (new) and the rest (old), like kubectl's
/// `deploymentutil.GetAllReplicaSets`.
pub(super) fn split_replica_sets<'a>(
    deploy: &Value,
    replica_sets: &'a [Value],
) -> (Vec<&'a Value>, Vec<&'a Value>) {
    let uid = str_at(deploy, "/metadata/uid");
    let mut owned: Vec<&Value> = replica_sets
        .iter()
        .filter(|rs| {
            list_at(rs, "/metadata/ownerReferences")
                .iter()
                .any(|o| bool_at(o, "/controller") && str_at(o, "/uid") == uid)
        })
        .collect();
    owned.sort_by_key(|rs| str_at(rs, "/metadata/creationTimestamp").to_string());
    let without_hash = |template: &Value| {
        let mut t = template.clone();
        if let Some(labels) = t
            .pointer_mut("/metadata/labels")
            .and_then(Value::as_object_mut)
        {
            labels.remove("pod-template-hash");
        }
        t
    };
    let wanted = without_hash(at(deploy, "/spec/template"));
    let new_index = owned
        .iter()
        .position(|rs| without_hash(at(rs, "/spec/template")) == wanted);
    let new: Vec<&Value> = new_index.map(|i| vec![owned[i]]).unwrap_or_default();
    let old: Vec<&Value> = owned
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != new_index)
        .map(|(_, rs)| *rs)
        .collect();
    (old, new)
}

pub(super) fn replica_sets_line(sets: &[&Value]) -> String {
    let parts: Vec<String> = sets
        .iter()
        .map(|rs| {
            format!(
                "{} ({}/{} replicas created)",
                str_at(rs, "/metadata/name"),
                int_at(rs, "/status/replicas"),
                int_at(rs, "/spec/replicas")
            )
        })
        .collect();
    if parts.is_empty() {
        "<none>".to_string()
    } else {
        parts.join(", ")
    }
}

pub fn describe_deployment(
    deploy: &Value,
    replica_sets: &[Value],
    events: &[Value],
    now: DateTime<Utc>,
) -> String {
    let mut w = Page::default();
    w.name_and_namespace(deploy);
    w.write(
        0,
        &format!(
            "CreationTimestamp:\t{}\n",
            rfc1123z(str_at(deploy, "/metadata/creationTimestamp"))
        ),
    );
    w.labels("", "Labels", &string_map(deploy, "/metadata/labels"));
    w.annotations("Annotations", &string_map(deploy, "/metadata/annotations"));
    w.write(
        0,
        &format!(
            "Selector:\t{}\n",
            label_selector(at(deploy, "/spec/selector"))
        ),
    );
    w.write(
        0,
        &format!(
            "Replicas:\t{} desired | {} updated | {} total | {} available | {} unavailable\n",
            int_at(deploy, "/spec/replicas"),
            int_at(deploy, "/status/updatedReplicas"),
            int_at(deploy, "/status/replicas"),
            int_at(deploy, "/status/availableReplicas"),
            int_at(deploy, "/status/unavailableReplicas")
        ),
    );
    w.write(
        0,
        &format!("StrategyType:\t{}\n", str_at(deploy, "/spec/strategy/type")),
    );
    w.write(
        0,
        &format!(
            "MinReadySeconds:\t{}\n",
            int_at(deploy, "/spec/minReadySeconds")
        ),
    );
    let rolling = at(deploy, "/spec/strategy/rollingUpdate");
    if !rolling.is_null() {
        w.write(
            0,
            &format!(
                "RollingUpdateStrategy:\t{} max unavailable, {} max surge\n",
                int_or_string(at(rolling, "/maxUnavailable")),
                int_or_string(at(rolling, "/maxSurge"))
            ),
        );
    }
    pod_template(&mut w, at(deploy, "/spec/template"));
    workload_conditions(&mut w, deploy);
    let (old, new) = split_replica_sets(deploy, replica_sets);
    if !old.is_empty() || !new.is_empty() {
        w.write(
            0,
            &format!("OldReplicaSets:\t{}\n", replica_sets_line(&old)),
        );
        w.write(0, &format!("NewReplicaSet:\t{}\n", replica_sets_line(&new)));
    }
    w.events(events, now);
    w.finish()
}

/// A `spec.selector` (`matchLabels` + `matchExpressions`) as text.
pub(super) fn label_selector(selector: &Value) -> String {
    serde_json::from_value(selector.clone())
        .ok()
        .and_then(|s| api::selector::LabelSelector::from_k8s(&s).ok())
        .map(|s| s.to_string())
        .unwrap_or_default()
}
