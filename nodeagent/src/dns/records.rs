//! The cluster zone: which names exist under `cluster.local` and what
//! they answer, computed from one snapshot of the API objects.
//!
//! Kubernetes' DNS specification ("Kubernetes DNS-Based Service
//! Discovery", kubernetes/dns `docs/specification.md`, schema 1.1.0)
//! defines the names; CoreDNS's `kubernetes` plugin is the implementation
//! every cluster runs, and this module answers as it does, corner cases
//! included:
//!
//! | name | type | answer |
//! | --- | --- | --- |
//! | `<svc>.<ns>.svc.<zone>` | A | the ClusterIP |
//! | same, headless (`clusterIP: None`) | A | every *ready* endpoint address, NXDOMAIN when there is none |
//! | same, `type: ExternalName` | any | a CNAME to `externalName` |
//! | `_<port>._<proto>.<svc>.<ns>.svc.<zone>` | SRV | one per named port (per endpoint when headless), with the addresses in the additional section |
//! | `<hostname>.<svc>.<ns>.svc.<zone>` | A | that endpoint (its `hostname`, or its IP with dashes) |
//! | `<a-b-c-d>.<ns>.pod.<zone>` | A | a.b.c.d, if a Pod of that namespace has that IP |
//! | `<d>.<c>.<b>.<a>.in-addr.arpa` | PTR | the Service owning that ClusterIP, else the endpoint names, else the Pod name |
//! | `dns-version.<zone>` | TXT | the schema version, `1.1.0` |
//!
//! Two kinds of "no" matter to clients, and both carry the zone's SOA in
//! the authority section (its last field tells resolvers how long they may
//! cache the "no"):
//!
//! - **NXDOMAIN**: no such name. A resolver walking the search path
//!   (`ngx-svc.default` -> `ngx-svc.default.default.svc.cluster.local`,
//!   then `ngx-svc.default.svc.cluster.local`) moves on to the next suffix.
//! - **NODATA** (NOERROR, no answer): the name exists, not with that type.
//!   `curl ngx-svc` asks A and AAAA at once; the AAAA question of an IPv4
//!   Service gets NODATA, not NXDOMAIN, which would claim the name does
//!   not exist at all.
//!
//! Everything here is pure - no sockets, no API calls - so every rule is a
//! unit test: [`ClusterZone::build`] indexes the objects once per change,
//! [`ClusterZone::resolve`] answers one question from the indexes.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};

use crate::informer::cached::AddressType;
use crate::informer::CachedSlice;

/// The time-to-live of every cluster record, in seconds: CoreDNS's
/// default. Short, so that a client notices a changed Service within
/// seconds; long enough to spare a busy client a query per request.
pub const TTL: u32 = 5;

/// The version of the DNS specification these records follow, served as
/// `dns-version.<zone>` TXT (spec section 2.2).
pub const SCHEMA_VERSION: &str = "1.1.0";

/// The TTL of the schema version record (the specification's example).
const SCHEMA_VERSION_TTL: u32 = 28800;

/// How many CNAMEs inside the zone are followed for one answer: enough
/// for any sane chain, and a stop for an ExternalName pointing at itself.
const MAX_CNAME_CHAIN: usize = 8;

/// The API objects a zone is built from: the contents of the watch caches
/// at one moment (what `Store::state()` returns).
#[derive(Debug, Default, Clone)]
pub struct ApiObjects {
    pub services: Vec<Arc<Service>>,
    pub endpoint_slices: Vec<Arc<CachedSlice>>,
    pub pods: Vec<Arc<Pod>>,
    pub namespaces: Vec<Arc<Namespace>>,
}

/// What the server does with a question.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// The cluster answers it (a name of the zone, or the reverse name of
    /// a cluster IP).
    Answer(Answer),
    /// Not a cluster name: the node's upstream resolvers answer it.
    Forward,
}

/// One DNS answer: the response code and the three record sections.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub code: ResponseCode,
    pub answers: Vec<Record>,
    /// The zone's SOA for NXDOMAIN and NODATA answers.
    pub authority: Vec<Record>,
    /// Addresses of the names SRV and NS records point at, so that the
    /// client needs no second question.
    pub additionals: Vec<Record>,
    /// Set when the answer is a CNAME to a name outside the cluster (an
    /// ExternalName Service): the server may ask the upstream resolvers
    /// for that name and append their answer, as CoreDNS does.
    pub chase: Option<Name>,
}

impl Answer {
    fn records(answers: Vec<Record>, additionals: Vec<Record>) -> Answer {
        Answer {
            code: ResponseCode::NoError,
            answers,
            authority: vec![],
            additionals,
            chase: None,
        }
    }
}

/// A Service or endpoint port, as DNS sees it: SRV names use the port's
/// name and protocol.
#[derive(Debug, Clone)]
struct PortRecord {
    /// The port's name, "" when unnamed (unnamed ports have no SRV).
    name: String,
    /// TCP, UDP or SCTP.
    protocol: String,
    /// None for an EndpointSlice without ports (a headless Service may
    /// have none): its addresses still resolve, it just has no SRV.
    port: Option<u16>,
}

impl PortRecord {
    /// Whether an SRV name's `_<port>._<proto>` labels (either may be
    /// absent) pick this port. Comparisons ignore case, as all of DNS.
    fn matches(&self, port: Option<&str>, protocol: Option<&str>) -> bool {
        port.is_none_or(|p| p.eq_ignore_ascii_case(&self.name))
            && protocol.is_none_or(|p| p.eq_ignore_ascii_case(&self.protocol))
    }
}

/// A ready endpoint of a Service.
#[derive(Debug, Clone)]
struct EndpointRecord {
    ip: IpAddr,
    /// The endpoint's `hostname` (a StatefulSet Pod's name), else its IP
    /// with dashes: the spec's "unique, system-assigned identifier".
    hostname: String,
    /// The ports of the EndpointSlice it came from.
    ports: Arc<[PortRecord]>,
}

/// How a Service answers its name.
#[derive(Debug, Clone)]
enum ServiceKind {
    /// Its virtual IP(s): the usual case.
    ClusterIp(Vec<IpAddr>),
    /// `clusterIP: None`: the endpoints themselves.
    Headless,
    /// `type: ExternalName`: an alias for a name elsewhere.
    ExternalName(Name),
}

#[derive(Debug, Clone)]
struct ServiceRecords {
    kind: ServiceKind,
    ports: Vec<PortRecord>,
    endpoints: Vec<EndpointRecord>,
}

/// Where a name leads, before the record type is looked at: an address
/// (with the port and the name an SRV record would point at) or an alias.
#[derive(Debug, Clone)]
struct Target {
    host: Host,
    port: Option<u16>,
    /// The name owning this address in SRV answers:
    /// `<svc>.<ns>.svc.<zone>`, or `<hostname>.<svc>...` for endpoints.
    srv_name: Name,
}

