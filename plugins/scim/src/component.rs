//! The WebAssembly component: [`crate::pull`] as a `roster-plugin` connector.

use crate::pull::{plan, Fetch, Pull, Reply, Settings};
use roster_plugin::{http, Config, Connector, Credential, Error, Info, Key, Request, Run};

struct Scim;

roster_plugin::export!(Scim);

/// Requests through the host with the credential `auth` names (none for "none").
struct Host(Option<&'static str>);

impl Fetch for Host {
    fn get(&mut self, url: &str) -> Result<Reply, Error> {
        let mut rq = http::get(url).header("Accept", "application/scim+json");
        if let Some(c) = self.0 {
            rq = rq.credential(c);
        }
        let r = rq.send()?;
        Ok(Reply {
            status: r.status,
            body: r.body,
        })
    }
}

fn host(config: &Config) -> Result<Host, Error> {
    Ok(Host(match config.str("auth").unwrap_or("bearer") {
        "bearer" => Some("bearer"),
        "basic" => Some("basic"),
        "none" => None,
        other => {
            return Err(Error::config(format!(
                "auth: expected \"bearer\", \"basic\" or \"none\", got {other:?}"
            )))
        }
    }))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Connector for Scim {
    fn info() -> Info {
        Info::new(
            "scim",
            env!("CARGO_PKG_VERSION"),
            "Pulls users and groups from a SCIM 2.0 service provider (/Users, /Groups), with \
             delta runs by meta.lastModified",
        )
        .key(Key::url("url", "The provider's SCIM base, such as https://central.example.com/scim/v2.").required())
        .key(Key::string("auth", "\"bearer\" (token), \"basic\" (username, password) or \"none\".").default("\"bearer\""))
        .key(Key::secret("token", "The bearer token. Held by the host, never by the plugin."))
        .key(Key::string("username", "The user name of basic authentication."))
        .key(Key::secret("password", "The password of basic authentication. Held by the host."))
        .key(Key::string("filter", "A SCIM filter for /Users, such as `active eq true`."))
        .key(Key::integer("page_size", "Resources asked for per page (count), 1 to 1000.").default("100"))
        .key(Key::duration(
            "full_sync_every",
            "After a full run, runs ask only for users changed since (meta.lastModified) until \
             this has passed; \"0\": every run is full. Deletions show at full runs.",
        ).default("\"24h\""))
        .capability("http", "reads /Users and /Groups below url")
        .suggest("pair_by", "\"anchor\"")
        .suggest("warn_unused_attributes", "false")
        .credential(Credential::bearer("bearer", "token"))
        .credential(Credential::basic("basic", "{username}", "password"))
    }

    fn open(config: Config, request: Request) -> Result<Run, Error> {
        let settings = Settings::from_config(&config)?;
        let fetch = host(&config)?;
        let (mode, cursor, notice) = plan(&settings, request.delta_cursor(), now());
        let mut run = Run::from_listing(Pull::new(fetch, settings, mode, cursor));
        if let Some(n) = notice {
            run = run.notice(n);
        }
        Ok(run)
    }
}

guest_alloc::install!();
