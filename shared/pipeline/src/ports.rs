//! The capabilities the pipeline needs, one narrow trait each. Local files and AWS
//! services implement them; the pipeline never knows which it has.
//!
//! Methods return `Send` futures so the same traits serve a multi-threaded Lambda
//! runtime and the single-threaded local mode.

use crate::model::{
    Claim, FoundTicket, LedgerRow, NewComment, NewTicket, PostedComment, ThreadRecord, TicketOp,
};
use rootmail_domain::{
    Account, AccountDirectory, AccountId, ContentHash, EmailAddress, Handoff, Kind, ThreadKey,
    UnreadSecret, WaitingRotation,
};
use std::future::Future;

pub use crate::error::{ErrorKind, PortError};

pub type PortResult<T> = Result<T, PortError>;

/// Keeps the raw original of every message (S3 in AWS, files locally).
pub trait MailArchive {
    /// Stores the bytes under their content hash; returns the reference shown in tickets.
    fn put(
        &self,
        hash: &ContentHash,
        raw: &[u8],
    ) -> impl Future<Output = PortResult<String>> + Send;
    /// The original holds a secret (a code, a reset link): keep it where only
    /// ingest reads it, never the ticket writer. Repeating it is harmless.
    /// Nothing to do where one process does everything (locally).
    fn seal(&self, _archive_ref: &str) -> impl Future<Output = PortResult<()>> + Send {
        async { Ok(()) }
    }
}

/// The account directory (a DynamoDB table in AWS, a CSV locally).
pub trait AccountLookup {
    fn by_email(
        &self,
        email: &EmailAddress,
    ) -> impl Future<Output = PortResult<Option<Account>>> + Send;
    fn by_id(&self, id: &AccountId) -> impl Future<Output = PortResult<Option<Account>>> + Send;

    /// The accounts of any of `emails`; adapters with a batch read override this.
    fn by_emails(
        &self,
        emails: &[EmailAddress],
    ) -> impl Future<Output = PortResult<Vec<Account>>> + Send
    where
        Self: Sync,
    {
        async move {
            let mut found = Vec::new();
            for email in emails {
                found.extend(self.by_email(email).await?);
            }
            Ok(found)
        }
    }
}

/// Any in-memory directory is a lookup that cannot fail.
impl<D: AccountDirectory + Sync> AccountLookup for D {
    async fn by_email(&self, email: &EmailAddress) -> PortResult<Option<Account>> {
        Ok(AccountDirectory::by_email(self, email))
    }

    async fn by_id(&self, id: &AccountId) -> PortResult<Option<Account>> {
        Ok(AccountDirectory::by_id(self, id))
    }
}

/// One row per message, claimed before work starts so duplicates are no-ops.
pub trait Ledger {
    /// Claims the message. A claim older than `stale_after_secs` is taken over,
    /// so a run that crashed mid-way is retried.
    fn claim(
        &self,
        hash: &ContentHash,
        source: &str,
        now_secs: u64,
        stale_after_secs: u64,
    ) -> impl Future<Output = PortResult<Claim>> + Send;
    fn record(&self, row: &LedgerRow) -> impl Future<Output = PortResult<()>> + Send;
    fn get(&self, hash: &ContentHash)
    -> impl Future<Output = PortResult<Option<LedgerRow>>> + Send;
    /// Marks a queued message's operation as being sent, before the writer's
    /// first request to the ticketing system. `true` only when this call made
    /// the mark, on a row that said [`Sending::NotYet`](crate::Sending): no
    /// earlier attempt sent anything. The mark must be durable before the
    /// request, and a later triage of the same message must not erase it. A
    /// store that cannot promise both keeps this default: `false`, and the
    /// backend searches.
    fn start_sending(&self, _hash: &ContentHash) -> impl Future<Output = PortResult<bool>> + Send {
        async { Ok(false) }
    }
}

/// Thread key -> ticket, and Message-ID -> thread key (to thread replies).
pub trait ThreadMap {
    fn ticket_of(
        &self,
        key: &ThreadKey,
    ) -> impl Future<Output = PortResult<Option<ThreadRecord>>> + Send;
    fn save(&self, record: &ThreadRecord) -> impl Future<Output = PortResult<()>> + Send;
    fn thread_of_message(
        &self,
        message_id: &str,
    ) -> impl Future<Output = PortResult<Option<ThreadKey>>> + Send;
    fn remember_message(
        &self,
        message_id: &str,
        key: &ThreadKey,
    ) -> impl Future<Output = PortResult<()>> + Send;
}

