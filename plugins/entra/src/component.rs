//! The WebAssembly component: `roster:plugin/connector` on top of [`crate::run`].

use std::cell::RefCell;

use crate::config::{Settings, DEFAULT_ALIAS_FIELDS, DEFAULT_AUTHORITY, DEFAULT_GRAPH};
use crate::date::Date;
use crate::run::{self, Mode, Out, Response, Run, Transport};
use crate::Error;

// The repository's wit/ directory.
wit_bindgen::generate!({
    path: "../../wit",
    world: "source",
});

use exports::roster::plugin::connector::{
    Guest, GuestSession, RunEnd, RunRequest, Session, TestReport,
};
use roster::plugin::http::{self, HttpError, Request};
use roster::plugin::types::{
    Attribute, Batch, Capability, ConfigKey, Credential, CredentialKind, Entry, FailedEntry,
    KeyType, Oauth2Credential, ObjectKind, PluginError, PluginInfo, Removal, Row, RunMode,
    SourceObject,
};

/// The host-held credential every Graph request names.
const CREDENTIAL: &str = "graph";

struct Component;

export!(Component);

impl Guest for Component {
    type Session = EntraSession;

    fn info() -> PluginInfo {
        let key = |name: &str, ty, required, default: Option<&str>, description: &str| ConfigKey {
            name: name.to_string(),
            type_: ty,
            required,
            default: default.map(str::to_string),
            description: description.to_string(),
        };
        let quoted = |s: &str| format!("\"{s}\"");
        PluginInfo {
            name: "entra".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: "Reads users and groups from Microsoft Entra ID through Microsoft Graph \
                          (app-only OAuth2 client credentials; delta runs after the first)"
                .to_string(),
            config_keys: vec![
                key(
                    "tenant_id",
                    KeyType::String,
                    true,
                    None,
                    "The directory (tenant) id.",
                ),
                key(
                    "client_id",
                    KeyType::String,
                    true,
                    None,
                    "The application (client) id.",
                ),
                key(
                    "client_secret",
                    KeyType::Secret,
                    true,
                    None,
                    "The application's client secret. Held by the host, never by the plugin.",
                ),
                key(
                    "secret_expires",
                    KeyType::String,
                    false,
                    None,
                    "The client secret's expiry date (YYYY-MM-DD): from 7 days before, every \
                     run warns.",
                ),
                key(
                    "groups",
                    KeyType::List,
                    false,
                    Some("[]"),
                    "Group object ids: only their members (nested groups included) are synced. \
                     Empty: every user of the tenant.",
                ),
                key(
                    "include_disabled",
                    KeyType::Boolean,
                    false,
                    Some("false"),
                    "Also sync disabled accounts (as inactive users).",
                ),
                key(
                    "alias_fields",
                    KeyType::String,
                    false,
                    Some(&quoted(DEFAULT_ALIAS_FIELDS)),
                    "`;`-separated alias templates of Graph fields, e.g. \
                     \"%givenName%.%surname%;%surname%-%givenName%\".",
                ),
                key(
                    "aliases_strip_invalid",
                    KeyType::Boolean,
                    false,
                    Some("false"),
                    "Also add each alias without \" [ ] : ; | = + * ? < > / \\ , . and spaces.",
                ),
                key(
                    "use_display_name",
                    KeyType::Boolean,
                    false,
                    Some("true"),
                    "When givenName and surname are missing, the full name is the displayName.",
                ),
                key(
                    "import_groups",
                    KeyType::Boolean,
                    false,
                    Some("true"),
                    "Sync groups with their members (the scope groups and the groups nested \
                     in them, or every group of the tenant).",
                ),
                key(
                    "use_delta",
                    KeyType::Boolean,
                    false,
                    Some("true"),
                    "Runs after the first ask Graph only for changes (users/delta). Sources \
                     scoped by groups always run in full.",
                ),
                key(
                    "authority_url",
                    KeyType::Url,
                    false,
                    Some(&quoted(DEFAULT_AUTHORITY)),
                    "The token authority (national clouds: https://login.microsoftonline.us, \
                     https://login.chinacloudapi.cn).",
                ),
                key(
                    "graph_url",
                    KeyType::Url,
                    false,
                    Some(&quoted(DEFAULT_GRAPH)),
                    "The Microsoft Graph endpoint (national clouds: https://graph.microsoft.us, \
                     https://microsoftgraph.chinacloudapi.cn).",
                ),
            ],
            capabilities: vec![
                Capability {
                    name: "http".to_string(),
                    reason: "reads users and groups from Microsoft Graph at graph_url, with a \
                             token from authority_url"
                        .to_string(),
                },
                Capability {
                    name: "log".to_string(),
                    reason: "reports paging progress".to_string(),
                },
            ],
            defaults: vec![
                ("pair_by".to_string(), "\"email\"".to_string()),
                // Raw Graph fields are sent for [map] templates, not as possible typos.
                ("warn_unused_attributes".to_string(), "false".to_string()),
            ],
            credentials: vec![Credential {
                name: CREDENTIAL.to_string(),
                kind: CredentialKind::Oauth2(Oauth2Credential {
                    token_url: "{authority_url}/{tenant_id}/oauth2/v2.0/token".to_string(),
                    client_id: "{client_id}".to_string(),
                    client_secret: "client_secret".to_string(),
                    scope: "{graph_url}/.default".to_string(),
                }),
            }],
        }
    }

