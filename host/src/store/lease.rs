//! Run leases: one run per source at a time, whoever starts it (`roster sync`, `roster
//! serve`, another host), and no lock that outlives its process.
//!
//! A lease is a row in a `leases` table that its holder renews from a background thread and
//! that expires [`TTL`] after the last renewal; an expired lease is taken over. A holder on
//! this machine whose process is gone is known dead at once, so a kill -9 does not block
//! the next run for the TTL. A run records its lease, so a run whose lease is gone is known
//! to have been interrupted.
//!
//! SQLite keeps the table in a small database of its own next to the main one
//! (`roster.db-lease`): a run holds the main database's write lock for its whole duration,
//! and renewals must not wait for it.

use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// How long a lease lives without renewal.
pub const TTL: Duration = Duration::from_secs(30);
/// How often the holder renews it.
const RENEW_EVERY: Duration = Duration::from_secs(10);

const NOW_MS: &str = "CAST(unixepoch('subsec') * 1000 AS INTEGER)";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS leases(
    source TEXT PRIMARY KEY,
    token TEXT NOT NULL UNIQUE,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    process TEXT NOT NULL,
    -- Where the pid means something (boot id and pid namespace) and the process's start
    -- time there: a holder on this node whose process is gone is dead before it expires.
    node TEXT NOT NULL,
    start INTEGER NOT NULL,
    since TEXT NOT NULL,
    expires INTEGER NOT NULL
);
-- The last scheduled tick a host claimed for each source (unix milliseconds).
CREATE TABLE IF NOT EXISTS ticks(source TEXT PRIMARY KEY, at INTEGER NOT NULL);";

/// Who holds a lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    /// What runs there, such as `roster sync` or `roster serve`.
    pub process: String,
    #[serde(skip)]
    node: String,
    #[serde(skip)]
    start: u64,
}

impl Holder {
    /// This process, described as `process`.
    pub fn this_process(process: &str) -> Holder {
        let pid = std::process::id();
        Holder {
            host: hostname(),
            pid,
            process: process.to_string(),
            node: node().to_string(),
            start: process_start(pid).unwrap_or(0),
        }
    }

    /// A holder on another host, as a PostgreSQL lease names it (its liveness is the
    /// server's to know).
    pub(super) fn elsewhere(host: String, pid: u32, process: String) -> Holder {
        Holder {
            host,
            pid,
            process,
            node: String::new(),
            start: 0,
        }
    }

    /// Known dead: on this node, and its process is gone (or the pid is another process's).
    fn is_dead(&self) -> bool {
        self.node == node() && process_start(self.pid) != Some(self.start)
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (pid {} on {})", self.process, self.pid, self.host)
    }
}

/// A source's lease as others see it.
#[derive(Debug, Clone, Serialize)]
pub struct LeaseInfo {
    pub source: String,
    pub holder: Holder,
    /// When it was taken (UTC, like run times).
    pub since: String,
}

