//! The master's certificates and kubeconfigs (kubeadm's `certs` and
//! `kubeconfig` phases). What exists is kept, so a second run changes
//! nothing and kubeconfigs handed out earlier keep working.
//!
//! | file | who | signed for |
//! | --- | --- | --- |
//! | `pki/ca.crt`, `ca.key` | the cluster CA | itself, ten years |
//! | `pki/apiserver.crt` | the apiserver | `kubernetes.default.svc...`, the node's name and address, the `kubernetes` ClusterIP, 127.0.0.1 |
//! | `pki/apiserver-kubelet-client.crt` | the apiserver, calling node agents | `kube-apiserver-kubelet-client` in `system:masters` |
//! | `pki/sa.key`, `sa.pub` | ServiceAccount tokens | (a key pair, no certificate) |
//! | `admin.conf` | `kubernetes-admin` in `system:masters` | |
//! | `controller.conf` | `system:kube-controller-manager` | |
//! | `nodeagent.conf`, `pki/kubelet.crt` | the master's node agent | `system:node:<name>`; its port |
//!
//! Workers get their `nodeagent.conf` and `kubelet.crt` through
//! certificate signing requests instead ([`crate::bootstrap`]): the CA's
//! key never leaves the master.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use api::pki::{self, Ca, CertRequest, Issued};
use api::user;

use crate::clusterinfo::ClusterConfiguration;
use crate::units::Machine;
use crate::{write_file, Error, Result};

/// The cluster name in every kubeconfig (kubeadm's default).
pub const CLUSTER_NAME: &str = "kubernetes";
/// The administrator (kubeadm's admin.conf user).
pub const ADMIN_USER: &str = "kubernetes-admin";

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(Error::io(format!("reading {}", path.display())))
}

/// The cluster CA: loaded, or made on the first run.
pub fn ca(machine: &Machine) -> Result<Ca> {
    let (cert, key) = (machine.layout.ca_cert(), machine.layout.ca_key());
    if cert.exists() && key.exists() {
        println!("[certs] Using the existing CA in {}", cert.display());
        return Ca::load(&read(&cert)?, &read(&key)?).map_err(Error::pki("the cluster CA"));
    }
    println!("[certs] Generating the cluster CA");
    let ca = Ca::generate().map_err(Error::pki("making the cluster CA"))?;
    write_file(&key, &ca.key_pem(), true)?;
    write_file(&cert, ca.cert_pem(), false)?;
    Ok(ca)
}

/// Issues `request` into (`cert`, `key`) unless both exist.
fn issue(ca: &Ca, (cert, key): (PathBuf, PathBuf), request: &CertRequest) -> Result<()> {
    if cert.exists() && key.exists() {
        println!("[certs] Using the existing {}", cert.display());
        return Ok(());
    }
    println!(
        "[certs] Generating {} for {}",
        cert.file_name().unwrap_or_default().to_string_lossy(),
        request.common_name
    );
    let issued = ca.issue(request).map_err(Error::pki(format!(
        "a certificate for {}",
        request.common_name
    )))?;
    write_file(&key, &issued.key_pem, true)?;
    write_file(&cert, &issued.cert_pem, false)
}

/// The apiserver's URL on this master.
pub fn server_url(machine: &Machine, cluster: &ClusterConfiguration) -> String {
    format!("https://{}:{}", machine.node_ip, cluster.port)
}

/// Everything of the master's PKI that is missing.
pub fn master(machine: &Machine, cluster: &ClusterConfiguration) -> Result<Ca> {
    let ca = ca(machine)?;
    let layout = &machine.layout;
    let mut names = pki::apiserver_names();
    names.push(machine.node_name.as_str());
    issue(
        &ca,
        layout.apiserver_cert(),
        &CertRequest::server(
            "kube-apiserver",
            &names,
            &[
                IpAddr::V4(machine.node_ip),
                IpAddr::V4(cluster.kubernetes_service_ip()),
                IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            ],
        ),
    )?;
    issue(
        &ca,
        layout.apiserver_kubelet_client(),
        &CertRequest::client("kube-apiserver-kubelet-client", &[user::SYSTEM_MASTERS]),
    )?;
    let (sa_key, sa_pub) = layout.service_account_keys();
    if sa_key.exists() && sa_pub.exists() {
        println!("[certs] Using the existing service account key");
    } else {
        println!("[certs] Generating the service account key pair (sa.key, sa.pub)");
        let (private, public) =
            pki::service_account_key().map_err(Error::pki("the service account key"))?;
        write_file(&sa_key, &private, true)?;
        write_file(&sa_pub, &public, false)?;
    }
    // The master's own node agent: its port's certificate.
    issue(
        &ca,
        layout.kubelet_serving(),
        &CertRequest::server(
            &machine.node_name,
            &[machine.node_name.as_str()],
            &[IpAddr::V4(machine.node_ip)],
        ),
    )?;
    Ok(ca)
}

/// A kubeconfig for `user` in `groups` at `path`, unless it exists.
fn kubeconfig(ca: &Ca, server: &str, path: &Path, user: &str, groups: &[&str]) -> Result<()> {
    if path.exists() {
        println!("[kubeconfig] Using the existing {}", path.display());
        return Ok(());
    }
    println!("[kubeconfig] Writing {} ({user})", path.display());
    let credentials: Issued = ca
        .issue(&CertRequest::client(user, groups))
        .map_err(Error::pki(format!("a certificate for {user}")))?;
    write_file(
        path,
        &pki::kubeconfig(
            CLUSTER_NAME,
            server,
            ca.cert_pem(),
            user,
            &credentials,
            None,
        ),
        true,
    )
}

/// admin.conf, controller.conf and the master's nodeagent.conf.
pub fn master_kubeconfigs(
    ca: &Ca,
    machine: &Machine,
    cluster: &ClusterConfiguration,
) -> Result<()> {
    let server = server_url(machine, cluster);
    let layout = &machine.layout;
    kubeconfig(
        ca,
        &server,
        &layout.admin_conf(),
        ADMIN_USER,
        &[user::SYSTEM_MASTERS],
    )?;
    kubeconfig(
        ca,
        &server,
        &layout.controller_conf(),
        user::CONTROLLER_MANAGER,
        &[],
    )?;
    kubeconfig(
        ca,
        &server,
        &layout.nodeagent_conf(),
        &user::node_user(&machine.node_name),
        &[user::NODES],
    )
}

/// A kubeconfig with a key and certificate the node made and the cluster
/// signed (a worker's nodeagent.conf).
pub fn write_kubeconfig(
    path: &Path,
    server: &str,
    ca_pem: &str,
    user: &str,
    credentials: &Issued,
) -> Result<()> {
    write_file(
        path,
        &pki::kubeconfig(CLUSTER_NAME, server, ca_pem, user, credentials, None),
        true,
    )
}
