//! One source run: staging and the set-based merge, all in one transaction.
//!
//! Entries are staged in TEMP tables as they arrive, so memory stays bounded. `finish` pairs
//! the whole stage with stored users in one statement, selects the rows whose content hash
//! changed, and walks only those through [`reconcile::decide`]. Unchanged users cost no write.
//! Missing users are found and guarded set-wise. Nothing is visible to others until commit.

use super::{Store, NOW};
use crate::mapping::Mapped;
use crate::reconcile::{
    self, deletion_guard, Action, Existing, OnMissing, Options, PairBy, UserRecord,
};
use anyhow::{Context, Result};
use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;
use std::collections::HashMap;

/// Failed entries kept in memory for the command's output; all go to the run log.
const MAX_REPORTED_ERRORS: usize = 10_000;
/// Work rows read per chunk while applying changes.
const CHUNK: i64 = 2_000;
/// Sources with more links than this skip the in-memory unchanged check (about 20 bytes a
/// link), so memory stays bounded; their unchanged entries take the mapped path.
const MAX_FAST_LINKS: usize = 4_000_000;

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
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::Aborted => "aborted",
            Status::Running => "running",
            Status::Interrupted => "interrupted",
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
    tx: Transaction<'c>,
    run_id: Option<i64>,
    source_id: i64,
    source: String,
    opts: Options,
    counts: Counts,
    errors: Vec<ErrorItem>,
    plan: Vec<PlanItem>,
    event_seq: i64,
    /// Users of this source paired in this run, and how many of them were active.
    seen_own: u64,
    seen_own_active: u64,
    group_ids: HashMap<String, i64>,
    /// Raw hash → user id, for this source's links whose user is as that hash last wrote it.
    fast: FastLinks,
    /// Whether `fast` was loaded (the source is not too large for it).
    fast_loaded: bool,
    /// For each of `fast.pairs` that took the unchanged path: its locator in `fast_locators`
    /// (start, length), to name it should a later entry duplicate it.
    fast_at: Vec<Option<(u32, u32)>>,
    fast_locators: String,
    fast_by_user: HashMap<i64, usize>,
    /// Users paired in this run, a bit per user id.
    seen: Vec<u64>,
    /// The store held no users when the run began.
    no_users: bool,
}

/// Raw hash → user id, as an array bucketed by the hashes' top bits: built in two linear
/// passes (a hash map's random inserts cost more than the sync saves), read in two probes.
#[derive(Default)]
struct FastLinks {
    /// (raw hash as unsigned, user id), grouped by bucket.
    pairs: Vec<(u64, i64)>,
    /// `pairs[starts[b]..starts[b + 1]]` hold the hashes whose top bits are `b`.
    starts: Vec<u32>,
    shift: u32,
}

impl FastLinks {
    fn new(unsorted: Vec<(u64, i64)>) -> FastLinks {
        // Placed by their top bits in one counting pass; within a bucket, order is moot.
        let bits = (unsorted.len().max(2).ilog2()).clamp(1, 24);
        let shift = 64 - bits;
        let mut starts = vec![0u32; (1 << bits) + 1];
        for p in &unsorted {
            starts[(p.0 >> shift) as usize + 1] += 1;
        }
        for b in 1..starts.len() {
            starts[b] += starts[b - 1];
        }
        let mut next = starts.clone();
        let mut pairs = vec![(0, 0); unsorted.len()];
        for p in unsorted {
            let at = &mut next[(p.0 >> shift) as usize];
            pairs[*at as usize] = p;
            *at += 1;
        }
        FastLinks {
            pairs,
            starts,
            shift,
        }
    }

    /// The index of `raw` in `pairs`.
    fn get(&self, raw: i64) -> Option<usize> {
        let key = raw as u64;
        let b = (key >> self.shift) as usize;
        let (from, to) = (
            *self.starts.get(b)? as usize,
            *self.starts.get(b + 1)? as usize,
        );
        self.pairs[from..to]
            .iter()
            .position(|p| p.0 == key)
            .map(|i| from + i)
    }
}

impl Store {
    /// Starts a run. The run record is committed first (status "running") so a crash leaves
    /// a trace; everything else happens in one transaction. Dry runs write nothing at all.
    pub fn begin_run(&mut self, source: &str, opts: Options, dry_run: bool) -> Result<Run<'_>> {
        let run_id = if dry_run {
            None
        } else {
            self.conn.execute(
                &format!("INSERT INTO runs(source, status, pid, started) VALUES (?1, 'running', ?2, {NOW})"),
                params![source, std::process::id()],
            )?;
            Some(self.conn.last_insert_rowid())
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .context("another roster process is writing this database")?;
        tx.execute("INSERT OR IGNORE INTO sources(name) VALUES (?1)", [source])?;
        let source_id: i64 =
            tx.query_row("SELECT id FROM sources WHERE name = ?1", [source], |r| {
                r.get(0)
            })?;
        tx.execute_batch(
            "DROP TABLE IF EXISTS temp.stage;
             DROP TABLE IF EXISTS temp.removals;
             DROP TABLE IF EXISTS temp.stage_groups;
             DROP TABLE IF EXISTS temp.seen;
             DROP TABLE IF EXISTS temp.edges;
             DROP TABLE IF EXISTS temp.gmap;
             DROP TABLE IF EXISTS temp.desired;
             DROP TABLE IF EXISTS temp.work;
             DROP TABLE IF EXISTS temp.missing;
             DROP TABLE IF EXISTS temp.slow;
             DROP TABLE IF EXISTS temp.bulk;
             CREATE TEMP TABLE stage(
                 seq INTEGER PRIMARY KEY,
                 locator TEXT NOT NULL,
                 anchor TEXT NOT NULL UNIQUE,
                 -- the pairing key, kept only when it is neither the username nor the anchor
                 key TEXT UNIQUE,
                 username TEXT NOT NULL UNIQUE,
                 hash INTEGER NOT NULL,
                 record TEXT NOT NULL,
                 pins TEXT,
                 -- the record's lists and personal number apart (NULL when empty), so set-wise
                 -- checks and inserts need not parse every record
                 aliases TEXT,
                 cards TEXT,
                 groups TEXT,
                 pn TEXT,
                 raw INTEGER NOT NULL,
                 user_id INTEGER);
             CREATE TEMP TABLE removals(kind TEXT NOT NULL, anchor TEXT NOT NULL, PRIMARY KEY(kind, anchor)) WITHOUT ROWID;
             CREATE TEMP TABLE seen(user_id INTEGER PRIMARY KEY, locator TEXT NOT NULL);
             CREATE TEMP TABLE stage_groups(anchor TEXT PRIMARY KEY, locator TEXT NOT NULL, name TEXT NOT NULL, parent TEXT) WITHOUT ROWID;
             -- membership references: member (user or group anchor) is in group
             CREATE TEMP TABLE edges(grp TEXT NOT NULL, member TEXT NOT NULL, PRIMARY KEY(grp, member)) WITHOUT ROWID;",
        )?;
        let t = std::time::Instant::now();
        let mut fast = Vec::new();
        let mut fast_loaded = true;
        {
            let mut stmt = tx.prepare(
                "SELECT raw_hash, user_id FROM links WHERE source_id = ?1 AND raw_hash IS NOT NULL",
            )?;
            let mut rows = stmt.query([source_id])?;
            while let Some(r) = rows.next()? {
                if fast.len() == MAX_FAST_LINKS {
                    fast_loaded = false;
                    fast = Vec::new();
                    break;
                }
                fast.push((r.get::<_, i64>(0)? as u64, r.get(1)?));
            }
        }
        let fast = FastLinks::new(fast);
        tracing::debug!("{} links loaded in {:?}", fast.pairs.len(), t.elapsed());
        let max_id: i64 =
            tx.query_row("SELECT coalesce(max(id), 0) FROM users", [], |r| r.get(0))?;
        Ok(Run {
            tx,
            run_id,
            source_id,
            source: source.to_string(),
            opts,
            counts: Counts::default(),
            errors: Vec::new(),
            plan: Vec::new(),
            event_seq: 0,
            seen_own: 0,
            seen_own_active: 0,
            group_ids: HashMap::new(),
            fast,
            fast_loaded,
            fast_at: Vec::new(),
            fast_locators: String::new(),
            fast_by_user: HashMap::new(),
            seen: vec![0; max_id as usize / 64 + 1],
            no_users: max_id == 0,
        })
    }
}

