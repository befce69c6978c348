//! The WebAssembly component: [`crate::run`] as a `roster-plugin` connector over the host's
//! `ldap` capability. Each step of the run is one batch; this file converts types.

use crate::config::{self, Profile, Settings};
use crate::run::{self, Directory, Out, Pages, Query, Run as LdapRun};
use crate::sync::{Change, SyncEnd, SyncPages};
use crate::{Error, RawEntry};
use roster_plugin::ldap::{self, Scope, Search};
use roster_plugin::{log, Batch, Batches, Config, Connector, End, Group, Info, Item, Key};
use roster_plugin::{KeyType, Mode, Request, Row, Run, TestReport, User};

struct Ldap;

roster_plugin::export!(Ldap);

impl Connector for Ldap {
    fn info() -> Info {
        let by_profile = |k: &str| {
            format!(
                "ad: {}; openldap: {}; generic: {}",
                config::default_text(Profile::Ad, k),
                config::default_text(Profile::OpenLdap, k),
                config::default_text(Profile::Generic, k)
            )
        };
        let key = Key::new;
        let mut info = Info::new(
            "ldap",
            env!("CARGO_PKG_VERSION"),
            "Reads users and groups from Active Directory, OpenLDAP or another LDAP \
             directory, with nested groups and delta runs",
        )
        .key(
            key(
                "url",
                KeyType::List,
                "LDAP server URL (ldap://host:389, ldaps://host:636), or a list tried in order.",
            )
            .required(),
        )
        .key(
            key(
                "starttls",
                KeyType::Boolean,
                "Upgrade ldap:// connections with StartTLS.",
            )
            .default("false"),
        )
        .key(key(
            "ca_file",
            KeyType::File,
            "PEM file of the CA that signed the server's certificate.",
        ))
        .key(
            key(
                "tls_verify",
                KeyType::Boolean,
                "Check the server's certificate (false is for tests only).",
            )
            .default("true"),
        )
        .key(key(
            "bind_dn",
            KeyType::String,
            "DN (or AD user@domain) to bind as; anonymous when absent.",
        ))
        .key(key(
            "password",
            KeyType::Secret,
            "The bind password; the host binds with it, the connector never sees it.",
        ))
        .key(
            key(
                "base_dn",
                KeyType::List,
                "Where users and groups are searched: one DN or a list.",
            )
            .required(),
        )
        .key(
            key(
                "timeout",
                KeyType::Duration,
                "Time limit of each LDAP operation.",
            )
            .default("\"30s\""),
        )
        .key(
            key(
                "profile",
                KeyType::String,
                "\"ad\", \"openldap\" or \"generic\": the defaults of the keys below.",
            )
            .default("\"generic\""),
        );
        // Defaults by profile are shown, and applied by `Settings`.
        for (name, kind, description) in [
            ("user_filter", KeyType::String, "LDAP filter for users."),
            (
                "group_filter",
                KeyType::String,
                "LDAP filter for groups; \"\" reads no groups.",
            ),
            (
                "attributes",
                KeyType::List,
                "User attributes fetched and passed on (usable in [map] templates); \"*\" for all.",
            ),
            (
                "anchor",
                KeyType::String,
                "The stable id: objectGUID, entryUUID, or \"dn\".",
            ),
        ] {
            info = info.key(key(name, kind, description).shown_default(&by_profile(name)));
        }
        for (field, k) in config::FIELDS {
            info = info.key(
                key(
                    k,
                    KeyType::List,
                    &format!("Attributes (or %attr% templates) tried in order for {field}."),
                )
                .shown_default(&by_profile(k)),
            );
        }
        info.key(key(
            "groups",
            KeyType::List,
            "Only members of these group DNs, directly or through nested groups.",
        ))
        .key(
            key(
                "include_disabled",
                KeyType::Boolean,
                "Import AD accounts disabled by userAccountControl, as inactive users.",
            )
            .default("false"),
        )
        .key(
            key(
                "full_sync_every",
                KeyType::Duration,
                "Runs in between are deltas (changes only); \"0\" makes every run full.",
            )
            .default("\"24h\""),
        )
        .key(
            key(
                "page_size",
                KeyType::Integer,
                "Entries per page of the paged search.",
            )
            .default("1000"),
        )
        .capability(
            "ldap",
            "searches the configured LDAP server for users and groups",
        )
        .capability("log", "reports what a run read and why it ran full")
        .suggest("pair_by", "\"anchor\"")
        // Raw attributes are sent for [map] templates, not as possible typos.
        .suggest("warn_unused_attributes", "false")
    }

