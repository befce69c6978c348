//! A connector that misbehaves on purpose, for the host's sandbox tests. Config key `mode`:
//!
//! - `ok`: `count` users (default 3) in batches of 1000: id `u{i}`, `username=u{i}`,
//!   `full_name=User {i}`.
//! - `loop`: `next-batch` spins forever.
//! - `grow`: `next-batch` allocates 1 MiB blocks, touching them, forever.
//! - `huge-batch`: `next-batch` returns one batch of 50,000 bare users (the cap is 10,000).
//! - `trap`: `next-batch` executes `unreachable`.
//! - `read-file`: `next-batch` opens `path` through the host; a failure is
//!   `plugin-error::config("open PATH: <error>")`, a success one user `file` whose `content`
//!   holds the file's first 100 bytes.
//! - `env`: one user `env` with `vars` (every environment variable as `K=V`), `args`, `cwd`
//!   and `root` (the outcome of listing `/`): what ambient authority the guest has.
//! - `stdout`: prints a line to stdout and one to stderr, then behaves like `ok`.
//! - `fail-open`: `open` returns `plugin-error::authentication("bad password for test")`.
//! - `half-then-trap`: the first batch holds `count` users like `ok`, the second call traps.
//! - `directory`: users (as rows) and group objects with nesting and memberships; `count`
//!   picks version 1 or 2 of the directory (see `directory`).
//! - `sleep`: `next-batch` sleeps for an hour (a WASI clock wait inside the host).
//! - `hoard-files`: opens `path` through the host again and again without closing it, until
//!   the host refuses (or 100,000 times); then one user `hoard` whose `held` is how many
//!   opens succeeded and `refusal` the host's answer, followed by `count` users like `ok`.
//! - `hoard-pollables`: creates clock pollables without dropping them, forever.
//! - `gigantic-batch`: one batch of 9,000 users with 16 KiB full names each (about 144 MiB:
//!   under the entry cap, over the byte cap and wasmtime's copy limit).
//! - `panic`: `next-batch` panics with the message `the directory said no`.
//! - `ldap-search`: connects through the host's `ldap` capability and searches
//!   `(objectClass=inetOrgPerson)` under `path` (or every configured base when empty), `count`
//!   entries a page: each `next-batch` is one page, a user per entry (id = DN, `username` =
//!   uid, `full_name` = cn, `page` = the page's number). A host error is a plugin error
//!   `unavailable("ldap: <kind>: <message>")`.
//! - `http-get`: sends `GET path` through the host's `http` capability with the credential
//!   `api` (a bearer token from the secret key `api_token`; `api_url`, a url key, grants the
//!   origin); one user `http` with `status` and `body` (the first 100 bytes). A host error is
//!   `unavailable("http: <kind>: <message>")`.
//! - `duplicate-ids`: users `u1`, `u2` and `u1` again.
//! - `dangling-member`: users `u0`, `u1` (member-of `g-missing`) and group `g1` with members
//!   `u0` and `u9` (no such user).
//! - `bad-row`: a batch with columns `username`, `full_name` and a row of `u1` with one value
//!   list.
//! - `delta-no-cursor`: `count` users like `ok`; a full run returns the cursor `c1`, a delta
//!   run ends in delta mode without one.
//! - `http-start`: sends `count` requests `GET path` in the background (`http.start`), holds
//!   them all, then finishes each: one user `httpN` per request with its `status`. A host
//!   error is as in `http-get`.
//!
//! `test` does what a run does and counts the users.

use std::cell::RefCell;

// The repository's wit/ directory.
wit_bindgen::generate!({
    path: "../../../wit",
    world: "source",
});

use exports::roster::plugin::connector::{
    Guest, GuestSession, RunEnd, RunRequest, Session, TestReport,
};
use roster::plugin::files::{self, FileError};
use roster::plugin::http::{self, HttpError};
use roster::plugin::ldap::{self, LdapError};
use roster::plugin::types::{
    Attribute, Batch, Capability, ConfigKey, Credential, CredentialKind, Entry, KeyType,
    ObjectKind, PluginError, PluginInfo, Row, RunMode, SourceObject,
};

