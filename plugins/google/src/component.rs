//! The WebAssembly component: [`crate::directory`] as a `roster-plugin` connector.

use crate::convert;
use crate::directory::{self, Api, Fetch, Reply};
use crate::settings::{all_scopes, Settings, DEFAULT_API, DEFAULT_CUSTOMER};
use roster_plugin::{
    http, Config, Connector, Credential, Error, Info, Key, Request, Run, TestReport,
};

/// The host-held credential every Directory API request names.
const CREDENTIAL: &str = "google";

struct Google;

roster_plugin::export!(Google);

/// Requests through the host, with its service-account token; at most one started ahead.
#[derive(Default)]
struct Host {
    ahead: Option<http::Pending>,
}

impl Fetch for Host {
    fn get(&mut self, url: &str) -> Result<Reply, Error> {
        let r = match self.ahead.take() {
            Some(p) if p.url() == url => p.finish()?,
            // Another URL: the one started ahead is dropped (cancelled).
            _ => http::get(url).credential(CREDENTIAL).send()?,
        };
        Ok(Reply {
            status: r.status,
            body: r.body,
        })
    }

    fn prefetch(&mut self, url: &str) {
        // A request that cannot start now is simply sent when it is needed.
        self.ahead = http::get(url).credential(CREDENTIAL).start().ok();
    }
}

fn api(config: &Config) -> Result<Api<Host>, Error> {
    Ok(Api {
        fetch: Host::default(),
        settings: Settings::from_config(config)?,
    })
}

impl Connector for Google {
    fn info() -> Info {
        let quoted = |s: &str| format!("\"{s}\"");
        Info::new(
            "google",
            env!("CARGO_PKG_VERSION"),
            "Reads users, organisational units and groups from Google Workspace through the \
             Admin SDK Directory API (a service account with domain-wide delegation)",
        )
        .key(
            Key::secret(
                "key_file",
                "The service account's JSON key file (its path, or the JSON itself). The host \
                 reads it and signs the token requests; the plugin never sees the key.",
            )
            .required(),
        )
        .key(
            Key::string(
                "subject",
                "The administrator the service account acts for (domain-wide delegation).",
            )
            .required(),
        )
        .key(
            Key::string("customer", "The Workspace customer id.")
                .default(&quoted(DEFAULT_CUSTOMER)),
        )
        .key(Key::string(
            "domain",
            "Only users and groups of this domain (instead of the whole customer).",
        ))
        .key(
            Key::list(
                "org_units",
                "Organisational unit paths (\"/Staff\"): only users at or below them.",
            )
            .default("[]"),
        )
        .key(
            Key::list(
                "groups",
                "Group emails or ids: only their members (nested groups included), and only \
                 these groups and the ones nested in them.",
            )
            .default("[]"),
        )
        .key(Key::string(
            "query",
            "A users.list query in the API's own syntax (\"orgName='Staff' isAdmin=false\").",
        ))
        .key(
            Key::boolean(
                "include_suspended",
                "Also sync suspended users, as inactive users.",
            )
            .default("false"),
        )
        .key(
            Key::url(
                "api_url",
                "The Directory API's base URL (a proxy, or a test server).",
            )
            .default(&quoted(DEFAULT_API)),
        )
        .capability(
            "http",
            "reads users, organisational units and groups from the Directory API at api_url",
        )
        .suggest("pair_by", "\"email\"")
        // Raw API fields are sent for [map] templates, not as possible typos.
        .suggest("warn_unused_attributes", "false")
        .credential(Credential::service_account(
            CREDENTIAL,
            "key_file",
            "{subject}",
            &all_scopes(),
        ))
    }

    fn open(config: Config, _request: Request) -> Result<Run, Error> {
        Ok(Run::from_listing(directory::Run::new(api(&config)?)).columns(convert::columns()))
    }

    fn test(config: Config) -> Result<TestReport, Error> {
        let (ous, sample, mut messages) = directory::test(api(&config)?)?;
        messages.insert(0, format!("{ous} organisational units"));
        Ok(TestReport {
            users: None,
            groups: None,
            sample,
            messages,
        })
    }
}

guest_alloc::install!();
