//! Stage two: one [`TicketOp`] applied to a ticketing system. The thread's
//! ticket is created, or the message becomes a comment on it; the thread map
//! and the ledger then record what was written.

// `crash_point!` is in scope from lib.rs, which defines it before this module.
use crate::{
    AttachmentContent, ErrorKind, FirstSend, Ledger, LedgerRow, LedgerStatus, MailSource,
    NewComment, NewTicket, PortError, PortResult, Sending, ThreadMap, ThreadRecord,
    TicketAttachment, TicketOp, TicketSink,
};
use rootmail_domain::{ContentHash, ThreadKey};
use std::collections::HashMap;

/// The stores and the ticketing system the writer works with, by name.
/// Copied freely: it only borrows them.
pub struct WriterPorts<'a, L, T, S, M> {
    /// The message's row, marked done once its ticket is written.
    pub ledger: &'a L,
    /// Each thread's ticket, and the message that created it.
    pub threads: &'a T,
    /// The ticketing system.
    pub sink: &'a S,
    /// The stored originals, read back for their attachments.
    pub mail: &'a M,
}

impl<L, T, S, M> Clone for WriterPorts<'_, L, T, S, M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<L, T, S, M> Copy for WriterPorts<'_, L, T, S, M> {}

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
    ports: WriterPorts<'_, L, T, S, M>,
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
    ports: WriterPorts<'_, L, T, S, M>,
    op: &TicketOp,
    now: u64,
) -> PortResult<Applied> {
    let row = ports.ledger.get(&op.message).await?;
    if let Some(done) = row.as_ref().and_then(already_written) {
        return Ok(Applied {
            written: done,
            repeated: true,
        });
    }
    // Marked before the first request, so that an attempt after this one,
    // whatever it finds, searches the ticket for what this one sent.
    let first_send = match &row {
        Some(row) if row.sending == Sending::NotYet => {
            ports.ledger.start_sending(&op.message).await?
        }
        _ => false,
    };
    crash_point!("writer.after-start-sending");
    let (written, thread, replaced) = create_or_comment(ports, op, first_send, now).await?;
    ports.threads.save(&thread).await?;
    crash_point!("writer.after-thread-saved");
    if let Some(mut row) = row {
        row.status = LedgerStatus::Done;
        row.sending = Sending::Started;
        row.warnings.extend(replaced);
        row.ticket_id = Some(written.ticket_id().to_string());
        row.comment_id = match &written {
            Written::Commented { comment_id, .. } => Some(comment_id.clone()),
            Written::Created { .. } => None,
        };
        ports.ledger.record(&row).await?;
    }
    crash_point!("writer.after-ledger-done");
    Ok(Applied {
        written,
        repeated: false,
    })
}

/// The thread's ticket as known before the operation.
struct Existing {
    ticket_id: String,
    /// The message that created it.
    created_from: ContentHash,
    /// The thread's messages so far (0 when only the backend knew the ticket).
    messages: u64,
}

/// Creates the thread's ticket, or comments on it; what was written, the
/// thread's record as it stands after, and a warning for the ledger when the
/// thread's ticket was gone and this mail started it again. `first_send`:
/// nothing of this operation reached the backend before (see
/// [`Sending::NotYet`]).
async fn create_or_comment<L, T: ThreadMap, S: TicketSink, M: MailSource>(
    ports: WriterPorts<'_, L, T, S, M>,
    op: &TicketOp,
    first_send: bool,
    now: u64,
) -> PortResult<(Written, ThreadRecord, Option<String>)> {
    let (existing, found_absent) = existing_ticket(ports, op).await?;
    let mut replaced = None;
    let (written, created_from, messages) = match existing {
        None => {
            let ticket_id = create_ticket(ports, op, found_absent).await?;
            crash_point!("writer.after-create");
            (Written::Created { ticket_id }, op.message.clone(), 1)
        }
        Some(known) if known.created_from == op.message => (
            Written::Created {
                ticket_id: known.ticket_id,
            },
            known.created_from,
            known.messages.max(1),
        ),
        Some(known) => {
            let first_send = first_send.then_some(FirstSend {
                earlier_messages: known.messages,
            });
            match post_comment(ports, op, &known.ticket_id, first_send).await {
                Err(e) if e.kind == ErrorKind::NotFound => {
                    let ticket_id = replace_gone_ticket(ports, op, &known.ticket_id).await?;
                    replaced = Some(format!(
                        "the thread's ticket {} is gone from {} ({e}): this mail started ticket {ticket_id}",
                        known.ticket_id,
                        ports.sink.name()
                    ));
                    (Written::Created { ticket_id }, op.message.clone(), 1)
                }
                written => (written?, known.created_from, known.messages + 1),
            }
        }
    };
    let thread = ThreadRecord {
        thread_key: op.thread_key.clone(),
        ticket_id: written.ticket_id().to_string(),
        backend: ports.sink.instance(),
        created_from,
        messages,
        last_activity: now,
    };
    Ok((written, thread, replaced))
}

