//! roster's Google Workspace connector: users, the organisational-unit tree and groups from
//! the Admin SDK Directory API.
//!
//! Everything goes through the host's `http` capability with the `google` credential: the
//! host reads the service account's key, signs the JWT assertion and holds the tokens, and
//! retries throttled requests. The logic ([`directory`]) is plain Rust over a
//! [`directory::Fetch`], tested natively; [`component`] makes it a connector (wasm32 only).

pub mod convert;
pub mod directory;
pub mod settings;
pub mod wire;

#[cfg(target_arch = "wasm32")]
mod component;
