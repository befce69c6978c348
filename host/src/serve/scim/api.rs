//! The read side of `/scim/v2`, free of HTTP: each function takes the request's query string
//! (and id, `If-None-Match`) and answers a JSON body or a [`ScimError`]. The router only
//! moves bytes.

use super::discovery::MAX_RESULTS;
use super::error::{ScimError, ScimType};
use super::filter;
use super::resource::{self, Projection};
use crate::store::{ScimQuery, Store};
use serde_json::Value;

/// The longest query string read.
pub const MAX_QUERY: usize = 16 * 1024;

/// A resource answer: the body and its ETag, or "not modified" when `If-None-Match` named
/// the current version.
#[derive(Debug, PartialEq)]
pub enum Answer {
    Ok { body: Value, etag: Option<String> },
    NotModified { etag: String },
}

/// Turns a store error into a SCIM error: the ones the store raised as SCIM errors (a bad
/// filter) as they are, anything else as a 500 whose detail names no internals.
pub fn store_error(e: anyhow::Error) -> ScimError {
    match e.downcast::<ScimError>() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("SCIM request failed: {e:#}");
            ScimError::new(500, None, "internal error; see the server log")
        }
    }
}

/// The list parameters of RFC 7644 §3.4.2 from a query string.
pub fn list_params(query: &str) -> Result<(ScimQuery, Projection), ScimError> {
    if query.len() > MAX_QUERY {
        return Err(ScimError::new(
            400,
            Some(super::error::ScimType::TooMany),
            format!("query string longer than {MAX_QUERY} bytes"),
        ));
    }
    let mut q = ScimQuery {
        start_index: 1,
        count: MAX_RESULTS,
        ..Default::default()
    };
    let (mut attributes, mut excluded) = (None, None);
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        let int = |what: &str| {
            v.trim().parse::<i64>().map_err(|_| {
                ScimError::invalid_value(format!("{what} must be an integer, not {v:?}"))
            })
        };
        match k.to_ascii_lowercase().as_str() {
            "filter" => q.filter = Some(filter::parse(&v)?),
            // RFC 7644: a startIndex below 1 is 1, a negative count is 0.
            "startindex" => q.start_index = int("startIndex")?.max(1) as u64,
            "count" => q.count = (int("count")?.max(0) as u64).min(MAX_RESULTS),
            "cursor" => q.after = Some(decode_cursor(&v)?),
            "sortby" => {
                let p = filter::parse_path(&v).map_err(|e| ScimError::invalid_value(e.detail))?;
                if p.filter.is_some() {
                    return Err(ScimError::invalid_value("sortBy takes an attribute path"));
                }
                q.sort_by = Some(p.attr);
            }
            "sortorder" => {
                q.descending = match v.to_ascii_lowercase().as_str() {
                    "ascending" => false,
                    "descending" => true,
                    _ => {
                        return Err(ScimError::invalid_value(
                            "sortOrder is ascending or descending",
                        ))
                    }
                }
            }
            "attributes" => attributes = Some(v.into_owned()),
            "excludedattributes" => excluded = Some(v.into_owned()),
            _ => {}
        }
    }
    let projection = Projection::parse(attributes.as_deref(), excluded.as_deref())?;
    if q.after.is_some() && (q.sort_by.is_some() || q.start_index > 1) {
        return Err(ScimError::invalid_value(
            "cursor paging follows the resources' id order: drop sortBy and startIndex",
        ));
    }
    Ok((q, projection))
}

/// A cursor as this server gives it (`nextCursor`): opaque to clients, the last id of a
/// page here. An empty cursor asks for the first page.
fn decode_cursor(v: &str) -> Result<i64, ScimError> {
    use base64::Engine as _;
    if v.is_empty() {
        return Ok(0);
    }
    let bad = || {
        ScimError::bad_request(
            ScimType::InvalidCursor,
            "the cursor is not one this server gave",
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(v)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    text.strip_prefix("after:")
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n >= 0)
        .ok_or_else(bad)
}

fn encode_cursor(last_id: i64) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("after:{last_id}"))
}

