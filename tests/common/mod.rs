//! Shared helpers of roster's end-to-end tests: a sandbox directory holding a config, its
//! CSV files and its database, a runner for the `roster` binary, JSON helpers, and the
//! hostile test component.
#![allow(dead_code)]

pub mod slapd;

use serde_json::Value;

pub mod google;
pub mod graph;
pub mod notify;
pub mod pg;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub mod samba;

/// A loopback listener for the API emulators whose connections send without delay
/// (TCP_NODELAY, which accepted sockets inherit). Without it, the last piece of each large
/// answer waited for the client's delayed ACK (Nagle): 40 ms a page on a kept-alive
/// connection, a stall real API front ends do not have.
pub fn nodelay_listener() -> std::net::TcpListener {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a socket");
    socket.set_tcp_nodelay(true).expect("TCP_NODELAY");
    let addr: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    socket.bind(&addr.into()).expect("bind to loopback");
    socket.listen(128).expect("listen");
    socket.into()
}

/// The `roster` binary under test.
pub fn roster_bin() -> &'static str {
    env!("CARGO_BIN_EXE_roster")
}

/// The repository root (the host crate lives in `<root>/host`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host crate has a parent directory")
        .to_path_buf()
}

/// Whether the suites run on PostgreSQL (`ROSTER_TEST_STORE=postgres`) rather than on
/// SQLite: a sandbox's `database = "roster.db"` then becomes a database of its own on the
/// binary's shared server.
pub fn on_postgres() -> bool {
    std::env::var("ROSTER_TEST_STORE").as_deref() == Ok("postgres")
}

