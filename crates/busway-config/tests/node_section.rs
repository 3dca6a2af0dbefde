//! `[node]` keys that nothing at runtime reads yet but later features need (CONTRACT section 3):
//! `annotations`, published in the discovery record, and `state_dir`.

use std::path::PathBuf;

use busway_config::*;

mod common;
use common::*;

/// The contract's own example of the two keys.
const CONTRACT_EXAMPLE: &str = r#"[node]
name = "edge-a"
annotations = { owner = "team-chat" }   # free-form, published in the discovery record
state_dir = "/var/lib/busway"
"#;

#[test]
fn contract_example_is_read() {
    let c = parse(CONTRACT_EXAMPLE);
    assert_eq!(
        c.node.annotations,
        [("owner".to_string(), "team-chat".to_string())].into()
    );
    assert_eq!(c.node.state_dir, Some(PathBuf::from("/var/lib/busway")));
}

#[test]
fn absent_means_none_and_empty() {
    for text in ["", "[node]\n", "[node]\nannotations = {}\n"] {
        let c = parse(text);
        assert!(c.node.annotations.is_empty(), "{text:?}");
        assert_eq!(c.node.state_dir, None, "{text:?}");
    }
    let c = parse_ini(
        "[a]\nbind=tcp://127.0.0.1:1\nserver=tcp://b:1\n",
        "c.ini",
        Role::Segment,
    )
    .unwrap();
    assert!(c.node.annotations.is_empty());
    assert_eq!(c.node.state_dir, None);
}

/// Unlike labels, nothing selects on annotations: any key and value a TOML string can hold.
#[test]
fn annotations_are_free_form() {
    let c = parse(
        "[node]\nannotations = { \"team/owner\" = \"chat, and more = yes\", \"a b\" = \"\", \"\" = \"é\\n\" }\n",
    );
    let got: Vec<(&str, &str)> = c
        .node
        .annotations
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("", "é\n"),
            ("a b", ""),
            ("team/owner", "chat, and more = yes")
        ]
    );
    // The same text under `labels` is refused: the difference is the point of the two keys.
    let e = parse_toml(
        "[node]\nlabels = { \"team/owner\" = \"chat, and more = yes\" }\n",
        "busway.toml",
    )
    .unwrap_err();
    assert!(e.message.contains("invalid label"), "{e}");
}

#[test]
fn annotations_may_be_a_table_section() {
    let c =
        parse("[node]\nname = \"n\"\n\n[node.annotations]\nowner = \"ops\"\nticket = \"OPS-1\"\n");
    assert_eq!(c.node.annotations.len(), 2);
    assert_eq!(c.node.annotations["ticket"], "OPS-1");
}

#[test]
fn wrong_types_name_line_and_key() {
    assert_err(
        "[node]\nannotations = \"owner=me\"\n",
        2,
        "node.annotations",
        "expected a table, found a string",
    );
    assert_err(
        "[node]\nannotations = { owner = \"a\",\n  since = 2024 }\n",
        3,
        "node.annotations.since",
        "expected an annotation value (a string), found an integer",
    );
    assert_err(
        "[node.annotations]\nowner = \"a\"\nnested = { x = \"y\" }\n",
        3,
        "node.annotations.nested",
        "found a table",
    );
    assert_err(
        "[node]\n\nstate_dir = [\"/var/lib/busway\"]\n",
        3,
        "node.state_dir",
        "expected a string, found an array",
    );
    assert_err(
        "[node]\nstate_dir = false\n",
        2,
        "node.state_dir",
        "expected a string, found a boolean",
    );
}

#[test]
fn impossible_state_dirs_are_refused() {
    assert_err(
        "[node]\nstate_dir = \"\"\n",
        2,
        "node.state_dir",
        "cannot be empty",
    );
    assert_err(
        "[node]\nstate_dir = \"/var/lib/\\u0000busway\"\n",
        2,
        "node.state_dir",
        "NUL",
    );
    // Relative paths are the operator's choice (relative to the working directory).
    assert_eq!(
        parse("[node]\nstate_dir = \"state\"\n").node.state_dir,
        Some(PathBuf::from("state"))
    );
}

#[test]
fn unknown_node_keys_list_the_new_ones() {
    assert_err(
        "[node]\nstatedir = \"/x\"\n",
        2,
        "node.statedir",
        "`annotations`, `shutdown_grace`, `state_dir`",
    );
}

#[test]
fn render_writes_them_out_and_round_trips() {
    let text = "[node]\nname = \"n\"\nannotations = { owner = \"team-chat\", \"a.b/c d\" = \"x\\\"y\" }\nstate_dir = \"/var/lib/busway state\"\n";
    let c = parse(text);
    let out = render_toml(&c);
    assert!(
        out.lines()
            .any(|l| l == r#"annotations = { "a.b/c d" = "x\"y", owner = "team-chat" }"#),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l == r#"state_dir = "/var/lib/busway state""#),
        "{out}"
    );
    assert_eq!(parse_toml(&out, "rendered.toml").unwrap(), c);

    // Defaults: an empty table is written, an absent state_dir is not (it has no default value).
    let out = render_toml(&parse(""));
    assert!(out.lines().any(|l| l == "annotations = {}"), "{out}");
    assert!(!out.contains("state_dir"), "{out}");
}

/// Found by the `toml` smoke run: toml's encoder wrote a key holding a newline as a multi-line
/// string, which TOML does not allow as a key, so `check` printed a file that did not load.
#[test]
fn annotations_with_newlines_render_on_one_line() {
    let c = parse("[node]\nannotations = { \"line\\none\" = \"a\\n\\\"b\\\"\\t\\u0001\" }\n");
    assert_eq!(c.node.annotations["line\none"], "a\n\"b\"\t\u{1}");
    let out = render_toml(&c);
    assert!(
        out.lines()
            .any(|l| l == r#"annotations = { "line\none" = "a\n\"b\"\t\u0001" }"#),
        "{out}"
    );
    assert_eq!(parse_toml(&out, "rendered.toml").unwrap(), c);
}
