//! One SQL interface over both stores: SQLite (rusqlite) and PostgreSQL (postgres).
//!
//! The store's queries are written once, in SQLite's dialect, and translated for PostgreSQL
//! when prepared (`pg_sql`). Values travel as rusqlite's types both ways (`ToSql` in,
//! `FromSql` out, `rusqlite::Error` for failures), so a call site reads the same against
//! either store. Where translation cannot help, the SQL is written to mean the same in both
//! (`TRUE` rather than `1` as a condition, `instr(..) > 0`).

use postgres::types::{FromSql as PgFromSql, IsNull, ToSql as PgToSql, Type};
use rusqlite::types::{FromSql, ToSqlOutput, Value, ValueRef};
use rusqlite::{Error, Result, ToSql};
use std::cell::RefCell;
use std::collections::HashMap;

/// A PostgreSQL connection with its prepared statements, keyed by their SQLite text.
pub(crate) struct PgConn {
    /// Dropped by hand (see `Drop`).
    client: std::mem::ManuallyDrop<RefCell<postgres::Client>>,
    stmts: RefCell<HashMap<String, Prepared>>,
    /// Open transactions (0 or 1).
    in_tx: std::cell::Cell<bool>,
    /// Open savepoints of the store's own (`Tx::savepoint`), whose user rolls the whole
    /// savepoint back on any failure: statements in one need no savepoint each.
    savepoints: std::cell::Cell<u32>,
}

/// A prepared PostgreSQL statement, and whether a failure of it is one the store handles
/// (a write that may break a unique key, which SQLite reports and goes on from).
#[derive(Clone)]
pub(crate) struct Prepared {
    stmt: postgres::Statement,
    guard: bool,
}

impl Drop for PgConn {
    fn drop(&mut self) {
        // SAFETY: taken once, here, and never touched again.
        let client = unsafe { std::mem::ManuallyDrop::take(&mut self.client) };
        // Closing blocks on the client's own runtime, which tokio refuses on a thread that
        // runs tokio's (a store dropped in `roster serve`): close it on a thread of its own.
        if tokio::runtime::Handle::try_current().is_ok() {
            let slot = std::sync::Arc::new(std::sync::Mutex::new(Some(client)));
            let theirs = slot.clone();
            let closing = std::thread::Builder::new().name("roster pg close".into());
            if closing.spawn(move || drop(theirs)).is_err() {
                // No thread to be had: leak the connection rather than abort.
                std::mem::forget(slot.lock().map(|mut c| c.take()));
            }
            return;
        }
        drop(client);
    }
}

impl PgConn {
    pub(crate) fn new(client: postgres::Client) -> PgConn {
        PgConn {
            client: std::mem::ManuallyDrop::new(RefCell::new(client)),
            stmts: RefCell::new(HashMap::new()),
            in_tx: std::cell::Cell::new(false),
            savepoints: std::cell::Cell::new(0),
        }
    }

    /// The type of parameter `$n` where it is used other than in `$n IS [NOT] NULL`.
    fn infer_without_null_tests(&self, sql: &str, types: &[Type], n: usize) -> Type {
        let probe = sql
            .replace(&format!("${n} IS NULL"), "TRUE")
            .replace(&format!("${n} IS NOT NULL"), "TRUE");
        let mut known = types.to_vec();
        // Left to infer this time.
        known[n - 1] = unspecified();
        match self.client.borrow_mut().prepare_typed(&probe, &known) {
            Ok(s) => match s.params().get(n - 1) {
                Some(t) if *t != unspecified() => t.clone(),
                _ => Type::TEXT,
            },
            Err(_) => {
                // (Within the caller's savepoint, in a transaction.)
                if self.in_tx.get() {
                    let _ = self.batch("ROLLBACK TO SAVEPOINT roster_prepare");
                }
                Type::TEXT
            }
        }
    }

    fn statement(&self, sql: &str) -> Result<Prepared> {
        if let Some(s) = self.stmts.borrow().get(sql) {
            return Ok(s.clone());
        }
        let translated = pg_sql(sql);
        // PostgreSQL types a parameter where it first meets it, and `?2 IS NULL` gives it
        // none (`?2 IS NULL OR x < ?2`): such a one takes the type its other uses give it,
        // found by preparing the statement without its NULL tests, else text.
        let mut types: Vec<Type> = Vec::new();
        // A statement that fails to prepare aborts a transaction: try within a savepoint.
        let in_tx = self.in_tx.get();
        if in_tx {
            self.batch("SAVEPOINT roster_prepare")?;
        }
        let s = loop {
            let tried = self.client.borrow_mut().prepare_typed(&translated, &types);
            if in_tx {
                self.batch(match tried {
                    Ok(_) => "RELEASE SAVEPOINT roster_prepare",
                    Err(_) => "ROLLBACK TO SAVEPOINT roster_prepare",
                })?;
            }
            match tried {
                Ok(s) => break s,
                Err(e) => {
                    let n = (e.as_db_error())
                        .filter(|d| {
                            d.message()
                                .starts_with("could not determine data type of parameter")
                        })
                        .and_then(|d| d.message().rsplit('$').next()?.parse::<usize>().ok())
                        .filter(|&n| n > 0 && types.get(n - 1).is_none_or(|t| *t == unspecified()));
                    let Some(n) = n else {
                        return Err(pg_error(e, sql));
                    };
                    if types.len() < n {
                        types.resize(n, unspecified());
                    }
                    types[n - 1] = self.infer_without_null_tests(&translated, &types, n);
                }
            }
        };
        let head = sql
            .trim_start()
            .get(..16)
            .unwrap_or("")
            .to_ascii_uppercase();
        let guard = (head.starts_with("INSERT") || head.starts_with("UPDATE"))
            && !head.starts_with("INSERT OR");
        let p = Prepared { stmt: s, guard };
        self.stmts.borrow_mut().insert(sql.to_string(), p.clone());
        Ok(p)
    }

