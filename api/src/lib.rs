//! # kube-lite `api`: what every component agrees on
//!
//! In Kubernetes, `k8s.io/api` holds the object types and
//! `k8s.io/apimachinery` the machinery around them (selectors, patches,
//! names, decoding). This crate plays both parts for kube-lite. The
//! apiserver, the controller, the node agent and kubectl-lite all depend on
//! it; none of them depends on another.
//!
//! # Layout
//! - [`resources`]: the resource table (kind, group/version, plural, short
//!   names, verbs, subresources); discovery and routing start here.
//! - [`selector`]: label selectors (`app=ngx,tier in (web)`) and field
//!   selectors (`spec.nodeName=n1`).
//! - [`names`]: `generateName` suffixes and the DNS-1123 / DNS-1035 / label
//!   syntax rules that object names and labels must follow.
//! - [`decode`]: multi-document YAML/JSON manifests into objects, with
//!   errors that say which document and line; strict decoding that finds
//!   unknown fields.
//! - [`patch`]: JSON merge patch, JSON patch and strategic merge patch, and
//!   the three-way patch `kubectl apply` computes.
//! - [`serviceview`]: how one Service is programmed on one node, as a node
//!   agent reads it back from its kernel (kube-lite's own, for
//!   `kubectl-lite trace`).
//! - [`cidr`]: IPv4 CIDR ranges, parsed with one set of words.
//! - [`service`], [`endpointslice`], [`pod`]: the facts about these
//!   objects that several components need (is a Service headless, which
//!   Service a slice belongs to, an endpoint's conditions with their
//!   defaults, is a Pod ready), each written once here.
//! - [`user`]: who is calling: the user names and groups every cluster
//!   gives its callers (`system:masters`, `system:node:<name>`, ...).
//! - [`pki`]: the cluster CA and the certificates it signs, as kubeadm
//!   makes them, and kubeconfigs that carry them.
//! - [`bootstraptoken`]: the tokens joining nodes authenticate with, and
//!   their Secret.
//! - [`certificates`]: CertificateSigningRequests: signer names, conditions,
//!   reading and making PKCS#10 requests.
//! - `tls` (feature `tls-server`): serving HTTPS and knowing the client's
//!   certificate, for the apiserver and the node agents' kubelet port.
//! - [`table`]: the `meta.k8s.io/v1` Table that `kubectl get` prints, with
//!   each resource's columns (`NAME TYPE CLUSTER-IP ...`).
//!
//! The typed objects themselves come from `k8s-openapi`, re-exported as
//! [`k8s`] so that every crate uses one version of them.

pub use k8s_openapi as k8s;

pub mod bootstraptoken;
pub mod certificates;
pub mod cidr;
pub mod cni;
pub mod cronjob;
pub mod decode;
pub mod endpointslice;
pub mod names;
pub mod patch;
pub mod pki;
pub mod pod;
pub mod quantity;
pub mod resources;
pub mod selector;
pub mod service;
pub mod serviceview;
pub mod table;
#[cfg(feature = "tls-server")]
pub mod tls;
pub mod user;
pub mod useragent;
