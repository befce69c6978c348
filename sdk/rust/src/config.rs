//! A run's config: the admin's `[sources.NAME.config]` values, with declared defaults filled in.

use crate::{Error, Info};
use serde_json::{Map, Value};

/// The source's config. Secret keys are never here: the host keeps them.
#[derive(Debug, Clone, Default)]
pub struct Config(Map<String, Value>);

impl Config {
    /// Parses the host's JSON and fills in the defaults `info` declares.
    pub(crate) fn parse(json: &str, info: &Info) -> Result<Config, Error> {
        let mut map = match serde_json::from_str(json) {
            Ok(Value::Object(m)) => m,
            Ok(other) => return Err(Error::config(format!("config is not a table: {other}"))),
            Err(e) => return Err(Error::config(format!("config is not valid JSON: {e}"))),
        };
        for key in &info.keys {
            if let (Some(default), false) = (&key.default, map.contains_key(&key.name)) {
                map.insert(key.name.clone(), default_value(default));
            }
        }
        Ok(Config(map))
    }

    /// A config from JSON, without defaults: for an author's unit tests.
    pub fn from_json(json: &str) -> Result<Config, Error> {
        Config::parse(json, &Info::new("", "", ""))
    }

    /// The raw value of a key.
    pub fn value(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    /// A string value; None when absent.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.value(key).and_then(Value::as_str)
    }

    /// A string value, or a config error naming the key.
    pub fn require_str(&self, key: &str) -> Result<&str, Error> {
        match self.value(key) {
            Some(Value::String(s)) => Ok(s),
            Some(other) => Err(Error::config(format!(
                "{key}: expected a string, got {other}"
            ))),
            None => Err(Error::config(format!("{key}: required"))),
        }
    }

    pub fn bool(&self, key: &str) -> Option<bool> {
        self.value(key).and_then(Value::as_bool)
    }

    pub fn int(&self, key: &str) -> Option<i64> {
        self.value(key).and_then(Value::as_i64)
    }

    /// A list of strings (a single string is a list of one); empty when absent.
    pub fn list(&self, key: &str) -> Vec<String> {
        match self.value(key) {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        }
    }

    /// The whole table.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }
}

/// A declared default as the admin would write it in TOML: JSON-compatible scalars and lists
/// (`true`, `3`, `"x"`, `["a"]`) parse as such; anything else (`30s`) is a string.
fn default_value(default: &str) -> Value {
    serde_json::from_str(default).unwrap_or_else(|_| Value::String(default.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Key;

    #[test]
    fn declared_defaults_fill_what_the_admin_left_out() {
        let info = Info::new("t", "1", "")
            .key(Key::string("mode", "").default("\"fast\""))
            .key(Key::boolean("deep", "").default("true"))
            .key(Key::list("groups", "").default("[]"))
            .key(Key::duration("every", "").default("30s"));
        let c = Config::parse(r#"{"mode": "slow"}"#, &info).unwrap();
        assert_eq!(c.str("mode"), Some("slow"));
        assert_eq!(c.bool("deep"), Some(true));
        assert!(c.list("groups").is_empty());
        assert_eq!(c.str("every"), Some("30s"));
        assert_eq!(
            c.require_str("missing"),
            Err(Error::config("missing: required"))
        );
        assert!(Config::parse("[1]", &info).is_err());
    }
}
