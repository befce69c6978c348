//! What `roster serve` keeps: API tokens (hashes only), held runs, and the paged reads of
//! the API.

use super::{EventView, PlanItem, RunView, Status, Store, NOW};
use crate::store::db::Sql;
use anyhow::{bail, Result};
use rusqlite::params;
use serde::{Deserialize, Serialize};

/// A token as listed: never its value, which is not stored.
#[derive(Debug, Clone, Serialize)]
pub struct TokenRow {
    pub name: String,
    pub role: String,
    pub source: Option<String>,
    pub created_at: String,
    #[serde(skip)]
    pub hash: Vec<u8>,
}

/// A run the deletion guard stopped, kept for review.
#[derive(Debug, Clone, Serialize)]
pub struct Held {
    pub run_id: i64,
    pub source: String,
    pub held_at: String,
    /// `approved`, `dismissed`, or none while it waits.
    pub decision: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    /// The forced run an approval started.
    pub rerun_id: Option<i64>,
    pub plan: Vec<StoredPlanItem>,
}

/// A plan line as stored (JSON) and shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredPlanItem {
    pub action: String,
    pub username: String,
    pub fields: Vec<String>,
}

/// One page of the run log, newest first.
#[derive(Debug, Serialize)]
pub struct RunPage {
    pub runs: Vec<RunView>,
    /// Pass as `before` for the next page; none on the last.
    pub next: Option<i64>,
}

impl Store {
    pub fn add_token(
        &self,
        name: &str,
        role: &str,
        source: Option<&str>,
        hash: &[u8],
    ) -> Result<()> {
        let exists: bool = self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM tokens WHERE name = ?1)",
            [name],
            |r| r.get(0),
        )?;
        if exists {
            bail!("a token named {name:?} exists; revoke it first or pick another name");
        }
        self.conn.execute(
            &format!("INSERT INTO tokens(name, role, source, hash, created_at) VALUES (?1, ?2, ?3, ?4, {NOW})"),
            params![name, role, source, hash],
        )?;
        Ok(())
    }

    pub fn tokens(&self) -> Result<Vec<TokenRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT name, role, source, created_at, hash FROM tokens ORDER BY name",
        )?;
        let rows = stmt.query_map((), |r| {
            Ok(TokenRow {
                name: r.get(0)?,
                role: r.get(1)?,
                source: r.get(2)?,
                created_at: r.get(3)?,
                hash: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn revoke_token(&self, name: &str) -> Result<bool> {
        Ok(self
            .conn
            .execute("DELETE FROM tokens WHERE name = ?1", [name])?
            > 0)
    }

    /// Keeps the plan of a run the deletion guard stopped; its source is held until decided.
    pub fn hold_run(&self, run_id: i64, source: &str, plan: &[PlanItem]) -> Result<()> {
        let plan = serde_json::to_string(plan)?;
        self.conn.execute(
            &format!("INSERT OR REPLACE INTO held_runs(run_id, source, plan, held_at) VALUES (?1, ?2, ?3, {NOW})"),
            params![run_id, source, plan],
        )?;
        Ok(())
    }

    pub fn held(&self, run_id: i64) -> Result<Option<Held>> {
        Ok(self.held_where("run_id = ?1", params![run_id])?.pop())
    }

    /// The undecided held run of a source, if any: it pauses scheduled runs.
    pub fn held_source(&self, source: &str) -> Result<Option<Held>> {
        Ok(self
            .held_where("source = ?1 AND decision IS NULL", params![source])?
            .pop())
    }

    fn held_where(&self, filter: &str, p: impl crate::store::db::Args) -> Result<Vec<Held>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT run_id, source, held_at, decision, decided_by, decided_at, rerun_id, plan
             FROM held_runs WHERE {filter} ORDER BY run_id"
        ))?;
        let rows = stmt.query_map(p, |r| {
            Ok(Held {
                run_id: r.get(0)?,
                source: r.get(1)?,
                held_at: r.get(2)?,
                decision: r.get(3)?,
                decided_by: r.get(4)?,
                decided_at: r.get(5)?,
                rerun_id: r.get(6)?,
                plan: serde_json::from_str(&r.get::<_, String>(7)?).unwrap_or_default(),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records the decision on a waiting held run; false when it was not waiting.
    pub fn decide_held(&self, run_id: i64, decision: &str, by: &str) -> Result<bool> {
        Ok(self.conn.execute(
            &format!("UPDATE held_runs SET decision = ?2, decided_by = ?3, decided_at = {NOW} WHERE run_id = ?1 AND decision IS NULL"),
            params![run_id, decision, by],
        )? > 0)
    }

    pub fn set_rerun(&self, run_id: i64, rerun_id: i64) -> Result<()> {
        self.conn.execute(
            "UPDATE held_runs SET rerun_id = ?2 WHERE run_id = ?1",
            params![run_id, rerun_id],
        )?;
        Ok(())
    }

    /// Runs newest first, filtered, `limit` at a time before the run id `before`.
    pub fn run_page(
        &self,
        source: Option<&str>,
        status: Option<Status>,
        before: Option<i64>,
        limit: u64,
    ) -> Result<RunPage> {
        let mut runs = self.query_runs(
            &format!(
                "(?1 IS NULL OR source = ?1) AND (?2 IS NULL OR status = ?2)
                 AND (?3 IS NULL OR id < ?3) ORDER BY id DESC LIMIT {}",
                limit + 1
            ),
            params![source, status, before],
        )?;
        let next = if runs.len() as u64 > limit {
            runs.truncate(limit as usize);
            runs.last().map(|r| r.id)
        } else {
            None
        };
        Ok(RunPage { runs, next })
    }

    /// A run without its events (see [`Store::run_events`]), with its held plan.
    pub fn run_head(&self, id: i64) -> Result<Option<RunView>> {
        let Some(mut run) = self.query_runs("id = ?1", [id])?.pop() else {
            return Ok(None);
        };
        run.held = self.held(id)?;
        Ok(Some(run))
    }

    /// `limit` events of a run after event number `after`.
    pub fn run_events(&self, id: i64, after: i64, limit: u64) -> Result<Vec<EventView>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT entry, action, reason, seq FROM run_events WHERE run_id = ?1 AND seq > ?2
             ORDER BY seq LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![id, after, limit as i64], |r| {
            Ok(EventView {
                entry: r.get(0)?,
                action: r.get(1)?,
                reason: r.get(2)?,
                seq: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The last run of a source, and its last successful one.
    pub fn last_runs(&self, source: &str) -> Result<(Option<RunView>, Option<RunView>)> {
        let last = self
            .query_runs("source = ?1 ORDER BY id DESC LIMIT 1", [source])?
            .pop();
        let ok = self
            .query_runs(
                "source = ?1 AND status = 'ok' ORDER BY id DESC LIMIT 1",
                [source],
            )?
            .pop();
        Ok((last, ok))
    }

    /// Active and inactive users, for `/metrics`.
    pub fn user_states(&self) -> Result<(u64, u64)> {
        Ok(self.conn.query_row(
            "SELECT coalesce(sum(active), 0), count(*) - coalesce(sum(active), 0) FROM users",
            (),
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }

    /// The database answers (for `/readyz`).
    pub fn ping(&self) -> Result<()> {
        self.conn.query_row("SELECT 1", (), |_| Ok(()))?;
        Ok(())
    }
}
