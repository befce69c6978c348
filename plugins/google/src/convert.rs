//! Directory API objects as roster's users and groups.

use crate::wire;
use roster_plugin::{Group, Row};
use serde::Deserialize;
use serde_json::Value;

/// Group ids: users' anchors are Google ids too, so groups and OUs carry a prefix.
pub fn ou_id(path: &str) -> String {
    format!("ou:{path}")
}

pub fn group_id(id: &str) -> String {
    format!("group:{id}")
}

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// The primary phone, else a mobile one, else the first.
fn phone(u: &wire::User) -> Option<String> {
    let phones = &u.phones.0;
    let value = |e: &wire::Obj<wire::Entry>| e.0.value.filled().map(str::to_string);
    (phones.iter().find(|p| p.0.primary.0).and_then(value))
        .or_else(|| (phones.iter().find(|p| p.0.kind.get() == Some("mobile"))).and_then(value))
        .or_else(|| phones.first().and_then(value))
}

/// A user of `users.list` (`projection=full`), as the Directory API's JSON value: for
/// answers the typed page read refused (see [`wire`]).
pub fn user_value(u: &Value) -> Result<Row, String> {
    let w = wire::User::deserialize(u).map_err(|e| format!("the user is not readable: {e}"))?;
    user(&w)
}

/// A user of `users.list` (`projection=full`) as the values of [`COLUMNS`]; an error without
/// an id or a primary email (a failed entry, the error says which).
pub fn user(u: &wire::User) -> Result<Row, String> {
    let id = u.id.filled().ok_or("the user has no id")?;
    let email = u
        .primary_email
        .filled()
        .ok_or("the user has no primaryEmail")?;
    let name = &u.name.0;
    let (given, family) = (name.given_name.filled(), name.family_name.filled());
    let full = (name.full_name.filled())
        .map(str::to_string)
        .or_else(|| match (given, family) {
            (Some(g), Some(f)) => Some(format!("{g} {f}")),
            (g, f) => g.or(f).map(str::to_string),
        });
    let aliases: Vec<String> = (u.aliases.0.iter())
        .chain(&u.non_editable_aliases.0)
        .filter_map(|a| a.get().map(str::to_string))
        .collect();
    let number = (u.external_ids.0.iter())
        .find(|e| e.0.kind.get() == Some("organization"))
        .and_then(|e| e.0.value.filled())
        .map(str::to_string);
    let orgs = &u.organizations.0;
    let org = orgs.iter().find(|o| o.0.primary.0).or(orgs.first());
    let org_field = |f: for<'o> fn(&'o wire::Organization<'o>) -> &'o wire::Str<'o>| {
        org.and_then(|o| f(&o.0).filled())
    };
    let suspended = u.suspended.0;
    let ou = u.org_unit_path.filled().unwrap_or("/");
    let flag = |b: bool| vec![if b { "true" } else { "false" }.to_string()];
    let one = |s: &str| vec![s.to_string()];
    let opt = |s: Option<&str>| s.map(str::to_string).into_iter().collect::<Vec<_>>();
    // The values of COLUMNS, in order: every user travels as a row, with no attribute names
    // to allocate and compare.
    let values = vec![
        one(email),
        full.into_iter().collect(),
        one(email),
        aliases,
        number.into_iter().collect(),
        phone(u).into_iter().collect(),
        flag(!suspended),
        one(id),
        one(email),
        opt(given),
        opt(family),
        one(ou),
        flag(suspended),
        flag(u.archived.0),
        flag(u.is_admin.0),
        opt(org_field(|o| &o.department)),
        opt(org_field(|o| &o.title)),
        opt(org_field(|o| &o.cost_center)),
    ];
    debug_assert_eq!(values.len(), COLUMNS.len());
    Ok(Row::new(id, values).locator(email))
}

/// The attributes of every user, in the order of [`user`]'s values.
pub const COLUMNS: [&str; 18] = [
    "username",
    "full_name",
    "email",
    "aliases",
    "personal_number",
    "phone",
    "active",
    "id",
    "primaryEmail",
    "givenName",
    "familyName",
    "orgUnitPath",
    "suspended",
    "archived",
    "isAdmin",
    "department",
    "title",
    "costCenter",
];

