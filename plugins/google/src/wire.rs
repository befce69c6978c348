//! `users.list` pages read straight into typed, borrowing structs: a full-projection user
//! carries many fields roster never reads, and building a `serde_json::Value` tree of each
//! one cost most of a resync. Every field is lenient the way `Value` indexing is (a wrong
//! type reads as absent), so the typed path and the `Value` fallback agree on every user.

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;

/// Skips whatever a visitor got that it has no use for.
fn skip_map<'de, A: MapAccess<'de>>(mut m: A) -> Result<(), A::Error> {
    while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

fn skip_seq<'de, A: SeqAccess<'de>>(mut s: A) -> Result<(), A::Error> {
    while s.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// A string, or None for any other JSON value (`Value::as_str`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Str<'a>(pub Option<Cow<'a, str>>);

impl<'a> Str<'a> {
    pub fn get(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// Non-empty only (the connector's `s`).
    pub fn filled(&self) -> Option<&str> {
        self.get().filter(|s| !s.is_empty())
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Str<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Some(Cow::Owned(v))))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Str(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Str(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Str(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Str(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Str(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Self::Value, A::Error> {
                skip_map(m).map(|_| Str(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, s: A) -> Result<Self::Value, A::Error> {
                skip_seq(s).map(|_| Str(None))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// True only for JSON `true` (`value == true`).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Flag(pub bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Flag;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Flag, E> {
                Ok(Flag(v))
            }
            fn visit_str<E>(self, _: &str) -> Result<Flag, E> {
                Ok(Flag(false))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Flag, E> {
                Ok(Flag(false))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Flag, E> {
                Ok(Flag(false))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Flag, E> {
                Ok(Flag(false))
            }
            fn visit_unit<E>(self) -> Result<Flag, E> {
                Ok(Flag(false))
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Flag, A::Error> {
                skip_map(m).map(|_| Flag(false))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, s: A) -> Result<Flag, A::Error> {
                skip_seq(s).map(|_| Flag(false))
            }
        }
        d.deserialize_any(V)
    }
}

/// An object read as `T`; any other JSON value reads as `T::default()` (every field absent,
/// as indexing a non-object `Value` gives).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Obj<T>(pub T);

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Default> Visitor<'de> for V<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Obj<T>, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(m)).map(Obj)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, s: A) -> Result<Obj<T>, A::Error> {
                skip_seq(s).map(|_| Obj(T::default()))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Obj<T>, E> {
                Ok(Obj(T::default()))
            }
            fn visit_str<E>(self, _: &str) -> Result<Obj<T>, E> {
                Ok(Obj(T::default()))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Obj<T>, E> {
                Ok(Obj(T::default()))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Obj<T>, E> {
                Ok(Obj(T::default()))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Obj<T>, E> {
                Ok(Obj(T::default()))
            }
            fn visit_unit<E>(self) -> Result<Obj<T>, E> {
                Ok(Obj(T::default()))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// An array's elements; any other JSON value reads as no elements.
#[derive(Debug, Clone, PartialEq)]
pub struct List<T>(pub Vec<T>);

impl<T> Default for List<T> {
    fn default() -> Self {
        List(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = List<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<List<T>, A::Error> {
                let mut v = Vec::with_capacity(s.size_hint().unwrap_or(0).min(64));
                while let Some(x) = s.next_element()? {
                    v.push(x);
                }
                Ok(List(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<List<T>, A::Error> {
                skip_map(m).map(|_| List::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<List<T>, E> {
                Ok(List::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<List<T>, E> {
                Ok(List::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<List<T>, E> {
                Ok(List::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<List<T>, E> {
                Ok(List::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<List<T>, E> {
                Ok(List::default())
            }
            fn visit_unit<E>(self) -> Result<List<T>, E> {
                Ok(List::default())
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Name<'a> {
    #[serde(borrow)]
    pub given_name: Str<'a>,
    #[serde(borrow)]
    pub family_name: Str<'a>,
    #[serde(borrow)]
    pub full_name: Str<'a>,
}

/// An entry of `phones` or `externalIds`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Entry<'a> {
    #[serde(borrow)]
    pub value: Str<'a>,
    #[serde(borrow, rename = "type")]
    pub kind: Str<'a>,
    pub primary: Flag,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Organization<'a> {
    #[serde(borrow)]
    pub department: Str<'a>,
    #[serde(borrow)]
    pub title: Str<'a>,
    #[serde(borrow)]
    pub cost_center: Str<'a>,
    pub primary: Flag,
}

/// A user of `users.list` (`projection=full`), with the fields roster reads.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct User<'a> {
    #[serde(borrow)]
    pub id: Str<'a>,
    #[serde(borrow)]
    pub primary_email: Str<'a>,
    #[serde(borrow)]
    pub name: Obj<Name<'a>>,
    #[serde(borrow)]
    pub aliases: List<Str<'a>>,
    #[serde(borrow)]
    pub non_editable_aliases: List<Str<'a>>,
    #[serde(borrow)]
    pub external_ids: List<Obj<Entry<'a>>>,
    #[serde(borrow)]
    pub phones: List<Obj<Entry<'a>>>,
    #[serde(borrow)]
    pub organizations: List<Obj<Organization<'a>>>,
    pub suspended: Flag,
    pub archived: Flag,
    pub is_admin: Flag,
    #[serde(borrow)]
    pub org_unit_path: Str<'a>,
}

/// A `users.list` page. `users` must be a list (or absent): anything else fails the typed
/// read, and the `Value` path reports it.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct UsersPage<'a> {
    #[serde(borrow)]
    pub users: Option<Vec<User<'a>>>,
    #[serde(borrow)]
    pub next_page_token: Str<'a>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wrong_types_read_as_absent_like_value_indexing() {
        let v = json!({"id": 7, "primaryEmail": "a@ex.com", "name": "Al",
            "aliases": "x", "nonEditableAliases": ["n@ex", 3, null],
            "phones": [1, {"value": "p", "primary": "yes"}], "suspended": "true",
            "orgUnitPath": {"a": [1, {"b": 2}]}});
        let text = v.to_string();
        for u in [
            User::deserialize(&v).unwrap(),
            serde_json::from_str::<User>(&text).unwrap(),
        ] {
            assert_eq!(u.id.get(), None);
            assert_eq!(u.primary_email.get(), Some("a@ex.com"));
            assert_eq!(u.name.0.given_name.get(), None);
            assert!(u.aliases.0.is_empty());
            let n: Vec<_> = u.non_editable_aliases.0.iter().map(Str::get).collect();
            assert_eq!(n, [Some("n@ex"), None, None]);
            assert_eq!(u.phones.0.len(), 2);
            assert_eq!(u.phones.0[0].0.value.get(), None);
            assert!(!u.phones.0[1].0.primary.0);
            assert!(!u.suspended.0);
            assert_eq!(u.org_unit_path.get(), None);
        }
    }

    #[test]
    fn escaped_strings_are_owned_and_plain_ones_borrowed() {
        let text =
            r#"{"users": [{"id": "1", "primaryEmail": "a\u0040ex.com"}], "nextPageToken": "t"}"#;
        let p: UsersPage = serde_json::from_str(text).unwrap();
        let u = &p.users.unwrap()[0];
        assert!(matches!(u.id.0, Some(Cow::Borrowed("1"))));
        assert_eq!(u.primary_email.get(), Some("a@ex.com"));
        assert_eq!(p.next_page_token.get(), Some("t"));
        // `users` that is no list fails the typed read (the Value path names the problem).
        assert!(serde_json::from_str::<UsersPage>(r#"{"users": 5}"#).is_err());
    }
}
