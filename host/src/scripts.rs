//! Sandboxed Rhai scripts, run by the built-in `script` plugin: the mapping stage of a sync
//! (`[sources.NAME] mapping = "map.rhai"`), and what `roster script check` / `run` do.
//!
//! The script runs inside the plugin's component under the source's deadline and memory cap,
//! and inside Rhai under an operation budget and size limits. The host reads a mapping
//! script's text and hands it over in `init`; the plugin reads nothing it was not granted.

use crate::caps::grant::grant_mapping;
use crate::caps::Capabilities;
use crate::config::{config_err, Config, OnScriptError, SourceConfig};
use crate::mapping::Mapper;
use crate::reconcile::UserRecord;
use crate::runtime::{
    Limits, MapResult, MappingPlugin, ObjectKind, RunMode, RunRequest, Runtime, SourceObject,
};
use crate::session::{self, EntrySink, Incoming};
use crate::store::Store;
use anyhow::{anyhow, Context, Result};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// The built-in plugin that runs scripts.
pub const PLUGIN: &str = "script";

/// What a mapping script made of one user.
#[derive(Debug)]
pub enum Scripted {
    Keep(SourceObject),
    /// Dropped: not synced, not missing.
    Drop {
        id: String,
        locator: String,
    },
    /// The script failed on this entry (with `on_script_error = "skip"`).
    Failed {
        locator: String,
        reason: String,
    },
}

/// A source's mapping script, ready to map batches of users.
pub struct MappingStage {
    plugin: MappingPlugin,
    on_error: OnScriptError,
}

fn locator(o: &SourceObject) -> String {
    o.locator.clone().unwrap_or_else(|| o.id.clone())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Instantiates the script plugin's mapping side and hands it `config` (JSON).
fn mapping_plugin(
    rt: &Runtime,
    limits: Limits,
    caps: Capabilities,
    config: &serde_json::Value,
) -> Result<MappingPlugin> {
    let bytes = crate::plugins::builtin(PLUGIN).context("the script plugin is not built in")?;
    let component = rt.load(bytes)?;
    let mut plugin = rt.instantiate_mapper(&component, limits, caps)?;
    plugin.init(&config.to_string())?;
    Ok(plugin)
}

impl MappingStage {
    /// The stage for `src`, if it has a `mapping` script. The script is read and compiled
    /// here: a missing file or a syntax error fails the run before it begins.
    pub fn prepare(cfg: &Config, src: &SourceConfig, rt: &Runtime) -> Result<Option<Self>> {
        let Some(path) = &src.mapping else {
            return Ok(None);
        };
        let ctx = format!("sources.{}.mapping", src.name);
        let text = std::fs::read_to_string(path)
            .map_err(|e| config_err(format!("{ctx}: cannot read {}: {e}", path.display())))?;
        let mut config = serde_json::json!({ "name": file_name(path), "script": text });
        if let Some(n) = src.script_max_operations {
            config["max_operations"] = n.into();
        }
        let limits = Limits {
            timeout: src.timeout,
            memory: src.memory_limit,
        };
        let plugin = mapping_plugin(rt, limits, grant_mapping(src, &cfg.dir), &config)
            .map_err(|e| config_err(format!("{ctx}: {e:#}")))?;
        Ok(Some(MappingStage {
            plugin,
            on_error: src.on_script_error,
        }))
    }

    /// Maps a batch of users. With `on_script_error = "fail"`, a script error on any entry
    /// is an error for the whole run, naming the entry.
    pub fn map(&mut self, objects: Vec<SourceObject>) -> Result<Vec<Scripted>> {
        if objects.is_empty() {
            return Ok(Vec::new());
        }
        let results = self.plugin.transform(&objects)?;
        objects
            .into_iter()
            .zip(results)
            .map(|(o, r)| match r {
                Ok(MapResult::Keep(mut kept)) => {
                    // The script maps attributes; the entry stays the source's.
                    kept.kind = o.kind;
                    kept.id = o.id;
                    kept.locator = o.locator;
                    Ok(Scripted::Keep(kept))
                }
                Ok(MapResult::Drop) => Ok(Scripted::Drop {
                    locator: locator(&o),
                    id: o.id,
                }),
                Err(reason) => match self.on_error {
                    OnScriptError::Skip => Ok(Scripted::Failed {
                        locator: locator(&o),
                        reason,
                    }),
                    OnScriptError::Fail => Err(anyhow!(
                        "mapping script failed on {}: {reason} (on_script_error = \"fail\"; \
                         \"skip\" makes it a failed entry)",
                        locator(&o)
                    )),
                },
            })
            .collect()
    }
}

/// Compiles a script without running it. `Err` is the compile error with its position.
pub fn check(rt: &Runtime, path: &Path) -> Result<std::result::Result<(), String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| config_err(format!("cannot read {}: {e}", path.display())))?;
    let config = serde_json::json!({ "name": file_name(path), "script": text, "check": true });
    let limits = Limits {
        timeout: Duration::from_secs(60),
        memory: 256 << 20,
    };
    match mapping_plugin(rt, limits, Capabilities::none("script check"), &config) {
        Ok(_) => Ok(Ok(())),
        // The plugin reports a script that does not compile as its config error.
        Err(e) => match e.downcast_ref::<crate::runtime::CallError>() {
            Some(crate::runtime::CallError::Plugin(p)) => Ok(Err(match p.kind {
                crate::runtime::PluginErrorKind::Config => p.message.clone(),
                _ => p.to_string(),
            })),
            _ => Err(e),
        },
    }
}