/// The credential lifecycle, as the mail pipeline sees it: which accounts wait
/// for which secret, and where a verified secret goes.
pub trait Handoffs {
    /// The rotations among `accounts` that wait now, with the address each
    /// waits at.
    fn waiting(
        &self,
        accounts: &[AccountId],
        now: u64,
    ) -> impl Future<Output = PortResult<Vec<WaitingRotation>>> + Send;
    /// Hands the secret over. `false`: the rotation stopped waiting meanwhile,
    /// or it refused the mail (another address, another kind).
    fn hand_over(
        &self,
        account: &AccountId,
        handoff: &Handoff,
        now: u64,
    ) -> impl Future<Output = PortResult<bool>> + Send;
    /// Records that a rotation's awaited evidence arrived (a verified AWS
    /// mail delivered to its address alone). `false`: nothing waited for it.
    fn witness(
        &self,
        _account: &AccountId,
        _evidence: &Evidence,
        _now: u64,
    ) -> impl Future<Output = PortResult<bool>> + Send {
        async { Ok(false) }
    }
    /// Tells the rotation `unread.waiting` that AWS's mail with its secret
    /// came, passing every check a handoff makes, but no one secret was read
    /// in it. Nothing of the mail goes with it. `false`: the rotation does
    /// not go on without the secret (see
    /// `rootmail_lifecycle::code_mail::code_came_unread`).
    fn secret_came_unread(
        &self,
        _unread: &UnreadSecret,
        _now: u64,
    ) -> impl Future<Output = PortResult<bool>> + Send {
        async { Ok(false) }
    }
}

/// A verified AWS mail a rotation waits for as evidence rather than for a
/// secret: that the root email change took effect, that an MFA device was
/// activated. It carries nothing secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// What the rotation waits for (see `rootmail_lifecycle::console`).
    pub awaited: Kind,
    /// What the mail was classified as.
    pub kind: Kind,
    /// The address SES delivered it to (the rotation's own).
    pub recipient: EmailAddress,
    /// The mail's `Message-ID`, for the audit trail.
    pub message_id: Option<String>,
}

/// No lifecycle: nothing ever waits (triage, tests, a pipeline without rotations).
pub struct NoHandoffs;

impl Handoffs for NoHandoffs {
    async fn waiting(&self, _: &[AccountId], _: u64) -> PortResult<Vec<WaitingRotation>> {
        Ok(Vec::new())
    }

    async fn hand_over(&self, _: &AccountId, _: &Handoff, _: u64) -> PortResult<bool> {
        Ok(false)
    }
}

/// `None`: no lifecycle, so nothing waits (as [`NoHandoffs`]).
impl<H: Handoffs + Sync> Handoffs for Option<H> {
    async fn waiting(&self, accounts: &[AccountId], now: u64) -> PortResult<Vec<WaitingRotation>> {
        match self {
            Some(handoffs) => handoffs.waiting(accounts, now).await,
            None => Ok(Vec::new()),
        }
    }

    async fn hand_over(
        &self,
        account: &AccountId,
        handoff: &Handoff,
        now: u64,
    ) -> PortResult<bool> {
        match self {
            Some(handoffs) => handoffs.hand_over(account, handoff, now).await,
            None => Ok(false),
        }
    }

    async fn witness(
        &self,
        account: &AccountId,
        evidence: &Evidence,
        now: u64,
    ) -> PortResult<bool> {
        match self {
            Some(handoffs) => handoffs.witness(account, evidence, now).await,
            None => Ok(false),
        }
    }

    async fn secret_came_unread(&self, unread: &UnreadSecret, now: u64) -> PortResult<bool> {
        match self {
            Some(handoffs) => handoffs.secret_came_unread(unread, now).await,
            None => Ok(false),
        }
    }
}

/// Reads a stored original back (the writer needs its attachments).
pub trait MailSource {
    /// The raw message stored under `archive_ref`, or `None` when it is gone.
    fn raw(&self, archive_ref: &str) -> impl Future<Output = PortResult<Option<Vec<u8>>>> + Send;
}

impl<M: MailSource + Sync> MailSource for &M {
    fn raw(&self, archive_ref: &str) -> impl Future<Output = PortResult<Option<Vec<u8>>>> + Send {
        (**self).raw(archive_ref)
    }
}

