//! `[notify]`, `[notify.email]`, `[[notify.webhook]]` and the per-source notification keys.
//! Secrets (the SMTP password, webhook secrets) are resolved here and kept in [`Secret`].

use crate::config::{parse_duration, resolve_string};
use crate::model::Secret;
use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use chrono::NaiveDate;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The events an admin channel can receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    RunChanged,
    RunFailed,
    RunHeld,
    RunRecovered,
    SecretExpiring,
}

impl Event {
    pub const ALL: [Event; 5] = [
        Event::RunChanged,
        Event::RunFailed,
        Event::RunHeld,
        Event::RunRecovered,
        Event::SecretExpiring,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::RunChanged => "run.changed",
            Event::RunFailed => "run.failed",
            Event::RunHeld => "run.held",
            Event::RunRecovered => "run.recovered",
            Event::SecretExpiring => "secret.expiring",
        }
    }

    pub fn parse(s: &str) -> Result<Event> {
        Event::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<_> = Event::ALL.iter().map(|e| e.as_str()).collect();
                anyhow!("unknown event {s:?} (events: {})", all.join(", "))
            })
    }

    fn parse_list(list: &[String], key: &str) -> Result<Vec<Event>> {
        list.iter()
            .map(|s| Event::parse(s).with_context(|| key.to_string()))
            .collect()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNotify {
    events: Option<Vec<String>>,
    email: Option<RawEmail>,
    #[serde(default)]
    webhook: Vec<RawWebhook>,
    /// Per delivery attempt.
    timeout: Option<String>,
    /// The first retry's delay; each further one doubles it.
    retry_after: Option<String>,
    /// A message still undelivered this long after it was written is given up.
    give_up_after: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmail {
    smtp: String,
    starttls: Option<bool>,
    username: Option<toml::Value>,
    password: Option<toml::Value>,
    from: toml::Value,
    #[serde(default)]
    to: Vec<String>,
    ca_file: Option<toml::Value>,
    tls_verify: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    name: Option<String>,
    url: toml::Value,
    secret: toml::Value,
    events: Option<Vec<String>>,
    allow_http: Option<bool>,
}

/// The whole `[notify]` table. Without channels nothing is written to the outbox.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    pub events: Vec<Event>,
    pub email: Option<EmailConfig>,
    pub webhooks: Vec<WebhookConfig>,
    pub timeout: Duration,
    pub retry_after: Duration,
    pub give_up_after: Duration,
    /// `serve.public_url`, for links to runs in messages (set by whoever reads `[serve]`).
    pub public_url: Option<String>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            events: Event::ALL.to_vec(),
            email: None,
            webhooks: Vec::new(),
            timeout: Duration::from_secs(10),
            retry_after: Duration::from_secs(30),
            give_up_after: Duration::from_secs(86400),
            public_url: None,
        }
    }
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// `smtp://` upgraded with STARTTLS; refused if the server does not offer it.
    StartTls,
    /// `smtp://` with `starttls = false`: plain text.
    None,
    /// `smtps://`: TLS from the first byte.
    Implicit,
}

#[derive(Debug, Clone)]
pub struct EmailConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub from: String,
    pub to: Vec<String>,
    pub ca_file: Option<PathBuf>,
    pub tls_verify: bool,
}

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Names the channel in the outbox and in `roster notify status`.
    pub name: String,
    pub url: String,
    /// Decoded `whsec_` keys; each signs every delivery (several during a rotation).
    pub keys: Vec<Secret>,
    pub events: Option<Vec<Event>>,
}

impl WebhookConfig {
    pub fn wants(&self, e: Event) -> bool {
        self.events.as_ref().is_none_or(|l| l.contains(&e))
    }
}

impl NotifyConfig {
    pub(crate) fn from_raw(raw: Option<RawNotify>, dir: &Path) -> Result<NotifyConfig> {
        let Some(raw) = raw else {
            return Ok(NotifyConfig::default());
        };
        let d = NotifyConfig::default();
        let duration = |v: &Option<String>, key: &str, default: Duration| -> Result<Duration> {
            v.as_deref()
                .map(parse_duration)
                .transpose()
                .with_context(|| format!("notify.{key}"))
                .map(|d| d.unwrap_or(default))
        };
        let mut webhooks = Vec::new();
        for (i, w) in raw.webhook.into_iter().enumerate() {
            webhooks.push(WebhookConfig::from_raw(w, i, dir)?);
        }
        Ok(NotifyConfig {
            events: match &raw.events {
                Some(l) => Event::parse_list(l, "notify.events")?,
                None => d.events,
            },
            email: raw
                .email
                .map(|e| EmailConfig::from_raw(e, dir))
                .transpose()?,
            webhooks,
            timeout: duration(&raw.timeout, "timeout", d.timeout)?,
            retry_after: duration(&raw.retry_after, "retry_after", d.retry_after)?,
            give_up_after: duration(&raw.give_up_after, "give_up_after", d.give_up_after)?,
            public_url: None,
        })
    }