/// A temporary directory with `roster.toml`, the source files and the database.
pub struct Sandbox {
    dir: tempfile::TempDir,
    /// On PostgreSQL: this sandbox's database, made at its first config.
    pg_url: OnceLock<String>,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("roster-test-")
            .tempdir()
            .expect("create temp dir");
        Sandbox {
            dir,
            pg_url: OnceLock::new(),
        }
    }

    /// This sandbox's PostgreSQL database (made on first use).
    pub fn pg_url(&self) -> &str {
        self.pg_url.get_or_init(|| pg::server().new_database())
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    pub fn config_path(&self) -> PathBuf {
        self.path("roster.toml")
    }

    /// Default database location (`database = "roster.db"`).
    pub fn db_path(&self) -> PathBuf {
        self.path("roster.db")
    }

    pub fn write_file(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, contents).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }

    /// Writes `roster.toml` as given; on PostgreSQL (see [`on_postgres`]), with this
    /// sandbox's database in place of `roster.db`.
    pub fn write_config(&self, toml: &str) -> PathBuf {
        if !on_postgres() {
            return self.write_file("roster.toml", toml);
        }
        let line = format!("database = \"{}\"", self.pg_url());
        let toml = if toml.contains("database = \"roster.db\"") {
            toml.replace("database = \"roster.db\"", &line)
        } else if toml.lines().any(|l| l.trim_start().starts_with("database")) {
            toml.to_string()
        } else {
            format!("{line}\n{toml}")
        };
        self.write_file("roster.toml", toml)
    }

    pub fn write_csv(&self, name: &str, contents: &str) -> PathBuf {
        self.write_file(name, contents)
    }

    /// A `roster` command with ROSTER_CONFIG pointing at this sandbox's config, run from the
    /// sandbox directory, with a clean logging environment.
    pub fn command(&self) -> Command {
        let mut c = Command::new(roster_bin());
        c.current_dir(self.root())
            .env("ROSTER_CONFIG", self.config_path())
            .env_remove("RUST_LOG")
            .env_remove("ROSTER_TEST_SECRET");
        c
    }

    pub fn roster(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run roster {args:?}: {e}"))
    }

    pub fn roster_env(&self, args: &[&str], envs: &[(&str, &str)]) -> Output {
        let mut c = self.command();
        for (k, v) in envs {
            c.env(k, v);
        }
        c.args(args)
            .output()
            .unwrap_or_else(|e| panic!("run roster {args:?}: {e}"))
    }

    /// Runs roster, asserts exit code 0 and returns the output.
    pub fn roster_ok(&self, args: &[&str]) -> Output {
        let out = self.roster(args);
        assert_eq!(code(&out), 0, "roster {args:?} failed\n{}", describe(&out));
        out
    }

    /// Runs roster (a `--json` command), asserts exit 0 and parses stdout.
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.roster_ok(args);
        parse_json(&out, args)
    }

    /// `roster sync --json ARGS`: the output and the parsed array of run objects, whatever the
    /// exit code (callers assert it).
    pub fn sync(&self, args: &[&str]) -> Sync {
        let mut full = vec!["sync", "--json"];
        full.extend_from_slice(args);
        let out = self.roster(&full);
        let runs = match serde_json::from_slice::<Value>(&out.stdout) {
            Ok(Value::Array(a)) => a,
            Ok(other) => panic!(
                "sync --json printed a non-array: {other}\n{}",
                describe(&out)
            ),
            Err(e) => panic!("sync --json printed no JSON ({e})\n{}", describe(&out)),
        };
        Sync { out, runs }
    }

    /// `roster sync --json ARGS`, asserting exit 0 and status ok for every run.
    pub fn sync_ok(&self, args: &[&str]) -> Sync {
        let s = self.sync(args);
        assert_eq!(
            code(&s.out),
            0,
            "sync {args:?} exit code\n{}",
            describe(&s.out)
        );
        for r in &s.runs {
            assert_eq!(r["status"], "ok", "run not ok: {r:#}\n{}", describe(&s.out));
        }
        s
    }

    /// `users list --all --json`.
    pub fn users(&self) -> Vec<Value> {
        as_array(self.json(&["users", "list", "--all", "--json"]))
    }

    /// `users list --json` (active users only).
    pub fn active_users(&self) -> Vec<Value> {
        as_array(self.json(&["users", "list", "--json"]))
    }

    /// The user named `username` from `users list --all --json`; panics if absent.
    pub fn user(&self, username: &str) -> Value {
        let users = self.users();
        find_user(&users, username)
            .cloned()
            .unwrap_or_else(|| panic!("user {username:?} not in {}", usernames(&users).join(",")))
    }

    pub fn users_by_name(&self) -> Vec<String> {
        usernames(&self.users())
    }

    /// `groups list --json`.
    pub fn groups(&self) -> Vec<Value> {
        as_array(self.json(&["groups", "list", "--json"]))
    }

    /// `runs list --json`, newest first.
    pub fn runs(&self) -> Vec<Value> {
        as_array(self.json(&["runs", "list", "--json"]))
    }

    /// `runs show ID --json`.
    pub fn run_show(&self, id: &Value) -> Value {
        let id = id_string(id);
        self.json(&["runs", "show", &id, "--json"])
    }

    /// Everything a sync may change about users and groups, for "database unchanged" checks.
    pub fn db_state(&self) -> Value {
        serde_json::json!({
            "users": self.json(&["users", "list", "--all", "--json"]),
            "groups": self.json(&["groups", "list", "--json"]),
        })
    }

    /// Everything the database holds, as bytes, for "never stored" checks: the SQLite file
    /// and its WAL, or on PostgreSQL every table's rows as text.
    pub fn db_bytes(&self) -> Vec<u8> {
        let files = self.db_files();
        assert!(files.iter().any(|(_, b)| b.is_some()), "no database");
        files
            .into_iter()
            .flat_map(|(_, b)| b.unwrap_or_default())
            .collect()
    }

    /// Runs a statement on whichever store the sandbox uses, with text arguments `?1`..,
    /// as another tool writing to the database would; returns the rows changed.
    pub fn db_execute(&self, sql: &str, args: &[&str]) -> u64 {
        if on_postgres() {
            let args: Vec<&(dyn postgres::types::ToSql + std::marker::Sync)> =
                args.iter().map(|a| a as _).collect();
            let sql = pg_params(sql);
            let mut client = pg::server().client(self.pg_url());
            return client
                .execute(&sql, &args)
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        let db = rusqlite::Connection::open(self.db_path()).unwrap();
        let n = db.execute(sql, rusqlite::params_from_iter(args));
        n.unwrap_or_else(|e| panic!("{sql}: {e}")) as u64
    }

    /// The first column of a query's rows, as text, on whichever store the sandbox uses.
    pub fn db_strings(&self, sql: &str) -> Vec<String> {
        if on_postgres() {
            let sql = pg_params(sql);
            let mut client = pg::server().client(self.pg_url());
            let rows = client
                .query(&sql, &[])
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            return rows.iter().map(|r| r.get(0)).collect();
        }
        let db = rusqlite::Connection::open(self.db_path()).unwrap();
        let mut st = db.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let rows = st.query_map([], |r| r.get::<_, String>(0)).unwrap();
        rows.map(Result::unwrap).collect()
    }

    /// A live run lease on `source` held by another node (a `roster sync` elsewhere), until
    /// the returned value is dropped.
    pub fn hold_lease_elsewhere(&self, source: &str) -> ForeignLease {
        if on_postgres() {
            let mut client = pg::server().client(self.pg_url());
            client
                .batch_execute("SET application_name = 'roster sync|1|other-host'")
                .unwrap();
            let key = roster::store::pg::PgLeases::key(source);
            let got: bool = (client.query_one("SELECT pg_try_advisory_lock($1)", &[&key]))
                .unwrap()
                .get(0);
            assert!(got, "lease on {source} is taken");
            return ForeignLease::Pg(client);
        }
        let mut leases = self.db_path().into_os_string();
        leases.push("-lease");
        let db = rusqlite::Connection::open(leases).unwrap();
        db.execute(
            "INSERT INTO leases(source, token, host, pid, process, node, start, since, expires)
             VALUES (?1, 't', 'other-host', 1, 'roster sync', 'other-node', 0,
                     '2026-01-01T00:00:00Z', 32503680000000)",
            [source],
        )
        .unwrap();
        ForeignLease::Lite(db, source.to_string())
    }

    /// The raw bytes of the database and its WAL (if any), for "wrote nothing" checks; on
    /// PostgreSQL, every table's rows.
    pub fn db_files(&self) -> Vec<(String, Option<Vec<u8>>)> {
        if on_postgres() {
            let mut client = pg::server().client(self.pg_url());
            return (roster::store::pg::TABLES.iter())
                .map(|t| {
                    let rows = client
                        .query(&format!("SELECT t::text FROM {t} t ORDER BY 1"), &[])
                        .unwrap();
                    let text: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
                    (t.to_string(), Some(text.join("\n").into_bytes()))
                })
                .collect();
        }
        let db = self.db_path();
        let name = db.file_name().unwrap().to_string_lossy().to_string();
        [name.clone(), format!("{name}-wal")]
            .into_iter()
            .map(|n| {
                let bytes = std::fs::read(db.with_file_name(&n)).ok();
                (n, bytes)
            })
            .collect()
    }
}

