//! `roster script`: check a Rhai script, or run one without touching the database.

use super::output::{clean, clean_text, json, table};
use anyhow::Result;
use clap::Subcommand;
use roster::config::Config;
use roster::scripts::{self, RunOptions};
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum Script {
    /// Compile a script and report errors with their positions (exit 1 on an error).
    Check { file: PathBuf },
    /// Run a source script, or with --input a mapping script over sample entries, and show
    /// the users it yields, mapped. Nothing is written.
    Run {
        file: PathBuf,
        /// Take limits, grants, options and [map] from this source of --config.
        #[arg(long)]
        source: Option<String>,
        /// Sample entries for a mapping script: a JSON array of objects.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The runtime: the config's compile cache when there is a config, else roster's cache
/// beside the script.
fn runtime(config: &Path, file: &Path) -> Result<roster::runtime::Runtime> {
    match Config::load(config) {
        Ok(cfg) => roster::plugins::runtime(&cfg.local_base()),
        Err(_) => roster::plugins::runtime(file),
    }
}

impl Script {
    pub fn run(self, config: &Path) -> Result<i32> {
        match self {
            Script::Check { file } => {
                let rt = runtime(config, &file)?;
                match scripts::check(&rt, &file)? {
                    Ok(()) => {
                        println!("{}: ok", clean(&file.display().to_string()));
                        Ok(0)
                    }
                    Err(e) => {
                        eprintln!("error: {}", clean_text(&e));
                        Ok(1)
                    }
                }
            }
            Script::Run {
                file,
                source,
                input,
                json: as_json,
            } => {
                let cfg = source.as_ref().map(|_| Config::load(config)).transpose()?;
                let rt = runtime(config, &file)?;
                let opts = RunOptions {
                    script: &file,
                    source: cfg.as_ref().zip(source.as_deref()),
                    input: input.as_deref(),
                };
                let entries = scripts::run(&rt, &opts)?;
                if as_json {
                    json(&entries)?;
                    return Ok(0);
                }
                let rows = entries.into_iter().map(|e| {
                    let (what, detail) = match (&e.user, &e.group, &e.reason) {
                        (Some(u), _, _) => (
                            u.username.clone(),
                            [
                                u.full_name.clone().unwrap_or_default(),
                                u.email.clone().unwrap_or_default(),
                                u.aliases.join(" "),
                            ]
                            .join("  "),
                        ),
                        (_, Some(g), _) => (g.clone(), String::new()),
                        (_, _, Some(r)) => (String::new(), r.clone()),
                        _ => (String::new(), String::new()),
                    };
                    vec![
                        clean(&e.entry).into_owned(),
                        e.kind.to_string(),
                        clean(&what).into_owned(),
                        clean(&detail).into_owned(),
                    ]
                });
                table(&["ENTRY", "KIND", "NAME", "DETAIL"], rows)?;
                Ok(0)
            }
        }
    }
}
