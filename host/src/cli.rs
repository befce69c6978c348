//! The command line: parse, call the library, print. No logic of its own.

use crate::config::{config_err, Config, ConfigError};
use crate::runtime::{PluginInfo, Runtime};
use crate::store::{PluginRow, Status, Store};
use crate::sync::{self, SyncFlags};
use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "roster",
    version,
    about = "Sync users and groups from directories into roster's database"
)]
struct Cli {
    /// Config file.
    #[arg(
        long,
        global = true,
        env = "ROSTER_CONFIG",
        default_value = "roster.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a commented starter config.
    Init,
    /// Sync sources into the database.
    Sync {
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
    },
    /// Users in the database.
    #[command(subcommand)]
    Users(UsersCmd),
    /// Groups in the database.
    #[command(subcommand)]
    Groups(GroupsCmd),
    /// The run log.
    #[command(subcommand)]
    Runs(RunsCmd),
    /// Configured sources.
    #[command(subcommand)]
    Sources(SourcesCmd),
    /// Installed plugins.
    #[command(subcommand)]
    Plugin(PluginCmd),
}

#[derive(Subcommand)]
enum UsersCmd {
    List {
        /// Include inactive users.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// One user, by username or alias.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum GroupsCmd {
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum RunsCmd {
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

#[derive(Subcommand)]
enum SourcesCmd {
    List,
    /// Connect, authenticate, count, and show one sample mapped user.
    Test {
        name: String,
    },
}

#[derive(Subcommand)]
enum PluginCmd {
    /// Install a connector component into the plugin directory next to the database.
    Install {
        file: PathBuf,
        #[arg(long)]
        name: Option<String>,
    },
    List,
    /// Show a plugin's description, config keys and capabilities.
    Inspect {
        name: String,
    },
    Remove {
        name: String,
    },
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<ConfigError>().is_some() {
                2
            } else {
                1
            }
        }
    }
}

fn run(cli: Cli) -> Result<i32> {
    let path = &cli.config;
    match cli.command {
        Command::Init => {
            if path.exists() {
                return Err(config_err(format!(
                    "{} already exists; not overwriting it",
                    path.display()
                )));
            }
            std::fs::write(path, crate::config::STARTER)
                .with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}", path.display());
            Ok(0)
        }
        Command::Sync {
            sources,
            dry_run,
            force,
            json,
        } => {
            let cfg = Config::load(path)?;
            let t = std::time::Instant::now();
            let rt = runtime(&cfg)?;
            // A dry run against a database that does not exist yet must not create it.
            let mut store = if dry_run && !cfg.database.exists() {
                Store::memory()?
            } else {
                Store::open(&cfg.database)?
            };
            tracing::debug!("runtime and store ready in {:?}", t.elapsed());
            let progress = !json && std::io::stderr().is_terminal();
            let results = sync::sync(
                &cfg,
                &mut store,
                &rt,
                &sources,
                SyncFlags {
                    dry_run,
                    force,
                    progress,
                },
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&results)?);
            } else {
                print_sync(&results);
            }
            Ok(if results.iter().any(|r| r.config_error) {
                2
            } else if results.iter().all(|r| r.status == Status::Ok) {
                0
            } else {
                1
            })
        }
        Command::Users(cmd) => {
            let store = open_store(path)?;
            match cmd {
                UsersCmd::List { all, json } => {
                    let users = store.users(all)?;
                    if json {
                        println!("{}", serde_json::to_string_pretty(&users)?);
                    } else {
                        let rows = users.iter().map(|u| {
                            vec![
                                u.username.clone(),
                                u.full_name.clone().unwrap_or_default(),
                                u.email.clone().unwrap_or_default(),
                                u.groups.join(", "),
                                if u.active { "yes".into() } else { "no".into() },
                                u.source.clone().unwrap_or_default(),
                            ]
                        });
                        table(
                            &[
                                "USERNAME",
                                "FULL NAME",
                                "EMAIL",
                                "GROUPS",
                                "ACTIVE",
                                "SOURCE",
                            ],
                            rows,
                        );
                    }
                    Ok(0)
                }
                UsersCmd::Show { name, json } => {
                    let Some(u) = store.user(&name)? else {
                        eprintln!("error: no user or alias {name:?}");
                        return Ok(1);
                    };
                    if json {
                        println!("{}", serde_json::to_string_pretty(&u)?);
                    } else {
                        let v = serde_json::to_value(&u)?;
                        for (k, v) in v.as_object().unwrap() {
                            let shown = match v {
                                serde_json::Value::Null => String::new(),
                                serde_json::Value::String(s) => s.clone(),
                                serde_json::Value::Array(a) => a
                                    .iter()
                                    .map(|x| x.as_str().unwrap_or_default())
                                    .collect::<Vec<_>>()
                                    .join(", "),
                                other => other.to_string(),
                            };
                            println!("{k:>16}: {shown}");
                        }
                    }
                    Ok(0)
                }
            }
        }
        Command::Groups(GroupsCmd::List { json }) => {
            let groups = open_store(path)?.groups()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&groups)?);
            } else {
                let rows = groups
                    .iter()
                    .map(|g| vec![g.path.clone(), g.members.to_string()]);
                table(&["GROUP", "MEMBERS"], rows);
            }
            Ok(0)
        }
        Command::Runs(cmd) => {
            let store = open_store(path)?;
            match cmd {
                RunsCmd::List { json } => {
                    let runs = store.runs()?;
                    if json {
                        println!("{}", serde_json::to_string_pretty(&runs)?);
                    } else {
                        let rows = runs.iter().map(|r| {
                            vec![
                                r.id.to_string(),
                                r.source.clone(),
                                r.status.to_string(),
                                r.mode.clone().unwrap_or_default(),
                                r.started.clone(),
                                format!(
                                    "+{} ~{} ={} -{} ^{} x{} !{}",
                                    r.counts.created,
                                    r.counts.updated,
                                    r.counts.unchanged,
                                    r.counts.deactivated,
                                    r.counts.reactivated,
                                    r.counts.deleted,
                                    r.counts.failed
                                ),
                                r.message.clone().unwrap_or_default(),
                            ]
                        });
                        table(
                            &[
                                "ID",
                                "SOURCE",
                                "STATUS",
                                "MODE",
                                "STARTED",
                                "+new ~upd =same -deact ^react xdel !fail",
                                "MESSAGE",
                            ],
                            rows,
                        );
                    }
                    Ok(0)
                }
                RunsCmd::Show { id, json } => {
                    let Some(r) = store.run(id)? else {
                        eprintln!("error: no run {id}");
                        return Ok(1);
                    };
                    if json {
                        println!("{}", serde_json::to_string_pretty(&r)?);
                    } else {
                        println!(
                            "run {} of {}: {} ({})",
                            r.id,
                            r.source,
                            r.status,
                            r.mode.as_deref().unwrap_or("-")
                        );
                        println!(
                            "started {}, finished {}",
                            r.started,
                            r.finished.as_deref().unwrap_or("-")
                        );
                        println!(
                            "created {}, updated {}, unchanged {}, deactivated {}, reactivated {}, deleted {}, failed {}",
                            r.counts.created, r.counts.updated, r.counts.unchanged, r.counts.deactivated, r.counts.reactivated, r.counts.deleted, r.counts.failed
                        );
                        if let Some(m) = &r.message {
                            println!("message: {m}");
                        }
                        for n in &r.notices {
                            println!("notice: {n}");
                        }
                        let rows = r.events.iter().flatten().map(|e| {
                            vec![
                                e.action.clone(),
                                e.entry.clone(),
                                e.reason.clone().unwrap_or_default(),
                            ]
                        });
                        table(&["ACTION", "ENTRY", "DETAIL"], rows);
                    }
                    Ok(0)
                }
            }
        }
        Command::Sources(cmd) => {
            let cfg = Config::load(path)?;
            match cmd {
                SourcesCmd::List => {
                    let store = cfg
                        .database
                        .exists()
                        .then(|| Store::open(&cfg.database))
                        .transpose()?;
                    let runs = store
                        .as_ref()
                        .map(|st| st.runs())
                        .transpose()?
                        .unwrap_or_default();
                    let mut rows = Vec::new();
                    for s in &cfg.sources {
                        let (active, all) = match &store {
                            Some(st) => st.source_counts(&s.name)?,
                            None => (0, 0),
                        };
                        let last = runs.iter().find(|r| r.source == s.name);
                        rows.push(vec![
                            s.name.clone(),
                            s.plugin.clone(),
                            format!("{active} active / {all}"),
                            last.map(|r| format!("#{} {} {}", r.id, r.status, r.started))
                                .unwrap_or_else(|| "never".into()),
                        ]);
                    }
                    table(&["SOURCE", "PLUGIN", "USERS", "LAST RUN"], rows.into_iter());
                    Ok(0)
                }
                SourcesCmd::Test { name } => {
                    let src = cfg.source(&name)?;
                    let rt = runtime(&cfg)?;
                    let store = cfg
                        .database
                        .exists()
                        .then(|| Store::open(&cfg.database))
                        .transpose()?;
                    let mut p = sync::prepare(&cfg, src, store.as_ref(), &rt)?;
                    let report = p
                        .plugin
                        .test(&p.config_json)
                        .map_err(|e| anyhow!("{name}: {e}"))?;
                    println!("source {name} ({} {}): ok", p.info.name, p.info.version);
                    if let Some(n) = report.users {
                        println!("users:  {n}");
                    }
                    if let Some(n) = report.groups {
                        println!("groups: {n}");
                    }
                    for m in &report.messages {
                        println!("{m}");
                    }
                    if let Some(sample) = &report.sample {
                        let mapper = crate::mapping::Mapper::new(
                            &src.map,
                            src.options(&p.info.defaults)?.lowercase_usernames,
                            b"sample".to_vec(),
                        )?;
                        match mapper.map(sample) {
                            Ok(m) => {
                                let mut rec = m.record;
                                let has_pin = !rec.pins.is_empty();
                                rec.pins.clear();
                                println!("sample user (mapped):");
                                let v = serde_json::to_value(&rec)?;
                                for (k, v) in v.as_object().unwrap() {
                                    if k != "pins" {
                                        println!("{k:>16}: {v}");
                                    }
                                }
                                println!("{:>16}: {has_pin}", "has_pin");
                            }
                            Err(e) => println!("sample entry {} does not map: {e}", sample.id),
                        }
                    }
                    Ok(0)
                }
            }
        }
        Command::Plugin(cmd) => plugin_cmd(path, cmd),
    }
}

