//! `log`: plugin messages into roster's log, tagged with the source name.

use crate::bindings::roster::plugin::log::{self, Host, Level};
use anyhow::Result;
use wasmtime::component::{HasSelf, Linker};

/// Longest message kept; a plugin cannot flood the log with one call.
const MAX_MESSAGE: usize = 8 << 10;

/// Which source a plugin's messages are tagged with.
#[derive(Debug, Default)]
pub struct LogCtx {
    pub source: String,
}

pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> &mut LogCtx,
) -> Result<()> {
    log::add_to_linker::<T, HasSelf<LogCtx>>(linker, view)?;
    Ok(())
}

/// Cuts a message to `max` bytes on a character boundary.
fn clip(message: &mut String, max: usize) {
    if message.len() > max {
        let mut cut = max;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str(" [truncated]");
    }
}

impl Host for LogCtx {
    fn log(&mut self, level: Level, mut message: String) {
        clip(&mut message, MAX_MESSAGE);
        let source = &self.source;
        match level {
            Level::Trace => tracing::trace!(target: "roster::plugin", "[{source}] {message}"),
            Level::Debug => tracing::debug!(target: "roster::plugin", "[{source}] {message}"),
            Level::Info => tracing::info!(target: "roster::plugin", "[{source}] {message}"),
            Level::Warn => tracing::warn!(target: "roster::plugin", "[{source}] {message}"),
            Level::Error => tracing::error!(target: "roster::plugin", "[{source}] {message}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::clip;

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let mut m = "é".repeat(10); // 20 bytes
        clip(&mut m, 5);
        assert_eq!(m, "éé [truncated]");
        let mut short = "ok".to_string();
        clip(&mut short, 5);
        assert_eq!(short, "ok");
    }
}
