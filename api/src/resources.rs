//! The resource table: every kind of object kube-lite serves.
//!
//! Kubernetes names each kind of object three ways. The *kind* (`Service`)
//! is what a manifest says; the *resource* (`services`, with its short name
//! `svc`) is what a URL and `kubectl get` say; the *group/version*
//! (`v1`, `apps/v1`) says which API it belongs to. Discovery, routing,
//! `kubectl get svc,deploy` and Table printing all start from this table,
//! so it is the one place a new resource is added.

use std::fmt;

/// A subresource such as `pods/status` or `deployments/scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subresource {
    /// The URL segment after the object's name (`status`, `scale`, ...).
    pub name: &'static str,
    /// Group of the kind the subresource speaks ("" for the core group).
    pub group: &'static str,
    /// Version of that kind.
    pub version: &'static str,
    /// The kind a request body or answer has (`Scale` for `scale`).
    pub kind: &'static str,
    /// The verbs discovery advertises for it.
    pub verbs: &'static [&'static str],
}

/// One resource: how it is named, where it lives, what can be done to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceType {
    /// API group, "" for the legacy core group served under `/api/v1`.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// The plural resource name used in URLs (`services`).
    pub plural: &'static str,
    pub singular: &'static str,
    /// kubectl resolves `svc`, `po`, `deploy`... through these.
    pub short_names: &'static [&'static str],
    /// Namespaced objects live under `/namespaces/{ns}/`; nodes and
    /// namespaces themselves do not.
    pub namespaced: bool,
    pub verbs: &'static [&'static str],
    pub subresources: &'static [Subresource],
    /// `kubectl get all` expands the `all` category.
    pub categories: &'static [&'static str],
    /// Fields a `fieldSelector` may name, besides `metadata.name` and
    /// `metadata.namespace` which every resource supports.
    pub selectable_fields: &'static [&'static str],
}

/// Every verb a plain read-write resource supports.
pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

const STATUS_VERBS: &[&str] = &["get", "patch", "update"];

const fn status(group: &'static str, version: &'static str, kind: &'static str) -> Subresource {
    Subresource {
        name: "status",
        group,
        version,
        kind,
        verbs: STATUS_VERBS,
    }
}

const SCALE: Subresource = Subresource {
    name: "scale",
    group: "autoscaling",
    version: "v1",
    kind: "Scale",
    verbs: STATUS_VERBS,
};

