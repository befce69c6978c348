//! Write a roster source connector in a few lines: declare its config keys and capabilities
//! once ([`Info`]), and yield users and groups from an iterator ([`Run`]). The SDK does the
//! rest of the `roster:plugin` contract: the session resource, batching into rows, the
//! cursor, typed errors and `info`.
//!
//! ```no_run
//! use roster_plugin::prelude::*;
//!
//! struct Staff;
//!
//! impl Connector for Staff {
//!     fn info() -> Info {
//!         roster_plugin::info!("People from staff.txt")
//!             .key(Key::file("path", "One `username:Full Name` a line").required())
//!             .capability("files", "reads the file at `path`")
//!     }
//!
//!     fn open(config: Config, _request: Request) -> Result<Run, Error> {
//!         let text = files::read_to_string(config.require_str("path")?)?;
//!         let users: Vec<User> = (text.lines())
//!             .filter_map(|l| l.split_once(':'))
//!             .map(|(id, name)| User::new(id).attr("username", id).attr("full_name", name))
//!             .collect();
//!         Ok(Run::new(users))
//!     }
//! }
//!
//! roster_plugin::export!(Staff);
//! ```
//!
//! A connector with a fixed set of attributes (a CSV header, an LDAP attribute list) yields
//! [`Row`]s of [`Run::columns`]; one whose work comes in bounded steps (pages) cuts its own
//! [`Batch`]es ([`Run::from_batches`]); one that cannot return between batches pushes them
//! through [`emit`]. [`Mapper`] and [`export_mapper!`] make a mapping plugin (world `mapper`).
//!
//! The crate builds natively too (the host calls become traps), so connector logic that
//! returns [`Item`]s can be unit-tested with `cargo test`.

mod batch;
mod config;
pub mod emit;
mod error;
pub mod files;
pub mod http;
mod info;
mod item;
pub mod ldap;
pub mod log;
mod mapper;

pub use batch::{Batches, End, Listing, Request, Run};
pub use config::Config;
pub use error::Error;
pub use info::{Credential, Info, Key};
pub use item::{Batch, Group, Item, Kind, Row, User, Yield};
pub use mapper::{Mapper, MapperAdapter};

/// The generated bindings of `wit/` (the `source` world). Authors rarely need them: the
/// types worth re-exporting are re-exported at the crate root.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "source",
        pub_export_macro: true,
        default_bindings_module: "roster_plugin::bindings",
    });
}

/// The generated bindings of the `mapper` world, sharing the `source` world's types.
#[doc(hidden)]
pub mod mapper_bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "mapper",
        pub_export_macro: true,
        default_bindings_module: "roster_plugin::mapper_bindings",
        with: {
            "roster:plugin/types@0.1.0": crate::bindings::roster::plugin::types,
            "roster:plugin/log@0.1.0": crate::bindings::roster::plugin::log,
            "roster:plugin/files@0.1.0": crate::bindings::roster::plugin::files,
        },
    });
}

pub use bindings::roster::plugin::types::{KeyType, RunMode as Mode};

/// The host's imports as generated, with the host's own error cases: for a connector that
/// words host errors itself (an interpreter passing them on to its scripts). [`files`],
/// [`http`], [`ldap`], [`log`] and [`emit`] are the typed way.
pub mod host {
    pub use crate::bindings::roster::plugin::{emit, files, http, ldap, log};
}

/// What an author's code usually needs, in one `use` (not `log`, which would shadow the
/// `log` crate: `roster_plugin::log`).
pub mod prelude {
    pub use crate::{
        files, http, ldap, Batch, Batches, Config, Connector, Credential, End, Error, Group, Info,
        Item, Key, Kind, Listing, Mode, Request, Row, Run, User,
    };
}

/// A connector: its self-description, and one run as a listing of users and groups.
pub trait Connector: 'static {
    /// Name, version, config keys, capabilities. Called without config.
    fn info() -> Info;

    /// Starts a run. `config` holds the admin's values, and the declared defaults for keys
    /// the admin left out.
    fn open(config: Config, request: Request) -> Result<Run, Error>;

    /// `roster sources test`: by default a full run, counting users and groups, with the
    /// first user as the sample. Override it when a directory can count more cheaply.
    fn test(config: Config) -> Result<TestReport, Error> {
        batch::test_by_listing(Self::open(config, Request::full())?)
    }
}

/// What `roster sources test` shows.
#[derive(Debug, Default)]
pub struct TestReport {
    pub users: Option<u64>,
    pub groups: Option<u64>,
    /// One user the host maps and shows.
    pub sample: Option<User>,
    pub messages: Vec<String>,
}

/// An [`Info`] with the crate's own name and version (Cargo.toml), and this description.
#[macro_export]
macro_rules! info {
    ($description:expr) => {
        $crate::Info::new(
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
            $description,
        )
    };
}

/// Exports a [`Connector`] as the component's `roster:plugin/connector`.
#[macro_export]
macro_rules! export {
    ($connector:ty) => {
        type __RosterPluginExport = $crate::Adapter<$connector>;
        $crate::bindings::export!(__RosterPluginExport with_types_in $crate::bindings);
    };
}

/// Exports a [`Mapper`] as the component's `roster:plugin/mapping` (world `mapper`); a
/// component may export a connector too.
#[macro_export]
macro_rules! export_mapper {
    ($mapper:ty) => {
        type __RosterMapperExport = $crate::MapperAdapter<$mapper>;
        $crate::mapper_bindings::export!(__RosterMapperExport with_types_in $crate::mapper_bindings);
    };
}

/// Binds a [`Connector`] to the generated `Guest` trait; used by [`export!`].
#[doc(hidden)]
pub struct Adapter<C>(std::marker::PhantomData<C>);

use bindings::exports::roster::plugin::connector as wit;

impl<C: Connector> wit::Guest for Adapter<C> {
    type Session = batch::Session;

    fn info() -> bindings::roster::plugin::types::PluginInfo {
        C::info().into_wit()
    }

    fn test(
        config: String,
    ) -> Result<wit::TestReport, bindings::roster::plugin::types::PluginError> {
        let config = Config::parse(&config, &C::info())?;
        let r = C::test(config)?;
        Ok(wit::TestReport {
            users: r.users,
            groups: r.groups,
            sample: r.sample.map(User::into_object),
            messages: r.messages,
        })
    }

    fn open(
        request: wit::RunRequest,
    ) -> Result<wit::Session, bindings::roster::plugin::types::PluginError> {
        let config = Config::parse(&request.config, &C::info())?;
        let run = C::open(
            config,
            Request {
                mode: request.mode,
                cursor: request.cursor,
            },
        )?;
        Ok(wit::Session::new(batch::Session::new(run)))
    }
}
