//! `[node]` of the TOML file (CONTRACT section 3): who this node is and what it publishes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::defaults;
use crate::draft::At;
use crate::error::ConfigError;
use crate::model::{Address, NodeSection};
use crate::toml_table::Table;
use crate::validate;

type Res<T> = Result<T, ConfigError>;

const KEYS: &[&str] = &[
    "name",
    "namespace",
    "labels",
    "annotations",
    "shutdown_grace",
    "state_dir",
];

pub(crate) fn node(root: &Table<'_, '_>) -> Res<NodeSection> {
    let mut node = defaults::node_section();
    let Some(t) = root.table("node")? else {
        return Ok(node);
    };
    t.deny_unknown(KEYS)?;
    if let Some(name) = t.string("name")? {
        checked_name(&t, &name)?;
        node.name = name.value;
    }
    if let Some(ns) = t.string("namespace")? {
        checked_name(&t, &ns)?;
        node.namespace = ns.value;
    }
    if let Some(labels) = t.table("labels")? {
        node.labels = labels_of(&labels)?;
    }
    if let Some(annotations) = t.table("annotations")? {
        node.annotations = annotations
            .string_entries("an annotation value")?
            .into_iter()
            .map(|(k, _, v)| (k.to_string(), v))
            .collect();
    }
    if let Some(d) = t.duration("shutdown_grace")? {
        node.shutdown_grace = d.value;
    }
    if let Some(dir) = t.string("state_dir")? {
        node.state_dir = Some(state_dir(&t, dir)?);
    }
    Ok(node)
}

fn checked_name(t: &Table<'_, '_>, name: &At<String>) -> Res<()> {
    validate::name(&name.value).map_err(|e| ConfigError::new(t.src.file, name.line, &name.key, e))
}

/// Labels are matched by `label:K=V` selectors, so they use the characters a selector can spell.
pub(crate) fn labels_of(t: &Table<'_, '_>) -> Res<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    for (k, span, value) in t.string_entries("a label value")? {
        let selector = format!("label:{k}={value}");
        if let Err(e) = selector.parse::<Address>() {
            return Err(t.err(&span, k, format!("invalid label: {e}")));
        }
        labels.insert(k.to_string(), value);
    }
    Ok(labels)
}

/// Only what no file system accepts is refused here: whether the directory exists or is
/// writable is the runtime's question, on the machine that runs the node, not the one that
/// runs `check`. A relative path is relative to the node's working directory.
fn state_dir(t: &Table<'_, '_>, dir: At<String>) -> Res<PathBuf> {
    let why = if dir.value.is_empty() {
        "`state_dir` cannot be empty (leave it out to keep state in memory only)"
    } else if dir.value.contains('\0') {
        "a path cannot contain a NUL byte"
    } else {
        return Ok(PathBuf::from(dir.value));
    };
    Err(ConfigError::new(t.src.file, dir.line, dir.key, why))
}
