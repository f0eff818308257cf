//! What every backend writes the same way: the marker that makes comments
//! idempotent where the API has no idempotency key, the listing of attachments
//! that were not uploaded, and credentials that never print.

use rootmail_domain::{ContentHash, SecretValue, ThreadKey};
use rootmail_pipeline::{AttachmentContent, TicketAttachment};
use serde::Deserialize;

/// The last line of every ticket body and comment rootmail writes. Backends
/// without idempotency keys look for it before commenting (check before retry),
/// and read the creating message back from a ticket found by its thread key.
pub fn message_marker(message: &ContentHash) -> String {
    format!("{MARKER_PREFIX}{message}")
}

const MARKER_PREFIX: &str = "rootmail-message: ";

/// Whether `text` (a comment or ticket body as the API returns it) carries the
/// marker of `message`.
pub fn has_marker(text: &str, message: &ContentHash) -> bool {
    text.contains(&message_marker(message))
}

/// The message whose marker `text` carries first (the one that created a ticket,
/// when `text` is its description).
pub fn marked_message(text: &str) -> Option<ContentHash> {
    let at = text.find(MARKER_PREFIX)? + MARKER_PREFIX.len();
    let hex: String = text[at..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    ContentHash::parse(&hex)
}

/// A short, label-safe token naming a thread (Jira labels and Zendesk tags allow
/// no spaces or colons; thread keys have both).
pub fn thread_token(key: &ThreadKey) -> String {
    format!(
        "rootmail-thread-{}",
        &ContentHash::of(key.as_str().as_bytes()).as_str()[..24]
    )
}

/// The body text followed by a list of the attachments not uploaded (with their
/// reason and the original's location) and the marker.
pub fn body_with_listing(
    body: &str,
    attachments: &[TicketAttachment],
    message: &ContentHash,
) -> String {
    let mut text = body.trim_end().to_string();
    let listed: Vec<String> = attachments
        .iter()
        .filter_map(|a| match &a.content {
            AttachmentContent::Upload(_) => None,
            AttachmentContent::Listed { reason, original } => Some(format!(
                "- {} ({}, {} bytes): {reason}{}",
                a.name,
                a.content_type,
                a.size,
                original.as_deref().map_or(String::new(), |o| format!(
                    "; it is in the original message at {o}"
                ))
            )),
        })
        .collect();
    if !listed.is_empty() {
        text.push_str("\n\nAttachments not uploaded:\n");
        text.push_str(&listed.join("\n"));
    }
    text.push_str("\n\n");
    text.push_str(&message_marker(message));
    text
}

/// A credential from the backend's secret: never printed, zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential(SecretValue);

impl Credential {
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretValue::new(value.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for Credential {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_names_the_message_and_is_found_again() {
        let message = ContentHash::of(b"mail");
        let body = body_with_listing("Hello", &[], &message);
        assert!(has_marker(&body, &message));
        assert!(!has_marker(&body, &ContentHash::of(b"other")));
        assert_eq!(marked_message(&body), Some(message));
        assert_eq!(marked_message("no marker here"), None);
    }

    #[test]
    fn attachments_not_uploaded_are_listed_with_reason_and_original() {
        let message = ContentHash::of(b"mail");
        let attachments = vec![
            TicketAttachment {
                name: "invoice.pdf".into(),
                content_type: "application/pdf".into(),
                size: 3,
                content: AttachmentContent::Upload(vec![1, 2, 3]),
            },
            TicketAttachment {
                name: "big.zip".into(),
                content_type: "application/zip".into(),
                size: 99_000_000,
                content: AttachmentContent::Listed {
                    reason: "not attached: too large".into(),
                    original: Some("s3://bucket/inbound/x".into()),
                },
            },
        ];
        let body = body_with_listing("Hello", &attachments, &message);
        assert!(body.contains("- big.zip (application/zip, 99000000 bytes): not attached: too large; it is in the original message at s3://bucket/inbound/x"));
        assert!(!body.contains("invoice.pdf"));
    }

    #[test]
    fn thread_tokens_are_label_safe_and_stable() {
        let key = ThreadKey::message("reply-1@example.com");
        let token = thread_token(&key);
        assert_eq!(token, thread_token(&key));
        assert!(token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }

    #[test]
    fn credentials_never_print() {
        let c: Credential = serde_json::from_str("\"s3cr3t-token\"").unwrap();
        assert_eq!(c.expose(), "s3cr3t-token");
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }
}
