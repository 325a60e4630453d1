//! Admission: checks on a write that depend on who makes it, after
//! authorization has said the caller may write that kind of object at all.
//!
//! **NodeRestriction** (kube-apiserver's admission plugin of that name):
//! the [Node authorizer](crate::authz::node) lets every node agent patch
//! Nodes, Leases and Pod statuses, because every node agent must; this
//! narrows it to *its own*: a node (`system:node:<name>`) may change only
//! its Node and its Lease, the status of the Pods bound to it, delete only
//! those Pods, and publish only its own node-local DNS EndpointSlice
//! (`kube-dns-<name>`). A node that was taken over cannot take the others
//! with it.
//!
//! **ServiceAccount** (the admission plugin of that name): every Pod runs
//! as a ServiceAccount (`default` unless it names one), and unless it (or
//! the Pod) opts out with `automountServiceAccountToken: false`, gets the
//! volume `kube-api-access-<suffix>` mounted read-only at
//! `/var/run/secrets/kubernetes.io/serviceaccount` in each container: a
//! token for its account (which the node agent asks for and renews), the
//! cluster CA (`kube-root-ca.crt`) and its namespace - what a client
//! library inside the Pod needs to reach `https://kubernetes.default.svc`.

use serde_json::{json, Value};

use crate::rest::request::Target;
use crate::rest::App;
use crate::status::StatusError;
use crate::storage::ObjectKey;

/// The node-local DNS EndpointSlice a node publishes (the node agent's
/// `dns::service`): `kube-dns-<node>`.
fn dns_slice(node: &str) -> String {
    format!("kube-dns-{node}")
}

fn forbidden(target: &Target, name: &str, why: String) -> StatusError {
    let resource = crate::status::qualified(target.resource.plural, target.resource.group);
    StatusError::new(
        403,
        "Forbidden",
        format!("{resource} \"{name}\" is forbidden: {why}"),
    )
}

