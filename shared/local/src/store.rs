//! The embedded store: every port of the pipeline under one state directory,
//! safe to re-run. The originals are files, `archive/<ledger key>.eml` (a
//! second SES delivery of a message shares its key, and may leave its own
//! bytes in the file: the same message under SES's other block); the
//! ledger, thread map, Message-ID map and tickets are tables of
//! `rootmail.sqlite3` ([`crate::db`] has the schema); the lifecycle's records
//! are JSON files under `lifecycle/`. A file write goes to a temporary file
//! first and is renamed into place, so a crash never leaves half a record. One
//! run at a time holds the directory's lock.

use crate::db::{self, DbError};
use rootmail_domain::{ContentHash, Kind, Priority, ThreadKey};
use rootmail_pipeline::{
    Claim, FoundTicket, Ledger, LedgerRow, LedgerStatus, MailArchive, MailSource, NewComment,
    NewTicket, PortError, PortResult, PostedComment, ThreadMap, ThreadRecord, TicketSink,
    WriterPorts,
};
use rusqlite::OptionalExtension;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot use state directory {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("another rootmail run is using the state directory {0}; wait for it to finish")]
    Locked(String),
    #[error("corrupt record {path}: {source}")]
    Corrupt {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("no ticket {0} in this state directory")]
    NoSuchTicket(String),
    #[error(
        "state database {0}: SQLite rolled the batch back after an error; nothing of it is kept (run again: its messages are done again)"
    )]
    BatchLost(String),
    #[error("state database {path}: {source}")]
    Db {
        path: String,
        #[source]
        source: DbError,
    },
}

/// A ticket in the embedded ticket system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalTicket {
    pub id: String,
    pub thread_key: ThreadKey,
    pub subject: String,
    pub priority: Priority,
    pub kind: Kind,
    pub account_id: Option<String>,
    pub customer: Option<String>,
    pub created_at: u64,
    pub updated_at: u64,
    pub created_from: ContentHash,
    pub body: String,
    /// What only the provider's engineers see (authentication, the original).
    #[serde(default)]
    pub internal_note: String,
    pub comments: Vec<LocalComment>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalComment {
    pub id: String,
    pub message: ContentHash,
    pub kind: Kind,
    pub priority: Priority,
    pub created_at: u64,
    pub body: String,
    #[serde(default)]
    pub internal_note: String,
}

pub struct LocalStore {
    root: PathBuf,
    /// The directory lock a writer holds for its life (none for a reader).
    _lock: Option<File>,
    db: Mutex<rusqlite::Connection>,
    /// The batch in progress, if any (see [`LocalStore::begin_batch`]).
    batch: Mutex<Option<Batch>>,
    /// SQLite rolled the open batch's transaction back (an I/O error, a full
    /// disk): every statement is refused until the batch ends, since each
    /// would commit on its own, outside the batch.
    batch_lost: std::sync::atomic::AtomicBool,
    /// A batch's transaction is open (set once its BEGIN succeeded).
    in_batch: std::sync::atomic::AtomicBool,
    /// Claims this run made and has not ended. Any other claim in the ledger
    /// belongs to a run that has ended (the lock admits one run at a time), so
    /// it is taken over at once.
    own_claims: Mutex<HashSet<ContentHash>>,
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStore")
            .field("root", &self.root)
            .finish()
    }
}

/// What a comment reads and changes of its ticket: its priority, when it
/// was last updated and its last comment's number, without the body.
#[derive(Clone)]
struct TicketHead {
    number: i64,
    id: String,
    priority: Priority,
    updated_at: i64,
    last_comment: i64,
    /// The priority or the time differ from the ticket's row.
    changed: bool,
}

/// What the open batch holds until it commits: the originals archived and
/// not yet synced, and the ledger rows, thread records and ticket heads
/// written. A message's ledger row is written three times (claimed, triaged,
/// ticket written), and a busy thread's record and ticket once per mail; each
/// reaches its table once, when the batch commits (nothing in a batch is
/// visible before that).
#[derive(Default)]
struct Batch {
    unsynced: Vec<PathBuf>,
    ledger: HashMap<ContentHash, LedgerRow>,
    threads: HashMap<String, ThreadRecord>,
    tickets: HashMap<i64, TicketHead>,
}

/// A database failure, named by the state directory's database file (the
/// name is made only when there is a failure: `sql` runs per statement).
fn db_error(root: &Path) -> impl Fn(DbError) -> StoreError + '_ {
    move |source| StoreError::Db {
        path: root.join(db::FILE).display().to_string(),
        source,
    }
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

const DIRS: [&str; 8] = [
    "archive",
    "lifecycle/rotations",
    "lifecycle/audit",
    "lifecycle/accounts",
    "lifecycle/vault",
    "lifecycle/notices",
    "simulated-aws/accounts",
    "simulated-aws/mail",
];

impl LocalStore {
    /// What the ticket writer needs, with this store as its ledger, thread
    /// map and mail archive and `sink` as the ticketing system.
    pub fn writer_ports<'a, S>(&'a self, sink: &'a S) -> WriterPorts<'a, Self, Self, S, Self> {
        WriterPorts {
            ledger: self,
            threads: self,
            sink,
            mail: self,
        }
    }

