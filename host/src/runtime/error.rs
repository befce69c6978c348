//! What a plugin call failed of, typed so a caller can act on it: a scheduler retries an
//! unavailable source and not a config error, an API maps kinds to status codes. Messages
//! name the limit or the cause so the admin knows what to change.

use crate::bindings::PluginError;
use std::time::Duration;

/// The case of the plugin's own `plugin-error`, kept end to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginErrorKind {
    /// The source config is wrong; the admin must fix it.
    Config,
    /// Credentials were refused.
    Authentication,
    /// The source is unreachable or busy: worth a retry later.
    Unavailable,
    /// The source sent something the plugin cannot understand as a whole.
    BadData,
}

/// An error the plugin reported, by kind, with its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", self.wording())]
pub struct PluginFailure {
    pub kind: PluginErrorKind,
    pub message: String,
}

impl PluginFailure {
    /// Only an unavailable source is worth trying again unchanged.
    pub fn retryable(&self) -> bool {
        self.kind == PluginErrorKind::Unavailable
    }

    fn wording(&self) -> &'static str {
        match self.kind {
            PluginErrorKind::Config => "configuration error",
            PluginErrorKind::Authentication => "authentication failed",
            PluginErrorKind::Unavailable => "source unavailable (worth a retry)",
            PluginErrorKind::BadData => "bad data from source",
        }
    }
}

impl From<PluginError> for PluginFailure {
    fn from(e: PluginError) -> Self {
        let (kind, message) = match e {
            PluginError::Config(m) => (PluginErrorKind::Config, m),
            PluginError::Authentication(m) => (PluginErrorKind::Authentication, m),
            PluginError::Unavailable(m) => (PluginErrorKind::Unavailable, m),
            PluginError::BadData(m) => (PluginErrorKind::BadData, m),
        };
        PluginFailure { kind, message }
    }
}

/// Why a trap happened, in one line: the guest's panic message first when it printed one,
/// then the trap. The wasm backtrace stays in the debug log, out of messages.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{summary}")]
pub struct TrapCause {
    pub summary: String,
    /// wasmtime's trap code, when the failure was one (not a host function's error).
    pub trap: Option<wasmtime::Trap>,
    /// What the guest said as it panicked.
    pub panic: Option<String>,
}

/// What a call failed of.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Plugin(PluginFailure),
    /// The plugin broke the contract in a way no limit names (a wrong number of results).
    #[error("{0}")]
    Contract(String),
    #[error("plugin call `{call}` exceeded its timeout of {timeout:?} (deadline); raise `timeout` if the source is just slow")]
    Deadline { call: String, timeout: Duration },
    #[error("plugin exceeded its memory limit of {limit} bytes (memory_limit); raise `memory_limit` if the source needs more")]
    Memory { limit: u64 },
    #[error(transparent)]
    BatchCap(#[from] crate::batch::OverCap),
    #[error("plugin holds more than {max} host resources (open files, pollables, streams) at once, the per-plugin limit", max = super::MAX_HOST_HANDLES)]
    Handles,
    /// The cause is the source: the whole message is `{:#}` of an `anyhow::Error` or
    /// [`CallError::message`].
    #[error("plugin trapped in `{call}`")]
    Trap {
        call: String,
        #[source]
        cause: TrapCause,
    },
    #[error("plugin can take no more calls: an earlier call failed")]
    Spent,
    /// The host could not hand over batches the plugin pushed.
    #[error("{0}")]
    Spool(String),
}

impl CallError {
    /// A plugin-reported error, by kind.
    pub fn from_plugin(e: PluginError) -> Self {
        CallError::Plugin(e.into())
    }

    /// The plugin's own error, if it reported one.
    pub fn plugin_failure(&self) -> Option<&PluginFailure> {
        match self {
            CallError::Plugin(p) => Some(p),
            _ => None,
        }
    }

    /// Worth trying again unchanged: the source was unavailable, or a call ran out of time
    /// (a slow source or network). Limits, traps and config errors need a change first.
    pub fn retryable(&self) -> bool {
        match self {
            CallError::Plugin(p) => p.retryable(),
            CallError::Deadline { .. } => true,
            _ => false,
        }
    }

    /// The whole message, causes included, in one line.
    pub fn message(&self) -> String {
        let mut out = self.to_string();
        let mut next = std::error::Error::source(self);
        while let Some(e) = next {
            out.push_str(": ");
            out.push_str(&e.to_string());
            next = e.source();
        }
        out
    }
}
