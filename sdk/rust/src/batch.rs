//! A run: the author's listing of items, and the session that batches it for the host.
//!
//! Users whose attribute names match the batch's columns (the run's fixed
//! [`Run::columns`], else the first user's names) travel as rows, so the names cross the
//! boundary once per batch; others travel as objects. [`Row`]s are rows as they are. Either
//! way the host sees the same object.

use crate::bindings::exports::roster::plugin::connector::{GuestSession, RunEnd};
use crate::bindings::roster::plugin::types::{
    Batch, Entry, FailedEntry, PluginError, Removal, Row as WitRow, RunMode,
};
use crate::item::{Item, Row, User, Yield};
use crate::{Error, Kind, TestReport};
use std::cell::RefCell;
use std::collections::VecDeque;
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

/// A listing that cuts its own batches, for a connector whose work comes in bounded steps
/// (a page of a paged search): each host call is one step, however few items it yields. An
/// empty batch is sent as it is (the run goes on); `None` ends the listing. Batches must stay
/// under the host's caps (10,000 entries, 64 MiB).
pub trait Batches: 'static {
    /// The next batch, or None when the listing is complete.
    fn next_batch(&mut self) -> Result<Option<crate::Batch>, Error>;
    /// Called after the last batch; may set the cursor, the mode and notices.
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

enum Source {
    Items(Box<dyn Listing>),
    Batches(Box<dyn Batches>),
}

/// One run: a listing of items and how it ends.
pub struct Run {
    source: Source,
    /// Fixed columns of an item-by-item run; the current batch's when flattening batches.
    columns: Option<Vec<String>>,
    /// The rest of a batch being flattened.
    pending: VecDeque<Item>,
    end: End,
}

