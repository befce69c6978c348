//! Groups: group objects placed in the tree with the memberships their source lists, and
//! groups emptied by the run pruned.

use super::Run;
use crate::reconcile::{self, OnMissing};
use crate::store::db::Sql;
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
            .query_map((), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        let removing = self.opts.on_missing != OnMissing::Ignore;
        let any_edges: bool =
            self.tx
                .query_row("SELECT EXISTS (SELECT 1 FROM temp.edges)", (), |r| r.get(0))?;
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
        let groups: HashMap<String, (String, Option<String>)> =
            staged.into_iter().map(|(a, n, p)| (a, (n, p))).collect();
        let nesting: Vec<(String, String)> = self
            .tx
            .prepare(
                "SELECT e.grp, e.member FROM temp.edges e
                 JOIN temp.stage_groups p ON p.anchor = e.grp JOIN temp.stage_groups c ON c.anchor = e.member
                 ORDER BY e.grp, e.member",
            )?
            .query_map((), |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let paths = crate::group_tree::paths(groups, nesting);
        // A group that moved or was renamed keeps its id (SCIM clients and the API hold it)
        // when its new place is free and it carries no subgroups; else it is replaced (its
        // old place and memberships go).
        self.group_ids.clear();
        for (anchor, path) in &paths {
            let moved: Option<i64> = self
                .tx
                .query_row(
                    "SELECT g.id FROM groups g WHERE g.source_id = ?1 AND g.anchor = ?2 AND g.path != ?3
                       AND NOT EXISTS (SELECT 1 FROM groups t WHERE t.path = ?3)
                       AND NOT EXISTS (SELECT 1 FROM groups c WHERE c.parent_id = g.id)",
                    params![self.source_id, anchor, path],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(id) = moved {
                let parent = match path.rsplit_once('|') {
                    Some((up, _)) => Some(ensure_group(
                        &self.tx,
                        self.source_id,
                        up,
                        &mut self.group_ids,
                    )?),
                    None => None,
                };
                let name = path.rsplit('|').next().unwrap_or(path);
                self.tx.execute(
                    "UPDATE groups SET path = ?1, name = ?2, parent_id = ?3 WHERE id = ?4",
                    params![path, name, parent, id],
                )?;
                continue;
            }
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
    ///
    /// Set-wise: the groups that hold an active member, then their ancestors up the
    /// `parent_id` tree (each visited once), are kept; the rest go. A child's path is always
    /// its parent's path and one level, so this tree is the tree of paths.
    pub(super) fn prune_groups(&mut self) -> Result<()> {
        let t = std::time::Instant::now();
        self.tx.execute(
            "WITH RECURSIVE keep(id) AS (
                 SELECT g.id FROM groups g WHERE EXISTS (
                     SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id
                     WHERE m.group_id = g.id AND u.active = 1)
                 UNION
                 SELECT g.parent_id FROM keep k JOIN groups g ON g.id = k.id
                 WHERE g.parent_id IS NOT NULL)
             DELETE FROM groups WHERE source_id = ?1 AND anchor IS NULL
                 AND id NOT IN (SELECT id FROM keep)",
            [self.source_id],
        )?;
        tracing::debug!("groups pruned in {:?}", t.elapsed());
        Ok(())
    }
}

/// The id of a group path, creating it and its ancestors as needed.
pub(super) fn ensure_group(
    db: &impl Sql,
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
                        db.last_insert_rowid()?
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

#[cfg(test)]
mod tests {
    use super::super::tests::{full_run, user};
    use super::super::Status;
    use crate::reconcile::{self, MaxDeletions, Options};
    use crate::store::Store;
    use std::collections::BTreeSet;

    /// The groups a set of users keeps: theirs and every ancestor, nothing else.
    fn closure(users: &[(String, Vec<String>)]) -> BTreeSet<String> {
        let mut all = BTreeSet::new();
        for (_, groups) in users {
            for g in groups {
                all.extend(reconcile::ancestors(g).map(str::to_string));
            }
        }
        all
    }

    fn run(store: &mut Store, users: &[(String, Vec<String>)]) {
        let opts = Options {
            max_deletions: MaxDeletions::Percent(100.0),
            ..Options::default()
        };
        let staged = (users.iter())
            .map(|(name, groups)| {
                let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
                user(name, &groups)
            })
            .collect();
        assert_eq!(full_run(store, opts, staged).status, Status::Ok);
    }

    fn stored(store: &Store) -> BTreeSet<String> {
        store
            .groups()
            .unwrap()
            .into_iter()
            .map(|g| g.path)
            .collect()
    }

    #[test]
    fn pruning_keeps_exactly_the_groups_with_active_members_below() {
        // Many nested groups: a tree of departments and teams, a leaf of its own per user,
        // and names that a LIKE pattern reads specially (`%`, `_`, `\`, case).
        let mut users: Vec<(String, Vec<String>)> = (0..600)
            .map(|i| {
                let groups = vec![
                    format!("Org|D{}|T{}", i % 12, i % 60),
                    format!("Org|D{}|T{}|U{i}", i % 12, i % 60),
                    format!("Site{}", i % 7),
                    format!("100%|a_b{}", i % 5),
                ];
                (format!("u{i}"), groups)
            })
            .collect();
        // "CORP\Staff" has no member of its own; its child does.
        users[0].1.push("CORP\\Staff|IT".into());
        users[1].1.push("CORP\\Staff".into());
        // "staff" and "STAFF|IT" are different trees.
        users[2].1.push("STAFF|IT".into());
        users[3].1.push("staff".into());
        let mut store = Store::memory().unwrap();
        run(&mut store, &users);
        assert_eq!(stored(&store), closure(&users));

        // Departments 0..5 lose every user; elsewhere, teams of even number lose theirs.
        let kept: Vec<(String, Vec<String>)> = (users.iter())
            .enumerate()
            .filter(|(i, _)| *i == 0 || *i == 2 || (i % 12 >= 6 && i % 60 % 2 == 1))
            .map(|(_, u)| u.clone())
            .collect();
        run(&mut store, &kept);
        let want = closure(&kept);
        assert!(want.contains("CORP\\Staff") && want.contains("STAFF|IT"));
        assert!(!want.contains("staff") && !want.contains("Org|D1"));
        assert!(want.contains("Org|D7|T7") && !want.contains("Org|D6|T6"));
        assert_eq!(stored(&store), want);
        // The memberships of the users still active are all there.
        for u in store.users(false).unwrap() {
            let (_, groups) = kept.iter().find(|k| k.0 == u.username).unwrap();
            let mut groups = groups.clone();
            groups.sort();
            assert_eq!(u.groups, groups, "{}", u.username);
        }
    }
}
