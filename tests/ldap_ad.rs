//! End-to-end tests of the LDAP connector's Active Directory profile against a real Samba AD
//! domain controller (issue #11).
//!
//! Samba listens on fixed ports (389/636), so one domain controller serves the whole suite:
//! the single test [`samba_ad_dc`] provisions it, loads the directory below, and runs the
//! scenarios of [`SCENARIOS`] one after the other, each in a fresh roster sandbox. A failing
//! scenario does not stop the others; the test fails at the end naming every failed one
//! (each panic message is printed where it happens). Scenarios that change the directory
//! work in an OU of their own below `OU=Churn`, so the order only matters for time.
//!
//! `ROSTER_AD_SCENARIOS=name,name` runs only the named scenarios (for development; the
//! domain controller is still provisioned and loaded in full).
//!
//! The directory (`DC=example,DC=test`):
//!
//! ```text
//! OU=Roster
//!   OU=People   20 enabled users (displayName, mail, employeeID; tnodisplay has only a cn)
//!               + dduck, disabled (userAccountControl 514)
//!   OU=Groups   Staff ⊃ {asmith, IT, Sales}; IT ⊃ {bjones, cwhite, dgreen, eblack, dduck, Dev};
//!               Dev ⊃ {fbrown, gking}; Sales ⊃ {hlee, iwood, jhill}; Big ⊃ all of OU=Big
//!   OU=Big      1,600 users bulk0001..bulk1600
//! OU=Churn      one OU per scenario that renames, deletes or adds entries
//! ```

mod common;

use common::samba::{self, SambaDc, LDAPS_URL, LDAP_URL};
use common::*;
use serde_json::Value;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

const ROSTER_OU: &str = "OU=Roster,DC=example,DC=test";
const PEOPLE_OU: &str = "OU=People,OU=Roster,DC=example,DC=test";
const GROUPS_OU: &str = "OU=Groups,OU=Roster,DC=example,DC=test";
const BIG_OU: &str = "OU=Big,OU=Roster,DC=example,DC=test";
const CHURN_OU: &str = "OU=Churn,DC=example,DC=test";
const BIG_MEMBERS: usize = 1600;

/// userAccountControl: NORMAL_ACCOUNT | PASSWD_NOTREQD (enabled, no password needed) and
/// the same plus ACCOUNTDISABLE (0x2).
const UAC_ENABLED: u32 = 544;
const UAC_DISABLED: u32 = 514;

/// The people of OU=People: sAMAccountName, given name, surname, employeeID.
const PEOPLE: &[(&str, &str, &str, &str)] = &[
    ("asmith", "Alice", "Smith", "E1001"),
    ("bjones", "Bob", "Jones", "E1002"),
    ("cwhite", "Carol", "White", "E1003"),
    ("dgreen", "Dan", "Green", "E1004"),
    ("eblack", "Eve", "Black", "E1005"),
    ("fbrown", "Frank", "Brown", "E1006"),
    ("gking", "Grace", "King", "E1007"),
    ("hlee", "Henry", "Lee", "E1008"),
    ("iwood", "Ivy", "Wood", "E1009"),
    ("jhill", "Jack", "Hill", "E1010"),
    ("kmoore", "Kate", "Moore", "E1011"),
    ("lclark", "Liam", "Clark", "E1012"),
    ("mhall", "Mia", "Hall", "E1013"),
    ("nyoung", "Noah", "Young", "E1014"),
    ("oallen", "Olivia", "Allen", "E1015"),
    ("pwright", "Paul", "Wright", "E1016"),
    ("qscott", "Quinn", "Scott", "E1017"),
    ("rbaker", "Rose", "Baker", "E1018"),
    ("sadams", "Sam", "Adams", "E1019"),
];
/// The enabled user without displayName, mail or employeeID.
const NODISPLAY: (&str, &str) = ("tnodisplay", "Tom Nodisplay");
/// The disabled user.
const DISABLED: (&str, &str, &str) = ("dduck", "Donald Duck", "E1099");

/// Groups of OU=Groups: name (cn = sAMAccountName), member users, member groups.
const GROUPS: &[(&str, &[&str], &[&str])] = &[
    ("Staff", &["asmith"], &["IT", "Sales"]),
    (
        "IT",
        &["bjones", "cwhite", "dgreen", "eblack", "dduck"],
        &["Dev"],
    ),
    ("Dev", &["fbrown", "gking"], &[]),
    ("Sales", &["hlee", "iwood", "jhill"], &[]),
];

