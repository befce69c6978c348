//! SCIM 2.0 reads end to end: `roster serve` as a process on a free loopback port, users
//! synced from CSV by the CLI, read over `/scim/v2` with tokens made by the CLI. One server
//! serves the whole suite's checks.

mod common;

use common::*;
use reqwest::blocking::{Client, Response};
use serde_json::Value;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const USERS: usize = 10_000;
const SCIM: &str = "application/scim+json";

struct Server {
    child: Child,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
    http: Client,
}

impl Server {
    fn start(sb: &Sandbox) -> Server {
        let (child, base, log) = spawn_serve(sb);
        let _ = rustls::crypto::ring::default_provider().install_default();
        let server = Server {
            child,
            base,
            log,
            http: Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        };
        let t = Instant::now();
        while !server
            .http
            .get(format!("{}/healthz", server.base))
            .send()
            .is_ok_and(|r| r.status() == 200)
        {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "healthz never answered"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn get(&self, path: &str, token: Option<&str>, headers: &[(&str, &str)]) -> Response {
        let mut r = self.http.get(format!("{}/scim/v2{path}", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.send().unwrap()
    }

    /// GET with a token; asserts the status and the SCIM content type; the body.
    fn scim(&self, path: &str, token: &str, status: u16) -> Value {
        let r = self.get(path, Some(token), &[]);
        assert_eq!(r.status(), status, "GET {path}");
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with(SCIM), "GET {path}: {ct}");
        r.json().unwrap()
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn q(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn names(page: &Value) -> Vec<String> {
    page["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userName"].as_str().unwrap().to_string())
        .collect()
}

fn people() -> String {
    let mut s =
        String::from("username,full_name,email,personal_number,aliases,cards,groups,pins\n");
    for i in 0..USERS {
        s.push_str(&format!(
            "user{i:05},User {i},user{i:05}@example.com,P{i:05},alias{i:05},C{i:05},Staff|Team{},\n",
            i % 4
        ));
    }
    // Names that look like SQL, and a PIN that must never come back.
    s.push_str("o'hara,\"Robert'); DROP TABLE users;--\",,,,,Staff,\n");
    s.push_str("pinned,Pin Holder,pin@example.com,,,,,739184\n");
    s
}

#[test]
fn scim_reads() {
    let sb = Sandbox::new();
    sb.write_csv("people.csv", &people());
    sb.write_config(&format!(
        "{}\n[serve]\nlisten = \"127.0.0.1:0\"\n",
        config(&[csv_source("people", "people.csv", "")])
    ));
    sb.sync_ok(&[]);
    let out = sb.roster_ok(&["tokens", "create", "app", "--role", "read"]);
    let token = stdout(&out).trim().to_string();
    let srv = Server::start(&sb);
    let total = USERS + 2;

    // Without a token: 401 as a SCIM error.
    let r = srv.get("/Users", None, &[]);
    assert_eq!(r.status(), 401);
    let e: Value = r.json().unwrap();
    assert_eq!(
        e["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    assert_eq!(e["status"], "401");
    assert_eq!(srv.get("/Users", Some("roster_wrong"), &[]).status(), 401);

    // Discovery says what is served.
    let spc = srv.scim("/ServiceProviderConfig", &token, 200);
    assert_eq!(spc["patch"]["supported"], true, "pushed writes take PATCH");
    assert_eq!(spc["bulk"]["supported"], false);
    assert_eq!(spc["filter"]["maxResults"], 1000);
    assert_eq!(srv.scim("/ResourceTypes", &token, 200)["totalResults"], 2);
    assert_eq!(srv.scim("/Schemas", &token, 200)["totalResults"], 5);

    // Filters.
    let page = srv.scim(
        &format!("/Users?filter={}", q(r#"userName eq "USER00042""#)),
        &token,
        200,
    );
    assert_eq!(page["totalResults"], 1);
    let u = &page["Resources"][0];
    assert_eq!(u["userName"], "user00042");
    assert_eq!(u["emails"][0]["value"], "user00042@example.com");
    assert_eq!(
        u["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["employeeNumber"],
        "P00042"
    );
    let ext = &u["urn:roster:params:scim:schemas:extension:roster:2.0:User"];
    assert_eq!(ext["aliases"][0], "alias00042");
    assert_eq!(ext["cards"][0], "C00042");
    assert_eq!(u["groups"][0]["display"], "Staff|Team2");
    let location = u["meta"]["location"].as_str().unwrap();
    assert_eq!(
        location,
        format!("{}/scim/v2/Users/{}", srv.base, u["id"].as_str().unwrap())
    );
    let page = srv.scim(
        &format!(
            "/Users?filter={}&attributes=userName",
            q(r#"emails[type eq "work"].value co "0999" and not (userName ew "5")"#)
        ),
        &token,
        200,
    );
    assert_eq!(
        names(&page),
        [
            "user00999",
            "user09990",
            "user09991",
            "user09992",
            "user09993",
            "user09994",
            "user09996",
            "user09997",
            "user09998",
            "user09999"
        ]
    );
    assert!(page["Resources"][0].get("emails").is_none());
    let page = srv.scim(
        &format!(
            "/Users?filter={}",
            q(r#"groups[display eq "staff|team3"] and userName sw "user0000""#)
        ),
        &token,
        200,
    );
    assert_eq!(names(&page), ["user00003", "user00007"]);

    // Injection attempts are values, never SQL.
    for attack in [
        r#"userName eq "x' OR '1'='1""#,
        r#"userName eq "x\" or 1=1 --""#,
        r#"displayName co "'); DROP TABLE users;--" and userName eq "nobody""#,
        r#"userName co "%' OR 1=1 --""#,
    ] {
        let page = srv.scim(&format!("/Users?filter={}", q(attack)), &token, 200);
        assert_eq!(page["totalResults"], 0, "{attack}");
    }
    let page = srv.scim(
        &format!("/Users?filter={}", q(r#"displayName co "'); DROP TABLE""#)),
        &token,
        200,
    );
    assert_eq!(names(&page), ["o'hara"]);
    for bad in [
        "userName eq",
        r#"userName eq "x" ; drop"#,
        "pins pr",
        r#"nope eq "x""#,
    ] {
        let e = srv.scim(&format!("/Users?filter={}", q(bad)), &token, 400);
        assert_eq!(e["scimType"], "invalidFilter", "{bad}");
    }
    let e = srv.scim("/Users?count=many", &token, 400);
    assert_eq!(e["scimType"], "invalidValue");

    // Paging through every user, 1,000 at a time, sorted by userName.
    let mut seen = Vec::new();
    let mut start = 1;
    loop {
        let page = srv.scim(
            &format!("/Users?startIndex={start}&count=1000&sortBy=userName"),
            &token,
            200,
        );
        assert_eq!(page["totalResults"], total);
        assert_eq!(page["startIndex"], start);
        let n = page["itemsPerPage"].as_u64().unwrap() as usize;
        seen.extend(names(&page));
        if n < 1000 {
            break;
        }
        start += 1000;
    }
    assert_eq!(seen.len(), total);
    // The same users by cursor (RFC 9865): each once, whatever the depth.
    let (mut by_cursor, mut cursor, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let page = srv.scim(&format!("/Users?count=1000&cursor={cursor}"), &token, 200);
        assert_eq!(page["totalResults"], total);
        by_cursor.extend(names(&page));
        pages += 1;
        match page["nextCursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert_eq!(pages, total.div_ceil(1000));
    by_cursor.sort_by_key(|s| s.to_lowercase());
    assert_eq!(by_cursor.len(), total);
    let e = srv.scim("/Users?cursor=forged", &token, 400);
    assert_eq!(e["scimType"], "invalidCursor");
    let mut sorted = seen.clone();
    sorted.sort_by_key(|s| s.to_lowercase());
    assert_eq!(seen, sorted);
    assert_eq!(by_cursor, sorted, "cursor pages hold the same users");
    sorted.dedup();
    assert_eq!(sorted.len(), total);
    let page = srv.scim(
        "/Users?sortBy=userName&sortOrder=descending&count=2",
        &token,
        200,
    );
    assert_eq!(names(&page), ["user09999", "user09998"]);
    // count above maxResults is lowered to it.
    assert_eq!(
        srv.scim("/Users?count=5000", &token, 200)["itemsPerPage"],
        1000
    );

    // One user, its ETag, If-None-Match; the PIN is never returned.
    let page = srv.scim(
        &format!("/Users?filter={}", q(r#"userName eq "pinned""#)),
        &token,
        200,
    );
    let id = page["Resources"][0]["id"].as_str().unwrap().to_string();
    let r = srv.get(&format!("/Users/{id}"), Some(&token), &[]);
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert!(etag.starts_with("W/\""), "{etag}");
    let body = r.text().unwrap();
    assert!(!body.contains("739184"), "{body}");
    let u: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(u["meta"]["version"], etag.as_str());
    assert_eq!(
        u["urn:roster:params:scim:schemas:extension:roster:2.0:User"]["hasPin"],
        true
    );
    let r = srv.get(
        &format!("/Users/{id}"),
        Some(&token),
        &[("If-None-Match", &etag)],
    );
    assert_eq!(r.status(), 304);
    let e = srv.scim("/Users/999999", &token, 404);
    assert_eq!(e["status"], "404");
    srv.scim("/Users/1%20OR%201=1", &token, 404);

    // Groups: members only when shown.
    let groups = srv.scim("/Groups?excludedAttributes=members", &token, 200);
    assert_eq!(groups["totalResults"], 5);
    assert!(groups["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .all(|g| g.get("members").is_none()));
    let g = srv.scim(
        &format!("/Groups?filter={}", q(r#"displayName eq "Staff|Team1""#)),
        &token,
        200,
    );
    let team1 = &g["Resources"][0];
    assert_eq!(team1["members"].as_array().unwrap().len(), USERS / 4);
    assert_eq!(
        team1["urn:roster:params:scim:schemas:extension:roster:2.0:Group"]["parent"],
        "Staff"
    );
    let gid = team1["id"].as_str().unwrap();
    let one = srv.scim(
        &format!("/Groups/{gid}?attributes=displayName"),
        &token,
        200,
    );
    assert_eq!(one["displayName"], "Staff|Team1");
    assert!(one.get("members").is_none());

    // What is not served is a SCIM error too.
    let r = srv
        .http
        .post(format!("{}/scim/v2/ServiceProviderConfig", srv.base))
        .bearer_auth(&token)
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.json::<Value>().unwrap()["status"], "405");
    assert_eq!(srv.scim("/Nope", &token, 404)["status"], "404");

    // The token never reaches the log; nothing of it wrote: every user is still there.
    assert!(!srv.log().contains(&token[8..]), "{}", srv.log());
    drop(srv);
    assert_eq!(sb.users().len(), total);
}

/// Central/site: a second roster pulls from this one's `/scim/v2` with the scim connector and
/// a `read` token: users, their aliases and cards (roster's extension), groups and
/// memberships arrive; a change at central arrives with the next run.
#[test]
fn a_site_roster_pulls_from_a_central_roster() {
    let central = Sandbox::new();
    let mut csv = String::from("username,full_name,email,personal_number,aliases,cards,groups\n");
    for i in 0..300 {
        csv.push_str(&format!(
            "user{i:03},User {i},user{i:03}@example.com,P{i:03},alias{i:03},C{i:03},Staff|Team{}\n",
            i % 3
        ));
    }
    central.write_csv("people.csv", &csv);
    central.write_config(&format!(
        "{}\n[serve]\nlisten = \"127.0.0.1:0\"\n",
        config(&[csv_source("people", "people.csv", "")])
    ));
    central.sync_ok(&[]);
    let token = stdout(&central.roster_ok(&["tokens", "create", "site", "--role", "read"]))
        .trim()
        .to_string();
    let srv = Server::start(&central);

    let site = Sandbox::new();
    site.write_config(&config(&[format!(
        "[sources.central]\nplugin = \"scim\"\nmax_deletions = \"100%\"\n\
         [sources.central.config]\nurl = \"{}/scim/v2\"\ntoken = {{ env = \"CENTRAL_TOKEN\" }}\n\
         page_size = 100\n",
        srv.base
    )]));
    let sync = |site: &Sandbox| {
        let out = site.roster_env(&["sync", "--json"], &[("CENTRAL_TOKEN", &token)]);
        assert!(out.status.success(), "{}", describe(&out));
        assert!(!stdout(&out).contains(&token), "the token is in the output");
        let runs: Value = serde_json::from_slice(&out.stdout).unwrap();
        runs[0].clone()
    };
    let run = sync(&site);
    assert_counts(&run, &[("created", 300), ("failed", 0)]);
    let u = site.user("user042");
    assert_eq!(u["full_name"], "User 42");
    assert_eq!(u["email"], "user042@example.com");
    assert_eq!(u["personal_number"], "P042");
    assert_eq!(strs(&u["aliases"]), ["alias042"]);
    assert_eq!(strs(&u["cards"]), ["C042"]);
    let central_user = central.user("user042");
    assert_eq!(u["groups"], central_user["groups"], "{u:#}");

    // A change at central arrives with the next run.
    central.write_csv("people.csv", &csv.replace("User 7,", "Renamed 7,"));
    central.sync_ok(&[]);
    let run = sync(&site);
    assert_eq!(run["updated"], 1, "{run:#}");
    assert_eq!(site.user("user007")["full_name"], "Renamed 7");
    drop(srv);
}

/// Another roster's PIN hashes travel with a `replica` token, so a site's terminals check
/// PINs while the central server is down; with a `read` token they do not, and the run says
/// why.
#[test]
fn pin_hashes_travel_to_a_site_only_with_a_replica_token() {
    let central = Sandbox::new();
    central.write_csv(
        "people.csv",
        "username,full_name,pin\nann,Ann,4821\nbob,Bob,\n",
    );
    central.write_config(&format!(
        "{}\n[serve]\nlisten = \"127.0.0.1:0\"\n",
        config(&[csv_source("people", "people.csv", "")])
    ));
    central.sync_ok(&[]);
    let token = |sb: &Sandbox, name: &str, role: &str| {
        stdout(&sb.roster_ok(&["tokens", "create", name, "--role", role]))
            .trim()
            .to_string()
    };
    let (replica, read) = (
        token(&central, "site", "replica"),
        token(&central, "app", "read"),
    );
    let srv = Server::start(&central);
    let ann = |t: &str| {
        srv.scim("/Users?filter=userName%20eq%20%22ann%22", t, 200)["Resources"][0].clone()
    };
    let ext = "urn:roster:params:scim:schemas:extension:roster:2.0:User";
    assert!(ann(&read)[ext].get("pinHashes").is_none());
    let hashes = strs(&ann(&replica)[ext]["pinHashes"]);
    assert_eq!(hashes.len(), 1);
    assert!(hashes[0].starts_with("$argon2id$"), "{hashes:?}");

    let site = |t: &str| {
        let sb = Sandbox::new();
        sb.write_config(&format!(
            "{}\n[serve]\nlisten = \"127.0.0.1:0\"\n",
            config(&[format!(
                "[sources.central]\nplugin = \"scim\"\n[sources.central.config]\n\
                 url = \"{}/scim/v2\"\ntoken = \"{t}\"\n",
                srv.base
            )])
        ));
        let run = sb.sync_ok(&[]).only().clone();
        (sb, run)
    };
    let (plain, run) = site(&read);
    assert_eq!(plain.user("ann")["has_pin"], false);
    assert!(
        run["notices"].to_string().contains("needs role replica"),
        "{run:#}"
    );
    let (copy, run) = site(&replica);
    assert!(!run["notices"].to_string().contains("replica"), "{run:#}");
    assert_eq!(copy.user("ann")["has_pin"], true);
    assert_eq!(copy.user("bob")["has_pin"], false);
    // Unchanged hashes are unchanged users.
    assert_counts(copy.sync_ok(&[]).only(), &[("updated", 0), ("failed", 0)]);

    // Central goes down; the site's terminal still checks ann's PIN.
    drop(srv);
    let terminal = token(&copy, "kiosk", "terminal");
    let site_srv = Server::start(&copy);
    let check = |pin: &str| {
        site_srv
            .http
            .post(format!("{}/api/v1/authenticate", site_srv.base))
            .bearer_auth(&terminal)
            .json(&serde_json::json!({"username": "ann", "pin": pin}))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(check("4821"), 200);
    assert_eq!(check("4822"), 401);
    assert!(!site_srv.log().contains("argon2"), "no hash in the log");
}
