//! The contract's generated host bindings, in one leaf module: the runtime calls the exports,
//! each capability in `caps` implements its import. Neither needs the other to see them.
//!
//! Imports of `ldap` and `http` are async: they wait on the network, and the runtime races
//! every plugin call against its deadline (see `runtime`). `files` and `log` are quick and
//! stay synchronous. Exports are async so a call can be cancelled while the guest waits in
//! the host.
//!
//! The `mapper` world has a second bindgen in [`mapper`]; it reuses this one's shared
//! interfaces and types (`with:`), so a `SourceObject` is one type for both.

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
        "roster:plugin/ldap.sync": crate::caps::ldap::Sync,
        "roster:plugin/http.pending": crate::caps::http::Pending,
    },
    additional_derives: [serde::Serialize, serde::Deserialize],
});

pub use self::roster::plugin::types::{
    Attribute, Batch, Entry, KeyType, ObjectKind, PluginError, PluginInfo, Row, RunMode,
    SourceObject,
};
pub use exports::roster::plugin::connector::{RunEnd, RunRequest, TestReport};
pub use mapper::exports::roster::plugin::mapping::MapResult;

/// The `mapper` world: a mapping plugin (for example the script plugin with a mapping
/// script). Its imports are linked by the same linker as a connector's.
pub mod mapper {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "mapper",
        exports: { default: async },
        with: {
            "roster:plugin/types": super::roster::plugin::types,
            "roster:plugin/log": super::roster::plugin::log,
            "roster:plugin/files": super::roster::plugin::files,
        },
    });
}