    /// The state directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Opens (creating if needed) the state directory and takes its lock.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        let io = |source| StoreError::Io {
            path: root.display().to_string(),
            source,
        };
        for dir in DIRS {
            fs::create_dir_all(root.join(dir)).map_err(io)?;
        }
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(root.join("lock"))
            .map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked(root.display().to_string()));
            }
            Err(fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let (db, import_pending) = db::open(root).map_err(db_error(root))?;
        let store = Self::on(root, Some(lock), db);
        if import_pending {
            crate::legacy::import(&store)?;
        }
        Ok(store)
    }

    /// Opens an existing state directory to read it, beside a run that may
    /// be writing it: no lock, no directory or schema made, the database
    /// read-only (WAL lets readers see the last committed batch while a run
    /// goes on). `rootmail status` and `tickets` read a backfill's progress
    /// this way; opened as a writer they failed on its lock.
    pub fn open_reader(root: &Path) -> Result<Self, StoreError> {
        let path = root.join(db::FILE);
        if !path.is_file() {
            return Err(StoreError::Io {
                path: path.display().to_string(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
            | rusqlite::OpenFlags::SQLITE_OPEN_URI;
        let db = rusqlite::Connection::open_with_flags(&path, flags)
            .and_then(|db| {
                db.busy_timeout(std::time::Duration::from_secs(5))
                    .map(|()| db)
            })
            .map_err(|e| db_error(root)(DbError::Sql(e)))?;
        Ok(Self::on(root, None, db))
    }

    /// A state directory opened to read: beside a run that may be writing it
    /// ([`Self::open_reader`]) when its database exists; else as a writer,
    /// which makes it (and imports an older directory's records), so that a
    /// new directory reads as empty. `accounts list`, `audit` and `rotation
    /// status` open the state this way.
    pub fn open_to_read(root: &Path) -> Result<Self, StoreError> {
        match root.join(db::FILE).is_file() {
            true => Self::open_reader(root),
            false => Self::open(root),
        }
    }

    /// The store over `db`, holding `lock` (a writer) or none (a reader).
    fn on(root: &Path, lock: Option<File>, db: rusqlite::Connection) -> Self {
        Self {
            root: root.to_path_buf(),
            _lock: lock,
            db: Mutex::new(db),
            batch: Mutex::default(),
            own_claims: Mutex::default(),
            batch_lost: Default::default(),
            in_batch: Default::default(),
        }
    }

    fn batch_lost_error(&self) -> StoreError {
        StoreError::BatchLost(self.root.join(db::FILE).display().to_string())
    }

    /// Runs `work` on the database connection.
    pub(crate) fn sql<T>(
        &self,
        work: impl FnOnce(&rusqlite::Connection) -> Result<T, DbError>,
    ) -> Result<T, StoreError> {
        use std::sync::atomic::Ordering;
        if self.batch_lost.load(Ordering::SeqCst) {
            return Err(self.batch_lost_error());
        }
        let db = locked(&self.db);
        let done = work(&db);
        // After some errors (I/O, a full disk) SQLite rolls the whole
        // transaction back and says so only by leaving it: the batch's
        // tickets are gone while its ledger rows wait in memory, and the
        // next statements would commit alone. The batch is lost, and said so.
        if done.is_err() && db.is_autocommit() && self.in_batch.load(Ordering::SeqCst) {
            self.batch_lost.store(true, Ordering::SeqCst);
            return Err(self.batch_lost_error());
        }
        done.map_err(db_error(&self.root))
    }

    /// Starts a batch: until [`Self::commit_batch`], the records written are
    /// one transaction and archived originals are not synced one by one. A
    /// crash in the batch loses its records (the next run does the messages
    /// again, finding their tickets) and never duplicates one.
    pub fn begin_batch(&self) -> Result<(), StoreError> {
        let mut batch = locked(&self.batch);
        if batch.is_none() {
            self.sql(|c| Ok(c.execute_batch("BEGIN IMMEDIATE")?))?;
            self.in_batch
                .store(true, std::sync::atomic::Ordering::SeqCst);
            *batch = Some(Batch::default());
        }
        Ok(())
    }

    /// Writes a message's original into the archive ahead of its ingest, not
    /// synced (a worker thread does this while the messages before it are
    /// ingested). Its ingest, in order, makes it durable with its batch; an
    /// original written ahead whose message was never ingested is only an
    /// extra file, as after a crash.
    pub fn write_ahead(&self, hash: &ContentHash, raw: &[u8]) -> Result<(), StoreError> {
        let path = self.archive_path(hash);
        // Created under its own name (one file-system operation fewer than a
        // temporary file renamed into place, which matters over a backfill);
        // a name already taken, by a copy of the message being written on
        // another core or by a file a crash cut short, takes the careful way.
        match File::create_new(&path).and_then(|mut file| file.write_all(raw)) {
            Ok(()) => Ok(()),
            Err(_) if holds_whole(&path, raw) => Ok(()),
            Err(_) => write_file(&path, raw, false),
        }
    }

    fn archive_path(&self, hash: &ContentHash) -> PathBuf {
        self.root.join("archive").join(format!("{hash}.eml"))
    }

    /// Where the archive keeps a message's original, as its `put` names it.
    pub fn archive_ref(&self, hash: &ContentHash) -> String {
        self.archive_path(hash).display().to_string()
    }

    /// Makes the batch durable: its originals first (one `syncfs` on Linux),
    /// then the transaction (one sync of the write-ahead log).
    pub fn commit_batch(&self) -> Result<(), StoreError> {
        let Some(mut batch) = locked(&self.batch).take() else {
            return Ok(());
        };
        self.in_batch
            .store(false, std::sync::atomic::Ordering::SeqCst);
        if self
            .batch_lost
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(self.batch_lost_error());
        }
        self.write_held_records(&mut batch)?;
        sync_files(&self.root.join("archive"), &batch.unsynced)?;
        self.sql(|c| Ok(c.execute_batch("COMMIT")?))
    }

    /// A copy of what the open batch holds, as `pick` finds it.
    fn held<T: Clone>(&self, pick: impl FnOnce(&Batch) -> Option<&T>) -> Option<T> {
        locked(&self.batch).as_ref().and_then(pick).cloned()
    }

    /// Writes the records the open batch holds into its transaction, before
    /// a read of a whole table (which would not see them otherwise).
    fn write_batch_records(&self) -> Result<(), StoreError> {
        match locked(&self.batch).as_mut() {
            Some(batch) => self.write_held_records(batch),
            None => Ok(()),
        }
    }

    fn write_held_records(&self, batch: &mut Batch) -> Result<(), StoreError> {
        for (_, row) in batch.ledger.drain() {
            self.write_ledger_row(&row)?;
        }
        for (_, record) in batch.threads.drain() {
            self.write_thread(&record)?;
        }
        for (_, head) in batch.tickets.drain() {
            self.write_ticket_head(&head)?;
        }
        Ok(())
    }

    /// Every text the pipeline's tables hold (for searches over all of it).
    pub fn every_text(&self) -> Result<Vec<String>, StoreError> {
        self.write_batch_records()?;
        self.sql(db::every_text)
    }

    /// All tickets with their comments, oldest first.
    pub fn tickets(&self) -> Result<Vec<LocalTicket>, StoreError> {
        self.write_batch_records()?;
        let mut tickets: Vec<LocalTicket> =
            self.sql(|c| db::all(c, "SELECT ticket FROM tickets ORDER BY id", []))?;
        let comments: Vec<(i64, LocalComment)> = self.sql(|c| {
            let mut statement =
                c.prepare("SELECT ticket_id, comment FROM comments ORDER BY ticket_id, n")?;
            let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get::<_, String>(1)?)))?;
            rows.map(|row| {
                let (id, text) = row?;
                Ok((id, serde_json::from_str(&text)?))
            })
            .collect()
        })?;
        let mut by_ticket: std::collections::HashMap<i64, Vec<LocalComment>> =
            std::collections::HashMap::new();
        for (id, comment) in comments {
            by_ticket.entry(id).or_default().push(comment);
        }
        for ticket in &mut tickets {
            let id = ticket.id.parse().unwrap_or(-1);
            ticket.comments = by_ticket.remove(&id).unwrap_or_default();
        }
        Ok(tickets)
    }

    pub fn ticket(&self, id: &str) -> Result<LocalTicket, StoreError> {
        self.write_batch_records()?;
        let (number, mut ticket) = self.ticket_alone(id)?;
        ticket.comments = self.sql(|c| {
            db::all(
                c,
                "SELECT comment FROM comments WHERE ticket_id = ?1 ORDER BY n",
                [number],
            )
        })?;
        Ok(ticket)
    }

    /// The ticket without its comments, with its number.
    fn ticket_alone(&self, id: &str) -> Result<(i64, LocalTicket), StoreError> {
        let number = ticket_number(id)?;
        let ticket =
            self.sql(|c| db::get(c, "SELECT ticket FROM tickets WHERE id = ?1", number))?;
        let missing = || StoreError::NoSuchTicket(id.trim_start_matches('#').to_string());
        Ok((number, ticket.ok_or_else(missing)?))
    }

    /// What a comment needs of its ticket, held by the batch or read without
    /// the ticket's body: a busy thread's ticket is not decoded and encoded
    /// again for each mail.
    fn ticket_head(&self, number: i64) -> Result<Option<TicketHead>, StoreError> {
        if let Some(head) = self.held(|batch| batch.tickets.get(&number)) {
            return Ok(Some(head));
        }
        let head = self.sql(|c| {
            Ok(c.prepare_cached(
                "SELECT json_extract(ticket, '$.id'), json_extract(ticket, '$.priority'),
                        json_extract(ticket, '$.updated_at'),
                        (SELECT n FROM comments WHERE ticket_id = ?1 ORDER BY n DESC LIMIT 1)
                 FROM tickets WHERE id = ?1",
            )?
            .query_row([number], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                ))
            })
            .optional()?)
        })?;
        let Some((id, priority, updated_at, last)) = head else {
            return Ok(None);
        };
        let priority = serde_json::from_value(serde_json::Value::String(priority))
            .map_err(|e| db_error(&self.root)(e.into()))?;
        Ok(Some(TicketHead {
            number,
            id,
            priority,
            updated_at,
            last_comment: last.unwrap_or(0),
            changed: false,
        }))
    }

    /// Keeps `head` for the batch to write, or writes it now outside one.
    fn put_ticket_head(&self, head: TicketHead) -> Result<(), StoreError> {
        if let Some(batch) = locked(&self.batch).as_mut() {
            batch.tickets.insert(head.number, head);
            return Ok(());
        }
        self.write_ticket_head(&head)
    }

    /// The id of the comment `message` made on ticket `number`, if it made one.
    fn comment_of(&self, number: i64, message: &ContentHash) -> Result<Option<String>, StoreError> {
        self.sql(|c| {
            Ok(c.prepare_cached(
                "SELECT json_extract(comment, '$.id') FROM comments
                 WHERE ticket_id = ?1 AND message = ?2",
            )?
            .query_row(rusqlite::params![number, message.as_str()], |r| r.get(0))
            .optional()?)
        })
    }

    /// The head's priority and time of update into the ticket's row, if they
    /// changed (a backfill comments on a thread many times in one second).
    fn write_ticket_head(&self, head: &TicketHead) -> Result<(), StoreError> {
        if !head.changed {
            return Ok(());
        }
        self.sql(|c| {
            c.prepare_cached(
                "UPDATE tickets SET ticket = json_set(ticket, '$.priority', ?2, '$.updated_at', ?3)
                 WHERE id = ?1",
            )?
            .execute(rusqlite::params![
                head.number,
                head.priority.as_str(),
                head.updated_at
            ])?;
            Ok(())
        })
    }

    pub fn ledger_rows(&self) -> Result<Vec<LedgerRow>, StoreError> {
        self.write_batch_records()?;
        self.sql(|c| db::all(c, "SELECT row FROM ledger", []))
    }

    /// The ledger rows claimed at or after `since` (Unix seconds).
    pub fn ledger_rows_since(&self, since: u64) -> Result<Vec<LedgerRow>, StoreError> {
        self.write_batch_records()?;
        let since = i64::try_from(since).unwrap_or(i64::MAX);
        // A claim released after a failed ingest (claimed_at 0, for the next
        // run to take over at once) is unfinished whenever it was made.
        self.sql(|c| {
            db::all(
                c,
                "SELECT row FROM ledger WHERE claimed_at >= ?1
                 OR (status = 'claimed' AND claimed_at = 0)",
                [since],
            )
        })
    }

    fn ledger_row(&self, hash: &ContentHash) -> Result<Option<LedgerRow>, StoreError> {
        if let Some(row) = self.held(|batch| batch.ledger.get(hash)) {
            return Ok(Some(row));
        }
        self.sql(|c| {
            db::get(
                c,
                "SELECT row FROM ledger WHERE content_hash = ?1",
                hash.as_str(),
            )
        })
    }

    /// Writes `row`, or holds it in the open batch (see [`Batch`]).
    pub(crate) fn put_ledger_row(&self, row: &LedgerRow) -> Result<(), StoreError> {
        if let Some(batch) = locked(&self.batch).as_mut() {
            batch.ledger.insert(row.content_hash.clone(), row.clone());
            return Ok(());
        }
        self.write_ledger_row(row)
    }

    fn write_ledger_row(&self, row: &LedgerRow) -> Result<(), StoreError> {
        self.sql(|c| {
            db::put(
                c,
                "INSERT INTO ledger (content_hash, row) VALUES (?1, ?2)
                 ON CONFLICT (content_hash) DO UPDATE SET row = excluded.row",
                row.content_hash.as_str(),
                row,
            )
        })
    }

    /// Marks the older layout's import done (in the open batch's transaction
    /// when there is one).
    pub(crate) fn mark_legacy_imported(&self) -> Result<(), StoreError> {
        self.sql(|c| {
            c.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, 'done')",
                rusqlite::params![db::LEGACY_IMPORTED],
            )?;
            Ok(())
        })
    }

    /// Writes `record`, or holds it in the open batch (see [`Batch`]).
    pub(crate) fn put_thread(&self, record: &ThreadRecord) -> Result<(), StoreError> {
        if let Some(batch) = locked(&self.batch).as_mut() {
            let key = record.thread_key.as_str().to_string();
            batch.threads.insert(key, record.clone());
            return Ok(());
        }
        self.write_thread(record)
    }

    fn thread(&self, key: &ThreadKey) -> Result<Option<ThreadRecord>, StoreError> {
        if let Some(record) = self.held(|batch| batch.threads.get(key.as_str())) {
            return Ok(Some(record));
        }
        self.sql(|c| {
            db::get(
                c,
                "SELECT record FROM threads WHERE thread_key = ?1",
                key.as_str(),
            )
        })
    }

    fn write_thread(&self, record: &ThreadRecord) -> Result<(), StoreError> {
        self.sql(|c| {
            db::put(
                c,
                "INSERT INTO threads (thread_key, record) VALUES (?1, ?2)
                 ON CONFLICT (thread_key) DO UPDATE SET record = excluded.record",
                record.thread_key.as_str(),
                record,
            )
        })
    }

    pub(crate) fn put_message_thread(
        &self,
        message_id: &str,
        key: &ThreadKey,
    ) -> Result<(), StoreError> {
        self.sql(|c| {
            // The first thread a Message-ID was seen in stays its thread.
            c.prepare_cached(
                "INSERT INTO messages (message_id, thread_key) VALUES (?1, ?2)
                 ON CONFLICT (message_id) DO NOTHING",
            )?
            .execute(rusqlite::params![message_id, key.as_str()])?;
            Ok(())
        })
    }

    /// The ticket's row (its comments are rows of their own: [`Self::put_comment`]).
    pub(crate) fn put_ticket(&self, ticket: &LocalTicket) -> Result<(), StoreError> {
        let id = ticket_number(&ticket.id)?;
        let alone = LocalTicket {
            comments: Vec::new(),
            ..ticket.clone()
        };
        self.sql(|c| {
            let json = serde_json::to_string(&alone)?;
            c.prepare_cached(
                "INSERT INTO tickets (id, thread_key, ticket) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET ticket = excluded.ticket",
            )?
            .execute(rusqlite::params![id, ticket.thread_key.as_str(), json])?;
            Ok(())
        })
    }

    /// Comment number `n` (from 1) of ticket `id`.
    pub(crate) fn put_comment(
        &self,
        id: &str,
        n: usize,
        comment: &LocalComment,
    ) -> Result<(), StoreError> {
        let id = ticket_number(id)?;
        self.sql(|c| {
            let json = serde_json::to_string(comment)?;
            c.prepare_cached(
                "INSERT INTO comments (ticket_id, n, message, comment) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (ticket_id, n) DO UPDATE SET comment = excluded.comment",
            )?
            .execute(rusqlite::params![
                id,
                n as i64,
                comment.message.as_str(),
                json
            ])?;
            Ok(())
        })
    }

    pub(crate) fn keyed_path(&self, dir: &str, key: &str) -> PathBuf {
        let hash = ContentHash::of(key.as_bytes());
        self.root
            .join(dir)
            .join(format!("{}.json", &hash.as_str()[..32]))
    }

    pub(crate) fn read<T: for<'de> Deserialize<'de>>(
        &self,
        path: &Path,
    ) -> Result<Option<T>, StoreError> {
        match fs::read(path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|source| StoreError::Corrupt {
                        path: path.display().to_string(),
                        source,
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    pub(crate) fn read_all<T: for<'de> Deserialize<'de>>(
        &self,
        dir: &str,
    ) -> Result<Vec<T>, StoreError> {
        let dir = self.root.join(dir);
        let entries = fs::read_dir(&dir).map_err(|source| StoreError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let mut out = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|source| StoreError::Io {
                    path: dir.display().to_string(),
                    source,
                })?
                .path();
            if path.extension().is_some_and(|e| e == "json") {
                out.extend(self.read(&path)?);
            }
        }
        Ok(out)
    }

    pub(crate) fn write<T: Serialize>(&self, path: &Path, value: &T) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(value).expect("store records always serialize");
        write_atomically(path, &bytes)
    }
}

pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    write_file(path, bytes, true)
}

/// Whether the archived original at `path` is there whole (a crash before a
/// sync can leave a short file under the final name).
fn holds_whole(path: &Path, raw: &[u8]) -> bool {
    fs::metadata(path).is_ok_and(|m| m.len() == raw.len() as u64)
}

fn sync_file(path: &Path) -> Result<(), StoreError> {
    File::open(path)
        .and_then(|f| f.sync_data())
        .map_err(|source| StoreError::Io {
            path: path.display().to_string(),
            source,
        })
}

/// A temporary file renamed into place; synced first, and the rename synced
/// with its directory, unless `sync` is false (a batch syncs its files
/// together when it commits). Without the directory's sync a crash may undo
/// the rename (fsync(2): the file's sync does not cover its directory
/// entry), leaving the record before this write.
fn write_file(path: &Path, bytes: &[u8], sync: bool) -> Result<(), StoreError> {
    // A name of its own per write: two threads may write the same original
    // (a message and its copy) at once.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let io = |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    };
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp-{}-{n}", std::process::id()));
    let mut file = File::create(&tmp).map_err(io)?;
    if let Err(e) = file.write_all(bytes).and_then(|()| match sync {
        true => file.sync_data(),
        false => Ok(()),
    }) {
        // A full disk would otherwise leave the partial copy behind.
        let _ = fs::remove_file(&tmp);
        return Err(io(e));
    }
    fs::rename(&tmp, path).map_err(io)?;
    match (sync, path.parent()) {
        (true, Some(dir)) => File::open(dir).and_then(|d| d.sync_all()).map_err(io),
        _ => Ok(()),
    }
}

