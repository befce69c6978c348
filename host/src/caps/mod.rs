//! Host capabilities, one module each: the only way a plugin reaches the outside.
//!
//! Each capability owns a context (its grants, handles and limits) and adds its interface to
//! the linker through a view of that context, as wasmtime's WASI crates do. This module
//! composes them: [`Capabilities`] is the bag of contexts a store carries, and
//! [`add_to_linker`] links every capability for any store data that can lend them.

pub mod emit;
pub mod files;
pub mod grant;
pub mod http;
pub mod io;
pub mod ldap;
pub mod log;

use anyhow::Result;
use wasmtime::component::{Linker, ResourceTable};

/// Every capability's context for one plugin instance.
#[derive(Debug, Default)]
pub struct Capabilities {
    pub files: files::FilesCtx,
    pub log: log::LogCtx,
    pub ldap: ldap::LdapCtx,
    pub http: http::HttpCtx,
    pub emit: emit::EmitCtx,
}

/// Store data that holds the capabilities and the resource table their handles live in.
pub trait CapabilitiesView: Send + 'static {
    fn capabilities(&mut self) -> (&mut Capabilities, &mut ResourceTable);
}

/// Links every capability's interface.
pub fn add_to_linker<T: CapabilitiesView>(linker: &mut Linker<T>) -> Result<()> {
    crate::bindings::roster::plugin::types::add_to_linker::<T, Types>(linker, |_| Types)?;
    files::add_to_linker(linker, |t| {
        let (c, table) = t.capabilities();
        files::FilesView {
            ctx: &mut c.files,
            table,
        }
    })?;
    log::add_to_linker(linker, |t| &mut t.capabilities().0.log)?;
    ldap::add_to_linker(linker, |t| {
        let (c, table) = t.capabilities();
        ldap::LdapView {
            ctx: &mut c.ldap,
            table,
        }
    })?;
    http::add_to_linker(linker, |t| {
        let (c, table) = t.capabilities();
        http::HttpView {
            ctx: &mut c.http,
            table,
        }
    })?;
    emit::add_to_linker(linker, |t| &mut t.capabilities().0.emit)?;
    Ok(())
}

/// The `types` interface has no functions; it links as an empty host.
struct Types;

impl wasmtime::component::HasData for Types {
    type Data<'a> = Types;
}

impl crate::bindings::roster::plugin::types::Host for Types {}
