//! The WebAssembly component: `roster:plugin/connector` on top of the host's `ldap`
//! capability. A run is a small state machine; each `next-batch` call does one bounded step
//! (one page, one range fetch) so no call comes near the host's deadline.
//!
//! Steps: groups (paged) → ranged `member` values still missing → decide full or delta →
//! users (paged, one batch per page) → on AD deltas, deleted objects → group objects.

use std::cell::RefCell;
use std::collections::VecDeque;

use crate::config::{self, Profile, Settings, Tracking};
use crate::cursor::{self, Cursor, Dc, Mark, Now, Plan};
use crate::entry;
use crate::groups::{GroupGraph, Pending};
use crate::{Error, RawEntry};

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

/// Group objects per batch.
const GROUP_BATCH: usize = 1000;

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
            defaults: vec![("pair_by".to_string(), "\"anchor\"".to_string())],
            credentials: Vec::new(),
        }
    }

    fn test(config: String) -> Result<TestReport, PluginError> {
        let settings = Settings::from_json(&config).map_err(plugin_error)?;
        let conn = host::connect().map_err(ldap_error)?;
        let mut messages = vec![format!(
            "profile {}, base {}",
            settings.profile.name(),
            conn.base_dns().join("; ")
        )];
        let search = conn
            .search(&user_search(&settings, settings.user_filter.clone()))
            .map_err(ldap_error)?;
        let (mut users, mut disabled, mut failed) = (0u64, 0u64, 0u64);
        let mut sample = None;
        while let Some(page) = search.next_page().map_err(ldap_error)? {
            let page: Vec<RawEntry> = page.into_iter().map(raw).collect();
            let columns = entry::columns(&settings, &page);
            for e in &page {
                match entry::user_row(e, &settings, &columns) {
                    Err(_) => failed += 1,
                    Ok(row) if row.disabled && !settings.include_disabled => disabled += 1,
                    Ok(row) => {
                        users += 1;
                        sample.get_or_insert_with(|| user_object(&columns, row, &e.dn));
                    }
                }
            }
        }
        drop(search);
        if disabled > 0 {
            messages.push(format!(
                "{disabled} disabled accounts are left out (include_disabled)"
            ));
        }
        if failed > 0 {
            messages.push(format!("{failed} entries have no username or anchor"));
        }
        let mut groups = None;
        if !settings.group_filter.is_empty() {
            let search = conn
                .search(&SearchRequest {
                    base: None,
                    scope: Scope::Subtree,
                    filter: settings.group_filter.clone(),
                    attributes: vec!["1.1".to_string()],
                    page_size: settings.page_size,
                    show_deleted: false,
                })
                .map_err(ldap_error)?;
            let mut n = 0u64;
            while let Some(page) = search.next_page().map_err(ldap_error)? {
                n += page.len() as u64;
            }
            groups = Some(n);
        }
        if !settings.groups.is_empty() {
            messages.push("users are counted before the groups scope is applied".to_string());
        }
        Ok(TestReport {
            users: Some(users),
            groups,
            sample,
            messages,
        })
    }

    fn open(request: RunRequest) -> Result<Session, PluginError> {
        let settings = Settings::from_json(&request.config).map_err(plugin_error)?;
        let conn = host::connect().map_err(ldap_error)?;
        let mut notices = Vec::new();
        let dc = match settings.tracking {
            Tracking::Usn => {
                let dc = read_dc(&conn)?;
                if dc.is_none() {
                    notices.push(
                        "the server's root DSE has no highestCommittedUSN/dsServiceName (not \
                         Active Directory?): every run is full"
                            .to_string(),
                    );
                }
                dc
            }
            Tracking::Timestamp => None,
        };
        let phase = if settings.group_filter.is_empty() {
            Phase::Decide
        } else {
            Phase::LoadGroups(
                conn.search(&SearchRequest {
                    base: None,
                    scope: Scope::Subtree,
                    filter: settings.group_filter.clone(),
                    attributes: settings.group_request(),
                    page_size: settings.page_size,
                    show_deleted: false,
                })
                .map_err(ldap_error)?,
            )
        };
        Ok(Session::new(LdapSession {
            run: RefCell::new(Run {
                phase,
                conn,
                settings,
                delta_requested: request.mode == RunMode::Delta,
                cursor_in: request.cursor,
                graph: GroupGraph::default(),
                pending: VecDeque::new(),
                dc,
                plan: Plan::Full { why: None },
                notices,
                started: std::time::Instant::now(),
                unix_start: unix_now(),
                newest: None,
                emitted: Vec::new(),
                users: 0,
                left_out: 0,
            }),
        }))
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// AD's DC identity from the root DSE; invocationId lives on the DC's NTDS Settings object,
/// which may lie outside base_dn (then only dsServiceName and the USN bind the cursor).
fn read_dc(conn: &Connection) -> Result<Option<Dc>, PluginError> {
    let dse = raw(conn
        .root_dse(&[
            "dsServiceName".to_string(),
            "highestCommittedUSN".to_string(),
        ])
        .map_err(ldap_error)?);
    let (Some(dsa), Some(usn)) = (
        dse.first_text("dsServiceName"),
        dse.first_text("highestCommittedUSN")
            .and_then(|u| u.trim().parse::<u64>().ok()),
    ) else {
        return Ok(None);
    };
    let invocation = conn
        .search(&SearchRequest {
            base: Some(dsa.clone()),
            scope: Scope::Base,
            filter: "(objectClass=*)".to_string(),
            attributes: vec!["invocationId".to_string()],
            page_size: 0,
            show_deleted: false,
        })
        .ok()
        .and_then(|s| s.next_page().ok().flatten())
        .and_then(|page| page.into_iter().next())
        .and_then(|e| {
            raw(e)
                .values("invocationId")
                .first()
                .map(|v| entry::text_value("objectGUID", v))
        });
    Ok(Some(Dc {
        dsa,
        invocation,
        highest_usn: usn,
    }))
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
    }
}

