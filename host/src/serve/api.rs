//! `/api/v1`: JSON shaped like the CLI's `--json`. Every handler checks its role.

use super::error::{ApiError, ApiResult};
use super::runner::{After, Before, Began, Refused};
use super::AppState;
use crate::store::{Status, UserFilter};
use crate::sync::SyncFlags;
use crate::tokens::{Caller, Role};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sources", get(sources))
        .route("/sources/{name}/sync", post(sync_now))
        .route("/runs", get(runs))
        .route("/runs/{id}", get(run))
        .route("/runs/{id}/approve", post(approve))
        .route("/runs/{id}/dismiss", post(dismiss))
        .route("/users", get(users))
        .route("/users/{name}", get(user))
        .route("/groups", get(groups))
        .route("/events", get(super::events::sse))
}

pub fn need(caller: &Caller, role: Role) -> ApiResult<()> {
    if caller.may(role) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "token {:?} may not do this: it needs role {}",
            caller.name,
            role.as_str()
        )))
    }
}

async fn sources(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<serde_json::Value>> {
    need(&caller, Role::Read)?;
    Ok(Json(super::sources_json(&st).await?))
}

#[derive(Deserialize)]
struct SyncQuery {
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    force: bool,
}

async fn sync_now(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<SyncQuery>,
) -> ApiResult<Response> {
    need(&caller, Role::Sync)?;
    let flags = SyncFlags {
        dry_run: q.dry_run,
        force: q.force,
        hold: true,
    };
    start(&st, &name, flags, &caller.name, None, None).await
}

/// Starts a run and answers 202 with its id (200 with the result for a dry run).
pub async fn start(
    st: &AppState,
    name: &str,
    flags: SyncFlags,
    by: &str,
    before: Option<Before>,
    after: Option<After>,
) -> ApiResult<Response> {
    if st.runner.config().source(name).is_err() {
        return Err(ApiError::not_found(format!("no source named {name:?}")));
    }
    let began = st
        .runner
        .start(name, flags, by, before, after)
        .map_err(|e| match e {
            Refused::ShuttingDown => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                e.to_string(),
            ),
            e => ApiError::conflict("running", format!("source {name}: {e}")),
        })?;
    // A dry run answers with its plan; a run as soon as its record exists (or, queued
    // behind another source's run, without its id yet).
    let wait = if flags.dry_run {
        Duration::from_secs(3600)
    } else {
        Duration::from_secs(5)
    };
    Ok(match tokio::time::timeout(wait, began).await {
        Ok(Ok(Began::Ended(r))) if flags.dry_run => Json(json!(r)).into_response(),
        Ok(Ok(Began::Ended(r))) => (
            StatusCode::ACCEPTED,
            Json(json!({"source": name, "run_id": r.run_id, "status": r.status, "message": r.message})),
        )
            .into_response(),
        Ok(Ok(Began::Run(id))) => (
            StatusCode::ACCEPTED,
            Json(json!({"source": name, "run_id": id, "status": "running"})),
        )
            .into_response(),
        Ok(Err(_)) | Err(_) => (
            StatusCode::ACCEPTED,
            Json(json!({"source": name, "run_id": null, "status": "queued"})),
        )
            .into_response(),
    })
}

#[derive(Deserialize)]
struct RunsQuery {
    source: Option<String>,
    status: Option<String>,
    before: Option<i64>,
    limit: Option<u64>,
}

async fn runs(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<RunsQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    need(&caller, Role::Read)?;
    let status = (q.status.as_deref())
        .map(str::parse::<Status>)
        .transpose()
        .map_err(ApiError::bad_request)?;
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let page = st
        .pool
        .with(move |s| s.run_page(q.source.as_deref(), status, q.before, limit))
        .await?;
    Ok(Json(json!(page)))
}

#[derive(Deserialize)]
struct RunQuery {
    events_after: Option<i64>,
    events_limit: Option<u64>,
}

async fn run(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
    Query(q): Query<RunQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    need(&caller, Role::Read)?;
    let limit = q.events_limit.unwrap_or(1000).clamp(1, 10_000);
    let after = q.events_after.unwrap_or(0);
    let found = st
        .pool
        .with(move |s| {
            let Some(mut run) = s.run_head(id)? else {
                return Ok(None);
            };
            let events = s.run_events(id, after, limit + 1)?;
            Ok(Some((run_with(&mut run, events, limit), run)))
        })
        .await?;
    let Some((next, run)) = found else {
        return Err(ApiError::not_found(format!("no run {id}")));
    };
    let mut v = json!(run);
    v["next_events"] = json!(next);
    Ok(Json(v))
}

/// Puts a page of events on the run; the cursor of the next page, if any.
fn run_with(
    run: &mut crate::store::RunView,
    mut events: Vec<crate::store::EventView>,
    limit: u64,
) -> Option<i64> {
    let next = if events.len() as u64 > limit {
        events.truncate(limit as usize);
        events.last().map(|e| e.seq)
    } else {
        None
    };
    run.events = Some(events);
    next
}

