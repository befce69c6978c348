//! RFC 4533 content synchronization (refreshOnly) for delta runs that must see deletions on
//! OpenLDAP (the `syncprov` overlay). The server's Sync State controls, syncInfo messages and
//! Sync Done control become changed entries, deleted entryUUIDs and the next cookie.

use super::{detail, raw_entry, Connection, LdapView, Stream, DEFAULT_PAGE, PAGE_BYTES};
use crate::bindings::roster::plugin::ldap::{
    HostSync, LdapError, SearchRequest, SyncChange, SyncEnd,
};
use ldap3::controls::{
    parse_syncinfo, EntryState, RawControl, SyncDone, SyncInfo, SyncRequest, SyncState,
};
use ldap3::ResultEntry;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use wasmtime::component::Resource;

const SYNC_STATE_OID: &str = "1.3.6.1.4.1.4203.1.9.1.2";
const SYNC_DONE_OID: &str = "1.3.6.1.4.1.4203.1.9.1.3";

/// A content synchronization being read, one page per call.
pub struct Sync {
    ldap: ldap3::Ldap,
    settings: Arc<super::LdapSettings>,
    base: String,
    stream: Option<Stream>,
    cookie_sent: bool,
    /// The server sent a present list (no session log): deletions are unknown.
    present_phase: bool,
    cookie: Option<Vec<u8>>,
    end: Option<SyncEnd>,
}

/// ldap3's parsers of these controls panic on malformed values; a bad server must not
/// take the host down.
fn parse<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, LdapError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| {
        LdapError::Other(format!(
            "the server sent a malformed {what} (RFC 4533 content synchronization)"
        ))
    })
}

