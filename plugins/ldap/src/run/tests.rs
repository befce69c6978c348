//! Runs against a fake directory: AD's paths (range retrieval, userAccountControl, the DC
//! binding of the cursor, Show Deleted) that the slapd tests cannot reach.

use super::*;
use crate::entry::guid_text;
use std::cell::RefCell;
use std::rc::Rc;

/// Answers searches whose filter or attribute list contains a needle.
#[derive(Default)]
struct Fake {
    dse: Vec<(&'static str, Vec<Vec<u8>>)>,
    /// (needle, show_deleted, pages)
    answers: Vec<(String, bool, Vec<Vec<RawEntry>>)>,
    queries: RefCell<Vec<Query>>,
}

struct FakePages(VecDeque<Vec<RawEntry>>);

impl Pages for FakePages {
    fn next_page(&mut self) -> Result<Option<Vec<RawEntry>>, Error> {
        Ok(self.0.pop_front())
    }
}

impl Directory for Rc<Fake> {
    type Search = FakePages;
    fn search(&self, q: &Query) -> Result<FakePages, Error> {
        self.queries.borrow_mut().push(q.clone());
        let pages = self
            .answers
            .iter()
            .find(|(needle, deleted, _)| {
                *deleted == q.show_deleted
                    && (q.filter.contains(needle.as_str()) || q.attributes.contains(needle))
            })
            .map(|(_, _, pages)| pages.clone())
            .unwrap_or_default();
        Ok(FakePages(pages.into()))
    }
    fn root_dse(&self, _: &[String]) -> Result<RawEntry, Error> {
        Ok(RawEntry {
            dn: String::new(),
            attributes: self
                .dse
                .iter()
                .map(|(n, v)| (n.to_string(), v.clone()))
                .collect(),
        })
    }
}

fn guid(n: u8) -> Vec<u8> {
    vec![n; 16]
}

fn gid(n: u8) -> String {
    guid_text(&[n; 16])
}

fn e(dn: &str, attrs: Vec<(&str, Vec<Vec<u8>>)>) -> RawEntry {
    RawEntry {
        dn: dn.into(),
        attributes: attrs.into_iter().map(|(n, v)| (n.to_string(), v)).collect(),
    }
}

fn t(s: &str) -> Vec<Vec<u8>> {
    vec![s.as_bytes().to_vec()]
}

const ALICE: &str = "CN=Alice,OU=Staff,DC=example,DC=test";
const BOB: &str = "CN=Bob,OU=Staff,DC=example,DC=test";
const CAROL: &str = "CN=Carol,OU=Staff,DC=example,DC=test";
const STAFF: &str = "CN=Staff,OU=Groups,DC=example,DC=test";
const IT: &str = "CN=IT,OU=Groups,DC=example,DC=test";
const DSA: &str = "CN=NTDS Settings,CN=DC1,CN=Servers,CN=Configuration,DC=example,DC=test";

fn user(dn: &str, n: u8, sam: Option<&str>, uac: &str) -> RawEntry {
    let mut attrs = vec![
        ("objectGUID", vec![guid(n)]),
        ("cn", t(dn.split(['=', ',']).nth(1).unwrap())),
        ("userAccountControl", t(uac)),
    ];
    if let Some(s) = sam {
        attrs.push(("sAMAccountName", t(s)));
    }
    e(dn, attrs)
}

/// An AD with Staff ⊃ {alice, IT, carol (in the second range)}, IT ⊃ {bob}; bob disabled;
/// one user without sAMAccountName.
fn ad(dsa: &str, usn: &str) -> Rc<Fake> {
    let staff = e(
        STAFF,
        vec![
            ("objectGUID", vec![guid(1)]),
            ("cn", t("Staff")),
            ("member", vec![]),
            (
                "member;range=0-1",
                vec![ALICE.as_bytes().to_vec(), IT.as_bytes().to_vec()],
            ),
        ],
    );
    let it = e(
        IT,
        vec![
            ("objectGUID", vec![guid(2)]),
            ("cn", t("IT")),
            ("member", t(BOB)),
        ],
    );
    Rc::new(Fake {
        dse: vec![("dsServiceName", t(dsa)), ("highestCommittedUSN", t(usn))],
        answers: vec![
            (
                "isDeleted".into(),
                true,
                vec![vec![
                    e(
                        "CN=Dan\\0ADEL:x,CN=Deleted Objects,DC=example,DC=test",
                        vec![
                            ("objectGUID", vec![guid(15)]),
                            (
                                "objectClass",
                                vec![b"top".to_vec(), b"person".to_vec(), b"user".to_vec()],
                            ),
                        ],
                    ),
                    e(
                        "CN=PC\\0ADEL:y,CN=Deleted Objects,DC=example,DC=test",
                        vec![
                            ("objectGUID", vec![guid(16)]),
                            ("objectClass", vec![b"user".to_vec(), b"computer".to_vec()]),
                        ],
                    ),
                    e(
                        "CN=Old\\0ADEL:z,CN=Deleted Objects,DC=example,DC=test",
                        vec![
                            ("objectGUID", vec![guid(3)]),
                            ("objectClass", vec![b"top".to_vec(), b"group".to_vec()]),
                        ],
                    ),
                ]],
            ),
            (
                "invocationId".into(),
                false,
                vec![vec![e(dsa, vec![("invocationId", vec![guid(7)])])]],
            ),
            (
                "member;range=2-*".into(),
                false,
                vec![vec![e(STAFF, vec![("member;range=2-*", t(CAROL))])]],
            ),
            ("(objectClass=group)".into(), false, vec![vec![staff, it]]),
            (
                "objectCategory=person".into(),
                false,
                vec![
                    vec![
                        user(ALICE, 11, Some("alice"), "512"),
                        user(BOB, 12, Some("bob"), "514"),
                    ],
                    vec![
                        user(CAROL, 13, Some("carol"), "66048"),
                        user("CN=Nobody,DC=example,DC=test", 14, None, "512"),
                    ],
                ],
            ),
        ],
        queries: RefCell::default(),
    })
}

fn settings(extra: &str) -> Settings {
    Settings::from_json(&format!(r#"{{"profile": "ad"{extra}}}"#)).unwrap()
}

/// Every step until the run is done.
fn drain<D: Directory>(run: &mut Run<D>) -> (Vec<String>, Vec<Out>) {
    let mut columns = Vec::new();
    let mut outs = Vec::new();
    let mut steps = 0;
    while let Some(step) = run.step().unwrap() {
        if !step.columns.is_empty() {
            columns = step.columns;
        }
        outs.extend(step.entries);
        steps += 1;
        assert!(steps < 100, "the run does not end");
    }
    (columns, outs)
}

fn rows(outs: &[Out]) -> Vec<(String, Vec<String>)> {
    outs.iter()
        .filter_map(|o| match o {
            Out::Row { id, member_of, .. } => Some((id.clone(), member_of.clone())),
            _ => None,
        })
        .collect()
}

fn removals(outs: &[Out]) -> Vec<(bool, String)> {
    outs.iter()
        .filter_map(|o| match o {
            Out::Removed { group, id } => Some((*group, id.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn ad_full_run_reads_ranges_leaves_out_disabled_and_sends_groups() {
    let fake = ad(DSA, "900");
    let mut run = Run::open(fake.clone(), settings(""), false, None, 1_000_000).unwrap();
    let (columns, outs) = drain(&mut run);
    assert_eq!(
        rows(&outs),
        [(gid(11), vec![gid(1)]), (gid(13), vec![gid(1)])],
        "carol came in the second range; bob is disabled"
    );
    let failed: Vec<&Out> = outs
        .iter()
        .filter(|o| matches!(o, Out::Failed { .. }))
        .collect();
    assert!(
        matches!(failed[..], [Out::Failed { locator, reason }]
            if locator == "CN=Nobody,DC=example,DC=test" && reason.contains("sAMAccountName")),
        "{failed:?}"
    );
    let groups: Vec<(String, Vec<String>)> = outs
        .iter()
        .filter_map(|o| match o {
            Out::Group { name, members, .. } => Some((name.clone(), members.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        groups,
        [
            ("Staff".to_string(), vec![gid(2)]),
            ("IT".to_string(), vec![])
        ]
    );
    let active = columns.iter().position(|c| c == "active").unwrap();
    for o in &outs {
        if let Out::Row { values, .. } = o {
            assert_eq!(values[active], ["true"]);
        }
    }
    assert!(removals(&outs).is_empty());
    let end = run.end();
    assert!(!end.delta);
    assert!(end.summary.contains("1 disabled"), "{}", end.summary);
    let c = Cursor::decode(end.cursor.as_deref().unwrap()).unwrap();
    assert_eq!(c.full_at, 1_000_000);
    assert_eq!(
        c.mark,
        Mark::Usn {
            usn: 900,
            dsa: DSA.into(),
            invocation: Some(gid(7))
        }
    );
    assert!(!fake.queries.borrow().iter().any(|q| q.show_deleted));
}

#[test]
fn ad_delta_reads_changes_since_the_usn_and_deletions() {
    let mut first = Run::open(ad(DSA, "900"), settings(""), false, None, 1_000_000).unwrap();
    drain(&mut first);
    let cursor = first.end().cursor;

    let fake = ad(DSA, "950");
    let mut run = Run::open(fake.clone(), settings(""), true, cursor, 1_000_100).unwrap();
    let (_, outs) = drain(&mut run);
    let users_query = fake
        .queries
        .borrow()
        .iter()
        .find(|q| q.filter.contains("objectCategory=person"))
        .cloned()
        .unwrap();
    assert!(
        users_query.filter.contains("(uSNChanged>=901)"),
        "{}",
        users_query.filter
    );
    assert_eq!(rows(&outs).len(), 2);
    assert_eq!(
        removals(&outs),
        [
            (false, gid(12)), // bob: disabled, in a delta
            (false, gid(15)), // deleted user
            (true, gid(3)),   // deleted group; the computer is left out
        ]
    );
    assert!(
        !outs.iter().any(|o| matches!(o, Out::Group { .. })),
        "unchanged groups are not sent by a delta"
    );
    let end = run.end();
    assert!(end.delta);
    assert!(end.notices.is_empty(), "{:?}", end.notices);
    let c = Cursor::decode(end.cursor.as_deref().unwrap()).unwrap();
    assert_eq!(
        c.full_at, 1_000_000,
        "a delta keeps the last full run's time"
    );
    assert!(matches!(c.mark, Mark::Usn { usn: 950, .. }));
}

#[test]
fn ad_cursor_from_another_dc_runs_full_and_says_why() {
    let mut first = Run::open(ad(DSA, "900"), settings(""), false, None, 1_000_000).unwrap();
    drain(&mut first);
    let cursor = first.end().cursor;
    let other = DSA.replace("DC1", "DC2");
    let fake = ad(&other, "5000");
    let mut run = Run::open(fake.clone(), settings(""), true, cursor, 1_000_100).unwrap();
    let (_, outs) = drain(&mut run);
    assert!(outs.iter().any(|o| matches!(o, Out::Group { .. })));
    let end = run.end();
    assert!(!end.delta);
    assert!(
        end.notices
            .iter()
            .any(|n| n.contains("another domain controller")),
        "{:?}",
        end.notices
    );
    let users_query = fake
        .queries
        .borrow()
        .iter()
        .find(|q| q.filter.contains("objectCategory=person"))
        .cloned()
        .unwrap();
    assert!(!users_query.filter.contains("uSNChanged"));
}

#[test]
fn include_disabled_imports_disabled_accounts_inactive() {
    let mut run = Run::open(
        ad(DSA, "900"),
        settings(r#", "include_disabled": true"#),
        false,
        None,
        1,
    )
    .unwrap();
    let (columns, outs) = drain(&mut run);
    let active = columns.iter().position(|c| c == "active").unwrap();
    let bob = outs
        .iter()
        .find_map(|o| match o {
            Out::Row { id, values, .. } if *id == gid(12) => Some(values[active].clone()),
            _ => None,
        })
        .expect("bob is imported");
    assert_eq!(bob, ["false"]);
}

#[test]
fn a_server_without_usn_runs_full_without_a_cursor() {
    let fake = Rc::new(Fake::default());
    let mut run = Run::open(fake, settings(""), true, None, 1).unwrap();
    drain(&mut run);
    let end = run.end();
    assert!(!end.delta);
    assert_eq!(end.cursor, None);
    assert!(
        end.notices[0].contains("highestCommittedUSN"),
        "{:?}",
        end.notices
    );
}

#[test]
fn timestamp_delta_reads_from_the_mark_and_leaves_deletions_to_a_full_run() {
    let people = |ts: &str| {
        Rc::new(Fake {
            answers: vec![(
                "inetOrgPerson".into(),
                false,
                vec![vec![e(
                    "uid=a,dc=x",
                    vec![
                        ("entryUUID", t("u-a")),
                        ("uid", t("a")),
                        ("modifyTimestamp", t(ts)),
                    ],
                )]],
            )],
            ..Fake::default()
        })
    };
    let s = || Settings::from_json(r#"{"profile": "openldap", "group_filter": ""}"#).unwrap();
    let mut first = Run::open(people("20261101120000Z"), s(), false, None, 1).unwrap();
    let (_, outs) = drain(&mut first);
    assert_eq!(rows(&outs).len(), 1);
    let end = first.end();
    let c = Cursor::decode(end.cursor.as_deref().unwrap()).unwrap();
    let Mark::Timestamp { since } = &c.mark else {
        panic!("{c:?}")
    };
    assert!(since.as_str() < "20261101120000Z" && since.as_str() > "20261101115900Z");

    let fake = people("20261102120000Z");
    let mut run = Run::open(fake.clone(), s(), true, end.cursor, 2).unwrap();
    drain(&mut run);
    let q = fake.queries.borrow()[0].clone();
    assert!(
        q.filter.contains(&format!("(modifyTimestamp>={since})")),
        "{}",
        q.filter
    );
    let end = run.end();
    assert!(end.delta);
    assert!(end.notices.iter().any(|n| n.contains("deletions")));
    let c2 = Cursor::decode(end.cursor.as_deref().unwrap()).unwrap();
    assert!(matches!(&c2.mark, Mark::Timestamp { since: s2 } if s2 > since));
}

#[test]
fn test_report_counts_and_samples() {
    let fake = ad(DSA, "900");
    let r = crate::report::test(&fake, &settings(""), &["DC=example,DC=test".to_string()]).unwrap();
    assert_eq!(r.users, 2);
    assert_eq!(r.groups, Some(2));
    let (_, row, dn) = r.sample.unwrap();
    assert_eq!((row.id, dn), (gid(11), ALICE.to_string()));
    assert!(r.messages.iter().any(|m| m.contains("1 disabled")));
    assert!(r
        .messages
        .iter()
        .any(|m| m.contains("without a username or anchor: 1")));
}

#[test]
fn a_sync_cursor_on_a_server_without_content_synchronization_runs_full_and_says_why() {
    let fake = Rc::new(Fake {
        answers: vec![(
            "inetOrgPerson".into(),
            false,
            vec![vec![e(
                "uid=a,dc=x",
                vec![("entryUUID", t("u-a")), ("uid", t("a"))],
            )]],
        )],
        ..Fake::default()
    });
    let s = Settings::from_json(r#"{"profile": "openldap", "group_filter": ""}"#).unwrap();
    // A cursor as a syncprov server's full run leaves it.
    let mut first = Run::open(fake.clone(), s.clone(), false, None, 1).unwrap();
    drain(&mut first);
    let mut cursor = Cursor::decode(first.end().cursor.as_deref().unwrap()).unwrap();
    cursor.mark = Mark::Sync {
        cookie: crate::cursor::hex(b"rid=000,csn=1"),
    };
    let mut run = Run::open(fake, s, true, Some(cursor.encode()), 2).unwrap();
    let (_, outs) = drain(&mut run);
    assert_eq!(rows(&outs).len(), 1);
    let end = run.end();
    assert!(!end.delta);
    assert!(
        end.notices
            .iter()
            .any(|n| n.contains("no longer offers content synchronization")),
        "{:?}",
        end.notices
    );
    // The next delta reads modifyTimestamp.
    let c = Cursor::decode(end.cursor.as_deref().unwrap()).unwrap();
    assert!(matches!(c.mark, Mark::Timestamp { .. }), "{c:?}");
}
