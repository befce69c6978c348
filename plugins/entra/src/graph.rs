//! Microsoft Graph v1.0: the fields roster asks for, pages, and users as rows.

use serde_json::{Map, Value};

use crate::config::Settings;
use crate::Error;

/// Graph fields fetched for every user (`$select`); each is also sent raw, under its Graph
/// name, for `[sources.NAME.map]` templates.
pub const FIELDS: &[&str] = &[
    "id",
    "userPrincipalName",
    "mail",
    "displayName",
    "givenName",
    "surname",
    "accountEnabled",
    "employeeId",
    "mobilePhone",
    "preferredLanguage",
    "onPremisesSamAccountName",
    "department",
    "jobTitle",
    "officeLocation",
];

/// The roster fields every row starts with, in this order.
pub const ROSTER_COLUMNS: &[&str] = &[
    "username",
    "full_name",
    "email",
    "personal_number",
    "phone",
    "language",
    "active",
    "aliases",
];

/// Largest page Graph serves.
pub const PAGE_SIZE: u32 = 999;

/// Characters MyQ drops from "aliases without invalid characters" (besides white space).
const INVALID_ALIAS_CHARS: &[char] = &[
    '"', '[', ']', ':', ';', '|', '=', '+', '*', '?', '<', '>', '/', '\\', ',', '.',
];

/// The Graph fields of a run: [`FIELDS`] plus those the alias templates name.
pub fn fields(settings: &Settings) -> Vec<String> {
    let mut out: Vec<String> = FIELDS.iter().map(|f| f.to_string()).collect();
    for f in settings.template_fields() {
        if !out.iter().any(|o| o.eq_ignore_ascii_case(&f)) {
            out.push(f);
        }
    }
    out
}

/// A batch's columns: the roster fields, then the raw Graph fields.
pub fn columns(fields: &[String]) -> Vec<String> {
    (ROSTER_COLUMNS.iter().map(|c| c.to_string()))
        .chain(fields.iter().cloned())
        .collect()
}

/// One page of a Graph collection.
#[derive(Debug, Default)]
pub struct Page {
    pub items: Vec<Map<String, Value>>,
    pub next_link: Option<String>,
    pub delta_link: Option<String>,
    pub count: Option<u64>,
}

impl Page {
    pub fn parse(body: &[u8], what: &str) -> Result<Page, Error> {
        let bad =
            |why: String| Error::BadData(format!("Graph sent a malformed page of {what}: {why}"));
        let value: Value = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
        let Value::Object(mut map) = value else {
            return Err(bad("not a JSON object".into()));
        };
        let items = match map.remove("value") {
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    Value::Object(o) => Ok(o),
                    other => Err(bad(format!("an item is not an object: {other}"))),
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err(bad("no `value` array".into())),
        };
        let link = |map: &mut Map<String, Value>, key: &str| match map.remove(key) {
            Some(Value::String(s)) => Ok(Some(s)),
            None | Some(Value::Null) => Ok(None),
            Some(other) => Err(bad(format!("{key} is not a string: {other}"))),
        };
        Ok(Page {
            next_link: link(&mut map, "@odata.nextLink")?,
            delta_link: link(&mut map, "@odata.deltaLink")?,
            count: map.get("@odata.count").and_then(Value::as_u64),
            items,
        })
    }
}

/// `code: message` of a Graph error body, if it is one.
pub fn error_text(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    let e = &v["error"];
    let text = |v: &Value| v.as_str().map(str::to_string);
    match (text(&e["code"]), text(&e["message"])) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c,
        (None, Some(m)) => m,
        // The token endpoint's shape (`error` is a string).
        _ => text(e).unwrap_or_default(),
    }
}

/// The error code of a Graph error body (`syncStateNotFound`, ...).
pub fn error_code(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v["error"]["code"].as_str().map(str::to_string)
}

