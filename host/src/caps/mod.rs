//! Host capabilities, one module each. They are the only way a plugin reaches the outside.

pub mod files;
pub mod http;
pub mod ldap;
pub mod log;

impl crate::runtime::roster::plugin::types::Host for crate::runtime::HostState {}
