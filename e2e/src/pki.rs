//! The lab's certificates and kubeconfigs, as kubeadm would make them on
//! the VMs: one cluster CA in `DIR/pki`, the apiserver's serving
//! certificate, the key that signs ServiceAccount tokens, and a
//! kubeconfig per identity - the host's administrator
//! (`DIR/kubeconfig`, group `system:masters`), the controller
//! (`system:kube-controller-manager`) and each node agent
//! (`system:node:<name>` in `system:nodes`) on its node's "disk".
//!
//! Files that exist are kept: a second `up` reuses the CA, so kubeconfigs
//! handed out earlier keep working.

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use api::pki::{self, Ca, CertRequest, Issued};
use api::user;

use crate::lab::LabError;

/// The cluster name every kubeconfig of the lab uses.
pub const CLUSTER: &str = "kube-lite-lab";
/// The host administrator's user name (kubeadm's `admin.conf`).
pub const ADMIN_USER: &str = "kubernetes-admin";

/// Where the lab's PKI lives.
pub fn pki_dir(dir: &Path) -> PathBuf {
    dir.join("pki")
}

/// The cluster CA certificate clients trust.
pub fn ca_cert_path(dir: &Path) -> PathBuf {
    pki_dir(dir).join("ca.crt")
}

/// The key pair that signs ServiceAccount tokens (kubeadm's `sa.key`,
/// `sa.pub`).
pub fn service_account_key_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (pki_dir(dir).join("sa.key"), pki_dir(dir).join("sa.pub"))
}

/// The apiserver's serving certificate and key.
pub fn apiserver_cert_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (
        pki_dir(dir).join("apiserver.crt"),
        pki_dir(dir).join("apiserver.key"),
    )
}

fn error(what: impl Into<String>) -> impl FnOnce(pki::PkiError) -> LabError {
    let what = what.into();
    move |e| LabError::Pki(format!("{what}: {e}"))
}

fn read(path: &Path) -> Result<String, LabError> {
    std::fs::read_to_string(path)
        .map_err(|e| LabError::Pki(format!("reading {}: {e}", path.display())))
}

/// Writes a file readable by its owner only (keys, kubeconfigs with keys).
fn write_private(path: &Path, text: &str) -> Result<(), LabError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| LabError::Pki(format!("creating {}: {e}", parent.display())))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()).map(|_| f))
        .map_err(|e| LabError::Pki(format!("writing {}: {e}", path.display())))?;
    let _ = file.flush();
    Ok(())
}

/// Issues `request` into `paths` (certificate, key) unless both exist.
fn issue_missing(
    ca: &Ca,
    (cert, key): (PathBuf, PathBuf),
    request: &CertRequest,
) -> Result<(), LabError> {
    if cert.exists() && key.exists() {
        return Ok(());
    }
    let issued = ca
        .issue(request)
        .map_err(error(format!("a certificate for {}", request.common_name)))?;
    write_private(&key, &issued.key_pem)?;
    write_private(&cert, &issued.cert_pem)
}

/// The CA, made on the first `up`.
fn ca(dir: &Path) -> Result<Ca, LabError> {
    let cert = ca_cert_path(dir);
    let key = pki_dir(dir).join("ca.key");
    if cert.exists() && key.exists() {
        return Ca::load(&read(&cert)?, &read(&key)?).map_err(error("the lab's CA"));
    }
    let ca = Ca::generate().map_err(error("making the lab's CA"))?;
    write_private(&key, &ca.key_pem())?;
    write_private(&cert, ca.cert_pem())?;
    Ok(ca)
}

