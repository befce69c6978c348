//! A connector written with the SDK that declares only `log`, yet calls the other host
//! capabilities. Its config keys would grant them (`path` is a file key, `api_url` a url key,
//! `url` names an LDAP server), so only the declaration stands between it and them.
//! Config key `mode`:
//!
//! - `files`: reads `path`;
//! - `http`: GETs `api_url` with the credential `api`;
//! - `ldap`: connects to the source's LDAP server.
//!
//! A run yields one user `denied-MODE` whose `error` is what the host answered, or fails with
//! `bad-data("granted: ...")` when the call went through.

use roster_plugin::prelude::*;

struct Undeclared;

impl Connector for Undeclared {
    fn info() -> Info {
        Info::new(
            "undeclared",
            env!("CARGO_PKG_VERSION"),
            "Calls undeclared capabilities",
        )
        .key(Key::string("mode", "files, http or ldap").required())
        .key(Key::file("path", "A file the config grants"))
        .key(Key::url("api_url", "An origin the config grants"))
        .key(Key::secret("api_token", "Bearer token"))
        .key(Key::list("url", "LDAP URLs"))
        .key(Key::string("bind_dn", "Bind DN"))
        .key(Key::secret("password", "Bind password"))
        .key(Key::list("base_dn", "Base DNs"))
        .credential(Credential::bearer("api", "api_token"))
        .capability("log", "logging")
    }

    fn open(config: Config, _request: Request) -> Result<Run, Error> {
        let mode = config.require_str("mode")?;
        let outcome = match mode {
            "files" => files::read(config.require_str("path")?).map(|_| ()),
            "http" => http::get(config.require_str("api_url")?)
                .credential("api")
                .send()
                .map(|_| ()),
            "ldap" => ldap::connect().map(|_| ()),
            other => return Err(Error::config(format!("mode: unknown mode {other:?}"))),
        };
        match outcome {
            Ok(()) => Err(Error::bad_data("granted: the host let the call through")),
            Err(e) => Ok(Run::new([User::new(mode)
                .attr("username", format!("denied-{mode}"))
                .attr("error", e.message())])),
        }
    }
}

roster_plugin::export!(Undeclared);
