//! `ldap`: host-held LDAP connections (ldap3 on tokio).
//!
//! The host reads the connection from the source's config ([`LdapSettings`]), connects,
//! binds and searches; the plugin gets handles and entries, never the password. The policy
//! ([`BaseDns`]) keeps every search at or below the configured base DNs. Paged results are
//! driven by the host and handed over one page per call, so no result set is held whole.

use crate::bindings::roster::plugin::ldap::{
    self, Host, HostConnection, HostSearch, LdapAttribute, LdapEntry, LdapError, Scope,
    SearchRequest,
};
use anyhow::Result;
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::controls::RawControl;
use ldap3::{LdapConnAsync, LdapConnSettings, ResultEntry, SearchStream};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::mpsc;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

mod packed;
mod settings;
mod sync;
pub use settings::{BaseDns, LdapSettings};
pub use sync::Sync;

/// Connections one plugin may hold at once.
pub const MAX_CONNECTIONS: usize = 4;
/// Searches one plugin may hold open at once.
pub const MAX_SEARCHES: usize = 16;
/// Page size when the plugin asks for 0; AD's default MaxPageSize.
const DEFAULT_PAGE: u32 = 1000;
/// A page handed to the plugin ends early once its values pass this size: a page of
/// groups with thousands of members each would otherwise be hundreds of MB, in the host
/// and again in the plugin's memory (which never shrinks).
const PAGE_BYTES: usize = 4 << 20;
/// AD's Show Deleted control.
const SHOW_DELETED: &str = "1.2.840.113556.1.4.417";

impl LdapSettings {
    fn conn_settings(&self) -> Result<LdapConnSettings, LdapError> {
        let mut s = LdapConnSettings::new()
            .set_conn_timeout(self.timeout)
            .set_starttls(self.starttls);
        if !self.tls_verify {
            s = s.set_no_tls_verify(true);
        } else if let Some(ca) = &self.ca_file {
            s = s.set_config(Arc::new(tls_config(ca)?));
        }
        Ok(s)
    }

    /// Connects to the first URL that answers and binds. Bad credentials end the attempt:
    /// the next server would refuse them too.
    async fn connect(&self) -> Result<ldap3::Ldap, LdapError> {
        let mut failures = Vec::new();
        for url in &self.urls {
            match self.connect_one(url).await {
                Ok(ldap) => return Ok(ldap),
                Err(e @ LdapError::InvalidCredentials(_)) => return Err(e),
                Err(e) => {
                    tracing::debug!("ldap: {url}: {e:?}");
                    failures.push(e);
                }
            }
        }
        // The last failure's kind, with every server's reason.
        let text = failures.iter().map(message).collect::<Vec<_>>().join("; ");
        Err(match failures.pop() {
            Some(LdapError::Tls(_)) => LdapError::Tls(text),
            Some(LdapError::TimeLimit(_)) => LdapError::TimeLimit(text),
            _ => LdapError::Unreachable(text),
        })
    }

    async fn connect_one(&self, url: &str) -> Result<ldap3::Ldap, LdapError> {
        let (conn, mut ldap) = LdapConnAsync::with_settings(self.conn_settings()?, url)
            .await
            .map_err(|e| self.connect_error(url, e))?;
        ldap3::drive!(conn);
        ldap.with_timeout(self.timeout);
        let (dn, pw) = match (&self.bind_dn, &self.password) {
            (Some(dn), Some(pw)) => (dn.as_str(), pw.0.as_str()),
            (Some(dn), None) => (dn.as_str(), ""),
            (None, _) => return Ok(ldap),
        };
        let r = ldap
            .simple_bind(dn, pw)
            .await
            .map_err(|e| self.connect_error(url, e))?;
        match r.rc {
            0 => Ok(ldap),
            49 => Err(LdapError::InvalidCredentials(format!(
                "{url} refused the bind as {dn} (invalid credentials{}): check bind_dn and \
                 password",
                detail(&r.text)
            ))),
            8 | 13 => Err(LdapError::Tls(format!(
                "{url} requires a secure connection for the bind{}: use ldaps:// or \
                 starttls = true",
                detail(&r.text)
            ))),
            rc => Err(LdapError::Other(format!(
                "{url}: the bind as {dn} failed with result code {rc}{}",
                detail(&r.text)
            ))),
        }
    }

