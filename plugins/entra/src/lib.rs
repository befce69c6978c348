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

/// Whole-run errors; the component maps them onto `plugin-error` cases of the same names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The admin must fix the config.
    Config(String),
    /// Graph or the token endpoint refused the credentials or permissions.
    Authentication(String),
    /// Graph is unreachable or busy; worth a retry later.
    Unavailable(String),
    /// Graph sent something that cannot be understood (a malformed page).
    BadData(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Config(m)
            | Error::Authentication(m)
            | Error::Unavailable(m)
            | Error::BadData(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}
