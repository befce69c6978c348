//! `roster sync`: run sources, show progress on a terminal, then a table or JSON.

use super::output::{clean, clean_text, json, table};
use anyhow::Result;
use clap::Args;
use indicatif::ProgressBar;
use roster::config::Config;
use roster::store::{Status, Store};
use roster::sync::{SourceResult, SyncFlags, SyncObserver};
use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

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
    /// A full run whatever the source's cursor: read everything, so entries deleted since
    /// the last full run are found now (a delta run may not see deletions).
    #[arg(long)]
    full: bool,
    #[arg(long)]
    json: bool,
}

impl Sync {
    /// `roster sync --force SOURCE`.
    pub fn forced(source: &str) -> Sync {
        Sync {
            sources: vec![source.to_string()],
            dry_run: false,
            force: true,
            full: false,
            json: false,
        }
    }

    pub fn run(&self, config: &Path) -> Result<i32> {
        let cfg = Config::load(config)?;
        let t = Instant::now();
        let rt = roster::plugins::runtime(&cfg.local_base())?;
        // A dry run against a database that does not exist yet must not create it.
        let mut store = if self.dry_run && !roster::store::Store::exists(&cfg.database) {
            Store::memory()?
        } else {
            Store::open(&cfg.database)?
        };
        store.set_process("roster sync");
        tracing::debug!("runtime and store ready in {:?}", t.elapsed());
        let flags = SyncFlags {
            dry_run: self.dry_run,
            force: self.force,
            hold: false,
            full: self.full,
        };
        let mut sync = |observer: &mut dyn SyncObserver| {
            roster::sync::sync(&cfg, &mut store, &rt, &self.sources, flags, observer)
        };
        let results = if self.json {
            let mut printer = Json::default();
            sync(&mut printer)?;
            json(&printer.results)?;
            printer.results
        } else {
            let mut printer = Standard::new(std::io::stderr().is_terminal());
            sync(&mut printer)?;
            print_results(&printer.results)?;
            printer.results
        };
        if !self.dry_run {
            notify(&cfg, &store, &self.sources);
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

/// After the runs (which are committed by now): expiring secrets of the synced sources, then
/// delivery of what is due. A channel's failure is logged and retried later; it never changes
/// the sync's exit code.
fn notify(cfg: &Config, store: &Store, names: &[String]) {
    if !cfg.notify.has_channels() && store.next_due().ok().flatten().is_none() {
        return;
    }
    let sources: Vec<_> = (cfg.sources.iter())
        .filter(|s| names.is_empty() || names.contains(&s.name))
        .collect();
    if let Err(e) = roster::notify::check_expiring(cfg, store, &sources, roster::notify::today()) {
        tracing::error!("notifications: checking secret expiry: {e:#}");
    }
    match roster::notify::Sender::new(cfg).and_then(|s| s.deliver_due(store)) {
        Ok(d) => tracing::debug!("notifications: {d:?}"),
        Err(e) => tracing::error!("notifications: {e:#}"),
    }
}

/// `--json`: the results, printed as one array when the sync is done.
#[derive(Default)]
struct Json {
    results: Vec<SourceResult>,
}

impl SyncObserver for Json {
    fn source_finished(&mut self, result: SourceResult) {
        self.results.push(result);
    }
}

/// A spinner per source on a terminal; a table when the sync is done.
struct Standard {
    progress: bool,
    bar: Option<ProgressBar>,
    results: Vec<SourceResult>,
}

impl Standard {
    fn new(progress: bool) -> Self {
        Standard {
            progress,
            bar: None,
            results: Vec::new(),
        }
    }

    fn say(&self, message: String) {
        if let Some(bar) = &self.bar {
            bar.set_message(message);
            bar.tick();
        }
    }
}

impl SyncObserver for Standard {
    fn source_started(&mut self, source: &str) {
        if self.progress {
            let bar = ProgressBar::new_spinner();
            bar.set_message(format!("{source}: starting"));
            bar.enable_steady_tick(Duration::from_millis(120));
            self.bar = Some(bar);
        }
    }

    fn entries_read(&mut self, source: &str, entries: u64) {
        self.say(format!("{source}: {entries} entries"));
    }

    fn merging(&mut self, source: &str, entries: u64) {
        self.say(format!("{source}: merging {entries} entries"));
    }

    fn source_finished(&mut self, result: SourceResult) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        self.results.push(result);
    }
}

fn print_results(results: &[SourceResult]) -> Result<()> {
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
    table(&headers, rows)?;
    for r in results {
        let source = &r.source;
        // A dry run that the guard would abort says so under its plan.
        let would_abort = r.plan.is_some() && r.status == Status::Aborted;
        if let Some(m) = r.message.as_ref().filter(|_| !would_abort) {
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
                for n in &p.notes {
                    println!("  {:<11}   {}", "", clean(n));
                }
            }
            if plan.is_empty() {
                println!("  (no changes)");
            }
            if let Some(m) = r.message.as_ref().filter(|_| would_abort) {
                println!(
                    "\n{source}: a real run would abort here:\n{}",
                    clean_text(m)
                );
            }
        }
    }
    Ok(())
}
