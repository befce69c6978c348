//! The fast path: an entry whose raw hash is the one its link last wrote is unchanged, known
//! without mapping or staging it. Also the set of users paired so far, which both paths share.

use super::Run;
use crate::store::db::Sql;
use anyhow::Result;
use std::collections::HashMap;
use std::sync::Arc;

/// Sources with more links than this skip the in-memory unchanged check (about 20 bytes a
/// link), so memory stays bounded; their unchanged entries take the mapped path.
const MAX_FAST_LINKS: usize = 4_000_000;

/// The fast path's state for one run.
pub(super) struct Fast {
    /// Raw hash → user id, for this source's links whose user is as that hash last wrote it.
    /// Shared read-only with a mapping script's thread (`Run::known_raw`).
    links: Arc<FastLinks>,
    /// Whether `links` was loaded (the source is not too large for it).
    pub(super) loaded: bool,
    /// For each of `links.pairs` that took the unchanged path: its locator in `locators`
    /// (start, length), to name it should a later entry duplicate it.
    at: Vec<Option<(u32, u32)>>,
    locators: String,
    /// User id → index in `links.pairs`; built on the first duplicate only.
    by_user: HashMap<i64, usize>,
}

impl Fast {
    /// Loads this source's links that still hold a raw hash. With several sources per user
    /// (`owned_only`), only the links of users this source owns: a joiner's entries take the
    /// staged path, which knows them unchanged by the link's record.
    pub(super) fn load(
        tx: &crate::store::db::Tx<'_>,
        source_id: i64,
        owned_only: bool,
    ) -> Result<Fast> {
        let t = std::time::Instant::now();
        let mut fast = Vec::new();
        let mut loaded = true;
        {
            let mut stmt = tx.prepare(if owned_only {
                "SELECT l.raw_hash, l.user_id FROM links l
                 JOIN users u ON u.id = l.user_id AND u.source_id = l.source_id
                 WHERE l.source_id = ?1 AND l.raw_hash IS NOT NULL"
            } else {
                "SELECT raw_hash, user_id FROM links WHERE source_id = ?1 AND raw_hash IS NOT NULL"
            })?;
            let mut rows = stmt.query([source_id])?;
            while let Some(r) = rows.next()? {
                if fast.len() == MAX_FAST_LINKS {
                    loaded = false;
                    fast = Vec::new();
                    break;
                }
                fast.push((r.get::<_, i64>(0)? as u64, r.get(1)?));
            }
        }
        let links = Arc::new(FastLinks::new(fast));
        tracing::debug!("{} links loaded in {:?}", links.pairs.len(), t.elapsed());
        Ok(Fast {
            links,
            loaded,
            at: Vec::new(),
            locators: String::new(),
            by_user: HashMap::new(),
        })
    }

    /// Remembers where the entry at `links.pairs[i]` was, for a later duplicate's message.
    fn remember(&mut self, i: usize, locator: &str) {
        if self.at.is_empty() {
            self.at = vec![None; self.links.pairs.len()];
        }
        self.at[i] = Some((self.locators.len() as u32, locator.len() as u32));
        self.locators.push_str(locator);
    }

    /// Where the entry that took the unchanged path for `user_id` was, if one did.
    pub(super) fn locator(&mut self, user_id: i64) -> Option<&str> {
        if self.by_user.is_empty() {
            self.by_user = (self.links.pairs.iter().enumerate())
                .map(|(i, p)| (p.1, i))
                .collect();
        }
        let (start, len) =
            (self.by_user.get(&user_id)).and_then(|&i| self.at.get(i).copied().flatten())?;
        Some(&self.locators[start as usize..(start + len) as usize])
    }
}

/// The raw hashes this run's source last wrote, for a thread that decides before staging
/// whether an entry can take the unchanged path (a mapping script's, which then skips it).
#[derive(Clone)]
pub struct KnownRaw(Arc<FastLinks>);

impl KnownRaw {
    pub fn contains(&self, raw: i64) -> bool {
        self.0.get(raw).is_some()
    }
}

