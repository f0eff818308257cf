//! What the pipeline stores and passes between its two stages.

use rootmail_domain::{AttachmentRef, ContentHash, Disposition, Kind, Priority, ThreadKey};
use serde::{Deserialize, Serialize};

/// Where a message is in the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerStatus {
    /// Claimed by a run that has not finished (or crashed).
    Claimed,
    /// Triaged; a ticket operation is queued.
    Queued,
    /// Finished: the disposition is carried out.
    Done,
}

/// One ledger row per message (keyed by content hash). Never deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRow {
    pub content_hash: ContentHash,
    pub source: String,
    pub status: LedgerStatus,
    pub claimed_at: u64,
    #[serde(default)]
    pub archive_ref: Option<String>,
    #[serde(default)]
    pub kind: Option<Kind>,
    #[serde(default)]
    pub disposition: Option<Disposition>,
    #[serde(default)]
    pub priority: Option<Priority>,
    #[serde(default)]
    pub thread_key: Option<ThreadKey>,
    #[serde(default)]
    pub account_id: Option<String>,
    #[serde(default)]
    pub message_id: Option<String>,
    #[serde(default)]
    pub ses_message_id: Option<String>,
    #[serde(default)]
    pub ticket_id: Option<String>,
    #[serde(default)]
    pub comment_id: Option<String>,
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Why the message could not be processed (unreadable, oversized), if so.
    #[serde(default)]
    pub failure: Option<String>,
    /// From AWS, authenticated (an AWS sender domain that passed SPF, DKIM or
    /// DMARC aligned): what `accounts list --silent-for` counts.
    #[serde(default)]
    pub from_aws: bool,
    /// Whether the message's ticket operation may have reached the ticketing
    /// system: what lets the writer skip searching a ticket for it.
    #[serde(default)]
    pub sending: Sending,
    /// The original holds a secret and was sealed: so is any other delivery
    /// of it.
    #[serde(default)]
    pub sealed: bool,
    /// The claim's own random id, where a store needs one to know its own
    /// claim again (DynamoDB: an SDK retry of a claim whose answer was lost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_id: Option<String>,
}

/// What the ledger knows about a queued operation reaching the ticketing system.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sending {
    /// Not known: a row written before rootmail kept this (an earlier writer
    /// may have sent without marking), or one triaged again after a
    /// redelivery. The writer searches the ticket before commenting.
    #[default]
    Unknown,
    /// Queued by the run that claimed it, and no writer has taken it since.
    NotYet,
    /// A writer marked it before its first request; every later attempt
    /// searches the ticket, as the comment may be there.
    Started,
}

impl LedgerRow {
    pub fn claimed(hash: &ContentHash, source: &str, now: u64) -> Self {
        Self {
            content_hash: hash.clone(),
            source: source.to_string(),
            status: LedgerStatus::Claimed,
            claimed_at: now,
            archive_ref: None,
            kind: None,
            disposition: None,
            priority: None,
            thread_key: None,
            account_id: None,
            message_id: None,
            ses_message_id: None,
            ticket_id: None,
            comment_id: None,
            warnings: Vec::new(),
            failure: None,
            from_aws: false,
            sending: Sending::Unknown,
            sealed: false,
            claim_id: None,
        }
    }
}

/// The outcome of claiming a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This run owns the message (new, or a stale claim taken over).
    Owned(LedgerRow),
    /// Another run holds a fresh claim: leave it (it will finish or go stale).
    Busy,
    /// Already triaged; only its ticket operation may remain.
    Seen(LedgerRow),
}

/// A ticket operation: everything the writer needs, already redacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketOp {
    /// The message's content hash: the idempotency key of the comment it makes.
    pub message: ContentHash,
    pub thread_key: ThreadKey,
    pub kind: Kind,
    pub priority: Priority,
    pub account_id: Option<String>,
    pub customer: Option<String>,
    pub subject: String,
    pub body: String,
    /// For the provider's engineers only (see `TicketDraft::internal_note`).
    #[serde(default)]
    pub internal_note: String,
    /// Attachments to upload, fetched from `archive_ref` by the writer (an SQS
    /// message is too small to carry them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentRef>,
    /// Where the original message is stored (as `MailArchive::put` answered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_ref: Option<String>,
    pub quarantined: bool,
    /// When the mail arrived (ms since the epoch), for end-to-end latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at_ms: Option<u64>,
}

/// The most a ticket operation may take serialized. SQS refuses a message
/// over the queue's `MaximumMessageSize` (256 KiB, set in the template), and
/// a mail whose operation it refuses would be retried into the DLQ and never
/// ticketed; room is kept for the send's other parts.
pub const MAX_QUEUED_OP_BYTES: usize = 240 * 1024;