/// The batch's files on disk: one `syncfs` of their file system on Linux,
/// else each file synced.
fn sync_files(dir: &Path, files: &[PathBuf]) -> Result<(), StoreError> {
    if files.is_empty() {
        return Ok(());
    }
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| StoreError::Io { path, source }
    };
    #[cfg(target_os = "linux")]
    {
        let _ = files;
        let handle = File::open(dir).map_err(io(dir))?;
        rustix::fs::syncfs(&handle).map_err(|e| io(dir)(e.into()))
    }
    #[cfg(not(target_os = "linux"))]
    {
        for file in files {
            File::open(file)
                .and_then(|f| f.sync_data())
                .map_err(io(file))?;
        }
        File::open(dir)
            .and_then(|d| d.sync_all())
            .or(Ok(()))
            .map_err(io(dir))
    }
}

/// A local ticket's number from its id (`42` or `#42`), as the tables key it.
fn ticket_number(id: &str) -> Result<i64, StoreError> {
    let digits = id.trim_start_matches('#');
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(StoreError::NoSuchTicket(digits.to_string()));
    }
    digits
        .parse()
        .map_err(|_| StoreError::NoSuchTicket(digits.to_string()))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Local disk errors are not worth retrying in the same run: report them.
fn port(port: &'static str) -> impl Fn(StoreError) -> PortError {
    move |e| PortError::permanent(port, e.to_string())
}

