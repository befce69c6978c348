//! End-to-end tests of the `roster` CLI with the built-in CSV connector.

mod common;

use common::*;
use serde_json::{json, Value};

/// Reconcile options most tests use: deactivations of a few users must not trip the
/// default 10% deletion guard of these tiny files.
const LOOSE: &str = "max_deletions = 100";

const HEADER: &str = "username,full_name,email,personal_number,aliases,cards,groups\n";

/// A sandbox with one CSV source `hr` reading `users.csv`.
fn hr(csv: &str, options: &str) -> Sandbox {
    let sb = Sandbox::new();
    sb.write_csv("users.csv", csv);
    sb.write_config(&config(&[csv_source("hr", "users.csv", options)]));
    sb
}

fn three_users() -> String {
    format!(
        "{HEADER}\
alice,Alice Smith,alice@example.com,1001,al;asmith,C-100;C-101,Staff\n\
bob,Bob Jones,bob@example.com,1002,,C-200,\n\
carol,Carol White,carol@example.com,1003,cw,,\"Activities|Outdoor|Swimming,Staff\"\n"
    )
}

fn plan_entry<'a>(run: &'a Value, action: &str, username: &str) -> Option<&'a Value> {
    run["plan"]
        .as_array()
        .unwrap_or_else(|| panic!("dry run has no plan array: {run:#}"))
        .iter()
        .find(|p| p["action"] == action && p["username"] == username)
}

