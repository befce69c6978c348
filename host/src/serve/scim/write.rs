//! The write side's pure half: a SCIM User body (POST, PUT, or a resource after PATCH)
//! turned into the attributes a roster source entry has (`username`, `full_name`, ...), so
//! pushed users go through the source's mapping, limits and reconcile like any other entry;
//! and PATCH operations (RFC 7644 §3.5.2) applied to a resource, with the forms Entra ID and
//! Okta send (`Replace`/`Add` in any case, path-less replaces with a value object whose keys
//! may be paths, `"False"` as a string, multi-valued attributes as arrays with `primary`).

use super::error::{ScimError, ScimType};
use super::filter::{self, AttrPath, CompareOp, Filter, Literal};
use super::{ENTERPRISE_USER, PATCH_OP, ROSTER_USER, USER_SCHEMA};
use crate::runtime::{Attribute, ObjectKind, SourceObject};
use serde_json::{Map, Value};

/// How many operations one PATCH may carry.
pub const MAX_OPERATIONS: usize = 1000;

/// A pushed user as a source entry.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Entry {
    /// The anchor of the pushed user.
    pub external_id: Option<String>,
    /// roster field name → values, as a connector would send them.
    pub attributes: Vec<(String, Vec<String>)>,
    /// Whether the body carried PINs at all (without them, the user's PINs stay).
    pub pins_given: bool,
}

impl Entry {
    /// The entry as the source object a connector would send, for the source's mapper (its
    /// `[map]` templates, field limits, `lowercase_usernames`). `anchor` is the externalId
    /// or, without one, an anchor the caller made.
    pub fn to_object(&self, anchor: &str) -> SourceObject {
        SourceObject {
            kind: ObjectKind::User,
            id: anchor.to_string(),
            locator: Some(format!("SCIM user {anchor}")),
            attributes: self
                .attributes
                .iter()
                .map(|(name, values)| Attribute {
                    name: name.clone(),
                    values: values.clone(),
                })
                .collect(),
            member_of: vec![],
            members: vec![],
            parent: None,
        }
    }
}

/// A mapping refusal (a field over its limit, a bad value) as SCIM's invalidValue.
pub fn mapping_error(message: String) -> ScimError {
    ScimError::invalid_value(message)
}

fn invalid(detail: impl Into<String>) -> ScimError {
    ScimError::invalid_value(detail)
}

fn text(v: &Value, what: &str) -> Result<Option<String>, ScimError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        _ => Err(invalid(format!("{what} must be a string"))),
    }
}

/// `true`, `false`, or the strings Entra sends (`"True"`, `"False"`).
pub fn boolean(v: &Value, what: &str) -> Result<bool, ScimError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(invalid(format!("{what} must be true or false"))),
    }
}

/// A case-insensitive key lookup.
fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// The value of a multi-valued attribute that roster keeps one of: the primary one, else
/// the `work` one, else the first.
fn pick(v: &Value, what: &str) -> Result<Option<String>, ScimError> {
    let items = match v {
        Value::Null => return Ok(None),
        Value::Array(items) => items,
        _ => return Err(invalid(format!("{what} must be an array"))),
    };
    let objs: Vec<&Map<String, Value>> = items
        .iter()
        .map(|i| {
            i.as_object()
                .ok_or_else(|| invalid(format!("{what} holds objects")))
        })
        .collect::<Result<_, _>>()?;
    let primary = objs.iter().find(|o| {
        get(o, "primary")
            .map(|p| boolean(p, "primary").unwrap_or(false))
            .unwrap_or(false)
    });
    let work = objs.iter().find(|o| {
        get(o, "type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("work"))
    });
    match primary.or(work).or(objs.first()) {
        Some(o) => text(get(o, "value").unwrap_or(&Value::Null), what),
        None => Ok(None),
    }
}

fn strings(v: &Value, what: &str) -> Result<Vec<String>, ScimError> {
    match v {
        Value::Null => Ok(vec![]),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                // Simple values, or `{"value": ...}` as some clients write them.
                Value::Object(o) => text(get(o, "value").unwrap_or(&Value::Null), what),
                v => text(v, what),
            })
            .filter_map(Result::transpose)
            .collect(),
        v => Ok(text(v, what)?.into_iter().collect()),
    }
}

