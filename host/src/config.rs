//! `roster.toml`: parsing, validation and secret references.
//!
//! Any string value may be written as `{ env = "VAR" }` or `{ file = "PATH" }`. Resolved values
//! that may be secret are kept in [`Secret`], whose `Debug`/`Display` never show the value.

use crate::authority::{check_mode, Authority, Mode, SourceRules};
use crate::model::{Field, Secret};
use crate::notify::config::{NotifyConfig, RawNotify, RawSourceNotify, SourceNotify};
use crate::reconcile::{MaxDeletions, OnMissing, Options, PairBy, DEFAULT_DELETIONS_FLOOR};
use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A config error: exit code 2. `key` names what is wrong (`sources.hr.config.path`) when
/// one key is; the message says what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub key: Option<String>,
    pub message: String,
}

impl ConfigError {
    /// An error about the config as a whole (no one key).
    pub fn new(message: impl Into<String>) -> Self {
        ConfigError {
            key: None,
            message: message.into(),
        }
    }

    /// An error about one key.
    pub fn at(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            key: Some(key.into()),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{key}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// A [`ConfigError`] with no one key, as an `anyhow::Error`.
pub fn config_err(msg: impl Into<String>) -> anyhow::Error {
    ConfigError::new(msg).into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    database: Option<toml::Value>,
    serve: Option<RawServe>,
    #[serde(default)]
    sources: indexmap::IndexMap<String, RawSource>,
    notify: Option<RawNotify>,
    /// `[authority] FIELD = ["ad", "badges"]`.
    #[serde(default)]
    authority: indexmap::IndexMap<String, Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServe {
    listen: Option<String>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    public_url: Option<String>,
    metrics_public: Option<bool>,
}

/// `[serve]`: how `roster serve` listens.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: std::net::SocketAddr,
    /// PEM certificate chain and key (both or neither), resolved against the config's directory.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub public_url: Option<String>,
    /// `/metrics` answers without a token.
    pub metrics_public: bool,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: ([127, 0, 0, 1], 8642).into(),
            tls: None,
            public_url: None,
            metrics_public: false,
        }
    }
}

impl ServeConfig {
    fn from_raw(raw: RawServe, dir: &Path) -> Result<Self> {
        let mut s = ServeConfig::default();
        if let Some(l) = raw.listen {
            s.listen = l.parse().map_err(|_| {
                anyhow!(
                    "serve.listen: expected an address and port like \"127.0.0.1:8642\", got {l:?}"
                )
            })?;
        }
        s.tls = match (raw.tls_cert, raw.tls_key) {
            (Some(c), Some(k)) => Some((dir.join(c), dir.join(k))),
            (None, None) => None,
            (Some(_), None) => bail!("serve.tls_key: required with serve.tls_cert"),
            (None, Some(_)) => bail!("serve.tls_cert: required with serve.tls_key"),
        };
        if let Some(u) = raw.public_url {
            url::Url::parse(&u).map_err(|e| anyhow!("serve.public_url: {e}: {u:?}"))?;
            s.public_url = Some(u.trim_end_matches('/').to_string());
        }
        s.metrics_public = raw.metrics_public.unwrap_or(false);
        Ok(s)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    plugin: Option<toml::Value>,
    /// `push = "scim"`: no plugin; users are pushed in over SCIM.
    push: Option<String>,
    pair_by: Option<PairBy>,
    import_new: Option<bool>,
    update_existing: Option<bool>,
    on_missing: Option<OnMissing>,
    lowercase_usernames: Option<bool>,
    max_deletions: Option<toml::Value>,
    max_deletions_floor: Option<u64>,
    timeout: Option<String>,
    memory_limit: Option<toml::Value>,
    /// Extra files granted read-only to the plugin (for scripts).
    #[serde(default)]
    files: Vec<String>,
    /// A mapping script (Rhai) run over every user before the `[map]` templates.
    mapping: Option<toml::Value>,
    script_max_operations: Option<u64>,
    on_script_error: Option<OnScriptError>,
    /// `roster serve` runs the source by itself: an interval or a cron expression.
    schedule: Option<String>,
    timezone: Option<String>,
    #[serde(default)]
    config: toml::Table,
    #[serde(default)]
    map: toml::Table,
    // Notifications (notify/config.rs).
    notify: Option<Vec<String>>,
    secret_expires: Option<toml::Value>,
    welcome_email: Option<bool>,
    welcome_template: Option<toml::Value>,
    generate_pin: Option<bool>,
    pin_length: Option<u64>,
    // Per-field authority (authority.rs).
    join: Option<bool>,
    create_users: Option<bool>,
    #[serde(default)]
    fields: indexmap::IndexMap<String, String>,
}

/// What a mapping script's error on one entry does to the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnScriptError {
    /// The run fails and changes nothing.
    #[default]
    Fail,
    /// The entry is a failed entry; the run goes on.
    Skip,
}

