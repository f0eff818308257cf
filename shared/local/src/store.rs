//! The embedded store: every port of the pipeline as files under one state
//! directory, readable with `cat` and safe to re-run.
//!
//! Layout: `archive/<sha256>.eml`, `ledger/<sha256>.json`, `threads/<key-hash>.json`,
//! `messages/<id-hash>.json` (Message-ID -> thread), `tickets/<n>.json`.
//! Every write goes to a temporary file first and is renamed into place, so a
//! crash never leaves half a record. One run at a time holds the directory's lock.

use rootmail_domain::{ContentHash, Kind, Priority, ThreadKey};
use rootmail_pipeline::{
    Claim, FoundTicket, Ledger, LedgerRow, LedgerStatus, MailArchive, MailSource, NewComment,
    NewTicket, PortError, PortResult, PostedComment, ThreadMap, ThreadRecord, TicketSink,
};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
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

#[derive(Debug)]
pub struct LocalStore {
    root: PathBuf,
    _lock: File,
    /// Claims this run made. Any other claim in the ledger belongs to a run that
    /// has ended (the lock admits one run at a time), so it is taken over at once.
    own_claims: Mutex<HashSet<ContentHash>>,
}

const DIRS: [&str; 13] = [
    "archive",
    "ledger",
    "threads",
    "messages",
    "tickets",
    "tickets/by-thread",
    "lifecycle/rotations",
    "lifecycle/audit",
    "lifecycle/accounts",
    "lifecycle/vault",
    "lifecycle/notices",
    "simulated-aws/accounts",
    "simulated-aws/mail",
];

