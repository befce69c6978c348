//! The Google Workspace connector end to end: `roster` against the Directory API and token
//! endpoint emulator (tests/common/google.rs) on loopback, with a service-account key the
//! test made; the host signs the assertions, the plugin never sees the key or a token.

mod common;

use common::google::{self, Faults, Workspace, ADMIN, CLIENT_EMAIL, CLIENT_ID};
use common::*;

fn google_config(w: &Workspace, config: &str, options: &str) -> String {
    common::config(&[format!(
        "[sources.gw]\nplugin = \"google\"\nmax_deletions = \"100%\"\n{options}\n\
         [sources.gw.config]\nkey_file = \"sa.json\"\nsubject = \"{ADMIN}\"\n\
         api_url = \"{}\"\n{config}\n",
        w.base()
    )])
}

fn sandbox(w: &Workspace, config: &str, options: &str) -> Sandbox {
    let sb = Sandbox::new();
    w.write_key(&sb.path("sa.json"));
    sb.write_config(&google_config(w, config, options));
    sb
}

/// The standard groups: "All staff" with users 0..10 and the nested "IT team" (10..15).
fn with_groups(w: &Workspace) {
    let ids = |r: std::ops::Range<usize>| r.map(google::user_id).collect::<Vec<_>>();
    let mut staff = ids(0..10);
    staff.push("group:g-it".into());
    w.put_group("g-staff", "staff@example.test", "All staff", &staff);
    w.put_group("g-it", "it@example.test", "IT team", &ids(10..15));
}

fn active(n: usize) -> u64 {
    (0..n).filter(|i| i % 25 != 7).count() as u64
}

