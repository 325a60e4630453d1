//! A DaemonSet: how many nodes should and do run its Pod, its Pods by
//! phase and its template (kubectl's `DaemonSetDescriber`).

use super::*;

pub fn describe_daemon_set(
    ds: &Value,
    pods: Result<&[Value], &str>,
    events: &[Value],
    now: DateTime<Utc>,
) -> String {
    let mut w = Page::default();
    w.name_and_namespace(ds);
    w.write(
        0,
        &format!("Selector:\t{}\n", label_selector(at(ds, "/spec/selector"))),
    );
    w.write(
        0,
        &format!(
            "Node-Selector:\t{}\n",
            format_labels(&string_map(ds, "/spec/template/spec/nodeSelector"))
        ),
    );
    w.labels("", "Labels", &string_map(ds, "/metadata/labels"));
    w.annotations("Annotations", &string_map(ds, "/metadata/annotations"));
    for (title, field) in [
        (
            "Desired Number of Nodes Scheduled",
            "desiredNumberScheduled",
        ),
        (
            "Current Number of Nodes Scheduled",
            "currentNumberScheduled",
        ),
        (
            "Number of Nodes Scheduled with Up-to-date Pods",
            "updatedNumberScheduled",
        ),
        (
            "Number of Nodes Scheduled with Available Pods",
            "numberAvailable",
        ),
        ("Number of Nodes Misscheduled", "numberMisscheduled"),
    ] {
        // No tab: kubectl writes these without aligning them.
        let value = int_at(ds, &format!("/status/{field}"));
        w.write(0, &format!("{title}: {value}\n"));
    }
    w.write(0, &format!("Pods Status:\t{}\n", pods_status(ds, pods)));
    pod_template(&mut w, at(ds, "/spec/template"));
    w.events(events, now);
    w.finish()
}
