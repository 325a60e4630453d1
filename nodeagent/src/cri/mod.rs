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

use std::collections::HashMap;

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
        let channel = Self::endpoint(endpoint)?
            .connect()
            .await
            .map_err(|source| CriError::Connect {
                endpoint: endpoint.into(),
                source,
            })?;
        Ok(Self::over(channel))
    }

    /// A connection made at the first call and made again after the
    /// runtime restarted: what the node agent holds for its whole life
    /// (a containerd restart under running Pods costs failed calls while
    /// it is away, nothing more).
    pub fn lazy(endpoint: &str) -> Result<Runtime, CriError> {
        Ok(Self::over(Self::endpoint(endpoint)?.connect_lazy()))
    }

    fn endpoint(endpoint: &str) -> Result<tonic::transport::Endpoint, CriError> {
        if !endpoint.starts_with("unix://") {
            return Err(CriError::Endpoint {
                endpoint: endpoint.into(),
            });
        }
        tonic::transport::Endpoint::from_shared(endpoint.to_string()).map_err(|source| {
            CriError::Connect {
                endpoint: endpoint.into(),
                source,
            }
        })
    }

    fn over(channel: tonic::transport::Channel) -> Runtime {
        Runtime {
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
        }
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

    /// PullImage with registry credentials.
    pub async fn pull_with(
        &mut self,
        image: &str,
        auth: Option<v1::AuthConfig>,
    ) -> Result<String, tonic::Status> {
        self.images
            .pull_image(v1::PullImageRequest {
                image: Some(image_spec(image)),
                auth,
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().image_ref)
    }

    /// ImageStatus: the image when it is present on the node.
    pub async fn image(&mut self, image: &str) -> Result<Option<v1::Image>, tonic::Status> {
        self.images
            .image_status(v1::ImageStatusRequest {
                image: Some(image_spec(image)),
                verbose: false,
            })
            .await
            .map(|r| r.into_inner().image)
    }

    /// The sandboxes whose labels include `labels`.
    pub async fn sandboxes(
        &mut self,
        labels: HashMap<String, String>,
    ) -> Result<Vec<v1::PodSandbox>, tonic::Status> {
        self.runtime
            .list_pod_sandbox(v1::ListPodSandboxRequest {
                filter: Some(v1::PodSandboxFilter {
                    label_selector: labels,
                    ..Default::default()
                }),
            })
            .await
            .map(|r| r.into_inner().items)
    }

    /// PodSandboxStatus.
    pub async fn sandbox_status(
        &mut self,
        sandbox: &str,
    ) -> Result<v1::PodSandboxStatus, tonic::Status> {
        self.runtime
            .pod_sandbox_status(v1::PodSandboxStatusRequest {
                pod_sandbox_id: sandbox.into(),
                verbose: false,
            })
            .await?
            .into_inner()
            .status
            .ok_or_else(|| tonic::Status::not_found(format!("sandbox {sandbox}: no status")))
    }

    /// The containers whose labels include `labels` (every state).
    pub async fn containers(
        &mut self,
        labels: HashMap<String, String>,
    ) -> Result<Vec<v1::Container>, tonic::Status> {
        self.runtime
            .list_containers(v1::ListContainersRequest {
                filter: Some(v1::ContainerFilter {
                    label_selector: labels,
                    ..Default::default()
                }),
            })
            .await
            .map(|r| r.into_inner().containers)
    }

    /// ContainerStatus, with the runtime's `info` (verbose): containerd
    /// puts the process ID and the runc options there.
    pub async fn container_status(
        &mut self,
        container: &str,
    ) -> Result<(v1::ContainerStatus, HashMap<String, String>), tonic::Status> {
        let response = self
            .runtime
            .container_status(v1::ContainerStatusRequest {
                container_id: container.into(),
                verbose: true,
            })
            .await?
            .into_inner();
        let status = response
            .status
            .ok_or_else(|| tonic::Status::not_found(format!("container {container}: no status")))?;
        Ok((status, response.info))
    }

    /// StopContainer: the image's stop signal, SIGKILL after `grace`.
    pub async fn stop_container(
        &mut self,
        container: &str,
        grace: std::time::Duration,
    ) -> Result<(), tonic::Status> {
        self.runtime
            .stop_container(v1::StopContainerRequest {
                container_id: container.into(),
                timeout: grace.as_secs() as i64,
            })
            .await
            .map(|_| ())
    }

    /// RemoveContainer (its log file stays).
    pub async fn remove_container(&mut self, container: &str) -> Result<(), tonic::Status> {
        self.runtime
            .remove_container(v1::RemoveContainerRequest {
                container_id: container.into(),
            })
            .await
            .map(|_| ())
    }

    /// ExecSync: runs `command` in the container and waits at most
    /// `timeout` (exec probes, preStop hooks).
    pub async fn exec_sync(
        &mut self,
        container: &str,
        command: &[String],
        timeout: std::time::Duration,
    ) -> Result<v1::ExecSyncResponse, tonic::Status> {
        self.runtime
            .exec_sync(v1::ExecSyncRequest {
                container_id: container.into(),
                cmd: command.to_vec(),
                timeout: timeout.as_secs().max(1) as i64,
            })
            .await
            .map(tonic::Response::into_inner)
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

    /// StopPodSandbox: its containers stop, the CNI plugin's DEL frees the
    /// address; the containers stay (their logs and statuses with them).
    pub async fn stop_sandbox(&mut self, sandbox: &str) -> Result<(), tonic::Status> {
        self.runtime
            .stop_pod_sandbox(v1::StopPodSandboxRequest {
                pod_sandbox_id: sandbox.into(),
            })
            .await
            .map(|_| ())
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
