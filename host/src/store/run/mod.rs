//! One source run: staging and the set-based merge, all in one transaction.
//!
//! Entries are staged in TEMP tables as they arrive, so memory stays bounded. `finish` pairs
//! the whole stage with stored users in one statement, selects the rows whose content hash
//! changed, and walks only those through [`reconcile::decide`]. Unchanged users cost no write.
//! Missing users are found and guarded set-wise. Nothing is visible to others until commit.
//!
//! The phases, in the order a run meets them:
//! - `fast`: the cheap path for entries whose raw hash is the one their link last wrote;
//! - `staging`: every other entry, paired with the stored user and put in TEMP tables;
//! - `missing`: the users the source no longer has, and the deletion guard;
//! - `bulk`: new users that cannot conflict, created set-wise;
//! - `apply`: the rest, one entry at a time through [`reconcile::decide`];
//! - `groups`: group objects, memberships and pruning of emptied groups;
//! - `end`: the run record, then commit or roll back.
//!
//! [`reconcile::decide`]: crate::reconcile::decide

mod apply;
mod bulk;
mod end;
mod fast;
pub(crate) mod fields;
mod groups;
mod missing;
mod staging;

pub use fast::KnownRaw;
pub(crate) use staging::hash_pin;

use super::{Lease, LeaseError, Store, NOW};
use crate::reconcile::{deletion_guard, OnMissing, Options};
use crate::store::db::Sql;
use anyhow::{Context, Result};
use fast::{Fast, SeenSet};
use groups::GroupIds;
use rusqlite::params;
use serde::Serialize;
use std::cell::RefCell;

/// Failed entries kept in memory for the command's output; all go to the run log.
const MAX_REPORTED_ERRORS: usize = 10_000;

#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Counts {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub deactivated: u64,
    pub reactivated: u64,
    pub deleted: u64,
    pub failed: u64,
}

/// A run's status, as stored in `runs.status` and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Failed,
    Aborted,
    /// Begun and not yet ended (or ended by a crash, until the next open notices).
    Running,
    /// Its process ended before the run committed.
    Interrupted,
    /// Stopped on request (a service shutting down): nothing of it was applied.
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::Aborted => "aborted",
            Status::Running => "running",
            Status::Interrupted => "interrupted",
            Status::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Status {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        [
            Status::Ok,
            Status::Failed,
            Status::Aborted,
            Status::Running,
            Status::Interrupted,
            Status::Cancelled,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
        .ok_or_else(|| format!("unknown run status {s:?}"))
    }
}

impl rusqlite::ToSql for Status {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl rusqlite::types::FromSql for Status {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        v.as_str()?
            .parse()
            .map_err(|e: String| rusqlite::types::FromSqlError::Other(e.into()))
    }
}

/// One line of a dry-run plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanItem {
    pub action: &'static str,
    pub username: String,
    pub fields: Vec<&'static str>,
    /// Field decisions that differ from a plain overwrite (per-field authority).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ErrorItem {
    pub entry: String,
    pub reason: String,
}

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    pub run_id: Option<i64>,
    pub status: Status,
    pub counts: Counts,
    pub errors: Vec<ErrorItem>,
    pub message: Option<String>,
    pub plan: Vec<PlanItem>,
    pub notices: Vec<String>,
    pub full: bool,
}

/// A run in progress. Dropping it without `finish` rolls everything back.
pub struct Run<'c> {
    tx: crate::store::db::Tx<'c>,
    /// The source's lease, for a real run.
    lease: LeaseSlot<'c>,
    run_id: Option<i64>,
    source_id: i64,
    source: String,
    opts: Options,
    /// What the run reports: counts, failed entries, the dry-run plan.
    report: Report,
    /// Which stored users entries paired with.
    seen: Seen,
    /// The in-memory unchanged check.
    fast: Fast,
    /// Group path → id, for groups met in this run.
    group_ids: GroupIds,
    /// The store held no users when the run began.
    no_users: bool,
    /// A run the deletion guard stops keeps its whole plan (`roster serve` holds it for review).
    keep_plan: bool,
    /// The highest user id when the run began: users above it are new.
    max_user_id: i64,
    /// Told how the run ends, inside its transaction (notifications).
    notifier: Option<Box<dyn super::outbox::RunNotifier>>,
    /// Staged rows PostgreSQL writes many at a time.
    deferred: staging::Deferred,
}

/// A run's lease. A run that ends without committing parks it in its store until
/// [`Store::close_run`] records how it ended.
struct LeaseSlot<'c> {
    lease: Option<Lease>,
    run_id: i64,
    parked: &'c RefCell<Vec<(i64, Lease)>>,
}

