//! `ldap`: host-held LDAP connections. Until a source is configured with a connection
//! (issue #3), every call is denied.

use crate::runtime::roster::plugin::ldap::{
    Host, HostConnection, HostSearch, LdapEntry, LdapError, SearchRequest,
};
use crate::runtime::HostState;
use wasmtime::component::Resource;

/// A bound connection (not yet constructible).
pub struct Connection;
/// A paged search (not yet constructible).
pub struct Search;

fn not_granted() -> LdapError {
    LdapError::Denied("the ldap capability is not granted to this source".into())
}

impl Host for HostState {
    fn connect(&mut self) -> Result<Resource<Connection>, LdapError> {
        Err(not_granted())
    }
}

impl HostConnection for HostState {
    fn search(
        &mut self,
        _c: Resource<Connection>,
        _r: SearchRequest,
    ) -> Result<Resource<Search>, LdapError> {
        Err(not_granted())
    }
    fn base_dns(&mut self, _c: Resource<Connection>) -> Vec<String> {
        Vec::new()
    }
    fn root_dse(
        &mut self,
        _c: Resource<Connection>,
        _a: Vec<String>,
    ) -> Result<LdapEntry, LdapError> {
        Err(not_granted())
    }
    fn drop(&mut self, c: Resource<Connection>) -> wasmtime::Result<()> {
        self.table().delete(c)?;
        Ok(())
    }
}

impl HostSearch for HostState {
    fn next_page(&mut self, _s: Resource<Search>) -> Result<Option<Vec<LdapEntry>>, LdapError> {
        Err(not_granted())
    }
    fn drop(&mut self, s: Resource<Search>) -> wasmtime::Result<()> {
        self.table().delete(s)?;
        Ok(())
    }
}
