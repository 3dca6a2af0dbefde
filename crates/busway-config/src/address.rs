//! Parsing the address forms of CONTRACT section 2 into [`Address`].
//!
//! Parsing is strict so that a typo fails at load time with a reason, not at the first session:
//! IP literals are checked and stored in their canonical form (so `Display` of a parsed address
//! is canonical and parses back to the same value), DNS names are checked label by label, and
//! Unix socket paths must be absolute and fit in `sun_path`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::str::FromStr;

use crate::model::Address;

/// Longest DNS name, in characters, without a trailing dot (RFC 1035).
const MAX_DNS_NAME: usize = 253;
/// Longest DNS label (RFC 1035).
const MAX_DNS_LABEL: usize = 63;
/// Longest DNS-SD service name, without its `_` (RFC 6335 section 5.1).
const MAX_SERVICE_NAME: usize = 15;
/// `sun_path` is 108 bytes on Linux, one of which is the terminating NUL.
const MAX_UNIX_PATH: usize = 107;

const SCHEMES: &str = "tcp://, unix://, srv://, grpc://, grpcs://, label: or mdns:";

impl FromStr for Address {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(rest) = s.strip_prefix("tcp://") {
            let (host, port) = host_port(rest)?;
            return Ok(Address::Tcp { host, port });
        }
        if let Some(rest) = s.strip_prefix("grpc://") {
            let (host, port) = host_port(rest)?;
            return Ok(Address::Grpc {
                host,
                port,
                tls: false,
            });
        }
        if let Some(rest) = s.strip_prefix("grpcs://") {
            let (host, port) = host_port(rest)?;
            return Ok(Address::Grpc {
                host,
                port,
                tls: true,
            });
        }
        if let Some(rest) = s.strip_prefix("unix://") {
            return unix_path(rest).map(Address::Unix);
        }
        if let Some(rest) = s.strip_prefix("srv://") {
            return srv_name(rest).map(|()| Address::Srv(rest.to_string()));
        }
        if let Some(rest) = s.strip_prefix("label:") {
            return labels(rest).map(Address::Label);
        }
        if let Some(rest) = s.strip_prefix("mdns:") {
            return mdns_type(rest).map(|()| Address::Mdns(rest.to_string()));
        }
        Err(match s.split_once("://") {
            Some((scheme, _)) => format!("unknown scheme \"{scheme}\", expected {SCHEMES}"),
            None if s.is_empty() => format!("empty address, expected {SCHEMES}"),
            None => format!("missing scheme in \"{s}\", expected {SCHEMES} (e.g. tcp://{s})"),
        })
    }
}

/// The scheme an address was written with, for messages such as "srv:// targets are …".
pub(crate) fn scheme(address: &Address) -> &'static str {
    match address {
        Address::Tcp { .. } => "tcp://",
        Address::Unix(_) => "unix://",
        Address::Srv(_) => "srv://",
        Address::Grpc { tls: false, .. } => "grpc://",
        Address::Grpc { tls: true, .. } => "grpcs://",
        Address::Label(_) => "label:",
        Address::Mdns(_) => "mdns:",
    }
}

/// Whether an address is one a socket can be bound to or dialled directly, without discovery.
pub(crate) fn is_socket(address: &Address) -> bool {
    matches!(address, Address::Tcp { .. } | Address::Unix(_))
}

/// `HOST:PORT` where HOST is IPv4, `[IPv6]` or a DNS name. IP literals come back canonical and
/// without brackets, as [`Address`] stores them.
fn host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("missing ']' in \"{s}\""))?;
        let ip =
            Ipv6Addr::from_str(inside).map_err(|_| format!("invalid IPv6 address \"{inside}\""))?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| format!("missing port in \"{s}\", expected [IPv6]:PORT"))?;
        (ip.to_string(), port)
    } else {
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("missing port in \"{s}\", expected HOST:PORT"))?;
        if host.contains(':') {
            return Err(format!(
                "an IPv6 address needs brackets, as in [{host}]:{port}"
            ));
        }
        (host_name_or_ipv4(host)?, port)
    };
    Ok((host, port_number(port)?))
}

fn host_name_or_ipv4(host: &str) -> Result<String, String> {
    if host.is_empty() {
        return Err("missing host before the port".to_string());
    }
    if let Ok(ip) = Ipv4Addr::from_str(host) {
        return Ok(ip.to_string());
    }
    // A name whose last label is all digits would be an IPv4 address to most resolvers; it is
    // almost always a mistyped one ("10.0.0.256"), so say so instead of trying DNS.
    let last = host.rsplit('.').next().unwrap_or(host);
    if !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid IPv4 address \"{host}\""));
    }
    dns_name(host).map_err(|e| format!("invalid host name \"{host}\": {e}"))?;
    Ok(host.to_string())
}

