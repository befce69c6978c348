//! The console: server-rendered pages (maud), readable without JavaScript. Sign-in with a
//! token makes an HttpOnly, SameSite=Strict session cookie; every form carries the
//! session's CSRF token. Where JavaScript runs, `/api/v1/events` refreshes the page.

use super::auth::{self, COOKIE};
use super::error::ApiError;
use super::{api, AppState};
use crate::store::{RunView, UserFilter};
use crate::sync::SyncFlags;
use crate::tokens::{self, Caller, Role};
use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde::Deserialize;
use subtle::ConstantTimeEq;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/console/runs/{id}", get(run_page))
        .route("/console/users", get(users_page))
        .route("/console/sources/{name}/sync", post(sync_now))
        .route("/console/runs/{id}/approve", post(approve))
        .route("/console/runs/{id}/dismiss", post(dismiss))
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border-bottom:1px solid #ddd;padding:.3em .7em;text-align:left}
.ok{color:#176f2c}.failed,.interrupted,.cancelled{color:#b00020}.aborted,.held{color:#a65e00}
form.inline{display:inline}button{cursor:pointer}nav a{margin-right:1em}";

/// Refreshes the page when a run starts or ends.
const LIVE: &str = "if(window.EventSource){const e=new EventSource('/api/v1/events');\
['started','finished'].forEach(t=>e.addEventListener(t,()=>location.reload()));}";

fn page(title: &str, body: Markup) -> Html<String> {
    Html(page_markup(title, body).into_string())
}

fn page_markup(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · roster" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                nav { a href="/" { "roster" } a href="/console/users" { "Users" } }
                h1 { (title) }
                (body)
                script { (PreEscaped(LIVE)) }
            }
        }
    }
}

/// The signed-in caller and the session's CSRF token, or the sign-in page.
struct Session {
    caller: Caller,
    csrf: String,
}

async fn session(st: &AppState, headers: &HeaderMap) -> Option<Session> {
    let s = st.sessions.get(auth::cookie(headers, COOKIE)?)?;
    let hash = s.token_hash.clone();
    let caller = st
        .pool
        .with(move |store| tokens::verify_hash(store, &hash))
        .await
        .ok()??;
    Some(Session {
        caller,
        csrf: s.csrf,
    })
}

