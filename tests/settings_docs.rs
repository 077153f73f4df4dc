//! Every `WSDRAIN_*` setting the code reads has a row in README.md's settings
//! table and in docs/OPERATIONS.md, and no row names a setting that does not
//! exist.
#![allow(clippy::unwrap_used)]

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

/// The repository: this package lives in its `tests/`.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `"WSDRAIN_..."` string literal in the Rust sources under `dir`.
fn literals_in(dir: &Path, found: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            literals_in(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            // Not the unit tests at the end of a file (misspelled names on purpose).
            let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
            for (at, _) in text.match_indices("\"WSDRAIN_") {
                let rest = &text[at + 1..];
                let len = rest
                    .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                    .unwrap_or(rest.len());
                // A whole literal only: `"WSDRAIN_X"`, not a prefix like `"WSDRAIN_"`.
                if rest[len..].starts_with('"') && !rest[..len].ends_with('_') {
                    found.insert(rest[..len].to_owned());
                }
            }
        }
    }
}

/// The settings wsdrain knows: the policy's and the admin endpoint's lists
/// (any other `WSDRAIN_*` variable is warned about at start as unknown).
fn known_settings() -> BTreeSet<String> {
    wsdrain::policy::ENV_SETTINGS
        .iter()
        .chain(&wsdrain::policy::ENV_ADMIN_SETTINGS)
        .map(|s| (*s).to_owned())
        .collect()
}

/// The settings the code reads: the known ones, plus every literal in
/// `crates/` and `examples/` (any new one).
fn settings_in_code() -> BTreeSet<String> {
    let mut found = known_settings();
    literals_in(&root().join("crates"), &mut found);
    literals_in(&root().join("examples"), &mut found);
    found
}

/// The `WSDRAIN_*` names in the first cell of a table row of `doc`.
fn settings_in_tables(doc: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join(doc)).unwrap();
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let Some(row) = line.trim().strip_prefix('|') else {
            continue;
        };
        let first = row.split('|').next().unwrap_or("");
        for (i, quoted) in first.split('`').enumerate() {
            // Odd pieces are inside backticks.
            if i % 2 == 1 && quoted.starts_with("WSDRAIN_") {
                found.insert(quoted.to_owned());
            }
        }
    }
    found
}

#[test]
fn the_search_finds_the_settings_we_know() {
    let code = settings_in_code();
    for known in [
        "WSDRAIN_CLOSE_WINDOW",
        "WSDRAIN_MAX_SESSIONS",
        "WSDRAIN_ADMIN_TOKEN",
        "WSDRAIN_ADMIN_LISTEN",
        "WSDRAIN_ADMIN_PUBLIC",
    ] {
        assert!(code.contains(known), "{known} not found in {code:?}");
    }
    assert!(!code.iter().any(|s| s.ends_with('_')), "{code:?}");
    let known = known_settings();
    let unlisted: Vec<_> = code.difference(&known).collect();
    assert!(
        unlisted.is_empty(),
        "read, yet warned about as unknown at start: {unlisted:?}"
    );
}

#[test]
fn every_setting_is_documented_in_readme_and_operations() {
    let code = settings_in_code();
    for doc in ["README.md", "docs/OPERATIONS.md"] {
        let documented = settings_in_tables(doc);
        let missing: Vec<_> = code.difference(&documented).collect();
        assert!(missing.is_empty(), "{doc}: no table row for {missing:?}");
        let unknown: Vec<_> = documented.difference(&code).collect();
        assert!(
            unknown.is_empty(),
            "{doc}: rows for settings the code does not read: {unknown:?}"
        );
    }
}
