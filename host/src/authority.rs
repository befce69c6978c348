//! Per-field authority when several sources, and local edits, share one user: who may set
//! which field, and when. Pure logic: the store feeds it a user's current values and one
//! source's entry and applies the fields it decides.
//!
//! A user's *owner* is the source that created it; other sources *join* it. Each source has
//! a mode per field (`[sources.NAME.fields]`):
//! - `sync`: the source's value wins on every run (the owner's default);
//! - `create`: set when the source's link is made (the user created or joined), then left to
//!   local edits;
//! - `fill`: set while the field is empty (a joiner's default for one-valued fields);
//! - `merge`: for cards, aliases and groups: the source contributes its values and removes
//!   only those it contributed (a joiner's default for them);
//! - `ignore`: never set.
//!
//! Cards, aliases and groups are always per-contributor sets: `sync` and `merge` both replace
//! the source's own values and keep everyone else's; `sync` also refuses local edits.

use crate::model::{Field, Kind, UserRecord, Value};
use anyhow::{bail, Result};
use serde::Deserialize;

/// A source's mode for one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Sync,
    Create,
    Fill,
    Merge,
    Ignore,
}

impl Mode {
    pub fn parse(s: &str) -> Result<Mode> {
        Ok(match s {
            "sync" => Mode::Sync,
            "create" => Mode::Create,
            "fill" => Mode::Fill,
            "merge" => Mode::Merge,
            "ignore" => Mode::Ignore,
            _ => bail!("expected sync, create, fill, merge or ignore, got {s:?}"),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Sync => "sync",
            Mode::Create => "create",
            Mode::Fill => "fill",
            Mode::Merge => "merge",
            Mode::Ignore => "ignore",
        }
    }
}

/// Fields whose values each contributor keeps apart.
pub fn is_merged(f: Field) -> bool {
    matches!(f, Field::Aliases | Field::Cards | Field::Groups)
}

/// Checks a configured mode for a field: `merge` only for merged fields, and `active`
/// follows its owner alone.
pub fn check_mode(f: Field, m: Mode) -> Result<()> {
    if f == Field::Active {
        bail!("`active` follows the owner's listing and on_missing; it has no mode");
    }
    if m == Mode::Merge && !is_merged(f) {
        bail!(
            "`merge` is for cards, aliases and groups; {} holds one value (use sync, create, fill or ignore)",
            f.name()
        );
    }
    Ok(())
}

/// One source's rules.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SourceRules {
    pub name: String,
    /// Attaches to users other sources own (`join = true`).
    pub join: bool,
    /// Never creates users (`create_users = false`): a pure contributor, which keeps a
    /// joiner's defaults even when it comes to own a user.
    pub contributor: bool,
    /// Explicit modes (`[sources.NAME.fields]`).
    pub modes: Vec<(Field, Mode)>,
}

/// Every source's rules and the `[authority]` rankings: the config's view of who owns what.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Authority {
    /// In config order.
    pub sources: Vec<SourceRules>,
    /// `[authority] FIELD = ["ad", "badges"]`.
    pub ranks: Vec<(Field, Vec<String>)>,
}

/// Who set a field's current value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetBy {
    Source(String),
    Local,
}

impl std::fmt::Display for SetBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetBy::Source(s) => write!(f, "source '{s}'"),
            SetBy::Local => f.write_str("a local edit"),
        }
    }
}

/// What one entry of one source does to a user's fields.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decision {
    /// Fields the source sets (for merged fields: replaces its own values).
    pub take: Vec<Field>,
    /// Decisions that differ from a plain overwrite, for dry runs and the run log
    /// (`email: kept a local edit; ad now says x@y`).
    pub notes: Vec<String>,
}

impl Authority {
    fn rules(&self, source: &str) -> Option<&SourceRules> {
        self.sources.iter().find(|s| s.name == source)
    }

    /// The mode `[sources.NAME.fields]` sets, if it does.
    pub fn explicit(&self, source: &str, f: Field) -> Option<Mode> {
        self.rules(source)
            .and_then(|r| r.modes.iter().find(|(g, _)| *g == f))
            .map(|(_, m)| *m)
    }

    /// The source's mode for a field, given whether it owns the user.
    pub fn mode(&self, source: &str, f: Field, owner: bool) -> Mode {
        let owner = owner && !self.rules(source).is_some_and(|r| r.contributor);
        match self.explicit(source, f) {
            Some(m) => m,
            None if owner => Mode::Sync,
            None if matches!(f, Field::Username | Field::Active) => Mode::Ignore,
            None if is_merged(f) => Mode::Merge,
            None => Mode::Fill,
        }
    }

    /// Whether the source may join users others own.
    pub fn joins(&self, source: &str) -> bool {
        self.rules(source).is_some_and(|r| r.join)
    }

