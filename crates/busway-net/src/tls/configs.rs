//! rustls configurations from a `[bus.tls]` or `[admin.tls]` section.
//!
//! Every configuration made here speaks TLS 1.3 only (CONTRACT section 10: a peer offering only
//! TLS 1.2 fails) with the ring provider, whose AES-GCM uses the CPU's AES instructions. Of its
//! cipher suites AES-128-GCM comes first: under a protocol that already authenticates its peers
//! twice, the longer key buys nothing measurable and costs about a quarter more per byte.

use std::path::Path;
use std::sync::Arc;

use busway_config::{ClientAuth, TlsConfig};
use rustls::crypto::{ring, CryptoProvider};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use super::pem::{self, FileError};

/// The one provider of every configuration: ring, with the TLS 1.3 suites in our order.
pub fn provider() -> Arc<CryptoProvider> {
    let base = ring::default_provider();
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
            ring::cipher_suite::TLS13_AES_256_GCM_SHA384,
            ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ],
        ..base
    })
}

const TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// What one section makes: a server configuration where it has a certificate, a client
/// configuration where it has CAs to verify servers with.
#[derive(Clone, Debug)]
pub struct TlsConfigs {
    pub server: Option<Arc<ServerConfig>>,
    pub client: Option<Arc<ClientConfig>>,
}

impl TlsConfigs {
    /// Reads the files of `cfg`, whose keys are spelled `SECTION.cert` in errors (`section` is
    /// `bus.tls` or `admin.tls`).
    ///
    /// The server side presents `cert` and asks for client certificates as `client_auth` says,
    /// verified against `ca`. The client side verifies servers against `ca` and presents `cert`
    /// when there is one; without `ca` there is no client side (a node that dials must have one,
    /// which the configuration's validation made sure of).
    pub fn load(cfg: &TlsConfig, section: &str) -> Result<TlsConfigs, FileError> {
        let k = |name: &str| format!("{section}.{name}");
        let identity = match (&cfg.cert, &cfg.key) {
            (Some(c), Some(key)) => Some((
                pem::cert_chain(&k("cert"), c)?,
                pem::private_key(&k("key"), key)?,
                key.as_path(),
            )),
            _ => None,
        };
        let path = |p: &Option<std::path::PathBuf>| p.clone().unwrap_or_default();
        let roots = match &cfg.ca {
            Some(p) => Some(Arc::new(pem::roots(&k("ca"), p)?)),
            None => None,
        };
        let provider = provider();
        let server = match &identity {
            None => None,
            Some((chain, key, key_path)) => {
                let verifier = match (&roots, cfg.client_auth) {
                    (Some(r), ClientAuth::Required) => Some(
                        WebPkiClientVerifier::builder_with_provider(r.clone(), provider.clone())
                            .build(),
                    ),
                    (Some(r), ClientAuth::Optional) => Some(
                        WebPkiClientVerifier::builder_with_provider(r.clone(), provider.clone())
                            .allow_unauthenticated()
                            .build(),
                    ),
                    _ => None,
                };
                let builder = ServerConfig::builder_with_provider(provider.clone())
                    .with_protocol_versions(TLS13)
                    .map_err(|e| unusable(&k("cert"), &path(&cfg.cert), e))?;
                let builder = match verifier {
                    Some(v) => builder.with_client_cert_verifier(v.map_err(|e| {
                        FileError::new(
                            &k("ca"),
                            &path(&cfg.ca),
                            format!("cannot verify client certificates with it: {e}"),
                        )
                    })?),
                    None => builder.with_no_client_auth(),
                };
                let config = builder
                    .with_single_cert(chain.clone(), key.clone_key())
                    .map_err(|e| unusable(&k("key"), key_path, e))?;
                Some(Arc::new(config))
            }
        };
        let client = match &roots {
            None => None,
            Some(r) => {
                let builder = ClientConfig::builder_with_provider(provider.clone())
                    .with_protocol_versions(TLS13)
                    .map_err(|e| unusable(&k("ca"), &path(&cfg.ca), e))?
                    .with_root_certificates(r.clone());
                let config = match &identity {
                    Some((chain, key, key_path)) => builder
                        .with_client_auth_cert(chain.clone(), key.clone_key())
                        .map_err(|e| unusable(&k("key"), key_path, e))?,
                    None => builder.with_no_client_auth(),
                };
                Some(Arc::new(config))
            }
        };
        Ok(TlsConfigs { server, client })
    }
}

/// A key that does not match its certificate, a certificate rustls cannot use.
fn unusable(key: &str, path: &Path, e: rustls::Error) -> FileError {
    let why = match e {
        rustls::Error::InconsistentKeys(_) => {
            "the private key does not belong to the certificate (`cert`)".to_string()
        }
        other => format!("cannot be used: {other}"),
    };
    FileError::new(key, path, why)
}

/// The client configuration of `busway status` and `busway reload` for an `https://` admin
/// URL: the server is verified against `ca` (PEM) when given, else against the system's CAs.
pub fn https_client(ca: Option<&Path>) -> Result<Arc<ClientConfig>, FileError> {
    let roots = match ca {
        Some(p) => pem::roots("--ca", p)?,
        None => {
            let mut store = RootCertStore::empty();
            let found = rustls_native_roots();
            store.add_parsable_certificates(found);
            if store.is_empty() {
                return Err(FileError::new(
                    "--ca",
                    Path::new("(system CAs)"),
                    "no CA certificates found on this system: name the admin API's CA with --ca FILE",
                ));
            }
            store
        }
    };
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(TLS13)
        .map_err(|e| unusable("--ca", ca.unwrap_or(Path::new("")), e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The system's CA certificates: the bundle `SSL_CERT_FILE` names, else the usual bundle file
/// (Debian's ca-certificates and its relatives); none when there is none. Read here rather
/// than through a crate of its own: one file is all a Linux node has.
fn rustls_native_roots() -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    const BUNDLES: &[&str] = &[
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/cert.pem",
    ];
    let from_env = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
    let candidates = from_env
        .into_iter()
        .chain(BUNDLES.iter().map(std::path::PathBuf::from));
    for b in candidates {
        if let Ok(bytes) = std::fs::read(&b) {
            return rustls::pki_types::CertificateDer::pem_slice_iter(&bytes)
                .filter_map(Result::ok)
                .collect();
        }
    }
    Vec::new()
}
