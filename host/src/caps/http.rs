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
use crate::bindings::roster::plugin::types::{CredentialKind, KeyType, PluginInfo};
use crate::config::resolve_string;
use crate::model::Secret;
use anyhow::Result;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

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

/// The origins (scheme, host, port) a source may reach, each with the path prefix it was
/// granted under (`/` for a bare origin).
#[derive(Debug, Clone, Default)]
pub struct Origins {
    granted: Vec<(String, String)>,
}

impl Origins {
    /// Grants the origin of `url`, and the paths below `url`'s own path.
    pub fn grant(&mut self, url: &str) -> Result<(), String> {
        let u = parse(url)?;
        let mut prefix = u.path().to_string();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        self.granted.push((origin(&u), prefix));
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.granted.is_empty()
    }

    /// Checks a request's URL and headers. Userinfo in the URL, `..` segments, a `Host`
    /// header and any origin or path outside the grants are refused.
    pub fn check(&self, url: &str, headers: &[(String, String)]) -> Result<url::Url, String> {
        if headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            return Err("a Host header may not be set; the URL names the host".into());
        }
        let u = parse(url)?;
        let (o, path) = (origin(&u), u.path());
        let dir = format!("{}/", path.trim_end_matches('/'));
        if self
            .granted
            .iter()
            .any(|(g, prefix)| *g == o && (prefix == "/" || dir.starts_with(prefix.as_str())))
        {
            Ok(u)
        } else {
            Err(format!("{o}{path} is not granted to this source"))
        }
    }
}

