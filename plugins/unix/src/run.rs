//! One run: the `group` file read into an index, then `passwd` streamed into users, then the
//! groups the imported users are in.

use crate::parse::{self, Line};
use crate::settings::{Anchor, Settings};
use roster_plugin::{Error, Group, Item, Listing, Row};
use std::collections::{BTreeSet, HashMap};
use std::io::BufRead;

/// The group id roster keeps: users' anchors (uids or logins) and group anchors share one
/// namespace in a source, so groups carry a prefix.
/// The attributes of every user, in the order of its row's values.
pub const COLUMNS: [&str; 14] = [
    "username",
    "full_name",
    "phone",
    "active",
    "uid",
    "gid",
    "group",
    "room",
    "work_phone",
    "home_phone",
    "gecos_other",
    "gecos",
    "home",
    "shell",
];

/// [`COLUMNS`] as the run's columns.
pub fn columns() -> Vec<String> {
    COLUMNS.map(str::to_string).to_vec()
}

pub fn group_id(gid: u32) -> String {
    format!("gid:{gid}")
}

/// The `group` file, indexed.
#[derive(Debug, Default)]
pub struct Groups {
    /// gid → (name, where).
    by_gid: HashMap<u32, (String, String)>,
    /// login → gids of the groups listing it as a member.
    supplementary: Members,
    /// Lines that could not be used, reported as failed entries.
    failed: Vec<Item>,
}

impl Groups {
    pub fn read(mut r: impl BufRead, path: &str) -> Result<Groups, Error> {
        let mut g = Groups::default();
        let mut names: HashMap<String, String> = HashMap::new();
        let mut buf = Vec::new();
        let mut n = 0;
        while read_line(&mut r, &mut buf, path)? {
            n += 1;
            let at = format!("{path} line {n}");
            let line = match std::str::from_utf8(&buf) {
                Ok(l) => l,
                Err(_) => {
                    g.failed.push(Item::failed(at, "not UTF-8 text"));
                    continue;
                }
            };
            let e = match parse::group(line) {
                Line::Entry(e) => e,
                Line::Skip => continue,
                Line::Malformed(why) => {
                    g.failed.push(Item::failed(at, why));
                    continue;
                }
            };
            if let Some((name, first)) = g.by_gid.get(&e.gid) {
                let why = format!("duplicate gid {} (group {name} at {first})", e.gid);
                g.failed.push(Item::failed(at, why));
                continue;
            }
            if let Some(first) = names.get(e.name) {
                let why = format!("duplicate group name {} (first at {first})", e.name);
                g.failed.push(Item::failed(at, why));
                continue;
            }
            names.insert(e.name.to_string(), at.clone());
            for m in e.members {
                g.supplementary.add(m, e.gid);
            }
            g.by_gid.insert(e.gid, (e.name.to_string(), at));
        }
        // Popped from the end: the first broken line goes first.
        g.failed.reverse();
        g.supplementary.finish();
        Ok(g)
    }
}

/// Supplementary memberships, packed for a million accounts: one list of (hash of the login,
/// where the login sits in `names`, gid) sorted by hash, 16 bytes a membership plus the
/// login's bytes, where a map of logins to lists of gids took about 100.
#[derive(Debug, Default)]
struct Members {
    names: String,
    list: Vec<(u64, u32, u32)>,
}

impl Members {
    fn hash(login: &str) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        login.hash(&mut h);
        h.finish()
    }

    fn add(&mut self, login: &str, gid: u32) {
        let at = self.names.len() as u32;
        // A login never holds a newline (a line of the file ends there).
        self.names.push_str(login);
        self.names.push('\n');
        self.list.push((Members::hash(login), at, gid));
    }

    /// Sorted by hash, and in file order within one hash.
    fn finish(&mut self) {
        self.list.sort_unstable_by_key(|&(h, at, _)| (h, at));
        self.list.shrink_to_fit();
        self.names.shrink_to_fit();
    }

    fn name(&self, at: u32) -> &str {
        let rest = &self.names[at as usize..];
        &rest[..rest.find('\n').unwrap_or(rest.len())]
    }

    /// The gids of the groups listing `login`, in file order, each once.
    fn gids(&self, login: &str) -> Vec<u32> {
        let h = Members::hash(login);
        let start = self.list.partition_point(|e| e.0 < h);
        let mut gids = Vec::new();
        for &(_, at, gid) in self.list[start..].iter().take_while(|e| e.0 == h) {
            if self.name(at) == login && !gids.contains(&gid) {
                gids.push(gid);
            }
        }
        gids
    }
}

