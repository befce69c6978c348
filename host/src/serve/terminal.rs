//! Terminals and local edits: `POST /api/v1/authenticate` (card, card and PIN, or username
//! and PIN), `POST /api/v1/users/{name}/cards` (card registration), and `PATCH
//! /api/v1/users/{name}` (an admin's local edits). Wrong PINs lock the user and the client
//! address for a growing time; the locks live in memory, so a check never waits for a sync,
//! and are saved to the database behind it (`users show` shows them).

use super::error::{ApiError, ApiResult};
use super::AppState;
use crate::store::{Edit, EditError, LockRow, Store};
use crate::tokens::{Caller, Role};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{patch, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

/// Wrong PINs before a user is locked.
pub const MAX_FAILURES: u32 = 5;
/// Failures (wrong PINs, unknown cards) before a client address is locked: more, since one
/// terminal serves many people and their typos.
pub const MAX_ADDR_FAILURES: u32 = 20;
/// The first lock; each further failure doubles it, up to [`MAX_LOCK`].
const FIRST_LOCK: i64 = 30;
const MAX_LOCK: i64 = 3600;
/// Failures older than this, without a lock, are forgotten.
const FORGET_AFTER: i64 = 15 * 60;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/authenticate", post(authenticate))
        .route("/users/{name}/cards", post(add_card))
        .route("/users/{name}", patch(edit))
}

/// Lock state per subject (`user:NAME`, `addr:IP`).
#[derive(Default)]
pub struct Locks {
    map: Mutex<HashMap<String, LockRow>>,
    /// Changed rows, for the saver.
    save: Mutex<Option<tokio::sync::mpsc::UnboundedSender<LockRow>>>,
}

impl Locks {
    /// Loads the saved locks.
    pub fn new(rows: Vec<LockRow>) -> Locks {
        Locks {
            map: Mutex::new(rows.into_iter().map(|r| (r.subject.clone(), r)).collect()),
            save: Mutex::default(),
        }
    }

    /// When the subject's lock ends, if it is locked at `now`.
    pub fn locked(&self, subject: &str, now: i64) -> Option<i64> {
        let map = self.map.lock().unwrap();
        map.get(subject)
            .and_then(|r| r.locked_until)
            .filter(|&u| u > now)
    }

    /// Counts a failure; returns the lock's end if this failure locks the subject.
    pub fn fail(&self, subject: &str, now: i64) -> Option<i64> {
        let mut map = self.map.lock().unwrap();
        let r = map.entry(subject.to_string()).or_insert_with(|| LockRow {
            subject: subject.to_string(),
            failures: 0,
            locked_until: None,
            last_failure: now,
        });
        let locked = r.locked_until.is_some_and(|u| u > now);
        if !locked && now - r.last_failure > FORGET_AFTER {
            r.failures = 0;
        }
        r.failures += 1;
        r.last_failure = now;
        let max = if subject.starts_with("addr:") {
            MAX_ADDR_FAILURES
        } else {
            MAX_FAILURES
        };
        let until = (r.failures >= max).then(|| {
            let doublings = (r.failures - max).min(10);
            now + (FIRST_LOCK << doublings).min(MAX_LOCK)
        });
        if until.is_some() {
            r.locked_until = until;
        }
        self.send(r.clone());
        until
    }

    /// A success clears the subject's failures.
    pub fn clear(&self, subject: &str) {
        let mut map = self.map.lock().unwrap();
        if let Some(mut r) = map.remove(subject) {
            r.failures = 0;
            r.locked_until = None;
            self.send(r);
        }
    }

    fn send(&self, row: LockRow) {
        if let Some(tx) = self.save.lock().unwrap().as_ref() {
            let _ = tx.send(row);
        }
    }

