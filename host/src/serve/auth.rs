//! Who is calling: a bearer token, or the console's session cookie. Failed attempts are
//! logged with the client's address, never with what it sent.

use super::error::ApiError;
use super::AppState;
use crate::tokens::{self, Caller};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const COOKIE: &str = "roster_session";
/// A console session lasts this long without use.
const SESSION_IDLE: Duration = Duration::from_secs(8 * 3600);

/// Console sessions: a random id (the cookie) → the token's hash (checked again on every
/// request, so revoking the token ends the session) and the session's CSRF token.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

#[derive(Clone)]
pub struct Session {
    pub token_hash: Vec<u8>,
    pub csrf: String,
    last: Instant,
}

impl Sessions {
    pub fn create(&self, token_hash: Vec<u8>) -> (String, String) {
        let id = random();
        let csrf = random();
        let mut map = self.map.lock().unwrap();
        map.retain(|_, s| s.last.elapsed() < SESSION_IDLE);
        map.insert(
            id.clone(),
            Session {
                token_hash,
                csrf: csrf.clone(),
                last: Instant::now(),
            },
        );
        (id, csrf)
    }

    pub fn get(&self, id: &str) -> Option<Session> {
        let mut map = self.map.lock().unwrap();
        let s = map.get_mut(id)?;
        if s.last.elapsed() >= SESSION_IDLE {
            map.remove(id);
            return None;
        }
        s.last = Instant::now();
        Some(s.clone())
    }

    pub fn remove(&self, id: &str) {
        self.map.lock().unwrap().remove(id);
    }
}

fn random() -> String {
    use base64::Engine as _;
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the system's random source");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    (headers.get_all(header::COOKIE).iter())
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The caller of a request, from its bearer token or its console session.
pub async fn caller(
    st: &AppState,
    headers: &HeaderMap,
    safe: bool,
) -> Result<Option<Caller>, ApiError> {
    let bearer = (headers.get(header::AUTHORIZATION))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| tokens::hash(t.trim()));
    let hash = match bearer {
        Some(h) => h,
        // The console's cookie is good for reads only: a write needs a bearer token (or a
        // console form with its CSRF token), so no other site can make a browser write.
        None if !safe => return Ok(None),
        None => match cookie(headers, COOKIE).and_then(|id| st.sessions.get(id)) {
            Some(s) => s.token_hash,
            None => return Ok(None),
        },
    };
    Ok(st.pool.with(move |s| tokens::verify_hash(s, &hash)).await?)
}

/// Lets a request through with its [`Caller`] in the extensions, or answers 401.
pub async fn require_token(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let safe = req.method() == axum::http::Method::GET;
    match caller(&st, req.headers(), safe).await {
        Ok(Some(c)) => {
            req.extensions_mut().insert(c);
            next.run(req).await
        }
        Ok(None) => {
            let why = if req.headers().contains_key(header::AUTHORIZATION) {
                "unknown or malformed token"
            } else {
                "no token"
            };
            tracing::warn!(
                "authentication failed from {}: {why} ({} {})",
                addr.ip(),
                req.method(),
                req.uri().path()
            );
            ApiError::unauthorized().into_response()
        }
        Err(e) => e.into_response(),
    }
}
