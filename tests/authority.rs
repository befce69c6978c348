//! Per-field authority end to end (issue #23): OpenLDAP (a real slapd) owns names and
//! groups while a CSV badge export joins the same people by personal number and contributes
//! cards; local edits that survive syncs; owner hand-over; `[authority]` ranks; the
//! migration of a database the previous release wrote; terminals checking cards and PINs
//! against `roster serve`, with brute force locked out, while a sync runs.

mod common;

use common::slapd::{ldif_line, Slapd, GROUPS, PEOPLE, SUFFIX};
use common::*;
use reqwest::blocking::Client;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A small directory: ann, bob and cat with employee numbers 1001–1003; `staff` holds all
/// three, `it` holds ann.
fn directory() -> String {
    let mut s = format!(
        "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n"
    );
    for ou in ["people", "groups"] {
        s.push_str(&format!(
            "\ndn: ou={ou},{SUFFIX}\nobjectClass: organizationalUnit\nou: {ou}\n"
        ));
    }
    for (uid, cn, n) in [
        ("ann", "Ann Archer", 1001),
        ("bob", "Bob Baker", 1002),
        ("cat", "Cat Cole", 1003),
    ] {
        s.push('\n');
        ldif_line(&mut s, "dn", &format!("uid={uid},{PEOPLE}"));
        s.push_str("objectClass: inetOrgPerson\n");
        ldif_line(&mut s, "uid", uid);
        ldif_line(&mut s, "cn", cn);
        ldif_line(&mut s, "sn", cn.split(' ').nth(1).unwrap());
        ldif_line(&mut s, "mail", &format!("{uid}@example.test"));
        ldif_line(&mut s, "employeeNumber", &n.to_string());
    }
    for (cn, members) in [("staff", vec!["ann", "bob", "cat"]), ("it", vec!["ann"])] {
        s.push_str(&format!(
            "\ndn: cn={cn},{GROUPS}\nobjectClass: groupOfNames\ncn: {cn}\n"
        ));
        for m in members {
            s.push_str(&format!("member: uid={m},{PEOPLE}\n"));
        }
    }
    s
}

const BADGES: &str = r#"
[sources.badges]
plugin = "csv"
pair_by = "personal_number"
join = true
create_users = false
max_deletions = "100%"

[sources.badges.config]
path = "badges.csv"

[sources.badges.map]
username = "badge-%pn%"
personal_number = "%pn%"
cards = "%card%"
"#;

fn cards(sb: &Sandbox, user: &str) -> Vec<String> {
    strs(&sb.user(user)["cards"])
}

fn show(sb: &Sandbox, user: &str) -> Value {
    sb.json(&["users", "show", user, "--provenance", "--json"])
}

/// Who set `field` (and, for a list, `value`) by `users show --provenance --json`.
fn set_by(shown: &Value, field: &str, value: Option<&str>) -> String {
    let lines = shown["provenance"].as_array().expect("provenance");
    lines
        .iter()
        .find(|p| p["field"] == field && p["value"].as_str() == value)
        .unwrap_or_else(|| panic!("no provenance of {field} {value:?}: {shown:#}"))["by"]
        .as_str()
        .unwrap()
        .to_string()
}

