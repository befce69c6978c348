//! SCIM resources (RFC 7643) as roster's users and groups.

use roster_plugin::{Group, User};
use serde_json::Value;

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// roster's own extension, served by another roster's `roster serve` (central/site).
const ROSTER: &str = "urn:roster:params:scim:schemas:extension:roster:2.0:User";
const ROSTER_GROUP: &str = "urn:roster:params:scim:schemas:extension:roster:2.0:Group";

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// The `value` of the primary entry of a multi-valued attribute, else of the first.
fn primary<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    let list = v.get(key)?.as_array()?;
    let first = list
        .iter()
        .find(|e| e["primary"] == true)
        .or(list.first())?;
    s(first, "value")
}

fn values<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a str> {
    (v.get(key).and_then(Value::as_array).into_iter().flatten()).filter_map(|e| s(e, "value"))
}

/// A User resource; Err names what it lacks.
pub fn user(u: &Value) -> Result<User, String> {
    let id = s(u, "id").ok_or("the resource has no id")?;
    let username = s(u, "userName").ok_or("the resource has no userName")?;
    let name = u.get("name").cloned().unwrap_or(Value::Null);
    let full = (s(&name, "formatted").map(str::to_string))
        .or_else(|| match (s(&name, "givenName"), s(&name, "familyName")) {
            (Some(g), Some(f)) => Some(format!("{g} {f}")),
            (g, f) => g.or(f).map(str::to_string),
        })
        .or_else(|| s(u, "displayName").map(str::to_string));
    let active = u.get("active").and_then(Value::as_bool).unwrap_or(true);
    let enterprise = u.get(ENTERPRISE).cloned().unwrap_or(Value::Null);
    let mut user = User::new(id)
        .locator(username)
        .attr("username", username)
        .values("full_name", full)
        .values("email", primary(u, "emails"))
        .values("personal_number", s(&enterprise, "employeeNumber"))
        .values("phone", primary(u, "phoneNumbers"))
        .values("language", s(u, "preferredLanguage"))
        .attr("active", if active { "true" } else { "false" })
        .attr("id", id)
        .values("externalId", s(u, "externalId"))
        .values("displayName", s(u, "displayName"))
        .values("givenName", s(&name, "givenName"))
        .values("familyName", s(&name, "familyName"))
        .values("title", s(u, "title"))
        .values("department", s(&enterprise, "department"))
        .values("lastModified", s(&u["meta"], "lastModified"));
    if let Some(ext) = u.get(ROSTER) {
        let list = |key: &str| {
            (ext.get(key).and_then(Value::as_array).into_iter().flatten())
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
        };
        user = user
            .values("aliases", list("aliases"))
            .values("cards", list("cards"))
            .values("storage", s(ext, "storage"))
            .values("notes", s(ext, "notes"))
            // Another roster's argon2 hashes: the site's terminals check PINs offline.
            .values("pins", list("pinHashes"));
    }
    // Another roster names groups by path (its group ids are its own row ids), and gives
    // each group's parent by path: the path is the group's id here.
    let key = if u.get(ROSTER).is_some() {
        "display"
    } else {
        "value"
    };
    for g in (u
        .get("groups")
        .and_then(Value::as_array)
        .into_iter()
        .flatten())
    .filter_map(|e| s(e, key))
    {
        user = user.member_of(g);
    }
    Ok(user)
}

/// Whether another roster says the user has a PIN but sent no hashes (a `read` token).
pub fn pins_withheld(u: &Value) -> bool {
    u.get(ROSTER)
        .is_some_and(|e| e["hasPin"] == true && e.get("pinHashes").is_none())
}

/// A Group resource with its members (users and groups, by id).
pub fn group(g: &Value) -> Result<Group, String> {
    let id = s(g, "id").ok_or("the resource has no id")?;
    if let Some(ext) = g.get(ROSTER_GROUP) {
        let path = s(g, "displayName").ok_or("the group has no displayName (its path)")?;
        let mut group = Group::new(path, s(ext, "name").unwrap_or(path))
            .locator(path)
            .members(values(g, "members"));
        if let Some(parent) = s(ext, "parent") {
            group = group.parent(parent);
        }
        return Ok(group);
    }
    let name = s(g, "displayName").unwrap_or(id);
    Ok(Group::new(id, name)
        .locator(name)
        .members(values(g, "members")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn users_and_groups() {
        let u = user(&json!({
            "id": "u1", "userName": "alice", "active": false,
            "name": {"givenName": "Alice", "familyName": "Smith"},
            "emails": [{"value": "a@x"}, {"value": "alice@x", "primary": true}],
            "phoneNumbers": [{"value": "+1 5"}],
            ENTERPRISE: {"employeeNumber": "E7"},
            "groups": [{"value": "g1"}],
            "meta": {"lastModified": "2026-01-01T00:00:00Z"}
        }))
        .unwrap();
        let a = |n: &str| u.attributes.iter().find(|(k, _)| k == n).unwrap().1.clone();
        assert_eq!(a("full_name"), ["Alice Smith"]);
        assert_eq!(a("email"), ["alice@x"]);
        assert_eq!(a("personal_number"), ["E7"]);
        assert_eq!(a("active"), ["false"]);
        assert_eq!(u.member_of, ["g1"]);
        assert_eq!(
            user(&json!({"id": "x"})).unwrap_err(),
            "the resource has no userName"
        );
        let g = group(&json!({"id": "g1", "displayName": "Staff", "members": [{"value": "u1"}, {"value": "g2", "type": "Group"}]})).unwrap();
        assert_eq!(
            (g.name.as_str(), g.members.clone()),
            ("Staff", vec!["u1".to_string(), "g2".into()])
        );
    }

    #[test]
    fn another_rosters_extension_and_groups_by_path() {
        let u = user(&json!({
            "id": "17", "userName": "ann",
            ROSTER: {"aliases": ["a1", "a2"], "cards": ["C1"], "hasPin": true},
            "groups": [{"value": "5", "display": "Staff|IT"}]
        }))
        .unwrap();
        let a = |n: &str| u.attributes.iter().find(|(k, _)| k == n).unwrap().1.clone();
        assert_eq!(a("aliases"), ["a1", "a2"]);
        assert_eq!(a("cards"), ["C1"]);
        assert_eq!(u.member_of, ["Staff|IT"]);
        let g = group(
            &json!({"id": "5", "displayName": "Staff|IT", "members": [{"value": "17"}],
                              ROSTER_GROUP: {"name": "IT", "parent": "Staff"}}),
        )
        .unwrap();
        assert_eq!((g.id.as_str(), g.name.as_str()), ("Staff|IT", "IT"));
        assert_eq!(g.parent.as_deref(), Some("Staff"));
        assert_eq!(g.members, ["17"]);
    }
}