/// Makes what is missing of the lab's PKI: the CA, the apiserver's
/// certificate (for its LAN address, the `kubernetes` Service's ClusterIP
/// and names), and the kubeconfigs of the administrator, the controller
/// and each node agent (`nodes`: name, from the `DIR/<name>` disk).
pub fn ensure(
    dir: &Path,
    server: &str,
    master_ip: Ipv4Addr,
    kubernetes_service_ip: Ipv4Addr,
    nodes: &[(String, Ipv4Addr)],
) -> Result<(), LabError> {
    let ca = ca(dir)?;
    issue_missing(
        &ca,
        apiserver_cert_paths(dir),
        &CertRequest::server(
            "kube-apiserver",
            &pki::apiserver_names(),
            &[
                IpAddr::V4(master_ip),
                IpAddr::V4(kubernetes_service_ip),
                IpAddr::V4(Ipv4Addr::LOCALHOST),
            ],
        ),
    )?;
    let (sa_key, sa_pub) = service_account_key_paths(dir);
    if !sa_key.exists() || !sa_pub.exists() {
        let (private, public) =
            pki::service_account_key().map_err(error("the service-account key"))?;
        write_private(&sa_key, &private)?;
        write_private(&sa_pub, &public)?;
    }
    let kubeconfig = |path: PathBuf, user: &str, groups: &[&str], namespace: Option<&str>| {
        if path.exists() {
            return Ok(());
        }
        let credentials: Issued = ca
            .issue(&CertRequest::client(user, groups))
            .map_err(error(format!("a certificate for {user}")))?;
        write_private(
            &path,
            &pki::kubeconfig(
                CLUSTER,
                server,
                ca.cert_pem(),
                user,
                &credentials,
                namespace,
            ),
        )
    };
    kubeconfig(
        dir.join("kubeconfig"),
        ADMIN_USER,
        &[user::SYSTEM_MASTERS],
        Some("default"),
    )?;
    kubeconfig(
        controller_kubeconfig(dir),
        user::CONTROLLER_MANAGER,
        &[],
        None,
    )?;
    for (node, ip) in nodes {
        kubeconfig(
            node_kubeconfig(dir, node),
            &user::node_user(node),
            &[user::NODES],
            None,
        )?;
        // The kubelet port's serving certificate: its name and address.
        issue_missing(
            &ca,
            kubelet_cert_paths(dir, node),
            &CertRequest::server(node, &[node.as_str()], &[IpAddr::V4(*ip)]),
        )?;
    }
    // What the apiserver shows kubelets (kubeadm's
    // apiserver-kubelet-client).
    issue_missing(
        &ca,
        apiserver_kubelet_client_paths(dir),
        &CertRequest::client("kube-apiserver-kubelet-client", &[user::SYSTEM_MASTERS]),
    )?;
    Ok(())
}

/// A node agent's kubelet-port certificate and key, on its disk.
pub fn kubelet_cert_paths(dir: &Path, node: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(node).join("kubelet.crt"),
        dir.join(node).join("kubelet.key"),
    )
}

/// The apiserver's client certificate and key towards kubelets.
pub fn apiserver_kubelet_client_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (
        pki_dir(dir).join("apiserver-kubelet-client.crt"),
        pki_dir(dir).join("apiserver-kubelet-client.key"),
    )
}

/// The controller's kubeconfig, on the master's disk.
pub fn controller_kubeconfig(dir: &Path) -> PathBuf {
    dir.join("kl-master").join("controller.conf")
}

/// A node agent's kubeconfig, on its node's disk (kubeadm's
/// `/etc/kubernetes/kubelet.conf`).
pub fn node_kubeconfig(dir: &Path, node: &str) -> PathBuf {
    dir.join(node).join("nodeagent.conf")
}

/// Whether `GET /readyz` answers 200 over HTTPS, the server's certificate
/// checked against the CA `ca_pem` (`/readyz` needs no credentials).
pub fn https_ready(addr: SocketAddr, ca_pem: &str) -> bool {
    use std::sync::Arc;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()).flatten() {
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let Ok(builder) =
        rustls::ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions()
    else {
        return false;
    };
    let config = Arc::new(builder.with_root_certificates(roots).with_no_client_auth());
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let Ok(connection) = rustls::ClientConnection::new(config, name) else {
        return false;
    };
    let Ok(tcp) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = tcp.set_write_timeout(Some(Duration::from_secs(2)));
    let mut stream = rustls::StreamOwned::new(connection, tcp);
    if stream
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer.starts_with(b"HTTP/1.1 200")
}
