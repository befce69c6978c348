//! The WebAssembly component (world `script`): a `roster-plugin` connector for source
//! scripts and a `roster-plugin` mapper for mapping scripts, on top of [`crate::source`] and
//! [`crate::mapper`].

use std::cell::RefCell;
use std::rc::Rc;

use crate::engine::SOURCE_OPERATIONS;
use crate::mapper::{self, Settings};
use crate::source::{self, Emitted, Kind};
use crate::{Host, LdapEntry};

use roster_plugin::host::files::{self, FileError};
use roster_plugin::host::http::{self, HttpError, Request};
use roster_plugin::host::ldap::{self, LdapError, Scope, SearchRequest};
use roster_plugin::{emit, log, Batch, Batches, Config, Connector, Error, Group, Info, Item};
use roster_plugin::{Key, KeyType, Mapper, Run, TestReport, User};

/// Bytes asked of the host per read.
const READ_CHUNK: u32 = 1 << 20;

struct Script;

roster_plugin::export!(Script);
roster_plugin::export_mapper!(ScriptMapper);

/// The host's capabilities, as the engine's [`Host`].
#[derive(Default)]
struct Capabilities {
    ldap: RefCell<Option<ldap::Connection>>,
}

impl Host for Capabilities {
    fn read_file(&self, path: &str) -> Result<Vec<u8>, String> {
        let file = files::open(path).map_err(file_error)?;
        let mut out = Vec::with_capacity(file.size() as usize);
        loop {
            let chunk = file.read(READ_CHUNK).map_err(file_error)?;
            if chunk.is_empty() {
                return Ok(out);
            }
            out.extend_from_slice(&chunk);
        }
    }

    fn http_get(&self, url: &str) -> Result<(u16, Vec<u8>), String> {
        let r = http::send(&Request {
            method: "GET".into(),
            url: url.into(),
            headers: Vec::new(),
            body: None,
            credential: None,
        })
        .map_err(|e| match e {
            HttpError::Denied(m) => format!("GET {url}: denied: {m}"),
            HttpError::Timeout(m)
            | HttpError::TooLarge(m)
            | HttpError::Unavailable(m)
            | HttpError::Authentication(m)
            | HttpError::Other(m) => format!("GET {url}: {m}"),
        })?;
        Ok((r.status, r.body))
    }

    fn ldap_search(&self, filter: &str, attributes: &[String]) -> Result<Vec<LdapEntry>, String> {
        let mut conn = self.ldap.borrow_mut();
        if conn.is_none() {
            *conn = Some(ldap::connect().map_err(ldap_error)?);
        }
        let search = conn
            .as_ref()
            .expect("connected above")
            .search(&SearchRequest {
                base: None,
                scope: Scope::Subtree,
                filter: filter.into(),
                attributes: attributes.to_vec(),
                page_size: 0,
                show_deleted: false,
            })
            .map_err(ldap_error)?;
        let mut out = Vec::new();
        while let Some(page) = search.next_page().map_err(ldap_error)? {
            out.extend(page.into_iter().map(|e| {
                LdapEntry {
                    dn: e.dn,
                    attributes: (e.attributes.into_iter())
                        .map(|a| (a.name, a.values.into_iter().map(text).collect()))
                        .collect(),
                }
            }));
        }
        Ok(out)
    }

    fn log(&self, debug: bool, message: &str) {
        if debug {
            log::debug(message)
        } else {
            log::info(message)
        }
    }
}

/// An LDAP value as text: UTF-8 as it is, binary (objectGUID) as hex.
fn text(v: Vec<u8>) -> String {
    String::from_utf8(v)
        .unwrap_or_else(|e| e.as_bytes().iter().map(|b| format!("{b:02x}")).collect())
}

fn file_error(e: FileError) -> String {
    match e {
        FileError::Denied(m) => format!("denied: {m}"),
        FileError::NotFound(p) => format!("{p}: file not found"),
        FileError::Io(m) => m,
    }
}