/// entryUUID as OpenLDAP writes it in text.
fn uuid_text(u: &[u8]) -> String {
    let hex: String = u.iter().map(|b| format!("{b:02x}")).collect();
    if hex.len() != 32 {
        return hex;
    }
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

impl Sync {
    /// Starts the search on `conn` (so that a refused control fails the call that asked).
    pub async fn start(
        conn: &Connection,
        r: SearchRequest,
        cookie: Option<Vec<u8>>,
    ) -> Result<Sync, LdapError> {
        let settings = conn.settings.clone();
        let base = match r.base {
            Some(base) if settings.bases.allows(&base) => base,
            Some(base) => {
                return Err(LdapError::Denied(format!(
                    "{base} is not at or below a base DN of this source ({})",
                    settings.bases.list().join("; ")
                )))
            }
            None => match settings.bases.list().as_slice() {
                [one] => one.clone(),
                _ => {
                    return Err(LdapError::Denied(
                        "content synchronization needs one base: this source has several base \
                         DNs"
                        .into(),
                    ))
                }
            },
        };
        let mut ldap = conn.ldap.clone();
        ldap.with_timeout(settings.timeout);
        let mut control: RawControl = SyncRequest {
            cookie: cookie.clone(),
            ..Default::default()
        }
        .into();
        control.crit = true;
        ldap.with_controls(control);
        let mut sync = Sync {
            ldap: conn.ldap.clone(),
            settings,
            base,
            stream: None,
            cookie_sent: cookie.is_some(),
            present_phase: false,
            cookie,
            end: None,
        };
        let stream = ldap
            .streaming_search(
                &sync.base,
                super::scope(r.scope),
                &r.filter,
                r.attributes.clone(),
            )
            .await
            .map_err(|e| sync.error(e))?;
        sync.stream = Some(stream);
        Ok(sync)
    }

    fn error(&self, e: ldap3::LdapError) -> LdapError {
        match e {
            ldap3::LdapError::Timeout { .. } => LdapError::TimeLimit(format!(
                "the server did not answer within timeout = {:?}",
                self.settings.timeout
            )),
            ldap3::LdapError::LdapResult { result } => self.result(result.rc, &result.text),
            ldap3::LdapError::FilterParsing => LdapError::Other("invalid LDAP filter".into()),
            other => {
                LdapError::Unreachable(format!("the connection to the LDAP server broke: {other}"))
            }
        }
    }

    fn result(&self, rc: u32, text: &str) -> LdapError {
        let base = &self.base;
        match rc {
            12 => LdapError::Denied(format!(
                "the server does not offer content synchronization (RFC 4533, slapd's syncprov \
                 overlay) under {base}{}",
                detail(text)
            )),
            32 => LdapError::NoSuchBase(format!(
                "base DN {base} does not exist on the server{}: check base_dn",
                detail(text)
            )),
            50 => LdapError::Denied(format!(
                "the bind DN may not synchronize {base} (insufficient access){}",
                detail(text)
            )),
            4096 => LdapError::Other(format!(
                "the server no longer knows the synchronization cookie (e-syncRefreshRequired){}",
                detail(text)
            )),
            rc => LdapError::Other(format!(
                "content synchronization of {base} failed with result code {rc}{}",
                detail(text)
            )),
        }
    }

    /// What one message of the search adds to the page.
    fn message(&mut self, re: ResultEntry, page: &mut Vec<SyncChange>) -> Result<(), LdapError> {
        if re.is_ref() {
            return Ok(());
        }
        if re.is_intermediate() {
            match parse("syncInfo message", || parse_syncinfo(re))? {
                SyncInfo::NewCookie(c) => self.cookie = Some(c),
                SyncInfo::RefreshDelete { cookie, .. } => {
                    self.cookie = cookie.or(self.cookie.take())
                }
                SyncInfo::RefreshPresent { cookie, .. } => {
                    self.present_phase = true;
                    self.cookie = cookie.or(self.cookie.take());
                }
                SyncInfo::SyncIdSet {
                    cookie,
                    refresh_deletes,
                    sync_uuids,
                } => {
                    self.cookie = cookie.or(self.cookie.take());
                    if refresh_deletes {
                        page.extend(sync_uuids.iter().map(|u| SyncChange::Deleted(uuid_text(u))));
                    } else {
                        self.present_phase = true;
                    }
                }
            }
            return Ok(());
        }
        let state = match re.1.iter().find(|c| c.1.ctype == SYNC_STATE_OID) {
            Some(c) => Some(parse("Sync State control", || c.1.parse::<SyncState>())?),
            None => None,
        };
        match state {
            Some(SyncState {
                state: EntryState::Delete,
                entry_uuid,
                ..
            }) => page.push(SyncChange::Deleted(uuid_text(&entry_uuid))),
            Some(SyncState {
                state: EntryState::Present,
                ..
            }) => self.present_phase = true,
            _ => {
                if let Some(e) = raw_entry(re) {
                    page.push(SyncChange::Changed(e));
                }
            }
        }
        Ok(())
    }

    pub async fn next_page(&mut self) -> Result<Option<Vec<SyncChange>>, LdapError> {
        let mut page = Vec::new();
        let mut bytes = 0;
        while let Some(stream) = self.stream.as_mut() {
            match stream.next().await {
                Ok(Some(re)) => {
                    let before = page.len();
                    self.message(re, &mut page)?;
                    bytes += page[before..]
                        .iter()
                        .map(|c| match c {
                            SyncChange::Changed(e) => super::size(e),
                            SyncChange::Deleted(u) => u.len(),
                        })
                        .sum::<usize>();
                    if page.len() >= DEFAULT_PAGE as usize || bytes >= PAGE_BYTES {
                        return Ok(Some(page));
                    }
                }
                Ok(None) => {
                    let r = stream.finish().await;
                    self.stream = None;
                    if r.rc != 0 {
                        return Err(self.result(r.rc, &r.text));
                    }
                    let done = match r.ctrls.iter().find(|c| c.1.ctype == SYNC_DONE_OID) {
                        Some(c) => Some(parse("Sync Done control", || c.1.parse::<SyncDone>())?),
                        None => None,
                    };
                    let refresh_deletes = done.as_ref().is_some_and(|d| d.refresh_deletes);
                    if let Some(c) = done.and_then(|d| d.cookie) {
                        self.cookie = Some(c);
                    }
                    self.end = Some(SyncEnd {
                        cookie: self.cookie.clone(),
                        deletions_complete: !self.cookie_sent
                            || (refresh_deletes && !self.present_phase),
                    });
                }
                Err(e) => {
                    self.stream = None;
                    return Err(self.error(e));
                }
            }
        }
        Ok((!page.is_empty()).then_some(page))
    }
}

impl LdapView<'_> {
    pub(super) async fn start_sync(
        &mut self,
        c: Resource<Connection>,
        r: SearchRequest,
        cookie: Option<Vec<u8>>,
    ) -> Result<Resource<Sync>, LdapError> {
        if self.ctx.searches >= super::MAX_SEARCHES {
            return Err(LdapError::Denied(format!(
                "this plugin already holds {} open LDAP searches, the per-plugin limit",
                super::MAX_SEARCHES
            )));
        }
        let conn = self
            .table
            .get(&c)
            .map_err(|e| LdapError::Other(e.to_string()))?;
        let sync = Sync::start(conn, r, cookie).await?;
        let handle = self
            .table
            .push(sync)
            .map_err(|e| LdapError::Other(e.to_string()))?;
        self.ctx.searches += 1;
        Ok(handle)
    }
}

impl HostSync for LdapView<'_> {
    async fn next_page(&mut self, s: Resource<Sync>) -> Result<Option<Vec<SyncChange>>, LdapError> {
        let sync = self
            .table
            .get_mut(&s)
            .map_err(|e| LdapError::Other(e.to_string()))?;
        sync.next_page().await
    }

    async fn end(&mut self, s: Resource<Sync>) -> Option<SyncEnd> {
        self.table.get(&s).ok().and_then(|s| s.end.clone())
    }

    async fn drop(&mut self, s: Resource<Sync>) -> wasmtime::Result<()> {
        let mut sync = self.table.delete(s)?;
        self.ctx.searches -= 1;
        // Dropped before its end: tell the server to stop.
        if let Some(stream) = sync.stream.as_mut() {
            let id = stream.ldap_handle().last_id();
            sync.ldap.abandon(id).await.ok();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn uuids_read_as_openldap_writes_them() {
        let u = [
            0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
            0xcd, 0xef,
        ];
        assert_eq!(super::uuid_text(&u), "12345678-9abc-def0-0123-456789abcdef");
    }
}