/// The table itself. Order is the order discovery lists them in.
pub static RESOURCES: &[ResourceType] = &[
    ResourceType {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        singular: "namespace",
        short_names: &["ns"],
        namespaced: false,
        verbs: &[
            "create", "delete", "get", "list", "patch", "update", "watch",
        ],
        subresources: &[status("", "v1", "Namespace")],
        categories: &[],
        selectable_fields: &["status.phase"],
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        singular: "pod",
        short_names: &["po"],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[
            status("", "v1", "Pod"),
            Subresource {
                name: "binding",
                group: "",
                version: "v1",
                kind: "Binding",
                verbs: &["create"],
            },
            Subresource {
                name: "log",
                group: "",
                version: "v1",
                kind: "Pod",
                verbs: &["get"],
            },
            Subresource {
                name: "exec",
                group: "",
                version: "v1",
                kind: "PodExecOptions",
                verbs: &["create", "get"],
            },
            // `kubectl attach` / `run -i`: like exec, to the running process.
            Subresource {
                name: "attach",
                group: "",
                version: "v1",
                kind: "PodAttachOptions",
                verbs: &["create", "get"],
            },
            // `kubectl port-forward`: upgraded to SPDY, passed on to the kubelet.
            Subresource {
                name: "portforward",
                group: "",
                version: "v1",
                kind: "PodPortForwardOptions",
                verbs: &["create", "get"],
            },
            // `pods/{name}/proxy/{path}`: HTTP to the Pod.
            Subresource {
                name: "proxy",
                group: "",
                version: "v1",
                kind: "PodProxyOptions",
                verbs: &["create", "delete", "get", "patch", "update"],
            },
            // `kubectl drain` looks for this entry to know it may evict.
            Subresource {
                name: "eviction",
                group: "policy",
                version: "v1",
                kind: "Eviction",
                verbs: &["create"],
            },
        ],
        categories: &["all"],
        selectable_fields: &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "Service",
        plural: "services",
        singular: "service",
        short_names: &["svc"],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[
            status("", "v1", "Service"),
            // `services/{name}/proxy/{path}`: HTTP to one of its endpoints.
            Subresource {
                name: "proxy",
                group: "",
                version: "v1",
                kind: "ServiceProxyOptions",
                verbs: &["create", "delete", "get", "patch", "update"],
            },
        ],
        categories: &["all"],
        selectable_fields: &["spec.clusterIP", "spec.type"],
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "Endpoints",
        plural: "endpoints",
        singular: "endpoints",
        short_names: &["ep"],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[],
        categories: &[],
        selectable_fields: &[],
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "Secret",
        plural: "secrets",
        singular: "secret",
        short_names: &[],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[],
        categories: &[],
        selectable_fields: &["type"],
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "ServiceAccount",
        plural: "serviceaccounts",
        singular: "serviceaccount",
        short_names: &["sa"],
        namespaced: true,
        verbs: ALL_VERBS,
        // `kubectl create token SA`: a token for it, not stored.
        subresources: &[Subresource {
            name: "token",
            group: "authentication.k8s.io",
            version: "v1",
            kind: "TokenRequest",
            verbs: &["create"],
        }],
        categories: &[],
        selectable_fields: &[],
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        singular: "configmap",
        short_names: &["cm"],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[],
        categories: &[],
        selectable_fields: &[],
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "Node",
        plural: "nodes",
        singular: "node",
        short_names: &["no"],
        namespaced: false,
        verbs: ALL_VERBS,
        subresources: &[
            status("", "v1", "Node"),
            // `nodes/{name}/proxy/{path}`: passed on to the node's kubelet.
            Subresource {
                name: "proxy",
                group: "",
                version: "v1",
                kind: "NodeProxyOptions",
                verbs: &["create", "delete", "get", "patch", "update"],
            },
        ],
        categories: &[],
        selectable_fields: &["spec.unschedulable"],
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "Event",
        plural: "events",
        singular: "event",
        short_names: &["ev"],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[],
        categories: &[],
        selectable_fields: &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
    },
    // The apps group in upstream's (alphabetical) discovery order, which
    // is the order `kubectl get all` lists kinds in.
    ResourceType {
        group: "apps",
        version: "v1",
        kind: "ControllerRevision",
        plural: "controllerrevisions",
        singular: "controllerrevision",
        short_names: &[],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[],
        categories: &[],
        selectable_fields: &[],
    },
    ResourceType {
        group: "apps",
        version: "v1",
        kind: "DaemonSet",
        plural: "daemonsets",
        singular: "daemonset",
        short_names: &["ds"],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[status("apps", "v1", "DaemonSet")],
        categories: &["all"],
        selectable_fields: &[],
    },
    ResourceType {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        plural: "deployments",
        singular: "deployment",
        short_names: &["deploy"],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[status("apps", "v1", "Deployment"), SCALE],
        categories: &["all"],
        selectable_fields: &[],
    },
    ResourceType {
        group: "apps",
        version: "v1",
        kind: "ReplicaSet",
        plural: "replicasets",
        singular: "replicaset",
        short_names: &["rs"],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[status("apps", "v1", "ReplicaSet"), SCALE],
        categories: &["all"],
        selectable_fields: &[],
    },
    ResourceType {
        group: "apps",
        version: "v1",
        kind: "StatefulSet",
        plural: "statefulsets",
        singular: "statefulset",
        short_names: &["sts"],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[status("apps", "v1", "StatefulSet"), SCALE],
        categories: &["all"],
        selectable_fields: &[],
    },
    ResourceType {
        group: "batch",
        version: "v1",
        kind: "CronJob",
        plural: "cronjobs",
        singular: "cronjob",
        short_names: &["cj"],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[status("batch", "v1", "CronJob")],
        categories: &["all"],
        selectable_fields: &[],
    },
    ResourceType {
        group: "batch",
        version: "v1",
        kind: "Job",
        plural: "jobs",
        singular: "job",
        short_names: &[],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[status("batch", "v1", "Job")],
        categories: &["all"],
        selectable_fields: &["status.successful"],
    },
    ResourceType {
        group: "discovery.k8s.io",
        version: "v1",
        kind: "EndpointSlice",
        plural: "endpointslices",
        singular: "endpointslice",
        short_names: &[],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[],
        categories: &[],
        selectable_fields: &[],
    },
    ResourceType {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "ClusterRole",
        plural: "clusterroles",
        singular: "clusterrole",
        short_names: &[],
        namespaced: false,
        verbs: ALL_VERBS,
        subresources: &[],
        categories: &[],
        selectable_fields: &[],
    },
    ResourceType {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "ClusterRoleBinding",
        plural: "clusterrolebindings",
        singular: "clusterrolebinding",
        short_names: &[],
        namespaced: false,
        verbs: ALL_VERBS,
        subresources: &[],
        categories: &[],
        selectable_fields: &[],
    },
    ResourceType {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "Role",
        plural: "roles",
        singular: "role",
        short_names: &[],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[],
        categories: &[],
        selectable_fields: &[],
    },
    ResourceType {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "RoleBinding",
        plural: "rolebindings",
        singular: "rolebinding",
        short_names: &[],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[],
        categories: &[],
        selectable_fields: &[],
    },
    ResourceType {
        group: "certificates.k8s.io",
        version: "v1",
        kind: "CertificateSigningRequest",
        plural: "certificatesigningrequests",
        singular: "certificatesigningrequest",
        short_names: &["csr"],
        namespaced: false,
        verbs: ALL_VERBS,
        subresources: &[
            // `kubectl certificate approve|deny`: the Approved/Denied
            // conditions, and nothing else.
            Subresource {
                name: "approval",
                group: "certificates.k8s.io",
                version: "v1",
                kind: "CertificateSigningRequest",
                verbs: STATUS_VERBS,
            },
            status("certificates.k8s.io", "v1", "CertificateSigningRequest"),
        ],
        categories: &[],
        selectable_fields: &["spec.signerName"],
    },
    // Reviews are not stored: a create answers the question it asks
    // (`kubectl auth can-i`, `kubectl auth whoami`).
    ResourceType {
        group: "authorization.k8s.io",
        version: "v1",
        kind: "SelfSubjectAccessReview",
        plural: "selfsubjectaccessreviews",
        singular: "selfsubjectaccessreview",
        short_names: &[],
        namespaced: false,
        verbs: &["create"],
        subresources: &[],
        categories: &[],
        selectable_fields: &[],
    },
    ResourceType {
        group: "authentication.k8s.io",
        version: "v1",
        kind: "SelfSubjectReview",
        plural: "selfsubjectreviews",
        singular: "selfsubjectreview",
        short_names: &[],
        namespaced: false,
        verbs: &["create"],
        subresources: &[],
        categories: &[],
        selectable_fields: &[],
    },
    ResourceType {
        group: "coordination.k8s.io",
        version: "v1",
        kind: "Lease",
        plural: "leases",
        singular: "lease",
        short_names: &[],
        namespaced: true,
        verbs: ALL_VERBS,
        subresources: &[],
        categories: &[],
        selectable_fields: &[],
    },
];