impl Run<'_> {
    /// The raw hashes an unchanged entry of this source would have.
    pub fn known_raw(&self) -> KnownRaw {
        KnownRaw(self.fast.links.clone())
    }

    /// The cheap path for an unchanged entry: its raw hash is the one its link last wrote,
    /// and the user is still as written then. True if it was counted unchanged; false means
    /// the entry must be mapped and staged (a duplicate goes there too, to be reported).
    pub fn stage_unchanged(&mut self, raw: i64, locator: &str) -> bool {
        let Some(i) = self.fast.links.get(raw) else {
            return false;
        };
        let id = self.fast.links.pairs[i].1;
        if !self.seen.users.insert(id) {
            return false;
        }
        // The links in `fast` are of active users of this source.
        self.seen.own += 1;
        self.seen.own_active += 1;
        self.fast.remember(i, locator);
        self.report.counts.unchanged += 1;
        true
    }
}

/// Raw hash → user id, as an array bucketed by the hashes' top bits: built in two linear
/// passes (a hash map's random inserts cost more than the sync saves), read in two probes.
#[derive(Default)]
struct FastLinks {
    /// (raw hash as unsigned, user id), grouped by bucket.
    pairs: Vec<(u64, i64)>,
    /// `pairs[starts[b]..starts[b + 1]]` hold the hashes whose top bits are `b`.
    starts: Vec<u32>,
    shift: u32,
}

impl FastLinks {
    fn new(unsorted: Vec<(u64, i64)>) -> FastLinks {
        // Placed by their top bits in one counting pass; within a bucket, order is moot.
        let bits = (unsorted.len().max(2).ilog2()).clamp(1, 24);
        let shift = 64 - bits;
        let mut starts = vec![0u32; (1 << bits) + 1];
        for p in &unsorted {
            starts[(p.0 >> shift) as usize + 1] += 1;
        }
        for b in 1..starts.len() {
            starts[b] += starts[b - 1];
        }
        let mut next = starts.clone();
        let mut pairs = vec![(0, 0); unsorted.len()];
        for p in unsorted {
            let at = &mut next[(p.0 >> shift) as usize];
            pairs[*at as usize] = p;
            *at += 1;
        }
        FastLinks {
            pairs,
            starts,
            shift,
        }
    }

    /// The index of `raw` in `pairs`.
    fn get(&self, raw: i64) -> Option<usize> {
        let key = raw as u64;
        let b = (key >> self.shift) as usize;
        let (from, to) = (
            *self.starts.get(b)? as usize,
            *self.starts.get(b + 1)? as usize,
        );
        self.pairs[from..to]
            .iter()
            .position(|p| p.0 == key)
            .map(|i| from + i)
    }
}

/// User ids paired in this run, a bit per id.
pub(super) struct SeenSet(Vec<u64>);

impl SeenSet {
    /// Sized for ids up to `max_id`; larger ids grow it.
    pub(super) fn with_max(max_id: i64) -> SeenSet {
        SeenSet(vec![0; max_id as usize / 64 + 1])
    }

    /// Marks `user_id` seen; false if it already was.
    pub(super) fn insert(&mut self, user_id: i64) -> bool {
        let (word, bit) = (user_id as usize / 64, 1u64 << (user_id % 64));
        if word >= self.0.len() {
            self.0.resize(word + 1, 0);
        }
        let fresh = self.0[word] & bit == 0;
        self.0[word] |= bit;
        fresh
    }

