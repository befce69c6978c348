//! The sandbox: hostile components (tests/components/hostile) are stopped by the deadline,
//! the memory cap and the batch cap, their traps are contained, and none of it changes the
//! database. Plugins see no environment and no files but their grants.

mod common;

use common::*;
use serde_json::Value;
use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const SECRET_VAR: &str = "ROSTER_TEST_SECRET";
const SECRET_VALUE: &str = "s3cr3t-marker-7a1d9f";
const FILE_SECRET: &str = "TOPSECRET-4f2e8b";

/// Runs a command, killing it (and failing the test) if it has not ended after `limit`.
/// This guards against a hang when a limit is not enforced; it asserts nothing about time.
fn output_within(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn roster");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            r.read_to_end(&mut buf).ok();
            buf
        })
    };
    let out_t = drain(Box::new(child.stdout.take().unwrap()));
    let err_t = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            child.kill().ok();
            child.wait().ok();
            let stderr = String::from_utf8_lossy(&err_t.join().unwrap()).into_owned();
            panic!("roster did not finish within {limit:?}; a limit is not enforced\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

/// A sandbox with a seeded CSV source `hr` (alice, bob) and a source `evil` running the
/// hostile component in `mode`.
fn setup(mode: &str, extra_config: &str, extra_source: &str) -> Sandbox {
    let wasm = hostile_wasm();
    let sb = Sandbox::new();
    sb.write_csv(
        "users.csv",
        "username,full_name,cards,groups\nalice,Alice Smith,C-1,Staff|IT\nbob,Bob Jones,C-2,Staff\n",
    );
    sb.write_config(&config(&[
        csv_source("hr", "users.csv", ""),
        evil_source(&wasm, mode, extra_config, extra_source),
    ]));
    let s = sb.sync_ok(&["hr"]);
    assert_counts(s.only(), &[("created", 2)]);
    sb
}

fn evil_source(
    wasm: &std::path::Path,
    mode: &str,
    extra_config: &str,
    extra_source: &str,
) -> String {
    format!(
        "[sources.evil]\nplugin = {}\ntimeout = \"2s\"\nmemory_limit = \"64MiB\"\nmax_deletions = \"100%\"\n{extra_source}\n\
[sources.evil.config]\nmode = \"{mode}\"\n{extra_config}\n",
        toml_str(wasm.to_str().unwrap())
    )
}

fn sync_within(sb: &Sandbox, args: &[&str], envs: &[(&str, &str)]) -> Sync {
    let mut cmd = sb.command();
    cmd.args(["sync", "--json"]).args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = output_within(cmd, Duration::from_secs(300));
    let runs = match serde_json::from_slice::<Value>(&out.stdout) {
        Ok(Value::Array(a)) => a,
        _ => panic!("sync --json printed no JSON array\n{}", describe(&out)),
    };
    Sync { out, runs }
}

/// The hostile source's run fails with a message containing one of `words`, the database is
/// unchanged, and a CSV source in the same sync still commits.
fn assert_contained(mode: &str, extra_config: &str, words: &[&str]) {
    let sb = setup(mode, extra_config, "");
    let before = sb.db_state();

    let s = sync_within(&sb, &["evil"], &[]);
    assert_eq!(s.code(), 1, "{mode}: exit code\n{}", describe(&s.out));
    let run = s.only();
    assert_eq!(run["source"], "evil");
    assert_eq!(run["status"], "failed", "{mode}: {run:#}");
    let message = run["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{mode}: a failed run has a message: {run:#}"))
        .to_lowercase();
    assert!(
        words.iter().any(|w| message.contains(w)),
        "{mode}: the message {message:?} names none of {words:?}"
    );
    assert_eq!(sb.db_state(), before, "{mode}: the database changed");
    let runs = sb.runs();
    assert_eq!(runs[0]["source"], "evil");
    assert_eq!(
        runs[0]["status"], "failed",
        "{mode}: the run record: {:#}",
        runs[0]
    );

    // Both sources in one sync: hr's new user is committed, evil fails again.
    sb.write_csv(
        "users.csv",
        "username,full_name,cards,groups\nalice,Alice Smith,C-1,Staff|IT\nbob,Bob Jones,C-2,Staff\ncarol,Carol White,C-3,Staff\n",
    );
    let s = sync_within(&sb, &[], &[]);
    assert_eq!(s.code(), 1, "{mode}: exit code\n{}", describe(&s.out));
    assert_eq!(s.runs.len(), 2, "{:#?}", s.runs);
    let hr = s.run("hr");
    assert_eq!(hr["status"], "ok", "{mode}: {hr:#}");
    assert_counts(hr, &[("created", 1)]);
    assert_eq!(s.run("evil")["status"], "failed");
    assert_eq!(sb.users_by_name(), ["alice", "bob", "carol"], "{mode}");
}

