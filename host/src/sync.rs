//! One sync: for each source, plugin batches → mapping → staging → set-based merge → run log.
//!
//! The engine prints nothing: it reports progress and results to a [`SyncObserver`].

use crate::bindings::KeyType;
use crate::caps::files::Grants;
use crate::caps::http::HttpCtx;
use crate::caps::ldap::{LdapCtx, LdapSettings};
use crate::config::{config_err, resolve_string, Config, ConfigError, SourceConfig};
use crate::mapping::Mapper;
use crate::runtime::{
    Attribute, CallError, Entry, Limits, ObjectKind, Plugin, PluginInfo, Row, RunMode, RunRequest,
    Runtime, SourceObject,
};
use crate::scripts::{MappingStage, Scripted};
use crate::store::{Counts, Outcome, PlanItem, Status, Store};
use anyhow::{anyhow, Result};
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
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SyncFlags {
    pub dry_run: bool,
    pub force: bool,
}

/// Receives a sync's progress and results, like ripgrep's `Sink`: the CLI shows them as
/// progress bars and tables or as JSON, a daemon as events. Calls come from the thread that
/// called [`sync`], in order, per source: `source_started`, any number of `entries_read`
/// and `notice`, `merging` (if the entries were all read), and always `source_finished`.
pub trait SyncObserver {
    /// The source's run starts: its plugin loads next.
    fn source_started(&mut self, _source: &str) {}
    /// `entries` entries of the source have been read and staged so far.
    fn entries_read(&mut self, _source: &str, _entries: u64) {}
    /// All `entries` were read; the merge into the database begins.
    fn merging(&mut self, _source: &str, _entries: u64) {}
    /// The plugin reported something the admin should know.
    fn notice(&mut self, _source: &str, _notice: &str) {}
    /// The source's run ended, whichever way.
    fn source_finished(&mut self, result: SourceResult);
}

/// A loaded, configured plugin ready for a run or a test.
pub struct Prepared {
    pub plugin: Plugin,
    pub info: PluginInfo,
    pub config_json: String,
}

/// Loads a source's plugin, checks its config against the keys the plugin declares, and
/// grants it exactly the files its `file` keys (and `files = [...]`) name.
pub fn prepare(
    cfg: &Config,
    src: &SourceConfig,
    store: Option<&Store>,
    rt: &Runtime,
) -> Result<Prepared> {
    let bytes = crate::plugins::resolve(&src.plugin, store, &cfg.database, &cfg.dir)?;
    let component = rt
        .load(&bytes)
        .map_err(|e| anyhow!("plugin {}: {e:#}", src.plugin))?;
    let limits = Limits {
        timeout: src.timeout,
        memory: src.memory_limit,
    };
    let mut plugin = rt.instantiate(&component, &src.name, limits, Grants::new(&cfg.dir))?;
    let info = plugin.info()?;
    let (config_json, grants) = plugin_config(src, &info, &cfg.dir)?;
    // A plugin gets only the capabilities it declared, whatever the config would grant.
    let declares = |name: &str| info.capabilities.iter().any(|c| c.name == name);
    plugin.set_grants(grants);
    plugin.capabilities().files.declared = declares("files");
    // Only a plugin that declares `ldap` gets the source's connection, when it has one (the
    // plugin's own config keys say whether `url` is required).
    if declares("ldap") && src.config.contains_key("url") {
        let ctx = format!("sources.{}.config", src.name);
        let settings = LdapSettings::from_config(&src.config, &cfg.dir, &ctx)
            .map_err(|e| config_err(format!("{e:#}")))?;
        plugin.capabilities().ldap = LdapCtx::new(settings);
    }
    if declares("http") {
        let ctx = format!("sources.{}.config", src.name);
        plugin.capabilities().http = HttpCtx::from_config(&info, &src.config, &cfg.dir, &ctx)
            .map_err(|e| config_err(format!("{e:#}")))?;
    }
    Ok(Prepared {
        plugin,
        info,
        config_json,
    })
}