    fn execute(&self, p: &Prepared, args: &[&dyn ToSql]) -> Result<usize> {
        let values = pg_args(args)?;
        // A failed statement aborts a PostgreSQL transaction; SQLite's goes on. A write
        // whose failure the store handles runs in a savepoint of its own.
        let guard = p.guard && self.in_tx.get() && self.savepoints.get() == 0;
        if guard {
            self.batch("SAVEPOINT roster_stmt")?;
        }
        let r = self.client.borrow_mut().execute(&p.stmt, &refs(&values));
        match r {
            Ok(n) => {
                if guard {
                    self.batch("RELEASE roster_stmt")?;
                }
                Ok(n as usize)
            }
            Err(e) => {
                if guard {
                    self.batch("ROLLBACK TO roster_stmt; RELEASE roster_stmt")?;
                }
                Err(pg_error(e, ""))
            }
        }
    }

    fn query(&self, p: &Prepared, args: &[&dyn ToSql]) -> Result<Vec<postgres::Row>> {
        let values = pg_args(args)?;
        (self.client.borrow_mut())
            .query(&p.stmt, &refs(&values))
            .map_err(|e| pg_error(e, ""))
    }

    fn batch(&self, sql: &str) -> Result<()> {
        let translated = split(sql).map(pg_sql).collect::<Vec<_>>().join(";\n");
        (self.client.borrow_mut())
            .batch_execute(&translated)
            .map_err(|e| pg_error(e, sql))
    }

    /// Statements prepared before a schema change may be stale: forget them.
    pub(crate) fn forget_statements(&self) {
        self.stmts.borrow_mut().clear();
    }
}

/// A parameter type left for the server to infer (OID 0).
fn unspecified() -> Type {
    Type::new(
        "unspecified".into(),
        0,
        postgres::types::Kind::Pseudo,
        "pg_catalog".into(),
    )
}

/// A connection to either store.
pub(crate) enum Conn {
    Lite(rusqlite::Connection),
    Pg(Box<PgConn>),
}

/// A borrowed connection: what the query methods run on.
#[derive(Clone, Copy)]
pub(crate) enum Db<'a> {
    Lite(&'a rusqlite::Connection),
    Pg(&'a PgConn),
}

/// The query methods, shared by a connection, a transaction and a savepoint.
pub(crate) trait Sql {
    fn db(&self) -> Db<'_>;

    fn execute(&self, sql: &str, args: impl Args) -> Result<usize> {
        match self.db() {
            Db::Lite(c) => c.execute(sql, &*args.list()),
            Db::Pg(c) => c.execute(&c.statement(sql)?, &args.list()),
        }
    }

    fn execute_batch(&self, sql: &str) -> Result<()> {
        match self.db() {
            Db::Lite(c) => c.execute_batch(sql),
            Db::Pg(c) => c.batch(sql),
        }
    }

    fn query_row<T>(
        &self,
        sql: &str,
        args: impl Args,
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        match self.db() {
            Db::Lite(c) => c.query_row(sql, &*args.list(), |r| f(&Row::Lite(r))),
            Db::Pg(c) => {
                let rows = c.query(&c.statement(sql)?, &args.list())?;
                match rows.first() {
                    Some(r) => f(&Row::Pg(r)),
                    None => Err(Error::QueryReturnedNoRows),
                }
            }
        }
    }

    fn prepare(&self, sql: &str) -> Result<Stmt<'_>> {
        Ok(match self.db() {
            Db::Lite(c) => Stmt::Lite(c.prepare(sql)?),
            Db::Pg(c) => Stmt::Pg(c, c.statement(sql)?),
        })
    }

    fn prepare_cached(&self, sql: &str) -> Result<Stmt<'_>> {
        Ok(match self.db() {
            Db::Lite(c) => Stmt::LiteCached(c.prepare_cached(sql)?),
            Db::Pg(c) => Stmt::Pg(c, c.statement(sql)?),
        })
    }

    /// Whether this is PostgreSQL, where each statement is a round trip to the server.
    fn is_pg(&self) -> bool {
        matches!(self.db(), Db::Pg(_))
    }

    /// Inserts `rows` with `head` (`INSERT INTO t(a, b)`) in multi-row statements, rows that
    /// break a unique key skipped (`ON CONFLICT DO NOTHING`); returns the text of column
    /// `returning` of the rows inserted. For PostgreSQL, where a row a statement would cost
    /// a round trip each.
    fn insert_many(
        &self,
        head: &str,
        rows: &[Vec<rusqlite::types::Value>],
        returning: Option<&str>,
    ) -> Result<Vec<String>> {
        const PARAMS: usize = 16_000;
        let mut out = Vec::new();
        let Some(width) = rows.first().map(Vec::len).filter(|&w| w > 0) else {
            return Ok(out);
        };
        for chunk in rows.chunks((PARAMS / width).max(1)) {
            let mut sql = format!("{head} VALUES ");
            for r in 0..chunk.len() {
                sql.push_str(if r == 0 { "(" } else { ", (" });
                for c in 0..width {
                    if c > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&format!("?{}", r * width + c + 1));
                }
                sql.push(')');
            }
            sql.push_str(" ON CONFLICT DO NOTHING");
            let args: Vec<&rusqlite::types::Value> = chunk.iter().flatten().collect();
            match returning {
                Some(col) => {
                    sql.push_str(&format!(" RETURNING CAST({col} AS TEXT)"));
                    let mut st = self.prepare(&sql)?;
                    let got = st.query_map(&args, |r| r.get::<_, String>(0))?;
                    for g in got {
                        out.push(g?);
                    }
                }
                None => {
                    self.prepare(&sql)?.execute(&args)?;
                }
            }
        }
        Ok(out)
    }

    /// The id of the row the last INSERT on this connection made.
    fn last_insert_rowid(&self) -> Result<i64> {
        match self.db() {
            Db::Lite(c) => Ok(c.last_insert_rowid()),
            Db::Pg(_) => self.query_row("SELECT lastval()", (), |r| r.get(0)),
        }
    }
}

