//! The connector's config: the `[sources.NAME.config]` table, handed over as a JSON object
//! (the host withholds `client_secret`).

use roster_plugin::Config;
use serde_json::{Map, Value};

use crate::date::Date;
use crate::Error;

pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
pub const DEFAULT_GRAPH: &str = "https://graph.microsoft.com";
pub const DEFAULT_ALIAS_FIELDS: &str = "%onPremisesSamAccountName%";

/// A parsed, checked config.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub tenant_id: String,
    pub client_id: String,
    pub secret_expires: Option<Date>,
    /// Group object ids; empty means every user of the tenant.
    pub groups: Vec<String>,
    pub include_disabled: bool,
    pub alias_templates: Vec<Template>,
    pub aliases_strip_invalid: bool,
    pub use_display_name: bool,
    pub import_groups: bool,
    pub use_delta: bool,
    /// Without a trailing slash.
    pub graph_url: String,
    /// A fingerprint of everything that shapes what a run sends: a delta cursor made under
    /// another config is not used.
    pub fingerprint: String,
}

impl Settings {
    pub fn from_json(json: &str) -> Result<Settings, Error> {
        Settings::from_config(&Config::from_json(json)?)
    }

    /// The same from the SDK's config (declared defaults filled in: the same as ours).
    pub fn from_config(config: &Config) -> Result<Settings, Error> {
        let map = config.as_map();
        let string = |key: &str| -> Result<Option<String>, Error> {
            Ok(config.string(key)?.map(String::from))
        };
        let boolean = |key: &str, default: bool| -> Result<bool, Error> {
            Ok(config.boolean(key)?.unwrap_or(default))
        };
        let required = |key: &str, what: &str| -> Result<String, Error> {
            string(key)?
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| Error::Config(format!("{key}: required: {what}")))
        };
        let tenant_id = required("tenant_id", "the directory (tenant) id")?;
        let client_id = required("client_id", "the application (client) id")?;
        let secret_expires = match string("secret_expires")? {
            Some(s) if !s.trim().is_empty() => Some(Date::parse(s.trim()).ok_or_else(|| {
                Error::Config(format!(
                    "secret_expires: {s:?} is not a date (expected YYYY-MM-DD)"
                ))
            })?),
            _ => None,
        };
        let groups = match map.get("groups") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.trim().to_string()),
                    other => Err(Error::Config(format!(
                        "groups: expected a list of group object ids, found {other}"
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?,
            // Lenient, as MyQ writes it: "id1, id2".
            Some(Value::String(s)) => s.split(',').map(|g| g.trim().to_string()).collect(),
            Some(other) => {
                return Err(Error::Config(format!(
                    "groups: expected a list of group object ids, found {other}"
                )))
            }
        };
        let mut groups: Vec<String> = groups.into_iter().filter(|g| !g.is_empty()).collect();
        groups.dedup();
        for g in &groups {
            if !g.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(Error::Config(format!(
                    "groups: {g:?} is not a group object id (a GUID)"
                )));
            }
        }
        let alias_fields =
            string("alias_fields")?.unwrap_or_else(|| DEFAULT_ALIAS_FIELDS.to_string());
        let alias_templates = alias_fields
            .split(';')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| Template::parse(t).map_err(|e| Error::Config(format!("alias_fields: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let graph_url = string("graph_url")?
            .unwrap_or_else(|| DEFAULT_GRAPH.to_string())
            .trim()
            .trim_end_matches('/')
            .to_string();
        if !(graph_url.starts_with("https://") || graph_url.starts_with("http://")) {
            return Err(Error::Config(format!(
                "graph_url: {graph_url:?} is not an http(s) URL"
            )));
        }
        let fingerprint = fingerprint(map);
        Ok(Settings {
            tenant_id,
            client_id,
            secret_expires,
            groups,
            include_disabled: boolean("include_disabled", false)?,
            alias_templates,
            aliases_strip_invalid: boolean("aliases_strip_invalid", false)?,
            use_display_name: boolean("use_display_name", true)?,
            import_groups: boolean("import_groups", true)?,
            use_delta: boolean("use_delta", true)?,
            graph_url,
            fingerprint,
        })
    }

    /// Graph fields the alias templates name beyond the ones always fetched.
    pub fn template_fields(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for t in &self.alias_templates {
            for f in t.fields() {
                if !out.iter().any(|o| o.eq_ignore_ascii_case(f)) {
                    out.push(f.to_string());
                }
            }
        }
        out
    }
}

/// FNV-1a over the config keys that shape a run's output (not the secret's expiry date).
fn fingerprint(map: &Map<String, Value>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut keys: Vec<&String> = map.keys().filter(|k| *k != "secret_expires").collect();
    keys.sort();
    for k in keys {
        for b in k
            .bytes()
            .chain([0])
            .chain(map[k].to_string().bytes())
            .chain([0])
        {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// An alias template such as `%givenName%.%surname%`: `%field%` is a Graph field, `%%` a `%`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Piece>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(String),
}

impl Template {
    pub fn parse(s: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut rest = s;
        while let Some(start) = rest.find('%') {
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 1..];
            let Some(end) = after.find('%') else {
                return Err(format!("template {s:?}: unclosed %"));
            };
            let name = &after[..end];
            if name.is_empty() {
                pieces.push(Piece::Text("%".into()));
            } else if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                pieces.push(Piece::Field(name.to_string()));
            } else {
                return Err(format!(
                    "template {s:?}: {name:?} is not a Graph field name"
                ));
            }
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Template(pieces))
    }

    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|p| match p {
            Piece::Field(f) => Some(f.as_str()),
            Piece::Text(_) => None,
        })
    }

    /// Renders with `lookup` (a field's text value); None when a field is missing or empty.
    pub fn render<'a>(&self, lookup: impl Fn(&str) -> Option<&'a str>) -> Option<String> {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Field(f) => {
                    out.push_str(lookup(f).map(str::trim).filter(|v| !v.is_empty())?)
                }
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("tenant_id".into(), "t1".into());
        m.insert("client_id".into(), "c1".into());
        m
    }

    fn parse(m: &Map<String, Value>) -> Result<Settings, Error> {
        Settings::from_json(&Value::Object(m.clone()).to_string())
    }

    #[test]
    fn defaults() {
        let s = parse(&base()).unwrap();
        assert_eq!(s.graph_url, DEFAULT_GRAPH);
        assert!(s.groups.is_empty());
        assert!(!s.include_disabled && !s.aliases_strip_invalid);
        assert!(s.use_display_name && s.import_groups && s.use_delta);
        assert_eq!(s.template_fields(), ["onPremisesSamAccountName"]);
        assert_eq!(s.secret_expires, None);
    }

    #[test]
    fn required_keys_and_bad_values_name_the_key() {
        let mut m = base();
        m.remove("tenant_id");
        assert!(matches!(parse(&m), Err(Error::Config(e)) if e.starts_with("tenant_id")));
        for (k, v) in [
            ("secret_expires", Value::from("next week")),
            ("groups", Value::from(3)),
            ("groups", Value::from("not/a/guid")),
            ("include_disabled", Value::from("yes")),
            ("alias_fields", Value::from("%givenName")),
            ("graph_url", Value::from("ftp://x")),
        ] {
            let mut m = base();
            m.insert(k.into(), v);
            assert!(
                matches!(parse(&m), Err(Error::Config(e)) if e.starts_with(k)),
                "{k}"
            );
        }
    }

    #[test]
    fn groups_templates_and_urls() {
        let mut m = base();
        m.insert("groups".into(), "a-1, b-2".into());
        m.insert(
            "alias_fields".into(),
            "%givenName%.%surname%; %surname%-%givenName%".into(),
        );
        m.insert("graph_url".into(), "http://127.0.0.1:9/".into());
        m.insert("secret_expires".into(), "2026-12-01".into());
        let s = parse(&m).unwrap();
        assert_eq!(s.groups, ["a-1", "b-2"]);
        assert_eq!(s.alias_templates.len(), 2);
        assert_eq!(s.template_fields(), ["givenName", "surname"]);
        assert_eq!(s.graph_url, "http://127.0.0.1:9");
        assert_eq!(s.secret_expires, Date::parse("2026-12-01"));
    }

    #[test]
    fn the_fingerprint_follows_the_config_but_not_the_expiry() {
        let a = parse(&base()).unwrap().fingerprint;
        let mut m = base();
        m.insert("secret_expires".into(), "2030-01-01".into());
        assert_eq!(parse(&m).unwrap().fingerprint, a);
        m.insert("include_disabled".into(), true.into());
        assert_ne!(parse(&m).unwrap().fingerprint, a);
    }

    #[test]
    fn templates_render_only_when_every_field_has_a_value() {
        let t = Template::parse("%givenName%.%surname%%%").unwrap();
        let f = |k: &str| match k {
            "givenName" => Some("Ann"),
            "surname" => Some(" Lee "),
            _ => None,
        };
        assert_eq!(t.render(f).as_deref(), Some("Ann.Lee%"));
        let g = |k: &str| {
            if k == "givenName" {
                Some("Ann")
            } else {
                Some("")
            }
        };
        assert_eq!(t.render(g), None);
    }
}