    /// Whether any admin channel is configured.
    pub fn has_channels(&self) -> bool {
        self.email.is_some() || !self.webhooks.is_empty()
    }
}

impl EmailConfig {
    fn from_raw(raw: RawEmail, dir: &Path) -> Result<EmailConfig> {
        let url = url::Url::parse(&raw.smtp).map_err(|e| {
            anyhow!(
                "notify.email.smtp: {:?} is not a URL ({e}); use smtp://host:587 or smtps://host:465",
                raw.smtp
            )
        })?;
        let (tls, default_port) = match (url.scheme(), raw.starttls) {
            ("smtp", Some(false)) => (SmtpTls::None, 25),
            ("smtp", _) => (SmtpTls::StartTls, 587),
            ("smtps", Some(true)) => {
                bail!("notify.email.starttls: smtps:// is TLS from the start; leave starttls out")
            }
            ("smtps", _) => (SmtpTls::Implicit, 465),
            (other, _) => bail!(
                "notify.email.smtp: scheme {other}:// is not smtp:// (STARTTLS) or smtps:// (TLS)"
            ),
        };
        let host = url
            .host_str()
            .ok_or_else(|| anyhow!("notify.email.smtp: {:?} names no host", raw.smtp))?
            .trim_matches(['[', ']'])
            .to_string();
        let string = |v: &toml::Value, key: &str| {
            resolve_string(v, dir, &format!("notify.email.{key}")).map(|s| s.0)
        };
        let from = string(&raw.from, "from")?;
        from.parse::<lettre::message::Mailbox>()
            .map_err(|e| anyhow!("notify.email.from: {from:?} is not an address ({e})"))?;
        if raw.to.is_empty() {
            bail!("notify.email.to: list at least one address");
        }
        for a in &raw.to {
            a.parse::<lettre::message::Mailbox>()
                .map_err(|e| anyhow!("notify.email.to: {a:?} is not an address ({e})"))?;
        }
        let username = raw.username.map(|v| string(&v, "username")).transpose()?;
        let password = raw
            .password
            .map(|v| resolve_string(&v, dir, "notify.email.password"))
            .transpose()?;
        if username.is_some() != password.is_some() {
            bail!("notify.email: username and password go together");
        }
        let tls_verify = raw.tls_verify.unwrap_or(true);
        if !tls_verify {
            tracing::warn!(
                "notify.email.tls_verify = false: the SMTP server's certificate is not checked; \
                 set ca_file instead"
            );
        }
        Ok(EmailConfig {
            host,
            port: url.port().unwrap_or(default_port),
            tls,
            username,
            password,
            from,
            to: raw.to,
            ca_file: raw
                .ca_file
                .map(|v| string(&v, "ca_file").map(|p| dir.join(p)))
                .transpose()?,
            tls_verify,
        })
    }
}

