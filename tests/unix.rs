//! The Unix and NIS connector end to end: `roster` reading real passwd and group files (this
//! machine's own, `getent` output, and files with the defects found in the wild).

mod common;

use common::*;
use serde_json::Value;
use std::collections::HashMap;

/// A config with one `unix` source `nis` and its keys.
fn unix_config(config: &str, options: &str) -> String {
    common::config(&[format!(
        "[sources.nis]\nplugin = \"unix\"\nmax_deletions = \"100%\"\n{options}\n\
         [sources.nis.config]\n{config}\n"
    )])
}

fn sandbox(config: &str, options: &str) -> Sandbox {
    let sb = Sandbox::new();
    sb.write_config(&unix_config(config, options));
    sb
}

fn errors(run: &Value) -> Vec<(String, String)> {
    (run["errors"].as_array())
        .unwrap_or_else(|| panic!("no errors array: {run:#}"))
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
            (s("entry"), s("reason"))
        })
        .collect()
}

/// (name, uid, gid, gecos, shell) of every account of a passwd text, parsed independently.
fn accounts(text: &str) -> Vec<(String, u32, u32, String, String)> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            assert_eq!(f.len(), 7, "{l}");
            let n = |s: &str| s.parse().unwrap();
            (f[0].into(), n(f[2]), n(f[3]), f[4].into(), f[6].into())
        })
        .collect()
}

/// gid → name, and login → supplementary group names, of a group text.
fn groups_of(text: &str) -> (HashMap<u32, String>, HashMap<String, Vec<String>>) {
    let (mut names, mut members) = (HashMap::new(), HashMap::<String, Vec<String>>::new());
    for l in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let f: Vec<&str> = l.split(':').collect();
        names
            .entry(f[2].parse().unwrap())
            .or_insert(f[0].to_string());
        for m in f[3].split(',').filter(|m| !m.is_empty()) {
            members
                .entry(m.to_string())
                .or_default()
                .push(f[0].to_string());
        }
    }
    (names, members)
}