impl Sql for Conn {
    fn db(&self) -> Db<'_> {
        match self {
            Conn::Lite(c) => Db::Lite(c),
            Conn::Pg(c) => Db::Pg(c),
        }
    }
}

impl Sql for Db<'_> {
    fn db(&self) -> Db<'_> {
        *self
    }
}

impl Conn {
    /// Begins a transaction that writes from its start (SQLite: IMMEDIATE, so a second
    /// writer waits here rather than failing at its first write).
    pub(crate) fn begin(&self) -> Result<Tx<'_>> {
        self.db().begin()
    }

    /// Begins a transaction that takes SQLite's write lock only at its first write (or
    /// never: a snapshot for reading).
    pub(crate) fn begin_deferred(&self) -> Result<Tx<'_>> {
        match self {
            Conn::Lite(c) => Ok(Tx::lite(c.unchecked_transaction()?)),
            Conn::Pg(c) => Tx::pg(c),
        }
    }

    /// The SQLite connection, for what only SQLite has (pragmas, backups).
    pub(crate) fn lite(&self) -> Option<&rusqlite::Connection> {
        match self {
            Conn::Lite(c) => Some(c),
            Conn::Pg(_) => None,
        }
    }
}

impl<'a> Db<'a> {
    pub(crate) fn begin(self) -> Result<Tx<'a>> {
        match self {
            Db::Lite(c) => Ok(Tx::lite(rusqlite::Transaction::new_unchecked(
                c,
                rusqlite::TransactionBehavior::Immediate,
            )?)),
            Db::Pg(c) => Tx::pg(c),
        }
    }
}

/// A transaction: rolled back when dropped without `commit`.
pub(crate) struct Tx<'a> {
    lite: Option<rusqlite::Transaction<'a>>,
    pg: Option<&'a PgConn>,
    depth: u32,
}

impl<'a> Tx<'a> {
    fn lite(tx: rusqlite::Transaction<'a>) -> Tx<'a> {
        Tx {
            lite: Some(tx),
            pg: None,
            depth: 0,
        }
    }

    fn pg(c: &'a PgConn) -> Result<Tx<'a>> {
        c.batch("BEGIN")?;
        c.in_tx.set(true);
        Ok(Tx {
            lite: None,
            pg: Some(c),
            depth: 0,
        })
    }

    pub(crate) fn commit(self) -> Result<()> {
        self.end(true)
    }

    pub(crate) fn rollback(self) -> Result<()> {
        self.end(false)
    }

    fn end(mut self, commit: bool) -> Result<()> {
        if let Some(tx) = self.lite.take() {
            return if commit { tx.commit() } else { tx.rollback() };
        }
        let c = self.pg.take().expect("a transaction is on one store");
        c.in_tx.set(false);
        c.batch(if commit { "COMMIT" } else { "ROLLBACK" })
    }

    /// A savepoint inside this transaction: its writes go when it is rolled back, or with
    /// the transaction.
    pub(crate) fn savepoint(&mut self) -> Result<Savepoint<'_>> {
        self.depth += 1;
        let name = format!("sp{}", self.depth);
        self.execute_batch(&format!("SAVEPOINT {name}"))?;
        if let Db::Pg(c) = self.db() {
            c.savepoints.set(c.savepoints.get() + 1);
        }
        Ok(Savepoint {
            db: self.db(),
            name,
            done: false,
        })
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.pg.take() {
            // A failed connection rolls back on its own; nothing more can be done here.
            c.in_tx.set(false);
            let _ = c.batch("ROLLBACK");
        }
    }
}

impl Sql for Tx<'_> {
    fn db(&self) -> Db<'_> {
        match (&self.lite, self.pg) {
            (Some(tx), _) => Db::Lite(tx),
            (None, Some(c)) => Db::Pg(c),
            (None, None) => unreachable!("a finished transaction is gone"),
        }
    }
}

/// A savepoint: released by `commit`, undone by `rollback` (or when dropped).
pub(crate) struct Savepoint<'a> {
    db: Db<'a>,
    name: String,
    done: bool,
}

impl Savepoint<'_> {
    pub(crate) fn commit(mut self) -> Result<()> {
        self.close();
        self.db.execute_batch(&format!("RELEASE {}", self.name))
    }

    fn close(&mut self) {
        self.done = true;
        if let Db::Pg(c) = self.db {
            c.savepoints.set(c.savepoints.get().saturating_sub(1));
        }
    }

    /// Undoes the savepoint's writes; it stays open for more.
    pub(crate) fn rollback(&mut self) -> Result<()> {
        self.db.execute_batch(&format!("ROLLBACK TO {}", self.name))
    }
}

impl Drop for Savepoint<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.close();
            let name = &self.name;
            let _ = (self.db).execute_batch(&format!("ROLLBACK TO {name}; RELEASE {name}"));
        }
    }
}

impl Sql for Savepoint<'_> {
    fn db(&self) -> Db<'_> {
        self.db
    }
}

