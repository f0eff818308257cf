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
//! - comments have no idempotency key: the ticket's comments are searched,
//!   newest first, for the message's marker before one is added (a public one
//!   is the comment, a private one its internal note), and a comment is sent
//!   once per call, never repeated by the HTTP retry loop (see
//!   [`Zendesk::put_once`]); a 409 (a concurrent change) is left to the queue;
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
//! A ticket holds at most 5,000 comments and a closed ticket takes none: the
//! message then opens a follow-up ticket (same `external_id`,
//! `via_followup_source_id` = the old one) whose first comment is the message;
//! the new ticket's id is logged. [`TicketSink::find`] returns the newest ticket
//! of a thread, and commenting on the old ticket finds its follow-up again, so
//! the thread continues there either way.

use crate::common::{Credential, capped, original_location, text_with_listing, thread_token};
use crate::http::{self, HttpClient};
use crate::marker::MarkerKey;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{RequestBuilder, Response, StatusCode};
use rootmail_domain::{ContentHash, Priority, ThreadKey};
use rootmail_pipeline::{
    AttachmentContent, FoundTicket, NewComment, NewTicket, PortError, PortResult, PostedComment,
    TicketAttachment, TicketSink,
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

/// Comments per listed page (Zendesk's largest).
const PAGE_SIZE: &str = "100";

/// Pages read before a listing is given up (5,000 comments are 50 pages).
const MAX_PAGES: usize = 100;

/// Follow-up tickets opened for one message before giving up (a loop guard).
const MAX_FOLLOWUPS: usize = 3;

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

/// Zendesk's priorities are the taxonomy's, by name.
pub fn priority_name(priority: Priority) -> &'static str {
    match priority {
        Priority::Low => "low",
        Priority::Normal => "normal",
        Priority::High => "high",
        Priority::Urgent => "urgent",
    }
}

fn parse_priority(name: &str) -> Option<Priority> {
    match name {
        "low" => Some(Priority::Low),
        "normal" => Some(Priority::Normal),
        "high" => Some(Priority::High),
        "urgent" => Some(Priority::Urgent),
        _ => None,
    }
}

/// `{"ticket": ..., "audit": ...}`: the answer to a create or an update.
#[derive(Deserialize)]
struct TicketAnswer {
    ticket: ZTicket,
    #[serde(default)]
    audit: Option<Audit>,
}

impl TicketAnswer {
    /// The comment the call added: a comment is an event of the call's audit,
    /// with the same id as in the ticket's comment list.
    fn comment_id(&self) -> Option<String> {
        self.audit
            .as_ref()?
            .events
            .iter()
            .find(|e| e.kind == "Comment")
            .map(|e| id_text(&e.id))
    }
}

#[derive(Deserialize)]
struct Audit {
    #[serde(default)]
    events: Vec<AuditEvent>,
}

#[derive(Deserialize)]
struct AuditEvent {
    id: Value,
    #[serde(rename = "type", default)]
    kind: String,
}

#[derive(Clone, Deserialize)]
struct ZTicket {
    id: u64,
    #[serde(default)]
    external_id: Option<String>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    priority: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    organization_id: Option<u64>,
    #[serde(default)]
    requester_id: Option<u64>,
    #[serde(default)]
    submitter_id: Option<u64>,
}

#[derive(Deserialize)]
struct OneTicket {
    ticket: ZTicket,
}

#[derive(Deserialize)]
struct TicketPage {
    #[serde(default)]
    tickets: Vec<ZTicket>,
    #[serde(default)]
    next_page: Option<String>,
}

#[derive(Deserialize)]
struct CommentPage {
    #[serde(default)]
    comments: Vec<ZComment>,
    #[serde(default)]
    meta: Option<CursorMeta>,
    #[serde(default)]
    links: Option<CursorLinks>,
    /// Offset pagination (answered when a server ignores `page[size]`).
    #[serde(default)]
    next_page: Option<String>,
}

impl CommentPage {
    fn next(&self) -> Option<&str> {
        match self.meta.as_ref().and_then(|m| m.has_more) {
            Some(true) => self.links.as_ref()?.next.as_deref(),
            Some(false) => None,
            None => self.next_page.as_deref(),
        }
    }
}

#[derive(Deserialize)]
struct CursorMeta {
    #[serde(default)]
    has_more: Option<bool>,
}

#[derive(Deserialize)]
struct CursorLinks {
    #[serde(default)]
    next: Option<String>,
}

#[derive(Deserialize)]
struct ZComment {
    id: Value,
    #[serde(default)]
    body: String,
    #[serde(default)]
    public: bool,
}

#[derive(Deserialize)]
struct Uploaded {
    upload: Upload,
}

#[derive(Deserialize)]
struct Upload {
    token: String,
}

/// What a ticket's comments say about one message.
#[derive(Debug, Default)]
struct Marked {
    /// The public comment for the message, if it is there.
    public: Option<String>,
    /// Whether its internal note (a private comment) is there.
    private: bool,
    /// Comments counted; all of them unless the search stopped at a match.
    total: usize,
}

