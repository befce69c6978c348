//! Typed errors: the host decides from the case what to do (retry or not) and shows the text.

use crate::bindings::roster::plugin::types::PluginError;

/// Why a run (or a test) failed as a whole. An entry that is merely unusable is not an
/// error: yield an [`Item::Failed`](crate::Item::Failed) and go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The source config is wrong; the admin must fix it. Not retried.
    Config(String),
    /// Credentials were refused. Not retried.
    Authentication(String),
    /// The source is unreachable or busy; worth a retry later.
    Unavailable(String),
    /// The source sent something that cannot be understood as a whole. The run changes
    /// nothing.
    BadData(String),
}

impl Error {
    pub fn config(m: impl Into<String>) -> Self {
        Error::Config(m.into())
    }
    pub fn authentication(m: impl Into<String>) -> Self {
        Error::Authentication(m.into())
    }
    pub fn unavailable(m: impl Into<String>) -> Self {
        Error::Unavailable(m.into())
    }
    pub fn bad_data(m: impl Into<String>) -> Self {
        Error::BadData(m.into())
    }

    /// The message, whatever the case.
    pub fn message(&self) -> &str {
        match self {
            Error::Config(m)
            | Error::Authentication(m)
            | Error::Unavailable(m)
            | Error::BadData(m) => m,
        }
    }

    /// The same case with `context: ` before the message.
    pub fn context(self, context: impl std::fmt::Display) -> Self {
        let f = |m: String| format!("{context}: {m}");
        match self {
            Error::Config(m) => Error::Config(f(m)),
            Error::Authentication(m) => Error::Authentication(f(m)),
            Error::Unavailable(m) => Error::Unavailable(f(m)),
            Error::BadData(m) => Error::BadData(f(m)),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for Error {}

impl From<Error> for PluginError {
    fn from(e: Error) -> Self {
        match e {
            Error::Config(m) => PluginError::Config(m),
            Error::Authentication(m) => PluginError::Authentication(m),
            Error::Unavailable(m) => PluginError::Unavailable(m),
            Error::BadData(m) => PluginError::BadData(m),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::BadData(format!("invalid JSON: {e}"))
    }
}