    /// A source's rank for a field: its place in `[authority]`, else after those, in config
    /// order. Lower wins.
    pub fn rank(&self, f: Field, source: &str) -> usize {
        let listed = (self.ranks.iter().find(|(g, _)| *g == f))
            .and_then(|(_, l)| l.iter().position(|s| s == source));
        let order = (self.sources.iter().position(|s| s.name == source)).unwrap_or(usize::MAX / 2);
        listed.unwrap_or(1000 + order)
    }

    /// The source holding the field in `sync` mode among `linked` (name, owns the user), the
    /// highest ranked: the field is read-only for local edits while one does.
    pub fn holder<'a>(&self, f: Field, linked: &'a [(String, bool)]) -> Option<&'a str> {
        (linked.iter())
            .filter(|(s, owner)| self.mode(s, f, *owner) == Mode::Sync)
            .min_by_key(|(s, _)| self.rank(f, s))
            .map(|(s, _)| s.as_str())
    }

    /// Decides which fields of `incoming` (an entry of `source`) a user takes. `current` is
    /// the user as stored, `linked` every source linked to it (with this one), `link_new`
    /// whether this entry makes the source's link (creates or joins the user), `set_by`
    /// who set a field's current value.
    #[allow(clippy::too_many_arguments)]
    pub fn decide(
        &self,
        source: &str,
        owner: bool,
        link_new: bool,
        current: &UserRecord,
        incoming: &UserRecord,
        linked: &[(String, bool)],
        set_by: &dyn Fn(Field) -> SetBy,
    ) -> Decision {
        let mut d = Decision::default();
        for f in Field::ALL {
            if f == Field::Active {
                continue;
            }
            let mode = self.mode(source, f, owner);
            let new = incoming.get(f);
            let old = current.get(f);
            let empty = match old {
                Value::One(v) => v.is_none_or(str::is_empty),
                Value::Many(v) => v.is_empty(),
                Value::Flag(_) => false,
            };
            // A source that says nothing does not clear what others set.
            let says_nothing = match new {
                Value::One(v) => v.is_none_or(str::is_empty),
                Value::Many(v) => v.is_empty() && !is_merged(f),
                Value::Flag(_) => false,
            };
            if says_nothing && set_by(f) != SetBy::Source(source.to_string()) {
                continue;
            }
            let take = match mode {
                Mode::Ignore => false,
                Mode::Create => link_new,
                Mode::Fill => empty || (link_new && is_merged(f)),
                Mode::Merge => true,
                // The value stays when a sync source that outranks this one set it.
                Mode::Sync => match set_by(f) {
                    SetBy::Source(h)
                        if !empty
                            && h != source
                            && (linked.iter()).any(|(s, owner)| {
                                *s == h && self.mode(s, f, *owner) == Mode::Sync
                            })
                            && self.rank(f, &h) < self.rank(f, source) =>
                    {
                        if differs(old, new, f) {
                            d.notes.push(format!(
                                "{}: kept the value of source '{h}', which [authority] ranks first; {source} says {}",
                                f.name(),
                                show(new, f)
                            ));
                        }
                        continue;
                    }
                    _ => true,
                },
            };
            if take {
                d.take.push(f);
            } else if mode != Mode::Ignore && !is_merged(f) && differs(old, new, f) {
                d.notes.push(format!(
                    "{}: kept the value set by {} ({} mode); {source} now says {}",
                    f.name(),
                    set_by(f),
                    mode.as_str(),
                    show(new, f)
                ));
            }
        }
        d
    }
}

/// Whether a source's value would change the field: an empty value never counts (a source
/// that says nothing does not clear what others set).
fn differs(old: Value<'_>, new: Value<'_>, f: Field) -> bool {
    let empty = match new {
        Value::One(v) => v.is_none_or(str::is_empty),
        Value::Many(v) => v.is_empty(),
        Value::Flag(_) => true,
    };
    f.kind() != Kind::Flag && !empty && old != new
}

