//! `/scim/v2` in `roster serve`: the read endpoints over [`api`](super::api). Every answer is
//! `application/scim+json`; every refusal, 401 and 404 included, is a SCIM error body.

use super::api::{self, Answer};
use super::discovery::{self, Features};
use super::error::ScimError;
use crate::serve::AppState;
use crate::tokens::{Caller, Role};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde_json::Value;

pub const CONTENT_TYPE: &str = "application/scim+json";

/// What this build serves: reads and pushed writes (PATCH included), with ETags.
const FEATURES: Features = Features {
    patch: true,
    etag: true,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ServiceProviderConfig", get(service_provider_config))
        .route("/ResourceTypes", get(resource_types))
        .route("/ResourceTypes/{id}", get(resource_type))
        .route("/Schemas", get(schemas))
        .route("/Schemas/{id}", get(schema))
        .route("/Users", get(list_users).post(super::push::create))
        .route("/Users/.search", axum::routing::post(search_users))
        .route(
            "/.search",
            axum::routing::post(|| async {
                ScimError::new(
                    501,
                    None,
                    "searching several resource types at once is not supported: POST /Users/.search",
                )
            }),
        )
        .route(
            "/Users/{id}",
            get(get_user)
                .put(super::push::replace)
                .patch(super::push::patch)
                .delete(super::push::delete),
        )
        .route("/Groups", get(list_groups).post(super::push::create_group))
        .route(
            "/Groups/{id}",
            get(get_group)
                .put(super::push::replace_group)
                .patch(super::push::patch_group)
                .delete(super::push::delete_group),
        )
        .fallback(|| async { ScimError::not_found("no such SCIM endpoint") })
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut res = scim(status, &self.body());
        // A 503 is a busy source (RFC 9110 §10.2.3): the provider retries.
        if status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        res
    }
}

fn scim(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        body.to_string(),
    )
        .into_response()
}

/// Answers that are not SCIM yet (the token check's 401, axum's 405 and rejections)
/// become SCIM error bodies with the same status.
pub async fn scim_errors(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    let is_scim = (res.headers().get(header::CONTENT_TYPE))
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(CONTENT_TYPE));
    if is_scim || !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let detail = match status {
        StatusCode::UNAUTHORIZED => {
            "a valid token is required: Authorization: Bearer TOKEN".to_string()
        }
        StatusCode::METHOD_NOT_ALLOWED => "this method is not supported here".to_string(),
        s if s.is_server_error() => "internal error (see the server's log)".to_string(),
        s => s.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    let mut out = ScimError::new(status.as_u16(), None, detail).into_response();
    if let Some(v) = res.headers().get(header::WWW_AUTHENTICATE) {
        out.headers_mut()
            .insert(header::WWW_AUTHENTICATE, v.clone());
    }
    out
}

/// The same outside the SCIM router, for what is answered before it (the body cap's 413).
pub async fn scim_path_errors(req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/scim/") {
        scim_errors(req, next).await
    } else {
        next.run(req).await
    }
}

/// Which users and groups a caller reads: all (role read), or those of the source a
/// `scim-push` token writes into (Entra and Okta look users up before they create them).
fn user_scope(st: &AppState, caller: &Caller) -> Result<Option<String>, ScimError> {
    if caller.may(Role::Read) {
        return Ok(None);
    }
    if caller.may(Role::ScimPush) {
        return super::push::push_source(st, caller).map(Some);
    }
    need_read(caller).map(|_| None)
}

fn need_read(caller: &Caller) -> Result<(), ScimError> {
    if caller.may(Role::Read) {
        Ok(())
    } else {
        Err(ScimError::new(
            403,
            None,
            format!(
                "token {:?} may not read users: it needs role read",
                caller.name
            ),
        ))
    }
}

/// The SCIM root as clients reach it: `public_url`, else this request's host.
pub(super) fn base(st: &AppState, headers: &HeaderMap) -> String {
    let cfg = st.runner.config();
    if let Some(u) = &cfg.serve.public_url {
        return format!("{u}/scim/v2");
    }
    let scheme = if cfg.serve.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let host = (headers.get(header::HOST))
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
        })
        .map(str::to_string)
        .unwrap_or_else(|| cfg.serve.listen.to_string());
    format!("{scheme}://{host}/scim/v2")
}

/// Runs a read on a pooled connection.
async fn read<T: Send + 'static>(
    st: &AppState,
    f: impl FnOnce(&crate::store::Store) -> Result<T, ScimError> + Send + 'static,
) -> Result<T, ScimError> {
    st.pool
        .with(move |s| Ok(f(s)))
        .await
        .map_err(api::store_error)?
}

fn answer(a: Answer) -> Response {
    match a {
        Answer::Ok { body, etag } => {
            let mut res = scim(StatusCode::OK, &body);
            if let Some(v) = etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
                res.headers_mut().insert(header::ETAG, v);
            }
            res
        }
        Answer::NotModified { etag } => {
            let mut res = StatusCode::NOT_MODIFIED.into_response();
            if let Ok(v) = HeaderValue::from_str(&etag) {
                res.headers_mut().insert(header::ETAG, v);
            }
            res
        }
    }
}

