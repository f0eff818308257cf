//! Zendesk Support: one ticket per thread, a public comment for each later
//! message, the internal note as a private comment, attachments as uploads.
//!
//! Every write can be repeated without a second effect:
//! - create: the `Idempotency-Key` makes Zendesk replay its answer for 2 hours,
//!   and the ticket's `external_id` is the thread key, looked up before posting,
//!   so a create repeated later finds the first ticket instead of making another;
//! - the ticket's description (its first comment) ends with the creating
//!   message's marker (signed: see [`crate::marker`]), which
//!   [`TicketSink::find`] reads back;
//! - comments have no idempotency key: unless the writer knows that no
//!   earlier attempt sent anything, the ticket's comments are searched,
//!   newest first, for the message's marker before one is added (a public one
//!   is the comment, a private one its internal note), and a comment is sent
//!   once per call, never repeated by the HTTP retry loop (see
//!   `put_once` in `api.rs`); a 409 (a concurrent change) is left to the queue;
//! - a body is at most [`MAX_COMMENT_BYTES`]: Zendesk would drop the end of a
//!   longer one, marker included, without an error;
//! - uploads are made right before the call that uses their tokens (a token lives
//!   60 minutes), never carried over from an earlier attempt.
//!
//! Zendesk renders Markdown in comments agents write, so mail text is escaped
//! ([`literal`]) in the comments and notes rootmail (the API user) adds, and sent
//! as written as the first comment of a ticket an end user requests. With an
//! organization, the requester is made its member before the ticket names it.
//! A comment raises the ticket's priority when its mail is more urgent, never
//! lowers it.
//!
//! What an operation costs (Zendesk limits requests a minute): a ticket is
//! its lookup, the create and the note; a comment is the comment and the
//! note, whose update also raises the priority the comment's answer showed
//! (without a note, the ticket is read first and the comment's update raises
//! it). Uploads add one each. The ticket's comments are searched first (one
//! request a page of 100) when an earlier attempt may have sent the comment
//! (the writer's ledger mark says when it cannot have: `FirstSend`), and when
//! the thread's own comments could fill more than half of the ticket's limit,
//! since the search is also what counts them.
//!
//! A ticket holds at most 5,000 comments and a closed ticket takes none: the
//! message then opens a follow-up ticket (same `external_id`,
//! `via_followup_source_id` = the old one) whose first comment is the message;
//! the new ticket's id is logged. [`TicketSink::find`] returns the newest ticket
//! of a thread, and commenting on the old ticket finds its follow-up again, so
//! the thread continues there either way.

mod api;
mod comments;
mod follow_up;
mod markdown;
mod ticket_fields;

pub use api::priority_name;
pub use markdown::literal;

use crate::credential::Credential;
use crate::http::HttpClient;
use crate::marker::MarkerKey;
use crate::ticket_text::original_location;
use api::{comment_json, ticket_number};
use rootmail_domain::ThreadKey;
use rootmail_pipeline::{
    FoundTicket, NewComment, NewTicket, PortError, PortResult, PostedComment, TicketSink,
};
use serde::Deserialize;
use serde_json::{Value, json};
use std::future::Future;
use std::pin::Pin;

const PORT: &str = "zendesk";

/// The attachment size Zendesk accepts by default.
pub const DEFAULT_MAX_ATTACHMENT_BYTES: usize = 50 * 1024 * 1024;

/// Zendesk's limit of comments (public and private) on one ticket.
pub const MAX_COMMENTS_PER_TICKET: usize = 5000;

/// The longest comment body sent. Zendesk keeps 64 KB of a comment and drops
/// the rest without an error, and the marker is at the end: a longer comment
/// would lose it, and every redelivery would add the comment again.
pub const MAX_COMMENT_BYTES: usize = 64_000;

#[derive(Debug, Clone)]
pub struct ZendeskOptions {
    /// `https://your-subdomain.zendesk.com`
    pub base_url: String,
    /// Set on every new ticket: `(field id, value)`.
    pub custom_fields: Vec<(u64, Value)>,
    pub max_attachment_bytes: usize,
    /// When set, a ticket with an account id is requested by
    /// `aws-<account>@<domain>` (Zendesk creates that end user), so the accounts
    /// are told apart in views. Never the root-mail domain itself: Zendesk mails
    /// public comments to the requester, and they would come back as new mail.
    /// `None`: the API user is the requester.
    pub requester_domain: Option<String>,
    /// Customer name (as in the account directory) -> Zendesk organization id.
    /// There is deliberately no lookup by name: Zendesk's organization
    /// autocomplete matches prefixes, and a ticket filed under another customer's
    /// organization shows one customer's root mail to another's users.
    pub organizations: Vec<(String, u64)>,
    /// Comments one ticket may hold before a follow-up is opened.
    pub max_comments: usize,
}

