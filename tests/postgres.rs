//! PostgreSQL against a real server (tests/common/pg.rs): its schema matches SQLite's
//! table for table, migrations run once under a lock, a newer schema is refused, and
//! `roster db copy` moves a synced database across whole, or not at all.

mod common;

use common::pg::server;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;

const HEADER: &str = "username,full_name,email,personal_number,aliases,cards,groups\n";

/// A sandbox with a CSV source synced, a token, and a second source's run log.
fn synced() -> Sandbox {
    let sb = Sandbox::new();
    let mut csv = String::from(HEADER);
    for i in 0..300 {
        csv.push_str(&format!(
            "u{i:03},User {i},u{i:03}@example.com,P{i:03},a{i:03},C{i:03},\"Staff|Team{},All\"\n",
            i % 7
        ));
    }
    sb.write_csv("users.csv", &csv);
    sb.write_config(&config(&[csv_source("hr", "users.csv", "")]));
    sb.sync_ok(&[]);
    sb.roster_ok(&["tokens", "create", "reader", "--role", "read"]);
    sb
}

fn copy(sb: &Sandbox, url: &str) -> std::process::Output {
    sb.roster(&["db", "copy", "--to", url, "--json"])
}

fn counts(report: &Value) -> BTreeMap<String, (u64, u64)> {
    (report["tables"].as_array().unwrap().iter())
        .map(|t| {
            let n = |k: &str| t[k].as_u64().unwrap();
            (
                t["table"].as_str().unwrap().to_string(),
                (n("sqlite"), n("postgres")),
            )
        })
        .collect()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_synced_database_copies_whole_and_a_second_copy_is_refused() {
    let pg = server();
    let sb = synced();
    let url = pg.new_database();
    let out = copy(&sb, &url);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let counts = counts(&report);
    for (table, (sqlite, postgres)) in &counts {
        assert_eq!(sqlite, postgres, "table {table}");
    }
    assert_eq!(counts["users"].0, 300);
    assert_eq!(counts["names"].0, 600, "usernames and aliases");
    assert_eq!(counts["cards"].0, 300);
    assert_eq!(counts["links"].0, 300);
    assert_eq!(counts["memberships"].0, 600);
    assert_eq!(counts["tokens"].0, 1);
    assert_eq!(counts["runs"].0, 1);

    // The rows themselves: users with their groups, as `users list` shows them.
    let mut client = pg.client(&url);
    let listed: BTreeMap<String, Value> = (sb.users().into_iter())
        .map(|u| (u["username"].as_str().unwrap().to_string(), u))
        .collect();
    let rows = client
        .query(
            "SELECT u.username, u.email, u.active, string_agg(g.path, ',' ORDER BY g.path)
             FROM users u JOIN memberships m ON m.user_id = u.id JOIN groups g ON g.id = m.group_id
             GROUP BY u.id ORDER BY u.username",
            &[],
        )
        .unwrap();
    assert_eq!(rows.len(), listed.len());
    for row in &rows {
        let name: String = row.get(0);
        let user = &listed[&name];
        assert_eq!(user["email"].as_str(), row.get::<_, Option<&str>>(1));
        assert_eq!(row.get::<_, i64>(2), 1);
        let mut groups: Vec<&str> = (user["groups"].as_array().unwrap().iter())
            .map(|g| g.as_str().unwrap())
            .collect();
        groups.sort();
        assert_eq!(groups.join(","), row.get::<_, String>(3), "{name}");
    }
    // A token keeps its hash; the PIN key its bytes.
    let hash: Vec<u8> = client
        .query_one("SELECT hash FROM tokens WHERE name = 'reader'", &[])
        .unwrap()
        .get(0);
    assert_eq!(hash.len(), 32);
    // Ids continue after the copied ones.
    let next: i64 = client
        .query_one(
            "INSERT INTO sources(name) VALUES ('next') RETURNING id",
            &[],
        )
        .unwrap()
        .get(0);
    let max: i64 = client
        .query_one("SELECT max(id) FROM sources WHERE name <> 'next'", &[])
        .unwrap()
        .get(0);
    assert!(next > max, "{next} after {max}");
    client
        .execute("DELETE FROM sources WHERE name = 'next'", &[])
        .unwrap();

    // Again into the same database: refused, and nothing changes.
    let out = copy(&sb, &url);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("already holds roster data"), "{err}");
    assert!(err.contains("users (300)"), "{err}");
    let users: i64 = client
        .query_one("SELECT count(*) FROM users", &[])
        .unwrap()
        .get(0);
    assert_eq!(users, 300);
}

