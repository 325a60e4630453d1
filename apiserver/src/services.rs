//! Service allocation: giving each Service its ClusterIP and NodePorts.
//!
//! When `kubectl apply -f ngx-svc.yml` creates a Service, the API server,
//! not a controller, picks its `spec.clusterIP` (and for a NodePort
//! Service, a `nodePort` for every port) before the object is stored. That
//! way the address is in the very first version anyone watches, and two
//! Services can never be handed the same one. This module is that step
//! (upstream: `pkg/registry/core/service/storage`), on top of the two
//! allocators in [`crate::clusterip`] and [`crate::nodeport`].
//!
//! The allocators live in memory; what persists is the Services themselves.
//! At start-up [`ServiceAllocations::rebuild`] marks every address and port
//! that a stored Service holds, exactly as upstream's repair loop trusts the
//! objects over its bitmaps.
//!
//! # A write is a small transaction
//!
//! Allocation happens *before* the object is written, and the write may
//! still fail (validation, a conflict, storage). So [`ServiceAllocations::allocate`]
//! returns an [`Allocation`] saying what it took and what the old object
//! held that the new one gives up:
//!
//! - [`Allocation::rollback`] when the write fails: what was newly taken is
//!   given back, and nothing the stored object holds is touched;
//! - [`Allocation::commit`] when it succeeds: what the old object held and
//!   the new one does not is given back. Until then those stay taken, so a
//!   concurrent request can never grab an IP the stored object still uses.
//!
//! # Updates without the allocated fields
//!
//! `kubectl apply` and a PUT built from a manifest send Services without
//! `clusterIP` or `nodePort`. Like upstream's `PrepareForUpdate`, an update
//! that omits them keeps the stored ones ([`prepare_for_update`]), and a
//! change of type that no longer needs them (NodePort -> ClusterIP) drops
//! them, so the client does not have to know what the server chose.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde_json::{json, Value};

use crate::clusterip::{self, ClusterIpAllocator};
use crate::nodeport::{self, NodePortAllocator};
use crate::status::{FieldError, StatusError, Subject};
use crate::validation::{self, quote, render};

/// The allocators of one API server, shared by all request handlers.
#[derive(Debug)]
pub struct ServiceAllocations {
    cluster_ips: Mutex<ClusterIpAllocator>,
    node_ports: Mutex<NodePortAllocator>,
}

/// The allocator flags could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--service-cluster-ip-range: {0}")]
    ServiceCidr(#[source] clusterip::AllocError),
    #[error("--service-node-port-range: {0}")]
    NodePortRange(#[source] nodeport::AllocError),
}

/// What one [`ServiceAllocations::allocate`] call changed, to be settled
/// once the storage write is known to have succeeded or failed.
#[must_use = "call commit() after the write succeeds, or rollback() if it fails"]
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Allocation {
    allocated_ips: Vec<Ipv4Addr>,
    allocated_node_ports: Vec<u16>,
    released_ips: Vec<Ipv4Addr>,
    released_node_ports: Vec<u16>,
}

impl Allocation {
    /// IPs this call took for the new object.
    pub fn allocated_ips(&self) -> &[Ipv4Addr] {
        &self.allocated_ips
    }

    /// NodePorts (health-check port included) this call took.
    pub fn allocated_node_ports(&self) -> &[u16] {
        &self.allocated_node_ports
    }

    /// IPs the old object held and the new one does not: freed on commit.
    pub fn released_ips(&self) -> &[Ipv4Addr] {
        &self.released_ips
    }

    /// NodePorts the old object held and the new one does not.
    pub fn released_node_ports(&self) -> &[u16] {
        &self.released_node_ports
    }

    /// The write failed: give back what this call took.
    pub fn rollback(self, allocations: &ServiceAllocations) {
        let (mut ips, mut ports) = allocations.lock();
        self.undo(&mut ips, &mut ports);
    }

    /// The write succeeded: give back what the old object no longer holds.
    pub fn commit(self, allocations: &ServiceAllocations) {
        let (mut ips, mut ports) = allocations.lock();
        for ip in &self.released_ips {
            ips.release(*ip);
        }
        for port in &self.released_node_ports {
            ports.release(*port);
        }
    }

    fn undo(&self, ips: &mut ClusterIpAllocator, ports: &mut NodePortAllocator) {
        for ip in &self.allocated_ips {
            ips.release(*ip);
        }
        for port in &self.allocated_node_ports {
            ports.release(*port);
        }
    }
}

impl ServiceAllocations {
    /// Allocators over the service CIDR (`10.96.0.0/12`) and the NodePort
    /// range (`30000-32767`).
    pub fn new(service_cidr: &str, node_port_range: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            cluster_ips: Mutex::new(
                ClusterIpAllocator::new(service_cidr).map_err(ConfigError::ServiceCidr)?,
            ),
            node_ports: Mutex::new(
                NodePortAllocator::new(node_port_range).map_err(ConfigError::NodePortRange)?,
            ),
        })
    }

    /// The service CIDR, as `10.96.0.0/12`.
    pub fn service_cidr(&self) -> String {
        self.lock().0.range_string()
    }

    /// The NodePort range, as `30000-32767`.
    pub fn node_port_range(&self) -> String {
        self.lock().1.range_string()
    }

    pub fn is_ip_allocated(&self, ip: Ipv4Addr) -> bool {
        self.lock().0.is_allocated(ip)
    }

    pub fn is_node_port_allocated(&self, port: u16) -> bool {
        self.lock().1.is_allocated(port)
    }

    /// Forgets every allocation and marks those of `services`, the Services
    /// in storage. Called once at start-up.
    pub fn rebuild<'a>(&self, services: impl Iterator<Item = &'a Value>) {
        let (mut ips, mut ports) = self.lock();
        ips.clear();
        ports.clear();
        for svc in services {
            let name = format!(
                "{}/{}",
                svc["metadata"]["namespace"].as_str().unwrap_or(""),
                svc["metadata"]["name"].as_str().unwrap_or("")
            );
            for ip in held_cluster_ips(svc) {
                if let Err(e) = ips.allocate_specific(ip) {
                    tracing::warn!(service = %name, %ip, error = %e, "stored Service holds a ClusterIP that cannot be marked");
                }
            }
            for port in held_node_ports(svc) {
                if let Err(e) = ports.allocate_specific(port) {
                    tracing::warn!(service = %name, port, error = %e, "stored Service holds a NodePort that cannot be marked");
                }
            }
        }
    }

    /// Fills in and reserves the ClusterIP and NodePorts of `svc`, a Service
    /// being created (`old` is `None`) or replacing `old`.
    ///
    /// Requested values are honoured or refused with `422 Invalid`; a full
    /// range is a `500`, as upstream. Nothing stays reserved when this
    /// returns an error.
    pub fn allocate(
        &self,
        svc: &mut Value,
        old: Option<&Value>,
    ) -> Result<Allocation, StatusError> {
        if !svc.is_object() || !(svc["spec"].is_object() || svc["spec"].is_null()) {
            return Err(StatusError::bad_request(
                "a Service's spec must be an object",
            ));
        }
        match old {
            Some(old) => prepare_for_update(svc, old),
            None => prepare_for_create(svc),
        }
        let name = svc["metadata"]["name"].as_str().unwrap_or("").to_string();
        let invalid = |errors: Vec<FieldError>| {
            StatusError::invalid(
                Subject {
                    plural: "services",
                    group: "",
                    kind: "Service",
                    name: &name,
                },
                &errors,
            )
        };
        init_ip_family_fields(svc, old).map_err(invalid)?;

        let (mut ips, mut ports) = self.lock();
        let mut txn = Allocation::default();
        let result = assign_cluster_ips(&mut ips, svc, old, &mut txn)
            .and_then(|()| assign_node_ports(&mut ports, svc, old, &mut txn));
        match result {
            Ok(()) => Ok(txn),
            Err(err) => {
                txn.undo(&mut ips, &mut ports);
                Err(match err {
                    AssignError::Invalid(errors) => invalid(errors),
                    AssignError::Internal(message) => {
                        StatusError::internal(format!("Internal error occurred: {message}"))
                    }
                })
            }
        }
    }

    /// Gives back everything `svc` holds; called once a Service is deleted.
    pub fn release(&self, svc: &Value) {
        let (mut ips, mut ports) = self.lock();
        for ip in held_cluster_ips(svc) {
            ips.release(ip);
        }
        for port in held_node_ports(svc) {
            ports.release(port);
        }
    }

    /// Both allocators, always locked in this order so that concurrent
    /// calls cannot deadlock. A panic while holding them cannot leave them
    /// half-changed, so a poisoned lock is simply taken over.
    fn lock(
        &self,
    ) -> (
        MutexGuard<'_, ClusterIpAllocator>,
        MutexGuard<'_, NodePortAllocator>,
    ) {
        let ips = self
            .cluster_ips
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let ports = self
            .node_ports
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        (ips, ports)
    }
}

