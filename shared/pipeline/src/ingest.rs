//! The rootmail pipeline, generic over its ports.
//!
//! Stage one, [`ingest`], turns raw bytes into a ledger row and at most one
//! [`TicketOp`]; stage two, [`write_ticket`], applies that operation to a
//! ticketing system. In AWS a FIFO queue sits between them; locally they run one
//! after the other. Both stages are idempotent: any message or operation may be
//! delivered again and has no second effect.

pub mod error;
pub mod model;
pub mod ports;

/// The fail-point registry, for tests built with the `failpoints` feature.
#[cfg(feature = "failpoints")]
pub use fail;

/// A step boundary where a test build (feature `failpoints`) can crash the run,
/// to prove that redelivery after a crash there loses and repeats nothing.
/// Compiles to nothing otherwise. The names are listed in [`CRASH_POINTS`].
#[cfg(feature = "failpoints")]
#[macro_export]
macro_rules! crash_point {
    ($name:literal) => {
        $crate::fail::fail_point!($name)
    };
}

/// See the `failpoints` variant: without the feature, nothing.
#[cfg(not(feature = "failpoints"))]
#[macro_export]
macro_rules! crash_point {
    ($name:literal) => {};
}

/// Every crash point, in the order a message meets them.
pub const CRASH_POINTS: &[&str] = &[
    "ingest.after-claim",
    "ingest.after-archive",
    "ingest.after-record",
    "ingest.after-enqueue",
    "writer.after-create",
    "writer.after-comment",
    "writer.after-thread-saved",
    "writer.after-ledger-done",
];

pub use model::*;
pub use ports::*;

use rootmail_domain::directory::candidates;
use rootmail_domain::mail::{ParsedMail, parse};
use rootmail_domain::ses::envelope;
use rootmail_domain::{
    Account, AccountId, ContentHash, Context, Disposition, InMemoryDirectory, Kind, MailInput,
    NoRotations, Priority, Rules, ThreadKey, Triage, WaitingRotation, triage_parsed,
};
use std::collections::HashMap;

/// A claim older than this is taken over (a run that crashed is retried).
pub const DEFAULT_STALE_CLAIM_SECS: u64 = 15 * 60;

/// What ingest reads besides the message and the account directory: the rules,
/// where a secret goes when a rotation waits for it, and how long a claim holds.
pub struct Knowledge<'a, H = NoHandoffs> {
    pub rules: &'a Rules,
    pub handoffs: &'a H,
    /// A claim older than this belongs to a run that died; it is taken over.
    /// Set it above the longest a run can take (the Lambda timeout).
    pub claim_timeout_secs: u64,
    /// Mail sent before this (seconds since the epoch) is archived, never
    /// ticketed nor handed over: a backfill of years of mail tickets only what
    /// is recent (`rootmail run --since`). `None`: every mail as triaged.
    pub ticket_since: Option<i64>,
}

impl<'a, H> Knowledge<'a, H> {
    /// With the default claim timeout ([`DEFAULT_STALE_CLAIM_SECS`]).
    pub fn new(rules: &'a Rules, handoffs: &'a H) -> Self {
        Self {
            rules,
            handoffs,
            claim_timeout_secs: DEFAULT_STALE_CLAIM_SECS,
            ticket_since: None,
        }
    }
}

/// `triage` of a mail sent before `since`: archived, and the ledger says why.
fn archive_if_before(triage: &mut Triage, mail: &ParsedMail, since: Option<i64>) {
    let (Some(since), Some(sent)) = (since, mail.sent_at) else {
        return;
    };
    if sent >= since || triage.disposition == Disposition::Archive {
        return;
    }
    triage.warnings.push(format!(
        "sent before the backfill's cutoff ({}): archived, not {}",
        rootmail_domain::dates::utc(u64::try_from(since).unwrap_or(0)),
        triage.disposition.as_str()
    ));
    triage.disposition = Disposition::Archive;
    triage.ticket = None;
    triage.handoff = None;
}

/// The result of ingesting one message.
#[derive(Debug)]
pub enum Ingested {
    /// Already finished earlier: nothing was done again.
    Duplicate(LedgerRow),
    /// Another run holds a fresh claim on it.
    Busy,
    /// Triaged now. `op` is the ticket operation to apply, if the disposition needs one.
    Triaged {
        row: LedgerRow,
        triage: Box<Triage>,
        op: Option<Box<TicketOp>>,
    },
}