fn refused(sb: &Sandbox, args: &[&str]) -> String {
    let before = sb.users();
    let out = sb.roster(args);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(sb.users(), before, "a refused edit changed nothing");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn ldap_owns_names_and_groups_while_a_badge_export_contributes_cards() {
    let server = Slapd::start(&directory());
    let sb = Sandbox::new();
    let ldap = server.source("ldap", "", "");
    sb.write_config(&format!(
        "{}\n[sources.ldap.fields]\nemail = \"create\"\ncards = \"merge\"\n{BADGES}",
        common::config(&[ldap])
    ));
    sb.write_csv(
        "badges.csv",
        "pn,card\n1001,B-1001\n1002,B-1002\n1003,B-1003\n",
    );
    assert_counts(sb.sync_ok(&["ldap"]).only(), &[("created", 3)]);
    let joined = sb.sync_ok(&["badges"]);
    assert_counts(
        joined.only(),
        &[("created", 0), ("updated", 3), ("failed", 0)],
    );
    assert_eq!(cards(&sb, "ann"), ["B-1001"]);
    assert_eq!(sb.user("ann")["source"], "ldap", "the owner stays");
    assert_eq!(strs(&sb.user("ann")["groups"]), ["it", "staff"]);
    let shown = show(&sb, "ann");
    assert_eq!(set_by(&shown, "cards", Some("B-1001")), "badges");
    assert_eq!(set_by(&shown, "full_name", None), "ldap");

    // Email is in create mode: edited locally, it stays through ten syncs while the
    // directory changes it; the name, in sync mode, follows the directory.
    sb.roster_ok(&["users", "set", "ann", "email=ann@home.example"]);
    sb.roster_ok(&["users", "add-card", "ann", "LOCAL-1"]);
    let why = refused(&sb, &["users", "set", "ann", "full_name=Annie"]);
    assert!(why.contains("held by source 'ldap' in sync mode"), "{why}");
    for i in 1..=10 {
        server.modify(&format!(
            "dn: uid=ann,{PEOPLE}\nchangetype: modify\nreplace: mail\nmail: ann{i}@example.test\n-\nreplace: cn\ncn: Ann Archer {i}\n"
        ));
        if i == 3 {
            let dry = sb.sync(&["ldap", "--dry-run"]);
            let plan = &dry.only()["plan"];
            let notes: Vec<String> = (plan.as_array().unwrap().iter())
                .flat_map(|p| strs(&p["notes"]))
                .collect();
            assert!(
                notes.iter().any(|n| n
                    == "email: kept the value set by a local edit (create mode); ldap now says ann3@example.test"),
                "{plan:#}"
            );
        }
        sb.sync_ok(&[]);
        let ann = sb.user("ann");
        assert_eq!(ann["email"], "ann@home.example", "sync {i}");
        assert_eq!(ann["full_name"], format!("Ann Archer {i}"), "sync {i}");
        assert_eq!(cards(&sb, "ann"), ["B-1001", "LOCAL-1"], "sync {i}");
    }
    assert_eq!(set_by(&show(&sb, "ann"), "email", None), "local");
    assert_eq!(set_by(&show(&sb, "ann"), "cards", Some("LOCAL-1")), "local");

    // The badge export replaces ann's card and drops bob: only what it contributed goes.
    sb.write_csv("badges.csv", "pn,card\n1001,B-1001-NEW\n1003,B-1003\n");
    let run = sb.sync_ok(&["badges"]);
    assert_counts(run.only(), &[("updated", 2), ("deactivated", 0)]);
    assert_eq!(cards(&sb, "ann"), ["B-1001-NEW", "LOCAL-1"]);
    assert_eq!(cards(&sb, "bob"), Vec::<String>::new());
    assert_eq!(sb.user("bob")["active"], true, "bob is still ldap's");

    // A card another user holds is refused; a reset puts email back to the directory's.
    let why = refused(&sb, &["users", "add-card", "bob", "LOCAL-1"]);
    assert!(
        why.contains("card \"LOCAL-1\" is already held by another user"),
        "{why}"
    );
    sb.roster_ok(&["users", "reset", "ann", "email"]);
    assert_eq!(sb.user("ann")["email"], "ann10@example.test");
    assert_eq!(set_by(&show(&sb, "ann"), "email", None), "ldap");

    // The directory drops cat, whom the badge export still lists: cat is handed over, not
    // deactivated, and keeps the name the directory gave.
    server.modify(&format!("dn: uid=cat,{PEOPLE}\nchangetype: delete\n"));
    let run = sb.sync_ok(&["ldap", "--full"]);
    assert_counts(run.only(), &[("deactivated", 0), ("updated", 1)]);
    let events = sb.json(&["runs", "show", &run.only()["run_id"].to_string(), "--json"]);
    assert!(
        events
            .to_string()
            .contains("now owned by 'badges', which still lists the user"),
        "{events:#}"
    );
    let cat = sb.user("cat");
    assert_eq!(
        (cat["source"].as_str(), cat["active"].as_bool()),
        (Some("badges"), Some(true))
    );
    assert_eq!(cat["full_name"], "Cat Cole");
    assert_eq!(set_by(&show(&sb, "cat"), "full_name", None), "ldap");
    assert_counts(
        sb.sync_ok(&[]).run("badges"),
        &[("updated", 0), ("deactivated", 0)],
    );
    // When the export drops cat too, its owner's on_missing applies.
    sb.write_csv("badges.csv", "pn,card\n1001,B-1001-NEW\n");
    assert_counts(sb.sync_ok(&["badges"]).only(), &[("deactivated", 1)]);
    assert_eq!(sb.user("cat")["active"], false);
}

#[test]
fn two_sync_sources_follow_authority_then_config_order() {
    let sb = Sandbox::new();
    let base = r#"
database = "roster.db"

[sources.hr]
plugin = "csv"
[sources.hr.config]
path = "hr.csv"
[sources.hr.map]
username = "%user%"
full_name = "%name%"
phone = "%phone%"

[sources.phonebook]
plugin = "csv"
join = true
create_users = false
[sources.phonebook.config]
path = "phonebook.csv"
[sources.phonebook.map]
username = "%user%"
phone = "%phone%"
[sources.phonebook.fields]
phone = "sync"
"#;
    sb.write_config(base);
    sb.write_csv("hr.csv", "user,name,phone\nann,Ann,111\nbob,Bob,\n");
    sb.write_csv("phonebook.csv", "user,phone\nann,999\nbob,222\nzed,333\n");
    sb.sync_ok(&[]);
    // No [authority]: config order, so hr's phone wins; bob's empty field is filled by the
    // phonebook in sync mode (hr says nothing); zed is not created.
    assert_eq!(sb.user("ann")["phone"], "111");
    assert_eq!(sb.user("bob")["phone"], "222");
    assert!(find_user(&sb.users(), "zed").is_none());
    sb.write_csv("phonebook.csv", "user,phone\nann,997\nbob,222\n");
    let dry = sb.sync(&["phonebook", "--dry-run"]);
    let plan = dry.only()["plan"].to_string();
    assert!(
        plan.contains("phone: kept the value of source 'hr', which [authority] ranks first"),
        "{plan}"
    );
    sb.write_config(&format!(
        "{base}\n[authority]\nphone = [\"phonebook\", \"hr\"]\n"
    ));
    sb.write_csv("phonebook.csv", "user,phone\nann,998\nbob,222\n");
    sb.sync_ok(&[]);
    assert_eq!(sb.user("ann")["phone"], "998");
    sb.write_csv("hr.csv", "user,name,phone\nann,Ann,112\nbob,Bob,\n");
    sb.sync_ok(&[]);
    assert_eq!(sb.user("ann")["phone"], "998", "hr is outranked");
    // Without join, a second source listing the same person is a failed entry that says how.
    sb.write_config(&base.replace("join = true\n", ""));
    let run = sb.sync(&["phonebook"]);
    let text = run.only()["errors"].to_string();
    assert!(text.contains("set join = true on this source"), "{text}");
    // Unknown fields, merge on a one-valued field and ranked unknown sources are config
    // errors naming the key.
    for (bad, key) in [
        ("[sources.hr.fields]\nphon = \"sync\"\n", "fields"),
        ("[sources.hr.fields]\nemail = \"merge\"\n", "fields.email"),
        ("[authority]\nphone = [\"nobody\"]\n", "authority.phone"),
    ] {
        sb.write_config(&format!("{base}\n{bad}"));
        let out = sb.roster(&["sync"]);
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(key),
            "{}",
            describe(&out)
        );
    }
}

