//! `http`: requests to granted origins with host-held credentials (reqwest with rustls).
//!
//! The policy ([`Origins`]) decides which URLs a source may reach: the origins of its
//! url-typed config keys. Credentials ([`Credential`]) are built from the plugin's declared
//! templates and the source's secret keys; the host fetches and refreshes OAuth2 tokens and
//! attaches them, so the plugin never sees a secret or a token. 429 and 503 are retried
//! honouring `Retry-After`; a 401 refreshes the token once.

use crate::bindings::roster::plugin::http::{
    self, Host, HostPending, HttpError, Request, Response,
};
use crate::model::Secret;
use anyhow::Result;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

mod config;
pub use config::{Credential, Origins};

/// Largest response body handed to a plugin.
pub const MAX_BODY: usize = 64 << 20;
/// Retries of one request on 429, 503 or a failed connection.
const MAX_RETRIES: u32 = 6;
/// Longest total wait for retries of one request.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(120);
/// Requests one plugin may have sent in the background (`start`) and not yet finished.
const MAX_PENDING: usize = 4;
/// A token is renewed this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// One plugin's HTTP state: what it may reach and with which credentials, shared with its
/// requests on the I/O thread, and how many it has pending.
#[derive(Debug, Default)]
pub struct HttpCtx {
    shared: Arc<Shared>,
    pending: usize,
}

#[derive(Debug, Default)]
struct Shared {
    origins: Arc<Origins>,
    /// Each behind its own lock, so one token fetch serves the requests waiting for it.
    credentials: HashMap<String, Mutex<Credential>>,
    timeout: Duration,
    client: std::sync::Mutex<Option<reqwest::Client>>,
}

impl HttpCtx {
    /// What this plugin may reach.
    pub fn origins(&self) -> &Origins {
        &self.shared.origins
    }
}

impl Shared {
    fn client(&self) -> Result<reqwest::Client, HttpError> {
        let mut slot = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        // reqwest is built without a crypto provider of its own: rustls uses ring, the
        // provider the ldap capability uses too.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let origins = self.origins.clone();
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 10 {
                attempt.error("too many redirects")
            } else if let Err(e) = origins.check(attempt.url().as_str(), &[]) {
                attempt.error(format!("redirect refused: {e}"))
            } else {
                attempt.follow()
            }
        });
        let client = reqwest::Client::builder()
            .redirect(redirects)
            .timeout(self.timeout)
            .build()
            .map_err(|e| HttpError::Other(format!("starting the HTTP client: {e}")))?;
        *slot = Some(client.clone());
        Ok(client)
    }

    /// The Authorization header for a credential, fetching an OAuth2 token if needed.
    async fn authorization(&self, name: &str, fresh: bool) -> Result<String, HttpError> {
        let client = self.client()?;
        let timeout = self.timeout;
        let Some(cred) = self.credentials.get(name) else {
            let known: Vec<_> = self.credentials.keys().cloned().collect();
            return Err(HttpError::Denied(format!(
                "no credential named {name:?} (this plugin declares: {})",
                known.join(", ")
            )));
        };
        let mut cred = cred.lock().await;
        match &mut *cred {
            Credential::Missing(why) => Err(HttpError::Authentication(format!(
                "credential {name:?} is not usable: {why}"
            ))),
            Credential::Bearer(s) => Ok(format!("Bearer {}", s.0)),
            Credential::Basic(user, pw) => {
                use base64::Engine;
                let raw = format!("{user}:{}", pw.0);
                Ok(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                ))
            }
            Credential::OAuth2 {
                token_url,
                client_id,
                client_secret,
                scope,
                token,
            } => {
                if let Some((t, until)) = token.as_ref() {
                    if !fresh && Instant::now() + TOKEN_MARGIN < *until {
                        return Ok(format!("Bearer {}", t.0));
                    }
                }
                let form = [
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id.as_str()),
                    ("client_secret", client_secret.0.as_str()),
                    ("scope", scope.as_str()),
                ];
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form)
                    .finish();
                let (status, _, bytes) = retrying(token_url, timeout, || {
                    client
                        .post(token_url.as_str())
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(body.clone())
                })
                .await?;
                let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
                if !(200..300).contains(&status) {
                    let why = ["error", "error_description"]
                        .iter()
                        .filter_map(|k| json.get(k).and_then(|v| v.as_str()))
                        .collect::<Vec<_>>()
                        .join(": ");
                    return Err(HttpError::Authentication(format!(
                        "the token endpoint {token_url} refused client {client_id} (HTTP \
                         {status}{}{why}): check the client id, the secret and its expiry",
                        if why.is_empty() { "" } else { ": " }
                    )));
                }
                let Some(access) = json.get("access_token").and_then(|v| v.as_str()) else {
                    return Err(HttpError::Authentication(format!(
                        "the token endpoint {token_url} answered without an access_token"
                    )));
                };
                let life = json
                    .get("expires_in")
                    .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
                    .unwrap_or(300);
                *token = Some((
                    Secret(access.to_string()),
                    Instant::now() + Duration::from_secs(life),
                ));
                Ok(format!("Bearer {access}"))
            }
        }
    }
}

