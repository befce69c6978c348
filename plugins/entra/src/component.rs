//! The WebAssembly component: [`crate::run`] as a `roster-plugin` connector.

use std::collections::VecDeque;

use crate::config::{Settings, DEFAULT_ALIAS_FIELDS, DEFAULT_AUTHORITY, DEFAULT_GRAPH};
use crate::date::Date;
use crate::run::{self, Mode, Out, Response, Run as GraphRun, Transport};
use crate::Error;
use roster_plugin::{http, Config, Connector, Credential, End, Group, Info, Item, Key, Listing};
use roster_plugin::{Request, Run, TestReport, User};

/// The host-held credential every Graph request names.
const CREDENTIAL: &str = "graph";

struct Entra;

roster_plugin::export!(Entra);

impl Connector for Entra {
    fn info() -> Info {
        let quoted = |s: &str| format!("\"{s}\"");
        Info::new(
            "entra",
            env!("CARGO_PKG_VERSION"),
            "Reads users and groups from Microsoft Entra ID through Microsoft Graph \
             (app-only OAuth2 client credentials; delta runs after the first)",
        )
        .key(Key::string("tenant_id", "The directory (tenant) id.").required())
        .key(Key::string("client_id", "The application (client) id.").required())
        .key(
            Key::secret(
                "client_secret",
                "The application's client secret. Held by the host, never by the plugin.",
            )
            .required(),
        )
        .key(Key::string(
            "secret_expires",
            "The client secret's expiry date (YYYY-MM-DD): from 7 days before, every run warns.",
        ))
        .key(
            Key::list(
                "groups",
                "Group object ids: only their members (nested groups included) are synced. \
                 Empty: every user of the tenant.",
            )
            .default("[]"),
        )
        .key(
            Key::boolean(
                "include_disabled",
                "Also sync disabled accounts (as inactive users).",
            )
            .default("false"),
        )
        .key(
            Key::string(
                "alias_fields",
                "`;`-separated alias templates of Graph fields, e.g. \
                 \"%givenName%.%surname%;%surname%-%givenName%\".",
            )
            .default(&quoted(DEFAULT_ALIAS_FIELDS)),
        )
        .key(
            Key::boolean(
                "aliases_strip_invalid",
                "Also add each alias without \" [ ] : ; | = + * ? < > / \\ , . and spaces.",
            )
            .default("false"),
        )
        .key(
            Key::boolean(
                "use_display_name",
                "When givenName and surname are missing, the full name is the displayName.",
            )
            .default("true"),
        )
        .key(
            Key::boolean(
                "import_groups",
                "Sync groups with their members (the scope groups and the groups nested \
                 in them, or every group of the tenant).",
            )
            .default("true"),
        )
        .key(
            Key::boolean(
                "use_delta",
                "Runs after the first ask Graph only for changes (users/delta). Sources \
                 scoped by groups always run in full.",
            )
            .default("true"),
        )
        .key(
            Key::url(
                "authority_url",
                "The token authority (national clouds: https://login.microsoftonline.us, \
                 https://login.chinacloudapi.cn).",
            )
            .default(&quoted(DEFAULT_AUTHORITY)),
        )
        .key(
            Key::url(
                "graph_url",
                "The Microsoft Graph endpoint (national clouds: https://graph.microsoft.us, \
                 https://microsoftgraph.chinacloudapi.cn).",
            )
            .default(&quoted(DEFAULT_GRAPH)),
        )
        .capability(
            "http",
            "reads users and groups from Microsoft Graph at graph_url, with a token from \
             authority_url",
        )
        .capability("log", "reports paging progress")
        .suggest("pair_by", "\"email\"")
        // Raw Graph fields are sent for [map] templates, not as possible typos.
        .suggest("warn_unused_attributes", "false")
        .credential(Credential::oauth2(
            CREDENTIAL,
            "{authority_url}/{tenant_id}/oauth2/v2.0/token",
            "{client_id}",
            "client_secret",
            "{graph_url}/.default",
        ))
    }

