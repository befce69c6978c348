//! roster's script plugin: sandboxed Rhai scripts, in two roles.
//!
//! - A *source script* streams users and groups with `emit_user` / `emit_group`; full
//!   batches go to the host as the script runs ([`source`]).
//! - A *mapping script* defines `fn map(entry)`, called on every user a source sends
//!   ([`mapper`]).
//!
//! Both run on one Rhai engine with operation, size and depth limits ([`engine`]); the
//! script reaches the outside only through a [`Host`], which the component implements with
//! the host's granted capabilities (files, http, ldap) and the tests with a fake. The logic
//! is plain Rust, tested natively; [`component`] makes it a connector and a mapper with the
//! roster-plugin SDK.

pub mod engine;
pub mod mapper;
pub mod papercut;
pub mod source;
pub mod values;

#[cfg(target_arch = "wasm32")]
mod component;

/// Attributes of one object: (name, values).
pub type Attributes = Vec<(String, Vec<String>)>;

/// One LDAP entry as a script sees it: its DN and its attributes as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapEntry {
    pub dn: String,
    pub attributes: Attributes,
}

/// What a script may reach outside itself. Every method is a granted host capability;
/// errors are messages for the script's error (naming the file, URL or filter).
pub trait Host {
    /// The whole content of a granted file.
    fn read_file(&self, path: &str) -> Result<Vec<u8>, String>;
    /// GET a URL on a granted origin: (status, body).
    fn http_get(&self, url: &str) -> Result<(u16, Vec<u8>), String>;
    /// Search the source's LDAP connection (each configured base, subtree).
    fn ldap_search(&self, filter: &str, attributes: &[String]) -> Result<Vec<LdapEntry>, String>;
    /// A line for roster's log (the script's `print` and `debug`).
    fn log(&self, debug: bool, message: &str);
}
