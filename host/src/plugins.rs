//! Where plugins come from: built-ins embedded in the binary, installed plugins in the
//! `plugins/` directory next to the database, or a .wasm path in the config.

use crate::config::config_err;
use crate::store::Store;
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/builtin.rs"));

/// The plugin directory for a database.
pub fn dir(database: &Path) -> PathBuf {
    database.parent().unwrap_or(Path::new(".")).join("plugins")
}

/// The compile cache for a database.
pub fn cache_dir(database: &Path) -> PathBuf {
    database
        .parent()
        .unwrap_or(Path::new("."))
        .join(".roster-cache")
}

pub fn builtin(name: &str) -> Option<&'static [u8]> {
    BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The component bytes for a source's `plugin` value.
pub fn resolve(
    plugin: &str,
    store: Option<&Store>,
    database: &Path,
    config_dir: &Path,
) -> Result<Cow<'static, [u8]>> {
    if let Some(b) = builtin(plugin) {
        return Ok(Cow::Borrowed(b));
    }
    if plugin.ends_with(".wasm") || plugin.contains('/') {
        let path = config_dir.join(plugin);
        return std::fs::read(&path)
            .map(Cow::Owned)
            .map_err(|e| config_err(format!("plugin file {}: {e}", path.display())));
    }
    if let Some(row) = store.map(|s| s.plugin(plugin)).transpose()?.flatten() {
        let path = dir(database).join(&row.file);
        let bytes =
            std::fs::read(&path).with_context(|| format!("installed plugin {}", path.display()))?;
        if sha256(&bytes) != row.sha256 {
            anyhow::bail!(
                "installed plugin {plugin} ({}) does not match the sha256 recorded at install; reinstall it",
                path.display()
            );
        }
        return Ok(Cow::Owned(bytes));
    }
    let builtins: Vec<_> = BUILTIN.iter().map(|(n, _)| *n).collect();
    Err(config_err(format!(
        "unknown plugin `{plugin}`: not built in ({}), not installed (roster plugin list), and not a .wasm path",
        builtins.join(", ")
    )))
}
