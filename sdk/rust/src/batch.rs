//! A run: the author's listing of items, and the session that batches it for the host.
//!
//! Users whose attribute names match the batch's columns (the first user's names) travel as
//! rows, so the names cross the boundary once per batch; others travel as objects. Either
//! way the host sees the same object.

use crate::bindings::exports::roster::plugin::connector::{GuestSession, RunEnd};
use crate::bindings::roster::plugin::types::{
    Batch, Entry, FailedEntry, PluginError, Removal, Row, RunMode,
};
use crate::item::{Item, User, Yield};
use crate::{Error, Kind, TestReport};
use std::cell::RefCell;

/// Entries per batch (the host's cap is 10,000).
pub const BATCH_ENTRIES: usize = 2000;
/// Bytes of text per batch before it is sent early (the host's cap is 64 MiB).
pub const BATCH_BYTES: usize = 8 << 20;

/// What the host asks of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Full: list everything. Delta: only changes since `cursor`. A connector may answer a
    /// delta request with a full run ([`Run::mode`]).
    pub mode: RunMode,
    /// The cursor this connector returned at the end of the last committed run.
    pub cursor: Option<String>,
}

impl Request {
    pub fn full() -> Request {
        Request {
            mode: RunMode::Full,
            cursor: None,
        }
    }

    /// A delta run from this cursor.
    pub fn delta(cursor: impl Into<String>) -> Request {
        Request {
            mode: RunMode::Delta,
            cursor: Some(cursor.into()),
        }
    }

    /// The cursor, when the host asks for a delta run.
    pub fn delta_cursor(&self) -> Option<&str> {
        match self.mode {
            RunMode::Delta => self.cursor.as_deref(),
            RunMode::Full => None,
        }
    }
}

/// How a run ended: its real mode, the cursor for the next delta run, notices for the admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct End {
    pub mode: RunMode,
    pub cursor: Option<String>,
    pub notices: Vec<String>,
}

/// A source of items that learns how the run ends only at its end (a delta link on the last
/// page). Most connectors hand an iterator to [`Run::new`] instead.
pub trait Listing: 'static {
    /// The next item, or None when the listing is complete.
    fn next(&mut self) -> Result<Option<Item>, Error>;
    /// Called after the last item; may set the cursor, the mode and notices.
    fn finish(&mut self, _end: &mut End) -> Result<(), Error> {
        Ok(())
    }
}

struct Iter<I>(I);

impl<I> Listing for Iter<I>
where
    I: Iterator + 'static,
    I::Item: Yield,
{
    fn next(&mut self) -> Result<Option<Item>, Error> {
        self.0.next().map(Yield::into_item).transpose()
    }
}

/// One run: a listing of items and how it ends.
pub struct Run {
    listing: Box<dyn Listing>,
    end: End,
}

impl Run {
    /// A full run over `items`: users, groups, [`Item`]s, or `Result`s of them. Iterators are
    /// pulled lazily, one batch at a time.
    pub fn new<I>(items: I) -> Run
    where
        I: IntoIterator + 'static,
        I::IntoIter: 'static,
        I::Item: Yield,
    {
        Run::from_listing(Iter(items.into_iter()))
    }

    /// A run over a [`Listing`].
    pub fn from_listing(listing: impl Listing) -> Run {
        Run {
            listing: Box::new(listing),
            end: End {
                mode: RunMode::Full,
                cursor: None,
                notices: Vec::new(),
            },
        }
    }

    /// The run's mode (full by default). A delta run must return a cursor.
    pub fn mode(mut self, mode: RunMode) -> Run {
        self.end.mode = mode;
        self
    }

    /// The cursor for the next delta run, when known before the listing ends.
    pub fn cursor(mut self, cursor: impl Into<String>) -> Run {
        self.end.cursor = Some(cursor.into());
        self
    }

