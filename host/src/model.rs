//! Roster's user fields, the user record indexed by them, and values that must not be
//! shown. A leaf: `config` and `mapping`
//! both use it, and neither imports the other.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

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

/// How a field holds its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// At most one value.
    One,
    /// A sorted list without duplicates.
    Many,
    /// True or false.
    Flag,
}

/// What roster knows about a field. One row per field in [`FIELDS`], the one place to add a
/// field or a per-field rule.
#[derive(Debug)]
pub struct FieldInfo {
    pub field: Field,
    /// The name used in `[map]` tables, records and messages.
    pub name: &'static str,
    pub kind: Kind,
    /// The most characters one value may have. Generous for real directories, small enough
    /// that a hostile source cannot bloat the database or the admin's screen.
    pub max_chars: usize,
    /// How many values the field may hold.
    pub max_values: usize,
    /// The `users` column holding it; None for fields kept in tables of their own (names,
    /// cards, pins, memberships).
    pub column: Option<&'static str>,
}

const fn info(
    field: Field,
    name: &'static str,
    kind: Kind,
    max_chars: usize,
    max_values: usize,
    column: Option<&'static str>,
) -> FieldInfo {
    FieldInfo {
        field,
        name,
        kind,
        max_chars,
        max_values,
        column,
    }
}

/// Every field, in [`Field`] order (the order of records, listings and changed fields).
const FIELDS: [FieldInfo; 13] = {
    use Field as F;
    use Kind::*;
    [
        info(F::Username, "username", One, 256, 1, Some("username")),
        info(F::FullName, "full_name", One, 512, 1, Some("full_name")),
        // RFC 5321's path limits: 64 for the local part, 255 for the domain.
        info(F::Email, "email", One, 320, 1, Some("email")),
        info(
            F::PersonalNumber,
            "personal_number",
            One,
            64,
            1,
            Some("personal_number"),
        ),
        info(F::Aliases, "aliases", Many, 256, 100, None),
        info(F::Cards, "cards", Many, 128, 100, None),
        info(F::Pins, "pins", Many, 64, 10, None),
        info(F::Groups, "groups", Many, 1024, 1000, None),
        info(F::Language, "language", One, 64, 1, Some("language")),
        info(F::Phone, "phone", One, 64, 1, Some("phone")),
        info(F::Notes, "notes", One, 4096, 1, Some("notes")),
        info(F::Storage, "storage", One, 1024, 1, Some("storage")),
        info(F::Active, "active", Flag, 16, 1, Some("active")),
    ]
};

impl Field {
    /// Every field, in order.
    pub const ALL: [Field; 13] = {
        let mut all = [Field::Username; 13];
        let mut i = 0;
        while i < FIELDS.len() {
            all[i] = FIELDS[i].field;
            i += 1;
        }
        all
    };

    pub fn parse(name: &str) -> Result<Field> {
        match FIELDS.iter().find(|i| i.name == name) {
            Some(i) => Ok(i.field),
            None => {
                let all: Vec<_> = FIELDS.iter().map(|i| i.name).collect();
                bail!("unknown roster field `{name}` (fields: {})", all.join(", "))
            }
        }
    }

    /// Every field.
    pub fn all() -> impl Iterator<Item = Field> {
        Field::ALL.into_iter()
    }

    pub fn info(self) -> &'static FieldInfo {
        &FIELDS[self as usize]
    }

    /// The name used in `[map]` tables and in messages.
    pub fn name(self) -> &'static str {
        self.info().name
    }

    pub fn kind(self) -> Kind {
        self.info().kind
    }

    /// The most characters one value may have.
    pub fn max_chars(self) -> usize {
        self.info().max_chars
    }

    /// How many values the field may hold.
    pub fn max_values(self) -> usize {
        self.info().max_values
    }
}

