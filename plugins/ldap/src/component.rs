//! The WebAssembly component: `roster:plugin/connector` on top of the host's `ldap`
//! capability. [`crate::run`] does the work; this file converts types.

use std::cell::RefCell;

use crate::config::{self, Profile, Settings};
use crate::run::{self, Directory, Out, Pages, Query, Run};
use crate::{entry, Error, RawEntry};

wit_bindgen::generate!({
    path: "../../wit",
    world: "source",
});

use exports::roster::plugin::connector::{
    Guest, GuestSession, RunEnd, RunRequest, Session, TestReport,
};
use roster::plugin::ldap::{self as host, Connection, LdapEntry, LdapError, Scope, SearchRequest};
use roster::plugin::log::{log, Level};
use roster::plugin::types::{
    Attribute, Batch, Capability, ConfigKey, Entry, FailedEntry, KeyType, ObjectKind, PluginError,
    PluginInfo, Removal, Row, RunMode, SourceObject,
};

struct Component;

export!(Component);

impl Guest for Component {
    type Session = LdapSession;

    fn info() -> PluginInfo {
        let key =
            |name: &str, ty, required, default: Option<String>, description: &str| ConfigKey {
                name: name.to_string(),
                type_: ty,
                required,
                default,
                description: description.to_string(),
            };
        let q = |s: &str| Some(s.to_string());
        let by_profile = |k: &str| {
            Some(format!(
                "ad: {}; openldap: {}; generic: {}",
                config::default_text(Profile::Ad, k),
                config::default_text(Profile::OpenLdap, k),
                config::default_text(Profile::Generic, k)
            ))
        };
        let mut keys = vec![
            key(
                "url",
                KeyType::List,
                true,
                None,
                "LDAP server URL (ldap://host:389, ldaps://host:636), or a list tried in order.",
            ),
            key(
                "starttls",
                KeyType::Boolean,
                false,
                q("false"),
                "Upgrade ldap:// connections with StartTLS.",
            ),
            key(
                "ca_file",
                KeyType::File,
                false,
                None,
                "PEM file of the CA that signed the server's certificate.",
            ),
            key(
                "tls_verify",
                KeyType::Boolean,
                false,
                q("true"),
                "Check the server's certificate (false is for tests only).",
            ),
            key(
                "bind_dn",
                KeyType::String,
                false,
                None,
                "DN (or AD user@domain) to bind as; anonymous when absent.",
            ),
            key(
                "password",
                KeyType::Secret,
                false,
                None,
                "The bind password; the host binds with it, the connector never sees it.",
            ),
            key(
                "base_dn",
                KeyType::List,
                true,
                None,
                "Where users and groups are searched: one DN or a list.",
            ),
            key(
                "timeout",
                KeyType::Duration,
                false,
                q("\"30s\""),
                "Time limit of each LDAP operation.",
            ),
            key(
                "profile",
                KeyType::String,
                false,
                q("\"generic\""),
                "\"ad\", \"openldap\" or \"generic\": the defaults of the keys below.",
            ),
            key(
                "user_filter",
                KeyType::String,
                false,
                None,
                "LDAP filter for users.",
            ),
            key(
                "group_filter",
                KeyType::String,
                false,
                None,
                "LDAP filter for groups; \"\" reads no groups.",
            ),
            key(
                "attributes",
                KeyType::List,
                false,
                None,
                "User attributes fetched and passed on (usable in [map] templates); \"*\" for all.",
            ),
            key(
                "anchor",
                KeyType::String,
                false,
                None,
                "The stable id: objectGUID, entryUUID, or \"dn\".",
            ),
        ];
        for k in ["user_filter", "group_filter", "attributes", "anchor"] {
            let i = keys.iter().position(|c| c.name == k).expect("listed above");
            keys[i].default = by_profile(k);
        }
        for (field, k) in config::FIELDS {
            keys.push(key(
                k,
                KeyType::List,
                false,
                by_profile(k),
                &format!("Attributes (or %attr% templates) tried in order for {field}."),
            ));
        }
        keys.extend([
            key(
                "groups",
                KeyType::List,
                false,
                None,
                "Only members of these group DNs, directly or through nested groups.",
            ),
            key(
                "include_disabled",
                KeyType::Boolean,
                false,
                q("false"),
                "Import AD accounts disabled by userAccountControl, as inactive users.",
            ),
            key(
                "full_sync_every",
                KeyType::Duration,
                false,
                q("\"24h\""),
                "Runs in between are deltas (changes only); \"0\" makes every run full.",
            ),
            key(
                "page_size",
                KeyType::Integer,
                false,
                q("1000"),
                "Entries per page of the paged search.",
            ),
        ]);
        PluginInfo {
            name: "ldap".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: "Reads users and groups from Active Directory, OpenLDAP or another LDAP \
                          directory, with nested groups and delta runs"
                .to_string(),
            config_keys: keys,
            capabilities: vec![
                Capability {
                    name: "ldap".to_string(),
                    reason: "searches the configured LDAP server for users and groups".to_string(),
                },
                Capability {
                    name: "log".to_string(),
                    reason: "reports what a run read and why it ran full".to_string(),
                },
            ],
            defaults: vec![
                ("pair_by".to_string(), "\"anchor\"".to_string()),
                // Raw attributes are sent for [map] templates, not as possible typos.
                ("warn_unused_attributes".to_string(), "false".to_string()),
            ],
            credentials: Vec::new(),
        }
    }

