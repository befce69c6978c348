//! roster's Unix and NIS connector: accounts from `passwd` and `group` files in their
//! standard format (`/etc/passwd`, `/etc/group`, or `getent passwd` / `getent group` output
//! saved from a NIS or SSSD host). Never `shadow`: passwords are not roster's business.
//!
//! The files are read only through the host's `files` interface; `passwd` is streamed line
//! by line, `group` is read first (it is small) to know each user's supplementary groups.
//! The logic is plain Rust over [`std::io::BufRead`], tested natively; [`component`] makes it
//! a connector with the roster-plugin SDK (wasm32 only).

pub mod parse;
pub mod run;
pub mod settings;

#[cfg(target_arch = "wasm32")]
mod component;
