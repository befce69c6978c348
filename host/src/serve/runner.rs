//! Runs under `roster serve`: at most one per source, whoever asks (the scheduler, the API,
//! an approval), each on a thread of its own through the same `sync` entry point as the
//! CLI. SQLite has one writer and a run holds its write transaction to the end, so runs of
//! different sources queue here, in order, instead of failing on a busy database.

use super::metrics::Metrics;
use crate::config::{Config, SourceConfig};
use crate::store::{Status, Store};
use crate::sync::{SourceResult, SyncFlags, SyncObserver};
use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, oneshot, Notify};

/// A run in progress (or queued for the database).
#[derive(Debug, Clone, Serialize)]
pub struct Running {
    pub run_id: Option<i64>,
    pub since: DateTime<Utc>,
    pub by: String,
    pub dry_run: bool,
    /// Waiting for another source's run to release the database.
    pub queued: bool,
}

/// Why a run did not start.
#[derive(Debug)]
pub enum Refused {
    /// This server runs the source already.
    Running(Running),
    /// Another roster process runs it.
    Elsewhere {
        holder: String,
        since: String,
    },
    ShuttingDown,
    /// No such source in the config.
    Unknown,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Running(r) => match r.run_id {
                Some(id) => write!(
                    f,
                    "already running: run {id}, started {} by {}",
                    r.since.format("%Y-%m-%dT%H:%M:%SZ"),
                    r.by
                ),
                None => write!(
                    f,
                    "already running (queued since {}, by {})",
                    r.since.format("%Y-%m-%dT%H:%M:%SZ"),
                    r.by
                ),
            },
            Refused::Elsewhere { holder, since } => {
                write!(f, "being synced by {holder} since {since}")
            }
            Refused::ShuttingDown => f.write_str("the server is shutting down"),
            Refused::Unknown => f.write_str("no such source"),
        }
    }
}

/// Something to do in the run's thread before it starts, holding the database (such as
/// recording an approval): a write from the API would otherwise wait for other runs.
pub type Before = Box<dyn FnOnce(&Store) -> Result<()> + Send>;
/// And after it ends, with its result.
pub type After = Box<dyn FnOnce(&Store, &SourceResult) -> Result<()> + Send>;

/// What a started run reports to whoever started it.
#[derive(Debug)]
pub enum Began {
    /// The run's record exists (none for a dry run).
    Run(Option<i64>),
    /// It ended before it could begin (the plugin did not load, cancelled ...).
    Ended(Box<SourceResult>),
}

pub struct Runner {
    cfg: Arc<Config>,
    pool: Arc<super::pool::Pool>,
    pub metrics: Arc<Metrics>,
    pub events: broadcast::Sender<serde_json::Value>,
    running: Mutex<HashMap<String, Running>>,
    next: Mutex<HashMap<String, DateTime<Utc>>>,
    /// The database's one writer, taken in order (tokio's mutex is fair).
    writer: Arc<tokio::sync::Mutex<()>>,
    stopping: Arc<AtomicBool>,
    stop: Notify,
    idle: Notify,
    /// Delivers notifications on a thread of its own; woken after each run.
    notify: Option<crate::notify::SenderHandle>,
}

impl Runner {
    pub fn new(
        cfg: Arc<Config>,
        pool: Arc<super::pool::Pool>,
        metrics: Arc<Metrics>,
        events: broadcast::Sender<serde_json::Value>,
    ) -> Result<Arc<Runner>> {
        let notify = (cfg.notify.has_channels())
            .then(|| crate::notify::Sender::spawn(cfg.clone()))
            .transpose()?;
        Ok(Arc::new(Runner {
            notify,
            cfg,
            pool,
            metrics,
            events,
            running: Mutex::new(HashMap::new()),
            next: Mutex::new(HashMap::new()),
            writer: Arc::new(tokio::sync::Mutex::new(())),
            stopping: Arc::new(AtomicBool::new(false)),
            stop: Notify::new(),
            idle: Notify::new(),
        }))
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn running(&self, source: &str) -> Option<Running> {
        self.running.lock().unwrap().get(source).cloned()
    }

    pub fn next_run(&self, source: &str) -> Option<DateTime<Utc>> {
        self.next.lock().unwrap().get(source).copied()
    }

    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Starts a run of `source` unless one is running; the receiver learns its run id.
    pub fn start(
        self: &Arc<Self>,
        source: &str,
        flags: SyncFlags,
        by: &str,
        before: Option<Before>,
        after: Option<After>,
    ) -> Result<oneshot::Receiver<Began>, Refused> {
        if self.stopping() {
            return Err(Refused::ShuttingDown);
        }
        let src = self
            .cfg
            .source(source)
            .map_err(|_| Refused::Unknown)?
            .clone();
        {
            let mut running = self.running.lock().unwrap();
            if let Some(r) = running.get(source) {
                return Err(Refused::Running(r.clone()));
            }
            // A CLI sync of the same source (see `roster sync`).
            // A `roster sync` of the same source in another process (its run lease).
            let elsewhere = (self.pool)
                .with_blocking(|s| s.lease_holder(source))
                .ok()
                .flatten()
                .filter(|l| l.holder.pid != std::process::id());
            if let Some(l) = elsewhere {
                return Err(Refused::Elsewhere {
                    holder: l.holder.to_string(),
                    since: l.since,
                });
            }
            running.insert(
                source.to_string(),
                Running {
                    run_id: None,
                    since: Utc::now(),
                    by: by.to_string(),
                    dry_run: flags.dry_run,
                    queued: true,
                },
            );
        }
        let (tx, rx) = oneshot::channel();
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("run {source}"))
            .spawn(move || me.run(src, flags, tx, before, after));
        if let Err(e) = spawned {
            tracing::error!("source {source}: cannot start a run thread: {e}");
            self.done(source);
        }
        Ok(rx)
    }

