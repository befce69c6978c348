//! Batches handed to the host during a call, for a connector that cannot return between
//! batches (an interpreter running a whole script inside its first `next-batch`): push each
//! full batch as it is made, so memory stays flat; the host keeps them outside the plugin and
//! hands them to the run, in order, before the batch that call returns. Other connectors
//! never need it.

use crate::batch::into_wit;
use crate::bindings::roster::plugin::emit;
use crate::{Batch, Error};

/// Hands one batch to the host (at most 10,000 entries and 64 MiB). An error (a batch over
/// the caps, a full disk on the host) means the run cannot go on: return it from the listing.
pub fn push(batch: Batch) -> Result<(), Error> {
    emit::push(&into_wit(batch)?).map_err(Error::unavailable)
}
