//! Filters run against a real SQLite database built by the real migrations.

use super::*;
use crate::serve::scim::error::ScimType;
use crate::serve::scim::filter;
use crate::store::db::Sql;

struct U {
    name: &'static str,
    full: Option<&'static str>,
    email: Option<&'static str>,
    pn: Option<&'static str>,
    active: bool,
    source: &'static str,
    anchor: Option<&'static str>,
    aliases: &'static [&'static str],
    cards: &'static [&'static str],
    groups: &'static [&'static str],
    updated: &'static str,
}

const USERS: &[U] = &[
    U {
        name: "asmith",
        full: Some("Alice Smith"),
        email: Some("alice@example.com"),
        pn: Some("1001"),
        active: true,
        source: "hr",
        anchor: Some("e-1"),
        aliases: &["alice", "a.smith"],
        cards: &["04A1B2"],
        groups: &["Staff", "Staff|IT"],
        updated: "2026-03-01T10:00:00Z",
    },
    U {
        name: "bjones",
        full: Some("Bob Jones"),
        email: Some("bob@Example.org"),
        pn: Some("1002"),
        active: false,
        source: "hr",
        anchor: Some("e-2"),
        aliases: &[],
        cards: &[],
        groups: &["Staff"],
        updated: "2026-02-01T00:00:00Z",
    },
    U {
        name: "c_100%",
        full: Some("Carol O'Brien"),
        email: None,
        pn: None,
        active: true,
        source: "hr",
        anchor: None,
        aliases: &[],
        cards: &["ff00"],
        groups: &[],
        updated: "2026-02-15T00:00:00Z",
    },
    U {
        name: "Dave",
        full: Some("Dave Žák"),
        email: Some("dave@example.com"),
        pn: Some("x7"),
        active: true,
        source: "okta",
        anchor: Some("00u1"),
        aliases: &["dz"],
        cards: &[],
        groups: &["Guests"],
        updated: "2026-02-15T00:00:00Z",
    },
    U {
        name: "o'hara\" or 1=1 --",
        full: None,
        email: None,
        pn: None,
        active: true,
        source: "okta",
        anchor: None,
        aliases: &[],
        cards: &[],
        groups: &[],
        updated: "2026-01-01T00:00:00Z",
    },
];

fn db() -> Store {
    let s = Store::memory().unwrap();
    fill(&s);
    s
}

/// The users above, in sources `hr` and `okta` and groups Staff, Staff|IT and Guests.
pub(crate) fn fill(s: &Store) {
    let c = &s.conn;
    c.execute_batch(
        "INSERT INTO sources(id, name) VALUES (1, 'hr'), (2, 'okta');
         INSERT INTO groups(id, path, name, parent_id, source_id, anchor) VALUES
            (10, 'Staff', 'Staff', NULL, 1, 'g-staff'),
            (11, 'Staff|IT', 'IT', 10, 1, 'g-it'),
            (12, 'Guests', 'Guests', NULL, 2, NULL);",
    )
    .unwrap();
    for (i, u) in USERS.iter().enumerate() {
        let id = i as i64 + 1;
        let source = if u.source == "hr" { 1 } else { 2 };
        c.execute(
            "INSERT INTO users(id, username, full_name, email, personal_number, active, source_id,
                               record, hash, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, '{}', ?1, '2026-01-01T00:00:00Z', ?8)",
            rusqlite::params![id, u.name, u.full, u.email, u.pn, u.active, source, u.updated],
        )
        .unwrap();
        c.execute(
            "INSERT INTO names(name, user_id, alias) VALUES (?1, ?2, 0)",
            rusqlite::params![u.name, id],
        )
        .unwrap();
        for a in u.aliases {
            c.execute(
                "INSERT INTO names(name, user_id, alias) VALUES (?1, ?2, 1)",
                rusqlite::params![a, id],
            )
            .unwrap();
        }
        for card in u.cards {
            c.execute(
                "INSERT INTO cards(card, user_id) VALUES (?1, ?2)",
                rusqlite::params![card, id],
            )
            .unwrap();
        }
        for g in u.groups {
            c.execute(
                "INSERT INTO memberships(group_id, user_id, source_id) SELECT id, ?2, ?3 FROM groups WHERE path = ?1",
                rusqlite::params![g, id, source],
            )
            .unwrap();
        }
        if let Some(a) = u.anchor {
            c.execute(
                "INSERT INTO links(source_id, anchor, user_id) VALUES (?1, ?2, ?3)",
                rusqlite::params![source, a, id],
            )
            .unwrap();
        }
    }
}

