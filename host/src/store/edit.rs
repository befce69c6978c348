//! Local edits of users (`roster users set/add-card/reset`, `PATCH /api/v1/users`), who set
//! each field (`users show --provenance`), and what a terminal's check reads and saves.
//! Whether an edit is allowed is the authority's call ([`Authority::holder`]): a field a
//! source holds in `sync` mode is read-only.

use super::run::fields::{load_current, set_provenance};
use super::{Store, NOW};
use crate::authority::{is_merged, Authority, Mode};
use crate::model::{Field, Kind, UserRecord};
use crate::store::db::Sql;
use anyhow::Result;
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

/// One local edit.
#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    /// A one-valued field's new value (None clears it).
    Set(Field, Option<String>),
    AddCard(String),
    RemoveCard(String),
    /// Back to the sources' value (for cards and aliases: the local ones go).
    Reset(Field),
}

/// Why an edit was refused; nothing of the request was written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EditError {
    #[error("no user or alias {0:?}")]
    NoUser(String),
    #[error(
        "{field} is held by source '{holder}' in sync mode, which would overwrite a local edit at \
         its next run; to allow local edits, set [sources.{holder}.fields] {field} = \"create\", \
         \"fill\"{merge} or \"ignore\""
    )]
    Held {
        field: &'static str,
        holder: String,
        merge: &'static str,
    },
    #[error("{0}")]
    Invalid(String),
    /// A value another user holds (a card, a name, a personal number).
    #[error("{what} is already held by another user")]
    Taken { what: String, holder: String },
}

/// Who set a value, and when.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Provenance {
    pub field: &'static str,
    /// For a list field, the value this line is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A source's name, or `local`.
    pub by: String,
    /// When, for one-valued fields (lists keep no time per value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

/// A user as a terminal's check needs it.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub username: String,
    pub active: bool,
    pub pin_hashes: Vec<String>,
}

/// A lock's state as saved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LockRow {
    pub subject: String,
    pub failures: u32,
    pub locked_until: Option<i64>,
    pub last_failure: i64,
}

