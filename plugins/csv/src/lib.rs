//! roster's CSV connector: one user per row of a CSV file.
//!
//! The file is read only through the host's `files` interface, streamed and decoded on the
//! fly; see [`reader`] for the parsing rules. The parsing is plain Rust, tested natively;
//! [`component`] makes it a connector with the roster-plugin SDK (wasm32 only).

pub mod config;
pub mod reader;

#[cfg(target_arch = "wasm32")]
mod component;

/// Whole-run errors: the SDK's typed error (`Config`, `BadData`, `Unavailable`).
pub use roster_plugin::Error;