/// The whole config.
#[derive(Debug)]
pub struct Config {
    /// Directory of the config file: relative paths resolve against it.
    pub dir: PathBuf,
    /// The SQLite file, or a PostgreSQL URL.
    pub database: PathBuf,
    pub serve: ServeConfig,
    pub sources: Vec<SourceConfig>,
    pub notify: NotifyConfig,
    /// Who may set which field, when any source joins others' users, has field modes, or
    /// `[authority]` ranks sources; None keeps every user wholly its owner's.
    pub authority: Option<Arc<Authority>>,
}

/// One `[sources.NAME]`, with the reconcile options still partly unset (plugins may suggest
/// defaults, see [`SourceConfig::options`]).
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub name: String,
    pub plugin: String,
    pair_by: Option<PairBy>,
    import_new: Option<bool>,
    update_existing: Option<bool>,
    on_missing: Option<OnMissing>,
    lowercase_usernames: Option<bool>,
    max_deletions: Option<MaxDeletions>,
    pub timeout: Duration,
    pub memory_limit: u64,
    pub files: Vec<String>,
    /// The mapping script's path, resolved against the config's directory.
    pub mapping: Option<PathBuf>,
    /// Overrides the scripts' Rhai operation budget (per entry for a mapping script, per
    /// run for a script source).
    pub script_max_operations: Option<u64>,
    pub on_script_error: OnScriptError,
    /// When `roster serve` runs it by itself; none: on request only.
    pub schedule: Option<crate::schedule::Schedule>,
    /// The plugin's own keys, unresolved (secret references intact).
    pub config: toml::Table,
    /// `[map]` overrides: field name → templates.
    pub map: Vec<(String, Vec<String>)>,
    pub notify: SourceNotify,
    /// `join = true`: attaches to users other sources own.
    pub join: bool,
    /// `push = "scim"`: the source has no plugin and is never pulled; identity providers
    /// push users into it over SCIM (`roster serve`, a `scim-push` token bound to it).
    pub push: bool,
    /// `[sources.NAME.fields]`.
    pub fields: Vec<(Field, Mode)>,
    /// The whole config's authority (see [`Config::authority`]), for [`SourceConfig::options`].
    pub authority: Option<Arc<Authority>>,
}

impl Config {
    /// What this host's own files are named after (the plugin directory beside it, the
    /// compile cache, the notification key): the SQLite file, or for PostgreSQL, `roster`
    /// in the config's directory.
    pub fn local_base(&self) -> PathBuf {
        if crate::store::pg::is_url(&self.database.to_string_lossy()) {
            self.dir.join("roster")
        } else {
            self.database.clone()
        }
    }