#[test]
fn a_database_of_the_previous_release_migrates_with_links_and_provenance() {
    let sb = Sandbox::new();
    let fixture = repo_root().join("tests/fixtures/main-db");
    for f in ["roster.db", "roster.toml", "users.csv", "contractors.csv"] {
        std::fs::copy(fixture.join(f), sb.path(f)).unwrap();
    }
    let before = std::fs::read_to_string(fixture.join("users.txt")).unwrap();
    let out = sb.roster_ok(&["users", "list"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), before);
    let shown = show(&sb, "asmith");
    assert_eq!(set_by(&shown, "email", None), "staff");
    assert_eq!(set_by(&shown, "cards", Some("04A1B2C3D4")), "staff");
    assert_eq!(
        set_by(
            &show(&sb, "ext.olsen"),
            "groups",
            Some("Contractors|Nordic Print")
        ),
        "contractors"
    );
    // Behaviour is unchanged: a resync finds every user as it was.
    let s = sb.sync_ok(&[]);
    assert_counts(
        s.run("staff"),
        &[("created", 0), ("updated", 0), ("failed", 0)],
    );
    assert_counts(
        s.run("contractors"),
        &[("created", 0), ("updated", 0), ("deleted", 0)],
    );
    let out = sb.roster_ok(&["users", "list"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), before);
    // And local edits follow the same rules as on a new database.
    let why = refused(&sb, &["users", "add-card", "asmith", "X1"]);
    assert!(why.contains("held by source 'staff'"), "{why}");
}

