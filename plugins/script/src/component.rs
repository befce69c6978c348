//! The WebAssembly component (world `script`): `connector` for source scripts and `mapping`
//! for mapping scripts, on top of [`crate::source`] and [`crate::mapper`].

use std::cell::RefCell;
use std::rc::Rc;

use crate::engine::SOURCE_OPERATIONS;
use crate::mapper::{self, Mapper, Settings};
use crate::source::{self, Emitted, Kind};
use crate::{Host, LdapEntry};

// The repository's wit/ directory.
wit_bindgen::generate!({
    path: "../../wit",
    world: "script",
});

use exports::roster::plugin::connector::{
    Guest, GuestSession, RunEnd, RunRequest, Session, TestReport,
};
use exports::roster::plugin::mapping::{Guest as MappingGuest, MapResult};
use roster::plugin::files::{self, FileError};
use roster::plugin::http::{self, HttpError, Request};
use roster::plugin::ldap::{self, LdapError, Scope, SearchRequest};
use roster::plugin::log::{log, Level};
use roster::plugin::types::{
    Attribute, Batch, Capability, ConfigKey, Entry, KeyType, ObjectKind, PluginError, PluginInfo,
    RunMode, SourceObject,
};

/// Bytes asked of the host per read.
const READ_CHUNK: u32 = 1 << 20;

struct Component;

export!(Component);

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
        log(if debug { Level::Debug } else { Level::Info }, message);
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

fn source_settings(config: &str) -> Result<SourceSettings, PluginError> {
    let v: serde_json::Value =
        serde_json::from_str(config).map_err(|e| PluginError::Config(e.to_string()))?;
    let script = (v.get("script").and_then(|s| s.as_str()))
        .ok_or_else(|| PluginError::Config("`script` (the .rhai file) is required".into()))?;
    Ok(SourceSettings {
        script: script.to_string(),
        max_operations: (v.get("max_operations").and_then(|n| n.as_u64()))
            .unwrap_or(SOURCE_OPERATIONS),
    })
}

fn load(host: &Capabilities, path: &str) -> Result<String, PluginError> {
    let bytes = host.read_file(path).map_err(PluginError::Config)?;
    String::from_utf8(bytes).map_err(|_| PluginError::Config(format!("{path}: not UTF-8 text")))
}

fn object(e: Emitted) -> SourceObject {
    SourceObject {
        kind: match e.kind {
            Kind::User => ObjectKind::User,
            Kind::Group => ObjectKind::Group,
        },
        id: e.id,
        locator: None,
        attributes: (e.attributes.into_iter())
            .map(|(name, values)| Attribute { name, values })
            .collect(),
        member_of: e.member_of,
        members: e.members,
        parent: e.parent,
    }
}

fn batch(entries: Vec<Emitted>) -> Batch {
    Batch {
        columns: Vec::new(),
        entries: entries
            .into_iter()
            .map(|e| Entry::Object(object(e)))
            .collect(),
    }
}

/// Runs the whole script: full batches are pushed to the host, the rest returned.
fn run_script(config: &str, sink: source::Sink) -> Result<source::Finished, PluginError> {
    let settings = source_settings(config)?;
    let host = Rc::new(Capabilities::default());
    let text = load(&host, &settings.script)?;
    let name = settings
        .script
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(&settings.script)
        .to_string();
    source::run(host, &name, &text, settings.max_operations, sink).map_err(PluginError::Config)
}

impl Guest for Component {
    type Session = ScriptSession;

