//! The group graph of one run: groups with their member DNs (`member`, `uniqueMember`,
//! AD's ranged `member;range=a-b`) and member names (`memberUid`), nesting, the scope that
//! `groups = [...]` selects, and each user's direct groups.
//!
//! Groups are held for the whole run; users are not. A member is held as a 128-bit key,
//! not as its DN: a million memberships take 16 MB of the plugin's memory, not 150.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher, RandomState};

use crate::config::{Fnv, Settings};
use crate::{entry, normalise_dn, Error, RawEntry};

#[derive(Debug, Clone)]
pub struct Group {
    pub dn: String,
    pub anchor: String,
    pub name: String,
    /// The [`Keys`] of its members (DNs and memberUids), until [`GroupGraph::finish`].
    members: Vec<Key>,
    /// The sum of its members' [`fact`]s: the same whatever order the server lists them in.
    facts: u128,
}

/// A member DN (`d` + normalised DN) or memberUid (`u` + lowercased uid) as a lookup key:
/// 128 bits, as two words so that a `(Key, u32)` takes 24 bytes, not 32.
type Key = [u64; 2];

/// Keyed SipHash, twice, for 128-bit [`Key`]s: keyed at random per run, so no one can
/// craft names whose keys collide.
#[derive(Debug, Default)]
struct Keys(RandomState, RandomState);

impl Keys {
    fn key(&self, kind: u8, name: &str) -> Key {
        let half = |s: &RandomState| {
            let mut h = s.build_hasher();
            h.write_u8(kind);
            h.write(name.as_bytes());
            h.finish()
        };
        [half(&self.0), half(&self.1)]
    }
}

/// A member as it counts in the run's fingerprint: FNV-1a (128 bits) of the same text as its
/// key, the same in every run.
fn fact(kind: u8, name: &str) -> u128 {
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for &b in std::iter::once(&kind).chain(name.as_bytes()) {
        h ^= u128::from(b);
        h = h.wrapping_mul(PRIME);
    }
    h
}

/// A ranged attribute still to fetch for a group: search the group's DN for `attribute`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub group: usize,
    pub dn: String,
    pub attribute: String,
}

/// `member;range=0-1499` → ("member", 0, Some(1499)); `member;range=1500-*` → (…, None).
pub fn parse_range(name: &str) -> Option<(&str, u64, Option<u64>)> {
    let (base, opts) = name.split_once(';')?;
    let range = opts.split(';').find_map(|o| {
        o.strip_prefix("range=")
            .or_else(|| o.strip_prefix("Range="))
    })?;
    let (lo, hi) = range.split_once('-')?;
    let lo = lo.parse().ok()?;
    let hi = if hi == "*" {
        None
    } else {
        Some(hi.parse().ok()?)
    };
    Some((base, lo, hi))
}

#[derive(Debug, Default)]
pub struct GroupGraph {
    groups: Vec<Group>,
    keys: Keys,
    /// Each group by the key of its own DN.
    by_dn: HashMap<Key, usize>,
    /// After [`GroupGraph::finish`]: which groups the run sends, their child groups, and
    /// the groups each member key is directly in, sorted by key.
    emitted: Vec<bool>,
    children: Vec<Vec<usize>>,
    memberships: Vec<(Key, u32)>,
    hash: String,
}

impl GroupGraph {
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Adds a group entry. Returns the ranged attribute still to fetch, if the server cut
    /// `member` short; an entry without an anchor is an error (a failed entry).
    pub fn add(&mut self, e: &RawEntry, settings: &Settings) -> Result<Option<Pending>, String> {
        let anchor = entry::anchor(e, settings)?;
        let norm = self.keys.key(b'd', &normalise_dn(&e.dn));
        if self.by_dn.contains_key(&norm) {
            return Err("listed twice (overlapping base DNs?)".into());
        }
        let name = e
            .first_text("cn")
            .or_else(|| e.first_text("name"))
            .unwrap_or_else(|| e.dn.clone());
        let mut g = Group {
            dn: e.dn.clone(),
            anchor,
            name,
            members: Vec::new(),
            facts: 0,
        };
        for attr in ["member", "uniqueMember"] {
            for v in e.values(attr) {
                add_member(&mut g, &self.keys, b'd', &member_dn(v));
            }
        }
        for v in e.values("memberUid") {
            let uid = String::from_utf8_lossy(v).trim().to_lowercase();
            if !uid.is_empty() {
                add_member(&mut g, &self.keys, b'u', &uid);
            }
        }
        let idx = self.groups.len();
        let pending = take_range(&mut g, &self.keys, e, idx);
        self.by_dn.insert(norm, idx);
        self.groups.push(g);
        Ok(pending)
    }