impl LeaseSlot<'_> {
    /// The lease expired while the run went on: it must not commit.
    fn lost(&self) -> bool {
        self.lease.as_ref().is_some_and(Lease::lost)
    }

    /// Takes the lease out, to be dropped (released) once the run's status is recorded.
    fn release(mut self) -> Option<Lease> {
        self.lease.take()
    }
}

impl Drop for LeaseSlot<'_> {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            self.parked.borrow_mut().push((self.run_id, lease));
        }
    }
}

/// What a run reports, built up as it goes.
#[derive(Default)]
struct Report {
    counts: Counts,
    errors: Vec<ErrorItem>,
    plan: Vec<PlanItem>,
    /// The last `run_events.seq` written.
    event_seq: i64,
}

/// Stored users paired in this run.
struct Seen {
    users: SeenSet,
    /// Of them, users of this source, and how many of those were active.
    own: u64,
    own_active: u64,
}

impl Store {
    /// Starts a run. The run record is committed first (status "running") so a crash leaves
    /// a trace; everything else happens in one transaction. Dry runs write nothing at all.
    ///
    /// A real run holds the source's lease (see [`Store::acquire_lease`]) until its status
    /// is recorded: a source another process runs fails at once with [`super::Busy`].
    pub fn begin_run(&mut self, source: &str, opts: Options, dry_run: bool) -> Result<Run<'_>> {
        let (run_id, lease) = if dry_run {
            (None, None)
        } else {
            // A run of ours that ended uncommitted with its status never recorded.
            (self.parked.get_mut()).retain(|(_, l)| l.source() != source);
            let lease = self.acquire_lease(source).map_err(|e| match e {
                LeaseError::Busy(busy) => anyhow::Error::new(busy),
                LeaseError::Store(e) => e,
            })?;
            // Holding the lease, any other run of the source still marked running is dead.
            for id in self.dead_runs(Some(source))? {
                self.close_run(id, Status::Interrupted, super::INTERRUPTED)?;
            }
            self.conn.execute(
                &format!(
                    "INSERT INTO runs(source, status, lease, started) VALUES (?1, ?3, ?2, {NOW})"
                ),
                params![source, lease.token(), Status::Running],
            )?;
            (Some(self.conn.last_insert_rowid()?), Some(lease))
        };
        let Store { conn, parked, .. } = self;
        let lease = LeaseSlot {
            lease,
            run_id: run_id.unwrap_or(0),
            parked,
        };
        let conn: &crate::store::db::Conn = conn;
        let tx = match conn.begin() {
            Ok(tx) => tx,
            Err(e) => {
                if let Some(id) = run_id {
                    let message = "another roster process is writing this database";
                    conn.execute(
                        &format!("UPDATE runs SET status = ?2, finished = {NOW}, message = ?3 WHERE id = ?1"),
                        params![id, Status::Failed, message],
                    )?;
                }
                drop(lease.release());
                return Err(e).context("another roster process is writing this database");
            }
        };
        tx.execute("INSERT OR IGNORE INTO sources(name) VALUES (?1)", [source])?;
        let source_id: i64 =
            tx.query_row("SELECT id FROM sources WHERE name = ?1", [source], |r| {
                r.get(0)
            })?;
        staging::create_tables(&tx)?;
        let fast = Fast::load(&tx, source_id, opts.authority.is_some())?;
        let max_id: i64 =
            tx.query_row("SELECT coalesce(max(id), 0) FROM users", (), |r| r.get(0))?;
        Ok(Run {
            tx,
            lease,
            run_id,
            source_id,
            source: source.to_string(),
            opts,
            report: Report::default(),
            seen: Seen {
                users: SeenSet::with_max(max_id),
                own: 0,
                own_active: 0,
            },
            fast,
            group_ids: GroupIds::new(),
            no_users: max_id == 0,
            keep_plan: false,
            max_user_id: max_id,
            notifier: None,
            deferred: staging::Deferred::default(),
        })
    }
}

