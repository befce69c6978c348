//! `roster plugin`: write, test, install, upgrade, list, inspect and remove connector
//! components.

use super::output::{clean, clean_text, json, table};
use anyhow::{bail, Result};
use clap::Subcommand;
use roster::bindings::{KeyType, PluginInfo};
use roster::config::Config;
use roster::plugin_test::{self, Report};
use roster::plugins;
use roster::store::Store;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum Plugin {
    /// Review a connector component (name, version, sha256, capabilities, config keys) and
    /// install it into the plugin directory next to the database.
    Install {
        file: PathBuf,
        #[arg(long)]
        name: Option<String>,
        /// Install without asking (needed when stdin is not a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Replace an installed plugin with a new version; asks again when it wants more
    /// capabilities.
    Upgrade {
        name: String,
        file: PathBuf,
        #[arg(long)]
        yes: bool,
    },
    List,
    /// Show a plugin's description, config keys and capabilities.
    Inspect {
        name: String,
    },
    Remove {
        name: String,
    },
    /// Write a ready-to-build connector project from a template.
    New {
        /// The plugin's name: a-z, 0-9 and -, starting with a letter.
        name: String,
        #[arg(long, value_parser = ["rust", "python", "js"])]
        lang: String,
        /// Where to write it (default: ./NAME). Must not exist or be empty.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Run a connector in the sandbox without a database: its info, config validation, the
    /// users and groups it yields (mapped), failures, time and memory. Exits 1 naming the
    /// contract rule it breaks.
    Test {
        /// A .wasm file, a built-in or an installed plugin.
        plugin: String,
        /// Take config, limits and [map] from this source of the config file.
        #[arg(long, conflicts_with = "set")]
        source: Option<String>,
        /// A config key, `key=value` (the value as in TOML; bare text is a string).
        #[arg(long, value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Users and groups shown per run.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
}

impl Plugin {
    pub fn run(self, config: &Path) -> Result<i32> {
        match self {
            Plugin::New { name, lang, dir } => {
                let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
                let files = roster::scaffold::new(&name, &lang, &dir)?;
                println!("wrote {} files into {}", files.len(), dir.display());
                let readme = dir.join("README.md");
                println!(
                    "next: {} gives the build and test commands",
                    readme.display()
                );
                return Ok(0);
            }
            Plugin::Test {
                plugin,
                source,
                set,
                limit,
                json: as_json,
            } => return test(config, plugin, source, &set, limit, as_json),
            _ => {}
        }
        let cfg = Config::load(config)?;
        let store = Store::open(&cfg.database)?;
        match self {
            Plugin::Install { file, name, yes } => {
                let rt = plugins::runtime(&cfg.local_base())?;
                let review = plugins::review(&rt, &file, name)?;
                show_review(&review.name, &review.info, &review.sha256);
                if !confirm("install it?", yes)? {
                    return Ok(1);
                }
                let p = plugins::install(&store, &cfg.local_base(), review)?;
                let version = clean(&p.version);
                println!("installed {} {version} (sha256 {})", p.name, p.sha256);
            }
            Plugin::Upgrade { name, file, yes } => {
                let rt = plugins::runtime(&cfg.local_base())?;
                let up = plugins::review_upgrade(
                    &rt,
                    &store,
                    &cfg.local_base(),
                    &cfg.dir,
                    &name,
                    &file,
                )?;
                let r = &up.review;
                println!(
                    "upgrade {name} {} -> {}",
                    clean(&up.old_version),
                    clean(&r.info.version)
                );
                println!("sha256 {} -> {}", up.old_sha256, r.sha256);
                for (c, reason) in &up.added {
                    println!("{}", clean(&format!("  + {c:<8} {reason}")));
                }
                for c in &up.removed {
                    println!("{}", clean(&format!("  - {c}")));
                }
                if up.added.is_empty() && up.removed.is_empty() {
                    println!("capabilities unchanged");
                }
                for k in &up.keys_added {
                    println!("{}", clean(&format!("  new config key {k}")));
                }
                for k in &up.keys_removed {
                    println!("{}", clean(&format!("  config key {k} is gone")));
                }
                if up.grows() {
                    show_capabilities(&r.info);
                    if !confirm("it asks for more capabilities; upgrade it?", yes)? {
                        return Ok(1);
                    }
                }
                let p = plugins::upgrade(&store, &cfg.local_base(), up)?;
                let version = clean(&p.version);
                println!("upgraded {} to {version} (sha256 {})", p.name, p.sha256);
            }
            Plugin::List => {
                let builtin = plugins::BUILTIN.iter().map(|(n, b)| {
                    let sha = plugins::sha256(b);
                    vec![n.to_string(), "built-in".into(), sha[..16].into()]
                });
                let installed = store.plugins()?.into_iter().map(|p| {
                    let kind = format!("installed {} {}", p.version, p.installed_at);
                    vec![p.name, kind, p.sha256[..16].into()]
                });
                table(&["NAME", "KIND", "SHA256"], builtin.chain(installed))?;
            }
            Plugin::Inspect { name } => {
                let bytes = plugins::resolve(&name, Some(&store), &cfg.local_base(), &cfg.dir)?;
                let rt = plugins::runtime(&cfg.local_base())?;
                let info = plugins::inspect(&rt, &bytes)?;
                // All of it is the plugin's own text.
                println!("{} {}", clean(&info.name), clean(&info.version));
                println!("{}", clean_text(&info.description));
                show_keys(&info);
                show_capabilities(&info);
                if !info.defaults.is_empty() {
                    println!("\nsuggested defaults:");
                    for (k, v) in &info.defaults {
                        println!("{}", clean(&format!("  {k} = {}", toml_value(v))));
                    }
                }
            }
            Plugin::Remove { name } => {
                if !plugins::remove(&store, &cfg.local_base(), &name)? {
                    eprintln!("error: no installed plugin {name}");
                    return Ok(1);
                }
                println!("removed {name}");
            }
            Plugin::New { .. } | Plugin::Test { .. } => unreachable!("handled above"),
        }
        Ok(0)
    }
}

/// What the admin agrees to at install.
fn show_review(name: &str, info: &PluginInfo, sha256: &str) {
    println!("plugin   {name}");
    println!(
        "{}",
        clean(&format!("name     {} {}", info.name, info.version))
    );
    println!("sha256   {sha256}");
    println!("{}", clean_text(&info.description));
    show_capabilities(info);
    show_keys(info);
}

fn show_capabilities(info: &PluginInfo) {
    println!("\ncapabilities:");
    if info.capabilities.is_empty() {
        println!("  none");
    }
    for c in &info.capabilities {
        let unknown = if plugins::CAPABILITIES.contains(&c.name.as_str()) {
            ""
        } else {
            " (unknown to this roster: grants nothing)"
        };
        println!(
            "{}",
            clean(&format!("  {:<8} {}{unknown}", c.name, c.reason))
        );
    }
}

fn show_keys(info: &PluginInfo) {
    println!("\nconfig keys:");
    for k in &info.config_keys {
        let req = if k.required { "required" } else { "optional" };
        let def = (k.default.as_ref())
            .map(|d| format!(", default {}", toml_value(d)))
            .unwrap_or_default();
        let ty = type_name(k.type_);
        let line = format!("  {:<24} {ty}, {req}{def}: {}", k.name, k.description);
        println!("{}", clean(&line));
    }
}

/// Asks on a terminal; elsewhere only `--yes` agrees.
fn confirm(question: &str, yes: bool) -> Result<bool> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "nothing changed: stdin is not a terminal, so nobody can confirm; review the \
             above and pass --yes"
        );
    }
    print!("\n{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(true)
    } else {
        eprintln!("nothing changed");
        Ok(false)
    }
}

