//! The connector's keys, checked once at the start of a run.

use roster_plugin::{Config, Error};

pub const DEFAULT_API: &str = "https://admin.googleapis.com";
pub const DEFAULT_CUSTOMER: &str = "my_customer";
const SCOPE_BASE: &str = "https://www.googleapis.com/auth/admin.directory.";
/// The read-only scopes the service account's client id needs, by what they read.
pub const USER_SCOPE: &str = "user.readonly";
pub const GROUP_SCOPE: &str = "group.readonly";
pub const ORGUNIT_SCOPE: &str = "orgunit.readonly";

/// The full URL of a scope.
pub fn scope(short: &str) -> String {
    format!("{SCOPE_BASE}{short}")
}

/// The space-separated scopes of the credential.
pub fn all_scopes() -> String {
    [USER_SCOPE, GROUP_SCOPE, ORGUNIT_SCOPE]
        .map(scope)
        .join(" ")
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub api: String,
    pub subject: String,
    pub customer: String,
    pub domain: Option<String>,
    /// OU paths, `/Staff/IT`, without a trailing slash (`/` itself is every OU).
    pub org_units: Vec<String>,
    /// Group keys: emails or ids.
    pub groups: Vec<String>,
    pub query: Option<String>,
    pub include_suspended: bool,
}

impl Settings {
    pub fn from_config(c: &Config) -> Result<Settings, Error> {
        let api = c
            .str("api_url")
            .unwrap_or(DEFAULT_API)
            .trim_end_matches('/');
        let non_empty = |k: &str| c.str(k).map(str::trim).filter(|s| !s.is_empty());
        let mut org_units = Vec::new();
        for ou in c.list("org_units") {
            let ou = ou.trim();
            if !ou.starts_with('/') {
                return Err(Error::config(format!(
                    "org_units: {ou:?} is not an organisational unit path (such as \"/Staff/IT\")"
                )));
            }
            let ou = ou.trim_end_matches('/');
            org_units.push(if ou.is_empty() { "/".into() } else { ou.into() });
        }
        Ok(Settings {
            api: api.to_string(),
            subject: c.require_str("subject")?.trim().to_string(),
            customer: non_empty("customer")
                .unwrap_or(DEFAULT_CUSTOMER)
                .to_string(),
            domain: non_empty("domain").map(str::to_string),
            org_units,
            groups: (c.list("groups").into_iter())
                .map(|g| g.trim().to_string())
                .filter(|g| !g.is_empty())
                .collect(),
            query: non_empty("query").map(str::to_string),
            include_suspended: c.bool("include_suspended").unwrap_or(false),
        })
    }

    /// Whether an OU path is in scope (at or below one of `org_units`, or no scope).
    pub fn ou_in_scope(&self, path: &str) -> bool {
        self.org_units.is_empty()
            || self.org_units.iter().any(|s| {
                s == "/"
                    || path == s
                    || path
                        .strip_prefix(s.as_str())
                        .is_some_and(|r| r.starts_with('/'))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_scopes() {
        let c = Config::from_json(
            r#"{"subject": "admin@ex.com", "org_units": ["/Staff/", "/Students"], "groups": ["a@ex.com", " "], "domain": ""}"#,
        )
        .unwrap();
        let s = Settings::from_config(&c).unwrap();
        assert_eq!(s.api, DEFAULT_API);
        assert_eq!(s.customer, "my_customer");
        assert_eq!(s.domain, None);
        assert_eq!(s.org_units, ["/Staff", "/Students"]);
        assert_eq!(s.groups, ["a@ex.com"]);
        assert!(s.ou_in_scope("/Staff") && s.ou_in_scope("/Staff/IT"));
        assert!(!s.ou_in_scope("/StaffRoom") && !s.ou_in_scope("/"));
        let c = Config::from_json(r#"{"subject": "a", "org_units": ["Staff"]}"#).unwrap();
        assert!(Settings::from_config(&c).is_err());
        let c = Config::from_json("{}").unwrap();
        assert_eq!(
            Settings::from_config(&c).unwrap_err().to_string(),
            "subject: required"
        );
        assert!(all_scopes()
            .contains("https://www.googleapis.com/auth/admin.directory.orgunit.readonly"));
    }
}
