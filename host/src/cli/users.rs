//! `roster users`: users in the database.

use super::output::{clean, json, StreamTable};
use anyhow::Result;
use clap::Subcommand;
use roster::config::Config;
use roster::model::Field;
use roster::store::{Edit, EditError, Store, UserFilter};
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
        /// Also who set each value (a source or a local edit) and when.
        #[arg(long)]
        provenance: bool,
        #[arg(long)]
        json: bool,
    },
    /// Edit fields locally: `FIELD=VALUE` (an empty value clears). A field a source holds in
    /// sync mode is refused, naming the source.
    Set {
        name: String,
        #[arg(required = true, value_name = "FIELD=VALUE")]
        values: Vec<String>,
    },
    /// Register a card locally: it survives every sync.
    AddCard { name: String, card: String },
    /// Remove a locally registered card.
    RemoveCard { name: String, card: String },
    /// Put fields back to the sources' values (for cards and aliases: drop the local ones).
    Reset {
        name: String,
        #[arg(required = true)]
        fields: Vec<String>,
    },
}

impl Users {
    pub fn run(self, config: &Path) -> Result<i32> {
        let edits = match &self {
            Users::Set { name, values } => Some((name, parse_sets(values)?)),
            Users::AddCard { name, card } => Some((name, vec![Edit::AddCard(card.clone())])),
            Users::RemoveCard { name, card } => Some((name, vec![Edit::RemoveCard(card.clone())])),
            Users::Reset { name, fields } => Some((
                name,
                (fields.iter())
                    .map(|f| Field::parse(f).map(Edit::Reset))
                    .collect::<Result<_>>()?,
            )),
            _ => None,
        };
        if let Some((name, edits)) = edits {
            let cfg = Config::load(config)?;
            let store = Store::open(&cfg.database)?;
            return match store.edit_user(name, &edits, cfg.authority.as_deref()) {
                Ok(changed) => {
                    eprintln!("{}: {} edited", clean(name), changed.join(", "));
                    Ok(0)
                }
                Err(e) if e.downcast_ref::<EditError>().is_some() => {
                    eprintln!("error: {}", clean(&e.to_string()));
                    Ok(1)
                }
                Err(e) => Err(e),
            };
        }
        let store = super::open_store(config)?;
        match self {
            Users::Set { .. } | Users::AddCard { .. } | Users::RemoveCard { .. } => {}
            Users::Reset { .. } => {}
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
                provenance,
                json: as_json,
            } => {
                let Some(u) = store.user(&name)? else {
                    eprintln!("error: no user or alias {name:?}");
                    return Ok(1);
                };
                let prov = if provenance {
                    store.provenance(&name)?
                } else {
                    None
                };
                let lock = store.lock_of(&u.username)?;
                if as_json {
                    let mut v = serde_json::to_value(&u)?;
                    if let Some(p) = &prov {
                        v["provenance"] = serde_json::to_value(p)?;
                    }
                    if let Some(l) = &lock {
                        v["locked_until"] = l.clone().into();
                    }
                    json(&v)?;
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
                if let Some(l) = lock {
                    println!("{:>16}: {l} (too many wrong PINs)", "locked until");
                }
                for p in prov.unwrap_or_default() {
                    let what = match &p.value {
                        Some(v) => format!("{} {}", p.field, v),
                        None => p.field.to_string(),
                    };
                    let when = p.at.map(|t| format!(" at {t}")).unwrap_or_default();
                    println!(
                        "{:>16}: {}{when}",
                        "set by",
                        clean(&format!("{what}: {}", p.by))
                    );
                }
            }
        }
        Ok(0)
    }
}

/// `FIELD=VALUE` pairs as edits.
fn parse_sets(values: &[String]) -> Result<Vec<Edit>> {
    values
        .iter()
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("expected FIELD=VALUE, got {:?}", clean(kv)))?;
            let f = Field::parse(k.trim())?;
            Ok(Edit::Set(f, (!v.is_empty()).then(|| v.to_string())))
        })
        .collect()
}
