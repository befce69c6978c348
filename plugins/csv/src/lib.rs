//! roster's CSV connector: one user per row of a CSV file.
//!
//! The file is read only through the host's `files` interface, streamed and decoded on the
//! fly; see [`reader`] for the parsing rules. The parsing is plain Rust, tested natively;
//! [`component`] holds the WebAssembly component glue and is built for wasm32 only.

pub mod config;
pub mod reader;

#[cfg(target_arch = "wasm32")]
mod component;

/// Whole-run errors; the component maps them onto `plugin-error` cases of the same names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The admin must fix the config (or the file's header).
    Config(String),
    /// The file cannot be understood as a whole.
    BadData(String),
    /// Reading failed; worth a retry.
    Unavailable(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Config(m) | Error::BadData(m) | Error::Unavailable(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}
