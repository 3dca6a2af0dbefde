//! Reading PEM files: a certificate chain, a private key, a set of CA certificates.
//!
//! Each file is read whole and parsed with rustls-pki-types' PEM parser. Every error names the
//! configuration key (`bus.tls.cert`) and the file, and says what is wrong in words an operator
//! can act on ("cannot read", "no certificate in it"), never the file's contents: a key file
//! given where a certificate was expected must not end up in a log.

use std::fmt;
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;

/// A TLS file that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileError {
    /// The configuration key that names the file, e.g. `bus.tls.cert`.
    pub key: String,
    /// The file, as configured.
    pub path: PathBuf,
    /// What is wrong, as one line.
    pub message: String,
}

impl FileError {
    pub(crate) fn new(key: &str, path: &Path, message: impl Into<String>) -> FileError {
        FileError {
            key: key.to_string(),
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.key, self.path.display(), self.message)
    }
}

impl std::error::Error for FileError {}

fn read(key: &str, path: &Path) -> Result<Vec<u8>, FileError> {
    std::fs::read(path).map_err(|e| FileError::new(key, path, format!("cannot read: {e}")))
}

/// Every certificate of a PEM file, in order (a chain: the leaf first).
fn certificates(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, FileError> {
    let bytes = read(key, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| FileError::new(key, path, format!("not a valid PEM file: {e}")))?;
    if certs.is_empty() {
        return Err(FileError::new(
            key,
            path,
            "no certificate in it (a PEM \"BEGIN CERTIFICATE\" block was expected)",
        ));
    }
    Ok(certs)
}

/// This node's certificate chain, leaf first.
pub fn cert_chain(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, FileError> {
    certificates(key, path)
}

/// The first private key of a PEM file: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
pub fn private_key(key: &str, path: &Path) -> Result<PrivateKeyDer<'static>, FileError> {
    let bytes = read(key, path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        let why = match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no private key in it (a PEM \"BEGIN PRIVATE KEY\", \"BEGIN RSA PRIVATE KEY\" or \"BEGIN EC PRIVATE KEY\" block was expected)".to_string()
            }
            other => format!("not a valid PEM file: {other}"),
        };
        FileError::new(key, path, why)
    })
}

/// The CA certificates of a PEM file, as trust anchors. Every certificate in it must be usable
/// as one: a file that silently lost half its CAs would fail peers later and far from here.
pub fn roots(key: &str, path: &Path) -> Result<RootCertStore, FileError> {
    let mut store = RootCertStore::empty();
    for (i, der) in certificates(key, path)?.into_iter().enumerate() {
        store.add(der).map_err(|e| {
            FileError::new(
                key,
                path,
                format!("certificate {} is not a usable CA certificate: {e}", i + 1),
            )
        })?;
    }
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("busway-pem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn errors_name_the_key_and_the_file_and_never_the_contents() {
        let missing = Path::new("/nonexistent/busway/node.crt");
        let e = cert_chain("bus.tls.cert", missing).unwrap_err();
        assert_eq!(e.key, "bus.tls.cert");
        assert!(
            e.to_string()
                .starts_with("bus.tls.cert: /nonexistent/busway/node.crt: cannot read"),
            "{e}"
        );

        let secret = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ5dGVzLW9mLWEta2V5\n-----END PRIVATE KEY-----\n";
        let p = temp("key-as-cert.pem", secret);
        let e = cert_chain("bus.tls.cert", &p).unwrap_err();
        assert!(e.message.contains("no certificate in it"), "{e}");
        assert!(!e.to_string().contains("c2VjcmV0"), "{e}");

        let p = temp("garbage.pem", "just some text\n");
        let e = private_key("admin.tls.key", &p).unwrap_err();
        assert!(e.message.contains("no private key in it"), "{e}");
        let e = roots("bus.tls.ca", &p).unwrap_err();
        assert!(e.message.contains("no certificate in it"), "{e}");
    }

    #[test]
    fn a_block_that_is_not_a_certificate_is_refused_as_a_ca() {
        let p = temp(
            "bad-ca.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        let e = roots("bus.tls.ca", &p).unwrap_err();
        assert!(
            e.message.contains("certificate 1 is not a usable CA"),
            "{e}"
        );
    }
}
