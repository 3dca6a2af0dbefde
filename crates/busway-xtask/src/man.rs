//! Man pages: busway(1) for the program and one page per subcommand (busway-run(1), …), as
//! clap_mangen renders them from the clap definitions, with the sections an operator looks for
//! in a daemon's page added to busway(1): exit status, signals, environment, files.

use std::io;

use clap::Command;
use clap_mangen::roff::{bold, roman, Roff};
use clap_mangen::Man;

/// Terms and their text, for the added sections of busway(1).
type Items = &'static [(&'static str, &'static str)];

const EXIT_STATUS: Items = &[
    ("0", "a clean shutdown (after SIGTERM or SIGINT), or a command that did what it was asked"),
    ("1", "a runtime error: a listener that cannot be bound (the message names the address and the OS error), a node that busway status or busway reload cannot reach, or a reload the node refused"),
    ("2", "a usage or configuration error, before anything is bound; the message names the file, the line, the key and what is wrong"),
];

const SIGNALS: Items = &[
    ("SIGTERM, SIGINT", "stop accepting, let open sessions finish for up to node.shutdown_grace (default 10 s), close the rest, remove the Unix socket files the node created, exit 0"),
    ("SIGHUP", "read the configuration file again; services, backends and peers added, removed or changed take effect without dropping sessions that remain valid. An invalid file is logged and the running configuration stays. busway reload does the same through the admin API and reports the outcome"),
];

const ENVIRONMENT: Items = &[
    ("BUSWAY_CONFIG", "the TOML file of busway run when --config is not given"),
    ("CONFIG_PATH", "the INI file of busway controller and busway segment when -f is not given"),
    ("BUSWAY_ADMIN_TOKEN", "the admin API's bearer token for busway status and busway reload (--token); a configuration can also read its token from the environment with \"env:NAME\""),
    ("RUST_LOG", "a log filter (for example busway_node=debug); overrides --log-level"),
    ("NOTIFY_SOCKET", "set by systemd for Type=notify: the node sends READY=1 after its ready line, RELOADING=1 and READY=1 around a SIGHUP reload, and STOPPING=1 when it starts draining"),
];

const FILES: Items = &[
    (
        "/etc/busway/busway.toml",
        "the node that busway.service runs",
    ),
    (
        "/etc/busway/busway.env",
        "environment for busway.service, for the secrets the configuration reads as \"env:NAME\"",
    ),
    (
        "/usr/local/etc/cloudbus/controller.ini, /usr/local/etc/cloudbus/segment.ini",
        "the Cloudbus files that busway-controller.service and busway-segment.service run",
    ),
    (
        "/var/lib/busway",
        "node.state_dir as shipped: the StateDirectory= of busway.service",
    ),
];

/// Every page: (file name, roff).
pub fn pages(cmd: Command) -> io::Result<Vec<(String, Vec<u8>)>> {
    // As clap_mangen::generate_to prepares it: without a `help` subcommand of its own page,
    // and built, so that each subcommand knows its `busway SUB` name.
    let mut root = cmd.disable_help_subcommand(true);
    root.build();
    let subs: Vec<Command> = root
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    let mut pages = vec![("busway.1".to_string(), root_page(root, &subs)?)];
    for sub in subs {
        let title = title(&sub);
        let mut page = Vec::new();
        let man = Man::new(sub);
        head(&man, &mut page)?;
        // No VERSION section: clap knows the version of the program only, and the title line
        // carries it.
        see_also(&["busway".to_string()]).to_writer(&mut page)?;
        pages.push((format!("{title}.1"), page));
    }
    Ok(pages)
}

/// `busway-run` for `busway run`.
fn title(sub: &Command) -> String {
    sub.get_display_name()
        .map(String::from)
        .unwrap_or_else(|| format!("busway-{}", sub.get_name()))
}

fn root_page(root: Command, subs: &[Command]) -> io::Result<Vec<u8>> {
    let mut page = Vec::new();
    let man = Man::new(root);
    head(&man, &mut page)?;
    man.render_subcommands_section(&mut page)?;
    for (heading, items) in [
        ("EXIT STATUS", EXIT_STATUS),
        ("SIGNALS", SIGNALS),
        ("ENVIRONMENT", ENVIRONMENT),
        ("FILES", FILES),
    ] {
        section(heading, items).to_writer(&mut page)?;
    }
    let mut refs: Vec<String> = subs.iter().map(title).collect();
    refs.push("systemd.service".into());
    see_also(&refs).to_writer(&mut page)?;
    man.render_version_section(&mut page)?;
    Ok(page)
}

/// The sections every page starts with, as clap_mangen renders them.
fn head(man: &Man, page: &mut Vec<u8>) -> io::Result<()> {
    man.render_title(page)?;
    man.render_name_section(page)?;
    man.render_synopsis_section(page)?;
    man.render_description_section(page)?;
    man.render_options_section(page)
}

fn section(heading: &str, items: Items) -> Roff {
    let mut r = Roff::new();
    r.control("SH", [heading]);
    for (term, text) in items {
        r.control("TP", [] as [&str; 0]);
        r.text([bold(*term)]);
        r.text([roman(*text)]);
    }
    r
}

/// `SEE ALSO` with `page(N)` references: section 5 for systemd's unit pages, 1 for ours.
fn see_also(pages: &[String]) -> Roff {
    let mut r = Roff::new();
    r.control("SH", ["SEE ALSO"]);
    let mut line = Vec::new();
    for (i, p) in pages.iter().enumerate() {
        let section = if p.starts_with("systemd") { 5 } else { 1 };
        let sep = if i + 1 < pages.len() { ", " } else { "" };
        line.push(bold(p.clone()));
        line.push(roman(format!("({section}){sep}")));
    }
    r.text(line);
    r
}
