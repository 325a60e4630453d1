//! Serving HTTPS, and reading who is on the other end of a connection
//! (shared by the apiserver and the node agent's kubelet port; feature
//! `tls-server`).
//!
//! The server's certificate is signed by the cluster CA, so clients that
//! trust the CA know whom they talk to. Clients may in turn present a
//! certificate: if the CA signed it, the handshake proves the client holds
//! its key, and its subject says who the client is (CN the user, O the
//! group). The subject is read once per connection, after the handshake,
//! and given to every request on it as a [`PeerIdentity`] (HTTP/1.1
//! keep-alive and HTTP/2 send many requests over one connection).

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::Service as _;

use crate::user::UserInfo;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the TLS material could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

/// The TLS material, as PEM texts.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert_pem: String,
    pub key_pem: String,
    /// The CA whose client certificates identify users; without it, no
    /// client certificate is asked for.
    pub client_ca_pem: Option<String>,
}

/// Whether a client must present a certificate the CA signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCertificates {
    /// Optional (the apiserver: tokens and anonymous callers too).
    Optional,
    /// Required (the kubelet port: only the apiserver calls it).
    Required,
}

/// The user of a connection's client certificate (`None`: the client sent
/// none). Put on every request of the connection.
#[derive(Debug, Clone)]
pub struct PeerIdentity(pub Option<UserInfo>);

/// The certificates of a PEM text.
pub fn certificates(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError(format!("reading {what}: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError(format!("{what} holds no certificate")));
    }
    Ok(certs)
}

/// The private key of a PEM text.
pub fn private_key(pem: &str, what: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    rustls_pemfile::private_key(&mut pem.as_bytes())
        .map_err(|e| TlsError(format!("reading {what}: {e}")))?
        .ok_or_else(|| TlsError(format!("{what} holds no private key")))
}

/// The rustls configuration: our certificate, and client certificates
/// checked against the CA (required or not).
pub fn server_config(
    files: &TlsFiles,
    clients: ClientCertificates,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    fn fail(what: &'static str) -> impl Fn(rustls::Error) -> TlsError {
        move |e| TlsError(format!("{what}: {e}"))
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates(&files.cert_pem, "the serving certificate")?;
    let key = private_key(&files.key_pem, "the serving key")?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(fail("TLS versions"))?;
    let builder = match &files.client_ca_pem {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates(ca, "the client CA")? {
                roots.add(cert).map_err(fail("the client CA"))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match clients {
                ClientCertificates::Optional => verifier.allow_unauthenticated(),
                ClientCertificates::Required => verifier,
            };
            let verifier = verifier
                .build()
                .map_err(|e| TlsError(format!("the client certificate verifier: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(fail("the serving certificate and key do not match"))?;
    // HTTP/2 when the client offers it; exec's WebSocket upgrade needs
    // HTTP/1.1, which clients ask for when they need it.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The user a verified client certificate names.
fn peer_user(connection: &rustls::ServerConnection) -> Option<UserInfo> {
    let cert = connection.peer_certificates()?.first()?;
    let (name, groups) = crate::pki::subject(cert)?;
    Some(UserInfo::authenticated(&name, &groups))
}

/// Serves `router` over TLS on `listener` until the process ends.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    config: Arc<rustls::ServerConfig>,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(config);
    loop {
        let (tcp, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait, go on.
                tracing::warn!(%error, "accepting a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    // Logged as Go's servers do ("http: TLS handshake
                    // error from ..."): a client certificate that is
                    // refused (expired, another CA, X.509 v1) is only
                    // explained here; the client sees a bare TLS alert.
                    tracing::info!(%remote, %error, "TLS handshake error");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%remote, "TLS handshake timed out");
                    return;
                }
            };
            let identity = PeerIdentity(peer_user(tls.get_ref().1));
            let service = hyper::service::service_fn(
                move |mut request: hyper::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(identity.clone());
                    let mut router = router.clone();
                    async move { router.call(request.map(axum::body::Body::new)).await }
                },
            );
            if let Err(error) = auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%remote, %error, "connection ended with an error");
            }
        });
    }
}

/// A client configuration that trusts `ca_pem` and presents `cert_pem` /
/// `key_pem` (the apiserver calling a kubelet).
pub fn client_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(ca_pem, "the kubelet CA")? {
        roots
            .add(cert)
            .map_err(|e| TlsError(format!("the kubelet CA: {e}")))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("TLS versions: {e}")))?
        .with_root_certificates(roots)
        .with_client_auth_cert(
            certificates(cert_pem, "the kubelet client certificate")?,
            private_key(key_pem, "the kubelet client key")?,
        )
        .map_err(|e| TlsError(format!("the kubelet client certificate: {e}")))?;
    Ok(Arc::new(config))
}