    fn test(config: Config) -> Result<TestReport, Error> {
        let settings = Settings::from_config(&config)?;
        let info = run::test(settings, Date::today(), &mut Host::default())?;
        let columns = info.columns;
        Ok(TestReport {
            users: info.users,
            groups: info.groups,
            sample: info.sample.and_then(|o| match item(o, &columns) {
                Item::User(u) => Some(u),
                _ => None,
            }),
            messages: info.messages,
        })
    }

    fn open(config: Config, request: Request) -> Result<Run, Error> {
        let settings = Settings::from_config(&config)?;
        let mode = match request.mode {
            roster_plugin::Mode::Full => Mode::Full,
            roster_plugin::Mode::Delta => Mode::Delta,
        };
        let mut host = Host::default();
        let run = GraphRun::start(
            settings,
            mode,
            request.cursor.as_deref(),
            Date::today(),
            &mut host,
        )?;
        Ok(Run::from_listing(Pages {
            columns: run.columns.clone(),
            run,
            host,
            page: VecDeque::new(),
        }))
    }
}

/// Graph pages, handed on item by item.
struct Pages {
    run: GraphRun,
    /// Holds the page asked for ahead between batches.
    host: Host,
    columns: Vec<String>,
    page: VecDeque<Out>,
}

impl Listing for Pages {
    fn next(&mut self) -> Result<Option<Item>, Error> {
        while self.page.is_empty() {
            match self.run.next(&mut self.host)? {
                Some(page) => self.page = page.into(),
                None => return Ok(None),
            }
        }
        Ok(self.page.pop_front().map(|o| item(o, &self.columns)))
    }

    fn finish(&mut self, end: &mut End) -> Result<(), Error> {
        self.host.ahead = None;
        let e = self.run.finish();
        end.mode = match e.mode {
            Mode::Full => roster_plugin::Mode::Full,
            Mode::Delta => roster_plugin::Mode::Delta,
        };
        end.cursor = e.cursor;
        end.notices = e.notices;
        Ok(())
    }
}

fn item(o: Out, columns: &[String]) -> Item {
    match o {
        Out::User {
            id,
            locator,
            values,
        } => Item::User(User {
            id,
            locator: Some(locator),
            attributes: columns.iter().cloned().zip(values).collect(),
            member_of: Vec::new(),
        }),
        Out::Group { id, name, members } => Item::Group(
            Group::new(id.clone(), name.clone())
                .locator(format!("group {name}"))
                .attr("displayName", name)
                .attr("id", id)
                .members(members),
        ),
        Out::RemovedUser(id) => Item::removed_user(id),
        Out::RemovedGroup(id) => Item::removed_group(id),
        Out::Failed { locator, reason } => Item::failed(locator, reason),
    }
}

/// Requests through the host's `http` capability with the `graph` credential.
#[derive(Default)]
struct Host {
    /// A request sent ahead (`prefetch`).
    ahead: Option<http::Pending>,
}

fn request(url: &str, headers: &[(&str, &str)]) -> http::Request {
    (headers.iter())
        .fold(http::get(url), |r, (k, v)| r.header(k, *v))
        .header("Accept", "application/json")
        .credential(CREDENTIAL)
}

impl Transport for Host {
    fn get(&mut self, url: &str, headers: &[(&str, &str)]) -> Result<Response, Error> {
        // A request sent ahead for another URL is dropped, which cancels it.
        let answer = match self.ahead.take() {
            Some(pending) if pending.url() == url => pending.finish(),
            _ => request(url, headers).send(),
        };
        answer.map(|r| Response {
            status: r.status,
            body: r.body,
        })
    }

    fn prefetch(&mut self, url: &str, headers: &[(&str, &str)]) {
        // Best effort: a request the host will not start now is sent again by `get`, which
        // reports why.
        self.ahead = request(url, headers).start().ok();
    }
}

guest_alloc::install!();