fn paths(sb: &Sandbox) -> Vec<String> {
    (sb.groups().iter())
        .map(|g| g["path"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_domain_syncs_page_by_page_with_its_org_units_and_nested_groups() {
    let w = Workspace::start(1200);
    with_groups(&w);
    let sb = sandbox(&w, "", "");
    let s = sb.sync_ok(&[]);
    assert_counts(s.only(), &[("created", active(1200)), ("failed", 0)]);

    // Users: three pages of 500, full projection, my_customer.
    let pages: Vec<_> = (w.requests().into_iter())
        .filter(|r| r.path == "/admin/directory/v1/users")
        .collect();
    assert_eq!(pages.len(), 3, "{pages:?}");
    for p in &pages {
        assert_eq!(p.param("maxResults").as_deref(), Some("500"));
        assert_eq!(p.param("projection").as_deref(), Some("full"));
        assert_eq!(p.param("customer").as_deref(), Some("my_customer"));
    }
    assert_eq!(pages[1].param("pageToken").as_deref(), Some("pt-500"));
    // One token, from an assertion the emulator verified: who, for whom, what, where.
    assert_eq!(w.tokens_issued(), 1);
    let claims = w.last_claims();
    assert_eq!(claims["iss"], CLIENT_EMAIL);
    assert_eq!(claims["sub"], ADMIN);
    assert_eq!(claims["aud"], format!("{}/token", w.base()));
    let scope = claims["scope"].as_str().unwrap();
    for s in ["user.readonly", "group.readonly", "orgunit.readonly"] {
        assert!(scope.contains(&format!("admin.directory.{s}")), "{scope}");
    }

    let u = sb.user("user10@example.test");
    assert_eq!(u["full_name"], "Given10 Family10");
    assert_eq!(u["email"], "user10@example.test");
    assert_eq!(u["personal_number"], "E000010");
    assert_eq!(u["phone"], "+1 555 000010");
    assert_eq!(
        strs(&u["aliases"]),
        ["u10@example.test", "user10@example.test.test-google-a.com"]
    );
    // user10 is in /Students and in IT team (nested in All staff).
    assert_eq!(strs(&u["groups"]), ["All staff|IT team", "Students"]);
    assert_eq!(
        strs(&sb.user("user1@example.test")["groups"]),
        ["All staff", "Staff|IT"]
    );
    assert!(
        strs(&sb.user("user23@example.test")["groups"]).is_empty(),
        "the root OU is no group"
    );
    assert_eq!(
        paths(&sb),
        [
            "All staff",
            "All staff|IT team",
            "Staff",
            "Staff|IT",
            "Students"
        ]
    );

    // A suspended user is not imported; suspending one deactivates it on the next run.
    assert!(find_user(&sb.users(), "user7@example.test").is_none());
    w.patch_user(&google::user_id(8), serde_json::json!({"suspended": true}));
    let s = sb.sync_ok(&[]);
    assert_counts(
        s.only(),
        &[("deactivated", 1), ("created", 0), ("updated", 0)],
    );
    assert_eq!(sb.user("user8@example.test")["active"], false);
}

#[test]
fn scopes_by_org_unit_group_query_and_suspended_users() {
    let w = Workspace::start(100);
    with_groups(&w);
    let sb = sandbox(&w, "org_units = [\"/Staff\"]", "");
    sb.sync_ok(&[]);
    // /Staff and /Staff/IT: i % 4 in {0, 1}, less the suspended ones (7, 32, 57, 82 are not).
    let expected = (0..100).filter(|i| i % 4 < 2 && i % 25 != 7).count();
    assert_eq!(sb.users().len(), expected);
    assert_eq!(
        paths(&sb)[..2],
        ["All staff".to_string(), "All staff|IT team".to_string()]
    );
    assert!(!paths(&sb).contains(&"Students".to_string()));

    let sb = sandbox(
        &w,
        "groups = [\"staff@example.test\"]\ninclude_suspended = true",
        "",
    );
    sb.sync_ok(&[]);
    assert_eq!(
        sb.users().len(),
        15,
        "members of All staff and of the nested IT team"
    );
    assert_eq!(
        sb.user("user7@example.test")["active"],
        false,
        "suspended: inactive"
    );

    let sb = sandbox(&w, "query = \"orgUnitPath='/Students'\"", "");
    sb.sync_ok(&[]);
    let q = (w.requests().into_iter())
        .rfind(|r| r.path == "/admin/directory/v1/users")
        .unwrap();
    assert_eq!(q.param("query").as_deref(), Some("orgUnitPath='/Students'"));
    assert_eq!(
        sb.users().len(),
        (0..100).filter(|i| i % 4 == 2 && i % 25 != 7).count()
    );

    // A scope that names nothing fails the run rather than import nobody.
    let sb = sandbox(&w, "groups = [\"nobody@example.test\"]", "");
    let s = sb.sync(&[]);
    assert_ne!(code(&s.out), 0);
    assert!(
        describe(&s.out).contains("nobody@example.test: not found"),
        "{}",
        describe(&s.out)
    );
}

#[test]
fn throttled_requests_are_retried() {
    let w = Workspace::start(1500);
    with_groups(&w);
    w.set_faults(Faults {
        throttle_percent: 30,
    });
    let sb = sandbox(&w, "", "");
    let s = sb.sync_ok(&[]);
    assert_counts(s.only(), &[("created", active(1500))]);
    let statuses: Vec<u16> = w.requests().iter().map(|r| r.status).collect();
    assert!(
        statuses.contains(&429) && statuses.contains(&503),
        "{statuses:?}"
    );
}

#[test]
fn missing_delegation_or_privileges_fail_the_run_and_say_what_to_fix() {
    let w = Workspace::start(50);
    let sb = sandbox(&w, "", "");
    sb.sync_ok(&[]);
    let before = sb.db_state();

    // The client id is delegated only the user scope: the token endpoint refuses.
    w.set_delegated(&["user.readonly"]);
    let s = sb.sync(&[]);
    assert_ne!(code(&s.out), 0);
    let text = describe(&s.out);
    assert!(text.contains("unauthorized_client"), "{text}");
    assert!(
        text.contains(&format!("client {CLIENT_ID} has domain-wide delegation")),
        "{text}"
    );
    assert!(text.contains("admin.directory.orgunit.readonly"), "{text}");
    assert_eq!(sb.db_state(), before);

    // Delegated, but the admin may not read groups: Google's 403, with the scope and subject.
    w.set_delegated(&["user.readonly", "group.readonly", "orgunit.readonly"]);
    w.set_privileges(&["users", "orgunits"]);
    let s = sb.sync(&[]);
    assert_ne!(code(&s.out), 0);
    let text = describe(&s.out);
    assert!(
        text.contains("Not Authorized to access this resource/api"),
        "{text}"
    );
    assert!(text.contains("admin.directory.group.readonly"), "{text}");
    assert!(text.contains(ADMIN), "{text}");
    assert_eq!(sb.db_state(), before);

    // Another subject: the token endpoint does not know it.
    w.set_privileges(&["users", "groups", "orgunits"]);
    let sb2 = Sandbox::new();
    w.write_key(&sb2.path("sa.json"));
    sb2.write_config(&google_config(&w, "", "").replace(ADMIN, "ghost@example.test"));
    let s = sb2.sync(&[]);
    assert_ne!(code(&s.out), 0);
    assert!(
        describe(&s.out).contains("Invalid email or User ID"),
        "{}",
        describe(&s.out)
    );
}

#[test]
fn the_key_and_tokens_never_show_and_a_bad_key_file_is_a_config_error() {
    let w = Workspace::start(20);
    let sb = sandbox(&w, "", "");
    let debug = [("RUST_LOG", "debug")];
    let outs = [
        sb.roster_env(&["sync", "--json"], &debug),
        sb.roster_env(&["sources", "test", "gw"], &debug),
        sb.roster_env(&["runs", "show", "1", "--json"], &debug),
        sb.roster_env(&["users", "list", "--json"], &debug),
    ];
    assert_eq!(code(&outs[0]), 0, "{}", describe(&outs[0]));
    assert_eq!(code(&outs[1]), 0, "{}", describe(&outs[1]));
    let pem_line = google::key_pair().0.lines().nth(1).unwrap().to_string();
    for o in &outs {
        let text = describe(o);
        assert!(
            !text.contains("PRIVATE KEY") && !text.contains(&pem_line),
            "{text}"
        );
        assert!(!text.contains("ya29."), "a token leaked: {text}");
    }
    assert!(
        stdout(&outs[1]).contains("user0@example.test"),
        "{}",
        describe(&outs[1])
    );

    let sb = sandbox(&w, "", "");
    sb.write_file(
        "sa.json",
        "{\"type\": \"service_account\", \"client_email\": \"x\"}",
    );
    let s = sb.sync(&[]);
    assert_ne!(code(&s.out), 0, "{}", describe(&s.out));
    assert!(
        describe(&s.out).contains("has no private_key"),
        "{}",
        describe(&s.out)
    );
}
