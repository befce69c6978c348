//! roster's users and groups as SCIM resources (RFC 7643), `attributes` and
//! `excludedAttributes`, list responses. PINs are write-only: a resource never carries one.
//!
//! | roster | SCIM User |
//! |---|---|
//! | id | `id` |
//! | the anchor of its source's link | `externalId` |
//! | username | `userName` |
//! | full_name | `displayName`, `name.formatted` |
//! | email | `emails[0]` (type work, primary) |
//! | phone | `phoneNumbers[0]` (type work, primary) |
//! | language | `preferredLanguage` |
//! | active | `active` |
//! | groups | `groups` (read-only) |
//! | personal_number | enterprise `employeeNumber` |
//! | aliases, cards, storage, notes, source, has a PIN | roster extension `aliases`, `cards`, `storage`, `notes`, `source`, `hasPin` |
//! | created_at, updated_at | `meta.created`, `meta.lastModified` |

use super::error::ScimError;
use super::filter::{self, AttrPath};
use super::{ENTERPRISE_USER, GROUP_SCHEMA, LIST_RESPONSE, ROSTER_GROUP, ROSTER_USER, USER_SCHEMA};
use crate::store::{ScimGroupRow, ScimUserRow};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// A weak ETag over what makes a version.
fn weak_etag(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    format!("W/\"{}\"", hex::encode(&h.finalize()[..8]))
}

/// The user's `meta.version`.
pub fn user_version(u: &ScimUserRow) -> String {
    weak_etag(&[
        &u.id.to_string(),
        &u.hash.to_string(),
        if u.active { "1" } else { "0" },
        &u.updated,
    ])
}

/// The group's `meta.version`: its own attributes, not its members (they are not read
/// when a client excludes them).
pub fn group_version(g: &ScimGroupRow) -> String {
    weak_etag(&[
        &g.id.to_string(),
        &g.path,
        &g.name,
        g.parent.as_deref().unwrap_or(""),
        g.external_id.as_deref().unwrap_or(""),
        g.source.as_deref().unwrap_or(""),
    ])
}

fn put(obj: &mut Map<String, Value>, key: &str, v: Option<impl Into<Value>>) {
    if let Some(v) = v {
        obj.insert(key.to_string(), v.into());
    }
}

/// `base` is the SCIM root, e.g. `https://roster.example/scim/v2`.
pub fn user(u: &ScimUserRow, base: &str) -> Value {
    let mut r = Map::new();
    let mut schemas = vec![json!(USER_SCHEMA)];
    r.insert("id".into(), json!(u.id.to_string()));
    put(&mut r, "externalId", u.external_id.clone());
    r.insert("userName".into(), json!(u.username));
    if let Some(n) = &u.full_name {
        r.insert("name".into(), json!({ "formatted": n }));
        r.insert("displayName".into(), json!(n));
    }
    if let Some(e) = &u.email {
        r.insert(
            "emails".into(),
            json!([{ "value": e, "type": "work", "primary": true }]),
        );
    }
    if let Some(p) = &u.phone {
        r.insert(
            "phoneNumbers".into(),
            json!([{ "value": p, "type": "work", "primary": true }]),
        );
    }
    put(&mut r, "preferredLanguage", u.language.clone());
    r.insert("active".into(), json!(u.active));
    if !u.groups.is_empty() {
        let groups: Vec<Value> = u
            .groups
            .iter()
            .map(|(id, path)| {
                json!({
                    "value": id.to_string(),
                    "display": path,
                    "$ref": format!("{base}/Groups/{id}"),
                    "type": "direct",
                })
            })
            .collect();
        r.insert("groups".into(), json!(groups));
    }
    if let Some(pn) = &u.personal_number {
        schemas.push(json!(ENTERPRISE_USER));
        r.insert(ENTERPRISE_USER.into(), json!({ "employeeNumber": pn }));
    }
    let mut ext = Map::new();
    if !u.aliases.is_empty() {
        ext.insert("aliases".into(), json!(u.aliases));
    }
    if !u.cards.is_empty() {
        ext.insert("cards".into(), json!(u.cards));
    }
    put(&mut ext, "storage", u.storage.clone());
    put(&mut ext, "notes", u.notes.clone());
    put(&mut ext, "source", u.source.clone());
    ext.insert("hasPin".into(), json!(u.has_pin));
    if let Some(h) = u.pin_hashes.as_ref().filter(|h| !h.is_empty()) {
        ext.insert("pinHashes".into(), json!(h));
    }
    schemas.push(json!(ROSTER_USER));
    r.insert(ROSTER_USER.into(), Value::Object(ext));
    r.insert(
        "meta".into(),
        json!({
            "resourceType": "User",
            "created": u.created,
            "lastModified": u.updated,
            "version": user_version(u),
            "location": format!("{base}/Users/{}", u.id),
        }),
    );
    r.insert("schemas".into(), json!(schemas));
    Value::Object(r)
}

