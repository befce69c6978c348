//! The policy half of `http`, read from the source's config: the origins a source may reach
//! ([`Origins`]) and the credentials the host holds for it ([`Credential`]).

use super::{HttpCtx, Shared};
use crate::bindings::roster::plugin::types::{CredentialKind, KeyType, PluginInfo};
use crate::config::{resolve_string, ConfigError};
use crate::model::Secret;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

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
    /// A key it needs is not set (a plugin may declare credentials only some configs use).
    Missing(String),
}

/// Why a credential could not be built: a config key is not set, or the declaration is wrong.
enum Unbuilt {
    Missing(String),
    Wrong(ConfigError),
}

impl From<ConfigError> for Unbuilt {
    fn from(e: ConfigError) -> Self {
        Unbuilt::Wrong(e)
    }
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
    ) -> Result<HttpCtx, ConfigError> {
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
                    .map_err(|e| ConfigError::at(format!("{ctx}.{}", k.name), e))?;
            }
        }
        // A list of URLs grants each, as a `url` key would.
        for k in info.config_keys.iter().filter(|k| k.type_ == KeyType::Urls) {
            let Some(v) = config.get(&k.name) else {
                continue;
            };
            let toml::Value::Array(urls) = v else {
                return Err(ConfigError::at(
                    format!("{ctx}.{}", k.name),
                    format!("expected a list of URLs, got {v}"),
                ));
            };
            for u in urls {
                let url = resolve_string(u, dir, &format!("{ctx}.{}", k.name))?.0;
                origins
                    .grant(url.trim_end_matches('/'))
                    .map_err(|e| ConfigError::at(format!("{ctx}.{}", k.name), e))?;
            }
        }
        let template = |t: &str, cred: &str| -> Result<String, Unbuilt> {
            let mut out = String::new();
            let mut rest = t;
            while let Some(open) = rest.find('{') {
                out.push_str(&rest[..open]);
                let close = rest[open..].find('}').map(|c| open + c).ok_or_else(|| {
                    ConfigError::new(format!("credential {cred}: unclosed `{{` in {t:?}"))
                })?;
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
                return Err(Unbuilt::Wrong(ConfigError::new(format!(
                    "plugin {}: credential {cred} names {key}, which is not a secret key",
                    info.name
                ))));
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
                    origins.check(&token_url, &[]).map_err(|e| {
                        ConfigError::new(format!("credential {name}: the token URL {e}"))
                    })?;
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
}
