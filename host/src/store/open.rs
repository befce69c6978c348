//! Opening the database: `migrate` once at start, then connections. A writer connection
//! runs syncs and admin commands; a reader connection (the coming API, the CLI's listings)
//! runs no migration and never writes, and in WAL mode never waits for a run.

use super::db::{Conn, PgConn};
use super::{lease, pg, Leases, Store};
use anyhow::{bail, Context, Result};
use rusqlite::{Connection, OpenFlags};
use std::cell::RefCell;
use std::path::Path;

/// Versioned migrations; `PRAGMA user_version` holds how many have run.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE meta(key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE sources(
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    cursor TEXT
);
CREATE TABLE users(
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    full_name TEXT,
    email TEXT,
    personal_number TEXT UNIQUE,
    language TEXT,
    phone TEXT,
    notes TEXT,
    storage TEXT,
    active INTEGER NOT NULL DEFAULT 1,
    source_id INTEGER REFERENCES sources(id),
    -- The mapped record as last written (JSON) and its hash: an unchanged user costs no write.
    record TEXT NOT NULL,
    hash INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX users_email ON users(email COLLATE NOCASE);
CREATE INDEX users_source ON users(source_id, active);
-- Usernames and aliases share one namespace.
CREATE TABLE names(
    name TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    alias INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX names_user ON names(user_id);
CREATE TABLE cards(
    card TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX cards_user ON cards(user_id);
-- PINs: argon2 hashes, plus a keyed fingerprint to notice changes without the PIN.
CREATE TABLE pins(
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    fingerprint TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY(user_id, fingerprint)
) WITHOUT ROWID;
CREATE INDEX pins_fingerprint ON pins(fingerprint);
-- Groups: a tree by path (`A|B`). Groups from a connector's group objects carry its anchor.
CREATE TABLE groups(
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    parent_id INTEGER REFERENCES groups(id) ON DELETE CASCADE,
    source_id INTEGER REFERENCES sources(id),
    anchor TEXT,
    UNIQUE(source_id, anchor)
);
CREATE INDEX groups_parent ON groups(parent_id);
CREATE TABLE memberships(
    group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    source_id INTEGER REFERENCES sources(id),
    PRIMARY KEY(group_id, user_id)
) WITHOUT ROWID;
CREATE INDEX memberships_user ON memberships(user_id);
-- Per-source links: the source's immutable anchor → user.
CREATE TABLE links(
    source_id INTEGER NOT NULL REFERENCES sources(id),
    anchor TEXT NOT NULL,
    user_id INTEGER NOT NULL UNIQUE REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY(source_id, anchor)
) WITHOUT ROWID;
CREATE TABLE runs(
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    status TEXT NOT NULL,
    mode TEXT,
    pid INTEGER,
    started TEXT NOT NULL,
    finished TEXT,
    created INTEGER NOT NULL DEFAULT 0,
    updated INTEGER NOT NULL DEFAULT 0,
    unchanged INTEGER NOT NULL DEFAULT 0,
    deactivated INTEGER NOT NULL DEFAULT 0,
    reactivated INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    message TEXT,
    notices TEXT
);
CREATE TABLE run_events(
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    entry TEXT NOT NULL,
    action TEXT NOT NULL,
    reason TEXT,
    PRIMARY KEY(run_id, seq)
) WITHOUT ROWID;
CREATE TABLE plugins(
    name TEXT PRIMARY KEY,
    file TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    version TEXT NOT NULL,
    description TEXT NOT NULL,
    installed_at TEXT NOT NULL
);
"#,
    r#"
-- The raw hash (Mapper::raw_hash) of the object that last wrote the linked user, kept while
-- the user is active and as that write left it: a resync then knows the entry unchanged
-- without mapping it. Any other change to the user clears it.
ALTER TABLE links ADD COLUMN raw_hash INTEGER;
"#,
    r#"
-- The lease (lease.rs) a run was started under: while it lives, the run is running.
ALTER TABLE runs ADD COLUMN lease TEXT;
"#,
    r#"
-- API tokens of `roster serve`: only the SHA-256 of each token is kept. `source` binds a
-- token to one source (roles such as scim-push).
CREATE TABLE tokens(
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    source TEXT,
    hash BLOB NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
-- Runs the deletion guard stopped in service mode: their plan, kept for an admin's decision.
-- An undecided one holds its source's scheduled runs.
CREATE TABLE held_runs(
    run_id INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    plan TEXT NOT NULL,
    held_at TEXT NOT NULL,
    decision TEXT,
    decided_by TEXT,
    decided_at TEXT,
    rerun_id INTEGER
);
CREATE INDEX held_runs_open ON held_runs(source) WHERE decision IS NULL;
CREATE INDEX runs_source ON runs(source, id);
"#,
    super::outbox::MIGRATION,
    r#"
-- SCIM's userName is case-insensitive: `filter=userName eq "X"` is answered from this index.
CREATE INDEX users_username_nocase ON users(username COLLATE NOCASE);
"#,
    r#"
-- Per-field authority: several sources may link one user, its owner (users.source_id) and
-- sources that join it. A source links a user at most once.
CREATE TABLE links_v2(
    source_id INTEGER NOT NULL REFERENCES sources(id),
    anchor TEXT NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    raw_hash INTEGER,
    -- A joiner's record as it last sent it (the owner's is users.record).
    record TEXT,
    PRIMARY KEY(source_id, anchor)
) WITHOUT ROWID;
INSERT INTO links_v2(source_id, anchor, user_id, raw_hash)
    SELECT source_id, anchor, user_id, raw_hash FROM links;
DROP TABLE links;
ALTER TABLE links_v2 RENAME TO links;
CREATE UNIQUE INDEX links_user ON links(user_id, source_id);
-- Who contributed each card and name: a source, or NULL for a local edit.
ALTER TABLE cards ADD COLUMN source_id INTEGER REFERENCES sources(id);
UPDATE cards SET source_id = (SELECT source_id FROM users WHERE users.id = cards.user_id);
ALTER TABLE names ADD COLUMN source_id INTEGER REFERENCES sources(id);
UPDATE names SET source_id = (SELECT source_id FROM users WHERE users.id = names.user_id);
-- One-valued fields whose value the owner's last write did not set: a joiner's (source_id)
-- or a local edit's (NULL). Without a row, a field is the owner's, as of users.updated_at.
CREATE TABLE provenance(
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    field TEXT NOT NULL,
    source_id INTEGER REFERENCES sources(id),
    set_at TEXT NOT NULL,
    PRIMARY KEY(user_id, field)
) WITHOUT ROWID;
-- Wrong PINs at terminals, per user ('user:NAME') and per client address ('addr:IP'), and
-- the lock they earned (unix seconds). `roster serve` keeps them in memory and saves them here.
CREATE TABLE auth_locks(
    subject TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    locked_until INTEGER,
    last_failure INTEGER NOT NULL
) WITHOUT ROWID;
"#,
];

/// The schema version this roster writes.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

impl Store {
    /// Creates the database if needed and brings its schema up to date. Meant once, at
    /// start; a database already current is only read. A database newer than this roster
    /// is refused.
    pub fn migrate(path: &Path) -> Result<()> {
        if let Some(url) = pg_url(path) {
            return open_pg(url, true).map(|_| ());
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).ok();
        }
        let conn = Connection::open(path)
            .with_context(|| format!("opening database {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        migrate_conn(conn).with_context(|| format!("database {}", path.display()))?;
        Ok(())
    }

    /// Whether the database is there to open: a file, or any PostgreSQL URL (the server
    /// says at open if it is not).
    pub fn exists(path: &Path) -> bool {
        pg_url(path).is_some() || path.exists()
    }

    /// Migrates the database if needed and opens a connection for writing; runs that a
    /// crash left running are marked interrupted. What a command that writes uses.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(url) = pg_url(path) {
            let store = open_pg(url, true)?;
            store.mark_interrupted()?;
            return Ok(store);
        }
        Store::migrate(path)?;
        let store = Store::connect(path, false)?;
        store.mark_interrupted()?;
        Ok(store)
    }

    /// A connection for reading only: no migration and no write. The database must exist
    /// with this roster's schema (see [`Store::migrate`]).
    pub fn open_read(path: &Path) -> Result<Store> {
        if let Some(url) = pg_url(path) {
            return open_pg(url, false);
        }
        Store::connect(path, true)
    }

    /// An in-memory database (for dry runs against a database that does not exist yet).
    pub fn memory() -> Result<Store> {
        let conn = migrate_conn(Connection::open_in_memory()?)?;
        Ok(Store::new(conn, Leases::Lite(lease::Leases::private()?)))
    }

    fn connect(path: &Path, read_only: bool) -> Result<Store> {
        // Never created here: that is migrate's job.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .with_context(|| format!("opening database {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        settings(&conn)?;
        // Refused at the SQLite level: a reader cannot write by mistake.
        conn.pragma_update(None, "query_only", read_only)?;
        if read_only {
            // A reader's lookups touch few pages, and the service keeps several readers:
            // a small cache each, the OS page cache shared behind them.
            conn.pragma_update(None, "cache_size", -4_000)?;
        }
        check_version(&conn).with_context(|| format!("database {}", path.display()))?;
        Ok(Store::new(conn, Leases::Lite(lease::Leases::beside(path))))
    }

    fn new(conn: Connection, leases: Leases) -> Store {
        Store::with(Conn::Lite(conn), leases)
    }

    fn with(conn: Conn, leases: Leases) -> Store {
        Store {
            conn,
            leases,
            process: "roster".into(),
            parked: RefCell::new(Vec::new()),
        }
    }
}

/// The PostgreSQL URL a database setting holds, if it is one.
fn pg_url(path: &Path) -> Option<&str> {
    path.to_str().filter(|s| pg::is_url(s))
}

/// A PostgreSQL store: migrated first when `migrate` (under the migration lock, so one of
/// several starting hosts does it), else checked to be at this roster's version.
fn open_pg(url: &str, migrate: bool) -> Result<Store> {
    let (mut client, name) = pg::connect(url)?;
    let context = || format!("PostgreSQL database {name}");
    if migrate {
        pg::migrate(&mut client).with_context(context)?;
    }
    let v = pg::version(&mut client).with_context(context)?;
    if v != SCHEMA_VERSION {
        let which = if v > SCHEMA_VERSION { "newer" } else { "older" };
        bail!(
            "{}: schema version {v} is {which} than this roster ({SCHEMA_VERSION})",
            context()
        );
    }
    Ok(Store::with(
        Conn::Pg(Box::new(PgConn::new(client))),
        Leases::Pg(pg::PgLeases::new(url)),
    ))
}

/// Per-connection settings.
fn settings(conn: &Connection) -> Result<()> {
    // WAL + NORMAL keeps every commit atomic; a power loss may only lose the last commit.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "cache_size", -32_000)?;
    Ok(())
}

fn version(conn: &Connection) -> Result<usize> {
    Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
}

fn check_version(conn: &Connection) -> Result<()> {
    let v = version(conn)?;
    if v > SCHEMA_VERSION {
        bail!(
            "database schema version {v} is newer than this roster ({SCHEMA_VERSION}); upgrade roster"
        );
    }
    if v < SCHEMA_VERSION {
        bail!("database schema version {v} is older than this roster ({SCHEMA_VERSION}) and must be migrated first");
    }
    Ok(())
}

fn migrate_conn(mut conn: Connection) -> Result<Connection> {
    if version(&conn)? == SCHEMA_VERSION {
        return Ok(conn);
    }
    // WAL is a property of the file: set once, with the schema.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    settings(&conn)?;
    // One starter migrates; another waits here and then finds nothing left to do.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let from = version(&tx)?;
    if from > SCHEMA_VERSION {
        bail!(
            "database schema version {from} is newer than this roster ({SCHEMA_VERSION}); upgrade roster"
        );
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(from) {
        tx.execute_batch(sql)
            .with_context(|| format!("migration {}", i + 1))?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_version(path: &Path) -> usize {
        version(&Connection::open(path).unwrap()).unwrap()
    }

    #[test]
    fn a_reader_needs_a_migrated_database_and_never_writes() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("roster.db");
        let err = Store::open_read(&db).err().unwrap();
        assert!(format!("{err:#}").contains("opening database"), "{err:#}");
        assert!(!db.exists(), "a reader creates nothing");
        Store::migrate(&db).unwrap();
        assert_eq!(user_version(&db), SCHEMA_VERSION);
        let reader = Store::open_read(&db).unwrap();
        assert!(reader.runs().unwrap().is_empty());
        let err = reader.record_failed_run("src", "x").err().unwrap();
        assert!(format!("{err:#}").contains("readonly"), "{err:#}");
        // Migrating a current database is a no-op; a writer writes.
        Store::migrate(&db).unwrap();
        let writer = Store::open(&db).unwrap();
        writer.record_failed_run("src", "x").unwrap();
        assert_eq!(reader.runs().unwrap().len(), 1);
    }

    #[test]
    fn an_older_database_is_migrated_and_a_newer_one_refused_naming_both_versions() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("roster.db");
        {
            let conn = Connection::open(&db).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
        }
        let err = Store::open_read(&db).err().unwrap();
        let want =
            format!("database schema version 1 is older than this roster ({SCHEMA_VERSION})");
        assert!(format!("{err:#}").contains(&want), "{err:#}");
        Store::open(&db).unwrap();
        assert_eq!(user_version(&db), SCHEMA_VERSION);
        let newer = SCHEMA_VERSION + 1;
        Connection::open(&db)
            .unwrap()
            .pragma_update(None, "user_version", newer)
            .unwrap();
        let want = format!(
            "database schema version {newer} is newer than this roster ({SCHEMA_VERSION}); upgrade roster"
        );
        for err in [
            Store::migrate(&db).err().unwrap(),
            Store::open(&db).err().unwrap(),
            Store::open_read(&db).err().unwrap(),
        ] {
            assert!(format!("{err:#}").contains(&want), "{err:#}");
        }
    }
}