#[derive(Debug, Clone)]
enum Host {
    Ip(IpAddr),
    Alias(Name),
}

/// The result of looking a name of the zone up.
enum Lookup {
    /// No such name: NXDOMAIN.
    NoName,
    /// The name exists and leads to these targets (none: NODATA for
    /// every type).
    Targets(Vec<Target>),
    /// Fixed records (apex SOA and NS, the schema version).
    Records(Vec<Record>, Vec<Record>),
}

/// The cluster zone as of one snapshot of the watch caches.
#[derive(Debug, Clone)]
pub struct ClusterZone {
    /// `cluster.local.`
    origin: Name,
    /// The cluster DNS Service's IP, the address of `ns.dns.<zone>`.
    dns_ip: Ipv4Addr,
    /// The SOA serial: when the zone was built, in Unix seconds (as
    /// CoreDNS: the time of the last change).
    serial: u32,
    namespaces: HashSet<String>,
    /// By (namespace, name).
    services: HashMap<(String, String), ServiceRecords>,
    /// (namespace, IP) of every running Pod, for Pod records.
    pods: HashSet<(String, IpAddr)>,
    /// PTR targets, in the order they are tried.
    service_ips: HashMap<IpAddr, Name>,
    endpoint_ips: HashMap<IpAddr, Vec<Name>>,
    pod_ips: HashMap<IpAddr, Vec<Name>>,
}