/// Sends a request, retrying 429, 503 and failed connections with `Retry-After` or
/// exponential backoff with jitter, and reads the body up to [`MAX_BODY`].
async fn retrying(
    url: &str,
    timeout: Duration,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<(u16, Vec<(String, String)>, Vec<u8>), HttpError> {
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        let last = attempt >= MAX_RETRIES;
        let why = match build().send().await {
            Ok(resp) if matches!(resp.status().as_u16(), 429 | 503) && !last => {
                let wait = retry_after(resp.headers()).unwrap_or_else(|| backoff(attempt));
                (format!("HTTP {}", resp.status().as_u16()), wait)
            }
            Ok(resp) if matches!(resp.status().as_u16(), 429 | 503) => {
                return Err(HttpError::Unavailable(format!(
                    "{url} still answered HTTP {} after {MAX_RETRIES} retries",
                    resp.status().as_u16()
                )))
            }
            Ok(resp) => return read(url, resp).await,
            Err(e) if e.is_timeout() => {
                return Err(HttpError::Timeout(format!(
                    "{url} did not answer within {timeout:?}"
                )))
            }
            Err(e) if e.is_redirect() => {
                return Err(HttpError::Denied(format!("{url}: {}", error_chain(&e))))
            }
            Err(e) if e.is_connect() && !last => (error_chain(&e), backoff(attempt)),
            Err(e) => {
                return Err(HttpError::Unavailable(format!(
                    "{url}: {}",
                    error_chain(&e)
                )))
            }
        };
        let (reason, wait) = why;
        if started.elapsed() + wait > MAX_RETRY_WAIT {
            return Err(HttpError::Unavailable(format!(
                "{url}: {reason}; retrying would wait past {MAX_RETRY_WAIT:?}"
            )));
        }
        tracing::debug!("http: {url}: {reason}, retry {} in {wait:?}", attempt + 1);
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

async fn read(
    url: &str,
    mut resp: reqwest::Response,
) -> Result<(u16, Vec<(String, String)>, Vec<u8>), HttpError> {
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let too_large = || HttpError::TooLarge(format!("{url}: the response is over {MAX_BODY} bytes"));
    if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| HttpError::Unavailable(format!("{url}: reading the response: {e}")))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, headers, body))
}

/// `Retry-After` in seconds (Graph's form), capped at the total retry budget.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_WAIT))
}

/// 0.5 s, 1 s, 2 s, … with up to half again of random jitter.
fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(500) * 2u32.pow(attempt.min(8));
    let jitter = getrandom::u64().unwrap_or(0) % (base.as_millis() as u64 / 2 + 1);
    base + Duration::from_millis(jitter)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The context and the store's resource table, borrowed for one host call.
pub struct HttpView<'a> {
    pub ctx: &'a mut HttpCtx,
    pub table: &'a mut ResourceTable,
}

/// Marker for linking `http` against an [`HttpView`].
pub struct Http;

impl HasData for Http {
    type Data<'a> = HttpView<'a>;
}

pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> HttpView<'_>,
) -> Result<()> {
    http::add_to_linker::<T, Http>(linker, view)?;
    Ok(())
}

/// A request sent with `start`, running on the I/O thread; dropping it cancels it.
pub struct Pending(Option<super::io::Task<Result<Response, HttpError>>>);