impl MailArchive for LocalStore {
    async fn put(&self, hash: &ContentHash, raw: &[u8]) -> PortResult<String> {
        let path = self.archive_path(hash);
        let mut batch = locked(&self.batch);
        if holds_whole(&path, raw) {
            // Written ahead, or by a run that stopped before its batch was
            // synced: made durable with this message's batch all the same.
            if batch.is_none() {
                sync_file(&path).map_err(port("archive"))?;
            }
        } else {
            write_file(&path, raw, batch.is_none()).map_err(port("archive"))?;
        }
        if let Some(batch) = batch.as_mut() {
            batch.unsynced.push(path);
        }
        Ok(self.archive_ref(hash))
    }
}

/// `start_sending` keeps the port's default (`false`: the backend searches):
/// `rootmail run` writes in batches, so a row and its mark would reach the
/// disk only when the batch commits, after the writer's requests, and a crash
/// in between would leave a row that says nothing was sent.
impl Ledger for LocalStore {
    async fn claim(
        &self,
        hash: &ContentHash,
        source: &str,
        now: u64,
        stale_after_secs: u64,
    ) -> PortResult<Claim> {
        let existing = self.ledger_row(hash).map_err(port("ledger"))?;
        let mut own = locked(&self.own_claims);
        let row = match existing {
            Some(row) if row.status != LedgerStatus::Claimed => return Ok(Claim::Seen(row)),
            Some(row)
                if own.contains(hash) && now.saturating_sub(row.claimed_at) < stale_after_secs =>
            {
                return Ok(Claim::Busy);
            }
            Some(mut stale) => {
                stale.claimed_at = now;
                stale
            }
            None => LedgerRow::claimed(hash, source, now),
        };
        self.put_ledger_row(&row).map_err(port("ledger"))?;
        own.insert(hash.clone());
        Ok(Claim::Owned(row))
    }

    async fn record(&self, row: &LedgerRow) -> PortResult<()> {
        self.put_ledger_row(row).map_err(port("ledger"))?;
        // The claim is over: the set holds only messages in flight, not one
        // hash for every message of a backfill of millions.
        if row.status != LedgerStatus::Claimed {
            locked(&self.own_claims).remove(&row.content_hash);
        }
        Ok(())
    }

    async fn get(&self, hash: &ContentHash) -> PortResult<Option<LedgerRow>> {
        self.ledger_row(hash).map_err(port("ledger"))
    }
}

impl ThreadMap for LocalStore {
    async fn ticket_of(&self, key: &ThreadKey) -> PortResult<Option<ThreadRecord>> {
        self.thread(key).map_err(port("threads"))
    }

    async fn save(&self, record: &ThreadRecord) -> PortResult<()> {
        self.put_thread(record).map_err(port("threads"))
    }

    async fn thread_of_message(&self, message_id: &str) -> PortResult<Option<ThreadKey>> {
        let found: Option<String> = self
            .sql(|c| {
                Ok(
                    c.prepare_cached("SELECT thread_key FROM messages WHERE message_id = ?1")?
                        .query_row([message_id], |r| r.get(0))
                        .optional()?,
                )
            })
            .map_err(port("threads"))?;
        found
            .map(|key| serde_json::from_value(serde_json::Value::String(key)))
            .transpose()
            .map_err(|e| {
                PortError::permanent(
                    "threads",
                    format!("a stored thread key does not read back: {e}"),
                )
            })
    }

    async fn remember_message(&self, message_id: &str, key: &ThreadKey) -> PortResult<()> {
        self.put_message_thread(message_id, key)
            .map_err(port("threads"))
    }
}

