//! `roster notify`: test the channels, see the outbox, deliver what is due.

use super::output::{clean_text, json, table};
use anyhow::Result;
use clap::Subcommand;
use roster::config::Config;
use roster::notify::Sender;
use roster::store::Store;
use serde::Serialize;
use std::path::Path;

#[derive(Subcommand)]
pub enum Notify {
    /// Send a test message to every channel now and report each result.
    Test {
        #[arg(long)]
        json: bool,
    },
    /// The outbox: messages pending, delivered and given up.
    Status {
        /// How many recent messages to list.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Deliver the messages that are due (`roster sync` does this when it ends).
    Send {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct TestResult {
    channel: String,
    ok: bool,
    error: Option<String>,
}

#[derive(Serialize)]
struct Status {
    counts: std::collections::BTreeMap<String, u64>,
    messages: Vec<roster::store::OutboxRow>,
}

impl Notify {
    pub fn run(self, config: &Path) -> Result<i32> {
        let cfg = Config::load(config)?;
        match self {
            Notify::Test { json: as_json } => {
                if !cfg.notify.has_channels() {
                    eprintln!("error: no channels: configure [notify.email] or [[notify.webhook]]");
                    return Ok(2);
                }
                let results: Vec<TestResult> = Sender::new(&cfg)?
                    .test()
                    .into_iter()
                    .map(|(channel, r)| TestResult {
                        channel,
                        ok: r.is_ok(),
                        error: r.err().map(|e| format!("{e:#}")),
                    })
                    .collect();
                let ok = results.iter().all(|r| r.ok);
                if as_json {
                    json(&results)?;
                } else {
                    for r in &results {
                        match &r.error {
                            None => println!("{}: ok", r.channel),
                            Some(e) => println!("{}: FAILED: {}", r.channel, clean_text(e)),
                        }
                    }
                }
                Ok(if ok { 0 } else { 1 })
            }
            Notify::Status {
                limit,
                json: as_json,
            } => {
                let store = Store::open(&cfg.database)?;
                let status = Status {
                    counts: store.outbox_counts()?.into_iter().collect(),
                    messages: store.outbox(None, limit)?,
                };
                if as_json {
                    json(&status)?;
                    return Ok(0);
                }
                let counts: Vec<String> = status
                    .counts
                    .iter()
                    .map(|(k, v)| format!("{v} {k}"))
                    .collect();
                println!(
                    "outbox: {}",
                    if counts.is_empty() {
                        "empty".to_string()
                    } else {
                        counts.join(", ")
                    }
                );
                let rows = status.messages.into_iter().map(|m| {
                    vec![
                        m.id,
                        m.event,
                        m.channel,
                        m.source.unwrap_or_default(),
                        m.state,
                        m.attempts.to_string(),
                        clean_text(&m.last_error.unwrap_or_default()).into_owned(),
                    ]
                });
                table(
                    &[
                        "ID",
                        "EVENT",
                        "CHANNEL",
                        "SOURCE",
                        "STATE",
                        "ATTEMPTS",
                        "LAST ERROR",
                    ],
                    rows,
                )?;
                Ok(0)
            }
            Notify::Send { json: as_json } => {
                let store = Store::open(&cfg.database)?;
                let d = Sender::new(&cfg)?.deliver_due(&store)?;
                if as_json {
                    json(&d)?;
                } else {
                    println!(
                        "{} delivered, {} to retry, {} given up",
                        d.delivered, d.retrying, d.gave_up
                    );
                }
                Ok(if d.retrying + d.gave_up == 0 { 0 } else { 1 })
            }
        }
    }
}
