//! `roster serve`: the long-running service. It schedules sources, takes runs over HTTP,
//! serves the read API, `/events`, `/metrics` and the console. Runs go through the same
//! `sync` entry point as the CLI (see `runner`); the engine knows nothing of HTTP.
//!
//! - `runner`: runs, one per source, queued for SQLite's one writer; the scheduler.
//! - `api`: `/api/v1`; `auth`: tokens and console sessions; `error`: JSON errors.
//! - `events`: SSE; `metrics`: Prometheus; `console`: the web pages; `pool`: readers.
//! - `scim`: SCIM 2.0 under `/scim/v2`.
//! - `terminal`: card and PIN checks, card registration, local edits of users.

mod api;
mod auth;
mod console;
mod error;
mod events;
mod metrics;
mod pool;
mod runner;
pub mod scim;
mod terminal;

use crate::config::{config_err, Config};
use crate::store::Store;
use crate::tokens::{Caller, Role};
use anyhow::{Context, Result};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Request bodies are small forms and JSON: anything larger is refused (413).
const MAX_BODY: usize = 64 * 1024;
/// Runs get this long to cancel on SIGTERM; the whole exit stays under 10 s.
const CANCEL_DEADLINE: Duration = Duration::from_secs(7);

#[derive(Clone)]
pub struct AppState {
    runner: Arc<runner::Runner>,
    pool: Arc<pool::Pool>,
    sessions: Arc<auth::Sessions>,
    shutdown: watch::Receiver<bool>,
    locks: Arc<terminal::Locks>,
}

/// Runs the service until SIGTERM or SIGINT. `ready` hears the address once it listens.
pub fn serve(cfg: Config, ready: impl FnOnce(SocketAddr, bool) + Send) -> Result<()> {
    // Migrations run once, here, before the runtime (a PostgreSQL store blocks on its own
    // runtime); runs that a killed process left are marked interrupted.
    Store::open(&cfg.database)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("roster-serve")
        .enable_all()
        .build()?;
    rt.block_on(run(cfg, ready))
}