pub fn group(g: &ScimGroupRow, base: &str) -> Value {
    let mut r = Map::new();
    r.insert("schemas".into(), json!([GROUP_SCHEMA, ROSTER_GROUP]));
    r.insert("id".into(), json!(g.id.to_string()));
    put(&mut r, "externalId", g.external_id.clone());
    r.insert("displayName".into(), json!(g.path));
    if let Some(members) = &g.members {
        let members: Vec<Value> = members
            .iter()
            .map(|(id, name)| {
                json!({
                    "value": id.to_string(),
                    "display": name,
                    "$ref": format!("{base}/Users/{id}"),
                    "type": "User",
                })
            })
            .collect();
        r.insert("members".into(), json!(members));
    }
    let mut ext = Map::new();
    ext.insert("name".into(), json!(g.name));
    put(&mut ext, "parent", g.parent.clone());
    put(&mut ext, "source", g.source.clone());
    r.insert(ROSTER_GROUP.into(), Value::Object(ext));
    r.insert(
        "meta".into(),
        json!({
            "resourceType": "Group",
            "version": group_version(g),
            "location": format!("{base}/Groups/{}", g.id),
        }),
    );
    Value::Object(r)
}

/// A list response page.
pub fn list(total: u64, start_index: u64, resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

/// `attributes` or `excludedAttributes` of a request (RFC 7644 §3.4.2.5).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Projection {
    #[default]
    Default,
    Only(Vec<AttrPath>),
    Except(Vec<AttrPath>),
}

/// Attributes a client cannot exclude or leave out.
const ALWAYS: &[&str] = &["id", "schemas"];
/// How many attribute paths one request may list.
const MAX_PATHS: usize = 100;

impl Projection {
    /// From the two query parameters; giving both is an error.
    pub fn parse(attributes: Option<&str>, excluded: Option<&str>) -> Result<Self, ScimError> {
        let paths = |s: &str| -> Result<Vec<AttrPath>, ScimError> {
            let list: Vec<&str> = s
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect();
            if list.len() > MAX_PATHS {
                return Err(ScimError::invalid_value(format!(
                    "more than {MAX_PATHS} attributes"
                )));
            }
            list.into_iter()
                .map(|p| {
                    let pp =
                        filter::parse_path(p).map_err(|e| ScimError::invalid_value(e.detail))?;
                    if pp.filter.is_some() {
                        return Err(ScimError::invalid_value(format!(
                            "{p}: attributes are named without value filters"
                        )));
                    }
                    Ok(pp.attr)
                })
                .collect()
        };
        match (attributes, excluded) {
            (Some(_), Some(_)) => Err(ScimError::invalid_value(
                "attributes and excludedAttributes exclude each other",
            )),
            (Some(a), None) => Ok(Projection::Only(paths(a)?)),
            (None, Some(e)) => Ok(Projection::Except(paths(e)?)),
            (None, None) => Ok(Projection::Default),
        }
    }

    /// Whether the response shows the (top-level) attribute `name` at all: lets a caller
    /// skip reading what will not be shown (a group's members).
    pub fn shows(&self, name: &str) -> bool {
        match self {
            Projection::Default => true,
            Projection::Only(paths) => paths.iter().any(|p| p.attr.eq_ignore_ascii_case(name)),
            Projection::Except(paths) => !paths
                .iter()
                .any(|p| p.attr.eq_ignore_ascii_case(name) && p.sub.is_none()),
        }
    }