    /// Loads from `--config`, `ROSTER_CONFIG`, or `./roster.toml` (the caller picks the path).
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            config_err(format!(
                "cannot read config {}: {e} (create one with `roster init`)",
                path.display()
            ))
        })?;
        let dir = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."));
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        Self::parse(&text, &dir).map_err(|e| config_err(format!("{}: {e:#}", path.display())))
    }

    pub fn parse(text: &str, dir: &Path) -> Result<Config> {
        // The full error text shows the offending line, so it names the key.
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| anyhow!("{}", e.to_string().trim_end()))?;
        let database = match &raw.database {
            Some(v) => resolve_string(v, dir, "database")?.0,
            None => "roster.db".to_string(),
        };
        let mut sources = Vec::new();
        let notify = NotifyConfig::from_raw(raw.notify, dir)?;
        for (name, raw) in raw.sources {
            let ctx = format!("sources.{name}");
            let src = SourceConfig::from_raw(name, raw, dir).context(ctx.clone())?;
            if src.notify.welcome_email && notify.email.is_none() {
                bail!("{ctx}.welcome_email: welcome emails need [notify.email]");
            }
            sources.push(src);
        }
        let serve = match raw.serve {
            Some(s) => ServeConfig::from_raw(s, dir)?,
            None => ServeConfig::default(),
        };
        let mut notify = notify;
        notify.public_url = serve.public_url.as_ref().map(|u| format!("{u}/console"));
        let authority = authority_of(&sources, raw.authority)?;
        for s in &mut sources {
            s.authority = authority.clone();
        }
        Ok(Config {
            // A URL is not a path: joining would make `dir/postgres:/...` of it.
            database: if crate::store::pg::is_url(&database) {
                PathBuf::from(database)
            } else {
                dir.join(database)
            },
            serve,
            dir: dir.to_path_buf(),
            sources,
            notify,
            authority,
        })
    }

    pub fn source(&self, name: &str) -> Result<&SourceConfig> {
        self.sources.iter().find(|s| s.name == name).ok_or_else(|| {
            let known: Vec<_> = self.sources.iter().map(|s| s.name.as_str()).collect();
            config_err(format!(
                "no source named `{name}` (configured: {})",
                known.join(", ")
            ))
        })
    }
}

impl SourceConfig {
    fn from_raw(name: String, raw: RawSource, dir: &Path) -> Result<Self> {
        let (plugin, push) = match (&raw.plugin, raw.push.as_deref()) {
            (Some(p), None) => (resolve_string(p, dir, "plugin")?.0, false),
            (None, Some("scim")) => (String::new(), true),
            (None, Some(other)) => bail!("push: expected \"scim\", got {other:?}"),
            (Some(_), Some(_)) => {
                bail!("push: a pushed source has no plugin; drop `plugin` or `push`")
            }
            (None, None) => bail!("plugin: required (or push = \"scim\" for a source that identity providers push users into)"),
        };
        if push && raw.schedule.is_some() {
            bail!("schedule: a pushed source is never pulled; drop the schedule");
        }
        let max_deletions = raw
            .max_deletions
            .map(|v| match v {
                toml::Value::Integer(n) if n >= 0 => Ok(MaxDeletions::Count(n as u64)),
                toml::Value::String(s) => MaxDeletions::parse(&s),
                other => Err(anyhow!(
                    "max_deletions: expected a count or a percentage like \"10%\", got {other}"
                )),
            })
            .transpose()?;
        // Without the key, a percentage keeps the default floor.
        let max_deletions = match (max_deletions, raw.max_deletions_floor) {
            (m, Some(floor)) => Some(m.unwrap_or_default().with_floor(floor)),
            (Some(m), None) => Some(m.with_floor(DEFAULT_DELETIONS_FLOOR)),
            (None, None) => None,
        };
        let timeout = parse_duration(raw.timeout.as_deref().unwrap_or("60s")).context("timeout")?;
        let memory_limit = match raw.memory_limit {
            None => 256 << 20,
            Some(toml::Value::Integer(n)) if n > 0 => n as u64,
            Some(toml::Value::String(s)) => parse_size(&s).context("memory_limit")?,
            Some(other) => bail!("memory_limit: expected a size like \"256MiB\", got {other}"),
        };
        let mut map = Vec::new();
        for (field, v) in raw.map {
            Field::parse(&field).map_err(|e| anyhow!("map: {e}"))?;
            let key = format!("map.{field}");
            let templates = match &v {
                toml::Value::Array(a) => a
                    .iter()
                    .map(|v| resolve_string(v, dir, &key).map(|s| s.0))
                    .collect::<Result<_, _>>()?,
                v => vec![resolve_string(v, dir, &key)?.0],
            };
            map.push((field, templates));
        }
        let mut fields = Vec::new();
        for (field, mode) in &raw.fields {
            let f = Field::parse(field).map_err(|e| anyhow!("fields: {e}"))?;
            let m = Mode::parse(mode).map_err(|e| anyhow!("fields.{field}: {e}"))?;
            check_mode(f, m).map_err(|e| anyhow!("fields.{field}: {e}"))?;
            fields.push((f, m));
        }
        let import_new = match (raw.import_new, raw.create_users) {
            (Some(a), Some(b)) if a != b => {
                bail!("create_users: contradicts import_new; set only create_users")
            }
            (a, b) => a.or(b),
        };
        let schedule = match (&raw.schedule, &raw.timezone) {
            (Some(s), tz) => Some(crate::schedule::Schedule::parse(s, tz.as_deref())?),
            (None, Some(_)) => bail!("timezone: set only with a cron `schedule`"),
            (None, None) => None,
        };
        let notify = SourceNotify::from_raw(
            RawSourceNotify {
                notify: raw.notify,
                secret_expires: raw.secret_expires,
                welcome_email: raw.welcome_email,
                welcome_template: raw.welcome_template,
                generate_pin: raw.generate_pin,
                pin_length: raw.pin_length,
            },
            &raw.config,
            dir,
        )?;
        Ok(SourceConfig {
            schedule,
            name,
            plugin,
            pair_by: raw.pair_by,
            import_new,
            update_existing: raw.update_existing,
            on_missing: raw.on_missing,
            lowercase_usernames: raw.lowercase_usernames,
            max_deletions,
            timeout,
            memory_limit,
            files: raw.files,
            mapping: raw
                .mapping
                .map(|v| resolve_string(&v, dir, "mapping").map(|p| dir.join(p.0)))
                .transpose()?,
            script_max_operations: raw.script_max_operations,
            on_script_error: raw.on_script_error.unwrap_or_default(),
            config: raw.config,
            map,
            notify,
            join: raw.join.unwrap_or(false),
            push,
            fields,
            authority: None,
        })
    }

