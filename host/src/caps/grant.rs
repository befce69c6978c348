//! The one decision of what a plugin may reach. A capability is granted only when the plugin
//! declares it *and* the source's config grants it: deny by default. The capability modules
//! keep their mechanism and policy types; this module only decides which of them a plugin
//! instance gets.

use super::files::{FilesCtx, Grants};
use super::http::HttpCtx;
use super::ldap::{LdapCtx, LdapSettings};
use super::log::LogCtx;
use super::Capabilities;
use crate::bindings::KeyType;
use crate::config::{resolve_string, ConfigError, SourceConfig};
use crate::runtime::PluginInfo;
use std::path::Path;

/// A capability a plugin may declare in its `info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Read-only files: those of its `file`/`files` keys and the source's `files = [...]`.
    Files,
    /// The source's LDAP connection (`url`, `bind_dn`, `password`, `base_dn`, ...).
    Ldap,
    /// HTTP to the origins of its `url`/`urls` keys, with host-held credentials.
    Http,
    /// Messages into roster's log. Reaches nothing outside: every plugin has it.
    Log,
}

impl Capability {
    pub const ALL: [Capability; 4] = [
        Capability::Files,
        Capability::Ldap,
        Capability::Http,
        Capability::Log,
    ];

    /// The name a plugin declares it by.
    pub const fn name(self) -> &'static str {
        match self {
            Capability::Files => "files",
            Capability::Ldap => "ldap",
            Capability::Http => "http",
            Capability::Log => "log",
        }
    }

    pub fn parse(name: &str) -> Option<Capability> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Whether `info` declares it.
    pub fn declared_by(self, info: &PluginInfo) -> bool {
        info.capabilities.iter().any(|c| c.name == self.name())
    }
}

/// What a connector of `src` gets, given what it declares (`info`). `dir` is the config's
/// directory, which relative paths resolve against. A wrong connection or credential in the
/// config is a [`ConfigError`] naming its key.
pub fn grant(
    info: &PluginInfo,
    src: &SourceConfig,
    dir: &Path,
) -> Result<Capabilities, ConfigError> {
    let ctx = format!("sources.{}.config", src.name);
    let mut caps = Capabilities::none(&src.name);
    if Capability::Files.declared_by(info) {
        caps.files = FilesCtx::granted(file_grants(info, src, dir, &ctx)?);
    }
    // The plugin's own config keys say whether `url` is required; without one there is no
    // connection to grant.
    if Capability::Ldap.declared_by(info) && src.config.contains_key("url") {
        caps.ldap = LdapCtx::new(LdapSettings::from_config(&src.config, dir, &ctx)?);
    }
    if Capability::Http.declared_by(info) {
        caps.http = HttpCtx::from_config(info, &src.config, dir, &ctx)?;
    }
    Ok(caps)
}

/// What the mapping script of `src` gets: the built-in script plugin reads the source's
/// `files = [...]`, and nothing else.
pub fn grant_mapping(src: &SourceConfig, dir: &Path) -> Capabilities {
    let mut grants = Grants::new(dir);
    for f in &src.files {
        grants.grant(f);
    }
    let mut caps = Capabilities::none(&src.name);
    caps.files = FilesCtx::granted(grants);
    caps
}

/// The source's `files = [...]` and the values of the plugin's `file` and `files` keys.
fn file_grants(
    info: &PluginInfo,
    src: &SourceConfig,
    dir: &Path,
    ctx: &str,
) -> Result<Grants, ConfigError> {
    let mut grants = Grants::new(dir);
    for f in &src.files {
        grants.grant(f);
    }
    for k in &info.config_keys {
        let Some(v) = src.config.get(&k.name) else {
            continue;
        };
        match (k.type_, v) {
            (KeyType::File, v) => {
                grants.grant(&resolve_string(v, dir, &format!("{ctx}.{}", k.name))?.0)
            }
            (KeyType::Files, toml::Value::Array(a)) => {
                for (i, v) in a.iter().enumerate() {
                    grants.grant(&resolve_string(v, dir, &format!("{ctx}.{}[{i}]", k.name))?.0);
                }
            }
            _ => {}
        }
    }
    Ok(grants)
}