/// What ingest works out from a message's bytes alone, before it looks at
/// any store: its content hash and its parse. A caller with many messages
/// makes these on every core and ingests them in order.
#[derive(Debug)]
pub struct Prepared {
    pub hash: ContentHash,
    pub parsed: Result<ParsedMail, rootmail_domain::mail::ParseError>,
}

impl Prepared {
    pub fn of(raw: &[u8]) -> Self {
        Self {
            hash: ContentHash::of(raw),
            parsed: parse(raw),
        }
    }
}

/// One message through claim, archive, triage and ledger.
pub async fn ingest<A, L, T, D, H>(
    ports: (&A, &L, &T, &D),
    knowledge: &Knowledge<'_, H>,
    raw: &[u8],
    source: &str,
    now: u64,
) -> PortResult<Ingested>
where
    A: MailArchive,
    L: Ledger,
    T: ThreadMap,
    D: AccountLookup + Sync,
    H: Handoffs + Sync,
{
    ingest_prepared(ports, knowledge, raw, &Prepared::of(raw), source, now).await
}

/// [`ingest`] of a message whose [`Prepared`] part is made already (it must
/// be of these bytes).
pub async fn ingest_prepared<A, L, T, D, H>(
    (archive, ledger, threads, accounts): (&A, &L, &T, &D),
    knowledge: &Knowledge<'_, H>,
    raw: &[u8],
    prepared: &Prepared,
    source: &str,
    now: u64,
) -> PortResult<Ingested>
where
    A: MailArchive,
    L: Ledger,
    T: ThreadMap,
    D: AccountLookup + Sync,
    H: Handoffs + Sync,
{
    let hash = &prepared.hash;
    let mut row = match ledger
        .claim(hash, source, now, knowledge.claim_timeout_secs)
        .await?
    {
        Claim::Busy => return Ok(Ingested::Busy),
        Claim::Seen(row) if row.status == LedgerStatus::Done => {
            return Ok(Ingested::Duplicate(row));
        }
        // Triaged before but its ticket operation may not have been applied: redo
        // it; the writer's idempotency makes that safe.
        Claim::Seen(row) | Claim::Owned(row) => row,
    };
    let owned_claim = row.status == LedgerStatus::Claimed;
    let result = triage_claimed(
        (archive, ledger, threads, accounts),
        knowledge,
        (raw, prepared, source),
        row.clone(),
        now,
    )
    .await;
    if result.is_err() && owned_claim {
        // Let the retry take the message over at once instead of waiting for the
        // claim to go stale. Best effort: if the ledger is what failed, the
        // claim expires on its own.
        row.claimed_at = 0;
        let _ = ledger.record(&row).await;
    }
    result
}

/// Archive, triage and record a message this run holds.
async fn triage_claimed<A, L, T, D, H>(
    (archive, ledger, threads, accounts): (&A, &L, &T, &D),
    knowledge: &Knowledge<'_, H>,
    (raw, prepared, source): (&[u8], &Prepared, &str),
    mut row: LedgerRow,
    now: u64,
) -> PortResult<Ingested>
where
    A: MailArchive,
    L: Ledger,
    T: ThreadMap,
    D: AccountLookup + Sync,
    H: Handoffs + Sync,
{
    crash_point!("ingest.after-claim");
    let hash = &prepared.hash;
    let origin = archive.put(hash, raw).await?;
    crash_point!("ingest.after-archive");

    let parsed = &prepared.parsed;
    let Gathered {
        known,
        directory,
        waiting,
    } = match parsed {
        Ok(mail) => gather((threads, accounts), knowledge.handoffs, mail, now).await?,
        Err(_) => Gathered::default(),
    };
    let object_name = source.rsplit(['/', '\\']).next();
    let ctx = Context {
        directory: &directory,
        rules: knowledge.rules,
        known_threads: &known,
        rotations: &waiting,
    };
    let input = MailInput {
        raw,
        origin: &origin,
        object_name,
    };
    let mut triage = triage_parsed(parsed, hash, &input, &ctx);
    if let Ok(mail) = parsed {
        archive_if_before(&mut triage, mail, knowledge.ticket_since);
    }
    if triage.disposition == Disposition::Handoff
        && !hand_over(knowledge.handoffs, &triage, now).await?
    {
        // The rotation stopped waiting meanwhile: the mail is an alert after all.
        let ctx = Context {
            rotations: &NoRotations,
            ..ctx
        };
        triage = triage_parsed(parsed, hash, &input, &ctx);
    }
    if let Ok(mail) = parsed {
        witness(knowledge.handoffs, mail, &triage, &waiting, now).await?;
    }
    if !triage.secrets.is_empty() {
        archive.seal(&origin).await?;
    }
    if let Some(id) = &triage.message_id {
        threads.remember_message(id, &triage.thread_key).await?;
    }

    let op = ticket_op(&triage, hash, &origin);
    record_triage(&mut row, &triage, origin, op.is_some());
    ledger.record(&row).await?;
    crash_point!("ingest.after-record");
    Ok(Ingested::Triaged {
        row,
        triage: Box::new(triage),
        op: op.map(Box::new),
    })
}

