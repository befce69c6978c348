//! What a run yields: users (as named attributes or as rows of fixed columns), groups,
//! removals (delta runs) and entries that failed.

use crate::bindings::roster::plugin::types::{Attribute, ObjectKind, SourceObject};
use crate::Error;

pub use crate::bindings::roster::plugin::types::ObjectKind as Kind;

/// One item of a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    User(User),
    /// A user as the values of fixed columns ([`Run::columns`](crate::Run::columns), or the
    /// [`Batch`](crate::Batch)'s columns): the cheapest form for a large listing.
    Row(Row),
    Group(Group),
    /// An object that left the source (delta runs only).
    Removed {
        kind: Kind,
        id: String,
    },
    /// An entry that could not be read; the run goes on without it.
    Failed {
        locator: String,
        reason: String,
    },
}

impl Item {
    pub fn removed_user(id: impl Into<String>) -> Item {
        Item::Removed {
            kind: Kind::User,
            id: id.into(),
        }
    }
    pub fn removed_group(id: impl Into<String>) -> Item {
        Item::Removed {
            kind: Kind::Group,
            id: id.into(),
        }
    }
    pub fn failed(locator: impl Into<String>, reason: impl Into<String>) -> Item {
        Item::Failed {
            locator: locator.into(),
            reason: reason.into(),
        }
    }
}

/// A user: a stable id (it survives renames), attributes the host's mapping reads
/// (`username`, `full_name`, `email`, ... or any name a `[map]` template uses), and the ids of
/// the groups it is a direct member of.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct User {
    pub id: String,
    pub locator: Option<String>,
    pub attributes: Vec<(String, Vec<String>)>,
    pub member_of: Vec<String>,
}

impl User {
    pub fn new(id: impl Into<String>) -> User {
        User {
            id: id.into(),
            ..Default::default()
        }
    }

    /// A single-valued attribute.
    pub fn attr(self, name: impl Into<String>, value: impl Into<String>) -> User {
        self.values(name, [value.into()])
    }

    /// A multi-valued attribute (an empty list: no value).
    pub fn values<V: Into<String>>(
        mut self,
        name: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> User {
        (self.attributes).push((name.into(), values.into_iter().map(Into::into).collect()));
        self
    }

    /// Where the user sits in the source ("line 17", a DN), for messages about it.
    pub fn locator(mut self, locator: impl Into<String>) -> User {
        self.locator = Some(locator.into());
        self
    }

    /// The id of a group this user is a direct member of.
    pub fn member_of(mut self, group_id: impl Into<String>) -> User {
        self.member_of.push(group_id.into());
        self
    }

    pub(crate) fn into_object(self) -> SourceObject {
        SourceObject {
            kind: ObjectKind::User,
            id: self.id,
            locator: self.locator,
            attributes: (self.attributes.into_iter())
                .map(|(name, values)| Attribute { name, values })
                .collect(),
            member_of: self.member_of,
            members: Vec::new(),
            parent: None,
        }
    }
}

/// One batch as its connector cut it: [`Row`]s are values of `columns`; users whose
/// attribute names are `columns` travel as rows too.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Batch {
    pub columns: Vec<String>,
    pub items: Vec<Item>,
}

/// A user as the values of its run's or batch's columns, in their order (one list per
/// column; an empty list is no value). The column names cross the sandbox boundary once per
/// batch instead of once per user, and nothing is compared per user: what a connector with a
/// fixed set of attributes (a CSV header, an LDAP attribute list) should yield.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row {
    pub id: String,
    pub locator: Option<String>,
    pub values: Vec<Vec<String>>,
    pub member_of: Vec<String>,
}

impl Row {
    pub fn new(id: impl Into<String>, values: Vec<Vec<String>>) -> Row {
        Row {
            id: id.into(),
            values,
            ..Default::default()
        }
    }

    /// Where the user sits in the source ("line 17", a DN), for messages about it.
    pub fn locator(mut self, locator: impl Into<String>) -> Row {
        self.locator = Some(locator.into());
        self
    }

    /// The id of a group this user is a direct member of.
    pub fn member_of(mut self, group_id: impl Into<String>) -> Row {
        self.member_of.push(group_id.into());
        self
    }

    /// The same user with named attributes (for tests, and for `test`'s sample).
    pub fn into_user(self, columns: &[String]) -> User {
        User {
            id: self.id,
            locator: self.locator,
            attributes: columns.iter().cloned().zip(self.values).collect(),
            member_of: self.member_of,
        }
    }
}

/// A group: a stable id, a name, its direct members (user or group ids; taken as complete),
/// and optionally its parent group. An empty name sends no `name` attribute: the host then
/// names the group by its `name`, `displayName` or `cn` attribute, else by its id.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub locator: Option<String>,
    pub attributes: Vec<(String, Vec<String>)>,
    pub members: Vec<String>,
    pub member_of: Vec<String>,
    pub parent: Option<String>,
}

impl Group {
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> Group {
        Group {
            id: id.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    pub fn member(mut self, id: impl Into<String>) -> Group {
        self.members.push(id.into());
        self
    }

    pub fn members<V: Into<String>>(mut self, ids: impl IntoIterator<Item = V>) -> Group {
        self.members.extend(ids.into_iter().map(Into::into));
        self
    }

    /// The id of the group this one sits under (`Staff|IT`).
    pub fn parent(mut self, id: impl Into<String>) -> Group {
        self.parent = Some(id.into());
        self
    }

    pub fn member_of(mut self, group_id: impl Into<String>) -> Group {
        self.member_of.push(group_id.into());
        self
    }

    pub fn locator(mut self, locator: impl Into<String>) -> Group {
        self.locator = Some(locator.into());
        self
    }

    /// Another attribute, for `[map]` templates.
    pub fn attr(mut self, name: impl Into<String>, value: impl Into<String>) -> Group {
        self.attributes.push((name.into(), vec![value.into()]));
        self
    }

    pub(crate) fn into_object(self) -> SourceObject {
        // The host names a group by its `name` attribute.
        let name = (!self.name.is_empty()).then(|| Attribute {
            name: "name".into(),
            values: vec![self.name],
        });
        SourceObject {
            kind: ObjectKind::Group,
            id: self.id,
            locator: self.locator,
            attributes: (name.into_iter())
                .chain(
                    (self.attributes.into_iter()).map(|(name, values)| Attribute { name, values }),
                )
                .collect(),
            member_of: self.member_of,
            members: self.members,
            parent: self.parent,
        }
    }
}

/// What an iterator handed to [`Run::new`](crate::Run::new) may yield: users, groups, items,
/// or any of them in a `Result` (an `Err` fails the run).
pub trait Yield {
    fn into_item(self) -> Result<Item, Error>;
}

impl Yield for Item {
    fn into_item(self) -> Result<Item, Error> {
        Ok(self)
    }
}

impl Yield for User {
    fn into_item(self) -> Result<Item, Error> {
        Ok(Item::User(self))
    }
}

impl Yield for Row {
    fn into_item(self) -> Result<Item, Error> {
        Ok(Item::Row(self))
    }
}

impl Yield for Group {
    fn into_item(self) -> Result<Item, Error> {
        Ok(Item::Group(self))
    }
}

impl<T: Yield> Yield for Result<T, Error> {
    fn into_item(self) -> Result<Item, Error> {
        self.and_then(Yield::into_item)
    }
}
