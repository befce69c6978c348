//! The per-entry path: staged rows that bulk creation left (changed users, possible
//! conflicts) go one at a time through [`reconcile::decide`], each in its own savepoint.

use super::groups::{ensure_group, GroupIds};
use super::{Run, NOW};
use crate::model::{Field, Value};
use crate::reconcile::{self, Action, Existing, UserRecord};
use crate::store::db::Sql;
use anyhow::Result;
use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use rusqlite::{params, OptionalExtension, ToSql};
use std::sync::LazyLock;

/// Work rows read per chunk while applying changes.
const CHUNK: i64 = 2_000;

impl Run<'_> {
    /// Applies every row left in the work list, in staging order.
    pub(super) fn apply_changes(&mut self) -> Result<()> {
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
            if self.tx.is_pg() {
                // The chunk's stored users in one query, not a round trip each.
                let ids: Vec<i64> = rows.iter().filter_map(|r| r.5).collect();
                self.deferred.existing = self.load_existing_many(&ids)?;
            }
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

    /// The stored users of `ids` (PostgreSQL: one query for a chunk of work).
    fn load_existing_many(&self, ids: &[i64]) -> Result<std::collections::HashMap<i64, Existing>> {
        let mut found = std::collections::HashMap::with_capacity(ids.len());
        if ids.is_empty() {
            return Ok(found);
        }
        let mut stmt = self.tx.prepare_cached(&format!(
            "{EXISTING} WHERE u.id IN (SELECT CAST(j.value AS BIGINT) FROM json_each(?1) j)"
        ))?;
        let mut rows = stmt.query([serde_json::to_string(ids)?])?;
        while let Some(r) = rows.next()? {
            found.insert(r.get(0)?, existing(&r)?);
        }
        Ok(found)
    }

    fn load_existing(&mut self, id: i64) -> Result<Existing> {
        if let Some(e) = self.deferred.existing.remove(&id) {
            return Ok(e);
        }
        let sql = format!("{EXISTING} WHERE u.id = ?1");
        Ok(self.tx.query_row(&sql, [id], existing)?)
    }

    fn apply_one(&mut self, locator: &str, user: Staged<'_>, user_id: Option<i64>) -> Result<()> {
        if let (Some(auth), Some(id)) = (self.opts.authority.clone(), user_id) {
            if self.apply_fields(&auth, locator, user, id)? {
                return Ok(());
            }
        }
        let rec = user.rec;
        let existing = user_id.map(|id| self.load_existing(id)).transpose()?;
        let action = reconcile::decide(rec, existing.as_ref(), &self.source, &self.opts);
        let entry = format!("{locator} ({})", rec.username);
        match action {
            Action::Unchanged => {
                self.report.counts.unchanged += 1;
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
                        self.report.counts.created += 1;
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
                    self.report.counts.reactivated += 1;
                    self.planned("reactivate", &rec.username, fields);
                    self.event(&entry, "reactivated", reason.as_deref())
                } else {
                    self.report.counts.updated += 1;
                    self.planned("update", &rec.username, fields);
                    self.event(&entry, "updated", reason.as_deref())
                }
            }
        }
    }

    /// Runs one entry's writes in a savepoint. The outer result is the database's; the inner
    /// one is the entry's own failure, after which its writes are rolled back.
    pub(super) fn in_savepoint(
        &mut self,
        f: impl FnOnce(&crate::store::db::Savepoint<'_>, &mut GroupIds) -> Result<()>,
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

    /// Uniqueness checks with readable reasons: usernames and aliases share a namespace;
    /// cards and personal numbers are unique.
    pub(super) fn conflicts(
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
}

/// A stored user's id, record, active flag and owning source, for `existing`.
const EXISTING: &str = "SELECT u.id, u.record, u.active, s.name FROM users u
                        LEFT JOIN sources s ON s.id = u.source_id";

fn existing(r: &crate::store::db::Row<'_>) -> rusqlite::Result<Existing> {
    let mut record: UserRecord = serde_json::from_str(&r.get::<_, String>(1)?).unwrap_or_default();
    record.active = r.get(2)?;
    Ok(Existing {
        record,
        source: r.get(3)?,
    })
}

/// The `users` columns that hold fields, in field order.
pub(super) fn field_columns() -> impl Iterator<Item = (Field, &'static str)> {
    (Field::ALL.into_iter()).filter_map(|f| f.info().column.map(|c| (f, c)))
}

/// A field's value as its column holds it.
fn column_value(v: Value<'_>) -> ToSqlOutput<'_> {
    match v {
        Value::One(Some(s)) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        Value::One(None) | Value::Many(_) => ToSqlOutput::Owned(SqlValue::Null),
        Value::Flag(b) => ToSqlOutput::Owned(SqlValue::Integer(b.into())),
    }
}

/// `?1`.. the field columns, then source, record and hash.
static INSERT_USER: LazyLock<String> = LazyLock::new(|| {
    let cols: Vec<_> = field_columns().map(|(_, c)| c).collect();
    let n = cols.len();
    let marks: Vec<_> = (1..=n + 3).map(|i| format!("?{i}")).collect();
    format!(
        "INSERT INTO users({}, source_id, record, hash, created_at, updated_at) VALUES ({}, {NOW}, {NOW})",
        cols.join(", "),
        marks.join(", ")
    )
});

/// `?1` the id, `?2`.. the field columns, then source, record and hash.
static UPDATE_USER: LazyLock<String> = LazyLock::new(|| {
    let cols: Vec<_> = field_columns().map(|(_, c)| c).collect();
    let n = cols.len();
    let sets: Vec<_> = (cols.iter().enumerate())
        .map(|(i, c)| format!("{c} = ?{}", i + 2))
        .collect();
    format!(
        "UPDATE users SET {}, source_id = ?{}, record = ?{}, hash = ?{}, updated_at = {NOW} WHERE id = ?1",
        sets.join(", "),
        n + 2,
        n + 3,
        n + 4
    )
});

/// One staged user: its anchor, raw hash, record and (fingerprint, argon2 hash) PINs.
#[derive(Clone, Copy)]
pub(super) struct Staged<'a> {
    pub anchor: &'a str,
    pub raw: i64,
    pub rec: &'a UserRecord,
    pub pins: &'a [(String, String)],
}

/// Removes a user's link from a source under another anchor.
pub(super) const UNLINK: &str =
    "DELETE FROM links WHERE source_id = ?1 AND user_id = ?3 AND anchor != ?2";

/// Inserts or rewrites one user with its names, cards, PINs, link and this source's
/// memberships.
fn write_user(
    db: &impl Sql,
    source_id: i64,
    user: Staged<'_>,
    id: Option<i64>,
    changed: Option<&[&str]>,
    group_ids: &mut GroupIds,
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
    let columns: Vec<ToSqlOutput<'_>> = (field_columns())
        .map(|(f, _)| column_value(rec.get(f)))
        .collect();
    let rest: [&dyn ToSql; 3] = [&source_id, &record, &hash];
    let id = match id {
        None => {
            let p: Vec<&dyn ToSql> = (columns.iter().map(|c| c as &dyn ToSql))
                .chain(rest)
                .collect();
            db.prepare_cached(&INSERT_USER)?.execute(&*p)?;
            db.last_insert_rowid()?
        }
        Some(id) => {
            let p: Vec<&dyn ToSql> = std::iter::once(&id as &dyn ToSql)
                .chain(columns.iter().map(|c| c as &dyn ToSql))
                .chain(rest)
                .collect();
            db.prepare_cached(&UPDATE_USER)?.execute(&*p)?;
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
        let mut name = db.prepare_cached(
            "INSERT INTO names(name, user_id, alias, source_id) VALUES (?1, ?2, ?3, ?4)",
        )?;
        name.execute(params![rec.username, id, false, source_id])?;
        for a in &rec.aliases {
            name.execute(params![a, id, true, source_id])?;
        }
    }
    if cards {
        let mut card =
            db.prepare_cached("INSERT INTO cards(card, user_id, source_id) VALUES (?1, ?2, ?3)")?;
        for c in &rec.cards {
            card.execute(params![c, id, source_id])?;
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
    // A user has one link per source: its old anchor's goes (what SQLite's REPLACE did on
    // its own, and PostgreSQL's upsert does not).
    db.prepare_cached(UNLINK)?
        .execute(params![source_id, anchor, id])?;
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
