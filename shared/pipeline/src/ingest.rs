//! Stage one: a message's bytes to a ledger row and at most one [`TicketOp`].
//! Claim, archive, triage (with what the stores know), hand a secret over or
//! witness a rotation, record.

// `crash_point!` is in scope from lib.rs, which defines it before this module.
use crate::{
    AccountLookup, Claim, Evidence, Handoffs, Ledger, LedgerRow, LedgerStatus, MAX_QUEUED_OP_BYTES,
    MailArchive, NoHandoffs, PortError, PortResult, Sending, ThreadMap, TicketOp,
};
use rootmail_domain::directory::Candidates;
use rootmail_domain::mail::ParsedMail;
use rootmail_domain::ses::envelope;
use rootmail_domain::{
    Account, AccountDirectory, AccountId, ContentHash, Context, Disposition, InMemoryDirectory,
    Kind, MailInput, NoRotations, Priority, Rules, ThreadKey, Triage, WaitingRotation,
    triage_parsed,
};
use std::collections::HashMap;

pub use crate::prepared::Prepared;

/// A claim older than this is taken over (a run that crashed is retried).
pub const DEFAULT_STALE_CLAIM_SECS: u64 = 15 * 60;

/// The stores ingest reads and writes, by name. Copied freely: it only
/// borrows them.
pub struct IngestPorts<'a, A, L, T, D> {
    /// Where the original is kept (and sealed when it holds a secret).
    pub archive: &'a A,
    /// One row per message: claimed, queued, done.
    pub ledger: &'a L,
    /// Which thread each earlier message belongs to.
    pub threads: &'a T,
    /// The accounts a mail may be about.
    pub accounts: &'a D,
}

impl<A, L, T, D> Clone for IngestPorts<'_, A, L, T, D> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<A, L, T, D> Copy for IngestPorts<'_, A, L, T, D> {}

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

/// One message as delivered: its bytes, what was made of them already, and
/// where it came from.
struct Delivery<'a> {
    raw: &'a [u8],
    prepared: Prepared,
    source: &'a str,
}

/// One message through claim, archive, triage and ledger.
pub async fn ingest<A, L, T, D, H>(
    ports: IngestPorts<'_, A, L, T, D>,
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
    ingest_prepared(ports, knowledge, raw, Prepared::of(raw), source, now).await
}

/// [`ingest`] of a message whose [`Prepared`] part is made already (it must
/// be of these bytes).
pub async fn ingest_prepared<A, L, T, D, H>(
    ports: IngestPorts<'_, A, L, T, D>,
    knowledge: &Knowledge<'_, H>,
    raw: &[u8],
    mut prepared: Prepared,
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
    if let Some(bytes_hash) = keyed_by_bytes_hash(ports.ledger, raw, &prepared.hash).await? {
        prepared.hash = bytes_hash;
    }
    let hash = &prepared.hash;
    let mut row = match ports
        .ledger
        .claim(hash, source, now, knowledge.claim_timeout_secs)
        .await?
    {
        Claim::Busy => return Ok(Ingested::Busy),
        Claim::Seen(row) if row.status == LedgerStatus::Done => {
            return duplicate(ports.archive, row, raw, source).await;
        }
        // Triaged before but its ticket operation may not have been applied: redo
        // it; the writer's idempotency makes that safe.
        Claim::Seen(row) | Claim::Owned(row) => row,
    };
    let owned_claim = row.status == LedgerStatus::Claimed;
    let delivery = Delivery {
        raw,
        prepared,
        source,
    };
    let result = triage_claimed(ports, knowledge, delivery, row.clone(), now).await;
    if result.is_err() && owned_claim {
        // Let the retry take the message over at once instead of waiting for the
        // claim to go stale. Best effort: if the ledger is what failed, the
        // claim expires on its own.
        row.claimed_at = 0;
        let _ = ports.ledger.record(&row).await;
    }
    result
}