impl Run<'_> {
    /// A failed entry: counted, logged in the run, and the run goes on.
    pub fn fail(&mut self, entry: &str, reason: &str) -> Result<()> {
        self.counts.failed += 1;
        if self.errors.len() < MAX_REPORTED_ERRORS {
            self.errors.push(ErrorItem {
                entry: entry.into(),
                reason: reason.into(),
            });
        }
        self.event(entry, "failed", Some(reason))
    }

    fn event(&mut self, entry: &str, action: &str, reason: Option<&str>) -> Result<()> {
        if let Some(run_id) = self.run_id {
            self.event_seq += 1;
            self.tx
                .prepare_cached("INSERT INTO run_events(run_id, seq, entry, action, reason) VALUES (?1, ?2, ?3, ?4, ?5)")?
                .execute(params![run_id, self.event_seq, entry, action, reason])?;
        }
        Ok(())
    }

    /// Marks `user_id` seen; false if it already was.
    fn see(&mut self, user_id: i64) -> bool {
        let (word, bit) = (user_id as usize / 64, 1u64 << (user_id % 64));
        if word >= self.seen.len() {
            self.seen.resize(word + 1, 0);
        }
        let fresh = self.seen[word] & bit == 0;
        self.seen[word] |= bit;
        fresh
    }

    fn was_seen(&self, user_id: i64) -> bool {
        let word = user_id as usize / 64;
        word < self.seen.len() && self.seen[word] & (1u64 << (user_id % 64)) != 0
    }

    /// The cheap path for an unchanged entry: its raw hash is the one its link last wrote,
    /// and the user is still as written then. True if it was counted unchanged; false means
    /// the entry must be mapped and staged (a duplicate goes there too, to be reported).
    pub fn stage_unchanged(&mut self, raw: i64, locator: &str) -> bool {
        let Some(i) = self.fast.get(raw) else {
            return false;
        };
        let id = self.fast.pairs[i].1;
        if !self.see(id) {
            return false;
        }
        // The links in `fast` are of active users of this source.
        self.seen_own += 1;
        self.seen_own_active += 1;
        if self.fast_at.is_empty() {
            self.fast_at = vec![None; self.fast.pairs.len()];
        }
        self.fast_at[i] = Some((self.fast_locators.len() as u32, locator.len() as u32));
        self.fast_locators.push_str(locator);
        self.counts.unchanged += 1;
        true
    }

    /// Stages one mapped user. A duplicate key within the source is a failed entry. `raw` is
    /// the object's raw hash, kept with the link when the user is written.
    pub fn stage(&mut self, locator: &str, anchor: &str, raw: i64, m: Mapped) -> Result<()> {
        let Some(key) = self.opts.pair_by.key(&m.record, anchor) else {
            return self.fail(
                locator,
                &format!("no {} to pair by", self.opts.pair_by.name()),
            );
        };
        let (record, hash) = m.record.to_stored(anchor);
        // Pair now. An unchanged user (same content, owned, active) is only marked seen:
        // it costs no staging and no write.
        // Nothing to pair with in an empty store (a first import): no need to look.
        let paired = if self.no_users {
            None
        } else {
            self.lookup(&key)?
        };
        if let Some(p) = &paired {
            if !self.see(p.id) {
                let first = self.first_seen(p.id)?;
                let what = self.opts.pair_by.name();
                return self.fail(
                    locator,
                    &format!("duplicate {what} {key:?} in the source (first at {first})"),
                );
            }
            self.tx
                .prepare_cached("INSERT INTO temp.seen(user_id, locator) VALUES (?1, ?2)")?
                .execute(params![p.id, locator])?;
            if p.source_id == Some(self.source_id) {
                self.seen_own += 1;
                self.seen_own_active += u64::from(p.active);
            }
            if p.hash == hash && p.active && p.source_id == Some(self.source_id) {
                // Mapped unchanged, but the raw hash was not the link's: remember it, so the
                // next run takes the cheap path (a one-time write after a mapping change).
                if self.fast_loaded {
                    const REMEMBER: &str = "UPDATE links SET raw_hash = ?3
                                            WHERE source_id = ?1 AND anchor = ?2 AND user_id = ?4";
                    self.tx.prepare_cached(REMEMBER)?.execute(params![
                        self.source_id,
                        anchor,
                        raw,
                        p.id
                    ])?;
                }
                self.counts.unchanged += 1;
                return Ok(());
            }
        }
        let pins = if m.pins.is_empty() {
            None
        } else {
            let mut staged = Vec::with_capacity(m.pins.len());
            for (fp, pin) in &m.pins {
                staged.push((fp.clone(), self.pin_hash(fp, &pin.0)?));
            }
            Some(serde_json::to_string(&staged)?)
        };
        let stored_key =
            matches!(self.opts.pair_by, PairBy::Email | PairBy::PersonalNumber).then_some(&key);
        let r = self
            .tx
            .prepare_cached(
                "INSERT INTO temp.stage(locator, anchor, key, username, hash, record, pins, user_id,
                                        aliases, cards, groups, pn, raw)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?
            .execute(params![
                locator,
                anchor,
                stored_key,
                m.record.username,
                hash,
                record,
                pins,
                paired.map(|p| p.id),
                json_list(&m.record.aliases),
                json_list(&m.record.cards),
                json_list(&m.record.groups),
                m.record.personal_number,
                raw
            ]);
        match r {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, Some(msg)))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                let (what, col, value) = if msg.contains("stage.username") {
                    ("username", "username", m.record.username.as_str())
                } else if msg.contains("stage.anchor") {
                    ("id", "anchor", anchor)
                } else {
                    (self.opts.pair_by.name(), "key", key.as_str())
                };
                let first: String = self.tx.query_row(
                    &format!("SELECT locator FROM temp.stage WHERE {col} = ?1"),
                    [value],
                    |r| r.get(0),
                )?;
                self.fail(
                    locator,
                    &format!("duplicate {what} {value:?} in the source (first at {first})"),
                )
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Where the entry that first paired with `user_id` was.
    fn first_seen(&mut self, user_id: i64) -> Result<String> {
        if let Some(l) = self
            .tx
            .query_row(
                "SELECT locator FROM temp.seen WHERE user_id = ?1",
                [user_id],
                |r| r.get(0),
            )
            .optional()?
        {
            return Ok(l);
        }
        if self.fast_by_user.is_empty() {
            // Built on the first duplicate only.
            self.fast_by_user = (self.fast.pairs.iter().enumerate())
                .map(|(i, p)| (p.1, i))
                .collect();
        }
        let at =
            (self.fast_by_user.get(&user_id)).and_then(|&i| self.fast_at.get(i).copied().flatten());
        Ok(match at {
            Some((start, len)) => {
                self.fast_locators[start as usize..(start + len) as usize].to_string()
            }
            None => "an earlier entry".to_string(),
        })
    }

    /// The stored user a pairing key finds.
    fn lookup(&self, key: &str) -> Result<Option<Paired>> {
        let row = |r: &rusqlite::Row<'_>| {
            Ok(Paired {
                id: r.get(0)?,
                hash: r.get(1)?,
                active: r.get(2)?,
                source_id: r.get(3)?,
            })
        };
        const COLS: &str = "SELECT u.id, u.hash, u.active, u.source_id FROM users u";
        let found = match self.opts.pair_by {
            PairBy::Username => self
                .tx
                .prepare_cached(&format!("{COLS} WHERE u.username = ?1"))?
                .query_row([key], row),
            PairBy::PersonalNumber => self
                .tx
                .prepare_cached(&format!("{COLS} WHERE u.personal_number = ?1"))?
                .query_row([key], row),
            PairBy::Email => self
                .tx
                .prepare_cached(&format!(
                    "{COLS} WHERE u.email = ?1 COLLATE NOCASE ORDER BY u.source_id IS NOT ?2, u.id LIMIT 1"
                ))?
                .query_row(params![key, self.source_id], row),
            PairBy::Anchor => self
                .tx
                .prepare_cached(&format!(
                    "{COLS} JOIN links l ON l.user_id = u.id WHERE l.source_id = ?2 AND l.anchor = ?1"
                ))?
                .query_row(params![key, self.source_id], row),
        };
        Ok(found.optional()?)
    }

    /// An explicit removal (delta runs). `kind` is "user" or "group".
    pub fn stage_removal(&mut self, kind: &str, anchor: &str) -> Result<()> {
        self.tx.execute(
            "INSERT OR IGNORE INTO temp.removals(kind, anchor) VALUES (?1, ?2)",
            [kind, anchor],
        )?;
        Ok(())
    }

    /// Membership references of an object: it is a member of each group in `member_of`, and
    /// (for a group) each of `members` is a member of it.
    pub fn stage_edges(
        &mut self,
        anchor: &str,
        member_of: &[String],
        members: &[String],
    ) -> Result<()> {
        if member_of.is_empty() && members.is_empty() {
            return Ok(());
        }
        let mut edge = self
            .tx
            .prepare_cached("INSERT OR IGNORE INTO temp.edges(grp, member) VALUES (?1, ?2)")?;
        for g in member_of {
            edge.execute([g.as_str(), anchor])?;
        }
        for m in members {
            edge.execute([anchor, m.as_str()])?;
        }
        Ok(())
    }

    /// Stages a group object. Its place in the tree comes from `parent`, else from a staged
    /// group it is a member of.
    pub fn stage_group(
        &mut self,
        locator: &str,
        anchor: &str,
        name: &str,
        parent: Option<&str>,
    ) -> Result<()> {
        let name = name.replace('|', "/");
        let n = self.tx.execute(
            "INSERT OR IGNORE INTO temp.stage_groups(anchor, locator, name, parent) VALUES (?1, ?2, ?3, ?4)",
            params![anchor, locator, name, parent],
        )?;
        if n == 0 {
            return self.fail(
                locator,
                &format!("duplicate group id {anchor:?} in the source"),
            );
        }
        Ok(())
    }

    /// The argon2 hash for a PIN: reused when the same fingerprint is stored, else computed.
    fn pin_hash(&self, fingerprint: &str, pin: &str) -> Result<String> {
        if let Some(h) = self
            .tx
            .prepare_cached("SELECT hash FROM pins WHERE fingerprint = ?1 LIMIT 1")?
            .query_row([fingerprint], |r| r.get(0))
            .optional()?
        {
            return Ok(h);
        }
        use argon2::PasswordHasher;
        let params = argon2::Params::new(8 * 1024, 2, 1, None).expect("valid argon2 params");
        let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        Ok(a.hash_password(pin.as_bytes())
            .map_err(|e| anyhow::anyhow!("hashing a PIN: {e}"))?
            .to_string())
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
        self.make_work()?;
        // Nothing is written before the guard: the store is still as the run found it.
        let total_before: u64 = self.tx.query_row(
            "SELECT count(*) FROM users WHERE source_id = ?1 AND active = 1",
            [self.source_id],
            |r| r.get(0),
        )?;
        // Missing users are decided on the pairing before any change.
        if full && self.opts.on_missing != OnMissing::Ignore {
            let deactivate = self.opts.on_missing == OnMissing::Deactivate;
            let only_active = if deactivate { "AND active = 1" } else { "" };
            let (own, seen) = if deactivate {
                (total_before, self.seen_own_active)
            } else {
                let all: u64 = self.tx.query_row(
                    "SELECT count(*) FROM users WHERE source_id = ?1",
                    [self.source_id],
                    |r| r.get(0),
                )?;
                (all, self.seen_own)
            };
            // Every one of them paired (the usual resync): no need to look for the missing.
            let ids: Vec<i64> = if own == seen {
                Vec::new()
            } else {
                self.tx
                    .prepare(&format!(
                        "SELECT id FROM users WHERE source_id = ?1 {only_active}"
                    ))?
                    .query_map([self.source_id], |r| r.get(0))?
                    .filter(|id| id.as_ref().map_or(true, |id| !self.was_seen(*id)))
                    .collect::<Result<_, _>>()?
            };
            self.tx.execute(
                "CREATE TEMP TABLE missing(id INTEGER PRIMARY KEY, username TEXT NOT NULL)",
                [],
            )?;
            let mut add = self
                .tx
                .prepare("INSERT INTO temp.missing SELECT id, username FROM users WHERE id = ?1")?;
            for id in ids {
                add.execute([id])?;
            }
        } else {
            self.tx.execute(
                "CREATE TEMP TABLE missing AS SELECT u.id, u.username FROM temp.removals r
                 JOIN links l ON l.source_id = ?1 AND l.anchor = r.anchor AND r.kind = 'user'
                 JOIN users u ON u.id = l.user_id
                 WHERE ?2 != 'ignore' AND (u.active = 1 OR ?2 = 'delete')",
                params![self.source_id, on_missing_name(self.opts.on_missing)],
            )?;
        }
        let missing: u64 = self
            .tx
            .query_row("SELECT count(*) FROM temp.missing", [], |r| r.get(0))?;
        if full {
            if let Err(msg) = deletion_guard(self.opts.max_deletions, total_before, missing, force)
            {
                return self.end(Status::Aborted, Some(msg), None, notices, full);
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
        self.end(Status::Ok, None, cursor, notices, full)
    }

    /// The work list: every staged row (unchanged entries were never staged).
    fn make_work(&mut self) -> Result<()> {
        self.tx.execute_batch(
            "DROP TABLE IF EXISTS temp.work;
             CREATE TEMP TABLE work(seq INTEGER PRIMARY KEY);
             INSERT INTO temp.work SELECT seq FROM temp.stage;",
        )?;
        Ok(())
    }

    /// Creates, in a few set-wise statements, every new user that cannot conflict with a
    /// stored user or with another new one. The rest (possible conflicts) stays in `work` for
    /// the per-entry path, which reports precise reasons and lets the first entry win.
    ///
    /// First optimistically: all new users at once, the unique indexes standing guard. Only
    /// if one objects (some new user conflicts) is that undone and the conflicts sought out.
    fn bulk_create(&mut self) -> Result<()> {
        let fresh: bool =
            self.tx
                .query_row(&format!("SELECT EXISTS (SELECT 1 FROM {FRESH})"), [], |r| {
                    r.get(0)
                })?;
        if !fresh {
            return Ok(());
        }
        self.tx.execute_batch(
            "DROP TABLE IF EXISTS temp.slow;
             DROP TABLE IF EXISTS temp.bulk;
             CREATE TEMP TABLE slow(seq INTEGER PRIMARY KEY);
             CREATE TEMP TABLE bulk(seq INTEGER PRIMARY KEY, uid INTEGER NOT NULL);
             SAVEPOINT bulk;",
        )?;
        let n = match self.bulk_insert() {
            Ok(n) => n,
            Err(e) if is_constraint(&e) => {
                tracing::debug!("bulk create met a conflict ({e:#}); checking each new user");
                self.tx
                    .execute_batch("ROLLBACK TO bulk; DELETE FROM temp.bulk;")?;
                self.group_ids.clear();
                self.bulk_checks()?;
                self.bulk_insert()?
            }
            Err(e) => return Err(e),
        };
        self.tx.execute_batch("RELEASE bulk")?;
        if n == 0 {
            return Ok(());
        }
        if self.run_id.is_some() {
            self.event_seq += n as i64;
        } else {
            let names: Vec<String> = self
                .tx
                .prepare(&format!("SELECT s.username FROM {B} ORDER BY b.seq"))?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            self.plan.extend(names.into_iter().map(|username| PlanItem {
                action: "create",
                username,
                fields: vec![],
            }));
        }
        self.counts.created += n;
        let left: i64 = self
            .tx
            .query_row("SELECT count(*) FROM temp.work", [], |r| r.get(0))?;
        if left as u64 == n {
            // All of it (an initial import): emptying is much cheaper than a lookup per row.
            self.tx.execute("DELETE FROM temp.work", [])?;
        } else {
            self.tx.execute(
                "DELETE FROM temp.work WHERE seq IN (SELECT seq FROM temp.bulk)",
                [],
            )?;
        }
        Ok(())
    }

    /// Puts every new user that could conflict with a stored user or another new one into
    /// `temp.slow`, for the per-entry path.
    fn bulk_checks(&mut self) -> Result<()> {
        const FRESH2: &str =
            "temp.work w2 JOIN temp.stage s2 ON s2.seq = w2.seq AND s2.user_id IS NULL";
        let steps = [
            // usernames and aliases taken by stored users, or aliases clashing with staged names;
            // cards and personal numbers held by stored users or by two new users
            (
                "usernames",
                format!("INSERT OR IGNORE INTO slow SELECT s.seq FROM {FRESH} JOIN names n ON n.name = s.username"),
            ),
            (
                "aliases",
                format!(
                    "INSERT OR IGNORE INTO slow SELECT s.seq FROM {FRESH}, json_each(s.aliases) j
                     WHERE EXISTS (SELECT 1 FROM names WHERE name = j.value)
                        OR EXISTS (SELECT 1 FROM temp.stage t WHERE t.username = j.value)"
                ),
            ),
            (
                "cards",
                format!(
                    "INSERT OR IGNORE INTO slow SELECT s.seq FROM {FRESH}, json_each(s.cards) j
                     WHERE EXISTS (SELECT 1 FROM cards WHERE card = j.value)"
                ),
            ),
            (
                "personal numbers",
                format!(
                    "INSERT OR IGNORE INTO slow SELECT s.seq FROM {FRESH}
                     WHERE EXISTS (SELECT 1 FROM users WHERE personal_number = s.pn)"
                ),
            ),
            (
                "personal number duplicates",
                format!(
                    "INSERT OR IGNORE INTO slow SELECT s.seq FROM {FRESH}
                     WHERE s.pn IN (
                         SELECT s2.pn FROM {FRESH2}
                         WHERE s2.pn IS NOT NULL
                         GROUP BY 1 HAVING count(*) > 1)"
                ),
            ),
        ]
        .into_iter()
        .chain(["aliases", "cards"].map(|list| {
            // the same alias or card on two new users
            (
                list,
                format!(
                    "INSERT OR IGNORE INTO slow SELECT s.seq FROM {FRESH}, json_each(s.{list}) j
                     WHERE j.value IN (SELECT j2.value FROM {FRESH2}, json_each(s2.{list}) j2
                                       GROUP BY j2.value HAVING count(*) > 1)"
                ),
            )
        }));
        for (label, sql) in steps {
            let t = std::time::Instant::now();
            self.tx.execute_batch(&sql)?;
            tracing::debug!("bulk check {label}: {:?}", t.elapsed());
        }
        Ok(())
    }

    /// Creates the new users not in `temp.slow`; returns how many. Their run events are
    /// written from `event_seq` on, which the caller advances once this is kept.
    fn bulk_insert(&mut self) -> Result<u64> {
        // New users get consecutive ids after the highest, so the side tables need no lookup.
        let n = self.tx.execute(
            &format!(
                "INSERT INTO temp.bulk(seq, uid)
                 SELECT s.seq, (SELECT coalesce(max(id), 0) FROM users) + row_number() OVER (ORDER BY s.seq)
                 FROM {FRESH} WHERE s.seq NOT IN (SELECT seq FROM temp.slow)"
            ),
            [],
        )? as u64;
        if n == 0 {
            return Ok(0);
        }
        let t = std::time::Instant::now();
        self.tx.execute(
            &format!(
                "INSERT INTO users(id, username, full_name, email, personal_number, language, phone, notes,
                                   storage, active, source_id, record, hash, created_at, updated_at)
                 SELECT b.uid, s.username, s.record ->> '$.full_name', s.record ->> '$.email',
                        s.pn, s.record ->> '$.language', s.record ->> '$.phone',
                        s.record ->> '$.notes', s.record ->> '$.storage', s.record ->> '$.active', ?1,
                        s.record, s.hash, {NOW}, {NOW}
                 FROM {B} ORDER BY b.seq"
            ),
            [self.source_id],
        )?;
        tracing::debug!("bulk users: {:?}", t.elapsed());
        // Each side table is filled in its key order: appending to a b-tree is cheap.
        self.tx.execute_batch(&format!(
            "INSERT INTO names(name, user_id, alias)
                 SELECT name, uid, alias FROM (
                     SELECT s.username AS name, b.uid, 0 AS alias FROM {B}
                     UNION ALL
                     SELECT j.value, b.uid, 1 FROM {B}, json_each(s.aliases) j WHERE s.aliases IS NOT NULL)
                 ORDER BY name;
             INSERT INTO cards(card, user_id)
                 SELECT j.value, b.uid FROM {B}, json_each(s.cards) j WHERE s.cards IS NOT NULL ORDER BY j.value;
             INSERT OR IGNORE INTO pins(user_id, fingerprint, hash)
                 SELECT b.uid, j.value ->> 0, j.value ->> 1 FROM {B}, json_each(s.pins) j WHERE s.pins IS NOT NULL;"
        ))?;
        tracing::debug!("bulk names, cards, pins: {:?}", t.elapsed());
        self.tx.execute(
            &format!(
                "INSERT OR REPLACE INTO links(source_id, anchor, user_id, raw_hash)
                      SELECT ?1, s.anchor, b.uid, s.raw FROM {B} ORDER BY s.anchor"
            ),
            [self.source_id],
        )?;
        tracing::debug!("bulk links: {:?}", t.elapsed());
        let paths: Vec<String> = self
            .tx
            .prepare(&format!(
                "SELECT DISTINCT j.value FROM {B}, json_each(s.groups) j WHERE s.groups IS NOT NULL"
            ))?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for p in &paths {
            ensure_group(&self.tx, self.source_id, p, &mut self.group_ids)?;
        }
        self.tx.execute(
            &format!(
                "INSERT OR IGNORE INTO memberships(group_id, user_id, source_id)
                 SELECT g.id, b.uid, ?1 FROM {B}, json_each(s.groups) j JOIN groups g ON g.path = j.value
                 WHERE s.groups IS NOT NULL"
            ),
            [self.source_id],
        )?;
        tracing::debug!("bulk groups: {:?}", t.elapsed());
        if let Some(run_id) = self.run_id {
            self.tx.execute(
                &format!(
                    "INSERT INTO run_events(run_id, seq, entry, action, reason)
                     SELECT ?1, ?2 + row_number() OVER (ORDER BY b.seq), s.locator || ' (' || s.username || ')', 'created', NULL
                     FROM {B}"
                ),
                params![run_id, self.event_seq],
            )?;
        }
        tracing::debug!("bulk writes: {:?}", t.elapsed());
        Ok(n)
    }

    fn apply_changes(&mut self) -> Result<()> {
        let mut last = 0i64;
        loop {
            type Row = (
                i64,
                String,
                String,
                String,
                Option<String>,
                Option<i64>,
                i64,
            );
            let rows: Vec<Row> = self
                .tx
                .prepare_cached(
                    "SELECT s.seq, s.locator, s.anchor, s.record, s.pins, s.user_id, s.raw
                     FROM temp.work w JOIN temp.stage s ON s.seq = w.seq
                     WHERE w.seq > ?1 ORDER BY w.seq LIMIT ?2",
                )?
                .query_map(params![last, CHUNK], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                })?
                .collect::<Result<_, _>>()?;
            let Some(end) = rows.last() else { break };
            last = end.0;
            for (_, locator, anchor, record, pins, user_id, raw) in rows {
                let rec: UserRecord = serde_json::from_str(&record)?;
                let pins: Vec<(String, String)> = match pins {
                    Some(p) => serde_json::from_str(&p)?,
                    None => Vec::new(),
                };
                let staged = Staged {
                    anchor: &anchor,
                    raw,
                    rec: &rec,
                    pins: &pins,
                };
                self.apply_one(&locator, staged, user_id)?;
            }
        }
        Ok(())
    }

    fn load_existing(&self, id: i64) -> Result<Existing> {
        Ok(self.tx.query_row(
            "SELECT u.record, u.active, s.name FROM users u LEFT JOIN sources s ON s.id = u.source_id WHERE u.id = ?1",
            [id],
            |r| {
                let mut record: UserRecord =
                    serde_json::from_str(&r.get::<_, String>(0)?).unwrap_or_default();
                record.active = r.get(1)?;
                Ok(Existing { record, source: r.get(2)? })
            },
        )?)
    }

    fn apply_one(&mut self, locator: &str, user: Staged<'_>, user_id: Option<i64>) -> Result<()> {
        let rec = user.rec;
        let existing = user_id.map(|id| self.load_existing(id)).transpose()?;
        let action = reconcile::decide(rec, existing.as_ref(), &self.source, &self.opts);
        let entry = format!("{locator} ({})", rec.username);
        match action {
            Action::Unchanged => {
                self.counts.unchanged += 1;
                Ok(())
            }
            Action::Skip => Ok(()),
            Action::Conflict(reason) => self.fail(&entry, &reason),
            Action::Create => {
                if let Some(reason) = self.conflicts(rec, None, None)? {
                    return self.fail(&entry, &reason);
                }
                let source_id = self.source_id;
                let r = self.in_savepoint(|db, groups| {
                    write_user(db, source_id, user, None, None, groups).map(|_| ())
                })?;
                match r {
                    Ok(_) => {
                        self.counts.created += 1;
                        self.planned("create", &rec.username, Vec::new());
                        self.event(&entry, "created", None)
                    }
                    Err(e) => self.fail(&entry, &e.to_string()),
                }
            }
            Action::Update {
                fields,
                reactivate,
                adopt,
            } => {
                let id = user_id.expect("updates have a user");
                let changed = (!adopt).then_some(fields.as_slice());
                if let Some(reason) = self.conflicts(rec, Some(id), changed)? {
                    return self.fail(&entry, &reason);
                }
                let source_id = self.source_id;
                let r = self.in_savepoint(|db, groups| {
                    if fields.is_empty() && !adopt {
                        // Only a reactivation (update_existing = false keeps the old data).
                        db.execute(
                            &format!(
                                "UPDATE users SET active = 1, updated_at = {NOW} WHERE id = ?1"
                            ),
                            [id],
                        )?;
                        return Ok(());
                    }
                    write_user(db, source_id, user, Some(id), changed, groups).map(|_| ())
                })?;
                if let Err(e) = r {
                    return self.fail(&entry, &e.to_string());
                }
                let reason = (!fields.is_empty()).then(|| fields.join(", "));
                if reactivate {
                    self.counts.reactivated += 1;
                    self.planned("reactivate", &rec.username, fields);
                    self.event(&entry, "reactivated", reason.as_deref())
                } else {
                    self.counts.updated += 1;
                    self.planned("update", &rec.username, fields);
                    self.event(&entry, "updated", reason.as_deref())
                }
            }
        }
    }

    /// Runs one entry's writes in a savepoint. The outer result is the database's; the inner
    /// one is the entry's own failure, after which its writes are rolled back.
    fn in_savepoint(
        &mut self,
        f: impl FnOnce(&rusqlite::Connection, &mut HashMap<String, i64>) -> Result<()>,
    ) -> Result<Result<()>> {
        let mut sp = self.tx.savepoint()?;
        let r = f(&sp, &mut self.group_ids);
        if r.is_err() {
            sp.rollback()?;
            // Groups created inside the savepoint are gone again.
            self.group_ids.clear();
        }
        sp.commit()?;
        Ok(r)
    }

    fn planned(&mut self, action: &'static str, username: &str, fields: Vec<&'static str>) {
        if self.run_id.is_none() {
            self.plan.push(PlanItem {
                action,
                username: username.into(),
                fields,
            });
        }
    }

    /// Uniqueness checks with readable reasons: usernames and aliases share a namespace;
    /// cards and personal numbers are unique.
    fn conflicts(
        &self,
        rec: &UserRecord,
        me: Option<i64>,
        changed: Option<&[&str]>,
    ) -> Result<Option<String>> {
        let check = |f: &str| changed.is_none_or(|c| c.contains(&f));
        let holder = |sql: &str, v: &str| -> Result<Option<String>> {
            Ok(self
                .tx
                .prepare_cached(sql)?
                .query_row([v], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
                .optional()?
                .filter(|(id, _)| Some(*id) != me)
                .map(|(_, name)| name))
        };
        const NAME: &str =
            "SELECT n.user_id, u.username FROM names n JOIN users u ON u.id = n.user_id WHERE n.name = ?1";
        let names = check("username") || check("aliases");
        if let Some(h) = names
            .then(|| holder(NAME, &rec.username))
            .transpose()?
            .flatten()
        {
            return Ok(Some(format!(
                "username {:?} is already used by user {h:?}",
                rec.username
            )));
        }
        for a in rec.aliases.iter().filter(|_| names) {
            if let Some(h) = holder(NAME, a)? {
                return Ok(Some(format!("alias {a:?} is already used by user {h:?}")));
            }
        }
        for c in rec.cards.iter().filter(|_| check("cards")) {
            if let Some(h) = holder(
                "SELECT c.user_id, u.username FROM cards c JOIN users u ON u.id = c.user_id WHERE c.card = ?1",
                c,
            )? {
                return Ok(Some(format!("card {c:?} is held by user {h:?}")));
            }
        }
        if let Some(pn) = rec
            .personal_number
            .as_ref()
            .filter(|_| check("personal_number"))
        {
            if let Some(h) = holder(
                "SELECT id, username FROM users WHERE personal_number = ?1",
                pn,
            )? {
                return Ok(Some(format!(
                    "personal number {pn:?} is held by user {h:?}"
                )));
            }
        }
        Ok(None)
    }

    /// Deactivates or deletes the users in `temp.missing`, set-wise.
    fn apply_missing(&mut self) -> Result<()> {
        let delete = self.opts.on_missing == OnMissing::Delete;
        let (action, reason) = if delete {
            ("deleted", "missing from the source")
        } else {
            ("deactivated", "missing from the source")
        };
        let n: u64 = self
            .tx
            .query_row("SELECT count(*) FROM temp.missing", [], |r| r.get(0))?;
        if n == 0 {
            return Ok(());
        }
        if let Some(run_id) = self.run_id {
            self.tx.execute(
                "INSERT INTO run_events(run_id, seq, entry, action, reason)
                 SELECT ?1, ?2 + row_number() OVER (ORDER BY username), username, ?3, ?4 FROM temp.missing",
                params![run_id, self.event_seq, action, reason],
            )?;
            self.event_seq += n as i64;
        } else {
            let names: Vec<String> = self
                .tx
                .prepare("SELECT username FROM temp.missing ORDER BY username")?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let verb = if delete { "delete" } else { "deactivate" };
            self.plan.extend(names.into_iter().map(|username| PlanItem {
                action: verb,
                username,
                fields: vec![],
            }));
        }
        if delete {
            self.tx.execute(
                "DELETE FROM users WHERE id IN (SELECT id FROM temp.missing)",
                [],
            )?;
            self.counts.deleted += n;
        } else {
            self.tx.execute(
                &format!("UPDATE users SET active = 0, updated_at = {NOW} WHERE id IN (SELECT id FROM temp.missing)"),
                [],
            )?;
            // An inactive user is never unchanged: its return must reactivate it.
            self.tx.execute(
                "UPDATE links SET raw_hash = NULL WHERE user_id IN (SELECT id FROM temp.missing)",
                [],
            )?;
            self.counts.deactivated += n;
        }
        Ok(())
    }

    /// Group objects: places them in the tree, keeps their memberships equal to what the
    /// source lists, and removes groups the source no longer has (unless `on_missing` is
    /// `ignore`). A staged group's member list is taken as complete.
    fn apply_groups(&mut self, full: bool) -> Result<()> {
        let staged: Vec<(String, String, Option<String>)> = self
            .tx
            .prepare("SELECT anchor, name, parent FROM temp.stage_groups")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        let removing = self.opts.on_missing != OnMissing::Ignore;
        let any_edges: bool =
            self.tx
                .query_row("SELECT EXISTS (SELECT 1 FROM temp.edges)", [], |r| r.get(0))?;
        if staged.is_empty() && !any_edges && !full {
            if removing {
                self.tx.execute(
                    "DELETE FROM groups WHERE source_id = ?1 AND anchor IN (SELECT anchor FROM temp.removals WHERE kind = 'group')",
                    [self.source_id],
                )?;
            }
            return Ok(());
        }
        // Tree: explicit parent, else the first staged group that lists this one as member.
        let mut groups: HashMap<String, (String, Option<String>)> =
            staged.into_iter().map(|(a, n, p)| (a, (n, p))).collect();
        let nesting: Vec<(String, String)> = self
            .tx
            .prepare(
                "SELECT e.grp, e.member FROM temp.edges e
                 JOIN temp.stage_groups p ON p.anchor = e.grp JOIN temp.stage_groups c ON c.anchor = e.member
                 ORDER BY e.grp, e.member",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (parent, child) in nesting {
            if parent != child {
                if let Some((_, p @ None)) = groups.get_mut(&child) {
                    *p = Some(parent);
                }
            }
        }
        let mut paths: Vec<(String, String)> = Vec::with_capacity(groups.len());
        for anchor in groups.keys() {
            let mut chain = vec![groups[anchor].0.clone()];
            let mut seen = vec![anchor.as_str()];
            let mut at = anchor.as_str();
            // Walk up; a cycle or an unknown parent ends the walk at a root.
            while let Some(p) = groups[at]
                .1
                .as_deref()
                .filter(|p| groups.contains_key(*p) && !seen.contains(p))
            {
                chain.push(groups[p].0.clone());
                seen.push(p);
                at = p;
            }
            chain.reverse();
            paths.push((anchor.clone(), chain.join("|")));
        }
        paths.sort_by(|a, b| a.1.cmp(&b.1));
        // A group that moved or was renamed is replaced (its old place and memberships go).
        for (anchor, path) in &paths {
            self.tx.execute(
                "DELETE FROM groups WHERE source_id = ?1 AND anchor = ?2 AND path != ?3",
                params![self.source_id, anchor, path],
            )?;
        }
        self.group_ids.clear();
        for (anchor, path) in &paths {
            let id = ensure_group(&self.tx, self.source_id, path, &mut self.group_ids)?;
            self.tx.execute(
                "UPDATE groups SET source_id = ?1, anchor = ?2 WHERE id = ?3",
                params![self.source_id, anchor, id],
            )?;
        }
        self.tx.execute_batch(
            "DROP TABLE IF EXISTS temp.gmap; DROP TABLE IF EXISTS temp.desired;
             CREATE TEMP TABLE gmap(anchor TEXT PRIMARY KEY, group_id INTEGER NOT NULL) WITHOUT ROWID;
             CREATE TEMP TABLE desired(group_id INTEGER, user_id INTEGER, PRIMARY KEY(group_id, user_id)) WITHOUT ROWID;",
        )?;
        self.tx.execute(
            "INSERT INTO temp.gmap SELECT anchor, id FROM groups WHERE source_id = ?1 AND anchor IS NOT NULL",
            [self.source_id],
        )?;
        self.tx.execute(
            "INSERT OR IGNORE INTO temp.desired SELECT g.group_id, l.user_id FROM temp.edges e
             JOIN temp.gmap g ON g.anchor = e.grp JOIN links l ON l.source_id = ?1 AND l.anchor = e.member",
            [self.source_id],
        )?;
        self.tx.execute(
            "INSERT OR IGNORE INTO memberships(group_id, user_id, source_id) SELECT group_id, user_id, ?1 FROM temp.desired",
            [self.source_id],
        )?;
        self.tx.execute(
            "DELETE FROM memberships WHERE source_id = ?1
               AND group_id IN (SELECT g.group_id FROM temp.gmap g JOIN temp.stage_groups s ON s.anchor = g.anchor)
               AND NOT EXISTS (SELECT 1 FROM temp.desired d WHERE d.group_id = memberships.group_id AND d.user_id = memberships.user_id)",
            [self.source_id],
        )?;
        if removing {
            let gone = if full {
                "anchor NOT IN (SELECT anchor FROM temp.stage_groups)"
            } else {
                "anchor IN (SELECT anchor FROM temp.removals WHERE kind = 'group')"
            };
            self.tx.execute(
                &format!(
                    "DELETE FROM groups WHERE source_id = ?1 AND anchor IS NOT NULL AND {gone}"
                ),
                [self.source_id],
            )?;
        }
        self.group_ids.clear();
        Ok(())
    }

    /// Groups of this source with no active member anywhere in their subtree vanish.
    fn prune_groups(&mut self) -> Result<()> {
        self.tx.execute(
            "DELETE FROM groups WHERE source_id = ?1 AND anchor IS NULL AND NOT EXISTS (
                 SELECT 1 FROM memberships m JOIN groups g ON g.id = m.group_id JOIN users u ON u.id = m.user_id
                 WHERE u.active = 1 AND (g.id = groups.id OR g.path LIKE replace(replace(groups.path, '%', '\\%'), '_', '\\_') || '|%' ESCAPE '\\'))",
            [self.source_id],
        )?;
        Ok(())
    }

    fn end(
        self,
        status: Status,
        message: Option<String>,
        cursor: Option<String>,
        notices: Vec<String>,
        full: bool,
    ) -> Result<Outcome> {
        let Run {
            tx,
            run_id,
            counts,
            errors,
            plan,
            source_id,
            ..
        } = self;
        let c = counts;
        let mode = if full { "full" } else { "delta" };
        let notices_json = serde_json::to_string(&notices)?;
        match (status, run_id) {
            (Status::Ok, Some(id)) => {
                // No cursor means the next run is a full one.
                tx.execute(
                    "UPDATE sources SET cursor = ?1 WHERE id = ?2",
                    params![cursor, source_id],
                )?;
                tx.execute(
                    &format!(
                        "UPDATE runs SET status = 'ok', mode = ?2, finished = {NOW}, created = ?3, updated = ?4,
                         unchanged = ?5, deactivated = ?6, reactivated = ?7, deleted = ?8, failed = ?9,
                         notices = ?10 WHERE id = ?1"
                    ),
                    params![id, mode, c.created, c.updated, c.unchanged, c.deactivated, c.reactivated, c.deleted, c.failed, notices_json],
                )?;
                let t = std::time::Instant::now();
                tx.commit()?;
                tracing::debug!("committed in {:?}", t.elapsed());
            }
            _ => tx.rollback()?,
        }
        Ok(Outcome {
            run_id,
            status,
            counts: c,
            errors,
            message,
            plan,
            notices,
            full,
        })
    }
}