/// A ticket created (or found created) by a post.
struct Posted {
    id: u64,
    /// The first comment's id when the answer carried it.
    comment_id: Option<String>,
    /// Zendesk made it now (not replayed, not found): it has no note yet.
    fresh: bool,
}

/// Why a ticket takes no more comments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Full {
    Comments,
    Closed,
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

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.options.base_url)
    }

    fn auth(&self, request: RequestBuilder) -> RequestBuilder {
        request.basic_auth(
            format!("{}/token", self.credentials.email),
            Some(self.credentials.token.expose()),
        )
    }

    async fn json<T: for<'de> Deserialize<'de>>(
        &self,
        what: &str,
        response: Response,
    ) -> PortResult<T> {
        if response.status() == StatusCode::NOT_FOUND {
            return Err(permanent(format!(
                "{what}: HTTP 404 (wrong URL, or the ticket was deleted?)"
            )));
        }
        response
            .json()
            .await
            .map_err(|e| permanent(format!("{what}: unexpected answer: {e}")))
    }

    /// A page link from an answer, followed only on the configured host (the
    /// request carries the credentials).
    fn same_site(&self, link: &str) -> PortResult<String> {
        if link.starts_with(&format!("{}/", self.options.base_url)) {
            Ok(link.to_string())
        } else {
            Err(permanent(format!(
                "a page link leads away from {}: {link}",
                self.options.base_url
            )))
        }
    }

    /// The newest ticket with this external id (a thread's follow-ups share it).
    async fn newest_ticket(&self, external_id: &str) -> PortResult<Option<ZTicket>> {
        let mut url = self.url("/api/v2/tickets");
        let mut first = true;
        let mut newest: Option<ZTicket> = None;
        for _ in 0..MAX_PAGES {
            let response = self
                .http
                .send("finding a ticket", |c| {
                    let request = self.auth(c.get(&url));
                    if first {
                        request.query(&[("external_id", external_id)])
                    } else {
                        request
                    }
                })
                .await?;
            if response.status() == StatusCode::NOT_FOUND {
                return Ok(newest);
            }
            let page: TicketPage = self.json("finding a ticket", response).await?;
            for ticket in page.tickets {
                if newest.as_ref().is_none_or(|n| ticket.id > n.id) {
                    newest = Some(ticket);
                }
            }
            match page.next_page {
                Some(next) => {
                    url = self.same_site(&next)?;
                    first = false;
                }
                None => return Ok(newest),
            }
        }
        Err(permanent(format!(
            "finding a ticket: more than {MAX_PAGES} pages of tickets with one external id"
        )))
    }

    async fn show(&self, ticket: u64) -> PortResult<ZTicket> {
        let url = self.url(&format!("/api/v2/tickets/{ticket}"));
        let response = self
            .http
            .send("reading a ticket", |c| self.auth(c.get(&url)))
            .await?;
        let one: OneTicket = self.json("reading a ticket", response).await?;
        Ok(one.ticket)
    }

    /// Searches the ticket's comments for `message`'s marker, newest first where
    /// the server sorts so, all pages until what is wanted is found.
    async fn marked(
        &self,
        ticket: u64,
        message: &ContentHash,
        want_note: bool,
    ) -> PortResult<Marked> {
        let mut url = self.url(&format!("/api/v2/tickets/{ticket}/comments"));
        let mut first = true;
        let mut marked = Marked::default();
        for _ in 0..MAX_PAGES {
            let response = self
                .http
                .send("listing comments", |c| {
                    let request = self.auth(c.get(&url));
                    if first {
                        request.query(&[("page[size]", PAGE_SIZE), ("sort", "-created_at")])
                    } else {
                        request
                    }
                })
                .await?;
            let page: CommentPage = self.json("listing comments", response).await?;
            for comment in &page.comments {
                marked.total += 1;
                if !self.ends_with_marker(&comment.body, message) {
                    continue;
                }
                if comment.public {
                    marked.public.get_or_insert_with(|| id_text(&comment.id));
                } else {
                    marked.private = true;
                }
            }
            // Whatever the order of the pages, stop only when nothing is missing.
            if marked.public.is_some() && (marked.private || !want_note) {
                return Ok(marked);
            }
            match page.next() {
                Some(next) => {
                    url = self.same_site(next)?;
                    first = false;
                }
                None => return Ok(marked),
            }
        }
        Err(permanent(format!(
            "listing comments: ticket {ticket} has more than {MAX_PAGES} pages of comments"
        )))
    }

    /// Uploads the attachments that have bytes, right before their tokens are
    /// used. Returns the tokens, and the attachments as the body lists them: one
    /// Zendesk refuses (too large for this account, a blocked type) is listed
    /// with the reason instead of failing the whole operation.
    async fn upload(
        &self,
        attachments: &[TicketAttachment],
    ) -> PortResult<(Vec<String>, Vec<TicketAttachment>)> {
        let url = self.url("/api/v2/uploads");
        let mut tokens = Vec::new();
        let mut listed = Vec::with_capacity(attachments.len());
        for attachment in attachments {
            let Some(bytes) = attachment.bytes() else {
                listed.push(attachment.clone());
                continue;
            };
            let name = if attachment.name.trim().is_empty() {
                "attachment"
            } else {
                attachment.name.as_str()
            };
            let content_type = HeaderValue::from_str(&attachment.content_type)
                .ok()
                .filter(|_| !attachment.content_type.is_empty())
                .unwrap_or_else(|| HeaderValue::from_static("application/octet-stream"));
            let sent = self
                .http
                .send("uploading an attachment", |c| {
                    self.auth(c.post(&url))
                        .query(&[("filename", name)])
                        .header(CONTENT_TYPE, content_type.clone())
                        .body(bytes.to_vec())
                })
                .await;
            match sent {
                Ok(response) => {
                    let uploaded: Uploaded = self.json("uploading an attachment", response).await?;
                    tokens.push(uploaded.upload.token);
                }
                Err(e) if [413, 415, 422].into_iter().any(|s| refused_with(&e, s)) => {
                    tracing::warn!(size = attachment.size, error = %e, "zendesk refused an attachment; listing it");
                    let mut refused = attachment.clone();
                    refused.content = AttachmentContent::Listed {
                        reason: "not attached: Zendesk refused the upload".into(),
                        original: None,
                    };
                    listed.push(refused);
                }
                Err(e) => return Err(e),
            }
        }
        Ok((tokens, listed))
    }

    /// Posts a new ticket. `external_id` and `message` find it again when the
    /// idempotency key was used with another body (an earlier attempt, with other
    /// upload tokens).
    async fn post_ticket(
        &self,
        idempotency_key: &str,
        payload: &Value,
        external_id: &str,
        message: &ContentHash,
    ) -> PortResult<Posted> {
        let url = self.url("/api/v2/tickets");
        let sent = self
            .http
            .send("creating a ticket", |c| {
                self.auth(c.post(&url))
                    .header("Idempotency-Key", idempotency_key)
                    .json(payload)
            })
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e)
                if refused_with(&e, 400) && e.code.as_deref() == Some("IdempotentRequestError") =>
            {
                return match self.newest_ticket(external_id).await? {
                    Some(ticket) if self.created_from(&ticket) == *message => Ok(Posted {
                        id: ticket.id,
                        comment_id: None,
                        fresh: false,
                    }),
                    _ => Err(e),
                };
            }
            Err(e) => return Err(e),
        };
        let replayed = response
            .headers()
            .get("x-idempotency-lookup")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"hit"));
        let answer: TicketAnswer = self.json("creating a ticket", response).await?;
        Ok(Posted {
            id: answer.ticket.id,
            comment_id: answer.comment_id(),
            fresh: !replayed,
        })
    }

    /// One `PUT` with a comment, sent once per attempt and never repeated after
    /// an answer that leaves open whether Zendesk applied it (a 5xx, a timeout):
    /// repeating it would post the comment twice. Those failures are transient,
    /// so the queue redelivers the operation, and the redelivery looks for the
    /// comment before adding it. A 429 means nothing was applied: a short
    /// `Retry-After` is waited for here, a long one (the limit of 30 updates per
    /// ticket in 10 minutes) is left to the queue.
    ///
    /// Returns the added comment's id when the answer's audit carries it.
    async fn put_once(
        &self,
        what: &str,
        ticket: u64,
        payload: &Value,
    ) -> PortResult<Option<String>> {
        let url = self.url(&format!("/api/v2/tickets/{ticket}"));
        let response = self
            .http
            .send_once(what, |c| self.auth(c.put(&url)).json(payload))
            .await?;
        let status = response.status();
        if status.is_success() {
            // Applied: an answer that cannot be read only loses the id, which
            // the caller finds by the marker.
            let answer = response.json::<TicketAnswer>().await.ok();
            return Ok(answer.and_then(|a| a.comment_id()));
        }
        if status == StatusCode::NOT_FOUND {
            return Err(PortError::http(
                PORT,
                404,
                format!("{what}: HTTP 404: ticket {ticket} is not there (deleted?)"),
            ));
        }
        // Another change to the ticket won the race; nothing of this one was
        // applied, and the queue's redelivery (which looks first) tries again.
        if status == StatusCode::CONFLICT {
            return Err(PortError::http(
                PORT,
                409,
                format!("{what}: HTTP 409: ticket {ticket} was changed at the same time"),
            ));
        }
        Err(http::refusal(PORT, what, response, None).await)
    }

    /// Adds a comment; returns its id when the answer's audit carries it.
    /// `raise_to` also sets the ticket's priority in the same update.
    async fn put_comment(
        &self,
        ticket: u64,
        text: &str,
        public: bool,
        tokens: &[String],
        raise_to: Option<Priority>,
    ) -> PortResult<Option<String>> {
        let what = if public {
            "commenting on a ticket"
        } else {
            "adding an internal note"
        };
        let mut fields = json!({"comment": comment_json(text, public, tokens)});
        if let Some(priority) = raise_to {
            fields["priority"] = json!(priority_name(priority));
        }
        self.put_once(what, ticket, &json!({"ticket": fields}))
            .await
    }

    /// The internal note as a private comment, unless it is there already.
    /// `present`: known from a search just made; `None`: search first.
    async fn note(
        &self,
        ticket: u64,
        message: &ContentHash,
        note: &str,
        present: Option<bool>,
    ) -> PortResult<()> {
        if note.trim().is_empty() {
            return Ok(());
        }
        let present = match present {
            Some(present) => present,
            None => self.marked(ticket, message, true).await?.private,
        };
        if present {
            return Ok(());
        }
        let text = self.comment_text("", note, &[], message, true, original_location(note));
        match self.put_comment(ticket, &text, false, &[], None).await {
            Ok(_) => Ok(()),
            // The public comment went in as the last one this ticket takes; the
            // note has nowhere to go (it never goes to another ticket alone).
            Err(e) if full_from_error(&e).is_some() => {
                tracing::warn!(ticket, error = %e, "internal note refused: the ticket takes no more comments");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// [`TicketSink::comment`] on a parsed ticket id; `followups` counts the
    /// follow-up tickets this message already went through.
    fn comment_on<'a>(
        &'a self,
        ticket: u64,
        comment: &'a NewComment,
        followups: usize,
    ) -> Boxed<'a, PostedComment> {
        Box::pin(async move {
            let want_note = !comment.internal_note.trim().is_empty();
            let marked = self.marked(ticket, &comment.message, want_note).await?;
            if let Some(id) = marked.public {
                self.note(
                    ticket,
                    &comment.message,
                    &comment.internal_note,
                    Some(marked.private),
                )
                .await?;
                return Ok(PostedComment::on(ticket, id));
            }
            // The comment and its note stay together: both fit, or both move on.
            let needed = 1 + usize::from(want_note);
            if marked.total + needed > self.options.max_comments {
                return self
                    .follow_up(ticket, comment, Full::Comments, followups)
                    .await;
            }
            // The ticket as it is now: closed ones take no comment, and a more
            // urgent mail raises the priority (never lowers it).
            let state = self.show(ticket).await?;
            if state.status.as_deref() == Some("closed") {
                return self
                    .follow_up(ticket, comment, Full::Closed, followups)
                    .await;
            }
            let current = state.priority.as_deref().and_then(parse_priority);
            let raise_to = current
                .is_none_or(|p| p < comment.priority)
                .then_some(comment.priority);
            let (tokens, listed) = self.upload(&comment.attachments).await?;
            let original = original_location(&comment.internal_note);
            let text =
                self.comment_text("", &comment.body, &listed, &comment.message, true, original);
            let answered = match self
                .put_comment(ticket, &text, true, &tokens, raise_to)
                .await
            {
                Ok(answered) => answered,
                Err(e) => {
                    return match self.why_full(ticket, &e).await? {
                        Some(full) => self.follow_up(ticket, comment, full, followups).await,
                        None => Err(e),
                    };
                }
            };
            let id = match answered {
                Some(id) => id,
                // No readable audit in the answer: the comment is found by its marker.
                None => self
                    .marked(ticket, &comment.message, false)
                    .await?
                    .public
                    .ok_or_else(|| {
                        permanent(format!(
                            "commenting on a ticket: Zendesk answered, but the comment is not on ticket {ticket}"
                        ))
                    })?,
            };
            self.note(
                ticket,
                &comment.message,
                &comment.internal_note,
                Some(marked.private),
            )
            .await?;
            Ok(PostedComment::on(ticket, id))
        })
    }

    /// Whether a refused comment was refused because the ticket takes no more.
    /// Zendesk documents the 422 but not its wording: a closed ticket is
    /// confirmed by reading it, the comment limit by the wording.
    async fn why_full(&self, ticket: u64, error: &PortError) -> PortResult<Option<Full>> {
        if !refused_with(error, 422) {
            return Ok(None);
        }
        if full_from_error(error) == Some(Full::Comments) {
            return Ok(Some(Full::Comments));
        }
        let state = self.show(ticket).await?;
        Ok((state.status.as_deref() == Some("closed")).then_some(Full::Closed))
    }

    /// Puts the comment on the ticket that continues `old`: the follow-up opened
    /// before (a ticket with the same external id and a higher id), else a new
    /// one whose first comment is this message.
    async fn follow_up(
        &self,
        old: u64,
        comment: &NewComment,
        why: Full,
        followups: usize,
    ) -> PortResult<PostedComment> {
        if followups >= MAX_FOLLOWUPS {
            return Err(permanent(format!(
                "ticket {old} takes no more comments ({why:?}) and {MAX_FOLLOWUPS} follow-ups did not either"
            )));
        }
        let previous = self.show(old).await?;
        let external_id = previous
            .external_id
            .clone()
            .unwrap_or_else(|| format!("rootmail-followup-of:{old}"));
        if let Some(next) = self.newest_ticket(&external_id).await?
            && next.id > old
        {
            return self.comment_on(next.id, comment, followups + 1).await;
        }
        let (tokens, listed) = self.upload(&comment.attachments).await?;
        let reason = match why {
            Full::Comments => {
                format!("which reached Zendesk's limit of {MAX_COMMENTS_PER_TICKET} comments")
            }
            Full::Closed => "which is closed".to_string(),
        };
        let intro = format!(
            "This ticket continues ticket #{old} ({}/agent/tickets/{old}), {reason}.\n\n",
            self.options.base_url
        );
        // The follow-up's first comment is its requester's: Markdown is
        // rendered (and so escaped) only when that is the API user, an agent.
        let markdown =
            previous.requester_id.is_none() || previous.requester_id == previous.submitter_id;
        let original = original_location(&comment.internal_note);
        let text = self.comment_text(
            &intro,
            &comment.body,
            &listed,
            &comment.message,
            markdown,
            original,
        );
        let priority = previous
            .priority
            .as_deref()
            .and_then(parse_priority)
            .map_or(comment.priority, |p| p.max(comment.priority));
        let mut tags = previous.tags.clone();
        tags.push("rootmail_followup".to_string());
        let mut fields = json!({
            "subject": previous.subject.clone().unwrap_or_default(),
            "external_id": external_id,
            "via_followup_source_id": old,
            "priority": priority_name(priority),
            "tags": tags,
            "comment": comment_json(&text, true, &tokens),
        });
        self.add_custom_fields(&mut fields);
        if let Some(organization) = previous.organization_id {
            fields["organization_id"] = json!(organization);
        }
        if let Some(requester) = previous.requester_id {
            fields["requester_id"] = json!(requester);
        }
        let posted = self
            .post_ticket(
                &format!("rootmail-followup-{old}"),
                &json!({"ticket": fields}),
                &external_id,
                &comment.message,
            )
            .await?;
        tracing::warn!(
            old_ticket = old,
            new_ticket = posted.id,
            reason = ?why,
            "zendesk ticket takes no more comments; the thread continues on a follow-up ticket"
        );
        let present = if posted.fresh { Some(false) } else { None };
        self.note(posted.id, &comment.message, &comment.internal_note, present)
            .await?;
        let id = match posted.comment_id {
            Some(id) => id,
            None => self
                .marked(posted.id, &comment.message, false)
                .await?
                .public
                .ok_or_else(|| {
                    permanent(format!(
                        "follow-up ticket {} does not carry its first comment",
                        posted.id
                    ))
                })?,
        };
        Ok(PostedComment::on(posted.id, id))
    }

    fn add_custom_fields(&self, fields: &mut Value) {
        if !self.options.custom_fields.is_empty() {
            fields["custom_fields"] = self
                .options
                .custom_fields
                .iter()
                .map(|(id, value)| json!({"id": id, "value": value}))
                .collect();
        }
    }

    fn tags(ticket: &NewTicket) -> Vec<String> {
        let mut tags = vec![
            "rootmail".to_string(),
            ticket.kind.as_str().replace('.', "_"),
        ];
        if let Some(account) = &ticket.account_id {
            tags.push(format!("account_{account}"));
        }
        tags.push(thread_token(&ticket.thread_key));
        tags
    }
}