const OK_BATCH: u64 = 1000;
/// Over the host's cap of 10,000 entries per batch, yet small enough to build in 64 MiB.
const HUGE_BATCH: u64 = 50_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Ok,
    Loop,
    Grow,
    HugeBatch,
    Trap,
    ReadFile,
    Env,
    Stdout,
    FailOpen,
    HalfThenTrap,
    Directory,
    Sleep,
    HoardFiles,
    HoardPollables,
    GiganticBatch,
    Panic,
    LdapSearch,
    HttpGet,
    DuplicateIds,
    DanglingMember,
    BadRow,
    DeltaNoCursor,
    HttpStart,
}

struct Config {
    mode: Mode,
    count: u64,
    path: String,
}

fn parse_config(json: &str) -> Result<Config, PluginError> {
    let value: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| PluginError::Config(format!("config is not valid JSON: {e}")))?;
    let mode = match value.get("mode").and_then(|m| m.as_str()) {
        None => return Err(PluginError::Config("mode: required".to_string())),
        Some("ok") => Mode::Ok,
        Some("loop") => Mode::Loop,
        Some("grow") => Mode::Grow,
        Some("huge-batch") => Mode::HugeBatch,
        Some("trap") => Mode::Trap,
        Some("read-file") => Mode::ReadFile,
        Some("env") => Mode::Env,
        Some("stdout") => Mode::Stdout,
        Some("fail-open") => Mode::FailOpen,
        Some("half-then-trap") => Mode::HalfThenTrap,
        Some("directory") => Mode::Directory,
        Some("sleep") => Mode::Sleep,
        Some("hoard-files") => Mode::HoardFiles,
        Some("hoard-pollables") => Mode::HoardPollables,
        Some("gigantic-batch") => Mode::GiganticBatch,
        Some("panic") => Mode::Panic,
        Some("ldap-search") => Mode::LdapSearch,
        Some("http-get") => Mode::HttpGet,
        Some("duplicate-ids") => Mode::DuplicateIds,
        Some("dangling-member") => Mode::DanglingMember,
        Some("bad-row") => Mode::BadRow,
        Some("delta-no-cursor") => Mode::DeltaNoCursor,
        Some("http-start") => Mode::HttpStart,
        Some(other) => return Err(PluginError::Config(format!("mode: unknown mode {other:?}"))),
    };
    let count = match value.get("count") {
        None | Some(serde_json::Value::Null) => 3,
        Some(c) => c
            .as_u64()
            .or_else(|| c.as_str().and_then(|s| s.parse().ok()))
            .ok_or_else(|| {
                PluginError::Config(format!("count: expected a non-negative integer, found {c}"))
            })?,
    };
    let path = value
        .get("path")
        .and_then(|p| p.as_str())
        .unwrap_or_default()
        .to_string();
    Ok(Config { mode, count, path })
}

fn user(id: &str, attributes: Vec<(&str, Vec<String>)>) -> Entry {
    let mut attrs = vec![Attribute {
        name: "username".to_string(),
        values: vec![id.to_string()],
    }];
    attrs.extend(attributes.into_iter().map(|(name, values)| Attribute {
        name: name.to_string(),
        values,
    }));
    Entry::Object(SourceObject {
        kind: ObjectKind::User,
        id: id.to_string(),
        locator: None,
        attributes: attrs,
        member_of: Vec::new(),
        members: Vec::new(),
        parent: None,
    })
}

/// `u{i}` for i in `range`.
fn numbered_users(range: std::ops::Range<u64>) -> Vec<Entry> {
    range
        .map(|i| {
            user(
                &format!("u{i}"),
                vec![("full_name", vec![format!("User {i}")])],
            )
        })
        .collect()
}