fn parse(raw: &str) -> Result<url::Url, String> {
    // Checked on the raw text: the parser would resolve `..` away before we could see it.
    let path = raw.split(['?', '#']).next().unwrap_or("");
    if path
        .split('/')
        .any(|seg| seg == ".." || seg.eq_ignore_ascii_case("%2e%2e") || seg == ".%2e")
    {
        return Err(format!("{raw}: `..` segments are not allowed"));
    }
    let u = url::Url::parse(raw).map_err(|e| format!("{raw}: not a valid URL ({e})"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!("{raw}: only http and https URLs are allowed"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(
            "user names and passwords in URLs are not allowed; the host holds credentials".into(),
        );
    }
    if u.host_str().is_none() {
        return Err(format!("{raw}: the URL has no host"));
    }
    Ok(u)
}

/// A key's default as the plugin declares it: TOML (`"https://…"`), or bare text.
fn toml_default(d: &str) -> String {
    match toml::from_str::<toml::Table>(&format!("v = {d}")) {
        Ok(t) => match t.get("v") {
            Some(toml::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => d.to_string(),
        },
        Err(_) => d.to_string(),
    }
}

fn origin(u: &url::Url) -> String {
    u.origin().ascii_serialization()
}

/// A credential the host holds for one plugin.
#[derive(Debug)]
pub enum Credential {
    OAuth2 {
        token_url: String,
        client_id: String,
        client_secret: Secret,
        scope: String,
        token: Option<(Secret, Instant)>,
    },
    Bearer(Secret),
    Basic(String, Secret),
    /// A service account's signed assertion exchanged for a token (RFC 7523; caps/oauth.rs).
    ServiceAccount {
        account: Box<super::oauth::ServiceAccount>,
        subject: Option<String>,
        scope: String,
        token: Option<(Secret, Instant)>,
    },
    /// A key it needs is not set (a plugin may declare credentials only some configs use).
    Missing(String),
}

/// Why a credential could not be built: a config key is not set, or the declaration is wrong.
enum Unbuilt {
    Missing(String),
    Wrong(anyhow::Error),
}

impl From<anyhow::Error> for Unbuilt {
    fn from(e: anyhow::Error) -> Self {
        Unbuilt::Wrong(e)
    }
}

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
    /// The grants and credentials of a plugin that declared `http`: every url-typed key's
    /// origin (its value, else its default) and every declared credential, with templates
    /// filled from the source's config and secrets resolved here, in the host.
    pub fn from_config(
        info: &PluginInfo,
        config: &toml::Table,
        dir: &Path,
        ctx: &str,
    ) -> Result<HttpCtx> {
        let value = |key: &str| -> Option<String> {
            match config.get(key) {
                Some(toml::Value::String(s)) => Some(s.clone()),
                Some(v @ (toml::Value::Integer(_) | toml::Value::Boolean(_))) => {
                    Some(v.to_string())
                }
                Some(_) => None,
                None => info
                    .config_keys
                    .iter()
                    .find(|k| k.name == key)
                    .and_then(|k| k.default.as_deref())
                    .map(toml_default),
            }
        };
        let mut origins = Origins::default();
        for k in info.config_keys.iter().filter(|k| k.type_ == KeyType::Url) {
            if let Some(url) = value(&k.name) {
                origins
                    .grant(url.trim_end_matches('/'))
                    .map_err(|e| anyhow::anyhow!("{ctx}.{}: {e}", k.name))?;
            }
        }
        // A list of URLs grants each, as a `url` key would.
        for k in info.config_keys.iter().filter(|k| k.type_ == KeyType::Urls) {
            let Some(v) = config.get(&k.name) else {
                continue;
            };
            let toml::Value::Array(urls) = v else {
                anyhow::bail!("{ctx}.{}: expected a list of URLs, got {v}", k.name);
            };
            for u in urls {
                let url = resolve_string(u, dir, &format!("{ctx}.{}", k.name))?.0;
                origins
                    .grant(url.trim_end_matches('/'))
                    .map_err(|e| anyhow::anyhow!("{ctx}.{}: {e}", k.name))?;
            }
        }
        let template = |t: &str, cred: &str| -> Result<String, Unbuilt> {
            let mut out = String::new();
            let mut rest = t;
            while let Some(open) = rest.find('{') {
                out.push_str(&rest[..open]);
                let close = rest[open..]
                    .find('}')
                    .map(|c| open + c)
                    .ok_or_else(|| anyhow::anyhow!("credential {cred}: unclosed `{{` in {t:?}"))?;
                let key = &rest[open + 1..close];
                match value(key) {
                    Some(v) => out.push_str(v.trim_end_matches('/')),
                    None => {
                        return Err(Unbuilt::Missing(format!(
                            "{ctx}.{key} is not set (credential {cred} uses it)"
                        )))
                    }
                }
                rest = &rest[close + 1..];
            }
            out.push_str(rest);
            Ok(out)
        };
        let secret = |key: &str, cred: &str| -> Result<Secret, Unbuilt> {
            let declared = info.config_keys.iter().find(|k| k.name == key);
            if declared.map(|k| k.type_) != Some(KeyType::Secret) {
                return Err(Unbuilt::Wrong(anyhow::anyhow!(
                    "plugin {}: credential {cred} names {key}, which is not a secret key",
                    info.name
                )));
            }
            match config.get(key) {
                Some(v) => Ok(resolve_string(v, dir, &format!("{ctx}.{key}"))?),
                None => Err(Unbuilt::Missing(format!(
                    "{ctx}.{key} is not set (credential {cred} uses it)"
                ))),
            }
        };
        let build = |kind: &CredentialKind, name: &str| -> Result<Credential, Unbuilt> {
            Ok(match kind {
                CredentialKind::Oauth2(o) => {
                    let token_url = template(&o.token_url, name)?;
                    origins
                        .check(&token_url, &[])
                        .map_err(|e| anyhow::anyhow!("credential {name}: the token URL {e}"))?;
                    Credential::OAuth2 {
                        token_url,
                        client_id: template(&o.client_id, name)?,
                        client_secret: secret(&o.client_secret, name)?,
                        scope: template(&o.scope, name)?,
                        token: None,
                    }
                }
                CredentialKind::Bearer(key) => Credential::Bearer(secret(key, name)?),
                CredentialKind::Basic(b) => {
                    Credential::Basic(template(&b.username, name)?, secret(&b.password, name)?)
                }
                CredentialKind::ServiceAccount(sa) => {
                    let key = secret(&sa.key_file, name)?;
                    let account = super::oauth::ServiceAccount::load(&key, dir)
                        .map_err(|e| anyhow::anyhow!("{ctx}.{}: {e:#}", sa.key_file))?;
                    let subject = template(&sa.subject, name)?;
                    Credential::ServiceAccount {
                        account: Box::new(account),
                        subject: (!subject.is_empty()).then_some(subject),
                        scope: template(&sa.scope, name)?,
                        token: None,
                    }
                }
            })
        };
        let mut credentials = HashMap::new();
        for c in &info.credentials {
            let cred = match build(&c.kind, &c.name) {
                Ok(cred) => cred,
                Err(Unbuilt::Missing(why)) => Credential::Missing(why),
                Err(Unbuilt::Wrong(e)) => return Err(e),
            };
            credentials.insert(c.name.clone(), Mutex::new(cred));
        }
        Ok(HttpCtx {
            shared: Arc::new(Shared {
                origins: Arc::new(origins),
                credentials,
                timeout: Duration::from_secs(30),
                client: Default::default(),
            }),
            pending: 0,
        })
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
            Credential::ServiceAccount {
                account,
                subject,
                scope,
                token,
            } => {
                if let Some(t) = cached(token, fresh) {
                    return Ok(t);
                }
                let assertion = (account.assertion(subject.as_deref(), scope)).map_err(|e| {
                    HttpError::Authentication(format!("credential {name:?}: {e:#}"))
                })?;
                let form = [
                    ("grant_type", super::oauth::JWT_BEARER),
                    ("assertion", assertion.as_str()),
                ];
                let advice = account.advice(subject.as_deref(), scope);
                let who = format!("service account {}", account.client_email);
                let token_url = account.token_uri.clone();
                fetch_token(&client, timeout, &token_url, &form, &who, &advice, token).await
            }
            Credential::OAuth2 {
                token_url,
                client_id,
                client_secret,
                scope,
                token,
            } => {
                if let Some(t) = cached(token, fresh) {
                    return Ok(t);
                }
                let form = [
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id.as_str()),
                    ("client_secret", client_secret.0.as_str()),
                    ("scope", scope.as_str()),
                ];
                let who = format!("client {client_id}");
                let advice = "check the client id, the secret and its expiry";
                fetch_token(&client, timeout, token_url, &form, &who, advice, token).await
            }
        }
    }
}