/// Markers, texts and requesters: what a comment says and who writes it.
impl Zendesk {
    /// The text of a comment: `intro` (rootmail's own words), the body and
    /// the list of attachments not uploaded (escaped for Markdown when its
    /// author is an agent, since Zendesk renders Markdown only for agents),
    /// capped at [`MAX_COMMENT_BYTES`], then the marker line, never escaped
    /// nor cut, so it reads back exactly.
    fn comment_text(
        &self,
        intro: &str,
        body: &str,
        attachments: &[TicketAttachment],
        message: &ContentHash,
        markdown: bool,
        original: Option<&str>,
    ) -> String {
        let text = text_with_listing(body, attachments);
        let text = if markdown { literal(&text) } else { text };
        let tail = format!("\n\n{}", self.key.marker(message));
        capped(
            &format!("{intro}{text}{tail}"),
            &tail,
            MAX_COMMENT_BYTES,
            original,
        )
    }

    /// Whether `text`'s last line is `message`'s marker (rootmail always
    /// writes it last, and only rootmail can make one that verifies).
    fn ends_with_marker(&self, text: &str, message: &ContentHash) -> bool {
        last_line(text).is_some_and(|line| self.key.has_marker(line, message))
    }

    /// The message that created a ticket: the verified marker that ends its
    /// description. A ticket of the thread without one (its description edited
    /// or redacted by hand, or forged) counts as created by an unknown
    /// message, so every mail becomes a comment on it rather than a twin.
    fn created_from(&self, ticket: &ZTicket) -> ContentHash {
        ticket
            .description
            .as_deref()
            .and_then(last_line)
            .and_then(|line| self.key.last_marked(line))
            .unwrap_or_else(|| ContentHash::of(format!("zendesk-ticket-{}", ticket.id).as_bytes()))
    }