    /// Something the admin should know about this run.
    pub fn notice(mut self, notice: impl Into<String>) -> Run {
        self.end.notices.push(notice.into());
        self
    }

    /// Every item, then the end: for an author's unit tests.
    pub fn collect(mut self) -> Result<(Vec<Item>, End), Error> {
        let mut items = Vec::new();
        while let Some(item) = self.listing.next()? {
            items.push(item);
        }
        self.listing.finish(&mut self.end)?;
        Ok((items, self.end))
    }
}

/// A batch being filled.
#[derive(Default)]
struct Builder {
    columns: Option<Vec<String>>,
    entries: Vec<Entry>,
    bytes: usize,
}

impl Builder {
    fn full(&self) -> bool {
        self.entries.len() >= BATCH_ENTRIES || self.bytes >= BATCH_BYTES
    }

    fn push(&mut self, item: Item) {
        self.bytes += size(&item);
        let entry = match item {
            Item::User(u) => self.user(u),
            Item::Group(g) => Entry::Object(g.into_object()),
            Item::Removed { kind, id } => Entry::Removed(Removal { kind, id }),
            Item::Failed { locator, reason } => Entry::Failed(FailedEntry { locator, reason }),
        };
        self.entries.push(entry);
    }

    fn user(&mut self, u: User) -> Entry {
        let columns = (self.columns)
            .get_or_insert_with(|| u.attributes.iter().map(|(n, _)| n.clone()).collect());
        if !u.attributes.iter().map(|(n, _)| n).eq(columns.iter()) {
            return Entry::Object(u.into_object());
        }
        Entry::Row(Row {
            kind: Kind::User,
            id: u.id,
            locator: u.locator,
            values: u.attributes.into_iter().map(|(_, v)| v).collect(),
            member_of: u.member_of,
            members: Vec::new(),
            parent: None,
        })
    }

    fn finish(self) -> Option<Batch> {
        (!self.entries.is_empty()).then(|| Batch {
            columns: self.columns.unwrap_or_default(),
            entries: self.entries,
        })
    }
}

/// Roughly the bytes an item takes in a batch.
fn size(item: &Item) -> usize {
    let attrs = |a: &[(String, Vec<String>)]| -> usize {
        a.iter()
            .map(|(n, v)| n.len() + v.iter().map(|s| s.len() + 8).sum::<usize>() + 16)
            .sum()
    };
    let ids = |l: &[String]| -> usize { l.iter().map(|s| s.len() + 8).sum() };
    64 + match item {
        Item::User(u) => u.id.len() + attrs(&u.attributes) + ids(&u.member_of),
        Item::Group(g) => g.id.len() + g.name.len() + attrs(&g.attributes) + ids(&g.members),
        Item::Removed { id, .. } => id.len(),
        Item::Failed { locator, reason } => locator.len() + reason.len(),
    }
}

/// Batches of one run, pulled by the host.
pub(crate) struct BatchRun {
    run: Run,
    done: bool,
}

impl BatchRun {
    pub(crate) fn next_batch(&mut self) -> Result<Option<Batch>, Error> {
        let mut b = Builder::default();
        while !self.done && !b.full() {
            match self.run.listing.next()? {
                Some(item) => b.push(item),
                None => self.done = true,
            }
        }
        Ok(b.finish())
    }

    pub(crate) fn finish(&mut self) -> Result<End, Error> {
        let mut end = self.run.end.clone();
        self.run.listing.finish(&mut end)?;
        Ok(end)
    }
}

/// The `session` resource the host holds for one run.
#[doc(hidden)]
pub struct Session(RefCell<BatchRun>);

impl Session {
    pub(crate) fn new(run: Run) -> Session {
        Session(RefCell::new(BatchRun { run, done: false }))
    }
}

impl GuestSession for Session {
    fn next_batch(&self) -> Result<Option<Batch>, PluginError> {
        Ok(self.0.borrow_mut().next_batch()?)
    }

