//! `roster users`: users in the database.

use super::output::{clean, json, table};
use anyhow::Result;
use clap::Subcommand;
use std::path::Path;

#[derive(Subcommand)]
pub enum Users {
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

impl Users {
    pub fn run(self, config: &Path) -> Result<i32> {
        let store = super::open_store(config)?;
        match self {
            Users::List { all, json: true } => json(&store.users(all)?)?,
            Users::List { all, json: false } => {
                let rows = store.users(all)?.into_iter().map(|u| {
                    vec![
                        u.username,
                        u.full_name.unwrap_or_default(),
                        u.email.unwrap_or_default(),
                        u.groups.join(", "),
                        if u.active { "yes".into() } else { "no".into() },
                        u.source.unwrap_or_default(),
                    ]
                });
                let headers = [
                    "USERNAME",
                    "FULL NAME",
                    "EMAIL",
                    "GROUPS",
                    "ACTIVE",
                    "SOURCE",
                ];
                table(&headers, rows);
            }
            Users::Show {
                name,
                json: as_json,
            } => {
                let Some(u) = store.user(&name)? else {
                    eprintln!("error: no user or alias {name:?}");
                    return Ok(1);
                };
                if as_json {
                    json(&u)?;
                    return Ok(0);
                }
                let serde_json::Value::Object(fields) = serde_json::to_value(&u)? else {
                    unreachable!("a user serialises to an object");
                };
                for (k, v) in fields {
                    let shown = match v {
                        serde_json::Value::Null => String::new(),
                        serde_json::Value::String(s) => s,
                        serde_json::Value::Array(a) => (a.iter())
                            .map(|x| x.as_str().unwrap_or_default())
                            .collect::<Vec<_>>()
                            .join(", "),
                        other => other.to_string(),
                    };
                    println!("{k:>16}: {}", clean(&shown));
                }
            }
        }
        Ok(0)
    }
}
