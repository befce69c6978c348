//! Limits applied to every plugin call.

use super::{Batch, CallError};
pub use crate::batch::{MAX_BATCH_BYTES, MAX_BATCH_ENTRIES};
use std::time::Duration;

/// Bytes wasmtime may copy out of the guest in one call: a full batch with room for its
/// list and string headers. Past it the copy stops, so host memory stays bounded near
/// `memory_limit` plus one batch.
pub const HOSTCALL_FUEL: usize = 2 * MAX_BATCH_BYTES;

/// Per-source limits from the config.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    pub memory: u64,
}

impl Limits {
    pub(super) fn ticks(&self) -> u64 {
        (self.timeout.as_millis() / super::TICK.as_millis()).max(1) as u64
    }
}

/// Caps linear memory and tables; remembers that the cap was hit so the error can name it.
pub(crate) struct MemoryLimiter {
    limit: u64,
    hit: bool,
    /// The largest linear memory the plugin asked for, in bytes.
    peak: u64,
}

impl MemoryLimiter {
    pub fn new(limit: u64) -> Self {
        MemoryLimiter {
            limit,
            hit: false,
            peak: 0,
        }
    }
    pub fn peak(&self) -> u64 {
        self.peak
    }
    pub fn exceeded(&self) -> Option<u64> {
        self.hit.then_some(self.limit)
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.limit {
            self.hit = true;
            // Trap rather than return -1: a guest allocator would abort anyway, and a trap
            // carries our reason.
            return Err(wasmtime::format_err!(
                "memory limit of {} bytes reached",
                self.limit
            ));
        }
        self.peak = self.peak.max(desired as u64);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// Whether wasmtime stopped a copy out of the guest at [`HOSTCALL_FUEL`]. Its error type is
/// private, so this reads the message.
pub(super) fn is_hostcall_fuel(e: &wasmtime::Error) -> bool {
    e.chain()
        .any(|c| c.to_string().contains("fuel allocated for hostcalls"))
}

/// Rejects a batch over the entry or byte cap.
pub(crate) fn check_batch(batch: &Batch) -> Result<(), CallError> {
    Ok(crate::batch::check(batch)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::{Entry, ObjectKind, Row};

    fn row(id: &str, value: &str) -> Entry {
        Entry::Row(Row {
            kind: ObjectKind::User,
            id: id.into(),
            locator: None,
            values: vec![vec![value.into()]],
            member_of: Vec::new(),
            members: Vec::new(),
            parent: None,
        })
    }

    fn batch(entries: Vec<Entry>) -> Batch {
        Batch {
            columns: vec!["username".into()],
            entries,
        }
    }

    #[test]
    fn a_batch_at_the_caps_passes() {
        let entries = (0..MAX_BATCH_ENTRIES)
            .map(|i| row(&i.to_string(), "x"))
            .collect();
        assert!(check_batch(&batch(entries)).is_ok());
    }

    #[test]
    fn too_many_entries_or_bytes_are_refused_naming_the_cap() {
        let entries = (0..=MAX_BATCH_ENTRIES)
            .map(|i| row(&i.to_string(), "x"))
            .collect();
        let e = check_batch(&batch(entries)).unwrap_err().to_string();
        assert!(
            e.contains("10001 entries") && e.contains("at most 10000"),
            "{e}"
        );
        let big = "x".repeat(MAX_BATCH_BYTES / 2 + 1);
        let e = check_batch(&batch(vec![row("a", &big), row("b", &big)]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bytes"), "{e}");
    }

    #[test]
    fn a_deadline_is_at_least_one_tick() {
        let l = |ms| Limits {
            timeout: Duration::from_millis(ms),
            memory: 0,
        };
        assert_eq!(l(1).ticks(), 1);
        assert_eq!(l(2000).ticks(), 200);
    }

    #[test]
    fn the_memory_limiter_remembers_that_it_refused() {
        use wasmtime::ResourceLimiter;
        let mut m = MemoryLimiter::new(1 << 20);
        assert!(m.memory_growing(0, 1 << 20, None).unwrap());
        assert_eq!(m.exceeded(), None);
        assert!(m.memory_growing(0, (1 << 20) + 1, None).is_err());
        assert_eq!(m.exceeded(), Some(1 << 20));
    }
}