impl MailSource for LocalStore {
    async fn raw(&self, archive_ref: &str) -> PortResult<Option<Vec<u8>>> {
        // Only originals this store archived: a reference is a path under it.
        let path = Path::new(archive_ref);
        if !path.starts_with(self.root.join("archive")) {
            return Ok(None);
        }
        match std::fs::read(path) {
            Ok(raw) => Ok(Some(raw)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(PortError::permanent(
                "archive",
                format!("reading {archive_ref}: {e}"),
            )),
        }
    }
}

impl TicketSink for LocalStore {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn find(&self, key: &ThreadKey) -> PortResult<Option<FoundTicket>> {
        // The ticket system's own index by thread key (like a search by external id),
        // independent of the pipeline's thread map.
        let ticket: Option<LocalTicket> = self
            .sql(|c| {
                db::get(
                    c,
                    "SELECT ticket FROM tickets WHERE thread_key = ?1",
                    key.as_str(),
                )
            })
            .map_err(port("tickets"))?;
        Ok(ticket.map(|t| FoundTicket {
            id: t.id,
            created_from: t.created_from,
        }))
    }

    async fn create(&self, ticket: &NewTicket) -> PortResult<String> {
        // Idempotent per thread, like a backend with idempotency keys.
        if let Some(found) = self.find(&ticket.thread_key).await? {
            return Ok(found.id);
        }
        let number = self
            .sql(|c| {
                Ok(
                    c.prepare_cached("SELECT COALESCE(MAX(id), 0) + 1 FROM tickets")?
                        .query_row([], |r| r.get::<_, i64>(0))?,
                )
            })
            .map_err(port("tickets"))?;
        let id = number.to_string();
        let at = now();
        let record = LocalTicket {
            id: id.clone(),
            thread_key: ticket.thread_key.clone(),
            subject: ticket.subject.clone(),
            priority: ticket.priority,
            kind: ticket.kind,
            account_id: ticket.account_id.clone(),
            customer: ticket.customer.clone(),
            created_at: at,
            updated_at: at,
            created_from: ticket.message.clone(),
            body: ticket.body.clone(),
            internal_note: ticket.internal_note.clone(),
            comments: Vec::new(),
        };
        self.put_ticket(&record).map_err(port("tickets"))?;
        self.put_ticket_head(TicketHead {
            number,
            id: id.clone(),
            priority: record.priority,
            updated_at: i64::try_from(at).unwrap_or(i64::MAX),
            last_comment: 0,
            changed: false,
        })
        .map_err(port("tickets"))?;
        Ok(id)
    }

    async fn comment(&self, ticket_id: &str, comment: &NewComment) -> PortResult<PostedComment> {
        let number = ticket_number(ticket_id).map_err(port("tickets"))?;
        let head = self.ticket_head(number).map_err(port("tickets"))?;
        let Some(mut head) = head else {
            let missing = ticket_id.trim_start_matches('#').to_string();
            return Err(port("tickets")(StoreError::NoSuchTicket(missing)));
        };
        let posted_before = self.comment_of(number, &comment.message);
        if let Some(existing) = posted_before.map_err(port("tickets"))? {
            return Ok(PostedComment::on(ticket_id, existing));
        }
        let n = usize::try_from(head.last_comment).unwrap_or(0) + 1;
        let id = format!("{}-{n}", head.id);
        let at = now();
        let posted = LocalComment {
            id: id.clone(),
            message: comment.message.clone(),
            kind: comment.kind,
            priority: comment.priority,
            created_at: at,
            body: comment.body.clone(),
            internal_note: comment.internal_note.clone(),
        };
        self.put_comment(&head.id, n, &posted)
            .map_err(port("tickets"))?;
        // A more urgent mail in the thread raises the ticket's priority.
        let (priority, at) = (
            head.priority.max(comment.priority),
            i64::try_from(at).unwrap_or(i64::MAX),
        );
        head.changed |= priority != head.priority || at != head.updated_at;
        (head.priority, head.updated_at) = (priority, at);
        head.last_comment = i64::try_from(n).unwrap_or(i64::MAX);
        self.put_ticket_head(head).map_err(port("tickets"))?;
        Ok(PostedComment::on(ticket_id, id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pollster::block_on;

    #[test]
    fn an_original_cut_short_is_written_again_and_one_written_ahead_syncs_with_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let raw = b"From: a@example.com\r\nSubject: x\r\n\r\nbody\r\n";
        let hash = ContentHash::of(raw);
        let path = store.archive_path(&hash);
        let whole = || std::fs::read(&path).unwrap() == raw;

        // A crash before a sync can leave a short file under the final name.
        std::fs::write(&path, &raw[..7]).unwrap();
        store.write_ahead(&hash, raw).unwrap();
        assert!(whole(), "write_ahead replaces a short original");
        std::fs::write(&path, b"").unwrap();
        store.begin_batch().unwrap();
        block_on(store.put(&hash, raw)).unwrap();
        assert!(whole(), "put replaces an empty original");

        // Whole already (written ahead): put writes nothing, but the batch
        // still syncs it before its rows commit.
        store.commit_batch().unwrap();
        store.write_ahead(&hash, raw).unwrap();
        store.begin_batch().unwrap();
        block_on(store.put(&hash, raw)).unwrap();
        let listed = locked(&store.batch).as_ref().map(|b| b.unsynced.clone());
        assert_eq!(listed, Some(vec![path.clone()]));
        store.commit_batch().unwrap();
        assert!(whole());
    }

    /// A run's own claims are the messages in flight: a backfill of
    /// millions does not keep a hash for each.
    #[test]
    fn a_claim_recorded_as_ended_is_no_longer_held() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        for n in 0..3 {
            let claimed = row(n);
            let hash = &claimed.content_hash;
            let owned = block_on(store.claim(hash, &claimed.source, 1_790_000_000, 180));
            assert!(matches!(owned, Ok(Claim::Owned(_))), "{owned:?}");
            let done = LedgerRow {
                status: LedgerStatus::Done,
                ..claimed
            };
            block_on(store.record(&done)).unwrap();
        }
        assert!(locked(&store.own_claims).is_empty());
        let again = row(1);
        let seen = block_on(store.claim(&again.content_hash, &again.source, 1_790_000_001, 180));
        assert!(matches!(seen, Ok(Claim::Seen(_))), "{seen:?}");
    }

    fn sources_of(rows: Vec<LedgerRow>) -> Vec<String> {
        rows.into_iter().map(|r| r.source).collect()
    }

    fn row(n: u8) -> LedgerRow {
        LedgerRow::claimed(
            &ContentHash::of(&[n]),
            &format!("mail-{n}.eml"),
            1_790_000_000,
        )
    }

    #[test]
    fn a_batch_that_never_commits_leaves_nothing_and_a_committed_one_stays() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        store.begin_batch().unwrap();
        block_on(store.record(&row(1))).unwrap();
        block_on(store.put(&ContentHash::of(&[1]), b"Subject: one\r\n\r\n1")).unwrap();
        store.commit_batch().unwrap();
        store.begin_batch().unwrap();
        block_on(store.record(&row(2))).unwrap();
        // The process ends here (a crash): the open batch is not committed.
        drop(store);

        let store = LocalStore::open(dir.path()).unwrap();
        let sources = sources_of(store.ledger_rows().unwrap());
        assert_eq!(sources, ["mail-1.eml"]);
        assert_eq!(store.ledger_rows_since(1_790_000_000).unwrap().len(), 1);
        assert!(store.ledger_rows_since(1_790_000_001).unwrap().is_empty());
    }