/// The source is being run by someone else.
#[derive(Debug, Clone, thiserror::Error)]
#[error("source '{}' is already being synced by {} since {}", .0.source, .0.holder, .0.since)]
pub struct Busy(pub Box<LeaseInfo>);

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(transparent)]
    Busy(#[from] Busy),
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

impl From<rusqlite::Error> for LeaseError {
    fn from(e: rusqlite::Error) -> Self {
        LeaseError::Store(e.into())
    }
}

/// A held lease, renewed in the background until dropped; dropping it releases it.
pub struct Lease {
    source: String,
    token: String,
    lost: Arc<AtomicBool>,
    stop: Option<mpsc::Sender<()>>,
    renewer: Option<std::thread::JoinHandle<()>>,
    /// A PostgreSQL lease (pg.rs): the session holding its advisory lock.
    session: Option<std::sync::Mutex<postgres::Client>>,
}

impl Lease {
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The token runs record to name their lease.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The lease expired (this process stalled for longer than the TTL), or the session
    /// holding a PostgreSQL lease is gone, and others may have taken it over: whatever the
    /// holder was doing must not commit.
    pub fn lost(&self) -> bool {
        if let Some(session) = &self.session {
            let mut client = session.lock().unwrap_or_else(|e| e.into_inner());
            return client.is_valid(Duration::from_secs(5)).is_err();
        }
        self.lost.load(Ordering::SeqCst)
    }

    /// A lease held by a PostgreSQL session (its advisory lock): released when the session
    /// ends, by drop or by the death of this process.
    pub(super) fn session(source: &str, token: String, client: postgres::Client) -> Lease {
        Lease {
            source: source.to_string(),
            token,
            lost: Arc::new(AtomicBool::new(false)),
            stop: None,
            renewer: None,
            session: Some(std::sync::Mutex::new(client)),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // The renewer deletes the row as it stops.
        drop(self.stop.take());
        if let Some(t) = self.renewer.take() {
            let _ = t.join();
        }
    }
}

/// The lease table of one database.
pub(super) struct Leases {
    path: PathBuf,
    renew_every: Duration,
    conn: OnceLock<Connection>,
    /// A memory store's lease table lives here.
    _dir: Option<tempfile::TempDir>,
}

impl Leases {
    /// The lease table of the SQLite database at `db`.
    pub(super) fn beside(db: &Path) -> Leases {
        let mut name = db.as_os_str().to_owned();
        name.push("-lease");
        Leases {
            path: name.into(),
            renew_every: RENEW_EVERY,
            conn: OnceLock::new(),
            _dir: None,
        }
    }

    /// A private lease table, for a memory store.
    pub(super) fn private() -> Result<Leases> {
        let dir = tempfile::tempdir()?;
        let mut l = Leases::beside(&dir.path().join("memory"));
        l._dir = Some(dir);
        Ok(l)
    }

    fn conn(&self) -> Result<&Connection> {
        if let Some(c) = self.conn.get() {
            return Ok(c);
        }
        let c = open(&self.path)?;
        Ok(self.conn.get_or_init(|| c))
    }

    /// Takes the source's lease for `holder`, or says who holds it. An expired lease, or one
    /// whose process is known dead, is taken over.
    pub(super) fn acquire(&self, source: &str, holder: &Holder) -> Result<Lease, LeaseError> {
        let conn = self.conn()?;
        let tx =
            rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
        let current = tx
            .query_row(
                &format!(
                    "SELECT host, pid, process, node, start, since, expires > {NOW_MS}
                     FROM leases WHERE source = ?1"
                ),
                [source],
                |r| {
                    let holder = Holder {
                        host: r.get(0)?,
                        pid: r.get(1)?,
                        process: r.get(2)?,
                        node: r.get(3)?,
                        start: r.get::<_, i64>(4)? as u64,
                    };
                    Ok((holder, r.get::<_, String>(5)?, r.get::<_, bool>(6)?))
                },
            )
            .optional()?;
        if let Some((current, since, live)) = current {
            if live && !current.is_dead() {
                return Err(Busy(Box::new(LeaseInfo {
                    source: source.to_string(),
                    holder: current,
                    since,
                }))
                .into());
            }
            tracing::info!("source {source}: taking over the lease of {current} (since {since}), which is no longer alive");
        }
        let token = new_token()?;
        tx.execute(
            &format!(
                "INSERT OR REPLACE INTO leases(source, token, host, pid, process, node, start, since, expires)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, strftime('%Y-%m-%dT%H:%M:%SZ','now'), {NOW_MS} + ?8)"
            ),
            params![
                source,
                token,
                holder.host,
                holder.pid,
                holder.process,
                holder.node,
                holder.start as i64,
                TTL.as_millis() as i64
            ],
        )?;
        tx.commit()?;
        let lost = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = mpsc::channel();
        let renewer = {
            let (path, source, token, lost) = (
                self.path.clone(),
                source.to_string(),
                token.clone(),
                lost.clone(),
            );
            let every = self.renew_every;
            std::thread::Builder::new()
                .name("roster-lease".into())
                .spawn(move || renew(&path, &source, &token, &lost, every, stopped))
                .context("starting the lease renewer")?
        };
        Ok(Lease {
            source: source.to_string(),
            token,
            lost,
            stop: Some(stop),
            renewer: Some(renewer),
            session: None,
        })
    }

    /// The source's lease, if someone holds it.
    /// Claims the scheduled tick `at` of `source` unless a tick at or after `not_before`
    /// was claimed (all unix milliseconds); one statement, so one claimer wins.
    pub(super) fn claim_tick(&self, source: &str, at: i64, not_before: i64) -> Result<bool> {
        let n = self.conn()?.execute(
            "INSERT INTO ticks(source, at) VALUES (?1, ?2)
             ON CONFLICT(source) DO UPDATE SET at = excluded.at WHERE ticks.at < ?3",
            params![source, at, not_before],
        )?;
        Ok(n == 1)
    }

    pub(super) fn holder(&self, source: &str) -> Result<Option<LeaseInfo>> {
        if !self.exists() {
            return Ok(None);
        }
        let row = self
            .conn()?
            .query_row(
                &format!(
                    "SELECT host, pid, process, node, start, since FROM leases
                     WHERE source = ?1 AND expires > {NOW_MS}"
                ),
                [source],
                |r| {
                    let holder = Holder {
                        host: r.get(0)?,
                        pid: r.get(1)?,
                        process: r.get(2)?,
                        node: r.get(3)?,
                        start: r.get::<_, i64>(4)? as u64,
                    };
                    Ok(LeaseInfo {
                        source: source.to_string(),
                        holder,
                        since: r.get(5)?,
                    })
                },
            )
            .optional()?;
        Ok(row.filter(|l| !l.holder.is_dead()))
    }

    /// Whether the lease with this token is held by a live holder.
    pub(super) fn alive(&self, token: &str) -> Result<bool> {
        if !self.exists() {
            return Ok(false);
        }
        let row = self
            .conn()?
            .query_row(
                &format!(
                    "SELECT node, pid, start FROM leases WHERE token = ?1 AND expires > {NOW_MS}"
                ),
                [token],
                |r| {
                    Ok(Holder {
                        host: String::new(),
                        process: String::new(),
                        node: r.get(0)?,
                        pid: r.get(1)?,
                        start: r.get::<_, i64>(2)? as u64,
                    })
                },
            )
            .optional()?;
        Ok(row.is_some_and(|h| !h.is_dead()))
    }

    /// Readers do not create the lease database; no database, no lease.
    fn exists(&self) -> bool {
        self.conn.get().is_some() || self.path.exists()
    }
}

fn open(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)
        .with_context(|| format!("opening the lease database {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

/// The renewer: extends the lease every RENEW_EVERY until told to stop, then releases it.
fn renew(
    path: &Path,
    source: &str,
    token: &str,
    lost: &AtomicBool,
    every: Duration,
    stop: mpsc::Receiver<()>,
) {
    let conn = match open(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("source {source}: cannot renew the run's lease: {e:#}");
            return;
        }
    };
    // Until told to stop (or the lease is dropped).
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
        let renewed = conn.execute(
            &format!(
                "UPDATE leases SET expires = {NOW_MS} + ?3
                 WHERE source = ?1 AND token = ?2 AND expires > {NOW_MS}"
            ),
            params![source, token, TTL.as_millis() as i64],
        );
        match renewed {
            // Expired: others may have judged the run dead already.
            Ok(0) => {
                tracing::error!("source {source}: the run's lease expired");
                lost.store(true, Ordering::SeqCst);
                return;
            }
            Ok(_) => {}
            // A busy lease database: the next tick tries again, well within the TTL.
            Err(e) => tracing::warn!("source {source}: renewing the run's lease: {e}"),
        }
    }
    if let Err(e) = conn.execute(
        "DELETE FROM leases WHERE source = ?1 AND token = ?2",
        params![source, token],
    ) {
        tracing::warn!("source {source}: releasing the run's lease (it expires anyway): {e}");
    }
}

fn new_token() -> Result<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("random: {e}"))?;
    Ok(hex::encode(b))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// This machine's boot and pid namespace: where a pid names one process. Empty when
/// unknown, which matches no holder, so only expiry ends its leases.
fn node() -> &'static str {
    static NODE: OnceLock<String> = OnceLock::new();
    NODE.get_or_init(|| {
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id");
        let ns = std::fs::read_link("/proc/self/ns/pid");
        match (boot, ns) {
            (Ok(b), Ok(ns)) => format!("{}/{}", b.trim(), ns.display()),
            _ => String::new(),
        }
    })
}