fn plan_users(run: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = run["plan"]
        .as_array()
        .unwrap_or_else(|| panic!("dry run has no plan array: {run:#}"))
        .iter()
        .map(|p| {
            (
                p["action"].as_str().unwrap_or("?").to_string(),
                p["username"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn pair(action: &str, user: &str) -> (String, String) {
    (action.to_string(), user.to_string())
}

fn errors_of(run: &Value) -> Vec<(String, String)> {
    run["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("run has no errors array: {run:#}"))
        .iter()
        .map(|e| {
            (
                e["entry"]
                    .as_str()
                    .unwrap_or_else(|| panic!("entry: {e}"))
                    .to_string(),
                e["reason"]
                    .as_str()
                    .unwrap_or_else(|| panic!("reason: {e}"))
                    .to_string(),
            )
        })
        .collect()
}

/// The one error whose entry (or, for conflicts the host finds, reason) mentions one of
/// `needles` (a username, a line locator); panics unless exactly one does.
#[track_caller]
fn error_about(run: &Value, needles: &[&str]) -> (String, String) {
    let errs: Vec<_> = errors_of(run)
        .into_iter()
        .filter(|(entry, reason)| {
            needles
                .iter()
                .any(|n| entry.contains(n) || reason.contains(n))
        })
        .collect();
    assert_eq!(
        errs.len(),
        1,
        "expected one error about {needles:?}: {run:#}"
    );
    let (entry, reason) = errs.into_iter().next().unwrap();
    assert!(!reason.trim().is_empty(), "error for {entry} has no reason");
    (entry, reason)
}

fn all_text(outs: &[&std::process::Output]) -> String {
    outs.iter()
        .map(|o| format!("{}\n{}", stdout(o), stderr(o)))
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------------------
// create / update / deactivate / reactivate / delete

#[test]
fn create_users_and_list_them() {
    let sb = hr(&three_users(), "");
    let s = sb.sync_ok(&[]);
    let run = s.only();
    assert_eq!(run["source"], "hr");
    assert_eq!(run["dry_run"], false);
    assert_eq!(run["mode"], "full");
    assert!(!run["run_id"].is_null(), "run_id missing: {run:#}");
    assert!(run["message"].is_null(), "message of an ok run: {run:#}");
    assert_counts(
        run,
        &[
            ("created", 3),
            ("updated", 0),
            ("unchanged", 0),
            ("deactivated", 0),
            ("reactivated", 0),
            ("deleted", 0),
            ("failed", 0),
        ],
    );
    assert_eq!(run["errors"], json!([]));

    let users = sb.active_users();
    assert_eq!(
        usernames(&users),
        ["alice", "bob", "carol"],
        "sorted by username"
    );
    for u in &users {
        for key in [
            "username",
            "full_name",
            "email",
            "personal_number",
            "aliases",
            "cards",
            "groups",
            "language",
            "phone",
            "active",
            "source",
            "has_pin",
        ] {
            assert!(
                u.get(key).is_some(),
                "users list object lacks {key:?}: {u:#}"
            );
        }
        assert_eq!(u["active"], true);
        assert_eq!(u["source"], "hr");
        assert_eq!(u["has_pin"], false);
        assert_eq!(u["language"], Value::Null);
        assert_eq!(u["phone"], Value::Null);
    }
    let alice = &users[0];
    assert_eq!(alice["full_name"], "Alice Smith");
    assert_eq!(alice["email"], "alice@example.com");
    assert_eq!(alice["personal_number"], "1001");
    assert_eq!(strs(&alice["aliases"]), sorted(&["al", "asmith"]));
    assert_eq!(strs(&alice["cards"]), sorted(&["C-100", "C-101"]));
    assert_eq!(strs(&alice["groups"]), sorted(&["Staff"]));
    let bob = &users[1];
    assert_eq!(bob["aliases"], json!([]));
    assert_eq!(strs(&bob["cards"]), sorted(&["C-200"]));
    assert_eq!(bob["groups"], json!([]));
    let carol = &users[2];
    assert_eq!(
        strs(&carol["groups"]),
        sorted(&["Activities|Outdoor|Swimming", "Staff"])
    );

    // The run is recorded.
    let runs = sb.runs();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let r = &runs[0];
    assert_eq!(id_string(&r["id"]), id_string(&run["run_id"]));
    assert_eq!(r["source"], "hr");
    assert_eq!(r["status"], "ok");
    assert_eq!(r["mode"], "full");
    assert!(!r["started"].is_null() && !r["finished"].is_null(), "{r:#}");
    assert_counts(r, &[("created", 3), ("failed", 0)]);

    // Human output lists the users too.
    let out = sb.roster_ok(&["users", "list"]);
    let text = stdout(&out);
    for name in ["alice", "bob", "carol"] {
        assert!(text.contains(name), "users list lacks {name}:\n{text}");
    }
}

#[test]
fn second_identical_sync_changes_nothing() {
    let sb = hr(&three_users(), "");
    sb.sync_ok(&[]);
    let before = sb.db_state();
    let s = sb.sync_ok(&[]);
    assert_counts(
        s.only(),
        &[
            ("created", 0),
            ("updated", 0),
            ("unchanged", 3),
            ("deactivated", 0),
            ("failed", 0),
        ],
    );
    assert_eq!(sb.db_state(), before);
}

#[test]
fn update_shows_changed_fields_in_plan_and_run_events() {
    let sb = hr(&three_users(), "");
    sb.sync_ok(&[]);

    // alice: new full name and email; bob: a new card; carol unchanged.
    sb.write_csv(
        "users.csv",
        &format!(
            "{HEADER}\
alice,Alice Brown,alice.brown@example.com,1001,al;asmith,C-100;C-101,Staff\n\
bob,Bob Jones,bob@example.com,1002,,C-200;C-201,\n\
carol,Carol White,carol@example.com,1003,cw,,\"Activities|Outdoor|Swimming,Staff\"\n"
        ),
    );

    let dry = sb.sync_ok(&["--dry-run"]);
    let run = dry.only();
    assert_eq!(run["dry_run"], true);
    assert_counts(run, &[("created", 0), ("updated", 2), ("unchanged", 1)]);
    assert_eq!(
        plan_users(run),
        vec![pair("update", "alice"), pair("update", "bob")],
        "{run:#}"
    );
    let alice = plan_entry(run, "update", "alice").unwrap();
    assert_eq!(strs(&alice["fields"]), sorted(&["email", "full_name"]));
    let bob = plan_entry(run, "update", "bob").unwrap();
    assert_eq!(strs(&bob["fields"]), sorted(&["cards"]));
    // The dry run changed nothing.
    assert_eq!(sb.user("alice")["full_name"], "Alice Smith");

    let s = sb.sync_ok(&[]);
    let run = s.only();
    assert_counts(run, &[("created", 0), ("updated", 2), ("unchanged", 1)]);
    let alice = sb.user("alice");
    assert_eq!(alice["full_name"], "Alice Brown");
    assert_eq!(alice["email"], "alice.brown@example.com");
    assert_eq!(strs(&sb.user("bob")["cards"]), sorted(&["C-200", "C-201"]));

    let shown = sb.run_show(&run["run_id"]);
    assert_eq!(id_string(&shown["id"]), id_string(&run["run_id"]));
    assert_eq!(shown["status"], "ok");
    assert_counts(&shown, &[("updated", 2), ("unchanged", 1)]);
    let events = shown["events"]
        .as_array()
        .unwrap_or_else(|| panic!("runs show has no events: {shown:#}"));
    let updated: Vec<&str> = events
        .iter()
        .filter(|e| e["action"] == "updated")
        .map(|e| e["entry"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(updated.len(), 2, "{events:#?}");
    assert!(updated.iter().any(|e| e.contains("alice")), "{events:#?}");
    assert!(updated.iter().any(|e| e.contains("bob")), "{events:#?}");
    assert!(
        !events
            .iter()
            .any(|e| e["entry"].as_str().unwrap_or("").contains("carol")),
        "an unchanged user has an event: {events:#?}"
    );
}

#[test]
fn missing_user_is_deactivated_and_comes_back_reactivated() {
    let sb = hr(&three_users(), LOOSE);
    sb.sync_ok(&[]);

    sb.write_csv(
        "users.csv",
        &format!(
            "{HEADER}\
alice,Alice Smith,alice@example.com,1001,al;asmith,C-100;C-101,Staff\n\
bob,Bob Jones,bob@example.com,1002,,C-200,\n"
        ),
    );
    let dry = sb.sync_ok(&["--dry-run"]);
    assert_eq!(plan_users(dry.only()), vec![pair("deactivate", "carol")]);

    let s = sb.sync_ok(&[]);
    assert_counts(
        s.only(),
        &[("deactivated", 1), ("unchanged", 2), ("deleted", 0)],
    );
    assert_eq!(usernames(&sb.active_users()), ["alice", "bob"]);
    let carol = sb.user("carol");
    assert_eq!(carol["active"], false);
    // Still known by its username and alias, with its data.
    let shown = sb.json(&["users", "show", "carol", "--json"]);
    assert_eq!(shown["active"], false);
    assert_eq!(shown["full_name"], "Carol White");

    // A second run does not deactivate again.
    let s = sb.sync_ok(&[]);
    assert_counts(s.only(), &[("deactivated", 0), ("unchanged", 2)]);

    // carol returns.
    sb.write_csv("users.csv", &three_users());
    let dry = sb.sync_ok(&["--dry-run"]);
    assert_eq!(plan_users(dry.only()), vec![pair("reactivate", "carol")]);
    let s = sb.sync_ok(&[]);
    assert_counts(
        s.only(),
        &[("reactivated", 1), ("created", 0), ("deactivated", 0)],
    );
    assert_eq!(usernames(&sb.active_users()), ["alice", "bob", "carol"]);
    assert_eq!(sb.user("carol")["active"], true);
}

#[test]
fn on_missing_delete_removes_the_user() {
    let sb = hr(&three_users(), &format!("on_missing = \"delete\"\n{LOOSE}"));
    sb.sync_ok(&[]);
    sb.write_csv(
        "users.csv",
        &format!("{HEADER}alice,Alice Smith,alice@example.com,1001,al;asmith,C-100;C-101,Staff\nbob,Bob Jones,bob@example.com,1002,,C-200,\n"),
    );
    let dry = sb.sync_ok(&["--dry-run"]);
    assert_eq!(plan_users(dry.only()), vec![pair("delete", "carol")]);
    let s = sb.sync_ok(&[]);
    assert_counts(s.only(), &[("deleted", 1), ("deactivated", 0)]);
    assert_eq!(
        sb.users_by_name(),
        ["alice", "bob"],
        "carol is gone, even with --all"
    );
    let out = sb.roster(&["users", "show", "carol"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    // Her alias and card are free again.
    let out = sb.roster(&["users", "show", "cw"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
}

#[test]
fn on_missing_ignore_keeps_the_user_active() {
    let sb = hr(&three_users(), &format!("on_missing = \"ignore\"\n{LOOSE}"));
    sb.sync_ok(&[]);
    sb.write_csv("users.csv", HEADER);
    let s = sb.sync_ok(&[]);
    assert_counts(s.only(), &[("deactivated", 0), ("deleted", 0)]);
    assert_eq!(usernames(&sb.active_users()), ["alice", "bob", "carol"]);
}

#[test]
fn import_new_false_only_updates_known_users() {
    let sb = hr(
        &format!("{HEADER}alice,Alice Smith,alice@example.com,1001,,,\n"),
        "",
    );
    sb.sync_ok(&[]);
    sb.write_config(&config(&[csv_source(
        "hr",
        "users.csv",
        "import_new = false",
    )]));
    sb.write_csv(
        "users.csv",
        &format!(
            "{HEADER}alice,Alice Brown,alice@example.com,1001,,,\ndave,Dave New,dave@example.com,1004,,,\n"
        ),
    );
    let s = sb.sync_ok(&[]);
    assert_counts(s.only(), &[("created", 0), ("updated", 1)]);
    assert_eq!(sb.users_by_name(), ["alice"]);
    assert_eq!(sb.user("alice")["full_name"], "Alice Brown");
}

#[test]
fn update_existing_false_only_creates_new_users() {
    let sb = hr(
        &format!("{HEADER}alice,Alice Smith,alice@example.com,1001,,,\n"),
        "update_existing = false",
    );
    sb.sync_ok(&[]);
    sb.write_csv(
        "users.csv",
        &format!(
            "{HEADER}alice,Alice Brown,alice.brown@example.com,1001,,,\ndave,Dave New,dave@example.com,1004,,,\n"
        ),
    );
    let s = sb.sync_ok(&[]);
    assert_counts(s.only(), &[("created", 1), ("updated", 0)]);
    let alice = sb.user("alice");
    assert_eq!(alice["full_name"], "Alice Smith");
    assert_eq!(alice["email"], "alice@example.com");
    assert_eq!(sb.user("dave")["full_name"], "Dave New");
}

#[test]
fn lowercase_usernames_lowercases_usernames_and_aliases() {
    let csv = format!("{HEADER}Alice.Smith,Alice Smith,Alice@Example.com,1001,ASmith;Al,,\n");
    let sb = hr(&csv, "lowercase_usernames = true");
    sb.sync_ok(&[]);
    let users = sb.users();
    assert_eq!(usernames(&users), ["alice.smith"]);
    assert_eq!(strs(&users[0]["aliases"]), sorted(&["al", "asmith"]));
    assert_eq!(
        users[0]["full_name"], "Alice Smith",
        "only usernames/aliases change"
    );
    let shown = sb.json(&["users", "show", "asmith", "--json"]);
    assert_eq!(shown["username"], "alice.smith");

    // Without the option the case is kept.
    let sb = hr(&csv, "");
    sb.sync_ok(&[]);
    let users = sb.users();
    assert_eq!(usernames(&users), ["Alice.Smith"]);
    assert_eq!(strs(&users[0]["aliases"]), sorted(&["ASmith", "Al"]));
}

// ---------------------------------------------------------------------------------------
// pair_by

#[test]
fn pair_by_username_matches_on_username() {
    let sb = hr(
        &format!("{HEADER}alice,Alice Smith,alice@example.com,1001,,,\n"),
        &format!("pair_by = \"username\"\n{LOOSE}"),
    );
    sb.sync_ok(&[]);
    // Same username, new email and personal number: the same user, updated.
    sb.write_csv(
        "users.csv",
        &format!("{HEADER}alice,Alice Smith,alice2@example.com,2001,,,\n"),
    );
    let s = sb.sync_ok(&[]);
    assert_counts(
        s.only(),
        &[("created", 0), ("updated", 1), ("deactivated", 0)],
    );
    let users = sb.users();
    assert_eq!(usernames(&users), ["alice"]);
    assert_eq!(users[0]["email"], "alice2@example.com");
    assert_eq!(users[0]["personal_number"], "2001");
}

/// With `pair_by = key`, a user whose username changed but whose `key` stayed is the same
/// user, renamed.
fn assert_renamed_by(pair_by: &str) {
    let sb = hr(
        &format!(
            "{HEADER}alice,Alice Smith,alice@example.com,1001,,C-1,\nbob,Bob Jones,bob@example.com,1002,,,\n"
        ),
        &format!("pair_by = \"{pair_by}\"\n{LOOSE}"),
    );
    sb.sync_ok(&[]);
    sb.write_csv(
        "users.csv",
        &format!(
            "{HEADER}alice.smith,Alice Smith,alice@example.com,1001,,C-1,\nbob,Bob Jones,bob@example.com,1002,,,\n"
        ),
    );
    let dry = sb.sync_ok(&["--dry-run"]);
    let run = dry.only();
    assert_eq!(
        plan_users(run),
        vec![pair("update", "alice.smith")],
        "{run:#}"
    );
    assert!(
        strs(&plan_entry(run, "update", "alice.smith").unwrap()["fields"])
            .contains(&"username".to_string()),
        "{run:#}"
    );
    let s = sb.sync_ok(&[]);
    assert_counts(
        s.only(),
        &[
            ("created", 0),
            ("updated", 1),
            ("unchanged", 1),
            ("deactivated", 0),
            ("deleted", 0),
        ],
    );
    let users = sb.users();
    assert_eq!(
        usernames(&users),
        ["alice.smith", "bob"],
        "renamed, not re-created"
    );
    assert_eq!(users[0]["personal_number"], "1001");
    assert_eq!(strs(&users[0]["cards"]), sorted(&["C-1"]));
    assert_eq!(users[0]["active"], true);
}

#[test]
fn pair_by_personal_number_renames() {
    assert_renamed_by("personal_number");
}

#[test]
fn pair_by_email_renames() {
    assert_renamed_by("email");
}

#[test]
fn pair_by_username_treats_a_rename_as_new_user() {
    // The contrast to the tests above: pairing by username, the renamed row is a new user
    // and the old one goes missing.
    let sb = hr(
        &format!("{HEADER}alice,Alice Smith,alice@example.com,1001,,,\n"),
        LOOSE,
    );
    sb.sync_ok(&[]);
    sb.write_csv(
        "users.csv",
        &format!("{HEADER}alice.smith,Alice Smith,alice.smith@example.com,1005,,,\n"),
    );
    let s = sb.sync_ok(&[]);
    assert_counts(s.only(), &[("created", 1), ("deactivated", 1)]);
    assert_eq!(sb.users_by_name(), ["alice", "alice.smith"]);
}

#[test]
fn pair_by_anchor_follows_the_id_column_through_a_rename() {
    let header = "id,username,full_name,email\n";
    let sb = Sandbox::new();
    sb.write_csv(
        "users.csv",
        &format!(
            "{header}u-1,alice,Alice Smith,alice@example.com\nu-2,bob,Bob Jones,bob@example.com\n"
        ),
    );
    let source = format!(
        "[sources.hr]\nplugin = \"csv\"\npair_by = \"anchor\"\n{LOOSE}\n[sources.hr.config]\npath = \"users.csv\"\nid_column = \"id\"\n"
    );
    sb.write_config(&config(&[source]));
    sb.sync_ok(&[]);
    // Username and email change, the anchor stays.
    sb.write_csv(
        "users.csv",
        &format!("{header}u-1,asmith,Alice Smith,asmith@example.com\nu-2,bob,Bob Jones,bob@example.com\n"),
    );
    let dry = sb.sync_ok(&["--dry-run"]);
    assert_eq!(plan_users(dry.only()), vec![pair("update", "asmith")]);
    let s = sb.sync_ok(&[]);
    assert_counts(
        s.only(),
        &[
            ("created", 0),
            ("updated", 1),
            ("unchanged", 1),
            ("deactivated", 0),
        ],
    );
    let users = sb.users();
    assert_eq!(usernames(&users), ["asmith", "bob"]);
    assert_eq!(users[0]["email"], "asmith@example.com");
    assert_eq!(users[0]["active"], true);
}

// ---------------------------------------------------------------------------------------
// conflicts

#[test]
fn duplicate_username_in_file_first_wins() {
    let sb = hr(
        &format!(
            "{HEADER}\
alice,Alice First,alice1@example.com,1001,,,\n\
bob,Bob Jones,bob@example.com,1002,,,\n\
alice,Alice Second,alice2@example.com,1003,,,\n\
carol,Carol White,carol@example.com,1004,bob,,\n"
        ),
        "",
    );
    let s = sb.sync_ok(&[]);
    let run = s.only();
    assert_eq!(s.code(), 0, "failed entries still exit 0");
    assert_counts(run, &[("created", 2), ("failed", 2)]);
    // The second alice (line 4) and carol, whose alias is bob's username (one namespace).
    assert_eq!(errors_of(run).len(), 2, "{run:#}");
    let users = sb.users();
    assert_eq!(usernames(&users), ["alice", "bob"]);
    assert_eq!(users[0]["full_name"], "Alice First");
    assert_eq!(users[0]["personal_number"], "1001");
    let shown = sb.run_show(&run["run_id"]);
    let failed = shown["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "failed")
        .count();
    assert_eq!(failed, 2, "{shown:#}");
}

#[test]
fn duplicate_personal_number_in_file_is_a_conflict() {
    let sb = hr(
        &format!(
            "{HEADER}alice,Alice,alice@example.com,1001,,,\nbob,Bob,bob@example.com,1001,,,\n"
        ),
        "",
    );
    let s = sb.sync_ok(&[]);
    assert_counts(s.only(), &[("created", 1), ("failed", 1)]);
    assert_eq!(sb.users_by_name(), ["alice"]);
}

#[test]
fn card_held_by_another_user_is_a_failed_entry() {
    let sb = hr(
        &format!(
            "{HEADER}alice,Alice,alice@example.com,1001,,C-1,\nbob,Bob,bob@example.com,1002,,C-1,\n"
        ),
        "",
    );
    let s = sb.sync_ok(&[]);
    let run = s.only();
    assert_counts(run, &[("created", 1), ("failed", 1)]);
    assert_eq!(errors_of(run).len(), 1, "{run:#}");
    error_about(run, &["bob", "line 3"]);
    assert_eq!(sb.users_by_name(), ["alice"]);
    assert_eq!(strs(&sb.user("alice")["cards"]), sorted(&["C-1"]));

    // Across sources too: contractors' dave wants alice's card.
    sb.write_csv(
        "contractors.csv",
        "username,full_name,cards\ndave,Dave,C-1\nerin,Erin,C-9\n",
    );
    sb.write_config(&config(&[
        csv_source("hr", "users.csv", ""),
        csv_source("contractors", "contractors.csv", ""),
    ]));
    let s = sb.sync_ok(&["contractors"]);
    let run = s.only();
    assert_eq!(run["source"], "contractors");
    assert_counts(run, &[("created", 1), ("failed", 1)]);
    error_about(run, &["dave", "line 2"]);
    assert_eq!(sb.users_by_name(), ["alice", "erin"]);
    assert_eq!(strs(&sb.user("alice")["cards"]), sorted(&["C-1"]));
}

#[test]
fn username_held_by_another_source_is_never_taken_over() {
    let sb = Sandbox::new();
    sb.write_csv(
        "users.csv",
        &format!("{HEADER}alice,Alice Smith,alice@example.com,1001,,,\nbob,Bob,bob@example.com,1002,,,\n"),
    );
    sb.write_csv(
        "contractors.csv",
        "username,full_name,email\nalice,Alice Contractor,alice@contractor.example\ndave,Dave,dave@contractor.example\n",
    );
    sb.write_config(&config(&[
        csv_source("hr", "users.csv", LOOSE),
        csv_source("contractors", "contractors.csv", LOOSE),
    ]));
    let s = sb.sync_ok(&["hr"]);
    assert_eq!(s.only()["source"], "hr", "only the named source runs");
    let s = sb.sync_ok(&["contractors"]);
    let run = s.only();
    assert_counts(run, &[("created", 1), ("failed", 1), ("updated", 0)]);
    error_about(run, &["alice", "line 2"]);
    let alice = sb.user("alice");
    assert_eq!(alice["source"], "hr");
    assert_eq!(alice["full_name"], "Alice Smith");
    assert_eq!(sb.user("dave")["source"], "contractors");

    // on_missing of contractors touches only contractors' users.
    sb.write_csv("contractors.csv", "username,full_name,email\n");
    let s = sb.sync_ok(&["contractors"]);
    assert_counts(s.only(), &[("deactivated", 1)]);
    assert_eq!(usernames(&sb.active_users()), ["alice", "bob"]);
    assert_eq!(sb.user("dave")["active"], false);

    // A sync of both runs both, one object each.
    let s = sb.sync_ok(&[]);
    assert_eq!(s.runs.len(), 2, "{:#?}", s.runs);
    s.run("hr");
    s.run("contractors");
}

// ---------------------------------------------------------------------------------------
// deletion guard

fn ten_users(skip: &[usize]) -> String {
    let mut csv = String::from("username,full_name\n");
    for i in 0..10 {
        if !skip.contains(&i) {
            csv.push_str(&format!("user{i},User {i}\n"));
        }
    }
    csv
}

#[test]
fn deletion_guard_aborts_and_force_overrides() {
    let sb = hr(&ten_users(&[]), "max_deletions = \"10%\"");
    sb.sync_ok(&[]);

    // Exactly at the limit (1 of 10 = 10%) is allowed.
    sb.write_csv("users.csv", &ten_users(&[0]));
    let s = sb.sync_ok(&[]);
    assert_counts(s.only(), &[("deactivated", 1)]);
    sb.write_csv("users.csv", &ten_users(&[]));
    sb.sync_ok(&[]);

    // Three missing (30%) and a new user: the run aborts and changes nothing.
    let mut csv = ten_users(&[1, 2, 3]);
    csv.push_str("newbie,New User\n");
    sb.write_csv("users.csv", &csv);
    let before = sb.db_state();
    let s = sb.sync(&[]);
    assert_eq!(s.code(), 1, "{}", describe(&s.out));
    let run = s.only();
    assert_eq!(run["status"], "aborted", "{run:#}");
    assert!(
        run["message"].as_str().is_some_and(|m| !m.is_empty()),
        "an aborted run says why: {run:#}"
    );
    assert_eq!(sb.db_state(), before, "an aborted run changes nothing");
    let runs = sb.runs();
    assert_eq!(
        runs[0]["status"], "aborted",
        "the run record is still written"
    );
    assert!(runs[0]["message"].as_str().is_some_and(|m| !m.is_empty()));

    // A dry run shows the same verdict without writing.
    let s = sb.sync(&["--dry-run"]);
    assert_eq!(s.only()["status"], "aborted");
    assert_eq!(s.code(), 1);

    let s = sb.sync_ok(&["--force"]);
    assert_counts(s.only(), &[("deactivated", 3), ("created", 1)]);
    assert_eq!(sb.active_users().len(), 8);
}

#[test]
fn deletion_guard_counts_and_default() {
    // A count: more than 1 aborts.
    let sb = hr(
        &ten_users(&[]),
        "max_deletions = 1\non_missing = \"delete\"",
    );
    sb.sync_ok(&[]);
    sb.write_csv("users.csv", &ten_users(&[4, 5]));
    let before = sb.db_state();
    let s = sb.sync(&[]);
    assert_eq!(s.code(), 1);
    assert_eq!(s.only()["status"], "aborted");
    assert_eq!(sb.db_state(), before);
    let s = sb.sync_ok(&["--force"]);
    assert_counts(s.only(), &[("deleted", 2)]);
    assert_eq!(sb.users().len(), 8);

    // The default is 10%.
    let sb = hr(&ten_users(&[]), "");
    sb.sync_ok(&[]);
    sb.write_csv("users.csv", &ten_users(&[7, 8]));
    let before = sb.db_state();
    let s = sb.sync(&[]);
    assert_eq!(s.code(), 1);
    assert_eq!(s.only()["status"], "aborted");
    assert_eq!(sb.db_state(), before);
}

// ---------------------------------------------------------------------------------------
// dry run

#[test]
fn dry_run_writes_nothing_and_shows_the_plan() {
    let sb = hr(&three_users(), LOOSE);
    sb.sync_ok(&[]);
    // alice changes, carol goes, dave comes.
    sb.write_csv(
        "users.csv",
        &format!(
            "{HEADER}\
alice,Alice Brown,alice@example.com,1001,al;asmith,C-100;C-101,Staff\n\
bob,Bob Jones,bob@example.com,1002,,C-200,\n\
dave,Dave New,dave@example.com,1004,,,Staff|New\n"
        ),
    );
    // A read first, so that any open-time housekeeping has happened before the snapshot.
    let runs_before = sb.runs();
    let state_before = sb.db_state();
    let files_before = sb.db_files();

    let s = sb.sync_ok(&["--dry-run"]);
    let run = s.only();
    assert_eq!(run["dry_run"], true);
    assert_eq!(run["status"], "ok");
    assert_counts(
        run,
        &[
            ("created", 1),
            ("updated", 1),
            ("unchanged", 1),
            ("deactivated", 1),
            ("deleted", 0),
        ],
    );
    assert_eq!(
        plan_users(run),
        vec![
            pair("create", "dave"),
            pair("deactivate", "carol"),
            pair("update", "alice"),
        ],
        "{run:#}"
    );
    assert_eq!(
        strs(&plan_entry(run, "update", "alice").unwrap()["fields"]),
        sorted(&["full_name"])
    );

    assert_eq!(sb.db_files(), files_before, "the database files changed");
    assert_eq!(sb.runs(), runs_before, "a dry run writes no run record");
    assert_eq!(sb.db_state(), state_before);

    // The real run does what the plan said.
    let s = sb.sync_ok(&[]);
    assert_counts(
        s.only(),
        &[("created", 1), ("updated", 1), ("deactivated", 1)],
    );
    assert_eq!(usernames(&sb.active_users()), ["alice", "bob", "dave"]);
}

// ---------------------------------------------------------------------------------------
// groups

#[test]
fn group_trees_in_users_and_groups_lists() {
    let sb = hr(
        &format!(
            "{HEADER}\
alice,Alice,alice@example.com,1001,,,\"Activities|Outdoor|Swimming,Staff\"\n\
bob,Bob,bob@example.com,1002,,,Activities|Indoor\n\
carol,Carol,carol@example.com,1003,,,Staff\n"
        ),
        "",
    );
    sb.sync_ok(&[]);
    assert_eq!(
        strs(&sb.user("alice")["groups"]),
        sorted(&["Activities|Outdoor|Swimming", "Staff"])
    );
    assert_eq!(
        strs(&sb.user("bob")["groups"]),
        sorted(&["Activities|Indoor"])
    );

    let groups = sb.groups();
    let paths: Vec<&str> = groups.iter().map(|g| g["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "Activities",
            "Activities|Indoor",
            "Activities|Outdoor",
            "Activities|Outdoor|Swimming",
            "Staff"
        ],
        "sorted by path"
    );
    let expect = [
        ("Activities", "Activities", Value::Null, 0),
        ("Indoor", "Activities|Indoor", json!("Activities"), 1),
        ("Outdoor", "Activities|Outdoor", json!("Activities"), 0),
        (
            "Swimming",
            "Activities|Outdoor|Swimming",
            json!("Activities|Outdoor"),
            1,
        ),
        ("Staff", "Staff", Value::Null, 2),
    ];
    for (g, (name, path, parent, members)) in groups.iter().zip(expect) {
        assert_eq!(g["name"], name, "{g}");
        assert_eq!(g["path"], path, "{g}");
        assert_eq!(g["parent"], parent, "{g}");
        assert_eq!(g["members"], members, "{g}");
    }

    // Membership follows the source.
    sb.write_csv(
        "users.csv",
        &format!(
            "{HEADER}\
alice,Alice,alice@example.com,1001,,,Activities|Outdoor|Swimming\n\
bob,Bob,bob@example.com,1002,,,\"Activities|Indoor,Staff\"\n\
carol,Carol,carol@example.com,1003,,,Staff\n"
        ),
    );
    let s = sb.sync_ok(&[]);
    assert_counts(s.only(), &[("updated", 2), ("unchanged", 1)]);
    assert_eq!(
        strs(&sb.user("alice")["groups"]),
        sorted(&["Activities|Outdoor|Swimming"])
    );
    assert_eq!(
        strs(&sb.user("bob")["groups"]),
        sorted(&["Activities|Indoor", "Staff"])
    );
    let staff = sb
        .groups()
        .into_iter()
        .find(|g| g["path"] == "Staff")
        .unwrap();
    assert_eq!(staff["members"], 2);
}

// ---------------------------------------------------------------------------------------
// CSV format

#[test]
fn bad_rows_are_failed_entries_with_line_numbers() {
    let sb = hr(
        "username,full_name,email\n\
alice,Alice,alice@example.com\n\
bob,Bob\n\
carol,Carol,carol@example.com\n\
dave,Dave,dave@example.com,extra\n\
erin,Erin,erin@example.com\n\
frank,\"Frank,frank@example.com\n",
        "",
    );
    let s = sb.sync_ok(&[]);
    let run = s.only();
    assert_counts(run, &[("created", 3), ("failed", 3)]);
    assert_eq!(sb.users_by_name(), ["alice", "carol", "erin"]);
    for line in ["line 3", "line 5", "line 7"] {
        error_about(run, &[line]);
    }
    let shown = sb.run_show(&run["run_id"]);
    let failed: Vec<&str> = shown["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "failed")
        .map(|e| e["entry"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(failed.len(), 3, "{shown:#}");
    assert!(failed.iter().any(|e| e.contains("line 3")), "{failed:?}");
}

/// Encodes the few non-ASCII letters these tests use as windows-1250.
fn windows_1250(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            c if c.is_ascii() => c as u8,
            'Š' => 0x8A,
            'š' => 0x9A,
            'Ť' => 0x8D,
            'ť' => 0x9D,
            'Ž' => 0x8E,
            'ž' => 0x9E,
            'ý' => 0xFD,
            'á' => 0xE1,
            'Á' => 0xC1,
            'č' => 0xE8,
            'Č' => 0xC8,
            'ř' => 0xF8,
            'Ř' => 0xD8,
            'í' => 0xED,
            'é' => 0xE9,
            'ě' => 0xEC,
            'ó' => 0xF3,
            'ů' => 0xF9,
            'ú' => 0xFA,
            'Ú' => 0xDA,
            other => panic!("no windows-1250 byte for {other:?} in this table"),
        })
        .collect()
}

#[test]
fn windows_1250_file_without_bom() {
    let text = "username,full_name,groups\n\
jan,Jan Šťastný,Účetní\n\
petr,Petr Dvořák,Účetní|Mzdy\n\
zofie,Žofie Nováková,Ředitelství\n";
    let bytes = windows_1250(text);
    assert!(
        std::str::from_utf8(&bytes).is_err(),
        "the file must not be UTF-8"
    );
    let sb = Sandbox::new();
    sb.write_file("users.csv", &bytes);
    let source = "[sources.hr]\nplugin = \"csv\"\n[sources.hr.config]\npath = \"users.csv\"\nencoding = \"windows-1250\"\n".to_string();
    sb.write_config(&config(&[source]));
    let s = sb.sync_ok(&[]);
    assert_counts(s.only(), &[("created", 3), ("failed", 0)]);
    assert_eq!(sb.user("jan")["full_name"], "Jan Šťastný");
    assert_eq!(sb.user("petr")["full_name"], "Petr Dvořák");
    assert_eq!(sb.user("zofie")["full_name"], "Žofie Nováková");
    assert_eq!(strs(&sb.user("petr")["groups"]), sorted(&["Účetní|Mzdy"]));
    let paths: Vec<String> = sb
        .groups()
        .iter()
        .map(|g| g["path"].as_str().unwrap().to_string())
        .collect();
    assert!(paths.contains(&"Ředitelství".to_string()), "{paths:?}");
}

#[test]
fn utf8_file_with_bom() {
    let mut bytes = vec![0xEF, 0xBB, 0xBF];
    bytes.extend_from_slice("username,full_name\nalice,Ålice Ørsted\nbob,Bøb\n".as_bytes());
    let sb = Sandbox::new();
    sb.write_file("users.csv", &bytes);
    sb.write_config(&config(&[csv_source("hr", "users.csv", "")]));
    let s = sb.sync_ok(&[]);
    assert_counts(s.only(), &[("created", 2), ("failed", 0)]);
    assert_eq!(sb.user("alice")["full_name"], "Ålice Ørsted");
}

#[test]
fn semicolon_and_tab_delimiters_are_detected() {
    let sb = hr(
        "username;full_name;email;cards\nalice;Alice Smith;alice@example.com;\"C-1;C-2\"\nbob;Bob, Jr.;bob@example.com;C-3\n",
        "",
    );
    let s = sb.sync_ok(&[]);
    assert_counts(s.only(), &[("created", 2), ("failed", 0)]);
    let alice = sb.user("alice");
    assert_eq!(alice["full_name"], "Alice Smith");
    assert_eq!(alice["email"], "alice@example.com");
    assert_eq!(strs(&alice["cards"]), sorted(&["C-1", "C-2"]));
    assert_eq!(sb.user("bob")["full_name"], "Bob, Jr.");

    let sb = hr(
        "username\tfull_name\temail\nalice\tAlice Smith\talice@example.com\n",
        "",
    );
    sb.sync_ok(&[]);
    assert_eq!(sb.user("alice")["email"], "alice@example.com");
}

#[test]
fn explicit_delimiter_and_multi_value_separator() {
    let sb = Sandbox::new();
    sb.write_csv(
        "users.csv",
        "username|full_name|cards\nalice|Alice Smith|C-1/C-2\n",
    );
    sb.write_config(&config(&[
        "[sources.hr]\nplugin = \"csv\"\n[sources.hr.config]\npath = \"users.csv\"\ndelimiter = \"|\"\nmulti_value_separator = \"/\"\n".to_string(),
    ]));
    sb.sync_ok(&[]);
    let alice = sb.user("alice");
    assert_eq!(alice["full_name"], "Alice Smith");
    assert_eq!(strs(&alice["cards"]), sorted(&["C-1", "C-2"]));
}

#[test]
fn myq_columns_and_pins_never_shown() {
    const PIN: &str = "9182736455";
    let sb = hr(
        &format!(
            "FULLNAME,USERNAME_ALIASES,EMAIL,CARDS,GROUPS,CODE,SCANSTORAGE,PIN\n\
\"Alice Smith\",alice;asmith;al,alice@example.com,C-1;C-2,\"Staff|IT,Board\",1001,\\\\srv\\scan\\alice,{PIN}\n\
\"Bob Jones\",bob,bob@example.com,,,1002,,\n"
        ),
        "",
    );
    let sync = sb.sync_ok(&[]);
    assert_counts(sync.only(), &[("created", 2), ("failed", 0)]);
    let alice = sb.user("alice");
    assert_eq!(alice["full_name"], "Alice Smith");
    assert_eq!(strs(&alice["aliases"]), sorted(&["al", "asmith"]));
    assert_eq!(alice["email"], "alice@example.com");
    assert_eq!(strs(&alice["cards"]), sorted(&["C-1", "C-2"]));
    assert_eq!(strs(&alice["groups"]), sorted(&["Board", "Staff|IT"]));
    assert_eq!(alice["personal_number"], "1001");
    assert_eq!(alice["has_pin"], true);
    let bob = sb.user("bob");
    assert_eq!(bob["has_pin"], false);
    assert_eq!(bob["aliases"], json!([]));

    let show_json = sb.roster_ok(&["users", "show", "alice", "--json"]);
    let shown = parse_json(&show_json, &["users", "show"]);
    assert_eq!(shown["storage"], "\\\\srv\\scan\\alice");
    assert_eq!(shown["has_pin"], true);
    assert!(
        shown.get("notes").is_some(),
        "users show has notes: {shown:#}"
    );

    let outputs = [
        &sync.out,
        &show_json,
        &sb.roster_ok(&["users", "show", "alice"]),
        &sb.roster_ok(&["users", "list", "--all", "--json"]),
        &sb.roster_ok(&["users", "list"]),
        &sb.roster_ok(&["runs", "list", "--json"]),
        &sb.roster_ok(&["runs", "show", &id_string(&sync.only()["run_id"]), "--json"]),
        &sb.roster(&["sync", "--dry-run", "--json"]),
    ];
    let text = all_text(&outputs);
    assert!(!text.contains(PIN), "the PIN appears in roster's output");

    // A changed PIN is an update; the same PIN is not.
    let s = sb.sync_ok(&["--dry-run"]);
    assert_counts(s.only(), &[("updated", 0), ("unchanged", 2)]);
    let csv = std::fs::read_to_string(sb.path("users.csv")).unwrap();
    sb.write_csv("users.csv", &csv.replace(PIN, "5551234"));
    let s = sb.sync_ok(&["--dry-run"]);
    let run = s.only();
    assert_counts(run, &[("updated", 1), ("unchanged", 1)]);
    assert_eq!(
        strs(&plan_entry(run, "update", "alice").unwrap()["fields"]),
        sorted(&["pins"])
    );
    assert!(!stdout(&s.out).contains("5551234"));
}

#[test]
fn default_mapping_matches_names_loosely() {
    let sb = hr(
        "User-Name,FULL_NAME,E-Mail,Personal Number,phone,LANGUAGE,Notes,Storage\n\
alice,Alice Smith,alice@example.com,1001,+420 123,cs,likes tea,/scan/alice\n",
        "",
    );
    sb.sync_ok(&[]);
    let alice = sb.json(&["users", "show", "alice", "--json"]);
    assert_eq!(alice["username"], "alice");
    assert_eq!(alice["full_name"], "Alice Smith");
    assert_eq!(alice["email"], "alice@example.com");
    assert_eq!(alice["personal_number"], "1001");
    assert_eq!(alice["phone"], "+420 123");
    assert_eq!(alice["language"], "cs");
    assert_eq!(alice["notes"], "likes tea");
    assert_eq!(alice["storage"], "/scan/alice");
}

#[test]
fn map_templates_fill_fields_and_missing_attributes_yield_nothing() {
    let sb = Sandbox::new();
    sb.write_csv(
        "contractors.csv",
        "login,givenName,sn\nann,Ann,Lee\nbo,Bo,\n",
    );
    sb.write_config(
        "database = \"roster.db\"\n\
[sources.contractors]\nplugin = \"csv\"\n\
[sources.contractors.config]\npath = \"contractors.csv\"\n\
[sources.contractors.map]\n\
username = \"%login%\"\n\
full_name = \"%givenName% %sn%\"\n\
aliases = [\"%givenName%.%sn%\", \"%sn%-%givenName%\"]\n\
email = \"%login%@%mailDomain%\"\n\
notes = \"contractor %login%\"\n",
    );
    let s = sb.sync_ok(&[]);
    assert_counts(s.only(), &[("created", 2), ("failed", 0)]);
    let ann = sb.json(&["users", "show", "ann", "--json"]);
    assert_eq!(ann["full_name"], "Ann Lee");
    assert_eq!(strs(&ann["aliases"]), sorted(&["Ann.Lee", "Lee-Ann"]));
    assert_eq!(
        ann["email"],
        Value::Null,
        "no mailDomain attribute: no half value"
    );
    assert_eq!(ann["notes"], "contractor ann");
    // Bo has no surname: no "Bo " full name, no "Bo." alias.
    let bo = sb.json(&["users", "show", "bo", "--json"]);
    assert_eq!(bo["full_name"], Value::Null);
    assert_eq!(bo["aliases"], json!([]));
    assert_eq!(bo["notes"], "contractor bo");
    // The alias works as a name.
    let shown = sb.json(&["users", "show", "Lee-Ann", "--json"]);
    assert_eq!(shown["username"], "ann");
}

// ---------------------------------------------------------------------------------------
// users show

#[test]
fn users_show_by_username_or_alias() {
    let sb = hr(&three_users(), "");
    sb.sync_ok(&[]);
    for name in ["alice", "al", "asmith"] {
        let u = sb.json(&["users", "show", name, "--json"]);
        assert_eq!(u["username"], "alice", "users show {name}");
        assert_eq!(u["full_name"], "Alice Smith");
        assert_eq!(strs(&u["cards"]), sorted(&["C-100", "C-101"]));
        assert!(
            u.get("notes").is_some() && u.get("storage").is_some(),
            "{u:#}"
        );
        assert_eq!(u["notes"], Value::Null);
    }
    let out = sb.roster_ok(&["users", "show", "cw"]);
    assert!(stdout(&out).contains("carol"), "{}", describe(&out));

    let out = sb.roster(&["users", "show", "nobody"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    assert!(
        !stderr(&out).trim().is_empty(),
        "unknown user gives a message\n{}",
        describe(&out)
    );
}

// ---------------------------------------------------------------------------------------
// config

#[test]
fn unknown_config_keys_are_errors_naming_the_key() {
    let cases = [
        (
            "databse = \"roster.db\"\n".to_string() + &csv_source("hr", "users.csv", ""),
            "databse",
        ),
        (
            config(&[csv_source("hr", "users.csv", "pair_bye = \"email\"")]),
            "pair_bye",
        ),
        (
            config(&[
                "[sources.hr]\nplugin = \"csv\"\n[sources.hr.config]\npath = \"users.csv\"\n[sources.hr.map]\nfull_nmae = \"%a%\"\n".to_string(),
            ]),
            "full_nmae",
        ),
        (
            config(&[
                "[sources.hr]\nplugin = \"csv\"\n[sources.hr.config]\npath = \"users.csv\"\ndelimeter = \";\"\n".to_string(),
            ]),
            "delimeter",
        ),
    ];
    for (toml, key) in cases {
        let sb = Sandbox::new();
        sb.write_csv("users.csv", "username\nalice\n");
        sb.write_config(&toml);
        let out = sb.roster(&["sync", "--json"]);
        assert_eq!(code(&out), 2, "unknown key {key}\n{}", describe(&out));
        let text = all_text(&[&out]);
        assert!(
            text.contains(key),
            "the error names {key}\n{}",
            describe(&out)
        );
    }
}

#[test]
fn bad_option_values_are_config_errors() {
    for (options, word) in [
        ("pair_by = \"shoe_size\"", "pair_by"),
        ("on_missing = \"explode\"", "on_missing"),
        ("max_deletions = \"lots\"", "max_deletions"),
        ("timeout = \"soon\"", "timeout"),
    ] {
        let sb = hr("username\nalice\n", options);
        let out = sb.roster(&["sync"]);
        assert_eq!(code(&out), 2, "{options}\n{}", describe(&out));
        assert!(
            all_text(&[&out]).contains(word),
            "{options}\n{}",
            describe(&out)
        );
    }
}

#[test]
fn env_and_file_references_in_config() {
    let sb = Sandbox::new();
    sb.write_csv(
        "users-from-env.csv",
        "username,full_name\nalice,Alice Smith\n",
    );
    sb.write_file("fullname-template.txt", "%first% %last%");
    sb.write_csv("people.csv", "username,first,last\nbob,Bob,Jones\n");
    sb.write_config(
        "database = \"roster.db\"\n\
[sources.hr]\nplugin = \"csv\"\n\
[sources.hr.config]\npath = { env = \"ROSTER_TEST_CSV_PATH\" }\n\
[sources.people]\nplugin = \"csv\"\n\
[sources.people.config]\npath = \"people.csv\"\n\
[sources.people.map]\nfull_name = { file = \"fullname-template.txt\" }\n",
    );
    let out = sb.roster_env(
        &["sync", "--json"],
        &[("ROSTER_TEST_CSV_PATH", "users-from-env.csv")],
    );
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(sb.user("alice")["full_name"], "Alice Smith");
    assert_eq!(sb.user("bob")["full_name"], "Bob Jones");

    // An unset variable is a config error naming it.
    let out = sb.roster(&["sync", "--json"]);
    assert_eq!(code(&out), 2, "{}", describe(&out));
    assert!(
        all_text(&[&out]).contains("ROSTER_TEST_CSV_PATH"),
        "{}",
        describe(&out)
    );
}

#[test]
fn config_path_from_flag_env_and_default() {
    let sb = hr("username\nalice\n", "");
    // --config wins over ROSTER_CONFIG.
    let other = Sandbox::new();
    other.write_csv("users.csv", "username\nzed\n");
    other.write_config(&config(&[csv_source("hr", "users.csv", "")]));
    let cfg = other.config_path();
    let out = sb.roster(&["--config", cfg.to_str().unwrap(), "sync"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(other.users_by_name(), ["zed"]);
    assert!(
        !sb.db_path().exists(),
        "database is relative to the config file"
    );

    // Without either, ./roster.toml.
    let out = sb
        .command()
        .env_remove("ROSTER_CONFIG")
        .args(["sync"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(sb.users_by_name(), ["alice"]);

    // A missing config file is a config error.
    let out = sb
        .command()
        .env("ROSTER_CONFIG", sb.path("nope.toml"))
        .args(["sync"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", describe(&out));
}

// ---------------------------------------------------------------------------------------
// exit codes, sources

#[test]
fn exit_codes() {
    let sb = Sandbox::new();
    sb.write_csv("users.csv", "username,full_name\nalice,Alice\nbob\n");
    sb.write_config(&config(&[
        csv_source("hr", "users.csv", ""),
        csv_source("broken", "does-not-exist.csv", ""),
    ]));

    // Failed entries alone: 0.
    let s = sb.sync(&["hr"]);
    assert_eq!(s.code(), 0, "{}", describe(&s.out));
    assert_counts(s.only(), &[("failed", 1), ("created", 1)]);

    // A failed run: 1, and the other source still runs and commits.
    sb.write_csv(
        "users.csv",
        "username,full_name\nalice,Alice\ncarol,Carol\n",
    );
    let s = sb.sync(&[]);
    assert_eq!(s.code(), 1, "{}", describe(&s.out));
    let broken = s.run("broken");
    assert_eq!(broken["status"], "failed");
    assert!(
        broken["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{broken:#}"
    );
    assert_eq!(s.run("hr")["status"], "ok");
    assert_eq!(sb.users_by_name(), ["alice", "carol"]);
    let runs = sb.runs();
    assert!(
        runs.iter()
            .any(|r| r["source"] == "broken" && r["status"] == "failed"),
        "{runs:#?}"
    );

    // Usage errors: 2.
    for args in [
        &["sync", "--no-such-flag"][..],
        &["frobnicate"],
        &["sync", "no-such-source"],
        &["users", "show"],
    ] {
        let out = sb.roster(args);
        assert_eq!(code(&out), 2, "{args:?}\n{}", describe(&out));
    }
}

#[test]
fn sources_list_and_test() {
    let sb = Sandbox::new();
    sb.write_csv("users.csv", "username,full_name\nalice,Alice\nbob,Bob\n");
    sb.write_csv("contractors.csv", "username\ndave\n");
    sb.write_config(&config(&[
        csv_source("hr", "users.csv", ""),
        csv_source("contractors", "contractors.csv", ""),
    ]));
    let out = sb.roster_ok(&["sources", "list"]);
    let text = stdout(&out);
    assert!(
        text.contains("hr") && text.contains("contractors"),
        "{text}"
    );

    let out = sb.roster_ok(&["sources", "test", "hr"]);
    assert!(!stdout(&out).trim().is_empty(), "{}", describe(&out));
    assert!(sb.users().is_empty(), "sources test writes no users");

    let out = sb.roster(&["sources", "test", "nope"]);
    assert_ne!(code(&out), 0, "{}", describe(&out));
}

// ---------------------------------------------------------------------------------------
// init

#[test]
fn init_writes_a_starter_config_that_syncs() {
    let sb = Sandbox::new();
    let out = sb.roster_ok(&["init"]);
    let path = sb.config_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("init wrote no roster.toml ({e})\n{}", describe(&out)));
    assert!(
        text.lines().any(|l| l.trim_start().starts_with('#')),
        "commented:\n{text}"
    );

    // Refuses to overwrite.
    std::fs::write(&path, format!("{text}\n# mine\n")).unwrap();
    let out = sb.roster(&["init"]);
    assert_ne!(code(&out), 0, "{}", describe(&out));
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .ends_with("# mine\n"));

    // Give every CSV source of the starter config a small file, then sync.
    let parsed: toml::Table = toml::from_str(&text).expect("starter config is TOML");
    let sources = parsed
        .get("sources")
        .and_then(|s| s.as_table())
        .expect("starter config has [sources]");
    assert!(!sources.is_empty());
    let mut n = 0;
    for (name, src) in sources {
        if src.get("plugin").and_then(|p| p.as_str()) == Some("csv") {
            let p = src["config"]["path"].as_str().expect("csv path");
            if !sb.path(p).exists() {
                sb.write_csv(
                    p,
                    &format!("username,full_name\n{name}-user{n},Starter User\n"),
                );
            }
            n += 1;
        }
    }
    assert!(n > 0, "the starter config has a CSV source:\n{text}");
    let s = sb.sync_ok(&[]);
    assert_eq!(s.runs.len(), sources.len());
    assert!(!sb.users().is_empty());
}

// ---------------------------------------------------------------------------------------
// plugins

#[test]
fn plugin_install_list_inspect_remove() {
    use sha2::{Digest, Sha256};
    let wasm = hostile_wasm();
    let sb = hr("username\nalice\n", "");
    let sha = hex::encode(Sha256::digest(std::fs::read(&wasm).unwrap()));

    let out = sb.roster_ok(&[
        "plugin",
        "install",
        wasm.to_str().unwrap(),
        "--name",
        "hostile",
        "--yes",
    ]);
    let stored: Vec<_> = std::fs::read_dir(sb.path("plugins"))
        .unwrap_or_else(|e| panic!("no plugins/ next to the database ({e})\n{}", describe(&out)))
        .collect();
    assert!(!stored.is_empty(), "plugins/ is empty");

    let list = sb.roster_ok(&["plugin", "list"]);
    let list_text = stdout(&list);
    assert!(list_text.contains("hostile"), "{list_text}");
    let inspect = sb.roster_ok(&["plugin", "inspect", "hostile"]);
    let inspect_text = stdout(&inspect);
    assert!(!inspect_text.trim().is_empty());
    // The recorded sha256 is shown (in full, or the 16-digit prefix in a table).
    let install_text = stdout(&out);
    assert!(
        [&install_text, &list_text, &inspect_text]
            .iter()
            .any(|t| t.contains(&sha[..16])),
        "sha256 {sha} is shown by install, list or inspect:\n{install_text}\n{list_text}\n{inspect_text}"
    );

    // A source can name the installed plugin.
    let mut cfg = config(&[csv_source("hr", "users.csv", "")]);
    cfg.push_str("[sources.h]\nplugin = \"hostile\"\n[sources.h.config]\nmode = \"ok\"\n");
    sb.write_config(&cfg);
    let s = sb.sync_ok(&["h"]);
    assert_counts(s.only(), &[("created", 3)]);
    assert_eq!(sb.user("u1")["source"], "h");
    sb.write_config(&config(&[csv_source("hr", "users.csv", "")]));

    // Built-in csv.
    let csv = stdout(&sb.roster_ok(&["plugin", "inspect", "csv"]));
    for key in [
        "path",
        "delimiter",
        "encoding",
        "multi_value_separator",
        "id_column",
        "files",
    ] {
        assert!(csv.contains(key), "plugin inspect csv lacks {key}:\n{csv}");
    }

    let out = sb.roster_ok(&["plugin", "remove", "hostile"]);
    let list_text = stdout(&sb.roster_ok(&["plugin", "list"]));
    assert!(
        !list_text.contains("hostile"),
        "{list_text}\n{}",
        describe(&out)
    );
    let out = sb.roster(&["plugin", "inspect", "hostile"]);
    assert_ne!(code(&out), 0, "{}", describe(&out));
    let out = sb.roster(&["plugin", "remove", "hostile"]);
    assert_ne!(code(&out), 0, "{}", describe(&out));
}

#[test]
fn plugin_install_rejects_non_components() {
    let sb = hr("username\nalice\n", "");
    let cases: [(&str, &[u8]); 3] = [
        ("text.wasm", b"this is not WebAssembly at all\n"),
        // A valid, empty core module: not a component.
        ("core.wasm", b"\0asm\x01\0\0\0"),
        // A valid, empty component: not a roster connector.
        ("empty-component.wasm", b"\0asm\x0d\0\x01\0"),
    ];
    for (name, bytes) in cases {
        let p = sb.write_file(name, bytes);
        let out = sb.roster(&[
            "plugin",
            "install",
            p.to_str().unwrap(),
            "--name",
            "bogus",
            "--yes",
        ]);
        assert_ne!(code(&out), 0, "{name} was accepted\n{}", describe(&out));
        assert!(!stderr(&out).trim().is_empty(), "{name}: no message");
        let list = stdout(&sb.roster_ok(&["plugin", "list"]));
        assert!(!list.contains("bogus"), "{name} listed:\n{list}");
    }
}

#[test]
fn duplicate_of_a_stored_user_on_resync_is_a_failed_entry() {
    // The first row is unchanged (never staged), the second pairs with the same user.
    let sb = hr("username,full_name\nalice,Alice Smith\nbob,Bob Jones\n", "");
    sb.sync_ok(&[]);
    sb.write_csv(
        "users.csv",
        "username,full_name\nalice,Alice Smith\nbob,Bob Jones\nalice,Alice Impostor\n",
    );
    let s = sb.sync_ok(&[]);
    let run = s.only();
    assert_counts(run, &[("unchanged", 2), ("updated", 0), ("failed", 1)]);
    let (entry, reason) = error_about(run, &["line 4"]);
    assert!(
        reason.contains("duplicate") && reason.contains("line 2"),
        "{entry}: {reason}"
    );
    assert_eq!(sb.user("alice")["full_name"], "Alice Smith");
}

#[test]
fn a_changed_mapping_updates_users_whose_rows_did_not_change() {
    let csv = "username,givenName,sn\njdoe,John,Doe\n";
    let sb = hr(csv, "[sources.hr.map]\nfull_name = \"%givenName% %sn%\"");
    sb.sync_ok(&[]);
    assert_eq!(sb.user("jdoe")["full_name"], "John Doe");
    // Same file, another template: the row is unchanged, the mapped user is not.
    sb.write_config(&config(&[csv_source(
        "hr",
        "users.csv",
        "[sources.hr.map]\nfull_name = \"%sn%, %givenName%\"",
    )]));
    let s = sb.sync_ok(&[]);
    assert_counts(s.only(), &[("updated", 1), ("unchanged", 0)]);
    assert_eq!(sb.user("jdoe")["full_name"], "Doe, John");
    // And a third run with nothing changed is unchanged again.
    let s = sb.sync_ok(&[]);
    assert_counts(s.only(), &[("updated", 0), ("unchanged", 1)]);
}