/// The JSON handed to the plugin: secret-typed keys withheld, references resolved.
fn plugin_config(
    src: &SourceConfig,
    info: &PluginInfo,
    dir: &std::path::Path,
) -> Result<(String, Grants)> {
    let ctx = format!("sources.{}.config", src.name);
    let mut grants = Grants::new(dir);
    for f in &src.files {
        grants.grant(f);
    }
    let mut out = serde_json::Map::new();
    for (key, value) in &src.config {
        let Some(decl) = info.config_keys.iter().find(|k| &k.name == key) else {
            let known: Vec<_> = info.config_keys.iter().map(|k| k.name.as_str()).collect();
            return Err(config_err(format!(
                "{ctx}: unknown key `{key}` (plugin {} accepts: {})",
                info.name,
                known.join(", ")
            )));
        };
        let json = match (decl.type_, value) {
            (KeyType::Secret, v) => {
                // Resolved to prove it is usable; never handed to the plugin.
                resolve_string(v, dir, &format!("{ctx}.{key}"))
                    .map_err(|e| config_err(format!("{e:#}")))?;
                continue;
            }
            (KeyType::File, v) => {
                let path = resolve_string(v, dir, &format!("{ctx}.{key}"))
                    .map_err(|e| config_err(format!("{e:#}")))?
                    .0;
                grants.grant(&path);
                serde_json::Value::String(path)
            }
            (KeyType::Files, toml::Value::Array(a)) => {
                let mut paths = Vec::new();
                for (i, v) in a.iter().enumerate() {
                    let path = resolve_string(v, dir, &format!("{ctx}.{key}[{i}]"))
                        .map_err(|e| config_err(format!("{e:#}")))?
                        .0;
                    grants.grant(&path);
                    paths.push(serde_json::Value::String(path));
                }
                paths.into()
            }
            (KeyType::Files | KeyType::Urls, v) if !v.is_array() => {
                return Err(config_err(format!(
                    "{ctx}.{key}: expected a list of {}, got {v}",
                    if decl.type_ == KeyType::Files {
                        "paths"
                    } else {
                        "URLs"
                    }
                )));
            }
            (KeyType::Boolean, toml::Value::Boolean(b)) => (*b).into(),
            (KeyType::Integer, toml::Value::Integer(i)) => (*i).into(),
            (KeyType::Boolean | KeyType::Integer, v) => {
                return Err(config_err(format!(
                    "{ctx}.{key}: expected a {}, got {v}",
                    if decl.type_ == KeyType::Boolean {
                        "boolean"
                    } else {
                        "integer"
                    }
                )));
            }
            (_, v) => toml_to_json(v, dir, &format!("{ctx}.{key}"))?,
        };
        out.insert(key.clone(), json);
    }
    // `[sources.NAME] script_max_operations` is the budget of a script source's run too.
    if let Some(n) = src.script_max_operations {
        if info.config_keys.iter().any(|k| k.name == "max_operations")
            && !out.contains_key("max_operations")
        {
            out.insert("max_operations".into(), n.into());
        }
    }
    for k in info.config_keys.iter().filter(|k| k.required) {
        if !src.config.contains_key(&k.name) {
            return Err(config_err(format!(
                "{ctx}: missing required key `{}` ({})",
                k.name, k.description
            )));
        }
    }
    Ok((serde_json::Value::Object(out).to_string(), grants))
}

