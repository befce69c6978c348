//! Where plugins come from: built-ins embedded in the binary, installed plugins in the
//! `plugins/` directory next to the database, or a .wasm path in the config.

use crate::caps::grant::Capability;
use crate::caps::Capabilities;
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

/// Loads a component and asks it to describe itself, with nothing granted.
pub fn inspect(rt: &Runtime, bytes: &[u8]) -> Result<PluginInfo> {
    inspect_loaded(rt, &rt.load(bytes)?)
}

/// [`inspect`] of a component already loaded.
pub fn inspect_loaded(
    rt: &Runtime,
    component: &wasmtime::component::Component,
) -> Result<PluginInfo> {
    let limits = Limits {
        timeout: std::time::Duration::from_secs(10),
        memory: 256 << 20,
    };
    let mut plugin = rt.instantiate(component, limits, Capabilities::none("inspect"))?;
    Ok(plugin.info()?)
}

/// A plugin `install` wrote and recorded.
#[derive(Debug, Clone)]
pub struct Installed {
    pub name: String,
    pub version: String,
    pub sha256: String,
}

/// Capabilities this host provides. A plugin gets those it declares, as far as the source
/// config grants them; a name outside this list grants nothing.
pub const CAPABILITIES: [&str; 4] = [
    Capability::Files.name(),
    Capability::Ldap.name(),
    Capability::Http.name(),
    Capability::Log.name(),
];

/// What the admin reviews before a plugin is installed: who it says it is, the exact
/// bytes (sha256), what it may reach and which config keys it reads.
#[derive(Debug)]
pub struct Review {
    /// The name it will be installed under.
    pub name: String,
    pub info: PluginInfo,
    pub sha256: String,
    bytes: Vec<u8>,
}

/// Reads `file` and checks that it is a connector component of a contract version this
/// host speaks; nothing is written.
pub fn review(rt: &Runtime, file: &Path, name: Option<String>) -> Result<Review> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let info = inspect(rt, &bytes).map_err(|e| {
        anyhow!(
            "{} is not a roster connector component: {e:#}",
            file.display()
        )
    })?;
    let name = name.unwrap_or_else(|| info.name.clone());
    check_name(&name)?;
    Ok(Review {
        name,
        sha256: sha256(&bytes),
        info,
        bytes,
    })
}

/// Installs a reviewed component: copies it into the plugin directory next to `database`
/// and records it, with its sha256, under the review's name.
pub fn install(store: &Store, database: &Path, review: Review) -> Result<Installed> {
    let name = review.name;
    if builtin(&name).is_some() {
        bail!("{name} is a built-in plugin; install under another --name");
    }
    if store.plugin(&name)?.is_some() {
        bail!("a plugin named {name} is installed already; upgrade it (roster plugin upgrade) or remove it first");
    }
    let dir = dir(database);
    std::fs::create_dir_all(&dir)?;
    let fname = format!("{name}.wasm");
    std::fs::write(dir.join(&fname), &review.bytes)?;
    store.add_plugin(&PluginRow {
        name: name.clone(),
        file: fname,
        sha256: review.sha256.clone(),
        version: review.info.version.clone(),
        description: review.info.description.clone(),
        installed_at: String::new(),
    })?;
    Ok(Installed {
        name,
        version: review.info.version,
        sha256: review.sha256,
    })
}

/// How an upgrade changes what a plugin may reach.
#[derive(Debug)]
pub struct UpgradeReview {
    pub review: Review,
    pub old_version: String,
    pub old_sha256: String,
    /// Capabilities the new version asks for that the installed one did not, with reasons.
    pub added: Vec<(String, String)>,
    /// Capabilities it no longer asks for.
    pub removed: Vec<String>,
    /// Config keys added and removed.
    pub keys_added: Vec<String>,
    pub keys_removed: Vec<String>,
}

impl UpgradeReview {
    /// The new version may reach more than the installed one: the admin must agree again.
    pub fn grows(&self) -> bool {
        !self.added.is_empty()
    }
}

/// Compares `file` with the installed plugin `name`; nothing is written.
pub fn review_upgrade(
    rt: &Runtime,
    store: &Store,
    database: &Path,
    config_dir: &Path,
    name: &str,
    file: &Path,
) -> Result<UpgradeReview> {
    let Some(row) = store.plugin(name)? else {
        bail!("no installed plugin {name} (roster plugin list); install it first");
    };
    // The installed bytes are checked against their recorded sha256 as for a run.
    let old_bytes = resolve(name, Some(store), database, config_dir)?;
    let old =
        inspect(rt, &old_bytes).with_context(|| format!("inspecting the installed {name}"))?;
    let review = review(rt, file, Some(name.to_string()))?;
    let caps =
        |i: &PluginInfo| -> Vec<String> { i.capabilities.iter().map(|c| c.name.clone()).collect() };
    let keys =
        |i: &PluginInfo| -> Vec<String> { i.config_keys.iter().map(|k| k.name.clone()).collect() };
    let (old_caps, new_caps) = (caps(&old), caps(&review.info));
    let (old_keys, new_keys) = (keys(&old), keys(&review.info));
    Ok(UpgradeReview {
        added: (review.info.capabilities.iter())
            .filter(|c| !old_caps.contains(&c.name))
            .map(|c| (c.name.clone(), c.reason.clone()))
            .collect(),
        removed: old_caps
            .iter()
            .filter(|c| !new_caps.contains(c))
            .cloned()
            .collect(),
        keys_added: new_keys
            .iter()
            .filter(|k| !old_keys.contains(k))
            .cloned()
            .collect(),
        keys_removed: old_keys
            .iter()
            .filter(|k| !new_keys.contains(k))
            .cloned()
            .collect(),
        old_version: row.version,
        old_sha256: row.sha256,
        review,
    })
}

/// Replaces an installed plugin with the reviewed version. The record changes first: should
/// the rename not happen, the sha256 check refuses the old file rather than run it.
pub fn upgrade(store: &Store, database: &Path, up: UpgradeReview) -> Result<Installed> {
    let review = up.review;
    let Some(row) = store.plugin(&review.name)? else {
        bail!("no installed plugin {}", review.name);
    };
    let dir = dir(database);
    let tmp = dir.join(format!("{}.wasm.new", review.name));
    std::fs::write(&tmp, &review.bytes)?;
    store.update_plugin(&PluginRow {
        name: review.name.clone(),
        file: row.file.clone(),
        sha256: review.sha256.clone(),
        version: review.info.version.clone(),
        description: review.info.description.clone(),
        installed_at: String::new(),
    })?;
    std::fs::rename(&tmp, dir.join(&row.file))?;
    Ok(Installed {
        name: review.name,
        version: review.info.version,
        sha256: review.sha256,
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