/// `roster plugin test`.
fn test(
    config: &Path,
    plugin: String,
    source: Option<String>,
    set: &[String],
    limit: usize,
    as_json: bool,
) -> Result<i32> {
    let loaded = Config::load(config);
    let (cfg, name) = match &source {
        Some(name) => (loaded?, name.clone()),
        None => {
            // A throwaway source from --set; a config file, if any, only lends its plugin
            // directory and compile cache.
            let mut table = toml::Table::new();
            for kv in set {
                let Some((k, v)) = kv.split_once('=') else {
                    bail!("--set {kv:?}: expected key=value");
                };
                let value = toml::from_str::<toml::Table>(&format!("v = {v}"))
                    .ok()
                    .and_then(|mut t| t.remove("v"))
                    .unwrap_or_else(|| toml::Value::String(v.to_string()));
                table.insert(k.trim().to_string(), value);
            }
            let mut src = toml::Table::new();
            src.insert("plugin".into(), toml::Value::String(plugin.clone()));
            src.insert("config".into(), toml::Value::Table(table));
            let mut sources = toml::Table::new();
            sources.insert("test".into(), toml::Value::Table(src));
            let mut doc = toml::Table::new();
            let database = match &loaded {
                Ok(c) => c.database.clone(),
                Err(_) => std::env::temp_dir()
                    .join("roster-plugin-test")
                    .join("none.db"),
            };
            let database = database.display().to_string();
            doc.insert("database".into(), toml::Value::String(database));
            doc.insert("sources".into(), toml::Value::Table(sources));
            let cwd = std::env::current_dir()?;
            (
                Config::parse(&toml::to_string(&doc)?, &cwd)?,
                "test".to_string(),
            )
        }
    };
    let mut cfg = cfg;
    match cfg.sources.iter_mut().find(|s| s.name == name) {
        Some(src) => src.plugin = plugin,
        None => return cfg.source(&name).map(|_| 0),
    }
    let cfg = &cfg;
    let src = cfg.source(&name)?;
    // Installed plugins are looked up in an existing database; none is created.
    let store =
        if roster::store::Store::exists(&cfg.database) && plugins::builtin(&src.plugin).is_none() {
            Some(super::open_reader(&cfg.database)?)
        } else {
            None
        };
    let rt = plugins::runtime(&cfg.local_base())?;
    let report = plugin_test::test(cfg, src, store.as_ref(), &rt, limit)?;
    if as_json {
        json(&report)?;
    } else {
        print_report(&report)?;
    }
    Ok(if report.config_error.is_some() {
        2
    } else if report.passed() {
        0
    } else {
        1
    })
}