/// Reads one line without its `\n` (and `\r`) into `buf`; false at the end.
fn read_line(r: &mut impl BufRead, buf: &mut Vec<u8>, path: &str) -> Result<bool, Error> {
    buf.clear();
    let n = (r.read_until(b'\n', buf))
        .map_err(|e| Error::unavailable(format!("reading {path}: {e}")))?;
    if buf.last() == Some(&b'\n') {
        buf.pop();
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(n > 0)
}

/// The listing of one run.
pub struct Accounts<R> {
    settings: Settings,
    passwd: R,
    groups: Groups,
    line: usize,
    buf: Vec<u8>,
    /// uid → line of the first account with it (anchor = "uid" only): a second one would
    /// be the same user to roster.
    uids: HashMap<u32, u32>,
    /// Groups some imported user is in; sent after the users.
    used: BTreeSet<u32>,
    users_done: bool,
    /// The groups still to send, once the users are done.
    pending: Option<std::collections::btree_set::IntoIter<u32>>,
}

impl<R: BufRead + 'static> Accounts<R> {
    pub fn new(settings: Settings, passwd: R, groups: Groups) -> Accounts<R> {
        Accounts {
            settings,
            passwd,
            groups,
            line: 0,
            buf: Vec::with_capacity(256),
            uids: HashMap::new(),
            used: BTreeSet::new(),
            users_done: false,
            pending: None,
        }
    }

    /// The next item of `passwd`: a user, a failed line, or None for a line that is not
    /// imported (out of the uid range, excluded, blank).
    fn user(&mut self, line: &str, at: String) -> Option<Item> {
        let s = &self.settings;
        let p = match parse::passwd(line) {
            Line::Entry(p) => p,
            Line::Skip => return None,
            Line::Malformed(why) => return Some(Item::failed(at, why)),
        };
        if p.uid < s.min_uid || p.uid > s.max_uid || s.exclude_users.contains(p.name) {
            return None;
        }
        let id = match s.anchor {
            Anchor::Uid => {
                if let Some(first) = self.uids.insert(p.uid, self.line as u32) {
                    self.uids.insert(p.uid, first);
                    let why = format!(
                        "duplicate uid {} (first at {} line {first}); with anchor = \"username\" \
                         both accounts are imported",
                        p.uid, s.passwd
                    );
                    return Some(Item::failed(at, why));
                }
                p.uid.to_string()
            }
            Anchor::Username => p.name.to_string(),
        };
        let g = parse::gecos(p.gecos, p.name);
        let primary = self
            .groups
            .by_gid
            .get(&p.gid)
            .map(|(name, _)| name.as_str());
        let active = !s.inactive_shells.contains(p.shell);
        let phone = g.work_phone.clone().or_else(|| g.home_phone.clone());
        let one = |s: &str| vec![s.to_string()];
        // The values of COLUMNS, in order: every user travels as a row, with no attribute
        // names to allocate and compare.
        let values = vec![
            one(p.name),
            g.full_name.into_iter().collect(),
            phone.into_iter().collect(),
            one(if active { "true" } else { "false" }),
            vec![p.uid.to_string()],
            vec![p.gid.to_string()],
            primary.map(str::to_string).into_iter().collect(),
            g.room.into_iter().collect(),
            g.work_phone.into_iter().collect(),
            g.home_phone.into_iter().collect(),
            g.other.into_iter().collect(),
            one(p.gecos),
            one(p.home),
            one(p.shell),
        ];
        let mut u = Row::new(id, values).locator(at);
        if primary.is_some() {
            self.used.insert(p.gid);
            u = u.member_of(group_id(p.gid));
        }
        for gid in self.groups.supplementary.gids(p.name) {
            if gid != p.gid {
                self.used.insert(gid);
                u = u.member_of(group_id(gid));
            }
        }
        Some(Item::Row(u))
    }
}

