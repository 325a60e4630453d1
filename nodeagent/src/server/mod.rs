//! The kubelet's server: where `kubectl logs` and `kubectl exec` end up.
//!
//! A container's output and processes live on its node, not in the API.
//! So when a user runs `kubectl logs web-1`, the apiserver looks up the
//! node that runs the Pod and forwards the request to that node's kubelet,
//! which listens on its own port (10250 upstream, reported in the Node's
//! `status.daemonEndpoints.kubeletEndpoint.Port`). This module is that
//! server, with the kubelet's URLs:
//!
//! - `GET /containerLogs/{namespace}/{pod}/{container}` ([`logs`]): the
//!   container's log files, filtered like `kubectl logs --tail/--since/-f`.
//! - `GET /kube-lite/services/{namespace}/{name}`
//!   ([`crate::proxy::view`]): how the service proxy programmed one Service
//!   on this node, read back from the kernel (kube-lite's own, for
//!   `kubectl-lite trace`).
//! - `GET /exec/{namespace}/{pod}/{container}?command=...` ([`exec`]): a
//!   WebSocket on which a new process, started inside the container's
//!   namespaces ([`enter`]), talks to the user's terminal, multiplexed by
//!   the `channel.k8s.io` framing ([`channel`]).
//!
//! The server knows nothing about how Pods run: it asks the Pod runtime
//! through the [`Containers`] trait where a container's logs are and which
//! process is its main one. [`table::ContainerTable`] is a fixed table for
//! tests and demos.
//!
//! Errors are plain text with an HTTP code, like the real kubelet's; the
//! apiserver turns them into `Status` objects for the client.
//!
//! Two simplifications against upstream, both deliberate:
//!
//! - Who may call: with TLS material (`--tls-cert-file`, the lab's and
//!   VMs' setup) the port serves HTTPS and accepts only clients whose
//!   certificate the cluster CA signed, in `system:masters` - the
//!   apiserver's kubelet-client certificate; a Pod (or a student's
//!   laptop) gets no further than the handshake. Upstream's kubelet asks
//!   the apiserver (a SubjectAccessReview of `nodes/proxy`) instead of
//!   checking the group. Without TLS material (tests), plain HTTP.
//! - The WebSocket handshake is written out here (a dozen lines in
//!   [`exec`]) with tokio-tungstenite for the frames, rather than axum's
//!   `ws` feature: that feature pins another tungstenite than the one
//!   kube-rs uses, and two copies would be built.

pub mod attach;
pub mod channel;
pub mod enter;
pub mod exec;
pub mod logs;
pub mod portforward;
pub mod spdy;
pub mod table;

use std::path::PathBuf;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// The kubelet's port upstream, used when `--kubelet-port` is not given.
pub const DEFAULT_KUBELET_PORT: u16 = 10250;

/// What the kubelet's server needs from the Pod runtime.
pub trait Containers: Send + Sync + 'static {
    /// The log of a container instance. `previous`: the instance before the
    /// current one (after a restart), like `kubectl logs --previous`.
    fn logs(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Result<ContainerLog, LookupError>;
    /// The host PID of the container's main process, when it runs.
    fn running_pid(&self, namespace: &str, pod: &str, container: &str) -> Result<i32, LookupError>;
    /// Whether that container instance still runs (ends `logs -f`).
    fn is_running(&self, namespace: &str, pod: &str, container: &str) -> bool;
    /// A running process in the Pod's network namespace (port-forward
    /// connects from there).
    fn network_pid(&self, namespace: &str, pod: &str) -> Result<i32, LookupError>;
    /// Where `kubectl exec` runs a command in that container: by default
    /// in the namespaces of its running process.
    fn exec_target(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<enter::ExecTarget, LookupError> {
        let pid = self.running_pid(namespace, pod, container)?;
        enter::ContainerView::of(pid)
            .map(enter::ExecTarget::Namespaces)
            .map_err(|_| LookupError::NotRunning {
                pod: pod.into(),
                container: container.into(),
            })
    }
    /// The runtime container `kubectl attach` reaches (through the CRI's
    /// Attach). Without a runtime, there is nothing to attach to.
    fn attach_target(
        &self,
        _namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<attach::AttachTarget, LookupError> {
        Err(LookupError::NotRunning {
            pod: pod.into(),
            container: container.into(),
        })
    }
}

/// Where one container instance's log is: CRI log files as containerd
/// writes them under `/var/log/pods/` (see [`logs`] for the line format).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerLog {
    /// Oldest first: rotated files, then the one being written.
    pub files: Vec<PathBuf>,
}

/// Why a container cannot be served, in the real kubelet's words (`kubectl`
/// users see these messages as they are).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// No such Pod on this node (404).
    #[error("pod {pod:?} does not exist")]
    PodNotFound { namespace: String, pod: String },
    /// The Pod has no container of that name (404).
    #[error("container {container:?} not found in pod {pod:?}")]
    ContainerNotFound { pod: String, container: String },
    /// The container has not started yet, `reason` as in its status
    /// (`ContainerCreating`, `ErrImagePull`, ...) (400).
    #[error("container {container:?} in pod {pod:?} is waiting to start: {reason}")]
    Waiting {
        pod: String,
        container: String,
        reason: String,
    },
    /// `--previous` for a container that never restarted (400).
    #[error("previous terminated container {container:?} in pod {pod:?} not found")]
    NoPrevious { pod: String, container: String },
    /// An exec into a container whose process has ended (400).
    #[error("container {container:?} in pod {pod:?} is not running")]
    NotRunning { pod: String, container: String },
}