    /// Saves changed locks in the background, in turn with the runs (a sync holds the
    /// writer; the check itself never waits for it).
    pub fn start_saver(&self, runner: std::sync::Arc<super::runner::Runner>) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<LockRow>();
        *self.save.lock().unwrap() = Some(tx);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = HashMap::new();
                batch.insert(first.subject.clone(), first);
                while let Ok(r) = rx.try_recv() {
                    batch.insert(r.subject.clone(), r);
                }
                let rows: Vec<LockRow> = batch.into_values().collect();
                if let Err(e) = runner.write(move |s: &Store| s.save_locks(&rows)).await {
                    tracing::warn!("saving terminal locks: {e:#}");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_wrong_pins_lock_a_user_for_a_growing_time_and_old_failures_are_forgotten() {
        let l = Locks::new(Vec::new());
        for i in 0..4 {
            assert_eq!(l.fail("user:ann", 1000 + i), None);
        }
        assert_eq!(l.fail("user:ann", 1004), Some(1004 + FIRST_LOCK));
        assert_eq!(l.locked("user:ann", 1010), Some(1004 + FIRST_LOCK));
        assert_eq!(l.locked("user:ann", 1004 + FIRST_LOCK), None);
        // Each further failure doubles the lock, up to an hour.
        assert_eq!(l.fail("user:ann", 1100), Some(1100 + 2 * FIRST_LOCK));
        for t in 0..20 {
            l.fail("user:ann", 1200 + t);
        }
        assert_eq!(l.locked("user:ann", 1219), Some(1219 + MAX_LOCK));
        l.clear("user:ann");
        assert_eq!(l.locked("user:ann", 3020), None);
        // An address takes more failures; unlocked failures fade after a while.
        for i in 0..(MAX_ADDR_FAILURES - 1) {
            assert_eq!(l.fail("addr:10.0.0.1", 5000 + i as i64), None);
        }
        assert_eq!(l.fail("addr:10.0.0.1", 5000 + FORGET_AFTER + 100), None);
        let saved = Locks::new(vec![LockRow {
            subject: "user:bob".into(),
            failures: 5,
            locked_until: Some(9999),
            last_failure: 9000,
        }]);
        assert_eq!(saved.locked("user:bob", 9500), Some(9999));
    }

    #[test]
    fn a_pin_verifies_only_against_its_hash() {
        let h = crate::store::hash_pin("4821").unwrap();
        assert!(verify_pin("4821", std::slice::from_ref(&h)));
        assert!(!verify_pin("4822", &[h]));
        assert!(!verify_pin("4821", &[]));
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthBody {
    card: Option<String>,
    username: Option<String>,
    pin: Option<String>,
}

fn denied() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "denied", "authentication failed")
}

async fn authenticate(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(body): Json<AuthBody>,
) -> ApiResult<Response> {
    super::api::need(&caller, Role::Terminal)?;
    let shape_ok = matches!(
        (&body.card, &body.username, &body.pin),
        (Some(_), None, _) | (None, Some(_), Some(_))
    );
    if !shape_ok {
        return Err(ApiError::bad_request(
            "give {\"card\"}, {\"card\", \"pin\"} or {\"username\", \"pin\"}",
        ));
    }
    let too_long =
        |v: &Option<String>, max: usize| v.as_ref().is_some_and(|s| s.chars().count() > max);
    if too_long(&body.card, 128) || too_long(&body.username, 256) || too_long(&body.pin, 64) {
        return Err(denied());
    }
    let now = crate::store::unix_now();
    let addr = format!("addr:{}", peer.ip());
    if let Some(until) = st.locks.locked(&addr, now) {
        tracing::warn!(
            "terminal authentication from {} refused: address locked until {until}",
            peer.ip()
        );
        return Err(denied());
    }
    let (card, name, pin) = (body.card.clone(), body.username.clone(), body.pin.clone());
    let user = st
        .pool
        .with(move |s| s.auth_user(card.as_deref(), name.as_deref()))
        .await?;
    let subject = user.as_ref().map(|u| format!("user:{}", u.username));
    if let Some(s) = &subject {
        if let Some(until) = st.locks.locked(s, now) {
            tracing::warn!("terminal authentication of {s} refused: locked until {until}");
            return Err(denied());
        }
    }
    let hashes = user
        .as_ref()
        .map(|u| u.pin_hashes.clone())
        .unwrap_or_default();
    // The PIN check runs whether or not the user exists, so timing tells nothing.
    let ok = match pin {
        Some(pin) => tokio::task::spawn_blocking(move || verify_pin(&pin, &hashes))
            .await
            .map_err(|e| anyhow::anyhow!("PIN check: {e}"))?,
        None => true,
    };
    let ok = ok && user.as_ref().is_some_and(|u| u.active);
    if !ok {
        for s in std::iter::once(&addr).chain(subject.as_ref()) {
            if let Some(until) = st.locks.fail(s, now) {
                tracing::warn!(
                    "terminal authentication: {s} locked until {} after too many failures",
                    fmt_time(until)
                );
            }
        }
        return Err(denied());
    }
    let user = user.expect("checked");
    if let Some(s) = &subject {
        st.locks.clear(s);
    }
    let name = user.username.clone();
    let view = st.pool.with(move |s| s.user(&name)).await?;
    match view {
        Some(v) => Ok(Json(json!(v)).into_response()),
        None => Err(denied()),
    }
}

/// Whether `pin` matches one of the argon2 hashes (a dummy hash stands in for none, so a
/// user without PINs costs the same time).
fn verify_pin(pin: &str, hashes: &[String]) -> bool {
    use argon2::{PasswordHash, PasswordVerifier};
    static DUMMY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        crate::store::hash_pin("not a pin").expect("hashing a constant")
    });
    let argon = argon2::Argon2::default();
    let mut ok = false;
    let list: Vec<&str> = if hashes.is_empty() {
        vec![DUMMY.as_str()]
    } else {
        hashes.iter().map(String::as_str).collect()
    };
    for h in list {
        if let Ok(parsed) = PasswordHash::new(h) {
            ok |= argon.verify_password(pin.as_bytes(), &parsed).is_ok() && !hashes.is_empty();
        }
    }
    ok
}

