//! `[bus.tls]` and `[admin.tls]` (CONTRACT section 10). Only the shape is checked here; the files
//! themselves are read by the node, at start and again on every SIGHUP, so `check` works on a
//! machine that does not hold the keys.

use std::path::PathBuf;

use crate::error::ConfigError;
use crate::model::{ClientAuth, TlsConfig};
use crate::toml_table::Table;

type Res<T> = Result<T, ConfigError>;

/// Which section is read: they differ in which keys are needed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsSection {
    /// `[bus.tls]`: `server_name` is allowed, and `cert`/`key` may be left out by a node that only
    /// dials (checked once the listeners are known).
    Bus,
    /// `[admin.tls]`: a server only, so `cert` and `key` are required.
    Admin,
}

/// `[PARENT.tls]`, or `None` when the table is absent.
pub(crate) fn tls(parent: &Table<'_, '_>, section: TlsSection) -> Res<Option<TlsConfig>> {
    let Some(t) = parent.table("tls")? else {
        return Ok(None);
    };
    let keys: &[&str] = match section {
        TlsSection::Bus => &["cert", "key", "ca", "client_auth", "server_name"],
        TlsSection::Admin => &["cert", "key", "ca", "client_auth"],
    };
    t.deny_unknown(keys)?;
    let path = |k: &str| -> Res<Option<PathBuf>> {
        match t.string(k)? {
            None => Ok(None),
            Some(p) if p.value.is_empty() => Err(ConfigError::new(
                t.src.file,
                p.line,
                &p.key,
                "a path cannot be empty",
            )),
            Some(p) => Ok(Some(PathBuf::from(p.value))),
        }
    };
    let cert = path("cert")?;
    let key = path("key")?;
    let ca = path("ca")?;
    match (&cert, &key) {
        (Some(_), None) => return Err(t.err_here("key", "`cert` needs its private key `key`")),
        (None, Some(_)) => return Err(t.err_here("cert", "`key` needs its certificate `cert`")),
        (None, None) if section == TlsSection::Admin => {
            return Err(t.err_here("cert", "missing key `cert` (and `key`): HTTPS needs both"))
        }
        _ => {}
    }
    let client_auth = match t.string("client_auth")? {
        None if ca.is_some() => ClientAuth::Required,
        None => ClientAuth::None,
        Some(s) => {
            let v = match s.value.as_str() {
                "required" => ClientAuth::Required,
                "optional" => ClientAuth::Optional,
                "none" => ClientAuth::None,
                other => {
                    return Err(ConfigError::new(
                        t.src.file,
                        s.line,
                        &s.key,
                        format!(
                            "invalid client_auth \"{other}\", expected required, optional or none"
                        ),
                    ))
                }
            };
            if v != ClientAuth::None && ca.is_none() {
                return Err(ConfigError::new(
                    t.src.file,
                    s.line,
                    &s.key,
                    format!(
                        "client_auth = \"{}\" needs `ca` to verify client certificates",
                        v.as_str()
                    ),
                ));
            }
            v
        }
    };
    let server_name = match t.string("server_name")? {
        None => None,
        Some(s) if s.value.is_empty() => {
            return Err(ConfigError::new(
                t.src.file,
                s.line,
                &s.key,
                "cannot be empty",
            ))
        }
        Some(s) => Some(s.value),
    };
    Ok(Some(TlsConfig {
        cert,
        key,
        ca,
        client_auth,
        server_name,
    }))
}
