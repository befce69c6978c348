//! The command line: parse, call the library, print. One file per command, each with a
//! short `run`; no logic of its own.

mod db;
mod docs;
mod groups;
mod init;
mod notify;
mod output;
mod plugin;
mod runs;
mod script;
mod serve;
mod sources;
mod sync;
mod tokens;
mod users;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};
use roster::config::{Config, ConfigError};
use roster::store::Store;
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
    /// More log output on stderr (-v: info, -vv: debug). RUST_LOG, when set, wins.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Errors only on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
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
    /// Run as a service: schedules, an HTTP API, a web console and metrics.
    Serve(serve::Serve),
    /// The database: copy it into PostgreSQL.
    #[command(subcommand)]
    Db(db::Db),
    /// API tokens of `roster serve`.
    #[command(subcommand)]
    Tokens(tokens::Tokens),
    /// Notifications: test the channels, see and deliver the outbox.
    #[command(subcommand)]
    Notify(notify::Notify),
    /// Sandboxed Rhai scripts: check or try one.
    #[command(subcommand)]
    Script(script::Script),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions(docs::Completions),
    /// Print the manual page (roff): `roster man > roster.1`.
    Man(docs::Man),
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
    // A service logs what it does; a command only what goes wrong.
    let service = matches!(cli.command, Command::Serve(_));
    init_logging(cli.verbose.max(service as u8), cli.quiet);
    match run(cli) {
        Ok(code) => code,
        Err(e) if output::is_closed_pipe(&e) => 0,
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
        Command::Script(c) => c.run(config),
        Command::Serve(c) => c.run(config),
        Command::Tokens(c) => c.run(config),
        Command::Db(c) => c.run(config),
        Command::Notify(c) => c.run(config),
        Command::Completions(c) => c.run(Cli::command()),
        Command::Man(c) => c.run(Cli::command()),
    }
}

/// Logs go to stderr, coloured only on a terminal and never with `NO_COLOR` set, so piped
/// output, cron mail and CI logs get plain text.
fn init_logging(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (_, 0) => "warn,roster::plugin=info",
        (_, 1) => "info",
        _ => "debug,wasmtime=info,cranelift=info",
    };
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(colour)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
                .unwrap_or_else(|_| default.into()),
        )
        .init();
}

/// The database the config at `path` names, for reading.
/// A writer of the database (tokens, held-run decisions).
fn open_writer(path: &Path) -> Result<Store> {
    Store::open(&Config::load(path)?.database)
}

fn open_store(path: &Path) -> Result<Store> {
    let cfg = Config::load(path)?;
    open_reader(&cfg.database)
}

/// A reader of the database: a new or older database is migrated first (so every command
/// works on a fresh one); a current one is only read.
fn open_reader(db: &Path) -> Result<Store> {
    Store::migrate(db)?;
    Store::open_read(db)
}
