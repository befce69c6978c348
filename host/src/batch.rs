//! The host's caps on one batch, the same for a batch a call returns and one a plugin
//! pushes (`emit`): a leaf, so the runtime and the capabilities both use it.

use crate::bindings::{Batch, Entry};

/// At most this many entries per batch.
pub const MAX_BATCH_ENTRIES: usize = 10_000;
/// At most this many bytes of strings per batch.
pub const MAX_BATCH_BYTES: usize = 64 << 20;

/// A batch over a cap, with what it had too much of.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugin returned a batch over the cap ({0}); a batch may hold at most {MAX_BATCH_ENTRIES} entries and {MAX_BATCH_BYTES} bytes: send smaller batches")]
pub struct OverCap(pub String);

/// Rejects a batch over the entry or byte cap.
pub fn check(batch: &Batch) -> Result<(), OverCap> {
    let entries = &batch.entries;
    if entries.len() > MAX_BATCH_ENTRIES {
        return Err(OverCap(format!("{} entries", entries.len())));
    }
    let bytes: usize = batch.columns.iter().map(String::len).sum::<usize>()
        + entries.iter().map(entry_bytes).sum::<usize>();
    if bytes > MAX_BATCH_BYTES {
        return Err(OverCap(format!("{bytes} bytes")));
    }
    Ok(())
}

fn entry_bytes(e: &Entry) -> usize {
    match e {
        Entry::Object(o) => {
            o.id.len()
                + o.attributes
                    .iter()
                    .map(|a| a.name.len() + a.values.iter().map(String::len).sum::<usize>())
                    .sum::<usize>()
                + o.member_of
                    .iter()
                    .chain(&o.members)
                    .map(String::len)
                    .sum::<usize>()
        }
        Entry::Row(r) => {
            r.id.len()
                + r.values
                    .iter()
                    .flatten()
                    .chain(&r.member_of)
                    .chain(&r.members)
                    .map(String::len)
                    .sum::<usize>()
        }
        Entry::Removed(r) => r.id.len(),
        Entry::Failed(f) => f.locator.len() + f.reason.len(),
    }
}