/// Why an assignment failed: a field problem (422) or an exhausted range (500).
enum AssignError {
    Invalid(Vec<FieldError>),
    Internal(String),
}

// ---------------------------------------------------------------------------
// Preparing the object (upstream's strategy PrepareForCreate/PrepareForUpdate)

/// Before a create: a client that set only `clusterIP` gets `clusterIPs`
/// to match (`NormalizeClusterIPs`).
pub fn prepare_for_create(svc: &mut Value) {
    let Some(spec) = spec_mut(svc) else {
        return;
    };
    let cluster_ip = str_of(spec, "clusterIP").to_string();
    if !cluster_ip.is_empty() && strings_of(spec, "clusterIPs").is_empty() {
        spec["clusterIPs"] = json!([cluster_ip]);
    }
}

/// Before an update: keep what the server allocated when the client left it
/// out, keep `clusterIP` and `clusterIPs` in step, and drop what the new
/// type no longer needs (`patchAllocatedValues`, `NormalizeClusterIPs`,
/// `dropTypeDependentFields`). Idempotent.
pub fn prepare_for_update(svc: &mut Value, old: &Value) {
    let old_spec = old.get("spec").cloned().unwrap_or(Value::Null);
    let Some(spec) = spec_mut(svc) else {
        return;
    };
    patch_allocated_values(spec, &old_spec);
    normalize_cluster_ips_on_update(spec, &old_spec);
    drop_type_dependent_fields(spec, &old_spec);
}

fn patch_allocated_values(spec: &mut Value, old: &Value) {
    if needs_cluster_ip(old) && needs_cluster_ip(spec) {
        if str_of(spec, "clusterIP").is_empty() && !str_of(old, "clusterIP").is_empty() {
            spec["clusterIP"] = old["clusterIP"].clone();
        }
        if strings_of(spec, "clusterIPs").is_empty() && !strings_of(old, "clusterIPs").is_empty() {
            spec["clusterIPs"] = old["clusterIPs"].clone();
        }
    }
    if needs_node_port(old) && needs_node_port(spec) {
        // NodePorts both versions name explicitly cannot be handed to
        // another port.
        let old_used: BTreeSet<i64> = node_ports_of(old).into_iter().collect();
        let new_used: BTreeSet<i64> = node_ports_of(spec).into_iter().collect();
        let mut used: BTreeSet<i64> = old_used.intersection(&new_used).copied().collect();
        let old_ports = list_of(old, "ports");
        for port in list_mut(spec, "ports") {
            if int_of(port, "nodePort") != 0 {
                continue;
            }
            // Same port name first (upstream), then same port and protocol.
            let previous = old_ports
                .iter()
                .find(|p| str_of(p, "name") == str_of(port, "name"))
                .map(|p| int_of(p, "nodePort"))
                .filter(|np| *np != 0 && !used.contains(np))
                .or_else(|| {
                    old_ports
                        .iter()
                        .find(|p| {
                            int_of(p, "port") == int_of(port, "port")
                                && protocol_of(p) == protocol_of(port)
                        })
                        .map(|p| int_of(p, "nodePort"))
                        .filter(|np| *np != 0 && !used.contains(np))
                });
            if let Some(np) = previous {
                port["nodePort"] = json!(np);
                used.insert(np);
            }
        }
    }
    if needs_health_check(old)
        && needs_health_check(spec)
        && int_of(spec, "healthCheckNodePort") == 0
    {
        spec["healthCheckNodePort"] = old["healthCheckNodePort"].clone();
    }
}

