//! A ReplicaSet: its Pods by phase and its template.

use super::*;

/// A ReplicaSet: how many Pods it wants and, among the Pods it owns, how
/// many are in each phase.
pub fn describe_replica_set(
    rs: &Value,
    pods: Result<&[Value], &str>,
    events: &[Value],
    now: DateTime<Utc>,
) -> String {
    let mut w = Page::default();
    w.name_and_namespace(rs);
    w.write(
        0,
        &format!("Selector:\t{}\n", label_selector(at(rs, "/spec/selector"))),
    );
    w.labels("", "Labels", &string_map(rs, "/metadata/labels"));
    w.annotations("Annotations", &string_map(rs, "/metadata/annotations"));
    if let Some(owner) = controlled_by(rs) {
        w.write(0, &format!("Controlled By:\t{owner}\n"));
    }
    w.write(
        0,
        &format!(
            "Replicas:\t{} current / {} desired\n",
            int_at(rs, "/status/replicas"),
            int_at(rs, "/spec/replicas")
        ),
    );
    w.write(0, &format!("Pods Status:\t{}\n", pods_status(rs, pods)));
    pod_template(&mut w, at(rs, "/spec/template"));
    workload_conditions(&mut w, rs);
    w.events(events, now);
    w.finish()
}