fn cn_of(sam: &str) -> String {
    if sam == NODISPLAY.0 {
        return NODISPLAY.1.to_string();
    }
    if sam == DISABLED.0 {
        return DISABLED.1.to_string();
    }
    let (_, given, sn, _) = PEOPLE.iter().find(|p| p.0 == sam).expect("a person");
    format!("{given} {sn}")
}

fn person_dn(sam: &str) -> String {
    format!("CN={},{PEOPLE_OU}", samba::dn_escape(&cn_of(sam)))
}

fn group_dn(name: &str) -> String {
    format!("CN={name},{GROUPS_OU}")
}

fn bulk_name(i: usize) -> String {
    format!("bulk{i:04}")
}

/// An LDIF user record.
fn user_ldif(
    dn: &str,
    sam: &str,
    display: Option<&str>,
    mail: Option<&str>,
    employee_id: Option<&str>,
    uac: u32,
) -> String {
    let mut s = format!(
        "dn: {dn}\nobjectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\n\
         objectClass: user\nsAMAccountName: {sam}\nuserAccountControl: {uac}\n"
    );
    for (attr, v) in [
        ("displayName", display),
        ("mail", mail),
        ("employeeID", employee_id),
    ] {
        if let Some(v) = v {
            s.push_str(&format!("{attr}: {v}\n"));
        }
    }
    s.push('\n');
    s
}

fn ou_ldif(dn: &str) -> String {
    format!("dn: {dn}\nobjectClass: top\nobjectClass: organizationalUnit\n\n")
}

fn group_ldif(dn: &str, name: &str, members: &[String]) -> String {
    let mut s = format!("dn: {dn}\nobjectClass: top\nobjectClass: group\nsAMAccountName: {name}\n");
    for m in members {
        s.push_str(&format!("member: {m}\n"));
    }
    s.push('\n');
    s
}

/// Loads the directory described in the module documentation.
fn populate(dc: &SambaDc) {
    let mut ldif = String::new();
    for ou in [ROSTER_OU, PEOPLE_OU, GROUPS_OU, BIG_OU, CHURN_OU] {
        ldif.push_str(&ou_ldif(ou));
    }
    for (sam, given, sn, emp) in PEOPLE {
        ldif.push_str(&user_ldif(
            &person_dn(sam),
            sam,
            Some(&format!("{given} {sn}")),
            Some(&format!("{sam}@example.test")),
            Some(emp),
            UAC_ENABLED,
        ));
    }
    ldif.push_str(&user_ldif(
        &person_dn(NODISPLAY.0),
        NODISPLAY.0,
        None,
        None,
        None,
        UAC_ENABLED,
    ));
    ldif.push_str(&user_ldif(
        &person_dn(DISABLED.0),
        DISABLED.0,
        Some(DISABLED.1),
        Some(&format!("{}@example.test", DISABLED.0)),
        Some(DISABLED.2),
        UAC_DISABLED,
    ));
    for i in 1..=BIG_MEMBERS {
        let sam = bulk_name(i);
        ldif.push_str(&user_ldif(
            &format!("CN={sam},{BIG_OU}"),
            &sam,
            Some(&format!("Bulk User {i:04}")),
            Some(&format!("{sam}@example.test")),
            Some(&format!("B{i:04}")),
            UAC_ENABLED,
        ));
    }
    // Groups after their member groups (AD checks that a member exists).
    for (name, users, groups) in GROUPS.iter().rev() {
        let members: Vec<String> = users
            .iter()
            .map(|u| person_dn(u))
            .chain(groups.iter().map(|g| group_dn(g)))
            .collect();
        ldif.push_str(&group_ldif(&group_dn(name), name, &members));
    }
    let big: Vec<String> = (1..=BIG_MEMBERS)
        .map(|i| format!("CN={},{BIG_OU}", bulk_name(i)))
        .collect();
    ldif.push_str(&group_ldif(&group_dn("Big"), "Big", &big));
    dc.add(&ldif);
}

// ---- roster side ---------------------------------------------------------------------