fn normalize_cluster_ips_on_update(spec: &mut Value, old: &Value) {
    let old_ip = str_of(old, "clusterIP").to_string();
    let new_ip = str_of(spec, "clusterIP").to_string();
    // An older client patching something else left clusterIPs out.
    if !strings_of(old, "clusterIPs").is_empty()
        && strings_of(spec, "clusterIPs").is_empty()
        && old_ip == new_ip
    {
        spec["clusterIPs"] = old["clusterIPs"].clone();
    }
    if old_ip != new_ip {
        let same_ips = strings_of(old, "clusterIPs") == strings_of(spec, "clusterIPs");
        if !old_ip.is_empty() && new_ip.is_empty() && same_ips {
            // Clearing clusterIP clears its twin.
            remove(spec, "clusterIPs");
        }
        if !new_ip.is_empty() && same_ips {
            spec["clusterIPs"] = json!([new_ip]);
        }
    }
}

fn drop_type_dependent_fields(spec: &mut Value, old: &Value) {
    if needs_cluster_ip(old) && !needs_cluster_ip(spec) {
        if strings_of(old, "clusterIPs") == strings_of(spec, "clusterIPs")
            && str_of(old, "clusterIP") == str_of(spec, "clusterIP")
        {
            remove(spec, "clusterIP");
            remove(spec, "clusterIPs");
        }
        if old.get("ipFamilies") == spec.get("ipFamilies") {
            remove(spec, "ipFamilies");
        }
        if old.get("ipFamilyPolicy") == spec.get("ipFamilyPolicy") {
            remove(spec, "ipFamilyPolicy");
        }
    }
    if needs_node_port(old) && !needs_node_port(spec) {
        let old_ports = list_of(old, "ports");
        let same = old_ports.len() == list_of(spec, "ports").len()
            && old_ports
                .iter()
                .zip(list_of(spec, "ports"))
                .all(|(a, b)| int_of(a, "nodePort") == int_of(b, "nodePort"));
        if same {
            for port in list_mut(spec, "ports") {
                remove(port, "nodePort");
            }
        }
    }
    if needs_health_check(old)
        && !needs_health_check(spec)
        && int_of(old, "healthCheckNodePort") == int_of(spec, "healthCheckNodePort")
    {
        remove(spec, "healthCheckNodePort");
    }
    if str_of(old, "type") == "LoadBalancer" && str_of(spec, "type") != "LoadBalancer" {
        let old_value = old
            .get("allocateLoadBalancerNodePorts")
            .filter(|v| !v.is_null());
        if old_value.is_some() && old_value == spec.get("allocateLoadBalancerNodePorts") {
            remove(spec, "allocateLoadBalancerNodePorts");
        }
        let old_class = old.get("loadBalancerClass").filter(|v| !v.is_null());
        if old_class.is_some() && old_class == spec.get("loadBalancerClass") {
            remove(spec, "loadBalancerClass");
        }
    }
    if crate::defaults::externally_accessible(old)
        && !crate::defaults::externally_accessible(spec)
        && str_of(old, "externalTrafficPolicy") == str_of(spec, "externalTrafficPolicy")
    {
        remove(spec, "externalTrafficPolicy");
    }
}