/// A message finished before: nothing is done again. Another delivery of
/// it (see [`rootmail_domain::ses::delivery_key`]) holds what the first
/// held, so it is sealed when the first was.
async fn duplicate<A: MailArchive>(
    archive: &A,
    first: LedgerRow,
    raw: &[u8],
    source: &str,
) -> PortResult<Ingested> {
    if first.source != source && first.sealed {
        let origin = archive.put(&first.content_hash, raw).await?;
        archive.seal(&origin).await?;
    }
    Ok(Ingested::Duplicate(first))
}

/// The bytes' hash, when the ledger has the message under it: it was
/// claimed while the ledger was keyed so (before SES's block was left out
/// of the key). Such mail, delivered again or replayed by an operator,
/// stays under its row: a duplicate when finished, its own operation
/// (the same message hash, which the writer knows) when queued. One more
/// read for mail SES stored.
async fn keyed_by_bytes_hash<L: Ledger>(
    ledger: &L,
    raw: &[u8],
    key: &ContentHash,
) -> PortResult<Option<ContentHash>> {
    let bytes = ContentHash::of(raw);
    if bytes == *key {
        return Ok(None);
    }
    Ok(ledger.get(&bytes).await?.map(|_| bytes))
}

/// Archive, triage and record a message this run holds.
async fn triage_claimed<A, L, T, D, H>(
    ports: IngestPorts<'_, A, L, T, D>,
    knowledge: &Knowledge<'_, H>,
    mut delivery: Delivery<'_>,
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
    let origin = (ports.archive)
        .put(&delivery.prepared.hash, delivery.raw)
        .await?;
    crash_point!("ingest.after-archive");

    let mut triage = triage_archived(ports, knowledge, &mut delivery, &origin, now).await?;
    let hash = &delivery.prepared.hash;
    // Queued before: its operation went out under this thread (its FIFO
    // group). The stores may have changed since (its account imported, a
    // thread remembered), but a second operation under another thread would
    // run beside the first, and both would make a ticket.
    if let (LedgerStatus::Queued, Some(queued)) = (row.status, &row.thread_key) {
        triage.thread_key = queued.clone();
    }

    let mut op = ticket_op(&triage, hash, &origin);
    record_triage(&mut row, &triage, origin, op.is_some());
    if op
        .as_mut()
        .is_some_and(|op| op.fit_within(MAX_QUEUED_OP_BYTES))
    {
        row.warnings.push(format!(
            "ticket cut to fit the ticket queue ({MAX_QUEUED_OP_BYTES} bytes)"
        ));
    }
    ports.ledger.record(&row).await?;
    crash_point!("ingest.after-record");
    Ok(Ingested::Triaged {
        row,
        triage: Box::new(triage),
        op: op.map(Box::new),
    })
}

/// The triage of an archived message (at `origin`), with what the stores
/// know about it; a handoff is made here (a rotation that stopped waiting
/// makes the mail an alert after all), and a rotation waiting for evidence
/// is told it came.
async fn triage_archived<A, L, T, D, H>(
    ports: IngestPorts<'_, A, L, T, D>,
    knowledge: &Knowledge<'_, H>,
    delivery: &mut Delivery<'_>,
    origin: &str,
    now: u64,
) -> PortResult<Triage>
where
    A: MailArchive,
    T: ThreadMap,
    D: AccountLookup + Sync,
    H: Handoffs + Sync,
{
    let gathered = match &delivery.prepared.parsed {
        Ok(mail) => {
            let wanted = (mail, &delivery.prepared.candidates);
            gather(ports, knowledge.handoffs, wanted, now).await?
        }
        Err(_) => Gathered::default(),
    };
    let ahead = delivery.prepared.triage_ahead(origin, &gathered);
    let (hash, parsed) = (&delivery.prepared.hash, &delivery.prepared.parsed);
    let ctx = Context {
        directory: &gathered.directory,
        rules: knowledge.rules,
        known_threads: &gathered.known,
        rotations: &gathered.waiting,
    };
    let input = MailInput {
        raw: delivery.raw,
        origin,
        object_name: object_name(delivery.source),
    };
    let mut triage = ahead.unwrap_or_else(|| triage_parsed(parsed, hash, &input, &ctx));
    if let Ok(mail) = parsed {
        archive_if_before(&mut triage, mail, knowledge.ticket_since);
    }
    // What can fail is done before the handoff, which cannot be taken back:
    // a retry after it would find no rotation waiting and ticket the secret's
    // mail as an alert (as after telling a rotation its secret came unread:
    // the retry's ticket then lacks the warning that says how to go on).
    keep(ports, &triage, origin).await?;
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
        witness(knowledge.handoffs, mail, &triage, &gathered.waiting, now).await?;
    }
    tell_of_unread_secret(knowledge.handoffs, &triage, now).await?;
    Ok(triage)
}

