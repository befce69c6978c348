//! Declarative mapping: source attributes → roster user fields.
//!
//! Order, per source object: (1) a mapping script, if configured, transforms the object;
//! (2) `[sources.NAME.map]` templates fill the fields they name; (3) every other field takes
//! the default: the attribute named like the field, then the MyQ CSV column. Attribute names
//! match case-insensitively, with space, `_` and `-` ignored.

use crate::model::{Field, Kind, Secret, Value};
use crate::reconcile::{parse_group_paths, UserRecord};
use crate::runtime::SourceObject;
use anyhow::{bail, Result};
use sha2::{Digest, Sha256};

/// MyQ CSV columns (normalised) and the field each fills when no attribute has the field's
/// own name: the classic import format, then MyQ Roger's. USERNAME_ALIASES is handled
/// apart: first value username, the rest aliases. Roger's Name + Surname make the full name.
const MYQ: &[(&str, Field)] = &[
    ("code", Field::PersonalNumber),
    ("scanstorage", Field::Storage),
    ("pin", Field::Pins),
    ("emailaddress", Field::Email),
    ("phonenumber", Field::Phone),
    ("usergroups", Field::Groups),
    ("isactive", Field::Active),
];

/// Roger's first and last name columns, joined into `full_name`.
const GIVEN_NAME: &str = "name";
const SURNAME: &str = "surname";

/// Roger columns that tell MyQ's importer what to do rather than describe the user.
const IMPORT_INSTRUCTIONS: &[&str] = &["sendactivationemail", "includepintoactivationemail"];

/// A password column: never imported, and worth a warning (roster syncs no passwords).
pub const PASSWORD: &str = "password";

/// The attribute name (normalised) that fills a field by default.
fn field_key(f: Field) -> &'static str {
    match f {
        Field::FullName => "fullname",
        Field::PersonalNumber => "personalnumber",
        f => f.name(),
    }
}

/// Attribute-name normalisation: lowercase, without space, `_` and `-`. Borrows when the
/// name is already normal, as most are, so mapping a row allocates nothing for its names.
pub fn normalise_name(name: &str) -> std::borrow::Cow<'_, str> {
    if name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return std::borrow::Cow::Borrowed(name);
    }
    name.chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-'))
        .flat_map(char::to_lowercase)
        .collect::<String>()
        .into()
}

/// A parsed `%attr%` template.
#[derive(Debug, Clone)]
pub struct Template(Vec<Piece>);

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Attr(String),
}

impl Template {
    pub fn parse(s: &str) -> Result<Template> {
        let mut pieces = Vec::new();
        let mut rest = s;
        while let Some(start) = rest.find('%') {
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 1..];
            let Some(end) = after.find('%') else {
                bail!("template {s:?}: unclosed %");
            };
            if end == 0 {
                pieces.push(Piece::Text("%".into()));
            } else {
                pieces.push(Piece::Attr(normalise_name(&after[..end]).into_owned()));
            }
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Template(pieces))
    }

    /// Renders with each attribute's first value; None if any attribute is missing or empty.
    fn render(&self, attrs: &Attrs) -> Option<String> {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Attr(a) => out.push_str(attrs.first(a)?),
            }
        }
        Some(out)
    }
}

/// Attributes of one object by normalised name. A short list searched linearly: objects
/// carry tens of attributes, and building a hash map per object costs more.
struct Attrs<'a>(Vec<(std::borrow::Cow<'a, str>, &'a [String])>);

impl<'a> Attrs<'a> {
    fn new(obj: &'a SourceObject) -> Self {
        Attrs(
            obj.attributes
                .iter()
                .map(|a| (normalise_name(&a.name), a.values.as_slice()))
                .collect(),
        )
    }
    fn values(&self, name: &str) -> &'a [String] {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .unwrap_or(&[])
    }
    fn first(&self, name: &str) -> Option<&'a str> {
        self.values(name)
            .iter()
            .map(|v| v.trim())
            .find(|v| !v.is_empty())
    }
}

