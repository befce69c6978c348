//! roster's Microsoft Entra ID connector: users and groups from Microsoft Graph v1.0.
//!
//! Everything goes through the host's `http` capability: the host holds the client secret,
//! fetches and refreshes the OAuth2 token, and retries throttled requests. The logic (config,
//! Graph paging, user conversion, the delta cursor) is plain Rust over a [`run::Transport`],
//! tested natively; [`component`] makes it a connector with the roster-plugin SDK (wasm32 only).

pub mod config;
pub mod date;
pub mod graph;
pub mod run;

#[cfg(target_arch = "wasm32")]
mod component;

/// Whole-run errors: the SDK's typed error.
pub use roster_plugin::Error;