/// A sandbox whose source `ad` reads Samba through the LDAP connector's AD profile.
/// `options` are extra lines of `[sources.ad]`, `config` extra lines of its `.config`.
/// The password is a secret reference to the file `ad-password`.
fn ad_sandbox(base_dn: &str, options: &str, config: &str) -> Sandbox {
    let sb = Sandbox::new();
    sb.write_file("ad-password", samba::ADMIN_PASSWORD);
    write_ad_config(&sb, LDAP_URL, base_dn, options, config);
    sb
}

fn write_ad_config(sb: &Sandbox, url: &str, base_dn: &str, options: &str, config: &str) {
    sb.write_config(&format!(
        "database = \"roster.db\"\n\n\
         [sources.ad]\n\
         plugin = \"ldap\"\n\
         max_deletions = 100\n\
         {options}\n\n\
         [sources.ad.config]\n\
         profile = \"ad\"\n\
         url = {url}\n\
         bind_dn = {bind}\n\
         password = {{ file = \"ad-password\" }}\n\
         base_dn = {base}\n\
         {config}\n",
        url = toml_str(url),
        bind = toml_str(samba::BIND_DN),
        base = toml_str(base_dn),
    ));
}

fn people_usernames() -> Vec<String> {
    let mut v: Vec<String> = PEOPLE.iter().map(|p| p.0.to_string()).collect();
    v.push(NODISPLAY.0.to_string());
    v.sort();
    v
}

/// The roster user id of `username` (read-only look into the database: the CLI shows no
/// ids, and "the same user" means the same row).
fn user_id(sb: &Sandbox, username: &str) -> i64 {
    let ids = sb.db_strings(&format!(
        "SELECT CAST(id AS TEXT) FROM users WHERE username = '{username}'"
    ));
    let id = ids
        .first()
        .unwrap_or_else(|| panic!("no user {username} in the database"));
    id.parse().unwrap()
}

fn group<'a>(groups: &'a [Value], path: &str) -> &'a Value {
    groups
        .iter()
        .find(|g| g["path"] == path)
        .unwrap_or_else(|| {
            panic!(
                "no group {path:?} in {:?}",
                groups.iter().map(|g| g["path"].clone()).collect::<Vec<_>>()
            )
        })
}

fn all_output(out: &std::process::Output) -> String {
    format!("{}{}", stdout(out), stderr(out))
}

// ---- scenarios -----------------------------------------------------------------------

/// The harness alone: the directory holds what `populate` loaded.
fn directory_loaded(dc: &SambaDc) {
    let users = "(&(objectCategory=person)(objectClass=user))";
    assert_eq!(dc.count(PEOPLE_OU, users), PEOPLE.len() + 2);
    assert_eq!(dc.count(BIG_OU, users), BIG_MEMBERS);
    assert_eq!(
        dc.count(
            ROSTER_OU,
            "(&(objectClass=user)(userAccountControl:1.2.840.113556.1.4.803:=2))"
        ),
        1,
        "one disabled user"
    );
    assert_eq!(dc.count(GROUPS_OU, "(objectClass=group)"), GROUPS.len() + 1);
    // Samba 4.17 answers a plain `member` request with all 1,600 values: unlike Windows AD it
    // does not cut at MaxValRange (1500). It does serve explicit ranges.
    assert_eq!(dc.values(&group_dn("Big"), "member").len(), BIG_MEMBERS);
    assert_eq!(
        dc.values(&group_dn("Big"), "member;range=1500-*").len(),
        BIG_MEMBERS - 1500
    );
    // TLS with the harness's CA, as roster's ca_file will use it.
    dc.check_tls(LDAPS_URL, false);
    dc.check_tls(LDAP_URL, true);
    // Nesting as AD resolves it: the transitive members of Staff.
    let transitive = dc.count(
        PEOPLE_OU,
        &format!("(memberOf:1.2.840.113556.1.4.1941:={})", group_dn("Staff")),
    );
    assert_eq!(
        transitive, 11,
        "Staff's transitive user members (dduck too)"
    );
}

