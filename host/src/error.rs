//! What a failed run failed of, as a kind a caller can act on: a scheduler retries what is
//! [`FailureKind::retryable`], an API maps kinds to status codes, the CLI to exit codes. The
//! typed errors themselves are [`ConfigError`] (the host found the config wrong) and
//! [`CallError`] (a plugin call failed, with the plugin's own error kind kept).

use crate::config::ConfigError;
use crate::runtime::{CallError, PluginErrorKind};

/// The kind of a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The host found the config wrong ([`ConfigError`], exit code 2).
    Config,
    /// The plugin found its config wrong.
    PluginConfig,
    /// The source refused the credentials.
    Authentication,
    /// The source is unreachable or busy.
    Unavailable,
    /// The source sent something the plugin could not understand as a whole.
    BadData,
    /// A call ran out of its time (`timeout`).
    Timeout,
    /// The plugin hit another limit: memory, batch size, host resources.
    Limit,
    /// The plugin trapped, broke the contract, or was spent by an earlier failure.
    Crashed,
    /// Anything else: the database, the file system, the host itself.
    Internal,
}

impl FailureKind {
    /// What `e` failed of, found by its typed cause.
    pub fn of(e: &anyhow::Error) -> Self {
        if e.downcast_ref::<ConfigError>().is_some() {
            return FailureKind::Config;
        }
        match e.downcast_ref::<CallError>() {
            Some(c) => Self::of_call(c),
            None => FailureKind::Internal,
        }
    }

    pub fn of_call(e: &CallError) -> Self {
        match e {
            CallError::Plugin(p) => match p.kind {
                PluginErrorKind::Config => FailureKind::PluginConfig,
                PluginErrorKind::Authentication => FailureKind::Authentication,
                PluginErrorKind::Unavailable => FailureKind::Unavailable,
                PluginErrorKind::BadData => FailureKind::BadData,
            },
            CallError::Deadline { .. } => FailureKind::Timeout,
            CallError::Memory { .. } | CallError::BatchCap(_) | CallError::Handles => {
                FailureKind::Limit
            }
            CallError::Contract(_) | CallError::Trap { .. } | CallError::Spent => {
                FailureKind::Crashed
            }
            CallError::Spool(_) => FailureKind::Internal,
        }
    }

    /// Worth running again unchanged, later: the source was unavailable or slow.
    pub fn retryable(self) -> bool {
        matches!(self, FailureKind::Unavailable | FailureKind::Timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::PluginFailure;

    fn plugin(kind: PluginErrorKind) -> anyhow::Error {
        CallError::Plugin(PluginFailure {
            kind,
            message: "m".into(),
        })
        .into()
    }

    #[test]
    fn kinds_survive_anyhow_and_context() {
        let e = anyhow::Error::from(ConfigError::at("sources.a.config.path", "required"))
            .context("preparing");
        assert_eq!(FailureKind::of(&e), FailureKind::Config);
        let e = plugin(PluginErrorKind::Unavailable).context("run");
        assert_eq!(FailureKind::of(&e), FailureKind::Unavailable);
        assert!(FailureKind::of(&e).retryable());
        for k in [PluginErrorKind::Config, PluginErrorKind::Authentication] {
            assert!(!FailureKind::of(&plugin(k)).retryable(), "{k:?}");
        }
        assert_eq!(
            FailureKind::of(&anyhow::anyhow!("disk full")),
            FailureKind::Internal
        );
    }

    #[test]
    fn a_config_error_names_its_key_as_before() {
        let e = ConfigError::at("sources.a.config.url", "required");
        assert_eq!(e.to_string(), "sources.a.config.url: required");
        assert_eq!(ConfigError::new("no sources").to_string(), "no sources");
    }

    #[test]
    fn a_plugin_error_keeps_its_kind_and_wording() {
        let e = CallError::from_plugin(crate::bindings::PluginError::Unavailable("down".into()));
        assert_eq!(e.to_string(), "source unavailable (worth a retry): down");
        assert!(e.retryable());
        assert_eq!(
            e.plugin_failure().map(|p| p.kind),
            Some(PluginErrorKind::Unavailable)
        );
    }
}