/// What triage needs from the stores, fetched before it so triage itself
/// stays synchronous and pure.
#[derive(Default)]
struct Gathered {
    /// The threads of the messages this one refers to.
    known: HashMap<String, ThreadKey>,
    /// The accounts it may be about.
    directory: InMemoryDirectory,
    /// The rotations waiting among those accounts.
    waiting: Vec<WaitingRotation>,
}

async fn gather<T, D, H>(
    (threads, accounts): (&T, &D),
    handoffs: &H,
    mail: &ParsedMail,
    now: u64,
) -> PortResult<Gathered>
where
    T: ThreadMap,
    D: AccountLookup + Sync,
    H: Handoffs + Sync,
{
    let mut known = HashMap::new();
    for id in mail.referenced_ids() {
        if let Some(key) = threads.thread_of_message(id).await? {
            known.insert(id.to_string(), key);
        }
    }
    let found = fetch_candidates(accounts, mail).await?;
    let ids: Vec<AccountId> = found.iter().map(|a| a.account_id.clone()).collect();
    let waiting = if ids.is_empty() {
        Vec::new()
    } else {
        handoffs.waiting(&ids, now).await?
    };
    let directory = InMemoryDirectory::new(found)
        .map_err(|e| PortError::permanent("accounts", e.to_string()))?;
    Ok(Gathered {
        known,
        directory,
        waiting,
    })
}

/// The ticket operation a triage asks for, if its disposition needs one.
fn ticket_op(triage: &Triage, hash: &ContentHash, origin: &str) -> Option<TicketOp> {
    let (ticket, priority) = (triage.ticket.as_ref()?, triage.priority?);
    Some(TicketOp {
        message: hash.clone(),
        thread_key: triage.thread_key.clone(),
        kind: triage.kind,
        priority,
        account_id: triage.account_id.as_ref().map(|a| a.to_string()),
        customer: triage.customer.clone(),
        subject: ticket.subject.clone(),
        body: ticket.body.clone(),
        internal_note: ticket.internal_note.clone(),
        attachments: ticket.attachments.clone(),
        archive_ref: Some(origin.to_string()),
        quarantined: triage.disposition == Disposition::Quarantine,
        received_at_ms: None,
    })
}

/// The ledger row's record of a triage: queued when a ticket operation
/// follows, else done.
fn record_triage(row: &mut LedgerRow, triage: &Triage, origin: String, queued: bool) {
    row.archive_ref = Some(origin);
    row.kind = Some(triage.kind);
    row.disposition = Some(triage.disposition);
    row.priority = triage.priority;
    row.thread_key = Some(triage.thread_key.clone());
    row.account_id = triage.account_id.as_ref().map(|a| a.to_string());
    row.message_id = triage.message_id.clone();
    row.ses_message_id = triage.ses_message_id.clone();
    row.warnings = triage.warnings.clone();
    row.from_aws = triage.authentication.aws_sender && triage.authentication.verified;
    row.status = if queued {
        LedgerStatus::Queued
    } else {
        LedgerStatus::Done
    };
}