impl LocalStore {
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
        Ok(Self {
            root: root.to_path_buf(),
            _lock: lock,
            own_claims: Mutex::default(),
        })
    }

    /// All tickets, oldest first.
    pub fn tickets(&self) -> Result<Vec<LocalTicket>, StoreError> {
        let mut tickets: Vec<LocalTicket> = self.read_all("tickets")?;
        tickets.sort_by_key(|t| t.id.parse::<u64>().unwrap_or(u64::MAX));
        Ok(tickets)
    }

    pub fn ticket(&self, id: &str) -> Result<LocalTicket, StoreError> {
        let id = id.trim_start_matches('#');
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(StoreError::NoSuchTicket(id.to_string()));
        }
        self.read(&self.ticket_path(id))?
            .ok_or_else(|| StoreError::NoSuchTicket(id.to_string()))
    }

    pub fn ledger_rows(&self) -> Result<Vec<LedgerRow>, StoreError> {
        self.read_all("ledger")
    }

    fn ticket_path(&self, id: &str) -> PathBuf {
        self.root.join("tickets").join(format!("{id}.json"))
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

    fn next_ticket_id(&self) -> Result<String, StoreError> {
        let path = self.root.join("tickets").join("next-id");
        let next: u64 = match fs::read_to_string(&path) {
            Ok(s) => s.trim().parse().unwrap_or(1),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 1,
            Err(source) => {
                return Err(StoreError::Io {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        write_atomically(&path, (next + 1).to_string().as_bytes())?;
        Ok(next.to_string())
    }
}

pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut file = File::create(&tmp).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_data().map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Local disk errors are not worth retrying in the same run: report them.
fn port(port: &'static str) -> impl Fn(StoreError) -> PortError {
    move |e| PortError::Permanent {
        port,
        message: e.to_string(),
    }
}

impl MailArchive for LocalStore {
    async fn put(&self, hash: &ContentHash, raw: &[u8]) -> PortResult<String> {
        let path = self.root.join("archive").join(format!("{hash}.eml"));
        if !path.exists() {
            write_atomically(&path, raw).map_err(port("archive"))?;
        }
        Ok(path.display().to_string())
    }
}

impl Ledger for LocalStore {
    async fn claim(
        &self,
        hash: &ContentHash,
        source: &str,
        now: u64,
        stale_after_secs: u64,
    ) -> PortResult<Claim> {
        let path = self.root.join("ledger").join(format!("{hash}.json"));
        let existing: Option<LedgerRow> = self.read(&path).map_err(port("ledger"))?;
        let mut own = self
            .own_claims
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
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
        self.write(&path, &row).map_err(port("ledger"))?;
        own.insert(hash.clone());
        Ok(Claim::Owned(row))
    }

    async fn record(&self, row: &LedgerRow) -> PortResult<()> {
        let path = self
            .root
            .join("ledger")
            .join(format!("{}.json", row.content_hash));
        self.write(&path, row).map_err(port("ledger"))
    }

    async fn get(&self, hash: &ContentHash) -> PortResult<Option<LedgerRow>> {
        self.read(&self.root.join("ledger").join(format!("{hash}.json")))
            .map_err(port("ledger"))
    }
}

#[derive(Serialize, Deserialize)]
struct MessageThread {
    message_id: String,
    thread_key: ThreadKey,
}

impl ThreadMap for LocalStore {
    async fn ticket_of(&self, key: &ThreadKey) -> PortResult<Option<ThreadRecord>> {
        self.read(&self.keyed_path("threads", key.as_str()))
            .map_err(port("threads"))
    }

    async fn save(&self, record: &ThreadRecord) -> PortResult<()> {
        self.write(
            &self.keyed_path("threads", record.thread_key.as_str()),
            record,
        )
        .map_err(port("threads"))
    }

    async fn thread_of_message(&self, message_id: &str) -> PortResult<Option<ThreadKey>> {
        let found: Option<MessageThread> = self
            .read(&self.keyed_path("messages", message_id))
            .map_err(port("threads"))?;
        Ok(found.map(|m| m.thread_key))
    }

    async fn remember_message(&self, message_id: &str, key: &ThreadKey) -> PortResult<()> {
        let path = self.keyed_path("messages", message_id);
        // The first thread a Message-ID was seen in stays its thread.
        if path.exists() {
            return Ok(());
        }
        let record = MessageThread {
            message_id: message_id.to_string(),
            thread_key: key.clone(),
        };
        self.write(&path, &record).map_err(port("threads"))
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
            Err(e) => Err(PortError::Permanent {
                port: "archive",
                message: format!("reading {archive_ref}: {e}"),
            }),
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
        let id: Option<String> = self
            .read(&self.keyed_path("tickets/by-thread", key.as_str()))
            .map_err(port("tickets"))?;
        let Some(id) = id else { return Ok(None) };
        let ticket: Option<LocalTicket> =
            self.read(&self.ticket_path(&id)).map_err(port("tickets"))?;
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
        let id = self.next_ticket_id().map_err(port("tickets"))?;
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
        // Index first: a crash before the ticket file leaves an index entry that
        // `find` ignores, never a ticket that `find` cannot see.
        self.write(
            &self.keyed_path("tickets/by-thread", ticket.thread_key.as_str()),
            &id,
        )
        .map_err(port("tickets"))?;
        self.write(&self.ticket_path(&id), &record)
            .map_err(port("tickets"))?;
        Ok(id)
    }

    async fn comment(&self, ticket_id: &str, comment: &NewComment) -> PortResult<PostedComment> {
        let mut ticket = self.ticket(ticket_id).map_err(port("tickets"))?;
        if let Some(existing) = ticket
            .comments
            .iter()
            .find(|c| c.message == comment.message)
        {
            return Ok(PostedComment::on(ticket_id, &existing.id));
        }
        let id = format!("{ticket_id}-{}", ticket.comments.len() + 1);
        let at = now();
        ticket.comments.push(LocalComment {
            id: id.clone(),
            message: comment.message.clone(),
            kind: comment.kind,
            priority: comment.priority,
            created_at: at,
            body: comment.body.clone(),
            internal_note: comment.internal_note.clone(),
        });
        // A more urgent mail in the thread raises the ticket's priority.
        ticket.priority = ticket.priority.max(comment.priority);
        ticket.updated_at = at;
        self.write(&self.ticket_path(ticket_id), &ticket)
            .map_err(port("tickets"))?;
        Ok(PostedComment::on(ticket_id, id))
    }
}