fn toml_to_json(v: &toml::Value, dir: &std::path::Path, ctx: &str) -> Result<serde_json::Value> {
    Ok(match v {
        toml::Value::String(s) => s.clone().into(),
        toml::Value::Integer(i) => (*i).into(),
        toml::Value::Float(f) => (*f).into(),
        toml::Value::Boolean(b) => (*b).into(),
        toml::Value::Datetime(d) => d.to_string().into(),
        toml::Value::Array(a) => a
            .iter()
            .map(|v| toml_to_json(v, dir, ctx))
            .collect::<Result<Vec<_>>>()?
            .into(),
        toml::Value::Table(t) => {
            if t.len() == 1 && (t.contains_key("env") || t.contains_key("file")) {
                return Ok(resolve_string(v, dir, ctx)
                    .map_err(|e| config_err(format!("{e:#}")))?
                    .0
                    .into());
            }
            let mut m = serde_json::Map::new();
            for (k, v) in t {
                m.insert(k.clone(), toml_to_json(v, dir, &format!("{ctx}.{k}"))?);
            }
            m.into()
        }
    })
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

/// A run that failed as a whole: nothing it did was kept.
fn failed(
    src: &SourceConfig,
    flags: SyncFlags,
    run_id: Option<i64>,
    e: anyhow::Error,
) -> SourceResult {
    let message = match e.downcast_ref::<CallError>() {
        Some(c) => c.to_string(),
        None => format!("{e:#}"),
    };
    tracing::error!(
        "source {}: run failed, nothing was changed: {message}",
        src.name
    );
    SourceResult {
        source: src.name.clone(),
        run_id,
        status: Status::Failed,
        dry_run: flags.dry_run,
        mode: "full",
        counts: Counts::default(),
        errors: Vec::new(),
        message: Some(message),
        notices: Vec::new(),
        plan: flags.dry_run.then(Vec::new),
        config_error: e.downcast_ref::<ConfigError>().is_some(),
    }
}

/// Records a run that failed before it began.
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
    let setup = (|| -> Result<_> {
        let prepared = prepare(cfg, src, Some(store), rt)?;
        let opts = src
            .options(&prepared.info.defaults)
            .map_err(|e| config_err(format!("sources.{}: {e:#}", src.name)))?;
        let mapper = Mapper::new(&src.map, opts.lowercase_usernames, store.pin_key()?)
            .map_err(|e| config_err(format!("sources.{}.map: {e:#}", src.name)))?
            .bind(&format!("pair_by {:?}", opts.pair_by));
        let cursor = store.cursor(&src.name)?;
        let stage = MappingStage::prepare(cfg, src, rt)?;
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
    let request = RunRequest {
        config: prepared.config_json.clone(),
        mode: if cursor.is_some() {
            RunMode::Delta
        } else {
            RunMode::Full
        },
        cursor,
    };
    // Everything the plugin sends goes into the run's transaction; any error rolls it back.
    // Two threads: one drives the plugin, the other maps and stages into SQLite. A bounded
    // channel keeps at most a few batches in flight, so memory stays bounded.
    let started = std::time::Instant::now();
    let plugin = &mut prepared.plugin;
    let mapper = &mapper;
    let stage = &mut stage;
    let result = std::thread::scope(|scope| -> Result<Outcome> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Item>>(2);
        // A mapping script runs on a thread of its own between the two, so reading,
        // scripting and staging overlap.
        let (tx, script) = match stage.as_mut() {
            None => (tx, None),
            Some(stage) => {
                let (to_script, from_reader) = std::sync::mpsc::sync_channel::<Vec<Item>>(2);
                let script = scope.spawn(move || -> Result<()> {
                    let mut busy = std::time::Duration::ZERO;
                    let mut users = 0u64;
                    for items in from_reader {
                        let t = std::time::Instant::now();
                        users += items.iter().filter(|i| matches!(i, Item::User(_))).count() as u64;
                        let items = scripted(stage, items)?;
                        busy += t.elapsed();
                        if tx.send(items).is_err() {
                            anyhow::bail!("staging stopped");
                        }
                    }
                    tracing::debug!(
                        "mapping script busy {busy:?} for {users} users ({:.1} µs per user)",
                        busy.as_secs_f64() * 1e6 / users.max(1) as f64
                    );
                    Ok(())
                });
                (to_script, Some(script))
            }
        };
        let reader = scope.spawn(move || -> Result<crate::runtime::RunEnd> {
            let session = plugin.open(&request)?;
            let mut busy = std::time::Duration::ZERO;
            let mut t = std::time::Instant::now();
            while let Some(batch) = plugin.next_batch(&session)? {
                busy += t.elapsed();
                let columns: Arc<[String]> = batch.columns.into();
                let items: Vec<Item> = (batch.entries.into_iter())
                    .map(|e| Item::from_entry(e, &columns))
                    .collect();
                if tx.send(items).is_err() {
                    anyhow::bail!("staging stopped");
                }
                t = std::time::Instant::now();
            }
            tracing::debug!("plugin thread busy {busy:?}");
            drop(tx);
            Ok(plugin.finish(&session)?)
        });
        let mut seen = 0u64;
        let mut names = SeenNames::default();
        let staged = (|| -> Result<()> {
            let mut busy = std::time::Duration::ZERO;
            for items in &rx {
                let t = std::time::Instant::now();
                seen += items.len() as u64;
                for item in items {
                    names.note(&item);
                    item.stage(&mut run, mapper)?;
                }
                busy += t.elapsed();
                observer.entries_read(&src.name, seen);
            }
            tracing::debug!("staging thread busy {busy:?}");
            Ok(())
        })();
        // On a staging error the reader (and the script) stop at their next send.
        drop(rx);
        let end = reader
            .join()
            .map_err(|_| anyhow!("the plugin thread panicked"))?;
        staged?;
        // A script error comes before the reader's "staging stopped" it caused.
        if let Some(script) = script {
            script
                .join()
                .map_err(|_| anyhow!("the mapping script thread panicked"))??;
        }
        let mut end = end?;
        end.notices
            .extend(names.notices(mapper, &src.config, warn_unused));
        tracing::debug!(
            "source {}: {seen} entries read and staged in {:?}",
            src.name,
            started.elapsed()
        );
        for n in &end.notices {
            tracing::warn!("source {}: {n}", src.name);
            observer.notice(&src.name, n);
        }
        observer.merging(&src.name, seen);
        run.finish(
            end.mode == RunMode::Full,
            end.cursor,
            end.notices,
            flags.force,
        )
    });
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            // `run` was consumed or is dropped here: its transaction rolls back.
            let run_id = close_failed_run(cfg, src, store, flags, &e);
            return failed(src, flags, run_id, e);
        }
    };
    if let (Some(id), Status::Aborted) = (outcome.run_id, outcome.status) {
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
        plan: flags.dry_run.then_some(outcome.plan),
        config_error: false,
    }
}