/// A field as text: strings as they are, booleans and numbers printed, null or missing: None.
pub fn text<'a>(u: &'a Map<String, Value>, field: &str) -> Option<std::borrow::Cow<'a, str>> {
    let v = u.get(field).or_else(|| {
        u.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(field))
            .map(|(_, v)| v)
    })?;
    match v {
        Value::String(s) => Some(s.as_str().into()),
        Value::Bool(b) => Some(if *b { "true" } else { "false" }.into()),
        Value::Number(n) => Some(n.to_string().into()),
        _ => None,
    }
}

fn nonempty(u: &Map<String, Value>, field: &str) -> Option<String> {
    text(u, field)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Whether Graph says the account is disabled (a missing flag counts as enabled).
pub fn disabled(u: &Map<String, Value>) -> bool {
    u.get("accountEnabled") == Some(&Value::Bool(false))
}

/// A user as a row: values in the order of [`columns`]. Err is the reason of a failed entry.
pub fn user_row(
    u: &Map<String, Value>,
    settings: &Settings,
    fields: &[String],
) -> Result<Vec<Vec<String>>, String> {
    let one = |v: Option<String>| v.into_iter().collect::<Vec<_>>();
    let upn = nonempty(u, "userPrincipalName").ok_or("the user has no userPrincipalName")?;
    let full_name = {
        let parts: Vec<String> = ["givenName", "surname"]
            .iter()
            .filter_map(|f| nonempty(u, f))
            .collect();
        if !parts.is_empty() {
            Some(parts.join(" "))
        } else if settings.use_display_name {
            nonempty(u, "displayName")
        } else {
            None
        }
    };
    let email = nonempty(u, "mail").or_else(|| Some(upn.clone()));
    let active = if disabled(u) { "false" } else { "true" };
    let mut aliases: Vec<String> = Vec::new();
    let add = |a: String, aliases: &mut Vec<String>| {
        if !a.is_empty()
            && !a.eq_ignore_ascii_case(&upn)
            && !aliases.iter().any(|x| x.eq_ignore_ascii_case(&a))
        {
            aliases.push(a);
        }
    };
    for t in &settings.alias_templates {
        let lookup = |f: &str| -> Option<&str> {
            match u.get(f).or_else(|| {
                u.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(f))
                    .map(|(_, v)| v)
            }) {
                Some(Value::String(s)) => Some(s.as_str()),
                _ => None,
            }
        };
        if let Some(a) = t.render(lookup) {
            add(a.clone(), &mut aliases);
            if settings.aliases_strip_invalid {
                add(strip_invalid(&a), &mut aliases);
            }
        }
    }
    let mut row = Vec::with_capacity(ROSTER_COLUMNS.len() + fields.len());
    row.push(vec![upn]);
    row.push(one(full_name));
    row.push(one(email));
    row.push(one(nonempty(u, "employeeId")));
    row.push(one(nonempty(u, "mobilePhone")));
    row.push(one(nonempty(u, "preferredLanguage")));
    row.push(vec![active.to_string()]);
    row.push(aliases);
    for f in fields {
        row.push(one(text(u, f).map(|s| s.into_owned())));
    }
    Ok(row)
}

/// The alias without the characters MyQ calls invalid, and without white space.
pub fn strip_invalid(alias: &str) -> String {
    alias
        .chars()
        .filter(|c| !c.is_whitespace() && !INVALID_ALIAS_CHARS.contains(c))
        .collect()
}