/// NodeRestriction for a write by `node` (reads pass through).
pub fn node_restriction(
    app: &App,
    node: &str,
    method: &axum::http::Method,
    target: &Target,
    content_type: &str,
    body: &[u8],
) -> Result<(), StatusError> {
    use axum::http::Method;
    if matches!(*method, Method::GET | Method::HEAD) {
        return Ok(());
    }
    // The body, in whichever encoding it came; unreadable reads as empty,
    // which names nothing a node may touch.
    let object = || crate::rest::request::decode_object(body, content_type).unwrap_or_default();
    // The object's name: from the URL, or for a create from the body.
    let name = match &target.name {
        Some(name) => name.clone(),
        None => object()["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    };
    let sub = target.subresource.as_deref();
    match (target.resource.group, target.resource.plural) {
        ("", "nodes") if name != node => Err(forbidden(
            target,
            &name,
            format!("node \"{node}\" is not allowed to modify node \"{name}\""),
        )),
        ("coordination.k8s.io", "leases")
            if name != node || target.namespace.as_deref() != Some("kube-node-lease") =>
        {
            Err(forbidden(
                target,
                &name,
                "can only access node lease with the same name as the requesting node".into(),
            ))
        }
        ("", "pods") => {
            let key = ObjectKey::new(target.resource, target.namespace.as_deref(), &name);
            let bound_here = app
                .store
                .get(&key)
                .is_some_and(|pod| pod["spec"]["nodeName"] == node);
            match (sub, method) {
                (Some("status"), _) if !bound_here => Err(forbidden(
                    target,
                    &name,
                    format!("node \"{node}\" can only update pod status for pods with spec.nodeName set to itself"),
                )),
                (None, &Method::DELETE) if !bound_here => Err(forbidden(
                    target,
                    &name,
                    format!("node \"{node}\" can only delete pods with spec.nodeName set to itself"),
                )),
                _ => Ok(()),
            }
        }
        ("", "serviceaccounts") if sub == Some("token") => {
            // Only for a Pod bound to this node.
            let request = object();
            let bound = &request["spec"]["boundObjectRef"];
            let pod_here = bound["kind"] == "Pod"
                && api::resources::by_plural("", "v1", "pods").is_some_and(|pods| {
                    app.store
                        .get(&ObjectKey::new(
                            pods,
                            target.namespace.as_deref(),
                            bound["name"].as_str().unwrap_or_default(),
                        ))
                        .is_some_and(|pod| pod["spec"]["nodeName"] == node)
                });
            if pod_here {
                Ok(())
            } else {
                Err(forbidden(
                    target,
                    &name,
                    format!(
                        "node \"{node}\" can only request tokens bound to pods scheduled on itself"
                    ),
                ))
            }
        }
        ("", "services") if name != "kube-dns" => Err(forbidden(
            target,
            &name,
            format!("node \"{node}\" may only publish the DNS Service \"kube-dns\""),
        )),
        ("discovery.k8s.io", "endpointslices") if name != dns_slice(node) => Err(forbidden(
            target,
            &name,
            format!(
                "node \"{node}\" may only publish its own DNS endpoint slice \"{}\"",
                dns_slice(node)
            ),
        )),
        _ => Ok(()),
    }
}

/// Where every container finds its ServiceAccount credentials.
pub const SERVICE_ACCOUNT_MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The ServiceAccount admission plugin's mutation of a new Pod.
pub fn service_account(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let account = spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
        .to_string();
    spec.insert("serviceAccountName".into(), json!(account));
    spec.insert("serviceAccount".into(), json!(account));
    if spec.get("automountServiceAccountToken") == Some(&json!(false)) {
        return;
    }
    let mounted = |container: &Value| {
        container["volumeMounts"].as_array().is_some_and(|mounts| {
            mounts
                .iter()
                .any(|m| m["mountPath"] == SERVICE_ACCOUNT_MOUNT)
        })
    };
    let containers = ["containers", "initContainers"];
    if containers.iter().all(|field| {
        spec.get(*field)
            .and_then(Value::as_array)
            .is_none_or(|list| list.iter().all(mounted))
    }) {
        return;
    }
    let volume = api::names::generate_name("kube-api-access-");
    let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
    if let Some(volumes) = volumes.as_array_mut() {
        volumes.push(json!({
            "name": volume,
            "projected": {
                "defaultMode": 420,
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt",
                                   "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace",
                        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
                ],
            },
        }));
    }
    for field in containers {
        for container in spec
            .get_mut(field)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if mounted(container) {
                continue;
            }
            let mounts = container
                .as_object_mut()
                .map(|c| c.entry("volumeMounts").or_insert_with(|| json!([])));
            if let Some(mounts) = mounts.and_then(Value::as_array_mut) {
                mounts.push(
                    json!({"name": volume, "mountPath": SERVICE_ACCOUNT_MOUNT, "readOnly": true}),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_container_gets_the_service_account_volume() {
        let mut pod = json!({"spec": {"containers": [{"name": "a"}, {"name": "b",
            "volumeMounts": [{"name": "x", "mountPath": "/x"}]}]}});
        service_account(&mut pod);
        assert_eq!(pod["spec"]["serviceAccountName"], "default");
        let volume = pod["spec"]["volumes"][0]["name"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(volume.starts_with("kube-api-access-"), "{volume}");
        for c in 0..2 {
            let mounts = pod["spec"]["containers"][c]["volumeMounts"]
                .as_array()
                .unwrap();
            assert!(mounts
                .iter()
                .any(|m| m["name"] == volume.as_str() && m["mountPath"] == SERVICE_ACCOUNT_MOUNT));
        }
        let mut opted_out =
            json!({"spec": {"automountServiceAccountToken": false, "containers": [{"name": "a"}]}});
        service_account(&mut opted_out);
        assert!(opted_out["spec"]["volumes"].is_null());
    }
}