/// `roster serve` and a client with one token per role.
struct Service {
    child: std::process::Child,
    base: String,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    http: Client,
    terminal: String,
    admin: String,
    read: String,
}

impl Service {
    fn start(sb: &Sandbox) -> Service {
        let token = |name: &str, role: &str| {
            let out = sb.roster_ok(&["tokens", "create", name, "--role", role]);
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        let (terminal, admin, read) = (
            token("kiosk", "terminal"),
            token("ops", "admin"),
            token("app", "read"),
        );
        let (child, base, log) = spawn_serve(sb);
        let _ = rustls::crypto::ring::default_provider().install_default();
        Service {
            child,
            base,
            log,
            http: Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            terminal,
            admin,
            read,
        }
    }

    fn call(&self, method: &str, path: &str, token: &str, body: Value) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "POST" => self.http.post(url).json(&body),
            "PATCH" => self.http.patch(url).json(&body),
            _ => self.http.get(url),
        };
        let r = req.bearer_auth(token).send().unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    fn auth(&self, body: Value) -> (u16, Value) {
        self.call("POST", "/api/v1/authenticate", &self.terminal, body)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const STAFF: &str = r#"
database = "roster.db"

[serve]
listen = "127.0.0.1:0"

[sources.staff]
plugin = "csv"
[sources.staff.config]
path = "users.csv"
[sources.staff.fields]
email = "create"
cards = "merge"
"#;

const STAFF_CSV: &str = "FULLNAME,USERNAME_ALIASES,EMAIL,CARDS,GROUPS,CODE,PIN\n\
Alice Smith,asmith,alice@example.com,04A1,Staff,1001,4821\n\
Bob Jones,bjones,bob@example.com,04B2,Staff,1002,1357\n\
Carl Gone,cgone,carl@example.com,04C3,Staff,1003,2468\n";

#[test]
fn terminals_check_cards_and_pins_register_cards_and_lock_out_guessing() {
    let sb = Sandbox::new();
    sb.write_config(STAFF);
    sb.write_csv("users.csv", STAFF_CSV);
    sb.sync_ok(&[]);
    // Carl leaves: inactive users never authenticate.
    sb.write_csv(
        "users.csv",
        &STAFF_CSV.replace(
            "Carl Gone,cgone,carl@example.com,04C3,Staff,1003,2468\n",
            "",
        ),
    );
    sb.write_config(&STAFF.replace(
        "[sources.staff.config]",
        "max_deletions = \"100%\"\n[sources.staff.config]",
    ));
    sb.sync_ok(&[]);
    let svc = Service::start(&sb);

    let (s, u) = svc.auth(json!({"card": "04A1"}));
    assert_eq!((s, u["username"].as_str()), (200, Some("asmith")), "{u}");
    assert!(
        u.get("pins").is_none() && !u.to_string().contains("argon2"),
        "{u}"
    );
    assert_eq!(svc.auth(json!({"card": "04A1", "pin": "4821"})).0, 200);
    assert_eq!(
        svc.auth(json!({"username": "bjones", "pin": "1357"})).0,
        200
    );
    // Every failure looks the same: no hint of which part was wrong.
    let wrong = [
        json!({"card": "04A1", "pin": "0000"}),
        json!({"card": "NOPE", "pin": "4821"}),
        json!({"card": "04C3"}),
        json!({"username": "nobody", "pin": "1357"}),
    ];
    let answers: Vec<_> = wrong.iter().map(|b| svc.auth(b.clone())).collect();
    for a in &answers {
        assert_eq!(a, &answers[0], "{answers:?}");
    }
    assert_eq!(answers[0].0, 401);
    assert_eq!(svc.auth(json!({"pin": "4821"})).0, 400);
    // Roles: a terminal reads nothing else; a reader cannot authenticate or register.
    assert_eq!(
        svc.call("GET", "/api/v1/users", &svc.terminal, Value::Null)
            .0,
        403
    );
    assert_eq!(
        svc.call(
            "POST",
            "/api/v1/authenticate",
            &svc.read,
            json!({"card": "04A1"})
        )
        .0,
        403
    );
    assert_eq!(
        svc.call(
            "POST",
            "/api/v1/users/bjones/cards",
            &svc.read,
            json!({"card": "X"})
        )
        .0,
        403
    );

    // Card registration at a terminal: a new card works at once and survives syncs; a card
    // someone holds is refused without naming them.
    let (s, u) = svc.call(
        "POST",
        "/api/v1/users/bjones/cards",
        &svc.terminal,
        json!({"card": "NEW-7"}),
    );
    assert_eq!(s, 201, "{u}");
    assert_eq!(svc.auth(json!({"card": "NEW-7"})).1["username"], "bjones");
    let (s, e) = svc.call(
        "POST",
        "/api/v1/users/bjones/cards",
        &svc.terminal,
        json!({"card": "04A1"}),
    );
    assert_eq!(s, 409, "{e}");
    assert!(!e.to_string().contains("asmith"), "{e}");
    // An admin's edits: create-mode email yes, sync-mode name no (409 naming the source).
    let (s, u) = svc.call(
        "PATCH",
        "/api/v1/users/bjones",
        &svc.admin,
        json!({"email": "bob@home.example"}),
    );
    assert_eq!(
        (s, u["email"].as_str()),
        (200, Some("bob@home.example")),
        "{u}"
    );
    let (s, e) = svc.call(
        "PATCH",
        "/api/v1/users/bjones",
        &svc.admin,
        json!({"full_name": "Robert"}),
    );
    assert_eq!(s, 409, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("source 'staff'"),
        "{e}"
    );
    assert_eq!(
        svc.call(
            "PATCH",
            "/api/v1/users/bjones",
            &svc.terminal,
            json!({"email": "x@y"})
        )
        .0,
        403
    );
    sb.write_csv(
        "users.csv",
        &STAFF_CSV
            .replace("bob@example.com", "robert@example.com")
            .replace(
                "Carl Gone,cgone,carl@example.com,04C3,Staff,1003,2468\n",
                "",
            ),
    );
    let (s, r) = svc.call(
        "POST",
        "/api/v1/sources/staff/sync",
        &svc.admin,
        Value::Null,
    );
    assert!(s == 200 || s == 202, "{s} {r}");
    wait_for(|| {
        let b = sb.user("bjones");
        b["email"] == "bob@home.example" && strs(&b["cards"]) == ["04B2", "NEW-7"]
    });

    // Brute force: five wrong PINs lock asmith, even against the right PIN, for a time the
    // log and `users show` tell.
    for _ in 0..5 {
        assert_eq!(
            svc.auth(json!({"username": "asmith", "pin": "1111"})).0,
            401
        );
    }
    assert_eq!(
        svc.auth(json!({"username": "asmith", "pin": "4821"})).0,
        401
    );
    assert_eq!(svc.auth(json!({"card": "04A1", "pin": "4821"})).0, 401);
    assert_eq!(
        svc.auth(json!({"username": "bjones", "pin": "1357"})).0,
        200,
        "others still work"
    );
    wait_for(|| {
        svc.log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("user:asmith locked until"))
    });
    wait_for(|| sb.json(&["users", "show", "asmith", "--json"])["locked_until"].is_string());
    let log = svc.log.lock().unwrap().join("\n");
    assert!(
        !log.contains("4821") && !log.contains("1111"),
        "no PIN in the log"
    );
}

/// Polls until `f` holds (30 s at most).
fn wait_for(mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(30), "timed out");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn terminals_are_answered_while_a_sync_writes() {
    let sb = Sandbox::new();
    sb.write_config(STAFF);
    let mut csv = String::from(STAFF_CSV);
    for i in 0..60_000 {
        csv.push_str(&format!(
            "User {i},u{i},u{i}@example.com,C{i},Staff,{},\n",
            10_000 + i
        ));
    }
    sb.write_csv("users.csv", STAFF_CSV);
    sb.sync_ok(&[]);
    sb.write_csv("users.csv", &csv);
    let svc = Service::start(&sb);
    let (s, r) = svc.call(
        "POST",
        "/api/v1/sources/staff/sync",
        &svc.admin,
        Value::Null,
    );
    assert!(s == 200 || s == 202, "{s} {r}");
    let running = || {
        let runs = svc.call("GET", "/api/v1/runs", &svc.admin, Value::Null).1;
        let runs = runs
            .as_array()
            .cloned()
            .or_else(|| runs["runs"].as_array().cloned())
            .unwrap_or_default();
        runs.first().is_some_and(|r| r["status"] == "running")
    };
    wait_for(running);
    let mut during = 0;
    while running() {
        let (s, u) = svc.auth(json!({"card": "04A1", "pin": "4821"}));
        assert_eq!((s, u["username"].as_str()), (200, Some("asmith")));
        if running() {
            during += 1;
        }
    }
    assert!(during > 0, "no check was answered during the sync");
    wait_for(|| find_user(&sb.users(), "u59999").is_some());
}