async fn service_provider_config(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    user_scope(&st, &caller)?;
    let body = discovery::service_provider_config(&base(&st, &headers), FEATURES);
    Ok(scim(StatusCode::OK, &body))
}

async fn resource_types(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    user_scope(&st, &caller)?;
    let body = discovery::list(discovery::resource_types(&base(&st, &headers)));
    Ok(scim(StatusCode::OK, &body))
}

async fn schemas(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    user_scope(&st, &caller)?;
    let body = discovery::list(discovery::schemas(&base(&st, &headers)));
    Ok(scim(StatusCode::OK, &body))
}

/// `POST /Users/.search` (RFC 7644 §3.4.3): a SearchRequest body, answered as the same
/// query's `GET /Users`.
async fn search_users(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ScimError> {
    let scope = user_scope(&st, &caller)?;
    let q = search_query(&body)?;
    let base = base(&st, &headers);
    let pins = caller.may(Role::Replica);
    let body = read(&st, move |s| api::list_users(s, &q, &base, pins, scope)).await?;
    Ok(scim(StatusCode::OK, &body))
}

/// A SearchRequest body as the query string of the same `GET`.
fn search_query(body: &[u8]) -> Result<String, ScimError> {
    let req: serde_json::Map<String, Value> = serde_json::from_slice(body).map_err(|e| {
        ScimError::bad_request(
            super::error::ScimType::InvalidSyntax,
            format!("the body is not a SearchRequest: {e}"),
        )
    })?;
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &req {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Array(a) => (a.iter())
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(","),
            _ => continue,
        };
        if k != "schemas" {
            q.append_pair(k, &text);
        }
    }
    Ok(q.finish())
}

/// `GET /ResourceTypes/{id}` (`User`, `Group`).
async fn resource_type(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ScimError> {
    user_scope(&st, &caller)?;
    one(
        discovery::resource_types(&base(&st, &headers)),
        &id,
        "resource type",
    )
}

/// `GET /Schemas/{id}`, by the schema's URN.
async fn schema(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ScimError> {
    user_scope(&st, &caller)?;
    one(discovery::schemas(&base(&st, &headers)), &id, "schema")
}

fn one(all: Vec<Value>, id: &str, what: &str) -> Result<Response, ScimError> {
    match all.into_iter().find(|r| r["id"] == id) {
        Some(r) => Ok(scim(StatusCode::OK, &r)),
        None => Err(ScimError::not_found(format!("no {what} {id:?}"))),
    }
}

async fn list_users(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ScimError> {
    let scope = user_scope(&st, &caller)?;
    let base = base(&st, &headers);
    let q = q.unwrap_or_default();
    let pins = caller.may(Role::Replica);
    let body = read(&st, move |s| api::list_users(s, &q, &base, pins, scope)).await?;
    Ok(scim(StatusCode::OK, &body))
}

async fn list_groups(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ScimError> {
    let scope = user_scope(&st, &caller)?;
    let base = base(&st, &headers);
    let q = q.unwrap_or_default();
    let body = read(&st, move |s| api::list_groups(s, &q, &base, scope)).await?;
    Ok(scim(StatusCode::OK, &body))
}

fn if_none_match(headers: &HeaderMap) -> Option<String> {
    (headers.get(header::IF_NONE_MATCH))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn get_user(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ScimError> {
    let scope = user_scope(&st, &caller)?;
    let base = base(&st, &headers);
    let q = q.unwrap_or_default();
    let inm = if_none_match(&headers);
    let pins = caller.may(Role::Replica);
    let a = read(&st, move |s| {
        if let Some(source) = &scope {
            let linked = (id.parse::<i64>().ok())
                .map(|uid| s.link_anchor(source, uid))
                .transpose()
                .map_err(api::store_error)?
                .flatten();
            if linked.is_none() {
                return Err(ScimError::not_found(format!("no user with id {id:?}")));
            }
        }
        api::get_user(s, &id, &q, &base, inm.as_deref(), pins)
    })
    .await?;
    Ok(answer(a))
}

async fn get_group(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ScimError> {
    let scope = user_scope(&st, &caller)?;
    let base = base(&st, &headers);
    let q = q.unwrap_or_default();
    let inm = if_none_match(&headers);
    let a = read(&st, move |s| {
        if let Some(source) = &scope {
            let own = (id.parse::<i64>().ok())
                .map(|gid| s.group_anchor(source, gid))
                .transpose()
                .map_err(api::store_error)?
                .flatten();
            if own.is_none() {
                return Err(ScimError::not_found(format!("no group with id {id:?}")));
            }
        }
        api::get_group(s, &id, &q, &base, inm.as_deref())
    })
    .await?;
    Ok(answer(a))
}
