//! SCIM writes: `POST`, `PUT`, `PATCH` and `DELETE` on `/Users`, from an identity provider
//! (Entra ID, Okta) with a `scim-push` token, into the one `push = "scim"` source the token
//! is bound to. Each write is a run of that source through the engine
//! ([`crate::sync::push`]); this file only speaks HTTP.

use super::error::{ScimError, ScimType};
use super::{api, resource, write};
use crate::serve::AppState;
use crate::store::Status;
use crate::sync::push::{PushOp, Pushed, Refused};
use crate::tokens::{Caller, Role};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::Value;
use std::time::Duration;

/// The push source a caller writes into: its token must be `scim-push`, bound to a source
/// configured with `push = "scim"`.
pub fn push_source(st: &AppState, caller: &Caller) -> Result<String, ScimError> {
    let forbidden = |why: String| ScimError::new(403, None, why);
    if !caller.may(Role::ScimPush) {
        return Err(forbidden(format!(
            "token {:?} may not write users: it needs role scim-push",
            caller.name
        )));
    }
    let Some(source) = &caller.source else {
        return Err(forbidden("the token is bound to no source".into()));
    };
    match st.runner.config().source(source) {
        Ok(s) if s.push => Ok(source.clone()),
        _ => Err(forbidden(format!(
            "the token's source {source:?} is not configured with push = \"scim\""
        ))),
    }
}

/// A request body as JSON (whatever its content type says: clients differ).
fn json(body: &[u8]) -> Result<Value, ScimError> {
    serde_json::from_slice(body).map_err(|e| {
        ScimError::bad_request(
            ScimType::InvalidSyntax,
            format!("the body is not JSON: {e}"),
        )
    })
}

