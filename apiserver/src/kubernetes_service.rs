//! The `kubernetes` Service: how Pods find the apiserver.
//!
//! Every cluster has, in `default`, a Service named `kubernetes` with the
//! first ClusterIP of the range (10.96.0.1) and port 443, whose one
//! endpoint is the apiserver itself (its advertised address, port 6443).
//! A Pod reaches the API at `https://kubernetes.default.svc` (the
//! apiserver's certificate carries that name and 10.96.0.1), which is how
//! client libraries inside Pods (`kube::Client::try_default()`,
//! client-go's `InClusterConfig`) connect. No controller keeps it: the
//! apiserver writes the Service, its Endpoints and its EndpointSlice when
//! it starts (kube-apiserver's "kubernetes service" controller), so they
//! follow the address it is started with.

use std::net::SocketAddr;

use serde_json::json;

use crate::bootstrap;
use crate::rest::{objectmeta, App};
use crate::status::StatusError;
use crate::storage::ObjectKey;

/// The Service's name and namespace.
pub const NAME: &str = "kubernetes";
pub const NAMESPACE: &str = "default";

fn resource(group: &str, plural: &str) -> &'static api::resources::ResourceType {
    api::resources::by_plural(group, "v1", plural).expect("served")
}

/// Makes the `kubernetes` Service, Endpoints and EndpointSlice say that
/// the API is at `advertised`.
pub async fn ensure(app: &App, advertised: SocketAddr) -> Result<(), StatusError> {
    let services = resource("", "services");
    let key = ObjectKey::new(services, Some(NAMESPACE), NAME);
    if app.store.get(&key).is_none() {
        let first_ip = api::cidr::parse_ipv4(&app.services.service_cidr())
            .map_err(|e| StatusError::internal(e.to_string()))?
            .network()
            .to_bits()
            + 1;
        let mut service = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": NAME, "namespace": NAMESPACE,
                         "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {
                "type": "ClusterIP",
                "clusterIP": std::net::Ipv4Addr::from_bits(first_ip).to_string(),
                "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                           "targetPort": advertised.port()}],
                "sessionAffinity": "None",
            },
        });
        let allocation = app.services.allocate(&mut service, None)?;
        objectmeta::prepare_for_create(services, &mut service);
        crate::defaults::apply_defaults(services, &mut service);
        let written = app
            .store
            .write(move |txn| {
                if txn.get(&key).is_none() {
                    txn.put(key, service);
                }
                Ok(())
            })
            .await;
        match written {
            Ok(()) => allocation.commit(&app.services),
            Err(e) => {
                allocation.rollback(&app.services);
                return Err(e);
            }
        }
    }
    let ip = advertised.ip().to_string();
    let port = advertised.port();
    bootstrap::ensure(
        &app.store,
        resource("", "endpoints"),
        json!({
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": NAME, "namespace": NAMESPACE},
            "subsets": [{"addresses": [{"ip": ip}],
                         "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
        }),
        &["subsets"],
        |_| true,
    )
    .await?;
    bootstrap::ensure(
        &app.store,
        resource("discovery.k8s.io", "endpointslices"),
        json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": NAME, "namespace": NAMESPACE,
                         "labels": {api::endpointslice::SERVICE_NAME_LABEL: NAME}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        }),
        &["endpoints", "ports"],
        |_| true,
    )
    .await
}