/// The accounts triage may resolve this mail to, fetched once so resolution
/// itself stays synchronous and pure.
async fn fetch_candidates<D: AccountLookup + Sync>(
    accounts: &D,
    mail: &ParsedMail,
) -> PortResult<Vec<Account>> {
    let wanted = candidates(mail, &envelope(mail).recipients);
    let mut found = accounts.by_emails(&wanted.emails).await?;
    for id in &wanted.ids {
        found.extend(accounts.by_id(id).await?);
    }
    found.sort_by(|a, b| a.root_email.cmp(&b.root_email));
    found.dedup_by(|a, b| a.root_email == b.root_email);
    Ok(found)
}

/// Tells a rotation that waits for evidence (not a secret) that it came: a
/// mail whose authentication would be strong enough for a handoff, delivered
/// by SES to the rotation's address alone, naming no other account.
async fn witness<H: Handoffs>(
    handoffs: &H,
    mail: &ParsedMail,
    triage: &Triage,
    waiting: &[WaitingRotation],
    now: u64,
) -> PortResult<()> {
    let Some(account) = &triage.account_id else {
        return Ok(());
    };
    if triage.disposition == Disposition::Handoff
        || triage.authentication.handoff_refusal().is_some()
        || triage
            .facts
            .account_ids
            .iter()
            .any(|id| id != account.as_str())
    {
        return Ok(());
    }
    let recipients = envelope(mail).recipients;
    for awaited in waiting.iter().filter(|w| w.account == *account) {
        if !rootmail_domain::handoff::is_evidence_of(awaited.kind, triage.kind)
            || recipients != [awaited.address.clone()]
        {
            continue;
        }
        let evidence = Evidence {
            awaited: awaited.kind,
            kind: triage.kind,
            recipient: awaited.address.clone(),
            message_id: triage.message_id.clone(),
        };
        handoffs.witness(account, &evidence, now).await?;
    }
    Ok(())
}

/// Gives the waiting rotation the secret triage chose for it. `false`: it no
/// longer waits, or refused it.
async fn hand_over<H: Handoffs>(handoffs: &H, triage: &Triage, now: u64) -> PortResult<bool> {
    match (&triage.account_id, &triage.handoff) {
        (Some(account), Some(handoff)) => handoffs.hand_over(account, handoff, now).await,
        _ => Ok(false),
    }
}

/// Records a message that could not be read at all (deleted before it was read,
/// larger than SES allows): a quarantine row keyed by its location, and a ticket
/// operation so a person sees it. Repeating it changes nothing. A claim older
/// than `claim_timeout_secs` belongs to a run that died and is taken over.
pub async fn record_unreadable<L: Ledger>(
    ledger: &L,
    source: &str,
    reason: &str,
    now: u64,
    claim_timeout_secs: u64,
) -> PortResult<(LedgerRow, Option<TicketOp>)> {
    let key = ContentHash::of(format!("unreadable:{source}").as_bytes());
    let mut row = match ledger.claim(&key, source, now, claim_timeout_secs).await? {
        Claim::Seen(row) if row.status == LedgerStatus::Done => return Ok((row, None)),
        Claim::Busy => {
            return Err(PortError::transient(
                "ledger",
                format!("{source} is claimed by another run"),
            ));
        }
        Claim::Seen(row) | Claim::Owned(row) => row,
    };
    let kind = Kind::MailUnparseable;
    let priority = kind.policy().priority.unwrap_or(Priority::Normal);
    let thread_key = ThreadKey::content(&key);
    let op = TicketOp {
        message: key,
        thread_key: thread_key.clone(),
        kind,
        priority,
        account_id: None,
        customer: None,
        subject: format!("[quarantine] Unreadable message {source}"),
        body: format!(
            "rootmail could not read this message and quarantined it.\n\n\
             Location: {source}\nReason: {reason}\n\n\
             Nothing else is known about it: no sender, recipient or account could be read."
        ),
        internal_note: format!("Original message: {source}"),
        attachments: Vec::new(),
        archive_ref: None,
        quarantined: true,
        received_at_ms: None,
    };
    row.kind = Some(kind);
    row.disposition = Some(Disposition::Quarantine);
    row.priority = Some(priority);
    row.thread_key = Some(thread_key);
    row.failure = Some(reason.to_string());
    row.status = LedgerStatus::Queued;
    ledger.record(&row).await?;
    Ok((row, Some(op)))
}

/// What applying a ticket operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    Created {
        ticket_id: String,
    },
    Commented {
        ticket_id: String,
        comment_id: String,
    },
}

