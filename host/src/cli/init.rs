//! `roster init`: write a commented starter config.

use anyhow::{Context, Result};
use clap::Args;
use roster::config::{config_err, STARTER};
use std::path::Path;

#[derive(Args)]
pub struct Init {}

impl Init {
    pub fn run(self, config: &Path) -> Result<i32> {
        if config.exists() {
            return Err(config_err(format!(
                "{} already exists; not overwriting it",
                config.display()
            )));
        }
        std::fs::write(config, STARTER).with_context(|| format!("writing {}", config.display()))?;
        println!("wrote {}", config.display());
        Ok(0)
    }
}
