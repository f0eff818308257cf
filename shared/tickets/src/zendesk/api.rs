//! Zendesk's REST API as this backend calls it: the requests (find, read,
//! upload, create, update, the requester), the answers' serde types, and the
//! names Zendesk gives priorities.

use super::{PORT, Zendesk, permanent};
use crate::http;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{RequestBuilder, Response, StatusCode};
use rootmail_domain::{ContentHash, Priority};
use rootmail_pipeline::{AttachmentContent, PortError, PortResult, TicketAttachment};
use serde::Deserialize;
use serde_json::{Value, json};

/// Comments per listed page (Zendesk's largest).
pub(super) const PAGE_SIZE: &str = "100";

/// Pages read before a listing is given up (5,000 comments are 50 pages).
pub(super) const MAX_PAGES: usize = 100;

/// Zendesk's priorities are the taxonomy's, by name.
pub fn priority_name(priority: Priority) -> &'static str {
    match priority {
        Priority::Low => "low",
        Priority::Normal => "normal",
        Priority::High => "high",
        Priority::Urgent => "urgent",
    }
}

pub(super) fn parse_priority(name: &str) -> Option<Priority> {
    match name {
        "low" => Some(Priority::Low),
        "normal" => Some(Priority::Normal),
        "high" => Some(Priority::High),
        "urgent" => Some(Priority::Urgent),
        _ => None,
    }
}

/// What an applied update answered, as far as it could be read.
pub(super) struct Updated {
    /// The comment the update added.
    pub(super) comment_id: Option<String>,
    /// The ticket as the update left it.
    pub(super) ticket: Option<ZTicket>,
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
pub(super) struct ZTicket {
    pub(super) id: u64,
    #[serde(default)]
    pub(super) external_id: Option<String>,
    #[serde(default)]
    pub(super) subject: Option<String>,
    #[serde(default)]
    pub(super) description: Option<String>,
    #[serde(default)]
    pub(super) status: Option<String>,
    #[serde(default)]
    pub(super) priority: Option<String>,
    #[serde(default)]
    pub(super) tags: Vec<String>,
    #[serde(default)]
    pub(super) organization_id: Option<u64>,
    #[serde(default)]
    pub(super) requester_id: Option<u64>,
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
pub(super) struct CommentPage {
    #[serde(default)]
    pub(super) comments: Vec<ZComment>,
    #[serde(default)]
    meta: Option<CursorMeta>,
    #[serde(default)]
    links: Option<CursorLinks>,
    /// Offset pagination (answered when a server ignores `page[size]`).
    #[serde(default)]
    next_page: Option<String>,
}

impl CommentPage {
    pub(super) fn next(&self) -> Option<&str> {
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
pub(super) struct ZComment {
    pub(super) id: Value,
    #[serde(default)]
    pub(super) body: String,
    #[serde(default)]
    pub(super) public: bool,
}

#[derive(Deserialize)]
struct Uploaded {
    upload: Upload,
}

#[derive(Deserialize)]
struct Upload {
    token: String,
}

/// A ticket created (or found created) by a post.
pub(super) struct Posted {
    pub(super) id: u64,
    /// The first comment's id when the answer carried it.
    pub(super) comment_id: Option<String>,
    /// Zendesk made it now (not replayed, not found): it has no note yet.
    pub(super) fresh: bool,
}

impl Zendesk {
    pub(super) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.options.base_url)
    }

    pub(super) fn auth(&self, request: RequestBuilder) -> RequestBuilder {
        request.basic_auth(
            format!("{}/token", self.credentials.email),
            Some(self.credentials.token.expose()),
        )
    }

    pub(super) async fn json<T: for<'de> Deserialize<'de>>(
        &self,
        what: &str,
        response: Response,
    ) -> PortResult<T> {
        http::read_json(
            PORT,
            what,
            response,
            "wrong URL, or the ticket was deleted?",
        )
        .await
    }