/// The original sealed when it holds a secret, and the message's thread
/// remembered for its replies. Both idempotent; the same for a triage made
/// again after a refused handoff (same mail, same secrets and thread).
async fn keep<A, L, T, D>(
    ports: IngestPorts<'_, A, L, T, D>,
    triage: &Triage,
    origin: &str,
) -> PortResult<()>
where
    A: MailArchive,
    T: ThreadMap,
{
    if triage.sealed {
        ports.archive.seal(origin).await?;
    }
    if let Some(id) = &triage.message_id {
        ports
            .threads
            .remember_message(id, &triage.thread_key)
            .await?;
    }
    Ok(())
}

/// `triage` of a mail delivered before `since`: archived, and the ledger
/// says why. Delivered, not sent: a phishing mail dated years back by its
/// sender must not be archived unseen in a backfill.
fn archive_if_before(triage: &mut Triage, mail: &ParsedMail, since: Option<i64>) {
    let Some(since) = since else {
        return;
    };
    let Some(sent) = mail.delivered_at() else {
        // Ticketed, since it cannot be placed before the cutoff; the
        // ledger says why an old mail may have become a ticket.
        if triage.disposition != Disposition::Archive {
            triage.warnings.push(
                "no delivery date to place it by (its topmost Received stamp unreadable, or \
                 no Received stamp and no readable Date): not archived by the backfill's cutoff"
                    .to_string(),
            );
        }
        return;
    };
    if sent >= since || triage.disposition == Disposition::Archive {
        return;
    }
    triage.warnings.push(format!(
        "delivered before the backfill's cutoff ({}): archived, not {}",
        rootmail_domain::dates::utc(u64::try_from(since).unwrap_or(0)),
        triage.disposition.as_str()
    ));
    triage.disposition = Disposition::Archive;
    triage.ticket = None;
    triage.handoff = None;
    triage.secret_unread_for = None;
}

/// What triage needs from the stores, fetched before it so triage itself
/// stays synchronous and pure.
#[derive(Default)]
pub(crate) struct Gathered {
    /// The threads of the messages this one refers to.
    pub(crate) known: HashMap<String, ThreadKey>,
    /// The accounts it may be about.
    pub(crate) directory: InMemoryDirectory,
    /// The rotations waiting among those accounts.
    pub(crate) waiting: Vec<WaitingRotation>,
}

async fn gather<A, L, T, D, H>(
    ports: IngestPorts<'_, A, L, T, D>,
    handoffs: &H,
    (mail, wanted): (&ParsedMail, &Candidates),
    now: u64,
) -> PortResult<Gathered>
where
    T: ThreadMap,
    D: AccountLookup + Sync,
    H: Handoffs + Sync,
{
    let mut known = HashMap::new();
    for id in mail.referenced_ids() {
        if let Some(key) = ports.threads.thread_of_message(id).await? {
            known.insert(id.to_string(), key);
        }
    }
    let found = fetch_candidates(ports.accounts, wanted).await?;
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
    row.sealed = triage.sealed;
    // Only a row this run claimed is new to every writer. A row queued
    // before keeps what it said: a writer may have taken it meanwhile.
    if queued && row.status == LedgerStatus::Claimed {
        row.sending = Sending::NotYet;
    }
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
    wanted: &Candidates,
) -> PortResult<Vec<Account>> {
    let mut found = accounts.by_emails(&wanted.emails).await?;
    for id in &wanted.ids {
        found.extend(accounts.by_id(id).await?);
    }
    Ok(crate::prepared::dedup_accounts(found))
}

