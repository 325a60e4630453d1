//! The Container Runtime Interface: how a kubelet asks its runtime
//! (containerd) to run Pods, in gRPC over a unix socket.
//!
//! ```text
//! node agent ──runtime.v1 RuntimeService──▶ containerd ──▶ runc (containers)
//!            ──runtime.v1 ImageService────▶            ──▶ registry (images)
//! ```
//!
//! The messages and the two services are generated at build time from
//! Kubernetes' own definition (`protos/cri/api.proto`, cri-api v0.35.7).
//! containerd 1.6 implements the RPCs of cri-api v0.25; newer ones answer
//! `Unimplemented`, and fields it does not know are ignored on the wire.
//!
//! # Layout
//! - this file: the connection ([`Runtime`]) and the generated [`v1`].
//! - [`config`]: a Pod in the CRI's words (sandbox and container configs:
//!   labels, cgroups, resources, security).

pub mod config;

/// The generated messages and clients (`runtime.v1`).
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("runtime.v1");
}

use v1::image_service_client::ImageServiceClient;
use v1::runtime_service_client::RuntimeServiceClient;

/// containerd's default socket (the kubelet's `--container-runtime-endpoint`).
pub const DEFAULT_ENDPOINT: &str = "unix:///run/containerd/containerd.sock";

/// A connection to a runtime: its two services share one channel.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub runtime: RuntimeServiceClient<tonic::transport::Channel>,
    pub images: ImageServiceClient<tonic::transport::Channel>,
}

/// Why the runtime could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("{endpoint}: not a unix:// endpoint")]
    Endpoint { endpoint: String },
    #[error("connecting to the container runtime at {endpoint}: {source}")]
    Connect {
        endpoint: String,
        #[source]
        source: tonic::transport::Error,
    },
}

impl Runtime {
    /// Connects to `endpoint` (`unix:///path/to/containerd.sock`).
    pub async fn connect(endpoint: &str) -> Result<Runtime, CriError> {
        if !endpoint.starts_with("unix://") {
            return Err(CriError::Endpoint {
                endpoint: endpoint.into(),
            });
        }
        let channel = tonic::transport::Endpoint::from_shared(endpoint.to_string())
            .map_err(|source| CriError::Connect {
                endpoint: endpoint.into(),
                source,
            })?
            .connect()
            .await
            .map_err(|source| CriError::Connect {
                endpoint: endpoint.into(),
                source,
            })?;
        Ok(Runtime {
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
        })
    }

    /// The runtime's name and version (`containerd`, `1.6.20`) and its CRI
    /// version (`v1`): what the Node reports as `containerd://1.6.20`.
    pub async fn version(&mut self) -> Result<v1::VersionResponse, tonic::Status> {
        self.runtime
            .version(v1::VersionRequest {
                version: "v1".into(),
            })
            .await
            .map(tonic::Response::into_inner)
    }
}
