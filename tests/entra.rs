//! The Entra ID connector end to end: `roster` against the Graph emulator
//! (tests/common/graph.rs) on loopback, through the host's `http` capability.

mod common;

use common::graph::{self, Faults, Graph, CLIENT_ID, TENANT};
use common::*;
use serde_json::{json, Value};
use std::process::Output;
use std::time::Duration;

/// The client secret, handed to roster through `ENTRA_SECRET` only.
const SECRET: &str = "Zq8~s3cr3t-VALUE-4417";

/// A config with one source `entra` against the emulator.
fn entra_config(g: &Graph, config: &str, options: &str) -> String {
    let base = g.base();
    common::config(&[format!(
        "[sources.entra]\nplugin = \"entra\"\nmax_deletions = \"100%\"\n{options}\n\
         [sources.entra.config]\ntenant_id = \"{TENANT}\"\nclient_id = \"{CLIENT_ID}\"\n\
         client_secret = {{ env = \"ENTRA_SECRET\" }}\nauthority_url = \"{base}\"\n\
         graph_url = \"{base}\"\n{config}\n"
    )])
}

fn sandbox(g: &Graph, config: &str, options: &str) -> Sandbox {
    // Every roster command inherits it; the sandbox clears only RUST_LOG.
    std::env::set_var("ENTRA_SECRET", SECRET);
    let sb = Sandbox::new();
    sb.write_config(&entra_config(g, config, options));
    sb
}

/// Users of the standard tenant that a default config imports (enabled ones).
fn enabled(n: usize) -> u64 {
    (0..n).filter(|i| i % 25 != 7).count() as u64
}

fn users_requests(g: &Graph) -> Vec<graph::Logged> {
    g.requests()
        .into_iter()
        .filter(|r| r.path == "/v1.0/users")
        .collect()
}

fn user_by_upn(sb: &Sandbox, upn: &str) -> Value {
    sb.json(&["users", "show", upn, "--json"])
}

#[test]
fn a_20k_tenant_syncs_page_by_page_with_only_the_needed_fields() {
    let g = Graph::start(SECRET, 20_000);
    let sb = sandbox(&g, "import_groups = false", "");
    let s = sb.sync_ok(&[]);
    let run = s.only();
    assert_eq!(run["mode"], "full");
    assert_counts(run, &[("created", enabled(20_000)), ("failed", 0)]);
    assert_eq!(sb.active_users().len() as u64, enabled(20_000));

    let pages = users_requests(&g);
    assert_eq!(pages.len(), 21, "20,000 users in pages of 999");
    for p in &pages {
        assert_eq!(p.param("$top").as_deref(), Some("999"), "{p:?}");
        let select = p.param("$select").expect("a $select");
        assert!(select.split(',').count() <= 16, "{select}");
        for f in [
            "id",
            "userPrincipalName",
            "mail",
            "accountEnabled",
            "onPremisesSamAccountName",
        ] {
            assert!(select.split(',').any(|s| s == f), "{f} not in {select}");
        }
        assert!(
            !select.contains("employeeType"),
            "fields nobody asked for: {select}"
        );
    }
    assert_eq!(g.tokens_issued(), 1, "one token for the whole run");

    // Mapped: UPN is the username, mail else UPN the email, the SAM name an alias.
    let u = user_by_upn(&sb, "user3@contoso.test");
    assert_eq!(u["email"], "user3@contoso.test");
    assert_eq!(u["full_name"], "Given3 Sur3");
    assert_eq!(u["personal_number"], "E000003");
    assert_eq!(u["phone"], "+420 600 000003");
    assert_eq!(u["language"], "en-US");
    assert_eq!(strs(&u["aliases"]), ["user3"]);
    assert_eq!(
        user_by_upn(&sb, "user4@contoso.test")["email"],
        "User4@contoso.test"
    );

    // The next run asks only for changes: none.
    g.clear_log();
    let s = sb.sync_ok(&[]);
    assert_eq!(s.only()["mode"], "delta");
    assert_counts(
        s.only(),
        &[("created", 0), ("updated", 0), ("deactivated", 0)],
    );
    assert!(users_requests(&g).is_empty(), "a delta run lists no users");
}