/// The result of `sync --json`.
pub struct Sync {
    pub out: Output,
    pub runs: Vec<Value>,
}

impl Sync {
    pub fn code(&self) -> i32 {
        code(&self.out)
    }

    /// The single run of the sync (panics if there is not exactly one).
    pub fn only(&self) -> &Value {
        assert_eq!(
            self.runs.len(),
            1,
            "expected one run object, got {:#?}\n{}",
            self.runs,
            describe(&self.out)
        );
        &self.runs[0]
    }

    /// The run of `source`.
    pub fn run(&self, source: &str) -> &Value {
        self.runs
            .iter()
            .find(|r| r["source"] == source)
            .unwrap_or_else(|| panic!("no run for {source}: {:#?}", self.runs))
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
}

pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exit status plus both streams (truncated), for assertion messages.
pub fn describe(out: &Output) -> String {
    fn cut(s: String) -> String {
        if s.len() > 6000 {
            let mut end = 6000;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}... [{} bytes]", &s[..end], s.len())
        } else {
            s
        }
    }
    format!(
        "exit: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        cut(stdout(out)),
        cut(stderr(out))
    )
}

pub fn parse_json(out: &Output, args: &[&str]) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "roster {args:?}: stdout is not JSON ({e})\n{}",
            describe(out)
        )
    })
}

pub fn as_array(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        other => panic!("expected a JSON array, got {other}"),
    }
}

pub fn find_user<'a>(users: &'a [Value], username: &str) -> Option<&'a Value> {
    users.iter().find(|u| u["username"] == username)
}

pub fn usernames(users: &[Value]) -> Vec<String> {
    users
        .iter()
        .map(|u| {
            u["username"]
                .as_str()
                .unwrap_or("<no username>")
                .to_string()
        })
        .collect()
}

