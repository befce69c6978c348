//! `roster db`: the database itself.

use super::output::{json, table};
use anyhow::Result;
use clap::Subcommand;
use std::path::Path;

#[derive(Subcommand)]
pub enum Db {
    /// Copy the SQLite database (users, groups, links, runs, plugins, tokens, the outbox)
    /// into an empty PostgreSQL database, in one transaction, and show the rows of each table
    /// on both sides. Stop `roster serve` first: a copy is refused while a run is running.
    Copy {
        /// The target: postgres://USER@HOST[:PORT]/DB, a unix socket directory
        /// percent-encoded as the host (postgres://roster@%2Frun%2Fpostgresql/roster). Keep
        /// the password out of it: PGPASSWORD or ~/.pgpass (PGPASSFILE) give it. TLS:
        /// ?sslmode=verify-full&ca_file=CA.pem (require also verifies the certificate).
        #[arg(long, value_name = "URL")]
        to: String,
        #[arg(long)]
        json: bool,
    },
}

impl Db {
    pub fn run(self, config: &Path) -> Result<i32> {
        match self {
            Db::Copy { to, json: as_json } => {
                let store = super::open_store(config)?;
                let report = store.copy_to_postgres(&to)?;
                if as_json {
                    json(&report)?;
                } else {
                    let rows = report.tables.iter().map(|t| {
                        vec![
                            t.table.clone(),
                            t.sqlite.to_string(),
                            t.postgres.to_string(),
                        ]
                    });
                    table(&["TABLE", "SQLITE", "POSTGRESQL"], rows)?;
                    if report.interrupted > 0 {
                        eprintln!(
                            "{} run(s) a crash left running were copied as interrupted",
                            report.interrupted
                        );
                    }
                    eprintln!("copied into {}", report.target);
                }
                let same = report.tables.iter().all(|t| t.sqlite == t.postgres);
                Ok(if same { 0 } else { 1 })
            }
        }
    }
}