/// A small directory with group objects; `version` 1 or 2 (the second after changes):
/// - users u0..u3; u3 is a member of Staff through its own `member-of`;
/// - Staff lists IT as a member, so IT sits under Staff;
/// - IT has members u0, u1 (version 2: only u1);
/// - Ops names Staff as its parent and has member u2 (gone in version 2).
fn directory(version: u64) -> Batch {
    // Users as rows, groups as objects: a batch may mix them.
    let mut entries: Vec<Entry> = (0..4)
        .map(|i| {
            Entry::Row(Row {
                kind: ObjectKind::User,
                id: format!("u{i}"),
                locator: None,
                values: vec![vec![format!("u{i}")], vec![format!("User {i}")]],
                member_of: if i == 3 {
                    vec!["g-staff".into()]
                } else {
                    Vec::new()
                },
                members: Vec::new(),
                parent: None,
            })
        })
        .collect();
    let group = |id: &str, name: &str, parent: Option<&str>, members: &[&str]| {
        Entry::Object(SourceObject {
            kind: ObjectKind::Group,
            id: id.into(),
            locator: None,
            attributes: vec![Attribute {
                name: "cn".into(),
                values: vec![name.into()],
            }],
            member_of: Vec::new(),
            members: members.iter().map(|m| m.to_string()).collect(),
            parent: parent.map(String::from),
        })
    };
    entries.push(group("g-staff", "Staff", None, &["g-it"]));
    if version == 1 {
        entries.push(group("g-it", "IT", None, &["u0", "u1"]));
        entries.push(group("g-ops", "Ops", Some("g-staff"), &["u2"]));
    } else {
        entries.push(group("g-it", "IT", None, &["u1"]));
    }
    Batch {
        columns: vec!["username".into(), "full_name".into()],
        entries,
    }
}

/// A batch of objects only.
fn objects(entries: Vec<Entry>) -> Batch {
    Batch {
        columns: Vec::new(),
        entries,
    }
}

/// Users with an id and nothing else.
fn bare_users(range: std::ops::Range<u64>) -> Vec<Entry> {
    range.map(|i| user(&format!("u{i}"), Vec::new())).collect()
}

fn file_error(e: &FileError) -> String {
    match e {
        FileError::Denied(m) => format!("denied: {m}"),
        FileError::NotFound(m) => format!("not found: {m}"),
        FileError::Io(m) => format!("io: {m}"),
    }
}

fn read_file(path: &str) -> Result<Vec<Entry>, PluginError> {
    let open_error = |e: FileError| PluginError::Config(format!("open {path}: {}", file_error(&e)));
    let file = files::open(path).map_err(open_error)?;
    let mut content = Vec::new();
    while content.len() < 100 {
        let chunk = file.read(100 - content.len() as u32).map_err(open_error)?;
        if chunk.is_empty() {
            break;
        }
        content.extend_from_slice(&chunk);
    }
    content.truncate(100);
    Ok(vec![user(
        "file",
        vec![(
            "content",
            vec![String::from_utf8_lossy(&content).into_owned()],
        )],
    )])
}

fn env_report() -> Vec<Entry> {
    let vars = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
    let args = std::env::args().collect();
    let cwd = match std::env::current_dir() {
        Ok(dir) => dir.display().to_string(),
        Err(e) => format!("error: {e}"),
    };
    let root = match std::fs::read_dir("/") {
        Ok(entries) => entries
            .map(|e| match e {
                Ok(e) => e.path().display().to_string(),
                Err(e) => format!("error: {e}"),
            })
            .collect(),
        Err(e) => vec![format!("error: {e}")],
    };
    vec![user(
        "env",
        vec![
            ("vars", vars),
            ("args", args),
            ("cwd", vec![cwd]),
            ("root", root),
        ],
    )]
}

/// Never returns, and the optimiser cannot prove the loop does nothing.
fn spin() -> ! {
    let mut n = 0u64;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// Allocates 1 MiB blocks, writing to every page, until the host stops it.
fn grow() -> ! {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; 1 << 20];
        for byte in block.iter_mut().step_by(4096) {
            *byte = 1;
        }
        blocks.push(std::hint::black_box(block));
    }
}

fn trap() -> ! {
    core::arch::wasm32::unreachable()
}

/// Opens `path` until the host refuses, keeping every handle.
fn hoard_files(path: &str) -> Entry {
    let mut held = Vec::new();
    let mut refusal = String::from("none");
    while held.len() < 100_000 {
        match files::open(path) {
            Ok(f) => held.push(f),
            Err(e) => {
                refusal = file_error(&e);
                break;
            }
        }
    }
    let entry = user(
        "hoard",
        vec![
            ("held", vec![held.len().to_string()]),
            ("refusal", vec![refusal]),
        ],
    );
    // Keep the handles open for the rest of the run.
    std::mem::forget(held);
    entry
}

/// Creates clock pollables and never drops them.
fn hoard_pollables() -> ! {
    loop {
        std::mem::forget(wasip2::clocks::monotonic_clock::subscribe_duration(1 << 40));
    }
}