/// A value for a note; PINs are never shown.
fn show(v: Value<'_>, f: Field) -> String {
    match v {
        _ if f == Field::Pins => "other PINs".into(),
        Value::One(Some(s)) => s.to_string(),
        Value::One(None) => "nothing".into(),
        Value::Many([]) => "nothing".into(),
        Value::Many(l) => l.join(", "),
        Value::Flag(b) => b.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(email: Option<&str>, cards: &[&str]) -> UserRecord {
        UserRecord {
            username: "ann".into(),
            email: email.map(String::from),
            cards: cards.iter().map(|c| c.to_string()).collect(),
            active: true,
            ..Default::default()
        }
    }

    fn auth() -> Authority {
        Authority {
            sources: vec![
                SourceRules {
                    name: "ad".into(),
                    join: false,
                    contributor: false,
                    modes: vec![(Field::Email, Mode::Create)],
                },
                SourceRules {
                    name: "badges".into(),
                    join: true,
                    contributor: true,
                    modes: vec![],
                },
                SourceRules {
                    name: "hr".into(),
                    join: true,
                    contributor: false,
                    modes: vec![(Field::Phone, Mode::Sync)],
                },
            ],
            ranks: vec![],
        }
    }

    #[test]
    fn defaults_owner_syncs_joiner_fills_and_merges() {
        let a = auth();
        assert_eq!(a.mode("ad", Field::FullName, true), Mode::Sync);
        assert_eq!(a.mode("ad", Field::Email, true), Mode::Create);
        assert_eq!(a.mode("badges", Field::FullName, false), Mode::Fill);
        assert_eq!(a.mode("badges", Field::Cards, false), Mode::Merge);
        assert_eq!(a.mode("badges", Field::Username, false), Mode::Ignore);
        // A pure contributor that comes to own a user keeps a joiner's defaults.
        assert_eq!(a.mode("badges", Field::Username, true), Mode::Ignore);
        assert_eq!(a.mode("badges", Field::FullName, true), Mode::Fill);
        assert_eq!(a.mode("hr", Field::FullName, true), Mode::Sync);
        assert!(check_mode(Field::Email, Mode::Merge).is_err());
        assert!(check_mode(Field::Active, Mode::Sync).is_err());
        assert!(check_mode(Field::Cards, Mode::Merge).is_ok());
    }

    #[test]
    fn a_create_mode_field_is_set_once_then_kept_with_a_note() {
        let a = auth();
        let linked = [("ad".to_string(), true)];
        let local = |_| SetBy::Local;
        let d = a.decide(
            "ad",
            true,
            true,
            &UserRecord::default(),
            &rec(Some("a@x"), &[]),
            &linked,
            &local,
        );
        assert!(d.take.contains(&Field::Email));
        let d = a.decide(
            "ad",
            true,
            false,
            &rec(Some("mine@x"), &[]),
            &rec(Some("a@y"), &[]),
            &linked,
            &local,
        );
        assert!(!d.take.contains(&Field::Email));
        assert!(d.take.contains(&Field::Username));
        // A field the source says nothing of is left to whoever set it.
        assert!(!d.take.contains(&Field::FullName));
        assert_eq!(
            d.notes,
            ["email: kept the value set by a local edit (create mode); ad now says a@y"]
        );
    }

    #[test]
    fn a_joiner_fills_empty_fields_and_merges_cards() {
        let a = auth();
        let linked = [("ad".to_string(), true), ("badges".to_string(), false)];
        let by_ad = |_| SetBy::Source("ad".into());
        let d = a.decide(
            "badges",
            false,
            true,
            &rec(Some("a@x"), &[]),
            &rec(Some("b@x"), &["C1"]),
            &linked,
            &by_ad,
        );
        // Its own cards, aliases and groups (none yet); not the owner's email.
        assert_eq!(d.take, [Field::Aliases, Field::Cards, Field::Groups]);
        assert_eq!(d.notes.len(), 1, "{:?}", d.notes);
        let d = a.decide(
            "badges",
            false,
            false,
            &rec(None, &["C1"]),
            &rec(Some("b@x"), &["C2"]),
            &linked,
            &by_ad,
        );
        assert_eq!(
            d.take,
            [Field::Email, Field::Aliases, Field::Cards, Field::Groups]
        );
    }

    #[test]
    fn two_sync_sources_take_the_ranked_first_else_config_order() {
        let mut a = auth();
        let linked = [("ad".to_string(), true), ("hr".to_string(), false)];
        let by = |_| SetBy::Source("ad".into());
        let mut cur = rec(None, &[]);
        cur.phone = Some("1".into());
        let mut new = cur.clone();
        new.phone = Some("2".into());
        assert_eq!(a.holder(Field::Phone, &linked), Some("ad"));
        let d = a.decide("hr", false, false, &cur, &new, &linked, &by);
        assert!(!d.take.contains(&Field::Phone) && d.notes[0].starts_with("phone: kept"));
        a.ranks = vec![(Field::Phone, vec!["hr".into(), "ad".into()])];
        assert_eq!(a.holder(Field::Phone, &linked), Some("hr"));
        let d = a.decide("hr", false, false, &cur, &new, &linked, &by);
        assert!(d.take.contains(&Field::Phone));
        let by_hr = |f| match f {
            Field::Phone => SetBy::Source("hr".into()),
            _ => SetBy::Source("ad".into()),
        };
        let d = a.decide("ad", true, false, &new, &cur, &linked, &by_hr);
        assert!(!d.take.contains(&Field::Phone));
        // An empty field is anyone's to fill.
        let d = a.decide("ad", true, false, &rec(None, &[]), &cur, &linked, &by_hr);
        assert!(d.take.contains(&Field::Phone));
    }
}
