//! # kube-lite `controller`: the control loops
//!
//! This crate plays kube-controller-manager and kube-scheduler. Each of its
//! loops watches some objects through the apiserver and makes the world
//! match what they ask for, the way every Kubernetes controller works:
//!
//! ```text
//!   watch (kube-rs) ──▶ reconcile(object) ──▶ create / update / delete via the API
//!        ▲                                            │
//!        └──────────── the changes come back ◀────────┘
//! ```
//!
//! A `reconcile` reads the desired state from one object and the current
//! state from the caches, and acts on the difference. Running it twice
//! changes nothing the second time, which is what makes restarts safe.
//!
//! # Layout
//! - [`deployment`]: Deployment -> one ReplicaSet per pod template, rolling updates.
//! - [`replicaset`]: ReplicaSet -> the right number of Pods.
//! - [`daemonset`]: DaemonSet -> one Pod on every node that should have one.
//! - [`statefulset`]: StatefulSet -> Pods with stable names, made and updated in order.
//! - [`history`]: ControllerRevisions, the template versions of StatefulSets.
//! - [`job`]: Job -> Pods that run to completion, retried with back-off.
//! - [`cronjob`]: CronJob -> a Job at each scheduled time.
//! - [`scheduler`]: kube-scheduler: binds each pending Pod to a node.
//! - [`endpoints`]: Service -> Endpoints and EndpointSlices of its ready Pods.
//! - [`endpointslice`]: how those endpoints are cut into EndpointSlices of at most 100.
//! - [`ipam`]: gives each Node its pod CIDR (`spec.podCIDR`).
//! - [`nodelifecycle`]: marks nodes whose Lease stops as NotReady, evicts their Pods.
//! - [`podstatus`]: the Pod conditions controllers write (`PodScheduled`, `Ready`).
//! - [`gc`]: the garbage collector: deletes what ownerReferences orphan.
//! - [`ownership`]: claim, adopt, release: which objects a controller owns.
//! - [`podcontrol`]: creating and deleting a workload's Pods, with Events.
//! - [`serviceaccounts`]: a `default` ServiceAccount in every namespace.
//! - [`rootca`]: the cluster CA in every namespace (`kube-root-ca.crt`).
//! - [`certificates`]: approves joining nodes' CertificateSigningRequests and signs them.
//! - [`podgc`]: deletes the Pods of Nodes that no longer exist.
//! - [`tokencleaner`]: deletes expired bootstrap tokens.
//! - [`events`]: Events a student reads in `kubectl describe`.
//! - [`leaderelection`]: only one controller acts at a time.

pub mod certificates;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod endpointslice;
pub mod events;
pub mod gc;
pub mod history;
pub mod ipam;
pub mod job;
pub mod leaderelection;
pub mod nodelifecycle;
pub mod ownership;
pub mod podcontrol;
pub mod podgc;
pub mod podstatus;
pub mod replicaset;
pub mod rootca;
pub mod scheduler;
pub mod serviceaccounts;
pub mod statefulset;
pub mod tokencleaner;

use std::sync::Arc;
use std::time::Duration;

/// Settings of the controller (its command-line flags).
#[derive(Debug, Clone)]
pub struct Config {
    /// A node whose Lease is older than this is NotReady (Unknown).
    pub node_monitor_grace_period: Duration,
    /// Pods on a NotReady node are deleted (and replaced) after this.
    pub pod_eviction_timeout: Duration,
    /// Pod CIDRs of nodes are cut from this range.
    pub cluster_cidr: String,
    /// The size of each node's pod CIDR.
    pub node_cidr_mask_size: u8,
    /// How long a leader's Lease lasts without renewal.
    pub leader_lease_duration: Duration,
    /// Identity written into the leader Lease.
    pub identity: String,
    /// The cluster CA (PEM), published in every namespace as the
    /// ConfigMap `kube-root-ca.crt`; None without TLS (dev mode).
    pub root_ca_pem: Option<String>,
    /// The CA that signs approved CertificateSigningRequests (the
    /// master's `pki/ca.key`); None: requests are approved, not signed.
    pub cluster_signing: Option<Arc<ClusterSigning>>,
}

/// `--cluster-signing-cert-file`, `--cluster-signing-key-file` and
/// `--cluster-signing-duration`.
#[derive(Debug)]
pub struct ClusterSigning {
    pub ca: api::pki::Ca,
    /// The longest certificate it signs.
    pub duration: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_monitor_grace_period: Duration::from_secs(40),
            pod_eviction_timeout: Duration::from_secs(60),
            cluster_cidr: "10.244.0.0/16".into(),
            node_cidr_mask_size: 24,
            leader_lease_duration: Duration::from_secs(15),
            identity: format!(
                "{}_{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "controller".into()),
                std::process::id()
            ),
            root_ca_pem: None,
            cluster_signing: None,
        }
    }
}

/// What every loop shares.
#[derive(Clone)]
pub struct Context {
    pub client: kube::Client,
    pub config: Config,
    pub events: events::Recorder,
}

impl Context {
    pub fn new(client: kube::Client, config: Config) -> Context {
        Context {
            events: events::Recorder::new(client.clone()),
            client,
            config,
        }
    }
}