/// A prepared statement.
pub(crate) enum Stmt<'a> {
    Lite(rusqlite::Statement<'a>),
    LiteCached(rusqlite::CachedStatement<'a>),
    Pg(&'a PgConn, Prepared),
}

impl<'a> Stmt<'a> {
    fn lite(&mut self) -> Option<&mut rusqlite::Statement<'a>> {
        match self {
            Stmt::Lite(s) => Some(s),
            Stmt::LiteCached(s) => Some(s),
            Stmt::Pg(..) => None,
        }
    }

    pub(crate) fn execute(&mut self, args: impl Args) -> Result<usize> {
        if let Some(s) = self.lite() {
            return s.execute(&*args.list());
        }
        let Stmt::Pg(c, s) = self else { unreachable!() };
        c.execute(s, &args.list())
    }

    pub(crate) fn query_row<T>(
        &mut self,
        args: impl Args,
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        if let Some(s) = self.lite() {
            return s.query_row(&*args.list(), |r| f(&Row::Lite(r)));
        }
        let Stmt::Pg(c, s) = self else { unreachable!() };
        match c.query(s, &args.list())?.first() {
            Some(r) => f(&Row::Pg(r)),
            None => Err(Error::QueryReturnedNoRows),
        }
    }

    /// The rows, each read by `f`. SQLite's come as they are stepped; PostgreSQL's are
    /// fetched whole.
    pub(crate) fn query_map<T, F>(&mut self, args: impl Args, f: F) -> Result<Rows<'_, F>>
    where
        F: FnMut(&Row<'_>) -> Result<T>,
    {
        match self {
            Stmt::Lite(s) => Ok(Rows::Lite(s.query(&*args.list())?, f)),
            Stmt::LiteCached(s) => Ok(Rows::Lite(s.query(&*args.list())?, f)),
            Stmt::Pg(c, s) => Ok(Rows::Pg(c.query(s, &args.list())?.into_iter(), f)),
        }
    }

    /// The rows, stepped with `next`.
    pub(crate) fn query(&mut self, args: impl Args) -> Result<Query<'_>> {
        match self {
            Stmt::Lite(s) => Ok(Query::Lite(s.query(&*args.list())?)),
            Stmt::LiteCached(s) => Ok(Query::Lite(s.query(&*args.list())?)),
            Stmt::Pg(c, s) => Ok(Query::Pg(c.query(s, &args.list())?.into_iter(), None)),
        }
    }
}

/// Rows of a query, each read by the query's function.
pub(crate) enum Rows<'s, F> {
    Lite(rusqlite::Rows<'s>, F),
    Pg(std::vec::IntoIter<postgres::Row>, F),
}

impl<T, F: FnMut(&Row<'_>) -> Result<T>> Iterator for Rows<'_, F> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        match self {
            Rows::Lite(rows, f) => match rows.next() {
                Ok(Some(r)) => Some(f(&Row::Lite(r))),
                Ok(None) => None,
                Err(e) => Some(Err(e)),
            },
            Rows::Pg(rows, f) => rows.next().map(|r| f(&Row::Pg(&r))),
        }
    }
}

/// The rows of a query, stepped one at a time.
pub(crate) enum Query<'s> {
    Lite(rusqlite::Rows<'s>),
    Pg(std::vec::IntoIter<postgres::Row>, Option<postgres::Row>),
}

impl Query<'_> {
    #[allow(clippy::should_implement_trait)] // rusqlite's shape: a row borrows the query
    pub(crate) fn next(&mut self) -> Result<Option<Row<'_>>> {
        match self {
            Query::Lite(rows) => Ok(rows.next()?.map(Row::Lite)),
            Query::Pg(rows, current) => {
                *current = rows.next();
                Ok(current.as_ref().map(Row::Pg))
            }
        }
    }
}

/// One row of a result.
pub(crate) enum Row<'r> {
    Lite(&'r rusqlite::Row<'r>),
    Pg(&'r postgres::Row),
}

impl Row<'_> {
    pub(crate) fn get<I: Index, T: FromSql>(&self, i: I) -> Result<T> {
        let i = i.index();
        match self {
            Row::Lite(r) => r.get(i),
            Row::Pg(r) => {
                let raw: Raw<'_> = r.try_get(i).map_err(|e| pg_error(e, ""))?;
                let v = raw.value().map_err(|e| {
                    Error::FromSqlConversionFailure(i, rusqlite::types::Type::Null, e.into())
                })?;
                T::column_result(v.as_ref()).map_err(|e| match e {
                    rusqlite::types::FromSqlError::InvalidType => {
                        Error::InvalidColumnType(i, format!("{i}"), v.as_ref().data_type())
                    }
                    e => Error::FromSqlConversionFailure(i, v.as_ref().data_type(), e.into()),
                })
            }
        }
    }
}

/// A column's place in a row (rusqlite's `get::<_, T>(i)` shape).
pub(crate) trait Index {
    fn index(self) -> usize;
}

impl Index for usize {
    fn index(self) -> usize {
        self
    }
}

/// Owned or borrowed, a column value.
enum Cell<'a> {
    Borrowed(ValueRef<'a>),
    Owned(Value),
}

impl Cell<'_> {
    fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Cell::Borrowed(v) => *v,
            Cell::Owned(v) => v.into(),
        }
    }
}

/// A PostgreSQL column of any type, undecoded.
struct Raw<'a> {
    ty: Type,
    bytes: Option<&'a [u8]>,
}

impl<'a> PgFromSql<'a> for Raw<'a> {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw {
            ty: ty.clone(),
            bytes: Some(raw),
        })
    }

    fn from_sql_null(
        ty: &Type,
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw {
            ty: ty.clone(),
            bytes: None,
        })
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