#[test]
fn infinite_loop_is_stopped_by_the_deadline() {
    assert_contained("loop", "", &["timeout", "deadline"]);
}

#[test]
fn memory_growth_is_stopped_by_the_cap() {
    assert_contained("grow", "", &["memory"]);
}

#[test]
fn huge_batch_is_stopped_by_the_batch_cap() {
    assert_contained("huge-batch", "", &["batch"]);
}

#[test]
fn trap_fails_the_run() {
    assert_contained("trap", "", &["trap", "unreachable"]);
}

#[test]
fn trap_after_a_good_batch_commits_nothing() {
    assert_contained("half-then-trap", "count = 500", &["trap", "unreachable"]);
}

#[test]
fn plugin_error_at_open_fails_the_run_with_its_message() {
    assert_contained("fail-open", "", &["bad password for test"]);
}

#[test]
fn ok_mode_commits() {
    // The contrast: the same component, behaving, does change the database.
    let sb = setup("ok", "count = 25", "");
    let s = sync_within(&sb, &["evil"], &[]);
    assert_eq!(s.code(), 0, "{}", describe(&s.out));
    assert_counts(s.only(), &[("created", 25)]);
    assert_eq!(sb.users().len(), 27);
    assert_eq!(sb.user("u7")["source"], "evil");
}

#[test]
fn no_environment_and_no_filesystem() {
    // The env mode reports what it sees as attributes of a user `env`; [map] puts them where
    // the CLI shows them. Zero variables means the attribute has no values, so the template
    // yields nothing.
    let sb = setup(
        "env",
        "",
        "[sources.evil.map]\nnotes = \"%vars%\"\nstorage = \"%root%\"\n",
    );
    let s = sync_within(
        &sb,
        &["evil"],
        &[(SECRET_VAR, SECRET_VALUE), ("RUST_LOG", "debug")],
    );
    assert_eq!(s.code(), 0, "{}", describe(&s.out));
    let env = sb.json(&["users", "show", "env", "--json"]);
    assert_eq!(
        env["notes"],
        Value::Null,
        "the plugin sees environment variables: {env:#}"
    );
    let root = env["storage"].as_str().unwrap_or("");
    assert!(
        root.starts_with("error"),
        "the plugin can list `/`: {root:?} ({env:#})"
    );
    let everything = format!("{}\n{}\n{env}", stdout(&s.out), stderr(&s.out));
    assert!(!everything.contains(SECRET_VALUE), "the marker leaked");
    assert!(!everything.contains(SECRET_VAR), "the marker's name leaked");
}

#[test]
fn reading_an_ungranted_file_is_denied() {
    let sb = Sandbox::new();
    let secret = sb.write_file("secret.txt", FILE_SECRET);
    let wasm = hostile_wasm();
    sb.write_csv(
        "users.csv",
        &format!("username,full_name\nalice,{FILE_SECRET}x\n"),
    );
    for path in [
        secret.to_str().unwrap().to_string(),
        // The CSV file of another source: granted to that source only.
        "users.csv".to_string(),
        "/etc/passwd".to_string(),
    ] {
        sb.write_config(&config(&[
            csv_source("hr", "users.csv", ""),
            evil_source(
                &wasm,
                "read-file",
                &format!("path = {}", toml_str(&path)),
                "",
            ),
        ]));
        let before = sb.db_state();
        let s = sync_within(&sb, &["evil"], &[]);
        assert_eq!(s.code(), 1, "{path}\n{}", describe(&s.out));
        let run = s.only();
        assert_eq!(run["status"], "failed", "{path}: {run:#}");
        let message = run["message"].as_str().unwrap_or("").to_lowercase();
        assert!(message.contains("denied"), "{path}: {message:?}");
        let text = format!("{}\n{}", stdout(&s.out), stderr(&s.out));
        assert!(
            !text.contains(FILE_SECRET) && !text.contains("root:x:0:0"),
            "{path}: file content leaked"
        );
        assert_eq!(sb.db_state(), before);
    }
}