fn print_report(r: &Report) -> Result<()> {
    let p = &r.plugin;
    println!("{}", clean(&format!("plugin  {} {}", p.name, p.version)));
    println!("sha256  {}", p.sha256);
    println!(
        "start   {:.1} ms to load (compile or cache), {:.1} ms to instantiate and call info",
        r.startup.load_ms, r.startup.first_info_ms
    );
    println!("{}", clean_text(&p.description));
    println!("capabilities:");
    for (c, reason) in &p.capabilities {
        println!("{}", clean(&format!("  {c:<8} {reason}")));
    }
    match &r.config_error {
        Some(e) => {
            println!("\nconfig: INVALID: {}", clean_text(e));
            return Ok(());
        }
        None => println!("\nconfig: ok"),
    }
    for run in &r.runs {
        println!(
            "\n{} run (ended as {}): {} users, {} groups, {} removed, {} failed in {} batches; \
             {} ms, peak memory {:.1} MiB{}",
            run.requested,
            run.mode,
            run.users,
            run.groups,
            run.removed,
            run.failed.len(),
            run.batches,
            run.millis,
            run.peak_memory as f64 / (1 << 20) as f64,
            if run.cursor.is_some() {
                ", returned a cursor"
            } else {
                ""
            },
        );
        if let Some(e) = &run.error {
            println!("run FAILED: {}", clean_text(e));
        }
        if !run.shown_users.is_empty() {
            let rows = run.shown_users.iter().map(|u| {
                vec![
                    clean(&u.username).into_owned(),
                    clean(u.full_name.as_deref().unwrap_or("")).into_owned(),
                    clean(u.email.as_deref().unwrap_or("")).into_owned(),
                    clean(&u.groups.join(", ")).into_owned(),
                    if u.active { "yes" } else { "no" }.into(),
                    clean(&u.id).into_owned(),
                ]
            });
            table(
                &["USERNAME", "FULL NAME", "EMAIL", "GROUPS", "ACTIVE", "ID"],
                rows,
            )?;
        }
        if !run.shown_groups.is_empty() {
            let rows = run.shown_groups.iter().map(|g| {
                vec![
                    clean(&g.name).into_owned(),
                    clean(&g.id).into_owned(),
                    clean(g.parent.as_deref().unwrap_or("")).into_owned(),
                    g.members.to_string(),
                ]
            });
            table(&["GROUP", "ID", "PARENT", "MEMBERS"], rows)?;
        }
        for f in &run.failed {
            println!("{}", clean(&format!("failed {}: {}", f.entry, f.reason)));
        }
        for n in &run.notices {
            println!("notice: {}", clean_text(n));
        }
    }
    println!();
    if r.violations.is_empty() {
        let rules: Vec<&str> = plugin_test::RULES.iter().map(|(n, _)| *n).collect();
        println!("contract: ok ({})", rules.join(", "));
    }
    for v in &r.violations {
        println!(
            "{}",
            clean(&format!("contract broken: {}: {}", v.rule, v.detail))
        );
    }
    Ok(())
}

/// A key type as the admin writes the value in TOML.
fn type_name(t: KeyType) -> &'static str {
    match t {
        KeyType::String => "string",
        KeyType::Boolean => "boolean",
        KeyType::Integer => "integer",
        KeyType::List => "list",
        KeyType::File => "file",
        KeyType::Duration => "duration",
        KeyType::Secret => "secret",
        KeyType::Url => "url",
        KeyType::Files => "list of files",
        KeyType::Urls => "list of urls",
    }
}

/// A default as a TOML value: kept when it already is one, else quoted as a string.
fn toml_value(v: &str) -> String {
    match toml::from_str::<toml::Table>(&format!("v = {v}")) {
        Ok(_) => v.to_string(),
        Err(_) => toml::Value::String(v.to_string()).to_string(),
    }
}