    fn run(
        self: Arc<Self>,
        src: SourceConfig,
        flags: SyncFlags,
        began: oneshot::Sender<Began>,
        before: Option<Before>,
        after: Option<After>,
    ) {
        let name = src.name.clone();
        let _writer = self.writer.blocking_lock();
        if let Some(r) = self.running.lock().unwrap().get_mut(&name) {
            r.queued = false;
        }
        let mut observer = Observer {
            runner: &self,
            began: Some(began),
            result: None,
            last_progress: Instant::now(),
            run_id: None,
        };
        let t = Instant::now();
        let outcome = (|| -> Result<()> {
            let mut store = Store::open(&self.cfg.database)?;
            store.set_process("roster serve");
            if let Some(before) = before {
                before(&store)?;
            }
            if self.stopping() {
                return Ok(());
            }
            self.metrics.started(&name);
            // A runtime per run: its epoch ticker thread ends with it, so an idle server
            // wakes for nothing between runs. Compiled plugins come from the disk cache.
            let rt = crate::plugins::runtime(&self.cfg.local_base())?;
            crate::sync::sync(
                &self.cfg,
                &mut store,
                &rt,
                std::slice::from_ref(&name),
                flags,
                &mut observer,
            )?;
            if let Some(r) = &observer.result {
                if let Some(after) = after {
                    after(&store, r)?;
                }
            }
            Ok(())
        })();
        if let Err(e) = outcome {
            tracing::error!("source {name}: {e:#}");
        }
        let result = observer.result.take();
        if let Some(r) = &result {
            self.metrics.finished(r, t.elapsed().as_secs_f64());
            let held = r.status == Status::Aborted && r.plan.is_some() && !r.dry_run;
            let _ = self.events.send(serde_json::json!({
                "type": "finished", "source": name, "run_id": r.run_id,
                "status": r.status, "dry_run": r.dry_run, "held": held,
                "counts": r.counts, "message": r.message,
            }));
        } else {
            self.metrics.finished_nothing(&name);
        }
        if let Some(began) = observer.began.take() {
            let _ = began.send(match result {
                Some(r) => Began::Ended(Box::new(r)),
                None => Began::Run(None),
            });
        }
        drop(observer);
        self.done(&name);
    }

    fn done(&self, source: &str) {
        // The run's notifications are in the outbox now.
        if let Some(n) = &self.notify {
            n.wake();
        }
        let mut running = self.running.lock().unwrap();
        running.remove(source);
        if running.is_empty() {
            self.idle.notify_waiters();
        }
    }

    /// The config, shared.
    pub fn config_arc(&self) -> Arc<Config> {
        self.cfg.clone()
    }

