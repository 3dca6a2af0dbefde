//! The cluster's history and this node's incarnation in `state_dir`, so a restart keeps what
//! the cluster lived through and counts itself as a new incarnation.

use std::path::{Path, PathBuf};

use busway_cluster::Snapshot;

const FILE: &str = "cluster.state";

pub(crate) fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// The saved state, or an empty one. An unreadable or damaged file is logged and replaced:
/// the history is also held by the other members, who hand it back at the first pull.
pub(crate) fn load(dir: &Path) -> Snapshot {
    let file = path(dir);
    match crate::state_file::read(&file) {
        Ok(None) => Snapshot::default(),
        Ok(Some(bytes)) => Snapshot::from_bytes(&bytes).unwrap_or_else(|e| {
            tracing::warn!(file = %file.display(), error = %e, "cluster: starting with an empty history");
            Snapshot::default()
        }),
        Err(e) => {
            tracing::warn!(error = %e, "cluster: starting with an empty history");
            Snapshot::default()
        }
    }
}

pub(crate) fn save(dir: &Path, s: &Snapshot) {
    if let Err(e) = crate::state_file::write(&path(dir), &s.to_bytes()) {
        tracing::warn!(error = %e, "cluster: cannot save the history");
    }
}