impl ZendeskOptions {
    pub fn new(base_url: &str) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            custom_fields: Vec::new(),
            max_attachment_bytes: DEFAULT_MAX_ATTACHMENT_BYTES,
            requester_domain: None,
            organizations: Vec::new(),
            max_comments: MAX_COMMENTS_PER_TICKET,
        }
    }
}

/// The secret: `{"email": ..., "token": ...}` (an agent's address and an API token).
#[derive(Clone, Deserialize)]
pub struct ZendeskCredentials {
    pub email: String,
    pub token: Credential,
}

#[derive(Clone)]
pub struct Zendesk {
    http: HttpClient,
    options: ZendeskOptions,
    credentials: ZendeskCredentials,
    key: MarkerKey,
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = PortResult<T>> + Send + 'a>>;

impl Zendesk {
    pub fn new(
        http: HttpClient,
        options: ZendeskOptions,
        credentials: ZendeskCredentials,
        key: MarkerKey,
    ) -> Self {
        Self {
            http,
            options,
            credentials,
            key,
        }
    }

    /// A new ticket for the thread, its first comment this message (escaped
    /// only when the API user is the requester), then its internal note.
    async fn open(&self, ticket: &NewTicket) -> PortResult<u64> {
        let key = ticket.thread_key.as_str();
        let mut fields = json!({
            "subject": ticket.subject,
            "external_id": key,
            "priority": priority_name(ticket.priority),
            "tags": Self::tags(ticket),
        });
        self.add_custom_fields(&mut fields);
        // The first comment is the requester's: escaped only for the API user.
        let end_user = self.set_requester(ticket, &mut fields).await?;
        let (tokens, listed) = self.upload(&ticket.attachments).await?;
        let original = original_location(&ticket.internal_note);
        let text = self.comment_text(
            "",
            &ticket.body,
            &listed,
            &ticket.message,
            !end_user,
            original,
        );
        fields["comment"] = comment_json(&text, true, &tokens);
        let posted = self
            .post_ticket(
                &ticket.idempotency_key,
                &json!({"ticket": fields}),
                key,
                &ticket.message,
            )
            .await?;
        let present = if posted.fresh { Some(false) } else { None };
        self.note(
            posted.id,
            &ticket.message,
            &ticket.internal_note,
            present,
            None,
        )
        .await?;
        Ok(posted.id)
    }
}

fn permanent(message: String) -> PortError {
    PortError::permanent(PORT, message)
}

impl TicketSink for Zendesk {
    fn name(&self) -> &'static str {
        PORT
    }

    fn instance(&self) -> String {
        format!("{PORT} {}", self.options.base_url)
    }

    fn max_attachment_bytes(&self) -> usize {
        self.options.max_attachment_bytes
    }

    async fn find(&self, key: &ThreadKey) -> PortResult<Option<FoundTicket>> {
        Ok(self
            .newest_ticket(key.as_str())
            .await?
            .map(|ticket| FoundTicket {
                id: ticket.id.to_string(),
                created_from: self.created_from(&ticket),
            }))
    }

    async fn create(&self, ticket: &NewTicket) -> PortResult<String> {
        // Repeated after its answer was lost, or hours later: the first ticket
        // is found. Not asked again when the caller's lookup just found none.
        let existing = if ticket.found_absent {
            None
        } else {
            self.newest_ticket(ticket.thread_key.as_str()).await?
        };
        let Some(existing) = existing else {
            return Ok(self.open(ticket).await?.to_string());
        };
        if self.created_from(&existing) != ticket.message {
            // The thread got its ticket from another message meanwhile: this
            // message becomes a comment there, never a second ticket.
            self.comment_on(existing.id, &ticket.as_comment(), 0)
                .await?;
        } else {
            self.note(
                existing.id,
                &ticket.message,
                &ticket.internal_note,
                None,
                None,
            )
            .await?;
        }
        Ok(existing.id.to_string())
    }

    async fn comment(&self, ticket_id: &str, comment: &NewComment) -> PortResult<PostedComment> {
        self.comment_on(ticket_number(ticket_id)?, comment, 0).await
    }
}
