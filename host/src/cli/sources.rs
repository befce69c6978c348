//! `roster sources`: configured sources, and a live test of one.

use super::output::{clean, clean_text, table};
use anyhow::Result;
use clap::Subcommand;
use roster::config::Config;
use roster::sources::{self, Sample};
use std::path::Path;

#[derive(Subcommand)]
pub enum Sources {
    List,
    /// Connect, authenticate, count, and show one sample mapped user.
    Test {
        name: String,
    },
}

impl Sources {
    pub fn run(self, config: &Path) -> Result<i32> {
        let cfg = Config::load(config)?;
        match self {
            Sources::List => {
                let rows = sources::list(&cfg)?.into_iter().map(|s| {
                    vec![
                        s.name,
                        s.plugin,
                        format!("{} active / {}", s.active_users, s.all_users),
                        (s.last_run)
                            .map(|r| format!("#{} {} {}", r.id, r.status, r.started))
                            .unwrap_or_else(|| "never".into()),
                    ]
                });
                table(&["SOURCE", "PLUGIN", "USERS", "LAST RUN"], rows)?;
            }
            Sources::Test { name } => {
                // Nothing to connect to: not a failure (like `roster sync` of it).
                if cfg.source(&name)?.push {
                    println!(
                        "source {name}: users are pushed into it over SCIM (push = \"scim\"): \
                         nothing to connect to; its writes are runs (roster runs list)"
                    );
                    return Ok(0);
                }
                let rt = roster::plugins::runtime(&cfg.local_base())?;
                let t = sources::test(&cfg, &rt, &name)?;
                let (plugin, version) = (clean(&t.info.name), clean(&t.info.version));
                println!("source {name} ({plugin} {version}): ok");
                if let Some(n) = t.report.users {
                    println!("users:  {n}");
                }
                if let Some(n) = t.report.groups {
                    println!("groups: {n}");
                }
                for m in &t.report.messages {
                    println!("{}", clean_text(m));
                }
                match t.sample {
                    None => {}
                    Some(Sample::Mapped { fields, has_pin }) => {
                        println!("sample user (mapped):");
                        // JSON values: strings come quoted.
                        for (k, v) in fields {
                            println!("{k:>16}: {}", clean(&v.to_string()));
                        }
                        println!("{:>16}: {has_pin}", "has_pin");
                    }
                    Some(Sample::Unmapped { id, reason }) => {
                        let (id, reason) = (clean(&id), clean_text(&reason));
                        println!("sample entry {id} does not map: {reason}");
                    }
                }
            }
        }
        Ok(0)
    }
}
