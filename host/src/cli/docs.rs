//! `roster completions` and `roster man`: generated from the clap definitions, so they
//! never drift from the parser.

use super::output::write_stdout;
use anyhow::Result;
use clap::Args;
use clap_complete::Shell;

#[derive(Args)]
pub struct Completions {
    /// The shell: bash, zsh, fish, powershell or elvish.
    shell: Shell,
}

impl Completions {
    pub fn run(self, mut cmd: clap::Command) -> Result<i32> {
        let mut out = Vec::new();
        clap_complete::generate(self.shell, &mut cmd, "roster", &mut out);
        write_stdout(&out)?;
        Ok(0)
    }
}

#[derive(Args)]
pub struct Man {}

impl Man {
    pub fn run(self, cmd: clap::Command) -> Result<i32> {
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut out)?;
        write_stdout(&out)?;
        Ok(0)
    }
}