/// A request checked against the grants, ready to send.
struct Checked {
    url: url::Url,
    method: reqwest::Method,
    request: Request,
}

impl Shared {
    fn check(&self, request: Request) -> Result<Checked, HttpError> {
        if self.origins.is_empty() {
            return Err(HttpError::Denied(
                "the http capability is not granted to this source (the plugin must declare \
                 it, and a url key grant an origin)"
                    .into(),
            ));
        }
        let url = self
            .origins
            .check(&request.url, &request.headers)
            .map_err(HttpError::Denied)?;
        let method = reqwest::Method::from_bytes(request.method.to_uppercase().as_bytes())
            .map_err(|_| HttpError::Other(format!("invalid method {:?}", request.method)))?;
        Ok(Checked {
            url,
            method,
            request,
        })
    }

    /// Sends a checked request on the I/O thread, where every connection of the shared
    /// client lives, and waits for the response.
    fn send(self: &Arc<Self>, checked: Checked) -> super::io::Task<Result<Response, HttpError>> {
        let shared = self.clone();
        super::io::run(async move { shared.exchange(checked).await })
    }

    async fn exchange(&self, checked: Checked) -> Result<Response, HttpError> {
        let Checked {
            url,
            method,
            request,
        } = checked;
        let client = self.client()?;
        let mut refreshed = false;
        loop {
            let auth = match &request.credential {
                Some(name) => Some(self.authorization(name, refreshed).await?),
                None => None,
            };
            let build = || {
                let mut b = client.request(method.clone(), url.clone());
                for (k, v) in &request.headers {
                    b = b.header(k, v);
                }
                if let Some(a) = &auth {
                    b = b.header("authorization", a);
                }
                if let Some(body) = &request.body {
                    b = b.body(body.clone());
                }
                b
            };
            let (status, headers, body) = retrying(url.as_str(), self.timeout, build).await?;
            let oauth = match request.credential.as_ref() {
                Some(n) => match self.credentials.get(n) {
                    Some(c) => matches!(&*c.lock().await, Credential::OAuth2 { .. }),
                    None => false,
                },
                None => false,
            };
            // An expired or revoked token: fetch a new one and retry once.
            if status == 401 && oauth && !refreshed {
                tracing::debug!("http: {url}: 401, refreshing the token");
                refreshed = true;
                continue;
            }
            return Ok(Response {
                status,
                headers,
                body,
            });
        }
    }
}

fn stopped(e: tokio::task::JoinError) -> HttpError {
    HttpError::Other(format!("the request stopped: {e}"))
}

impl Host for HttpView<'_> {
    async fn send(&mut self, request: Request) -> Result<Response, HttpError> {
        let checked = self.ctx.shared.check(request)?;
        self.ctx.shared.send(checked).await.map_err(stopped)?
    }

    async fn start(&mut self, request: Request) -> Result<Resource<Pending>, HttpError> {
        if self.ctx.pending >= MAX_PENDING {
            return Err(HttpError::Denied(format!(
                "this plugin already has {MAX_PENDING} requests pending, the per-plugin limit; \
                 finish or drop one first"
            )));
        }
        let checked = self.ctx.shared.check(request)?;
        let task = self.ctx.shared.send(checked);
        let handle = self
            .table
            .push(Pending(Some(task)))
            .map_err(|e| HttpError::Other(e.to_string()))?;
        self.ctx.pending += 1;
        Ok(handle)
    }
}

impl HostPending for HttpView<'_> {
    async fn finish(&mut self, p: Resource<Pending>) -> Result<Response, HttpError> {
        let pending = self
            .table
            .get_mut(&p)
            .map_err(|e| HttpError::Other(e.to_string()))?;
        let Some(task) = pending.0.take() else {
            return Err(HttpError::Other(
                "finish was already called on this request".into(),
            ));
        };
        task.await.map_err(stopped)?
    }

    async fn drop(&mut self, p: Resource<Pending>) -> wasmtime::Result<()> {
        self.table.delete(p)?;
        self.ctx.pending -= 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_retry_after_is_read_in_seconds() {
        assert!(
            backoff(0) >= Duration::from_millis(500) && backoff(0) <= Duration::from_millis(750)
        );
        assert!(backoff(3) >= Duration::from_secs(4));
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }
}