async fn run(cfg: Config, ready: impl FnOnce(SocketAddr, bool)) -> Result<()> {
    let cfg = Arc::new(cfg);
    let pool = pool::Pool::new(cfg.database.clone());
    let metrics = Arc::new(metrics::Metrics::new(
        cfg.sources.iter().map(|s| s.name.clone()),
    ));
    let (events, _) = tokio::sync::broadcast::channel(1024);
    let runner = runner::Runner::new(cfg.clone(), pool.clone(), metrics, events)?;
    let (stop_tx, shutdown) = watch::channel(false);
    let locks = Arc::new(terminal::Locks::new(pool.with(|s| s.locks()).await?));
    locks.start_saver(runner.clone());
    let st = AppState {
        runner: runner.clone(),
        pool,
        sessions: Arc::default(),
        shutdown,
        locks,
    };
    let app = router(st, cfg.serve.metrics_public);
    let listener = std::net::TcpListener::bind(cfg.serve.listen)
        .with_context(|| format!("serve.listen: cannot listen on {}", cfg.serve.listen))?;
    let addr = listener.local_addr()?;
    let handle = axum_server::Handle::new();
    // Without TCP_NODELAY, the last piece of a large answer (a page of users) waits for the
    // client's delayed ACK: 40 ms a page on a kept-alive connection.
    use axum_server::accept::NoDelayAcceptor;
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    let server = match &cfg.serve.tls {
        Some((cert, key)) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .map_err(|e| {
                    config_err(format!(
                        "serve.tls_cert/tls_key: {} and {}: {e}",
                        cert.display(),
                        key.display()
                    ))
                })?;
            let server = axum_server::from_tcp_rustls(listener, tls)?
                .map(|tls| tls.acceptor(NoDelayAcceptor::new()))
                .handle(handle.clone());
            tokio::spawn(server.serve(service))
        }
        None => {
            let server = axum_server::from_tcp(listener)?
                .acceptor(NoDelayAcceptor::new())
                .handle(handle.clone());
            tokio::spawn(server.serve(service))
        }
    };
    ready(addr, cfg.serve.tls.is_some());
    // systemd (Type=notify): ready once listening. Without NOTIFY_SOCKET this does nothing.
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!("sd_notify: {e}");
    }
    runner.schedule();
    shutdown_signal().await;
    tracing::info!("shutting down: no new runs; cancelling runs in progress");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    let _ = stop_tx.send(true);
    runner.shutdown(CANCEL_DEADLINE).await;
    handle.graceful_shutdown(Some(Duration::from_secs(1)));
    match tokio::time::timeout(Duration::from_secs(2), server).await {
        Ok(Ok(Err(e))) => tracing::warn!("server: {e}"),
        Err(_) => tracing::warn!("connections still open at exit"),
        _ => {}
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn router(st: AppState, metrics_public: bool) -> Router {
    let guarded = || from_fn_with_state(st.clone(), auth::require_token);
    let api = api::routes()
        .merge(terminal::routes())
        .fallback(|| async { error::ApiError::not_found("no such endpoint") })
        .layer(guarded());
    let metrics = Router::new().route("/metrics", get(metrics));
    let metrics = if metrics_public {
        metrics.layer(Extension(Caller {
            name: "metrics_public".into(),
            role: Some(Role::Read),
            source: None,
        }))
    } else {
        metrics.layer(guarded())
    };
    // The SCIM router's own layer makes the token check's 401 a SCIM error body.
    let scim = scim::routes::routes()
        .layer(guarded())
        .layer(from_fn(scim::routes::scim_errors));
    Router::new()
        .nest("/api/v1", api)
        .nest("/scim/v2", scim)
        .merge(metrics)
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz))
        .merge(console::routes())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(MAX_BODY))
        .layer(from_fn(scim::routes::scim_path_errors))
        .layer(from_fn(error::json_errors))
        .layer(from_fn_with_state(st.clone(), count_requests))
        .with_state(st)
}

async fn count_requests(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let res = next.run(req).await;
    st.runner.metrics.request(&method, res.status().as_u16());
    res
}

async fn readyz(State(st): State<AppState>) -> Response {
    match st.pool.with(|s| s.ping()).await {
        Ok(()) => Json(serde_json::json!({"status": "ready"})).into_response(),
        Err(e) => {
            tracing::warn!("readyz: {e:#}");
            error::ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the database does not answer",
            )
            .into_response()
        }
    }
}

async fn metrics(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> error::ApiResult<Response> {
    api::need(&caller, Role::Read)?;
    let ((active, inactive), outbox) = st
        .pool
        .with(|s| Ok((s.user_states()?, s.outbox_counts()?)))
        .await?;
    let text = st.runner.metrics.render(active, inactive, &outbox);
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// Each configured source with its schedule, state and last runs (API and console).
async fn sources_json(st: &AppState) -> Result<serde_json::Value> {
    let names: Vec<String> = (st.runner.config().sources.iter())
        .map(|s| s.name.clone())
        .collect();
    let stored = st
        .pool
        .with(move |s| {
            (names.into_iter())
                .map(|n| Ok((s.last_runs(&n)?, s.held_source(&n)?)))
                .collect::<Result<Vec<_>>>()
        })
        .await?;
    let list: Vec<_> = (st.runner.config().sources.iter())
        .zip(stored)
        .map(|(src, ((last, ok), held))| {
            serde_json::json!({
                "name": src.name,
                "plugin": src.plugin,
                "schedule": src.schedule.as_ref().map(|s| s.describe()),
                "next_run": st.runner.next_run(&src.name),
                "running": st.runner.running(&src.name).is_some(),
                "run": st.runner.running(&src.name),
                "held_run": held.map(|h| h.run_id),
                "last_run": last,
                "last_success": ok,
            })
        })
        .collect();
    Ok(serde_json::Value::Array(list))
}
