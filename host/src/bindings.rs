//! The contract's generated host bindings, in one leaf module: the runtime calls the exports,
//! each capability in `caps` implements its import. Neither needs the other to see them.
//!
//! Imports of `ldap` and `http` are async: they wait on the network, and the runtime races
//! every plugin call against its deadline (see `runtime`). `files` and `log` are quick and
//! stay synchronous. Exports are async so a call can be cancelled while the guest waits in
//! the host.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "source",
    imports: {
        "roster:plugin/ldap": async,
        "roster:plugin/http": async,
    },
    exports: { default: async },
    with: {
        "roster:plugin/files.file": crate::caps::files::OpenFile,
        "roster:plugin/ldap.connection": crate::caps::ldap::Connection,
        "roster:plugin/ldap.search": crate::caps::ldap::Search,
        "roster:plugin/http.pending": crate::caps::http::Pending,
    },
    additional_derives: [serde::Serialize],
});

pub use self::roster::plugin::types::{
    Attribute, Batch, Entry, KeyType, ObjectKind, PluginError, PluginInfo, Row, RunMode,
    SourceObject,
};
pub use exports::roster::plugin::connector::{RunEnd, RunRequest, TestReport};