impl<R: BufRead + 'static> Listing for Accounts<R> {
    fn next(&mut self) -> Result<Option<Item>, Error> {
        // The group file's broken lines first: they are known before any user.
        if let Some(f) = self.groups.failed.pop() {
            return Ok(Some(f));
        }
        while !self.users_done {
            let path = &self.settings.passwd;
            if !read_line(&mut self.passwd, &mut self.buf, path)? {
                self.users_done = true;
                break;
            }
            self.line += 1;
            let at = format!("{path} line {}", self.line);
            let buf = std::mem::take(&mut self.buf);
            let item = match std::str::from_utf8(&buf) {
                Ok(line) => self.user(line, at),
                Err(_) => Some(Item::failed(at, "not UTF-8 text")),
            };
            self.buf = buf;
            if item.is_some() {
                return Ok(item);
            }
        }
        let pending =
            (self.pending).get_or_insert_with(|| std::mem::take(&mut self.used).into_iter());
        Ok(pending.next().map(|gid| {
            let (name, at) = &self.groups.by_gid[&gid];
            Item::Group(
                Group::new(group_id(gid), name.clone())
                    .locator(at.clone())
                    .attr("gid", gid.to_string()),
            )
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roster_plugin::{Config, Run, User};
    use std::io::Cursor;

    const GROUP: &str = "root:x:0:\nusers:x:100:\nstaff:x:50:alice,bob,carol\n\
                         alice:x:1000:\nbroken:x:5\nwheel:x:10:bob\nagain:x:50:\n";

    fn run(config: &str, passwd: &str, group: &str) -> Vec<Item> {
        let mut c = String::from(r#"{"passwd": "passwd", "group": "group""#);
        if !config.is_empty() {
            c.push_str(", ");
            c.push_str(config);
        }
        c.push('}');
        let s = Settings::from_config(&Config::from_json(&c).unwrap()).unwrap();
        let groups = Groups::read(Cursor::new(group.as_bytes().to_vec()), "group").unwrap();
        let listing = Accounts::new(s, Cursor::new(passwd.as_bytes().to_vec()), groups);
        named(Run::from_listing(listing).columns(columns()))
    }

    /// The items, rows as users with named attributes.
    fn named(run: Run) -> Vec<Item> {
        (run.collect().unwrap().0.into_iter())
            .map(|i| match i {
                Item::Row(r) => Item::User(r.into_user(&columns())),
                i => i,
            })
            .collect()
    }

    fn user<'a>(items: &'a [Item], name: &str) -> &'a User {
        (items.iter())
            .find_map(|i| match i {
                Item::User(u) if u.attributes[0].1 == [name] => Some(u),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no user {name} in {items:#?}"))
    }

    fn attr<'a>(u: &'a User, name: &str) -> &'a [String] {
        &u.attributes.iter().find(|(n, _)| n == name).unwrap().1
    }

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        # a comment\n\
        alice:x:1000:1000:Alice Smith,B12,+1 555 0100,555 0199,:/home/alice:/bin/bash\r\n\
        bob:x:1001:100:Bob:/home/bob:/usr/sbin/nologin\n\
        \n\
        carol:x:1002:4242::/home/carol:/bin/zsh\n\
        broken:x:1003\n\
        nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
        +::::::\n";

    #[test]
    fn users_with_their_gecos_groups_and_shells() {
        let items = run("", PASSWD, GROUP);
        let alice = user(&items, "alice");
        assert_eq!(alice.id, "1000");
        assert_eq!(alice.locator.as_deref(), Some("passwd line 3"));
        assert_eq!(attr(alice, "full_name"), ["Alice Smith"]);
        assert_eq!(attr(alice, "room"), ["B12"]);
        assert_eq!(attr(alice, "phone"), ["+1 555 0100"]);
        assert_eq!(attr(alice, "home_phone"), ["555 0199"]);
        assert_eq!(attr(alice, "active"), ["true"]);
        assert_eq!(attr(alice, "group"), ["alice"]);
        assert_eq!(alice.member_of, ["gid:1000", "gid:50"]);

        let bob = user(&items, "bob");
        assert_eq!(attr(bob, "active"), ["false"], "nologin is inactive");
        assert_eq!(bob.member_of, ["gid:100", "gid:50", "gid:10"]);
        assert!(attr(bob, "phone").is_empty());

        // A primary gid without a group line: no group, the gid is still an attribute.
        let carol = user(&items, "carol");
        assert_eq!(carol.member_of, ["gid:50"]);
        assert!(attr(carol, "full_name").is_empty());
        assert_eq!(attr(carol, "gid"), ["4242"]);

        let users: Vec<_> = (items.iter())
            .filter_map(|i| match i {
                Item::User(u) => Some(u.attributes[0].1[0].as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            users,
            ["alice", "bob", "carol"],
            "root and nobody are not imported"
        );

        let failed: Vec<(&str, &str)> = (items.iter())
            .filter_map(|i| match i {
                Item::Failed { locator, reason } => Some((locator.as_str(), reason.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(
            failed,
            [
                (
                    "group line 5",
                    "3 fields where group has 4 (name:password:gid:members)"
                ),
                (
                    "group line 7",
                    "duplicate gid 50 (group staff at group line 3)"
                ),
                (
                    "passwd line 7",
                    "3 fields where passwd has 7 (name:password:uid:gid:gecos:home:shell)"
                ),
            ]
        );
        // Only the groups imported users are in, after the users.
        let groups: Vec<(&str, &str)> = (items.iter())
            .filter_map(|i| match i {
                Item::Group(g) => Some((g.id.as_str(), g.name.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(
            groups,
            [
                ("gid:10", "wheel"),
                ("gid:50", "staff"),
                ("gid:100", "users"),
                ("gid:1000", "alice")
            ]
        );
        assert!(matches!(items.last(), Some(Item::Group(_))));
    }

    #[test]
    fn uid_range_exclusions_anchor_and_shells_are_the_admins() {
        let items = run(
            r#""min_uid": 0, "max_uid": 1001, "exclude_users": ["bob"], "anchor": "username",
               "inactive_shells": ["/bin/zsh"]"#,
            PASSWD,
            GROUP,
        );
        let names: Vec<&str> = (items.iter())
            .filter_map(|i| match i {
                Item::User(u) => Some(u.id.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(names, ["root", "alice"]);
        assert_eq!(attr(user(&items, "root"), "active"), ["true"]);
    }

    #[test]
    fn supplementary_groups_are_found_by_exact_login_in_file_order_once() {
        let group = "a:x:7:alice,al,alice\nb:x:3:bob,alice\nc:x:9:al\n";
        let g = Groups::read(Cursor::new(group.as_bytes().to_vec()), "group").unwrap();
        assert_eq!(g.supplementary.gids("alice"), [7, 3]);
        assert_eq!(g.supplementary.gids("al"), [7, 9]);
        assert_eq!(g.supplementary.gids("bob"), [3]);
        assert!(g.supplementary.gids("ali").is_empty());
    }

    #[test]
    fn a_duplicate_uid_fails_the_second_account_unless_logins_anchor() {
        let passwd = "alice:x:1000:100::/h:/bin/sh\ntoor:x:1000:100::/h:/bin/sh\n";
        let items = run("", passwd, GROUP);
        assert_eq!(
            items[3],
            Item::failed(
                "passwd line 2",
                "duplicate uid 1000 (first at passwd line 1); with anchor = \"username\" \
                 both accounts are imported"
            )
        );
        let items = run(r#""anchor": "username""#, passwd, GROUP);
        let users = items.iter().filter(|i| matches!(i, Item::User(_))).count();
        assert_eq!(users, 2);
    }

    #[test]
    fn without_a_group_file_users_have_no_groups_and_bad_bytes_fail_one_line() {
        let s = Settings::from_config(&Config::from_json(r#"{"passwd": "p"}"#).unwrap()).unwrap();
        let mut passwd = b"alice:x:1000:1000:Al\xe9:/h:/bin/sh\n".to_vec();
        passwd.extend_from_slice(b"bob:x:1001:1000::/h:/bin/sh");
        let listing = Accounts::new(s, Cursor::new(passwd), Groups::default());
        let items = named(Run::from_listing(listing).columns(columns()));
        assert_eq!(items.len(), 2);
        assert_eq!(items[0], Item::failed("p line 1", "not UTF-8 text"));
        let Item::User(bob) = &items[1] else { panic!() };
        assert!(bob.member_of.is_empty() && attr(bob, "group").is_empty());
    }
}
