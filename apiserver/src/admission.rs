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

use serde_json::Value;

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
    let resource = if target.resource.group.is_empty() {
        target.resource.plural.to_string()
    } else {
        format!("{}.{}", target.resource.plural, target.resource.group)
    };
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
    body: &[u8],
) -> Result<(), StatusError> {
    use axum::http::Method;
    if matches!(*method, Method::GET | Method::HEAD) {
        return Ok(());
    }
    // The object's name: from the URL, or for a create from the body.
    let name = match &target.name {
        Some(name) => name.clone(),
        None => serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|o| o["metadata"]["name"].as_str().map(String::from))
            .unwrap_or_default(),
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
