//! End-to-end tests of sandboxed scripts (the built-in `script` plugin): script sources,
//! mapping scripts, their limits and errors (each leaving the database unchanged), and the
//! `roster script` commands.

mod common;

use common::*;
use serde_json::Value;
use std::sync::OnceLock;

/// One compile cache for every sandbox of this test process: the script component is
/// compiled once, not once per test.
fn shared_cache() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

fn sandbox() -> Sandbox {
    let sb = Sandbox::new();
    std::os::unix::fs::symlink(shared_cache(), sb.path(".roster-cache")).unwrap();
    sb
}

/// A script source `hr` running `hr.rhai`, with extra source lines and config lines.
fn script_source(options: &str, config: &str) -> String {
    format!(
        "[sources.hr]\nplugin = \"script\"\nmax_deletions = \"100%\"\n{options}\n\
         [sources.hr.config]\nscript = \"hr.rhai\"\n{config}\n"
    )
}

const TEN_K: &str = r#"
// 10,000 users in 10 departments under one root group.
let departments = ["Sales", "IT", "HR", "Legal", "Ops", "R&D", "Finance", "Support", "QA", "Facilities"];
for i in 0..10000 {
    let d = i % 10;
    emit_user(#{
        id: `E${i}`,
        username: `user${i}`,
        full_name: `User Number ${i}`,
        email: `user${i}@example.com`,
        cards: [`C${i}`, `D${i}`],
        member_of: [`dept-${d}`],
    });
}
emit_group(#{ id: "root", name: "Staff" });
for d in 0..10 {
    emit_group(#{ id: `dept-${d}`, name: departments[d], parent: "root" });
}
"#;

#[test]
fn a_script_source_of_10k_users_and_groups() {
    let sb = sandbox();
    sb.write_file("hr.rhai", TEN_K);
    sb.write_config(&config(&[script_source("", "")]));
    let run = sb.sync_ok(&[]).only().clone();
    assert_counts(&run, &[("created", 10_000), ("failed", 0)]);
    let users = sb.users();
    assert_eq!(users.len(), 10_000);
    let u = find_user(&users, "user4321").unwrap();
    assert_eq!(u["full_name"], "User Number 4321");
    assert_eq!(u["email"], "user4321@example.com");
    assert_eq!(strs(&u["cards"]), ["C4321", "D4321"]);
    assert_eq!(strs(&u["groups"]), ["Staff|IT"]);
    let groups = sb.groups();
    let legal = groups
        .iter()
        .find(|g| g["path"] == "Staff|Legal" || g["name"] == "Staff|Legal")
        .unwrap_or_else(|| panic!("no Staff|Legal in {groups:#?}"));
    assert_eq!(legal["members"], 1000, "{legal}");
    // The same script again: nothing changed.
    let again = sb.sync_ok(&[]).only().clone();
    assert_counts(
        &again,
        &[("unchanged", 10_000), ("created", 0), ("updated", 0)],
    );
}

/// A CSV source `hr` with a mapping script and a `[map]` template.
fn mapped_csv(map: &str, options: &str) -> Sandbox {
    let sb = sandbox();
    sb.write_csv(
        "users.csv",
        "username,given,sn,email\n\
         JDoe,Jane,Doe,jane@example.com\n\
         BSmith,Bob,Smith,bob@example.com\n\
         svc-backup,Backup,Service,\n",
    );
    sb.write_file("map.rhai", map);
    sb.write_config(&config(&[format!(
        "[sources.hr]\nplugin = \"csv\"\nmax_deletions = \"100%\"\n{options}\n\
         [sources.hr.config]\npath = \"users.csv\"\n\
         [sources.hr.map]\nfull_name = \"%sn%, %given%\"\n"
    )]));
    sb
}

const MAP: &str = r#"
// Service accounts are not people.
fn map(entry) {
    if entry.username.starts_with("svc-") {
        return ();
    }
    entry.username = entry.username.to_lower();
    entry.aliases = [`${entry.given}.${entry.sn}`.to_lower(), `${entry.sn}.${entry.given}`.to_lower()];
    entry
}
"#;

#[test]
fn a_mapping_script_lowercases_derives_aliases_and_drops_service_accounts() {
    let sb = mapped_csv(MAP, "mapping = \"map.rhai\"");
    let run = sb.sync_ok(&[]).only().clone();
    assert_counts(&run, &[("created", 2), ("failed", 0)]);
    assert_eq!(sorted(&["bsmith", "jdoe"]), {
        let mut u = sb.users_by_name();
        u.sort();
        u
    });
    let jane = sb.user("jdoe");
    assert_eq!(strs(&jane["aliases"]), ["doe.jane", "jane.doe"]);
    // [map] templates still apply after the script.
    assert_eq!(jane["full_name"], "Doe, Jane");
    assert_eq!(jane["email"], "jane@example.com");
}

#[test]
fn a_dropped_entry_is_not_missing() {
    // Synced once without a script: svc-backup is a user of this source.
    let sb = mapped_csv(
        "fn map(e) { if e.username.starts_with(\"svc-\") { () } else { e } }",
        "",
    );
    sb.sync_ok(&[]);
    assert!(sb.users_by_name().contains(&"svc-backup".to_string()));
    // With the script it is dropped: not synced, and not deactivated as missing.
    let cfg = std::fs::read_to_string(sb.config_path()).unwrap();
    sb.write_config(&cfg.replace(
        "max_deletions = \"100%\"\n",
        "max_deletions = \"100%\"\nmapping = \"map.rhai\"\n",
    ));
    let run = sb.sync_ok(&[]).only().clone();
    assert_counts(&run, &[("deactivated", 0), ("failed", 0)]);
    assert_eq!(sb.user("svc-backup")["active"], true);
}

#[test]
fn parse_papercut_reads_real_papercut_lines() {
    let sb = sandbox();
    // As a PaperCut custom user directory program prints them (TAB-separated).
    sb.write_file(
        "papercut.txt",
        "jsmith\tJohn Smith\tjohn.smith@example.com\tSales\tLevel 2\t1234567\tjs@example.org\t7654321\tjohn.smith\t\\\\fs01\\home\\jsmith\t4321\n\
         mjones\tMary Jones\tmary.jones@example.com\tIT\t\t2233445\t\t\tmary.j\t\t\n\
         guest\tGuest Account\n",
    );
    sb.write_file(
        "hr.rhai",
        r#"for line in read_lines("papercut.txt") {
               if line == "" { continue; }
               let u = parse_papercut(line);
               if "department" in u { u.groups = [u.department]; }
               emit_user(u);
           }"#,
    );
    sb.write_config(&config(&[script_source(
        "warn_unused_attributes = false",
        "files = [\"papercut.txt\"]",
    )
    .replace("warn_unused_attributes = false", "")]));
    let run = sb.sync_ok(&[]).only().clone();
    assert_counts(&run, &[("created", 3), ("failed", 0)]);
    let john = sb.user("jsmith");
    assert_eq!(john["full_name"], "John Smith");
    assert_eq!(john["email"], "john.smith@example.com");
    assert_eq!(strs(&john["cards"]), ["1234567", "7654321"]);
    assert_eq!(strs(&john["aliases"]), ["john.smith"]);
    assert_eq!(strs(&john["groups"]), ["Sales"]);
    let mary = sb.user("mjones");
    assert_eq!(strs(&mary["cards"]), ["2233445"]);
    assert_eq!(strs(&mary["aliases"]), ["mary.j"]);
    let guest = sb.user("guest");
    assert_eq!(guest["full_name"], "Guest Account");
    assert!(strs(&guest["cards"]).is_empty());
}

/// A sandbox whose source `hr` synced three users, then gets `script` (and options); the
/// sync must fail with every `expected` text in its message and leave the database as
/// it was.
fn fails_unchanged(script: &str, options: &str, config_lines: &str, expected: &[&str]) -> String {
    let sb = sandbox();
    sb.write_file(
        "hr.rhai",
        r#"for u in ["ann", "ben", "cat"] { emit_user(#{ username: u, groups: ["Staff"] }); }"#,
    );
    sb.write_file("secret.txt", "not for scripts\n");
    sb.write_config(&config(&[script_source(options, config_lines)]));
    sb.sync_ok(&[]);
    let before = sb.db_state();
    sb.write_file("hr.rhai", script);
    let s = sb.sync(&[]);
    assert_ne!(s.code(), 0, "the sync should fail\n{}", describe(&s.out));
    let run = s.only();
    assert_eq!(run["status"], "failed", "{run:#}");
    let message = run["message"].as_str().unwrap_or_default().to_string();
    for e in expected {
        assert!(message.contains(e), "{e:?} not in {message:?}");
    }
    assert_eq!(sb.db_state(), before, "the database changed");
    message
}

#[test]
fn an_endless_source_script_is_stopped_by_the_deadline() {
    fails_unchanged(
        "emit_user(#{ username: \"x\" });\nloop { }",
        // A budget the loop cannot exhaust in 2 s: on a quiet machine the default 1e9
        // operations take about 1.3 s, and this test is about the deadline.
        "timeout = \"2s\"\nscript_max_operations = 1000000000000",
        "",
        &["deadline"],
    );
}

#[test]
fn an_endless_source_script_is_stopped_by_its_operation_budget() {
    fails_unchanged(
        "let n = 0;\nwhile true { n += 1; }",
        "script_max_operations = 100000",
        "",
        &["hr.rhai:2:", "too many operations"],
    );
}

#[test]
fn a_huge_allocation_is_stopped() {
    // A string that doubles: Rhai's string limit.
    fails_unchanged(
        "let s = \"0123456789\";\nloop { s += s; }",
        "",
        "",
        &["hr.rhai:2:", "string"],
    );
    // Many big strings: the component's memory cap.
    fails_unchanged(
        "let a = [];\nlet s = \"0123456789\"; for i in 0..18 { s += s; }\nloop { a.push(s + a.len()); }",
        "memory_limit = \"32MiB\"",
        "",
        &["memory limit"],
    );
}

#[test]
fn a_syntax_error_is_reported_with_its_position() {
    fails_unchanged(
        "emit_user(#{ username: \"x\" });\nlet = 5;",
        "",
        "",
        &["hr.rhai:2:5:"],
    );
}

#[test]
fn a_runtime_error_is_reported_with_its_position() {
    fails_unchanged(
        "let users = [\"a\"];\nfor u in users {\n    emit_user(#{ username: u.no_such_method() });\n}",
        "",
        "",
        &["hr.rhai:3:", "no_such_method"],
    );
}

#[test]
fn an_ungranted_file_is_denied() {
    fails_unchanged(
        "for l in read_lines(\"secret.txt\") { emit_user(#{ username: l }); }",
        "",
        "",
        &["hr.rhai:1:", "secret.txt", "not granted"],
    );
}

#[test]
fn an_ungranted_origin_is_denied() {
    let m = fails_unchanged(
        "let users = http_get_json(\"http://127.0.0.1:9/users\");",
        "",
        "urls = [\"http://127.0.0.1:8/api\"]",
        &["hr.rhai:1:", "http://127.0.0.1:9/users", "denied"],
    );
    assert!(!m.contains("connection refused"), "{m}");
}

#[test]
fn a_granted_origin_serves_json() {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let port = server.server_addr().to_ip().unwrap().port();
    let handle = std::thread::spawn(move || {
        let req = server.recv().unwrap();
        assert_eq!(req.url(), "/api/users");
        let body = r#"[{"login": "ann", "name": "Ann A"}, {"login": "ben", "name": "Ben B"}]"#;
        req.respond(tiny_http::Response::from_string(body)).unwrap();
    });
    let sb = sandbox();
    sb.write_file(
        "hr.rhai",
        format!(
            "for u in http_get_json(\"http://127.0.0.1:{port}/api/users\") {{\n\
               emit_user(#{{ username: u.login, full_name: u.name }});\n}}"
        ),
    );
    sb.write_config(&config(&[script_source(
        "",
        &format!("urls = [\"http://127.0.0.1:{port}/api\"]"),
    )]));
    let run = sb.sync_ok(&[]).only().clone();
    handle.join().unwrap();
    assert_counts(&run, &[("created", 2)]);
    assert_eq!(sb.user("ben")["full_name"], "Ben B");
}

const ERRS_ON_BOB: &str = "fn map(e) {\n    if e.username == \"BSmith\" {\n        throw \"no bobs here\";\n    }\n    e\n}\n";

#[test]
fn on_script_error_fail_fails_the_run_and_changes_nothing() {
    let sb = mapped_csv(ERRS_ON_BOB, "mapping = \"map.rhai\"");
    let before = sb.db_state();
    let s = sb.sync(&[]);
    assert_ne!(s.code(), 0, "{}", describe(&s.out));
    let run = s.only();
    assert_eq!(run["status"], "failed");
    let m = run["message"].as_str().unwrap();
    assert!(
        m.contains("line 3") && m.contains("map.rhai:3:") && m.contains("no bobs here"),
        "{m}"
    );
    assert_eq!(sb.db_state(), before);
}

#[test]
fn on_script_error_skip_fails_the_entry_and_goes_on() {
    let sb = mapped_csv(
        ERRS_ON_BOB,
        "mapping = \"map.rhai\"\non_script_error = \"skip\"",
    );
    let run = sb.sync_ok(&[]).only().clone();
    assert_counts(&run, &[("created", 2), ("failed", 1)]);
    let errors = run["errors"].as_array().unwrap();
    assert_eq!(errors[0]["entry"], "line 3");
    let reason = errors[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("map.rhai:3:") && reason.contains("no bobs here"),
        "{reason}"
    );
    assert!(sb.users_by_name().contains(&"JDoe".to_string()));
}

/// Notes from the first line of a granted file, after a loop that costs about 5,000
/// operations per entry (so a budget of 1,000 stops any entry that reaches the script).
const NOTE_FROM_FILE: &str = r#"
fn map(e) {
    let n = 0;
    while n < 1000 { n += 1; }
    e.notes = read_lines("note.txt")[0];
    e
}
"#;

fn notes(sb: &Sandbox, name: &str) -> Value {
    let shown = sb.roster_ok(&["users", "show", name, "--json"]);
    parse_json(&shown, &["users", "show"])["notes"].clone()
}

#[test]
fn unchanged_entries_skip_the_mapping_script_until_it_or_its_files_change() {
    let sb = mapped_csv(NOTE_FROM_FILE, "mapping = \"map.rhai\"");
    sb.write_file("note.txt", "first\n");
    let configure = |budget: &str| {
        sb.write_config(&config(&[format!(
            "[sources.hr]\nplugin = \"csv\"\nmax_deletions = \"100%\"\nmapping = \"map.rhai\"\n\
             files = [\"note.txt\"]\non_script_error = \"skip\"\n{budget}\n\
             [sources.hr.config]\npath = \"users.csv\"\n"
        )]));
    };
    configure("");
    assert_counts(sb.sync_ok(&[]).only(), &[("created", 3), ("failed", 0)]);
    assert_eq!(notes(&sb, "JDoe"), "first");
    // One row changes, and the script can no longer map any entry: only the changed row
    // reaches it (and fails); the others are known unchanged before the script.
    sb.write_csv(
        "users.csv",
        "username,given,sn,email\n\
         JDoe,Jane,Doe,jane@example.com\n\
         BSmith,Bob,Smith,bob@example.org\n\
         svc-backup,Backup,Service,\n",
    );
    configure("script_max_operations = 1000");
    let run = sb.sync_ok(&[]).only().clone();
    assert_counts(&run, &[("unchanged", 2), ("failed", 1), ("updated", 0)]);
    assert_eq!(run["errors"][0]["entry"], "line 3", "{run}");
    // A failed entry leaves its user as it was: not missing, not updated.
    let bob = sb.user("BSmith");
    assert_eq!(bob["active"], true);
    assert_eq!(bob["email"], "bob@example.com");
    // The file the script reads changes: every entry goes through the script again.
    configure("");
    sb.write_file("note.txt", "second\n");
    assert_counts(
        sb.sync_ok(&[]).only(),
        &[("updated", 3), ("unchanged", 0), ("failed", 0)],
    );
    assert_eq!(notes(&sb, "JDoe"), "second");
    assert_eq!(notes(&sb, "BSmith"), "second");
    assert_eq!(sb.user("BSmith")["email"], "bob@example.org");
    // So does the script's own text.
    sb.write_file("map.rhai", NOTE_FROM_FILE.replace("[0];", "[0] + \"!\";"));
    assert_counts(sb.sync_ok(&[]).only(), &[("updated", 3), ("failed", 0)]);
    assert_eq!(notes(&sb, "JDoe"), "second!");
    // And nothing changed: nothing reaches the script.
    configure("script_max_operations = 1000");
    assert_counts(sb.sync_ok(&[]).only(), &[("unchanged", 3), ("failed", 0)]);
}

#[test]
fn an_endless_mapping_script_fails_the_run_by_its_operation_budget() {
    let sb = mapped_csv(
        "fn map(e) {\n    let n = 0;\n    loop { n += 1; }\n}",
        "mapping = \"map.rhai\"",
    );
    let before = sb.db_state();
    let s = sb.sync(&[]);
    let m = s.only()["message"].as_str().unwrap().to_string();
    // Rhai gives the operation limit inside a called function no position.
    assert!(
        m.contains("map.rhai: too many operations") && m.contains("(in map)"),
        "{m}"
    );
    assert_eq!(sb.db_state(), before);
}

#[test]
fn a_mapping_script_with_a_syntax_error_fails_before_the_run() {
    let sb = mapped_csv("fn map(e) {\n    e.x = ;\n}", "mapping = \"map.rhai\"");
    let s = sb.sync(&[]);
    assert_eq!(s.code(), 2, "a config error\n{}", describe(&s.out));
    let m = s.only()["message"].as_str().unwrap().to_string();
    assert!(m.contains("map.rhai:2:11"), "{m}");
    assert!(sb.users_by_name().is_empty());
}

#[test]
fn script_check_reports_positions() {
    let sb = sandbox();
    sb.write_file("good.rhai", MAP);
    sb.write_file("bad.rhai", "fn map(e) {\n    e.username = ;\n}\n");
    let out = sb.roster(&["script", "check", "good.rhai"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let out = sb.roster(&["script", "check", "bad.rhai"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    assert!(
        stderr(&out).contains("bad.rhai:2:18:"),
        "{}",
        describe(&out)
    );
}

#[test]
fn script_run_shows_a_source_script_s_users_without_touching_the_database() {
    let sb = sandbox();
    sb.write_file(
        "hr.rhai",
        r#"emit_user(#{ username: "ann", full_name: "Ann A", member_of: ["g"] });
           emit_group(#{ id: "g", name: "Staff" });"#,
    );
    sb.write_config(&config(&[script_source("", "")]));
    let v = sb.json(&["script", "run", "hr.rhai", "--json"]);
    let entries = v.as_array().unwrap();
    let ann = entries.iter().find(|e| e["kind"] == "user").unwrap();
    assert_eq!(ann["user"]["username"], "ann");
    assert_eq!(ann["user"]["full_name"], "Ann A");
    assert!(entries
        .iter()
        .any(|e| e["kind"] == "group" && e["group"] == "Staff"));
    // With the source's config too.
    let v = sb.json(&["script", "run", "hr.rhai", "--source", "hr", "--json"]);
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert!(
        !sb.db_path().exists(),
        "script run must not create the database"
    );
}

#[test]
fn script_run_maps_sample_entries() {
    let sb = sandbox();
    sb.write_file("map.rhai", MAP);
    sb.write_file(
        "entries.json",
        r#"[{"username": "JDoe", "given": "Jane", "sn": "Doe"}, {"username": "svc-x"}]"#,
    );
    let out = sb.roster(&[
        "script",
        "run",
        "map.rhai",
        "--input",
        "entries.json",
        "--json",
    ]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = v.as_array().unwrap();
    assert_eq!(e[0]["kind"], "user");
    assert_eq!(e[0]["user"]["username"], "jdoe");
    assert_eq!(strs(&e[0]["user"]["aliases"]), ["doe.jane", "jane.doe"]);
    assert_eq!(e[1]["kind"], "dropped");
    // The table form.
    let out = sb.roster(&["script", "run", "map.rhai", "--input", "entries.json"]);
    let text = stdout(&out);
    assert!(text.contains("jdoe") && text.contains("dropped"), "{text}");
}

#[test]
fn plugin_inspect_shows_the_list_key_types() {
    let sb = sandbox();
    sb.write_config(&config(&[]));
    let out = sb.roster(&["plugin", "inspect", "script"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let text = stdout(&out);
    assert!(
        text.contains("list of files") && text.contains("list of urls"),
        "{text}"
    );
}

#[test]
fn a_files_key_must_be_a_list() {
    let sb = sandbox();
    sb.write_file("hr.rhai", "");
    sb.write_config(&config(&[script_source("", "files = \"one.txt\"")]));
    let s = sb.sync(&[]);
    assert_eq!(s.code(), 2, "{}", describe(&s.out));
    let m = s.only()["message"].as_str().unwrap().to_string();
    assert!(
        m.contains("sources.hr.config.files: expected a list of paths"),
        "{m}"
    );
}

#[test]
fn ldap_search_reads_the_source_s_connection() {
    use common::slapd::{self, Slapd, PEOPLE, ROOT_DN, ROOT_PW, SUFFIX};
    let mut ldif = format!(
        "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
         dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n"
    );
    for (uid, cn, mail) in [
        ("ann", "Ann Archer", "ann@example.test"),
        ("ben", "Ben Baker", "ben@example.test"),
        ("svc-print", "Print Service", "print@example.test"),
    ] {
        ldif.push('\n');
        slapd::ldif_line(&mut ldif, "dn", &format!("uid={uid},{PEOPLE}"));
        ldif.push_str("objectClass: inetOrgPerson\n");
        slapd::ldif_line(&mut ldif, "uid", uid);
        slapd::ldif_line(&mut ldif, "cn", cn);
        slapd::ldif_line(&mut ldif, "sn", cn.split(' ').next_back().unwrap());
        slapd::ldif_line(&mut ldif, "mail", mail);
    }
    let server = Slapd::start(&ldif);
    let sb = sandbox();
    sb.write_file(
        "hr.rhai",
        r#"for e in ldap_search("(&(objectClass=inetOrgPerson)(!(uid=svc-*)))", ["uid", "cn", "mail"]) {
               emit_user(#{ id: e.dn, username: e.uid, full_name: e.cn, email: e.mail });
           }"#,
    );
    sb.write_config(&config(&[script_source(
        "",
        &format!(
            "url = \"{}\"\nbind_dn = \"{ROOT_DN}\"\npassword = \"{ROOT_PW}\"\nbase_dn = \"{SUFFIX}\"",
            server.url
        ),
    )]));
    let run = sb.sync_ok(&[]).only().clone();
    assert_counts(&run, &[("created", 2), ("failed", 0)]);
    assert_eq!(sorted(&["ann", "ben"]), {
        let mut u = sb.users_by_name();
        u.sort();
        u
    });
    assert_eq!(sb.user("ben")["email"], "ben@example.test");
    // Without a connection in the config, ldap_search is denied.
    sb.write_config(&config(&[script_source("", "")]));
    let s = sb.sync(&[]);
    let m = s.only()["message"].as_str().unwrap_or_default().to_string();
    assert!(m.contains("hr.rhai:1:") && m.contains("ldap"), "{m}");
}
