//! The reconcile engine's decisions, as pure logic: no I/O. The store feeds it staged and
//! existing records and applies what it decides.

use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};

pub use crate::model::UserRecord;

/// How a source entry finds its roster user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PairBy {
    #[default]
    Username,
    PersonalNumber,
    Email,
    /// The source's immutable id (objectGUID, entryUUID, Entra id, CSV `id_column`).
    Anchor,
}

impl PairBy {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "username" => PairBy::Username,
            "personal_number" => PairBy::PersonalNumber,
            "email" => PairBy::Email,
            "anchor" => PairBy::Anchor,
            _ => bail!("pair_by: expected username, personal_number, email or anchor, got {s:?}"),
        })
    }

    /// The pairing key of a record, normalised as it is compared.
    pub fn key(&self, rec: &UserRecord, anchor: &str) -> Option<String> {
        match self {
            PairBy::Username => Some(rec.username.clone()),
            PairBy::PersonalNumber => rec.personal_number.clone(),
            PairBy::Email => rec.email.as_ref().map(|e| e.to_lowercase()),
            PairBy::Anchor => Some(anchor.to_string()),
        }
        .filter(|k| !k.is_empty())
    }

    pub fn name(&self) -> &'static str {
        match self {
            PairBy::Username => "username",
            PairBy::PersonalNumber => "personal number",
            PairBy::Email => "email",
            PairBy::Anchor => "anchor",
        }
    }
}

/// What a full run does to this source's users that are no longer listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnMissing {
    #[default]
    Deactivate,
    Delete,
    Ignore,
}

impl OnMissing {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "deactivate" => OnMissing::Deactivate,
            "delete" => OnMissing::Delete,
            "ignore" => OnMissing::Ignore,
            _ => bail!("on_missing: expected deactivate, delete or ignore, got {s:?}"),
        })
    }
}

/// The deletion-safety threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxDeletions {
    Count(u64),
    Percent(f64),
    /// A percentage that never allows fewer than the count: without it, 10% of a source
    /// under ten users is zero, and one person leaving would abort every run.
    PercentAtLeast(f64, u64),
}

/// The default floor of a percentage limit (`max_deletions_floor`).
pub const DEFAULT_DELETIONS_FLOOR: u64 = 1;

impl Default for MaxDeletions {
    fn default() -> Self {
        MaxDeletions::PercentAtLeast(10.0, DEFAULT_DELETIONS_FLOOR)
    }
}

impl MaxDeletions {
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        let bad =
            || anyhow!("max_deletions: expected a count or a percentage like \"10%\", got {s:?}");
        if let Some(p) = s.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| bad())?;
            if !(0.0..=100.0).contains(&p) {
                return Err(bad());
            }
            Ok(MaxDeletions::Percent(p))
        } else {
            Ok(MaxDeletions::Count(s.parse().map_err(|_| bad())?))
        }
    }

    /// How many removals are allowed out of `total` users of the source.
    pub fn allowed(&self, total: u64) -> u64 {
        match *self {
            MaxDeletions::Count(n) => n,
            MaxDeletions::Percent(p) => (total as f64 * p / 100.0).floor() as u64,
            MaxDeletions::PercentAtLeast(p, n) => MaxDeletions::Percent(p).allowed(total).max(n),
        }
    }

    /// The same limit with `floor` under a percentage (a count is left as it is).
    pub fn with_floor(self, floor: u64) -> Self {
        match self {
            MaxDeletions::Percent(p) | MaxDeletions::PercentAtLeast(p, _) => {
                MaxDeletions::PercentAtLeast(p, floor)
            }
            count => count,
        }
    }
}

impl std::fmt::Display for MaxDeletions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MaxDeletions::Count(n) => write!(f, "{n}"),
            MaxDeletions::Percent(p) => write!(f, "{p}%"),
            MaxDeletions::PercentAtLeast(p, n) => {
                write!(f, "{p}% (max_deletions_floor = {n})")
            }
        }
    }
}

/// Per-source reconcile options.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub pair_by: PairBy,
    pub import_new: bool,
    pub update_existing: bool,
    pub on_missing: OnMissing,
    pub lowercase_usernames: bool,
    pub max_deletions: MaxDeletions,
    /// Per-field authority, when the config uses it (see [`crate::authority`]).
    pub authority: Option<std::sync::Arc<crate::authority::Authority>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pair_by: PairBy::Username,
            import_new: true,
            update_existing: true,
            on_missing: OnMissing::Deactivate,
            lowercase_usernames: false,
            max_deletions: MaxDeletions::default(),
            authority: None,
        }
    }
}