    pub(super) fn contains(&self, user_id: i64) -> bool {
        let word = user_id as usize / 64;
        word < self.0.len() && self.0[word] & (1u64 << (user_id % 64)) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The user id `raw` finds, the way `stage_unchanged` reads it.
    fn find(f: &FastLinks, raw: i64) -> Option<i64> {
        f.get(raw).map(|i| f.pairs[i].1)
    }

    #[test]
    fn fast_links_find_every_pair_of_an_unsorted_list() {
        // Spread over the whole key range, both signs, in no order (an odd multiplier is a
        // bijection, so no two hashes are equal).
        let pairs: Vec<(u64, i64)> = (0..5_000u64)
            .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15), i as i64 + 1))
            .collect();
        let f = FastLinks::new(pairs.clone());
        assert_eq!(f.pairs.len(), pairs.len());
        for (raw, id) in &pairs {
            assert_eq!(find(&f, *raw as i64), Some(*id), "raw {raw:#x}");
        }
        // Buckets are contiguous and in order of their top bits.
        for w in f.pairs.windows(2) {
            assert!(w[0].0 >> f.shift <= w[1].0 >> f.shift);
        }
    }

    #[test]
    fn fast_links_miss_what_is_not_there() {
        let f = FastLinks::new(vec![(10, 1), (u64::MAX, 2), (1 << 63, 3)]);
        assert_eq!(find(&f, 10), Some(1));
        assert_eq!(find(&f, -1), Some(2));
        assert_eq!(find(&f, i64::MIN), Some(3));
        for raw in [0, 11, 9, i64::MAX, -2, i64::MIN + 1] {
            assert_eq!(find(&f, raw), None, "raw {raw}");
        }
    }

    #[test]
    fn fast_links_tell_apart_hashes_in_one_bucket() {
        // Same top bits, different low bits: one bucket, several entries.
        let top = 0xABCD_u64 << 48;
        let pairs: Vec<(u64, i64)> = (0..50).map(|i| (top | (i * 3), i as i64 + 100)).collect();
        let f = FastLinks::new(pairs);
        let b = (top >> f.shift) as usize;
        assert!(f.starts[b + 1] - f.starts[b] > 1, "all in one bucket");
        for i in 0..50u64 {
            assert_eq!(find(&f, (top | (i * 3)) as i64), Some(i as i64 + 100));
            if i % 3 != 0 {
                assert_eq!(find(&f, (top | i) as i64), None);
            }
        }
    }

    #[test]
    fn fast_links_empty_finds_nothing() {
        for f in [FastLinks::new(Vec::new()), FastLinks::default()] {
            assert_eq!(find(&f, 0), None);
            assert_eq!(find(&f, -1), None);
            assert_eq!(find(&f, i64::MIN), None);
        }
    }

    #[test]
    fn seen_set_insert_is_true_only_the_first_time() {
        let mut s = SeenSet::with_max(200);
        assert!(!s.contains(7));
        assert!(s.insert(7));
        assert!(s.contains(7));
        assert!(!s.insert(7));
        // Neighbours in the same word are untouched.
        assert!(!s.contains(6) && !s.contains(8));
        assert!(s.insert(0) && s.insert(63) && s.insert(64));
        assert!(!s.insert(63) && !s.insert(64));
    }

    #[test]
    fn seen_set_grows_for_ids_past_its_size() {
        let mut s = SeenSet::with_max(0);
        assert_eq!(s.0.len(), 1);
        let big = 10_000_000;
        assert!(!s.contains(big), "an id past the end is not seen");
        assert!(s.insert(big));
        assert!(s.0.len() > big as usize / 64);
        assert!(s.contains(big));
        assert!(!s.insert(big));
        assert!(!s.contains(big - 1) && !s.contains(big + 1));
        assert!(s.insert(1));
    }

    #[test]
    fn fast_names_the_entry_that_took_the_unchanged_path() {
        let mut f = Fast {
            links: Arc::new(FastLinks::new(vec![(5, 50), (6, 60), (7, 70)])),
            loaded: true,
            at: Vec::new(),
            locators: String::new(),
            by_user: HashMap::new(),
        };
        let i = f.links.get(6).unwrap();
        f.remember(i, "line 3");
        let j = f.links.get(7).unwrap();
        f.remember(j, "line 9");
        assert_eq!(f.locator(60), Some("line 3"));
        assert_eq!(f.locator(70), Some("line 9"));
        assert_eq!(f.locator(50), None, "linked but not met");
        assert_eq!(f.locator(99), None, "not linked");
    }
}
