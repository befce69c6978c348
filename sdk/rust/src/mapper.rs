//! A mapping plugin (world `mapper`): between a connector and the host's declarative
//! mapping, the source's users go in, in batches, and each comes out changed, unchanged or
//! dropped. Groups, removals and failed entries do not pass through it.

use crate::bindings::roster::plugin::types::{Attribute, PluginError, SourceObject};
use crate::mapper_bindings::exports::roster::plugin::mapping::{Guest, MapResult};
use crate::{Error, User};
use std::any::Any;
use std::cell::RefCell;

/// A mapping plugin's run.
pub trait Mapper: Sized + 'static {
    /// Prepares a run from the source's mapping config (JSON); called once per run.
    fn init(config: &str) -> Result<Self, Error>;

    /// Maps a batch of users: one result per user, in order. `Ok(Some(user))` keeps it
    /// (changed or not), `Ok(None)` leaves it out of the run (a user it synced before does not
    /// count as missing), `Err` fails that entry (the source's `on_script_error` decides).
    fn map(&mut self, users: Vec<User>) -> Vec<Result<Option<User>, String>>;
}

thread_local! {
    /// The mapper `init` made, for the calls of this run.
    static MAPPER: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// Binds a [`Mapper`] to the generated `Guest` trait; used by [`export_mapper!`](crate::export_mapper).
#[doc(hidden)]
pub struct MapperAdapter<M>(std::marker::PhantomData<M>);

impl<M: Mapper> Guest for MapperAdapter<M> {
    fn init(config: String) -> Result<(), PluginError> {
        let mapper = M::init(&config)?;
        MAPPER.with(|cell| *cell.borrow_mut() = Some(Box::new(mapper)));
        Ok(())
    }

    fn transform(objects: Vec<SourceObject>) -> Vec<Result<MapResult, String>> {
        MAPPER.with(|cell| {
            let mut cell = cell.borrow_mut();
            let Some(mapper) = cell.as_mut().and_then(|m| m.downcast_mut::<M>()) else {
                let e = "the mapping plugin was not initialised".to_string();
                return objects.iter().map(|_| Err(e.clone())).collect();
            };
            map_objects(mapper, objects)
        })
    }
}

/// The users out of the objects and back: kind, members and parent stay as they came.
fn map_objects<M: Mapper>(
    mapper: &mut M,
    mut objects: Vec<SourceObject>,
) -> Vec<Result<MapResult, String>> {
    let users = (objects.iter_mut())
        .map(|o| User {
            id: std::mem::take(&mut o.id),
            locator: o.locator.take(),
            attributes: (std::mem::take(&mut o.attributes).into_iter())
                .map(|a| (a.name, a.values))
                .collect(),
            member_of: std::mem::take(&mut o.member_of),
        })
        .collect();
    (objects.into_iter())
        .zip(mapper.map(users))
        .map(|(mut o, r)| {
            Ok(match r? {
                None => MapResult::Drop,
                Some(u) => {
                    o.id = u.id;
                    o.locator = u.locator;
                    o.attributes = (u.attributes.into_iter())
                        .map(|(name, values)| Attribute { name, values })
                        .collect();
                    o.member_of = u.member_of;
                    MapResult::Keep(o)
                }
            })
        })
        .collect()
}