impl Field {
    /// Checks one value against the field's limits; the error names the field and the
    /// limit, never the value (it may be a PIN, or junk not fit for a terminal).
    pub fn check(self, value: &str) -> Result<(), String> {
        let name = self.name();
        let n = value.chars().count();
        if n > self.max_chars() {
            let what = if self.max_values() > 1 {
                "a value of "
            } else {
                ""
            };
            return Err(format!(
                "{name}: {what}{n} characters, over the limit of {}",
                self.max_chars()
            ));
        }
        // Notes are free text; everything else is one line.
        let allowed = |c: char| self == Field::Notes && matches!(c, '\n' | '\r' | '\t');
        if let Some(c) = value.chars().find(|&c| c.is_control() && !allowed(c)) {
            return Err(format!(
                "{name}: contains the control character U+{:04X}, which is not allowed",
                c as u32
            ));
        }
        if self == Field::Email {
            check_email(value)?;
        }
        Ok(())
    }

    /// Checks a list field's values and their count.
    pub fn check_all(self, values: &[String]) -> Result<(), String> {
        if values.len() > self.max_values() {
            return Err(format!(
                "{}: {} values, over the limit of {}",
                self.name(),
                values.len(),
                self.max_values()
            ));
        }
        values.iter().try_for_each(|v| self.check(v))
    }
}

/// A roster user's comparable fields, one per [`Field`] (the struct keeps the stored JSON
/// and direct access fast; [`UserRecord::get`] and [`UserRecord::set_one`] index it by
/// field). `pins` hold keyed fingerprints, never PINs. Lists are sorted and free of
/// duplicates, so equal users compare equal.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UserRecord {
    pub username: String,
    pub full_name: Option<String>,
    pub email: Option<String>,
    pub personal_number: Option<String>,
    pub aliases: Vec<String>,
    pub cards: Vec<String>,
    pub pins: Vec<String>,
    pub groups: Vec<String>,
    pub language: Option<String>,
    pub phone: Option<String>,
    pub notes: Option<String>,
    pub storage: Option<String>,
    pub active: bool,
}

/// One field's value in a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    One(Option<&'a str>),
    Many(&'a [String]),
    Flag(bool),
}

impl Value<'_> {
    /// A one-valued field's value, owned.
    pub fn owned(self) -> Option<String> {
        match self {
            Value::One(v) => v.map(str::to_string),
            _ => None,
        }
    }
}

impl UserRecord {
    /// The field's value.
    pub fn get(&self, f: Field) -> Value<'_> {
        match f {
            Field::Username => Value::One(Some(&self.username)),
            Field::Active => Value::Flag(self.active),
            f => match self.one(f) {
                Some(v) => Value::One(v.as_deref()),
                None => Value::Many(self.many(f)),
            },
        }
    }

    /// Sets a one-valued field (no value for `username` is the empty name).
    pub fn set_one(&mut self, f: Field, v: Option<String>) {
        match f {
            Field::Username => self.username = v.unwrap_or_default(),
            f => {
                *self
                    .one_mut(f)
                    .unwrap_or_else(|| panic!("{f:?} is not one-valued")) = v
            }
        }
    }

    /// A list field's values.
    pub fn many_mut(&mut self, f: Field) -> &mut Vec<String> {
        match f {
            Field::Aliases => &mut self.aliases,
            Field::Cards => &mut self.cards,
            Field::Pins => &mut self.pins,
            Field::Groups => &mut self.groups,
            f => panic!("{f:?} is not a list"),
        }
    }

    /// A list field's values (empty for other fields).
    pub fn list(&self, f: Field) -> &[String] {
        self.many(f)
    }

    fn many(&self, f: Field) -> &[String] {
        match f {
            Field::Aliases => &self.aliases,
            Field::Cards => &self.cards,
            Field::Pins => &self.pins,
            Field::Groups => &self.groups,
            _ => &[],
        }
    }

    fn one(&self, f: Field) -> Option<&Option<String>> {
        match f {
            Field::FullName => Some(&self.full_name),
            Field::Email => Some(&self.email),
            Field::PersonalNumber => Some(&self.personal_number),
            Field::Language => Some(&self.language),
            Field::Phone => Some(&self.phone),
            Field::Notes => Some(&self.notes),
            Field::Storage => Some(&self.storage),
            _ => None,
        }
    }

    fn one_mut(&mut self, f: Field) -> Option<&mut Option<String>> {
        match f {
            Field::FullName => Some(&mut self.full_name),
            Field::Email => Some(&mut self.email),
            Field::PersonalNumber => Some(&mut self.personal_number),
            Field::Language => Some(&mut self.language),
            Field::Phone => Some(&mut self.phone),
            Field::Notes => Some(&mut self.notes),
            Field::Storage => Some(&mut self.storage),
            _ => None,
        }
    }

    /// Sorts and dedupes lists, drops aliases equal to the username, and lowercases
    /// usernames and aliases when asked.
    pub fn normalise(&mut self, lowercase_usernames: bool) {
        if lowercase_usernames {
            self.username = self.username.to_lowercase();
            for a in &mut self.aliases {
                *a = a.to_lowercase();
            }
        }
        let username = self.username.clone();
        self.aliases.retain(|a| *a != username);
        for f in Field::ALL {
            if f.kind() == Kind::Many {
                let list = self.many_mut(f);
                list.retain(|v| !v.is_empty());
                list.sort();
                list.dedup();
            }
        }
    }

    /// Names of the fields that differ from `old`, in field order. `active` is reported
    /// separately.
    pub fn changed_fields(&self, old: &UserRecord) -> Vec<&'static str> {
        (Field::ALL.into_iter())
            .filter(|&f| f != Field::Active && self.get(f) != old.get(f))
            .map(Field::name)
            .collect()
    }
}