    /// Adds what a range search returned for `pending`; returns the next range to fetch.
    pub fn add_range(
        &mut self,
        pending: &Pending,
        e: &RawEntry,
    ) -> Result<Option<Pending>, String> {
        let g = &mut self.groups[pending.group];
        let ranged = e.attributes.iter().any(|(n, _)| parse_range(n).is_some());
        if !ranged {
            // The rest was empty (the server returns no attribute for an empty range).
            return Ok(None);
        }
        Ok(take_range(g, &self.keys, e, pending.group))
    }

    /// Builds the scope, nesting and lookup tables. `roots` (the `groups` key) limits the
    /// run to those groups and the groups nested in them; a root that is not among the
    /// loaded groups is a config error, never an empty scope.
    pub fn finish(&mut self, roots: &[String]) -> Result<(), Error> {
        let n = self.groups.len();
        self.children = (0..n)
            .map(|i| {
                let mut c: Vec<usize> = self.groups[i]
                    .members
                    .iter()
                    .filter_map(|m| self.by_dn.get(m).copied())
                    .filter(|&c| c != i)
                    .collect();
                c.sort_unstable();
                c.dedup();
                c
            })
            .collect();
        self.emitted = if roots.is_empty() {
            vec![true; n]
        } else {
            let mut seen = vec![false; n];
            let mut stack = Vec::new();
            for r in roots {
                let key = self.keys.key(b'd', &normalise_dn(r));
                let i = *self.by_dn.get(&key).ok_or_else(|| {
                    Error::Config(format!(
                        "groups: {r} was not found: it is not below base_dn or does not match \
                         group_filter (the run would otherwise import nobody)"
                    ))
                })?;
                stack.push(i);
            }
            while let Some(i) = stack.pop() {
                if !std::mem::replace(&mut seen[i], true) {
                    stack.extend(self.children[i].iter().copied());
                }
            }
            seen
        };
        let mut memberships: Vec<(Key, u32)> = Vec::new();
        let mut hashed: Vec<(String, u128)> = Vec::new();
        for i in 0..n {
            let g = &mut self.groups[i];
            let members = std::mem::take(&mut g.members);
            if !self.emitted[i] {
                continue;
            }
            hashed.push((format!("{}\u{1}{}\u{1}{}", g.anchor, g.name, g.dn), g.facts));
            // A member that is itself a group is a child group (above), not a membership.
            memberships.extend(
                (members.into_iter())
                    .filter(|m| !self.by_dn.contains_key(m))
                    .map(|m| (m, i as u32)),
            );
        }
        memberships.sort_unstable();
        memberships.dedup();
        hashed.sort_unstable();
        let mut h = Fnv::new();
        for (g, facts) in &hashed {
            h.field(g);
            h.field(&format!("{facts:032x}"));
            h.field("\u{2}");
        }
        self.hash = h.hex();
        self.memberships = memberships;
        Ok(())
    }

    /// A fingerprint of the groups the run sends and their members: a delta cursor holds it,
    /// so any membership change (or a deleted group) makes the next run a full one.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The groups the run sends, in load order.
    pub fn emitted(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.groups.len()).filter(|&i| self.emitted[i])
    }

    pub fn group(&self, i: usize) -> &Group {
        &self.groups[i]
    }

    /// The anchors of a sent group's child groups that are sent too.
    pub fn child_anchors(&self, i: usize) -> Vec<String> {
        self.children[i]
            .iter()
            .filter(|&&c| self.emitted[c])
            .map(|&c| self.groups[c].anchor.clone())
            .collect()
    }

    /// The sent groups a user is directly in: by its DN in `member`, its uid in
    /// `memberUid`, or its own `memberOf`.
    pub fn user_groups(&self, e: &RawEntry) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        let mut direct = |key: Key| {
            let from = self.memberships.partition_point(|&(k, _)| k < key);
            let to = from + self.memberships[from..].partition_point(|&(k, _)| k == key);
            out.extend(self.memberships[from..to].iter().map(|&(_, g)| g as usize));
        };
        direct(self.keys.key(b'd', &normalise_dn(&e.dn)));
        for uid in e.values("uid") {
            direct(
                self.keys
                    .key(b'u', &String::from_utf8_lossy(uid).trim().to_lowercase()),
            );
        }
        for dn in e.values("memberOf") {
            if let Some(&g) = self.by_dn.get(&self.keys.key(b'd', &member_dn(dn))) {
                if self.emitted[g] {
                    out.push(g);
                }
            }
        }
        let mut seen = HashSet::new();
        out.retain(|g| seen.insert(*g));
        out
    }
}

/// A member value as a normalised DN; uniqueMember may carry a `#'…'B` UID suffix.
fn member_dn(v: &[u8]) -> String {
    let s = String::from_utf8_lossy(v);
    let s = match s.rfind("#'") {
        Some(i) if s.ends_with("'B") => &s[..i],
        _ => &s[..],
    };
    normalise_dn(s)
}

