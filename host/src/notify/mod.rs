//! Notifications: what a run (or an expiring secret) tells the admins by email and signed
//! webhooks, and the welcome emails of created users.
//!
//! Messages are written to the store's outbox in the transaction of the run they report
//! ([`RunHook`]), then delivered with retries by a [`Sender`]: at the end of `roster sync`,
//! continuously in a service ([`Sender::spawn`]).
//!
//! - `config`: `[notify]` and the per-source keys;
//! - `message`: message payloads and their email text;
//! - `email`, `webhook`: the two channels;
//! - `welcome`: generated PINs, sealed until their email is sent;
//! - `sender`: delivery, retries and backoff.

pub mod config;
mod email;
mod message;
mod sender;
mod webhook;
mod welcome;

pub use config::{Event, NotifyConfig, SourceNotify};
pub use sender::{Delivery, Sender, SenderHandle};

use crate::config::{Config, SourceConfig};
use crate::store::{NewMessage, RunEnd, RunNotifier, Status, Store};
use anyhow::Result;
use chrono::NaiveDate;
use std::path::PathBuf;
use std::sync::Arc;

/// The outbox channel of admin email and of welcome emails.
const EMAIL: &str = "email";
const WELCOME: &str = "welcome";

/// The channel name of a webhook in the outbox.
fn webhook_channel(name: &str) -> String {
    format!("webhook:{name}")
}

/// A fresh message id (Standard Webhooks style): the time in nanoseconds, then randomness.
/// Ids made in turn sort in turn, so the outbox sends in the order messages were written
/// (by `created`, then id) on either store.
fn new_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH))
        .map_or(0, |d| d.as_nanos() as u64);
    let mut t = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(t + 1);
        match LAST.compare_exchange_weak(t, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => {
                t = next;
                break;
            }
            Err(seen) => t = seen,
        }
    }
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("the OS random source works");
    format!("msg_{t:016x}{}", hex::encode(b))
}

/// One message per admin channel that wants `event`.
fn admin_messages(
    cfg: &NotifyConfig,
    event: Event,
    source: &str,
    run_id: Option<i64>,
    payload: &serde_json::Value,
    id: &dyn Fn(&str) -> String,
) -> Vec<NewMessage> {
    let mut channels = Vec::new();
    if cfg.email.is_some() {
        channels.push(EMAIL.to_string());
    }
    for w in cfg.webhooks.iter().filter(|w| w.wants(event)) {
        channels.push(webhook_channel(&w.name));
    }
    channels
        .into_iter()
        .map(|channel| NewMessage {
            id: id(&channel),
            event: event.as_str().to_string(),
            channel,
            source: Some(source.to_string()),
            run_id,
            payload: payload.to_string(),
            sealed: None,
        })
        .collect()
}

/// The seal key's file: next to the database, never inside it.
fn seal_key_path(database: &std::path::Path) -> PathBuf {
    let mut p = database.as_os_str().to_owned();
    p.push(".notify-key");
    PathBuf::from(p)
}

/// Writes a source's notifications in its run's transaction.
pub struct RunHook {
    notify: Arc<NotifyConfig>,
    source: SourceNotify,
    seal_key: PathBuf,
}

impl RunHook {
    /// The hook for a source's run, or None when it would never write anything.
    pub fn for_source(cfg: &Config, src: &SourceConfig) -> Option<Box<dyn RunNotifier>> {
        if !cfg.notify.has_channels() {
            return None;
        }
        Some(Box::new(RunHook {
            notify: Arc::new(cfg.notify.clone()),
            source: src.notify.clone(),
            seal_key: seal_key_path(&cfg.local_base()),
        }))
    }
}

impl RunNotifier for RunHook {
    fn on_end(&self, end: &RunEnd<'_>) -> Result<Vec<String>> {
        let mut events = Vec::new();
        match end.status {
            Status::Ok => {
                let c = end.counts;
                let changed =
                    c.created + c.updated + c.deactivated + c.reactivated + c.deleted + c.failed;
                if changed > 0 {
                    events.push(Event::RunChanged);
                }
                if end.previous_status()? == Some(Status::Failed) {
                    events.push(Event::RunRecovered);
                }
            }
            Status::Failed => events.push(Event::RunFailed),
            Status::Aborted => events.push(Event::RunHeld),
            Status::Running | Status::Interrupted | Status::Cancelled => {}
        }
        let mut msgs = Vec::new();
        for e in events {
            if self.source.wants(&self.notify.events, e) {
                let payload = message::run_payload(e, end, self.notify.public_url.as_deref());
                msgs.extend(admin_messages(
                    &self.notify,
                    e,
                    end.source,
                    Some(end.run_id),
                    &payload,
                    &|_| new_id(),
                ));
            }
        }
        let mut notices = Vec::new();
        if self.source.welcome_email && end.status == Status::Ok {
            let (welcome, n) = welcome::messages(&self.source, &self.seal_key, end)?;
            msgs.extend(welcome);
            notices.extend(n);
        }
        end.enqueue(&msgs)?;
        Ok(notices)
    }
}

/// Writes a `secret.expiring` message for each of these sources whose secret expires within
/// 7 days of `today` (or on it). The id is the source, secret, day and channel: one message a
/// day, whoever checks how often.
pub fn check_expiring(
    cfg: &Config,
    store: &Store,
    sources: &[&SourceConfig],
    today: NaiveDate,
) -> Result<usize> {
    if !cfg.notify.has_channels() {
        return Ok(0);
    }
    let mut msgs = Vec::new();
    for src in sources {
        if !src.notify.wants(&cfg.notify.events, Event::SecretExpiring) {
            continue;
        }
        for (secret, date) in &src.notify.secret_expires {
            let days = (*date - today).num_days();
            if !(0..=7).contains(&days) {
                continue;
            }
            let payload = message::expiry_payload(&src.name, secret, *date, days);
            let id = |channel: &str| {
                use sha2::Digest;
                let key = format!(
                    "secret.expiring|{}|{secret}|{date}|{today}|{channel}",
                    src.name
                );
                format!(
                    "msg_{}",
                    hex::encode(&sha2::Sha256::digest(key.as_bytes())[..16])
                )
            };
            msgs.extend(admin_messages(
                &cfg.notify,
                Event::SecretExpiring,
                &src.name,
                None,
                &payload,
                &id,
            ));
        }
    }
    if msgs.is_empty() {
        return Ok(0);
    }
    let n = store.enqueue(&msgs)?;
    if n > 0 {
        tracing::info!("{n} secret expiry notification(s) written");
    }
    Ok(n)
}

/// Today, in the machine's time zone (the day `secret_expires` names).
pub fn today() -> NaiveDate {
    chrono::Local::now().date_naive()
}
