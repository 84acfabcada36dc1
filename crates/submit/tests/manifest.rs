//! The privileged `sendmail` is small by construction: this package's
//! manifest names only what the submitter needs, so clap, lettre, SQLite,
//! TLS, HTTP or PostgreSQL code cannot reach the set-uid binary, whatever
//! the rest of scriptmail links (docs/design.md, "Privilege model"). A
//! change here is a change to what runs with the service user's rights:
//! review it as such, then update the lists below.

use std::collections::BTreeSet;
use std::process::Command;

/// The direct dependencies, exactly.
const DIRECT: &[&str] = &["libc", "nix", "serde", "thiserror", "toml"];

/// Everything they pull in (including the proc-macros serde and thiserror
/// build with), exactly.
const ALL: &[&str] = &[
    "bitflags",
    "cfg-if",
    "libc",
    "memoffset",
    "nix",
    "proc-macro2",
    "quote",
    "scriptmail-submit",
    "serde",
    "serde_core",
    "serde_derive",
    "serde_spanned",
    "syn",
    "thiserror",
    "thiserror-impl",
    "toml",
    "toml_datetime",
    "toml_parser",
    "unicode-ident",
    "winnow",
];

/// What must never be among them, whatever else changes.
const NEVER: &[&str] = &[
    "clap",
    "clap_builder",
    "lettre",
    "rustls",
    "ring",
    "rusqlite",
    "libsqlite3-sys",
    "mail-parser",
    "unicode-width",
    "serde_json",
    "postgres",
    "tokio-postgres",
    "tokio",
    "tiny_http",
    "hyper",
    "openssl",
];

fn manifest() -> toml::Table {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let text = std::fs::read_to_string(path).expect("read Cargo.toml");
    text.parse().expect("parse Cargo.toml")
}

#[test]
fn the_manifest_names_only_what_the_submitter_needs() {
    let m = manifest();
    let deps: BTreeSet<&str> = m
        .get("dependencies")
        .and_then(toml::Value::as_table)
        .expect("[dependencies]")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(deps, DIRECT.iter().copied().collect());
    // No way around the list: no platform-specific dependencies, and no
    // build script to link anything else.
    assert!(m.get("target").is_none(), "[target.*.dependencies]");
    assert!(m.get("build-dependencies").is_none());
    let package = m.get("package").and_then(toml::Value::as_table).unwrap();
    assert!(package.get("build").is_none());
    assert!(!std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/build.rs")).exists());
}

#[test]
fn nothing_heavy_is_linked_in_through_them() {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--locked", "--offline", "-p", "scriptmail-submit"])
        .args(["-e", "normal", "--prefix", "none", "--format", "{p}"])
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .output()
        .expect("run cargo tree");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for never in NEVER {
        assert!(!names.contains(never), "{never} reaches sendmail");
    }
    assert_eq!(names, ALL.iter().copied().collect());
}