/// A User body as a source entry. Read-only attributes (`id`, `groups`, `meta`, `source`,
/// `hasPin`) are ignored, as RFC 7643 says; `password` is not kept (roster has none).
pub fn user_entry(body: &Value) -> Result<Entry, ScimError> {
    let Value::Object(b) = body else {
        return Err(ScimError::bad_request(
            ScimType::InvalidSyntax,
            "the body must be a JSON object",
        ));
    };
    if let Some(schemas) = get(b, "schemas") {
        let has_user = schemas
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s.as_str() == Some(USER_SCHEMA)));
        if !has_user {
            return Err(ScimError::bad_request(
                ScimType::InvalidSyntax,
                format!("schemas must list {USER_SCHEMA}"),
            ));
        }
    }
    let mut e = Entry::default();
    let mut put = |field: &str, values: Vec<String>| {
        if !values.is_empty() {
            e.attributes.push((field.to_string(), values));
        }
    };
    let username = get(b, "userName")
        .map(|v| text(v, "userName"))
        .transpose()?
        .flatten()
        .ok_or_else(|| invalid("userName is required"))?;
    put("username", vec![username]);
    let name = get(b, "name").and_then(Value::as_object);
    let formatted = name
        .and_then(|n| get(n, "formatted"))
        .map(|v| text(v, "name.formatted"));
    let given = name
        .and_then(|n| get(n, "givenName"))
        .map(|v| text(v, "name.givenName"));
    let family = name
        .and_then(|n| get(n, "familyName"))
        .map(|v| text(v, "name.familyName"));
    let display = get(b, "displayName").map(|v| text(v, "displayName"));
    let joined = [given.transpose()?.flatten(), family.transpose()?.flatten()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let full = formatted
        .transpose()?
        .flatten()
        .or((!joined.is_empty()).then_some(joined))
        .or(display.transpose()?.flatten());
    put("full_name", full.into_iter().collect());
    if let Some(v) = get(b, "emails") {
        put("email", pick(v, "emails")?.into_iter().collect());
    }
    if let Some(v) = get(b, "phoneNumbers") {
        put("phone", pick(v, "phoneNumbers")?.into_iter().collect());
    }
    if let Some(v) = get(b, "preferredLanguage") {
        put(
            "language",
            text(v, "preferredLanguage")?.into_iter().collect(),
        );
    }
    if let Some(v) = get(b, "active") {
        let active = boolean(v, "active")?;
        put("active", vec![active.to_string()]);
    }
    if let Some(v) = get(b, "externalId") {
        e.external_id = text(v, "externalId")?;
    }
    if let Some(ent) = get(b, ENTERPRISE_USER) {
        let ent = ent
            .as_object()
            .ok_or_else(|| invalid(format!("{ENTERPRISE_USER} must be an object")))?;
        if let Some(v) = get(ent, "employeeNumber") {
            put(
                "personal_number",
                text(v, "employeeNumber")?.into_iter().collect(),
            );
        }
    }
    if let Some(ext) = get(b, ROSTER_USER) {
        let ext = ext
            .as_object()
            .ok_or_else(|| invalid(format!("{ROSTER_USER} must be an object")))?;
        for (scim, field) in [("aliases", "aliases"), ("cards", "cards")] {
            if let Some(v) = get(ext, scim) {
                put(field, strings(v, scim)?);
            }
        }
        if let Some(v) = get(ext, "pins") {
            let pins = strings(v, "pins")?;
            e.pins_given = true;
            put("pins", pins);
        }
        for (scim, field) in [("storage", "storage"), ("notes", "notes")] {
            if let Some(v) = get(ext, scim) {
                put(field, text(v, scim)?.into_iter().collect());
            }
        }
    }
    Ok(e)
}

/// Whether `item` (one value of a multi-valued attribute) matches a value filter over its
/// sub-attributes. Strings compare case-insensitively, as roster's multi-valued
/// sub-attributes are caseExact=false.
pub fn matches(f: &Filter, item: &Value) -> bool {
    match f {
        Filter::And(a, b) => matches(a, item) && matches(b, item),
        Filter::Or(a, b) => matches(a, item) || matches(b, item),
        Filter::Not(a) => !matches(a, item),
        Filter::ValuePath(..) => false,
        Filter::Present(p) => sub_value(item, p).is_some_and(|v| !v.is_null()),
        Filter::Compare(p, op, lit) => {
            let v = sub_value(item, p);
            compare(v, *op, lit)
        }
    }
}

