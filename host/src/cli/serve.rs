//! `roster serve`: the service in the foreground (see the library's `serve` module).

use anyhow::Result;
use clap::Args;
use roster::config::Config;
use std::path::Path;

#[derive(Args)]
pub struct Serve {}

impl Serve {
    pub fn run(self, config: &Path) -> Result<i32> {
        let cfg = Config::load(config)?;
        crate::purge_promptly();
        roster::serve::serve(cfg, |addr, tls| {
            let scheme = if tls { "https" } else { "http" };
            tracing::info!("listening on {scheme}://{addr}");
        })?;
        Ok(0)
    }
}
