//! Reading files: the size cap that keeps a wrong `--config` from eating memory.

use std::path::Path;

use busway_config::*;

#[test]
fn endless_files_are_refused_at_the_cap() {
    let zero = Path::new("/dev/zero");
    let errors = [
        load_toml(zero).unwrap_err(),
        load_ini(zero, Role::Controller).unwrap_err(),
    ];
    for e in errors {
        assert_eq!((e.file.as_str(), e.line), ("/dev/zero", None), "{e}");
        assert_eq!(
            e.to_string(),
            "/dev/zero: larger than 16 MiB: not a configuration file"
        );
    }
}

#[test]
fn a_file_of_exactly_the_cap_is_read() {
    let dir = std::env::temp_dir().join(format!("busway-config-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("big.toml");
    let mut text = "[node]\nname = \"big\"\n".to_string();
    text.push_str(&"\n".repeat(MAX_FILE_BYTES as usize - text.len()));
    std::fs::write(&path, &text).unwrap();
    assert_eq!(load_toml(&path).unwrap().node.name, "big");
    text.push('\n');
    std::fs::write(&path, &text).unwrap();
    let e = load_toml(&path).unwrap_err();
    assert!(e.message.contains("larger than 16 MiB"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
