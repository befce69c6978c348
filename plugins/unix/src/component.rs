//! The WebAssembly component: [`crate::run`] as a `roster-plugin` connector.

use crate::run::{self, Accounts, Groups};
use crate::settings::{Settings, DEFAULT_EXCLUDE_USERS, DEFAULT_INACTIVE_SHELLS, DEFAULT_MIN_UID};
use roster_plugin::{files, Config, Connector, Error, Info, Key, Request, Run};
use std::io::BufReader;

/// Bytes asked of the host per read.
const READ_CHUNK: usize = 256 * 1024;

struct Unix;

roster_plugin::export!(Unix);

fn toml_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

impl Connector for Unix {
    fn info() -> Info {
        Info::new(
            "unix",
            env!("CARGO_PKG_VERSION"),
            "Reads Unix accounts from passwd and group files: local ones, or `getent passwd` / \
             `getent group` output saved from a NIS or SSSD host (never shadow)",
        )
        .key(
            Key::file(
                "passwd",
                "The passwd file (/etc/passwd, or `getent passwd` output): one account a line.",
            )
            .required(),
        )
        .key(Key::file(
            "group",
            "The group file (/etc/group, or `getent group` output): primary groups by gid, \
             supplementary groups by their member lists. Without it, users have no groups.",
        ))
        .key(
            Key::integer(
                "min_uid",
                "Accounts with a lower uid (system accounts) are skipped.",
            )
            .default(&DEFAULT_MIN_UID.to_string()),
        )
        .key(Key::integer(
            "max_uid",
            "Accounts with a higher uid are skipped. Default: no upper bound.",
        ))
        .key(
            Key::list("exclude_users", "Logins that are never imported.")
                .default(&toml_list(DEFAULT_EXCLUDE_USERS)),
        )
        .key(
            Key::list(
                "inactive_shells",
                "Accounts with one of these login shells are imported inactive.",
            )
            .default(&toml_list(DEFAULT_INACTIVE_SHELLS)),
        )
        .key(
            Key::string(
                "anchor",
                "What identifies an account across runs: \"uid\" or \"username\" (the login).",
            )
            .default("\"uid\""),
        )
        .capability("files", "reads the passwd and group files")
        // home, shell, gid, … are sent for [map] templates, not as possible typos.
        .suggest("warn_unused_attributes", "false")
    }

    fn open(config: Config, _request: Request) -> Result<Run, Error> {
        let settings = Settings::from_config(&config)?;
        let groups = match &settings.group {
            Some(path) => Groups::read(
                BufReader::with_capacity(READ_CHUNK, files::open(path)?),
                path,
            )?,
            None => Groups::default(),
        };
        let passwd = BufReader::with_capacity(READ_CHUNK, files::open(&settings.passwd)?);
        Ok(Run::from_listing(Accounts::new(settings, passwd, groups)).columns(run::columns()))
    }
}

guest_alloc::install!();
