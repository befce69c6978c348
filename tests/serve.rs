//! `roster serve` end to end: the service runs as a process on a free loopback port and is
//! driven over HTTP, with tokens made by the CLI. Readiness and every outcome are waited
//! for by polling with a deadline, never by sleeping a fixed time.

mod common;

use common::*;
use reqwest::blocking::{Client, Response};
use serde_json::{json, Value};
use std::io::Write;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `roster serve` and everything it logged.
struct Server {
    child: Option<Child>,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
    http: Client,
}

impl Server {
    fn start(sb: &Sandbox) -> Server {
        Self::start_trusting(sb, None)
    }

    /// With TLS: the client trusts this PEM certificate.
    fn start_trusting(sb: &Sandbox, ca: Option<&[u8]>) -> Server {
        let (child, base, log) = spawn_serve(sb);
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut http = Client::builder().timeout(Duration::from_secs(60));
        if let Some(pem) = ca {
            http = http.add_root_certificate(reqwest::Certificate::from_pem(pem).unwrap());
        }
        let server = Server {
            child: Some(child),
            base,
            log,
            http: http.build().unwrap(),
        };
        let t = Instant::now();
        loop {
            let last = match server.get("/healthz", None) {
                Ok(r) if r.status() == 200 => break,
                Ok(r) => format!("status {}", r.status()),
                Err(e) => format!("{e:?}"),
            };
            assert!(t.elapsed() < Duration::from_secs(30), "healthz: {last}");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn get(&self, path: &str, token: Option<&str>) -> reqwest::Result<Response> {
        let mut r = self.http.get(self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    }

    fn post(&self, path: &str, token: &str) -> Response {
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .send()
            .unwrap()
    }

    /// GET with a token, asserting 200, as JSON.
    fn json(&self, path: &str, token: &str) -> Value {
        let r = self.get(path, Some(token)).unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().unwrap()
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    fn wait_log(&self, what: &str) {
        wait_for(what, Duration::from_secs(60), || self.log().contains(what));
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends a signal and waits for the exit; the exit code and how long it took.
    fn stop(&mut self, signal: &str) -> (Option<i32>, Duration) {
        let pid = self.pid().to_string();
        let t = Instant::now();
        let ok = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap();
        assert!(ok.success());
        let status = self.child.take().unwrap().wait().unwrap();
        (status.code(), t.elapsed())
    }

    /// Waits until a run of `source` has its record, and returns its id.
    fn wait_running(&self, token: &str, source: &str) -> i64 {
        let mut id = None;
        wait_for("the run to begin", Duration::from_secs(60), || {
            let sources = self.json("/api/v1/sources", token);
            let s = find(&sources, source);
            id = s["run"]["run_id"].as_i64();
            id.is_some()
        });
        id.unwrap()
    }

    /// Waits until run `id` ended and the server is done with it (a held run's plan is
    /// kept just after its status is written), and returns it.
    fn wait_run(&self, token: &str, id: i64) -> Value {
        let mut run = Value::Null;
        wait_for("the run to end", Duration::from_secs(120), || {
            run = self.json(&format!("/api/v1/runs/{id}"), token);
            let sources = self.json("/api/v1/sources", token);
            let source = find(&sources, run["source"].as_str().unwrap());
            run["status"] != "running" && source["run"]["run_id"] != id
        });
        self.json(&format!("/api/v1/runs/{id}"), token)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_for(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let t = Instant::now();
    while !done() {
        assert!(t.elapsed() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn find<'a>(list: &'a Value, name: &str) -> &'a Value {
    (list.as_array().unwrap().iter())
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {list:#}"))
}

fn token(sb: &Sandbox, name: &str, role: &str) -> String {
    let out = sb.roster_ok(&["tokens", "create", name, "--role", role]);
    stdout(&out).trim().to_string()
}

fn people_csv(n: usize) -> String {
    let mut s = String::from("username,full_name,aliases,groups\n");
    for i in 0..n {
        s.push_str(&format!(
            "user{i:02},User {i},alias{i:02},Staff|Team{}\n",
            i % 2
        ));
    }
    s
}

#[test]
fn tokens_roles_and_the_read_api() {
    let sb = Sandbox::new();
    sb.write_csv("people.csv", &people_csv(25));
    sb.write_config(&format!(
        "{}\n[serve]\nlisten = \"127.0.0.1:0\"\n",
        config(&[csv_source("people", "people.csv", "")])
    ));
    let read = token(&sb, "reader", "read");
    let sync = token(&sb, "syncer", "sync");
    let admin = token(&sb, "boss", "admin");
    // Only hashes are stored, and the list never shows a token.
    let listed = sb.json(&["tokens", "list", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 3);
    assert!(!listed.to_string().contains(&read[8..]));
    let db = sb.db_bytes();
    assert!(!db.windows(20).any(|w| w == &read.as_bytes()[8..28]));

    let srv = Server::start(&sb);
    // 401 without or with a wrong token, logged with the address and without the token.
    assert_eq!(srv.get("/api/v1/users", None).unwrap().status(), 401);
    let wrong = srv
        .get("/api/v1/users", Some("roster_not-a-token"))
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().unwrap();
    assert_eq!(body["code"], "unauthorized");
    srv.wait_log("authentication failed from 127.0.0.1");
    assert!(!srv.log().contains("not-a-token"), "{}", srv.log());
    assert_eq!(srv.get("/metrics", None).unwrap().status(), 401);
    assert_eq!(srv.get("/readyz", None).unwrap().status(), 200);

    // 403 for a role too weak; a sync token starts runs.
    let r = srv.post("/api/v1/sources/people/sync", &read);
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().unwrap()["code"], "forbidden");
    let r = srv.post("/api/v1/sources/people/sync", &sync);
    assert_eq!(r.status(), 202);
    let started: Value = r.json().unwrap();
    let id = started["run_id"].as_i64().expect("a run id");
    let run = srv.wait_run(&read, id);
    assert_eq!(run["status"], "ok", "{run:#}");
    assert_eq!(run["created"], 25);
    assert_eq!(srv.post("/api/v1/sources/nope/sync", &sync).status(), 404);
    assert_eq!(srv.post("/api/v1/runs/1/approve", &sync).status(), 403);

    // Reads.
    let sources = srv.json("/api/v1/sources", &read);
    let people = find(&sources, "people");
    assert_eq!(people["plugin"], "csv");
    assert_eq!(people["running"], false);
    assert_eq!(people["last_success"]["id"], id);
    let u = srv.json("/api/v1/users/alias07", &read);
    assert_eq!(u["username"], "user07");
    assert_eq!(u["groups"], json!(["Staff|Team1"]));
    assert_eq!(
        srv.get("/api/v1/users/nobody", Some(&read))
            .unwrap()
            .status(),
        404
    );
    // Cursor paging walks every user once.
    let mut seen = Vec::new();
    let mut path = "/api/v1/users?limit=10".to_string();
    loop {
        let page = srv.json(&path, &read);
        seen.extend(usernames(page["users"].as_array().unwrap()));
        match page["next"].as_str() {
            Some(n) => path = format!("/api/v1/users?limit=10&after={n}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 25);
    assert_eq!(seen[0], "user00");
    let team1 = srv.json("/api/v1/users?group=Staff%7CTeam1&q=user1", &read);
    assert_eq!(
        usernames(team1["users"].as_array().unwrap()),
        ["user11", "user13", "user15", "user17", "user19"]
    );
    assert_eq!(
        srv.json("/api/v1/users?active=false", &read)["users"],
        json!([])
    );
    let groups = srv.json("/api/v1/groups", &read);
    assert!(groups
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["path"] == "Staff|Team0"));
    let runs = srv.json("/api/v1/runs?source=people&status=ok", &read);
    assert_eq!(runs["runs"][0]["id"], id);
    let events = srv.json(&format!("/api/v1/runs/{id}?events_limit=10"), &read);
    assert_eq!(events["events"].as_array().unwrap().len(), 10);
    let after = events["next_events"].as_i64().unwrap();
    let rest = srv.json(
        &format!("/api/v1/runs/{id}?events_after={after}&events_limit=100"),
        &read,
    );
    assert_eq!(rest["events"].as_array().unwrap().len(), 15);
    assert_eq!(rest["next_events"], Value::Null);

    // Malformed requests: JSON errors, never a crash.
    for (path, status) in [
        ("/api/v1/users?limit=lots", 400),
        ("/api/v1/runs/abc", 400),
        ("/api/v1/runs?status=great", 400),
        ("/api/v1/nothing", 404),
        ("/api/v1/runs/999999", 404),
    ] {
        let r = srv.get(path, Some(&read)).unwrap();
        assert_eq!(r.status(), status, "{path}");
        let body: Value = r.json().unwrap_or_else(|e| panic!("{path}: not JSON: {e}"));
        assert!(
            body["error"].is_string() && body["code"].is_string(),
            "{body}"
        );
    }
    // Its own connection: the server closes it without reading the body.
    let big = Client::new()
        .post(srv.url("/api/v1/sources/people/sync"))
        .bearer_auth(&sync)
        .body(vec![b'x'; 1 << 20])
        .send()
        .unwrap();
    assert_eq!(big.status(), 413);
    let r = srv
        .http
        .delete(srv.url("/api/v1/users"))
        .bearer_auth(&admin)
        .send()
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(srv.get("/healthz", None).unwrap().status(), 200);

    // Metrics after the run.
    let metrics = srv.get("/metrics", Some(&read)).unwrap().text().unwrap();
    for line in [
        "roster_sync_runs_total{source=\"people\",status=\"ok\"} 1",
        "roster_sync_changes_total{source=\"people\",action=\"created\"} 25",
        "roster_sync_in_progress{source=\"people\"} 0",
        "roster_users{state=\"active\"} 25",
        "roster_sync_duration_seconds_count{source=\"people\"} 1",
        "roster_sync_last_success_timestamp_seconds{source=\"people\"}",
        "roster_http_requests_total{method=\"GET\",status=\"401\"}",
    ] {
        assert!(metrics.contains(line), "{line} missing in\n{metrics}");
    }

    // A revoked token is refused at once.
    sb.roster_ok(&["tokens", "revoke", "reader"]);
    assert_eq!(srv.get("/api/v1/users", Some(&read)).unwrap().status(), 401);
}

/// 200,000 rows: big enough that a run is still reading when the test acts on it.
const ROWS: usize = 200_000;

fn write_big_csv(sb: &Sandbox) {
    let f = std::fs::File::create(sb.path("big.csv")).unwrap();
    let mut w = std::io::BufWriter::new(f);
    writeln!(w, "username,full_name,email,groups").unwrap();
    for i in 0..ROWS {
        writeln!(w, "u{i:06},User {i},u{i:06}@example.com,Dept{}", i % 50).unwrap();
    }
    w.flush().unwrap();
}

#[test]
fn schedules_overlap_exclusion_kill_and_sigterm() {
    let sb = Sandbox::new();
    write_big_csv(&sb);
    sb.write_csv("people.csv", &people_csv(3));
    sb.write_config(&format!(
        "{}\n[serve]\nlisten = \"127.0.0.1:0\"\n",
        config(&[
            csv_source("people", "people.csv", "schedule = \"1s\""),
            csv_source("big", "big.csv", ""),
        ])
    ));
    let sync = token(&sb, "syncer", "sync");
    let mut srv = Server::start(&sb);

    // The schedule fires by itself.
    let mut runs = Value::Null;
    wait_for("a scheduled run", Duration::from_secs(60), || {
        runs = srv.json("/api/v1/runs?source=people&status=ok", &sync);
        !runs["runs"].as_array().unwrap().is_empty()
    });
    srv.wait_log("source people: scheduled run started");
    let sources = srv.json("/api/v1/sources", &sync);
    assert_eq!(find(&sources, "people")["schedule"], "every 1s");
    assert!(find(&sources, "people")["next_run"].is_string());

    // kill -9 in the middle of a run: the next start marks it interrupted.
    assert_eq!(srv.post("/api/v1/sources/big/sync", &sync).status(), 202);
    let killed = srv.wait_running(&sync, "big");
    srv.stop("-KILL");
    let mut srv = Server::start(&sb);
    let run = srv.json(&format!("/api/v1/runs/{killed}"), &sync);
    assert_eq!(run["status"], "interrupted", "{run:#}");

    let before = srv.json("/api/v1/users?source=big&limit=1", &sync);
    assert_eq!(before["users"], json!([]));
    assert_eq!(srv.post("/api/v1/sources/big/sync", &sync).status(), 202);
    let id = srv.wait_running(&sync, "big");
    // The same source again: 409, from the API and from the CLI (exit 1, naming the holder).
    let again = srv.post("/api/v1/sources/big/sync", &sync);
    assert_eq!(again.status(), 409);
    assert_eq!(again.json::<Value>().unwrap()["code"], "running");
    let cli = sb.roster(&["sync", "big"]);
    assert_eq!(code(&cli), 1, "{}", describe(&cli));
    let said = stderr(&cli);
    assert!(
        said.contains(&format!("roster serve (pid {}", srv.pid())) && said.contains("since"),
        "{said}"
    );

    // SIGTERM: exit 0 within 10 s, the run cancelled, nothing of it applied.
    let (code, took) = srv.stop("-TERM");
    assert_eq!(code, Some(0), "{}", srv.log());
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let run = sb.run_show(&json!(id));
    assert_eq!(run["status"], "cancelled", "{run:#}");
    assert_eq!(
        sb.json(&["users", "list", "--all", "--source", "big", "--json"]),
        json!([])
    );
}

#[test]
fn a_held_run_waits_for_approval() {
    let sb = Sandbox::new();
    sb.write_csv("people.csv", &people_csv(10));
    sb.write_config(&format!(
        "{}\n[serve]\nlisten = \"127.0.0.1:0\"\n",
        config(&[csv_source("people", "people.csv", "max_deletions = 1")])
    ));
    let admin = token(&sb, "boss", "admin");
    let sync = token(&sb, "syncer", "sync");
    let srv = Server::start(&sb);
    // Events as a script would follow them.
    let events = Arc::new(Mutex::new(String::new()));
    {
        let events = events.clone();
        let mut stream = srv
            .http
            .get(srv.url("/api/v1/events"))
            .bearer_auth(&sync)
            .timeout(Duration::from_secs(600))
            .send()
            .unwrap();
        assert_eq!(stream.status(), 200);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut stream, &mut buf) {
                if n == 0 {
                    break;
                }
                events
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
    }
    let first = srv
        .post("/api/v1/sources/people/sync", &sync)
        .json::<Value>()
        .unwrap();
    let first = srv.wait_run(&sync, first["run_id"].as_i64().unwrap());
    assert_eq!(first["status"], "ok");
    wait_for("SSE events", Duration::from_secs(30), || {
        let e = events.lock().unwrap();
        e.contains("event: started") && e.contains("event: finished")
    });

    // Four of ten gone: over max_deletions. The run is held with its plan.
    sb.write_csv("people.csv", &people_csv(6));
    let r = srv
        .post("/api/v1/sources/people/sync", &sync)
        .json::<Value>()
        .unwrap();
    let held_id = r["run_id"].as_i64().unwrap();
    let held = srv.wait_run(&sync, held_id);
    assert_eq!(held["status"], "aborted", "{held:#}");
    let plan = held["held"]["plan"].as_array().unwrap();
    let deactivations: Vec<&str> = (plan.iter())
        .filter(|p| p["action"] == "deactivate")
        .map(|p| p["username"].as_str().unwrap())
        .collect();
    assert_eq!(deactivations, ["user06", "user07", "user08", "user09"]);
    assert_eq!(held["held"]["decision"], Value::Null);
    let sources = srv.json("/api/v1/sources", &sync);
    assert_eq!(find(&sources, "people")["held_run"], held_id);
    assert_eq!(srv.json("/api/v1/users/user09", &sync)["active"], true);

    // Only an admin decides.
    let path = format!("/api/v1/runs/{held_id}/approve");
    assert_eq!(srv.post(&path, &sync).status(), 403);
    let r = srv.post(&path, &admin);
    assert_eq!(r.status(), 202);
    let rerun = r.json::<Value>().unwrap()["run_id"].as_i64().unwrap();
    let rerun = srv.wait_run(&sync, rerun);
    assert_eq!(rerun["status"], "ok", "{rerun:#}");
    assert_eq!(rerun["deactivated"], 4);
    assert_eq!(srv.json("/api/v1/users/user09", &sync)["active"], false);
    let decided = srv.json(&format!("/api/v1/runs/{held_id}"), &sync);
    assert_eq!(decided["held"]["decision"], "approved");
    assert_eq!(decided["held"]["decided_by"], "boss");
    assert_eq!(decided["held"]["rerun_id"], rerun["id"]);
    assert_eq!(srv.post(&path, &admin).status(), 409);

    // Held again, then dismissed from the CLI: nothing applied, the hold lifted.
    sb.write_csv("people.csv", &people_csv(2));
    let r = srv
        .post("/api/v1/sources/people/sync", &sync)
        .json::<Value>()
        .unwrap();
    let again = r["run_id"].as_i64().unwrap();
    assert_eq!(srv.wait_run(&sync, again)["status"], "aborted");
    sb.roster_ok(&["runs", "dismiss", &again.to_string()]);
    let sources = srv.json("/api/v1/sources", &sync);
    assert_eq!(find(&sources, "people")["held_run"], Value::Null);
    assert_eq!(srv.json("/api/v1/users/user05", &sync)["active"], true);
    let metrics = srv.get("/metrics", Some(&sync)).unwrap().text().unwrap();
    assert!(
        metrics.contains("roster_deletion_guard_tripped_total{source=\"people\"} 2"),
        "{metrics}"
    );
}

/// The console in a real headless Chromium (Debian's, driven by playwright-core from npm,
/// both installed by `make setup`): sign in, Sync now, the run finishes, a held run is
/// approved. Screenshots of each page stay in target/tmp/serve-console/.
#[test]
fn the_console_in_a_real_browser() {
    let playwright = target_dir().join("sdk-tools/browser/node_modules/playwright-core");
    assert!(
        playwright.exists() && std::path::Path::new("/usr/bin/chromium").exists(),
        "chromium or playwright-core is missing: run `make setup`"
    );
    let sb = Sandbox::new();
    sb.write_csv("people.csv", &people_csv(10));
    sb.write_csv("staff.csv", "username\nann\nbob\n");
    sb.write_config(&format!(
        "{}\n[serve]\nlisten = \"127.0.0.1:0\"\n",
        config(&[
            csv_source("staff", "staff.csv", ""),
            csv_source("people", "people.csv", "max_deletions = 1"),
        ])
    ));
    let admin = token(&sb, "boss", "admin");
    let srv = Server::start(&sb);
    let r = srv
        .post("/api/v1/sources/people/sync", &admin)
        .json::<Value>()
        .unwrap();
    assert_eq!(
        srv.wait_run(&admin, r["run_id"].as_i64().unwrap())["status"],
        "ok"
    );
    // Four of ten gone: the console's Sync now of people will be held.
    sb.write_csv("people.csv", &people_csv(6));
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve-console");
    let out = std::process::Command::new("node")
        .arg(repo_root().join("tests/console/console.cjs"))
        .env("BASE", &srv.base)
        .env("TOKEN", &admin)
        .env("SHOTS", &shots)
        .env("PLAYWRIGHT_CORE", &playwright)
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "the console test failed\n{}\nserver log:\n{}",
        describe(&out),
        srv.log()
    );
    for shot in [
        "1-sign-in",
        "3-run-finished",
        "4-held-run",
        "5-approved-run",
    ] {
        assert!(shots.join(format!("{shot}.png")).exists(), "{shot}.png");
    }
    assert_eq!(srv.json("/api/v1/users/user09", &admin)["active"], false);
    assert_eq!(srv.json("/api/v1/users/bob", &admin)["active"], true);
}

fn target_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(Into::into)
        .unwrap_or_else(|| repo_root().join("target"))
}

#[test]
fn tls_with_rustls() {
    let sb = Sandbox::new();
    sb.write_csv("people.csv", &people_csv(2));
    // A test CA and a server certificate it signed (webpki refuses a CA as the server's).
    sb.write_file(
        "ext.cnf",
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    );
    let script = "set -e
        openssl req -x509 -newkey rsa:2048 -nodes -days 1 -keyout ca.key -out ca.pem -subj /CN=roster-test-ca
        openssl req -newkey rsa:2048 -nodes -keyout key.pem -out leaf.csr -subj /CN=127.0.0.1
        openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
            -out cert.pem -extfile ext.cnf";
    let out = std::process::Command::new("sh")
        .args(["-c", script])
        .current_dir(sb.root())
        .output()
        .expect("openssl (make setup installs it)");
    assert!(out.status.success(), "{}", describe(&out));
    sb.write_config(&format!(
        "{}\n[serve]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n",
        config(&[csv_source("people", "people.csv", "")])
    ));
    let read = token(&sb, "reader", "read");
    let cert = std::fs::read(sb.path("ca.pem")).unwrap();
    let srv = Server::start_trusting(&sb, Some(&cert));
    assert!(srv.base.starts_with("https://127.0.0.1:"), "{}", srv.base);
    assert_eq!(srv.json("/api/v1/sources", &read)[0]["name"], "people");
    // Plain HTTP to the TLS port gets no answer.
    let plain = srv.base.replace("https://", "http://");
    assert!(Client::new()
        .get(format!("{plain}/healthz"))
        .send()
        .is_err());

    // A key that does not exist: a config error naming the keys, exit 2.
    sb.write_config(&format!(
        "{}\n[serve]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"cert.pem\"\ntls_key = \"nope.pem\"\n",
        config(&[csv_source("people", "people.csv", "")])
    ));
    let out = sb.roster(&["serve"]);
    assert_eq!(code(&out), 2, "{}", describe(&out));
    assert!(
        stderr(&out).contains("serve.tls_cert/tls_key"),
        "{}",
        describe(&out)
    );
}