impl WebhookConfig {
    fn from_raw(raw: RawWebhook, i: usize, dir: &Path) -> Result<WebhookConfig> {
        let ctx = format!("notify.webhook[{i}]");
        let url = resolve_string(&raw.url, dir, &format!("{ctx}.url"))?.0;
        let parsed = url::Url::parse(&url).map_err(|e| anyhow!("{ctx}.url: not a URL ({e})"))?;
        let loopback = match parsed.host() {
            Some(url::Host::Ipv4(a)) => a.is_loopback(),
            Some(url::Host::Ipv6(a)) => a.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        match parsed.scheme() {
            "https" => {}
            "http" if loopback || raw.allow_http == Some(true) => {}
            "http" => bail!(
                "{ctx}.url: plain http:// sends signed events in the clear; use https://, or set \
                 allow_http = true"
            ),
            other => bail!("{ctx}.url: scheme {other}:// is not https://"),
        }
        let secrets = match &raw.secret {
            toml::Value::Array(a) => a.iter().collect(),
            v => vec![v],
        };
        if secrets.is_empty() {
            bail!("{ctx}.secret: required (a whsec_... secret)");
        }
        let mut keys = Vec::new();
        for (j, v) in secrets.into_iter().enumerate() {
            let key = if raw.secret.is_array() {
                format!("{ctx}.secret[{j}]")
            } else {
                format!("{ctx}.secret")
            };
            let s = resolve_string(v, dir, &key)?;
            let b64 = s.0.strip_prefix("whsec_").ok_or_else(|| {
                anyhow!("{key}: a webhook secret starts with whsec_ (Standard Webhooks)")
            })?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| anyhow!("{key}: the part after whsec_ is not base64"))?;
            if bytes.len() < 24 {
                bail!("{key}: too short (at least 24 random bytes, base64-encoded)");
            }
            // Kept base64-encoded: the key is bytes, not text.
            keys.push(Secret(
                base64::engine::general_purpose::STANDARD.encode(&bytes),
            ));
        }
        Ok(WebhookConfig {
            name: raw.name.unwrap_or_else(|| format!("webhook{}", i + 1)),
            url,
            keys,
            events: raw
                .events
                .as_deref()
                .map(|l| Event::parse_list(l, &format!("{ctx}.events")))
                .transpose()?,
        })
    }
}

/// The per-source keys of `[sources.NAME]` that concern notifications.
#[derive(Debug, Clone, Default)]
pub struct SourceNotify {
    /// Replaces `[notify] events` for this source.
    pub events: Option<Vec<Event>>,
    /// (what expires, its date): `secret_expires`, or the connector's own `secret_expires`.
    pub secret_expires: Vec<(String, NaiveDate)>,
    pub welcome_email: bool,
    /// The welcome template's text (read when the config loads).
    pub welcome_template: Option<String>,
    /// Digits of a generated PIN for created users without one.
    pub generate_pin: Option<usize>,
}

/// The raw per-source keys, as `config.rs` reads them.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawSourceNotify {
    pub notify: Option<Vec<String>>,
    pub secret_expires: Option<toml::Value>,
    pub welcome_email: Option<bool>,
    pub welcome_template: Option<toml::Value>,
    pub generate_pin: Option<bool>,
    pub pin_length: Option<u64>,
}

impl SourceNotify {
    pub(crate) fn from_raw(
        raw: RawSourceNotify,
        plugin_config: &toml::Table,
        dir: &Path,
    ) -> Result<SourceNotify> {
        let date = |v: &toml::Value, key: &str| -> Result<NaiveDate> {
            let s = match v {
                toml::Value::Datetime(d) => d.to_string(),
                v => resolve_string(v, dir, key)?.0,
            };
            NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                .map_err(|_| anyhow!("{key}: {s:?} is not a date (expected YYYY-MM-DD)"))
        };
        let secret_expires = match &raw.secret_expires {
            None => match plugin_config.get("secret_expires") {
                // The Entra connector's own key: its client secret. The connector checks its
                // own key; one that is not a date is its error to report.
                Some(v) => (date(v, "config.secret_expires").ok())
                    .map(|d| vec![("client_secret".to_string(), d)])
                    .unwrap_or_default(),
                None => Vec::new(),
            },
            Some(toml::Value::Table(t)) if !(t.len() == 1 && t.contains_key("env")) => {
                let mut l = Vec::new();
                for (k, v) in t {
                    l.push((k.clone(), date(v, &format!("secret_expires.{k}"))?));
                }
                l
            }
            Some(v) => vec![("secret".to_string(), date(v, "secret_expires")?)],
        };
        let welcome_email = raw.welcome_email.unwrap_or(false);
        let welcome_template = match &raw.welcome_template {
            None => None,
            Some(v) => {
                let p = resolve_string(v, dir, "welcome_template")?.0;
                Some(
                    std::fs::read_to_string(dir.join(&p))
                        .map_err(|e| anyhow!("welcome_template: cannot read {p}: {e}"))?,
                )
            }
        };
        if welcome_template.is_some() && !welcome_email {
            bail!("welcome_template: set welcome_email = true too");
        }
        let generate_pin = match (raw.generate_pin.unwrap_or(false), raw.pin_length) {
            (false, Some(_)) => bail!("pin_length: set generate_pin = true too"),
            (false, None) => None,
            (true, n) => {
                let n = n.unwrap_or(6);
                if !(4..=8).contains(&n) {
                    bail!("pin_length: {n} digits; a generated PIN has 4 to 8");
                }
                if !welcome_email {
                    bail!(
                        "generate_pin: a generated PIN reaches its user only in the welcome \
                         email; set welcome_email = true"
                    );
                }
                Some(n as usize)
            }
        };
        Ok(SourceNotify {
            events: raw
                .notify
                .as_deref()
                .map(|l| Event::parse_list(l, "notify"))
                .transpose()?,
            secret_expires,
            welcome_email,
            welcome_template,
            generate_pin,
        })
    }