/// Fills `ipFamilyPolicy` and `ipFamilies` and refuses what this IPv4
/// single-stack cluster cannot do (upstream's `initIPFamilyFields`).
fn init_ip_family_fields(svc: &mut Value, old: Option<&Value>) -> Result<(), Vec<FieldError>> {
    let Some(spec) = spec_mut(svc) else {
        return Ok(());
    };
    if !needs_cluster_ip(spec) {
        return Ok(());
    }
    if str_of(spec, "ipFamilyPolicy").is_empty() {
        let old_policy = old
            .map(|o| str_of(&o["spec"], "ipFamilyPolicy"))
            .unwrap_or("");
        let policy = if !old_policy.is_empty() {
            old_policy
        } else if str_of(spec, "clusterIP") == "None" && is_selectorless(spec) {
            // Headless without a selector: endpoints of any family may come.
            "RequireDualStack"
        } else {
            "SingleStack"
        };
        spec["ipFamilyPolicy"] = json!(policy);
    }
    let errors = validation::service::cluster_ips_related_fields(spec);
    if !errors.is_empty() {
        return Err(errors);
    }

    let mut errors = Vec::new();
    let policy = str_of(spec, "ipFamilyPolicy").to_string();
    let policy_rendered = quote(&policy);
    if let Some(old) = old {
        let old_spec = &old["spec"];
        if policy == "SingleStack" {
            // Going single-stack with the same values is a clear intent:
            // keep only the primary.
            let ips = strings_of(spec, "clusterIPs");
            if ips == strings_of(old_spec, "clusterIPs") && ips.len() > 1 {
                spec["clusterIPs"] = json!([ips[0]]);
            }
            let families = strings_of(spec, "ipFamilies");
            if families == strings_of(old_spec, "ipFamilies") && families.len() > 1 {
                spec["ipFamilies"] = json!([families[0]]);
            }
        } else {
            if strings_of(spec, "clusterIPs").len() < strings_of(old_spec, "clusterIPs").len() {
                errors.push(FieldError::invalid(
                    "spec.ipFamilyPolicy",
                    &policy_rendered,
                    "must be 'SingleStack' to release the secondary cluster IP",
                ));
            }
            if strings_of(spec, "ipFamilies").len() < strings_of(old_spec, "ipFamilies").len() {
                errors.push(FieldError::invalid(
                    "spec.ipFamilyPolicy",
                    &policy_rendered,
                    "must be 'SingleStack' to release the secondary IP family",
                ));
            }
        }
    }
    if policy == "SingleStack" {
        if strings_of(spec, "clusterIPs").len() == 2 {
            errors.push(FieldError::invalid(
                "spec.ipFamilyPolicy",
                &policy_rendered,
                "must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified",
            ));
        }
        if strings_of(spec, "ipFamilies").len() == 2 {
            errors.push(FieldError::invalid(
                "spec.ipFamilyPolicy",
                &policy_rendered,
                "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified",
            ));
        }
    }
    // Infer families from the requested IPs.
    let mut families = strings_of(spec, "ipFamilies");
    for (i, ip) in strings_of(spec, "clusterIPs").iter().enumerate() {
        if ip == "None" {
            break;
        }
        if i >= families.len() {
            if ip.contains(':') {
                errors.push(FieldError::invalid(
                    format!("spec.clusterIPs[{i}]"),
                    render(spec.get("clusterIPs")),
                    "IPv6 is not configured on this cluster",
                ));
            } else {
                families.push("IPv4".into());
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if str_of(spec, "clusterIP") == "None" && is_selectorless(spec) {
        if families.is_empty() {
            families.push("IPv4".into());
        }
        if families.len() < 2 && policy != "SingleStack" {
            let other = if families[0] == "IPv4" {
                "IPv6"
            } else {
                "IPv4"
            };
            families.push(other.into());
        }
        spec["ipFamilies"] = json!(families);
        return Ok(());
    }
    if policy == "RequireDualStack" {
        errors.push(FieldError::invalid(
            "spec.ipFamilyPolicy",
            &policy_rendered,
            "this cluster is not configured for dual-stack services",
        ));
    }
    for (i, family) in families.iter().enumerate() {
        if family != "IPv4" {
            errors.push(FieldError::invalid(
                format!("spec.ipFamilies[{i}]"),
                quote(family),
                "not configured on this cluster",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if families.is_empty() {
        families.push("IPv4".into());
    }
    spec["ipFamilies"] = json!(families);
    Ok(())
}

// ---------------------------------------------------------------------------
// Assigning values

fn assign_cluster_ips(
    ips: &mut ClusterIpAllocator,
    svc: &mut Value,
    old: Option<&Value>,
    txn: &mut Allocation,
) -> Result<(), AssignError> {
    let old_ips = old.map(held_cluster_ips).unwrap_or_default();
    let Some(spec) = spec_mut(svc) else {
        return Ok(());
    };
    if needs_cluster_ip(spec) && !api::service::is_headless_spec(spec) {
        let requested = strings_of(spec, "clusterIPs");
        match requested.first().map(String::as_str) {
            None | Some("") => {
                let ip = ips.allocate().map_err(|e| {
                    AssignError::Internal(format!("failed to allocate a serviceIP: {e}"))
                })?;
                txn.allocated_ips.push(ip);
                spec["clusterIP"] = json!(ip.to_string());
                spec["clusterIPs"] = json!([ip.to_string()]);
            }
            Some(wanted) => {
                // Validation refused malformed IPs already.
                let ip: Ipv4Addr = wanted.parse().map_err(|_| {
                    AssignError::Internal(format!("failed to parse service IP {}", quote(wanted)))
                })?;
                if !old_ips.contains(&ip) {
                    ips.allocate_specific(ip).map_err(|e| {
                        AssignError::Invalid(vec![FieldError::invalid(
                            "spec.clusterIPs",
                            render(spec.get("clusterIPs")),
                            format!("failed to allocate IP {wanted}: {e}"),
                        )])
                    })?;
                    txn.allocated_ips.push(ip);
                }
            }
        }
    }
    let kept = held_cluster_ips(svc);
    txn.released_ips
        .extend(old_ips.into_iter().filter(|ip| !kept.contains(ip)));
    Ok(())
}

fn assign_node_ports(
    ports: &mut NodePortAllocator,
    svc: &mut Value,
    old: Option<&Value>,
    txn: &mut Allocation,
) -> Result<(), AssignError> {
    let old_ports: BTreeSet<u16> = old
        .map(held_node_ports)
        .unwrap_or_default()
        .into_iter()
        .collect();
    let Some(spec) = spec_mut(svc) else {
        return Ok(());
    };

    let range = ports.range();
    let out_of_range = |requested: i64| {
        nodeport::AllocError::NotInRange {
            port: u16::try_from(requested).unwrap_or(0),
            range,
        }
        .to_string()
    };

    if needs_node_port(spec) {
        let allocate_new = !(str_of(spec, "type") == "LoadBalancer"
            && spec["allocateLoadBalancerNodePorts"] == json!(false));
        // One NodePort serves a port number for every protocol
        // (53/TCP and 53/UDP share one), as upstream does.
        let mut by_port: HashMap<i64, u16> = HashMap::new();
        let requested_for = |spec: &Value, port_number: i64| -> i64 {
            list_of(spec, "ports")
                .iter()
                .find(|p| int_of(p, "port") == port_number && int_of(p, "nodePort") != 0)
                .map_or(0, |p| int_of(p, "nodePort"))
        };
        let count = list_of(spec, "ports").len();
        for i in 0..count {
            let port_number = int_of(&spec["ports"][i], "port");
            let mut requested = int_of(&spec["ports"][i], "nodePort");
            if requested == 0 && !allocate_new {
                continue; // only explicit requests are honoured
            }
            if requested == 0 {
                if let Some(shared) = by_port.get(&port_number) {
                    spec["ports"][i]["nodePort"] = json!(shared);
                    continue;
                }
                requested = requested_for(spec, port_number);
            }
            let path = format!("spec.ports[{i}].nodePort");
            let np = if requested != 0 {
                // A port the Service already holds stays valid even if the
                // range has changed since.
                let np = u16::try_from(requested)
                    .ok()
                    .filter(|p| old_ports.contains(p) || range.contains(*p))
                    .ok_or_else(|| {
                        AssignError::Invalid(vec![FieldError::invalid(
                            &path,
                            requested.to_string(),
                            out_of_range(requested),
                        )])
                    })?;
                take_node_port(ports, txn, &old_ports, np).map_err(|e| {
                    AssignError::Invalid(vec![FieldError::invalid(
                        &path,
                        requested.to_string(),
                        e.to_string(),
                    )])
                })?;
                np
            } else {
                let np = ports.allocate().map_err(|e| {
                    AssignError::Internal(format!("failed to allocate a nodePort: {e}"))
                })?;
                txn.allocated_node_ports.push(np);
                np
            };
            spec["ports"][i]["nodePort"] = json!(np);
            by_port.entry(port_number).or_insert(np);
        }
    }

    if needs_health_check(spec) {
        let requested = int_of(spec, "healthCheckNodePort");
        if requested != 0 {
            let np = u16::try_from(requested).ok().filter(|p| range.contains(*p));
            let result = match np {
                Some(np) => take_node_port(ports, txn, &old_ports, np).map_err(|e| e.to_string()),
                None => Err(out_of_range(requested)),
            };
            result.map_err(|e| {
                AssignError::Internal(format!(
                    "failed to allocate requested HealthCheck NodePort {requested}: {e}"
                ))
            })?;
        } else {
            let np = ports.allocate().map_err(|e| {
                AssignError::Internal(format!("failed to allocate a HealthCheck NodePort: {e}"))
            })?;
            txn.allocated_node_ports.push(np);
            spec["healthCheckNodePort"] = json!(np);
        }
    }

    let kept: BTreeSet<u16> = held_node_ports(svc).into_iter().collect();
    txn.released_node_ports
        .extend(old_ports.into_iter().filter(|p| !kept.contains(p)));
    Ok(())
}

/// Takes `port` for the Service unless it holds it already (from its old
/// version, or from another of its ports earlier in this call).
fn take_node_port(
    ports: &mut NodePortAllocator,
    txn: &mut Allocation,
    old_ports: &BTreeSet<u16>,
    port: u16,
) -> Result<(), nodeport::AllocError> {
    if old_ports.contains(&port) || txn.allocated_node_ports.contains(&port) {
        return Ok(());
    }
    ports.allocate_specific(port)?;
    txn.allocated_node_ports.push(port);
    Ok(())
}

// ---------------------------------------------------------------------------
// What a Service needs and holds

/// Every type but ExternalName gets a ClusterIP (or is headless).
fn needs_cluster_ip(spec: &Value) -> bool {
    str_of(spec, "type") != "ExternalName"
}

fn needs_node_port(spec: &Value) -> bool {
    matches!(str_of(spec, "type"), "NodePort" | "LoadBalancer")
}

/// A LoadBalancer that keeps client IPs needs a port for the cloud load
/// balancer's health checks (`NeedsHealthCheck`).
fn needs_health_check(spec: &Value) -> bool {
    str_of(spec, "type") == "LoadBalancer" && str_of(spec, "externalTrafficPolicy") == "Local"
}

fn is_selectorless(spec: &Value) -> bool {
    spec.get("selector")
        .and_then(Value::as_object)
        .is_none_or(|s| s.is_empty())
}

/// The ClusterIPs `svc` holds in the allocator.
fn held_cluster_ips(svc: &Value) -> Vec<Ipv4Addr> {
    let spec = &svc["spec"];
    if !needs_cluster_ip(spec) {
        return Vec::new();
    }
    let mut ips = strings_of(spec, "clusterIPs");
    if ips.is_empty() && !str_of(spec, "clusterIP").is_empty() {
        ips.push(str_of(spec, "clusterIP").to_string());
    }
    ips.iter().filter_map(|ip| ip.parse().ok()).collect()
}

/// The NodePorts (health-check port included) `svc` holds, each once.
fn held_node_ports(svc: &Value) -> Vec<u16> {
    let spec = &svc["spec"];
    let mut ports: BTreeSet<u16> = node_ports_of(spec)
        .into_iter()
        .filter_map(|p| u16::try_from(p).ok())
        .collect();
    if let Ok(hc) = u16::try_from(int_of(spec, "healthCheckNodePort")) {
        if hc != 0 {
            ports.insert(hc);
        }
    }
    ports.into_iter().collect()
}

fn node_ports_of(spec: &Value) -> Vec<i64> {
    list_of(spec, "ports")
        .iter()
        .map(|p| int_of(p, "nodePort"))
        .filter(|np| *np != 0)
        .collect()
}

// ---------------------------------------------------------------------------
// JSON plumbing

/// `svc.spec` as a mutable object, created when absent.
fn spec_mut(svc: &mut Value) -> Option<&mut Value> {
    let map = svc.as_object_mut()?;
    let spec = map.entry("spec").or_insert(Value::Null);
    if spec.is_null() {
        *spec = json!({});
    }
    spec.is_object().then_some(spec)
}

fn str_of<'a>(obj: &'a Value, key: &str) -> &'a str {
    obj.get(key).and_then(Value::as_str).unwrap_or("")
}

fn int_of(obj: &Value, key: &str) -> i64 {
    obj.get(key).and_then(Value::as_i64).unwrap_or(0)
}

fn protocol_of(port: &Value) -> &str {
    match str_of(port, "protocol") {
        "" => "TCP",
        p => p,
    }
}

fn strings_of(obj: &Value, key: &str) -> Vec<String> {
    list_of(obj, key)
        .iter()
        .map(|v| v.as_str().unwrap_or("").to_string())
        .collect()
}

fn list_of<'a>(obj: &'a Value, key: &str) -> &'a [Value] {
    obj.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn list_mut<'a>(obj: &'a mut Value, key: &str) -> impl Iterator<Item = &'a mut Value> {
    obj.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter(|v| v.is_object())
}

fn remove(obj: &mut Value, key: &str) {
    if let Some(map) = obj.as_object_mut() {
        map.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defaults::apply_defaults;
    use api::resources::lookup;
    use std::sync::Arc;

    fn allocations() -> ServiceAllocations {
        ServiceAllocations::new("10.96.0.0/12", "30000-32767").unwrap()
    }

    /// A Service as the REST layer hands it over: defaulted.
    fn service(name: &str, spec: Value) -> Value {
        let mut svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": { "name": name, "namespace": "default" },
            "spec": spec,
        });
        apply_defaults(lookup("svc").unwrap(), &mut svc);
        svc
    }

    fn ngx_svc() -> Value {
        service(
            "ngx-svc",
            json!({ "selector": { "app": "ngx-dep" }, "ports": [{ "port": 80, "targetPort": 80, "protocol": "TCP" }] }),
        )
    }

    fn ngx_svc_nodeport() -> Value {
        service(
            "ngx-svc",
            json!({ "type": "NodePort", "selector": { "app": "ngx-dep" },
                "ports": [{ "port": 80, "targetPort": 80, "protocol": "TCP" }] }),
        )
    }

    fn ip_of(svc: &Value) -> Ipv4Addr {
        svc["spec"]["clusterIP"].as_str().unwrap().parse().unwrap()
    }

    fn node_port_of(svc: &Value, i: usize) -> u16 {
        svc["spec"]["ports"][i]["nodePort"].as_u64().unwrap() as u16
    }

    /// Allocates and commits, as a successful write does.
    fn create(allocs: &ServiceAllocations, mut svc: Value) -> Value {
        allocs.allocate(&mut svc, None).unwrap().commit(allocs);
        svc
    }

    #[test]
    fn creating_the_lesson_service_assigns_a_cluster_ip() {
        let allocs = allocations();
        let mut svc = ngx_svc();
        let allocation = allocs.allocate(&mut svc, None).unwrap();
        let ip = ip_of(&svc);
        assert_eq!(svc["spec"]["clusterIPs"], json!([ip.to_string()]));
        assert_eq!(svc["spec"]["ipFamilies"], json!(["IPv4"]));
        assert_eq!(svc["spec"]["ipFamilyPolicy"], "SingleStack");
        assert!(ClusterIpAllocator::new("10.96.0.0/12")
            .unwrap()
            .contains(ip));
        assert_eq!(allocation.allocated_ips(), &[ip]);
        assert!(allocation.allocated_node_ports().is_empty());
        assert!(svc["spec"]["ports"][0].get("nodePort").is_none());
        assert!(allocs.is_ip_allocated(ip));
        allocation.commit(&allocs);
        assert!(allocs.is_ip_allocated(ip));
        // The result passes validation as a real cluster's would.
        assert_eq!(
            crate::validation::validate(lookup("svc").unwrap(), &svc, None),
            vec![]
        );
    }

    #[test]
    fn a_requested_cluster_ip_is_honoured_once() {
        let allocs = allocations();
        let mut dns = service(
            "kube-dns",
            json!({ "clusterIP": "10.96.0.10", "ports": [{ "port": 53, "protocol": "UDP" }] }),
        );
        let allocation = allocs.allocate(&mut dns, None).unwrap();
        assert_eq!(dns["spec"]["clusterIPs"], json!(["10.96.0.10"]));
        assert_eq!(
            allocation.allocated_ips(),
            &["10.96.0.10".parse::<Ipv4Addr>().unwrap()]
        );
        allocation.commit(&allocs);

        let mut second = service(
            "dns2",
            json!({ "clusterIP": "10.96.0.10", "ports": [{ "port": 53 }] }),
        );
        let err = allocs.allocate(&mut second, None).unwrap_err();
        assert_eq!(err.code, 422);
        assert_eq!(
            err.message,
            "Service \"dns2\" is invalid: spec.clusterIPs: Invalid value: [\"10.96.0.10\"]: failed to allocate IP 10.96.0.10: provided IP is already allocated"
        );
    }

    #[test]
    fn a_cluster_ip_outside_the_range_is_refused() {
        let allocs = allocations();
        let mut svc = service(
            "out",
            json!({ "clusterIP": "10.0.0.1", "ports": [{ "port": 80 }] }),
        );
        let err = allocs.allocate(&mut svc, None).unwrap_err();
        assert_eq!(
            err.message,
            "Service \"out\" is invalid: spec.clusterIPs: Invalid value: [\"10.0.0.1\"]: failed to allocate IP 10.0.0.1: the provided IP (10.0.0.1) is not in the valid range. The range of valid IPs is 10.96.0.0/12"
        );
        assert_eq!(
            err.to_status()["details"]["causes"][0]["field"],
            "spec.clusterIPs"
        );
    }

    #[test]
    fn a_malformed_cluster_ip_is_refused_before_allocation() {
        let allocs = allocations();
        let mut svc = service(
            "bad",
            json!({ "clusterIP": "10.96.0.300", "ports": [{ "port": 80 }] }),
        );
        let err = allocs.allocate(&mut svc, None).unwrap_err();
        assert_eq!(
            err.message,
            "Service \"bad\" is invalid: spec.clusterIPs[0]: Invalid value: \"10.96.0.300\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
        );
    }

    #[test]
    fn dual_stack_requests_are_refused_on_this_ipv4_cluster() {
        let allocs = allocations();
        let mut svc = service(
            "ds",
            json!({ "ipFamilyPolicy": "RequireDualStack", "ports": [{ "port": 80 }] }),
        );
        let err = allocs.allocate(&mut svc, None).unwrap_err();
        assert_eq!(
            err.message,
            "Service \"ds\" is invalid: spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services"
        );
        let mut v6 = service(
            "v6",
            json!({ "ipFamilies": ["IPv6"], "ports": [{ "port": 80 }] }),
        );
        let err = allocs.allocate(&mut v6, None).unwrap_err();
        assert_eq!(
            err.message,
            "Service \"v6\" is invalid: spec.ipFamilies[0]: Invalid value: \"IPv6\": not configured on this cluster"
        );
    }

    #[test]
    fn headless_and_external_name_services_get_no_ip() {
        let allocs = allocations();
        let mut headless = service(
            "db",
            json!({ "clusterIP": "None", "selector": { "app": "db" }, "ports": [{ "port": 5432 }] }),
        );
        let allocation = allocs.allocate(&mut headless, None).unwrap();
        assert_eq!(allocation, Allocation::default());
        assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
        assert_eq!(headless["spec"]["ipFamilies"], json!(["IPv4"]));

        // Without a selector, a headless Service is dual-stack by default,
        // whatever the cluster: its endpoints are managed by hand.
        let mut manual = service("manual", json!({ "clusterIP": "None" }));
        allocs.allocate(&mut manual, None).unwrap().commit(&allocs);
        assert_eq!(manual["spec"]["ipFamilyPolicy"], "RequireDualStack");
        assert_eq!(manual["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));

        let mut external = service(
            "ext",
            json!({ "type": "ExternalName", "externalName": "example.com" }),
        );
        let allocation = allocs.allocate(&mut external, None).unwrap();
        assert_eq!(allocation, Allocation::default());
        let spec = external["spec"].as_object().unwrap();
        assert!(!spec.contains_key("clusterIP") && !spec.contains_key("ipFamilies"));
    }

    #[test]
    fn nodeport_services_get_a_port_from_the_range() {
        let allocs = allocations();
        let svc = create(&allocs, ngx_svc_nodeport());
        let port = node_port_of(&svc, 0);
        assert!((30000..=32767).contains(&port));
        assert!(allocs.is_node_port_allocated(port));
        assert_eq!(
            crate::validation::validate(lookup("svc").unwrap(), &svc, None),
            vec![]
        );
    }

    #[test]
    fn requested_node_ports_are_checked() {
        let allocs = allocations();
        let mut outside = service(
            "a",
            json!({ "type": "NodePort", "ports": [{ "port": 80, "nodePort": 40000 }] }),
        );
        let err = allocs.allocate(&mut outside, None).unwrap_err();
        assert_eq!(
            err.message,
            "Service \"a\" is invalid: spec.ports[0].nodePort: Invalid value: 40000: provided port is not in the valid range. The range of valid ports is 30000-32767"
        );
        // The ClusterIP taken before the port failed is given back.
        assert_eq!(allocs.lock().0.allocated_count(), 0);

        let first = service(
            "b",
            json!({ "type": "NodePort", "ports": [{ "port": 80, "nodePort": 30080 }] }),
        );
        let first = create(&allocs, first);
        assert_eq!(node_port_of(&first, 0), 30080);
        let mut second = service(
            "c",
            json!({ "type": "NodePort", "ports": [{ "port": 80, "nodePort": 30080 }] }),
        );
        let err = allocs.allocate(&mut second, None).unwrap_err();
        assert_eq!(
            err.message,
            "Service \"c\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
        );
    }

    #[test]
    fn tcp_and_udp_on_one_port_share_a_node_port() {
        let allocs = allocations();
        let svc = create(
            &allocs,
            service(
                "dns",
                json!({ "type": "NodePort", "ports": [
                { "name": "dns-tcp", "port": 53, "protocol": "TCP" },
                { "name": "dns", "port": 53, "protocol": "UDP" },
                { "name": "metrics", "port": 9153 }
            ] }),
            ),
        );
        assert_eq!(node_port_of(&svc, 0), node_port_of(&svc, 1));
        assert_ne!(node_port_of(&svc, 0), node_port_of(&svc, 2));
        assert_eq!(allocs.lock().1.allocated_count(), 2);
    }

    #[test]
    fn rollback_gives_back_what_a_failed_write_took() {
        let allocs = allocations();
        let mut svc = ngx_svc_nodeport();
        let allocation = allocs.allocate(&mut svc, None).unwrap();
        allocation.rollback(&allocs);
        assert!(!allocs.is_ip_allocated(ip_of(&svc)));
        assert!(!allocs.is_node_port_allocated(node_port_of(&svc, 0)));
    }

    #[test]
    fn an_update_without_cluster_ip_keeps_the_stored_one() {
        let allocs = allocations();
        let stored = create(&allocs, ngx_svc());
        // kubectl apply / PUT from the manifest: no clusterIP, a new label.
        let mut update = ngx_svc();
        update["metadata"]["labels"] = json!({ "tier": "web" });
        let allocation = allocs.allocate(&mut update, Some(&stored)).unwrap();
        assert_eq!(allocation, Allocation::default());
        assert_eq!(update["spec"]["clusterIP"], stored["spec"]["clusterIP"]);
        assert_eq!(update["spec"]["clusterIPs"], stored["spec"]["clusterIPs"]);
        allocation.commit(&allocs);
        assert!(allocs.is_ip_allocated(ip_of(&stored)));
        assert_eq!(
            crate::validation::validate(lookup("svc").unwrap(), &update, Some(&stored)),
            vec![]
        );
    }

    #[test]
    fn an_update_without_node_ports_keeps_the_stored_ones() {
        let allocs = allocations();
        let stored = create(&allocs, ngx_svc_nodeport());
        let mut update = ngx_svc_nodeport();
        update["spec"]["ports"][0]["targetPort"] = json!(8080);
        let allocation = allocs.allocate(&mut update, Some(&stored)).unwrap();
        assert_eq!(allocation, Allocation::default());
        assert_eq!(node_port_of(&update, 0), node_port_of(&stored, 0));
        // A renamed port of the same number and protocol keeps it too.
        let mut renamed = ngx_svc_nodeport();
        renamed["spec"]["ports"][0]["name"] = json!("http");
        allocs
            .allocate(&mut renamed, Some(&stored))
            .unwrap()
            .commit(&allocs);
        assert_eq!(node_port_of(&renamed, 0), node_port_of(&stored, 0));
    }

    #[test]
    fn becoming_a_nodeport_service_allocates_and_going_back_releases() {
        let allocs = allocations();
        let cluster_ip = create(&allocs, ngx_svc());

        let mut nodeport = ngx_svc_nodeport();
        let allocation = allocs.allocate(&mut nodeport, Some(&cluster_ip)).unwrap();
        let port = node_port_of(&nodeport, 0);
        assert_eq!(allocation.allocated_node_ports(), &[port]);
        assert!(allocation.allocated_ips().is_empty());
        assert_eq!(ip_of(&nodeport), ip_of(&cluster_ip));
        allocation.commit(&allocs);

        // Back to ClusterIP, sending the stored object with only the type
        // changed (kubectl edit): the nodePort is dropped, and freed only
        // once the write succeeded.
        let mut back = nodeport.clone();
        back["spec"]["type"] = json!("ClusterIP");
        let allocation = allocs.allocate(&mut back, Some(&nodeport)).unwrap();
        assert!(back["spec"]["ports"][0].get("nodePort").is_none());
        assert!(back["spec"].get("externalTrafficPolicy").is_none());
        assert_eq!(allocation.released_node_ports(), &[port]);
        assert!(
            allocs.is_node_port_allocated(port),
            "freed before the write succeeded"
        );
        assert_eq!(
            crate::validation::validate(lookup("svc").unwrap(), &back, Some(&nodeport)),
            vec![]
        );
        allocation.commit(&allocs);
        assert!(!allocs.is_node_port_allocated(port));
        assert!(allocs.is_ip_allocated(ip_of(&back)));
    }

    #[test]
    fn a_failed_update_keeps_what_the_stored_object_holds() {
        let allocs = allocations();
        let stored = create(&allocs, ngx_svc_nodeport());
        let port = node_port_of(&stored, 0);
        let mut back = stored.clone();
        back["spec"]["type"] = json!("ClusterIP");
        allocs
            .allocate(&mut back, Some(&stored))
            .unwrap()
            .rollback(&allocs);
        assert!(allocs.is_node_port_allocated(port));
        assert!(allocs.is_ip_allocated(ip_of(&stored)));
    }

    #[test]
    fn external_name_releases_the_ip_and_back_allocates_a_new_one() {
        let allocs = allocations();
        let stored = create(&allocs, ngx_svc());
        let ip = ip_of(&stored);
        let mut external = stored.clone();
        external["spec"]["type"] = json!("ExternalName");
        external["spec"]["externalName"] = json!("example.com");
        let allocation = allocs.allocate(&mut external, Some(&stored)).unwrap();
        assert!(external["spec"].get("clusterIP").is_none());
        assert!(external["spec"].get("ipFamilies").is_none());
        assert_eq!(allocation.released_ips(), &[ip]);
        allocation.commit(&allocs);
        assert!(!allocs.is_ip_allocated(ip));

        let mut again = ngx_svc();
        let allocation = allocs.allocate(&mut again, Some(&external)).unwrap();
        assert_eq!(allocation.allocated_ips(), &[ip_of(&again)]);
        allocation.commit(&allocs);
    }

    #[test]
    fn deleting_a_service_frees_its_ip_and_ports() {
        let allocs = allocations();
        let svc = create(&allocs, ngx_svc_nodeport());
        allocs.release(&svc);
        assert!(!allocs.is_ip_allocated(ip_of(&svc)));
        assert!(!allocs.is_node_port_allocated(node_port_of(&svc, 0)));
    }

    #[test]
    fn rebuild_marks_what_stored_services_hold() {
        let first = allocations();
        let stored: Vec<Value> = (0..5)
            .map(|i| {
                create(
                    &first,
                    service(
                        &format!("s{i}"),
                        json!({ "type": "NodePort", "ports": [{ "port": 80 }] }),
                    ),
                )
            })
            .collect();
        // A restarted apiserver: fresh allocators, rebuilt from storage.
        let restarted = allocations();
        restarted.rebuild(stored.iter());
        for svc in &stored {
            assert!(restarted.is_ip_allocated(ip_of(svc)));
            assert!(restarted.is_node_port_allocated(node_port_of(svc, 0)));
        }
        let mut conflicting = service(
            "x",
            json!({ "clusterIP": stored[0]["spec"]["clusterIP"], "ports": [{ "port": 80 }] }),
        );
        assert!(restarted.allocate(&mut conflicting, None).is_err());
        // Rebuilding forgets what is no longer stored.
        restarted.rebuild(stored[..1].iter());
        assert!(!restarted.is_ip_allocated(ip_of(&stored[1])));
    }

    #[test]
    fn a_full_range_is_an_internal_error() {
        let allocs = ServiceAllocations::new("10.96.0.0/30", "30000-30001").unwrap();
        create(&allocs, service("a", json!({ "ports": [{ "port": 80 }] })));
        create(&allocs, service("b", json!({ "ports": [{ "port": 80 }] })));
        let mut third = service("c", json!({ "ports": [{ "port": 80 }] }));
        let err = allocs.allocate(&mut third, None).unwrap_err();
        assert_eq!(err.code, 500);
        assert_eq!(
            err.message,
            "Internal error occurred: failed to allocate a serviceIP: range is full"
        );
    }

    #[test]
    fn concurrent_creates_never_share_an_ip_or_a_port() {
        let allocs = Arc::new(allocations());
        let threads: Vec<_> = (0..16)
            .map(|t| {
                let allocs = Arc::clone(&allocs);
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    let count = if t < 8 { 13 } else { 12 }; // 200 in all
                    for i in 0..count {
                        let mut svc = service(
                            &format!("s{t}-{i}"),
                            json!({ "type": "NodePort", "ports": [{ "port": 80 }] }),
                        );
                        let allocation = allocs.allocate(&mut svc, None).unwrap();
                        // Some writes fail and roll back, as storage conflicts would.
                        if i % 5 == 4 {
                            allocation.rollback(&allocs);
                        } else {
                            allocation.commit(&allocs);
                            got.push((ip_of(&svc), node_port_of(&svc, 0)));
                        }
                    }
                    got
                })
            })
            .collect();
        let results: Vec<(Ipv4Addr, u16)> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        let ips: BTreeSet<Ipv4Addr> = results.iter().map(|r| r.0).collect();
        let ports: BTreeSet<u16> = results.iter().map(|r| r.1).collect();
        // 200 creates, of which i = 4 and i = 9 of every thread rolled back.
        assert_eq!(results.len(), 200 - 16 * 2);
        assert_eq!(ips.len(), results.len(), "an IP was handed out twice");
        assert_eq!(
            ports.len(),
            results.len(),
            "a NodePort was handed out twice"
        );
        let (ip_alloc, port_alloc) = allocs.lock();
        assert_eq!(ip_alloc.allocated_count(), results.len());
        assert_eq!(port_alloc.allocated_count(), results.len());
    }

    #[test]
    fn preparing_an_update_is_idempotent() {
        let allocs = allocations();
        let stored = create(&allocs, ngx_svc_nodeport());
        let mut back = stored.clone();
        back["spec"]["type"] = json!("ClusterIP");
        prepare_for_update(&mut back, &stored);
        let once = back.clone();
        prepare_for_update(&mut back, &stored);
        assert_eq!(back, once);
    }
}