    fn organization(&self, ticket: &NewTicket) -> Option<u64> {
        let customer = ticket.customer.as_ref()?;
        self.options
            .organizations
            .iter()
            .find(|(name, _)| name == customer)
            .map(|(_, id)| *id)
    }

    /// Sets the ticket's requester (and organization) in `fields`; whether
    /// the requester is an end user (`aws-<account>@<domain>`) rather than
    /// the API user. Zendesk files a ticket under an organization only when
    /// its requester belongs to it, and a requester made on the fly belongs
    /// to none: with an organization, the user is created or updated in it
    /// first and the ticket names it by id.
    async fn set_requester(&self, ticket: &NewTicket, fields: &mut Value) -> PortResult<bool> {
        let organization = self.organization(ticket);
        let (Some(domain), Some(account)) = (&self.options.requester_domain, &ticket.account_id)
        else {
            if organization.is_some() {
                tracing::warn!(
                    "zendesk organization left out: the API user is the requester (set a requester domain)"
                );
            }
            return Ok(false);
        };
        let name = format!("AWS account {account}");
        let email = format!("aws-{account}@{domain}");
        match organization {
            None => fields["requester"] = json!({"name": name, "email": email}),
            Some(organization) => {
                let user = self.user_in(&name, &email, organization).await?;
                fields["requester_id"] = json!(user);
                fields["organization_id"] = json!(organization);
            }
        }
        Ok(true)
    }

