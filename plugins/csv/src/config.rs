//! The connector's config: the `[sources.NAME.config]` table, handed over as a JSON object.

use encoding_rs::Encoding;
use roster_plugin::Config;
use serde_json::Value;

use crate::Error;

/// Columns that are always multi-valued (normalised names, see [`normalise`]).
pub const MULTI_VALUE_COLUMNS: [&str; 4] = ["aliases", "cards", "pins", "usernamealiases"];

/// The same columns as an admin would write them, for `info()`.
pub const MULTI_VALUE_COLUMNS_TOML: &str = r#"["aliases", "cards", "pins", "username_aliases"]"#;

/// A parsed, checked config.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The CSV file, as written in the config (the host resolves it).
    pub path: String,
    /// The field delimiter; `None` means detect it from the header line.
    pub delimiter: Option<char>,
    pub encoding: &'static Encoding,
    pub multi_value_separator: String,
    /// Extra multi-valued columns, normalised.
    pub multi_value_columns: Vec<String>,
    pub id_column: Option<String>,
}

impl Settings {
    /// Settings for `path` with every other key at its default.
    pub fn new(path: impl Into<String>) -> Settings {
        Settings {
            path: path.into(),
            delimiter: None,
            encoding: encoding_rs::UTF_8,
            multi_value_separator: ";".to_string(),
            multi_value_columns: Vec::new(),
            id_column: None,
        }
    }

    /// Parse the JSON config. Unknown keys are ignored (the host validates against `info()`);
    /// errors name the key.
    pub fn from_json(json: &str) -> Result<Settings, Error> {
        Settings::from_config(&Config::from_json(json)?)
    }

    /// The same from the SDK's config (declared defaults filled in: the same as ours).
    pub fn from_config(config: &Config) -> Result<Settings, Error> {
        let string = |key: &str| -> Result<Option<String>, Error> {
            Ok(config.string(key)?.map(String::from))
        };
        let path = string("path")?
            .filter(|p| !p.trim().is_empty())
            .ok_or_else(|| Error::Config("path: required: the CSV file to read".to_string()))?;
        let mut settings = Settings::new(path);

        if let Some(d) = string("delimiter")? {
            settings.delimiter = parse_delimiter(&d)?;
        }
        if let Some(label) = string("encoding")? {
            settings.encoding = parse_encoding(&label)?;
        }
        if let Some(sep) = string("multi_value_separator")? {
            if sep.is_empty() {
                return Err(Error::Config(
                    "multi_value_separator: must not be empty".to_string(),
                ));
            }
            settings.multi_value_separator = sep;
        }
        match config.value("multi_value_columns") {
            None => {}
            Some(Value::Array(items)) => {
                for item in items {
                    let Value::String(name) = item else {
                        return Err(Error::Config(format!(
                            "multi_value_columns: expected a list of column names, found {item}"
                        )));
                    };
                    settings.multi_value_columns.push(normalise(name));
                }
            }
            // Lenient: "a, b" as a comma-separated string.
            Some(Value::String(names)) => settings
                .multi_value_columns
                .extend(names.split(',').map(normalise).filter(|n| !n.is_empty())),
            Some(other) => {
                return Err(Error::Config(format!(
                    "multi_value_columns: expected a list of column names, found {other}"
                )))
            }
        }
        settings.id_column = string("id_column")?.filter(|c| !c.trim().is_empty());
        Ok(settings)
    }

    /// Whether the column with this normalised name is split on the separator.
    pub fn is_multi_valued(&self, normalised: &str) -> bool {
        MULTI_VALUE_COLUMNS.contains(&normalised)
            || self.multi_value_columns.iter().any(|c| c == normalised)
    }
}

/// `","`, `";"`, `"tab"`, `"\t"` (either a tab or backslash-t), any single character;
/// `""` or `"auto"` means detect.
pub fn parse_delimiter(value: &str) -> Result<Option<char>, Error> {
    let lower = value.to_ascii_lowercase();
    match lower.as_str() {
        "" | "auto" => return Ok(None),
        "\t" | "\\t" | "tab" => return Ok(Some('\t')),
        "comma" => return Ok(Some(',')),
        "semicolon" => return Ok(Some(';')),
        _ => {}
    }
    let mut chars = value.trim().chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if !matches!(c, '"' | '\n' | '\r') => Ok(Some(c)),
        _ => Err(Error::Config(format!(
            "delimiter: expected one character (such as \",\" or \";\") or \"tab\", found {value:?}"
        ))),
    }
}