impl<'a> Raw<'a> {
    /// The value as SQLite would hold it: booleans are integers, JSON is text.
    fn value(&self) -> std::result::Result<Cell<'a>, String> {
        let Some(b) = self.bytes else {
            return Ok(Cell::Borrowed(ValueRef::Null));
        };
        let int = |n: usize| -> std::result::Result<i64, String> {
            let a: [u8; 8] = match n {
                8 => b.try_into().map_err(|_| "a short integer")?,
                4 => {
                    let a: [u8; 4] = b.try_into().map_err(|_| "a short integer")?;
                    return Ok(i32::from_be_bytes(a).into());
                }
                _ => {
                    let a: [u8; 2] = b.try_into().map_err(|_| "a short integer")?;
                    return Ok(i16::from_be_bytes(a).into());
                }
            };
            Ok(i64::from_be_bytes(a))
        };
        Ok(match self.ty {
            Type::INT8 | Type::OID => Cell::Owned(Value::Integer(int(8)?)),
            Type::INT4 => Cell::Owned(Value::Integer(int(4)?)),
            Type::INT2 => Cell::Owned(Value::Integer(int(2)?)),
            Type::BOOL => Cell::Owned(Value::Integer(i64::from(b.first() == Some(&1)))),
            Type::FLOAT8 => Cell::Owned(Value::Real(f64::from_be_bytes(
                b.try_into().map_err(|_| "a short float")?,
            ))),
            Type::FLOAT4 => Cell::Owned(Value::Real(
                f32::from_be_bytes(b.try_into().map_err(|_| "a short float")?).into(),
            )),
            Type::BYTEA => Cell::Borrowed(ValueRef::Blob(b)),
            Type::JSONB => Cell::Borrowed(ValueRef::Text(b.get(1..).unwrap_or_default())),
            Type::NUMERIC => Cell::Owned(numeric(b)?),
            _ => Cell::Borrowed(ValueRef::Text(b)),
        })
    }
}

/// A NUMERIC in PostgreSQL's binary form (what SUM of integers gives): an integer when it
/// has no fraction, else a float.
fn numeric(b: &[u8]) -> std::result::Result<Value, String> {
    let word = |i: usize| -> std::result::Result<i16, String> {
        let a = b.get(i * 2..i * 2 + 2).ok_or("a short numeric")?;
        Ok(i16::from_be_bytes([a[0], a[1]]))
    };
    let (ndigits, weight, sign, dscale) = (word(0)?, word(1)?, word(2)? as u16, word(3)?);
    if sign == 0xC000 {
        return Ok(Value::Real(f64::NAN));
    }
    let mut v = 0f64;
    for d in 0..ndigits as usize {
        let digit = f64::from(word(4 + d)?);
        v += digit * 10_000f64.powi(i32::from(weight) - d as i32);
    }
    if sign == 0x4000 {
        v = -v;
    }
    if dscale == 0 && v.abs() < 9.0e15 {
        return Ok(Value::Integer(v as i64));
    }
    Ok(Value::Real(v))
}

/// Statement arguments: `params![...]`, an array of one type, a slice or `()`.
pub(crate) trait Args {
    fn list(&self) -> Vec<&dyn ToSql>;
}

impl Args for () {
    fn list(&self) -> Vec<&dyn ToSql> {
        Vec::new()
    }
}

impl<T: ToSql, const N: usize> Args for [T; N] {
    fn list(&self) -> Vec<&dyn ToSql> {
        self.iter().map(|v| v as &dyn ToSql).collect()
    }
}

impl<T: ToSql, const N: usize> Args for &[T; N] {
    fn list(&self) -> Vec<&dyn ToSql> {
        self.iter().map(|v| v as &dyn ToSql).collect()
    }
}

impl<T: ToSql> Args for &[T] {
    fn list(&self) -> Vec<&dyn ToSql> {
        self.iter().map(|v| v as &dyn ToSql).collect()
    }
}

impl<T: ToSql> Args for &Vec<T> {
    fn list(&self) -> Vec<&dyn ToSql> {
        self.iter().map(|v| v as &dyn ToSql).collect()
    }
}

/// An argument for PostgreSQL: a SQLite value, encoded as the type the server inferred for
/// its place (SQLite compares loosely; this keeps the queries' arguments as they are).
#[derive(Debug)]
struct PgArg(Value);

fn pg_args(args: &[&dyn ToSql]) -> Result<Vec<PgArg>> {
    args.iter()
        .map(|a| {
            Ok(PgArg(match a.to_sql()? {
                ToSqlOutput::Borrowed(v) => owned(v),
                ToSqlOutput::Owned(v) => v,
                _ => return Err(Error::ToSqlConversionFailure("an unsupported value".into())),
            }))
        })
        .collect()
}