impl ClusterZone {
    /// Indexes `objects` for the zone `domain` (`cluster.local`).
    pub fn build(domain: &Name, dns_ip: Ipv4Addr, serial: u32, objects: &ApiObjects) -> Self {
        let mut origin = domain.to_lowercase();
        origin.set_fqdn(true);
        let mut zone = ClusterZone {
            origin,
            dns_ip,
            serial,
            namespaces: HashSet::new(),
            services: HashMap::new(),
            pods: HashSet::new(),
            service_ips: HashMap::new(),
            endpoint_ips: HashMap::new(),
            pod_ips: HashMap::new(),
        };
        for namespace in &objects.namespaces {
            if let Some(name) = &namespace.metadata.name {
                zone.namespaces.insert(name.clone());
            }
        }
        let mut endpoints = ready_endpoints(&objects.endpoint_slices);
        for service in &objects.services {
            let (Some(namespace), Some(name), Some(spec)) = (
                service.metadata.namespace.as_ref(),
                service.metadata.name.as_ref(),
                service.spec.as_ref(),
            ) else {
                continue;
            };
            let Some(service_name) = zone.name(&[name, namespace, "svc"]) else {
                continue;
            };
            let kind = if spec.type_.as_deref() == Some("ExternalName") {
                let Some(alias) = spec.external_name.as_deref().and_then(fqdn) else {
                    continue;
                };
                ServiceKind::ExternalName(alias)
            } else if api::service::is_headless(service) {
                ServiceKind::Headless
            } else {
                let ips: Vec<IpAddr> = match &spec.cluster_ips {
                    Some(ips) if !ips.is_empty() => {
                        ips.iter().filter_map(|ip| ip.parse().ok()).collect()
                    }
                    _ => spec
                        .cluster_ip
                        .iter()
                        .filter_map(|ip| ip.parse().ok())
                        .collect(),
                };
                for ip in &ips {
                    zone.service_ips
                        .entry(*ip)
                        .or_insert_with(|| service_name.clone());
                }
                ServiceKind::ClusterIp(ips)
            };
            let ports = spec
                .ports
                .iter()
                .flatten()
                .map(|port| PortRecord {
                    name: port.name.clone().unwrap_or_default(),
                    protocol: port.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    port: u16::try_from(port.port).ok(),
                })
                .collect();
            let key = (namespace.clone(), name.clone());
            let endpoints = endpoints.remove(&key).unwrap_or_default();
            for endpoint in &endpoints {
                if let Some(endpoint_name) =
                    zone.name(&[&endpoint.hostname, name, namespace, "svc"])
                {
                    push_unique(
                        zone.endpoint_ips.entry(endpoint.ip).or_default(),
                        endpoint_name,
                    );
                }
            }
            zone.services.insert(
                key,
                ServiceRecords {
                    kind,
                    ports,
                    endpoints,
                },
            );
        }
        // The Namespace watch may lag a moment behind a new Service's or
        // Pod's: their namespaces exist too.
        let used: Vec<String> = zone.services.keys().map(|(ns, _)| ns.clone()).collect();
        zone.namespaces.extend(used);
        for pod in &objects.pods {
            let (Some(namespace), Some(status)) =
                (pod.metadata.namespace.as_ref(), pod.status.as_ref())
            else {
                continue;
            };
            // A finished Pod's address goes back to the node's pool and
            // may soon belong to another Pod.
            if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
                continue;
            }
            let ips = match &status.pod_ips {
                Some(ips) if !ips.is_empty() => ips.iter().map(|ip| ip.ip.clone()).collect(),
                _ => status.pod_ip.iter().cloned().collect::<Vec<_>>(),
            };
            for ip in ips.iter().filter_map(|ip| ip.parse::<IpAddr>().ok()) {
                zone.pods.insert((namespace.clone(), ip));
                zone.namespaces.insert(namespace.clone());
                if let Some(pod_name) = zone.name(&[&dashed(ip), namespace, "pod"]) {
                    push_unique(zone.pod_ips.entry(ip).or_default(), pod_name);
                }
            }
        }
        zone
    }

    /// The zone's name, `cluster.local.`.
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// Answers the question `qname`/`qtype`, or says it is not the
    /// cluster's to answer.
    pub fn resolve(&self, qname: &Name, qtype: RecordType) -> Resolution {
        if self.origin.zone_of(qname) {
            return Resolution::Answer(self.answer(qname, qtype, 0));
        }
        // CoreDNS serves in-addr.arpa with "fallthrough": what it knows,
        // it answers; any other reverse name goes upstream.
        if qtype == RecordType::PTR {
            if let Some(answer) = self.reverse(qname) {
                return Resolution::Answer(answer);
            }
        }
        Resolution::Forward
    }

    /// The SOA record of the zone, as CoreDNS writes it.
    pub fn soa(&self) -> Record {
        let soa = SOA::new(
            self.fixed_name(&["ns", "dns"]),
            self.fixed_name(&["hostmaster"]),
            self.serial,
            7200,
            1800,
            86400,
            TTL,
        );
        Record::from_rdata(self.origin.clone(), TTL, RData::SOA(soa))
    }

    /// The answer for a name inside the zone. `depth` counts the CNAMEs
    /// followed so far.
    fn answer(&self, qname: &Name, qtype: RecordType, depth: usize) -> Answer {
        let labels = self.relative_labels(qname);
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        match self.lookup(&labels, qname, qtype) {
            Lookup::NoName => self.negative(ResponseCode::NXDomain),
            Lookup::Records(answers, additionals) => Answer::records(answers, additionals),
            Lookup::Targets(targets) => self.render(qname, qtype, &targets, depth),
        }
    }

    /// What `labels` (the query name without the zone, leftmost first,
    /// lower case) names.
    fn lookup(&self, labels: &[&str], qname: &Name, qtype: RecordType) -> Lookup {
        match labels {
            [] => match qtype {
                RecordType::SOA => Lookup::Records(vec![self.soa()], vec![]),
                RecordType::NS => {
                    let ns = self.fixed_name(&["ns", "dns"]);
                    Lookup::Records(
                        vec![Record::from_rdata(
                            qname.clone(),
                            TTL,
                            RData::NS(NS(ns.clone())),
                        )],
                        vec![Record::from_rdata(ns, TTL, RData::A(A(self.dns_ip)))],
                    )
                }
                _ => Lookup::Targets(vec![]),
            },
            ["dns-version"] => match qtype {
                RecordType::TXT => Lookup::Records(
                    vec![Record::from_rdata(
                        qname.clone(),
                        SCHEMA_VERSION_TTL,
                        RData::TXT(TXT::new(vec![SCHEMA_VERSION.into()])),
                    )],
                    vec![],
                ),
                _ => Lookup::Targets(vec![]),
            },
            ["ns", "dns"] => Lookup::Targets(vec![Target {
                host: Host::Ip(self.dns_ip.into()),
                port: None,
                srv_name: self.fixed_name(&["ns", "dns"]),
            }]),
            ["svc" | "pod"] => Lookup::Targets(vec![]),
            [namespace, "svc" | "pod"] => {
                if self.namespace_exists(namespace) {
                    Lookup::Targets(vec![])
                } else {
                    Lookup::NoName
                }
            }
            [service, namespace, "svc"] => self.service(namespace, service, None, None, None),
            [endpoint, service, namespace, "svc"] => {
                self.service(namespace, service, Some(endpoint), None, None)
            }
            [port, protocol, service, namespace, "svc"] => self.service(
                namespace,
                service,
                None,
                Some(strip_underscore(port)),
                Some(strip_underscore(protocol)),
            ),
            [pod, namespace, "pod"] => self.pod(namespace, pod),
            _ => Lookup::NoName,
        }
    }

    /// A Service's name, one of its endpoints' names, or one of its SRV
    /// names (CoreDNS's `findServices`).
    fn service(
        &self,
        namespace: &str,
        name: &str,
        endpoint: Option<&str>,
        port: Option<&str>,
        protocol: Option<&str>,
    ) -> Lookup {
        let Some(service) = self
            .services
            .get(&(namespace.to_string(), name.to_string()))
        else {
            return Lookup::NoName;
        };
        let service_name = self.fixed_name(&[name, namespace, "svc"]);
        let mut targets = vec![];
        if let ServiceKind::ExternalName(alias) = &service.kind {
            // An alias has no endpoints and no ports below it.
            if endpoint.is_some() || port.is_some() || protocol.is_some() {
                return Lookup::NoName;
            }
            targets.push(Target {
                host: Host::Alias(alias.clone()),
                port: None,
                srv_name: service_name,
            });
            return Lookup::Targets(targets);
        }
        // A headless Service answers with its endpoints. Endpoint names
        // exist below every Service that has endpoints, not only
        // headless ones (as in CoreDNS).
        if matches!(service.kind, ServiceKind::Headless) || endpoint.is_some() {
            for ep in &service.endpoints {
                if endpoint.is_some_and(|e| !e.eq_ignore_ascii_case(&ep.hostname)) {
                    continue;
                }
                let Some(srv_name) = self.name(&[&ep.hostname, name, namespace, "svc"]) else {
                    continue;
                };
                for p in ep.ports.iter().filter(|p| p.matches(port, protocol)) {
                    targets.push(Target {
                        host: Host::Ip(ep.ip),
                        port: p.port,
                        srv_name: srv_name.clone(),
                    });
                }
            }
            // No ready endpoint: the name does not exist (the spec's
            // NXDOMAIN for a headless Service without ready endpoints).
            if targets.is_empty() {
                return Lookup::NoName;
            }
            return Lookup::Targets(targets);
        }
        let ServiceKind::ClusterIp(ips) = &service.kind else {
            return Lookup::NoName;
        };
        // The ClusterIP, once per port the name picks (all of them for
        // the plain name; SRV renders one record per port).
        let ports: Vec<&PortRecord> = service
            .ports
            .iter()
            .filter(|p| p.matches(port, protocol))
            .collect();
        if ports.is_empty() {
            return Lookup::NoName;
        }
        for p in ports {
            for ip in ips {
                targets.push(Target {
                    host: Host::Ip(*ip),
                    port: p.port,
                    srv_name: service_name.clone(),
                });
            }
        }
        Lookup::Targets(targets)
    }

    /// `<a-b-c-d>.<ns>.pod.<zone>`: answered only when a Pod of that
    /// namespace has the address (CoreDNS's `pods verified`), so that the
    /// name cannot be used to make any address look like a cluster name.
    fn pod(&self, namespace: &str, label: &str) -> Lookup {
        // CoreDNS's rule: three dashes and no "--" is IPv4, else IPv6.
        let text = if label.matches('-').count() == 3 && !label.contains("--") {
            label.replace('-', ".")
        } else {
            label.replace('-', ":")
        };
        match text.parse::<IpAddr>() {
            Ok(ip) if self.pods.contains(&(namespace.to_string(), ip)) => {
                Lookup::Targets(vec![Target {
                    host: Host::Ip(ip),
                    port: None,
                    srv_name: self.fixed_name(&[label, namespace, "pod"]),
                }])
            }
            _ => Lookup::NoName,
        }
    }

    /// Turns targets into the records of type `qtype`.
    fn render(&self, qname: &Name, qtype: RecordType, targets: &[Target], depth: usize) -> Answer {
        // A CNAME owns its name: every type is answered with it.
        if let Some(alias) = targets.iter().find_map(|t| match &t.host {
            Host::Alias(alias) => Some(alias),
            Host::Ip(_) => None,
        }) {
            let cname = Record::from_rdata(qname.clone(), TTL, RData::CNAME(CNAME(alias.clone())));
            let mut answer = Answer::records(vec![cname], vec![]);
            if qtype == RecordType::CNAME {
                return answer;
            }
            if self.origin.zone_of(alias) {
                // `alias != qname`: an ExternalName naming itself.
                if depth < MAX_CNAME_CHAIN && alias != qname {
                    let next = self.answer(alias, qtype, depth + 1);
                    answer.answers.extend(next.answers);
                    answer.additionals.extend(next.additionals);
                    answer.chase = next.chase;
                }
            } else {
                answer.chase = Some(alias.clone());
            }
            return answer;
        }
        let mut answers = vec![];
        let mut additionals = vec![];
        match qtype {
            RecordType::A | RecordType::AAAA => {
                let mut seen = HashSet::new();
                for target in targets {
                    if let Host::Ip(ip) = target.host {
                        if seen.insert(ip) {
                            if let Some(record) = address_record(qname, ip, qtype) {
                                answers.push(record);
                            }
                        }
                    }
                }
            }
            RecordType::SRV => {
                let with_port: Vec<(&Target, u16)> =
                    targets.iter().filter_map(|t| Some((t, t.port?))).collect();
                // CoreDNS spreads a weight of 100 over the records.
                let weight = u16::try_from((100 / with_port.len().max(1)).max(1)).unwrap_or(1);
                let mut seen_srv = HashSet::new();
                let mut seen_address = HashSet::new();
                for (target, port) in with_port {
                    if seen_srv.insert((target.srv_name.to_string(), port)) {
                        let srv = SRV::new(0, weight, port, target.srv_name.clone());
                        answers.push(Record::from_rdata(qname.clone(), TTL, RData::SRV(srv)));
                    }
                    if let Host::Ip(ip) = target.host {
                        if seen_address.insert((target.srv_name.to_string(), ip)) {
                            let qtype = match ip {
                                IpAddr::V4(_) => RecordType::A,
                                IpAddr::V6(_) => RecordType::AAAA,
                            };
                            additionals.extend(address_record(&target.srv_name, ip, qtype));
                        }
                    }
                }
            }
            _ => {}
        }
        if answers.is_empty() {
            return self.negative(ResponseCode::NoError);
        }
        Answer::records(answers, additionals)
    }

    /// PTR for a ClusterIP, else for endpoint addresses, else for Pod IPs
    /// (the last one is kube-lite's: CoreDNS stops at endpoints).
    fn reverse(&self, qname: &Name) -> Option<Answer> {
        let net = qname.parse_arpa_name().ok()?;
        if net.prefix_len() != net.max_prefix_len() {
            return None;
        }
        let ip = net.addr();
        let targets: Vec<&Name> = if let Some(name) = self.service_ips.get(&ip) {
            vec![name]
        } else if let Some(names) = self.endpoint_ips.get(&ip) {
            names.iter().collect()
        } else {
            self.pod_ips.get(&ip)?.iter().collect()
        };
        let records = targets
            .into_iter()
            .map(|t| Record::from_rdata(qname.clone(), TTL, RData::PTR(PTR(t.clone()))))
            .collect();
        Some(Answer::records(records, vec![]))
    }

    /// NXDOMAIN or NODATA, with the SOA in the authority section.
    fn negative(&self, code: ResponseCode) -> Answer {
        Answer {
            code,
            answers: vec![],
            authority: vec![self.soa()],
            additionals: vec![],
            chase: None,
        }
    }

    /// A namespace "exists" for DNS when the API has it, or when a Service
    /// or Pod lives in it (see [`Self::build`]).
    fn namespace_exists(&self, namespace: &str) -> bool {
        self.namespaces.contains(namespace)
    }

    /// The labels of `qname` left of the zone, lower case, leftmost first.
    fn relative_labels(&self, qname: &Name) -> Vec<String> {
        // Counted with iter(): num_labels() does not count a leading `*`.
        let own = qname
            .iter()
            .count()
            .saturating_sub(self.origin.iter().count());
        qname
            .iter()
            .take(own)
            .map(|label| String::from_utf8_lossy(label).to_ascii_lowercase())
            .collect()
    }

    /// `labels` + the zone, if the labels are valid DNS labels.
    fn name(&self, labels: &[&str]) -> Option<Name> {
        Name::from_labels(labels.iter().map(|l| l.as_bytes()))
            .and_then(|name| name.append_domain(&self.origin))
            .ok()
    }

    /// [`Self::name`] for labels already known to be valid (taken from a
    /// query name or from the fixed names of the zone).
    fn fixed_name(&self, labels: &[&str]) -> Name {
        self.name(labels).unwrap_or_else(|| self.origin.clone())
    }
}