/// Syncs `passwd` and `group` texts with every account in range and checks each user
/// against the files: the login, the GECOS name, active by shell, primary and supplementary
/// groups.
fn check_against(passwd_text: &str, group_text: &str) {
    let sb = sandbox(
        "passwd = \"passwd\"\ngroup = \"group\"\nmin_uid = 0\nexclude_users = []",
        "",
    );
    sb.write_file("passwd", passwd_text);
    sb.write_file("group", group_text);
    let s = sb.sync_ok(&[]);
    let expected = accounts(passwd_text);
    assert_counts(
        s.only(),
        &[("created", expected.len() as u64), ("failed", 0)],
    );
    let (gnames, supplementary) = groups_of(group_text);
    let users = sb.users();
    assert_eq!(users.len(), expected.len());
    let nologin = ["/usr/sbin/nologin", "/sbin/nologin", "/bin/false"];
    for (name, _, gid, gecos, shell) in &expected {
        let u = find_user(&users, name).unwrap_or_else(|| panic!("{name} not imported"));
        let full = gecos.split(',').next().unwrap_or("").trim();
        if full.is_empty() {
            assert!(u["full_name"].is_null(), "{u}");
        } else {
            assert_eq!(u["full_name"], full.replace('&', &capitalise(name)), "{u}");
        }
        assert_eq!(u["active"], !nologin.contains(&shell.as_str()), "{u}");
        let mut want: Vec<String> = gnames.get(gid).into_iter().cloned().collect();
        want.extend(supplementary.get(name).into_iter().flatten().cloned());
        want.sort();
        want.dedup();
        assert_eq!(strs(&u["groups"]), want, "{name}");
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

#[test]
fn this_machines_own_passwd_and_group_files() {
    let read = |p| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{p}: {e}"));
    check_against(&read("/etc/passwd"), &read("/etc/group"));
}

#[test]
fn getent_output_saved_from_this_machine() {
    let getent = |db: &str| {
        let out = std::process::Command::new("getent")
            .arg(db)
            .output()
            .unwrap_or_else(|e| panic!("getent {db}: {e}"));
        assert!(out.status.success(), "getent {db}: {}", describe(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    check_against(&getent("passwd"), &getent("group"));
}

const GROUP: &str = "\
root:x:0:
staff:x:50:alice,bob,zofie
users:x:100:
it:x:60:carol,alice
broken line without colons
printers:*:70:
";

const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
alice:x:1000:100:Alice Smith,B-12,+420 555 100 200,555 0199,:/home/alice:/bin/bash
bob:x:1001:100:Bob Jones:/home/bob:/usr/sbin/nologin
carol:x:1002:60:Carol White,,,:/home/carol:/bin/zsh
dave:x:10o3:100:Dave:/home/dave:/bin/bash
eve:x:1004:100:Eve:/home/eve
zofie:x:1005:100:Žofie Nováková,C-3:/home/zofie:/bin/bash
toor:x:1000:100:Second root:/home/toor:/bin/bash
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
+::::::
";

#[test]
fn a_nis_export_with_gecos_groups_broken_lines_and_a_duplicate_uid() {
    let sb = sandbox("passwd = \"passwd\"\ngroup = \"group\"", "");
    sb.write_file("passwd", PASSWD);
    sb.write_file("group", GROUP);
    let s = sb.sync_ok(&[]);
    let run = s.only();
    // alice, bob, carol, zofie; dave, eve, toor and a group line fail; the rest is out of range.
    assert_counts(run, &[("created", 4), ("failed", 4)]);
    assert_eq!(
        errors(run),
        [
            (
                "group line 5".into(),
                "1 fields where group has 4 (name:password:gid:members)".into()
            ),
            (
                "passwd line 6".into(),
                "uid \"10o3\" is not a number".into()
            ),
            (
                "passwd line 7".into(),
                "6 fields where passwd has 7 (name:password:uid:gid:gecos:home:shell)".into()
            ),
            (
                "passwd line 9".into(),
                "duplicate uid 1000 (first at passwd line 3); with anchor = \"username\" both \
                 accounts are imported"
                    .into()
            ),
        ]
    );
    assert_eq!(sb.users_by_name(), ["alice", "bob", "carol", "zofie"]);
    let alice = sb.user("alice");
    assert_eq!(alice["full_name"], "Alice Smith");
    assert_eq!(alice["phone"], "+420 555 100 200");
    assert_eq!(alice["active"], true);
    assert_eq!(strs(&alice["groups"]), ["it", "staff", "users"]);
    assert_eq!(sb.user("bob")["active"], false, "nologin: inactive");
    assert_eq!(strs(&sb.user("carol")["groups"]), ["it"]);
    assert_eq!(sb.user("zofie")["full_name"], "Žofie Nováková");
    // Only the groups someone imported is in.
    let groups: Vec<String> = (sb.groups().iter())
        .map(|g| g["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(groups, ["it", "staff", "users"]);

    // The same users under the login as anchor: toor is a user of its own.
    let sb2 = sandbox(
        "passwd = \"passwd\"\ngroup = \"group\"\nanchor = \"username\"",
        "",
    );
    sb2.write_file("passwd", PASSWD);
    sb2.write_file("group", GROUP);
    let s = sb2.sync_ok(&[]);
    assert_counts(s.only(), &[("created", 5), ("failed", 3)]);
}

#[test]
fn the_uid_anchor_follows_a_renamed_login_and_later_runs_apply_changes() {
    let sb = sandbox(
        "passwd = \"passwd\"\ngroup = \"group\"",
        "pair_by = \"anchor\"",
    );
    sb.write_file(
        "passwd",
        "alice:x:1000:100:Alice:/h:/bin/bash\nbob:x:1001:100:Bob:/h:/bin/bash\n",
    );
    sb.write_file("group", "users:x:100:\nstaff:x:50:bob\n");
    sb.sync_ok(&[]);
    let id = sb.user("alice")["id"].clone();
    // alice is renamed asmith and locked out; bob leaves staff and the file.
    sb.write_file(
        "passwd",
        "asmith:x:1000:100:Alice Smith:/h:/usr/sbin/nologin\n",
    );
    sb.write_file("group", "users:x:100:\nstaff:x:50:\n");
    let s = sb.sync_ok(&[]);
    assert_counts(s.only(), &[("updated", 1), ("deactivated", 1)]);
    let a = sb.user("asmith");
    assert_eq!(
        (a["id"].clone(), a["active"].clone()),
        (id, Value::Bool(false))
    );
    assert_eq!(a["full_name"], "Alice Smith");
    assert_eq!(sb.user("bob")["active"], false);
    // Unchanged files: nothing changes.
    let before = sb.db_state();
    let s = sb.sync_ok(&[]);
    assert_counts(
        s.only(),
        &[("updated", 0), ("created", 0), ("deactivated", 0)],
    );
    assert_eq!(sb.db_state(), before);
}

#[test]
fn shadow_files_missing_files_and_bad_keys_are_config_errors() {
    let sb = sandbox("passwd = \"/etc/shadow\"", "");
    let s = sb.sync(&[]);
    assert_ne!(code(&s.out), 0);
    let text = describe(&s.out);
    assert!(text.contains("is a shadow file"), "{text}");
    assert!(!text.contains("root:"), "{text}");

    let sb = sandbox("passwd = \"missing-passwd\"", "");
    let s = sb.sync(&[]);
    assert_ne!(code(&s.out), 0);
    assert!(
        describe(&s.out).contains("missing-passwd: not found"),
        "{}",
        describe(&s.out)
    );
    assert!(sb.users().is_empty());

    let sb = sandbox("passwd = \"passwd\"\nanchor = \"dn\"", "");
    sb.write_file("passwd", "alice:x:1000:100::/h:/bin/sh\n");
    let s = sb.sync(&[]);
    assert_ne!(code(&s.out), 0);
    assert!(
        describe(&s.out).contains("anchor: expected"),
        "{}",
        describe(&s.out)
    );
}

#[test]
fn sources_test_counts_and_shows_a_sample() {
    let sb = sandbox("passwd = \"passwd\"\ngroup = \"group\"", "");
    sb.write_file("passwd", PASSWD);
    sb.write_file("group", GROUP);
    let out = sb.roster_ok(&["sources", "test", "nis"]);
    let text = stdout(&out);
    assert!(text.contains("alice"), "{}", describe(&out));
    assert!(text.contains('4'), "{}", describe(&out));
    assert!(sb.users().is_empty(), "sources test writes no users");
}