/// A mapped user, ready for staging. Plain PINs stay here only until they are hashed.
pub struct Mapped {
    pub record: UserRecord,
    /// (fingerprint, PIN) pairs.
    pub pins: Vec<(String, Secret)>,
}

impl Mapped {
    /// Empties a field (one the source may not set).
    pub fn clear(&mut self, f: Field) {
        match f.kind() {
            crate::model::Kind::One if f != Field::Username => self.record.set_one(f, None),
            crate::model::Kind::Many => {
                self.record.many_mut(f).clear();
                if f == Field::Pins {
                    self.pins.clear();
                }
            }
            _ => {}
        }
    }
}

/// The mapping of one source.
pub struct Mapper {
    overrides: Vec<(Field, Vec<Template>)>,
    lowercase_usernames: bool,
    pin_key: Vec<u8>,
    /// Everything besides the object that decides what `map` makes of it (see `raw_hash`).
    seed: Sha256,
}

impl Mapper {
    /// `pin_key` keys the PIN fingerprints used to notice PIN changes without storing PINs.
    pub fn new(
        map: &[(String, Vec<String>)],
        lowercase_usernames: bool,
        pin_key: Vec<u8>,
    ) -> Result<Self> {
        let mut overrides = Vec::new();
        for (field, templates) in map {
            let f = Field::parse(field)?;
            let t = templates
                .iter()
                .map(|t| Template::parse(t))
                .collect::<Result<_>>()?;
            overrides.push((f, t));
        }
        let mut seed = Sha256::new();
        seed.update(concat!("roster ", env!("CARGO_PKG_VERSION"), "\0"));
        seed.update(format!("{map:?} {lowercase_usernames}\0"));
        seed.update(&pin_key);
        Ok(Mapper {
            overrides,
            lowercase_usernames,
            pin_key,
            seed,
        })
    }

    /// Also binds `raw_hash` to `context` (the run's reconcile options, which decide pairing).
    pub fn bind(mut self, context: &str) -> Self {
        self.seed.update(context.as_bytes());
        self.seed.update([0]);
        self
    }

    /// A hash of the object as the plugin sent it, bound to this mapping, this roster version
    /// and the bound context. Equal hashes mean `map` would produce the same user, so an
    /// entry whose hash was stored with its link can be known unchanged without mapping it.
    pub fn raw_hash(&self, obj: &SourceObject) -> i64 {
        let attributes = (obj.attributes.iter()).map(|a| (a.name.as_str(), a.values.as_slice()));
        self.raw_hash_of(&obj.id, attributes)
    }