impl TicketOp {
    /// Shortens what a mail can make long until the operation, serialized,
    /// fits `limit`: the body first, which then ends by saying so, and the
    /// attachments to upload (from the last) only if they alone leave no
    /// room for a body. The subject, the internal note (the original's
    /// location) and the rest stay whole; rendering bounds them. Returns
    /// whether anything was cut.
    pub fn fit_within(&mut self, limit: usize) -> bool {
        if serialized_len(self) <= limit {
            return false;
        }
        let body = std::mem::take(&mut self.body);
        let listed = self.attachments.len();
        // Each attachment measured once, so this stays linear in them.
        let sizes: Vec<usize> = self
            .attachments
            .iter()
            .map(|a| serialized_len(a) + 1)
            .collect();
        let attachments = std::mem::take(&mut self.attachments);
        let (mut kept_bytes, bare) = (sizes.iter().sum::<usize>(), serialized_len(self));
        let mut keep = listed;
        while keep > 0 && bare + kept_bytes + 1024 > limit / 2 {
            keep -= 1;
            kept_bytes -= sizes[keep];
        }
        self.attachments = attachments;
        self.attachments.truncate(keep);
        let notice = format!(
            "\n\n[cut: this ticket is longer than the ticket queue takes ({limit} bytes): its text \
             ends here{}; the original message is kept (see the internal note)]",
            match listed - self.attachments.len() {
                0 => String::new(),
                n => format!(" and {n} attachment(s) are not attached"),
            }
        );
        let room = limit.saturating_sub(serialized_len(self) + 2 * notice.len());
        // A character takes at most twice its bytes in JSON once control
        // characters are gone (`"` and `\` are escaped; defang replaced the rest).
        let mut kept = body[..body.floor_char_boundary(room / 2)].to_string();
        kept.push_str(&notice);
        self.body = kept;
        true
    }
}