    /// `POST /api/v2/users/create_or_update`: the same user for the same
    /// address every time, so repeating it is harmless.
    async fn user_in(&self, name: &str, email: &str, organization: u64) -> PortResult<u64> {
        #[derive(Deserialize)]
        struct Answer {
            user: User,
        }
        #[derive(Deserialize)]
        struct User {
            id: u64,
        }
        let what = "creating the requester";
        let url = self.url("/api/v2/users/create_or_update");
        let body = json!({"user": {"name": name, "email": email, "organization_id": organization}});
        let response = self
            .http
            .send(what, |c| self.auth(c.post(&url)).json(&body))
            .await?;
        let answer: Answer = self.json(what, response).await?;
        Ok(answer.user.id)
    }
}

/// The comment a message makes on a thread another message opened.
fn as_comment(ticket: &NewTicket) -> NewComment {
    NewComment {
        message: ticket.message.clone(),
        body: ticket.body.clone(),
        priority: ticket.priority,
        kind: ticket.kind,
        internal_note: ticket.internal_note.clone(),
        attachments: ticket.attachments.clone(),
    }
}

fn comment_json(text: &str, public: bool, tokens: &[String]) -> Value {
    let mut comment = json!({"body": text, "public": public});
    if !tokens.is_empty() {
        comment["uploads"] = json!(tokens);
    }
    comment
}