    /// As [`Runner::write`], with the store for a run (a SCIM push).
    pub async fn write_mut<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Store) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let _writer = me.writer.blocking_lock();
            let mut store = Store::open(&me.cfg.database)?;
            store.set_process("roster serve");
            f(&mut store)
        })
        .await
        .map_err(|e| anyhow::anyhow!("database task: {e}"))?
    }

    /// A write from the API (such as a dismissal), in turn with the runs.
    pub async fn write<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Store) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let _writer = me.writer.blocking_lock();
            f(&Store::open(&me.cfg.database)?)
        })
        .await
        .map_err(|e| anyhow::anyhow!("database task: {e}"))?
    }

    /// One task per scheduled source: sleeps until its next tick (no CPU between ticks).
    pub fn schedule(self: &Arc<Self>) {
        for src in &self.cfg.sources {
            let Some(schedule) = src.schedule.clone() else {
                continue;
            };
            let me = self.clone();
            let name = src.name.clone();
            tokio::spawn(async move {
                let mut from = Utc::now();
                loop {
                    let Some(at) = schedule.next_after(from) else {
                        tracing::warn!("source {name}: the schedule has no next run");
                        return;
                    };
                    me.next.lock().unwrap().insert(name.clone(), at);
                    let wait = (at - Utc::now()).to_std().unwrap_or_default();
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = me.stop.notified() => return,
                    }
                    if me.stopping() {
                        return;
                    }
                    from = at.max(Utc::now());
                    // Another host on the database may have run this tick: one that claimed
                    // a tick in the latter half of the period before `at` did.
                    let period = schedule
                        .next_after(at)
                        .map_or(chrono::Duration::zero(), |n| n - at);
                    me.tick(&name, at, at - period / 2).await;
                }
            });
        }
    }

    async fn tick(self: &Arc<Self>, name: &str, at: DateTime<Utc>, not_before: DateTime<Utc>) {
        if self.running.lock().unwrap().contains_key(name) {
            // Not claimed: this host's own run is still going.
            tracing::info!("source {name}: scheduled run skipped: its last run is still going");
            return;
        }
        let source = name.to_string();
        let held = self.pool.with(move |s| s.held_source(&source)).await;
        if let Ok(Some(h)) = held {
            tracing::info!(
                "source {name}: scheduled run skipped: run {} is held for review (approve or dismiss it)",
                h.run_id
            );
            return;
        }
        let source = name.to_string();
        let (at, not_before) = (at.timestamp_millis(), not_before.timestamp_millis());
        let claimed = self
            .pool
            .with(move |s| s.claim_tick(&source, at, not_before))
            .await;
        match claimed {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!("source {name}: scheduled run skipped: another roster host on this database ran this tick");
                return;
            }
            // Better twice than never: the lease still keeps runs apart.
            Err(e) => tracing::warn!("source {name}: cannot claim the scheduled tick: {e:#}"),
        }
        let flags = SyncFlags {
            hold: true,
            ..SyncFlags::default()
        };
        match self.start(name, flags, "schedule", None, None) {
            Ok(_) => tracing::info!("source {name}: scheduled run started"),
            Err(Refused::ShuttingDown | Refused::Unknown) => {}
            Err(e) => tracing::info!("source {name}: scheduled run skipped: {e}"),
        }
    }

    /// Stops scheduling, cancels runs (nothing of them commits) and waits for them, at
    /// most `deadline`.
    pub async fn shutdown(&self, deadline: Duration) {
        self.stopping.store(true, Ordering::SeqCst);
        self.stop.notify_waiters();
        let wait = async {
            loop {
                let idle = self.idle.notified();
                if self.running.lock().unwrap().is_empty() {
                    return;
                }
                idle.await;
            }
        };
        if tokio::time::timeout(deadline, wait).await.is_err() {
            tracing::warn!("runs still going after {deadline:?}; exiting anyway (they roll back)");
        }
    }
}

/// Reports a run's progress to the service: its id, SSE events, metrics, cancellation.
struct Observer<'a> {
    runner: &'a Runner,
    began: Option<oneshot::Sender<Began>>,
    result: Option<SourceResult>,
    last_progress: Instant,
    run_id: Option<i64>,
}

impl SyncObserver for Observer<'_> {
    fn run_began(&mut self, source: &str, run_id: Option<i64>) {
        self.run_id = run_id;
        if let Some(r) = self.runner.running.lock().unwrap().get_mut(source) {
            r.run_id = run_id;
            r.since = Utc::now();
        }
        // A dry run's starter waits for its plan, sent at the end.
        if run_id.is_some() {
            if let Some(tx) = self.began.take() {
                let _ = tx.send(Began::Run(run_id));
            }
        }
        let _ = (self.runner.events)
            .send(serde_json::json!({"type": "started", "source": source, "run_id": run_id}));
    }

    fn entries_read(&mut self, source: &str, entries: u64) {
        // At most a few progress events a second.
        if self.last_progress.elapsed() >= Duration::from_millis(250) {
            self.last_progress = Instant::now();
            let _ = self.runner.events.send(serde_json::json!({
                "type": "progress", "source": source, "run_id": self.run_id, "entries": entries,
            }));
        }
    }

    fn source_finished(&mut self, result: SourceResult) {
        self.result = Some(result);
    }

    fn cancelled(&self) -> bool {
        self.runner.stopping()
    }
}