/// Errors of the loops, typed so that an `error_policy` can tell a
/// conflict (the cache was behind: retry at once, quietly) from a failure
/// (say so, back off), and the log names the object.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request about `object` failed (`action`: `creating a pod`...).
    #[error("{object}: {action}: {source}")]
    Api {
        object: String,
        action: String,
        #[source]
        source: kube::Error,
    },
    /// A request failed; the loop's `error_policy` names the object.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// `object` cannot be acted on as it is (an invalid selector...).
    #[error("{object}: {reason}")]
    Invalid { object: String, reason: String },
    /// A watch cache stopped being fed.
    #[error("the {0} cache stopped")]
    CacheStopped(String),
}

impl Error {
    /// `object` cannot be acted on, because `reason`.
    pub fn invalid(object: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Invalid {
            object: object.into(),
            reason: reason.into(),
        }
    }

    /// A failed request about `object`.
    pub fn api(object: impl Into<String>, action: impl Into<String>, source: kube::Error) -> Error {
        Error::Api {
            object: object.into(),
            action: action.into(),
            source,
        }
    }

    /// The apiserver's HTTP status, when it answered with one.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            Error::Kube(kube::Error::Api(status))
            | Error::Api {
                source: kube::Error::Api(status),
                ..
            } => Some(status.code),
            _ => None,
        }
    }

    /// 409: someone wrote first; the next sync sees their change.
    pub fn is_conflict(&self) -> bool {
        self.status_code() == Some(409)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Waits until a reflector's cache holds the first complete list.
///
/// kube-runtime's `Store::wait_until_ready` keeps the waker of only the
/// last task that polled it, so when several reconciles wait at once all
/// but one would sleep forever. Waiting in short slices makes each of them
/// look again; once the cache is ready every look returns at once.
pub async fn wait_for_cache<K>(store: &kube::runtime::reflector::Store<K>) -> Result<()>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        match tokio::time::timeout(Duration::from_millis(50), store.wait_until_ready()).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => return Err(Error::CacheStopped(e.to_string())),
            Err(_elapsed) => continue,
        }
    }
}

/// A cache of every `K` in the cluster and the stream of its changes: the
/// stream feeds the cache before it wakes anyone, so a reconcile woken by
/// a change always sees that change in the cache.
pub fn watch_all<K>(
    client: &kube::Client,
) -> (
    kube::runtime::reflector::Store<K>,
    impl futures::Stream<Item = Result<K, kube::runtime::watcher::Error>> + Send + 'static,
)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    use kube::runtime::WatchStreamExt as _;
    let (store, writer) = kube::runtime::reflector::store();
    let events = kube::runtime::reflector::reflector(
        writer,
        kube::runtime::watcher(kube::Api::<K>::all(client.clone()), Default::default()),
    )
    .default_backoff()
    .touched_objects();
    (store, events)
}

/// The HTTP status of an apiserver error (409 for conflicts, ...).
pub fn kube_error_code(error: &Error) -> Option<u16> {
    error.status_code()
}

/// Every workload loop's `error_policy`: a conflict means the cache was
/// behind, so retry soon and quietly; anything else is worth a warning
/// and a slower retry. `what` names the object (`replica set default/x`).
pub fn requeue_after_error(what: &str, error: &Error) -> kube::runtime::controller::Action {
    use kube::runtime::controller::Action;
    if error.is_conflict() {
        tracing::debug!(object = %what, error = %error, "conflict, retrying");
        return Action::requeue(Duration::from_millis(200));
    }
    tracing::warn!(object = %what, error = %error, "syncing");
    Action::requeue(Duration::from_secs(2))
}

/// Runs every loop until one of them stops (they do not, normally).
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    let ctx = std::sync::Arc::new(ctx);
    tokio::select! {
        r = deployment::run(ctx.clone()) => r,
        r = replicaset::run(ctx.clone()) => r,
        r = daemonset::run(ctx.clone()) => r,
        r = statefulset::run(ctx.clone()) => r,
        r = job::run(ctx.clone()) => r,
        r = cronjob::run(ctx.clone()) => r,
        r = scheduler::run(ctx.clone()) => r,
        r = endpoints::run(ctx.clone()) => r,
        r = ipam::run(ctx.clone()) => r,
        r = nodelifecycle::run(ctx.clone()) => r,
        r = gc::run(ctx.clone()) => r,
        r = serviceaccounts::run(ctx.clone()) => r,
        r = rootca::run(ctx.clone()) => r,
        r = certificates::run(ctx.clone()) => r,
        r = podgc::run(ctx.clone()) => r,
        r = tokencleaner::run(ctx.clone()) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("the object has been modified", "Conflict")
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn errors_tell_a_conflict_and_name_the_object() {
        let conflict = Error::api("replica set default/web", "creating a pod", status(409));
        assert!(conflict.is_conflict());
        assert!(Error::Kube(status(409)).is_conflict());
        assert!(!Error::api("x", "y", status(500)).is_conflict());
        assert_eq!(Error::Kube(status(422)).status_code(), Some(422));
        assert!(conflict
            .to_string()
            .starts_with("replica set default/web: creating a pod: "));
        let invalid = Error::invalid("job default/pi", "no selector");
        assert_eq!(invalid.to_string(), "job default/pi: no selector");
        assert_eq!(invalid.status_code(), None);
        use std::error::Error as _;
        assert!(conflict.source().is_some(), "the kube error is the source");
    }
}