/// One entry of `roster script run`.
#[derive(Debug, Serialize)]
pub struct RunEntry {
    pub entry: String,
    /// "user", "group", "dropped" or "failed".
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<UserRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// How `roster script run` runs a script.
pub struct RunOptions<'a> {
    /// The script: a source script, or with `input` a mapping script.
    pub script: &'a Path,
    /// The config and source whose limits, grants, options and `[map]` apply.
    pub source: Option<(&'a Config, &'a str)>,
    /// Sample entries (a JSON array of objects) for a mapping script.
    pub input: Option<&'a Path>,
}

/// Runs a script as `roster script run` does: a source script to its end, or a mapping
/// script over sample entries; the users it yields are mapped as a sync would map them.
/// Nothing is written.
pub fn run(rt: &Runtime, opts: &RunOptions) -> Result<Vec<RunEntry>> {
    // Absolute, so it means the same file whichever directory grants resolve against.
    let script_path = opts
        .script
        .canonicalize()
        .map_err(|e| config_err(format!("cannot read {}: {e}", opts.script.display())))?;
    let script = script_path.to_string_lossy().into_owned();
    // Without a source, a bare one beside the script: default limits, nothing granted.
    let bare;
    let (cfg, src) = match opts.source {
        Some((cfg, name)) => (cfg, cfg.source(name)?),
        None => {
            let dir = script_path.parent().unwrap_or(Path::new("/"));
            bare = Config::parse("[sources.script]\nplugin = 'script'\n", dir)?;
            (&bare, &bare.sources[0])
        }
    };
    let (_, mapper) = session::mapping(src, &[], b"roster script run".to_vec())?;
    let mut out = Vec::new();
    if let Some(input) = opts.input {
        let mut with_script = src.clone();
        with_script.mapping = Some(script_path.clone());
        let mut stage =
            MappingStage::prepare(cfg, &with_script, rt)?.expect("a mapping script is set");
        let objects = read_input(input)?;
        for s in stage.map(objects)? {
            out.push(mapped(&mapper, s));
        }
        return Ok(out);
    }
    // A source script: the source's own config, with this script.
    let mut source = src.clone();
    source.plugin = PLUGIN.into();
    source
        .config
        .insert("script".into(), toml::Value::String(script));
    let mut prepared = session::prepare(cfg, &source, None::<&Store>, rt)?;
    let stage = MappingStage::prepare(cfg, &source, rt)?;
    let request = RunRequest {
        config: prepared.config_json.clone(),
        mode: RunMode::Full,
        cursor: None,
    };
    let mut sink = Shown {
        mapper: &mapper,
        stage,
        users: Vec::new(),
        out,
    };
    session::drive(&mut prepared.plugin, &request, &mut sink)?;
    Ok(sink.out)
}

