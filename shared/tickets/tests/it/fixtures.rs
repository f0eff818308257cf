//! What the request tests share: the marker key, a client that retries fast,
//! the budget alert and its follow-up that most of them send, and reading back
//! what a fake received.

use rootmail_domain::{ContentHash, Kind, Priority, ThreadKey};
use rootmail_fake_http::FakeHttp;
use rootmail_pipeline::{AttachmentContent, NewComment, NewTicket, TicketAttachment};
use rootmail_tickets::{HttpClient, MarkerKey, RetryPolicy};
use serde_json::Value;
use std::time::Duration;

/// The marker key these tests pass explicitly (no default exists).
pub fn marker_key() -> MarkerKey {
    MarkerKey::new(b"rootmail-test-marker-key-0123456789abcdef").expect("key")
}

/// The line that names `message` at the end of what it wrote.
pub fn message_marker(message: &ContentHash) -> String {
    marker_key().marker(message)
}

/// The client of the `port` backend: `attempts` tries, 10 ms apart at first.
pub fn http(port: &'static str, timeout: Duration, attempts: u32) -> HttpClient {
    HttpClient::new(
        port,
        timeout,
        RetryPolicy {
            max_attempts: attempts,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(2),
        },
    )
    .expect("client")
}

/// A file small enough to upload.
pub fn upload(name: &str, content_type: &str, bytes: &[u8]) -> TicketAttachment {
    TicketAttachment {
        name: name.into(),
        content_type: content_type.into(),
        size: bytes.len(),
        content: AttachmentContent::Upload(bytes.to_vec()),
    }
}

/// `huge.zip`, 90 MB: listed with `reason` and the original message's place.
pub fn too_large(reason: &str) -> TicketAttachment {
    TicketAttachment {
        name: "huge.zip".into(),
        content_type: "application/zip".into(),
        size: 90_000_000,
        content: AttachmentContent::Listed {
            reason: reason.into(),
            original: Some("s3://mail/inbound/1".into()),
        },
    }
}

/// An urgent budget alert with a note, a CSV to upload and a zip too large.
pub fn budget_alert() -> NewTicket {
    let key = ThreadKey::message("budget-1@aws.example");
    let message = ContentHash::of(b"the first mail");
    NewTicket {
        idempotency_key: rootmail_pipeline::create_key(&key, &message),
        thread_key: key,
        subject: "AWS Budgets: Monthly budget has exceeded 80%".into(),
        body: "Your budget Monthly is at 85%.".into(),
        priority: Priority::Urgent,
        kind: Kind::BudgetAlert,
        account_id: Some("123456789012".into()),
        customer: Some("Example Corp".into()),
        message,
        internal_note: "Authentication: DKIM pass. Original: s3://mail/inbound/1".into(),
        attachments: vec![
            upload("usage report.csv", "text/csv", b"a,b\n1,2\n"),
            too_large("not attached: too large"),
        ],
        found_absent: false,
    }
}

/// The next mail of the budget alert's thread: text only, normal priority.
pub fn follow_up(message: &[u8]) -> NewComment {
    NewComment {
        message: ContentHash::of(message),
        body: "Another alert.".into(),
        priority: Priority::Normal,
        kind: Kind::BudgetAlert,
        internal_note: String::new(),
        attachments: Vec::new(),
        first_send: None,
    }
}

/// The requests `server` received as `method` on a path ending in `path_end`.
pub fn sent(server: &FakeHttp, method: &str, path_end: &str) -> Vec<rootmail_fake_http::Received> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.method.as_str() == method && r.path.ends_with(path_end))
        .collect()
}

/// The JSON bodies of [`sent`]'s requests (`Null` for one that is not JSON).
pub fn bodies(server: &FakeHttp, method: &str, path_end: &str) -> Vec<Value> {
    sent(server, method, path_end)
        .iter()
        .map(|r| r.json())
        .collect()
}

/// How many requests `server` received as `route` (`"POST /path"`).
pub fn count(server: &FakeHttp, route: &str) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.route() == route)
        .count()
}
