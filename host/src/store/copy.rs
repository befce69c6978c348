//! `roster db copy`: an SQLite database into an empty PostgreSQL one, every table in one
//! PostgreSQL transaction (binary COPY), read from one SQLite snapshot. It commits whole or
//! leaves the target as it was.

use super::{pg, Status, Store, INTERRUPTED};
use anyhow::{anyhow, bail, Context, Result};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use rusqlite::types::ValueRef;
use serde::Serialize;

/// Rows of one table on both sides after a copy.
#[derive(Debug, Serialize)]
pub struct CopyCount {
    pub table: String,
    pub sqlite: u64,
    pub postgres: u64,
}

/// What a copy did.
#[derive(Debug, Serialize)]
pub struct CopyReport {
    /// `user@host:port/db` of the target, without its password.
    pub target: String,
    pub tables: Vec<CopyCount>,
    /// Runs found running without a live lease: copied as interrupted.
    pub interrupted: u64,
}

impl Store {
    /// Copies this database into the empty PostgreSQL database at `url`, migrating its
    /// schema first. Refused while a run is running or when the target holds roster data.
    pub fn copy_to_postgres(&self, url: &str) -> Result<CopyReport> {
        let (mut client, target) = pg::connect(url)?;
        pg::migrate(&mut client).with_context(|| format!("PostgreSQL database {target}"))?;
        // One snapshot of every table.
        let snapshot = (self.conn.lite())
            .context("a copy reads an SQLite database")?
            .unchecked_transaction()?;
        let mut interrupted = 0;
        for (id, source, lease) in running_runs(&snapshot)? {
            match lease {
                Some(token) if self.leases.alive(&token)? => bail!(
                    "source {source} is running (run {id}); copy when no run is running \
                     (stop `roster serve` first)"
                ),
                _ => interrupted += 1,
            }
        }
        let mut tx = client.transaction()?;
        // Two copies into one database: the second waits here, then finds it full.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&pg::COPY_LOCK])?;
        let mut full = Vec::new();
        for table in pg::TABLES {
            let rows: i64 = tx
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])?
                .get(0);
            if rows > 0 {
                full.push(format!("{table} ({rows})"));
            }
        }
        if !full.is_empty() {
            bail!(
                "PostgreSQL database {target} already holds roster data: {}; copy only into an \
                 empty database",
                full.join(", ")
            );
        }
        tx.batch_execute("SET CONSTRAINTS ALL DEFERRED")?;
        let mut counts = Vec::new();
        for table in pg::TABLES {
            let n = copy_table(&snapshot, &mut tx, table)
                .with_context(|| format!("copying table {table}"))?;
            counts.push((table.to_string(), n));
        }
        for table in ["sources", "users", "groups", "runs"] {
            // The next id PostgreSQL hands out follows the copied ones.
            tx.execute(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table} \
                     HAVING max(id) IS NOT NULL"
                ),
                &[],
            )?;
        }
        if interrupted > 0 {
            tx.execute(
                "UPDATE runs SET status = $1, message = $2, finished = COALESCE(finished, started)
                 WHERE status = $3",
                &[
                    &Status::Interrupted.as_str(),
                    &INTERRUPTED,
                    &Status::Running.as_str(),
                ],
            )?;
        }
        tx.commit()
            .map_err(|e| anyhow!("{}", pg::error_text(&e)))
            .context("committing the copy")?;
        drop(snapshot);
        let mut tables = Vec::new();
        for (table, sqlite) in counts {
            let postgres: i64 = client
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])?
                .get(0);
            tables.push(CopyCount {
                table,
                sqlite,
                postgres: postgres as u64,
            });
        }
        Ok(CopyReport {
            target,
            tables,
            interrupted,
        })
    }
}