/// The operation's ticket created, with its attachments prepared: backends
/// make it idempotent per thread, so creating again the ticket this operation
/// created before it stopped finishes what was left (the note).
/// `found_absent`: see [`NewTicket::found_absent`].
async fn create_ticket<L, T, S: TicketSink, M: MailSource>(
    ports: WriterPorts<'_, L, T, S, M>,
    op: &TicketOp,
    found_absent: bool,
) -> PortResult<String> {
    let attachments = ticket_attachments(op, ports).await?;
    ports
        .sink
        .create(&new_ticket(op, attachments, found_absent))
        .await
}

/// The thread's ticket is gone from the ticketing system (an agent deleted
/// it, or marked it as spam): this mail starts the thread's ticket again,
/// rather than every later mail of the thread failing on the old id. The
/// backend looks for the thread first, as after a crash. A backend that
/// answers with the gone ticket again (an idempotency key it still keeps)
/// leaves the operation to be retried later.
async fn replace_gone_ticket<L, T, S: TicketSink, M: MailSource>(
    ports: WriterPorts<'_, L, T, S, M>,
    op: &TicketOp,
    gone: &str,
) -> PortResult<String> {
    let ticket_id = create_ticket(ports, op, false).await?;
    if ticket_id == gone {
        return Err(PortError::transient(
            ports.sink.name(),
            format!("ticket {gone} is gone, and creating the thread's ticket named it again"),
        ));
    }
    Ok(ticket_id)
}

/// The thread's ticket, if it has one; and whether the backend was asked and
/// had none.
async fn existing_ticket<L, T: ThreadMap, S: TicketSink, M: MailSource>(
    ports: WriterPorts<'_, L, T, S, M>,
    op: &TicketOp,
) -> PortResult<(Option<Existing>, bool)> {
    let known = |ticket_id, created_from, messages| {
        Some(Existing {
            ticket_id,
            created_from,
            messages,
        })
    };
    // A thread recorded in another ticketing system (the backend or its
    // address changed since): its ticket id names nothing here, or a
    // stranger's ticket, so this system is asked for the thread instead.
    let recorded = (ports.threads.ticket_of(&op.thread_key).await?)
        .filter(|record| record.backend == ports.sink.instance());
    Ok(match recorded {
        // The thread map names this message as the ticket's creator, yet the
        // ledger does not say written: a later mail of the thread was saved
        // while this one was still being retried. Creating again is idempotent
        // and lets the backend finish what this operation had left (the note).
        Some(record) if record.created_from == op.message => {
            let id = create_ticket(ports, op, false).await?;
            (known(id, record.created_from, record.messages), false)
        }
        Some(record) => (
            known(record.ticket_id, record.created_from, record.messages),
            false,
        ),
        // Not recorded: the backend may still have it (crash after create).
        None => match ports.sink.find(&op.thread_key).await? {
            // This operation created it and then stopped: creating again is
            // idempotent and lets the backend finish what it had left (the note).
            Some(found) if found.created_from == op.message => (
                known(
                    create_ticket(ports, op, false).await?,
                    found.created_from,
                    0,
                ),
                false,
            ),
            Some(found) => (known(found.id, found.created_from, 0), false),
            None => (None, true),
        },
    })
}

