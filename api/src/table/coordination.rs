//! Leases: `kubectl get leases -n kube-node-lease`.
//!
//! Each node's kubelet renews a Lease named after the node every few
//! seconds; that heartbeat, not the Node object, is what the node lifecycle
//! controller watches. HOLDER says who holds the lease (the node, or the
//! elected leader of a controller).

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::age::since;
use super::{text, timestamp, Column, Printer, AGE, NAME};

pub(super) const LEASES: Printer = Printer {
    columns: &[
        NAME,
        Column::string(
            "Holder",
            "holderIdentity contains the identity of the holder of a current lease.",
        ),
        AGE,
    ],
    cells: lease_cells,
    conditions: None,
};

fn lease_cells(lease: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        json!(text(lease, "/metadata/name")),
        json!(text(lease, "/spec/holderIdentity")),
        json!(since(timestamp(lease, "/metadata/creationTimestamp"), now)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_shows_its_holder() {
        let now: DateTime<Utc> = "2026-11-25T10:00:00Z".parse().unwrap();
        let lease = json!({
            "metadata": {"name": "node1", "namespace": "kube-node-lease",
                         "creationTimestamp": "2026-11-25T07:00:00Z"},
            "spec": {"holderIdentity": "node1", "leaseDurationSeconds": 40,
                     "renewTime": "2026-11-25T09:59:58.000000Z"},
        });
        assert_eq!(
            lease_cells(&lease, now),
            [json!("node1"), json!("node1"), json!("3h")]
        );
        let unheld = json!({"metadata": {"name": "kube-scheduler"}, "spec": {}});
        assert_eq!(lease_cells(&unheld, now)[1], "");
    }
}
