//! A Node: addresses, capacity and what its Pods request of it, conditions, its lease.

use super::*;

/// A resource quantity (`500m`, `2`, `16Gi`), enough of Kubernetes'
/// `resource.Quantity` to add requests and print percentages.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Quantity {
    /// The amount in thousandths of the unit (millicores, millibytes).
    milli: i128,
    /// Whether it was written with binary suffixes (`Ki`, `Mi`, ...).
    binary: bool,
}

impl Quantity {
    pub(super) fn parse(s: &str) -> Self {
        let s = s.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
            .unwrap_or(s.len());
        let (number, suffix) = s.split_at(split);
        let value: f64 = number.parse().unwrap_or(0.0);
        let (factor, binary): (f64, bool) = match suffix {
            "m" => (0.001, false),
            "" => (1.0, false),
            "k" => (1e3, false),
            "M" => (1e6, false),
            "G" => (1e9, false),
            "T" => (1e12, false),
            "P" => (1e15, false),
            "E" => (1e18, false),
            "Ki" => (1024.0, true),
            "Mi" => (1024f64.powi(2), true),
            "Gi" => (1024f64.powi(3), true),
            "Ti" => (1024f64.powi(4), true),
            "Pi" => (1024f64.powi(5), true),
            "Ei" => (1024f64.powi(6), true),
            _ => (1.0, false),
        };
        Quantity {
            milli: (value * factor * 1000.0).round() as i128,
            binary,
        }
    }

    pub(super) fn add(self, other: Quantity) -> Quantity {
        Quantity {
            milli: self.milli + other.milli,
            binary: self.binary || other.binary,
        }
    }

    /// The canonical form kubectl prints: the largest suffix that keeps the
    /// number whole.
    pub(super) fn canonical(self) -> String {
        if self.milli == 0 {
            return "0".to_string();
        }
        if self.milli % 1000 != 0 {
            return format!("{}m", self.milli);
        }
        let value = self.milli / 1000;
        let (base, suffixes): (i128, &[&str]) = if self.binary {
            (1024, &["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"])
        } else {
            (1000, &["", "k", "M", "G", "T", "P", "E"])
        };
        let mut n = value;
        let mut i = 0;
        while n % base == 0 && i + 1 < suffixes.len() {
            n /= base;
            i += 1;
        }
        format!("{n}{}", suffixes[i])
    }
}

/// A Pod's total request (or limit) of one resource: the sum over its
/// containers, or the largest init container if that is more.
pub(super) fn pod_total(pod: &Value, kind: &str, resource: &str) -> Quantity {
    let sum = list_at(pod, "/spec/containers")
        .iter()
        .filter_map(|c| at(c, &format!("/resources/{kind}/{resource}")).as_str())
        .map(Quantity::parse)
        .fold(Quantity::default(), Quantity::add);
    list_at(pod, "/spec/initContainers")
        .iter()
        .filter_map(|c| at(c, &format!("/resources/{kind}/{resource}")).as_str())
        .map(Quantity::parse)
        .fold(sum, |acc, q| if q.milli > acc.milli { q } else { acc })
}

pub(super) fn percent(part: Quantity, whole: Quantity) -> i128 {
    if whole.milli == 0 {
        0
    } else {
        (part.milli as f64 / whole.milli as f64 * 100.0) as i128
    }
}