    fn info() -> PluginInfo {
        let key = |name: &str, ty, required, description: &str| ConfigKey {
            name: name.to_string(),
            type_: ty,
            required,
            default: None,
            description: description.to_string(),
        };
        let cap = |name: &str, reason: &str| Capability {
            name: name.into(),
            reason: reason.into(),
        };
        PluginInfo {
            name: "script".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: "Runs a sandboxed Rhai script: as a source (emit_user / emit_group) \
                          or, as `[sources.NAME] mapping`, over any source's users"
                .to_string(),
            config_keys: vec![
                key("script", KeyType::File, true, "The source script (.rhai)."),
                key(
                    "files",
                    KeyType::Files,
                    false,
                    "Files the script may read with read_lines, read_csv and read_json.",
                ),
                key(
                    "urls",
                    KeyType::Urls,
                    false,
                    "URLs whose origins (at or below the path) http_get and http_get_json may reach.",
                ),
                key(
                    "max_operations",
                    KeyType::Integer,
                    false,
                    "Rhai operations the whole run may take (default 1,000,000,000); \
                     `[sources.NAME] script_max_operations` sets it too.",
                ),
                key(
                    "url",
                    KeyType::List,
                    false,
                    "LDAP server(s) for ldap_search: ldap:// or ldaps:// URLs.",
                ),
                key("base_dn", KeyType::List, false, "LDAP base DN(s) ldap_search searches."),
                key("bind_dn", KeyType::String, false, "LDAP bind DN."),
                key("password", KeyType::Secret, false, "LDAP bind password."),
                key("starttls", KeyType::Boolean, false, "LDAP StartTLS on ldap://."),
                key("ca_file", KeyType::File, false, "CA certificate(s) for LDAP TLS (PEM)."),
                key(
                    "tls_verify",
                    KeyType::Boolean,
                    false,
                    "Check the LDAP server's certificate (default true).",
                ),
                key("timeout", KeyType::Duration, false, "LDAP operation timeout (default 30s)."),
            ],
            capabilities: vec![
                cap("files", "reads the script and the files granted by `files`"),
                cap("http", "http_get / http_get_json to the origins granted by `urls`"),
                cap("ldap", "ldap_search on the source's LDAP connection (`url`)"),
                cap("log", "the script's print and debug output"),
            ],
            defaults: Vec::new(),
            credentials: Vec::new(),
        }
    }

    fn test(config: String) -> Result<TestReport, PluginError> {
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
        let sample = sample.borrow_mut().take().map(object);
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

    fn open(request: RunRequest) -> Result<Session, PluginError> {
        // Checked now, so a bad config fails before the run's first batch.
        source_settings(&request.config)?;
        Ok(Session::new(ScriptSession {
            config: RefCell::new(Some(request.config)),
        }))
    }
}

/// A source run: the script runs whole in the first `next-batch`.
struct ScriptSession {
    config: RefCell<Option<String>>,
}

impl GuestSession for ScriptSession {
    fn next_batch(&self) -> Result<Option<Batch>, PluginError> {
        let Some(config) = self.config.borrow_mut().take() else {
            return Ok(None);
        };
        let sink: source::Sink = Box::new(|entries| roster::plugin::emit::push(&batch(entries)));
        let finished = run_script(&config, sink)?;
        log(
            Level::Debug,
            &format!(
                "the script emitted {} users and {} groups",
                finished.users, finished.groups
            ),
        );
        Ok((!finished.last.is_empty()).then(|| batch(finished.last)))
    }

    fn finish(&self) -> Result<RunEnd, PluginError> {
        Ok(RunEnd {
            mode: RunMode::Full,
            cursor: None,
            notices: Vec::new(),
        })
    }
}

thread_local! {
    static MAPPER: RefCell<Option<Mapper>> = const { RefCell::new(None) };
}

impl MappingGuest for Component {
    fn init(config: String) -> Result<(), PluginError> {
        let settings = Settings::from_json(&config).map_err(PluginError::Config)?;
        let host: Rc<dyn Host> = Rc::new(Capabilities::default());
        if settings.check {
            return mapper::check(host, &settings.name, &settings.script)
                .map_err(PluginError::Config);
        }
        let m = Mapper::new(host, &settings).map_err(PluginError::Config)?;
        MAPPER.with(|cell| *cell.borrow_mut() = Some(m));
        Ok(())
    }

    fn transform(objects: Vec<SourceObject>) -> Vec<Result<MapResult, String>> {
        MAPPER.with(|cell| {
            let mut cell = cell.borrow_mut();
            let Some(m) = cell.as_mut() else {
                let e = "the mapping script was not initialised".to_string();
                return objects.iter().map(|_| Err(e.clone())).collect();
            };
            let mut objects = objects;
            let batch = objects
                .iter_mut()
                .map(|o| {
                    std::mem::take(&mut o.attributes)
                        .into_iter()
                        .map(|a| (a.name, a.values))
                        .collect()
                })
                .collect();
            objects
                .into_iter()
                .zip(m.map_batch(batch))
                .map(|(mut o, r)| {
                    Ok(match r? {
                        None => MapResult::Drop,
                        Some(attrs) => {
                            o.attributes = (attrs.into_iter())
                                .map(|(name, values)| Attribute { name, values })
                                .collect();
                            MapResult::Keep(o)
                        }
                    })
                })
                .collect()
        })
    }
}

guest_alloc::install!();
