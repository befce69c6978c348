//! The store: schema, migrations and queries. Only this module speaks SQL. SQLite is the
//! store roster runs on; PostgreSQL (`pg`) so far has the schema and `db copy`.

mod copy;
pub(crate) mod db;
mod edit;
mod lease;
mod open;
mod outbox;
pub mod pg;
mod run;
mod scim;
mod service;

pub use copy::{CopyCount, CopyReport};
pub use edit::{AuthUser, Edit, EditError, LockRow, Provenance};
pub use lease::{Busy, Holder, Lease, LeaseError, LeaseInfo};
pub use outbox::{now as unix_now, NewMessage, NewUser, OutboxRow, Pending, RunEnd, RunNotifier};
pub(crate) use run::hash_pin;
pub use run::{Counts, ErrorItem, KnownRaw, Outcome, PlanItem, Run, Status};
pub use scim::{ScimGroupRow, ScimQuery, ScimResource, ScimUserRow};
pub use service::{Held, RunPage, TokenRow};

use anyhow::Result;
use db::Sql;
use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use std::cell::RefCell;

pub(crate) const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%SZ','now')";

/// The message of a run found interrupted.
const INTERRUPTED: &str =
    "the roster process ended before the run committed; nothing of it was applied";

/// An open database.
pub struct Store {
    pub(crate) conn: db::Conn,
    leases: Leases,
    /// How this process names itself to others waiting for its leases.
    process: String,
    /// Leases of runs that ended without committing, kept until their status is recorded
    /// (`close_run`), so that nobody judges them interrupted in between.
    parked: RefCell<Vec<(i64, Lease)>>,
}

/// Run leases: a lease file beside an SQLite database, advisory locks in PostgreSQL.
enum Leases {
    Lite(lease::Leases),
    Pg(pg::PgLeases),
}

impl Leases {
    fn acquire(&self, source: &str, holder: &Holder) -> Result<Lease, LeaseError> {
        match self {
            Leases::Lite(l) => l.acquire(source, holder),
            Leases::Pg(l) => l.acquire(source, holder),
        }
    }

    fn holder(&self, source: &str) -> Result<Option<LeaseInfo>> {
        match self {
            Leases::Lite(l) => l.holder(source),
            Leases::Pg(l) => l.holder(source),
        }
    }

    fn claim_tick(&self, source: &str, at: i64, not_before: i64) -> Result<bool> {
        match self {
            Leases::Lite(l) => l.claim_tick(source, at, not_before),
            Leases::Pg(l) => l.claim_tick(source, at, not_before),
        }
    }

    fn alive(&self, token: &str) -> Result<bool> {
        match self {
            Leases::Lite(l) => l.alive(token),
            Leases::Pg(l) => l.alive(token),
        }
    }
}

/// A user as `users list --json` shows it.
#[derive(Debug, Serialize)]
pub struct UserView {
    pub username: String,
    pub full_name: Option<String>,
    pub email: Option<String>,
    pub personal_number: Option<String>,
    pub aliases: Vec<String>,
    pub cards: Vec<String>,
    pub groups: Vec<String>,
    pub language: Option<String>,
    pub phone: Option<String>,
    pub active: bool,
    pub source: Option<String>,
    pub has_pin: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<Option<String>>,
}