    fn test(config: String) -> Result<TestReport, PluginError> {
        let settings = Settings::from_json(&config).map_err(plugin_error)?;
        let info =
            run::test(settings, Date::today(), &mut Host::default()).map_err(plugin_error)?;
        let columns = info.columns;
        Ok(TestReport {
            users: info.users,
            groups: info.groups,
            sample: info.sample.and_then(|o| match o {
                Out::User {
                    id,
                    locator,
                    values,
                } => Some(SourceObject {
                    kind: ObjectKind::User,
                    id,
                    locator: Some(locator),
                    attributes: (columns.iter().cloned())
                        .zip(values)
                        .map(|(name, values)| Attribute { name, values })
                        .collect(),
                    member_of: Vec::new(),
                    members: Vec::new(),
                    parent: None,
                }),
                _ => None,
            }),
            messages: info.messages,
        })
    }

    fn open(request: RunRequest) -> Result<Session, PluginError> {
        let settings = Settings::from_json(&request.config).map_err(plugin_error)?;
        let mode = match request.mode {
            RunMode::Full => Mode::Full,
            RunMode::Delta => Mode::Delta,
        };
        let run = Run::start(
            settings,
            mode,
            request.cursor.as_deref(),
            Date::today(),
            &mut Host::default(),
        )
        .map_err(plugin_error)?;
        let columns = run.columns.clone();
        Ok(Session::new(EntraSession {
            run: RefCell::new(run),
            host: RefCell::new(Host::default()),
            columns,
        }))
    }
}

struct EntraSession {
    run: RefCell<Run>,
    /// Holds the page asked for ahead between batches.
    host: RefCell<Host>,
    columns: Vec<String>,
}

impl GuestSession for EntraSession {
    fn next_batch(&self) -> Result<Option<Batch>, PluginError> {
        let outs = self
            .run
            .borrow_mut()
            .next(&mut *self.host.borrow_mut())
            .map_err(plugin_error)?;
        Ok(outs.map(|outs| Batch {
            columns: self.columns.clone(),
            entries: outs.into_iter().map(entry).collect(),
        }))
    }

    fn finish(&self) -> Result<RunEnd, PluginError> {
        self.host.borrow_mut().ahead = None;
        let end = self.run.borrow_mut().finish();
        Ok(RunEnd {
            mode: match end.mode {
                Mode::Full => RunMode::Full,
                Mode::Delta => RunMode::Delta,
            },
            cursor: end.cursor,
            notices: end.notices,
        })
    }
}

fn entry(o: Out) -> Entry {
    match o {
        Out::User {
            id,
            locator,
            values,
        } => Entry::Row(Row {
            kind: ObjectKind::User,
            id,
            locator: Some(locator),
            values,
            member_of: Vec::new(),
            members: Vec::new(),
            parent: None,
        }),
        Out::Group { id, name, members } => Entry::Object(SourceObject {
            kind: ObjectKind::Group,
            locator: Some(format!("group {name}")),
            attributes: vec![
                Attribute {
                    name: "displayName".into(),
                    values: vec![name],
                },
                Attribute {
                    name: "id".into(),
                    values: vec![id.clone()],
                },
            ],
            id,
            member_of: Vec::new(),
            members,
            parent: None,
        }),
        Out::RemovedUser(id) => Entry::Removed(Removal {
            kind: ObjectKind::User,
            id,
        }),
        Out::RemovedGroup(id) => Entry::Removed(Removal {
            kind: ObjectKind::Group,
            id,
        }),
        Out::Failed { locator, reason } => Entry::Failed(FailedEntry { locator, reason }),
    }
}

/// Requests through the host's `http` capability with the `graph` credential.
#[derive(Default)]
struct Host {
    /// A request sent ahead (`prefetch`) and its URL.
    ahead: Option<(String, http::Pending)>,
}

fn request(url: &str, headers: &[(&str, &str)]) -> Request {
    Request {
        method: "GET".to_string(),
        url: url.to_string(),
        headers: (headers.iter())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain([("Accept".to_string(), "application/json".to_string())])
            .collect(),
        body: None,
        credential: Some(CREDENTIAL.to_string()),
    }
}

impl Transport for Host {
    fn get(&mut self, url: &str, headers: &[(&str, &str)]) -> Result<Response, Error> {
        // A request sent ahead for another URL is dropped, which cancels it.
        let answer = match self.ahead.take() {
            Some((ahead, pending)) if ahead == url => pending.finish(),
            _ => http::send(&request(url, headers)),
        };
        match answer {
            Ok(r) => Ok(Response {
                status: r.status,
                body: r.body,
            }),
            Err(HttpError::Denied(m)) => Err(Error::Config(format!(
                "the host refused the request: {m} (authority_url and graph_url grant the \
                 origins this source may reach)"
            ))),
            Err(HttpError::Authentication(m)) => Err(Error::Authentication(m)),
            Err(HttpError::TooLarge(m)) => Err(Error::BadData(m)),
            Err(HttpError::Timeout(m) | HttpError::Unavailable(m) | HttpError::Other(m)) => {
                Err(Error::Unavailable(m))
            }
        }
    }

    fn prefetch(&mut self, url: &str, headers: &[(&str, &str)]) {
        // Best effort: a request the host will not start now is sent again by `get`, which
        // reports why.
        self.ahead = http::start(&request(url, headers))
            .ok()
            .map(|p| (url.to_string(), p));
    }
}

fn plugin_error(e: Error) -> PluginError {
    match e {
        Error::Config(m) => PluginError::Config(m),
        Error::Authentication(m) => PluginError::Authentication(m),
        Error::Unavailable(m) => PluginError::Unavailable(m),
        Error::BadData(m) => PluginError::BadData(m),
    }
}

guest_alloc::install!();
