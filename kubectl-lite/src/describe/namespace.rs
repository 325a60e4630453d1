//! A Namespace: labels, status, quota and limits.

use super::*;

pub fn describe_namespace(ns: &Value) -> String {
    let mut w = Page::default();
    w.write(0, &format!("Name:\t{}\n", str_at(ns, "/metadata/name")));
    w.labels("", "Labels", &string_map(ns, "/metadata/labels"));
    w.annotations("Annotations", &string_map(ns, "/metadata/annotations"));
    w.write(0, &format!("Status:\t{}\n", str_at(ns, "/status/phase")));
    let conditions = list_at(ns, "/status/conditions");
    if !conditions.is_empty() {
        w.write(0, "Conditions:\n");
        w.write(1, "Type\tStatus\tLastTransitionTime\tReason\tMessage\n");
        w.write(1, "----\t------\t------------------\t------\t-------\n");
        for c in conditions {
            w.write(
                1,
                &format!(
                    "{}\t{}\t{}\t{}\t{}\n",
                    str_at(c, "/type"),
                    str_at(c, "/status"),
                    rfc1123z(str_at(c, "/lastTransitionTime")),
                    str_at(c, "/reason"),
                    str_at(c, "/message")
                ),
            );
        }
    }
    w.finish()
}