impl ResourceType {
    /// `v1` for the core group, `apps/v1` otherwise: the `apiVersion` field.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `ServiceList`, the kind of a list answer.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// The URL prefix of the group/version: `/api/v1` or `/apis/apps/v1`.
    pub fn group_version_path(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }

    /// The collection URL, in a namespace when given and namespaced.
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => {
                format!(
                    "{}/namespaces/{}/{}",
                    self.group_version_path(),
                    ns,
                    self.plural
                )
            }
            _ => format!("{}/{}", self.group_version_path(), self.plural),
        }
    }

    /// The URL of one object.
    pub fn object_path(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}/{}", self.collection_path(namespace), name)
    }

    pub fn subresource(&self, name: &str) -> Option<&'static Subresource> {
        // Subresources are 'static in RESOURCES; look ourselves up there so the
        // reference outlives `self`.
        RESOURCES
            .iter()
            .find(|r| r == &self)
            .and_then(|r| r.subresources.iter().find(|s| s.name == name))
    }

    /// Whether a DELETE that removes an object answers with the object
    /// itself rather than a `Status` of Success (the `ReturnDeletedObject`
    /// of upstream's storage for these resources; the Python client's
    /// `delete_namespaced_service` reads a Service back). A deletion left
    /// pending (grace period, finalizers) answers with the object for
    /// every resource.
    pub fn returns_deleted_object(&self) -> bool {
        self.group.is_empty()
            && matches!(
                self.plural,
                "pods"
                    | "services"
                    | "serviceaccounts"
                    | "namespaces"
                    | "persistentvolumes"
                    | "persistentvolumeclaims"
            )
    }

    /// True when `fieldSelector` may use `field` on this resource.
    pub fn supports_field(&self, field: &str) -> bool {
        field == "metadata.name"
            || field == "metadata.namespace"
            || self.selectable_fields.contains(&field)
    }
}

