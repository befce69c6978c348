//! `roster plugin`: install, list, inspect and remove connector components.

use super::output::{clean, clean_text, table};
use anyhow::Result;
use clap::Subcommand;
use roster::bindings::KeyType;
use roster::config::Config;
use roster::plugins;
use roster::store::Store;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum Plugin {
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
}

impl Plugin {
    pub fn run(self, config: &Path) -> Result<i32> {
        if let Plugin::New { name, lang, dir } = self {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            let files = roster::scaffold::new(&name, &lang, &dir)?;
            println!("wrote {} files into {}", files.len(), dir.display());
            println!(
                "next: see {} for the build and test commands",
                dir.join("README.md").display()
            );
            return Ok(0);
        }
        let cfg = Config::load(config)?;
        let store = Store::open(&cfg.database)?;
        match self {
            Plugin::Install { file, name } => {
                let rt = plugins::runtime(&cfg.database)?;
                let p = plugins::install(&rt, &store, &cfg.database, &cfg.dir, &file, name)?;
                let version = clean(&p.version);
                println!("installed {} {version} (sha256 {})", p.name, p.sha256);
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
                let bytes = plugins::resolve(&name, Some(&store), &cfg.database, &cfg.dir)?;
                let rt = plugins::runtime(&cfg.database)?;
                let info = plugins::inspect(&rt, &bytes, &cfg.dir)?;
                // All of it is the plugin's own text.
                println!("{} {}", clean(&info.name), clean(&info.version));
                println!("{}", clean_text(&info.description));
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
                println!("\ncapabilities:");
                for c in &info.capabilities {
                    println!("{}", clean(&format!("  {:<8} {}", c.name, c.reason)));
                }
                if !info.defaults.is_empty() {
                    println!("\nsuggested defaults:");
                    for (k, v) in &info.defaults {
                        println!("{}", clean(&format!("  {k} = {}", toml_value(v))));
                    }
                }
            }
            Plugin::New { .. } => unreachable!("handled above"),
            Plugin::Remove { name } => {
                if !plugins::remove(&store, &cfg.database, &name)? {
                    eprintln!("error: no installed plugin {name}");
                    return Ok(1);
                }
                println!("removed {name}");
            }
        }
        Ok(0)
    }
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
    }
}

/// A default as a TOML value: kept when it already is one, else quoted as a string.
fn toml_value(v: &str) -> String {
    match toml::from_str::<toml::Table>(&format!("v = {v}")) {
        Ok(_) => v.to_string(),
        Err(_) => toml::Value::String(v.to_string()).to_string(),
    }
}
