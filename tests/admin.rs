//! End-to-end tests of what a new admin meets in the first hour (issue #16).

mod common;

use common::*;

const HEADER: &str = "username,full_name,email\n";

fn people(names: &[&str]) -> String {
    let mut csv = HEADER.to_string();
    for n in names {
        csv.push_str(&format!("{n},{n} Person,{n}@example.com\n"));
    }
    csv
}

/// A sandbox with one CSV source `people` reading `people.csv`.
fn sandbox(names: &[&str], options: &str) -> Sandbox {
    let sb = Sandbox::new();
    sb.write_csv("people.csv", &people(names));
    sb.write_config(&config(&[csv_source("people", "people.csv", options)]));
    sb
}

// 1. The deletion guard and small sources.

#[test]
fn default_guard_lets_one_person_leave_a_small_source() {
    let sb = sandbox(&["ann", "bob"], "");
    sb.sync_ok(&[]);
    sb.write_csv("people.csv", &people(&["ann"]));
    let s = sb.sync_ok(&[]);
    assert_counts(s.only(), &[("deactivated", 1)]);
    assert_eq!(usernames(&sb.active_users()), ["ann"]);
}

#[test]
fn default_guard_still_stops_a_small_source_emptied() {
    let sb = sandbox(&["ann", "bob", "cy"], "");
    sb.sync_ok(&[]);
    sb.write_csv("people.csv", &people(&["ann"]));
    let before = sb.db_state();
    let s = sb.sync(&[]);
    assert_eq!(s.code(), 1, "{}", describe(&s.out));
    assert_eq!(s.only()["status"], "aborted");
    let msg = s.only()["message"].as_str().unwrap_or_default().to_string();
    assert!(msg.contains("max_deletions_floor = 1"), "{msg}");
    assert_eq!(sb.db_state(), before);
}

#[test]
fn guard_floor_is_configurable() {
    // A floor of 2 lets two of three go.
    let sb = sandbox(&["ann", "bob", "cy"], "max_deletions_floor = 2");
    sb.sync_ok(&[]);
    sb.write_csv("people.csv", &people(&["ann"]));
    assert_counts(sb.sync_ok(&[]).only(), &[("deactivated", 2)]);

    // A floor of 0 is the strict percentage: 10% of two users is none.
    let sb = sandbox(
        &["ann", "bob"],
        "max_deletions = \"10%\"\nmax_deletions_floor = 0",
    );
    sb.sync_ok(&[]);
    sb.write_csv("people.csv", &people(&["ann"]));
    assert_eq!(sb.sync(&[]).only()["status"], "aborted");

    // A count is absolute: the floor does not lift it.
    let sb = sandbox(
        &["ann", "bob"],
        "max_deletions = 0\nmax_deletions_floor = 5",
    );
    sb.sync_ok(&[]);
    sb.write_csv("people.csv", &people(&["ann"]));
    assert_eq!(sb.sync(&[]).only()["status"], "aborted");
}

#[test]
fn guard_percentage_holds_for_large_sources() {
    let names: Vec<String> = (0..40).map(|i| format!("u{i:02}")).collect();
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    let sb = sandbox(&all, "");
    sb.sync_ok(&[]);
    // 4 of 40 is 10%: allowed; 5 more is over.
    sb.write_csv("people.csv", &people(&all[4..]));
    assert_counts(sb.sync_ok(&[]).only(), &[("deactivated", 4)]);
    sb.write_csv("people.csv", &people(&all[..31]));
    assert_eq!(sb.sync(&[]).only()["status"], "aborted");
}

// 2. A dry run that the guard would abort.

