//! A connector that reads LDAP only through `next-page`, the per-value lists: it never
//! calls `next-page-packed`, so its component does not import it, like every component built
//! before that call was added to the contract. A user per inetOrgPerson entry (id = DN,
//! `username` = uid, `full_name` = cn), `count` entries a page.

use roster_plugin::host::ldap as wit;
use roster_plugin::prelude::*;

struct Lists;

impl Connector for Lists {
    fn info() -> Info {
        roster_plugin::info!("Reads LDAP pages as per-value lists")
            .key(Key::integer("count", "LDAP page size").default("2"))
            .key(Key::list("url", "LDAP URLs"))
            .key(Key::string("bind_dn", "Bind DN"))
            .key(Key::secret("password", "Bind password"))
            .key(Key::list("base_dn", "Base DNs"))
            .capability("ldap", "searches the source's directory")
    }

    fn open(config: Config, _request: Request) -> Result<Run, Error> {
        let fail = |e: wit::LdapError| Error::unavailable(format!("{e:?}"));
        // The search needs its connection: dropping it unbinds.
        let conn = wit::connect().map_err(fail)?;
        let search = conn
            .search(&wit::SearchRequest {
                base: None,
                scope: wit::Scope::Subtree,
                filter: "(objectClass=inetOrgPerson)".into(),
                attributes: vec!["uid".into(), "cn".into()],
                page_size: config.int("count").unwrap_or(2) as u32,
                show_deleted: false,
            })
            .map_err(fail)?;
        let mut users = Vec::new();
        while let Some(page) = search.next_page().map_err(fail)? {
            for e in page {
                let first = |name: &str| {
                    (e.attributes.iter())
                        .find(|a| a.name.eq_ignore_ascii_case(name))
                        .and_then(|a| a.values.first())
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                        .unwrap_or_default()
                };
                let (uid, cn) = (first("uid"), first("cn"));
                users.push(Ok(User::new(&e.dn)
                    .attr("username", uid)
                    .attr("full_name", cn)));
            }
        }
        Ok(Run::new(users))
    }
}

roster_plugin::export!(Lists);