fn sign_in(message: Option<&str>) -> Response {
    let body = html! {
        @if let Some(m) = message { p.failed { (m) } }
        form method="post" action="/login" {
            label { "Token " input type="password" name="token" autocomplete="off" required; }
            " " button type="submit" { "Sign in" }
        }
    };
    page("Sign in", body).into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(State(st): State<AppState>, Form(f): Form<LoginForm>) -> Response {
    let hash = tokens::hash(f.token.trim());
    let check = hash.clone();
    let caller = st.pool.with(move |s| tokens::verify_hash(s, &check)).await;
    let Ok(Some(caller)) = caller else {
        tracing::warn!("console sign-in failed: unknown token");
        return (StatusCode::UNAUTHORIZED, sign_in(Some("Unknown token."))).into_response();
    };
    tracing::info!("console: {} signed in", caller.name);
    let (id, _) = st.sessions.create(hash);
    let secure = if st.runner.config().serve.tls.is_some() {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict{secure}");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

/// The form's session, when its CSRF token is the session's.
async fn form_session(st: &AppState, headers: &HeaderMap, f: &CsrfForm) -> Option<Session> {
    let s = session(st, headers).await?;
    bool::from(s.csrf.as_bytes().ct_eq(f.csrf.as_bytes())).then_some(s)
}

async fn logout(
    State(st): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    if form_session(&st, &headers, &f).await.is_some() {
        if let Some(id) = auth::cookie(&headers, COOKIE) {
            st.sessions.remove(id);
        }
    }
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

fn csrf_field(s: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(s.csrf); }
}

fn error_page(e: ApiError) -> Response {
    let status = e.status;
    (
        status,
        page(
            "Error",
            html! { p.failed { (e.message) } a href="/" { "Back" } },
        ),
    )
        .into_response()
}

async fn home(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let Some(s) = session(&st, &headers).await else {
        return sign_in(None);
    };
    let sources = match super::sources_json(&st).await {
        Ok(v) => v,
        Err(e) => return error_page(e.into()),
    };
    let runs = st.pool.with(|s| s.run_page(None, None, None, 30)).await;
    let runs = match runs {
        Ok(p) => p.runs,
        Err(e) => return error_page(e.into()),
    };
    let body = html! {
        p { "Signed in as " b { (s.caller.name) } " (" (s.caller.role.map(|r| r.as_str()).unwrap_or("none")) ") "
            form.inline method="post" action="/logout" { (csrf_field(&s)) button { "Sign out" } } }
        h2 { "Sources" }
        table id="sources" {
            tr { th { "Source" } th { "Plugin" } th { "Schedule" } th { "Next run" } th { "State" } th { "Last run" } th {} }
            @for src in sources.as_array().into_iter().flatten() {
                @let name = src["name"].as_str().unwrap_or_default();
                tr data-source=(name) {
                    td { (name) }
                    td { (src["plugin"].as_str().unwrap_or_default()) }
                    td { (src["schedule"].as_str().unwrap_or("on request")) }
                    td { (src["next_run"].as_str().unwrap_or("-")) }
                    td.state {
                        @if src["running"] == true { "running" }
                        @else if let Some(h) = src["held_run"].as_i64() {
                            a.held href={"/console/runs/" (h)} { "held: run " (h) }
                        } @else { "idle" }
                    }
                    td {
                        @if let Some(id) = src["last_run"]["id"].as_i64() {
                            @let status = src["last_run"]["status"].as_str().unwrap_or_default();
                            a class=(status) href={"/console/runs/" (id)} { (status) " (run " (id) ")" }
                        } @else { "never" }
                    }
                    td {
                        form.inline method="post" action={"/console/sources/" (name) "/sync"} {
                            (csrf_field(&s)) button.sync { "Sync now" }
                        }
                    }
                }
            }
        }
        h2 { "Recent runs" }
        (chart(&runs))
        table id="runs" {
            tr { th { "Run" } th { "Source" } th { "Status" } th { "Started" } th { "Created" } th { "Updated" } th { "Deactivated" } th { "Deleted" } th { "Failed" } }
            @for r in &runs {
                tr {
                    td { a href={"/console/runs/" (r.id)} { (r.id) } }
                    td { (r.source) }
                    td class=(r.status.as_str()) { (r.status.as_str()) @if r.held.is_some() { " (held)" } }
                    td { (r.started) }
                    td { (r.counts.created) } td { (r.counts.updated) } td { (r.counts.deactivated) }
                    td { (r.counts.deleted) } td { (r.counts.failed) }
                }
            }
        }
        h2 { "Users" }
        form method="get" action="/console/users" {
            input type="search" name="q" placeholder="name, alias, email, card";
            " " button { "Search" }
        }
    };
    page("roster", body).into_response()
}

/// Changes per run over time, oldest left: a bar per run (an inline SVG, no script).
fn chart(runs: &[RunView]) -> Markup {
    let bars: Vec<(i64, u64)> = (runs.iter().rev())
        .map(|r| {
            let c = &r.counts;
            (
                r.id,
                c.created + c.updated + c.deactivated + c.reactivated + c.deleted,
            )
        })
        .collect();
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1) as f64;
    html! {
        svg id="chart" width="600" height="80" role="img" aria-label="changes per run" {
            @for (i, (id, n)) in bars.iter().enumerate() {
                @let h = (*n as f64 / max * 70.0).max(1.0);
                rect x=(i * 20) y=(78.0 - h) width="16" height=(h) fill="#4a78c2" {
                    title { "run " (id) ": " (n) " changes" }
                }
            }
        }
    }
}

async fn run_page(State(st): State<AppState>, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    let Some(s) = session(&st, &headers).await else {
        return sign_in(None);
    };
    let found = st
        .pool
        .with(move |store| Ok((store.run_head(id)?, store.run_events(id, 0, 500)?)))
        .await;
    let (run, events) = match found {
        Ok((Some(r), e)) => (r, e),
        Ok((None, _)) => return error_page(ApiError::not_found(format!("no run {id}"))),
        Err(e) => return error_page(e.into()),
    };
    let c = &run.counts;
    let body = html! {
        p id="status" { "Source " b { (run.source) } ": " span class=(run.status.as_str()) { (run.status.as_str()) }
            " · started " (run.started) " · finished " (run.finished.as_deref().unwrap_or("-")) }
        p { "created " (c.created) ", updated " (c.updated) ", unchanged " (c.unchanged) ", deactivated "
            (c.deactivated) ", reactivated " (c.reactivated) ", deleted " (c.deleted) ", failed " (c.failed) }
        @if let Some(m) = &run.message { p { (m) } }
        @if let Some(h) = &run.held {
            h2 { "Held plan" }
            @match &h.decision {
                None => {
                    p.held { "The deletion guard stopped this run. Nothing was applied; scheduled runs of "
                        (h.source) " wait for a decision." }
                    form.inline method="post" action={"/console/runs/" (id) "/approve"} {
                        (csrf_field(&s)) button id="approve" { "Approve" } }
                    " "
                    form.inline method="post" action={"/console/runs/" (id) "/dismiss"} {
                        (csrf_field(&s)) button id="dismiss" { "Dismiss" } }
                }
                Some(d) => p id="decision" { (d) " by " (h.decided_by.as_deref().unwrap_or("-"))
                    @if let Some(r) = h.rerun_id { " · " a href={"/console/runs/" (r)} { "run " (r) } } }
            }
            table id="plan" {
                tr { th { "Action" } th { "User" } th { "Fields" } }
                @for p in &h.plan {
                    tr { td { (p.action) } td { (p.username) } td { (p.fields.join(", ")) } }
                }
            }
        }
        h2 { "Events" }
        table id="events" {
            tr { th { "Action" } th { "Entry" } th { "Detail" } }
            @for e in &events {
                tr { td { (e.action) } td { (e.entry) } td { (e.reason.as_deref().unwrap_or("")) } }
            }
        }
    };
    page(&format!("Run {id}"), body).into_response()
}

#[derive(Deserialize)]
struct Search {
    q: Option<String>,
}

async fn users_page(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Search>,
) -> Response {
    if session(&st, &headers).await.is_none() {
        return sign_in(None);
    }
    let search = q.q.clone().filter(|s| !s.is_empty());
    let filter = UserFilter {
        all: true,
        search,
        limit: Some(200),
        ..Default::default()
    };
    let found = st
        .pool
        .with(move |store| {
            let mut users = Vec::new();
            store.each_user(&filter, |u| {
                users.push(u);
                Ok(())
            })?;
            Ok(users)
        })
        .await;
    let users = match found {
        Ok(u) => u,
        Err(e) => return error_page(e.into()),
    };
    let body = html! {
        form method="get" action="/console/users" {
            input type="search" name="q" value=(q.q.unwrap_or_default());
            " " button { "Search" }
        }
        table id="users" {
            tr { th { "Username" } th { "Full name" } th { "Email" } th { "Groups" } th { "Source" } th { "Active" } }
            @for u in &users {
                tr { td { (u.username) } td { (u.full_name.as_deref().unwrap_or("")) }
                     td { (u.email.as_deref().unwrap_or("")) } td { (u.groups.join(", ")) }
                     td { (u.source.as_deref().unwrap_or("")) } td { (if u.active { "yes" } else { "no" }) } }
            }
        }
    };
    page("Users", body).into_response()
}

/// Where a started run leads: its page, else home.
async fn after_start(res: Result<Response, ApiError>) -> Response {
    let res = match res {
        Ok(r) => r,
        Err(e) => return error_page(e),
    };
    let body = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    match v["run_id"].as_i64() {
        Some(id) => Redirect::to(&format!("/console/runs/{id}")).into_response(),
        None => Redirect::to("/").into_response(),
    }
}

async fn sync_now(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let Some(s) = form_session(&st, &headers, &f).await else {
        return error_page(ApiError::forbidden("the form is stale: reload the page"));
    };
    if let Err(e) = api::need(&s.caller, Role::Sync) {
        return error_page(e);
    }
    let flags = SyncFlags {
        hold: true,
        ..SyncFlags::default()
    };
    after_start(api::start(&st, &name, flags, &s.caller.name, None, None).await).await
}

async fn approve(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let Some(s) = form_session(&st, &headers, &f).await else {
        return error_page(ApiError::forbidden("the form is stale: reload the page"));
    };
    if let Err(e) = api::need(&s.caller, Role::Admin) {
        return error_page(e);
    }
    after_start(api::approve_run(&st, id, &s.caller.name).await).await
}

async fn dismiss(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let Some(s) = form_session(&st, &headers, &f).await else {
        return error_page(ApiError::forbidden("the form is stale: reload the page"));
    };
    if let Err(e) = api::need(&s.caller, Role::Admin) {
        return error_page(e);
    }
    match api::dismiss_run(&st, id, &s.caller.name).await {
        Ok(()) => Redirect::to(&format!("/console/runs/{id}")).into_response(),
        Err(e) => error_page(e),
    }
}
