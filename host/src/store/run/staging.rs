//! Staging: each mapped user, group object, membership reference and removal goes into a
//! TEMP table as it arrives. Users are paired with the stored user here, one lookup each.

use super::Run;
use crate::mapping::Mapped;
use crate::reconcile::PairBy;
use crate::store::db::Sql;
use anyhow::Result;
use rusqlite::{params, OptionalExtension};

/// (Re)creates the run's TEMP tables, dropping any a previous run on this connection left.
pub(super) fn create_tables(tx: &crate::store::db::Tx<'_>) -> Result<()> {
    // PostgreSQL: statements prepared against the last run's TEMP tables are stale.
    if let crate::store::db::Db::Pg(c) = tx.db() {
        c.forget_statements();
    }
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
    Ok(())
}

/// Rows PostgreSQL's staging holds back before writing them in one statement.
pub(super) const DEFERRED_ROWS: usize = 1000;

/// Staged rows not yet written (PostgreSQL only).
#[derive(Default)]
pub(super) struct Deferred {
    stage: Vec<Vec<rusqlite::types::Value>>,
    /// Each staged row's locator, username, anchor and pairing key.
    keys: Vec<(String, String, String, String)>,
    seen: Vec<Vec<rusqlite::types::Value>>,
    edges: Vec<Vec<rusqlite::types::Value>>,
    pub(super) events: Vec<Vec<rusqlite::types::Value>>,
    /// The stored users of the chunk `apply_changes` is at.
    pub(super) existing: std::collections::HashMap<i64, crate::reconcile::Existing>,
    /// Pairing keys, once loaded (see `Run::lookup`), and the lookups made before.
    pairs: Option<std::collections::HashMap<String, Paired>>,
    lookups: u32,
}

