//! Jira Service Management: one customer request per thread, comments for later
//! mail, attachments through temporary files.
//!
//! Jira has no idempotency key, so every write is checked first:
//! - a request carries the label [`thread_token`] (found again by JQL) and its
//!   description ends with the creating message's marker;
//! - a comment ends with its message's marker, and the request's comments are
//!   searched for it before one is added.
//!
//! The request type must offer the `labels` field (it may be hidden with no
//! default); `priority` is set only when `set_priority` is on, because many
//! request types do not offer it and Jira refuses fields a type does not have.

use crate::common::{Credential, body_with_listing, has_marker, marked_message, thread_token};
use crate::http::HttpClient;
use reqwest::multipart::{Form, Part};
use rootmail_domain::{Priority, ThreadKey};
use rootmail_pipeline::{
    FoundTicket, NewComment, NewTicket, PortError, PortResult, PostedComment, TicketAttachment,
    TicketSink,
};
use serde::Deserialize;
use serde_json::{Value, json};

const PORT: &str = "jira";

/// Jira Cloud's default attachment limit.
pub const DEFAULT_MAX_ATTACHMENT_BYTES: usize = 10 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct JiraOptions {
    /// `https://your-site.atlassian.net`
    pub base_url: String,
    pub service_desk_id: String,
    pub request_type_id: String,
    pub set_priority: bool,
    pub max_attachment_bytes: usize,
}

impl JiraOptions {
    pub fn new(base_url: &str, service_desk_id: &str, request_type_id: &str) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            service_desk_id: service_desk_id.to_string(),
            request_type_id: request_type_id.to_string(),
            set_priority: false,
            max_attachment_bytes: DEFAULT_MAX_ATTACHMENT_BYTES,
        }
    }
}

/// The secret: `{"email": ..., "token": ...}` (an Atlassian API token).
#[derive(Clone, Deserialize)]
pub struct JiraCredentials {
    pub email: String,
    pub token: Credential,
}

#[derive(Clone)]
pub struct Jira {
    http: HttpClient,
    options: JiraOptions,
    credentials: JiraCredentials,
}

/// Jira's default priority scheme.
pub fn priority_name(priority: Priority) -> &'static str {
    match priority {
        Priority::Low => "Low",
        Priority::Normal => "Medium",
        Priority::High => "High",
        Priority::Urgent => "Highest",
    }
}

#[derive(Deserialize)]
struct Created {
    #[serde(rename = "issueKey")]
    issue_key: String,
}

#[derive(Deserialize)]
struct Search {
    #[serde(default)]
    issues: Vec<Issue>,
}

#[derive(Deserialize)]
struct Issue {
    key: String,
    #[serde(default)]
    fields: IssueFields,
}

#[derive(Default, Deserialize)]
struct IssueFields {
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
struct Comments {
    #[serde(default)]
    values: Vec<Comment>,
    #[serde(rename = "isLastPage", default = "yes")]
    is_last_page: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct Comment {
    id: Value,
    #[serde(default)]
    body: String,
}

#[derive(Deserialize)]
struct Temporary {
    #[serde(rename = "temporaryAttachments", default)]
    temporary_attachments: Vec<TemporaryAttachment>,
}

#[derive(Deserialize)]
struct TemporaryAttachment {
    #[serde(rename = "temporaryAttachmentId")]
    id: String,
}

impl Jira {
    pub fn new(http: HttpClient, options: JiraOptions, credentials: JiraCredentials) -> Self {
        Self {
            http,
            options,
            credentials,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.options.base_url)
    }

    fn auth(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request.basic_auth(
            &self.credentials.email,
            Some(self.credentials.token.expose()),
        )
    }

    async fn json<T: for<'de> Deserialize<'de>>(
        &self,
        what: &str,
        response: reqwest::Response,
    ) -> PortResult<T> {
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(permanent(format!(
                "{what}: HTTP 404 (wrong URL, service desk or request?)"
            )));
        }
        response
            .json()
            .await
            .map_err(|e| permanent(format!("{what}: unexpected answer: {e}")))
    }

