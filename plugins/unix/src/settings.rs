//! The connector's keys, checked once at the start of a run.

use roster_plugin::{Config, Error};
use std::collections::HashSet;

pub const DEFAULT_MIN_UID: u32 = 1000;
pub const DEFAULT_INACTIVE_SHELLS: &[&str] = &["/usr/sbin/nologin", "/sbin/nologin", "/bin/false"];
pub const DEFAULT_EXCLUDE_USERS: &[&str] = &["nobody", "nfsnobody"];

/// What identifies a user across runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    Uid,
    Username,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub passwd: String,
    pub group: Option<String>,
    pub min_uid: u32,
    pub max_uid: u32,
    pub exclude_users: HashSet<String>,
    pub inactive_shells: HashSet<String>,
    pub anchor: Anchor,
}

impl Settings {
    pub fn from_config(c: &Config) -> Result<Settings, Error> {
        let passwd = c.require_str("passwd")?.to_string();
        let group = c.str("group").map(str::to_string);
        for (key, path) in [("passwd", Some(&passwd)), ("group", group.as_ref())] {
            if let Some(p) = path.filter(|p| is_shadow(p)) {
                return Err(Error::config(format!(
                    "{key}: {p} is a shadow file; roster reads only passwd and group files \
                     and never password hashes"
                )));
            }
        }
        let uid = |key: &str, default: u32| -> Result<u32, Error> {
            match c.value(key) {
                None => Ok(default),
                Some(v) => (v.as_i64())
                    .and_then(|i| u32::try_from(i).ok())
                    .ok_or_else(|| {
                        Error::config(format!("{key}: expected a uid (0 to 4294967295), got {v}"))
                    }),
            }
        };
        let min_uid = uid("min_uid", DEFAULT_MIN_UID)?;
        let max_uid = uid("max_uid", u32::MAX)?;
        if max_uid < min_uid {
            return Err(Error::config(format!(
                "max_uid ({max_uid}) is below min_uid ({min_uid}): no account could be imported"
            )));
        }
        let list = |key: &str, default: &[&str]| -> HashSet<String> {
            match c.value(key) {
                None => default.iter().map(|s| s.to_string()).collect(),
                Some(_) => c.list(key).into_iter().collect(),
            }
        };
        let anchor = match c.str("anchor").unwrap_or("uid") {
            "uid" => Anchor::Uid,
            "username" => Anchor::Username,
            other => {
                return Err(Error::config(format!(
                    "anchor: expected \"uid\" or \"username\", got {other:?}"
                )))
            }
        };
        Ok(Settings {
            passwd,
            group,
            min_uid,
            max_uid,
            exclude_users: list("exclude_users", DEFAULT_EXCLUDE_USERS),
            inactive_shells: list("inactive_shells", DEFAULT_INACTIVE_SHELLS),
            anchor,
        })
    }
}

/// `/etc/shadow`, `/etc/gshadow`, `shadow-`, `shadow.bak`, …
fn is_shadow(path: &str) -> bool {
    let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
    name.to_ascii_lowercase().contains("shadow")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: &str) -> Result<Settings, Error> {
        Settings::from_config(&Config::from_json(json).unwrap())
    }

    #[test]
    fn defaults_and_checks() {
        let s = settings(r#"{"passwd": "/etc/passwd"}"#).unwrap();
        assert_eq!(
            (s.min_uid, s.max_uid, s.anchor),
            (1000, u32::MAX, Anchor::Uid)
        );
        assert!(s.inactive_shells.contains("/usr/sbin/nologin"));
        assert!(s.exclude_users.contains("nobody"));
        let s = settings(
            r#"{"passwd": "p", "group": "g", "min_uid": 500, "max_uid": 60000,
                "exclude_users": ["svc"], "inactive_shells": [], "anchor": "username"}"#,
        )
        .unwrap();
        assert_eq!(
            (s.min_uid, s.max_uid, s.anchor),
            (500, 60000, Anchor::Username)
        );
        assert!(s.inactive_shells.is_empty() && !s.exclude_users.contains("nobody"));

        let err = |j| settings(j).unwrap_err().to_string();
        assert_eq!(err("{}"), "passwd: required");
        assert!(err(r#"{"passwd": "/etc/shadow"}"#).contains("is a shadow file"));
        assert!(err(r#"{"passwd": "p", "group": "/etc/gshadow"}"#).contains("shadow"));
        assert!(err(r#"{"passwd": "p", "min_uid": -1}"#).starts_with("min_uid: expected a uid"));
        assert!(err(r#"{"passwd": "p", "min_uid": 10, "max_uid": 5}"#).contains("below"));
        assert!(err(r#"{"passwd": "p", "anchor": "dn"}"#).starts_with("anchor:"));
    }
}