#[test]
fn aborting_dry_run_shows_the_plan_and_why() {
    let sb = sandbox(&["ann", "bob", "cy", "dee"], "");
    sb.sync_ok(&[]);
    let mut csv = people(&["ann"]);
    csv.push_str("eve,Eve Person,eve@example.com\n");
    sb.write_csv("people.csv", &csv);
    let files = sb.db_files();

    let s = sb.sync(&["--dry-run"]);
    assert_eq!(s.code(), 1);
    let run = s.only();
    assert_eq!(run["status"], "aborted", "{run:#}");
    let plan: Vec<(String, String)> = (run["plan"].as_array().unwrap().iter())
        .map(|p| (p["action"].to_string(), p["username"].to_string()))
        .collect();
    for (action, user) in [
        ("create", "eve"),
        ("deactivate", "bob"),
        ("deactivate", "cy"),
        ("deactivate", "dee"),
    ] {
        let item = (format!("\"{action}\""), format!("\"{user}\""));
        assert!(plan.contains(&item), "{item:?} missing from {plan:?}");
    }

    let out = sb.roster(&["sync", "--dry-run"]);
    assert_eq!(code(&out), 1);
    let text = stdout(&out);
    let plan_at = text.find("plan for people").expect(&text);
    let abort_at = text.find("a real run would abort").expect(&text);
    assert!(plan_at < abort_at, "{text}");
    assert!(text.contains("deactivate  bob"), "{text}");
    assert!(text.contains("create      eve"), "{text}");
    assert!(text.contains("--force"), "{text}");
    assert_eq!(sb.db_files(), files, "a dry run writes nothing");
}

// 3. Logs: plain text unless on a terminal.

#[test]
fn piped_logs_have_no_colour_codes() {
    let sb = sandbox(&["ann"], "");
    let out = sb.roster_env(&["sync"], &[("RUST_LOG", "debug")]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains("DEBUG"), "debug lines expected: {err}");
    assert!(
        !err.contains('\u{1b}'),
        "colour codes in piped logs: {err:?}"
    );

    // -vv raises the level without RUST_LOG; -q silences warnings.
    let out = sb.roster(&["-vv", "sync"]);
    assert!(stderr(&out).contains("DEBUG"), "{}", describe(&out));
    assert!(!stderr(&out).contains('\u{1b}'));
    let out = sb.roster(&["sync", "-q"]);
    assert_eq!(stderr(&out), "", "{}", describe(&out));
}

// 4. plugin inspect speaks TOML.