impl Run<'_> {
    /// Stages one mapped user. A duplicate key within the source is a failed entry. `raw` is
    /// the object's raw hash, kept with the link when the user is written.
    pub fn stage(&mut self, locator: &str, anchor: &str, raw: i64, mut m: Mapped) -> Result<()> {
        // Fields the source ignores are not its to say.
        if let Some(auth) = &self.opts.authority {
            for f in crate::model::Field::ALL {
                if f != crate::model::Field::Username
                    && f != crate::model::Field::Active
                    && auth.explicit(&self.source, f) == Some(crate::authority::Mode::Ignore)
                {
                    m.clear(f);
                }
            }
        }
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
            if !self.seen.users.insert(p.id) {
                let first = self.first_seen(p.id)?;
                let what = self.opts.pair_by.name();
                return self.fail(
                    locator,
                    &format!("duplicate {what} {key:?} in the source (first at {first})"),
                );
            }
            self.note_seen(p.id, locator)?;
            if p.source_id == Some(self.source_id) {
                self.seen.own += 1;
                self.seen.own_active += u64::from(p.active);
            }
            if p.hash == hash && p.active && p.source_id == Some(self.source_id) {
                // Mapped unchanged, but the raw hash was not the link's: remember it, so the
                // next run takes the cheap path (a one-time write after a mapping change).
                if self.fast.loaded {
                    const REMEMBER: &str = "UPDATE links SET raw_hash = ?3
                                            WHERE source_id = ?1 AND anchor = ?2 AND user_id = ?4";
                    self.tx.prepare_cached(REMEMBER)?.execute(params![
                        self.source_id,
                        anchor,
                        raw,
                        p.id
                    ])?;
                }
                self.report.counts.unchanged += 1;
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
        if self.tx.is_pg() {
            // Many rows a statement (see `flush_staged`).
            use rusqlite::types::Value as V;
            let text = |s: Option<String>| s.map_or(V::Null, V::Text);
            let d = &mut self.deferred;
            d.stage.push(vec![
                V::Text(locator.to_string()),
                V::Text(anchor.to_string()),
                text(stored_key.cloned()),
                V::Text(m.record.username.clone()),
                V::Integer(hash),
                V::Text(record),
                text(pins),
                paired.map_or(V::Null, |p| V::Integer(p.id)),
                text(json_list(&m.record.aliases)),
                text(json_list(&m.record.cards)),
                text(json_list(&m.record.groups)),
                text(m.record.personal_number.clone()),
                V::Integer(raw),
            ]);
            d.keys.push((
                locator.to_string(),
                m.record.username.clone(),
                anchor.to_string(),
                key,
            ));
            if d.stage.len() >= DEFERRED_ROWS {
                self.flush_staged()?;
            }
            return Ok(());
        }
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

    /// Marks a stored user as paired with the entry at `locator`.
    fn note_seen(&mut self, user_id: i64, locator: &str) -> Result<()> {
        if self.tx.is_pg() {
            use rusqlite::types::Value as V;
            let seen = &mut self.deferred.seen;
            seen.push(vec![V::Integer(user_id), V::Text(locator.to_string())]);
            if seen.len() >= DEFERRED_ROWS {
                self.flush_staged()?;
            }
            return Ok(());
        }
        self.tx
            .prepare_cached("INSERT INTO temp.seen(user_id, locator) VALUES (?1, ?2)")?
            .execute(params![user_id, locator])?;
        Ok(())
    }

    /// Writes the rows PostgreSQL's staging holds back, many a statement; an entry whose
    /// username, id or key an earlier entry had fails, as it does at once on SQLite.
    pub(super) fn flush_staged(&mut self) -> Result<()> {
        let d = Deferred {
            stage: std::mem::take(&mut self.deferred.stage),
            keys: std::mem::take(&mut self.deferred.keys),
            seen: std::mem::take(&mut self.deferred.seen),
            edges: std::mem::take(&mut self.deferred.edges),
            events: std::mem::take(&mut self.deferred.events),
            existing: Default::default(),
            pairs: None,
            lookups: 0,
        };
        self.tx
            .insert_many("INSERT INTO temp.seen(user_id, locator)", &d.seen, None)?;
        self.tx
            .insert_many("INSERT INTO temp.edges(grp, member)", &d.edges, None)?;
        self.tx.insert_many(
            "INSERT INTO run_events(run_id, seq, entry, action, reason)",
            &d.events,
            None,
        )?;
        if d.stage.is_empty() {
            return Ok(());
        }
        // Counted, not a set: two entries may share a locator, and the first one wins.
        let mut inserted: std::collections::HashMap<String, usize> =
            std::collections::HashMap::new();
        for l in self.tx.insert_many(
            "INSERT INTO temp.stage(locator, anchor, key, username, hash, record, pins, user_id,
                                    aliases, cards, groups, pn, raw)",
            &d.stage,
            Some("locator"),
        )? {
            *inserted.entry(l).or_default() += 1;
        }
        for (locator, username, anchor, key) in d.keys {
            if let Some(n) = inserted.get_mut(&locator).filter(|n| **n > 0) {
                *n -= 1;
                continue;
            }
            let what = self.opts.pair_by.name();
            let mut first = None;
            for (what, col, value) in [
                ("username", "username", &username),
                ("id", "anchor", &anchor),
                (what, "key", &key),
            ] {
                let found: Option<String> = self
                    .tx
                    .query_row(
                        &format!("SELECT locator FROM temp.stage WHERE {col} = ?1"),
                        [value],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(f) = found {
                    first = Some((what, value.clone(), f));
                    break;
                }
            }
            let (what, value, first) =
                first.unwrap_or((what, key.clone(), "an earlier entry".to_string()));
            self.fail(
                &locator,
                &format!("duplicate {what} {value:?} in the source (first at {first})"),
            )?;
        }
        Ok(())
    }

    /// Where the entry that first paired with `user_id` was.
    fn first_seen(&mut self, user_id: i64) -> Result<String> {
        self.flush_staged()?;
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
        Ok(match self.fast.locator(user_id) {
            Some(l) => l.to_string(),
            None => "an earlier entry".to_string(),
        })
    }

    /// PostgreSQL: after this many lookups a run loads every pairing key at once (a lookup
    /// is a round trip there); a run of a few entries (a SCIM write) never does.
    const LOOKUPS_BEFORE_LOADING: u32 = 256;

    /// The stored user a pairing key finds.
    fn lookup(&mut self, key: &str) -> Result<Option<Paired>> {
        if self.tx.is_pg() {
            if self.deferred.pairs.is_none() {
                self.deferred.lookups += 1;
                if self.deferred.lookups > Self::LOOKUPS_BEFORE_LOADING {
                    self.deferred.pairs = Some(self.load_pairs()?);
                }
            }
            if let Some(pairs) = &self.deferred.pairs {
                let key = match self.opts.pair_by {
                    PairBy::Email => key.to_lowercase(),
                    _ => key.to_string(),
                };
                return Ok(pairs.get(&key).copied());
            }
        }
        self.lookup_one(key)
    }

    /// Every pairing key of the store and the user it finds, as `lookup_one` would.
    fn load_pairs(&self) -> Result<std::collections::HashMap<String, Paired>> {
        let t = std::time::Instant::now();
        const COLS: &str = "u.id, u.hash, u.active, u.source_id FROM users u";
        let (sql, email) = match self.opts.pair_by {
            PairBy::Username => (format!("SELECT u.username, {COLS}"), false),
            PairBy::PersonalNumber => (
                format!("SELECT u.personal_number, {COLS} WHERE u.personal_number IS NOT NULL ORDER BY u.id"),
                false,
            ),
            // The same order as lookup_one's: this source's user first, then the oldest.
            PairBy::Email => (
                format!(
                    "SELECT u.email, {COLS} WHERE u.email IS NOT NULL ORDER BY u.source_id IS NOT ?1, u.id"
                ),
                true,
            ),
            PairBy::Anchor => (
                format!("SELECT l.anchor, {COLS} JOIN links l ON l.user_id = u.id AND l.source_id = ?1"),
                false,
            ),
        };
        let mut pairs = std::collections::HashMap::new();
        let mut stmt = self.tx.prepare(&sql)?;
        let args: &[i64] = if sql.contains("?1") {
            &[self.source_id]
        } else {
            &[]
        };
        let mut rows = stmt.query(args)?;
        while let Some(r) = rows.next()? {
            let key: String = r.get(0)?;
            let key = if email { key.to_lowercase() } else { key };
            pairs.entry(key).or_insert(Paired {
                id: r.get(1)?,
                hash: r.get(2)?,
                active: r.get(3)?,
                source_id: r.get(4)?,
            });
        }
        tracing::debug!("{} pairing keys loaded in {:?}", pairs.len(), t.elapsed());
        Ok(pairs)
    }

    fn lookup_one(&self, key: &str) -> Result<Option<Paired>> {
        let row = |r: &crate::store::db::Row<'_>| {
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

    /// An entry a mapping script dropped: it is not synced, and the user its anchor is
    /// linked to (if any) is not missing either; that user is left as it is.
    pub fn stage_dropped(&mut self, anchor: &str, locator: &str) -> Result<()> {
        let linked = self
            .tx
            .prepare_cached(
                "SELECT u.id, u.active, u.source_id FROM links l JOIN users u ON u.id = l.user_id
                 WHERE l.source_id = ?1 AND l.anchor = ?2",
            )?
            .query_row(params![self.source_id, anchor], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, bool>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                ))
            })
            .optional()?;
        let Some((id, active, source_id)) = linked else {
            return Ok(());
        };
        if self.seen.users.insert(id) {
            self.note_seen(id, locator)?;
            if source_id == Some(self.source_id) {
                self.seen.own += 1;
                self.seen.own_active += u64::from(active);
            }
        }
        Ok(())
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
        if self.tx.is_pg() {
            use rusqlite::types::Value as V;
            let edges = &mut self.deferred.edges;
            for g in member_of {
                edges.push(vec![V::Text(g.clone()), V::Text(anchor.to_string())]);
            }
            for m in members {
                edges.push(vec![V::Text(anchor.to_string()), V::Text(m.clone())]);
            }
            if edges.len() >= DEFERRED_ROWS {
                self.flush_staged()?;
            }
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

    /// The argon2 hash for a PIN: reused when the same fingerprint is stored, else computed;
    /// a value that is already a hash (another roster's) is kept as it is.
    fn pin_hash(&self, fingerprint: &str, pin: &str) -> Result<String> {
        if crate::model::is_pin_hash(pin) {
            return Ok(pin.to_string());
        }
        if let Some(h) = self
            .tx
            .prepare_cached("SELECT hash FROM pins WHERE fingerprint = ?1 LIMIT 1")?
            .query_row([fingerprint], |r| r.get(0))
            .optional()?
        {
            return Ok(h);
        }
        hash_pin(pin)
    }
}

/// A PIN's argon2 hash, as every stored PIN has it.
pub(crate) fn hash_pin(pin: &str) -> Result<String> {
    use argon2::PasswordHasher;
    let params = argon2::Params::new(8 * 1024, 2, 1, None).expect("valid argon2 params");
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    Ok(a.hash_password(pin.as_bytes())
        .map_err(|e| anyhow::anyhow!("hashing a PIN: {e}"))?
        .to_string())
}

/// A list as JSON, or None when empty.
fn json_list(v: &[String]) -> Option<String> {
    (!v.is_empty()).then(|| serde_json::to_string(v).expect("strings serialise"))
}

/// The stored user an entry paired with, as far as the unchanged check needs it.
#[derive(Clone, Copy)]
pub(super) struct Paired {
    id: i64,
    hash: i64,
    active: bool,
    source_id: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::json_list;

    #[test]
    fn json_list_is_none_when_empty() {
        assert_eq!(json_list(&[]), None);
    }

    #[test]
    fn json_list_is_a_json_array_of_the_values() {
        let v = vec![
            "a".to_string(),
            "b \"c\"".to_string(),
            "Staff|IT".to_string(),
        ];
        let json = json_list(&v).unwrap();
        assert_eq!(json, r#"["a","b \"c\"","Staff|IT"]"#);
        assert_eq!(serde_json::from_str::<Vec<String>>(&json).unwrap(), v);
    }
}
