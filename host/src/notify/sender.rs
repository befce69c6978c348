//! Delivery of the outbox: each due message once per pass, retried with exponential backoff
//! until it is delivered or `give_up_after` has passed since it was written.

use super::config::NotifyConfig;
use super::email::Mailer;
use super::{message, webhook, welcome, EMAIL, WELCOME};
use crate::config::Config;
use crate::store::{Pending, Store};
use anyhow::{anyhow, Result};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Messages claimed at a time.
const BATCH: usize = 50;

/// The longest wait between two attempts of a message.
const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);

pub(super) fn unix_now() -> i64 {
    crate::store::unix_now()
}

/// What one pass delivered.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Delivery {
    pub delivered: u64,
    pub retrying: u64,
    pub gave_up: u64,
}

/// Delivers outbox messages to the configured channels.
pub struct Sender {
    cfg: NotifyConfig,
    mailer: Option<Mailer>,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
    seal_key: PathBuf,
}

impl Sender {
    pub fn new(cfg: &Config) -> Result<Sender> {
        let n = &cfg.notify;
        // reqwest is built without a crypto provider of its own: rustls uses ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(n.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| anyhow!("starting the HTTP client: {e}"))?;
        Ok(Sender {
            mailer: n
                .email
                .as_ref()
                .map(|e| Mailer::new(e, n.timeout))
                .transpose()?,
            cfg: n.clone(),
            http,
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
            seal_key: super::seal_key_path(&cfg.local_base()),
        })
    }

    /// Delivers every message due now, once each. Failures are logged and scheduled again.
    pub fn deliver_due(&self, store: &Store) -> Result<Delivery> {
        let mut d = Delivery::default();
        // A message stays claimed while it is being sent, so a second sender skips it.
        let lease = (self.cfg.timeout.as_secs() as i64) * 2 + 5;
        loop {
            let due = store.claim_due(BATCH, lease)?;
            if due.is_empty() {
                return Ok(d);
            }
            for m in due {
                match self.deliver(&m) {
                    Ok(()) => {
                        store.mark_delivered(&m.id)?;
                        tracing::info!(
                            "notification {} ({} to {}) delivered",
                            m.id,
                            m.event,
                            m.channel
                        );
                        d.delivered += 1;
                    }
                    Err(e) => {
                        let e = format!("{e:#}");
                        let now = unix_now();
                        if now - m.created >= self.cfg.give_up_after.as_secs() as i64 {
                            store.mark_gave_up(&m.id, &e)?;
                            tracing::error!(
                                "notification {} ({} to {}) given up after {} attempts: {e}",
                                m.id,
                                m.event,
                                m.channel,
                                m.attempts
                            );
                            d.gave_up += 1;
                        } else {
                            let wait = backoff(self.cfg.retry_after, m.attempts);
                            store.mark_retry(&m.id, now + wait.as_secs().max(1) as i64, &e)?;
                            tracing::warn!(
                                "notification {} ({} to {}) not delivered (attempt {}), retrying in {}s: {e}",
                                m.id, m.event, m.channel, m.attempts, wait.as_secs().max(1)
                            );
                            d.retrying += 1;
                        }
                    }
                }
            }
        }
    }

    fn deliver(&self, m: &Pending) -> Result<()> {
        let payload: serde_json::Value = serde_json::from_str(&m.payload)?;
        if m.channel == EMAIL {
            let mailer = self
                .mailer
                .as_ref()
                .ok_or_else(|| anyhow!("[notify.email] is no longer configured"))?;
            let (subject, body) = message::email_text(&payload);
            mailer.to_admins(&m.id, &subject, body)
        } else if m.channel == WELCOME {
            let mailer = self
                .mailer
                .as_ref()
                .ok_or_else(|| anyhow!("[notify.email] is no longer configured"))?;
            let (to, subject, body) =
                welcome::render(&payload, m.sealed.as_deref(), &self.seal_key)?;
            mailer.to_user(&m.id, &to, &subject, body)
        } else if let Some(name) = m.channel.strip_prefix("webhook:") {
            let hook = (self.cfg.webhooks.iter().find(|w| w.name == name))
                .ok_or_else(|| anyhow!("webhook {name} is no longer configured"))?;
            self.rt
                .block_on(webhook::post(&self.http, hook, &m.id, &m.payload))
        } else {
            Err(anyhow!("unknown channel {}", m.channel))
        }
    }

