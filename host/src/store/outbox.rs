//! The notification outbox: messages written in the transaction of the run they report,
//! then delivered (and retried) by `notify::Sender`. The store knows rows, not channels.

use super::{Counts, ErrorItem, Status, Store, NOW};
use crate::store::db::Sql;
use anyhow::Result;
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

/// The schema, appended to `MIGRATIONS`.
pub(super) const MIGRATION: &str = r#"
-- Notifications to deliver. `id` is the message's stable id (webhook-id, Message-ID);
-- `sealed` holds a welcome email's PIN, encrypted with a key kept outside the database,
-- and is erased once the message is delivered or given up.
CREATE TABLE outbox(
    id TEXT PRIMARY KEY,
    event TEXT NOT NULL,
    channel TEXT NOT NULL,
    source TEXT,
    run_id INTEGER,
    payload TEXT NOT NULL,
    sealed BLOB,
    created INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    last_error TEXT,
    finished INTEGER
);
CREATE INDEX outbox_due ON outbox(state, next_attempt);
"#;

/// A message to write to the outbox.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: String,
    pub event: String,
    pub channel: String,
    pub source: Option<String>,
    pub run_id: Option<i64>,
    pub payload: String,
    pub sealed: Option<Vec<u8>>,
}

/// A message due for delivery, claimed by one sender.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: String,
    pub event: String,
    pub channel: String,
    pub payload: String,
    pub sealed: Option<Vec<u8>>,
    pub created: i64,
    /// Including the attempt now claimed.
    pub attempts: i64,
}

/// One row of `roster notify status`.
#[derive(Debug, Serialize)]
pub struct OutboxRow {
    pub id: String,
    pub event: String,
    pub channel: String,
    pub source: Option<String>,
    pub run_id: Option<i64>,
    pub state: String,
    pub attempts: i64,
    pub created: i64,
    pub next_attempt: Option<i64>,
    pub last_error: Option<String>,
}

/// A user a run created, for welcome emails.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: i64,
    pub username: String,
    pub full_name: Option<String>,
    pub email: Option<String>,
    pub has_pin: bool,
}