    /// Uploads the attachments as temporary files (right before they are used)
    /// and attaches them to the request in one call.
    async fn attach(
        &self,
        key: &str,
        attachments: &[TicketAttachment],
        public: bool,
    ) -> PortResult<()> {
        let mut ids = Vec::new();
        for attachment in attachments {
            let Some(bytes) = attachment.bytes() else {
                continue;
            };
            let url = self.url(&format!(
                "/rest/servicedeskapi/servicedesk/{}/attachTemporaryFile",
                self.options.service_desk_id
            ));
            let response = self
                .http
                .send("uploading an attachment", |c| {
                    let part = Part::bytes(bytes.to_vec())
                        .file_name(attachment.name.clone())
                        .mime_str(&attachment.content_type)
                        .unwrap_or_else(|_| {
                            Part::bytes(bytes.to_vec()).file_name(attachment.name.clone())
                        });
                    self.auth(c.post(&url))
                        .header("X-Atlassian-Token", "no-check")
                        .header("X-ExperimentalApi", "opt-in")
                        .multipart(Form::new().part("file", part))
                })
                .await?;
            let temporary: Temporary = self.json("uploading an attachment", response).await?;
            ids.extend(temporary.temporary_attachments.into_iter().map(|t| t.id));
        }
        if ids.is_empty() {
            return Ok(());
        }
        let url = self.url(&format!("/rest/servicedeskapi/request/{key}/attachment"));
        let body = json!({"temporaryAttachmentIds": ids, "public": public});
        self.http
            .send("attaching files", |c| self.auth(c.post(&url)).json(&body))
            .await?;
        Ok(())
    }

    /// The comment on `key` that carries `marker`'s message, if any (all pages).
    async fn existing_comment(
        &self,
        key: &str,
        message: &rootmail_domain::ContentHash,
        public: bool,
    ) -> PortResult<Option<String>> {
        let url = self.url(&format!("/rest/servicedeskapi/request/{key}/comment"));
        let mut start = 0usize;
        loop {
            let query = [
                ("start", start.to_string()),
                ("limit", "100".to_string()),
                ("public", public.to_string()),
                ("internal", (!public).to_string()),
            ];
            let response = self
                .http
                .send("listing comments", |c| self.auth(c.get(&url)).query(&query))
                .await?;
            let page: Comments = self.json("listing comments", response).await?;
            if let Some(found) = page.values.iter().find(|c| has_marker(&c.body, message)) {
                return Ok(Some(id_text(&found.id)));
            }
            if page.is_last_page || page.values.is_empty() {
                return Ok(None);
            }
            start += page.values.len();
        }
    }

    /// Adds a comment unless one for `message` is there; returns its id.
    async fn comment_once(
        &self,
        key: &str,
        message: &rootmail_domain::ContentHash,
        body: &str,
        public: bool,
    ) -> PortResult<String> {
        match self.existing_comment(key, message, public).await? {
            Some(id) => Ok(id),
            None => self.post_comment(key, body, public).await,
        }
    }

    async fn post_comment(&self, key: &str, body: &str, public: bool) -> PortResult<String> {
        let url = self.url(&format!("/rest/servicedeskapi/request/{key}/comment"));
        let payload = json!({"body": body, "public": public});
        let response = self
            .http
            .send("commenting on a request", |c| {
                self.auth(c.post(&url)).json(&payload)
            })
            .await?;
        let created: Comment = self.json("commenting on a request", response).await?;
        Ok(id_text(&created.id))
    }

