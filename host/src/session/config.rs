//! The config checks: a source's `[sources.NAME.config]` against the keys its plugin
//! declares, into the JSON the plugin is handed.

use crate::bindings::KeyType;
use crate::config::{resolve_string, ConfigError, SourceConfig};
use crate::runtime::PluginInfo;
use std::path::Path;

/// The JSON handed to the plugin: secret-typed keys withheld, references resolved. What
/// the keys grant is decided apart, by [`crate::caps::grant`].
pub(super) fn plugin_config(
    src: &SourceConfig,
    info: &PluginInfo,
    dir: &Path,
) -> Result<String, ConfigError> {
    let ctx = format!("sources.{}.config", src.name);
    let mut out = serde_json::Map::new();
    for (key, value) in &src.config {
        let Some(decl) = info.config_keys.iter().find(|k| &k.name == key) else {
            let known: Vec<_> = info.config_keys.iter().map(|k| k.name.as_str()).collect();
            return Err(ConfigError::at(
                &ctx,
                format!(
                    "unknown key `{key}` (plugin {} accepts: {})",
                    info.name,
                    known.join(", ")
                ),
            ));
        };
        let json = match (decl.type_, value) {
            (KeyType::Secret, v) => {
                // Resolved to prove it is usable; never handed to the plugin.
                resolve_string(v, dir, &format!("{ctx}.{key}"))?;
                continue;
            }
            (KeyType::File, v) => {
                let path = resolve_string(v, dir, &format!("{ctx}.{key}"))?.0;
                serde_json::Value::String(path)
            }
            (KeyType::Files, toml::Value::Array(a)) => {
                let mut paths = Vec::new();
                for (i, v) in a.iter().enumerate() {
                    let path = resolve_string(v, dir, &format!("{ctx}.{key}[{i}]"))?.0;
                    paths.push(serde_json::Value::String(path));
                }
                paths.into()
            }
            (KeyType::Files | KeyType::Urls, v) if !v.is_array() => {
                return Err(ConfigError::at(
                    format!("{ctx}.{key}"),
                    format!(
                        "expected a list of {}, got {v}",
                        if decl.type_ == KeyType::Files {
                            "paths"
                        } else {
                            "URLs"
                        }
                    ),
                ));
            }
            (KeyType::Boolean, toml::Value::Boolean(b)) => (*b).into(),
            (KeyType::Integer, toml::Value::Integer(i)) => (*i).into(),
            (KeyType::Boolean | KeyType::Integer, v) => {
                return Err(ConfigError::at(
                    format!("{ctx}.{key}"),
                    format!(
                        "expected a {}, got {v}",
                        if decl.type_ == KeyType::Boolean {
                            "boolean"
                        } else {
                            "integer"
                        }
                    ),
                ));
            }
            (_, v) => toml_to_json(v, dir, &format!("{ctx}.{key}"))?,
        };
        out.insert(key.clone(), json);
    }
    // `[sources.NAME] script_max_operations` is the budget of a script source's run too.
    if let Some(n) = src.script_max_operations {
        if info.config_keys.iter().any(|k| k.name == "max_operations")
            && !out.contains_key("max_operations")
        {
            out.insert("max_operations".into(), n.into());
        }
    }
    for k in info.config_keys.iter().filter(|k| k.required) {
        if !src.config.contains_key(&k.name) {
            return Err(ConfigError::at(
                &ctx,
                format!("missing required key `{}` ({})", k.name, k.description),
            ));
        }
    }
    Ok(serde_json::Value::Object(out).to_string())
}

fn toml_to_json(v: &toml::Value, dir: &Path, ctx: &str) -> Result<serde_json::Value, ConfigError> {
    Ok(match v {
        toml::Value::String(s) => s.clone().into(),
        toml::Value::Integer(i) => (*i).into(),
        toml::Value::Float(f) => (*f).into(),
        toml::Value::Boolean(b) => (*b).into(),
        toml::Value::Datetime(d) => d.to_string().into(),
        toml::Value::Array(a) => a
            .iter()
            .map(|v| toml_to_json(v, dir, ctx))
            .collect::<Result<Vec<_>, _>>()?
            .into(),
        toml::Value::Table(t) => {
            if t.len() == 1 && (t.contains_key("env") || t.contains_key("file")) {
                return Ok(resolve_string(v, dir, ctx)?.0.into());
            }
            let mut m = serde_json::Map::new();
            for (k, v) in t {
                m.insert(k.clone(), toml_to_json(v, dir, &format!("{ctx}.{k}"))?);
            }
            m.into()
        }
    })
}
