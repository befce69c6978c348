//! A run's config: the admin's `[sources.NAME.config]` values, with declared defaults filled in.

use crate::{Error, Info};
use serde_json::{Map, Value};

/// The source's config. Secret keys are never here: the host keeps them.
#[derive(Debug, Clone, Default)]
pub struct Config {
    map: Map<String, Value>,
    /// Keys filled in from declared defaults.
    defaulted: Vec<String>,
}

impl Config {
    /// Parses the host's JSON and fills in the defaults `info` declares.
    pub(crate) fn parse(json: &str, info: &Info) -> Result<Config, Error> {
        let mut map = match serde_json::from_str(json) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Err(Error::config("config is not a JSON object")),
            Err(e) => return Err(Error::config(format!("config is not valid JSON: {e}"))),
        };
        let mut defaulted = Vec::new();
        for key in info.keys.iter().filter(|k| k.fills_default) {
            if let (Some(default), false) = (&key.default, map.contains_key(&key.name)) {
                map.insert(key.name.clone(), default_value(default));
                defaulted.push(key.name.clone());
            }
        }
        Ok(Config { map, defaulted })
    }

    /// A config from JSON, without defaults: for an author's unit tests.
    pub fn from_json(json: &str) -> Result<Config, Error> {
        Config::parse(json, &Info::new("", "", ""))
    }

    /// The raw value of a key.
    pub fn value(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
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

    /// A string value; None when absent or null, a config error naming the key when it is
    /// not a string.
    pub fn string(&self, key: &str) -> Result<Option<&str>, Error> {
        match self.value(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(Error::config(format!(
                "{key}: expected a string, found {other}"
            ))),
        }
    }

    /// A boolean value; None when absent or null, a config error naming the key otherwise.
    pub fn boolean(&self, key: &str) -> Result<Option<bool>, Error> {
        match self.value(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(Error::config(format!(
                "{key}: expected true or false, found {other}"
            ))),
        }
    }

    /// A list of strings (a single string is a list of one); None when absent or null, a
    /// config error naming the key for anything else.
    pub fn strings(&self, key: &str) -> Result<Option<Vec<String>>, Error> {
        let wrong = |other: &Value| {
            Error::config(format!("{key}: expected a list of strings, found {other}"))
        };
        match self.value(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
            Some(Value::Array(items)) => (items.iter())
                .map(|i| i.as_str().map(String::from).ok_or_else(|| wrong(i)))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(wrong(other)),
        }
    }

    /// The whole table, declared defaults included.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.map
    }

    /// The table as the admin wrote it, without the declared defaults: what a fingerprint of
    /// the config should hash, so that declaring a new default does not change it.
    pub fn given(&self) -> Map<String, Value> {
        let mut map = self.map.clone();
        for key in &self.defaulted {
            map.remove(key);
        }
        map
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
        assert_eq!(c.given().len(), 1);
    }

    #[test]
    fn typed_values_or_errors_naming_the_key() {
        let info = Info::new("t", "1", "")
            .key(Key::list("attributes", "").shown_default("ad: [\"cn\"]; openldap: [\"uid\"]"));
        let c = Config::parse(
            r#"{"s": "x", "n": 3, "b": true, "l": ["a", "b"], "one": "a", "bad": [1], "z": null}"#,
            &info,
        )
        .unwrap();
        assert_eq!(c.string("s"), Ok(Some("x")));
        assert_eq!(c.string("z"), Ok(None));
        assert_eq!(
            c.string("n"),
            Err(Error::config("n: expected a string, found 3"))
        );
        assert_eq!(c.boolean("b"), Ok(Some(true)));
        assert_eq!(
            c.boolean("s"),
            Err(Error::config("s: expected true or false, found \"x\""))
        );
        assert_eq!(c.strings("l"), Ok(Some(vec!["a".into(), "b".into()])));
        assert_eq!(c.strings("one"), Ok(Some(vec!["a".into()])));
        assert_eq!(
            c.strings("bad"),
            Err(Error::config("bad: expected a list of strings, found 1"))
        );
        // A shown default is the connector's own business.
        assert_eq!(c.strings("attributes"), Ok(None));
        assert_eq!(
            Config::from_json("[]").unwrap_err(),
            Error::config("config is not a JSON object")
        );
    }
}
