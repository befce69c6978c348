//! One plugin session, whoever runs it (`sync`, `plugin test`, `sources test`, `script
//! run`): [`prepare`] loads the source's plugin, checks its config against the keys the
//! plugin declares and grants it what the config allows; [`drive`] runs it once into an
//! [`EntrySink`]. Rows become objects in one place, [`Incoming`].

mod config;
mod drive;
mod entry;

pub use drive::{drive, EntrySink, RunEnd};
pub use entry::{misfit_reason, Incoming};

use crate::caps::grant::grant;
use crate::caps::Capabilities;
use crate::config::{Config, ConfigError, SourceConfig};
use crate::mapping::Mapper;
use crate::reconcile::Options;
use crate::runtime::{Limits, Plugin, PluginInfo, Runtime};
use crate::store::Store;
use anyhow::{anyhow, Result};

/// A loaded, configured plugin ready for a run or a test.
pub struct Prepared {
    pub plugin: Plugin,
    pub info: PluginInfo,
    pub config_json: String,
}

/// Loads a source's plugin, checks its config against the keys the plugin declares, and
/// grants it what it declares as far as the config allows ([`grant`]).
pub fn prepare(
    cfg: &Config,
    src: &SourceConfig,
    store: Option<&Store>,
    rt: &Runtime,
) -> Result<Prepared> {
    if src.push {
        return Err(crate::config::ConfigError::at(
            format!("sources.{}", src.name),
            "users are pushed into this source over SCIM (push = \"scim\"): there is nothing \
             to pull or connect to; its writes are runs (roster runs list)",
        )
        .into());
    }
    let bytes = crate::plugins::resolve(&src.plugin, store, &cfg.local_base(), &cfg.dir)?;
    let component = rt
        .load(&bytes)
        .map_err(|e| anyhow!("plugin {}: {e:#}", src.plugin))?;
    let limits = Limits {
        timeout: src.timeout,
        memory: src.memory_limit,
    };
    // Nothing is granted until the plugin has said what it declares.
    let mut plugin = rt.instantiate(&component, limits, Capabilities::none(&src.name))?;
    let info = plugin.info()?;
    let config_json = config::plugin_config(src, &info, &cfg.dir)?;
    plugin.set_capabilities(grant(&info, src, &cfg.dir)?);
    Ok(Prepared {
        plugin,
        info,
        config_json,
    })
}

/// The source's options (with the plugin's suggested defaults) and its `[map]`, checked.
/// `pin_key` keys the PIN fingerprints (the store's, or a throwaway one where nothing is
/// stored).
pub fn mapping(
    src: &SourceConfig,
    plugin_defaults: &[(String, String)],
    pin_key: Vec<u8>,
) -> Result<(Options, Mapper), ConfigError> {
    let opts = src.options(plugin_defaults)?;
    let mapper = Mapper::new(&src.map, opts.lowercase_usernames, pin_key)
        .map_err(|e| ConfigError::at(format!("sources.{}.map", src.name), format!("{e:#}")))?;
    Ok((opts, mapper))
}
