//! Directory API objects as roster's users and groups.

use roster_plugin::{Group, User};
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

fn strings(v: &Value, key: &str) -> Vec<String> {
    (v.get(key).and_then(Value::as_array).into_iter().flatten())
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect()
}

/// The `value` of the first entry of a list (`phones`, `externalIds`, `organizations`)
/// that `pick` accepts.
fn pick<'a>(v: &'a Value, list: &str, mut pick: impl FnMut(&Value) -> bool) -> Option<&'a Value> {
    v.get(list)?.as_array()?.iter().find(|e| pick(e))
}

/// The primary phone, else a mobile one, else the first.
fn phone(u: &Value) -> Option<String> {
    let value = |e: &Value| s(e, "value").map(str::to_string);
    (pick(u, "phones", |p| p["primary"] == true).and_then(value))
        .or_else(|| pick(u, "phones", |p| p["type"] == "mobile").and_then(value))
        .or_else(|| pick(u, "phones", |_| true).and_then(value))
}

/// A user of `users.list` (`projection=full`); None without an id or a primary email (a
/// failed entry, `why` says which).
pub fn user(u: &Value) -> Result<User, String> {
    let id = s(u, "id").ok_or("the user has no id")?;
    let email = s(u, "primaryEmail").ok_or("the user has no primaryEmail")?;
    let name = u.get("name").cloned().unwrap_or(Value::Null);
    let (given, family) = (s(&name, "givenName"), s(&name, "familyName"));
    let full = s(&name, "fullName")
        .map(str::to_string)
        .or_else(|| match (given, family) {
            (Some(g), Some(f)) => Some(format!("{g} {f}")),
            (g, f) => g.or(f).map(str::to_string),
        });
    let mut aliases = strings(u, "aliases");
    aliases.extend(strings(u, "nonEditableAliases"));
    let number = pick(u, "externalIds", |e| e["type"] == "organization")
        .and_then(|e| s(e, "value"))
        .map(str::to_string);
    let org = pick(u, "organizations", |o| o["primary"] == true)
        .or_else(|| pick(u, "organizations", |_| true))
        .cloned()
        .unwrap_or(Value::Null);
    let suspended = u["suspended"] == true;
    let ou = s(u, "orgUnitPath").unwrap_or("/");
    let flag = |b: bool| if b { "true" } else { "false" };
    // Every user has the same attributes, in the same order: they travel as rows.
    Ok(User::new(id)
        .locator(email)
        .attr("username", email)
        .values("full_name", full)
        .attr("email", email)
        .values("aliases", aliases)
        .values("personal_number", number)
        .values("phone", phone(u))
        .attr("active", flag(!suspended))
        .attr("id", id)
        .attr("primaryEmail", email)
        .values("givenName", given)
        .values("familyName", family)
        .attr("orgUnitPath", ou)
        .attr("suspended", flag(suspended))
        .attr("archived", flag(u["archived"] == true))
        .attr("isAdmin", flag(u["isAdmin"] == true))
        .values("department", s(&org, "department"))
        .values("title", s(&org, "title"))
        .values("costCenter", s(&org, "costCenter")))
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

    fn attr<'a>(u: &'a User, name: &str) -> &'a [String] {
        &u.attributes.iter().find(|(n, _)| n == name).unwrap().1
    }

    #[test]
    fn a_full_projection_user_fills_roster_fields() {
        let u = user(&json!({
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

        let u = user(&json!({"id": "2", "primaryEmail": "b@ex.com", "suspended": true,
            "name": {"givenName": "Bob"}, "phones": [{"value": "1", "type": "work"}, {"value": "2", "type": "mobile"}]}))
        .unwrap();
        assert_eq!(attr(&u, "full_name"), ["Bob"]);
        assert_eq!(attr(&u, "active"), ["false"]);
        assert_eq!(attr(&u, "phone"), ["2"]);
        assert_eq!(attr(&u, "orgUnitPath"), ["/"]);
        assert!(attr(&u, "personal_number").is_empty());
        assert_eq!(
            user(&json!({"id": "3"})).unwrap_err(),
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