/// Full import of OU=Roster: AD-mapped fields, no disabled user, the 1,600-member group
/// complete, nested groups as a tree; a second run changes nothing.
fn full_import(_dc: &SambaDc) {
    let sb = ad_sandbox(ROSTER_OU, "", "");
    let s = sb.sync_ok(&[]);
    let run = s.only();
    assert_counts(
        run,
        &[
            ("created", (PEOPLE.len() + 1 + BIG_MEMBERS) as u64),
            ("failed", 0),
            ("deactivated", 0),
        ],
    );
    assert_eq!(run["mode"], "full", "{run:#}");

    let users = sb.users();
    assert_eq!(users.len(), PEOPLE.len() + 1 + BIG_MEMBERS);
    assert!(
        find_user(&users, DISABLED.0).is_none(),
        "the disabled user is imported although include_disabled is false"
    );
    let alice = find_user(&users, "asmith").expect("asmith");
    assert_eq!(alice["full_name"], "Alice Smith", "{alice:#}");
    assert_eq!(alice["email"], "asmith@example.test", "{alice:#}");
    assert_eq!(alice["personal_number"], "E1001", "{alice:#}");
    assert_eq!(alice["active"], true, "{alice:#}");
    assert_eq!(alice["source"], "ad", "{alice:#}");
    assert_eq!(strs(&alice["groups"]), sorted(&["Staff"]), "{alice:#}");
    // No displayName: full_name falls back to cn.
    let tom = find_user(&users, NODISPLAY.0).expect("tnodisplay");
    assert_eq!(tom["full_name"], NODISPLAY.1, "{tom:#}");
    assert_eq!(tom["email"], Value::Null, "{tom:#}");
    assert_eq!(tom["personal_number"], Value::Null, "{tom:#}");
    assert_eq!(strs(&tom["groups"]), Vec::<String>::new(), "{tom:#}");
    let show = sb.json(&["users", "show", "bulk1600", "--json"]);
    assert_eq!(show["full_name"], "Bulk User 1600", "{show:#}");
    assert_eq!(show["personal_number"], "B1600", "{show:#}");
    assert_eq!(strs(&show["groups"]), sorted(&["Big"]), "{show:#}");

    // Nested groups: a tree by path, each user a direct member of its own group.
    let groups = sb.groups();
    let paths: Vec<&str> = groups.iter().filter_map(|g| g["path"].as_str()).collect();
    assert_eq!(
        paths,
        vec!["Big", "Staff", "Staff|IT", "Staff|IT|Dev", "Staff|Sales"],
        "{groups:#?}"
    );
    assert_eq!(group(&groups, "Staff")["parent"], Value::Null);
    assert_eq!(group(&groups, "Staff|IT")["parent"], "Staff");
    assert_eq!(group(&groups, "Staff|IT|Dev")["parent"], "Staff|IT");
    assert_eq!(group(&groups, "Staff|IT|Dev")["name"], "Dev");
    for (path, n) in [
        ("Staff", 1),
        ("Staff|IT", 4), // dduck is disabled and not imported
        ("Staff|IT|Dev", 2),
        ("Staff|Sales", 3),
        ("Big", BIG_MEMBERS as u64),
    ] {
        assert_eq!(
            group(&groups, path)["members"].as_u64(),
            Some(n),
            "direct members of {path}: {:#}",
            group(&groups, path)
        );
    }
    // Every member of the big group, the ones beyond AD's 1,500-value range too.
    let in_big = users
        .iter()
        .filter(|u| strs(&u["groups"]).contains(&"Big".to_string()))
        .count();
    assert_eq!(in_big, BIG_MEMBERS);
    for (u, g) in [
        ("bjones", "Staff|IT"),
        ("fbrown", "Staff|IT|Dev"),
        ("gking", "Staff|IT|Dev"),
        ("hlee", "Staff|Sales"),
    ] {
        assert_eq!(strs(&sb.user(u)["groups"]), sorted(&[g]), "groups of {u}");
    }

    // Nothing changed in AD: nothing written.
    let before = sb.db_state();
    let again = sb.sync_ok(&[]);
    assert_counts(
        again.only(),
        &[
            ("created", 0),
            ("updated", 0),
            ("deactivated", 0),
            ("deleted", 0),
            ("failed", 0),
        ],
    );
    // The default full_sync_every ("24h"): the second run reads only what changed.
    assert_eq!(again.only()["mode"], "delta", "{:#}", again.only());
    assert_eq!(sb.db_state(), before);
}

