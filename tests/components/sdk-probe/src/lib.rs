//! A connector written with the SDK that uses each capability helper. Config key `mode`:
//!
//! - `files`: one user per line of `path` (a file key), read through `files::open` as a
//!   `std::io::Read`, so a file over the host's 1 MiB read cap takes several reads; the user
//!   `u{n}` has the line up to its first `:` as `username` and the line's length as `length`.
//! - `http`: GETs `{api_url}/people` with the bearer credential `api` (secret key
//!   `api_token`) and yields a user per element `{"id", "name"}` of the JSON array.
//! - `ldap`: a paged search (`count` entries a page) of `(objectClass=inetOrgPerson)` under
//!   every configured base; a user per entry (id = DN, `username` = uid, `full_name` = cn).
//! - `ldap-paths`: reads every entry (all attributes, `count` a page) twice, as per-value
//!   lists (`next-page`) and as packed pages (`next-page-packed`, decoded by
//!   `ldap::unpack_page`); a user per entry whose readings agree (`username` = uid or `eN`,
//!   `notes` = its number of values), a failed entry where they differ.
//! - `delta`: a full run yields users `a` and `b` and returns the cursor `v1`; a delta run
//!   from `v1` yields the removal of `b` and returns `v2`; any other cursor is answered with
//!   a full run.

use roster_plugin::prelude::*;
use std::io::BufRead;

struct Probe;

impl Connector for Probe {
    fn info() -> Info {
        roster_plugin::info!("Exercises the SDK's helpers")
            .key(Key::string("mode", "files, http, ldap, ldap-paths or delta").required())
            .key(Key::integer("count", "LDAP page size").default("2"))
            .key(Key::file("path", "A file to read"))
            .key(Key::url("api_url", "The HTTP API"))
            .key(Key::secret("api_token", "Bearer token"))
            .key(Key::list("url", "LDAP URLs"))
            .key(Key::string("bind_dn", "Bind DN"))
            .key(Key::secret("password", "Bind password"))
            .key(Key::list("base_dn", "Base DNs"))
            .credential(Credential::bearer("api", "api_token"))
            .capability("files", "reads `path`")
            .capability("http", "reads people from `api_url`")
            .capability("ldap", "searches the source's directory")
            .capability("log", "logging")
    }

    fn open(config: Config, request: Request) -> Result<Run, Error> {
        match config.require_str("mode")? {
            "files" => {
                let file = files::open(config.require_str("path")?)?;
                let lines = std::io::BufReader::new(file).lines().enumerate();
                let users = lines.map(|(n, line)| {
                    let line = line.map_err(|e| Error::unavailable(e.to_string()))?;
                    let name = line.split(':').next().unwrap_or_default();
                    Ok(User::new(format!("u{n}"))
                        .attr("username", name)
                        .attr("length", line.len().to_string()))
                });
                Ok(Run::new(users.collect::<Vec<Result<User, Error>>>()))
            }
            "http" => {
                let url = format!("{}/people", config.require_str("api_url")?);
                let people = http::get(&url).credential("api").json()?;
                let people = people.as_array().cloned().unwrap_or_default();
                Ok(Run::new(people.into_iter().map(|p| {
                    let id = p["id"].as_str().unwrap_or_default().to_string();
                    User::new(&id)
                        .attr("username", id)
                        .attr("full_name", p["name"].as_str().unwrap_or_default())
                })))
            }
            "ldap" => {
                let page = config.int("count").unwrap_or(2) as u32;
                let search = ldap::Search::new("(objectClass=inetOrgPerson)")
                    .attributes(&["uid", "cn"])
                    .page_size(page);
                let entries = ldap::connect()?.search(&search)?;
                Ok(Run::new(entries.map(|e| {
                    let e = e?;
                    let uid = ldap::value(&e, "uid").unwrap_or_default();
                    let cn = ldap::value(&e, "cn").unwrap_or_default();
                    Ok(User::new(&e.dn).attr("username", uid).attr("full_name", cn))
                })))
            }
            "ldap-paths" => {
                // Reads the directory twice, per-value lists and packed pages, and fails an
                // entry whose two readings differ.
                use roster_plugin::host::ldap as wit;
                let page = config.int("count").unwrap_or(2) as u32;
                let request = wit::SearchRequest {
                    base: None,
                    scope: wit::Scope::Subtree,
                    filter: "(objectClass=*)".into(),
                    attributes: vec!["*".into()],
                    page_size: page,
                    show_deleted: false,
                };
                let fail = |e: wit::LdapError| Error::unavailable(format!("{e:?}"));
                let conn = wit::connect().map_err(fail)?;
                // One paged search at a time per connection (servers allow no more).
                let search = conn.search(&request).map_err(fail)?;
                let mut old = Vec::new();
                while let Some(page) = search.next_page().map_err(fail)? {
                    old.push(page);
                }
                drop(search);
                let search = conn.search(&request).map_err(fail)?;
                let mut packed = Vec::new();
                while let Some(buf) = search.next_page_packed().map_err(fail)? {
                    packed.push(ldap::unpack_page(&buf).map_err(Error::unavailable)?);
                }
                if old.len() != packed.len() {
                    return Err(Error::unavailable("the paths read different page counts"));
                }
                let mut items = Vec::new();
                for (a, b) in old.iter().zip(&packed) {
                    for (n, e) in a.iter().enumerate() {
                        let same = a.len() == b.len() && same_entry(e, &b[n]);
                        let values: usize = e.attributes.iter().map(|a| a.values.len()).sum();
                        items.push(if same {
                            let uid = ldap::value(e, "uid");
                            Ok(User::new(&e.dn)
                                .attr("username", uid.unwrap_or(format!("e{}", items.len())))
                                .attr("notes", values.to_string()))
                        } else {
                            Err(Error::unavailable(format!("{}: the paths differ", e.dn)))
                        });
                    }
                }
                Ok(Run::new(items))
            }
            "delta" if request.delta_cursor() == Some("v1") => {
                Ok(Run::new([Item::removed_user("b")])
                    .mode(Mode::Delta)
                    .cursor("v2"))
            }
            "delta" => {
                let users = ["a", "b"].map(|id| User::new(id).attr("username", id));
                Ok(Run::new(users).cursor("v1"))
            }
            other => Err(Error::config(format!("mode: unknown mode {other:?}"))),
        }
    }
}

/// The two readings of an entry agree: DN, attribute names and every value's bytes.
fn same_entry(a: &ldap::Entry, b: &ldap::Entry) -> bool {
    let attrs = |e: &ldap::Entry| -> Vec<(String, Vec<Vec<u8>>)> {
        (e.attributes.iter())
            .map(|a| (a.name.clone(), a.values.clone()))
            .collect()
    };
    a.dn == b.dn && attrs(a) == attrs(b)
}

roster_plugin::export!(Probe);