    fn connect_error(&self, url: &str, e: ldap3::LdapError) -> LdapError {
        match e {
            ldap3::LdapError::Timeout { .. } => LdapError::TimeLimit(format!(
                "{url} did not answer within timeout = {:?}",
                self.timeout
            )),
            ldap3::LdapError::Io { source } if is_tls(&source) => LdapError::Tls(format!(
                "TLS with {url} failed: {source}; set ca_file to the CA that signed the \
                 server's certificate (or tls_verify = false, not recommended)"
            )),
            ldap3::LdapError::Io { source } => LdapError::Unreachable(format!(
                "cannot reach {url}: {source}; check url and that the server is running"
            )),
            other => LdapError::Unreachable(format!("{url}: {other}")),
        }
    }
}

fn detail(text: &str) -> String {
    if text.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", text.trim())
    }
}

fn is_tls(e: &std::io::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = e.get_ref().map(|e| e as _);
    while let Some(err) = cur {
        if err.is::<rustls::Error>() {
            return true;
        }
        cur = err.source();
    }
    e.kind() == std::io::ErrorKind::InvalidData
}

/// A rustls configuration trusting only the certificates in `ca_file`.
fn tls_config(ca_file: &Path) -> Result<rustls::ClientConfig, LdapError> {
    crate::tls::client_config(Some(ca_file))
        .map_err(|e| LdapError::Tls(format!("ca_file {}: {e}", ca_file.display())))
}

fn message(e: &LdapError) -> String {
    match e {
        LdapError::InvalidCredentials(m)
        | LdapError::Tls(m)
        | LdapError::Unreachable(m)
        | LdapError::NoSuchBase(m)
        | LdapError::TimeLimit(m)
        | LdapError::Denied(m)
        | LdapError::Other(m) => m.clone(),
    }
}

/// One plugin's LDAP state: the source's connection settings (none: nothing granted) and
/// the handles it holds.
#[derive(Debug, Default)]
pub struct LdapCtx {
    pub settings: Option<Arc<LdapSettings>>,
    connections: usize,
    searches: usize,
}

impl LdapCtx {
    pub fn new(settings: LdapSettings) -> Self {
        LdapCtx {
            settings: Some(Arc::new(settings)),
            ..Default::default()
        }
    }

    fn settings(&self) -> Result<Arc<LdapSettings>, LdapError> {
        self.settings.clone().ok_or_else(|| {
            LdapError::Denied(
                "the ldap capability is not granted to this source (the plugin must declare \
                 it, and the source configure a connection)"
                    .into(),
            )
        })
    }
}

/// The context and the store's resource table, borrowed for one host call.
pub struct LdapView<'a> {
    pub ctx: &'a mut LdapCtx,
    pub table: &'a mut ResourceTable,
}

/// Marker for linking `ldap` against an [`LdapView`].
pub struct Ldap;

impl HasData for Ldap {
    type Data<'a> = LdapView<'a>;
}

pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> LdapView<'_>,
) -> Result<()> {
    ldap::add_to_linker::<T, Ldap>(linker, view)?;
    Ok(())
}

/// A bound connection.
pub struct Connection {
    ldap: ldap3::Ldap,
    settings: Arc<LdapSettings>,
}

type Stream = SearchStream<'static, String, Vec<String>>;

/// What the reading task hands over: a page, the end of the search, or why it failed.
type Page = Result<Option<Vec<LdapEntry>>, LdapError>;

/// A paged search over one or more bases, read one page per call. A task on the I/O thread
/// reads ahead (at most [`READ_AHEAD`] pages), so the server's next page is on its way while
/// the plugin works on this one.
pub struct Search {
    pages: mpsc::Receiver<Page>,
    /// How the search ended, once it has: later calls answer the same.
    ended: Option<Result<(), LdapError>>,
}

