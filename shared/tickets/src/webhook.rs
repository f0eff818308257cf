//! The plain JSON webhook backend: rootmail POSTs tickets and comments to a
//! receiver you run. The contract (also in README.md):
//!
//! - `POST {base}/tickets` with `Idempotency-Key`: body [`NewTicket`] as JSON,
//!   answer `{"id": "..."}`. The same key must return the same id.
//! - `POST {base}/tickets/{id}/comments` with `Idempotency-Key`: body
//!   [`NewComment`], answer `{"id": "..."}`. The same key must return the same id.
//! - `GET {base}/tickets?thread_key=K`: answer `{"tickets": [{"id", "created_from"}]}`.
//! - `Authorization: Bearer <token>` when a token is configured.

use crate::http::HttpClient;
use reqwest::header::AUTHORIZATION;
use rootmail_domain::{ContentHash, ThreadKey};
use rootmail_pipeline::{FoundTicket, NewComment, NewTicket, PortError, PortResult, TicketSink};
use serde::Deserialize;

const PORT: &str = "webhook";

#[derive(Clone)]
pub struct Webhook {
    http: HttpClient,
    base: String,
    token: Option<String>,
}

#[derive(Deserialize)]
struct Created {
    id: serde_json::Value,
}

#[derive(Deserialize)]
struct Listed {
    #[serde(default)]
    tickets: Vec<ListedTicket>,
}

#[derive(Deserialize)]
struct ListedTicket {
    id: serde_json::Value,
    created_from: ContentHash,
}

impl Webhook {
    pub fn new(http: HttpClient, base: &str, token: Option<String>) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            token,
        }
    }

    fn auth(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.header(AUTHORIZATION, format!("Bearer {token}")),
            None => request,
        }
    }

    async fn read_id(&self, what: &str, response: reqwest::Response) -> PortResult<String> {
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(PortError::Permanent {
                port: PORT,
                message: format!("{what}: HTTP 404 from the receiver"),
            });
        }
        let created: Created = response.json().await.map_err(|e| PortError::Permanent {
            port: PORT,
            message: format!("{what}: the answer is not {{\"id\": ...}}: {e}"),
        })?;
        Ok(id_text(&created.id))
    }
}

/// Receivers may answer with numeric or string ids.
fn id_text(id: &serde_json::Value) -> String {
    match id {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The idempotency key of the comment a message makes.
pub fn comment_key(message: &ContentHash) -> String {
    format!("rootmail-comment-{}", &message.as_str()[..32])
}

impl TicketSink for Webhook {
    fn name(&self) -> &'static str {
        PORT
    }

    async fn find(&self, key: &ThreadKey) -> PortResult<Option<FoundTicket>> {
        let url = format!("{}/tickets", self.base);
        let response = self
            .http
            .send("finding a ticket", |c| {
                self.auth(c.get(&url).query(&[("thread_key", key.as_str())]))
            })
            .await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let listed: Listed = response.json().await.map_err(|e| PortError::Permanent {
            port: PORT,
            message: format!("finding a ticket: the answer is not {{\"tickets\": [...]}}: {e}"),
        })?;
        Ok(listed.tickets.into_iter().next().map(|t| FoundTicket {
            id: id_text(&t.id),
            created_from: t.created_from,
        }))
    }

    async fn create(&self, ticket: &NewTicket) -> PortResult<String> {
        let url = format!("{}/tickets", self.base);
        let response = self
            .http
            .send("creating a ticket", |c| {
                self.auth(c.post(&url))
                    .header("Idempotency-Key", &ticket.idempotency_key)
                    .json(ticket)
            })
            .await?;
        self.read_id("creating a ticket", response).await
    }

    async fn comment(&self, ticket_id: &str, comment: &NewComment) -> PortResult<String> {
        let url = format!("{}/tickets/{}/comments", self.base, ticket_id);
        let key = comment_key(&comment.message);
        let response = self
            .http
            .send("commenting on a ticket", |c| {
                self.auth(c.post(&url))
                    .header("Idempotency-Key", &key)
                    .json(comment)
            })
            .await?;
        self.read_id("commenting on a ticket", response).await
    }
}
