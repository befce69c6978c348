//! A connector's self-description: declared once, used for `info`, config defaults and the
//! admin's capability review.

use crate::bindings::roster::plugin::types as wit;
use crate::KeyType;

/// Name, version, description, config keys, capabilities, suggested defaults, credentials.
#[derive(Debug, Clone)]
pub struct Info {
    pub name: String,
    pub version: String,
    pub description: String,
    pub keys: Vec<Key>,
    /// (capability, reason): "files", "ldap", "http" or "log". The host grants nothing else.
    pub capabilities: Vec<(String, String)>,
    pub defaults: Vec<(String, String)>,
    pub credentials: Vec<Credential>,
}

impl Info {
    pub fn new(name: &str, version: &str, description: &str) -> Info {
        Info {
            name: name.into(),
            version: version.into(),
            description: description.into(),
            keys: Vec::new(),
            capabilities: Vec::new(),
            defaults: Vec::new(),
            credentials: Vec::new(),
        }
    }

    /// A config key under `[sources.NAME.config]`.
    pub fn key(mut self, key: Key) -> Info {
        self.keys.push(key);
        self
    }

    /// A host capability and why it is needed; the admin sees the reason at install.
    pub fn capability(mut self, name: &str, reason: &str) -> Info {
        self.capabilities.push((name.into(), reason.into()));
        self
    }

    /// A reconcile default the connector suggests, as TOML (`"pair_by"`, `"\"email\""`).
    pub fn suggest(mut self, key: &str, toml_value: &str) -> Info {
        self.defaults.push((key.into(), toml_value.into()));
        self
    }

    /// A credential the host holds for `http` requests.
    pub fn credential(mut self, credential: Credential) -> Info {
        self.credentials.push(credential);
        self
    }

    pub(crate) fn into_wit(self) -> wit::PluginInfo {
        wit::PluginInfo {
            name: self.name,
            version: self.version,
            description: self.description,
            config_keys: (self.keys.into_iter())
                .map(|k| wit::ConfigKey {
                    name: k.name,
                    type_: k.kind,
                    required: k.required,
                    default: k.default,
                    description: k.description,
                })
                .collect(),
            capabilities: (self.capabilities.into_iter())
                .map(|(name, reason)| wit::Capability { name, reason })
                .collect(),
            defaults: self.defaults,
            credentials: self.credentials.into_iter().map(|c| c.0).collect(),
        }
    }
}

/// One config key.
#[derive(Debug, Clone)]
pub struct Key {
    pub name: String,
    pub kind: KeyType,
    pub required: bool,
    /// As the admin would write it in TOML.
    pub default: Option<String>,
    /// Whether [`Config`](crate::Config) fills `default` in when the admin left the key out
    /// (false for a [`shown_default`](Key::shown_default)).
    pub fills_default: bool,
    pub description: String,
}

macro_rules! key_constructors {
    ($($(#[$doc:meta])* $f:ident => $t:ident,)*) => {
        impl Key {
            $(
                $(#[$doc])*
                pub fn $f(name: &str, description: &str) -> Key {
                    Key::new(name, KeyType::$t, description)
                }
            )*
        }
    };
}

key_constructors! {
    string => String,
    boolean => Boolean,
    integer => Integer,
    list => List,
    /// A file path: the host grants the plugin that file, read-only.
    file => File,
    duration => Duration,
    /// A secret the host keeps: it never reaches the plugin; credentials name it.
    secret => Secret,
    /// An http(s) URL: the host grants `http` requests to its origin, at or below its path.
    url => Url,
}

impl Key {
    pub fn new(name: &str, kind: KeyType, description: &str) -> Key {
        Key {
            name: name.into(),
            kind,
            required: false,
            default: None,
            fills_default: false,
            description: description.into(),
        }
    }

    pub fn required(mut self) -> Key {
        self.required = true;
        self
    }

    /// The default, written as in TOML: `"text"`, `true`, `3`, `["a", "b"]`.
    pub fn default(mut self, toml_value: &str) -> Key {
        self.default = Some(toml_value.into());
        self.fills_default = true;
        self
    }

    /// A default the admin sees (`roster plugin inspect`) but the connector works out itself,
    /// for one that depends on other keys (`"ad: [...]; openldap: [...]"`): it is not filled
    /// into the [`Config`](crate::Config).
    pub fn shown_default(mut self, text: &str) -> Key {
        self.default = Some(text.into());
        self.fills_default = false;
        self
    }
}

/// A credential the host builds from config keys and attaches to requests that name it.
#[derive(Debug, Clone)]
pub struct Credential(wit::Credential);

impl Credential {
    /// `Authorization: Bearer <value of secret key>`.
    pub fn bearer(name: &str, secret_key: &str) -> Credential {
        Credential(wit::Credential {
            name: name.into(),
            kind: wit::CredentialKind::Bearer(secret_key.into()),
        })
    }

    /// HTTP basic auth; `username` is a template of keys (`"{user}"`).
    pub fn basic(name: &str, username: &str, password_key: &str) -> Credential {
        Credential(wit::Credential {
            name: name.into(),
            kind: wit::CredentialKind::Basic(wit::BasicCredential {
                username: username.into(),
                password: password_key.into(),
            }),
        })
    }

    /// A service account's key (Google's JSON key file), named by a secret key holding its
    /// path: the host signs an RS256 JWT assertion acting for `subject` (a template; `""`
    /// for none) with the space-separated `scope` (a template) and exchanges it at the
    /// key's `token_uri` (RFC 7523). Neither the key nor the token reaches the plugin.
    pub fn service_account(
        name: &str,
        key_file_key: &str,
        subject: &str,
        scope: &str,
    ) -> Credential {
        Credential(wit::Credential {
            name: name.into(),
            kind: wit::CredentialKind::ServiceAccount(wit::ServiceAccountCredential {
                key_file: key_file_key.into(),
                subject: subject.into(),
                scope: scope.into(),
            }),
        })
    }

    /// OAuth2 client credentials; URLs, client id and scope are templates of keys.
    pub fn oauth2(
        name: &str,
        token_url: &str,
        client_id: &str,
        client_secret_key: &str,
        scope: &str,
    ) -> Credential {
        Credential(wit::Credential {
            name: name.into(),
            kind: wit::CredentialKind::Oauth2(wit::Oauth2Credential {
                token_url: token_url.into(),
                client_id: client_id.into(),
                client_secret: client_secret_key.into(),
                scope: scope.into(),
            }),
        })
    }
}