/// Pages read ahead of the plugin.
const READ_AHEAD: usize = 2;

/// The reading side of a [`Search`].
struct Pager {
    ldap: ldap3::Ldap,
    settings: Arc<LdapSettings>,
    stream: Option<Stream>,
    /// The current base, then the bases still to search.
    base: String,
    pending: VecDeque<String>,
    scope: ldap3::Scope,
    filter: String,
    attributes: Vec<String>,
    page: u32,
    show_deleted: bool,
    /// Keep only tombstones whose last parent lies under a configured base.
    tombstones_in_scope: bool,
}

impl Search {
    async fn next_page(&mut self) -> Page {
        if let Some(ended) = &self.ended {
            return ended.clone().map(|()| None);
        }
        let page = self.pages.recv().await.unwrap_or_else(|| {
            Err(LdapError::Other(
                "the LDAP search stopped without an end (the host's reader failed)".into(),
            ))
        });
        match &page {
            Ok(Some(_)) => {}
            Ok(None) => self.ended = Some(Ok(())),
            Err(e) => self.ended = Some(Err(e.clone())),
        }
        page
    }
}

impl Pager {
    /// Reads pages into `out` until the search ends, fails, or nobody reads any more.
    async fn run(mut self, out: mpsc::Sender<Page>) {
        loop {
            let page = tokio::select! {
                _ = out.closed() => None,
                page = self.next_page() => Some(page),
            };
            let Some(page) = page else {
                // The plugin dropped the search: tell the server to stop sending pages.
                if let Some(stream) = self.stream.as_mut() {
                    let id = stream.ldap_handle().last_id();
                    self.ldap.abandon(id).await.ok();
                }
                return;
            };
            let last = !matches!(page, Ok(Some(_)));
            if out.send(page).await.is_err() || last {
                return;
            }
        }
    }

    async fn start(&mut self) -> Result<(), LdapError> {
        let adapters: Vec<Box<dyn Adapter<'static, String, Vec<String>>>> = vec![
            Box::new(EntriesOnly::new()),
            Box::new(PagedResults::new(self.page as i32)),
        ];
        let mut ldap = self.ldap.clone();
        ldap.with_timeout(self.settings.timeout);
        if self.show_deleted {
            ldap.with_controls(RawControl {
                ctype: SHOW_DELETED.into(),
                crit: true,
                val: None,
            });
        }
        let stream = ldap
            .streaming_search_with(
                adapters,
                &self.base,
                self.scope,
                &self.filter,
                self.attributes.clone(),
            )
            .await
            .map_err(|e| self.op_error(e))?;
        self.stream = Some(stream);
        Ok(())
    }

    /// Up to one page of entries; `None` once every base is done.
    async fn next_page(&mut self) -> Result<Option<Vec<LdapEntry>>, LdapError> {
        let mut page = Vec::new();
        let mut bytes = 0;
        loop {
            if self.stream.is_none() {
                match self.pending.pop_front() {
                    Some(base) => {
                        self.base = base;
                        self.start().await?;
                    }
                    None => return Ok((!page.is_empty()).then_some(page)),
                }
            }
            let stream = self.stream.as_mut().expect("started above");
            match stream.next().await {
                Ok(Some(re)) => {
                    if let Some(entry) = raw_entry(re) {
                        if !self.tombstones_in_scope
                            || last_parent_allowed(&entry, &self.settings.bases)
                        {
                            bytes += size(&entry);
                            page.push(entry);
                        }
                    }
                    if page.len() >= self.page as usize || bytes >= PAGE_BYTES {
                        return Ok(Some(page));
                    }
                }
                Ok(None) => {
                    let r = stream.finish().await;
                    self.stream = None;
                    self.result(r.rc, &r.text)?;
                }
                Err(e) => {
                    self.stream = None;
                    return Err(self.op_error(e));
                }
            }
        }
    }

    /// A search's final result code: referrals (AD's other partitions) are not errors.
    fn result(&self, rc: u32, text: &str) -> Result<(), LdapError> {
        let base = &self.base;
        match rc {
            0 | 10 => Ok(()),
            32 => Err(LdapError::NoSuchBase(format!(
                "base DN {base} does not exist on the server{}: check base_dn",
                detail(text)
            ))),
            3 => Err(LdapError::TimeLimit(format!(
                "the server's time limit ended the search under {base}{}",
                detail(text)
            ))),
            50 => Err(LdapError::Denied(format!(
                "the bind DN may not search under {base} (insufficient access){}",
                detail(text)
            ))),
            rc => Err(LdapError::Other(format!(
                "search under {base} failed with result code {rc}{}",
                detail(text)
            ))),
        }
    }

    fn op_error(&self, e: ldap3::LdapError) -> LdapError {
        match e {
            ldap3::LdapError::Timeout { .. } => LdapError::TimeLimit(format!(
                "the server did not answer within timeout = {:?}",
                self.settings.timeout
            )),
            ldap3::LdapError::LdapResult { result } => match self.result(result.rc, &result.text) {
                Err(e) => e,
                Ok(()) => LdapError::Other(format!("search under {}: {result}", self.base)),
            },
            ldap3::LdapError::FilterParsing => {
                LdapError::Other(format!("invalid LDAP filter {:?}", self.filter))
            }
            other => {
                LdapError::Unreachable(format!("the connection to the LDAP server broke: {other}"))
            }
        }
    }
}