/// `include_disabled = true`: the disabled user is imported, inactive.
fn include_disabled(_dc: &SambaDc) {
    let sb = ad_sandbox(PEOPLE_OU, "", "include_disabled = true");
    let s = sb.sync_ok(&[]);
    assert_counts(s.only(), &[("created", PEOPLE.len() as u64 + 2)]);
    let d = sb.user(DISABLED.0);
    assert_eq!(d["active"], false, "{d:#}");
    assert_eq!(d["full_name"], DISABLED.1, "{d:#}");
    assert_eq!(d["personal_number"], DISABLED.2, "{d:#}");
    let active = usernames(&sb.active_users());
    assert!(!active.contains(&DISABLED.0.to_string()), "{active:?}");
    assert_eq!(active, people_usernames());

    // The default on the same database: the disabled user is not listed any more, and it
    // stays inactive (it was never active).
    write_ad_config(&sb, LDAP_URL, PEOPLE_OU, "", "");
    let s = sb.sync_ok(&[]);
    assert_counts(s.only(), &[("created", 0), ("reactivated", 0)]);
    assert_eq!(sb.user(DISABLED.0)["active"], false);
}

/// `groups = [DN]`: only the group's transitive members are imported.
fn group_scope(_dc: &SambaDc) {
    let sb = ad_sandbox(
        ROSTER_OU,
        "",
        &format!("groups = [{}]", toml_str(group_dn("Staff"))),
    );
    sb.sync_ok(&[]);
    assert_eq!(
        sb.users_by_name(),
        sorted(&[
            "asmith", "bjones", "cwhite", "dgreen", "eblack", "fbrown", "gking", "hlee", "iwood",
            "jhill"
        ]),
        "transitive members of Staff (nested IT, Dev, Sales; not the disabled dduck)"
    );
    assert_eq!(
        strs(&sb.user("fbrown")["groups"]),
        sorted(&["Staff|IT|Dev"])
    );

    let sb = ad_sandbox(
        ROSTER_OU,
        "",
        &format!("groups = [{}]", toml_str(group_dn("Dev"))),
    );
    sb.sync_ok(&[]);
    assert_eq!(sb.users_by_name(), sorted(&["fbrown", "gking"]));
}

/// LDAPS with the test CA as `ca_file`; StartTLS with it; `tls_verify = false` without it;
/// and without either the certificate is refused.
fn tls(dc: &SambaDc) {
    let ca = toml_str(dc.ca_file().display().to_string());
    for (what, url, config) in [
        ("ldaps + ca_file", LDAPS_URL, format!("ca_file = {ca}")),
        (
            "starttls + ca_file",
            LDAP_URL,
            format!("starttls = true\nca_file = {ca}"),
        ),
        (
            "ldaps + tls_verify = false",
            LDAPS_URL,
            "tls_verify = false".to_string(),
        ),
    ] {
        let sb = ad_sandbox(PEOPLE_OU, "", "");
        write_ad_config(&sb, url, PEOPLE_OU, "", &config);
        let s = sb.sync(&[]);
        assert_eq!(s.code(), 0, "{what}\n{}", describe(&s.out));
        assert_eq!(s.only()["status"], "ok", "{what}: {:#}", s.only());
        assert_eq!(sb.users_by_name(), people_usernames(), "{what}");
        if config.contains("tls_verify") {
            assert!(
                s.stderr().contains("tls_verify = false"),
                "{what}: no warning that the certificate is not checked\n{}",
                s.stderr()
            );
        }
    }

    let sb = ad_sandbox(PEOPLE_OU, "", "");
    write_ad_config(&sb, LDAPS_URL, PEOPLE_OU, "", "");
    let s = sb.sync(&[]);
    assert_eq!(s.code(), 1, "untrusted certificate\n{}", describe(&s.out));
    let run = s.only();
    assert_eq!(run["status"], "failed", "{run:#}");
    let msg = run["message"].as_str().unwrap_or_default().to_lowercase();
    assert!(
        msg.contains("tls") || msg.contains("certificate"),
        "the failure should name TLS or the certificate: {run:#}"
    );
    assert!(sb.users().is_empty());
}