fn plugin_cmd(path: &Path, cmd: PluginCmd) -> Result<i32> {
    let cfg = Config::load(path)?;
    let store = Store::open(&cfg.database)?;
    let dir = crate::plugins::dir(&cfg.database);
    match cmd {
        PluginCmd::Install { file, name } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let info = inspect_bytes(&cfg, &bytes).map_err(|e| {
                anyhow!(
                    "{} is not a roster connector component: {e:#}",
                    file.display()
                )
            })?;
            let name = name.unwrap_or_else(|| info.name.clone());
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                bail!("plugin name {name:?} must be letters, digits, - or _");
            }
            if crate::plugins::builtin(&name).is_some() {
                bail!("{name} is a built-in plugin; install under another --name");
            }
            if store.plugin(&name)?.is_some() {
                bail!("a plugin named {name} is installed already; remove it first");
            }
            std::fs::create_dir_all(&dir)?;
            let sha = crate::plugins::sha256(&bytes);
            let fname = format!("{name}.wasm");
            std::fs::write(dir.join(&fname), &bytes)?;
            store.add_plugin(&PluginRow {
                name: name.clone(),
                file: fname,
                sha256: sha.clone(),
                version: info.version.clone(),
                description: info.description.clone(),
                installed_at: String::new(),
            })?;
            println!("installed {name} {} (sha256 {sha})", info.version);
            Ok(0)
        }
        PluginCmd::List => {
            let mut rows: Vec<Vec<String>> = crate::plugins::BUILTIN
                .iter()
                .map(|(n, b)| {
                    vec![
                        n.to_string(),
                        "built-in".into(),
                        crate::plugins::sha256(b)[..16].into(),
                    ]
                })
                .collect();
            rows.extend(store.plugins()?.into_iter().map(|p| {
                vec![
                    p.name,
                    format!("installed {} {}", p.version, p.installed_at),
                    p.sha256[..16].into(),
                ]
            }));
            table(&["NAME", "KIND", "SHA256"], rows.into_iter());
            Ok(0)
        }
        PluginCmd::Inspect { name } => {
            let bytes = crate::plugins::resolve(&name, Some(&store), &cfg.database, &cfg.dir)?;
            let info = inspect_bytes(&cfg, &bytes)?;
            println!("{} {}", info.name, info.version);
            println!("{}", info.description);
            println!("\nconfig keys:");
            for k in &info.config_keys {
                let req = if k.required { "required" } else { "optional" };
                let def = k
                    .default
                    .as_ref()
                    .map(|d| format!(", default {d}"))
                    .unwrap_or_default();
                println!(
                    "  {:<24} {:?}, {req}{def}: {}",
                    k.name, k.type_, k.description
                );
            }
            println!("\ncapabilities:");
            for c in &info.capabilities {
                println!("  {:<8} {}", c.name, c.reason);
            }
            if !info.defaults.is_empty() {
                println!("\nsuggested defaults:");
                for (k, v) in &info.defaults {
                    println!("  {k} = {v}");
                }
            }
            Ok(0)
        }
        PluginCmd::Remove { name } => {
            let Some(row) = store.plugin(&name)? else {
                eprintln!("error: no installed plugin {name}");
                return Ok(1);
            };
            store.remove_plugin(&name)?;
            std::fs::remove_file(dir.join(&row.file)).ok();
            println!("removed {name}");
            Ok(0)
        }
    }
}