/// A search result entry as DN and raw values; `None` for what is not an entry.
fn raw_entry(re: ResultEntry) -> Option<LdapEntry> {
    if re.is_ref() || re.is_intermediate() {
        return None;
    }
    let mut tags = re.0.match_id(4)?.expect_constructed()?.into_iter();
    let dn = String::from_utf8(tags.next()?.expect_primitive()?).ok()?;
    let mut attributes = Vec::new();
    for a in tags.next()?.expect_constructed()? {
        let mut parts = a.expect_constructed()?.into_iter();
        let name = String::from_utf8(parts.next()?.expect_primitive()?).ok()?;
        let values = parts
            .next()?
            .expect_constructed()?
            .into_iter()
            .filter_map(|v| v.expect_primitive())
            .collect();
        attributes.push(LdapAttribute { name, values });
    }
    Some(LdapEntry { dn, attributes })
}

/// About what an entry takes in memory: its bytes, and a word or two per value.
fn size(e: &LdapEntry) -> usize {
    let values = |a: &LdapAttribute| a.values.iter().map(|v| v.len() + 16).sum::<usize>();
    e.dn.len()
        + e.attributes
            .iter()
            .map(|a| a.name.len() + values(a))
            .sum::<usize>()
}

/// Whether a tombstone's `lastKnownParent` is at or below one of the bases.
fn last_parent_allowed(entry: &LdapEntry, bases: &BaseDns) -> bool {
    entry
        .attributes
        .iter()
        .filter(|a| a.name.eq_ignore_ascii_case("lastKnownParent"))
        .flat_map(|a| &a.values)
        .any(|v| std::str::from_utf8(v).is_ok_and(|dn| bases.allows(dn)))
}

fn scope(s: Scope) -> ldap3::Scope {
    match s {
        Scope::Base => ldap3::Scope::Base,
        Scope::OneLevel => ldap3::Scope::OneLevel,
        Scope::Subtree => ldap3::Scope::Subtree,
    }
}

impl Host for LdapView<'_> {
    async fn connect(&mut self) -> Result<Resource<Connection>, LdapError> {
        let settings = self.ctx.settings()?;
        if self.ctx.connections >= MAX_CONNECTIONS {
            return Err(LdapError::Denied(format!(
                "this plugin already holds {MAX_CONNECTIONS} LDAP connections, the per-plugin \
                 limit"
            )));
        }
        // On the I/O thread, where ldap3 spawns the connection's driver.
        let s = settings.clone();
        let ldap = super::io::run(async move { s.connect().await })
            .await
            .map_err(|e| LdapError::Other(format!("connecting: {e}")))??;
        let handle = self
            .table
            .push(Connection { ldap, settings })
            .map_err(|e| LdapError::Other(e.to_string()))?;
        self.ctx.connections += 1;
        Ok(handle)
    }
}

