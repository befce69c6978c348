//! API tokens of `roster serve`: random 256-bit values shown once; the store keeps their
//! SHA-256 (a fast hash suits random keys) and compares in constant time.

use crate::store::Store;
use anyhow::{anyhow, bail, Result};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a token may do. `read` < `sync` < `admin` each include the ones before; the
/// others are narrow roles for one kind of client and include nothing else (except that
/// `admin` includes `terminal` and `replica`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Reads users, groups, runs and sources.
    Read,
    /// Also starts runs.
    Sync,
    /// Also approves and dismisses held runs, and edits users.
    Admin,
    /// A card terminal: authenticates users by card and PIN and registers cards; reads
    /// nothing else.
    Terminal,
    /// An identity provider pushing users over SCIM into the one source the token is bound to.
    ScimPush,
    /// Another roster pulling this one: `read`, plus PIN hashes in roster's SCIM extension.
    Replica,
}

impl Role {
    pub const NAMES: [&'static str; 6] =
        ["read", "sync", "admin", "terminal", "scim-push", "replica"];

    pub fn parse(s: &str) -> Result<Role> {
        Ok(match s {
            "read" => Role::Read,
            "sync" => Role::Sync,
            "admin" => Role::Admin,
            "terminal" => Role::Terminal,
            "scim-push" => Role::ScimPush,
            "replica" => Role::Replica,
            other => bail!("unknown role {other:?} ({})", Role::NAMES.join(", ")),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Sync => "sync",
            Role::Admin => "admin",
            Role::Terminal => "terminal",
            Role::ScimPush => "scim-push",
            Role::Replica => "replica",
        }
    }

    /// Whether a token of this role may do what `need` allows.
    pub fn includes(self, need: Role) -> bool {
        use Role::*;
        match (self, need) {
            (a, b) if a == b => true,
            (Sync, Read) | (Admin, Read | Sync | Terminal | Replica) | (Replica, Read) => true,
            _ => false,
        }
    }

    /// Whether the role is bound to one source (`--source`), and only then.
    pub fn bound(self) -> bool {
        self == Role::ScimPush
    }
}

/// Who a request's token belongs to.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    /// None for a role this version does not know (a newer roster's token): it may do nothing.
    pub role: Option<Role>,
    /// The source a bound role (`scim-push`) is bound to.
    pub source: Option<String>,
}

impl Caller {
    pub fn may(&self, role: Role) -> bool {
        self.role.is_some_and(|r| r.includes(role))
    }
}

const PREFIX: &str = "roster_";

/// Makes a token, stores its hash, and returns the token: the only time it exists in clear.
pub fn create(store: &Store, name: &str, role: Role, source: Option<&str>) -> Result<String> {
    match (role.bound(), source) {
        (true, None) => bail!(
            "role {} is bound to one source: give --source NAME",
            role.as_str()
        ),
        (false, Some(_)) => bail!(
            "role {} is not bound to a source: drop --source",
            role.as_str()
        ),
        _ => {}
    }
    if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control()) {
        bail!("a token name of 1 to 64 printable characters, got {name:?}");
    }
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| anyhow!("random: {e}"))?;
    let token = format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    );
    store.add_token(name, role.as_str(), source, &hash(&token))?;
    Ok(token)
}

pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The caller a presented token belongs to, if any. Every stored hash is compared, in
/// constant time, so timing tells nothing about how close a guess was.
pub fn verify(store: &Store, token: &str) -> Result<Option<Caller>> {
    verify_hash(store, &hash(token))
}

/// As [`verify`], for a token known by its hash (a console session keeps only that).
pub fn verify_hash(store: &Store, presented: &[u8]) -> Result<Option<Caller>> {
    let mut found = None;
    for t in store.tokens()? {
        if bool::from(t.hash.ct_eq(presented)) {
            found = Some(Caller {
                role: Role::parse(&t.role).ok(),
                name: t.name,
                source: t.source,
            });
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_once_created_and_not_after_revoking() {
        let store = Store::memory().unwrap();
        let token = create(&store, "ci", Role::Sync, None).unwrap();
        assert!(token.starts_with(PREFIX) && token.len() > 40);
        let caller = verify(&store, &token).unwrap().unwrap();
        assert_eq!(
            (caller.name.as_str(), caller.role),
            ("ci", Some(Role::Sync))
        );
        assert!(caller.may(Role::Read) && caller.may(Role::Sync) && !caller.may(Role::Admin));
        assert!(verify(&store, "roster_wrong").unwrap().is_none());
        // Only the hash is stored.
        let rows = store.tokens().unwrap();
        assert_ne!(rows[0].hash, token.as_bytes());
        assert!(create(&store, "ci", Role::Read, None).is_err());
        assert!(store.revoke_token("ci").unwrap());
        assert!(verify(&store, &token).unwrap().is_none());
    }

    #[test]
    fn narrow_roles_include_nothing_else_and_admin_includes_terminal() {
        use Role::*;
        assert!(Admin.includes(Terminal) && Admin.includes(Replica) && !Admin.includes(ScimPush));
        assert!(!Terminal.includes(Read) && !ScimPush.includes(Read) && !Read.includes(Terminal));
        assert!(Replica.includes(Read) && !Replica.includes(Sync) && !Sync.includes(Replica));
        for name in Role::NAMES {
            assert_eq!(Role::parse(name).unwrap().as_str(), name);
        }
        let store = Store::memory().unwrap();
        assert!(create(&store, "okta", ScimPush, None).is_err());
        assert!(create(&store, "t", Terminal, Some("okta")).is_err());
        create(&store, "okta", ScimPush, Some("okta")).unwrap();
    }
}
