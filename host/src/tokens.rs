//! API tokens of `roster serve`: random 256-bit values shown once; the store keeps their
//! SHA-256 (a fast hash suits random keys) and compares in constant time.

use crate::store::Store;
use anyhow::{anyhow, bail, Result};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a token may do. Each role includes the ones before it, except the bound roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads users, groups, runs and sources.
    Read,
    /// Also starts runs.
    Sync,
    /// Also approves and dismisses held runs.
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Result<Role> {
        Ok(match s {
            "read" => Role::Read,
            "sync" => Role::Sync,
            "admin" => Role::Admin,
            other => bail!("unknown role {other:?} (read, sync or admin)"),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Sync => "sync",
            Role::Admin => "admin",
        }
    }
}

/// Who a request's token belongs to.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    /// None for a role this version does not know (a newer roster's token): it may do nothing.
    pub role: Option<Role>,
    pub source: Option<String>,
}

impl Caller {
    pub fn may(&self, role: Role) -> bool {
        self.role.is_some_and(|r| r >= role)
    }
}

const PREFIX: &str = "roster_";

/// Makes a token, stores its hash, and returns the token: the only time it exists in clear.
pub fn create(store: &Store, name: &str, role: Role, source: Option<&str>) -> Result<String> {
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
}
