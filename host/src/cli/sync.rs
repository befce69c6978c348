//! `roster sync`: run sources, then show a table or JSON.

use super::output::{clean, clean_text, json, table};
use anyhow::Result;
use clap::Args;
use roster::config::Config;
use roster::store::{Status, Store};
use roster::sync::{SourceResult, SyncFlags};
use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;

#[derive(Args)]
pub struct Sync {
    /// Sources to sync (default: all, in config order).
    sources: Vec<String>,
    /// Show the plan; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Override the max_deletions guard for this run.
    #[arg(long)]
    force: bool,
    #[arg(long)]
    json: bool,
}

impl Sync {
    pub fn run(self, config: &Path) -> Result<i32> {
        let cfg = Config::load(config)?;
        let t = Instant::now();
        let rt = roster::plugins::runtime(&cfg.database)?;
        // A dry run against a database that does not exist yet must not create it.
        let mut store = if self.dry_run && !cfg.database.exists() {
            Store::memory()?
        } else {
            Store::open(&cfg.database)?
        };
        tracing::debug!("runtime and store ready in {:?}", t.elapsed());
        let progress = !self.json && std::io::stderr().is_terminal();
        let flags = SyncFlags {
            dry_run: self.dry_run,
            force: self.force,
            progress,
        };
        let results = roster::sync::sync(&cfg, &mut store, &rt, &self.sources, flags)?;
        if self.json {
            json(&results)?;
        } else {
            print_results(&results);
        }
        Ok(if results.iter().any(|r| r.config_error) {
            2
        } else if results.iter().all(|r| r.status == Status::Ok) {
            0
        } else {
            1
        })
    }
}

fn print_results(results: &[SourceResult]) {
    let rows = results.iter().map(|r| {
        let c = &r.counts;
        vec![
            r.source.clone(),
            r.status.to_string(),
            r.mode.to_string(),
            c.created.to_string(),
            c.updated.to_string(),
            c.unchanged.to_string(),
            c.deactivated.to_string(),
            c.reactivated.to_string(),
            c.deleted.to_string(),
            c.failed.to_string(),
        ]
    });
    let headers = [
        "SOURCE",
        "STATUS",
        "MODE",
        "CREATED",
        "UPDATED",
        "UNCHANGED",
        "DEACTIVATED",
        "REACTIVATED",
        "DELETED",
        "FAILED",
    ];
    table(&headers, rows);
    for r in results {
        let source = &r.source;
        if let Some(m) = &r.message {
            println!("\n{source}: {}", clean_text(m));
        }
        for n in &r.notices {
            println!("{source}: notice: {}", clean_text(n));
        }
        for e in r.errors.iter().take(50) {
            let (entry, reason) = (clean(&e.entry), clean_text(&e.reason));
            println!("{source}: failed {entry}: {reason}");
        }
        if r.errors.len() > 50 {
            println!(
                "{source}: ... and {} more failed entries (roster runs show {})",
                r.errors.len() - 50,
                r.run_id.unwrap_or(0)
            );
        }
        if let Some(plan) = &r.plan {
            println!("\nplan for {source} (dry run, nothing written):");
            for p in plan {
                let username = clean(&p.username);
                if p.fields.is_empty() {
                    println!("  {:<11} {username}", p.action);
                } else {
                    println!("  {:<11} {username} ({})", p.action, p.fields.join(", "));
                }
            }
        }
    }
}
