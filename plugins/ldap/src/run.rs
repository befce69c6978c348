//! One run as a state machine over a [`Directory`] (the host's `ldap` capability in the
//! component, a fake in the tests). Each [`Run::step`] does one bounded piece of work (one
//! page, one range fetch), so no call into the plugin comes near the host's deadline.
//!
//! Steps: groups (paged) → ranged `member` values still missing → decide full or delta →
//! users (one batch per page) → on AD deltas, deleted objects → group objects (full runs).

use std::collections::VecDeque;
use std::time::Instant;

use crate::config::{Settings, Tracking};
use crate::cursor::{self, Cursor, Dc, Mark, Now, Plan};
use crate::entry;
use crate::groups::{GroupGraph, Pending};
use crate::sync::{self, Change, SyncPages};
use crate::{Error, RawEntry};

/// Group objects per batch.
const GROUP_BATCH: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Base,
    Subtree,
}

/// A search as the host's `search-request` has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub base: Option<String>,
    pub scope: Scope,
    pub filter: String,
    pub attributes: Vec<String>,
    pub page_size: u32,
    pub show_deleted: bool,
}

/// A running paged search.
pub trait Pages {
    fn next_page(&mut self) -> Result<Option<Vec<RawEntry>>, Error>;
}

/// A bound LDAP connection.
pub trait Directory {
    type Search: Pages;
    fn search(&self, query: &Query) -> Result<Self::Search, Error>;
    fn root_dse(&self, attributes: &[String]) -> Result<RawEntry, Error>;
    /// RFC 4533 content synchronization from `cookie` (none: every entry).
    fn sync(&self, _query: &Query, _cookie: Option<&[u8]>) -> Result<Box<dyn SyncPages>, Error> {
        Err(Error::config(
            "this directory does not offer content synchronization",
        ))
    }
}

