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
}

impl Runs {
    pub fn run(self, config: &Path) -> Result<i32> {
        let store = super::open_store(config)?;
        match self {
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
                table(&headers, rows);
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
                table(&["ACTION", "ENTRY", "DETAIL"], rows);
            }
        }
        Ok(0)
    }
}

fn short_counts(c: &Counts) -> String {
    format!(
        "+{} ~{} ={} -{} ^{} x{} !{}",
        c.created, c.updated, c.unchanged, c.deactivated, c.reactivated, c.deleted, c.failed
    )
}