impl Capabilities {
    /// Nothing granted but the log, tagged with `source`.
    pub fn none(source: &str) -> Self {
        Capabilities {
            log: LogCtx {
                source: source.to_string(),
            },
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::roster::plugin::types::{Capability as Declared, ConfigKey};
    use crate::config::Config;

    fn info(declares: &[&str]) -> PluginInfo {
        let key = |name: &str, type_| ConfigKey {
            name: name.into(),
            type_,
            required: false,
            default: None,
            description: String::new(),
        };
        PluginInfo {
            name: "p".into(),
            version: "1".into(),
            description: String::new(),
            capabilities: (declares.iter())
                .map(|c| Declared {
                    name: c.to_string(),
                    reason: "test".into(),
                })
                .collect(),
            config_keys: vec![
                key("path", KeyType::File),
                key("url", KeyType::String),
                key("base_dn", KeyType::String),
                key("api", KeyType::Url),
            ],
            credentials: Vec::new(),
            defaults: Vec::new(),
        }
    }

    /// A source with the given `[sources.s.config]` lines.
    fn source(dir: &Path, config: &str) -> SourceConfig {
        let text = format!("[sources.s]\nplugin = 'x.wasm'\n[sources.s.config]\n{config}\n");
        Config::parse(&text, dir).unwrap().sources.remove(0)
    }

    fn readable(caps: &Capabilities, path: &str) -> bool {
        caps.files.declared && caps.files.grants.check(path).is_ok()
    }

    #[test]
    fn files_need_the_declaration_and_a_grant() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("u.csv"), "x").unwrap();
        let granted = source(dir.path(), "path = 'u.csv'");
        let nothing = source(dir.path(), "");
        // Declared and granted.
        let caps = grant(&info(&["files"]), &granted, dir.path()).unwrap();
        assert!(readable(&caps, "u.csv"));
        // Declared, not granted.
        let caps = grant(&info(&["files"]), &nothing, dir.path()).unwrap();
        assert!(caps.files.declared && !readable(&caps, "u.csv"));
        // Granted, not declared.
        let caps = grant(&info(&[]), &granted, dir.path()).unwrap();
        assert!(!caps.files.declared && !readable(&caps, "u.csv"));
    }

    #[test]
    fn ldap_needs_the_declaration_and_a_connection() {
        let dir = tempfile::tempdir().unwrap();
        let conn = source(dir.path(), "url = 'ldap://dc:389'\nbase_dn = 'dc=t'");
        let nothing = source(dir.path(), "");
        let caps = grant(&info(&["ldap"]), &conn, dir.path()).unwrap();
        assert_eq!(caps.ldap.settings.unwrap().urls, ["ldap://dc:389"]);
        let caps = grant(&info(&["ldap"]), &nothing, dir.path()).unwrap();
        assert!(caps.ldap.settings.is_none());
        let caps = grant(&info(&[]), &conn, dir.path()).unwrap();
        assert!(caps.ldap.settings.is_none());
        // A connection that is there but wrong is a config error naming its key.
        let wrong = source(dir.path(), "url = 'http://dc'\nbase_dn = 'dc=t'");
        let e = grant(&info(&["ldap"]), &wrong, dir.path()).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("sources.s.config.url"));
        // ... and only checked for a plugin that would get it.
        assert!(grant(&info(&[]), &wrong, dir.path()).is_ok());
    }

    #[test]
    fn http_needs_the_declaration_and_an_origin() {
        let dir = tempfile::tempdir().unwrap();
        let api = source(dir.path(), "api = 'https://api.example.com/v1'");
        let nothing = source(dir.path(), "");
        let reach = |caps: &Capabilities| !caps.http.origins().is_empty();
        assert!(reach(&grant(&info(&["http"]), &api, dir.path()).unwrap()));
        assert!(!reach(
            &grant(&info(&["http"]), &nothing, dir.path()).unwrap()
        ));
        assert!(!reach(&grant(&info(&[]), &api, dir.path()).unwrap()));
        let wrong = source(dir.path(), "api = 'ftp://x'");
        let e = grant(&info(&["http"]), &wrong, dir.path()).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("sources.s.config.api"));
    }

    #[test]
    fn log_is_everyones_and_names_are_known() {
        let dir = tempfile::tempdir().unwrap();
        let caps = grant(&info(&[]), &source(dir.path(), ""), dir.path()).unwrap();
        assert_eq!(caps.log.source, "s");
        for c in Capability::ALL {
            assert_eq!(Capability::parse(c.name()), Some(c));
        }
        assert_eq!(Capability::parse("network"), None);
        assert!(!Capabilities::none("x").files.declared);
    }

    #[test]
    fn a_mapping_script_reads_the_sources_files_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.csv"), "x").unwrap();
        std::fs::write(dir.path().join("u.csv"), "x").unwrap();
        let text =
            "[sources.s]\nplugin = 'csv'\nfiles = ['t.csv']\n[sources.s.config]\npath = 'u.csv'\n";
        let src = Config::parse(text, dir.path()).unwrap().sources.remove(0);
        let caps = grant_mapping(&src, dir.path());
        assert!(readable(&caps, "t.csv"));
        assert!(!readable(&caps, "u.csv"));
        assert!(caps.ldap.settings.is_none() && caps.http.origins().is_empty());
    }
}
