//! `roster tokens`: API tokens of `roster serve`.

use super::output::{clean, json, table};
use anyhow::Result;
use clap::Subcommand;
use roster::tokens::Role;
use std::path::Path;

#[derive(Subcommand)]
pub enum Tokens {
    /// Make a token and print it, once: only its hash is kept.
    Create {
        name: String,
        /// read (users, groups, runs, sources), sync (also starts runs), admin (also
        /// approves held runs and edits users), terminal (authenticates by card and PIN,
        /// registers cards), scim-push (pushes users over SCIM into its --source), replica
        /// (read, plus PIN hashes: another roster pulling this one).
        #[arg(long, value_parser = Role::NAMES)]
        role: String,
        /// The source a scim-push token writes into.
        #[arg(long)]
        source: Option<String>,
    },
    /// Tokens by name, with role (never the token).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete a token: requests with it get 401 from then on.
    Revoke { name: String },
}

impl Tokens {
    pub fn run(self, config: &Path) -> Result<i32> {
        let store = super::open_writer(config)?;
        match self {
            Tokens::Create { name, role, source } => {
                if let Some(src) = &source {
                    let cfg = roster::config::Config::load(config)?;
                    if !cfg.source(src)?.push {
                        anyhow::bail!(roster::config::config_err(format!(
                            "source `{src}` is not configured with push = \"scim\": a scim-push \
                             token writes only into such a source"
                        )));
                    }
                }
                let token =
                    roster::tokens::create(&store, &name, Role::parse(&role)?, source.as_deref())?;
                println!("{token}");
                eprintln!("token {name} ({role}) created; it is shown only this once");
            }
            Tokens::List { json: true } => json(&store.tokens()?)?,
            Tokens::List { json: false } => {
                let rows = store.tokens()?.into_iter().map(|t| {
                    vec![
                        clean(&t.name).into_owned(),
                        t.role,
                        t.source.unwrap_or_default(),
                        t.created_at,
                    ]
                });
                table(&["NAME", "ROLE", "SOURCE", "CREATED"], rows)?;
            }
            Tokens::Revoke { name } => {
                if !store.revoke_token(&name)? {
                    eprintln!("error: no token named {}", clean(&name));
                    return Ok(1);
                }
                eprintln!("token {} revoked", clean(&name));
            }
        }
        Ok(0)
    }
}
