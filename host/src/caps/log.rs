//! `log`: plugin messages into roster's log, tagged with the source name.

use crate::runtime::roster::plugin::log::{Host, Level};
use crate::runtime::HostState;

/// Longest message kept; a plugin cannot flood the log with one call.
const MAX_MESSAGE: usize = 8 << 10;

impl Host for HostState {
    fn log(&mut self, level: Level, mut message: String) {
        if message.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(" [truncated]");
        }
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