/// Loads a component and asks it to describe itself.
fn inspect_bytes(cfg: &Config, bytes: &[u8]) -> Result<PluginInfo> {
    let rt = runtime(cfg)?;
    let component = rt.load(bytes)?;
    let limits = crate::runtime::Limits {
        timeout: std::time::Duration::from_secs(10),
        memory: 256 << 20,
    };
    let mut plugin = rt.instantiate(
        &component,
        "inspect",
        limits,
        crate::caps::files::Grants::new(&cfg.dir),
    )?;
    Ok(plugin.info()?)
}

fn runtime(cfg: &Config) -> Result<Runtime> {
    Runtime::new(crate::plugins::cache_dir(&cfg.database))
}

fn open_store(path: &Path) -> Result<Store> {
    let cfg = Config::load(path)?;
    Store::open(&cfg.database)
}

fn print_sync(results: &[sync::SourceResult]) {
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
    table(
        &[
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
        ],
        rows,
    );
    for r in results {
        if let Some(m) = &r.message {
            println!("\n{}: {m}", r.source);
        }
        for n in &r.notices {
            println!("{}: notice: {n}", r.source);
        }
        for e in r.errors.iter().take(50) {
            println!("{}: failed {}: {}", r.source, e.entry, e.reason);
        }
        if r.errors.len() > 50 {
            println!(
                "{}: ... and {} more failed entries (roster runs show {})",
                r.source,
                r.errors.len() - 50,
                r.run_id.unwrap_or(0)
            );
        }
        if let Some(plan) = &r.plan {
            println!("\nplan for {} (dry run, nothing written):", r.source);
            for p in plan {
                if p.fields.is_empty() {
                    println!("  {:<11} {}", p.action, p.username);
                } else {
                    println!(
                        "  {:<11} {} ({})",
                        p.action,
                        p.username,
                        p.fields.join(", ")
                    );
                }
            }
        }
    }
}

/// Prints an aligned table.
fn table(headers: &[&str], rows: impl Iterator<Item = Vec<String>>) {
    let rows: Vec<Vec<String>> = rows.collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let s: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c}{}", " ".repeat(widths[i] - c.chars().count())))
            .collect();
        println!("{}", s.join("  ").trim_end());
    };
    line(headers.to_vec());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
}