    fn finish(&self) -> Result<RunEnd, PluginError> {
        let end = self.0.borrow_mut().finish()?;
        Ok(RunEnd {
            mode: end.mode,
            cursor: end.cursor,
            notices: end.notices,
        })
    }
}

/// The default `test`: a full listing, counted.
pub(crate) fn test_by_listing(mut run: Run) -> Result<TestReport, Error> {
    let mut report = TestReport {
        users: Some(0),
        groups: Some(0),
        ..Default::default()
    };
    let mut failed = 0;
    while let Some(item) = run.listing.next()? {
        match item {
            Item::User(u) => {
                *report.users.as_mut().unwrap() += 1;
                report.sample.get_or_insert(u);
            }
            Item::Group(_) => *report.groups.as_mut().unwrap() += 1,
            Item::Failed { .. } => failed += 1,
            Item::Removed { .. } => {}
        }
    }
    if failed > 0 {
        report
            .messages
            .push(format!("{failed} entries could not be read"));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Group;

    fn batches(run: Run) -> Vec<Batch> {
        let mut b = BatchRun { run, done: false };
        std::iter::from_fn(|| b.next_batch().unwrap()).collect()
    }

    #[test]
    fn users_with_the_batch_columns_are_rows_others_objects() {
        let items: Vec<Item> = vec![
            Item::User(User::new("a").attr("username", "a").attr("full_name", "A")),
            Item::User(User::new("b").attr("username", "b").attr("full_name", "B")),
            Item::User(User::new("c").attr("username", "c")),
            Item::Group(Group::new("g", "Staff").member("a")),
            Item::removed_user("gone"),
            Item::failed("line 9", "no id"),
        ];
        let out = batches(Run::new(items));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].columns, ["username", "full_name"]);
        let kinds: Vec<&str> = (out[0].entries.iter())
            .map(|e| match e {
                Entry::Row(_) => "row",
                Entry::Object(_) => "object",
                Entry::Removed(_) => "removed",
                Entry::Failed(_) => "failed",
            })
            .collect();
        assert_eq!(
            kinds,
            ["row", "row", "object", "object", "removed", "failed"]
        );
        let Entry::Object(g) = &out[0].entries[3] else {
            unreachable!()
        };
        assert_eq!(
            (g.attributes[0].name.as_str(), g.members.as_slice()),
            ("name", &["a".to_string()][..])
        );
    }

    #[test]
    fn a_long_listing_is_cut_into_capped_batches_lazily() {
        let n = BATCH_ENTRIES * 2 + 5;
        let out = batches(Run::new((0..n).map(|i| User::new(i.to_string()))));
        let sizes: Vec<usize> = out.iter().map(|b| b.entries.len()).collect();
        assert_eq!(sizes, [BATCH_ENTRIES, BATCH_ENTRIES, 5]);
        let big = "x".repeat(1 << 20);
        let out =
            batches(Run::new((0..20).map(move |i| {
                User::new(i.to_string()).attr("blob", big.clone())
            })));
        assert!(
            out.len() >= 2 && out.iter().all(|b| b.entries.len() <= 9),
            "{}",
            out.len()
        );
    }

    #[test]
    fn an_error_in_the_listing_fails_the_batch_and_the_end_carries_the_cursor() {
        let items = vec![Ok(User::new("a")), Err(Error::bad_data("truncated page"))];
        let mut b = BatchRun {
            run: Run::new(items),
            done: false,
        };
        assert_eq!(
            b.next_batch().err(),
            Some(Error::bad_data("truncated page"))
        );
        let (items, end) = Run::new(Vec::<User>::new())
            .mode(RunMode::Delta)
            .cursor("c1")
            .collect()
            .unwrap();
        assert!(items.is_empty());
        assert_eq!(
            (end.mode, end.cursor.as_deref()),
            (RunMode::Delta, Some("c1"))
        );
    }
}