#[test]
fn guest_stdout_and_stderr_go_to_roster_log() {
    let sb = setup("stdout", "", "");
    let s = sync_within(&sb, &["evil"], &[]);
    assert_eq!(s.code(), 0, "{}", describe(&s.out));
    assert_counts(s.only(), &[("created", 3)]);
    let err = s.stderr();
    assert!(err.contains("hello from guest stdout"), "stderr:\n{err}");
    assert!(err.contains("hello from guest stderr"), "stderr:\n{err}");
    // stdout stays the JSON document.
    assert!(!stdout(&s.out).contains("hello from guest"));
}

/// Files under `<db dir>/.roster-cache/` ending in `.cwasm`, with size and modification time.
fn cache_files(sb: &Sandbox) -> Vec<(String, u64, std::time::SystemTime)> {
    let dir = sb.path(".roster-cache");
    let mut files = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            } else if e.path().extension().is_some_and(|x| x == "cwasm") {
                files.push((
                    e.path().display().to_string(),
                    meta.len(),
                    meta.modified().unwrap(),
                ));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn compiled_components_are_cached() {
    let sb = setup("ok", "", "");
    let s = sync_within(&sb, &["evil"], &[]);
    assert_eq!(s.code(), 0, "{}", describe(&s.out));
    let first = cache_files(&sb);
    assert!(
        !first.is_empty(),
        "no *.cwasm under {}",
        sb.path(".roster-cache").display()
    );
    let s = sync_within(&sb, &["evil"], &[]);
    assert_eq!(s.code(), 0, "{}", describe(&s.out));
    assert_eq!(
        cache_files(&sb),
        first,
        "the second sync rewrote or added compiled files"
    );
}

#[test]
fn sources_test_runs_sandboxed_too() {
    let sb = setup("loop", "", "");
    let before = sb.db_state();
    let mut cmd = sb.command();
    cmd.args(["sources", "test", "evil"]);
    let out = output_within(cmd, Duration::from_secs(300));
    assert_ne!(code(&out), 0, "{}", describe(&out));
    let text = format!("{}{}", stdout(&out), stderr(&out)).to_lowercase();
    assert!(
        text.contains("timeout") || text.contains("deadline"),
        "{}",
        describe(&out)
    );
    assert_eq!(sb.db_state(), before);
}

#[test]
fn a_wait_inside_the_host_is_stopped_by_the_deadline() {
    // The guest sleeps for an hour in a WASI clock wait: host time, not guest code.
    assert_contained("sleep", "", &["timeout", "deadline"]);
}

#[test]
fn open_files_are_capped_per_plugin_and_the_run_still_commits() {
    // The plugin opens its one granted file again and again and keeps every handle; the
    // host refuses past its cap, and the run (with its commit) goes on.
    let sb = Sandbox::new();
    sb.write_file("data.txt", "some data\n");
    let wasm = hostile_wasm();
    sb.write_config(&config(&[evil_source(
        &wasm,
        "hoard-files",
        "path = \"data.txt\"\ncount = 3",
        "files = [\"data.txt\"]\n[sources.evil.map]\nnotes = \"%held%\"\nstorage = \"%refusal%\"\n",
    )]));
    let s = sync_within(&sb, &[], &[]);
    assert_eq!(s.code(), 0, "{}", describe(&s.out));
    assert_counts(s.only(), &[("created", 4)]);
    let hoard = sb.json(&["users", "show", "hoard", "--json"]);
    assert_eq!(hoard["notes"], "64", "{hoard:#}");
    let refusal = hoard["storage"].as_str().unwrap_or("");
    assert!(
        refusal.contains("per-plugin limit") && refusal.contains("64"),
        "the refusal names the limit: {refusal:?}"
    );
}

#[test]
fn hoarding_host_handles_fails_the_run_naming_the_limit() {
    assert_contained("hoard-pollables", "", &["host resources"]);
}

#[test]
fn a_gigantic_batch_is_stopped_by_roster_batch_cap() {
    // About 144 MiB of names in 9,000 entries: under the entry cap, over the byte cap and
    // wasmtime's copy limit. The message is roster's, naming its cap.
    let sb = Sandbox::new();
    let wasm = hostile_wasm();
    let source = evil_source(&wasm, "gigantic-batch", "", "")
        .replace("memory_limit = \"64MiB\"", "memory_limit = \"1GiB\"")
        .replace("timeout = \"2s\"", "timeout = \"60s\"");
    sb.write_config(&config(&[source]));
    let before = sb.db_state();
    let s = sync_within(&sb, &[], &[]);
    assert_eq!(s.code(), 1, "{}", describe(&s.out));
    let message = s.only()["message"].as_str().unwrap_or("").to_string();
    assert!(
        message.contains("batch over the cap") && message.contains("10000 entries"),
        "{message:?}"
    );
    assert!(!message.contains("too much data"), "{message:?}");
    assert_eq!(sb.db_state(), before);
}

#[test]
fn a_trap_is_stored_as_its_cause_and_a_panic_with_its_message() {
    for (mode, cause) in [("trap", "unreachable"), ("panic", "the directory said no")] {
        let sb = setup(mode, "", "");
        let before = sb.db_state();
        // A host backtrace must not reach the record either.
        let s = sync_within(&sb, &["evil"], &[("RUST_BACKTRACE", "1")]);
        assert_eq!(s.code(), 1, "{mode}\n{}", describe(&s.out));
        let message = s.only()["message"].as_str().unwrap_or("").to_string();
        assert!(message.contains(cause), "{mode}: {message:?}");
        let stored = sb.runs()[0]["message"].as_str().unwrap_or("").to_string();
        assert_eq!(stored, message, "{mode}: the run record");
        assert!(
            !stored.contains("backtrace")
                && !stored.contains("wasm function")
                && stored.len() < 300,
            "{mode}: the stored message carries a backtrace: {stored:?}"
        );
        assert_eq!(sb.db_state(), before, "{mode}");
    }
}

/// A hostile source whose `api_url` is a Graph emulator, sending `count` background requests.
fn http_start_sandbox(g: &common::graph::Graph, count: u64) -> Sandbox {
    let sb = Sandbox::new();
    let wasm = hostile_wasm();
    sb.write_config(&config(&[evil_source(
        &wasm,
        "http-start",
        &format!(
            "api_url = \"{b}\"\napi_token = \"not-a-graph-token\"\npath = \"{b}/v1.0/users\"\ncount = {count}",
            b = g.base()
        ),
        "[sources.evil.map]\nnotes = \"%status%\"\n",
    )]));
    sb
}

#[test]
fn background_requests_arrive_and_are_capped_per_plugin() {
    let g = common::graph::Graph::start("s", 1);
    // Three held at once, then finished: each answer reaches the plugin (Graph refuses the
    // token, so every status is 401).
    let sb = http_start_sandbox(&g, 3);
    let s = sync_within(&sb, &[], &[]);
    assert_eq!(s.code(), 0, "{}", describe(&s.out));
    assert_counts(s.only(), &[("created", 3)]);
    for i in 0..3 {
        let u = sb.json(&["users", "show", &format!("http{i}"), "--json"]);
        assert_eq!(u["notes"], "401", "{u:#}");
    }
    assert_eq!(g.requests().len(), 3);

    // A fifth pending request is refused, naming the limit; nothing is stored.
    let sb = http_start_sandbox(&g, 5);
    let s = sync_within(&sb, &[], &[]);
    assert_eq!(s.code(), 1, "{}", describe(&s.out));
    let message = s.only()["message"].as_str().unwrap_or_default().to_string();
    assert!(
        message.contains("4 requests pending") && message.contains("per-plugin limit"),
        "{message}"
    );
    assert!(sb.users_by_name().is_empty());
}