/// Whether a PIN value is already an argon2 hash (PHC string), as another roster sends its
/// PINs: stored as it is, never hashed again. Only argon2 with bounded costs qualifies (at
/// most 64 MiB, 10 passes, 4 lanes), so a hostile source cannot make each PIN check costly;
/// anything else is a PIN.
pub fn is_pin_hash(v: &str) -> bool {
    if !v.starts_with("$argon2") || v.len() > 256 {
        return false;
    }
    let Ok(h) = argon2::PasswordHash::new(v) else {
        return false;
    };
    let Ok(p) = argon2::Params::try_from(&h) else {
        return false;
    };
    argon2::Algorithm::try_from(h.algorithm.as_str()).is_ok()
        && h.hash.is_some()
        && p.m_cost() <= 64 * 1024
        && p.t_cost() <= 10
        && p.p_cost() <= 4
}

/// An email address's shape: one `@`, a local part and a domain, no spaces. Deliverability
/// is the mail system's business; this keeps junk out of a field others pair users by.
fn check_email(value: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("email: {value:?} is not an email address ({why})"));
    let Some((local, domain)) = value.split_once('@') else {
        return bad("no @");
    };
    if domain.contains('@') {
        return bad("more than one @");
    }
    if local.is_empty() || domain.is_empty() {
        return bad("nothing before or after the @");
    }
    if value.chars().any(char::is_whitespace) {
        return bad("it contains a space");
    }
    if domain.starts_with('.') || domain.ends_with('.') || domain.contains("..") {
        return bad("the domain has an empty label");
    }
    if local.chars().count() > 64 || domain.chars().count() > 255 {
        return bad("over 64 characters before the @ or 255 after it");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_round_trip() {
        for (i, f) in Field::ALL.into_iter().enumerate() {
            assert_eq!(f as usize, i, "FIELDS is in Field order");
            assert_eq!(Field::parse(f.name()).unwrap(), f);
        }
        assert!(Field::parse("full_nam").is_err());
    }

    #[test]
    fn lengths_are_limited_in_characters() {
        assert!(Field::Username.check(&"é".repeat(256)).is_ok());
        assert_eq!(
            Field::Username.check(&"a".repeat(10_000_000)).unwrap_err(),
            "username: 10000000 characters, over the limit of 256"
        );
        assert!(Field::FullName.check(&"a".repeat(512)).is_ok());
        assert!(Field::FullName.check(&"a".repeat(513)).is_err());
        assert_eq!(
            Field::Aliases.check(&"a".repeat(257)).unwrap_err(),
            "aliases: a value of 257 characters, over the limit of 256"
        );
    }

    #[test]
    fn control_characters_are_refused_but_notes_may_have_lines() {
        for s in [
            "\0",
            "a\u{1b}[2J",
            "bel\u{7}",
            "x\ny",
            "del\u{7f}",
            "csi\u{9b}",
        ] {
            for f in [
                Field::Username,
                Field::FullName,
                Field::Cards,
                Field::Groups,
            ] {
                assert!(f.check(s).is_err(), "{f:?} {s:?}");
            }
        }
        assert_eq!(
            Field::Username.check("\0").unwrap_err(),
            "username: contains the control character U+0000, which is not allowed"
        );
        assert!(Field::Notes.check("line 1\r\nline 2\tend").is_ok());
        assert!(Field::Notes.check("ring\u{7}").is_err());
        assert!(Field::FullName.check("Šárka O'Neil-Nováková").is_ok());
    }

    #[test]
    fn emails_need_one_at_with_text_around_it() {
        for ok in [
            "alice@example.com",
            "a@x",
            "Alice.Smith+tag@mail.example.org",
        ] {
            assert!(Field::Email.check(ok).is_ok(), "{ok}");
        }
        for bad in [
            "alice",
            "@example.com",
            "alice@",
            "a@b@c",
            "a b@x",
            "a@.x",
            "a@x.",
            "a@x..y",
        ] {
            assert!(Field::Email.check(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Field::Email.check("alice").unwrap_err(),
            "email: \"alice\" is not an email address (no @)"
        );
        let long_local = format!("{}@x", "a".repeat(65));
        assert!(Field::Email.check(&long_local).is_err());
        assert!(Field::Email
            .check(&format!("a@{}", "x".repeat(400)))
            .is_err());
    }

    #[test]
    fn a_record_is_indexed_by_field() {
        let mut r = UserRecord::default();
        for f in Field::ALL {
            match f.kind() {
                Kind::One => r.set_one(f, Some(format!("{}-value", f.name()))),
                Kind::Many => *r.many_mut(f) = vec![f.name().into()],
                Kind::Flag => r.active = true,
            }
        }
        for f in Field::ALL {
            let want = format!("{}-value", f.name());
            let list = [f.name().to_string()];
            match r.get(f) {
                Value::One(v) => assert_eq!(v, Some(want.as_str())),
                Value::Many(v) => assert_eq!(v, list),
                Value::Flag(v) => assert!(v),
            }
            assert_eq!(f.info().column.is_some(), f.kind() != Kind::Many, "{f:?}");
        }
        assert_eq!(r.username, "username-value");
        assert_eq!(r.storage.as_deref(), Some("storage-value"));
        assert_eq!(r.groups, ["groups"]);
        // Every field but `active` is compared, in field order.
        let changed = r.changed_fields(&UserRecord::default());
        let all: Vec<_> = (Field::ALL.iter())
            .filter(|&&f| f != Field::Active)
            .map(|f| f.name())
            .collect();
        assert_eq!(changed, all);
        r.set_one(Field::Username, None);
        assert_eq!(r.get(Field::Username), Value::One(Some("")));
    }

    #[test]
    fn the_stored_record_keeps_its_shape() {
        // Stored hashes depend on this JSON: a change makes every user look changed once.
        let r = UserRecord {
            username: "ann".into(),
            cards: vec!["C1".into()],
            active: true,
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"username":"ann","full_name":null,"email":null,"personal_number":null,"aliases":[],"cards":["C1"],"pins":[],"groups":[],"language":null,"phone":null,"notes":null,"storage":null,"active":true}"#
        );
    }

    #[test]
    fn only_bounded_argon2_hashes_count_as_pin_hashes() {
        let ok = "$argon2id$v=19$m=8192,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";
        assert!(is_pin_hash(ok));
        assert!(!is_pin_hash("4821"));
        assert!(!is_pin_hash("$argon2id$v=19$m=8192,t=2,p=1$c29tZXNhbHQ"));
        let costly =
            "$argon2id$v=19$m=4194304,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";
        assert!(!is_pin_hash(costly));
        assert!(!is_pin_hash("$2b$12$abcdefghijklmnopqrstuv"));
    }

    #[test]
    fn lists_are_limited_in_count() {
        let cards: Vec<String> = (0..101).map(|i| format!("C{i}")).collect();
        assert_eq!(
            Field::Cards.check_all(&cards).unwrap_err(),
            "cards: 101 values, over the limit of 100"
        );
        assert!(Field::Cards.check_all(&cards[..100]).is_ok());
        assert!(Field::Pins
            .check_all(&["1234".into(), "\u{1b}".into()])
            .is_err());
    }
}
