//! Probing an apiserver over HTTPS the way a client that knows only the
//! cluster CA would: the lab's readiness check and the test harness's.
//! (The lab's certificates themselves are made by `kubeadm-lite init`.)

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

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
