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
    if let Some(owner) = list_at(rs, "/metadata/ownerReferences")
        .iter()
        .find(|o| bool_at(o, "/controller"))
    {
        w.write(
            0,
            &format!(
                "Controlled By:\t{}/{}\n",
                str_at(owner, "/kind"),
                str_at(owner, "/name")
            ),
        );
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
    let conditions = list_at(rs, "/status/conditions");
    if !conditions.is_empty() {
        w.write(0, "Conditions:\n  Type\tStatus\tReason\n");
        w.write(1, "----\t------\t------\n");
        for c in conditions {
            w.write(
                1,
                &format!(
                    "{} \t{}\t{}\n",
                    str_at(c, "/type"),
                    str_at(c, "/status"),
                    str_at(c, "/reason")
                ),
            );
        }
    }
    w.events(events, now);
    w.finish()
}
