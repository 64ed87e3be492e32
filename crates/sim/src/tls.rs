//! A local certificate authority for the simulator's https.
//!
//! Real clients insist on https for a custom authority and must be told to trust the
//! simulator, so the CA certificate is written to a file whose path is printed. The CA is kept
//! and reused across restarts, so a client set up once keeps trusting the sandbox.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading or writing the CA directory failed.
    #[error("cannot read or write the simulator's CA in {dir}: {source}; check the directory is writable or pass another --tls-dir")]
    Io {
        /// The CA directory.
        dir: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A certificate could not be generated.
    #[error("cannot make a certificate: {0}")]
    Cert(#[from] rcgen::Error),
    /// The CA files exist but cannot be parsed.
    #[error("the CA files in {0} are unreadable; delete them and the simulator makes new ones")]
    BadCa(PathBuf),
    /// rustls refused the certificate or key.
    #[error("TLS configuration failed: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The server's TLS settings plus where the CA certificate is.
pub struct Tls {
    /// The rustls server configuration, with the server certificate and key.
    pub config: Arc<rustls::ServerConfig>,
    /// Where the CA certificate is, for clients to trust.
    pub ca_cert_path: PathBuf,
}

fn io(dir: &Path) -> impl Fn(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        dir: dir.to_path_buf(),
        source,
    }
}

/// Loads the CA from `dir` (making one if absent) and issues a server certificate for
/// `localhost`, `127.0.0.1` and `::1`.
pub fn load_or_create(dir: &Path) -> Result<Tls, TlsError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let ca_cert_path = dir.join("ca.pem");
    let ca_key_path = dir.join("ca.key");
    // Trust anchors are matched by subject and public key, so a CA rebuilt from the kept key
    // with the same subject still anchors certificates for clients that trust the old file.
    let ca_params = || {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "m365sync simulator local CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params
    };
    let ca_key = if ca_cert_path.exists() && ca_key_path.exists() {
        let key_pem = std::fs::read_to_string(&ca_key_path).map_err(io(dir))?;
        KeyPair::from_pem(&key_pem).map_err(|_| TlsError::BadCa(dir.to_path_buf()))?
    } else {
        let key = KeyPair::generate()?;
        let cert = ca_params().self_signed(&key)?;
        std::fs::write(&ca_cert_path, cert.pem()).map_err(io(dir))?;
        std::fs::write(&ca_key_path, key.serialize_pem()).map_err(io(dir))?;
        key
    };
    let ca = ca_params().self_signed(&ca_key)?;
    let server_key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec!["localhost".to_string()])?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().expect("ip")));
    params
        .subject_alt_names
        .push(SanType::IpAddress("::1".parse().expect("ip")));
    let server_cert = params.signed_by(&server_key, &ca, &ca_key)?;
    let chain = vec![CertificateDer::from(server_cert.der().to_vec())];
    let key = PrivateKeyDer::try_from(server_key.serialize_der())
        .map_err(|_| TlsError::BadCa(dir.to_path_buf()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        config: Arc::new(config),
        ca_cert_path: std::fs::canonicalize(&ca_cert_path).map_err(io(dir))?,
    })
}