/// Told how a run ends, inside the transaction that records it; whatever it writes commits
/// (or not) with the run.
pub trait RunNotifier {
    /// Returns notices to add to the run.
    fn on_end(&self, end: &RunEnd<'_>) -> Result<Vec<String>>;
}

/// How a run ends, and what a [`RunNotifier`] may do in its transaction.
pub struct RunEnd<'a> {
    pub(super) conn: crate::store::db::Db<'a>,
    pub run_id: i64,
    pub source: &'a str,
    pub status: Status,
    pub counts: Counts,
    pub errors: &'a [ErrorItem],
    pub message: Option<&'a str>,
    /// Users with a larger id were created by this run (ok runs only).
    pub(super) first_new_id: Option<i64>,
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn insert(conn: &impl Sql, msgs: &[NewMessage]) -> Result<usize> {
    let mut stmt = conn.prepare_cached(
        "INSERT OR IGNORE INTO outbox(id, event, channel, source, run_id, payload, sealed, created, next_attempt)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
    )?;
    let mut n = 0;
    for m in msgs {
        n += stmt.execute(params![
            m.id,
            m.event,
            m.channel,
            m.source,
            m.run_id,
            m.payload,
            m.sealed,
            now()
        ])?;
    }
    Ok(n)
}

impl RunEnd<'_> {
    /// The status of this source's run before this one, if any ended.
    pub fn previous_status(&self) -> Result<Option<Status>> {
        Ok(self
            .conn
            .query_row(
                "SELECT status FROM runs WHERE source = ?1 AND id < ?2 AND status NOT IN ('running', 'interrupted')
                 ORDER BY id DESC LIMIT 1",
                params![self.source, self.run_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The users this run created.
    pub fn created_users(&self) -> Result<Vec<NewUser>> {
        let Some(first) = self.first_new_id else {
            return Ok(Vec::new());
        };
        let mut stmt = self.conn.prepare(
            "SELECT u.id, u.username, u.full_name, u.email, EXISTS (SELECT 1 FROM pins p WHERE p.user_id = u.id)
             FROM users u JOIN sources s ON s.id = u.source_id
             WHERE u.id > ?1 AND s.name = ?2 ORDER BY u.id",
        )?;
        let rows = stmt.query_map(params![first, self.source], |r| {
            Ok(NewUser {
                id: r.get(0)?,
                username: r.get(1)?,
                full_name: r.get(2)?,
                email: r.get(3)?,
                has_pin: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Gives a user a PIN, stored as every PIN is: a keyed fingerprint and an argon2 hash.
    pub fn add_pin(&self, user_id: i64, pin: &str) -> Result<()> {
        let key: Vec<u8> =
            self.conn
                .query_row("SELECT value FROM meta WHERE key = 'pin_key'", (), |r| {
                    r.get(0)
                })?;
        let fingerprint = crate::mapping::pin_fingerprint(&key, pin);
        let hash = super::run::hash_pin(pin)?;
        self.conn.execute(
            "INSERT OR IGNORE INTO pins(user_id, fingerprint, hash) VALUES (?1, ?2, ?3)",
            params![user_id, fingerprint, hash],
        )?;
        Ok(())
    }

    pub fn enqueue(&self, msgs: &[NewMessage]) -> Result<()> {
        insert(&self.conn, msgs).map(|_| ())
    }
}

impl Store {
    /// Ends a rolled-back run (failed, held) and tells `notifier`, in one transaction.
    pub fn close_run_notifying(
        &self,
        id: i64,
        source: &str,
        status: Status,
        message: &str,
        notifier: Option<&dyn RunNotifier>,
    ) -> Result<()> {
        let tx = self.conn.begin_deferred()?;
        tx.execute(
            &format!("UPDATE runs SET status = ?2, finished = {NOW}, message = ?3 WHERE id = ?1"),
            params![id, status, message],
        )?;
        if let Some(n) = notifier {
            n.on_end(&RunEnd {
                conn: tx.db(),
                run_id: id,
                source,
                status,
                counts: Counts::default(),
                errors: &[],
                message: Some(message),
                first_new_id: None,
            })?;
        }
        tx.commit()?;
        // The status is final: the run's parked lease goes.
        self.parked.borrow_mut().retain(|(run, _)| *run != id);
        Ok(())
    }

    /// Records a run that failed before it could start and tells `notifier`, in one
    /// transaction.
    pub fn record_failed_run_notifying(
        &self,
        source: &str,
        message: &str,
        notifier: Option<&dyn RunNotifier>,
    ) -> Result<i64> {
        let tx = self.conn.begin_deferred()?;
        tx.execute(
            &format!("INSERT INTO runs(source, status, started, finished, message) VALUES (?1, ?3, {NOW}, {NOW}, ?2)"),
            params![source, message, Status::Failed],
        )?;
        let id = tx.last_insert_rowid()?;
        if let Some(n) = notifier {
            n.on_end(&RunEnd {
                conn: tx.db(),
                run_id: id,
                source,
                status: Status::Failed,
                counts: Counts::default(),
                errors: &[],
                message: Some(message),
                first_new_id: None,
            })?;
        }
        tx.commit()?;
        Ok(id)
    }

    /// Writes messages that report no run (expiring secrets). An id already written is
    /// skipped: a stable id makes the message once-only. Returns how many were new.
    pub fn enqueue(&self, msgs: &[NewMessage]) -> Result<usize> {
        let tx = self.conn.begin_deferred()?;
        let n = insert(&tx, msgs)?;
        tx.commit()?;
        Ok(n)
    }

    /// Claims up to `limit` due messages: their next attempt moves `lease` seconds ahead, so
    /// a second sender leaves them alone while this one tries.
    pub fn claim_due(&self, limit: usize, lease: i64) -> Result<Vec<Pending>> {
        let tx = self.conn.begin()?;
        let now = now();
        let due: Vec<Pending> = {
            let mut stmt = tx.prepare(
                "SELECT id, event, channel, payload, sealed, created, attempts FROM outbox
                 WHERE state = 'pending' AND next_attempt <= ?1 ORDER BY created, id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![now, limit as i64], |r| {
                Ok(Pending {
                    id: r.get(0)?,
                    event: r.get(1)?,
                    channel: r.get(2)?,
                    payload: r.get(3)?,
                    sealed: r.get(4)?,
                    created: r.get(5)?,
                    attempts: r.get::<_, i64>(6)? + 1,
                })
            })?;
            rows.collect::<Result<_, _>>()?
        };
        for p in &due {
            tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt = ?2 WHERE id = ?1",
                params![p.id, now + lease],
            )?;
        }
        tx.commit()?;
        Ok(due)
    }

    pub fn mark_delivered(&self, id: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE outbox SET state = 'delivered', finished = ?2, sealed = NULL, last_error = NULL WHERE id = ?1",
            params![id, now()],
        )?;
        Ok(())
    }

    pub fn mark_retry(&self, id: &str, next_attempt: i64, error: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE outbox SET next_attempt = ?2, last_error = ?3 WHERE id = ?1",
            params![id, next_attempt, error],
        )?;
        Ok(())
    }

    pub fn mark_gave_up(&self, id: &str, error: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE outbox SET state = 'gave_up', finished = ?2, sealed = NULL, last_error = ?3 WHERE id = ?1",
            params![id, now(), error],
        )?;
        Ok(())
    }

    /// When the next pending message is due (unix seconds), if any is pending.
    pub fn next_due(&self) -> Result<Option<i64>> {
        Ok(self.conn.query_row(
            "SELECT min(next_attempt) FROM outbox WHERE state = 'pending'",
            (),
            |r| r.get(0),
        )?)
    }

    /// Messages by state (`pending`, `delivered`, `gave_up`), newest first.
    pub fn outbox(&self, state: Option<&str>, limit: usize) -> Result<Vec<OutboxRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, event, channel, source, run_id, state, attempts, created, next_attempt, last_error
             FROM outbox WHERE ?1 IS NULL OR state = ?1 ORDER BY created DESC, id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![state, limit as i64], |r| {
            let state: String = r.get(5)?;
            Ok(OutboxRow {
                id: r.get(0)?,
                event: r.get(1)?,
                channel: r.get(2)?,
                source: r.get(3)?,
                run_id: r.get(4)?,
                next_attempt: (state == "pending").then(|| r.get(8)).transpose()?,
                state,
                attempts: r.get(6)?,
                created: r.get(7)?,
                last_error: r.get(9)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many messages are in each state.
    pub fn outbox_counts(&self) -> Result<Vec<(String, u64)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT state, count(*) FROM outbox GROUP BY state ORDER BY state")?;
        let rows = stmt.query_map((), |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