fn on_missing_name(o: OnMissing) -> &'static str {
    match o {
        OnMissing::Deactivate => "deactivate",
        OnMissing::Delete => "delete",
        OnMissing::Ignore => "ignore",
    }
}

/// New users: staged rows that paired with no stored user.
const FRESH: &str = "temp.work w JOIN temp.stage s ON s.seq = w.seq AND s.user_id IS NULL";

/// The new users `bulk_insert` creates, with their staged rows.
const B: &str = "temp.bulk b JOIN temp.stage s ON s.seq = b.seq";

/// Whether an error is a UNIQUE (or other) constraint objecting.
fn is_constraint(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<rusqlite::Error>(),
        Some(rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ErrorCode::ConstraintViolation
    )
}

/// A list as JSON, or None when empty.
fn json_list(v: &[String]) -> Option<String> {
    (!v.is_empty()).then(|| serde_json::to_string(v).expect("strings serialise"))
}

/// The stored user an entry paired with, as far as the unchanged check needs it.
struct Paired {
    id: i64,
    hash: i64,
    active: bool,
    source_id: Option<i64>,
}

/// One staged user: its anchor, raw hash, record and (fingerprint, argon2 hash) PINs.
#[derive(Clone, Copy)]
struct Staged<'a> {
    anchor: &'a str,
    raw: i64,
    rec: &'a UserRecord,
    pins: &'a [(String, String)],
}