impl HostConnection for LdapView<'_> {
    async fn search(
        &mut self,
        c: Resource<Connection>,
        r: SearchRequest,
    ) -> Result<Resource<Search>, LdapError> {
        if self.ctx.searches >= MAX_SEARCHES {
            return Err(LdapError::Denied(format!(
                "this plugin already holds {MAX_SEARCHES} open LDAP searches, the per-plugin \
                 limit; drop finished searches"
            )));
        }
        let conn = self
            .table
            .get(&c)
            .map_err(|e| LdapError::Other(e.to_string()))?;
        let mut attributes = r.attributes;
        let (bases, tombstones_in_scope) = match r.base {
            Some(base) if conn.settings.bases.allows(&base) => (vec![base], false),
            Some(base) => {
                return Err(LdapError::Denied(format!(
                    "{base} is not at or below a base DN of this source ({})",
                    conn.settings.bases.list().join("; ")
                )))
            }
            // AD moves deleted objects out of their OU into the domain's Deleted Objects
            // container: search there, and hand over only the tombstones that were under a
            // configured base.
            None if r.show_deleted => {
                if !attributes
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case("lastKnownParent"))
                {
                    attributes.push("lastKnownParent".into());
                }
                (conn.settings.bases.deleted_containers(), true)
            }
            None => (conn.settings.bases.list(), false),
        };
        let mut pending: VecDeque<String> = bases.into();
        let mut pager = Pager {
            ldap: conn.ldap.clone(),
            settings: conn.settings.clone(),
            stream: None,
            base: pending.pop_front().unwrap_or_default(),
            pending,
            scope: scope(r.scope),
            filter: r.filter,
            attributes,
            page: if r.page_size == 0 {
                DEFAULT_PAGE
            } else {
                r.page_size
            },
            show_deleted: r.show_deleted,
            tombstones_in_scope,
        };
        // Started here so a wrong base or filter fails at the call that named it.
        pager.start().await?;
        let (tx, pages) = mpsc::channel(READ_AHEAD);
        super::io::spawn(pager.run(tx));
        let handle = self
            .table
            .push(Search { pages, ended: None })
            .map_err(|e| LdapError::Other(e.to_string()))?;
        self.ctx.searches += 1;
        Ok(handle)
    }

    async fn base_dns(&mut self, c: Resource<Connection>) -> Vec<String> {
        self.table
            .get(&c)
            .map(|c| c.settings.bases.list())
            .unwrap_or_default()
    }

    async fn root_dse(
        &mut self,
        c: Resource<Connection>,
        attributes: Vec<String>,
    ) -> Result<LdapEntry, LdapError> {
        let conn = self
            .table
            .get_mut(&c)
            .map_err(|e| LdapError::Other(e.to_string()))?;
        let timeout = conn.settings.timeout;
        let mut ldap = conn.ldap.clone();
        ldap.with_timeout(timeout);
        let ldap3::SearchResult(entries, result) = ldap
            .search("", ldap3::Scope::Base, "(objectClass=*)", attributes)
            .await
            .map_err(|e| LdapError::Unreachable(format!("reading the root DSE: {e}")))?;
        if result.rc != 0 {
            return Err(LdapError::Other(format!(
                "reading the root DSE failed with result code {}{}",
                result.rc,
                detail(&result.text)
            )));
        }
        entries
            .into_iter()
            .find_map(raw_entry)
            .ok_or_else(|| LdapError::Other("the server returned no root DSE".into()))
    }

    async fn sync(
        &mut self,
        c: Resource<Connection>,
        r: SearchRequest,
        cookie: Option<Vec<u8>>,
    ) -> Result<Resource<Sync>, LdapError> {
        self.start_sync(c, r, cookie).await
    }

    async fn drop(&mut self, c: Resource<Connection>) -> wasmtime::Result<()> {
        let mut conn = self.table.delete(c)?;
        self.ctx.connections -= 1;
        // Best effort: the server forgets the session either way.
        conn.ldap.unbind().await.ok();
        Ok(())
    }
}