impl UserRecord {
    /// The record as stored (JSON) and a stable hash of it with the source anchor: equal
    /// entries hash equal across runs and builds.
    pub fn to_stored(&self, anchor: &str) -> (String, i64) {
        use sha2::{Digest, Sha256};
        let json = serde_json::to_string(self).expect("records serialise");
        let mut h = Sha256::new();
        h.update(anchor.as_bytes());
        h.update([0]);
        h.update(json.as_bytes());
        let d = h.finalize();
        (json, i64::from_le_bytes(d[..8].try_into().unwrap()))
    }
}

/// The stored user a staged entry paired with.
#[derive(Debug, Clone)]
pub struct Existing {
    pub record: UserRecord,
    /// The source owning the user, by name; None for users no source manages.
    pub source: Option<String>,
}

/// What to do with one staged entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Create,
    /// Changed fields; `reactivate` when the user was inactive and is listed as active again.
    Update {
        fields: Vec<&'static str>,
        reactivate: bool,
        adopt: bool,
    },
    Unchanged,
    /// Not written, not an error (`import_new = false`).
    Skip,
    /// A failed entry.
    Conflict(String),
}

/// Decides what a staged entry does to the user it paired with (if any).
pub fn decide(
    new: &UserRecord,
    existing: Option<&Existing>,
    source: &str,
    opts: &Options,
) -> Action {
    let Some(ex) = existing else {
        return if opts.import_new {
            Action::Create
        } else {
            Action::Skip
        };
    };
    let adopt = match &ex.source {
        Some(s) if s != source => {
            return Action::Conflict(format!(
                "{} {:?} belongs to a user of source '{s}', and a source never takes over \
                 another's users. Leave the user to '{s}' (drop it from this source), give it a \
                 different {} here, remove it from '{s}' with on_missing = \"delete\" so \
                 that this source can create it, or set join = true on this source to \
                 contribute fields to the user",
                opts.pair_by.name(),
                opts.pair_by.key(new, "").unwrap_or_default(),
                opts.pair_by.name()
            ))
        }
        Some(_) => false,
        None => true,
    };
    let reactivate = !ex.record.active && new.active;
    let mut fields = if opts.update_existing || adopt {
        new.changed_fields(&ex.record)
    } else {
        Vec::new()
    };
    if ex.record.active && !new.active && opts.update_existing {
        fields.push("active");
    }
    if fields.is_empty() && !reactivate && !adopt {
        return Action::Unchanged;
    }
    Action::Update {
        fields,
        reactivate,
        adopt,
    }
}

/// Checks the deletion guard. `removals` is how many users the run would deactivate or
/// delete, out of `total` active users of the source.
pub fn deletion_guard(
    limit: MaxDeletions,
    total: u64,
    removals: u64,
    force: bool,
) -> Result<(), String> {
    let allowed = limit.allowed(total);
    if removals > allowed && !force {
        return Err(format!(
            "aborted: the run would deactivate or delete {removals} of {total} users, more than \
             max_deletions = {limit} allows ({allowed}); nothing was changed. Check the source, \
             or run `roster sync --force` if this is intended"
        ));
    }
    Ok(())
}

/// Splits MyQ group syntax: branches separated by `,`, levels by `|`. Returns full paths
/// (`A|B`) with empty levels dropped.
pub fn parse_group_paths(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|branch| {
            branch
                .split('|')
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("|")
        })
        .filter(|p| !p.is_empty())
        .collect()
}

