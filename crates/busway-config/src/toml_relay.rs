//! `[[gateway]]` and `[relay]` of the TOML file (CONTRACT section 6): how nodes of other
//! namespaces reach this one, and whether this node carries sessions on for others.
//!
//! Both are published in the discovery record, so a gateway or an advertised relay on a node
//! without `[discovery]` could never be used by anyone: it is refused with its line. A relay
//! itself needs no registry: it can carry sessions on through the `peers` of a service it
//! configures under the same name (docs/DISCOVERY.md, "Relays").

use std::net::IpAddr;

use toml::de::DeValue;

use crate::error::ConfigError;
use crate::model::{Address, AdvertisedRelay, GatewayConfig, RelayConfig, RelayPrefer};
use crate::toml_node::labels_of;
use crate::toml_table::Table;
use crate::validate;

type Res<T> = Result<T, ConfigError>;

/// Every `[[gateway]]`, in file order.
pub(crate) fn gateways(root: &Table<'_, '_>) -> Res<Vec<GatewayConfig>> {
    let Some(v) = root.get("gateway") else {
        return Ok(Vec::new());
    };
    let DeValue::Array(items) = v.get_ref() else {
        return Err(root.err(
            &v.span(),
            "gateway",
            "expected an array of tables: write each gateway as [[gateway]]",
        ));
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items.iter() {
        let DeValue::Table(t) = item.get_ref() else {
            return Err(root.err(&item.span(), "gateway", "expected a table"));
        };
        let t = Table {
            src: root.src,
            table: t,
            span: item.span(),
            path: "gateway".to_string(),
        };
        if root.get("discovery").is_none() {
            return Err(root.err(
                &item.span(),
                "gateway",
                "[[gateway]] is published in the discovery record: it needs [discovery]",
            ));
        }
        out.push(gateway(&t)?);
    }
    Ok(out)
}

fn gateway(t: &Table<'_, '_>) -> Res<GatewayConfig> {
    t.deny_unknown(&["address", "priority", "match"])?;
    let address = t.address("address")?.ok_or_else(|| {
        t.err_here(
            "address",
            "missing key `address`: the bus URL other namespaces dial, such as \"tcp://203.0.113.5:7100\"",
        )
    })?;
    match &address.value {
        Address::Tcp { host, .. } if host.parse::<IpAddr>().is_ok_and(|ip| !ip.is_unspecified()) => {}
        Address::Unix(_) => {}
        other => {
            return Err(ConfigError::new(
                t.src.file,
                address.line,
                &address.key,
                format!("a gateway is dialled as written by other nodes: use tcp://IP:PORT with a specified address, or unix://PATH, not {other}"),
            ))
        }
    }
    let priority = match t.integer("priority")? {
        None => 0,
        Some(p) => u32::try_from(p.value).map_err(|_| {
            ConfigError::new(
                t.src.file,
                p.line,
                &p.key,
                "`priority` must be between 0 and 4294967295",
            )
        })?,
    };
    let r#match = match t.table("match")? {
        // `namespace` is compared with the dialling node's namespace, every other key with its
        // labels: both are spelled like labels.
        Some(m) => labels_of(&m)?,
        None => Default::default(),
    };
    Ok(GatewayConfig {
        address: address.value,
        priority,
        r#match,
    })
}

/// `[relay]`; disabled when absent.
pub(crate) fn relay(root: &Table<'_, '_>) -> Res<RelayConfig> {
    let Some(t) = root.table("relay")? else {
        return Ok(RelayConfig::default());
    };
    t.deny_unknown(&["enabled", "prefer", "advertise"])?;
    let enabled = t.boolean("enabled")?.is_some_and(|b| b.value);
    let prefer = match t.string("prefer")? {
        None => RelayPrefer::Own,
        Some(p) => match p.value.as_str() {
            "own" => RelayPrefer::Own,
            "peer" => RelayPrefer::Peer,
            other => {
                return Err(ConfigError::new(
                    t.src.file,
                    p.line,
                    &p.key,
                    format!("invalid prefer \"{other}\", expected own or peer"),
                ))
            }
        },
    };
    let advertise = match t.table("advertise")? {
        None => None,
        Some(a) => {
            if root.get("discovery").is_none() {
                return Err(t.err_here(
                    "advertise",
                    "`advertise` is published in the discovery record: it needs [discovery]",
                ));
            }
            Some(advertised(&a)?)
        }
    };
    Ok(RelayConfig {
        enabled,
        prefer,
        advertise,
    })
}

fn advertised(a: &Table<'_, '_>) -> Res<AdvertisedRelay> {
    a.deny_unknown(&["labels", "name"])?;
    let labels = match a.table("labels")? {
        Some(l) => labels_of(&l)?,
        None => Default::default(),
    };
    let name = match a.string("name")? {
        Some(n) => {
            validate::name(&n.value)
                .map_err(|e| ConfigError::new(a.src.file, n.line, &n.key, e))?;
            Some(n.value)
        }
        None => None,
    };
    if labels.is_empty() && name.is_none() {
        return Err(a.err_here(
            "labels",
            "`advertise` needs `labels` (the labels of the relays that reach this node)",
        ));
    }
    Ok(AdvertisedRelay { labels, name })
}