/// The attribute names a source sent with its users, for one warning per run about those
/// that fill nothing (a misspelt header) and about a password column.
#[derive(Default)]
struct SeenNames {
    names: indexmap::IndexSet<String>,
    /// A batch's columns are noted once, not per row.
    last_columns: Option<Arc<[String]>>,
}

impl SeenNames {
    fn note(&mut self, item: &Item) {
        let Item::User(incoming) = item else { return };
        match incoming {
            Incoming::Row(columns, _) => {
                if (self.last_columns.as_ref()).is_some_and(|l| Arc::ptr_eq(l, columns)) {
                    return;
                }
                for c in columns.iter() {
                    self.add(c);
                }
                self.last_columns = Some(columns.clone());
            }
            Incoming::Object(o) => {
                for a in &o.attributes {
                    self.add(&a.name);
                }
            }
        }
    }

    fn add(&mut self, name: &str) {
        if !self.names.contains(name) {
            self.names.insert(name.to_string());
        }
    }

    /// Names in the connector's own config (such as a CSV `id_column`) count as used.
    fn notices(&self, mapper: &Mapper, config: &toml::Table, warn_unused: bool) -> Vec<String> {
        let named = |n: &str| {
            config.values().any(|v| match v {
                toml::Value::String(s) => s == n,
                toml::Value::Array(a) => a.iter().any(|v| v.as_str() == Some(n)),
                _ => false,
            })
        };
        let mut notices = Vec::new();
        if let Some(p) = (self.names.iter())
            .find(|n| crate::mapping::normalise_name(n) == crate::mapping::PASSWORD)
        {
            notices.push(format!(
                "column {p:?} is not imported: roster never syncs passwords. Leave it out of \
                 the export"
            ));
        }
        let unused: Vec<&str> = (mapper.unused(self.names.iter().map(String::as_str)))
            .into_iter()
            .filter(|n| warn_unused && !named(n))
            .collect();
        if !unused.is_empty() {
            let list: Vec<String> = unused.iter().map(|n| format!("{n:?}")).collect();
            notices.push(format!(
                "{} fill{} no roster field and no [map] template: {}. Check the spelling, or \
                 use {} in a template",
                if unused.len() == 1 {
                    "this attribute"
                } else {
                    "these attributes"
                },
                if unused.len() == 1 { "s" } else { "" },
                list.join(", "),
                if unused.len() == 1 { "it" } else { "them" },
            ));
        }
        notices
    }
}