    /// `raw_hash` of the object with this id and these (name, values) attributes.
    pub fn raw_hash_of<'a>(
        &self,
        id: &str,
        attributes: impl Iterator<Item = (&'a str, &'a [String])>,
    ) -> i64 {
        fn put(h: &mut Sha256, s: &str) {
            h.update((s.len() as u32).to_le_bytes());
            h.update(s.as_bytes());
        }
        let mut h = self.seed.clone();
        put(&mut h, id);
        for (name, values) in attributes {
            put(&mut h, name);
            // The value count keeps ["a", "b"] apart from a following attribute "b".
            h.update((values.len() as u32).to_le_bytes());
            for v in values {
                put(&mut h, v);
            }
        }
        let d = h.finalize();
        i64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
    }

    /// Maps a user object, or says why it cannot be mapped.
    pub fn map(&self, obj: &SourceObject) -> Result<Mapped, String> {
        let attrs = Attrs::new(obj);
        let myq_ids = attrs.values("usernamealiases");
        let values = |f: Field| -> Vec<String> {
            if let Some((_, ts)) = self.overrides.iter().find(|(o, _)| *o == f) {
                return ts.iter().filter_map(|t| t.render(&attrs)).collect();
            }
            let own = attrs.values(field_key(f));
            if !own.is_empty() || f == Field::Aliases {
                let mut v: Vec<String> = own.to_vec();
                if f == Field::Aliases {
                    v.extend(myq_ids.iter().skip(1).cloned());
                }
                return v;
            }
            match f {
                Field::Username => myq_ids.iter().take(1).cloned().collect(),
                Field::FullName => {
                    let parts = [attrs.first(GIVEN_NAME), attrs.first(SURNAME)];
                    let name = parts.into_iter().flatten().collect::<Vec<_>>().join(" ");
                    (!name.is_empty()).then_some(name).into_iter().collect()
                }
                _ => MYQ
                    .iter()
                    .filter(|(_, mf)| *mf == f)
                    .flat_map(|(col, _)| attrs.values(col).iter().cloned())
                    .collect(),
            }
        };
        let single = |f: Field| {
            values(f)
                .into_iter()
                .map(|v| v.trim().to_string())
                .find(|v| !v.is_empty())
        };
        let list = |f: Field| -> Vec<String> {
            values(f)
                .into_iter()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .collect()
        };
        let Some(username) = single(Field::Username) else {
            return Err(
                "no username (no `username` or USERNAME_ALIASES attribute, or it is empty)".into(),
            );
        };
        let active = match single(Field::Active) {
            None => true,
            Some(v) => parse_bool(&v).ok_or_else(|| format!("active: {v:?} is not a boolean"))?,
        };
        let plain_pins = list(Field::Pins);
        let mut record = UserRecord {
            username,
            active,
            ..Default::default()
        };
        for f in Field::ALL {
            match (f, f.kind()) {
                (Field::Username, _) | (_, Kind::Flag) => {}
                (Field::Pins, _) => {
                    record.pins = plain_pins.iter().map(|p| self.fingerprint(p)).collect()
                }
                (Field::Groups, _) => {
                    record.groups = (list(f).iter())
                        .flat_map(|g| parse_group_paths(g))
                        .collect()
                }
                (_, Kind::One) => record.set_one(f, single(f)),
                (_, Kind::Many) => *record.many_mut(f) = list(f),
            }
        }
        record.normalise(self.lowercase_usernames);
        check_limits(&record, &plain_pins)?;
        let pins = plain_pins
            .into_iter()
            .map(|p| (self.fingerprint(&p), Secret(p)))
            .collect();
        Ok(Mapped { record, pins })
    }

    /// Of these attribute names (as sent), the ones that fill no field and appear in no
    /// template: what a misspelt header looks like.
    pub fn unused<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
        let overridden = |f: Field| self.overrides.iter().any(|(o, _)| *o == f);
        let in_template = |n: &str| {
            (self.overrides.iter().flat_map(|(_, ts)| ts))
                .flat_map(|t| &t.0)
                .any(|p| matches!(p, Piece::Attr(a) if a == n))
        };
        let fills = |n: &str| {
            Field::all().any(|f| {
                !overridden(f)
                    && (field_key(f) == n
                        || MYQ.iter().any(|(c, mf)| *c == n && *mf == f)
                        || (f == Field::FullName && (n == GIVEN_NAME || n == SURNAME))
                        || (n == "usernamealiases"
                            && matches!(f, Field::Username | Field::Aliases)))
            })
        };
        (names.into_iter())
            .filter(|name| {
                let n = normalise_name(name);
                let n = n.as_ref();
                !(fills(n) || in_template(n) || IMPORT_INSTRUCTIONS.contains(&n) || n == PASSWORD)
            })
            .collect()
    }

    fn fingerprint(&self, pin: &str) -> String {
        pin_fingerprint(&self.pin_key, pin)
    }
}

