//! Pushed writes: an identity provider's SCIM write into a `push = "scim"` source is a delta
//! run of that source with one entry, through the same mapping (templates, limits,
//! `lowercase_usernames`), staging and reconcile as a sync, recorded with its events and
//! notifications. The service speaks SCIM; this knows nothing of HTTP.

use crate::config::{Config, SourceConfig};
use crate::reconcile::OnMissing;
use crate::runtime::SourceObject;
use crate::session;
use crate::store::{Outcome, Store};
use anyhow::Result;

/// One write.
#[derive(Debug, Clone)]
pub enum PushOp {
    /// Create or update the user with this anchor. `create_only` refuses a user that
    /// exists already (by anchor, or by the mapped username or an alias).
    Upsert {
        anchor: String,
        object: SourceObject,
        create_only: bool,
    },
    /// The provider deleted the user: the source's `on_missing` applies.
    Remove { anchor: String },
    /// The provider changed the user's externalId: the link follows (no run; nothing else
    /// changes).
    Relink { from: String, to: String },
    /// Create or replace the group with this anchor: its name and complete member list (the
    /// members' anchors in this source).
    Group {
        anchor: String,
        name: String,
        members: Vec<String>,
        create_only: bool,
    },
    /// The provider deleted the group.
    RemoveGroup { anchor: String },
    /// The provider changed the group's externalId.
    RelinkGroup { from: String, to: String },
}

/// Why a write was refused before it ran: nothing was written, not even a run.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The entry fails the source's mapping or a field's limits.
    #[error("{0}")]
    Invalid(String),
    /// The user exists already (a create).
    #[error("{0}")]
    Exists(String),
}

/// A write that ran.
#[derive(Debug)]
pub struct Pushed {
    /// None for a relink, which is no run.
    pub outcome: Option<Outcome>,
    /// The user the anchor is linked to now (None after a deletion or a failed entry).
    pub user_id: Option<i64>,
    /// For a group write, the group the anchor names now.
    pub group_id: Option<i64>,
}

/// Applies one write to `src` (a push source). Errors are [`Refused`], a busy source
/// ([`crate::store::Busy`]) or the store's.
pub fn push(cfg: &Config, store: &mut Store, src: &SourceConfig, op: PushOp) -> Result<Pushed> {
    let anchor = match &op {
        PushOp::Upsert { anchor, .. } | PushOp::Remove { anchor } => anchor.clone(),
        PushOp::Relink { from, to } => {
            if store.linked_user(&src.name, to)?.is_some() {
                return Err(Refused::Exists(format!(
                    "a user with externalId {to:?} exists already"
                ))
                .into());
            }
            store.relink(&src.name, from, to)?;
            let user_id = store.linked_user(&src.name, to)?;
            return Ok(Pushed {
                outcome: None,
                user_id,
                group_id: None,
            });
        }
        PushOp::RelinkGroup { from, to } => {
            if store.group_by_anchor(&src.name, to)?.is_some() {
                return Err(Refused::Exists(format!(
                    "a group with externalId {to:?} exists already"
                ))
                .into());
            }
            store.relink_group(&src.name, from, to)?;
            let group_id = store.group_by_anchor(&src.name, to)?;
            return Ok(Pushed {
                outcome: None,
                user_id: None,
                group_id,
            });
        }
        PushOp::Group { .. } | PushOp::RemoveGroup { .. } => {
            return push_group(cfg, store, src, op)
        }
    };
    // Only user writes map (relinks and group writes returned above). A pushed user is
    // found by its anchor (externalId), so a renamed userName is the same user; an admin
    // may still set pair_by.
    let defaults = [("pair_by".to_string(), "\"anchor\"".to_string())];
    let (opts, mapper) = session::mapping(src, &defaults, store.pin_key()?)?;
    let on_missing = opts.on_missing;
    let mut staged = None;
    if let PushOp::Upsert {
        object,
        create_only,
        ..
    } = &op
    {
        let mapped = mapper.map(object).map_err(Refused::Invalid)?;
        if *create_only {
            if store.linked_user(&src.name, &anchor)?.is_some() {
                return Err(Refused::Exists(format!(
                    "a user with externalId {anchor:?} exists already"
                ))
                .into());
            }
            // A joining push source attaches to the user instead (per-field authority).
            if !src.join && store.user(&mapped.record.username)?.is_some() {
                return Err(Refused::Exists(format!(
                    "userName {:?} is taken",
                    mapped.record.username
                ))
                .into());
            }
        }
        // `active = false` is the provider's soft delete (Entra's, before a DELETE days
        // later): it deactivates, unless on_missing = "ignore" keeps pushed users active.
        let mut m = mapped;
        if !m.record.active && on_missing == OnMissing::Ignore {
            m.record.active = true;
        }
        staged = Some((mapper.raw_hash(object), m));
    }
    let mut run = store.begin_run(&src.name, opts, false)?;
    if let Some(hook) = crate::notify::RunHook::for_source(cfg, src) {
        run.notify_with(hook);
    }
    let locator = format!("SCIM {anchor}");
    match staged {
        Some((raw, m)) => run.stage(&locator, &anchor, raw, m)?,
        None => run.stage_removal("user", &anchor)?,
    }
    let outcome = run.finish(false, None, Vec::new(), false)?;
    let user_id = store.linked_user(&src.name, &anchor)?;
    Ok(Pushed {
        outcome: Some(outcome),
        user_id,
        group_id: None,
    })
}

fn push_group(cfg: &Config, store: &mut Store, src: &SourceConfig, op: PushOp) -> Result<Pushed> {
    let (opts, _) = session::mapping(src, &[], store.pin_key()?)?;
    let anchor = match &op {
        PushOp::Group {
            anchor,
            name,
            create_only: true,
            ..
        } => {
            if store.group_by_anchor(&src.name, anchor)?.is_some() {
                return Err(Refused::Exists(format!(
                    "a group with externalId {anchor:?} exists already"
                ))
                .into());
            }
            if store.group_by_path(&name.replace('|', "/"))?.is_some() {
                return Err(Refused::Exists(format!("displayName {name:?} is taken")).into());
            }
            anchor.clone()
        }
        PushOp::Group { anchor, .. } | PushOp::RemoveGroup { anchor } => anchor.clone(),
        _ => unreachable!("a group write"),
    };
    let mut run = store.begin_run(&src.name, opts, false)?;
    if let Some(hook) = crate::notify::RunHook::for_source(cfg, src) {
        run.notify_with(hook);
    }
    match &op {
        PushOp::Group { name, members, .. } => {
            run.stage_group(&format!("SCIM group {anchor}"), &anchor, name, None)?;
            run.stage_edges(&anchor, &[], members)?;
        }
        _ => run.stage_removal("group", &anchor)?,
    }
    let outcome = run.finish(false, None, Vec::new(), false)?;
    let group_id = store.group_by_anchor(&src.name, &anchor)?;
    Ok(Pushed {
        outcome: Some(outcome),
        user_id: None,
        group_id,
    })
}