fn add_member(g: &mut Group, keys: &Keys, kind: u8, name: &str) {
    g.members.push(keys.key(kind, name));
    g.facts = g.facts.wrapping_add(fact(kind, name));
}

/// Moves the values of `member;range=…` into the group; the next range when not complete.
fn take_range(g: &mut Group, keys: &Keys, e: &RawEntry, idx: usize) -> Option<Pending> {
    let mut next = None;
    for (name, values) in &e.attributes {
        let Some((base, _, hi)) = parse_range(name) else {
            continue;
        };
        if !base.eq_ignore_ascii_case("member") {
            continue;
        }
        for v in values {
            add_member(g, keys, b'd', &member_dn(v));
        }
        if let Some(hi) = hi {
            next = Some(Pending {
                group: idx,
                dn: g.dn.clone(),
                attribute: format!("member;range={}-*", hi + 1),
            });
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(dn: &str, attrs: &[(&str, &[&str])]) -> RawEntry {
        RawEntry {
            dn: dn.into(),
            attributes: attrs
                .iter()
                .map(|(n, vs)| {
                    (
                        n.to_string(),
                        vs.iter().map(|v| v.as_bytes().to_vec()).collect(),
                    )
                })
                .collect(),
        }
    }

    fn settings() -> Settings {
        Settings::from_json(r#"{"profile": "openldap"}"#).unwrap()
    }

    /// Staff ⊃ IT ⊃ {alice}; Staff ⊃ {carol}; Ops (posix) ⊃ bob; Other ⊃ dave.
    fn graph(roots: &[&str]) -> GroupGraph {
        let s = settings();
        let mut g = GroupGraph::default();
        for e in [
            entry(
                "cn=Staff,ou=groups,dc=x",
                &[
                    ("entryUUID", &["g-staff"]),
                    ("cn", &["Staff"]),
                    (
                        "member",
                        &["cn=IT,ou=groups,dc=x", "uid=carol,ou=people,dc=x"],
                    ),
                ],
            ),
            entry(
                "cn=IT,ou=groups,dc=x",
                &[
                    ("entryUUID", &["g-it"]),
                    ("cn", &["IT"]),
                    ("member", &["UID=Alice, ou=People,dc=x"]),
                ],
            ),
            entry(
                "cn=ops,ou=groups,dc=x",
                &[
                    ("entryUUID", &["g-ops"]),
                    ("cn", &["ops"]),
                    ("memberUid", &["Bob"]),
                ],
            ),
            entry(
                "cn=other,ou=groups,dc=x",
                &[
                    ("entryUUID", &["g-other"]),
                    ("cn", &["other"]),
                    ("uniqueMember", &["uid=dave,ou=people,dc=x#'0101'B"]),
                ],
            ),
        ] {
            assert_eq!(g.add(&e, &s), Ok(None));
        }
        let roots: Vec<String> = roots.iter().map(|r| r.to_string()).collect();
        g.finish(&roots).unwrap();
        g
    }

    fn names(g: &GroupGraph, idx: Vec<usize>) -> Vec<String> {
        let mut v: Vec<String> = idx.into_iter().map(|i| g.group(i).name.clone()).collect();
        v.sort();
        v
    }

    #[test]
    fn users_find_their_direct_groups_every_way() {
        let g = graph(&[]);
        let alice = entry("uid=alice,ou=people,dc=x", &[("uid", &["alice"])]);
        assert_eq!(names(&g, g.user_groups(&alice)), ["IT"]);
        let bob = entry("uid=bob,ou=people,dc=x", &[("uid", &["bob"])]);
        assert_eq!(names(&g, g.user_groups(&bob)), ["ops"]);
        let dave = entry("uid=dave,ou=people,dc=x", &[]);
        assert_eq!(names(&g, g.user_groups(&dave)), ["other"]);
        let erin = entry(
            "uid=erin,ou=people,dc=x",
            &[("memberOf", &["CN=Staff,OU=Groups,DC=X", "cn=unknown,dc=x"])],
        );
        assert_eq!(names(&g, g.user_groups(&erin)), ["Staff"]);
        assert_eq!(g.child_anchors(0), ["g-it"]);
        assert_eq!(g.emitted().count(), 4);
    }

    #[test]
    fn scope_is_the_named_groups_and_their_nested_groups() {
        let g = graph(&["CN=Staff,OU=Groups,DC=X"]);
        let sent: Vec<String> = g.emitted().map(|i| g.group(i).name.clone()).collect();
        assert_eq!(sent, ["Staff", "IT"]);
        let alice = entry("uid=alice,ou=people,dc=x", &[("uid", &["alice"])]);
        assert_eq!(names(&g, g.user_groups(&alice)), ["IT"], "nested: in scope");
        let bob = entry("uid=bob,ou=people,dc=x", &[("uid", &["bob"])]);
        assert!(g.user_groups(&bob).is_empty(), "not in scope");
    }

    #[test]
    fn an_unknown_scope_group_is_a_config_error() {
        let s = settings();
        let mut g = GroupGraph::default();
        g.add(&entry("cn=a,dc=x", &[("entryUUID", &["a"])]), &s)
            .unwrap();
        let err = g.finish(&["cn=b,dc=x".to_string()]).unwrap_err();
        assert!(matches!(err, Error::Config(m) if m.contains("cn=b,dc=x")));
    }

    #[test]
    fn nesting_cycles_end() {
        let s = settings();
        let mut g = GroupGraph::default();
        g.add(
            &entry(
                "cn=a,dc=x",
                &[("entryUUID", &["a"]), ("member", &["cn=b,dc=x"])],
            ),
            &s,
        )
        .unwrap();
        g.add(
            &entry(
                "cn=b,dc=x",
                &[("entryUUID", &["b"]), ("member", &["cn=a,dc=x"])],
            ),
            &s,
        )
        .unwrap();
        g.finish(&["cn=a,dc=x".into()]).unwrap();
        assert_eq!(g.emitted().count(), 2);
    }

    #[test]
    fn ranges_parse_and_continue() {
        assert_eq!(
            parse_range("member;range=0-1499"),
            Some(("member", 0, Some(1499)))
        );
        assert_eq!(
            parse_range("member;range=1500-*"),
            Some(("member", 1500, None))
        );
        assert_eq!(parse_range("member"), None);
        assert_eq!(parse_range("member;range=x-1"), None);

        let s = settings();
        let mut g = GroupGraph::default();
        let first: Vec<String> = (0..1500).map(|i| format!("uid=u{i},dc=x")).collect();
        let first: Vec<&str> = first.iter().map(String::as_str).collect();
        let big = entry(
            "cn=big,dc=x",
            &[
                ("entryUUID", &["big"]),
                ("member", &[]),
                ("member;range=0-1499", &first),
            ],
        );
        let p = g.add(&big, &s).unwrap().expect("more to fetch");
        assert_eq!(p.attribute, "member;range=1500-*");
        assert_eq!(p.dn, "cn=big,dc=x");
        let rest = entry(
            "cn=big,dc=x",
            &[("member;range=1500-*", &["uid=last,dc=x"])],
        );
        assert_eq!(g.add_range(&p, &rest), Ok(None));
        g.finish(&[]).unwrap();
        let last = entry("uid=last,dc=x", &[]);
        assert_eq!(g.user_groups(&last), [0]);
        let u0 = entry("uid=u0,dc=x", &[]);
        assert_eq!(g.user_groups(&u0), [0]);
    }

    #[test]
    fn hash_follows_membership() {
        let a = graph(&[]);
        let b = graph(&[]);
        assert_eq!(a.hash(), b.hash());
        let s = settings();
        let mut c = GroupGraph::default();
        c.add(
            &entry(
                "cn=a,dc=x",
                &[("entryUUID", &["a"]), ("member", &["uid=1,dc=x"])],
            ),
            &s,
        )
        .unwrap();
        c.finish(&[]).unwrap();
        let mut d = GroupGraph::default();
        d.add(
            &entry(
                "cn=a,dc=x",
                &[("entryUUID", &["a"]), ("member", &["uid=2,dc=x"])],
            ),
            &s,
        )
        .unwrap();
        d.finish(&[]).unwrap();
        assert_ne!(c.hash(), d.hash());
        assert_ne!(a.hash(), c.hash());
        // The order the server lists members in does not count.
        let listed = |members: &[&str]| {
            let mut g = GroupGraph::default();
            g.add(
                &entry("cn=a,dc=x", &[("entryUUID", &["a"]), ("member", members)]),
                &s,
            )
            .unwrap();
            g.finish(&[]).unwrap();
            g.hash().to_string()
        };
        assert_eq!(
            listed(&["uid=1,dc=x", "uid=2,dc=x"]),
            listed(&["uid=2,dc=x", "uid=1,dc=x"])
        );
        assert_ne!(
            listed(&["uid=1,dc=x", "uid=2,dc=x"]),
            listed(&["uid=1,dc=x"])
        );
    }

    #[test]
    fn groups_without_anchor_fail() {
        let s = settings();
        let mut g = GroupGraph::default();
        assert!(g.add(&entry("cn=a,dc=x", &[("cn", &["a"])]), &s).is_err());
        assert!(g.is_empty());
    }
}
