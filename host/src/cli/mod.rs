//! The command line: parse, call the library, print. One file per command, each with a
//! short `run`; no logic of its own.

mod groups;
mod init;
mod output;
mod plugin;
mod runs;
mod sources;
mod sync;
mod users;

use anyhow::Result;
use clap::{Parser, Subcommand};
use roster::config::{Config, ConfigError};
use roster::store::Store;
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
    Init(init::Init),
    /// Sync sources into the database.
    Sync(sync::Sync),
    /// Users in the database.
    #[command(subcommand)]
    Users(users::Users),
    /// Groups in the database.
    #[command(subcommand)]
    Groups(groups::Groups),
    /// The run log.
    #[command(subcommand)]
    Runs(runs::Runs),
    /// Configured sources.
    #[command(subcommand)]
    Sources(sources::Sources),
    /// Installed plugins.
    #[command(subcommand)]
    Plugin(plugin::Plugin),
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
            // Errors may quote what a plugin or a source said.
            eprintln!("error: {}", output::clean_text(&format!("{e:#}")));
            if e.downcast_ref::<ConfigError>().is_some() {
                2
            } else {
                1
            }
        }
    }
}

fn run(cli: Cli) -> Result<i32> {
    let config = &cli.config;
    match cli.command {
        Command::Init(c) => c.run(config),
        Command::Sync(c) => c.run(config),
        Command::Users(c) => c.run(config),
        Command::Groups(c) => c.run(config),
        Command::Runs(c) => c.run(config),
        Command::Sources(c) => c.run(config),
        Command::Plugin(c) => c.run(config),
    }
}

/// The database the config at `path` names.
fn open_store(path: &Path) -> Result<Store> {
    let cfg = Config::load(path)?;
    Store::open(&cfg.database)
}