#[test]
fn plugin_inspect_prints_toml_types_and_defaults() {
    let sb = sandbox(&["ann"], "");
    let out = sb.roster_ok(&["plugin", "inspect", "csv"]);
    let text = stdout(&out);
    assert!(!text.contains("KeyType"), "{text}");
    let line = |key: &str| {
        (text.lines())
            .find(|l| l.trim_start().starts_with(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no {key} line in {text}"))
            .to_string()
    };
    assert!(line("path").contains("file, required"), "{text}");
    assert!(
        line("encoding").contains("string, optional, default \"utf-8\""),
        "{text}"
    );
    assert!(
        line("multi_value_columns").contains("list, optional, default ["),
        "{text}"
    );
}

// 5. A second source meets a user of the first.

#[test]
fn second_source_conflict_says_what_to_do() {
    let sb = Sandbox::new();
    sb.write_csv("people.csv", &people(&["ann"]));
    sb.write_csv("more.csv", &people(&["ann", "zed"]));
    sb.write_config(&config(&[
        csv_source("people", "people.csv", ""),
        csv_source("more", "more.csv", ""),
    ]));
    let s = sb.sync_ok(&[]);
    let run = s.run("more");
    assert_counts(run, &[("created", 1), ("failed", 1)]);
    let reason = run["errors"][0]["reason"].as_str().unwrap().to_string();
    assert!(
        reason.contains("belongs to a user of source 'people'"),
        "{reason}"
    );
    assert!(reason.contains("on_missing = \"delete\""), "{reason}");
    assert_eq!(sb.user("ann")["source"], "people");
}

// 6. Shell completions and the man page.

#[test]
fn completions_and_man_page_need_no_config() {
    let sb = Sandbox::new();
    for (shell, marker) in [
        ("bash", "_roster()"),
        ("zsh", "#compdef roster"),
        ("fish", "complete -c roster"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let text = stdout(&sb.roster_ok(&["completions", shell]));
        assert!(text.contains(marker), "{shell}: {text}");
        assert!(text.contains("inspect"), "{shell} completes subcommands");
    }
    let out = sb.roster(&["completions", "tcsh"]);
    assert_eq!(code(&out), 2);
    let man = stdout(&sb.roster_ok(&["man"]));
    assert!(
        man.starts_with(".ie") || man.contains(".TH roster"),
        "{man}"
    );
    assert!(man.contains("completions"), "{man}");
}

// 7. users list: filters, streaming, a closed pipe.

fn listed(sb: &Sandbox, args: &[&str]) -> Vec<String> {
    let mut full = vec!["users", "list", "--json"];
    full.extend_from_slice(args);
    usernames(&as_array(sb.json(&full)))
}

#[test]
fn users_list_filters() {
    let sb = Sandbox::new();
    sb.write_csv(
        "people.csv",
        "username,full_name,email,groups,cards\n\
         ann,Ann Lee,ann@example.com,Staff|IT,C-1\n\
         bob,Bob Stone,bob@example.org,Staff,\n\
         cy,Cy Young,cy@example.com,Sales,\n\
         dee,Dee Bright,dee@example.com,Staff,\n",
    );
    sb.write_csv("more.csv", "username,full_name\nzed,Zed Stone\n");
    sb.write_config(&config(&[
        csv_source("people", "people.csv", ""),
        csv_source("more", "more.csv", ""),
    ]));
    sb.sync_ok(&[]);
    sb.write_csv(
        "people.csv",
        "username,full_name,email,groups,cards\n\
         ann,Ann Lee,ann@example.com,Staff|IT,C-1\n\
         bob,Bob Stone,bob@example.org,Staff,\n\
         cy,Cy Young,cy@example.com,Sales,\n",
    );
    sb.sync_ok(&["people"]);

    assert_eq!(listed(&sb, &[]), ["ann", "bob", "cy", "zed"]);
    assert_eq!(listed(&sb, &["--all"]), ["ann", "bob", "cy", "dee", "zed"]);
    assert_eq!(listed(&sb, &["--inactive"]), ["dee"]);
    assert_eq!(listed(&sb, &["--source", "more"]), ["zed"]);
    assert_eq!(listed(&sb, &["--source", "people", "--all"]).len(), 4);
    // A group takes the groups under it along.
    assert_eq!(listed(&sb, &["--group", "Staff"]), ["ann", "bob"]);
    assert_eq!(
        listed(&sb, &["--group", "Staff", "--all"]),
        ["ann", "bob", "dee"]
    );
    assert_eq!(listed(&sb, &["--group", "Staff|IT"]), ["ann"]);
    assert_eq!(listed(&sb, &["--group", "Sta"]), Vec::<String>::new());
    // The search term: any part of a name, an email or a card, any case.
    assert_eq!(listed(&sb, &["STONE"]), ["bob", "zed"]);
    assert_eq!(listed(&sb, &["example.org"]), ["bob"]);
    assert_eq!(listed(&sb, &["c-1"]), ["ann"]);
    assert_eq!(listed(&sb, &["stone", "--source", "people"]), ["bob"]);

    let text = stdout(&sb.roster_ok(&["users", "list", "--group", "Staff|IT"]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("USERNAME"), "{text}");
    assert!(
        lines[1].starts_with("ann ") && lines[1].contains("Ann Lee"),
        "{text}"
    );
}

#[test]
fn users_list_into_a_closed_pipe_exits_quietly() {
    use std::io::Read;
    use std::process::Stdio;
    let names: Vec<String> = (0..3000).map(|i| format!("user{i:05}")).collect();
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    let sb = sandbox(&all, "");
    sb.sync_ok(&[]);
    for args in [&["users", "list"][..], &["users", "list", "--json"]] {
        let mut child = sb
            .command()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read a little, as `head` does, then close the pipe.
        let mut first = [0u8; 64];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap();
        let out = child.wait_with_output().unwrap();
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(err, "", "{args:?}");
        assert_eq!(code(&out), 0, "{args:?}: {err}");
    }
}

// 8. MyQ Roger's CSV import format, and columns that fill nothing.

#[test]
fn myq_roger_csv_is_recognised() {
    let sb = Sandbox::new();
    sb.write_csv(
        "roger.csv",
        "UserName,Name,Surname,Email Address,Phone Number,Roles,Cards,Aliases,IsActive,PIN,\
         Password,SendActivationEmail,IncludePINToActivationEmail,User Groups\n\
         asmith,Alice,Smith,alice@example.com,+420 123,User,04A1;04A2,alice;a.smith,true,4821,\
         s3cret,false,false,\"Staff|IT,Sales\"\n\
         bjones,Bob,Jones,bob@example.com,,User,,,false,,,false,false,Staff\n\
         carol,,White,,,,,,1,,,,,\n",
    );
    sb.write_config(&config(&[csv_source("roger", "roger.csv", "")]));
    let s = sb.sync_ok(&[]);
    assert_counts(s.only(), &[("created", 3)]);

    let a = sb.user("asmith");
    assert_eq!(a["full_name"], "Alice Smith");
    assert_eq!(a["email"], "alice@example.com");
    assert_eq!(a["phone"], "+420 123");
    assert_eq!(strs(&a["cards"]), ["04A1", "04A2"]);
    assert_eq!(strs(&a["aliases"]), ["a.smith", "alice"]);
    assert_eq!(strs(&a["groups"]), ["Sales", "Staff|IT"]);
    assert_eq!(a["active"], true);
    assert_eq!(a["has_pin"], true);
    let b = sb.user("bjones");
    assert_eq!(b["full_name"], "Bob Jones");
    assert_eq!(b["active"], false);
    assert_eq!(sb.user("carol")["full_name"], "White");

    // No password anywhere in the database, and a warning that it was left out.
    let db = sb.db_bytes();
    assert!(!db.windows(6).any(|w| w == b"s3cret"));
    let notices = strs(&s.only()["notices"]);
    assert!(
        notices
            .iter()
            .any(|n| n.contains("\"Password\"") && n.contains("never")),
        "{notices:?}"
    );
    // Roles fills no roster field; the activation-email flags are instructions, not data.
    let unused: Vec<&String> = notices
        .iter()
        .filter(|n| n.contains("no roster field"))
        .collect();
    assert_eq!(unused.len(), 1, "{notices:?}");
    assert!(unused[0].contains("\"Roles\""), "{notices:?}");
    assert!(!unused[0].contains("Activation"), "{notices:?}");
    assert!(!unused[0].contains("Password"), "{notices:?}");
}

#[test]
fn a_misspelt_column_is_reported_once_per_run() {
    let sb = Sandbox::new();
    sb.write_csv(
        "people.csv",
        "username,full_nmae,email,givenName,sn,id\n\
         ann,Ann Lee,ann@example.com,Ann,Lee,1\n\
         bob,Bob Stone,bob@example.com,Bob,Stone,2\n",
    );
    // givenName and sn feed a template; id is the connector's id_column.
    let options = "[sources.people.map]\naliases = \"%givenName%.%sn%\"";
    let mut cfg = config(&[csv_source("people", "people.csv", options)]);
    cfg.push_str("id_column = \"id\"\n");
    sb.write_config(&cfg);
    let s = sb.sync_ok(&[]);
    let notices = strs(&s.only()["notices"]);
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(notices[0].contains("\"full_nmae\""), "{notices:?}");
    for used in ["givenName", "\"sn\"", "\"id\"", "email"] {
        assert!(!notices[0].contains(used), "{used}: {notices:?}");
    }
    // The warning reaches the admin in the table output and the log too.
    let out = sb.roster(&["sync"]);
    assert!(stdout(&out).contains("full_nmae"), "{}", describe(&out));
    assert_eq!(
        stderr(&out).matches("full_nmae").count(),
        1,
        "{}",
        describe(&out)
    );
    // A clean file warns about nothing.
    sb.write_csv("people.csv", "username,full_name,id\nann,Ann Lee,1\n");
    let s = sb.sync_ok(&[]);
    assert_eq!(s.only()["notices"], serde_json::json!([]));
}
