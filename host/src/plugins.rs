//! Where plugins come from: built-ins embedded in the binary, installed plugins in the
//! `plugins/` directory next to the database, or a .wasm path in the config.

use crate::caps::files::Grants;
use crate::config::config_err;
use crate::runtime::{Limits, PluginInfo, Runtime};
use crate::store::{PluginRow, Store};
use anyhow::{anyhow, bail, Context, Result};
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

/// The runtime for a database, compiling into its cache.
pub fn runtime(database: &Path) -> Result<Runtime> {
    Runtime::new(cache_dir(database))
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

/// Loads a component and asks it to describe itself. File grants resolve against `dir`.
pub fn inspect(rt: &Runtime, bytes: &[u8], dir: &Path) -> Result<PluginInfo> {
    let component = rt.load(bytes)?;
    let limits = Limits {
        timeout: std::time::Duration::from_secs(10),
        memory: 256 << 20,
    };
    let mut plugin = rt.instantiate(&component, "inspect", limits, Grants::new(dir))?;
    Ok(plugin.info()?)
}

/// A plugin `install` wrote and recorded.
#[derive(Debug, Clone)]
pub struct Installed {
    pub name: String,
    pub version: String,
    pub sha256: String,
}

/// Checks that `file` is a connector component, then copies it into the plugin directory
/// next to `database` and records it under `name` (default: the name it gives itself).
pub fn install(
    rt: &Runtime,
    store: &Store,
    database: &Path,
    config_dir: &Path,
    file: &Path,
    name: Option<String>,
) -> Result<Installed> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let info = inspect(rt, &bytes, config_dir).map_err(|e| {
        anyhow!(
            "{} is not a roster connector component: {e:#}",
            file.display()
        )
    })?;
    let name = name.unwrap_or_else(|| info.name.clone());
    check_name(&name)?;
    if builtin(&name).is_some() {
        bail!("{name} is a built-in plugin; install under another --name");
    }
    if store.plugin(&name)?.is_some() {
        bail!("a plugin named {name} is installed already; remove it first");
    }
    let dir = dir(database);
    std::fs::create_dir_all(&dir)?;
    let sha = sha256(&bytes);
    let fname = format!("{name}.wasm");
    std::fs::write(dir.join(&fname), &bytes)?;
    store.add_plugin(&PluginRow {
        name: name.clone(),
        file: fname,
        sha256: sha.clone(),
        version: info.version.clone(),
        description: info.description.clone(),
        installed_at: String::new(),
    })?;
    Ok(Installed {
        name,
        version: info.version,
        sha256: sha,
    })
}

/// Plugin names become file names: keep them to a safe alphabet.
fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("plugin name {name:?} must be letters, digits, - or _");
    }
    Ok(())
}

/// Forgets an installed plugin and deletes its file; false if none has that name.
pub fn remove(store: &Store, database: &Path, name: &str) -> Result<bool> {
    let Some(row) = store.plugin(name)? else {
        return Ok(false);
    };
    store.remove_plugin(name)?;
    // The record is what makes it installed; a file already gone is no error.
    std::fs::remove_file(dir(database).join(&row.file)).ok();
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names_are_safe_file_names() {
        for ok in ["csv2", "my-ldap", "a_b"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "../x", "a b", "x.wasm", "é"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