/// Which users [`Store::each_user`] lists.
#[derive(Debug, Default)]
pub struct UserFilter {
    /// Inactive users too.
    pub all: bool,
    /// Inactive users only.
    pub inactive: bool,
    /// Users of this source only.
    pub source: Option<String>,
    /// Members of this group path or of a group under it.
    pub group: Option<String>,
    /// A case-insensitive piece of the username, an alias, the full name, the email, the
    /// personal number or a card.
    pub search: Option<String>,
    /// Only usernames after this one (cursor paging).
    pub after: Option<String>,
    /// At most this many users.
    pub limit: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct GroupView {
    pub name: String,
    pub path: String,
    pub parent: Option<String>,
    pub members: u64,
}

#[derive(Debug, Serialize)]
pub struct RunView {
    pub id: i64,
    pub source: String,
    pub status: Status,
    pub mode: Option<String>,
    pub started: String,
    pub finished: Option<String>,
    #[serde(flatten)]
    pub counts: Counts,
    pub message: Option<String>,
    pub notices: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<EventView>>,
    /// The deletion guard stopped it in service mode: its plan and the decision on it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<Held>,
}

#[derive(Debug, Serialize)]
pub struct EventView {
    #[serde(skip)]
    pub seq: i64,
    pub entry: String,
    pub action: String,
    pub reason: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct PluginRow {
    pub name: String,
    pub file: String,
    pub sha256: String,
    pub version: String,
    pub description: String,
    pub installed_at: String,
}

impl Store {
    /// How this process is named to a second starter of a source it runs, such as
    /// `roster sync` or `roster serve`.
    pub fn set_process(&mut self, process: &str) {
        self.process = process.to_string();
    }

    /// Takes the source's run lease for this process, or says who holds it. Held (and
    /// renewed) until dropped.
    pub fn acquire_lease(&self, source: &str) -> Result<Lease, LeaseError> {
        self.leases
            .acquire(source, &Holder::this_process(&self.process))
    }

    /// Claims a scheduled run of `source` for the tick `at`, unless some host (this one or
    /// another on the same database) claimed one at or after `not_before`: with several
    /// `roster serve` on one database, each tick runs once. Times in unix milliseconds.
    pub fn claim_tick(&self, source: &str, at: i64, not_before: i64) -> Result<bool> {
        self.leases.claim_tick(source, at, not_before)
    }

    /// Who is running the source, if anyone.
    pub fn lease_holder(&self, source: &str) -> Result<Option<LeaseInfo>> {
        self.leases.holder(source)
    }

    /// Running runs whose lease is gone were interrupted (a crash or kill): their
    /// transaction never committed.
    pub(super) fn mark_interrupted(&self) -> Result<()> {
        for id in self.dead_runs(None)? {
            self.conn.execute(
                &format!("UPDATE runs SET status = ?2, finished = {NOW}, message = ?3 WHERE id = ?1 AND status = ?4"),
                params![id, Status::Interrupted, INTERRUPTED, Status::Running],
            )?;
        }
        Ok(())
    }

    /// Runs recorded as running (of one source, or all) whose lease no longer lives.
    fn dead_runs(&self, source: Option<&str>) -> Result<Vec<i64>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, lease FROM runs WHERE status = ?1 AND (?2 IS NULL OR source = ?2)",
        )?;
        let running = stmt
            .query_map(params![Status::Running, source], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut dead = Vec::new();
        for (id, lease) in running {
            let alive = match lease {
                Some(token) => self.leases.alive(&token)?,
                None => false,
            };
            if !alive {
                dead.push(id);
            }
        }
        Ok(dead)
    }