/// The cached token's header, unless it is near its expiry or a fresh one is asked for.
fn cached(token: &Option<(Secret, Instant)>, fresh: bool) -> Option<String> {
    match token {
        Some((t, until)) if !fresh && Instant::now() + TOKEN_MARGIN < *until => {
            Some(format!("Bearer {}", t.0))
        }
        _ => None,
    }
}

/// Posts a token request and keeps the token it answers; a refusal names `who` and what to
/// check (`advice`), never a secret.
async fn fetch_token(
    client: &reqwest::Client,
    timeout: Duration,
    token_url: &str,
    form: &[(&str, &str)],
    who: &str,
    advice: &str,
    token: &mut Option<(Secret, Instant)>,
) -> Result<String, HttpError> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let (status, _, bytes) = retrying(token_url, timeout, || {
        client
            .post(token_url)
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
            "the token endpoint {token_url} refused {who} (HTTP \
                         {status}{}{why}): {advice}",
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
                    Some(c) => matches!(
                        &*c.lock().await,
                        Credential::OAuth2 { .. } | Credential::ServiceAccount { .. }
                    ),
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
    use crate::bindings::roster::plugin::types::{ConfigKey, Credential as Decl, Oauth2Credential};

    fn granted() -> Origins {
        let mut o = Origins::default();
        o.grant("https://graph.example.com/v1.0").unwrap();
        o.grant("http://127.0.0.1:8080").unwrap();
        o
    }

    #[test]
    fn granted_origins_and_paths_pass() {
        let o = granted();
        assert!(o
            .check("https://graph.example.com/v1.0/users?$top=999", &[])
            .is_ok());
        assert!(o
            .check("https://GRAPH.example.com:443/v1.0/users", &[])
            .is_ok());
        assert!(o
            .check("http://127.0.0.1:8080/anything/at/all", &[])
            .is_ok());
    }

    #[test]
    fn other_origins_paths_and_tricks_are_refused() {
        let o = granted();
        for url in [
            "https://evil.example.com/v1.0/users",
            "http://graph.example.com/v1.0/users",
            "https://graph.example.com:8443/v1.0/users",
            "https://graph.example.com/beta/users",
            "https://graph.example.com/v1.0/../beta/users",
            "https://graph.example.com/v1.0/%2E%2E/beta",
            "https://user:pw@graph.example.com/v1.0/users",
            "http://127.0.0.1:8081/",
            "file:///etc/passwd",
            "not a url",
        ] {
            assert!(o.check(url, &[]).is_err(), "{url} should be refused");
        }
    }

    #[test]
    fn a_host_header_override_is_refused() {
        let o = granted();
        let h = vec![("HOST".to_string(), "evil.example.com".to_string())];
        assert!(o.check("http://127.0.0.1:8080/", &h).is_err());
    }

    #[test]
    fn nothing_is_granted_by_default() {
        assert!(Origins::default()
            .check("https://example.com/", &[])
            .is_err());
    }

    fn key(name: &str, type_: KeyType, default: Option<&str>) -> ConfigKey {
        ConfigKey {
            name: name.into(),
            type_,
            required: false,
            default: default.map(String::from),
            description: String::new(),
        }
    }

    fn entra_like() -> PluginInfo {
        PluginInfo {
            name: "entra".into(),
            version: "1".into(),
            description: String::new(),
            config_keys: vec![
                key("tenant_id", KeyType::String, None),
                key("client_id", KeyType::String, None),
                key("client_secret", KeyType::Secret, None),
                key(
                    "authority_url",
                    KeyType::Url,
                    Some("https://login.example.com"),
                ),
                key("graph_url", KeyType::Url, Some("https://graph.example.com")),
            ],
            capabilities: Vec::new(),
            defaults: Vec::new(),
            credentials: vec![Decl {
                name: "graph".into(),
                kind: CredentialKind::Oauth2(Oauth2Credential {
                    token_url: "{authority_url}/{tenant_id}/oauth2/v2.0/token".into(),
                    client_id: "{client_id}".into(),
                    client_secret: "client_secret".into(),
                    scope: "{graph_url}/.default".into(),
                }),
            }],
        }
    }

    #[test]
    fn url_keys_grant_their_origins_and_credentials_fill_their_templates() {
        std::env::set_var("ROSTER_TEST_HTTP_SECRET", "s3cr3t-9d");
        let config: toml::Table = r#"
            tenant_id = "t1"
            client_id = "c1"
            client_secret = { env = "ROSTER_TEST_HTTP_SECRET" }
            graph_url = "http://127.0.0.1:9000/"
        "#
        .parse()
        .unwrap();
        let ctx = HttpCtx::from_config(&entra_like(), &config, Path::new("/"), "sources.e.config")
            .unwrap();
        // The admin's graph_url and the default authority_url are granted, nothing else.
        assert!(ctx
            .shared
            .origins
            .check("http://127.0.0.1:9000/v1.0/users", &[])
            .is_ok());
        assert!(ctx
            .shared
            .origins
            .check("https://login.example.com/t1/x", &[])
            .is_ok());
        assert!(ctx
            .shared
            .origins
            .check("https://graph.example.com/v1.0", &[])
            .is_err());
        let Credential::OAuth2 {
            token_url,
            client_id,
            client_secret,
            scope,
            ..
        } = &*ctx.shared.credentials["graph"].blocking_lock()
        else {
            panic!("the graph credential")
        };
        assert_eq!(token_url, "https://login.example.com/t1/oauth2/v2.0/token");
        assert_eq!(client_id, "c1");
        assert_eq!(client_secret.0, "s3cr3t-9d");
        assert_eq!(scope, "http://127.0.0.1:9000/.default");
        assert!(
            !format!("{ctx:?}").contains("s3cr3t-9d"),
            "Debug shows the secret"
        );
    }

    #[test]
    fn a_credential_needs_its_keys_and_a_secret_typed_secret() {
        let missing: toml::Table = "tenant_id = \"t1\"\nclient_id = \"c1\"".parse().unwrap();
        let ctx = HttpCtx::from_config(&entra_like(), &missing, Path::new("/"), "s").unwrap();
        let Credential::Missing(why) = &*ctx.shared.credentials["graph"].blocking_lock() else {
            panic!("a credential without its secret is unusable")
        };
        assert!(why.contains("s.client_secret is not set"), "{why}");
        let mut info = entra_like();
        info.config_keys[2].type_ = KeyType::String;
        let config: toml::Table = "tenant_id = \"t\"\nclient_id = \"c\"\nclient_secret = \"x\""
            .parse()
            .unwrap();
        let e = HttpCtx::from_config(&info, &config, Path::new("/"), "s")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a secret key"), "{e}");
    }

    #[test]
    fn defaults_are_read_as_toml_or_bare() {
        assert_eq!(toml_default("\"https://a.example\""), "https://a.example");
        assert_eq!(toml_default("https://a.example"), "https://a.example");
        assert_eq!(toml_default("30"), "30");
    }

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