/// [`COLUMNS`] as the run's columns.
pub fn columns() -> Vec<String> {
    COLUMNS.map(str::to_string).to_vec()
}

/// An organisational unit of `orgunits.list` as a group under its parent (`/Staff/IT` is
/// `Staff|IT`); the root `/` is no group.
pub fn org_unit(ou: &Value) -> Option<Group> {
    let path = s(ou, "orgUnitPath")?;
    let name = s(ou, "name").unwrap_or_else(|| path.rsplit('/').next().unwrap_or(path));
    let mut g = Group::new(ou_id(path), name)
        .locator(path)
        .attr("orgUnitPath", path);
    if let Some(id) = s(ou, "orgUnitId") {
        g = g.attr("orgUnitId", id);
    }
    match s(ou, "parentOrgUnitPath") {
        Some(parent) if parent != "/" => Some(g.parent(ou_id(parent))),
        _ => Some(g),
    }
}

/// The parent path of an OU path (`/Staff/IT` → `/Staff`).
pub fn parent_path(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attr<'a>(u: &'a Row, name: &str) -> &'a [String] {
        &u.values[COLUMNS.iter().position(|c| *c == name).unwrap()]
    }

    #[test]
    fn a_full_projection_user_fills_roster_fields() {
        let u = user_value(&json!({
            "id": "1001", "primaryEmail": "alice@ex.com",
            "name": {"givenName": "Alice", "familyName": "Smith", "fullName": "Alice Smith"},
            "suspended": false, "orgUnitPath": "/Staff/IT",
            "aliases": ["al@ex.com"], "nonEditableAliases": ["alice@ex.test-google-a.com"],
            "externalIds": [{"value": "X1", "type": "custom"}, {"value": "E-42", "type": "organization"}],
            "phones": [{"value": "+1 555", "type": "work"}, {"value": "+1 777", "type": "mobile", "primary": true}],
            "organizations": [{"department": "IT", "title": "Admin", "primary": true}]
        }))
        .unwrap();
        assert_eq!(u.id, "1001");
        assert_eq!(attr(&u, "username"), ["alice@ex.com"]);
        assert_eq!(attr(&u, "full_name"), ["Alice Smith"]);
        assert_eq!(
            attr(&u, "aliases"),
            ["al@ex.com", "alice@ex.test-google-a.com"]
        );
        assert_eq!(attr(&u, "personal_number"), ["E-42"]);
        assert_eq!(attr(&u, "phone"), ["+1 777"]);
        assert_eq!(attr(&u, "active"), ["true"]);
        assert_eq!(attr(&u, "department"), ["IT"]);

        let u = user_value(&json!({"id": "2", "primaryEmail": "b@ex.com", "suspended": true,
            "name": {"givenName": "Bob"}, "phones": [{"value": "1", "type": "work"}, {"value": "2", "type": "mobile"}]}))
        .unwrap();
        assert_eq!(attr(&u, "full_name"), ["Bob"]);
        assert_eq!(attr(&u, "active"), ["false"]);
        assert_eq!(attr(&u, "phone"), ["2"]);
        assert_eq!(attr(&u, "orgUnitPath"), ["/"]);
        assert!(attr(&u, "personal_number").is_empty());
        assert_eq!(
            user_value(&json!({"id": "3"})).unwrap_err(),
            "the user has no primaryEmail"
        );
    }

    #[test]
    fn org_units_hang_under_their_parents() {
        let g = org_unit(
            &json!({"orgUnitPath": "/Staff/IT", "name": "IT", "parentOrgUnitPath": "/Staff"}),
        )
        .unwrap();
        assert_eq!((g.id.as_str(), g.name.as_str()), ("ou:/Staff/IT", "IT"));
        assert_eq!(g.parent.as_deref(), Some("ou:/Staff"));
        let g =
            org_unit(&json!({"orgUnitPath": "/Staff", "name": "Staff", "parentOrgUnitPath": "/"}))
                .unwrap();
        assert_eq!(g.parent, None);
        assert_eq!(parent_path("/Staff/IT"), "/Staff");
        assert_eq!(parent_path("/Staff"), "/");
    }
}
