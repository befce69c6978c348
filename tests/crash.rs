//! kill -9 of `roster sync` in the middle of a large run: the database holds exactly the
//! users from before the run or exactly those from after it, never a mix, and the next sync
//! completes.

mod common;

use common::*;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Rows of the source: 200,000 on SQLite. PostgreSQL applies an update-everything run
/// user by user, a round trip each (minutes at 200,000 in a debug build), so there the
/// suite kills runs of 20,000; `tests/postgres.rs` kills a host in a 200,000-row import.
fn rows() -> usize {
    if on_postgres() {
        20_000
    } else {
        200_000
    }
}

#[derive(Deserialize)]
struct User {
    username: String,
    full_name: Option<String>,
    active: bool,
}

/// Which complete listing the database holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Empty,
    /// All `rows()` users, active, with full names of this version.
    All(&'static str),
}

fn write_big_csv(sb: &Sandbox, name: &str, version: &str) {
    let f = std::fs::File::create(sb.path(name)).unwrap();
    let mut w = std::io::BufWriter::new(f);
    writeln!(w, "username,full_name,email,personal_number,cards,groups").unwrap();
    for i in 0..rows() {
        writeln!(
            w,
            "u{i:06},User {i} {version},u{i:06}@example.com,P{i:06},C{i:06},Dept{}|Team{}",
            i % 50,
            i % 7
        )
        .unwrap();
    }
    w.flush().unwrap();
}

/// Reads the users and classifies the state; panics on anything in between.
fn state(sb: &Sandbox) -> State {
    let out = sb.roster_ok(&["users", "list", "--all", "--json"]);
    let users: Vec<User> = serde_json::from_slice(&out.stdout).expect("users list JSON");
    if users.is_empty() {
        return State::Empty;
    }
    let names: BTreeSet<&str> = users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(
        users.len(),
        rows(),
        "a partial set of users is visible: {} of {}",
        users.len(),
        rows()
    );
    assert_eq!(names.len(), rows(), "duplicate usernames");
    let mut versions = BTreeSet::new();
    for u in &users {
        assert!(u.active, "{} is inactive", u.username);
        let fullname = u.full_name.as_deref().unwrap_or("");
        let v = fullname.rsplit(' ').next().unwrap_or("").to_string();
        versions.insert(v);
    }
    assert_eq!(
        versions.len(),
        1,
        "users from before and after the run are mixed: versions {versions:?}"
    );
    match versions.into_iter().next().unwrap().as_str() {
        "v1" => State::All("v1"),
        "v2" => State::All("v2"),
        other => panic!("unexpected full name version {other:?}"),
    }
}

fn run_ids(sb: &Sandbox) -> BTreeSet<String> {
    sb.runs().iter().map(|r| id_string(&r["id"])).collect()
}

fn spawn_sync(sb: &Sandbox) -> Child {
    sb.command()
        .args(["sync", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn roster sync")
}

/// Polls `runs list` until a run not in `known` shows as running. Returns its id, or None if
/// the child exited first.
fn wait_for_running(sb: &Sandbox, child: &mut Child, known: &BTreeSet<String>) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if child.try_wait().unwrap().is_some() {
            return None;
        }
        let out = sb.roster(&["runs", "list", "--json"]);
        if code(&out) == 0 {
            if let Ok(Value::Array(runs)) = serde_json::from_slice::<Value>(&out.stdout) {
                if let Some(r) = runs
                    .iter()
                    .find(|r| r["status"] == "running" && !known.contains(&id_string(&r["id"])))
                {
                    return Some(id_string(&r["id"]));
                }
            }
        }
        assert!(Instant::now() < deadline, "no run appeared as running");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn kill(child: &mut Child) -> bool {
    let finished = child.try_wait().unwrap().is_some();
    if !finished {
        child.kill().expect("kill -9");
    }
    child.wait().unwrap();
    !finished
}

/// How long a kill waits after the run was seen running.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// Right after spawning, before anything was seen.
    Immediately,
    /// As soon as the run shows as running.
    SeenRunning,
    /// After this fraction of a full run's duration past the moment it was seen running.
    Fraction(f64),
}

struct Crash<'a> {
    sb: &'a Sandbox,
    /// Duration of an uninterrupted run, measured by the recovery runs.
    full_run: Duration,
}

impl Crash<'_> {
    /// Points users.csv at `version`, kills a sync at `at`, checks the state, then recovers.
    fn round(&mut self, before: State, version: &'static str, at: KillAt) {
        let sb = self.sb;
        std::fs::copy(
            sb.path(&format!("users-{version}.csv")),
            sb.path("users.csv"),
        )
        .unwrap();
        let after = State::All(version);
        assert_eq!(state(sb), before);
        let known = run_ids(sb);

        let mut child = spawn_sync(sb);
        let seen = match at {
            KillAt::Immediately => None,
            KillAt::SeenRunning | KillAt::Fraction(_) => {
                let id = wait_for_running(sb, &mut child, &known);
                assert!(
                    id.is_some(),
                    "{at:?}: the sync ended before its run was ever seen as running"
                );
                id
            }
        };
        if let KillAt::Fraction(f) = at {
            std::thread::sleep(self.full_run.mul_f64(f));
        }
        let killed = kill(&mut child);
        let now = state(sb);
        eprintln!("{at:?}: killed={killed} run={seen:?} state after the kill: {now:?}");
        assert!(
            now == before || now == after,
            "{at:?}: after kill -9 the state is {now:?}, neither {before:?} nor {after:?}"
        );

        // The next sync completes.
        let t = Instant::now();
        let s = sb.sync(&[]);
        self.full_run = t.elapsed();
        assert_eq!(s.code(), 0, "{at:?}: recovery sync\n{}", describe(&s.out));
        assert_eq!(s.only()["status"], "ok");
        assert_eq!(state(sb), after, "{at:?}: after the recovery sync");

        let runs = sb.runs();
        assert!(
            runs.iter().all(|r| r["status"] != "running"),
            "{at:?}: a run still shows as running: {runs:#?}"
        );
        if let (Some(id), true) = (&seen, killed) {
            let r = runs
                .iter()
                .find(|r| &id_string(&r["id"]) == id)
                .unwrap_or_else(|| panic!("{at:?}: run {id} vanished: {runs:#?}"));
            assert_eq!(r["status"], "interrupted", "{at:?}: the killed run: {r:#}");
        }
    }
}

#[test]
fn kill_9_during_sync_leaves_before_or_after_state() {
    let sb = Sandbox::new();
    write_big_csv(&sb, "users-v1.csv", "v1");
    write_big_csv(&sb, "users-v2.csv", "v2");
    sb.write_config(&config(&[csv_source(
        "big",
        "users.csv",
        "max_deletions = \"100%\"",
    )]));
    // An empty database with the schema, so that state() can read it.
    std::fs::write(sb.path("users.csv"), "username,full_name\n").unwrap();
    sb.sync_ok(&[]);

    let mut crash = Crash {
        sb: &sb,
        full_run: Duration::ZERO,
    };
    // The initial import of 200k rows into an empty database, killed mid-run.
    crash.round(State::Empty, "v1", KillAt::SeenRunning);
    // Then updates of every row, killed at different points.
    crash.round(State::All("v1"), "v2", KillAt::Immediately);
    crash.round(State::All("v2"), "v1", KillAt::Fraction(0.5));
    crash.round(State::All("v1"), "v2", KillAt::Fraction(0.9));
}