    /// Reconcile options: the admin's values, else the plugin's suggested defaults, else
    /// roster's defaults.
    pub fn options(
        &self,
        plugin_defaults: &[(String, String)],
    ) -> std::result::Result<Options, ConfigError> {
        self.options_of(plugin_defaults)
            .map_err(|e| ConfigError::at(format!("sources.{}", self.name), format!("{e:#}")))
    }

    fn options_of(&self, plugin_defaults: &[(String, String)]) -> Result<Options> {
        let suggested = |key: &str| {
            plugin_defaults
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.trim_matches('"'))
        };
        let mut o = Options::default();
        if let Some(v) = suggested("pair_by") {
            o.pair_by = PairBy::parse(v)?;
        }
        if let Some(v) = suggested("on_missing") {
            o.on_missing = OnMissing::parse(v)?;
        }
        if let Some(v) = self.pair_by {
            o.pair_by = v;
        }
        if let Some(v) = self.on_missing {
            o.on_missing = v;
        }
        o.import_new = self.import_new.unwrap_or(o.import_new);
        o.update_existing = self.update_existing.unwrap_or(o.update_existing);
        o.lowercase_usernames = self.lowercase_usernames.unwrap_or(o.lowercase_usernames);
        if let Some(m) = self.max_deletions {
            o.max_deletions = m;
        }
        o.authority = self.authority.clone();
        Ok(o)
    }
}

/// The config's authority: None unless some source joins, has field modes, or `[authority]`
/// ranks sources. Ranked names must be configured sources and fields.
fn authority_of(
    sources: &[SourceConfig],
    ranks: indexmap::IndexMap<String, Vec<String>>,
) -> Result<Option<Arc<Authority>>> {
    let mut a = Authority::default();
    for (field, names) in ranks {
        let f = Field::parse(&field).map_err(|e| anyhow!("authority: {e}"))?;
        if f == Field::Active {
            bail!("authority.active: `active` follows the owner's listing and on_missing");
        }
        for n in &names {
            if !sources.iter().any(|s| &s.name == n) {
                let known: Vec<_> = sources.iter().map(|s| s.name.as_str()).collect();
                bail!(
                    "authority.{field}: no source named `{n}` (configured: {})",
                    known.join(", ")
                );
            }
        }
        a.ranks.push((f, names));
    }
    let used = !a.ranks.is_empty() || sources.iter().any(|s| s.join || !s.fields.is_empty());
    if !used {
        return Ok(None);
    }
    a.sources = (sources.iter())
        .map(|s| SourceRules {
            name: s.name.clone(),
            join: s.join,
            contributor: s.import_new == Some(false),
            modes: s.fields.clone(),
        })
        .collect();
    Ok(Some(Arc::new(a)))
}