impl fmt::Display for ResourceType {
    /// `services` or `deployments.apps`, the way kubectl names a resource.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            write!(f, "{}", self.plural)
        } else {
            write!(f, "{}.{}", self.plural, self.group)
        }
    }
}

/// Finds the resource served at `group`/`version` under `plural`, as the
/// apiserver's router needs.
pub fn by_plural(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Finds the resource of a manifest's `apiVersion` and `kind`.
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.api_version() == api_version && r.kind == kind)
}

/// Resolves what a user typed after `kubectl get`: a plural, singular, short
/// name or kind, case-insensitive, optionally qualified by group
/// (`deployments.apps`, `deploy.apps`).
pub fn lookup(name: &str) -> Option<&'static ResourceType> {
    let name = name.to_ascii_lowercase();
    let (base, group) = match name.split_once('.') {
        Some((base, group)) => (base.to_string(), Some(group.to_string())),
        None => (name, None),
    };
    RESOURCES.iter().find(|r| {
        let names_match = r.plural == base
            || r.singular == base
            || r.kind.eq_ignore_ascii_case(&base)
            || r.short_names.contains(&base.as_str());
        let group_matches = match &group {
            None => true,
            Some(g) => r.group == g || (r.group.is_empty() && g == "core"),
        };
        names_match && group_matches
    })
}

/// The resources in a category, for `kubectl get all`.
pub fn in_category(category: &str) -> impl Iterator<Item = &'static ResourceType> + '_ {
    RESOURCES
        .iter()
        .filter(move |r| r.categories.contains(&category))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_accepts_every_way_kubectl_users_name_a_resource() {
        for name in ["svc", "service", "services", "Service", "services.core"] {
            assert_eq!(lookup(name).unwrap().plural, "services", "{name}");
        }
        assert_eq!(lookup("deploy").unwrap().kind, "Deployment");
        assert_eq!(lookup("deployments.apps").unwrap().kind, "Deployment");
        assert_eq!(lookup("ep").unwrap().kind, "Endpoints");
        assert!(lookup("deployments.batch").is_none());
        assert!(lookup("widgets").is_none());
    }

    #[test]
    fn paths_follow_the_kubernetes_url_layout() {
        let svc = lookup("svc").unwrap();
        assert_eq!(
            svc.object_path(Some("default"), "ngx-svc"),
            "/api/v1/namespaces/default/services/ngx-svc"
        );
        let deploy = lookup("deploy").unwrap();
        assert_eq!(deploy.collection_path(None), "/apis/apps/v1/deployments");
        let node = lookup("no").unwrap();
        assert_eq!(node.object_path(Some("default"), "n1"), "/api/v1/nodes/n1");
        assert_eq!(by_kind("apps/v1", "Deployment"), Some(deploy));
        assert_eq!(deploy.subresource("scale").unwrap().kind, "Scale");
        assert!(svc.subresource("scale").is_none());
    }
}