fn last_line(text: &str) -> Option<&str> {
    text.trim_end().rsplit('\n').next()
}

/// Mail text as Zendesk should show it. Zendesk renders a comment's `body` as
/// Markdown, so every character that could start markup is backslash-escaped
/// (CommonMark shows an escaped punctuation character as itself): inline
/// (`\ ` * _ [ ] < > & ~ |`) everywhere, block markers (`# > - + =`, `1.`) at the
/// start of a line. Web addresses keep their characters, so they still work as
/// links, except `<`, `>`, `` ` ``, `\` and the brackets and parentheses that
/// could form a link inside one. Indentation is kept: an indented line
/// may show as code, which is still the text as written.
pub fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for (n, line) in text.split('\n').enumerate() {
        if n > 0 {
            out.push('\n');
        }
        let rest = line.trim_start_matches([' ', '\t']);
        out.push_str(&line[..line.len() - rest.len()]);
        let rest = escape_block_start(rest, &mut out);
        escape_inline(rest, &mut out);
    }
    out
}

/// Escapes a block marker at the start of `line`; returns the part left.
fn escape_block_start<'a>(line: &'a str, out: &mut String) -> &'a str {
    let Some(first) = line.chars().next() else {
        return line;
    };
    if matches!(first, '#' | '>' | '-' | '+' | '=') {
        out.push('\\');
        out.push(first);
        return &line[1..];
    }
    let digits = line.len() - line.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits > 0 && matches!(line[digits..].chars().next(), Some('.' | ')')) {
        out.push_str(&line[..digits]);
        out.push('\\');
        out.push_str(&line[digits..=digits]);
        return &line[digits + 1..];
    }
    line
}