/// `script run`'s sink: a batch's users go through the mapping script (if any) at its end,
/// then the mapping; groups, removals and failed entries are shown as they come.
struct Shown<'a> {
    mapper: &'a Mapper,
    stage: Option<MappingStage>,
    users: Vec<SourceObject>,
    out: Vec<RunEntry>,
}

impl Shown<'_> {
    fn show(&mut self, entry: String, kind: &'static str, group: Option<String>) -> Result<bool> {
        self.out.push(RunEntry {
            entry,
            kind,
            user: None,
            group,
            reason: None,
        });
        Ok(true)
    }
}

impl EntrySink for Shown<'_> {
    fn entry(&mut self, entry: Incoming) -> Result<bool> {
        let obj = entry.into_object();
        if obj.kind == ObjectKind::User {
            self.users.push(obj);
            return Ok(true);
        }
        let name = crate::mapping::group_name(&obj);
        self.show(obj.id, "group", Some(name))
    }

    fn removed(&mut self, kind: ObjectKind, id: String) -> Result<bool> {
        let _ = kind;
        self.show(id, "removed", None)
    }

    fn failed(&mut self, locator: String, reason: String) -> Result<bool> {
        self.out.push(RunEntry {
            entry: locator,
            kind: "failed",
            user: None,
            group: None,
            reason: Some(reason),
        });
        Ok(true)
    }

    fn batch_end(&mut self) -> Result<bool> {
        let users = std::mem::take(&mut self.users);
        let scripted = match &mut self.stage {
            Some(stage) => stage.map(users)?,
            None => users.into_iter().map(Scripted::Keep).collect(),
        };
        let mapper = self.mapper;
        self.out
            .extend(scripted.into_iter().map(|s| mapped(mapper, s)));
        Ok(true)
    }
}

fn mapped(mapper: &Mapper, s: Scripted) -> RunEntry {
    match s {
        Scripted::Keep(o) => {
            let entry = locator(&o);
            match mapper.map(&o) {
                Ok(m) => RunEntry {
                    entry,
                    kind: "user",
                    user: Some(m.record),
                    group: None,
                    reason: None,
                },
                Err(reason) => RunEntry {
                    entry,
                    kind: "failed",
                    user: None,
                    group: None,
                    reason: Some(reason),
                },
            }
        }
        Scripted::Drop { locator, .. } => RunEntry {
            entry: locator,
            kind: "dropped",
            user: None,
            group: None,
            reason: None,
        },
        Scripted::Failed { locator, reason } => RunEntry {
            entry: locator,
            kind: "failed",
            user: None,
            group: None,
            reason: Some(reason),
        },
    }
}

/// Sample entries: a JSON array of objects whose values are strings or lists of strings.
/// An entry's anchor is its `id`, else its `username`, else its position.
fn read_input(path: &Path) -> Result<Vec<SourceObject>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| config_err(format!("cannot read {}: {e}", path.display())))?;
    let entries: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_str(&text)
        .map_err(|e| {
            config_err(format!(
                "{}: expected a JSON array of objects: {e}",
                path.display()
            ))
        })?;
    let text_of = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Ok(entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let username = e.get("username").map(text_of);
            let id = e.get("id").map(text_of).or(username);
            let attributes = e
                .iter()
                .filter(|(k, _)| k.as_str() != "id")
                .map(|(k, v)| crate::runtime::Attribute {
                    name: k.clone(),
                    values: match v {
                        serde_json::Value::Array(a) => a.iter().map(text_of).collect(),
                        serde_json::Value::Null => Vec::new(),
                        v => vec![text_of(v)],
                    },
                })
                .collect();
            SourceObject {
                kind: ObjectKind::User,
                id: id.unwrap_or_else(|| format!("entry {}", i + 1)),
                locator: Some(format!("entry {}", i + 1)),
                attributes,
                member_of: Vec::new(),
                members: Vec::new(),
                parent: None,
            }
        })
        .collect())
}
