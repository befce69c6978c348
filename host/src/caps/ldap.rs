//! `ldap`: host-held LDAP connections. The policy ([`BaseDns`]) keeps every search at or
//! below the source's configured base DNs. Until a source is configured with a connection
//! (the LDAP connector issue), every call is denied.

use crate::bindings::roster::plugin::ldap::{
    self, Host, HostConnection, HostSearch, LdapEntry, LdapError, SearchRequest,
};
use anyhow::Result;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

/// The base DNs a source may search, at or below.
#[derive(Debug, Clone, Default)]
pub struct BaseDns {
    bases: Vec<(String, Vec<String>)>,
}

impl BaseDns {
    pub fn new<S: AsRef<str>>(bases: impl IntoIterator<Item = S>) -> Self {
        BaseDns {
            bases: bases
                .into_iter()
                .map(|b| (b.as_ref().to_string(), rdns(b.as_ref())))
                .collect(),
        }
    }

    /// The configured bases, as written.
    pub fn list(&self) -> Vec<String> {
        self.bases.iter().map(|(b, _)| b.clone()).collect()
    }

    /// Whether `dn` is one of the bases or below one. Compared RDN by RDN, ignoring case
    /// and the spaces around separators, as LDAP servers do for the common attribute types.
    pub fn allows(&self, dn: &str) -> bool {
        let dn = rdns(dn);
        self.bases
            .iter()
            .any(|(_, base)| dn.len() >= base.len() && dn[dn.len() - base.len()..] == base[..])
    }
}

/// A DN's RDNs, normalised: split at unescaped commas, trimmed around `=`, lower-cased.
fn rdns(dn: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = dn.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ',' | ';' => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|rdn| {
            let rdn = rdn.trim();
            match rdn.split_once('=') {
                Some((t, v)) => format!("{}={}", t.trim(), v.trim()).to_lowercase(),
                None => rdn.to_lowercase(),
            }
        })
        .filter(|r| !r.is_empty())
        .collect()
}

/// One plugin's LDAP state.
#[derive(Debug, Default)]
pub struct LdapCtx {
    pub bases: BaseDns,
}

/// The context and the store's resource table, borrowed for one host call.
pub struct LdapView<'a> {
    pub ctx: &'a mut LdapCtx,
    pub table: &'a mut ResourceTable,
}

/// Marker for linking `ldap` against an [`LdapView`].
pub struct Ldap;

impl HasData for Ldap {
    type Data<'a> = LdapView<'a>;
}

pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> LdapView<'_>,
) -> Result<()> {
    ldap::add_to_linker::<T, Ldap>(linker, view)?;
    Ok(())
}

/// A bound connection (not yet constructible).
pub struct Connection;
/// A paged search (not yet constructible).
pub struct Search;

fn not_granted() -> LdapError {
    LdapError::Denied("the ldap capability is not granted to this source".into())
}

impl Host for LdapView<'_> {
    async fn connect(&mut self) -> Result<Resource<Connection>, LdapError> {
        Err(not_granted())
    }
}

impl HostConnection for LdapView<'_> {
    async fn search(
        &mut self,
        _c: Resource<Connection>,
        r: SearchRequest,
    ) -> Result<Resource<Search>, LdapError> {
        if let Some(base) = r.base.as_deref() {
            if !self.ctx.bases.allows(base) {
                return Err(LdapError::Denied(format!(
                    "{base} is not at or below a base DN of this source"
                )));
            }
        }
        Err(not_granted())
    }
    async fn base_dns(&mut self, _c: Resource<Connection>) -> Vec<String> {
        self.ctx.bases.list()
    }
    async fn root_dse(
        &mut self,
        _c: Resource<Connection>,
        _a: Vec<String>,
    ) -> Result<LdapEntry, LdapError> {
        Err(not_granted())
    }
    async fn drop(&mut self, c: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}

impl HostSearch for LdapView<'_> {
    async fn next_page(
        &mut self,
        _s: Resource<Search>,
    ) -> Result<Option<Vec<LdapEntry>>, LdapError> {
        Err(not_granted())
    }
    async fn drop(&mut self, s: Resource<Search>) -> wasmtime::Result<()> {
        self.table.delete(s)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_and_anything_below_it_are_allowed() {
        let p = BaseDns::new(["OU=People,DC=example,DC=test"]);
        assert!(p.allows("ou=people,dc=example,dc=test"));
        assert!(p.allows("CN=Alice Smith, OU=People, DC=Example, DC=Test"));
        assert!(p.allows("cn=x,ou=sub,ou=people,dc=example,dc=test"));
    }

    #[test]
    fn siblings_parents_and_lookalikes_are_denied() {
        let p = BaseDns::new(["ou=people,dc=example,dc=test"]);
        assert!(!p.allows("dc=example,dc=test"));
        assert!(!p.allows("ou=groups,dc=example,dc=test"));
        assert!(!p.allows("ou=people,dc=example,dc=test2"));
        // A comma escaped inside a value is part of that value, not a separator.
        assert!(!p.allows("cn=evil\\,ou=people\\,dc=example\\,dc=test,dc=other"));
        assert!(!p.allows(""));
    }

    #[test]
    fn several_bases_and_none() {
        let p = BaseDns::new(["ou=a,dc=t", "ou=b,dc=t"]);
        assert!(p.allows("cn=1,ou=a,dc=t"));
        assert!(p.allows("cn=2,ou=b,dc=t"));
        assert!(!p.allows("cn=3,ou=c,dc=t"));
        assert!(!BaseDns::default().allows("dc=t"));
    }
}
