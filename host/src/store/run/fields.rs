//! The per-field path, taken when the config uses per-field authority
//! ([`crate::authority`]): an entry updates or joins a stored user field by field, keeping
//! what other sources and local edits set, and records who set what.

use super::apply::{field_columns, Staged};
use super::groups::ensure_group;
use super::{PlanItem, Run, NOW};
use crate::authority::{is_merged, Authority, SetBy};
use crate::model::{Field, Kind, UserRecord, Value};
use crate::store::db::Sql;
use anyhow::Result;
use rusqlite::{params, OptionalExtension};

/// A stored user as the per-field path needs it.
pub(crate) struct Current {
    pub record: UserRecord,
    /// Merged fields' values with their contributor (None: a local edit).
    pub tagged: Vec<(Field, String, Option<i64>)>,
    /// One-valued fields not set by the owner: field → contributor (None: local).
    pub provenance: Vec<(Field, Option<i64>)>,
    pub owner: Option<i64>,
    /// Linked sources: (id, name).
    pub linked: Vec<(i64, String)>,
}

/// Loads a user's effective values, contributors and links.
pub(crate) fn load_current(db: &impl Sql, id: i64) -> Result<Current> {
    let cols: Vec<_> = field_columns().collect();
    let sql = format!(
        "SELECT {}, source_id FROM users WHERE id = ?1",
        cols.iter().map(|(_, c)| *c).collect::<Vec<_>>().join(", ")
    );
    let (mut record, owner) = db.prepare_cached(&sql)?.query_row([id], |r| {
        let mut rec = UserRecord::default();
        for (i, (f, _)) in cols.iter().enumerate() {
            match f.kind() {
                Kind::Flag => rec.active = r.get(i)?,
                _ => rec.set_one(*f, r.get(i)?),
            }
        }
        Ok((rec, r.get::<_, Option<i64>>(cols.len())?))
    })?;
    let mut tagged = Vec::new();
    let mut rows = db.prepare_cached(
        "SELECT 'aliases', name, source_id FROM names WHERE user_id = ?1 AND alias = 1
         UNION ALL SELECT 'cards', card, source_id FROM cards WHERE user_id = ?1
         UNION ALL SELECT 'groups', g.path, m.source_id FROM memberships m
                   JOIN groups g ON g.id = m.group_id WHERE m.user_id = ?1",
    )?;
    let mut q = rows.query([id])?;
    while let Some(r) = q.next()? {
        let f = Field::parse(&r.get::<_, String>(0)?)?;
        let v: String = r.get(1)?;
        record.many_mut(f).push(v.clone());
        tagged.push((f, v, r.get(2)?));
    }
    record.pins = db
        .prepare_cached("SELECT fingerprint FROM pins WHERE user_id = ?1")?
        .query_map([id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    record.normalise(false);
    let provenance = db
        .prepare_cached("SELECT field, source_id FROM provenance WHERE user_id = ?1")?
        .query_map([id], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))?
        .filter_map(|r| r.ok())
        .filter_map(|(f, s)| Field::parse(&f).ok().map(|f| (f, s)))
        .collect();
    let linked = db
        .prepare_cached(
            "SELECT s.id, s.name FROM links l JOIN sources s ON s.id = l.source_id
             WHERE l.user_id = ?1 ORDER BY s.id",
        )?
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(Current {
        record,
        tagged,
        provenance,
        owner,
        linked,
    })
}

impl Current {
    /// Who set a one-valued field's current value.
    pub fn set_by(&self, f: Field, names: &dyn Fn(i64) -> String) -> SetBy {
        match self.provenance.iter().find(|(g, _)| *g == f) {
            Some((_, None)) => SetBy::Local,
            Some((_, Some(s))) => SetBy::Source(names(*s)),
            None => match self.owner {
                Some(o) => SetBy::Source(names(o)),
                None => SetBy::Local,
            },
        }
    }

    fn source_name(&self, id: i64) -> String {
        (self.linked.iter().find(|(s, _)| *s == id))
            .map(|(_, n)| n.clone())
            .unwrap_or_else(|| format!("#{id}"))
    }

    /// The linked sources as (name, owns the user).
    pub fn linked_names(&self) -> Vec<(String, bool)> {
        (self.linked.iter())
            .map(|(id, n)| (n.clone(), Some(*id) == self.owner))
            .collect()
    }
}

impl Run<'_> {
    /// One entry paired with stored user `id`, field by field. Returns false when the entry
    /// is not this path's (the owner's plain cases, adoption, a source that may not join):
    /// the plain path takes it.
    pub(super) fn apply_fields(
        &mut self,
        auth: &Authority,
        locator: &str,
        user: Staged<'_>,
        id: i64,
    ) -> Result<bool> {
        let cur = load_current(&self.tx, id)?;
        let me = self.source_id;
        let owner = cur.owner == Some(me);
        if cur.owner.is_none() || (!owner && !auth.joins(&self.source)) {
            return Ok(false);
        }
        if owner && !self.opts.update_existing {
            return Ok(false);
        }
        let rec = user.rec;
        // A joiner's entry is named by the user it joins.
        let shown = if owner {
            &rec.username
        } else {
            &cur.record.username
        };
        let entry = format!("{locator} ({shown})");
        let link: Option<Option<String>> = self
            .tx
            .prepare_cached("SELECT record FROM links WHERE source_id = ?1 AND user_id = ?2")?
            .query_row([me, id], |r| r.get(0))
            .optional()?;
        let link_new = link.is_none();
        let (stored, hash) = rec.to_stored(user.anchor);
        if !owner && link.as_ref().and_then(|r| r.as_deref()) == Some(stored.as_str()) {
            self.remember_raw(user.anchor, id, user.raw)?;
            self.report.counts.unchanged += 1;
            return Ok(true);
        }
        let mut linked = cur.linked_names();
        if link_new {
            linked.push((self.source.clone(), false));
        }
        let names = |s: i64| cur.source_name(s);
        let set_by = |f: Field| cur.set_by(f, &names);
        let d = auth.decide(
            &self.source,
            owner,
            link_new,
            &cur.record,
            rec,
            &linked,
            &set_by,
        );
        let mut new = cur.record.clone();
        for &f in &d.take {
            if is_merged(f) {
                let list = new.many_mut(f);
                *list = (cur.tagged.iter())
                    .filter(|(g, _, s)| *g == f && *s != Some(me))
                    .map(|(_, v, _)| v.clone())
                    .chain(rec.list(f).iter().cloned())
                    .collect();
            } else if f.kind() == Kind::Many {
                *new.many_mut(f) = rec.list(f).to_vec();
            } else {
                new.set_one(f, rec.get(f).owned());
            }
        }
        if owner {
            new.active = rec.active;
        }
        new.normalise(false);
        let mut changed = new.changed_fields(&cur.record);
        let reactivate = !cur.record.active && new.active;
        if cur.record.active && !new.active {
            changed.push("active");
        }
        if !changed.is_empty() {
            let check: Vec<&str> = changed.clone();
            if let Some(reason) = self.conflicts(&new, Some(id), Some(&check))? {
                return self.fail(&entry, &reason).map(|_| true);
            }
        }
        let take = d.take.clone();
        let r = self.in_savepoint(|db, groups| {
            write_fields(db, me, owner, id, user, &new, &cur, &take, groups)?;
            let (rec_json, rec_hash) = if owner {
                (None, Some(hash))
            } else {
                (Some(stored.as_str()), None)
            };
            if let Some(h) = rec_hash {
                db.prepare_cached("UPDATE users SET record = ?2, hash = ?3 WHERE id = ?1")?
                    .execute(params![id, stored, h])?;
            }
            db.prepare_cached(super::apply::UNLINK)?
                .execute(params![me, user.anchor, id])?;
            db.prepare_cached(
                "INSERT OR REPLACE INTO links(source_id, anchor, user_id, raw_hash, record)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![me, user.anchor, id, user.raw, rec_json])?;
            Ok(())
        })?;
        if let Err(e) = r {
            return self.fail(&entry, &e.to_string()).map(|_| true);
        }
        let mut reason = changed.join(", ");
        for n in &d.notes {
            if !reason.is_empty() {
                reason.push_str("; ");
            }
            reason.push_str(n);
        }
        let reason = (!reason.is_empty()).then_some(reason);
        if changed.is_empty() && !link_new {
            self.report.counts.unchanged += 1;
            if !d.notes.is_empty() {
                self.planned_with("keep", shown, vec![], d.notes);
            }
            return Ok(true);
        }
        let (action, event) = match (reactivate, link_new && !owner) {
            (true, _) => ("reactivate", "reactivated"),
            (false, true) => ("join", "joined"),
            (false, false) => ("update", "updated"),
        };
        if reactivate {
            self.report.counts.reactivated += 1;
        } else {
            self.report.counts.updated += 1;
        }
        self.planned_with(action, shown, changed, d.notes);
        self.event(&entry, event, reason.as_deref())?;
        Ok(true)
    }

    /// Keeps `raw` as the link's raw hash: the next run knows the entry unchanged.
    fn remember_raw(&self, anchor: &str, id: i64, raw: i64) -> Result<()> {
        self.tx
            .prepare_cached(
                "UPDATE links SET raw_hash = ?3 WHERE source_id = ?1 AND anchor = ?2 AND user_id = ?4",
            )?
            .execute(params![self.source_id, anchor, raw, id])?;
        Ok(())
    }
}

/// Writes the fields of `new` that differ from `cur`, with contributors and provenance.
#[allow(clippy::too_many_arguments)]
fn write_fields(
    db: &impl Sql,
    me: i64,
    owner: bool,
    id: i64,
    user: Staged<'_>,
    new: &UserRecord,
    cur: &Current,
    take: &[Field],
    groups: &mut super::groups::GroupIds,
) -> Result<()> {
    for (f, col) in field_columns() {
        if new.get(f) == cur.record.get(f) {
            continue;
        }
        let v: Box<dyn rusqlite::ToSql> = match new.get(f) {
            Value::One(v) => Box::new(v.map(str::to_string)),
            Value::Flag(b) => Box::new(b),
            Value::Many(_) => continue,
        };
        db.execute(
            &format!("UPDATE users SET {col} = ?2 WHERE id = ?1"),
            params![id, v],
        )?;
        if f == Field::Username {
            db.prepare_cached("UPDATE names SET name = ?2 WHERE user_id = ?1 AND alias = 0")?
                .execute(params![id, new.username])?;
        }
        if f != Field::Active {
            set_provenance(db, id, f, (!owner).then_some(Some(me)))?;
        }
    }
    for &f in take {
        match f {
            Field::Aliases | Field::Cards if new.get(f) != cur.record.get(f) => {
                let (del, ins) = if f == Field::Cards {
                    (
                        "DELETE FROM cards WHERE user_id = ?1 AND source_id IS ?2",
                        "INSERT OR IGNORE INTO cards(card, user_id, source_id) VALUES (?3, ?1, ?2)",
                    )
                } else {
                    (
                        "DELETE FROM names WHERE user_id = ?1 AND alias = 1 AND source_id IS ?2",
                        "INSERT OR IGNORE INTO names(name, user_id, alias, source_id) VALUES (?3, ?1, 1, ?2)",
                    )
                };
                db.prepare_cached(del)?.execute(params![id, me])?;
                for v in user.rec.list(f) {
                    db.prepare_cached(ins)?.execute(params![id, me, v])?;
                }
            }
            Field::Groups if new.groups != cur.record.groups => {
                db.prepare_cached("DELETE FROM memberships WHERE user_id = ?1 AND source_id = ?2")?
                    .execute([id, me])?;
                for path in &user.rec.groups {
                    let gid = ensure_group(db, me, path, groups)?;
                    db.prepare_cached(
                        "INSERT OR IGNORE INTO memberships(group_id, user_id, source_id) VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![gid, id, me])?;
                }
            }
            Field::Pins if new.pins != cur.record.pins => {
                db.prepare_cached("DELETE FROM pins WHERE user_id = ?1")?
                    .execute([id])?;
                for (fp, h) in user.pins {
                    db.prepare_cached(
                        "INSERT OR IGNORE INTO pins(user_id, fingerprint, hash) VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![id, fp, h])?;
                }
                set_provenance(db, id, f, (!owner).then_some(Some(me)))?;
            }
            _ => {}
        }
    }
    if new != &cur.record {
        db.prepare_cached(&format!(
            "UPDATE users SET updated_at = {NOW} WHERE id = ?1"
        ))?
        .execute([id])?;
    }
    Ok(())
}

/// Records who set a one-valued field: no row for the owner, else the source (None: local).
pub(crate) fn set_provenance(
    db: &impl Sql,
    id: i64,
    f: Field,
    by: Option<Option<i64>>,
) -> Result<()> {
    match by {
        None => db
            .prepare_cached("DELETE FROM provenance WHERE user_id = ?1 AND field = ?2")?
            .execute(params![id, f.name()])?,
        Some(s) => db
            .prepare_cached(&format!(
                "INSERT OR REPLACE INTO provenance(user_id, field, source_id, set_at) VALUES (?1, ?2, ?3, {NOW})"
            ))?
            .execute(params![id, f.name(), s])?,
    };
    Ok(())
}

impl Run<'_> {
    /// With per-field authority, a missing user another linked source still lists is handed
    /// over to it instead (`temp.handover`), and the users this source only joined and no
    /// longer lists are unlinked (`temp.unlink`). Both leave `temp.missing`.
    pub(super) fn split_missing(&mut self, full: bool) -> Result<()> {
        self.tx.execute_batch(
            "DROP TABLE IF EXISTS temp.handover;
             DROP TABLE IF EXISTS temp.unlink;
             CREATE TEMP TABLE unlink(id INTEGER PRIMARY KEY, username TEXT NOT NULL);",
        )?;
        self.tx.execute(
            "CREATE TEMP TABLE handover AS SELECT m.id, m.username FROM temp.missing m
             WHERE EXISTS (SELECT 1 FROM links l WHERE l.user_id = m.id AND l.source_id != ?1)",
            [self.source_id],
        )?;
        self.tx.execute(
            "DELETE FROM temp.missing WHERE id IN (SELECT id FROM temp.handover)",
            (),
        )?;
        if self.opts.on_missing == crate::reconcile::OnMissing::Ignore {
            return Ok(());
        }
        let joined: Vec<(i64, String)> = if full {
            self.tx
                .prepare(
                    "SELECT u.id, u.username FROM links l JOIN users u ON u.id = l.user_id
                     WHERE l.source_id = ?1 AND u.source_id IS NOT ?1",
                )?
                .query_map([self.source_id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .filter(|r| {
                    r.as_ref()
                        .map_or(true, |(id, _)| !self.seen.users.contains(*id))
                })
                .collect::<Result<_, _>>()?
        } else {
            self.tx
                .prepare(
                    "SELECT u.id, u.username FROM temp.removals r
                     JOIN links l ON l.source_id = ?1 AND l.anchor = r.anchor AND r.kind = 'user'
                     JOIN users u ON u.id = l.user_id WHERE u.source_id IS NOT ?1",
                )?
                .query_map([self.source_id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?
        };
        for (id, name) in joined {
            self.tx
                .execute("INSERT INTO temp.unlink VALUES (?1, ?2)", params![id, name])?;
        }
        Ok(())
    }

    /// Hands each user in `temp.handover` to the first other linked source in config order.
    pub(super) fn apply_handovers(&mut self) -> Result<()> {
        let Some(auth) = self.opts.authority.clone() else {
            return Ok(());
        };
        let users: Vec<(i64, String)> = self
            .tx
            .prepare("SELECT id, username FROM temp.handover ORDER BY username")?
            .query_map((), |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let me = self.source_id;
        for (id, username) in users {
            let others: Vec<(i64, String, Option<String>)> = self
                .tx
                .prepare_cached(
                    "SELECT s.id, s.name, l.record FROM links l JOIN sources s ON s.id = l.source_id
                     WHERE l.user_id = ?1 AND l.source_id != ?2",
                )?
                .query_map([id, me], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?;
            let Some((to, name, record)) = others
                .into_iter()
                .min_by_key(|(_, n, _)| auth.rank(Field::Username, n))
            else {
                continue;
            };
            let db = &self.tx;
            // The old owner's values keep its name.
            for f in Field::ALL
                .into_iter()
                .filter(|f| !is_merged(*f) && *f != Field::Active)
            {
                let has = match f.info().column {
                    Some(col) => format!("{col} IS NOT NULL"),
                    None => "EXISTS (SELECT 1 FROM pins WHERE user_id = ?1)".into(),
                };
                db.execute(
                    &format!(
                        "INSERT OR IGNORE INTO provenance(user_id, field, source_id, set_at)
                         SELECT id, ?2, ?3, updated_at FROM users WHERE id = ?1 AND {has}"
                    ),
                    params![id, f.name(), me],
                )?;
            }
            // The new owner's next run writes what it holds in sync mode (hash 0 never
            // matches), and goes through the per-entry path (no raw hash).
            db.execute(
                &format!(
                    "UPDATE users SET source_id = ?2, record = coalesce(?3, record), hash = 0,
                     updated_at = {NOW} WHERE id = ?1"
                ),
                params![id, to, record],
            )?;
            db.execute(
                "UPDATE links SET record = NULL, raw_hash = NULL WHERE user_id = ?1 AND source_id = ?2",
                [id, to],
            )?;
            drop_contributions(db, id, me, false)?;
            let reason = format!(
                "missing from the source; now owned by '{name}', which still lists the user"
            );
            self.report.counts.updated += 1;
            if self.run_id.is_none() || self.keep_plan {
                self.report.plan.push(PlanItem {
                    action: "hand over",
                    username: username.clone(),
                    fields: vec![],
                    notes: vec![reason.clone()],
                });
            }
            self.event(&username, "handed over", Some(&reason))?;
        }
        Ok(())
    }

    /// Unlinks this source from the users in `temp.unlink`: only what it contributed goes.
    pub(super) fn apply_unlinks(&mut self) -> Result<()> {
        let users: Vec<(i64, String)> = self
            .tx
            .prepare("SELECT id, username FROM temp.unlink ORDER BY username")?
            .query_map((), |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (id, username) in users {
            drop_contributions(&self.tx, id, self.source_id, true)?;
            self.report.counts.updated += 1;
            let reason = "missing from the source; what it contributed is removed";
            if self.run_id.is_none() || self.keep_plan {
                self.report.plan.push(PlanItem {
                    action: "unlink",
                    username: username.clone(),
                    fields: vec![],
                    notes: vec![reason.to_string()],
                });
            }
            self.event(&username, "unlinked", Some(reason))?;
        }
        Ok(())
    }
}

/// Removes a source's link to a user and the values it contributed: its cards, aliases and
/// memberships, and (`fields`) the one-valued fields it set.
pub(crate) fn drop_contributions(db: &impl Sql, id: i64, source: i64, fields: bool) -> Result<()> {
    if fields {
        let set: Vec<String> = db
            .prepare_cached("SELECT field FROM provenance WHERE user_id = ?1 AND source_id = ?2")?
            .query_map([id, source], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for f in set.iter().filter_map(|f| Field::parse(f).ok()) {
            if let Some(col) = f.info().column.filter(|_| f != Field::Username) {
                db.execute(
                    &format!("UPDATE users SET {col} = NULL WHERE id = ?1"),
                    [id],
                )?;
            } else if f == Field::Pins {
                db.execute("DELETE FROM pins WHERE user_id = ?1", [id])?;
            }
        }
        db.execute(
            "DELETE FROM provenance WHERE user_id = ?1 AND source_id = ?2",
            [id, source],
        )?;
    }
    for sql in [
        "DELETE FROM cards WHERE user_id = ?1 AND source_id = ?2",
        "DELETE FROM names WHERE user_id = ?1 AND source_id = ?2 AND alias = 1",
        "DELETE FROM memberships WHERE user_id = ?1 AND source_id = ?2",
        "DELETE FROM links WHERE user_id = ?1 AND source_id = ?2",
    ] {
        db.prepare_cached(sql)?.execute([id, source])?;
    }
    db.execute(
        &format!("UPDATE users SET updated_at = {NOW} WHERE id = ?1"),
        [id],
    )?;
    Ok(())
}
