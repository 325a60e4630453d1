//! # kube-lite `apiserver`: the Kubernetes API over sled
//!
//! This crate plays kube-apiserver and etcd. It serves the Kubernetes REST
//! API (the same URLs, verbs, objects and errors) so that the real `kubectl`
//! and kube-rs clients work against it, and it is the only component that
//! writes storage. Everything else in kube-lite is a client.
//!
//! # Layout
//! - [`storage`]: objects in sled, one global resourceVersion, every write
//!   flushed before it is acknowledged, and the event history watches read.
//! - [`watch`]: `?watch=true` streams: resume from a resourceVersion,
//!   bookmarks, initial events, 410 Gone.
//! - [`rest`]: the verbs (get, list, create, update, patch, delete, ...)
//!   as HTTP handlers, with object metadata semantics (uid, generation,
//!   optimistic concurrency) and subresources.
//! - [`defaults`] and [`validation`]: what Kubernetes fills in and what it
//!   refuses (422 Invalid with field paths).
//! - [`clusterip`] and [`nodeport`]: the Service IP and port allocators.
//! - [`discovery`] and [`openapi`]: how clients learn what is served.
//! - [`status`]: every error as a Kubernetes `Status`.

pub mod clusterip;
pub mod defaults;
pub mod discovery;
pub mod nodeport;
pub mod openapi;
pub mod rest;
pub mod status;
pub mod storage;
pub mod validation;
pub mod watch;