    /// The internal note, marked with the message so a retry does not repeat it.
    async fn internal_note(
        &self,
        key: &str,
        message: &rootmail_domain::ContentHash,
        note: &str,
    ) -> PortResult<()> {
        if note.trim().is_empty() {
            return Ok(());
        }
        let body = body_with_listing(note, &[], message);
        self.comment_once(key, message, &body, false)
            .await
            .map(drop)
    }
}

fn permanent(message: String) -> PortError {
    PortError::Permanent {
        port: PORT,
        message,
    }
}

fn id_text(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A JQL string literal.
fn jql_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

impl TicketSink for Jira {
    fn name(&self) -> &'static str {
        PORT
    }

    fn max_attachment_bytes(&self) -> usize {
        self.options.max_attachment_bytes
    }

    async fn find(&self, key: &ThreadKey) -> PortResult<Option<FoundTicket>> {
        let url = self.url("/rest/api/2/search/jql");
        let jql = format!(
            "labels = {} ORDER BY created ASC",
            jql_string(&thread_token(key))
        );
        let query = [
            ("jql", jql.as_str()),
            ("fields", "description"),
            ("maxResults", "1"),
        ];
        let response = self
            .http
            .send("finding a request", |c| {
                self.auth(c.get(&url)).query(&query)
            })
            .await?;
        let search: Search = self.json("finding a request", response).await?;
        let Some(issue) = search.issues.into_iter().next() else {
            return Ok(None);
        };
        // A labelled request without our marker was edited by hand; treat it as
        // created by an unknown message, so every mail becomes a comment on it.
        let created_from = issue
            .fields
            .description
            .as_deref()
            .and_then(marked_message)
            .unwrap_or_else(|| rootmail_domain::ContentHash::of(issue.key.as_bytes()));
        Ok(Some(FoundTicket {
            id: issue.key,
            created_from,
        }))
    }

    /// Idempotent per thread (the `TicketSink` contract): a request already
    /// labelled for the thread is completed (its internal note) and returned.
    async fn create(&self, ticket: &NewTicket) -> PortResult<String> {
        if let Some(found) = self.find(&ticket.thread_key).await? {
            if found.created_from == ticket.message {
                self.internal_note(&found.id, &ticket.message, &ticket.internal_note)
                    .await?;
            }
            return Ok(found.id);
        }
        let mut fields = json!({
            "summary": ticket.subject,
            "description": body_with_listing(&ticket.body, &ticket.attachments, &ticket.message),
            "labels": ["rootmail", thread_token(&ticket.thread_key), ticket.kind.as_str().replace('.', "_")],
        });
        if self.options.set_priority {
            fields["priority"] = json!({"name": priority_name(ticket.priority)});
        }
        let payload = json!({
            "serviceDeskId": self.options.service_desk_id,
            "requestTypeId": self.options.request_type_id,
            "requestFieldValues": fields,
        });
        let url = self.url("/rest/servicedeskapi/request");
        let response = self
            .http
            .send("creating a request", |c| {
                self.auth(c.post(&url)).json(&payload)
            })
            .await?;
        let created: Created = self.json("creating a request", response).await?;
        self.attach(&created.issue_key, &ticket.attachments, true)
            .await?;
        self.internal_note(&created.issue_key, &ticket.message, &ticket.internal_note)
            .await?;
        Ok(created.issue_key)
    }

    async fn comment(&self, ticket_id: &str, comment: &NewComment) -> PortResult<PostedComment> {
        let body = body_with_listing(&comment.body, &comment.attachments, &comment.message);
        let existed = self
            .existing_comment(ticket_id, &comment.message, true)
            .await?;
        let id = match existed {
            Some(id) => id,
            None => {
                let id = self.post_comment(ticket_id, &body, true).await?;
                // Uploaded only with a new comment, so a retry never attaches twice.
                self.attach(ticket_id, &comment.attachments, true).await?;
                id
            }
        };
        self.internal_note(ticket_id, &comment.message, &comment.internal_note)
            .await?;
        Ok(PostedComment::on(ticket_id, id))
    }
}