    /// Sends a test message to every channel now (not through the outbox): each channel's
    /// name and result.
    pub fn test(&self) -> Vec<(String, Result<()>)> {
        let payload = message::test_payload();
        let mut out = Vec::new();
        if let Some(m) = &self.mailer {
            let (subject, body) = message::email_text(&payload);
            out.push((
                EMAIL.to_string(),
                m.to_admins(&super::new_id(), &subject, body),
            ));
        }
        for w in &self.cfg.webhooks {
            let r = self.rt.block_on(webhook::post(
                &self.http,
                w,
                &super::new_id(),
                &payload.to_string(),
            ));
            out.push((super::webhook_channel(&w.name), r));
        }
        out
    }

    /// Runs a sender on a thread of its own until the handle stops it: it delivers what is
    /// due, checks every source's `secret_expires` once an hour, and sleeps until the next
    /// message is due or [`SenderHandle::wake`] is called (after a run, say).
    pub fn spawn(cfg: Arc<Config>) -> Result<SenderHandle> {
        let sender = Sender::new(&cfg)?;
        let signal = Arc::new((Mutex::new(Signal::default()), Condvar::new()));
        let s = signal.clone();
        let thread = std::thread::Builder::new()
            .name("roster-notify".into())
            .spawn(move || sender.run_forever(&cfg, &s))?;
        Ok(SenderHandle {
            signal,
            thread: Some(thread),
        })
    }

    fn run_forever(&self, cfg: &Config, signal: &(Mutex<Signal>, Condvar)) {
        let mut store = None;
        let mut last_expiry_check: Option<i64> = None;
        loop {
            let mut wait = Duration::from_secs(3600);
            if store.is_none() {
                store = Store::open(&cfg.database)
                    .map_err(|e| tracing::error!("notifications: {e:#}"))
                    .ok();
            }
            if let Some(store) = &store {
                let now = unix_now();
                if last_expiry_check.is_none_or(|t| now - t >= 3600) {
                    let all: Vec<_> = cfg.sources.iter().collect();
                    match super::check_expiring(cfg, store, &all, super::today()) {
                        Ok(_) => last_expiry_check = Some(now),
                        Err(e) => tracing::error!("notifications: checking secret expiry: {e:#}"),
                    }
                }
                if let Err(e) = self.deliver_due(store) {
                    // The database may be busy with a run: try again soon.
                    tracing::debug!("notifications: {e:#}");
                    wait = Duration::from_secs(5);
                }
                if let Ok(Some(next)) = store.next_due() {
                    let until = Duration::from_secs((next - unix_now()).max(1) as u64);
                    wait = wait.min(until);
                }
            } else {
                wait = Duration::from_secs(30);
            }
            let (lock, cv) = signal;
            let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
            if !st.woken && !st.stop {
                st = cv
                    .wait_timeout(st, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            if st.stop {
                return;
            }
            st.woken = false;
        }
    }
}

#[derive(Default)]
struct Signal {
    woken: bool,
    stop: bool,
}

/// A sender running on its own thread ([`Sender::spawn`]).
pub struct SenderHandle {
    signal: Arc<(Mutex<Signal>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SenderHandle {
    /// Delivers what is due now (call it after a run committed).
    pub fn wake(&self) {
        let (lock, cv) = &*self.signal;
        lock.lock().unwrap_or_else(|e| e.into_inner()).woken = true;
        cv.notify_all();
    }

    /// Stops the sender and waits for the message it is sending, if any (at most the
    /// channel's `timeout`).
    pub fn stop(mut self) {
        self.signal_stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    fn signal_stop(&self) {
        let (lock, cv) = &*self.signal;
        lock.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
        cv.notify_all();
    }
}

impl Drop for SenderHandle {
    /// Stops the sender without waiting: a process that exits does not wait for a slow
    /// channel (an interrupted delivery is tried again later, with the same id).
    fn drop(&mut self) {
        self.signal_stop();
    }
}

/// `first`, doubled per earlier attempt, at most [`MAX_BACKOFF`].
fn backoff(first: Duration, attempts: i64) -> Duration {
    let doublings = (attempts - 1).clamp(0, 30) as u32;
    first.saturating_mul(1 << doublings).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let s = Duration::from_secs(30);
        assert_eq!(backoff(s, 1), s);
        assert_eq!(backoff(s, 2), s * 2);
        assert_eq!(backoff(s, 4), s * 8);
        assert_eq!(backoff(s, 40), MAX_BACKOFF);
    }
}
