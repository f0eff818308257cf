//! The pipeline's records in SQLite: `<state>/rootmail.sqlite3`, WAL, one
//! connection per run (the state directory's lock admits one run). Each table
//! keeps the record as JSON, as the AWS tables keep items, and derives the
//! columns an operator filters on, so `sqlite3` answers questions directly:
//!
//! ```sql
//! SELECT status, disposition, count(*) FROM ledger GROUP BY 1, 2;
//! SELECT id, kind, priority, subject FROM tickets ORDER BY updated_at DESC LIMIT 20;
//! SELECT ticket_id, count(*) FROM comments GROUP BY 1 ORDER BY 2 DESC LIMIT 5;
//! ```
//!
//! A ticket's comments are rows of their own, so a comment costs the same on
//! a ticket's thousandth mail as on its second.
//!
//! Outside a batch every statement commits (and syncs) on its own; inside one
//! ([`crate::LocalStore::begin_batch`]) nothing is visible to a later run until
//! the batch commits, so a crash loses the batch's records and never half of
//! one message's.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::Path;

/// The schema (also in the README). `user_version` says which one a file has.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ledger (
    content_hash TEXT PRIMARY KEY,
    row          TEXT NOT NULL,
    status       TEXT GENERATED ALWAYS AS (json_extract(row, '$.status')) VIRTUAL,
    disposition  TEXT GENERATED ALWAYS AS (json_extract(row, '$.disposition')) VIRTUAL,
    kind         TEXT GENERATED ALWAYS AS (json_extract(row, '$.kind')) VIRTUAL,
    ticket_id    TEXT GENERATED ALWAYS AS (json_extract(row, '$.ticket_id')) VIRTUAL,
    source       TEXT GENERATED ALWAYS AS (json_extract(row, '$.source')) VIRTUAL,
    claimed_at   INTEGER GENERATED ALWAYS AS (json_extract(row, '$.claimed_at')) VIRTUAL
);
CREATE INDEX IF NOT EXISTS ledger_by_claimed_at ON ledger (claimed_at);
CREATE TABLE IF NOT EXISTS threads (
    thread_key TEXT PRIMARY KEY,
    record     TEXT NOT NULL,
    ticket_id  TEXT GENERATED ALWAYS AS (json_extract(record, '$.ticket_id')) VIRTUAL
);
CREATE TABLE IF NOT EXISTS messages (
    message_id TEXT PRIMARY KEY,
    thread_key TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tickets (
    id         INTEGER PRIMARY KEY,
    thread_key TEXT NOT NULL UNIQUE,
    ticket     TEXT NOT NULL,
    kind       TEXT GENERATED ALWAYS AS (json_extract(ticket, '$.kind')) VIRTUAL,
    priority   TEXT GENERATED ALWAYS AS (json_extract(ticket, '$.priority')) VIRTUAL,
    subject    TEXT GENERATED ALWAYS AS (json_extract(ticket, '$.subject')) VIRTUAL,
    updated_at INTEGER GENERATED ALWAYS AS (json_extract(ticket, '$.updated_at')) VIRTUAL
);
CREATE TABLE IF NOT EXISTS comments (
    ticket_id INTEGER NOT NULL,
    n         INTEGER NOT NULL,
    message   TEXT NOT NULL,
    comment   TEXT NOT NULL,
    PRIMARY KEY (ticket_id, n)
);
CREATE INDEX IF NOT EXISTS comments_by_message ON comments (ticket_id, message);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
PRAGMA user_version = 1;
";

/// The file in a state directory.
pub const FILE: &str = "rootmail.sqlite3";

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{0}")]
    Sql(#[from] rusqlite::Error),
    #[error("a record that does not read back: {0}")]
    Json(#[from] serde_json::Error),
}

/// Opens (creating) the database: WAL, and `synchronous = FULL` so a commit
/// is on disk when it returns (one sync per commit, so one per batch). A
/// backfill's batches touch pages all over the tables: a page cache of 64 MiB
/// (SQLite's default is 2 MiB) keeps them from being read back and spilled
/// mid-batch. A batch of 500 messages writes some 2,000 pages (random index
/// pages mostly) to the log: checkpoints every 128 MiB of log (default 4 MiB;
/// every batch or two at 16 MiB) copy a hot page into the database once for
/// many batches. The log is removed when the run closes the database.
pub fn open(state: &Path) -> Result<(Connection, bool), DbError> {
    let conn = Connection::open(state.join(FILE))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "cache_size", -65_536)?;
    conn.pragma_update(None, "wal_autocheckpoint", 32_768)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // A message takes some twenty statements; rusqlite caches 16 by default,
    // so a backfill prepared some again for every message.
    conn.set_prepared_statement_cache_capacity(64);
    conn.execute_batch(SCHEMA)?;
    let import_pending = legacy_import_pending(&conn)?;
    Ok((conn, import_pending))
}

/// The `meta` key set, in the import's own transaction, once an older state
/// directory's record files are imported (or there were none).
pub const LEGACY_IMPORTED: &str = "legacy_import";

/// Whether the record files of an older state directory may still need
/// importing: not marked done, and nothing recorded yet. A database made
/// before the mark existed and holding records was imported or never needed
/// it; an empty one may be what a failed import left (its transaction rolled
/// back), so the import is tried again.
fn legacy_import_pending(conn: &Connection) -> Result<bool, DbError> {
    let marked: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            params![LEGACY_IMPORTED],
            |r| r.get(0),
        )
        .optional()?;
    let recorded: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM ledger) OR EXISTS (SELECT 1 FROM tickets)",
        [],
        |r| r.get(0),
    )?;
    Ok(marked.is_none() && !recorded)
}

/// The record `sql` selects (one JSON column) for `key`.
pub fn get<T: DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    key: impl rusqlite::ToSql,
) -> Result<Option<T>, DbError> {
    let text: Option<String> = conn
        .prepare_cached(sql)?
        .query_row(params![key], |r| r.get(0))
        .optional()?;
    Ok(text.map(|t| serde_json::from_str(&t)).transpose()?)
}

/// Every record `sql` selects (one JSON column), with `args`.
pub fn all<T: DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<T>, DbError> {
    let mut statement = conn.prepare_cached(sql)?;
    let texts = statement
        .query_map(args, |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    texts
        .iter()
        .map(|t| serde_json::from_str(t).map_err(DbError::from))
        .collect()
}

/// Writes `value` as JSON with `sql` (`?1` the key, `?2` the JSON).
pub fn put<T: Serialize>(
    conn: &Connection,
    sql: &str,
    key: &str,
    value: &T,
) -> Result<(), DbError> {
    let json = serde_json::to_string(value)?;
    conn.prepare_cached(sql)?.execute(params![key, json])?;
    Ok(())
}

/// Every text the database holds, for tests and audits that search all of it
/// (a raw file scan can miss a value that SQLite split across pages).
pub fn every_text(conn: &Connection) -> Result<Vec<String>, DbError> {
    let mut out = Vec::new();
    for sql in [
        "SELECT content_hash || ' ' || row FROM ledger",
        "SELECT thread_key || ' ' || record FROM threads",
        "SELECT message_id || ' ' || thread_key FROM messages",
        "SELECT thread_key || ' ' || ticket FROM tickets",
        "SELECT message || ' ' || comment FROM comments",
    ] {
        let mut statement = conn.prepare(sql)?;
        let texts = statement.query_map([], |r| r.get::<_, String>(0))?;
        for text in texts {
            out.push(text?);
        }
    }
    Ok(out)
}