/// `url` as a list: a server that refuses the connection is skipped for the next one.
fn url_failover(_dc: &SambaDc) {
    let sb = ad_sandbox(PEOPLE_OU, "", "");
    sb.write_config(&std::fs::read_to_string(sb.config_path()).unwrap().replace(
        &format!("url = {}", toml_str(LDAP_URL)),
        &format!("url = [\"ldap://127.0.0.1:1\", {}]", toml_str(LDAP_URL)),
    ));
    assert!(std::fs::read_to_string(sb.config_path())
        .unwrap()
        .contains("ldap://127.0.0.1:1"));
    sb.sync_ok(&[]);
    assert_eq!(sb.users_by_name(), people_usernames());
}

/// A wrong password fails the run, leaves the database as it was and is printed nowhere.
fn wrong_password(_dc: &SambaDc) {
    let sb = ad_sandbox(PEOPLE_OU, "", "");
    sb.sync_ok(&[]);
    let before = sb.db_state();
    let wrong = "Wrong-Secret-4711!";
    sb.write_file("ad-password", wrong);
    let s = sb.sync(&[]);
    assert_eq!(s.code(), 1, "{}", describe(&s.out));
    let run = s.only();
    assert_eq!(run["status"], "failed", "{run:#}");
    let msg = run["message"].as_str().unwrap_or_default().to_lowercase();
    assert!(
        msg.contains("credential") || msg.contains("password") || msg.contains("bind"),
        "the failure should say the bind was refused: {run:#}"
    );
    assert_eq!(sb.db_state(), before, "a failed run changed the database");
    let runs = sb.roster_ok(&["runs", "list", "--json"]);
    let show = sb.roster_ok(&["runs", "show", &id_string(&run["run_id"]), "--json"]);
    for out in [&s.out, &runs, &show] {
        let text = all_output(out);
        for secret in [wrong, samba::ADMIN_PASSWORD] {
            assert!(!text.contains(secret), "a password was printed:\n{text}");
        }
    }
}

/// OU=Churn,… child OU `name` holding users `name1..nameN` (enabled, with mail and employeeID)
/// and returns the OU's DN.
fn churn_ou(dc: &SambaDc, name: &str, users: usize) -> String {
    let ou = format!("OU={name},{CHURN_OU}");
    let mut ldif = ou_ldif(&ou);
    for i in 1..=users {
        let sam = format!("{name}{i}");
        ldif.push_str(&user_ldif(
            &format!("CN={sam},{ou}"),
            &sam,
            Some(&format!("{name} user {i}")),
            Some(&format!("{sam}@example.test")),
            Some(&format!("{name}-{i}")),
            UAC_ENABLED,
        ));
    }
    dc.add(&ldif);
    ou
}

/// A sAMAccountName rename with `pair_by = "anchor"`: the same roster user, renamed.
fn rename_by_anchor(dc: &SambaDc) {
    let ou = churn_ou(dc, "ren", 3);
    let sb = ad_sandbox(&ou, "pair_by = \"anchor\"", "");
    sb.sync_ok(&[]);
    assert_eq!(sb.users_by_name(), sorted(&["ren1", "ren2", "ren3"]));
    let id = user_id(&sb, "ren2");

    dc.modify(&format!(
        "dn: CN=ren2,{ou}\nchangetype: modify\nreplace: sAMAccountName\nsAMAccountName: renamed2\n"
    ));
    let s = sb.sync_ok(&[]);
    assert_counts(
        s.only(),
        &[
            ("created", 0),
            ("updated", 1),
            ("deactivated", 0),
            ("deleted", 0),
        ],
    );
    assert_eq!(sb.users_by_name(), sorted(&["ren1", "ren3", "renamed2"]));
    assert_eq!(user_id(&sb, "renamed2"), id, "the rename made a new user");
    let u = sb.user("renamed2");
    assert_eq!(u["email"], "ren2@example.test", "{u:#}");
    assert_eq!(u["personal_number"], "ren-2", "{u:#}");
    assert_eq!(u["active"], true, "{u:#}");
}

