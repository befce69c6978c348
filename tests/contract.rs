//! The plugin contract end to end: group objects with nesting and membership references, as
//! LDAP and Entra connectors send them, through the test connector (tests/components/hostile,
//! mode `directory`).

mod common;

use common::*;
use serde_json::Value;

fn directory_config(wasm: &std::path::Path, version: u64, options: &str) -> String {
    config(&[format!(
        "[sources.dir]\nplugin = {}\nmax_deletions = \"100%\"\n{options}\n\
[sources.dir.config]\nmode = \"directory\"\ncount = {version}\n",
        toml_str(wasm.to_str().unwrap())
    )])
}

/// (path, parent, members) of every group.
fn tree(sb: &Sandbox) -> Vec<(String, Option<String>, u64)> {
    sb.groups()
        .iter()
        .map(|g: &Value| {
            (
                g["path"].as_str().unwrap().to_string(),
                g["parent"].as_str().map(String::from),
                g["members"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn groups_of(sb: &Sandbox, user: &str) -> Vec<String> {
    strs(&sb.user(user)["groups"])
}

#[test]
fn group_objects_become_a_tree_with_memberships_and_follow_changes() {
    let wasm = hostile_wasm();
    let sb = Sandbox::new();
    sb.write_config(&directory_config(&wasm, 1, ""));
    let s = sb.sync_ok(&[]);
    assert_counts(s.only(), &[("created", 4), ("failed", 0)]);
    assert_eq!(
        tree(&sb),
        vec![
            ("Staff".to_string(), None, 1),
            ("Staff|IT".to_string(), Some("Staff".to_string()), 2),
            ("Staff|Ops".to_string(), Some("Staff".to_string()), 1),
        ]
    );
    assert_eq!(groups_of(&sb, "u0"), ["Staff|IT"]);
    assert_eq!(groups_of(&sb, "u2"), ["Staff|Ops"]);
    assert_eq!(groups_of(&sb, "u3"), ["Staff"]);

    // Version 2: u0 left IT, Ops is gone from the directory.
    sb.write_config(&directory_config(&wasm, 2, ""));
    sb.sync_ok(&[]);
    assert_eq!(
        tree(&sb),
        vec![
            ("Staff".to_string(), None, 1),
            ("Staff|IT".to_string(), Some("Staff".to_string()), 1),
        ]
    );
    assert!(groups_of(&sb, "u0").is_empty());
    assert!(groups_of(&sb, "u2").is_empty());

    // A second identical run changes nothing.
    let before = sb.db_state();
    let s = sb.sync_ok(&[]);
    assert_counts(
        s.only(),
        &[("unchanged", 4), ("created", 0), ("updated", 0)],
    );
    assert_eq!(sb.db_state(), before);
}

#[test]
fn vanished_group_objects_stay_with_on_missing_ignore() {
    let wasm = hostile_wasm();
    let sb = Sandbox::new();
    sb.write_config(&directory_config(&wasm, 1, "on_missing = \"ignore\""));
    sb.sync_ok(&[]);
    sb.write_config(&directory_config(&wasm, 2, "on_missing = \"ignore\""));
    sb.sync_ok(&[]);
    let paths: Vec<String> = tree(&sb).into_iter().map(|(p, _, _)| p).collect();
    assert_eq!(paths, ["Staff", "Staff|IT", "Staff|Ops"]);
}