/// [`fetch_candidates`] from a directory held in memory, without a runtime.
pub(crate) fn candidate_accounts(
    directory: &impl AccountDirectory,
    wanted: &Candidates,
) -> Vec<Account> {
    let mut found: Vec<Account> = (wanted.emails.iter())
        .filter_map(|email| directory.by_email(email))
        .collect();
    found.extend(wanted.ids.iter().filter_map(|id| directory.by_id(id)));
    crate::prepared::dedup_accounts(found)
}

/// The stored object's own name: the last part of its source's path.
pub(crate) fn object_name(source: &str) -> Option<&str> {
    source.rsplit(['/', '\\']).next()
}

/// Tells a rotation that waits for evidence (not a secret) that it came: a
/// mail whose authentication would be strong enough for a handoff, delivered
/// by SES to the rotation's address alone, naming no other account (a full
/// id in its subject, text or HTML, or an account's last digits), and
/// carrying no one else's words: support case correspondence comes from the
/// same AWS sender as AWS's notices and quotes whoever wrote in the case
/// (anyone's own account's case can copy any address), and a reply quotes
/// the mail it answers.
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
        || !waiting.iter().any(|w| w.account == *account)
        || triage.authentication.handoff_refusal().is_some()
        || triage
            .facts
            .account_ids
            .iter()
            .any(|id| id != account.as_str())
        || rootmail_domain::handoff::names_only(mail, account).is_err()
        || triage.case_id.is_some()
        || !triage.facts.case_ids.is_empty()
        // Withheld text shows no facts to check (sealed says it was).
        || triage.sealed
        || !mail.in_reply_to.is_empty()
        || !mail.references.is_empty()
    {
        return Ok(());
    }
    let recipients = &envelope(mail).recipients;
    for awaited in waiting.iter().filter(|w| w.account == *account) {
        if !rootmail_domain::handoff::is_evidence_of(
            awaited.kind,
            triage.kind,
            triage.subject.as_deref(),
        ) || recipients.as_slice() != [awaited.address.clone()]
        {
            continue;
        }
        let evidence = Evidence {
            awaited: awaited.kind,
            kind: triage.kind,
            recipient: awaited.address.clone(),
            message_id: triage.message_id.clone(),
        };
        Box::pin(handoffs.witness(account, &evidence, now)).await?;
    }
    Ok(())
}

/// Tells a waiting rotation that AWS's mail with its secret came, but no one
/// secret was read in it (triage checked everything else a handoff needs):
/// a console take-over then waits for the change the engineer makes with
/// the code read in the original. Nothing of the mail goes with it.
async fn tell_of_unread_secret<H: Handoffs>(
    handoffs: &H,
    triage: &Triage,
    now: u64,
) -> PortResult<()> {
    if let Some(unread) = &triage.secret_unread_for {
        Box::pin(handoffs.secret_came_unread(unread, now)).await?;
    }
    Ok(())
}

/// Gives the waiting rotation the secret triage chose for it. `false`: it no
/// longer waits, or refused it.
async fn hand_over<H: Handoffs>(handoffs: &H, triage: &Triage, now: u64) -> PortResult<bool> {
    match (&triage.account_id, &triage.handoff) {
        (Some(account), Some(handoff)) => Box::pin(handoffs.hand_over(account, handoff, now)).await,
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
    let key = unreadable_key(source);
    record_unreadable_as(ledger, key, (source, reason), now, claim_timeout_secs).await
}

/// The ledger key of a message that could not be read at `source`.
pub fn unreadable_key(source: &str) -> ContentHash {
    ContentHash::of(format!("unreadable:{source}").as_bytes())
}

/// [`record_unreadable`] under `key`: a message refused unread whose bytes
/// still have a hash (too large to hold) is keyed by it, so the same message
/// found again under another name is the same row, and another message at
/// the same place is a row of its own.
pub async fn record_unreadable_as<L: Ledger>(
    ledger: &L,
    key: ContentHash,
    (source, reason): (&str, &str),
    now: u64,
    claim_timeout_secs: u64,
) -> PortResult<(LedgerRow, Option<TicketOp>)> {
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