/// Ready endpoints by (namespace, Service name), from every slice of
/// each Service. "Ready" as in the API: `ready` true or unset.
fn ready_endpoints(slices: &[Arc<CachedSlice>]) -> HashMap<(String, String), Vec<EndpointRecord>> {
    let mut by_service: HashMap<(String, String), Vec<EndpointRecord>> = HashMap::new();
    for slice in slices {
        let namespace = &slice.namespace;
        let Some(service) = &slice.service else {
            continue;
        };
        // FQDN slices name hosts, not addresses: nothing DNS can serve.
        if slice.address_type == AddressType::Other {
            continue;
        }
        let mut ports: Vec<PortRecord> = slice
            .ports
            .iter()
            .map(|port| PortRecord {
                name: port.name.to_string(),
                protocol: port.protocol.to_string(),
                port: port.port,
            })
            .collect();
        if ports.is_empty() {
            ports.push(PortRecord {
                name: String::new(),
                protocol: String::new(),
                port: None,
            });
        }
        let ports: Arc<[PortRecord]> = ports.into();
        let records = by_service
            .entry((namespace.to_string(), service.to_string()))
            .or_default();
        for endpoint in slice.endpoints.iter() {
            if !endpoint.conditions.ready {
                continue;
            }
            for &ip in endpoint.addresses.iter() {
                records.push(EndpointRecord {
                    ip,
                    hostname: endpoint
                        .hostname
                        .as_deref()
                        .map_or_else(|| dashed(ip), String::from),
                    ports: ports.clone(),
                });
            }
        }
    }
    for records in by_service.values_mut() {
        records.sort_by(|a, b| (a.ip, &a.hostname).cmp(&(b.ip, &b.hostname)));
    }
    by_service
}

/// An A or AAAA record, if `ip` is of the family `qtype` asks for.
fn address_record(owner: &Name, ip: IpAddr, qtype: RecordType) -> Option<Record> {
    let data = match (ip, qtype) {
        (IpAddr::V4(ip), RecordType::A) => RData::A(A(ip)),
        (IpAddr::V6(ip), RecordType::AAAA) => RData::AAAA(AAAA(ip)),
        _ => return None,
    };
    Some(Record::from_rdata(owner.clone(), TTL, data))
}

/// An IP as one DNS label: 10.244.1.5 -> `10-244-1-5`, 2001:db8::1 ->
/// `2001-db8--1` (CoreDNS's form; a trailing dash gets a 0).
pub fn dashed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(ip) => ip.to_string().replace('.', "-"),
        IpAddr::V6(ip) => {
            let label = ip.to_string().replace(':', "-");
            if label.ends_with('-') {
                label + "0"
            } else {
                label
            }
        }
    }
}

