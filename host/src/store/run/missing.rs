//! Missing users: those of this source the run did not pair (a full run) or that the source
//! removed (a delta run). They are found before anything is written, so the deletion guard
//! judges the store as the run found it, and are deactivated or deleted set-wise.

use super::{PlanItem, Run, NOW};
use crate::reconcile::OnMissing;
use crate::store::db::Sql;
use anyhow::Result;
use rusqlite::params;

impl Run<'_> {
    /// Fills `temp.missing` with the users `on_missing` will act on. Returns how many active
    /// users of this source there were, and how many are missing.
    pub(super) fn find_missing(&mut self, full: bool) -> Result<(u64, u64)> {
        let total_before: u64 = self.tx.query_row(
            "SELECT count(*) FROM users WHERE source_id = ?1 AND active = 1",
            [self.source_id],
            |r| r.get(0),
        )?;
        // Missing users are decided on the pairing before any change.
        if full && self.opts.on_missing != OnMissing::Ignore {
            let deactivate = self.opts.on_missing == OnMissing::Deactivate;
            let only_active = if deactivate { "AND active = 1" } else { "" };
            let (own, seen) = if deactivate {
                (total_before, self.seen.own_active)
            } else {
                let all: u64 = self.tx.query_row(
                    "SELECT count(*) FROM users WHERE source_id = ?1",
                    [self.source_id],
                    |r| r.get(0),
                )?;
                (all, self.seen.own)
            };
            // Every one of them paired (the usual resync): no need to look for the missing.
            let ids: Vec<i64> = if own == seen {
                Vec::new()
            } else {
                self.tx
                    .prepare(&format!(
                        "SELECT id FROM users WHERE source_id = ?1 {only_active}"
                    ))?
                    .query_map([self.source_id], |r| r.get(0))?
                    .filter(|id| {
                        id.as_ref()
                            .map_or(true, |id| !self.seen.users.contains(*id))
                    })
                    .collect::<Result<_, _>>()?
            };
            self.tx.execute(
                "CREATE TEMP TABLE missing(id INTEGER PRIMARY KEY, username TEXT NOT NULL)",
                (),
            )?;
            let mut add = self
                .tx
                .prepare("INSERT INTO temp.missing SELECT id, username FROM users WHERE id = ?1")?;
            for id in ids {
                add.execute([id])?;
            }
        } else {
            self.tx.execute(
                "CREATE TEMP TABLE missing AS SELECT u.id, u.username FROM temp.removals r
                 JOIN links l ON l.source_id = ?1 AND l.anchor = r.anchor AND r.kind = 'user'
                 JOIN users u ON u.id = l.user_id AND u.source_id = ?1
                 WHERE ?2 != 'ignore' AND (u.active = 1 OR ?2 = 'delete')",
                params![self.source_id, on_missing_name(self.opts.on_missing)],
            )?;
        }
        if self.opts.authority.is_some() {
            self.split_missing(full)?;
        }
        let missing: u64 = self
            .tx
            .query_row("SELECT count(*) FROM temp.missing", (), |r| r.get(0))?;
        Ok((total_before, missing))
    }

    /// Deactivates or deletes the users in `temp.missing`, set-wise.
    pub(super) fn apply_missing(&mut self) -> Result<()> {
        if self.opts.authority.is_some() {
            self.apply_handovers()?;
            self.apply_unlinks()?;
        }
        let delete = self.opts.on_missing == OnMissing::Delete;
        let (action, reason) = if delete {
            ("deleted", "missing from the source")
        } else {
            ("deactivated", "missing from the source")
        };
        let n: u64 = self
            .tx
            .query_row("SELECT count(*) FROM temp.missing", (), |r| r.get(0))?;
        if n == 0 {
            return Ok(());
        }
        if let Some(run_id) = self.run_id {
            self.tx.execute(
                "INSERT INTO run_events(run_id, seq, entry, action, reason)
                 SELECT ?1, ?2 + row_number() OVER (ORDER BY username), username, ?3, ?4 FROM temp.missing",
                params![run_id, self.report.event_seq, action, reason],
            )?;
            self.report.event_seq += n as i64;
        }
        if self.run_id.is_none() || self.keep_plan {
            let names: Vec<String> = self
                .tx
                .prepare("SELECT username FROM temp.missing ORDER BY username")?
                .query_map((), |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let verb = if delete { "delete" } else { "deactivate" };
            self.report
                .plan
                .extend(names.into_iter().map(|username| PlanItem {
                    action: verb,
                    username,
                    fields: vec![],
                    notes: vec![],
                }));
        }
        if delete {
            self.tx.execute(
                "DELETE FROM users WHERE id IN (SELECT id FROM temp.missing)",
                (),
            )?;
            self.report.counts.deleted += n;
        } else {
            self.tx.execute(
                &format!("UPDATE users SET active = 0, updated_at = {NOW} WHERE id IN (SELECT id FROM temp.missing)"),
                (),
            )?;
            // An inactive user is never unchanged: its return must reactivate it.
            self.tx.execute(
                "UPDATE links SET raw_hash = NULL WHERE user_id IN (SELECT id FROM temp.missing)",
                (),
            )?;
            self.report.counts.deactivated += n;
        }
        Ok(())
    }
}

fn on_missing_name(o: OnMissing) -> &'static str {
    match o {
        OnMissing::Deactivate => "deactivate",
        OnMissing::Delete => "delete",
        OnMissing::Ignore => "ignore",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_missing_names_match_the_config_values() {
        // The delta-run statement compares against these names.
        assert_eq!(on_missing_name(OnMissing::Deactivate), "deactivate");
        assert_eq!(on_missing_name(OnMissing::Delete), "delete");
        assert_eq!(on_missing_name(OnMissing::Ignore), "ignore");
    }
}