impl Written {
    pub fn ticket_id(&self) -> &str {
        match self {
            Self::Created { ticket_id } | Self::Commented { ticket_id, .. } => ticket_id,
        }
    }
}

/// Applies one ticket operation: create the thread's ticket, or comment on it.
///
/// Safe to repeat at every point: the thread map and the backend both remember
/// which message created a ticket, and the backend keeps one comment per message.
pub async fn write_ticket<L: Ledger, T: ThreadMap, S: TicketSink, M: MailSource>(
    ports: (&L, &T, &S, &M),
    op: &TicketOp,
    now: u64,
) -> PortResult<Written> {
    Ok(apply_ticket_op(ports, op, now).await?.written)
}

/// What applying an operation did, and whether the ledger already had it done
/// (a redelivery: nothing was sent to the backend).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub written: Written,
    pub repeated: bool,
}

/// [`write_ticket`], telling a redelivered operation from a new effect (for metrics).
pub async fn apply_ticket_op<L: Ledger, T: ThreadMap, S: TicketSink, M: MailSource>(
    (ledger, threads, sink, mail): (&L, &T, &S, &M),
    op: &TicketOp,
    now: u64,
) -> PortResult<Applied> {
    let row = ledger.get(&op.message).await?;
    if let Some(done) = row.as_ref().and_then(already_written) {
        return Ok(Applied {
            written: done,
            repeated: true,
        });
    }
    let (existing, found_absent) = existing_ticket((threads, sink, mail), op).await?;
    let (written, created_from, messages) = match existing {
        None => {
            let attachments = ticket_attachments(op, sink.max_attachment_bytes(), mail).await?;
            let ticket_id = sink
                .create(&new_ticket(op, attachments, found_absent))
                .await?;
            crash_point!("writer.after-create");
            (Written::Created { ticket_id }, op.message.clone(), 1)
        }
        Some((ticket_id, created_from, messages)) if created_from == op.message => (
            Written::Created { ticket_id },
            created_from,
            messages.max(1),
        ),
        Some((ticket_id, created_from, messages)) => {
            let written = post_comment((sink, mail), op, &ticket_id).await?;
            (written, created_from, messages + 1)
        }
    };
    threads
        .save(&ThreadRecord {
            thread_key: op.thread_key.clone(),
            ticket_id: written.ticket_id().to_string(),
            backend: sink.name().to_string(),
            created_from,
            messages,
            last_activity: now,
        })
        .await?;
    crash_point!("writer.after-thread-saved");
    if let Some(mut row) = row {
        row.status = LedgerStatus::Done;
        row.ticket_id = Some(written.ticket_id().to_string());
        row.comment_id = match &written {
            Written::Commented { comment_id, .. } => Some(comment_id.clone()),
            Written::Created { .. } => None,
        };
        ledger.record(&row).await?;
    }
    crash_point!("writer.after-ledger-done");
    Ok(Applied {
        written,
        repeated: false,
    })
}

/// The thread's ticket, if it has one: its id, the message that created it
/// and the thread's messages so far; and whether the backend was asked and
/// had none.
async fn existing_ticket<T: ThreadMap, S: TicketSink, M: MailSource>(
    (threads, sink, mail): (&T, &S, &M),
    op: &TicketOp,
) -> PortResult<(Option<(String, ContentHash, u64)>, bool)> {
    Ok(match threads.ticket_of(&op.thread_key).await? {
        // The thread map names this message as the ticket's creator, yet the
        // ledger does not say written: a later mail of the thread was saved
        // while this one was still being retried. Creating again is idempotent
        // and lets the backend finish what this operation had left (the note).
        Some(record) if record.created_from == op.message => {
            let id = create_again(op, sink, mail).await?;
            (Some((id, record.created_from, record.messages)), false)
        }
        Some(record) => (
            Some((record.ticket_id, record.created_from, record.messages)),
            false,
        ),
        // Not recorded: the backend may still have it (crash after create).
        None => match sink.find(&op.thread_key).await? {
            // This operation created it and then stopped: creating again is
            // idempotent and lets the backend finish what it had left (the note).
            Some(found) if found.created_from == op.message => (
                Some((create_again(op, sink, mail).await?, found.created_from, 0)),
                false,
            ),
            Some(found) => (Some((found.id, found.created_from, 0)), false),
            None => (None, true),
        },
    })
}