/// A ticketing system. Creating is idempotent per thread key and commenting per
/// message, so a redelivered operation has no second effect.
pub trait TicketSink {
    /// The backend's name, for logs and ledger rows.
    fn name(&self) -> &'static str;
    /// Which ticketing system this is: the backend and where it is. The thread
    /// map records it beside each ticket id, since an id means nothing in
    /// another system (two Zendesks number their tickets alike).
    fn instance(&self) -> String {
        self.name().to_string()
    }
    /// The largest attachment the backend takes; larger ones are listed with
    /// their size and the original's location instead. 0: none are uploaded.
    fn max_attachment_bytes(&self) -> usize {
        0
    }
    /// Finds the ticket of a thread in the ticketing system itself (covers a crash
    /// between creating a ticket and recording it in the thread map).
    fn find(&self, key: &ThreadKey)
    -> impl Future<Output = PortResult<Option<FoundTicket>>> + Send;
    fn create(&self, ticket: &NewTicket) -> impl Future<Output = PortResult<String>> + Send;
    /// Adds the comment unless one for `comment.message` is already on the ticket,
    /// in which case that one is returned. A ticket that takes no more comments
    /// may continue on another; the answer names the ticket the comment is on.
    fn comment(
        &self,
        ticket_id: &str,
        comment: &NewComment,
    ) -> impl Future<Output = PortResult<PostedComment>> + Send;
}

/// Hands ticket operations from ingest to the ticket writer (SQS FIFO in AWS).
/// Enqueuing the same operation twice is allowed: the writer is idempotent.
pub trait TicketQueue {
    fn enqueue(&self, op: &TicketOp) -> impl Future<Output = PortResult<()>> + Send;
}

/// Where an operation that can never succeed goes, with the reason, for a person
/// to look at and replay.
pub trait DeadLetters {
    fn bury(&self, body: &str, reason: &str) -> impl Future<Output = PortResult<()>> + Send;
}

/// A shared sink is a sink (two writers may post to one backend client).
impl<S: TicketSink + Sync> TicketSink for &S {
    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn instance(&self) -> String {
        (**self).instance()
    }

    fn max_attachment_bytes(&self) -> usize {
        (**self).max_attachment_bytes()
    }

    fn find(
        &self,
        key: &ThreadKey,
    ) -> impl Future<Output = PortResult<Option<FoundTicket>>> + Send {
        (**self).find(key)
    }

    fn create(&self, ticket: &NewTicket) -> impl Future<Output = PortResult<String>> + Send {
        (**self).create(ticket)
    }

    fn comment(
        &self,
        ticket_id: &str,
        comment: &NewComment,
    ) -> impl Future<Output = PortResult<PostedComment>> + Send {
        (**self).comment(ticket_id, comment)
    }
}

/// One store may serve as several ports (the local store is ledger and thread map).
impl<L: Ledger + Sync> Ledger for &L {
    fn claim(
        &self,
        hash: &ContentHash,
        source: &str,
        now_secs: u64,
        stale_after_secs: u64,
    ) -> impl Future<Output = PortResult<Claim>> + Send {
        (**self).claim(hash, source, now_secs, stale_after_secs)
    }

    fn record(&self, row: &LedgerRow) -> impl Future<Output = PortResult<()>> + Send {
        (**self).record(row)
    }

    fn get(
        &self,
        hash: &ContentHash,
    ) -> impl Future<Output = PortResult<Option<LedgerRow>>> + Send {
        (**self).get(hash)
    }

    fn start_sending(&self, hash: &ContentHash) -> impl Future<Output = PortResult<bool>> + Send {
        (**self).start_sending(hash)
    }
}

impl<T: ThreadMap + Sync> ThreadMap for &T {
    fn ticket_of(
        &self,
        key: &ThreadKey,
    ) -> impl Future<Output = PortResult<Option<ThreadRecord>>> + Send {
        (**self).ticket_of(key)
    }

    fn save(&self, record: &ThreadRecord) -> impl Future<Output = PortResult<()>> + Send {
        (**self).save(record)
    }

    fn thread_of_message(
        &self,
        message_id: &str,
    ) -> impl Future<Output = PortResult<Option<ThreadKey>>> + Send {
        (**self).thread_of_message(message_id)
    }

    fn remember_message(
        &self,
        message_id: &str,
        key: &ThreadKey,
    ) -> impl Future<Output = PortResult<()>> + Send {
        (**self).remember_message(message_id, key)
    }
}