    fn test(config: Config) -> Result<TestReport, Error> {
        let settings = Settings::from_config(&config)?;
        let dir = HostDirectory(ldap::connect()?);
        let bases = dir.0.base_dns();
        let report = crate::report::test(&dir, &settings, &bases)?;
        Ok(TestReport {
            users: Some(report.users),
            groups: report.groups,
            sample: report.sample.map(|(columns, row, dn)| User {
                id: row.id,
                locator: Some(dn),
                attributes: columns.into_iter().zip(row.values).collect(),
                member_of: Vec::new(),
            }),
            messages: report.messages,
        })
    }

    fn open(config: Config, request: Request) -> Result<Run, Error> {
        let settings = Settings::from_config(&config)?;
        let dir = HostDirectory(ldap::connect()?);
        let run = LdapRun::open(
            dir,
            settings,
            request.mode == Mode::Delta,
            request.cursor,
            unix_now(),
        )?;
        Ok(Run::from_batches(Steps(run)))
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The host's connection as a [`Directory`].
struct HostDirectory(ldap::Connection);

struct HostSearch(ldap::Entries);

impl Pages for HostSearch {
    fn next_page(&mut self) -> Result<Option<Vec<RawEntry>>, Error> {
        Ok(self
            .0
            .next_page()?
            .map(|page| page.into_iter().map(raw).collect()))
    }
}

impl Directory for HostDirectory {
    type Search = HostSearch;

    fn search(&self, q: &Query) -> Result<HostSearch, Error> {
        let mut search = Search::new(&q.filter)
            .scope(match q.scope {
                run::Scope::Base => Scope::Base,
                run::Scope::Subtree => Scope::Subtree,
            })
            .attributes(&q.attributes)
            .page_size(q.page_size)
            .show_deleted(q.show_deleted);
        if let Some(base) = &q.base {
            search = search.base(base);
        }
        self.0.search(&search).map(HostSearch)
    }

    fn root_dse(&self, attributes: &[String]) -> Result<RawEntry, Error> {
        self.0.root_dse(attributes).map(raw)
    }

    fn sync(&self, q: &Query, cookie: Option<&[u8]>) -> Result<Box<dyn SyncPages>, Error> {
        let search = Search::new(&q.filter).attributes(&q.attributes);
        Ok(Box::new(HostSync(self.0.sync(&search, cookie)?)))
    }
}

struct HostSync(ldap::Sync);

impl SyncPages for HostSync {
    fn next_page(&mut self) -> Result<Option<Vec<Change>>, Error> {
        Ok(self.0.next_page()?.map(|page| {
            page.into_iter()
                .map(|c| match c {
                    ldap::SyncChange::Changed(e) => Change::Changed(raw(e)),
                    ldap::SyncChange::Deleted(id) => Change::Deleted(id),
                })
                .collect()
        }))
    }

    fn end(&self) -> Option<SyncEnd> {
        self.0.end().map(|e| SyncEnd {
            cookie: e.cookie.clone(),
            deletions_complete: e.deletions_complete,
        })
    }
}

fn raw(e: ldap::Entry) -> RawEntry {
    RawEntry {
        dn: e.dn,
        attributes: e
            .attributes
            .into_iter()
            .map(|a| (a.name, a.values))
            .collect(),
    }
}

/// The run's steps, one batch each: no call comes near the host's deadline.
struct Steps(LdapRun<HostDirectory>);

impl Batches for Steps {
    fn next_batch(&mut self) -> Result<Option<Batch>, Error> {
        match self.0.step() {
            Ok(step) => Ok(step.map(|s| Batch {
                columns: s.columns,
                items: s.entries.into_iter().map(item).collect(),
            })),
            Err(e) => {
                self.0.stop();
                Err(e)
            }
        }
    }

    fn finish(&mut self, end: &mut End) -> Result<(), Error> {
        let e = self.0.end();
        log::info(&e.summary);
        end.mode = if e.delta { Mode::Delta } else { Mode::Full };
        end.cursor = e.cursor;
        end.notices = e.notices;
        Ok(())
    }
}

fn item(out: Out) -> Item {
    match out {
        Out::Row {
            id,
            dn,
            values,
            member_of,
        } => Item::Row(Row {
            id,
            locator: Some(dn),
            values,
            member_of,
        }),
        Out::Failed { locator, reason } => Item::failed(locator, reason),
        Out::Removed { group: true, id } => Item::removed_group(id),
        Out::Removed { group: false, id } => Item::removed_user(id),
        // No name of its own: the host names it by `cn`.
        Out::Group {
            id,
            dn,
            name,
            members,
        } => Item::Group(Group {
            locator: Some(dn.clone()),
            attributes: vec![("cn".to_string(), vec![name]), ("dn".to_string(), vec![dn])],
            members,
            ..Group::new(id, "")
        }),
    }
}

guest_alloc::install!();