/// Resolves a string that may be `{ env = "VAR" }` or `{ file = "PATH" }`.
pub fn resolve_string(
    v: &toml::Value,
    dir: &Path,
    key: &str,
) -> std::result::Result<Secret, ConfigError> {
    let err = |message: String| ConfigError::at(key, message);
    match v {
        toml::Value::String(s) => Ok(Secret(s.clone())),
        toml::Value::Table(t) if t.len() == 1 => {
            let (kind, arg) = t.iter().next().unwrap();
            let arg = arg
                .as_str()
                .ok_or_else(|| err(format!("`{kind}` must name a string")))?;
            match kind.as_str() {
                "env" => std::env::var(arg)
                    .map(Secret)
                    .map_err(|_| err(format!("environment variable {arg} is not set"))),
                "file" => std::fs::read_to_string(dir.join(arg))
                    .map(|s| Secret(s.trim_end_matches(['\r', '\n']).to_string()))
                    .map_err(|e| err(format!("cannot read secret file {arg}: {e}"))),
                other => Err(err(format!("unknown reference `{other}` (use {{ env = \"VAR\" }} or {{ file = \"PATH\" }})"))),
            }
        }
        other => Err(err(format!("expected a string, got {}", other.type_str()))),
    }
}

/// "500ms", "30s", "5m", "24h", "7d".
pub fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow!("invalid duration {s:?} (use e.g. \"60s\")"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        u => bail!("invalid duration unit {u:?} in {s:?} (use ms, s, m, h or d)"),
    };
    Ok(Duration::from_secs_f64(secs))
}

/// "256MiB", "1GiB", "64MB", "1048576".
pub fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| anyhow!("invalid size {s:?} (use e.g. \"256MiB\")"))?;
    let mul: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "kb" => 1000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        u => bail!("invalid size unit {u:?} in {s:?} (use KiB, MiB or GiB)"),
    };
    Ok(n * mul)
}

/// The starter config written by `roster init`.
pub const STARTER: &str = r#"# roster configuration. Paths are relative to this file.
# Any string value may be a secret reference: { env = "VAR" } or { file = "path" }.

# The embedded SQLite database.
database = "roster.db"

# One [sources.NAME] table per directory to sync. `roster sync` runs them all in order;
# `roster sync NAME` runs one.
[sources.people]
# A built-in connector (csv), an installed plugin's name, or a path to a .wasm component.
plugin = "csv"
# How a source entry finds its roster user: username | personal_number | email | anchor.
pair_by = "username"
# Create users that are new in the source.
import_new = true
# Update users whose data changed in the source.
update_existing = true
# What happens on a full run to this source's users that are no longer listed:
# deactivate | delete | ignore.
on_missing = "deactivate"
# Convert usernames and aliases to lowercase.
lowercase_usernames = false
# A full run that would deactivate or delete more than this many of this source's users
# aborts and changes nothing (a count, or a percentage). `roster sync --force` overrides.
max_deletions = "10%"
# A percentage never blocks a run that removes at most this many users (small sources).
max_deletions_floor = 1
# Sandbox limits for the connector: per call, and memory.
timeout = "60s"
memory_limit = "256MiB"

# The connector's own settings. For csv: path, delimiter, encoding, multi_value_separator.
[sources.people.config]
path = "users.csv"

