//! The policy half of `ldap`: which base DNs a source may search ([`BaseDns`]) and the
//! connection the admin configured ([`LdapSettings`]), read from the source's config.

use crate::config::{parse_duration, resolve_string, ConfigError};
use crate::model::Secret;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The base DNs a source may search, at or below.
#[derive(Debug, Clone, Default)]
pub struct BaseDns {
    bases: Vec<(String, Vec<String>)>,
}

impl BaseDns {
    pub fn new<S: AsRef<str>>(bases: impl IntoIterator<Item = S>) -> Self {
        BaseDns {
            bases: bases
                .into_iter()
                .map(|b| (b.as_ref().to_string(), rdns(b.as_ref())))
                .collect(),
        }
    }

    /// The configured bases, as written.
    pub fn list(&self) -> Vec<String> {
        self.bases.iter().map(|(b, _)| b.clone()).collect()
    }

    /// The Deleted Objects containers of the bases' domains (AD moves a deleted object
    /// there, out of every OU), each once.
    pub fn deleted_containers(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (written, _) in &self.bases {
            let parts = split_rdns(written);
            let domain: Vec<&str> = parts
                .iter()
                .rev()
                .take_while(|p| p.trim().to_lowercase().starts_with("dc="))
                .map(|p| p.trim())
                .collect();
            if domain.is_empty() {
                continue;
            }
            let dn = format!(
                "CN=Deleted Objects,{}",
                domain.into_iter().rev().collect::<Vec<_>>().join(",")
            );
            if !out.iter().any(|d| d.eq_ignore_ascii_case(&dn)) {
                out.push(dn);
            }
        }
        out
    }

    /// Whether `dn` is one of the bases or below one. Compared RDN by RDN, ignoring case
    /// and the spaces around separators, as LDAP servers do for the common attribute types.
    pub fn allows(&self, dn: &str) -> bool {
        let dn = rdns(dn);
        self.bases
            .iter()
            .any(|(_, base)| dn.len() >= base.len() && dn[dn.len() - base.len()..] == base[..])
    }
}

/// A DN's RDNs, normalised: split at unescaped commas, trimmed around `=`, lower-cased.
fn rdns(dn: &str) -> Vec<String> {
    split_rdns(dn)
        .into_iter()
        .map(|rdn| {
            let rdn = rdn.trim();
            match rdn.split_once('=') {
                Some((t, v)) => format!("{}={}", t.trim(), v.trim()).to_lowercase(),
                None => rdn.to_lowercase(),
            }
        })
        .filter(|r| !r.is_empty())
        .collect()
}

