//! `http`: requests to granted origins with host-held credentials. The policy ([`Origins`])
//! decides which URLs a source may reach. Until a source is granted origins (the Entra ID
//! connector issue), every request is denied.

use crate::bindings::roster::plugin::http::{self, Host, HttpError, Request, Response};
use anyhow::Result;
use wasmtime::component::{HasSelf, Linker};

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
            .any(|(g, prefix)| *g == o && (dir.starts_with(prefix.as_str()) || prefix == "/"))
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

fn origin(u: &url::Url) -> String {
    u.origin().ascii_serialization()
}

/// One plugin's HTTP state.
#[derive(Debug, Default)]
pub struct HttpCtx {
    pub origins: Origins,
}

pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> &mut HttpCtx,
) -> Result<()> {
    http::add_to_linker::<T, HasSelf<HttpCtx>>(linker, view)?;
    Ok(())
}

impl Host for HttpCtx {
    async fn send(&mut self, request: Request) -> Result<Response, HttpError> {
        self.origins
            .check(&request.url, &request.headers)
            .map_err(HttpError::Denied)?;
        Err(HttpError::Denied(
            "the http capability is not granted to this source".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