impl Run {
    /// A full run over `items`: users, rows, groups, [`Item`]s, or `Result`s of them.
    /// Iterators are pulled lazily, one batch at a time.
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
        Run::with_source(Source::Items(Box::new(listing)))
    }

    /// A run over [`Batches`] the connector cuts itself.
    pub fn from_batches(batches: impl Batches) -> Run {
        Run::with_source(Source::Batches(Box::new(batches)))
    }

    fn with_source(source: Source) -> Run {
        Run {
            source,
            columns: None,
            pending: VecDeque::new(),
            end: End {
                mode: RunMode::Full,
                cursor: None,
                notices: Vec::new(),
            },
        }
    }

    /// The columns of every batch of an item-by-item run: what its [`Row`]s' values are
    /// (needed to yield rows), and what users with these attribute names are sent as.
    pub fn columns(mut self, columns: Vec<String>) -> Run {
        self.columns = Some(columns);
        self
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

    /// Every item (rows as users with their column names), then the end: for an author's
    /// unit tests.
    pub fn collect(mut self) -> Result<(Vec<Item>, End), Error> {
        let mut items = Vec::new();
        while let Some(item) = self.next_item()? {
            items.push(item);
        }
        let mut end = self.end.clone();
        self.finish_listing(&mut end)?;
        Ok((items, end))
    }

    /// The next item, rows as users, whatever the source (batches are flattened): for
    /// `collect` and the default `test`.
    fn next_item(&mut self) -> Result<Option<Item>, Error> {
        let item = match &mut self.source {
            Source::Items(l) => l.next()?,
            Source::Batches(b) => loop {
                if let Some(item) = self.pending.pop_front() {
                    break Some(item);
                }
                match b.next_batch()? {
                    Some(batch) => {
                        self.columns = Some(batch.columns);
                        self.pending = batch.items.into();
                    }
                    None => break None,
                }
            },
        };
        Ok(item.map(|item| match item {
            Item::Row(r) => Item::User(r.into_user(self.columns.as_deref().unwrap_or(&[]))),
            other => other,
        }))
    }

    fn finish_listing(&mut self, end: &mut End) -> Result<(), Error> {
        match &mut self.source {
            Source::Items(l) => l.finish(end),
            Source::Batches(b) => b.finish(end),
        }
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

    fn push(&mut self, item: Item) -> Result<(), Error> {
        self.bytes += size(&item);
        let entry = match item {
            Item::User(u) => self.user(u),
            Item::Row(r) => self.row(r)?,
            Item::Group(g) => Entry::Object(g.into_object()),
            Item::Removed { kind, id } => Entry::Removed(Removal { kind, id }),
            Item::Failed { locator, reason } => Entry::Failed(FailedEntry { locator, reason }),
        };
        self.entries.push(entry);
        Ok(())
    }

    fn user(&mut self, u: User) -> Entry {
        let columns = (self.columns)
            .get_or_insert_with(|| u.attributes.iter().map(|(n, _)| n.clone()).collect());
        if !u.attributes.iter().map(|(n, _)| n).eq(columns.iter()) {
            return Entry::Object(u.into_object());
        }
        Entry::Row(WitRow {
            kind: Kind::User,
            id: u.id,
            locator: u.locator,
            values: u.attributes.into_iter().map(|(_, v)| v).collect(),
            member_of: u.member_of,
            members: Vec::new(),
            parent: None,
        })
    }

    /// A row as it is: the host checks that it has one value list per column.
    fn row(&mut self, r: Row) -> Result<Entry, Error> {
        if self.columns.is_none() {
            return Err(Error::bad_data(format!(
                "row {}: a row needs columns (Run::columns)",
                r.id
            )));
        }
        Ok(Entry::Row(WitRow {
            kind: Kind::User,
            id: r.id,
            locator: r.locator,
            values: r.values,
            member_of: r.member_of,
            members: Vec::new(),
            parent: None,
        }))
    }

    fn finish(self) -> Option<Batch> {
        (!self.entries.is_empty()).then(|| self.into_batch())
    }

    fn into_batch(self) -> Batch {
        Batch {
            columns: self.columns.unwrap_or_default(),
            entries: self.entries,
        }
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
        Item::Row(r) => {
            let values: usize = (r.values.iter())
                .map(|v| v.iter().map(|s| s.len() + 8).sum::<usize>() + 16)
                .sum();
            r.id.len() + values + ids(&r.member_of)
        }
        Item::Group(g) => g.id.len() + g.name.len() + attrs(&g.attributes) + ids(&g.members),
        Item::Removed { id, .. } => id.len(),
        Item::Failed { locator, reason } => locator.len() + reason.len(),
    }
}

/// A connector's own [`crate::Batch`] as the host's: rows as they are, users as rows when their names
/// are the batch's columns.
pub(crate) fn into_wit(batch: crate::Batch) -> Result<Batch, Error> {
    let mut b = Builder {
        columns: Some(batch.columns),
        entries: Vec::with_capacity(batch.items.len()),
        bytes: 0,
    };
    for item in batch.items {
        b.push(item)?;
    }
    Ok(b.into_batch())
}

/// Batches of one run, pulled by the host.
pub(crate) struct BatchRun {
    run: Run,
    done: bool,
}

impl BatchRun {
    pub(crate) fn next_batch(&mut self) -> Result<Option<Batch>, Error> {
        if self.done {
            return Ok(None);
        }
        let listing = match &mut self.run.source {
            Source::Batches(b) => {
                let batch = b.next_batch()?;
                self.done = batch.is_none();
                return batch.map(into_wit).transpose();
            }
            Source::Items(l) => l,
        };
        let mut b = Builder {
            columns: self.run.columns.clone(),
            ..Default::default()
        };
        while !self.done && !b.full() {
            match listing.next()? {
                Some(item) => b.push(item)?,
                None => self.done = true,
            }
        }
        Ok(b.finish())
    }

    pub(crate) fn finish(&mut self) -> Result<End, Error> {
        let mut end = self.run.end.clone();
        self.run.finish_listing(&mut end)?;
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
    while let Some(item) = run.next_item()? {
        match item {
            Item::User(u) => {
                *report.users.as_mut().unwrap() += 1;
                report.sample.get_or_insert(u);
            }
            // `next_item` hands rows over as users.
            Item::Row(_) => *report.users.as_mut().unwrap() += 1,
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

    #[test]
    fn rows_of_fixed_columns_travel_as_they_are() {
        let columns = vec!["username".to_string(), "email".to_string()];
        let items: Vec<Item> = vec![
            Item::Row(Row::new("a", vec![vec!["a".into()], vec![]]).locator("line 2")),
            Item::User(User::new("b").attr("username", "b").attr("email", "b@x")),
            Item::User(User::new("c").attr("username", "c")),
        ];
        let out = batches(Run::new(items).columns(columns.clone()));
        assert_eq!(out[0].columns, columns);
        let Entry::Row(r) = &out[0].entries[0] else {
            panic!("{:?}", out[0].entries[0])
        };
        assert_eq!(
            (r.id.as_str(), r.locator.as_deref(), r.values.len()),
            ("a", Some("line 2"), 2)
        );
        assert!(matches!(out[0].entries[1], Entry::Row(_)));
        assert!(matches!(out[0].entries[2], Entry::Object(_)));
        let (items, _) = Run::new([Row::new("a", vec![vec!["a".into()], vec![]])])
            .columns(columns)
            .collect()
            .unwrap();
        assert_eq!(
            items,
            [Item::User(
                User::new("a")
                    .attr("username", "a")
                    .values("email", Vec::<String>::new())
            )]
        );
    }

    #[test]
    fn a_row_without_columns_fails_the_batch() {
        let mut b = BatchRun {
            run: Run::new([Row::new("a", vec![])]),
            done: false,
        };
        assert!(matches!(b.next_batch(), Err(Error::BadData(_))));
    }

    struct Steps(Vec<crate::Batch>);

    impl Batches for Steps {
        fn next_batch(&mut self) -> Result<Option<crate::Batch>, Error> {
            Ok((!self.0.is_empty()).then(|| self.0.remove(0)))
        }
        fn finish(&mut self, end: &mut End) -> Result<(), Error> {
            end.cursor = Some("c2".into());
            Ok(())
        }
    }

    #[test]
    fn own_batches_are_sent_one_per_call_empty_ones_too() {
        let steps = || {
            Steps(vec![
                crate::Batch::default(),
                crate::Batch {
                    columns: vec!["uid".into()],
                    items: vec![
                        Item::Row(Row::new("u1", vec![vec!["u1".into()]]).member_of("g")),
                        Item::Group(Group::new("g", "").attr("cn", "Staff")),
                    ],
                },
            ])
        };
        let mut b = BatchRun {
            run: Run::from_batches(steps()),
            done: false,
        };
        let first = b.next_batch().unwrap().unwrap();
        assert!(first.entries.is_empty());
        let second = b.next_batch().unwrap().unwrap();
        assert_eq!(second.columns, ["uid"]);
        assert!(matches!(&second.entries[0], Entry::Row(r) if r.member_of == ["g"]));
        // An empty name sends no `name` attribute.
        let Entry::Object(g) = &second.entries[1] else {
            unreachable!()
        };
        assert_eq!(g.attributes.len(), 1);
        assert_eq!(g.attributes[0].name, "cn");
        assert!(b.next_batch().unwrap().is_none());
        assert_eq!(b.finish().unwrap().cursor.as_deref(), Some("c2"));
        let report = test_by_listing(Run::from_batches(steps())).unwrap();
        assert_eq!((report.users, report.groups), (Some(1), Some(1)));
        assert_eq!(
            report.sample.unwrap().attributes,
            [("uid".to_string(), vec!["u1".to_string()])]
        );
    }
}
