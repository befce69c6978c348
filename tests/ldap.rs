//! End-to-end tests of the built-in LDAP connector against a throwaway slapd (Debian's
//! OpenLDAP): 10,000 inetOrgPerson users with non-ASCII names among them, groupOfNames
//! groups with one nested in another, a posixGroup, an entry without a uid; full and delta
//! runs; failures that must leave the database as it was.

mod common;

use common::slapd::{self, Slapd, GROUPS, PEOPLE};
use common::*;
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// 10,000 users with a uid; the one without is a failed entry.
const USERS: u64 = 10_000;

fn standard() -> Slapd {
    Slapd::start(&slapd::directory_ldif())
}

/// A sandbox with one OpenLDAP source `dir` on `server`.
fn sandbox(server: &Slapd, options: &str, config: &str) -> Sandbox {
    let sb = Sandbox::new();
    sb.write_config(&common::config(&[server.source("dir", options, config)]));
    sb
}

/// (path, parent, direct user members) of every group.
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

fn group(path: &str, parent: Option<&str>, members: u64) -> (String, Option<String>, u64) {
    (path.to_string(), parent.map(String::from), members)
}

fn groups_of(sb: &Sandbox, user: &str) -> Vec<String> {
    strs(&sb.user(user)["groups"])
}

fn errors(run: &Value) -> Vec<(String, String)> {
    run["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors array: {run:#}"))
        .iter()
        .map(|e| {
            (
                e["entry"].as_str().unwrap_or("").to_string(),
                e["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn notices(sb: &Sandbox) -> Vec<String> {
    let runs = sb.runs();
    strs(&runs[0]["notices"])
}

#[test]
fn full_sync_imports_ten_thousand_users_with_groups_and_non_ascii_names() {
    let server = standard();
    let sb = sandbox(&server, "", "");
    let s = sb.sync_ok(&[]);
    let run = s.only();
    assert_eq!(run["mode"], "full", "{run:#}");
    assert_counts(run, &[("created", USERS), ("failed", 1), ("updated", 0)]);
    // The entry without a uid is a failed entry located by its DN; the rest committed.
    let errs = errors(run);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].0, format!("cn=No Uid,{PEOPLE}"));
    assert!(
        errs[0].1.contains("no username") && errs[0].1.contains("uid"),
        "{errs:?}"
    );

    let users = sb.users();
    assert_eq!(users.len() as u64, USERS);
    let u = find_user(&users, "user00042").unwrap();
    assert_eq!(u["full_name"], "User 00042");
    assert_eq!(u["email"], "user00042@example.test");
    assert_eq!(u["personal_number"], "100042");
    assert_eq!(u["active"], true);
    assert_eq!(u["source"], "dir");
    // Non-ASCII names (base64 in the LDIF) arrive intact.
    let name = |n: &str| find_user(&users, n).unwrap()["full_name"].clone();
    assert_eq!(name("zofie"), "Žofie Nováková");
    assert_eq!(name("jose"), "José Ñúñez");
    assert_eq!(name("yamada"), "太郎 山田");

    // Nesting is the tree: it sits under staff; ops is the posixGroup.
    assert_eq!(
        tree(&sb),
        vec![
            group("ops", None, 5),
            group("sales", None, 10),
            group("staff", None, 10),
            group("staff|it", Some("staff"), 11),
        ]
    );
    assert_eq!(groups_of(&sb, "user00001"), ["staff"]);
    assert_eq!(groups_of(&sb, "user00011"), ["staff|it"]);
    assert_eq!(groups_of(&sb, "zofie"), ["staff|it"]);
    assert_eq!(groups_of(&sb, "user00033"), ["ops"], "memberUid");
    assert!(groups_of(&sb, "user00050").is_empty());

    // Nothing changed: the next run is a delta that changes nothing.
    let before = sb.db_state();
    let s = sb.sync_ok(&[]);
    let run = s.only();
    assert_eq!(run["mode"], "delta", "{run:#}");
    assert_counts(
        run,
        &[
            ("created", 0),
            ("updated", 0),
            ("deactivated", 0),
            ("deleted", 0),
        ],
    );
    assert_eq!(sb.db_state(), before);
}

#[test]
fn groups_scope_takes_members_of_nested_groups_and_filters_narrow_it() {
    let server = standard();
    let staff = format!("cn=staff,{GROUPS}");
    let sb = sandbox(&server, "", &format!("groups = [{}]", toml_str(&staff)));
    let s = sb.sync_ok(&[]);
    assert_counts(s.only(), &[("created", 21), ("failed", 0)]);
    let mut expected: Vec<String> = (1..=20).map(|i| format!("user{i:05}")).collect();
    expected.push("zofie".into());
    expected.sort();
    assert_eq!(sb.users_by_name(), expected);
    assert_eq!(
        tree(&sb),
        vec![
            group("staff", None, 10),
            group("staff|it", Some("staff"), 11)
        ]
    );

    // user_filter narrows the scope further; group_filter can leave groups out.
    let sb = sandbox(
        &server,
        "",
        &format!(
            "groups = [{}]\nuser_filter = \"(&(objectClass=inetOrgPerson)(!(uid=user00002)))\"",
            toml_str(&staff)
        ),
    );
    sb.sync_ok(&[]);
    assert_eq!(sb.users().len(), 20);
    assert!(find_user(&sb.users(), "user00002").is_none());

    let sb = sandbox(&server, "", "group_filter = \"(objectClass=posixGroup)\"");
    sb.sync_ok(&[]);
    assert_eq!(tree(&sb), vec![group("ops", None, 5)]);

    // A scope group that does not exist fails the run instead of importing nobody.
    let sb = sandbox(&server, "", "groups = [\"cn=nosuch,dc=example,dc=test\"]");
    let s = sb.sync(&[]);
    assert_ne!(s.code(), 0, "{}", describe(&s.out));
    assert_eq!(s.only()["status"], "failed");
    let msg = s.only()["message"].as_str().unwrap_or("").to_string();
    assert!(msg.contains("cn=nosuch"), "{msg}");
    assert!(sb.users().is_empty());
}

#[test]
fn map_templates_use_ldap_attributes() {
    let server = standard();
    let sb = sandbox(
        &server,
        "[sources.dir.map]\nfull_name = \"%sn%, %givenName%\"\naliases = [\"%givenName%.%sn%\"]\n",
        "",
    );
    sb.sync_ok(&[]);
    let z = sb.user("zofie");
    assert_eq!(z["full_name"], "Nováková, Žofie");
    assert_eq!(strs(&z["aliases"]), ["Žofie.Nováková"]);
    // And a config key moves a field's default to another attribute.
    let sb = sandbox(
        &server,
        "",
        "username_attribute = \"mail\"\ngroup_filter = \"\"",
    );
    let s = sb.sync_ok(&[]);
    assert_counts(s.only(), &[("created", USERS), ("failed", 1)]);
    assert!(find_user(&sb.users(), "user00007@example.test").is_some());

    // `sources test` connects, counts and shows a mapped sample.
    let out = sb.roster_ok(&["sources", "test", "dir"]);
    let text = stdout(&out);
    assert!(text.contains("10000"), "{text}");
    assert!(text.contains("@example.test"), "a mapped sample: {text}");
}

#[test]
fn delta_runs_read_changes_and_end_equal_to_a_full_run() {
    let server = standard();
    let sb = sandbox(&server, "", "");
    sb.sync_ok(&[]);

    server.modify(&format!(
        "dn: uid=user00005,{PEOPLE}\nchangetype: modify\nreplace: mail\nmail: new5@example.test\n\n\
         dn: uid=newbie,{PEOPLE}\nchangetype: add\nobjectClass: inetOrgPerson\nuid: newbie\n\
         cn: New Bie\nsn: Bie\nmail: newbie@example.test\n"
    ));
    let s = sb.sync_ok(&[]);
    let run = s.only();
    assert_eq!(run["mode"], "delta", "{run:#}");
    assert_counts(
        run,
        &[
            ("created", 1),
            ("updated", 1),
            ("deactivated", 0),
            ("deleted", 0),
        ],
    );
    // Only the changes (and entries at the high-water mark) were read.
    assert!(
        run["unchanged"].as_u64().unwrap() < 10,
        "a delta read the whole directory: {run:#}"
    );
    assert!(
        notices(&sb).iter().any(|n| n.contains("deletions")),
        "{:?}",
        notices(&sb)
    );
    assert_eq!(sb.user("user00005")["email"], "new5@example.test");

    let fresh = sandbox(&server, "", "");
    fresh.sync_ok(&[]);
    assert_eq!(
        sb.db_state(),
        fresh.db_state(),
        "delta result differs from a full run"
    );

    // A delete is not visible to a delta; a membership change makes the next run full, which
    // applies both.
    server.modify(&format!(
        "dn: uid=user00100,{PEOPLE}\nchangetype: delete\n\n\
         dn: cn=sales,{GROUPS}\nchangetype: modify\nadd: member\nmember: uid=user00040,{PEOPLE}\n"
    ));
    let s = sb.sync_ok(&[]);
    let run = s.only();
    assert_eq!(run["mode"], "full", "{run:#}");
    assert_counts(run, &[("deactivated", 1), ("created", 0)]);
    assert!(
        notices(&sb).iter().any(|n| n.contains("group")),
        "the run log says why it ran full: {:?}",
        notices(&sb)
    );
    assert_eq!(groups_of(&sb, "user00040"), ["sales"]);
    assert_eq!(sb.user("user00100")["active"], false);
    let fresh = sandbox(&server, "", "");
    fresh.sync_ok(&[]);
    assert_eq!(sb.active_users(), fresh.active_users());
    assert_eq!(sb.groups(), fresh.groups());
}

/// A synced sandbox, then the same source with `config` lines changed: the sync must fail
/// with a message and leave users and groups as they were. Returns the message and output.
fn fails_unchanged(server: &Slapd, broken: &str) -> (String, String) {
    let sb = sandbox(server, "", "group_filter = \"\"");
    sb.sync_ok(&[]);
    let before = sb.db_state();
    sb.write_config(&common::config(&[broken.to_string()]));
    let s = sb.sync(&[]);
    assert_ne!(s.code(), 0, "{}", describe(&s.out));
    let run = s.only();
    assert_eq!(run["status"], "failed", "{run:#}");
    let msg = run["message"].as_str().unwrap_or("").to_string();
    assert!(!msg.trim().is_empty(), "no message: {run:#}");
    assert_eq!(sb.db_state(), before, "a failed run changed the database");
    assert_eq!(sb.runs()[0]["status"], "failed");
    (msg, format!("{}\n{}", stdout(&s.out), stderr(&s.out)))
}

fn broken_source(url: &str, password: &str, base: &str) -> String {
    format!(
        "[sources.dir]\nplugin = \"ldap\"\nmax_deletions = \"100%\"\n[sources.dir.config]\n\
         url = \"{url}\"\nbind_dn = \"{}\"\npassword = \"{password}\"\nbase_dn = \"{base}\"\n\
         profile = \"openldap\"\ngroup_filter = \"\"\ntimeout = \"5s\"\n",
        slapd::ROOT_DN
    )
}

#[test]
fn wrong_password_fails_without_showing_it() {
    let server = standard();
    let wrong = "Wr0ng-Passw0rd-xyzzy";
    let (msg, all) = fails_unchanged(&server, &broken_source(&server.url, wrong, slapd::SUFFIX));
    let lower = msg.to_lowercase();
    assert!(
        lower.contains("credentials") || lower.contains("password"),
        "{msg}"
    );
    assert!(!all.contains(wrong), "the password was shown:\n{all}");
}

#[test]
fn unreachable_host_fails() {
    let server = standard();
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (msg, _) = fails_unchanged(
        &server,
        &broken_source(
            &format!("ldap://127.0.0.1:{port}/"),
            slapd::ROOT_PW,
            slapd::SUFFIX,
        ),
    );
    assert!(msg.contains(&port.to_string()), "names the server: {msg}");
}

#[test]
fn missing_base_dn_fails() {
    let server = standard();
    let base = "ou=nowhere,dc=example,dc=test";
    let (msg, _) = fails_unchanged(&server, &broken_source(&server.url, slapd::ROOT_PW, base));
    assert!(msg.contains("ou=nowhere"), "names the base: {msg}");
}

/// Polls `runs list` until a run shows as running; false if the sync ended first.
fn wait_for_running(sb: &Sandbox, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        let out = sb.roster(&["runs", "list", "--json"]);
        if let Ok(Value::Array(runs)) = serde_json::from_slice::<Value>(&out.stdout) {
            if runs.iter().any(|r| r["status"] == "running") {
                return true;
            }
        }
        assert!(Instant::now() < deadline, "no run appeared as running");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn server_killed_mid_run_fails_and_changes_nothing() {
    let mut server = standard();
    let sb = sandbox(&server, "", "");
    sb.sync_ok(&[]);
    let before = sb.db_state();
    // Tiny pages make the listing thousands of round trips: the kill lands inside it.
    sb.write_config(&common::config(&[server.source(
        "dir",
        "",
        "page_size = 2\nfull_sync_every = \"0\"\ntimeout = \"5s\"",
    )]));
    let mut child: Child = Command::new(roster_bin())
        .current_dir(sb.root())
        .env("ROSTER_CONFIG", sb.config_path())
        .env_remove("RUST_LOG")
        .args(["sync", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn roster sync");
    assert!(
        wait_for_running(&sb, &mut child),
        "the sync ended before its run was seen running: {:?}",
        child.wait_with_output().map(|o| describe(&o))
    );
    server.kill();
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let runs: Value = serde_json::from_slice(&out.stdout).expect("sync --json output");
    let run = &runs[0];
    assert_eq!(run["status"], "failed", "{run:#}");
    assert!(
        !run["message"].as_str().unwrap_or("").trim().is_empty(),
        "{run:#}"
    );
    assert_eq!(sb.db_state(), before);
}

/// Three people (ann, bob, cyd) and a group of ann: small, so a slapd per case is cheap.
fn small_ldif() -> String {
    let mut s = format!(
        "dn: {}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
         dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n",
        slapd::SUFFIX
    );
    for uid in ["ann", "bob", "cyd"] {
        s.push_str(&format!(
            "\ndn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\n\
             sn: {uid}\nmail: {uid}@example.test\n"
        ));
    }
    s.push_str(&format!(
        "\ndn: cn=staff,{GROUPS}\nobjectClass: groupOfNames\ncn: staff\nmember: uid=ann,{PEOPLE}\n"
    ));
    s
}

/// Changes bob, adds dee, deletes cyd.
fn change_small(server: &Slapd) {
    server.modify(&format!(
        "dn: uid=bob,{PEOPLE}\nchangetype: modify\nreplace: mail\nmail: robert@example.test\n\n\
         dn: uid=dee,{PEOPLE}\nchangetype: add\nobjectClass: inetOrgPerson\nuid: dee\ncn: dee\n\
         sn: dee\nmail: dee@example.test\n\n\
         dn: uid=cyd,{PEOPLE}\nchangetype: delete\n"
    ));
}

#[test]
fn with_syncprov_a_delta_run_sees_deletions_through_content_synchronization() {
    let server = Slapd::start_syncprov(&small_ldif(), true);
    let sb = sandbox(&server, "", "");
    let text = stdout(&sb.roster_ok(&["sources", "test", "dir"]));
    assert!(
        text.contains("content synchronization (RFC 4533)"),
        "{text}"
    );
    sb.sync_ok(&[]);
    assert_eq!(sb.active_users().len(), 3);

    change_small(&server);
    let s = sb.sync_ok(&[]);
    let run = s.only();
    assert_eq!(run["mode"], "delta", "{run:#}");
    assert_counts(run, &[("created", 1), ("updated", 1), ("deactivated", 1)]);
    assert!(
        notices(&sb)
            .iter()
            .any(|n| n.contains("delta by content synchronization") && n.contains("1 deletions")),
        "{:?}",
        notices(&sb)
    );
    assert_eq!(sb.user("cyd")["active"], false);
    assert_eq!(sb.user("bob")["email"], "robert@example.test");
    assert_eq!(groups_of(&sb, "ann"), ["staff"]);

    // Nothing changed: a delta that reads nothing; then the same as a fresh full run.
    let s = sb.sync_ok(&[]);
    let run = s.only();
    assert_eq!(run["mode"], "delta", "{run:#}");
    assert_counts(run, &[("created", 0), ("updated", 0), ("deactivated", 0)]);
    let fresh = sandbox(&server, "", "");
    fresh.sync_ok(&[]);
    assert_eq!(sb.active_users(), fresh.active_users());
}

#[test]
fn without_a_session_log_or_syncprov_deltas_say_deletions_wait_for_a_full_run() {
    // syncprov without a session log answers with the entries still present.
    let server = Slapd::start_syncprov(&small_ldif(), false);
    let sb = sandbox(&server, "", "");
    sb.sync_ok(&[]);
    change_small(&server);
    let s = sb.sync_ok(&[]);
    let run = s.only();
    assert_eq!(run["mode"], "delta", "{run:#}");
    assert_counts(run, &[("created", 1), ("updated", 1)]);
    assert!(
        notices(&sb).iter().any(|n| n.contains("present entries")),
        "{:?}",
        notices(&sb)
    );
    assert_eq!(sb.user("bob")["email"], "robert@example.test");

    // No syncprov: modifyTimestamp, and the run says so.
    let server = Slapd::start(&small_ldif());
    let sb = sandbox(&server, "", "");
    let text = stdout(&sb.roster_ok(&["sources", "test", "dir"]));
    assert!(text.contains("delta runs: modifyTimestamp"), "{text}");
    sb.sync_ok(&[]);
    change_small(&server);
    let s = sb.sync_ok(&[]);
    assert_eq!(s.only()["mode"], "delta");
    assert!(
        notices(&sb)
            .iter()
            .any(|n| n.contains("delta by modifyTimestamp") && n.contains("deletions")),
        "{:?}",
        notices(&sb)
    );
    assert_eq!(
        sb.user("cyd")["active"],
        true,
        "a delete waits for a full run"
    );
}