/// A path and its ancestors, root first: `A|B|C` → `A`, `A|B`, `A|B|C`.
pub fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('|')
        .map(|(i, _)| &path[..i])
        .chain(std::iter::once(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserRecord {
        UserRecord {
            username: name.into(),
            active: true,
            ..Default::default()
        }
    }

    fn existing(rec: UserRecord, source: Option<&str>) -> Existing {
        Existing {
            record: rec,
            source: source.map(String::from),
        }
    }

    #[test]
    fn new_user_is_created_unless_import_new_is_off() {
        let o = Options::default();
        assert_eq!(decide(&user("a"), None, "hr", &o), Action::Create);
        let o = Options {
            import_new: false,
            ..o
        };
        assert_eq!(decide(&user("a"), None, "hr", &o), Action::Skip);
    }

    #[test]
    fn unchanged_user_is_unchanged() {
        let o = Options::default();
        let ex = existing(user("a"), Some("hr"));
        assert_eq!(decide(&user("a"), Some(&ex), "hr", &o), Action::Unchanged);
    }

    #[test]
    fn update_lists_changed_fields() {
        let o = Options::default();
        let ex = existing(user("a"), Some("hr"));
        let mut new = user("a");
        new.email = Some("a@x".into());
        new.cards = vec!["1".into()];
        assert_eq!(
            decide(&new, Some(&ex), "hr", &o),
            Action::Update {
                fields: vec!["email", "cards"],
                reactivate: false,
                adopt: false
            }
        );
        let o = Options {
            update_existing: false,
            ..o
        };
        assert_eq!(decide(&new, Some(&ex), "hr", &o), Action::Unchanged);
    }

    #[test]
    fn inactive_user_listed_again_is_reactivated() {
        let o = Options {
            update_existing: false,
            ..Options::default()
        };
        let mut old = user("a");
        old.active = false;
        let ex = existing(old, Some("hr"));
        assert_eq!(
            decide(&user("a"), Some(&ex), "hr", &o),
            Action::Update {
                fields: vec![],
                reactivate: true,
                adopt: false
            }
        );
    }

    #[test]
    fn user_of_another_source_is_a_conflict() {
        let ex = existing(user("a"), Some("ldap"));
        let a = decide(&user("a"), Some(&ex), "hr", &Options::default());
        assert!(matches!(a, Action::Conflict(r) if r.contains("ldap")));
    }

    #[test]
    fn unmanaged_user_is_adopted() {
        let ex = existing(user("a"), None);
        assert_eq!(
            decide(&user("a"), Some(&ex), "hr", &Options::default()),
            Action::Update {
                fields: vec![],
                reactivate: false,
                adopt: true
            }
        );
    }

    #[test]
    fn source_can_mark_a_user_inactive() {
        let ex = existing(user("a"), Some("hr"));
        let mut new = user("a");
        new.active = false;
        assert_eq!(
            decide(&new, Some(&ex), "hr", &Options::default()),
            Action::Update {
                fields: vec!["active"],
                reactivate: false,
                adopt: false
            }
        );
    }

    #[test]
    fn deletion_guard_counts_and_percentages() {
        assert!(deletion_guard(MaxDeletions::Percent(10.0), 100, 10, false).is_ok());
        assert!(deletion_guard(MaxDeletions::Percent(10.0), 100, 11, false).is_err());
        assert!(deletion_guard(MaxDeletions::Percent(10.0), 100, 11, true).is_ok());
        assert!(deletion_guard(MaxDeletions::Count(0), 5, 1, false).is_err());
        assert!(deletion_guard(MaxDeletions::Count(3), 5, 3, false).is_ok());
        assert_eq!(
            MaxDeletions::parse("25%").unwrap(),
            MaxDeletions::Percent(25.0)
        );
        assert_eq!(MaxDeletions::parse("7").unwrap(), MaxDeletions::Count(7));
        assert!(MaxDeletions::parse("ten").is_err());
        assert!(MaxDeletions::parse("150%").is_err());
    }

    #[test]
    fn normalise_sorts_dedupes_and_lowercases() {
        let mut r = user("Ann");
        r.aliases = vec!["B".into(), "ann".into(), "A".into(), "B".into()];
        r.normalise(true);
        assert_eq!(r.username, "ann");
        assert_eq!(r.aliases, vec!["a", "b"]);
    }

    #[test]
    fn pairing_keys() {
        let mut r = user("a");
        r.email = Some("A@X.test".into());
        assert_eq!(PairBy::Email.key(&r, "id"), Some("a@x.test".into()));
        assert_eq!(PairBy::PersonalNumber.key(&r, "id"), None);
        assert_eq!(PairBy::Anchor.key(&r, "id"), Some("id".into()));
    }

    #[test]
    fn group_syntax() {
        assert_eq!(
            parse_group_paths("Activities|Outdoor|Swimming, Staff ,,|x|"),
            vec!["Activities|Outdoor|Swimming", "Staff", "x"]
        );
        assert_eq!(
            ancestors("A|B|C").collect::<Vec<_>>(),
            vec!["A", "A|B", "A|B|C"]
        );
    }

    #[test]
    fn content_hash_is_stable_and_sensitive() {
        let a = user("a");
        assert_eq!(a.to_stored("x").1, user("a").to_stored("x").1);
        assert_ne!(a.to_stored("x").1, user("b").to_stored("x").1);
        assert_ne!(a.to_stored("x").1, a.to_stored("y").1);
    }
}