/// A list response: index paging as RFC 7644 has it, or a cursor page (RFC 9865) with
/// `nextCursor` while more follow. `rows` holds one more than `count` in cursor paging.
fn page<T>(
    q: &ScimQuery,
    total: u64,
    mut rows: Vec<T>,
    id: impl Fn(&T) -> i64,
    show: impl Fn(&T) -> Value,
) -> Value {
    let next = match q.after {
        Some(_) if rows.len() as u64 > q.count => {
            rows.truncate(q.count as usize);
            rows.last().map(|r| encode_cursor(id(r)))
        }
        _ => None,
    };
    let mut body = resource::list(total, q.start_index, rows.iter().map(show).collect());
    if q.after.is_some() {
        if let Value::Object(o) = &mut body {
            o.remove("startIndex");
            if let Some(n) = next {
                o.insert("nextCursor".into(), Value::String(n));
            }
        }
    }
    body
}

/// `GET /Users`.
/// `pins`: with the PIN hashes (a `replica` token).
pub fn list_users(
    store: &Store,
    query: &str,
    base: &str,
    pins: bool,
    scope: Option<String>,
) -> Result<Value, ScimError> {
    let (mut q, p) = list_params(query)?;
    q.scope = scope;
    let (total, mut rows) = store.scim_users(&q).map_err(store_error)?;
    if pins {
        store.scim_pin_hashes(&mut rows).map_err(store_error)?;
    }
    Ok(page(
        &q,
        total,
        rows,
        |u| u.id,
        |u| p.apply(resource::user(u, base)),
    ))
}

/// `GET /Groups`. Members are read only when the response shows them.
pub fn list_groups(
    store: &Store,
    query: &str,
    base: &str,
    scope: Option<String>,
) -> Result<Value, ScimError> {
    let (mut q, p) = list_params(query)?;
    q.scope = scope;
    let (total, rows) = store
        .scim_groups(&q, p.shows("members"))
        .map_err(store_error)?;
    Ok(page(
        &q,
        total,
        rows,
        |g| g.id,
        |g| p.apply(resource::group(g, base)),
    ))
}

/// Whether an `If-None-Match` header names `etag` (weak comparison, `*` matches).
pub fn etag_matches(header: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    header
        .split(',')
        .any(|t| t.trim() == "*" || bare(t) == bare(etag))
}

fn answer(body: Value, etag: String, if_none_match: Option<&str>, p: &Projection) -> Answer {
    if if_none_match.is_some_and(|h| etag_matches(h, &etag)) {
        return Answer::NotModified { etag };
    }
    Answer::Ok {
        body: p.apply(body),
        etag: Some(etag),
    }
}

/// `GET /Users/{id}`.
pub fn get_user(
    store: &Store,
    id: &str,
    query: &str,
    base: &str,
    if_none_match: Option<&str>,
    pins: bool,
) -> Result<Answer, ScimError> {
    let (_, p) = list_params(query)?;
    let mut u = store
        .scim_user(id)
        .map_err(store_error)?
        .ok_or_else(|| ScimError::not_found(format!("no user with id {id:?}")))?;
    if pins {
        store
            .scim_pin_hashes(std::slice::from_mut(&mut u))
            .map_err(store_error)?;
    }
    Ok(answer(
        resource::user(&u, base),
        resource::user_version(&u),
        if_none_match,
        &p,
    ))
}

