//! One sync: for each source, plugin batches → mapping → staging → set-based merge → run log.
//!
//! The engine prints nothing: it reports progress and results to a [`SyncObserver`].

mod pipeline;
pub mod push;

use crate::config::{config_err, Config, ConfigError, SourceConfig};
use crate::error::FailureKind;
use crate::runtime::{CallError, RunMode, RunRequest, Runtime};
use crate::scripts::MappingStage;
use crate::session;
use crate::store::{Counts, PlanItem, Status, Store};
use anyhow::Result;
use serde::Serialize;
use std::sync::Arc;

/// What `sync --json` prints per source.
#[derive(Debug, Serialize)]
pub struct SourceResult {
    pub source: String,
    pub run_id: Option<i64>,
    pub status: Status,
    pub dry_run: bool,
    pub mode: &'static str,
    #[serde(flatten)]
    pub counts: Counts,
    pub errors: Vec<crate::store::ErrorItem>,
    pub message: Option<String>,
    pub notices: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Vec<PlanItem>>,
    /// The source's configuration was wrong (exit code 2).
    #[serde(skip)]
    pub config_error: bool,
    /// What a failed run failed of (retryable or not, for a scheduler).
    #[serde(skip)]
    pub failure: Option<FailureKind>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SyncFlags {
    pub dry_run: bool,
    pub force: bool,
    /// Service mode: a run the deletion guard stops keeps its whole plan, in its result and
    /// in the store, where it holds the source's scheduled runs until an admin decides.
    pub hold: bool,
    /// Read everything, whatever the source's cursor says: a full run, which also finds
    /// the entries deleted since the last one (`roster sync --full`).
    pub full: bool,
}

/// A run stopped because its observer asked ([`SyncObserver::cancelled`]).
#[derive(Debug, thiserror::Error)]
#[error("cancelled: roster is shutting down; nothing of this run was applied")]
pub struct Cancelled;

/// Receives a sync's progress and results, like ripgrep's `Sink`: the CLI shows them as
/// progress bars and tables or as JSON, a daemon as events. Calls come from the thread that
/// called [`sync`], in order, per source: `source_started`, any number of `entries_read`
/// and `notice`, `merging` (if the entries were all read), and always `source_finished`.
pub trait SyncObserver {
    /// The source's run starts: its plugin loads next.
    fn source_started(&mut self, _source: &str) {}
    /// The run's record exists (a dry run has none): the plugin is loaded and reading begins.
    fn run_began(&mut self, _source: &str, _run_id: Option<i64>) {}
    /// `entries` entries of the source have been read and staged so far.
    fn entries_read(&mut self, _source: &str, _entries: u64) {}
    /// All `entries` were read; the merge into the database begins.
    fn merging(&mut self, _source: &str, _entries: u64) {}
    /// The plugin reported something the admin should know.
    fn notice(&mut self, _source: &str, _notice: &str) {}
    /// The source's run ended, whichever way.
    fn source_finished(&mut self, result: SourceResult);
    /// Asked between batches: true stops the run, which then changes nothing and is
    /// recorded as cancelled.
    fn cancelled(&self) -> bool {
        false
    }
}

/// Runs the named sources (all when empty), each independently: a failing source does not
/// stop the others. Each source's result goes to `observer`; an error here means no source
/// ran (an unknown name, or none configured).
pub fn sync(
    cfg: &Config,
    store: &mut Store,
    rt: &Runtime,
    names: &[String],
    flags: SyncFlags,
    observer: &mut dyn SyncObserver,
) -> Result<()> {
    let selected: Vec<&SourceConfig> = if names.is_empty() {
        cfg.sources.iter().collect()
    } else {
        names.iter().map(|n| cfg.source(n)).collect::<Result<_>>()?
    };
    if selected.is_empty() {
        return Err(config_err(
            "no sources configured: add a [sources.NAME] table",
        ));
    }
    for src in selected {
        observer.source_started(&src.name);
        let result = sync_source(cfg, store, rt, src, flags, observer);
        observer.source_finished(result);
    }
    Ok(())
}

/// What [`sync_blocking`] hands back: the store and observer it borrowed, and what [`sync`]
/// returned.
pub struct Finished<O> {
    pub store: Store,
    pub observer: O,
    pub result: Result<()>,
}

/// [`sync`] for async callers (the service): the run goes to tokio's blocking pool and this
/// future resolves when it ends.
///
/// Plugin calls block: each plugin drives its own current-thread tokio runtime, and
/// blocking on one from a thread that runs async tasks panics ("Cannot start a runtime from
/// within a runtime"). So async code never calls [`sync`] directly; it calls this. The
/// observer is called on the blocking thread, in the order [`SyncObserver`] documents (send
/// its events over a channel to reach async code). Dropping the future does not stop the
/// run: it completes or changes nothing, as every run does. A panic in the run resumes here.
pub async fn sync_blocking<O: SyncObserver + Send + 'static>(
    cfg: Arc<Config>,
    rt: Arc<Runtime>,
    mut store: Store,
    names: Vec<String>,
    flags: SyncFlags,
    mut observer: O,
) -> Finished<O> {
    let run = tokio::task::spawn_blocking(move || {
        let result = sync(&cfg, &mut store, &rt, &names, flags, &mut observer);
        Finished {
            store,
            observer,
            result,
        }
    });
    match run.await {
        Ok(finished) => finished,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// A run that failed as a whole: nothing it did was kept.
fn failed(
    src: &SourceConfig,
    flags: SyncFlags,
    run_id: Option<i64>,
    e: anyhow::Error,
) -> SourceResult {
    let message = match e.downcast_ref::<CallError>() {
        Some(c) => c.message(),
        None => format!("{e:#}"),
    };
    let status = if e.downcast_ref::<Cancelled>().is_some() {
        tracing::warn!("source {}: {message}", src.name);
        Status::Cancelled
    } else {
        tracing::error!(
            "source {}: run failed, nothing was changed: {message}",
            src.name
        );
        Status::Failed
    };
    SourceResult {
        source: src.name.clone(),
        run_id,
        status,
        dry_run: flags.dry_run,
        mode: "full",
        counts: Counts::default(),
        errors: Vec::new(),
        message: Some(message),
        notices: Vec::new(),
        plan: flags.dry_run.then(Vec::new),
        config_error: e.downcast_ref::<ConfigError>().is_some(),
        failure: Some(FailureKind::of(&e)),
    }
}

/// Records a run that failed before it began, with its notifications in one transaction.
fn failed_early(
    cfg: &Config,
    src: &SourceConfig,
    store: &Store,
    flags: SyncFlags,
    e: anyhow::Error,
) -> SourceResult {
    let run_id = if flags.dry_run {
        None
    } else {
        let hook = crate::notify::RunHook::for_source(cfg, src);
        store
            .record_failed_run_notifying(&src.name, &format!("{e:#}"), hook.as_deref())
            .map_err(|err| tracing::error!("recording failed run: {err:#}"))
            .ok()
    };
    failed(src, flags, run_id, e)
}

/// Ends a rolled-back run, with its notifications in the same transaction.
fn close_run(
    cfg: &Config,
    src: &SourceConfig,
    store: &Store,
    id: i64,
    status: Status,
    message: &str,
) {
    let hook = crate::notify::RunHook::for_source(cfg, src);
    if let Err(e) = store.close_run_notifying(id, &src.name, status, message, hook.as_deref()) {
        tracing::error!("recording {status} run {id}: {e:#}");
    }
}

fn sync_source(
    cfg: &Config,
    store: &mut Store,
    rt: &Runtime,
    src: &SourceConfig,
    flags: SyncFlags,
    observer: &mut dyn SyncObserver,
) -> SourceResult {
    if src.push {
        return SourceResult {
            source: src.name.clone(),
            run_id: None,
            status: Status::Ok,
            dry_run: flags.dry_run,
            mode: "push",
            counts: Counts::default(),
            errors: Vec::new(),
            message: Some(
                "users are pushed into this source over SCIM: there is nothing to pull".into(),
            ),
            notices: Vec::new(),
            plan: flags.dry_run.then(Vec::new),
            config_error: false,
            failure: None,
        };
    }
    let setup = (|| -> Result<_> {
        let prepared = session::prepare(cfg, src, Some(store), rt)?;
        let (opts, mapper) = session::mapping(src, &prepared.info.defaults, store.pin_key()?)?;
        let mapper = mapper.bind(&format!("pair_by {:?}", opts.pair_by));
        let cursor = match flags.full {
            true => None,
            false => store.cursor(&src.name)?,
        };
        let stage = MappingStage::prepare(cfg, src, rt)?;
        // A scripted source's raw hashes are of the entries before the script, bound to it.
        let mapper = match &stage {
            Some(s) => mapper.bind(&format!("mapping script {}", s.fingerprint())),
            None => mapper,
        };
        Ok((prepared, opts, mapper, cursor, stage))
    })();
    let (mut prepared, opts, mapper, cursor, mut stage) = match setup {
        Ok(s) => s,
        Err(e) => return failed_early(cfg, src, store, flags, e),
    };
    // Directory connectors send their raw attributes for templates on purpose; they suggest
    // `warn_unused_attributes = false` so the run does not list them as possible typos.
    let warn_unused = !(prepared.info.defaults.iter())
        .any(|(k, v)| k == "warn_unused_attributes" && v == "false");
    let t = std::time::Instant::now();
    let mut run = match store.begin_run(&src.name, opts, flags.dry_run) {
        Ok(r) => r,
        Err(e) => return failed(src, flags, None, e),
    };
    if let Some(hook) = crate::notify::RunHook::for_source(cfg, src) {
        run.notify_with(hook);
    }
    tracing::debug!("run began in {:?}", t.elapsed());
    if flags.hold {
        run.keep_plan();
    }
    observer.run_began(&src.name, run.id());
    let request = RunRequest {
        config: prepared.config_json.clone(),
        mode: if cursor.is_some() {
            RunMode::Delta
        } else {
            RunMode::Full
        },
        cursor,
    };
    let ctx = pipeline::Context {
        src,
        flags,
        mapper: &mapper,
        warn_unused,
    };
    let result = pipeline::run(
        &ctx,
        &mut prepared.plugin,
        &request,
        stage.as_mut(),
        run,
        observer,
    );
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            // `run` was consumed or is dropped here: its transaction rolls back.
            let run_id = close_failed_run(cfg, src, store, flags, &e);
            return failed(src, flags, run_id, e);
        }
    };
    if let (Some(id), Status::Aborted) = (outcome.run_id, outcome.status) {
        // A held run's plan is kept before its status says aborted, so whoever sees the
        // status sees the hold too.
        if flags.hold {
            match store.hold_run(id, &src.name, &outcome.plan) {
                Ok(()) => tracing::warn!(
                    "source {}: run {id} held for review: the deletion guard stopped it; \
                     scheduled runs pause until an admin approves or dismisses it",
                    src.name
                ),
                Err(e) => tracing::error!("keeping the plan of run {id}: {e:#}"),
            }
        }
        let message = outcome.message.as_deref().unwrap_or("");
        close_run(cfg, src, store, id, Status::Aborted, message);
    }
    SourceResult {
        source: src.name.clone(),
        run_id: outcome.run_id,
        status: outcome.status,
        dry_run: flags.dry_run,
        mode: if outcome.full { "full" } else { "delta" },
        counts: outcome.counts,
        errors: outcome.errors,
        message: outcome.message,
        notices: outcome.notices,
        plan: (flags.dry_run || (flags.hold && outcome.status == Status::Aborted))
            .then_some(outcome.plan),
        config_error: false,
        failure: None,
    }
}