/// What a step sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// A user as a row of the step's columns.
    Row {
        id: String,
        dn: String,
        values: Vec<Vec<String>>,
        member_of: Vec<String>,
    },
    Failed {
        locator: String,
        reason: String,
    },
    Removed {
        group: bool,
        id: String,
    },
    Group {
        id: String,
        dn: String,
        name: String,
        members: Vec<String>,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    /// The columns of the step's rows.
    pub columns: Vec<String>,
    pub entries: Vec<Out>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct End {
    pub delta: bool,
    pub cursor: Option<String>,
    pub notices: Vec<String>,
    /// One line for the log.
    pub summary: String,
}

pub(crate) fn subtree(filter: String, attributes: Vec<String>, page_size: u32) -> Query {
    Query {
        base: None,
        scope: Scope::Subtree,
        filter,
        attributes,
        page_size,
        show_deleted: false,
    }
}

/// AD's DC identity from the root DSE; invocationId lives on the DC's NTDS Settings object,
/// which may lie outside base_dn (then only dsServiceName and the USN bind the cursor).
pub fn read_dc<D: Directory>(dir: &D) -> Result<Option<Dc>, Error> {
    let dse = dir.root_dse(&[
        "dsServiceName".to_string(),
        "highestCommittedUSN".to_string(),
    ])?;
    let (Some(dsa), Some(usn)) = (
        dse.first_text("dsServiceName"),
        dse.first_text("highestCommittedUSN")
            .and_then(|u| u.trim().parse::<u64>().ok()),
    ) else {
        return Ok(None);
    };
    let query = Query {
        base: Some(dsa.clone()),
        scope: Scope::Base,
        filter: "(objectClass=*)".to_string(),
        attributes: vec!["invocationId".to_string()],
        page_size: 0,
        show_deleted: false,
    };
    let invocation = dir
        .search(&query)
        .ok()
        .and_then(|mut s| s.next_page().ok().flatten())
        .and_then(|page| page.into_iter().next())
        .and_then(|e| {
            e.values("invocationId")
                .first()
                .map(|v| entry::text_value("objectGUID", v))
        });
    Ok(Some(Dc {
        dsa,
        invocation,
        highest_usn: usn,
    }))
}

enum Phase<S> {
    LoadGroups(S),
    Ranges,
    Decide,
    Users(S),
    /// Users changed and deleted since the cookie (a content synchronization).
    SyncUsers(Box<dyn SyncPages>),
    Deleted(S),
    /// Group objects from this position of `Run::emitted`.
    SendGroups(usize),
    Done,
}

pub struct Run<D: Directory> {
    // Declared first: searches are dropped before their connection.
    phase: Phase<D::Search>,
    dir: D,
    settings: Settings,
    delta_requested: bool,
    cursor_in: Option<String>,
    graph: GroupGraph,
    pending: VecDeque<Pending>,
    dc: Option<Dc>,
    plan: Plan,
    notices: Vec<String>,
    started: Instant,
    unix_start: u64,
    /// The newest modifyTimestamp seen (Unix seconds).
    newest: Option<i64>,
    emitted: Vec<usize>,
    users: u64,
    left_out: u64,
    /// The server offers content synchronization and the anchor is entryUUID.
    sync_offered: bool,
    /// The cookie the next delta starts from.
    sync_cookie: Option<Vec<u8>>,
    /// Deletions a synchronization delta applied, and whether it saw all of them.
    deleted: u64,
    deletions_complete: bool,
}

impl<D: Directory> Run<D> {
    /// Starts a run: reads the DC's identity (AD) and starts the group search.
    pub fn open(
        dir: D,
        settings: Settings,
        delta_requested: bool,
        cursor_in: Option<String>,
        unix_now: u64,
    ) -> Result<Run<D>, Error> {
        let mut notices = Vec::new();
        let dc = match settings.tracking {
            Tracking::Usn => {
                let dc = read_dc(&dir)?;
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
        let sync_offered = settings.tracking == Tracking::Timestamp
            && settings.anchor.eq_ignore_ascii_case("entryUUID")
            && dir
                .root_dse(&["supportedControl".to_string()])
                .is_ok_and(|dse| sync::offered(&dse));
        let phase = if settings.group_filter.is_empty() {
            Phase::Decide
        } else {
            Phase::LoadGroups(dir.search(&subtree(
                settings.group_filter.clone(),
                settings.group_request(),
                settings.page_size,
            ))?)
        };
        Ok(Run {
            phase,
            dir,
            settings,
            delta_requested,
            cursor_in,
            graph: GroupGraph::default(),
            pending: VecDeque::new(),
            dc,
            plan: Plan::Full { why: None },
            notices,
            started: Instant::now(),
            unix_start: unix_now,
            newest: None,
            emitted: Vec::new(),
            users: 0,
            left_out: 0,
            sync_offered,
            sync_cookie: None,
            deleted: 0,
            deletions_complete: true,
        })
    }

    fn is_delta(&self) -> bool {
        matches!(self.plan, Plan::Delta { .. })
    }

    /// Ends the run early (after an error): open searches are dropped.
    pub fn stop(&mut self) {
        self.phase = Phase::Done;
    }

    /// One bounded step; an empty step when it sends nothing; `None` when the run is done.
    pub fn step(&mut self) -> Result<Option<Step>, Error> {
        let empty = || Ok(Some(Step::default()));
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::LoadGroups(mut search) => {
                let mut entries = Vec::new();
                match search.next_page()? {
                    Some(page) => {
                        for e in page {
                            match self.graph.add(&e, &self.settings) {
                                Ok(pending) => self.pending.extend(pending),
                                Err(reason) => entries.push(Out::Failed {
                                    locator: e.dn,
                                    reason: format!("group: {reason}"),
                                }),
                            }
                        }
                        self.phase = Phase::LoadGroups(search);
                    }
                    None => self.phase = Phase::Ranges,
                }
                Ok(Some(Step {
                    columns: Vec::new(),
                    entries,
                }))
            }
            Phase::Ranges => {
                let Some(p) = self.pending.pop_front() else {
                    self.phase = Phase::Decide;
                    return empty();
                };
                let mut search = self.dir.search(&Query {
                    base: Some(p.dn.clone()),
                    scope: Scope::Base,
                    filter: "(objectClass=*)".to_string(),
                    attributes: vec![p.attribute.clone()],
                    page_size: 0,
                    show_deleted: false,
                })?;
                let mut entries = Vec::new();
                while let Some(page) = search.next_page()? {
                    for e in page {
                        match self.graph.add_range(&p, &e) {
                            Ok(next) => self.pending.extend(next),
                            Err(reason) => entries.push(Out::Failed {
                                locator: e.dn,
                                reason: format!("group: {reason}"),
                            }),
                        }
                    }
                }
                self.phase = Phase::Ranges;
                Ok(Some(Step {
                    columns: Vec::new(),
                    entries,
                }))
            }
            Phase::Decide => {
                self.decide()?;
                empty()
            }
            Phase::Users(mut search) => match search.next_page()? {
                Some(page) => {
                    let step = self.users_step(&page);
                    self.phase = Phase::Users(search);
                    Ok(Some(step))
                }
                None => {
                    drop(search);
                    self.after_users()?;
                    empty()
                }
            },
            Phase::SyncUsers(mut sync) => match sync.next_page()? {
                Some(changes) => {
                    let mut changed = Vec::new();
                    let mut removed = Vec::new();
                    for c in changes {
                        match c {
                            Change::Changed(e) => changed.push(e),
                            Change::Deleted(id) => removed.push(Out::Removed { group: false, id }),
                        }
                    }
                    self.deleted += removed.len() as u64;
                    let mut step = self.users_step(&changed);
                    step.entries.extend(removed);
                    self.phase = Phase::SyncUsers(sync);
                    Ok(Some(step))
                }
                None => {
                    if let Some(end) = sync.end() {
                        self.deletions_complete = end.deletions_complete;
                        if end.cookie.is_some() {
                            self.sync_cookie = end.cookie;
                        }
                    }
                    drop(sync);
                    self.after_users()?;
                    empty()
                }
            },
            Phase::Deleted(mut search) => match search.next_page()? {
                Some(page) => {
                    let entries = page.into_iter().filter_map(deleted).collect();
                    self.phase = Phase::Deleted(search);
                    Ok(Some(Step {
                        columns: Vec::new(),
                        entries,
                    }))
                }
                None => empty(),
            },
            Phase::SendGroups(pos) => {
                let end = (pos + GROUP_BATCH).min(self.emitted.len());
                let entries = self.emitted[pos..end]
                    .iter()
                    .map(|&i| {
                        let g = self.graph.group(i);
                        Out::Group {
                            id: g.anchor.clone(),
                            dn: g.dn.clone(),
                            name: g.name.clone(),
                            members: self.graph.child_anchors(i),
                        }
                    })
                    .collect();
                if end < self.emitted.len() {
                    self.phase = Phase::SendGroups(end);
                }
                Ok(Some(Step {
                    columns: Vec::new(),
                    entries,
                }))
            }
            Phase::Done => Ok(None),
        }
    }

    /// Scope and nesting are known: full or delta, then the user search.
    fn decide(&mut self) -> Result<(), Error> {
        self.graph.finish(&self.settings.groups)?;
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
        if let Plan::Delta {
            from: Mark::Sync { cookie },
        } = self.plan.clone()
        {
            match self.sync_delta(&cookie) {
                Ok(()) => return Ok(()),
                Err(why) => self.plan = Plan::Full { why: Some(why) },
            }
        }
        if self.sync_offered {
            self.sync_mark();
        }
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
            Plan::Delta {
                from: Mark::Sync { .. },
            } => unreachable!("a synchronization delta returned above"),
        };
        let search = self.dir.search(&subtree(
            filter,
            self.settings.user_request(),
            self.settings.page_size,
        ))?;
        self.phase = Phase::Users(search);
        Ok(())
    }

    /// Starts a synchronization delta from the cursor's cookie; why not, for the notice of
    /// the full run that replaces it.
    fn sync_delta(&mut self, cookie: &str) -> Result<(), String> {
        if !self.sync_offered {
            return Err(
                "the server no longer offers content synchronization (RFC 4533) for \
                        this source; ran a full sync"
                    .into(),
            );
        }
        let bytes =
            cursor::unhex(cookie).ok_or("the stored sync cookie is not valid; ran a full sync")?;
        let query = subtree(
            self.settings.user_filter.clone(),
            self.settings.user_request(),
            self.settings.page_size,
        );
        let sync = self
            .dir
            .sync(&query, Some(&bytes))
            .map_err(|e| format!("content synchronization failed ({e}); ran a full sync"))?;
        self.sync_cookie = Some(bytes);
        self.phase = Phase::SyncUsers(sync);
        Ok(())
    }

    /// The current cookie, before a full or timestamp run reads: the next delta starts here.
    fn sync_mark(&mut self) {
        let query = subtree(sync::NOTHING.to_string(), vec!["1.1".to_string()], 0);
        let cookie = self.dir.sync(&query, None).and_then(|mut s| {
            while s.next_page()?.is_some() {}
            Ok(s.end().and_then(|e| e.cookie))
        });
        match cookie {
            Ok(Some(c)) => self.sync_cookie = Some(c),
            Ok(None) => self.sync_offered = false,
            Err(e) => {
                self.sync_offered = false;
                self.notices.push(format!(
                    "content synchronization was refused ({e}): delta runs read modifyTimestamp"
                ));
            }
        }
    }

    fn users_step(&mut self, page: &[RawEntry]) -> Step {
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
                Err(reason) => entries.push(Out::Failed {
                    locator: e.dn.clone(),
                    reason,
                }),
                Ok(row) if row.disabled && !self.settings.include_disabled => {
                    self.left_out += 1;
                    // A delta cannot say "absent": a user disabled since is removed.
                    if self.is_delta() {
                        entries.push(Out::Removed {
                            group: false,
                            id: row.id,
                        });
                    }
                }
                Ok(row) => {
                    self.users += 1;
                    entries.push(Out::Row {
                        id: row.id,
                        dn: e.dn.clone(),
                        values: row.values,
                        member_of: groups
                            .iter()
                            .map(|&g| self.graph.group(g).anchor.clone())
                            .collect(),
                    });
                }
            }
        }
        Step { columns, entries }
    }

    /// After the users: deletions (AD deltas) or the group objects (full runs).
    fn after_users(&mut self) -> Result<(), Error> {
        match self.plan.clone() {
            Plan::Delta {
                from: Mark::Usn { usn, .. },
            } => {
                if self.settings.anchor.eq_ignore_ascii_case("objectGUID") {
                    let mut query = subtree(
                        format!(
                            "(&(isDeleted=TRUE)(uSNChanged>={})(|(objectClass=user)(objectClass=group)))",
                            usn + 1
                        ),
                        vec!["objectGUID".to_string(), "objectClass".to_string()],
                        self.settings.page_size,
                    );
                    query.show_deleted = true;
                    self.phase = Phase::Deleted(self.dir.search(&query)?);
                } else {
                    self.notices.push(format!(
                        "deleted objects keep only their objectGUID, not the anchor {}: \
                         deletions are applied at the next full run",
                        self.settings.anchor
                    ));
                }
            }
            Plan::Delta {
                from: Mark::Sync { .. },
            } => {
                self.notices.push(format!(
                    "delta by content synchronization (RFC 4533): {} changed entries read, {} \
                     deletions",
                    self.users, self.deleted
                ));
                if !self.deletions_complete {
                    self.notices.push(
                        "the server listed its present entries instead of the deleted ones \
                         (syncprov without syncprov-sessionlog): deletions are applied at the \
                         next full run"
                            .to_string(),
                    );
                }
            }
            Plan::Delta { .. } => self.notices.push(format!(
                "delta by modifyTimestamp ({}): a delta run cannot see deletions in this \
                 directory: they are applied at the next full run",
                if self.sync_offered {
                    "the cursor predates content synchronization, which the next delta uses"
                } else {
                    "the server offers no content synchronization, RFC 4533, for this source"
                }
            )),
            Plan::Full { .. } => {
                self.emitted = self.graph.emitted().collect();
                self.phase = Phase::SendGroups(0);
            }
        }
        Ok(())
    }

    /// How the run ended, and the cursor for the next one.
    pub fn end(&mut self) -> End {
        self.phase = Phase::Done;
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
            (_, Tracking::Timestamp) if self.sync_offered && self.sync_cookie.is_some() => {
                Some(Mark::Sync {
                    cookie: cursor::hex(self.sync_cookie.as_deref().unwrap_or_default()),
                })
            }
            (_, Tracking::Timestamp) => {
                let prev_since = match &self.plan {
                    Plan::Delta {
                        from: Mark::Timestamp { since },
                    } => Some(since.as_str()),
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
        End {
            delta,
            cursor,
            notices: std::mem::take(&mut self.notices),
            summary: format!(
                "{} run: {} users, {} groups, {} disabled accounts left out",
                if delta { "delta" } else { "full" },
                self.users,
                self.emitted.len(),
                self.left_out
            ),
        }
    }
}

/// A deleted AD object (Show Deleted) as a removal; computers are not users.
fn deleted(e: RawEntry) -> Option<Out> {
    let id = e.first_text("objectGUID")?;
    let classes: Vec<String> = e
        .values("objectClass")
        .iter()
        .map(|v| String::from_utf8_lossy(v).to_ascii_lowercase())
        .collect();
    if classes.iter().any(|c| c == "computer") {
        return None;
    }
    Some(Out::Removed {
        group: classes.iter().any(|c| c == "group"),
        id,
    })
}

#[cfg(test)]
mod tests;
