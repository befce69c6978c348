//! Groups: group objects placed in the tree with the memberships their source lists, and
//! groups emptied by the run pruned.

use super::Run;
use crate::reconcile::{self, OnMissing};
use anyhow::Result;
use rusqlite::{params, OptionalExtension};
use std::collections::HashMap;

/// Group path → id, a cache of groups met in this run. Cleared whenever a rollback may have
/// removed groups it holds.
pub(super) type GroupIds = HashMap<String, i64>;

impl Run<'_> {
    /// Group objects: places them in the tree, keeps their memberships equal to what the
    /// source lists, and removes groups the source no longer has (unless `on_missing` is
    /// `ignore`). A staged group's member list is taken as complete.
    pub(super) fn apply_groups(&mut self, full: bool) -> Result<()> {
        let staged: Vec<(String, String, Option<String>)> = self
            .tx
            .prepare("SELECT anchor, name, parent FROM temp.stage_groups")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        let removing = self.opts.on_missing != OnMissing::Ignore;
        let any_edges: bool =
            self.tx
                .query_row("SELECT EXISTS (SELECT 1 FROM temp.edges)", [], |r| r.get(0))?;
        if staged.is_empty() && !any_edges && !full {
            if removing {
                self.tx.execute(
                    "DELETE FROM groups WHERE source_id = ?1 AND anchor IN (SELECT anchor FROM temp.removals WHERE kind = 'group')",
                    [self.source_id],
                )?;
            }
            return Ok(());
        }
        // Tree: explicit parent, else the first staged group that lists this one as member.
        let mut groups: HashMap<String, (String, Option<String>)> =
            staged.into_iter().map(|(a, n, p)| (a, (n, p))).collect();
        let nesting: Vec<(String, String)> = self
            .tx
            .prepare(
                "SELECT e.grp, e.member FROM temp.edges e
                 JOIN temp.stage_groups p ON p.anchor = e.grp JOIN temp.stage_groups c ON c.anchor = e.member
                 ORDER BY e.grp, e.member",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (parent, child) in nesting {
            if parent != child {
                if let Some((_, p @ None)) = groups.get_mut(&child) {
                    *p = Some(parent);
                }
            }
        }
        let mut paths: Vec<(String, String)> = Vec::with_capacity(groups.len());
        for anchor in groups.keys() {
            let mut chain = vec![groups[anchor].0.clone()];
            let mut seen = vec![anchor.as_str()];
            let mut at = anchor.as_str();
            // Walk up; a cycle or an unknown parent ends the walk at a root.
            while let Some(p) = groups[at]
                .1
                .as_deref()
                .filter(|p| groups.contains_key(*p) && !seen.contains(p))
            {
                chain.push(groups[p].0.clone());
                seen.push(p);
                at = p;
            }
            chain.reverse();
            paths.push((anchor.clone(), chain.join("|")));
        }
        paths.sort_by(|a, b| a.1.cmp(&b.1));
        // A group that moved or was renamed is replaced (its old place and memberships go).
        for (anchor, path) in &paths {
            self.tx.execute(
                "DELETE FROM groups WHERE source_id = ?1 AND anchor = ?2 AND path != ?3",
                params![self.source_id, anchor, path],
            )?;
        }
        self.group_ids.clear();
        for (anchor, path) in &paths {
            let id = ensure_group(&self.tx, self.source_id, path, &mut self.group_ids)?;
            self.tx.execute(
                "UPDATE groups SET source_id = ?1, anchor = ?2 WHERE id = ?3",
                params![self.source_id, anchor, id],
            )?;
        }
        self.tx.execute_batch(
            "DROP TABLE IF EXISTS temp.gmap; DROP TABLE IF EXISTS temp.desired;
             CREATE TEMP TABLE gmap(anchor TEXT PRIMARY KEY, group_id INTEGER NOT NULL) WITHOUT ROWID;
             CREATE TEMP TABLE desired(group_id INTEGER, user_id INTEGER, PRIMARY KEY(group_id, user_id)) WITHOUT ROWID;",
        )?;
        self.tx.execute(
            "INSERT INTO temp.gmap SELECT anchor, id FROM groups WHERE source_id = ?1 AND anchor IS NOT NULL",
            [self.source_id],
        )?;
        self.tx.execute(
            "INSERT OR IGNORE INTO temp.desired SELECT g.group_id, l.user_id FROM temp.edges e
             JOIN temp.gmap g ON g.anchor = e.grp JOIN links l ON l.source_id = ?1 AND l.anchor = e.member",
            [self.source_id],
        )?;
        self.tx.execute(
            "INSERT OR IGNORE INTO memberships(group_id, user_id, source_id) SELECT group_id, user_id, ?1 FROM temp.desired",
            [self.source_id],
        )?;
        self.tx.execute(
            "DELETE FROM memberships WHERE source_id = ?1
               AND group_id IN (SELECT g.group_id FROM temp.gmap g JOIN temp.stage_groups s ON s.anchor = g.anchor)
               AND NOT EXISTS (SELECT 1 FROM temp.desired d WHERE d.group_id = memberships.group_id AND d.user_id = memberships.user_id)",
            [self.source_id],
        )?;
        if removing {
            let gone = if full {
                "anchor NOT IN (SELECT anchor FROM temp.stage_groups)"
            } else {
                "anchor IN (SELECT anchor FROM temp.removals WHERE kind = 'group')"
            };
            self.tx.execute(
                &format!(
                    "DELETE FROM groups WHERE source_id = ?1 AND anchor IS NOT NULL AND {gone}"
                ),
                [self.source_id],
            )?;
        }
        self.group_ids.clear();
        Ok(())
    }

    /// Groups of this source with no active member anywhere in their subtree vanish.
    pub(super) fn prune_groups(&mut self) -> Result<()> {
        self.tx.execute(
            "DELETE FROM groups WHERE source_id = ?1 AND anchor IS NULL AND NOT EXISTS (
                 SELECT 1 FROM memberships m JOIN groups g ON g.id = m.group_id JOIN users u ON u.id = m.user_id
                 WHERE u.active = 1 AND (g.id = groups.id OR g.path LIKE replace(replace(groups.path, '%', '\\%'), '_', '\\_') || '|%' ESCAPE '\\'))",
            [self.source_id],
        )?;
        Ok(())
    }
}

/// The id of a group path, creating it and its ancestors as needed.
pub(super) fn ensure_group(
    db: &rusqlite::Connection,
    source_id: i64,
    path: &str,
    cache: &mut GroupIds,
) -> Result<i64> {
    if let Some(id) = cache.get(path) {
        return Ok(*id);
    }
    let mut parent: Option<i64> = None;
    for p in reconcile::ancestors(path) {
        let id = match cache.get(p) {
            Some(id) => *id,
            None => {
                let found: Option<i64> = db
                    .prepare_cached("SELECT id FROM groups WHERE path = ?1")?
                    .query_row([p], |r| r.get(0))
                    .optional()?;
                let id = match found {
                    Some(id) => id,
                    None => {
                        let name = p.rsplit('|').next().unwrap_or(p);
                        db.prepare_cached(
                            "INSERT INTO groups(path, name, parent_id, source_id) VALUES (?1, ?2, ?3, ?4)",
                        )?
                        .execute(params![p, name, parent, source_id])?;
                        db.last_insert_rowid()
                    }
                };
                cache.insert(p.to_string(), id);
                id
            }
        };
        parent = Some(id);
    }
    Ok(parent.expect("a path has at least one level"))
}
