//! HTTP(S) to origins the admin granted (keys of type `url`), optionally with a credential
//! the host holds (declared with [`Info::credential`](crate::Info::credential)): the plugin
//! never sees the secret or the token. Needs the `http` capability.

use crate::bindings::roster::plugin::http::{self as wit, HttpError};
use crate::Error;

/// A request being built.
#[derive(Debug, Clone)]
pub struct Request(wit::Request);

/// A response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A GET of `url`.
pub fn get(url: impl Into<String>) -> Request {
    Request::new("GET", url)
}

impl Request {
    pub fn new(method: &str, url: impl Into<String>) -> Request {
        Request(wit::Request {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: None,
            credential: None,
        })
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Request {
        self.0.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.0.body = Some(body.into());
        self
    }

    /// Names a host-held credential; the host attaches it.
    pub fn credential(mut self, name: &str) -> Request {
        self.0.credential = Some(name.into());
        self
    }

    /// Sends it. Host errors become typed errors: a denied origin is a config error.
    pub fn send(&self) -> Result<Response, Error> {
        let r = wit::send(&self.0).map_err(|e| error(&self.0.url, e))?;
        Ok(Response {
            status: r.status,
            headers: r.headers,
            body: r.body,
        })
    }

    /// Sends it in the background and returns at once, so the connector can ask for its
    /// next page before it works on this one. At most 4 may be pending; dropping one cancels
    /// it.
    pub fn start(&self) -> Result<Pending, Error> {
        let pending = wit::start(&self.0).map_err(|e| error(&self.0.url, e))?;
        Ok(Pending {
            url: self.0.url.clone(),
            pending,
        })
    }

    /// Sends it and parses a 2xx JSON body; other statuses are errors by class.
    pub fn json(&self) -> Result<serde_json::Value, Error> {
        self.send()?.ok(&self.0.url)?.json()
    }
}

/// A request the host is sending in the background.
pub struct Pending {
    url: String,
    pending: wit::Pending,
}

impl Pending {
    /// The URL it was sent to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Waits for the response.
    pub fn finish(self) -> Result<Response, Error> {
        let r = self.pending.finish().map_err(|e| error(&self.url, e))?;
        Ok(Response {
            status: r.status,
            headers: r.headers,
            body: r.body,
        })
    }
}

impl Response {
    /// Itself when 2xx; otherwise an error: 401/403 authentication, 429 and 5xx unavailable,
    /// any other a config error (a wrong URL).
    pub fn ok(self, what: &str) -> Result<Response, Error> {
        let m = || {
            let body = String::from_utf8_lossy(&self.body[..self.body.len().min(200)]);
            format!("{what}: HTTP {}: {body}", self.status)
        };
        match self.status {
            200..=299 => Ok(self),
            401 | 403 => Err(Error::authentication(m())),
            429 | 500..=599 => Err(Error::unavailable(m())),
            _ => Err(Error::config(m())),
        }
    }

    pub fn text(&self) -> Result<&str, Error> {
        std::str::from_utf8(&self.body)
            .map_err(|e| Error::bad_data(format!("body is not UTF-8: {e}")))
    }

    pub fn json(&self) -> Result<serde_json::Value, Error> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        (self.headers.iter())
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn error(url: &str, e: HttpError) -> Error {
    match e {
        HttpError::Denied(m) => Error::config(format!(
            "{url}: the host refused the request: {m} (a url key grants the origins this source may reach)"
        )),
        HttpError::Authentication(m) => Error::authentication(m),
        HttpError::TooLarge(m) => Error::bad_data(m),
        HttpError::Timeout(m) | HttpError::Unavailable(m) | HttpError::Other(m) => {
            Error::unavailable(format!("{url}: {m}"))
        }
    }
}