/// A tenant with a group tree: Staff ⊃ IT ⊃ Ops, and Other beside it.
fn tree_tenant() -> Graph {
    let g = Graph::start(SECRET, 10);
    let id = graph::user_id;
    g.put_group("g-ops", "Ops", &[id(4)]);
    g.put_group("g-it", "IT", &[id(3), "g-ops".into()]);
    g.put_group("g-staff", "Staff", &[id(1), id(2), "g-it".into()]);
    g.put_group("g-other", "Other", &[id(5), id(1)]);
    g
}

fn groups_of(sb: &Sandbox, upn: &str) -> Vec<String> {
    strs(&user_by_upn(sb, upn)["groups"])
}

fn paths(sb: &Sandbox) -> Vec<String> {
    sb.groups()
        .iter()
        .map(|g| g["path"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_group_scope_takes_nested_members_and_builds_the_tree() {
    let g = tree_tenant();
    let sb = sandbox(&g, "groups = [\"g-staff\"]", "");
    let s = sb.sync_ok(&[]);
    assert_counts(s.only(), &[("created", 4), ("failed", 0)]);
    let mut upns: Vec<String> = sb
        .users()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_string())
        .collect();
    upns.sort();
    assert_eq!(
        upns,
        sorted(&[
            "user1@contoso.test",
            "user2@contoso.test",
            "user3@contoso.test",
            "user4@contoso.test"
        ])
    );
    assert_eq!(paths(&sb), ["Staff", "Staff|IT", "Staff|IT|Ops"]);
    assert_eq!(groups_of(&sb, "user4@contoso.test"), ["Staff|IT|Ops"]);
    assert_eq!(groups_of(&sb, "user1@contoso.test"), ["Staff"]);
    let asked: Vec<String> = g.requests().iter().map(|r| r.path.clone()).collect();
    assert!(
        asked.contains(&"/v1.0/groups/g-staff/transitiveMembers/microsoft.graph.user".to_string()),
        "{asked:?}"
    );
    assert!(!asked.contains(&"/v1.0/users".to_string()), "{asked:?}");

    // A user moves out of the scope: a full run again (scopes have no delta), deactivated.
    g.put_group("g-ops", "Ops", &[]);
    let s = sb.sync_ok(&[]);
    assert_eq!(s.only()["mode"], "full");
    assert_counts(s.only(), &[("deactivated", 1)]);
    assert_eq!(user_by_upn(&sb, "user4@contoso.test")["active"], false);

    // Every group of the tenant without a scope.
    let sb = sandbox(&g, "", "");
    sb.sync_ok(&[]);
    assert_eq!(paths(&sb), ["Other", "Staff", "Staff|IT", "Staff|IT|Ops"]);
    assert_eq!(groups_of(&sb, "user1@contoso.test"), ["Other", "Staff"]);
}

#[test]
fn alias_templates_display_names_and_disabled_accounts() {
    let g = Graph::start(SECRET, 0);
    g.put_user(
        json!({"id": "a1", "userPrincipalName": "amo@contoso.test", "mail": "amo@contoso.test",
        "givenName": "Anne Marie", "surname": "O'Neil", "accountEnabled": true}),
    );
    g.put_user(
        json!({"id": "a2", "userPrincipalName": "svc@contoso.test", "displayName": "Print Service",
        "accountEnabled": true}),
    );
    g.put_user(
        json!({"id": "a3", "userPrincipalName": "gone@contoso.test", "givenName": "Old",
        "surname": "Timer", "accountEnabled": false}),
    );
    let sb = sandbox(
        &g,
        "alias_fields = \"%givenName%.%surname%;%surname%-%givenName%\"\naliases_strip_invalid = true",
        "",
    );
    sb.sync_ok(&[]);
    let u = user_by_upn(&sb, "amo@contoso.test");
    assert_eq!(
        strs(&u["aliases"]),
        sorted(&[
            "Anne Marie.O'Neil",
            "AnneMarieO'Neil",
            "O'Neil-Anne Marie",
            "O'Neil-AnneMarie"
        ])
    );
    assert_eq!(u["full_name"], "Anne Marie O'Neil");
    assert_eq!(
        user_by_upn(&sb, "svc@contoso.test")["full_name"],
        "Print Service"
    );
    assert_eq!(
        sb.users().len(),
        2,
        "a disabled account is not imported by default"
    );

    let sb = sandbox(&g, "include_disabled = true\nuse_display_name = false", "");
    sb.sync_ok(&[]);
    assert_eq!(user_by_upn(&sb, "gone@contoso.test")["active"], false);
    assert!(user_by_upn(&sb, "svc@contoso.test")["full_name"].is_null());
}

#[test]
fn delta_runs_apply_adds_changes_and_removals() {
    let g = tree_tenant();
    let sb = sandbox(&g, "", "");
    let s = sb.sync_ok(&[]);
    assert_counts(s.only(), &[("created", enabled(10))]);

    let mut new = graph::user(100);
    new["id"] = "new-user".into();
    g.put_user(new);
    g.patch_user(&graph::user_id(2), json!({"mobilePhone": "+1 555 0100"}));
    g.remove_user(&graph::user_id(4));
    g.patch_user(&graph::user_id(5), json!({"accountEnabled": false}));
    g.clear_log();
    let s = sb.sync_ok(&[]);
    let run = s.only();
    assert_eq!(run["mode"], "delta");
    assert_counts(
        run,
        &[
            ("created", 1),
            ("updated", 1),
            ("deactivated", 2),
            ("failed", 0),
        ],
    );
    assert_eq!(
        user_by_upn(&sb, "user2@contoso.test")["phone"],
        "+1 555 0100"
    );
    assert_eq!(user_by_upn(&sb, "user4@contoso.test")["active"], false);
    assert_eq!(user_by_upn(&sb, "user5@contoso.test")["active"], false);
    assert_eq!(user_by_upn(&sb, "user100@contoso.test")["active"], true);
    let delta: Vec<_> = g
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v1.0/users/delta")
        .collect();
    assert!(
        !delta.is_empty()
            && delta
                .iter()
                .all(|r| r.param("$deltatoken").is_some() || r.param("$skiptoken").is_some())
    );
    assert!(users_requests(&g).is_empty());
    // Ops lost its only member: the group tree follows.
    assert_eq!(groups_of(&sb, "user3@contoso.test"), ["Staff|IT"]);

    // A removed group goes in a delta run too.
    g.put_group("g-other", "Other", &[]);
    let s = sb.sync_ok(&[]);
    assert_eq!(s.only()["mode"], "delta");
    assert!(groups_of(&sb, "user1@contoso.test") == ["Staff"]);
}

#[test]
fn an_expired_delta_link_falls_back_to_a_full_run_and_says_so() {
    let g = Graph::start(SECRET, 30);
    let sb = sandbox(&g, "", "");
    sb.sync_ok(&[]);
    g.expire_delta_links();
    g.remove_user(&graph::user_id(1));
    let s = sb.sync_ok(&[]);
    let run = s.only();
    assert_eq!(run["mode"], "full");
    assert_counts(run, &[("deactivated", 1)]);
    let notices = run["notices"].to_string();
    assert!(notices.contains("syncStateNotFound"), "{run:#}");
    let shown = sb.run_show(&run["run_id"]);
    assert!(
        shown["notices"].to_string().contains("full sync"),
        "{shown:#}"
    );
    // And the run after that is a delta run again.
    assert_eq!(sb.sync_ok(&[]).only()["mode"], "delta");
}

#[test]
fn throttling_on_a_fifth_of_the_requests_still_syncs_every_user() {
    let g = Graph::start(SECRET, 10_000);
    g.set_faults(Faults {
        throttle_percent: 20,
        ..Faults::default()
    });
    let sb = sandbox(&g, "", "");
    let s = sb.sync_ok(&[]);
    assert_counts(s.only(), &[("created", enabled(10_000)), ("failed", 0)]);
    assert_eq!(
        sb.active_users().len() as u64,
        enabled(10_000),
        "zero users missing"
    );
    let statuses: Vec<u16> = g.requests().iter().map(|r| r.status).collect();
    let failed = statuses.iter().filter(|s| matches!(s, 429 | 503)).count();
    assert!(
        statuses.contains(&429) && statuses.contains(&503),
        "{statuses:?}"
    );
    assert!(
        failed * 6 >= statuses.len(),
        "about a fifth failed: {statuses:?}"
    );
}

#[test]
fn a_token_revoked_mid_sync_is_renewed_and_the_page_retried() {
    let g = Graph::start(SECRET, 4_000);
    g.set_faults(Faults {
        revoke_after: Some(2),
        ..Faults::default()
    });
    let sb = sandbox(&g, "import_groups = false", "");
    let s = sb.sync_ok(&[]);
    assert_counts(s.only(), &[("created", enabled(4_000))]);
    assert_eq!(g.tokens_issued(), 2);
    assert!(g.requests().iter().any(|r| r.status == 401));
}

#[test]
fn a_malformed_page_fails_the_run_and_changes_nothing() {
    let g = Graph::start(SECRET, 3_000);
    let sb = sandbox(&g, "use_delta = false", "");
    sb.sync_ok(&[]);
    g.patch_user(&graph::user_id(1), json!({"mobilePhone": "+1"}));
    g.remove_user(&graph::user_id(2));
    let before = sb.db_state();
    g.set_faults(Faults {
        malformed_page: Some(2),
        ..Faults::default()
    });
    let s = sb.sync(&[]);
    assert_eq!(s.code(), 1, "{}", describe(&s.out));
    let run = s.only();
    assert_eq!(run["status"], "failed");
    assert!(
        run["message"].as_str().unwrap().contains("malformed"),
        "{run:#}"
    );
    assert_eq!(sb.db_state(), before);
}

#[test]
fn a_page_slower_than_the_timeout_fails_the_run_cleanly() {
    let g = Graph::start(SECRET, 50);
    let sb = sandbox(&g, "", "timeout = \"1s\"");
    g.set_faults(Faults {
        slow: Some(Duration::from_millis(2500)),
        ..Faults::default()
    });
    let s = sb.sync(&[]);
    assert_eq!(s.code(), 1, "{}", describe(&s.out));
    assert_eq!(s.only()["status"], "failed");
    assert!(sb.users().is_empty());
    // Slow but within the deadline is fine.
    g.set_faults(Faults {
        slow: Some(Duration::from_millis(200)),
        ..Faults::default()
    });
    let sb = sandbox(&g, "", "timeout = \"10s\"");
    sb.sync_ok(&[]);
    assert_eq!(sb.users().len() as u64, enabled(50));
}

#[test]
fn an_ungranted_origin_and_a_redirect_to_one_are_refused() {
    let g = Graph::start(SECRET, 2_500);
    let other = Graph::start(SECRET, 10);
    // Graph's nextLink points elsewhere: the host refuses to follow it.
    g.set_faults(Faults {
        next_link_base: Some(other.base().to_string()),
        ..Faults::default()
    });
    let sb = sandbox(&g, "", "");
    let s = sb.sync(&[]);
    assert_eq!(s.code(), 1, "{}", describe(&s.out));
    let msg = s.only()["message"].as_str().unwrap().to_string();
    assert!(msg.contains("not granted"), "{msg}");
    assert!(sb.users().is_empty());
    // A redirect to another origin.
    g.set_faults(Faults {
        redirect_users_to: Some(other.base().to_string()),
        ..Faults::default()
    });
    let s = sb.sync(&[]);
    assert_eq!(s.code(), 1, "{}", describe(&s.out));
    let msg = s.only()["message"].as_str().unwrap().to_string();
    assert!(msg.contains("redirect"), "{msg}");
    assert!(sb.users().is_empty());
    assert!(other.requests().is_empty(), "{:?}", other.requests());
}

fn text_of(outs: &[&Output]) -> String {
    outs.iter()
        .map(|o| format!("{}\n{}", stdout(o), stderr(o)))
        .collect()
}

#[test]
fn the_secret_never_appears_in_output_logs_json_or_the_database() {
    let g = Graph::start(SECRET, 40);
    let sb = sandbox(&g, "", "");
    let debug = [("RUST_LOG", "debug")];
    let mut outs = vec![
        sb.roster_env(&["sync", "--json"], &debug),
        sb.roster_env(&["sync"], &debug),
        sb.roster_env(&["sources", "test", "entra"], &debug),
        sb.roster_env(&["users", "list", "--json"], &debug),
        sb.roster_env(&["runs", "list", "--json"], &debug),
        sb.roster_env(&["runs", "show", "1", "--json"], &debug),
        sb.roster_env(&["plugin", "inspect", "entra"], &debug),
    ];
    assert_eq!(code(&outs[0]), 0, "{}", describe(&outs[0]));
    // A refused secret: the error says so without quoting it.
    let wrong = "wr0ng-S3CRET-value";
    let out = sb.roster_env(
        &["sync", "--json"],
        &[("ENTRA_SECRET", wrong), ("RUST_LOG", "debug")],
    );
    assert_eq!(code(&out), 1, "{}", describe(&out));
    assert!(stdout(&out).contains("secret"), "{}", describe(&out));
    assert!(!text_of(&[&out]).contains(wrong), "{}", describe(&out));
    outs.push(out);
    let all = text_of(&outs.iter().collect::<Vec<_>>());
    assert!(!all.contains(SECRET), "the secret leaked:\n{all}");
    for (name, bytes) in sb.db_files() {
        if let Some(bytes) = bytes {
            let hay = String::from_utf8_lossy(&bytes);
            assert!(
                !hay.contains(SECRET) && !hay.contains(wrong),
                "the secret is in {name}"
            );
        }
    }
    // The emulator did get it, in the token request's form body only.
    assert!(g.requests().iter().any(|r| {
        url::form_urlencoded::parse(r.body.as_bytes())
            .any(|(k, v)| k == "client_secret" && v == SECRET)
    }));
}

/// Today plus `days`, as YYYY-MM-DD (UTC).
fn date_in(days: i64) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let z = secs.div_euclid(86_400) + days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[test]
fn a_client_secret_that_expires_within_a_week_warns_on_every_run() {
    let g = Graph::start(SECRET, 5);
    let soon = date_in(3);
    let sb = sandbox(&g, &format!("secret_expires = \"{soon}\""), "");
    let s = sb.sync_ok(&[]);
    let notices = s.only()["notices"].to_string();
    assert!(
        notices.contains(&format!("expires on {soon} (in 3 days)")),
        "{notices}"
    );
    let shown = sb.run_show(&s.only()["run_id"]);
    assert!(shown["notices"].to_string().contains(&soon), "{shown:#}");
    // The human output prints it too, on a delta run as well.
    let out = sb.roster_ok(&["sync"]);
    assert!(
        stdout(&out).contains(&format!("expires on {soon}")),
        "{}",
        describe(&out)
    );
    let out = sb.roster_ok(&["sources", "test", "entra"]);
    assert!(stdout(&out).contains(&soon), "{}", describe(&out));

    let sb = sandbox(&g, &format!("secret_expires = {}", date_in(30)), "");
    let s = sb.sync_ok(&[]);
    assert_eq!(s.only()["notices"], json!([]));
}

#[test]
fn sources_test_acquires_a_token_and_shows_counts_and_a_sample() {
    let g = tree_tenant();
    let sb = sandbox(&g, "", "");
    let out = sb.roster_ok(&["sources", "test", "entra"]);
    let text = stdout(&out);
    assert!(text.contains("users:  10"), "{text}");
    assert!(text.contains("groups: 4"), "{text}");
    assert!(text.contains("user0@contoso.test"), "{text}");
    assert_eq!(g.tokens_issued(), 1);
    assert!(sb.users().is_empty(), "a test writes nothing");
}

/// The emulator itself, through a bare HTTP/1.1 client.
mod emulator {
    use super::*;
    use std::io::{Read, Write};

    /// HTTP/1.0, so that large bodies come whole rather than chunked.
    fn http(g: &Graph, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
        let addr = g.base().trim_start_matches("http://").to_string();
        let mut conn = std::net::TcpStream::connect(&addr).unwrap();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            conn,
            "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}Content-Type: \
             application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        let status = answer[9..12].parse().unwrap();
        let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    fn token(g: &Graph, secret: &str) -> (u16, Value) {
        let form = format!(
            "grant_type=client_credentials&client_id={CLIENT_ID}&client_secret={secret}&scope={}/.default",
            g.base()
        );
        http(
            g,
            "POST",
            &format!("/{TENANT}/oauth2/v2.0/token"),
            None,
            &form,
        )
    }

    /// `/v1.0/...` of a nextLink or deltaLink.
    fn path_of(g: &Graph, link: &Value) -> String {
        link.as_str()
            .unwrap()
            .strip_prefix(g.base())
            .unwrap()
            .to_string()
    }

    #[test]
    fn tokens_are_checked_and_expire() {
        let g = Graph::start("pw", 3);
        let (status, body) = token(&g, "nope");
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client"))
        );
        g.set_token_lifetime(1);
        let (status, body) = token(&g, "pw");
        assert_eq!(status, 200);
        assert_eq!(body["expires_in"], 1);
        let t = body["access_token"].as_str().unwrap().to_string();
        assert_eq!(http(&g, "GET", "/v1.0/users", Some(&t), "").0, 200);
        assert_eq!(http(&g, "GET", "/v1.0/users", None, "").0, 401);
        // Bounded polling: the token stops working after its second.
        let expired = (0..50).any(|_| {
            std::thread::sleep(Duration::from_millis(100));
            http(&g, "GET", "/v1.0/users", Some(&t), "").0 == 401
        });
        assert!(expired, "the token never expired");
    }

    #[test]
    fn users_page_with_top_select_and_next_links() {
        let g = Graph::start("pw", 2_500);
        let t = token(&g, "pw").1["access_token"]
            .as_str()
            .unwrap()
            .to_string();
        let mut path = "/v1.0/users?$select=id,mail&$top=999".to_string();
        let mut ids = std::collections::BTreeSet::new();
        let mut pages = 0;
        loop {
            let (status, page) = http(&g, "GET", &path, Some(&t), "");
            assert_eq!(status, 200);
            pages += 1;
            for u in page["value"].as_array().unwrap() {
                let keys: Vec<&String> = u.as_object().unwrap().keys().collect();
                assert!(keys.iter().all(|k| *k == "id" || *k == "mail"), "{keys:?}");
                ids.insert(u["id"].as_str().unwrap().to_string());
            }
            match page.get("@odata.nextLink") {
                Some(next) => path = path_of(&g, next),
                None => break,
            }
        }
        assert_eq!((pages, ids.len()), (3, 2_500));
    }

    #[test]
    fn delta_links_carry_changes_and_removals_and_expire() {
        let g = Graph::start("pw", 5);
        let t = token(&g, "pw").1["access_token"]
            .as_str()
            .unwrap()
            .to_string();
        let (_, first) = http(&g, "GET", "/v1.0/users/delta?$select=id", Some(&t), "");
        assert_eq!(first["value"].as_array().unwrap().len(), 5);
        let link = path_of(&g, &first["@odata.deltaLink"]);
        g.patch_user(&graph::user_id(1), json!({"mail": "new@contoso.test"}));
        g.remove_user(&graph::user_id(2));
        let (_, changes) = http(&g, "GET", &link, Some(&t), "");
        let changes = changes["value"].as_array().unwrap().clone();
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert!(changes
            .iter()
            .any(|c| c["id"] == graph::user_id(2).as_str() && c.get("@removed").is_some()));
        let (_, latest) = http(
            &g,
            "GET",
            "/v1.0/users/delta?$deltatoken=latest",
            Some(&t),
            "",
        );
        assert!(latest["value"].as_array().unwrap().is_empty());
        g.expire_delta_links();
        let (status, gone) = http(&g, "GET", &link, Some(&t), "");
        assert_eq!(
            (status, gone["error"]["code"].as_str()),
            (410, Some("syncStateNotFound"))
        );
    }

    #[test]
    fn groups_list_direct_and_transitive_members() {
        let g = tree_tenant();
        let t = token(&g, SECRET).1["access_token"]
            .as_str()
            .unwrap()
            .to_string();
        let (_, direct) = http(
            &g,
            "GET",
            "/v1.0/groups/g-staff/members?$select=id",
            Some(&t),
            "",
        );
        assert_eq!(direct["value"].as_array().unwrap().len(), 3);
        let (_, users) = http(
            &g,
            "GET",
            "/v1.0/groups/g-staff/transitiveMembers/microsoft.graph.user?$select=id",
            Some(&t),
            "",
        );
        assert_eq!(users["value"].as_array().unwrap().len(), 4);
        let (_, nested) = http(
            &g,
            "GET",
            "/v1.0/groups/g-staff/transitiveMembers/microsoft.graph.group",
            Some(&t),
            "",
        );
        assert_eq!(nested["value"].as_array().unwrap().len(), 2);
        assert_eq!(
            http(&g, "GET", "/v1.0/groups/nope/members", Some(&t), "").0,
            404
        );
    }
}