/// Inserts or rewrites one user with its names, cards, PINs, link and this source's
/// memberships.
fn write_user(
    db: &rusqlite::Connection,
    source_id: i64,
    user: Staged<'_>,
    id: Option<i64>,
    changed: Option<&[&str]>,
    group_ids: &mut HashMap<String, i64>,
) -> Result<i64> {
    let Staged {
        anchor,
        raw,
        rec,
        pins,
    } = user;
    // An update rewrites only the side tables whose fields changed.
    let touch = |fields: &[&str]| changed.is_none_or(|c| fields.iter().any(|f| c.contains(f)));
    let (names, cards, pins_changed, groups) = (
        touch(&["username", "aliases"]),
        touch(&["cards"]),
        touch(&["pins"]),
        touch(&["groups"]),
    );
    let (record, hash) = rec.to_stored(anchor);
    let id = match id {
        None => {
            db.prepare_cached(&format!(
                "INSERT INTO users(username, full_name, email, personal_number, language, phone, notes, storage,
                                   active, source_id, record, hash, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, {NOW}, {NOW})"
            ))?
            .execute(params![
                rec.username, rec.full_name, rec.email, rec.personal_number, rec.language, rec.phone,
                rec.notes, rec.storage, rec.active, source_id, record, hash
            ])?;
            db.last_insert_rowid()
        }
        Some(id) => {
            db.prepare_cached(&format!(
                "UPDATE users SET username = ?2, full_name = ?3, email = ?4, personal_number = ?5, language = ?6,
                        phone = ?7, notes = ?8, storage = ?9, active = ?10, source_id = ?11, record = ?12,
                        hash = ?13, updated_at = {NOW} WHERE id = ?1"
            ))?
            .execute(params![
                id, rec.username, rec.full_name, rec.email, rec.personal_number, rec.language, rec.phone,
                rec.notes, rec.storage, rec.active, source_id, record, hash
            ])?;
            for (t, on) in [("names", names), ("cards", cards), ("pins", pins_changed)] {
                if on {
                    db.prepare_cached(&format!("DELETE FROM {t} WHERE user_id = ?1"))?
                        .execute([id])?;
                }
            }
            if groups {
                db.prepare_cached("DELETE FROM memberships WHERE user_id = ?1 AND source_id = ?2")?
                    .execute([id, source_id])?;
            }
            id
        }
    };
    if names {
        let mut name =
            db.prepare_cached("INSERT INTO names(name, user_id, alias) VALUES (?1, ?2, ?3)")?;
        name.execute(params![rec.username, id, false])?;
        for a in &rec.aliases {
            name.execute(params![a, id, true])?;
        }
    }
    if cards {
        let mut card = db.prepare_cached("INSERT INTO cards(card, user_id) VALUES (?1, ?2)")?;
        for c in &rec.cards {
            card.execute(params![c, id])?;
        }
    }
    if pins_changed {
        let mut pin = db.prepare_cached(
            "INSERT OR IGNORE INTO pins(user_id, fingerprint, hash) VALUES (?1, ?2, ?3)",
        )?;
        for (fp, h) in pins {
            pin.execute(params![id, fp, h])?;
        }
    }
    db.prepare_cached(
        "INSERT OR REPLACE INTO links(source_id, anchor, user_id, raw_hash) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![source_id, anchor, id, raw])?;
    if groups {
        let mut member = db.prepare_cached(
            "INSERT OR IGNORE INTO memberships(group_id, user_id, source_id) VALUES (?1, ?2, ?3)",
        )?;
        for path in &rec.groups {
            let gid = ensure_group(db, source_id, path, group_ids)?;
            member.execute(params![gid, id, source_id])?;
        }
    }
    Ok(id)
}

/// The id of a group path, creating it and its ancestors as needed.
fn ensure_group(
    db: &rusqlite::Connection,
    source_id: i64,
    path: &str,
    cache: &mut HashMap<String, i64>,
) -> Result<i64> {
    if let Some(id) = cache.get(path) {
        return Ok(*id);
    }
    let mut parent: Option<i64> = None;
    for p in reconcile::ancestors(path) {
        let id = match cache.get(p) {
            Some(id) => *id,
            None => {
                let found: Option<i64> = db
                    .prepare_cached("SELECT id FROM groups WHERE path = ?1")?
                    .query_row([p], |r| r.get(0))
                    .optional()?;
                let id = match found {
                    Some(id) => id,
                    None => {
                        let name = p.rsplit('|').next().unwrap_or(p);
                        db.prepare_cached(
                            "INSERT INTO groups(path, name, parent_id, source_id) VALUES (?1, ?2, ?3, ?4)",
                        )?
                        .execute(params![p, name, parent, source_id])?;
                        db.last_insert_rowid()
                    }
                };
                cache.insert(p.to_string(), id);
                id
            }
        };
        parent = Some(id);
    }
    Ok(parent.expect("a path has at least one level"))
}