/// The host's message already says what to fix; the case says whether to retry.
fn ldap_error(e: LdapError) -> PluginError {
    match e {
        LdapError::InvalidCredentials(m) => PluginError::Authentication(m),
        LdapError::Unreachable(m) | LdapError::TimeLimit(m) => PluginError::Unavailable(m),
        LdapError::NoSuchBase(m) | LdapError::Denied(m) | LdapError::Tls(m) => {
            PluginError::Config(m)
        }
        LdapError::Other(m) => PluginError::Unavailable(format!("LDAP error: {m}")),
    }
}

fn user_search(settings: &Settings, filter: String) -> SearchRequest {
    SearchRequest {
        base: None,
        scope: Scope::Subtree,
        filter,
        attributes: settings.user_request(),
        page_size: settings.page_size,
        show_deleted: false,
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
    run: RefCell<Run>,
}

enum Phase {
    LoadGroups(host::Search),
    /// Ranged `member` values (AD groups above MaxValRange) still to fetch.
    Ranges,
    Decide,
    Users(host::Search),
    Deleted(host::Search),
    /// Group objects from this position of `Run::emitted`.
    SendGroups(usize),
    Done,
}

struct Run {
    // Declared first: searches are dropped before their connection.
    phase: Phase,
    conn: Connection,
    settings: Settings,
    delta_requested: bool,
    cursor_in: Option<String>,
    graph: GroupGraph,
    pending: VecDeque<Pending>,
    dc: Option<Dc>,
    plan: Plan,
    notices: Vec<String>,
    started: std::time::Instant,
    unix_start: u64,
    /// The newest modifyTimestamp seen (Unix seconds).
    newest: Option<i64>,
    emitted: Vec<usize>,
    users: u64,
    left_out: u64,
}

impl GuestSession for LdapSession {
    fn next_batch(&self) -> Result<Option<Batch>, PluginError> {
        let mut run = self.run.borrow_mut();
        let result = run.step();
        if result.is_err() {
            run.phase = Phase::Done;
        }
        result
    }

    fn finish(&self) -> Result<RunEnd, PluginError> {
        let mut run = self.run.borrow_mut();
        run.phase = Phase::Done;
        Ok(run.end())
    }
}

fn failed(locator: &str, reason: String) -> Entry {
    Entry::Failed(FailedEntry {
        locator: locator.to_string(),
        reason,
    })
}

fn batch(columns: Vec<String>, entries: Vec<Entry>) -> Option<Batch> {
    Some(Batch { columns, entries })
}

impl Run {
    fn is_delta(&self) -> bool {
        matches!(self.plan, Plan::Delta { .. })
    }

    /// One bounded step; an empty batch when the step sends nothing.
    fn step(&mut self) -> Result<Option<Batch>, PluginError> {
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::LoadGroups(search) => {
                let mut entries = Vec::new();
                match search.next_page().map_err(ldap_error)? {
                    Some(page) => {
                        for e in page.into_iter().map(raw) {
                            match self.graph.add(&e, &self.settings) {
                                Ok(pending) => self.pending.extend(pending),
                                Err(reason) => {
                                    entries.push(failed(&e.dn, format!("group: {reason}")))
                                }
                            }
                        }
                        self.phase = Phase::LoadGroups(search);
                    }
                    None => self.phase = Phase::Ranges,
                }
                Ok(batch(Vec::new(), entries))
            }
            Phase::Ranges => {
                let Some(p) = self.pending.pop_front() else {
                    self.phase = Phase::Decide;
                    return Ok(batch(Vec::new(), Vec::new()));
                };
                let search = self
                    .conn
                    .search(&SearchRequest {
                        base: Some(p.dn.clone()),
                        scope: Scope::Base,
                        filter: "(objectClass=*)".to_string(),
                        attributes: vec![p.attribute.clone()],
                        page_size: 0,
                        show_deleted: false,
                    })
                    .map_err(ldap_error)?;
                let mut entries = Vec::new();
                while let Some(page) = search.next_page().map_err(ldap_error)? {
                    for e in page.into_iter().map(raw) {
                        match self.graph.add_range(&p, &e) {
                            Ok(next) => self.pending.extend(next),
                            Err(reason) => entries.push(failed(&e.dn, format!("group: {reason}"))),
                        }
                    }
                }
                self.phase = Phase::Ranges;
                Ok(batch(Vec::new(), entries))
            }
            Phase::Decide => {
                self.decide()?;
                Ok(batch(Vec::new(), Vec::new()))
            }
            Phase::Users(search) => match search.next_page().map_err(ldap_error)? {
                Some(page) => {
                    let page: Vec<RawEntry> = page.into_iter().map(raw).collect();
                    let b = self.users_batch(&page);
                    self.phase = Phase::Users(search);
                    Ok(b)
                }
                None => {
                    drop(search);
                    self.after_users()?;
                    Ok(batch(Vec::new(), Vec::new()))
                }
            },
            Phase::Deleted(search) => match search.next_page().map_err(ldap_error)? {
                Some(page) => {
                    let entries = page.into_iter().map(raw).filter_map(deleted).collect();
                    self.phase = Phase::Deleted(search);
                    Ok(batch(Vec::new(), entries))
                }
                None => {
                    self.phase = Phase::Done;
                    Ok(batch(Vec::new(), Vec::new()))
                }
            },
            Phase::SendGroups(pos) => {
                let end = (pos + GROUP_BATCH).min(self.emitted.len());
                let entries = self.emitted[pos..end]
                    .iter()
                    .map(|&i| {
                        let g = self.graph.group(i);
                        let attr = |name: &str, v: &str| Attribute {
                            name: name.to_string(),
                            values: vec![v.to_string()],
                        };
                        Entry::Object(SourceObject {
                            kind: ObjectKind::Group,
                            id: g.anchor.clone(),
                            locator: Some(g.dn.clone()),
                            attributes: vec![attr("cn", &g.name), attr("dn", &g.dn)],
                            member_of: Vec::new(),
                            members: self.graph.child_anchors(i),
                            parent: None,
                        })
                    })
                    .collect();
                self.phase = if end < self.emitted.len() {
                    Phase::SendGroups(end)
                } else {
                    Phase::Done
                };
                Ok(batch(Vec::new(), entries))
            }
            Phase::Done => Ok(None),
        }
    }

    /// Scope and nesting are known: full or delta, then the user search.
    fn decide(&mut self) -> Result<(), PluginError> {
        self.graph
            .finish(&self.settings.groups)
            .map_err(plugin_error)?;
        self.plan = cursor::decide(
            self.cursor_in.as_deref(),
            &Now {
                delta_requested: self.delta_requested,
                unix: self.unix_start,
                full_sync_every: self.settings.full_sync_every,
                config: &self.settings.fingerprint,
                groups: self.graph.hash(),
                dc: self.dc.as_ref(),
            },
        );
        let uf = &self.settings.user_filter;
        let filter = match &self.plan {
            Plan::Full { why } => {
                if let Some(why) = why {
                    self.notices.push(why.clone());
                }
                uf.clone()
            }
            Plan::Delta {
                from: Mark::Timestamp { since },
            } => format!("(&{uf}(modifyTimestamp>={since}))"),
            Plan::Delta {
                from: Mark::Usn { usn, .. },
            } => format!("(&{uf}(uSNChanged>={}))", usn + 1),
        };
        log(
            Level::Debug,
            &format!(
                "{} run: {} groups, user filter {filter}",
                if self.is_delta() { "delta" } else { "full" },
                self.graph.emitted().count()
            ),
        );
        let search = self
            .conn
            .search(&user_search(&self.settings, filter))
            .map_err(ldap_error)?;
        self.phase = Phase::Users(search);
        Ok(())
    }

    fn users_batch(&mut self, page: &[RawEntry]) -> Option<Batch> {
        let columns = entry::columns(&self.settings, page);
        let scoped = !self.settings.groups.is_empty();
        let change = self.settings.change_attribute();
        let mut entries = Vec::with_capacity(page.len());
        for e in page {
            if self.settings.tracking == Tracking::Timestamp {
                if let Some(t) = e
                    .first_text(change)
                    .and_then(|t| cursor::parse_generalized(&t))
                {
                    self.newest = Some(self.newest.map_or(t, |n| n.max(t)));
                }
            }
            let groups = self.graph.user_groups(e);
            if scoped && groups.is_empty() {
                continue;
            }
            match entry::user_row(e, &self.settings, &columns) {
                Err(reason) => entries.push(failed(&e.dn, reason)),
                Ok(row) if row.disabled && !self.settings.include_disabled => {
                    self.left_out += 1;
                    // A delta cannot say "absent": a user disabled since is removed.
                    if self.is_delta() {
                        entries.push(Entry::Removed(Removal {
                            kind: ObjectKind::User,
                            id: row.id,
                        }));
                    }
                }
                Ok(row) => {
                    self.users += 1;
                    entries.push(Entry::Row(Row {
                        kind: ObjectKind::User,
                        id: row.id,
                        locator: Some(e.dn.clone()),
                        values: row.values,
                        member_of: groups
                            .iter()
                            .map(|&g| self.graph.group(g).anchor.clone())
                            .collect(),
                        members: Vec::new(),
                        parent: None,
                    }));
                }
            }
        }
        batch(columns, entries)
    }

    /// After the users: deletions (AD deltas) or the group objects (full runs).
    fn after_users(&mut self) -> Result<(), PluginError> {
        match self.plan.clone() {
            Plan::Delta {
                from: Mark::Usn { usn, .. },
            } => {
                if self.settings.anchor.eq_ignore_ascii_case("objectGUID") {
                    let search = self
                        .conn
                        .search(&SearchRequest {
                            base: None,
                            scope: Scope::Subtree,
                            filter: format!(
                                "(&(isDeleted=TRUE)(uSNChanged>={})(|(objectClass=user)(objectClass=group)))",
                                usn + 1
                            ),
                            attributes: vec!["objectGUID".to_string(), "objectClass".to_string()],
                            page_size: self.settings.page_size,
                            show_deleted: true,
                        })
                        .map_err(ldap_error)?;
                    self.phase = Phase::Deleted(search);
                } else {
                    self.notices.push(format!(
                        "deleted objects keep only their objectGUID, not the anchor {}: \
                         deletions are applied at the next full run",
                        self.settings.anchor
                    ));
                }
            }
            Plan::Delta { .. } => self.notices.push(
                "a delta run cannot see deletions in this directory: they are applied at the \
                 next full run"
                    .to_string(),
            ),
            Plan::Full { .. } => {
                self.emitted = self.graph.emitted().collect();
                self.phase = Phase::SendGroups(0);
            }
        }
        Ok(())
    }

    fn end(&mut self) -> RunEnd {
        let delta = self.is_delta();
        let previous = self.cursor_in.as_deref().and_then(Cursor::decode);
        let full_at = match (&previous, delta) {
            (Some(p), true) => p.full_at,
            _ => self.unix_start,
        };
        let mark = match (&self.dc, self.settings.tracking) {
            (Some(dc), Tracking::Usn) => Some(Mark::Usn {
                usn: dc.highest_usn,
                dsa: dc.dsa.clone(),
                invocation: dc.invocation.clone(),
            }),
            (_, Tracking::Timestamp) => {
                let prev_since = match (&self.plan, delta) {
                    (
                        Plan::Delta {
                            from: Mark::Timestamp { since },
                        },
                        true,
                    ) => Some(since.as_str()),
                    _ => None,
                };
                Some(Mark::Timestamp {
                    since: cursor::next_since(
                        prev_since,
                        self.newest,
                        self.started.elapsed().as_secs(),
                    ),
                })
            }
            (None, Tracking::Usn) => None,
        };
        let cursor = mark.map(|mark| {
            Cursor {
                config: self.settings.fingerprint.clone(),
                groups: self.graph.hash().to_string(),
                full_at,
                mark,
            }
            .encode()
        });
        log(
            Level::Info,
            &format!(
                "{} run: {} users, {} groups, {} disabled accounts left out",
                if delta { "delta" } else { "full" },
                self.users,
                self.emitted.len(),
                self.left_out
            ),
        );
        RunEnd {
            mode: if delta { RunMode::Delta } else { RunMode::Full },
            cursor,
            notices: std::mem::take(&mut self.notices),
        }
    }
}

/// A deleted AD object (Show Deleted) as a removal; computers are not users.
fn deleted(e: RawEntry) -> Option<Entry> {
    let id = e.first_text("objectGUID")?;
    let classes: Vec<String> = e
        .values("objectClass")
        .iter()
        .map(|v| String::from_utf8_lossy(v).to_ascii_lowercase())
        .collect();
    let kind = if classes.iter().any(|c| c == "group") {
        ObjectKind::Group
    } else if classes.iter().any(|c| c == "computer") {
        return None;
    } else {
        ObjectKind::User
    };
    Some(Entry::Removed(Removal { kind, id }))
}