impl HostSearch for LdapView<'_> {
    async fn next_page(
        &mut self,
        s: Resource<Search>,
    ) -> Result<Option<Vec<LdapEntry>>, LdapError> {
        let search = self
            .table
            .get_mut(&s)
            .map_err(|e| LdapError::Other(e.to_string()))?;
        search.next_page().await
    }

    async fn next_page_packed(
        &mut self,
        s: Resource<Search>,
    ) -> Result<Option<Vec<u8>>, LdapError> {
        let page = HostSearch::next_page(self, s).await?;
        Ok(page.map(|entries| packed::pack_page(&entries)))
    }

    async fn drop(&mut self, s: Resource<Search>) -> wasmtime::Result<()> {
        // The reader sees the search dropped and abandons it on the server.
        self.table.delete(s)?;
        self.ctx.searches -= 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_and_anything_below_it_are_allowed() {
        let p = BaseDns::new(["OU=People,DC=example,DC=test"]);
        assert!(p.allows("ou=people,dc=example,dc=test"));
        assert!(p.allows("CN=Alice Smith, OU=People, DC=Example, DC=Test"));
        assert!(p.allows("cn=x,ou=sub,ou=people,dc=example,dc=test"));
    }

    #[test]
    fn siblings_parents_and_lookalikes_are_denied() {
        let p = BaseDns::new(["ou=people,dc=example,dc=test"]);
        assert!(!p.allows("dc=example,dc=test"));
        assert!(!p.allows("ou=groups,dc=example,dc=test"));
        assert!(!p.allows("ou=people,dc=example,dc=test2"));
        // A comma escaped inside a value is part of that value, not a separator.
        assert!(!p.allows("cn=evil\\,ou=people\\,dc=example\\,dc=test,dc=other"));
        assert!(!p.allows(""));
    }

    #[test]
    fn several_bases_and_none() {
        let p = BaseDns::new(["ou=a,dc=t", "ou=b,dc=t"]);
        assert!(p.allows("cn=1,ou=a,dc=t"));
        assert!(p.allows("cn=2,ou=b,dc=t"));
        assert!(!p.allows("cn=3,ou=c,dc=t"));
        assert!(!BaseDns::default().allows("dc=t"));
    }

    #[test]
    fn deleted_objects_are_read_from_the_domains_container_and_kept_in_scope() {
        let p = BaseDns::new([
            "OU=People,DC=example,DC=test",
            "ou=staff,dc=Example,dc=Test",
            "OU=x,DC=other,DC=test",
            "o=no-domain",
        ]);
        assert_eq!(
            p.deleted_containers(),
            [
                "CN=Deleted Objects,DC=example,DC=test",
                "CN=Deleted Objects,DC=other,DC=test"
            ]
        );
        let tomb = |parent: &str| LdapEntry {
            dn: "CN=Ann\0ADEL:1,CN=Deleted Objects,DC=example,DC=test".into(),
            attributes: vec![LdapAttribute {
                name: "lastKnownParent".into(),
                values: vec![parent.as_bytes().to_vec()],
            }],
        };
        assert!(last_parent_allowed(
            &tomb("OU=People,DC=example,DC=test"),
            &p
        ));
        assert!(last_parent_allowed(
            &tomb("OU=Sub,OU=People,DC=example,DC=test"),
            &p
        ));
        assert!(!last_parent_allowed(
            &tomb("OU=Other,DC=example,DC=test"),
            &p
        ));
        let none = LdapEntry {
            dn: "x".into(),
            attributes: Vec::new(),
        };
        assert!(!last_parent_allowed(&none, &p));
    }
}