impl LookupError {
    /// The HTTP code the kubelet answers with.
    pub fn status_code(&self) -> StatusCode {
        match self {
            LookupError::PodNotFound { .. } | LookupError::ContainerNotFound { .. } => {
                StatusCode::NOT_FOUND
            }
            LookupError::Waiting { .. }
            | LookupError::NoPrevious { .. }
            | LookupError::NotRunning { .. } => StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for LookupError {
    fn into_response(self) -> Response {
        error_response(self.status_code(), self.to_string())
    }
}

/// A plain text error, as the kubelet writes them.
pub fn error_response(code: StatusCode, message: impl Into<String>) -> Response {
    let mut message = message.into();
    message.push('\n');
    (
        code,
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        message,
    )
        .into_response()
}

/// The server's routes over a [`Containers`] implementation.
pub fn router(containers: Arc<dyn Containers>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(logs::handle),
        )
        .route(
            "/exec/{namespace}/{pod}/{container}",
            get(exec::handle).post(exec::handle),
        )
        .route(
            "/attach/{namespace}/{pod}/{container}",
            get(attach::handle).post(attach::handle),
        )
        .route(
            "/portForward/{namespace}/{pod}",
            get(portforward::handle).post(portforward::handle),
        )
        .fallback(|| async { error_response(StatusCode::NOT_FOUND, "404 page not found") })
        .with_state(containers)
}

/// Serves the kubelet's URLs on `listener` until the listener fails.
///
/// The listener is the caller's so that it can bind the node IP and port
/// (`--node-ip`, `--kubelet-port`) and report the port it really got.
pub async fn serve(
    listener: tokio::net::TcpListener,
    containers: Arc<dyn Containers>,
) -> std::io::Result<()> {
    serve_router(listener, router(containers), None).await
}

/// Serves `router` (the kubelet's routes, and the agent's others such as
/// the service proxy's view) on `listener`.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    router: Router,
    tls: Option<api::tls::TlsFiles>,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let Some(files) = tls else {
        tracing::info!(%addr, "kubelet server listening (plain HTTP)");
        return axum::serve(listener, router).await;
    };
    let config = api::tls::server_config(&files, api::tls::ClientCertificates::Required)
        .map_err(std::io::Error::other)?;
    tracing::info!(%addr, "kubelet server listening (HTTPS, client certificates required)");
    let router = router.layer(axum::middleware::from_fn(only_the_apiserver));
    api::tls::serve(listener, router, config).await
}

/// The kubelet port's authorization: the caller's certificate must be in
/// `system:masters` (the apiserver's kubelet-client certificate).
async fn only_the_apiserver(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let user = request
        .extensions()
        .get::<api::tls::PeerIdentity>()
        .and_then(|p| p.0.clone());
    match user {
        Some(user) if user.in_group(api::user::SYSTEM_MASTERS) => next.run(request).await,
        Some(user) => error_response(
            StatusCode::FORBIDDEN,
            format!(
                "Forbidden (user={}, verb={}, resource=nodes, subresource=proxy)",
                user.username,
                request.method().as_str().to_ascii_lowercase()
            ),
        ),
        None => error_response(StatusCode::UNAUTHORIZED, "Unauthorized"),
    }
}

/// The values of a query string, decoded, in order (`command` repeats).
pub(crate) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// A boolean query parameter as Kubernetes parses them (`true`, `1`, ...).
pub(crate) fn parse_bool(name: &str, value: &str) -> Result<bool, String> {
    match value {
        "true" | "True" | "TRUE" | "1" | "t" | "T" => Ok(true),
        "false" | "False" | "FALSE" | "0" | "f" | "F" => Ok(false),
        _ => Err(format!(
            "invalid value {value:?} for {name}: must be true or false"
        )),
    }
}
