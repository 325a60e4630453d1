//! The cluster's certificates, as kubeadm makes them: one certificate
//! authority (CA), and certificates it signs for the apiserver (serving),
//! for users and components (client: the CN is the user name, each O a
//! group) and for node agents.
//!
//! Everyone trusts the CA certificate and nothing else: the apiserver
//! accepts a client certificate the CA signed as proof of who the caller
//! is, and clients check the apiserver's serving certificate against the
//! CA (the `certificate-authority-data` of a kubeconfig). The CA's private
//! key signs, so it stays where certificates are made (the master's
//! `/etc/kube-lite/pki`, the lab's directory).
//!
//! Keys are ECDSA P-256 (kubeadm's `encryptionAlgorithm: ECDSA-P256`;
//! its default is RSA 2048, which is slower to make and no safer here).
//! Validity as kubeadm's: ten years for the CA, one year for the rest.

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// How long the CA is valid (kubeadm: ten years).
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How long the certificates it signs are valid (kubeadm: one year).
pub const CERT_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

/// The CA's common name (kubeadm's).
pub const CA_NAME: &str = "kubernetes";

/// Why a certificate could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("making {what}: {source}")]
    Make {
        what: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("a certificate for {0} names several groups: rcgen writes one O per subject (kubeadm's certificates have one too)")]
    SeveralGroups(String),
    #[error("reading {what}: {source}")]
    Read {
        what: String,
        #[source]
        source: rcgen::Error,
    },
}

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// A TLS server (the apiserver, a node agent's port).
    Server,
    /// A TLS client (a user, a component).
    Client,
}

/// A certificate to issue.
#[derive(Debug, Clone)]
pub struct CertRequest {
    /// The subject's CN: for a client, the user name.
    pub common_name: String,
    /// The subject's O entry: for a client, its group (at most one).
    pub organizations: Vec<String>,
    /// Names a server answers to.
    pub dns_names: Vec<String>,
    /// Addresses a server answers on.
    pub ips: Vec<IpAddr>,
    pub usage: Usage,
}

impl CertRequest {
    /// A client certificate for `user` in `groups`.
    pub fn client(user: &str, groups: &[&str]) -> CertRequest {
        CertRequest {
            common_name: user.into(),
            organizations: groups.iter().map(|g| g.to_string()).collect(),
            dns_names: vec![],
            ips: vec![],
            usage: Usage::Client,
        }
    }

    /// A serving certificate for these names and addresses.
    pub fn server(common_name: &str, dns_names: &[&str], ips: &[IpAddr]) -> CertRequest {
        CertRequest {
            common_name: common_name.into(),
            organizations: vec![],
            dns_names: dns_names.iter().map(|n| n.to_string()).collect(),
            ips: ips.to_vec(),
            usage: Usage::Server,
        }
    }
}

/// A certificate and its private key, PEM-encoded.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The names the apiserver's certificate must carry: how clients inside
/// and outside the cluster reach it (kubeadm's `apiserver` certificate).
pub fn apiserver_names() -> Vec<&'static str> {
    vec![
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "localhost",
    ]
}

/// The cluster's certificate authority.
pub struct Ca {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

fn validity(params: &mut CertificateParams, for_how_long: Duration) {
    let now = time::OffsetDateTime::now_utc();
    // A little slack for clocks a few minutes apart (kubeadm back-dates
    // too).
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + for_how_long;
}

fn make(what: &str) -> impl FnOnce(rcgen::Error) -> PkiError + '_ {
    move |source| PkiError::Make {
        what: what.to_string(),
        source,
    }
}

impl Ca {
    /// A new CA, self-signed, named like kubeadm's (`kubernetes`).
    pub fn generate() -> Result<Ca, PkiError> {
        Ca::generate_named(CA_NAME)
    }

