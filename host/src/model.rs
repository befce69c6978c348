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

impl Field {
    /// The most characters one value may have. Generous for real directories, small enough
    /// that a hostile source cannot bloat the database or the admin's screen.
    pub fn max_chars(self) -> usize {
        match self {
            Field::Username | Field::Aliases => 256,
            Field::FullName => 512,
            // RFC 5321's path limits: 64 for the local part, 255 for the domain.
            Field::Email => 320,
            Field::PersonalNumber | Field::Language | Field::Phone | Field::Pins => 64,
            Field::Cards => 128,
            Field::Groups | Field::Storage => 1024,
            Field::Notes => 4096,
            Field::Active => 16,
        }
    }

    /// How many values the field may hold.
    pub fn max_values(self) -> usize {
        match self {
            Field::Aliases | Field::Cards => 100,
            Field::Pins => 10,
            Field::Groups => 1000,
            _ => 1,
        }
    }

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
        for (name, f) in FIELDS {
            assert_eq!(Field::parse(name).unwrap(), *f);
            assert_eq!(f.name(), *name);
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
