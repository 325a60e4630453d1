//! EndpointSlices (discovery.k8s.io/v1): a Service's endpoints in pieces.
//!
//! A v1 Endpoints object holds *every* address of a Service in one object;
//! with thousands of Pods each change rewrites (and sends to every node) a
//! huge object. EndpointSlices cut the same list into slices of at most
//! [`MAX_ENDPOINTS_PER_SLICE`] endpoints, so a Pod becoming ready rewrites
//! one small slice. kube-proxy and cluster DNS read slices, as do
//! `kubectl describe svc` (its `Endpoints:` line) and kube-lite's node agent.
//!
//! A slice of Service `ngx-svc` looks like this (`kubectl get
//! endpointslice -l kubernetes.io/service-name=ngx-svc -o yaml`):
//!
//! ```yaml
//! metadata:
//!   name: ngx-svc-7xk2p               # generateName: ngx-svc-
//!   labels:
//!     kubernetes.io/service-name: ngx-svc
//!     endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io
//!   annotations:
//!     endpoints.kubernetes.io/last-change-trigger-time: "2026-11-25T10:00:00Z"
//!   ownerReferences: [{apiVersion: v1, kind: Service, name: ngx-svc, controller: true, ...}]
//! addressType: IPv4
//! endpoints:
//! - addresses: [10.244.1.5]
//!   conditions: {ready: true, serving: true, terminating: false}
//!   nodeName: worker1
//!   targetRef: {kind: Pod, namespace: default, name: ngx-dep-6796688696-cmj2z, uid: ...}
//! ports:
//! - {name: "", protocol: TCP, port: 80}
//! ```
//!
//! All endpoints of one slice share its `ports`. A named `targetPort`
//! (`targetPort: http`) is looked up in each Pod's container ports, so two
//! Pods may serve the same Service port on different numbers: they land in
//! different slices. Pods are therefore grouped by their resolved ports
//! first, then packed into slices.
//!
//! # Packing, as upstream does it
//!
//! Rewriting every slice on every change would defeat the purpose, so
//! [`plan`] changes as few slices as it can (upstream's
//! `reconcileByPortMapping`):
//! 1. walk the existing slices: drop endpoints no longer wanted, refresh
//!    the ones whose conditions changed;
//! 2. put new endpoints first into slices that are being rewritten anyway
//!    (fullest first);
//! 3. then into the one unchanged slice they fit best in, or new slices.
//!
//! A slice left empty is deleted; a Service with no endpoints at all keeps
//! one empty *placeholder* slice, so consumers can tell "no endpoints" from
//! "not processed yet".

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, ResourceExt};

use crate::endpoints::{self, format_trigger_time, LAST_CHANGE_TRIGGER_TIME};
use crate::Result;

/// Label naming the Service a slice belongs to: how consumers find the
/// slices of a Service (`-l kubernetes.io/service-name=ngx-svc`).
pub use api::endpointslice::SERVICE_NAME_LABEL;

/// Label naming the controller that owns a slice; slices written by hand
/// or by other controllers carry another value and are left alone.
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";

/// Our value of [`LABEL_MANAGED_BY`], upstream's.
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";

/// Set (empty) on the Endpoints and slices of headless Services
/// (`clusterIP: None`).
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";

/// Upstream's default `--max-endpoints-per-slice`.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// The only address type kube-lite's single-stack IPv4 cluster writes.
pub const ADDRESS_TYPE: &str = "IPv4";

/// Identifies an endpoint across syncs (upstream's `endpointHash`): its
/// addresses, hostname and Pod. Conditions are left out on purpose, so
/// a Pod turning ready is an in-place update of its endpoint.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct EndpointKey {
    addresses: Vec<String>,
    hostname: Option<String>,
    pod: Option<(String, String)>,
}

impl EndpointKey {
    pub fn of(endpoint: &Endpoint) -> EndpointKey {
        let mut addresses = endpoint.addresses.clone();
        addresses.sort();
        EndpointKey {
            addresses,
            hostname: endpoint.hostname.clone(),
            pod: endpoint.target_ref.as_ref().map(|r| {
                (
                    r.namespace.clone().unwrap_or_default(),
                    r.name.clone().unwrap_or_default(),
                )
            }),
        }
    }
}