    /// The key for PIN fingerprints, made once per database.
    pub fn pin_key(&self) -> Result<Vec<u8>> {
        if let Some(k) = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'pin_key'", (), |r| {
                r.get(0)
            })
            .optional()?
        {
            return Ok(k);
        }
        let mut key = vec![0u8; 32];
        getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("random: {e}"))?;
        self.conn.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES ('pin_key', ?1)",
            [&key],
        )?;
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'pin_key'", (), |r| {
                r.get(0)
            })?)
    }

    pub fn cursor(&self, source: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT cursor FROM sources WHERE name = ?1",
                [source],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    pub fn users(&self, all: bool) -> Result<Vec<UserView>> {
        let filter = if all {
            "TRUE ORDER BY u.username"
        } else {
            "u.active = 1 ORDER BY u.username"
        };
        self.query_users(filter, (), false)
    }

    /// The users `filter` selects, sorted by username, handed to `each` one at a time as
    /// SQLite reads them: a million users are never held in memory. An error from `each`
    /// (such as a closed stdout) stops the listing.
    pub fn each_user(
        &self,
        filter: &UserFilter,
        mut each: impl FnMut(UserView) -> Result<()>,
    ) -> Result<()> {
        // The group, and the groups under it; a member set computed once, not per user.
        let sql = "(?1 OR u.active = 1) AND (NOT ?2 OR u.active = 0)
            AND (?3 IS NULL OR s.name = ?3)
            AND (?4 IS NULL OR u.id IN (SELECT m.user_id FROM memberships m
                 JOIN groups g ON g.id = m.group_id
                 WHERE g.path = ?4 OR substr(g.path, 1, length(?4) + 1) = ?4 || '|'))
            AND (?5 IS NULL
                 OR instr(lower(u.username), ?5) > 0 OR instr(lower(u.full_name), ?5) > 0
                 OR instr(lower(u.email), ?5) > 0 OR instr(lower(u.personal_number), ?5) > 0
                 OR EXISTS (SELECT 1 FROM names n WHERE n.user_id = u.id AND n.alias = 1
                            AND instr(lower(n.name), ?5) > 0)
                 OR EXISTS (SELECT 1 FROM cards c WHERE c.user_id = u.id
                            AND instr(lower(c.card), ?5) > 0))
            AND (?6 IS NULL OR TRUE)";
        let search = filter.search.as_ref().map(|s| s.to_lowercase());
        let p = params![
            filter.all || filter.inactive,
            filter.inactive,
            filter.source,
            filter.group,
            search,
            filter.after
        ];
        // A page after a username starts where the index has it: written as a plain range,
        // not `?6 IS NULL OR ...`, which the planner cannot use and scans from the start.
        let sql = match &filter.after {
            Some(_) => format!("{sql} AND u.username > ?6"),
            None => sql.to_string(),
        };
        let sql = match filter.limit {
            Some(n) => format!("{sql} ORDER BY u.username LIMIT {n}"),
            None => format!("{sql} ORDER BY u.username"),
        };
        self.each_user_where(&sql, p, false, &mut each)
    }

    /// A user by username or alias.
    pub fn user(&self, name: &str) -> Result<Option<UserView>> {
        Ok(self
            .query_users(
                "u.id = (SELECT user_id FROM names WHERE name = ?1) ORDER BY u.username",
                [name],
                true,
            )?
            .pop())
    }

    /// The user a source's anchor is linked to.
    pub fn linked_user(&self, source: &str, anchor: &str) -> Result<Option<i64>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT l.user_id FROM links l JOIN sources s ON s.id = l.source_id
                 WHERE s.name = ?1 AND l.anchor = ?2",
            )?
            .query_row([source, anchor], |r| r.get(0))
            .optional()?)
    }

    /// The group a source's anchor names.
    pub fn group_by_anchor(&self, source: &str, anchor: &str) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row(
                "SELECT g.id FROM groups g JOIN sources s ON s.id = g.source_id
                 WHERE s.name = ?1 AND g.anchor = ?2",
                [source, anchor],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Changes the anchor of a source's group (a pushed group's new externalId).
    pub fn relink_group(&self, source: &str, from: &str, to: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE groups SET anchor = ?3
             WHERE source_id = (SELECT id FROM sources WHERE name = ?1) AND anchor = ?2",
            [source, from, to],
        )?;
        Ok(())
    }

    /// The group at a path.
    pub fn group_by_path(&self, path: &str) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row("SELECT id FROM groups WHERE path = ?1", [path], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// The anchor by which a source names a group (by its id), if the group is the source's.
    pub fn group_anchor(&self, source: &str, group_id: i64) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT g.anchor FROM groups g JOIN sources s ON s.id = g.source_id
                 WHERE s.name = ?1 AND g.id = ?2",
                rusqlite::params![source, group_id],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    /// Changes the anchor of a source's link (a pushed user's new externalId).
    pub fn relink(&self, source: &str, from: &str, to: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE links SET anchor = ?3, raw_hash = NULL
             WHERE source_id = (SELECT id FROM sources WHERE name = ?1) AND anchor = ?2",
            [source, from, to],
        )?;
        Ok(())
    }

    /// The anchor by which a source links a user (by the user's id), if it does.
    pub fn link_anchor(&self, source: &str, user_id: i64) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT l.anchor FROM links l JOIN sources s ON s.id = l.source_id
                 WHERE s.name = ?1 AND l.user_id = ?2",
            )?
            .query_row(rusqlite::params![source, user_id], |r| r.get(0))
            .optional()?)
    }

    fn query_users<P: db::Args>(&self, filter: &str, p: P, detail: bool) -> Result<Vec<UserView>> {
        let mut users = Vec::new();
        self.each_user_where(filter, p, detail, &mut |u| {
            users.push(u);
            Ok(())
        })?;
        Ok(users)
    }

    fn each_user_where<P: db::Args>(
        &self,
        filter: &str,
        p: P,
        detail: bool,
        each: &mut dyn FnMut(UserView) -> Result<()>,
    ) -> Result<()> {
        let sql = format!(
            "SELECT u.username, u.full_name, u.email, u.personal_number, u.language, u.phone,
                    u.active, s.name, u.notes, u.storage,
                    (SELECT json_group_array(name) FROM (SELECT name FROM names WHERE user_id = u.id AND alias = 1 ORDER BY name)),
                    (SELECT json_group_array(card) FROM (SELECT card FROM cards WHERE user_id = u.id ORDER BY card)),
                    (SELECT json_group_array(path) FROM (SELECT g.path FROM memberships m JOIN groups g ON g.id = m.group_id WHERE m.user_id = u.id ORDER BY g.path)),
                    EXISTS (SELECT 1 FROM pins WHERE user_id = u.id)
             FROM users u LEFT JOIN sources s ON s.id = u.source_id
             WHERE {filter}"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let list = |s: String| serde_json::from_str::<Vec<String>>(&s).unwrap_or_default();
        let rows = stmt.query_map(p, |r| {
            Ok(UserView {
                username: r.get(0)?,
                full_name: r.get(1)?,
                email: r.get(2)?,
                personal_number: r.get(3)?,
                language: r.get(4)?,
                phone: r.get(5)?,
                active: r.get(6)?,
                source: r.get(7)?,
                notes: detail.then(|| r.get(8)).transpose()?,
                storage: detail.then(|| r.get(9)).transpose()?,
                aliases: list(r.get(10)?),
                cards: list(r.get(11)?),
                groups: list(r.get(12)?),
                has_pin: r.get(13)?,
            })
        })?;
        for row in rows {
            each(row?)?;
        }
        Ok(())
    }

    pub fn groups(&self) -> Result<Vec<GroupView>> {
        let mut stmt = self.conn.prepare(
            "SELECT g.name, g.path, p.path, (SELECT count(*) FROM memberships m WHERE m.group_id = g.id)
             FROM groups g LEFT JOIN groups p ON p.id = g.parent_id ORDER BY g.path",
        )?;
        let rows = stmt.query_map((), |r| {
            Ok(GroupView {
                name: r.get(0)?,
                path: r.get(1)?,
                parent: r.get(2)?,
                members: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn runs(&self) -> Result<Vec<RunView>> {
        self.query_runs("TRUE ORDER BY id DESC", ())
    }

    pub fn run(&self, id: i64) -> Result<Option<RunView>> {
        let Some(mut run) = self.query_runs("id = ?1", [id])?.pop() else {
            return Ok(None);
        };
        let mut stmt = self.conn.prepare(
            "SELECT entry, action, reason, seq FROM run_events WHERE run_id = ?1 ORDER BY seq",
        )?;
        let events = stmt.query_map([id], |r| {
            Ok(EventView {
                entry: r.get(0)?,
                action: r.get(1)?,
                reason: r.get(2)?,
                seq: r.get(3)?,
            })
        })?;
        run.events = Some(events.collect::<Result<_, _>>()?);
        run.held = self.held(id)?;
        Ok(Some(run))
    }

    pub(crate) fn query_runs<P: db::Args>(&self, filter: &str, p: P) -> Result<Vec<RunView>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT id, source, status, mode, started, finished, created, updated, unchanged,
                    deactivated, reactivated, deleted, failed, message, notices, lease
             FROM runs WHERE {filter}"
        ))?;
        let rows = stmt.query_map(p, |r| {
            let run = RunView {
                id: r.get(0)?,
                source: r.get(1)?,
                status: r.get(2)?,
                mode: r.get(3)?,
                started: r.get(4)?,
                finished: r.get(5)?,
                counts: Counts {
                    created: r.get(6)?,
                    updated: r.get(7)?,
                    unchanged: r.get(8)?,
                    deactivated: r.get(9)?,
                    reactivated: r.get(10)?,
                    deleted: r.get(11)?,
                    failed: r.get(12)?,
                },
                message: r.get(13)?,
                notices: r
                    .get::<_, Option<String>>(14)?
                    .and_then(|s| serde_json::from_str(&s).ok())
                    .unwrap_or_default(),
                events: None,
                held: None,
            };
            Ok((run, r.get::<_, Option<String>>(15)?))
        })?;
        let mut runs = Vec::new();
        for row in rows {
            let (mut run, lease) = row?;
            // A run whose lease is gone was interrupted, whether or not a writer noted it yet.
            if run.status == Status::Running {
                let alive = match lease {
                    Some(token) => self.leases.alive(&token)?,
                    None => false,
                };
                if !alive {
                    run.status = Status::Interrupted;
                    run.message = Some(INTERRUPTED.into());
                }
            }
            runs.push(run);
        }
        Ok(runs)
    }

    /// Source names known to the database with their user counts (active, all).
    pub fn source_counts(&self, name: &str) -> Result<(u64, u64)> {
        Ok(self.conn.query_row(
            "SELECT coalesce(sum(u.active), 0), count(u.id) FROM sources s JOIN users u ON u.source_id = s.id WHERE s.name = ?1",
            [name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }

    pub fn plugins(&self) -> Result<Vec<PluginRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT name, file, sha256, version, description, installed_at FROM plugins ORDER BY name",
        )?;
        let rows = stmt.query_map((), |r| {
            Ok(PluginRow {
                name: r.get(0)?,
                file: r.get(1)?,
                sha256: r.get(2)?,
                version: r.get(3)?,
                description: r.get(4)?,
                installed_at: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn plugin(&self, name: &str) -> Result<Option<PluginRow>> {
        Ok(self.plugins()?.into_iter().find(|p| p.name == name))
    }

    pub fn add_plugin(&self, p: &PluginRow) -> Result<()> {
        self.conn.execute(
            &format!("INSERT INTO plugins(name, file, sha256, version, description, installed_at) VALUES (?1, ?2, ?3, ?4, ?5, {NOW})"),
            params![p.name, p.file, p.sha256, p.version, p.description],
        )?;
        Ok(())
    }

    /// Records a new version of an installed plugin (same name and file).
    pub fn update_plugin(&self, p: &PluginRow) -> Result<()> {
        self.conn.execute(
            &format!("UPDATE plugins SET file = ?2, sha256 = ?3, version = ?4, description = ?5, installed_at = {NOW} WHERE name = ?1"),
            params![p.name, p.file, p.sha256, p.version, p.description],
        )?;
        Ok(())
    }

    pub fn remove_plugin(&self, name: &str) -> Result<bool> {
        Ok(self
            .conn
            .execute("DELETE FROM plugins WHERE name = ?1", [name])?
            > 0)
    }

    /// The run of this process for a source that ended without committing and whose
    /// status is not recorded yet.
    pub fn latest_running(&self, source: &str) -> Result<Option<i64>> {
        Ok((self.parked.borrow().iter())
            .filter(|(_, l)| l.source() == source)
            .map(|(id, _)| *id)
            .max())
    }

    /// Ends a run whose transaction was rolled back, and releases its lease.
    pub fn close_run(&self, id: i64, status: Status, message: &str) -> Result<()> {
        self.conn.execute(
            &format!("UPDATE runs SET status = ?2, finished = {NOW}, message = ?3 WHERE id = ?1"),
            params![id, status, message],
        )?;
        self.parked.borrow_mut().retain(|(run, _)| *run != id);
        Ok(())
    }

    /// Records a run that failed before it could start (for example the plugin did not load).
    pub fn record_failed_run(&self, source: &str, message: &str) -> Result<i64> {
        self.record_failed_run_notifying(source, message, None)
    }
}
