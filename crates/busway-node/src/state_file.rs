//! Files in `state_dir` that hold keys: issued tokens, the resumption ticket key, the tickets
//! this node holds. Each is written whole to a temporary file that only the node's user may
//! read (mode 0600) and renamed over the old one, so a crash leaves the old file or the new,
//! never half of one.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Largest state file read back: far above what the node writes (a strike register of
/// 100,000 ids is 2.4 MB), and checked before anything is allocated for the contents.
const MAX_STATE_FILE: u64 = 64 << 20;

/// Replaces `file` with `bytes`.
pub(crate) fn write(file: &Path, bytes: &[u8]) -> Result<(), String> {
    let mut tmp = file.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let what = |e: std::io::Error| format!("{}: {e}", tmp.display());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(what)?;
    f.write_all(bytes).map_err(what)?;
    f.sync_all().map_err(what)?;
    drop(f);
    std::fs::rename(&tmp, file).map_err(|e| format!("{}: {e}", file.display()))
}

/// The contents of `file`, or `None` when there is none.
pub(crate) fn read(file: &Path) -> Result<Option<Vec<u8>>, String> {
    let what = |e: std::io::Error| format!("{}: {e}", file.display());
    let len = match std::fs::metadata(file) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(what(e)),
    };
    if len > MAX_STATE_FILE {
        return Err(format!(
            "{}: {len} bytes, more than a state file can hold",
            file.display()
        ));
    }
    std::fs::read(file).map(Some).map_err(what)
}

/// The contents of `file`, which is removed once read: for state that only a clean stop
/// writes, so that after a crash the node finds none rather than state it had moved past.
pub(crate) fn take(file: &Path) -> Result<Option<Vec<u8>>, String> {
    let bytes = read(file)?;
    if bytes.is_some() {
        std::fs::remove_file(file).map_err(|e| format!("{}: {e}", file.display()))?;
    }
    Ok(bytes)
}