fn ldap_error(e: LdapError) -> String {
    match e {
        LdapError::InvalidCredentials(m) => format!("ldap: invalid credentials: {m}"),
        LdapError::Denied(m) => format!("ldap: denied: {m}"),
        LdapError::Tls(m)
        | LdapError::Unreachable(m)
        | LdapError::NoSuchBase(m)
        | LdapError::TimeLimit(m)
        | LdapError::Other(m) => format!("ldap: {m}"),
    }
}

/// The source config: the script's path and its operation budget.
struct SourceSettings {
    script: String,
    max_operations: u64,
}

fn source_settings(config: &Config) -> Result<SourceSettings, Error> {
    let script = (config.str("script"))
        .ok_or_else(|| Error::config("`script` (the .rhai file) is required"))?;
    Ok(SourceSettings {
        script: script.to_string(),
        max_operations: (config.value("max_operations").and_then(|n| n.as_u64()))
            .unwrap_or(SOURCE_OPERATIONS),
    })
}

fn load(host: &Capabilities, path: &str) -> Result<String, Error> {
    let bytes = host.read_file(path).map_err(Error::Config)?;
    String::from_utf8(bytes).map_err(|_| Error::config(format!("{path}: not UTF-8 text")))
}

fn item(e: Emitted) -> Item {
    match e.kind {
        Kind::User => Item::User(user(e)),
        // No name of its own: the `name` attribute (the id by default) names it.
        Kind::Group => Item::Group(Group {
            attributes: e.attributes,
            members: e.members,
            member_of: e.member_of,
            parent: e.parent,
            ..Group::new(e.id, "")
        }),
    }
}

fn user(e: Emitted) -> User {
    User {
        id: e.id,
        locator: None,
        attributes: e.attributes,
        member_of: e.member_of,
    }
}

fn batch(entries: Vec<Emitted>) -> Batch {
    Batch {
        columns: Vec::new(),
        items: entries.into_iter().map(item).collect(),
    }
}

/// Runs the whole script: full batches are pushed to the host, the rest returned.
fn run_script(config: &Config, sink: source::Sink) -> Result<source::Finished, Error> {
    let settings = source_settings(config)?;
    let host = Rc::new(Capabilities::default());
    let text = load(&host, &settings.script)?;
    let name = settings
        .script
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(&settings.script)
        .to_string();
    source::run(host, &name, &text, settings.max_operations, sink).map_err(Error::Config)
}

impl Connector for Script {
    fn info() -> Info {
        let key = Key::new;
        Info::new(
            "script",
            env!("CARGO_PKG_VERSION"),
            "Runs a sandboxed Rhai script: as a source (emit_user / emit_group) \
             or, as `[sources.NAME] mapping`, over any source's users",
        )
        .key(key("script", KeyType::File, "The source script (.rhai).").required())
        .key(key(
            "files",
            KeyType::Files,
            "Files the script may read with read_lines, read_csv and read_json.",
        ))
        .key(key(
            "urls",
            KeyType::Urls,
            "URLs whose origins (at or below the path) http_get and http_get_json may reach.",
        ))
        .key(key(
            "max_operations",
            KeyType::Integer,
            "Rhai operations the whole run may take (default 1,000,000,000); \
             `[sources.NAME] script_max_operations` sets it too.",
        ))
        .key(key(
            "url",
            KeyType::List,
            "LDAP server(s) for ldap_search: ldap:// or ldaps:// URLs.",
        ))
        .key(key(
            "base_dn",
            KeyType::List,
            "LDAP base DN(s) ldap_search searches.",
        ))
        .key(key("bind_dn", KeyType::String, "LDAP bind DN."))
        .key(key("password", KeyType::Secret, "LDAP bind password."))
        .key(key(
            "starttls",
            KeyType::Boolean,
            "LDAP StartTLS on ldap://.",
        ))
        .key(key(
            "ca_file",
            KeyType::File,
            "CA certificate(s) for LDAP TLS (PEM).",
        ))
        .key(key(
            "tls_verify",
            KeyType::Boolean,
            "Check the LDAP server's certificate (default true).",
        ))
        .key(key(
            "timeout",
            KeyType::Duration,
            "LDAP operation timeout (default 30s).",
        ))
        .capability("files", "reads the script and the files granted by `files`")
        .capability(
            "http",
            "http_get / http_get_json to the origins granted by `urls`",
        )
        .capability(
            "ldap",
            "ldap_search on the source's LDAP connection (`url`)",
        )
        .capability("log", "the script's print and debug output")
    }

