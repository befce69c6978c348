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
//! The crate builds natively too (the host calls become traps), so connector logic that
//! returns [`Item`]s can be unit-tested with `cargo test`.

mod batch;
mod config;
mod error;
pub mod files;
pub mod http;
mod info;
mod item;
pub mod ldap;

pub use batch::{End, Listing, Request, Run};
pub use config::Config;
pub use error::Error;
pub use info::{Credential, Info, Key};
pub use item::{Group, Item, Kind, User, Yield};

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

pub use bindings::roster::plugin::types::{KeyType, RunMode as Mode};

/// What an author's code usually needs, in one `use`.
pub mod prelude {
    pub use crate::{
        files, http, ldap, Config, Connector, Credential, Error, Group, Info, Item, Key, Kind,
        Mode, Request, Run, User,
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