pub fn describe_node(
    node: &Value,
    pods: &[Value],
    lease: Result<&Value, &str>,
    events: &[Value],
    now: DateTime<Utc>,
) -> String {
    let mut w = Page::default();
    let name = str_at(node, "/metadata/name");
    w.write(0, &format!("Name:\t{name}\n"));
    let labels = string_map(node, "/metadata/labels");
    let mut roles: Vec<String> = labels
        .iter()
        .filter_map(|(k, v)| {
            if let Some(role) = k.strip_prefix(NODE_ROLE_PREFIX) {
                (!role.is_empty()).then(|| role.to_string())
            } else if k == NODE_ROLE_LABEL && !v.is_empty() {
                Some(v.clone())
            } else {
                None
            }
        })
        .collect();
    roles.sort();
    roles.dedup();
    w.write(0, &format!("Roles:\t{}\n", none_if_empty(&roles.join(","))));
    w.labels("", "Labels", &labels);
    w.annotations("Annotations", &string_map(node, "/metadata/annotations"));
    w.write(
        0,
        &format!(
            "CreationTimestamp:\t{}\n",
            rfc1123z(str_at(node, "/metadata/creationTimestamp"))
        ),
    );
    let mut taints: Vec<&Value> = list_at(node, "/spec/taints").iter().collect();
    taints.sort_by_key(|t| format!("{},{}", str_at(t, "/effect"), str_at(t, "/key")));
    w.write(0, "Taints:\t");
    if taints.is_empty() {
        w.write(0, "<none>\n");
    }
    for (i, t) in taints.iter().enumerate() {
        if i != 0 {
            w.write(0, "\t");
        }
        let value = str_at(t, "/value");
        let text = if value.is_empty() {
            format!("{}:{}", str_at(t, "/key"), str_at(t, "/effect"))
        } else {
            format!("{}={value}:{}", str_at(t, "/key"), str_at(t, "/effect"))
        };
        w.write(0, &format!("{text}\n"));
    }
    w.write(
        0,
        &format!("Unschedulable:\t{}\n", bool_at(node, "/spec/unschedulable")),
    );
    match lease {
        Ok(lease) => {
            w.write(0, "Lease:\n");
            let holder = at(lease, "/spec/holderIdentity")
                .as_str()
                .unwrap_or("<unset>");
            w.write(1, &format!("HolderIdentity:\t{holder}\n"));
            for (field, title) in [
                ("/spec/acquireTime", "AcquireTime"),
                ("/spec/renewTime", "RenewTime"),
            ] {
                let time = str_at(lease, field);
                let shown = if time.is_empty() {
                    "<unset>".to_string()
                } else {
                    rfc1123z(time)
                };
                w.write(1, &format!("{title}:\t{shown}\n"));
            }
        }
        Err(e) => w.write(0, &format!("Lease:\tFailed to get lease: {e}\n")),
    }
    let conditions = list_at(node, "/status/conditions");
    if !conditions.is_empty() {
        w.write(
            0,
            "Conditions:\n  Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage\n",
        );
        w.write(
            1,
            "----\t------\t-----------------\t------------------\t------\t-------\n",
        );
        for c in conditions {
            w.write(
                1,
                &format!(
                    "{} \t{} \t{} \t{} \t{} \t{}\n",
                    str_at(c, "/type"),
                    str_at(c, "/status"),
                    rfc1123z(str_at(c, "/lastHeartbeatTime")),
                    rfc1123z(str_at(c, "/lastTransitionTime")),
                    str_at(c, "/reason"),
                    str_at(c, "/message")
                ),
            );
        }
    }
    w.write(0, "Addresses:\n");
    for address in list_at(node, "/status/addresses") {
        w.write(
            1,
            &format!(
                "{}:\t{}\n",
                str_at(address, "/type"),
                str_at(address, "/address")
            ),
        );
    }
    let capacity = string_map(node, "/status/capacity");
    let allocatable = string_map(node, "/status/allocatable");
    for (title, resources) in [("Capacity", &capacity), ("Allocatable", &allocatable)] {
        if !resources.is_empty() {
            w.write(0, &format!("{title}:\n"));
            for (resource, quantity) in resources {
                w.write(0, &format!("  {resource}:\t{quantity}\n"));
            }
        }
    }
    w.write(0, "System Info:\n");
    for (field, title) in [
        ("machineID", "Machine ID"),
        ("systemUUID", "System UUID"),
        ("bootID", "Boot ID"),
        ("kernelVersion", "Kernel Version"),
        ("osImage", "OS Image"),
        ("operatingSystem", "Operating System"),
        ("architecture", "Architecture"),
        ("containerRuntimeVersion", "Container Runtime Version"),
        ("kubeletVersion", "Kubelet Version"),
        ("kubeProxyVersion", "Kube-Proxy Version"),
    ] {
        w.write(
            0,
            &format!(
                "  {title}:\t{}\n",
                str_at(node, &format!("/status/nodeInfo/{field}"))
            ),
        );
    }
    let pod_cidr = str_at(node, "/spec/podCIDR");
    if !pod_cidr.is_empty() {
        w.write(0, &format!("PodCIDR:\t{pod_cidr}\n"));
    }
    let cidrs: Vec<&str> = list_at(node, "/spec/podCIDRs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    if !cidrs.is_empty() {
        w.write(0, &format!("PodCIDRs:\t{}\n", cidrs.join(",")));
    }
    let provider = str_at(node, "/spec/providerID");
    if !provider.is_empty() {
        w.write(0, &format!("ProviderID:\t{provider}\n"));
    }
    node_resources(
        &mut w,
        pods,
        if allocatable.is_empty() {
            &capacity
        } else {
            &allocatable
        },
        now,
    );
    w.events(events, now);
    w.finish()
}