    fn test(config: Config) -> Result<TestReport, Error> {
        let sample = Rc::new(RefCell::new(None));
        let s = sample.clone();
        let keep_sample = move |b: Vec<Emitted>| {
            let mut s = s.borrow_mut();
            if s.is_none() {
                *s = b.into_iter().find(|e| e.kind == Kind::User);
            }
        };
        let k = keep_sample.clone();
        let finished = run_script(
            &config,
            Box::new(move |b| {
                k(b);
                Ok(())
            }),
        )?;
        let k = keep_sample;
        k(finished.last);
        let sample = sample.borrow_mut().take().map(user);
        Ok(TestReport {
            users: Some(finished.users),
            groups: Some(finished.groups),
            sample,
            messages: vec![format!(
                "the script emitted {} users and {} groups",
                finished.users, finished.groups
            )],
        })
    }

    fn open(config: Config, _request: roster_plugin::Request) -> Result<Run, Error> {
        // Checked now, so a bad config fails before the run's first batch.
        source_settings(&config)?;
        Ok(Run::from_batches(ScriptRun(Some(config))))
    }
}

/// A source run: the script runs whole in the first `next-batch`, pushing full batches to
/// the host as it goes.
struct ScriptRun(Option<Config>);

impl Batches for ScriptRun {
    fn next_batch(&mut self) -> Result<Option<Batch>, Error> {
        let Some(config) = self.0.take() else {
            return Ok(None);
        };
        let sink: source::Sink =
            Box::new(|entries| emit::push(batch(entries)).map_err(|e| e.message().to_string()));
        let finished = run_script(&config, sink)?;
        log::debug(&format!(
            "the script emitted {} users and {} groups",
            finished.users, finished.groups
        ));
        Ok((!finished.last.is_empty()).then(|| batch(finished.last)))
    }
}

/// A mapping script's run; none after a check (`init` with `check`), which maps nothing.
struct ScriptMapper(Option<mapper::Mapper>);

impl Mapper for ScriptMapper {
    fn init(config: &str) -> Result<ScriptMapper, Error> {
        let settings = Settings::from_json(config).map_err(Error::Config)?;
        let host: Rc<dyn Host> = Rc::new(Capabilities::default());
        if settings.check {
            mapper::check(host, &settings.name, &settings.script).map_err(Error::Config)?;
            return Ok(ScriptMapper(None));
        }
        let m = mapper::Mapper::new(host, &settings).map_err(Error::Config)?;
        Ok(ScriptMapper(Some(m)))
    }

    fn map(&mut self, mut users: Vec<User>) -> Vec<Result<Option<User>, String>> {
        let Some(m) = &mut self.0 else {
            let e = "the mapping script was not initialised".to_string();
            return users.iter().map(|_| Err(e.clone())).collect();
        };
        let batch = (users.iter_mut())
            .map(|u| std::mem::take(&mut u.attributes))
            .collect();
        (users.into_iter())
            .zip(m.map_batch(batch))
            .map(|(mut u, r)| {
                Ok(r?.map(|attributes| {
                    u.attributes = attributes;
                    u
                }))
            })
            .collect()
    }
}

guest_alloc::install!();