/// A JSON array of strings as a sorted Vec (order-insensitive comparisons).
pub fn strs(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("expected an array of strings, got {v}"))
        .iter()
        .map(|s| {
            s.as_str()
                .unwrap_or_else(|| panic!("not a string: {s}"))
                .to_string()
        })
        .collect();
    out.sort();
    out
}

/// Sorted owned strings from literals.
pub fn sorted(items: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// A run id as it is typed on the command line.
pub fn id_string(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("run id is neither number nor string: {other}"),
    }
}

/// Asserts the count fields of a run object.
#[track_caller]
pub fn assert_counts(run: &Value, expected: &[(&str, u64)]) {
    for (k, v) in expected {
        assert_eq!(
            run[*k].as_u64(),
            Some(*v),
            "count {k:?} of run is {} (expected {v}): {run:#}",
            run[*k]
        );
    }
}

/// A `[sources.NAME]` block for the built-in CSV plugin with extra option lines.
pub fn csv_source(name: &str, file: &str, options: &str) -> String {
    format!(
        "[sources.{name}]\nplugin = \"csv\"\n{options}\n[sources.{name}.config]\npath = \"{file}\"\n"
    )
}

/// A config with `database = "roster.db"` and the given source blocks.
pub fn config(sources: &[String]) -> String {
    let mut s = String::from("database = \"roster.db\"\n\n");
    for src in sources {
        s.push_str(src);
        s.push('\n');
    }
    s
}

#[path = "../../host/guest_build.rs"]
mod guest_build;

/// Builds the test components of the guest workspace for wasm32-wasip2 (once per test
/// process) and returns the path of `hostile.wasm`. Cargo's own lock on the target dir
/// serialises concurrent builds from other test binaries.
pub fn hostile_wasm() -> PathBuf {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| guest_wasm("hostile", "hostile"))
        .clone()
}

/// The `undeclared` test component (tests/components/undeclared), built on first use.
pub fn undeclared_wasm() -> PathBuf {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| guest_wasm("undeclared", "undeclared"))
        .clone()
}

/// The `sdk-probe` test component (tests/components/sdk-probe), built on first use.
pub fn sdk_probe_wasm() -> PathBuf {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| guest_wasm("sdk-probe", "sdk_probe"))
        .clone()
}

/// The `ldap-lists` test component (tests/components/ldap-lists), built on first use.
pub fn ldap_lists_wasm() -> PathBuf {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| guest_wasm("ldap-lists", "ldap_lists"))
        .clone()
}

/// Builds a test component of the guest workspace.
fn guest_wasm(package: &str, artifact: &str) -> PathBuf {
    let root = repo_root();
    let target_dir = root.join("plugins/target");
    let built = guest_build::build_guests(&root, &[(package, artifact)], &target_dir)
        .unwrap_or_else(|e| panic!("{e}"));
    built[0].clone()
}

/// TOML string literal (basic string) of a path or text.
pub fn toml_str(s: impl AsRef<str>) -> String {
    let s = s.as_ref();
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Starts `roster serve` for the sandbox's config: the process, its base URL once it
/// listens, and every line it logs (collected on a thread, as they come).
pub fn spawn_serve(
    sb: &Sandbox,
) -> (
    std::process::Child,
    String,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::sync::{Arc, Mutex};
    let mut child = sb
        .command()
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start roster serve");
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let lines = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(i) = line.find("listening on ") {
                let _ = tx.send(line[i + 13..].trim().to_string());
            }
            lines.lock().unwrap().push(line);
        }
    });
    let base = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("serve did not listen: {:?}", log.lock().unwrap()));
    (child, base, log)
}

/// `?N` as PostgreSQL's `$N`, for the tests' own statements.
fn pg_params(sql: &str) -> String {
    sql.replace('?', "$")
}

/// See [`Sandbox::hold_lease_elsewhere`].
pub enum ForeignLease {
    Lite(rusqlite::Connection, String),
    /// The advisory lock lives as long as this session.
    Pg(postgres::Client),
}

impl Drop for ForeignLease {
    fn drop(&mut self) {
        if let ForeignLease::Lite(db, source) = self {
            db.execute("DELETE FROM leases WHERE source = ?1", [&*source])
                .unwrap();
        }
    }
}