fn owned(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

fn refs(values: &[PgArg]) -> Vec<&(dyn PgToSql + Sync)> {
    values.iter().map(|v| v as &(dyn PgToSql + Sync)).collect()
}

impl PgToSql for PgArg {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use bytes::BufMut;
        let text = |v: &Value| -> Option<String> {
            match v {
                Value::Integer(i) => Some(i.to_string()),
                Value::Real(f) => Some(f.to_string()),
                Value::Text(s) => Some(s.clone()),
                _ => None,
            }
        };
        let int = |v: &Value| -> std::result::Result<i64, String> {
            match v {
                Value::Integer(i) => Ok(*i),
                Value::Real(f) => Ok(*f as i64),
                Value::Text(s) => s
                    .trim()
                    .parse()
                    .map_err(|_| format!("{s:?} is not a number")),
                other => Err(format!("{other:?} is not a number")),
            }
        };
        match (&self.0, ty) {
            (Value::Null, _) => return Ok(IsNull::Yes),
            (v, &Type::INT8) => out.put_i64(int(v)?),
            (v, &Type::INT4) => out.put_i32(i32::try_from(int(v)?)?),
            (v, &Type::INT2) => out.put_i16(i16::try_from(int(v)?)?),
            (v, &Type::BOOL) => out.put_u8(u8::from(int(v)? != 0)),
            (Value::Real(f), &Type::FLOAT8) => out.put_f64(*f),
            (v, &Type::FLOAT8) => out.put_f64(int(v)? as f64),
            (Value::Blob(b), &Type::BYTEA) => out.put_slice(b),
            (Value::Text(s), &Type::BYTEA) => out.put_slice(s.as_bytes()),
            (v, &Type::JSONB) => {
                out.put_u8(1);
                out.put_slice(text(v).ok_or("a blob is not JSON")?.as_bytes());
            }
            (Value::Blob(b), _) => out.put_slice(b),
            (v, _) => out.put_slice(text(v).expect("text, integer or real").as_bytes()),
        }
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// A PostgreSQL error as a rusqlite one. A unique violation reads as SQLite's ("UNIQUE
/// constraint failed: table.column"), which callers match to name the duplicate.
fn pg_error(e: postgres::Error, sql: &str) -> Error {
    use rusqlite::ffi;
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        if code == "23505" {
            let cols = (db.detail())
                .and_then(|d| d.strip_prefix("Key ("))
                .and_then(|d| d.split(")=").next())
                .unwrap_or("");
            let table = db.table().unwrap_or("");
            let cols: Vec<String> = cols.split(", ").map(|c| format!("{table}.{c}")).collect();
            return Error::SqliteFailure(
                ffi::Error {
                    code: ffi::ErrorCode::ConstraintViolation,
                    extended_code: ffi::SQLITE_CONSTRAINT_UNIQUE,
                },
                Some(format!("UNIQUE constraint failed: {}", cols.join(", "))),
            );
        }
        if code.starts_with("23") {
            return Error::SqliteFailure(
                ffi::Error {
                    code: ffi::ErrorCode::ConstraintViolation,
                    extended_code: ffi::SQLITE_CONSTRAINT,
                },
                Some(db.message().to_string()),
            );
        }
    }
    let mut text = super::pg::error_text(&e);
    if !sql.is_empty() {
        text = format!(
            "{text} (in {})",
            sql.split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }
    Error::ToSqlConversionFailure(text.into())
}

/// The statements of a batch, split at semicolons outside quotes.
fn split(sql: &str) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let (mut start, mut at) = (0, 0);
    for t in tokens(sql) {
        if t == ";" {
            parts.push(&sql[start..at]);
            start = at + 1;
        }
        at += t.len();
    }
    parts.push(&sql[start..]);
    // A part of only white space and comments is no statement.
    parts.into_iter().filter(|p| {
        tokens(p)
            .iter()
            .any(|t| !t.trim().is_empty() && !t.starts_with("--"))
    })
}

/// Translates one statement from SQLite's dialect into PostgreSQL's.
pub(crate) fn pg_sql(sql: &str) -> String {
    let tokens = tokens(sql);
    let mut out = String::with_capacity(sql.len() + 32);
    let mut n_param = 0;
    let mut suffix = String::new();
    let upper: Vec<String> = tokens.iter().map(|t| t.to_ascii_uppercase()).collect();
    let word = |i: usize| upper.get(i).map(String::as_str).unwrap_or("");
    // The next token that is not white space, from i on.
    let next = |i: usize| (i..tokens.len()).find(|&j| !tokens[j].trim().is_empty());
    let first = next(0).unwrap_or(0);
    let creating_temp =
        word(first) == "CREATE" && next(first + 1).is_some_and(|j| word(j) == "TEMP");
    let mut skip_to = 0;
    // Subqueries in FROM without a name: PostgreSQL (before 16) wants one.
    let mut name_after = std::collections::HashSet::new();
    // Closing parentheses to be followed by text of ours.
    let mut close_with: HashMap<usize, &str> = HashMap::new();
    for (i, t) in tokens.iter().enumerate() {
        if i < skip_to {
            continue;
        }
        if let Some(extra) = close_with.remove(&i) {
            out.push_str(t);
            out.push_str(extra);
            continue;
        }
        if name_after.remove(&i) {
            out.push_str(t);
            out.push_str(&format!(" AS q{i}"));
            continue;
        }
        let u = word(i);
        match u {
            "FROM" if next(i + 1).is_some_and(|j| tokens[j] == "(") => {
                let end = close_paren(&tokens, next(i + 1).unwrap());
                let after = next(end).map(word).unwrap_or("");
                if matches!(
                    after,
                    "" | ")"
                        | ","
                        | ";"
                        | "WHERE"
                        | "ORDER"
                        | "GROUP"
                        | "LIMIT"
                        | "UNION"
                        | "JOIN"
                        | "LEFT"
                ) {
                    name_after.insert(end - 1);
                }
                out.push_str(t);
            }
            "JSON_GROUP_ARRAY" => {
                out.push_str("COALESCE(json_agg");
                close_with.insert(close_paren(&tokens, i + 1) - 1, ", '[]'::json)");
            }
            // SQLite's `CROSS JOIN t ON ...` (join order fixed) is PostgreSQL's `JOIN t ON`.
            "CROSS"
                if next(i + 1).is_some_and(|j| word(j) == "JOIN") && {
                    let join = next(i + 1).unwrap();
                    ((join + 1)..tokens.len())
                        .map(word)
                        .take_while(|w| !matches!(*w, "JOIN" | "WHERE" | ")" | ";"))
                        .any(|w| w == "ON")
                } => {}
            // Only ever compared: the instant as a timestamp orders the same.
            "JULIANDAY" if next(i + 1).is_some_and(|j| tokens[j] == "(") => {
                close_with.insert(close_paren(&tokens, i + 1) - 1, "::text::timestamp");
            }
            "JSON_ARRAY" => out.push_str("json_build_array"),
            "JSON_EACH" => {
                // json_each(X) j: the elements of a JSON array, as text in j.value
                let end = close_paren(&tokens, i + 1);
                let inner = pg_sql(&tokens[i + 2..end - 1].concat());
                out.push_str(&format!(
                    "LATERAL (SELECT e #>> '{{}}' AS value FROM json_array_elements(({inner})::json) e)"
                ));
                skip_to = end;
            }
            "->>" => {
                // A JSON text's member or element: `$.name` → 'name', N stays N.
                let trimmed = out.trim_end().len();
                out.truncate(trimmed);
                out.push_str("::json ->>");
                if let Some(j) = next(i + 1) {
                    if let Some(name) = tokens[j].strip_prefix("'$.") {
                        out.push_str(&tokens[i + 1..j].concat());
                        out.push('\'');
                        out.push_str(name);
                        skip_to = j + 1;
                    }
                }
            }
            "?" => {
                n_param += 1;
                out.push_str(&format!("${n_param}"));
            }
            _ if u.starts_with('?') => out.push_str(&format!("${}", &t[1..])),
            "INSERT" => {
                out.push_str(t);
                // INSERT OR IGNORE / OR REPLACE
                if let Some(j) = next(i + 1).filter(|&j| word(j) == "OR") {
                    let k = next(j + 1).unwrap_or(j);
                    if word(k) == "IGNORE" {
                        suffix = " ON CONFLICT DO NOTHING".into();
                    } else if word(k) == "REPLACE" {
                        suffix = replace_suffix(&tokens, k + 1);
                    }
                    skip_to = k + 1;
                }
            }
            "TEMP" if i + 1 < tokens.len() && tokens[i + 1] == "." => {
                out.push_str("pg_temp");
            }
            "WITHOUT" if next(i + 1).is_some_and(|j| word(j) == "ROWID") => {
                skip_to = next(i + 1).unwrap() + 1;
            }
            "TEXT" if creating_temp => out.push_str("TEXT COLLATE \"C\""),
            "INTEGER" if creating_temp && next(i + 1).is_some_and(|j| word(j) == "PRIMARY") => {
                // SQLite's rowid alias: numbered when not given.
                out.push_str("BIGINT GENERATED BY DEFAULT AS IDENTITY");
            }
            "INTEGER" if creating_temp => out.push_str("BIGINT"),
            "LIKE" => out.push_str("ILIKE"),
            "INSTR" => out.push_str("strpos"),
            "IS" => {
                // IS ?N / IS NOT ?N: null-safe comparisons
                let j = next(i + 1);
                match j.map(word) {
                    Some("NOT") => {
                        let k = next(j.unwrap() + 1);
                        if k.is_some_and(|k| tokens[k].starts_with('?')) {
                            out.push_str("IS DISTINCT FROM");
                            skip_to = j.unwrap() + 1;
                        } else {
                            out.push_str(t);
                        }
                    }
                    Some(w) if w.starts_with('?') => out.push_str("IS NOT DISTINCT FROM"),
                    _ => out.push_str(t),
                }
            }
            "MAX" | "MIN" if scalar_call(&tokens, i + 1) => {
                out.push_str(if u == "MAX" { "GREATEST" } else { "LEAST" });
            }
            "STRFTIME" => {
                // Only the forms the store uses: now, as ISO 8601 UTC, or seconds.
                let end = close_paren(&tokens, i + 1);
                let inner: String = tokens[i + 1..end].concat();
                if inner.contains("'%s'") {
                    out.push_str("extract(epoch from now())::bigint");
                } else {
                    out.push_str(
                        "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
                    );
                }
                skip_to = end;
            }
            _ => out.push_str(t),
        }
    }
    let trimmed = out.trim_end().trim_end_matches(';').trim_end().to_string();
    trimmed + &suffix
}

/// SQLite's `INSERT OR REPLACE INTO t(cols)`: PostgreSQL's upsert on t's key.
fn replace_suffix(tokens: &[String], from: usize) -> String {
    let rest: String = tokens[from..].concat();
    let rest = rest.trim_start();
    let rest = rest
        .strip_prefix("INTO")
        .or(rest.strip_prefix("into"))
        .unwrap_or(rest);
    let (table, cols) = rest.trim_start().split_once('(').unwrap_or((rest, ""));
    let table = table.trim();
    let cols: Vec<&str> = cols
        .split(')')
        .next()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .collect();
    let key: &[&str] = match table {
        "links" => &["source_id", "anchor"],
        "provenance" => &["user_id", "field"],
        "auth_locks" => &["subject"],
        "leases" => &["source"],
        "held_runs" => &["run_id"],
        other => panic!("INSERT OR REPLACE into {other}: its key is not known"),
    };
    let set: Vec<String> = (cols.iter())
        .filter(|c| !key.contains(c))
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    if set.is_empty() {
        return format!(" ON CONFLICT ({}) DO NOTHING", key.join(", "));
    }
    format!(
        " ON CONFLICT ({}) DO UPDATE SET {}",
        key.join(", "),
        set.join(", ")
    )
}

/// Whether the call starting at `open` (a `(` token) has two or more arguments at its top
/// level: SQLite's scalar max/min.
fn scalar_call(tokens: &[String], open: usize) -> bool {
    if tokens.get(open).map(String::as_str) != Some("(") {
        return false;
    }
    let mut depth = 0;
    for t in &tokens[open..] {
        match t.as_str() {
            "(" => depth += 1,
            ")" => {
                depth -= 1;
                if depth == 0 {
                    return false;
                }
            }
            "," if depth == 1 => return true,
            _ => {}
        }
    }
    false
}

/// The index after the `)` that closes the `(` at `open`.
fn close_paren(tokens: &[String], open: usize) -> usize {
    let mut depth = 0;
    for (i, t) in tokens.iter().enumerate().skip(open) {
        match t.as_str() {
            "(" => depth += 1,
            ")" => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
    }
    tokens.len()
}

/// SQL split into tokens: words, quoted strings and identifiers, parameters, white space
/// and single punctuation characters. Concatenated, they are the input.
fn tokens(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = sql;
    while let Some(c) = rest.chars().next() {
        let after = &rest[c.len_utf8()..];
        // The length of the token that starts rest.
        let len = if c == '-' && after.starts_with('-') {
            // A comment, to the end of its line: kept, so the text is unchanged.
            rest.find('\n').unwrap_or(rest.len())
        } else if c == '\'' || c == '"' {
            // Quoted, up to the closing quote ('' inside reads as two quoted pieces,
            // which is fine here).
            after.find(c).map_or(rest.len(), |i| i + 2)
        } else {
            let run = |pred: fn(char) -> bool| {
                c.len_utf8() + after.find(|d: char| !pred(d)).unwrap_or(after.len())
            };
            if c.is_whitespace() {
                run(char::is_whitespace)
            } else if c.is_alphanumeric() || c == '_' {
                run(|d| d.is_alphanumeric() || d == '_')
            } else if c == '?' {
                run(|d| d.is_ascii_digit())
            } else if c == '-' && after.starts_with('>') {
                // -> and ->>
                run(|d| d == '>')
            } else {
                c.len_utf8()
            }
        };
        out.push(rest[..len].to_string());
        rest = &rest[len..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::pg_sql;

    #[test]
    fn julianday_is_a_timestamp() {
        assert_eq!(
            pg_sql("SELECT 1 WHERE (julianday(u.t) > julianday(?))"),
            "SELECT 1 WHERE ((u.t)::text::timestamp > ($1)::text::timestamp)"
        );
    }

    #[test]
    fn cross_join_with_on_is_an_inner_join() {
        assert_eq!(
            pg_sql("SELECT 1 FROM s CROSS JOIN l ON l.s = s.id WHERE x = ?1"),
            "SELECT 1 FROM s  JOIN l ON l.s = s.id WHERE x = $1"
        );
        assert_eq!(
            pg_sql("SELECT 1 FROM s CROSS JOIN l WHERE x = ?1"),
            "SELECT 1 FROM s CROSS JOIN l WHERE x = $1"
        );
    }

    #[test]
    fn translates_the_dialect() {
        assert_eq!(
            pg_sql("SELECT a FROM t WHERE x = ?1 AND y IS NOT ?2 AND z IS ?1 AND w IS NOT NULL"),
            "SELECT a FROM t WHERE x = $1 AND y IS DISTINCT FROM $2 AND z IS NOT DISTINCT FROM $1 AND w IS NOT NULL"
        );
        assert_eq!(pg_sql("SELECT ? + ?"), "SELECT $1 + $2");
        assert_eq!(
            pg_sql("INSERT OR IGNORE INTO temp.edges(grp, member) VALUES (?1, ?2)"),
            "INSERT INTO pg_temp.edges(grp, member) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        );
        assert_eq!(
            pg_sql("INSERT OR REPLACE INTO links(source_id, anchor, user_id) VALUES (?1, ?2, ?3)"),
            "INSERT INTO links(source_id, anchor, user_id) VALUES ($1, $2, $3) \
             ON CONFLICT (source_id, anchor) DO UPDATE SET user_id = excluded.user_id"
        );
        assert_eq!(
            pg_sql("CREATE TEMP TABLE gmap(anchor TEXT PRIMARY KEY, id INTEGER NOT NULL) WITHOUT ROWID;"),
            "CREATE TEMP TABLE gmap(anchor TEXT COLLATE \"C\" PRIMARY KEY, id BIGINT NOT NULL) "
        .trim_end()
        );
        assert_eq!(
            pg_sql("SELECT max(a, b), max(c) FROM t WHERE n LIKE 'x%' AND t = strftime('%Y-%m-%dT%H:%M:%SZ','now')"),
            "SELECT GREATEST(a, b), max(c) FROM t WHERE n ILIKE 'x%' AND t = \
             to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
        );
        assert_eq!(
            super::split("SELECT 1; -- it's a comment; still\nSELECT ';'; -- end")
                .collect::<Vec<_>>(),
            ["SELECT 1", " -- it's a comment; still\nSELECT ';'"]
        );
        assert_eq!(
            pg_sql("SELECT json_group_array(n) FROM (SELECT n FROM t ORDER BY n)"),
            "SELECT COALESCE(json_agg(n), '[]'::json) FROM (SELECT n FROM t ORDER BY n) AS q23"
        );
        assert_eq!(
            pg_sql("SELECT j.value ->> 0, s.r ->> '$.name' FROM s, json_each(s.pins) j"),
            "SELECT j.value::json ->> 0, s.r::json ->> 'name' FROM s, \
             LATERAL (SELECT e #>> '{}' AS value FROM json_array_elements((s.pins)::json) e) j"
        );
        // Quoted text is left alone.
        assert_eq!(
            pg_sql("SELECT 'a ? b', \"temp\""),
            "SELECT 'a ? b', \"temp\""
        );
    }
}