#[test]
fn the_postgres_schema_has_sqlites_tables_and_columns() {
    let pg = server();
    let sb = Sandbox::new();
    sb.write_config(&config(&[]));
    let url = pg.new_database();
    let out = copy(&sb, &url);
    assert!(out.status.success(), "{}", stderr(&out));
    let sqlite = rusqlite::Connection::open(sb.db_path()).unwrap();
    let mut tables: Vec<String> = sqlite
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables.retain(|t| !t.starts_with("sqlite_"));
    let mut client = pg.client(&url);
    let pg_tables: Vec<String> = client
        .query(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = 'public' AND table_name <> 'roster_schema' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(tables, pg_tables);
    for table in &tables {
        // A key column is NOT NULL in PostgreSQL, and may be NULL in an SQLite table with a
        // rowid: keys are compared as names only.
        let columns: Vec<(String, bool)> = sqlite
            .prepare(&format!(
                "SELECT name, \"notnull\" OR pk > 0 FROM pragma_table_info('{table}')"
            ))
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let pg_columns: Vec<(String, bool)> = client
            .query(
                "SELECT column_name::text, is_nullable = 'NO' FROM information_schema.columns
                 WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
                &[table],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        assert_eq!(columns, pg_columns, "{table}: columns and NOT NULL");
    }
}

#[test]
fn migrations_run_once_under_a_lock_and_a_newer_schema_is_refused() {
    let pg = server();
    let url = pg.new_database();
    // Four copies of one database at once: one migrates and copies, the others wait for
    // the lock, then find the schema current and the database full.
    let sb = synced();
    let outs: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4).map(|_| s.spawn(|| copy(&sb, &url))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = outs.iter().filter(|o| o.status.success()).count();
    assert_eq!(ok, 1, "{:?}", outs.iter().map(stderr).collect::<Vec<_>>());
    for o in outs.iter().filter(|o| !o.status.success()) {
        assert!(
            stderr(o).contains("already holds roster data"),
            "{}",
            stderr(o)
        );
    }
    let mut client = pg.client(&url);
    let versions: Vec<i64> = client
        .query("SELECT version FROM roster_schema", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let current = versions[0];
    assert_eq!(versions.len(), 1);

    // A database a newer roster migrated: refused, naming both versions, and untouched.
    let newer = current + 1;
    client
        .execute("UPDATE roster_schema SET version = $1", &[&newer])
        .unwrap();
    let fresh = synced();
    let out = copy(&fresh, &url);
    assert!(!out.status.success());
    let want = format!(
        "database schema version {newer} is newer than this roster ({current}); upgrade roster"
    );
    assert!(stderr(&out).contains(&want), "{}", stderr(&out));
    let version: i64 = client
        .query_one("SELECT version FROM roster_schema", &[])
        .unwrap()
        .get(0);
    assert_eq!(version, newer);
}

#[test]
fn a_dead_server_or_bad_url_is_a_clear_error_that_never_shows_the_password() {
    let pg = server();
    let sb = synced();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = copy(
        &sb,
        &format!("postgres://roster:hunter2-secret@127.0.0.1:{port}/nowhere"),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "connecting to PostgreSQL at roster@127.0.0.1:{port}/nowhere"
        )),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");

    // A database that does not exist: the server's own words.
    let missing = pg.url("no_such_database");
    let out = copy(&sb, &missing);
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));

    let out = copy(&sb, "postgres://roster@localhost/x?sslmode=sometimes");
    assert_eq!(
        out.status.code(),
        Some(2),
        "a config error: {}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("PostgreSQL URL"), "{}", stderr(&out));
}

#[test]
fn tls_is_verified_against_the_ca_file_and_refused_without_it() {
    use common::pg::Postgres;
    // Its own server: TCP only with TLS, a certificate from a CA made for the test.
    let pg = Postgres::start_tls();
    pg.client("postgres")
        .batch_execute("CREATE DATABASE tls")
        .unwrap();
    let sb = synced();
    let ca = pg.ca_file();
    let url = pg.tcp_url(
        "tls",
        &format!("sslmode=verify-full&ca_file={}", ca.display()),
    );
    let out = copy(&sb, &url);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(counts(&report)["users"], (300, 300));
    assert!(
        report["target"]
            .as_str()
            .unwrap()
            .starts_with("roster@localhost:"),
        "{report:#}"
    );

    // The server takes no plain connection over TCP: the copy above went over TLS.
    let out = copy(&sb, &pg.tcp_url("tls", "sslmode=disable"));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no encryption"), "{}", stderr(&out));
    // Without the CA, the server's certificate is not trusted: no connection at all.
    let out = copy(&sb, &pg.tcp_url("tls", "sslmode=require"));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("connecting to PostgreSQL at roster@localhost:"),
        "{err}"
    );
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // A CA file that holds no certificate is a config error naming it.
    let empty = sb.write_file("empty.pem", "");
    let out = copy(
        &sb,
        &pg.tcp_url(
            "tls",
            &format!("sslmode=verify-full&ca_file={}", empty.display()),
        ),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("holds no PEM certificate"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_source_lease_is_one_hosts_at_a_time_and_a_killed_holder_leaves_none() {
    use roster::store::pg::PgLeases;
    use roster::store::{Holder, LeaseError};
    let pg = server();
    let url = pg.new_database();
    let (a, b) = (PgLeases::new(&url), PgLeases::new(&url));
    let serve = Holder::this_process("roster serve");
    let held = a
        .acquire("hr", &serve)
        .unwrap_or_else(|e| panic!("the first host takes it: {e}"));
    assert!(a.alive(held.token()).unwrap());
    assert!(!held.lost());
    // A second host skips the source, told who runs it and since when.
    match b.acquire("hr", &Holder::this_process("roster sync")) {
        Err(LeaseError::Busy(busy)) => {
            let info = &busy.0;
            assert_eq!(info.holder.process, "roster serve");
            assert_eq!(info.holder.pid, std::process::id());
            assert!(info.since.ends_with('Z'), "{info:?}");
        }
        other => panic!(
            "expected busy, got {:?}",
            other.map(|l| l.token().to_string())
        ),
    }
    // Another source is free.
    let other = b
        .acquire("ad", &serve)
        .unwrap_or_else(|e| panic!("another source: {e}"));
    drop(other);
    // Released on drop: the run that recorded it knows it ended.
    let token = held.token().to_string();
    drop(held);
    assert!(!a.alive(&token).unwrap());
    let again = b
        .acquire("hr", &serve)
        .unwrap_or_else(|e| panic!("free once dropped: {e}"));
    drop(again);

    // A holder killed with -9 (a psql session holding the same lock): the server ends its
    // session, and the lock with it.
    let key = PgLeases::key("hr");
    let mut psql = std::process::Command::new("psql")
        .args(["-X", "-q", &url])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("psql");
    use std::io::Write as _;
    writeln!(
        psql.stdin.as_mut().unwrap(),
        "SET application_name = 'roster serve|1|other-host'; SELECT pg_advisory_lock({key});"
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while a.holder("hr").unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "psql never took the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let info = a.holder("hr").unwrap().unwrap();
    assert_eq!(info.holder.host, "other-host");
    assert!(matches!(b.acquire("hr", &serve), Err(LeaseError::Busy(_))));
    psql.kill().unwrap();
    psql.wait().unwrap();
    while a.holder("hr").unwrap().is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the lock outlived its session"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let after = b
        .acquire("hr", &serve)
        .unwrap_or_else(|e| panic!("taken after the kill: {e}"));
    drop(after);
}

/// A sandbox whose database is `database` (a file name or a URL), syncing `users.csv`.
fn csv_on(database: &str) -> Sandbox {
    let sb = Sandbox::new();
    let source = csv_source(
        "hr",
        "users.csv",
        "on_missing = \"deactivate\"\nmax_deletions = \"100%\"",
    );
    sb.write_config(&format!("database = \"{database}\"\n\n{source}"));
    sb
}

/// What the CLI shows of the users, groups and runs, for comparing the two stores.
fn shown(sb: &Sandbox) -> Value {
    let runs: Vec<Value> = (sb.runs().into_iter())
        .map(|r| {
            serde_json::json!([
                r["source"],
                r["status"],
                r["created"],
                r["updated"],
                r["unchanged"],
                r["deactivated"],
                r["reactivated"]
            ])
        })
        .collect();
    serde_json::json!({ "users": sb.users(), "groups": sb.groups(), "runs": runs })
}

#[test]
fn a_csv_source_syncs_into_postgresql_as_into_sqlite() {
    let pg = server();
    let lite = csv_on("roster.db");
    let url = pg.new_database();
    let post = csv_on(&url);
    let mut csv = String::from(HEADER);
    for i in 0..300 {
        csv.push_str(&format!(
            "u{i:03},User {i},u{i:03}@example.com,P{i:03},a{i:03},C{i:03},\"Staff|Team{},All\"\n",
            i % 7
        ));
    }
    // Initial import, a no-change resync, then edits: a rename of the full name, a card
    // moved, a user gone (deactivated), a new one, a group emptied.
    let mut edited = csv
        .replace("User 5,", "Renamed Five,")
        .replace(",C010,", ",C999,");
    edited = edited.replace(
        "u007,User 7,u007@example.com,P007,a007,C007,\"Staff|Team0,All\"\n",
        "",
    );
    edited = edited.replace("Staff|Team6", "Staff|Team5");
    edited.push_str("new1,New One,new1@example.com,PN1,,,\"Staff|New\"\n");
    for (step, text) in [csv.as_str(), csv.as_str(), edited.as_str()]
        .iter()
        .enumerate()
    {
        for sb in [&lite, &post] {
            sb.write_csv("users.csv", text);
            sb.sync_ok(&[]);
        }
        assert_eq!(shown(&post), shown(&lite), "after step {step}");
    }
    // It is PostgreSQL that holds them, not a file beside the config.
    let count = |sql: &str| -> i64 { pg.client(&url).query_one(sql, &[]).unwrap().get(0) };
    assert_eq!(count("SELECT count(*) FROM users"), 301);
    assert_eq!(count("SELECT count(*) FROM users WHERE active = 0"), 1);
    assert!(!post.root().read_dir().unwrap().any(|e| {
        let name = e.unwrap().file_name();
        name.to_string_lossy().starts_with("postgres")
    }));
    let u7 = post.user("u007");
    assert_eq!(u7["active"], false, "{u7}");
    assert!(post.groups().iter().all(|g| g["path"] != "Staff|Team6"));
    // A dry run plans against what PostgreSQL holds, as against the file.
    let plan = |sb: &Sandbox| sb.roster_ok(&["sync", "--dry-run"]).stdout;
    assert_eq!(plan(&post), plan(&lite));
}

/// Rows of `runs` as (status, created), oldest first, read straight from PostgreSQL.
fn pg_runs(url: &str) -> Vec<(String, i64)> {
    let mut c = server().client(url);
    let rows = (c.query("SELECT status, created FROM runs ORDER BY id", &[])).unwrap();
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Two `roster serve` on one PostgreSQL database with the same schedule: each tick runs
/// once, on whichever host claims it. Host A is killed with -9 in the middle of a
/// 200,000-row run: the database keeps the state from before it, no lock is left behind,
/// and the other host's next tick completes the run.
#[test]
fn two_serve_hosts_on_one_database_run_each_tick_once_and_outlive_a_kill() {
    use std::io::Write as _;
    let url = server().new_database();
    let (a, b) = (Sandbox::new(), Sandbox::new());
    let csv = a.write_csv(
        "users.csv",
        &format!("{HEADER}ann,Ann,,,,,Staff\nbob,Bob,,,,,Staff\n"),
    );
    let source = csv_source(
        "hr",
        "x",
        "schedule = \"1s\"\non_missing = \"deactivate\"\nmax_deletions = \"100%\"",
    )
    .replace(
        "path = \"x\"",
        &format!("path = {}", toml_str(csv.to_str().unwrap())),
    );
    for sb in [&a, &b] {
        sb.write_config(&format!(
            "database = \"{url}\"\n\n{source}\n[serve]\nlisten = \"127.0.0.1:0\"\n"
        ));
    }
    let (mut host_a, _, log_a) = spawn_serve(&a);
    let (mut host_b, _, log_b) = spawn_serve(&b);
    let hosts = [(&log_a, host_a.id()), (&log_b, host_b.id())];
    let skips = || {
        (hosts.iter())
            .map(|(log, _)| {
                let log = log.lock().unwrap();
                (log.iter())
                    .filter(|l| l.contains("another roster host on this database ran this tick"))
                    .count()
            })
            .sum::<usize>()
    };

    // Each tick once: over a stretch of ticks, about one run a second between the two hosts
    // (without the claim, two), and the hosts told each other's ticks apart.
    wait_until("a first run", 60, || !pg_runs(&url).is_empty());
    let (t, first) = (std::time::Instant::now(), pg_runs(&url).len());
    wait_until("six more runs", 60, || pg_runs(&url).len() >= first + 6);
    let runs = pg_runs(&url).len() - first;
    let secs = t.elapsed().as_secs_f64();
    assert!(
        (runs as f64) <= secs + 1.5,
        "{runs} runs in {secs:.1} s of a 1 s schedule on two hosts"
    );
    wait_until("a tick skipped as run elsewhere", 30, || skips() >= 2);
    let runs = pg_runs(&url);
    assert!(
        runs.iter().all(|(s, _)| s == "ok" || s == "running"),
        "{runs:?}"
    );

    // 200,000 rows, in place at once (no tick reads half a file); the host that runs them
    // is killed mid-run.
    let mut c = server().client(&url);
    let last: i64 = (c.query_one("SELECT coalesce(max(id), 0) FROM runs", &[]))
        .unwrap()
        .get(0);
    let big = csv.with_extension("new");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
    w.write_all(HEADER.as_bytes()).unwrap();
    writeln!(w, "ann,Ann,,,,,Staff\nbob,Bob,,,,,Staff").unwrap();
    for i in 0..199_998 {
        writeln!(
            w,
            "u{i:06},User {i},u{i:06}@example.com,P{i:06},,C{i:06},Dept{}",
            i % 50
        )
        .unwrap();
    }
    w.flush().unwrap();
    drop(w);
    std::fs::rename(&big, &csv).unwrap();
    let leases = roster::store::pg::PgLeases::new(&url);
    let mut holder = None;
    // A run of the two old rows is over in well under 2 s; the large one is not.
    wait_until("the large run under way", 120, || {
        let under_way = c
            .query_opt(
                "SELECT id FROM runs WHERE id > $1 AND status = 'running'
                   AND CAST(started AS timestamptz) <= now() - interval '2 seconds'",
                &[&last],
            )
            .unwrap();
        if under_way.is_some() {
            holder = leases.holder("hr").unwrap();
        }
        holder.is_some()
    });
    let pid = holder.unwrap().holder.pid;
    let (killed, survivor) = if pid == host_a.id() {
        (&mut host_a, &log_b)
    } else {
        assert_eq!(pid, host_b.id(), "the lease is neither host's");
        (&mut host_b, &log_a)
    };
    killed.kill().unwrap();
    killed.wait().unwrap();
    // Nothing of the killed run: still ann and bob only (or, had it committed in the moment
    // before the kill, all of it: one committed state either way).
    let users: i64 = c
        .query_one("SELECT count(*) FROM users", &[])
        .unwrap()
        .get(0);
    assert!(
        users == 2 || users == 200_000,
        "a killed run left part of its writes: {users} users"
    );

    // The survivor's next tick runs the source whole; the killed run reads as interrupted.
    wait_until("the survivor's complete run", 600, || {
        pg_runs(&url)
            .iter()
            .any(|(s, n)| s == "ok" && *n == 199_998)
    });
    let runs = pg_runs(&url);
    assert!(
        users == 200_000 || runs.iter().any(|(s, _)| s == "interrupted"),
        "{runs:?}"
    );
    assert!(
        !runs.iter().any(|(s, _)| s == "running" || s == "failed"),
        "{runs:?}"
    );
    let users: i64 = (c.query_one("SELECT count(*) FROM users WHERE active = 1", &[]))
        .unwrap()
        .get(0);
    assert_eq!(users, 200_000);
    assert!(survivor
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("scheduled run started")));
    let _ = host_a.kill();
    let _ = host_b.kill();
    let _ = (host_a.wait(), host_b.wait());
    assert!(
        leases.holder("hr").unwrap().is_none(),
        "a lease outlived its hosts"
    );
}
