//! Bulk creation: new users that cannot conflict with anyone are created in a few set-wise
//! statements; the rest stays in the work list for the per-entry path.

use super::apply::field_columns;
use super::groups::ensure_group;
use super::{PlanItem, Run, NOW};
use crate::model::Field;
use crate::store::db::Sql;
use anyhow::Result;
use rusqlite::params;
use std::sync::LazyLock;

/// New users from the stage, every field column from the staged record (or the staged
/// column that already holds it).
static BULK_USERS: LazyLock<String> = LazyLock::new(|| {
    let fields: Vec<_> = field_columns().collect();
    let cols: Vec<_> = fields.iter().map(|(_, c)| *c).collect();
    let values: Vec<_> = (fields.iter())
        .map(|(f, _)| match f {
            Field::Username => "s.username".to_string(),
            Field::PersonalNumber => "s.pn".to_string(),
            // JSON true is 1 to SQLite's ->>, 'true' to PostgreSQL's.
            Field::Active => "CASE WHEN CAST(s.record ->> '$.active' AS TEXT) IN ('1', 'true') THEN 1
                              WHEN CAST(s.record ->> '$.active' AS TEXT) IN ('0', 'false') THEN 0 END"
                .to_string(),
            f => format!("s.record ->> '$.{}'", f.name()),
        })
        .collect();
    format!(
        "INSERT INTO users(id, {}, source_id, record, hash, created_at, updated_at)
         SELECT b.uid, {}, ?1, s.record, s.hash, {NOW}, {NOW}
         FROM {B} ORDER BY b.seq",
        cols.join(", "),
        values.join(", ")
    )
});

impl Run<'_> {
    /// The work list: every staged row (unchanged entries were never staged).
    pub(super) fn make_work(&mut self) -> Result<()> {
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
    pub(super) fn bulk_create(&mut self) -> Result<()> {
        let fresh: bool =
            self.tx
                .query_row(&format!("SELECT EXISTS (SELECT 1 FROM {FRESH})"), (), |r| {
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
            self.report.event_seq += n as i64;
        }
        if self.run_id.is_none() || self.keep_plan {
            let names: Vec<String> = self
                .tx
                .prepare(&format!("SELECT s.username FROM {B} ORDER BY b.seq"))?
                .query_map((), |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            self.report
                .plan
                .extend(names.into_iter().map(|username| PlanItem {
                    action: "create",
                    username,
                    fields: vec![],
                    notes: vec![],
                }));
        }
        self.report.counts.created += n;
        let left: i64 = self
            .tx
            .query_row("SELECT count(*) FROM temp.work", (), |r| r.get(0))?;
        if left as u64 == n {
            // All of it (an initial import): emptying is much cheaper than a lookup per row.
            self.tx.execute("DELETE FROM temp.work", ())?;
        } else {
            self.tx.execute(
                "DELETE FROM temp.work WHERE seq IN (SELECT seq FROM temp.bulk)",
                (),
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
            (),
        )? as u64;
        if n == 0 {
            return Ok(0);
        }
        let t = std::time::Instant::now();
        self.tx.execute(&BULK_USERS, [self.source_id])?;
        tracing::debug!("bulk users: {:?}", t.elapsed());
        // Each side table is filled in its key order: appending to a b-tree is cheap.
        self.tx.execute_batch(&format!(
            "INSERT INTO names(name, user_id, alias, source_id)
                 SELECT name, uid, alias, {src} FROM (
                     SELECT s.username AS name, b.uid, 0 AS alias FROM {B}
                     UNION ALL
                     SELECT j.value, b.uid, 1 FROM {B}, json_each(s.aliases) j WHERE s.aliases IS NOT NULL)
                 ORDER BY name;
             INSERT INTO cards(card, user_id, source_id)
                 SELECT j.value, b.uid, {src} FROM {B}, json_each(s.cards) j WHERE s.cards IS NOT NULL ORDER BY j.value;
             INSERT OR IGNORE INTO pins(user_id, fingerprint, hash)
                 SELECT b.uid, j.value ->> 0, j.value ->> 1 FROM {B}, json_each(s.pins) j WHERE s.pins IS NOT NULL;",
            src = self.source_id
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
            .query_map((), |r| r.get(0))?
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
                params![run_id, self.report.event_seq],
            )?;
        }
        tracing::debug!("bulk writes: {:?}", t.elapsed());
        Ok(n)
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

#[cfg(test)]
mod tests {
    use super::is_constraint;

    #[test]
    fn is_constraint_tells_a_unique_violation_from_other_errors() {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        db.execute_batch("CREATE TABLE t(x TEXT UNIQUE); INSERT INTO t VALUES ('a');")
            .unwrap();
        let dup = db.execute("INSERT INTO t VALUES ('a')", ()).unwrap_err();
        assert!(is_constraint(&dup.into()));
        let syntax = db
            .execute("INSERT INTO nowhere VALUES (1)", ())
            .unwrap_err();
        assert!(!is_constraint(&syntax.into()));
        assert!(!is_constraint(&anyhow::anyhow!("not SQL at all")));
    }
}