fn escape_inline(text: &str, out: &mut String) {
    let mut in_address = false;
    let mut at_word_start = true;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            in_address = false;
            at_word_start = true;
            out.push(c);
            continue;
        }
        if at_word_start {
            let word = &text[i..];
            // Compared as bytes: the word may start with a multi-byte character.
            in_address = ["http://", "https://"].iter().any(|scheme| {
                word.as_bytes()
                    .get(..scheme.len())
                    .is_some_and(|start| start.eq_ignore_ascii_case(scheme.as_bytes()))
            });
            at_word_start = false;
        }
        // In an address too: brackets and parentheses could still make a
        // link (`https://a.example/[x](https://evil.example)`).
        let special = if in_address {
            matches!(c, '<' | '>' | '`' | '\\' | '[' | ']' | '(' | ')')
        } else {
            matches!(
                c,
                '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '&' | '~' | '|'
            )
        };
        if special {
            out.push('\\');
        }
        out.push(c);
    }
}

fn permanent(message: String) -> PortError {
    PortError::permanent(PORT, message)
}

fn id_text(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A ticket id as this backend returns them.
fn ticket_number(id: &str) -> PortResult<u64> {
    id.trim()
        .parse()
        .map_err(|_| permanent(format!("{id:?} is not a Zendesk ticket id")))
}

/// Whether `error` is Zendesk's answer with this HTTP status.
fn refused_with(error: &PortError, status: u16) -> bool {
    error.status == Some(status)
}

/// What a 422 says about the ticket being full or closed. Zendesk documents the
/// status but not the wording, so this only reads it as a hint.
fn full_from_error(error: &PortError) -> Option<Full> {
    if !refused_with(error, 422) {
        return None;
    }
    let text = error.answer.as_deref()?.to_ascii_lowercase();
    if text.contains("closed") {
        Some(Full::Closed)
    } else if text.contains("comment")
        && ["limit", "maximum", "5000", "5,000", "too many"]
            .iter()
            .any(|w| text.contains(w))
    {
        Some(Full::Comments)
    } else {
        None
    }
}

impl TicketSink for Zendesk {
    fn name(&self) -> &'static str {
        PORT
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
        let key = ticket.thread_key.as_str();
        // Repeated after its answer was lost, or hours later: the first ticket
        // is found. Not asked again when the caller's lookup just found none.
        let existing = if ticket.found_absent {
            None
        } else {
            self.newest_ticket(key).await?
        };
        if let Some(existing) = existing {
            if self.created_from(&existing) != ticket.message {
                // The thread got its ticket from another message meanwhile: this
                // message becomes a comment there, never a second ticket.
                self.comment_on(existing.id, &as_comment(ticket), 0).await?;
            } else {
                self.note(existing.id, &ticket.message, &ticket.internal_note, None)
                    .await?;
            }
            return Ok(existing.id.to_string());
        }
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
        self.note(posted.id, &ticket.message, &ticket.internal_note, present)
            .await?;
        Ok(posted.id.to_string())
    }

    async fn comment(&self, ticket_id: &str, comment: &NewComment) -> PortResult<PostedComment> {
        self.comment_on(ticket_number(ticket_id)?, comment, 0).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_mail_text_is_shown_as_written() {
        assert_eq!(
            literal("[click](http://evil.example) ![x](http://t.example/p.png)"),
            "\\[click\\](http://evil.example) !\\[x\\](http://t.example/p.png)"
        );
        assert_eq!(
            literal("<script>alert(1)</script>"),
            "\\<script\\>alert(1)\\</script\\>"
        );
        assert_eq!(
            literal("**bold** _it_ `code` ~~x~~ a|b &amp;"),
            "\\*\\*bold\\*\\* \\_it\\_ \\`code\\` \\~\\~x\\~\\~ a\\|b \\&amp;"
        );
        assert_eq!(
            literal("# Title\n> quote\n- item\n1. one\n  2) two\n==="),
            "\\# Title\n\\> quote\n\\- item\n1\\. one\n  2\\) two\n\\==="
        );
    }

    #[test]
    fn web_addresses_keep_their_characters() {
        let url = "https://console.aws.amazon.com/billing/home#/bills?x_y=1&z=*";
        assert_eq!(literal(&format!("See {url} now")), format!("See {url} now"));
        assert_eq!(
            literal("https://a.example/<b>"),
            "https://a.example/\\<b\\>"
        );
        assert_eq!(
            literal("AWS account 1234-5678-9012, 42 USD."),
            "AWS account 1234-5678-9012, 42 USD."
        );
    }

    /// Issue B: a word that starts with `https://` could still carry link
    /// syntax (`https://a.example/[x](https://evil.example)`); its brackets
    /// and parentheses are escaped, the address stays readable.
    #[test]
    fn link_syntax_inside_a_web_address_is_escaped() {
        assert_eq!(
            literal("https://a.example/[click](https://evil.example)"),
            "https://a.example/\\[click\\]\\(https://evil.example\\)"
        );
        assert_eq!(
            literal("https://a.example/![x](https://t.example/p.png)").replace('\\', ""),
            "https://a.example/![x](https://t.example/p.png)"
        );
    }

    /// Found by the crash-point tests: a word whose first 7 or 8 bytes end
    /// inside a character (`日本語`) was sliced there to compare with
    /// `http://`, and the writer panicked on every delivery of that mail.
    #[test]
    fn words_of_multi_byte_characters_are_escaped_without_a_panic() {
        for text in [
            "Grüße ünd 日本語 *ß*",
            "é",
            "€€€ https://ä.example/_x_",
            "ñhttp://",
        ] {
            let escaped = literal(text);
            assert_eq!(escaped.replace('\\', ""), text, "{text}");
        }
        assert_eq!(literal("日本 *x*"), "日本 \\*x\\*");
    }

    fn backend() -> Zendesk {
        let http = HttpClient::new(PORT, std::time::Duration::from_secs(1), Default::default())
            .expect("client");
        let credentials =
            serde_json::from_value(json!({"email": "a@b.example", "token": "t"})).expect("json");
        let key = MarkerKey::new(&[7u8; 32]).expect("key");
        Zendesk::new(
            http,
            ZendeskOptions::new("https://z.example"),
            credentials,
            key,
        )
    }

    #[test]
    fn the_marker_line_is_never_escaped_and_reads_back() {
        let zendesk = backend();
        let message = ContentHash::of(b"mail");
        let text = zendesk.comment_text("", "# *Hi*", &[], &message, true, None);
        assert!(text.starts_with("\\# \\*Hi\\*"), "{text}");
        assert!(zendesk.ends_with_marker(&text, &message));
        // Quoting a marker inside the text does not pass for the message.
        let quoted = format!("{}\nmore text", zendesk.key.marker(&message));
        assert!(!zendesk.ends_with_marker(&quoted, &message));
        // Plain text for an end user's comment: as written.
        let plain = zendesk.comment_text("", "# *Hi*", &[], &message, false, None);
        assert!(plain.starts_with("# *Hi*\n\nrootmail-message: "), "{plain}");
    }

    /// Issue 11: the body is cut to fit, in bytes, and the marker survives.
    #[test]
    fn a_long_comment_is_cut_before_its_marker() {
        let zendesk = backend();
        let message = ContentHash::of(b"long");
        let body = "*ü*".repeat(30_000);
        let text = zendesk.comment_text("", &body, &[], &message, true, Some("s3://m/1"));
        assert!(text.len() <= MAX_COMMENT_BYTES, "{}", text.len());
        assert!(zendesk.ends_with_marker(&text, &message));
        assert!(
            text.contains(" bytes cut; the original is at s3://m/1]"),
            "cut is said"
        );
    }

    #[test]
    fn the_creating_message_is_the_last_marker_of_the_description() {
        let zendesk = backend();
        let first = ContentHash::of(b"first");
        let quoted = ContentHash::of(b"quoted");
        let description = format!(
            "mail quoting {}\n\n{}",
            zendesk.key.marker(&quoted),
            zendesk.key.marker(&first)
        );
        let ticket = |description: Option<String>| ZTicket {
            id: 7,
            external_id: None,
            subject: None,
            description,
            status: None,
            priority: None,
            tags: Vec::new(),
            organization_id: None,
            requester_id: None,
            submitter_id: None,
        };
        assert_eq!(zendesk.created_from(&ticket(Some(description))), first);
        // Unmarked (edited by hand): an unknown message, never a real one.
        let unknown = zendesk.created_from(&ticket(Some("edited".into())));
        assert_ne!(unknown, first);
        assert_eq!(unknown, zendesk.created_from(&ticket(None)));
        // Forged (no MAC that verifies): the same unknown message.
        let forged = format!("text\nrootmail-message: {first} {}", "0".repeat(32));
        assert_eq!(zendesk.created_from(&ticket(Some(forged))), unknown);
    }

    #[test]
    fn refusals_are_read_from_the_status_and_zendesk_s_answer() {
        let refusal = |status: u16, answer: &str| {
            PortError::http(PORT, status, "commenting: HTTP 422 after 1 attempt(s)")
                .with_answer(answer)
        };
        let closed = refusal(
            422,
            r#"{"error":"RecordInvalid","details":{"status":[{"description":"Status: closed prevents ticket update"}]}}"#,
        );
        assert!(refused_with(&closed, 422));
        assert_eq!(full_from_error(&closed), Some(Full::Closed));
        let limit = refusal(422, "comment limit of 5000 reached");
        assert_eq!(full_from_error(&limit), Some(Full::Comments));
        let other = refusal(422, "subject too long");
        assert_eq!(full_from_error(&other), None);
        assert!(!refused_with(&other, 400));
        // The words count only in Zendesk's answer with that status, never in
        // rootmail's own description of the failure.
        let ours = PortError::http(PORT, 422, "the ticket is closed; comment limit reached");
        assert_eq!(full_from_error(&ours), None);
        let not_422 = refusal(400, "Status: closed prevents ticket update");
        assert_eq!(full_from_error(&not_422), None);
    }

    #[test]
    fn priorities_map_both_ways() {
        for p in [
            Priority::Low,
            Priority::Normal,
            Priority::High,
            Priority::Urgent,
        ] {
            assert_eq!(parse_priority(priority_name(p)), Some(p));
        }
    }
}
