//! Opening the database: schema, migrations and connection settings.

use super::{lease, Store};
use anyhow::{Context, Result};
use rusqlite::Connection;
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
];

impl Store {
    /// Opens (creating if needed) and migrates the database.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).ok();
        }
        let conn = Connection::open(path)
            .with_context(|| format!("opening database {}", path.display()))?;
        Self::setup(conn, lease::Leases::beside(path))
            .with_context(|| format!("database {}", path.display()))
    }

    /// An in-memory database (for dry runs against a database that does not exist yet).
    pub fn memory() -> Result<Store> {
        Self::setup(Connection::open_in_memory()?, lease::Leases::private()?)
    }

    fn setup(mut conn: Connection, leases: lease::Leases) -> Result<Store> {
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // WAL + NORMAL keeps every commit atomic; a power loss may only lose the last commit.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "cache_size", -32_000)?;
        let version: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > MIGRATIONS.len() {
            anyhow::bail!(
                "database schema version {version} is newer than this roster ({}); upgrade roster",
                MIGRATIONS.len()
            );
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)
                .with_context(|| format!("migration {}", i + 1))?;
            tx.pragma_update(None, "user_version", i + 1)?;
            tx.commit()?;
        }
        let store = Store {
            conn,
            leases,
            process: "roster".into(),
            parked: RefCell::new(Vec::new()),
        };
        store.mark_interrupted()?;
        Ok(store)
    }
}