/// A user as the plugin sent it.
enum Incoming {
    Object(SourceObject),
    /// A row and its batch's columns (as many as the row has value lists).
    Row(Arc<[String]>, Row),
}

impl Incoming {
    fn id(&self) -> &str {
        match self {
            Incoming::Object(o) => &o.id,
            Incoming::Row(_, r) => &r.id,
        }
    }

    fn locator(&self) -> &str {
        match self {
            Incoming::Object(o) => o.locator.as_deref().unwrap_or(&o.id),
            Incoming::Row(_, r) => r.locator.as_deref().unwrap_or(&r.id),
        }
    }

    fn member_of(&self) -> &[String] {
        match self {
            Incoming::Object(o) => &o.member_of,
            Incoming::Row(_, r) => &r.member_of,
        }
    }

    fn raw_hash(&self, mapper: &Mapper) -> i64 {
        match self {
            Incoming::Object(o) => mapper.raw_hash(o),
            Incoming::Row(columns, r) => mapper.raw_hash_of(
                &r.id,
                (columns.iter().map(String::as_str)).zip(r.values.iter().map(Vec::as_slice)),
            ),
        }
    }

    fn into_object(self) -> SourceObject {
        match self {
            Incoming::Object(o) => o,
            Incoming::Row(columns, r) => SourceObject {
                kind: r.kind,
                id: r.id,
                locator: r.locator,
                attributes: (columns.iter().zip(r.values))
                    .map(|(name, values)| Attribute {
                        name: name.clone(),
                        values,
                    })
                    .collect(),
                member_of: r.member_of,
                members: r.members,
                parent: r.parent,
            },
        }
    }
}

/// Runs a batch's users through the mapping script; other items pass as they are.
fn scripted(stage: &mut MappingStage, items: Vec<Item>) -> Result<Vec<Item>> {
    let mut users = Vec::new();
    let mut slots: Vec<Option<Item>> = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Item::User(incoming) => {
                users.push(incoming.into_object());
                slots.push(None);
            }
            other => slots.push(Some(other)),
        }
    }
    let mut results = stage.map(users)?.into_iter();
    Ok(slots
        .into_iter()
        .map(|slot| {
            slot.unwrap_or_else(|| match results.next().expect("one result per user") {
                Scripted::Keep(o) => Item::User(Incoming::Object(o)),
                Scripted::Drop { id, locator } => Item::Dropped {
                    anchor: id,
                    locator,
                },
                Scripted::Failed { locator, reason } => Item::Failed { locator, reason },
            })
        })
        .collect())
}

/// One entry from the plugin thread, to be staged on the database thread.
enum Item {
    User(Incoming),
    Group {
        anchor: String,
        name: String,
        parent: Option<String>,
        member_of: Vec<String>,
        members: Vec<String>,
    },
    Removed {
        kind: &'static str,
        anchor: String,
    },
    Failed {
        locator: String,
        reason: String,
    },
    /// A user the mapping script dropped.
    Dropped {
        anchor: String,
        locator: String,
    },
}