/// The ports of a group of endpoints, order-free, with the API defaults
/// applied (name `""`, protocol `TCP`): what slices are grouped by.
pub type PortsKey = Vec<(String, String, i32, Option<String>)>;

pub fn ports_key(ports: &[EndpointPort]) -> PortsKey {
    let mut key: PortsKey = ports
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                p.port.unwrap_or_default(),
                p.app_protocol.clone(),
            )
        })
        .collect();
    key.sort();
    key
}

/// The endpoints of the Pods that resolve to the same ports.
#[derive(Debug, Clone, Default)]
pub struct EndpointGroup {
    /// The ports, in the Service's order, as written to the slices.
    pub ports: Vec<EndpointPort>,
    pub endpoints: BTreeMap<EndpointKey, Endpoint>,
}

/// What the slices of `service` should hold, grouped by ports. `pods`
/// are the Pods its selector picks.
pub fn desired_endpoints(
    service: &Service,
    pods: &[Arc<Pod>],
) -> BTreeMap<PortsKey, EndpointGroup> {
    let mut groups: BTreeMap<PortsKey, EndpointGroup> = BTreeMap::new();
    let publish_not_ready = endpoints::publishes_not_ready(service);
    for pod in pods {
        // Terminating Pods stay in slices, marked terminating, so that
        // proxies can drain them (the v1 Endpoints drop them instead).
        if !endpoints::should_be_in_endpoints(pod, true) {
            continue;
        }
        let Some(address) = endpoints::ipv4_address(pod) else {
            continue;
        };
        let ports = endpoint_ports(service, pod);
        let serving = api::pod::is_ready(pod);
        let terminating = pod.metadata.deletion_timestamp.is_some();
        let endpoint = Endpoint {
            addresses: vec![address],
            conditions: Some(EndpointConditions {
                // Never ready while terminating, unless the Service asks
                // for every address (publishNotReadyAddresses).
                ready: Some(publish_not_ready || (serving && !terminating)),
                serving: Some(serving),
                terminating: Some(terminating),
            }),
            hostname: endpoints::hostname_for(service, pod),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(pod_reference(pod)),
            ..Default::default()
        };
        let group = groups.entry(ports_key(&ports)).or_default();
        group.ports = ports;
        group.endpoints.insert(EndpointKey::of(&endpoint), endpoint);
    }
    groups
}

/// The Service's ports as this Pod serves them. A named `targetPort`
/// the Pod does not declare is skipped for this Pod (upstream's
/// `getEndpointPorts`). `name` is always set, `""` for an unnamed port.
pub fn endpoint_ports(service: &Service, pod: &Pod) -> Vec<EndpointPort> {
    endpoints::service_ports(service)
        .iter()
        .filter_map(|service_port| {
            let port = endpoints::find_port(pod, service_port)?;
            Some(EndpointPort {
                name: Some(service_port.name.clone().unwrap_or_default()),
                protocol: Some(
                    service_port
                        .protocol
                        .clone()
                        .unwrap_or_else(|| "TCP".into()),
                ),
                port: Some(port),
                app_protocol: service_port.app_protocol.clone(),
            })
        })
        .collect()
}

/// `targetRef` of an endpoint: the Pod behind it.
pub fn pod_reference(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

/// The labels every slice of `service` carries: the Service's own labels
/// (minus the reserved ones), the headless marker, and the two labels
/// that say whose slice it is.
pub fn slice_labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = service
        .labels()
        .iter()
        .filter(|(k, _)| {
            ![SERVICE_NAME_LABEL, LABEL_MANAGED_BY, LABEL_HEADLESS].contains(&k.as_str())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if api::service::has_no_cluster_ip(service) {
        labels.insert(LABEL_HEADLESS.into(), String::new());
    }
    labels.insert(SERVICE_NAME_LABEL.into(), service.name_any());
    labels.insert(LABEL_MANAGED_BY.into(), CONTROLLER_NAME.into());
    labels
}

/// The ownerReference that ties a slice to its Service: the garbage
/// collector deletes the slices of a deleted Service.
pub fn owner_reference(service: &Service) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: service.name_any(),
        uid: service.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// True if the slice belongs to this very Service (same uid), not to an
/// older Service of the same name.
pub fn owned_by(slice: &EndpointSlice, service: &Service) -> bool {
    let uid = service.uid();
    slice
        .owner_references()
        .iter()
        .any(|o| o.kind == "Service" && o.api_version == "v1" && Some(&o.uid) == uid.as_ref())
}

/// A new, empty slice for `service` with the given ports.
fn new_slice(service: &Service, ports: Vec<EndpointPort>) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", service.name_any())),
            namespace: service.namespace(),
            labels: Some(slice_labels(service)),
            owner_references: Some(vec![owner_reference(service)]),
            ..Default::default()
        },
        address_type: ADDRESS_TYPE.into(),
        endpoints: Some(Vec::new()),
        ports: Some(ports),
    }
}