# Optional field templates; %attr% is a source attribute. A template whose attribute is
# missing yields nothing.
# [sources.people.map]
# full_name = "%givenName% %sn%"
# aliases = ["%givenName%.%sn%"]
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<Config> {
        Config::parse(t, Path::new("/tmp"))
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = parse("databse = 'x'").unwrap_err().to_string();
        assert!(e.contains("databse"), "{e}");
        let e = parse("[sources.a]\nplugin='csv'\npair_bi='email'").unwrap_err();
        assert!(format!("{e:#}").contains("pair_bi"), "{e:#}");
    }

    #[test]
    fn env_and_file_references() {
        std::env::set_var("ROSTER_CFG_TEST_DB", "x.db");
        // A URL is kept as it is, never joined to the config's directory.
        let c = parse("database = 'postgres://roster@db/roster'").unwrap();
        assert_eq!(c.database, Path::new("postgres://roster@db/roster"));
        assert_eq!(c.local_base(), Path::new("/tmp/roster"));
        let c = parse("database = { env = 'ROSTER_CFG_TEST_DB' }").unwrap();
        assert_eq!(c.database, Path::new("/tmp/x.db"));
        let e = parse("database = { env = 'ROSTER_CFG_TEST_MISSING' }").unwrap_err();
        assert!(e.to_string().contains("ROSTER_CFG_TEST_MISSING"));
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("5 parsecs").is_err());
        assert_eq!(parse_size("256MiB").unwrap(), 256 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn defaults_and_plugin_suggestions() {
        let c = parse("[sources.a]\nplugin='csv'").unwrap();
        let s = &c.sources[0];
        assert_eq!(s.timeout, Duration::from_secs(60));
        assert_eq!(s.memory_limit, 256 << 20);
        let o = s.options(&[("pair_by".into(), "email".into())]).unwrap();
        assert_eq!(o.pair_by, PairBy::Email);
        let c = parse("[sources.a]\nplugin='csv'\npair_by='anchor'").unwrap();
        let o = c.sources[0]
            .options(&[("pair_by".into(), "email".into())])
            .unwrap();
        assert_eq!(o.pair_by, PairBy::Anchor);
    }

    #[test]
    fn starter_config_parses() {
        let c = parse(STARTER).unwrap();
        assert_eq!(c.sources.len(), 1);
    }

    #[test]
    fn script_keys() {
        let c = parse("[sources.a]\nplugin='csv'\nmapping='map.rhai'\nscript_max_operations=5\non_script_error='skip'").unwrap();
        let s = &c.sources[0];
        assert_eq!(s.mapping.as_deref(), Some(Path::new("/tmp/map.rhai")));
        assert_eq!(s.script_max_operations, Some(5));
        assert_eq!(s.on_script_error, OnScriptError::Skip);
        let c = parse("[sources.a]\nplugin='csv'").unwrap();
        assert_eq!(c.sources[0].on_script_error, OnScriptError::Fail);
        let e = parse("[sources.a]\nplugin='csv'\non_script_error='ignore'").unwrap_err();
        assert!(format!("{e:#}").contains("on_script_error"), "{e:#}");
    }

    #[test]
    fn serve_and_schedules() {
        let c = parse("[serve]\nlisten='0.0.0.0:9000'\ntls_cert='c.pem'\ntls_key='k.pem'\n[sources.a]\nplugin='csv'\nschedule='30m'\n[sources.b]\nplugin='csv'\nschedule='0 2 * * *'\ntimezone='Europe/Prague'").unwrap();
        assert_eq!(c.serve.listen.port(), 9000);
        assert_eq!(c.serve.tls.as_ref().unwrap().1, Path::new("/tmp/k.pem"));
        assert_eq!(
            c.sources[0].schedule.as_ref().unwrap().describe(),
            "every 30m"
        );
        assert!(c.sources[1].schedule.is_some());
        assert!(parse("[sources.a]\nplugin='csv'").unwrap().sources[0]
            .schedule
            .is_none());
        for (bad, key) in [
            ("[serve]\nlisten='here'", "serve.listen"),
            ("[serve]\ntls_cert='c.pem'", "serve.tls_key"),
            ("[serve]\nlistn='x'", "listn"),
            (
                "[sources.a]\nplugin='csv'\nschedule='0 2 * *'",
                "sources.a: schedule",
            ),
            (
                "[sources.a]\nplugin='csv'\nschedule='0 2 * * *'\ntimezone='Nowhere'",
                "sources.a: timezone",
            ),
        ] {
            let e = format!("{:#}", parse(bad).unwrap_err());
            assert!(e.contains(key), "{bad}: {e}");
        }
    }

    #[test]
    fn map_fields_are_checked() {
        let e = parse("[sources.a]\nplugin='csv'\n[sources.a.map]\nfull_nam='%cn%'").unwrap_err();
        assert!(format!("{e:#}").contains("full_nam"), "{e:#}");
    }
}