/// `GET /Groups/{id}`.
pub fn get_group(
    store: &Store,
    id: &str,
    query: &str,
    base: &str,
    if_none_match: Option<&str>,
) -> Result<Answer, ScimError> {
    let (_, p) = list_params(query)?;
    let g = store
        .scim_group(id, p.shows("members"))
        .map_err(store_error)?
        .ok_or_else(|| ScimError::not_found(format!("no group with id {id:?}")))?;
    Ok(answer(
        resource::group(&g, base),
        resource::group_version(&g),
        if_none_match,
        &p,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::scim::error::ScimType;

    #[test]
    fn list_params_follow_rfc7644() {
        let (q, p) = list_params(
            "filter=userName%20eq%20%22a%22&startIndex=0&count=5000&sortBy=name.formatted&sortOrder=Descending&excludedAttributes=members",
        )
        .unwrap();
        assert!(q.filter.is_some());
        assert_eq!(q.start_index, 1);
        assert_eq!(q.count, MAX_RESULTS);
        assert!(q.descending);
        assert!(q.sort_by.unwrap().is("name", Some("formatted")));
        assert!(!p.shows("members"));
        let (q, _) = list_params("count=-3&startIndex=11").unwrap();
        assert_eq!((q.start_index, q.count), (11, 0));
        for (bad, kind) in [
            ("filter=userName%20eq", ScimType::InvalidFilter),
            ("count=ten", ScimType::InvalidValue),
            ("sortOrder=up", ScimType::InvalidValue),
            ("attributes=a&excludedAttributes=b", ScimType::InvalidValue),
            (
                "sortBy=emails[type%20eq%20%22work%22]",
                ScimType::InvalidValue,
            ),
        ] {
            assert_eq!(list_params(bad).unwrap_err().scim_type, Some(kind), "{bad}");
        }
        let long = format!("filter={}", "a".repeat(MAX_QUERY));
        assert_eq!(
            list_params(&long).unwrap_err().scim_type,
            Some(ScimType::TooMany)
        );
    }

    #[test]
    fn if_none_match() {
        assert!(etag_matches("W/\"ab\"", "W/\"ab\""));
        assert!(etag_matches("\"ab\"", "W/\"ab\""));
        assert!(etag_matches("\"x\", W/\"ab\"", "W/\"ab\""));
        assert!(etag_matches("*", "W/\"ab\""));
        assert!(!etag_matches("W/\"ac\"", "W/\"ab\""));
    }

    #[test]
    fn cursor_pages_walk_every_user_once_in_id_order() {
        let store = Store::memory().unwrap();
        store.scim_fixture_for_tests();
        let base = "http://h/scim/v2";
        let all = list_users(&store, "", base, false, None).unwrap();
        let want: Vec<Value> = (all["Resources"].as_array().unwrap().iter())
            .map(|u| u["id"].clone())
            .collect();
        assert!(want.len() > 2);
        let (mut got, mut cursor) = (Vec::new(), String::new());
        loop {
            let page = list_users(
                &store,
                &format!("count=2&cursor={cursor}"),
                base,
                false,
                None,
            )
            .unwrap();
            assert_eq!(page["totalResults"], want.len());
            assert!(page.get("startIndex").is_none());
            got.extend(
                page["Resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|u| u["id"].clone()),
            );
            match page["nextCursor"].as_str() {
                Some(c) => cursor = c.to_string(),
                None => break,
            }
        }
        assert_eq!(got, want);
        for bad in [
            "cursor=nope",
            "cursor=YWZ0ZXI6LTE",
            "cursor=&sortBy=userName",
        ] {
            let e = list_users(&store, bad, base, false, None).unwrap_err();
            assert!(
                matches!(
                    e.scim_type,
                    Some(ScimType::InvalidCursor | ScimType::InvalidValue)
                ),
                "{bad}: {e:?}"
            );
        }
    }

    #[test]
    fn reads_against_a_real_database() {
        let store = Store::memory().unwrap();
        store.scim_fixture_for_tests();
        let base = "http://h/scim/v2";
        let page =
            list_users(&store, "filter=userName+eq+%22ASMITH%22", base, false, None).unwrap();
        assert_eq!(page["totalResults"], 1);
        let u = &page["Resources"][0];
        assert_eq!(u["userName"], "asmith");
        let id = u["id"].as_str().unwrap().to_string();
        let Answer::Ok { body, etag } = get_user(&store, &id, "", base, None, false).unwrap()
        else {
            panic!("not ok");
        };
        assert_eq!(body["userName"], "asmith");
        let etag = etag.unwrap();
        assert_eq!(
            get_user(&store, &id, "", base, Some(&etag), false).unwrap(),
            Answer::NotModified { etag: etag.clone() }
        );
        assert_eq!(
            get_user(&store, "999", "", base, None, false)
                .unwrap_err()
                .status,
            404
        );
        let groups = list_groups(&store, "excludedAttributes=members", base, None).unwrap();
        assert!(groups["Resources"][0].get("members").is_none());
        let groups = list_groups(&store, "", base, None).unwrap();
        assert_eq!(groups["Resources"][0]["members"][0]["display"], "asmith");
        let gid = groups["Resources"][0]["id"].as_str().unwrap().to_string();
        let Answer::Ok { body, .. } =
            get_group(&store, &gid, "attributes=displayName", base, None).unwrap()
        else {
            panic!("not ok");
        };
        assert_eq!(body.as_object().unwrap().len(), 3, "{body}");
    }
}