impl Run<'_> {
    /// Has `notifier` told how the run ends, in the run's own transaction.
    pub fn notify_with(&mut self, notifier: Box<dyn super::outbox::RunNotifier>) {
        self.notifier = Some(notifier);
    }

    /// A failed entry: counted, logged in the run, and the run goes on.
    pub fn fail(&mut self, entry: &str, reason: &str) -> Result<()> {
        self.report.counts.failed += 1;
        if self.report.errors.len() < MAX_REPORTED_ERRORS {
            self.report.errors.push(ErrorItem {
                entry: entry.into(),
                reason: reason.into(),
            });
        }
        self.event(entry, "failed", Some(reason))
    }

    fn event(&mut self, entry: &str, action: &str, reason: Option<&str>) -> Result<()> {
        if let Some(run_id) = self.run_id {
            self.report.event_seq += 1;
            if self.tx.is_pg() {
                // Many a statement (see `flush_staged`).
                use rusqlite::types::Value as V;
                let text = |s: &str| V::Text(s.to_string());
                let events = &mut self.deferred.events;
                events.push(vec![
                    V::Integer(run_id),
                    V::Integer(self.report.event_seq),
                    text(entry),
                    text(action),
                    reason.map_or(V::Null, text),
                ]);
                if events.len() >= staging::DEFERRED_ROWS {
                    self.flush_staged()?;
                }
                return Ok(());
            }
            self.tx
                .prepare_cached("INSERT INTO run_events(run_id, seq, entry, action, reason) VALUES (?1, ?2, ?3, ?4, ?5)")?
                .execute(params![run_id, self.report.event_seq, entry, action, reason])?;
        }
        Ok(())
    }

    /// The run's record (none for a dry run).
    pub fn id(&self) -> Option<i64> {
        self.run_id
    }

    /// When the deletion guard stops this run, work out and return its whole plan (then
    /// roll back) instead of stopping at the guard.
    pub fn keep_plan(&mut self) {
        self.keep_plan = true;
    }

    /// A line of the dry-run plan (a real run logs events instead).
    fn planned(&mut self, action: &'static str, username: &str, fields: Vec<&'static str>) {
        self.planned_with(action, username, fields, Vec::new());
    }

    /// A plan line with field decisions that differ from a plain overwrite.
    fn planned_with(
        &mut self,
        action: &'static str,
        username: &str,
        fields: Vec<&'static str>,
        notes: Vec<String>,
    ) {
        if self.run_id.is_none() || self.keep_plan {
            self.report.plan.push(PlanItem {
                action,
                username: username.into(),
                fields,
                notes,
            });
        }
    }

    /// Merges the stage into the store, applies the missing policy and the guard, and commits
    /// (or rolls back for a dry run or an abort).
    pub fn finish(
        mut self,
        full: bool,
        cursor: Option<String>,
        notices: Vec<String>,
        force: bool,
    ) -> Result<Outcome> {
        let t = std::time::Instant::now();
        self.flush_staged()?;
        if self.tx.is_pg() {
            // Temporary tables get no statistics of their own: without them PostgreSQL plans
            // the merges as if the stage were empty.
            self.tx
                .execute_batch("ANALYZE temp.stage; ANALYZE temp.seen; ANALYZE temp.edges;")?;
        }
        self.make_work()?;
        // Nothing is written before the guard: the store is still as the run found it.
        let (total_before, missing) = self.find_missing(full)?;
        let mut guard = None;
        if full {
            if let Err(msg) = deletion_guard(self.opts.max_deletions, total_before, missing, force)
            {
                // A dry run (no run id) goes on to show the whole plan it would abort.
                if self.run_id.is_some() && !self.keep_plan {
                    return self.end(Status::Aborted, Some(msg), None, notices, full);
                }
                guard = Some(msg);
            }
        }
        if self.opts.import_new {
            self.bulk_create()?;
            tracing::debug!("bulk creates done at {:?}", t.elapsed());
        }
        self.apply_changes()?;
        tracing::debug!("per-entry changes done at {:?}", t.elapsed());
        self.apply_groups(full)?;
        self.apply_missing()?;
        if full && self.opts.on_missing != OnMissing::Ignore {
            self.prune_groups()?;
        }
        if guard.is_some() {
            return self.end(Status::Aborted, guard, None, notices, full);
        }
        self.end(Status::Ok, None, cursor, notices, full)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::mapping::Mapped;
    use crate::reconcile::{MaxDeletions, UserRecord};

    /// A mapped user in these groups; its raw hash is derived from its name and groups.
    pub(in crate::store) fn user(name: &str, groups: &[&str]) -> (i64, Mapped) {
        let mut groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        groups.sort();
        groups.dedup();
        let record = UserRecord {
            username: name.into(),
            groups,
            active: true,
            ..Default::default()
        };
        let raw = record.to_stored("raw").1;
        let pins = Vec::new();
        (raw, Mapped { record, pins })
    }

    /// One full run of `users` (anchored by username), as `sync` drives it.
    pub(in crate::store) fn full_run(
        store: &mut Store,
        opts: Options,
        users: Vec<(i64, Mapped)>,
    ) -> Outcome {
        let mut run = store.begin_run("src", opts, false).unwrap();
        for (i, (raw, m)) in users.into_iter().enumerate() {
            let locator = format!("line {}", i + 2);
            if !run.stage_unchanged(raw, &locator) {
                let anchor = m.record.username.clone();
                run.stage(&locator, &anchor, raw, m).unwrap();
            }
        }
        run.finish(true, None, Vec::new(), false).unwrap()
    }

    fn names(store: &Store, active: bool) -> Vec<String> {
        let users = store.users(true).unwrap();
        (users.into_iter().filter(|u| u.active == active))
            .map(|u| u.username)
            .collect()
    }

    #[test]
    fn a_resync_takes_the_fast_path_and_writes_nothing() {
        let mut store = Store::memory().unwrap();
        let users = || vec![user("ann", &["A"]), user("bob", &["A|B"])];
        let first = full_run(&mut store, Options::default(), users());
        assert_eq!((first.status, first.counts.created), (Status::Ok, 2));
        let again = full_run(&mut store, Options::default(), users());
        assert_eq!(again.status, Status::Ok);
        assert_eq!(again.counts.unchanged, 2);
        assert_eq!(again.counts.created + again.counts.updated, 0);
    }

    #[test]
    fn a_source_someone_else_runs_is_refused_naming_them_and_since_when() {
        let mut store = Store::memory().unwrap();
        store.set_process("roster serve");
        let held = store.acquire_lease("src").ok().unwrap();
        let err = store.begin_run("src", Options::default(), false).err();
        let busy = err
            .as_ref()
            .and_then(|e| e.downcast_ref::<crate::store::Busy>());
        let info = &busy.expect("busy").0;
        assert_eq!(info.holder.process, "roster serve");
        assert_eq!(info.holder.pid, std::process::id());
        assert!(!info.since.is_empty());
        assert!(
            store.runs().unwrap().is_empty(),
            "a refused run is not recorded"
        );
        // A dry run takes no lease; other sources are not blocked.
        drop(store.begin_run("src", Options::default(), true).unwrap());
        drop(store.begin_run("other", Options::default(), false).unwrap());
        drop(held);
        let out = full_run(&mut store, Options::default(), vec![user("ann", &[])]);
        assert_eq!(out.status, Status::Ok);
        assert!(store.lease_holder("src").unwrap().is_none(), "released");
    }

    #[test]
    fn a_run_whose_lease_is_gone_was_interrupted() {
        let mut store = Store::memory().unwrap();
        store
            .conn
            .execute(
                &format!("INSERT INTO runs(source, status, lease, started) VALUES ('src', 'running', 'gone', {NOW})"),
                (),
            )
            .unwrap();
        // Readers see it so at once; the next run of the source records it.
        assert_eq!(store.runs().unwrap()[0].status, Status::Interrupted);
        full_run(&mut store, Options::default(), vec![user("ann", &[])]);
        let stored: String = (store.conn)
            .query_row("SELECT status FROM runs WHERE lease = 'gone'", (), |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(stored, "interrupted");
    }

    #[test]
    fn a_duplicate_username_fails_and_names_the_first_entry() {
        let mut store = Store::memory().unwrap();
        full_run(&mut store, Options::default(), vec![user("ann", &[])]);
        // Once through the fast path, once through staging: both duplicates are caught.
        let out = full_run(
            &mut store,
            Options::default(),
            vec![user("ann", &[]), user("ann", &["G"]), user("ann", &[])],
        );
        assert_eq!(out.counts.failed, 2, "{:?}", out.errors);
        for e in &out.errors {
            assert!(e.reason.contains("(first at line 2)"), "{}", e.reason);
        }
    }

    #[test]
    fn missing_users_are_guarded_then_deactivated() {
        let mut store = Store::memory().unwrap();
        let all: Vec<_> = (0..4).map(|i| user(&format!("u{i}"), &[])).collect();
        full_run(&mut store, Options::default(), all);
        // Two of four missing is over the default 10%: nothing changes.
        let kept = || vec![user("u0", &[]), user("u1", &[])];
        let out = full_run(&mut store, Options::default(), kept());
        assert_eq!(out.status, Status::Aborted);
        assert_eq!(names(&store, false), Vec::<String>::new());
        let opts = Options {
            max_deletions: MaxDeletions::Percent(100.0),
            ..Options::default()
        };
        let out = full_run(&mut store, opts, kept());
        assert_eq!((out.status, out.counts.deactivated), (Status::Ok, 2));
        assert_eq!(names(&store, false), ["u2", "u3"]);
        assert_eq!(names(&store, true), ["u0", "u1"]);
    }
}
