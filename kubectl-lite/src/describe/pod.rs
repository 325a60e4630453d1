//! A Pod: where it runs, its QoS class, conditions, containers and volumes.

use super::*;

/// BestEffort, Burstable or Guaranteed: how the kubelet ranks a Pod when
/// the node runs short, from its containers' requests and limits.
pub(super) fn qos_class(pod: &Value) -> String {
    let recorded = str_at(pod, "/status/qosClass");
    if !recorded.is_empty() {
        return recorded.to_string();
    }
    let containers = list_at(pod, "/spec/containers");
    let mut any = false;
    let mut guaranteed = true;
    for c in containers
        .iter()
        .chain(list_at(pod, "/spec/initContainers"))
    {
        let requests = string_map(c, "/resources/requests");
        let limits = string_map(c, "/resources/limits");
        if !requests.is_empty() || !limits.is_empty() {
            any = true;
        }
        for resource in ["cpu", "memory"] {
            let limit = limits.get(resource);
            let request = requests.get(resource).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
    .to_string()
}

pub fn describe_pod(pod: &Value, events: &[Value], now: DateTime<Utc>) -> String {
    let mut w = Page::default();
    w.name_and_namespace(pod);
    if let Some(priority) = at(pod, "/spec/priority").as_i64() {
        w.write(0, &format!("Priority:\t{priority}\n"));
    }
    let priority_class = str_at(pod, "/spec/priorityClassName");
    if !priority_class.is_empty() {
        w.write(0, &format!("Priority Class Name:\t{priority_class}\n"));
    }
    let account = str_at(pod, "/spec/serviceAccountName");
    if !account.is_empty() {
        w.write(0, &format!("Service Account:\t{account}\n"));
    }
    let node = str_at(pod, "/spec/nodeName");
    if node.is_empty() {
        w.write(0, "Node:\t<none>\n");
    } else {
        w.write(
            0,
            &format!("Node:\t{node}/{}\n", str_at(pod, "/status/hostIP")),
        );
    }
    let start = str_at(pod, "/status/startTime");
    if !start.is_empty() {
        w.write(0, &format!("Start Time:\t{}\n", rfc1123z(start)));
    }
    w.labels("", "Labels", &string_map(pod, "/metadata/labels"));
    w.annotations("Annotations", &string_map(pod, "/metadata/annotations"));
    let phase = str_at(pod, "/status/phase");
    let deleting = str_at(pod, "/metadata/deletionTimestamp");
    if !deleting.is_empty() && phase != "Failed" && phase != "Succeeded" {
        w.write(
            0,
            &format!(
                "Status:\tTerminating (lasts {})\n",
                age_since(deleting, now)
            ),
        );
        w.write(
            0,
            &format!(
                "Termination Grace Period:\t{}s\n",
                int_at(pod, "/metadata/deletionGracePeriodSeconds")
            ),
        );
    } else {
        w.write(0, &format!("Status:\t{phase}\n"));
    }
    for (field, title) in [("/status/reason", "Reason"), ("/status/message", "Message")] {
        let text = str_at(pod, field);
        if !text.is_empty() {
            w.write(0, &format!("{title}:\t{text}\n"));
        }
    }
    w.write(0, &format!("IP:\t{}\n", str_at(pod, "/status/podIP")));
    let ips = list_at(pod, "/status/podIPs");
    if ips.is_empty() {
        w.write(0, "IPs:\t<none>\n");
    } else {
        w.write(0, "IPs:\n");
        for ip in ips {
            w.write(1, &format!("IP:\t{}\n", str_at(ip, "/ip")));
        }
    }
    if let Some(owner) = controlled_by(pod) {
        w.write(0, &format!("Controlled By:\t{owner}\n"));
    }
    let nominated = str_at(pod, "/status/nominatedNodeName");
    if !nominated.is_empty() {
        w.write(0, &format!("NominatedNodeName:\t{nominated}\n"));
    }
    let init = list_at(pod, "/spec/initContainers");
    if !init.is_empty() {
        containers(
            &mut w,
            "Init Containers",
            init,
            list_at(pod, "/status/initContainerStatuses"),
            Some(pod),
            "",
        );
    }
    containers(
        &mut w,
        "Containers",
        list_at(pod, "/spec/containers"),
        list_at(pod, "/status/containerStatuses"),
        Some(pod),
        "",
    );
    let conditions = list_at(pod, "/status/conditions");
    if !conditions.is_empty() {
        w.write(0, "Conditions:\n  Type\tStatus\n");
        for c in conditions {
            w.write(
                1,
                &format!("{} \t{} \n", str_at(c, "/type"), str_at(c, "/status")),
            );
        }
    }
    volumes(&mut w, list_at(pod, "/spec/volumes"), "");
    w.write(0, &format!("QoS Class:\t{}\n", qos_class(pod)));
    w.labels("", "Node-Selectors", &string_map(pod, "/spec/nodeSelector"));
    tolerations(&mut w, "Tolerations", list_at(pod, "/spec/tolerations"));
    w.events(events, now);
    w.finish()
}
