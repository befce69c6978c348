//! `roster groups`: groups in the database.

use super::output::{json, table};
use anyhow::Result;
use clap::Subcommand;
use std::path::Path;

#[derive(Subcommand)]
pub enum Groups {
    List {
        #[arg(long)]
        json: bool,
    },
}

impl Groups {
    pub fn run(self, config: &Path) -> Result<i32> {
        let Groups::List { json: as_json } = self;
        let groups = super::open_store(config)?.groups()?;
        if as_json {
            json(&groups)?;
        } else {
            let rows = (groups.iter()).map(|g| vec![g.path.clone(), g.members.to_string()]);
            table(&["GROUP", "MEMBERS"], rows);
        }
        Ok(0)
    }
}
