//! The plain JSON webhook backend: rootmail POSTs tickets and comments to a
//! receiver you run. The contract (also in functions/README.md):
//!
//! - `POST {base}/tickets` with `Idempotency-Key`: body [`NewTicket`] as JSON,
//!   answer `{"id": "..."}`. The same key must return the same id.
//! - `POST {base}/tickets/{id}/comments` with `Idempotency-Key`: body
//!   [`NewComment`], answer `{"id": "..."}`. The same key must return the same id.
//! - `GET {base}/tickets?thread_key=K`: answer `{"tickets": [{"id", "created_from"}]}`.
//! - `Authorization: Bearer <token>` when a token is configured.
//! - `X-Rootmail-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` when an HMAC key
//!   is configured: the MAC of `<t>.<body>` for a POST, of `<t>.<path and query>`
//!   for a GET. A receiver recomputes it and refuses stale `t` (replays).
//! - Attachments travel inside the body: `content.upload` is base64.

use crate::credential::Credential;
use crate::http::HttpClient;
use hmac::{Hmac, Mac};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use rootmail_domain::{ContentHash, ThreadKey};
use rootmail_pipeline::{
    FoundTicket, NewComment, NewTicket, PortError, PortResult, PostedComment, TicketSink,
};
use serde::Deserialize;

const PORT: &str = "webhook";

/// The largest attachment sent inline (base64 grows it by a third).
pub const MAX_ATTACHMENT_BYTES: usize = 10 * 1024 * 1024;

/// The webhook's secret: `{"token": ..., "hmac_key": ...}`, both optional.
#[derive(Clone, Default, Deserialize)]
pub struct WebhookCredentials {
    #[serde(default)]
    pub token: Option<Credential>,
    #[serde(default)]
    pub hmac_key: Option<Credential>,
}

#[derive(Clone)]
pub struct Webhook {
    http: HttpClient,
    base: String,
    credentials: WebhookCredentials,
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
    pub fn new(http: HttpClient, base: &str, credentials: WebhookCredentials) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            credentials,
        }
    }

    /// Authorization and signature for a request whose signed part is `signed`.
    fn auth(&self, request: reqwest::RequestBuilder, signed: &[u8]) -> reqwest::RequestBuilder {
        let request = match &self.credentials.token {
            Some(token) => request.header(AUTHORIZATION, format!("Bearer {}", token.expose())),
            None => request,
        };
        match &self.credentials.hmac_key {
            Some(key) => request.header("X-Rootmail-Signature", signature(key, now_secs(), signed)),
            None => request,
        }
    }

    /// POSTs `value` as JSON, serialized once so the signature covers the exact bytes.
    async fn post(
        &self,
        what: &str,
        url: &str,
        key: &str,
        value: &impl serde::Serialize,
    ) -> PortResult<String> {
        let body = serde_json::to_vec(value).map_err(|e| {
            PortError::permanent(PORT, format!("{what}: cannot encode the body: {e}"))
        })?;
        let response = self
            .http
            .send(what, |c| {
                self.auth(c.post(url), &body)
                    .header("Idempotency-Key", key)
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone())
            })
            .await?;
        self.read_id(what, response).await
    }

    async fn read_id(&self, what: &str, response: reqwest::Response) -> PortResult<String> {
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(PortError::http(
                PORT,
                404,
                format!("{what}: HTTP 404 from the receiver"),
            ));
        }
        let created: Created = response.json().await.map_err(|e| {
            PortError::permanent(
                PORT,
                format!("{what}: the answer is not {{\"id\": ...}}: {e}"),
            )
        })?;
        Ok(id_text(&created.id))
    }
}

/// `t=<secs>,v1=<hex HMAC-SHA256 of "<secs>.<signed>">`.
pub fn signature(key: &Credential, at_secs: u64, signed: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.expose().as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(format!("{at_secs}.").as_bytes());
    mac.update(signed);
    format!(
        "t={at_secs},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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

    fn instance(&self) -> String {
        format!("{PORT} {}", self.base)
    }

    fn max_attachment_bytes(&self) -> usize {
        MAX_ATTACHMENT_BYTES
    }

    async fn find(&self, key: &ThreadKey) -> PortResult<Option<FoundTicket>> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/tickets", self.base),
            &[("thread_key", key.as_str())],
        )
        .map_err(|e| PortError::permanent(PORT, format!("finding a ticket: bad URL: {e}")))?;
        let target = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        };
        let response = self
            .http
            .send("finding a ticket", |c| {
                self.auth(c.get(url.clone()), target.as_bytes())
            })
            .await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let listed: Listed = response.json().await.map_err(|e| {
            PortError::permanent(
                PORT,
                format!("finding a ticket: the answer is not {{\"tickets\": [...]}}: {e}"),
            )
        })?;
        Ok(listed.tickets.into_iter().next().map(|t| FoundTicket {
            id: id_text(&t.id),
            created_from: t.created_from,
        }))
    }

    async fn create(&self, ticket: &NewTicket) -> PortResult<String> {
        let url = format!("{}/tickets", self.base);
        self.post("creating a ticket", &url, &ticket.idempotency_key, ticket)
            .await
    }

    async fn comment(&self, ticket_id: &str, comment: &NewComment) -> PortResult<PostedComment> {
        let url = format!("{}/tickets/{}/comments", self.base, ticket_id);
        let key = comment_key(&comment.message);
        let id = self
            .post("commenting on a ticket", &url, &key, comment)
            .await?;
        Ok(PostedComment::on(ticket_id, id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_of_time_and_body() {
        let key = Credential::new("key");
        // HMAC-SHA256("key", "1700000000.{}"), computed independently with openssl.
        assert_eq!(
            signature(&key, 1_700_000_000, b"{}"),
            format!("t=1700000000,v1={}", EXPECTED_MAC)
        );
        assert_ne!(
            signature(&key, 1_700_000_001, b"{}"),
            signature(&key, 1_700_000_000, b"{}")
        );
    }

    const EXPECTED_MAC: &str = "9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae";
}