/// `POST /Users`.
pub async fn create(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ScimError> {
    let source = push_source(&st, &caller)?;
    let entry = write::user_entry(&json(&body)?)?;
    let username = (entry.attributes.iter())
        .find(|(k, _)| k == "username")
        .and_then(|(_, v)| v.first().cloned())
        .ok_or_else(|| ScimError::invalid_value("userName is required"))?;
    // externalId is the anchor; without one, the userName as the provider wrote it.
    let anchor = entry.external_id.clone().unwrap_or(username);
    let op = PushOp::Upsert {
        object: entry.to_object(&anchor),
        anchor,
        create_only: true,
    };
    let pushed = run(&st, &source, op).await?;
    if pushed.user_id.is_none() {
        return Err(ScimError::invalid_value(format!(
            "source {source:?} creates no users (create_users = false) and no user matches"
        )));
    }
    respond(&st, &headers, pushed, StatusCode::CREATED).await
}

/// `PUT /Users/{id}`: the body replaces the user.
pub async fn replace(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ScimError> {
    let source = push_source(&st, &caller)?;
    let body = json(&body)?;
    let (anchor, current) = linked(&st, &source, &id, &headers).await?;
    let mut entry = write::user_entry(&body)?;
    keep_pins(&st, &mut entry, current.id).await?;
    let anchor = follow_external_id(&st, &source, anchor, &entry).await?;
    let op = PushOp::Upsert {
        object: entry.to_object(&anchor),
        anchor,
        create_only: false,
    };
    let pushed = run(&st, &source, op).await?;
    respond(&st, &headers, pushed, StatusCode::OK).await
}

/// `PATCH /Users/{id}`: RFC 7644 §3.5.2 operations on the user as it is, in Entra's and
/// Okta's forms too.
pub async fn patch(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ScimError> {
    let source = push_source(&st, &caller)?;
    let body = json(&body)?;
    let (anchor, current) = linked(&st, &source, &id, &headers).await?;
    let mut res = resource::user(&current, "");
    write::apply_patch(&mut res, &body)?;
    let mut entry = write::user_entry(&res)?;
    keep_pins(&st, &mut entry, current.id).await?;
    let anchor = follow_external_id(&st, &source, anchor, &entry).await?;
    let op = PushOp::Upsert {
        object: entry.to_object(&anchor),
        anchor,
        create_only: false,
    };
    let pushed = run(&st, &source, op).await?;
    respond(&st, &headers, pushed, StatusCode::OK).await
}

/// `DELETE /Users/{id}`: the source's `on_missing` applies (deactivate, delete or ignore).
pub async fn delete(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ScimError> {
    let source = push_source(&st, &caller)?;
    let (anchor, _) = linked(&st, &source, &id, &headers).await?;
    run(&st, &source, PushOp::Remove { anchor }).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The anchor by which `source` links user `id`, and the user as it is: 404 for a user the
/// source does not link; 412 when `If-Match` names another version.
async fn linked(
    st: &AppState,
    source: &str,
    id: &str,
    headers: &HeaderMap,
) -> Result<(String, crate::store::ScimUserRow), ScimError> {
    let (source, id) = (source.to_string(), id.to_string());
    let found = st
        .pool
        .with(move |s| {
            let Some(u) = s.scim_user(&id)? else {
                return Ok(None);
            };
            Ok(s.link_anchor(&source, u.id)?.map(|a| (a, u)))
        })
        .await
        .map_err(api::store_error)?;
    let Some((anchor, user)) = found else {
        return Err(ScimError::not_found(
            "no such user among this token's source's users",
        ));
    };
    if_match(headers, &resource::user_version(&user), "user")?;
    Ok((anchor, user))
}

/// A new externalId moves the user's link to it (the anchor), before the write.
async fn follow_external_id(
    st: &AppState,
    source: &str,
    anchor: String,
    entry: &write::Entry,
) -> Result<String, ScimError> {
    match &entry.external_id {
        Some(to) if *to != anchor => {
            let op = PushOp::Relink {
                from: anchor,
                to: to.clone(),
            };
            run(st, source, op).await?;
            Ok(to.clone())
        }
        _ => Ok(anchor),
    }
}

/// A body without PINs keeps the user's PINs: their hashes stand in for them.
async fn keep_pins(st: &AppState, entry: &mut write::Entry, id: i64) -> Result<(), ScimError> {
    if entry.pins_given {
        return Ok(());
    }
    let hashes = st
        .pool
        .with(move |s| {
            let mut rows = s
                .scim_user(&id.to_string())?
                .into_iter()
                .collect::<Vec<_>>();
            s.scim_pin_hashes(&mut rows)?;
            Ok(rows.pop().and_then(|r| r.pin_hashes).unwrap_or_default())
        })
        .await
        .map_err(api::store_error)?;
    entry.attributes.retain(|(k, _)| k != "pins");
    if !hashes.is_empty() {
        entry.attributes.push(("pins".into(), hashes));
    }
    Ok(())
}

/// How long a write waits for a source another process is syncing.
const LEASE_WAIT: Duration = Duration::from_secs(2);

/// Runs the write in turn with the source's runs.
async fn run(st: &AppState, source: &str, op: PushOp) -> Result<Pushed, ScimError> {
    // Another process's run of the source holds its lease: wait briefly for it, then 503.
    let deadline = tokio::time::Instant::now() + LEASE_WAIT;
    let r = loop {
        let cfg = st.runner.config_arc();
        let name = source.to_string();
        let op = op.clone();
        let r = st
            .runner
            .write_mut(move |store| {
                let src = cfg.source(&name)?;
                crate::sync::push::push(&cfg, store, src, op)
            })
            .await;
        match &r {
            Err(e)
                if e.downcast_ref::<crate::store::Busy>().is_some()
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => break r,
        }
    };
    let pushed = match r {
        Ok(p) => p,
        Err(e) => {
            return Err(match e.downcast_ref::<Refused>() {
                Some(Refused::Invalid(m)) => ScimError::invalid_value(m.clone()),
                Some(Refused::Exists(m)) => {
                    ScimError::new(409, Some(ScimType::Uniqueness), m.clone())
                }
                None if e.downcast_ref::<crate::store::Busy>().is_some() => ScimError::new(
                    503,
                    None,
                    "the source is busy with another run; retry shortly",
                ),
                None => api::store_error(e),
            })
        }
    };
    let Some(o) = &pushed.outcome else {
        return Ok(pushed);
    };
    if o.status != Status::Ok {
        let why = o.message.clone().unwrap_or_else(|| o.status.to_string());
        return Err(ScimError::new(500, None, why));
    }
    if let Some(e) = o.errors.first() {
        // The entry failed: another user holds a name, card or number, or another source
        // owns the user. Nothing changed.
        let taken = ["already used", "held by", "belongs to", "duplicate"]
            .iter()
            .any(|w| e.reason.contains(w));
        return Err(if taken {
            ScimError::new(409, Some(ScimType::Uniqueness), e.reason.clone())
        } else {
            ScimError::invalid_value(e.reason.clone())
        });
    }
    Ok(pushed)
}

/// The user as it is now, with `Location` and `ETag`.
async fn respond(
    st: &AppState,
    headers: &HeaderMap,
    pushed: Pushed,
    status: StatusCode,
) -> Result<Response, ScimError> {
    // `active = false` into a source whose on_missing deletes: the user is gone.
    let Some(id) = pushed.user_id else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let base = super::routes::base(st, headers);
    let row = st
        .pool
        .with(move |s| s.scim_user(&id.to_string()))
        .await
        .map_err(api::store_error)?
        .ok_or_else(|| ScimError::not_found("the user is gone"))?;
    let location = format!("{base}/Users/{id}");
    Ok(written(
        status,
        &resource::user(&row, &base),
        &resource::user_version(&row),
        &location,
    ))
}

/// `412` when `If-Match` names another version than `have`.
fn if_match(headers: &HeaderMap, have: &str, what: &str) -> Result<(), ScimError> {
    match headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        Some(want) if want.trim() != "*" && !api::etag_matches(want, have) => Err(ScimError::new(
            412,
            None,
            format!("the {what} changed: its version is {have}, If-Match names {want}"),
        )),
        _ => Ok(()),
    }
}

/// A written resource: its body with `ETag` and `Location`.
fn written(status: StatusCode, body: &Value, etag: &str, location: &str) -> Response {
    let mut res = (
        status,
        [(header::CONTENT_TYPE, super::routes::CONTENT_TYPE)],
        body.to_string(),
    )
        .into_response();
    for (name, v) in [(header::ETAG, etag), (header::LOCATION, location)] {
        if let Ok(v) = HeaderValue::from_str(v) {
            res.headers_mut().insert(name, v);
        }
    }
    res
}

/// A Group body as (anchor, name, members' anchors). Members are roster user ids, each a
/// user this source links.
async fn group_body(
    st: &AppState,
    source: &str,
    body: &Value,
    anchor: Option<String>,
) -> Result<(String, String, Vec<String>), ScimError> {
    let Value::Object(b) = body else {
        return Err(ScimError::bad_request(
            ScimType::InvalidSyntax,
            "the body must be a JSON object",
        ));
    };
    let field = |k: &str| {
        b.iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(k))
            .map(|(_, v)| v)
    };
    let name = field("displayName")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| ScimError::invalid_value("displayName is required"))?
        .to_string();
    crate::model::Field::Groups
        .check(&name)
        .map_err(ScimError::invalid_value)?;
    let external = field("externalId")
        .and_then(Value::as_str)
        .map(str::to_string);
    let anchor = anchor.or(external).unwrap_or_else(|| name.clone());
    let ids: Vec<String> = match field("members") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(items)) => items
            .iter()
            .map(|m| {
                m.get("value")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| ScimError::invalid_value("a member needs a value (a user id)"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(ScimError::invalid_value("members must be an array")),
    };
    if ids.len() > 100_000 {
        return Err(ScimError::new(
            413,
            Some(ScimType::TooMany),
            "too many members",
        ));
    }
    let source = source.to_string();
    let members = st
        .pool
        .with(move |s| {
            let mut out = Vec::new();
            for id in &ids {
                let anchor = (id.parse::<i64>().ok())
                    .map(|uid| s.link_anchor(&source, uid))
                    .transpose()?
                    .flatten();
                out.push((id.clone(), anchor));
            }
            Ok(out)
        })
        .await
        .map_err(api::store_error)?;
    let mut anchors = Vec::new();
    for (id, a) in members {
        match a {
            Some(a) => anchors.push(a),
            None => {
                return Err(ScimError::invalid_value(format!(
                    "member {id:?} is not a user of this token's source"
                )))
            }
        }
    }
    Ok((anchor, name, anchors))
}

/// The anchor by which `source` names group `id`, and the group with its members: 404 for
/// another source's group; 412 when `If-Match` names another version.
async fn linked_group(
    st: &AppState,
    source: &str,
    id: &str,
    headers: &HeaderMap,
) -> Result<(String, crate::store::ScimGroupRow), ScimError> {
    let (source, id) = (source.to_string(), id.to_string());
    let found = st
        .pool
        .with(move |s| {
            let Some(g) = s.scim_group(&id, true)? else {
                return Ok(None);
            };
            Ok(s.group_anchor(&source, g.id)?.map(|a| (a, g)))
        })
        .await
        .map_err(api::store_error)?;
    let Some((anchor, group)) = found else {
        return Err(ScimError::not_found(
            "no such group among this token's source's groups",
        ));
    };
    if_match(headers, &resource::group_version(&group), "group")?;
    Ok((anchor, group))
}

/// A new externalId in a group body moves the group's anchor to it.
async fn follow_group_external_id(
    st: &AppState,
    source: &str,
    anchor: String,
    body: &Value,
) -> Result<String, ScimError> {
    let external = (body.as_object().into_iter().flatten())
        .find(|(k, _)| k.eq_ignore_ascii_case("externalId"))
        .and_then(|(_, v)| v.as_str())
        .filter(|e| !e.is_empty());
    match external {
        Some(to) if to != anchor => {
            let op = PushOp::RelinkGroup {
                from: anchor,
                to: to.to_string(),
            };
            run(st, source, op).await?;
            Ok(to.to_string())
        }
        _ => Ok(anchor),
    }
}

/// `POST /Groups`.
pub async fn create_group(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ScimError> {
    let source = push_source(&st, &caller)?;
    let (anchor, name, members) = group_body(&st, &source, &json(&body)?, None).await?;
    let op = PushOp::Group {
        anchor,
        name,
        members,
        create_only: true,
    };
    let pushed = run(&st, &source, op).await?;
    respond_group(&st, &headers, pushed, StatusCode::CREATED).await
}

/// `PUT /Groups/{id}`.
pub async fn replace_group(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ScimError> {
    let source = push_source(&st, &caller)?;
    let body = json(&body)?;
    let (anchor, _) = linked_group(&st, &source, &id, &headers).await?;
    let anchor = follow_group_external_id(&st, &source, anchor, &body).await?;
    let (anchor, name, members) = group_body(&st, &source, &body, Some(anchor)).await?;
    let op = PushOp::Group {
        anchor,
        name,
        members,
        create_only: false,
    };
    let pushed = run(&st, &source, op).await?;
    respond_group(&st, &headers, pushed, StatusCode::OK).await
}

/// `PATCH /Groups/{id}`: Entra adds and removes members this way.
pub async fn patch_group(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ScimError> {
    let source = push_source(&st, &caller)?;
    let body = json(&body)?;
    let (anchor, current) = linked_group(&st, &source, &id, &headers).await?;
    let mut res = resource::group(&current, "");
    write::apply_patch(&mut res, &body)?;
    let anchor = follow_group_external_id(&st, &source, anchor, &res).await?;
    let (anchor, name, members) = group_body(&st, &source, &res, Some(anchor)).await?;
    let op = PushOp::Group {
        anchor,
        name,
        members,
        create_only: false,
    };
    let pushed = run(&st, &source, op).await?;
    respond_group(&st, &headers, pushed, StatusCode::OK).await
}

/// `DELETE /Groups/{id}`.
pub async fn delete_group(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ScimError> {
    let source = push_source(&st, &caller)?;
    let (anchor, _) = linked_group(&st, &source, &id, &headers).await?;
    run(&st, &source, PushOp::RemoveGroup { anchor }).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn respond_group(
    st: &AppState,
    headers: &HeaderMap,
    pushed: Pushed,
    status: StatusCode,
) -> Result<Response, ScimError> {
    let Some(id) = pushed.group_id else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let base = super::routes::base(st, headers);
    let row = st
        .pool
        .with(move |s| s.scim_group(&id.to_string(), true))
        .await
        .map_err(api::store_error)?
        .ok_or_else(|| ScimError::not_found("the group is gone"))?;
    let location = format!("{base}/Groups/{id}");
    Ok(written(
        status,
        &resource::group(&row, &base),
        &resource::group_version(&row),
        &location,
    ))
}
