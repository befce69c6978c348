//! LDAP through the connection the host opened and bound with the source's `url`, `bind_dn`
//! and `password` (which the plugin never sees). Needs the `ldap` capability.

use crate::bindings::roster::plugin::ldap::{self as wit, LdapError};
pub use crate::bindings::roster::plugin::ldap::{
    LdapAttribute, LdapEntry as Entry, Scope, SyncChange, SyncEnd,
};
use crate::Error;
use std::rc::Rc;

/// A bound connection. Searches keep it open while they are read.
pub struct Connection(Rc<wit::Connection>);

/// Connects and binds with the source's configured connection.
pub fn connect() -> Result<Connection, Error> {
    wit::connect()
        .map(|c| Connection(Rc::new(c)))
        .map_err(error)
}

/// A search being built: subtree under every configured base DN by default.
#[derive(Debug, Clone)]
pub struct Search(wit::SearchRequest);

impl Search {
    pub fn new(filter: &str) -> Search {
        Search(wit::SearchRequest {
            base: None,
            scope: Scope::Subtree,
            filter: filter.into(),
            attributes: Vec::new(),
            page_size: 0,
            show_deleted: false,
        })
    }

    /// A base DN (one of the configured ones, or below one).
    pub fn base(mut self, base: &str) -> Search {
        self.0.base = Some(base.into());
        self
    }

    pub fn scope(mut self, scope: Scope) -> Search {
        self.0.scope = scope;
        self
    }

    pub fn attributes<S: AsRef<str>>(mut self, names: &[S]) -> Search {
        self.0.attributes = names.iter().map(|n| n.as_ref().to_string()).collect();
        self
    }

    /// AD's Show Deleted control: with no base, searches the Deleted Objects container of
    /// each configured base's domain (for delta runs that must see deletions).
    pub fn show_deleted(mut self, show: bool) -> Search {
        self.0.show_deleted = show;
        self
    }

    /// Entries per page (0: the host's default).
    pub fn page_size(mut self, n: u32) -> Search {
        self.0.page_size = n;
        self
    }
}

impl Connection {
    /// The configured base DNs.
    pub fn base_dns(&self) -> Vec<String> {
        self.0.base_dns()
    }

    /// Attributes of the root DSE (`highestCommittedUSN`, `dsServiceName`, ...), so a delta
    /// cursor can be tied to the server it came from.
    pub fn root_dse<S: AsRef<str>>(&self, attributes: &[S]) -> Result<Entry, Error> {
        let names: Vec<String> = attributes.iter().map(|a| a.as_ref().to_string()).collect();
        self.0.root_dse(&names).map_err(error)
    }

    /// RFC 4533 content synchronization (refreshOnly; slapd's `syncprov`): what changed and
    /// what was deleted since `cookie` (none: every entry, and a first cookie). A server
    /// without it fails with a config error.
    pub fn sync(&self, search: &Search, cookie: Option<&[u8]>) -> Result<Sync, Error> {
        let sync = self
            .0
            .sync(&search.0, cookie.map(<[u8]>::to_vec).as_deref())
            .map_err(error)?;
        Ok(Sync {
            sync: Some(sync),
            end: None,
            _connection: self.0.clone(),
        })
    }

    /// Runs a paged search; entries are fetched a page at a time as the iterator is pulled.
    pub fn search(&self, search: &Search) -> Result<Entries, Error> {
        let pages = self.0.search(&search.0).map_err(error)?;
        Ok(Entries {
            pages: Some(pages),
            page: Vec::new().into_iter(),
            _connection: self.0.clone(),
        })
    }
}

/// A running RFC 4533 content synchronization (see [`Connection::sync`]).
pub struct Sync {
    sync: Option<wit::Sync>,
    end: Option<SyncEnd>,
    _connection: Rc<wit::Connection>,
}

