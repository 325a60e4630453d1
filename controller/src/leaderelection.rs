//! Leader election: one active controller at a time.
//!
//! Two controllers acting on the same Deployment would fight (each
//! creating Pods the other deletes). Like kube-controller-manager, the
//! controller first takes a Lease (`kube-system/kube-lite-controller`):
//! whoever holds it and keeps renewing it is the leader; the others wait
//! until it has not been renewed for `leaseDurationSeconds`, then take it.
//! Taking and renewing are ordinary updates with a resourceVersion, so two
//! candidates can never both win.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::PostParams;
use kube::Api;
use tokio::sync::oneshot;

use crate::Config;

pub const LEASE_NAMESPACE: &str = "kube-system";
pub const LEASE_NAME: &str = "kube-lite-controller";

/// Held while this process is the leader.
pub struct Leader {
    lost: oneshot::Receiver<String>,
}

impl Leader {
    /// Resolves when leadership is lost (the Lease could not be renewed in
    /// time), with the reason.
    pub async fn lost(self) -> String {
        self.lost
            .await
            .unwrap_or_else(|_| "renewal task stopped".into())
    }
}

/// Waits until this process holds the Lease, then keeps renewing it in the
/// background.
pub async fn acquire(client: kube::Client, config: &Config) -> anyhow::Result<Leader> {
    let leases: Api<Lease> = Api::namespaced(client, LEASE_NAMESPACE);
    let duration = config.leader_lease_duration;
    let retry = (duration / 5).max(Duration::from_millis(200));
    loop {
        match try_acquire_or_renew(&leases, &config.identity, duration).await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "leader election"),
        }
        tokio::time::sleep(retry).await;
    }
    tracing::info!(identity = %config.identity, "became the leader");

    let (tx, lost) = oneshot::channel();
    let identity = config.identity.clone();
    tokio::spawn(async move {
        let mut last_renewal = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(duration / 3).await;
            match try_acquire_or_renew(&leases, &identity, duration).await {
                Ok(true) => last_renewal = tokio::time::Instant::now(),
                Ok(false) => {
                    let _ = tx.send("another controller holds the lease".to_string());
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "renewing the leader lease");
                    if last_renewal.elapsed() > duration {
                        let _ = tx.send(format!("could not renew the lease: {e}"));
                        return;
                    }
                }
            }
        }
    });
    Ok(Leader { lost })
}

/// One attempt: true if we hold the Lease afterwards.
pub async fn try_acquire_or_renew(
    leases: &Api<Lease>,
    identity: &str,
    duration: Duration,
) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    let seconds = duration.as_secs().max(1) as i32;
    let Some(mut lease) = leases.get_opt(LEASE_NAME).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(LEASE_NAME.into()),
                namespace: Some(LEASE_NAMESPACE.into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(identity.into()),
                lease_duration_seconds: Some(seconds),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        return match leases.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.get_or_insert_with(Default::default);
    let ours = spec.holder_identity.as_deref() == Some(identity);
    let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
        (Some(MicroTime(renewed)), Some(secs)) => {
            now.duration_since(*renewed) > SignedDuration::from_secs(secs.into())
        }
        _ => true,
    };
    if !ours && !expired {
        return Ok(false);
    }
    if !ours {
        spec.holder_identity = Some(identity.into());
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.renew_time = Some(MicroTime(now));
    spec.lease_duration_seconds = Some(seconds);
    // The update carries the resourceVersion we read: if another candidate
    // wrote in between, ours fails with 409 and we lost this round.
    match leases
        .replace(LEASE_NAME, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}