fn endpoints_of(slice: &EndpointSlice) -> &[Endpoint] {
    slice.endpoints.as_deref().unwrap_or_default()
}

/// The writes that make the slices match: created slices have no name
/// yet (the apiserver generates it), updated ones carry the
/// resourceVersion they were read at.
#[derive(Debug, Default)]
pub struct SlicePlan {
    pub create: Vec<EndpointSlice>,
    pub update: Vec<EndpointSlice>,
    pub delete: Vec<EndpointSlice>,
}

impl SlicePlan {
    /// Nothing to write: the slices are already right.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// Compares the `existing` slices of `service` (those managed by this
/// controller) with the `desired` endpoints and decides the fewest writes.
pub fn plan(
    service: &Service,
    desired: BTreeMap<PortsKey, EndpointGroup>,
    existing: Vec<EndpointSlice>,
    max_per_slice: usize,
) -> SlicePlan {
    let existing_count = existing.len();
    let labels = slice_labels(service);
    let mut result = SlicePlan::default();

    // Slices of an older Service with the same name, or of an address type
    // we do not write, go; the rest are grouped by their ports.
    let mut by_ports: BTreeMap<PortsKey, Vec<EndpointSlice>> = BTreeMap::new();
    for slice in existing {
        if !owned_by(&slice, service) || slice.address_type != ADDRESS_TYPE {
            result.delete.push(slice);
            continue;
        }
        let key = ports_key(slice.ports.as_deref().unwrap_or_default());
        by_ports.entry(key).or_default().push(slice);
    }

    for (key, group) in desired {
        let slices = by_ports.remove(&key).unwrap_or_default();
        plan_port_group(service, &labels, group, slices, max_per_slice, &mut result);
    }
    // Port combinations no Pod serves any more.
    result.delete.extend(by_ports.into_values().flatten());

    // No endpoints at all: keep (or create) one empty placeholder slice.
    if existing_count == result.delete.len() && result.create.is_empty() {
        let placeholder = new_slice(service, Vec::new());
        let keep = match result.delete.as_slice() {
            [only] => is_placeholder_of(only, service, &labels),
            _ => false,
        };
        if keep {
            result.delete.clear();
        } else {
            result.create.push(placeholder);
        }
    }

    // Rather than create one slice and delete another, rewrite the one
    // that would be deleted (fewer writes, a stable name).
    let mut reusable: Vec<EndpointSlice> = Vec::new();
    result.delete.retain(|slice| {
        let reuse = owned_by(slice, service) && slice.address_type == ADDRESS_TYPE;
        if reuse {
            reusable.push(slice.clone());
        }
        !reuse
    });
    for old in reusable {
        match result.create.pop() {
            Some(mut new) => {
                new.metadata = ObjectMeta {
                    labels: new.metadata.labels.take(),
                    ..old.metadata
                };
                result.update.push(new);
            }
            None => result.delete.push(old),
        }
    }
    result
}

fn is_placeholder_of(
    slice: &EndpointSlice,
    service: &Service,
    labels: &BTreeMap<String, String>,
) -> bool {
    owned_by(slice, service)
        && slice.address_type == ADDRESS_TYPE
        && endpoints_of(slice).is_empty()
        && slice.ports.as_deref().unwrap_or_default().is_empty()
        && slice.metadata.labels.as_ref() == Some(labels)
}

/// Upstream's `reconcileByPortMapping` for the slices of one port group.
fn plan_port_group(
    service: &Service,
    labels: &BTreeMap<String, String>,
    group: EndpointGroup,
    existing: Vec<EndpointSlice>,
    max_per_slice: usize,
    result: &mut SlicePlan,
) {
    let mut wanted = group.endpoints;
    let mut to_update: Vec<EndpointSlice> = Vec::new();
    let mut unchanged: Vec<EndpointSlice> = Vec::new();

    // 1. Keep the wanted endpoints where they are, refreshed; drop the rest.
    for mut slice in existing {
        let mut changed = false;
        let mut kept = Vec::new();
        for endpoint in endpoints_of(&slice) {
            // `remove`: an endpoint found twice (in two slices) is kept once.
            match wanted.remove(&EndpointKey::of(endpoint)) {
                Some(want) => {
                    changed |= &want != endpoint;
                    kept.push(want);
                }
                None => changed = true,
            }
        }
        if changed && kept.is_empty() {
            result.delete.push(slice);
        } else if changed || slice.metadata.labels.as_ref() != Some(labels) {
            slice.endpoints = Some(kept);
            slice.metadata.labels = Some(labels.clone());
            to_update.push(slice);
        } else {
            unchanged.push(slice);
        }
    }

    // 2. Fill the slices we rewrite anyway, fullest first.
    to_update.sort_by_key(|s| Reverse(endpoints_of(s).len()));
    for slice in &mut to_update {
        fill(slice, &mut wanted, max_per_slice);
    }

    // 3. The rest: into the unchanged slice they fit best, or new slices.
    while !wanted.is_empty() {
        let best = (wanted.len() < max_per_slice)
            .then(|| closest_fit(&unchanged, wanted.len(), max_per_slice))
            .flatten();
        let mut slice = match best {
            Some(i) => unchanged.swap_remove(i),
            None => new_slice(service, group.ports.clone()),
        };
        fill(&mut slice, &mut wanted, max_per_slice);
        if slice.metadata.name.is_some() {
            to_update.push(slice);
        } else {
            result.create.push(slice);
        }
    }
    result.update.extend(to_update);
}

fn fill(slice: &mut EndpointSlice, wanted: &mut BTreeMap<EndpointKey, Endpoint>, max: usize) {
    let endpoints = slice.endpoints.get_or_insert_with(Vec::new);
    while endpoints.len() < max {
        let Some((_, endpoint)) = wanted.pop_first() else {
            break;
        };
        endpoints.push(endpoint);
    }
}

/// The slice that would be closest to full after taking `count` more
/// endpoints (upstream's `getSliceToFill`).
fn closest_fit(slices: &[EndpointSlice], count: usize, max: usize) -> Option<usize> {
    slices
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            max.checked_sub(count + endpoints_of(s).len())
                .map(|room| (room, i))
        })
        .min()
        .map(|(_, i)| i)
}

