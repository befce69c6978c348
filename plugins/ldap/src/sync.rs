//! RFC 4533 content synchronization (refreshOnly), for OpenLDAP delta runs that see
//! deletions: the cookie is the cursor. Used where the root DSE lists the Sync Request control
//! and the anchor is entryUUID (deletions arrive as entryUUIDs); otherwise deltas read
//! `modifyTimestamp`.

use crate::{Error, RawEntry};

/// The Sync Request control's OID, as the root DSE's `supportedControl` lists it.
pub const SYNC_REQUEST: &str = "1.3.6.1.4.1.4203.1.9.1.1";

/// One change since the cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Changed(RawEntry),
    /// The entryUUID of a deleted entry.
    Deleted(String),
}

/// How a synchronization ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncEnd {
    pub cookie: Option<Vec<u8>>,
    /// False when the server listed present entries instead (no session log).
    pub deletions_complete: bool,
}

/// A running synchronization.
pub trait SyncPages {
    fn next_page(&mut self) -> Result<Option<Vec<Change>>, Error>;
    /// After the last page.
    fn end(&self) -> Option<SyncEnd>;
}

/// Whether a root DSE offers content synchronization.
pub fn offered(dse: &RawEntry) -> bool {
    dse.values("supportedControl")
        .iter()
        .any(|v| v.as_slice() == SYNC_REQUEST.as_bytes())
}

/// A filter no entry matches: a synchronization with it and no cookie returns only the
/// current cookie, the mark a full run starts from.
pub const NOTHING: &str = "(!(objectClass=*))";
