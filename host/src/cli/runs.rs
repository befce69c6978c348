//! `roster runs`: the run log.

use super::output::{clean_text, json, table};
use anyhow::Result;
use clap::Subcommand;
use roster::store::Counts;
use std::path::Path;

#[derive(Subcommand)]
pub enum Runs {
    List {
        #[arg(long)]
        json: bool,
    },
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Apply a run the deletion guard held (under `roster serve`): its source runs again
    /// with --force.
    Approve { id: i64 },
    /// Lift a held run's hold without applying it.
    Dismiss { id: i64 },
}

impl Runs {
    pub fn run(self, config: &Path) -> Result<i32> {
        let store = super::open_store(config)?;
        let by = format!("cli:{}", std::env::var("USER").unwrap_or_default());
        match self {
            Runs::Approve { id } => {
                let Some(held) = waiting(&store, id)? else {
                    return Ok(1);
                };
                if let Some((pid, since)) = store.running_elsewhere(&held.source)? {
                    eprintln!(
                        "error: source {} is being synced by roster process {pid} (since {since})",
                        held.source
                    );
                    return Ok(1);
                }
                store.decide_held(id, "approved", &by)?;
                drop(store);
                let code = super::sync::Sync::forced(&held.source).run(config)?;
                let store = super::open_store(config)?;
                if let Some(rerun) = store.last_runs(&held.source)?.0 {
                    store.set_rerun(id, rerun.id)?;
                }
                return Ok(code);
            }
            Runs::Dismiss { id } => {
                if waiting(&store, id)?.is_none() {
                    return Ok(1);
                }
                store.decide_held(id, "dismissed", &by)?;
                eprintln!("run {id}: dismissed; its source's scheduled runs resume");
            }
            Runs::List { json: true } => json(&store.runs()?)?,
            Runs::List { json: false } => {
                let rows = store.runs()?.into_iter().map(|r| {
                    vec![
                        r.id.to_string(),
                        r.source,
                        r.status.to_string(),
                        r.mode.unwrap_or_default(),
                        r.started,
                        short_counts(&r.counts),
                        r.message.unwrap_or_default(),
                    ]
                });
                let headers = [
                    "ID",
                    "SOURCE",
                    "STATUS",
                    "MODE",
                    "STARTED",
                    "+new ~upd =same -deact ^react xdel !fail",
                    "MESSAGE",
                ];
                table(&headers, rows)?;
            }
            Runs::Show { id, json: as_json } => {
                let Some(r) = store.run(id)? else {
                    eprintln!("error: no run {id}");
                    return Ok(1);
                };
                if as_json {
                    json(&r)?;
                    return Ok(0);
                }
                let mode = r.mode.as_deref().unwrap_or("-");
                println!("run {} of {}: {} ({mode})", r.id, r.source, r.status);
                let finished = r.finished.as_deref().unwrap_or("-");
                println!("started {}, finished {finished}", r.started);
                let c = &r.counts;
                println!(
                    "created {}, updated {}, unchanged {}, deactivated {}, reactivated {}, deleted {}, failed {}",
                    c.created, c.updated, c.unchanged, c.deactivated, c.reactivated, c.deleted, c.failed
                );
                if let Some(m) = &r.message {
                    println!("message: {}", clean_text(m));
                }
                for n in &r.notices {
                    println!("notice: {}", clean_text(n));
                }
                let rows = (r.events.into_iter().flatten())
                    .map(|e| vec![e.action, e.entry, e.reason.unwrap_or_default()]);
                table(&["ACTION", "ENTRY", "DETAIL"], rows)?;
            }
        }
        Ok(0)
    }
}

/// A held run that waits for a decision, or says why not.
fn waiting(store: &roster::store::Store, id: i64) -> Result<Option<roster::store::Held>> {
    match store.held(id)? {
        None => eprintln!("error: run {id} is not a held run"),
        Some(h) if h.decision.is_some() => {
            let d = h.decision.as_deref().unwrap_or_default();
            eprintln!("error: run {id} was already {d}");
        }
        Some(h) => return Ok(Some(h)),
    }
    Ok(None)
}

fn short_counts(c: &Counts) -> String {
    format!(
        "+{} ~{} ={} -{} ^{} x{} !{}",
        c.created, c.updated, c.unchanged, c.deactivated, c.reactivated, c.deleted, c.failed
    )
}