async fn approve(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    need(&caller, Role::Admin)?;
    approve_run(&st, id, &caller.name).await
}

/// Runs a held run's source again with `force` and records the approval.
pub async fn approve_run(st: &AppState, id: i64, by: &str) -> ApiResult<Response> {
    let held = waiting(st, id).await?;
    let who = by.to_string();
    let before: Before = Box::new(move |s| {
        if !s.decide_held(id, "approved", &who)? {
            anyhow::bail!("run {id} was decided meanwhile");
        }
        Ok(())
    });
    let after: After = Box::new(move |s, r| {
        if let Some(rerun) = r.run_id {
            s.set_rerun(id, rerun)?;
        }
        Ok(())
    });
    let flags = SyncFlags {
        dry_run: false,
        force: true,
        hold: true,
    };
    tracing::info!("run {id} of {} approved by {by}", held.source);
    start(st, &held.source, flags, by, Some(before), Some(after)).await
}

async fn waiting(st: &AppState, id: i64) -> ApiResult<crate::store::Held> {
    let held = st.pool.with(move |s| s.held(id)).await?;
    let Some(held) = held else {
        return Err(ApiError::not_found(format!("run {id} is not a held run")));
    };
    if let Some(d) = &held.decision {
        return Err(ApiError::conflict(
            "decided",
            format!("run {id} was already {d}"),
        ));
    }
    Ok(held)
}

async fn dismiss(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
) -> ApiResult<Json<serde_json::Value>> {
    need(&caller, Role::Admin)?;
    dismiss_run(&st, id, &caller.name).await?;
    Ok(Json(json!({"run_id": id, "decision": "dismissed"})))
}

pub async fn dismiss_run(st: &AppState, id: i64, by: &str) -> ApiResult<()> {
    let held = waiting(st, id).await?;
    let who = by.to_string();
    if !st
        .runner
        .write(move |s| s.decide_held(id, "dismissed", &who))
        .await?
    {
        return Err(ApiError::conflict(
            "decided",
            format!("run {id} was decided meanwhile"),
        ));
    }
    tracing::info!(
        "run {id} of {} dismissed by {by}: the hold is lifted, nothing applied",
        held.source
    );
    Ok(())
}

#[derive(Deserialize)]
struct UsersQuery {
    q: Option<String>,
    source: Option<String>,
    group: Option<String>,
    active: Option<bool>,
    after: Option<String>,
    limit: Option<u64>,
}

/// A page of users, streamed as SQLite reads them: `{"users": [...], "next": CURSOR}`.
async fn users(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<UsersQuery>,
) -> ApiResult<Response> {
    need(&caller, Role::Read)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    let filter = UserFilter {
        all: q.active.is_none(),
        inactive: q.active == Some(false),
        source: q.source,
        group: q.group,
        search: q.q.filter(|s| !s.is_empty()),
        after: q.after,
        limit: Some(limit + 1),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let pool = st.pool.clone();
    tokio::task::spawn_blocking(move || {
        let mut buf = b"{\"users\":[".to_vec();
        let mut n = 0u64;
        let mut last = None;
        let mut more = false;
        let listed = pool.with_blocking(|s| {
            s.each_user(&filter, |u| {
                if n == limit {
                    more = true;
                    return Ok(());
                }
                if n > 0 {
                    buf.push(b',');
                }
                serde_json::to_writer(&mut buf, &u)?;
                n += 1;
                last = Some(u.username);
                if buf.len() > 64 * 1024 {
                    let chunk = std::mem::take(&mut buf);
                    tx.blocking_send(Ok(chunk))
                        .map_err(|_| anyhow::anyhow!("client went away"))?;
                }
                Ok(())
            })?;
            Ok(())
        });
        if let Err(e) = listed {
            tracing::warn!("users page stopped: {e:#}");
            let _ = tx.blocking_send(Err(std::io::Error::other("listing failed")));
            return;
        }
        // `each_user` read one more than the page: then there is a next page.
        let next = if more { last } else { None };
        buf.extend_from_slice(b"],\"next\":");
        let _ = serde_json::to_writer(&mut buf, &next);
        buf.push(b'}');
        let _ = tx.blocking_send(Ok(buf));
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response())
}

async fn user(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    need(&caller, Role::Read)?;
    let shown = name.clone();
    match st.pool.with(move |s| s.user(&name)).await? {
        Some(u) => Ok(Json(json!(u))),
        None => Err(ApiError::not_found(format!("no user or alias {shown:?}"))),
    }
}

async fn groups(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<serde_json::Value>> {
    need(&caller, Role::Read)?;
    Ok(Json(json!(st.pool.with(|s| s.groups()).await?)))
}