/// A user deleted in AD is deactivated, not deleted: by a full run, and by the next run of
/// a source with the default `full_sync_every` (a delta run after the first one), with the
/// usual `base_dn` of an OU. (AD moves a deleted object to `CN=Deleted Objects` at the top of
/// the domain, outside that OU.)
fn deletion_deactivates(dc: &SambaDc) {
    let ou = churn_ou(dc, "del", 4);
    let full = ad_sandbox(&ou, "", "full_sync_every = \"0\"");
    let default = ad_sandbox(&ou, "", "");
    full.sync_ok(&[]);
    default.sync_ok(&[]);
    dc.delete(&[&format!("CN=del3,{ou}")]);
    // Where the tombstone is: not below the OU any more, but in CN=Deleted Objects.
    let tombstone = "(&(isDeleted=TRUE)(sAMAccountName=del3))";
    let where_ = format!(
        "Show Deleted finds the tombstone {} time(s) below {ou} and {} time(s) below {}",
        dc.count_with_deleted(&ou, tombstone),
        dc.count_with_deleted(samba::BASE_DN, tombstone),
        samba::BASE_DN
    );
    for (which, sb) in [("full", &full), ("default", &default)] {
        let s = sb.sync_ok(&[]);
        let run = s.only();
        assert_counts(run, &[("deleted", 0), ("created", 0)]);
        assert_eq!(
            (
                sb.user("del3")["active"].clone(),
                run["deactivated"].as_u64()
            ),
            (Value::Bool(false), Some(1)),
            "{which} config: the user deleted in AD is not deactivated by a {} run ({where_})\n\
             {run:#}",
            run["mode"]
        );
        assert_eq!(
            usernames(&sb.active_users()),
            sorted(&["del1", "del2", "del4"])
        );
    }
}