fn fmt_time(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CardBody {
    card: String,
}

async fn add_card(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Json(body): Json<CardBody>,
) -> ApiResult<Response> {
    super::api::need(&caller, Role::Terminal)?;
    let edits = vec![Edit::AddCard(body.card)];
    apply(&st, &caller, name, edits, StatusCode::CREATED).await
}

async fn edit(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Json(body): Json<serde_json::Map<String, serde_json::Value>>,
) -> ApiResult<Response> {
    super::api::need(&caller, Role::Admin)?;
    let mut edits = Vec::new();
    for (k, v) in body {
        if k == "reset" {
            let list: Vec<String> = serde_json::from_value(v)
                .map_err(|_| ApiError::bad_request("reset: a list of field names"))?;
            for f in list {
                let f = crate::model::Field::parse(&f)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
                edits.push(Edit::Reset(f));
            }
            continue;
        }
        let f = crate::model::Field::parse(&k).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let v = match v {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(s),
            _ => return Err(ApiError::bad_request(format!("{k}: a string or null"))),
        };
        edits.push(Edit::Set(f, v));
    }
    if edits.is_empty() {
        return Err(ApiError::bad_request("nothing to edit"));
    }
    apply(&st, &caller, name, edits, StatusCode::OK).await
}

/// Applies edits in turn with the runs, and answers with the user as it is now.
async fn apply(
    st: &AppState,
    caller: &Caller,
    name: String,
    edits: Vec<Edit>,
    status: StatusCode,
) -> ApiResult<Response> {
    let auth = st.runner.config().authority.clone();
    let n = name.clone();
    let r = st
        .runner
        .write(move |s| s.edit_user(&n, &edits, auth.as_deref()))
        .await;
    let changed = match r {
        Ok(c) => c,
        Err(e) => {
            return Err(match e.downcast_ref::<EditError>() {
                Some(EditError::NoUser(_)) => ApiError::not_found(e.to_string()),
                Some(EditError::Held { .. }) => ApiError::conflict("held", e.to_string()),
                Some(EditError::Invalid(m)) => ApiError::bad_request(m.clone()),
                // No holder's name: a terminal learns only that the card is taken.
                Some(EditError::Taken { what, .. }) => {
                    ApiError::conflict("taken", format!("{what} is already held by another user"))
                }
                None => e.into(),
            });
        }
    };
    tracing::info!(
        "user {name} edited by token {:?}: {}",
        caller.name,
        changed.join(", ")
    );
    let view = st.pool.with(move |s| s.user(&name)).await?;
    Ok((status, Json(json!(view))).into_response())
}