    /// SQLite rolls a whole transaction back on some errors (I/O, a full
    /// disk) and says so only by leaving it. The batch's tickets were gone
    /// while its ledger rows, held in memory, were then committed one by one
    /// with the later statements: messages marked done with no ticket, and
    /// ticket numbers used twice. Now the batch is lost whole, and said so.
    #[test]
    fn a_batch_sqlite_rolled_back_is_lost_whole_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        store.begin_batch().unwrap();
        block_on(store.record(&row(1))).unwrap();
        let failed = store.sql(|c| -> Result<(), DbError> {
            c.execute_batch("ROLLBACK")?;
            Err(DbError::Sql(rusqlite::Error::QueryReturnedNoRows))
        });
        assert!(
            matches!(failed, Err(StoreError::BatchLost(_))),
            "{failed:?}"
        );
        // A statement now would commit on its own, outside the batch: refused.
        let alone = store.sql(|c| Ok(c.execute_batch("SELECT 1")?));
        assert!(matches!(alone, Err(StoreError::BatchLost(_))), "{alone:?}");
        block_on(store.record(&row(2))).unwrap();
        let committed = store.commit_batch();
        assert!(
            matches!(committed, Err(StoreError::BatchLost(_))),
            "{committed:?}"
        );
        assert!(store.ledger_rows().unwrap().is_empty(), "none of the batch");

        store.begin_batch().unwrap();
        block_on(store.record(&row(3))).unwrap();
        store.commit_batch().unwrap();
        let sources = sources_of(store.ledger_rows().unwrap());
        assert_eq!(sources, ["mail-3.eml"]);
    }

