//! roster's SCIM 2.0 connector: `/Users` and `/Groups` pulled from a service provider
//! (RFC 7644) with `startIndex`/`count` paging, an optional filter, bearer or basic
//! credentials held by the host, and delta runs by `meta.lastModified` where the provider
//! keeps it. The logic ([`pull`]) is plain Rust over a [`pull::Fetch`], tested natively;
//! [`component`] makes it a connector (wasm32 only).

pub mod convert;
pub mod pull;

#[cfg(target_arch = "wasm32")]
mod component;