    /// A new self-signed CA with common name `common_name` (the lab's
    /// registry has its own).
    pub fn generate_named(common_name: &str) -> Result<Ca, PkiError> {
        let key = KeyPair::generate().map_err(make("the CA key"))?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, common_name);
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        validity(&mut params, CA_VALIDITY);
        let cert = params.self_signed(&key).map_err(make("the CA"))?;
        let cert_pem = cert.pem();
        let key_pem = key.serialize_pem();
        Ca::load(&cert_pem, &key_pem)
    }

    /// The CA from its certificate and key (PEM).
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Ca, PkiError> {
        let read = |what: &str| {
            let what = what.to_string();
            move |source| PkiError::Read { what, source }
        };
        let key = KeyPair::from_pem(key_pem).map_err(read("the CA key"))?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(read("the CA"))?;
        Ok(Ca {
            cert_pem: cert_pem.to_string(),
            issuer,
        })
    }

    /// The CA certificate: what every client and server trusts.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's private key (to be written only where certificates are
    /// made).
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Issues a certificate with a new key.
    pub fn issue(&self, request: &CertRequest) -> Result<Issued, PkiError> {
        let what = format!("a certificate for {}", request.common_name);
        if request.organizations.len() > 1 {
            return Err(PkiError::SeveralGroups(request.common_name.clone()));
        }
        let key = KeyPair::generate().map_err(make(&what))?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        for organization in &request.organizations {
            name.push(DnType::OrganizationName, organization.as_str());
        }
        name.push(DnType::CommonName, request.common_name.as_str());
        params.distinguished_name = name;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![match request.usage {
            Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        for dns in &request.dns_names {
            let name = dns
                .as_str()
                .try_into()
                .map_err(make(&format!("the name {dns}")))?;
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        for ip in &request.ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, CERT_VALIDITY);
        let cert = params.signed_by(&key, &self.issuer).map_err(make(&what))?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

impl Ca {
    /// Signs a PKCS#10 request (a CertificateSigningRequest's
    /// `spec.request`) for `validity`, as upstream's signer does: the
    /// subject and alternative names come from the request, everything
    /// else from the signer - the key usages from `spec.usages`, never a
    /// CA, the expiry capped by the CA's own.
    pub fn sign_request(
        &self,
        request_pem: &str,
        usages: &[String],
        validity_for: Duration,
    ) -> Result<String, PkiError> {
        let what = "the certificate signing request";
        let mut request =
            rcgen::CertificateSigningRequestParams::from_pem(request_pem).map_err(|source| {
                PkiError::Read {
                    what: what.into(),
                    source,
                }
            })?;
        let params = &mut request.params;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = usages
            .iter()
            .filter_map(|u| match u.as_str() {
                "digital signature" => Some(KeyUsagePurpose::DigitalSignature),
                "key encipherment" => Some(KeyUsagePurpose::KeyEncipherment),
                "content commitment" => Some(KeyUsagePurpose::ContentCommitment),
                "key agreement" => Some(KeyUsagePurpose::KeyAgreement),
                "data encipherment" => Some(KeyUsagePurpose::DataEncipherment),
                _ => None,
            })
            .collect();
        params.extended_key_usages = usages
            .iter()
            .filter_map(|u| match u.as_str() {
                "server auth" => Some(ExtendedKeyUsagePurpose::ServerAuth),
                "client auth" => Some(ExtendedKeyUsagePurpose::ClientAuth),
                "code signing" => Some(ExtendedKeyUsagePurpose::CodeSigning),
                "email protection" => Some(ExtendedKeyUsagePurpose::EmailProtection),
                "timestamping" => Some(ExtendedKeyUsagePurpose::TimeStamping),
                "ocsp signing" => Some(ExtendedKeyUsagePurpose::OcspSigning),
                _ => None,
            })
            .collect();
        params.use_authority_key_identifier_extension = true;
        validity(params, validity_for);
        let cert = request.signed_by(&self.issuer).map_err(make(what))?;
        Ok(cert.pem())
    }
}

/// The CA's public-key hash as `kubeadm join --discovery-token-ca-cert-hash`
/// names it: `sha256:` and the hex SHA-256 of the certificate's
/// SubjectPublicKeyInfo (which survives re-issuing the CA with the same
/// key). None if `ca_pem` is not a certificate.
pub fn public_key_hash(ca_pem: &str) -> Option<String> {
    let der = pem_to_der(ca_pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    let spki = cert.tbs_certificate.subject_pki.raw;
    let digest = ring::digest::digest(&ring::digest::SHA256, spki);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    Some(format!("sha256:{hex}"))
}

/// A new key pair for signing ServiceAccount tokens (kubeadm's `sa.key`,
/// `sa.pub`): the private key (PKCS#8 PEM) and the public key (PEM).
pub fn service_account_key() -> Result<(String, String), PkiError> {
    let key = KeyPair::generate().map_err(make("the service-account key"))?;
    Ok((key.serialize_pem(), key.public_key_pem()))
}

/// The subject of a certificate (DER) as Kubernetes reads a client
/// certificate: the CN is the user name, each O a group. None if it cannot
/// be parsed.
pub fn subject(cert_der: &[u8]) -> Option<(String, Vec<String>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let subject = cert.subject();
    let common_name = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let organizations = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(String::from)
        .collect();
    Some((common_name, organizations))
}

/// The DER bytes of the first certificate of a PEM text.
pub fn pem_to_der(pem_text: &str) -> Option<Vec<u8>> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem_text.as_bytes()).ok()?;
    Some(pem.contents)
}

/// A kubeconfig that reaches `server` as the holder of `credentials`,
/// trusting `ca_pem`: what kubeadm writes to `admin.conf`.
pub fn kubeconfig(
    cluster: &str,
    server: &str,
    ca_pem: &str,
    user: &str,
    credentials: &Issued,
    namespace: Option<&str>,
) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let credentials = format!(
        "client-certificate-data: {}\n    client-key-data: {}",
        b64(&credentials.cert_pem),
        b64(&credentials.key_pem)
    );
    render_kubeconfig(cluster, server, ca_pem, user, &credentials, namespace)
}

/// A kubeconfig that reaches `server` with a bearer `token` (a bootstrap
/// or ServiceAccount token), trusting `ca_pem`.
pub fn token_kubeconfig(
    cluster: &str,
    server: &str,
    ca_pem: &str,
    user: &str,
    token: &str,
    namespace: Option<&str>,
) -> String {
    render_kubeconfig(
        cluster,
        server,
        ca_pem,
        user,
        &format!("token: {token}"),
        namespace,
    )
}

/// One cluster, one user with `credentials` (the lines of its `user:`),
/// and the context that joins them.
fn render_kubeconfig(
    cluster: &str,
    server: &str,
    ca_pem: &str,
    user: &str,
    credentials: &str,
    namespace: Option<&str>,
) -> String {
    let namespace = namespace
        .map(|ns| format!("\n    namespace: {ns}"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {cluster}
  cluster:
    server: {server}
    certificate-authority-data: {ca}
contexts:
- name: {user}@{cluster}
  context:
    cluster: {cluster}
    user: {user}{namespace}
current-context: {user}@{cluster}
users:
- name: {user}
  user:
    {credentials}
",
        ca = base64::engine::general_purpose::STANDARD.encode(ca_pem),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_issues_and_can_be_loaded_again() {
        let ca = Ca::generate().unwrap();
        assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        let again = Ca::load(ca.cert_pem(), &ca.key_pem()).unwrap();
        let client = again
            .issue(&CertRequest::client(
                "kubernetes-admin",
                &["system:masters"],
            ))
            .unwrap();
        assert!(client.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(client.key_pem.contains("PRIVATE KEY"));
        let (user, groups) = subject(&pem_to_der(&client.cert_pem).unwrap()).unwrap();
        assert_eq!(user, "kubernetes-admin");
        assert_eq!(groups, ["system:masters"]);
        let server = ca
            .issue(&CertRequest::server(
                "kube-apiserver",
                &apiserver_names(),
                &["192.168.56.10".parse().unwrap()],
            ))
            .unwrap();
        assert_ne!(server.cert_pem, client.cert_pem);
    }

    #[test]
    fn a_signed_request_keeps_its_subject_and_takes_the_signers_usages() {
        let ca = Ca::generate().unwrap();
        let (request, _key) =
            crate::certificates::make_request("system:node:w1", &["system:nodes"], &[], &[])
                .unwrap();
        let usages = vec!["digital signature".to_string(), "client auth".to_string()];
        let cert = ca
            .sign_request(&request, &usages, Duration::from_secs(3600))
            .unwrap();
        let der = pem_to_der(&cert).unwrap();
        let (user, groups) = subject(&der).unwrap();
        assert_eq!(
            (user.as_str(), groups),
            ("system:node:w1", vec!["system:nodes".to_string()])
        );
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
        let eku = parsed.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        assert!(!parsed.is_ca());
    }

    #[test]
    fn the_ca_hash_is_of_its_public_key() {
        let ca = Ca::generate().unwrap();
        let hash = public_key_hash(ca.cert_pem()).unwrap();
        assert!(
            hash.starts_with("sha256:") && hash.len() == 7 + 64,
            "{hash}"
        );
        assert_eq!(public_key_hash(ca.cert_pem()), Some(hash.clone()));
        assert_ne!(
            public_key_hash(Ca::generate().unwrap().cert_pem()),
            Some(hash)
        );
        assert_eq!(public_key_hash("nothing"), None);
    }

    #[test]
    fn bad_pem_is_an_error_not_a_panic() {
        let error = Ca::load("not a certificate", "not a key").unwrap_err();
        assert!(
            error.to_string().starts_with("reading the CA key"),
            "{error}"
        );
    }
}
