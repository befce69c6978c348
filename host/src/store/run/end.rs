//! The end of a run: the source's cursor and the run record are written and the transaction
//! commits, or everything is rolled back (a dry run, an abort).

use super::super::outbox::RunEnd;
use super::{Outcome, Report, Run, Status, NOW};
use crate::store::db::Sql;
use anyhow::Result;
use rusqlite::params;

impl Run<'_> {
    /// Closes the run: on success the cursor and the run's counts are written and committed.
    pub(super) fn end(
        mut self,
        status: Status,
        message: Option<String>,
        cursor: Option<String>,
        notices: Vec<String>,
        full: bool,
    ) -> Result<Outcome> {
        // Events PostgreSQL's run still holds back, for a run that commits.
        if status == Status::Ok && self.run_id.is_some() && !self.lease.lost() {
            self.flush_staged()?;
        }
        let Run {
            tx,
            lease,
            run_id,
            report,
            source_id,
            source,
            max_user_id,
            notifier,
            ..
        } = self;
        let Report {
            counts: c,
            errors,
            plan,
            ..
        } = report;
        let mode = if full { "full" } else { "delta" };
        let mut notices = notices;
        if lease.lost() {
            tx.rollback()?;
            anyhow::bail!(
                "the run of source '{source}' lost its lease (this process stalled for over {:?}), so nothing of it was applied",
                super::super::lease::TTL
            );
        }
        match (status, run_id) {
            (Status::Ok, Some(id)) => {
                // Notifications commit with the run, or not at all.
                if let Some(n) = &notifier {
                    notices.extend(n.on_end(&RunEnd {
                        conn: tx.db(),
                        run_id: id,
                        source: &source,
                        status,
                        counts: c,
                        errors: &errors,
                        message: message.as_deref(),
                        first_new_id: Some(max_user_id),
                    })?);
                }
                let notices_json = serde_json::to_string(&notices)?;
                // No cursor means the next run is a full one.
                tx.execute(
                    "UPDATE sources SET cursor = ?1 WHERE id = ?2",
                    params![cursor, source_id],
                )?;
                tx.execute(
                    &format!(
                        "UPDATE runs SET status = ?11, mode = ?2, finished = {NOW}, created = ?3, updated = ?4,
                         unchanged = ?5, deactivated = ?6, reactivated = ?7, deleted = ?8, failed = ?9,
                         notices = ?10 WHERE id = ?1"
                    ),
                    params![id, mode, c.created, c.updated, c.unchanged, c.deactivated, c.reactivated, c.deleted, c.failed, notices_json, Status::Ok],
                )?;
                let t = std::time::Instant::now();
                tx.commit()?;
                tracing::debug!("committed in {:?}", t.elapsed());
                // The run's status is recorded: the lease is released.
                drop(lease.release());
            }
            _ => {
                tx.rollback()?;
                // The lease parks when `lease` drops here: the caller records the status
                // (with its notifications, `Store::close_run_notifying`), which releases it,
                // so whoever sees the status final sees the hold's plan too.
                drop(lease);
            }
        }
        Ok(Outcome {
            run_id,
            status,
            counts: c,
            errors,
            message,
            plan,
            notices,
            full,
        })
    }
}