impl Sync {
    /// The next page of changes; None when the server is done (then [`Sync::end`] holds).
    pub fn next_page(&mut self) -> Result<Option<Vec<SyncChange>>, Error> {
        let Some(sync) = &self.sync else {
            return Ok(None);
        };
        match sync.next_page() {
            Ok(Some(page)) => Ok(Some(page)),
            Ok(None) => {
                self.end = sync.end();
                self.sync = None;
                Ok(None)
            }
            Err(e) => {
                self.sync = None;
                Err(error(e))
            }
        }
    }

    /// The new cookie and whether deletions were complete, once the last page was read.
    pub fn end(&self) -> Option<&SyncEnd> {
        self.end.as_ref()
    }
}

/// The entries of a paged search.
pub struct Entries {
    pages: Option<wit::Search>,
    page: std::vec::IntoIter<Entry>,
    /// Dropping the last handle unbinds: the search needs the connection.
    _connection: Rc<wit::Connection>,
}

impl Entries {
    /// The rest of the current page, else the next page; None when the search is done. For
    /// a connector that works a page at a time (one batch per page).
    pub fn next_page(&mut self) -> Result<Option<Vec<Entry>>, Error> {
        let rest: Vec<Entry> = self.page.by_ref().collect();
        if !rest.is_empty() {
            return Ok(Some(rest));
        }
        let Some(pages) = &self.pages else {
            return Ok(None);
        };
        match next_packed(pages) {
            Ok(Some(page)) => Ok(Some(page)),
            Ok(None) => {
                self.pages = None;
                Ok(None)
            }
            Err(e) => {
                self.pages = None;
                Err(error(e))
            }
        }
    }
}

impl Iterator for Entries {
    type Item = Result<Entry, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.page.next() {
                return Some(Ok(e));
            }
            match next_packed(self.pages.as_ref()?) {
                Ok(Some(page)) => self.page = page.into_iter(),
                Ok(None) => {
                    self.pages = None;
                    return None;
                }
                Err(e) => {
                    self.pages = None;
                    return Some(Err(error(e)));
                }
            }
        }
    }
}

/// The next page through `next-page-packed`: one buffer crosses into the guest instead of a
/// list per value, which is what a no-change resync of a large directory spends its time on.
fn next_packed(pages: &wit::Search) -> Result<Option<Vec<Entry>>, LdapError> {
    match pages.next_page_packed()? {
        Some(buf) => unpack_page(&buf).map(Some).map_err(LdapError::Other),
        None => Ok(None),
    }
}

/// Decodes a page in the contract's packed layout (see `next-page-packed` in `wit/host.wit`):
/// u32 little-endian counts and lengths, `entry-count, { dn, attribute-count, { name,
/// value-count, { value } } }`. A truncated or malformed buffer is an error, never a panic.
pub fn unpack_page(buf: &[u8]) -> Result<Vec<Entry>, String> {
    let mut r = Reader(buf);
    let n = r.count()?;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let dn = r.text()?;
        let attrs = r.count()?;
        let mut attributes = Vec::with_capacity(attrs);
        for _ in 0..attrs {
            let name = r.text()?;
            let count = r.count()?;
            let mut values = Vec::with_capacity(count);
            for _ in 0..count {
                values.push(r.bytes()?.to_vec());
            }
            attributes.push(LdapAttribute { name, values });
        }
        entries.push(Entry { dn, attributes });
    }
    if !r.0.is_empty() {
        return Err(format!(
            "packed LDAP page: {} bytes after the last entry",
            r.0.len()
        ));
    }
    Ok(entries)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u32(&mut self) -> Result<usize, String> {
        let (head, rest) = self
            .0
            .split_first_chunk::<4>()
            .ok_or("packed LDAP page: truncated")?;
        self.0 = rest;
        Ok(u32::from_le_bytes(*head) as usize)
    }

    /// A count, bounded by the bytes left (each item takes at least 4), so a hostile or
    /// broken buffer cannot make us reserve memory it does not back.
    fn count(&mut self) -> Result<usize, String> {
        let n = self.u32()?;
        if n > self.0.len() / 4 {
            return Err("packed LDAP page: a count exceeds the buffer".into());
        }
        Ok(n)
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.u32()?;
        if n > self.0.len() {
            return Err("packed LDAP page: a value exceeds the buffer".into());
        }
        let (v, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(v)
    }

    fn text(&mut self) -> Result<String, String> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec())
            .map_err(|_| "packed LDAP page: a DN or name is not UTF-8".into())
    }
}