/// Where a user is, for messages: its UPN, else its id.
pub fn user_locator(u: &Map<String, Value>) -> String {
    nonempty(u, "userPrincipalName")
        .or_else(|| nonempty(u, "id"))
        .unwrap_or_else(|| "a user without id".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(extra: Value) -> Settings {
        let mut m = json!({"tenant_id": "t", "client_id": "c"});
        for (k, v) in extra.as_object().unwrap() {
            m[k] = v.clone();
        }
        Settings::from_json(&m.to_string()).unwrap()
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn col<'a>(row: &'a [Vec<String>], fields: &[String], name: &str) -> &'a [String] {
        let i = columns(fields).iter().position(|c| c == name).unwrap();
        &row[i]
    }

    #[test]
    fn a_user_becomes_a_row_with_roster_fields_and_raw_fields() {
        let s =
            settings(json!({"alias_fields": "%onPremisesSamAccountName%;%givenName%.%surname%"}));
        let f = fields(&s);
        let u = obj(json!({
            "id": "11-22", "userPrincipalName": "ann@contoso.test", "mail": null,
            "givenName": "Ann", "surname": "Lee", "displayName": "Ann L.", "accountEnabled": true,
            "employeeId": "E7", "mobilePhone": "+420 1", "preferredLanguage": "cs-CZ",
            "onPremisesSamAccountName": "alee", "department": "IT"
        }));
        let row = user_row(&u, &s, &f).unwrap();
        assert_eq!(row.len(), columns(&f).len());
        assert_eq!(col(&row, &f, "username"), ["ann@contoso.test"]);
        assert_eq!(col(&row, &f, "full_name"), ["Ann Lee"]);
        assert_eq!(col(&row, &f, "email"), ["ann@contoso.test"]);
        assert_eq!(col(&row, &f, "personal_number"), ["E7"]);
        assert_eq!(col(&row, &f, "phone"), ["+420 1"]);
        assert_eq!(col(&row, &f, "language"), ["cs-CZ"]);
        assert_eq!(col(&row, &f, "active"), ["true"]);
        assert_eq!(col(&row, &f, "aliases"), ["alee", "Ann.Lee"]);
        assert_eq!(col(&row, &f, "department"), ["IT"]);
        assert_eq!(col(&row, &f, "accountEnabled"), ["true"]);
        assert!(col(&row, &f, "mail").is_empty());
    }

    #[test]
    fn display_name_fills_in_and_invalid_characters_are_stripped() {
        let s = settings(json!({"alias_fields": "%displayName%", "aliases_strip_invalid": true}));
        let f = fields(&s);
        let u = obj(json!({"id": "1", "userPrincipalName": "x@y", "mail": "X@y",
                           "displayName": "O'Neil, Pat [Ops]", "accountEnabled": false}));
        let row = user_row(&u, &s, &f).unwrap();
        assert_eq!(col(&row, &f, "full_name"), ["O'Neil, Pat [Ops]"]);
        assert_eq!(
            col(&row, &f, "aliases"),
            ["O'Neil, Pat [Ops]", "O'NeilPatOps"]
        );
        assert_eq!(col(&row, &f, "email"), ["X@y"]);
        assert_eq!(col(&row, &f, "active"), ["false"]);
        let s = settings(json!({"use_display_name": false}));
        let row = user_row(&u, &s, &fields(&s)).unwrap();
        assert!(col(&row, &fields(&s), "full_name").is_empty());
        assert!(col(&row, &fields(&s), "aliases").is_empty());
    }

    #[test]
    fn a_user_without_upn_is_a_failed_entry() {
        let s = settings(json!({}));
        assert!(user_row(&obj(json!({"id": "1"})), &s, &fields(&s)).is_err());
    }

    #[test]
    fn pages_and_errors() {
        let p = Page::parse(
            br#"{"value":[{"id":"1"}],"@odata.nextLink":"http://x/next","@odata.count":5}"#,
            "users",
        )
        .unwrap();
        assert_eq!(p.items.len(), 1);
        assert_eq!(p.next_link.as_deref(), Some("http://x/next"));
        assert_eq!(p.count, Some(5));
        assert!(matches!(
            Page::parse(b"{\"value\":[{\"id\"", "users"),
            Err(Error::BadData(_))
        ));
        assert!(matches!(
            Page::parse(b"{}", "users"),
            Err(Error::BadData(_))
        ));
        let e = br#"{"error":{"code":"syncStateNotFound","message":"gone"}}"#;
        assert_eq!(error_text(e), "syncStateNotFound: gone");
        assert_eq!(error_code(e).as_deref(), Some("syncStateNotFound"));
    }
}
