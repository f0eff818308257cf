//! The plain JSON webhook backend: rootmail POSTs tickets and comments to a
//! receiver you run. The contract (also in functions/README.md):
//!
//! - `POST {base}/tickets` with `Idempotency-Key`: body [`NewTicket`] as JSON,
//!   answer `{"id": "..."}`. The same key must return the same id.
//! - `POST {base}/tickets/{id}/comments` with `Idempotency-Key`: body
//!   [`NewComment`], answer `{"id": "..."}`. The same key must return the same id.
//! - `GET {base}/tickets?thread_key=K`: answer `{"tickets": [{"id", "created_from"}]}`.
//! - `Authorization: Bearer <token>` when a token is configured.
//! - `X-Rootmail-Signature: t=<unix seconds>,v2=<hex HMAC-SHA256>` when an HMAC key
//!   is configured: the MAC of `<t>\n<METHOD>\n<path and query>\n<Idempotency-Key>\n<body>`
//!   (a GET has neither key nor body), so a captured request cannot be sent
//!   to another ticket's comments or under another key. A receiver
//!   recomputes it, compares in constant time and refuses a stale `t`.
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

    /// Authorization and signature for a request (see [`Signed`]).
    fn auth(
        &self,
        request: reqwest::RequestBuilder,
        signed: &Signed<'_>,
    ) -> reqwest::RequestBuilder {
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
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| PortError::permanent(PORT, format!("{what}: bad URL: {e}")))?;
        let signed = Signed {
            method: "POST",
            target: &target_of(&parsed),
            idempotency_key: key,
            body: &body,
        };
        let response = self
            .http
            .send(what, |c| {
                self.auth(c.post(parsed.clone()), &signed)
                    .header("Idempotency-Key", key)
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone())
            })
            .await
            .map_err(in_progress_is_transient)?;
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
        let expected = "the answer is not {\"id\": ...}";
        let created: Created = crate::http::json_of(PORT, what, response, expected).await?;
        Ok(id_text(&created.id))
    }
}

/// A 409 to a POST with an Idempotency-Key is "a request with this key is
/// still being processed" (the IETF Idempotency-Key header draft): after a
/// timed-out try, the first is still running on the receiver's side. As a
/// refusal it was dead-lettered while the first try went on to make the ticket.
fn in_progress_is_transient(e: PortError) -> PortError {
    crate::http::conflict_left_to_queue(e, "the receiver is still processing this key")
}

/// What a request's signature covers: everything that decides its effect.
#[derive(Clone, Copy)]
pub struct Signed<'a> {
    pub method: &'a str,
    /// The path and query, as sent.
    pub target: &'a str,
    /// Empty for a GET.
    pub idempotency_key: &'a str,
    /// Empty for a GET.
    pub body: &'a [u8],
}

/// `t=<secs>,v2=<hex HMAC-SHA256 of "<secs>\n<method>\n<target>\n<key>\n<body>">`.
/// (v1 covered only the body or the target: a captured comment could be
/// sent again to another ticket's comments under a fresh key.)
pub fn signature(key: &Credential, at_secs: u64, signed: &Signed<'_>) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.expose().as_bytes())
        .expect("HMAC takes keys of any length");
    let head = format!(
        "{at_secs}\n{}\n{}\n{}\n",
        signed.method, signed.target, signed.idempotency_key
    );
    mac.update(head.as_bytes());
    mac.update(signed.body);
    format!(
        "t={at_secs},v2={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// `<base>/tickets/<id>/comments`, the id (the receiver's word, any string)
/// one percent-encoded path segment: an id holding `/`, `?` or `#` names
/// that ticket, never another path of the receiver.
fn comments_url(base: &str, ticket_id: &str) -> PortResult<String> {
    let mut url = reqwest::Url::parse(&format!("{base}/tickets"))
        .map_err(|e| PortError::permanent(PORT, format!("the webhook URL {base}: {e}")))?;
    url.path_segments_mut()
        .map_err(|()| PortError::permanent(PORT, format!("the webhook URL {base} takes no path")))?
        .push(ticket_id)
        .push("comments");
    Ok(url.into())
}

/// The path and query of `url`, as the request line carries them.
fn target_of(url: &reqwest::Url) -> String {
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_string(),
    }
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
        let signed = Signed {
            method: "GET",
            target: &target_of(&url),
            idempotency_key: "",
            body: b"",
        };
        let response = self
            .http
            .send("finding a ticket", |c| {
                self.auth(c.get(url.clone()), &signed)
            })
            .await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let expected = "the answer is not {\"tickets\": [...]}";
        let listed: Listed =
            crate::http::json_of(PORT, "finding a ticket", response, expected).await?;
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
        let url = comments_url(&self.base, ticket_id)?;
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

    fn create(key: &'static str) -> Signed<'static> {
        Signed {
            method: "POST",
            target: "/hook/tickets",
            idempotency_key: key,
            body: b"{}",
        }
    }

    #[test]
    fn the_signature_is_the_hmac_of_time_method_target_key_and_body() {
        let key = Credential::new("key");
        // HMAC-SHA256("key", "1700000000\nPOST\n/hook/tickets\nk1\n{}"),
        // computed independently with openssl.
        assert_eq!(
            signature(&key, 1_700_000_000, &create("k1")),
            format!("t=1700000000,v2={EXPECTED_MAC}")
        );
        assert_ne!(
            signature(&key, 1_700_000_001, &create("k1")),
            signature(&key, 1_700_000_000, &create("k1"))
        );
    }

    /// Everything that decides a request's effect is signed: the same comment
    /// body sent to another ticket, under another idempotency key or as
    /// another method carries another signature (v1 signed the body alone).
    #[test]
    fn the_signature_covers_method_target_key_and_body() {
        let key = Credential::new("key");
        let base = Signed {
            method: "POST",
            target: "/hook/tickets/1/comments",
            idempotency_key: "rootmail-comment-a",
            body: b"{}",
        };
        let at = |signed: &Signed<'_>| signature(&key, 1_790_000_000, signed);
        let reference = at(&base);
        for other in [
            Signed {
                target: "/hook/tickets/2/comments",
                ..base
            },
            Signed {
                idempotency_key: "rootmail-comment-b",
                ..base
            },
            Signed {
                method: "PUT",
                ..base
            },
            Signed {
                body: b"{ }",
                ..base
            },
        ] {
            assert_ne!(at(&other), reference);
        }
    }

    const EXPECTED_MAC: &str = "c517515bae70be61ce6d7a2861c6e34e2670b0ef67da98edb69cd18fca613ffa";
}
