//! `kubeadm-lite join`: make this VM a worker of the cluster at
//! `API_SERVER_ENDPOINT`.
//!
//! 1. `[preflight]` the flags; the master answers; nothing written yet;
//! 2. `[discovery]` cluster-info, its CA checked against the hash
//!    ([`crate::clusterinfo::discover`]), and the cluster's ranges from
//!    kubeadm-config (read with the token);
//! 3. `[containerd]` configured for the node agent, (re)started, answering
//!    ([`crate::containerd`]);
//! 4. `[kubelet-start]` the node's client and serving certificates through
//!    CSRs ([`crate::bootstrap`]), then nodeagent.conf and the unit;
//! 5. the Node is Ready.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;

use crate::bootstrap::{self, Ask};
use crate::clusterinfo::{self, ClusterConfiguration};
use crate::layout::Layout;
use crate::units::{self, Machine};
use crate::{certs, preflight, wait, write_file, Error, Result};

/// `kubeadm-lite join`'s flags.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// `192.168.56.10:6443`
    pub endpoint: String,
    pub token: String,
    pub ca_hash: String,
    /// None: the address this VM reaches the master from.
    pub node_ip: Option<Ipv4Addr>,
    /// None: the host name.
    pub node_name: Option<String>,
    pub root: PathBuf,
    pub bin_dir: PathBuf,
    pub no_systemd: bool,
}

pub async fn join(options: &JoinOptions) -> Result<()> {
    let layout = Layout::new(&options.root);
    println!("[preflight] Running pre-flight checks");
    preflight::token(&options.token)?;
    preflight::ca_hash(&options.ca_hash)?;
    let master = preflight::endpoint(&options.endpoint)?;
    let node_name = options
        .node_name
        .clone()
        .unwrap_or_else(preflight::hostname);
    preflight::node_name(&node_name)?;
    if let Some(ip) = options.node_ip {
        preflight::node_ip(ip)?;
    }
    preflight::binaries(&options.bin_dir, &[units::NODE, api::cni::PLUGIN_BINARY])?;
    preflight::systemd(options.no_systemd)?;
    crate::containerd::preflight()?;
    if layout.nodeagent_conf().exists() {
        println!(
            "[preflight] This VM has already joined ({} exists); nothing was changed. \
             To join again: kubeadm-lite reset, then join.",
            layout.nodeagent_conf().display()
        );
        return Ok(());
    }
    preflight::reachable(master)?;
    let node_ip = match options.node_ip {
        Some(ip) => ip,
        None => {
            let ip = preflight::address_towards(master).ok_or_else(|| {
                Error::flag(
                    "--node-ip",
                    "no address of this VM reaches the master: name one",
                )
            })?;
            preflight::node_ip(ip)?;
            println!("[preflight] Using node IP {ip}, the address this VM reaches the master from");
            ip
        }
    };

    println!("[discovery] Reading cluster-info from {}", options.endpoint);
    let cluster_info = clusterinfo::discover(&options.endpoint, &options.ca_hash).await?;
    println!(
        "[discovery] The cluster CA matches {}; the apiserver is {}",
        options.ca_hash, cluster_info.server
    );
    let bootstrap = crate::client_from_yaml(
        // Carries only the token; never written.
        &api::pki::token_kubeconfig(
            certs::CLUSTER_NAME,
            &cluster_info.server,
            &cluster_info.ca_pem,
            "tls-bootstrap-token-user",
            &options.token,
            None,
        ),
        "the bootstrap kubeconfig",
    )
    .await?;
    let (namespace, name) = clusterinfo::KUBEADM_CONFIG;
    let config_map = Api::<ConfigMap>::namespaced(bootstrap.clone(), namespace)
        .get(name)
        .await
        .map_err(|e| bootstrap::refused_token(e, "reading kubeadm-config"))?;
    let cluster = ClusterConfiguration::from_yaml(
        config_map
            .data
            .as_ref()
            .and_then(|d| d.get("ClusterConfiguration"))
            .map(String::as_str)
            .unwrap_or_default(),
    )?;

    // The cluster and the token are good: from here on this VM changes.
    crate::containerd::setup(&layout, &options.bin_dir, !options.no_systemd)?;

    let user = api::user::node_user(&node_name);
    let client_credentials =
        bootstrap::request_certificate(bootstrap, &bootstrap::node_client(&user)).await?;
    let as_node_yaml = api::pki::kubeconfig(
        certs::CLUSTER_NAME,
        &cluster_info.server,
        &cluster_info.ca_pem,
        &user,
        &client_credentials,
        None,
    );
    let as_node = crate::client_from_yaml(&as_node_yaml, "the node's kubeconfig").await?;
    let serving = bootstrap::request_certificate(
        as_node.clone(),
        &Ask {
            signer: api::certificates::SIGNER_KUBELET_SERVING,
            common_name: &user,
            organizations: &[api::user::NODES],
            dns_names: &[node_name.as_str()],
            ips: &[IpAddr::V4(node_ip)],
            usages: api::certificates::KUBELET_SERVING_USAGES,
        },
    )
    .await?;

    // nodeagent.conf last: its presence says the join got this far.
    write_file(&layout.ca_cert(), &cluster_info.ca_pem, false)?;
    let (cert, key) = layout.kubelet_serving();
    write_file(&key, &serving.key_pem, true)?;
    write_file(&cert, &serving.cert_pem, false)?;
    write_file(&layout.nodeagent_conf(), &as_node_yaml, true)?;
    println!(
        "[kubelet-start] Wrote {}",
        layout.nodeagent_conf().display()
    );

    let machine = Machine {
        node_name: node_name.clone(),
        node_ip,
        layout: layout.clone(),
        bin_dir: options.bin_dir.clone(),
        systemd: !options.no_systemd,
    };
    units::install(
        &layout,
        &[units::nodeagent(&machine, &cluster, false)],
        !options.no_systemd,
    )?;
    println!(
        "{} {node_name} to be Ready (up to {}s)",
        crate::WAITING_FOR_NODE,
        wait::TIMEOUT.as_secs()
    );
    let hint = if options.no_systemd {
        "Look at the node agent's output."
    } else {
        "Look at `journalctl -u kube-lite-nodeagent`."
    };
    wait::node_ready(as_node, &node_name, hint).await?;
    println!(
        "
This node has joined the cluster:
* Certificates were signed for system:node:{node_name}, and the node agent runs.
* Node {node_name} is Ready, with INTERNAL-IP {node_ip}.

Run `kubectl get nodes -o wide` on the master to see it.
"
    );
    Ok(())
}