impl Store {
    fn user_id(&self, name: &str) -> Result<Option<i64>> {
        Ok(self
            .conn
            .prepare_cached("SELECT user_id FROM names WHERE name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional()?)
    }

    /// Applies local edits to one user, all or none. Returns the fields that changed.
    pub fn edit_user(
        &self,
        name: &str,
        edits: &[Edit],
        auth: Option<&Authority>,
    ) -> Result<Vec<&'static str>> {
        let default = Authority::default();
        let auth = auth.unwrap_or(&default);
        let tx = self.conn.begin_deferred()?;
        let Some(id) = self.user_id(name)? else {
            return Err(EditError::NoUser(name.into()).into());
        };
        let cur = load_current(&tx, id)?;
        let linked = cur.linked_names();
        let held = |f: Field| -> Result<()> {
            if let Some(h) = auth.holder(f, &linked) {
                return Err(EditError::Held {
                    field: f.name(),
                    holder: h.to_string(),
                    merge: if is_merged(f) { ", \"merge\"" } else { "" },
                }
                .into());
            }
            Ok(())
        };
        let mut changed = Vec::new();
        for e in edits {
            match e {
                Edit::Set(f, v) => {
                    if f.kind() != Kind::One {
                        return Err(EditError::Invalid(format!(
                            "{} is not a one-valued field: {}",
                            f.name(),
                            match f {
                                Field::Cards => "use add-card and remove-card",
                                _ => "it cannot be set locally",
                            }
                        ))
                        .into());
                    }
                    held(*f)?;
                    let v = v.as_deref().filter(|v| !v.is_empty());
                    if let Some(v) = v {
                        f.check(v).map_err(EditError::Invalid)?;
                    }
                    set_column(&tx, id, *f, v)?;
                    set_provenance(&tx, id, *f, Some(None))?;
                    changed.push(f.name());
                }
                Edit::AddCard(card) => {
                    held(Field::Cards)?;
                    Field::Cards.check(card).map_err(EditError::Invalid)?;
                    let holder: Option<(i64, String)> = tx
                        .query_row(
                            "SELECT c.user_id, u.username FROM cards c JOIN users u ON u.id = c.user_id WHERE c.card = ?1",
                            [card],
                            |r| Ok((r.get(0)?, r.get(1)?)),
                        )
                        .optional()?;
                    match holder {
                        Some((uid, _)) if uid == id => {}
                        Some((_, h)) => {
                            return Err(EditError::Taken {
                                what: format!("card {card:?}"),
                                holder: h,
                            }
                            .into())
                        }
                        None => {
                            let n: i64 = tx.query_row(
                                "SELECT count(*) FROM cards WHERE user_id = ?1",
                                [id],
                                |r| r.get(0),
                            )?;
                            if n as usize >= Field::Cards.max_values() {
                                return Err(EditError::Invalid(format!(
                                    "cards: the user has {n}, the most a user may hold"
                                ))
                                .into());
                            }
                            tx.execute(
                                "INSERT INTO cards(card, user_id, source_id) VALUES (?1, ?2, NULL)",
                                params![card, id],
                            )?;
                            changed.push("cards");
                        }
                    }
                }
                Edit::RemoveCard(card) => {
                    let n = tx.execute(
                        "DELETE FROM cards WHERE card = ?1 AND user_id = ?2 AND source_id IS NULL",
                        params![card, id],
                    )?;
                    if n == 0 {
                        let by: Option<Option<String>> = tx
                            .query_row(
                                "SELECT s.name FROM cards c LEFT JOIN sources s ON s.id = c.source_id
                                 WHERE c.card = ?1 AND c.user_id = ?2",
                                params![card, id],
                                |r| r.get(0),
                            )
                            .optional()?;
                        return Err(EditError::Invalid(match by {
                            Some(Some(s)) => {
                                format!("card {card:?} comes from source '{s}': remove it there")
                            }
                            _ => format!("the user has no card {card:?}"),
                        })
                        .into());
                    }
                    changed.push("cards");
                }
                Edit::Reset(f) => {
                    reset(&tx, id, *f, auth, &cur, &linked)?;
                    changed.push(f.name());
                }
            }
        }
        tx.execute(
            &format!("UPDATE users SET updated_at = {NOW} WHERE id = ?1"),
            [id],
        )?;
        tx.commit()?;
        changed.dedup();
        Ok(changed)
    }

    /// Who set each of a user's values: one line per one-valued field that has a value, and
    /// per card, alias and group.
    pub fn provenance(&self, name: &str) -> Result<Option<Vec<Provenance>>> {
        let Some(id) = self.user_id(name)? else {
            return Ok(None);
        };
        let cur = load_current(&self.conn, id)?;
        let names = |s: i64| {
            (cur.linked.iter().find(|(i, _)| *i == s))
                .map(|(_, n)| n.clone())
                .or_else(|| self.source_name(s).ok().flatten())
                .unwrap_or_else(|| format!("#{s}"))
        };
        let updated: String =
            self.conn
                .query_row("SELECT updated_at FROM users WHERE id = ?1", [id], |r| {
                    r.get(0)
                })?;
        let times: Vec<(String, String)> = self
            .conn
            .prepare("SELECT field, set_at FROM provenance WHERE user_id = ?1")?
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::new();
        for f in Field::ALL {
            let has = match cur.record.get(f) {
                crate::model::Value::One(v) => v.is_some(),
                crate::model::Value::Many(v) => f == Field::Pins && !v.is_empty(),
                crate::model::Value::Flag(_) => false,
            };
            if !has {
                continue;
            }
            let by = match cur.set_by(f, &names) {
                crate::authority::SetBy::Local => "local".to_string(),
                crate::authority::SetBy::Source(s) => s,
            };
            let at = (times.iter().find(|(g, _)| g == f.name()))
                .map(|(_, t)| t.clone())
                .unwrap_or_else(|| updated.clone());
            out.push(Provenance {
                field: f.name(),
                value: None,
                by,
                at: Some(at),
            });
        }
        for (f, v, s) in &cur.tagged {
            out.push(Provenance {
                field: f.name(),
                value: Some(v.clone()),
                by: s.map(names).unwrap_or_else(|| "local".into()),
                at: None,
            });
        }
        Ok(Some(out))
    }

    fn source_name(&self, id: i64) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT name FROM sources WHERE id = ?1", [id], |r| r.get(0))
            .optional()?)
    }

    /// The user a card, or a username or alias, names, for a terminal's check.
    pub fn auth_user(&self, card: Option<&str>, name: Option<&str>) -> Result<Option<AuthUser>> {
        let id: Option<i64> = match (card, name) {
            (Some(c), _) => self
                .conn
                .prepare_cached("SELECT user_id FROM cards WHERE card = ?1")?
                .query_row([c], |r| r.get(0))
                .optional()?,
            (None, Some(n)) => self.user_id(n)?,
            (None, None) => None,
        };
        let Some(id) = id else { return Ok(None) };
        let (username, active) = self.conn.query_row(
            "SELECT username, active FROM users WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let pin_hashes = self
            .conn
            .prepare_cached("SELECT hash FROM pins WHERE user_id = ?1")?
            .query_map([id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(Some(AuthUser {
            username,
            active,
            pin_hashes,
        }))
    }

    /// Saves terminal locks (a row without failures is removed).
    pub fn save_locks(&self, rows: &[LockRow]) -> Result<()> {
        let tx = self.conn.begin_deferred()?;
        for r in rows {
            if r.failures == 0 {
                tx.execute("DELETE FROM auth_locks WHERE subject = ?1", [&r.subject])?;
            } else {
                tx.execute(
                    "INSERT OR REPLACE INTO auth_locks(subject, failures, locked_until, last_failure)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![r.subject, r.failures, r.locked_until, r.last_failure],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// When a user's terminal lock ends (RFC 3339), while it holds.
    pub fn lock_of(&self, username: &str) -> Result<Option<String>> {
        let until: Option<i64> = self
            .conn
            .query_row(
                "SELECT locked_until FROM auth_locks WHERE subject = ?1",
                [format!("user:{username}")],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        let now = super::unix_now();
        Ok(until.filter(|&u| u > now).map(|u| {
            chrono::DateTime::from_timestamp(u, 0)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default()
        }))
    }

    /// Every saved terminal lock.
    pub fn locks(&self) -> Result<Vec<LockRow>> {
        Ok(self
            .conn
            .prepare("SELECT subject, failures, locked_until, last_failure FROM auth_locks")?
            .query_map((), |r| {
                Ok(LockRow {
                    subject: r.get(0)?,
                    failures: r.get(1)?,
                    locked_until: r.get(2)?,
                    last_failure: r.get(3)?,
                })
            })?
            .collect::<Result<_, _>>()?)
    }
}

fn set_column(db: &impl Sql, id: i64, f: Field, v: Option<&str>) -> Result<()> {
    let col = f.info().column.expect("one-valued fields have a column");
    let r = db.execute(
        &format!("UPDATE users SET {col} = ?2 WHERE id = ?1"),
        params![id, v],
    );
    if let Err(rusqlite::Error::SqliteFailure(e, _)) = &r {
        if e.code == rusqlite::ErrorCode::ConstraintViolation {
            return Err(EditError::Taken {
                what: format!("{} {:?}", f.name(), v.unwrap_or_default()),
                holder: String::new(),
            }
            .into());
        }
    }
    r?;
    if f == Field::Username {
        let v = v.ok_or_else(|| EditError::Invalid("username: a user needs one".into()))?;
        let r = db.execute(
            "UPDATE names SET name = ?2 WHERE user_id = ?1 AND alias = 0",
            params![id, v],
        );
        if r.is_err() {
            return Err(EditError::Taken {
                what: format!("name {v:?}"),
                holder: String::new(),
            }
            .into());
        }
    }
    Ok(())
}

/// Puts a field back to what the sources say: the holder's value, else the best-ranked
/// linked source's that has one. Local cards and aliases go.
fn reset(
    db: &impl Sql,
    id: i64,
    f: Field,
    auth: &Authority,
    cur: &super::run::fields::Current,
    linked: &[(String, bool)],
) -> Result<()> {
    match f {
        Field::Cards => {
            db.execute(
                "DELETE FROM cards WHERE user_id = ?1 AND source_id IS NULL",
                [id],
            )?;
            return Ok(());
        }
        Field::Aliases => {
            db.execute(
                "DELETE FROM names WHERE user_id = ?1 AND alias = 1 AND source_id IS NULL",
                [id],
            )?;
            return Ok(());
        }
        f if f.kind() != Kind::One => {
            return Err(EditError::Invalid(format!("{} cannot be reset", f.name())).into())
        }
        _ => {}
    }
    // Each linked source's last record: the owner's in users, a joiner's in its link.
    let mut said: Vec<(String, bool, i64, UserRecord)> = Vec::new();
    for (sid, name) in &cur.linked {
        let owner = Some(*sid) == cur.owner;
        let json: Option<String> = if owner {
            db.query_row("SELECT record FROM users WHERE id = ?1", [id], |r| r.get(0))?
        } else {
            db.query_row(
                "SELECT record FROM links WHERE user_id = ?1 AND source_id = ?2",
                [id, *sid],
                |r| r.get(0),
            )?
        };
        if let Some(rec) = json.and_then(|j| serde_json::from_str::<UserRecord>(&j).ok()) {
            said.push((name.clone(), owner, *sid, rec));
        }
    }
    said.retain(|(n, owner, _, _)| auth.mode(n, f, *owner) != Mode::Ignore);
    let holder = auth.holder(f, linked);
    said.sort_by_key(|(n, _, _, r)| {
        (
            Some(n.as_str()) != holder,
            r.get(f).owned().is_none(),
            auth.rank(f, n),
        )
    });
    match said.first() {
        Some((_, owner, sid, rec)) => {
            set_column(db, id, f, rec.get(f).owned().as_deref())?;
            set_provenance(db, id, f, (!owner).then_some(Some(*sid)))?;
        }
        None => {
            set_column(db, id, f, None)?;
            db.execute(
                "DELETE FROM provenance WHERE user_id = ?1 AND field = ?2",
                params![id, f.name()],
            )?;
        }
    }
    Ok(())
}