    fn test(config: String) -> Result<TestReport, PluginError> {
        let settings = Settings::from_json(&config).map_err(plugin_error)?;
        let dir = HostDirectory(host::connect().map_err(|e| plugin_error(ldap_error(e)))?);
        let bases = dir.0.base_dns();
        let report = run::test(&dir, &settings, &bases).map_err(plugin_error)?;
        Ok(TestReport {
            users: Some(report.users),
            groups: report.groups,
            sample: report
                .sample
                .map(|(columns, row, dn)| user_object(&columns, row, &dn)),
            messages: report.messages,
        })
    }

    fn open(request: RunRequest) -> Result<Session, PluginError> {
        let settings = Settings::from_json(&request.config).map_err(plugin_error)?;
        let dir = HostDirectory(host::connect().map_err(|e| plugin_error(ldap_error(e)))?);
        let run = Run::open(
            dir,
            settings,
            request.mode == RunMode::Delta,
            request.cursor,
            unix_now(),
        )
        .map_err(plugin_error)?;
        Ok(Session::new(LdapSession {
            run: RefCell::new(run),
        }))
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The host's connection as a [`Directory`].
struct HostDirectory(Connection);

struct HostSearch(host::Search);

impl Pages for HostSearch {
    fn next_page(&mut self) -> Result<Option<Vec<RawEntry>>, Error> {
        Ok(self
            .0
            .next_page()
            .map_err(ldap_error)?
            .map(|page| page.into_iter().map(raw).collect()))
    }
}

impl Directory for HostDirectory {
    type Search = HostSearch;

    fn search(&self, q: &Query) -> Result<HostSearch, Error> {
        let request = SearchRequest {
            base: q.base.clone(),
            scope: match q.scope {
                run::Scope::Base => Scope::Base,
                run::Scope::Subtree => Scope::Subtree,
            },
            filter: q.filter.clone(),
            attributes: q.attributes.clone(),
            page_size: q.page_size,
            show_deleted: q.show_deleted,
        };
        self.0.search(&request).map(HostSearch).map_err(ldap_error)
    }

    fn root_dse(&self, attributes: &[String]) -> Result<RawEntry, Error> {
        self.0.root_dse(attributes).map(raw).map_err(ldap_error)
    }
}

fn raw(e: LdapEntry) -> RawEntry {
    RawEntry {
        dn: e.dn,
        attributes: e
            .attributes
            .into_iter()
            .map(|a| (a.name, a.values))
            .collect(),
    }
}

fn plugin_error(e: Error) -> PluginError {
    match e {
        Error::Config(m) => PluginError::Config(m),
        Error::BadData(m) => PluginError::BadData(m),
        Error::Authentication(m) => PluginError::Authentication(m),
        Error::Unavailable(m) => PluginError::Unavailable(m),
    }
}

/// The host's message already says what to fix; the case says whether to retry.
fn ldap_error(e: LdapError) -> Error {
    match e {
        LdapError::InvalidCredentials(m) => Error::Authentication(m),
        LdapError::Unreachable(m) | LdapError::TimeLimit(m) => Error::Unavailable(m),
        LdapError::NoSuchBase(m) | LdapError::Denied(m) | LdapError::Tls(m) => Error::Config(m),
        LdapError::Other(m) => Error::Unavailable(format!("LDAP error: {m}")),
    }
}

fn user_object(columns: &[String], row: entry::UserRow, dn: &str) -> SourceObject {
    SourceObject {
        kind: ObjectKind::User,
        id: row.id,
        locator: Some(dn.to_string()),
        attributes: columns
            .iter()
            .cloned()
            .zip(row.values)
            .map(|(name, values)| Attribute { name, values })
            .collect(),
        member_of: Vec::new(),
        members: Vec::new(),
        parent: None,
    }
}

struct LdapSession {
    run: RefCell<Run<HostDirectory>>,
}

fn entry_of(out: Out) -> Entry {
    let kind = |group| {
        if group {
            ObjectKind::Group
        } else {
            ObjectKind::User
        }
    };
    match out {
        Out::Row {
            id,
            dn,
            values,
            member_of,
        } => Entry::Row(Row {
            kind: ObjectKind::User,
            id,
            locator: Some(dn),
            values,
            member_of,
            members: Vec::new(),
            parent: None,
        }),
        Out::Failed { locator, reason } => Entry::Failed(FailedEntry { locator, reason }),
        Out::Removed { group, id } => Entry::Removed(Removal {
            kind: kind(group),
            id,
        }),
        Out::Group {
            id,
            dn,
            name,
            members,
        } => Entry::Object(SourceObject {
            kind: ObjectKind::Group,
            id,
            locator: Some(dn.clone()),
            attributes: vec![
                Attribute {
                    name: "cn".to_string(),
                    values: vec![name],
                },
                Attribute {
                    name: "dn".to_string(),
                    values: vec![dn],
                },
            ],
            member_of: Vec::new(),
            members,
            parent: None,
        }),
    }
}

impl GuestSession for LdapSession {
    fn next_batch(&self) -> Result<Option<Batch>, PluginError> {
        let mut run = self.run.borrow_mut();
        match run.step() {
            Ok(step) => Ok(step.map(|s| Batch {
                columns: s.columns,
                entries: s.entries.into_iter().map(entry_of).collect(),
            })),
            Err(e) => {
                run.stop();
                Err(plugin_error(e))
            }
        }
    }

    fn finish(&self) -> Result<RunEnd, PluginError> {
        let end = self.run.borrow_mut().end();
        log(Level::Info, &end.summary);
        Ok(RunEnd {
            mode: if end.delta {
                RunMode::Delta
            } else {
                RunMode::Full
            },
            cursor: end.cursor,
            notices: end.notices,
        })
    }
}

guest_alloc::install!();