fn ldap_error(e: LdapError) -> PluginError {
    let (kind, m) = match e {
        LdapError::InvalidCredentials(m) => ("invalid-credentials", m),
        LdapError::Tls(m) => ("tls", m),
        LdapError::Unreachable(m) => ("unreachable", m),
        LdapError::NoSuchBase(m) => ("no-such-base", m),
        LdapError::TimeLimit(m) => ("time-limit", m),
        LdapError::Denied(m) => ("denied", m),
        LdapError::Other(m) => ("other", m),
    };
    PluginError::Unavailable(format!("ldap: {kind}: {m}"))
}

fn text(values: &[Vec<u8>]) -> Vec<String> {
    values
        .iter()
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

/// The next page of the `ldap-search` mode's search, started on the first call.
fn ldap_page(state: &mut State) -> Result<Option<Batch>, PluginError> {
    if state.search.is_none() {
        let conn = ldap::connect().map_err(ldap_error)?;
        let base = Some(state.config.path.clone()).filter(|p| !p.is_empty());
        let search = conn
            .search(&ldap::SearchRequest {
                base,
                scope: ldap::Scope::Subtree,
                filter: "(objectClass=inetOrgPerson)".into(),
                attributes: vec!["uid".into(), "cn".into()],
                page_size: state.config.count as u32,
                show_deleted: false,
            })
            .map_err(ldap_error)?;
        state.search = Some((conn, search));
    }
    let (_, search) = state.search.as_ref().unwrap();
    let Some(entries) = search.next_page().map_err(ldap_error)? else {
        return Ok(None);
    };
    state.emitted += 1;
    let page = state.emitted.to_string();
    let users = entries
        .into_iter()
        .map(|e| {
            let get = |name: &str| {
                e.attributes
                    .iter()
                    .find(|a| a.name.eq_ignore_ascii_case(name))
                    .map(|a| text(&a.values))
                    .unwrap_or_default()
            };
            let mut u = user(
                &e.dn,
                vec![("full_name", get("cn")), ("page", vec![page.clone()])],
            );
            if let Entry::Object(o) = &mut u {
                o.attributes[0].values = get("uid");
            }
            u
        })
        .collect();
    Ok(Some(objects(users)))
}

fn get(url: &str) -> http::Request {
    http::Request {
        method: "GET".into(),
        url: url.into(),
        headers: Vec::new(),
        body: None,
        credential: Some("api".into()),
    }
}

fn http_error(e: HttpError) -> PluginError {
    let (kind, m) = match e {
        HttpError::Denied(m) => ("denied", m),
        HttpError::Timeout(m) => ("timeout", m),
        HttpError::TooLarge(m) => ("too-large", m),
        HttpError::Unavailable(m) => ("unavailable", m),
        HttpError::Authentication(m) => ("authentication", m),
        HttpError::Other(m) => ("other", m),
    };
    PluginError::Unavailable(format!("http: {kind}: {m}"))
}

fn http_start(url: &str, count: u64) -> Result<Vec<Entry>, PluginError> {
    let pending = (0..count)
        .map(|_| http::start(&get(url)).map_err(http_error))
        .collect::<Result<Vec<_>, _>>()?;
    (pending.iter().enumerate())
        .map(|(i, p)| {
            let r = p.finish().map_err(http_error)?;
            Ok(user(
                &format!("http{i}"),
                vec![("status", vec![r.status.to_string()])],
            ))
        })
        .collect()
}

fn http_get(url: &str) -> Result<Vec<Entry>, PluginError> {
    let r = http::send(&get(url)).map_err(http_error)?;
    let body = String::from_utf8_lossy(&r.body[..r.body.len().min(100)]).into_owned();
    Ok(vec![user(
        "http",
        vec![("status", vec![r.status.to_string()]), ("body", vec![body])],
    )])
}

/// 9,000 users with 16 KiB names.
fn gigantic_users() -> Vec<Entry> {
    let name = "x".repeat(16 << 10);
    (0..9_000)
        .map(|i| user(&format!("u{i}"), vec![("full_name", vec![name.clone()])]))
        .collect()
}

struct Component;

export!(Component);

impl Guest for Component {
    type Session = HostileSession;

    fn info() -> PluginInfo {
        let key = |name: &str, ty, required, default: Option<&str>, description: &str| ConfigKey {
            name: name.to_string(),
            type_: ty,
            required,
            default: default.map(str::to_string),
            description: description.to_string(),
        };
        PluginInfo {
            name: "hostile".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: "Misbehaves on purpose, for roster's sandbox tests".to_string(),
            config_keys: vec![
                key(
                    "mode",
                    KeyType::String,
                    true,
                    None,
                    "ok, loop, grow, huge-batch, trap, read-file, env, stdout, fail-open, \
                     half-then-trap, directory, sleep, hoard-files, hoard-pollables, \
                     gigantic-batch, panic, ldap-search, http-get, http-start, duplicate-ids, \
                     dangling-member, bad-row or delta-no-cursor",
                ),
                key("count", KeyType::Integer, false, Some("3"), "Users to emit"),
                // The host's ldap connection keys (ldap-search mode).
                key("url", KeyType::List, false, None, "LDAP URLs"),
                key("bind_dn", KeyType::String, false, None, "Bind DN"),
                key("password", KeyType::Secret, false, None, "Bind password"),
                key("base_dn", KeyType::List, false, None, "Base DNs"),
                key(
                    "timeout",
                    KeyType::Duration,
                    false,
                    Some("30s"),
                    "Per operation",
                ),
                key(
                    "starttls",
                    KeyType::Boolean,
                    false,
                    Some("false"),
                    "StartTLS",
                ),
                key("ca_file", KeyType::File, false, None, "CA certificates"),
                key(
                    "tls_verify",
                    KeyType::Boolean,
                    false,
                    Some("true"),
                    "Verify TLS",
                ),
                // The http capability's keys (http-get mode).
                key(
                    "api_url",
                    KeyType::Url,
                    false,
                    None,
                    "Origin http-get may reach",
                ),
                key("api_token", KeyType::Secret, false, None, "Bearer token"),
                // Deliberately a string, not a file: the host grants nothing for it.
                key(
                    "path",
                    KeyType::String,
                    false,
                    None,
                    "File that read-file tries to open",
                ),
            ],
            capabilities: vec![
                Capability {
                    name: "files".to_string(),
                    reason: "read-file mode tries to open `path`".to_string(),
                },
                Capability {
                    name: "log".to_string(),
                    reason: "logging".to_string(),
                },
                Capability {
                    name: "http".to_string(),
                    reason: "http-get mode fetches `path`".to_string(),
                },
                Capability {
                    name: "ldap".to_string(),
                    reason: "ldap-search mode searches the source's directory".to_string(),
                },
            ],
            defaults: Vec::new(),
            credentials: vec![Credential {
                name: "api".into(),
                kind: CredentialKind::Bearer("api_token".into()),
            }],
        }
    }

    fn test(config: String) -> Result<TestReport, PluginError> {
        let session = HostileSession::open(&config, RunMode::Full)?;
        let mut users = 0;
        let mut sample = None;
        while let Some(batch) = session.next_batch()? {
            for entry in batch.entries {
                match entry {
                    Entry::Object(object) => {
                        users += 1;
                        sample.get_or_insert(object);
                    }
                    Entry::Row(_) => users += 1,
                    _ => {}
                }
            }
        }
        Ok(TestReport {
            users: Some(users),
            groups: None,
            sample,
            messages: vec![format!("mode {:?}", session.state.borrow().config.mode)],
        })
    }

    fn open(request: RunRequest) -> Result<Session, PluginError> {
        Ok(Session::new(HostileSession::open(
            &request.config,
            request.mode,
        )?))
    }
}

struct State {
    config: Config,
    /// `next-batch` calls so far.
    calls: u64,
    /// Users emitted so far (ok, stdout); pages so far (ldap-search).
    emitted: u64,
    /// The connection and search of `ldap-search`.
    search: Option<(ldap::Connection, ldap::Search)>,
    /// What the host asked for.
    requested: RunMode,
}

struct HostileSession {
    state: RefCell<State>,
}

impl HostileSession {
    fn open(config: &str, requested: RunMode) -> Result<HostileSession, PluginError> {
        let config = parse_config(config)?;
        match config.mode {
            Mode::FailOpen => {
                return Err(PluginError::Authentication(
                    "bad password for test".to_string(),
                ))
            }
            Mode::Stdout => {
                println!("hello from guest stdout");
                eprintln!("hello from guest stderr");
            }
            _ => {}
        }
        Ok(HostileSession {
            state: RefCell::new(State {
                config,
                calls: 0,
                emitted: 0,
                search: None,
                requested,
            }),
        })
    }
}

impl GuestSession for HostileSession {
    fn next_batch(&self) -> Result<Option<Batch>, PluginError> {
        let mut state = self.state.borrow_mut();
        state.calls += 1;
        let first = state.calls == 1;
        match state.config.mode {
            Mode::Ok | Mode::Stdout | Mode::FailOpen | Mode::DeltaNoCursor => {
                let start = state.emitted;
                let end = state.config.count.min(start + OK_BATCH);
                if start == end {
                    return Ok(None);
                }
                state.emitted = end;
                Ok(Some(objects(numbered_users(start..end))))
            }
            Mode::Loop => spin(),
            Mode::Grow => grow(),
            Mode::Trap => trap(),
            Mode::HugeBatch => Ok(first.then(|| objects(bare_users(0..HUGE_BATCH)))),
            Mode::HalfThenTrap if first => Ok(Some(objects(numbered_users(0..state.config.count)))),
            Mode::HalfThenTrap => trap(),
            Mode::ReadFile if first => read_file(&state.config.path).map(|e| Some(objects(e))),
            Mode::Env if first => Ok(Some(objects(env_report()))),
            Mode::Directory if first => Ok(Some(directory(state.config.count))),
            Mode::ReadFile | Mode::Env | Mode::Directory => Ok(None),
            Mode::Sleep => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                Ok(None)
            }
            Mode::HoardFiles if first => {
                let mut entries = vec![hoard_files(&state.config.path)];
                entries.extend(numbered_users(0..state.config.count));
                Ok(Some(objects(entries)))
            }
            Mode::HoardFiles => Ok(None),
            Mode::HoardPollables => hoard_pollables(),
            Mode::GiganticBatch => Ok(first.then(|| objects(gigantic_users()))),
            Mode::Panic => panic!("the directory said no"),
            Mode::LdapSearch => ldap_page(&mut state),
            Mode::HttpGet if first => http_get(&state.config.path).map(|e| Some(objects(e))),
            Mode::HttpGet => Ok(None),
            Mode::DuplicateIds if first => Ok(Some(objects(
                ["u1", "u2", "u1"]
                    .iter()
                    .map(|id| user(id, Vec::new()))
                    .collect(),
            ))),
            Mode::DanglingMember if first => {
                let mut entries = bare_users(0..2);
                if let Entry::Object(o) = &mut entries[1] {
                    o.member_of.push("g-missing".into());
                }
                entries.push(Entry::Object(SourceObject {
                    kind: ObjectKind::Group,
                    id: "g1".into(),
                    locator: None,
                    attributes: Vec::new(),
                    member_of: Vec::new(),
                    members: vec!["u0".into(), "u9".into()],
                    parent: None,
                }));
                Ok(Some(objects(entries)))
            }
            Mode::BadRow if first => Ok(Some(Batch {
                columns: vec!["username".into(), "full_name".into()],
                entries: vec![Entry::Row(Row {
                    kind: ObjectKind::User,
                    id: "u1".into(),
                    locator: None,
                    values: vec![vec!["u1".into()]],
                    member_of: Vec::new(),
                    members: Vec::new(),
                    parent: None,
                })],
            })),
            Mode::DuplicateIds | Mode::DanglingMember | Mode::BadRow => Ok(None),
            Mode::HttpStart if first => {
                http_start(&state.config.path, state.config.count).map(|e| Some(objects(e)))
            }
            Mode::HttpStart => Ok(None),
        }
    }

    fn finish(&self) -> Result<RunEnd, PluginError> {
        let state = self.state.borrow();
        if state.config.mode == Mode::DeltaNoCursor {
            return Ok(match state.requested {
                RunMode::Full => RunEnd {
                    mode: RunMode::Full,
                    cursor: Some("c1".into()),
                    notices: Vec::new(),
                },
                RunMode::Delta => RunEnd {
                    mode: RunMode::Delta,
                    cursor: None,
                    notices: Vec::new(),
                },
            });
        }
        Ok(RunEnd {
            mode: RunMode::Full,
            cursor: None,
            notices: Vec::new(),
        })
    }
}