fn port_number(port: &str) -> Result<u16, String> {
    if port.is_empty() {
        return Err("missing port number".to_string());
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid port \"{port}\""));
    }
    port.parse::<u16>()
        .map_err(|_| format!("port {port} is out of range (0-65535)"))
}

/// Labels of `[A-Za-z0-9_-]`, each 1–63 characters, at most 253 in all. The underscore is allowed
/// because SRV and mDNS service labels (`_busway._tcp`) need it.
pub(crate) fn dns_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name".to_string());
    }
    if name.len() > MAX_DNS_NAME {
        return Err(format!("longer than {MAX_DNS_NAME} characters"));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("empty label".to_string());
        }
        if label.len() > MAX_DNS_LABEL {
            return Err(format!("label longer than {MAX_DNS_LABEL} characters"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!("character '{c}' is not allowed"));
        }
    }
    Ok(())
}

fn unix_path(path: &str) -> Result<PathBuf, String> {
    if !path.starts_with('/') {
        return Err(format!(
            "a Unix socket path must be absolute, as in unix:///run/app.sock (got \"unix://{path}\")"
        ));
    }
    if path.len() == 1 || path.ends_with('/') {
        return Err(format!("\"{path}\" names a directory, not a socket file"));
    }
    if path.contains('\0') {
        return Err("a Unix socket path cannot contain a NUL byte".to_string());
    }
    if path.len() > MAX_UNIX_PATH {
        return Err(format!(
            "Unix socket path is {} bytes long, the limit is {MAX_UNIX_PATH}",
            path.len()
        ));
    }
    Ok(PathBuf::from(path))
}

/// `_service._proto.NAME`: the two underscore labels RFC 2782 requires, then a domain.
fn srv_name(name: &str) -> Result<(), String> {
    let bad =
        |why: &str| format!("invalid SRV name \"{name}\": {why}, expected _service._proto.NAME");
    dns_name(name).map_err(|e| bad(&e))?;
    let mut labels = name.split('.');
    let service = labels.next().unwrap_or("");
    let proto = labels.next().unwrap_or("");
    if service.len() < 2 || !service.starts_with('_') {
        return Err(bad("the first label must start with '_'"));
    }
    if proto.len() < 2 || !proto.starts_with('_') {
        return Err(bad("the second label must start with '_'"));
    }
    if labels.next().is_none() {
        return Err(bad("the domain is missing"));
    }
    Ok(())
}

/// `_service._tcp.local` or `_service._udp.local`: the DNS-SD service type an `mdns:` target
/// browses (RFC 6763 section 7), written without the trailing dot. Anything else would only
/// fail later, in the mDNS library, after `ready`.
fn mdns_type(name: &str) -> Result<(), String> {
    let bad = |why: &str| {
        format!("invalid mDNS service type \"{name}\": {why}, expected _service._tcp.local or _service._udp.local")
    };
    dns_name(name).map_err(|e| bad(&e))?;
    let Some(service) = name
        .strip_suffix("._tcp.local")
        .or_else(|| name.strip_suffix("._udp.local"))
    else {
        return Err(bad("it must end in ._tcp.local or ._udp.local"));
    };
    if service.len() < 2 || !service.starts_with('_') || service.contains('.') {
        return Err(bad("the service is one label that starts with '_'"));
    }
    if service.len() > MAX_SERVICE_NAME + 1 {
        return Err(bad(&format!(
            "a service name is at most {MAX_SERVICE_NAME} characters (RFC 6335)"
        )));
    }
    Ok(())
}

/// `KEY=VALUE[,KEY=VALUE…]`; keys and values of `[A-Za-z0-9._/-]` (label-like, and free of the
/// `,` and `=` that separate them).
fn labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    let ok = |t: &str| {
        !t.is_empty()
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'))
    };
    if s.is_empty() {
        return Err("a label selector needs at least one KEY=VALUE".to_string());
    }
    let mut map = BTreeMap::new();
    for pair in s.split(',') {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("\"{pair}\" is not KEY=VALUE"))?;
        if !ok(k) || !ok(v) {
            return Err(format!(
                "\"{pair}\": keys and values must be non-empty and use only letters, digits, '.', '_', '/', '-'"
            ));
        }
        if map.insert(k.to_string(), v.to_string()).is_some() {
            return Err(format!("label key \"{k}\" is given twice"));
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests;
