//! The end of a run: the source's cursor and the run record are written and the transaction
//! commits, or everything is rolled back (a dry run, an abort).

use super::{Outcome, Report, Run, Status, NOW};
use anyhow::Result;
use rusqlite::params;

impl Run<'_> {
    /// Closes the run: on success the cursor and the run's counts are written and committed.
    pub(super) fn end(
        self,
        status: Status,
        message: Option<String>,
        cursor: Option<String>,
        notices: Vec<String>,
        full: bool,
    ) -> Result<Outcome> {
        let Run {
            tx,
            conn,
            lease,
            run_id,
            report,
            source_id,
            source,
            ..
        } = self;
        let Report {
            counts: c,
            errors,
            plan,
            ..
        } = report;
        let mode = if full { "full" } else { "delta" };
        let notices_json = serde_json::to_string(&notices)?;
        if lease.lost() {
            tx.rollback()?;
            anyhow::bail!(
                "the run of source '{source}' lost its lease (this process stalled for over {:?}), so nothing of it was applied",
                super::super::lease::TTL
            );
        }
        match (status, run_id) {
            (Status::Ok, Some(id)) => {
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
            (status, Some(id)) => {
                tx.rollback()?;
                // Recorded here too, so the lease is released with the status final.
                conn.execute(
                    &format!(
                        "UPDATE runs SET status = ?2, finished = {NOW}, message = ?3 WHERE id = ?1"
                    ),
                    params![id, status, message],
                )?;
                drop(lease.release());
            }
            (_, None) => tx.rollback()?,
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