impl Item {
    fn from_entry(e: Entry, columns: &Arc<[String]>) -> Item {
        match e {
            Entry::Object(obj) if obj.kind == ObjectKind::User => Item::User(Incoming::Object(obj)),
            Entry::Row(r) if r.values.len() != columns.len() => Item::Failed {
                locator: r.locator.unwrap_or(r.id),
                reason: format!(
                    "the plugin sent a row that does not fit its batch's columns \
                     ({} value lists, {} columns)",
                    r.values.len(),
                    columns.len()
                ),
            },
            Entry::Row(r) if r.kind == ObjectKind::User => {
                Item::User(Incoming::Row(columns.clone(), r))
            }
            Entry::Row(r) => Item::from_entry(
                Entry::Object(Incoming::Row(columns.clone(), r).into_object()),
                columns,
            ),
            Entry::Object(obj) => Item::Group {
                name: crate::mapping::group_name(&obj),
                anchor: obj.id,
                parent: obj.parent,
                member_of: obj.member_of,
                members: obj.members,
            },
            Entry::Removed(r) => Item::Removed {
                kind: if r.kind == ObjectKind::User {
                    "user"
                } else {
                    "group"
                },
                anchor: r.id,
            },
            Entry::Failed(f) => Item::Failed {
                locator: f.locator,
                reason: f.reason,
            },
        }
    }

    /// Users are mapped here, on the database thread: it balances the two threads' work.
    fn stage(self, run: &mut crate::store::Run<'_>, mapper: &Mapper) -> Result<()> {
        match self {
            Item::User(incoming) => {
                let raw = incoming.raw_hash(mapper);
                if run.stage_unchanged(raw, incoming.locator()) {
                    return run.stage_edges(incoming.id(), incoming.member_of(), &[]);
                }
                let obj = incoming.into_object();
                let locator = obj.locator.as_deref().unwrap_or(&obj.id);
                match mapper.map(&obj) {
                    Ok(m) => {
                        run.stage(locator, &obj.id, raw, m)?;
                        run.stage_edges(&obj.id, &obj.member_of, &[])
                    }
                    Err(reason) => run.fail(locator, &reason),
                }
            }
            Item::Group {
                anchor,
                name,
                parent,
                member_of,
                members,
            } => {
                run.stage_group(&anchor, &anchor, &name, parent.as_deref())?;
                run.stage_edges(&anchor, &member_of, &members)
            }
            Item::Removed { kind, anchor } => run.stage_removal(kind, &anchor),
            Item::Failed { locator, reason } => run.fail(&locator, &reason),
            Item::Dropped { anchor, locator } => run.stage_dropped(&anchor, &locator),
        }
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
        Some(c) => c.to_string(),
        None => format!("{e:#}"),
    };
    close_run(cfg, src, store, id, Status::Failed, &message);
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(values: Vec<Vec<String>>) -> Row {
        Row {
            kind: ObjectKind::User,
            id: "u1".into(),
            locator: Some("line 2".into()),
            values,
            member_of: vec!["g1".into()],
            members: Vec::new(),
            parent: None,
        }
    }

    fn columns() -> Arc<[String]> {
        vec!["username".to_string(), "cards".to_string()].into()
    }

    #[test]
    fn a_row_means_the_object_with_its_columns_as_names() {
        let values = vec![vec!["alice".to_string()], vec!["C1".into(), "C2".into()]];
        let Item::User(incoming) = Item::from_entry(Entry::Row(row(values)), &columns()) else {
            panic!("a user row is a user");
        };
        let mapper = Mapper::new(&[], false, b"k".to_vec()).unwrap();
        let raw = incoming.raw_hash(&mapper);
        assert_eq!(incoming.locator(), "line 2");
        let obj = incoming.into_object();
        assert_eq!(
            (obj.attributes.iter())
                .map(|a| (a.name.as_str(), a.values.len()))
                .collect::<Vec<_>>(),
            [("username", 1), ("cards", 2)]
        );
        assert_eq!(obj.member_of, ["g1"]);
        // Sent as a row or as an object, it is the same entry: a resync sees it unchanged.
        assert_eq!(mapper.raw_hash(&obj), raw);
        assert_eq!(mapper.map(&obj).unwrap().record.cards, ["C1", "C2"]);
    }

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

    #[test]
    fn a_row_with_the_wrong_number_of_values_is_a_failed_entry() {
        let item = Item::from_entry(Entry::Row(row(vec![vec!["alice".into()]])), &columns());
        let Item::Failed { locator, reason } = item else {
            panic!("a short row fails");
        };
        assert_eq!(locator, "line 2");
        assert_eq!(
            reason,
            "the plugin sent a row that does not fit its batch's columns (1 value lists, 2 columns)"
        );
    }
}
