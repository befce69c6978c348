//! `roster users`: users in the database.

use super::output::{clean, json, StreamTable};
use anyhow::Result;
use clap::Subcommand;
use roster::store::UserFilter;
use serde::ser::{SerializeSeq, Serializer};
use std::io::Write;
use std::path::Path;

#[derive(Subcommand)]
pub enum Users {
    /// Users sorted by username, printed as they are read (fit for a million).
    List {
        /// Only users whose username, alias, full name, email, personal number or card
        /// contains this (case-insensitive).
        search: Option<String>,
        /// Include inactive users.
        #[arg(long)]
        all: bool,
        /// Inactive users only.
        #[arg(long, conflicts_with = "all")]
        inactive: bool,
        /// Users of this source only.
        #[arg(long)]
        source: Option<String>,
        /// Members of this group (a path such as `Staff|IT`) or of a group under it.
        #[arg(long)]
        group: Option<String>,
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
            Users::List {
                search,
                all,
                inactive,
                source,
                group,
                json: as_json,
            } => {
                let filter = UserFilter {
                    all,
                    inactive,
                    source,
                    group,
                    search,
                    ..Default::default()
                };
                if as_json {
                    // The same pretty array as a whole-list print, one element at a time.
                    let out = std::io::BufWriter::new(std::io::stdout().lock());
                    let mut ser = serde_json::Serializer::pretty(out);
                    let mut seq = (&mut ser).serialize_seq(None)?;
                    store.each_user(&filter, |u| Ok(seq.serialize_element(&u)?))?;
                    seq.end()?;
                    let mut out = ser.into_inner();
                    writeln!(out)?;
                    out.flush()?;
                    return Ok(0);
                }
                let headers = [
                    "USERNAME",
                    "FULL NAME",
                    "EMAIL",
                    "GROUPS",
                    "ACTIVE",
                    "SOURCE",
                ];
                let mut t = StreamTable::new(&headers);
                store.each_user(&filter, |u| {
                    t.row(vec![
                        u.username,
                        u.full_name.unwrap_or_default(),
                        u.email.unwrap_or_default(),
                        u.groups.join(", "),
                        if u.active { "yes".into() } else { "no".into() },
                        u.source.unwrap_or_default(),
                    ])
                })?;
                t.finish()?;
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
