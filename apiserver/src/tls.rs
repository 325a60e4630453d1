//! Serving HTTPS, and reading who is on the other end of a connection.
//!
//! The apiserver's certificate (`--tls-cert-file`, `--tls-private-key-file`)
//! is signed by the cluster CA, so clients that trust the CA know they
//! talk to the real apiserver. Clients may in turn present a certificate:
//! if the CA (`--client-ca-file`) signed it, the handshake proves the
//! client holds its key, and its subject says who the client is (see
//! [`authn`](crate::authn)). Clients without one still connect: they may
//! carry a token, or be anonymous.
//!
//! The subject is read once per connection, after the handshake, and
//! given to every request on it (HTTP/1.1 keep-alive and HTTP/2 send many
//! requests over one connection).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::Service as _;

use api::user::UserInfo;

use crate::authn::ClientCertificate;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS material, as PEM texts.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert_pem: String,
    pub key_pem: String,
    /// The CA whose client certificates identify users; without it, no
    /// client certificate is asked for.
    pub client_ca_pem: Option<String>,
}

fn certificates(pem: &str, what: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading {what}"))?;
    anyhow::ensure!(!certs.is_empty(), "{what} holds no certificate");
    Ok(certs)
}

/// The rustls configuration: our certificate, and client certificates
/// checked against the CA but not required.
pub fn server_config(files: &TlsFiles) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates(&files.cert_pem, "the serving certificate")?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut files.key_pem.as_bytes())
        .context("reading the serving key")?
        .context("the serving key file holds no private key")?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS versions")?;
    let builder = match &files.client_ca_pem {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates(ca, "the client CA")? {
                roots.add(cert).context("the client CA")?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .context("the client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .context("the serving certificate and key do not match")?;
    // kubectl and client-go speak HTTP/2 when offered; exec's WebSocket
    // upgrade needs HTTP/1.1, which clients ask for when they need it.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The user a verified client certificate names.
fn peer_user(connection: &rustls::ServerConnection) -> Option<UserInfo> {
    let cert = connection.peer_certificates()?.first()?;
    let (name, groups) = api::pki::subject(cert)?;
    Some(UserInfo::authenticated(&name, &groups))
}

/// Serves `router` over TLS on `listener` until the process ends.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    config: Arc<rustls::ServerConfig>,
) -> anyhow::Result<()> {
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
                    tracing::debug!(%remote, %error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%remote, "TLS handshake timed out");
                    return;
                }
            };
            let user = peer_user(tls.get_ref().1);
            let identity = ClientCertificate(user);
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