/// Any label encoding_rs knows (WHATWG Encoding Standard labels).
pub fn parse_encoding(label: &str) -> Result<&'static Encoding, Error> {
    match Encoding::for_label(label.trim().as_bytes()) {
        None => Err(Error::Config(format!(
            "encoding: unknown encoding {label:?} (use a label such as \"utf-8\", \"windows-1250\" or \"iso-8859-2\")"
        ))),
        // Labels such as "iso-2022-kr" map to the replacement encoding, which decodes any
        // input to a single U+FFFD: never what an admin wants.
        Some(enc) if enc == encoding_rs::REPLACEMENT => Err(Error::Config(format!(
            "encoding: {label:?} is not supported"
        ))),
        Some(enc) => Ok(enc),
    }
}

/// Column names are compared lowercased, without spaces, `_` and `-`.
pub fn normalise(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-') && !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let s = Settings::from_json(r#"{"path": "users.csv", "other": 1}"#).unwrap();
        assert_eq!(s.path, "users.csv");
        assert_eq!(s.delimiter, None);
        assert_eq!(s.encoding, encoding_rs::UTF_8);
        assert_eq!(s.multi_value_separator, ";");
        assert!(s.is_multi_valued("usernamealiases"));
        assert!(!s.is_multi_valued("groups"));
        assert_eq!(s.id_column, None);
    }

    #[test]
    fn all_keys() {
        let s = Settings::from_json(
            r#"{"path": "u.csv", "delimiter": "tab", "encoding": "Windows-1250",
                "multi_value_separator": "|", "multi_value_columns": ["Groups", "e-mail"],
                "id_column": "Employee ID"}"#,
        )
        .unwrap();
        assert_eq!(s.delimiter, Some('\t'));
        assert_eq!(s.encoding, encoding_rs::WINDOWS_1250);
        assert_eq!(s.multi_value_separator, "|");
        assert!(s.is_multi_valued("groups"));
        assert!(s.is_multi_valued("email"));
        assert!(s.is_multi_valued("cards"));
        assert_eq!(s.id_column.as_deref(), Some("Employee ID"));
    }

    #[test]
    fn delimiters() {
        assert_eq!(parse_delimiter(",").unwrap(), Some(','));
        assert_eq!(parse_delimiter(";").unwrap(), Some(';'));
        assert_eq!(parse_delimiter("\t").unwrap(), Some('\t'));
        assert_eq!(parse_delimiter("\\t").unwrap(), Some('\t'));
        assert_eq!(parse_delimiter("TAB").unwrap(), Some('\t'));
        assert_eq!(parse_delimiter("|").unwrap(), Some('|'));
        assert_eq!(parse_delimiter("").unwrap(), None);
        assert!(parse_delimiter(";;").is_err());
        assert!(parse_delimiter("\"").is_err());
    }

    #[test]
    fn errors_name_the_key() {
        let err = |json: &str| match Settings::from_json(json) {
            Err(Error::Config(msg)) => msg,
            other => panic!("expected a config error, got {other:?}"),
        };
        assert!(err(r#"{}"#).starts_with("path:"));
        assert!(err(r#"{"path": 3}"#).starts_with("path:"));
        assert!(err(r#"{"path": "a", "encoding": "klingon"}"#).contains("\"klingon\""));
        assert!(err(r#"{"path": "a", "encoding": "klingon"}"#).starts_with("encoding:"));
        assert!(err(r#"{"path": "a", "delimiter": "ab"}"#).starts_with("delimiter:"));
        assert!(err(r#"{"path": "a", "multi_value_separator": ""}"#)
            .starts_with("multi_value_separator:"));
        assert!(
            err(r#"{"path": "a", "multi_value_columns": [1]}"#).starts_with("multi_value_columns:")
        );
        assert!(err(r#"[]"#).contains("not a JSON object"));
    }

    #[test]
    fn normalising() {
        assert_eq!(normalise("User Name"), "username");
        assert_eq!(normalise("username_aliases"), "usernamealiases");
        assert_eq!(normalise("Username-Aliases"), "usernamealiases");
        assert_eq!(normalise(" PINs "), "pins");
    }
}