    /// A page link from an answer, followed only on the configured host (the
    /// request carries the credentials).
    pub(super) fn same_site(&self, link: &str) -> PortResult<String> {
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
    pub(super) async fn newest_ticket(&self, external_id: &str) -> PortResult<Option<ZTicket>> {
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
            // Zendesk documents external ids as not case sensitive; a
            // Message-ID is, so a ticket of another case is another thread's.
            let ours = page
                .tickets
                .into_iter()
                .filter(|t| t.external_id.as_deref() == Some(external_id));
            for ticket in ours {
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

    pub(super) async fn show(&self, ticket: u64) -> PortResult<ZTicket> {
        let url = self.url(&format!("/api/v2/tickets/{ticket}"));
        let response = self
            .http
            .send("reading a ticket", |c| self.auth(c.get(&url)))
            .await?;
        let one: OneTicket = self.json("reading a ticket", response).await?;
        Ok(one.ticket)
    }

    /// Uploads the attachments that have bytes, right before their tokens are
    /// used. Returns the tokens, and the attachments as the body lists them: one
    /// Zendesk refuses (too large for this account, a blocked type) is listed
    /// with the reason instead of failing the whole operation.
    pub(super) async fn upload(
        &self,
        attachments: &[TicketAttachment],
    ) -> PortResult<(Vec<String>, Vec<TicketAttachment>)> {
        let mut tokens = Vec::new();
        let mut listed = Vec::with_capacity(attachments.len());
        for attachment in attachments {
            let Some(bytes) = attachment.bytes() else {
                listed.push(attachment.clone());
                continue;
            };
            match self.upload_one(attachment, bytes).await {
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

    /// `POST /api/v2/uploads` of one attachment's bytes, under its name and
    /// type (a blank name is `attachment`, a missing or unusable type
    /// `application/octet-stream`).
    async fn upload_one(
        &self,
        attachment: &TicketAttachment,
        bytes: &[u8],
    ) -> PortResult<Response> {
        let url = self.url("/api/v2/uploads");
        let name = if attachment.name.trim().is_empty() {
            "attachment"
        } else {
            attachment.name.as_str()
        };
        let content_type = HeaderValue::from_str(&attachment.content_type)
            .ok()
            .filter(|_| !attachment.content_type.is_empty())
            .unwrap_or_else(|| HeaderValue::from_static("application/octet-stream"));
        self.http
            .send("uploading an attachment", |c| {
                self.auth(c.post(&url))
                    .query(&[("filename", name)])
                    .header(CONTENT_TYPE, content_type.clone())
                    .body(bytes.to_vec())
            })
            .await
    }

    /// Posts a new ticket. `external_id` and `message` find it again when the
    /// idempotency key was used with another body (an earlier attempt, with other
    /// upload tokens).
    ///
    /// The key is the thread's and the message's (the pipeline's
    /// `create_key`): Zendesk keeps a key for two hours and refuses it with
    /// another message's body, so with the thread's alone a thread's ticket
    /// deleted within two hours of its creation could never be made again.
    pub(super) async fn post_ticket(
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
            Err(e) => return Err(http::conflict_left_to_queue(e, RACE)),
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
    async fn put_once(&self, what: &str, ticket: u64, payload: &Value) -> PortResult<Updated> {
        let url = self.url(&format!("/api/v2/tickets/{ticket}"));
        let response = self
            .http
            .send_once(what, |c| self.auth(c.put(&url)).json(payload))
            .await?;
        let status = response.status();
        if status.is_success() {
            // Applied: an answer that cannot be read only loses the id, which
            // the caller finds by the marker, and the ticket's state.
            let answer = response.json::<TicketAnswer>().await.ok();
            return Ok(Updated {
                comment_id: answer.as_ref().and_then(TicketAnswer::comment_id),
                ticket: answer.map(|a| a.ticket),
            });
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

    /// Adds a comment (its id is in the answer when the audit carries it).
    /// `raise_to` also sets the ticket's priority in the same update.
    pub(super) async fn put_comment(
        &self,
        ticket: u64,
        text: &str,
        public: bool,
        tokens: &[String],
        raise_to: Option<Priority>,
    ) -> PortResult<Updated> {
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

    /// `POST /api/v2/users/create_or_update`: the same user for the same
    /// address every time, so repeating it is harmless.
    pub(super) async fn user_in(
        &self,
        name: &str,
        email: &str,
        organization: u64,
    ) -> PortResult<u64> {
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
            .await
            .map_err(|e| http::conflict_left_to_queue(e, RACE))?;
        let answer: Answer = self.json(what, response).await?;
        Ok(answer.user.id)
    }
}

pub(super) fn comment_json(text: &str, public: bool, tokens: &[String]) -> Value {
    let mut comment = json!({"body": text, "public": public});
    if !tokens.is_empty() {
        comment["uploads"] = json!(tokens);
    }
    comment
}

pub(super) fn id_text(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A ticket id as this backend returns them.
pub(super) fn ticket_number(id: &str) -> PortResult<u64> {
    id.trim()
        .parse()
        .map_err(|_| permanent(format!("{id:?} is not a Zendesk ticket id")))
}

/// Zendesk answers 409 when two requests write the same record at once (a
/// new requester created by two writers, a ticket created with a key whose
/// first request is still running): a race, not a refusal.
const RACE: &str = "Zendesk was writing the same record for another request";

/// Whether `error` is Zendesk's answer with this HTTP status.
pub(super) fn refused_with(error: &PortError, status: u16) -> bool {
    error.status == Some(status)
}

#[cfg(test)]
mod tests {
    use super::*;

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
