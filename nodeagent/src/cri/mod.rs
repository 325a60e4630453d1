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

    /// PullImage: the image's reference (`sha256:...`) once it is present.
    pub async fn pull(&mut self, image: &str) -> Result<String, tonic::Status> {
        self.images
            .pull_image(v1::PullImageRequest {
                image: Some(image_spec(image)),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().image_ref)
    }

    /// RunPodSandbox: the sandbox's ID.
    pub async fn run_sandbox(
        &mut self,
        config: &v1::PodSandboxConfig,
    ) -> Result<String, tonic::Status> {
        self.runtime
            .run_pod_sandbox(v1::RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            })
            .await
            .map(|r| r.into_inner().pod_sandbox_id)
    }

    /// CreateContainer then StartContainer in `sandbox`: the container's ID.
    pub async fn start_container(
        &mut self,
        sandbox: &str,
        config: v1::ContainerConfig,
        sandbox_config: &v1::PodSandboxConfig,
    ) -> Result<String, tonic::Status> {
        let id = self
            .runtime
            .create_container(v1::CreateContainerRequest {
                pod_sandbox_id: sandbox.into(),
                config: Some(config),
                sandbox_config: Some(sandbox_config.clone()),
            })
            .await?
            .into_inner()
            .container_id;
        self.runtime
            .start_container(v1::StartContainerRequest {
                container_id: id.clone(),
            })
            .await?;
        Ok(id)
    }

    /// StopPodSandbox (its containers stop, the CNI plugin's DEL runs) then
    /// RemovePodSandbox.
    pub async fn remove_sandbox(&mut self, sandbox: &str) -> Result<(), tonic::Status> {
        self.runtime
            .stop_pod_sandbox(v1::StopPodSandboxRequest {
                pod_sandbox_id: sandbox.into(),
            })
            .await?;
        self.runtime
            .remove_pod_sandbox(v1::RemovePodSandboxRequest {
                pod_sandbox_id: sandbox.into(),
            })
            .await?;
        Ok(())
    }
}

/// An image named as a Pod names it (`nginx:alpine`).
pub fn image_spec(image: &str) -> v1::ImageSpec {
    v1::ImageSpec {
        image: image.into(),
        ..Default::default()
    }
}
