//! `roster`: a directory sync host. Sources are sandboxed WebAssembly components; the host
//! maps, reconciles and stores users and groups in embedded SQLite.
//!
//! The library does the work and prints nothing; the `roster` binary (`main.rs` and `cli/`)
//! parses the command line and shows what the library returns or reports.

// Output belongs to the caller (see `sync::SyncObserver`); logs go through `tracing`.
#![deny(clippy::print_stdout, clippy::print_stderr, clippy::dbg_macro)]

pub mod authority;
pub mod batch;
pub mod bindings;
pub mod caps;
pub mod config;
pub mod error;
pub mod group_tree;
pub mod mapping;
pub mod model;
pub mod notify;
pub mod plugin_test;
pub mod plugins;
pub mod reconcile;
pub mod runtime;
pub mod scaffold;
pub mod schedule;
pub mod scripts;
pub mod serve;
pub mod session;
pub mod sources;
pub mod store;
pub mod sync;
pub mod tls;
pub mod tokens;
