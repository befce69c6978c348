//! Roster's user fields and values that must not be shown. A leaf: `config` and `mapping`
//! both use it, and neither imports the other.

use anyhow::{bail, Result};

/// A resolved value that must not be shown.
#[derive(Clone, PartialEq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

/// A roster user field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Username,
    FullName,
    Email,
    PersonalNumber,
    Aliases,
    Cards,
    Pins,
    Groups,
    Language,
    Phone,
    Notes,
    Storage,
    Active,
}

const FIELDS: &[(&str, Field)] = &[
    ("username", Field::Username),
    ("full_name", Field::FullName),
    ("email", Field::Email),
    ("personal_number", Field::PersonalNumber),
    ("aliases", Field::Aliases),
    ("cards", Field::Cards),
    ("pins", Field::Pins),
    ("groups", Field::Groups),
    ("language", Field::Language),
    ("phone", Field::Phone),
    ("notes", Field::Notes),
    ("storage", Field::Storage),
    ("active", Field::Active),
];

impl Field {
    pub fn parse(name: &str) -> Result<Field> {
        match FIELDS.iter().find(|(n, _)| *n == name) {
            Some((_, f)) => Ok(*f),
            None => {
                let all: Vec<_> = FIELDS.iter().map(|(n, _)| *n).collect();
                bail!("unknown roster field `{name}` (fields: {})", all.join(", "))
            }
        }
    }

    /// The name used in `[map]` tables and in messages.
    pub fn name(self) -> &'static str {
        FIELDS
            .iter()
            .find(|(_, f)| *f == self)
            .expect("every field")
            .0
    }
}
