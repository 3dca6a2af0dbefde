//! The invariants the configuration targets share: what every error and every parsed config
//! must satisfy, whatever the input.

use busway_config::{parse_toml, render_toml, ConfigError, NodeConfig, Secret};

/// An operator reads an error at a terminal: it names the file it was given and a line that
/// exists in the text, and prints as that one `FILE:LINE: …` line.
pub(crate) fn error_points_into(e: &ConfigError, file: &str, text: &str) {
    let shown = e.to_string();
    assert_eq!(e.file, file, "the error names another file: {shown}");
    assert!(!e.message.trim().is_empty(), "empty message: {e:?}");
    assert!(
        !shown.contains(['\n', '\r']),
        "the error is not one line: {shown:?}"
    );
    let Some(line) = e.line else {
        panic!("the error has no line: {shown:?}")
    };
    let lines = text.matches('\n').count() + 1;
    assert!(
        (1..=lines).contains(&line),
        "line {line} is not in the text's 1..={lines}: {shown:?}"
    );
    assert!(
        shown.starts_with(&format!("{file}:{line}: ")),
        "not FILE:LINE: …: {shown:?}"
    );
}

/// `busway check` prints a config as TOML that must load again as the same config: secrets
/// come back as the literal `<redacted secret>` they are printed as, and a segment's pinned bus
/// listeners (which TOML cannot say) as plain ones. Everything else must survive exactly.
pub(crate) fn renders_back(cfg: &NodeConfig) {
    let text = render_toml(cfg);
    let again = match parse_toml(&text, "rendered.toml") {
        Ok(c) => c,
        Err(e) => panic!("the rendering does not parse: {e}\n{text}"),
    };
    assert_eq!(
        again,
        portable(cfg),
        "the rendering changed the config:\n{text}"
    );
}

fn portable(cfg: &NodeConfig) -> NodeConfig {
    let mut c = cfg.clone();
    let redacted = |s: &mut Option<Secret>| {
        if s.is_some() {
            *s = Some(Secret::new(busway_config::REDACTED));
        }
    };
    if let Some(a) = c.admin.as_mut() {
        redacted(&mut a.token);
    }
    redacted(&mut c.bus.secret);
    redacted(&mut c.bus.token);
    for s in &mut c.bus.also_accepted {
        *s = Secret::new(busway_config::REDACTED);
    }
    for l in &mut c.bus.listen {
        l.service = None;
    }
    c
}