/// The operation's mail as a comment on the thread's ticket. A ticket that
/// took no more comments may have continued on another: the thread map then
/// sends the thread's later mail there.
async fn post_comment<S: TicketSink, M: MailSource>(
    (sink, mail): (&S, &M),
    op: &TicketOp,
    ticket_id: &str,
) -> PortResult<Written> {
    let comment = NewComment {
        message: op.message.clone(),
        body: op.body.clone(),
        priority: op.priority,
        kind: op.kind,
        internal_note: op.internal_note.clone(),
        attachments: ticket_attachments(op, sink.max_attachment_bytes(), mail).await?,
    };
    let posted = sink.comment(ticket_id, &comment).await?;
    crash_point!("writer.after-comment");
    Ok(Written::Commented {
        ticket_id: posted.ticket_id,
        comment_id: posted.comment_id,
    })
}

/// The ticket this operation created before it stopped, created again:
/// backends make that idempotent, and finish what was left (the note).
async fn create_again<S: TicketSink, M: MailSource>(
    op: &TicketOp,
    sink: &S,
    mail: &M,
) -> PortResult<String> {
    let attachments = ticket_attachments(op, sink.max_attachment_bytes(), mail).await?;
    sink.create(&new_ticket(op, attachments, false)).await
}

/// The outcome recorded for a message whose operation finished before.
fn already_written(row: &LedgerRow) -> Option<Written> {
    let ticket_id = row
        .ticket_id
        .clone()
        .filter(|_| row.status == LedgerStatus::Done)?;
    Some(match row.comment_id.clone() {
        Some(comment_id) => Written::Commented {
            ticket_id,
            comment_id,
        },
        None => Written::Created { ticket_id },
    })
}

/// The operation's attachments: the bytes of those the backend can take, read
/// from the stored original once; the others listed with the reason.
async fn ticket_attachments<M: MailSource>(
    op: &TicketOp,
    limit: usize,
    mail: &M,
) -> PortResult<Vec<TicketAttachment>> {
    let listed = |reason: String| AttachmentContent::Listed {
        reason,
        original: op.archive_ref.clone(),
    };
    let wanted =
        |a: &rootmail_domain::AttachmentRef| a.withheld.is_none() && limit > 0 && a.size <= limit;
    let raw = match &op.archive_ref {
        Some(location) if op.attachments.iter().any(wanted) => mail.raw(location).await?,
        _ => None,
    };
    Ok(op
        .attachments
        .iter()
        .map(|a| {
            let content = match (&a.withheld, &raw) {
                (Some(reason), _) => listed(format!("not attached: {reason}")),
                (None, _) if limit == 0 => {
                    listed("not attached: this ticketing system takes no uploads".into())
                }
                (None, _) if a.size > limit => listed(format!(
                    "not attached: larger than the {} limit of this ticketing system",
                    human_bytes(limit)
                )),
                (None, None) => {
                    listed("not attached: the original message could not be read".into())
                }
                (None, Some(raw)) => match rootmail_domain::mail::attachment_bytes(raw, a.index) {
                    Some(bytes) => AttachmentContent::Upload(bytes),
                    None => listed("not attached: not found in the original message".into()),
                },
            };
            TicketAttachment {
                name: a.name.clone(),
                content_type: a.content_type.clone(),
                size: a.size,
                content,
            }
        })
        .collect())
}

fn human_bytes(n: usize) -> String {
    match n {
        n if n >= 1 << 20 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

fn new_ticket(op: &TicketOp, attachments: Vec<TicketAttachment>, found_absent: bool) -> NewTicket {
    NewTicket {
        thread_key: op.thread_key.clone(),
        idempotency_key: idempotency_key(&op.thread_key),
        subject: op.subject.clone(),
        body: op.body.clone(),
        priority: op.priority,
        kind: op.kind,
        account_id: op.account_id.clone(),
        customer: op.customer.clone(),
        message: op.message.clone(),
        internal_note: op.internal_note.clone(),
        attachments,
        found_absent,
    }
}

/// A stable key for creating the ticket of a thread (backends that support
/// idempotent creates use it; it never contains mail content).
pub fn idempotency_key(key: &ThreadKey) -> String {
    format!(
        "rootmail-{}",
        &ContentHash::of(key.as_str().as_bytes()).as_str()[..32]
    )
}