/// How many bytes `value` takes as JSON, without building the text (what a
/// buffer for it must hold, whether a queue takes it).
pub fn json_len(value: &(impl Serialize + ?Sized)) -> serde_json::Result<usize> {
    struct ByteCount(usize);
    impl std::io::Write for ByteCount {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = ByteCount(0);
    serde_json::to_writer(&mut count, value)?;
    Ok(count.0)
}

/// [`json_len`], or more than any limit when `value` cannot be serialized.
fn serialized_len(value: &impl Serialize) -> usize {
    json_len(value).unwrap_or(usize::MAX)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTicket {
    pub thread_key: ThreadKey,
    /// Derived from the thread key and the message ([`crate::create_key`]),
    /// for backends that deduplicate creates.
    pub idempotency_key: String,
    pub subject: String,
    pub body: String,
    pub priority: Priority,
    pub kind: Kind,
    pub account_id: Option<String>,
    pub customer: Option<String>,
    pub message: ContentHash,
    /// Goes in an internal note where the backend has them.
    pub internal_note: String,
    pub attachments: Vec<TicketAttachment>,
    /// The caller asked the backend (`TicketSink::find`) for the thread's
    /// ticket in this same attempt and it had none: a backend that would look
    /// again before creating need not (a rate-limited API counts every request).
    /// A hint to the backend, never part of what is sent: a webhook's body must
    /// stay the same for the same idempotency key on every attempt.
    #[serde(skip)]
    pub found_absent: bool,
}

impl NewTicket {
    /// The comment this message makes on a thread another message opened
    /// (the thread's ticket was there after all).
    pub fn as_comment(&self) -> NewComment {
        NewComment {
            message: self.message.clone(),
            body: self.body.clone(),
            priority: self.priority,
            kind: self.kind,
            internal_note: self.internal_note.clone(),
            attachments: self.attachments.clone(),
            first_send: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewComment {
    /// The message this comment reports; a second comment for it is never made.
    pub message: ContentHash,
    pub body: String,
    pub priority: Priority,
    pub kind: Kind,
    pub internal_note: String,
    pub attachments: Vec<TicketAttachment>,
    /// Set when nothing of this operation reached the backend before this
    /// attempt (see [`Sending::NotYet`]): the backend need not search the
    /// ticket for the message's comment. A hint, never part of what is sent.
    #[serde(skip)]
    pub first_send: Option<FirstSend>,
}

/// What the writer knows when an operation is sent for the first time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstSend {
    /// The thread's messages before this one, as the thread map counts them
    /// (every ticket of the thread; 0 when only the backend knew the ticket).
    /// rootmail's own comments on the ticket are at most twice as many (a
    /// comment and its note each), which a backend with a comment limit
    /// weighs before trusting that the ticket has room without counting.
    pub earlier_messages: u64,
}

/// An attachment of the mail, with its bytes when the backend should upload it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketAttachment {
    pub name: String,
    pub content_type: String,
    pub size: usize,
    pub content: AttachmentContent,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentContent {
    /// Upload these bytes.
    Upload(#[serde(with = "base64_bytes")] Vec<u8>),
    /// List it instead, with the reason and where the original is.
    Listed {
        reason: String,
        original: Option<String>,
    },
}

impl TicketAttachment {
    pub fn bytes(&self) -> Option<&[u8]> {
        match &self.content {
            AttachmentContent::Upload(bytes) => Some(bytes),
            AttachmentContent::Listed { .. } => None,
        }
    }
}

impl std::fmt::Debug for TicketAttachment {
    // The bytes would flood a log line; their size says enough.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let content = match &self.content {
            AttachmentContent::Upload(bytes) => format!("upload {} bytes", bytes.len()),
            AttachmentContent::Listed { reason, .. } => format!("listed: {reason}"),
        };
        f.debug_struct("TicketAttachment")
            .field("name", &self.name)
            .field("content_type", &self.content_type)
            .field("size", &self.size)
            .field("content", &content)
            .finish()
    }
}

/// Bytes as base64 in JSON (the webhook's schema).
mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// Where a comment landed: usually the ticket asked for, or the ticket that
/// continues it when that one takes no more comments (closed, or full).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedComment {
    pub ticket_id: String,
    pub comment_id: String,
}

impl PostedComment {
    pub fn on(ticket_id: impl ToString, comment_id: impl ToString) -> Self {
        Self {
            ticket_id: ticket_id.to_string(),
            comment_id: comment_id.to_string(),
        }
    }
}

/// The thread map's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadRecord {
    pub thread_key: ThreadKey,
    pub ticket_id: String,
    pub backend: String,
    /// The message whose operation created the ticket.
    pub created_from: ContentHash,
    pub messages: u64,
    pub last_activity: u64,
}

/// A ticket found in the backend by its thread key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundTicket {
    pub id: String,
    pub created_from: ContentHash,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(body: String, attachments: usize) -> TicketOp {
        TicketOp {
            message: ContentHash::of(b"m"),
            thread_key: serde_json::from_value(serde_json::json!("msg:m@x")).unwrap(),
            kind: Kind::Unknown,
            priority: Priority::Normal,
            account_id: None,
            customer: None,
            subject: "s".into(),
            body,
            internal_note: "Original message: s3://b/inbound/m".into(),
            attachments: (0..attachments)
                .map(|index| AttachmentRef {
                    index,
                    name: "\"".repeat(250),
                    content_type: "application/octet-stream".into(),
                    size: 1,
                    withheld: None,
                })
                .collect(),
            archive_ref: Some("s3://b/inbound/m".into()),
            quarantined: false,
            received_at_ms: None,
        }
    }

    /// A hostile mail's ticket (a body of what JSON escapes, 50 attachment
    /// names of quotes) is cut to fit the queue, and says so; the note with
    /// the original's location stays whole. A small one is left as it is.
    #[test]
    fn a_ticket_operation_is_cut_to_fit_the_queue() {
        for (body, attachments) in [("\"\\".repeat(200_000), 50), ("é".repeat(300_000), 0)] {
            let mut big = op(body, attachments);
            assert!(big.fit_within(MAX_QUEUED_OP_BYTES));
            let len = serde_json::to_vec(&big).unwrap().len();
            assert!(len <= MAX_QUEUED_OP_BYTES, "{len}");
            assert!(
                len > MAX_QUEUED_OP_BYTES / 3,
                "not cut further than needed: {len}"
            );
            assert!(
                big.body.ends_with("(see the internal note)]"),
                "{}",
                &big.body[big.body.len() - 200..]
            );
            assert_eq!(big.internal_note, "Original message: s3://b/inbound/m");
            assert_eq!(big.attachments.len(), attachments, "the body is cut first");
        }
        // Attachments that alone take most of the room go, from the last.
        let mut crowded = op("x".into(), 1_000);
        assert!(crowded.fit_within(MAX_QUEUED_OP_BYTES));
        assert!(serde_json::to_vec(&crowded).unwrap().len() <= MAX_QUEUED_OP_BYTES);
        assert!(crowded.attachments.len() < 1_000);
        assert!(crowded.body.contains("attachment(s) are not attached"));
        let mut small = op("hello".into(), 3);
        let before = small.clone();
        assert!(!small.fit_within(MAX_QUEUED_OP_BYTES));
        assert_eq!(small, before);
    }
}