fn running_runs(conn: &rusqlite::Connection) -> Result<Vec<(i64, String, Option<String>)>> {
    let mut stmt = conn.prepare("SELECT id, source, lease FROM runs WHERE status = ?1")?;
    let rows = stmt
        .query_map([Status::Running.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// One table through binary COPY; how many rows it read.
fn copy_table(
    from: &rusqlite::Connection,
    to: &mut postgres::Transaction<'_>,
    table: &str,
) -> Result<u64> {
    let columns: Vec<(String, String)> = to
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            &[&table],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let types = columns
        .iter()
        .map(|(name, ty)| match ty.as_str() {
            "bigint" => Ok(Type::INT8),
            "text" => Ok(Type::TEXT),
            "bytea" => Ok(Type::BYTEA),
            "double precision" => Ok(Type::FLOAT8),
            other => Err(anyhow!("column {name}: unexpected type {other}")),
        })
        .collect::<Result<Vec<_>>>()?;
    let list = (columns.iter().map(|(n, _)| format!("\"{n}\"")))
        .collect::<Vec<_>>()
        .join(", ");
    let sink = to.copy_in(&format!("COPY {table} ({list}) FROM STDIN BINARY"))?;
    let mut writer = BinaryCopyInWriter::new(sink, &types);
    let mut stmt = from.prepare(&format!("SELECT {list} FROM {table}"))?;
    let mut rows = stmt.query([])?;
    let mut n = 0;
    let mut cells: Vec<Box<dyn ToSql + Sync>> = Vec::with_capacity(types.len());
    while let Some(row) = rows.next()? {
        cells.clear();
        for (i, ty) in types.iter().enumerate() {
            let cell = convert(row.get_ref(i)?, ty)
                .with_context(|| format!("row {}, column {}", n + 1, columns[i].0))?;
            cells.push(cell);
        }
        let refs: Vec<&(dyn ToSql + Sync)> = cells.iter().map(|c| c.as_ref()).collect();
        writer
            .write(&refs)
            .map_err(|e| anyhow!("{}", pg::error_text(&e)))?;
        n += 1;
    }
    writer
        .finish()
        .map_err(|e| anyhow!("{}", pg::error_text(&e)))?;
    Ok(n)
}

/// An SQLite value as the PostgreSQL column's type; SQLite's loose typing may hold an integer
/// in a text column and the like, which converts; what cannot is an error.
fn convert(v: ValueRef<'_>, ty: &Type) -> Result<Box<dyn ToSql + Sync>> {
    let text = |b: &[u8]| {
        std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|_| anyhow!("text that is not UTF-8"))
    };
    Ok(match (v, ty) {
        (ValueRef::Null, t) if *t == Type::INT8 => Box::new(None::<i64>),
        (ValueRef::Null, t) if *t == Type::FLOAT8 => Box::new(None::<f64>),
        (ValueRef::Null, t) if *t == Type::BYTEA => Box::new(None::<Vec<u8>>),
        (ValueRef::Null, _) => Box::new(None::<String>),
        (ValueRef::Integer(i), t) if *t == Type::INT8 => Box::new(i),
        (ValueRef::Integer(i), t) if *t == Type::TEXT => Box::new(i.to_string()),
        (ValueRef::Integer(i), t) if *t == Type::FLOAT8 => Box::new(i as f64),
        (ValueRef::Real(f), t) if *t == Type::FLOAT8 => Box::new(f),
        (ValueRef::Real(f), t) if *t == Type::TEXT => Box::new(f.to_string()),
        (ValueRef::Text(s), t) if *t == Type::TEXT => Box::new(text(s)?),
        (ValueRef::Text(s), t) if *t == Type::BYTEA => Box::new(s.to_vec()),
        (ValueRef::Text(s), t) if *t == Type::INT8 => Box::new(
            text(s)?
                .parse::<i64>()
                .map_err(|_| anyhow!("text where an integer belongs"))?,
        ),
        (ValueRef::Blob(b), t) if *t == Type::BYTEA => Box::new(b.to_vec()),
        (ValueRef::Blob(b), t) if *t == Type::TEXT => Box::new(text(b)?),
        (v, t) => bail!("a {:?} value where {t} belongs", v.data_type()),
    })
}