    /// An ingest that failed lets go of its claim (claimed_at 0) so the
    /// next run takes the message over at once: such a row is in every
    /// window, so `rootmail status` lists it (it was in none).
    #[test]
    fn a_claim_released_after_a_failure_is_in_every_window() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let mut released = row(1);
        released.status = LedgerStatus::Claimed;
        released.claimed_at = 0;
        block_on(store.record(&released)).unwrap();
        block_on(store.record(&row(2))).unwrap();
        let sources = sources_of(store.ledger_rows_since(1_790_000_000).unwrap());
        assert_eq!(sources.len(), 2, "{sources:?}");
        assert!(sources.contains(&"mail-1.eml".to_string()));
    }

    /// A reader opens the state while a run holds it (a backfill going on)
    /// and sees its committed rows; a second writer is refused.
    #[test]
    fn a_reader_sees_a_running_writers_state_without_its_lock() {
        let dir = tempfile::tempdir().unwrap();
        let writer = LocalStore::open(dir.path()).unwrap();
        block_on(writer.record(&row(1))).unwrap();
        assert!(matches!(
            LocalStore::open(dir.path()),
            Err(StoreError::Locked(_))
        ));
        let reader = LocalStore::open_reader(dir.path()).unwrap();
        assert_eq!(reader.ledger_rows_since(0).unwrap().len(), 1);
        assert!(reader.tickets().unwrap().is_empty());
        let nowhere = dir.path().join("missing");
        assert!(LocalStore::open_reader(&nowhere).is_err());
        assert!(!nowhere.exists(), "a reader makes nothing");
    }

    #[test]
    fn records_held_in_a_batch_read_back_in_it_and_reach_the_tables_when_it_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let hash = ContentHash::of(&[1]);
        let thread = ThreadRecord {
            thread_key: ThreadKey::message("one@example.com"),
            ticket_id: "1".into(),
            backend: "local".into(),
            created_from: hash.clone(),
            messages: 1,
            last_activity: 1_790_000_000,
        };
        let table_rows = |store: &LocalStore| -> i64 {
            store
                .sql(|c| Ok(c.query_row("SELECT count(*) FROM ledger", [], |r| r.get(0))?))
                .unwrap()
        };

        store.begin_batch().unwrap();
        let claim = block_on(store.claim(&hash, "mail-1.eml", 1_790_000_000, 60)).unwrap();
        assert!(matches!(claim, Claim::Owned(_)));
        let mut done = row(1);
        done.status = LedgerStatus::Done;
        block_on(store.record(&done)).unwrap();
        block_on(store.save(&thread)).unwrap();
        assert_eq!(table_rows(&store), 0, "held until the batch commits");
        let again = block_on(store.claim(&hash, "mail-1.eml", 1_790_000_001, 60)).unwrap();
        assert!(matches!(again, Claim::Seen(seen) if seen == done));
        let key = &thread.thread_key;
        assert_eq!(
            block_on(store.ticket_of(key)).unwrap(),
            Some(thread.clone())
        );
        // A read of the whole table sees the batch's rows too.
        assert_eq!(store.ledger_rows().unwrap(), std::slice::from_ref(&done));
        store.commit_batch().unwrap();
        drop(store);

        let store = LocalStore::open(dir.path()).unwrap();
        assert_eq!(table_rows(&store), 1);
        assert_eq!(block_on(store.get(&hash)).unwrap(), Some(done));
        assert_eq!(block_on(store.ticket_of(key)).unwrap(), Some(thread));
    }

    #[test]
    fn comments_in_a_batch_raise_and_number_the_ticket_as_outside_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let ticket = NewTicket {
            thread_key: ThreadKey::message("t@example.com"),
            idempotency_key: "k".into(),
            subject: "Budget".into(),
            body: "b".into(),
            priority: Priority::Normal,
            kind: Kind::BudgetAlert,
            account_id: None,
            customer: None,
            message: ContentHash::of(b"first"),
            internal_note: String::new(),
            attachments: Vec::new(),
            found_absent: true,
        };
        let comment = |text: &str, priority| NewComment {
            message: ContentHash::of(text.as_bytes()),
            body: text.into(),
            priority,
            kind: Kind::BudgetAlert,
            internal_note: String::new(),
            attachments: Vec::new(),
            first_send: None,
        };
        let (calm, urgent) = (
            comment("calm", Priority::Low),
            comment("urgent", Priority::Urgent),
        );

        // A batch that never commits leaves no ticket behind.
        store.begin_batch().unwrap();
        let id = block_on(store.create(&ticket)).unwrap();
        block_on(store.comment(&id, &urgent)).unwrap();
        drop(store);
        let store = LocalStore::open(dir.path()).unwrap();
        assert!(store.tickets().unwrap().is_empty());

        store.begin_batch().unwrap();
        let id = block_on(store.create(&ticket)).unwrap();
        let posted = [&urgent, &calm, &urgent].map(|c| block_on(store.comment(&id, c)).unwrap());
        assert_eq!(
            posted.map(|p| p.comment_id),
            ["1-1", "1-2", "1-1"].map(String::from)
        );
        store.commit_batch().unwrap();
        drop(store);

        let store = LocalStore::open(dir.path()).unwrap();
        let shown = store.ticket(&id).unwrap();
        assert_eq!(shown.priority, Priority::Urgent, "raised, never lowered");
        assert_eq!(shown.comments.len(), 2);
        // The next comment, outside a batch, takes the next number.
        let next = block_on(store.comment(&id, &comment("next", Priority::Low))).unwrap();
        assert_eq!(next.comment_id, "1-3");
    }

    #[test]
    fn an_older_state_directory_is_imported_once() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["ledger", "tickets"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let old = row(7);
        std::fs::write(
            dir.path().join(format!("ledger/{}.json", old.content_hash)),
            serde_json::to_vec(&old).unwrap(),
        )
        .unwrap();
        let ticket = LocalTicket {
            id: "4".into(),
            thread_key: ThreadKey::message("old@example.com"),
            subject: "Before the database".into(),
            priority: Priority::Normal,
            kind: Kind::BudgetAlert,
            account_id: None,
            customer: None,
            created_at: 1,
            updated_at: 1,
            created_from: old.content_hash.clone(),
            body: "body".into(),
            internal_note: String::new(),
            comments: vec![LocalComment {
                id: "4-1".into(),
                message: ContentHash::of(b"second"),
                kind: Kind::BudgetAlert,
                priority: Priority::High,
                created_at: 2,
                body: "a later mail".into(),
                internal_note: String::new(),
            }],
        };
        std::fs::write(
            dir.path().join("tickets/4.json"),
            serde_json::to_vec(&ticket).unwrap(),
        )
        .unwrap();

        let store = LocalStore::open(dir.path()).unwrap();
        assert_eq!(store.ledger_rows().unwrap(), std::slice::from_ref(&old));
        assert_eq!(store.ticket("4").unwrap(), ticket);
        let found = block_on(store.find(&ticket.thread_key)).unwrap().unwrap();
        assert_eq!(found.id, "4");
        // A new ticket takes the next number.
        let mut next = ticket.clone();
        next.thread_key = ThreadKey::message("new@example.com");
        let new = NewTicket {
            thread_key: next.thread_key.clone(),
            idempotency_key: "k".into(),
            subject: "After".into(),
            body: "b".into(),
            priority: Priority::Normal,
            kind: Kind::BudgetAlert,
            account_id: None,
            customer: None,
            message: ContentHash::of(b"new"),
            internal_note: String::new(),
            attachments: Vec::new(),
            found_absent: true,
        };
        assert_eq!(block_on(store.create(&new)).unwrap(), "5");
        // The imported comment is comment 1; the next one on that ticket is 2,
        // and the same mail again is the same comment.
        let later = NewComment {
            message: ContentHash::of(b"third"),
            body: "third".into(),
            priority: Priority::Urgent,
            kind: Kind::BudgetAlert,
            internal_note: String::new(),
            attachments: Vec::new(),
            first_send: None,
        };
        let posted = block_on(store.comment("4", &later)).unwrap();
        assert_eq!(posted, PostedComment::on("4", "4-2"));
        assert_eq!(block_on(store.comment("4", &later)).unwrap(), posted);
        let shown = store.ticket("4").unwrap();
        assert_eq!(shown.comments.len(), 2);
        assert_eq!(
            shown.priority,
            Priority::Urgent,
            "raised by the urgent mail"
        );
        drop(store);
        // Opened again: the database exists, nothing is imported twice.
        let store = LocalStore::open(dir.path()).unwrap();
        assert_eq!(store.tickets().unwrap().len(), 2);
        assert_eq!(store.ticket("4").unwrap().comments.len(), 2);
    }

    /// An import that fails (a corrupt record file) leaves nothing behind, and
    /// the run after the operator mended the file imports it all: the
    /// database file existing is not the sign of an import done.
    #[test]
    fn a_failed_import_of_an_older_state_directory_is_tried_again() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("ledger")).unwrap();
        let old = row(7);
        let good = dir.path().join(format!("ledger/{}.json", old.content_hash));
        std::fs::write(&good, serde_json::to_vec(&old).unwrap()).unwrap();
        let corrupt = dir.path().join("ledger/broken.json");
        std::fs::write(&corrupt, b"{\"content_hash\": ").unwrap();

        let failed = LocalStore::open(dir.path());
        assert!(failed.is_err(), "a corrupt record stops the import");
        drop(failed);
        std::fs::remove_file(&corrupt).unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        assert_eq!(store.ledger_rows().unwrap(), std::slice::from_ref(&old));
    }
}