/// An ExternalName as an absolute name (`db.example.com` means
/// `db.example.com.`, never a name relative to the search path).
fn fqdn(name: &str) -> Option<Name> {
    let mut name = Name::from_ascii(name).ok()?;
    name.set_fqdn(true);
    Some(name)
}

fn strip_underscore(label: &str) -> &str {
    label.strip_prefix('_').unwrap_or(label)
}

fn push_unique(names: &mut Vec<Name>, name: Name) {
    if !names.contains(&name) {
        names.push(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::endpointslice::SERVICE_NAME_LABEL;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use serde_json::json;

    const SERIAL: u32 = 1_700_000_000;
    const SOA_LINE: &str = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1700000000 7200 1800 86400 5";

    fn object<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Arc<T> {
        Arc::new(serde_json::from_value(value).unwrap())
    }

    fn service(namespace: &str, name: &str, spec: serde_json::Value) -> Arc<Service> {
        object(json!({"metadata": {"namespace": namespace, "name": name}, "spec": spec}))
    }

    fn slice(
        namespace: &str,
        service: &str,
        ports: serde_json::Value,
        endpoints: serde_json::Value,
    ) -> Arc<CachedSlice> {
        let slice: Arc<EndpointSlice> = object(json!({
            "metadata": {"namespace": namespace, "name": format!("{service}-abcde"),
                         "labels": {SERVICE_NAME_LABEL: service}},
            "addressType": "IPv4", "ports": ports, "endpoints": endpoints
        }));
        Arc::new(CachedSlice::from(Arc::unwrap_or_clone(slice)))
    }

    fn pod(namespace: &str, name: &str, ip: &str, phase: &str) -> Arc<Pod> {
        object(json!({"metadata": {"namespace": namespace, "name": name},
                      "status": {"phase": phase, "podIP": ip, "podIPs": [{"ip": ip}]}}))
    }

    fn namespace(name: &str) -> Arc<Namespace> {
        object(json!({"metadata": {"name": name}}))
    }

    /// The lesson's cluster and a few more kinds of Services.
    fn cluster() -> ClusterZone {
        let objects = ApiObjects {
            namespaces: vec![
                namespace("default"),
                namespace("kube-system"),
                namespace("shop"),
            ],
            services: vec![
                service(
                    "default",
                    "ngx-svc",
                    json!({"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
                    "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}),
                ),
                service(
                    "default",
                    "multi",
                    json!({"clusterIP": "10.96.0.21",
                    "ports": [{"name": "http", "port": 80, "protocol": "TCP"},
                              {"name": "dns", "port": 53, "protocol": "UDP"},
                              {"port": 9000, "protocol": "TCP"}]}),
                ),
                service(
                    "default",
                    "db",
                    json!({"clusterIP": "None",
                    "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}),
                ),
                service(
                    "default",
                    "empty",
                    json!({"clusterIP": "None",
                    "ports": [{"name": "pg", "port": 5432}]}),
                ),
                service(
                    "default",
                    "ext",
                    json!({"type": "ExternalName", "externalName": "db.example.com"}),
                ),
                service(
                    "default",
                    "alias",
                    json!({"type": "ExternalName",
                    "externalName": "ngx-svc.default.svc.cluster.local"}),
                ),
                service(
                    "default",
                    "loop",
                    json!({"type": "ExternalName",
                    "externalName": "loop.default.svc.cluster.local"}),
                ),
                service(
                    "kube-system",
                    "kube-dns",
                    json!({"clusterIP": "10.96.0.10",
                    "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                              {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}),
                ),
            ],
            endpoint_slices: vec![
                slice(
                    "default",
                    "ngx-svc",
                    json!([{"name": "http", "port": 80, "protocol": "TCP"}]),
                    json!([
                        {"addresses": ["10.244.2.11"], "conditions": {"ready": true}},
                        {"addresses": ["10.244.1.10"]},
                    ]),
                ),
                slice(
                    "default",
                    "db",
                    json!([{"name": "pg", "port": 5432, "protocol": "TCP"}]),
                    json!([
                        {"addresses": ["10.244.1.5"], "hostname": "db-0", "conditions": {"ready": true}},
                        {"addresses": ["10.244.2.6"], "conditions": {"ready": true}},
                        {"addresses": ["10.244.2.7"], "hostname": "db-2", "conditions": {"ready": false}},
                    ]),
                ),
                slice(
                    "default",
                    "empty",
                    json!([{"name": "pg", "port": 5432}]),
                    json!([
                        {"addresses": ["10.244.1.8"], "conditions": {"ready": false}},
                    ]),
                ),
                // A slice whose Service is gone: nothing.
                slice(
                    "default",
                    "deleted",
                    json!([]),
                    json!([{"addresses": ["10.244.1.77"]}]),
                ),
            ],
            pods: vec![
                pod("default", "ngx-1", "10.244.1.10", "Running"),
                pod("default", "old", "10.244.1.99", "Succeeded"),
                pod("shop", "web", "10.244.2.20", "Running"),
            ],
        };
        ClusterZone::build(
            &Name::from_ascii("cluster.local").unwrap(),
            Ipv4Addr::new(10, 96, 0, 10),
            SERIAL,
            &objects,
        )
    }

    fn ask(zone: &ClusterZone, name: &str, qtype: RecordType) -> Answer {
        match zone.resolve(&Name::from_ascii(name).unwrap(), qtype) {
            Resolution::Answer(answer) => answer,
            Resolution::Forward => panic!("{name} {qtype} was forwarded"),
        }
    }

    fn lines(records: &[Record]) -> Vec<String> {
        records.iter().map(ToString::to_string).collect()
    }

    /// The answer section, sorted (order is the server's business).
    fn answers(zone: &ClusterZone, name: &str, qtype: RecordType) -> Vec<String> {
        let answer = ask(zone, name, qtype);
        assert_eq!(
            answer.code,
            ResponseCode::NoError,
            "{name} {qtype}: {answer:?}"
        );
        let mut lines = lines(&answer.answers);
        lines.sort();
        lines
    }

    fn assert_nxdomain(zone: &ClusterZone, name: &str, qtype: RecordType) {
        let answer = ask(zone, name, qtype);
        assert_eq!(
            answer.code,
            ResponseCode::NXDomain,
            "{name} {qtype}: {answer:?}"
        );
        assert!(answer.answers.is_empty());
        assert_eq!(
            lines(&answer.authority),
            [SOA_LINE],
            "{name}: the SOA goes with NXDOMAIN"
        );
    }

    fn assert_nodata(zone: &ClusterZone, name: &str, qtype: RecordType) {
        let answer = ask(zone, name, qtype);
        assert_eq!(
            answer.code,
            ResponseCode::NoError,
            "{name} {qtype}: {answer:?}"
        );
        assert!(answer.answers.is_empty(), "{name} {qtype}: {answer:?}");
        assert_eq!(
            lines(&answer.authority),
            [SOA_LINE],
            "{name}: the SOA goes with NODATA"
        );
    }

    #[test]
    fn a_service_name_answers_its_cluster_ip() {
        let zone = cluster();
        assert_eq!(
            answers(&zone, "ngx-svc.default.svc.cluster.local.", RecordType::A),
            ["ngx-svc.default.svc.cluster.local. 5 IN A 10.96.0.20"]
        );
        assert_eq!(
            answers(
                &zone,
                "kube-dns.kube-system.svc.cluster.local.",
                RecordType::A
            ),
            ["kube-dns.kube-system.svc.cluster.local. 5 IN A 10.96.0.10"]
        );
        // One address even with several ports.
        assert_eq!(
            answers(&zone, "multi.default.svc.cluster.local.", RecordType::A),
            ["multi.default.svc.cluster.local. 5 IN A 10.96.0.21"]
        );
    }

    #[test]
    fn names_ignore_case_and_answers_keep_the_question_s_case() {
        let zone = cluster();
        assert_eq!(
            answers(&zone, "NGX-svc.Default.SVC.cluster.LOCAL.", RecordType::A),
            ["NGX-svc.Default.SVC.cluster.LOCAL. 5 IN A 10.96.0.20"]
        );
    }

    /// What a Pod's resolver does with `search default.svc.cluster.local
    /// svc.cluster.local cluster.local` and ndots:5: each suffix in turn,
    /// moving on at NXDOMAIN, stopping at the first answer.
    #[test]
    fn the_search_path_turns_short_names_into_the_service() {
        let zone = cluster();
        let search = [
            "default.svc.cluster.local.",
            "svc.cluster.local.",
            "cluster.local.",
        ];
        let resolve = |short: &str| -> Vec<String> {
            for suffix in search {
                let answer = ask(&zone, &format!("{short}.{suffix}"), RecordType::A);
                if answer.code != ResponseCode::NXDomain {
                    return lines(&answer.answers);
                }
            }
            vec![]
        };
        assert_eq!(
            resolve("ngx-svc"),
            ["ngx-svc.default.svc.cluster.local. 5 IN A 10.96.0.20"]
        );
        assert_eq!(
            resolve("ngx-svc.default"),
            ["ngx-svc.default.svc.cluster.local. 5 IN A 10.96.0.20"]
        );
        assert_eq!(
            resolve("ngx-svc.default.svc"),
            ["ngx-svc.default.svc.cluster.local. 5 IN A 10.96.0.20"]
        );
        assert_eq!(
            resolve("kube-dns.kube-system"),
            ["kube-dns.kube-system.svc.cluster.local. 5 IN A 10.96.0.10"]
        );
        // The wrong guesses on the way are NXDOMAIN, never SERVFAIL.
        assert_nxdomain(
            &zone,
            "ngx-svc.default.default.svc.cluster.local.",
            RecordType::A,
        );
        assert_nxdomain(
            &zone,
            "ngx-svc.default.svc.svc.cluster.local.",
            RecordType::A,
        );
        assert_nxdomain(
            &zone,
            "ngx-svc.default.svc.default.svc.cluster.local.",
            RecordType::A,
        );
    }

    #[test]
    fn other_types_of_an_existing_name_are_nodata() {
        let zone = cluster();
        // curl asks AAAA next to A: "no IPv6", not "no such name".
        assert_nodata(
            &zone,
            "ngx-svc.default.svc.cluster.local.",
            RecordType::AAAA,
        );
        assert_nodata(&zone, "ngx-svc.default.svc.cluster.local.", RecordType::TXT);
        assert_nodata(&zone, "ngx-svc.default.svc.cluster.local.", RecordType::MX);
        assert_nodata(
            &zone,
            "ngx-svc.default.svc.cluster.local.",
            RecordType::CNAME,
        );
        assert_nodata(&zone, "ngx-svc.default.svc.cluster.local.", RecordType::SOA);
    }

    #[test]
    fn unknown_names_in_the_zone_are_nxdomain_with_the_soa() {
        let zone = cluster();
        assert_nxdomain(&zone, "nope.default.svc.cluster.local.", RecordType::A);
        assert_nxdomain(&zone, "nope.default.svc.cluster.local.", RecordType::AAAA);
        assert_nxdomain(&zone, "ngx-svc.nope.svc.cluster.local.", RecordType::A);
        assert_nxdomain(&zone, "nope.svc.cluster.local.", RecordType::A);
        assert_nxdomain(&zone, "foo.cluster.local.", RecordType::A);
        assert_nxdomain(&zone, "ngx-svc.default.foo.cluster.local.", RecordType::A);
        // Too many labels for any defined name.
        assert_nxdomain(
            &zone,
            "a.b.c.ngx-svc.default.svc.cluster.local.",
            RecordType::A,
        );
        // A Service's slice outlives it for a moment: still no name.
        assert_nxdomain(&zone, "deleted.default.svc.cluster.local.", RecordType::A);
    }

    #[test]
    fn the_zone_s_own_names() {
        let zone = cluster();
        assert_eq!(
            answers(&zone, "cluster.local.", RecordType::SOA),
            [SOA_LINE]
        );
        let ns = ask(&zone, "cluster.local.", RecordType::NS);
        assert_eq!(
            lines(&ns.answers),
            ["cluster.local. 5 IN NS ns.dns.cluster.local."]
        );
        assert_eq!(
            lines(&ns.additionals),
            ["ns.dns.cluster.local. 5 IN A 10.96.0.10"]
        );
        assert_eq!(
            answers(&zone, "ns.dns.cluster.local.", RecordType::A),
            ["ns.dns.cluster.local. 5 IN A 10.96.0.10"]
        );
        assert_eq!(
            answers(&zone, "dns-version.cluster.local.", RecordType::TXT),
            ["dns-version.cluster.local. 28800 IN TXT 1.1.0"]
        );
        assert_nodata(&zone, "cluster.local.", RecordType::A);
        assert_nodata(&zone, "svc.cluster.local.", RecordType::A);
        assert_nodata(&zone, "pod.cluster.local.", RecordType::A);
        // A namespace exists as a name, without records.
        assert_nodata(&zone, "default.svc.cluster.local.", RecordType::A);
        assert_nodata(&zone, "shop.pod.cluster.local.", RecordType::A);
    }

    #[test]
    fn a_headless_service_answers_its_ready_endpoints() {
        let zone = cluster();
        assert_eq!(
            answers(&zone, "db.default.svc.cluster.local.", RecordType::A),
            [
                "db.default.svc.cluster.local. 5 IN A 10.244.1.5",
                "db.default.svc.cluster.local. 5 IN A 10.244.2.6",
            ]
        );
        assert_nodata(&zone, "db.default.svc.cluster.local.", RecordType::AAAA);
    }

    /// The spec, and CoreDNS: "If there are no ready endpoints for the
    /// headless Service, the answer should be NXDOMAIN".
    #[test]
    fn a_headless_service_without_ready_endpoints_is_nxdomain() {
        let zone = cluster();
        assert_nxdomain(&zone, "empty.default.svc.cluster.local.", RecordType::A);
        assert_nxdomain(&zone, "empty.default.svc.cluster.local.", RecordType::AAAA);
        assert_nxdomain(
            &zone,
            "_pg._tcp.empty.default.svc.cluster.local.",
            RecordType::SRV,
        );
    }

    #[test]
    fn endpoints_have_names_below_their_service() {
        let zone = cluster();
        assert_eq!(
            answers(&zone, "db-0.db.default.svc.cluster.local.", RecordType::A),
            ["db-0.db.default.svc.cluster.local. 5 IN A 10.244.1.5"]
        );
        // Without a hostname, the IP with dashes.
        assert_eq!(
            answers(
                &zone,
                "10-244-2-6.db.default.svc.cluster.local.",
                RecordType::A
            ),
            ["10-244-2-6.db.default.svc.cluster.local. 5 IN A 10.244.2.6"]
        );
        // Below a ClusterIP Service too.
        assert_eq!(
            answers(
                &zone,
                "10-244-1-10.ngx-svc.default.svc.cluster.local.",
                RecordType::A
            ),
            ["10-244-1-10.ngx-svc.default.svc.cluster.local. 5 IN A 10.244.1.10"]
        );
        // Not ready: no name.
        assert_nxdomain(&zone, "db-2.db.default.svc.cluster.local.", RecordType::A);
        assert_nxdomain(&zone, "bogus.db.default.svc.cluster.local.", RecordType::A);
    }

    #[test]
    fn srv_records_name_the_port_of_a_cluster_ip_service() {
        let zone = cluster();
        let answer = ask(
            &zone,
            "_http._tcp.ngx-svc.default.svc.cluster.local.",
            RecordType::SRV,
        );
        assert_eq!(
            lines(&answer.answers),
            ["_http._tcp.ngx-svc.default.svc.cluster.local. 5 IN SRV 0 100 80 ngx-svc.default.svc.cluster.local."]
        );
        assert_eq!(
            lines(&answer.additionals),
            ["ngx-svc.default.svc.cluster.local. 5 IN A 10.96.0.20"]
        );
        assert_eq!(
            answers(&zone, "_dns._udp.multi.default.svc.cluster.local.", RecordType::SRV),
            ["_dns._udp.multi.default.svc.cluster.local. 5 IN SRV 0 100 53 multi.default.svc.cluster.local."]
        );
        // The port exists, not with that protocol; no such port.
        assert_nxdomain(
            &zone,
            "_http._udp.ngx-svc.default.svc.cluster.local.",
            RecordType::SRV,
        );
        assert_nxdomain(
            &zone,
            "_https._tcp.ngx-svc.default.svc.cluster.local.",
            RecordType::SRV,
        );
        // The plain name's SRV lists every port (CoreDNS), weights shared.
        assert_eq!(
            answers(&zone, "multi.default.svc.cluster.local.", RecordType::SRV),
            [
                "multi.default.svc.cluster.local. 5 IN SRV 0 33 53 multi.default.svc.cluster.local.",
                "multi.default.svc.cluster.local. 5 IN SRV 0 33 80 multi.default.svc.cluster.local.",
                "multi.default.svc.cluster.local. 5 IN SRV 0 33 9000 multi.default.svc.cluster.local.",
            ]
        );
        // The SRV name has an address too, the ClusterIP (as CoreDNS).
        assert_eq!(
            answers(
                &zone,
                "_http._tcp.ngx-svc.default.svc.cluster.local.",
                RecordType::A
            ),
            ["_http._tcp.ngx-svc.default.svc.cluster.local. 5 IN A 10.96.0.20"]
        );
    }

    #[test]
    fn srv_records_of_a_headless_service_name_each_endpoint() {
        let zone = cluster();
        let answer = ask(
            &zone,
            "_pg._tcp.db.default.svc.cluster.local.",
            RecordType::SRV,
        );
        let mut srv = lines(&answer.answers);
        srv.sort();
        assert_eq!(
            srv,
            [
                "_pg._tcp.db.default.svc.cluster.local. 5 IN SRV 0 50 5432 10-244-2-6.db.default.svc.cluster.local.",
                "_pg._tcp.db.default.svc.cluster.local. 5 IN SRV 0 50 5432 db-0.db.default.svc.cluster.local.",
            ]
        );
        let mut extra = lines(&answer.additionals);
        extra.sort();
        assert_eq!(
            extra,
            [
                "10-244-2-6.db.default.svc.cluster.local. 5 IN A 10.244.2.6",
                "db-0.db.default.svc.cluster.local. 5 IN A 10.244.1.5",
            ]
        );
    }

    #[test]
    fn an_external_name_service_is_a_cname() {
        let zone = cluster();
        let answer = ask(&zone, "ext.default.svc.cluster.local.", RecordType::A);
        assert_eq!(answer.code, ResponseCode::NoError);
        assert_eq!(
            lines(&answer.answers),
            ["ext.default.svc.cluster.local. 5 IN CNAME db.example.com."]
        );
        // The target is not ours: the server may ask upstream for it.
        assert_eq!(
            answer.chase,
            Some(Name::from_ascii("db.example.com.").unwrap())
        );
        let cname = ask(&zone, "ext.default.svc.cluster.local.", RecordType::CNAME);
        assert_eq!(
            lines(&cname.answers),
            ["ext.default.svc.cluster.local. 5 IN CNAME db.example.com."]
        );
        assert_eq!(cname.chase, None);
        // The CNAME owns the name: every type gets it.
        assert_eq!(
            answers(&zone, "ext.default.svc.cluster.local.", RecordType::AAAA),
            ["ext.default.svc.cluster.local. 5 IN CNAME db.example.com."]
        );
        // Nothing lives below an alias.
        assert_nxdomain(&zone, "x.ext.default.svc.cluster.local.", RecordType::A);
        assert_nxdomain(
            &zone,
            "_http._tcp.ext.default.svc.cluster.local.",
            RecordType::SRV,
        );
    }

    #[test]
    fn a_cname_inside_the_cluster_is_followed() {
        let zone = cluster();
        let answer = ask(&zone, "alias.default.svc.cluster.local.", RecordType::A);
        assert_eq!(
            lines(&answer.answers),
            [
                "alias.default.svc.cluster.local. 5 IN CNAME ngx-svc.default.svc.cluster.local.",
                "ngx-svc.default.svc.cluster.local. 5 IN A 10.96.0.20",
            ]
        );
        assert_eq!(answer.chase, None);
        // A loop ends.
        let looped = ask(&zone, "loop.default.svc.cluster.local.", RecordType::A);
        assert_eq!(
            lines(&looped.answers),
            ["loop.default.svc.cluster.local. 5 IN CNAME loop.default.svc.cluster.local."]
        );
    }

    #[test]
    fn pod_records_need_a_pod_with_that_address_in_that_namespace() {
        let zone = cluster();
        assert_eq!(
            answers(
                &zone,
                "10-244-1-10.default.pod.cluster.local.",
                RecordType::A
            ),
            ["10-244-1-10.default.pod.cluster.local. 5 IN A 10.244.1.10"]
        );
        assert_eq!(
            answers(&zone, "10-244-2-20.shop.pod.cluster.local.", RecordType::A),
            ["10-244-2-20.shop.pod.cluster.local. 5 IN A 10.244.2.20"]
        );
        assert_nxdomain(
            &zone,
            "10-244-2-20.default.pod.cluster.local.",
            RecordType::A,
        );
        // Finished Pods give their address back.
        assert_nxdomain(
            &zone,
            "10-244-1-99.default.pod.cluster.local.",
            RecordType::A,
        );
        assert_nxdomain(&zone, "1-2-3-4.default.pod.cluster.local.", RecordType::A);
        assert_nxdomain(&zone, "ngx-1.default.pod.cluster.local.", RecordType::A);
        assert_nodata(
            &zone,
            "10-244-1-10.default.pod.cluster.local.",
            RecordType::AAAA,
        );
    }

    #[test]
    fn ptr_records_name_services_then_endpoints_then_pods() {
        let zone = cluster();
        assert_eq!(
            answers(&zone, "20.0.96.10.in-addr.arpa.", RecordType::PTR),
            ["20.0.96.10.in-addr.arpa. 5 IN PTR ngx-svc.default.svc.cluster.local."]
        );
        assert_eq!(
            answers(&zone, "10.0.96.10.in-addr.arpa.", RecordType::PTR),
            ["10.0.96.10.in-addr.arpa. 5 IN PTR kube-dns.kube-system.svc.cluster.local."]
        );
        assert_eq!(
            answers(&zone, "5.1.244.10.in-addr.arpa.", RecordType::PTR),
            ["5.1.244.10.in-addr.arpa. 5 IN PTR db-0.db.default.svc.cluster.local."]
        );
        assert_eq!(
            answers(&zone, "10.1.244.10.in-addr.arpa.", RecordType::PTR),
            ["10.1.244.10.in-addr.arpa. 5 IN PTR 10-244-1-10.ngx-svc.default.svc.cluster.local."]
        );
        // A Pod behind no Service: its Pod name.
        assert_eq!(
            answers(&zone, "20.2.244.10.in-addr.arpa.", RecordType::PTR),
            ["20.2.244.10.in-addr.arpa. 5 IN PTR 10-244-2-20.shop.pod.cluster.local."]
        );
    }

    #[test]
    fn what_the_cluster_does_not_know_is_forwarded() {
        let zone = cluster();
        let forwarded = |name: &str, qtype| {
            zone.resolve(&Name::from_ascii(name).unwrap(), qtype) == Resolution::Forward
        };
        assert!(forwarded("example.com.", RecordType::A));
        assert!(forwarded("cluster.local.example.com.", RecordType::A));
        assert!(forwarded("local.", RecordType::A));
        // Reverse names of unknown addresses, and other types there.
        assert!(forwarded("1.1.168.192.in-addr.arpa.", RecordType::PTR));
        assert!(forwarded("20.0.96.10.in-addr.arpa.", RecordType::A));
        assert!(forwarded("96.10.in-addr.arpa.", RecordType::PTR));
    }

    #[test]
    fn answers_follow_the_objects() {
        let mut objects = ApiObjects {
            services: vec![service(
                "default",
                "web",
                json!({"clusterIP": "10.96.0.30",
                "ports": [{"name": "http", "port": 80}]}),
            )],
            ..Default::default()
        };
        let origin = Name::from_ascii("cluster.local").unwrap();
        let before = ClusterZone::build(&origin, Ipv4Addr::new(10, 96, 0, 10), 1, &objects);
        assert_eq!(
            answers(&before, "web.default.svc.cluster.local.", RecordType::A),
            ["web.default.svc.cluster.local. 5 IN A 10.96.0.30"]
        );
        objects.services.clear();
        let after = ClusterZone::build(&origin, Ipv4Addr::new(10, 96, 0, 10), 2, &objects);
        let answer = ask(&after, "web.default.svc.cluster.local.", RecordType::A);
        assert_eq!(answer.code, ResponseCode::NXDomain);
        // The serial moved with the change.
        assert_eq!(lines(&answer.authority), ["cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 2 7200 1800 86400 5"]);
    }

    #[test]
    fn another_cluster_domain() {
        let objects = ApiObjects {
            services: vec![service(
                "default",
                "web",
                json!({"clusterIP": "10.96.0.30", "ports": [{"port": 80}]}),
            )],
            ..Default::default()
        };
        let zone = ClusterZone::build(
            &Name::from_ascii("lab.example.").unwrap(),
            Ipv4Addr::new(10, 96, 0, 10),
            1,
            &objects,
        );
        assert_eq!(
            answers(&zone, "web.default.svc.lab.example.", RecordType::A),
            ["web.default.svc.lab.example. 5 IN A 10.96.0.30"]
        );
        assert_eq!(
            zone.resolve(
                &Name::from_ascii("web.default.svc.cluster.local.").unwrap(),
                RecordType::A
            ),
            Resolution::Forward
        );
    }

    #[test]
    fn a_namespace_with_services_exists_before_its_namespace_object_arrives() {
        let objects = ApiObjects {
            services: vec![service(
                "team",
                "web",
                json!({"clusterIP": "10.96.0.30", "ports": [{"port": 80}]}),
            )],
            pods: vec![pod("batch", "job-1", "10.244.1.40", "Running")],
            ..Default::default()
        };
        let zone = ClusterZone::build(
            &Name::from_ascii("cluster.local").unwrap(),
            Ipv4Addr::new(10, 96, 0, 10),
            SERIAL,
            &objects,
        );
        assert_nodata(&zone, "team.svc.cluster.local.", RecordType::A);
        assert_nodata(&zone, "batch.pod.cluster.local.", RecordType::A);
        assert_nxdomain(&zone, "other.svc.cluster.local.", RecordType::A);
    }

    #[test]
    fn ips_as_labels() {
        assert_eq!(dashed("10.244.1.5".parse().unwrap()), "10-244-1-5");
        assert_eq!(dashed("2001:db8::1".parse().unwrap()), "2001-db8--1");
        assert_eq!(dashed("2001:db8::".parse().unwrap()), "2001-db8--0");
    }
}
