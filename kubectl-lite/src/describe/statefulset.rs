//! A StatefulSet: replicas, update strategy and partition, its Pods by
//! phase, its template and volume claims (kubectl's `StatefulSetDescriber`).

use super::*;

pub fn describe_stateful_set(
    sts: &Value,
    pods: Result<&[Value], &str>,
    events: &[Value],
    now: DateTime<Utc>,
) -> String {
    let mut w = Page::default();
    w.name_and_namespace(sts);
    w.write(
        0,
        &format!(
            "CreationTimestamp:\t{}\n",
            rfc1123z(str_at(sts, "/metadata/creationTimestamp"))
        ),
    );
    w.write(
        0,
        &format!("Selector:\t{}\n", label_selector(at(sts, "/spec/selector"))),
    );
    w.labels("", "Labels", &string_map(sts, "/metadata/labels"));
    w.annotations("Annotations", &string_map(sts, "/metadata/annotations"));
    w.write(
        0,
        &format!(
            "Replicas:\t{} desired | {} total\n",
            int_at(sts, "/spec/replicas"),
            int_at(sts, "/status/replicas")
        ),
    );
    w.write(
        0,
        &format!(
            "Update Strategy:\t{}\n",
            str_at(sts, "/spec/updateStrategy/type")
        ),
    );
    let partition = at(sts, "/spec/updateStrategy/rollingUpdate/partition");
    if let Some(partition) = partition.as_i64() {
        w.write(1, &format!("Partition:\t{partition}\n"));
    }
    w.write(0, &format!("Pods Status:\t{}\n", pods_status(sts, pods)));
    pod_template(&mut w, at(sts, "/spec/template"));
    let claims = list_at(sts, "/spec/volumeClaimTemplates");
    if claims.is_empty() {
        w.write(0, "Volume Claims:\t<none>\n");
    } else {
        w.write(0, "Volume Claims:\n");
        for claim in claims {
            w.write(1, &format!("Name:\t{}\n", str_at(claim, "/metadata/name")));
        }
    }
    w.events(events, now);
    w.finish()
}
