//! The one place where what a plugin sends becomes users and groups: a row and its batch's
//! columns mean the object with those columns as attribute names.

use crate::mapping::Mapper;
use crate::runtime::{Attribute, ObjectKind, Row, SourceObject};
use std::sync::Arc;

/// A user or group as the plugin sent it: an object, or a row with its batch's columns (as
/// many as the row has value lists). A row stays a row until someone needs the object, so
/// an unchanged user is recognised from the row alone.
#[derive(Debug, Clone)]
pub enum Incoming {
    Object(SourceObject),
    Row(Arc<[String]>, Row),
}

impl Incoming {
    pub fn kind(&self) -> ObjectKind {
        match self {
            Incoming::Object(o) => o.kind,
            Incoming::Row(_, r) => r.kind,
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Incoming::Object(o) => &o.id,
            Incoming::Row(_, r) => &r.id,
        }
    }

    /// Where the entry is in the source (`line 3`), else its id.
    pub fn locator(&self) -> &str {
        match self {
            Incoming::Object(o) => o.locator.as_deref().unwrap_or(&o.id),
            Incoming::Row(_, r) => r.locator.as_deref().unwrap_or(&r.id),
        }
    }

    pub fn member_of(&self) -> &[String] {
        match self {
            Incoming::Object(o) => &o.member_of,
            Incoming::Row(_, r) => &r.member_of,
        }
    }

    /// The attribute names it carries.
    pub fn names(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        match self {
            Incoming::Object(o) => Box::new(o.attributes.iter().map(|a| a.name.as_str())),
            Incoming::Row(columns, _) => Box::new(columns.iter().map(String::as_str)),
        }
    }

    /// The hash a resync compares, the same whether it came as a row or an object.
    pub fn raw_hash(&self, mapper: &Mapper) -> i64 {
        match self {
            Incoming::Object(o) => mapper.raw_hash(o),
            Incoming::Row(columns, r) => mapper.raw_hash_of(
                &r.id,
                (columns.iter().map(String::as_str)).zip(r.values.iter().map(Vec::as_slice)),
            ),
        }
    }

    pub fn into_object(self) -> SourceObject {
        match self {
            Incoming::Object(o) => o,
            Incoming::Row(columns, r) => SourceObject {
                kind: r.kind,
                id: r.id,
                locator: r.locator,
                attributes: (columns.iter().zip(r.values))
                    .map(|(name, values)| Attribute {
                        name: name.clone(),
                        values,
                    })
                    .collect(),
                member_of: r.member_of,
                members: r.members,
                parent: r.parent,
            },
        }
    }
}

/// Why a row that does not fit its batch's columns is a failed entry.
pub fn misfit_reason(values: usize, columns: usize) -> String {
    format!(
        "the plugin sent a row that does not fit its batch's columns \
         ({values} value lists, {columns} columns)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn row(values: Vec<Vec<String>>) -> Row {
        Row {
            kind: ObjectKind::User,
            id: "u1".into(),
            locator: Some("line 2".into()),
            values,
            member_of: vec!["g1".into()],
            members: Vec::new(),
            parent: None,
        }
    }

    #[test]
    fn a_row_means_the_object_with_its_columns_as_names() {
        let columns: Arc<[String]> = vec!["username".to_string(), "cards".to_string()].into();
        let values = vec![vec!["alice".to_string()], vec!["C1".into(), "C2".into()]];
        let incoming = Incoming::Row(columns, row(values));
        let mapper = Mapper::new(&[], false, b"k".to_vec()).unwrap();
        let raw = incoming.raw_hash(&mapper);
        assert_eq!(incoming.locator(), "line 2");
        assert_eq!(incoming.names().collect::<Vec<_>>(), ["username", "cards"]);
        let obj = incoming.into_object();
        assert_eq!(
            (obj.attributes.iter())
                .map(|a| (a.name.as_str(), a.values.len()))
                .collect::<Vec<_>>(),
            [("username", 1), ("cards", 2)]
        );
        assert_eq!(obj.member_of, ["g1"]);
        // Sent as a row or as an object, it is the same entry: a resync sees it unchanged.
        assert_eq!(mapper.raw_hash(&obj), raw);
        assert_eq!(mapper.map(&obj).unwrap().record.cards, ["C1", "C2"]);
    }
}