fn sub_value<'a>(item: &'a Value, p: &AttrPath) -> Option<&'a Value> {
    match item {
        Value::Object(o) => get(o, &p.attr),
        // A simple value is its own `value`.
        v if p.attr.eq_ignore_ascii_case("value") => Some(v),
        _ => None,
    }
}

fn compare(v: Option<&Value>, op: CompareOp, lit: &Literal) -> bool {
    let v = v.unwrap_or(&Value::Null);
    match (lit, op) {
        (Literal::Null, CompareOp::Eq) => return v.is_null(),
        (Literal::Null, CompareOp::Ne) => return !v.is_null(),
        (Literal::Null, _) => return false,
        (_, CompareOp::Ne) => return !compare(Some(v), CompareOp::Eq, lit),
        _ => {}
    }
    if let Literal::Bool(b) = lit {
        return op == CompareOp::Eq && boolean(v, "").ok() == Some(*b);
    }
    let have = match v {
        Value::String(s) => s.to_lowercase(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return false,
    };
    let want = match lit {
        Literal::Str(s) => s.to_lowercase(),
        Literal::Num(n) => n.to_string(),
        _ => return false,
    };
    match op {
        CompareOp::Eq => have == want,
        CompareOp::Co => have.contains(&want),
        CompareOp::Sw => have.starts_with(&want),
        CompareOp::Ew => have.ends_with(&want),
        CompareOp::Gt => have > want,
        CompareOp::Ge => have >= want,
        CompareOp::Lt => have < want,
        CompareOp::Le => have <= want,
        CompareOp::Ne => unreachable!("handled above"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Remove,
    Replace,
}

/// Applies a PatchOp body to `resource` (a SCIM resource as JSON). Paths name attributes
/// case-insensitively; a path with an extension URN reaches into the extension object.
pub fn apply_patch(resource: &mut Value, body: &Value) -> Result<(), ScimError> {
    let syntax = |d: &str| ScimError::bad_request(ScimType::InvalidSyntax, d.to_string());
    let b = body
        .as_object()
        .ok_or_else(|| syntax("the body must be a JSON object"))?;
    let schemas_ok = get(b, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|s| s.as_str() == Some(PATCH_OP)));
    if !schemas_ok {
        return Err(syntax(&format!("schemas must list {PATCH_OP}")));
    }
    let ops = get(b, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| syntax("Operations must be an array"))?;
    if ops.len() > MAX_OPERATIONS {
        return Err(ScimError::bad_request(
            ScimType::TooMany,
            format!("more than {MAX_OPERATIONS} operations"),
        ));
    }
    let r = resource
        .as_object_mut()
        .ok_or_else(|| syntax("the resource is not an object"))?;
    for op in ops {
        let o = op
            .as_object()
            .ok_or_else(|| syntax("an operation is an object"))?;
        let kind = match get(o, "op")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
        {
            Some(k) if k == "add" => Op::Add,
            Some(k) if k == "remove" => Op::Remove,
            Some(k) if k == "replace" => Op::Replace,
            _ => return Err(syntax("op must be add, remove or replace")),
        };
        let value = get(o, "value").cloned();
        match get(o, "path").and_then(Value::as_str) {
            // A path that is an extension's URN: the whole extension object.
            Some(path)
                if path.eq_ignore_ascii_case(ENTERPRISE_USER)
                    || path.eq_ignore_ascii_case(ROSTER_USER) =>
            {
                let key = key_in(r, path);
                match (kind, value) {
                    (Op::Remove, _) => {
                        r.remove(&key);
                    }
                    (_, Some(Value::Object(v))) => {
                        let slot = r.entry(key).or_insert_with(|| Value::Object(Map::new()));
                        match (kind, slot.as_object_mut()) {
                            (Op::Add, Some(o)) => o.extend(v),
                            _ => *slot = Value::Object(v),
                        }
                    }
                    _ => return Err(invalid(format!("{path} takes an object"))),
                }
            }
            Some(path) => {
                let path = filter::parse_path(path)?;
                apply_one(r, kind, &path, value)?;
            }
            None => {
                if kind == Op::Remove {
                    return Err(ScimError::bad_request(
                        ScimType::NoTarget,
                        "remove needs a path",
                    ));
                }
                let Some(Value::Object(values)) = value else {
                    return Err(invalid("an operation without a path takes an object value"));
                };
                // Each key is itself a path (Entra writes `name.givenName` or an extension
                // URN with its attribute as keys).
                for (k, v) in values {
                    let is_ext = r
                        .keys()
                        .any(|e| e.starts_with("urn:") && e.eq_ignore_ascii_case(&k))
                        || k.eq_ignore_ascii_case(ENTERPRISE_USER)
                        || k.eq_ignore_ascii_case(ROSTER_USER);
                    if is_ext {
                        let Value::Object(inner) = v else {
                            return Err(invalid(format!("{k} takes an object")));
                        };
                        for (ik, iv) in inner {
                            let mut p = filter::parse_path(&ik)?;
                            p.attr.uri = Some(k.clone());
                            apply_one(r, kind, &p, Some(iv))?;
                        }
                    } else {
                        let p = filter::parse_path(&k)?;
                        apply_one(r, kind, &p, Some(v))?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// The object that holds `path`'s attribute: the resource, or an extension object (made
/// when missing).
fn container<'a>(r: &'a mut Map<String, Value>, path: &AttrPath) -> &'a mut Map<String, Value> {
    let ext = path.uri.as_deref().filter(|u| {
        !u.eq_ignore_ascii_case(USER_SCHEMA) && !u.starts_with("urn:ietf:params:scim:schemas:core:")
    });
    match ext {
        None => r,
        Some(uri) => {
            let key = r
                .keys()
                .find(|k| k.eq_ignore_ascii_case(uri))
                .cloned()
                .unwrap_or_else(|| uri.to_string());
            let slot = r.entry(key).or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            slot.as_object_mut().expect("an object")
        }
    }
}

/// The sub-attributes a filter of equalities (`type eq "work"`, joined by `and`) pins down,
/// as a new value's object; None for any other filter.
fn seed(f: &Filter) -> Option<Map<String, Value>> {
    match f {
        Filter::Compare(path, CompareOp::Eq, lit) if path.sub.is_none() => {
            let v = match lit {
                Literal::Str(s) => Value::String(s.clone()),
                Literal::Bool(b) => Value::Bool(*b),
                Literal::Num(n) => Value::Number(n.clone()),
                Literal::Null => return None,
            };
            Some(Map::from_iter([(path.attr.clone(), v)]))
        }
        Filter::And(a, b) => {
            let mut m = seed(a)?;
            m.extend(seed(b)?);
            Some(m)
        }
        _ => None,
    }
}

fn key_in(obj: &Map<String, Value>, name: &str) -> String {
    obj.keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| name.to_string())
}

fn apply_one(
    r: &mut Map<String, Value>,
    kind: Op,
    p: &filter::PatchPath,
    value: Option<Value>,
) -> Result<(), ScimError> {
    if kind != Op::Remove && value.is_none() {
        return Err(invalid(format!("{} needs a value", p.attr)));
    }
    let obj = container(r, &p.attr);
    let key = key_in(obj, &p.attr.attr);
    // Entra removes members as `{"op": "Remove", "path": "members", "value": [{"value":
    // "id"}]}`: only those values go, not the whole attribute.
    if let (Op::Remove, None, None, Some(Value::Array(gone))) =
        (kind, &p.filter, &p.attr.sub, &value)
    {
        let values: Vec<&Value> = gone.iter().filter_map(|g| g.get("value")).collect();
        if let Some(Value::Array(items)) = obj.get_mut(&key) {
            items.retain(|i| !values.contains(&i.get("value").unwrap_or(&Value::Null)));
        }
        return Ok(());
    }
    match (&p.filter, &p.attr.sub) {
        // `attr[filter]` or `attr[filter].sub`
        (Some(f), _) => {
            // Entra adds a first work phone as `phoneNumbers[type eq "work"].value`: a value
            // the filter's equalities describe is created when none matches.
            let any_match = matches!(obj.get(&key), Some(Value::Array(items)) if items.iter().any(|i| matches(f, i)));
            // (A replace with no match stays noTarget, as RFC 7644 §3.5.2.3 says.)
            if !any_match && kind == Op::Add {
                if let Some(mut item) = seed(f) {
                    match (&p.sub, value.clone().expect("checked")) {
                        (Some(sub), v) => {
                            item.insert(sub.clone(), v);
                        }
                        (None, Value::Object(v)) => item.extend(v),
                        (None, _) => return Err(invalid(format!("{} needs an object", p.attr))),
                    }
                    let slot = obj.entry(key).or_insert_with(|| Value::Array(vec![]));
                    if !slot.is_array() {
                        *slot = Value::Array(vec![]);
                    }
                    slot.as_array_mut()
                        .expect("an array")
                        .push(Value::Object(item));
                    return Ok(());
                }
            }
            let Some(Value::Array(items)) = obj.get_mut(&key) else {
                if kind == Op::Remove {
                    return Ok(());
                }
                return Err(ScimError::bad_request(
                    ScimType::NoTarget,
                    format!("no {} value matches the filter", p.attr),
                ));
            };
            match (kind, &p.sub) {
                (Op::Remove, None) => items.retain(|i| !matches(f, i)),
                (Op::Remove, Some(sub)) => {
                    for i in items.iter_mut().filter(|i| matches(f, i)) {
                        if let Some(o) = i.as_object_mut() {
                            let k = key_in(o, sub);
                            o.remove(&k);
                        }
                    }
                }
                (_, sub) => {
                    let mut hit = false;
                    for i in items.iter_mut().filter(|i| matches(f, i)) {
                        hit = true;
                        let v = value.clone().expect("checked");
                        match (sub, i.as_object_mut(), v) {
                            (Some(sub), Some(o), v) => {
                                let k = key_in(o, sub);
                                o.insert(k, v);
                            }
                            (None, Some(o), Value::Object(v)) => o.extend(v),
                            (None, _, v) => *i = v,
                            (Some(_), None, _) => {}
                        }
                    }
                    if !hit && kind == Op::Replace {
                        return Err(ScimError::bad_request(
                            ScimType::NoTarget,
                            format!("no {} value matches the filter", p.attr),
                        ));
                    }
                }
            }
        }
        // `attr.sub`
        (None, Some(sub)) => {
            let slot = obj.entry(key).or_insert_with(|| Value::Object(Map::new()));
            match (kind, slot) {
                (Op::Remove, Value::Object(o)) => {
                    let k = key_in(o, sub);
                    o.remove(&k);
                }
                (_, Value::Object(o)) => {
                    let k = key_in(o, sub);
                    o.insert(k, value.expect("checked"));
                }
                // `emails.value`: every value's sub-attribute (roster keeps one).
                (Op::Remove, Value::Array(items)) => {
                    for i in items.iter_mut().filter_map(Value::as_object_mut) {
                        let k = key_in(i, sub);
                        i.remove(&k);
                    }
                }
                (_, Value::Array(items)) => {
                    let v = value.expect("checked");
                    if items.is_empty() {
                        items.push(Value::Object(Map::new()));
                    }
                    for i in items.iter_mut().filter_map(Value::as_object_mut) {
                        let k = key_in(i, sub);
                        i.insert(k, v.clone());
                    }
                }
                (_, other) => {
                    return Err(invalid(format!(
                        "{} has no sub-attributes: {other}",
                        p.attr
                    )))
                }
            }
        }
        // `attr`
        (None, None) => match kind {
            Op::Remove => match (obj.get_mut(&key), value) {
                // Entra removes members by listing them in the value.
                (Some(Value::Array(items)), Some(Value::Array(gone))) => {
                    let ids: Vec<Option<&Value>> = gone
                        .iter()
                        .map(|g| g.as_object().and_then(|o| get(o, "value")))
                        .collect();
                    items.retain(|i| {
                        let v = i.as_object().and_then(|o| get(o, "value"));
                        !ids.contains(&v)
                    });
                }
                _ => {
                    obj.remove(&key);
                }
            },
            Op::Replace => {
                obj.insert(key, value.expect("checked"));
            }
            Op::Add => {
                let v = value.expect("checked");
                match (obj.get_mut(&key), v) {
                    (Some(Value::Array(items)), Value::Array(more)) => {
                        for m in more {
                            if !items.contains(&m) {
                                items.push(m);
                            }
                        }
                    }
                    (Some(Value::Object(o)), Value::Object(more)) => o.extend(more),
                    (_, v) => {
                        obj.insert(key, v);
                    }
                }
            }
        },
    }
    Ok(())
}

#[cfg(test)]
#[path = "write_tests.rs"]
mod tests;