    /// The events this source reports, given the global set.
    pub fn wants(&self, global: &[Event], e: Event) -> bool {
        self.events.as_deref().unwrap_or(global).contains(&e)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    fn err(t: &str) -> String {
        format!("{:#}", Config::parse(t, Path::new("/tmp")).unwrap_err())
    }

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn channels_parse() {
        let c = Config::parse(
            &format!(
                "[notify.email]\nsmtp='smtps://mail.example.com'\nfrom='roster <r@example.com>'\nto=['a@example.com']\n\
                 [[notify.webhook]]\nurl='https://h.example.com/x'\nsecret='{SECRET}'\nevents=['run.failed']\n\
                 [[notify.webhook]]\nurl='http://127.0.0.1:9/x'\nsecret=['{SECRET}','{SECRET}']"
            ),
            Path::new("/tmp"),
        )
        .unwrap();
        let e = c.notify.email.as_ref().unwrap();
        assert_eq!((e.port, e.tls), (465, super::SmtpTls::Implicit));
        assert_eq!(c.notify.webhooks[1].keys.len(), 2);
        assert!(!c.notify.webhooks[0].wants(super::Event::RunChanged));
    }

    #[test]
    fn the_entra_connectors_secret_expires_counts() {
        let c = Config::parse(
            "[sources.a]\nplugin='entra'\n[sources.a.config]\nsecret_expires=2027-01-02",
            Path::new("/tmp"),
        )
        .unwrap();
        let e = &c.sources[0].notify.secret_expires;
        assert_eq!(e.len(), 1);
        assert_eq!(
            (e[0].0.as_str(), e[0].1.to_string()),
            ("client_secret", "2027-01-02".into())
        );
        // The per-source key wins, and may name several secrets.
        let c = Config::parse(
            "[sources.a]\nplugin='x'\nsecret_expires={a='2027-01-01', b='2027-02-01'}\n[sources.a.config]\nsecret_expires='2027-03-03'",
            Path::new("/tmp"),
        )
        .unwrap();
        assert_eq!(c.sources[0].notify.secret_expires.len(), 2);
    }

    #[test]
    fn errors_name_the_key() {
        let e = err("[notify]\nevents=['run.changd']");
        assert!(
            e.contains("notify.events") && e.contains("run.changd"),
            "{e}"
        );
        let e = err(&format!(
            "[[notify.webhook]]\nurl='http://hooks.example.com'\nsecret='{SECRET}'"
        ));
        assert!(
            e.contains("notify.webhook[0].url") && e.contains("allow_http"),
            "{e}"
        );
        let e = err("[[notify.webhook]]\nurl='https://h.example.com'\nsecret='plain-secret'");
        assert!(
            e.contains("notify.webhook[0].secret") && !e.contains("plain-secret"),
            "{e}"
        );
        let e = err("[notify.email]\nsmtp='imap://x'\nfrom='a@b.c'\nto=['a@b.c']");
        assert!(e.contains("notify.email.smtp"), "{e}");
        let e = err("[notify.email]\nsmtp='smtp://x'\nfrom='not an address'\nto=['a@b.c']");
        assert!(e.contains("notify.email.from"), "{e}");
        let e = err("[sources.a]\nplugin='csv'\ngenerate_pin=true\nwelcome_email=true\npin_length=9\n[notify.email]\nsmtp='smtp://x'\nfrom='a@b.c'\nto=['a@b.c']");
        assert!(e.contains("pin_length"), "{e}");
        let e = err("[sources.a]\nplugin='csv'\nwelcome_email=true");
        assert!(
            e.contains("welcome_email") && e.contains("notify.email"),
            "{e}"
        );
        let e = err("[sources.a]\nplugin='csv'\nsecret_expires='next week'");
        assert!(e.contains("secret_expires"), "{e}");
    }
}