/// Adds, changes and deletions in AD, then a delta run (source `a`, the default
/// `full_sync_every`) and a full run (source `b`, `full_sync_every = "0"`), both paired by
/// anchor, over the same
/// directory: both must end with the same users. `base_dn` and `config` are the sources'
/// scope; the users of OU `name` carry `department: name` for a `user_filter` to select.
fn delta_vs_full(dc: &SambaDc, name: &str, base_dn: impl Fn(&str) -> String, config: &str) {
    let ou = format!("OU={name},{CHURN_OU}");
    let dn = |sam: &str| format!("CN={sam},{ou}");
    let mut ldif = ou_ldif(&ou);
    for i in 1..=5 {
        let sam = format!("{name}{i}");
        ldif.push_str(&user_ldif(
            &dn(&sam),
            &sam,
            Some(&format!("{name} user {i}")),
            Some(&format!("{sam}@example.test")),
            Some(&format!("{name}-{i}")),
            UAC_ENABLED,
        ));
    }
    let ldif = ldif.replace(
        "objectClass: user\n",
        &format!("objectClass: user\ndepartment: {name}\n"),
    );
    dc.add(&ldif);
    let base = base_dn(&ou);
    let pair = "pair_by = \"anchor\"";
    let a = ad_sandbox(&base, pair, config);
    let b = ad_sandbox(&base, pair, &format!("{config}\nfull_sync_every = \"0\""));
    for sb in [&a, &b] {
        let s = sb.sync_ok(&[]);
        assert_eq!(s.only()["mode"], "full", "{:#}", s.only());
        let names: Vec<String> = (1..=5).map(|i| format!("{name}{i}")).collect();
        assert_eq!(sb.users_by_name(), names);
    }

    // Add 6, change 2's displayName and mail, delete 3, disable 4, rename 5.
    let (u2, u3, u4, u5, u6) = (
        format!("{name}2"),
        format!("{name}3"),
        format!("{name}4"),
        format!("{name}5"),
        format!("{name}6"),
    );
    dc.add(
        &user_ldif(
            &dn(&u6),
            &u6,
            Some(&format!("{name} user 6")),
            Some(&format!("{u6}@example.test")),
            Some(&format!("{name}-6")),
            UAC_ENABLED,
        )
        .replace(
            "objectClass: user\n",
            &format!("objectClass: user\ndepartment: {name}\n"),
        ),
    );
    dc.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: displayName\ndisplayName: Changed Name\n-\n\
         replace: mail\nmail: changed@example.test\n\n\
         dn: {}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: {UAC_DISABLED}\n\n\
         dn: {}\nchangetype: modify\nreplace: sAMAccountName\nsAMAccountName: {name}5b\n",
        dn(&u2),
        dn(&u4),
        dn(&u5),
    ));
    dc.delete(&[&dn(&u3)]);

    let delta = a.sync_ok(&[]);
    assert_eq!(delta.only()["mode"], "delta", "{:#}", delta.only());
    let full = b.sync_ok(&[]);
    assert_eq!(full.only()["mode"], "full", "{:#}", full.only());

    let expected = [
        (format!("{name}1"), true),
        (u2.clone(), true),
        (u3, false),
        (u4, false),
        (format!("{name}5b"), true),
        (u6, true),
    ];
    for (which, sb, run) in [("full", &b, full.only()), ("delta", &a, delta.only())] {
        let got: Vec<(String, bool)> = sb
            .users()
            .iter()
            .map(|u| {
                (
                    u["username"].as_str().unwrap().to_string(),
                    u["active"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got, expected,
            "{which} run: users and active flags\n{run:#}"
        );
        let u = sb.user(&u2);
        assert_eq!(u["full_name"], "Changed Name", "{which}: {u:#}");
        assert_eq!(u["email"], "changed@example.test", "{which}: {u:#}");
    }
    assert_eq!(
        a.users(),
        b.users(),
        "the delta run and the full run differ"
    );
    assert_eq!(a.groups(), b.groups());
}

/// Delta against full with the OU of the changes as `base_dn` (the usual setup: the
/// directory's users below one OU).
fn delta_equals_full(dc: &SambaDc) {
    delta_vs_full(dc, "dlt", |ou| ou.to_string(), "");
}

/// Delta against full with the domain as `base_dn` and a `user_filter` (deleted objects
/// move to `CN=Deleted Objects` at the domain's top).
fn delta_equals_full_domain_base(dc: &SambaDc) {
    delta_vs_full(
        dc,
        "dom",
        |_| samba::BASE_DN.to_string(),
        "user_filter = \"(&(objectCategory=person)(objectClass=user)(department=dom))\"\n\
         group_filter = \"\"",
    );
}

type Scenario = (&'static str, fn(&SambaDc));

const SCENARIOS: &[Scenario] = &[
    ("directory_loaded", directory_loaded),
    ("full_import", full_import),
    ("include_disabled", include_disabled),
    ("group_scope", group_scope),
    ("tls", tls),
    ("url_failover", url_failover),
    ("wrong_password", wrong_password),
    ("rename_by_anchor", rename_by_anchor),
    ("deletion_deactivates", deletion_deactivates),
    ("delta_equals_full", delta_equals_full),
    (
        "delta_equals_full_domain_base",
        delta_equals_full_domain_base,
    ),
];

#[test]
fn samba_ad_dc() {
    let only: Option<Vec<String>> = std::env::var("ROSTER_AD_SCENARIOS")
        .ok()
        .map(|s| s.split(',').map(|n| n.trim().to_string()).collect());
    if let Some(names) = &only {
        for n in names {
            assert!(
                SCENARIOS.iter().any(|(s, _)| s == n),
                "ROSTER_AD_SCENARIOS names an unknown scenario {n:?}"
            );
        }
    }

    let mut dc = SambaDc::start();
    eprintln!(
        "samba: provisioned in {:.1?}, answered {:.1?} after start ({})",
        dc.provision_time,
        dc.start_time,
        dc.dir().display()
    );
    let t = Instant::now();
    populate(&dc);
    eprintln!(
        "samba: loaded {} users and {} groups in {:.1?}",
        PEOPLE.len() + 2 + BIG_MEMBERS,
        GROUPS.len() + 1,
        t.elapsed()
    );

    let mut failed = Vec::new();
    for (name, scenario) in SCENARIOS {
        if only.as_ref().is_some_and(|o| !o.iter().any(|n| n == name)) {
            continue;
        }
        let t = Instant::now();
        eprintln!("=== scenario {name}");
        match std::panic::catch_unwind(AssertUnwindSafe(|| scenario(&dc))) {
            Ok(()) => eprintln!("=== scenario {name}: ok ({:.1?})", t.elapsed()),
            Err(_) => {
                eprintln!("=== scenario {name}: FAILED ({:.1?})", t.elapsed());
                failed.push(*name);
            }
        }
    }
    let stopped = dc.stop();
    assert!(
        failed.is_empty(),
        "Samba AD scenarios failed: {failed:?} (each one's panic is printed above)"
    );
    stopped.unwrap_or_else(|e| panic!("samba did not stop cleanly: {e}"));
}