/// A PIN's keyed fingerprint: notices a changed PIN without storing it.
pub(crate) fn pin_fingerprint(pin_key: &[u8], pin: &str) -> String {
    let mut h = Sha256::new();
    h.update(pin_key);
    h.update(pin.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// Every field within its limits (see [`Field::check`]); PINs are checked as sent, since
/// the record holds only their fingerprints.
fn check_limits(r: &UserRecord, plain_pins: &[String]) -> Result<(), String> {
    // One-valued fields first, then lists, PINs last.
    for f in Field::ALL {
        if let Value::One(Some(v)) = r.get(f) {
            f.check(v)?;
        }
    }
    for f in Field::ALL {
        if let (Value::Many(values), false) = (r.get(f), f == Field::Pins) {
            f.check_all(values)?;
        }
    }
    // Another roster's PIN hashes are longer than any PIN; their shape is checked instead.
    let pins: Vec<String> = (plain_pins.iter())
        .filter(|p| !crate::model::is_pin_hash(p))
        .cloned()
        .collect();
    if plain_pins.len() > Field::Pins.max_values() {
        return Field::Pins.check_all(plain_pins);
    }
    Field::Pins.check_all(&pins)
}

/// A group object's name: its `name`, `displayName` or `cn` attribute, else its id.
pub fn group_name(obj: &SourceObject) -> String {
    let attrs = Attrs::new(obj);
    ["name", "displayname", "cn"]
        .iter()
        .find_map(|a| attrs.first(a))
        .unwrap_or(&obj.id)
        .to_string()
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "y" | "on" | "active" | "enabled" => Some(true),
        "0" | "false" | "no" | "n" | "off" | "inactive" | "disabled" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{Attribute, ObjectKind};

    fn obj(attrs: &[(&str, &[&str])]) -> SourceObject {
        SourceObject {
            kind: ObjectKind::User,
            id: "x".into(),
            locator: None,
            attributes: attrs
                .iter()
                .map(|(n, v)| Attribute {
                    name: n.to_string(),
                    values: v.iter().map(|s| s.to_string()).collect(),
                })
                .collect(),
            member_of: vec![],
            members: vec![],
            parent: None,
        }
    }

    fn mapper(map: &[(&str, &[&str])]) -> Mapper {
        let map: Vec<_> = map
            .iter()
            .map(|(f, t)| (f.to_string(), t.iter().map(|s| s.to_string()).collect()))
            .collect();
        Mapper::new(&map, false, b"k".to_vec()).unwrap()
    }

    #[test]
    fn field_names_match_loosely() {
        let m = mapper(&[]);
        let u = m
            .map(&obj(&[
                ("User Name", &["ann"]),
                ("FULL-NAME", &["Ann Lee"]),
                ("e_mail", &["a@x"]),
            ]))
            .unwrap()
            .record;
        assert_eq!(u.username, "ann");
        assert_eq!(u.full_name.as_deref(), Some("Ann Lee"));
        assert_eq!(u.email.as_deref(), Some("a@x"));
    }

    #[test]
    fn myq_columns() {
        let m = mapper(&[]);
        let mapped = m
            .map(&obj(&[
                ("USERNAME_ALIASES", &["ann", "al", "annie"]),
                ("FULLNAME", &["Ann Lee"]),
                ("CARDS", &["c1", "c2"]),
                ("GROUPS", &["Activities|Outdoor|Swimming,Staff"]),
                ("CODE", &["007"]),
                ("SCANSTORAGE", &["\\\\srv\\scan"]),
                ("PIN", &["1234"]),
            ]))
            .unwrap();
        let u = mapped.record;
        assert_eq!(u.username, "ann");
        assert_eq!(u.aliases, vec!["al", "annie"]);
        assert_eq!(u.cards, vec!["c1", "c2"]);
        assert_eq!(u.groups, vec!["Activities|Outdoor|Swimming", "Staff"]);
        assert_eq!(u.personal_number.as_deref(), Some("007"));
        assert_eq!(u.storage.as_deref(), Some("\\\\srv\\scan"));
        assert_eq!(u.pins.len(), 1);
        assert_ne!(u.pins[0], "1234");
        assert_eq!(mapped.pins[0].1 .0, "1234");
        assert_eq!(mapped.pins[0].0, u.pins[0]);
    }

    #[test]
    fn unused_attributes() {
        let m = mapper(&[("full_name", &["%givenName% %sn%"])]);
        let names = [
            "username",
            "givenName",
            "sn",
            "Full Name",
            "Roles",
            "Password",
            "E-Mail",
            "Departmnet",
            "User Groups",
            "SendActivationEmail",
            "USERNAME_ALIASES",
        ];
        // A template's field no longer takes its same-named column.
        assert_eq!(m.unused(names), ["Full Name", "Roles", "Departmnet"]);
        assert_eq!(
            mapper(&[]).unused(["Name", "Surname", "FULLNAME"]),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn templates_override_and_missing_attributes_yield_nothing() {
        let m = mapper(&[
            ("full_name", &["%givenName% %sn%"]),
            (
                "aliases",
                &["%givenName%.%sn%", "%sn%-%givenName%", "%nickname%"],
            ),
            ("email", &["%mail%"]),
        ]);
        let u = m
            .map(&obj(&[
                ("uid", &["x"]),
                ("username", &["jd"]),
                ("givenName", &["John"]),
                ("sn", &["Doe"]),
            ]))
            .unwrap()
            .record;
        assert_eq!(u.full_name.as_deref(), Some("John Doe"));
        assert_eq!(u.aliases, vec!["Doe-John", "John.Doe"]);
        assert_eq!(u.email, None);
    }

    #[test]
    fn missing_username_is_an_error() {
        assert!(mapper(&[]).map(&obj(&[("email", &["a@x"])])).is_err());
        assert!(mapper(&[]).map(&obj(&[("username", &[" "])])).is_err());
    }

    #[test]
    fn active_flag() {
        let m = mapper(&[]);
        assert!(
            !m.map(&obj(&[("username", &["a"]), ("active", &["false"])]))
                .unwrap()
                .record
                .active
        );
        assert!(m.map(&obj(&[("username", &["a"])])).unwrap().record.active);
        assert!(m
            .map(&obj(&[("username", &["a"]), ("active", &["maybe"])]))
            .is_err());
    }

    #[test]
    fn a_field_over_its_limits_fails_the_entry_naming_the_field() {
        let m = mapper(&[]);
        let fails = |attrs: &[(&str, &[&str])]| m.map(&obj(attrs)).err().unwrap_or_default();
        let long = "a".repeat(300);
        assert_eq!(
            fails(&[("username", &[long.as_str()])]),
            "username: 300 characters, over the limit of 256"
        );
        assert_eq!(
            fails(&[("username", &["\0"])]),
            "username: contains the control character U+0000, which is not allowed"
        );
        let e = fails(&[("username", &["ann"]), ("full_name", &["Ann\u{1b}[2J"])]);
        assert!(
            e.starts_with("full_name: contains the control character U+001B"),
            "{e}"
        );
        let e = fails(&[("username", &["ann"]), ("email", &["ann at example"])]);
        assert!(
            e.starts_with("email: \"ann at example\" is not an email address"),
            "{e}"
        );
        let e = fails(&[("USERNAME_ALIASES", &["ann", "a\u{7}"])]);
        assert!(
            e.starts_with("aliases: contains the control character U+0007"),
            "{e}"
        );
        // A PIN is checked as sent and never quoted.
        let e = fails(&[("username", &["ann"]), ("PIN", &["12\u{1b}34"])]);
        assert!(e.starts_with("pins: ") && !e.contains("12"), "{e}");
        assert!(m
            .map(&obj(&[("username", &["ann"]), ("notes", &["two\nlines"])]))
            .is_ok());
    }

    #[test]
    fn template_syntax_errors() {
        assert!(Template::parse("%open").is_err());
        assert!(Template::parse("100%% sure").is_ok());
    }
}