/// Text values of an attribute (case-insensitive name); binary values are read lossily.
pub fn values(entry: &Entry, name: &str) -> Vec<String> {
    (entry.attributes.iter())
        .filter(|a| a.name.eq_ignore_ascii_case(name))
        .flat_map(|a| {
            a.values
                .iter()
                .map(|v| String::from_utf8_lossy(v).into_owned())
        })
        .collect()
}

/// The first text value of an attribute.
pub fn value(entry: &Entry, name: &str) -> Option<String> {
    values(entry, name).into_iter().next()
}

/// The host's message already says what to fix; the case says whether to retry. A TLS
/// failure (an unknown CA, a wrong name) is the admin's to fix.
fn error(e: LdapError) -> Error {
    match e {
        LdapError::InvalidCredentials(m) => Error::authentication(m),
        LdapError::Unreachable(m) | LdapError::TimeLimit(m) => Error::unavailable(m),
        LdapError::NoSuchBase(m) | LdapError::Denied(m) | LdapError::Tls(m) => Error::config(m),
        LdapError::Other(m) => Error::unavailable(format!("LDAP error: {m}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An attribute's name and values; an entry's DN and attributes.
    type Attr<'a> = (&'a str, &'a [&'a [u8]]);
    type Ent<'a> = (&'a str, &'a [Attr<'a>]);

    /// The layout written out by hand, as the contract documents it.
    fn packed(entries: &[Ent]) -> Vec<u8> {
        let mut out = Vec::new();
        let n = |out: &mut Vec<u8>, n: usize| out.extend((n as u32).to_le_bytes());
        n(&mut out, entries.len());
        for (dn, attrs) in entries {
            n(&mut out, dn.len());
            out.extend(dn.as_bytes());
            n(&mut out, attrs.len());
            for (name, values) in *attrs {
                n(&mut out, name.len());
                out.extend(name.as_bytes());
                n(&mut out, values.len());
                for v in *values {
                    n(&mut out, v.len());
                    out.extend(*v);
                }
            }
        }
        out
    }

    #[test]
    fn a_packed_page_decodes_to_its_entries() {
        let photo: &[u8] = &[0xff, 0xd8, 0x00, 0x80];
        let buf = packed(&[
            (
                "uid=ann,dc=example",
                &[("uid", &[b"ann"]), ("jpegPhoto", &[photo, b""])],
            ),
            ("cn=empty", &[]),
        ]);
        let page = unpack_page(&buf).unwrap();
        assert_eq!(page.len(), 2);
        assert_eq!(page[0].dn, "uid=ann,dc=example");
        assert_eq!(page[0].attributes[1].name, "jpegPhoto");
        assert_eq!(page[0].attributes[1].values, vec![photo.to_vec(), vec![]]);
        assert!(page[1].attributes.is_empty());
        assert!(unpack_page(&packed(&[])).unwrap().is_empty());
    }

    #[test]
    fn a_broken_packed_page_is_an_error() {
        let buf = packed(&[("uid=ann", &[("uid", &[b"ann"])])]);
        for cut in 0..buf.len() {
            assert!(unpack_page(&buf[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = buf.clone();
        trailing.push(0);
        assert!(unpack_page(&trailing).is_err());
        // A count no buffer backs is refused before anything is reserved.
        assert!(unpack_page(&u32::MAX.to_le_bytes()).is_err());
        let not_utf8 = packed(&[("\u{0}", &[])]);
        let mut bad = not_utf8.clone();
        bad[8] = 0xff;
        assert!(unpack_page(&bad).unwrap_err().contains("UTF-8"));
    }
}