/// Marks the run that was running as failed (its changes were rolled back).
fn close_failed_run(
    cfg: &Config,
    src: &SourceConfig,
    store: &Store,
    flags: SyncFlags,
    e: &anyhow::Error,
) -> Option<i64> {
    if flags.dry_run {
        return None;
    }
    let id = store.latest_running(&src.name).ok().flatten()?;
    let message = match e.downcast_ref::<CallError>() {
        Some(c) => c.message(),
        None => format!("{e:#}"),
    };
    let status = if e.downcast_ref::<Cancelled>().is_some() {
        Status::Cancelled
    } else {
        Status::Failed
    };
    close_run(cfg, src, store, id, status, &message);
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything a sync reported, in order.
    #[derive(Default)]
    struct Recorder(Vec<String>);

    impl SyncObserver for Recorder {
        fn source_started(&mut self, source: &str) {
            self.0.push(format!("started {source}"));
        }
        fn entries_read(&mut self, source: &str, entries: u64) {
            self.0.push(format!("read {source} {entries}"));
        }
        fn merging(&mut self, source: &str, entries: u64) {
            self.0.push(format!("merging {source} {entries}"));
        }
        fn notice(&mut self, source: &str, notice: &str) {
            self.0.push(format!("notice {source} {notice}"));
        }
        fn source_finished(&mut self, r: SourceResult) {
            let c = r.counts;
            self.0.push(format!(
                "finished {} {} created {} failed {} errors {:?}",
                r.source,
                r.status,
                c.created,
                c.failed,
                (r.errors.iter())
                    .map(|e| e.entry.as_str())
                    .collect::<Vec<_>>()
            ));
        }
    }

    #[test]
    fn a_sync_reports_to_its_observer() {
        let dir = tempfile::tempdir().unwrap();
        let csv = "username,full_name\nalice,Alice\n,Nobody\nbob,Bob\n";
        std::fs::write(dir.path().join("users.csv"), csv).unwrap();
        let cfg = Config::parse(
            "[sources.people]\nplugin = 'csv'\n[sources.people.config]\npath = 'users.csv'\n",
            dir.path(),
        )
        .unwrap();
        let mut store = Store::memory().unwrap();
        let rt = Runtime::new(dir.path().join("cache")).unwrap();
        let flags = SyncFlags::default();

        let mut rec = Recorder::default();
        let names = ["nope".to_string()];
        assert!(sync(&cfg, &mut store, &rt, &names, flags, &mut rec).is_err());
        assert!(rec.0.is_empty(), "{:?}", rec.0);

        sync(&cfg, &mut store, &rt, &[], flags, &mut rec).unwrap();
        let (first, rest) = rec.0.split_first().unwrap();
        let (last, middle) = rest.split_last().unwrap();
        assert_eq!(first, "started people");
        assert_eq!(
            last,
            "finished people ok created 2 failed 1 errors [\"line 3\"]"
        );
        assert_eq!(middle.last().unwrap(), "merging people 3");
        assert!(middle[..middle.len() - 1]
            .iter()
            .all(|e| e.starts_with("read people ")));
    }

    /// The service's way in: a real sync of a CSV source from inside a tokio runtime, where
    /// calling a plugin directly would panic.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sync_runs_from_async_code_on_a_blocking_thread() {
        let dir = tempfile::tempdir().unwrap();
        let csv = "username,full_name\nalice,Alice\nbob,Bob\n";
        std::fs::write(dir.path().join("users.csv"), csv).unwrap();
        let cfg = Config::parse(
            "[sources.people]\nplugin = 'csv'\n[sources.people.config]\npath = 'users.csv'\n",
            dir.path(),
        )
        .unwrap();
        let rt = Arc::new(Runtime::new(dir.path().join("cache")).unwrap());
        let store = Store::open(&dir.path().join("roster.db")).unwrap();
        let flags = SyncFlags::default();
        let done = sync_blocking(
            Arc::new(cfg),
            rt,
            store,
            Vec::new(),
            flags,
            Recorder::default(),
        )
        .await;
        done.result.unwrap();
        assert_eq!(
            done.observer.0.last().unwrap(),
            "finished people ok created 2 failed 0 errors []"
        );
        assert_eq!(done.store.source_counts("people").unwrap(), (2, 2));
    }

    #[tokio::test]
    async fn a_sync_runs_from_a_current_thread_runtime_too() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("u.csv"), "username\nalice\n").unwrap();
        let cfg = Config::parse(
            "[sources.p]\nplugin = 'csv'\n[sources.p.config]\npath = 'u.csv'\n",
            dir.path(),
        )
        .unwrap();
        let rt = Arc::new(Runtime::new(dir.path().join("cache")).unwrap());
        let store = Store::memory().unwrap();
        let done = sync_blocking(
            Arc::new(cfg),
            rt,
            store,
            vec!["p".into()],
            SyncFlags::default(),
            Recorder::default(),
        )
        .await;
        done.result.unwrap();
        assert_eq!(
            done.observer.0.last().unwrap(),
            "finished p ok created 1 failed 0 errors []"
        );
    }
}
