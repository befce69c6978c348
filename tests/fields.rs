//! End-to-end tests of user field limits (issue #15): values a directory may not smuggle
//! into the database, and stored values that may not reach the admin's terminal raw.

mod common;

use common::*;

/// Bytes a terminal acts on.
const RAW_CONTROLS: &[char] = &['\u{1b}', '\u{7}', '\0', '\u{9b}'];

#[track_caller]
fn assert_no_raw_controls(what: &str, text: &str) {
    assert!(
        !text.contains(RAW_CONTROLS),
        "{what} has raw control characters: {text:?}"
    );
}

/// The reason of the failed entry at `locator`.
#[track_caller]
fn reason_at(run: &serde_json::Value, locator: &str) -> String {
    let errors = run["errors"].as_array().expect("errors array");
    let found: Vec<_> = errors.iter().filter(|e| e["entry"] == locator).collect();
    assert_eq!(found.len(), 1, "one error at {locator}: {run:#}");
    found[0]["reason"].as_str().unwrap().to_string()
}

#[test]
fn fields_over_their_limits_are_failed_entries_and_the_run_goes_on() {
    let sb = Sandbox::new();
    // The CSV connector refuses lines over 1 MiB itself; other connectors do not.
    let huge = "a".repeat(100_000);
    let csv = format!(
        "username,full_name,email\n\
         alice,Alice,alice@example.com\n\
         {huge},Long,long@example.com\n\
         esc\u{1b}[2J,Esc,esc@example.com\n\
         bob,Bob,bob-at-example.com\n\
         \0,Nul,nul@example.com\n\
         carol,Car\u{7}ol,carol@example.com\n\
         dave,Dave,dave@example.com\n"
    );
    sb.write_csv("users.csv", &csv);
    sb.write_config(&config(&[csv_source("hr", "users.csv", "")]));

    let s = sb.sync_ok(&[]);
    let run = s.only();
    assert_counts(run, &[("created", 2), ("failed", 5)]);
    assert_eq!(sb.users_by_name(), ["alice", "dave"]);
    assert_eq!(
        reason_at(run, "line 3"),
        "username: 100000 characters, over the limit of 256"
    );
    assert_eq!(
        reason_at(run, "line 4"),
        "username: contains the control character U+001B, which is not allowed"
    );
    let email = reason_at(run, "line 5");
    assert!(
        email.starts_with("email: \"bob-at-example.com\" is not an email address"),
        "{email}"
    );
    assert_eq!(
        reason_at(run, "line 6"),
        "username: contains the control character U+0000, which is not allowed"
    );
    assert_eq!(
        reason_at(run, "line 7"),
        "full_name: contains the control character U+0007, which is not allowed"
    );
    // Nothing of the refused values was kept: the run log holds reasons, not values.
    let needle = &huge.as_bytes()[..1000];
    for (name, bytes) in sb.db_files() {
        let bytes = bytes.unwrap_or_default();
        let kept = bytes.windows(needle.len()).any(|w| w == needle);
        assert!(!kept, "{name} holds the over-long username");
    }

    // The human output names the entry, the field and the limit.
    let out = sb.roster_ok(&["sync"]);
    let text = stdout(&out);
    assert!(
        text.contains("hr: failed line 3: username: 100000 characters, over the limit of 256"),
        "{text}"
    );
    assert_no_raw_controls("sync output", &text);
    let shown = sb.roster_ok(&["runs", "show", &id_string(&run["run_id"])]);
    assert_no_raw_controls("runs show", &stdout(&shown));
}

#[test]
fn tables_escape_control_characters_whatever_is_stored() {
    let sb = Sandbox::new();
    sb.write_csv(
        "users.csv",
        "username,full_name,email,groups,notes\nalice,Alice,alice@example.com,Staff,hi\n",
    );
    sb.write_config(&config(&[csv_source("hr", "users.csv", "")]));
    sb.sync_ok(&[]);

    // Data from before the limits (or written by other tools) may hold anything.
    // (PostgreSQL's text holds no NUL, so no tool can have written one there.)
    let (evil, shown) = match on_postgres() {
        false => (
            "Eve\u{1b}[2J\u{7}\0\u{9b}31m",
            "Eve\\x1b[2J\\x07\\x00\\u{9b}31m",
        ),
        true => ("Eve\u{1b}[2J\u{7}\u{9b}31m", "Eve\\x1b[2J\\x07\\u{9b}31m"),
    };
    sb.db_execute(
        "UPDATE users SET username = ?1, full_name = ?1, email = ?1, notes = ?1",
        &[evil],
    );
    sb.db_execute("UPDATE groups SET path = ?1", &[evil]);

    let list = stdout(&sb.roster_ok(&["users", "list"]));
    assert_no_raw_controls("users list", &list);
    assert!(list.contains(shown), "{list}");
    // `alice` is still her name in the names table.
    let show = stdout(&sb.roster_ok(&["users", "show", "alice"]));
    assert_no_raw_controls("users show", &show);
    assert!(show.contains("Eve\\x1b[2J"), "{show}");
    let groups = stdout(&sb.roster_ok(&["groups", "list"]));
    assert_no_raw_controls("groups list", &groups);

    // JSON keeps the stored value exactly (its own escaping makes it safe to print).
    let users = sb.users();
    assert_eq!(users[0]["username"], evil);
    assert_eq!(users[0]["full_name"], evil);
}