fn query(f: &str) -> ScimQuery {
    ScimQuery {
        filter: Some(filter::parse(f).unwrap()),
        start_index: 1,
        count: 100,
        ..Default::default()
    }
}

fn users(s: &Store, f: &str) -> Vec<String> {
    let (total, rows) = s
        .scim_users(&query(f))
        .unwrap_or_else(|e| panic!("{f}: {e}"));
    assert_eq!(total as usize, rows.len(), "{f}");
    rows.into_iter().map(|r| r.username).collect()
}

fn refused(s: &Store, f: &str) -> ScimError {
    let e = s.scim_users(&query(f)).expect_err(f);
    e.downcast::<ScimError>().expect("a SCIM error")
}

#[test]
fn core_attributes() {
    let s = db();
    assert_eq!(users(&s, r#"userName eq "ASMITH""#), ["asmith"]);
    assert_eq!(users(&s, r#"USERNAME Eq "dave""#), ["Dave"]);
    assert_eq!(
        users(
            &s,
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "a""#
        ),
        ["asmith"]
    );
    assert_eq!(users(&s, r#"userName ew "ES""#), ["bjones"]);
    assert_eq!(users(&s, r#"displayName co "o'brien""#), ["c_100%"]);
    assert_eq!(users(&s, r#"name.formatted eq "bob jones""#), ["bjones"]);
    assert_eq!(users(&s, r#"displayName pr"#).len(), 4);
    assert_eq!(users(&s, r#"active eq false"#), ["bjones"]);
    assert_eq!(users(&s, r#"not (active eq true)"#), ["bjones"]);
    assert_eq!(users(&s, r#"active ne true"#), ["bjones"]);
    assert_eq!(users(&s, r#"externalId eq "e-1""#), ["asmith"]);
    assert_eq!(users(&s, r#"externalId eq "E-1""#), Vec::<String>::new());
    assert_eq!(users(&s, r#"id eq "2""#), ["bjones"]);
    assert_eq!(users(&s, r#"id eq "two""#), Vec::<String>::new());
    assert_eq!(users(&s, r#"id gt "3""#), ["Dave", "o'hara\" or 1=1 --"]);
    // Attributes roster does not keep are never present.
    assert_eq!(users(&s, "title pr"), Vec::<String>::new());
    assert_eq!(users(&s, "not (title pr)").len(), USERS.len());
    assert_eq!(
        users(&s, r#"name.givenName eq "Alice""#),
        Vec::<String>::new()
    );
}

#[test]
fn ne_and_not_include_users_without_the_attribute() {
    let s = db();
    let all_but_alice = users(&s, r#"displayName ne "alice smith""#);
    assert_eq!(all_but_alice.len(), USERS.len() - 1);
    assert!(all_but_alice.contains(&"o'hara\" or 1=1 --".to_string()));
    assert_eq!(
        users(&s, r#"not (emails pr)"#),
        ["c_100%", "o'hara\" or 1=1 --"]
    );
    assert_eq!(users(&s, r#"displayName eq null"#), ["o'hara\" or 1=1 --"]);
    assert_eq!(users(&s, r#"displayName ne null"#).len(), 4);
}

#[test]
fn multi_valued_and_value_paths() {
    let s = db();
    assert_eq!(
        users(&s, r#"emails[type eq "work"].value co "EXAMPLE.COM""#),
        ["asmith", "Dave"]
    );
    assert_eq!(
        users(&s, r#"emails[type eq "work" and value ew "example.org"]"#),
        ["bjones"]
    );
    assert_eq!(users(&s, r#"emails[type eq "home"]"#), Vec::<String>::new());
    assert_eq!(users(&s, r#"emails eq "Alice@Example.com""#), ["asmith"]);
    assert_eq!(users(&s, r#"emails.primary eq true"#).len(), 3);
    assert_eq!(users(&s, r#"groups[display eq "staff|it"]"#), ["asmith"]);
    assert_eq!(
        users(&s, r#"groups.display sw "Staff""#),
        ["asmith", "bjones"]
    );
    assert_eq!(users(&s, r#"groups.value eq "12""#), ["Dave"]);
    assert_eq!(
        users(
            &s,
            r#"urn:roster:params:scim:schemas:extension:roster:2.0:User:aliases eq "ALICE""#
        ),
        ["asmith"]
    );
    assert_eq!(users(&s, r#"aliases[value sw "d"]"#), ["Dave"]);
    assert_eq!(users(&s, r#"cards co "a1""#), ["asmith"]);
    assert_eq!(users(&s, r#"cards pr and not (aliases pr)"#), ["c_100%"]);
}

#[test]
fn extensions_and_dates() {
    let s = db();
    assert_eq!(
        users(
            &s,
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "1001""#
        ),
        ["asmith"]
    );
    // The personal number is case-exact.
    assert_eq!(users(&s, r#"employeeNumber eq "X7""#), Vec::<String>::new());
    assert_eq!(users(&s, r#"employeeNumber eq "x7""#), ["Dave"]);
    assert_eq!(users(&s, r#"source eq "okta""#).len(), 2);
    assert_eq!(
        users(&s, r#"meta.lastModified gt "2026-02-15T00:00:00Z""#),
        ["asmith"]
    );
    assert_eq!(
        users(&s, r#"meta.lastModified ge "2026-02-15T01:00:00+01:00""#),
        ["asmith", "c_100%", "Dave"]
    );
    // Milliseconds count: a second later than a stored instant is after it.
    assert_eq!(
        users(&s, r#"meta.lastModified lt "2026-02-15T00:00:00.001Z""#).len(),
        4
    );
    assert_eq!(
        users(&s, r#"meta.lastModified eq "2026-01-01T00:00:00Z""#),
        ["o'hara\" or 1=1 --"]
    );
    assert_eq!(
        users(&s, r#"meta.created le "2026-01-01T00:00:00Z""#).len(),
        USERS.len()
    );
    assert_eq!(
        users(&s, r#"meta.resourceType eq "User""#).len(),
        USERS.len()
    );
}

#[test]
fn like_wildcards_and_injection_stay_literal() {
    let s = db();
    assert_eq!(users(&s, r#"userName co "_""#), ["c_100%"]);
    assert_eq!(users(&s, r#"userName co "%""#), ["c_100%"]);
    assert_eq!(users(&s, r#"userName sw "c_1""#), ["c_100%"]);
    assert_eq!(users(&s, r#"userName co "\\""#), Vec::<String>::new());
    assert_eq!(users(&s, r#"externalId co "-""#), ["asmith", "bjones"]);
    assert_eq!(users(&s, r#"externalId sw "e-""#), ["asmith", "bjones"]);
    assert_eq!(users(&s, r#"externalId ew "-2""#), ["bjones"]);
    assert_eq!(users(&s, r#"externalId co """#).len(), 3);
    for attack in [
        r#"userName eq "x' OR '1'='1""#,
        r#"userName eq "x\" or 1=1 --""#,
        r#"userName eq "'; DROP TABLE users; --""#,
        r#"userName co "%' OR 1=1 --""#,
        r#"displayName eq "a\u0000b""#,
    ] {
        assert_eq!(users(&s, attack), Vec::<String>::new(), "{attack}");
    }
    // The user whose name is an attack is found by exactly that name.
    assert_eq!(
        users(&s, r#"userName eq "O'HARA\" or 1=1 --""#),
        ["o'hara\" or 1=1 --"]
    );
    let n: i64 = s
        .conn
        .query_row("SELECT count(*) FROM users", (), |r| r.get(0))
        .unwrap();
    assert_eq!(n as usize, USERS.len());
}

#[test]
fn unanswerable_filters_are_invalid_filter() {
    let s = db();
    for f in [
        "pins pr",
        r#"password eq "x""#,
        r#"unknownThing eq "x""#,
        r#"urn:nope:User:userName eq "x""#,
        r#"name eq "x""#,
        r#"userName.sub eq "x""#,
        r#"active eq "maybe""#,
        r#"active gt true"#,
        r#"meta.lastModified gt "yesterday""#,
        r#"meta.lastModified co "2026""#,
        r#"userName eq true"#,
        r#"userName gt null"#,
        r#"displayName[value eq "x"]"#,
        r#"emails[nope eq "x"]"#,
        r#"emails[urn:x:y:value eq "x"]"#,
        r#"meta.version eq "x""#,
    ] {
        let e = refused(&s, f);
        assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{f}: {e}");
    }
}

fn plan(s: &Store, f: &str) -> Vec<String> {
    let w = translate(ScimResource::User, &filter::parse(f).unwrap()).unwrap();
    s.conn
        .prepare(&format!(
            "EXPLAIN QUERY PLAN SELECT u.id FROM users u WHERE {}",
            w.sql
        ))
        .unwrap()
        .query_map(&w.params, |r| r.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn lookups_use_indexes() {
    let s = db();
    let p = plan(&s, r#"userName eq "asmith""#);
    assert!(
        p.iter().any(|p| p.contains("users_username_nocase")),
        "{p:?}"
    );
    assert!(!p.iter().any(|p| p.starts_with("SCAN u")), "{p:?}");
    let p = plan(&s, r#"externalId eq "e-1""#);
    assert!(
        p.iter().any(|p| p.contains("SEARCH fl USING PRIMARY KEY")),
        "{p:?}"
    );
    assert!(!p.iter().any(|p| p.starts_with("SCAN u")), "{p:?}");
    let p = plan(&s, r#"emails[type eq "work"].value eq "alice@example.com""#);
    assert!(p.iter().any(|p| p.contains("users_email")), "{p:?}");
}

#[test]
fn paging_and_sorting() {
    let s = db();
    let mut q = query("userName pr");
    q.sort_by = Some(filter::parse_path("userName").unwrap().attr);
    q.descending = true;
    q.start_index = 2;
    q.count = 2;
    let (total, rows) = s.scim_users(&q).unwrap();
    assert_eq!(total, 5);
    let names: Vec<_> = rows.iter().map(|r| r.username.as_str()).collect();
    // NOCASE order, descending: o'hara, Dave, c_100%, bjones, asmith.
    assert_eq!(names, ["Dave", "c_100%"]);
    q.sort_by = Some(filter::parse_path("emails.value").unwrap().attr);
    q.descending = false;
    q.start_index = 1;
    q.count = 10;
    let names: Vec<_> = s
        .scim_users(&q)
        .unwrap()
        .1
        .into_iter()
        .map(|r| r.username)
        .collect();
    assert_eq!(names[2..], ["asmith", "bjones", "Dave"]);
    q.sort_by = Some(filter::parse_path("meta.lastModified").unwrap().attr);
    let first = s.scim_users(&q).unwrap().1.remove(0);
    assert_eq!(first.username, "o'hara\" or 1=1 --");
    q.count = 0;
    assert_eq!(s.scim_users(&q).unwrap(), (5, vec![]));
    q.sort_by = Some(filter::parse_path("pins").unwrap().attr);
    q.count = 1;
    let e = s
        .scim_users(&q)
        .unwrap_err()
        .downcast::<ScimError>()
        .unwrap();
    assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
}

#[test]
fn user_rows_carry_everything() {
    let s = db();
    let u = s.scim_user("1").unwrap().unwrap();
    assert_eq!(u.username, "asmith");
    assert_eq!(u.aliases, ["a.smith", "alice"]);
    assert_eq!(u.cards, ["04A1B2"]);
    assert_eq!(
        u.groups,
        [(10, "Staff".to_string()), (11, "Staff|IT".to_string())]
    );
    assert_eq!(u.external_id.as_deref(), Some("e-1"));
    assert_eq!(u.source.as_deref(), Some("hr"));
    assert!(!u.has_pin);
    assert_eq!(s.scim_user("99").unwrap(), None);
    assert_eq!(s.scim_user("1 OR 1=1").unwrap(), None);
}

#[test]
fn groups_filter_and_members_only_when_asked() {
    let s = db();
    let groups = |f: &str, members: bool| {
        let (_, rows) = s.scim_groups(&query(f), members).unwrap();
        rows
    };
    let g = groups(r#"displayName eq "staff|it""#, true);
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].name, "IT");
    assert_eq!(g[0].parent.as_deref(), Some("Staff"));
    assert_eq!(g[0].members, Some(vec![(1, "asmith".to_string())]));
    let staff = groups(r#"members[value eq "2"]"#, false);
    assert_eq!(staff.len(), 1);
    assert_eq!(staff[0].path, "Staff");
    assert_eq!(staff[0].members, None);
    assert_eq!(groups(r#"externalId eq "g-staff""#, false)[0].id, 10);
    assert_eq!(
        groups(r#"members.display eq "DAVE""#, false)[0].path,
        "Guests"
    );
    assert_eq!(groups("not (externalId pr)", false)[0].path, "Guests");
    // Without members, the membership table is not read at all.
    s.conn.execute_batch("DROP TABLE memberships").unwrap();
    let q = ScimQuery {
        start_index: 1,
        count: 10,
        ..Default::default()
    };
    let (total, rows) = s.scim_groups(&q, false).unwrap();
    assert_eq!(total, 3);
    assert_eq!(rows.len(), 3);
    assert!(s.scim_group("10", false).unwrap().is_some());
    assert!(s.scim_groups(&q, true).is_err());
}

/// A reference evaluator over the rows, written from the SCIM semantics rather than from
/// the SQL: random filters must select the same users both ways.
mod differential {
    use super::*;
    use std::collections::HashMap;

    #[derive(Clone, Debug)]
    enum V {
        /// (text, caseExact)
        S(String, bool),
        B(bool),
        T(String),
    }

    type Elem = HashMap<&'static str, V>;

    fn s(v: &str, exact: bool) -> V {
        V::S(v.to_string(), exact)
    }

    /// The values of `attr` as elements (a scalar is one element with sub "value").
    fn elems(u: &ScimUserRow, attr: &str) -> Vec<Elem> {
        let one = |v: Option<V>| -> Vec<Elem> {
            v.map(|v| HashMap::from([("value", v)]))
                .into_iter()
                .collect()
        };
        match attr {
            "username" => one(Some(s(&u.username, false))),
            "displayname" => one(u.full_name.as_deref().map(|v| s(v, false))),
            "externalid" => one(u.external_id.as_deref().map(|v| s(v, true))),
            "employeenumber" => one(u.personal_number.as_deref().map(|v| s(v, true))),
            "active" => one(Some(V::B(u.active))),
            "lastmodified" => one(Some(V::T(u.updated.clone()))),
            "title" => vec![],
            "emails" => u
                .email
                .iter()
                .map(|e| {
                    HashMap::from([
                        ("value", s(e, false)),
                        ("type", s("work", false)),
                        ("primary", V::B(true)),
                    ])
                })
                .collect(),
            "aliases" => u
                .aliases
                .iter()
                .map(|a| HashMap::from([("value", s(a, false))]))
                .collect(),
            "cards" => u
                .cards
                .iter()
                .map(|a| HashMap::from([("value", s(a, false))]))
                .collect(),
            "groups" => u
                .groups
                .iter()
                .map(|(_, p)| HashMap::from([("display", s(p, false))]))
                .collect(),
            _ => panic!("{attr}"),
        }
    }

    fn instant(t: &str) -> time::OffsetDateTime {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).unwrap()
    }

    fn cmp(v: Option<&V>, op: CompareOp, lit: &Literal) -> bool {
        if op == CompareOp::Ne {
            return !cmp(v, CompareOp::Eq, lit);
        }
        let Some(v) = v else { return false };
        let ord = |o: std::cmp::Ordering| match op {
            CompareOp::Eq => o.is_eq(),
            CompareOp::Gt => o.is_gt(),
            CompareOp::Ge => o.is_ge(),
            CompareOp::Lt => o.is_lt(),
            CompareOp::Le => o.is_le(),
            _ => unreachable!(),
        };
        match (v, lit) {
            (V::B(b), Literal::Bool(w)) => b == w,
            (V::T(t), Literal::Str(w)) => ord(instant(t).cmp(&instant(w))),
            (V::S(have, exact), Literal::Str(w)) => {
                let (h, w) = if *exact {
                    (have.clone(), w.clone())
                } else {
                    (have.to_ascii_lowercase(), w.to_ascii_lowercase())
                };
                match op {
                    CompareOp::Co => h.contains(&w),
                    CompareOp::Sw => h.starts_with(&w),
                    CompareOp::Ew => h.ends_with(&w),
                    _ => ord(h.as_str().cmp(w.as_str())),
                }
            }
            _ => panic!("generated a mistyped comparison"),
        }
    }

    fn eval(f: &Filter, u: &ScimUserRow) -> bool {
        match f {
            Filter::And(a, b) => eval(a, u) && eval(b, u),
            Filter::Or(a, b) => eval(a, u) || eval(b, u),
            Filter::Not(a) => !eval(a, u),
            Filter::Present(p) => {
                let (attr, sub) = key(p);
                elems(u, &attr).iter().any(|e| e.contains_key(sub.as_str()))
            }
            Filter::Compare(p, op, lit) => {
                let (attr, sub) = key(p);
                let sub = sub.as_str();
                let es = elems(u, &attr);
                if es.is_empty() {
                    return *op == CompareOp::Ne;
                }
                if *op == CompareOp::Ne {
                    return !es.iter().any(|e| cmp(e.get(sub), CompareOp::Eq, lit));
                }
                es.iter().any(|e| cmp(e.get(sub), *op, lit))
            }
            Filter::ValuePath(p, inner) => elems(u, &key(p).0).iter().any(|e| sub_eval(inner, e)),
        }
    }

    fn sub_eval(f: &Filter, e: &Elem) -> bool {
        match f {
            Filter::And(a, b) => sub_eval(a, e) && sub_eval(b, e),
            Filter::Or(a, b) => sub_eval(a, e) || sub_eval(b, e),
            Filter::Not(a) => !sub_eval(a, e),
            Filter::Present(p) => e.contains_key(p.attr.to_ascii_lowercase().as_str()),
            Filter::Compare(p, op, lit) => {
                cmp(e.get(p.attr.to_ascii_lowercase().as_str()), *op, lit)
            }
            Filter::ValuePath(..) => unreachable!(),
        }
    }

    /// (attribute, sub-attribute) in `elems` terms.
    fn key(p: &AttrPath) -> (String, String) {
        let a = p.attr.to_ascii_lowercase();
        let sub = p.sub.as_deref().map(str::to_ascii_lowercase);
        if a == "meta" {
            (sub.unwrap(), "value".into())
        } else {
            (a, sub.unwrap_or("value".into()))
        }
    }

    struct Gen(u64);

    impl Gen {
        fn next(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
        fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
            xs[self.next(xs.len())]
        }
        fn string(&mut self) -> String {
            let v = self.pick(&[
                "a", "A", "smith", "ALICE", "alice", "e-1", "E-1", "staff", "Staff|IT", "example",
                ".COM", "1001", "x7", "X7", "", "%", "_", "o'", "dz", "04a1", "ff", "bob", "Žák",
                "c_1", "-",
            ]);
            serde_json::to_string(v).unwrap()
        }
        fn str_op(&mut self) -> &'static str {
            self.pick(&["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr"])
        }
        fn leaf(&mut self) -> String {
            let strs = [
                "userName",
                "displayName",
                "externalId",
                "emails.value",
                "emails",
                "employeeNumber",
                "aliases",
                "cards",
                "groups.display",
                "title",
            ];
            match self.next(6) {
                0 => format!(
                    "active {} {}",
                    self.pick(&["eq", "ne"]),
                    self.pick(&["true", "false"])
                ),
                1 => format!(
                    "meta.lastModified {} {:?}",
                    self.pick(&["eq", "ne", "gt", "ge", "lt", "le"]),
                    self.pick(&[
                        "2026-02-15T00:00:00Z",
                        "2026-02-01T00:00:00Z",
                        "2026-02-14T23:00:00-01:00",
                        "2025-12-31T23:59:59.999Z",
                    ])
                ),
                2 => {
                    let (attr, subs): (&str, &[&str]) = match self.next(4) {
                        0 => ("emails", &["value", "type"]),
                        1 => ("groups", &["display"]),
                        2 => ("aliases", &["value"]),
                        _ => ("cards", &["value"]),
                    };
                    let mut inner = vec![];
                    for _ in 0..1 + self.next(2) {
                        let sub = self.pick(subs);
                        let op = self.str_op();
                        inner.push(if op == "pr" {
                            format!("{sub} pr")
                        } else {
                            format!("{sub} {op} {}", self.string())
                        });
                    }
                    format!("{attr}[{}]", inner.join(self.pick(&[" and ", " or "])))
                }
                _ => {
                    let attr = self.pick(&strs);
                    let op = self.str_op();
                    if op == "pr" {
                        format!("{attr} pr")
                    } else {
                        format!("{attr} {op} {}", self.string())
                    }
                }
            }
        }
        fn filter(&mut self, depth: usize) -> String {
            if depth == 0 {
                return self.leaf();
            }
            match self.next(5) {
                0 => format!("{} and {}", self.filter(depth - 1), self.filter(depth - 1)),
                1 => format!("({} or {})", self.filter(depth - 1), self.filter(depth - 1)),
                2 => format!("not ({})", self.filter(depth - 1)),
                _ => self.leaf(),
            }
        }
    }

    #[test]
    fn random_filters_match_the_reference() {
        let s = db();
        let all = ScimQuery {
            start_index: 1,
            count: 100,
            ..Default::default()
        };
        let rows = s.scim_users(&all).unwrap().1;
        let mut gen = Gen(0x2545_F491_4F6C_DD1D);
        for _ in 0..3000 {
            let text = gen.filter(3);
            let f = filter::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let want: Vec<&str> = rows
                .iter()
                .filter(|u| eval(&f, u))
                .map(|u| u.username.as_str())
                .collect();
            assert_eq!(users(&s, &text), want, "{text}");
        }
    }
}