/// The operation's mail as a comment on the thread's ticket. A ticket that
/// took no more comments may have continued on another: the thread map then
/// sends the thread's later mail there.
async fn post_comment<L, T, S: TicketSink, M: MailSource>(
    ports: WriterPorts<'_, L, T, S, M>,
    op: &TicketOp,
    ticket_id: &str,
    first_send: Option<FirstSend>,
) -> PortResult<Written> {
    let comment = NewComment {
        message: op.message.clone(),
        body: op.body.clone(),
        priority: op.priority,
        kind: op.kind,
        internal_note: op.internal_note.clone(),
        attachments: ticket_attachments(op, ports).await?,
        first_send,
    };
    let posted = ports.sink.comment(ticket_id, &comment).await?;
    crash_point!("writer.after-comment");
    Ok(Written::Commented {
        ticket_id: posted.ticket_id,
        comment_id: posted.comment_id,
    })
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
/// from the stored original once and parsed once; the others listed with the
/// reason.
async fn ticket_attachments<L, T, S: TicketSink, M: MailSource>(
    op: &TicketOp,
    ports: WriterPorts<'_, L, T, S, M>,
) -> PortResult<Vec<TicketAttachment>> {
    let limit = ports.sink.max_attachment_bytes();
    let wanted =
        |a: &&rootmail_domain::AttachmentRef| a.withheld.is_none() && limit > 0 && a.size <= limit;
    let indexes: Vec<usize> = op
        .attachments
        .iter()
        .filter(wanted)
        .map(|a| a.index)
        .collect();
    let raw = match &op.archive_ref {
        Some(location) if !indexes.is_empty() => ports.mail.raw(location).await?,
        _ => None,
    };
    let read = raw.is_some();
    let mut uploads: HashMap<usize, Vec<u8>> = match raw {
        Some(raw) => (indexes.iter().copied())
            .zip(rootmail_domain::mail::attachments_bytes(&raw, &indexes))
            .filter_map(|(index, bytes)| Some((index, bytes?)))
            .collect(),
        None => HashMap::new(),
    };
    Ok(op
        .attachments
        .iter()
        .map(|a| TicketAttachment {
            name: a.name.clone(),
            content_type: a.content_type.clone(),
            size: a.size,
            content: attachment_content(op, a, limit, (read, uploads.remove(&a.index))),
        })
        .collect())
}

/// One attachment's bytes from the original (when it was `read`, and held
/// the attachment), or why it is only listed.
fn attachment_content(
    op: &TicketOp,
    a: &rootmail_domain::AttachmentRef,
    limit: usize,
    (read, bytes): (bool, Option<Vec<u8>>),
) -> AttachmentContent {
    let listed = |reason: String| AttachmentContent::Listed {
        reason,
        original: op.archive_ref.clone(),
    };
    match (&a.withheld, read, bytes) {
        (Some(reason), ..) => listed(format!("not attached: {reason}")),
        (None, ..) if limit == 0 => {
            listed("not attached: this ticketing system takes no uploads".into())
        }
        (None, ..) if a.size > limit => listed(format!(
            "not attached: larger than the {} limit of this ticketing system",
            human_bytes(limit)
        )),
        (None, false, _) => listed("not attached: the original message could not be read".into()),
        (None, true, Some(bytes)) => AttachmentContent::Upload(bytes),
        (None, true, None) => listed("not attached: not found in the original message".into()),
    }
}

fn human_bytes(n: usize) -> String {
    match n {
        n if n >= 1 << 20 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

/// The ticket an operation creates, with the attachments prepared for it;
/// `found_absent`: see [`NewTicket::found_absent`].
pub fn new_ticket(
    op: &TicketOp,
    attachments: Vec<TicketAttachment>,
    found_absent: bool,
) -> NewTicket {
    NewTicket {
        thread_key: op.thread_key.clone(),
        idempotency_key: create_key(&op.thread_key, &op.message),
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

/// The key of one message's create of its thread's ticket: the thread's and
/// the message's. The queue delivers a thread's operations one at a time, so
/// only the same message's retries share it. With the thread's alone, a
/// thread whose ticket an agent deleted could never be ticketed again: the
/// receiver answered the next mail's create with the deleted ticket (the
/// webhook contract: the same key, the same id), or refused another body
/// under the key (Zendesk, for two hours).
pub fn create_key(thread: &ThreadKey, message: &ContentHash) -> String {
    format!("{}-{}", idempotency_key(thread), &message.as_str()[..16])
}