pub(super) fn node_resources(
    w: &mut Page,
    pods: &[Value],
    allocatable: &BTreeMap<String, String>,
    now: DateTime<Utc>,
) {
    let alloc = |r: &str| {
        allocatable
            .get(r)
            .map(|q| Quantity::parse(q))
            .unwrap_or_default()
    };
    let (cpu, memory, storage) = (alloc("cpu"), alloc("memory"), alloc("ephemeral-storage"));
    w.write(
        0,
        &format!("Non-terminated Pods:\t({} in total)\n", pods.len()),
    );
    w.write(
        1,
        "Namespace\tName\t\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge\n",
    );
    w.write(
        1,
        "---------\t----\t\t------------\t----------\t---------------\t-------------\t---\n",
    );
    let mut totals = [Quantity::default(); 6];
    for pod in pods {
        let values = [
            pod_total(pod, "requests", "cpu"),
            pod_total(pod, "limits", "cpu"),
            pod_total(pod, "requests", "memory"),
            pod_total(pod, "limits", "memory"),
            pod_total(pod, "requests", "ephemeral-storage"),
            pod_total(pod, "limits", "ephemeral-storage"),
        ];
        for (total, value) in totals.iter_mut().zip(values) {
            *total = total.add(value);
        }
        w.write(
            1,
            &format!(
                "{}\t{}\t\t{} ({}%)\t{} ({}%)\t{} ({}%)\t{} ({}%)\t{}\n",
                str_at(pod, "/metadata/namespace"),
                str_at(pod, "/metadata/name"),
                values[0].canonical(),
                percent(values[0], cpu),
                values[1].canonical(),
                percent(values[1], cpu),
                values[2].canonical(),
                percent(values[2], memory),
                values[3].canonical(),
                percent(values[3], memory),
                age_since(str_at(pod, "/metadata/creationTimestamp"), now)
            ),
        );
    }
    w.write(
        0,
        "Allocated resources:\n  (Total limits may be over 100 percent, i.e., overcommitted.)\n",
    );
    w.write(1, "Resource\tRequests\tLimits\n");
    w.write(1, "--------\t--------\t------\n");
    for (resource, requests, limits, whole) in [
        ("cpu", totals[0], totals[1], cpu),
        ("memory", totals[2], totals[3], memory),
        ("ephemeral-storage", totals[4], totals[5], storage),
    ] {
        w.write(
            1,
            &format!(
                "{resource}\t{} ({}%)\t{} ({}%)\n",
                requests.canonical(),
                percent(requests, whole),
                limits.canonical(),
                percent(limits, whole)
            ),
        );
    }
}