    /// Applies the projection to a resource made by [`user`] or [`group`].
    pub fn apply(&self, resource: Value) -> Value {
        let Value::Object(mut r) = resource else {
            return resource;
        };
        match self {
            Projection::Default => Value::Object(r),
            Projection::Except(paths) => {
                for p in paths {
                    remove(&mut r, p);
                }
                Value::Object(r)
            }
            Projection::Only(paths) => {
                let mut out = Map::new();
                for k in ALWAYS {
                    if let Some(v) = r.get(*k) {
                        out.insert(k.to_string(), v.clone());
                    }
                }
                for p in paths {
                    copy(&r, &mut out, p);
                }
                Value::Object(out)
            }
        }
    }
}

fn key_of(obj: &Map<String, Value>, name: &str) -> Option<String> {
    obj.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

/// The object holding `p`'s attribute (the resource, or an extension's object) and its key
/// there.
fn locate(r: &Map<String, Value>, p: &AttrPath) -> Option<(Option<String>, String)> {
    match &p.uri {
        Some(uri) => {
            // A whole extension, named by its URN (`...:enterprise:2.0:User`).
            if p.sub.is_none() {
                if let Some(k) = key_of(r, &format!("{uri}:{}", p.attr)) {
                    return Some((None, k));
                }
            }
            // A core attribute named by its schema URN lives at the top.
            if let Some(Value::Array(schemas)) = r.get("schemas") {
                let core = schemas.first().and_then(Value::as_str);
                if core.is_some_and(|c| c.eq_ignore_ascii_case(uri)) {
                    return key_of(r, &p.attr).map(|k| (None, k));
                }
            }
            let ext = key_of(r, uri)?;
            let obj = r.get(&ext)?.as_object()?;
            key_of(obj, &p.attr).map(|k| (Some(ext), k))
        }
        None => {
            if let Some(k) = key_of(r, &p.attr) {
                return Some((None, k));
            }
            // Unqualified extension attributes are found in the extension objects.
            r.iter().find_map(|(ext, v)| {
                let obj = v.as_object().filter(|_| ext.starts_with("urn:"))?;
                key_of(obj, &p.attr).map(|k| (Some(ext.clone()), k))
            })
        }
    }
}

fn remove(r: &mut Map<String, Value>, p: &AttrPath) {
    let Some((ext, key)) = locate(r, p) else {
        return;
    };
    if p.uri.is_none() && ext.is_none() && ALWAYS.contains(&key.as_str()) {
        return;
    }
    let container = match &ext {
        Some(e) => match r.get_mut(e).and_then(Value::as_object_mut) {
            Some(o) => o,
            None => return,
        },
        None => r,
    };
    match &p.sub {
        None => {
            container.remove(&key);
        }
        Some(sub) => match container.get_mut(&key) {
            Some(Value::Object(o)) => {
                if let Some(k) = key_of(o, sub) {
                    o.remove(&k);
                }
            }
            Some(Value::Array(items)) => {
                for item in items.iter_mut().filter_map(Value::as_object_mut) {
                    if let Some(k) = key_of(item, sub) {
                        item.remove(&k);
                    }
                }
            }
            _ => {}
        },
    }
}

fn copy(r: &Map<String, Value>, out: &mut Map<String, Value>, p: &AttrPath) {
    let Some((ext, key)) = locate(r, p) else {
        return;
    };
    let src = match &ext {
        Some(e) => match r.get(e).and_then(Value::as_object) {
            Some(o) => o,
            None => return,
        },
        None => r,
    };
    let Some(value) = src.get(&key) else {
        return;
    };
    let value = match (&p.sub, value) {
        (None, v) => v.clone(),
        (Some(sub), Value::Object(o)) => match key_of(o, sub) {
            Some(k) => json!({ k.clone(): o[&k].clone() }),
            None => return,
        },
        (Some(sub), Value::Array(items)) => Value::Array(
            items
                .iter()
                .filter_map(|i| {
                    let o = i.as_object()?;
                    let k = key_of(o, sub)?;
                    Some(json!({ k.clone(): o[&k].clone() }))
                })
                .collect(),
        ),
        _ => return,
    };
    let dest = match ext {
        Some(e) => out
            .entry(e)
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .expect("an extension object"),
        None => out,
    };
    match (dest.get_mut(&key), value) {
        // `emails.value,emails.type`: merge into what an earlier path copied.
        (Some(Value::Object(have)), Value::Object(more)) => have.extend(more),
        (Some(Value::Array(have)), Value::Array(more)) if have.len() == more.len() => {
            for (h, m) in have.iter_mut().zip(more) {
                if let (Some(h), Value::Object(m)) = (h.as_object_mut(), m) {
                    h.extend(m);
                }
            }
        }
        (_, value) => {
            dest.insert(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> ScimUserRow {
        ScimUserRow {
            id: 7,
            username: "asmith".into(),
            full_name: Some("Alice Smith".into()),
            email: Some("alice@example.com".into()),
            personal_number: Some("1001".into()),
            language: Some("en".into()),
            phone: Some("+420 123".into()),
            notes: None,
            storage: Some("\\\\files\\asmith".into()),
            active: true,
            source: Some("hr".into()),
            external_id: Some("e-1".into()),
            aliases: vec!["alice".into()],
            cards: vec!["04A1".into()],
            groups: vec![(3, "Staff".into())],
            has_pin: true,
            pin_hashes: None,
            created: "2026-01-01T00:00:00Z".into(),
            updated: "2026-02-01T00:00:00Z".into(),
            hash: 42,
        }
    }

    const BASE: &str = "https://r.example/scim/v2";

    #[test]
    fn user_maps_every_field_and_never_a_pin() {
        let u = user(&alice(), BASE);
        assert_eq!(u["id"], "7");
        assert_eq!(u["userName"], "asmith");
        assert_eq!(u["externalId"], "e-1");
        assert_eq!(u["name"]["formatted"], "Alice Smith");
        assert_eq!(u["displayName"], "Alice Smith");
        assert_eq!(u["emails"][0]["value"], "alice@example.com");
        assert_eq!(u["emails"][0]["primary"], true);
        assert_eq!(u["phoneNumbers"][0]["value"], "+420 123");
        assert_eq!(u["preferredLanguage"], "en");
        assert_eq!(u["active"], true);
        assert_eq!(u["groups"][0]["value"], "3");
        assert_eq!(u["groups"][0]["$ref"], format!("{BASE}/Groups/3"));
        assert_eq!(u[ENTERPRISE_USER]["employeeNumber"], "1001");
        let ext = &u[ROSTER_USER];
        assert_eq!(ext["aliases"], json!(["alice"]));
        assert_eq!(ext["cards"], json!(["04A1"]));
        assert_eq!(ext["storage"], "\\\\files\\asmith");
        assert_eq!(ext["source"], "hr");
        assert_eq!(ext["hasPin"], true);
        assert!(ext.get("notes").is_none());
        assert!(!u.to_string().to_lowercase().contains("\"pins\""));
        assert_eq!(u["meta"]["resourceType"], "User");
        assert_eq!(u["meta"]["location"], format!("{BASE}/Users/7"));
        assert_eq!(u["meta"]["lastModified"], "2026-02-01T00:00:00Z");
        let v = u["meta"]["version"].as_str().unwrap();
        assert!(v.starts_with("W/\"") && v.ends_with('"'));
        assert_eq!(
            u["schemas"],
            json!([USER_SCHEMA, ENTERPRISE_USER, ROSTER_USER])
        );
        // The version moves with the record, the active flag and the modification time.
        let mut b = alice();
        assert_eq!(user_version(&b), v);
        b.active = false;
        assert_ne!(user_version(&b), v);
        let mut c = alice();
        c.hash = 43;
        assert_ne!(user_version(&c), v);
    }

    #[test]
    fn unset_fields_are_left_out() {
        let mut a = alice();
        a.email = None;
        a.personal_number = None;
        a.full_name = None;
        a.groups.clear();
        let u = user(&a, BASE);
        for k in ["emails", "name", "displayName", "groups", ENTERPRISE_USER] {
            assert!(u.get(k).is_none(), "{k}");
        }
        assert_eq!(u["schemas"], json!([USER_SCHEMA, ROSTER_USER]));
    }

    #[test]
    fn attributes_select_and_keep_id() {
        let p = Projection::parse(
            Some("userName,emails.value,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber,NAME.formatted, aliases"),
            None,
        )
        .unwrap();
        let u = p.apply(user(&alice(), BASE));
        assert_eq!(
            u,
            json!({
                "schemas": [USER_SCHEMA, ENTERPRISE_USER, ROSTER_USER],
                "id": "7",
                "userName": "asmith",
                "emails": [{ "value": "alice@example.com" }],
                "name": { "formatted": "Alice Smith" },
                ENTERPRISE_USER: { "employeeNumber": "1001" },
                ROSTER_USER: { "aliases": ["alice"] },
            })
        );
        let p = Projection::parse(Some("emails.value,emails.type"), None).unwrap();
        let u = p.apply(user(&alice(), BASE));
        assert_eq!(
            u["emails"],
            json!([{ "value": "alice@example.com", "type": "work" }])
        );
        let p = Projection::parse(
            Some("urn:ietf:params:scim:schemas:core:2.0:User:userName"),
            None,
        )
        .unwrap();
        assert_eq!(p.apply(user(&alice(), BASE))["userName"], "asmith");
    }

    #[test]
    fn whole_extensions_by_urn() {
        let p = Projection::parse(Some(ENTERPRISE_USER), None).unwrap();
        let u = p.apply(user(&alice(), BASE));
        assert_eq!(u[ENTERPRISE_USER]["employeeNumber"], "1001");
        assert!(u.get("userName").is_none());
        let p = Projection::parse(None, Some(ROSTER_USER)).unwrap();
        let u = p.apply(user(&alice(), BASE));
        assert!(u.get(ROSTER_USER).is_none());
        assert_eq!(u["userName"], "asmith");
    }

    #[test]
    fn excluded_attributes_remove_but_not_id() {
        let p = Projection::parse(None, Some("emails,meta.version,id,groups.$ref,cards")).unwrap();
        let u = p.apply(user(&alice(), BASE));
        assert!(u.get("emails").is_none());
        assert!(u["meta"].get("version").is_none());
        assert_eq!(u["meta"]["resourceType"], "User");
        assert_eq!(u["id"], "7");
        assert!(u["groups"][0].get("$ref").is_none());
        assert!(u[ROSTER_USER].get("cards").is_none());
        assert_eq!(u[ROSTER_USER]["aliases"], json!(["alice"]));
    }

    #[test]
    fn projection_says_whether_members_are_needed() {
        let p = Projection::parse(None, Some("members")).unwrap();
        assert!(!p.shows("members"));
        assert!(p.shows("displayName"));
        assert!(Projection::parse(None, Some("members.display"))
            .unwrap()
            .shows("members"));
        assert!(!Projection::parse(Some("displayName"), None)
            .unwrap()
            .shows("members"));
        assert!(Projection::parse(Some("members.value"), None)
            .unwrap()
            .shows("Members"));
        assert!(Projection::Default.shows("members"));
        assert!(Projection::parse(Some("a"), Some("b")).is_err());
        assert!(Projection::parse(Some("emails[type eq \"work\"]"), None).is_err());
        assert!(Projection::parse(Some("bad name"), None).is_err());
    }

    #[test]
    fn group_with_and_without_members() {
        let mut g = ScimGroupRow {
            id: 3,
            path: "Staff|IT".into(),
            name: "IT".into(),
            parent: Some("Staff".into()),
            external_id: Some("g-it".into()),
            source: Some("hr".into()),
            members: Some(vec![(7, "asmith".into())]),
        };
        let v = group(&g, BASE);
        assert_eq!(v["displayName"], "Staff|IT");
        assert_eq!(v["members"][0]["value"], "7");
        assert_eq!(v["members"][0]["display"], "asmith");
        assert_eq!(v[ROSTER_GROUP]["parent"], "Staff");
        let version = v["meta"]["version"].clone();
        g.members = None;
        let v = group(&g, BASE);
        assert!(v.get("members").is_none());
        assert_eq!(v["meta"]["version"], version);
        let l = list(10, 3, vec![v]);
        assert_eq!(l["totalResults"], 10);
        assert_eq!(l["itemsPerPage"], 1);
        assert_eq!(l["startIndex"], 3);
    }
}
