//! Limits on requests in flight (kube-apiserver's
//! `--max-requests-inflight` and `--max-mutating-requests-inflight`).
//!
//! Every request in flight holds memory and a share of the machine; a
//! client (or a student's loop gone wrong) that sends thousands at once
//! would starve everyone else. Beyond the limit the apiserver answers at
//! once, 429 Too Many Requests with `Retry-After: 1`, which client-go and
//! kube-rs clients honour by waiting and trying again. Reads and writes
//! count apart, so a burst of writes cannot stop the watches and lists
//! controllers need to see the cluster. Long-running requests (watches,
//! `logs -f`, `exec`, node proxying) are not counted: they are meant to
//! stay open.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::status::StatusError;

/// kube-apiserver's defaults.
pub const DEFAULT_READS: usize = 400;
pub const DEFAULT_MUTATIONS: usize = 200;

/// The two pools of permits.
#[derive(Clone)]
pub struct InFlight {
    reads: Arc<Semaphore>,
    mutations: Arc<Semaphore>,
}

impl InFlight {
    pub fn new(reads: usize, mutations: usize) -> InFlight {
        InFlight {
            reads: Arc::new(Semaphore::new(reads)),
            mutations: Arc::new(Semaphore::new(mutations)),
        }
    }
}

/// Watches, followed logs, exec/attach/port-forward and node proxying.
fn long_running(request: &Request) -> bool {
    let query = request.uri().query().unwrap_or_default();
    let flag = |name: &str| {
        form_urlencoded::parse(query.as_bytes())
            .any(|(k, v)| k == name && (v == "true" || v == "1"))
    };
    let path = request.uri().path();
    flag("watch")
        || flag("follow")
        || ["/exec", "/attach", "/portforward"]
            .iter()
            .any(|s| path.ends_with(s))
        || path.contains("/proxy")
}

/// 429, worded as kube-apiserver words it.
pub fn too_many_requests() -> StatusError {
    let mut error = StatusError::new(
        429,
        "TooManyRequests",
        "Too many requests, please try again later.",
    );
    error.retry_after = Some(1);
    error
}

/// The limiting step of every request.
pub async fn limit(State(in_flight): State<InFlight>, request: Request, next: Next) -> Response {
    if long_running(&request) {
        return next.run(request).await;
    }
    let pool = match *request.method() {
        Method::GET | Method::HEAD | Method::OPTIONS => &in_flight.reads,
        _ => &in_flight.mutations,
    };
    let Ok(_permit) = pool.clone().try_acquire_owned() else {
        return too_many_requests().into_response();
    };
    next.run(request).await
}