/// A process's start time (clock ticks since boot), from `/proc/PID/stat`.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // Field 22 overall; `rest` starts at field 3.
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lease table whose renewers tick every 20 ms, so tests wait for no real TTL.
    fn leases() -> Leases {
        let mut l = Leases::private().unwrap();
        l.renew_every = Duration::from_millis(20);
        l
    }

    /// Polls until `done`, for at most ten seconds.
    fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "{what}: timed out");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn elsewhere(process: &str) -> Holder {
        Holder {
            host: "other-host".into(),
            pid: 4242,
            process: process.into(),
            node: "another node".into(),
            start: 1,
        }
    }

    fn busy(r: Result<Lease, LeaseError>) -> LeaseInfo {
        match r {
            Err(LeaseError::Busy(Busy(info))) => *info,
            Err(e) => panic!("expected busy, got {e:#}"),
            Ok(_) => panic!("expected busy, got the lease"),
        }
    }

    fn expires(l: &Leases, source: &str) -> i64 {
        let c = l.conn().unwrap();
        c.query_row(
            "SELECT expires FROM leases WHERE source = ?1",
            [source],
            |r| r.get(0),
        )
        .unwrap()
    }

    #[test]
    fn a_scheduled_tick_is_claimed_once_whoever_asks() {
        let l = leases();
        // A second host on the same lease file (another connection).
        let other = Leases {
            path: l.path.clone(),
            renew_every: RENEW_EVERY,
            conn: OnceLock::new(),
            _dir: None,
        };
        assert!(l.claim_tick("hr", 10_000, 9_500).unwrap());
        // The other host's tick 200 ms later, with the same 1 s period: already run.
        assert!(!other.claim_tick("hr", 10_200, 9_700).unwrap());
        assert!(
            !l.claim_tick("hr", 10_000, 9_500).unwrap(),
            "the same tick twice"
        );
        // Another source is its own.
        assert!(other.claim_tick("ad", 10_200, 9_700).unwrap());
        // The next period's tick, on either host.
        assert!(other.claim_tick("hr", 11_200, 10_700).unwrap());
        assert!(!l.claim_tick("hr", 11_000, 10_500).unwrap());
    }

    #[test]
    fn a_second_starter_learns_who_holds_the_lease_and_since_when() {
        let l = leases();
        let me = Holder::this_process("roster serve");
        let lease = l.acquire("ad", &me).ok().unwrap();
        assert_eq!(lease.source(), "ad");
        let info = busy(l.acquire("ad", &Holder::this_process("roster sync")));
        assert_eq!(info.holder, me);
        assert!(
            info.since.ends_with('Z') && info.since.len() == 20,
            "{}",
            info.since
        );
        let msg = Busy(Box::new(info)).to_string();
        let want = format!(
            "source 'ad' is already being synced by roster serve (pid {} on {})",
            std::process::id(),
            me.host
        );
        assert!(msg.starts_with(&want), "{msg}");
        // Other sources are not blocked.
        let _csv = l.acquire("csv", &me).ok().unwrap();
        assert!(l.alive(lease.token()).unwrap());
        assert_eq!(l.holder("ad").unwrap().unwrap().holder, me);
    }

    #[test]
    fn dropping_the_lease_releases_it() {
        let l = leases();
        let me = Holder::this_process("roster sync");
        let lease = l.acquire("ad", &me).ok().unwrap();
        let token = lease.token().to_string();
        drop(lease);
        assert!(!l.alive(&token).unwrap());
        assert!(l.holder("ad").unwrap().is_none());
        let again = l.acquire("ad", &me).ok().unwrap();
        assert_ne!(again.token(), token);
    }

    #[test]
    fn the_renewer_extends_the_lease() {
        let l = leases();
        let lease = l.acquire("ad", &elsewhere("roster serve")).ok().unwrap();
        // Pretend the TTL nearly ran out, then wait for the renewer to extend it again.
        l.conn()
            .unwrap()
            .execute("UPDATE leases SET expires = expires - 25000", ())
            .unwrap();
        let low = expires(&l, "ad");
        wait_for("renewal", || expires(&l, "ad") > low);
        assert!(!lease.lost());
    }

    #[test]
    fn an_expired_lease_is_taken_over_and_its_holder_learns_it_lost() {
        let l = leases();
        let old = l.acquire("ad", &elsewhere("roster serve")).ok().unwrap();
        // A holder elsewhere is judged by expiry alone.
        busy(l.acquire("ad", &Holder::this_process("roster sync")));
        l.conn()
            .unwrap()
            .execute("UPDATE leases SET expires = 0", ())
            .unwrap();
        assert!(!l.alive(old.token()).unwrap());
        assert!(l.holder("ad").unwrap().is_none());
        let new = l
            .acquire("ad", &Holder::this_process("roster sync"))
            .ok()
            .unwrap();
        assert!(l.alive(new.token()).unwrap());
        // The old holder's next renewal finds the lease gone; its drop leaves the new one be.
        wait_for("the old holder noticing", || old.lost());
        drop(old);
        assert!(l.alive(new.token()).unwrap());
    }

    #[test]
    fn a_holder_on_this_node_whose_process_is_gone_is_dead_at_once() {
        let l = leases();
        let mut gone = Holder::this_process("roster sync");
        // Our pid, but another start time: the pid was reused, the holder is gone.
        gone.start += 1;
        let old = l.acquire("ad", &gone).ok().unwrap();
        assert!(!l.alive(old.token()).unwrap());
        let new = l.acquire("ad", &Holder::this_process("roster sync"));
        assert!(new.is_ok());
        assert!(process_start(std::process::id()).is_some());
    }
}