/// The slices of `service` this controller manages, read from the
/// apiserver (not a cache; see [`crate::endpoints`] for why).
pub async fn list_managed(
    api: &Api<EndpointSlice>,
    service_name: &str,
) -> Result<Vec<EndpointSlice>> {
    let selector =
        format!("{SERVICE_NAME_LABEL}={service_name},{LABEL_MANAGED_BY}={CONTROLLER_NAME}");
    Ok(api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items)
}

/// Sends the writes of `plan`: creates first, then updates, then deletes,
/// so an endpoint moving between slices is never missing in between.
/// Every written slice gets the trigger time (or loses a stale one).
pub async fn apply(
    api: &Api<EndpointSlice>,
    plan: SlicePlan,
    trigger_time: Option<Timestamp>,
) -> Result<()> {
    for mut slice in plan.create {
        stamp(&mut slice, trigger_time);
        api.create(&PostParams::default(), &slice).await?;
    }
    for mut slice in plan.update {
        stamp(&mut slice, trigger_time);
        let name = slice.name_any();
        api.replace(&name, &PostParams::default(), &slice).await?;
    }
    for slice in plan.delete {
        match api
            .delete(&slice.name_any(), &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn stamp(slice: &mut EndpointSlice, trigger_time: Option<Timestamp>) {
    let annotations = slice.metadata.annotations.get_or_insert_with(BTreeMap::new);
    match trigger_time {
        Some(t) => {
            annotations.insert(LAST_CHANGE_TRIGGER_TIME.into(), format_trigger_time(t));
        }
        None => {
            annotations.remove(LAST_CHANGE_TRIGGER_TIME);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(ports: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid",
                         "labels": {"app": "web"}},
            "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.10", "ports": ports}
        }))
        .unwrap()
    }

    fn pod(i: usize, ready: bool, http_port: i32) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": format!("web-{i}"), "namespace": "default",
                             "uid": format!("uid-{i}"), "labels": {"app": "web"}},
                "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "nginx",
                         "ports": [{"name": "http", "containerPort": http_port}]}]},
                "status": {"phase": "Running", "podIP": format!("10.244.{}.{}", i / 200, i % 200 + 2),
                           "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
            }))
            .unwrap(),
        )
    }

    fn unnamed_80() -> serde_json::Value {
        json!([{"port": 80, "targetPort": 80, "protocol": "TCP"}])
    }

    /// What the apiserver would hand back: the planned slices, named.
    fn written(plan: SlicePlan) -> Vec<EndpointSlice> {
        let mut slices = plan.update;
        for (i, mut slice) in plan.create.into_iter().enumerate() {
            slice.metadata.name = Some(format!("web-new{i}"));
            slices.push(slice);
        }
        slices
    }

    fn count(slices: &[EndpointSlice]) -> usize {
        slices.iter().map(|s| endpoints_of(s).len()).sum()
    }

    #[test]
    fn two_pods_make_one_slice_with_an_unnamed_port() {
        let svc = service(unnamed_80());
        let pods = vec![pod(1, true, 80), pod(2, false, 80)];
        let plan = plan(
            &svc,
            desired_endpoints(&svc, &pods),
            vec![],
            MAX_ENDPOINTS_PER_SLICE,
        );
        assert_eq!(plan.create.len(), 1);
        assert!(plan.update.is_empty() && plan.delete.is_empty());
        let slice = &plan.create[0];
        assert_eq!(slice.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(slice.address_type, "IPv4");
        let labels = slice.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[SERVICE_NAME_LABEL], "web");
        assert_eq!(labels[LABEL_MANAGED_BY], CONTROLLER_NAME);
        assert_eq!(labels["app"], "web");
        let owner = &slice.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Service", "svc-uid")
        );
        assert_eq!(
            (owner.controller, owner.block_owner_deletion),
            (Some(true), Some(true))
        );
        let port = &slice.ports.as_ref().unwrap()[0];
        assert_eq!(port.name.as_deref(), Some(""));
        assert_eq!(port.port, Some(80));
        let endpoints = endpoints_of(slice);
        assert_eq!(endpoints.len(), 2);
        let ready: Vec<_> = endpoints
            .iter()
            .map(|e| e.conditions.as_ref().unwrap().ready)
            .collect();
        assert_eq!(ready, vec![Some(true), Some(false)]);
        assert_eq!(endpoints[0].node_name.as_deref(), Some("node-a"));
        assert_eq!(
            endpoints[0].target_ref.as_ref().unwrap().name.as_deref(),
            Some("web-1")
        );
    }

    #[test]
    fn planning_again_over_its_own_result_changes_nothing() {
        let svc = service(unnamed_80());
        let pods: Vec<_> = (0..150).map(|i| pod(i, i % 3 != 0, 80)).collect();
        let first = written(plan(&svc, desired_endpoints(&svc, &pods), vec![], 100));
        assert_eq!(first.len(), 2);
        assert!(first.iter().all(|s| endpoints_of(s).len() <= 100));
        assert_eq!(count(&first), 150);
        let again = plan(&svc, desired_endpoints(&svc, &pods), first, 100);
        assert!(again.is_empty(), "{again:?}");
    }

    #[test]
    fn a_pod_turning_ready_rewrites_only_its_slice() {
        let svc = service(unnamed_80());
        let mut pods: Vec<_> = (0..150).map(|i| pod(i, false, 80)).collect();
        let slices = written(plan(&svc, desired_endpoints(&svc, &pods), vec![], 100));
        pods[7] = pod(7, true, 80);
        let change = plan(&svc, desired_endpoints(&svc, &pods), slices, 100);
        assert!(change.create.is_empty() && change.delete.is_empty());
        assert_eq!(change.update.len(), 1);
        let updated = &change.update[0];
        let seven = endpoints_of(updated)
            .iter()
            .find(|e| e.target_ref.as_ref().unwrap().name.as_deref() == Some("web-7"))
            .expect("web-7 stays in its slice");
        assert_eq!(seven.conditions.as_ref().unwrap().ready, Some(true));
    }

    #[test]
    fn new_endpoints_fill_the_slice_being_rewritten() {
        let svc = service(unnamed_80());
        let pods: Vec<_> = (0..10).map(|i| pod(i, true, 80)).collect();
        let slices = written(plan(&svc, desired_endpoints(&svc, &pods), vec![], 100));
        // Pod 0 goes, pods 10 and 11 come: one update, no new slice.
        let pods: Vec<_> = (1..12).map(|i| pod(i, true, 80)).collect();
        let change = plan(&svc, desired_endpoints(&svc, &pods), slices, 100);
        assert!(change.create.is_empty() && change.delete.is_empty());
        assert_eq!(change.update.len(), 1);
        assert_eq!(endpoints_of(&change.update[0]).len(), 11);
    }

    #[test]
    fn named_target_ports_split_pods_into_slices() {
        let svc =
            service(json!([{"name": "web", "port": 80, "targetPort": "http", "protocol": "TCP"}]));
        let pods = vec![pod(1, true, 8080), pod(2, true, 9090)];
        let plan = plan(&svc, desired_endpoints(&svc, &pods), vec![], 100);
        let mut ports: Vec<_> = plan
            .create
            .iter()
            .map(|s| {
                let p = &s.ports.as_ref().unwrap()[0];
                (
                    p.name.clone().unwrap(),
                    p.port.unwrap(),
                    endpoints_of(s).len(),
                )
            })
            .collect();
        ports.sort();
        assert_eq!(
            ports,
            vec![("web".into(), 8080, 1), ("web".into(), 9090, 1)]
        );
    }

    #[test]
    fn no_endpoints_leave_one_placeholder() {
        let svc = service(unnamed_80());
        let slices = written(plan(
            &svc,
            desired_endpoints(&svc, &[pod(1, true, 80)]),
            vec![],
            100,
        ));
        // The only Pod goes: the slice is rewritten empty, as the placeholder.
        let change = plan(&svc, BTreeMap::new(), slices, 100);
        assert!(change.create.is_empty() && change.delete.is_empty());
        assert_eq!(change.update.len(), 1);
        assert!(endpoints_of(&change.update[0]).is_empty());
        assert!(change.update[0]
            .ports
            .as_deref()
            .unwrap_or_default()
            .is_empty());
        // And the placeholder is then left as it is.
        let placeholder = change.update;
        assert!(plan(&svc, BTreeMap::new(), placeholder, 100).is_empty());
    }

    #[test]
    fn slices_of_an_older_service_with_that_name_go() {
        let svc = service(unnamed_80());
        let mut slices = written(plan(
            &svc,
            desired_endpoints(&svc, &[pod(1, true, 80)]),
            vec![],
            100,
        ));
        slices[0].metadata.owner_references.as_mut().unwrap()[0].uid = "old-uid".into();
        let change = plan(
            &svc,
            desired_endpoints(&svc, &[pod(1, true, 80)]),
            slices,
            100,
        );
        assert_eq!(change.create.len(), 1);
        assert_eq!(change.delete.len(), 1);
    }

    #[test]
    fn terminating_pods_stay_marked_terminating() {
        let svc = service(unnamed_80());
        let mut terminating = (*pod(1, true, 80)).clone();
        terminating.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()),
        );
        let groups = desired_endpoints(&svc, &[Arc::new(terminating)]);
        let endpoint = groups
            .values()
            .next()
            .unwrap()
            .endpoints
            .values()
            .next()
            .unwrap();
        let conditions = endpoint.conditions.as_ref().unwrap();
        assert_eq!(
            (conditions.ready, conditions.serving, conditions.terminating),
            (Some(false), Some(true), Some(true))
        );
    }
}