/// A DN split at unescaped commas (and semicolons), as written.
fn split_rdns(dn: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = dn.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ',' | ';' => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// A source's LDAP connection, as the admin configured it.
#[derive(Debug, Clone)]
pub struct LdapSettings {
    pub urls: Vec<String>,
    pub starttls: bool,
    pub ca_file: Option<PathBuf>,
    pub tls_verify: bool,
    pub bind_dn: Option<String>,
    pub password: Option<Secret>,
    pub bases: BaseDns,
    pub timeout: Duration,
}

impl LdapSettings {
    /// Reads the connection keys of `[sources.NAME.config]` (`ctx` names that table in
    /// errors). Secret references are resolved here, in the host.
    pub fn from_config(
        config: &toml::Table,
        dir: &Path,
        ctx: &str,
    ) -> Result<LdapSettings, ConfigError> {
        let err = |key: &str, message: String| ConfigError::at(format!("{ctx}.{key}"), message);
        let strings = |key: &str| -> Result<Vec<String>, ConfigError> {
            Ok(match config.get(key) {
                None => Vec::new(),
                Some(toml::Value::String(s)) => vec![s.clone()],
                Some(toml::Value::Array(a)) => a
                    .iter()
                    .map(|v| match v {
                        toml::Value::String(s) => Ok(s.clone()),
                        other => Err(err(key, format!("expected strings, found {other}"))),
                    })
                    .collect::<Result<_, _>>()?,
                Some(other) => {
                    return Err(err(
                        key,
                        format!("expected a string or a list, found {other}"),
                    ))
                }
            })
        };
        let boolean = |key: &str, default: bool| -> Result<bool, ConfigError> {
            match config.get(key) {
                None => Ok(default),
                Some(toml::Value::Boolean(b)) => Ok(*b),
                Some(other) => Err(err(key, format!("expected true or false, found {other}"))),
            }
        };
        let urls = strings("url")?;
        if urls.is_empty() {
            return Err(err(
                "url",
                "required (ldap://host:389 or ldaps://host:636; a list for failover)".into(),
            ));
        }
        for u in &urls {
            if !(u.starts_with("ldap://") || u.starts_with("ldaps://")) {
                return Err(err(
                    "url",
                    format!("{u:?} is not an ldap:// or ldaps:// URL"),
                ));
            }
        }
        let bases = strings("base_dn")?;
        if bases.is_empty() {
            return Err(err(
                "base_dn",
                "required (for example \"DC=example,DC=test\"; a list for several)".into(),
            ));
        }
        let ca_file = match config.get("ca_file") {
            None => None,
            Some(v) => Some(dir.join(resolve_string(v, dir, &format!("{ctx}.ca_file"))?.0)),
        };
        let password = config
            .get("password")
            .map(|v| resolve_string(v, dir, &format!("{ctx}.password")))
            .transpose()?;
        let timeout = match config.get("timeout") {
            None => Duration::from_secs(30),
            // Worded by parse_duration, which names no key (as before the split).
            Some(toml::Value::String(s)) => {
                parse_duration(s).map_err(|e| ConfigError::new(format!("{e:#}")))?
            }
            Some(other) => {
                return Err(err(
                    "timeout",
                    format!("expected a duration such as \"30s\", found {other}"),
                ))
            }
        };
        let settings = LdapSettings {
            urls,
            starttls: boolean("starttls", false)?,
            ca_file,
            tls_verify: boolean("tls_verify", true)?,
            bind_dn: strings("bind_dn")?.into_iter().next(),
            password,
            bases: BaseDns::new(bases),
            timeout,
        };
        if !settings.tls_verify {
            tracing::warn!(
                "{ctx}.tls_verify = false: the LDAP server's certificate is not checked; set \
                 ca_file instead"
            );
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    #[test]
    fn settings_read_the_connection_keys() {
        std::env::set_var("ROSTER_TEST_LDAP_PW", "pw-7f3a");
        let s = LdapSettings::from_config(
            &table(
                r#"
                url = ["ldaps://dc1:636", "ldaps://dc2:636"]
                bind_dn = "svc@example.test"
                password = { env = "ROSTER_TEST_LDAP_PW" }
                base_dn = "DC=example,DC=test"
                ca_file = "ca.pem"
                timeout = "5s"
                profile = "ad"
                "#,
            ),
            Path::new("/etc/roster"),
            "sources.ad.config",
        )
        .unwrap();
        assert_eq!(s.urls, ["ldaps://dc1:636", "ldaps://dc2:636"]);
        assert_eq!(s.password.as_ref().unwrap().0, "pw-7f3a");
        assert_eq!(s.bases.list(), ["DC=example,DC=test"]);
        assert_eq!(s.ca_file.as_deref(), Some(Path::new("/etc/roster/ca.pem")));
        assert_eq!(s.timeout, Duration::from_secs(5));
        assert!(s.tls_verify && !s.starttls);
        assert!(
            !format!("{s:?}").contains("pw-7f3a"),
            "Debug shows the password"
        );
    }

    #[test]
    fn settings_errors_name_the_key() {
        let dir = Path::new("/");
        for (text, key) in [
            ("base_dn = \"dc=t\"", "url"),
            ("url = \"http://x\"\nbase_dn = \"dc=t\"", "url"),
            ("url = \"ldap://x\"", "base_dn"),
            (
                "url = \"ldap://x\"\nbase_dn = \"dc=t\"\ntls_verify = \"no\"",
                "tls_verify",
            ),
            (
                "url = \"ldap://x\"\nbase_dn = \"dc=t\"\ntimeout = 5",
                "timeout",
            ),
        ] {
            let e = LdapSettings::from_config(&table(text), dir, "sources.d.config")
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&format!("sources.d.config.{key}")),
                "{text}: {e}"
            );
        }
    }
}
